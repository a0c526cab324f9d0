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
//! - The run directory records which tmux server, session and windows the run uses
//!   ([`Record`], `tmux.json`), so that [`attach_command`] can bring the session back to
//!   any terminal.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// The starter's `pass_env` names: each window's command sets them as they are here.
    pass_env: Vec<String>,
    /// What `tmux.json` says, once the first window is open.
    record: Option<Record>,
}

/// Which tmux server, session and windows a tmux-mode run uses: `work/<run>/tmux.json`
/// (written with [`crate::rundir::write_versioned`]: private, atomic, with `format`),
/// rewritten as each worker's window opens. Ids are tmux's own (`$N` session, `@N` window,
/// `%N` pane; tmux(1) FORMATS), which stay valid when a session or window is renamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The tmux server's socket: the first field of `$TMUX` (tmux(1) ENVIRONMENT).
    pub socket: PathBuf,
    /// The session's id, `$N`.
    pub session_id: String,
    /// The session's name when the run started.
    pub session_name: String,
    /// The window the supervisor itself runs in, `@N`.
    pub supervisor_window: String,
    /// One per worker, in the order they were started.
    pub windows: Vec<Window>,
}

/// A worker's tmux window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The target whose worker runs in it (the window's name).
    pub target: Target,
    /// The window's id, `@N`.
    pub window_id: String,
    /// Its pane's id, `%N`.
    pub pane_id: String,
}

/// Why [`attach_command`] has no command.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The run directory has no `tmux.json`: the run was not started with `--ui tmux`.
    #[error("{} does not exist: the run did not use tmux windows (`--ui tmux`)", .0.display())]
    NotTmux(PathBuf),
    /// The record cannot be read (malformed, newer format, I/O).
    #[error("{0}")]
    Unreadable(#[from] crate::rundir::RunDirError),
}

/// The command (program and arguments, no shell) that shows the tmux session of the run in
/// `run_dir` on the caller's terminal: `tmux -S <socket> attach-session -t <session id>`;
/// inside a client of the same tmux server (`$TMUX` names its socket) `switch-client`
/// instead; inside another tmux server the attach runs under `env -u TMUX` (tmux refuses
/// to nest otherwise). Does not check that the session still exists (tmux says so itself).
///
/// Errors: [`AttachError::NotTmux`] when the run did not use tmux, [`AttachError::Unreadable`].
pub fn attach_command(run_dir: &Path) -> Result<Vec<String>, AttachError> {
    let path = run_dir.join(crate::rundir::TMUX_RECORD);
    if !path.exists() {
        return Err(AttachError::NotTmux(path));
    }
    let record: Record = crate::rundir::read_versioned(&path, "tmux record")?;
    Ok(attach_argv(&record, std::env::var("TMUX").ok().as_deref()))
}

/// [`attach_command`] for `record`, with `tmux_env` the caller's `$TMUX` (if any).
pub fn attach_argv(record: &Record, tmux_env: Option<&str>) -> Vec<String> {
    let socket = record.socket.to_string_lossy().into_owned();
    let caller_socket = tmux_env
        .filter(|v| !v.is_empty())
        .and_then(|v| v.split(',').next());
    let mut argv: Vec<String> = Vec::new();
    let verb = match caller_socket {
        Some(s) if Path::new(s) == record.socket => "switch-client",
        Some(_) => {
            argv.extend(["env", "-u", "TMUX"].map(String::from));
            "attach-session"
        }
        None => "attach-session",
    };
    argv.extend([
        "tmux".to_string(),
        "-S".into(),
        socket,
        verb.into(),
        "-t".into(),
        record.session_id.clone(),
    ]);
    argv
}

/// The record's head for the tmux session this process runs in (`$TMUX`, `$TMUX_PANE`).
fn session_record() -> io::Result<Record> {
    let tmux = std::env::var("TMUX").unwrap_or_default();
    let socket = tmux.split(',').next().unwrap_or_default();
    if socket.is_empty() {
        return Err(io::Error::other("not inside tmux ($TMUX is not set)"));
    }
    let pane = std::env::var("TMUX_PANE").unwrap_or_default();
    let mut cmd = DisplayMessage::new()
        .print()
        .message("#{session_id} #{window_id} #{session_name}");
    if !pane.is_empty() {
        cmd = cmd.target_pane(pane.as_str());
    }
    let line = run(cmd.build())?;
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(session_id), Some(window), Some(name)) if session_id.starts_with('$') => Ok(Record {
            socket: PathBuf::from(socket),
            session_id: session_id.to_string(),
            session_name: name.to_string(),
            supervisor_window: window.to_string(),
            windows: Vec::new(),
        }),
        _ => Err(io::Error::other(format!(
            "tmux display-message printed {line:?}"
        ))),
    }
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
    /// The tmux front end of this tmux session, for a run whose starter passes the
    /// variables `pass_env` (the plan's) to its workers.
    pub fn new(pass_env: Vec<String>) -> TmuxUi {
        TmuxUi {
            pass_env,
            ..TmuxUi::default()
        }
    }

    /// Adds `window` to the run's `tmux.json` (looking the session up the first time).
    fn remember(&mut self, run_dir: &Path, window: Window) -> io::Result<()> {
        if self.record.is_none() {
            self.record = Some(session_record()?);
        }
        let Some(record) = self.record.as_mut() else {
            return Ok(());
        };
        record.windows.retain(|w| w.target != window.target);
        record.windows.push(window);
        crate::rundir::write_versioned(&run_dir.join(crate::rundir::TMUX_RECORD), record)
            .map_err(|e| io::Error::other(e.to_string()))
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
        let (started, window) = match start_window(run_dir, target, &self.pass_env) {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        if let Err(e) = self.remember(run_dir, window) {
            // The run goes on; only `attach` will not find the session.
            self.plain.say(&format!(
                "cannot record the tmux session in {}: {e}",
                run_dir.join(crate::rundir::TMUX_RECORD).display()
            ));
        }
        Some(Ok(started))
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

fn start_window(
    run_dir: &Path,
    target: &Target,
    pass_env: &[String],
) -> io::Result<(Started, Window)> {
    let name = target.to_string();
    let argv = crate::worker::command_line(run_dir, target, true, Some(std::process::id()))?;
    // The window's shell has the tmux server's environment, not ours: hand over the
    // starter's pass_env variables as they are here (set, or unset), as a pty worker
    // inherits them.
    let words: Vec<String> = argv.iter().map(|a| quote(&a.to_string_lossy())).collect();
    let command = format!(
        "exec env{} {}",
        env_args(pass_env, &|k| std::env::var(k).ok()),
        words.join(" ")
    );
    let out = run(NewWindow::new()
        .detached()
        .print()
        .format("#{pane_id} #{pane_pid} #{window_id}")
        .window_name(name.as_str())
        .shell_command(command.as_str())
        .build())?;
    let mut parts = out.split_whitespace();
    let (Some(pane), Some(pid), Some(window_id)) = (
        parts.next(),
        parts.next().and_then(|p| p.parse().ok()),
        parts.next(),
    ) else {
        return Err(io::Error::other(format!("tmux new-window printed {out:?}")));
    };
    let window = Window {
        target: target.clone(),
        window_id: window_id.to_string(),
        pane_id: pane.to_string(),
    };
    let pane = pane.to_string();
    run(SetOption::new()
        .window()
        .target_pane(pane.as_str())
        .option("remain-on-exit")
        .value("on")
        .build())?;
    let tty_log = crate::rundir::tty_log(run_dir, &name);
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
    Ok((Started { pid, exited }, window))
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

    fn record() -> Record {
        Record {
            socket: "/tmp/tmux-0/default".into(),
            session_id: "$3".into(),
            session_name: "build".into(),
            supervisor_window: "@1".into(),
            windows: vec![Window {
                target: Target::new("x86_64-unknown-linux-musl", "demo-a").unwrap(),
                window_id: "@2".into(),
                pane_id: "%2".into(),
            }],
        }
    }

    #[test]
    fn attach_attaches_outside_tmux_and_switches_inside_the_same_server() {
        let r = record();
        assert_eq!(
            attach_argv(&r, None).join(" "),
            "tmux -S /tmp/tmux-0/default attach-session -t $3"
        );
        assert_eq!(
            attach_argv(&r, Some("")).join(" "),
            "tmux -S /tmp/tmux-0/default attach-session -t $3"
        );
        assert_eq!(
            attach_argv(&r, Some("/tmp/tmux-0/default,1234,0")).join(" "),
            "tmux -S /tmp/tmux-0/default switch-client -t $3"
        );
        // Inside another server: tmux would refuse to nest without `env -u TMUX`.
        assert_eq!(
            attach_argv(&r, Some("/tmp/tmux-0/other,99,1")).join(" "),
            "env -u TMUX tmux -S /tmp/tmux-0/default attach-session -t $3"
        );
    }

    #[test]
    fn the_record_round_trips_through_the_run_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            attach_command(dir.path()),
            Err(AttachError::NotTmux(_))
        ));
        crate::rundir::write_versioned(&dir.path().join(crate::rundir::TMUX_RECORD), &record())
            .unwrap();
        let back: Record = crate::rundir::read_versioned(
            &dir.path().join(crate::rundir::TMUX_RECORD),
            "tmux record",
        )
        .unwrap();
        assert_eq!(back, record());
        let argv = attach_command(dir.path()).unwrap();
        assert!(
            argv.ends_with(&["-t".to_string(), "$3".to_string()]),
            "{argv:?}"
        );
        std::fs::write(dir.path().join(crate::rundir::TMUX_RECORD), "{").unwrap();
        assert!(matches!(
            attach_command(dir.path()),
            Err(AttachError::Unreadable(_))
        ));
    }

    #[test]
    fn window_commands_quote_paths() {
        assert_eq!(quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
