//! Layer unpacking: a layer's tar stream (plain, gzip or zstd) applied onto a directory with
//! the OCI image specification's rules.
//!
//! - `.wh.NAME` deletes `NAME` from the layers below; `.wh..wh..opq` empties its directory of
//!   what the layers below put there (entries of the same layer stay).
//! - Hard links and symlinks are recreated; no entry may write outside the directory, and
//!   paths with `..` are refused.
//! - Device nodes and FIFOs are created only by root; otherwise they are skipped and counted.
//! - Modes are kept; owners are kept when running as root.
//!
//! A snapshot keeps whiteouts instead of applying them, so the layer can later be stacked over
//! the ones below it: either as the empty marker files of the OCI layout, or in the form
//! overlayfs reads (a whiteout is a 0/0 character device, an opaque directory carries the
//! `trusted.overlay.opaque` attribute), which only root can create.

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use crate::digest::{Algorithm, Digest, HashingReader};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The extended attribute that makes an overlayfs directory hide the layers below it.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Reading the archive or writing a file failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// An entry's path climbs out of the layer (`..`) or through a symlink.
    #[error("entry {0:?} points outside the layer")]
    UnsafePath(String),
}

/// How much of the tar entries' metadata to honour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Set owners from the archive (only root may).
    pub preserve_ownership: bool,
    /// Create device nodes and FIFOs (only root may create devices).
    pub create_devices: bool,
    /// What to do with whiteouts and opaque-directory markers.
    pub whiteouts: Whiteouts,
}

/// What a layer's whiteouts become when it is unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Applied: the hidden entries are deleted from the directory (a flattened root).
    Apply,
    /// Kept as the OCI layout's empty `.wh.` marker files (a snapshot anyone can write).
    Markers,
    /// Kept in overlayfs' form: 0/0 character devices and the opaque attribute (root only).
    Overlay,
}

impl UnpackOptions {
    /// What the running user may do: everything when root, modes only otherwise.
    pub fn for_current_user() -> Self {
        let root = nix::unistd::geteuid().is_root();
        UnpackOptions {
            preserve_ownership: root,
            create_devices: root,
            whiteouts: Whiteouts::Apply,
        }
    }

    /// The same, keeping whiteouts as markers (for a snapshot of one layer).
    pub fn keeping_whiteouts(self) -> Self {
        self.with_whiteouts(Whiteouts::Markers)
    }

    /// The same, with whiteouts handled as `whiteouts` says.
    pub fn with_whiteouts(mut self, whiteouts: Whiteouts) -> Self {
        self.whiteouts = whiteouts;
        self
    }
}

/// Wraps `reader` in the decompressor its first bytes call for: gzip, zstd, or none.
pub fn decompress<'a>(reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::new(reader);
    let head = buffered.fill_buf()?;
    if head.starts_with(&GZIP_MAGIC) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(buffered)))
    } else if head.starts_with(&ZSTD_MAGIC) {
        let decoder = ruzstd::decoding::StreamingDecoder::new(buffered)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?;
        Ok(Box::new(decoder))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Applies the layer in `reader` onto `dest` and returns the digest of its uncompressed
/// stream (the layer's diff ID), computed with `algorithm`.
pub fn unpack_layer(
    reader: impl Read,
    dest: &Path,
    options: &UnpackOptions,
    algorithm: Algorithm,
) -> Result<Digest, UnpackError> {
    let hashing = HashingReader::new(decompress(reader)?, algorithm);
    let mut archive = tar::Archive::new(hashing);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(options.preserve_ownership);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive.set_unpack_xattrs(false);
    let mut written: HashSet<PathBuf> = HashSet::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.to_string_lossy().into_owned();
        let relative = safe_relative_path(&raw)?;
        let Some(file_name) = relative
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            continue;
        };
        let parent = relative.parent().unwrap_or(Path::new("")).to_path_buf();
        check_no_symlink_ancestor(dest, &parent, &raw)?;
        if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
            match options.whiteouts {
                Whiteouts::Markers => {
                    fs::create_dir_all(dest.join(&parent))?;
                    fs::write(dest.join(&relative), b"")?;
                }
                Whiteouts::Overlay if file_name == OPAQUE_MARKER => {
                    let dir = dest.join(&parent);
                    fs::create_dir_all(&dir)?;
                    xattr::set(&dir, OVERLAY_OPAQUE_XATTR, b"y")?;
                }
                Whiteouts::Overlay => {
                    let target = dest.join(&parent).join(hidden);
                    fs::create_dir_all(dest.join(&parent))?;
                    remove_any(&target)?;
                    make_overlay_whiteout(&target)?;
                }
                Whiteouts::Apply if file_name == OPAQUE_MARKER => {
                    empty_lower_entries(dest, &parent, &written)?;
                }
                Whiteouts::Apply => {
                    let target = parent.join(hidden);
                    if !written.contains(&target) {
                        remove_any(&dest.join(&target))?;
                    }
                }
            }
            continue;
        }
        let kind = entry.header().entry_type();
        let target = dest.join(&relative);
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            if options.create_devices {
                remove_unless_directory(&target, false)?;
                make_device(&entry, &target)?;
                written.insert(relative);
            }
            continue;
        }
        remove_unless_directory(&target, kind.is_dir())?;
        if !entry.unpack_in(dest)? {
            return Err(UnpackError::UnsafePath(raw));
        }
        written.insert(relative);
    }
    Ok(archive.into_inner().finish()?)
}

/// The entry's path relative to the layer root; `..` anywhere is refused.
fn safe_relative_path(raw: &str) -> Result<PathBuf, UnpackError> {
    let mut relative = PathBuf::new();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(UnpackError::UnsafePath(raw.to_string()))
            }
        }
    }
    Ok(relative)
}

/// Refuses an entry whose directory, inside `dest`, is reached through a symlink (which
/// could lead anywhere).
fn check_no_symlink_ancestor(dest: &Path, parent: &Path, raw: &str) -> Result<(), UnpackError> {
    let mut current = dest.to_path_buf();
    for component in parent.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(UnpackError::UnsafePath(raw.to_string()))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Removes what lies at `path` unless both it and the new entry are directories (which merge).
fn remove_unless_directory(path: &Path, entry_is_dir: bool) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() && entry_is_dir => Ok(()),
        Ok(_) => remove_any(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// An opaque directory: everything in `dest/dir` that this layer did not write goes.
fn empty_lower_entries(dest: &Path, dir: &Path, written: &HashSet<PathBuf>) -> io::Result<()> {
    let full = dest.join(dir);
    let entries = match fs::read_dir(&full) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let relative = dir.join(entry.file_name());
        if written.contains(&relative) {
            if entry.file_type()?.is_dir() {
                empty_lower_entries(dest, &relative, written)?;
            }
        } else {
            remove_any(&entry.path())?;
        }
    }
    Ok(())
}

/// An overlayfs whiteout: a character device numbered 0/0 under the hidden entry's name.
fn make_overlay_whiteout(target: &Path) -> Result<(), UnpackError> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    mknod(target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
        .map_err(|e| UnpackError::Io(e.into()))
}

fn make_device<R: Read>(entry: &tar::Entry<'_, R>, target: &Path) -> Result<(), UnpackError> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let header = entry.header();
    let kind = header.entry_type();
    let flag = if kind.is_character_special() {
        SFlag::S_IFCHR
    } else if kind.is_block_special() {
        SFlag::S_IFBLK
    } else {
        SFlag::S_IFIFO
    };
    let major = u64::from(header.device_major()?.unwrap_or(0));
    let minor = u64::from(header.device_minor()?.unwrap_or(0));
    let mode = Mode::from_bits_truncate(header.mode()? & 0o7777);
    mknod(target, flag, mode, makedev(major, minor)).map_err(|e| UnpackError::Io(e.into()))?;
    let uid = header.uid()?;
    let gid = header.gid()?;
    let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
        return Ok(());
    };
    std::os::unix::fs::lchown(target, Some(uid), Some(gid))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Builds a layer in memory from (path, kind) entries.
    enum Item<'a> {
        Dir(&'a str),
        File(&'a str, &'a str, u32),
        Link(&'a str, &'a str),
        Symlink(&'a str, &'a str),
        CharDevice(&'a str),
    }

    fn layer(items: &[Item<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let mut header = tar::Header::new_ustar();
            header.set_mtime(1_700_000_000);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mode(0o777);
            match item {
                Item::Dir(path) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    builder.append_data(&mut header, path, io::empty()).unwrap();
                }
                Item::File(path, contents, mode) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(contents.len() as u64);
                    builder
                        .append_data(&mut header, path, contents.as_bytes())
                        .unwrap();
                }
                Item::Link(path, target) => {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target).unwrap();
                }
                Item::Symlink(path, target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target).unwrap();
                }
                Item::CharDevice(path) => {
                    header.set_entry_type(tar::EntryType::Char);
                    header.set_mode(0o666);
                    header.set_device_major(1).unwrap();
                    header.set_device_minor(3).unwrap();
                    header.set_size(0);
                    builder.append_data(&mut header, path, io::empty()).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    fn apply(dest: &Path, bytes: &[u8]) -> Digest {
        let options = UnpackOptions {
            preserve_ownership: false,
            create_devices: false,
            whiteouts: Whiteouts::Apply,
        };
        unpack_layer(bytes, dest, &options, Algorithm::Sha256).expect("layer applies")
    }

    fn tree(root: &Path) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let path = entry.path();
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let kind = entry.file_type().unwrap();
                if kind.is_dir() {
                    out.push(format!("{relative}/"));
                    walk(root, &path, out);
                } else if kind.is_symlink() {
                    out.push(format!(
                        "{relative} -> {}",
                        fs::read_link(&path).unwrap().display()
                    ));
                } else {
                    out.push(format!(
                        "{relative} = {}",
                        fs::read_to_string(&path).unwrap()
                    ));
                }
            }
        }
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out.sort();
        out
    }

    fn base() -> Vec<u8> {
        layer(&[
            Item::Dir("etc"),
            Item::File("etc/keep", "kept", 0o644),
            Item::File("etc/gone", "old", 0o644),
            Item::Dir("etc/sub"),
            Item::File("etc/sub/deep", "old", 0o644),
            Item::Dir("var"),
            Item::File("var/old", "old", 0o644),
            Item::File("var/older", "old", 0o644),
        ])
    }

    #[test]
    fn a_whiteout_deletes_a_lower_file_and_a_lower_directory() {
        let dir = tempfile::tempdir().unwrap();
        apply(dir.path(), &base());
        apply(
            dir.path(),
            &layer(&[
                Item::File("etc/.wh.gone", "", 0o644),
                Item::File("etc/.wh.sub", "", 0o644),
            ]),
        );
        assert_eq!(
            tree(dir.path()),
            [
                "etc/",
                "etc/keep = kept",
                "var/",
                "var/old = old",
                "var/older = old"
            ]
        );
    }

    #[test]
    fn an_opaque_directory_hides_lower_entries_but_keeps_its_own_layers_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        apply(dir.path(), &base());
        // The layer's own file comes before the marker: it must survive.
        apply(
            dir.path(),
            &layer(&[
                Item::Dir("var"),
                Item::File("var/new", "new", 0o644),
                Item::File("var/.wh..wh..opq", "", 0o644),
            ]),
        );
        assert_eq!(
            tree(dir.path()),
            [
                "etc/",
                "etc/gone = old",
                "etc/keep = kept",
                "etc/sub/",
                "etc/sub/deep = old",
                "var/",
                "var/new = new"
            ]
        );
    }

    #[test]
    fn a_file_replaces_a_directory_and_a_directory_a_file() {
        let dir = tempfile::tempdir().unwrap();
        apply(dir.path(), &base());
        apply(
            dir.path(),
            &layer(&[
                Item::File("etc/sub", "now a file", 0o644),
                Item::Dir("var/old"),
                Item::File("var/old/inside", "x", 0o644),
            ]),
        );
        let listing = tree(dir.path());
        assert!(
            listing.contains(&"etc/sub = now a file".to_string()),
            "{listing:?}"
        );
        assert!(
            listing.contains(&"var/old/inside = x".to_string()),
            "{listing:?}"
        );
    }

    #[test]
    fn hard_links_symlinks_and_modes_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        apply(
            dir.path(),
            &layer(&[
                Item::Dir("bin"),
                Item::File("bin/busybox", "binary", 0o755),
                Item::Link("bin/sh", "bin/busybox"),
                Item::Symlink("bin/ls", "busybox"),
                Item::File("secret", "s", 0o600),
            ]),
        );
        let original = fs::metadata(dir.path().join("bin/busybox")).unwrap();
        let linked = fs::metadata(dir.path().join("bin/sh")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(original.ino(), linked.ino(), "a hard link shares the inode");
        assert_eq!(
            fs::read_link(dir.path().join("bin/ls")).unwrap(),
            Path::new("busybox")
        );
        assert_eq!(original.permissions().mode() & 0o777, 0o755);
        assert_eq!(
            fs::metadata(dir.path().join("secret"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }

    #[test]
    fn devices_are_skipped_when_not_allowed() {
        let dir = tempfile::tempdir().unwrap();
        apply(
            dir.path(),
            &layer(&[Item::Dir("dev"), Item::CharDevice("dev/null")]),
        );
        assert_eq!(tree(dir.path()), ["dev/"]);
    }

    #[test]
    fn entries_escaping_the_layer_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let escape = layer(&[
            Item::Symlink("link", outside.path().to_str().unwrap()),
            Item::File("link/planted", "x", 0o644),
        ]);
        let options = UnpackOptions::for_current_user();
        let error = unpack_layer(&escape[..], dir.path(), &options, Algorithm::Sha256).unwrap_err();
        assert!(matches!(error, UnpackError::UnsafePath(_)), "{error}");
        assert!(!outside.path().join("planted").exists());
        // A raw `..` path, written by hand since the builder refuses it.
        let mut bytes = Vec::new();
        {
            let name = b"../evil";
            let mut raw = [0u8; 512];
            raw[..name.len()].copy_from_slice(name);
            let mut h = tar::Header::from_byte_slice(&raw).clone();
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(0);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            bytes.extend_from_slice(h.as_bytes());
            bytes.extend_from_slice(&[0u8; 1024]);
        }
        let error = unpack_layer(&bytes[..], dir.path(), &options, Algorithm::Sha256).unwrap_err();
        assert!(matches!(error, UnpackError::UnsafePath(_)), "{error}");
    }

    #[test]
    fn gzip_and_zstd_layers_unpack_and_hash_to_the_uncompressed_diff_id() {
        let plain = layer(&[Item::File("hello", "world", 0o644)]);
        let diff_id = Digest::sha256_of(&plain);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gzip, &plain).unwrap();
        let gzip = gzip.finish().unwrap();
        let zstd = ruzstd::encoding::compress_to_vec(
            &plain[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for (label, bytes) in [("plain", &plain), ("gzip", &gzip), ("zstd", &zstd)] {
            let dir = tempfile::tempdir().unwrap();
            assert_eq!(apply(dir.path(), bytes), diff_id, "{label}");
            assert_eq!(
                fs::read_to_string(dir.path().join("hello")).unwrap(),
                "world",
                "{label}"
            );
        }
    }

    #[test]
    fn a_snapshot_keeps_whiteouts_as_markers() {
        let dir = tempfile::tempdir().unwrap();
        let options = UnpackOptions::for_current_user().keeping_whiteouts();
        let bytes = layer(&[
            Item::Dir("etc"),
            Item::File("etc/.wh.gone", "", 0o644),
            Item::File("etc/.wh..wh..opq", "", 0o644),
        ]);
        unpack_layer(&bytes[..], dir.path(), &options, Algorithm::Sha256).unwrap();
        assert_eq!(
            tree(dir.path()),
            ["etc/", "etc/.wh..wh..opq = ", "etc/.wh.gone = "]
        );
    }
}
