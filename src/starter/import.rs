//! `build-helper import-starter`: turns one of the original tool's starter scripts
//! (`scripts/example-starter-*.sh` of armtux/build-helper) into the equivalent starter TOML.
//!
//! A starter script exports the original's variables (`export MNT_TYPE="bind"`, ...) and runs
//! `build-helper.sh <tuple[:tuple...]> <name[:name...]>` (directly or through a variable such
//! as `HELPER_CMD="./build-helper.sh ..."`). Only those two things are read; the script is
//! never run. Each variable becomes the `[options]` key of docs/starter.md's table, other
//! exports with a plain value go to `[env]`, and what is a shell expression (`$(nproc)`) or
//! only passes a variable through (`"${GENTOO_MIRRORS}"`, which the run reads from the
//! environment anyway) becomes a comment saying why it was left out.
//!
//! Pure: text in, text out; it does not look for the configuration directories (`plan` and
//! `run` do).

use std::path::{Path, PathBuf};

use super::options::{self, HistoryType, MountType, TmpType};
use crate::config::target::{validate_name, validate_tuple};

/// Why a starter script could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// No line runs `build-helper.sh` with its two arguments.
    #[error(
        "{}: no `build-helper.sh <tuples> <names>` line found; is this one of the original's \
         starter scripts (example-starter-*.sh)?",
        path.display()
    )]
    NoCommand { path: PathBuf },
    /// The command line's tuples and names do not pair up, or one of them is not valid.
    #[error("{}:{line}: {reason}; fix the build-helper.sh line", path.display())]
    Targets {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// An exported variable's value is not allowed for the option it sets.
    #[error(
        "{}:{line}: {var}={value:?} is not valid: {reason}; fix the export or remove it",
        path.display()
    )]
    Value {
        path: PathBuf,
        line: usize,
        var: String,
        value: String,
        reason: String,
    },
    /// The script cannot be read: missing, not a regular file (a FIFO or a device is refused
    /// without blocking on it), larger than [`crate::saferoot::CONFIG_LIMIT`], not UTF-8.
    #[error(
        "cannot read starter script {}: {source}; check the path (import-starter reads one of \
         the original's example-starter-*.sh scripts, a regular text file)",
        path.display()
    )]
    Read {
        /// The script's path.
        path: PathBuf,
        /// Why (without the path).
        source: std::io::Error,
    },
}

/// Reads the starter script at `path` for [`import_starter`] through the one reader of
/// user-supplied files ([`crate::saferoot::read_text_file`], at most
/// [`crate::saferoot::CONFIG_LIMIT`] bytes: the original's scripts are under 4 KiB).
///
/// # Errors
/// [`ImportError::Read`]: missing, unreadable, a FIFO / device / socket / directory, too
/// large, or not UTF-8.
pub fn read_script(path: &Path) -> Result<String, ImportError> {
    crate::saferoot::read_text_file(path, crate::saferoot::CONFIG_LIMIT).map_err(|e| {
        ImportError::Read {
            path: path.to_path_buf(),
            source: e.into_io(),
        }
    })
}

/// What an exported value is, seen from the TOML side.
#[derive(Debug, PartialEq, Eq)]
enum Value {
    /// A plain value.
    Plain(String),
    /// `${VAR}` / `$VAR` of the variable itself, or `${VAR:-}`: the run reads the variable
    /// from the environment anyway.
    PassThrough,
    /// Any other shell expression: not converted.
    Shell(String),
}

/// The value of `export NAME=...` as the original script wrote it, quotes removed and the
/// `${NAME:-default}` / `${NAME}` forms of the variable itself recognised.
fn classify(name: &str, raw: &str) -> Value {
    let raw = unquote(raw);
    let own_default = format!("${{{name}:-");
    if let Some(default) = raw
        .strip_prefix(&own_default)
        .and_then(|r| r.strip_suffix('}'))
    {
        if default.is_empty() {
            return Value::PassThrough;
        }
        if !default.contains(['$', '`']) {
            return Value::Plain(default.to_owned());
        }
    }
    if raw == format!("${{{name}}}") || raw == format!("${name}") {
        return Value::PassThrough;
    }
    if raw.contains(['$', '`']) {
        Value::Shell(raw.to_owned())
    } else {
        Value::Plain(raw.to_owned())
    }
}

/// `"x"` and `'x'` without their quotes; anything else as is.
fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// A TOML basic string holding `s` (escaped by the toml crate).
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The converted starter, built line by line.
#[derive(Default)]
struct Out {
    options: Vec<String>,
    env: Vec<String>,
    notes: Vec<String>,
}

/// Converts the starter script `text` (read from `path`, named in errors and in the output's
/// first comment) into starter TOML (docs/starter.md).
///
/// # Errors
/// [`ImportError`] naming the file and line: no `build-helper.sh` line, tuples and names that
/// do not pair up or are not valid, or an exported value the option does not accept.
pub fn import_starter(text: &str, path: &Path) -> Result<String, ImportError> {
    let mut command = None;
    let mut out = Out::default();
    // Depth of `if`/`case` blocks: an export inside one is conditional, so not converted.
    let mut depth = 0usize;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let first = line.split([' ', ';']).next().unwrap_or_default();
        match first {
            "if" | "case" => depth += 1,
            "fi" | "esac" => depth = depth.saturating_sub(1),
            _ => {}
        }
        if command.is_none() {
            if let Some(rest) = line.split("build-helper.sh").nth(1) {
                command = Some((line_no, rest.to_owned()));
                continue;
            }
        }
        let Some(assignment) = line.strip_prefix("export ") else {
            continue;
        };
        let Some((name, raw)) = assignment.trim().split_once('=') else {
            continue;
        };
        if depth > 0 {
            out.notes.push(format!(
                "line {line_no}: `{line}` is conditional in the script; not converted (the \
                 environment still overrides the starter at run time)"
            ));
            continue;
        }
        let value = classify(name, raw);
        let bad = |reason: String, value: &str| ImportError::Value {
            path: path.to_path_buf(),
            line: line_no,
            var: name.to_owned(),
            value: value.to_owned(),
            reason,
        };
        convert(&mut out, name, value, line_no).map_err(|(v, reason)| bad(reason, &v))?;
    }
    let Some((line, rest)) = command else {
        return Err(ImportError::NoCommand {
            path: path.to_path_buf(),
        });
    };
    let targets = targets(&rest).map_err(|reason| ImportError::Targets {
        path: path.to_path_buf(),
        line,
        reason,
    })?;
    Ok(render(path, &rest, &targets, &out))
}

/// The `(tuple, name)` pairs of the words after `build-helper.sh`.
fn targets(rest: &str) -> Result<Vec<(String, String)>, String> {
    let words: Vec<&str> = rest
        .split_whitespace()
        .map(|w| unquote(w.trim_end_matches(['"', '\'', ';'])))
        .filter(|w| !w.is_empty())
        .collect();
    let [tuples, names, ..] = words.as_slice() else {
        return Err(
            "build-helper.sh needs two arguments: <tuple[:tuple...]> <name[:name...]>".into(),
        );
    };
    let tuples: Vec<&str> = tuples.split(':').collect();
    let names: Vec<&str> = names.split(':').collect();
    if tuples.len() != names.len() {
        return Err(format!(
            "{} tuple(s) but {} name(s); each target needs both",
            tuples.len(),
            names.len()
        ));
    }
    let mut pairs = Vec::new();
    for (t, n) in tuples.into_iter().zip(names) {
        validate_tuple(t).map_err(|e| format!("tuple `{t}`: {e}"))?;
        validate_name(n).map_err(|e| format!("name `{n}`: {e}"))?;
        pairs.push((t.to_owned(), n.to_owned()));
    }
    Ok(pairs)
}

/// Adds what the export of `name` means to `out`; on a value the option refuses, returns
/// the value and the reason.
fn convert(out: &mut Out, name: &str, value: Value, line: usize) -> Result<(), (String, String)> {
    let plain = match value {
        Value::Plain(v) => v,
        Value::PassThrough => {
            out.notes.push(format!(
                "line {line}: {name} only passes the environment's value on; build-helper reads \
                 {name} from the environment too"
            ));
            return Ok(());
        }
        Value::Shell(expr) => {
            let why = if name == "MAKEOPTS" {
                "build-helper sets MAKEOPTS=-j<jobs> itself (jobs: the number of CPUs unless \
                 [options] jobs says otherwise)"
                    .to_owned()
            } else {
                "a shell expression is not converted; set the value in [env] or [options] by hand"
                    .to_owned()
            };
            out.notes
                .push(format!("line {line}: {name}={expr:?} left out: {why}"));
            return Ok(());
        }
    };
    let err = |reason: String| (plain.clone(), reason);
    let mut option = |key: &str, toml: String| out.options.push(format!("{key} = {toml}"));
    match name {
        "MNT_TYPE" => {
            let v: MountType = plain.parse().map_err(err)?;
            option("mount_type", toml_string(v.as_str()));
        }
        "MNT_OPTS" => option(
            "mount_opts",
            toml_string(&options::mount_opts(&plain).map_err(err)?),
        ),
        "TMP_TYPE" => {
            let v: TmpType = plain.parse().map_err(err)?;
            option("tmp_type", toml_string(v.as_str()));
        }
        "TMP_SIZE" => option(
            "tmp_size",
            toml_string(&options::size(&plain).map_err(err)?),
        ),
        "HIST_TYPE" => {
            let v: HistoryType = plain.parse().map_err(err)?;
            option("history_type", toml_string(v.as_str()));
        }
        "BUILD_JOBS" => {
            let n = plain
                .parse::<i64>()
                .map_err(|_| err("expected a whole number".into()))?;
            option("jobs", options::jobs(n).map_err(err)?.to_string());
        }
        "BUILD_HIST" => match plain.as_str() {
            "" => {}
            "no" => option("history", toml_string("none")),
            h => option("history", toml_string(h)),
        },
        "TARBALL_MIRROR" if plain.is_empty() => {}
        "TARBALL_MIRROR" => option(
            "mirror",
            toml_string(&options::mirror(&plain).map_err(err)?),
        ),
        "GENTOO_MIRRORS" => {
            if let Some(m) = options::gentoo_mirrors(&plain).map_err(err)? {
                option("gentoo_mirrors", toml_string(&m));
            }
        }
        "DISTFILES" if !plain.is_empty() => option("distfiles", toml_string(&plain)),
        "UMOUNT_ASK" => option(
            "umount_ask",
            options::switch(&plain).map_err(err)?.to_string(),
        ),
        "TMUX_MODE" => {
            if options::switch(&plain).map_err(err)? {
                option("ui", toml_string("tmux"));
            }
        }
        "MOUNT_HIST" => {
            if options::switch(&plain).map_err(err)? {
                out.notes.push(format!(
                    "line {line}: MOUNT_HIST=yes: use `build-helper run --mount-hist` (or \
                     MOUNT_HIST=yes) when you want only the mounts"
                ));
            }
        }
        _ => match options::env_name(name) {
            Ok(key) => out.env.push(format!("{key} = {}", toml_string(&plain))),
            Err(reason) => out
                .notes
                .push(format!("line {line}: {name} left out: {reason}")),
        },
    }
    Ok(())
}

/// The starter TOML: a header naming the source, the targets, `[options]`, `[env]`.
fn render(path: &Path, command: &str, targets: &[(String, String)], out: &Out) -> String {
    let mut s = format!(
        "# Converted by `build-helper import-starter` from {}.\n# Was: `build-helper.sh {}`.\n",
        path.display(),
        command
            .split_whitespace()
            .take(2)
            .map(|w| unquote(w.trim_end_matches(['"', '\'', ';'])))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for note in &out.notes {
        s.push_str(&format!("# {note}\n"));
    }
    for (tuple, name) in targets {
        s.push_str(&format!(
            "\n[[target]]\ntuple = {}\nname = {}\n",
            toml_string(tuple),
            toml_string(name)
        ));
    }
    if !out.options.is_empty() {
        s.push_str("\n[options]\n");
        for line in &out.options {
            s.push_str(line);
            s.push('\n');
        }
    }
    if !out.env.is_empty() {
        s.push_str("\n[env]\n");
        for line in &out.env {
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mirrors the original's `scripts/example-starter-zen2-mbp-tb-stack-parallel.sh` (its
    /// exports and its `HELPER_CMD` line, as published); shared with `tests/plan_golden.rs`.
    const PARALLEL: &str = include_str!("../../tests/fixtures/example-starter-parallel.sh");

    #[test]
    fn parallel_starter_becomes_five_targets_with_its_options() {
        let toml = import_starter(PARALLEL, Path::new("example.sh")).unwrap();
        let value: toml::Table = toml.parse().unwrap();
        let targets = value["target"].as_array().unwrap();
        let pairs: Vec<(&str, &str)> = targets
            .iter()
            .map(|t| (t["tuple"].as_str().unwrap(), t["name"].as_str().unwrap()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("x86_64-unknown-linux-musl", "mbp-tb-stack"),
                ("x86_64-unknown-linux-musl", "zen2-tb-stack"),
                ("x86_64-unknown-linux-gnu", "zen2-tb-slim"),
                ("x86_64-unknown-linux-gnu", "zen2-tb-steam"),
                ("i686-unknown-linux-gnu", "zen2-steam"),
            ]
        );
        let o = value["options"].as_table().unwrap();
        assert_eq!(o["mount_type"].as_str(), Some("bind"));
        assert_eq!(o["history_type"].as_str(), Some("files"));
        assert_eq!(o["tmp_type"].as_str(), Some("tmpfs"));
        // `export BUILD_HIST='no'` sits inside an `if` on BUILD_HIST itself: converting it
        // would make every run start from a fresh stage3.
        assert!(!o.contains_key("history"));
        assert!(toml.contains("line 22: `export BUILD_HIST='no'` is conditional"));
        assert!(!o.contains_key("mirror") && !o.contains_key("gentoo_mirrors"));
        let env = value["env"].as_table().unwrap();
        assert_eq!(
            env["VIDEO_CARDS_NATIVE"].as_str(),
            Some("intel amdgpu nouveau radeonsi radeon virgl")
        );
        assert!(!env.contains_key("MAKEOPTS"));
        assert!(toml.contains("MAKEOPTS=\"${MAKEOPTS} -j$(nproc)\" left out"));
        assert!(toml.contains("GENTOO_MIRRORS only passes the environment's value on"));
        assert!(toml.starts_with("# Converted by `build-helper import-starter` from example.sh"));
    }

    #[test]
    fn single_target_direct_call_with_plain_values() {
        let script = "export TARBALL_MIRROR=https://example.org/gentoo\nexport BUILD_JOBS=8\n\
                      export UMOUNT_ASK=no\n# export MNT_TYPE=tmpfs\n\
                      ./build-helper.sh m68k-unknown-linux-musl marchintosh 2>&1 | tee x.log\n";
        let toml = import_starter(script, Path::new("s.sh")).unwrap();
        let value: toml::Table = toml.parse().unwrap();
        assert_eq!(value["target"].as_array().unwrap().len(), 1);
        let o = value["options"].as_table().unwrap();
        assert_eq!(o["mirror"].as_str(), Some("https://example.org/gentoo"));
        assert_eq!(o["jobs"].as_integer(), Some(8));
        assert_eq!(o["umount_ask"].as_bool(), Some(false));
        assert!(
            !o.contains_key("mount_type"),
            "a commented export is not one"
        );
    }

    #[test]
    fn mismatched_tuples_and_names_name_the_line() {
        let script = "\nHELPER_CMD=\"./build-helper.sh a-b-c:d-e-f one\"\n";
        let e = import_starter(script, Path::new("s.sh")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("s.sh:2: 2 tuple(s) but 1 name(s)"),
            "{e}"
        );
    }

    #[test]
    fn a_refused_value_names_the_variable_and_line() {
        let script = "export MNT_TYPE=\"zram\"\n./build-helper.sh x86_64-pc-linux-gnu a\n";
        let e = import_starter(script, Path::new("s.sh")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("s.sh:1: MNT_TYPE=\"zram\" is not valid"),
            "{e}"
        );
    }

    #[test]
    fn a_script_without_the_command_is_refused() {
        let e = import_starter("echo hi\n", Path::new("s.sh")).unwrap_err();
        assert!(matches!(e, ImportError::NoCommand { .. }));
    }

    #[test]
    fn values_with_quotes_and_backslashes_stay_valid_toml() {
        let script = "export CFLAGS_X='-O2 \"q\" \\\\'\n./build-helper.sh x86_64-pc-linux-gnu a\n";
        let toml = import_starter(script, Path::new("s.sh")).unwrap();
        let value: toml::Table = toml.parse().unwrap();
        assert_eq!(value["env"]["CFLAGS_X"].as_str(), Some("-O2 \"q\" \\\\"));
    }
}
