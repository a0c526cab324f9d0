//! The mount journal of a run: `work/<run>/journal.json`.
//!
//! It records where the run's mount directory `M` is, which process made the mounts and in
//! which mount namespace, and every mount point in the order it was made. `build-helper
//! umount` reads it after a crash (`kill -9`) to find what may still be mounted; teardown
//! itself relies on `/proc/<pid>/mountinfo`, not on the journal's list.
//!
//! On disk it is a header, `journal.json` (written whole once, before a run's first mount,
//! with `"log_gen": G`), and an append-only log, `journal.log`: one line
//! `{"format":1,"gen":G,"mount":"<path>"}` per mount point, appended after each batch of
//! mounts, so the bytes written per mount do not grow with the number of targets (issue 9
//! item 6). It is kept as the checkpoint is ([`super::snaplog`], the rules of reading and
//! writing): reading replays the log lines of the header's generation; a torn last line
//! (power loss mid-append) is ignored, any other line that does not parse is a corrupt
//! journal named with its path. A `journal.json` without `log_gen` (an older build-helper's)
//! holds its whole list.
//!
//! It carries a format version (`format`, see `rundir::FORMAT`; a journal without it is an
//! older build-helper's and is read) and the inode of the run's private mount namespace
//! (`mnt_ns`), by which `umount` finds every process still holding the run's mounts. A
//! journal whose paths are not under its own run directory is refused: `umount` never
//! unmounts or kills anything outside the run it was given.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::layout::{new_gen, FORMAT};
use super::snaplog::SnapLog;
use super::RunDirError;

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
    /// Generation of the log that continues the header (0: no header written yet by this
    /// process; absent in an older build-helper's file).
    #[serde(default, rename = "log_gen", skip_serializing_if = "is_zero")]
    pub gen: u64,
    /// How many of `mounts` this process has on disk (in the header or the log); not stored.
    #[serde(skip)]
    pub written: usize,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// The log's file name inside the run directory.
pub const LOG: &str = "journal.log";

/// The body of one line of the log.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    mount: PathBuf,
}

/// The journal's header and log in `run_dir`.
fn files(run_dir: &Path) -> SnapLog {
    SnapLog {
        snapshot: Journal::path(run_dir),
        log: run_dir.join(LOG),
        what: "mount journal",
        corrupt: "corrupt mount journal",
        hint: "check `findmnt` for what is still mounted under the run, then remove the \
               journal by hand",
        sequenced: false,
    }
}

/// A journal error as the commands show it: the message, naming the file.
fn message(e: RunDirError) -> String {
    match e {
        RunDirError::Newer { path, found } => format!(
            "{}: written by a newer build-helper (format {found}; this one reads up to \
             {FORMAT}); use that version to unmount this run",
            path.display()
        ),
        e => e.to_string(),
    }
}

impl Journal {
    /// The journal file of a run directory.
    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join(crate::rundir::layout::JOURNAL)
    }

    /// Reads a run's journal; `Ok(None)` when there is none (nothing was mounted).
    ///
    /// Errors: unreadable or malformed file, a newer format, or paths outside `run_dir`
    /// (the message names the file).
    pub fn load(run_dir: &Path) -> Result<Option<Journal>, String> {
        let files = files(run_dir);
        let snapshot = match files.read_snapshot::<Journal>() {
            Ok(read) => read,
            Err(RunDirError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(None)
            }
            Err(e) => return Err(message(e)),
        };
        let mut j = snapshot.value;
        j.format = snapshot.format;
        if let Some(gen) = snapshot.gen {
            let mut added = Vec::new();
            files
                .replay(gen, |r: Record| {
                    added.push(r.mount);
                    Ok(())
                })
                .map_err(message)?;
            j.mounts.extend(added);
            j.gen = gen;
        }
        j.written = j.mounts.len();
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
                files.snapshot.display(),
                run_dir.display()
            ));
        }
        Ok(Some(j))
    }

    /// Makes the journal as it is now the one on disk in `run_dir`: the first call writes the
    /// header (and empties the log), later ones append the mount points added since (one
    /// write); `durable` adds the fsyncs (needed once, before a run's first mount: the
    /// journal must survive a crash then).
    ///
    /// Errors: I/O (the message names the file).
    pub fn save(&mut self, run_dir: &Path, durable: bool) -> std::io::Result<()> {
        let files = files(run_dir);
        let io = |e: RunDirError| std::io::Error::other(e.to_string());
        if self.gen == 0 {
            let gen = new_gen(0);
            files.write_snapshot(&*self, gen, durable).map_err(io)?;
            self.gen = gen;
            self.format = FORMAT;
            self.written = self.mounts.len();
            return Ok(());
        }
        if self.written >= self.mounts.len() {
            return Ok(());
        }
        let lines = files
            .encode(
                self.gen,
                0,
                self.mounts[self.written..]
                    .iter()
                    .map(|m| Record { mount: m.clone() }),
            )
            .map_err(io)?;
        files.append(&mut None, &lines, durable).map_err(io)?;
        self.written = self.mounts.len();
        Ok(())
    }

    /// Removes the journal (header and log) once everything is unmounted.
    ///
    /// Errors: I/O other than a missing file (names the file).
    pub fn remove(run_dir: &Path) -> std::io::Result<()> {
        files(run_dir)
            .remove()
            .map_err(|e| std::io::Error::other(e.to_string()))
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
        let mut good = Journal {
            m_dir: run.join("M"),
            mounts: vec![run.join("M/m")],
            ..Journal::default()
        };
        good.save(&run, false).unwrap();
        let back = Journal::load(&run).unwrap().unwrap();
        assert_eq!(back.format, crate::rundir::layout::FORMAT);
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

    fn journal(run: &Path) -> Journal {
        Journal {
            m_dir: run.join("M"),
            pid: 7,
            ..Journal::default()
        }
    }

    #[test]
    fn the_log_adds_each_mount_once_and_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let mut j = journal(run);
        j.save(run, true).unwrap();
        for batch in 0..3 {
            for k in 0..4 {
                j.mounts.push(run.join(format!("M/t{batch}/{k}")));
            }
            j.save(run, false).unwrap();
            j.save(run, false).unwrap();
            let back = Journal::load(run).unwrap().unwrap();
            assert_eq!(back.mounts, j.mounts);
        }
        assert_eq!(
            std::fs::read_to_string(run.join(LOG))
                .unwrap()
                .lines()
                .count(),
            12,
            "one line per mount, none twice"
        );
        // The header is written once: later mounts only append.
        let header: serde_json::Value =
            serde_json::from_slice(&std::fs::read(Journal::path(run)).unwrap()).unwrap();
        assert_eq!(header["mounts"], serde_json::json!([]));
        // A journal loaded back and saved again appends nothing twice.
        let mut back = Journal::load(run).unwrap().unwrap();
        back.save(run, false).unwrap();
        assert_eq!(Journal::load(run).unwrap().unwrap().mounts, j.mounts);
        Journal::remove(run).unwrap();
        assert!(!run.join(LOG).exists() && !Journal::path(run).exists());
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_a_bad_middle_line_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let mut j = journal(run);
        j.save(run, true).unwrap();
        j.mounts = vec![run.join("M/a"), run.join("M/b"), run.join("M/c")];
        j.save(run, false).unwrap();
        let text = std::fs::read_to_string(run.join(LOG)).unwrap();
        std::fs::write(run.join(LOG), &text[..text.len() - 5]).unwrap();
        assert_eq!(
            Journal::load(run).unwrap().unwrap().mounts,
            [run.join("M/a"), run.join("M/b")]
        );
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(
            run.join(LOG),
            format!("{}\nnot json\n{}\n", lines[0], lines[2]),
        )
        .unwrap();
        let e = Journal::load(run).unwrap_err();
        assert!(
            e.contains("journal.log")
                && e.contains("corrupt mount journal")
                && e.contains("line 2"),
            "{e}"
        );
        // A mount point outside the run, added through the log, is refused like one in the header.
        let mut evil = serde_json::from_str::<serde_json::Value>(lines[0]).unwrap();
        evil["mount"] = "/proc".into();
        std::fs::write(run.join(LOG), format!("{evil}\n")).unwrap();
        let e = Journal::load(run).unwrap_err();
        assert!(e.contains("not under its run directory"), "{e}");
    }

    #[test]
    fn an_older_journal_without_a_log_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let old = serde_json::json!({
            "m_dir": run.join("M"), "pid": 3, "host_namespace": false,
            "mounts": [run.join("M/m")]
        });
        std::fs::write(Journal::path(run), old.to_string()).unwrap();
        std::fs::write(run.join(LOG), "stale\n").unwrap();
        assert_eq!(
            Journal::load(run).unwrap().unwrap().mounts,
            [run.join("M/m")]
        );
    }
}
