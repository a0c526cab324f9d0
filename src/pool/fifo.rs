//! The real channels: one named pipe (fifo(7)) per target, held open read-write by the broker,
//! and an inotify(7) watch that wakes the broker when a client reads or writes one.
//!
//! A read of a fifo goes through `vfs_read`, which reports `IN_ACCESS`, and a write through
//! `vfs_write`, which reports `IN_MODIFY`, on the fifo's inode, whichever path or bind mount
//! it was opened by; the broker counts the bytes with `ioctl(FIONREAD)` (see
//! docs/job-pool.md for how reliable the wake-up measured).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::account::TokenChannel;
use super::PoolError;

/// The byte the broker writes as a token (GNU make's own pipe holds `+`; clients write back
/// whatever byte they read, and the broker only counts).
pub const TOKEN_BYTE: u8 = b'+';

/// One target's fifo, open read-write and non-blocking (so opening it never waits for a peer
/// and the broker's reads and writes never block).
pub struct Fifo {
    path: PathBuf,
    file: File,
}

impl Fifo {
    /// Creates the fifo at `path` with permission bits `mode` (set with chmod, whatever the
    /// umask) and opens it. A fifo left at `path` by an earlier run is replaced; any other
    /// file there is an error.
    ///
    /// Errors: [`PoolError::Io`] naming `path` (mkfifo, chmod, open), or when something that
    /// is not a fifo is in the way (remove it, or choose another directory).
    pub fn create(path: &Path, mode: u32) -> Result<Fifo, PoolError> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_fifo() => std::fs::remove_file(path)
                .map_err(|e| PoolError::io("cannot replace the stale fifo", path, e))?,
            Ok(_) => {
                return Err(PoolError::io(
                    "something that is not a fifo is in the way of",
                    path,
                    std::io::Error::from(std::io::ErrorKind::AlreadyExists),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PoolError::io("cannot look at", path, e)),
        }
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| PoolError::io("cannot create the jobserver fifo", path, e.into()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(|e| PoolError::io("cannot set the mode of", path, e))?;
        Self::open(path)
    }

    /// Opens an existing fifo at `path` read-write, non-blocking, close-on-exec.
    ///
    /// Errors: [`PoolError::Io`] naming `path`.
    pub fn open(path: &Path) -> Result<Fifo, PoolError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| PoolError::io("cannot open the jobserver fifo", path, e))?;
        Ok(Fifo {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The fifo's path on the build machine.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl TokenChannel for Fifo {
    fn waiting(&mut self) -> Result<usize, PoolError> {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the pointer, which points at `n`, alive
        // for the call; the descriptor is owned by `self.file`.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), libc::FIONREAD, &mut n) };
        if rc < 0 {
            return Err(PoolError::io(
                "cannot count the bytes (FIONREAD) in",
                &self.path,
                std::io::Error::last_os_error(),
            ));
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn put(&mut self, n: usize) -> Result<usize, PoolError> {
        let bytes = vec![TOKEN_BYTE; n];
        match self.file.write(&bytes) {
            Ok(w) => Ok(w),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(PoolError::io("cannot write a token into", &self.path, e)),
        }
    }

    fn take(&mut self, n: usize) -> Result<usize, PoolError> {
        let mut buf = vec![0u8; n.min(65536)];
        loop {
            return match self.file.read(&mut buf) {
                Ok(r) => Ok(r),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(PoolError::io("cannot read tokens from", &self.path, e)),
            };
        }
    }
}

/// An inotify instance watching fifos for reads (`IN_ACCESS`) and writes (`IN_MODIFY`).
pub struct Watch {
    fd: OwnedFd,
}

impl Watch {
    /// Watches every path in `paths`.
    ///
    /// Errors: [`PoolError::Io`] (inotify_init1, or inotify_add_watch naming the path; raise
    /// `fs.inotify.max_user_instances` when it says "Too many open files").
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<Watch, PoolError> {
        // SAFETY: inotify_init1 takes flags only and returns a new descriptor or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(PoolError::io(
                "cannot start inotify for",
                "the jobserver fifos",
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        for path in paths {
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
                PoolError::io(
                    "cannot watch",
                    path,
                    std::io::Error::from(std::io::ErrorKind::InvalidInput),
                )
            })?;
            // SAFETY: `c` is a NUL-terminated path alive for the call; `fd` is an inotify
            // descriptor this Watch owns.
            let wd = unsafe {
                libc::inotify_add_watch(
                    fd.as_raw_fd(),
                    c.as_ptr(),
                    libc::IN_ACCESS | libc::IN_MODIFY,
                )
            };
            if wd < 0 {
                return Err(PoolError::io(
                    "cannot watch (inotify)",
                    path,
                    std::io::Error::last_os_error(),
                ));
            }
        }
        Ok(Watch { fd })
    }

    /// The descriptor to poll for readability.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Reads and discards every pending event; returns how many bytes of events there were
    /// (0: none pending).
    pub fn drain(&self) -> usize {
        let mut total = 0;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads at most `buf.len()` bytes into `buf`, which lives for the call.
            let r = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                )
            };
            if r <= 0 {
                return total;
            }
            total += r as usize;
        }
    }
}
