//! What a step cost: CPU time (user + system) and peak memory of its whole process tree.
//!
//! Two sources:
//! - a cgroup v2 leaf made for the step (cgroups(7), the kernel's cgroup-v2.rst):
//!   `cpu.stat`'s `usage_usec` counts every process that ever ran in it, and `memory.peak`
//!   (Linux 5.19, memory controller enabled for the leaf) is the tree's peak *total* usage,
//!   page cache included. Used where `/sys/fs/cgroup` is a cgroup2 mount this process can
//!   write under;
//! - otherwise wait4(2)'s rusage of the step's first process: `ru_utime + ru_stime` covers
//!   it and every descendant it waited for (orphans reparented elsewhere are missed), and
//!   `ru_maxrss` is the largest resident set of any *single* process among them, not the
//!   tree's sum.
//!
//! A cgroup without the memory controller gives CPU from the cgroup and memory from rusage
//! ([`CostSource::CgroupCpuRusageMemory`]).

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::PoolError;

/// Where a [`StepCost`]'s figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CostSource {
    /// Both from the step's cgroup v2 leaf: the whole tree's CPU and peak total memory.
    Cgroup,
    /// CPU from the cgroup; peak memory from rusage (largest single process).
    CgroupCpuRusageMemory,
    /// Both from wait4(2)'s rusage: waited-for descendants' CPU, largest single process's
    /// peak resident set.
    Rusage,
}

/// What one step cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCost {
    /// CPU time, user + system, microseconds.
    pub cpu_us: u64,
    /// Peak memory, bytes (its meaning depends on `source`).
    pub peak_rss_bytes: u64,
    /// Where the figures come from.
    pub source: CostSource,
}

/// A [`StepCost`] from a rusage filled by wait4(2) or getrusage(2) (`ru_maxrss` is in
/// kilobytes on Linux).
pub fn cost_from_rusage(ru: &libc::rusage) -> StepCost {
    let us = |tv: libc::timeval| {
        (tv.tv_sec.max(0) as u64)
            .saturating_mul(1_000_000)
            .saturating_add(tv.tv_usec.max(0) as u64)
    };
    StepCost {
        cpu_us: us(ru.ru_utime).saturating_add(us(ru.ru_stime)),
        peak_rss_bytes: (ru.ru_maxrss.max(0) as u64).saturating_mul(1024),
        source: CostSource::Rusage,
    }
}

/// Waits for the child `pid` with wait4(2) and returns its raw wait status (decode with
/// `libc::WIFEXITED` and friends, or `std::process::ExitStatus::from_raw`) and its cost.
/// Use it instead of `Child::wait` for a step's first process.
///
/// Errors: [`PoolError::Io`] when wait4 fails (no such child: it was already waited for).
pub fn wait_with_cost(pid: u32) -> Result<(i32, StepCost), PoolError> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| {
        PoolError::io(
            "no such process id",
            format!("{pid}"),
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        )
    })?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4 writes an int through `status` and a rusage through `ru`, both alive
        // for the call.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if rc == pid {
            return Ok((status, cost_from_rusage(&ru)));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(PoolError::io(
                "cannot wait for process",
                format!("{pid}"),
                e,
            ));
        }
    }
}

/// Where step cgroups are made: a cgroup v2 directory this process may create children in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupRoot {
    dir: PathBuf,
}

/// The cgroup v2 path of this process (the `0::<path>` line of `/proc/self/cgroup`).
fn own_cgroup(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

impl CgroupRoot {
    /// The cgroup of this process in the cgroup v2 hierarchy, when `/sys/fs/cgroup` (the
    /// unified layout) or `/sys/fs/cgroup/unified` (systemd's hybrid layout) is a cgroup2
    /// mount (statfs magic `CGROUP2_SUPER_MAGIC`) and that directory is writable. `None`
    /// otherwise: use rusage.
    pub fn detect() -> Option<CgroupRoot> {
        // The unified layout, else the v2 hierarchy of the hybrid one (systemd's
        // `/sys/fs/cgroup/unified`, which has no controllers: CPU only).
        let mount = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .map(Path::new)
            .find(|m| is_cgroup2(m))?;
        let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let rel = own_cgroup(&text)?.trim().trim_start_matches('/');
        let dir = mount.join(rel);
        writable(&dir).then_some(CgroupRoot { dir })
    }

    /// A given cgroup v2 directory (for tests, or a delegated subtree).
    ///
    /// Errors: [`PoolError::Io`] when `dir` is not on a cgroup2 filesystem or not writable.
    pub fn at(dir: &Path) -> Result<CgroupRoot, PoolError> {
        if !is_cgroup2(dir) || !writable(dir) {
            return Err(PoolError::io(
                "not a writable cgroup v2 directory:",
                dir,
                std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            ));
        }
        Ok(CgroupRoot {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory step cgroups are created in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the leaf `<dir>/<name>` for one step (`name`: no `/`, e.g.
    /// `bh-<target>-<step>-<pid>`).
    ///
    /// Errors: [`PoolError::Io`] naming the directory (it exists already: a crashed run's;
    /// remove it with rmdir once empty).
    pub fn create(&self, name: &str) -> Result<StepCgroup, PoolError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(PoolError::io(
                "bad cgroup name",
                name,
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            ));
        }
        let path = self.dir.join(name);
        std::fs::create_dir(&path).map_err(|e| PoolError::io("cannot create cgroup", &path, e))?;
        Ok(StepCgroup {
            path,
            removed: false,
        })
    }
}

// f_type and the magic are a c_long on some architectures and a u32 on others; both are
// compared as i64.
#[allow(clippy::unnecessary_cast)]
fn is_cgroup2(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a statfs, both alive for the call.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == libc::CGROUP2_SUPER_MAGIC as i64
}

fn writable(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated path alive for the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// What a step cgroup's files say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupReading {
    /// `cpu.stat` `usage_usec`: microseconds of CPU, user + system.
    pub cpu_us: u64,
    /// `memory.peak` in bytes, `None` when the memory controller is not enabled for it.
    pub memory_peak: Option<u64>,
}

/// `usage_usec` from the text of a `cpu.stat` file (`usage_usec 1234` lines).
///
/// Errors: a description when the line is missing or not a number.
pub fn parse_cpu_stat(text: &str) -> Result<u64, String> {
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no `usage_usec <number>` line".to_string())
}

/// One step's cgroup v2 leaf; removed (rmdir) by [`StepCgroup::remove`] or on drop.
#[derive(Debug)]
pub struct StepCgroup {
    path: PathBuf,
    removed: bool,
}

impl StepCgroup {
    /// The leaf's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the running process `pid` into the leaf (its later children follow it; children
    /// it already has stay where they are).
    ///
    /// Errors: [`PoolError::Io`] naming `cgroup.procs`.
    pub fn join(&self, pid: u32) -> Result<(), PoolError> {
        let procs = self.path.join("cgroup.procs");
        std::fs::write(&procs, format!("{pid}\n"))
            .map_err(|e| PoolError::io("cannot move a process into", procs, e))
    }

    /// Makes `cmd`'s child join the leaf before it executes anything, so no descendant can
    /// escape it: the parent opens `cgroup.procs`, the child writes `0` (itself) to it.
    ///
    /// Errors: [`PoolError::Io`] naming `cgroup.procs`.
    pub fn join_on_spawn(&self, cmd: &mut Command) -> Result<(), PoolError> {
        let procs = self.path.join("cgroup.procs");
        let fd: OwnedFd = std::fs::OpenOptions::new()
            .write(true)
            .open(&procs)
            .map_err(|e| PoolError::io("cannot open", &procs, e))?
            .into();
        // SAFETY: the closure runs in the child between fork and exec and only calls
        // write(2), which is async-signal-safe; it allocates nothing. The descriptor is
        // owned by the closure (close-on-exec), alive until `cmd` is dropped.
        unsafe {
            cmd.pre_exec(move || {
                let rc = libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1);
                if rc == 1 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        Ok(())
    }

    /// Reads `cpu.stat` and, where it exists, `memory.peak`.
    ///
    /// Errors: [`PoolError::Io`] or [`PoolError::Format`] naming the file.
    pub fn read(&self) -> Result<CgroupReading, PoolError> {
        let stat = self.path.join("cpu.stat");
        let text =
            std::fs::read_to_string(&stat).map_err(|e| PoolError::io("cannot read", &stat, e))?;
        let cpu_us = parse_cpu_stat(&text).map_err(|why| PoolError::Format {
            path: stat.clone(),
            why,
        })?;
        let peak = self.path.join("memory.peak");
        let memory_peak = match std::fs::read_to_string(&peak) {
            Ok(t) => Some(t.trim().parse().map_err(|_| PoolError::Format {
                path: peak.clone(),
                why: "not a number of bytes".into(),
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(PoolError::io("cannot read", &peak, e)),
        };
        Ok(CgroupReading {
            cpu_us,
            memory_peak,
        })
    }

    /// The step's cost from the leaf, with `rusage` (from [`wait_with_cost`]) filling in the
    /// peak memory when the leaf has no `memory.peak`.
    ///
    /// Errors: as [`StepCgroup::read`].
    pub fn cost(&self, rusage: &StepCost) -> Result<StepCost, PoolError> {
        let r = self.read()?;
        Ok(match r.memory_peak {
            Some(peak) => StepCost {
                cpu_us: r.cpu_us,
                peak_rss_bytes: peak,
                source: CostSource::Cgroup,
            },
            None => StepCost {
                cpu_us: r.cpu_us,
                peak_rss_bytes: rusage.peak_rss_bytes,
                source: CostSource::CgroupCpuRusageMemory,
            },
        })
    }

    /// Removes the leaf. It must be empty: call it after the step's process tree is gone.
    /// The kernel may report the last exit a moment late, so a busy leaf is retried for up
    /// to one second.
    ///
    /// Errors: [`PoolError::Io`] naming the leaf (processes are still in it: end them, e.g.
    /// by writing 1 to its `cgroup.kill`, then remove it).
    pub fn remove(mut self) -> Result<(), PoolError> {
        self.removed = true;
        remove_dir_retrying(&self.path)
    }
}

/// Removes the step leaf at `path` that a process which is gone left behind (a killed
/// worker's): what still runs in it is killed first (`cgroup.kill`, Linux 5.14), then the
/// empty leaf is removed, retried for up to `wait` while the kernel reports the exits.
/// Nothing there is no error.
///
/// Errors: [`PoolError::Io`] naming the leaf when it stays busy or cannot be removed.
pub fn remove_leaf(path: &Path, wait: std::time::Duration) -> Result<(), PoolError> {
    if !path.exists() {
        return Ok(());
    }
    let _ = std::fs::write(path.join("cgroup.kill"), "1");
    rmdir_while_busy(path, wait)
}

/// Removes the empty cgroup `path`, retried for up to one second while busy.
fn remove_dir_retrying(path: &Path) -> Result<(), PoolError> {
    rmdir_while_busy(path, std::time::Duration::from_secs(1))
}

/// rmdir(2) of `path`, retried every 10 ms for up to `wait` while the kernel still counts
/// exiting processes in it (EBUSY); gone already is no error.
fn rmdir_while_busy(path: &Path, wait: std::time::Duration) -> Result<(), PoolError> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(PoolError::io("cannot remove cgroup", path, e)),
        }
    }
}

impl Drop for StepCgroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_dir_retrying(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rusage_is_read_in_microseconds_and_bytes() {
        // SAFETY: rusage is plain data; all-zero is a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        ru.ru_utime.tv_sec = 2;
        ru.ru_utime.tv_usec = 500;
        ru.ru_stime.tv_usec = 250_000;
        ru.ru_maxrss = 1000;
        let c = cost_from_rusage(&ru);
        assert_eq!(c.cpu_us, 2_250_500);
        assert_eq!(c.peak_rss_bytes, 1_024_000);
        assert_eq!(c.source, CostSource::Rusage);
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"source\":\"rusage\""), "{json}");
    }

    #[test]
    fn cpu_stat_and_own_cgroup_parse() {
        let stat = "usage_usec 12345\nuser_usec 10000\nsystem_usec 2345\n";
        assert_eq!(parse_cpu_stat(stat).unwrap(), 12345);
        assert!(parse_cpu_stat("user_usec 1\n").is_err());
        let cg = "4:memory:/x\n0::/system.slice/bh.service\n";
        assert_eq!(own_cgroup(cg), Some("/system.slice/bh.service"));
        assert_eq!(own_cgroup("1:cpu:/\n"), None);
    }

    #[test]
    #[allow(clippy::zombie_processes)] // wait4 below reaps it
    fn a_waited_child_reports_its_cpu_time() {
        let child = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let (status, cost) = wait_with_cost(child.id()).unwrap();
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert!(cost.cpu_us > 0, "{cost:?}");
        assert!(cost.peak_rss_bytes > 0, "{cost:?}");
    }
}
