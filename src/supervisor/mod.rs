//! The supervisor (`build-helper run`): owns the run state, makes the mounts in its private
//! mount namespace, fetches the stage3, starts one worker per target in a pty, reacts to
//! their events (checkpoint after every transition, toolchain-ready starts the waiting
//! targets at once, one repository sync at a time), archives the history and unmounts.
//!
//! Not here: what a step does (recipe), how it runs (worker), how it is shown (ui).

mod archive;
pub mod prepare;
mod progress_watch;
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
}

struct Supervisor {
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
    } = prepared;
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
    let mut sup = Supervisor {
        journal: Journal {
            m_dir: plan.layout.m_dir.clone(),
            pid: std::process::id(),
            host_namespace: false,
            mounts: Vec::new(),
        },
        writer: CheckpointWriter::start(&run_dir),
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

    // Signals and the socket first: nothing is mounted yet if they cannot be set up.
    use tokio::signal::unix::{signal, SignalKind};
    let (mut sigint, mut sigterm) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => {
            sup.writer.finish();
            return Err(anyhow::Error::new(e).context("installing the signal handlers"));
        }
    };
    let socket = socket_path(&sup.run_dir);
    let _ = std::fs::remove_file(&socket);
    let listener = match UnixListener::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            sup.writer.finish();
            return Err(anyhow::Error::new(e).context(format!("listening on {}", socket.display())));
        }
    };
    let result = sup.setup().await;
    if let Err(e) = result {
        sup.teardown();
        sup.writer.finish();
        let _ = std::fs::remove_file(&socket);
        sup.ui.close();
        return Err(e);
    }

    let accept_tx = sup.msg_tx.clone();
    tokio::spawn(async move {
        let mut next = 0u64;
        while let Ok((stream, _)) = listener.accept().await {
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

    sup.start_workers();
    while !sup.running.is_empty() {
        tokio::select! {
            Some(out) = out_rx.recv() => sup.ui.output(&out.target, &out.bytes),
            Some(msg) = msg_rx.recv() => {
                sup.handle(msg).await;
                sup.release_ready().await;
            }
            Some(Request::Quit) = requests.recv() => sup.interrupt("quit"),
            _ = sigint.recv() => sup.interrupt("interrupted"),
            _ = sigterm.recv() => sup.interrupt("terminated"),
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
    sup.finish().await
}

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
                    step: step.clone(),
                });
                self.progress_step_started(&target, &step);
            }
            WorkerMsg::Progress { step, progress } => {
                self.progress_report(&target, &step, progress);
            }
            WorkerMsg::StepFinished {
                step,
                exit_code,
                duration_ms,
            } => {
                self.cp
                    .step_finished(&target, &step, exit_code, duration_ms);
                self.save();
                self.watch.step_finished(&target.to_string());
                self.events.append(Event::StepFinished {
                    target: target.to_string(),
                    step: step.clone(),
                    exit_code,
                    duration_ms,
                });
                if exit_code != 0 {
                    let record = self.events.append(Event::StepFailed {
                        target: target.to_string(),
                        log: self.plan.log_path(&target).display().to_string(),
                        step: step.clone(),
                        exit_code,
                    });
                    let waits = if self.ui.interactive() {
                        ", rescue shell waiting"
                    } else {
                        ""
                    };
                    self.notify(&record, &format!("{target}: {step} failed{waits}"));
                }
            }
            WorkerMsg::ToolchainReady { tuple } => {
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

    fn interrupt(&mut self, why: &str) {
        if !self.stopping {
            self.ui.say(&format!(
                "{why}: stopping the workers; the checkpoint keeps what is done (continue with --resume)"
            ));
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

    async fn finish(mut self) -> anyhow::Result<i32> {
        let mut code = if self.stopping { 130 } else { 1 };
        if !self.stopping && self.cp.all_done() {
            self.run_step("archive-history", StepState::Running);
            match self.archive().await {
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
        let result = match code {
            0 => "done",
            130 => "interrupted",
            _ => "failed",
        };
        let ended = crate::engine::events::Record {
            t_us: now_us(),
            event: Event::RunFinished {
                result: result.into(),
            },
        };
        self.notify(&ended, &format!("run {} {result}", self.plan.run_id));
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
        self.ui.close();
        // A notification still running (at most its timeout): the run's end must reach it.
        for n in self.notifying.drain(..) {
            let _ = n.join();
        }
        Ok(code)
    }
}
