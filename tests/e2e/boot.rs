//! `build-helper boot` for real: the demo is built once (its targets make a real kernel,
//! Debian's amd64 and arm64 ones, a real initramfs with a real busybox and real squashfs
//! images; no stand-in init anywhere), then booted in QEMU with TCG (software emulation, as in
//! CI) to the image's own busybox init, and `--run` types commands on the booted console:
//! the images inside the initramfs (demo-a, not split), over virtio 9p with `squash_stack`
//! (demo-b, split.base and split.extra), with `docache` (demo-b, the images copied into
//! memory), and the aarch64 target under `qemu-system-aarch64 -M virt` (demo-c). Each asserts
//! on what the booted system reports: pid 1, the root overlay's layers, the files behind the
//! loop devices, the initramfs's /mnt kept at /mnt/tmp. QEMU and the kernel packages come from
//! scripts/install-deps.sh, which these tests run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::common::*;

/// How many boot tests still need the shared demo build; the last one removes it.
static USERS: AtomicUsize = AtomicUsize::new(5);
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

/// `build-helper boot TARGET --accel tcg --run CMD EXTRA...` in `tree`: its exit status and
/// the command's output (standard output), timed (the boot time is reported).
fn boot_run(tree: &Path, target: &str, cmd: &str, extra: &[&str]) -> (Output, String) {
    let mut args = vec![
        "boot",
        target,
        "--accel",
        "tcg",
        "--run",
        cmd,
        "--timeout",
        "240",
    ];
    args.extend(extra);
    let t = std::time::Instant::now();
    let out = Command::new(BIN)
        .args(&args)
        .env("BUILD_HELPER_TREE", tree)
        .output()
        .expect("run build-helper boot");
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "$ build-helper {} ({:.1} s)\n--- output\n{output}\n--- console (tail)\n{}",
        args.join(" "),
        t.elapsed().as_secs_f64(),
        tail(&String::from_utf8_lossy(&out.stderr), 25),
    );
    (out, output)
}

/// The commands every boot test runs: pid 1's program and arguments, whether it is the
/// image's busybox, the root overlay's lower layers, the files behind the loop devices (one
/// line), the squashfs mounts, and the initramfs's /mnt as the booted system sees it.
const REPORT: &str = "readlink /proc/1/exe; tr '\\0' ' ' < /proc/1/cmdline; echo; \
    [ /proc/1/exe -ef /bin/busybox ] && echo pid1-is-the-image-busybox; \
    sed -n 's/^overlay \\/ overlay .*lowerdir=\\([^,]*\\).*/\\1/p' /proc/mounts; \
    cat /sys/block/loop*/loop/backing_file | tr '\\n' ' '; echo; \
    grep -c ' squashfs ' /proc/mounts; ls /mnt/tmp | tr '\\n' ' '; echo";

/// The first seven lines of the output (those of [`REPORT`]), by name.
struct Report {
    exe: String,
    cmdline: String,
    same: String,
    lower: String,
    files: String,
    squashfs: String,
    mnt: String,
}

fn report(output: &str) -> Report {
    let l: Vec<&str> = output.lines().collect();
    assert!(l.len() >= 7, "{output}");
    Report {
        exe: l[0].into(),
        cmdline: l[1].trim_end().into(),
        same: l[2].into(),
        lower: l[3].into(),
        files: l[4].trim_end().into(),
        squashfs: l[5].into(),
        mnt: l[6].trim_end().into(),
    }
}

/// Pid 1 is the busybox the image installed, run as `init` by the initramfs (no other init
/// is in the images; Gentoo's busybox without make-symlinks installs none).
fn assert_busybox_init(r: &Report) {
    assert_eq!(r.exe, "/usr/bin/busybox");
    assert_eq!(r.cmdline, "/bin/busybox init");
    assert_eq!(r.same, "pid1-is-the-image-busybox");
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

/// The shared demo build, held until the returned release drops; `None` when the test skips
/// (not root).
fn shared() -> Option<(PathBuf, Release)> {
    if !require_root() {
        return None;
    }
    let release = Release;
    Some((built_tree(), release))
}

#[test]
fn boot_runs_on_the_image_busybox_init_with_the_images_inside_the_initramfs() {
    let Some((tree, _release)) = shared() else {
        return;
    };
    let _heavy = heavy_lock();
    let t = "x86_64-unknown-linux-musl.demo-a";
    let cmd = format!(
        "{REPORT}; ls /mnt/tmp/base.dir/usr/bin | tr '\\n' ' '; echo; \
         cat /sys/module/loop/parameters/max_loop; exit 3"
    );
    let (out, output) = boot_run(&tree, t, &cmd, &[]);
    // The command's own status, through the console.
    assert_eq!(out.status.code(), Some(3));
    let r = report(&output);
    assert_busybox_init(&r);
    // The default stack is the world tree, children above parents; no medium is attached.
    assert_eq!(
        r.lower,
        "/mnt/tools.dir:/mnt/net.dir:/mnt/media.dir:/mnt/base.dir"
    );
    assert_eq!(r.squashfs, "4");
    // The initramfs's own files (deleted from it by switch_root, kept by their loop devices).
    for image in ["/tools", "/net", "/media", "/base"] {
        assert!(r.files.split(' ').any(|w| w == image), "{}", r.files);
    }
    // The initramfs's /mnt, kept at /mnt/tmp as the original does: the layers stay reachable.
    for d in ["base.dir", "tools.dir", "cache", "root"] {
        assert!(r.mnt.split(' ').any(|w| w == d), "{}", r.mnt);
    }
    let extra: Vec<&str> = output.lines().skip(7).collect();
    // The base image holds what Gentoo's busybox ebuild installs without make-symlinks: the
    // binary, bb and ash; the applets were linked at boot, in memory.
    assert_eq!(extra, ["ash bb busybox ", "8"]);
    let transcript = std::fs::read_to_string(build_dir(&tree, t).join("boot-console.log")).unwrap();
    assert!(transcript.contains("Please press Enter to activate this console"));
}

#[test]
fn boot_over_9p_with_squash_stack_keeps_the_medium_reachable() {
    let Some((tree, _release)) = shared() else {
        return;
    };
    let _heavy = heavy_lock();
    let t = "x86_64-unknown-linux-musl.demo-b";
    let cmd = format!("{REPORT}; ls /mnt/tmp/medium | tr '\\n' ' '");
    let (out, output) = boot_run(&tree, t, &cmd, &["--stack", "net"]);
    assert_eq!(out.status.code(), Some(0));
    let console = String::from_utf8_lossy(&out.stderr);
    assert!(console.contains("squash_dev=build squash_type=9p squash_stack=net"));
    let r = report(&output);
    assert_busybox_init(&r);
    assert_eq!(r.lower, "/mnt/net.dir:/mnt/base.dir");
    // Mounted from the medium, not copied; the medium is at /mnt/tmp/medium after boot.
    assert!(r.files.contains("/mnt/medium/net"), "{}", r.files);
    assert!(r.files.contains("/mnt/medium/base"), "{}", r.files);
    let medium: Vec<&str> = output.lines().nth(7).unwrap_or("").split(' ').collect();
    assert!(
        medium.contains(&"base") && medium.contains(&"net"),
        "{medium:?}"
    );
}

#[test]
fn boot_with_docache_copies_the_images_into_memory_and_keeps_them_reachable() {
    let Some((tree, _release)) = shared() else {
        return;
    };
    let _heavy = heavy_lock();
    let t = "x86_64-unknown-linux-musl.demo-b";
    let cmd = format!("{REPORT}; ls /mnt/tmp/cache | tr '\\n' ' '; grep -c ' 9p ' /proc/mounts");
    let (out, output) = boot_run(&tree, t, &cmd, &["--stack", "net", "--docache"]);
    // grep -c found no 9p mount: the medium was released.
    assert_eq!(out.status.code(), Some(1));
    let console = String::from_utf8_lossy(&out.stderr);
    assert!(console.contains("squash_stack=net docache"));
    let r = report(&output);
    assert_busybox_init(&r);
    assert_eq!(r.lower, "/mnt/net.dir:/mnt/base.dir");
    assert!(r.files.contains("/mnt/cache/net"), "{}", r.files);
    assert!(r.files.contains("/mnt/cache/base"), "{}", r.files);
    assert!(!r.files.contains("/mnt/medium"), "{}", r.files);
    assert_eq!(output.lines().nth(7), Some("base net 0"));
}

#[test]
fn boot_runs_the_aarch64_target_on_its_busybox_under_the_virt_machine() {
    let Some((tree, _release)) = shared() else {
        return;
    };
    let _heavy = heavy_lock();
    let t = "aarch64-unknown-linux-musl.demo-c";
    let cmd = format!("{REPORT}; uname -m");
    let (out, output) = boot_run(&tree, t, &cmd, &[]);
    assert_eq!(out.status.code(), Some(0));
    let console = String::from_utf8_lossy(&out.stderr);
    assert!(console.contains("qemu-system-aarch64 -machine virt -accel tcg -cpu cortex-a57"));
    assert!(console.contains("console=ttyAMA0"));
    let r = report(&output);
    assert_busybox_init(&r);
    assert_eq!(r.lower, "/mnt/base.dir");
    assert_eq!(r.squashfs, "1");
    assert_eq!(output.lines().nth(7), Some("aarch64"));
}

#[test]
fn boot_without_worlds_lets_the_init_stack_an_extra_image_as_the_original() {
    let Some((tree, _release)) = shared() else {
        return;
    };
    let _heavy = heavy_lock();
    // demo-c has no world image, so boot passes no squash_stack. A copy of its build with an
    // image named `extra` beside it (demo-b's net image), shared over 9p.
    let c = build_dir(&tree, "aarch64-unknown-linux-musl.demo-c");
    let copy = tree.join("builds/aarch64-unknown-linux-musl.demo-c.00000000-extra");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&c)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    let net = build_dir(&tree, "x86_64-unknown-linux-musl.demo-b").join("net");
    std::fs::copy(net, copy.join("extra")).unwrap();
    let (out, output) = boot_run(&tree, copy.to_str().unwrap(), REPORT, &["--medium", "9p"]);
    assert_eq!(out.status.code(), Some(0));
    let console = String::from_utf8_lossy(&out.stderr);
    assert!(console.contains("squash_dev=build squash_type=9p"));
    assert!(!console.contains("squash_stack"));
    let r = report(&output);
    assert_busybox_init(&r);
    assert_eq!(r.lower, "/mnt/extra.dir:/mnt/base.dir");
    // base is inside the initramfs: images from the medium are copied into memory.
    assert!(r.files.contains("/mnt/cache/extra"), "{}", r.files);
}
