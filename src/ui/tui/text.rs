//! The TUI's words: the header's lines and a pane's title and failure banner, shortened to
//! the columns they have (short forms keep every count, titles keep the step name). Pure
//! text from [`App`]; [`super::view`] draws it.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use super::app::App;
use crate::engine::{StepState, TargetState};

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
pub(super) fn header(app: &App, width: u16) -> Vec<Line<'static>> {
    let Some(cp) = &app.cp else {
        return vec![Line::from("build-helper: preparing")];
    };
    let total: usize = cp.targets.iter().map(|t| t.steps.len()).sum();
    let done: usize = cp
        .targets
        .iter()
        .flat_map(|t| &t.steps)
        .filter(|s| s.state.is_done())
        .count();
    let count = |s: TargetState| {
        cp.targets
            .iter()
            .filter(|t| super::app::shown_state(t) == s)
            .count()
    };
    let rescues = cp
        .targets
        .iter()
        .filter(|t| {
            matches!(
                super::app::shown_state(t),
                TargetState::RescueWaiting { .. }
            )
        })
        .count();
    let (d, r, f, w) = (
        count(TargetState::Done),
        count(TargetState::Running),
        count(TargetState::Failed) + rescues,
        count(TargetState::Waiting),
    );
    // Interrupted targets (their worker was killed) and rescue shells that wait (failed
    // targets someone must decide on) are named only when there are some.
    let (x_long, x_short) = match count(TargetState::Interrupted) {
        0 => (String::new(), String::new()),
        x => (format!(", {x} interrupted"), format!(" {x} intr")),
    };
    let (r_long, r_short) = match rescues {
        0 => (String::new(), String::new()),
        n => (
            format!(" ({n} rescue shell waiting)"),
            format!(" ({n} resc)"),
        ),
    };
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let id = &cp.run_id;
    let eta = app
        .run_eta_ms()
        .map(|ms| format!("  ETA {}", crate::progress::eta::short_duration(ms)))
        .unwrap_or_default();
    let first = fitting(
        width,
        vec![
            format!("build-helper run {id}{eta}  steps {done}/{total}  targets: {d} done, {r} running, {f} failed{r_long}, {w} waiting{x_long}"),
            format!("build-helper run {id}{eta}  steps {done}/{total}  targets: {d} done {r} run {f} fail{r_short} {w} wait{x_short}"),
            format!("{id}{eta}  steps {done}/{total}  {d} done {r} run {f} fail{r_short} {w} wait{x_short}"),
            format!("{id} {done}/{total} ok{d} run{r} fail{f}{r_short} wait{w}{x_short}"),
        ],
    );
    let first = match first.strip_prefix("build-helper run ") {
        Some(rest) => Line::from(vec![
            Span::styled(format!("build-helper run {id}"), bold),
            Span::raw(rest[id.len()..].to_string()),
        ]),
        None => Line::from(Span::styled(first, bold)),
    };
    let mut first = first;
    if cp.distcc_hosts.is_some() && first.width() + "  distcc on".len() <= usize::from(width) {
        first.push_span(Span::styled(
            "  distcc on",
            Style::new().fg(ratatui::style::Color::Cyan),
        ));
    }
    // The job pool: tokens in use of the total, and why none is handed out, when it fits.
    if let Some(p) = &app.pool {
        let jobs = format!("  jobs {}/{}", p.in_use, p.total);
        let held = p
            .held
            .as_ref()
            .map(|h| format!(" (held: {h})"))
            .unwrap_or_default();
        for text in [format!("{jobs}{held}"), jobs] {
            if first.width() + text.chars().count() <= usize::from(width) {
                let style = if held.is_empty() || !text.contains("held") {
                    Style::new().fg(Color::Cyan)
                } else {
                    Style::new().fg(Color::Yellow)
                };
                first.push_span(Span::styled(text, style));
                break;
            }
        }
    }
    let mut base = Vec::new();
    let mut short = Vec::new();
    let mark = |st: StepState| match st {
        StepState::Done { .. } => "✓",
        StepState::Running => "…",
        StepState::Failed { .. } => "✗",
        StepState::Pending => "·",
        StepState::Interrupted => "!",
    };
    for s in cp
        .run_steps
        .iter()
        .filter(|s| s.name != crate::engine::run::ARCHIVE)
    {
        base.push(format!("{} {}", s.name, s.state.word()));
        short.push(format!("{}{}", s.name, mark(s.state)));
    }
    if let Some(primary) = cp.targets.first() {
        if let Some(s) = primary.steps.iter().find(|s| s.name == "host-toolchain") {
            base.push(format!("host toolchain {}", s.state.word()));
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

/// A short state word for narrow titles and the list.
pub(super) fn short_word(s: TargetState) -> &'static str {
    match s {
        TargetState::Waiting => "wait",
        TargetState::Running => "run",
        TargetState::Failed => "FAIL",
        TargetState::RescueWaiting { .. } => "RESC",
        TargetState::Done => "done",
        TargetState::Interrupted => "intr",
    }
}

/// `s` cut to `n` characters, with `…` when cut.
pub(super) fn cut(s: &str, n: usize) -> String {
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
    // A rescue shell that waits (the checkpoint says so) is named even in a pane that
    // cannot type into it; `rescue`: this pane can.
    let waiting = matches!(state, TargetState::RescueWaiting { .. });
    let word = if waiting { "failed" } else { state.word() };
    let (hint, short_hint) = match (waiting, rescue) {
        (true, true) => (": rescue shell waiting, i to type", ": rescue, i"),
        (true, false) => (": rescue shell waiting", ": rescue"),
        (false, true) => (": rescue shell, i to type", ": rescue, i"),
        (false, false) => ("", ""),
    };
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

/// The first part of a tuple (`aarch64` of `aarch64-unknown-linux-musl`).
pub(super) fn arch(tuple: &str) -> &str {
    tuple.split('-').next().unwrap_or(tuple)
}
