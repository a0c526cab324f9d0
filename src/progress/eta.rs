//! Remaining-time estimates for a step, a target and the run.
//!
//! The method is qlop's (portage-utils `qlop -r`): a package is expected to take the median
//! of its last [`KEEP`] merges (from `emerge.log`, [`super::emergelog`], or the per-package
//! times kept in the history metadata). Inside a step with package progress `done/total`, the
//! current package's remaining time is its median minus the time it has run, and each package
//! still to come takes the step's own rate so far: the mean time of the packages it completed,
//! each counted at most [`CLIP`] times their median ([`robust_rate_ms`]; without their
//! times, the time before the current package / `done`), or, before the first package is
//! done, the step's last duration / `total`. The clip is this module's own: on the real
//! `emerge.log` of `tests/fixtures/progress/` (see its README) the plain mean spread a step's
//! one giant package (qtwebengine, ghc) over every package to come and erred by 102 % on
//! average; the clipped mean errs by about half that (52 %). Without package progress, the
//! step's remaining time is its last duration (history metadata `step_ms`) minus its elapsed
//! time. A target's remaining time adds the last durations of its steps still to run; the
//! run's is the largest of its targets' (targets build in parallel).
//!
//! Durations are milliseconds throughout; `None` means "no basis for an estimate".

use std::collections::BTreeMap;

use super::{package_of, Progress};

/// How many of a package's last merges its estimate uses.
pub const KEEP: usize = 5;

/// In a step's rate, a completed package counts at most this many times the median of the
/// step's completed packages (a giant package does not repeat for every package to come).
pub const CLIP: u64 = 4;

/// What is known from earlier runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Estimator {
    /// Per target (`<tuple>.<name>`), per step: its last duration in milliseconds.
    pub step_ms: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per package (`category/package`): merge times in seconds, oldest first.
    pub package_secs: BTreeMap<String, Vec<u64>>,
}

/// The state of the running step of a target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepNow {
    /// Milliseconds since the step started.
    pub elapsed_ms: u64,
    /// Its package progress, when it reported any.
    pub progress: Option<Progress>,
    /// Milliseconds since its current package started (since the last progress change).
    pub current_ms: u64,
    /// How long each package the step completed took, in milliseconds, in order (the time
    /// between two changes of the current package; with `--jobs`, between two starts).
    pub done_ms: Vec<u64>,
}

/// Median of the last [`KEEP`] values of `v` (mean of the two middle ones for an even count).
pub fn median_of_last(v: &[u64]) -> Option<u64> {
    median_of(&v[v.len().saturating_sub(KEEP)..])
}

/// The expected time of a package still to come from the times of the packages done so far
/// (milliseconds): their mean, each counted at most [`CLIP`] times their median; `None`
/// for no times.
pub fn robust_rate_ms(done_ms: &[u64]) -> Option<u64> {
    let median = median_of(done_ms)?;
    let cap = median.saturating_mul(CLIP);
    let sum: u64 = done_ms.iter().map(|&d| d.min(cap)).sum();
    Some(sum / done_ms.len() as u64)
}

/// Median of `v` (mean of the two middle ones for an even count); `None` when empty.
fn median_of(v: &[u64]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2
    })
}

impl Estimator {
    /// Adds merge times (seconds) per package, keeping the last [`KEEP`] of each.
    pub fn add_package_times(&mut self, times: BTreeMap<String, Vec<u64>>) {
        for (pkg, secs) in times {
            let v = self.package_secs.entry(pkg).or_default();
            v.extend(secs);
            let cut = v.len().saturating_sub(KEEP);
            v.drain(..cut);
        }
    }

    /// A package's expected merge time in milliseconds (`category/package` or a cpv).
    pub fn package_ms(&self, package: &str) -> Option<u64> {
        let v = self.package_secs.get(package_of(package))?;
        median_of_last(v).map(|s| s * 1000)
    }

    /// The last duration of `step` of `target`, in milliseconds.
    pub fn step_ms(&self, target: &str, step: &str) -> Option<u64> {
        self.step_ms.get(target)?.get(step).copied()
    }

    /// Remaining milliseconds of the running `step` of `target`.
    pub fn step_remaining_ms(&self, target: &str, step: &str, now: &StepNow) -> Option<u64> {
        let last = self.step_ms(target, step);
        let by_history = || last.map(|d| d.saturating_sub(now.elapsed_ms));
        let Some(p) = now.progress.as_ref().filter(|p| p.total > 0) else {
            return by_history();
        };
        let working = p.current.is_some() && p.done < p.total;
        let before_current = now.elapsed_ms.saturating_sub(now.current_ms);
        let per_pkg = if let Some(rate) = robust_rate_ms(&now.done_ms) {
            Some(rate)
        } else if p.done > 0 {
            Some(before_current / u64::from(p.done))
        } else {
            last.map(|d| d / u64::from(p.total))
        };
        let current = if working {
            let expected = p
                .current
                .as_deref()
                .and_then(|c| self.package_ms(c))
                .or(per_pkg);
            match expected {
                Some(e) => e.saturating_sub(now.current_ms),
                None => return by_history(),
            }
        } else {
            0
        };
        let after = u64::from(p.total.saturating_sub(p.done + u32::from(working)));
        match per_pkg {
            Some(per) => Some(current + after * per),
            None if after == 0 => Some(current),
            None => by_history(),
        }
    }

    /// Remaining milliseconds of `target`: its running step (if any) plus the last durations
    /// of the steps in `pending` (not started yet). `None` when any of them has no basis for
    /// an estimate (a first build, a step new since the history): a part would mislead.
    pub fn target_remaining_ms(
        &self,
        target: &str,
        running: Option<(&str, &StepNow)>,
        pending: &[String],
    ) -> Option<u64> {
        let mut total = match running {
            Some((step, now)) => self.step_remaining_ms(target, step, now)?,
            None => 0,
        };
        for step in pending {
            total += self.step_ms(target, step)?;
        }
        Some(total)
    }
}

/// The run's remaining milliseconds: the largest of its targets' (they build in parallel);
/// `None` when any target's is unknown.
pub fn run_remaining_ms(targets: impl IntoIterator<Item = Option<u64>>) -> Option<u64> {
    let mut max = None;
    for t in targets {
        max = Some(max.unwrap_or(0).max(t?));
    }
    max
}

/// `1h02m`, `12m`, `45s`: a short duration for titles and headers.
pub fn short_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Phase;

    fn est() -> Estimator {
        let mut e = Estimator::default();
        e.step_ms.insert(
            "t".into(),
            BTreeMap::from([("world".into(), 1_000_000), ("images".into(), 60_000)]),
        );
        e.add_package_times(BTreeMap::from([(
            "dev-libs/openssl".into(),
            vec![900, 100, 110, 120, 130, 140],
        )]));
        e
    }

    fn progress(done: u32, total: u32, current: &str) -> Option<Progress> {
        Some(Progress {
            phase: Phase::Build,
            done,
            total,
            current: Some(current.into()),
        })
    }

    #[test]
    fn median_uses_only_the_last_merges() {
        assert_eq!(median_of_last(&[900, 100, 110, 120, 130, 140]), Some(120));
        assert_eq!(median_of_last(&[10, 20]), Some(15));
        assert_eq!(median_of_last(&[]), None);
        assert_eq!(est().package_ms("dev-libs/openssl-3.0.13"), Some(120_000));
        assert_eq!(est().package_secs["dev-libs/openssl"].len(), KEEP);
    }

    #[test]
    fn without_progress_the_step_takes_its_last_duration() {
        let now = StepNow {
            elapsed_ms: 400_000,
            ..StepNow::default()
        };
        assert_eq!(est().step_remaining_ms("t", "world", &now), Some(600_000));
        assert_eq!(est().step_remaining_ms("t", "unknown", &now), None);
        let late = StepNow {
            elapsed_ms: 2_000_000,
            ..StepNow::default()
        };
        assert_eq!(est().step_remaining_ms("t", "world", &late), Some(0));
    }

    #[test]
    fn inside_a_step_the_current_package_median_and_the_step_rate_are_used() {
        // 10 of 50 done in 200 s (20 s each), openssl (median 120 s) running for 30 s.
        let now = StepNow {
            elapsed_ms: 230_000,
            progress: progress(10, 50, "dev-libs/openssl-3.0.13"),
            current_ms: 30_000,
            done_ms: Vec::new(),
        };
        assert_eq!(
            est().step_remaining_ms("t", "world", &now),
            Some(90_000 + 39 * 20_000)
        );
        // Unknown package: it takes the step's rate too.
        let now = StepNow {
            progress: progress(10, 50, "app-misc/new-1"),
            ..now
        };
        assert_eq!(
            est().step_remaining_ms("t", "world", &now),
            Some(39 * 20_000)
        );
    }

    #[test]
    fn a_giant_package_done_counts_at_most_clip_times_the_median() {
        // Nine packages of 20 s and one of 2000 s: the plain mean (218 s) would expect every
        // package to come to take as long; clipped at 4 x 20 s the rate is 26 s.
        let mut done_ms = vec![20_000; 9];
        done_ms.insert(3, 2_000_000);
        assert_eq!(robust_rate_ms(&done_ms), Some(26_000));
        assert_eq!(robust_rate_ms(&[]), None);
        let now = StepNow {
            elapsed_ms: 2_180_000,
            progress: progress(10, 50, "app-misc/new-1"),
            current_ms: 0,
            done_ms,
        };
        assert_eq!(
            est().step_remaining_ms("t", "world", &now),
            Some(40 * 26_000)
        );
    }

    #[test]
    fn before_the_first_package_is_done_the_last_duration_is_spread_over_the_total() {
        let now = StepNow {
            elapsed_ms: 5_000,
            progress: progress(0, 100, "app-misc/new-1"),
            current_ms: 5_000,
            done_ms: Vec::new(),
        };
        assert_eq!(
            est().step_remaining_ms("t", "world", &now),
            Some(5_000 + 99 * 10_000)
        );
    }

    #[test]
    fn target_adds_pending_steps_and_run_takes_the_longest_target() {
        let now = StepNow {
            elapsed_ms: 400_000,
            ..StepNow::default()
        };
        let e = est();
        assert_eq!(
            e.target_remaining_ms("t", Some(("world", &now)), &["images".into()]),
            Some(660_000)
        );
        assert_eq!(e.target_remaining_ms("x", None, &["images".into()]), None);
        assert_eq!(
            e.target_remaining_ms("t", Some(("world", &now)), &["new-step".into()]),
            None
        );
        assert_eq!(run_remaining_ms([Some(5), Some(9)]), Some(9));
        assert_eq!(run_remaining_ms([Some(5), None, Some(9)]), None);
        assert_eq!(short_duration(3_725_000), "1h02m");
        assert_eq!(short_duration(125_000), "2m");
        assert_eq!(short_duration(45_000), "45s");
    }
}
