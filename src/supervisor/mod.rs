//! The supervisor (`build-helper run`): owns the run state, makes the mounts in its private
//! mount namespace, fetches the stage3, starts one worker per target in a pty, reacts to
//! their events (checkpoint after every transition, toolchain-ready starts the waiting
//! targets at once, one repository sync at a time), archives the history and unmounts.
//!
//! Not here: what a step does (recipe), how it runs (worker), how it is shown (ui).

mod archive;
pub mod prepare;
pub mod spawn;

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
use crate::error::UsageError;
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

    /// stage3 (verify before anything is mounted), `M`, the extracted or stacked primary
    /// environment, its binds.
    async fn setup(&mut self) -> anyhow::Result<()> {
        let need_stage3 = self.plan.first_build
            && self.cp.run_step("stage3").map(|s| s.state) != Some(StepState::Done);
        let mut tarball = None;
        if need_stage3 {
            self.run_step("stage3", StepState::Running);
            let Some(src) = self.plan.stage3.clone() else {
                anyhow::bail!("the plan of a first build has no stage3 source");
            };
            let req = crate::stage3::Request {
                mirror: src.mirror,
                arch: src.arch,
                flavor: src.flavor,
                distfiles: self.plan.layout.distfiles.clone(),
                // The TUI owns the terminal: a bar on stderr would scroll it apart.
                progress_bar: !self.ui.owns_terminal(),
            };
            let verifier = match src.openpgp_key.as_deref() {
                Some(key) => match crate::stage3::OpenPgpVerifier::from_file(key) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        self.run_step("stage3", StepState::Failed);
                        return Err(
                            UsageError(format!("{e}\nnothing was mounted or extracted")).into()
                        );
                    }
                },
                None => None,
            };
            let verifier = verifier
                .as_ref()
                .map(|v| v as &dyn crate::stage3::SignatureVerifier);
            let obtained = {
                let ui = &mut self.ui;
                let mut progress = |line: String| ui.say(&line);
                crate::stage3::obtain_with_verifier(&req, verifier, &mut progress).await
            };
            if verifier.is_none() {
                self.ui.say(
                    "WARNING: the stage3's OpenPGP signatures were NOT checked \
                     (--no-verify-signatures or verify_signatures = false); only its digests were",
                );
            }
            match obtained {
                Ok(v) => tarball = Some(v.tarball),
                Err(e) => {
                    self.run_step("stage3", StepState::Failed);
                    return Err(UsageError(format!("{e}\nnothing was mounted or extracted")).into());
                }
            }
        }
        self.run_step("mounts", StepState::Running);
        for dir in self.plan.layout.source_dirs() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let base = self.plan.layout.base_entries();
        let root = self.plan.layout.primary_root();
        if let Some((history, _)) = self.plan.layout.history.clone() {
            // A history that mounts but holds no root filesystem would only fail later, in
            // host-sync, with "no /bin/sh": say what is wrong now.
            let mounted = self.mount(&base);
            let usable = root.join("etc").is_dir() && root.join("bin/sh").exists();
            if mounted.is_err() || !usable {
                let why = match mounted {
                    Err(e) => format!("{e:#}"),
                    Ok(()) => "it holds no root filesystem (no etc/ or bin/sh)".into(),
                };
                return Err(UsageError(format!(
                    "history {} cannot be used: {why}; it may be corrupt: pick another with \
                     --history (`build-helper history list`), or `--history none` for a stage3",
                    history.display()
                ))
                .into());
            }
        } else {
            self.mount(&base)?;
        }
        if let Some(tarball) = tarball {
            self.ui.say(&format!(
                "extracting {} into {}",
                tarball.display(),
                root.display()
            ));
            if root.exists() {
                std::fs::remove_dir_all(&root)
                    .with_context(|| format!("removing the unfinished {}", root.display()))?;
            }
            let dest = root.clone();
            let stats =
                tokio::task::spawn_blocking(move || crate::stage3::extract(&tarball, &dest))
                    .await
                    .context("the extraction task failed")?;
            match stats {
                Ok(_) => self.run_step("stage3", StepState::Done),
                Err(e) => {
                    self.run_step("stage3", StepState::Failed);
                    return Err(UsageError(e.to_string()).into());
                }
            }
        } else if self.plan.first_build && !root.join("etc").is_dir() {
            anyhow::bail!(
                "the environment {} of run {} is gone (a tmpfs keeps nothing after its run \
                 ends); start a new run",
                root.display(),
                self.plan.run_id
            );
        }
        let primary = self.plan.layout.primary_entries();
        self.mount(&primary)?;
        self.run_step("mounts", StepState::Done);
        Ok(())
    }

    /// Starts a worker for every target with steps left. Secondary workers connect and wait
    /// for their tuple's toolchain: when it is ready, releasing them costs a mount and one
    /// message, not a process start (the toolchain-ready to first-step delay is a goal).
    fn start_workers(&mut self) {
        let todo: Vec<Target> = self
            .plan
            .targets
            .iter()
            .filter(|t| !self.started.contains(&t.target))
            .filter(|t| {
                self.cp
                    .target(&t.target)
                    .is_some_and(|r| !r.pending_steps().is_empty())
            })
            .map(|t| t.target.clone())
            .collect();
        for t in todo {
            if let Err(e) = self.start(&t) {
                self.ui.say(&format!("cannot start {t}: {e:#}"));
                self.started.insert(t);
            }
        }
    }

    fn is_primary(&self, target: &Target) -> bool {
        self.plan.targets.first().map(|t| &t.target) == Some(target)
    }

    /// Sends `Start` to every connected waiting worker whose toolchain is ready (mounting its
    /// stacked environment first); tells the waiting ones whose toolchain can no longer come
    /// (the primary worker is gone) to stop.
    async fn release_ready(&mut self) {
        let waiting: Vec<Target> = self
            .conn_target
            .values()
            .filter(|t| !self.released.contains(*t))
            .cloned()
            .collect();
        let primary_alive = self
            .plan
            .targets
            .first()
            .is_some_and(|p| self.running.contains_key(&p.target));
        for target in waiting {
            let ready = self.is_primary(&target) || self.cp.tuple_ready(&target.tuple);
            if ready && !self.stopping {
                self.released.insert(target.clone());
                let steps = match self.mount_secondary(&target) {
                    Ok(()) => self
                        .cp
                        .target(&target)
                        .map(|r| r.pending_steps())
                        .unwrap_or_default(),
                    Err(e) => {
                        self.ui
                            .say(&format!("cannot mount the environment of {target}: {e:#}"));
                        Vec::new()
                    }
                };
                let msg = if steps.is_empty() {
                    SupervisorMsg::Stop
                } else {
                    SupervisorMsg::Start { steps }
                };
                self.send(&target, &msg).await;
            } else if !primary_alive || self.stopping {
                self.released.insert(target.clone());
                self.send(&target, &SupervisorMsg::Stop).await;
            }
        }
    }

    /// Mounts a secondary target's stacked environment unless it is mounted already (the
    /// primary environment is always mounted).
    fn mount_secondary(&mut self, target: &Target) -> anyhow::Result<()> {
        let primary = self.plan.targets.first().map(|t| &t.target) == Some(target);
        if primary || self.mounted.contains(target) {
            return Ok(());
        }
        let dirs = self
            .plan
            .layout
            .targets
            .iter()
            .find(|d| &d.target == target)
            .cloned()
            .context("target missing from the layout")?;
        let entries = self.plan.layout.secondary_entries(&dirs);
        self.mount(&entries)?;
        self.mounted.insert(target.clone());
        Ok(())
    }

    fn start(&mut self, target: &Target) -> anyhow::Result<()> {
        let (pid, exit) = match self.ui.start_worker(&self.run_dir, target) {
            Some(started) => {
                let s = started.with_context(|| format!("starting the worker of {target}"))?;
                let exited = s.exited;
                let wait: ExitWait = Box::pin(async move { exited.await.unwrap_or(-1) });
                (s.pid, wait)
            }
            None => {
                let (cols, rows) = self.ui.pty_size(target);
                let interactive = self.ui.interactive();
                let (mut child, pty) = spawn::worker(
                    &self.run_dir,
                    target,
                    cols,
                    rows,
                    interactive,
                    self.ui.backlog(),
                    self.out_tx.clone(),
                )
                .with_context(|| format!("starting the worker of {target}"))?;
                self.ui.attach(target, pty);
                let pid = child.id().unwrap_or(0);
                let wait: ExitWait = Box::pin(async move {
                    match child.wait().await {
                        Ok(status) => {
                            use std::os::unix::process::ExitStatusExt;
                            status
                                .code()
                                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
                        }
                        Err(_) => -1,
                    }
                });
                (pid, wait)
            }
        };
        self.started.insert(target.clone());
        self.running.insert(target.clone(), pid);
        self.events.append(Event::WorkerStarted {
            target: target.to_string(),
            pid,
        });
        let tx = self.msg_tx.clone();
        let t = target.clone();
        tokio::spawn(async move {
            let code = exit.await;
            let _ = tx.send(Msg::Exited(t, code));
        });
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

    /// A worker whose process exited is gone once its connection has closed too (its last
    /// messages may still be in flight), or when it never connected.
    async fn settle(&mut self) {
        let unidentified = self
            .writers
            .keys()
            .any(|id| !self.conn_target.contains_key(id));
        if unidentified {
            return;
        }
        let gone: Vec<(Target, i32)> = self
            .exited
            .iter()
            .filter(|(t, _)| !self.conn_target.values().any(|c| c == *t))
            .map(|(t, c)| (t.clone(), *c))
            .collect();
        for (target, code) in gone {
            self.exited.remove(&target);
            self.gone(target, code).await;
        }
    }

    async fn gone(&mut self, target: Target, code: i32) {
        self.running.remove(&target);
        self.cp.worker_exited(&target);
        self.save();
        self.events.append(Event::WorkerExited {
            target: target.to_string(),
            code,
        });
        self.sync_queue.retain(|t| t != &target);
        if self.sync_holder.as_ref() == Some(&target) {
            self.sync_holder = None;
            self.grant_sync().await;
        }
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
        self.ui.close();
        Ok(code)
    }
}
