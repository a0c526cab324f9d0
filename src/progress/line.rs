//! One line of a step's output -> the Portage or crossdev progress it announces.
//!
//! The formats, from their sources (gentoo/portage `lib/`, gentoo/crossdev `crossdev`):
//! - `>>> Emerging (N of M) cat/pkg-1.0::repo` and `>>> Emerging binary (N of M) ...`, or
//!   `>>> Fetching (N of M) ...` with `--fetchonly` (`_emerge/MergeListItem.py`); a root other
//!   than `/` adds ` for /ROOT`;
//! - `>>> Installing (N of M) ...` and `>>> Completed (N of M) ...`
//!   (`_emerge/PackageMerge.py`), with ` to /ROOT`;
//! - `>>> Jobs: A of B complete[, R running][, F failed][, W merge wait]   Load avg: ...`
//!   (`_emerge/JobStatusDisplay.py`, with `--jobs`; on a terminal redrawn after `\r`);
//! - `>>> Syncing repository 'NAME' into 'PATH'...` and `=== Sync completed for NAME`
//!   (`portage/sync/controller.py`);
//! - `>>> Downloading 'URL'` (`portage/package/ebuild/fetch.py`);
//! - crossdev's ` * Emerging cross-binutils ...` (`ebegin "Emerging ${prefix}${pn}"` in
//!   `doemerge`).
//!
//! Colour escapes (Portage colours the counters and the package) are ignored.

/// What a line announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `>>> Emerging (N of M) CPV::REPO`: package N of M starts (built from source, or from a
    /// binary package when `binary`).
    Emerging {
        /// N, 1-based.
        n: u32,
        /// M.
        total: u32,
        /// `category/package-version`, without `::repo`.
        cpv: String,
        /// `Emerging binary`.
        binary: bool,
    },
    /// `>>> Fetching (N of M) CPV::REPO` (`--fetchonly`).
    Fetching {
        /// N.
        n: u32,
        /// M.
        total: u32,
        /// The cpv.
        cpv: String,
    },
    /// `>>> Installing (N of M) CPV::REPO`: package N is being merged into its root.
    Installing {
        /// N.
        n: u32,
        /// M.
        total: u32,
        /// The cpv.
        cpv: String,
    },
    /// `>>> Completed (N of M) CPV::REPO`: package N is merged.
    Completed {
        /// N.
        n: u32,
        /// M.
        total: u32,
        /// The cpv.
        cpv: String,
    },
    /// `>>> Jobs: A of B complete, R running`.
    Jobs {
        /// A: packages completed.
        done: u32,
        /// B.
        total: u32,
        /// R: jobs running (0 when not shown).
        running: u32,
    },
    /// `>>> Syncing repository 'NAME' into 'PATH'...`.
    Syncing {
        /// The repository's name.
        repo: String,
    },
    /// `=== Sync completed for NAME`.
    SyncCompleted {
        /// The repository's name.
        repo: String,
    },
    /// `>>> Downloading 'URL'`: a distfile is fetched.
    Downloading {
        /// The file name (last path segment of the URL).
        file: String,
    },
    /// crossdev's ` * Emerging cross-gcc-stage1 ...`.
    CrossdevStage {
        /// What crossdev emerges (`cross-binutils`, `cross-gcc-stage1`, `cross-musl`...).
        stage: String,
    },
}

/// Removes ANSI escape sequences (CSI `ESC [ ... final`, and two-byte `ESC x`).
pub fn strip_ansi(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('\x1b') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                // OSC: up to BEL or ESC \.
                for c in chars.by_ref() {
                    if c == '\x07' || c == '\\' {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `(N of M) REST` -> (N, M, REST).
fn counter(s: &str) -> Option<(u32, u32, &str)> {
    let s = s.strip_prefix('(')?;
    let (inner, rest) = s.split_once(')')?;
    let (n, m) = inner.split_once(" of ")?;
    Some((
        n.trim().parse().ok()?,
        m.trim().parse().ok()?,
        rest.trim_start(),
    ))
}

/// The cpv of `cat/pkg-1.0::repo[ for /root]`.
fn cpv(rest: &str) -> Option<String> {
    let word = rest.split_whitespace().next()?;
    let cpv = word.split_once("::").map_or(word, |(c, _)| c);
    cpv.contains('/').then(|| cpv.to_string())
}

/// The leading number of `s` and what follows it.
fn number(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// Recognises one line (without its newline; `\r` redraws are split by the caller, or the
/// last segment is taken here). `None` for every other line.
pub fn parse_line(raw: &str) -> Option<Line> {
    let clean = strip_ansi(raw);
    let text = clean.rsplit('\r').find(|s| !s.trim().is_empty())?.trim();
    if let Some(rest) = text.strip_prefix(">>> ") {
        return parse_portage(rest);
    }
    if let Some(repo) = text.strip_prefix("=== Sync completed for ") {
        return Some(Line::SyncCompleted {
            repo: repo.trim().to_string(),
        });
    }
    if let Some(rest) = text.strip_prefix("* Emerging ") {
        let stage = rest.trim_end_matches(" ...").trim();
        // crossdev's packages are named cross-*; anything else is some other ebegin.
        if stage.starts_with("cross-") && !stage.contains(' ') {
            return Some(Line::CrossdevStage {
                stage: stage.to_string(),
            });
        }
    }
    None
}

fn parse_portage(rest: &str) -> Option<Line> {
    if let Some(r) = rest.strip_prefix("Emerging binary ") {
        let (n, total, r) = counter(r)?;
        return Some(Line::Emerging {
            n,
            total,
            cpv: cpv(r)?,
            binary: true,
        });
    }
    if let Some(r) = rest.strip_prefix("Emerging ") {
        let (n, total, r) = counter(r)?;
        return Some(Line::Emerging {
            n,
            total,
            cpv: cpv(r)?,
            binary: false,
        });
    }
    if let Some(r) = rest.strip_prefix("Fetching ") {
        let (n, total, r) = counter(r)?;
        return Some(Line::Fetching {
            n,
            total,
            cpv: cpv(r)?,
        });
    }
    if let Some(r) = rest.strip_prefix("Installing ") {
        let (n, total, r) = counter(r)?;
        return Some(Line::Installing {
            n,
            total,
            cpv: cpv(r)?,
        });
    }
    if let Some(r) = rest.strip_prefix("Completed ") {
        let (n, total, r) = counter(r)?;
        return Some(Line::Completed {
            n,
            total,
            cpv: cpv(r)?,
        });
    }
    if let Some(r) = rest.strip_prefix("Jobs: ") {
        let (done, r) = number(r)?;
        let (total, r) = number(r.strip_prefix(" of ")?)?;
        let r = r.strip_prefix(" complete")?;
        let running = r
            .strip_prefix(", ")
            .and_then(number)
            .filter(|(_, after)| after.starts_with(" running"))
            .map_or(0, |(n, _)| n);
        return Some(Line::Jobs {
            done,
            total,
            running,
        });
    }
    if let Some(r) = rest.strip_prefix("Syncing repository '") {
        let (repo, _) = r.split_once('\'')?;
        return Some(Line::Syncing {
            repo: repo.to_string(),
        });
    }
    if let Some(r) = rest.strip_prefix("Downloading '") {
        let url = r.strip_suffix('\'').unwrap_or(r);
        let file = url.rsplit('/').next().unwrap_or(url);
        return Some(Line::Downloading {
            file: file.to_string(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emerging_lines_give_counter_and_package_without_repository() {
        assert_eq!(
            parse_line(">>> Emerging (3 of 120) dev-libs/openssl-3.0.13::gentoo"),
            Some(Line::Emerging {
                n: 3,
                total: 120,
                cpv: "dev-libs/openssl-3.0.13".into(),
                binary: false
            })
        );
        assert_eq!(
            parse_line(
                ">>> Emerging binary (1 of 4) test-base/tool-1.0::bhtest for /usr/x86_64-unknown-linux-musl/"
            ),
            Some(Line::Emerging {
                n: 1,
                total: 4,
                cpv: "test-base/tool-1.0".into(),
                binary: true
            })
        );
    }

    #[test]
    fn colour_codes_around_counters_and_package_are_ignored() {
        // colorize("MERGE_LIST_PROGRESS", ...) and colorize("PKG_MERGE", ...) as emerge
        // prints them on a colour terminal.
        let line = ">>> Emerging (\x1b[01;33m2\x1b[39;49;00m of \x1b[01;33m7\x1b[39;49;00m) \x1b[32;01msys-apps/baselayout-2.14::gentoo\x1b[39;49;00m";
        assert_eq!(
            parse_line(line),
            Some(Line::Emerging {
                n: 2,
                total: 7,
                cpv: "sys-apps/baselayout-2.14".into(),
                binary: false
            })
        );
    }

    #[test]
    fn installing_completed_and_fetching_are_recognised() {
        assert!(matches!(
            parse_line(">>> Installing (5 of 9) app-misc/a-1::gentoo to /"),
            Some(Line::Installing { n: 5, total: 9, .. })
        ));
        assert!(matches!(
            parse_line(">>> Completed (5 of 9) app-misc/a-1::gentoo to /"),
            Some(Line::Completed { n: 5, total: 9, .. })
        ));
        assert!(matches!(
            parse_line(">>> Fetching (1 of 2) app-misc/a-1::gentoo"),
            Some(Line::Fetching { n: 1, total: 2, .. })
        ));
    }

    #[test]
    fn jobs_line_gives_completed_total_and_running_also_after_a_redraw() {
        assert_eq!(
            parse_line(">>> Jobs: 12 of 212 complete, 3 running       Load avg: 5.01, 4.2, 3.9"),
            Some(Line::Jobs {
                done: 12,
                total: 212,
                running: 3
            })
        );
        assert_eq!(
            parse_line(">>> Jobs: 0 of 3 complete\r\x1b[K>>> Jobs: 1 of 3 complete, 1 failed"),
            Some(Line::Jobs {
                done: 1,
                total: 3,
                running: 0
            })
        );
    }

    #[test]
    fn sync_download_and_crossdev_lines_are_recognised() {
        assert_eq!(
            parse_line(">>> Syncing repository 'gentoo' into '/var/db/repos/gentoo'..."),
            Some(Line::Syncing {
                repo: "gentoo".into()
            })
        );
        assert_eq!(
            parse_line("=== Sync completed for gentoo"),
            Some(Line::SyncCompleted {
                repo: "gentoo".into()
            })
        );
        assert_eq!(
            parse_line(
                ">>> Downloading 'https://distfiles.gentoo.org/distfiles/ab/zlib-1.3.1.tar.xz'"
            ),
            Some(Line::Downloading {
                file: "zlib-1.3.1.tar.xz".into()
            })
        );
        assert_eq!(
            parse_line(" \x1b[32;01m*\x1b[0m Emerging cross-gcc-stage1 ..."),
            Some(Line::CrossdevStage {
                stage: "cross-gcc-stage1".into()
            })
        );
        assert_eq!(parse_line(" * Emerging something else ..."), None);
    }

    #[test]
    fn other_lines_and_malformed_counters_are_not_progress() {
        for l in [
            "",
            ">>> Emerging (x of 3) a/b-1",
            ">>> Emerging (1 of 3)",
            "checking for gcc... gcc",
            ">>> Source compiled.",
            ">>> Jobs: many",
            " * Emerging",
        ] {
            assert_eq!(parse_line(l), None, "{l:?}");
        }
    }
}
