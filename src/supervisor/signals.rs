//! The signals (and the front end's quit request) that stop a run.

use tokio::sync::mpsc;

use crate::ui::Request;

/// The signals that stop a run, installed before anything else happens so that every phase
/// (download, verification, extraction, mounts, steps, archive) can be stopped.
pub(super) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves with the reason when SIGINT, SIGTERM or the front end's quit arrives.
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
        tokio::select! {
            _ = self.int.recv() => "interrupted",
            _ = self.term.recv() => "terminated",
            why = quit => why,
        }
    }
}
