//! A word when something needs you: the starter's `notify = ["cmd", "arg", ...]` command and
//! the terminal's bell and title.
//!
//! [`Notifier::send`] starts the command with the event as one JSON object on its standard
//! input (the same object as a line of `events.jsonl`), in a thread of its own, so the run
//! never waits for it. The command runs in a process group of its own, killed whole (SIGKILL)
//! when the command ends and at its timeout, so a child it left in the background never
//! outlives it, and its standard error is read without blocking, so such a child holding the
//! pipe never holds the run. Whatever goes
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
            log: crate::rundir::notify_log(run_dir),
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
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input closes the pipe: not an error.
            let _ = stdin.write_all(json.as_bytes());
            let _ = stdin.write_all(b"\n");
        }
        // Read without blocking: a child the command left in the background may hold the
        // pipe open for as long as it lives, and must never hold this thread (nor the run's
        // end, which joins it).
        let mut stderr = Capture::new(child.stderr.take());
        let started = Instant::now();
        let outcome = loop {
            stderr.drain();
            // Ended, not reaped yet (waitid(2) with WNOWAIT): a zombie keeps its pid, so the
            // group id names no one else while the group is killed (what the command left
            // in the background belongs to the run and ends with the command); then reaped.
            use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            match waitid(Id::Pid(group), flags) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(_) => {
                    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                    break match child.wait() {
                        Ok(status) => {
                            use std::os::unix::process::ExitStatusExt;
                            let code = status
                                .code()
                                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
                            if code == 0 {
                                Outcome::Sent
                            } else {
                                Outcome::Failed(code)
                            }
                        }
                        Err(e) => Outcome::NotStarted(e.to_string()),
                    };
                }
                Err(e) => {
                    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                    break Outcome::NotStarted(e.to_string());
                }
            }
            if started.elapsed() >= self.timeout {
                // The whole process group: a shell's children too.
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                break Outcome::TimedOut;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = child.wait();
        stderr.drain();
        (outcome, stderr.text())
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

/// The notify command's standard error, read without ever blocking, at most [`CAPTURE`]
/// bytes kept.
struct Capture {
    pipe: Option<std::process::ChildStderr>,
    bytes: Vec<u8>,
}

/// The most of a notify command's standard error kept for the log (64 KiB).
const CAPTURE: usize = 64 * 1024;

impl Capture {
    /// Takes `pipe` and makes it non-blocking (fcntl(2) `O_NONBLOCK`).
    fn new(pipe: Option<std::process::ChildStderr>) -> Capture {
        if let Some(p) = &pipe {
            use std::os::fd::AsRawFd;
            let fd = p.as_raw_fd();
            let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)
                .map(nix::fcntl::OFlag::from_bits_truncate)
                .unwrap_or(nix::fcntl::OFlag::empty());
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFL(flags | nix::fcntl::OFlag::O_NONBLOCK),
            );
        }
        Capture {
            pipe,
            bytes: Vec::new(),
        }
    }

    /// Reads what is there now; closes the pipe at its end or on an error.
    fn drain(&mut self) {
        let Some(p) = self.pipe.as_mut() else {
            return;
        };
        let mut buf = [0u8; 8192];
        loop {
            match p.read(&mut buf) {
                Ok(0) => {
                    self.pipe = None;
                    return;
                }
                Ok(n) => {
                    let room = CAPTURE.saturating_sub(self.bytes.len());
                    self.bytes.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.pipe = None;
                    return;
                }
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
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
    fn a_background_child_neither_holds_the_notifier_nor_outlives_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // The child keeps the command's standard error open for as long as it lives.
        let script = format!("sleep 600 & echo $! > {}", pid_file.display());
        let n = notifier(dir.path(), &["sh", "-c", &script], TIMEOUT);
        let t = Instant::now();
        assert_eq!(n.send("{}".into()).join().unwrap(), Outcome::Sent);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = Instant::now() + Duration::from_secs(5);
        while crate::sys::procs::linux::alive(pid) && Instant::now() < gone {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !crate::sys::procs::linux::alive(pid),
            "sleep {pid} outlived it"
        );
    }

    #[test]
    fn title_sequence_cannot_be_ended_by_the_title() {
        assert_eq!(bell_and_title("run done"), "\x07\x1b]0;run done\x07");
        assert_eq!(bell_and_title("a\x07b\x1bc"), "\x07\x1b]0;abc\x07");
    }
}
