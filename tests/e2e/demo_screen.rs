//! The demo's real TUI screen on a second run: package counter and ETAs, as a user sees them.
//!
//! The demo starter reduced to its primary target (`demo-a`, so that the screen is one pane
//! whose layout does not depend on how far other targets got) runs twice in one tree: the
//! first run (plain) leaves a history with step durations and per-package merge times; the
//! second runs `--ui tui` in a private tmux server and is read with capture-pane while its
//! `target-world` builds. The captured screen is compared, after [`normalise`], with the
//! golden `snapshots/e2e__demo_screen__second_demo_run_tui.snap`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::tui::{run_env, Tmux};

/// The target the reduced demo builds.
const TARGET: &str = "x86_64-unknown-linux-musl.demo-a";

/// A captured TUI screen with what changes from run to run replaced, line by line:
/// - the pane's title (the line naming [`TARGET`]) keeps its focus marker, pane number,
///   target, state and step; its counters `k/n` (step, package) become `<k>/<n>`, the package
///   after the package counter `<pkg>`, its elapsed time and ETA `<t>`;
/// - the header (the lines above the title): the run id (`<name>-YYYYMMDD-HHMMSS`) becomes
///   `<run>`, durations `<t>`, the step counter `<k>/<n>` (target counts stay: one target);
/// - the pane's body (the step's own output, which depends on timing) becomes one line
///   `┆ output`; the last line (the key bar) is kept;
/// - blank lines are dropped and runs of spaces (title padding, which depends on the lengths
///   replaced) become one.
pub fn normalise(screen: &str) -> String {
    let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    let Some(title) = lines.iter().position(|l| l.contains(TARGET)) else {
        return format!("(no title naming {TARGET})");
    };
    let mut out: Vec<String> = lines[..title]
        .iter()
        .map(|l| normalise_words(l, false))
        .collect();
    out.push(normalise_words(lines[title], true));
    if lines.len() > title + 2 {
        out.push("┆ output".to_string());
    }
    if lines.len() > title + 1 {
        out.push(normalise_words(lines[lines.len() - 1], false));
    }
    out.join("\n")
}

/// One line's words, normalised (see [`normalise`]); `title`: a pane title.
fn normalise_words(line: &str, title: bool) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    // The package follows a title's second counter (the first is the step counter).
    let mut counters = 0;
    let mut after_package_counter = false;
    for w in words {
        let word = if after_package_counter && w != "ETA" && !is_duration(w) {
            "<pkg>".to_string()
        } else if is_counter(w) {
            "<k>/<n>".to_string()
        } else if is_duration(w) {
            "<t>".to_string()
        } else if is_run_id(w) {
            "<run>".to_string()
        } else {
            w.to_string()
        };
        if title && is_counter(w) {
            counters += 1;
        }
        after_package_counter = title && is_counter(w) && counters == 2;
        out.push(word);
    }
    out.join(" ")
}

/// `12/34`.
fn is_counter(w: &str) -> bool {
    w.split_once('/').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && (a.to_string() + b).bytes().all(|c| c.is_ascii_digit())
    })
}

/// `45s`, `12m`, `3m07s`, `1h02m`: the TUI's short durations.
fn is_duration(w: &str) -> bool {
    let mut rest = w;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let Some(unit) = rest[digits..].chars().next() else {
            return false;
        };
        if digits == 0 || !"hms".contains(unit) {
            return false;
        }
        rest = &rest[digits + 1..];
        parts += 1;
    }
    parts > 0
}

/// A run id: `demo-a-20261130-074512` (a name, a dash, `YYYYMMDD-HHMMSS`).
fn is_run_id(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() > 16 && {
        let tail = &b[b.len() - 16..];
        tail[0] == b'-'
            && tail[9] == b'-'
            && tail[1..9].iter().chain(&tail[10..]).all(u8::is_ascii_digit)
    }
}

#[test]
fn normalise_keeps_titles_and_replaces_what_changes() {
    let screen = "build-helper run demo-a-20261130-074512  ETA 1m02s  steps 7/18  targets: 0 done, 1 running\n\
                  base: mounts done\n\
                  \n\
                  ▶1 x86_64-unknown-linux-musl.demo-a running 9/18 target-world 3/8 app-misc/foo-1.0    12s ETA 9s\n\
                  >>> Emerging (3 of 8) app-misc/foo-1.0::gentoo\n\
                  + E app-misc/foo\n\
                  Tab focus  z zoom  q quit\n";
    assert_eq!(
        normalise(screen),
        "build-helper run <run> ETA <t> steps <k>/<n> targets: 0 done, 1 running\n\
         base: mounts done\n\
         ▶1 x86_64-unknown-linux-musl.demo-a running <k>/<n> target-world <k>/<n> <pkg> <t> ETA <t>\n\
         ┆ output\n\
         Tab focus z zoom q quit"
    );
}

/// The demo starter with its primary target only, next to it in the tree.
fn primary_only_starter(tree: &Tree) -> PathBuf {
    let demo = std::fs::read_to_string(tree.starter()).unwrap();
    let mut kept = String::new();
    let mut skip = false;
    for (i, block) in demo.split("[[target]]").enumerate() {
        // Block 1 is the primary target; the others are dropped up to the next table.
        if i == 0 || i == 1 {
            if i == 1 {
                kept.push_str("[[target]]");
            }
            kept.push_str(block);
        } else {
            skip = true;
            if let Some(rest) = block.find("\n[").map(|at| &block[at..]) {
                kept.push_str(rest);
                skip = false;
            }
        }
    }
    assert!(!skip, "the demo starter's shape changed:\n{demo}");
    assert_eq!(kept.matches("[[target]]").count(), 1, "{kept}");
    let path = tree.path().join("starters/demo-a.toml");
    std::fs::write(&path, kept).unwrap();
    path
}

#[test]
fn a_second_demo_run_shows_package_counter_and_etas_in_the_tui() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let starter = primary_only_starter(&tree);
    // The first run's history: step durations, and per-package times in the environment's
    // emerge.log (the stand-in emerge logs each merge).
    let first = tree.bh(
        &["run", starter.to_str().unwrap(), "--ui", "plain"],
        &[("BH_DEMO_PKG_DELAY", "0.2")],
    );
    assert_eq!(first.status.code(), Some(0), "the first run failed");
    // Runs are named by the second they start.
    std::thread::sleep(Duration::from_millis(1100));

    let line = format!(
        "env -u TMUX {BIN} run {} --ui tui; echo BH-EXIT=$?; sleep 600",
        starter.display()
    );
    let mut env = run_env(tree.path(), "");
    for (k, v) in env.iter_mut() {
        if *k == "BH_DEMO_PKG_DELAY" {
            *v = "0.6".into();
        }
    }
    let tmux = Tmux::start("eta", &line, &env);
    let pane = "eta";

    // The title with the package counter and the target's ETA, the header with the run's.
    let deadline = Instant::now() + Duration::from_secs(150);
    let screen = loop {
        let s = tmux.screen(pane);
        let title = s.lines().find(|l| l.contains(TARGET)).unwrap_or_default();
        let words: Vec<&str> = title.split_whitespace().collect();
        let counting = words
            .windows(3)
            .any(|w| w[0] == "target-world" && is_counter(w[1]) && w[2].contains('/'));
        let eta = words.windows(2).any(|w| w[0] == "ETA" && is_duration(w[1]));
        let header_eta = s.lines().next().is_some_and(|h| h.contains(" ETA "));
        if counting && eta && header_eta {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no target-world title with a package counter and an ETA:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("the captured screen:\n{screen}");
    insta::assert_snapshot!("second_demo_run_tui", normalise(&screen));

    tmux.wait_for(pane, "Run finished", 150);
    tmux.keys(pane, &["Enter"]);
    let s = tmux.wait_for(pane, "BH-EXIT=", 60);
    assert!(s.contains("BH-EXIT=0"), "{s}");
    drop(tmux);
    assert_eq!(tree.checkpoint()["finished"], true);
    assert!(mounts_anywhere(tree.path()).is_empty());
}
