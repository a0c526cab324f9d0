use super::*;
use crate::config::Target;
use crate::engine::state::TargetRecord;
use crate::recipe::Phase;

fn cp(targets: usize) -> Checkpoint {
    let step = |name: &str| StepRecord::new(name, Some(Phase::Target));
    Checkpoint {
        run_id: "a-1".into(),
        run_steps: vec![
            StepRecord::new("mounts", None),
            StepRecord::new("archive-history", None),
        ],
        toolchain_ready: Vec::new(),
        targets: (0..targets)
            .map(|i| TargetRecord {
                target: Target::new("x86_64-unknown-linux-musl", &format!("t{i}")).unwrap(),
                steps: vec![step("target-env"), step("world"), step("collect")],
            })
            .collect(),
        finished: false,
        distcc_hosts: None,
    }
}

/// A sequence of transitions as a supervisor makes them.
fn transitions(c: &mut Checkpoint, i: u64) {
    let n = c.targets.len();
    let t = c.targets[(i as usize) % n].target.clone();
    let step = ["target-env", "world", "collect"][(i as usize / n) % 3];
    if i.is_multiple_of(2) {
        c.step_started(&t, step, i);
    } else {
        c.step_finished(&t, step, 0, i, None);
    }
    if i == 3 {
        c.set_toolchain_ready("x86_64-unknown-linux-musl");
        c.set_run_step("mounts", crate::engine::StepState::RUN_STEP_DONE, i);
    }
    // A step fails and its rescue shell waits: the wait is recorded too.
    if i == 5 {
        let t = c.targets[0].target.clone();
        c.step_started(&t, "collect", i);
        c.step_finished(&t, "collect", 1, i, None);
        assert!(c.rescue_waiting(&t, "collect", i));
    }
}

fn log_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(LOG)).unwrap()
}

#[test]
fn replay_of_the_log_equals_the_state_saved() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::new(dir.path());
    let mut c = cp(4);
    store.save(&c).unwrap();
    for i in 0..20 {
        transitions(&mut c, i);
        store.save(&c).unwrap();
        let back = load(dir.path()).unwrap();
        assert!(back.warnings.is_empty(), "{:?}", back.warnings);
        assert_eq!(back.checkpoint, c, "after transition {i}");
    }
    // Records, not snapshots: the snapshot still holds the first state.
    assert_eq!(log_text(dir.path()).lines().count(), 20);
    let snapshot: Checkpoint =
        crate::rundir::read_versioned(&dir.path().join(crate::rundir::CHECKPOINT), "checkpoint")
            .unwrap();
    assert_eq!(snapshot, cp(4));
}

#[test]
fn a_record_holds_only_what_changed() {
    let small = cp(2);
    let mut big = cp(200);
    let t = big.targets[7].target.clone();
    let before = big.clone();
    big.step_started(&t, "world", 5);
    let changes = diff(&before, &big).unwrap();
    assert_eq!(changes.len(), 1);
    assert!(matches!(
        changes[0],
        Change::Step {
            target: 7,
            index: 1,
            ..
        }
    ));
    assert_eq!(diff(&small, &small).unwrap(), Vec::new());
    assert_eq!(diff(&small, &big), None, "another shape needs a snapshot");
}

#[test]
fn a_torn_last_record_is_ignored_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::new(dir.path());
    let mut c = cp(3);
    store.save(&c).unwrap();
    transitions(&mut c, 0);
    store.save(&c).unwrap();
    let kept = c.clone();
    transitions(&mut c, 1);
    store.save(&c).unwrap();
    // Power loss mid-append: the last line is cut short.
    let text = log_text(dir.path());
    let cut = text.len() - 10;
    std::fs::write(dir.path().join(LOG), &text[..cut]).unwrap();
    let back = load(dir.path()).unwrap();
    assert_eq!(back.checkpoint, kept);
    assert_eq!(back.warnings.len(), 1);
    assert!(
        back.warnings[0].contains("checkpoint.log") && back.warnings[0].contains("torn"),
        "{:?}",
        back.warnings
    );
    // A complete last line full of zeros (the length made it, the data did not): torn too.
    let mut zeros = text[..text.find('\n').unwrap() + 1].to_string();
    zeros.push_str(&"\0".repeat(40));
    zeros.push('\n');
    std::fs::write(dir.path().join(LOG), zeros).unwrap();
    let back = load(dir.path()).unwrap();
    assert_eq!(back.checkpoint, kept);
    assert_eq!(back.warnings.len(), 1);
}

#[test]
fn a_bad_record_in_the_middle_is_a_corrupt_checkpoint_named_by_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::new(dir.path());
    let mut c = cp(3);
    store.save(&c).unwrap();
    for i in 0..3 {
        transitions(&mut c, i);
        store.save(&c).unwrap();
    }
    let text = log_text(dir.path());
    let lines: Vec<&str> = text.lines().collect();
    let bad = [
        format!("{}\n{{\"format\":1,oops\n{}\n", lines[0], lines[2]),
        // A record lost from the middle.
        format!("{}\n{}\n", lines[0], lines[2]),
        // A record naming a step the snapshot does not have.
        format!(
            "{}\n{}\n{}\n",
            lines[0],
            lines[1].replace("\"target\":1", "\"target\":9"),
            lines[2]
        ),
    ];
    for (k, text) in bad.iter().enumerate() {
        std::fs::write(dir.path().join(LOG), text).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(&dir.path().join(LOG).display().to_string())
                && e.contains("corrupt checkpoint log")
                && e.contains("line 2"),
            "case {k}: {e}"
        );
    }
}

#[test]
fn compaction_folds_the_log_into_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::new(dir.path());
    store.min_log = 2048;
    let mut c = cp(2);
    store.save(&c).unwrap();
    // Small checkpoint: the log is compacted at `min_log` bytes, so it never grows past that
    // plus one record, and the state survives every compaction.
    let mut compactions = 0;
    let mut previous = 0;
    for i in 0..100 {
        c.targets[0].steps[0].started_us = Some(i);
        store.save(&c).unwrap();
        let len = std::fs::metadata(dir.path().join(LOG)).unwrap().len();
        assert!(len as usize <= 2048 + 1024, "{len}");
        if len < previous {
            compactions += 1;
        }
        previous = len;
    }
    assert!(compactions >= 1);
    assert_eq!(load(dir.path()).unwrap().checkpoint, c);
    // An explicit compaction (the end of a run) leaves the whole state in the snapshot.
    store.compact(&c).unwrap();
    assert_eq!(log_text(dir.path()), "");
    let snapshot: Checkpoint =
        crate::rundir::read_versioned(&dir.path().join(crate::rundir::CHECKPOINT), "checkpoint")
            .unwrap();
    assert_eq!(snapshot, c);
}

#[test]
fn a_log_older_than_its_snapshot_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::new(dir.path());
    let mut c = cp(2);
    store.save(&c).unwrap();
    transitions(&mut c, 0);
    store.save(&c).unwrap();
    let stale = log_text(dir.path());
    // A crash between the new snapshot and emptying the log.
    let fresh = cp(2);
    write_snapshot(dir.path(), &fresh, new_gen(0)).unwrap();
    std::fs::write(dir.path().join(LOG), stale).unwrap();
    let back = load(dir.path()).unwrap();
    assert_eq!(back.checkpoint, fresh);
    assert!(back.warnings.is_empty());
}

#[test]
fn an_old_checkpoint_without_a_log_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let c = cp(2);
    std::fs::write(
        dir.path().join(crate::rundir::CHECKPOINT),
        serde_json::to_vec(&c).unwrap(),
    )
    .unwrap();
    // Even with a log beside it: an older build-helper's snapshot has no generation.
    std::fs::write(dir.path().join(LOG), "garbage\n").unwrap();
    assert_eq!(load(dir.path()).unwrap().checkpoint, c);
}

#[test]
fn bytes_appended_per_transition_do_not_grow_with_the_targets() {
    let per_transition = |n: usize| {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path());
        let mut c = cp(n);
        store.save(&c).unwrap();
        for i in 0..10 {
            transitions(&mut c, i);
            store.save(&c).unwrap();
        }
        log_text(dir.path()).len() / 10
    };
    let (small, big) = (per_transition(3), per_transition(300));
    assert!(big <= small + 16, "{small} B at 3 targets, {big} B at 300");
}
