//! Target and host configuration directories (`configs/<tuple>.<name>/`, `configs/host`):
//! loading, validation and the world tree order, following docs/configuration.md.
//!
//! Pure in the sense that matters here: it only reads the configuration tree, needs no root,
//! and never follows the links that point into the build environment (make.profile and
//! friends). It does not decide what to build from a configuration; the recipe does.
//!
//! Every check collects all problems it finds, each naming its path (and line), so
//! `build-helper check` can print them at once.

mod files;
mod host;
mod libc;
mod load;
mod portage;
pub mod target;
pub mod tree;
mod worlds;

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use host::{load_host, world_has_distcc, HostConfig};
pub use libc::Libc;
pub use load::{load_target, BoxKind, TargetConfig};
pub use portage::{KERNEL_COMPRESSORS, ROOT_PREFIX};
pub use target::{validate_name, validate_tuple, NameError, Target};
pub use worlds::{World, KERNEL_PACKAGES, RESERVED_IMAGE_NAMES};

/// One thing wrong (or worth a warning) in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file or directory concerned.
    pub path: PathBuf,
    /// 1-based line in `path`, where one applies.
    pub line: Option<usize>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for Problem {
    /// `<path>[:<line>]: <message>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for Problem {}

/// The outcome of checking configurations: errors block a build, warnings do not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl Report {
    /// True when there are no errors (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn error(
        &mut self,
        path: impl Into<PathBuf>,
        line: Option<usize>,
        message: impl Into<String>,
    ) {
        self.errors.push(Problem {
            path: path.into(),
            line,
            message: message.into(),
        });
    }

    pub(crate) fn warn(
        &mut self,
        path: impl Into<PathBuf>,
        line: Option<usize>,
        message: impl Into<String>,
    ) {
        self.warnings.push(Problem {
            path: path.into(),
            line,
            message: message.into(),
        });
    }
}

/// Whether `dir` is a host configuration: named `host` or `host-<something>`.
pub fn is_host_dir(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "host" || n.starts_with("host-"))
}

/// Checks each directory for `build-helper check`: host configurations (see [`is_host_dir`])
/// with [`load_host`], all others with [`load_target`]. Returns every error and warning of
/// all of them, in the order of `dirs`.
pub fn check(dirs: &[PathBuf]) -> Report {
    let mut all = Report::default();
    for dir in dirs {
        let report = if is_host_dir(dir) {
            host::inspect_host(dir).1
        } else {
            load::inspect_target(dir).1
        };
        all.errors.extend(report.errors);
        all.warnings.extend(report.warnings);
    }
    all
}
