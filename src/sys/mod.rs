//! The system-call seam: every mount, unmount and loop-device operation of the tool, reading
//! a mount table (this process's or another's), entering (unshare) or joining (setns) a mount
//! namespace, and starting a process chrooted into an environment (a step, a rescue shell,
//! the archive's in-environment squashfs tool, binhost indexing, `distcc-helper`'s distccd,
//! the `shell` command: [`chroot`]) go through the [`Sys`] trait, injected by the caller: the
//! binary's `main` creates one [`LinuxSys`] and hands it down to every command.
//!
//! [`LinuxSys`] performs the real calls (root only); [`RecordingSys`] records them, keeps a
//! simulated mount table and can be told to fail a given mount, unmount or chroot spawn, so
//! that mount plans, teardown order, a mount failing half-way and how a step is started are
//! unit-tested without root. The model is youki's `Syscall` trait
//! (`crates/libcontainer/src/syscall/`).

pub mod chroot;
pub mod loopdev;
pub mod procs;
pub mod pty;

pub use chroot::{ChrootCall, ChrootCommand, Group, Spawned};

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Microseconds since the Unix epoch, the wall clock every record of a run is stamped with
/// (0 before 1970). The engine never reads it: time comes in with its inputs.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Mount flags we use, a small subset of `MS_*` (mount(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct MountFlags {
    /// `MS_BIND`.
    pub bind: bool,
    /// `MS_REC` (with `bind`: rbind).
    pub recursive: bool,
    /// `MS_RDONLY`.
    pub readonly: bool,
}

/// One `mount(2)` call, as the seam receives it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountCall {
    /// Source path or device name (`proc`, `tmpfs`, `overlay`, a loop device...).
    pub source: String,
    /// Absolute mount point.
    pub target: PathBuf,
    /// Filesystem type; `None` for binds.
    pub fstype: Option<String>,
    /// Flags.
    pub flags: MountFlags,
    /// Filesystem-specific options (`lowerdir=...`, `size=30G`).
    pub data: Option<String>,
}

/// Errors of the seam. Each carries the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// mount(2) failed.
    #[error("cannot mount {source_name} on {target} (type {fstype}, options {data}): {errno}")]
    Mount {
        /// Source.
        source_name: String,
        /// Mount point.
        target: PathBuf,
        /// Type or `bind`.
        fstype: String,
        /// Options or `-`.
        data: String,
        /// The error number.
        errno: nix::Error,
    },
    /// umount2(2) failed.
    #[error("cannot unmount {target}: {errno}")]
    Umount {
        /// Mount point.
        target: PathBuf,
        /// The error number.
        errno: nix::Error,
    },
    /// unshare(2) or setns(2) of a mount namespace failed.
    #[error("cannot {what}: {errno}")]
    Namespace {
        /// What was tried (`create a private mount namespace`, `join /proc/N/ns/mnt`).
        what: String,
        /// The error number.
        errno: nix::Error,
    },
    /// The mount table could not be read.
    #[error("cannot read the mount table {path}: {reason}")]
    MountTable {
        /// The file read.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A chrooted process could not be started (fork, chroot, exec).
    #[error("cannot start {program} chrooted in {root}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The root.
        root: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// kill(2) failed (ESRCH: no such process; EPERM: not allowed).
    #[error("cannot send {signal} to {whom} {pid}: {errno}")]
    Signal {
        /// `process` or `process group`.
        whom: &'static str,
        /// The pid or process group id.
        pid: u32,
        /// The signal.
        signal: nix::sys::signal::Signal,
        /// The error number.
        errno: nix::Error,
    },
    /// Setting up a loop device failed.
    #[error("cannot attach {file} to a loop device: {reason}")]
    Loop {
        /// The image file.
        file: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Mount propagation types (mount_namespaces(7), "Shared subtrees").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// `MS_PRIVATE`: events neither received nor sent.
    Private,
    /// `MS_SLAVE`: events received from the master, never sent back.
    Slave,
}

/// The seam. Implementations must be usable from several threads.
pub trait Sys: Send + Sync {
    /// Changes the propagation type of the mount at `target` (and its submounts when
    /// `recursive`), as `mount --make-[r]private|[r]slave` does.
    fn set_propagation(
        &self,
        target: &Path,
        kind: Propagation,
        recursive: bool,
    ) -> Result<(), SysError>;
    /// mount(2).
    fn mount(&self, call: &MountCall) -> Result<(), SysError>;
    /// umount2(2); `detach` adds `MNT_DETACH` (lazy), used only as a last resort.
    fn umount(&self, target: &Path, detach: bool) -> Result<(), SysError>;
    /// Mounts the filesystem image `file` (e.g. a squashfs history) read-only on `target`
    /// through a loop device with autoclear set, so the device is freed with the mount.
    fn mount_image(&self, file: &Path, target: &Path, fstype: &str) -> Result<(), SysError>;
    /// The mount table of this process's namespace, in `/proc/self/mountinfo` format
    /// (proc(5)).
    fn mount_table(&self) -> Result<String, SysError>;
    /// The mount table of the mount namespace of process `pid`, as [`Sys::mount_table`]
    /// (`/proc/PID/mountinfo`).
    fn mount_table_of(&self, pid: u32) -> Result<String, SysError>;
    /// unshare(2) with `CLONE_NEWNS`: this process gets a private copy of the mount
    /// namespace. Must be called while single-threaded.
    fn unshare_mount_ns(&self) -> Result<(), SysError>;
    /// setns(2) into the mount namespace of process `pid`. Must be called while
    /// single-threaded.
    fn join_mount_ns(&self, pid: u32) -> Result<(), SysError>;
    /// Starts `cmd` chrooted into its root ([`ChrootCommand`]).
    ///
    /// Errors: [`SysError::Spawn`] (no such program in the root, not root, fork failed).
    fn spawn_chrooted(&self, cmd: ChrootCommand) -> Result<Box<dyn Spawned>, SysError>;
    /// Every process's pid (the numeric entries of `/proc`, proc(5)); empty when `/proc`
    /// cannot be read.
    fn pids(&self) -> Vec<u32>;
    /// The inode number of process `pid`'s mount namespace (`/proc/PID/ns/mnt`); `None` when
    /// it is gone or not readable.
    fn mnt_ns_of(&self, pid: u32) -> Option<u64>;
    /// Process `pid`'s root directory (`/proc/PID/root`, as the build machine names it);
    /// `None` when it is gone or not readable.
    fn root_of(&self, pid: u32) -> Option<PathBuf>;
    /// Whether process `pid` exists and has not ended (a zombie or dead one in
    /// `/proc/PID/stat` has ended).
    fn alive(&self, pid: u32) -> bool;
    /// kill(2): sends `signal` to process `pid`, or to process group `pid` when `group`.
    ///
    /// Errors: [`SysError::Signal`] (no such process, not allowed).
    fn kill(&self, pid: u32, signal: nix::sys::signal::Signal, group: bool)
        -> Result<(), SysError>;
}

/// The real implementation (Linux, root).
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSys;

impl Sys for LinuxSys {
    fn set_propagation(
        &self,
        target: &Path,
        kind: Propagation,
        recursive: bool,
    ) -> Result<(), SysError> {
        use nix::mount::MsFlags;
        let mut flags = match kind {
            Propagation::Private => MsFlags::MS_PRIVATE,
            Propagation::Slave => MsFlags::MS_SLAVE,
        };
        if recursive {
            flags |= MsFlags::MS_REC;
        }
        nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(
            |errno| SysError::Mount {
                source_name: "(propagation)".into(),
                target: target.to_path_buf(),
                fstype: format!("{kind:?}").to_lowercase(),
                data: "-".into(),
                errno,
            },
        )
    }

    fn mount(&self, call: &MountCall) -> Result<(), SysError> {
        use nix::mount::MsFlags;
        let mut flags = MsFlags::empty();
        if call.flags.bind {
            flags |= MsFlags::MS_BIND;
        }
        if call.flags.recursive {
            flags |= MsFlags::MS_REC;
        }
        if call.flags.readonly && !call.flags.bind {
            flags |= MsFlags::MS_RDONLY;
        }
        let result = nix::mount::mount(
            Some(call.source.as_str()),
            &call.target,
            call.fstype.as_deref(),
            flags,
            call.data.as_deref(),
        )
        .and_then(|()| {
            // A read-only bind needs a second call (mount(2), "MS_BIND ... MS_RDONLY").
            if call.flags.bind && call.flags.readonly {
                nix::mount::mount(
                    None::<&str>,
                    &call.target,
                    None::<&str>,
                    flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None::<&str>,
                )
            } else {
                Ok(())
            }
        });
        result.map_err(|errno| SysError::Mount {
            source_name: call.source.clone(),
            target: call.target.clone(),
            fstype: call.fstype.clone().unwrap_or_else(|| "bind".into()),
            data: call.data.clone().unwrap_or_else(|| "-".into()),
            errno,
        })
    }

    fn umount(&self, target: &Path, detach: bool) -> Result<(), SysError> {
        let flags = if detach {
            nix::mount::MntFlags::MNT_DETACH
        } else {
            nix::mount::MntFlags::empty()
        };
        nix::mount::umount2(target, flags).map_err(|errno| SysError::Umount {
            target: target.to_path_buf(),
            errno,
        })
    }

    fn mount_image(&self, file: &Path, target: &Path, fstype: &str) -> Result<(), SysError> {
        let (device, open_device) = loopdev::attach(file).map_err(|reason| SysError::Loop {
            file: file.to_path_buf(),
            reason,
        })?;
        let result = self.mount(&MountCall {
            source: device.display().to_string(),
            target: target.to_path_buf(),
            fstype: Some(fstype.to_string()),
            flags: MountFlags {
                readonly: true,
                ..MountFlags::default()
            },
            data: None,
        });
        drop(open_device);
        result
    }

    fn mount_table(&self) -> Result<String, SysError> {
        read_mount_table(Path::new("/proc/self/mountinfo"))
    }

    fn mount_table_of(&self, pid: u32) -> Result<String, SysError> {
        read_mount_table(&PathBuf::from(format!("/proc/{pid}/mountinfo")))
    }

    fn unshare_mount_ns(&self) -> Result<(), SysError> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|errno| {
            SysError::Namespace {
                what: "create a private mount namespace (unshare CLONE_NEWNS)".into(),
                errno,
            }
        })
    }

    fn join_mount_ns(&self, pid: u32) -> Result<(), SysError> {
        let path = format!("/proc/{pid}/ns/mnt");
        let what = format!("join the mount namespace {path}");
        let ns = std::fs::File::open(&path).map_err(|e| SysError::Namespace {
            what: what.clone(),
            errno: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNS)
            .map_err(|errno| SysError::Namespace { what, errno })
    }

    fn spawn_chrooted(&self, cmd: ChrootCommand) -> Result<Box<dyn Spawned>, SysError> {
        chroot::spawn(cmd)
    }

    fn pids(&self) -> Vec<u32> {
        procs::linux::pids()
    }

    fn mnt_ns_of(&self, pid: u32) -> Option<u64> {
        procs::linux::mnt_ns(pid)
    }

    fn root_of(&self, pid: u32) -> Option<PathBuf> {
        std::fs::read_link(format!("/proc/{pid}/root")).ok()
    }

    fn alive(&self, pid: u32) -> bool {
        procs::linux::alive(pid)
    }

    fn kill(
        &self,
        pid: u32,
        signal: nix::sys::signal::Signal,
        group: bool,
    ) -> Result<(), SysError> {
        let id = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        let result = if group {
            nix::sys::signal::killpg(id, signal)
        } else {
            nix::sys::signal::kill(id, signal)
        };
        result.map_err(|errno| SysError::Signal {
            whom: if group { "process group" } else { "process" },
            pid,
            signal,
            errno,
        })
    }
}

fn read_mount_table(path: &Path) -> Result<String, SysError> {
    std::fs::read_to_string(path).map_err(|e| SysError::MountTable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// One call through the seam, as [`RecordingSys`] records it: typed, so a test matches the
/// arguments it cares about; [`std::fmt::Display`] gives the readable line a whole transcript
/// is compared with (`mount SOURCE TARGET FSTYPE FLAGS DATA`, `umount TARGET[ (detach)]`,
/// `propagation TARGET KIND[ recursive]`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// [`Sys::set_propagation`].
    Propagation {
        /// The mount point.
        target: PathBuf,
        /// The propagation type.
        kind: Propagation,
        /// Applied to every mount below too.
        recursive: bool,
    },
    /// [`Sys::mount`].
    Mount(MountCall),
    /// [`Sys::umount`].
    Umount {
        /// The mount point.
        target: PathBuf,
        /// Lazily (`MNT_DETACH`).
        detach: bool,
    },
    /// [`Sys::mount_image`].
    MountImage {
        /// The image file.
        file: PathBuf,
        /// The mount point.
        target: PathBuf,
        /// Its filesystem type.
        fstype: String,
    },
    /// [`Sys::unshare_mount_ns`].
    UnshareMountNs,
    /// [`Sys::join_mount_ns`] of this pid's namespace.
    JoinMountNs(u32),
    /// [`Sys::spawn_chrooted`].
    Chroot(ChrootCall),
    /// [`Sys::kill`].
    Kill {
        /// The pid, or the process group id when `group`.
        pid: u32,
        /// The signal.
        signal: nix::sys::signal::Signal,
        /// Sent to the process group.
        group: bool,
    },
}

impl Call {
    /// The mount point the call acts on (mount, unmount, image, propagation), if any.
    pub fn target(&self) -> Option<&Path> {
        match self {
            Call::Propagation { target, .. }
            | Call::Umount { target, .. }
            | Call::MountImage { target, .. } => Some(target),
            Call::Mount(m) => Some(&m.target),
            _ => None,
        }
    }
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Call::Propagation {
                target,
                kind,
                recursive,
            } => write!(
                f,
                "propagation {} {kind:?}{}",
                target.display(),
                if *recursive { " recursive" } else { "" }
            ),
            Call::Mount(call) => write!(
                f,
                "mount {} {} {} {:?} {}",
                call.source,
                call.target.display(),
                call.fstype.as_deref().unwrap_or("bind"),
                call.flags,
                call.data.as_deref().unwrap_or("-")
            ),
            Call::Umount { target, detach } => write!(
                f,
                "umount {}{}",
                target.display(),
                if *detach { " (detach)" } else { "" }
            ),
            Call::MountImage {
                file,
                target,
                fstype,
            } => write!(
                f,
                "mount-image {} {} {fstype}",
                file.display(),
                target.display()
            ),
            Call::UnshareMountNs => f.write_str("unshare mount-namespace"),
            Call::JoinMountNs(pid) => write!(f, "setns mount-namespace {pid}"),
            Call::Chroot(c) => c.fmt(f),
            Call::Kill { pid, signal, group } => write!(
                f,
                "kill {signal} {}{pid}",
                if *group { "group " } else { "" }
            ),
        }
    }
}

/// A process of [`RecordingSys`]'s simulated table.
#[derive(Debug, Clone)]
struct FakeProcess {
    mnt_ns: u64,
    root: PathBuf,
    survives: bool,
}

/// A fake that records every call; for unit tests of plans and teardown. It keeps a
/// simulated mount table (mounts add lines, unmounts remove them; [`RecordingSys::table`]
/// renders it as mountinfo; as the kernel, a mount point with mounts below it cannot be
/// unmounted unless detached) and fails the mount or unmount of the mount point set with
/// [`RecordingSys::fail_at`] (EBUSY), so that failures half-way are tested too. A chroot
/// spawn is recorded (`chroot ROOT: PROGRAM ARGS (env NAMES; ...)`) and gives a process that
/// never ran and exits with [`RecordingSys::set_exit_code`]'s code (0 by default); one into
/// the root set with `fail_at` fails (ENOENT). It also keeps a simulated process table
/// ([`RecordingSys::add_process`]): `/proc` scans see it, a signal is recorded, and SIGKILL
/// (or a signal that is not ignored) ends the process, as the kernel would.
#[derive(Debug, Default)]
pub struct RecordingSys {
    /// Everything called so far, in order.
    pub calls: Mutex<Vec<Call>>,
    mounted: Mutex<Vec<PathBuf>>,
    processes: Mutex<std::collections::BTreeMap<u32, FakeProcess>>,
    fail: Mutex<Option<PathBuf>>,
    exit_code: Mutex<i32>,
}

impl RecordingSys {
    /// The calls recorded since the last take, in order.
    pub fn take(&self) -> Vec<Call> {
        match self.calls.lock() {
            Ok(mut calls) => std::mem::take(&mut *calls),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    /// [`RecordingSys::take`] as readable lines ([`Call`]'s `Display`), for a test that
    /// compares a whole transcript.
    pub fn take_lines(&self) -> Vec<String> {
        self.take().iter().map(ToString::to_string).collect()
    }

    fn push(&self, call: Call) {
        match self.calls.lock() {
            Ok(mut calls) => calls.push(call),
            Err(poisoned) => poisoned.into_inner().push(call),
        }
    }

    /// Makes every later mount or unmount of `target` fail with EBUSY.
    pub fn fail_at(&self, target: &Path) {
        *self.fail.lock().unwrap_or_else(|p| p.into_inner()) = Some(target.to_path_buf());
    }

    /// The exit code of every later recorded chroot spawn.
    pub fn set_exit_code(&self, code: i32) {
        *self.exit_code.lock().unwrap_or_else(|p| p.into_inner()) = code;
    }

    /// Puts process `pid` into the simulated process table, with its mount namespace and
    /// root directory; `survives` keeps it alive through every signal (a process in
    /// uninterruptible sleep).
    pub fn add_process(&self, pid: u32, mnt_ns: u64, root: &Path, survives: bool) {
        self.processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                pid,
                FakeProcess {
                    mnt_ns,
                    root: root.to_path_buf(),
                    survives,
                },
            );
    }

    /// Puts `target` into the simulated mount table (as if mounted earlier).
    pub fn add_mounted(&self, target: &Path) {
        self.table_mut().push(target.to_path_buf());
    }

    /// The simulated mount points, in the order mounted.
    pub fn mounted(&self) -> Vec<PathBuf> {
        self.table_mut().clone()
    }

    fn procs(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u32, FakeProcess>> {
        self.processes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn table_mut(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.mounted.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fails(&self, target: &Path) -> bool {
        self.fail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
            == Some(target)
    }

    /// The simulated table as mountinfo text (proc(5)), one line per mount point.
    pub fn table(&self) -> String {
        self.table_mut()
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{} 1 0:{i} / {} rw - fake fake rw\n", 100 + i, p.display()))
            .collect()
    }
}

impl Sys for RecordingSys {
    fn set_propagation(
        &self,
        target: &Path,
        kind: Propagation,
        recursive: bool,
    ) -> Result<(), SysError> {
        self.push(Call::Propagation {
            target: target.to_path_buf(),
            kind,
            recursive,
        });
        Ok(())
    }

    fn mount(&self, call: &MountCall) -> Result<(), SysError> {
        self.push(Call::Mount(call.clone()));
        if self.fails(&call.target) {
            return Err(SysError::Mount {
                source_name: call.source.clone(),
                target: call.target.clone(),
                fstype: call.fstype.clone().unwrap_or_else(|| "bind".into()),
                data: call.data.clone().unwrap_or_else(|| "-".into()),
                errno: nix::Error::EBUSY,
            });
        }
        self.table_mut().push(call.target.clone());
        Ok(())
    }

    fn umount(&self, target: &Path, detach: bool) -> Result<(), SysError> {
        self.push(Call::Umount {
            target: target.to_path_buf(),
            detach,
        });
        let mut table = self.table_mut();
        // As the kernel: a mount point with mounts below it is busy (unless detached).
        let has_children = table.iter().any(|p| p != target && p.starts_with(target));
        if (self.fails(target) || has_children) && !detach {
            return Err(SysError::Umount {
                target: target.to_path_buf(),
                errno: nix::Error::EBUSY,
            });
        }
        if let Some(i) = table.iter().rposition(|p| p == target) {
            table.remove(i);
        }
        Ok(())
    }

    fn mount_image(&self, file: &Path, target: &Path, fstype: &str) -> Result<(), SysError> {
        self.push(Call::MountImage {
            file: file.to_path_buf(),
            target: target.to_path_buf(),
            fstype: fstype.to_string(),
        });
        self.table_mut().push(target.to_path_buf());
        Ok(())
    }

    fn mount_table(&self) -> Result<String, SysError> {
        Ok(self.table())
    }

    /// The simulated table: every process shares it.
    fn mount_table_of(&self, _pid: u32) -> Result<String, SysError> {
        Ok(self.table())
    }

    fn unshare_mount_ns(&self) -> Result<(), SysError> {
        self.push(Call::UnshareMountNs);
        Ok(())
    }

    fn join_mount_ns(&self, pid: u32) -> Result<(), SysError> {
        self.push(Call::JoinMountNs(pid));
        Ok(())
    }

    fn spawn_chrooted(&self, cmd: ChrootCommand) -> Result<Box<dyn Spawned>, SysError> {
        self.push(Call::Chroot(ChrootCall::of(&cmd)));
        if self.fails(&cmd.root) {
            return Err(SysError::Spawn {
                program: cmd.program,
                root: cmd.root,
                source: std::io::Error::from_raw_os_error(libc::ENOENT),
            });
        }
        let code = *self.exit_code.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Box::new(chroot::RecordedChild(code)))
    }

    fn pids(&self) -> Vec<u32> {
        self.procs().keys().copied().collect()
    }

    fn mnt_ns_of(&self, pid: u32) -> Option<u64> {
        self.procs().get(&pid).map(|p| p.mnt_ns)
    }

    fn root_of(&self, pid: u32) -> Option<PathBuf> {
        self.procs().get(&pid).map(|p| p.root.clone())
    }

    fn alive(&self, pid: u32) -> bool {
        self.procs().contains_key(&pid)
    }

    fn kill(
        &self,
        pid: u32,
        signal: nix::sys::signal::Signal,
        group: bool,
    ) -> Result<(), SysError> {
        self.push(Call::Kill { pid, signal, group });
        let mut procs = self.procs();
        match procs.get(&pid) {
            None => Err(SysError::Signal {
                whom: if group { "process group" } else { "process" },
                pid,
                signal,
                errno: nix::Error::ESRCH,
            }),
            Some(p) if p.survives => Ok(()),
            Some(_) => {
                procs.remove(&pid);
                Ok(())
            }
        }
    }
}
