//! The `worker` process: runs one target's steps inside its chroot.
//!
//! Started by the supervisor inside a pseudo-terminal (DESIGN.md, Processes). It reads the
//! plan from the run directory, says hello on the supervisor's socket, receives the list of
//! steps to run (the engine's resume / retry decision), and runs them one by one as chrooted
//! `/bin/sh -c` children in their own session, with exactly the plan's environment. Output
//! goes to the worker's terminal and to `logs/<target>.log`; a step's `toolchain-ready
//! <tuple>` lines on file descriptor 3 are forwarded as events. When the supervisor goes away
//! (socket closed, SIGTERM from the parent-death signal, SIGHUP) the running step's whole
//! process group is killed and the worker exits, so nothing keeps the run's mounts busy.
//!
//! An interactive worker (`--interactive`: someone watches its terminal) does not stop on a
//! failed step: [`rescue`] opens a shell in the chroot and asks resume / retry / abort.
//!
//! Not here: deciding what runs (engine), mounting (supervisor), showing it (ui).

mod jobserver;
pub mod rescue;
mod step;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context};

use crate::config::Target;
use crate::plan::Plan;
use crate::protocol::{encode, SupervisorMsg, WorkerMsg};
use crate::rundir::sockets::supervisor as socket_path;

/// Exit code of a worker told to stop before its first step.
pub const NOT_STARTED: i32 = 3;

/// Process group of the running step (0 when none); read by the signal handler.
static STEP_PGID: AtomicI32 = AtomicI32::new(0);

/// The running step's cgroup leaf as a C string (null when none), removed when the worker
/// stops mid-step (by a signal, or because the supervisor went away). Each step's string is
/// leaked on purpose (a few dozen bytes per step): the signal handler may read it at any
/// moment, so it is never freed.
static STEP_LEAF: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

fn set_step_cgroup(leaf: Option<&std::path::Path>) {
    let c = leaf
        .and_then(|p| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok())
        .map_or(std::ptr::null_mut(), std::ffi::CString::into_raw);
    STEP_LEAF.store(c, Ordering::SeqCst);
}

/// The running step's cgroup leaf, if any.
fn step_cgroup_now() -> Option<std::path::PathBuf> {
    let p = STEP_LEAF.load(Ordering::SeqCst);
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null STEP_LEAF is a NUL-terminated string that is never freed.
    let bytes = unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes();
    Some(std::path::PathBuf::from(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes),
    ))
}

extern "C" fn on_terminate(sig: libc::c_int) {
    let pgid = STEP_PGID.load(Ordering::SeqCst);
    let leaf = STEP_LEAF.load(Ordering::SeqCst);
    // SAFETY: kill, rmdir, nanosleep and _exit are async-signal-safe; `leaf` is null or a
    // NUL-terminated string that is never freed.
    unsafe {
        if pgid > 0 {
            libc::kill(-pgid, libc::SIGKILL);
        }
        // The step's cgroup leaf empties as its killed processes exit: removed here, for up
        // to half a second, since nobody else knows of it once this worker is gone.
        if !leaf.is_null() {
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: 10_000_000,
            };
            for _ in 0..50 {
                if libc::rmdir(leaf) == 0 || *libc::__errno_location() != libc::EBUSY {
                    break;
                }
                libc::nanosleep(&pause, std::ptr::null_mut());
            }
        }
        libc::_exit(128 + sig);
    }
}

fn install_signal_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_terminate),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT] {
        // SAFETY: the handler only calls async-signal-safe functions.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// Kills the running step's process group and exits: the supervisor is gone.
fn supervisor_gone() -> ! {
    let pgid = STEP_PGID.load(Ordering::SeqCst);
    if pgid > 0 {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // Nobody else knows of the step's cgroup leaf now.
    if let Some(leaf) = step_cgroup_now() {
        let _ = crate::pool::cost::remove_leaf(&leaf, std::time::Duration::from_secs(1));
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "build-helper worker: the supervisor went away; stopping"
    );
    std::process::exit(1)
}

/// A connection to the supervisor; `send` may be called from several threads.
#[derive(Clone)]
pub struct Link {
    writer: Arc<Mutex<UnixStream>>,
}

impl Link {
    /// Sends one message; a failure means the supervisor is gone.
    pub fn send(&self, msg: &WorkerMsg) {
        let line = encode(msg);
        let ok = match self.writer.lock() {
            Ok(mut w) => w.write_all(line.as_bytes()).is_ok(),
            Err(_) => false,
        };
        if !ok {
            supervisor_gone();
        }
    }
}

/// The command line that starts the worker of `target` (this executable first):
/// `build-helper worker --run RUN_DIR --target TARGET [--interactive] [--join-ns PID]`, as
/// `cli::worker` parses it. `interactive`: a person watches its terminal (a failed step opens
/// a rescue shell); `join_ns`: the supervisor's pid whose mount namespace it joins first (a
/// worker started by tmux is outside it).
///
/// Errors: this executable's path cannot be found (`std::env::current_exe`).
pub fn command_line(
    run_dir: &Path,
    target: &Target,
    interactive: bool,
    join_ns: Option<u32>,
) -> std::io::Result<Vec<std::ffi::OsString>> {
    let mut argv: Vec<std::ffi::OsString> = vec![
        std::env::current_exe()?.into(),
        "worker".into(),
        "--run".into(),
        run_dir.into(),
        "--target".into(),
        target.to_string().into(),
    ];
    if interactive {
        argv.push("--interactive".into());
    }
    if let Some(pid) = join_ns {
        argv.push("--join-ns".into());
        argv.push(pid.to_string().into());
    }
    Ok(argv)
}

/// Joins the mount namespace of process `pid` (the supervisor's private one): a worker
/// that tmux started sees the run's mounts only after this. Must be called while the process
/// is single-threaded (setns(2) refuses CLONE_NEWNS otherwise).
///
/// Errors: no such process, or not allowed (not root).
pub fn join_namespace(sys: &dyn crate::sys::Sys, pid: u32) -> anyhow::Result<()> {
    sys.join_mount_ns(pid)
        .with_context(|| format!("is the supervisor {pid} still running?"))?;
    Ok(())
}

/// Runs the worker for `target` of the run in `run_dir`; returns the process exit code:
/// 0 when every step it was given succeeded, 1 when a step failed (and, when `interactive`,
/// the user chose abort).
///
/// Steps and the rescue shell are started through `sys` (chroot spawn).
///
/// Errors: unreadable plan, unknown target, no supervisor socket.
pub fn main(
    sys: &dyn crate::sys::Sys,
    run_dir: &Path,
    target: &Target,
    interactive: bool,
) -> anyhow::Result<i32> {
    // Before any thread: the worker only relays, ahead of the build; its steps get the
    // build's niceness back (crate::sched).
    crate::sched::raise_worker();
    install_signal_handlers();
    // Nobody can answer the prompt without a terminal: behave as in plain mode.
    let interactive = interactive && std::io::IsTerminal::is_terminal(&std::io::stdin());
    let plan_path = run_dir.join(crate::rundir::PLAN);
    let plan: Plan = crate::rundir::load_plan(run_dir)?;
    let tp = plan
        .target(target)
        .ok_or_else(|| anyhow!("target {target} is not in {}", plan_path.display()))?
        .clone();

    let socket = socket_path(run_dir);
    let stream = UnixStream::connect(&socket)
        .with_context(|| format!("connecting to the supervisor at {}", socket.display()))?;
    let reader = stream
        .try_clone()
        .context("cloning the supervisor socket")?;
    let link = Link {
        writer: Arc::new(Mutex::new(stream)),
    };
    let (tx, rx) = mpsc::channel::<SupervisorMsg>();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<SupervisorMsg>(&line) {
                Ok(msg) => {
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "build-helper worker: bad message from supervisor: {e}"
                    );
                }
            }
        }
        supervisor_gone();
    });
    link.send(&WorkerMsg::Hello {
        target: target.clone(),
        pid: std::process::id(),
    });
    // A secondary target's worker waits here until its tuple's toolchain is ready.
    let mut steps = match rx.recv() {
        Ok(SupervisorMsg::Start { steps }) => steps,
        Ok(SupervisorMsg::Stop) => return Ok(NOT_STARTED),
        Ok(other) => bail!("unexpected first message from the supervisor: {other:?}"),
        Err(_) => supervisor_gone(),
    };

    let log_path = plan.log_path(target);
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let log = {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", log_path.display()))?;
        f
    };
    let log = Arc::new(Mutex::new(log));

    // The plan's environment plus the build machine's pass-through variables.
    let mut env: BTreeMap<String, String> = tp.env.clone();
    for name in &plan.pass_env {
        if let Ok(value) = std::env::var(name) {
            env.insert(name.clone(), value);
        }
    }
    if let Ok(term) = std::env::var("TERM") {
        env.entry("TERM".into()).or_insert(term);
    }

    // Where each step's cgroup leaf goes, to measure what it cost (once per worker).
    let cgroups = crate::pool::cost::CgroupRoot::detect();
    let mut i = 0;
    while let Some(name) = steps.get(i).cloned() {
        let name = &name;
        let Some(step) = tp.steps.iter().find(|s| &s.name == name) else {
            bail!("step {name} is not in the plan of {target}");
        };
        if step.sync_lock {
            link.send(&WorkerMsg::AcquireSync);
            loop {
                match rx.recv() {
                    Ok(SupervisorMsg::SyncGranted) => break,
                    Ok(_) => continue,
                    Err(_) => supervisor_gone(),
                }
            }
        }
        // Its cgroup leaf, named to the supervisor: it removes it should this worker be killed.
        let cgroup = step::step_cgroup(cgroups.as_ref(), name);
        let leaf = cgroup.as_ref().map(|c| c.path().to_path_buf());
        set_step_cgroup(leaf.as_deref());
        link.send(&WorkerMsg::StepStarted {
            step: name.clone(),
            cgroup: leaf,
        });
        // The run's job pool, as this environment's make and Portage can take part in it.
        let mut step_env = env.clone();
        let extras = step::Extras {
            cgroup,
            note: plan
                .job_pool
                .as_ref()
                .map(|pool| jobserver::step_env(sys, &tp.root, &mut step_env, pool)),
        };
        let outcome = step::run(sys, &tp.root, step, &step_env, &log, &link, extras);
        set_step_cgroup(None);
        // Finished before the lock is given back: on this one connection the supervisor then
        // records the end before the next holder can start (the events never overlap).
        link.send(&WorkerMsg::StepFinished {
            step: name.clone(),
            exit_code: outcome.exit_code,
            duration_ms: outcome.duration_ms,
            cost: outcome.cost,
        });
        if step.sync_lock {
            link.send(&WorkerMsg::ReleaseSync);
        }
        if outcome.exit_code == 0 {
            i += 1;
            continue;
        }
        if !interactive {
            let _ = writeln!(
                std::io::stdout(),
                "build-helper: step {name} of {target} failed (exit {}); log: {}",
                outcome.exit_code,
                log_path.display()
            );
            return Ok(1);
        }
        // Recorded by the supervisor (checkpoint, event, notification): `status` and the
        // front ends show that the target waits for a decision.
        link.send(&WorkerMsg::RescueWaiting { step: name.clone() });
        match rescue::run(
            sys,
            &tp.root,
            &env,
            target,
            name,
            outcome.exit_code,
            &log_path,
        ) {
            rescue::Decision::Resume => {}
            rescue::Decision::Abort => return Ok(1),
            rescue::Decision::Retry => {
                link.send(&WorkerMsg::Retry);
                steps = loop {
                    match rx.recv() {
                        Ok(SupervisorMsg::Start { steps }) => break steps,
                        Ok(_) => continue,
                        Err(_) => supervisor_gone(),
                    }
                };
                i = 0;
            }
        }
    }
    Ok(0)
}
