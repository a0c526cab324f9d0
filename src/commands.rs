//! The small commands: `status` (runs and their steps) and `umount` (clean up after a run,
//! also after the supervisor was killed).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::engine::Checkpoint;
use crate::error::UsageError;
use crate::mounts::{self, journal::Journal};
use crate::plan::Plan;
use crate::sys::LinuxSys;
use crate::ui::plain::{state_word, target_word};

/// Every run directory under `<tree>/work` (those holding a plan), oldest first by name.
pub fn runs(tree: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(tree.join("work")) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("plan.json").is_file())
        .collect();
    out.sort();
    out
}

/// The directory of run `name` under `<tree>/work` (one with a plan or a mount journal).
///
/// Errors: [`UsageError`] naming the run when there is no such run.
pub fn run_named(tree: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = crate::plan::run_dir(tree, name);
    if dir.join("plan.json").is_file() || Journal::path(&dir).is_file() {
        Ok(dir)
    } else {
        Err(UsageError(format!(
            "run `{name}` does not exist in {}; `build-helper status` lists the runs",
            tree.join("work").display()
        ))
        .into())
    }
}

/// `build-helper status [RUN] [--json]`: without RUN, one line per run; with RUN, every step
/// with state, exit code and duration. JSON prints the checkpoint(s).
///
/// Errors: unknown run, unreadable checkpoint.
pub fn status(tree: &Path, run: Option<&str>, json: bool) -> anyhow::Result<()> {
    let dirs = match run {
        Some(name) => vec![run_named(tree, name)?],
        None => runs(tree),
    };
    let mut cps = Vec::new();
    for d in &dirs {
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
        cps.push(Checkpoint::load(d).map_err(|e| UsageError(e.to_string()))?);
    }
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
            println!(
                "{}  {}  {}",
                cp.run_id,
                if cp.finished {
                    "finished"
                } else {
                    "unfinished"
                },
                states.join(", ")
            );
        }
        return Ok(());
    }
    let cp = &cps[0];
    println!(
        "run {}{}",
        cp.run_id,
        if cp.finished { " (finished)" } else { "" }
    );
    if let Some(hosts) = &cp.distcc_hosts {
        println!("distcc on: compile jobs go to {hosts}");
    }
    // Estimates for steps not done yet: their durations in the history the run started from.
    let estimates = dirs
        .first()
        .and_then(|d| load_plan(d).ok())
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

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Processes left from a dead run: chrooted below `m_dir`, or its workers.
fn leftovers(m_dir: &Path, run_dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    let run = run_dir.display().to_string();
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            let rooted =
                std::fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|r| r.starts_with(m_dir));
            let c = cmdline(pid);
            rooted || (c.contains(" worker ") && c.contains(&run))
        })
        .collect()
}

/// Tears down one run: refuses while its supervisor lives, kills what a crashed run left
/// running, unmounts everything under its `M` in this namespace, and checks that no other
/// namespace still holds its mounts. Returns how many mounts were removed.
fn umount_run(run_dir: &Path) -> anyhow::Result<usize> {
    let journal = Journal::load(run_dir).map_err(UsageError)?;
    let m_dir = match &journal {
        Some(j) => j.m_dir.clone(),
        None => run_dir.join("M"),
    };
    if let Some(j) = &journal {
        if j.pid != std::process::id()
            && pid_alive(j.pid)
            && cmdline(j.pid).contains("build-helper")
            && !j.host_namespace
        {
            return Err(UsageError(format!(
                "the run in {} is still active (supervisor pid {}): stop it (Ctrl-C, or kill {}) \
                 and run `build-helper umount` again",
                run_dir.display(),
                j.pid,
                j.pid
            ))
            .into());
        }
    }
    let pids = leftovers(&m_dir, run_dir);
    for &pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for _ in 0..100 {
        if pids.iter().all(|&p| !pid_alive(p) || cmdline(p).is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let removed = mounts::teardown(&LinuxSys, &m_dir, false)?;
    // Other mount namespaces may hold copies of these mounts: a build that started while
    // they were mounted copied them (it detaches them itself; a foreign one keeps them until
    // it ends). This run's own processes were stopped above.
    let holders: Vec<u32> = all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
                .is_ok_and(|info| !mounts::mounts_under(&info, &m_dir).is_empty())
        })
        .collect();
    if !holders.is_empty() {
        println!(
            "note: process(es) {holders:?} in other mount namespaces still hold copies of mounts \
             under {}; the copies go away when those processes end",
            m_dir.display()
        );
    }
    Journal::remove(run_dir)
        .with_context(|| format!("removing the journal of {}", run_dir.display()))?;
    Ok(removed)
}

/// `build-helper umount RUN|--all`.
///
/// Errors: unknown run, a run still active, mounts that cannot be removed.
pub fn umount(tree: &Path, run: Option<&str>) -> anyhow::Result<()> {
    let dirs = match run {
        Some(name) => vec![run_named(tree, name)?],
        None => std::fs::read_dir(tree.join("work"))
            .map(|d| {
                let mut v: Vec<PathBuf> = d
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir())
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default(),
    };
    let mut failed = None;
    for d in dirs {
        match umount_run(&d) {
            Ok(n) => println!("{}: {n} mount(s) removed", d.display()),
            Err(e) => {
                eprintln!("{}: {e:#}", d.display());
                failed = Some(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Loads a run's plan (for commands that need its layout).
///
/// Errors: missing or malformed plan.
pub fn load_plan(run_dir: &Path) -> anyhow::Result<Plan> {
    let path = run_dir.join("plan.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::{Event, EventLog};

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
