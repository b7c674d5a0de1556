//! `skiff image import` and `skiff image ls` against a data directory.

mod support;

use support::cli::{rows, skiff};

#[test]
fn a_fresh_catalog_lists_the_built_in_aliases() {
    let data = tempfile::tempdir().expect("tempdir");
    let (ok, stdout, stderr) = skiff(data.path(), &["image", "ls"]);
    assert!(ok, "{stderr}");
    let demo = "built-in: demo server";
    assert_eq!(
        rows(&stdout),
        [
            ["NAME", "TAG", "SOURCE"],
            ["skiff/demo", "*", demo],
            ["nginx", "*", demo],
            ["httpd", "*", demo],
            ["ikubernetes/myapp", "*", demo],
            ["busybox", "*", "built-in: host shell"],
        ]
    );
}

#[test]
fn imported_images_are_listed_first_with_their_directory() {
    let data = tempfile::tempdir().expect("tempdir");
    let image_dir = tempfile::tempdir().expect("image dir");
    let root = image_dir.path().canonicalize().expect("canonical");
    let dir = image_dir.path().to_str().expect("utf-8 path");
    let (ok, stdout, stderr) = skiff(
        data.path(),
        &[
            "image",
            "import",
            "tools:1.0",
            dir,
            "--entrypoint",
            "bin/run",
            "--cmd",
            "--fast",
            "--env",
            "A=b=c",
            "--workdir",
            "/srv",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        format!("imported tools:1.0 from {}\n", root.display())
    );

    let (ok, stdout, stderr) = skiff(data.path(), &["image", "ls"]);
    assert!(ok, "{stderr}");
    let listed = rows(&stdout);
    assert_eq!(listed[1], ["tools", "1.0", &root.display().to_string()]);
    assert_eq!(listed[2][0], "skiff/demo");

    let catalog: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.path().join("images/catalog.json")).expect("catalog file"),
    )
    .expect("catalog json");
    let entry = &catalog["images"]["tools:1.0"];
    assert_eq!(entry["entrypoint"], serde_json::json!(["bin/run"]));
    assert_eq!(entry["cmd"], serde_json::json!(["--fast"]));
    assert_eq!(entry["env"], serde_json::json!([["A", "b=c"]]));
    assert_eq!(entry["workingDir"], "/srv");
}

#[test]
fn bad_imports_fail_with_a_message() {
    let data = tempfile::tempdir().expect("tempdir");
    let image_dir = tempfile::tempdir().expect("image dir");
    let dir = image_dir.path().to_str().expect("utf-8 path");
    let missing = image_dir.path().join("missing");
    let missing = missing.to_str().expect("utf-8 path");
    let cases: [(&[&str], &str); 3] = [
        (&["image", "import", "Tools:1", dir], "must be lowercase"),
        (&["image", "import", "tools:1", missing], "image directory"),
        (
            &["image", "import", "tools:1", dir, "--env", "NOEQUALS"],
            "expected K=V",
        ),
    ];
    for (args, message) in cases {
        let (ok, _, stderr) = skiff(data.path(), args);
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert!(!data.path().join("images/catalog.json").exists());
}
