//! `build-helper boot --run CMD`, the text side (pure): the lines typed on the booted
//! console and the reading of what comes back. The way Buildroot's runtime tests drive a
//! booted image (support/testing/infra/emulator.py: wait for the shell, type the command,
//! read its output and `$?`), with a marker instead of a prompt: the command's output is
//! delimited by two marker lines the shell prints, and its status is printed on the second.
//!
//! The markers are printed by `printf '%s-%s\n' MARKER begin`, so the line the terminal echoes
//! while the command is typed holds `MARKER begin`, never `MARKER-begin`: only the shell's
//! output can hold the delimiters. The command runs in a subshell, so an `exit` in it ends
//! the subshell with its status, not the console's shell.
//!
//! Not for: starting QEMU or reading the console (see [`super::console`]).

use std::time::{SystemTime, UNIX_EPOCH};

/// The longest line of a command accepted by [`command_line`], bytes: busybox ash's line
/// editor keeps 1024 bytes by default (`CONFIG_FEATURE_EDITING_MAX_LEN`), and the typed
/// line also carries the markers.
pub const MAX_LINE: usize = 900;

/// Errors of a command that cannot be typed on the console.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RunError {
    /// An empty command.
    #[error("--run: the command is empty; give the shell command to run on the booted console")]
    Empty,
    /// A line too long for the console's line editor.
    #[error(
        "--run: line {line} of the command is {len} bytes; the console's line editor takes at \
         most {MAX_LINE}: split it into several lines or put it in a script in the image"
    )]
    LineTooLong {
        /// The line, from 1.
        line: usize,
        /// Its length, bytes.
        len: usize,
    },
    /// A control character the terminal would act on (Ctrl-C, Ctrl-D, escape, ...).
    #[error(
        "--run: the command holds the control character {0:#04x}, which the console's \
         terminal would act on; only tabs and newlines can be typed"
    )]
    Control(u8),
}

/// A marker unique to one boot: `BH` and 16 hex digits from the clock and the process id.
pub fn new_marker() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mixed =
        nanos.rotate_left(17).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(std::process::id());
    format!("BH{mixed:016x}")
}

/// The probe typed once a shell seems to wait: an empty line (busybox init's `askfirst`
/// waits for Enter) then a line whose output is `MARKER-ready` (see [`is_ready`]).
pub fn probe_line(marker: &str) -> String {
    format!("\nprintf '%s-%s\\n' {marker} ready\n")
}

/// The shell printed the probe's answer: a line that is `MARKER-ready`.
pub fn is_ready(console: &[u8], marker: &str) -> bool {
    let want = format!("{marker}-ready");
    text(console)
        .lines()
        .any(|l| l.trim_end_matches('\r').trim_start() == want)
}

/// The text typed to run `cmd`: the begin marker, `cmd` in a subshell, then the end marker
/// with the subshell's status.
///
/// Errors: [`RunError`] for an empty command, a line longer than [`MAX_LINE`] or a control
/// character other than tab and newline.
pub fn command_line(marker: &str, cmd: &str) -> Result<String, RunError> {
    if cmd.trim().is_empty() {
        return Err(RunError::Empty);
    }
    if let Some(c) = cmd
        .bytes()
        .find(|&b| b < 0x20 && b != b'\t' && b != b'\n' || b == 0x7f)
    {
        return Err(RunError::Control(c));
    }
    if let Some((i, l)) = cmd.lines().enumerate().find(|(_, l)| l.len() > MAX_LINE) {
        return Err(RunError::LineTooLong {
            line: i + 1,
            len: l.len(),
        });
    }
    Ok(format!(
        "printf '%s-%s\\n' {marker} begin; (\n{cmd}\n); printf '%s-%s %s\\n' {marker} end \"$?\"\n"
    ))
}

/// What a finished command left on the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Its output (standard output and error as the console shows them), lines ending in
    /// `\n` (the terminal's `\r\n` made `\n`).
    pub output: String,
    /// Its exit status (0-255).
    pub status: i32,
}

/// Reads the command's output and status from the console text that followed the typed
/// line; `None` while the end marker's line is not complete.
pub fn parse(console: &[u8], marker: &str) -> Option<Ran> {
    let all = text(console).replace("\r\n", "\n").replace('\r', "");
    let begin = format!("{marker}-begin\n");
    let start = all.find(&begin)? + begin.len();
    let rest = &all[start..];
    let end_mark = format!("{marker}-end ");
    let end = rest.find(&end_mark)?;
    let tail = &rest[end + end_mark.len()..];
    let line_end = tail.find('\n')?;
    let status: i32 = tail[..line_end].trim().parse().ok()?;
    let mut output = rest[..end].to_string();
    // Output without a final line end: the end marker followed it on the same line.
    if !output.is_empty() && !output.ends_with('\n') {
        output.push('\n');
    }
    Some(Ran { output, status })
}

/// The console's bytes as text (invalid UTF-8 replaced).
fn text(console: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(console)
}

/// The console's last line looks like a shell waiting for input: busybox init's `askfirst`
/// message, or a prompt ending in `# `, `$ ` or `> ` with nothing after it.
pub fn waits_for_input(console: &[u8]) -> bool {
    let all = text(console);
    let last = all.rsplit('\n').next().unwrap_or("");
    let last = last.trim_start_matches('\r');
    all.contains("Please press Enter to activate this console")
        && (last.is_empty() || last.ends_with(". "))
        || last.ends_with("# ")
        || last.ends_with("$ ")
}

/// The console's last line is a login prompt (`<host> login: `, as getty prints it): root is
/// logged in without a password, as Buildroot's runtime tests do.
pub fn asks_login(console: &[u8]) -> bool {
    let all = text(console);
    let last = all.rsplit('\n').next().unwrap_or("");
    last.trim_start_matches('\r').ends_with("login: ")
}

/// What is typed at a login prompt.
pub const LOGIN: &str = "root\n";

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "BH0123456789abcdef";

    /// The console of a shell that echoes the typed line (as a terminal in canonical mode
    /// does, with `\r\n` line ends), then runs it.
    fn console(typed: &str, output: &str) -> Vec<u8> {
        let mut c = String::from("~ # ");
        c.push_str(&typed.replace('\n', "\r\n> "));
        c.push_str("\r\n");
        c.push_str(&output.replace('\n', "\r\n"));
        c.into_bytes()
    }

    #[test]
    fn the_output_between_the_markers_and_the_status_are_read() {
        let typed = command_line(M, "readlink /proc/1/exe").unwrap();
        let c = console(&typed, &format!("{M}-begin\n/bin/busybox\n{M}-end 0\n~ # "));
        assert_eq!(
            parse(&c, M),
            Some(Ran {
                output: "/bin/busybox\n".into(),
                status: 0
            })
        );
    }

    #[test]
    fn a_failing_command_gives_its_status() {
        let typed = command_line(M, "grep -q nothing /etc/os-release").unwrap();
        let c = console(&typed, &format!("{M}-begin\n{M}-end 1\n"));
        assert_eq!(
            parse(&c, M),
            Some(Ran {
                output: String::new(),
                status: 1
            })
        );
        let c = console("exit 3", &format!("{M}-begin\nsh: oops\n{M}-end 3\n"));
        assert_eq!(parse(&c, M).map(|r| r.status), Some(3));
    }

    #[test]
    fn the_typed_line_echoed_by_the_terminal_is_not_taken_for_the_markers() {
        let typed = command_line(M, "echo hi").unwrap();
        // The typed text names the marker but never as a delimiter line.
        assert!(typed.contains(M));
        assert!(!typed.contains(&format!("{M}-begin")));
        assert!(!typed.contains(&format!("{M}-end")));
        assert!(!probe_line(M).contains(&format!("{M}-ready")));
        // Echoed and not yet run: nothing to read, and no readiness seen in the probe's echo.
        let echoed = console(&typed, "");
        assert_eq!(parse(&echoed, M), None);
        assert!(!is_ready(&console(&probe_line(M), ""), M));
        assert!(is_ready(
            &console(&probe_line(M), &format!("{M}-ready\n~ # ")),
            M
        ));
    }

    #[test]
    fn an_end_marker_line_not_yet_complete_is_waited_for() {
        let c = format!("{M}-begin\nx\n{M}-end 12");
        assert_eq!(parse(c.as_bytes(), M), None);
        let c = format!("{c}7\r\n");
        assert_eq!(parse(c.as_bytes(), M).map(|r| r.status), Some(127));
    }

    #[test]
    fn output_without_a_final_line_end_is_kept_whole() {
        let c = format!("{M}-begin\r\nno newline{M}-end 0\r\n");
        assert_eq!(parse(c.as_bytes(), M).unwrap().output, "no newline\n");
    }

    #[test]
    fn commands_the_console_cannot_take_are_refused_with_the_reason() {
        assert_eq!(command_line(M, "  \n"), Err(RunError::Empty));
        assert_eq!(command_line(M, "echo \x03"), Err(RunError::Control(3)));
        let long = format!("echo {}", "x".repeat(MAX_LINE));
        let e = command_line(M, &format!("true\n{long}")).unwrap_err();
        assert_eq!(
            e,
            RunError::LineTooLong {
                line: 2,
                len: MAX_LINE + 5
            }
        );
        assert!(e.to_string().contains("script"), "{e}");
        assert!(command_line(M, "a\tb\nc").is_ok());
    }

    #[test]
    fn a_waiting_shell_or_askfirst_is_recognised() {
        assert!(waits_for_input(
            b"init started\r\n\r\nPlease press Enter to activate this console. "
        ));
        assert!(waits_for_input(b"\r\n~ # "));
        assert!(waits_for_input(b"(none):/$ "));
        assert!(!waits_for_input(b"[    1.0] Run /init as init process\r\n"));
        assert!(!waits_for_input(b"loading 45%"));
    }

    #[test]
    fn a_login_prompt_is_recognised_only_as_the_last_line() {
        assert!(asks_login(b"\r\nWelcome\r\n\r\ngentoo login: "));
        assert!(!asks_login(b"gentoo login: root\r\nPassword: "));
        assert!(!waits_for_input(b"gentoo login: "));
    }

    #[test]
    fn markers_differ_between_boots() {
        let a = new_marker();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_marker();
        assert_ne!(a, b);
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("BH"));
    }
}
