//! Starting a process chrooted into an environment, through the seam
//! ([`super::Sys::spawn_chrooted`]): a step (`/bin/sh -c SCRIPT` in a session of its own,
//! output to a pipe, the event pipe as file descriptor 3), a rescue shell (a foreground
//! process group on the worker's terminal), or a tool or shell the caller waits for in its
//! own process group (the archive's in-environment squashfs tool, binhost indexing,
//! `distcc-helper`'s distccd, the `shell` command's shell; [`output`] reads what one
//! writes).
//!
//! Not here: what runs (recipe), reading its output (worker).

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::SysError;

/// How the started process stands towards the caller's terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// A session of its own (setsid(2)), no controlling terminal, standard input
    /// `/dev/null`: a step. Its session id is its process group, killed as a whole.
    NewSession,
    /// A process group of its own made the terminal's foreground group (setpgid(2),
    /// tcsetpgrp(3) on standard input), standard input inherited: a rescue shell.
    Foreground,
    /// The caller's session and process group, standard input inherited, killed (SIGKILL)
    /// when the thread that started it ends (`PR_SET_PDEATHSIG`, prctl(2)): a tool or a
    /// shell the caller waits for.
    Caller,
    /// A process group of its own (setpgid(2)) in the caller's session, standard input
    /// inherited, killed (SIGKILL) when the thread that started it ends
    /// (`PR_SET_PDEATHSIG`): a helper the run owns (the archive's squashfs tool, distccd),
    /// whose whole group the caller kills (killpg(2)) at its timeout or end, children
    /// included; a terminal's Ctrl-C reaches the caller only, which decides.
    Own,
}

/// A process to start chrooted: chroot(2) to `root`, chdir("/"), then exec `program` with
/// `args` and exactly `env`.
#[derive(Debug)]
pub struct ChrootCommand {
    /// The environment's root on the build machine (absolute).
    pub root: PathBuf,
    /// The program, as seen inside `root` (`/bin/sh`).
    pub program: String,
    /// Its arguments (without the program name).
    pub args: Vec<String>,
    /// The whole environment (nothing is inherited).
    pub env: BTreeMap<String, String>,
    /// Session or foreground group.
    pub group: Group,
    /// Standard output and error (`None`: inherited).
    pub output: Option<OwnedFd>,
    /// Becomes file descriptor 3 in the process (a step's event pipe); `None`: none.
    pub fd3: Option<OwnedFd>,
    /// A cgroup v2 `cgroup.procs` file open for writing: the process joins that cgroup
    /// before it executes anything (it writes `0`, itself), so no descendant escapes it (a
    /// step's cost, `crate::pool::cost`); `None`: it stays in the caller's cgroup.
    pub cgroup: Option<OwnedFd>,
}

/// What a waited-for process and the descendants it waited for used (wait4(2)'s rusage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// User plus system CPU time, microseconds.
    pub cpu_us: u64,
    /// The largest resident set of any single one of those processes, bytes
    /// (`ru_maxrss`, kilobytes on Linux).
    pub max_rss_bytes: u64,
}

/// A process started by [`super::Sys::spawn_chrooted`].
pub trait Spawned: Send {
    /// Its process id (0 for a recorded one, which has none).
    fn id(&self) -> u32;
    /// Waits for it; its exit code, 128 + the signal number when a signal killed it.
    ///
    /// Errors: wait(2) failed.
    fn wait(&mut self) -> std::io::Result<i32>;
    /// Kills its whole process group (SIGKILL): nothing it started may outlive it.
    fn kill_group(&mut self);
    /// What it used, once [`Spawned::wait`] returned (`None` before, or when not known).
    fn usage(&self) -> Option<Usage> {
        None
    }
}

/// A real child process; reaped with wait4(2), which also gives what it used.
struct LinuxChild {
    child: std::process::Child,
    /// Its exit code and usage once reaped.
    reaped: Option<(i32, Usage)>,
}

impl Spawned for LinuxChild {
    fn id(&self) -> u32 {
        self.child.id()
    }

    fn wait(&mut self) -> std::io::Result<i32> {
        if let Some((code, _)) = self.reaped {
            return Ok(code);
        }
        let pid = self.child.id() as libc::pid_t;
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain data; all-zero is a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: wait4 writes an int through `status` and a rusage through `ru`, both
            // alive for the call; `pid` is our child, not reaped yet (std never waits for it:
            // `child` is only used for its pid and kept so nothing else reaps it).
            let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            if rc == pid {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let code = std::process::ExitStatus::from_raw(status);
        let code = code
            .code()
            .unwrap_or_else(|| 128 + code.signal().unwrap_or(0));
        let us = |t: libc::timeval| (t.tv_sec.max(0) as u64) * 1_000_000 + t.tv_usec.max(0) as u64;
        let usage = Usage {
            cpu_us: us(ru.ru_utime).saturating_add(us(ru.ru_stime)),
            max_rss_bytes: (ru.ru_maxrss.max(0) as u64).saturating_mul(1024),
        };
        self.reaped = Some((code, usage));
        Ok(code)
    }

    fn kill_group(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    fn usage(&self) -> Option<Usage> {
        self.reaped.map(|(_, u)| u)
    }
}

/// The real spawn (root): fork, chroot, chdir, the build's niceness, session or foreground
/// group, fd 3, exec.
pub(super) fn spawn(cmd: ChrootCommand) -> Result<Box<dyn Spawned>, SysError> {
    let ChrootCommand {
        root,
        program,
        args,
        env,
        group,
        output,
        fd3,
        cgroup,
    } = cmd;
    let failed = |source: std::io::Error| SysError::Spawn {
        program: program.clone(),
        root: root.clone(),
        source,
    };
    let mut c = Command::new(&program);
    c.args(&args).env_clear().envs(&env);
    if group == Group::NewSession {
        c.stdin(Stdio::null());
    }
    if let Some(out) = output {
        c.stdout(Stdio::from(out.try_clone().map_err(failed)?))
            .stderr(Stdio::from(out));
    }
    let fd3_raw = fd3.as_ref().map(|f| f.as_raw_fd());
    let cgroup_raw = cgroup.as_ref().map(|f| f.as_raw_fd());
    let root_in_child = root.clone();
    // A worker runs raised; what it starts runs at the build's niceness (crate::sched).
    let niceness = crate::sched::build_niceness();
    // SAFETY: only async-signal-safe calls (write, chroot, chdir, setpriority, setsid,
    // setpgid, signal, tcsetpgrp, prctl, dup2, fcntl) between fork and exec.
    unsafe {
        c.pre_exec(move || {
            // First, while the path of the cgroup file is still the host's: join the cgroup.
            if let Some(fd) = cgroup_raw {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            std::os::unix::fs::chroot(&root_in_child)?;
            std::env::set_current_dir("/")?;
            if let Some(n) = niceness {
                libc::setpriority(libc::PRIO_PROCESS, 0, n);
            }
            match group {
                Group::NewSession => {
                    nix::unistd::setsid().map_err(std::io::Error::from)?;
                }
                Group::Foreground => {
                    libc::setpgid(0, 0);
                    libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                    libc::tcsetpgrp(0, libc::getpid());
                    libc::signal(libc::SIGTTOU, libc::SIG_DFL);
                }
                Group::Caller => {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Group::Own => {
                    if libc::setpgid(0, 0) < 0
                        || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            let moved = match fd3_raw {
                // Already 3: only the close-on-exec flag goes.
                Some(3) => libc::fcntl(3, libc::F_SETFD, 0),
                Some(fd) => libc::dup2(fd, 3),
                None => 0,
            };
            if moved < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = c.spawn().map_err(failed)?;
    // The parent's copies of the pipes' write ends: the readers see the end with the child.
    drop(c);
    drop(fd3);
    drop(cgroup);
    Ok(Box::new(LinuxChild {
        child,
        reaped: None,
    }))
}

/// A recorded process: it never ran; `wait` returns the exit code it was given.
pub(super) struct RecordedChild(pub(super) i32);

impl Spawned for RecordedChild {
    fn id(&self) -> u32 {
        0
    }

    fn wait(&mut self) -> std::io::Result<i32> {
        Ok(self.0)
    }

    fn kill_group(&mut self) {}
}

/// A chroot spawn as [`super::RecordingSys`] records it: everything but the descriptors,
/// which are only said to be there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChrootCall {
    /// [`ChrootCommand::root`].
    pub root: PathBuf,
    /// [`ChrootCommand::program`].
    pub program: String,
    /// [`ChrootCommand::args`].
    pub args: Vec<String>,
    /// [`ChrootCommand::env`].
    pub env: BTreeMap<String, String>,
    /// [`ChrootCommand::group`].
    pub group: Group,
    /// Standard output and error went to a descriptor of the caller's.
    pub output_piped: bool,
    /// A descriptor was passed as fd 3.
    pub fd3: bool,
}

impl ChrootCall {
    /// The record of `cmd`.
    pub fn of(cmd: &ChrootCommand) -> ChrootCall {
        ChrootCall {
            root: cmd.root.clone(),
            program: cmd.program.clone(),
            args: cmd.args.clone(),
            env: cmd.env.clone(),
            group: cmd.group,
            output_piped: cmd.output.is_some(),
            fd3: cmd.fd3.is_some(),
        }
    }
}

/// One readable line: `chroot ROOT: PROGRAM ARGS (env NAMES; GROUP[; output piped][; fd 3])`.
impl std::fmt::Display for ChrootCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "chroot {}: {}", self.root.display(), self.program)?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        let names: Vec<&str> = self.env.keys().map(String::as_str).collect();
        write!(f, " (env {}", names.join(","))?;
        f.write_str(match self.group {
            Group::NewSession => "; new session",
            Group::Foreground => "; foreground",
            Group::Caller => "; caller's group",
            Group::Own => "; own group",
        })?;
        if self.output_piped {
            f.write_str("; output piped")?;
        }
        if self.fd3 {
            f.write_str("; fd 3")?;
        }
        f.write_str(")")
    }
}

/// Runs `cmd` through `sys` to its end with its standard output and error going to one pipe
/// (whatever `cmd.output` was), and returns its exit code ([`Spawned::wait`]) and what it
/// wrote, interleaved as written.
///
/// Errors: [`SysError::Spawn`] when it cannot start, cannot be waited for, or the pipe
/// cannot be made or read.
pub fn output(sys: &dyn super::Sys, mut cmd: ChrootCommand) -> Result<(i32, Vec<u8>), SysError> {
    use std::io::Read;
    let failed = |cmd: &ChrootCommand, source: std::io::Error| SysError::Spawn {
        program: cmd.program.clone(),
        root: cmd.root.clone(),
        source,
    };
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| failed(&cmd, std::io::Error::from(e)))?;
    cmd.output = Some(write);
    let (program, root) = (cmd.program.clone(), cmd.root.clone());
    // The write end goes with `cmd`: the read below ends when the process closes its copy.
    let mut child = sys.spawn_chrooted(cmd)?;
    let mut text = Vec::new();
    let read_result = std::fs::File::from(read).read_to_end(&mut text);
    let code = child.wait();
    let again = |source| SysError::Spawn {
        program: program.clone(),
        root: root.clone(),
        source,
    };
    read_result.map_err(again)?;
    Ok((code.map_err(again)?, text))
}
