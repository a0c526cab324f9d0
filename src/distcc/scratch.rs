//! The helper's scratch directory `$TMPDIR/build-helper-distcc-XXXXXX` (its mount directory
//! `M` and mount journal): made at start, held by an flock(2) on its `lock` file for the
//! helper's whole life, and removed at every exit the helper controls (a stop signal, distccd
//! ending, an error). One left by a helper killed with SIGKILL is removed by the next helper
//! at its start ([`remove_stale`]): its lock is free then (the kernel drops it with the
//! process), and its mounts went with that helper's private mount namespace.
//!
//! Never removed: a directory whose lock is held (a live helper), one with anything mounted
//! below it in this namespace, or a link. A directory without a lock file (an older
//! build-helper's) only when the helper its mount journal names is gone, or, without a
//! journal, once it is older than a minute (a helper may be between making it and locking
//! it).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The name prefix of every helper's scratch directory.
pub const PREFIX: &str = "build-helper-distcc-";

/// The lock file's name inside the directory.
const LOCK: &str = "lock";

/// How old a directory without a lock file must be before it counts as stale.
const UNLOCKED_GRACE: Duration = Duration::from_secs(60);

/// A locked scratch directory, removed when dropped (unless [`Scratch::keep`] was called).
#[derive(Debug)]
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
    _lock: File,
}

impl Scratch {
    /// Makes and locks a new scratch directory under the temporary directory ($TMPDIR, else
    /// /tmp).
    ///
    /// Errors: I/O (the message names the directory).
    pub fn new() -> anyhow::Result<Scratch> {
        use anyhow::Context;
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir()
            .context("creating the helper's mount directory")?;
        let path = dir.path().join(LOCK);
        let lock = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("locking {}", path.display()));
        }
        Ok(Scratch {
            dir: Some(dir),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }

    /// Leaves the directory in place (something may still be mounted below it); returns it.
    pub fn keep(mut self) -> PathBuf {
        match self.dir.take() {
            Some(d) => d.keep(),
            None => PathBuf::new(),
        }
    }
}

/// Whether anything is mounted at or below `dir` in this mount namespace
/// (`/proc/self/mountinfo`, proc(5); unreadable: assumed yes).
fn has_mounts(dir: &Path) -> bool {
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(info) => !crate::mounts::mounts_under(&info, dir).is_empty(),
        Err(_) => true,
    }
}

/// Whether `dir` is a stale scratch directory (see the module doc).
fn is_stale(sys: &dyn crate::sys::Sys, dir: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return false;
    };
    if !meta.is_dir() {
        return false;
    }
    match File::open(dir.join(LOCK)) {
        Ok(f) => {
            // SAFETY: flock on a descriptor this function owns; unlocked when `f` closes.
            let got = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            got == 0
        }
        // Made by a build-helper without the lock: its mount journal names the helper.
        Err(_) => match crate::rundir::journal::Journal::load(dir) {
            Ok(Some(j)) => !sys.alive(j.pid),
            Ok(None) => meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > UNLOCKED_GRACE),
            Err(_) => false,
        },
    }
}

/// Removes the stale scratch directories of helpers that died under `tmp` (see the module
/// doc); returns those removed, and those that could not be (with why).
pub fn remove_stale(sys: &dyn crate::sys::Sys, tmp: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let (mut removed, mut failed) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return (removed, failed);
    };
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let dir = e.path();
        if !is_stale(sys, &dir) || has_mounts(&dir) {
            continue;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => removed.push(dir),
            Err(err) => failed.push(format!("{}: {err}", dir.display())),
        }
    }
    (removed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_helpers_directory_is_removed_and_a_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dead = tmp.path().join(format!("{PREFIX}dead"));
        std::fs::create_dir_all(dead.join("M/u")).unwrap();
        std::fs::write(dead.join(LOCK), b"").unwrap();
        let live = tmp.path().join(format!("{PREFIX}live"));
        std::fs::create_dir(&live).unwrap();
        let held = File::create(live.join(LOCK)).unwrap();
        // SAFETY: flock on a descriptor the test owns.
        assert_eq!(
            unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
            0
        );
        let young = tmp.path().join(format!("{PREFIX}young"));
        std::fs::create_dir(&young).unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, tmp.path().join(format!("{PREFIX}link"))).unwrap();
        let (removed, failed) = remove_stale(&crate::sys::LinuxSys, tmp.path());
        assert_eq!(removed, [dead]);
        assert!(failed.is_empty(), "{failed:?}");
        assert!(live.is_dir() && young.is_dir() && outside.is_dir());
    }

    #[test]
    fn the_scratch_directory_goes_when_dropped_and_stays_when_kept() {
        let s = Scratch::new().unwrap();
        let p = s.path().to_path_buf();
        assert!(
            !is_stale(&crate::sys::LinuxSys, &p),
            "locked while it lives"
        );
        drop(s);
        assert!(!p.exists());
        let s = Scratch::new().unwrap();
        let kept = s.keep();
        assert!(kept.is_dir());
        assert!(
            is_stale(&crate::sys::LinuxSys, &kept),
            "unlocked once its helper is gone"
        );
        std::fs::remove_dir_all(kept).unwrap();
    }
}
