//! Drawing the TUI from its state (the "view"): header (run id, base status, progress),
//! panes (title line and the worker's emulated terminal), footer (keys), and the dialogs.
//! Reads [`App`]; changes nothing but the frame.

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};
use ratatui::Frame;

use super::app::{App, Pane};
use super::keys::HELP;
use super::layout::{arrange, Arrangement};
use crate::engine::{StepState, TargetState};
use crate::ui::plain::target_word;

/// Rows of the header.
const HEADER: u16 = 3;

/// The body (where panes go) of a screen of `area`.
pub fn body(area: Rect) -> Rect {
    Rect::new(
        area.x,
        area.y + HEADER,
        area.width,
        area.height.saturating_sub(HEADER + 1),
    )
}

/// Where each pane is drawn for a screen of `area`: `(pane index, rectangle incl. title)`.
/// Panes not shown keep their size.
pub fn placements(app: &App, area: Rect) -> Vec<(usize, Rect)> {
    let body = body(area);
    if app.zoom {
        return vec![(app.focus, body)];
    }
    match arrange(app.panes.len(), body) {
        Arrangement::Grid(r) => r.into_iter().enumerate().collect(),
        Arrangement::List { pane, .. } => (0..app.panes.len()).map(|i| (i, pane)).collect(),
    }
}

/// Draws the whole screen.
pub fn render(frame: &mut Frame, app: &App) {
    let area = frame.area();
    frame.render_widget(
        Paragraph::new(header(app, area.width)),
        Rect::new(area.x, area.y, area.width, HEADER.min(area.height)),
    );
    let body = body(area);
    if app.zoom {
        draw_pane(frame, app, app.focus, body);
    } else {
        match arrange(app.panes.len(), body) {
            Arrangement::Grid(rects) => {
                for (i, r) in rects.into_iter().enumerate() {
                    draw_pane(frame, app, i, r);
                }
            }
            Arrangement::List { list, pane } => {
                draw_list(frame, app, list);
                draw_pane(frame, app, app.focus, pane);
            }
        }
    }
    let footer = Rect::new(area.x, area.bottom().saturating_sub(1), area.width, 1);
    frame.render_widget(
        Paragraph::new(footer_line(app)).style(Style::new().bg(Color::DarkGray).fg(Color::White)),
        footer,
    );
    if app.confirm_quit {
        dialog(
            frame,
            area,
            "Quit?",
            "Stop the run? Running workers are stopped; their checkpoints stay (continue with --resume).",
            "[y/N]",
            0,
        );
    }
    if let Some(summary) = &app.summary {
        let pinned = match &app.question {
            Some(q) => q.text.clone(),
            None => "Press Enter to close.".to_string(),
        };
        dialog(
            frame,
            area,
            "Run finished",
            summary.trim_end(),
            &pinned,
            app.summary_scroll,
        );
    } else if let Some(q) = &app.question {
        dialog(frame, area, "Question", &q.text, "", 0);
    }
}

/// The first of `candidates` that fits `width` columns, else the last.
fn fitting(width: u16, candidates: Vec<String>) -> String {
    let w = usize::from(width);
    let last = candidates.last().cloned().unwrap_or_default();
    candidates
        .into_iter()
        .find(|c| c.chars().count() <= w)
        .unwrap_or(last)
}

/// The header's three lines for a screen `width` columns wide: progress with every target
/// count (short forms when narrow), the base (stage3, mounts, toolchains), the newest
/// supervisor message.
fn header(app: &App, width: u16) -> Vec<Line<'static>> {
    let Some(cp) = &app.cp else {
        return vec![Line::from("build-helper: preparing")];
    };
    let total: usize = cp.targets.iter().map(|t| t.steps.len()).sum();
    let done: usize = cp
        .targets
        .iter()
        .flat_map(|t| &t.steps)
        .filter(|s| s.state == StepState::Done)
        .count();
    let count = |s: TargetState| {
        cp.targets
            .iter()
            .filter(|t| super::app::shown_state(t) == s)
            .count()
    };
    let (d, r, f, w) = (
        count(TargetState::Done),
        count(TargetState::Running),
        count(TargetState::Failed),
        count(TargetState::Waiting),
    );
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let id = &cp.run_id;
    let first = fitting(
        width,
        vec![
            format!("build-helper run {id}  steps {done}/{total}  targets: {d} done, {r} running, {f} failed, {w} waiting"),
            format!("build-helper run {id}  steps {done}/{total}  targets: {d} done {r} run {f} fail {w} wait"),
            format!("{id}  steps {done}/{total}  {d} done {r} run {f} fail {w} wait"),
            format!("{id} {done}/{total} ok{d} run{r} fail{f} wait{w}"),
        ],
    );
    let first = match first.strip_prefix("build-helper run ") {
        Some(rest) => Line::from(vec![
            Span::styled(format!("build-helper run {id}"), bold),
            Span::raw(rest[id.len()..].to_string()),
        ]),
        None => Line::from(Span::styled(first, bold)),
    };
    let mut base = Vec::new();
    let mut short = Vec::new();
    let mark = |st: StepState| match st {
        StepState::Done => "✓",
        StepState::Running => "…",
        StepState::Failed => "✗",
        StepState::Pending => "·",
    };
    for s in cp.run_steps.iter().filter(|s| s.name != "archive-history") {
        base.push(format!(
            "{} {}",
            s.name,
            crate::ui::plain::state_word(s.state)
        ));
        short.push(format!("{}{}", s.name, mark(s.state)));
    }
    if let Some(primary) = cp.targets.first() {
        if let Some(s) = primary.steps.iter().find(|s| s.name == "host-toolchain") {
            base.push(format!(
                "host toolchain {}",
                crate::ui::plain::state_word(s.state)
            ));
            short.push(format!("toolchain{}", mark(s.state)));
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for t in cp.targets.iter().map(|t| t.target.tuple.as_str()) {
        if !seen.contains(&t) {
            seen.push(t);
            let ready = cp.tuple_ready(t);
            base.push(format!(
                "crossdev {} {}",
                arch(t),
                if ready { "ready" } else { "pending" }
            ));
            short.push(format!("{}{}", arch(t), if ready { "✓" } else { "…" }));
        }
    }
    let second = Line::from(fitting(
        width,
        vec![
            format!("base: {}", base.join(" · ")),
            format!("base: {}", short.join(" ")),
        ],
    ));
    let third = Line::from(Span::styled(
        app.messages.back().cloned().unwrap_or_default(),
        Style::new().fg(Color::Gray),
    ));
    vec![first, second, third]
}

fn footer_line(app: &App) -> String {
    if app.typing {
        let t = app
            .panes
            .get(app.focus)
            .map(|p| p.target.to_string())
            .unwrap_or_default();
        return format!("TYPING into {t}: keys go to the worker; Ctrl-] gives them back");
    }
    match app.panes.get(app.focus) {
        Some(p) if p.scroll > 0 => format!("scrolled back {} lines (End: live)  {HELP}", p.scroll),
        _ => HELP.to_string(),
    }
}

/// The first part of a tuple (`aarch64` of `aarch64-unknown-linux-musl`).
fn arch(tuple: &str) -> &str {
    tuple.split('-').next().unwrap_or(tuple)
}

fn state_colour(s: TargetState) -> Color {
    match s {
        TargetState::Waiting => Color::DarkGray,
        TargetState::Running => Color::Blue,
        TargetState::Failed => Color::Red,
        TargetState::Done => Color::Green,
    }
}

fn elapsed(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// A short state word for narrow titles and the list.
fn short_word(s: TargetState) -> &'static str {
    match s {
        TargetState::Waiting => "wait",
        TargetState::Running => "run",
        TargetState::Failed => "FAIL",
        TargetState::Done => "done",
    }
}

/// `s` cut to `n` characters, with `…` when cut.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else if n == 0 {
        String::new()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}

/// A pane's title text without the time, at most `room` columns: the step name is kept
/// whole as long as it can be; the target is shortened first (whole target, then build name
/// and architecture, then the build name cut), then the state word, then the rescue hint.
pub fn title(
    head: &str,
    target: &crate::config::Target,
    state: TargetState,
    step: &str,
    rescue: bool,
    room: usize,
) -> String {
    let word = target_word(state);
    let hint = if rescue {
        ": rescue shell, i to type"
    } else {
        ""
    };
    let short_hint = if rescue { ": rescue, i" } else { "" };
    let full = format!("{head} {target} {word} {step}{hint}");
    let name_arch = format!("{} ({})", target.name, arch(&target.tuple));
    let candidates = [
        full,
        format!("{head} {name_arch} {word} {step}{hint}"),
        format!("{head} {} {word} {step}{hint}", target.name),
        format!("{head} {} {word} {step}{short_hint}", target.name),
        format!(
            "{head} {} {} {step}{short_hint}",
            target.name,
            short_word(state)
        ),
        format!("{head} {} {} {step}", target.name, short_word(state)),
    ];
    if let Some(t) = candidates.iter().find(|c| c.chars().count() <= room) {
        return t.clone();
    }
    // Cut the build name so the step fits; the step last.
    let fixed = format!("{head}  {} {step}", short_word(state))
        .chars()
        .count();
    let name_room = room.saturating_sub(fixed).max(3);
    let t = format!(
        "{head} {} {} {step}",
        cut(&target.name, name_room),
        short_word(state)
    );
    cut(&t, room)
}

/// The lines shown above a failed target's terminal, `width` columns wide: what failed and
/// where its log is (the worker printed them too, but its shell may have scrolled them away
/// in a small pane). Empty for a target that has not failed.
pub fn banner(app: &App, i: usize, width: u16) -> Vec<String> {
    let Some(pane) = app.panes.get(i) else {
        return Vec::new();
    };
    let Some((step, code)) = app.failure(&pane.target) else {
        return Vec::new();
    };
    let code = code.map(|c| format!(" (exit {c})")).unwrap_or_default();
    let what = format!("✗ step {step} failed{code}");
    let Some(dir) = &app.log_dir else {
        return vec![what];
    };
    let log = dir
        .join(format!("{}.log", pane.target))
        .display()
        .to_string();
    let w = usize::from(width);
    let one = format!("{what} · log: {log}");
    if one.chars().count() <= w {
        return vec![one];
    }
    // The log path on up to two lines; longer, its start is cut (the file name matters).
    let mut log: Vec<char> = format!("log: {log}").chars().collect();
    let room = 2 * w.max(1);
    if log.len() > room {
        let drop = log.len() - room + 1;
        log.splice(5..5 + drop, ['…']);
    }
    let mut lines = vec![cut(&what, w)];
    lines.extend(log.chunks(w.max(1)).map(|c| c.iter().collect::<String>()));
    lines
}

fn draw_pane(frame: &mut Frame, app: &App, i: usize, area: Rect) {
    let Some(pane) = app.panes.get(i) else {
        return;
    };
    let (state, step, secs) = app.progress(&pane.target);
    let focused = i == app.focus;
    let mut title_style = Style::new().bg(state_colour(state)).fg(Color::White);
    if focused {
        title_style = title_style.add_modifier(Modifier::BOLD);
    }
    let marker = if focused { "▶" } else { " " };
    let time = elapsed(secs);
    let room = usize::from(area.width).saturating_sub(time.chars().count() + 1);
    let rescue = state == TargetState::Failed && !pane.exited && pane.pty.is_some();
    let head = format!("{marker}{}", i + 1);
    let width = usize::from(area.width);
    let mut text = title(&head, &pane.target, state, &step, rescue, room);
    let pad = width.saturating_sub(text.chars().count() + time.chars().count());
    text.push_str(&" ".repeat(pad));
    text.push_str(&time);
    let block = Block::new().borders(Borders::NONE);
    frame.render_widget(block, area);
    frame.render_widget(
        Paragraph::new(text).style(title_style),
        Rect::new(area.x, area.y, area.width, 1.min(area.height)),
    );
    let banner = banner(app, i, area.width);
    let rows = (banner.len() as u16).min(area.height.saturating_sub(1));
    for (k, line) in banner.iter().take(usize::from(rows)).enumerate() {
        frame.render_widget(
            Paragraph::new(line.clone())
                .style(Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
            Rect::new(area.x, area.y + 1 + k as u16, area.width, 1),
        );
    }
    let inner = Rect::new(
        area.x,
        area.y + 1 + rows,
        area.width,
        area.height.saturating_sub(1 + rows),
    );
    frame.render_widget(Screen(pane), inner);
    if focused && app.typing {
        let (row, col) = pane.term.screen().cursor_position();
        let pos = Position::new(inner.x + col, inner.y + row);
        if inner.contains(pos) {
            frame.set_cursor_position(pos);
        }
    }
}

/// The list of targets beside the focused pane: one line each (number, build name, short
/// state, step `k/N`), scrolled so the focused one is always shown; `+N` lines say how many
/// are above and below.
fn draw_list(frame: &mut Frame, app: &App, area: Rect) {
    let inner_w = usize::from(area.width.saturating_sub(1));
    let rows = usize::from(area.height).max(1);
    let n = app.panes.len();
    let (mut first, mut last) = (0, n);
    if n > rows {
        let shown = rows.saturating_sub(2).max(1);
        first = app.focus.saturating_sub(shown / 2).min(n - shown);
        last = first + shown;
    }
    let mut lines: Vec<Line> = Vec::new();
    if first > 0 {
        lines.push(Line::from(format!(" +{first} above")).style(Style::new().fg(Color::Gray)));
    }
    for (i, p) in app.panes.iter().enumerate().take(last).skip(first) {
        let (state, step, _) = app.progress(&p.target);
        let marker = if i == app.focus { "▶" } else { " " };
        let k_of_n = step.split(' ').next().unwrap_or("");
        let tail = format!(" {} {k_of_n}", short_word(state));
        let head = format!("{marker}{:>2} ", i + 1);
        let name_room = inner_w.saturating_sub(head.chars().count() + tail.chars().count());
        let text = cut(
            &format!("{head}{}{tail}", cut(&p.target.name, name_room)),
            inner_w,
        );
        lines.push(Line::from(Span::styled(
            text,
            Style::new().fg(state_colour(state)),
        )));
    }
    if last < n {
        lines.push(Line::from(format!(" +{} below", n - last)).style(Style::new().fg(Color::Gray)));
    }
    frame.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::RIGHT)),
        area,
    );
}

/// Rows `text` takes wrapped at `width` columns (words may wrap earlier: an estimate that
/// errs by whole words, so one spare row is kept).
fn wrapped_rows(text: &str, width: usize) -> usize {
    text.lines()
        .map(|l| l.chars().count().div_ceil(width.max(1)).max(1))
        .sum()
}

/// A box over the screen: `text` (scrolled down `scroll` rows when taller than the box) and
/// `pinned` below it, always shown, e.g. how to close it.
fn dialog(frame: &mut Frame, area: Rect, title: &str, text: &str, pinned: &str, scroll: usize) {
    let w = area.width.saturating_sub(2).min(110);
    let inner = usize::from(w.saturating_sub(2)).max(1);
    let pinned_rows = if pinned.is_empty() {
        0
    } else {
        wrapped_rows(pinned, inner) as u16
    };
    let text_rows = wrapped_rows(text, inner) as u16 + 1;
    let h = (text_rows + pinned_rows + 2).min(area.height);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let room = h.saturating_sub(2 + pinned_rows);
    let max_scroll = text_rows.saturating_sub(room);
    let scroll = (scroll as u16).min(max_scroll);
    let mut block = Block::bordered().title(format!(" {title} "));
    if max_scroll > 0 {
        block = block.title_bottom(format!(" ↑/↓ scroll ({}/{}) ", scroll, max_scroll));
    }
    frame.render_widget(Clear, r);
    let inside = block.inner(r);
    frame.render_widget(block, r);
    frame.render_widget(
        Paragraph::new(text.to_string())
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        Rect::new(inside.x, inside.y, inside.width, room),
    );
    if pinned_rows > 0 {
        frame.render_widget(
            Paragraph::new(pinned.to_string())
                .wrap(Wrap { trim: false })
                .style(Style::new().add_modifier(Modifier::BOLD)),
            Rect::new(
                inside.x,
                inside.y + room,
                inside.width,
                pinned_rows.min(inside.height),
            ),
        );
    }
}

/// A worker's emulated terminal drawn cell by cell (colours and attributes kept).
struct Screen<'a>(&'a Pane);

fn colour(c: vt100::Color) -> Color {
    match c {
        vt100::Color::Default => Color::Reset,
        vt100::Color::Idx(i) => Color::Indexed(i),
        vt100::Color::Rgb(r, g, b) => Color::Rgb(r, g, b),
    }
}

impl Widget for Screen<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let screen = self.0.screen();
        for row in 0..area.height {
            for col in 0..area.width {
                let Some(cell) = screen.cell(row, col) else {
                    continue;
                };
                let Some(out) = buf.cell_mut(Position::new(area.x + col, area.y + row)) else {
                    continue;
                };
                if cell.has_contents() {
                    out.set_symbol(&cell.contents());
                } else {
                    out.set_symbol(" ");
                }
                let mut style = Style::new()
                    .fg(colour(cell.fgcolor()))
                    .bg(colour(cell.bgcolor()));
                if cell.bold() {
                    style = style.add_modifier(Modifier::BOLD);
                }
                if cell.italic() {
                    style = style.add_modifier(Modifier::ITALIC);
                }
                if cell.underline() {
                    style = style.add_modifier(Modifier::UNDERLINED);
                }
                if cell.inverse() {
                    style = style.add_modifier(Modifier::REVERSED);
                }
                out.set_style(style);
            }
        }
    }
}
