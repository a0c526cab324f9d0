//! Fetch + verify of one stage3, timed, for scripts/bench-fetch.sh (not a test).
//!
//! Usage: bench_fetch MIRROR DISTFILES KEY_FILE [FLAVOR]
//! Prints `fetch+verify <seconds> s <bytes> bytes` on success; exits 1 with the error
//! otherwise. KEY_FILE `-` turns the signature checks off (digests only).

use std::path::PathBuf;
use std::time::Instant;

use build_helper::stage3::{obtain_with_verifier, OpenPgpVerifier, Request, SignatureVerifier};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: bench_fetch MIRROR DISTFILES KEY_FILE [FLAVOR]");
        std::process::exit(2);
    }
    let req = Request {
        mirror: args[0].clone(),
        arch: "amd64".into(),
        flavor: args
            .get(3)
            .cloned()
            .unwrap_or_else(|| "amd64-musl-hardened".into()),
        distfiles: PathBuf::from(&args[1]),
        progress_bar: false,
    };
    let verifier = match args[2].as_str() {
        "-" => None,
        key => match OpenPgpVerifier::from_file(key.as_ref()) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        },
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            std::process::exit(1);
        }
    };
    let mut progress = |line: String| {
        if !line.contains(" MiB") {
            eprintln!("{line}");
        }
    };
    let start = Instant::now();
    let v = verifier.as_ref().map(|v| v as &dyn SignatureVerifier);
    match rt.block_on(obtain_with_verifier(&req, v, &mut progress)) {
        Ok(got) => println!(
            "fetch+verify {:.3} s {} bytes",
            start.elapsed().as_secs_f64(),
            got.size
        ),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
