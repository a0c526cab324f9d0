//! The supervisor (`build-helper run`): executes the actions of the engine's two machines —
//! the run's phases ([`crate::engine::run`]: fetch the stage3, mount, extract, steps,
//! archive, tear down) and the steps ([`crate::engine::machine`]: start workers, mount
//! waiting targets, grant the sync lock, save the checkpoint) — and feeds their results
//! back. It makes the mounts in its private mount namespace, runs one worker per target in
//! a pty, and serves the run's socket.
//!
//! Not here: any decision of what comes next (engine), what a step does (recipe), how it
//! runs (worker), how it is shown (ui).

mod archive;
mod finish;
mod pool;
pub mod prepare;
mod progress_watch;
mod setup;
mod signals;
pub mod spawn;
mod steps;
mod workers;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixListener;
use tokio::sync::mpsc;

use crate::config::Target;
use crate::engine::events::Event;
use crate::engine::machine::{Action, Engine, Input};
use crate::engine::run::{
    self, Failure, Outcome, Run, RunAction, RunInput, RunState, Start as RunStart,
};
use crate::mounts::{self, Entry};
use crate::plan::Plan;
use crate::protocol::{encode, SupervisorMsg, WorkerMsg};
use crate::rundir::events::EventLog;
use crate::rundir::journal::Journal;
use crate::rundir::sockets::supervisor as socket_path;
use crate::rundir::CheckpointWriter;
use crate::sys::now_us;
use crate::sys::Sys;
use crate::ui::{Frontend, Request};

pub use prepare::{prepare, Mode, Prepared};
use signals::Signals;

/// Resolves to a worker's exit code.
type ExitWait = std::pin::Pin<Box<dyn std::future::Future<Output = i32> + Send>>;

enum Msg {
    Connected(u64, OwnedWriteHalf),
    Worker(u64, WorkerMsg),
    Disconnected(u64),
    Exited(Target, i32),
    /// A secondary target's stacked environment was mounted (off the event loop).
    Mounted(Target, Result<(), String>),
    /// The checkpoint writer failed: the run must stop (its progress is not saved).
    CheckpointFailed(String),
}

/// What the supervisor holds of one target in the real world.
#[derive(Default)]
struct Held {
    /// Its worker's pid while it runs (for SIGTERM).
    pid: Option<u32>,
    /// Its environment is mounted (the primary's with the base; the executor's record).
    mounted: bool,
    /// Whether its toolchain-independent mounts are made (see [`workers::Prepared`]).
    prepared: workers::Prepared,
    /// The cgroup leaf of its running step, as its worker named it (removed here should the
    /// worker be gone before it could remove it).
    cgroup: Option<PathBuf>,
}

struct Supervisor {
    /// The run's job pool while the steps run (`None`: `job_pool = false`, or closed).
    pool: Option<pool::RunPool>,
    /// Step cgroup leaves that were still busy when their step or worker ended.
    stale_cgroups: Vec<PathBuf>,
    /// The run's phases; the supervisor executes its actions (`queue`) and feeds back.
    run: Run,
    /// The run machine's actions not executed yet.
    queue: VecDeque<RunAction>,
    /// The system-call seam (mounts, unmounts), injected by the caller of [`supervise`].
    sys: std::sync::Arc<dyn Sys>,
    /// The extraction or mounts in flight: the stop flag and the thread.
    background: Option<(
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    )>,
    plan: Plan,
    /// The run's state machine; the supervisor executes its actions.
    engine: Engine,
    writer: CheckpointWriter,
    run_dir: PathBuf,
    events: EventLog,
    /// The mount journal; shared with the threads that mount waiting targets.
    journal: std::sync::Arc<std::sync::Mutex<Journal>>,
    ui: Box<dyn Frontend>,
    msg_tx: mpsc::UnboundedSender<Msg>,
    out_tx: mpsc::UnboundedSender<spawn::Output>,
    writers: HashMap<u64, OwnedWriteHalf>,
    conn_target: HashMap<u64, Target>,
    /// What the supervisor holds of each target in the real world (its worker's pid, its
    /// mounts); what the engine knows of it is the engine's ([`crate::engine::machine::Worker`]).
    held: HashMap<Target, Held>,
    /// Limits how many secondary environments are mounted at once.
    mount_slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// Package progress and estimates of the running steps.
    watch: crate::engine::watch::Watch,
    /// Whether the environment's emerge.log files were read into `watch` (after mounting).
    emerge_logs_read: bool,
    /// The starter's notify command, and the notifications still running.
    notifier: Option<crate::notify::Notifier>,
    notifying: Vec<std::thread::JoinHandle<crate::notify::Outcome>>,
    /// `Some` while the steps loop handles messages that are already waiting: the
    /// checkpoint is handed to its writer once they are handled (`Some(true)`: a save is
    /// due), not once per message ([`Supervisor::save_now`]).
    save_deferred: Option<bool>,
}

impl Supervisor {
    /// The supervisor of `prepared`, shown by `ui`, nothing started yet but its event log
    /// (`run-started` written), checkpoint writer, package progress watch and notifier; with
    /// the receiving ends of its messages and of its workers' output.
    ///
    /// Errors: the event log cannot be opened.
    fn new(
        plan: crate::plan::Plan,
        checkpoint: crate::engine::state::Checkpoint,
        mode: &'static str,
        sys: std::sync::Arc<dyn Sys>,
        mut ui: Box<dyn Frontend>,
    ) -> anyhow::Result<(
        Supervisor,
        mpsc::UnboundedReceiver<Msg>,
        mpsc::UnboundedReceiver<spawn::Output>,
    )> {
        let run_dir = plan.run_dir();
        let mut events = EventLog::open(&run_dir)
            .with_context(|| format!("opening the event log in {}", run_dir.display()))?;
        if let Some(out) = ui.event_sink() {
            events.tee(out);
        }
        events.append(Event::RunStarted { mode: mode.into() });
        // Before any environment is mounted: each binds its target's fifo.
        let pool = pool::RunPool::start(&plan, &run_dir).context("starting the job pool")?;
        if let Some(p) = &pool {
            events.append(p.started_event());
        }
        let watch = progress_watch::start(&plan);
        let notifier = crate::notify::Notifier::new(&plan.notify, &run_dir);
        let (msg_tx, msg_rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let failed_tx = msg_tx.clone();
        let mut sup = Supervisor {
            pool,
            stale_cgroups: Vec::new(),
            run: Run::new(RunStart {
                first_build: plan.first_build,
                stage3_done: checkpoint
                    .run_step(run::STAGE3)
                    .is_some_and(|s| s.state.is_done()),
            }),
            queue: VecDeque::new(),
            background: None,
            journal: std::sync::Arc::new(std::sync::Mutex::new(Journal {
                m_dir: plan.layout.m_dir.clone(),
                pid: std::process::id(),
                host_namespace: false,
                mnt_ns: crate::sys::procs::own_mnt_ns(sys.as_ref()),
                ..Journal::default()
            })),
            sys,
            writer: CheckpointWriter::start(
                &run_dir,
                Box::new(move |m| {
                    let _ = failed_tx.send(Msg::CheckpointFailed(m));
                }),
            ),
            engine: Engine::new(&plan, checkpoint).watched(ui.interactive()),
            plan,
            run_dir,
            events,
            ui,
            msg_tx,
            out_tx,
            writers: HashMap::new(),
            conn_target: HashMap::new(),
            held: HashMap::new(),
            mount_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(workers::mount_slots())),
            watch,
            emerge_logs_read: false,
            notifier,
            notifying: Vec::new(),
            save_deferred: None,
        };
        sup.ui.say(&format!(
            "run {} ({mode}), {} target(s), {}",
            sup.plan.run_id,
            sup.plan.targets.len(),
            if sup.plan.first_build {
                "first build from a stage3".to_string()
            } else {
                "update from history".to_string()
            }
        ));
        Ok((sup, msg_rx, out_rx))
    }
}

/// The async runtime a supervisor runs on: two worker threads (the event loop and the
/// blocking work beside it), timers and I/O enabled. Call it after [`crate::mounts::private_namespace`],
/// which needs a single-threaded process.
///
/// Errors: the runtime cannot start (threads, epoll).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Supervises a prepared run to its end, shown by `ui` (which sends its [`Request`]s on
/// `requests`); returns the exit status: 0 when every target is done and the history
/// archived, 1 when a target failed, 130 when interrupted.
///
/// Must run inside the private mount namespace ([`crate::mounts::private_namespace`]) on the thread that
/// lives for the whole run (workers get SIGTERM when it ends).
///
/// Every mount, unmount and namespace call, and every process it starts chrooted (the
/// archive's in-environment squashfs tool, binhost indexing), goes through `sys`
/// ([`crate::sys::LinuxSys`] for real, created once by the binary's `main`).
///
/// Errors: mounts, stage3 ([`crate::error::UsageError`] when it does not verify), socket.
///
/// A panic (an internal error) still ends the run on the record: a line on standard error
/// (the supervisor's log when detached) and a `run-finished` event `failed`, then the panic
/// goes on.
///
/// The run directory's lock comes back with the result: the caller releases it last, after
/// its front end has ended (the attach socket removed), so that whoever waits for the run
/// to be unlocked finds none of its files in use.
pub async fn supervise(
    prepared: Prepared,
    sys: std::sync::Arc<dyn Sys>,
    ui: Box<dyn Frontend>,
    requests: mpsc::UnboundedReceiver<Request>,
) -> (anyhow::Result<i32>, crate::rundir::Lock) {
    use futures_util::FutureExt;
    let Prepared {
        plan,
        checkpoint,
        mode,
        lock,
    } = prepared;
    let run_dir = plan.run_dir();
    let run_id = plan.run_id.clone();
    let run =
        std::panic::AssertUnwindSafe(supervise_run(plan, checkpoint, mode, sys, ui, requests));
    match run.catch_unwind().await {
        Ok(result) => (result, lock),
        Err(panic) => {
            use std::io::Write;
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            let _ = writeln!(
                std::io::stderr().lock(),
                "[build-helper] supervisor {} ends: run {run_id} failed (internal error: {what})",
                std::process::id()
            );
            if let Ok(mut events) = EventLog::open(&run_dir) {
                events.append(Event::RunFinished {
                    result: "failed".into(),
                });
            }
            std::panic::resume_unwind(panic)
        }
    }
}

/// [`supervise`] without the panic guard.
async fn supervise_run(
    plan: crate::plan::Plan,
    checkpoint: crate::engine::state::Checkpoint,
    mode: &'static str,
    sys: std::sync::Arc<dyn Sys>,
    ui: Box<dyn Frontend>,
    mut requests: mpsc::UnboundedReceiver<Request>,
) -> anyhow::Result<i32> {
    // Signals first: every phase from here on can be stopped.
    // A front end that draws this process's own terminal is gone with it; the others, and
    // a detached supervisor (no controlling terminal), outlive it.
    let ignore_hangup = !ui.owns_terminal() || !signals::has_controlling_terminal();
    let mut signals = Signals::install(ignore_hangup).context("installing the signal handlers")?;
    let (mut sup, mut msg_rx, mut out_rx) = Supervisor::new(plan, checkpoint, mode, sys, ui)?;

    // The socket: private to root (mode 0600 in a 0700 directory, and each peer's
    // credentials are checked on accept).
    let socket = socket_path(&sup.run_dir);
    let _ = std::fs::remove_file(&socket);
    let listener = match UnixListener::bind(&socket).and_then(|l| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
        Ok(l)
    }) {
        Ok(l) => l,
        Err(e) => {
            let e = anyhow::Error::new(e).context(format!("listening on {}", socket.display()));
            sup.ended_early(&format!("{e:#}"));
            return Err(e);
        }
    };
    let first = sup.run.begin();
    sup.queue.extend(first);
    let mut listener = Some(listener);
    // Each action of the run machine in turn; a phase in flight races the signals and a
    // checkpoint failure, whose input abandons it.
    while let Some(action) = sup.queue.pop_front() {
        let input = match action {
            RunAction::FetchStage3 => tokio::select! {
                r = sup.fetch_stage3() => r,
                i = stop_input(&mut signals, &mut requests, &mut msg_rx) => i,
            },
            RunAction::MountBase => tokio::select! {
                r = sup.mount_base() => r,
                i = stop_input(&mut signals, &mut requests, &mut msg_rx) => i,
            },
            RunAction::Extract(tarball) => tokio::select! {
                r = sup.extract(tarball) => r,
                i = stop_input(&mut signals, &mut requests, &mut msg_rx) => i,
            },
            RunAction::MountPrimary => tokio::select! {
                r = sup.mount_primary() => r,
                i = stop_input(&mut signals, &mut requests, &mut msg_rx) => i,
            },
            RunAction::StartSteps => {
                let Some(listener) = listener.take() else {
                    continue;
                };
                sup.steps(
                    listener,
                    &mut signals,
                    &mut requests,
                    &mut msg_rx,
                    &mut out_rx,
                )
                .await;
                let _ = std::fs::remove_file(&socket);
                RunInput::StepsEnded {
                    all_done: sup.engine.checkpoint().all_done(),
                }
            }
            RunAction::Archive => tokio::select! {
                r = sup.archive() => match r {
                    Ok(path) => RunInput::Archived(path),
                    Err(e) => RunInput::Failed(Failure::Environment(format!("{e:#}"))),
                },
                i = stop_input(&mut signals, &mut requests, &mut msg_rx) => i,
            },
            RunAction::StopWorkers => {
                sup.stop_workers().await;
                continue;
            }
            RunAction::StopArchiver => {
                sup.stop_archiver();
                continue;
            }
            RunAction::StopExtraction | RunAction::StopMounting => {
                sup.stop_background();
                continue;
            }
            RunAction::SetRunStep(name, state) => {
                let actions = sup.engine.input(Input::RunStep {
                    name,
                    state,
                    now_us: now_us(),
                });
                sup.execute(actions).await;
                continue;
            }
            RunAction::MarkFinished => {
                let actions = sup.engine.input(Input::Finished);
                sup.execute(actions).await;
                continue;
            }
            RunAction::Say(m) => {
                sup.ui.say(&m);
                continue;
            }
            RunAction::Summary(outcome) => {
                sup.summary(&outcome);
                continue;
            }
            RunAction::TearDown => {
                sup.teardown();
                let _ = std::fs::remove_file(&socket);
                continue;
            }
            RunAction::End(outcome) => return sup.end(outcome),
        };
        sup.feed(input).await;
    }
    // The machine always ends with `End`; an empty queue means it was never begun.
    sup.teardown();
    let why = "internal error: the run machine stopped without an end";
    sup.ended_early(why);
    anyhow::bail!(why)
}

/// The input that abandons a phase in flight: a signal or the front end's quit (a stop), or
/// a checkpoint write failure (the run cannot go on). Other messages are of the steps phase
/// and dropped here.
async fn stop_input(
    signals: &mut Signals,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    msgs: &mut mpsc::UnboundedReceiver<Msg>,
) -> RunInput {
    loop {
        tokio::select! {
            why = signals.next(requests) => return RunInput::Stop(why.into()),
            m = msgs.recv() => match m {
                Some(Msg::CheckpointFailed(m)) => {
                    return RunInput::Failed(Failure::Environment(m));
                }
                Some(_) => continue,
                None => std::future::pending::<()>().await,
            },
        }
    }
}

impl Supervisor {
    /// `target` started `step`: the pool offers it tokens.
    fn pool_step_started(&mut self, target: &Target, step: &str) {
        let Some(pool) = &mut self.pool else { return };
        if let Err(e) = pool.step_started(target, step) {
            self.ui.say(&format!("job pool: {target}: {e}"));
        }
        self.pool_refresh(false);
    }

    /// The front ends get the pool as it is now (when it changed); with `write`,
    /// `pool.json` too.
    fn pool_refresh(&mut self, write: bool) {
        if let Some(view) = self.pool.as_mut().and_then(|p| p.refresh(write)) {
            self.ui.pool(&view);
        }
    }

    /// `target`'s step ended: its tokens come back (recorded as an event).
    fn pool_step_ended(&mut self, target: &Target) {
        let Some(pool) = &mut self.pool else { return };
        match pool.step_ended(target) {
            Some(Ok(event)) => {
                self.events.append(event);
            }
            Some(Err(e)) => self.ui.say(&format!("job pool: {target}: {e}")),
            None => {}
        }
        self.pool_refresh(false);
    }

    /// The run is torn down: the pool closes (recorded as an event with what came back).
    /// Not before: the archive mounts the environments again, each binding its fifo.
    fn close_pool(&mut self) {
        let Some(pool) = self.pool.take() else { return };
        match pool.close() {
            Ok(event) => {
                self.events.append(event);
            }
            Err(e) => self.ui.say(&format!("job pool: {e}")),
        }
    }

    /// Hands the checkpoint to the writer thread (temp, fsync, rename off the event loop).
    fn save(&mut self) {
        self.writer.save(self.engine.checkpoint());
        self.ui.checkpoint(self.engine.checkpoint());
    }

    fn mount(&mut self, entries: &[Entry]) -> anyhow::Result<()> {
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        mounts::apply(
            self.sys.as_ref(),
            &self.plan.layout.m_dir,
            entries,
            &mut journal,
            &self.run_dir,
        )?;
        Ok(())
    }

    async fn send(&mut self, target: &Target, msg: &SupervisorMsg) {
        let Some(id) = self
            .conn_target
            .iter()
            .find(|(_, t)| *t == target)
            .map(|(id, _)| *id)
        else {
            return;
        };
        if let Some(w) = self.writers.get_mut(&id) {
            let _ = w.write_all(encode(msg).as_bytes()).await;
        }
    }

    /// Executes the engine's actions in order; the results of mounts and worker starts go
    /// back into the engine, and their actions are executed too. The checkpoint is saved
    /// once per batch.
    async fn execute(&mut self, actions: Vec<Action>) {
        let mut queue: VecDeque<Action> = actions.into();
        let mut save = false;
        // The record a notification carries: the event just before it.
        let mut last_event = None;
        while let Some(action) = queue.pop_front() {
            match action {
                Action::PrepareMount(t) => self.prepare_secondary(&t),
                Action::StartWorker(t) => {
                    if let Err(e) = self.start(&t) {
                        self.ui.say(&format!("cannot start {t}: {e:#}"));
                        queue.extend(self.engine.start_failed(&t));
                    }
                }
                Action::Mount(t) => {
                    // Mounted on a thread of its own: the event loop goes on meanwhile.
                    if let Some(result) = self.mount_secondary_async(&t) {
                        queue.extend(self.engine.input(Input::Mounted { target: t, result }));
                    }
                }
                Action::Send(t, msg) => self.send(&t, &msg).await,
                Action::SignalWorkers => {
                    for pid in self.held.values().filter_map(|h| h.pid) {
                        // One that is gone already needs no signal.
                        let _ = self.sys.kill(pid, nix::sys::signal::Signal::SIGTERM, false);
                    }
                }
                Action::WorkerGone(t) => {
                    let held = self.held.entry(t.clone()).or_default();
                    held.pid = None;
                    // A killed worker leaves its step's cgroup leaf: its processes were
                    // killed (KillLeftovers); removed now, or at the teardown while busy.
                    if let Some(leaf) = held.cgroup.take() {
                        if crate::pool::cost::remove_leaf(&leaf, std::time::Duration::ZERO).is_err()
                        {
                            self.stale_cgroups.push(leaf);
                        }
                    }
                    // A step it left running is over: its leftovers were killed.
                    self.pool_step_ended(&t);
                    // Its output has ended: a front end prints what is left, the TUI stops
                    // offering its rescue shell.
                    self.ui.flush(&t);
                }
                Action::KillLeftovers(t) => self.kill_leftovers(&t),
                Action::SaveCheckpoint => save = true,
                Action::Event(e) => last_event = Some(self.events.append(e)),
                Action::Notify(title) => {
                    if let Some(record) = &last_event {
                        self.notify(record, &title);
                    }
                }
                Action::Say(m) => self.ui.say(&m),
            }
        }
        if save {
            match &mut self.save_deferred {
                Some(due) => *due = true,
                None => self.save(),
            }
        }
    }

    /// Ends a deferral of checkpoint saves: the save that came due meanwhile is made now.
    /// At 64 targets the workers send thousands of messages a second when steps are short,
    /// and each save copies the whole checkpoint for the writer thread.
    fn save_now(&mut self) {
        if self.save_deferred.take() == Some(true) {
            self.save();
        }
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Connected(id, w) => {
                self.writers.insert(id, w);
                let actions = self.engine.input(Input::Connected);
                self.execute(actions).await;
            }
            Msg::Disconnected(id) => {
                self.writers.remove(&id);
                let target = self.conn_target.remove(&id);
                let actions = self.engine.input(Input::Disconnected(target));
                self.execute(actions).await;
            }
            Msg::Exited(target, code) => {
                let actions = self.engine.input(Input::WorkerExited { target, code });
                self.execute(actions).await;
            }
            Msg::Mounted(target, result) => {
                if result.is_ok() {
                    self.held.entry(target.clone()).or_default().mounted = true;
                }
                let actions = self.engine.input(Input::Mounted { target, result });
                self.execute(actions).await;
            }
            Msg::CheckpointFailed(m) => self.fail(m).await,
            Msg::Worker(id, msg) => self.worker_msg(id, msg).await,
        }
    }

    /// A worker's message, as an engine input.
    async fn worker_msg(&mut self, id: u64, msg: WorkerMsg) {
        if let WorkerMsg::Hello { target, .. } = &msg {
            self.conn_target.insert(id, target.clone());
            let actions = self.engine.input(Input::Hello(target.clone()));
            return self.execute(actions).await;
        }
        let Some(target) = self.conn_target.get(&id).cloned() else {
            return;
        };
        let input = match msg {
            WorkerMsg::Hello { .. } => return,
            // Package progress is shown and estimated here; it is no engine decision.
            WorkerMsg::Progress { step, progress } => {
                self.progress_report(&target, &step, progress);
                return;
            }
            WorkerMsg::StepStarted { step, cgroup } => {
                self.held.entry(target.clone()).or_default().cgroup = cgroup;
                Input::StepStarted {
                    target,
                    step,
                    now_us: now_us(),
                }
            }
            WorkerMsg::StepFinished {
                step,
                exit_code,
                duration_ms,
                cost,
            } => {
                // Its worker removed the leaf; one still there (a process escaped the step)
                // goes at the teardown.
                if let Some(leaf) = self.held.entry(target.clone()).or_default().cgroup.take() {
                    if leaf.exists() {
                        self.stale_cgroups.push(leaf);
                    }
                }
                Input::StepFinished {
                    target,
                    step,
                    exit_code,
                    duration_ms,
                    cost,
                }
            }
            WorkerMsg::ToolchainReady { tuple } => Input::ToolchainReady { target, tuple },
            WorkerMsg::AcquireSync => Input::AcquireSync(target),
            WorkerMsg::ReleaseSync => Input::ReleaseSync(target),
            WorkerMsg::Retry => Input::Retry(target),
            WorkerMsg::RescueWaiting { step } => Input::RescueWaiting {
                target,
                step,
                now_us: now_us(),
            },
        };
        // After the engine recorded it: the estimates read the checkpoint.
        let progress = match &input {
            Input::StepStarted { target, step, .. } => Some((target.clone(), Some(step.clone()))),
            Input::StepFinished { target, .. } => Some((target.clone(), None)),
            _ => None,
        };
        let actions = self.engine.input(input);
        self.execute(actions).await;
        match progress {
            Some((target, Some(step))) => {
                self.pool_step_started(&target, &step);
                self.progress_step_started(&target, &step);
            }
            Some((target, None)) => {
                // The worker killed the step's process group before it said so.
                self.pool_step_ended(&target);
                self.watch.step_finished(&target.to_string());
            }
            None => {}
        }
    }

    /// Feeds the run machine; its actions are queued for the driver in `supervise`, except
    /// the stop of the workers, which the steps loop needs at once.
    async fn feed(&mut self, input: RunInput) {
        let actions = self.run.input(input);
        for action in actions {
            match action {
                RunAction::StopWorkers => self.stop_workers().await,
                other => self.queue.push_back(other),
            }
        }
    }

    /// The run cannot go on (the checkpoint cannot be written): stop it, exit 1.
    async fn fail(&mut self, message: String) {
        self.ui.say(&format!("error: {message}; stopping the run"));
        self.feed(RunInput::Failed(Failure::Environment(message)))
            .await;
    }

    /// A signal or the user during the steps.
    async fn interrupt(&mut self, why: &str) {
        self.feed(RunInput::Stop(why.into())).await;
    }

    /// [`RunAction::StopWorkers`]: the steps machine's stop.
    async fn stop_workers(&mut self) {
        if !self.engine.stopping() {
            let why = match self.run.state() {
                RunState::Steps {
                    stop: Some(Outcome::Interrupted { why, .. }),
                } => why.clone(),
                _ => "stopping".into(),
            };
            self.ui.say(&format!(
                "{why} during the steps: stopping the workers; the checkpoint keeps what is \
                 done (continue with --resume)"
            ));
        }
        let actions = self.engine.input(Input::Stop);
        self.execute(actions).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{prepare, Action, Mode, Msg, Supervisor};
    use crate::sys::RecordingSys;
    use crate::ui::plain::Plain;

    /// The action executor, driven without root: mounting a waiting target's stacked
    /// environment goes through the injected seam, off the event loop, and comes back as a
    /// message; a mount that fails half-way comes back as the error naming it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_executor_mounts_a_waiting_target_through_the_injected_seam() {
        let (_tmp, starter) = crate::explore::tests::demo_tree();
        let sys = Arc::new(RecordingSys::default());
        let prepared =
            prepare(sys.as_ref(), &starter, &starter.options.history, &Mode::New).unwrap();
        assert!(!prepared.plan.first_build, "an update from the history");
        let (mut sup, mut msgs, _output) = Supervisor::new(
            prepared.plan,
            prepared.checkpoint,
            prepared.mode,
            sys.clone(),
            Box::new(Plain::default()),
        )
        .unwrap();
        let layout = sup.plan.layout.clone();
        let (b, c) = (layout.targets[1].clone(), layout.targets[2].clone());
        let b_dir = layout.secondary_dir(&b.target);
        let fail_at = layout.secondary_dir(&c.target).join("m/proc");
        sys.fail_at(&fail_at);
        sup.execute(vec![Action::Mount(b.target.clone())]).await;
        match msgs.recv().await {
            Some(Msg::Mounted(t, Ok(()))) => assert_eq!(t, b.target),
            _ => panic!("no successful Mounted message for {}", b.target),
        }
        let calls = sys.take();
        let root = b_dir.join("m");
        assert!(
            calls.iter().any(|c| matches!(c, crate::sys::Call::Mount(m)
                if m.source == "overlay" && m.target == root && m.fstype.as_deref() == Some("overlay"))),
            "{}'s root is stacked: {calls:#?}",
            b.target
        );
        for call in &calls {
            assert!(
                matches!(
                    call,
                    crate::sys::Call::Mount(_) | crate::sys::Call::Propagation { .. }
                ) && call.target().is_some_and(|t| t.starts_with(&b_dir)),
                "{call} is no mount of {}",
                b.target
            );
        }
        sup.execute(vec![Action::Mount(c.target.clone())]).await;
        match msgs.recv().await {
            Some(Msg::Mounted(t, Err(e))) => {
                assert_eq!(t, c.target);
                assert!(e.contains(&fail_at.display().to_string()), "{e}");
            }
            _ => panic!("no failed Mounted message for {}", c.target),
        }
        sup.writer.finish();
    }
}
