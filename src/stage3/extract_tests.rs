//! Tests of [`extract`] on archives built here (root needed for owners and device nodes).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::*;

const MTIME: u64 = 1_700_000_000;

/// A tar archive under construction, written raw so that unsafe names are possible.
struct Ar(tar::Builder<Vec<u8>>);

impl Ar {
    fn new() -> Self {
        Ar(tar::Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, name: &str, mode: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(size);
        h
    }

    fn add(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.add(Self::header(EntryType::Directory, name, mode, 0), b"")
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.add(
            Self::header(EntryType::Regular, name, mode, data.len() as u64),
            data,
        )
    }

    fn owned_file(&mut self, name: &str, uid: u64, gid: u64) -> &mut Self {
        let mut h = Self::header(EntryType::Regular, name, 0o640, 2);
        h.set_uid(uid);
        h.set_gid(gid);
        self.add(h, b"hi")
    }

    fn link(&mut self, kind: EntryType, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(kind, name, 0o777, 0);
        h.as_gnu_mut().unwrap().linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.add(h, b"")
    }

    fn node(&mut self, kind: EntryType, name: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(kind, name, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.add(h, b"")
    }

    /// A PAX extended header with `records` for the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let h = Self::header(
            EntryType::XHeader,
            "././@PaxHeader",
            0o644,
            data.len() as u64,
        );
        self.add(h, &data)
    }

    /// Writes the archive, xz-compressed, to `<dir>/test.tar.xz`.
    fn write(&mut self, dir: &Path) -> PathBuf {
        let builder = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
        let tar = builder.into_inner().unwrap();
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        std::io::Write::write_all(&mut xz, &tar).unwrap();
        let path = dir.join("test.tar.xz");
        std::fs::write(&path, xz.finish().unwrap()).unwrap();
        path
    }
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

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
fn extract_keeps_numeric_owners_modes_and_mtimes() {
    if !is_root() {
        eprintln!("note: not root, skipping");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut ar = Ar::new();
    ar.dir("./", 0o755)
        .dir("./usr/", 0o755)
        .dir("./usr/bin/", 0o711)
        .file("./usr/bin/su", 0o4755, b"#!/bin/sh\n")
        .owned_file("./usr/owned", 4242, 31337)
        .dir("./tmp/", 0o1777);
    let dest = tmp.path().join("root");
    let stats = extract(&ar.write(tmp.path()), &dest).unwrap();
    assert_eq!(stats.entries, 6);
    assert_eq!(stats.bytes, 12);
    let su = std::fs::symlink_metadata(dest.join("usr/bin/su")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755);
    assert_eq!(su.mtime() as u64, MTIME);
    let owned = std::fs::symlink_metadata(dest.join("usr/owned")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (4242, 31337));
    assert_eq!(owned.mode() & 0o7777, 0o640);
    let bin = std::fs::symlink_metadata(dest.join("usr/bin")).unwrap();
    assert_eq!(bin.mode() & 0o7777, 0o711);
    assert_eq!(bin.mtime() as u64, MTIME);
    let t = std::fs::symlink_metadata(dest.join("tmp")).unwrap();
    assert_eq!(t.mode() & 0o7777, 0o1777);
    let root = std::fs::symlink_metadata(&dest).unwrap();
    assert_eq!(root.mode() & 0o7777, 0o755);
    assert!(!tmp.path().join("root.partial").exists());
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

#[test]
fn extract_makes_device_nodes_and_fifos() {
    if !is_root() {
        eprintln!("note: not root, skipping");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut ar = Ar::new();
    ar.node(EntryType::Char, "dev/null", 1, 3)
        .node(EntryType::Block, "dev/loop0", 7, 0)
        .node(EntryType::Fifo, "run/initctl", 0, 0);
    let dest = tmp.path().join("root");
    extract(&ar.write(tmp.path()), &dest).unwrap();
    let null = std::fs::symlink_metadata(dest.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    let lp = std::fs::symlink_metadata(dest.join("dev/loop0")).unwrap();
    assert!(lp.file_type().is_block_device());
    assert_eq!(lp.rdev(), nix::sys::stat::makedev(7, 0));
    let fifo = std::fs::symlink_metadata(dest.join("run/initctl")).unwrap();
    assert!(fifo.file_type().is_fifo());
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
fn extract_keeps_security_capability() {
    if !is_root() {
        eprintln!("note: not root, skipping");
        return;
    }
    // vfs_cap_data revision 2: cap_net_raw (13) permitted + effective.
    let mut cap = Vec::new();
    for word in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        cap.extend_from_slice(&word.to_le_bytes());
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut ar = Ar::new();
    ar.pax(&[("SCHILY.xattr.security.capability", &cap)])
        .owned_file("ping", 0, 0);
    let dest = tmp.path().join("root");
    extract(&ar.write(tmp.path()), &dest).unwrap();
    assert_eq!(
        get_xattr(&dest.join("ping"), "security.capability"),
        Some(cap)
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
    let builder = std::mem::replace(&mut ar.0, tar::Builder::new(Vec::new()));
    let tar = builder.into_inner().unwrap();
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
        tarball: PathBuf::from("/d/stage3.tar.xz"),
        entry: "./usr/bin/su".into(),
        action: "set the owner of".into(),
        path: PathBuf::from("/m/root.partial/usr/bin/su"),
        source: std::io::Error::from_raw_os_error(libc::EIO),
    };
    assert!(refused.is_environment());
    // A tarball that is not a genuine stage3: bad input, exit 2.
    let mut ar = Ar::new();
    ar.file("../evil", 0o644, b"x");
    assert!(!assert_refused(&mut ar).is_environment());
}
