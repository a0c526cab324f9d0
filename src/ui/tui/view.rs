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
        Paragraph::new(header(app)),
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
        dialog(frame, area, "Quit?", "Stop the run? Running workers are stopped; their checkpoints stay (continue with --resume). [y/N]");
    }
    if let Some(summary) = &app.summary {
        let mut text = summary.trim_end().to_string();
        match &app.question {
            Some(q) => text.push_str(&format!("\n\n{}", q.text)),
            None => text.push_str("\n\nPress Enter to close."),
        }
        dialog(frame, area, "Run finished", &text);
    } else if let Some(q) = &app.question {
        dialog(frame, area, "Question", &q.text);
    }
}

fn header(app: &App) -> Vec<Line<'static>> {
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
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut first = Line::from(vec![
        Span::styled(format!("build-helper run {}", cp.run_id), bold),
        Span::styled(
            app.run_eta_ms()
                .map(|ms| format!("  ETA {}", short_duration(ms)))
                .unwrap_or_default(),
            bold,
        ),
        Span::raw(format!(
            "  steps {done}/{total}  targets: {} done, {} running, {} failed, {} waiting",
            count(TargetState::Done),
            count(TargetState::Running),
            count(TargetState::Failed),
            count(TargetState::Waiting)
        )),
    ]);
    if cp.distcc_hosts.is_some() {
        first.push_span(Span::styled("  distcc on", Style::new().fg(Color::Cyan)));
    }
    let mut base = Vec::new();
    for s in cp.run_steps.iter().filter(|s| s.name != "archive-history") {
        base.push(format!(
            "{} {}",
            s.name,
            crate::ui::plain::state_word(s.state)
        ));
    }
    if let Some(primary) = cp.targets.first() {
        if let Some(s) = primary.steps.iter().find(|s| s.name == "host-toolchain") {
            base.push(format!(
                "host toolchain {}",
                crate::ui::plain::state_word(s.state)
            ));
        }
    }
    let mut tuples: Vec<&str> = cp.targets.iter().map(|t| t.target.tuple.as_str()).collect();
    tuples.dedup();
    let mut seen = Vec::new();
    for t in tuples {
        if !seen.contains(&t) {
            seen.push(t);
            let ready = if cp.tuple_ready(t) {
                "ready"
            } else {
                "pending"
            };
            base.push(format!("crossdev {} {ready}", arch(t)));
        }
    }
    let second = Line::from(format!("base: {}", base.join(" · ")));
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

use crate::progress::eta::short_duration;

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
    let mut time = elapsed(secs);
    if let Some(ms) = eta {
        time = format!("{time} ETA {}", short_duration(ms));
    }
    let rescue = if state == TargetState::Failed {
        ": rescue shell, i to type"
    } else {
        ""
    };
    let word = target_word(state);
    let pkgs = packages
        .as_ref()
        .map(|p| format!(" {}", p.short()))
        .unwrap_or_default();
    // The whole target when it fits, else its build name and architecture, else (a narrow
    // pane of a building target) the package counter and the package's name only.
    let name = &pane.target.name;
    let arch = arch(&pane.target.tuple);
    let fits =
        |t: &str, time: &str| t.chars().count() + time.chars().count() < usize::from(area.width);
    let mut title = format!(
        "{marker}{} {} {word} {step}{pkgs}{rescue}",
        i + 1,
        pane.target
    );
    if !fits(&title, &time) {
        title = format!(
            "{marker}{} {name} ({arch}) {word} {step}{pkgs}{rescue}",
            i + 1
        );
    }
    if let (false, Some(p)) = (fits(&title, &time), &packages) {
        let cp = p
            .current
            .as_deref()
            .map(crate::progress::package_of)
            .unwrap_or("");
        let pn = cp.rsplit('/').next().unwrap_or(cp);
        let count = if p.total > 0 {
            format!("{}/{}", p.done, p.total)
        } else {
            p.done.to_string()
        };
        let n = i + 1;
        title = format!("{marker}{n} {name} {step} {count} {cp}");
        if !fits(&title, &time) {
            if let Some(ms) = eta {
                time = format!("ETA {}", short_duration(ms));
            }
            title = format!("{marker}{n} {name} {count} {cp}");
        }
        if !fits(&title, &time) {
            title = format!("{marker}{n} {name} {count} {pn}");
        }
    }
    let room = usize::from(area.width).saturating_sub(time.chars().count() + 1);
    let width = usize::from(area.width);
    let mut text: String = title.chars().take(room).collect();
    let pad = width.saturating_sub(text.chars().count() + time.chars().count());
    text.push_str(&" ".repeat(pad));
    text.push_str(&time);
    let block = Block::new().borders(Borders::NONE);
    frame.render_widget(block, area);
    frame.render_widget(
        Paragraph::new(text).style(title_style),
        Rect::new(area.x, area.y, area.width, 1.min(area.height)),
    );
    let inner = Rect::new(
        area.x,
        area.y + 1,
        area.width,
        area.height.saturating_sub(1),
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

fn draw_list(frame: &mut Frame, app: &App, area: Rect) {
    let lines: Vec<Line> = app
        .panes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (state, mut step, _) = app.progress(&p.target);
            if let (Some(packages), _) = app.package_progress(&p.target) {
                step = format!("{step} {}", packages.short());
            }
            let marker = if i == app.focus { "▶" } else { " " };
            Line::from(Span::styled(
                format!(
                    "{marker}{:>2} {} {} {}",
                    i + 1,
                    p.target.name,
                    target_word(state),
                    step
                ),
                Style::new().fg(state_colour(state)),
            ))
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::RIGHT)),
        area,
    );
}

fn dialog(frame: &mut Frame, area: Rect, title: &str, text: &str) {
    let w = area.width.saturating_sub(4).min(110);
    let inner = usize::from(w.saturating_sub(2)).max(1);
    let lines: usize = text
        .lines()
        .map(|l| l.chars().count().div_ceil(inner).max(1))
        .sum();
    let h = (lines as u16).saturating_add(2).min(area.height);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(text.to_string())
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(format!(" {title} "))),
        r,
    );
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
