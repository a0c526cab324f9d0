//! The target's C library: `ELIBC` in `target-portage/profile/make.defaults`, else the
//! last part of the target tuple.

use std::path::Path;

use serde::Serialize;

use super::files;
use super::target::Target;
use super::Report;

/// The target's C library: `ELIBC` in `target-portage/profile/make.defaults`, else the
/// tuple's last part (`musl*` or `gnu*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Libc {
    Musl,
    Glibc,
}

impl Libc {
    /// `musl` or `glibc`, as in `ELIBC`.
    pub fn name(self) -> &'static str {
        match self {
            Libc::Musl => "musl",
            Libc::Glibc => "glibc",
        }
    }
}

/// `ELIBC` from a make.defaults (last assignment wins); `None` when the file or the
/// variable is missing, or after recording a bad value.
pub(super) fn elibc(r: &mut Report, root: &Path, path: &Path) -> Option<Libc> {
    if !files::is_file(path) {
        return None;
    }
    let text = files::read_text(r, root, path)?;
    let mut found = None;
    for (index, line) in text.lines().enumerate() {
        let Some(value) = line.trim().strip_prefix("ELIBC=") else {
            continue;
        };
        let value = value.split('#').next().unwrap_or_default().trim();
        let bare = value.trim_matches(|c| c == '"' || c == '\'');
        found = match bare {
            "musl" => Some(Libc::Musl),
            "glibc" => Some(Libc::Glibc),
            _ => {
                let message = format!(
                    "ELIBC={value} is neither musl nor glibc; \
                     write ELIBC=\"musl\" or ELIBC=\"glibc\""
                );
                r.error(path, Some(index + 1), message);
                None
            }
        };
    }
    found
}

/// The libc: `from_defaults` if given (warning when the tuple disagrees), else derived from
/// the tuple's last part.
pub(super) fn resolve_libc(
    r: &mut Report,
    portage: &Path,
    target: &Target,
    from_defaults: Option<Libc>,
) -> Option<Libc> {
    let last = target.tuple.rsplit('-').next().unwrap_or_default();
    let from_tuple = if last.starts_with("musl") {
        Some(Libc::Musl)
    } else if last.starts_with("gnu") {
        Some(Libc::Glibc)
    } else {
        None
    };
    let defaults = portage.join("profile/make.defaults");
    match (from_defaults, from_tuple) {
        (Some(libc), Some(tuple_libc)) if libc != tuple_libc => {
            r.warn(
                defaults,
                None,
                format!(
                    "ELIBC is {} but target tuple `{}` ends in `{last}`",
                    libc.name(),
                    target.tuple
                ),
            );
            Some(libc)
        }
        (Some(libc), _) | (None, Some(libc)) => Some(libc),
        (None, None) => {
            let message = format!(
                "cannot tell the C library: no ELIBC here and the last part `{last}` of \
                 target tuple `{}` is neither musl* nor gnu*; set ELIBC=\"musl\" or \
                 ELIBC=\"glibc\"",
                target.tuple
            );
            r.error(defaults, None, message);
            None
        }
    }
}
