//! The plain front end: every worker's output line-prefixed with its target, the
//! supervisor's own lines prefixed `[build-helper]`, and a summary table at the end.

use std::collections::HashMap;
use std::io::Write;

use crate::config::Target;
use crate::engine::{Checkpoint, StepState, TargetState};
use crate::ui::Frontend;

/// Splits terminal output into lines per target and prints them prefixed.
#[derive(Debug, Default)]
pub struct Plain {
    partial: HashMap<Target, Vec<u8>>,
    /// `--events json`: stdout carries the events, the lines go to stderr.
    events_json: bool,
}

fn print_line(to_stderr: bool, prefix: &str, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    // A carriage-return progress line shows its last state.
    let text = text.rsplit('\r').next().unwrap_or(text);
    if to_stderr {
        let _ = writeln!(std::io::stderr().lock(), "[{prefix}] {text}");
    } else {
        let _ = writeln!(std::io::stdout().lock(), "[{prefix}] {text}");
    }
}

impl Plain {
    /// The plain front end for `--events json`: one JSON event per line on stdout (see
    /// [`crate::engine::events::Event`]), the prefixed lines and the summary on stderr.
    pub fn events_json() -> Plain {
        Plain {
            partial: HashMap::new(),
            events_json: true,
        }
    }

    /// Feeds a chunk of a worker's terminal output.
    pub fn output(&mut self, target: &Target, bytes: &[u8]) {
        let buf = self.partial.entry(target.clone()).or_default();
        buf.extend_from_slice(bytes);
        let prefix = target.to_string();
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            print_line(self.events_json, &prefix, &line[..line.len() - 1]);
        }
    }

    /// Prints what is left of a worker's last line (it ended without a newline).
    pub fn flush(&mut self, target: &Target) {
        if let Some(buf) = self.partial.remove(target) {
            if !buf.is_empty() {
                print_line(self.events_json, &target.to_string(), &buf);
            }
        }
    }

    /// Text as it is (a table); write errors (a closed pipe) are ignored, never a panic.
    pub fn raw(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
    }

    /// A supervisor message.
    pub fn say(&self, text: &str) {
        print_line(self.events_json, "build-helper", text.as_bytes());
    }
}

impl Frontend for Plain {
    fn say(&mut self, text: &str) {
        Plain::say(self, text);
    }

    fn output(&mut self, target: &Target, bytes: &[u8]) {
        Plain::output(self, target, bytes);
    }

    fn flush(&mut self, target: &Target) {
        Plain::flush(self, target);
    }

    fn summary(&mut self, table: &str) {
        // Write errors (a closed pipe) are ignored: the run goes on, its log keeps all.
        if self.events_json {
            let _ = writeln!(std::io::stderr().lock(), "\n{table}");
        } else {
            let _ = writeln!(std::io::stdout().lock(), "\n{table}");
        }
    }

    fn event_sink(&mut self) -> Option<Box<dyn Write + Send>> {
        self.events_json
            .then(|| Box::new(std::io::stdout()) as Box<dyn Write + Send>)
    }

    fn ask(&mut self, question: &str) -> Option<bool> {
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return None;
        }
        Plain::say(self, question);
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).ok()?;
        let a = answer.trim();
        Some(!(a.eq_ignore_ascii_case("n") || a.eq_ignore_ascii_case("no")))
    }

    fn wait_for_user(&mut self, text: &str) {
        Plain::say(self, text);
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
    }
}

/// The summary table: per target, result, steps done, duration and artifacts path.
pub fn summary(cp: &Checkpoint, artifacts: &dyn Fn(&Target) -> String) -> String {
    let mut rows = vec![[
        "target".to_string(),
        "result".to_string(),
        "steps".to_string(),
        "time".to_string(),
        "artifacts / failed step".to_string(),
    ]];
    for t in &cp.targets {
        let done = t.steps.iter().filter(|s| s.state.is_done()).count();
        let ms: u64 = t.steps.iter().filter_map(|s| s.duration_ms).sum();
        let state = t.state();
        let detail = match state {
            TargetState::Done => artifacts(&t.target),
            _ => t
                .steps
                .iter()
                .find(|s| !s.state.is_done())
                .map(|s| match s.state {
                    StepState::Failed {
                        exit_code: Some(code),
                        ..
                    } => {
                        format!("{} (exit {code})", s.name)
                    }
                    _ => format!("{} ({})", s.name, s.state.word()),
                })
                .unwrap_or_default(),
        };
        rows.push([
            t.target.to_string(),
            state.word().to_string(),
            format!("{done}/{}", t.steps.len()),
            format!("{:.1}s", ms as f64 / 1000.0),
            detail,
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
    }
    s
}
