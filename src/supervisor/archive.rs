//! The `archive-history` step: the archive view `M/b` (the primary root with every
//! secondary target's root bound in) written as the next history, with its metadata.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::Supervisor;
use crate::config::Target;
use crate::history::archive::{env_tool, paths, run, squashfs_command};
use crate::mounts::{self, Entry};
use crate::plan::ArchiveOptions;
use crate::starter::HistoryType;
use crate::sys::LinuxSys;

/// Where the archive view and the history folder appear inside the environment when its own
/// squashfs tool writes the archive.
const INSIDE: &str = "var/tmp/build-helper-archive";

impl Supervisor {
    pub(super) async fn archive(&mut self) -> anyhow::Result<PathBuf> {
        // Targets finished in an earlier session of a resumed run are not mounted yet.
        let targets: Vec<Target> = self.plan.targets.iter().map(|t| t.target.clone()).collect();
        for t in &targets {
            self.mount_secondary(t)?;
        }
        self.index_binhosts().await;
        let entries = self.plan.layout.archive_entries();
        self.mount(&entries)?;
        let world = self
            .plan
            .layout
            .primary_root()
            .join("var/lib/portage/world");
        let saved = self.plan.layout.host_conf.join("worlds/base");
        if world.is_file() {
            std::fs::copy(&world, &saved)
                .with_context(|| format!("saving the host world back to {}", saved.display()))?;
        }
        let make_conf = self.plan.layout.host_conf.join("target-portage/make.conf");
        if let Ok(text) = std::fs::read_to_string(&make_conf) {
            let kept = crate::recipe::strip_run_lines(&text);
            if kept != text {
                std::fs::write(&make_conf, kept).with_context(|| {
                    format!(
                        "removing the run's GENTOO_MIRRORS from {}",
                        make_conf.display()
                    )
                })?;
            }
        }
        let source = self.plan.layout.m_dir.join("b");
        let tree = self.plan.tree.clone();
        let date = self.plan.date.clone();
        let opts = self.plan.archive.clone();
        let jobs = self.plan.jobs;
        let compression = match opts.history_type {
            crate::starter::HistoryType::Squashfs => Some(format!(
                "{} {}",
                opts.compressor,
                opts.level.map(|l| l.to_string()).unwrap_or_default()
            )),
            crate::starter::HistoryType::Files => None,
        };
        self.ui.say(&format!(
            "archiving the environment into {}/history ({})",
            tree.display(),
            compression.as_deref().unwrap_or("plain directory")
        ));
        let started = std::time::Instant::now();
        let host = {
            let (source, tree, date, opts) =
                (source.clone(), tree.clone(), date.clone(), opts.clone());
            tokio::task::spawn_blocking(move || {
                crate::history::archive(&source, &tree, &date, &opts, jobs)
            })
            .await
            .context("the archive task failed")?
            .map_err(|e| anyhow::anyhow!(e))?
        };
        let out = match host {
            Some(out) => out,
            None => self.archive_in_environment(&opts, jobs).await?,
        };
        let meta = crate::history::Meta {
            name: self.plan.date.clone(),
            created: chrono::Utc::now().to_rfc3339(),
            kind: self.plan.archive.history_type,
            size_bytes: crate::history::meta::size_of(&out),
            targets: self
                .plan
                .targets
                .iter()
                .map(|t| t.target.to_string())
                .collect(),
            starter: self.plan.starter.clone(),
            run_id: self.plan.run_id.clone(),
            based_on: self.plan.layout.history.as_ref().and_then(|(p, _)| {
                p.file_name()
                    .map(|n| n.to_string_lossy().trim_end_matches(".sqfs").to_string())
            }),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            compression,
            archive_ms: started.elapsed().as_millis() as u64,
            step_ms: self
                .cp
                .targets
                .iter()
                .map(|t| {
                    let steps = t
                        .steps
                        .iter()
                        .filter_map(|s| s.duration_ms.map(|d| (s.name.clone(), d)))
                        .collect();
                    (t.target.to_string(), steps)
                })
                .collect(),
            package_secs: self.package_times(),
        };
        meta.save(&out)
            .with_context(|| format!("writing the metadata of {}", out.display()))?;
        Ok(out)
    }

    /// Per-package merge times for the history's metadata: those the run started from, then
    /// the environment's emerge.log files (the last [`crate::progress::eta::KEEP`] of each).
    fn package_times(&self) -> std::collections::BTreeMap<String, Vec<u64>> {
        let mut est = self.watch.estimator().clone();
        // The run started from these logs' older part; the whole logs replace it.
        let from_logs = super::progress_watch::environment_times(&self.plan);
        if !from_logs.is_empty() {
            est.package_secs.clear();
            for text in from_logs {
                let merges = crate::progress::emergelog::merges(&text);
                est.add_package_times(crate::progress::emergelog::times_by_package(&merges));
            }
        }
        est.package_secs
    }

    /// Writes the `Packages` index of `binpkgs/host` and every target's package directory
    /// (crate::binhost) so they can be served as binhosts; a failure is reported, not fatal:
    /// the packages themselves are intact.
    async fn index_binhosts(&mut self) {
        let plan = self.plan.clone();
        match tokio::task::spawn_blocking(move || crate::binhost::index_run(&plan)).await {
            Ok(lines) => {
                for line in lines {
                    match line {
                        Ok(l) => self.ui.say(&format!("binhost: {l}")),
                        Err(e) => self.ui.say(&format!("binhost: warning: {e}")),
                    }
                }
            }
            Err(e) => self
                .ui
                .say(&format!("binhost: warning: the index task failed: {e}")),
        }
    }

    /// The build machine has no squashfs tool: the environment's own writes the image,
    /// chrooted, with `M/b` and the history folder bound in under [`INSIDE`].
    async fn archive_in_environment(
        &mut self,
        opts: &ArchiveOptions,
        jobs: u32,
    ) -> anyhow::Result<PathBuf> {
        let root = self.plan.layout.primary_root();
        let (tool, program) = env_tool(&root).ok_or_else(|| {
            anyhow::anyhow!(
                "no squashfs tool: neither the build machine nor the environment has mksquashfs \
                 or gensquashfs; install sys-fs/squashfs-tools (Debian: squashfs-tools) or set \
                 history_type = \"files\" in the starter"
            )
        })?;
        self.ui.say(&format!(
            "the build machine has no mksquashfs or gensquashfs: using the environment's {}",
            program.display()
        ));
        let work = root.join(INSIDE);
        let (partial, out) = paths(&self.plan.tree, &self.plan.date, HistoryType::Squashfs);
        let history_dir = partial.parent().map(Path::to_path_buf).unwrap_or_default();
        let entries = [
            Entry::Bind {
                source: self.plan.layout.m_dir.join("b"),
                target: work.join("src"),
                recursive: true,
                readonly: true,
            },
            Entry::Bind {
                source: history_dir,
                target: work.join("out"),
                recursive: false,
                readonly: false,
            },
        ];
        self.mount(&entries)?;
        let inside = Path::new("/").join(INSIDE);
        let file_name = partial.file_name().map(PathBuf::from).unwrap_or_default();
        let mut cmd = squashfs_command(
            tool,
            &program,
            &inside.join("src"),
            &inside.join("out").join(file_name),
            opts,
            jobs,
        );
        cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        let chroot = root.clone();
        // SAFETY: chroot and chdir are async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                std::os::unix::fs::chroot(&chroot)?;
                std::env::set_current_dir("/")
            });
        }
        let _ = std::fs::remove_file(&partial);
        let result = tokio::task::spawn_blocking(move || run(&mut cmd))
            .await
            .context("the archive task failed")?;
        mounts::teardown(&LinuxSys, &work, false)?;
        result.map_err(anyhow::Error::msg)?;
        std::fs::rename(&partial, &out)
            .with_context(|| format!("renaming {}", partial.display()))?;
        Ok(out)
    }
}
