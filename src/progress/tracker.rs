//! Folds a step's output into its current [`Progress`]: how many packages of how many are
//! done, and what is being worked on.
//!
//! Rules (Portage prints both a start and an end line per package, `_emerge/MergeListItem.py`
//! and `_emerge/PackageMerge.py`): `done` counts `Completed` lines, or takes the `Jobs: A of
//! B complete` figure of a parallel emerge when it is higher; without either (a Portage that
//! prints no `Completed`), `Emerging (N of M)` in a sequential emerge means N-1 are done. A
//! counter that goes back (`(1 of 3)` after `(7 of 7)`) or a new total starts a new emerge
//! within the same step: the counts start again. crossdev's stages have no total (`0`);
//! `done` counts the stages before the current one.

use serde::{Deserialize, Serialize};

use super::line::{parse_line, Line};

/// Longest line kept while waiting for its end; longer lines are cut (progress lines are
/// short, build output can be megabytes without a newline).
const MAX_LINE: usize = 4096;

/// What the step is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// `emerge --sync`: syncing repositories.
    Sync,
    /// Downloading distfiles (or `--fetchonly`).
    Fetch,
    /// Building a package from source.
    Build,
    /// Merging a binary package.
    Binary,
    /// Installing a built package into its root.
    Install,
    /// A crossdev stage (`cross-gcc-stage1`).
    Crossdev,
}

impl Phase {
    /// A short word for displays.
    pub fn word(self) -> &'static str {
        match self {
            Phase::Sync => "sync",
            Phase::Fetch => "fetch",
            Phase::Build => "build",
            Phase::Binary => "binpkg",
            Phase::Install => "install",
            Phase::Crossdev => "crossdev",
        }
    }
}

/// A step's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// What it is doing.
    pub phase: Phase,
    /// Packages (repositories, crossdev stages) done.
    pub done: u32,
    /// Packages in this emerge; 0 when not known (sync, crossdev).
    pub total: u32,
    /// The package (`category/package-version`), repository or crossdev stage being worked
    /// on.
    pub current: Option<String>,
}

impl Progress {
    /// `37/212 dev-libs/openssl-3.0.13`, `3 cross-gcc-stage1` (no total), or just the count.
    pub fn short(&self) -> String {
        let count = if self.total > 0 {
            format!("{}/{}", self.done, self.total)
        } else {
            format!("{}", self.done)
        };
        match &self.current {
            Some(c) => format!("{count} {c}"),
            None => count,
        }
    }
}

/// The progress state of one step's output.
#[derive(Debug, Default)]
pub struct Tracker {
    progress: Option<Progress>,
    partial: Vec<u8>,
    completed: u32,
    jobs_done: u32,
    parallel: bool,
    last_n: u32,
    stages: u32,
    changed: bool,
}

impl Tracker {
    /// A tracker for a new step.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// The progress so far; `None` before the first progress line.
    pub fn progress(&self) -> Option<&Progress> {
        self.progress.as_ref()
    }

    /// Feeds a chunk of output (any split, also inside a line or a UTF-8 character); returns
    /// the progress when it changed in this chunk.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Progress> {
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                let line = std::mem::take(&mut self.partial);
                self.line(&String::from_utf8_lossy(&line));
            } else if self.partial.len() < MAX_LINE {
                self.partial.push(b);
            }
        }
        if std::mem::take(&mut self.changed) {
            self.progress.clone()
        } else {
            None
        }
    }

    /// Takes one complete line.
    pub fn line(&mut self, line: &str) {
        let Some(parsed) = parse_line(line) else {
            return;
        };
        let before = self.progress.clone();
        self.apply(parsed);
        if self.progress != before {
            self.changed = true;
        }
    }

    fn set(&mut self, phase: Phase, done: u32, total: u32, current: Option<String>) {
        self.progress = Some(Progress {
            phase,
            done,
            total,
            current,
        });
    }

    /// The counter of an `Emerging` or `Fetching` line: packages start in order within one
    /// emerge, so a counter that does not go up, or a new total, starts a new emerge.
    /// (`Installing` and `Completed` come in any order with `--jobs`.)
    fn start_counter(&mut self, n: u32, total: u32) {
        let cur_total = self.progress.as_ref().map_or(0, |p| p.total);
        if self.last_n > 0 && (total != cur_total || n <= self.last_n) {
            self.completed = 0;
            self.jobs_done = 0;
            self.parallel = false;
        }
        self.last_n = n;
    }

    fn done(&self, n: u32) -> u32 {
        let floor = if self.parallel {
            0
        } else {
            n.saturating_sub(1)
        };
        self.completed.max(self.jobs_done).max(floor)
    }

    fn current(&self) -> Option<String> {
        self.progress.as_ref().and_then(|p| p.current.clone())
    }

    fn apply(&mut self, line: Line) {
        match line {
            Line::Emerging {
                n,
                total,
                cpv,
                binary,
            } => {
                self.start_counter(n, total);
                let phase = if binary { Phase::Binary } else { Phase::Build };
                self.set(phase, self.done(n), total, Some(cpv));
            }
            Line::Fetching { n, total, cpv } => {
                self.start_counter(n, total);
                self.set(Phase::Fetch, n.saturating_sub(1), total, Some(cpv));
            }
            Line::Installing { n, total, cpv } => {
                self.set(Phase::Install, self.done(n), total, Some(cpv));
            }
            Line::Completed { n, total, cpv } => {
                self.completed += 1;
                let done = self.done(n).max(self.completed);
                // With --jobs another package may be current; keep it.
                let current = self.current().or(Some(cpv));
                let phase = self.progress.as_ref().map_or(Phase::Install, |p| p.phase);
                self.set(phase, done, total, current);
            }
            Line::Jobs { done, total, .. } => {
                let cur_total = self.progress.as_ref().map_or(0, |p| p.total);
                if total != cur_total {
                    self.completed = 0;
                }
                self.parallel = true;
                self.jobs_done = done;
                let phase = self.progress.as_ref().map_or(Phase::Build, |p| p.phase);
                let done = self.completed.max(done);
                self.set(phase, done, total, self.current());
            }
            Line::Syncing { repo } => {
                let done = match &self.progress {
                    Some(p) if p.phase == Phase::Sync => p.done,
                    _ => 0,
                };
                self.set(Phase::Sync, done, 0, Some(repo));
            }
            Line::SyncCompleted { repo } => {
                let done = match &self.progress {
                    Some(p) if p.phase == Phase::Sync => p.done + 1,
                    _ => 1,
                };
                self.set(Phase::Sync, done, 0, Some(repo));
            }
            Line::Downloading { file } => {
                let (done, total, current) = match &self.progress {
                    Some(p) if p.total > 0 => (p.done, p.total, p.current.clone()),
                    _ => (0, 0, Some(file)),
                };
                self.set(Phase::Fetch, done, total, current);
            }
            Line::CrossdevStage { stage } => {
                self.stages += 1;
                self.set(Phase::Crossdev, self.stages - 1, 0, Some(stage));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> Tracker {
        let mut t = Tracker::new();
        for l in lines {
            t.line(l);
        }
        t
    }

    #[test]
    fn sequential_emerge_counts_completed_packages() {
        let t = run(&[
            ">>> Emerging (1 of 3) a/x-1::gentoo",
            ">>> Installing (1 of 3) a/x-1::gentoo",
            ">>> Completed (1 of 3) a/x-1::gentoo",
            ">>> Emerging (2 of 3) a/y-1::gentoo",
        ]);
        let p = t.progress().unwrap();
        assert_eq!((p.done, p.total, p.phase), (1, 3, Phase::Build));
        assert_eq!(p.current.as_deref(), Some("a/y-1"));
        assert_eq!(p.short(), "1/3 a/y-1");
    }

    #[test]
    fn parallel_emerge_takes_the_jobs_figure_and_never_counts_started_as_done() {
        let t = run(&[
            ">>> Emerging (1 of 4) a/w-1::gentoo",
            ">>> Emerging (2 of 4) a/x-1::gentoo",
            ">>> Jobs: 0 of 4 complete, 2 running",
            ">>> Emerging (3 of 4) a/y-1::gentoo",
        ]);
        assert_eq!(t.progress().unwrap().done, 0);
        let t = run(&[
            ">>> Jobs: 0 of 4 complete, 2 running",
            ">>> Emerging (3 of 4) a/y-1::gentoo",
            ">>> Jobs: 2 of 4 complete, 2 running",
        ]);
        let p = t.progress().unwrap();
        assert_eq!((p.done, p.total), (2, 4));
        assert_eq!(p.current.as_deref(), Some("a/y-1"));
    }

    #[test]
    fn a_second_emerge_in_the_same_step_starts_the_counts_again() {
        let t = run(&[
            ">>> Emerging (1 of 1) a/x-1::gentoo",
            ">>> Completed (1 of 1) a/x-1::gentoo",
            ">>> Emerging binary (1 of 5) a/y-1::gentoo",
        ]);
        let p = t.progress().unwrap();
        assert_eq!((p.done, p.total, p.phase), (0, 5, Phase::Binary));
    }

    #[test]
    fn feed_joins_lines_split_across_chunks_and_reports_only_changes() {
        let mut t = Tracker::new();
        assert_eq!(t.feed(b"compiling...\n>>> Emerging (2 o"), None);
        let p = t.feed(b"f 9) a/b-1.0::gentoo\nmore output\n").unwrap();
        assert_eq!((p.done, p.total), (1, 9));
        assert_eq!(t.feed(b"make: Nothing to be done\n"), None);
        assert_eq!(t.feed(b">>> Emerging (2 of 9) a/b-1.0::gentoo\n"), None);
    }

    #[test]
    fn an_endless_line_is_cut_not_kept() {
        let mut t = Tracker::new();
        t.feed(&vec![b'x'; 1 << 20]);
        assert!(t.partial.len() <= MAX_LINE);
        t.feed(b"\n>>> Emerging (1 of 2) a/b-1::r\n");
        assert_eq!(t.progress().unwrap().total, 2);
    }

    #[test]
    fn sync_and_crossdev_count_repositories_and_stages() {
        let t = run(&[
            ">>> Syncing repository 'gentoo' into '/var/db/repos/gentoo'...",
            "=== Sync completed for gentoo",
            ">>> Syncing repository 'guru' into '/var/db/repos/guru'...",
        ]);
        let p = t.progress().unwrap();
        assert_eq!((p.phase, p.done, p.total), (Phase::Sync, 1, 0));
        assert_eq!(p.short(), "1 guru");
        let t = run(&[
            " * Emerging cross-binutils ...",
            " [ ok ]",
            " * Emerging cross-gcc-stage1 ...",
        ]);
        let p = t.progress().unwrap();
        assert_eq!((p.phase, p.done), (Phase::Crossdev, 1));
        assert_eq!(p.current.as_deref(), Some("cross-gcc-stage1"));
    }

    #[test]
    fn downloads_keep_the_package_counter() {
        let t = run(&[
            ">>> Emerging (4 of 10) a/b-1::gentoo",
            ">>> Downloading 'https://example.org/distfiles/b-1.tar.gz'",
        ]);
        let p = t.progress().unwrap();
        assert_eq!((p.phase, p.done, p.total), (Phase::Fetch, 3, 10));
        assert_eq!(p.current.as_deref(), Some("a/b-1"));
    }
}
