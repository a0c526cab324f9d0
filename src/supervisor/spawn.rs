//! Starting a worker process inside a new pseudo-terminal (pty(7)) that the supervisor owns.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use crate::config::Target;
use crate::sys::pty::Pty;
use crate::ui::Backlog;

/// Output of a worker's terminal, one chunk as read.
#[derive(Debug)]
pub struct Output {
    /// Whose terminal.
    pub target: Target,
    /// Raw bytes (escape sequences included).
    pub bytes: Vec<u8>,
    /// Counts the chunk as queued until it is consumed (dropped).
    _queued: Queued,
}

/// Bytes read from a worker's terminal and not consumed yet.
#[derive(Debug)]
struct Queued {
    backlog: Arc<AtomicUsize>,
    bytes: usize,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.backlog.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Starts `build-helper worker --run <run_dir> --target <target>` on a new pty of
/// `cols`x`rows` (with `--interactive` when a person watches it: the worker then opens a
/// rescue shell on a failed step); its terminal output is sent to `out`. The worker is a session leader with
/// the pty as controlling terminal and gets SIGTERM when the supervisor dies
/// (`PR_SET_PDEATHSIG`; the caller must spawn from a thread that lives as long as the run).
///
/// Errors: the pty or the process cannot be created.
pub fn worker(
    run_dir: &Path,
    target: &Target,
    cols: u16,
    rows: u16,
    interactive: bool,
    backlog: Backlog,
    out: UnboundedSender<Output>,
) -> std::io::Result<(tokio::process::Child, Pty)> {
    let argv = crate::worker::command_line(run_dir, target, interactive, None)?;
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    on_pty(cmd, target, cols, rows, backlog, out)
}

/// Starts `cmd` (program and arguments set) as a session leader on a new pty of
/// `cols`x`rows` that becomes its controlling terminal; a thread sends what it writes to
/// `out` as `target`'s output. Used for workers, and by the throughput benchmark.
///
/// Errors: the pty or the process cannot be created.
pub fn on_pty(
    mut cmd: tokio::process::Command,
    target: &Target,
    cols: u16,
    rows: u16,
    backlog: Backlog,
    out: UnboundedSender<Output>,
) -> std::io::Result<(tokio::process::Child, Pty)> {
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
    cmd.stdin(Stdio::from(slave.try_clone()?))
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
    let master = Arc::new(std::fs::File::from(pty.master));
    let handle = Pty::new(Arc::clone(&master));
    std::thread::spawn(move || read_loop(&master, &target, backlog, &out));
    Ok((child, handle))
}

/// Reads a worker's terminal until it closes, sending chunks to `out` (see [`Backlog`]).
fn read_loop(
    master: &std::fs::File,
    target: &Target,
    limit: Backlog,
    out: &UnboundedSender<Output>,
) {
    let queued = Arc::new(AtomicUsize::new(0));
    let mut master = master;
    let mut buf = vec![0u8; 64 * 1024];
    let mut dropped = 0u64;
    let send = |bytes: Vec<u8>| {
        queued.fetch_add(bytes.len(), Ordering::Relaxed);
        let q = Queued {
            backlog: Arc::clone(&queued),
            bytes: bytes.len(),
        };
        out.send(Output {
            target: target.clone(),
            bytes,
            _queued: q,
        })
        .is_ok()
    };
    let marker = |dropped: u64| {
        // CAN ends any escape sequence the drop cut in two.
        format!(
            "\x18\x1b[0m\r\n\x1b[7m[build-helper: {dropped} bytes of output not shown (the \
             screen fell behind); the target's log has them]\x1b[0m\r\n"
        )
        .into_bytes()
    };
    loop {
        let n = match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(limit) = limit {
            let q = queued.load(Ordering::Relaxed);
            if q + n > limit {
                dropped += n as u64;
                continue;
            }
            if dropped > 0 && q <= limit / 2 {
                if !send(marker(dropped)) {
                    return;
                }
                dropped = 0;
            }
        }
        if !send(buf[..n].to_vec()) {
            return;
        }
    }
    if dropped > 0 {
        send(marker(dropped));
    }
}
