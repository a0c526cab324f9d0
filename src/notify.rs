//! A word when something needs you: the starter's `notify = ["cmd", "arg", ...]` command and
//! the terminal's bell and title.
//!
//! [`Notifier::send`] starts the command with the event as one JSON object on its standard
//! input (the same object as a line of `events.jsonl`), in a thread of its own, so the run
//! never waits for it; a command that runs longer than its timeout is killed. Whatever goes
//! wrong (cannot start, exit status other than 0, timeout) is appended to
//! `<run dir>/logs/notify.log` with the command's standard error, and never stops the run.
//! [`bell_and_title`] is what a terminal front end writes: BEL (`\x07`) and the xterm
//! "set window title" sequence `ESC ] 0 ; TITLE BEL` (ctlseqs, OSC 0), understood by xterm,
//! tmux (as the pane title), GNOME Terminal, kitty, foot and others.
//!
//! Not here: deciding when (the supervisor: a step failed, a rescue shell waits, the run
//! ended).

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a notify command may run before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the starter's notify command.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// The command and its arguments (not run through a shell).
    pub argv: Vec<String>,
    /// Killed after this long.
    pub timeout: Duration,
    /// Failures are appended here.
    pub log: PathBuf,
}

/// How one notification went (returned by [`Notifier::run`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0.
    Sent,
    /// The command could not be started.
    NotStarted(String),
    /// It exited with another status (or a signal: 128 + N).
    Failed(i32),
    /// It ran longer than the timeout and was killed.
    TimedOut,
}

impl Notifier {
    /// A notifier for `argv` logging to `<run_dir>/logs/notify.log`; `None` when `argv` is
    /// empty (no notify command configured).
    pub fn new(argv: &[String], run_dir: &Path) -> Option<Notifier> {
        (!argv.is_empty()).then(|| Notifier {
            argv: argv.to_vec(),
            timeout: TIMEOUT,
            log: run_dir.join("logs").join("notify.log"),
        })
    }

    /// Sends `json` (one event object) without waiting: the command runs in its own thread.
    pub fn send(&self, json: String) -> std::thread::JoinHandle<Outcome> {
        let me = self.clone();
        std::thread::spawn(move || me.run(&json))
    }

    /// Runs the command with `json` and a newline on its standard input, waits for it (at
    /// most the timeout), logs any failure; returns how it went.
    pub fn run(&self, json: &str) -> Outcome {
        let (outcome, stderr) = self.exec(json);
        if outcome != Outcome::Sent {
            self.log_failure(&outcome, &stderr, json);
        }
        outcome
    }

    fn exec(&self, json: &str) -> (Outcome, String) {
        let Some((cmd, args)) = self.argv.split_first() else {
            return (Outcome::NotStarted("no command".into()), String::new());
        };
        let mut child = match Command::new(cmd)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => return (Outcome::NotStarted(e.to_string()), String::new()),
        };
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input closes the pipe: not an error.
            let _ = stdin.write_all(json.as_bytes());
            let _ = stdin.write_all(b"\n");
        }
        let mut err_pipe = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(p) = err_pipe.as_mut() {
                let _ = p.take(64 * 1024).read_to_string(&mut s);
            }
            s
        });
        let started = Instant::now();
        let outcome = loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    use std::os::unix::process::ExitStatusExt;
                    let code = status
                        .code()
                        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
                    break if code == 0 {
                        Outcome::Sent
                    } else {
                        Outcome::Failed(code)
                    };
                }
                Ok(None) if started.elapsed() >= self.timeout => {
                    // The whole process group: a shell's children too.
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(child.id() as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let _ = child.wait();
                    break Outcome::TimedOut;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => break Outcome::NotStarted(e.to_string()),
            }
        };
        let stderr = reader.join().unwrap_or_default();
        (outcome, stderr)
    }

    fn log_failure(&self, outcome: &Outcome, stderr: &str, json: &str) {
        let what = match outcome {
            Outcome::Sent => return,
            Outcome::NotStarted(e) => format!("could not start: {e}"),
            Outcome::Failed(code) => format!("exited with status {code}"),
            Outcome::TimedOut => format!("killed after {:.1} s", self.timeout.as_secs_f64()),
        };
        let line = format!(
            "{} build-helper: notify command {:?} {what}; event: {json}\n{}",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
            self.argv,
            stderr
                .lines()
                .map(|l| format!("  {l}\n"))
                .collect::<String>()
        );
        if let Some(dir) = self.log.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if written.is_err() {
            // Never a panic on a closed or hung-up stderr.
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }
}

/// The bytes that ring the terminal bell and set its window title to `title` (control
/// characters in the title are dropped, so it cannot end the sequence early).
pub fn bell_and_title(title: &str) -> String {
    let clean: String = title.chars().filter(|c| !c.is_control()).collect();
    format!("\x07\x1b]0;{clean}\x07")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notifier(dir: &Path, argv: &[&str], timeout: Duration) -> Notifier {
        Notifier {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            timeout,
            log: dir.join("logs/notify.log"),
        }
    }

    #[test]
    fn the_event_arrives_on_standard_input() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got");
        let script = format!("cat > {}", out.display());
        let n = notifier(dir.path(), &["sh", "-c", &script], TIMEOUT);
        let json = r#"{"event":"step-failed","target":"a.b"}"#;
        assert_eq!(n.send(json.to_string()).join().unwrap(), Outcome::Sent);
        assert_eq!(std::fs::read_to_string(out).unwrap(), format!("{json}\n"));
        assert!(!n.log.exists());
    }

    #[test]
    fn failures_and_timeouts_are_logged_not_raised() {
        let dir = tempfile::tempdir().unwrap();
        let n = notifier(
            dir.path(),
            &["sh", "-c", "echo no route to ntfy >&2; exit 7"],
            TIMEOUT,
        );
        assert_eq!(n.run("{}"), Outcome::Failed(7));
        let slow = notifier(dir.path(), &["sleep", "30"], Duration::from_millis(200));
        let t = Instant::now();
        assert_eq!(slow.run("{}"), Outcome::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(10));
        let missing = notifier(dir.path(), &["/nonexistent/notify"], TIMEOUT);
        assert!(matches!(missing.run("{}"), Outcome::NotStarted(_)));
        let log = std::fs::read_to_string(dir.path().join("logs/notify.log")).unwrap();
        assert!(log.contains("exited with status 7"), "{log}");
        assert!(log.contains("  no route to ntfy"), "{log}");
        assert!(log.contains("killed after 0.2 s"), "{log}");
        assert!(log.contains("could not start"), "{log}");
    }

    #[test]
    fn title_sequence_cannot_be_ended_by_the_title() {
        assert_eq!(bell_and_title("run done"), "\x07\x1b]0;run done\x07");
        assert_eq!(bell_and_title("a\x07b\x1bc"), "\x07\x1b]0;abc\x07");
    }
}
