//! The TUI's state and its update rules (the "model" and "update" of ratatui's component
//! template): panes fed with worker output, the last checkpoint snapshot, focus, zoom,
//! scrolling, keyboard hand-over and dialogs. Nothing here draws ([`super::view`] does) or
//! touches a terminal, so every rule is testable with plain values.

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::keys;
use super::scrollback::Scrollback;
use crate::config::Target;
use crate::engine::watch::Shown;
use crate::engine::{Checkpoint, StepState, TargetRecord, TargetState};
use crate::sys::pty::Pty;

/// Where a pane's keystrokes and size go: the worker's pty (in the supervisor) or the attach
/// socket (in a client, [`crate::attach::client`]).
pub trait KeySink: Send + Sync {
    /// Sends keystrokes (raw bytes, as a terminal would).
    fn write(&self, bytes: &[u8]);
    /// The pane is drawn at `cols` x `rows` cells: the worker's terminal takes that size.
    fn resize(&self, cols: u16, rows: u16);
}

impl KeySink for Pty {
    fn write(&self, bytes: &[u8]) {
        Pty::write(self, bytes);
    }

    fn resize(&self, cols: u16, rows: u16) {
        Pty::resize(self, cols, rows);
    }
}

/// A pane's [`KeySink`], shared.
pub type Sink = std::sync::Arc<dyn KeySink>;

/// Lines of scrollback kept per worker.
pub const SCROLLBACK: usize = 10_000;

/// Supervisor messages kept for the header and the end.
const MESSAGES: usize = 200;

/// One worker's pane: its emulated terminal, its scrollback and the pty to type into.
pub struct Pane {
    /// The target.
    pub target: Target,
    /// The terminal emulator holding the worker's live screen.
    pub term: vt100::Parser,
    /// The last [`SCROLLBACK`] lines of output.
    pub lines: Scrollback,
    /// Lines scrolled back from the newest (0 = the live screen).
    pub scroll: usize,
    /// The scrolled-back screen, rebuilt by [`App::refresh_views`] while `scroll > 0`.
    pub view: Option<vt100::Parser>,
    /// The worker's terminal (or the socket to it), once started.
    pub pty: Option<Sink>,
    /// The worker has exited (after abort, quit, or the end of its steps): a failed target
    /// has no rescue shell any more.
    pub exited: bool,
}

impl Pane {
    /// The screen to draw: the scrolled-back view, else the live screen.
    pub fn screen(&self) -> &vt100::Screen {
        self.view.as_ref().unwrap_or(&self.term).screen()
    }
}

/// A target's state as the TUI shows it. Unlike [`TargetRecord::state`] (which calls a
/// target stopped between two steps failed, right for a run that ended), a live target
/// between two steps is running: its worker is about to start the next one.
pub fn shown_state(r: &TargetRecord) -> TargetState {
    let any = |st: fn(&StepState) -> bool| r.steps.iter().any(|s| st(&s.state));
    if r.steps.iter().all(|s| s.state.is_done()) {
        TargetState::Done
    } else if any(|s| *s == StepState::Running) {
        TargetState::Running
    } else if let Some(w) = r.rescue_waiting() {
        TargetState::RescueWaiting {
            since_us: w.since_us,
        }
    } else if any(|s| s.is_failed()) {
        TargetState::Failed
    } else if any(|s| *s == StepState::Interrupted) {
        TargetState::Interrupted
    } else if any(|s| s.is_done()) {
        TargetState::Running
    } else {
        TargetState::Waiting
    }
}

/// True for a target whose step failed, whether or not its rescue shell waits.
pub fn is_failed(s: TargetState) -> bool {
    matches!(s, TargetState::Failed | TargetState::RescueWaiting { .. })
}

/// How far a pane scrolls back: until its oldest kept line is at the top.
fn max_scroll(p: &Pane) -> usize {
    let rows = usize::from(p.term.screen().size().0);
    p.lines.len().saturating_sub(rows)
}

/// What an update asks the outside world to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Ask the supervisor to stop the run (confirmed by the user): exit 130, resumable.
    Quit,
    /// Leave the screen; the run goes on (confirmed by the user).
    Detach,
    /// Answer the pending question.
    Answer(bool),
}

/// What is shown over the panes and takes the keys first: at most one at a time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Modal {
    /// Nothing: keys go to the panes (or, while typing, to the focused worker).
    #[default]
    None,
    /// `q` or Ctrl-C: detach (the run goes on), stop the run, or cancel.
    Leave,
    /// A yes/no question (the umount question, "press Enter to close").
    Question(Question),
}

/// A yes/no question shown over the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The text.
    pub text: String,
    /// Enter alone answers this (the default shown in capitals).
    pub default: bool,
}

/// The whole screen's state.
pub struct App {
    /// Panes in checkpoint order (primary first).
    pub panes: Vec<Pane>,
    /// The last checkpoint snapshot (a copy: the engine owns the state).
    pub cp: Option<Checkpoint>,
    /// Index of the focused pane.
    pub focus: usize,
    /// The focused pane fills the body.
    pub zoom: bool,
    /// Keys go to the focused worker's terminal (Ctrl-] takes them back).
    pub typing: bool,
    /// The dialog over the panes, if any.
    pub modal: Modal,
    /// The end-of-run summary table, once the run ended.
    pub summary: Option<String>,
    /// Enter was pressed on the summary: the screen may close.
    pub closing: bool,
    /// Supervisor messages, oldest first.
    pub messages: VecDeque<String>,
    /// The clock for elapsed times, microseconds since the Unix epoch (set before drawing).
    pub now_us: u64,
    /// The run's log directory (`work/<run>/logs`), for the failed pane's log path.
    pub log_dir: Option<std::path::PathBuf>,
    /// Lines the summary is scrolled down (when it is taller than the screen).
    pub summary_scroll: usize,
    /// Each target's running step, package progress and estimate, as last reported.
    pub shown: std::collections::HashMap<Target, Shown>,
    /// The run's remaining milliseconds and when that was computed (microseconds).
    pub run_eta: Option<(u64, u64)>,
    /// A terminal title to set, with the bell, at the next frame (something needs the user).
    pub alert: Option<String>,
    /// The run's job pool, as last reported.
    pub pool: Option<crate::pool::PoolView>,
}

impl Default for App {
    fn default() -> Self {
        App::new()
    }
}

impl App {
    /// An empty screen.
    pub fn new() -> App {
        App {
            panes: Vec::new(),
            cp: None,
            focus: 0,
            zoom: false,
            typing: false,
            modal: Modal::None,
            summary: None,
            closing: false,
            messages: VecDeque::new(),
            now_us: 0,
            log_dir: None,
            summary_scroll: 0,
            shown: std::collections::HashMap::new(),
            run_eta: None,
            alert: None,
            pool: None,
        }
    }

    /// A target's running step and estimate changed.
    pub fn set_progress(&mut self, target: &Target, shown: &Shown, run_eta_ms: Option<u64>) {
        self.shown.insert(target.clone(), shown.clone());
        self.run_eta = run_eta_ms.map(|ms| (ms, shown.at_us));
    }

    /// Milliseconds left of an estimate of `ms` made at `at_us`, counted down to now.
    fn left(&self, ms: u64, at_us: u64) -> u64 {
        ms.saturating_sub(self.now_us.saturating_sub(at_us) / 1000)
    }

    /// The run's remaining time now, when known (and the run is not over).
    pub fn run_eta_ms(&self) -> Option<u64> {
        let (ms, at) = self.run_eta?;
        (self.summary.is_none()).then(|| self.left(ms, at))
    }

    /// The package progress of `target`'s running step and the target's remaining time now,
    /// when known; nothing once the target is not running.
    pub fn package_progress(
        &self,
        target: &Target,
    ) -> (Option<crate::progress::Progress>, Option<u64>) {
        if self.target_state(target) != Some(TargetState::Running) {
            return (None, None);
        }
        let Some(s) = self.shown.get(target) else {
            return (None, None);
        };
        let running = self
            .cp
            .as_ref()
            .and_then(|cp| cp.target(target))
            .is_some_and(|r| {
                r.steps
                    .iter()
                    .any(|st| st.name == s.step && st.state == StepState::Running)
            });
        if !running {
            return (None, None);
        }
        (
            s.progress.clone(),
            s.eta_ms.map(|ms| self.left(ms, s.at_us)),
        )
    }

    fn pane_mut(&mut self, target: &Target) -> &mut Pane {
        let i = match self.panes.iter().position(|p| &p.target == target) {
            Some(i) => i,
            None => {
                self.panes.push(Pane {
                    target: target.clone(),
                    term: vt100::Parser::new(24, 80, 0),
                    lines: Scrollback::new(SCROLLBACK),
                    scroll: 0,
                    view: None,
                    pty: None,
                    exited: false,
                });
                self.panes.len() - 1
            }
        };
        &mut self.panes[i]
    }

    /// A supervisor message.
    pub fn say(&mut self, text: &str) {
        if self.messages.len() == MESSAGES {
            self.messages.pop_front();
        }
        self.messages.push_back(text.to_string());
    }

    /// Feeds a worker's terminal output to its pane.
    pub fn output(&mut self, target: &Target, bytes: &[u8]) {
        let pane = self.pane_mut(target);
        super::term::process_guarded(&mut pane.term, bytes);
        let added = pane.lines.feed(bytes);
        if pane.scroll > 0 {
            // Keep the scrolled-back view where it is.
            pane.scroll = pane.scroll.saturating_add(added).min(max_scroll(pane));
        }
    }

    /// Rebuilds the screens of scrolled-back panes (call before drawing).
    pub fn refresh_views(&mut self) {
        for p in &mut self.panes {
            if p.scroll == 0 {
                p.view = None;
                continue;
            }
            let (rows, cols) = p.term.screen().size();
            let mut view = vt100::Parser::new(rows, cols, 0);
            super::term::process_guarded(&mut view, &p.lines.window(p.scroll, usize::from(rows)));
            p.view = Some(view);
        }
    }

    /// Replaces a pane's terminal with a snapshot (see [`crate::attach`]): a `rows` x `cols`
    /// screen drawn by `screen` and the kept lines of `scrollback`; `sink` takes its keys when
    /// its worker runs.
    pub fn load_screen(
        &mut self,
        target: &Target,
        (rows, cols): (u16, u16),
        scrollback: &[u8],
        screen: &[u8],
        sink: Option<Sink>,
    ) {
        let pane = self.pane_mut(target);
        let mut term = vt100::Parser::new(rows.max(1), cols.max(1), 0);
        super::term::process_guarded(&mut term, screen);
        pane.term = term;
        let mut lines = Scrollback::new(SCROLLBACK);
        lines.feed(scrollback);
        pane.lines = lines;
        pane.scroll = 0;
        pane.view = None;
        pane.pty = sink;
    }

    /// Keeps a worker's pty for typing and resizing.
    pub fn attach(&mut self, target: &Target, pty: Sink) {
        let pane = self.pane_mut(target);
        let (rows, cols) = pane.term.screen().size();
        pty.resize(cols, rows);
        pane.pty = Some(pty);
        pane.exited = false;
    }

    /// A worker has exited: its pane stops offering the rescue shell and typing.
    pub fn worker_gone(&mut self, target: &Target) {
        let pane = self.pane_mut(target);
        pane.exited = true;
        pane.pty = None;
        if self
            .panes
            .get(self.focus)
            .is_some_and(|p| &p.target == target)
        {
            self.typing = false;
        }
    }

    /// The failed step of `target` and its exit code, while it is failed.
    pub fn failure(&self, target: &Target) -> Option<(String, Option<i32>)> {
        let r = self.cp.as_ref()?.target(target)?;
        if !is_failed(shown_state(r)) {
            return None;
        }
        r.steps
            .iter()
            .find(|s| s.state.is_failed())
            .map(|s| (s.name.clone(), s.state.exit_code()))
    }

    /// A new checkpoint snapshot: adds panes for new targets and moves the focus to a target
    /// that has just failed (its rescue shell wants attention) unless the user is typing.
    pub fn checkpoint(&mut self, cp: &Checkpoint) {
        for t in &cp.targets {
            let _ = self.pane_mut(&t.target);
        }
        let failed_now = cp.targets.iter().position(|t| {
            is_failed(shown_state(t)) && self.target_state(&t.target).is_some_and(|s| !is_failed(s))
        });
        self.cp = Some(cp.clone());
        if let (Some(i), false) = (failed_now, self.typing) {
            if let Some(pi) = self
                .panes
                .iter()
                .position(|p| p.target == cp.targets[i].target)
            {
                self.focus = pi;
            }
        }
    }

    /// The state of `target` in the last snapshot.
    pub fn target_state(&self, target: &Target) -> Option<TargetState> {
        let cp = self.cp.as_ref()?;
        cp.target(target).map(shown_state)
    }

    /// Title facts of a pane: state, `k/N name` of the current (or last) step, elapsed
    /// seconds.
    pub fn progress(&self, target: &Target) -> (TargetState, String, u64) {
        let Some(r) = self.cp.as_ref().and_then(|cp| cp.target(target)) else {
            return (TargetState::Waiting, String::new(), 0);
        };
        let n = r.steps.len();
        let current = r
            .steps
            .iter()
            .position(|s| s.state == StepState::Running)
            .or_else(|| r.steps.iter().position(|s| s.state.is_failed()))
            .or_else(|| r.steps.iter().position(|s| s.state == StepState::Pending));
        let step = match current {
            Some(i) => format!("{}/{n} {}", i + 1, r.steps[i].name),
            None => format!("{n}/{n}"),
        };
        let mut ms: u64 = r
            .steps
            .iter()
            .filter(|s| s.state != StepState::Running)
            .filter_map(|s| s.duration_ms)
            .sum();
        if let Some(s) = r.steps.iter().find(|s| s.state == StepState::Running) {
            if let Some(t0) = s.started_us {
                ms += self.now_us.saturating_sub(t0) / 1000;
            }
        }
        (shown_state(r), step, ms / 1000)
    }

    /// Handles one key; returns what the outside world must do. Keystrokes for a worker are
    /// written to its pty here.
    pub fn key(&mut self, k: KeyEvent) -> Option<Effect> {
        match &self.modal {
            Modal::Question(q) => {
                let answer = match k.code {
                    KeyCode::Char('y') | KeyCode::Char('Y') => Some(true),
                    KeyCode::Char('n') | KeyCode::Char('N') => Some(false),
                    KeyCode::Enter => Some(q.default),
                    _ => None,
                };
                if answer.is_some() {
                    self.modal = Modal::None;
                }
                return answer.map(Effect::Answer);
            }
            Modal::Leave => {
                self.modal = Modal::None;
                return match k.code {
                    KeyCode::Char('d') | KeyCode::Char('D') => Some(Effect::Detach),
                    KeyCode::Char('s') | KeyCode::Char('S') => Some(Effect::Quit),
                    _ => None,
                };
            }
            Modal::None => {}
        }
        if self.summary.is_some() {
            match k.code {
                KeyCode::Enter => self.closing = true,
                KeyCode::Up | KeyCode::PageUp => {
                    let by = if k.code == KeyCode::Up { 1 } else { 10 };
                    self.summary_scroll = self.summary_scroll.saturating_sub(by);
                }
                KeyCode::Down | KeyCode::PageDown => {
                    let by = if k.code == KeyCode::Down { 1 } else { 10 };
                    let lines = self.summary.as_deref().map_or(0, |s| s.lines().count());
                    self.summary_scroll = (self.summary_scroll + by).min(lines);
                }
                _ => {}
            }
            return None;
        }
        if self.typing {
            if keys::is_take_back(&k) {
                self.typing = false;
            } else if let Some(pty) = self.panes.get(self.focus).and_then(|p| p.pty.as_ref()) {
                pty.write(&keys::bytes(&k));
            }
            return None;
        }
        let n = self.panes.len().max(1);
        match k.code {
            KeyCode::Tab | KeyCode::Right | KeyCode::Down => self.focus = (self.focus + 1) % n,
            KeyCode::BackTab | KeyCode::Left | KeyCode::Up => self.focus = (self.focus + n - 1) % n,
            KeyCode::Char(c @ '1'..='9') => {
                let i = (c as usize) - ('1' as usize);
                if i < self.panes.len() {
                    self.focus = i;
                }
            }
            KeyCode::Char('z') | KeyCode::Enter => self.zoom = !self.zoom,
            KeyCode::Char('i') if self.summary.is_none() => {
                self.scroll_to(0);
                self.typing = self.panes.get(self.focus).is_some_and(|p| p.pty.is_some());
            }
            KeyCode::PageUp => self.scroll(true, k.modifiers),
            KeyCode::PageDown => self.scroll(false, k.modifiers),
            KeyCode::Home => self.scroll_to(SCROLLBACK),
            KeyCode::End => self.scroll_to(0),
            KeyCode::Esc => {
                self.zoom = false;
                self.scroll_to(0);
            }
            KeyCode::Char('q') if self.summary.is_none() => self.modal = Modal::Leave,
            // Raw mode turns Ctrl-C into a key: it asks too.
            KeyCode::Char('c')
                if k.modifiers.contains(KeyModifiers::CONTROL) && self.summary.is_none() =>
            {
                self.modal = Modal::Leave
            }
            _ => {}
        }
        None
    }

    fn scroll(&mut self, up: bool, _m: KeyModifiers) {
        let Some(p) = self.panes.get(self.focus) else {
            return;
        };
        let page = usize::from(p.term.screen().size().0 / 2).max(1);
        let to = if up {
            p.scroll.saturating_add(page)
        } else {
            p.scroll.saturating_sub(page)
        };
        self.scroll_to(to);
    }

    fn scroll_to(&mut self, lines: usize) {
        if let Some(p) = self.panes.get_mut(self.focus) {
            p.scroll = lines.min(max_scroll(p));
        }
        self.refresh_views();
    }

    /// Gives pane `i` a terminal of `cols` x `rows` (its emulator and its worker's pty).
    pub fn resize_pane(&mut self, i: usize, cols: u16, rows: u16) {
        let Some(p) = self.panes.get_mut(i) else {
            return;
        };
        let (r, c) = p.term.screen().size();
        if (r, c) != (rows, cols) && rows > 0 && cols > 0 {
            // Shrinking drops the bottom rows; as a terminal does, scroll the content up
            // first so the cursor's line (a shell prompt) stays on the screen.
            let (cursor, _) = p.term.screen().cursor_position();
            if cursor >= rows {
                let k = cursor - rows + 1;
                let lift = format!(
                    "\x1b7\x1b[{r};1H{}\x1b8\x1b[{k}A",
                    "\n".repeat(usize::from(k))
                );
                super::term::process_guarded(&mut p.term, lift.as_bytes());
            }
            p.term.set_size(rows, cols);
            p.scroll = p.scroll.min(max_scroll(p));
            if let Some(pty) = &p.pty {
                pty.resize(cols, rows);
            }
        }
    }
}
