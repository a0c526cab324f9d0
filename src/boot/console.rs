//! Runs QEMU for `build-helper boot`: on the user's terminal, or as a smoke test that copies
//! the serial console to the terminal and to a transcript file while looking for a text.
//! QEMU is always waited for or killed before returning: no guest outlives the command.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// A smoke test's result: the outcome and the transcript's path.
#[derive(Debug)]
pub struct SmokeResult {
    /// How it ended.
    pub outcome: Outcome,
    /// The console transcript written.
    pub transcript: PathBuf,
}

/// Errors of starting or watching QEMU.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("starting {program}: {source}")]
    Start {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the console transcript {path}: {source}")]
    Transcript {
        path: PathBuf,
        source: std::io::Error,
    },
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

/// Runs QEMU with its serial console on a pipe: every byte goes to `echo` (the terminal) and
/// to `transcript` (created or truncated), until `expect` appears (then QEMU gets `grace`
/// to power off by itself before it is killed), QEMU ends, or `timeout` passes (QEMU is
/// killed). Standard input is empty; QEMU's own errors (stderr) go to the terminal.
///
/// Errors: [`ConsoleError`] when QEMU cannot be started or the transcript cannot be written.
pub fn smoke(
    qemu: &Path,
    args: &[String],
    expect: &str,
    timeout: Duration,
    transcript: &Path,
    echo: &mut dyn Write,
) -> Result<SmokeResult, ConsoleError> {
    let grace = Duration::from_secs(10);
    let mut file =
        std::fs::File::create(transcript).map_err(|source| ConsoleError::Transcript {
            path: transcript.to_path_buf(),
            source,
        })?;
    let start = Instant::now();
    let mut child = Command::new(qemu)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|source| ConsoleError::Start {
            program: qemu.to_path_buf(),
            source,
        })?;
    let Some(mut out) = child.stdout.take() else {
        stop(&mut child);
        return Err(ConsoleError::Wait(std::io::Error::other("no stdout pipe")));
    };
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    // The tail of the console kept for matching across reads.
    let mut window: Vec<u8> = Vec::new();
    let needle = expect.as_bytes();
    let mut seen: Option<Duration> = None;
    let outcome = loop {
        let deadline = match seen {
            Some(at) => at + grace,
            None => timeout,
        };
        let left = deadline.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok(chunk) => {
                file.write_all(&chunk)
                    .map_err(|source| ConsoleError::Transcript {
                        path: transcript.to_path_buf(),
                        source,
                    })?;
                // A closed terminal must not stop the test: echo errors are ignored.
                let _ = echo.write_all(&chunk).and_then(|_| echo.flush());
                if seen.is_none() {
                    window.extend_from_slice(&chunk);
                    if window.windows(needle.len().max(1)).any(|w| w == needle) {
                        seen = Some(start.elapsed());
                    }
                    let keep = needle.len().max(1) * 2 + 4096;
                    if window.len() > keep {
                        window.drain(..window.len() - keep);
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                stop(&mut child);
                break match seen {
                    Some(at) => Outcome::Seen(at),
                    None => Outcome::TimedOut,
                };
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().map_err(ConsoleError::Wait)?;
                break match seen {
                    Some(at) => Outcome::Seen(at),
                    None => Outcome::Ended(status.to_string()),
                };
            }
        }
    };
    let _ = reader.join();
    file.flush().map_err(|source| ConsoleError::Transcript {
        path: transcript.to_path_buf(),
        source,
    })?;
    Ok(SmokeResult {
        outcome,
        transcript: transcript.to_path_buf(),
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
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let mut echo = Vec::new();
        let r = smoke(
            Path::new("/bin/sh"),
            &sh("printf 'booting\\nbuild-helper: boo'; sleep 0.2; printf 'ted x\\n'"),
            "build-helper: booted x",
            Duration::from_secs(10),
            &log,
            &mut echo,
        )
        .unwrap();
        assert!(matches!(r.outcome, Outcome::Seen(_)), "{:?}", r.outcome);
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, "booting\nbuild-helper: booted x\n");
        assert_eq!(echo, text.as_bytes());
    }

    #[test]
    fn an_end_without_the_text_is_reported_with_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let r = smoke(
            Path::new("/bin/sh"),
            &sh("echo kernel panic; exit 3"),
            "booted",
            Duration::from_secs(10),
            &log,
            &mut std::io::sink(),
        )
        .unwrap();
        assert_eq!(r.outcome, Outcome::Ended("exit status: 3".into()));
    }

    #[test]
    fn a_silent_guest_is_killed_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let t = Instant::now();
        let r = smoke(
            Path::new("/bin/sh"),
            &sh("exec sleep 30"),
            "booted",
            Duration::from_millis(300),
            &log,
            &mut std::io::sink(),
        )
        .unwrap();
        assert_eq!(r.outcome, Outcome::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}
