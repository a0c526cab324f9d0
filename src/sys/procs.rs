//! Finding and ending a run's processes through proc(5): those inside the run's private mount
//! namespace (identified by the inode of `/proc/<pid>/ns/mnt`, recorded in the mount
//! journal), and those chrooted into one of its roots (`/proc/<pid>/root`).
//!
//! The namespace is the run's own (made by unshare(2) for it alone), so matching on it never
//! touches another run or the build machine; neither does matching a root below the run's
//! `M`.

use std::path::Path;

/// Every process id in `/proc`.
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The inode of a process's mount namespace (`None` when it is gone or unreadable).
pub fn mnt_ns(pid: u32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(|m| m.ino())
}

/// The inode of this process's mount namespace.
pub fn own_mnt_ns() -> Option<u64> {
    mnt_ns(std::process::id())
}

/// Processes (other than this one) in the mount namespace `ns`.
pub fn in_namespace(ns: u64) -> Vec<u32> {
    let me = std::process::id();
    all_pids()
        .into_iter()
        .filter(|&p| p != me && mnt_ns(p) == Some(ns))
        .collect()
}

/// Processes (other than this one) whose root directory is `root` or below it.
pub fn rooted_in(root: &Path) -> Vec<u32> {
    let me = std::process::id();
    all_pids()
        .into_iter()
        .filter(|&p| p != me)
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/root")).is_ok_and(|r| r.starts_with(root))
        })
        .collect()
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Sends SIGKILL to every pid in `pids`, then waits up to `wait` for them to be gone;
/// returns the pids still alive after that.
pub fn kill_all(pids: &[u32], wait: std::time::Duration) -> Vec<u32> {
    for &pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_in_its_own_namespace_list_never() {
        assert!(alive(std::process::id()));
        let ns = own_mnt_ns().expect("own namespace");
        assert!(!in_namespace(ns).contains(&std::process::id()));
    }

    #[test]
    fn kill_all_ends_a_child_and_reports_nothing_left() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let left = kill_all(&[child.id()], std::time::Duration::from_secs(5));
        // The child is a zombie until reaped, which `alive` counts as gone.
        assert!(left.is_empty(), "{left:?}");
        let _ = child.wait();
    }
}
