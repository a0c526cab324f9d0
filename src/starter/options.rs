//! The run options of a starter (`[options]` and the environment overrides) and the rules
//! for their values. The parsers here return a plain reason; the caller adds where the value
//! came from (file and line, or variable).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Defines a keyword enum: serialized, parsed ([`FromStr`]) and displayed as its word.
macro_rules! keywords {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every accepted word.
            pub const WORDS: &'static [&'static str] = &[$($word),+];

            /// The word of this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;
            /// Parses one of [`Self::WORDS`]; the error lists them.
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(one_of(Self::WORDS)),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keywords! {
    /// How workers are shown: a ratatui TUI, tmux windows, or plain prefixed lines.
    UiKind { Tui = "tui", Tmux = "tmux", Plain = "plain", }
}
keywords! {
    /// The base of the build environment: a bind mount of a directory, or a tmpfs.
    MountType { Bind = "bind", Tmpfs = "tmpfs", }
}
keywords! {
    /// What backs tmp, var/tmp and var/tmp/portage in the environment.
    TmpType { None = "none", Tmpfs = "tmpfs", }
}
keywords! {
    /// How a history is stored: a squashfs image or a plain directory.
    HistoryType { Squashfs = "squashfs", Files = "files", }
}

/// Squashfs compressors accepted for history archives, with their level range, if any.
pub const COMPRESSORS: [(&str, Option<(u32, u32)>); 5] = [
    ("zstd", Some((1, 22))),
    ("xz", Some((0, 9))),
    ("gzip", Some((1, 9))),
    ("lz4", None),
    ("lzo", Some((1, 9))),
];

/// The history a run starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistorySel {
    /// The newest entry under `<tree>/history/` (a fresh stage3 when there is none).
    Latest,
    /// A fresh stage3.
    None,
    /// An entry under `<tree>/history/`.
    Name(String),
    /// An absolute path to a history image or directory.
    Path(PathBuf),
}

fn yes() -> bool {
    true
}

/// A load-average limit: a positive finite number (checked by
/// [`crate::starter::size::parse_load`]), compared with `/proc/loadavg`'s first field.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Load(pub f64);

// A load limit is finite (never NaN), so equality is an equivalence.
impl Eq for Load {}

/// The options of a run: `[options]` of the starter with the environment overrides applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// `None`: the command line decides (tmux inside tmux, else tui or plain).
    pub ui: Option<UiKind>,
    /// The stage3 mirrors, `http(s)://` or `file://` URLs without a trailing `/`, separated
    /// by one space, tried in order.
    pub mirror: String,
    /// The Gentoo release arch of the build machine (`amd64`).
    pub arch: String,
    /// The stage3 flavor (`amd64-musl-hardened`); default `<arch>-musl-hardened`.
    pub stage3: String,
    pub mount_type: MountType,
    /// Mount options of the tmpfs base (`size=30G`).
    pub mount_opts: String,
    pub tmp_type: TmpType,
    /// Size of the var/tmp/portage tmpfs: digits with an optional K/M/G/T suffix, or `N%`.
    pub tmp_size: String,
    /// Parallel jobs: the job pool's tokens (docs/job-pool.md), kernel builds and squashfs;
    /// at least 1.
    pub jobs: u32,
    /// One GNU make jobserver of `jobs` tokens for the whole run (default true); `false`:
    /// every target gets `MAKEOPTS="-j<jobs>"`, as the original did.
    #[serde(default = "yes")]
    pub job_pool: bool,
    /// No new job from the pool while `MemAvailable` is below this many bytes.
    #[serde(default)]
    pub min_mem_avail: Option<u64>,
    /// No new job from the pool while the 1-minute load average is at or above this.
    #[serde(default)]
    pub max_load: Option<Load>,
    pub history: HistorySel,
    pub history_type: HistoryType,
    /// One of [`COMPRESSORS`].
    pub compressor: String,
    /// The compressor's level (default 5 for zstd, chosen by scripts/bench-history.sh: 1.17 x
    /// the size of xz at ~60 x its speed; none for the others).
    pub compression_level: Option<u32>,
    /// The compressor of the base and world images (one of
    /// [`crate::config::KERNEL_COMPRESSORS`]); `None`: per target, the first its kernel reads.
    /// Each target's kernel must read it (checked when planning).
    pub image_compressor: Option<String>,
    /// Absolute distfiles directory (default `<tree>/distfiles`).
    pub distfiles: PathBuf,
    /// Absolute path of the trusted OpenPGP key file for the stage3 signatures (default
    /// `/usr/share/openpgp-keys/gentoo-release.asc`; starter: relative to the tree;
    /// `BH_OPENPGP_KEY`: relative to the current directory).
    pub openpgp_key: PathBuf,
    /// Check the stage3's OpenPGP signatures (default true). `false` only by explicit choice
    /// (`verify_signatures = false`, `run --no-verify-signatures`): the digests are still
    /// checked and a warning is shown.
    pub verify_signatures: bool,
    /// Ask before unmounting at the end.
    pub umount_ask: bool,
    /// `GENTOO_MIRRORS` for make.conf; `None` when empty.
    pub gentoo_mirrors: Option<String>,
    /// distcc helpers for the run's emerges (distcc(1) `DISTCC_HOSTS`, checked by
    /// [`crate::starter::distcc_hosts::parse`]); `None` when empty.
    pub distcc_hosts: Option<String>,
    /// Build-machine environment variables passed through to every step.
    pub pass_env: Vec<String>,
    /// The command (and its arguments) run with each notification's event as JSON on its
    /// standard input; empty: none.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Mount the history and target overlays, then exit without building (`MOUNT_HIST`).
    pub mount_hist: bool,
}

/// `expected one of `a`, `b``.
fn one_of(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
    format!("expected one of {}", quoted.join(", "))
}

/// One or more mirror URLs separated by whitespace, each `http://`, `https://` or `file://`;
/// returned without trailing `/`, joined by one space.
pub(crate) fn mirror(s: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for url in s.split_whitespace() {
        let ok = ["http://", "https://", "file://"]
            .iter()
            .any(|p| url.starts_with(p) && url.len() > p.len())
            && url.chars().all(is_url_char);
        if !ok {
            return Err(
                "expected http://, https:// or file:// URLs (space-separated, tried in \
                        order) such as https://gentoo.osuosl.org"
                    .into(),
            );
        }
        out.push(url.trim_end_matches('/'));
    }
    if out.is_empty() {
        return Err(
            "expected an http://, https:// or file:// URL such as https://gentoo.osuosl.org".into(),
        );
    }
    Ok(out.join(" "))
}

/// Space-separated mirror URLs for `GENTOO_MIRRORS`; `None` when empty.
pub(crate) fn gentoo_mirrors(s: &str) -> Result<Option<String>, String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    if words
        .iter()
        .any(|w| !w.contains("://") || !w.chars().all(is_url_char))
    {
        return Err(
            "expected space-separated mirror URLs such as https://gentoo.osuosl.org (letters, \
             digits and -._~:/?#[]@!&*+,=%; no quotes, `$`, `;`, parentheses or backslashes)"
                .into(),
        );
    }
    Ok((!words.is_empty()).then(|| words.join(" ")))
}

/// The characters a mirror URL may hold (RFC 3986's, less the quotes, `$`, `;`, `(`, `)`
/// and `\`, which a shell or make.conf would read): the URL lands in make.conf.
fn is_url_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!&*+,=%".contains(c)
}

/// A word of `[a-z0-9_]` (Gentoo release arch) or, with `extra`, more characters.
pub(crate) fn word(s: &str, extra: &str, example: &str) -> Result<String, String> {
    let ok =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || extra.contains(c);
    if !s.is_empty() && s.chars().all(ok) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "expected a word of lower-case letters, digits and `_{extra}`, such as {example}"
        ))
    }
}

/// A size: digits, then optionally one of `KMGT` (either case) or `%`.
pub(crate) fn size(s: &str) -> Result<String, String> {
    let digits = s.trim_end_matches(|c: char| "KMGTkmgt%".contains(c));
    let suffix = &s[digits.len()..];
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) && suffix.len() <= 1 {
        Ok(s.to_owned())
    } else {
        Err(
            "expected a size: digits with an optional K, M, G or T suffix (30G), or a \
             percentage (50%)"
                .into(),
        )
    }
}

/// Mount options: a comma-separated list without spaces (may be empty).
pub(crate) fn mount_opts(s: &str) -> Result<String, String> {
    if s.contains(char::is_whitespace) {
        Err("expected comma-separated mount options without spaces, such as size=30G".into())
    } else {
        Ok(s.to_owned())
    }
}

/// Jobs: a whole number from 1 to 4096.
pub(crate) fn jobs(n: i64) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(n) if (1..=4096).contains(&n) => Ok(n),
        _ => Err("expected a number of jobs from 1 to 4096".into()),
    }
}

/// A history selection; relative paths are taken relative to `base`. `no`/`none` = a fresh
/// stage3, `latest` (or empty) = newest, a value with `/` = a path, anything else = a name.
pub(crate) fn history(s: &str, base: &Path) -> Result<HistorySel, String> {
    Ok(match s {
        "" | "latest" => HistorySel::Latest,
        "no" | "none" => HistorySel::None,
        "." | ".." => return Err("expected `latest`, `none`, a history name or a path".into()),
        _ if s.contains('/') => HistorySel::Path(base.join(s)),
        _ => HistorySel::Name(s.to_owned()),
    })
}

impl HistorySel {
    /// Parses a history selection as the starter, BUILD_HIST and `--history` write it;
    /// relative paths are taken relative to `base`.
    ///
    /// Errors: `.` or `..` (a message saying what is expected).
    pub fn parse(s: &str, base: &Path) -> Result<HistorySel, String> {
        history(s, base)
    }

    /// [`HistorySel::parse`], then a path is refused when it is the build machine's root or
    /// lies in (or holds) the `work/` of `tree` (see docs/security.md).
    ///
    /// Errors: a message saying what is wrong and what is expected.
    pub fn parse_for_tree(s: &str, base: &Path, tree: &Path) -> Result<HistorySel, String> {
        history(s, base).and_then(|h| history_path(h, tree))
    }
}

/// A compressor of [`COMPRESSORS`] and its level: the given one (checked against the
/// compressor's range) or its default (3 for zstd).
pub(crate) fn compression(compressor: &str, level: Option<i64>) -> Result<Option<u32>, String> {
    let Some((_, range)) = COMPRESSORS.iter().find(|(name, _)| *name == compressor) else {
        let names: Vec<&str> = COMPRESSORS.iter().map(|(n, _)| *n).collect();
        return Err(one_of(&names));
    };
    match (level, range) {
        (None, _) => Ok((compressor == "zstd").then_some(5)),
        (Some(_), None) => Err(format!(
            "{compressor} has no compression level; remove compression_level"
        )),
        (Some(level), Some((low, high))) => match u32::try_from(level) {
            Ok(l) if (*low..=*high).contains(&l) => Ok(Some(l)),
            _ => Err(format!(
                "the {compressor} level must be from {low} to {high}"
            )),
        },
    }
}

/// An `[env]` value: any text without a NUL byte (an environment entry cannot hold one) or
/// a line break (a value is one line).
pub(crate) fn env_value(s: &str) -> Result<String, String> {
    if s.contains(['\0', '\n', '\r']) {
        Err("holds a NUL byte or a line break; a variable's value is one line of text".into())
    } else {
        Ok(s.to_owned())
    }
}

/// `s` unless it is empty or blank (a path option never is).
pub(crate) fn non_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("is empty; give a path (relative to the tree, or absolute)".into())
    } else if s.contains('\0') {
        Err("holds a NUL byte; give a path".into())
    } else {
        Ok(s.to_owned())
    }
}

/// A directory or file option (distfiles, a history path), taken relative to `tree`: refused
/// when it is, or would bind into an environment, the build machine's root or the tree's
/// `work/` (where the environments themselves live): it may be neither `/`, nor `work/` or
/// anything inside it, nor a directory holding `work/` (the tree itself, or a parent). `..`
/// is resolved first, and links when the path exists. Returns the path as joined (links
/// kept, so the plan shows what was written).
pub(crate) fn path_option(p: &Path, tree: &Path) -> Result<PathBuf, String> {
    let joined = tree.join(p);
    if joined.as_os_str().as_encoded_bytes().contains(&0) {
        return Err("holds a NUL byte; give a path".into());
    }
    let real = std::fs::canonicalize(&joined).unwrap_or_else(|_| lexical(&joined));
    let work = std::fs::canonicalize(tree.join("work")).unwrap_or_else(|_| tree.join("work"));
    if real == Path::new("/") {
        return Err("is the build machine's root directory; give a directory of its own".into());
    }
    if real.starts_with(&work) {
        return Err(format!(
            "lies inside {}, where the run's environments live; give a directory outside it",
            work.display()
        ));
    }
    if work.starts_with(&real) {
        return Err(format!(
            "holds {} (the run's environments), so it would bind them into themselves; give \
             a directory of its own, such as {}",
            work.display(),
            tree.join("distfiles").display()
        ));
    }
    Ok(joined)
}

/// [`path_option`] for a [`HistorySel::Path`]; other selections pass unchanged.
pub(crate) fn history_path(h: HistorySel, tree: &Path) -> Result<HistorySel, String> {
    match h {
        HistorySel::Path(p) => path_option(&p, tree).map(HistorySel::Path),
        other => Ok(other),
    }
}

/// `p` with `.` dropped and `..` taken back, without looking at the filesystem.
fn lexical(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn env_name(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(s.to_owned())
    } else {
        Err(
            "expected an environment variable name: letters, digits and `_`, not starting \
             with a digit"
                .into(),
        )
    }
}

/// A yes/no switch: `yes|on|true|1` or `no|off|false|0`.
pub(crate) fn switch(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "on" | "true" | "1" => Ok(true),
        "no" | "off" | "false" | "0" => Ok(false),
        _ => Err("expected yes/no, on/off, true/false or 1/0".into()),
    }
}

/// A `notify` command: a non-empty array whose first element names the program.
pub fn notify(argv: &[String]) -> Result<Vec<String>, String> {
    match argv.first() {
        None => Err("must name a command: notify = [\"cmd\", \"arg\", ...]".into()),
        Some(cmd) if cmd.trim().is_empty() => Err("the command (first element) is empty".into()),
        Some(_) if argv.iter().any(|a| a.contains('\0')) => {
            Err("an argument holds a NUL character".into())
        }
        Some(_) => Ok(argv.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_parse_display_and_list_choices() {
        assert_eq!("tmux".parse::<UiKind>(), Ok(UiKind::Tmux));
        assert_eq!(MountType::Tmpfs.to_string(), "tmpfs");
        assert_eq!(
            "bnd".parse::<MountType>().unwrap_err(),
            "expected one of `bind`, `tmpfs`"
        );
        assert_eq!(serde_json::to_string(&TmpType::None).unwrap(), "\"none\"");
    }

    #[test]
    fn sizes_are_digits_with_an_optional_unit() {
        for ok in ["30G", "512m", "100", "50%"] {
            assert!(size(ok).is_ok(), "{ok}");
        }
        for bad in ["", "G", "30GB", "3.5G", "-1", "30 G"] {
            assert!(size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compression_levels_follow_the_compressor() {
        assert_eq!(compression("zstd", None), Ok(Some(5)));
        assert_eq!(compression("xz", None), Ok(None));
        assert_eq!(compression("gzip", Some(9)), Ok(Some(9)));
        assert!(compression("zstd", Some(23)).is_err());
        assert!(compression("lz4", Some(1)).is_err());
        assert!(compression("bzip2", None).unwrap_err().contains("`zstd`"));
    }

    #[test]
    fn history_values() {
        let base = Path::new("/tree");
        assert_eq!(history("", base), Ok(HistorySel::Latest));
        assert_eq!(history("no", base), Ok(HistorySel::None));
        assert_eq!(
            history("2024-05-01", base),
            Ok(HistorySel::Name("2024-05-01".into()))
        );
        assert_eq!(
            history("h/x.sqfs", base),
            Ok(HistorySel::Path("/tree/h/x.sqfs".into()))
        );
        assert_eq!(history("/abs", base), Ok(HistorySel::Path("/abs".into())));
    }
}
