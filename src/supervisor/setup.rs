//! The phases before any worker starts, each executing one action of the run machine
//! ([`crate::engine::run`]) and answering with its result: the stage3 (fetched and verified
//! before anything is mounted), `M` and the base, the extraction, the primary environment's
//! binds. No decision is taken here: what comes next is the machine's.

use super::Supervisor;
use crate::engine::run::{Failure, RunInput};

/// A stage3 error as a phase failure: the network or the disk failed (exit 1), or bad input
/// (mirror, options, a file that does not verify: exit 2).
fn stage3_failure(e: crate::stage3::Stage3Error, what: &str) -> Failure {
    let message = format!("{e}{what}");
    if e.is_environment() {
        Failure::Environment(message)
    } else {
        Failure::BadInput(message)
    }
}

impl Supervisor {
    /// [`crate::engine::run::RunAction::FetchStage3`]: download and verify the stage3.
    pub(super) async fn fetch_stage3(&mut self) -> RunInput {
        let Some(src) = self.plan.stage3.clone() else {
            return RunInput::Failed(Failure::BadInput(
                "the plan of a first build has no stage3 source; plan the run again".into(),
            ));
        };
        let req = crate::stage3::Request {
            mirror: src.mirror,
            arch: src.arch,
            flavor: src.flavor,
            distfiles: self.plan.layout.distfiles.clone(),
            // The TUI owns the terminal: a bar on stderr would scroll it apart.
            progress_bar: !self.ui.owns_terminal(),
        };
        let nothing = "\nnothing was mounted or extracted";
        let verifier = match src.openpgp_key.as_deref() {
            Some(key) => match crate::stage3::OpenPgpVerifier::from_file(key) {
                Ok(v) => Some(v),
                // A key that cannot be read is bad input whatever the cause.
                Err(e) => return RunInput::Failed(Failure::BadInput(format!("{e}{nothing}"))),
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
            Ok(v) => RunInput::Fetched(v.tarball),
            Err(e) => RunInput::Failed(stage3_failure(e, nothing)),
        }
    }

    /// [`crate::engine::run::RunAction::MountBase`]: the source directories, `M` and the
    /// base (a history must hold a root filesystem).
    pub(super) async fn mount_base(&mut self) -> RunInput {
        for dir in self.plan.layout.source_dirs() {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                return RunInput::Failed(Failure::Environment(format!(
                    "creating {}: {e}",
                    dir.display()
                )));
            }
        }
        let base = self.plan.layout.base_entries();
        let root = self.plan.layout.primary_root();
        let mounted = self.mount_stoppable(base).await;
        let root_present = root.join("etc").is_dir();
        if let Some((history, _)) = self.plan.layout.history.clone() {
            // A history that mounts but holds no root filesystem would only fail later, in
            // host-sync, with "no /bin/sh": say what is wrong now.
            let usable = root_present && root.join("bin/sh").exists();
            if mounted.is_err() || !usable {
                let why = match mounted {
                    Err(e) => e,
                    Ok(()) => "it holds no root filesystem (no etc/ or bin/sh)".into(),
                };
                return RunInput::Failed(Failure::BadInput(format!(
                    "history {} cannot be used: {why}; it may be corrupt: pick another with \
                     --history (`build-helper history list`), or `--history none` for a stage3",
                    history.display()
                )));
            }
        } else if let Err(e) = mounted {
            return RunInput::Failed(Failure::Environment(e));
        }
        RunInput::BaseMounted { root_present }
    }

    /// [`crate::engine::run::RunAction::Extract`]: the verified stage3 into the primary
    /// root (an unfinished one from an interrupted extraction is removed first).
    pub(super) async fn extract(&mut self, tarball: std::path::PathBuf) -> RunInput {
        let root = self.plan.layout.primary_root();
        self.ui.say(&format!(
            "extracting {} into {}",
            tarball.display(),
            root.display()
        ));
        if root.exists() {
            if let Err(e) = std::fs::remove_dir_all(&root) {
                return RunInput::Failed(Failure::Environment(format!(
                    "removing the unfinished {}: {e}",
                    root.display()
                )));
            }
        }
        // On a thread of its own, stoppable between entries ([`Supervisor::stop_background`]).
        let stats = self
            .in_background("extract", move |stop| {
                crate::stage3::extract_until(&tarball, &root, stop)
            })
            .await;
        match stats {
            Ok(Ok(_)) => RunInput::Extracted,
            Ok(Err(e)) => RunInput::Failed(stage3_failure(e, "")),
            Err(e) => RunInput::Failed(Failure::Environment(e)),
        }
    }

    /// [`crate::engine::run::RunAction::MountPrimary`]: the primary environment's binds.
    pub(super) async fn mount_primary(&mut self) -> RunInput {
        let primary = self.plan.layout.primary_entries();
        match self.mount_stoppable(primary).await {
            Ok(()) => {
                if let Some(t) = self.plan.targets.iter().find(|t| t.primary) {
                    self.held.entry(t.target.clone()).or_default().mounted = true;
                }
                RunInput::PrimaryMounted
            }
            Err(e) => RunInput::Failed(Failure::Environment(e)),
        }
    }

    /// Mounts `entries` on a thread of its own, one at a time, recording each in the
    /// journal; [`Supervisor::stop_background`] stops it between two mounts (a mount(2) in
    /// flight finishes first). Errors: the first mount that fails, as text.
    async fn mount_stoppable(&mut self, entries: Vec<crate::mounts::Entry>) -> Result<(), String> {
        let journal = std::sync::Arc::clone(&self.journal);
        let sys = std::sync::Arc::clone(&self.sys);
        let m_dir = self.plan.layout.m_dir.clone();
        let run_dir = self.run_dir.clone();
        self.in_background("mount", move |stop| {
            for entry in &entries {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err("stopped".to_string());
                }
                let mut journal = journal.lock().unwrap_or_else(|p| p.into_inner());
                crate::mounts::apply(
                    sys.as_ref(),
                    &m_dir,
                    std::slice::from_ref(entry),
                    &mut journal,
                    &run_dir,
                )
                .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .await
        .unwrap_or_else(Err)
    }

    /// Runs `work` on a thread named `name`, handing it a stop flag that
    /// [`Supervisor::stop_background`] sets; resolves with its result (`Err` when the
    /// thread could not start or ended without one).
    async fn in_background<T: Send + 'static>(
        &mut self,
        name: &str,
        work: impl FnOnce(&std::sync::atomic::AtomicBool) -> T + Send + 'static,
    ) -> Result<T, String> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new().name(name.into()).spawn({
            let stop = std::sync::Arc::clone(&stop);
            move || {
                let _ = tx.send(work(&stop));
            }
        });
        match thread {
            Ok(handle) => self.background = Some((stop, handle)),
            Err(e) => return Err(format!("cannot start the {name} thread: {e}")),
        }
        let result = rx.await;
        if let Some((_, handle)) = self.background.take() {
            let _ = handle.join();
        }
        result.map_err(|_| format!("the {name} thread ended without a result"))
    }

    /// [`crate::engine::run::RunAction::StopExtraction`] and
    /// [`crate::engine::run::RunAction::StopMounting`]: stops the extraction or the mounts in
    /// flight and waits for the thread (an extraction removes its partial directory; a
    /// mount(2) in flight finishes), so that teardown finds nothing still changing.
    pub(super) fn stop_background(&mut self) {
        if let Some((stop, handle)) = self.background.take() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = handle.join();
        }
    }
}
