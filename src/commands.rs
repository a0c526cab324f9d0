//! The small commands: `status` (runs and their steps) and `umount` (clean up after a run,
//! also after the supervisor was killed).

use std::path::{Path, PathBuf};

use crate::engine::Checkpoint;
use crate::error::UsageError;
use crate::mounts::{self, journal::Journal};
use crate::plan::Plan;
use crate::rundir::{self, procs};
use crate::sys::Sys;
use crate::ui::plain::{state_word, target_word};

/// Every run directory under `<tree>/work` (those holding a plan), oldest first by name.
pub fn runs(tree: &Path) -> Vec<PathBuf> {
    rundir::runs(tree)
}

/// ` --tree TREE` for a hint the user may type into their own shell, which need not have
/// BUILD_HELPER_TREE set (scripts/demo.sh sets it only for itself); empty when the current
/// directory is the tree, where the commands find it without the flag.
pub fn tree_flag(tree: &Path) -> String {
    let same = std::env::current_dir()
        .and_then(|cwd| cwd.canonicalize())
        .ok()
        .zip(tree.canonicalize().ok())
        .is_some_and(|(cwd, tree)| cwd == tree);
    if same {
        String::new()
    } else {
        format!(" --tree {}", tree.display())
    }
}

/// `<tree>/work`, or the first run directory in it, when this process may not read it
/// (permission denied: the runs are root's, mode 0700); `None` when everything is readable
/// or there is nothing.
fn unreadable_runs(tree: &Path) -> Option<PathBuf> {
    let denied = |e: &std::io::Error| e.kind() == std::io::ErrorKind::PermissionDenied;
    let work = rundir::work(tree);
    let entries = match std::fs::read_dir(&work) {
        Ok(d) => d,
        Err(e) => return denied(&e).then_some(work),
    };
    entries.filter_map(|e| e.ok().map(|e| e.path())).find(|d| {
        d.is_dir()
            && std::fs::metadata(d.join(rundir::PLAN))
                .err()
                .is_some_and(|e| denied(&e))
    })
}

/// The directory of run `name` under `<tree>/work` (one with a plan or a mount journal);
/// `name` must be a plain directory name (no `/`, no `..`).
///
/// Errors: [`UsageError`] naming the run when there is no such run or the name is not one.
pub fn run_named(tree: &Path, name: &str) -> anyhow::Result<PathBuf> {
    rundir::open(tree, name).map_err(|e| UsageError(e.to_string()).into())
}

/// `build-helper status [RUN] [--json]`: without RUN, one line per run; with RUN, every step
/// with state, exit code and duration. JSON prints the checkpoint(s).
///
/// Errors: unknown run, unreadable checkpoint.
pub fn status(tree: &Path, run: Option<&str>, json: bool) -> anyhow::Result<()> {
    if let Some(dir) = unreadable_runs(tree) {
        return Err(UsageError(format!(
            "build-helper status needs root to read the runs in {} (run directories are \
             private to root): run it as root, e.g. `sudo build-helper status{}`",
            dir.display(),
            tree_flag(tree)
        ))
        .into());
    }
    let dirs = match run {
        Some(name) => vec![run_named(tree, name)?],
        None => runs(tree),
    };
    let mut cps = Vec::new();
    let mut live: Vec<(String, u32)> = Vec::new();
    for d in &dirs {
        crate::engine::protocol::remove_stale_sockets(d);
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !d.join(crate::engine::state::FILE).exists() {
            // `--mount-hist` runs mount without building: they have no checkpoint.
            let mounted = Journal::load(d).ok().flatten().is_some();
            if !json {
                println!(
                    "{name}  exploration (--mount-hist), {}",
                    if mounted { "mounted" } else { "not mounted" }
                );
            }
            continue;
        }
        let mut cp = match Checkpoint::load(d) {
            Ok(cp) => cp,
            Err(e) if run.is_none() => {
                // One unreadable run must not hide the others: name it and go on.
                if !json {
                    println!("{name}  unreadable: {e}");
                }
                continue;
            }
            Err(e) => return Err(UsageError(e.to_string()).into()),
        };
        match rundir::live_pid(d) {
            Some(pid) => live.push((cp.run_id.clone(), pid)),
            // Its supervisor is gone: what it left running was interrupted.
            None => cp.restore(),
        }
        cps.push(cp);
    }
    let live_word = |id: &str| {
        live.iter()
            .find(|(r, _)| r == id)
            .map(|(_, pid)| format!("running (supervisor pid {pid})"))
    };
    if run.is_some() && cps.is_empty() {
        return Ok(());
    }
    if json {
        let doc = if run.is_some() {
            serde_json::to_string_pretty(&cps[0])?
        } else {
            serde_json::to_string_pretty(&cps)?
        };
        println!("{doc}");
        return Ok(());
    }
    if run.is_none() {
        if cps.is_empty() {
            println!("no runs in {}", tree.join("work").display());
        }
        for cp in &cps {
            let states: Vec<String> = cp
                .targets
                .iter()
                .map(|t| format!("{} {}", t.target, target_word(t.state())))
                .collect();
            let word = match live_word(&cp.run_id) {
                Some(w) => w,
                None if cp.finished => "finished".into(),
                None => "unfinished".into(),
            };
            println!("{}  {word}  {}", cp.run_id, states.join(", "));
        }
        return Ok(());
    }
    let cp = &cps[0];
    let word = match live_word(&cp.run_id) {
        Some(w) => format!(" ({w})"),
        None if cp.finished => " (finished)".into(),
        None => String::new(),
    };
    println!("run {}{word}", cp.run_id);
    if let Some(hosts) = &cp.distcc_hosts {
        println!("distcc on: compile jobs go to {hosts}");
    }
    // Estimates for steps not done yet: their durations in the history the run started from.
    let estimates = dirs
        .first()
        .and_then(|d| rundir::load_plan(d).ok())
        .and_then(|p| p.layout.history.map(|(h, _)| h))
        .and_then(|h| crate::history::Meta::load(&h))
        .map(|m| m.step_ms)
        .unwrap_or_default();
    let secs = |ms: u64| format!("{:.1}s", ms as f64 / 1000.0);
    let show = |name: &str, s: &crate::engine::StepRecord, estimate: Option<u64>| {
        let time = match (s.duration_ms, estimate) {
            (Some(d), _) if s.state != crate::engine::StepState::Running => secs(d),
            (_, Some(e)) => format!("~{} (last run)", secs(e)),
            _ => "-".into(),
        };
        println!(
            "  {:<20} {:<8} {:>5} {:>10}",
            name,
            state_word(s.state),
            s.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            time
        )
    };
    for s in &cp.run_steps {
        show(&s.name, s, None);
    }
    let progress = dirs
        .first()
        .map(|d| latest_progress(d, cp))
        .unwrap_or_default();
    for t in &cp.targets {
        let name = t.target.to_string();
        let now = progress.get(&name);
        let eta = now
            .and_then(|p| p.eta_ms)
            .map(|ms| format!(", ETA {}", crate::progress::eta::short_duration(ms)))
            .unwrap_or_default();
        println!("{} ({}{eta})", t.target, target_word(t.state()));
        if let Some(w) = t.rescue_waiting() {
            println!("  {}", rescue_line(w, crate::engine::events::now_us()));
        }
        let last = estimates.get(&name);
        for s in &t.steps {
            show(&s.name, s, last.and_then(|l| l.get(&s.name)).copied());
            if let Some(p) = now.filter(|p| p.step == s.name) {
                println!("  {:<20} {}", "", p.line);
            }
        }
    }
    Ok(())
}

/// What `status` says of a rescue shell that waits: the step, since when (UTC) and how long,
/// and what the user is to do. `now_us`: microseconds since the Unix epoch.
fn rescue_line(w: &crate::engine::state::RescueWait, now_us: u64) -> String {
    let since = i64::try_from(w.since_us)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "?".into());
    let ago = crate::progress::eta::short_duration(now_us.saturating_sub(w.since_us) / 1000);
    format!(
        "waits for a decision since {since} ({ago} ago): step {} failed and its rescue shell \
         is open; answer resume / retry / abort in the target's terminal (its TUI pane or tmux \
         window)",
        w.step
    )
}

/// The last progress of a target's running step, from the run's events.
#[derive(Debug, Default)]
struct Latest {
    step: String,
    /// `build 37/212 dev-libs/openssl-3.0.13`.
    line: String,
    /// Remaining milliseconds, counted down to now.
    eta_ms: Option<u64>,
}

/// Per target (`<tuple>.<name>`) whose step is running in `cp`: its last `progress` event
/// in `<run_dir>/events.jsonl`.
fn latest_progress(run_dir: &Path, cp: &Checkpoint) -> std::collections::HashMap<String, Latest> {
    use crate::engine::events::{now_us, Event, EventLog};
    let mut out = std::collections::HashMap::new();
    let now = now_us();
    for r in EventLog::read(run_dir) {
        match r.event {
            Event::StepStarted { target, .. } | Event::StepFinished { target, .. } => {
                out.remove(&target);
            }
            Event::Progress {
                target,
                step,
                phase,
                done,
                total,
                current,
                eta_ms,
                ..
            } => {
                let p = crate::progress::Progress {
                    phase,
                    done,
                    total,
                    current,
                };
                let age_ms = now.saturating_sub(r.t_us) / 1000;
                out.insert(
                    target,
                    Latest {
                        step,
                        line: format!("{} {}", phase.word(), p.short()),
                        eta_ms: eta_ms.map(|e| e.saturating_sub(age_ms)),
                    },
                );
            }
            _ => {}
        }
    }
    out.retain(|target, l| {
        cp.targets.iter().any(|t| {
            &t.target.to_string() == target
                && t.steps
                    .iter()
                    .any(|s| s.name == l.step && s.state == crate::engine::StepState::Running)
        })
    });
    out
}

/// Why a dead run could not be cleaned up.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// Bad input: the run is live, or its journal is unusable (exit status 2).
    #[error("{0}")]
    Usage(String),
    /// Something still holds the run's mounts or survived (exit status 1).
    #[error("{0}")]
    Held(String),
}

/// What cleaning up a dead run removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cleaned {
    /// Mounts removed (in this namespace, and those that went with the run's namespace).
    pub mounts: usize,
    /// Processes of the run that were still running and were killed.
    pub processes: usize,
}

/// Whether process `pid` sees a mount under the run's `m_dir`: the namespace the journal
/// names is the dead run's only while it holds the run's mounts. The kernel reuses a gone
/// namespace's inode number (nsfs), so the number alone could name another run's live
/// namespace, whose processes must not be killed.
fn holds_the_runs_mounts(sys: &dyn Sys, pid: u32, m_dir: &Path) -> bool {
    sys.mount_table_of(pid)
        .is_ok_and(|table| !crate::mounts::exec::mounts_under(&table, m_dir).is_empty())
}

/// Tears down a run whose supervisor is gone: kills every process it left (those in its
/// private mount namespace, with the archiver and any step; those chrooted below its `M`),
/// which takes the namespace's mounts and loop devices with them; unmounts what remains in
/// this namespace; and removes the journal only when no process anywhere still holds a
/// mount under `M`. Refuses a live run (its lock is held by another process). Without a
/// journal nothing was mounted: nothing to do.
///
/// Errors: [`CleanError`]: bad input (live run, bad journal) or what still holds the
/// mounts.
pub fn clean_dead_run(sys: &dyn Sys, run_dir: &Path) -> Result<Cleaned, CleanError> {
    let Some(journal) = Journal::load(run_dir).map_err(CleanError::Usage)? else {
        return Ok(Cleaned::default());
    };
    if let Some(pid) = rundir::live_pid(run_dir).filter(|&p| p != std::process::id()) {
        return Err(CleanError::Usage(format!(
            "the run in {} is still active (supervisor pid {pid}): stop it (Ctrl-C, or kill \
             {pid}) and run `build-helper umount` again",
            run_dir.display()
        )));
    }
    let m_dir = journal.m_dir.clone();
    let mut pids: Vec<u32> = Vec::new();
    if let Some(ns) = journal.mnt_ns.filter(|_| !journal.host_namespace) {
        // A dead run's namespace lives on only through processes it left.
        if procs::own_mnt_ns() != Some(ns) {
            pids.extend(
                procs::in_namespace(ns)
                    .into_iter()
                    .filter(|&p| holds_the_runs_mounts(sys, p, &m_dir)),
            );
        }
    }
    for p in procs::rooted_in(&m_dir) {
        if !pids.contains(&p) {
            pids.push(p);
        }
    }
    // Mounts that go away with the namespace when its last process ends.
    let mut in_ns = 0;
    if let Some(&first) = pids.first() {
        if let Ok(info) = sys.mount_table_of(first) {
            in_ns = mounts::mounts_under(&info, &m_dir).len();
        }
    }
    let left = procs::kill_all(&pids, std::time::Duration::from_secs(10));
    if !left.is_empty() {
        return Err(CleanError::Held(format!(
            "process(es) {left:?} of the run in {} survived SIGKILL (uninterruptible I/O?); \
             the journal is kept: run `build-helper umount` again when they are gone",
            run_dir.display()
        )));
    }
    let removed =
        mounts::teardown(sys, &m_dir, false).map_err(|e| CleanError::Held(e.to_string()))?;
    // Other mount namespaces may hold copies of these mounts (a process that started while
    // they were mounted in the build machine's namespace, e.g. under --mount-hist).
    let holders: Vec<u32> = procs::all_pids()
        .into_iter()
        .filter(|pid| {
            sys.mount_table_of(*pid)
                .is_ok_and(|info| !mounts::mounts_under(&info, &m_dir).is_empty())
        })
        .collect();
    if !holders.is_empty() {
        return Err(CleanError::Held(format!(
            "process(es) {holders:?} in other mount namespaces still hold copies of mounts \
             under {}; the journal is kept: the copies go away when those processes end, then \
             run `build-helper umount` again",
            m_dir.display()
        )));
    }
    Journal::remove(run_dir).map_err(|e| {
        CleanError::Held(format!(
            "removing the journal of {}: {e}",
            run_dir.display()
        ))
    })?;
    Ok(Cleaned {
        mounts: removed + in_ns,
        processes: pids.len(),
    })
}

/// `build-helper umount RUN|--all`: cleans up the run(s), then removes the partial archives
/// interrupted archives left in the history folder (never one a live run may be writing).
///
/// Errors: unknown run, a run still active, mounts that cannot be removed.
pub fn umount(sys: &dyn Sys, tree: &Path, run: Option<&str>) -> anyhow::Result<()> {
    let dirs = match run {
        Some(name) => vec![run_named(tree, name)?],
        None => std::fs::read_dir(tree.join("work"))
            .map(|d| {
                let mut v: Vec<PathBuf> = d
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir() && rundir::validate_id(&rundir::id_of(p)).is_ok())
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default(),
    };
    let mut failed = None;
    for d in dirs {
        crate::engine::protocol::remove_stale_sockets(&d);
        match clean_dead_run(sys, &d) {
            Ok(c) if c.processes > 0 => println!(
                "{}: {} mount(s) removed, {} leftover process(es) killed",
                d.display(),
                c.mounts,
                c.processes
            ),
            Ok(c) => println!("{}: {} mount(s) removed", d.display(), c.mounts),
            Err(e) => {
                eprintln!("{}: {e}", d.display());
                failed = Some(e);
            }
        }
    }
    // What an archive killed with its supervisor left (never a live run's).
    match crate::history_cmd::remove_stale_partials(tree) {
        Ok(removed) => {
            for p in removed {
                println!("{}: partial archive removed", p.display());
            }
        }
        Err(e) => {
            eprintln!("{e}");
            failed.get_or_insert(CleanError::Held(e));
        }
    }
    match failed {
        Some(CleanError::Usage(e)) => Err(UsageError(e).into()),
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Loads a run's plan (for commands that need its layout).
///
/// Errors: missing, malformed or newer plan.
pub fn load_plan(run_dir: &Path) -> anyhow::Result<Plan> {
    Ok(rundir::load_plan(run_dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::{Event, EventLog};

    #[test]
    fn a_namespace_without_the_runs_mounts_is_not_the_dead_runs() {
        let m_dir = Path::new("/var/tmp/tree/work/a-1/M");
        // Another run's live namespace that got the dead one's inode number back.
        let other = crate::sys::RecordingSys::default();
        other.add_mounted(Path::new("/var/tmp/tree/work/b-2/M/root"));
        assert!(!holds_the_runs_mounts(&other, 4242, m_dir));
        // The dead run's own namespace still holds its mounts.
        let dead = crate::sys::RecordingSys::default();
        dead.add_mounted(&m_dir.join("root"));
        assert!(holds_the_runs_mounts(&dead, 4242, m_dir));
        // A sibling directory whose name starts like M is not under it.
        let sibling = crate::sys::RecordingSys::default();
        sibling.add_mounted(Path::new("/var/tmp/tree/work/a-1/M2/root"));
        assert!(!holds_the_runs_mounts(&sibling, 4242, m_dir));
    }

    #[test]
    fn a_waiting_rescue_shell_says_since_when_and_what_to_do() {
        let w = crate::engine::state::RescueWait {
            step: "target-world".into(),
            since_us: 1_764_460_800_000_000, // 2025-11-30 00:00:00 UTC
        };
        let line = rescue_line(&w, w.since_us + 125_000_000);
        assert!(
            line.starts_with(
                "waits for a decision since 2025-11-30 00:00:00 UTC (2m ago): step \
                 target-world failed"
            ),
            "{line}"
        );
        assert!(line.contains("resume / retry / abort"), "{line}");
    }

    #[test]
    fn status_shows_the_last_progress_of_running_steps_only() {
        let dir = tempfile::tempdir().unwrap();
        let cp: Checkpoint = serde_json::from_value(serde_json::json!({
            "run_id": "r", "run_steps": [], "toolchain_ready": [], "finished": false,
            "targets": [
                {"target": {"tuple": "x86_64-unknown-linux-musl", "name": "a"},
                 "steps": [{"name": "world", "state": "running", "attempts": 1}]},
                {"target": {"tuple": "x86_64-unknown-linux-musl", "name": "b"},
                 "steps": [{"name": "world", "state": "done", "attempts": 1}]}
            ]
        }))
        .unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        let progress = |target: &str, done, eta| Event::Progress {
            target: target.into(),
            step: "world".into(),
            phase: crate::progress::Phase::Build,
            done,
            total: 212,
            current: Some("dev-libs/openssl-3.0.13".into()),
            eta_ms: Some(eta),
            run_eta_ms: Some(eta),
        };
        log.append(progress("x86_64-unknown-linux-musl.a", 36, 4_000_000));
        log.append(progress("x86_64-unknown-linux-musl.a", 37, 3_800_000));
        log.append(progress("x86_64-unknown-linux-musl.b", 212, 0));
        let latest = latest_progress(dir.path(), &cp);
        assert_eq!(latest.len(), 1, "{latest:?}");
        let a = &latest["x86_64-unknown-linux-musl.a"];
        assert_eq!(a.line, "build 37/212 dev-libs/openssl-3.0.13");
        let eta = a.eta_ms.unwrap();
        assert!(eta <= 3_800_000 && eta > 3_700_000, "{eta}");
    }
}
