//! The checkpoint on disk as a snapshot plus an append-only log of transitions
//! ([`super::snaplog`]: the rules of reading, writing and compacting are there), so that the
//! bytes written per transition do not grow with the number of targets (issue 9 item 6).
//!
//! - **Snapshot** `checkpoint.json`: the whole [`Checkpoint`], written at start, at the end
//!   and at every compaction.
//! - **Log** `checkpoint.log`: one line per saved transition batch,
//!   `{"format":1,"gen":G,"seq":S,"changes":[...]}`, fdatasync'd. Each change sets one part
//!   of the checkpoint to its new value ([`Change`]), so replaying a record is idempotent; a
//!   change to a part the snapshot does not have makes the checkpoint corrupt.
//! - **Compaction**: a new snapshot with a new generation, then the log emptied; done when
//!   the log has grown larger than the snapshot (so the bytes written per transition stay
//!   bounded by about twice a record, whatever the number of targets), or when the
//!   checkpoint's shape changed (targets, step names), which a record cannot express.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::layout::new_gen;
use super::snaplog::SnapLog;
use super::RunDirError;
use crate::engine::state::{RescueWait, StepRecord};
use crate::engine::Checkpoint;

/// The log's file name inside the run directory.
pub const LOG: &str = "checkpoint.log";

/// One part of the checkpoint set to a new value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The step at `index` of the target at `target` (plan order) is now `record`.
    Step {
        /// Target index (0 = primary).
        target: usize,
        /// Step index in the target's plan order.
        index: usize,
        /// The step's new record (its name must be the one at `index`).
        record: StepRecord,
    },
    /// The supervisor step at `index` is now `record`.
    RunStep {
        /// Index in `run_steps`.
        index: usize,
        /// The new record (its name must be the one at `index`).
        record: StepRecord,
    },
    /// The tuples announced ready, whole (a short list).
    ToolchainReady(Vec<String>),
    /// The run's `finished` flag.
    Finished(bool),
    /// The run's distcc helpers.
    DistccHosts(Option<String>),
    /// The rescue shell of the target at `target` (plan order) now waits, or no longer does.
    Rescue {
        /// Target index (0 = primary).
        target: usize,
        /// The wait, `None` once it ended.
        rescue: Option<RescueWait>,
    },
}

/// The body of one line of the log.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    changes: Vec<Change>,
}

/// The checkpoint's snapshot and log in `run_dir`.
pub fn files(run_dir: &Path) -> SnapLog {
    SnapLog {
        snapshot: run_dir.join(super::CHECKPOINT),
        log: run_dir.join(LOG),
        what: "checkpoint",
        corrupt: "corrupt checkpoint log",
        hint: "the run cannot be resumed from it: `--retry` builds it again, or start a new run",
        sequenced: true,
    }
}

/// The changes that turn `old` into `new`; `None` when `new` has another shape (run id,
/// targets, step names), which only a snapshot can express. Empty when nothing changed.
pub fn diff(old: &Checkpoint, new: &Checkpoint) -> Option<Vec<Change>> {
    let same_steps = |a: &[StepRecord], b: &[StepRecord]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.name == y.name)
    };
    if old.run_id != new.run_id
        || old.targets.len() != new.targets.len()
        || !same_steps(&old.run_steps, &new.run_steps)
        || old
            .targets
            .iter()
            .zip(&new.targets)
            .any(|(a, b)| a.target != b.target || !same_steps(&a.steps, &b.steps))
    {
        return None;
    }
    let mut out = Vec::new();
    for (index, (a, b)) in old.run_steps.iter().zip(&new.run_steps).enumerate() {
        if a != b {
            out.push(Change::RunStep {
                index,
                record: b.clone(),
            });
        }
    }
    for (target, (ta, tb)) in old.targets.iter().zip(&new.targets).enumerate() {
        let rescue = tb.rescue_waiting();
        if ta.rescue_waiting() != rescue {
            out.push(Change::Rescue { target, rescue });
        }
        for (index, (a, b)) in ta.steps.iter().zip(&tb.steps).enumerate() {
            // The file keeps a waiting rescue shell on the target (the change above).
            if a.on_disk() != b.on_disk() {
                out.push(Change::Step {
                    target,
                    index,
                    record: b.clone(),
                });
            }
        }
    }
    if old.toolchain_ready != new.toolchain_ready {
        out.push(Change::ToolchainReady(new.toolchain_ready.clone()));
    }
    if old.finished != new.finished {
        out.push(Change::Finished(new.finished));
    }
    if old.distcc_hosts != new.distcc_hosts {
        out.push(Change::DistccHosts(new.distcc_hosts.clone()));
    }
    // A part of the checkpoint no change covers (a field added later and forgotten here)
    // must not be lost: then only a snapshot can express the new state.
    let mut replayed = old.clone();
    if apply(&mut replayed, &out).is_err() || replayed != *new {
        return None;
    }
    Some(out)
}

/// Applies `changes` to `cp`.
///
/// Errors: a change naming a target or step `cp` does not have, or another step's name.
pub fn apply(cp: &mut Checkpoint, changes: &[Change]) -> Result<(), String> {
    let put = |slot: Option<&mut StepRecord>, record: &StepRecord, what: String| match slot {
        Some(s) if s.name == record.name => {
            *s = record.clone();
            Ok(())
        }
        Some(s) => Err(format!(
            "{what} is step `{}`, the record names `{}`",
            s.name, record.name
        )),
        None => Err(format!("{what} does not exist")),
    };
    // A waiting rescue shell lives in its failed step's state, which a replaced record does
    // not carry (the file keeps it on the target): kept, or set by its change, afterwards.
    let mut rescues: Vec<Option<RescueWait>> =
        cp.targets.iter().map(|t| t.rescue_waiting()).collect();
    for c in changes {
        match c {
            Change::Step {
                target,
                index,
                record,
            } => put(
                cp.targets
                    .get_mut(*target)
                    .and_then(|t| t.steps.get_mut(*index)),
                record,
                format!("step {index} of target {target}"),
            )?,
            Change::RunStep { index, record } => put(
                cp.run_steps.get_mut(*index),
                record,
                format!("run step {index}"),
            )?,
            Change::ToolchainReady(v) => cp.toolchain_ready = v.clone(),
            Change::Finished(f) => cp.finished = *f,
            Change::DistccHosts(h) => cp.distcc_hosts = h.clone(),
            // After the records (below): a record replaced carries no rescue of its own.
            Change::Rescue { .. } => {}
        }
    }
    for c in changes {
        if let Change::Rescue { target, rescue } = c {
            *rescues
                .get_mut(*target)
                .ok_or_else(|| format!("target {target} does not exist"))? = rescue.clone();
        }
    }
    for (t, rescue) in cp.targets.iter_mut().zip(&rescues) {
        t.set_rescue(rescue.as_ref());
    }
    Ok(())
}

/// A checkpoint read back, with what was ignored on the way (a torn last record).
#[derive(Debug)]
pub struct Loaded {
    /// Snapshot + log.
    pub checkpoint: Checkpoint,
    /// One message per ignored record (names the file).
    pub warnings: Vec<String>,
}

/// Reads `<run_dir>/checkpoint.json` and replays `<run_dir>/checkpoint.log` over it (see
/// the module rules).
///
/// Errors: the snapshot is missing, malformed or newer; a log record other than the last
/// does not parse, is out of sequence or does not fit the snapshot (names the file and line).
pub fn load(run_dir: &Path) -> Result<Loaded, RunDirError> {
    let files = files(run_dir);
    let snapshot = files.read_snapshot::<Checkpoint>()?;
    let mut checkpoint = snapshot.value;
    let warnings = match snapshot.gen {
        Some(gen) => files.replay(gen, |r: Record| apply(&mut checkpoint, &r.changes))?,
        None => Vec::new(),
    };
    Ok(Loaded {
        checkpoint,
        warnings,
    })
}

/// Writes `cp` as the snapshot of generation `gen` and empties the log (the compaction; also
/// the first write of a run). Durable when it returns.
///
/// Errors: I/O (names the file).
pub fn write_snapshot(run_dir: &Path, cp: &Checkpoint, gen: u64) -> Result<usize, RunDirError> {
    files(run_dir).write_snapshot(cp, gen, true)
}

/// Writes a run's checkpoint as snapshot + log: the supervisor's checkpoint writer thread
/// owns one. The first [`Store::save`] writes a snapshot; later ones append the changes
/// since the previous save, or compact (see the module rules).
pub struct Store {
    files: SnapLog,
    log: Option<std::fs::File>,
    last: Option<Checkpoint>,
    gen: u64,
    seq: u64,
    snapshot_len: usize,
    log_len: usize,
    /// The log is compacted once it is larger than this or the snapshot.
    min_log: usize,
}

/// The log is compacted once it is larger than this (bytes) or the snapshot, whichever is
/// larger.
const MIN_LOG: usize = 64 * 1024;

impl Store {
    /// A store for `run_dir` that has written nothing yet.
    pub fn new(run_dir: &Path) -> Store {
        Store {
            files: files(run_dir),
            log: None,
            last: None,
            gen: 0,
            seq: 0,
            snapshot_len: 0,
            log_len: 0,
            min_log: MIN_LOG,
        }
    }

    /// Makes `cp` durable: appends its changes since the last save (one fdatasync'd record),
    /// or writes a snapshot (first save, shape change, log larger than the snapshot).
    ///
    /// Errors: I/O (names the file).
    pub fn save(&mut self, cp: &Checkpoint) -> Result<(), RunDirError> {
        let changes = match &self.last {
            Some(last) => diff(last, cp),
            None => None,
        };
        match changes {
            Some(c) if c.is_empty() => Ok(()),
            Some(c) if self.log_len <= self.snapshot_len.max(self.min_log) => self.append(cp, c),
            _ => self.compact(cp),
        }
    }

    /// Writes `cp` as a new snapshot and empties the log (nothing when that is what is on
    /// disk already).
    ///
    /// Errors: I/O (names the file).
    pub fn compact(&mut self, cp: &Checkpoint) -> Result<(), RunDirError> {
        if self.seq == 0 && self.last.as_ref() == Some(cp) {
            return Ok(());
        }
        let gen = new_gen(self.gen);
        self.snapshot_len = self.files.write_snapshot(cp, gen, true)?;
        self.gen = gen;
        self.seq = 0;
        self.log_len = 0;
        self.last = Some(cp.clone());
        Ok(())
    }

    fn append(&mut self, cp: &Checkpoint, changes: Vec<Change>) -> Result<(), RunDirError> {
        let line = self
            .files
            .encode(self.gen, self.seq + 1, [Record { changes }])?;
        self.files.append(&mut self.log, &line, true)?;
        self.seq += 1;
        self.log_len += line.len();
        self.last = Some(cp.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
