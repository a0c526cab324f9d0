//! Shared helpers of the end-to-end tests: a throw-away tree with the demo configurations, the
//! demo/test stand-in mirror (built once per test process), running the binary, and finding
//! mounts in every mount namespace of the machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::temp_mirror;

pub const BIN: &str = env!("CARGO_BIN_EXE_build-helper");
pub const SRC: &str = env!("CARGO_MANIFEST_DIR");

pub use crate::skip::{require_root, require_tool};

/// Serialises the tests that load both cores (real emerge) with the one that measures
/// latencies (toolchain-ready -> first step), so neither disturbs the other on a small
/// machine. A poisoned lock (a failed test) is taken over: the failure is reported there.
pub fn heavy_lock() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The demo mirror, built once per test process and removed when it exits: `file://` URL.
pub fn mirror() -> String {
    let dir = temp_mirror::demo_mirror("bh-e2e-mirror");
    format!("file://{}", dir.display())
}

/// The throw-away public key that signs the demo mirror (made by demo-mirror.sh).
pub fn mirror_key() -> PathBuf {
    PathBuf::from(mirror().trim_start_matches("file://")).join("demo-release.asc")
}

/// A fresh tree: the repository's configs and starters copied into a temporary directory.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn new() -> Tree {
        let dir = tempfile::Builder::new()
            .prefix("bh-e2e-tree-")
            .tempdir()
            .expect("tempdir");
        for sub in ["configs", "starters"] {
            let status = Command::new("cp")
                .arg("-a")
                .arg(format!("{SRC}/{sub}"))
                .arg(dir.path())
                .status()
                .expect("cp");
            assert!(status.success());
        }
        for sub in ["history", "builds", "distfiles", "work", "binpkgs"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Tree { dir }
    }

    /// An empty tree (a temporary directory named `<prefix>XXXXXX`) that a test fills itself;
    /// dropped like any other (live supervisors stopped, mounts removed).
    pub fn bare(prefix: &str) -> Tree {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("tempdir");
        Tree { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn starter(&self) -> PathBuf {
        self.path().join("starters/demo.toml")
    }

    /// Runs `build-helper ARGS` in this tree with the demo mirror and fast stand-ins.
    pub fn bh(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("BUILD_HELPER_TREE", self.path())
            .env("TARBALL_MIRROR", mirror())
            .env("BH_OPENPGP_KEY", mirror_key())
            .env("BH_DEMO_DELAY", "0.01")
            .env_remove("BH_DEMO_FAIL")
            .env_remove("TMUX");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run build-helper");
        eprintln!(
            "$ build-helper {}\n--- stdout\n{}\n--- stderr\n{}\n--- exit {:?}",
            args.join(" "),
            tail(&String::from_utf8_lossy(&out.stdout), 60),
            String::from_utf8_lossy(&out.stderr),
            out.status.code()
        );
        out
    }

    /// `build-helper run starters/demo.toml --ui plain EXTRA...` with `env`; then waits a
    /// second, since runs are named by the second they start.
    pub fn run_demo(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let starter = self.starter();
        let mut args = vec!["run", starter.to_str().unwrap(), "--ui", "plain"];
        args.extend(extra);
        let out = self.bh(&args, env);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        out
    }

    /// The newest run directory under work/.
    pub fn run_dir(&self) -> PathBuf {
        self.newest_run().expect("a run directory")
    }

    /// The newest run directory (one with a plan), if one exists yet.
    pub fn newest_run(&self) -> Option<PathBuf> {
        let mut runs: Vec<PathBuf> = std::fs::read_dir(self.path().join("work"))
            .ok()?
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("plan.json").exists())
            .collect();
        runs.sort();
        runs.pop()
    }

    /// The newest run's checkpoint as on disk: its snapshot with its log replayed.
    pub fn checkpoint(&self) -> serde_json::Value {
        let cp = build_helper::rundir::load_checkpoint(&self.run_dir(), None).unwrap();
        serde_json::to_value(cp).unwrap()
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.run_dir().join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn log(&self, target: &str) -> String {
        std::fs::read_to_string(self.run_dir().join("logs").join(format!("{target}.log")))
            .unwrap_or_default()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        // A failed test must not leave a run going (a detached `--ui tui` supervisor outlives
        // its test): stop every live supervisor of the tree as `build-helper stop` would.
        let runs = std::fs::read_dir(self.path().join("work"))
            .into_iter()
            .flatten()
            .flatten();
        for run in runs {
            let live = || build_helper::rundir::live_pid(&run.path());
            let Some(pid) = live() else {
                continue;
            };
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while live().is_some() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        // Never leave mounts behind, even when a test failed half-way.
        let _ = Command::new(BIN)
            .args(["umount", "--all", "--tree"])
            .arg(self.path())
            .output();
    }
}

/// A finished command's standard output, then its standard error, as one text (lossy UTF-8).
pub fn stdout_then_stderr(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Every mount point under `dir`, in every mount namespace of the machine.
pub fn mounts_anywhere(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
            continue;
        };
        for line in info.lines() {
            if let Some(mp) = line.split(' ').nth(4) {
                if Path::new(mp).starts_with(dir) {
                    out.push(format!("pid {pid}: {mp}"));
                }
            }
        }
    }
    out
}

/// Steps of `target` in the checkpoint as (name, state, attempts).
pub fn steps(cp: &serde_json::Value, target: &str) -> Vec<(String, String, u64)> {
    cp["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            format!(
                "{}.{}",
                t["target"]["tuple"].as_str().unwrap(),
                t["target"]["name"].as_str().unwrap()
            ) == target
        })
        .unwrap_or_else(|| panic!("no target {target}"))["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
                s["attempts"].as_u64().unwrap(),
            )
        })
        .collect()
}

pub const TARGETS: [&str; 3] = [
    "x86_64-unknown-linux-musl.demo-a",
    "x86_64-unknown-linux-musl.demo-b",
    "aarch64-unknown-linux-musl.demo-c",
];
