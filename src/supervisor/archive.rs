//! The `archive-history` step: the archive view `M/b` (the primary root with every
//! secondary target's root bound in) written as the next history, with its metadata.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use super::Supervisor;
use crate::config::Target;
use crate::history::archive::{env_tool, paths, run_chrooted, squashfs_command, Tool};
use crate::history::ArchiveOptions;
use crate::mounts::{self, Entry};
use crate::saferoot::{self, Resolve, Root, SafeError};
use crate::starter::HistoryType;
use crate::sys::{ChrootCommand, Group};

/// Where the archive view and the history folder appear inside the environment when its own
/// squashfs tool writes the archive.
const INSIDE: &str = "var/tmp/build-helper-archive";

/// Saves the environment's host world (`var/lib/portage/world` under `root`, resolved as
/// seen from inside it: a link there never reaches the build machine) back to
/// `host_conf/worlds/base`: the one write of a run into `configs/`, by design (the original
/// saves the host world the same way). `worlds/base` is opened without following any link
/// below `host_conf` (a link there is replaced by the file, never written through), and the
/// world read only when regular and at most [`saferoot::ENV_LIMIT`] bytes. A world refused
/// that way is left alone (the archive goes on) and returned as a warning saying what was not
/// saved and why. Every other edit of a run (GENTOO_MIRRORS, INSTALL_MASK toggles...) went to
/// the run's own view of `configs/` (`Layout::configs_view`), so nothing else needs undoing.
///
/// Errors: a file that cannot be written for another reason (I/O), with its path.
pub(crate) fn save_world(root: &Path, host_conf: &Path) -> anyhow::Result<Vec<String>> {
    let refused = |e: &SafeError| !matches!(e, SafeError::Io { .. });
    let mut warnings = Vec::new();
    let env = Root::open(root)?;
    let conf = Root::open(host_conf)?;
    let world = Path::new("var/lib/portage/world");
    let saved = env
        .read(world, Resolve::InRoot, saferoot::ENV_LIMIT)
        .and_then(|bytes| conf.write(Path::new("worlds/base"), Resolve::NoSymlinks, &bytes, 0o644));
    match saved {
        Ok(()) => {}
        Err(e) if e.is_not_found() || refused(&e) => {
            warnings.push(format!("the host world was not saved back: {e}"))
        }
        Err(e) => return Err(e).context("saving the host world back to the host configuration"),
    }
    Ok(warnings)
}

impl Supervisor {
    /// Stops an archive in progress: kills the archiver and removes its partial output, so
    /// no partial history is left that `latest` could pick.
    pub(super) fn stop_archiver(&mut self) {
        crate::history::archive::kill_running(self.sys.as_ref());
        let (partial, _) = paths(
            &self.plan.tree,
            &self.plan.date,
            self.plan.archive.history_type,
        );
        let removed = if partial.is_dir() {
            std::fs::remove_dir_all(&partial)
        } else {
            std::fs::remove_file(&partial)
        };
        if removed.is_ok() {
            self.ui.say(&format!(
                "removed the partial archive {}",
                partial.display()
            ));
        }
        // The environment's own tool may have bound the archive view into the environment.
        let work = self.plan.layout.primary_root().join(INSIDE);
        let _ = mounts::teardown(self.sys.as_ref(), &work, true);
    }

    pub(super) async fn archive(&mut self) -> anyhow::Result<PathBuf> {
        // Targets finished in an earlier session of a resumed run are not mounted yet.
        let targets: Vec<Target> = self.plan.targets.iter().map(|t| t.target.clone()).collect();
        for t in &targets {
            self.mount_secondary(t)?;
        }
        self.index_binhosts().await;
        let entries = self.plan.layout.archive_entries();
        self.mount(&entries)?;
        let refused = save_world(
            &self.plan.layout.primary_root(),
            &self.plan.layout.host_conf,
        )?;
        for why in refused {
            self.ui.say(&format!("warning: {why}"));
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
                .engine
                .checkpoint()
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
            step_cost: self
                .engine
                .checkpoint()
                .targets
                .iter()
                .map(|t| {
                    let steps: indexmap::IndexMap<String, crate::pool::StepCost> = t
                        .steps
                        .iter()
                        .filter_map(|s| s.cost.map(|c| (s.name.clone(), c)))
                        .collect();
                    (t.target.to_string(), steps)
                })
                .filter(|(_, steps)| !steps.is_empty())
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
        let (plan, sys) = (self.plan.clone(), Arc::clone(&self.sys));
        match tokio::task::spawn_blocking(move || crate::binhost::index_run(sys.as_ref(), &plan))
            .await
        {
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
        let file_name = partial.file_name().map(PathBuf::from).unwrap_or_default();
        let cmd = in_environment_command(&root, tool, &program, &file_name, opts, jobs);
        let _ = std::fs::remove_file(&partial);
        let sys = Arc::clone(&self.sys);
        let result = tokio::task::spawn_blocking(move || run_chrooted(sys.as_ref(), cmd))
            .await
            .context("the archive task failed")?;
        mounts::teardown(self.sys.as_ref(), &work, false)?;
        result.map_err(anyhow::Error::msg)?;
        std::fs::rename(&partial, &out)
            .with_context(|| format!("renaming {}", partial.display()))?;
        Ok(out)
    }
}

/// The environment's own squashfs tool `program` (`tool`, found by [`env_tool`]), to run
/// chrooted in `root` (the primary root), packing the archive view bound at [`INSIDE`]`/src`
/// into [`INSIDE`]`/out/<file_name>` (the history folder's partial image), with only a
/// standard `PATH` in its environment.
fn in_environment_command(
    root: &Path,
    tool: Tool,
    program: &Path,
    file_name: &Path,
    opts: &ArchiveOptions,
    jobs: u32,
) -> ChrootCommand {
    let inside = Path::new("/").join(INSIDE);
    let line = squashfs_command(
        tool,
        program,
        &inside.join("src"),
        &inside.join("out").join(file_name),
        opts,
        jobs,
    );
    ChrootCommand {
        root: root.to_path_buf(),
        program: program.display().to_string(),
        args: line
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        env: [(
            "PATH".to_string(),
            "/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        )]
        .into(),
        // Its own group: the run kills it whole when the archive stops.
        group: Group::Own,
        output: None,
        fd3: None,
        cgroup: None,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use crate::history::archive::{run_chrooted, Tool};
    use crate::history::ArchiveOptions;
    use crate::starter::HistoryType;
    use crate::sys::RecordingSys;

    #[test]
    fn the_environments_own_tool_runs_chrooted_in_the_primary_root_through_the_seam() {
        let sys = RecordingSys::default();
        let opts = ArchiveOptions {
            history_type: HistoryType::Squashfs,
            compressor: "zstd".into(),
            level: Some(5),
        };
        let cmd = |tool, program: &str| {
            super::in_environment_command(
                Path::new("/t/work/r/M/p"),
                tool,
                Path::new(program),
                Path::new("2026.sqfs.partial"),
                &opts,
                2,
            )
        };
        run_chrooted(&sys, cmd(Tool::Mksquashfs, "/usr/bin/mksquashfs")).unwrap();
        sys.set_exit_code(1);
        let e = run_chrooted(&sys, cmd(Tool::Gensquashfs, "/usr/bin/gensquashfs")).unwrap_err();
        assert!(
            e.contains("chrooted in /t/work/r/M/p") && e.ends_with("failed: exit status 1"),
            "{e}"
        );
        let (src, out) = (
            "/var/tmp/build-helper-archive/src",
            "/var/tmp/build-helper-archive/out/2026.sqfs.partial",
        );
        assert_eq!(
            sys.take_lines(),
            [
                format!(
                    "chroot /t/work/r/M/p: /usr/bin/mksquashfs {src} {out} -noappend -quiet \
                     -no-progress -xattrs -comp zstd -b 1048576 -processors 2 \
                     -Xcompression-level 5 (env PATH; own group)"
                ),
                format!(
                    "chroot /t/work/r/M/p: /usr/bin/gensquashfs -q -f -k -j 2 -b 1048576 -c zstd \
                     -X level=5 -D {src} {out} (env PATH; own group)"
                ),
            ]
        );
    }

    #[test]
    fn links_planted_in_the_environment_or_the_host_conf_reach_nothing_outside() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, conf) = (tmp.path().join("root"), tmp.path().join("host"));
        let secret = tmp.path().join("secret");
        std::fs::write(&secret, "host secret\n").unwrap();
        std::fs::create_dir_all(root.join("var/lib/portage")).unwrap();
        std::fs::create_dir_all(conf.join("worlds")).unwrap();
        std::fs::create_dir_all(conf.join("target-portage")).unwrap();
        // The environment's world is a link to a host file: read inside the root, where
        // that path does not exist, so nothing is saved.
        symlink(&secret, root.join("var/lib/portage/world")).unwrap();
        std::fs::write(conf.join("worlds/base"), "app-misc/old\n").unwrap();
        let warnings = super::save_world(&root, &conf).unwrap();
        assert!(
            warnings[0].contains("host world was not saved"),
            "{warnings:?}"
        );
        assert_eq!(
            std::fs::read_to_string(conf.join("worlds/base")).unwrap(),
            "app-misc/old\n"
        );
        // A real world is saved over a link planted at worlds/base, not through it; a
        // make.conf that is a link to a host file is not touched.
        std::fs::remove_file(root.join("var/lib/portage/world")).unwrap();
        std::fs::write(root.join("var/lib/portage/world"), "app-misc/new\n").unwrap();
        std::fs::remove_file(conf.join("worlds/base")).unwrap();
        symlink(&secret, conf.join("worlds/base")).unwrap();
        symlink(&secret, conf.join("target-portage/make.conf")).unwrap();
        let warnings = super::save_world(&root, &conf).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret\n");
        let saved = conf.join("worlds/base");
        assert!(std::fs::symlink_metadata(&saved).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(saved).unwrap(), "app-misc/new\n");
    }
}
