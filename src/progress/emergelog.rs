//! Portage's `/var/log/emerge.log` -> how long each package took to merge.
//!
//! Format (gentoo/portage `lib/_emerge/emergelog.py`: `"{int(time.time())}: {msg}"`), with the
//! lines written by `_emerge/MergeListItem.py` and `_emerge/EbuildMerge.py` (and
//! `Binpkg.py` for binary packages):
//! ```text
//! 1507735226:  >>> emerge (1 of 2) sys-devel/gcc-config-1.8-r1 to /
//! 1507735239:  ::: completed emerge (1 of 2) sys-devel/gcc-config-1.8-r1 to /
//! 1507735252:  *** terminating.
//! ```
//! A merge is a `>>> emerge` followed by a `::: completed emerge` of the same cpv and root;
//! a start without completion (failed build, Ctrl-C: `*** terminating.`) is dropped, as
//! qlop does. Malformed lines are skipped.

use std::collections::BTreeMap;

use super::package_of;

/// One completed merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    /// `category/package` (without version).
    pub package: String,
    /// `category/package-version`.
    pub cpv: String,
    /// Start, seconds since the Unix epoch.
    pub start: u64,
    /// Wall time in seconds.
    pub secs: u64,
}

/// Every completed merge of `log`, in the order they completed.
pub fn merges(log: &str) -> Vec<Merge> {
    let mut open: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut out = Vec::new();
    for line in log.lines() {
        let Some((ts, msg)) = line.split_once(':') else {
            continue;
        };
        let Ok(ts) = ts.trim().parse::<u64>() else {
            continue;
        };
        let msg = msg.trim();
        if msg == "*** terminating." {
            open.clear();
        } else if let Some(rest) = msg.strip_prefix(">>> emerge ") {
            if let Some(key) = cpv_and_root(rest) {
                open.insert(key, ts);
            }
        } else if let Some(rest) = msg.strip_prefix("::: completed emerge ") {
            if let Some(key) = cpv_and_root(rest) {
                if let Some(start) = open.remove(&key) {
                    out.push(Merge {
                        package: package_of(&key.0).to_string(),
                        cpv: key.0,
                        start,
                        secs: ts.saturating_sub(start),
                    });
                }
            }
        }
    }
    out
}

/// `(N of M) CPV to ROOT` -> (cpv, root).
fn cpv_and_root(rest: &str) -> Option<(String, String)> {
    let (_, after) = rest.split_once(") ")?;
    let (cpv, root) = after.split_once(" to ")?;
    // Newer Portage may write cpv::repo in some lines; the key ignores the repository.
    let cpv = cpv.split_once("::").map_or(cpv, |(c, _)| c);
    Some((cpv.trim().to_string(), root.trim().to_string()))
}

/// Per package (`category/package`), its merge times in seconds, oldest first.
pub fn times_by_package(merges: &[Merge]) -> BTreeMap<String, Vec<u64>> {
    let mut by: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for m in merges {
        by.entry(m.package.clone()).or_default().push(m.secs);
    }
    by
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
1507735118: Started emerge on: Oct 11, 2017 17:18:38
1507735118:  *** emerge --update --verbose --deep @world
1507735226:  >>> emerge (1 of 2) sys-devel/gcc-config-1.8-r1 to /
1507735227:  === (1 of 2) Cleaning (sys-devel/gcc-config-1.8-r1::/var/db/repos/gentoo/sys-devel/gcc-config/gcc-config-1.8-r1.ebuild)
1507735239:  ::: completed emerge (1 of 2) sys-devel/gcc-config-1.8-r1 to /
1507735239:  >>> emerge (2 of 2) app-laptop/laptop-mode-tools-1.71 to /
1507735245:  *** terminating.
1507735300:  >>> emerge (1 of 1) app-laptop/laptop-mode-tools-1.71 to /usr/aarch64-unknown-linux-musl/
1507735350:  ::: completed emerge (1 of 1) app-laptop/laptop-mode-tools-1.71 to /usr/aarch64-unknown-linux-musl/
not a log line
1507735360:  ::: completed emerge (1 of 1) never/started-1 to /
";

    #[test]
    fn completed_merges_are_paired_and_interrupted_ones_dropped() {
        let m = merges(LOG);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].package, "sys-devel/gcc-config");
        assert_eq!(m[0].secs, 13);
        assert_eq!(m[1].cpv, "app-laptop/laptop-mode-tools-1.71");
        assert_eq!(m[1].secs, 50);
        let by = times_by_package(&m);
        assert_eq!(by["app-laptop/laptop-mode-tools"], vec![50]);
    }
}
