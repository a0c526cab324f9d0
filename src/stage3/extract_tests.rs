//! Tests of [`extract`] on archives built here, without root: the builder makes each entry
//! owned by the user running the tests, so the extractor's chown succeeds. What needs root
//! (other owners, device nodes, file capabilities) is tested in `tests/e2e/hostile.rs`, with
//! the same builder.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tar::EntryType;

use super::*;

#[path = "../../tests/support/tar_builder.rs"]
mod tar_builder;

use tar_builder::{Ar, MTIME};

/// Extracts and expects an `Unsafe` error, with nothing left at `dest` or `dest.partial`.
fn assert_refused(ar: &mut Ar) -> Stage3Error {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = ar.write(tmp.path());
    let dest = tmp.path().join("root");
    let err = extract(&tarball, &dest).unwrap_err();
    assert!(matches!(err, Stage3Error::Unsafe { .. }), "{err}");
    assert!(!dest.exists(), "dest left behind");
    assert!(
        !tmp.path().join("root.partial").exists(),
        "partial left behind"
    );
    err
}

#[test]
fn extract_keeps_symlinks_as_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ar = Ar::new();
    ar.link(EntryType::Symlink, "abs", "/nonexistent/target")
        .link(EntryType::Symlink, "rel", "../../outside");
    let dest = tmp.path().join("root");
    extract(&ar.write(tmp.path()), &dest).unwrap();
    let abs = dest.join("abs");
    assert!(std::fs::symlink_metadata(&abs)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_link(&abs).unwrap(),
        Path::new("/nonexistent/target")
    );
    assert_eq!(
        std::fs::read_link(dest.join("rel")).unwrap(),
        Path::new("../../outside")
    );
    assert_eq!(
        std::fs::symlink_metadata(&abs).unwrap().mtime() as u64,
        MTIME
    );
}

#[test]
fn extract_makes_hard_links() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ar = Ar::new();
    ar.file("bin/busybox", 0o755, b"elf")
        .link(EntryType::Link, "bin/sh", "bin/busybox");
    let dest = tmp.path().join("root");
    extract(&ar.write(tmp.path()), &dest).unwrap();
    let a = std::fs::metadata(dest.join("bin/busybox")).unwrap();
    let b = std::fs::metadata(dest.join("bin/sh")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.nlink(), 2);
}

/// Whether `dir`'s filesystem takes `user.*` extended attributes.
fn user_xattrs_supported(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let probe = dir.join("probe");
    std::fs::write(&probe, b"").unwrap();
    let path = std::ffi::CString::new(probe.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid NUL-terminated strings and a 1-byte value.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            c"user.probe".as_ptr(),
            b"1".as_ptr().cast(),
            1,
            0,
        )
    };
    std::fs::remove_file(&probe).unwrap();
    rc == 0
}

fn get_xattr(path: &Path, key: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let k = std::ffi::CString::new(key).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

#[test]
fn extract_keeps_user_xattrs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ar = Ar::new();
    ar.pax(&[
        ("SCHILY.xattr.user.test", b"hello\0world"),
        ("mtime", b"1700000000.5"),
    ])
    .file("usr/bin/ping", 0o755, b"elf");
    let dest = tmp.path().join("root");
    let stats = extract(&ar.write(tmp.path()), &dest).unwrap();
    let ping = dest.join("usr/bin/ping");
    let meta = std::fs::symlink_metadata(&ping).unwrap();
    assert_eq!(
        (meta.mtime() as u64, meta.mtime_nsec()),
        (MTIME, 500_000_000)
    );
    if !user_xattrs_supported(tmp.path()) {
        eprintln!(
            "note: {} takes no user.* xattrs; xattr assert skipped",
            tmp.path().display()
        );
        assert_eq!(stats.xattrs_skipped, 1);
        return;
    }
    assert_eq!(stats.xattrs_skipped, 0);
    assert_eq!(
        get_xattr(&ping, "user.test").as_deref(),
        Some(&b"hello\0world"[..])
    );
}

#[test]
fn extract_refuses_parent_dir_entries() {
    let mut ar = Ar::new();
    ar.file("ok", 0o644, b"1").file("../evil", 0o644, b"x");
    let err = assert_refused(&mut ar);
    assert!(err.to_string().contains("'..'"), "{err}");
}

#[test]
fn extract_refuses_parent_dir_inside_paths() {
    assert_refused(Ar::new().file("a/../../evil", 0o644, b"x"));
}

#[test]
fn extract_refuses_absolute_paths() {
    let err = assert_refused(Ar::new().file("/etc/evil", 0o644, b"x"));
    assert!(err.to_string().contains("absolute"), "{err}");
}

#[test]
fn extract_refuses_pax_path_escaping() {
    assert_refused(
        Ar::new()
            .pax(&[("path", b"../evil")])
            .file("harmless", 0o644, b"x"),
    );
}

#[test]
fn extract_never_writes_through_archive_symlinks() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    let mut ar = Ar::new();
    ar.link(EntryType::Symlink, "a", &target)
        .file("a/file", 0o644, b"x");
    let err = assert_refused(&mut ar);
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(
        !outside.path().join("file").exists(),
        "wrote through the symlink"
    );
}

#[test]
fn extract_never_makes_directories_through_archive_symlinks() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    let mut ar = Ar::new();
    ar.link(EntryType::Symlink, "a", &target)
        .dir("a/sub/", 0o755);
    assert_refused(&mut ar);
    assert!(!outside.path().join("sub").exists());
}

#[test]
fn extract_replaces_a_symlink_instead_of_following_it() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    let mut ar = Ar::new();
    ar.link(EntryType::Symlink, "f", victim.to_str().unwrap())
        .file("f", 0o644, b"new");
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("root");
    extract(&ar.write(tmp.path()), &dest).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert_eq!(std::fs::read(dest.join("f")).unwrap(), b"new");
}

#[test]
fn extract_refuses_hard_links_leaving_the_destination() {
    assert_refused(Ar::new().link(EntryType::Link, "passwd", "../../etc/passwd"));
    assert_refused(Ar::new().link(EntryType::Link, "passwd", "/etc/passwd"));
}

#[test]
fn extract_refuses_hard_links_through_archive_symlinks() {
    let mut ar = Ar::new();
    ar.link(EntryType::Symlink, "etc", "/etc")
        .link(EntryType::Link, "passwd", "etc/passwd");
    assert_refused(&mut ar);
}

#[test]
fn extract_refuses_an_existing_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = Ar::new().file("x", 0o644, b"1").write(tmp.path());
    let dest = tmp.path().join("root");
    std::fs::create_dir(&dest).unwrap();
    let err = extract(&tarball, &dest).unwrap_err();
    assert!(matches!(err, Stage3Error::DestExists { .. }), "{err}");
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
}

#[test]
fn extract_removes_a_stale_partial_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = Ar::new().file("x", 0o644, b"1").write(tmp.path());
    let stale = tmp.path().join("root.partial");
    std::fs::create_dir_all(stale.join("old/deep")).unwrap();
    let dest = tmp.path().join("root");
    extract(&tarball, &dest).unwrap();
    assert!(!stale.exists());
    assert!(!dest.join("old").exists());
    assert_eq!(std::fs::read(dest.join("x")).unwrap(), b"1");
}

#[test]
fn extract_of_a_corrupt_archive_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = Ar::new()
        .file("a", 0o644, &vec![7u8; 100_000])
        .file("b", 0o644, b"2")
        .write(tmp.path());
    let mut bytes = std::fs::read(&tarball).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&tarball, bytes).unwrap();
    let dest = tmp.path().join("root");
    let err = extract(&tarball, &dest).unwrap_err();
    assert!(matches!(err, Stage3Error::Archive { .. }), "{err}");
    assert!(!dest.exists());
    assert!(!tmp.path().join("root.partial").exists());
}

#[test]
fn extract_of_mutated_archives_never_panics_and_leaves_nothing_on_error() {
    let mut ar = Ar::new();
    ar.dir("./", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n")
        .link(EntryType::Symlink, "bin", "usr/bin")
        .link(EntryType::Link, "etc/passwd-", "etc/passwd")
        .node(EntryType::Fifo, "run/fifo", 0, 0)
        .pax(&[("SCHILY.xattr.user.a", b"1")])
        .file("usr/bin/x", 0o755, b"elf");
    let tar = ar.tar();
    let tmp = tempfile::tempdir().unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..300 {
        let mut bytes = tar.clone();
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x as usize) % bytes.len();
            bytes[at] = (x >> 32) as u8;
        }
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 0);
        std::io::Write::write_all(&mut xz, &bytes).unwrap();
        let tarball = tmp.path().join(format!("{i}.tar.xz"));
        std::fs::write(&tarball, xz.finish().unwrap()).unwrap();
        let dest = tmp.path().join(format!("root{i}"));
        if extract(&tarball, &dest).is_err() {
            assert!(!dest.exists());
        }
        assert!(!tmp.path().join(format!("root{i}.partial")).exists());
    }
}

#[test]
fn a_stopped_extraction_keeps_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ar = Ar::new();
    ar.dir("./", 0o755).dir("./etc/", 0o755);
    let dest = tmp.path().join("root");
    let stop = std::sync::atomic::AtomicBool::new(true);
    let err = extract_until(&ar.write(tmp.path()), &dest, &stop).unwrap_err();
    assert!(matches!(err, Stage3Error::Stopped { .. }), "{err}");
    assert!(!dest.exists(), "dest left behind");
    assert!(!tmp.path().join("root.partial").exists());
}

#[test]
fn the_filesystem_refusing_an_entry_exits_1_and_an_unsafe_entry_exits_2() {
    // EIO from fchown (a failing disk): the build machine's fault, exit 1 (src/error.rs).
    let refused = Stage3Error::Extract {
        tarball: std::path::PathBuf::from("/d/stage3.tar.xz"),
        entry: "./usr/bin/su".into(),
        action: "set the owner of".into(),
        path: std::path::PathBuf::from("/m/root.partial/usr/bin/su"),
        source: std::io::Error::from_raw_os_error(libc::EIO),
    };
    assert!(refused.is_environment());
    // A tarball that is not a genuine stage3: bad input, exit 2.
    let mut ar = Ar::new();
    ar.file("../evil", 0o644, b"x");
    assert!(!assert_refused(&mut ar).is_environment());
}
