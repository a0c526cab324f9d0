//! Skipping a test that needs root or a tool that only scripts/install-deps.sh installs.
//!
//! When an ordinary user runs `cargo test`, such a test writes one line on stderr (the test,
//! what it needs, how to run it) and returns, so it passes. The line goes straight to file
//! descriptor 2, not through libtest's output capture, so it shows with a passing test too.
//! Under `BH_TEST_STRICT=1` (scripts/test.sh and CI, which run as root with every tool
//! installed) the same test fails instead: nothing skips unseen there. The test binaries
//! include this file with `#[path]`; each uses the parts it needs.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

/// The variable that turns every skip into a failure when set to anything but empty or `0`.
pub const STRICT_VAR: &str = "BH_TEST_STRICT";

/// Whether skips fail (`BH_TEST_STRICT` set to anything but empty or `0`).
pub fn strict() -> bool {
    std::env::var_os(STRICT_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The running test's name: libtest names each test's thread after it.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "a test".to_string(),
    }
}

/// True when `ok`; otherwise the running test is skipped: false, after one line on stderr
/// that says which test, what it `needs` and how to run it. Panics instead under
/// `BH_TEST_STRICT=1`, naming the same.
pub fn skip_unless(ok: bool, needs: &str) -> bool {
    if ok {
        return true;
    }
    let line = format!(
        "SKIPPED {}: needs {needs}; run every test as root with scripts/test.sh",
        test_name()
    );
    assert!(
        !strict(),
        "{line} ({STRICT_VAR}=1 turns a skip into a failure)"
    );
    // A closed stderr loses the line, never the run.
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
    false
}

/// Whether the test runs as root; skips it otherwise (see [`skip_unless`]).
pub fn require_root() -> bool {
    skip_unless(
        nix::unistd::geteuid().is_root(),
        "root (it mounts, chroots or sets owners)",
    )
}

/// Whether `tool` is an executable on `PATH`; skips the test otherwise (see [`skip_unless`]).
pub fn require_tool(tool: &str) -> bool {
    skip_unless(
        on_path(tool),
        &format!("`{tool}` (scripts/install-deps.sh installs it)"),
    )
}

/// Whether an executable file named `tool` is in one of `PATH`'s directories.
fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        let file = Path::new(&dir).join(tool);
        std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}
