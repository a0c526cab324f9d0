//! A run's checkpoint on disk: reading it back ([`load_checkpoint`]), writing it whole
//! ([`save_checkpoint`]) and the supervisor's writer thread ([`CheckpointWriter`]). The
//! format (snapshot `checkpoint.json` plus the log `checkpoint.log`) is [`super::cplog`]'s;
//! what the checkpoint means is the engine's ([`crate::engine::state`]).

use std::path::Path;

use crate::engine::Checkpoint;
use crate::plan::Plan;

/// Reads a run's checkpoint as it is on disk (snapshot + log, see [`super::cplog`]; a torn last
/// log record is ignored with a warning on stderr), without the crash rule (see
/// [`Checkpoint::restore`]), and checks that it belongs to `plan`: same run id, the plan's
/// targets in order, each with the plan's steps.
///
/// Errors: missing, malformed, newer or inconsistent checkpoint (names the file).
pub fn load_checkpoint(
    run_dir: &Path,
    plan: Option<&Plan>,
) -> Result<Checkpoint, super::RunDirError> {
    let path = run_dir.join(super::CHECKPOINT);
    let loaded = super::cplog::load(run_dir)?;
    for w in &loaded.warnings {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "warning: {w}");
    }
    let cp = loaded.checkpoint;
    if let Some(plan) = plan {
        if let Err(why) = consistent(&cp, plan) {
            return Err(super::RunDirError::Bad {
                path,
                why: format!("the checkpoint does not match the run's plan: {why}"),
            });
        }
    }
    Ok(cp)
}

/// Checks a checkpoint against its plan.
///
/// Errors: what differs.
pub fn consistent(cp: &Checkpoint, plan: &Plan) -> Result<(), String> {
    if cp.run_id != plan.run_id {
        return Err(format!("run id {} instead of {}", cp.run_id, plan.run_id));
    }
    if cp.targets.len() != plan.targets.len() {
        return Err(format!(
            "{} target(s) instead of the plan's {}",
            cp.targets.len(),
            plan.targets.len()
        ));
    }
    for (r, t) in cp.targets.iter().zip(&plan.targets) {
        if r.target != t.target {
            return Err(format!(
                "target {} where the plan has {}",
                r.target, t.target
            ));
        }
        let have: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
        let want: Vec<&str> = t.steps.iter().map(|s| s.name.as_str()).collect();
        if have != want {
            return Err(format!("the steps of {} differ from the plan's", t.target));
        }
    }
    Ok(())
}

/// Writes a run's checkpoint whole (versioned, atomic, 0600) as a new snapshot, and empties
/// its log ([`super::cplog`]).
///
/// Errors: I/O.
pub fn save_checkpoint(run_dir: &Path, cp: &Checkpoint) -> Result<(), super::RunDirError> {
    super::cplog::write_snapshot(run_dir, cp, super::layout::new_gen(0)).map(|_| ())
}

/// Writes checkpoints on a thread of its own so that the supervisor's event loop never waits
/// for an fsync (~9 ms here). Each [`CheckpointWriter::save`] hands over a copy; when several
/// queue up while a write is in progress, only the newest is written (the log records set
/// values, so it contains every earlier transition). The writer appends the changes since
/// the previous write to the checkpoint log and compacts it into the snapshot at its first
/// write, when the log outgrows the snapshot, and at [`CheckpointWriter::finish`], which
/// waits until the last copy is on disk (`rundir::cplog`). A write that fails is reported
/// once to the `on_error` callback given to [`CheckpointWriter::start`] (the supervisor then
/// stops the run: a run whose progress is not saved cannot be resumed).
pub struct CheckpointWriter {
    tx: Option<std::sync::mpsc::Sender<Checkpoint>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Called (on the writer's thread) with the message of a failed checkpoint write.
pub type OnError = Box<dyn Fn(String) + Send>;

impl CheckpointWriter {
    /// Starts the writer for `<run_dir>/checkpoint.json` and its log.
    pub fn start(run_dir: &Path, on_error: OnError) -> CheckpointWriter {
        let (tx, rx) = std::sync::mpsc::channel::<Checkpoint>();
        let mut store = super::cplog::Store::new(run_dir);
        let thread = std::thread::spawn(move || {
            let mut reported = false;
            let mut report = |e: super::RunDirError| {
                if !reported {
                    on_error(format!("cannot write the checkpoint: {e}"));
                    reported = true;
                }
            };
            let mut last = None;
            while let Ok(mut cp) = rx.recv() {
                while let Ok(newer) = rx.try_recv() {
                    cp = newer;
                }
                if let Err(e) = store.save(&cp) {
                    report(e);
                }
                last = Some(cp);
            }
            // The end is a safe point: the whole state in the snapshot, the log empty.
            if let Some(cp) = last {
                if let Err(e) = store.compact(&cp) {
                    report(e);
                }
            }
        });
        CheckpointWriter {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Queues a copy of `cp`.
    pub fn save(&self, cp: &Checkpoint) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(cp.clone());
        }
    }

    /// Waits until every queued copy is written and the log compacted.
    pub fn finish(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::tests::cp;
    use crate::engine::{StepState, TargetState};

    #[test]
    fn loading_keeps_running_steps_and_restore_interrupts_them() {
        let mut c = cp();
        let a = c.targets[0].target.clone();
        c.step_started(&a, "crossdev", 1);
        let dir = tempfile::tempdir().unwrap();
        save_checkpoint(dir.path(), &c).unwrap();
        let mut back = load_checkpoint(dir.path(), None).unwrap();
        assert_eq!(back.targets[0].steps[0].state, StepState::Running);
        back.restore();
        assert_eq!(back.targets[0].steps[0].state, StepState::Interrupted);
        assert_eq!(back.targets[0].steps[0].attempts, 1);
        assert_eq!(back.targets[0].state(), TargetState::Interrupted);
        assert_eq!(back.targets[0].pending_steps()[0], "crossdev");
    }

    #[test]
    fn a_failed_write_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("missing");
        let (tx, rx) = std::sync::mpsc::channel();
        let mut w = CheckpointWriter::start(
            &gone,
            Box::new(move |m| {
                let _ = tx.send(m);
            }),
        );
        w.save(&cp());
        w.finish();
        let msg = rx.recv().unwrap();
        assert!(msg.contains("cannot write the checkpoint"), "{msg}");
    }

    #[test]
    fn writer_leaves_the_newest_snapshot_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cp();
        let mut w = CheckpointWriter::start(dir.path(), Box::new(|m| panic!("{m}")));
        for i in 0..20 {
            c.toolchain_ready = vec![format!("t{i}")];
            w.save(&c);
        }
        w.finish();
        let back = load_checkpoint(dir.path(), None).unwrap();
        assert_eq!(back.toolchain_ready, ["t19"]);
        // The end is compacted: the snapshot alone holds the last state, the log is empty.
        let snapshot: Checkpoint =
            crate::rundir::read_versioned(&dir.path().join(super::super::CHECKPOINT), "checkpoint")
                .unwrap();
        assert_eq!(snapshot, back);
        let log = dir.path().join(crate::rundir::cplog::LOG);
        assert_eq!(std::fs::metadata(log).unwrap().len(), 0);
    }
}
