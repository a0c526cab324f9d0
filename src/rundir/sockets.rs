//! The names of a run's unix sockets: the supervisor's (workers connect to it,
//! [`crate::protocol`]) and the attach socket (screens connect to it, [`crate::attach`]),
//! each in the run directory or, when that path is too long for `sun_path`, under `/run`;
//! and the sweep of the sockets a dead run left behind.

use std::path::{Path, PathBuf};

/// File name of the supervisor's socket inside the run directory.
pub const SUPERVISOR: &str = "supervisor.sock";

/// Longest socket path used as it is; `sun_path` holds 108 bytes with the final NUL (unix(7)).
const MAX_SOCKET_PATH: usize = 100;

/// The supervisor's socket (workers connect to it) for a run directory: `<run_dir>/supervisor.sock`, or, when that
/// path is too long for a unix socket (a deep tree), `/run/build-helper-<16 hex>.sock`
/// named after a SHA-256 of the run directory. Supervisor and workers compute the same path.
pub fn supervisor(run_dir: &Path) -> PathBuf {
    run_socket(run_dir, SUPERVISOR, "")
}

/// The unix socket `file` of a run directory: `<run_dir>/<file>`, or, when that path is too
/// long for `sun_path`, `/run/build-helper-<16 hex><suffix>.sock` named after a SHA-256 of
/// the run directory (so every process computes the same path).
pub fn run_socket(run_dir: &Path, file: &str, suffix: &str) -> PathBuf {
    let path = run_dir.join(file);
    if path.as_os_str().len() <= MAX_SOCKET_PATH {
        return path;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(run_dir.as_os_str().as_encoded_bytes());
    PathBuf::from(format!(
        "/run/build-helper-{}{suffix}.sock",
        hex::encode(&digest[..8])
    ))
}

/// File name of the attach socket inside the run directory.
pub const ATTACH: &str = "attach.sock";

/// The attach socket of a run directory: `<run_dir>/attach.sock`, or, when that path is too
/// long for a unix socket, `/run/build-helper-<16 hex>-attach.sock` named after a SHA-256 of
/// the run directory (as [`supervisor`] does for the workers').
pub fn attach(run_dir: &Path) -> PathBuf {
    run_socket(run_dir, ATTACH, "-attach")
}

/// Removes the unix sockets a dead run left behind: the supervisor's
/// ([`supervisor`]) and the attach socket ([`attach`]), in the run directory or under
/// `/run` (`/run/build-helper-<16 hex>[-attach].sock`). Called by `status` and `umount`.
///
/// A run is dead when no process holds its lock (`<run_dir>/lock`, taken by the supervisor
/// for its whole life): this takes the lock shared while it removes, so a supervisor that
/// starts meanwhile (`--resume`) cannot bind a socket that is then removed. Only sockets
/// are removed (a file of another kind at that path is left alone); a run without a lock
/// file, a live run, or a caller without the rights (a non-root `status`) removes nothing.
///
/// Returns the paths removed.
pub fn remove_stale(run_dir: &Path) -> Vec<PathBuf> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileTypeExt;
    let paths = [supervisor(run_dir), attach(run_dir)];
    let is_socket =
        |p: &PathBuf| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket());
    if !paths.iter().any(is_socket) {
        return Vec::new();
    }
    let Ok(lock) = std::fs::File::open(run_dir.join(super::LOCK)) else {
        return Vec::new();
    };
    // SAFETY: flock on a descriptor this function owns; released when `lock` is dropped.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } != 0 {
        // Held by a live supervisor (or flock failed): its sockets are in use.
        return Vec::new();
    }
    paths
        .into_iter()
        .filter(|p| is_socket(p) && std::fs::remove_file(p).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_run_directories_get_a_short_supervisor() {
        let short = Path::new("/t/work/a-1");
        assert_eq!(supervisor(short), short.join(SUPERVISOR));
        let deep = PathBuf::from(format!("/{}/work/a-1", "d".repeat(120)));
        let p = supervisor(&deep);
        assert!(
            p.starts_with("/run") && p.as_os_str().len() < 60,
            "{}",
            p.display()
        );
        assert_eq!(p, supervisor(&deep));
    }
}
