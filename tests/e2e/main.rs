//! End-to-end tests: the real binary, as root, with real mounts, chroots, overlayfs, squashfs
//! and worker processes, on the demo/test stand-in stage3 served from a `file://` mirror laid
//! out like Gentoo's. Run by an ordinary user, each test that needs root skips with one line on
//! stderr; under `BH_TEST_STRICT=1` (scripts/test.sh, CI) it fails instead (tests/support/skip.rs).

mod attach;
mod boot;
mod common;
mod demo_screen;
mod detach;
mod dist;
mod distcc;
mod events;
mod faults;
mod history;
mod hostile;
mod job_pool;
mod portage;
mod rpi;
#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/tar_builder.rs"]
mod tar_builder;
#[path = "../support/temp_mirror.rs"]
mod temp_mirror;
mod tui;

use std::os::unix::process::CommandExt;
use std::process::Command;

use common::*;

fn date_of(tree: &Tree) -> String {
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tree.run_dir().join("plan.json")).unwrap()).unwrap();
    plan["date"].as_str().unwrap().to_string()
}

#[test]
fn plan_json_works_as_ordinary_user_and_lists_primary_first() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    // Let an unprivileged user read the tree.
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(tree.path())
        .status()
        .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["plan", "--json"])
        .arg(tree.starter())
        .env("BUILD_HELPER_TREE", tree.path())
        .uid(65534)
        .gid(65534);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let targets = plan["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3);
    let names: Vec<String> = targets
        .iter()
        .map(|t| {
            format!(
                "{}.{}",
                t["target"]["tuple"].as_str().unwrap(),
                t["target"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, TARGETS);
    assert_eq!(targets[0]["primary"], true);
    let steps: Vec<&str> = targets[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = vec![
        "host-sync",
        "host-portage",
        "host-toolchain",
        "crossdev",
        "rust-cross",
    ];
    expected.extend(build_helper::recipe::TARGET_STEPS);
    assert_eq!(steps, expected);
    let secondary: Vec<&str> = targets[1]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(secondary, build_helper::recipe::TARGET_STEPS);
    assert_eq!(plan["first_build"], true);
}

#[test]
fn demo_runs_in_parallel_then_updates_from_its_history() {
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let tree = Tree::new();
    let out = tree.run_demo(&[], &[]);
    assert_eq!(out.status.code(), Some(0));
    let date = date_of(&tree);
    for t in TARGETS {
        let efi = tree
            .path()
            .join(format!("builds/{t}.{date}/EFI/boot/bootx64.efi"));
        assert!(efi.is_file(), "{} missing", efi.display());
    }
    // Output is line-prefixed per target, and says nothing alarming that is not an error
    // (the stand-in stage3 lacked `mountpoint`: "mountpoint: not found").
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for text in [&stdout, &stderr] {
        for bad in ["not found", "No such file", "error:"] {
            assert!(!text.contains(bad), "the demo printed `{bad}`:\n{text}");
        }
    }
    for t in TARGETS {
        assert!(
            stdout.contains(&format!("[{t}] ")),
            "no output prefixed with {t}"
        );
    }
    // The history is a real squashfs holding every target's root.
    let history = tree.path().join(format!("history/{date}.sqfs"));
    assert!(history.is_file());
    let listing = Command::new("unsquashfs")
        .arg("-l")
        .arg(&history)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for t in TARGETS {
        assert!(
            listing.contains(&format!("/usr/{t}/usr/src/squashfs")),
            "history lacks /usr/{t}"
        );
    }
    assert!(
        mounts_anywhere(tree.path()).is_empty(),
        "{:?}",
        mounts_anywhere(tree.path())
    );

    // A waiting target's upper layer, filled while it waited (mounts::fill_upper) and by
    // its own steps' copy-ups: every directory the primary root has too keeps that
    // directory's mode and owner (a /tmp of 0755 would break Portage's unprivileged build).
    let data = tree.run_dir().join("root");
    let mut compared = 0;
    for t in &TARGETS[1..] {
        let name = t.rsplit('.').next().unwrap();
        let upper = data.join(format!("{name}-{date}/u"));
        for dir in walk_dirs(&upper) {
            let rel = dir.strip_prefix(&upper).unwrap();
            let Ok(lower) = std::fs::symlink_metadata(data.join("m").join(rel)) else {
                continue;
            };
            if !lower.is_dir() {
                continue;
            }
            let upper_meta = std::fs::symlink_metadata(&dir).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!(
                (upper_meta.mode(), upper_meta.uid(), upper_meta.gid()),
                (lower.mode(), lower.uid(), lower.gid()),
                "{} differs from the primary root's",
                dir.display()
            );
            compared += 1;
        }
    }
    assert!(
        compared > 0,
        "no directory of a waiting target's upper layer compared"
    );

    // toolchain-ready -> first step of the waiting target: measured from the events.
    let events = tree.events();
    for tuple in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"] {
        let ready = events
            .iter()
            .find(|e| e["event"] == "toolchain-ready" && e["tuple"] == tuple)
            .unwrap_or_else(|| panic!("no toolchain-ready {tuple}"))["t_us"]
            .as_u64()
            .unwrap();
        let waiting = if tuple.starts_with("x86") {
            TARGETS[1]
        } else {
            TARGETS[2]
        };
        let first = events
            .iter()
            .find(|e| e["event"] == "step-started" && e["target"] == waiting)
            .unwrap()["t_us"]
            .as_u64()
            .unwrap();
        let gap_ms = (first - ready) as f64 / 1000.0;
        eprintln!("toolchain-ready({tuple}) -> first step of {waiting}: {gap_ms:.2} ms");
        // Event-driven, not polled (the original polled every 5 s). The 100 ms goal is
        // measured by scripts/bench-latency.sh on the release binary; a timed assertion this
        // tight would fail on a loaded CI machine for reasons unrelated to the code.
        assert!(gap_ms < 500.0, "gap {gap_ms} ms");
    }

    // Repository syncs take turns: no two target-sync steps overlap.
    let mut syncs: Vec<(u64, u64)> = Vec::new();
    for t in TARGETS {
        let at = |kind: &str| {
            events
                .iter()
                .find(|e| e["event"] == kind && e["target"] == t && e["step"] == "target-sync")
                .unwrap_or_else(|| panic!("no {kind} target-sync for {t}"))["t_us"]
                .as_u64()
                .unwrap()
        };
        syncs.push((at("step-started"), at("step-finished")));
    }
    syncs.sort();
    for pair in syncs.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "target-sync steps overlap: {syncs:?}"
        );
    }

    // The history's metadata keeps per-package merge times (from the emerge.log files the
    // stand-in emerge writes in Portage's format) for the next run's estimates.
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tree.path().join(format!("history/{date}.json"))).unwrap(),
    )
    .unwrap();
    let times = meta["package_secs"]
        .as_object()
        .unwrap_or_else(|| panic!("no package_secs in the history metadata: {meta}"));
    assert!(times.contains_key("sys-apps/baselayout"), "{times:?}");

    // A second run starts from that history and takes the update path, with
    // GENTOO_MIRRORS added to every make.conf for the run only.
    let mirrors = "http://mirror.invalid/gentoo http://second.invalid/gentoo";
    let out = tree.run_demo(&[], &[("GENTOO_MIRRORS", mirrors)]);
    assert_eq!(out.status.code(), Some(0));
    let marker = build_helper::recipe::MIRRORS_MARKER;
    for t in TARGETS {
        assert!(
            tree.log(t)
                .contains(&format!("GENTOO_MIRRORS=\"{mirrors}\" {marker}")),
            "{t} did not add GENTOO_MIRRORS"
        );
        let conf = tree
            .path()
            .join(format!("configs/{t}/target-portage/make.conf"));
        let text = std::fs::read_to_string(&conf).unwrap();
        assert!(!text.contains(marker), "{}: {text}", conf.display());
    }
    let host_conf = tree
        .path()
        .join("configs/host-amd64/target-portage/make.conf");
    let text = std::fs::read_to_string(&host_conf).unwrap();
    assert!(
        !text.contains(marker) && !text.contains("GENTOO_MIRRORS="),
        "{text}"
    );
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tree.run_dir().join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["first_build"], false);
    assert_eq!(plan["targets"][0]["env"]["FIRST_BUILD"], "no");
    let date2 = date_of(&tree);
    assert_ne!(date, date2);
    assert!(tree.path().join(format!("history/{date2}.sqfs")).is_file());
    assert!(tree.log(TARGETS[0]).contains("stand-in emerge: --sync"));
    assert!(mounts_anywhere(tree.path()).is_empty());
    // Its progress events carry estimates: the first run's step and package times.
    let events = tree.events();
    let with_eta = events
        .iter()
        .filter(|e| e["event"] == "progress" && e["eta_ms"].is_u64() && e["run_eta_ms"].is_u64())
        .count();
    assert!(
        with_eta > 0,
        "no progress event with an ETA in the second run"
    );
}

#[test]
fn failed_step_resumes_without_rerunning_completed_steps() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let failing = format!("{}:target-world", TARGETS[1]);
    let first = tree.run_demo(&[], &[("BH_DEMO_FAIL", &failing)]);
    assert_eq!(first.status.code(), Some(1));
    assert!(mounts_anywhere(tree.path()).is_empty());
    let status = tree.bh(
        &[
            "status",
            tree.run_dir().file_name().unwrap().to_str().unwrap(),
        ],
        &[],
    );
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("target-world         failed"), "{status}");
    let before = tree.checkpoint();
    let done_before: Vec<String> = steps(&before, TARGETS[1])
        .into_iter()
        .filter(|(_, s, _)| s == "done")
        .map(|(n, _, _)| n)
        .collect();
    assert_eq!(done_before.len(), 5, "{done_before:?}");

    // `--resume` without a run continues only runs of the same starter.
    let other = tree.path().join("starters/other.toml");
    std::fs::copy(tree.starter(), &other).unwrap();
    let cp_files = || {
        ["checkpoint.json", "checkpoint.log"]
            .map(|f| std::fs::read(tree.run_dir().join(f)).unwrap())
    };
    let cp_bytes = cp_files();
    let out = tree.bh(
        &["run", other.to_str().unwrap(), "--ui", "plain", "--resume"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let run_name = tree
        .run_dir()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        stderr.contains("no unfinished run of") && stderr.contains(&run_name),
        "{stderr}"
    );
    assert_eq!(
        cp_files(),
        cp_bytes,
        "another starter's --resume touched the run"
    );

    // The hint the failed run printed works as written.
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr)
    );
    let hint = printed
        .split("continue with `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no hint in:\n{printed}"));
    let words: Vec<&str> = hint.split_whitespace().collect();
    assert_eq!(words[..2], ["build-helper", "run"], "{hint}");
    assert!(
        words.contains(&"--resume") && words.contains(&run_name.as_str()),
        "{hint}"
    );
    let mut args = words[1..].to_vec();
    args.extend(["--ui", "plain"]);
    let out = tree.bh(&args, &[("BH_DEMO_FAIL", &failing)]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(out.status.code(), Some(0));
    let after = tree.checkpoint();
    assert_eq!(after["finished"], true);
    for t in TARGETS {
        for (name, state, attempts) in steps(&after, t) {
            assert_eq!(state, "done", "{t} {name}");
            let expected = if t == TARGETS[1] && name == "target-world" {
                2
            } else {
                1
            };
            assert_eq!(attempts, expected, "{t} {name} ran {attempts} times");
        }
    }
    // The log agrees: each completed step started once.
    let log = tree.log(TARGETS[1]);
    for name in &done_before {
        assert_eq!(
            log.matches(&format!("step {name} started")).count(),
            1,
            "{name}"
        );
    }
    assert_eq!(log.matches("step target-world started").count(), 2);
    assert!(mounts_anywhere(tree.path()).is_empty());

    // `--resume` of the finished run says so and changes nothing: no new history, the
    // checkpoint and the history metadata stay as they are.
    let listing = |dir: &std::path::Path| {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                (
                    p.display().to_string(),
                    std::fs::read(&p).unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let history_before = listing(&tree.path().join("history"));
    let run_before = listing(&tree.run_dir());
    let out = tree.run_demo(&["--resume", &run_name], &[]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("run {run_name} is finished")),
        "{stdout}"
    );
    assert_eq!(listing(&tree.path().join("history")), history_before);
    assert_eq!(listing(&tree.run_dir()), run_before);
}

#[test]
fn retry_reruns_every_target_from_its_first_step() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let failing = format!("{}:kernel", TARGETS[2]);
    let out = tree.run_demo(&[], &[("BH_DEMO_FAIL", &failing)]);
    assert_eq!(out.status.code(), Some(1));
    let out = tree.run_demo(&["--retry"], &[("BH_DEMO_FAIL", &failing)]);
    assert_eq!(out.status.code(), Some(0));
    let cp = tree.checkpoint();
    for t in TARGETS {
        let s = steps(&cp, t);
        let first = if t == TARGETS[0] {
            "host-sync"
        } else {
            "target-env"
        };
        assert_eq!(s[0].0, first);
        assert_eq!(s[0].2, 2, "{t}: first step ran {} times", s[0].2);
        assert_eq!(
            tree.log(t)
                .matches(&format!("step {first} started"))
                .count(),
            2
        );
    }
    assert!(mounts_anywhere(tree.path()).is_empty());
}

#[test]
fn kill_9_of_the_supervisor_then_umount_all_and_resume() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let mut child = Command::new(BIN)
        .args(["run", tree.starter().to_str().unwrap(), "--ui", "plain"])
        .env("BUILD_HELPER_TREE", tree.path())
        .env("TARBALL_MIRROR", mirror())
        .env("BH_OPENPGP_KEY", mirror_key())
        .env("BH_DEMO_DELAY", "0.05")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a secondary target is building in its stacked overlay.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no secondary target started"
        );
        let started = std::fs::read_dir(tree.path().join("work"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.ok()?.path().join("events.jsonl")).ok())
            .is_some_and(|ev| {
                ev.contains(&format!("\"step-started\",\"target\":\"{}\"", TARGETS[1]))
            });
        if started {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !mounts_anywhere(tree.path()).is_empty(),
        "the run should hold mounts now"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait();
    let out = tree.bh(&["umount", "--all"], &[]);
    assert!(out.status.success());
    assert!(
        mounts_anywhere(tree.path()).is_empty(),
        "{:?}",
        mounts_anywhere(tree.path())
    );
    let out = tree.run_demo(&["--resume"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(tree.checkpoint()["finished"], true);
    assert!(mounts_anywhere(tree.path()).is_empty());
}

fn assert_bad_input(tree: &Tree, out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(needle), "`{needle}` not in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(mounts_anywhere(tree.path()).is_empty());
    // Nothing extracted: no environment root exists.
    let extracted = std::fs::read_dir(tree.path().join("work"))
        .unwrap()
        .flatten()
        .any(|e| e.path().join("root/m").exists() || e.path().join("M/m").exists());
    assert!(!extracted, "something was extracted");
}

#[test]
fn bad_input_exits_2_with_a_clear_message_and_touches_nothing() {
    if !require_root() {
        return;
    }
    let run = |tree: &Tree| {
        tree.bh(
            &["run", tree.starter().to_str().unwrap(), "--ui", "plain"],
            &[],
        )
    };
    let demo_a = "configs/x86_64-unknown-linux-musl.demo-a";

    let tree = Tree::new();
    std::fs::remove_file(tree.path().join(demo_a).join("build-arch")).unwrap();
    assert_bad_input(&tree, &run(&tree), "build-arch");

    let tree = Tree::new();
    std::fs::write(tree.path().join(demo_a).join("worlds/tree/net"), "tools\n").unwrap();
    assert_bad_input(&tree, &run(&tree), "cycle");

    let tree = Tree::new();
    std::fs::write(tree.path().join(demo_a).join("worlds/tree/ghost"), "base\n").unwrap();
    assert_bad_input(&tree, &run(&tree), "ghost");

    let tree = Tree::new();
    let s = std::fs::read_to_string(tree.starter()).unwrap();
    std::fs::write(
        tree.starter(),
        s.replacen("x86_64-unknown-linux-musl", "x86_64-linux-musl", 1),
    )
    .unwrap();
    assert_bad_input(&tree, &run(&tree), "x86_64-linux-musl");

    let tree = Tree::new();
    std::fs::write(
        tree.starter(),
        s.replacen("name = \"demo-a\"", "name = \"demo/a\"", 1),
    )
    .unwrap();
    assert_bad_input(&tree, &run(&tree), "demo/a");

    let tree = Tree::new();
    std::fs::write(
        tree.starter(),
        s.replacen(
            "umount_ask = false",
            "umount_ask = false\nmount_typo = \"bind\"",
            1,
        ),
    )
    .unwrap();
    let out = run(&tree);
    assert_bad_input(&tree, &out, "mount_typo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = std::fs::read_to_string(tree.starter())
        .unwrap()
        .lines()
        .position(|l| l.starts_with("mount_typo"))
        .unwrap()
        + 1;
    assert!(stderr.contains(&format!("demo.toml:{line}:")), "{stderr}");

    // A stage3 whose digest does not match: a mirror copy with one byte of the tarball changed.
    let tree = Tree::new();
    let mirror_dir = tree.path().join("bad-mirror");
    let src = mirror().trim_start_matches("file://").to_string();
    assert!(Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&mirror_dir)
        .status()
        .unwrap()
        .success());
    let tarball = walk(&mirror_dir)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".tar.xz"))
        .unwrap();
    let mut bytes = std::fs::read(&tarball).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&tarball, bytes).unwrap();
    let url = format!("file://{}", mirror_dir.display());
    let out = tree.run_demo(&[], &[("TARBALL_MIRROR", &url)]);
    assert_bad_input(&tree, &out, "stage3");
    let kept: Vec<_> = std::fs::read_dir(tree.path().join("distfiles"))
        .unwrap()
        .flatten()
        .collect();
    assert!(kept.is_empty(), "a tampered download was kept: {kept:?}");
}

/// Every directory below `dir` (not following links), `dir` excluded.
fn walk_dirs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(e.path());
                todo.push(e.path());
            }
        }
    }
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Every file, directory and link under `dir` (relative path, kind, mode, content or link
/// target) as one SHA-256, skipping `skip` (relative paths).
fn hash_tree(dir: &std::path::Path, skip: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::PermissionsExt;
    fn walk(
        base: &std::path::Path,
        dir: &std::path::Path,
        skip: &[&str],
        out: &mut Vec<(String, String)>,
    ) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if skip.contains(&rel.as_str()) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode();
            let what = if meta.file_type().is_symlink() {
                format!(
                    "link {mode:o} {}",
                    std::fs::read_link(&path).unwrap().display()
                )
            } else if meta.is_dir() {
                walk(base, &path, skip, out);
                format!("dir {mode:o}")
            } else {
                let bytes = std::fs::read(&path).unwrap();
                format!("file {mode:o} {:x}", Sha256::digest(&bytes))
            };
            out.push((rel, what));
        }
    }
    let mut all = Vec::new();
    walk(dir, dir, skip, &mut all);
    let mut h = Sha256::new();
    for (rel, what) in &all {
        h.update(format!("{rel}\0{what}\n"));
    }
    format!("{:x} ({} entries)", h.finalize(), all.len())
}

#[test]
fn a_run_never_writes_into_configs_except_the_saved_host_world() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let configs = tree.path().join("configs");
    // The host world is saved back by archive-history, by design.
    let skip = ["host-amd64/worlds/base"];
    let before = hash_tree(&configs, &skip);
    let mirrors = "http://mirror.invalid/gentoo";
    let failing = format!("{}:target-world", TARGETS[1]);
    let env = [
        ("GENTOO_MIRRORS", mirrors),
        ("BH_DEMO_FAIL", failing.as_str()),
    ];
    let out = tree.run_demo(&[], &env);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        hash_tree(&configs, &skip),
        before,
        "the failed run wrote into configs/"
    );
    // The run did edit its configuration, in its own upper layer.
    let upper = tree.run_dir().join("root/conf/u");
    let marker = build_helper::recipe::MIRRORS_MARKER;
    let edited = std::fs::read_to_string(upper.join("host-amd64/target-portage/make.conf"))
        .unwrap_or_else(|e| panic!("no edited host make.conf in {}: {e}", upper.display()));
    assert!(edited.contains(marker), "{edited}");
    let out = tree.run_demo(&["--resume"], &env);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        hash_tree(&configs, &skip),
        before,
        "the resumed run wrote into configs/"
    );
    assert!(
        std::fs::read(configs.join("host-amd64/worlds/base")).is_ok(),
        "the host world was not saved back"
    );
    assert!(mounts_anywhere(tree.path()).is_empty());
}
