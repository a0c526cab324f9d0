//! A run's status as `build-helper status` shows it: one model ([`RunStatus`] and its
//! targets and steps) made from the checkpoint (with the crash rule for a dead run), the
//! supervisor's liveness, the event log's latest progress and the last run's step times;
//! rendered as text ([`render_run`], [`render_list_line`]) or as the JSON document
//! ([`StatusList`], [`StatusOne`]; docs/status-json.md). Text and JSON come from the same
//! model, so they say the same.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::state::{StepRecord, StepState, TargetState};
use crate::engine::Checkpoint;
use crate::error::UsageError;
use crate::rundir;
use crate::rundir::journal::Journal;

/// `<tree>/work`, or the first run directory in it, when this process may not read it
/// (permission denied: the runs are root's, mode 0700); `None` when everything is readable
/// or there is nothing.
pub fn unreadable_runs(tree: &Path) -> Option<PathBuf> {
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

/// The version of the `status --json` document ([`StatusList`], [`StatusOne`]; described in
/// docs/status-json.md): raised when a member changes its meaning or goes away; members may
/// be added without a raise.
pub const STATUS_FORMAT: u32 = 1;

/// `build-helper status --json`: every run under `<tree>/work`.
#[derive(Debug, Serialize)]
pub struct StatusList {
    /// [`STATUS_FORMAT`].
    pub format: u32,
    /// The runs, oldest first by name (as the text status lists them).
    pub runs: Vec<RunEntry>,
}

/// `build-helper status RUN --json`: one run; its [`RunEntry`] members sit beside `format`.
#[derive(Debug, Serialize)]
pub struct StatusOne {
    /// [`STATUS_FORMAT`].
    pub format: u32,
    /// The run.
    #[serde(flatten)]
    pub run: RunEntry,
}

/// One run directory, as `status` sees it; `kind` names the variant (`build`,
/// `exploration`, `unreadable`).
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RunEntry {
    /// A run that builds: it has a checkpoint.
    Build(RunStatus),
    /// A `run --mount-hist` run, which mounts a history environment without building: it
    /// has no checkpoint.
    Exploration {
        /// The run id (its directory's name).
        run_id: String,
        /// Whether its mounts are up (its mount journal exists).
        mounted: bool,
    },
    /// A run whose checkpoint cannot be read (only in the list: `status RUN` of such a run
    /// is an error).
    Unreadable {
        /// The run id (its directory's name).
        run_id: String,
        /// Why it cannot be read.
        error: String,
    },
}

/// Whether a run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Liveness {
    /// Its supervisor lives (it holds the run's lock).
    Running,
    /// It completed: history archived, everything unmounted.
    Finished,
    /// Its supervisor is gone before the end: continue it with `run --resume`.
    Unfinished,
}

/// A run that builds, as `status` shows it: the checkpoint's content (with the crash rule
/// applied when the supervisor is gone) and what the run's events and history add.
#[derive(Debug, Serialize)]
pub struct RunStatus {
    /// The run id.
    pub run_id: String,
    /// Whether it goes on.
    pub liveness: Liveness,
    /// The supervisor's process id while it lives.
    pub supervisor_pid: Option<u32>,
    /// The checkpoint's `finished`: the run completed.
    pub finished: bool,
    /// `DISTCC_HOSTS` when compile jobs go to distcc helpers; `None` when local.
    pub distcc_hosts: Option<String>,
    /// Tuples whose toolchain is announced ready.
    pub toolchain_ready: Vec<String>,
    /// The run's remaining milliseconds (its longest target's), counted down to now, as the
    /// supervisor last estimated it ([`crate::progress::eta::run_remaining_ms`]); `None`
    /// without a running step with progress or without a basis for an estimate.
    pub eta_ms: Option<u64>,
    /// The supervisor's own steps (`stage3`, `mounts`, `archive-history`).
    pub run_steps: Vec<StepStatus>,
    /// The targets, primary first.
    pub targets: Vec<TargetStatus>,
    /// The run's job pool while it lives (`pool.json`, written by the supervisor:
    /// `total`, `free`, `cap`, `held` with its reason, each target's `granted` share;
    /// docs/job-pool.md); `None` without a pool or once the steps ended.
    pub pool: Option<serde_json::Value>,
}

/// The job pool's state of the live run `run_dir`, as its supervisor last wrote it.
fn read_pool(run_dir: &std::path::Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(run_dir.join(crate::rundir::layout::POOL)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One target, as `status` shows it.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    /// The target (`{"tuple": ..., "name": ...}`, as in the checkpoint).
    pub target: crate::config::Target,
    /// Its state: `waiting`, `running`, `rescue-waiting`, `failed`, `interrupted`, `done`.
    #[serde(serialize_with = "target_state_key")]
    pub state: TargetState,
    /// The rescue shell that waits for a decision (resume / retry / abort) on a failed
    /// step: the step and since when (microseconds since the Unix epoch).
    pub rescue: Option<crate::engine::state::RescueWait>,
    /// Its remaining milliseconds, counted down to now, as the supervisor last estimated
    /// them ([`crate::progress::eta`]); `None` without a running step with progress or
    /// without a basis for an estimate.
    pub eta_ms: Option<u64>,
    /// The milliseconds its steps took: the sum of their `took_ms` (time spent in steps,
    /// not the wall clock since its start: a target may wait between steps).
    pub duration_ms: u64,
    /// The CPU time its steps used, microseconds (the sum of their measured `cost`s).
    pub cpu_us: u64,
    /// Its steps in plan order.
    pub steps: Vec<StepStatus>,
}

/// One step, as `status` shows it: its checkpoint record and how long it took or may take.
#[derive(Debug, Serialize)]
pub struct StepStatus {
    /// The checkpoint's record (`name`, `phase`, `state`, `exit_code`, `started_us`,
    /// `duration_ms` of the last attempt, `attempts`).
    #[serde(flatten)]
    pub record: StepRecord,
    /// What the step took, in milliseconds: its last attempt's duration once that ended;
    /// `None` while it runs or before it ran.
    pub took_ms: Option<u64>,
    /// When `took_ms` is `None`: what the step took in the history the run started from,
    /// in milliseconds (the estimate the text status shows as `~12.0s (last run)`).
    pub last_run_ms: Option<u64>,
    /// The package progress of the step while it runs, from its last progress event.
    pub progress: Option<StepProgress>,
}

/// A running step's package progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepProgress {
    /// `phase`, `done`, `total` (0 when not known) and `current`, as in the progress event.
    #[serde(flatten)]
    pub progress: crate::progress::Progress,
    /// The line the text status shows: `build 37/212 dev-libs/openssl-3.0.13`.
    pub line: String,
}

/// Serialises a target state as the key of its variant (`rescue-waiting` without its data,
/// which [`TargetStatus::rescue`] carries).
fn target_state_key<S: serde::Serializer>(s: &TargetState, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(match s {
        TargetState::Waiting => "waiting",
        TargetState::Running => "running",
        TargetState::RescueWaiting { .. } => "rescue-waiting",
        TargetState::Failed => "failed",
        TargetState::Interrupted => "interrupted",
        TargetState::Done => "done",
    })
}

/// Per target (`<tuple>.<name>`), per step: milliseconds the step took in a history.
type StepMs = indexmap::IndexMap<String, indexmap::IndexMap<String, u64>>;

/// The step durations of the history run `run_dir` started from (its plan's layout), or
/// nothing (first build, history gone).
fn last_run_estimates(run_dir: &Path) -> StepMs {
    rundir::load_plan(run_dir)
        .ok()
        .and_then(|p| p.layout.history.map(|(h, _)| h))
        .and_then(|h| crate::history::Meta::load(&h))
        .map(|m| m.step_ms)
        .unwrap_or_default()
}

/// How status shows the time of step `s`: `(took_ms, last_run_ms)`: its last attempt's
/// duration once that ended, else `estimate` (its duration in the history the run started
/// from).
fn step_time(s: &StepRecord, estimate: Option<u64>) -> (Option<u64>, Option<u64>) {
    match s.duration_ms {
        Some(d) if s.state != StepState::Running => (Some(d), None),
        _ => (None, estimate),
    }
}

/// A step's status from its record, the estimate from the last run and its progress.
fn step_status(s: &StepRecord, estimate: Option<u64>, progress: Option<&Latest>) -> StepStatus {
    let (took_ms, last_run_ms) = step_time(s, estimate);
    StepStatus {
        record: s.clone(),
        took_ms,
        last_run_ms,
        progress: progress.filter(|p| p.step == s.name).map(|p| StepProgress {
            progress: p.progress.clone(),
            line: p.line.clone(),
        }),
    }
}

/// The status of a run from its checkpoint (the crash rule already applied to a dead
/// run's), its supervisor's pid while it lives, the step durations of the history it started
/// from and its latest progress ([`latest_progress`]).
fn run_status(
    cp: &Checkpoint,
    pid: Option<u32>,
    estimates: &StepMs,
    progress: &Progressed,
) -> RunStatus {
    let liveness = match pid {
        Some(_) => Liveness::Running,
        None if cp.finished => Liveness::Finished,
        None => Liveness::Unfinished,
    };
    let targets = cp
        .targets
        .iter()
        .map(|t| {
            let name = t.target.to_string();
            let now = progress.targets.get(&name);
            let last = estimates.get(&name);
            let steps: Vec<StepStatus> = t
                .steps
                .iter()
                .map(|s| step_status(s, last.and_then(|l| l.get(&s.name)).copied(), now))
                .collect();
            TargetStatus {
                target: t.target.clone(),
                state: t.state(),
                rescue: t.rescue_waiting(),
                eta_ms: now.and_then(|p| p.eta_ms),
                duration_ms: steps.iter().filter_map(|s| s.took_ms).sum(),
                cpu_us: steps
                    .iter()
                    .filter_map(|s| s.record.cost.map(|c| c.cpu_us))
                    .sum(),
                steps,
            }
        })
        .collect();
    RunStatus {
        run_id: cp.run_id.clone(),
        liveness,
        supervisor_pid: pid,
        finished: cp.finished,
        distcc_hosts: cp.distcc_hosts.clone(),
        toolchain_ready: cp.toolchain_ready.clone(),
        eta_ms: progress.run_eta_ms,
        run_steps: cp
            .run_steps
            .iter()
            .map(|s| step_status(s, None, None))
            .collect(),
        targets,
        pool: None,
    }
}

/// The text status of one run: its state, distcc, then every step (state, exit code, time)
/// of the run and of each target, with each target's state and ETA, a waiting rescue shell
/// and the running step's progress. `now_us`: microseconds since the Unix epoch.
pub fn render_run(r: &RunStatus, now_us: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let word = match (r.liveness, r.supervisor_pid) {
        (Liveness::Running, Some(pid)) => format!(" (running (supervisor pid {pid}))"),
        (Liveness::Finished, _) => " (finished)".into(),
        _ => String::new(),
    };
    let _ = writeln!(out, "run {}{word}", r.run_id);
    if let Some(hosts) = &r.distcc_hosts {
        let _ = writeln!(out, "distcc on: compile jobs go to {hosts}");
    }
    let secs = |ms: u64| format!("{:.1}s", ms as f64 / 1000.0);
    let show = |out: &mut String, s: &StepStatus| {
        let time = match (s.took_ms, s.last_run_ms) {
            (Some(d), _) => secs(d),
            (_, Some(e)) => format!("~{} (last run)", secs(e)),
            _ => "-".into(),
        };
        let code = s
            .record
            .state
            .exit_code()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into());
        let cost = s
            .record
            .cost
            .map(|c| {
                format!(
                    "  CPU {:>7}, peak {} MiB",
                    secs(c.cpu_us / 1000),
                    c.peak_rss_bytes >> 20
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<20} {:<8} {:>5} {:>10}{cost}",
            s.record.name,
            s.record.state.word(),
            code,
            time
        );
        if let Some(p) = &s.progress {
            let _ = writeln!(out, "  {:<20} {}", "", p.line);
        }
    };
    if let Some(p) = &r.pool {
        let n = |k: &str| p[k].as_u64().unwrap_or_default();
        let held = match p["held"]["reason"].as_str() {
            Some(why) => format!("; no new job: {why}"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "job pool: {} of {} tokens in use{held}",
            n("total").saturating_sub(n("free")),
            n("total")
        );
    }
    for s in &r.run_steps {
        show(&mut out, s);
    }
    for t in &r.targets {
        let eta = t
            .eta_ms
            .map(|ms| format!(", ETA {}", crate::progress::eta::short_duration(ms)))
            .unwrap_or_default();
        let _ = writeln!(out, "{} ({}{eta})", t.target, t.state.word());
        if let Some(w) = &t.rescue {
            let _ = writeln!(out, "  {}", rescue_line(w, now_us));
        }
        for s in &t.steps {
            show(&mut out, s);
        }
    }
    out
}

/// The line of one run in the text list: its id, whether it goes on, each target's state.
pub fn render_list_line(r: &RunStatus) -> String {
    let states: Vec<String> = r
        .targets
        .iter()
        .map(|t| format!("{} {}", t.target, t.state.word()))
        .collect();
    let word = match (r.liveness, r.supervisor_pid) {
        (Liveness::Running, Some(pid)) => format!("running (supervisor pid {pid})"),
        (Liveness::Finished, _) => "finished".into(),
        _ => "unfinished".into(),
    };
    format!("{}  {word}  {}", r.run_id, states.join(", "))
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
#[derive(Debug)]
struct Latest {
    step: String,
    /// Phase, packages done and total, current package.
    progress: crate::progress::Progress,
    /// `build 37/212 dev-libs/openssl-3.0.13`.
    line: String,
    /// Remaining milliseconds, counted down to now.
    eta_ms: Option<u64>,
}

/// The last progress of a run's running steps.
#[derive(Debug, Default)]
struct Progressed {
    /// Per target (`<tuple>.<name>`) whose step is running.
    targets: std::collections::HashMap<String, Latest>,
    /// The run's remaining milliseconds from the last progress event, counted down to now;
    /// `None` when no step with progress runs.
    run_eta_ms: Option<u64>,
}

/// Per target (`<tuple>.<name>`) whose step is running in `cp`: its last `progress` event
/// in `<run_dir>/events.jsonl`, with the estimates counted down to `now_us` (microseconds
/// since the Unix epoch); and the run's estimate from the last of those events.
fn latest_progress(run_dir: &Path, cp: &Checkpoint, now_us: u64) -> Progressed {
    use crate::engine::events::Event;
    use crate::rundir::events::EventLog;
    let mut out = std::collections::HashMap::new();
    // The last progress event's run estimate, with the event's time.
    let mut run_eta: Option<(Option<u64>, u64)> = None;
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
                run_eta_ms,
            } => {
                let p = crate::progress::Progress {
                    phase,
                    done,
                    total,
                    current,
                };
                let age_ms = now_us.saturating_sub(r.t_us) / 1000;
                run_eta = Some((run_eta_ms, r.t_us));
                out.insert(
                    target,
                    Latest {
                        step,
                        line: format!("{} {}", phase.word(), p.short()),
                        progress: p,
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
                    .any(|s| s.name == l.step && s.state == StepState::Running)
        })
    });
    let run_eta_ms = run_eta
        .filter(|_| !out.is_empty())
        .and_then(|(eta, t_us)| eta.map(|e| e.saturating_sub(now_us.saturating_sub(t_us) / 1000)));
    Progressed {
        targets: out,
        run_eta_ms,
    }
}

/// The status of the runs of `tree`: every run (`run` = `None`) or the one named, each
/// with its checkpoint restored by the crash rule when its supervisor is gone. `detail` adds
/// each step's progress and the last run's estimates (the text list shows no steps and needs
/// neither). Removes the sockets a dead run left behind on the way. `now_us`: microseconds
/// since the Unix epoch.
///
/// Errors: [`UsageError`] for an unknown run or, with `run` given, an unreadable checkpoint
/// (in the list, an unreadable run is an entry of its own, [`RunEntry::Unreadable`]).
pub fn entries(
    tree: &Path,
    run: Option<&str>,
    detail: bool,
    now_us: u64,
) -> anyhow::Result<Vec<RunEntry>> {
    let dirs = match run {
        Some(name) => vec![rundir::open(tree, name).map_err(|e| UsageError(e.to_string()))?],
        None => rundir::runs(tree),
    };
    let mut entries = Vec::new();
    for d in &dirs {
        rundir::sockets::remove_stale(d);
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !d.join(rundir::CHECKPOINT).exists() {
            // `--mount-hist` runs mount without building: they have no checkpoint.
            let mounted = Journal::load(d).ok().flatten().is_some();
            entries.push(RunEntry::Exploration {
                run_id: name,
                mounted,
            });
            continue;
        }
        let mut cp = match rundir::load_checkpoint(d, None) {
            Ok(cp) => cp,
            Err(e) if run.is_none() => {
                // One unreadable run must not hide the others: name it and go on.
                entries.push(RunEntry::Unreadable {
                    run_id: name,
                    error: e.to_string(),
                });
                continue;
            }
            Err(e) => return Err(UsageError(e.to_string()).into()),
        };
        let pid = rundir::live_pid(d);
        if pid.is_none() {
            // Its supervisor is gone: what it left running was interrupted.
            cp.restore();
        }
        let (estimates, progress) = if detail {
            (last_run_estimates(d), latest_progress(d, &cp, now_us))
        } else {
            Default::default()
        };
        let mut status = run_status(&cp, pid, &estimates, &progress);
        if pid.is_some() {
            status.pool = read_pool(d);
        }
        entries.push(RunEntry::Build(status));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::Event;
    use crate::rundir::events::EventLog;

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
        let latest = latest_progress(dir.path(), &cp, crate::sys::now_us()).targets;
        assert_eq!(latest.len(), 1, "{latest:?}");
        let a = &latest["x86_64-unknown-linux-musl.a"];
        assert_eq!(a.line, "build 37/212 dev-libs/openssl-3.0.13");
        let eta = a.eta_ms.unwrap();
        assert!(eta <= 3_800_000 && eta > 3_700_000, "{eta}");
    }

    /// A live run with a running target (progress, ETA), a target whose rescue shell waits
    /// and a target not started, whose steps have estimates from the last run.
    fn three_targets(dir: &Path) -> (RunStatus, u64) {
        let cp: Checkpoint = serde_json::from_value(serde_json::json!({
            "run_id": "a-20260101-000000", "toolchain_ready": ["x86_64-unknown-linux-musl"],
            "finished": false, "distcc_hosts": "10.0.0.2/8",
            "run_steps": [{"name": "mounts", "state": "done", "exit_code": 0,
                           "duration_ms": 1200, "attempts": 1}],
            "targets": [
                {"target": {"tuple": "x86_64-unknown-linux-musl", "name": "a"},
                 "steps": [{"name": "crossdev", "state": "done", "exit_code": 0,
                            "duration_ms": 61000, "attempts": 1},
                           {"name": "world", "state": "running", "started_us": 5,
                            "duration_ms": 999, "attempts": 2},
                           {"name": "images", "state": "pending", "attempts": 0}]},
                {"target": {"tuple": "x86_64-unknown-linux-musl", "name": "b"},
                 "steps": [{"name": "world", "state": "failed", "exit_code": 1,
                            "duration_ms": 4500, "attempts": 1}],
                 "rescue": {"step": "world", "since_us": 1_764_460_800_000_000u64}},
                {"target": {"tuple": "aarch64-unknown-linux-musl", "name": "c"},
                 "steps": [{"name": "world", "state": "pending", "attempts": 0}]}
            ]
        }))
        .unwrap();
        let mut log = EventLog::open(dir).unwrap();
        let r = log.append(Event::Progress {
            target: "x86_64-unknown-linux-musl.a".into(),
            step: "world".into(),
            phase: crate::progress::Phase::Build,
            done: 37,
            total: 212,
            current: Some("dev-libs/openssl-3.0.13".into()),
            eta_ms: Some(3_800_000),
            run_eta_ms: Some(4_000_000),
        });
        let now = r.t_us + 60_000_000;
        let estimates: StepMs = serde_json::from_value(serde_json::json!({
            "x86_64-unknown-linux-musl.a": {"world": 3_000_000, "images": 30_000},
            "aarch64-unknown-linux-musl.c": {"world": 2_500}
        }))
        .unwrap();
        let progress = latest_progress(dir, &cp, now);
        (run_status(&cp, Some(4242), &estimates, &progress), now)
    }

    #[test]
    fn status_json_says_what_the_text_status_shows() {
        let dir = tempfile::tempdir().unwrap();
        let (run, now) = three_targets(dir.path());
        let text = render_run(&run, now);
        let rescue = rescue_line(run.targets[1].rescue.as_ref().unwrap(), now);
        let expected = [
            "run a-20260101-000000 (running (supervisor pid 4242))",
            "distcc on: compile jobs go to 10.0.0.2/8",
            "  mounts               done         0       1.2s",
            "x86_64-unknown-linux-musl.a (running, ETA 1h02m)",
            "  crossdev             done         0      61.0s",
            "  world                running      - ~3000.0s (last run)",
            "                       build 37/212 dev-libs/openssl-3.0.13",
            "  images               pending      - ~30.0s (last run)",
            "x86_64-unknown-linux-musl.b (rescue shell waiting)",
            &format!("  {rescue}"),
            "  world                failed       1       4.5s",
            "aarch64-unknown-linux-musl.c (waiting)",
            "  world                pending      - ~2.5s (last run)",
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{text}");
        let json = serde_json::to_value(StatusOne {
            format: STATUS_FORMAT,
            run: RunEntry::Build(run),
        })
        .unwrap();
        assert_eq!(json["format"], 1);
        assert_eq!(json["kind"], "build");
        assert_eq!(json["run_id"], "a-20260101-000000");
        assert_eq!(json["liveness"], "running");
        assert_eq!(json["supervisor_pid"], 4242);
        assert_eq!(json["finished"], false);
        assert_eq!(json["distcc_hosts"], "10.0.0.2/8");
        assert_eq!(json["toolchain_ready"][0], "x86_64-unknown-linux-musl");
        assert_eq!(json["eta_ms"], 4_000_000 - 60_000);
        assert_eq!(json["run_steps"][0]["took_ms"], 1200);
        let t = &json["targets"];
        // The same states as the text: a running, b's rescue shell waits, c waits.
        let states: Vec<&str> = (0..3).map(|i| t[i]["state"].as_str().unwrap()).collect();
        assert_eq!(states, ["running", "rescue-waiting", "waiting"]);
        assert_eq!(t[1]["rescue"]["step"], "world");
        assert_eq!(t[1]["rescue"]["since_us"], 1_764_460_800_000_000u64);
        // The ETA the text shows as 1h02m: the event's, one minute older.
        assert_eq!(t[0]["eta_ms"], 3_800_000 - 60_000);
        assert_eq!(t[1]["eta_ms"], serde_json::Value::Null);
        // Durations: per step as the text shows them, per target their sum.
        assert_eq!(t[0]["target"]["tuple"], "x86_64-unknown-linux-musl");
        assert_eq!(t[0]["target"]["name"], "a");
        let a = &t[0]["steps"];
        assert_eq!(a[0]["took_ms"], 61000);
        assert_eq!(a[0]["last_run_ms"], serde_json::Value::Null);
        // A running step took nothing yet: its record keeps the last attempt's duration.
        assert_eq!(a[1]["took_ms"], serde_json::Value::Null);
        assert_eq!(a[1]["duration_ms"], 999);
        assert_eq!(a[1]["last_run_ms"], 3_000_000);
        assert_eq!(a[1]["state"], "running");
        assert_eq!(a[1]["attempts"], 2);
        assert_eq!(a[1]["started_us"], 5);
        assert_eq!(a[1]["progress"]["phase"], "build");
        assert_eq!(a[1]["progress"]["done"], 37);
        assert_eq!(a[1]["progress"]["total"], 212);
        assert_eq!(a[1]["progress"]["current"], "dev-libs/openssl-3.0.13");
        assert_eq!(
            a[1]["progress"]["line"],
            "build 37/212 dev-libs/openssl-3.0.13"
        );
        assert_eq!(a[2]["progress"], serde_json::Value::Null);
        assert_eq!(a[2]["last_run_ms"], 30_000);
        assert_eq!(t[0]["duration_ms"], 61000);
        assert_eq!(t[1]["duration_ms"], 4500);
        assert_eq!(t[1]["steps"][0]["exit_code"], 1);
        assert_eq!(t[2]["duration_ms"], 0);
        assert_eq!(t[2]["steps"][0]["last_run_ms"], 2_500);
    }

    #[test]
    fn the_json_list_names_each_runs_kind_in_the_text_lists_terms() {
        let dir = tempfile::tempdir().unwrap();
        let (run, _) = three_targets(dir.path());
        let line = render_list_line(&run);
        assert_eq!(
            line,
            "a-20260101-000000  running (supervisor pid 4242)  x86_64-unknown-linux-musl.a \
             running, x86_64-unknown-linux-musl.b rescue shell waiting, \
             aarch64-unknown-linux-musl.c waiting"
        );
        let list = serde_json::to_value(StatusList {
            format: STATUS_FORMAT,
            runs: vec![
                RunEntry::Exploration {
                    run_id: "x-20250101-000000".into(),
                    mounted: true,
                },
                RunEntry::Unreadable {
                    run_id: "y-20250101-000000".into(),
                    error: "bad checkpoint".into(),
                },
                RunEntry::Build(run),
            ],
        })
        .unwrap();
        assert_eq!(list["format"], 1);
        assert_eq!(
            list["runs"][0],
            serde_json::json!({"kind": "exploration", "run_id": "x-20250101-000000",
                               "mounted": true})
        );
        assert_eq!(
            list["runs"][1],
            serde_json::json!({"kind": "unreadable", "run_id": "y-20250101-000000",
                               "error": "bad checkpoint"})
        );
        assert_eq!(list["runs"][2]["kind"], "build");
        assert_eq!(list["runs"][2]["targets"][1]["state"], "rescue-waiting");
    }

    #[test]
    fn a_dead_or_finished_run_shows_no_progress_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (_, now) = three_targets(dir.path());
        let mut cp: Checkpoint = serde_json::from_value(serde_json::json!({
            "run_id": "a-20260101-000000", "run_steps": [], "toolchain_ready": [],
            "finished": false,
            "targets": [{"target": {"tuple": "x86_64-unknown-linux-musl", "name": "a"},
                         "steps": [{"name": "world", "state": "running", "attempts": 1}]}]
        }))
        .unwrap();
        // The supervisor is gone: the crash rule, as status applies it.
        cp.restore();
        let r = run_status(
            &cp,
            None,
            &StepMs::default(),
            &latest_progress(dir.path(), &cp, now),
        );
        assert_eq!(r.liveness, Liveness::Unfinished);
        assert_eq!(r.eta_ms, None);
        assert_eq!(r.targets[0].eta_ms, None);
        assert_eq!(r.targets[0].state, TargetState::Interrupted);
        assert!(r.targets[0].steps[0].progress.is_none());
        assert!(render_run(&r, now).starts_with("run a-20260101-000000\n"));
        cp.finished = true;
        let r = run_status(&cp, None, &StepMs::default(), &Progressed::default());
        assert_eq!(r.liveness, Liveness::Finished);
        assert!(render_run(&r, now).starts_with("run a-20260101-000000 (finished)\n"));
    }

    /// A live pooled run: the pool's line, each step's cost beside its time, each target's
    /// CPU time in JSON.
    #[test]
    fn status_shows_the_job_pool_and_what_each_step_cost() {
        let cp: Checkpoint = serde_json::from_value(serde_json::json!({
            "run_id": "a-20260101-000000", "toolchain_ready": [], "finished": false,
            "run_steps": [],
            "targets": [
                {"target": {"tuple": "x86_64-unknown-linux-musl", "name": "a"},
                 "steps": [{"name": "target-world", "state": "done", "exit_code": 0,
                            "duration_ms": 61000, "attempts": 1,
                            "cost": {"cpu_us": 95_500_000u64, "peak_rss_bytes": 734_003_200u64,
                                     "source": "rusage"}},
                           {"name": "kernel", "state": "running", "started_us": 5,
                            "attempts": 1}]}
            ]
        }))
        .unwrap();
        let mut run = run_status(&cp, Some(7), &StepMs::default(), &Progressed::default());
        run.pool = Some(serde_json::json!({"total": 4, "free": 1, "cap": 3,
            "held": {"reason": "low-memory", "available": 1u64 << 30, "min": 2u64 << 30},
            "targets": []}));
        let text = render_run(&run, 0);
        assert!(
            text.contains("job pool: 3 of 4 tokens in use; no new job: low-memory"),
            "{text}"
        );
        assert!(
            text.contains(
                "  target-world         done         0      61.0s  CPU   95.5s, peak 700 MiB"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(json["pool"]["held"]["reason"], "low-memory");
        assert_eq!(json["targets"][0]["cpu_us"], 95_500_000u64);
        assert_eq!(
            json["targets"][0]["steps"][0]["cost"]["cpu_us"],
            95_500_000u64
        );
        assert_eq!(json["targets"][0]["steps"][0]["cost"]["source"], "rusage");
        assert!(json["targets"][0]["steps"][1].get("cost").is_none());
    }
}
