//! The signals (and the front end's quit request) that stop a run, and the one that does not.
//!
//! SIGINT and SIGTERM stop a run (`build-helper stop` sends SIGTERM). SIGHUP (the terminal
//! went away: a closed SSH connection or window, `kill -HUP`) stops it only when the front
//! end draws that terminal itself (the TUI, [`crate::ui::Frontend::owns_terminal`]); with the
//! plain lines, `--events json` or tmux windows the run goes on without its terminal, and its
//! output that cannot be written is dropped (the targets' logs keep everything).
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
    hup: tokio::signal::unix::Signal,
    /// Whether SIGHUP stops the run (the front end lost its terminal).
    hup_stops: bool,
}

impl Signals {
    /// Installs the handlers; `hup_stops`: whether SIGHUP stops the run (see the module
    /// doc) or is ignored.
    pub(super) fn install(hup_stops: bool) -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            hup_stops,
        })
    }

    /// Resolves with the reason when SIGINT, SIGTERM, SIGHUP (when it stops the run) or the
    /// front end's quit arrives.
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
            hup,
            hup_stops,
        } = self;
        let hangup = async {
            loop {
                if hup.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
                if *hup_stops {
                    return "hung up";
                }
                // Ignored: the run outlives its terminal.
            }
        };
        tokio::select! {
            _ = int.recv() => "interrupted",
            _ = term.recv() => "terminated",
            why = hangup => why,
            why = quit => why,
        }
    }
}
