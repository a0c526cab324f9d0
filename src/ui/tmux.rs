//! The tmux front end (`--ui tmux` or `TMUX_MODE=on`, inside tmux only): every worker runs in
//! its own tmux window named `<tuple>.<name>`, created with tmux_interface; tmux owns its
//! terminal, so the rescue shell and the resume / retry / abort prompt appear right in that
//! window. The supervisor's own window shows the plain run messages and the summary.
//!
//! - A worker started by tmux is outside the supervisor's private mount namespace: it is
//!   started with `--join-ns <supervisor pid>` and joins it first (setns).
//! - `remain-on-exit` keeps a finished window readable; its exit status is read from
//!   `pane_dead_status` (polled), not from per-pane hooks, which would need the supervisor's
//!   socket from inside tmux's server.
//! - `pipe-pane` appends the window's terminal to `logs/<target>.tty.log`: the worker
//!   already writes its step output to `logs/<target>.log` in every mode, so the window's
//!   transcript (with the rescue shell session) goes beside it rather than doubling it.

use std::io;
use std::path::Path;
use std::time::Duration;

use tmux_interface::{DisplayMessage, NewWindow, PipePane, SetOption, Tmux, TmuxCommand};
use tokio::sync::oneshot;

use crate::config::Target;
use crate::ui::plain::Plain;
use crate::ui::{Frontend, Started};

/// How often a window's `pane_dead` is read.
const POLL: Duration = Duration::from_millis(200);

/// One tmux window per worker; supervisor messages as plain lines.
#[derive(Debug, Default)]
pub struct TmuxUi {
    plain: Plain,
}

fn run(cmd: TmuxCommand<'_>) -> io::Result<String> {
    let out = Tmux::with_command(cmd)
        .output()
        .map_err(|e| io::Error::other(format!("tmux: {e}")))?;
    if !out.success() {
        let err = String::from_utf8_lossy(&out.clone().stderr())
            .trim()
            .to_string();
        return Err(io::Error::other(format!("tmux: {err}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout()).trim().to_string())
}

/// ` -u NAME` per unset variable, then ` 'NAME=value'` per set one, for `env(1)`: each name
/// as `get` reads it. The unsets come first: `env` reads options only before its first
/// `NAME=value` operand (POSIX `env`, GNU coreutils), so a later `-u` would be run as the
/// command (exit 127).
fn env_args(names: &[String], get: &dyn Fn(&str) -> Option<String>) -> String {
    let values: Vec<(&String, Option<String>)> = names.iter().map(|k| (k, get(k))).collect();
    let unset = values
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| format!(" -u {}", quote(k)));
    let set = values.iter().filter_map(|(k, v)| {
        v.as_ref()
            .map(|v| format!(" {}", quote(&format!("{k}={v}"))))
    });
    unset.chain(set).collect()
}

/// Quotes `s` for the shell tmux runs a window's command with.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Parses `display-message -p '#{pane_dead} #{pane_dead_status}'`: `Some(code)` once dead.
pub fn dead_status(line: &str) -> Option<i32> {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("1"), Some(code)) => code.parse().ok(),
        (Some("1"), None) => Some(-1),
        _ => None,
    }
}

impl TmuxUi {
    /// The tmux front end of this tmux session.
    pub fn new() -> TmuxUi {
        TmuxUi::default()
    }
}

impl Frontend for TmuxUi {
    fn say(&mut self, text: &str) {
        self.plain.say(text);
    }

    fn output(&mut self, target: &Target, bytes: &[u8]) {
        self.plain.output(target, bytes);
    }

    fn interactive(&self) -> bool {
        true
    }

    fn start_worker(&mut self, run_dir: &Path, target: &Target) -> Option<io::Result<Started>> {
        Some(start_window(run_dir, target))
    }

    fn summary(&mut self, table: &str) {
        Frontend::summary(&mut self.plain, table);
    }

    fn ask(&mut self, question: &str) -> Option<bool> {
        self.plain.ask(question)
    }

    fn wait_for_user(&mut self, text: &str) {
        self.plain.wait_for_user(text);
    }
}

fn start_window(run_dir: &Path, target: &Target) -> io::Result<Started> {
    let exe = std::env::current_exe()?;
    let name = target.to_string();
    // The window's shell has the tmux server's environment, not ours: hand over the
    // starter's pass_env variables as they are here (set, or unset), as a pty worker
    // inherits them.
    let pass_env = crate::commands::load_plan(run_dir)
        .map(|p| p.pass_env)
        .unwrap_or_default();
    let command = format!(
        "exec env{} {} worker --run {} --target {} --interactive --join-ns {}",
        env_args(&pass_env, &|k| std::env::var(k).ok()),
        quote(&exe.to_string_lossy()),
        quote(&run_dir.to_string_lossy()),
        quote(&name),
        std::process::id()
    );
    let out = run(NewWindow::new()
        .detached()
        .print()
        .format("#{pane_id} #{pane_pid}")
        .window_name(name.as_str())
        .shell_command(command.as_str())
        .build())?;
    let mut parts = out.split_whitespace();
    let (Some(pane), Some(pid)) = (parts.next(), parts.next().and_then(|p| p.parse().ok())) else {
        return Err(io::Error::other(format!("tmux new-window printed {out:?}")));
    };
    let pane = pane.to_string();
    run(SetOption::new()
        .window()
        .target_pane(pane.as_str())
        .option("remain-on-exit")
        .value("on")
        .build())?;
    let tty_log = run_dir.join("logs").join(format!("{name}.tty.log"));
    if let Some(dir) = tty_log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    run(PipePane::new()
        .open()
        .target_pane(pane.as_str())
        .shell_command(format!("cat >> {}", quote(&tty_log.to_string_lossy())))
        .build())?;
    let (tx, exited) = oneshot::channel();
    std::thread::spawn(move || loop {
        std::thread::sleep(POLL);
        let status = run(DisplayMessage::new()
            .print()
            .target_pane(pane.as_str())
            .message("#{pane_dead} #{pane_dead_status}")
            .build());
        let code = match status {
            Ok(line) => dead_status(&line),
            // The window was closed by hand: the worker got SIGHUP.
            Err(_) => Some(128 + libc::SIGHUP),
        };
        if let Some(code) = code {
            let _ = tx.send(code);
            return;
        }
    });
    Ok(Started { pid, exited })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pane_dead_status_is_read_only_once_the_pane_is_dead() {
        assert_eq!(dead_status("0 "), None);
        assert_eq!(dead_status("1 0"), Some(0));
        assert_eq!(dead_status("1 1"), Some(1));
    }

    #[test]
    fn pass_env_variables_reach_the_window_set_or_unset() {
        let names = vec!["BH_DEMO_FAIL".to_string(), "GONE".to_string()];
        let get = |k: &str| (k == "BH_DEMO_FAIL").then(|| "x.a:step 'q'".to_string());
        // The unset ones first: env(1) takes no option after a NAME=value.
        assert_eq!(
            env_args(&names, &get),
            r" -u 'GONE' 'BH_DEMO_FAIL=x.a:step '\''q'\'''"
        );
        let line = format!("env{} true", env_args(&names, &get));
        let st = std::process::Command::new("sh")
            .args(["-c", &line])
            .status()
            .unwrap();
        assert!(st.success(), "{line}");
    }

    #[test]
    fn window_commands_quote_paths() {
        assert_eq!(quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
