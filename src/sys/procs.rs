//! Finding and ending a run's processes through the seam's `/proc` view ([`Sys::pids`],
//! [`Sys::mnt_ns_of`], [`Sys::root_of`], [`Sys::alive`], [`Sys::kill`]): those inside the
//! run's private mount namespace (identified by the inode of `/proc/<pid>/ns/mnt`, recorded
//! in the mount journal), and those chrooted into one of its roots (`/proc/<pid>/root`).
//!
//! The namespace is the run's own (made by unshare(2) for it alone), so matching on it never
//! touches another run or the build machine; neither does matching a root below the run's
//! `M`. [`linux`] reads the real `/proc` for [`super::LinuxSys`].

use std::path::Path;

use nix::sys::signal::Signal;

use super::Sys;

/// The inode of this process's mount namespace.
pub fn own_mnt_ns(sys: &dyn Sys) -> Option<u64> {
    sys.mnt_ns_of(std::process::id())
}

/// Processes (other than this one) in the mount namespace `ns`.
pub fn in_namespace(sys: &dyn Sys, ns: u64) -> Vec<u32> {
    let me = std::process::id();
    sys.pids()
        .into_iter()
        .filter(|&p| p != me && sys.mnt_ns_of(p) == Some(ns))
        .collect()
}

/// Processes (other than this one) whose root directory is `root` or below it.
pub fn rooted_in(sys: &dyn Sys, root: &Path) -> Vec<u32> {
    let me = std::process::id();
    sys.pids()
        .into_iter()
        .filter(|&p| p != me)
        .filter(|&p| sys.root_of(p).is_some_and(|r| r.starts_with(root)))
        .collect()
}

/// Sends SIGKILL to every pid in `pids`, then waits up to `wait` for them to be gone;
/// returns the pids still alive after that (a process in uninterruptible sleep).
pub fn kill_all(sys: &dyn Sys, pids: &[u32], wait: std::time::Duration) -> Vec<u32> {
    for &pid in pids {
        // One that is gone already is what we want.
        let _ = sys.kill(pid, Signal::SIGKILL, false);
    }
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| sys.alive(p)).collect();
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The real `/proc` (proc(5)), read by [`super::LinuxSys`].
pub mod linux {
    /// Every process id in `/proc`.
    pub fn pids() -> Vec<u32> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{Call, LinuxSys, RecordingSys};

    #[test]
    fn this_process_is_alive_and_in_its_own_namespace_list_never() {
        let sys = LinuxSys;
        assert!(sys.alive(std::process::id()));
        let ns = own_mnt_ns(&sys).expect("own namespace");
        assert!(!in_namespace(&sys, ns).contains(&std::process::id()));
    }

    #[test]
    fn kill_all_ends_a_child_and_reports_nothing_left() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let left = kill_all(&LinuxSys, &[child.id()], std::time::Duration::from_secs(5));
        assert!(left.is_empty(), "{left:?}");
        let _ = child.wait();
    }

    #[test]
    fn scans_find_a_runs_processes_by_namespace_and_root_and_kill_all_names_survivors() {
        let sys = RecordingSys::default();
        let m = Path::new("/t/work/r/M");
        sys.add_process(10, 7, Path::new("/"), false);
        sys.add_process(11, 7, &m.join("m"), false);
        sys.add_process(12, 8, &m.join("p"), true);
        sys.add_process(13, 8, Path::new("/t/work/r/M2/m"), false);
        assert_eq!(in_namespace(&sys, 7), [10, 11]);
        assert_eq!(rooted_in(&sys, m), [11, 12]);
        let left = kill_all(&sys, &[11, 12], std::time::Duration::ZERO);
        assert_eq!(left, [12], "the process in uninterruptible sleep survives");
        assert_eq!(
            sys.take(),
            [11, 12].map(|pid| Call::Kill {
                pid,
                signal: Signal::SIGKILL,
                group: false
            })
        );
        assert!(!sys.alive(11) && sys.alive(12) && sys.alive(13));
    }
}
