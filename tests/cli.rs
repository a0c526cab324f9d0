//! The command line as a newcomer meets it, without root: commands that print end quietly on
//! a closed pipe, `shell RUN -c CMD` parses, `umount` without a run names `--all`, `history
//! show latest` picks the newest history and lists step durations in the order they ran.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_build-helper");
const SRC: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `build-helper ARGS` with its standard output a pipe whose reader is already closed,
/// as `build-helper ARGS | head -0` would leave it.
fn with_closed_stdout(args: &[&str], tree: &Path) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(BIN)
        .args(args)
        .current_dir(tree)
        .env_remove("BUILD_HELPER_TREE")
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run build-helper")
}

fn run(args: &[&str], tree: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .env("BUILD_HELPER_TREE", tree)
        .output()
        .expect("run build-helper")
}

/// Writes a history directory with metadata whose steps are not in name order.
fn fake_history(tree: &Path, name: &str, steps: &[(&str, u64)]) {
    let dir = tree.join("history").join(name);
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::create_dir_all(dir.join("usr")).unwrap();
    let steps: Vec<String> = steps
        .iter()
        .map(|(s, ms)| format!("\"{s}\": {ms}"))
        .collect();
    let meta = format!(
        r#"{{"name": "{name}", "created": "2026-01-01T00:00:00Z", "kind": "files",
        "size_bytes": 1, "targets": ["x86_64-unknown-linux-musl.a"], "starter": "s.toml",
        "run_id": "a-{name}", "based_on": null, "tool_version": "0", "compression": null,
        "archive_ms": 0, "step_ms": {{"x86_64-unknown-linux-musl.a": {{{}}}}}}}"#,
        steps.join(", ")
    );
    std::fs::write(tree.join("history").join(format!("{name}.json")), meta).unwrap();
}

#[test]
fn printing_commands_end_quietly_on_a_closed_pipe() {
    let tree = tempfile::tempdir().unwrap();
    fake_history(tree.path(), "20260101-000000", &[("host-sync", 1)]);
    let starter = format!("{SRC}/starters/demo.toml");
    let configs = format!("{SRC}/configs/x86_64-unknown-linux-musl.demo-a");
    for args in [
        vec!["plan", starter.as_str(), "--json"],
        vec!["plan", starter.as_str()],
        vec!["check", configs.as_str()],
        vec!["status", "--json"],
        vec!["status"],
        vec!["history", "list"],
        vec!["history", "show", "latest"],
        vec!["--help"],
    ] {
        let out = with_closed_stdout(&args, tree.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "build-helper {args:?} on a closed pipe printed: {stderr}"
        );
        // Ended by SIGPIPE (as `ls | head` is) or exited 0; never 101 (a panic).
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.signal() == Some(libc::SIGPIPE) || out.status.code() == Some(0),
            "build-helper {args:?} on a closed pipe: {:?}",
            out.status
        );
    }
}

#[test]
fn shell_takes_dash_c_right_after_the_run() {
    let tree = tempfile::tempdir().unwrap();
    for args in [
        &["shell", "nosuchrun", "-c", "ls /"][..],
        &[
            "shell",
            "nosuchrun",
            "x86_64-unknown-linux-musl.a",
            "-c",
            "ls /",
        ][..],
    ] {
        let out = run(args, tree.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Parsed: the error is about the run, not the arguments.
        assert!(
            stderr.contains("run `nosuchrun`") && stderr.contains("does not exist"),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("unexpected argument"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn umount_without_a_run_names_all() {
    let tree = tempfile::tempdir().unwrap();
    let out = run(&["umount"], tree.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--all"), "{stderr}");
    assert!(stderr.contains("build-helper status"), "{stderr}");
}

#[test]
fn stop_without_a_live_run_is_bad_input_naming_the_tree() {
    let tree = tempfile::tempdir().unwrap();
    let out = run(&["stop"], tree.path());
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if nix::unistd::geteuid().is_root() {
        let work = tree.path().join("work").display().to_string();
        assert!(
            stderr.contains("no live run in") && stderr.contains(&work),
            "{stderr}"
        );
    } else {
        assert!(stderr.contains("stop needs root"), "{stderr}");
    }
}

#[test]
fn history_show_latest_lists_steps_in_run_order() {
    let tree = tempfile::tempdir().unwrap();
    fake_history(tree.path(), "20260101-000000", &[("old-step", 1)]);
    fake_history(
        tree.path(),
        "20260102-000000",
        &[("host-sync", 1000), ("crossdev", 2000), ("archive", 500)],
    );
    let out = run(&["history", "show", "latest"], tree.path());
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("name     20260102-000000"), "{stdout}");
    let pos = |s: &str| stdout.find(s).unwrap_or_else(|| panic!("{s} in {stdout}"));
    assert!(pos("host-sync") < pos("crossdev") && pos("crossdev") < pos("archive"));
    assert!(!stdout.contains("old-step"));

    let empty = tempfile::tempdir().unwrap();
    let out = run(&["history", "show", "latest"], empty.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("history list"));
}

/// Every `docs/<file>.md` the README, `--help` or a message in the source cites exists, and
/// nothing cites the design specs, which are not part of the repository.
#[test]
fn every_cited_docs_path_exists() {
    let mut texts: Vec<(String, String)> = Vec::new();
    texts.push((
        "README.md".into(),
        std::fs::read_to_string(format!("{SRC}/README.md")).unwrap(),
    ));
    let tree = tempfile::tempdir().unwrap();
    for cmd in [
        "", "plan", "check", "run", "history", "shell", "status", "stop", "umount",
    ] {
        let mut args: Vec<&str> = cmd.split_whitespace().collect();
        args.push("--help");
        let out = run(&args, tree.path());
        assert!(out.status.success(), "{args:?}: {out:?}");
        texts.push((
            format!("build-helper {cmd} --help"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
    }
    fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                // Messages, not comments: a comment may cite the design notes.
                let code: String = std::fs::read_to_string(&p)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect::<Vec<_>>()
                    .join("\n");
                out.push((p.display().to_string(), code));
            }
        }
    }
    sources(&Path::new(SRC).join("src"), &mut texts);

    let mut cited = 0;
    for (origin, text) in &texts {
        let mut rest = text.as_str();
        while let Some(i) = rest.find("docs/") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || "/._-".contains(c)))
                .unwrap_or(tail.len());
            let path = tail[..end].trim_end_matches('.');
            if path.ends_with(".md") {
                cited += 1;
                assert!(
                    Path::new(SRC).join(path).is_file(),
                    "{origin} cites {path}, which is not in the repository"
                );
            }
            rest = &tail[end.max(5)..];
        }
        assert!(
            !text.contains("spec/recipe.md") && !text.contains("spec/target-config.md"),
            "{origin} cites the design specs; cite docs/ instead"
        );
    }
    // The README cites each reference file, and --help and the messages cite some.
    for doc in ["starter", "configuration", "recipe", "mirror"] {
        assert!(
            texts[0].1.contains(&format!("docs/{doc}.md")),
            "README.md does not cite docs/{doc}.md"
        );
    }
    assert!(cited >= 8, "only {cited} citations found");
}
