//! The supervisor (`build-helper run`): owns the run state, makes the mounts in its private
//! mount namespace, fetches the stage3, starts one worker per target in a pty, reacts to
//! their events (checkpoint after every transition, toolchain-ready starts the waiting
//! targets at once, one repository sync at a time), archives the history and unmounts.
//!
//! Not here: what a step does (recipe), how it runs (worker), how it is shown (ui).

mod archive;
pub mod prepare;
mod setup;
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
use crate::engine::protocol::{encode, socket_path, SupervisorMsg, WorkerMsg};
use crate::engine::state::CheckpointWriter;
use crate::engine::{Checkpoint, StepState};
use crate::mounts::{self, journal::Journal, Entry};
use crate::plan::Plan;
use crate::sys::LinuxSys;
use crate::ui::plain;
use crate::ui::{Frontend, Request};

pub use prepare::{prepare, private_namespace, Mode, Prepared};

/// Resolves to a worker's exit code.
type ExitWait = std::pin::Pin<Box<dyn std::future::Future<Output = i32> + Send>>;

enum Msg {
    Connected(u64, OwnedWriteHalf),
    Worker(u64, WorkerMsg),
    Disconnected(u64),
    Exited(Target, i32),
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
    cp: Checkpoint,
    writer: CheckpointWriter,
    run_dir: PathBuf,
    events: EventLog,
    journal: Journal,
    ui: Box<dyn Frontend>,
    msg_tx: mpsc::UnboundedSender<Msg>,
    out_tx: mpsc::UnboundedSender<spawn::Output>,
    writers: HashMap<u64, OwnedWriteHalf>,
    conn_target: HashMap<u64, Target>,
    running: HashMap<Target, u32>,
    exited: HashMap<Target, i32>,
    started: HashSet<Target>,
    /// Workers told which steps to run (the others wait, connected, for their toolchain).
    released: HashSet<Target>,
    mounted: HashSet<Target>,
    sync_holder: Option<Target>,
    sync_queue: VecDeque<Target>,
    stopping: bool,
}

/// The signals that stop a run, installed before anything else happens so that every phase
/// (download, verification, extraction, mounts, steps, archive) can be stopped.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves with the reason when SIGINT, SIGTERM or the front end's quit arrives.
    async fn next(&mut self, requests: &mut mpsc::UnboundedReceiver<Request>) -> &'static str {
        let quit = async {
            match requests.recv().await {
                Some(Request::Quit) => "quit",
                // The front end is gone: only signals can stop the run now.
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.int.recv() => "interrupted",
            _ = self.term.recv() => "terminated",
            why = quit => why,
        }
    }
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
    let (msg_tx, mut msg_rx) = mpsc::unbounded_channel();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let failed_tx = msg_tx.clone();
    let mut sup = Supervisor {
        _lock: lock,
        phase: "starting",
        stop: None,
        journal: Journal {
            m_dir: plan.layout.m_dir.clone(),
            pid: std::process::id(),
            host_namespace: false,
            mnt_ns: crate::rundir::procs::own_mnt_ns(),
            ..Journal::default()
        },
        writer: CheckpointWriter::start(
            &run_dir,
            Box::new(move |m| {
                let _ = failed_tx.send(Msg::CheckpointFailed(m));
            }),
        ),
        plan,
        cp: checkpoint,
        run_dir,
        events,
        ui,
        msg_tx,
        out_tx,
        writers: HashMap::new(),
        conn_target: HashMap::new(),
        running: HashMap::new(),
        exited: HashMap::new(),
        started: HashSet::new(),
        released: HashSet::new(),
        mounted: HashSet::new(),
        sync_holder: None,
        sync_queue: VecDeque::new(),
        stopping: false,
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
                if sup.cp.run_step(step).map(|s| s.state) == Some(StepState::Running) {
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
    sup.start_workers();
    while !sup.running.is_empty() {
        tokio::select! {
            Some(out) = out_rx.recv() => sup.ui.output(&out.target, &out.bytes),
            Some(msg) = msg_rx.recv() => {
                sup.handle(msg).await;
                sup.release_ready().await;
            }
            why = signals.next(&mut requests) => sup.interrupt(why),
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
        self.writer.save(&self.cp);
        self.ui.checkpoint(&self.cp);
    }

    fn run_step(&mut self, name: &str, state: StepState) {
        self.cp.set_run_step(name, state, now_us());
        self.save();
        self.events.append(Event::RunStep {
            step: name.into(),
            state: plain::state_word(state).into(),
        });
    }

    fn mount(&mut self, entries: &[Entry]) -> anyhow::Result<()> {
        mounts::apply(
            &LinuxSys,
            &self.plan.layout.m_dir,
            entries,
            &mut self.journal,
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

    async fn grant_sync(&mut self) {
        if self.sync_holder.is_none() {
            if let Some(next) = self.sync_queue.pop_front() {
                self.sync_holder = Some(next.clone());
                self.send(&next, &SupervisorMsg::SyncGranted).await;
            }
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
            Msg::CheckpointFailed(m) => self.fail(m),
            Msg::Worker(id, msg) => self.worker_msg(id, msg).await,
        }
        self.settle().await;
    }

    async fn worker_msg(&mut self, id: u64, msg: WorkerMsg) {
        if let WorkerMsg::Hello { target, .. } = &msg {
            self.conn_target.insert(id, target.clone());
            return;
        }
        let Some(target) = self.conn_target.get(&id).cloned() else {
            return;
        };
        match msg {
            WorkerMsg::Hello { .. } => {}
            WorkerMsg::StepStarted { step } => {
                self.cp.step_started(&target, &step, now_us());
                self.save();
                self.events.append(Event::StepStarted {
                    target: target.to_string(),
                    step,
                });
            }
            WorkerMsg::StepFinished {
                step,
                exit_code,
                duration_ms,
            } => {
                self.cp
                    .step_finished(&target, &step, exit_code, duration_ms);
                self.save();
                self.events.append(Event::StepFinished {
                    target: target.to_string(),
                    step: step.clone(),
                    exit_code,
                    duration_ms,
                });
                if exit_code != 0 {
                    self.events.append(Event::StepFailed {
                        target: target.to_string(),
                        log: self.plan.log_path(&target).display().to_string(),
                        step,
                        exit_code,
                    });
                }
            }
            WorkerMsg::ToolchainReady { tuple } => {
                // Only the running step that the plan says announces this tuple may.
                let running = self.cp.target(&target).and_then(|r| {
                    r.steps
                        .iter()
                        .find(|s| s.state == StepState::Running)
                        .map(|s| s.name.clone())
                });
                let allowed = running.as_ref().is_some_and(|step| {
                    self.plan
                        .target(&target)
                        .and_then(|t| t.steps.iter().find(|s| &s.name == step))
                        .is_some_and(|s| s.announces.iter().any(|a| a == &tuple))
                });
                if !allowed {
                    self.ui.say(&format!(
                        "ignored: {target} announced toolchain-ready {tuple} from step {}, which \
                         the plan does not let announce it",
                        running.as_deref().unwrap_or("(none running)")
                    ));
                    return;
                }
                if self.cp.set_toolchain_ready(&tuple) {
                    self.save();
                    self.events.append(Event::ToolchainReady { tuple });
                }
            }
            WorkerMsg::AcquireSync => {
                self.sync_queue.push_back(target);
                self.grant_sync().await;
            }
            WorkerMsg::Retry => {
                let steps = self.cp.reset_target(&target);
                self.save();
                self.send(&target, &SupervisorMsg::Start { steps }).await;
            }
            WorkerMsg::ReleaseSync => {
                if self.sync_holder.as_ref() == Some(&target) {
                    self.sync_holder = None;
                    self.grant_sync().await;
                }
            }
        }
    }

    /// The run cannot go on: stop it, and exit 1 with `message`.
    fn fail(&mut self, message: String) {
        self.ui.say(&format!("error: {message}; stopping the run"));
        if !matches!(self.stop, Some(Stop::Failed(_))) {
            self.stop = Some(Stop::Failed(message));
        }
        self.interrupt("stopping");
    }

    fn interrupt(&mut self, why: &str) {
        if !self.stopping {
            self.ui.say(&format!(
                "{why} during {}: stopping the workers; the checkpoint keeps what is done \
                 (continue with --resume)",
                self.phase
            ));
        }
        if self.stop.is_none() {
            self.stop = Some(Stop::Interrupted(format!("{why} during {}", self.phase)));
        }
        self.stopping = true;
        for pid in self.running.values() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }

    fn teardown(&mut self) {
        let m = self.plan.layout.m_dir.clone();
        match mounts::teardown(&LinuxSys, &m, true) {
            Ok(n) => {
                if n > 0 {
                    self.ui
                        .say(&format!("unmounted {n} mount(s) under {}", m.display()));
                }
                let _ = Journal::remove(&self.run_dir);
            }
            Err(e) => self.ui.say(&format!("error: {e}")),
        }
    }

    async fn finish(
        mut self,
        signals: &mut Signals,
        requests: &mut mpsc::UnboundedReceiver<Request>,
        msgs: &mut mpsc::UnboundedReceiver<Msg>,
    ) -> anyhow::Result<i32> {
        let mut code = if self.stopping { 130 } else { 1 };
        if !self.stopping && self.cp.all_done() {
            self.phase = "the archive";
            self.run_step("archive-history", StepState::Running);
            let outcome = tokio::select! {
                r = self.archive() => Some(r),
                why = signals.next(requests) => {
                    self.interrupt(why);
                    None
                }
                Some(Msg::CheckpointFailed(m)) = msgs.recv() => {
                    self.fail(m);
                    None
                }
            };
            let outcome = match outcome {
                Some(r) => r,
                None => {
                    self.stop_archiver();
                    self.run_step("archive-history", StepState::Interrupted);
                    code = if matches!(self.stop, Some(Stop::Failed(_))) {
                        1
                    } else {
                        130
                    };
                    Err(anyhow::anyhow!("stopped"))
                }
            };
            match outcome {
                _ if self.stopping => {}
                Ok(path) => {
                    self.run_step("archive-history", StepState::Done);
                    self.ui.say(&format!("history saved as {}", path.display()));
                    self.cp.finished = true;
                    self.save();
                    code = 0;
                }
                Err(e) => {
                    self.run_step("archive-history", StepState::Failed);
                    self.ui.say(&format!("archive-history failed: {e:#}"));
                }
            }
        }
        let date = self.plan.date.clone();
        let tree = self.plan.tree.clone();
        let table = plain::summary(&self.cp, &|t| {
            tree.join("builds")
                .join(format!("{t}.{date}"))
                .display()
                .to_string()
        });
        self.ui.summary(&table);
        if code == 0 && self.plan.umount_ask {
            let question = format!(
                "everything is built. Unmount now? [Y/n] (no keeps the mounts while this \
                 process waits; explore with `nsenter -m -t {}`)",
                std::process::id()
            );
            if self.ui.ask(&question) == Some(false) {
                self.ui
                    .wait_for_user("mounts kept; press Enter to unmount and exit");
            }
        }
        self.teardown();
        if let Some(Stop::Failed(_)) = &self.stop {
            code = 1;
        }
        let result = match code {
            0 => "done",
            130 => "interrupted",
            _ => "failed",
        };
        self.events.append(Event::RunFinished {
            result: result.into(),
        });
        self.writer.finish();
        if code != 0 {
            self.ui.say(&format!(
                "run {} {result}; logs in {}/logs; continue with `build-helper run {} --resume {}`",
                self.plan.run_id,
                self.run_dir.display(),
                self.plan.starter.display(),
                self.plan.run_id
            ));
        }
        if let Some(Stop::Interrupted(what)) = &self.stop {
            self.ui
                .say(&format!("{what}: run {} stopped", self.plan.run_id));
        }
        self.ui.close();
        match self.stop.take() {
            Some(Stop::Failed(m)) => Err(anyhow::anyhow!(
                "{m}; run {} stopped (continue with `build-helper run {} --resume {}` once the \
                 cause is fixed)",
                self.plan.run_id,
                self.plan.starter.display(),
                self.plan.run_id
            )),
            _ => Ok(code),
        }
    }
}
