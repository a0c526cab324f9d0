//! One file kept as a snapshot plus an append-only log of what was added since, so that the
//! bytes written per change do not grow with the size of the whole (issue 9 item 6). Both
//! the checkpoint ([`super::cplog`]) and the mount journal ([`super::journal`]) are kept so.
//!
//! - **Snapshot**: one JSON object, versioned (`"format": N`, [`super::FORMAT`]) and carrying
//!   `"log_gen": G`, the generation of the log that continues it; written whole, atomically
//!   (temp, rename; fsynced when durable). A snapshot without `log_gen` (an older
//!   build-helper's) has no log.
//! - **Log**: one JSON line per record, `{"format":1,"gen":G[,"seq":S],...}` ([`Line`]),
//!   appended with one write(2). Emptied right after each new snapshot.
//! - **Reading** = snapshot + the log records whose `gen` is the snapshot's. A log whose
//!   first record has another `gen` is stale (a crash between writing a new snapshot and
//!   emptying the log) and ignored. The last line may be torn (power loss mid-append):
//!   without its newline, or not parsing, it is ignored with a warning. Any other line that
//!   does not parse, is of a newer format, of another generation, out of sequence (where
//!   records are numbered) or does not fit the snapshot makes the file corrupt: refused,
//!   named with its path and line, never skipped (issue 9 item 3).
//!
//! The rules follow the write-ahead logs of databases (SQLite's WAL, etcd's raft log):
//! append, sync, checkpoint into the main file, truncate.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{RunDirError, FORMAT};

/// One line of a log: the envelope every record carries, and its body's own fields.
#[derive(Debug, Serialize, Deserialize)]
pub struct Line<B> {
    /// Format version of the writer ([`super::FORMAT`]).
    pub format: u32,
    /// Generation of the snapshot this record continues.
    pub gen: u64,
    /// Position in the log, counting from 1 after each snapshot (logs whose records are
    /// numbered: the checkpoint's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The record's own fields.
    #[serde(flatten)]
    pub body: B,
}

/// A snapshot as read back.
#[derive(Debug)]
pub struct Snapshot<T> {
    /// Its value.
    pub value: T,
    /// The generation of the log that continues it (`None`: an older build-helper's
    /// snapshot, which has no log).
    pub gen: Option<u64>,
    /// Its format version (0: an older build-helper's, without one).
    pub format: u32,
}

/// A snapshot file and the log that continues it, with the words their errors use.
#[derive(Debug, Clone)]
pub struct SnapLog {
    /// The snapshot (e.g. `<run>/checkpoint.json`).
    pub snapshot: PathBuf,
    /// The log (e.g. `<run>/checkpoint.log`).
    pub log: PathBuf,
    /// What the snapshot holds, for messages ("checkpoint", "mount journal").
    pub what: &'static str,
    /// What a corrupt log is called ("corrupt checkpoint log").
    pub corrupt: &'static str,
    /// What the user can do about a corrupt log (one sentence).
    pub hint: &'static str,
    /// Whether records are numbered (`seq`) and must follow in order.
    pub sequenced: bool,
}

impl SnapLog {
    /// Reads the snapshot: its value, the generation of its log (`None`: an older
    /// build-helper's snapshot, without a log) and its format (0: an older build-helper's).
    ///
    /// Errors: unreadable (I/O, including a missing file: [`RunDirError::Io`]), malformed
    /// or newer snapshot (names the file).
    pub fn read_snapshot<T: DeserializeOwned>(&self) -> Result<Snapshot<T>, RunDirError> {
        let bytes = std::fs::read(&self.snapshot).map_err(super::io(&self.snapshot))?;
        let head = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
        let field = |name: &str| head.as_ref().and_then(|v| v.get(name)?.as_u64());
        let (gen, format) = (field("log_gen"), field("format"));
        let value = super::decode_versioned(&self.snapshot, self.what, &bytes)?;
        Ok(Snapshot {
            value,
            gen,
            format: format.and_then(|f| u32::try_from(f).ok()).unwrap_or(0),
        })
    }

    /// Replays the log of generation `gen`: calls `apply` with each record's body in order
    /// (see the module rules); returns one warning per ignored record (a torn last line).
    ///
    /// Errors: unreadable log; a record other than the last that does not parse, is newer,
    /// of another generation, out of sequence, or that `apply` refuses (names the file and
    /// line).
    pub fn replay<B: DeserializeOwned>(
        &self,
        gen: u64,
        mut apply: impl FnMut(B) -> Result<(), String>,
    ) -> Result<Vec<String>, RunDirError> {
        let text = match std::fs::read(&self.log) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(super::io(&self.log)(e)),
        };
        let corrupt = |line: usize, why: String| RunDirError::Bad {
            path: self.log.clone(),
            why: format!("{} (line {line}: {why}); {}", self.corrupt, self.hint),
        };
        let mut warnings = Vec::new();
        let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
        for (i, raw) in lines.iter().enumerate() {
            let last = i + 1 == lines.len();
            let parsed = if raw.ends_with(b"\n") {
                serde_json::from_slice::<Line<B>>(raw).map_err(|e| e.to_string())
            } else {
                Err("no end of line".to_string())
            };
            let line = match parsed {
                Ok(l) => l,
                // Torn by a power loss mid-append.
                Err(why) if last => {
                    warnings.push(format!(
                        "{}: ignoring a torn last record (line {}: {why}), written as the run \
                         stopped; the transition it held is lost",
                        self.log.display(),
                        i + 1
                    ));
                    break;
                }
                Err(why) => return Err(corrupt(i + 1, why)),
            };
            if line.format > FORMAT {
                return Err(RunDirError::Newer {
                    path: self.log.clone(),
                    found: u64::from(line.format),
                });
            }
            if line.gen != gen {
                if i == 0 {
                    // A log left from before the snapshot (crash between the two): stale.
                    break;
                }
                return Err(corrupt(
                    i + 1,
                    format!("generation {} in a log of generation {gen}", line.gen),
                ));
            }
            if self.sequenced {
                // Every earlier line was applied: records count from 1.
                let expect = i as u64 + 1;
                if line.seq != Some(expect) {
                    let found = line.seq.map_or("no number".to_string(), |s| s.to_string());
                    return Err(corrupt(
                        i + 1,
                        format!("record {found} where {expect} was expected"),
                    ));
                }
            }
            apply(line.body).map_err(|why| corrupt(i + 1, why))?;
        }
        Ok(warnings)
    }

    /// Writes `value` as the snapshot of generation `gen` (versioned, mode 0600) and empties
    /// the log (the log is emptied after the snapshot is in place: a crash in between leaves
    /// a log of the old generation, which is ignored). Durable when `durable` (fsyncs).
    /// Returns the snapshot's length in bytes.
    ///
    /// Errors: I/O (names the file).
    pub fn write_snapshot<T: Serialize>(
        &self,
        value: &T,
        gen: u64,
        durable: bool,
    ) -> Result<usize, RunDirError> {
        let bad = |e: serde_json::Error| RunDirError::Bad {
            path: self.snapshot.clone(),
            why: e.to_string(),
        };
        let mut v = serde_json::to_value(value).map_err(bad)?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("format".into(), FORMAT.into());
            obj.insert("log_gen".into(), gen.into());
        }
        let bytes = serde_json::to_vec(&v).map_err(bad)?;
        crate::fsutil::replace(&self.snapshot, &bytes, durable)
            .map_err(super::io(&self.snapshot))?;
        self.open_log()?.set_len(0).map_err(super::io(&self.log))?;
        Ok(bytes.len())
    }

    /// Encodes `records` of generation `gen` as log lines (`seq` numbered from `first_seq`
    /// where the log is sequenced).
    ///
    /// Errors: a record that cannot be encoded (names the log).
    pub fn encode<B: Serialize>(
        &self,
        gen: u64,
        first_seq: u64,
        records: impl IntoIterator<Item = B>,
    ) -> Result<Vec<u8>, RunDirError> {
        let mut out = Vec::new();
        for (n, body) in records.into_iter().enumerate() {
            let line = Line {
                format: FORMAT,
                gen,
                seq: self.sequenced.then_some(first_seq + n as u64),
                body,
            };
            serde_json::to_writer(&mut out, &line).map_err(|e| RunDirError::Bad {
                path: self.log.clone(),
                why: e.to_string(),
            })?;
            out.push(b'\n');
        }
        Ok(out)
    }

    /// Appends encoded lines to the log with one write(2) (fdatasync'd when `durable`),
    /// through `file`, opened (append, 0600) on first use and kept.
    ///
    /// Errors: I/O (names the file).
    pub fn append(
        &self,
        file: &mut Option<std::fs::File>,
        lines: &[u8],
        durable: bool,
    ) -> Result<(), RunDirError> {
        if file.is_none() {
            *file = Some(self.open_log()?);
        }
        if let Some(f) = file {
            f.write_all(lines)
                .and_then(|_| if durable { f.sync_data() } else { Ok(()) })
                .map_err(super::io(&self.log))?;
        }
        Ok(())
    }

    /// Removes snapshot and log (a missing one is no error).
    ///
    /// Errors: I/O other than a missing file (names the file).
    pub fn remove(&self) -> Result<(), RunDirError> {
        for path in [&self.snapshot, &self.log] {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(super::io(path)(e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn open_log(&self) -> Result<std::fs::File, RunDirError> {
        open_append(&self.log)
    }
}

/// Opens `path` for appending, creating it with mode 0600.
fn open_append(path: &Path) -> Result<std::fs::File, RunDirError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(super::io(path))
}
