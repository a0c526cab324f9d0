//! The broker: serves one fifo per target from a thread of the supervisor, settles the
//! [`Ledger`] whenever a client reads or writes a fifo (inotify), and at least every `tick`
//! (for admission, and as a safety net should a wake-up be missed).
//!
//! The supervisor calls [`Broker::step_started`] before a target's step runs and
//! [`Broker::step_ended`] once the step's whole process group is gone; both settle the pool
//! at once, so a freed token is offered to another target without waiting for a tick.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::account::{ImplicitSlots, Ledger, PoolSnapshot, Reclaimed};
use super::admission::{AdmissionLimits, ProcProbe, SystemProbe};
use super::fifo::{Fifo, Watch};
use super::PoolError;

/// How a pool is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Tokens in the pool: the most compile jobs the run should run at once (default: the
    /// number of CPUs this process may use).
    pub jobs: usize,
    /// How implicit job slots are counted (see [`ImplicitSlots`]).
    pub implicit_slots: ImplicitSlots,
    /// Bytes kept on offer in each target's fifo while tokens are free (default 1).
    pub offer: usize,
    /// Memory and load limits on handing out tokens.
    pub limits: AdmissionLimits,
    /// The longest the broker sleeps between two passes without a wake-up (default 50 ms).
    pub tick: Duration,
    /// Permission bits of the fifos (default 0o666: Portage builds as the `portage` user
    /// inside the environment; the run directory holding them is private to root).
    pub fifo_mode: u32,
}

impl PoolConfig {
    /// `jobs` tokens, implicit slots reserved per target, one byte on offer, no limits,
    /// a 50 ms tick, fifos mode 0o666.
    pub fn new(jobs: usize) -> Self {
        PoolConfig {
            jobs,
            implicit_slots: ImplicitSlots::ReservePerTarget,
            offer: 1,
            limits: AdmissionLimits::default(),
            tick: Duration::from_millis(50),
            fifo_mode: 0o666,
        }
    }

    /// The default job count: the CPUs this process may run on (sched_getaffinity, as
    /// `nproc`), 1 when that cannot be read.
    pub fn default_jobs() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

/// Counters of the broker's thread (how it was woken).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WakeStats {
    /// Passes woken by an inotify event on a fifo.
    pub by_event: u64,
    /// Passes woken by the tick.
    pub by_tick: u64,
    /// Of the passes woken by the tick, those that found a client's read or write no event
    /// had announced (0 when inotify is reliable; a read racing a pass may add one).
    pub missed_by_events: u64,
    /// Settle passes that failed with an I/O error (the last is in [`Broker::last_error`]).
    pub errors: u64,
}

struct Inner {
    ledger: Ledger<Fifo>,
    limits: AdmissionLimits,
    probe: Box<dyn SystemProbe>,
    wakes: WakeStats,
    last_error: Option<String>,
}

impl Inner {
    fn settle(&mut self) -> Result<bool, PoolError> {
        let held = self.limits.check(self.probe.as_mut());
        self.ledger.settle(held)
    }
}

/// A running job pool: one fifo per target in a directory, and the thread that serves them.
/// Dropping it stops the thread and removes the fifos.
pub struct Broker {
    inner: Arc<Mutex<Inner>>,
    fifos: Vec<(String, PathBuf)>,
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

/// Checks that `target` can name a file: not empty, not `.` or `..`, no `/` or NUL, at most
/// 200 bytes.
fn check_target(target: &str) -> Result<(), PoolError> {
    let why = if target.is_empty() {
        "it is empty"
    } else if target == "." || target == ".." {
        "it is `.` or `..`"
    } else if target.contains('/') || target.contains('\0') {
        "it contains `/` or a NUL"
    } else if target.len() > 200 {
        "it is longer than 200 bytes"
    } else {
        return Ok(());
    };
    Err(PoolError::BadTarget {
        target: target.to_string(),
        why: why.to_string(),
    })
}

/// The fifo of `target` in the pool's directory `dir`: `<dir>/<target>.fifo`.
pub fn fifo_path(dir: &Path, target: &str) -> PathBuf {
    dir.join(format!("{target}.fifo"))
}

impl Broker {
    /// Starts a pool with the real /proc readings: see [`Broker::start_with_probe`].
    pub fn start(dir: &Path, targets: &[&str], config: PoolConfig) -> Result<Broker, PoolError> {
        Self::start_with_probe(dir, targets, config, Box::new(ProcProbe))
    }

    /// Creates `<dir>/<target>.fifo` for each target (`dir` must exist; the supervisor's run
    /// directory is the place) and starts the broker's thread, reading memory and load from
    /// `probe`.
    ///
    /// Errors: [`PoolError::BadJobs`], [`PoolError::BadTarget`], [`PoolError::DuplicateTarget`]
    /// for a bad configuration; [`PoolError::Io`] naming the fifo or inotify that failed
    /// (every fifo made so far is removed again).
    pub fn start_with_probe(
        dir: &Path,
        targets: &[&str],
        config: PoolConfig,
        probe: Box<dyn SystemProbe>,
    ) -> Result<Broker, PoolError> {
        for t in targets {
            check_target(t)?;
        }
        let mut channels = Vec::with_capacity(targets.len());
        let mut made: Vec<PathBuf> = Vec::new();
        let cleanup = |made: &[PathBuf]| {
            for p in made {
                let _ = std::fs::remove_file(p);
            }
        };
        for t in targets {
            if channels.iter().any(|(name, _): &(String, Fifo)| name == t) {
                cleanup(&made);
                return Err(PoolError::DuplicateTarget(t.to_string()));
            }
            let path = fifo_path(dir, t);
            match Fifo::create(&path, config.fifo_mode) {
                Ok(f) => {
                    made.push(path);
                    channels.push((t.to_string(), f));
                }
                Err(e) => {
                    cleanup(&made);
                    return Err(e);
                }
            }
        }
        let fifos: Vec<(String, PathBuf)> = channels
            .iter()
            .map(|(n, f)| (n.clone(), f.path().to_path_buf()))
            .collect();
        let built = (|| {
            let watch = Watch::new(fifos.iter().map(|(_, p)| p.as_path()))?;
            let ledger = Ledger::new(config.jobs, config.offer, config.implicit_slots, channels)?;
            let (stop_r, stop_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| PoolError::io("cannot make a pipe for", dir, e.into()))?;
            Ok::<_, PoolError>((watch, ledger, stop_r, stop_w))
        })();
        let (watch, ledger, stop_r, stop_w) = match built {
            Ok(b) => b,
            Err(e) => {
                cleanup(&made);
                return Err(e);
            }
        };
        let inner = Arc::new(Mutex::new(Inner {
            ledger,
            limits: config.limits,
            probe,
            wakes: WakeStats::default(),
            last_error: None,
        }));
        let thread_inner = Arc::clone(&inner);
        let tick = config.tick;
        let thread = std::thread::Builder::new()
            .name("job-pool".into())
            .spawn(move || serve(&thread_inner, &watch, &stop_r, tick))
            .map_err(|e| {
                cleanup(&made);
                PoolError::io("cannot start the broker thread for", dir, e)
            })?;
        Ok(Broker {
            inner,
            fifos,
            stop: Some(stop_w),
            thread: Some(thread),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, PoolError> {
        self.inner.lock().map_err(|_| PoolError::BrokerGone)
    }

    /// The fifo of `target` on the build machine (bind-mount it into the target's
    /// environment), or `None` for a target the pool does not serve.
    pub fn fifo_path(&self, target: &str) -> Option<&Path> {
        self.fifos
            .iter()
            .find(|(n, _)| n == target)
            .map(|(_, p)| p.as_path())
    }

    /// A step of `target` starts: it is offered tokens from now on.
    ///
    /// Errors: [`PoolError::UnknownTarget`], [`PoolError::BrokerGone`], or an I/O error of
    /// the pass that follows.
    pub fn step_started(&self, target: &str) -> Result<(), PoolError> {
        let mut inner = self.lock()?;
        inner.ledger.step_started(target)?;
        inner.settle().map(|_| ())
    }

    /// A step of `target` ended and its whole process tree is gone: every token it was
    /// granted comes back (see [`Ledger::step_ended`]), then the pool is settled so others
    /// get them at once.
    ///
    /// Errors: [`PoolError::UnknownTarget`], [`PoolError::BrokerGone`], or an I/O error.
    pub fn step_ended(&self, target: &str) -> Result<Reclaimed, PoolError> {
        let mut inner = self.lock()?;
        let back = inner.ledger.step_ended(target)?;
        inner.settle()?;
        Ok(back)
    }

    /// Runs one pass now (tests and callers that changed something outside the pool).
    ///
    /// Errors: [`PoolError::BrokerGone`] or an I/O error.
    pub fn settle(&self) -> Result<(), PoolError> {
        self.lock()?.settle().map(|_| ())
    }

    /// The pool now.
    ///
    /// Errors: [`PoolError::BrokerGone`].
    pub fn snapshot(&self) -> Result<PoolSnapshot, PoolError> {
        Ok(self.lock()?.ledger.snapshot())
    }

    /// How the broker's thread was woken so far.
    ///
    /// Errors: [`PoolError::BrokerGone`].
    pub fn wake_stats(&self) -> Result<WakeStats, PoolError> {
        Ok(self.lock()?.wakes)
    }

    /// The last error of a pass run by the thread, if any (it keeps serving after one).
    pub fn last_error(&self) -> Option<String> {
        self.lock().ok().and_then(|i| i.last_error.clone())
    }

    /// Stops the thread, removes the fifos and returns the final state.
    ///
    /// Errors: [`PoolError::BrokerGone`] when the thread had died; [`PoolError::Io`] naming a
    /// fifo that could not be removed.
    pub fn stop(mut self) -> Result<PoolSnapshot, PoolError> {
        self.halt();
        let snapshot = self.lock()?.ledger.snapshot();
        let mut first = None;
        for (_, p) in std::mem::take(&mut self.fifos) {
            if let Err(e) = std::fs::remove_file(&p) {
                if e.kind() != std::io::ErrorKind::NotFound && first.is_none() {
                    first = Some(PoolError::io("cannot remove the jobserver fifo", p, e));
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(snapshot),
        }
    }

    fn halt(&mut self) {
        if let Some(w) = self.stop.take() {
            let _ = nix::unistd::write(&w, b"x");
            drop(w);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.halt();
        for (_, p) in &self.fifos {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The broker thread: wait for an event, the tick or the stop pipe; settle.
fn serve(inner: &Mutex<Inner>, watch: &Watch, stop: &OwnedFd, tick: Duration) {
    let timeout =
        PollTimeout::try_from(tick.as_millis().clamp(1, 60_000) as i32).unwrap_or(PollTimeout::MAX);
    loop {
        let mut fds = [
            PollFd::new(watch.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        let woke = match nix::poll::poll(&mut fds, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => {
                // Never spin: an unexpected poll error waits a tick, then settles.
                std::thread::sleep(tick);
                0
            }
        };
        let stop_now = fds[1]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP));
        if stop_now {
            return;
        }
        let by_event = woke > 0 && watch.drain() > 0;
        let Ok(mut guard) = inner.lock() else {
            return;
        };
        match guard.settle() {
            Ok(change) => {
                if by_event {
                    guard.wakes.by_event += 1;
                } else {
                    guard.wakes.by_tick += 1;
                    if change {
                        guard.wakes.missed_by_events += 1;
                    }
                }
            }
            Err(e) => {
                guard.wakes.errors += 1;
                guard.last_error = Some(e.to_string());
            }
        }
    }
}
