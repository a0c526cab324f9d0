//! How long `attach` takes to show a full screen (not a timed test: run it and read the
//! report; `scripts/bench-attach.sh` runs it):
//!
//! ```text
//! cargo bench --bench attach                  # 3 and 16 targets
//! BH_BENCH_TARGETS="3 16 64" cargo bench --bench attach
//! ```
//!
//! A supervisor's hub ([`build_helper::attach::hub`]) holds N targets whose workers have
//! written L lines each (coloured build output with carriage-return progress lines; L = 500,
//! early in a run, and 10,000, the most a pane keeps). Measured, per attach: from the
//! client's connect to the socket (its hello) until the first frame is drawn with every
//! target's pane filled: the snapshot read and decoded, every pane's screen and scrollback
//! loaded into the TUI's state (the client's own code, [`build_helper::attach::client::apply`]),
//! the panes fitted to a 200x60 terminal and the frame rendered by the TUI's view into a
//! crossterm backend writing to a sink. Not included: starting the `build-helper attach`
//! process and switching the terminal to raw mode (a few milliseconds, the same for any N).
//! Each case is attached 5 times; the median and the slowest are printed.

use std::time::{Duration, Instant};

use build_helper::attach::{client, hub, proto};
use build_helper::config::Target;
use build_helper::ui::tui::{self, app::App, view};
use build_helper::ui::Frontend;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

const ATTACHES: usize = 5;
const WIDTH: u16 = 200;
const HEIGHT: u16 = 60;

fn output(lines: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for i in 0..lines {
        match i % 4 {
            0 => b.extend_from_slice(
                format!(
                    "\x1b[32m>>>\x1b[0m Emerging ({} of {lines}) \x1b[32mdev-libs/pkg-{i}\x1b[0m::gentoo\r\n",
                    i + 1
                )
                .as_bytes(),
            ),
            1 => b.extend_from_slice(b"progress 10%\rprogress 60%\rprogress 100%\r\n"),
            2 => b.extend_from_slice(
                format!("x86_64-unknown-linux-musl-gcc -O2 -pipe -c src/file{i}.c -o file{i}.o\r\n")
                    .as_bytes(),
            ),
            _ => b.extend_from_slice(b" * \x1b[1;33mQA Notice\x1b[0m: nothing to worry about\r\n"),
        }
    }
    b
}

/// One attach: connect, read the snapshot, draw the first frame with every pane filled.
fn attach_once(dir: &std::path::Path, n: usize) -> (Duration, usize) {
    let t0 = Instant::now();
    let (stream, mut reader) = client::connect(dir, None).expect("connect");
    let _stream = stream;
    let asked = std::sync::atomic::AtomicBool::new(false);
    let sink = |_: &Target| -> tui::app::Sink { std::sync::Arc::new(NoKeys) };
    let mut app = App::new();
    let mut screens = 0;
    while screens < n {
        let msg = proto::read::<proto::ServerMsg>(&mut reader)
            .expect("read")
            .expect("a message");
        if matches!(msg, proto::ServerMsg::Screen { .. }) {
            screens += 1;
        }
        client::apply(&mut app, msg, &sink, &asked);
    }
    let area = Rect::new(0, 0, WIDTH, HEIGHT);
    let mut term = Terminal::with_options(
        CrosstermBackend::new(std::io::sink()),
        TerminalOptions {
            viewport: Viewport::Fixed(area),
        },
    )
    .expect("terminal");
    tui::fit(&mut app, area);
    term.draw(|f| view::render(f, &app)).expect("draw");
    let took = t0.elapsed();
    let filled = app
        .panes
        .iter()
        .filter(|p| !p.screen().contents().trim().is_empty())
        .count();
    assert_eq!(filled, n, "every pane shows its worker's screen");
    (took, n)
}

/// A pane sink that drops keys (nothing is typed while measuring).
struct NoKeys;

impl tui::app::KeySink for NoKeys {
    fn write(&self, _bytes: &[u8]) {}
    fn resize(&self, _cols: u16, _rows: u16) {}
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this too, without it:
    // then a smoke run (3 targets, short scrollback) checks that the path works, quickly.
    let benching = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = std::env::var("BH_BENCH_TARGETS")
        .unwrap_or_else(|_| if benching { "3 16" } else { "3" }.into())
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    println!(
        "attach: connect -> first {WIDTH}x{HEIGHT} frame with every pane filled ({ATTACHES} attaches each)"
    );
    println!("targets  lines/target  snapshot MiB   median ms   slowest ms");
    for &n in &sizes {
        let scrollbacks: &[usize] = if benching { &[500, 10_000] } else { &[500] };
        for &lines in scrollbacks {
            let dir = tempfile::tempdir().expect("tempdir");
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            let uid = nix::unistd::geteuid().as_raw();
            let (mut hub, handle) =
                hub::start_for(dir.path(), tx, uid, hub::CLIENT_QUEUE).expect("hub");
            let bytes = output(lines);
            for i in 0..n {
                let t = Target::parse(&format!("x86_64-unknown-linux-musl.bench{i}")).unwrap();
                for chunk in bytes.chunks(64 << 10) {
                    hub.output(&t, chunk);
                }
            }
            // The snapshot's size, as a client receives it.
            let snapshot_bytes = {
                let (_s, mut r) = client::connect(dir.path(), None).expect("connect");
                let mut total = 0usize;
                let mut screens = 0;
                while screens < n {
                    let mut line = String::new();
                    total += std::io::BufRead::read_line(&mut r, &mut line).expect("read");
                    if line.starts_with("{\"msg\":\"screen\"") {
                        screens += 1;
                    }
                }
                total
            };
            let mut times: Vec<Duration> = (0..ATTACHES)
                .map(|_| attach_once(dir.path(), n).0)
                .collect();
            times.sort();
            println!(
                "{n:>7}  {lines:>12}  {:>12.1}  {:>10.1}  {:>11.1}",
                snapshot_bytes as f64 / (1 << 20) as f64,
                times[ATTACHES / 2].as_secs_f64() * 1000.0,
                times[ATTACHES - 1].as_secs_f64() * 1000.0
            );
            handle.end(0);
        }
    }
}
