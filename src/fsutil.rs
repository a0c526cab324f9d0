//! Small filesystem helpers shared by the state files: atomic writes with explicit modes
//! (whatever the umask: run files are private, DESIGN.md "Trust boundaries").

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory is written,
/// fsynced and renamed over `path`, then the directory is fsynced (the pattern of pueue's
/// state file, with the fsync it skips). A crash leaves either the old or the new content.
/// The file gets mode 0600 (root's private state), whatever the umask.
///
/// Errors: any I/O error, with the path in its message.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_mode(path, bytes, true, 0o600)
}

/// Like [`write_atomic`], with file mode `mode` (e.g. 0o644 for a history's metadata that
/// other users may read), set explicitly whatever the umask.
///
/// Errors: any I/O error, with the path in its message.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    replace_mode(path, bytes, true, mode)
}

/// Like [`write_atomic`], with the fsyncs only when `durable`: the file is replaced whole
/// (never half-written) but a crash may leave the previous content. Mode 0600.
///
/// Errors: any I/O error, with the path in its message.
pub fn replace(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    replace_mode(path, bytes, durable, 0o600)
}

fn replace_mode(path: &Path, bytes: &[u8], durable: bool, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.partial"));
    let with_path = |e: std::io::Error, p: &Path| {
        std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
    };
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| with_path(e, &tmp))?;
        // An existing temporary file keeps its old mode, and the umask narrows a new one.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| with_path(e, &tmp))?;
        file.write_all(bytes).map_err(|e| with_path(e, &tmp))?;
        if durable {
            file.sync_all().map_err(|e| with_path(e, &tmp))?;
        }
    }
    std::fs::rename(&tmp, path).map_err(|e| with_path(e, path))?;
    if durable {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn write_atomic_replaces_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        super::write_atomic(&p, b"one").unwrap();
        super::write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
