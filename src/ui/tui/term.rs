//! Feeding a worker's output to a terminal emulator without letting the emulator's bugs end
//! the run.
//!
//! vt100 0.15 has known panics on some sequences of output and resizes (an `unwrap` on a
//! cell outside its grid in `Screen::text`, doy/vt100-rust#37 and related; seen here under
//! the `tui_throughput` bench). The supervisor keeps a vt100 screen per worker for the
//! screens that attach (`crate::attach`), and a panic there would end a run of hours, so
//! every feed goes through [`process_guarded`]: a panicking emulator is replaced by a blank
//! one of the same size, and the worker's output goes on from there (its log keeps
//! everything).

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Feeds `bytes` to `term`; `true` when it went through, `false` when the emulator panicked
/// and was replaced by a blank screen of the same size.
pub fn process_guarded(term: &mut vt100::Parser, bytes: &[u8]) -> bool {
    guarded(term, |t| t.process(bytes))
}

/// Runs `f` on `term`; on a panic, replaces `term` with a blank emulator of its size.
fn guarded(term: &mut vt100::Parser, f: impl FnOnce(&mut vt100::Parser)) -> bool {
    let (rows, cols) = term.screen().size();
    if catch_unwind(AssertUnwindSafe(|| f(term))).is_ok() {
        return true;
    }
    *term = vt100::Parser::new(rows, cols, 0);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_emulator_is_replaced_by_a_blank_one_of_its_size() {
        let mut term = vt100::Parser::new(5, 20, 0);
        assert!(process_guarded(&mut term, b"hello"));
        assert!(term.screen().contents().contains("hello"));
        let ok = guarded(&mut term, |t| {
            t.process(b" world");
            panic!("stand-in for a vt100 panic");
        });
        assert!(!ok);
        assert_eq!(term.screen().size(), (5, 20));
        assert_eq!(term.screen().contents().trim(), "");
        assert!(process_guarded(&mut term, b"again"));
        assert!(term.screen().contents().contains("again"));
    }
}
