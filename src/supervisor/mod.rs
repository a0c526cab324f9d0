//! The supervisor (`build-helper run`): owns the run state, makes the mounts in its private
//! mount namespace, fetches the stage3, starts one worker per target in a pty, reacts to
//! their events (checkpoint after every transition, toolchain-ready starts the waiting
//! targets at once, one repository sync at a time), archives the history and unmounts.
//!
//! Not here: what a step does (recipe), how it runs (worker), how it is shown (ui).

mod archive;
mod finish;
pub mod prepare;
mod progress_watch;
mod setup;
mod signals;
pub mod spawn;
mod workers;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixListener;
use tokio::sync::mpsc;

use crate::config::Target;
use crate::engine::events::{now_us, Event, EventLog};
use crate::engine::machine::{Action, Engine, Input};
use crate::engine::protocol::{encode, socket_path, SupervisorMsg, WorkerMsg};
use crate::engine::state::CheckpointWriter;
use crate::engine::StepState;
use crate::mounts::{self, journal::Journal, Entry};
use crate::plan::Plan;
use crate::sys::LinuxSys;
use crate::ui::plain;
use crate::ui::{Frontend, Request};

pub use prepare::{prepare, private_namespace, Mode, Prepared};
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

/// Why the run stops early.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stop {
    /// A signal or the user: exit 130, resumable.
    Interrupted(String),
    /// The run cannot go on (the checkpoint cannot be written): exit 1.
    Failed(String),
}

struct Supervisor {
    /// The run directory's lock, held for the supervisor's whole life.
    _lock: crate::rundir::Lock,
    /// What the run is doing now, for the message when it is stopped.
    phase: &'static str,
    /// Set when the run stops early, with why.
    stop: Option<Stop>,
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
    /// Worker pids, for SIGTERM.
    pids: HashMap<Target, u32>,
    exited: HashMap<Target, i32>,
    /// Secondary environments mounted (in reality: the executor's record).
    mounted: HashSet<Target>,
    /// Limits how many secondary environments are mounted at once.
    mount_slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// Package progress and estimates of the running steps.
    watch: crate::progress::watch::Watch,
    /// Whether the environment's emerge.log files were read into `watch` (after mounting).
    emerge_logs_read: bool,
    /// The starter's notify command, and the notifications still running.
    notifier: Option<crate::notify::Notifier>,
    notifying: Vec<std::thread::JoinHandle<crate::notify::Outcome>>,
}

/// Supervises a prepared run to its end, shown by `ui` (which sends its [`Request`]s on
/// `requests`); returns the exit status: 0 when every target is done and the history
/// archived, 1 when a target failed, 130 when interrupted.
///
/// Must run inside the private mount namespace ([`private_namespace`]) on the thread that
/// lives for the whole run (workers get SIGTERM when it ends).
///
/// Errors: mounts, stage3 ([`UsageError`] when it does not verify), socket.
pub async fn supervise(
    prepared: Prepared,
    mut ui: Box<dyn Frontend>,
    mut requests: mpsc::UnboundedReceiver<Request>,
) -> anyhow::Result<i32> {
    let Prepared {
        plan,
        checkpoint,
        mode,
        lock,
    } = prepared;
    // Signals first: every phase from here on can be stopped.
    let mut signals = Signals::install().context("installing the signal handlers")?;
    let run_dir = plan.run_dir();
    let mut events = EventLog::open(&run_dir)
        .with_context(|| format!("opening the event log in {}", run_dir.display()))?;
    if let Some(out) = ui.event_sink() {
        events.tee(out);
    }
    events.append(Event::RunStarted { mode: mode.into() });
    let watch = progress_watch::start(&plan);
    let notifier = crate::notify::Notifier::new(&plan.notify, &run_dir);
    let (msg_tx, mut msg_rx) = mpsc::unbounded_channel();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let failed_tx = msg_tx.clone();
    let mut sup = Supervisor {
        _lock: lock,
        phase: "starting",
        stop: None,
        journal: std::sync::Arc::new(std::sync::Mutex::new(Journal {
            m_dir: plan.layout.m_dir.clone(),
            pid: std::process::id(),
            host_namespace: false,
            mnt_ns: crate::rundir::procs::own_mnt_ns(),
            ..Journal::default()
        })),
        writer: CheckpointWriter::start(
            &run_dir,
            Box::new(move |m| {
                let _ = failed_tx.send(Msg::CheckpointFailed(m));
            }),
        ),
        engine: Engine::new(&plan, checkpoint),
        plan,
        run_dir,
        events,
        ui,
        msg_tx,
        out_tx,
        writers: HashMap::new(),
        conn_target: HashMap::new(),
        pids: HashMap::new(),
        exited: HashMap::new(),
        mounted: HashSet::new(),
        mount_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(workers::mount_slots())),
        watch,
        emerge_logs_read: false,
        notifier,
        notifying: Vec::new(),
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
            sup.writer.finish();
            return Err(anyhow::Error::new(e).context(format!("listening on {}", socket.display())));
        }
    };
    let result = tokio::select! {
        r = sup.setup() => r,
        why = signals.next(&mut requests) => {
            Err(anyhow::Error::new(Interrupted(why)))
        }
    };
    if let Err(e) = result {
        sup.teardown();
        let _ = std::fs::remove_file(&socket);
        if let Some(Interrupted(why)) = e.downcast_ref::<Interrupted>() {
            let phase = sup.phase;
            for step in ["stage3", "mounts"] {
                if sup.engine.checkpoint().run_step(step).map(|s| s.state)
                    == Some(StepState::Running)
                {
                    sup.run_step(step, StepState::Interrupted);
                }
            }
            sup.events.append(Event::RunFinished {
                result: "interrupted".into(),
            });
            sup.writer.finish();
            sup.ui.say(&format!(
                "{why} during {phase}: stopped; nothing is mounted; continue with \
                 `build-helper run {} --resume {}`",
                sup.plan.starter.display(),
                sup.plan.run_id
            ));
            sup.ui.close();
            return Ok(130);
        }
        sup.writer.finish();
        sup.ui.close();
        return Err(e);
    }

    let accept_tx = sup.msg_tx.clone();
    tokio::spawn(async move {
        let mut next = 0u64;
        while let Ok((stream, _)) = listener.accept().await {
            // Only root may talk to the supervisor (DESIGN.md, Processes).
            if !stream.peer_cred().is_ok_and(|c| c.uid() == 0) {
                continue;
            }
            next += 1;
            let id = next;
            let (read, write) = stream.into_split();
            if accept_tx.send(Msg::Connected(id, write)).is_err() {
                break;
            }
            let tx = accept_tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(msg) = serde_json::from_str::<WorkerMsg>(&line) {
                        let _ = tx.send(Msg::Worker(id, msg));
                    }
                }
                let _ = tx.send(Msg::Disconnected(id));
            });
        }
    });

    sup.phase = "the steps";
    let first = sup.engine.start();
    sup.execute(first).await;
    while sup.engine.any_running() {
        tokio::select! {
            Some(out) = out_rx.recv() => sup.ui.output(&out.target, &out.bytes),
            Some(msg) = msg_rx.recv() => sup.handle(msg).await,
            why = signals.next(&mut requests) => sup.interrupt(why).await,
        }
    }
    while let Ok(out) = out_rx.try_recv() {
        sup.ui.output(&out.target, &out.bytes);
    }
    for t in sup
        .plan
        .targets
        .iter()
        .map(|t| t.target.clone())
        .collect::<Vec<_>>()
    {
        sup.ui.flush(&t);
    }
    let _ = std::fs::remove_file(&socket);
    sup.finish(&mut signals, &mut requests, &mut msg_rx).await
}

/// The run was stopped by a signal or the user (the reason word).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Interrupted(&'static str);

impl Supervisor {
    /// Hands the checkpoint to the writer thread (temp, fsync, rename off the event loop).
    fn save(&mut self) {
        self.writer.save(self.engine.checkpoint());
        self.ui.checkpoint(self.engine.checkpoint());
    }

    fn run_step(&mut self, name: &str, state: StepState) {
        self.engine
            .checkpoint_mut()
            .set_run_step(name, state, now_us());
        self.save();
        self.events.append(Event::RunStep {
            step: name.into(),
            state: plain::state_word(state).into(),
        });
    }

    fn mount(&mut self, entries: &[Entry]) -> anyhow::Result<()> {
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        mounts::apply(
            &LinuxSys,
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
        while let Some(action) = queue.pop_front() {
            match action {
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
                    for pid in self.pids.values() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(*pid as i32),
                            nix::sys::signal::Signal::SIGTERM,
                        );
                    }
                }
                Action::KillLeftovers(t) => self.kill_leftovers(&t),
                Action::SaveCheckpoint => save = true,
                Action::Event(e) => {
                    let record = self.events.append(e);
                    if let Event::StepFailed { target, step, .. } = &record.event {
                        let waits = if self.ui.interactive() {
                            ", rescue shell waiting"
                        } else {
                            ""
                        };
                        let title = format!("{target}: {step} failed{waits}");
                        self.notify(&record, &title);
                    }
                }
                Action::Say(m) => self.ui.say(&m),
            }
        }
        if save {
            self.save();
        }
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Connected(id, w) => {
                self.writers.insert(id, w);
            }
            Msg::Disconnected(id) => {
                self.writers.remove(&id);
                self.conn_target.remove(&id);
            }
            Msg::Exited(target, code) => {
                self.exited.insert(target, code);
            }
            Msg::Mounted(target, result) => {
                if result.is_ok() {
                    self.mounted.insert(target.clone());
                }
                let actions = self.engine.input(Input::Mounted { target, result });
                self.execute(actions).await;
            }
            Msg::CheckpointFailed(m) => self.fail(m).await,
            Msg::Worker(id, msg) => self.worker_msg(id, msg).await,
        }
        self.settle().await;
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
            WorkerMsg::StepStarted { step } => Input::StepStarted {
                target,
                step,
                now_us: now_us(),
            },
            WorkerMsg::StepFinished {
                step,
                exit_code,
                duration_ms,
            } => Input::StepFinished {
                target,
                step,
                exit_code,
                duration_ms,
            },
            WorkerMsg::ToolchainReady { tuple } => Input::ToolchainReady { target, tuple },
            WorkerMsg::AcquireSync => Input::AcquireSync(target),
            WorkerMsg::ReleaseSync => Input::ReleaseSync(target),
            WorkerMsg::Retry => Input::Retry(target),
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
            Some((target, Some(step))) => self.progress_step_started(&target, &step),
            Some((target, None)) => self.watch.step_finished(&target.to_string()),
            None => {}
        }
    }

    /// The run cannot go on: stop it, and exit 1 with `message`.
    async fn fail(&mut self, message: String) {
        self.ui.say(&format!("error: {message}; stopping the run"));
        if !matches!(self.stop, Some(Stop::Failed(_))) {
            self.stop = Some(Stop::Failed(message));
        }
        self.interrupt("stopping").await;
    }

    async fn interrupt(&mut self, why: &str) {
        if !self.engine.stopping() {
            self.ui.say(&format!(
                "{why} during {}: stopping the workers; the checkpoint keeps what is done \
                 (continue with --resume)",
                self.phase
            ));
        }
        if self.stop.is_none() {
            self.stop = Some(Stop::Interrupted(format!("{why} during {}", self.phase)));
        }
        let actions = self.engine.input(Input::Stop);
        self.execute(actions).await;
    }
}
