//! Front ends. They consume what the supervisor reports and render it; they own no state of
//! the run (the engine does) and send back only requests (quit, keystrokes to a worker).
//!
//! [`Frontend`] is the seam between the supervisor's event loop and a front end: `plain` is
//! line-prefixed output for scripts and CI, `tmux` a window per worker, and for `--ui tui`
//! the supervisor talks to [`crate::attach::hub`], which serves screens to TUI clients
//! (`tui`, a ratatui screen with a pane per worker) that attach and detach at will.

pub mod plain;
pub mod tmux;
pub mod tui;

use std::path::Path;

use crate::config::Target;
use crate::engine::Checkpoint;
use crate::sys::pty::Pty;

/// What a worker's terminal output may cost while the front end falls behind: `None` keeps
/// every byte (plain output, where a line dropped is a line lost), `Some(bytes)` drops what
/// arrives while that much is queued, so neither a flood of output nor a slow front end can
/// slow a worker down or grow the supervisor's memory; a marker line says what was dropped
/// (the target's log has everything).
pub type Backlog = Option<usize>;

/// A worker a front end started itself (a tmux window).
#[derive(Debug)]
pub struct Started {
    /// The worker's process id.
    pub pid: u32,
    /// Receives the worker's exit code once it is gone.
    pub exited: tokio::sync::oneshot::Receiver<i32>,
}

/// What a front end asks of the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The user confirmed quitting: stop the workers (their checkpoints stay) and end the run.
    Quit,
}

/// The supervisor's view of a front end. Every method is called from the supervisor's event
/// loop and must return quickly (a front end that draws does so on its own thread), except
/// [`Frontend::ask`] and [`Frontend::summary`], which are called once the workers are gone.
pub trait Frontend: Send {
    /// A supervisor message (one line, no newline).
    fn say(&mut self, text: &str);
    /// A chunk of a worker's terminal output, escape sequences included.
    fn output(&mut self, target: &Target, bytes: &[u8]);
    /// A worker's output has ended (print what is left of its last line).
    fn flush(&mut self, _target: &Target) {}
    /// The run state changed (called after every checkpoint write).
    fn checkpoint(&mut self, _cp: &Checkpoint) {}
    /// A target's running step and estimates changed (package progress, a step started);
    /// `run_eta_ms` is the whole run's remaining time when known.
    fn progress(
        &mut self,
        _target: &Target,
        _shown: &crate::engine::watch::Shown,
        _run_eta_ms: Option<u64>,
    ) {
    }
    /// The run's job pool changed (tokens in use, admission held): a front end that has a
    /// header shows it.
    fn pool(&mut self, _pool: &crate::pool::PoolView) {}
    /// Something needs the user (a step failed, a rescue shell waits, the run ended): a front
    /// end on a terminal rings the bell and sets the terminal's title to `title`.
    fn alert(&mut self, _title: &str) {}
    /// A worker was started on `pty`; a front end that forwards keys keeps it.
    fn attach(&mut self, _target: &Target, _pty: Pty) {}
    /// Starts the worker of `target` itself (tmux: in a window of its own), or `None` to let
    /// the supervisor start it on a pty it owns and report it with [`Frontend::attach`].
    fn start_worker(
        &mut self,
        _run_dir: &Path,
        _target: &Target,
    ) -> Option<std::io::Result<Started>> {
        None
    }
    /// Where the run's events should also go as JSON lines (`--events json`), if anywhere.
    fn event_sink(&mut self) -> Option<Box<dyn std::io::Write + Send>> {
        None
    }
    /// How much of a worker's output may wait for this front end before more is dropped
    /// (see [`Backlog`]); `None` keeps everything.
    fn backlog(&self) -> Backlog {
        None
    }
    /// The terminal size (columns, rows) a new worker's pty should get.
    fn pty_size(&self, _target: &Target) -> (u16, u16) {
        (120, 40)
    }
    /// Whether workers run interactively (rescue shell and resume / retry / abort prompt on
    /// their own terminal, which someone watches).
    fn interactive(&self) -> bool {
        false
    }
    /// Whether this front end draws the supervisor's terminal itself: then nothing else may
    /// write to it (no progress bar on stderr).
    fn owns_terminal(&self) -> bool {
        false
    }
    /// The end-of-run summary table (see [`plain::summary`]).
    fn summary(&mut self, table: &str);
    /// Asks a yes/no question (the umount question); blocks until answered. `None` when
    /// nobody can answer (no terminal).
    fn ask(&mut self, question: &str) -> Option<bool>;
    /// Tells the user the mounts are kept and waits until they are done with them.
    fn wait_for_user(&mut self, text: &str);
    /// Ends the front end (restores the terminal); called once, last.
    fn close(&mut self) {}
}
