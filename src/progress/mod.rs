//! Package-level progress and time estimates of a step.
//!
//! [`line`] recognises the progress lines of Portage (`>>> Emerging (3 of 120)
//! cat/pkg-1.0::repo`, `>>> Installing (...)`, `>>> Completed (...)`, `>>> Jobs: 3 of 120
//! complete` with `--jobs`, `emerge --sync` and distfile downloads) and crossdev's stage lines
//! (` * Emerging cross-gcc-stage1 ...`); [`tracker`] folds a step's output, chunk by chunk,
//! into a [`Progress`] (done, total, current package) that the worker reports to the
//! supervisor; [`emergelog`] reads Portage's `/var/log/emerge.log` into per-package merge
//! times; [`eta`] estimates what remains of a step, a target and the run from those times
//! and the step durations of the history the run started from (qlop's method).
//!
//! All of it is pure: no I/O, no clock of its own (times are passed in).
//! Not here: sending the progress (worker), showing it (ui).

pub mod emergelog;
pub mod eta;
pub mod line;
pub mod replay;
pub mod tracker;

pub use line::{parse_line, Line};
pub use tracker::{Phase, Progress, Tracker};

/// Splits a Portage `category/package-version` (cpv) into `category/package` and the version,
/// following Portage's version grammar (PMS 3.2: `digits(.digits)*[a-z]?(_suffix[digits])*
/// (-rN)?`): the version starts at the first `-` after which the rest is a valid version, so
/// `media-fonts/font-adobe-100dpi-1.0.3-r1` gives `media-fonts/font-adobe-100dpi` and
/// `1.0.3-r1`. `None` when no valid version is found.
pub fn split_cpv(cpv: &str) -> Option<(&str, &str)> {
    let slash = cpv.find('/')?;
    let bytes = cpv.as_bytes();
    for (i, b) in cpv.char_indices().skip(slash + 1) {
        if b == '-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            let version = &cpv[i + 1..];
            if is_version(version) {
                return Some((&cpv[..i], version));
            }
        }
    }
    None
}

/// `category/package` of a cpv, or the cpv itself when it has no version.
pub fn package_of(cpv: &str) -> &str {
    split_cpv(cpv).map(|(p, _)| p).unwrap_or(cpv)
}

fn is_version(v: &str) -> bool {
    // An optional -rN revision at the end.
    let v = match v.rfind("-r") {
        Some(i) if i + 2 < v.len() && v[i + 2..].bytes().all(|b| b.is_ascii_digit()) => &v[..i],
        _ => v,
    };
    let mut parts = v.split('_');
    let Some(head) = parts.next() else {
        return false;
    };
    // digits(.digits)*[a-z]?
    let head = match head.as_bytes().last() {
        Some(b) if b.is_ascii_lowercase() => &head[..head.len() - 1],
        _ => head,
    };
    if head.is_empty()
        || !head
            .split('.')
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    parts.all(|s| {
        ["alpha", "beta", "pre", "rc", "p"].iter().any(|suffix| {
            s.strip_prefix(suffix)
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpv_splits_at_the_version_as_portage_does() {
        assert_eq!(
            split_cpv("dev-libs/openssl-3.0.13"),
            Some(("dev-libs/openssl", "3.0.13"))
        );
        assert_eq!(
            split_cpv("media-fonts/font-adobe-100dpi-1.0.3-r1"),
            Some(("media-fonts/font-adobe-100dpi", "1.0.3-r1"))
        );
        assert_eq!(
            split_cpv("sys-devel/gcc-13.2.1_p20240113-r1"),
            Some(("sys-devel/gcc", "13.2.1_p20240113-r1"))
        );
        assert_eq!(
            split_cpv("cross-aarch64-unknown-linux-musl/gcc-14.1.0_rc3"),
            Some(("cross-aarch64-unknown-linux-musl/gcc", "14.1.0_rc3"))
        );
        assert_eq!(
            split_cpv("app-misc/foo-1.0z"),
            Some(("app-misc/foo", "1.0z"))
        );
        assert_eq!(split_cpv("app-misc/foo"), None);
        assert_eq!(split_cpv("app-misc/foo-bar"), None);
        assert_eq!(package_of("app-misc/foo"), "app-misc/foo");
    }
}

#[cfg(test)]
mod fixture_tests;
