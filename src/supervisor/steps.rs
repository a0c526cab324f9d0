//! The steps phase ([`crate::engine::run::RunAction::StartSteps`]): the socket's accept
//! loop, then the steps machine's event loop until every worker is gone.

use tokio::io::BufReader;
use tokio::net::UnixListener;
use tokio::sync::mpsc;

use super::{spawn, Msg, Signals, Supervisor};
use crate::protocol;
use crate::ui::Request;

/// How many supervisor messages the steps loop handles in a row while worker output waits.
const MSG_BATCH: usize = 64;

/// How many chunks of waiting worker output (a pty read each, at most a few KiB) the steps
/// loop shows after [`MSG_BATCH`] messages in a row.
const OUT_BATCH: usize = 64;

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
        // The workers' connections have a channel of their own, after the supervisor's own
        // messages: a target mounted (its release) does not wait behind the messages of the
        // targets already running (at 64 targets, thousands within a second).
        let (accept_tx, mut worker_rx) = mpsc::unbounded_channel::<Msg>();
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
                    // Lines are bounded (`protocol::MAX_LINE`): a longer one ends the
                    // connection instead of growing a buffer.
                    let mut read = BufReader::new(read);
                    while let Ok(Some(line)) = protocol::read_line(&mut read).await {
                        if let Ok(msg) = protocol::decode_worker(&line) {
                            let _ = tx.send(Msg::Worker(id, msg));
                        }
                    }
                    let _ = tx.send(Msg::Disconnected(id));
                });
            }
        });

        // The engine's first actions: what each waiting environment needs ahead of its
        // release (`PrepareMount`), then the workers.
        let first = self.engine.start();
        self.execute(first).await;
        // Signals, then the supervisor's own messages (a target mounted, a worker exited),
        // then the workers' (a step started or finished), then worker output: a message
        // moves the run on, output only shows it. Output is not starved: after `MSG_BATCH`
        // messages in a row, up to `OUT_BATCH` chunks of waiting output are shown before the
        // next message.
        let mut in_a_row = 0;
        // The job pool changes between steps too (jobs take and return tokens): shown once
        // a second at most.
        let mut pool_tick = tokio::time::interval(std::time::Duration::from_secs(1));
        pool_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while self.engine.any_running() {
            if in_a_row >= MSG_BATCH {
                for _ in 0..OUT_BATCH {
                    let Ok(out) = out_rx.try_recv() else { break };
                    self.ui.output(&out.target, &out.bytes);
                }
                in_a_row = 0;
            }
            tokio::select! {
                biased;
                why = signals.next(requests) => {
                    self.save_now();
                    self.interrupt(why).await;
                }
                Some(msg) = msg_rx.recv() => {
                    self.save_deferred.get_or_insert(false);
                    self.handle(msg).await;
                    in_a_row += 1;
                }
                Some(msg) = worker_rx.recv() => {
                    self.save_deferred.get_or_insert(false);
                    self.handle(msg).await;
                    in_a_row += 1;
                }
                Some(out) = out_rx.recv() => {
                    self.ui.output(&out.target, &out.bytes);
                    in_a_row = 0;
                }
                _ = pool_tick.tick(), if self.pool.is_some() => self.pool_refresh(true),
            }
            // Saved once the messages already waiting are handled (or a batch of them).
            if (msg_rx.is_empty() && worker_rx.is_empty()) || in_a_row >= MSG_BATCH {
                self.save_now();
            }
        }
        self.save_now();
        while let Ok(out) = out_rx.try_recv() {
            self.ui.output(&out.target, &out.bytes);
        }
        let targets: Vec<_> = self.plan.targets.iter().map(|t| t.target.clone()).collect();
        for t in targets {
            self.ui.flush(&t);
        }
    }
}
