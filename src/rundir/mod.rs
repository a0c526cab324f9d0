//! The run directory `work/<run>/`: the one module that names, creates, locks, reads and
//! writes a run's files (DESIGN.md "Processes" and "Rooms").
//!
//! - **Names.** A run id names a directory directly under `<tree>/work`: no `/`, no `..`, no
//!   leading `.`, at most 200 bytes, the run ids' alphabet ([`validate_id`]). Commands that
//!   take a run id (`status`, `umount`, `stop`, `attach`, `--resume`) open it through
//!   [`open`], never by joining paths; those that enter its mounts (`shell`, `binhost`)
//!   through [`open_mounted`], which also checks that the run's supervisor is alive in the
//!   run's namespace.
//! - **Unique.** A new run directory is claimed with mkdir(2), which fails when it exists: two
//!   `run`s started in the same second never share one ([`claim`] waits for the next second).
//! - **The lock.** `lock` is flock(2)ed exclusively by the supervisor for its whole life; the
//!   file holds its pid. A run whose lock is held is live ([`live_pid`]); a second supervisor
//!   on it, or a second `run` on a tree with a live run, is refused naming the run and pid.
//!   The kernel drops the lock when the supervisor dies however it dies (kill -9 included).
//! - **Versions.** plan.json and checkpoint.json carry `"format": N` beside their fields
//!   ([`FORMAT`]); a file without it was written by an older build-helper (format 0, same
//!   fields: read), one with a newer format is refused with a message naming the file.
//! - **Checkpoint log.** The checkpoint is a snapshot plus an append-only log of transitions
//!   (`checkpoint.log`, see [`cplog`]); the mount journal likewise (`journal.log`, see
//!   `rundir::journal`). Readers always see the combined state.
//! - **Modes.** The directory and `logs/` are 0700, state files 0600, whatever the umask.
//!
//! Not here: what the checkpoint means (engine), what the journal means (mounts).

pub mod checkpoint;
pub mod cplog;
pub mod events;
pub mod journal;
pub mod layout;
pub mod snaplog;
pub mod sockets;

pub use checkpoint::{consistent, load_checkpoint, save_checkpoint, CheckpointWriter};
pub use layout::*;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::sys::procs;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::plan::Plan;

/// Errors of the run directory; each names the run or file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// A run id that cannot name a directory of `work/`.
    #[error(
        "`{0}` is not a run id (a run id is a directory name under work/, without `/` or `..`); \
         `build-helper status` lists the runs"
    )]
    BadId(String),
    /// No such run.
    #[error("run `{name}` does not exist in {work}; `build-helper status` lists the runs")]
    Unknown {
        /// The id asked for.
        name: String,
        /// `<tree>/work`.
        work: PathBuf,
    },
    /// The run's supervisor is alive.
    #[error(
        "run {run} is live: its supervisor (pid {pid}) holds {lock}; wait for it, or stop it \
         (Ctrl-C in its terminal, or `kill {pid}`) first"
    )]
    Live {
        /// The run id.
        run: String,
        /// The supervisor's pid.
        pid: u32,
        /// The lock file.
        lock: PathBuf,
    },
    /// The run has no mounts to enter.
    #[error(
        "run `{0}` is not mounted: mount its history with `build-helper run STARTER \
         --mount-hist`, or start the run"
    )]
    NotMounted(String),
    /// The run's mounts live in a private namespace whose supervisor is gone (or whose pid
    /// now names another process): nothing may be entered there.
    #[error(
        "run `{run}` is not running (its supervisor {pid} is gone): resume it with \
         `build-helper run STARTER --resume {run}`, or clean up with `build-helper umount {run}`"
    )]
    NotRunning {
        /// The run id.
        run: String,
        /// The pid its mount journal names.
        pid: u32,
    },
    /// A file written by a newer build-helper.
    #[error(
        "{path}: written by a newer build-helper (format {found}; this one reads up to \
         {FORMAT}); use that version, or start a new run"
    )]
    Newer {
        /// The file.
        path: PathBuf,
        /// Its format.
        found: u64,
    },
    /// An unreadable or malformed file.
    #[error("{path}: {why}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        why: String,
    },
    /// I/O on the run directory.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError + '_ {
    move |source| RunDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks that `name` can only name a directory directly under `work/` and is written in
/// the run ids' alphabet: a plan names its run `<primary target name>-<YYYYMMDD-HHMMSS>`, so
/// ASCII letters, digits, `-`, `_`, `.` and `+`; no `/`, no leading `.` (so neither `.` nor
/// `..`), at most 200 bytes.
///
/// Errors: [`RunDirError::BadId`].
pub fn validate_id(name: &str) -> Result<(), RunDirError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    if ok {
        Ok(())
    } else {
        Err(RunDirError::BadId(name.to_string()))
    }
}

/// The directory of the existing run `name` (one holding a plan or a mount journal).
///
/// Errors: [`RunDirError::BadId`], [`RunDirError::Unknown`].
pub fn open(tree: &Path, name: &str) -> Result<PathBuf, RunDirError> {
    validate_id(name)?;
    let dir = work(tree).join(name);
    let meta = std::fs::symlink_metadata(&dir);
    let is_dir = meta.is_ok_and(|m| m.file_type().is_dir());
    if is_dir && (dir.join(PLAN).is_file() || crate::rundir::journal::Journal::path(&dir).is_file())
    {
        Ok(dir)
    } else {
        Err(RunDirError::Unknown {
            name: name.to_string(),
            work: work(tree),
        })
    }
}

/// A run whose mounts a command may enter (`shell`, `binhost`), opened by [`open_mounted`].
#[derive(Debug)]
pub struct Mounted {
    /// The run directory `<tree>/work/<run>`.
    pub dir: PathBuf,
    /// Its mount journal.
    pub journal: crate::rundir::journal::Journal,
    /// The process whose mount namespace holds the mounts: the run's live supervisor, checked
    /// to still hold the run's lock and to be in the namespace the journal recorded; `None`
    /// when the mounts are in the build machine's own namespace (`--mount-hist`).
    pub ns_pid: Option<u32>,
}

impl Mounted {
    /// Checks, after joining [`Mounted::ns_pid`]'s mount namespace, that this process is in
    /// the namespace the journal recorded: the supervisor could have died, and its pid been
    /// reused, between [`open_mounted`] and the join.
    ///
    /// Errors: [`RunDirError::NotRunning`].
    pub fn check_joined(&self, sys: &dyn crate::sys::Sys) -> Result<(), RunDirError> {
        match (self.ns_pid, self.journal.mnt_ns) {
            (Some(pid), Some(ns)) if procs::own_mnt_ns(sys) != Some(ns) => {
                Err(RunDirError::NotRunning {
                    run: id_of(&self.dir),
                    pid,
                })
            }
            _ => Ok(()),
        }
    }
}

/// Opens run `name` of `tree` for entering its mounts: the one check every command that
/// enters a run makes. The id is validated ([`open`]); the run must have a mount journal;
/// mounts made in a private namespace may be entered only while the supervisor that made
/// them is alive there: it holds the run's lock ([`live_pid`] is the journal's pid) and its
/// `/proc/<pid>/ns/mnt` is the namespace the journal recorded. A pid alone could have been
/// reused by any process after the supervisor died, and would then decide where a command
/// runs as root.
///
/// Errors: [`RunDirError::BadId`], [`RunDirError::Unknown`], a malformed journal
/// ([`RunDirError::Bad`]), [`RunDirError::NotMounted`], [`RunDirError::NotRunning`].
pub fn open_mounted(
    sys: &dyn crate::sys::Sys,
    tree: &Path,
    name: &str,
) -> Result<Mounted, RunDirError> {
    use crate::rundir::journal::Journal;
    let dir = open(tree, name)?;
    let journal = Journal::load(&dir)
        .map_err(|why| RunDirError::Bad {
            path: Journal::path(&dir),
            why,
        })?
        .ok_or_else(|| RunDirError::NotMounted(name.to_string()))?;
    if journal.host_namespace {
        return Ok(Mounted {
            dir,
            journal,
            ns_pid: None,
        });
    }
    let pid = journal.pid;
    let holds_lock = live_pid(&dir) == Some(pid);
    let same_ns = journal
        .mnt_ns
        .is_none_or(|ns| sys.mnt_ns_of(pid) == Some(ns));
    if !(holds_lock && same_ns) {
        return Err(RunDirError::NotRunning {
            run: name.to_string(),
            pid,
        });
    }
    Ok(Mounted {
        dir,
        journal,
        ns_pid: Some(pid),
    })
}

/// Every run directory under `<tree>/work` holding a plan, sorted by name (run ids end in
/// their date, so the order is the start order for runs of one starter).
pub fn runs(tree: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(work(tree)) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| validate_id(n).is_ok())
                && p.join(PLAN).is_file()
        })
        .collect();
    out.sort();
    out
}

/// The id (directory name) of a run directory.
pub fn id_of(run_dir: &Path) -> String {
    run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Makes `dir` a directory with mode 0700 (created or existing), whatever the umask.
///
/// Errors: I/O.
pub fn private_dir(dir: &Path) -> Result<(), RunDirError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

/// The supervisor's hold on a run directory: an exclusive flock(2) on `<run>/lock`, released
/// when dropped or when the process dies. Never inherited (close-on-exec).
#[derive(Debug)]
pub struct Lock {
    _file: File,
    dir: PathBuf,
    /// Set by [`Lock::pass_to`]: the lock now belongs to a child too, so dropping this copy
    /// only closes the descriptor.
    handed_over: bool,
}

impl Drop for Lock {
    /// Releases the lock explicitly (LOCK_UN), not only by closing: a process forked by
    /// another thread holds a copy of the descriptor until it execs, and closing ours would
    /// leave the run locked for that moment. A lock handed to a child is only closed.
    fn drop(&mut self) {
        if !self.handed_over {
            // SAFETY: flock on the descriptor this Lock owns.
            unsafe { libc::flock(self._file.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

impl Lock {
    /// The run directory it locks.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lets the process `cmd` starts inherit this lock and returns the descriptor number it
    /// will have: flock(2) locks belong to the open file description, which the child then
    /// shares, so the run is never unlocked between the two processes. Close-on-exec is
    /// cleared in the child only (between fork and exec), so no other process this one starts
    /// meanwhile inherits the lock. The child takes it with [`Lock::adopt`]; this process may
    /// drop its `Lock` once the child runs (dropping it then only closes its descriptor).
    pub fn pass_to(&mut self, cmd: &mut std::process::Command) -> std::os::fd::RawFd {
        self.handed_over = true;
        use std::os::unix::process::CommandExt;
        let fd = self._file.as_raw_fd();
        // SAFETY: fcntl(2) is async-signal-safe; it changes the child's copy of the
        // descriptor table only.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        fd
    }

    /// Takes over the lock of `run_dir` inherited as descriptor `fd` (see
    /// [`Lock::pass_to`]): checks that `fd` is `run_dir`'s lock file and that it holds
    /// the lock, makes it close-on-exec again and writes this process's pid into it.
    ///
    /// Errors: `fd` is not open, is another file, or does not hold the lock
    /// ([`RunDirError::Io`]).
    pub fn adopt(run_dir: &Path, fd: std::os::fd::RawFd) -> Result<Lock, RunDirError> {
        use std::os::fd::FromRawFd;
        use std::os::unix::fs::MetadataExt;
        let path = run_dir.join(LOCK);
        let bad = |what: &str| RunDirError::Io {
            path: path.clone(),
            source: std::io::Error::other(format!("descriptor {fd} {what}")),
        };
        // SAFETY: F_GETFD only queries whether `fd` is open.
        if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(bad("is not open"));
        }
        // SAFETY: `fd` is open and was handed to this process to own (the parent's copy is
        // its own descriptor).
        let file = unsafe { File::from_raw_fd(fd) };
        let (held, on_disk) = (
            file.metadata().map_err(io(&path))?,
            std::fs::metadata(&path).map_err(io(&path))?,
        );
        if (held.dev(), held.ino()) != (on_disk.dev(), on_disk.ino()) {
            return Err(bad("is not the run's lock file"));
        }
        // Converting the lock we share is a no-op; failing means another description holds it.
        if !flock(&file, libc::LOCK_EX).map_err(io(&path))? {
            return Err(bad("does not hold the lock"));
        }
        // SAFETY: as above; sets close-on-exec on our own descriptor.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        Lock::held(file, run_dir, &path)
    }

    /// The lock `file` (of `run_dir`, at `path`) this process now holds: writes its pid.
    fn held(mut file: File, run_dir: &Path, path: &Path) -> Result<Lock, RunDirError> {
        use std::io::{Seek, Write};
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(pid.as_bytes()))
            .map_err(io(path))?;
        Ok(Lock {
            _file: file,
            dir: run_dir.to_path_buf(),
            handed_over: false,
        })
    }
}

fn flock(file: &File, mode: libc::c_int) -> std::io::Result<bool> {
    // SAFETY: flock on a valid descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), mode | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Takes the lock of `run_dir` for this process and writes its pid into it.
///
/// Errors: [`RunDirError::Live`] when another supervisor holds it; I/O.
pub fn lock(run_dir: &Path) -> Result<Lock, RunDirError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = run_dir.join(LOCK);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    if !flock(&file, libc::LOCK_EX).map_err(io(&path))? {
        return Err(RunDirError::Live {
            run: id_of(run_dir),
            pid: read_pid(&path),
            lock: path,
        });
    }
    Lock::held(file, run_dir, &path)
}

/// The pid of the supervisor holding `run_dir`'s lock, `None` when no process holds it (the
/// run ended or its supervisor died).
pub fn live_pid(run_dir: &Path) -> Option<u32> {
    let path = run_dir.join(LOCK);
    let file = File::open(&path).ok()?;
    match flock(&file, libc::LOCK_SH) {
        Ok(false) => Some(read_pid(&path)),
        _ => None,
    }
}

/// The first live run of the tree, as a [`RunDirError::Live`].
pub fn any_live(tree: &Path) -> Option<RunDirError> {
    let dir = std::fs::read_dir(work(tree)).ok()?;
    let mut dirs: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    dirs.into_iter().find_map(|d| {
        live_pid(&d).map(|pid| RunDirError::Live {
            run: id_of(&d),
            pid,
            lock: d.join(LOCK),
        })
    })
}

/// Serialises `run` and `--resume` on one tree while they check for live runs and claim
/// theirs: an exclusive flock on the `<tree>/work` directory itself (no extra file), held
/// until dropped (blocking: the other command holds it for milliseconds).
///
/// Errors: I/O.
pub fn tree_guard(tree: &Path) -> Result<File, RunDirError> {
    let w = work(tree);
    std::fs::create_dir_all(&w).map_err(io(&w))?;
    let file = File::open(&w).map_err(io(&w))?;
    // SAFETY: flock on a valid descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io(&w)(std::io::Error::last_os_error()));
    }
    Ok(file)
}

/// Claims a new, unique run directory: `make(date)` returns the plan for a run date
/// (`YYYYMMDD-HHMMSS`); its run directory is created with mkdir(2), which fails when it
/// exists, in which case the next second's date is tried (up to 5 s). The directory is
/// private (0700) and locked before this returns.
///
/// Errors: whatever `make` returns (boxed as anyhow), I/O.
pub fn claim(make: &mut dyn FnMut(&str) -> anyhow::Result<Plan>) -> anyhow::Result<(Plan, Lock)> {
    for _ in 0..6 {
        let plan = make(&crate::plan::date_now())?;
        let dir = plan.run_dir();
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                private_dir(&dir)?;
                let lock = lock(&dir)?;
                return Ok((plan, lock));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            Err(e) => return Err(io(&dir)(e).into()),
        }
    }
    anyhow::bail!("could not claim a new run directory under work/ within 5 seconds")
}

/// Writes `value` as JSON with `"format": FORMAT` added beside its fields, atomically, mode
/// 0600. `value` must serialise as a JSON object.
///
/// Errors: I/O (the message names the file).
pub fn write_versioned<T: Serialize>(path: &Path, value: &T) -> Result<(), RunDirError> {
    let bytes = encode_versioned(value).map_err(|why| RunDirError::Bad {
        path: path.to_path_buf(),
        why,
    })?;
    crate::fsutil::write_atomic(path, &bytes).map_err(io(path))
}

/// The bytes [`write_versioned`] writes (compact JSON).
///
/// Errors: `value` is not a JSON object.
pub fn encode_versioned<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut v = serde_json::to_value(value).map_err(|e| e.to_string())?;
    let Some(obj) = v.as_object_mut() else {
        return Err("not a JSON object".into());
    };
    obj.insert("format".into(), FORMAT.into());
    serde_json::to_vec(&v).map_err(|e| e.to_string())
}

/// Reads a file written by [`write_versioned`] (or by an older build-helper without
/// `format`), as `what` (for messages: "plan", "checkpoint").
///
/// Errors: missing or unreadable file, malformed JSON, a newer format.
pub fn read_versioned<T: DeserializeOwned>(path: &Path, what: &str) -> Result<T, RunDirError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    decode_versioned(path, what, &bytes)
}

fn decode_versioned<T: DeserializeOwned>(
    path: &Path,
    what: &str,
    bytes: &[u8],
) -> Result<T, RunDirError> {
    let bad = |why: String| RunDirError::Bad {
        path: path.to_path_buf(),
        why,
    };
    let mut v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("malformed {what} ({e})")))?;
    if let Some(obj) = v.as_object_mut() {
        if let Some(f) = obj.remove("format") {
            let found = f
                .as_u64()
                .ok_or_else(|| bad(format!("malformed {what}: `format` is not a number")))?;
            if found > u64::from(FORMAT) {
                return Err(RunDirError::Newer {
                    path: path.to_path_buf(),
                    found,
                });
            }
        }
    }
    serde_json::from_value(v).map_err(|e| bad(format!("malformed {what} ({e})")))
}

/// Loads a run's plan: the one place plan.json is read.
///
/// Errors: missing, malformed or newer plan (names the file).
pub fn load_plan(run_dir: &Path) -> Result<Plan, RunDirError> {
    read_versioned(&run_dir.join(PLAN), "plan")
}

/// Writes a run's plan.
///
/// Errors: I/O.
pub fn save_plan(run_dir: &Path, plan: &Plan) -> Result<(), RunDirError> {
    write_versioned(&run_dir.join(PLAN), plan)
}

#[cfg(test)]
mod tests;
