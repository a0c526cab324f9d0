//! A fuzz campaign of every parser that takes outside input (issue 23, item 10): starter
//! TOML, the files of a configuration directory (make.conf, repos.conf, package.*, worlds,
//! tree), import-starter's shell reader, both directions of the attach protocol, the worker
//! socket protocol, Portage's output and emerge.log as read for progress, and the stage3
//! DIGESTS and index files.
//!
//! Stable Rust, no fuzzing engine: each parser gets, from a seeded random source
//! ([`harness::Rng`]), random bytes and structure-aware mutations of real samples
//! ([`harness::mutate`]); a panic is caught (`catch_unwind`) and a case that does not end
//! within a time bound is a hang. The normal test suite runs a short campaign (300 cases a
//! parser); `scripts/fuzz.sh [CASES]` runs a long one (100,000 by default) and prints the
//! table. Settings, from the environment: `BH_FUZZ_CASES` (cases per parser),
//! `BH_FUZZ_SEED` (the seed, a number), `BH_FUZZ_ONLY` (comma-separated parser names),
//! `BH_FUZZ_CASE_SECS` (the per-case bound, seconds, default 10).
//!
//! Not here: the regression tests of what the campaign found; each sits with the parser it
//! concerns.

mod harness;
mod targets;

use std::time::Duration;

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_parser_of_outside_input_survives_the_fuzz_campaign() {
    let cases = setting("BH_FUZZ_CASES", 300usize);
    let seed = setting("BH_FUZZ_SEED", 0x6275_696c_6468_6c70u64);
    let bound = Duration::from_secs(setting("BH_FUZZ_CASE_SECS", 10u64));
    let only = std::env::var("BH_FUZZ_ONLY").unwrap_or_default();
    let only: Vec<&str> = only.split(',').filter(|s| !s.is_empty()).collect();
    // A line of its own: the test harness's `test ... ` has no line end yet.
    println!();
    println!(
        "fuzz: {:<16} {:>9} {:>9} {:>7} {:>6}",
        "parser", "cases", "seconds", "panics", "hangs"
    );
    let mut failed = Vec::new();
    for parser in targets::all() {
        if !only.is_empty() && !only.contains(&parser.name) {
            continue;
        }
        let samples = (parser.samples)();
        assert!(!samples.is_empty(), "{}: no samples found", parser.name);
        let stats = harness::run(parser.name, parser.make, &samples, cases, seed, bound);
        println!(
            "fuzz: {:<16} {:>9} {:>9.2} {:>7} {:>6}",
            parser.name, stats.cases, stats.secs, stats.panics, stats.hangs
        );
        for f in &stats.findings {
            println!("fuzz: {}: {f}", parser.name);
        }
        if stats.panics + stats.hangs > 0 {
            failed.push(format!(
                "{}: {} panic(s), {} hang(s): {:?}",
                parser.name, stats.panics, stats.hangs, stats.findings
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "the fuzz campaign found:\n{}",
        failed.join("\n")
    );
}

#[test]
fn the_harness_counts_a_panicking_case_and_a_hanging_case() {
    fn panics() -> harness::Parse {
        Box::new(|input| {
            if input.len() < usize::MAX {
                panic!("boom");
            }
        })
    }
    fn hangs() -> harness::Parse {
        Box::new(|_| std::thread::sleep(Duration::from_secs(2)))
    }
    let samples = vec![b"a = 1\n".to_vec()];
    let stats = harness::run(
        "self-panic",
        panics,
        &samples,
        5,
        1,
        Duration::from_secs(10),
    );
    assert_eq!((stats.cases, stats.panics, stats.hangs), (5, 5, 0));
    assert!(
        stats.findings[0].contains("panic `boom`"),
        "{:?}",
        stats.findings
    );
    let stats = harness::run(
        "self-hang",
        hangs,
        &samples,
        2,
        1,
        Duration::from_millis(50),
    );
    assert_eq!((stats.cases, stats.panics, stats.hangs), (2, 0, 2));
    assert!(
        stats.findings[0].contains("no end within"),
        "{:?}",
        stats.findings
    );
}

#[test]
fn the_same_seed_gives_the_same_cases() {
    let samples = vec![b"MAKEOPTS=\"-j4\"\nPORTAGE_TMPDIR=/var/tmp\n".to_vec()];
    let make = |seed| {
        let mut rng = harness::Rng::new(seed);
        (0..50)
            .map(|_| harness::case(&mut rng, &samples))
            .collect::<Vec<_>>()
    };
    assert_eq!(make(7), make(7));
    assert_ne!(make(7), make(8));
}
