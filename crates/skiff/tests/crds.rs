//! CustomResourceDefinitions end to end, with the real `kubectl` and the Python client's dynamic
//! client: a definition with a structural schema, status and scale subresources, printer
//! columns, short names and a category; its objects validated with Kubernetes' messages,
//! defaulted and pruned; served again after a restart; deleted with their definition.
//!
//! Run with `cargo test -p skiff --test crds` (`kubectl` on the PATH; python3 with the
//! `kubernetes` package for the dynamic client test).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::json::{items, json_of, str_at};
use support::{cells, wait_for, Kubectl, Skiff, DEADLINE};

const DEFINITION: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
    categories: [gadgets]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Color
      type: string
      jsonPath: .spec.color
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [color]
            x-kubernetes-validations:
            - rule: \"!has(self.size) || self.size != '0cm'\"
              message: size must not be zero
            properties:
              replicas:
                type: integer
                minimum: 0
                maximum: 3
                default: 1
              color:
                type: string
                enum: [red, blue]
              size:
                type: string
                pattern: '^[0-9]+(cm|m)$'
                x-kubernetes-validations:
                - rule: self == oldSelf
                  message: size is immutable
              settings:
                type: object
                x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            properties:
              replicas:
                type: integer
              selector:
                type: string
";

const WIDGET: &str = "\
apiVersion: example.com/v1
kind: Widget
metadata:
  name: first
spec:
  color: blue
  size: 10cm
  settings:
    anything: kept
";

/// Applies the definition and waits until kubectl sees it established.
fn install_definition(skiff: &Skiff, kubectl: &Kubectl) {
    let file = skiff.write_file("widgets-crd.yaml", DEFINITION);
    kubectl.ok(&["apply", "-f", &file]);
    kubectl.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=30s",
    ]);
}

#[test]
fn a_definition_serves_validated_defaulted_pruned_objects_with_its_columns_and_scale() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    install_definition(&skiff, &kubectl);

    let definition = kubectl.json(&["get", "crd", "widgets.example.com", "-o", "json"]);
    let conditions = definition["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let condition = |kind: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} condition in {definition}"))
            .clone()
    };
    assert_eq!(condition("NamesAccepted")["reason"], "NoConflicts");
    assert_eq!(condition("Established")["status"], "True");
    assert_eq!(
        condition("Established")["message"],
        "the initial names have been accepted"
    );
    assert_eq!(definition["status"]["storedVersions"], json!(["v1"]));
    assert_eq!(
        definition["status"]["acceptedNames"]["listKind"],
        "WidgetList"
    );

    // A definition with two storage versions is refused in Kubernetes' words.
    let mut second = DEFINITION
        .replace("widgets", "gadgets")
        .replace("Widget", "Gadget");
    second = second.replace("kind: Gadget\n    shortNames: [wd]", "kind: Gadget");
    second.push_str(
        "  - name: v2\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n",
    );
    let file = skiff.write_file("gadgets-crd.yaml", &second);
    let refused = kubectl.fails(&["create", "-f", &file]);
    assert!(
        refused.contains("The CustomResourceDefinition \"gadgets.example.com\" is invalid")
            && refused.contains("must have exactly one version marked as storage version"),
        "{refused}"
    );

    // A definition asking for a short name another one holds is not accepted.
    let clashing = DEFINITION
        .replace("widgets", "gizmos")
        .replace("widget", "gizmo")
        .replace("Widget", "Gizmo");
    let file = skiff.write_file("gizmos-crd.yaml", &clashing);
    kubectl.ok(&["create", "-f", &file]);
    wait_for("the short name conflict", Duration::from_secs(30), || {
        let gizmos = kubectl.json(&["get", "crd", "gizmos.example.com", "-o", "json"]);
        let accepted = gizmos["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "NamesAccepted"))
            .cloned()?;
        assert_eq!(
            (
                &accepted["status"],
                &accepted["reason"],
                &accepted["message"]
            ),
            (
                &json!("False"),
                &json!("ShortNamesConflict"),
                &json!("\"wd\" is already in use")
            ),
            "{gizmos}"
        );
        Some(())
    });
    kubectl.ok(&["delete", "crd", "gizmos.example.com", "--timeout=60s"]);

    let listing = kubectl.ok(&["get", "crd"]);
    let header = listing.lines().next().unwrap_or("");
    assert_eq!(cells(header), vec!["NAME", "CREATED", "AT"], "{listing}");
    assert!(
        listing
            .lines()
            .any(|l| cells(l).first() == Some(&"widgets.example.com")),
        "{listing}"
    );

    // Defaulted and pruned; preserved where the schema says so. Unknown fields are refused
    // under kubectl's default strict field validation, and dropped without it.
    let with_unknown = format!("{WIDGET}  unknownField: dropped\n");
    let file = skiff.write_file("first.yaml", &with_unknown);
    let refused = kubectl.fails(&["apply", "-f", &file]);
    assert!(
        refused.contains(
            "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.unknownField\""
        ),
        "{refused}"
    );
    kubectl.ok(&["apply", "--validate=false", "-f", &file]);
    let first = kubectl.json(&["get", "widget", "first", "-o", "json"]);
    assert_eq!(first["spec"]["replicas"], 1, "default applied: {first}");
    assert!(
        first["spec"].get("unknownField").is_none(),
        "pruned: {first}"
    );
    assert_eq!(first["spec"]["settings"]["anything"], "kept", "{first}");
    assert!(
        first.get("status").is_none(),
        "no status on create: {first}"
    );

    // Invalid objects get 422 in Kubernetes' words.
    let too_many = skiff.write_file(
        "too-many.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: bad\nspec:\n  color: red\n  replicas: 5\n",
    );
    let refused = kubectl.fails(&["apply", "-f", &too_many]);
    assert!(
        refused.contains(
            "spec.replicas: Invalid value: 5: spec.replicas in body should be less than or equal to 3"
        ),
        "{refused}"
    );
    let wrong = skiff.write_file(
        "wrong.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: bad\nspec:\n  color: pink\n  size: tall\n",
    );
    let refused = kubectl.fails(&["create", "-f", &wrong]);
    assert!(
        refused.contains(
            "spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\""
        ),
        "{refused}"
    );
    assert!(
        refused.contains(
            "spec.size: Invalid value: \"tall\": spec.size in body should match '^[0-9]+(cm|m)$'"
        ),
        "{refused}"
    );
    let missing = skiff.write_file(
        "missing.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: bad\nspec:\n  replicas: 2\n",
    );
    let refused = kubectl.fails(&["create", "-f", &missing]);
    assert!(refused.contains("spec.color: Required value"), "{refused}");
    // CEL rules: one on the object, one transition rule comparing with the stored value.
    let zero = skiff.write_file(
        "zero.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: bad\nspec:\n  color: red\n  size: 0cm\n",
    );
    let refused = kubectl.fails(&["create", "-f", &zero]);
    assert!(
        refused.contains("spec: Invalid value: \"object\": size must not be zero"),
        "{refused}"
    );
    let refused = kubectl.fails(&[
        "patch",
        "widget",
        "first",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":"2m"}}"#,
    ]);
    assert!(
        refused.contains("spec.size: Invalid value: \"string\": size is immutable"),
        "{refused}"
    );
    assert!(
        kubectl
            .run(&["get", "widget", "bad"])
            .stderr
            .contains("NotFound"),
        "a refused object was stored"
    );

    // The printer columns, through the short name and the category.
    let listing = kubectl.ok(&["get", "wd"]);
    let rows: Vec<Vec<&str>> = listing.lines().map(cells).collect();
    assert_eq!(
        rows[0],
        vec!["NAME", "REPLICAS", "COLOR", "AGE"],
        "{listing}"
    );
    assert_eq!(&rows[1][..3], &["first", "1", "blue"], "{listing}");
    let by_category = kubectl.ok(&["get", "gadgets"]);
    let names: Vec<&str> = by_category
        .lines()
        .skip(1)
        .filter_map(|l| cells(l).first().copied())
        .collect();
    assert_eq!(names, vec!["first"], "{by_category}");

    // Scale through the scale subresource.
    kubectl.ok(&["scale", "widget/first", "--replicas=3"]);
    let scaled = kubectl.json(&["get", "widget", "first", "-o", "json"]);
    assert_eq!(scaled["spec"]["replicas"], 3, "{scaled}");
    let refused = kubectl.fails(&["scale", "widget/first", "--replicas=4"]);
    assert!(
        refused.contains("spec.replicas in body should be less than or equal to 3"),
        "{refused}"
    );

    // Status is written only through its subresource.
    kubectl.ok(&[
        "patch",
        "widget",
        "first",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":9}}"#,
    ]);
    let unchanged = kubectl.json(&["get", "widget", "first", "-o", "json"]);
    assert!(unchanged.get("status").is_none(), "{unchanged}");
    kubectl.ok(&[
        "patch",
        "widget",
        "first",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":2,"selector":"app=first"}}"#,
    ]);
    let scale = json_of(&kubectl.ok(&[
        "get",
        "--raw",
        "/apis/example.com/v1/namespaces/default/widgets/first/scale",
    ]));
    assert_eq!(scale["spec"]["replicas"], 3, "{scale}");
    assert_eq!(scale["status"]["replicas"], 2, "{scale}");
    assert_eq!(scale["status"]["selector"], "app=first", "{scale}");

    // Strategic merge patch is refused for custom resources, JSON patch works.
    let refused = kubectl.fails(&[
        "patch",
        "widget",
        "first",
        "--type=strategic",
        "-p",
        r#"{"spec":{"color":"red"}}"#,
    ]);
    assert!(
        refused.contains("UnsupportedMediaType")
            || refused.contains("unknown format")
            || refused.contains("415"),
        "{refused}"
    );
    kubectl.ok(&[
        "patch",
        "widget",
        "first",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/color","value":"red"}]"#,
    ]);
    assert_eq!(
        str_at(
            &kubectl.json(&["get", "widget", "first", "-o", "json"]),
            "/spec/color"
        ),
        "red"
    );

    // Label and field selectors.
    kubectl.ok(&["label", "widget", "first", "tier=front"]);
    let selected = kubectl.json(&["get", "widgets", "-l", "tier=front", "-o", "json"]);
    assert_eq!(items(&selected).len(), 1, "{selected}");
    let none = kubectl.json(&[
        "get",
        "widgets",
        "--field-selector",
        "metadata.name=other",
        "-o",
        "json",
    ]);
    assert!(items(&none).is_empty(), "{none}");

    // OpenAPI v3 publishes the definition's schema: kubectl explain reads it.
    let explained = kubectl.ok(&["explain", "widgets.spec.replicas"]);
    assert!(explained.contains("KIND:       Widget"), "{explained}");
    assert!(
        explained.contains("FIELD: replicas <integer>"),
        "{explained}"
    );

    // Discovery publishes the resource with its names and subresources.
    let resources = kubectl.ok(&["api-resources", "--api-group=example.com"]);
    let row = resources
        .lines()
        .map(cells)
        .find(|r| r.first() == Some(&"widgets"))
        .unwrap_or_else(|| panic!("widgets not discovered:\n{resources}"));
    assert_eq!(
        row,
        vec!["widgets", "wd", "example.com/v1", "true", "Widget"],
        "{resources}"
    );
}

#[test]
fn custom_objects_survive_a_restart_and_go_with_their_definition() {
    let mut skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    install_definition(&skiff, &kubectl);
    let file = skiff.write_file("first.yaml", WIDGET);
    kubectl.ok(&["apply", "-f", &file]);
    kubectl.ok(&["create", "namespace", "other"]);
    kubectl.ok(&["apply", "-n", "other", "-f", &file]);

    skiff.restart();
    let kubectl = skiff.kubectl();
    let served = kubectl.json(&["get", "widgets", "-A", "-o", "json"]);
    assert_eq!(items(&served).len(), 2, "{served}");
    assert_eq!(served["items"][0]["spec"]["replicas"], 1, "{served}");

    // A default added to the schema later applies to stored objects when they are read.
    kubectl.ok(&[
        "patch",
        "crd",
        "widgets.example.com",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/mode","value":{"type":"string","default":"auto"}}]"#,
    ]);
    wait_for("the new default on read", Duration::from_secs(30), || {
        let one = kubectl.json(&["get", "widget", "first", "-o", "json"]);
        let all = kubectl.json(&["get", "widgets", "-A", "-o", "json"]);
        let listed_modes: Vec<String> = items(&all)
            .iter()
            .map(|w| str_at(w, "/spec/mode"))
            .collect();
        (str_at(&one, "/spec/mode") == "auto" && listed_modes == ["auto", "auto"]).then_some(())
    });

    // Deleting a collection of custom objects.
    kubectl.ok(&[
        "delete",
        "--raw",
        "/apis/example.com/v1/namespaces/other/widgets",
    ]);
    let left = kubectl.json(&["get", "widgets", "-n", "other", "-o", "json"]);
    assert!(items(&left).is_empty(), "{left}");

    kubectl.ok(&["delete", "crd", "widgets.example.com", "--timeout=60s"]);
    wait_for("the definition to be gone", Duration::from_secs(30), || {
        let out = kubectl.run(&["get", "crd", "widgets.example.com"]);
        (!out.success() && out.stderr.contains("NotFound")).then_some(())
    });
    let gone = kubectl.run(&["get", "widgets"]);
    assert!(!gone.success(), "widgets still served: {}", gone.stdout);
    // A new definition of the same resource finds none of the old objects.
    install_definition(&skiff, &kubectl);
    let listed = kubectl.json(&["get", "widgets", "-A", "-o", "json"]);
    assert!(
        items(&listed).is_empty(),
        "objects outlived their definition: {listed}"
    );
}

#[test]
fn python_dynamic_client_lists_and_watches_custom_objects() {
    let probe = Command::new("python3")
        .args(["-c", "import kubernetes"])
        .output()
        .unwrap_or_else(|e| panic!("this test needs python3 on the PATH: {e}"));
    assert!(
        probe.status.success(),
        "this test needs the Python `kubernetes` package (pip install kubernetes):\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    install_definition(&skiff, &kubectl);
    let file = skiff.write_file("first.yaml", WIDGET);
    kubectl.ok(&["apply", "-f", &file]);

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/dynamic_custom_objects.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .arg(skiff.kubeconfig())
        .arg("default")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let started = Instant::now();
    let mut seen = Vec::new();
    let done = loop {
        let left = DEADLINE.saturating_sub(started.elapsed());
        match lines.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(line) => {
                let finished = line == "DONE";
                seen.push(line);
                if finished {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    if !done {
        let _ = child.kill();
    }
    let status = child.wait().expect("python3 ends");
    let _ = reader.join();
    let stderr = errors.join().unwrap_or_default();
    assert!(
        done && status.success(),
        "the dynamic client did not list and watch Widgets (exit {status}):\nstdout:\n{}\nstderr:\n{stderr}",
        seen.join("\n")
    );
    assert_eq!(
        seen.first().map(String::as_str),
        Some("LISTED first"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|l| l == "ADDED first"), "{seen:?}");
    let created = kubectl.json(&["get", "widget", "from-python", "-o", "json"]);
    assert_eq!(created["spec"]["replicas"], 1, "defaulted: {created}");
}

#[test]
fn servers_sharing_etcd_serve_each_others_definitions() {
    let etcd = skiff_store::test_etcd::TestEtcd::start();
    let flags = [
        "--no-node",
        "--no-proxy",
        "--datastore-endpoint",
        &etcd.endpoint(),
    ];
    let first = Skiff::start_with(&flags);
    let kubectl = first.kubectl();
    install_definition(&first, &kubectl);
    let file = first.write_file("first.yaml", WIDGET);
    kubectl.ok(&["apply", "-f", &file]);

    // A second server, with its own data directory, registers the stored definition at start.
    let second = Skiff::start_with(&flags);
    let other = second.kubectl();
    let served = other.json(&["get", "widget", "first", "-o", "json"]);
    assert_eq!(served["spec"]["replicas"], 1, "{served}");

    // A definition deleted through one server stops being served by the other, whose
    // controller follows the definitions in etcd.
    other.ok(&["delete", "crd", "widgets.example.com", "--timeout=60s"]);
    wait_for(
        "the first server to stop serving widgets",
        Duration::from_secs(30),
        || {
            let out = kubectl.run(&[
                "get",
                "--raw",
                "/apis/example.com/v1/namespaces/default/widgets",
            ]);
            (!out.success() && out.stderr.contains("NotFound")).then_some(())
        },
    );
}
