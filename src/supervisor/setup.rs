//! The run's set-up before any worker starts: the stage3 (fetched and verified before
//! anything is mounted), `M`, the extracted or stacked primary environment and its binds.

use anyhow::Context;

use super::Supervisor;
use crate::engine::StepState;
use crate::error::UsageError;

impl Supervisor {
    /// stage3 (verify before anything is mounted), `M`, the extracted or stacked primary
    /// environment, its binds.
    pub(super) async fn setup(&mut self) -> anyhow::Result<()> {
        let need_stage3 = self.plan.first_build
            && self.engine.checkpoint().run_step("stage3").map(|s| s.state)
                != Some(StepState::Done);
        let mut tarball = None;
        if need_stage3 {
            self.phase = "the stage3 download and verification";
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
                    let message = format!("{e}\nnothing was mounted or extracted");
                    // The network or the disk failed: exit 1; bad input (mirror, options, a
                    // file that does not verify): exit 2.
                    return Err(if e.is_environment() {
                        anyhow::anyhow!(message)
                    } else {
                        UsageError(message).into()
                    });
                }
            }
        }
        self.phase = "the mounts";
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
            self.phase = "the stage3 extraction";
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
                    return Err(if e.is_environment() {
                        anyhow::Error::new(e)
                    } else {
                        UsageError(e.to_string()).into()
                    });
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
        self.phase = "the mounts";
        let primary = self.plan.layout.primary_entries();
        self.mount(&primary)?;
        self.run_step("mounts", StepState::Done);
        Ok(())
    }
}
