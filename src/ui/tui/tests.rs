//! Snapshot tests of the TUI screens (ratatui `TestBackend` + insta): 1, 3, 7 and 32 workers
//! at 80x24 and 200x60, a failed pane, zoom, the end summary; and the update rules.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::Terminal;

use super::app::{App, Effect, Modal};
use super::{fit, view};
use crate::config::Target;
use crate::engine::{Checkpoint, StepRecord, StepState, TargetRecord};
use crate::recipe::Phase;

const T0: u64 = 1_700_000_000_000_000;
const STEPS: [&str; 5] = [
    "target-env",
    "target-world",
    "target-maintenance",
    "world-images",
    "kernel",
];

/// A target step that finished well.
const DONE: StepState = StepState::Done { exit_code: Some(0) };
/// A target step that failed with exit code 1, no rescue shell waiting.
const FAILED: StepState = StepState::Failed {
    exit_code: Some(1),
    rescue: None,
};

fn step(name: &str, state: StepState, started_s: Option<u64>) -> StepRecord {
    StepRecord {
        name: name.into(),
        phase: Some(Phase::Target),
        state,
        started_us: started_s.map(|s| T0 + s * 1_000_000),
        duration_ms: match state {
            StepState::Done { .. } | StepState::Failed { .. } => Some(12_000),
            _ => None,
        },
        attempts: u32::from(started_s.is_some()),
        cost: None,
    }
}

/// Target `i` of `n`: the first is done, the last waits, the others run step `i % 5`.
fn record(i: usize, n: usize) -> TargetRecord {
    let tuple = if i.is_multiple_of(2) {
        "x86_64-unknown-linux-musl"
    } else {
        "aarch64-unknown-linux-musl"
    };
    let running = if i == n - 1 && n > 1 {
        None
    } else {
        Some(i % STEPS.len())
    };
    let steps = STEPS
        .iter()
        .enumerate()
        .map(|(k, s)| match running {
            _ if i == 0 && n > 1 => step(s, DONE, Some(k as u64 * 12)),
            Some(r) if k < r => step(s, DONE, Some(k as u64 * 12)),
            Some(r) if k == r => step(s, StepState::Running, Some(k as u64 * 12)),
            _ => step(s, StepState::Pending, None),
        })
        .collect();
    TargetRecord {
        target: Target {
            tuple: tuple.into(),
            name: format!("board{}", i + 1),
        },
        steps,
    }
}

fn checkpoint(n: usize) -> Checkpoint {
    Checkpoint {
        run_id: "board1-20261122".into(),
        run_steps: vec![
            step("stage3", DONE, Some(0)),
            step("mounts", DONE, Some(0)),
            step("archive-history", StepState::Pending, None),
        ],
        toolchain_ready: vec!["x86_64-unknown-linux-musl".into()],
        targets: (0..n).map(|i| record(i, n)).collect(),
        finished: false,
        distcc_hosts: None,
    }
}

/// An app with `n` workers, each having printed some coloured output and a progress line.
fn app(n: usize) -> App {
    let mut app = App::new();
    let cp = checkpoint(n);
    app.checkpoint(&cp);
    app.now_us = T0 + 75 * 1_000_000;
    app.say("run board1-20261122 (new), 3 target(s), first build from a stage3");
    let area = Rect::new(0, 0, 80, 24);
    fit(&mut app, area);
    for (i, t) in cp.targets.iter().enumerate() {
        let out = format!(
            "\x1b[32m>>>\x1b[0m Emerging (1 of 3) sys-libs/zlib-1.3 for /usr/{}/\r\n\
             \x1b[1;33m * \x1b[0mApplying patch {}...\r\n\
             progress 10%\rprogress 50%\rprogress 100%\r\n\
             line after the progress line of worker {}\r\n",
            t.target.tuple,
            i + 1,
            i + 1
        );
        app.output(&t.target, out.as_bytes());
    }
    app
}

fn screen(app: &mut App, w: u16, h: u16) -> Terminal<TestBackend> {
    fit(app, Rect::new(0, 0, w, h));
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    term.draw(|f| view::render(f, app)).expect("draw");
    term
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

macro_rules! snap {
    ($name:ident, $n:expr, $w:expr, $h:expr) => {
        #[test]
        fn $name() {
            let mut a = app($n);
            let term = screen(&mut a, $w, $h);
            insta::assert_snapshot!(term.backend());
        }
    };
}

snap!(one_worker_80x24, 1, 80, 24);
snap!(three_workers_80x24, 3, 80, 24);
snap!(
    seven_workers_80x24_become_a_list_and_the_focused_pane,
    7,
    80,
    24
);
snap!(thirty_two_workers_80x24, 32, 80, 24);
snap!(one_worker_200x60, 1, 200, 60);
snap!(three_workers_200x60, 3, 200, 60);
snap!(seven_workers_200x60, 7, 200, 60);
snap!(thirty_two_workers_200x60, 32, 200, 60);

/// The screen's text, one string per row.
fn rows(term: &Terminal<TestBackend>) -> Vec<String> {
    let buf = term.backend().buffer();
    (0..buf.area.height)
        .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect())
        .collect()
}

/// The failure as the worker prints it (worker/rescue.rs), then the rescue shell's banner
/// and prompt, as busybox's ash shows them.
fn fail_board2(a: &mut App) -> Target {
    let mut cp = checkpoint(3);
    let failed = cp.targets[1].target.clone();
    let s = &mut cp.targets[1].steps[1];
    s.state = FAILED;
    a.log_dir = Some("/srv/bh/work/board1-20261122-015603/logs".into());
    a.checkpoint(&cp);
    let out = format!(
        "\r\n\x1b[1;31mbuild-helper: step target-world of {failed} failed (exit 1)\x1b[0m\r\n\
         log: /srv/bh/work/board1-20261122-015603/logs/{failed}.log\r\n\
         A rescue shell opens in the target's chroot; fix the cause, then leave it with `exit`.\r\n\
         \r\n\r\nBusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) built-in shell (ash)\r\n\
         Enter 'help' for a list of built-in commands.\r\n\r\n(rescue {failed}) / # "
    );
    a.output(&failed, out.as_bytes());
    failed
}

#[test]
fn failed_pane_turns_red_and_takes_the_focus() {
    let mut a = app(3);
    let failed = fail_board2(&mut a);
    assert_eq!(a.focus, 1, "the failed target's pane gets the focus");
    let term = screen(&mut a, 80, 24);
    let buf = term.backend().buffer();
    let title_row = (0..24)
        .find(|y| (0..80).any(|x| buf[(x, *y)].symbol() == "▶"))
        .expect("a focused title");
    let x = (0..80)
        .find(|x| buf[(*x, title_row)].symbol() == "▶")
        .unwrap_or(0);
    assert_eq!(buf[(x, title_row)].bg, Color::Red);
    let text = rows(&term).join("\n");
    // The failure line and the log path stay above the shell, however small the pane.
    assert!(
        text.contains("✗ step target-world failed (exit 1)"),
        "{text}"
    );
    assert!(text.contains(&format!("{failed}.log")), "{text}");
    assert!(text.contains("(rescue aarch64"), "{text}");
    insta::assert_snapshot!(term.backend());
}

#[test]
fn titles_keep_the_step_name_and_shorten_the_target() {
    let target = Target {
        tuple: "aarch64-unknown-linux-musl".into(),
        name: "raspberry-pi-4b-living-room".into(),
    };
    for room in [20, 30, 38, 50, 80] {
        let t = view::title(
            "▶12",
            &target,
            crate::engine::TargetState::Failed,
            "11/18 target-maintenance",
            true,
            room,
        );
        assert!(t.chars().count() <= room, "{room}: {t}");
        if room >= 38 {
            assert!(t.contains("11/18 target-maintenance"), "{room}: {t}");
        }
    }
    let t = view::title(
        " 2",
        &target,
        crate::engine::TargetState::Running,
        "3/18 target-world",
        false,
        38,
    );
    assert!(
        t.ends_with("3/18 target-world") && t.contains("raspberry"),
        "{t}"
    );
}

#[test]
fn a_failed_target_whose_worker_left_offers_no_rescue_shell() {
    let mut a = app(3);
    let failed = fail_board2(&mut a);
    a.panes[1].pty = None;
    a.worker_gone(&failed);
    let text = rows(&screen(&mut a, 200, 60)).join("\n");
    assert!(!text.contains("rescue shell, i to type"), "{text}");
    assert!(text.contains("failed 2/5 target-world"), "{text}");
}

#[test]
fn the_header_keeps_every_count_at_80_columns() {
    let mut a = app(7);
    fail_board2(&mut a);
    let first = rows(&screen(&mut a, 80, 24))[0].clone();
    for word in ["done", "run", "fail", "wait", "steps"] {
        assert!(first.contains(word), "{first}");
    }
}

#[test]
fn zoom_shows_the_focused_pane_full_screen() {
    let mut a = app(3);
    a.key(key(KeyCode::Tab));
    a.key(key(KeyCode::Char('z')));
    assert!(a.zoom);
    let term = screen(&mut a, 80, 24);
    insta::assert_snapshot!(term.backend());
}

#[test]
fn end_summary_is_shown_over_the_panes() {
    let mut a = app(3);
    a.summary = Some(crate::ui::plain::summary(&checkpoint(3), &|t| {
        format!("/builds/{t}.20261122")
    }));
    let term = screen(&mut a, 80, 24);
    assert!(rows(&term).join("\n").contains("Press Enter to close."));
    insta::assert_snapshot!(term.backend());
}

#[test]
fn a_long_summary_scrolls_and_always_says_how_to_close() {
    let mut a = app(32);
    a.summary = Some(crate::ui::plain::summary(&checkpoint(32), &|t| {
        format!("/srv/bh/builds/{t}.20261122-015603")
    }));
    let text = rows(&screen(&mut a, 80, 24)).join("\n");
    assert!(text.contains("Press Enter to close."), "{text}");
    assert!(text.contains("↑/↓ scroll"), "{text}");
    let before = text;
    for _ in 0..5 {
        a.key(key(KeyCode::Down));
    }
    let after = rows(&screen(&mut a, 80, 24)).join("\n");
    assert_ne!(before, after, "Down scrolls the summary");
    assert!(after.contains("Press Enter to close."), "{after}");
    assert!(!a.closing);
    a.key(key(KeyCode::Enter));
    assert!(a.closing);
}

#[test]
fn quit_asks_detach_or_stop_and_other_keys_cancel() {
    let mut a = app(1);
    assert_eq!(a.key(key(KeyCode::Char('q'))), None);
    assert_eq!(a.modal, Modal::Leave);
    assert_eq!(a.key(key(KeyCode::Char('n'))), None);
    assert_eq!(a.modal, Modal::None);
    a.key(key(KeyCode::Char('q')));
    assert_eq!(a.key(key(KeyCode::Char('s'))), Some(Effect::Quit));
    a.key(key(KeyCode::Char('q')));
    assert_eq!(a.key(key(KeyCode::Char('d'))), Some(Effect::Detach));
    assert_eq!(a.modal, Modal::None);
}

#[test]
fn the_leave_dialog_offers_detach_and_stop() {
    let mut a = app(2);
    a.key(key(KeyCode::Char('q')));
    let term = screen(&mut a, 100, 30);
    let text = format!("{:?}", term.backend());
    assert!(text.contains("[d]etach  [s]top"), "{text}");
    assert!(text.contains("build-helper attach"), "{text}");
}

#[test]
fn scrollback_keeps_ten_thousand_lines_per_worker() {
    let mut a = app(1);
    let t = a.panes[0].target.clone();
    for i in 0..12_000 {
        a.output(&t, format!("line {i}\r\n").as_bytes());
    }
    a.key(key(KeyCode::Home));
    let rows = usize::from(a.panes[0].term.screen().size().0);
    assert_eq!(a.panes[0].scroll, super::app::SCROLLBACK - rows);
    // The oldest line kept is at the top: the last 10,000 of 12,000.
    let top = a.panes[0].screen().contents();
    assert!(top.starts_with("line 2000\n"), "{top}");
    // New output does not move a scrolled-back view.
    a.output(&t, b"more\r\n");
    a.refresh_views();
    assert!(a.panes[0].screen().contents().starts_with("line 2001\n"));
    a.key(key(KeyCode::End));
    assert_eq!(a.panes[0].scroll, 0);
    assert!(a.panes[0].screen().contents().contains("more"));
}

#[test]
fn scrolled_back_view_shows_older_lines_with_their_colours() {
    let mut a = app(1);
    let t = a.panes[0].target.clone();
    for i in 0..100 {
        a.output(&t, format!("\x1b[31mred {i}\x1b[0m\r\n").as_bytes());
    }
    a.key(key(KeyCode::PageUp));
    let term = screen(&mut a, 80, 24);
    insta::assert_snapshot!(term.backend());
    let buf = term.backend().buffer();
    assert_eq!(
        buf[(0, 4)].fg,
        Color::Indexed(1),
        "red stays red in the scrollback"
    );
}

#[test]
fn typing_without_a_worker_terminal_stays_in_the_tui() {
    let mut a = app(1);
    a.key(key(KeyCode::Char('i')));
    assert!(!a.typing, "no pty attached: nothing to type into");
}

#[test]
fn a_target_between_two_steps_keeps_running_and_leaves_the_focus() {
    let mut a = app(3);
    let mut cp = checkpoint(3);
    // board2's running step just finished; its next one has not started yet.
    let s = &mut cp.targets[1].steps[1];
    s.state = DONE;
    a.checkpoint(&cp);
    assert_eq!(a.focus, 0);
    let (state, step, _) = a.progress(&cp.targets[1].target);
    assert_eq!(
        (state, step.as_str()),
        (
            crate::engine::TargetState::Running,
            "3/5 target-maintenance"
        )
    );
}

#[test]
fn ctrl_c_asks_to_quit_like_q() {
    let mut a = app(1);
    a.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert_eq!(a.modal, Modal::Leave);
}

#[test]
fn the_umount_question_takes_y_n_or_enter_for_its_default() {
    let mut a = app(1);
    let ask = |a: &mut App| {
        a.modal = Modal::Question(super::app::Question {
            text: "Unmount now? [Y/n]".into(),
            default: true,
        })
    };
    ask(&mut a);
    assert_eq!(a.key(key(KeyCode::Char('x'))), None, "other keys wait");
    assert_eq!(a.key(key(KeyCode::Char('n'))), Some(Effect::Answer(false)));
    assert_eq!(a.modal, Modal::None);
    ask(&mut a);
    assert_eq!(a.key(key(KeyCode::Enter)), Some(Effect::Answer(true)));
}

#[test]
fn enter_on_the_summary_closes_even_before_the_screen_asks() {
    let mut a = app(1);
    a.summary = Some("target result".into());
    assert_eq!(a.key(key(KeyCode::Enter)), None);
    assert!(a.closing);
    assert!(!a.zoom, "Enter on the summary is not zoom");
}

#[test]
fn header_says_distcc_is_on_when_the_run_has_helpers() {
    let mut a = app(1);
    let first_line = |a: &mut App| {
        let term = screen(a, 120, 24);
        let buf = term.backend().buffer().clone();
        (0..120u16)
            .map(|x| buf[(x, 0)].symbol().to_string())
            .collect::<String>()
    };
    assert!(!first_line(&mut a).contains("distcc"));
    let mut cp = checkpoint(1);
    cp.distcc_hosts = Some("helper1/8 helper2/8,lzo".into());
    a.checkpoint(&cp);
    assert!(
        first_line(&mut a).contains("distcc on"),
        "{}",
        first_line(&mut a)
    );
}

/// The facts the supervisor reports for a running step (see `engine::watch`).
fn shown(step: &str, done: u32, total: u32, pkg: &str, eta_ms: u64) -> crate::engine::watch::Shown {
    crate::engine::watch::Shown {
        step: step.into(),
        progress: Some(crate::progress::Progress {
            phase: crate::progress::Phase::Build,
            done,
            total,
            current: Some(pkg.into()),
        }),
        eta_ms: Some(eta_ms),
        at_us: T0 + 15 * 1_000_000,
    }
}

#[test]
fn package_counters_and_etas_show_in_titles_and_header() {
    let mut app = app(3);
    let cp = checkpoint(3);
    let b2 = cp.targets[1].target.clone();
    app.set_progress(
        &b2,
        &shown(
            "target-world",
            37,
            212,
            "dev-libs/openssl-3.0.13",
            3_785_000,
        ),
        Some(3_785_000),
    );
    // A report for a step that no longer runs is not shown.
    let b1 = cp.targets[0].target.clone();
    app.set_progress(
        &b1,
        &shown("kernel", 1, 2, "sys-kernel/x-1", 9_000),
        Some(3_785_000),
    );
    // 60 s after the estimate (made at 15 s, drawn at 75 s): the ETAs count down.
    let term = screen(&mut app, 80, 24);
    insta::assert_snapshot!(term.backend());
    let text = format!("{:?}", term.backend());
    // At 80x24 the half-width pane keeps the step (issue 13) and the ETA; the counter
    // needs a wider pane.
    assert!(
        text.contains("board2 run 2/5 target-world ETA 1h02m"),
        "{text}"
    );
    assert!(text.contains("ETA 1h02m"), "{text}");
    assert!(!text.contains("x-1"), "{text}");
    let term = screen(&mut app, 160, 48);
    insta::assert_snapshot!("package_counters_and_etas_160x48", term.backend());
    let text = format!("{:?}", term.backend());
    assert!(
        text.contains("board2 run 2/5 target-world 37/212 dev-libs/openssl"),
        "{text}"
    );
}

#[test]
fn an_alert_rings_the_bell_and_sets_the_title_once() {
    use crate::ui::Frontend;
    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let mut tui = super::headless(sink.clone(), 80, 24).unwrap();
    tui.alert("build-helper: x86_64-unknown-linux-musl.a: target-world failed");
    std::thread::sleep(std::time::Duration::from_millis(300));
    tui.close();
    let out = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
    let seq = "\x07\x1b]0;build-helper: x86_64-unknown-linux-musl.a: target-world failed\x07";
    assert_eq!(out.matches(seq).count(), 1, "{out:?}");
}

/// board2's failed step, with the checkpoint saying its rescue shell waits (as drawn by a
/// client that attaches later: no pty of its own for the pane).
fn rescue_waiting_board2(a: &mut App, n: usize) -> Target {
    let mut cp = checkpoint(n);
    let failed = cp.targets[1].target.clone();
    let s = &mut cp.targets[1].steps[1];
    s.state = StepState::Failed {
        exit_code: Some(1),
        rescue: Some(T0 + 60 * 1_000_000),
    };
    a.checkpoint(&cp);
    failed
}

#[test]
fn a_waiting_rescue_shell_shows_in_the_title_and_the_list() {
    let mut a = app(3);
    rescue_waiting_board2(&mut a, 3);
    assert_eq!(a.focus, 1, "the waiting target's pane gets the focus");
    let term = screen(&mut a, 120, 30);
    let text = rows(&term).join("\n");
    assert!(
        text.contains("failed 2/5 target-world: rescue shell waiting"),
        "{text}"
    );
    assert!(
        text.contains("✗ step target-world failed (exit 1)"),
        "{text}"
    );
    insta::assert_snapshot!(term.backend());

    // Seven targets on 80x24 become a list: the waiting one is marked there too.
    let mut a = app(7);
    rescue_waiting_board2(&mut a, 7);
    let term = screen(&mut a, 80, 24);
    let text = rows(&term).join("\n");
    assert!(text.lines().any(|l| l.contains("board2 RESC")), "{text}");
}

#[test]
fn the_header_shows_the_job_pool_and_why_it_holds_jobs_back() {
    let mut a = app(3);
    a.pool = Some(crate::pool::PoolView {
        total: 4,
        in_use: 3,
        held: None,
    });
    let first = rows(&screen(&mut a, 200, 60))[0].clone();
    assert!(first.contains("jobs 3/4"), "{first}");
    a.pool = Some(crate::pool::PoolView {
        total: 4,
        in_use: 0,
        held: Some("low memory: 1.0 GiB available, 2.0 GiB needed".into()),
    });
    let first = rows(&screen(&mut a, 200, 60))[0].clone();
    assert!(
        first.contains("jobs 0/4 (held: low memory: 1.0 GiB available, 2.0 GiB needed)"),
        "{first}"
    );
    // Narrow: the counts stay, the pool goes first.
    let first = rows(&screen(&mut a, 80, 24))[0].clone();
    assert!(first.contains("steps"), "{first}");
}

#[test]
fn a_panes_title_shows_the_cpu_time_its_steps_used_when_there_is_room() {
    let mut a = app(1);
    let mut cp = a.cp.clone().unwrap();
    cp.targets[0].steps[0].cost = Some(crate::pool::StepCost {
        cpu_us: 90_000_000,
        peak_rss_bytes: 300 << 20,
        source: crate::pool::CostSource::Rusage,
    });
    a.checkpoint(&cp);
    let wide = rows(&screen(&mut a, 200, 60)).join("\n");
    assert!(wide.contains("CPU 1m · 1m15s"), "{wide}");
    let narrow = rows(&screen(&mut a, 40, 24))[3..].join("\n");
    assert!(!narrow.contains("CPU"), "{narrow}");
}
