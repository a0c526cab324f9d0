//! The starter file as written, read leniently so that one run reports every problem: TOML
//! syntax errors (each offending line is set aside and the rest read again), unknown keys,
//! and values of the wrong type, each with its file and line, the key, what is expected
//! (type and allowed values) and what was found. The values' own rules (which words, which
//! ranges) are checked afterwards in [`super::Source::options`] and
//! [`super::Source::targets`], which add to the same list.

use std::cell::RefCell;
use std::collections::BTreeMap;

use toml::{Spanned, Value};

use super::{Source, StarterError};

/// A table with the spans of its keys and values.
pub(super) type Table = BTreeMap<Spanned<String>, Spanned<Value>>;

/// A TOML number as the starter has it; shown in messages as it was written.
#[derive(Clone, Copy)]
pub(super) enum Number {
    /// `6`.
    Integer(i64),
    /// `3.5`.
    Float(f64),
}

impl std::fmt::Debug for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Number::Integer(n) => write!(f, "{n}"),
            Number::Float(x) => write!(f, "{x}"),
        }
    }
}

/// Every `[options]` key and what it takes (the reference is docs/starter.md).
pub(super) const OPTION_KEYS: &[(&str, &str)] = &[
    ("ui", "a string: \"tui\", \"tmux\" or \"plain\""),
    (
        "mirror",
        "a string: http://, https:// or file:// URLs, space-separated",
    ),
    ("arch", "a string: a Gentoo release arch such as \"amd64\""),
    (
        "stage3",
        "a string: a stage3 flavor such as \"amd64-musl-hardened\"",
    ),
    ("mount_type", "a string: \"bind\" or \"tmpfs\""),
    (
        "mount_opts",
        "a string: tmpfs mount options such as \"size=30G\"",
    ),
    ("tmp_type", "a string: \"none\" or \"tmpfs\""),
    ("tmp_size", "a string: a size such as \"30G\""),
    ("jobs", "an integer: 1 or more"),
    ("job_pool", "a boolean: true or false"),
    ("min_mem_avail", "a string: a size such as \"2G\""),
    ("max_load", "a number above 0 such as 6 or 3.5"),
    (
        "history",
        "a string: \"latest\", \"none\", a name under history/ or a path",
    ),
    ("history_type", "a string: \"squashfs\" or \"files\""),
    (
        "compressor",
        "a string: \"zstd\", \"xz\", \"gzip\", \"lz4\" or \"lzo\"",
    ),
    (
        "compression_level",
        "an integer: zstd 1-22, xz 0-9, gzip 1-9, lzo 1-9",
    ),
    (
        "distfiles",
        "a string: a directory, relative to the tree or absolute",
    ),
    (
        "openpgp_key",
        "a string: a key file, relative to the tree or absolute",
    ),
    ("verify_signatures", "a boolean: true or false"),
    ("umount_ask", "a boolean: true or false"),
    ("gentoo_mirrors", "a string: mirror URLs, space-separated"),
    (
        "image_compressor",
        "a string: \"xz\", \"zstd\", \"gzip\", \"lzo\" or \"lz4\" (one the targets' kernels read)",
    ),
    (
        "distcc_hosts",
        "a string: distcc hosts such as \"host1/8 host2/8,lzo\"",
    ),
    (
        "pass_env",
        "an array of strings: variable names such as [\"MAKEOPTS\"]",
    ),
    (
        "notify",
        "an array of strings: a command and its arguments such as [\"ntfy\", \"publish\", \"topic\"]",
    ),
];

/// The keys of a `[[target]]` table and what they take.
pub(super) const TARGET_KEYS: &[(&str, &str)] = &[
    (
        "tuple",
        "a string: a crossdev tuple of four parts such as \"x86_64-unknown-linux-musl\"",
    ),
    (
        "name",
        "a string: a build name of letters, digits, `-` and `_`",
    ),
];

/// The top-level tables.
const TOP_KEYS: &[(&str, &str)] = &[
    (
        "target",
        "an array of tables: [[target]] with tuple and name",
    ),
    ("options", "a table: [options]"),
    ("env", "a table: [env] of NAME = \"value\""),
];

/// The starter as written.
#[derive(Default)]
pub(super) struct RawStarter {
    /// Each `[[target]]` table with the span of the table.
    pub target: Vec<Table>,
    pub options: Table,
    pub env: Table,
}

/// The TOML type of a value, as a user reads it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// A value as found, for messages: TOML text, cut short.
fn shown(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 {
        format!("{}...", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

/// Problems found so far, in file order once sorted.
#[derive(Default)]
pub(super) struct Problems(RefCell<Vec<StarterError>>);

impl Problems {
    pub fn push(&self, e: StarterError) {
        self.0.borrow_mut().push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    /// The problems ordered by line (those without a line last).
    pub fn into_vec(self) -> Vec<StarterError> {
        let mut v = self.0.into_inner();
        v.sort_by_key(|e| e.line().unwrap_or(usize::MAX));
        v
    }
}

impl Source<'_> {
    /// Reads the file leniently. A syntax error is recorded and its line set aside (blanked
    /// with spaces, so lines and byte offsets stay), then the rest is read again; a broken table header ends this,
    /// since the keys below it would land in the wrong table. Then the top level's keys and
    /// shapes are checked, and the tables read with the spans of every key and value.
    pub(super) fn raw(&self, problems: &Problems) -> RawStarter {
        let mut text = self.text.to_owned();
        for _ in 0..50 {
            let e = match toml::from_str::<Table>(&text) {
                Ok(top) => return self.split(&text, top, problems),
                Err(e) => e,
            };
            let mut error = self.syntax(&e);
            let line = error.line();
            let source_line = line.and_then(|n| self.text.split('\n').nth(n - 1));
            if let (StarterError::Syntax { message, .. }, Some(expected)) = (
                &mut error,
                source_line.and_then(|l| self.expected_on_line(l)),
            ) {
                message.push_str(&format!("; {expected}"));
            }
            problems.push(error);
            let Some(n) = line else {
                break;
            };
            let mut lines: Vec<&str> = text.split('\n').collect();
            let Some(l) = lines.get(n - 1) else {
                break;
            };
            if l.trim_start().starts_with('[') || l.trim().is_empty() {
                break;
            }
            // Spaces of the same length keep every later byte offset, so the spans of
            // the next reading still point into the file as written.
            let blank = " ".repeat(l.len());
            lines[n - 1] = &blank;
            text = lines.join("\n");
        }
        RawStarter::default()
    }

    /// Checks the top level (known keys, the right shapes), then reads the tables again with
    /// their spans.
    fn split(&self, text: &str, top: Table, problems: &Problems) -> RawStarter {
        let mut shapes_ok = true;
        for (key, value) in &top {
            let ok = match (key.get_ref().as_str(), value.get_ref()) {
                ("target", Value::Array(items)) => items.iter().all(Value::is_table),
                ("options" | "env", v) => v.is_table(),
                ("target", _) => false,
                _ => {
                    problems.push(self.unknown(key, "top-level", TOP_KEYS));
                    continue;
                }
            };
            if !ok {
                problems.push(self.wrong(key.get_ref(), TOP_KEYS, value.get_ref(), &value.span()));
                shapes_ok = false;
            }
        }
        if !shapes_ok {
            return RawStarter::default();
        }
        match toml::from_str::<Spanned2>(text) {
            Ok(t) => RawStarter {
                target: t.target,
                options: t.options,
                env: t.env,
            },
            Err(e) => {
                problems.push(self.syntax(&e));
                RawStarter::default()
            }
        }
    }

    /// `KEY` has the wrong type.
    pub(super) fn wrong(
        &self,
        key: &str,
        keys: &[(&str, &str)],
        found: &Value,
        span: &std::ops::Range<usize>,
    ) -> StarterError {
        let expected = keys
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, e)| *e)
            .unwrap_or("another type");
        StarterError::Invalid {
            at: self.at(span.clone()),
            key: key.to_owned(),
            value: shown(found),
            reason: format!("expected {expected}, found {}", type_name(found)),
        }
    }

    /// An unknown key in a table whose keys are `keys`.
    pub(super) fn unknown(
        &self,
        key: &Spanned<String>,
        table: &str,
        keys: &[(&str, &str)],
    ) -> StarterError {
        let names: Vec<String> = keys.iter().map(|(k, _)| format!("`{k}`")).collect();
        StarterError::Syntax {
            at: self.at(key.span()),
            message: format!(
                "unknown {table} key `{}`, expected one of {}",
                key.get_ref(),
                names.join(", ")
            ),
        }
    }

    /// The string value of `key` in `table`, if present and a string; else a problem.
    pub(super) fn string(
        &self,
        table: &Table,
        key: &str,
        keys: &[(&str, &str)],
        problems: &Problems,
    ) -> Option<Spanned<String>> {
        let (_, v) = table.iter().find(|(k, _)| k.get_ref() == key)?;
        match v.get_ref() {
            Value::String(s) => Some(Spanned::new(v.span(), s.clone())),
            other => {
                problems.push(self.wrong(key, keys, other, &v.span()));
                None
            }
        }
    }

    /// The integer value of `key`, if present and an integer; else a problem.
    pub(super) fn integer(
        &self,
        table: &Table,
        key: &str,
        problems: &Problems,
    ) -> Option<Spanned<i64>> {
        let (_, v) = table.iter().find(|(k, _)| k.get_ref() == key)?;
        match v.get_ref() {
            Value::Integer(n) => Some(Spanned::new(v.span(), *n)),
            other => {
                problems.push(self.wrong(key, OPTION_KEYS, other, &v.span()));
                None
            }
        }
    }

    /// The number value of `key` (an integer or a float), if present and a number; else a
    /// problem.
    pub(super) fn number(
        &self,
        table: &Table,
        key: &str,
        problems: &Problems,
    ) -> Option<Spanned<Number>> {
        let (_, v) = table.iter().find(|(k, _)| k.get_ref() == key)?;
        match v.get_ref() {
            Value::Integer(n) => Some(Spanned::new(v.span(), Number::Integer(*n))),
            Value::Float(f) => Some(Spanned::new(v.span(), Number::Float(*f))),
            other => {
                problems.push(self.wrong(key, OPTION_KEYS, other, &v.span()));
                None
            }
        }
    }

    /// The boolean value of `key`, if present and a boolean; else a problem.
    pub(super) fn boolean(&self, table: &Table, key: &str, problems: &Problems) -> Option<bool> {
        let (_, v) = table.iter().find(|(k, _)| k.get_ref() == key)?;
        match v.get_ref() {
            Value::Boolean(b) => Some(*b),
            other => {
                problems.push(self.wrong(key, OPTION_KEYS, other, &v.span()));
                None
            }
        }
    }

    /// The strings of array `key` (each at the array's line), if present; else a problem.
    pub(super) fn strings(
        &self,
        table: &Table,
        key: &str,
        problems: &Problems,
    ) -> Vec<Spanned<String>> {
        let Some((_, v)) = table.iter().find(|(k, _)| k.get_ref() == key) else {
            return Vec::new();
        };
        match v.get_ref() {
            Value::Array(items) if items.iter().all(Value::is_str) => items
                .iter()
                .filter_map(|i| i.as_str())
                .map(|s| Spanned::new(v.span(), s.to_owned()))
                .collect(),
            other => {
                problems.push(self.wrong(key, OPTION_KEYS, other, &v.span()));
                Vec::new()
            }
        }
    }

    /// Unknown keys of `table` (known: `keys`) as problems.
    pub(super) fn unknown_keys(
        &self,
        table: &Table,
        name: &str,
        keys: &[(&str, &str)],
        problems: &Problems,
    ) {
        for k in table.keys() {
            if !keys.iter().any(|(known, _)| known == k.get_ref()) {
                problems.push(self.unknown(k, name, keys));
            }
        }
    }

    /// For a syntax error on a `key = value` line of a known key, what that key takes.
    pub(super) fn expected_on_line(&self, line: &str) -> Option<String> {
        let key = line.split_once('=')?.0.trim();
        OPTION_KEYS
            .iter()
            .chain(TARGET_KEYS)
            .find(|(k, _)| *k == key)
            .map(|(k, e)| format!("{k} takes {e}"))
    }
}

/// The three tables, read with the spans of every key and value (unknown top-level keys
/// were reported already and are ignored here).
#[derive(serde::Deserialize)]
struct Spanned2 {
    #[serde(default)]
    target: Vec<Table>,
    #[serde(default)]
    options: Table,
    #[serde(default)]
    env: Table,
}
