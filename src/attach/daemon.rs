//! The supervisor in its own session: `build-helper run --ui tui` prepares the run in the
//! foreground (every bad input is reported there, exit 2), then starts the hidden
//! `build-helper supervise` from its own executable in a new session (setsid(2)), standard
//! input `/dev/null`, standard output and error appended to `work/<run>/supervisor.log`,
//! and attaches a TUI client to it ([`foreground`]). The terminal going away (SIGHUP, a
//! killed tmux session) ends only the client.
//!
//! The run directory's lock passes from the foreground to the supervisor without a gap: the
//! supervisor inherits the locked descriptor (flock(2) locks belong to the open file
//! description, which parent and child share), checks it and writes its own pid into it
//! ([`crate::rundir::Lock::adopt`]). Taking the lock again in the child would leave a moment
//! in which a second `run` could take it. A new process (exec of `/proc/self/exe`), not
//! fork(2) alone, because the foreground has threads by then.
//!
//! The `attach` command itself is `cli::attach`.

use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};

use anyhow::Context;

use super::{client, hub};
use crate::error::UsageError;
use crate::rundir;
use crate::supervisor::{self, Prepared};
use crate::ui::Frontend;

/// Starts the supervisor of `prepared` in its own session (see the module doc) and gives up
/// this process's hold on the run (the child holds the same lock).
///
/// Errors: the log cannot be opened; the process cannot be started.
pub fn spawn(mut prepared: Prepared) -> anyhow::Result<Child> {
    let run_dir = prepared.plan.run_dir();
    let log_path = run_dir.join(crate::rundir::SUPERVISOR_LOG);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let exe = std::env::current_exe().context("finding this program")?;
    let mut cmd = std::process::Command::new(exe);
    let fd = prepared.lock.pass_to(&mut cmd);
    cmd.arg("supervise")
        .arg("--run")
        .arg(&run_dir)
        .arg("--mode")
        .arg(prepared.mode)
        .arg("--lock-fd")
        .arg(fd.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid(2) is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().context("starting the supervisor")?;
    drop(prepared);
    Ok(child)
}

/// The hidden `supervise` command: supervises the prepared run of `run_dir` (`mode`: new,
/// resume or retry) holding the inherited lock `lock_fd`, serving screens on the attach
/// socket; returns the run's exit status (as [`supervisor::supervise`]).
///
/// Errors: the lock or the run's files are not what `run` left ([`UsageError`]); the
/// namespace, the socket, and [`supervisor::supervise`]'s errors.
pub fn serve(
    sys: std::sync::Arc<dyn crate::sys::Sys>,
    run_dir: &Path,
    mode: &str,
    lock_fd: i32,
) -> anyhow::Result<i32> {
    let mode: &'static str = match mode {
        "new" => "new",
        "resume" => "resume",
        "retry" => "retry",
        other => {
            return Err(UsageError(format!(
                "supervise --mode {other}: not new, resume or retry"
            ))
            .into())
        }
    };
    let usage = |e: rundir::RunDirError| UsageError(e.to_string());
    let lock = rundir::Lock::adopt(run_dir, lock_fd).map_err(usage)?;
    let plan = rundir::load_plan(run_dir).map_err(usage)?;
    let checkpoint = rundir::load_checkpoint(run_dir, Some(&plan)).map_err(usage)?;
    let prepared = Prepared {
        plan,
        checkpoint,
        mode,
        lock,
    };
    // While this process is single-threaded.
    crate::mounts::private_namespace(sys.as_ref())?;
    let runtime = supervisor::runtime()?;
    let (req_tx, req_rx) = tokio::sync::mpsc::unbounded_channel();
    let (mut hub, handle) = hub::start(run_dir, req_tx).with_context(|| {
        format!(
            "listening on {}",
            crate::rundir::sockets::attach(run_dir).display()
        )
    })?;
    let _ = writeln!(
        std::io::stderr().lock(),
        "[build-helper] supervisor {} of run {} started",
        std::process::id(),
        rundir::id_of(run_dir)
    );
    hub.checkpoint(&prepared.checkpoint);
    let (result, lock) =
        runtime.block_on(supervisor::supervise(prepared, sys, Box::new(hub), req_rx));
    // A stopped run may leave a blocking task (an extraction) behind: do not wait for it.
    runtime.shutdown_background();
    let code = match &result {
        Ok(code) => *code,
        Err(e) => {
            handle.say(&format!("error: {e:#}"));
            if e.downcast_ref::<UsageError>().is_some() {
                2
            } else {
                1
            }
        }
    };
    handle.end(code);
    // Unlocked last: a run seen unlocked has no socket left.
    drop(lock);
    result
}

/// The last `n` lines of the supervisor's log of `run_dir` (empty when there is none).
pub fn log_tail(run_dir: &Path, n: usize) -> String {
    let Ok(mut f) = std::fs::File::open(run_dir.join(crate::rundir::SUPERVISOR_LOG)) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(std::io::SeekFrom::Start(len.saturating_sub(64 << 10)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The foreground of `run --ui tui`: attaches to the supervisor `child` of `run_dir` and
/// returns the exit status: the run's when it ends while attached, 0 on detach.
///
/// Errors: the terminal cannot be set up; the supervisor could not be reached while it
/// lives.
pub fn foreground(run_dir: &Path, mut child: Child) -> anyhow::Result<i32> {
    let result = {
        let mut alive = || matches!(child.try_wait(), Ok(None));
        client::run(run_dir, Some(&mut alive))
    };
    let log = run_dir.join(crate::rundir::SUPERVISOR_LOG);
    match result {
        Ok(client::Outcome::Ended(code)) => Ok(code),
        Ok(client::Outcome::Detached) => Ok(0),
        Ok(client::Outcome::Lost(why)) => match child.try_wait() {
            Ok(Some(status)) => {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "build-helper: the supervisor ended ({status}); its log, {}:\n{}",
                    log.display(),
                    log_tail(run_dir, 20)
                );
                Ok(status.code().unwrap_or(1))
            }
            _ => Err(anyhow::anyhow!(
                "lost the screen's connection ({why}); the run goes on: `build-helper attach \
                 {}` (its log: {})",
                rundir::id_of(run_dir),
                log.display()
            )),
        },
        Err(e) => match child.try_wait() {
            // The supervisor ended before serving: say why, with its status.
            Ok(Some(status)) => {
                let _ = writeln!(std::io::stderr().lock(), "{}", log_tail(run_dir, 20));
                Ok(status.code().unwrap_or(1))
            }
            _ => Err(e),
        },
    }
}
