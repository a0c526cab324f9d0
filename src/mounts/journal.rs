//! The mount journal of a run: `work/<run>/journal.json`.
//!
//! It records where the run's mount directory `M` is, which process made the mounts and in
//! which mount namespace, and every mount point in the order it was made. `build-helper
//! umount` reads it after a crash (`kill -9`) to find what may still be mounted. The journal
//! is rewritten atomically after every mount, so it is never behind by more than the mount in
//! progress; teardown itself relies on `/proc/<pid>/mountinfo`, not on the journal's list.
//!
//! It carries a format version (`format`, see `rundir::FORMAT`; a journal without it is an
//! older build-helper's and is read) and the inode of the run's private mount namespace
//! (`mnt_ns`), by which `umount` finds every process still holding the run's mounts. A
//! journal whose paths are not under its own run directory is refused: `umount` never
//! unmounts or kills anything outside the run it was given.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Contents of `journal.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Format version (`rundir::FORMAT` when written; 0 in an older build-helper's file).
    #[serde(default)]
    pub format: u32,
    /// Inode of the mount namespace the mounts were made in (`/proc/<pid>/ns/mnt`); `None`
    /// in an older build-helper's file.
    #[serde(default)]
    pub mnt_ns: Option<u64>,
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
    /// Errors: unreadable or malformed file, a newer format, or paths outside `run_dir`
    /// (the message names the file).
    pub fn load(run_dir: &Path) -> Result<Option<Journal>, String> {
        let path = Self::path(run_dir);
        let j: Journal = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: malformed mount journal: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        if j.format > crate::rundir::FORMAT {
            return Err(format!(
                "{}: written by a newer build-helper (format {}; this one reads up to {}); \
                 use that version to unmount this run",
                path.display(),
                j.format,
                crate::rundir::FORMAT
            ));
        }
        let inside = |p: &Path| {
            p.is_absolute()
                && p.starts_with(run_dir)
                && !p
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
        };
        if !inside(&j.m_dir)
            || !j
                .mounts
                .iter()
                .all(|m| m.starts_with(&j.m_dir) && inside(m))
        {
            return Err(format!(
                "{}: refusing a mount journal whose paths are not under its run directory {}; \
                 it was not written by build-helper: inspect and remove it by hand",
                path.display(),
                run_dir.display()
            ));
        }
        Ok(Some(j))
    }

    /// Writes the journal into `run_dir`, replacing it whole; `durable` adds the fsyncs
    /// (needed once, before a run's first mount: the journal must survive a crash then).
    pub fn save(&self, run_dir: &Path, durable: bool) -> std::io::Result<()> {
        let mut j = self.clone();
        j.format = crate::rundir::FORMAT;
        let bytes = serde_json::to_vec(&j).map_err(std::io::Error::other)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_pointing_outside_its_run_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("work/a-1");
        std::fs::create_dir_all(&run).unwrap();
        let good = Journal {
            m_dir: run.join("M"),
            mounts: vec![run.join("M/m")],
            ..Journal::default()
        };
        good.save(&run, false).unwrap();
        let back = Journal::load(&run).unwrap().unwrap();
        assert_eq!(back.format, crate::rundir::FORMAT);
        for bad in [
            Journal {
                m_dir: "/".into(),
                ..Journal::default()
            },
            Journal {
                m_dir: run.join("M"),
                mounts: vec!["/proc".into()],
                ..Journal::default()
            },
            Journal {
                m_dir: run.join("M/../../.."),
                ..Journal::default()
            },
        ] {
            std::fs::write(Journal::path(&run), serde_json::to_vec(&bad).unwrap()).unwrap();
            let e = Journal::load(&run).unwrap_err();
            assert!(e.contains("not under its run directory"), "{e}");
        }
    }
}
