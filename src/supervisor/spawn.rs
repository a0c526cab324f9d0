//! Starting a worker process inside a new pseudo-terminal (pty(7)) that the supervisor owns.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;

use tokio::sync::mpsc::UnboundedSender;

use crate::config::Target;

/// Output of a worker's terminal, one chunk as read.
#[derive(Debug)]
pub struct Output {
    /// Whose terminal.
    pub target: Target,
    /// Raw bytes (escape sequences included).
    pub bytes: Vec<u8>,
}

/// Starts `build-helper worker --run <run_dir> --target <target>` on a new pty of
/// `cols`x`rows`; its terminal output is sent to `out`. The worker is a session leader with
/// the pty as controlling terminal and gets SIGTERM when the supervisor dies
/// (`PR_SET_PDEATHSIG`; the caller must spawn from a thread that lives as long as the run).
///
/// Errors: the pty or the process cannot be created.
pub fn worker(
    run_dir: &Path,
    target: &Target,
    cols: u16,
    rows: u16,
    out: UnboundedSender<Output>,
) -> std::io::Result<tokio::process::Child> {
    let size = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).map_err(std::io::Error::from)?;
    for fd in [&pty.master, &pty.slave] {
        nix::fcntl::fcntl(
            fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(std::io::Error::from)?;
    }
    let slave: OwnedFd = pty.slave;
    let exe = std::env::current_exe()?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("worker")
        .arg("--run")
        .arg(run_dir)
        .arg("--target")
        .arg(target.to_string())
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave))
        .kill_on_drop(false);
    // SAFETY: setsid, ioctl and prctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(cmd); // closes our copies of the slave: the master sees EIO when the worker is gone
    let target = target.clone();
    let master = std::fs::File::from(pty.master);
    std::thread::spawn(move || {
        let mut master = master;
        let mut buf = [0u8; 16 * 1024];
        loop {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = Output {
                        target: target.clone(),
                        bytes: buf[..n].to_vec(),
                    };
                    if out.send(chunk).is_err() {
                        break;
                    }
                }
            }
        }
    });
    Ok(child)
}
