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
}

/// A real child process.
struct LinuxChild(std::process::Child);

impl Spawned for LinuxChild {
    fn id(&self) -> u32 {
        self.0.id()
    }

    fn wait(&mut self) -> std::io::Result<i32> {
        let status = self.0.wait()?;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }

    fn kill_group(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
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
    let root_in_child = root.clone();
    // A worker runs raised; what it starts runs at the build's niceness (crate::sched).
    let niceness = crate::sched::build_niceness();
    // SAFETY: only async-signal-safe calls (chroot, chdir, setpriority, setsid, setpgid,
    // signal, tcsetpgrp, prctl, dup2, fcntl) between fork and exec.
    unsafe {
        c.pre_exec(move || {
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
    Ok(Box::new(LinuxChild(child)))
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
