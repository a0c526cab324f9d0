//! The rescue flow of an interactive worker (DESIGN.md, Processes): after a failed step it
//! says what failed, opens an interactive shell chrooted in the target's root with the step's
//! environment on the worker's own terminal (the TUI pane or the tmux window), and then asks
//! resume / retry / abort; any other answer reopens the shell.
//!
//! The shell runs in its own process group, made the terminal's foreground group, so Ctrl-C
//! reaches the shell and not the worker; the worker takes the terminal back afterwards.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::config::Target;
use crate::sys::{ChrootCommand, Group, Sys};

/// What the user chose after the rescue shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Run the failed step again, then the rest.
    Resume,
    /// Run the target again from its first step (the supervisor resets its checkpoint).
    Retry,
    /// Stop the target; it stays failed (a later `--resume` continues it).
    Abort,
}

/// Parses an answer to the prompt; `None` reopens the shell.
pub fn parse(answer: &str) -> Option<Decision> {
    match answer.trim().to_ascii_lowercase().as_str() {
        "resume" | "r" => Some(Decision::Resume),
        "retry" | "t" => Some(Decision::Retry),
        "abort" | "a" => Some(Decision::Abort),
        _ => None,
    }
}

/// The shell to run inside `root`: bash when the root has it, else sh.
fn shell(root: &Path) -> &'static str {
    if root.join("bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    }
}

/// Runs the rescue shell chrooted in `root` with `env`, started through `sys` as the
/// terminal's foreground process group, and waits for it.
fn open_shell(
    sys: &dyn Sys,
    root: &Path,
    env: &BTreeMap<String, String>,
    target: &Target,
    step: &str,
) {
    let mut env = env.clone();
    env.insert("BUILD_HELPER_STEP".into(), step.into());
    env.insert("PS1".into(), format!("(rescue {target}) \\w # "));
    let started = sys.spawn_chrooted(ChrootCommand {
        root: root.to_path_buf(),
        program: shell(root).into(),
        args: vec!["-i".into()],
        env,
        group: Group::Foreground,
        output: None,
        fd3: None,
        cgroup: None,
    });
    match started {
        Ok(mut child) => {
            // A worker told to stop (quit, supervisor gone) takes its shell with it: the
            // shell would keep the target's mounts busy.
            super::STEP_PGID.store(child.id() as i32, Ordering::SeqCst);
            let _ = child.wait();
            super::STEP_PGID.store(0, Ordering::SeqCst);
        }
        Err(e) => say(format_args!(
            "build-helper: cannot open the rescue shell: {e}\n"
        )),
    }
    // Take the terminal back (SIGTTOU is ignored: the worker is a background group now).
    // SAFETY: plain system calls on our own terminal.
    unsafe {
        libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        libc::tcsetpgrp(0, libc::getpgrp());
    }
}

/// Writes to the worker's terminal; a terminal that went away is no reason to panic (the
/// prompt then reads end of input and aborts).
fn say(text: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(text).and_then(|()| out.flush());
}

/// The rescue flow for the failed `step` of `target`: shell, then the prompt, until the user
/// decides. End of input (the terminal closed) counts as abort.
pub fn run(
    sys: &dyn Sys,
    root: &Path,
    env: &BTreeMap<String, String>,
    target: &Target,
    step: &str,
    exit_code: i32,
    log: &Path,
) -> Decision {
    say(format_args!(
        "\n\x1b[1;31mbuild-helper: step {step} of {target} failed (exit {exit_code})\x1b[0m\n\
         log: {}\n\
         A rescue shell opens in the target's chroot; fix the cause, then leave it with `exit`.\n",
        log.display()
    ));
    loop {
        open_shell(sys, root, env, target, step);
        say(format_args!(
            "\n{target}: step {step} failed. resume (re-run the step) / retry (run the \
             target from its first step) / abort? "
        ));
        let mut answer = String::new();
        match std::io::stdin().lock().read_line(&mut answer) {
            Ok(0) | Err(_) => return Decision::Abort,
            Ok(_) => {}
        }
        if let Some(d) = parse(&answer) {
            return d;
        }
        say(format_args!(
            "build-helper: `{}` is none of resume, retry, abort: reopening the shell\n",
            answer.trim()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_accepts_the_three_words_and_nothing_else() {
        assert_eq!(parse("resume\n"), Some(Decision::Resume));
        assert_eq!(parse(" Retry "), Some(Decision::Retry));
        assert_eq!(parse("abort"), Some(Decision::Abort));
        assert_eq!(parse("exit"), None);
        assert_eq!(parse(""), None);
    }
}
