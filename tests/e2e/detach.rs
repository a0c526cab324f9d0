//! Runs outlive their terminal (issue 12): a `--ui plain` run goes on after SIGHUP and the
//! loss of its terminal, a `--events json` run after its reader went away, and
//! `build-helper stop` stops a live run from another terminal as Ctrl-C would.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::tui::{run_env, Tmux};

/// Waits (up to `secs`) until `cond` holds; panics naming `what` and `context()`.
fn wait_until(secs: u64, what: &str, context: impl Fn() -> String, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn events_text(run: &Path) -> String {
    std::fs::read_to_string(run.join("events.jsonl")).unwrap_or_default()
}

/// The pid in the run's lock file while a supervisor holds it.
fn supervisor_pid(run: &Path) -> Option<u32> {
    build_helper::rundir::live_pid(run)
}

/// The `result` of the run's last `run-finished` event.
fn finished_result(run: &Path) -> Option<String> {
    events_text(run)
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "run-finished")
        .and_then(|e| e["result"].as_str().map(str::to_string))
}

fn histories(tree: &Tree) -> Vec<String> {
    std::fs::read_dir(tree.path().join("history"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn plain_run_goes_on_after_sighup_and_the_loss_of_its_terminal() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    // The supervisor is the session leader of a tmux pane: killing the tmux server hangs
    // up its terminal (SIGHUP from the kernel, then EIO on every write).
    let line = format!("exec {BIN} run {} --ui plain", tree.starter().display());
    let mut env = run_env(tree.path(), "");
    env.retain(|(k, _)| *k != "BH_DEMO_PKG_DELAY" && *k != "BH_DEMO_DELAY");
    env.push(("BH_DEMO_DELAY", "0.05".into()));
    let tmux = Tmux::start("hup", &line, &env);
    let screen = || tmux.screen("hup");
    wait_until(120, "a secondary target's first step", screen, || {
        tree.newest_run()
            .is_some_and(|r| events_text(&r).contains(&format!("\"target\":\"{}\"", TARGETS[1])))
    });
    let run = tree.newest_run().unwrap();
    let pid = supervisor_pid(&run).expect("a live supervisor");
    let sup = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(sup, nix::sys::signal::Signal::SIGHUP).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(supervisor_pid(&run), Some(pid), "SIGHUP stopped the run");
    // Now the terminal goes away for good.
    drop(tmux);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        supervisor_pid(&run),
        Some(pid),
        "the lost terminal stopped the run:\n{}",
        events_text(&run)
    );
    wait_until(
        240,
        "the run to finish",
        || events_text(&run),
        || supervisor_pid(&run).is_none(),
    );
    assert_eq!(
        finished_result(&run).as_deref(),
        Some("done"),
        "{}",
        events_text(&run)
    );
    let cp = tree.checkpoint();
    assert_eq!(cp["finished"], true);
    assert!(!histories(&tree).is_empty(), "no history archived");
    assert!(mounts_anywhere(tree.path()).is_empty());
}

#[test]
fn events_json_run_finishes_after_its_reader_went_away() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let err = std::fs::File::create(tree.path().join("stderr.txt")).unwrap();
    // `run --events json | head -1`: the reader takes one event and exits.
    let mut child = Command::new(BIN)
        .args(["run", tree.starter().to_str().unwrap(), "--events", "json"])
        .env("BUILD_HELPER_TREE", tree.path())
        .env("TARBALL_MIRROR", mirror())
        .env("BH_OPENPGP_KEY", mirror_key())
        .env("BH_DEMO_DELAY", "0.01")
        .env_remove("BH_DEMO_FAIL")
        .env_remove("TMUX")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is gone (dropped with the BufReader).
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["event"], "run-started");
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(tree.path().join("stderr.txt")).unwrap();
    assert_eq!(status.code(), Some(0), "{}", tail(&stderr, 40));
    assert!(!stderr.contains("panicked"), "{stderr}");
    let run = tree.run_dir();
    assert_eq!(finished_result(&run).as_deref(), Some("done"));
    assert!(!histories(&tree).is_empty(), "no history archived");
}

#[test]
fn stop_stops_a_live_run_from_another_terminal() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let out = std::fs::File::create(tree.path().join("run.out")).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", tree.starter().to_str().unwrap(), "--ui", "plain"])
        .env("BUILD_HELPER_TREE", tree.path())
        .env("TARBALL_MIRROR", mirror())
        .env("BH_OPENPGP_KEY", mirror_key())
        .env("BH_DEMO_DELAY", "0.3")
        .env_remove("BH_DEMO_FAIL")
        .env_remove("TMUX")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let output = || std::fs::read_to_string(tree.path().join("run.out")).unwrap_or_default();
    wait_until(120, "a step", output, || {
        tree.newest_run()
            .is_some_and(|r| events_text(&r).contains("\"step-started\""))
    });
    let run = tree.newest_run().unwrap();
    let id = run.file_name().unwrap().to_string_lossy().into_owned();
    // The run is not the caller's child here: reap it on a thread, as its shell would.
    let reaper = std::thread::spawn(move || child.wait().unwrap());

    let t0 = Instant::now();
    let got = tree.bh(&["stop"], &[]);
    let took = t0.elapsed();
    eprintln!(
        "stop latency (build-helper stop, steps): {} ms",
        took.as_millis()
    );
    let text = String::from_utf8_lossy(&got.stdout);
    assert_eq!(got.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("run {id} stopped")) && text.contains(&format!("--resume {id}")),
        "{text}"
    );
    let status = reaper.join().unwrap();
    assert_eq!(status.code(), Some(130), "{}", output());
    assert!(supervisor_pid(&run).is_none());
    assert_eq!(finished_result(&run).as_deref(), Some("interrupted"));
    assert!(mounts_anywhere(tree.path()).is_empty());

    // Nothing live any more: stop says so (exit 2), naming the tree and the run it found.
    let again = tree.bh(&["stop"], &[]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{err}");
    assert!(err.contains("no live run") && err.contains(&id), "{err}");
    let named = tree.bh(&["stop", &id], &[]);
    assert_eq!(named.status.code(), Some(2));
}
