//! The `build-helper` binary: parses the command line and dispatches it
//! (`build_helper::cli`); every command and all the work live in the library.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use build_helper::cli::{self, Cli};
use build_helper::sys::{LinuxSys, Sys};

/// Sets SIGPIPE's disposition. Rust ignores SIGPIPE, so a write to a closed pipe is an
/// error, and `println!` panics on it. Commands that only print (plan, check, status,
/// history, umount, `--help`) take the default back and end quietly when the reader goes
/// away, as `ls | head` does; the others keep ignoring it ([`Cli::prints_only`]).
fn sigpipe(default: bool) {
    use nix::sys::signal::{signal, SigHandler, Signal};
    let handler = if default {
        SigHandler::SigDfl
    } else {
        SigHandler::SigIgn
    };
    // SAFETY: no handler function is installed, only a disposition; nothing else changes
    // signal dispositions concurrently this early.
    let _ = unsafe { signal(Signal::SIGPIPE, handler) };
}

fn main() -> ExitCode {
    build_helper::attach::timing::mark_process_start();
    sigpipe(true);
    let cli = Cli::parse();
    sigpipe(cli.prints_only());
    // The one real system-call seam, handed down to every command.
    let sys: Arc<dyn Sys> = Arc::new(LinuxSys);
    cli::exit_code(cli::dispatch(cli, sys))
}
