//! The TUI on a real terminal: the demo starter runs with `--ui tui` inside a detached tmux
//! session (a private tmux server), driven with send-keys and read with capture-pane.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

/// A private tmux server with one session running a command; killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` (a shell line) in a detached 160x48 session with `env` set.
    pub fn start(name: &str, command: &str, env: &[(&str, String)]) -> Tmux {
        let t = Tmux {
            socket: format!("bh-e2e-{name}-{}", std::process::id()),
        };
        let mut cmd = Command::new("tmux");
        cmd.args([
            "-L",
            &t.socket,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            name,
        ]);
        cmd.args(["-x", "160", "-y", "48"]);
        for (k, v) in env {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        cmd.arg(command).env_remove("TMUX");
        let st = cmd.status().expect("run tmux (install tmux)");
        assert!(st.success(), "tmux new-session failed");
        t
    }

    /// Runs a tmux command on this server.
    pub fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types keys (tmux key names or literal text) into `pane`.
    pub fn keys(&self, pane: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", pane];
        args.extend_from_slice(keys);
        self.cmd(&args);
        std::thread::sleep(Duration::from_millis(300));
    }

    /// The screen of `pane`.
    pub fn screen(&self, pane: &str) -> String {
        self.cmd(&["capture-pane", "-p", "-t", pane])
    }

    /// Waits until `pane` shows `needle`; panics with the screen after `secs` seconds.
    pub fn wait_for(&self, pane: &str, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen(pane);
            if s.contains(needle) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "waited {secs} s for {needle:?}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
        // tmux leaves its socket file behind when the server is killed (also by a test that
        // killed it itself): remove it. `-L NAME` is `$TMUX_TMPDIR/tmux-UID/NAME` (tmux(1)).
        let dir = std::env::var_os("TMUX_TMPDIR").unwrap_or_else(|| "/tmp".into());
        let uid = nix::unistd::getuid();
        let _ = std::fs::remove_file(
            Path::new(&dir)
                .join(format!("tmux-{uid}"))
                .join(&self.socket),
        );
    }
}

/// What the tests give the run: the demo mirror, a small stand-in delay, the failing step.
pub fn run_env(tree: &Path, fail: &str) -> Vec<(&'static str, String)> {
    vec![
        ("BUILD_HELPER_TREE", tree.display().to_string()),
        ("TARBALL_MIRROR", mirror()),
        ("BH_OPENPGP_KEY", mirror_key().display().to_string()),
        ("BH_DEMO_DELAY", "0.05".into()),
        // Each stand-in package takes a moment: long enough to see package progress.
        ("BH_DEMO_PKG_DELAY", "0.2".into()),
        ("BH_DEMO_FAIL", fail.into()),
        ("TERM", "xterm-256color".into()),
    ]
}

/// The starter's `pass_env` variables (BH_DEMO_FAIL, BH_DEMO_DELAY) are set on the command
/// line only, not in the tmux session: in tmux mode the supervisor must hand them to the
/// windows it opens (their shells get the tmux server's environment, not its own).
fn pass_env_prefix(fail: &str) -> String {
    format!("env BH_DEMO_DELAY=0.05 BH_DEMO_FAIL={fail}")
}

/// Starts the demo in tmux session `session` with `--ui UI`, demo-b's target-world failing
/// once; `prefix` goes before the binary (e.g. `env -u TMUX`).
fn failing_run(session: &str, prefix: &str, ui: &str) -> (Tree, Tmux) {
    failing_run_with(session, prefix, ui, |_| {})
}

/// [`failing_run`] with `prepare` applied to the tree first (e.g. to edit the starter).
fn failing_run_with(
    session: &str,
    prefix: &str,
    ui: &str,
    prepare: impl FnOnce(&Tree),
) -> (Tree, Tmux) {
    let tree = Tree::new();
    prepare(&tree);
    let failing = format!("{}:target-world", TARGETS[1]);
    let line = format!(
        "{prefix} {} {BIN} run {} --ui {ui}; echo BH-EXIT=$?; sleep 600",
        pass_env_prefix(&failing),
        tree.starter().display()
    );
    let env: Vec<_> = run_env(tree.path(), &failing)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("BH_DEMO_"))
        .collect();
    let tmux = Tmux::start(session, &line, &env);
    (tree, tmux)
}

/// Waits up to 120 s for the window named `name` in `session`; panics with the supervisor's
/// window.
fn wait_window(tmux: &Tmux, session: &str, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(w) = window_of(tmux, session, name) {
            return w;
        }
        assert!(
            Instant::now() < deadline,
            "no window {name}:\n{}",
            tmux.screen(&format!("{session}:0"))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn tui_failed_pane_opens_the_rescue_shell_and_resume_completes_the_run() {
    if !require_root() {
        return;
    }
    let (tree, tmux) = failing_run("tui", "env -u TMUX", "tui");
    let pane = "tui";

    // A building target's pane title shows its package counter (the stand-in emerge prints
    // Portage's progress lines): `k/N` followed by a package, not by a step name (the step
    // counter's form). No ETA on a first build: no step has a duration yet.
    let deadline = Instant::now() + Duration::from_secs(120);
    let title = loop {
        let s = tmux.screen(pane);
        // The run directory appears once the run has started: until then, no names.
        let plan_file = std::fs::read_dir(tree.path().join("work"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("plan.json"))
            .find(|p| p.exists());
        let step_names: Vec<String> = plan_file
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|plan| {
                let targets = plan["targets"].as_array()?.clone();
                Some(
                    targets
                        .iter()
                        .filter_map(|t| t["steps"].as_array())
                        .flatten()
                        .filter_map(|s| s["name"].as_str().map(str::to_string))
                        .collect(),
                )
            })
            .unwrap_or_default();
        // A title line of a running target (full or narrow form): `... demo-a ... k/N pkg`.
        let found = s.lines().find(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let title = words.len() > 2 && words[1].contains("demo-");
            title
                && words.windows(2).any(|w| {
                    let count = w[0]
                        .split_once('/')
                        .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok());
                    count && !step_names.is_empty() && !step_names.iter().any(|n| n == w[1])
                })
        });
        if let Some(l) = found {
            eprintln!("the TUI with package progress:\n{s}");
            break l.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no package counter in a title:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!title.contains(" ETA "), "an ETA without a basis: {title}");

    tmux.wait_for(pane, "(rescue x86_64-unknown-linux-musl.demo-b) / #", 120);
    // The checkpoint's step-failed and the pane's output travel apart (socket, pty): the
    // title follows within a frame or two.
    let s = tmux.wait_for(pane, "failed 6/13 target-world: rescue shell", 10);
    let title = s
        .lines()
        .find(|l| l.contains("failed 6/13"))
        .unwrap_or_default();
    assert!(
        title.contains("▶2 "),
        "the failed pane has the focus: {title}"
    );
    assert!(
        s.contains("step target-world of x86_64-unknown-linux-musl.demo-b failed"),
        "{s}"
    );

    rescue_resume_and_finish(&tmux, pane, &tree);
    let first = steps(&tree.checkpoint(), TARGETS[1]);
    assert!(first.iter().all(|(_, s, a)| s == "done" && *a >= 1));
    assert!(mounts_anywhere(tree.path()).is_empty());
}

/// In a TUI (in `pane`) whose focused pane is demo-b's failed `target-world`: types into its
/// rescue shell (`i`) and sees the answer, leaves it, answers `resume`, and waits for the
/// summary and the run's exit 0 (`BH-EXIT=`); the step then ran twice and the run finished.
pub fn rescue_resume_and_finish(tmux: &Tmux, pane: &str, tree: &Tree) {
    tmux.keys(pane, &["i"]);
    tmux.wait_for(pane, "TYPING into x86_64-unknown-linux-musl.demo-b", 10);
    tmux.keys(pane, &["echo rescued-$((6*7))", "Enter"]);
    tmux.wait_for(pane, "rescued-42", 10);
    tmux.keys(pane, &["exit", "Enter"]);
    tmux.wait_for(pane, "resume (re-run", 10);
    tmux.keys(pane, &["resume", "Enter"]);
    tmux.keys(pane, &["C-]"]);
    tmux.wait_for(pane, "Run finished", 120);
    tmux.keys(pane, &["Enter"]);
    let s = tmux.wait_for(pane, "BH-EXIT=", 60);
    assert!(s.contains("BH-EXIT=0"), "{s}");

    let cp = tree.checkpoint();
    assert_eq!(cp["finished"], true);
    let world = steps(&cp, TARGETS[1])
        .into_iter()
        .find(|(n, _, _)| n == "target-world")
        .expect("target-world");
    assert_eq!(
        (world.1.as_str(), world.2),
        ("done", 2),
        "resume re-ran the failed step"
    );
}

/// The target of the window named `name` in `session` (window names hold dots, which tmux
/// targets read as `window.pane`: use its index).
fn window_of(tmux: &Tmux, session: &str, name: &str) -> Option<String> {
    tmux.cmd(&[
        "list-windows",
        "-t",
        session,
        "-F",
        "#{window_index} #{window_name}",
    ])
    .lines()
    .find(|l| l.ends_with(&format!(" {name}")))
    .and_then(|l| l.split(' ').next())
    .map(|i| format!("{session}:{i}"))
}

#[test]
fn tmux_mode_opens_a_window_per_target_and_resume_completes_the_run() {
    if !require_root() {
        return;
    }
    let (tree, tmux) = failing_run("sup", "", "tmux");
    let window = |name: &str| window_of(&tmux, "sup", name);
    let failed = wait_window(&tmux, "sup", TARGETS[1]);
    tmux.wait_for(
        &failed,
        "(rescue x86_64-unknown-linux-musl.demo-b) / #",
        120,
    );
    for t in TARGETS {
        assert!(window(t).is_some(), "one window per target: {t} missing");
    }
    tmux.keys(&failed, &["exit", "Enter"]);
    tmux.wait_for(&failed, "resume (re-run the step)", 10);
    tmux.keys(&failed, &["resume", "Enter"]);
    let s = tmux.wait_for("sup:0", "BH-EXIT=", 120);
    assert!(s.contains("BH-EXIT=0"), "{s}");
    // remain-on-exit keeps the finished windows, with their exit status.
    let dead = tmux.cmd(&[
        "display-message",
        "-p",
        "-t",
        &failed,
        "#{pane_dead} #{pane_dead_status}",
    ]);
    // On failure, say how the worker ended (a signal leaves the status empty).
    let signal = tmux.cmd(&[
        "display-message",
        "-p",
        "-t",
        &failed,
        "#{pane_dead_signal}",
    ]);
    assert_eq!(dead.trim(), "1 0", "the worker died of signal {signal:?}");
    let tty_log = std::fs::read_to_string(
        tree.run_dir()
            .join("logs")
            .join(format!("{}.tty.log", TARGETS[1])),
    )
    .unwrap_or_default();
    assert!(
        tty_log.contains("resume (re-run the step)"),
        "pipe-pane transcript:\n{tty_log}"
    );

    let cp = tree.checkpoint();
    assert_eq!(cp["finished"], true);
    let world = steps(&cp, TARGETS[1])
        .into_iter()
        .find(|(n, _, _)| n == "target-world")
        .expect("target-world");
    assert_eq!((world.1.as_str(), world.2), ("done", 2));
    assert!(mounts_anywhere(tree.path()).is_empty());
}

#[test]
fn rescue_retry_runs_the_failed_target_again_from_its_first_step() {
    if !require_root() {
        return;
    }
    let (tree, tmux) = failing_run("retry", "", "tmux");
    let failed = wait_window(&tmux, "retry", TARGETS[1]);
    tmux.wait_for(
        &failed,
        "(rescue x86_64-unknown-linux-musl.demo-b) / #",
        120,
    );
    tmux.keys(&failed, &["exit", "Enter"]);
    tmux.wait_for(&failed, "resume (re-run the step)", 10);
    // Anything else reopens the shell.
    tmux.keys(&failed, &["later", "Enter"]);
    tmux.wait_for(&failed, "is none of resume, retry, abort", 10);
    tmux.keys(&failed, &["exit", "Enter"]);
    tmux.keys(&failed, &["retry", "Enter"]);
    let s = tmux.wait_for("retry:0", "BH-EXIT=", 120);
    assert!(s.contains("BH-EXIT=0"), "{s}");

    let cp = tree.checkpoint();
    assert_eq!(cp["finished"], true);
    let b = steps(&cp, TARGETS[1]);
    let world = b
        .iter()
        .position(|(n, _, _)| n == "target-world")
        .expect("target-world");
    assert!(
        b[..=world].iter().all(|(_, s, a)| s == "done" && *a == 2),
        "every step up to the failed one ran twice: {b:?}"
    );
    assert!(b[world + 1..].iter().all(|(_, _, a)| *a == 1), "{b:?}");
    assert!(
        steps(&cp, TARGETS[2]).iter().all(|(_, _, a)| *a == 1),
        "other targets untouched"
    );
    assert!(mounts_anywhere(tree.path()).is_empty());
}

/// A rescue shell that waits (issue 12, item 4): `status` names the target that waits for a
/// decision and since when, the event log has `rescue-waiting`, and the decision (resume)
/// moves the state on. The same tmux run shows that a step in a tmux window gets the
/// starter's `pass_env` (set on the command line only, not in the tmux session), and that
/// the run directory records its tmux session (`tmux.json`) with a working attach command,
/// which `build-helper attach` runs.
#[test]
fn a_waiting_rescue_shell_shows_in_status_until_the_user_decides() {
    if !require_root() {
        return;
    }
    // The notify command appends each event it is given to a file, one per line.
    let notified = |tree: &Tree| tree.path().join("notified.jsonl");
    let (tree, tmux) = failing_run_with("wait", "", "tmux", |tree| {
        let script = format!("cat >> {}", notified(tree).display());
        let starter = std::fs::read_to_string(tree.starter()).unwrap();
        let starter = starter.replace(
            "[options]\n",
            &format!("[options]\nnotify = [\"sh\", \"-c\", {script:?}]\n"),
        );
        std::fs::write(tree.starter(), starter).unwrap();
    });
    let failed = wait_window(&tmux, "wait", TARGETS[1]);
    tmux.wait_for(
        &failed,
        "(rescue x86_64-unknown-linux-musl.demo-b) / #",
        120,
    );
    let run = tree.run_dir();
    let id = run.file_name().unwrap().to_string_lossy().into_owned();
    let status = |args: &[&str]| String::from_utf8_lossy(&tree.bh(args, &[]).stdout).into_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = status(&["status", &id]);
        if text.contains("waits for a decision") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        text.contains(&format!("{} (rescue shell waiting)", TARGETS[1])),
        "{text}"
    );
    assert!(
        text.contains("waits for a decision since") && text.contains("step target-world failed"),
        "{text}"
    );
    assert!(status(&["status"]).contains(&format!("{} rescue shell waiting", TARGETS[1])));
    let cp = tree.checkpoint();
    let b = cp["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            format!(
                "{}.{}",
                t["target"]["tuple"].as_str().unwrap(),
                t["target"]["name"].as_str().unwrap()
            ) == TARGETS[1]
        })
        .unwrap()
        .clone();
    assert_eq!(b["rescue"]["step"], "target-world", "{b}");
    let waiting: Vec<_> = tree
        .events()
        .into_iter()
        .filter(|e| e["event"] == "rescue-waiting")
        .collect();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["target"], TARGETS[1]);
    assert_eq!(waiting[0]["step"], "target-world");

    // One word for the failure, when the rescue shell waits (not a second for step-failed).
    let deadline = Instant::now() + Duration::from_secs(10);
    let sent = loop {
        let sent = std::fs::read_to_string(notified(&tree)).unwrap_or_default();
        if !sent.is_empty() || Instant::now() > deadline {
            break sent;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let kinds: Vec<String> = sent
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].to_string())
        .collect();
    assert_eq!(kinds, ["\"rescue-waiting\""], "{sent}");

    // The step environment in a tmux window: the starter's pass_env variables.
    tmux.keys(&failed, &["echo pass-env=$BH_DEMO_DELAY", "Enter"]);
    tmux.wait_for(&failed, "pass-env=0.05", 10);

    // tmux.json names the session and every worker's window; its attach command works.
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("tmux.json")).unwrap()).unwrap();
    let windows: Vec<String> = record["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            format!(
                "{}.{}",
                w["target"]["tuple"].as_str().unwrap(),
                w["target"]["name"].as_str().unwrap()
            )
        })
        .collect();
    for t in TARGETS {
        assert!(windows.iter().any(|w| w == t), "{t} not in {record}");
    }
    let argv = build_helper::ui::tmux::attach_command(&run).unwrap();
    let session = record["session_id"].as_str().unwrap();
    let socket = record["socket"].as_str().unwrap();
    assert_eq!(
        argv,
        ["tmux", "-S", socket, "attach-session", "-t", session],
        "{record}"
    );
    let has = Command::new("tmux")
        .args(["-S", socket, "has-session", "-t", session])
        .env_remove("TMUX")
        .status()
        .unwrap();
    assert!(has.success(), "the recorded session {session} on {socket}");
    // `build-helper attach RUN` from another terminal (another tmux server here) shows it.
    let env: Vec<_> = run_env(tree.path(), "")
        .into_iter()
        .filter(|(k, _)| !k.starts_with("BH_DEMO_"))
        .collect();
    let other = Tmux::start(
        "wait-attach",
        &format!("{BIN} attach {id}; echo ATTACH-EXIT=$?; sleep 600"),
        &env,
    );
    other.wait_for("wait-attach", TARGETS[1], 20);
    other.cmd(&["kill-server"]);

    // The decision moves the state on.
    tmux.keys(&failed, &["exit", "Enter"]);
    tmux.wait_for(&failed, "resume (re-run the step)", 10);
    tmux.keys(&failed, &["resume", "Enter"]);
    let s = tmux.wait_for("wait:0", "BH-EXIT=", 120);
    assert!(s.contains("BH-EXIT=0"), "{s}");
    let text = status(&["status", &id]);
    assert!(!text.contains("rescue shell waiting"), "{text}");
    let cp = tree.checkpoint();
    assert_eq!(cp["finished"], true);
    assert!(
        cp["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("rescue").is_none()),
        "{cp}"
    );
    drop(tmux);
    assert!(mounts_anywhere(tree.path()).is_empty());
}
