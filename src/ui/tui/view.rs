//! Drawing the TUI from its state (the "view"): header (its text in [`super::text`]),
//! panes (title line and the worker's emulated terminal), footer (keys), and the dialogs.
//! Reads [`App`]; changes nothing but the frame.

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};
use ratatui::Frame;

use super::app::{App, Modal, Pane};
use super::keys::HELP;
use super::layout::{arrange, Arrangement};
pub use super::text::{banner, title};
use super::text::{cut, header, short_word};
use crate::engine::TargetState;

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
    let question = match &app.modal {
        Modal::Question(q) => Some(q),
        _ => None,
    };
    if app.modal == Modal::Leave {
        dialog(
            frame,
            area,
            "Leave?",
            "d: detach: the screen closes, the run goes on (come back with `build-helper \
             attach`).\ns: stop the run: running workers are stopped; their checkpoints stay \
             (continue with --resume).",
            "[d]etach  [s]top  any other key: cancel",
            0,
        );
    }
    if let Some(summary) = &app.summary {
        let pinned = match question {
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
    } else if let Some(q) = question {
        dialog(frame, area, "Question", &q.text, "", 0);
    }
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

use crate::progress::eta::short_duration;

fn state_colour(s: TargetState) -> Color {
    match s {
        TargetState::Waiting => Color::DarkGray,
        TargetState::Running => Color::Blue,
        TargetState::Failed => Color::Red,
        // Someone must decide: the colour of a question, not of an end.
        TargetState::RescueWaiting { .. } => Color::Magenta,
        TargetState::Interrupted => Color::Yellow,
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

fn draw_pane(frame: &mut Frame, app: &App, i: usize, area: Rect) {
    let Some(pane) = app.panes.get(i) else {
        return;
    };
    let (state, step, secs) = app.progress(&pane.target);
    let (packages, eta) = app.package_progress(&pane.target);
    let focused = i == app.focus;
    let mut title_style = Style::new().bg(state_colour(state)).fg(Color::White);
    if focused {
        title_style = title_style.add_modifier(Modifier::BOLD);
    }
    let marker = if focused { "▶" } else { " " };
    let rescue = super::app::is_failed(state) && !pane.exited && pane.pty.is_some();
    let head = format!("{marker}{}", i + 1);
    let width = usize::from(area.width);
    // The package counter belongs to the step, which titles keep longest: the longest
    // form that fits uncut wins (package, then its name only, then the counter, then the
    // step alone); a tight pane shows the ETA without the elapsed time.
    let mut steps = vec![step.clone()];
    if let Some(p) = &packages {
        let count = if p.total > 0 {
            format!("{}/{}", p.done, p.total)
        } else {
            p.done.to_string()
        };
        let pkg = p
            .current
            .as_deref()
            .map(crate::progress::package_of)
            .unwrap_or("");
        let pn = pkg.rsplit('/').next().unwrap_or(pkg);
        steps = vec![
            format!("{step} {}", p.short()),
            format!("{step} {count} {pn}"),
            format!("{step} {count}"),
            step.clone(),
        ];
    }
    let elapsed_time = elapsed(secs);
    let mut times = vec![elapsed_time.clone()];
    if let Some(ms) = eta {
        times = vec![
            format!("{elapsed_time} ETA {}", short_duration(ms)),
            format!("ETA {}", short_duration(ms)),
        ];
    }
    // The CPU time its finished steps used (their measured cost), first to go when narrow.
    let cpu_us: u64 = app
        .cp
        .as_ref()
        .and_then(|cp| cp.targets.iter().find(|t| t.target == pane.target))
        .map(|t| {
            t.steps
                .iter()
                .filter_map(|s| s.cost.map(|c| c.cpu_us))
                .sum()
        })
        .unwrap_or(0);
    if cpu_us > 0 {
        // Only beside the fullest title: the step and its package come first.
        let with = format!("CPU {} · {}", short_duration(cpu_us / 1000), times[0]);
        let room = width.saturating_sub(with.chars().count() + 1);
        if !title(&head, &pane.target, state, &steps[0], rescue, room).contains('…') {
            times.insert(0, with);
        }
    }
    let mut pick = None;
    'fit: for time in &times {
        let room = width.saturating_sub(time.chars().count() + 1);
        for st in &steps {
            let t = title(&head, &pane.target, state, st, rescue, room);
            if !t.contains('…') {
                pick = Some((t, time.clone()));
                break 'fit;
            }
        }
    }
    let (mut text, time) = pick.unwrap_or_else(|| {
        let time = times[0].clone();
        let room = width.saturating_sub(time.chars().count() + 1);
        (title(&head, &pane.target, state, &step, rescue, room), time)
    });
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
        let packages = match app.package_progress(&p.target) {
            (Some(pk), _) if pk.total > 0 => format!(" {}/{}", pk.done, pk.total),
            _ => String::new(),
        };
        let tail = format!(" {} {k_of_n}{packages}", short_word(state));
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
