//! Throughput of the TUI under heavy output (not a timed test: run it and read the report):
//!
//! ```text
//! cargo bench --bench tui_throughput            # 3 workers x 100 MiB
//! BH_BENCH_MIB=20 cargo bench --bench tui_throughput
//! ```
//!
//! Each of 3 workers writes 100 MiB of coloured output (SGR colours, carriage-return
//! progress lines) as fast as it can, first into a file each (the baseline), then on a pty
//! of its own read by the supervisor's code path: `spawn::on_pty` -> channel -> tokio loop ->
//! the TUI front end (vt100 per pane, 10,000 lines of scrollback) drawn at up to 20 frames a
//! second into a 160x48 crossterm backend writing to /dev/null. It reports each worker's own
//! write time in both runs (output must not slow a worker down), the supervisor's
//! throughput and lag, its peak RSS (budget: 100 MB) and the time per frame.
//!
//! Progress parsing is on: the output carries Portage's `>>> Emerging (N of M) ...` lines,
//! the supervisor's loop feeds every chunk to a progress tracker per worker (in a run the
//! worker does this; here it costs the supervisor's loop, the harder case) and hands each
//! change to the TUI with an estimate, which shows it in the pane titles and header.
//! `BH_BENCH_PROGRESS=0` turns the parsing off, for comparison.
//!
//! A "worker" is this benchmark binary started again with `BH_BENCH_GEN` set.

use std::io::Write;
use std::time::{Duration, Instant};

use build_helper::config::Target;
use build_helper::engine::watch::Shown;
use build_helper::progress::Tracker;
use build_helper::supervisor::spawn;
use build_helper::sys::now_us;
use build_helper::ui::{tui, Frontend};

const WORKERS: usize = 3;
const RSS_BUDGET_MB: f64 = 100.0;

fn block() -> Vec<u8> {
    let mut b = Vec::with_capacity(70_000);
    let mut n = 0u32;
    while b.len() < 64 * 1024 {
        n += 1;
        let _ = write!(
            b,
            "\x1b[1;32m>>>\x1b[0m \x1b[33mCompiling\x1b[0m src/module_{n}.c \x1b[36m[{:3}%]\x1b[0m \
             -O2 -pipe -march=armv8-a -fstack-protector-strong\r\n",
            n % 101
        );
        if n.is_multiple_of(16) {
            let _ = write!(b, "\x1b[35mprogress\x1b[0m {}%\r", n % 100);
        }
        if n.is_multiple_of(64) {
            // Portage's progress line (lib/_emerge/MergeListItem.py), with its colours.
            let k = n / 64;
            let _ = write!(
                b,
                ">>> Emerging (\x1b[01;33m{k}\x1b[39;49;00m of \x1b[01;33m500\x1b[39;49;00m) \
                 \x1b[32;01mdev-libs/pkg{k}-1.0::gentoo\x1b[39;49;00m\r\n"
            );
        }
    }
    b
}

/// The worker side: writes `bytes` of coloured output to stdout, then its own time (seconds)
/// into the file `time_file`.
fn generate(bytes: u64, time_file: &str) {
    let block = block();
    let t0 = Instant::now();
    let mut out = std::io::stdout().lock();
    let mut written = 0u64;
    while written < bytes {
        if out.write_all(&block).is_err() {
            break;
        }
        written += block.len() as u64;
    }
    let _ = out.flush();
    let _ = std::fs::write(time_file, format!("{}", t0.elapsed().as_secs_f64()));
}

fn target(i: usize) -> Target {
    Target {
        tuple: "x86_64-unknown-linux-musl".into(),
        name: format!("bench{i}"),
    }
}

fn read_time(path: &std::path::Path) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// Peak resident set size of this process (VmHWM), MB. Not getrusage's ru_maxrss: that
/// keeps the peak of the program that exec'd this one (cargo's, ~77 MB).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn gen_command(bytes: u64, time_file: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("own path"));
    cmd.env("BH_BENCH_GEN", bytes.to_string())
        .env("BH_BENCH_TIME", time_file);
    cmd
}

fn main() {
    if let Ok(bytes) = std::env::var("BH_BENCH_GEN") {
        let time = std::env::var("BH_BENCH_TIME").unwrap_or_default();
        generate(bytes.parse().unwrap_or(0), &time);
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this too, without it:
    // then a 2 MiB smoke run checks that the path works, quickly and unoptimised.
    let benching = std::env::args().any(|a| a == "--bench");
    let mib: u64 = std::env::var("BH_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 100 } else { 2 });
    let bytes = mib * 1024 * 1024;
    let dir = tempfile::tempdir().expect("temporary directory");

    // Baseline: each worker writes into a file.
    let t0 = Instant::now();
    let children: Vec<_> = (0..WORKERS)
        .map(|i| {
            let out = std::fs::File::create(dir.path().join(format!("out{i}"))).expect("file");
            gen_command(bytes, &dir.path().join(format!("file{i}.time")))
                .stdout(out)
                .spawn()
                .expect("start a worker")
        })
        .collect();
    for mut c in children {
        let _ = c.wait();
    }
    let file_wall = t0.elapsed();
    let file_times: Vec<f64> = (0..WORKERS)
        .map(|i| read_time(&dir.path().join(format!("file{i}.time"))))
        .collect();
    for i in 0..WORKERS {
        let _ = std::fs::remove_file(dir.path().join(format!("out{i}")));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // The TUI: the supervisor's path from pty to screen.
    let devnull = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    let mut ui = tui::headless(devnull, 160, 48).expect("headless TUI");
    let mut progress_reports = 0u64;
    let (received, tui_wall, lag) = runtime.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let t0 = Instant::now();
        let mut children = Vec::new();
        for i in 0..WORKERS {
            let cmd = tokio::process::Command::from(gen_command(
                bytes,
                &dir.path().join(format!("tui{i}.time")),
            ));
            let (child, pty) = spawn::on_pty(cmd, &target(i), 80, 24, ui.backlog(), tx.clone())
                .expect("start on a pty");
            ui.attach(&target(i), pty);
            children.push(child);
        }
        drop(tx);
        let waiter = tokio::spawn(async move {
            for mut c in children {
                let _ = c.wait().await;
            }
            Instant::now()
        });
        let mut received = 0u64;
        let mut trackers: Vec<Tracker> = (0..WORKERS).map(|_| Tracker::new()).collect();
        let mut reports = 0u64;
        let parse = std::env::var("BH_BENCH_PROGRESS").map_or(true, |v| v != "0");
        while let Some(out) = rx.recv().await {
            received += out.bytes.len() as u64;
            ui.output(&out.target, &out.bytes);
            if !parse {
                continue;
            }
            let i = (0..WORKERS)
                .position(|i| target(i) == out.target)
                .unwrap_or(0);
            if let Some(p) = trackers[i].feed(&out.bytes) {
                reports += 1;
                let shown = Shown {
                    step: "target-world".into(),
                    eta_ms: Some(u64::from(p.total - p.done.min(p.total)) * 1000),
                    progress: Some(p),
                    at_us: now_us(),
                };
                ui.progress(&out.target, &shown, shown.eta_ms);
            }
        }
        progress_reports = reports;
        let done = Instant::now();
        let workers_done = waiter.await.unwrap_or(done);
        (
            received,
            t0.elapsed(),
            done.saturating_duration_since(workers_done),
        )
    });
    let tui_times: Vec<f64> = (0..WORKERS)
        .map(|i| read_time(&dir.path().join(format!("tui{i}.time"))))
        .collect();
    // Let a last frame be drawn, then stop drawing.
    std::thread::sleep(Duration::from_millis(100));
    let frames = ui.frame_stats();
    ui.close();
    // Peak RSS so far: the TUI run is the only one that kept data in this process.
    let rss_tui = peak_rss_mb();

    // A pty each, read by the supervisor's reader and thrown away: what a pty costs. (Run
    // after the TUI: its queue may grow while the CPUs are busy, which would blur the
    // TUI's peak RSS.)
    let pty_wall = runtime.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let t0 = Instant::now();
        for i in 0..WORKERS {
            let cmd = tokio::process::Command::from(gen_command(
                bytes,
                &dir.path().join(format!("pty{i}.time")),
            ));
            let (mut child, _pty) =
                spawn::on_pty(cmd, &target(i), 80, 24, None, tx.clone()).expect("start on a pty");
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        drop(tx);
        while rx.recv().await.is_some() {}
        t0.elapsed()
    });
    let pty_times: Vec<f64> = (0..WORKERS)
        .map(|i| read_time(&dir.path().join(format!("pty{i}.time"))))
        .collect();

    let total_mib = (bytes * WORKERS as u64) as f64 / 1048576.0;
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!("tui_throughput: {WORKERS} workers x {mib} MiB of coloured output");
    println!(
        "  into files : wall {:.2} s, each worker's write time {} s ({:.0} MiB/s per worker)",
        file_wall.as_secs_f64(),
        fmt(&file_times),
        mib as f64 / mean(&file_times)
    );
    println!(
        "  pty, no UI : wall {:.2} s, each worker's write time {} s ({:.0} MiB/s per worker)",
        pty_wall.as_secs_f64(),
        fmt(&pty_times),
        mib as f64 / mean(&pty_times)
    );
    println!(
        "  TUI (pty)  : wall {:.2} s, each worker's write time {} s ({:.0} MiB/s per worker)",
        tui_wall.as_secs_f64(),
        fmt(&tui_times),
        mib as f64 / mean(&tui_times)
    );
    println!(
        "  supervisor : {total_mib:.0} MiB in {:.2} s ({:.0} MiB/s); {:.1} MiB drawn into the \
         panes, the rest dropped while the screen was behind; done {:.2} s after the last worker",
        tui_wall.as_secs_f64(),
        total_mib / tui_wall.as_secs_f64(),
        received as f64 / 1048576.0,
        lag.as_secs_f64()
    );
    println!("  progress   : {progress_reports} progress changes parsed and shown (0: off)");
    println!(
        "  frames     : {} drawn at 160x48, mean {:.2} ms, max {:.2} ms",
        frames.frames,
        frames.total.as_secs_f64() * 1000.0 / frames.frames.max(1) as f64,
        frames.max.as_secs_f64() * 1000.0
    );
    println!(
        "  peak RSS   : {rss_tui:.1} MB with the TUI (budget {RSS_BUDGET_MB} MB): {}",
        if rss_tui < RSS_BUDGET_MB {
            "ok"
        } else {
            "OVER BUDGET"
        }
    );
    let ok = received > 0 && rss_tui < RSS_BUDGET_MB;
    if !benching {
        // Under cargo test this is a check: say so the way test runners do.
        println!("smoke: {} passed, {} failed", u8::from(ok), u8::from(!ok));
    }
    if !ok {
        std::process::exit(1);
    }
}
