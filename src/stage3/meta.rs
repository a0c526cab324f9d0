//! What a tar entry says about the file it describes (a safe relative path, numeric owner,
//! permission bits, mtime, extended attributes) and how [`super::extract`] applies that to a
//! file it created, without ever following a symlink.
//!
//! Not for: creating files or deciding what is safe to create (that is `extract.rs`).

use std::ffi::{CString, OsStr};
use std::fs::{self, File, Permissions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{futimens, utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

/// Owner, mode, mtime and extended attributes of one entry.
pub(super) struct Meta {
    uid: u32,
    gid: u32,
    /// Permission bits including setuid, setgid, sticky (`& 0o7777`).
    mode: u32,
    mtime: TimeSpec,
    /// `(name, value)` from `SCHILY.xattr.<name>` PAX records (GNU tar `--xattrs`).
    xattrs: Vec<(String, Vec<u8>)>,
}

/// A failed step of applying metadata: what was being done, and the OS error.
pub(super) type Failed = (String, io::Error);

/// The entry path as a relative path (empty for `./`). Refuses absolute paths, `..`
/// components and NUL bytes; the error says why.
pub(super) fn safe_relative(raw: &[u8]) -> Result<PathBuf, &'static str> {
    if raw.starts_with(b"/") {
        return Err("an absolute path");
    }
    if raw.contains(&0) {
        return Err("a NUL byte in the path");
    }
    let mut out = PathBuf::new();
    for comp in Path::new(OsStr::from_bytes(raw)).components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err("a '..' component in the path"),
            Component::RootDir | Component::Prefix(_) => return Err("an absolute path"),
        }
    }
    Ok(out)
}

/// Reads the metadata of `entry`: numeric owner (PAX `uid`/`gid` are already applied by the
/// tar crate; names are never looked up), permission bits, mtime (PAX `mtime` with its
/// fraction when present) and `SCHILY.xattr.*` attributes.
///
/// Errors: malformed header fields, owners beyond 32 bits, unreadable PAX records.
pub(super) fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let h = entry.header();
    let too_big = |what| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} does not fit in 32 bits"),
        )
    };
    let uid = u32::try_from(h.uid()?).map_err(|_| too_big("uid"))?;
    let gid = u32::try_from(h.gid()?).map_err(|_| too_big("gid"))?;
    let mode = h.mode()? & 0o7777;
    let secs = i64::try_from(h.mtime()?).unwrap_or(i64::MAX);
    let mut mtime = TimeSpec::new(secs as _, 0);
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
                xattrs.push((attr.to_string(), ext.value_bytes().to_vec()));
            } else if key == "mtime" {
                if let Some(t) = ext.value().ok().and_then(parse_pax_time) {
                    mtime = t;
                }
            }
        }
    }
    Ok(Meta {
        uid,
        gid,
        mode,
        mtime,
        xattrs,
    })
}

/// A PAX time `seconds[.fraction]` (non-negative); `None` when malformed.
fn parse_pax_time(s: &str) -> Option<TimeSpec> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok().filter(|&v| v >= 0)?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos: i64 = digits.parse().ok()?;
    Some(TimeSpec::new(secs as _, nanos as _))
}

impl Meta {
    /// Applies owner, mode, xattrs and mtime through an open file or directory. The owner
    /// comes first: chown clears setuid bits and file capabilities. `skipped` counts `user.*`
    /// attributes the filesystem refuses (see [`super::ExtractStats::xattrs_skipped`]).
    pub(super) fn apply_fd(&self, file: &File, skipped: &mut u64) -> Result<(), Failed> {
        std::os::unix::fs::fchown(file, Some(self.uid), Some(self.gid))
            .map_err(|e| ("set the owner of".to_string(), e))?;
        file.set_permissions(Permissions::from_mode(self.mode))
            .map_err(|e| ("set the mode of".to_string(), e))?;
        for (key, value) in &self.xattrs {
            let r = set_xattr(XattrOn::Fd(file), key, value);
            xattr_result(r, key, skipped)?;
        }
        futimens(file.as_raw_fd(), &TimeSpec::UTIME_OMIT, &self.mtime)
            .map_err(|e| ("set the mtime of".to_string(), e.into()))
    }

    /// Applies owner, mode (only with `chmod`: never on symlinks), xattrs and mtime by path,
    /// never following a final symlink. For symlinks and the nodes `mknod` just created.
    pub(super) fn apply_path(
        &self,
        path: &Path,
        chmod: bool,
        skipped: &mut u64,
    ) -> Result<(), Failed> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
            .map_err(|e| ("set the owner of".to_string(), e))?;
        if chmod {
            // `path` is the node just created by mknod, not a symlink: chmod cannot follow.
            fs::set_permissions(path, Permissions::from_mode(self.mode))
                .map_err(|e| ("set the mode of".to_string(), e))?;
        }
        for (key, value) in &self.xattrs {
            let r = set_xattr(XattrOn::Path(path), key, value);
            xattr_result(r, key, skipped)?;
        }
        let nofollow = UtimensatFlags::NoFollowSymlink;
        utimensat(None, path, &TimeSpec::UTIME_OMIT, &self.mtime, nofollow)
            .map_err(|e| ("set the mtime of".to_string(), e.into()))
    }
}

/// Skips (and counts) `user.*` attributes the filesystem does not take (EOPNOTSUPP; EPERM
/// on symlinks and nodes), as GNU tar warns and goes on; any other failure is an error, so a
/// lost `security.capability` never goes unnoticed.
fn xattr_result(r: io::Result<()>, key: &str, skipped: &mut u64) -> Result<(), Failed> {
    let Err(e) = r else { return Ok(()) };
    let refused = matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EPERM));
    if key.starts_with("user.") && refused {
        *skipped += 1;
        return Ok(());
    }
    Err((format!("set extended attribute {key} on"), e))
}

/// Where an extended attribute goes.
enum XattrOn<'a> {
    Fd(&'a File),
    /// By path, not following a final symlink (`lsetxattr`).
    Path(&'a Path),
}

fn set_xattr(on: XattrOn<'_>, key: &str, value: &[u8]) -> io::Result<()> {
    let key = CString::new(key)?;
    let (ptr, len) = (value.as_ptr().cast(), value.len());
    let rc = match on {
        // SAFETY: `key` is a NUL-terminated C string and `ptr`/`len` a valid slice, alive for
        // the call; the kernel only reads them. The descriptor is open (borrowed `File`).
        XattrOn::Fd(file) => unsafe {
            libc::fsetxattr(file.as_raw_fd(), key.as_ptr(), ptr, len, 0)
        },
        XattrOn::Path(path) => {
            let path = CString::new(path.as_os_str().as_bytes())?;
            // SAFETY: as above; `path` is a NUL-terminated C string alive for the call.
            unsafe { libc::lsetxattr(path.as_ptr(), key.as_ptr(), ptr, len, 0) }
        }
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_pax_time_reads_fractions() {
        let t = parse_pax_time("1700000000.5").unwrap();
        assert_eq!((t.tv_sec(), t.tv_nsec()), (1_700_000_000, 500_000_000));
        let t = parse_pax_time("12").unwrap();
        assert_eq!((t.tv_sec(), t.tv_nsec()), (12, 0));
        assert!(parse_pax_time("-1.5").is_none());
        assert!(parse_pax_time("1.x").is_none());
        assert!(parse_pax_time("").is_none());
    }

    #[test]
    fn safe_relative_refuses_escapes() {
        assert_eq!(safe_relative(b"./a/./b/").unwrap(), Path::new("a/b"));
        assert_eq!(safe_relative(b"./").unwrap(), Path::new(""));
        assert!(safe_relative(b"/etc").is_err());
        assert!(safe_relative(b"a/../../b").is_err());
        assert!(safe_relative(b"..").is_err());
        assert!(safe_relative(b"a\0b").is_err());
    }
}
