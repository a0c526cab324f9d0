//! The event log file of a run, `work/<run>/events.jsonl`: one JSON object per line
//! ([`crate::engine::events::Record`]), appended as things happen.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::engine::events::{Event, Record};

/// An append-only event log.
pub struct EventLog {
    path: PathBuf,
    file: std::fs::File,
    tee: Option<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.path)
            .finish()
    }
}

impl EventLog {
    /// Opens (appends to) `<run_dir>/events.jsonl`, mode 0600 whatever the umask.
    pub fn open(run_dir: &Path) -> std::io::Result<EventLog> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let path = run_dir.join(super::EVENTS);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(EventLog {
            path,
            file,
            tee: None,
        })
    }

    /// Also writes every record to `out` (one JSON object per line, flushed), e.g. stdout
    /// for `build-helper run --events json`, until a write to it fails (its reader is gone).
    pub fn tee(&mut self, out: Box<dyn Write + Send>) {
        self.tee = Some(out);
    }

    /// Appends an event stamped now; returns the record.
    pub fn append(&mut self, event: Event) -> Record {
        let record = Record {
            t_us: crate::sys::now_us(),
            event,
        };
        if let Ok(mut line) = serde_json::to_string(&record) {
            line.push('\n');
            if let Some(out) = &mut self.tee {
                // A reader that went away (EPIPE, EIO on a hung-up terminal) gets nothing
                // more; the run and this file go on.
                if out
                    .write_all(line.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    self.tee = None;
                }
            }
            if let Err(e) = self.file.write_all(line.as_bytes()) {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "build-helper: cannot append to {}: {e}",
                    self.path.display()
                );
            }
        }
        record
    }

    /// Reads every record of a run's log; malformed lines are skipped.
    pub fn read(run_dir: &Path) -> Vec<Record> {
        std::fs::read_to_string(run_dir.join(super::EVENTS))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
