//! What a step's environment carries so that its builders draw from the pool: `MAKEFLAGS` with
//! the jobserver's auth, `MAKEOPTS` without `-j`, and, for GNU make older than 4.4, the
//! descriptors the fd form names.
//!
//! The two forms (GNU make manual, "POSIX Jobserver Interaction"):
//! - `--jobserver-auth=fifo:PATH` (GNU make 4.4 and newer, ninja 1.13 and newer, cargo's
//!   `jobserver` crate): every client opens the path itself, so any process of the step can
//!   join, recursive or not.
//! - `--jobserver-auth=R,W` (GNU make 4.2 and 4.3; 4.4 still reads it): the descriptors must
//!   be open in the process. make passes them only to commands it knows to be recursive
//!   (`$(MAKE)` or `+`), so a ninja or cargo started by a make rule does not get them.
//!
//! A make given `-jN` on its command line while `MAKEFLAGS` names a jobserver ignores the
//! jobserver ("-jN forced in submake: resetting jobserver mode") and runs N jobs of its own,
//! which is why `MAKEOPTS`, which Portage's `emake` puts on make's command line, must carry no
//! `-j`. Gentoo's ninja-utils.eclass leaves `-j` out of `NINJAOPTS` when `MAKEFLAGS` names a
//! fifo jobserver and `NINJAOPTS` is unset, so the environment leaves `NINJAOPTS` unset.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::PoolError;

/// A GNU make version, from `make --version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MakeVersion {
    /// Major version (4 in 4.4.1).
    pub major: u32,
    /// Minor version (4 in 4.4.1).
    pub minor: u32,
}

impl MakeVersion {
    /// Reads the version from the output of `make --version`, whose first line is
    /// `GNU Make <major>.<minor>[.<patch>]` (e.g. `GNU Make 4.3`).
    ///
    /// Errors: [`PoolError::BadMakeVersion`] with the first line when it is not that (not GNU
    /// make, or no make at all).
    pub fn parse(version_output: &str) -> Result<MakeVersion, PoolError> {
        let first = version_output.lines().next().unwrap_or("").trim();
        let bad = || PoolError::BadMakeVersion(first.chars().take(80).collect());
        let version = first.strip_prefix("GNU Make ").ok_or_else(bad)?;
        let mut parts = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty());
        let major = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let minor = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        Ok(MakeVersion { major, minor })
    }

    /// Whether this make understands `--jobserver-auth=fifo:PATH` (4.4 and newer).
    pub fn has_fifo_auth(self) -> bool {
        (self.major, self.minor) >= (4, 4)
    }

    /// Whether this make understands `--jobserver-auth=R,W` (4.2 and newer; older ones
    /// spelled it `--jobserver-fds`).
    pub fn has_fd_auth(self) -> bool {
        (self.major, self.minor) >= (4, 2)
    }
}

/// How a step reaches its target's fifo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobserverAuth {
    /// `--jobserver-auth=fifo:PATH`; PATH as seen inside the environment.
    Fifo(PathBuf),
    /// `--jobserver-auth=R,W`: descriptors open in the step's process.
    Fds {
        /// The descriptor tokens are read from.
        read: RawFd,
        /// The descriptor tokens are written back to.
        write: RawFd,
    },
}

impl JobserverAuth {
    /// The option as make reads it from `MAKEFLAGS`.
    pub fn arg(&self) -> String {
        match self {
            JobserverAuth::Fifo(p) => format!("--jobserver-auth=fifo:{}", p.display()),
            JobserverAuth::Fds { read, write } => format!("--jobserver-auth={read},{write}"),
        }
    }
}

/// Which form a step should get for the make found in its environment: the fifo form for
/// 4.4 and newer, the fd form for 4.2 and 4.3, `None` before 4.2 (no pool: such a make runs
/// serially unless given `-j`).
pub fn auth_style(version: MakeVersion) -> Option<AuthStyle> {
    if version.has_fifo_auth() {
        Some(AuthStyle::Fifo)
    } else if version.has_fd_auth() {
        Some(AuthStyle::Fds)
    } else {
        None
    }
}

/// The two forms of [`JobserverAuth`], before descriptors are opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `fifo:PATH`.
    Fifo,
    /// `R,W`.
    Fds,
}

/// The environment variables a step gets: `MAKEFLAGS` naming the jobserver, `MAKEOPTS`
/// without `-j` (with `-l <load>` when a load limit is given, which Portage's emake and
/// ninja-utils.eclass pass on). `NINJAOPTS` is not set (see the module documentation).
pub fn step_env(auth: &JobserverAuth, load_limit: Option<f64>) -> Vec<(String, String)> {
    let makeopts = match load_limit {
        Some(l) => format!("-l{l}"),
        None => String::new(),
    };
    vec![
        ("MAKEFLAGS".to_string(), auth.arg()),
        ("MAKEOPTS".to_string(), makeopts),
    ]
}

/// Opens the fifo at `fifo` twice (read end, write end, both blocking, as GNU make expects
/// of the fd form) and arranges for `cmd`'s child to inherit both descriptors; returns the
/// auth naming them. The descriptors close in the parent when `cmd` is dropped.
///
/// Use it for GNU make 4.2 / 4.3, whose `MAKEFLAGS` cannot name a fifo. `fifo` is the path
/// the spawning process sees (for a chrooted step, the host path of the target's fifo).
///
/// Errors: [`PoolError::Io`] naming `fifo`.
pub fn inherit_fds(cmd: &mut Command, fifo: &Path) -> Result<JobserverAuth, PoolError> {
    let open = |what: &'static str| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(fifo)
            .map(OwnedFd::from)
            .map_err(|e| PoolError::io(what, fifo, e))
    };
    let read = open("cannot open the read end of")?;
    let write = open("cannot open the write end of")?;
    let auth = JobserverAuth::Fds {
        read: read.as_raw_fd(),
        write: write.as_raw_fd(),
    };
    // SAFETY: the closure runs in the child between fork and exec and only calls fcntl(2),
    // which is async-signal-safe; it allocates nothing. The descriptors are owned by the
    // closure, so they stay open until `cmd` is dropped.
    unsafe {
        cmd.pre_exec(move || {
            for fd in [read.as_raw_fd(), write.as_raw_fd()] {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_versions_choose_the_auth_form() {
        let v43 = MakeVersion::parse("GNU Make 4.3\nBuilt for x86_64-pc-linux-gnu\n").unwrap();
        assert_eq!(v43, MakeVersion { major: 4, minor: 3 });
        assert_eq!(auth_style(v43), Some(AuthStyle::Fds));
        let v441 = MakeVersion::parse("GNU Make 4.4.1\n").unwrap();
        assert_eq!(auth_style(v441), Some(AuthStyle::Fifo));
        let v381 = MakeVersion::parse("GNU Make 3.81").unwrap();
        assert_eq!(auth_style(v381), None);
        assert!(MakeVersion::parse("GNU Make 5.0beta")
            .unwrap()
            .has_fifo_auth());
        for bad in ["", "bmake 20240711", "GNU Make", "GNU Make x.y"] {
            let err = MakeVersion::parse(bad).unwrap_err().to_string();
            assert!(err.contains("GNU Make <major>.<minor>"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_step_env_names_the_jobserver_and_carries_no_j() {
        let env = step_env(&JobserverAuth::Fifo("/run/jobserver".into()), None);
        assert_eq!(env[0].1, "--jobserver-auth=fifo:/run/jobserver");
        assert_eq!(env[1], ("MAKEOPTS".into(), String::new()));
        let env = step_env(&JobserverAuth::Fds { read: 3, write: 4 }, Some(2.5));
        assert_eq!(env[0].1, "--jobserver-auth=3,4");
        assert_eq!(env[1].1, "-l2.5");
        assert!(!env[1].1.contains("-j"));
    }
}
