//! A TUI client: connects to a run's attach socket, says hello, and draws what the
//! supervisor sends with the ordinary TUI ([`crate::ui::tui`]); keys for a worker go back
//! over the socket ([`RemoteSink`]). `q` / Ctrl-C ask detach / stop / cancel.
//!
//! Not here: which run to attach (the `attach` command), or the server ([`super::hub`]).

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::proto::{self, ClientMsg, ServerMsg};
use crate::config::Target;
use crate::ui::tui::app::{App, Effect, KeySink, Modal, Question, Sink};
use crate::ui::tui::{self, Handle};

/// How long the foreground `run` waits for its new supervisor's socket.
const CONNECT_WAIT: Duration = Duration::from_secs(60);

/// The client's end of the socket, shared by the input thread and the panes.
type Out = Arc<Mutex<UnixStream>>;

fn send(out: &Out, msg: &ClientMsg) {
    let mut s = out.lock().unwrap_or_else(|e| e.into_inner());
    // A supervisor that is gone shows as the end of the stream on the reading side.
    let _ = proto::write(&mut *s, msg);
}

/// A pane's keys and size, sent to the supervisor for its worker's pty.
pub struct RemoteSink {
    target: Target,
    out: Out,
}

impl KeySink for RemoteSink {
    fn write(&self, bytes: &[u8]) {
        // A long paste goes as several messages: the supervisor takes lines up to
        // `proto::MAX_CLIENT_LINE`.
        for msg in proto::keys_messages(&self.target, bytes) {
            send(&self.out, &msg);
        }
    }

    fn resize(&self, cols: u16, rows: u16) {
        send(
            &self.out,
            &ClientMsg::Resize {
                target: self.target.clone(),
                cols,
                rows,
            },
        );
    }
}

/// What the client's main thread waits for.
enum Ev {
    Effect(Effect),
    /// `end {code}`.
    End(i32),
    /// The connection ended without `end` (or the server dropped us), and why.
    Lost(String),
}

/// How a client session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The run ended while attached, with the supervisor's exit status.
    Ended(i32),
    /// The user detached; the run goes on.
    Detached,
    /// The connection ended without an end (the supervisor died, or dropped this client).
    Lost(String),
}

/// Connects to the attach socket of `run_dir` and completes the hello.
///
/// `alive` tells whether the supervisor that will listen still lives (the foreground `run`
/// waits up to 60 s for its socket while it does); without it one attempt is made.
///
/// Errors: no socket to connect to; the supervisor speaks another protocol version
/// ([`proto::ProtoError::Version`]).
pub fn connect(
    run_dir: &Path,
    alive: Option<&mut dyn FnMut() -> bool>,
) -> anyhow::Result<(UnixStream, BufReader<UnixStream>)> {
    let socket = crate::rundir::sockets::attach(run_dir);
    let deadline = Instant::now() + CONNECT_WAIT;
    let mut alive = alive;
    let stream = loop {
        match UnixStream::connect(&socket) {
            Ok(s) => break s,
            Err(e) => {
                let again = match alive.as_mut() {
                    Some(f) => f() && Instant::now() < deadline,
                    None => false,
                };
                if !again {
                    return Err(anyhow::Error::new(e).context(format!(
                        "connecting to the run's supervisor at {}",
                        socket.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let mut w = stream.try_clone()?;
    proto::write(
        &mut w,
        &ClientMsg::Hello {
            protocol: proto::VERSION,
        },
    )?;
    let mut reader = BufReader::new(stream.try_clone()?);
    match proto::read::<ServerMsg>(&mut reader)? {
        Some(ServerMsg::Hello { protocol, .. }) => proto::check_version(protocol)?,
        Some(_) => return Err(proto::ProtoError::NoHello.into()),
        None => return Err(proto::ProtoError::Closed.into()),
    }
    Ok((stream, reader))
}

/// Applies one server message to the screen's state; returns what the main thread must
/// know (the end), if anything. `asked` is set while the server's question is shown.
pub fn apply(app: &mut App, msg: ServerMsg, sink: &dyn Fn(&Target) -> Sink, asked: &AtomicBool) {
    match msg {
        ServerMsg::Hello { .. } | ServerMsg::End { .. } | ServerMsg::Dropped { .. } => {}
        ServerMsg::Screen {
            target,
            rows,
            cols,
            scrollback,
            screen,
            live,
        } => {
            let s = live.then(|| sink(&target));
            app.load_screen(&target, (rows, cols), &scrollback.0, &screen.0, s);
        }
        ServerMsg::Checkpoint { cp } => app.checkpoint(&cp),
        ServerMsg::Progress {
            target,
            shown,
            run_eta_ms,
        } => app.set_progress(&target, &shown, run_eta_ms),
        ServerMsg::Pool { pool } => app.pool = Some(pool),
        ServerMsg::Say { text } => app.say(&text),
        ServerMsg::Output { target, bytes } => app.output(&target, &bytes.0),
        ServerMsg::Started { target } => {
            let s = sink(&target);
            app.attach(&target, s);
        }
        ServerMsg::Gone { target } => app.worker_gone(&target),
        ServerMsg::Alert { title } => app.alert = Some(title),
        ServerMsg::Summary { table } => {
            app.summary = Some(table);
            app.typing = false;
        }
        ServerMsg::Ask { text, .. } => {
            asked.store(true, Ordering::SeqCst);
            app.modal = Modal::Question(Question {
                text,
                default: true,
            });
        }
        ServerMsg::Answered => {
            if asked.swap(false, Ordering::SeqCst) && matches!(app.modal, Modal::Question(_)) {
                app.modal = Modal::None;
            }
        }
    }
}

/// Draws the run of `run_dir` on this terminal until the user detaches or the run ends.
/// `alive` as for [`connect`]. On detach, prints how to come back.
///
/// Errors: [`connect`]'s; the terminal cannot be set up.
pub fn run(run_dir: &Path, alive: Option<&mut dyn FnMut() -> bool>) -> anyhow::Result<Outcome> {
    let timing = super::timing::Timing::from_env().map(Arc::new);
    let (stream, mut reader) = connect(run_dir, alive)?;
    if let Some(t) = &timing {
        t.connected();
    }
    let out: Out = Arc::new(Mutex::new(stream));
    let (ev_tx, ev_rx) = mpsc::channel::<Ev>();
    let effects = ev_tx.clone();
    let mut screen = tui::start_terminal(Box::new(move |e| {
        let _ = effects.send(Ev::Effect(e));
    }))
    .context("starting the TUI on this terminal")?;
    screen.set_log_dir(crate::rundir::logs(run_dir));
    if let Some(t) = &timing {
        let t = Arc::clone(t);
        screen.set_frame_probe(Box::new(move |app| t.frame_drawn(app)));
    }
    let handle: Handle = screen.handle();
    let asked = Arc::new(AtomicBool::new(false));
    {
        let out = Arc::clone(&out);
        let asked = Arc::clone(&asked);
        let handle = handle.clone();
        let timing = timing.clone();
        std::thread::spawn(move || {
            let sink = |t: &Target| -> Sink {
                Arc::new(RemoteSink {
                    target: t.clone(),
                    out: Arc::clone(&out),
                })
            };
            let why = loop {
                match proto::read::<ServerMsg>(&mut reader) {
                    Ok(Some(ServerMsg::End { code })) => {
                        let _ = ev_tx.send(Ev::End(code));
                        return;
                    }
                    Ok(Some(ServerMsg::Dropped { reason })) => break reason,
                    Ok(Some(msg)) => handle.update(|a| {
                        let screen_of = match (&timing, &msg) {
                            (Some(_), ServerMsg::Screen { target, .. }) => Some(target.clone()),
                            _ => None,
                        };
                        apply(a, msg, &sink, &asked);
                        if let (Some(t), Some(target)) = (&timing, screen_of) {
                            t.screen_applied(a, &target);
                        }
                    }),
                    Ok(None) => break "the supervisor closed the connection".to_string(),
                    Err(e) => break e.to_string(),
                }
            };
            let _ = ev_tx.send(Ev::Lost(why));
        });
    }
    let id = crate::rundir::id_of(run_dir);
    let mut ended: Option<i32> = None;
    let outcome = loop {
        let Ok(ev) = ev_rx.recv() else {
            break Outcome::Lost("the screen's threads ended".into());
        };
        match ev {
            Ev::Effect(Effect::Detach) => {
                send(&out, &ClientMsg::Detach);
                break Outcome::Detached;
            }
            Ev::Effect(Effect::Quit) => send(&out, &ClientMsg::Stop),
            Ev::Effect(Effect::Answer(yes)) => {
                if let Some(code) = ended {
                    break Outcome::Ended(code);
                }
                if asked.swap(false, Ordering::SeqCst) {
                    send(&out, &ClientMsg::Answer { yes });
                }
            }
            Ev::End(code) => {
                let wait = handle.update(|a| {
                    // Enter pressed on the summary before the end came: close now.
                    let wait = a.summary.is_some() && !a.closing;
                    if wait {
                        // Let the user read the summary in place before the screen goes.
                        a.modal = Modal::Question(Question {
                            text: "Press Enter to close.".into(),
                            default: true,
                        });
                    }
                    wait
                });
                if !wait {
                    break Outcome::Ended(code);
                }
                ended = Some(code);
            }
            Ev::Lost(why) => {
                if let Some(code) = ended {
                    break Outcome::Ended(code);
                }
                break Outcome::Lost(why);
            }
        }
    };
    screen.leave_terminal();
    if outcome == Outcome::Detached {
        // A terminal that is gone loses the line; nothing to do about it.
        let _ = writeln!(
            std::io::stdout().lock(),
            "build-helper: detached; run {id} goes on. Come back with `build-helper attach {id}`"
        );
    }
    Ok(outcome)
}
