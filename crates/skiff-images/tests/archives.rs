//! Imports of `docker save` and OCI archives, plain and compressed, built by the test support.

mod support;

use skiff_images::archive::{import_archive, import_directory};
use skiff_images::pull::Platform;
use skiff_images::{ContentStore, Digest};
use support::{Compression, TestImage, TestLayer};

fn image(text: &str) -> TestImage {
    let layer = TestLayer::of_files(&[("etc/motd", text.as_bytes().to_vec(), 0o644)]);
    TestImage::new(vec![layer], &Platform::current().architecture, &["/bin/sh"])
}

#[test]
fn compressed_archives_of_both_formats_import_with_their_names() {
    let files = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let cases = [
        ("saved.tar.zst", true, Compression::Zstd, "saved-zstd:1"),
        ("saved.tar.gz", true, Compression::Gzip, "saved-gzip:1"),
        ("oci.tar.zst", false, Compression::Zstd, "oci-zstd:1"),
        ("oci.tar", false, Compression::None, "oci-plain:1"),
    ];
    for (file, docker_save, compression, name) in cases {
        let image = image(name);
        let path = files.path().join(file);
        if docker_save {
            image.write_docker_save_compressed(&path, &[name], compression);
        } else {
            image.write_oci_archive(&path, name, compression);
        }
        let records = import_archive(&store, &path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(records.len(), 1, "{file}");
        let (repository, tag) = name.split_once(':').unwrap();
        assert_eq!(
            records[0].name,
            format!("docker.io/library/{repository}"),
            "{file}"
        );
        assert_eq!(records[0].tag.as_deref(), Some(tag), "{file}");
        let snapshot = store.snapshot_path(&image.layers[0].diff_id);
        assert_eq!(
            std::fs::read_to_string(snapshot.join("etc/motd")).unwrap(),
            name,
            "{file}"
        );
        for blob in &records[0].blobs {
            assert!(
                store.contains(&Digest::parse(blob).unwrap()),
                "{file}: {blob}"
            );
        }
    }
    assert_eq!(store.images().unwrap().len(), 4);
    assert_eq!(
        std::fs::read_dir(dir.path().join("ingest"))
            .unwrap()
            .count(),
        0,
        "scratch space is cleaned"
    );
}

#[test]
fn an_archive_of_neither_format_is_refused() {
    let files = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let path = files.path().join("other.tar");
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(2);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    builder
        .append_data(&mut header, "README", &b"hi"[..])
        .unwrap();
    std::fs::write(&path, builder.into_inner().unwrap()).unwrap();
    let error = import_archive(&store, &path).unwrap_err().to_string();
    assert!(
        error.contains("not a docker save archive nor an OCI image archive"),
        "{error}"
    );
}

#[test]
fn a_directory_of_archives_imports_each_once_and_survives_a_bad_file() {
    let images = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    image("first").write_docker_save(&images.path().join("a-first.tar"), &["first:1"]);
    image("second").write_oci_archive(
        &images.path().join("b-second.tar.gz"),
        "second:1",
        Compression::Gzip,
    );
    std::fs::write(images.path().join("c-broken.tar"), b"not an archive").unwrap();
    std::fs::write(images.path().join(".hidden.tar"), b"skipped").unwrap();

    let report = import_directory(&store, images.path()).expect("import");
    let imported: Vec<String> = report
        .imported
        .iter()
        .flat_map(|(_, records)| records.iter().map(|r| r.name.clone()))
        .collect();
    assert_eq!(
        imported,
        ["docker.io/library/first", "docker.io/library/second"]
    );
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert!(report.failed[0].0.ends_with("c-broken.tar"));
    assert_eq!(store.images().unwrap().len(), 2);

    // A second start finds the same bytes imported already, under any file name.
    std::fs::rename(
        images.path().join("a-first.tar"),
        images.path().join("renamed.tar"),
    )
    .unwrap();
    let again = import_directory(&store, images.path()).expect("second import");
    assert!(again.imported.is_empty(), "{:?}", again.imported);
    assert_eq!(
        again.already_imported.len(),
        2,
        "{:?}",
        again.already_imported
    );
    assert_eq!(again.failed.len(), 1);

    let missing = import_directory(&store, &images.path().join("absent")).expect("no directory");
    assert!(missing.imported.is_empty() && missing.failed.is_empty());
}
