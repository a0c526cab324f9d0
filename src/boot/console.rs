//! Runs QEMU for `build-helper boot`: on the user's terminal, as a smoke test that copies the
//! serial console to the terminal while looking for a text ([`smoke`]), or typing a command
//! on the booted console and reading its output and status ([`run`], the text side in
//! [`super::run`]). The console transcript is kept in memory (at most [`TRANSCRIPT_LIMIT`]
//! bytes) for the caller to save. QEMU is always waited for or killed before returning: no
//! guest outlives the command.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::run as text;

/// The most console bytes kept in a transcript; what comes later is shown, not kept.
pub const TRANSCRIPT_LIMIT: usize = 16 << 20;

/// How a smoke test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The console printed the text after this long (from QEMU's start).
    Seen(Duration),
    /// QEMU ended (the guest powered off, rebooted or panicked) without printing it.
    Ended(String),
    /// The time ran out; QEMU was killed.
    TimedOut,
}

/// A smoke test's result: the outcome and the console transcript.
#[derive(Debug)]
pub struct SmokeResult {
    /// How it ended.
    pub outcome: Outcome,
    /// The console's bytes (the first [`TRANSCRIPT_LIMIT`]).
    pub transcript: Vec<u8>,
}

/// How a `--run` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The command ran: its output and status, and the time from QEMU's start to the
    /// shell's first answer (the boot time).
    Ran {
        /// What the command printed, and its status.
        ran: text::Ran,
        /// QEMU's start to the shell answering the probe.
        booted: Duration,
    },
    /// QEMU ended before the command's end marker was printed.
    Ended(String),
    /// The time ran out (no shell, or the command did not finish); QEMU was killed.
    TimedOut {
        /// A shell had answered the probe: the command itself took too long.
        shell: bool,
    },
}

/// A `--run`'s result: the outcome and the console transcript.
#[derive(Debug)]
pub struct RunResult {
    /// How it ended.
    pub outcome: RunOutcome,
    /// The console's bytes (the first [`TRANSCRIPT_LIMIT`]).
    pub transcript: Vec<u8>,
}

/// Errors of starting or watching QEMU.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("starting {program}: {source}")]
    Start {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("typing on the guest's console: {0}")]
    Type(std::io::Error),
    #[error("waiting for QEMU: {0}")]
    Wait(std::io::Error),
}

/// Runs QEMU with the terminal as its console (stdin, stdout, stderr inherited) and returns
/// its exit status.
///
/// Errors: [`ConsoleError::Start`], [`ConsoleError::Wait`].
pub fn interactive(qemu: &Path, args: &[String]) -> Result<ExitStatus, ConsoleError> {
    let mut child =
        Command::new(qemu)
            .args(args)
            .spawn()
            .map_err(|source| ConsoleError::Start {
                program: qemu.to_path_buf(),
                source,
            })?;
    child.wait().map_err(ConsoleError::Wait)
}

/// Kills and reaps QEMU (it is ours; a guest never outlives the command).
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The console of a started QEMU: its chunks arrive on a channel from a reader thread.
struct Console {
    child: Child,
    rx: mpsc::Receiver<Vec<u8>>,
    reader: Option<std::thread::JoinHandle<()>>,
    start: Instant,
    transcript: Vec<u8>,
}

impl Console {
    /// Starts `qemu args` with the console on pipes (standard input piped when `typing`,
    /// else empty); QEMU's own errors (stderr) go to the terminal.
    fn start(qemu: &Path, args: &[String], typing: bool) -> Result<Console, ConsoleError> {
        let start = Instant::now();
        let mut child = Command::new(qemu)
            .args(args)
            .stdin(if typing {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|source| ConsoleError::Start {
                program: qemu.to_path_buf(),
                source,
            })?;
        let Some(out) = child.stdout.take() else {
            stop(&mut child);
            return Err(ConsoleError::Wait(std::io::Error::other("no stdout pipe")));
        };
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let reader = std::thread::spawn(move || read_all(out, tx));
        Ok(Console {
            child,
            rx,
            reader: Some(reader),
            start,
            transcript: Vec::new(),
        })
    }

    /// Keeps `chunk` in the transcript (up to [`TRANSCRIPT_LIMIT`]) and shows it on `echo`
    /// (a closed terminal must not stop the boot: echo errors are ignored).
    fn keep(&mut self, chunk: &[u8], echo: &mut dyn Write) {
        let room = TRANSCRIPT_LIMIT.saturating_sub(self.transcript.len());
        self.transcript
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
        let _ = echo.write_all(chunk).and_then(|_| echo.flush());
    }

    /// Types `text` on the guest's console.
    fn type_text(&mut self, text: &str) -> Result<(), ConsoleError> {
        let Some(stdin) = self.child.stdin.as_mut() else {
            return Err(ConsoleError::Type(std::io::Error::other("no stdin pipe")));
        };
        stdin
            .write_all(text.as_bytes())
            .and_then(|_| stdin.flush())
            .map_err(ConsoleError::Type)
    }

    /// Kills QEMU (unless it ended) and reaps it, then the reader thread; returns the
    /// transcript.
    fn finish(mut self) -> Vec<u8> {
        stop(&mut self.child);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        std::mem::take(&mut self.transcript)
    }
}

/// Copies `out` to `tx` until the end of the pipe or until nobody listens.
fn read_all(mut out: ChildStdout, tx: mpsc::Sender<Vec<u8>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = out.read(&mut buf) {
        if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
            break;
        }
    }
}

/// Runs QEMU with its serial console on a pipe: every byte goes to `echo` (the terminal) and
/// to the transcript, until `expect` appears (then QEMU gets `grace` to power off by itself
/// before it is killed), QEMU ends, or `timeout` passes (QEMU is killed). Standard input is
/// empty; QEMU's own errors (stderr) go to the terminal.
///
/// Errors: [`ConsoleError`] when QEMU cannot be started or waited for.
pub fn smoke(
    qemu: &Path,
    args: &[String],
    expect: &str,
    timeout: Duration,
    echo: &mut dyn Write,
) -> Result<SmokeResult, ConsoleError> {
    let grace = Duration::from_secs(10);
    let mut con = Console::start(qemu, args, false)?;
    // The tail of the console kept for matching across reads.
    let mut window: Vec<u8> = Vec::new();
    let needle = expect.as_bytes();
    let mut seen: Option<Duration> = None;
    let outcome = loop {
        let deadline = match seen {
            Some(at) => at + grace,
            None => timeout,
        };
        let left = deadline.saturating_sub(con.start.elapsed());
        match con.rx.recv_timeout(left) {
            Ok(chunk) => {
                con.keep(&chunk, echo);
                if seen.is_none() {
                    window.extend_from_slice(&chunk);
                    if window.windows(needle.len().max(1)).any(|w| w == needle) {
                        seen = Some(con.start.elapsed());
                    }
                    let keep = needle.len().max(1) * 2 + 4096;
                    if window.len() > keep {
                        window.drain(..window.len() - keep);
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                break match seen {
                    Some(at) => Outcome::Seen(at),
                    None => Outcome::TimedOut,
                };
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = con.child.wait().map_err(ConsoleError::Wait)?;
                break match seen {
                    Some(at) => Outcome::Seen(at),
                    None => Outcome::Ended(status.to_string()),
                };
            }
        }
    };
    Ok(SmokeResult {
        outcome,
        transcript: con.finish(),
    })
}

/// Boots with QEMU's console on pipes and runs `cmd` on it: at a login prompt
/// ([`text::asks_login`]) root is typed (at most three times); once the console looks like
/// a shell waiting ([`text::waits_for_input`]: busybox init's askfirst line or a prompt) a
/// probe is typed, and when the shell answers it the command line ([`text::command_line`])
/// is typed; its output is read between the markers. Every console byte goes to `echo`.
/// QEMU is killed as soon as the command's status is read, at `timeout` (from QEMU's start),
/// or reaped when it ends by itself.
///
/// Errors: [`ConsoleError`] when QEMU cannot be started, typed to or waited for.
pub fn run(
    qemu: &Path,
    args: &[String],
    cmd_line: &str,
    marker: &str,
    timeout: Duration,
    echo: &mut dyn Write,
) -> Result<RunResult, ConsoleError> {
    // A probe unanswered this long is typed again when a prompt shows.
    let reprobe = Duration::from_secs(5);
    let mut con = Console::start(qemu, args, true)?;
    // Where the probe's answer, then the command's output, is looked for in the transcript.
    let mut probe: Option<(Instant, usize)> = None;
    let mut ran_from: Option<(usize, Duration)> = None;
    // Where the last login was typed (a prompt seen again later is a new one), and how many.
    let mut logins: (usize, u32) = (0, 0);
    let outcome = loop {
        let left = timeout.saturating_sub(con.start.elapsed());
        if left.is_zero() {
            break RunOutcome::TimedOut {
                shell: ran_from.is_some(),
            };
        }
        match con.rx.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(chunk) => con.keep(&chunk, echo),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = con.child.wait().map_err(ConsoleError::Wait)?;
                break RunOutcome::Ended(status.to_string());
            }
        }
        let t = &con.transcript;
        if let Some((from, booted)) = ran_from {
            if let Some(ran) = text::parse(&t[from..], marker) {
                break RunOutcome::Ran { ran, booted };
            }
            continue;
        }
        let tail = &t[t.len().saturating_sub(512)..];
        if probe.is_none() && t.len() > logins.0 && logins.1 < 3 && text::asks_login(tail) {
            logins = (t.len(), logins.1 + 1);
            con.type_text(text::LOGIN)?;
            continue;
        }
        match probe {
            Some((_, from)) if text::is_ready(&t[from..], marker) => {
                let at = t.len();
                con.type_text(cmd_line)?;
                ran_from = Some((at, con.start.elapsed()));
            }
            Some((sent, _)) if sent.elapsed() < reprobe => {}
            _ if text::waits_for_input(tail) => {
                let at = probe.map_or(t.len(), |(_, from)| from);
                con.type_text(&text::probe_line(marker))?;
                probe = Some((Instant::now(), at));
            }
            _ => {}
        }
    };
    Ok(RunResult {
        outcome,
        transcript: con.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["-c".into(), script.into()]
    }

    #[test]
    fn the_text_is_found_across_reads_and_the_transcript_is_kept() {
        let mut echo = Vec::new();
        let r = smoke(
            Path::new("/bin/sh"),
            &sh("printf 'booting\\nbuild-helper: boo'; sleep 0.2; printf 'ted x\\n'"),
            "build-helper: booted x",
            Duration::from_secs(10),
            &mut echo,
        )
        .unwrap();
        assert!(matches!(r.outcome, Outcome::Seen(_)), "{:?}", r.outcome);
        assert_eq!(r.transcript, b"booting\nbuild-helper: booted x\n");
        assert_eq!(echo, r.transcript);
    }

    #[test]
    fn an_end_without_the_text_is_reported_with_its_status() {
        let r = smoke(
            Path::new("/bin/sh"),
            &sh("echo kernel panic; exit 3"),
            "booted",
            Duration::from_secs(10),
            &mut std::io::sink(),
        )
        .unwrap();
        assert_eq!(r.outcome, Outcome::Ended("exit status: 3".into()));
    }

    #[test]
    fn a_silent_guest_is_killed_at_the_timeout() {
        let t = Instant::now();
        let r = smoke(
            Path::new("/bin/sh"),
            &sh("exec sleep 30"),
            "booted",
            Duration::from_millis(300),
            &mut std::io::sink(),
        )
        .unwrap();
        assert_eq!(r.outcome, Outcome::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    /// A guest stand-in: boot noise, busybox init's askfirst line, then a shell reading the
    /// console (a pipe here: no echo).
    const ASKFIRST: &str =
        "printf 'Run /init\\n\\nPlease press Enter to activate this console. '; \
                            read -r enter; exec sh 2>&1";

    fn run_on(guest: &str, cmd: &str, timeout: Duration) -> RunResult {
        let marker = text::new_marker();
        let line = text::command_line(&marker, cmd).unwrap();
        run(
            Path::new("/bin/sh"),
            &sh(guest),
            &line,
            &marker,
            timeout,
            &mut std::io::sink(),
        )
        .unwrap()
    }

    #[test]
    fn run_answers_askfirst_types_the_command_and_returns_its_output_and_status() {
        let r = run_on(
            ASKFIRST,
            "echo one; echo two >&2; exit 7",
            Duration::from_secs(20),
        );
        let RunOutcome::Ran { ran, .. } = r.outcome else {
            panic!("{:?}", r.outcome);
        };
        assert_eq!(ran.output, "one\ntwo\n");
        assert_eq!(ran.status, 7);
        assert!(String::from_utf8_lossy(&r.transcript).contains("activate this console"));
    }

    #[test]
    fn run_logs_in_as_root_at_a_login_prompt() {
        let guest = "printf 'gentoo login: '; read -r user; [ \"$user\" = root ] || exit 9; \
                     printf '~ # '; exec sh 2>&1";
        let r = run_on(guest, "echo logged-in", Duration::from_secs(20));
        let RunOutcome::Ran { ran, .. } = r.outcome else {
            panic!("{:?}", r.outcome);
        };
        assert_eq!(ran.output, "logged-in\n");
    }

    #[test]
    fn run_reports_a_guest_that_ends_before_a_shell_answers() {
        let r = run_on("echo kernel panic; exit 1", "true", Duration::from_secs(20));
        assert_eq!(r.outcome, RunOutcome::Ended("exit status: 1".into()));
    }

    #[test]
    fn run_kills_a_guest_whose_command_does_not_finish_at_the_timeout() {
        let t = Instant::now();
        // Short: the killed stand-in's subshell outlives it until then.
        let r = run_on(ASKFIRST, "sleep 4", Duration::from_secs(2));
        assert_eq!(r.outcome, RunOutcome::TimedOut { shell: true });
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}
