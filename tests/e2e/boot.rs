//! `build-helper boot` for real: the demo is built once (its x86_64 targets make a real kernel,
//! Debian's, a real initramfs with a real busybox and real squashfs images), then booted in
//! QEMU with TCG (software emulation, as in CI) three ways: the images inside the initramfs
//! (demo-a, not split), over virtio 9p with `squash_stack` (demo-b, split.base and
//! split.extra), and with `docache` (demo-b, the images copied into memory). Each asserts the
//! booted line of the base image's init, the lower layers it names and the files behind them.
//! QEMU and the kernel package come from scripts/install-deps.sh, which these tests run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::common::*;

/// How many boot tests still need the shared demo build; the last one removes it.
static USERS: AtomicUsize = AtomicUsize::new(3);
/// The shared demo build's tree, once built.
static TREE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The demo, built once for the boot tests (a tree of its own, removed by the last test).
fn built_tree() -> PathBuf {
    let mut guard = TREE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = guard.as_ref() {
        return p.clone();
    }
    let st = Command::new(format!("{SRC}/scripts/install-deps.sh"))
        .status()
        .expect("run scripts/install-deps.sh");
    assert!(st.success(), "scripts/install-deps.sh failed");
    let tree = Tree::new();
    // The demo build runs its workers in parallel: not beside the latency measurement.
    let heavy = heavy_lock();
    let out = tree.run_demo(&[], &[]);
    drop(heavy);
    assert_eq!(out.status.code(), Some(0), "the demo build failed");
    // Kept past this function (the run unmounted everything): the last boot test removes it.
    let path = tree.dir.path().to_path_buf();
    std::mem::forget(tree);
    *guard = Some(path.clone());
    path
}

/// Ends a boot test: the last one removes the shared tree (also when a test failed).
struct Release;
impl Drop for Release {
    fn drop(&mut self) {
        if USERS.fetch_sub(1, Ordering::SeqCst) == 1 {
            let taken = TREE.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(p) = taken {
                let _ = Command::new(BIN)
                    .args(["umount", "--all", "--tree"])
                    .arg(&p)
                    .output();
                let _ = std::fs::remove_dir_all(&p);
            }
        }
    }
}

/// `build-helper boot TARGET --accel tcg --expect 'booted TARGET' EXTRA...` in `tree`.
fn boot(tree: &Path, target: &str, extra: &[&str]) -> (Output, String) {
    let expect = format!("booted {target}");
    let mut args = vec![
        "boot",
        target,
        "--accel",
        "tcg",
        "--expect",
        &expect,
        "--timeout",
        "120",
    ];
    args.extend(extra);
    let out = Command::new(BIN)
        .args(&args)
        .env("BUILD_HELPER_TREE", tree)
        .output()
        .expect("run build-helper boot");
    let console = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "$ build-helper {}\n--- console (tail)\n{}\n--- stderr\n{}",
        args.join(" "),
        tail(&console, 15),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, console)
}

/// The line of the console starting with `prefix`, without its line end.
fn line<'a>(console: &'a str, prefix: &str) -> &'a str {
    console
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line `{prefix}...` on the console"))
}

/// The newest build directory of `target` in `tree`.
fn build_dir(tree: &Path, target: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(tree.join("builds"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(target))
        .collect();
    dirs.sort();
    dirs.pop().unwrap()
}

fn shared() -> (PathBuf, Release) {
    require_root();
    let release = Release;
    (built_tree(), release)
}

#[test]
fn boot_with_the_images_inside_the_initramfs() {
    let (tree, _release) = shared();
    let _heavy = heavy_lock();
    let t = "x86_64-unknown-linux-musl.demo-a";
    let (out, console) = boot(&tree, t, &[]);
    assert_eq!(out.status.code(), Some(0));
    // The default stack is the world tree, children above parents; no medium is attached.
    assert_eq!(
        line(&console, "build-helper: booted"),
        format!("build-helper: booted {t} with images tools:net:media:base")
    );
    let files = line(&console, "build-helper: image files");
    // The initramfs's own files (deleted from it by switch_root, kept by their loop devices).
    let words: Vec<&str> = files.split(' ').collect();
    for image in ["/tools", "/net", "/media", "/base"] {
        assert!(words.contains(&image), "{files}");
    }
    assert!(!files.contains("/mnt/"), "{files}");
    assert!(!console.contains("squash_type=9p"));
    let transcript = std::fs::read_to_string(build_dir(&tree, t).join("boot-console.log")).unwrap();
    assert!(transcript.contains(&format!("booted {t}")));
}

#[test]
fn boot_over_9p_with_squash_stack() {
    let (tree, _release) = shared();
    let _heavy = heavy_lock();
    let t = "x86_64-unknown-linux-musl.demo-b";
    let (out, console) = boot(&tree, t, &["--stack", "net"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(console.contains("squash_dev=build squash_type=9p squash_stack=net"));
    assert_eq!(
        line(&console, "build-helper: booted"),
        format!("build-helper: booted {t} with images net:base")
    );
    // Mounted from the medium, not copied.
    let files = line(&console, "build-helper: image files");
    assert!(files.contains("/mnt/medium/net"), "{files}");
    assert!(files.contains("/mnt/medium/base"), "{files}");
}

#[test]
fn boot_with_docache_copies_the_images_into_memory() {
    let (tree, _release) = shared();
    let _heavy = heavy_lock();
    let t = "x86_64-unknown-linux-musl.demo-b";
    let (out, console) = boot(&tree, t, &["--stack", "net", "--docache"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(console.contains("squash_stack=net docache"));
    assert_eq!(
        line(&console, "build-helper: booted"),
        format!("build-helper: booted {t} with images net:base")
    );
    let files = line(&console, "build-helper: image files");
    assert!(files.contains("/mnt/cache/net"), "{files}");
    assert!(files.contains("/mnt/cache/base"), "{files}");
    assert!(!files.contains("/mnt/medium"), "{files}");
}
