//! `skiff rollout plan` prints the steps the Deployment controller's own planner takes.

use std::process::Command;

fn plan(manifest: &str, output: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy.yaml");
    std::fs::write(&path, manifest).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["rollout", "plan", "-f"])
        .arg(&path)
        .args(["-o", output])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn manifest(replicas: i32, strategy: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  strategy: {strategy}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: c, image: nginx}}]}}\n"
    )
}

fn steps(json: &str) -> (i64, i64, Vec<(i64, i64)>) {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let steps = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["new"].as_i64().unwrap(), s["old"].as_i64().unwrap()))
        .collect();
    (
        v["maxSurge"].as_i64().unwrap(),
        v["maxUnavailable"].as_i64().unwrap(),
        steps,
    )
}

#[test]
fn surge_one_unavailable_zero_alternates_up_and_down() {
    let (ok, out, err) = plan(
        &manifest(5, "{rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}"),
        "json",
    );
    assert!(ok, "{err}");
    let (surge, unavailable, steps) = steps(&out);
    assert_eq!((surge, unavailable), (1, 0));
    let new: Vec<i64> = steps.iter().map(|s| s.0).collect();
    let old: Vec<i64> = steps.iter().map(|s| s.1).collect();
    assert_eq!(new, vec![0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    assert_eq!(old, vec![5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0]);
}

#[test]
fn ten_replicas_at_quarters_lists_the_new_replica_set_creation_as_its_own_step() {
    let (ok, out, err) = plan(&manifest(10, "{}"), "json");
    assert!(ok, "{err}");
    let (surge, unavailable, steps) = steps(&out);
    assert_eq!((surge, unavailable), (3, 2));
    assert_eq!(
        steps,
        vec![(0, 10), (3, 10), (3, 8), (5, 8), (5, 3), (10, 3), (10, 0)]
    );
}

#[test]
fn help_states_the_availability_assumption() {
    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["rollout", "plan", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains(
            "syncs run until nothing more can move, then the new pods become available together"
        ),
        "{help}"
    );
    assert!(help.contains("Each ReplicaSet write"), "{help}");
}

#[test]
fn default_strategy_resolves_percentages_like_kubernetes() {
    let (ok, out, err) = plan(&manifest(3, "{}"), "json");
    assert!(ok, "{err}");
    let (surge, unavailable, steps) = steps(&out);
    // 25% of 3: surge rounds up to 1, unavailable rounds down to 0.
    assert_eq!((surge, unavailable), (1, 0));
    assert_eq!(steps.first(), Some(&(0, 3)));
    assert_eq!(steps.last(), Some(&(3, 0)));
}

#[test]
fn recreate_scales_old_down_before_new_up() {
    let (ok, out, err) = plan(&manifest(4, "{type: Recreate}"), "json");
    assert!(ok, "{err}");
    assert_eq!(steps(&out).2, vec![(0, 4), (0, 0), (4, 0)]);
}

#[test]
fn table_output_and_invalid_manifests() {
    let (ok, out, _) = plan(&manifest(2, "{}"), "table");
    assert!(ok);
    assert!(
        out.starts_with("MAX SURGE: 1   MAX UNAVAILABLE: 0"),
        "{out}"
    );
    let (ok, _, err) = plan(
        &manifest(2, "{rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}"),
        "json",
    );
    assert!(!ok);
    assert!(err.contains("is invalid"), "{err}");
}
