//! Safe extraction of a stage3 tarball: the equivalent of
//! `tar xJpf FILE --xattrs-include='*.*' --numeric-owner`, into a directory that did not
//! exist, all or nothing.
//!
//! Kept as in the archive: numeric owners, permission bits including setuid/setgid/sticky,
//! mtimes, extended attributes (`SCHILY.xattr.*`, e.g. `security.capability`), character and
//! block devices, fifos, hard links, symlinks (targets never followed nor rewritten).
//! Refused with an error: paths that are absolute or contain `..`, writes whose parent is a
//! symlink (or non-directory) created by the archive, hard links whose target escapes, and
//! entry kinds that cannot be extracted safely. Work happens in `<dest>.partial`, renamed to
//! `<dest>` only on success and removed on any error.
//!
//! Not for: verifying the tarball (done before, by [`super::obtain`]).

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::stat::{mknod, Mode, SFlag};
use tar::EntryType;

use super::meta::{read_meta, safe_relative, Meta};
use super::Stage3Error;

/// What [`extract`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Archive entries extracted (files, directories, links, nodes; not PAX global headers).
    pub entries: u64,
    /// Bytes of regular file contents written.
    pub bytes: u64,
    /// `user.*` extended attributes the destination filesystem refused (EOPNOTSUPP, or EPERM
    /// on symlinks and device nodes) and that were skipped, as GNU tar warns and goes on.
    /// Any other attribute that cannot be set (e.g. `security.capability`) is an error.
    pub xattrs_skipped: u64,
}

/// Extracts the xz-compressed tar `tarball` into `dest`, which must not exist (its parent
/// must). Blocking: call it from `spawn_blocking`. Needs root for owners and device nodes.
///
/// A stale `<dest>.partial` from a crashed run is removed first; on any error the partial
/// directory is removed, so nothing is left that a later run could take for a good
/// environment.
///
/// Errors: [`Stage3Error::DestExists`]; [`Stage3Error::Unsafe`] for a refused entry;
/// [`Stage3Error::Archive`] for corrupt xz/tar data; [`Stage3Error::Extract`] or
/// [`Stage3Error::Io`] when the filesystem refuses an operation.
pub fn extract(tarball: &Path, dest: &Path) -> Result<ExtractStats, Stage3Error> {
    extract_until(tarball, dest, &AtomicBool::new(false))
}

/// [`extract`] that stops before the next archive entry once `stop` is set (another thread
/// sets it: the run was asked to stop), removing the partial directory like any error does.
///
/// Errors: as [`extract`], and [`Stage3Error::Stopped`] when stopped.
pub fn extract_until(
    tarball: &Path,
    dest: &Path,
    stop: &AtomicBool,
) -> Result<ExtractStats, Stage3Error> {
    if dest.symlink_metadata().is_ok() {
        return Err(Stage3Error::DestExists {
            dest: dest.to_path_buf(),
        });
    }
    let Some(name) = dest.file_name() else {
        return Err(Stage3Error::io(
            "extract into",
            dest,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path has no final component",
            ),
        ));
    };
    let mut partial_name = name.to_owned();
    partial_name.push(".partial");
    let partial = dest.with_file_name(partial_name);
    remove_any(&partial).map_err(|e| Stage3Error::io("remove the stale", &partial, e))?;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&partial)
        .map_err(|e| Stage3Error::io("create directory", &partial, e))?;
    let result = Unpacker::new(tarball, &partial, stop)
        .run()
        .and_then(|stats| finish(&partial, dest).map(|()| stats));
    if result.is_err() {
        let _ = remove_any(&partial);
    }
    result
}

/// Flushes the extracted tree to disk (syncfs), then renames `partial` to `dest` and makes
/// the rename durable: after a crash, `dest` either does not exist or is complete.
fn finish(partial: &Path, dest: &Path) -> Result<(), Stage3Error> {
    let dir = File::open(partial).map_err(|e| Stage3Error::io("open", partial, e))?;
    nix::unistd::syncfs(dir.as_raw_fd())
        .map_err(|e| Stage3Error::io("flush to disk", partial, e.into()))?;
    fs::rename(partial, dest)
        .map_err(|e| Stage3Error::io(format!("rename to {}:", dest.display()), partial, e))?;
    if let Some(parent) = dest.parent().and_then(|p| File::open(p).ok()) {
        let _ = parent.sync_all();
    }
    Ok(())
}

/// Removes a file, symlink or directory tree at `path` (never following symlinks); a missing
/// path is fine.
fn remove_any(path: &Path) -> io::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// State of one extraction into `root` (the partial directory).
struct Unpacker<'a> {
    tarball: &'a Path,
    root: &'a Path,
    /// Directories whose metadata is applied at the end, deepest last in the list.
    dirs: Vec<(PathBuf, String, Meta)>,
    stats: ExtractStats,
    /// Set by another thread to stop before the next entry.
    stop: &'a AtomicBool,
}

impl<'a> Unpacker<'a> {
    fn new(tarball: &'a Path, root: &'a Path, stop: &'a AtomicBool) -> Self {
        Unpacker {
            tarball,
            root,
            stop,
            dirs: Vec::new(),
            stats: ExtractStats::default(),
        }
    }

    fn run(mut self) -> Result<ExtractStats, Stage3Error> {
        let file =
            File::open(self.tarball).map_err(|e| Stage3Error::io("open", self.tarball, e))?;
        // Multi-stream: parallel xz writes several concatenated streams.
        let xz = xz2::read::XzDecoder::new_multi_decoder(BufReader::with_capacity(1 << 20, file));
        let mut archive = tar::Archive::new(xz);
        let entries = archive.entries().map_err(|e| self.archive_err("", e))?;
        for item in entries {
            if self.stop.load(Ordering::Relaxed) {
                return Err(Stage3Error::Stopped {
                    dest: self.root.to_path_buf(),
                });
            }
            let mut entry = item.map_err(|e| self.archive_err("", e))?;
            let kind = entry.header().entry_type();
            if kind == EntryType::XGlobalHeader {
                continue;
            }
            let raw_name = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&raw_name).into_owned();
            let rel = safe_relative(&raw_name).map_err(|r| self.unsafe_err(&name, r))?;
            let meta = read_meta(&mut entry).map_err(|e| self.archive_err(&name, e))?;
            self.stats.entries += 1;
            if rel.as_os_str().is_empty() {
                if kind != EntryType::Directory {
                    return Err(self.unsafe_err(&name, "a non-directory names the destination"));
                }
                self.dirs.push((self.root.to_path_buf(), name, meta));
                continue;
            }
            let path = self.prepare_parents(&rel, &name)?;
            match kind {
                EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                    self.clear(&path, &name, false)?;
                    self.write_file(&mut entry, kind, &path, &name, &meta)?;
                }
                EntryType::Directory => {
                    if !self.clear(&path, &name, true)? {
                        fs::DirBuilder::new()
                            .mode(0o700)
                            .create(&path)
                            .map_err(|e| self.fs_err(&name, "create directory", &path, e))?;
                    }
                    self.dirs.push((path, name, meta));
                }
                EntryType::Symlink => {
                    let target = entry.link_name_bytes().map(|t| t.into_owned());
                    let target = target
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| self.unsafe_err(&name, "a symlink without target"))?;
                    self.clear(&path, &name, false)?;
                    std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                        .map_err(|e| self.fs_err(&name, "create symlink", &path, e))?;
                    self.apply_path(&path, &name, &meta, false)?;
                }
                EntryType::Link => {
                    let target = entry.link_name_bytes().map(|t| t.into_owned());
                    self.hard_link(target.as_deref().unwrap_or_default(), &rel, &path, &name)?;
                }
                EntryType::Char | EntryType::Block | EntryType::Fifo => {
                    self.clear(&path, &name, false)?;
                    let (sflag, dev) = match kind {
                        EntryType::Fifo => (SFlag::S_IFIFO, 0),
                        _ => {
                            let h = entry.header();
                            let bad = |e| self.archive_err(&name, e);
                            let major = h.device_major().map_err(bad)?.unwrap_or(0);
                            let minor = h.device_minor().map_err(bad)?.unwrap_or(0);
                            let dev = nix::sys::stat::makedev(major.into(), minor.into());
                            let sflag = if kind == EntryType::Char {
                                SFlag::S_IFCHR
                            } else {
                                SFlag::S_IFBLK
                            };
                            (sflag, dev)
                        }
                    };
                    mknod(&path, sflag, Mode::from_bits_truncate(0o600), dev)
                        .map_err(|e| self.fs_err(&name, "create node", &path, e.into()))?;
                    self.apply_path(&path, &name, &meta, true)?;
                }
                other => {
                    return Err(
                        self.unsafe_err(&name, &format!("unsupported entry type {other:?}"))
                    );
                }
            }
        }
        // Deepest first: a parent's mode and mtime are set after everything below it.
        self.dirs
            .sort_by_key(|(path, _, _)| path.components().count());
        while let Some((path, name, meta)) = self.dirs.pop() {
            self.set_dir_meta(&path, &name, &meta)?;
        }
        Ok(self.stats)
    }

    /// Walks the parents of `rel` below the root: existing ones must be real directories
    /// (never symlinks), missing ones are created (0755, as tar does). Returns the full path.
    fn prepare_parents(&self, rel: &Path, name: &str) -> Result<PathBuf, Stage3Error> {
        let mut cur = self.root.to_path_buf();
        let mut comps = rel.components().peekable();
        while let Some(comp) = comps.next() {
            cur.push(comp);
            if comps.peek().is_none() {
                break;
            }
            match cur.symlink_metadata() {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    let reason = "its parent is a symlink; writing through it is refused";
                    return Err(self.unsafe_err(name, reason));
                }
                Ok(_) => return Err(self.unsafe_err(name, "its parent is not a directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&cur)
                    .map_err(|e| self.fs_err(name, "create directory", &cur, e))?,
                Err(e) => return Err(self.fs_err(name, "inspect", &cur, e)),
            }
        }
        Ok(cur)
    }

    /// Makes room for an entry at `path`: a non-directory there is unlinked (a symlink itself,
    /// never its target). Returns whether a directory stays there (only when `want_dir`).
    fn clear(&self, path: &Path, name: &str, want_dir: bool) -> Result<bool, Stage3Error> {
        match path.symlink_metadata() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.fs_err(name, "inspect", path, e)),
            Ok(m) if m.is_dir() && want_dir => Ok(true),
            Ok(m) if m.is_dir() => Err(self.unsafe_err(name, "it would replace a directory")),
            Ok(_) => fs::remove_file(path)
                .map(|()| false)
                .map_err(|e| self.fs_err(name, "replace", path, e)),
        }
    }

    /// Writes a regular file with `O_NOFOLLOW | O_EXCL`, then owner, mode, xattrs, mtime.
    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: EntryType,
        path: &Path,
        name: &str,
        meta: &Meta,
    ) -> Result<(), Stage3Error> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| self.fs_err(name, "create", path, e))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut written = 0u64;
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| self.archive_err(name, e))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])
                .map_err(|e| self.fs_err(name, "write", path, e))?;
            written += n as u64;
        }
        if kind != EntryType::GNUSparse && written != entry.size() {
            let e = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside a file",
            );
            return Err(self.archive_err(name, e));
        }
        self.stats.bytes += written;
        self.apply_fd(&file, path, name, meta)
    }

    /// Creates the hard link `path` to the archive path `target`, which must stay inside,
    /// have real directories as parents and exist as a non-directory.
    fn hard_link(
        &self,
        target: &[u8],
        rel: &Path,
        path: &Path,
        name: &str,
    ) -> Result<(), Stage3Error> {
        let target_rel = safe_relative(target)
            .map_err(|r| self.unsafe_err(name, &format!("hard link target: {r}")))?;
        if target_rel.as_os_str().is_empty() || target_rel == rel {
            return Err(self.unsafe_err(name, "a hard link to the destination or to itself"));
        }
        let mut cur = self.root.to_path_buf();
        let mut comps = target_rel.components().peekable();
        while let Some(comp) = comps.next() {
            cur.push(comp);
            let last = comps.peek().is_none();
            match cur.symlink_metadata() {
                Ok(m) if !last && m.is_dir() => {}
                Ok(m) if last && !m.is_dir() => {}
                Ok(_) if last => return Err(self.unsafe_err(name, "a hard link to a directory")),
                Ok(_) => {
                    let reason = "the hard link target's parent is a symlink or not a directory";
                    return Err(self.unsafe_err(name, reason));
                }
                Err(_) => {
                    let reason = "the hard link target is not in the archive before it";
                    return Err(self.unsafe_err(name, reason));
                }
            }
        }
        self.clear(path, name, false)?;
        // linkat(2) without AT_SYMLINK_FOLLOW: a symlink target is linked, not followed.
        fs::hard_link(&cur, path).map_err(|e| self.fs_err(name, "create hard link", path, e))?;
        Ok(())
    }

    /// Applies `meta` through an open file or directory.
    fn apply_fd(
        &mut self,
        file: &File,
        path: &Path,
        name: &str,
        meta: &Meta,
    ) -> Result<(), Stage3Error> {
        meta.apply_fd(file, &mut self.stats.xattrs_skipped)
            .map_err(|(action, e)| self.fs_err(name, &action, path, e))
    }

    /// Applies `meta` by path to a symlink (`chmod: false`) or a node just created.
    fn apply_path(
        &mut self,
        path: &Path,
        name: &str,
        meta: &Meta,
        chmod: bool,
    ) -> Result<(), Stage3Error> {
        meta.apply_path(path, chmod, &mut self.stats.xattrs_skipped)
            .map_err(|(action, e)| self.fs_err(name, &action, path, e))
    }

    /// Directory metadata, through a descriptor opened with `O_NOFOLLOW | O_DIRECTORY`.
    fn set_dir_meta(&mut self, path: &Path, name: &str, meta: &Meta) -> Result<(), Stage3Error> {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| self.fs_err(name, "open directory", path, e))?;
        self.apply_fd(&dir, path, name, meta)
    }

    fn unsafe_err(&self, name: &str, reason: &str) -> Stage3Error {
        Stage3Error::Unsafe {
            tarball: self.tarball.to_path_buf(),
            entry: name.to_string(),
            reason: reason.to_string(),
        }
    }

    fn archive_err(&self, name: &str, source: io::Error) -> Stage3Error {
        let at = if name.is_empty() {
            String::new()
        } else {
            format!(" at entry {name:?}")
        };
        Stage3Error::Archive {
            tarball: self.tarball.to_path_buf(),
            at,
            source,
        }
    }

    fn fs_err(&self, name: &str, action: &str, path: &Path, source: io::Error) -> Stage3Error {
        Stage3Error::Extract {
            tarball: self.tarball.to_path_buf(),
            entry: name.to_string(),
            action: action.to_string(),
            path: path.to_path_buf(),
            source,
        }
    }
}
