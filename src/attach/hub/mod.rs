//! The supervisor's side of attaching: a [`Frontend`] that keeps what a screen needs (each
//! worker's terminal state and scrollback, the checkpoint, the progress, the messages, the
//! summary) and serves it to the clients on the run's attach socket.
//!
//! Threads, not the supervisor's event loop, do the socket work ([`sockets`]): one accepts,
//! and each client has a reader (its keys, resizes, answers, detach and stop) and a writer
//! fed by an unbounded channel whose queued bytes are counted; a client with more than
//! [`CLIENT_QUEUE`] bytes waiting is dropped (and the log says so), so a slow client never
//! blocks the run.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

mod sockets;

use super::proto::{self, Bytes, ServerMsg};
use crate::config::Target;
use crate::engine::watch::Shown;
use crate::engine::Checkpoint;
use crate::sys::pty::Pty;
use crate::ui::tui::app::Sink;
use crate::ui::tui::scrollback::Scrollback;
use crate::ui::tui::{app::SCROLLBACK, BACKLOG};
use crate::ui::{Frontend, Request};

/// A line for the supervisor's log (its standard error, `supervisor.log`); a log that
/// cannot be written (a full disk) loses the line rather than stopping the run.
fn log(text: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Bytes that may wait for one client before it is dropped (16 MiB: seconds of the fastest
/// output a worker makes, far more than a screen shows).
pub const CLIENT_QUEUE: usize = 16 << 20;

/// Clients served at once: each may have up to [`CLIENT_QUEUE`] bytes waiting, so this
/// bounds what all of them can make the supervisor hold (1 GiB). One more is told so
/// ([`ServerMsg::Dropped`]) right after the hellos and is not served.
pub const MAX_CLIENTS: usize = 64;

/// Supervisor messages kept for clients that attach later.
const MESSAGES: usize = 200;

/// How long `end` waits for the clients to read the last messages.
const END_GRACE: Duration = Duration::from_secs(2);

struct HubPane {
    target: Target,
    term: vt100::Parser,
    lines: Scrollback,
    pty: Option<Sink>,
}

struct Client {
    id: u64,
    tx: mpsc::Sender<Arc<String>>,
    queued: Arc<AtomicUsize>,
    stream: UnixStream,
    writer: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    panes: Vec<HubPane>,
    cp: Option<Checkpoint>,
    shown: HashMap<Target, (Shown, Option<u64>)>,
    pool: Option<crate::pool::PoolView>,
    messages: VecDeque<String>,
    summary: Option<String>,
    /// The question waiting for an answer, and whether it only waits for Enter.
    question: Option<(String, bool)>,
    clients: Vec<Client>,
    next_id: u64,
    ended: Option<i32>,
    /// The size clients last gave a pane (rows, cols), for workers started later.
    size: Option<(u16, u16)>,
    /// Bytes that may wait for one client ([`CLIENT_QUEUE`]).
    queue: usize,
}

impl State {
    fn pane_mut(&mut self, target: &Target) -> &mut HubPane {
        let i = match self.panes.iter().position(|p| &p.target == target) {
            Some(i) => i,
            None => {
                let (rows, cols) = self.size.unwrap_or((24, 80));
                self.panes.push(HubPane {
                    target: target.clone(),
                    term: vt100::Parser::new(rows, cols, 0),
                    lines: Scrollback::new(SCROLLBACK),
                    pty: None,
                });
                self.panes.len() - 1
            }
        };
        &mut self.panes[i]
    }

    /// Queues `msg` for every client; drops the clients that fell too far behind.
    fn broadcast(&mut self, msg: &ServerMsg) {
        if self.clients.is_empty() {
            return;
        }
        let line = Arc::new(proto::encode(msg));
        let mut slow = Vec::new();
        for c in &self.clients {
            let queued = c.queued.fetch_add(line.len(), Ordering::SeqCst) + line.len();
            if queued > self.queue || c.tx.send(Arc::clone(&line)).is_err() {
                slow.push(c.id);
            }
        }
        for id in slow {
            let why = format!(
                "it fell more than {} KiB behind the run's output",
                self.queue >> 10
            );
            self.drop_client(id, &why);
        }
    }

    /// Queues `msg` for client `id` alone (a refusal of what it asked); a client that fell
    /// too far behind is dropped instead.
    fn tell(&mut self, id: u64, msg: &ServerMsg) {
        let line = Arc::new(proto::encode(msg));
        let Some(c) = self.clients.iter().find(|c| c.id == id) else {
            return;
        };
        let queued = c.queued.fetch_add(line.len(), Ordering::SeqCst) + line.len();
        if queued > self.queue || c.tx.send(line).is_err() {
            let why = format!(
                "it fell more than {} KiB behind the run's output",
                self.queue >> 10
            );
            self.drop_client(id, &why);
        }
    }

    fn drop_client(&mut self, id: u64, why: &str) {
        let Some(i) = self.clients.iter().position(|c| c.id == id) else {
            return;
        };
        let c = self.clients.remove(i);
        log(format_args!(
            "[build-helper] attach: client {id} dropped: {why}"
        ));
        let _ = c.tx.send(Arc::new(proto::encode(&ServerMsg::Dropped {
            reason: why.to_string(),
        })));
        // Its writer may be stuck on a full socket: unblock it.
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
    }

    /// The messages a new client gets first, in order (see the module doc of `attach`).
    fn snapshot(&self, run: &str) -> Vec<ServerMsg> {
        let mut out = vec![ServerMsg::Hello {
            protocol: proto::VERSION,
            run: run.to_string(),
        }];
        if let Some(cp) = &self.cp {
            out.push(ServerMsg::Checkpoint {
                cp: Box::new(cp.clone()),
            });
        }
        for p in &self.panes {
            let (rows, cols) = p.term.screen().size();
            out.push(ServerMsg::Screen {
                target: p.target.clone(),
                rows,
                cols,
                scrollback: Bytes(p.lines.bytes()),
                screen: Bytes(proto::screen_bytes(&p.term)),
                live: p.pty.is_some(),
            });
        }
        for (target, (shown, run_eta_ms)) in &self.shown {
            out.push(ServerMsg::Progress {
                target: target.clone(),
                shown: shown.clone(),
                run_eta_ms: *run_eta_ms,
            });
        }
        if let Some(pool) = &self.pool {
            out.push(ServerMsg::Pool { pool: pool.clone() });
        }
        for m in &self.messages {
            out.push(ServerMsg::Say { text: m.clone() });
        }
        if let Some(table) = &self.summary {
            out.push(ServerMsg::Summary {
                table: table.clone(),
            });
        }
        if let Some((text, wait)) = &self.question {
            out.push(ServerMsg::Ask {
                text: text.clone(),
                wait: *wait,
            });
        }
        if let Some(code) = self.ended {
            out.push(ServerMsg::End { code });
        }
        out
    }
}

struct Shared {
    state: Mutex<State>,
    /// The uid a peer must have (root; the tests' own uid).
    uid: u32,
    run: String,
    requests: UnboundedSender<Request>,
    answers: Mutex<mpsc::Sender<Option<bool>>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn answer(&self, a: Option<bool>) {
        let _ = self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(a);
    }
}

/// The supervisor's front end when screens attach (see the module doc).
pub struct Hub {
    shared: Arc<Shared>,
    answers: mpsc::Receiver<Option<bool>>,
}

/// What the supervisor's `main` keeps to end the hub after the run: [`HubHandle::end`].
pub struct HubHandle {
    shared: Arc<Shared>,
    listener: UnixListener,
    socket: PathBuf,
    accept: Option<JoinHandle<()>>,
}

/// Listens on `run_dir`'s attach socket ([`crate::rundir::sockets::attach`], mode 0600; only root
/// peers are served, checked with SO_PEERCRED) and returns the front end for the supervisor
/// and the handle that ends it. `requests` receives [`Request::Quit`] when a client stops
/// the run.
///
/// Errors: the socket cannot be made.
pub fn start(
    run_dir: &Path,
    requests: UnboundedSender<Request>,
) -> std::io::Result<(Hub, HubHandle)> {
    start_for(run_dir, requests, 0, CLIENT_QUEUE)
}

/// [`start`], serving peers of `uid` (root in the product; the unit tests' own uid) and
/// dropping clients with more than `queue` bytes waiting ([`CLIENT_QUEUE`] in the product).
///
/// Errors: the socket cannot be made.
pub fn start_for(
    run_dir: &Path,
    requests: UnboundedSender<Request>,
    uid: u32,
    queue: usize,
) -> std::io::Result<(Hub, HubHandle)> {
    use std::os::unix::fs::PermissionsExt;
    let socket = crate::rundir::sockets::attach(run_dir);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    let (answer_tx, answers) = mpsc::channel();
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue,
            ..State::default()
        }),
        uid,
        run: crate::rundir::id_of(run_dir),
        requests,
        answers: Mutex::new(answer_tx),
    });
    let accept = {
        let shared = Arc::clone(&shared);
        let listener = listener.try_clone()?;
        std::thread::spawn(move || sockets::accept_loop(&shared, &listener))
    };
    Ok((
        Hub {
            shared: Arc::clone(&shared),
            answers,
        },
        HubHandle {
            shared,
            listener,
            socket,
            accept: Some(accept),
        },
    ))
}

impl Hub {
    /// Gives `target`'s pane a sink for keys and sizes other than a pty (what
    /// [`Frontend::attach`] does with one): for tests and measurements.
    pub fn attach_sink(&mut self, target: &Target, sink: Sink) {
        self.update(|st| {
            let p = st.pane_mut(target);
            let (rows, cols) = p.term.screen().size();
            sink.resize(cols, rows);
            p.pty = Some(sink);
            Some(ServerMsg::Started {
                target: target.clone(),
            })
        });
    }

    fn update(&self, f: impl FnOnce(&mut State) -> Option<ServerMsg>) {
        let mut st = self.shared.state();
        if let Some(msg) = f(&mut st) {
            st.broadcast(&msg);
        }
    }

    /// How many clients are attached now.
    pub fn clients(&self) -> usize {
        self.shared.state().clients.len()
    }

    fn question(&mut self, text: &str, wait: bool) -> Option<bool> {
        {
            let mut st = self.shared.state();
            if st.clients.is_empty() {
                return None;
            }
            // Answers to an earlier question are stale.
            while self.answers.try_recv().is_ok() {}
            st.question = Some((text.to_string(), wait));
            st.broadcast(&ServerMsg::Ask {
                text: text.to_string(),
                wait,
            });
        }
        self.answers.recv().ok().flatten()
    }
}

impl Frontend for Hub {
    fn say(&mut self, text: &str) {
        log(format_args!("[build-helper] {text}"));
        self.update(|st| {
            if st.messages.len() == MESSAGES {
                st.messages.pop_front();
            }
            st.messages.push_back(text.to_string());
            Some(ServerMsg::Say {
                text: text.to_string(),
            })
        });
    }

    fn output(&mut self, target: &Target, bytes: &[u8]) {
        self.update(|st| {
            let p = st.pane_mut(target);
            if !crate::ui::tui::term::process_guarded(&mut p.term, bytes) {
                log(format_args!(
                    "[build-helper] {target}: the terminal emulator failed on this output; its \
                     screen starts blank again (logs/{target}.log keeps everything)"
                ));
            }
            p.lines.feed(bytes);
            Some(ServerMsg::Output {
                target: target.clone(),
                bytes: Bytes(bytes.to_vec()),
            })
        });
    }

    fn flush(&mut self, target: &Target) {
        self.update(|st| {
            st.pane_mut(target).pty = None;
            Some(ServerMsg::Gone {
                target: target.clone(),
            })
        });
    }

    fn checkpoint(&mut self, cp: &Checkpoint) {
        self.update(|st| {
            for t in &cp.targets {
                let _ = st.pane_mut(&t.target);
            }
            st.cp = Some(cp.clone());
            Some(ServerMsg::Checkpoint {
                cp: Box::new(cp.clone()),
            })
        });
    }

    fn progress(&mut self, target: &Target, shown: &Shown, run_eta_ms: Option<u64>) {
        self.update(|st| {
            st.shown.insert(target.clone(), (shown.clone(), run_eta_ms));
            Some(ServerMsg::Progress {
                target: target.clone(),
                shown: shown.clone(),
                run_eta_ms,
            })
        });
    }

    fn pool(&mut self, pool: &crate::pool::PoolView) {
        self.update(|st| {
            st.pool = Some(pool.clone());
            Some(ServerMsg::Pool { pool: pool.clone() })
        });
    }

    fn alert(&mut self, title: &str) {
        self.update(|_| {
            Some(ServerMsg::Alert {
                title: title.to_string(),
            })
        });
    }

    fn attach(&mut self, target: &Target, pty: Pty) {
        self.attach_sink(target, Arc::new(pty));
    }

    fn backlog(&self) -> crate::ui::Backlog {
        Some(BACKLOG)
    }

    fn pty_size(&self, _target: &Target) -> (u16, u16) {
        let (rows, cols) = self.shared.state().size.unwrap_or((24, 80));
        (cols, rows)
    }

    fn interactive(&self) -> bool {
        // A rescue shell waits for someone to attach.
        true
    }

    fn owns_terminal(&self) -> bool {
        // The supervisor's stderr is supervisor.log: no progress bar there.
        true
    }

    fn summary(&mut self, table: &str) {
        log(format_args!("{table}"));
        self.update(|st| {
            st.summary = Some(table.to_string());
            Some(ServerMsg::Summary {
                table: table.to_string(),
            })
        });
    }

    fn ask(&mut self, question: &str) -> Option<bool> {
        self.question(question, false)
    }

    fn wait_for_user(&mut self, text: &str) {
        let _ = self.question(text, true);
    }
}

impl HubHandle {
    /// Ends serving: every client gets [`ServerMsg::End`] with `code` (and up to 2 s to read
    /// what is queued), then the socket is closed and removed.
    pub fn end(mut self, code: i32) {
        let writers: Vec<JoinHandle<()>> = {
            let mut st = self.shared.state();
            st.ended = Some(code);
            st.broadcast(&ServerMsg::End { code });
            st.clients
                .iter_mut()
                .filter_map(|c| c.writer.take())
                .collect()
        };
        // Closing the channels lets each writer finish what is queued, then stop.
        let clients = std::mem::take(&mut self.shared.state().clients);
        let streams: Vec<UnixStream> = clients.into_iter().map(|c| c.stream).collect();
        let deadline = Instant::now() + END_GRACE;
        for w in writers {
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if w.is_finished() {
                let _ = w.join();
            }
        }
        for s in streams {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        // SAFETY: shutdown(2) on the listening socket wakes the accept thread.
        unsafe {
            libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR);
        }
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// A message for every client and the log (the run's error, before [`HubHandle::end`]).
    pub fn say(&self, text: &str) {
        log(format_args!("[build-helper] {text}"));
        let mut st = self.shared.state();
        st.messages.push_back(text.to_string());
        st.broadcast(&ServerMsg::Say {
            text: text.to_string(),
        });
    }
}
