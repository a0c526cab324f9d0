//! Exploring a saved history by hand: `run STARTER --mount-hist` mounts the chosen history
//! and every target's stacked overlay exactly as a build would, but in the build machine's
//! own mount namespace so the user can look around, and exits; `shell RUN [TARGET]` opens a
//! shell inside a mounted environment (a `--mount-hist` one, or a running build's, by
//! joining its private namespace); `umount RUN` takes either down.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Target;
use crate::error::UsageError;
use crate::mounts::{self, mounts_under};
use crate::plan::{self, Plan};
use crate::rundir::journal::Journal;
use crate::starter::Starter;
use crate::sys::{ChrootCommand, Group, Sys};

/// Mounts the starter's history (and every target's overlay) for exploration; prints where
/// each environment is and how to enter and unmount it. Returns the run id.
///
/// Errors: [`UsageError`] when there is no history or the configuration is bad; mount
/// errors (everything mounted so far is taken down again).
pub fn mount_hist(sys: &dyn Sys, starter: &Starter) -> anyhow::Result<String> {
    let hist = crate::history::resolve(&starter.tree, &starter.options.history)
        .map_err(UsageError)?
        .ok_or_else(|| {
            UsageError(format!(
                "--mount-hist: there is no history in {} to mount; a build makes one",
                starter.tree.join("history").display()
            ))
        })?;
    let plan = plan::build(starter, &plan::date_now(), Some(hist))
        .map_err(|e| UsageError(e.to_string()))?;
    let run_dir = plan.run_dir();
    crate::rundir::private_dir(&run_dir)?;
    crate::rundir::save_plan(&run_dir, &plan)?;
    let layout = &plan.layout;
    let mut journal = Journal {
        m_dir: layout.m_dir.clone(),
        pid: std::process::id(),
        host_namespace: true,
        mnt_ns: crate::sys::procs::own_mnt_ns(sys),
        ..Journal::default()
    };
    let mut entries = layout.base_entries();
    entries.extend(layout.primary_entries());
    for t in layout.targets.iter().skip(1) {
        entries.extend(layout.secondary_entries(t));
    }
    let result = (|| -> anyhow::Result<()> {
        for dir in layout.source_dirs() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        mounts::apply(sys, &layout.m_dir, &entries, &mut journal, &run_dir)?;
        let root = layout.primary_root();
        if !(root.join("etc").is_dir() && root.join("bin/sh").exists()) {
            let history = layout
                .history
                .as_ref()
                .map(|(p, _)| p.display().to_string());
            return Err(UsageError(format!(
                "history {} cannot be used: it holds no root filesystem (no etc/ or bin/sh); \
                 it may be corrupt: pick another with --history",
                history.unwrap_or_default()
            ))
            .into());
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = mounts::teardown(sys, &layout.m_dir, false);
        let _ = Journal::remove(&run_dir);
        return Err(e);
    }
    let history = layout
        .history
        .as_ref()
        .map(|(p, _)| p.display().to_string())
        .unwrap_or_default();
    let count = sys
        .mount_table()
        .map(|info| mounts_under(&info, &layout.m_dir).len())
        .unwrap_or(0);
    let tree = crate::error::tree_flag(&plan.tree);
    println!(
        "history {history} is mounted for exploration as run {} ({count} mounts, in this \
         machine's mount namespace)",
        plan.run_id
    );
    for t in &plan.targets {
        println!("  {}: {}", t.target, t.root.display());
        println!(
            "      enter:   build-helper shell{tree} {} {}",
            plan.run_id, t.target
        );
    }
    println!(
        "changes go to the overlays' upper directories under {}, not into the history",
        layout.data_dir.display()
    );
    println!("unmount:   build-helper umount{tree} {}", plan.run_id);
    Ok(plan.run_id)
}

/// Whether `path` is a mount point in the mount namespace of `pid` (`None`: this process's).
fn is_mounted(sys: &dyn Sys, pid: Option<u32>, path: &Path) -> bool {
    match pid {
        Some(pid) => sys.mount_table_of(pid),
        None => sys.mount_table(),
    }
    .is_ok_and(|info| mounts_under(&info, path).iter().any(|m| m == path))
}

/// Opens a shell (the environment's `/bin/bash`, else `/bin/sh`) chrooted in `target`'s
/// environment of run `run` with the plan's step environment; `args` go to the shell (e.g.
/// `-c 'ls /usr'`). Returns the shell's exit status.
///
/// Errors: [`UsageError`] for an unknown run or target, or an environment that is not
/// mounted; joining a build's namespace or starting the shell failed.
pub fn shell(
    sys: &dyn Sys,
    tree: &Path,
    run: &str,
    target: Option<&str>,
    args: &[String],
) -> anyhow::Result<i32> {
    // The one check of a run to enter: id, journal, supervisor alive in its namespace.
    let mounted =
        crate::rundir::open_mounted(sys, tree, run).map_err(|e| UsageError(e.to_string()))?;
    let run_dir = mounted.dir.clone();
    let plan: Plan = crate::rundir::load_plan(&run_dir).map_err(|e| {
        UsageError(format!(
            "run `{run}` cannot be entered ({e:#}); `build-helper status --tree {}` lists the runs",
            tree.display()
        ))
    })?;
    let target = match target {
        Some(t) => Target::parse(t).map_err(|e| UsageError(e.to_string()))?,
        None => plan
            .targets
            .first()
            .map(|t| t.target.clone())
            .context("the plan has no target")?,
    };
    let tp = plan
        .target(&target)
        .ok_or_else(|| UsageError(format!("run `{run}` has no target {target}")))?;
    let ns_pid = mounted.ns_pid;
    let proc_dir = tp.root.join("proc");
    if !is_mounted(sys, ns_pid, &proc_dir) {
        return Err(UsageError(format!(
            "the environment of {target} in run `{run}` is not mounted ({} has no proc); mount \
             it with `build-helper run STARTER --mount-hist` or start the run",
            tp.root.display()
        ))
        .into());
    }
    if let Some(pid) = ns_pid {
        sys.join_mount_ns(pid)
            .with_context(|| format!("joining the mount namespace of run {run} (pid {pid})"))?;
        mounted
            .check_joined(sys)
            .map_err(|e| UsageError(e.to_string()))?;
    }
    let shell: PathBuf = ["bin/bash", "bin/sh"]
        .iter()
        .map(|s| tp.root.join(s))
        .find(|p| p.exists())
        .map(|p| PathBuf::from("/").join(p.strip_prefix(&tp.root).unwrap_or(&p)))
        .ok_or_else(|| UsageError(format!("{} has no /bin/sh", tp.root.display())))?;
    let mut env = tp.env.clone();
    env.insert("BUILD_HELPER_STEP".into(), "shell".into());
    env.insert(
        "TERM".into(),
        std::env::var("TERM").unwrap_or_else(|_| "linux".into()),
    );
    let mut child = sys.spawn_chrooted(ChrootCommand {
        root: tp.root.clone(),
        program: shell.display().to_string(),
        args: args.to_vec(),
        env,
        group: Group::Caller,
        output: None,
        fd3: None,
        cgroup: None,
    })?;
    child
        .wait()
        .with_context(|| format!("waiting for {} in {}", shell.display(), tp.root.display()))
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::sys::RecordingSys;

    /// The demo tree (the repository's configs and starters) in a temporary directory, with
    /// a history directory that passes the check but that nothing really mounts (also for
    /// the supervisor's tests).
    pub(crate) fn demo_tree() -> (tempfile::TempDir, crate::starter::Starter) {
        let tmp = tempfile::tempdir().unwrap();
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(repo.join("configs"))
            .arg(repo.join("starters"))
            .arg(tmp.path())
            .status()
            .unwrap();
        assert!(copied.success());
        let hist = tmp.path().join("history/20260101T000000Z");
        std::fs::create_dir_all(hist.join("etc")).unwrap();
        std::fs::create_dir_all(hist.join("usr")).unwrap();
        let starter =
            crate::starter::load(&tmp.path().join("starters/demo.toml"), &|_| None).unwrap();
        (tmp, starter)
    }

    #[test]
    fn a_history_without_a_root_filesystem_is_unmounted_again_deepest_first() {
        let (_tmp, starter) = demo_tree();
        let sys = RecordingSys::default();
        // The recorded mounts make no files: the primary root has no etc/ or bin/sh.
        let e = super::mount_hist(&sys, &starter).unwrap_err();
        assert!(
            e.downcast_ref::<crate::error::UsageError>().is_some(),
            "bad input, exit 2: {e:#}"
        );
        assert!(e.to_string().contains("holds no root filesystem"), "{e:#}");
        use crate::sys::Call;
        use std::path::Path;
        let calls = sys.take();
        let mounted: Vec<&Path> = calls
            .iter()
            .filter_map(|c| match c {
                Call::Mount(m) => Some(m.target.as_path()),
                _ => None,
            })
            .collect();
        let unmounted: Vec<&Path> = calls
            .iter()
            .filter_map(|c| match c {
                Call::Umount { target, .. } => Some(target.as_path()),
                _ => None,
            })
            .collect();
        assert!(mounted.len() > 3, "{calls:#?}");
        // Every mount comes down, each after everything mounted below it.
        let mut expected = mounted.clone();
        expected.sort();
        let mut got = unmounted.clone();
        got.sort();
        assert_eq!(got, expected, "{calls:#?}");
        for (i, m) in unmounted.iter().enumerate() {
            let below = |o: &&Path| o != m && o.starts_with(m);
            assert!(
                !unmounted[i + 1..].iter().any(below),
                "{} unmounted before a mount below it: {calls:#?}",
                m.display()
            );
        }
        assert!(sys.mounted().is_empty(), "{:?}", sys.mounted());
    }
}
