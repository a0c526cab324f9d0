//! Errors of loading a starter: each says what is wrong, where (file and line, or the
//! environment variable) and what to do.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A place in a starter file: the path as given, and a 1-based line when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    /// `<path>` or `<path>:<line>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        match self.line {
            Some(line) => write!(f, ":{line}"),
            None => Ok(()),
        }
    }
}

/// Why a starter could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StarterError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read starter {}: {source}; check the path", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Not valid TOML, or not the starter's shape: an unknown key, a missing required key.
    #[error("{at}: {message}; fix the starter (its format: docs/starter.md)")]
    Syntax { at: Location, message: String },
    /// A value that is not allowed, or of the wrong type (`value` as written in TOML;
    /// `reason` says what is expected).
    #[error("{at}: {key} = {value} is not valid: {reason}")]
    Invalid {
        at: Location,
        key: String,
        value: String,
        reason: String,
    },
    /// An environment variable override that is not allowed.
    #[error("environment variable {var}={value:?} is not valid: {reason}; fix or unset it")]
    Env {
        var: String,
        value: String,
        reason: String,
    },
    /// No `[[target]]` at all.
    #[error(
        "{}: no [[target]]; add at least one [[target]] table with `tuple` and `name` \
         (e.g. tuple = \"x86_64-unknown-linux-musl\", name = \"demo\")",
        path.display()
    )]
    NoTarget { path: PathBuf },
    /// The same target listed twice.
    #[error("{at}: target {target} is already listed at line {first_line}; remove one of them")]
    DuplicateTarget {
        at: Location,
        target: String,
        first_line: usize,
    },
    /// A target without its configuration directory.
    #[error(
        "{at}: target {target} has no configuration directory {}; create it (see \
         docs/configuration.md) or check the name, then run `build-helper check`",
        dir.display()
    )]
    MissingConfig {
        at: Location,
        target: String,
        dir: PathBuf,
    },
    /// The tree could not be derived from the starter's place.
    #[error(
        "cannot tell the tree of starter {}: it should be <tree>/starters/<file>.toml; move \
         it there or set BUILD_HELPER_TREE",
        path.display()
    )]
    NoTree { path: PathBuf },
    /// Several problems, each on its own line, ordered by line.
    #[error("{}\n{} problems in {}; fix them all, then run again", list(.problems), .problems.len(), path.display())]
    Many {
        path: PathBuf,
        problems: Vec<StarterError>,
    },
}

fn list(problems: &[StarterError]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl StarterError {
    /// The starter line this problem is on, when it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            StarterError::Syntax { at, .. }
            | StarterError::Invalid { at, .. }
            | StarterError::DuplicateTarget { at, .. }
            | StarterError::MissingConfig { at, .. } => at.line,
            _ => None,
        }
    }

    /// One error for a list of problems: the problem itself when there is one.
    pub(crate) fn from_problems(path: &std::path::Path, mut problems: Vec<StarterError>) -> Self {
        if problems.len() == 1 {
            problems.remove(0)
        } else {
            StarterError::Many {
                path: path.to_path_buf(),
                problems,
            }
        }
    }
}
