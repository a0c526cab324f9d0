//! Host-side file access that never follows a link out of a directory: reading and writing
//! files inside a build environment (whose every file a package or a stage3 may have made a
//! symbolic link to a host file) and inside a configuration directory.
//!
//! Every path is resolved by the kernel with `openat2(2)` relative to an open directory (the
//! *root*): [`Resolve::InRoot`] treats the root as `/` (an absolute link or `..` stays inside,
//! as it would for a process chrooted there), [`Resolve::Beneath`] follows only links that stay
//! beneath the root, [`Resolve::NoSymlinks`] follows none. On kernels without `openat2`
//! (before 5.6) every component is opened with `O_NOFOLLOW` instead, so no link is followed
//! at all (stricter than asked). Files are opened non-blocking and checked with `fstat` to be
//! regular before a byte is read, so a FIFO or a device node is refused, never read; reads
//! stop at a stated size limit. Writes replace the file with a `renameat(2)` of a temporary
//! file made with `O_EXCL | O_NOFOLLOW` in the same directory, so a link at the destination
//! is replaced, never written through.
//!
//! Not for: the tool's own files (the run directory has its own module) or paths a user
//! names on the command line, which are trusted.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

/// The largest configuration file or starter read (1 MiB): world files, tree entries,
/// `build-arch`, `make.defaults`, `repos.conf` and starters are a few KiB.
pub const CONFIG_LIMIT: u64 = 1 << 20;

/// The largest file read back from a build environment (16 MiB), e.g. the host world
/// (`var/lib/portage/world`) or a make.conf.
pub const ENV_LIMIT: u64 = 16 << 20;

/// How the components of a path below the root are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// The root is `/` for the path: absolute links and `..` are resolved inside it
    /// (`RESOLVE_IN_ROOT`), as a process chrooted there would see them.
    InRoot,
    /// Links are followed while they stay beneath the root; one that leaves it, or a `..`
    /// above it, is an error (`RESOLVE_BENEATH`).
    Beneath,
    /// No link is followed at all (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`).
    NoSymlinks,
}

impl Resolve {
    fn flags(self) -> ResolveFlag {
        let magic = ResolveFlag::RESOLVE_NO_MAGICLINKS;
        match self {
            Resolve::InRoot => ResolveFlag::RESOLVE_IN_ROOT | magic,
            Resolve::Beneath => ResolveFlag::RESOLVE_BENEATH | magic,
            Resolve::NoSymlinks => ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS,
        }
    }
}

/// Why a file under a root could not be read or written. Messages name the full path and
/// never quote the file's content or a link's target.
#[derive(Debug, thiserror::Error)]
pub enum SafeError {
    /// Resolving the path would leave the root (a link pointing out of it, or `..` above it)
    /// or, for [`Resolve::NoSymlinks`], pass through any link.
    #[error(
        "{}: reaches out of {} through a symbolic link (or `..`); it is not followed: \
         replace the link with the file itself",
        path.display(),
        root.display()
    )]
    Escapes { path: PathBuf, root: PathBuf },
    /// Not a regular file (a FIFO, a device node, a socket, a directory).
    #[error("{}: is a {kind}, not a regular file; it is not read: replace it with a file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    /// Larger than the limit given to the read.
    #[error("{}: is larger than {limit} bytes, the limit for this file; it is not read", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    /// Any other I/O error (missing file, permissions, ...).
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl SafeError {
    /// True when the file (or a directory on its way) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SafeError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// The error as an [`io::Error`] whose message does not repeat the path, for callers
    /// that name the path themselves.
    pub fn into_io(self) -> io::Error {
        let (kind, message) = match self {
            SafeError::Io { source, .. } => return source,
            SafeError::Escapes { root, .. } => (
                io::ErrorKind::PermissionDenied,
                format!(
                    "reaches out of {} through a symbolic link; it is not followed",
                    root.display()
                ),
            ),
            SafeError::NotRegular { kind, .. } => (
                io::ErrorKind::InvalidInput,
                format!("is a {kind}, not a regular file; it is not read"),
            ),
            SafeError::TooLarge { limit, .. } => (
                io::ErrorKind::InvalidInput,
                format!("is larger than {limit} bytes, the limit for this file; it is not read"),
            ),
        };
        io::Error::new(kind, message)
    }
}

/// An open directory that paths are resolved against, with the path it was opened at (for
/// messages).
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens the directory `path`. Links in `path` itself are followed: the caller trusts
    /// the way to the root, not what lies below it.
    ///
    /// Errors: [`SafeError::Io`] when `path` is not an openable directory.
    pub fn open(path: &Path) -> Result<Root, SafeError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SafeError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        // SAFETY: `open` returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The path the root was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `rel` (relative to the root; a leading `/` is dropped) with `flags`, resolved
    /// as `resolve` says.
    fn open_at(&self, rel: &Path, flags: OFlag, resolve: Resolve) -> Result<OwnedFd, SafeError> {
        let rel = relative(rel);
        let flags = flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
        // No mode: openat2 refuses one without O_CREAT, and nothing here creates through it.
        let how = OpenHow::new().flags(flags).resolve(resolve.flags());
        let mut tries = 0;
        let result = loop {
            match nix::fcntl::openat2(self.fd.as_raw_fd(), rel.as_os_str(), how) {
                // A rename elsewhere raced with the lookup: the kernel asks to try again.
                Err(Errno::EAGAIN) if tries < 8 => tries += 1,
                // No openat2 (Linux < 5.6) or a seccomp filter refusing it.
                Err(Errno::ENOSYS) | Err(Errno::EPERM) => {
                    break open_no_follow(&self.fd, rel, flags)
                }
                other => break other,
            }
        };
        match result {
            // SAFETY: a new descriptor that nothing else owns.
            Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(Errno::EXDEV) | Err(Errno::ELOOP) => Err(SafeError::Escapes {
                path: self.path.join(rel),
                root: self.path.clone(),
            }),
            Err(e) => Err(SafeError::Io {
                path: self.path.join(rel),
                source: e.into(),
            }),
        }
    }

    /// Reads the regular file `rel` whole, at most `limit` bytes.
    ///
    /// Errors: [`SafeError::Escapes`], [`SafeError::NotRegular`] (FIFOs and device nodes are
    /// opened non-blocking and never read), [`SafeError::TooLarge`], [`SafeError::Io`].
    pub fn read(&self, rel: &Path, resolve: Resolve, limit: u64) -> Result<Vec<u8>, SafeError> {
        let fd = self.open_at(rel, OFlag::O_RDONLY | OFlag::O_NONBLOCK, resolve)?;
        read_regular(fd, &self.path.join(relative(rel)), limit)
    }

    /// Reads the last `max` bytes of the regular file `rel` (all of it when shorter), e.g.
    /// the tail of a log that a build keeps appending to. Refuses what [`Root::read`]
    /// refuses, except that a longer file is not an error.
    ///
    /// Errors: [`SafeError::Escapes`], [`SafeError::NotRegular`], [`SafeError::Io`].
    pub fn read_tail(&self, rel: &Path, resolve: Resolve, max: u64) -> Result<Vec<u8>, SafeError> {
        use std::io::{Seek, SeekFrom};
        let fd = self.open_at(rel, OFlag::O_RDONLY | OFlag::O_NONBLOCK, resolve)?;
        let path = self.path.join(relative(rel));
        let size = regular_size(&fd, &path)?;
        let io_err = |source: io::Error| SafeError::Io {
            path: path.clone(),
            source,
        };
        let mut file = File::from(fd);
        file.seek(SeekFrom::Start(size.saturating_sub(max)))
            .map_err(io_err)?;
        let mut out = Vec::new();
        file.take(max).read_to_end(&mut out).map_err(io_err)?;
        Ok(out)
    }

    /// Like [`Root::read`], as UTF-8 text.
    ///
    /// Errors: those of [`Root::read`]; invalid UTF-8 is [`SafeError::Io`] (`InvalidData`).
    pub fn read_to_string(
        &self,
        rel: &Path,
        resolve: Resolve,
        limit: u64,
    ) -> Result<String, SafeError> {
        let bytes = self.read(rel, resolve, limit)?;
        String::from_utf8(bytes).map_err(|_| SafeError::Io {
            path: self.path.join(relative(rel)),
            source: io::Error::new(io::ErrorKind::InvalidData, "is not valid UTF-8 text"),
        })
    }

    /// Replaces the file `rel` with `bytes` (mode `mode`, whatever the umask): its directory
    /// is resolved as `resolve` says, a temporary file `.<name>.partial` is created there with
    /// `O_EXCL | O_NOFOLLOW`, written, fsynced and renamed over `rel` (and the directory
    /// fsynced). A link at `rel` is replaced by the file, never written through.
    ///
    /// Errors: [`SafeError::Escapes`] when the directory lies out of the root,
    /// [`SafeError::Io`] otherwise.
    pub fn write(
        &self,
        rel: &Path,
        resolve: Resolve,
        bytes: &[u8],
        mode: u32,
    ) -> Result<(), SafeError> {
        self.replace(rel, resolve, bytes, mode, true)
    }

    /// Like [`Root::write`], with the fsyncs only when `durable`: the file is replaced whole
    /// (never seen half-written) but a crash may leave the previous content. For files that
    /// are written again whenever they are needed (the copies into an environment made at
    /// every mount): two fsyncs cost ~10 ms each on a busy disk.
    ///
    /// Errors: as [`Root::write`].
    pub fn replace(
        &self,
        rel: &Path,
        resolve: Resolve,
        bytes: &[u8],
        mode: u32,
        durable: bool,
    ) -> Result<(), SafeError> {
        let rel = relative(rel);
        let full = self.path.join(rel);
        let io_err = |source: io::Error| SafeError::Io {
            path: full.clone(),
            source,
        };
        let name = match rel.components().next_back() {
            Some(Component::Normal(name)) => name.to_owned(),
            _ => return Err(io_err(io::Error::from(io::ErrorKind::InvalidInput))),
        };
        let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = self.open_at(
            parent.unwrap_or(Path::new(".")),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            resolve,
        )?;
        let mut tmp_name = b".".to_vec();
        tmp_name.extend_from_slice(name.as_bytes());
        tmp_name.extend_from_slice(b".partial");
        let tmp_name = OsStr::from_bytes(&tmp_name);
        let _ = nix::unistd::unlinkat(
            Some(dir.as_raw_fd()),
            tmp_name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        let fd = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            tmp_name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(|e| io_err(e.into()))?;
        // SAFETY: a new descriptor that nothing else owns.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let written = (|| {
            nix::sys::stat::fchmod(file.as_raw_fd(), Mode::from_bits_truncate(mode))?;
            file.write_all(bytes)?;
            if durable {
                file.sync_all()?;
            }
            nix::fcntl::renameat(
                Some(dir.as_raw_fd()),
                tmp_name,
                Some(dir.as_raw_fd()),
                name.as_os_str(),
            )?;
            Ok::<(), io::Error>(())
        })();
        if let Err(e) = written {
            let _ = nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                tmp_name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            return Err(io_err(e));
        }
        if durable {
            let _ = nix::unistd::fsync(dir.as_raw_fd());
        }
        Ok(())
    }
}

/// Reads the regular file at `path` (links in `path` followed: the caller names it), at
/// most `limit` bytes, refusing FIFOs and device nodes without blocking on them. For
/// starters and key files named on the command line.
///
/// Errors: [`SafeError::NotRegular`], [`SafeError::TooLarge`], [`SafeError::Io`].
pub fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, SafeError> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| SafeError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    // SAFETY: a new descriptor that nothing else owns.
    read_regular(unsafe { OwnedFd::from_raw_fd(fd) }, path, limit)
}

/// Reads the regular file at `path` as UTF-8 text, at most `limit` bytes: [`read_file`]
/// for text. This is the one reader of text files a user hands over by name (starters,
/// starter scripts for `import-starter`, key files); files of a configuration directory go
/// through [`Root::read_to_string`] so that links out of it are refused too.
///
/// Errors: those of [`read_file`]; invalid UTF-8 is [`SafeError::Io`] (`InvalidData`).
pub fn read_text_file(path: &Path, limit: u64) -> Result<String, SafeError> {
    let bytes = read_file(path, limit)?;
    String::from_utf8(bytes).map_err(|_| SafeError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, "is not valid UTF-8 text"),
    })
}

/// `rel` without a leading `/` (and `.` for an empty path).
fn relative(rel: &Path) -> &Path {
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// What `mode` is, for messages.
fn kind_name(mode: SFlag) -> &'static str {
    match mode {
        SFlag::S_IFIFO => "FIFO",
        SFlag::S_IFCHR => "character device",
        SFlag::S_IFBLK => "block device",
        SFlag::S_IFSOCK => "socket",
        SFlag::S_IFDIR => "directory",
        SFlag::S_IFLNK => "symbolic link",
        _ => "special file",
    }
}

/// The size in bytes of the open file `fd`, when it is a regular file.
///
/// Errors: [`SafeError::NotRegular`], [`SafeError::Io`] (fstat failed).
fn regular_size(fd: &OwnedFd, path: &Path) -> Result<u64, SafeError> {
    let stat = fstat(fd.as_raw_fd()).map_err(|e| SafeError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG {
        return Err(SafeError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_name(kind),
        });
    }
    Ok(stat.st_size as u64)
}

fn read_regular(fd: OwnedFd, path: &Path, limit: u64) -> Result<Vec<u8>, SafeError> {
    let io_err = |source: io::Error| SafeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = regular_size(&fd, path)?;
    if size > limit {
        return Err(SafeError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    let mut out = Vec::with_capacity(size as usize);
    File::from(fd)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(io_err)?;
    if out.len() as u64 > limit {
        return Err(SafeError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(out)
}

/// The fallback without `openat2`: every component opened with `O_NOFOLLOW` (intermediate
/// ones as `O_PATH | O_DIRECTORY`), `..` refused. A link anywhere gives `ELOOP`.
fn open_no_follow(root: &OwnedFd, rel: &Path, flags: OFlag) -> nix::Result<i32> {
    let parts: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(Ok(p)),
            Component::CurDir | Component::RootDir => None,
            Component::ParentDir | Component::Prefix(_) => Some(Err(Errno::EXDEV)),
        })
        .collect::<nix::Result<_>>()?;
    let Some((last, dirs)) = parts.split_last() else {
        return nix::fcntl::openat(Some(root.as_raw_fd()), ".", flags, Mode::empty());
    };
    let mut current: Option<OwnedFd> = None;
    for dir in dirs {
        let at = current.as_ref().unwrap_or(root).as_raw_fd();
        let fd = nix::fcntl::openat(
            Some(at),
            *dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| if e == Errno::ENOTDIR { Errno::ELOOP } else { e })?;
        // SAFETY: a new descriptor that nothing else owns.
        current = Some(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let at = current.as_ref().unwrap_or(root).as_raw_fd();
    nix::fcntl::openat(Some(at), *last, flags | OFlag::O_NOFOLLOW, Mode::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"host secret").unwrap();
        (dir, root, secret)
    }

    #[test]
    fn in_root_resolves_absolute_links_inside_the_root() {
        let (_dir, root, secret) = setup();
        std::fs::write(root.join("etc/real"), b"inside").unwrap();
        symlink("/etc/real", root.join("etc/link")).unwrap();
        symlink(&secret, root.join("etc/out")).unwrap();
        let r = Root::open(&root).unwrap();
        let got = r.read(Path::new("etc/link"), Resolve::InRoot, 100).unwrap();
        assert_eq!(got, b"inside");
        // The host path of the secret, taken inside the root, does not exist there.
        let e = r
            .read(Path::new("/etc/out"), Resolve::InRoot, 100)
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
    }

    #[test]
    fn beneath_refuses_a_link_out_and_names_no_content() {
        let (_dir, root, secret) = setup();
        symlink(&secret, root.join("etc/out")).unwrap();
        symlink("../../secret", root.join("etc/up")).unwrap();
        let r = Root::open(&root).unwrap();
        for (name, resolve) in [
            ("etc/out", Resolve::Beneath),
            ("etc/up", Resolve::Beneath),
            ("etc/out", Resolve::NoSymlinks),
            ("../secret", Resolve::Beneath),
        ] {
            let e = r.read(Path::new(name), resolve, 100).unwrap_err();
            assert!(matches!(e, SafeError::Escapes { .. }), "{name}: {e}");
            assert!(!e.to_string().contains("host secret"));
        }
    }

    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        let (_dir, root, _) = setup();
        nix::unistd::mkfifo(&root.join("etc/fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        symlink("/dev/zero", root.join("etc/zero")).unwrap();
        let r = Root::open(&root).unwrap();
        let e = r
            .read(Path::new("etc/fifo"), Resolve::NoSymlinks, 100)
            .unwrap_err();
        assert!(
            matches!(e, SafeError::NotRegular { kind: "FIFO", .. }),
            "{e}"
        );
        let e = read_file(&root.join("etc/zero"), 100).unwrap_err();
        assert!(matches!(e, SafeError::NotRegular { .. }), "{e}");
        let e = read_file(&root.join("etc/fifo"), 100).unwrap_err();
        assert!(matches!(e, SafeError::NotRegular { .. }), "{e}");
    }

    #[test]
    fn reads_stop_at_the_limit() {
        let (_dir, root, _) = setup();
        std::fs::write(root.join("etc/big"), vec![b'x'; 101]).unwrap();
        let r = Root::open(&root).unwrap();
        let e = r
            .read(Path::new("etc/big"), Resolve::Beneath, 100)
            .unwrap_err();
        assert!(matches!(e, SafeError::TooLarge { limit: 100, .. }), "{e}");
        assert_eq!(
            r.read(Path::new("etc/big"), Resolve::Beneath, 101)
                .unwrap()
                .len(),
            101
        );
    }

    #[test]
    fn write_replaces_a_link_instead_of_following_it() {
        let (_dir, root, secret) = setup();
        symlink(&secret, root.join("etc/world")).unwrap();
        let r = Root::open(&root).unwrap();
        r.write(Path::new("etc/world"), Resolve::InRoot, b"new", 0o600)
            .unwrap();
        assert_eq!(std::fs::read(&secret).unwrap(), b"host secret");
        let meta = std::fs::symlink_metadata(root.join("etc/world")).unwrap();
        assert!(meta.is_file());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(root.join("etc/world")).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(root.join("etc")).unwrap().count(), 1);
    }

    #[test]
    fn write_refuses_a_directory_that_leads_out() {
        let (dir, root, secret) = setup();
        symlink(dir.path(), root.join("up")).unwrap();
        let r = Root::open(&root).unwrap();
        let e = r
            .write(Path::new("up/secret"), Resolve::Beneath, b"x", 0o644)
            .unwrap_err();
        assert!(matches!(e, SafeError::Escapes { .. }), "{e}");
        assert_eq!(std::fs::read(&secret).unwrap(), b"host secret");
    }

    #[test]
    fn the_fallback_follows_no_link_at_all() {
        let (_dir, root, secret) = setup();
        std::fs::write(root.join("etc/real"), b"inside").unwrap();
        symlink("real", root.join("etc/link")).unwrap();
        symlink(&secret, root.join("etc/out")).unwrap();
        symlink("etc", root.join("etclink")).unwrap();
        let r = Root::open(&root).unwrap();
        let open = |p: &str| open_no_follow(&r.fd, Path::new(p), OFlag::O_RDONLY);
        let fd = open("etc/real").unwrap();
        nix::unistd::close(fd).unwrap();
        assert_eq!(open("etc/link"), Err(Errno::ELOOP));
        assert_eq!(open("etc/out"), Err(Errno::ELOOP));
        assert_eq!(open("etclink/real"), Err(Errno::ELOOP));
        assert_eq!(open("../secret"), Err(Errno::EXDEV));
    }

    #[test]
    fn read_tail_gives_the_end_of_a_file_and_refuses_a_fifo_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("var/log")).unwrap();
        std::fs::write(root.join("var/log/emerge.log"), "0123456789").unwrap();
        let r = Root::open(root).unwrap();
        let tail = |rel: &str, max| r.read_tail(Path::new(rel), Resolve::NoSymlinks, max);
        assert_eq!(tail("var/log/emerge.log", 4).unwrap(), b"6789");
        assert_eq!(tail("var/log/emerge.log", 100).unwrap(), b"0123456789");
        nix::unistd::mkfifo(&root.join("var/log/fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        assert!(matches!(
            tail("var/log/fifo", 4),
            Err(SafeError::NotRegular { kind: "FIFO", .. })
        ));
        symlink("/dev/zero", root.join("var/log/zero")).unwrap();
        assert!(matches!(
            tail("var/log/zero", 4),
            Err(SafeError::Escapes { .. })
        ));
    }
}
