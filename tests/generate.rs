//! `build-helper generate`: the man pages and completions follow the command line (every
//! visible subcommand; no page for the hidden `worker`, which clap_complete still completes),
//! and bad destinations or a closed pipe end in a message or quietly, never in a panic.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_build-helper");

/// The visible subcommands, as `build-helper --help` lists them.
fn visible_subcommands() -> Vec<String> {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    help.split("Commands:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_visible_subcommand_gets_a_man_page_and_completions() {
    let subs = visible_subcommands();
    assert!(subs.contains(&"run".to_string()), "{subs:?}");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["generate", "man"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for sub in &subs {
        let page = dir.path().join(format!("build-helper-{sub}.1"));
        let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{sub}: {e}"));
        assert!(text.contains(".SH NAME"), "{sub}");
    }
    assert!(!dir.path().join("build-helper-worker.1").exists());
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["generate", "completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in &subs {
            assert!(script.contains(sub.as_str()), "{shell}: {sub} missing");
        }
    }
}

#[test]
fn completion_into_a_closed_pipe_exits_quietly() {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = Command::new(BIN)
        .args(["generate", "completion", "bash"])
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    // Like `ls | head`: commands that only print take SIGPIPE's default back and end on it,
    // quietly, with no panic and no message.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn man_into_an_unwritable_place_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = Command::new(BIN)
        .args(["generate", "man"])
        .arg(file.join("man1"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a-file/man1"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
