//! The supervisor's end of a worker's pseudo-terminal (pty(7)): typing into it and sizing it.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// The supervisor's end of a worker's terminal: what a front end uses to type into it and to
/// give it the size of its pane. Cheap to clone; writing to a worker that is gone fails
/// silently (its output has ended already).
#[derive(Debug, Clone)]
pub struct Pty {
    master: Arc<std::fs::File>,
}

impl Pty {
    /// Sends keystrokes (raw bytes, as a terminal would) to the worker's terminal.
    pub fn write(&self, bytes: &[u8]) {
        let _ = (&*self.master).write_all(bytes);
    }

    /// Sets the terminal size (`cols` x `rows` cells); the worker's programs get SIGWINCH.
    pub fn resize(&self, cols: u16, rows: u16) {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one Winsize from a valid pointer.
        unsafe {
            libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size);
        }
    }

    /// The handle of the master side `master` of a worker's pty.
    pub fn new(master: Arc<std::fs::File>) -> Pty {
        Pty { master }
    }
}
