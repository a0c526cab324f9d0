//! The signals (and the front end's quit request) that stop a run, and the one that does not.
//!
//! SIGINT and SIGTERM stop a run (`build-helper stop` sends SIGTERM); so do SIGQUIT, SIGUSR1,
//! SIGUSR2 and SIGALRM, whose default action would end the supervisor without a word: every
//! way a supervisor ends, SIGKILL aside, goes through the run's end (a line in its log, a
//! `run-finished` event, the mounts torn down).
//!
//! SIGHUP (the terminal went away: a closed SSH connection or window, `kill -HUP`) is
//! ignored by a supervisor without a controlling terminal (the detached supervisor of
//! `--ui tui`, in a session of its own: its terminal is its clients') and with the plain
//! lines, `--events json` or tmux windows: the run goes on without its terminal, and output
//! that cannot be written is dropped (the targets' logs keep everything). A front end that
//! draws the supervisor's own controlling terminal ([`crate::ui::Frontend::owns_terminal`])
//! is gone with it: SIGHUP then stops the run as SIGTERM does, so the supervisor never waits
//! on a screen or a question nobody sees.
//!
//! The signals are caught rather than set to SIG_IGN so that the processes the supervisor
//! starts (workers, mount, mksquashfs, the notify command) get the default disposition back.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

use crate::ui::Request;

/// Whether this process has a controlling terminal (`/dev/tty` opens, tty(4)). A process in
/// a session of its own made by setsid(2) has none until it opens a terminal as session
/// leader, which the supervisor never does.
pub(super) fn has_controlling_terminal() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .open("/dev/tty")
        .is_ok()
}

/// The signals that stop a run, installed before anything else happens so that every phase
/// (download, verification, extraction, mounts, steps, archive) can be stopped.
pub(super) struct Signals {
    int: Signal,
    term: Signal,
    quit: Signal,
    usr1: Signal,
    usr2: Signal,
    alrm: Signal,
    hup: Signal,
    /// Whether SIGHUP is ignored (else it stops the run).
    ignore_hangup: bool,
}

impl Signals {
    /// Installs the handlers; `ignore_hangup`: whether SIGHUP is ignored or stops the run
    /// (see the module doc).
    pub(super) fn install(ignore_hangup: bool) -> std::io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            quit: signal(SignalKind::quit())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
            alrm: signal(SignalKind::alarm())?,
            hup: signal(SignalKind::hangup())?,
            ignore_hangup,
        })
    }

    /// Resolves with the reason when a stopping signal or the front end's quit arrives (an
    /// ignored SIGHUP is consumed meanwhile).
    pub(super) async fn next(
        &mut self,
        requests: &mut mpsc::UnboundedReceiver<Request>,
    ) -> &'static str {
        let quit = async {
            match requests.recv().await {
                Some(Request::Quit) => "quit",
                // The front end is gone: only signals can stop the run now.
                None => std::future::pending().await,
            }
        };
        let Signals {
            int,
            term,
            quit: sigquit,
            usr1,
            usr2,
            alrm,
            hup,
            ignore_hangup,
        } = self;
        let ignore = *ignore_hangup;
        let hangup = async {
            loop {
                if hup.recv().await.is_none() {
                    return std::future::pending::<&'static str>().await;
                }
                if !ignore {
                    return "hung up (the terminal went away)";
                }
                // Ignored: the run outlives its terminal.
            }
        };
        tokio::select! {
            _ = int.recv() => "interrupted",
            _ = term.recv() => "terminated",
            _ = sigquit.recv() => "quit (SIGQUIT)",
            _ = usr1.recv() => "stopped by SIGUSR1",
            _ = usr2.recv() => "stopped by SIGUSR2",
            _ = alrm.recv() => "stopped by SIGALRM",
            why = hangup => why,
            why = quit => why,
        }
    }
}
