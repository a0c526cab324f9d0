//! The hostile suite (issue 10): what a configuration, a stage3 or anything created inside an
//! environment can try against the tool running as root. Each test is one of the
//! reproductions of the security pass, and asserts the attempt is refused with exit status 2
//! (or stays inert) and that nothing outside is read, written or executed.
//!
//! The run-directory permission cases (umask 000, a second local user, peer credentials,
//! run ids) belong to the run directory module and are tested with it.

use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tar::EntryType;

use crate::common::*;
use crate::tar_builder::{Ar, MTIME};

const DEMO_A: &str = "configs/x86_64-unknown-linux-musl.demo-a";

/// Names that would run a command, split a word or end a line in a shell script.
const HOSTILE_NAMES: [&str; 8] = [
    "a$(touch${IFS}pwned)b",
    "a`touch${IFS}pwned`b",
    "a'b",
    "a\"b",
    "a\nb",
    "a b",
    "a;touch pwned",
    "-rf",
];

/// Runs `build-helper ARGS` in `tree` with the current directory `cwd` and a deadline: a
/// command that hangs (a FIFO read) is killed and the test fails.
fn bh_within(tree: &Tree, cwd: &Path, args: &[&std::ffi::OsStr], secs: u64) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("BUILD_HELPER_TREE", tree.path())
        .env("TARBALL_MIRROR", "file:///nonexistent")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run build-helper");
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("build-helper {args:?} still ran after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn check_and_plan(tree: &Tree, cwd: &Path) -> (Output, Output) {
    let config = tree.path().join(DEMO_A);
    let check = bh_within(tree, cwd, &["check".as_ref(), config.as_os_str()], 20);
    let starter = tree.starter();
    let plan = bh_within(tree, cwd, &["plan".as_ref(), starter.as_os_str()], 20);
    (check, plan)
}

fn assert_exit_2(out: &Output, needle: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains(needle), "`{needle}` not in: {text}");
    assert!(!text.contains("panicked"), "{text}");
    text
}

/// Every file called `pwned` under `dir`.
fn pwned_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(pwned_under(&p));
        } else if p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("pwned"))
        {
            out.push(p);
        }
    }
    out
}

#[test]
fn hostile_names_in_a_configuration_make_check_and_plan_exit_2() {
    if !require_root() {
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    for name in HOSTILE_NAMES {
        // As a world (with its tree entry), then as a local repository directory.
        let tree = Tree::new();
        let config = tree.path().join(DEMO_A);
        std::fs::write(config.join("worlds").join(name), "app-misc/foo\n").unwrap();
        std::fs::write(config.join("worlds/tree").join(name), "base\n").unwrap();
        let (check, plan) = check_and_plan(&tree, cwd.path());
        assert_exit_2(&check, "is not allowed");
        assert_exit_2(&plan, "is not allowed");

        let tree = Tree::new();
        let config = tree.path().join(DEMO_A);
        std::fs::create_dir_all(config.join("repos").join(name)).unwrap();
        let (check, plan) = check_and_plan(&tree, cwd.path());
        assert_exit_2(&check, "local repository name");
        assert_exit_2(&plan, "local repository name");
    }
    // build-arch, an atom that is an option, a build name in the starter.
    let tree = Tree::new();
    let config = tree.path().join(DEMO_A);
    std::fs::write(config.join("build-arch"), "x86_64$(touch${IFS}pwned)\n").unwrap();
    let (check, _) = check_and_plan(&tree, cwd.path());
    assert_exit_2(&check, "not a kernel ARCH");
    let tree = Tree::new();
    let config = tree.path().join(DEMO_A);
    std::fs::write(config.join("worlds/net"), "--config-root=/\n").unwrap();
    let (check, _) = check_and_plan(&tree, cwd.path());
    assert_exit_2(&check, "starts with `-`");
    let tree = Tree::new();
    let s = std::fs::read_to_string(tree.starter()).unwrap();
    std::fs::write(
        tree.starter(),
        s.replacen("name = \"demo-a\"", "name = \"demo-a$(touch pwned)\"", 1),
    )
    .unwrap();
    let (_, plan) = check_and_plan(&tree, cwd.path());
    assert_exit_2(&plan, "build name");
    assert!(pwned_under(cwd.path()).is_empty());
}

#[test]
fn fifos_devices_and_links_out_of_a_configuration_are_not_read_nor_printed() {
    if !require_root() {
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let secret = cwd.path().join("secret");
    std::fs::write(&secret, "root:$6$very-secret-hash:19000::::::\n").unwrap();
    for (entry, how) in [
        ("worlds/net", "fifo"),
        ("worlds/net", "/dev/zero"),
        ("worlds/base", "secret"),
        ("worlds/tree/net", "secret"),
        ("build-arch", "secret"),
        ("target-portage/profile/make.defaults", "secret"),
    ] {
        let tree = Tree::new();
        let path = tree.path().join(DEMO_A).join(entry);
        std::fs::remove_file(&path).unwrap();
        match how {
            "fifo" => {
                nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap()
            }
            "secret" => symlink(&secret, &path).unwrap(),
            other => symlink(other, &path).unwrap(),
        }
        let (check, plan) = check_and_plan(&tree, cwd.path());
        let needle = if how == "fifo" {
            "FIFO, not a regular file"
        } else {
            "leads out of the configuration"
        };
        for out in [&check, &plan] {
            let text = assert_exit_2(out, needle);
            assert!(!text.contains("very-secret-hash"), "{entry}: {text}");
            assert!(
                !text.contains(&*secret.to_string_lossy()),
                "{entry}: {text}"
            );
        }
    }
    // The starter itself as a FIFO or a device.
    for how in ["fifo", "/dev/zero"] {
        let tree = Tree::new();
        let starter = tree.starter();
        std::fs::remove_file(&starter).unwrap();
        if how == "fifo" {
            nix::unistd::mkfifo(&starter, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        } else {
            symlink(how, &starter).unwrap();
        }
        let plan = bh_within(
            &tree,
            cwd.path(),
            &["plan".as_ref(), starter.as_os_str()],
            20,
        );
        assert_exit_2(&plan, "not a regular file");
    }
}

#[test]
fn plan_refuses_nul_newlines_and_paths_reaching_root_or_work() {
    if !require_root() {
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    for (options, needle) in [
        ("[env]\nX = \"a\\u0000b\"\n", "NUL byte or a line break"),
        ("[env]\nX = \"a\\nb\"\n", "NUL byte or a line break"),
        ("[options]\ndistfiles = \"\"\n", "is empty"),
        ("[options]\ndistfiles = \"/\"\n", "root directory"),
        (
            "[options]\ndistfiles = \".\"\n",
            "bind them into themselves",
        ),
        ("[options]\ndistfiles = \"work/x\"\n", "lies inside"),
        ("[options]\nhistory = \"/\"\n", "root directory"),
        (
            "[options]\nhistory = \"../../../../../../..\"\n",
            "root directory",
        ),
        (
            "[options]\ngentoo_mirrors = \"http://x/$(id)\"\n",
            "gentoo_mirrors",
        ),
    ] {
        let tree = Tree::new();
        let s = std::fs::read_to_string(tree.starter()).unwrap();
        // Drop the starter's own tables after the targets, then add the hostile one.
        let head = &s[..s.find("[options]").unwrap()];
        std::fs::write(tree.starter(), format!("{head}{options}")).unwrap();
        let starter = tree.starter();
        let plan = bh_within(
            &tree,
            cwd.path(),
            &["plan".as_ref(), starter.as_os_str()],
            20,
        );
        assert_exit_2(&plan, needle);
    }
    // The same through the original's variables.
    let tree = Tree::new();
    for (var, value) in [
        ("DISTFILES", "/".to_string()),
        ("BUILD_HIST", "/".to_string()),
    ] {
        let out = tree.bh(
            &["plan", tree.starter().to_str().unwrap()],
            &[(var, &value)],
        );
        assert_exit_2(&out, var);
    }
}

/// A file of the build machine outside the tree, with its content, for "nothing outside is
/// read or written".
struct Secret {
    path: PathBuf,
    content: String,
}

impl Secret {
    fn new(dir: &Path, name: &str) -> Secret {
        let path = dir.join(name);
        let content = format!("secret {name} of the build machine\n");
        std::fs::write(&path, &content).unwrap();
        Secret { path, content }
    }

    fn assert_untouched(&self) {
        let now = std::fs::read_to_string(&self.path).unwrap();
        assert_eq!(now, self.content, "{} was written", self.path.display());
    }
}

#[test]
fn links_planted_inside_an_environment_reach_nothing_outside() {
    if !require_root() {
        return;
    }
    let outside = tempfile::tempdir().unwrap();
    let world = Secret::new(outside.path(), "world-secret");
    let base = Secret::new(outside.path(), "base-secret");
    let make_conf = Secret::new(outside.path(), "make-conf-secret");
    let resolv = Secret::new(outside.path(), "resolv-secret");
    let pwned = outside.path().join("pwned");
    let tree = Tree::new();
    // An [env] value full of shell syntax reaches every step as an environment entry: inert.
    let hostile_value = format!(
        "$(touch {p}) `touch {p}` '; touch {p}; ' \" $((1+1))",
        p = pwned.display()
    );
    // The starter ends with its [env] table.
    let mut starter = std::fs::OpenOptions::new()
        .append(true)
        .open(tree.starter())
        .unwrap();
    writeln!(starter, "HOSTILE = {}", toml_string(&hostile_value)).unwrap();
    drop(starter);

    // A first session stops at a failed step of the primary target; its environment stays
    // on disk (mount type bind), where "a package built in it" now plants its links (the
    // resumed steps of the primary target run in that root).
    let failing = format!("{}:target-world", TARGETS[0]);
    let out = tree.run_demo(&[], &[("BH_DEMO_FAIL", &failing)]);
    assert_eq!(out.status.code(), Some(1));
    let root = tree.run_dir().join("root/m");
    assert!(
        root.join("etc/profile").is_file(),
        "no environment at {}",
        root.display()
    );
    // The copy of resolv.conf at the next mount meets a link to a host file.
    let _ = std::fs::remove_file(root.join("etc/resolv.conf"));
    symlink(&resolv.path, root.join("etc/resolv.conf")).unwrap();
    // Every later step (they all source /etc/profile) makes the environment's world, the
    // host configuration's saved world and its make.conf links to host files.
    let host_conf = tree.path().join("configs/host-amd64");
    let mut profile = std::fs::OpenOptions::new()
        .append(true)
        .open(root.join("etc/profile"))
        .unwrap();
    writeln!(
        profile,
        "ln -sfn {} /var/lib/portage/world\nln -sfn {} {}/worlds/base\nln -sfn {} /etc/portage/make.conf",
        world.path.display(),
        base.path.display(),
        host_conf.display(),
        make_conf.path.display()
    )
    .unwrap();
    drop(profile);

    let out = tree.run_demo(&["--resume"], &[("BH_DEMO_FAIL", &failing)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(tree.checkpoint()["finished"], true);
    let said = format!("{stdout}{stderr}");
    assert!(said.contains("the host world was not saved back"), "{said}");
    // The links planted in the host configuration landed in the run's own view of configs/,
    // never in the user's files.
    for file in ["worlds/base", "target-portage/make.conf"] {
        let user = host_conf.join(file);
        assert!(
            std::fs::symlink_metadata(&user).unwrap().is_file(),
            "{} was replaced",
            user.display()
        );
        let planted = tree.run_dir().join("root/conf/u/host-amd64").join(file);
        assert!(
            std::fs::symlink_metadata(&planted)
                .unwrap()
                .file_type()
                .is_symlink(),
            "no planted link at {}",
            planted.display()
        );
    }
    for secret in [&world, &base, &make_conf, &resolv] {
        secret.assert_untouched();
        assert!(!said.contains(secret.content.trim()), "{said}");
    }
    // The environment got a real resolv.conf in place of the link.
    assert!(std::fs::symlink_metadata(root.join("etc/resolv.conf"))
        .unwrap()
        .is_file());
    // No host secret was copied into the tree.
    let config_text: String = walk_files(&tree.path().join("configs"))
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    for secret in [&world, &base, &make_conf, &resolv] {
        assert!(!config_text.contains(secret.content.trim()));
    }
    // The hostile [env] value ran nothing, on the host or in the environment.
    assert!(!pwned.exists());
    assert!(pwned_under(&tree.run_dir()).is_empty());
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tree.run_dir().join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["targets"][0]["env"]["HOSTILE"], hostile_value.as_str());
    assert!(mounts_anywhere(tree.path()).is_empty());
}

#[test]
fn a_target_root_turned_into_a_link_never_brings_the_host_into_the_history() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let outside = tempfile::tempdir().unwrap();
    let secret = Secret::new(outside.path(), "host-file");
    // The primary target fails; the secondary targets finish in the first session.
    let failing = format!("{}:target-world", TARGETS[0]);
    let out = tree.run_demo(&[], &[("BH_DEMO_FAIL", &failing)]);
    assert_eq!(out.status.code(), Some(1));
    // Inside demo-c's environment (its overlay's upper directory), its root becomes a link
    // to a directory of the build machine; the archive view binds that root into M/b.
    let run = tree.run_dir();
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("plan.json")).unwrap()).unwrap();
    let date = plan["date"].as_str().unwrap();
    let upper = run.join(format!("root/demo-c-{date}/u"));
    let target_root = upper.join(format!("usr/{}", TARGETS[2]));
    assert!(target_root.is_dir(), "no {}", target_root.display());
    std::fs::remove_dir_all(&target_root).unwrap();
    symlink(outside.path(), &target_root).unwrap();

    let out = tree.run_demo(&["--resume"], &[("BH_DEMO_FAIL", &failing)]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("is a symbolic link"), "{said}");
    let histories: Vec<_> = std::fs::read_dir(tree.path().join("history"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(histories.is_empty(), "a history was written: {histories:?}");
    secret.assert_untouched();
    assert!(mounts_anywhere(tree.path()).is_empty());
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(walk_files(&p)),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
    out
}

// --- stage3 tarballs (the extractor's cases that already pass, kept passing) ---

fn extract(ar: &mut Ar) -> (tempfile::TempDir, Result<(), String>) {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = ar.write(tmp.path());
    let result = build_helper::stage3::extract(&tarball, &tmp.path().join("root"))
        .map(|_| ())
        .map_err(|e| e.to_string());
    (tmp, result)
}

#[test]
fn hostile_stage3_tarballs_are_refused_and_write_nothing_outside() {
    if !require_root() {
        return;
    }
    let outside = tempfile::tempdir().unwrap();
    let victim = Secret::new(outside.path(), "victim");
    let out = outside.path().display().to_string();
    let cases: Vec<(&str, Ar)> = vec![
        ("parent directory", {
            let mut a = Ar::new();
            a.file("ok", 0o644, b"1").file("../evil", 0o644, b"x");
            a
        }),
        ("parent inside a path", {
            let mut a = Ar::new();
            a.file("a/../../evil", 0o644, b"x");
            a
        }),
        ("absolute path", {
            let mut a = Ar::new();
            a.file(&format!("{out}/evil"), 0o644, b"x");
            a
        }),
        ("pax path escaping", {
            let mut a = Ar::new();
            a.pax(&[("path", b"../evil")]).file("harmless", 0o644, b"x");
            a
        }),
        ("file through a symlinked parent", {
            let mut a = Ar::new();
            a.link(EntryType::Symlink, "a", &out)
                .file("a/evil", 0o644, b"x");
            a
        }),
        ("directory through a symlinked parent", {
            let mut a = Ar::new();
            a.link(EntryType::Symlink, "a", &out).dir("a/evil/", 0o755);
            a
        }),
        ("directory swapped for a symlink", {
            let mut a = Ar::new();
            a.dir("d/", 0o755)
                .link(EntryType::Symlink, "d", &out)
                .file("d/evil", 0o644, b"x");
            a
        }),
        ("hard link out", {
            let mut a = Ar::new();
            a.link(
                EntryType::Link,
                "victim",
                &victim.path.display().to_string(),
            );
            a
        }),
        ("hard link up", {
            let mut a = Ar::new();
            a.link(EntryType::Link, "victim", "../../victim");
            a
        }),
        ("hard link through a symlink", {
            let mut a = Ar::new();
            a.link(EntryType::Symlink, "o", &out)
                .link(EntryType::Link, "victim", "o/victim");
            a
        }),
    ];
    for (what, mut ar) in cases {
        let (tmp, result) = extract(&mut ar);
        let err = result.expect_err(what);
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert!(
            !tmp.path().join("root").exists(),
            "{what}: root left behind"
        );
        assert!(
            !tmp.path().join("root.partial").exists(),
            "{what}: partial left"
        );
        assert!(
            !outside.path().join("evil").exists(),
            "{what}: wrote outside"
        );
        assert!(!tmp.path().join("evil").exists(), "{what}: wrote beside");
        victim.assert_untouched();
    }
    // A file entry over an archive symlink replaces the link, never writes through it.
    let (tmp, result) = extract(
        Ar::new()
            .link(EntryType::Symlink, "f", &victim.path.display().to_string())
            .file("f", 0o644, b"new"),
    );
    result.unwrap();
    victim.assert_untouched();
    assert_eq!(std::fs::read(tmp.path().join("root/f")).unwrap(), b"new");
}

#[test]
fn stage3_setuid_bits_and_file_capabilities_are_kept() {
    if !require_root() {
        return;
    }
    // vfs_cap_data revision 2: cap_net_raw (13) permitted and effective.
    let mut cap = Vec::new();
    for word in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        cap.extend_from_slice(&word.to_le_bytes());
    }
    let (tmp, result) = extract(
        Ar::new()
            .dir("bin/", 0o755)
            .file("bin/su", 0o4755, b"su")
            .pax(&[("SCHILY.xattr.security.capability", &cap)])
            .file("bin/ping", 0o755, b"ping"),
    );
    result.unwrap();
    let root = tmp.path().join("root");
    let su = std::fs::metadata(root.join("bin/su")).unwrap();
    assert_eq!(su.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(su.uid(), 0);
    let got = xattr(&root.join("bin/ping"), "security.capability");
    assert_eq!(got.as_deref(), Some(&cap[..]));
}

#[test]
fn stage3_numeric_owners_modes_mtimes_device_nodes_and_fifos_are_kept() {
    use std::os::unix::fs::FileTypeExt;
    if !require_root() {
        return;
    }
    let (tmp, result) = extract(
        Ar::new()
            .dir("./", 0o755)
            .dir("./usr/", 0o755)
            .dir("./usr/bin/", 0o711)
            .file("./usr/bin/su", 0o4755, b"#!/bin/sh\n")
            .owned_file("./usr/owned", 4242, 31337)
            .dir("./tmp/", 0o1777)
            .node(EntryType::Char, "dev/null", 1, 3)
            .node(EntryType::Block, "dev/loop0", 7, 0)
            .node(EntryType::Fifo, "run/initctl", 0, 0),
    );
    result.unwrap();
    let root = tmp.path().join("root");
    let meta = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
    let su = meta("usr/bin/su");
    assert_eq!(su.mode() & 0o7777, 0o4755);
    assert_eq!(su.mtime() as u64, MTIME);
    let owned = meta("usr/owned");
    assert_eq!((owned.uid(), owned.gid()), (4242, 31337));
    assert_eq!(owned.mode() & 0o7777, 0o640);
    let bin = meta("usr/bin");
    assert_eq!((bin.mode() & 0o7777, bin.mtime() as u64), (0o711, MTIME));
    assert_eq!(meta("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(
        std::fs::symlink_metadata(&root).unwrap().mode() & 0o7777,
        0o755
    );
    let null = meta("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    let lp = meta("dev/loop0");
    assert!(lp.file_type().is_block_device());
    assert_eq!(lp.rdev(), nix::sys::stat::makedev(7, 0));
    assert!(meta("run/initctl").file_type().is_fifo());
    assert!(!tmp.path().join("root.partial").exists());
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and `buf` is writable for its length.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| {
        buf.truncate(len as usize);
        buf
    })
}

/// A tree whose run records (plan and checkpoint under work/) say that demo-a's `collect`
/// finished in a run at `date`, with that build directory holding Debian's kernel (from
/// scripts/install-deps.sh) and no initramfs: QEMU boots it to a quick panic and exits.
fn recorded_kernel_only_build(date: &str) -> (Tree, PathBuf) {
    let st = Command::new(format!("{SRC}/scripts/install-deps.sh"))
        .status()
        .expect("run scripts/install-deps.sh");
    assert!(st.success(), "scripts/install-deps.sh failed");
    let tree = Tree::new();
    let starter = build_helper::starter::load(&tree.starter(), &|_| None).unwrap();
    let plan = build_helper::plan::build(&starter, date, None).unwrap();
    let run = tree.path().join("work").join(&plan.run_id);
    std::fs::create_dir_all(&run).unwrap();
    build_helper::rundir::save_plan(&run, &plan).unwrap();
    let mut cp = build_helper::engine::state::Checkpoint::new(&plan);
    let a = build_helper::config::Target::parse("x86_64-unknown-linux-musl.demo-a").unwrap();
    cp.step_started(&a, "collect", 1);
    cp.step_finished(&a, "collect", 0, 1, None);
    build_helper::rundir::save_checkpoint(&run, &cp).unwrap();
    let build = kernel_only_build(&tree, date);
    (tree, build)
}

/// `builds/x86_64-unknown-linux-musl.demo-a.<date>/` with Debian's kernel alone.
fn kernel_only_build(tree: &Tree, date: &str) -> PathBuf {
    let build = tree
        .path()
        .join(format!("builds/x86_64-unknown-linux-musl.demo-a.{date}"));
    std::fs::create_dir_all(build.join("EFI/boot")).unwrap();
    std::fs::copy(
        "/var/cache/build-helper/demo-kernel/vmlinuz",
        build.join("EFI/boot/bootx64.efi"),
    )
    .unwrap();
    build
}

/// `build-helper boot demo-a --accel tcg --run true` in `tree`: the kernel panics without
/// an initramfs, QEMU ends (exit 125) and the transcript is written.
fn boot_kernel_only(tree: &Tree) -> Output {
    bh_within(
        tree,
        tree.path(),
        &[
            "boot",
            "x86_64-unknown-linux-musl.demo-a",
            "--accel",
            "tcg",
            "--run",
            "true",
            "--timeout",
            "120",
        ]
        .map(std::ffi::OsStr::new),
        180,
    )
}

#[test]
fn a_console_transcript_link_planted_in_builds_is_replaced_not_written_through() {
    if !require_root() {
        return;
    }
    let (tree, build) = recorded_kernel_only_build("20260101-000000");
    // A build (writable builds/ from its chroot) plants boot-console.log -> a host file.
    let victim = tree.path().join("victim");
    std::fs::write(&victim, "host file\n").unwrap();
    symlink(&victim, build.join("boot-console.log")).unwrap();
    let out = boot_kernel_only(&tree);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host file\n");
    let log = build.join("boot-console.log");
    assert!(std::fs::symlink_metadata(&log)
        .unwrap()
        .file_type()
        .is_file());
    let transcript = std::fs::read_to_string(&log).unwrap();
    assert!(transcript.contains("Linux version"), "{transcript}");
    assert!(
        stderr.contains(&format!("transcript: {}", log.display())),
        "{stderr}"
    );
}

#[test]
fn a_build_directory_planted_under_builds_is_not_booted() {
    if !require_root() {
        return;
    }
    let (tree, recorded) = recorded_kernel_only_build("20260101-000000");
    // Newest by name, but no run record names it.
    let planted = kernel_only_build(&tree, "99999999-999999");
    let out = boot_kernel_only(&tree);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("booting {} (TCG", recorded.display())),
        "{stderr}"
    );
    assert!(recorded.join("boot-console.log").is_file());
    assert!(!planted.join("boot-console.log").exists());
    // Without a run record the planted directory alone is no build.
    std::fs::remove_dir_all(tree.path().join("work")).unwrap();
    let out = boot_kernel_only(&tree);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no finished build"), "{stderr}");
    assert!(!planted.join("boot-console.log").exists());
}

/// Issue 23, finding 2: `binhost` takes its run id through the one run-id check: `../x`
/// (and any id outside the run ids' alphabet) is refused before anything is opened, and a
/// run whose supervisor is gone is refused even when its pid now names a live process (here
/// an unrelated `sleep` in the build machine's namespace), so that process never decides
/// where emaint runs as root.
#[test]
fn binhost_refuses_a_bad_run_id_and_a_run_whose_supervisor_is_gone() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    for bad in ["../x", "a/b", "..", "a b"] {
        let out = tree.bh(&["binhost", bad], &[]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("is not a run id"), "{bad}: {err}");
    }
    let mut other = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = other.id();
    let ns = std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
        .unwrap()
        .ino();
    let run = tree.path().join("work/demo-a-20260101-000000");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("plan.json"), b"{}").unwrap();
    let journal = serde_json::json!({
        "format": 1,
        "mnt_ns": ns,
        "m_dir": run.join("M"),
        "pid": pid,
        "host_namespace": false,
        "mounts": [],
    });
    std::fs::write(run.join("journal.json"), journal.to_string()).unwrap();
    let out = tree.bh(&["binhost", "demo-a-20260101-000000"], &[]);
    let _ = other.kill();
    let _ = other.wait();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("is not running (its supervisor {pid} is gone)")),
        "{err}"
    );
    let shell = tree.bh(&["shell", "demo-a-20260101-000000"], &[]);
    assert_eq!(shell.status.code(), Some(2), "shell makes the same check");
}

/// Issue 23, finding 9: `status` run by a user who may not read the runs (they are root's,
/// mode 0700) says it needs root, not "no runs".
#[test]
fn status_as_a_non_root_user_says_it_needs_root() {
    use std::os::unix::process::CommandExt;
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let run = tree.path().join("work/demo-a-20260101-000000");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("plan.json"), b"{}").unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    for dir in [tree.path().to_path_buf(), tree.path().join("work")] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = Command::new(BIN)
        .args(["status", "--tree", tree.path().to_str().unwrap()])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(!stdout.contains("no runs"), "{stdout}");
    assert!(stderr.contains("needs root to read the runs"), "{stderr}");
}

/// Issue 23, finding 9: `distcc-helper` warns when its `--allow` list is wider than the
/// machine's own networks and when it listens on every address without `--listen`, and
/// removes the scratch directory a helper killed with SIGKILL left (its lock is free),
/// never a live helper's (its lock is held).
#[test]
fn distcc_helper_warns_on_wide_access_and_removes_a_killed_helpers_directory() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    // A private temporary directory: other helpers' directories in /tmp are not ours.
    let tmp = tempfile::tempdir().unwrap();
    let dead = tmp.path().join("build-helper-distcc-dead01");
    std::fs::create_dir_all(dead.join("M/u")).unwrap();
    std::fs::write(dead.join("lock"), b"").unwrap();
    let live = tmp.path().join("build-helper-distcc-live01");
    std::fs::create_dir(&live).unwrap();
    let held = std::fs::File::create(live.join("lock")).unwrap();
    // SAFETY: flock on a descriptor the test owns.
    let locked = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&held),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    };
    assert_eq!(locked, 0);
    let tmpdir = tmp.path().to_str().unwrap();
    let out = tree.bh(
        &["distcc-helper", "--allow", "0.0.0.0/0"],
        &[("TMPDIR", tmpdir)],
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // The tree has no history: the helper stops there, after its checks.
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--allow 0.0.0.0/0 is wider than this machine's own networks"),
        "{err}"
    );
    assert!(err.contains("listens on every address"), "{err}");
    assert!(
        !dead.exists(),
        "the killed helper's directory is left: {err}"
    );
    assert!(live.is_dir(), "a live helper's directory was removed");
    // Its own networks and an explicit --listen: no warning.
    let out = tree.bh(
        &[
            "distcc-helper",
            "--allow",
            "127.0.0.1",
            "--listen",
            "127.0.0.1",
        ],
        &[("TMPDIR", tmpdir)],
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("warning"), "{err}");
    drop(held);
}

/// Issue 23, finding 2, the other side: a live run is entered through the same check (the
/// supervisor holds the run's lock and is in the namespace its journal recorded), and the
/// shell lands in that namespace, where the target's environment is mounted.
#[test]
fn shell_enters_a_live_run_whose_supervisor_holds_it() {
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let tree = Tree::new();
    let mut run = Command::new(BIN)
        .args(["run", tree.starter().to_str().unwrap(), "--ui", "plain"])
        .env("BUILD_HELPER_TREE", tree.path())
        .env("TARBALL_MIRROR", mirror())
        .env("BH_OPENPGP_KEY", mirror_key())
        .env("BH_DEMO_DELAY", "0.2")
        .env_remove("BH_DEMO_FAIL")
        .env_remove("TMUX")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let id = loop {
        let started = tree.newest_run().filter(|r| {
            std::fs::read_to_string(r.join("events.jsonl"))
                .is_ok_and(|e| e.contains("\"step-started\""))
        });
        if let Some(r) = started {
            break r.file_name().unwrap().to_string_lossy().into_owned();
        }
        assert!(Instant::now() < deadline, "no step started");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = tree.bh(
        &["shell", &id, "-c", "test -d /proc/self && echo inside"],
        &[],
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("inside"));
    assert!(tree.bh(&["umount", "--all"], &[]).status.success());
    assert!(mounts_anywhere(tree.path()).is_empty());
}

/// Issue 23, finding 9, the helper's own exits: `distcc-helper` ending on an error after it
/// mounted the history (the demo's history has no distccd) takes its mounts down and removes
/// its scratch directory.
#[test]
fn distcc_helper_removes_its_directory_when_it_ends_on_an_error() {
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let tree = Tree::new();
    let out = tree.run_demo(&[], &[]);
    assert_eq!(out.status.code(), Some(0));
    let tmp = tempfile::tempdir().unwrap();
    let out = tree.bh(
        &[
            "distcc-helper",
            "--allow",
            "127.0.0.1",
            "--listen",
            "127.0.0.1",
            "--port",
            "1",
        ],
        &[("TMPDIR", tmp.path().to_str().unwrap())],
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("has no distccd"), "{err}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    assert!(mounts_anywhere(tree.path()).is_empty());
    assert!(tree.bh(&["umount", "--all"], &[]).status.success());
}

/// Issue 23, item 8: `import-starter` reads its script through the one reader of
/// user-supplied files, so a FIFO, a character device (named directly or through a link) or
/// an oversized file is refused at once with exit status 2 instead of hanging or filling
/// memory.
#[test]
fn import_starter_refuses_a_fifo_and_dev_zero_at_once() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let cwd = tempfile::tempdir().unwrap();
    let fifo = cwd.path().join("starter.sh");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let link = cwd.path().join("zero.sh");
    symlink("/dev/zero", &link).unwrap();
    let big = cwd.path().join("big.sh");
    std::fs::write(&big, vec![b'#'; 2 << 20]).unwrap();
    for (script, needle) in [
        (fifo.as_path(), "FIFO, not a regular file"),
        (
            Path::new("/dev/zero"),
            "character device, not a regular file",
        ),
        (link.as_path(), "character device, not a regular file"),
        (big.as_path(), "is larger than"),
    ] {
        let started = Instant::now();
        let out = bh_within(
            &tree,
            cwd.path(),
            &["import-starter".as_ref(), script.as_os_str()],
            10,
        );
        let text = assert_exit_2(&out, needle);
        assert!(text.contains(&*script.to_string_lossy()), "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{script:?} took {:?}",
            started.elapsed()
        );
    }
}

/// Issue 23, item 8: `check` refuses a make.conf that is a FIFO or a character device (also
/// one inside a make.conf directory), naming the file and what to do, without blocking.
#[test]
fn check_refuses_a_make_conf_that_is_a_fifo_or_a_character_device() {
    if !require_root() {
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    for (how, in_dir) in [("fifo", false), ("chardev", false), ("fifo", true)] {
        let tree = Tree::new();
        let config = tree.path().join(DEMO_A);
        let mut path = config.join("target-portage/make.conf");
        if in_dir {
            let text = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            std::fs::create_dir(&path).unwrap();
            std::fs::write(path.join("00-base"), text).unwrap();
            path = path.join("10-local");
        } else {
            std::fs::remove_file(&path).unwrap();
        }
        let needle = match how {
            "fifo" => {
                nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644))
                    .unwrap();
                "is a FIFO, not a regular file"
            }
            _ => {
                nix::sys::stat::mknod(
                    &path,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::from_bits_truncate(0o644),
                    nix::sys::stat::makedev(1, 5),
                )
                .unwrap();
                "is a character device, not a regular file"
            }
        };
        let check = bh_within(
            &tree,
            cwd.path(),
            &["check".as_ref(), config.as_os_str()],
            20,
        );
        let text = assert_exit_2(&check, needle);
        assert!(text.contains(&*path.to_string_lossy()), "{how}: {text}");
        assert!(text.contains("replace it with a file"), "{how}: {text}");
    }
}

/// The demo's `--ui tui` run in a private tmux session (its detached supervisor serves the
/// attach socket), stand-in packages taking 20 ms.
fn tui_run(tree: &Tree, session: &str) -> crate::tui::Tmux {
    let mut env = crate::tui::run_env(tree.path(), "");
    env.retain(|(k, _)| *k != "BH_DEMO_FAIL");
    for (k, v) in &mut env {
        if *k == "BH_DEMO_PKG_DELAY" {
            *v = "0.02".into();
        }
    }
    let line = format!(
        "{BIN} run {} --ui tui; echo BH-EXIT=$?; sleep 600",
        tree.starter().display()
    );
    crate::tui::Tmux::start(session, &line, &env)
}

/// Waits up to `secs` for the newest run's events to hold `needle`; returns them.
fn wait_for_event(tree: &Tree, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let events = tree
            .newest_run()
            .and_then(|r| std::fs::read_to_string(r.join("events.jsonl")).ok())
            .unwrap_or_default();
        if events.contains(needle) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "waited {secs} s for {needle} in the events:\n{}",
            tail(&events, 20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Connects to a run's attach socket and completes the hello (as `build-helper attach`).
fn attach_raw(
    run_dir: &Path,
) -> (
    std::os::unix::net::UnixStream,
    std::io::BufReader<std::os::unix::net::UnixStream>,
) {
    use build_helper::attach::proto::{self, ClientMsg, ServerMsg};
    let socket = build_helper::rundir::sockets::attach(run_dir);
    let mut w = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    proto::write(
        &mut w,
        &ClientMsg::Hello {
            protocol: proto::VERSION,
        },
    )
    .unwrap();
    let mut r = std::io::BufReader::new(w.try_clone().unwrap());
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let hello = proto::read::<ServerMsg>(&mut r).unwrap();
    assert!(matches!(hello, Some(ServerMsg::Hello { .. })), "{hello:?}");
    (w, r)
}

/// Issue 23, item 4: a client's `resize` to 65535 x 65535 (which made the supervisor try to
/// allocate ~190 GB and abort) is refused with a message to that client; a line over the
/// bound ends only that client; the run goes on to its end.
#[test]
fn a_65535_by_65535_resize_is_refused_and_the_run_finishes() {
    use build_helper::attach::proto::{self, ClientMsg, ServerMsg};
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let tree = Tree::new();
    let tmux = tui_run(&tree, "resize");
    wait_for_event(&tree, "\"step-started\"", 120);
    let run_dir = tree.run_dir();
    let (mut w, mut r) = attach_raw(&run_dir);
    let target = build_helper::config::Target::parse(TARGETS[0]).unwrap();
    proto::write(
        &mut w,
        &ClientMsg::Resize {
            target,
            cols: 65535,
            rows: 65535,
        },
    )
    .unwrap();
    let refusal = loop {
        match proto::read::<ServerMsg>(&mut r).unwrap() {
            Some(ServerMsg::Say { text }) if text.contains("refused") => break text,
            Some(_) => continue,
            None => panic!("the supervisor closed the connection instead of refusing"),
        }
    };
    assert!(
        refusal.contains("resize to 65535 x 65535 refused") && refusal.contains("1000"),
        "{refusal}"
    );
    // A second client sends a 1 MiB line: it is dropped with the reason, the run is not.
    let (mut w2, mut r2) = attach_raw(&run_dir);
    let _ = w2.write_all(&vec![b'x'; 1 << 20]);
    let dropped = loop {
        match proto::read::<ServerMsg>(&mut r2) {
            Ok(Some(ServerMsg::Dropped { reason })) => break reason,
            Ok(Some(_)) => continue,
            other => panic!("no reason given to the client: {other:?}"),
        }
    };
    assert!(dropped.contains("a line over"), "{dropped}");
    let events = wait_for_event(&tree, "\"run-finished\"", 300);
    let finished = events
        .lines()
        .find(|l| l.contains("\"run-finished\""))
        .unwrap_or_default();
    assert!(finished.contains("\"result\":\"done\""), "{finished}");
    let log = std::fs::read_to_string(run_dir.join("supervisor.log")).unwrap_or_default();
    assert!(log.contains("resize to 65535 x 65535 refused"), "{log}");
    assert!(
        !log.contains("panicked") && !log.contains("memory allocation"),
        "{log}"
    );
    // The first client gets the end of the run like any other.
    loop {
        match proto::read::<ServerMsg>(&mut r) {
            Ok(Some(ServerMsg::End { code })) => {
                assert_eq!(code, 0);
                break;
            }
            Ok(Some(_)) => continue,
            other => panic!("no end for the refused client: {other:?}"),
        }
    }
    drop(tmux);
    let deadline = Instant::now() + Duration::from_secs(30);
    while build_helper::rundir::live_pid(&run_dir).is_some() {
        assert!(Instant::now() < deadline, "the supervisor did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!build_helper::rundir::sockets::attach(&run_dir).exists());
    assert!(mounts_anywhere(tree.path()).is_empty());
}

/// Issue 23, item 4: the sockets of a supervisor killed with SIGKILL (the attach socket and
/// the workers' socket) are removed by the next `status`; a stale one found later goes with
/// `umount`.
#[test]
fn status_and_umount_remove_the_sockets_of_a_killed_supervisor() {
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let tree = Tree::new();
    let tmux = tui_run(&tree, "stale");
    wait_for_event(&tree, "\"step-started\"", 120);
    let run_dir = tree.run_dir();
    let sockets = [
        build_helper::rundir::sockets::supervisor(&run_dir),
        build_helper::rundir::sockets::attach(&run_dir),
    ];
    for s in &sockets {
        assert!(s.exists(), "{} missing while the run is live", s.display());
    }
    let pid = build_helper::rundir::live_pid(&run_dir).expect("a live supervisor");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while build_helper::rundir::live_pid(&run_dir).is_some() {
        assert!(
            Instant::now() < deadline,
            "the killed supervisor's lock stayed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for s in &sockets {
        assert!(
            s.exists(),
            "{}: SIGKILL leaves it (nothing else to test)",
            s.display()
        );
    }
    let out = tree.bh(&["status"], &[]);
    assert!(out.status.success(), "{out:?}");
    for s in &sockets {
        assert!(!s.exists(), "{} left after status", s.display());
    }
    // One left again (as a crash would), then `umount` removes it with the mounts.
    drop(std::os::unix::net::UnixListener::bind(&sockets[1]).unwrap());
    let out = tree.bh(&["umount", "--all"], &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(!sockets[1].exists(), "the attach socket left after umount");
    drop(tmux);
    assert!(
        mounts_anywhere(tree.path()).is_empty(),
        "{:?}",
        mounts_anywhere(tree.path())
    );
}
