//! ETA accuracy on a replayed emerge.log (not a test): `cargo run --example
//! eta_replay [EMERGE_LOG]`.
//!
//! With a path, replays that log (e.g. a build machine's `/var/log/emerge.log`, or the real
//! one of `tests/fixtures/progress/emlop-emerge.10000.log.xz`; xz-compressed or plain). Without,
//! replays a log it writes itself in Portage's exact `emerge.log` format
//! (`lib/_emerge/emergelog.py`): 12 `@world` sessions of a seeded pseudo-random build
//! history: 300 packages whose typical merge times are log-normal (median 60 s, sigma 1.3:
//! most take under a minute, a few take hours, as gcc, llvm or rust do), each merge varying
//! by a log-normal factor (sigma 0.15), each session merging a different 40-160 of them.
//! Prints the mean relative error of the remaining-time estimate over all predictions and
//! at 25/50/75 % of each session, and of the "last duration" fallback alone.

use build_helper::progress::replay::{log_text, replay};

/// xorshift64*: a small seeded generator, so the log is the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn synthetic_log() -> String {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let base: Vec<f64> = (0..300)
        .map(|_| (60f64.ln() + 1.3 * rng.normal()).exp().max(2.0))
        .collect();
    let mut log = String::new();
    let mut t: u64 = 1_700_000_000;
    for _ in 0..12 {
        let n = 40 + (rng.next() * 120.0) as usize;
        let mut pkgs: Vec<usize> = (0..base.len()).collect();
        for i in (1..pkgs.len()).rev() {
            pkgs.swap(i, (rng.next() * (i + 1) as f64) as usize);
        }
        pkgs.truncate(n);
        log.push_str(&format!("{t}: Started emerge on: replay\n"));
        log.push_str(&format!(
            "{t}:  *** emerge --update --deep --newuse @world\n"
        ));
        for (k, &p) in pkgs.iter().enumerate() {
            let cpv = format!("cat-{}/pkg{p}-1.{k}", p % 7);
            log.push_str(&format!("{t}:  >>> emerge ({} of {n}) {cpv} to /\n", k + 1));
            t += (base[p] * (0.15 * rng.normal()).exp()).round() as u64;
            log.push_str(&format!(
                "{t}:  ::: completed emerge ({} of {n}) {cpv} to /\n",
                k + 1
            ));
        }
        log.push_str(&format!("{t}:  *** exiting successfully.\n"));
        log.push_str(&format!("{t}:  *** terminating.\n"));
        t += 86_400;
    }
    log
}

fn main() {
    let (source, log) = match std::env::args().nth(1) {
        Some(path) => match std::fs::read(&path).and_then(|b| log_text(&b)) {
            Ok(text) => (path, text),
            Err(e) => {
                eprintln!("eta_replay: cannot read {path}: {e}");
                std::process::exit(1);
            }
        },
        None => ("synthetic (seeded)".to_string(), synthetic_log()),
    };
    let st = replay(&log, 10);
    println!("emerge.log: {source}");
    println!(
        "sessions replayed: {}, predictions: {}",
        st.sessions, st.predictions
    );
    println!("ETA mean relative error: {:.1} %", st.mean * 100.0);
    println!(
        "  at 25 % / 50 % / 75 % of a session: {:.1} % / {:.1} % / {:.1} %",
        st.at_quarters[0] * 100.0,
        st.at_quarters[1] * 100.0,
        st.at_quarters[2] * 100.0
    );
    println!(
        "fallback (last duration - elapsed) mean relative error: {:.1} %",
        st.fallback_mean * 100.0
    );
}
