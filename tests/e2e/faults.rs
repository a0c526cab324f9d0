//! The fault suite (issue 9): faults an operator of a long build meets, injected into the demo
//! for real: a second run on a live tree, `status` of a live run, SIGKILL of a worker,
//! SIGINT and SIGKILL of the supervisor during the steps, the stage3 download (from a slow
//! loopback server), the extraction and the mounts (slowed with strace) and the archive, a
//! mirror that refuses connections (exit 1), corrupt and inconsistent checkpoints, and the run
//! directory's modes under umask 000 against a non-root user. Each asserts exit codes, what
//! `status` shows, that nothing (process, mount, loop device) is left after `umount --all`,
//! and that `--resume` re-runs no finished step. Stop latencies are printed (`stop latency`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Starts `build-helper run starters/demo.toml --ui plain EXTRA...` in the background under
/// umask 000, output to `<tree>/<name>.out`.
fn spawn_run(tree: &Tree, name: &str, extra: &[&str], env: &[(&str, &str)]) -> Child {
    spawn_run_under(tree, name, &[], extra, env)
}

/// [`spawn_run`] with the supervisor started by the command `wrapper` (empty: none).
fn spawn_run_under(
    tree: &Tree,
    name: &str,
    wrapper: &[&str],
    extra: &[&str],
    env: &[(&str, &str)],
) -> Child {
    let out = std::fs::File::create(tree.path().join(format!("{name}.out"))).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("umask 000; exec \"$0\" \"$@\"");
    match wrapper.split_first() {
        Some((first, rest)) => cmd.arg(first).args(rest).arg(BIN),
        None => cmd.arg(BIN),
    };
    cmd.args(["run", tree.starter().to_str().unwrap(), "--ui", "plain"])
        .args(extra)
        .env("BUILD_HELPER_TREE", tree.path())
        .env("TARBALL_MIRROR", mirror())
        .env("BH_OPENPGP_KEY", mirror_key())
        .env("BH_DEMO_DELAY", "0.01")
        .env_remove("BH_DEMO_FAIL")
        .env_remove("TMUX")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn output_of(tree: &Tree, name: &str) -> String {
    std::fs::read_to_string(tree.path().join(format!("{name}.out"))).unwrap_or_default()
}

/// Waits (up to `secs`) until `cond` holds.
fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn events_text(tree: &Tree) -> String {
    tree.newest_run()
        .and_then(|r| std::fs::read_to_string(r.join("events.jsonl")).ok())
        .unwrap_or_default()
}

fn step_started(tree: &Tree, target: &str) -> bool {
    events_text(tree).contains(&format!("\"step-started\",\"target\":\"{target}\""))
}

/// Sends `sig` to the supervisor and returns its exit code and how long it took to exit.
fn signal_and_wait(child: &mut Child, sig: nix::sys::signal::Signal) -> (Option<i32>, Duration) {
    let t0 = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
    let status = child.wait().unwrap();
    (status.code(), t0.elapsed())
}

/// Processes that belong to this tree: chrooted into it, working in it, or naming it.
fn processes_of(tree: &Path) -> Vec<String> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit_once(") ")
            .is_some_and(|(_, r)| r.starts_with('Z'))
        {
            continue;
        }
        let under = |link: &str| {
            std::fs::read_link(format!("/proc/{pid}/{link}")).is_ok_and(|p| p.starts_with(tree))
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if under("root") || under("cwd") || cmdline.contains(&tree.display().to_string()) {
            out.push(format!("{pid}: {cmdline}"));
        }
    }
    out
}

/// The niceness of process `pid` (proc(5): field 19 of /proc/PID/stat).
fn nice_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(") ").unwrap();
    rest.split_whitespace().nth(16).unwrap().parse().unwrap()
}

/// Loop devices whose backing file lies in this tree.
fn loops_of(tree: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        if let Ok(file) = std::fs::read_to_string(entry.path().join("loop/backing_file")) {
            if Path::new(file.trim()).starts_with(tree) {
                out.push(format!("{name}: {}", file.trim()));
            }
        }
    }
    out
}

/// Nothing of the tree is left: no mount in any namespace, no process, no loop device.
fn assert_nothing_left(tree: &Tree) {
    // The kernel releases a namespace's mounts a moment after its last process.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (m, p, l) = (
            mounts_anywhere(tree.path()),
            processes_of(tree.path()),
            loops_of(tree.path()),
        );
        if m.is_empty() && p.is_empty() && l.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: mounts {m:?}, processes {p:?}, loop devices {l:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (target, step) -> attempts of every step that is done.
fn done_steps(cp: &serde_json::Value) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for t in TARGETS {
        for (name, state, attempts) in steps(cp, t) {
            if state == "done" {
                out.push((t.to_string(), name, attempts));
            }
        }
    }
    out
}

/// After `--resume`, every step done before is still done and was not run again.
/// The run whose output is `name` stopped on the signal: exit 130 within 2 s
/// (`code`, `took`), said it was interrupted during `phase`, and recorded its run step
/// `step` as interrupted.
fn assert_interrupted(
    tree: &Tree,
    name: &str,
    (code, took): (Option<i32>, Duration),
    phase: &str,
    step: &str,
) {
    let out = output_of(tree, name);
    assert_eq!(code, Some(130), "{out}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(
        out.contains(&format!("interrupted during {phase}")),
        "{out}"
    );
    assert_eq!(run_step_state(tree, step).as_deref(), Some("interrupted"));
}

/// `--resume` ends the run (exit 0, finished) without running again a step that was done
/// `before`, and leaves nothing behind.
fn resume_finishes_rerunning_nothing(tree: &Tree, before: &[(String, String, u64)]) {
    let out = tree.run_demo(&["--resume"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let after = tree.checkpoint();
    assert_eq!(after["finished"], true);
    assert_no_done_step_rerun(before, &after);
    assert_nothing_left(tree);
}

fn assert_no_done_step_rerun(before: &[(String, String, u64)], after: &serde_json::Value) {
    for (t, name, attempts) in before {
        let now = steps(after, t)
            .into_iter()
            .find(|(n, _, _)| n == name)
            .unwrap();
        assert_eq!(
            (now.1.as_str(), now.2),
            ("done", *attempts),
            "{t} {name} was run again"
        );
    }
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Runs `sh -c script` as the unprivileged user nobody; true when it succeeded.
fn as_nobody(script: &str) -> bool {
    use std::os::unix::process::CommandExt;
    Command::new("sh")
        .args(["-c", script])
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// In a `status RUN --json` document: a step took its last attempt's recorded duration
/// unless it runs (a finished step has one), and each target's duration is what its steps
/// took.
fn status_durations_add_up(doc: &serde_json::Value) {
    for t in doc["targets"].as_array().unwrap() {
        let mut sum = 0;
        for s in t["steps"].as_array().unwrap() {
            match s["state"].as_str().unwrap() {
                "running" => assert_eq!(s["took_ms"], serde_json::Value::Null, "{s}"),
                state => {
                    assert_eq!(s["took_ms"], s["duration_ms"], "{s}");
                    if state == "done" || state == "failed" {
                        assert!(s["took_ms"].is_u64(), "{s}");
                    }
                }
            }
            sum += s["took_ms"].as_u64().unwrap_or(0);
        }
        assert_eq!(t["duration_ms"], sum, "{t}");
    }
}

#[test]
fn live_run_is_locked_private_and_stops_on_sigint_then_resumes() {
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let tree = Tree::new();
    let mut child = spawn_run(&tree, "run1", &[], &[("BH_DEMO_DELAY", "0.3")]);
    wait_until(180, "a secondary target's first step", || {
        step_started(&tree, TARGETS[1])
    });
    let run = tree.newest_run().unwrap();
    let id = run.file_name().unwrap().to_str().unwrap().to_string();
    let pid = child.id().to_string();

    // A second run, or a resume, on a tree with a live run: refused, naming run and pid.
    let starter = tree.starter();
    let starter = starter.to_str().unwrap();
    for extra in [&[][..], &["--resume"][..], &["--resume", id.as_str()][..]] {
        let mut args = vec!["run", starter, "--ui", "plain"];
        args.extend(extra);
        let out = tree.bh(&args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&id) && err.contains(&pid), "{err}");
    }
    assert_eq!(
        tree.newest_run().unwrap(),
        run,
        "a second run directory appeared"
    );

    // status of a live run shows it running, with its running step as running.
    let out = tree.bh(&["status"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("running (supervisor pid {pid})")),
        "{text}"
    );
    let out = tree.bh(&["status", &id, "--json"], &[]);
    let cp: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<String> = TARGETS
        .iter()
        .flat_map(|t| steps(&cp, t))
        .map(|s| s.1)
        .collect();
    assert!(states.iter().any(|s| s == "running"), "{states:?}");
    assert!(!states.iter().any(|s| s == "failed" || s == "interrupted"));
    // The status document says the run is live, by whom, and what each target's steps took.
    assert_eq!(cp["format"], 1, "{cp}");
    assert_eq!(cp["kind"], "build", "{cp}");
    assert_eq!(cp["liveness"], "running", "{cp}");
    assert_eq!(cp["supervisor_pid"].to_string(), pid, "{cp}");
    status_durations_add_up(&cp);

    // umount of a live run is refused; run ids that are not plain names are refused.
    assert_eq!(tree.bh(&["umount", &id], &[]).status.code(), Some(2));
    for bad in ["../work", "a/b", ".."] {
        for cmd in ["status", "umount", "shell"] {
            let out = tree.bh(&[cmd, bad], &[]);
            assert_eq!(out.status.code(), Some(2), "{cmd} {bad}");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("is not a run id"),
                "{cmd} {bad}"
            );
        }
    }

    // The run's files are private although the run was started under umask 000.
    assert_eq!(mode_of(&run), 0o700);
    assert_eq!(mode_of(&run.join("logs")), 0o700);
    for f in [
        "plan.json",
        "checkpoint.json",
        "checkpoint.log",
        "journal.json",
        "events.jsonl",
        "lock",
        "supervisor.sock",
    ] {
        assert_eq!(mode_of(&run.join(f)), 0o600, "{f}");
    }
    let log = run.join(format!("logs/{}.log", TARGETS[0]));
    assert_eq!(mode_of(&log), 0o600);
    // Even with the directory opened up, nobody can read, write or connect. (Controls first:
    // the same commands work for nobody on files it may use, so a refusal below is the mode's.)
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let py = "/usr/bin/python3";
    assert!(as_nobody("cat /etc/passwd"), "control: nobody can run cat");
    assert!(
        as_nobody(&format!("{py} -c 'import socket'")),
        "control: nobody can run {py}"
    );
    let cp_path = run.join("checkpoint.json");
    assert!(!as_nobody(&format!("cat '{}'", cp_path.display())));
    assert!(!as_nobody(&format!(": >> '{}'", cp_path.display())));
    let sock = run.join("supervisor.sock");
    let connect = format!(
        "{py} -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect(\"{}\")'",
        sock.display()
    );
    assert!(!as_nobody(&connect), "nobody connected to the 0600 socket");
    // With the socket opened up too, the supervisor checks the peer (SO_PEERCRED) and hangs
    // up on a non-root one (a kept connection would make recv time out: exit 1).
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let hangs_up = format!(
        "{py} -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.settimeout(5); \
         s.connect(\"{}\"); sys.exit(0 if s.recv(1) == b\"\" else 1)'",
        sock.display()
    );
    assert!(as_nobody(&hangs_up), "the supervisor kept a non-root peer");
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();

    // SIGINT during the steps: exit 130 within 2 s, the killed steps interrupted.
    let (code, took) = signal_and_wait(&mut child, nix::sys::signal::Signal::SIGINT);
    eprintln!("stop latency (steps, SIGINT): {} ms", took.as_millis());
    let out = output_of(&tree, "run1");
    assert_eq!(code, Some(130), "{out}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(out.contains("interrupted during the steps"), "{out}");
    assert_nothing_left(&tree);
    let out = tree.bh(&["status", &id], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("interrupted"), "{text}");
    assert!(!text.contains(" running "), "{text}");
    let out = tree.bh(&["status", &id, "--json"], &[]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["liveness"], "unfinished", "{doc}");
    assert_eq!(doc["supervisor_pid"], serde_json::Value::Null, "{doc}");
    // Nothing runs any more: no progress and no remaining time.
    assert_eq!(doc["eta_ms"], serde_json::Value::Null, "{doc}");
    for t in doc["targets"].as_array().unwrap() {
        assert_ne!(t["state"], "running", "{doc}");
        assert_eq!(t["eta_ms"], serde_json::Value::Null, "{doc}");
    }
    assert!(
        doc["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["state"] == "interrupted"),
        "{doc}"
    );
    status_durations_add_up(&doc);

    // A corrupt checkpoint is named and refused, never skipped.
    let good = std::fs::read(&cp_path).unwrap();
    std::fs::write(&cp_path, b"{\"run_id\": tru").unwrap();
    let out = tree.bh(&["run", starter, "--ui", "plain", "--resume"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&cp_path.display().to_string()) && err.contains("--retry"),
        "{err}"
    );
    // So is one that does not match the plan (no targets).
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["targets"] = serde_json::json!([]);
    std::fs::write(&cp_path, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = tree.bh(&["run", starter, "--ui", "plain", "--resume"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("does not match the run's plan"), "{err}");
    assert!(
        !tree
            .path()
            .join("history")
            .read_dir()
            .unwrap()
            .any(|_| true),
        "nothing may be archived"
    );
    std::fs::write(&cp_path, &good).unwrap();

    // --resume finishes the run without re-running a finished step.
    let before = done_steps(&serde_json::from_slice(&good).unwrap());
    assert!(!before.is_empty());
    resume_finishes_rerunning_nothing(&tree, &before);
}

#[test]
fn a_killed_worker_takes_its_step_with_it_and_a_killed_step_fails() {
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let tree = Tree::new();
    // Started niced: the steps keep the operator's niceness, the workers run ahead of them.
    let mut child = spawn_run_under(
        &tree,
        "run1",
        &["nice", "-n", "5"],
        &[],
        &[("BH_DEMO_DELAY", "0.3")],
    );
    let victim = TARGETS[2];
    wait_until(180, "the aarch64 target's first step", || {
        step_started(&tree, victim)
    });
    let run = tree.newest_run().unwrap();
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("plan.json")).unwrap()).unwrap();
    let root = PathBuf::from(plan["targets"][2]["root"].as_str().unwrap());
    let worker: i32 = events_text(&tree)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "worker-started" && e["target"] == victim)
        .and_then(|e| e["pid"].as_i64())
        .unwrap() as i32;
    let rooted_in = |root: &Path| {
        processes_of(tree.path())
            .into_iter()
            .filter(|p| {
                let pid = p.split(':').next().unwrap();
                std::fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|r| r.starts_with(root))
            })
            .map(|p| p.split(':').next().unwrap().parse::<i32>().unwrap())
            .collect::<Vec<_>>()
    };
    let rooted = || rooted_in(&root);
    // step-started is sent just before the step's process starts.
    wait_until(10, "the step's processes in its root", || {
        !rooted().is_empty()
    });
    assert_eq!(nice_of(worker), build_helper::sched::CONTROL, "the worker");
    for pid in rooted() {
        assert_eq!(nice_of(pid), 5, "step process {pid}");
    }
    // A step killed under a living worker (SIGKILL to everything in demo-b's root) ends
    // with 137 and fails; its worker stops (plain mode). Done while the victim's step runs,
    // before demo-b (released with it) can finish; between two of demo-b's steps nothing
    // is in its root, and a kill may reach only the worker's `make --version` look before a
    // step (the job pool's), so this kills until demo-b's step has failed.
    let b_root = PathBuf::from(plan["targets"][1]["root"].as_str().unwrap());
    let b_failed = || {
        events_text(&tree).lines().any(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            e["event"] == "step-failed" && e["target"] == TARGETS[1]
        })
    };
    wait_until(60, "a step of demo-b killed", || {
        for pid in rooted_in(&b_root) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        b_failed()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until(5, "the killed worker's step to be gone", || {
        rooted().is_empty()
    });
    // The primary finishes; the run ends failed (exit 1), the victim interrupted.
    let status = child.wait().unwrap();
    let out = output_of(&tree, "run1");
    assert_eq!(status.code(), Some(1), "{out}");
    let id = run.file_name().unwrap().to_str().unwrap();
    let text = String::from_utf8_lossy(&tree.bh(&["status", id], &[]).stdout).into_owned();
    assert!(text.contains(&format!("{victim} (interrupted)")), "{text}");
    assert!(text.contains(&format!("{} (failed)", TARGETS[1])), "{text}");
    assert!(text.contains("  137 "), "the killed step's exit: {text}");
    let out = tree.bh(&["umount", "--all"], &[]);
    assert!(out.status.success());
    assert_nothing_left(&tree);
    let before = done_steps(&tree.checkpoint());
    resume_finishes_rerunning_nothing(&tree, &before);
}

/// A real mksquashfs that starts slowly (STAND-IN for a long archive): it writes the start
/// of its output, waits, then becomes the real mksquashfs (same process).
fn slow_mksquashfs(tree: &Tree) -> String {
    let bin = tree.path().join("slowbin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("mksquashfs"))
        .find(|p| p.is_file())
        .expect("mksquashfs on PATH (scripts/install-deps.sh installs squashfs-tools)");
    let script = format!(
        "#!/usr/bin/env python3\n\
         # STAND-IN delay: a slow archive, then the real {real}.\n\
         import os, sys, time\n\
         open(sys.argv[2], 'wb').write(b'hsqs partial')\n\
         time.sleep(60)\n\
         os.execv('{real}', ['mksquashfs'] + sys.argv[1:])\n",
        real = real.display()
    );
    let path = bin.join("mksquashfs");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn partial_history(tree: &Tree) -> bool {
    std::fs::read_dir(tree.path().join("history"))
        .unwrap()
        .any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")
        })
}

/// History images and partial ones (not their metadata files).
fn histories(tree: &Tree) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(tree.path().join("history"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sqfs") || n.ends_with(".partial"))
        .collect();
    v.sort();
    v
}

#[test]
fn the_archive_stops_on_sigint_and_dies_with_a_killed_supervisor() {
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let tree = Tree::new();
    let path = slow_mksquashfs(&tree);

    // SIGINT during the archive: exit 130 quickly, no partial history left.
    let mut child = spawn_run(&tree, "run1", &[], &[("PATH", &path)]);
    wait_until(300, "the archive to start", || partial_history(&tree));
    let (code, took) = signal_and_wait(&mut child, nix::sys::signal::Signal::SIGINT);
    eprintln!("stop latency (archive, SIGINT): {} ms", took.as_millis());
    let out = output_of(&tree, "run1");
    assert_eq!(code, Some(130), "{out}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(out.contains("interrupted during the archive"), "{out}");
    assert!(histories(&tree).is_empty(), "{:?}", histories(&tree));
    assert_nothing_left(&tree);
    let cp = tree.checkpoint();
    let archive = cp["run_steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "archive-history")
        .unwrap();
    assert_eq!(archive["state"], "interrupted");
    let before = done_steps(&cp);
    let out = tree.run_demo(&["--resume"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_no_done_step_rerun(&before, &tree.checkpoint());
    let first = histories(&tree);
    assert_eq!(first.len(), 1, "{first:?}");

    // An update from that history (a loop device), supervisor SIGKILLed during its archive:
    // the archiver dies with it; umount --all leaves nothing.
    let mut child = spawn_run(&tree, "run2", &[], &[("PATH", &path)]);
    wait_until(300, "the second archive to start", || {
        partial_history(&tree)
    });
    assert!(
        !loops_of(tree.path()).is_empty(),
        "the update should read its history through a loop device"
    );
    let (code, took) = signal_and_wait(&mut child, nix::sys::signal::Signal::SIGKILL);
    eprintln!("exit after SIGKILL (archive): {} ms", took.as_millis());
    assert_eq!(code, None);
    wait_until(5, "the archiver to die with its supervisor", || {
        !processes_of(tree.path())
            .iter()
            .any(|p| p.contains("mksquashfs"))
    });
    let out = tree.bh(&["umount", "--all"], &[]);
    assert!(out.status.success());
    assert_nothing_left(&tree);
    assert!(!tree.run_dir().join("journal.json").exists());
    assert_eq!(
        histories(&tree)
            .iter()
            .filter(|h| !h.ends_with(".partial"))
            .count(),
        1,
        "a partial archive must not look like a history: {:?}",
        histories(&tree)
    );
}

/// Serves the demo mirror over HTTP on 127.0.0.1 at `rate` bytes per second.
struct SlowMirror {
    server: Child,
    url: String,
}

impl SlowMirror {
    fn start(rate: u32) -> SlowMirror {
        let dir = mirror().trim_start_matches("file://").to_string();
        let mut server = Command::new("python3")
            .arg(format!("{SRC}/scripts/bench-server.py"))
            .args([&dir, "0", &rate.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(server.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        let port = line
            .trim()
            .strip_prefix("port ")
            .expect("port N")
            .to_string();
        SlowMirror {
            server,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for SlowMirror {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn run_step_state(tree: &Tree, step: &str) -> Option<String> {
    let run = tree.newest_run()?;
    let cp = serde_json::to_value(build_helper::rundir::load_checkpoint(&run, None).ok()?).ok()?;
    cp["run_steps"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == step)
        .and_then(|s| s["state"].as_str().map(String::from))
}

#[test]
fn a_slow_stage3_download_stops_on_sigint_and_dies_with_a_killed_supervisor() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let slow = SlowMirror::start(40_000);
    let env = [("TARBALL_MIRROR", slow.url.as_str())];
    let mut child = spawn_run(&tree, "run1", &[], &env);
    wait_until(60, "the stage3 download", || {
        run_step_state(&tree, "stage3").as_deref() == Some("running")
    });
    std::thread::sleep(Duration::from_millis(1500));
    let (code, took) = signal_and_wait(&mut child, nix::sys::signal::Signal::SIGINT);
    eprintln!("stop latency (download, SIGINT): {} ms", took.as_millis());
    assert_interrupted(&tree, "run1", (code, took), "the stage3 download", "stage3");
    assert_nothing_left(&tree);

    // The same phase, supervisor SIGKILLed: umount --all finds nothing to keep.
    let mut child = spawn_run(&tree, "run2", &["--resume"], &env);
    wait_until(60, "the resumed download", || {
        run_step_state(&tree, "stage3").as_deref() == Some("running")
    });
    std::thread::sleep(Duration::from_millis(1000));
    let (code, _) = signal_and_wait(&mut child, nix::sys::signal::Signal::SIGKILL);
    assert_eq!(code, None);
    let out = tree.bh(&["umount", "--all"], &[]);
    assert!(out.status.success());
    assert_nothing_left(&tree);
    let out = tree.bh(&["status"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("unfinished"));
}

/// A slow disk and slow mounts, injected with strace (a real tool, no product-code hook):
/// every mount(2) of the supervisor takes 150 ms more and every fchown(2) of the extraction
/// 20 ms more, so the mounts and the extraction last seconds and a signal reliably lands in
/// them. The supervisor is strace's child ([`traced_pid`]); strace exits as it does.
const SLOW_MOUNTS_AND_DISK: &[&str] = &[
    "strace",
    "-f",
    "-qq",
    "--seccomp-bpf",
    "-o",
    "/dev/null",
    "-e",
    "trace=mount,fchown",
    "-e",
    "inject=mount:delay_exit=150000",
    "-e",
    "inject=fchown:delay_exit=20000",
];

/// The pid of the process `tracer` started (its only child).
fn traced_pid(tracer: &Child) -> nix::unistd::Pid {
    let parent = tracer.id().to_string();
    let mut found = None;
    wait_until(10, "the traced supervisor", || {
        found = std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.to_string();
            (ppid == parent).then_some(pid)
        });
        found.is_some()
    });
    nix::unistd::Pid::from_raw(found.unwrap())
}

/// Sends `sig` to the supervisor that `tracer` runs; returns the tracer's exit code (the
/// supervisor's: strace exits with it, or dies of the same signal) and how long it took.
fn signal_traced(tracer: &mut Child, sig: nix::sys::signal::Signal) -> (Option<i32>, Duration) {
    let supervisor = traced_pid(tracer);
    let t0 = Instant::now();
    nix::sys::signal::kill(supervisor, sig).unwrap();
    let status = tracer.wait().unwrap();
    (status.code(), t0.elapsed())
}

fn extracting(tree: &Tree, name: &str) -> bool {
    output_of(tree, name).contains("extracting ")
}

/// The mounts phase: `stage3` done (or not needed) and `mounts` running.
fn mounting(tree: &Tree) -> bool {
    run_step_state(tree, "stage3").as_deref() == Some("done")
        && run_step_state(tree, "mounts").as_deref() == Some("running")
}

#[test]
fn the_extraction_and_the_mounts_stop_on_sigint_and_die_with_a_killed_supervisor() {
    use nix::sys::signal::Signal::{SIGINT, SIGKILL};
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let slow = SLOW_MOUNTS_AND_DISK;

    // SIGINT during the extraction: exit 130 within 2 s, the stage3 step interrupted.
    let mut child = spawn_run_under(&tree, "run1", slow, &[], &[]);
    wait_until(120, "the extraction", || extracting(&tree, "run1"));
    std::thread::sleep(Duration::from_millis(300));
    let (code, took) = signal_traced(&mut child, SIGINT);
    eprintln!("stop latency (extraction, SIGINT): {} ms", took.as_millis());
    assert_interrupted(
        &tree,
        "run1",
        (code, took),
        "the stage3 extraction",
        "stage3",
    );
    assert_nothing_left(&tree);

    // SIGKILL during the resumed extraction: umount --all leaves nothing.
    let mut child = spawn_run_under(&tree, "run2", slow, &["--resume"], &[]);
    wait_until(120, "the resumed extraction", || extracting(&tree, "run2"));
    std::thread::sleep(Duration::from_millis(300));
    let (code, _) = signal_traced(&mut child, SIGKILL);
    assert_eq!(code, None, "{}", output_of(&tree, "run2"));
    let out = tree.bh(&["umount", "--all"], &[]);
    assert!(out.status.success(), "{out:?}");
    assert_nothing_left(&tree);
    let status = tree.bh(&["status"], &[]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("unfinished"));

    // SIGINT during the mounts of the primary environment (after a complete extraction).
    let mut child = spawn_run_under(&tree, "run3", slow, &["--resume"], &[]);
    wait_until(120, "the mounts", || mounting(&tree));
    let (code, took) = signal_traced(&mut child, SIGINT);
    eprintln!("stop latency (mounts, SIGINT): {} ms", took.as_millis());
    let out = output_of(&tree, "run3");
    assert_eq!(code, Some(130), "{out}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(out.contains("interrupted during the mounts"), "{out}");
    assert_eq!(
        run_step_state(&tree, "mounts").as_deref(),
        Some("interrupted")
    );
    assert_eq!(run_step_state(&tree, "stage3").as_deref(), Some("done"));
    assert_nothing_left(&tree);

    // Some steps done (the primary's host-toolchain fails early, which keeps this short),
    // then SIGKILL during the mounts of the resume: umount --all leaves nothing, and the next
    // --resume runs no done step again.
    let failing = format!("{}:host-toolchain", TARGETS[0]);
    let out = tree.run_demo(&["--resume"], &[("BH_DEMO_FAIL", &failing)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let before = done_steps(&tree.checkpoint());
    assert!(!before.is_empty());
    let mut child = spawn_run_under(&tree, "run5", slow, &["--resume"], &[]);
    wait_until(60, "the mounts of the resume", || mounting(&tree));
    let (code, _) = signal_traced(&mut child, SIGKILL);
    assert_eq!(code, None, "{}", output_of(&tree, "run5"));
    let out = tree.bh(&["umount", "--all"], &[]);
    assert!(out.status.success(), "{out:?}");
    assert_nothing_left(&tree);
    resume_finishes_rerunning_nothing(&tree, &before);
}

/// An environment failure in the download (the mirror refuses connections, no kept stage3):
/// exit 1, not 2, with the URL and what to do; the stage3 step failed; nothing mounted. (Bad
/// input in the same phase, a stage3 that does not verify, exits 2: main.rs.)
#[test]
fn a_mirror_that_refuses_connections_exits_1_and_mounts_nothing() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = tree.run_demo(&[], &[("TARBALL_MIRROR", &url)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stderr.contains("check the network"), "{stderr}");
    assert!(
        stderr.contains("nothing was mounted or extracted"),
        "{stderr}"
    );
    assert_eq!(run_step_state(&tree, "stage3").as_deref(), Some("failed"));
    assert_eq!(run_step_state(&tree, "mounts").as_deref(), Some("pending"));
    assert_nothing_left(&tree);
}

/// Environment failures (a failing disk, a failing mount), injected with strace: the
/// extraction's twentieth fchown(2) and the run's sixth mount(2) fail with EIO. Each
/// exits 1 (not 2: src/error.rs), names the path and the error, fails its run step, and
/// leaves nothing: no mount, no partial root.
#[test]
fn an_io_error_in_the_extraction_or_a_mount_exits_1_and_leaves_nothing() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let failing_fchown = [
        "strace",
        "-f",
        "-qq",
        "--seccomp-bpf",
        "-o",
        "/dev/null",
        "-e",
        "trace=fchown",
        "-e",
        "inject=fchown:error=EIO:when=20",
    ];
    let mut child = spawn_run_under(&tree, "run1", &failing_fchown, &[], &[]);
    let code = child.wait().unwrap().code();
    let out = output_of(&tree, "run1");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cannot set the owner of"), "{out}");
    assert!(out.contains("Input/output error"), "{out}");
    assert_eq!(run_step_state(&tree, "stage3").as_deref(), Some("failed"));
    let run = tree.newest_run().unwrap();
    assert!(!run.join("M/m.partial").exists(), "partial root left");
    assert_nothing_left(&tree);

    let failing_mount = [
        "strace",
        "-f",
        "-qq",
        "--seccomp-bpf",
        "-o",
        "/dev/null",
        "-e",
        "trace=mount",
        "-e",
        "inject=mount:error=EIO:when=6",
    ];
    let mut child = spawn_run_under(&tree, "run2", &failing_mount, &["--resume"], &[]);
    let code = child.wait().unwrap().code();
    let out = output_of(&tree, "run2");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cannot mount"), "{out}");
    assert!(out.contains("I/O error"), "{out}");
    assert!(out.contains("stopped during the mounts"), "{out}");
    assert_eq!(run_step_state(&tree, "mounts").as_deref(), Some("failed"));
    assert_nothing_left(&tree);
    assert!(
        !run.join("journal.json").exists(),
        "the journal outlived its mounts"
    );
}

/// The `status` line of every run, as a user watching the run sees it (no root needed to
/// read it: the test runs as root).
fn status_text(tree: &Tree) -> String {
    let out = Command::new(BIN)
        .arg("status")
        .env("BUILD_HELPER_TREE", tree.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue 23, findings 3 and 5: live `status`, sampled through a whole demo, never shows a
/// target `failed` while no step failed (a target between two steps is not failed); and a
/// notify command that leaves a background child (`sleep 600 &`, holding its stderr) neither
/// holds the supervisor after the run (status not running, a new run not refused, `stop`
/// finds no live run) nor outlives it.
#[test]
fn live_status_is_truthful_through_a_demo_whose_notify_command_leaves_a_child() {
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let tree = Tree::new();
    let pids = tree.path().join("notify-children");
    let script = format!("sleep 600 & echo $! >> {}", pids.display());
    let starter = std::fs::read_to_string(tree.starter()).unwrap();
    let starter = starter.replace(
        "[options]\n",
        &format!("[options]\nnotify = [\"sh\", \"-c\", {script:?}]\n"),
    );
    std::fs::write(tree.starter(), starter).unwrap();

    let mut child = spawn_run(&tree, "run", &[], &[]);
    let t0 = Instant::now();
    let (mut samples, mut between) = (0, 0);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "the run did not end:\n{}",
            output_of(&tree, "run")
        );
        let text = status_text(&tree);
        if text.contains("running (supervisor") {
            samples += 1;
            assert!(
                !text.contains(" failed"),
                "a live run shows a target failed while no step failed:\n{text}"
            );
            between += usize::from(text.contains(" waiting"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("live status samples: {samples}, with a target waiting: {between}");
    let out = output_of(&tree, "run");
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(samples >= 20, "only {samples} samples of a live run");
    // The run's end reached the notify command; its children are gone with it.
    let children: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap_or_else(|e| panic!("the notify command never ran ({e})"))
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(!children.is_empty());
    for pid in &children {
        wait_until(5, "the notify command's child to be gone", || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z"))
        });
    }
    let text = status_text(&tree);
    assert!(!text.contains("running"), "{text}");
    assert!(text.contains("finished"), "{text}");
    let stop = tree.bh(&["stop"], &[]);
    let said = String::from_utf8_lossy(&stop.stderr).into_owned();
    assert!(
        said.contains("no live run"),
        "stop found the run live: {said}"
    );
    assert_nothing_left(&tree);
}

/// Issue 23, finding 7: SIGKILL of the supervisor during the archive leaves
/// `history/<date>.sqfs.partial`; `history list` shows it as a partial archive (not a
/// history), and `umount --all` removes it with the rest.
#[test]
fn a_partial_archive_of_a_killed_supervisor_is_listed_then_removed_by_umount() {
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let tree = Tree::new();
    let path = slow_mksquashfs(&tree);
    let mut child = spawn_run(&tree, "run", &[], &[("PATH", &path)]);
    wait_until(300, "the archive to start", || partial_history(&tree));
    let (code, _) = signal_and_wait(&mut child, nix::sys::signal::Signal::SIGKILL);
    assert_eq!(code, None);
    let list = tree.bh(&["history", "list"], &[]);
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.status.success(), "{text}");
    assert!(
        text.contains(".sqfs.partial: partial archive") && text.contains("not a history"),
        "{text}"
    );
    assert!(
        text.contains("no history in"),
        "a partial is not a history: {text}"
    );
    let out = tree.bh(&["umount", "--all"], &[]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("partial archive removed"), "{said}");
    assert!(histories(&tree).is_empty(), "{:?}", histories(&tree));
    assert_nothing_left(&tree);
}

/// Issue 23, finding 6: the detached supervisor of `--ui tui` (a session of its own, no
/// terminal) ignores SIGHUP; a signal whose default action would end it silently (SIGQUIT)
/// stops the run instead, with a line in its log and a `run-finished` event.
#[test]
fn the_detached_supervisor_ignores_sighup_and_logs_its_end_on_sigquit() {
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let tree = Tree::new();
    let line = format!("exec {BIN} run {} --ui tui", tree.starter().display());
    let mut env = crate::tui::run_env(tree.path(), "");
    env.retain(|(k, _)| *k != "BH_DEMO_DELAY");
    env.push(("BH_DEMO_DELAY", "0.05".into()));
    let tmux = crate::tui::Tmux::start("hup23", &line, &env);
    wait_until(120, "the steps to start", || {
        tree.newest_run().is_some_and(|r| {
            std::fs::read_to_string(r.join("events.jsonl"))
                .is_ok_and(|e| e.contains("\"step-started\""))
        })
    });
    let run = tree.newest_run().unwrap();
    let pid = build_helper::rundir::live_pid(&run).expect("a live supervisor");
    let sup = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(sup, nix::sys::signal::Signal::SIGHUP).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        build_helper::rundir::live_pid(&run),
        Some(pid),
        "SIGHUP ended the detached supervisor"
    );
    nix::sys::signal::kill(sup, nix::sys::signal::Signal::SIGQUIT).unwrap();
    wait_until(30, "the supervisor to end", || {
        build_helper::rundir::live_pid(&run).is_none()
    });
    let log = std::fs::read_to_string(run.join("supervisor.log")).unwrap();
    assert!(
        log.contains(&format!("supervisor {pid} ends: run")) && log.contains("interrupted"),
        "{log}"
    );
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    let last = events.lines().last().unwrap_or_default();
    assert!(
        last.contains("\"run-finished\"") && last.contains("\"interrupted\""),
        "{events}"
    );
    drop(tmux);
    let out = tree.bh(&["umount", "--all"], &[]);
    assert!(out.status.success());
    assert_nothing_left(&tree);
}

/// Issue 23, finding 3 (the archiver): a squashfs tool that leaves a child (STAND-IN for
/// mksquashfs: it starts `sleep 600`, writes the start of its output and waits) runs in a
/// process group of its own, killed whole when the run stops the archive: no child of it
/// outlives the run.
#[test]
fn stopping_the_archive_kills_the_archivers_whole_group() {
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let tree = Tree::new();
    let bin = tree.path().join("groupbin");
    std::fs::create_dir_all(&bin).unwrap();
    let pid_file = tree.path().join("archiver-child");
    let script = format!(
        "#!/usr/bin/env python3\n\
         # STAND-IN for mksquashfs (squashfs-tools) that leaves a child: the archive never ends.\n\
         import subprocess, sys, time\n\
         child = subprocess.Popen(['sleep', '600'])\n\
         open('{}', 'w').write(str(child.pid))\n\
         open(sys.argv[2], 'wb').write(b'hsqs partial')\n\
         time.sleep(600)\n",
        pid_file.display()
    );
    let tool = bin.join("mksquashfs");
    std::fs::write(&tool, script).unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = spawn_run(&tree, "run", &[], &[("PATH", &path)]);
    wait_until(300, "the archive to start", || {
        partial_history(&tree) && pid_file.exists()
    });
    let sleep_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (code, _) = signal_and_wait(&mut child, nix::sys::signal::Signal::SIGINT);
    assert_eq!(code, Some(130), "{}", output_of(&tree, "run"));
    wait_until(5, "the archiver's child to be gone", || {
        std::fs::read_to_string(format!("/proc/{sleep_pid}/stat"))
            .map_or(true, |s| s.contains(") Z"))
    });
    assert!(histories(&tree).is_empty(), "{:?}", histories(&tree));
    assert_nothing_left(&tree);
}
