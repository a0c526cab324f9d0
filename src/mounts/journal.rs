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
//! item 6). Reading replays the log lines of the header's generation (a log of another
//! generation was left before the header was rewritten, and is ignored); a torn last line
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

/// One line of the log.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    format: u32,
    gen: u64,
    mount: PathBuf,
}

impl Journal {
    /// The journal file of a run directory.
    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join(crate::rundir::JOURNAL)
    }

    /// Reads a run's journal; `Ok(None)` when there is none (nothing was mounted).
    ///
    /// Errors: unreadable or malformed file, a newer format, or paths outside `run_dir`
    /// (the message names the file).
    pub fn load(run_dir: &Path) -> Result<Option<Journal>, String> {
        let path = Self::path(run_dir);
        let mut j: Journal = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: malformed mount journal: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        if j.gen != 0 {
            j.mounts.extend(replay(&run_dir.join(LOG), j.gen)?);
        }
        j.written = j.mounts.len();
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

    /// Makes the journal as it is now the one on disk in `run_dir`: the first call writes the
    /// header (and empties the log), later ones append the mount points added since (one
    /// write); `durable` adds the fsyncs (needed once, before a run's first mount: the
    /// journal must survive a crash then).
    ///
    /// Errors: I/O (the message names the file).
    pub fn save(&mut self, run_dir: &Path, durable: bool) -> std::io::Result<()> {
        use std::io::Write;
        let log = run_dir.join(LOG);
        let named = |e: std::io::Error, p: &Path| {
            std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
        };
        if self.gen == 0 {
            let mut j = self.clone();
            j.format = crate::rundir::FORMAT;
            j.gen = crate::rundir::cplog::new_gen(0);
            let bytes = serde_json::to_vec(&j).map_err(std::io::Error::other)?;
            crate::fsutil::replace(&Self::path(run_dir), &bytes, durable)?;
            // After the header: a crash in between leaves a log of another generation.
            open_log(&log)
                .and_then(|f| f.set_len(0))
                .map_err(|e| named(e, &log))?;
            self.gen = j.gen;
            self.format = j.format;
            self.written = self.mounts.len();
            return Ok(());
        }
        if self.written >= self.mounts.len() {
            return Ok(());
        }
        let mut lines = Vec::new();
        for mount in &self.mounts[self.written..] {
            let record = Record {
                format: crate::rundir::FORMAT,
                gen: self.gen,
                mount: mount.clone(),
            };
            serde_json::to_writer(&mut lines, &record).map_err(std::io::Error::other)?;
            lines.push(b'\n');
        }
        let mut f = open_log(&log).map_err(|e| named(e, &log))?;
        f.write_all(&lines).map_err(|e| named(e, &log))?;
        if durable {
            f.sync_data().map_err(|e| named(e, &log))?;
        }
        self.written = self.mounts.len();
        Ok(())
    }

    /// Removes the journal (header and log) once everything is unmounted.
    pub fn remove(run_dir: &Path) -> std::io::Result<()> {
        for path in [Self::path(run_dir), run_dir.join(LOG)] {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

fn open_log(log: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(log)
}

/// The mount points the log `log` of generation `gen` adds (see the module rules).
fn replay(log: &Path, gen: u64) -> Result<Vec<PathBuf>, String> {
    let text = match std::fs::read(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", log.display())),
    };
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    let mut out = Vec::new();
    for (i, raw) in lines.iter().enumerate() {
        let parsed = if raw.ends_with(b"\n") {
            serde_json::from_slice::<Record>(raw).map_err(|e| e.to_string())
        } else {
            Err("no end of line".into())
        };
        let record = match parsed {
            Ok(r) => r,
            // Torn by a power loss mid-append: that mount is in the kernel's table, which
            // teardown reads anyway.
            Err(_) if i + 1 == lines.len() => break,
            Err(why) => {
                return Err(format!(
                    "{}: corrupt mount journal (line {}: {why}); check `findmnt` for what is \
                     still mounted under the run, then remove the journal by hand",
                    log.display(),
                    i + 1
                ))
            }
        };
        if record.format > crate::rundir::FORMAT {
            return Err(format!(
                "{}: written by a newer build-helper (format {}; this one reads up to {}); use \
                 that version to unmount this run",
                log.display(),
                record.format,
                crate::rundir::FORMAT
            ));
        }
        if record.gen != gen {
            if i == 0 {
                break;
            }
            return Err(format!(
                "{}: corrupt mount journal (line {}: generation {} in a log of generation \
                 {gen})",
                log.display(),
                i + 1,
                record.gen
            ));
        }
        out.push(record.mount);
    }
    Ok(out)
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
