use super::*;
use crate::engine::Checkpoint;

#[test]
fn run_ids_with_slashes_dots_or_nothing_are_refused() {
    for bad in ["", "..", ".", "../x", "a/b", ".hidden", "/etc"] {
        assert!(
            matches!(validate_id(bad), Err(RunDirError::BadId(_))),
            "{bad:?}"
        );
    }
    validate_id("demo-a-20260101-120000").unwrap();
}

#[test]
fn open_refuses_escapes_and_unknown_runs() {
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("work/a-1")).unwrap();
    std::fs::write(tree.path().join("work/a-1/plan.json"), b"{}").unwrap();
    assert!(open(tree.path(), "a-1").is_ok());
    assert!(matches!(
        open(tree.path(), "../work/a-1"),
        Err(RunDirError::BadId(_))
    ));
    assert!(matches!(
        open(tree.path(), "b-2"),
        Err(RunDirError::Unknown { .. })
    ));
}

#[test]
fn a_held_lock_makes_the_run_live_and_refuses_a_second_holder() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(live_pid(dir.path()), None);
    let held = lock(dir.path()).unwrap();
    // flock locks belong to the open file description: a second open is a second holder.
    match lock(dir.path()) {
        Err(RunDirError::Live { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("expected Live, got {other:?}"),
    }
    assert_eq!(live_pid(dir.path()), Some(std::process::id()));
    let tree_live = any_live(dir.path().parent().unwrap());
    drop(tree_live);
    drop(held);
    assert_eq!(live_pid(dir.path()), None);
    lock(dir.path()).unwrap();
}

#[test]
fn lock_file_is_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: umask only changes this process's file creation mask.
    let old = unsafe { libc::umask(0) };
    let _l = lock(dir.path()).unwrap();
    save_checkpoint(dir.path(), &sample_cp()).unwrap();
    unsafe { libc::umask(old) };
    for f in [LOCK, crate::rundir::CHECKPOINT] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}

fn sample_cp() -> Checkpoint {
    serde_json::from_value(serde_json::json!({
        "run_id": "a-1", "run_steps": [], "toolchain_ready": [], "targets": [], "finished": false
    }))
    .unwrap()
}

#[test]
fn versioned_files_round_trip_and_old_files_without_format_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.json");
    write_versioned(&path, &sample_cp()).unwrap();
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(raw["format"], FORMAT);
    let back: Checkpoint = read_versioned(&path, "checkpoint").unwrap();
    assert_eq!(back, sample_cp());
    // An older build-helper wrote the same fields without `format`.
    std::fs::write(&path, serde_json::to_vec(&sample_cp()).unwrap()).unwrap();
    let old: Checkpoint = read_versioned(&path, "checkpoint").unwrap();
    assert_eq!(old, sample_cp());
}

#[test]
fn a_newer_format_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.json");
    let mut v = serde_json::to_value(sample_cp()).unwrap();
    v["format"] = 99.into();
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let err = read_versioned::<Checkpoint>(&path, "checkpoint").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RunDirError::Newer { found: 99, .. }), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn a_corrupt_checkpoint_is_named_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("checkpoint.json"),
        b"{\"run_id\": \"a-1\", tru",
    )
    .unwrap();
    let msg = load_checkpoint(dir.path(), None).unwrap_err().to_string();
    assert!(
        msg.contains("checkpoint.json") && msg.contains("malformed checkpoint"),
        "{msg}"
    );
}

#[test]
fn an_inherited_lock_is_adopted_without_ever_being_released() {
    let dir = tempfile::tempdir().unwrap();
    let mut lock = super::lock(dir.path()).unwrap();
    let mut cmd = std::process::Command::new("true");
    let fd = lock.pass_to(&mut cmd);
    // What the child has: another descriptor of the same open file (close-on-exec here, so
    // that processes other tests start meanwhile do not inherit it).
    // SAFETY: duplicates a descriptor the Lock owns.
    let inherited = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    assert!(inherited >= 0);
    drop(lock);
    assert!(
        live_pid(dir.path()).is_some(),
        "dropping the parent's copy kept the lock"
    );
    let adopted = Lock::adopt(dir.path(), inherited).unwrap();
    assert_eq!(live_pid(dir.path()), Some(std::process::id()));
    assert!(matches!(
        super::lock(dir.path()),
        Err(RunDirError::Live { .. })
    ));
    drop(adopted);
    assert_eq!(live_pid(dir.path()), None);
}

#[test]
fn adopting_a_descriptor_that_is_not_the_held_lock_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _held = super::lock(dir.path()).unwrap();
    let other = std::fs::File::create(dir.path().join("other")).unwrap();
    let e = Lock::adopt(dir.path(), other.as_raw_fd()).unwrap_err();
    std::mem::forget(other); // adopt took the descriptor over (and closed it)
    assert!(e.to_string().contains("is not the run's lock file"), "{e}");
    // The lock file itself, opened again while another open file holds the lock.
    let again = std::fs::File::open(dir.path().join(LOCK)).unwrap();
    let e = Lock::adopt(dir.path(), again.as_raw_fd()).unwrap_err();
    std::mem::forget(again);
    assert!(e.to_string().contains("does not hold the lock"), "{e}");
    let e = Lock::adopt(dir.path(), 9999).unwrap_err();
    assert!(e.to_string().contains("is not open"), "{e}");
}

/// A run directory `work/a-1` with a plan and a mount journal naming `pid` in the mount
/// namespace `ns`, made in a private namespace.
fn mounted_run(tree: &Path, pid: u32, ns: Option<u64>) -> PathBuf {
    let dir = tree.join("work/a-1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(PLAN), b"{}").unwrap();
    let mut j = crate::rundir::journal::Journal {
        m_dir: dir.join("M"),
        pid,
        mnt_ns: ns,
        host_namespace: false,
        ..Default::default()
    };
    j.save(&dir, false).unwrap();
    dir
}

#[test]
fn run_ids_outside_the_run_id_alphabet_are_refused() {
    for bad in ["a b", "a\nb", "a\0b", "a;b", "a*", "ä-1"] {
        assert!(
            matches!(validate_id(bad), Err(RunDirError::BadId(_))),
            "{bad:?}"
        );
    }
    validate_id("rpi4b_x.y+z-20260101-120000").unwrap();
}

#[test]
fn entering_needs_a_journal_and_a_valid_id() {
    let tree = tempfile::tempdir().unwrap();
    assert!(matches!(
        open_mounted(&crate::sys::LinuxSys, tree.path(), "../x"),
        Err(RunDirError::BadId(_))
    ));
    std::fs::create_dir_all(tree.path().join("work/a-1")).unwrap();
    std::fs::write(tree.path().join("work/a-1/plan.json"), b"{}").unwrap();
    assert!(matches!(
        open_mounted(&crate::sys::LinuxSys, tree.path(), "a-1"),
        Err(RunDirError::NotMounted(_))
    ));
}

#[test]
fn a_dead_supervisors_reused_pid_is_not_entered() {
    let tree = tempfile::tempdir().unwrap();
    // The journal's pid now belongs to an unrelated process in this very namespace, and no
    // one holds the run's lock: the supervisor that made the mounts is gone.
    let mut other = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    mounted_run(
        tree.path(),
        other.id(),
        crate::sys::procs::linux::mnt_ns(other.id()),
    );
    let got = open_mounted(&crate::sys::LinuxSys, tree.path(), "a-1");
    let _ = other.kill();
    let _ = other.wait();
    match got {
        Err(e @ RunDirError::NotRunning { .. }) => {
            assert!(e.to_string().contains("build-helper umount a-1"), "{e}")
        }
        other => panic!("expected NotRunning, got {other:?}"),
    }
}

#[test]
fn a_live_supervisor_is_entered_only_in_the_namespace_it_recorded() {
    let tree = tempfile::tempdir().unwrap();
    let me = std::process::id();
    let dir = mounted_run(tree.path(), me, procs::own_mnt_ns(&crate::sys::LinuxSys));
    let _held = lock(&dir).unwrap();
    let m = open_mounted(&crate::sys::LinuxSys, tree.path(), "a-1").unwrap();
    assert_eq!(m.ns_pid, Some(me));
    // Joined (this process is already there): the namespace is the journal's.
    m.check_joined(&crate::sys::LinuxSys).unwrap();
    let mut moved = m;
    moved.journal.mnt_ns = procs::own_mnt_ns(&crate::sys::LinuxSys).map(|n| n + 1);
    assert!(
        matches!(
            moved.check_joined(&crate::sys::LinuxSys),
            Err(RunDirError::NotRunning { .. })
        ),
        "a pid reused between the check and the join lands in another namespace"
    );
    // The same pid holding the lock, in another namespace than the journal's.
    mounted_run(
        tree.path(),
        me,
        procs::own_mnt_ns(&crate::sys::LinuxSys).map(|n| n + 1),
    );
    assert!(matches!(
        open_mounted(&crate::sys::LinuxSys, tree.path(), "a-1"),
        Err(RunDirError::NotRunning { .. })
    ));
}
