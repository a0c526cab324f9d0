//! Runs outlive their terminal: the demo with `--ui tui` in a private tmux server whose
//! session is killed, or left with `q` + detach and attached again from another session.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::tui::{rescue_resume_and_finish, run_env, Tmux};

/// The pid of the supervisor holding a run's lock, while one holds it.
fn live_pid(run_dir: &Path) -> Option<u32> {
    build_helper::rundir::live_pid(run_dir)
}

/// The demo's environment for a tmux session, `fail` making a step fail once; stand-in
/// packages take 20 ms (enough to see steps run, short enough for a lean test).
fn env(tree: &Tree, fail: &str) -> Vec<(&'static str, String)> {
    let mut env = run_env(tree.path(), fail);
    env.retain(|(k, _)| *k != "BH_DEMO_FAIL" || !fail.is_empty());
    for (k, v) in &mut env {
        if *k == "BH_DEMO_PKG_DELAY" {
            *v = "0.02".into();
        }
    }
    env
}

/// Waits up to `secs` for the run's events to hold `needle`.
fn wait_event(tree: &Tree, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let events = std::fs::read_dir(tree.path().join("work"))
            .into_iter()
            .flatten()
            .flatten()
            .find_map(|e| std::fs::read_to_string(e.path().join("events.jsonl")).ok())
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

#[test]
fn killing_the_terminal_of_a_tui_run_leaves_the_run_going_to_its_end() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let line = format!(
        "{BIN} run {} --ui tui; echo BH-EXIT=$?; sleep 600",
        tree.starter().display()
    );
    let tmux = Tmux::start("gone", &line, &env(&tree, ""));
    // Steps are running on every side: a secondary target has started.
    wait_event(
        &tree,
        &format!("\"step-started\",\"target\":\"{}\"", TARGETS[1]),
        120,
    );
    tmux.cmd(&["kill-server"]);
    let events = wait_event(&tree, "\"run-finished\"", 300);
    let finished = events
        .lines()
        .find(|l| l.contains("\"run-finished\""))
        .unwrap_or_default();
    assert!(finished.contains("\"result\":\"done\""), "{finished}");
    let run_dir = tree.run_dir();
    let log = std::fs::read_to_string(run_dir.join("supervisor.log"))
        .expect("the detached supervisor writes supervisor.log");
    assert!(log.contains("supervisor"), "{log}");
    // The supervisor ends after the run: its lock goes, and nothing it started stays.
    let deadline = Instant::now() + Duration::from_secs(30);
    while live_pid(&run_dir).is_some() {
        assert!(Instant::now() < deadline, "the supervisor did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(tree.checkpoint()["finished"], true);
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("plan.json")).unwrap()).unwrap();
    let date = plan["date"].as_str().unwrap();
    for t in TARGETS {
        let build = tree.path().join(format!("builds/{t}.{date}"));
        assert!(build.is_dir(), "{} missing", build.display());
    }
    assert!(tree.path().join(format!("history/{date}.sqfs")).is_file());
    assert!(
        mounts_anywhere(tree.path()).is_empty(),
        "{:?}",
        mounts_anywhere(tree.path())
    );
    let workers = std::process::Command::new("pgrep")
        .args(["-f", &run_dir.display().to_string()])
        .output()
        .unwrap();
    assert!(
        workers.stdout.is_empty(),
        "processes of the run remain: {}",
        String::from_utf8_lossy(&workers.stdout)
    );
}

#[test]
fn attach_from_another_terminal_shows_every_target_and_drives_the_rescue_shell() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let failing = format!("{}:target-world", TARGETS[1]);
    let line = format!(
        "{BIN} run {} --ui tui; echo BH-EXIT=$?; sleep 600",
        tree.starter().display()
    );
    let a = Tmux::start("first", &line, &env(&tree, &failing));
    a.wait_for("first", "demo-a", 120);
    a.keys("first", &["q"]);
    a.wait_for("first", "[d]etach", 10);
    a.keys("first", &["d"]);
    let s = a.wait_for("first", "BH-EXIT=", 30);
    assert!(s.contains("BH-EXIT=0"), "{s}");
    let run = build_helper::rundir::id_of(&tree.run_dir());
    assert!(
        s.contains(&format!("build-helper attach {run}")),
        "the way back is printed:\n{s}"
    );
    assert!(live_pid(&tree.run_dir()).is_some(), "the run went on");

    let b = Tmux::start(
        "second",
        &format!("{BIN} attach; echo BH-EXIT=$?; sleep 600"),
        &env(&tree, ""),
    );
    let pane = "second";
    // The failed target's rescue shell waited for someone to attach.
    b.wait_for(pane, "(rescue x86_64-unknown-linux-musl.demo-b) / #", 120);
    let s = b.wait_for(pane, "failed 6/13 target-world", 10);
    for t in TARGETS {
        let name = t.split_once('.').unwrap().1;
        let title = s.lines().find(|l| l.contains(name)).unwrap_or_default();
        let counter = title.split_whitespace().any(|w| {
            w.split_once('/')
                .is_some_and(|(k, n)| k.parse::<u32>().is_ok() && n.parse::<u32>().is_ok())
        });
        assert!(counter, "no step counter for {t}:\n{s}");
    }
    b.keys(pane, &["2"]);
    rescue_resume_and_finish(&b, pane, &tree);
    // Attaching to the finished run shows what it did.
    let out = tree.bh(&["attach", &run], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("target-world"),
        "{out:?}"
    );
    // No live run: a clear message, exit 2.
    let out = tree.bh(&["attach"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no live run"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while live_pid(&tree.run_dir()).is_some() {
        assert!(Instant::now() < deadline, "the supervisor did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(mounts_anywhere(tree.path()).is_empty());
}

#[test]
fn stop_from_the_tui_stops_the_detached_supervisor_with_130() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let line = format!(
        "{BIN} run {} --ui tui; echo BH-EXIT=$?; sleep 600",
        tree.starter().display()
    );
    let tmux = Tmux::start("stop", &line, &env(&tree, ""));
    wait_event(
        &tree,
        &format!("\"step-started\",\"target\":\"{}\"", TARGETS[1]),
        120,
    );
    tmux.keys("stop", &["C-c"]);
    tmux.wait_for("stop", "[d]etach", 10);
    tmux.keys("stop", &["s"]);
    tmux.wait_for("stop", "Run finished", 60);
    tmux.keys("stop", &["Enter"]);
    let s = tmux.wait_for("stop", "BH-EXIT=", 60);
    assert!(s.contains("BH-EXIT=130"), "{s}");
    let events = wait_event(&tree, "\"run-finished\"", 10);
    assert!(
        events.contains("\"result\":\"interrupted\""),
        "{}",
        tail(&events, 5)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while live_pid(&tree.run_dir()).is_some() {
        assert!(Instant::now() < deadline, "the supervisor did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(mounts_anywhere(tree.path()).is_empty());
}
