//! The signals (and the front end's quit request) that stop a run, and the one that does not.
//!
//! SIGINT and SIGTERM stop a run (`build-helper stop` sends SIGTERM). SIGHUP (the terminal
//! went away: a closed SSH connection or window, `kill -HUP`) is ignored with the plain
//! lines, `--events json` or tmux windows: the run goes on without its terminal, and output
//! that cannot be written is dropped (the targets' logs keep everything). A front end that
//! draws the terminal itself (the TUI in the foreground,
//! [`crate::ui::Frontend::owns_terminal`]) keeps SIGHUP's default action, as before: its
//! screen and its questions are gone with the terminal, so the supervisor must not wait on
//! them (the workers get SIGTERM from their parent-death signal).
//!
//! SIGHUP is caught rather than set to SIG_IGN so that the processes the supervisor starts
//! (workers, mount, mksquashfs, the notify command) get the default disposition back.

use tokio::sync::mpsc;

use crate::ui::Request;

/// The signals that stop a run, installed before anything else happens so that every phase
/// (download, verification, extraction, mounts, steps, archive) can be stopped.
pub(super) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    /// SIGHUP, caught to be ignored; `None` keeps its default action.
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers; `ignore_hangup`: whether SIGHUP is ignored (see the module
    /// doc) or keeps its default action.
    pub(super) fn install(ignore_hangup: bool) -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: if ignore_hangup {
                Some(signal(SignalKind::hangup())?)
            } else {
                None
            },
        })
    }

    /// Resolves with the reason when SIGINT, SIGTERM or the front end's quit arrives (an
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
        let Signals { int, term, hup } = self;
        let hangup = async {
            // Ignored: the run outlives its terminal.
            while let Some(Some(())) = match hup.as_mut() {
                Some(h) => Some(h.recv().await),
                None => None,
            } {}
            std::future::pending::<&'static str>().await
        };
        tokio::select! {
            _ = int.recv() => "interrupted",
            _ = term.recv() => "terminated",
            why = hangup => why,
            why = quit => why,
        }
    }
}
