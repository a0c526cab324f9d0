//! The ratatui front end: one pane per worker rendering the worker's terminal (a vt100
//! emulator per pane), a header with the run's progress, a footer with the keys.
//!
//! State ([`app`]) and drawing ([`view`]) are apart, as in ratatui's component template:
//! updates (from an attach client's socket, [`crate::attach::client`], through a [`Handle`];
//! or, for measuring, the [`Frontend`] calls of a headless TUI) only change the state under a
//! lock; a drawing thread renders it at most [`FPS`] times a second, and an input thread
//! turns keys into state changes, keystrokes for a worker (through its pane's
//! [`app::KeySink`]: the socket, or a pty), or [`Effect`]s (detach, stop, answers) handed to
//! the caller of [`start_terminal`]. The rescue shell and the
//! resume / retry / abort prompt are the worker's own (DESIGN.md): they appear in its pane
//! and the user types into them after `i`.

pub mod app;
pub mod keys;
pub mod layout;
pub mod scrollback;
pub mod term;
#[cfg(test)]
mod tests;
pub mod text;
pub mod view;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event};
use crossterm::terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

use self::app::{App, Effect, Modal, Question};
use crate::config::Target;
use crate::engine::Checkpoint;
use crate::sys::now_us;
use crate::sys::pty::Pty;
use crate::ui::Frontend;

/// Most frames drawn per second.
pub const FPS: u64 = 20;

/// Bytes of a worker's output that may wait for the screen (per worker) before more is
/// dropped: a screen cannot show 100 MB/s anyway, and the log keeps everything.
pub const BACKLOG: usize = 4 << 20;

/// How long drawing took, over the frames drawn so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Frames drawn.
    pub frames: u64,
    /// Time spent drawing them (layout, render, diff, writing to the terminal).
    pub total: Duration,
    /// The slowest frame.
    pub max: Duration,
}

struct Shared {
    app: Mutex<App>,
    dirty: AtomicBool,
    stop: AtomicBool,
    stats: Mutex<FrameStats>,
    probe: Mutex<Option<FrameProbe>>,
}

impl Shared {
    fn app(&self) -> MutexGuard<'_, App> {
        // A panic while holding the lock leaves a usable App: take it anyway.
        self.app.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The live TUI on this process's terminal.
pub struct Tui {
    shared: Arc<Shared>,
    answers: mpsc::Receiver<bool>,
    threads: Vec<JoinHandle<()>>,
    closed: bool,
    headless: bool,
}

/// Called on the drawing thread with the state just drawn, after each frame is written to
/// the terminal, until it returns `true` (for reporting only, e.g.
/// [`crate::attach::timing`]).
pub type FrameProbe = Box<dyn FnMut(&App) -> bool + Send>;

/// What the TUI does with the [`Effect`]s of the user's keys (called on the input thread).
pub type OnEffect = Box<dyn FnMut(Effect) + Send>;

/// Switches the terminal to the alternate screen in raw mode and starts drawing and reading
/// keys; every [`Effect`] goes to `on_effect`. The state is fed with [`Tui::handle`].
///
/// Errors: the terminal cannot be set up (not a terminal).
pub fn start_terminal(mut on_effect: OnEffect) -> std::io::Result<Tui> {
    terminal::enable_raw_mode()?;
    crossterm::execute!(std::io::stdout(), terminal::EnterAlternateScreen)?;
    // A panic must not leave the user's terminal raw and on the alternate screen.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    let mut term = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    term.clear()?;
    let mut tui = spawn_drawing(term, None);
    let shared = Arc::clone(&tui.shared);
    tui.threads.push(std::thread::spawn(move || {
        input_loop(&shared, &mut on_effect)
    }));
    Ok(tui)
}

/// A TUI that draws a `width` x `height` screen into `out` and reads no keys: for measuring
/// (the throughput benchmark). [`Frontend::close`] stops it; [`Tui::frame_stats`] tells
/// how long its frames took.
///
/// Errors: writing to `out` fails.
pub fn headless<W: Write + Send + 'static>(
    out: W,
    width: u16,
    height: u16,
) -> std::io::Result<Tui> {
    let area = Rect::new(0, 0, width, height);
    let term = Terminal::with_options(
        CrosstermBackend::new(out),
        TerminalOptions {
            viewport: Viewport::Fixed(area),
        },
    )?;
    let mut tui = spawn_drawing(term, Some(area));
    tui.headless = true;
    Ok(tui)
}

fn spawn_drawing<W: Write + Send + 'static>(
    term: Terminal<CrosstermBackend<W>>,
    fixed: Option<Rect>,
) -> Tui {
    let shared = Arc::new(Shared {
        app: Mutex::new(App::new()),
        dirty: AtomicBool::new(true),
        stop: AtomicBool::new(false),
        stats: Mutex::new(FrameStats::default()),
        probe: Mutex::new(None),
    });
    let draw = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || draw_loop(&shared, term, fixed))
    };
    Tui {
        shared,
        answers: mpsc::channel().1,
        threads: vec![draw],
        closed: false,
        headless: false,
    }
}

fn draw_loop<W: Write>(
    shared: &Shared,
    mut term: Terminal<CrosstermBackend<W>>,
    fixed: Option<Rect>,
) {
    let frame = Duration::from_millis(1000 / FPS);
    let mut last_second = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        std::thread::sleep(frame);
        let now = now_us();
        // Redraw on change, and once a second for the elapsed times.
        if !shared.dirty.swap(false, Ordering::SeqCst) && now / 1_000_000 == last_second {
            continue;
        }
        last_second = now / 1_000_000;
        let area = match fixed {
            Some(a) => a,
            None => match term.size() {
                Ok(s) => Rect::new(0, 0, s.width, s.height),
                Err(_) => continue,
            },
        };
        let mut app = shared.app();
        // Timed from here: waiting for the lock is the output's time, not drawing's.
        let t0 = Instant::now();
        app.now_us = now;
        fit(&mut app, area);
        if let Some(title) = app.alert.take() {
            let bytes = crate::notify::bell_and_title(&title);
            let _ = term.backend_mut().write_all(bytes.as_bytes());
        }
        let _ = term.draw(|f| view::render(f, &app));
        let took = t0.elapsed();
        {
            let mut probe = shared.probe.lock().unwrap_or_else(|e| e.into_inner());
            if probe.as_mut().is_some_and(|p| p(&app)) {
                *probe = None;
            }
        }
        drop(app);
        let mut st = shared.stats.lock().unwrap_or_else(|e| e.into_inner());
        st.frames += 1;
        st.total += took;
        st.max = st.max.max(took);
    }
}

/// Gives every pane's terminal the size it is drawn at.
pub fn fit(app: &mut App, area: Rect) {
    for (i, r) in view::placements(app, area) {
        let above = 1 + view::banner(app, i, r.width).len() as u16;
        app.resize_pane(i, r.width, r.height.saturating_sub(above));
    }
    app.refresh_views();
}

fn input_loop(shared: &Shared, on_effect: &mut OnEffect) {
    while !shared.stop.load(Ordering::SeqCst) {
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => break,
        }
        let effect = match event::read() {
            Ok(Event::Key(k)) if k.kind != event::KeyEventKind::Release => shared.app().key(k),
            Ok(Event::Paste(text)) => {
                let app = shared.app();
                if app.typing {
                    if let Some(pty) = app.panes.get(app.focus).and_then(|p| p.pty.as_ref()) {
                        pty.write(text.as_bytes());
                    }
                }
                None
            }
            Ok(_) => None,
            Err(_) => break,
        };
        shared.dirty.store(true, Ordering::SeqCst);
        if let Some(effect) = effect {
            on_effect(effect);
        }
    }
}

impl Tui {
    /// How long drawing took so far.
    pub fn frame_stats(&self) -> FrameStats {
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `probe` after each frame drawn from now on, until it returns `true`.
    pub fn set_frame_probe(&mut self, probe: FrameProbe) {
        *self.shared.probe.lock().unwrap_or_else(|e| e.into_inner()) = Some(probe);
    }

    /// Where the run's logs are (`work/<run>/logs`): a failed pane shows its log's path.
    pub fn set_log_dir(&mut self, dir: std::path::PathBuf) {
        self.update(|a| a.log_dir = Some(dir));
    }

    fn update(&self, f: impl FnOnce(&mut App)) {
        f(&mut self.shared.app());
        self.shared.dirty.store(true, Ordering::SeqCst);
    }

    /// A handle that changes the screen's state from another thread (a client's socket
    /// reader).
    pub fn handle(&self) -> Handle {
        Handle(Arc::clone(&self.shared))
    }

    /// Stops drawing and reading keys, gives the terminal back, and prints the last
    /// supervisor messages and the summary, if any (for a TUI from [`start_terminal`]).
    pub fn leave_terminal(&mut self) {
        self.closed = true;
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        restore_terminal();
        let app = self.shared.app();
        let mut out = std::io::stdout().lock();
        for m in app
            .messages
            .iter()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let _ = writeln!(out, "[build-helper] {m}");
        }
        if let Some(s) = &app.summary {
            let _ = writeln!(out, "\n{s}");
        }
    }

    fn wait_answer(&mut self, text: &str, default: bool) -> Option<bool> {
        self.update(|a| {
            a.modal = Modal::Question(Question {
                text: text.to_string(),
                default,
            })
        });
        self.answers.recv().ok()
    }
}

impl Frontend for Tui {
    fn say(&mut self, text: &str) {
        self.update(|a| a.say(text));
    }

    fn output(&mut self, target: &Target, bytes: &[u8]) {
        self.update(|a| a.output(target, bytes));
    }

    fn checkpoint(&mut self, cp: &Checkpoint) {
        self.update(|a| a.checkpoint(cp));
    }

    fn progress(
        &mut self,
        target: &Target,
        shown: &crate::engine::watch::Shown,
        run_eta_ms: Option<u64>,
    ) {
        self.update(|app| app.set_progress(target, shown, run_eta_ms));
    }

    fn alert(&mut self, title: &str) {
        let title = title.to_string();
        self.update(|app| app.alert = Some(title));
    }

    fn attach(&mut self, target: &Target, pty: Pty) {
        self.update(|a| a.attach(target, Arc::new(pty)));
    }

    fn flush(&mut self, target: &Target) {
        self.update(|a| a.worker_gone(target));
    }

    fn pty_size(&self, _target: &Target) -> (u16, u16) {
        // The first frame after `attach` resizes it to its pane.
        (80, 24)
    }

    fn interactive(&self) -> bool {
        true
    }

    fn owns_terminal(&self) -> bool {
        true
    }

    fn backlog(&self) -> crate::ui::Backlog {
        Some(BACKLOG)
    }

    fn summary(&mut self, table: &str) {
        self.update(|a| {
            a.summary = Some(table.to_string());
            a.typing = false;
        });
    }

    fn ask(&mut self, question: &str) -> Option<bool> {
        self.wait_answer(question, true)
    }

    fn wait_for_user(&mut self, text: &str) {
        let _ = self.wait_answer(text, true);
    }

    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let (has_summary, closing) = {
            let app = self.shared.app();
            (app.summary.is_some(), app.closing)
        };
        if self.headless {
            self.shared.stop.store(true, Ordering::SeqCst);
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
            return;
        }
        if has_summary && !closing {
            // Let the user read the summary in place before the screen goes.
            let _ = self.wait_answer("Press Enter to close.", true);
        }
        self.leave_terminal();
    }
}

/// Changes a [`Tui`]'s state from any thread; the next frame shows it.
#[derive(Clone)]
pub struct Handle(Arc<Shared>);

impl Handle {
    /// Applies `f` to the state and redraws.
    pub fn update<R>(&self, f: impl FnOnce(&mut App) -> R) -> R {
        let r = f(&mut self.0.app());
        self.0.dirty.store(true, Ordering::SeqCst);
        r
    }
}

fn restore_terminal() {
    let _ = crossterm::execute!(
        std::io::stdout(),
        terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = terminal::disable_raw_mode();
}

impl Drop for Tui {
    fn drop(&mut self) {
        if !self.closed {
            self.shared.stop.store(true, Ordering::SeqCst);
            if !self.headless {
                restore_terminal();
            }
        }
    }
}
