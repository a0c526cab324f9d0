//! distcc past one machine, for real on loopback: a history archived from a stage3 with a
//! real gcc and a real distcc (scripts/distcc-stage3.sh: the real-Portage Debian stand-in
//! stage3 plus Debian's gcc and distcc) is served by `build-helper distcc-helper` on
//! 127.0.0.1; the same history, mounted with `--mount-hist` as a second build machine would,
//! runs the planned `target-env` and `target-world` steps (and a host emerge) with the
//! starter's `distcc_hosts`, with distcc's local fallback turned off, so every object file
//! must be compiled by the helper: its log must show each one. Then `build-helper binhost`
//! writes the Packages indexes with the environment's real `emaint`, and they list the
//! binary packages just built.
//!
//! The stage3 is built once (about a minute on top of the real-Portage stage3) into
//! `$BH_DISTCC_STAGE3`, else `target/bh-distcc-stage3`, and reused.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const TARGET: &str = "x86_64-unknown-linux-musl.distcc";
const HISTORY: &str = "20261130-000000";
/// The C files of the test package (tests/e2e/distcc-tree/.../test-dist/hello/files).
const SOURCES: [&str; 6] = [
    "main.c", "part1.c", "part2.c", "part3.c", "part4.c", "part5.c",
];

pub(crate) fn distcc_stage3() -> PathBuf {
    static STAGE3: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    STAGE3
        .get_or_init(|| {
            let base = crate::portage::portage_stage3();
            let dir = std::env::var_os("BH_DISTCC_STAGE3")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    Path::new(BIN)
                        .ancestors()
                        .nth(2)
                        .unwrap()
                        .join("bh-distcc-stage3")
                });
            let status = Command::new(format!("{SRC}/scripts/distcc-stage3.sh"))
                .arg(&base)
                .arg(&dir)
                .status()
                .expect("run distcc-stage3.sh");
            assert!(status.success(), "scripts/distcc-stage3.sh failed");
            dir
        })
        .clone()
}

/// A tree with the distcc test configurations and `history/<HISTORY>.sqfs` archived from
/// `stage3` by the product's own archiver.
fn tree_with_history(stage3: &Path) -> tempfile::TempDir {
    let work = tempfile::Builder::new()
        .prefix("bh-e2e-distcc-")
        .tempdir()
        .unwrap();
    let tree = work.path();
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{SRC}/tests/e2e/distcc-tree/configs"))
        .arg(tree)
        .status()
        .unwrap();
    assert!(st.success());
    std::os::unix::fs::symlink("host-distcc", tree.join("configs/host")).unwrap();
    for sub in [
        "binpkgs/host",
        "builds",
        "history",
        "work",
        "distfiles",
        "starters",
    ] {
        std::fs::create_dir_all(tree.join(sub)).unwrap();
    }
    std::fs::create_dir_all(tree.join("binpkgs").join(TARGET)).unwrap();
    let opts = build_helper::history::ArchiveOptions {
        history_type: build_helper::starter::HistoryType::Squashfs,
        compressor: "zstd".into(),
        level: Some(3),
    };
    let out = build_helper::history::archive(stage3, tree, HISTORY, &opts, 2)
        .expect("archiving the history")
        .expect("the build machine has mksquashfs (scripts/install-deps.sh)");
    assert_eq!(out, tree.join(format!("history/{HISTORY}.sqfs")));
    work
}

/// The running helper; stopped (SIGTERM) and reaped when dropped.
struct Helper {
    child: Child,
    log: PathBuf,
}

impl Helper {
    fn start(tree: &Path, args: &[&str]) -> Helper {
        let log = tree.join("helper.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .arg("distcc-helper")
            .arg("--tree")
            .arg(tree)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Helper { child, log }
    }

    fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Waits for distccd to listen; returns the DISTCC_HOSTS entry the helper printed.
    fn wait_ready(&mut self) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            let entry = log
                .lines()
                .find_map(|l| l.strip_prefix("distcc-helper: DISTCC_HOSTS entry: "));
            if let (Some(entry), true) = (entry, log.contains("listening on")) {
                return entry.trim().to_string();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("distcc-helper exited ({status}) before listening:\n{log}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "distcc-helper does not listen after 60 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ctrl-C, as a user stops it; returns its exit status.
    fn interrupt(&mut self) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "distcc-helper still runs 30 s after SIGINT"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// Unmounts a `--mount-hist` run of the tree when dropped (also after a failed assertion).
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .args(["umount", "--all", "--tree"])
            .arg(self.0)
            .output();
    }
}

fn bh(tree: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("BUILD_HELPER_TREE", tree)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = stdout_then_stderr(&out);
    eprintln!("$ build-helper {}\n{}", args.join(" "), tail(&text, 60));
    (out.status.success(), text)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `COMPILE_OK` job summaries in distccd's log that name `file`.
fn jobs_for(log: &str, file: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("COMPILE_OK") && l.split_whitespace().last() == Some(file))
        .count()
}

#[test]
fn distcc_helper_compiles_a_runs_jobs_from_a_history_and_the_binhost_lists_the_packages() {
    if !require_root() {
        return;
    }
    let stage3 = distcc_stage3();
    let _heavy = heavy_lock();
    let work = tree_with_history(&stage3);
    let tree = work.path();

    let port = free_port().to_string();
    let mut helper = Helper::start(
        tree,
        &[
            "--history",
            HISTORY,
            "--listen",
            "127.0.0.1",
            "--port",
            &port,
            "--allow",
            "127.0.0.1",
            "--jobs",
            "2",
        ],
    );
    let entry = helper.wait_ready();
    assert_eq!(entry, format!("127.0.0.1:{port}/2,lzo"));

    // The starter of the machine sending jobs: the helper's entry, local fallback off
    // (distcc(1): DISTCC_FALLBACK=0 fails instead of compiling locally; DISTCC_SKIP_LOCAL_RETRY
    // stops the local retry after a remote failure).
    let starter = tree.join("starters/distcc.toml");
    std::fs::write(
        &starter,
        format!(
            "[[target]]\ntuple = \"x86_64-unknown-linux-musl\"\nname = \"distcc\"\n\n\
             [options]\nui = \"plain\"\nmount_type = \"bind\"\ntmp_type = \"none\"\n\
             umount_ask = false\njobs = 2\ndistcc_hosts = \"{entry}\"\n\n\
             [env]\nDISTCC_FALLBACK = \"0\"\nDISTCC_SKIP_LOCAL_RETRY = \"1\"\n"
        ),
    )
    .unwrap();
    let starter_arg = starter.to_str().unwrap();
    let (ok, text) = bh(
        tree,
        &["run", starter_arg, "--mount-hist", "--history", HISTORY],
    );
    let _mounted = Mounted(tree);
    assert!(ok, "--mount-hist failed");
    let run = text
        .split("as run ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("the run id")
        .to_string();
    let plan: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tree.join("work").join(&run).join("plan.json")).unwrap(),
    )
    .unwrap();
    let planned = &plan["targets"][0];
    assert_eq!(planned["env"]["FEATURES"], "distcc");
    assert_eq!(planned["env"]["DISTCC_HOSTS"], entry.as_str());
    assert_eq!(planned["env"]["MAKEOPTS"], "-j4", "2 local + 2 helper jobs");

    // The planned steps, exactly as the plan has them, in the target's environment.
    for name in ["target-env", "target-world"] {
        let script = planned["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no step {name}"))["script"]
            .as_str()
            .unwrap()
            .to_string();
        let (ok, text) = bh(tree, &["shell", &run, TARGET, "-c", &script]);
        assert!(ok, "step {name} failed");
        if name == "target-world" {
            assert!(
                text.contains(">>> Emerging (1 of 1) test-dist/hello-1"),
                "built from source"
            );
        }
    }
    // The build environment's own emerge (host packages) uses the helper too.
    let (ok, _) = bh(
        tree,
        &["shell", &run, TARGET, "-c", "emerge -1q test-dist/hello"],
    );
    assert!(ok, "host emerge failed");

    let (ok, text) = bh(tree, &["binhost", &run]);
    assert!(ok, "binhost failed");
    for dir in ["binpkgs/host".to_string(), format!("binpkgs/{TARGET}")] {
        assert!(
            text.contains(&format!("{dir}: Packages index written")),
            "{dir}"
        );
        let index = std::fs::read_to_string(tree.join(&dir).join("Packages"))
            .unwrap_or_else(|e| panic!("{dir}/Packages: {e}"));
        assert!(
            index.contains("CPV: test-dist/hello-1\n"),
            "{dir}/Packages:\n{index}"
        );
        assert!(
            index.contains("PATH: test-dist/hello/hello-1"),
            "{dir}/Packages names the gpkg file:\n{index}"
        );
    }

    let log = helper.log();
    let root = log
        .lines()
        .find_map(|l| l.strip_prefix("distcc-helper: the environment is mounted at "))
        .and_then(|l| l.split_whitespace().next())
        .map(PathBuf::from)
        .expect("the helper says where it mounted the history");
    assert!(
        mounts_anywhere(&root).len() >= 4,
        "history, overlay, proc, dev"
    );
    assert_eq!(helper.interrupt(), Some(0), "Ctrl-C is a normal stop");
    let mdir = root.parent().and_then(Path::parent).unwrap();
    assert_eq!(
        mounts_anywhere(mdir),
        Vec::<String>::new(),
        "helper mounts left"
    );
    assert!(!mdir.exists(), "{} left behind", mdir.display());
    let log = helper.log();
    eprintln!("--- distcc-helper log\n{}", tail(&log, 40));
    for file in SOURCES {
        // Once for the target's world step, once for the host emerge.
        assert_eq!(
            jobs_for(&log, file),
            2,
            "{file} compiled by the helper twice:\n{log}"
        );
    }
    assert!(!log.contains("COMPILE_ERROR"));
    // With the helper gone the same build fails: the run's emerges really have local
    // fallback off, so the jobs above could only have been compiled by the helper.
    let (ok, text) = bh(
        tree,
        &["shell", &run, TARGET, "-c", "emerge -1 test-dist/hello"],
    );
    assert!(!ok, "the build succeeded without its helper");
    assert!(
        text.contains("fallbacks are disabled"),
        "distcc's own error"
    );
    drop(_mounted);
    assert_eq!(
        mounts_anywhere(tree),
        Vec::<String>::new(),
        "mounts left behind"
    );
}

#[test]
fn distcc_helper_says_how_to_add_distcc_when_the_history_has_no_distccd() {
    if !require_root() {
        return;
    }
    let stage3 = crate::portage::portage_stage3();
    let _heavy = heavy_lock();
    let work = tree_with_history(&stage3);
    let tree = work.path();
    let mut helper = Helper::start(
        tree,
        &[
            "--listen",
            "127.0.0.1",
            "--port",
            &free_port().to_string(),
            "--allow",
            "127.0.0.1/32",
        ],
    );
    let status = helper.child.wait().unwrap();
    let log = helper.log();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains("has no distccd: add sys-devel/distcc to the host world"),
        "{log}"
    );
    assert_eq!(mounts_anywhere(tree), Vec::<String>::new());
}
