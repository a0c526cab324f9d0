//! Running one step: a chrooted `/bin/sh -c SCRIPT` in its own session, output teed to the
//! worker's terminal and the log, `toolchain-ready` lines read from file descriptor 3, and
//! the output's Portage / crossdev progress lines reported as `progress` messages.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Link, STEP_PGID};
use crate::engine::protocol::WorkerMsg;
use crate::progress::Tracker;
use crate::recipe::Step;

/// How a step ended.
pub struct Outcome {
    /// Exit code; 128 + signal number when killed; 127 when it could not start.
    pub exit_code: i32,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

fn stamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn log_line(log: &Mutex<File>, line: &str) {
    // The terminal may be gone (supervisor died): never panic on a failed write.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
    drop(out);
    if let Ok(mut f) = log.lock() {
        let _ = f.write_all(line.as_bytes());
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

/// Runs `step` chrooted into `root` with exactly `env` (plus `BUILD_HELPER_STEP`).
pub fn run(
    root: &Path,
    step: &Step,
    env: &BTreeMap<String, String>,
    log: &Arc<Mutex<File>>,
    link: &Link,
) -> Outcome {
    let started = Instant::now();
    log_line(
        log,
        &format!("=== build-helper: step {} started {}\n", step.name, stamp()),
    );
    let exit_code = match spawn_and_wait(root, step, env, log, link) {
        Ok(code) => code,
        Err(e) => {
            log_line(
                log,
                &format!("build-helper: cannot run step {}: {e}\n", step.name),
            );
            127
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    log_line(
        log,
        &format!(
            "=== build-helper: step {} finished: exit {exit_code} after {:.3} s\n",
            step.name,
            duration_ms as f64 / 1000.0
        ),
    );
    Outcome {
        exit_code,
        duration_ms,
    }
}

fn spawn_and_wait(
    root: &Path,
    step: &Step,
    env: &BTreeMap<String, String>,
    log: &Arc<Mutex<File>>,
    link: &Link,
) -> std::io::Result<i32> {
    let (out_r, out_w) = pipe()?;
    let (ev_r, ev_w) = pipe()?;
    let ev_fd = ev_w.as_raw_fd();
    let root_owned = root.to_path_buf();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&step.script)
        .env_clear()
        .envs(env)
        .env("BUILD_HELPER_STEP", &step.name)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_w.try_clone()?))
        .stderr(Stdio::from(out_w));
    // SAFETY: only async-signal-safe calls (chroot, chdir, setsid, dup2, fcntl) between fork
    // and exec.
    unsafe {
        cmd.pre_exec(move || {
            std::os::unix::fs::chroot(&root_owned)?;
            std::env::set_current_dir("/")?;
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if ev_fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(ev_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    drop(cmd);
    drop(ev_w);
    STEP_PGID.store(child.id() as i32, Ordering::SeqCst);

    let log_out = Arc::clone(log);
    let link_out = link.clone();
    let step_name = step.name.clone();
    let output = std::thread::spawn(move || {
        let mut reader = File::from(out_r);
        let mut buf = [0u8; 16 * 1024];
        let stdout = std::io::stdout();
        let mut tracker = Tracker::new();
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut out = stdout.lock();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                    drop(out);
                    if let Ok(mut f) = log_out.lock() {
                        let _ = f.write_all(&buf[..n]);
                    }
                    if let Some(progress) = tracker.feed(&buf[..n]) {
                        link_out.send(&WorkerMsg::Progress {
                            step: step_name.clone(),
                            progress,
                        });
                    }
                }
            }
        }
    });
    let link_ev = link.clone();
    let events = std::thread::spawn(move || {
        for line in BufReader::new(File::from(ev_r)).lines() {
            let Ok(line) = line else { break };
            if let Some(tuple) = line.trim().strip_prefix("toolchain-ready ") {
                link_ev.send(&WorkerMsg::ToolchainReady {
                    tuple: tuple.trim().to_string(),
                });
            }
        }
    });

    let status = child.wait()?;
    // Nothing a step started may outlive it: it would hold the run's mounts busy.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    STEP_PGID.store(0, Ordering::SeqCst);
    let _ = output.join();
    let _ = events.join();
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
