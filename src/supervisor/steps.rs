//! The steps phase ([`crate::engine::run::RunAction::StartSteps`]): the socket's accept
//! loop, then the steps machine's event loop until every worker is gone.

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::mpsc;

use super::{spawn, Msg, Signals, Supervisor};
use crate::engine::protocol::WorkerMsg;
use crate::ui::Request;

impl Supervisor {
    /// Serves the workers on `listener` and runs the steps until every worker is gone;
    /// signals become a stop of the run machine (which stops the workers).
    pub(super) async fn steps(
        &mut self,
        listener: UnixListener,
        signals: &mut Signals,
        requests: &mut mpsc::UnboundedReceiver<Request>,
        msg_rx: &mut mpsc::UnboundedReceiver<Msg>,
        out_rx: &mut mpsc::UnboundedReceiver<spawn::Output>,
    ) {
        let accept_tx = self.msg_tx.clone();
        tokio::spawn(async move {
            let mut next = 0u64;
            while let Ok((stream, _)) = listener.accept().await {
                // Only root may talk to the supervisor (DESIGN.md, Processes).
                if !stream.peer_cred().is_ok_and(|c| c.uid() == 0) {
                    continue;
                }
                next += 1;
                let id = next;
                let (read, write) = stream.into_split();
                if accept_tx.send(Msg::Connected(id, write)).is_err() {
                    break;
                }
                let tx = accept_tx.clone();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Ok(msg) = serde_json::from_str::<WorkerMsg>(&line) {
                            let _ = tx.send(Msg::Worker(id, msg));
                        }
                    }
                    let _ = tx.send(Msg::Disconnected(id));
                });
            }
        });

        let first = self.engine.start();
        self.execute(first).await;
        while self.engine.any_running() {
            tokio::select! {
                Some(out) = out_rx.recv() => self.ui.output(&out.target, &out.bytes),
                Some(msg) = msg_rx.recv() => self.handle(msg).await,
                why = signals.next(requests) => self.interrupt(why).await,
            }
        }
        while let Ok(out) = out_rx.try_recv() {
            self.ui.output(&out.target, &out.bytes);
        }
        let targets: Vec<_> = self.plan.targets.iter().map(|t| t.target.clone()).collect();
        for t in targets {
            self.ui.flush(&t);
        }
    }
}
