//! The campaign's engine: a seeded random source, the mutations of samples, and a runner
//! that feeds one parser case by case on a thread of its own, catching panics
//! (`std::panic::catch_unwind`) and hangs (no answer within a per-case time bound).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Once;
use std::time::{Duration, Instant};

/// Largest input a case gets (bytes): long enough for quadratic behaviour to show as a
/// hang, short enough for 100,000 cases in a minute per parser.
pub const MAX_INPUT: usize = 64 << 10;

/// A seeded random source (SplitMix64, Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", 2014): the same seed gives the same cases, so a
/// finding can be run again.
pub struct Rng(u64);

impl Rng {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Pieces that make parsers take their rarer branches: quoting, expansions, comments,
/// separators, numbers at and past their limits, path tricks, control and multi-byte
/// characters, JSON and TOML structure.
const TOKENS: &[&str] = &[
    "\n",
    "\r\n",
    "\r",
    "\0",
    "\t",
    " ",
    "#",
    "=",
    "\"",
    "'",
    "\\",
    "`",
    "$",
    "${",
    "}",
    "$(",
    ")",
    ":-",
    ";",
    "&",
    "|",
    "*",
    "/",
    "..",
    "../",
    "./",
    "//",
    "-",
    "--",
    "::",
    ":",
    ",",
    ".",
    "@",
    "~",
    "[",
    "]",
    "{",
    "}",
    "[[",
    "]]",
    "\"\"\"",
    "'''",
    "0",
    "-1",
    "1e999",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "NaN",
    "true",
    "null",
    "é",
    "\u{feff}",
    "\u{202e}",
    "\u{fffd}",
    "😀",
    "\x1b[",
    "\x1b[1;32m",
    "\x1b]0;",
    "\x07",
    "export ",
    "if ",
    "fi",
    "case ",
    "esac",
    "build-helper.sh",
    ">>> ",
    "*** ",
    "Emerging (",
    " of ",
    "::gentoo",
    "Jobs: ",
    "-----BEGIN PGP SIGNED MESSAGE-----",
    "-----BEGIN PGP SIGNATURE-----",
    "-----END PGP SIGNATURE-----",
    "Hash: SHA512",
    "# BLAKE2B HASH",
    "# SHA512 HASH",
    "- ",
    ".tar.xz",
    "stage3-",
    "{\"msg\":",
    "\"target\":",
    "\"bytes\":",
    "==",
    "=\"\"",
    "[repos]",
    "[options]",
    "[[target]]",
    "location",
    "PORTAGE_TMPDIR=",
    "INSTALL_MASK=",
    "sys-kernel/gentoo-kernel",
    ">=",
    "<=",
    "!",
    "!!",
    "::",
    "=cat/pkg-1*",
];

/// Random bytes, often printable: `0..512` of them.
pub fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(512);
    let printable = !rng.one_in(3);
    (0..len)
        .map(|_| {
            if printable && !rng.one_in(20) {
                b' ' + rng.below(95) as u8
            } else {
                rng.next() as u8
            }
        })
        .collect()
}

/// `sample` changed by 1 to 8 structure-aware mutations: whole lines deleted, repeated,
/// swapped or taken from another sample, a token inserted or a line replaced by one, bytes
/// flipped, the text cut off or a piece repeated many times.
pub fn mutate(rng: &mut Rng, sample: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = sample
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    for _ in 0..1 + rng.below(8) {
        let n = lines.len();
        match rng.below(12) {
            0 if n > 0 => {
                lines.remove(rng.below(n));
            }
            1 if n > 0 => {
                let l = lines[rng.below(n)].clone();
                let at = rng.below(n + 1);
                lines.insert(at, l);
            }
            2 if n > 1 => {
                let (a, b) = (rng.below(n), rng.below(n));
                lines.swap(a, b);
            }
            3 if !others.is_empty() => {
                let other = rng.pick(others);
                let their: Vec<&[u8]> = other.split_inclusive(|&b| b == b'\n').collect();
                if !their.is_empty() {
                    let l = rng.pick(&their).to_vec();
                    let at = rng.below(n + 1);
                    lines.insert(at, l);
                }
            }
            4..=6 if n > 0 => {
                // A token into a line, where a word starts or anywhere.
                let i = rng.below(n);
                let line = &mut lines[i];
                let at = if rng.one_in(2) {
                    let starts: Vec<usize> = (0..line.len())
                        .filter(|&k| k == 0 || matches!(line[k - 1], b' ' | b'=' | b'"' | b'/'))
                        .collect();
                    if starts.is_empty() {
                        0
                    } else {
                        *rng.pick(&starts)
                    }
                } else {
                    rng.below(line.len() + 1)
                };
                let token = rng.pick(TOKENS).as_bytes();
                line.splice(at..at, token.iter().copied());
            }
            7 if n > 0 => {
                // A line's value replaced by a token or random bytes.
                let i = rng.below(n);
                let line = &mut lines[i];
                let cut = line
                    .iter()
                    .position(|&b| matches!(b, b'=' | b' ' | b':'))
                    .map_or(0, |p| p + 1);
                line.truncate(cut);
                if rng.one_in(2) {
                    line.extend_from_slice(rng.pick(TOKENS).as_bytes());
                } else {
                    line.extend(random_bytes(rng).into_iter().take(40));
                }
                line.push(b'\n');
            }
            8 if n > 0 => {
                let i = rng.below(n);
                let line = &mut lines[i];
                if !line.is_empty() {
                    let k = rng.below(line.len());
                    line[k] ^= 1 << rng.below(8);
                }
            }
            9 if n > 0 => {
                // Cut off: inside a line, or inside a multi-byte character.
                let i = rng.below(n);
                lines.truncate(i + 1);
                let keep = rng.below(lines[i].len() + 1);
                lines[i].truncate(keep);
            }
            10 if n > 0 => {
                // A piece repeated many times (long lines, deep nesting, many entries).
                let i = rng.below(n);
                let line = &lines[i];
                let (a, b) = (rng.below(line.len() + 1), rng.below(line.len() + 1));
                let piece = line[a.min(b)..a.max(b)].to_vec();
                let piece = if piece.is_empty() {
                    rng.pick(TOKENS).as_bytes().to_vec()
                } else {
                    piece
                };
                let times = 1 + rng.below(2000);
                let mut long = piece.repeat(times);
                long.truncate(MAX_INPUT / 2);
                let at = rng.below(lines[i].len() + 1);
                lines[i].splice(at..at, long);
            }
            _ => {
                let at = rng.below(n + 1);
                let mut l = random_bytes(rng);
                l.truncate(80);
                l.push(b'\n');
                lines.insert(at, l);
            }
        }
    }
    let mut out = lines.concat();
    out.truncate(MAX_INPUT);
    out
}

/// One case for a parser: random bytes (one in five) or a mutated sample.
pub fn case(rng: &mut Rng, samples: &[Vec<u8>]) -> Vec<u8> {
    if samples.is_empty() || rng.one_in(5) {
        random_bytes(rng)
    } else {
        let s = rng.pick(samples).clone();
        if rng.one_in(10) {
            s
        } else {
            mutate(rng, &s, samples)
        }
    }
}

/// What a parser's run found.
#[derive(Debug, Default)]
pub struct Stats {
    /// Cases run.
    pub cases: usize,
    /// Wall time, seconds.
    pub secs: f64,
    /// Cases that panicked.
    pub panics: usize,
    /// Cases that did not end within the time bound.
    pub hangs: usize,
    /// The first few findings: what happened and the input (lossy UTF-8, cut at 400 bytes).
    pub findings: Vec<String>,
}

/// A parser under test, called once per case with the case's bytes.
pub type Parse = Box<dyn FnMut(&[u8])>;

/// Makes a [`Parse`] on the parser's own thread (so it may keep a temporary directory or a
/// runtime).
pub type Make = fn() -> Parse;

/// Panics on the campaign's threads (named `fuzz-*`) are counted, not printed; others go to
/// the hook that was there before (the test harness's).
fn quiet_panics_on_fuzz_threads() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let fuzz = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("fuzz-"));
            if !fuzz {
                previous(info);
            }
        }));
    });
}

fn describe(input: &[u8]) -> String {
    let shown = &input[..input.len().min(400)];
    format!(
        "{} bytes: {:?}{}",
        input.len(),
        String::from_utf8_lossy(shown),
        if input.len() > 400 { " ..." } else { "" }
    )
}

type Answer = Result<(), String>;

/// A parser's thread and its two channels.
struct Worker {
    tx: mpsc::Sender<Vec<u8>>,
    rx: mpsc::Receiver<Answer>,
    thread: std::thread::JoinHandle<()>,
}

/// A parser's thread: takes inputs, answers for each whether it panicked.
fn spawn_worker(name: &str, make: Make) -> Worker {
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>();
    let (out_tx, out_rx) = mpsc::channel::<Answer>();
    let thread = std::thread::Builder::new()
        .name(format!("fuzz-{name}"))
        .spawn(move || {
            let mut parse = make();
            while let Ok(input) = in_rx.recv() {
                let result = catch_unwind(AssertUnwindSafe(|| parse(&input))).map_err(|p| {
                    p.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into())
                });
                if out_tx.send(result).is_err() {
                    return;
                }
            }
        })
        .unwrap_or_else(|e| panic!("cannot start the fuzz thread of {name}: {e}"));
    Worker {
        tx: in_tx,
        rx: out_rx,
        thread,
    }
}

/// Feeds `cases` inputs made from `samples` (seeded with `seed`) to the parser `make`
/// makes; a case taking longer than `bound` is a hang (its thread is left behind and a new
/// one takes over).
pub fn run(
    name: &str,
    make: Make,
    samples: &[Vec<u8>],
    cases: usize,
    seed: u64,
    bound: Duration,
) -> Stats {
    quiet_panics_on_fuzz_threads();
    let mut rng = Rng::new(seed);
    let mut stats = Stats::default();
    let mut worker = spawn_worker(name, make);
    let started = Instant::now();
    for _ in 0..cases {
        let input = case(&mut rng, samples);
        stats.cases += 1;
        if worker.tx.send(input.clone()).is_err() {
            worker = spawn_worker(name, make);
            let _ = worker.tx.send(input.clone());
        }
        match worker.rx.recv_timeout(bound) {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                stats.panics += 1;
                if stats.findings.len() < 5 {
                    stats
                        .findings
                        .push(format!("panic `{message}` on {}", describe(&input)));
                }
            }
            Err(_) => {
                stats.hangs += 1;
                if stats.findings.len() < 5 {
                    stats
                        .findings
                        .push(format!("no end within {bound:?} on {}", describe(&input)));
                }
                // The hung thread is left behind (with what it holds); a new one goes on.
                worker = spawn_worker(name, make);
            }
        }
    }
    // The thread drops its parser (a temporary directory) before the campaign goes on.
    drop(worker.tx);
    let _ = worker.thread.join();
    stats.secs = started.elapsed().as_secs_f64();
    stats
}
