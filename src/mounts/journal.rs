//! The mount journal of a run: `work/<run>/journal.json`.
//!
//! It records where the run's mount directory `M` is, which process made the mounts and in
//! which mount namespace, and every mount point in the order it was made. `build-helper
//! umount` reads it after a crash (`kill -9`) to find what may still be mounted. The journal
//! is rewritten atomically after every mount, so it is never behind by more than the mount in
//! progress; teardown itself relies on `/proc/<pid>/mountinfo`, not on the journal's list.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Contents of `journal.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// The run's mount directory `M` (absolute).
    pub m_dir: PathBuf,
    /// The process that made the mounts.
    pub pid: u32,
    /// True when the mounts were made in the build machine's own mount namespace
    /// (`--mount-hist`), false for a run's private namespace.
    pub host_namespace: bool,
    /// Mount points in the order they were made.
    pub mounts: Vec<PathBuf>,
}

impl Journal {
    /// The journal file of a run directory.
    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join("journal.json")
    }

    /// Reads a run's journal; `Ok(None)` when there is none (nothing was mounted).
    ///
    /// Errors: unreadable or malformed file (message names it).
    pub fn load(run_dir: &Path) -> Result<Option<Journal>, String> {
        let path = Self::path(run_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: malformed mount journal: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the journal into `run_dir`, replacing it whole; `durable` adds the fsyncs
    /// (needed once, before a run's first mount: the journal must survive a crash then).
    pub fn save(&self, run_dir: &Path, durable: bool) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::fsutil::replace(&Self::path(run_dir), &bytes, durable)
    }

    /// Removes the journal once everything is unmounted.
    pub fn remove(run_dir: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(Self::path(run_dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
