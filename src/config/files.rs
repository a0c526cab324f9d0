//! Reading the pieces of a configuration directory: entry kinds, atom files, repository
//! declarations and the make.profile link. Each helper records what is wrong in a
//! [`Report`] (with the path, and the line where one applies) and returns what it could read.
//!
//! Links are never followed into the build environment: make.profile is only inspected with
//! `symlink_metadata`/`read_link`.

use std::fs;
use std::io;
use std::path::Path;

use super::Report;
use crate::saferoot::{self, Resolve, SafeError};

/// What a path is on the build host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Missing,
    File,
    Dir,
    /// A symbolic link whose target does not exist on this host.
    Dangling,
    Other,
}

/// The kind of `path`. A link is followed only to tell a file from a directory; use this
/// for entries that must exist on the host, never for links into the build environment.
pub(crate) fn kind(path: &Path) -> io::Result<Kind> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Kind::Missing),
        Err(e) => return Err(e),
    };
    let meta = if meta.file_type().is_symlink() {
        match fs::metadata(path) {
            Ok(target) => target,
            Err(_) => return Ok(Kind::Dangling),
        }
    } else {
        meta
    };
    Ok(if meta.is_dir() {
        Kind::Dir
    } else if meta.is_file() {
        Kind::File
    } else {
        Kind::Other
    })
}

/// Records an error unless `path` is of kind `want` (`File` or `Dir`); `what` says what the
/// entry is for. Returns whether it is.
pub(crate) fn require(report: &mut Report, path: &Path, want: Kind, what: &str) -> bool {
    let noun = if want == Kind::Dir {
        "directory"
    } else {
        "file"
    };
    let problem = match kind(path) {
        Ok(k) if k == want => return true,
        Ok(Kind::Missing) => format!("missing; create this {noun}: {what}"),
        Ok(Kind::Dangling) => {
            format!(
                "is a symbolic link that does not resolve on this host; expected a {noun}: {what}"
            )
        }
        Ok(_) => format!("is not a {noun}; expected a {noun}: {what}"),
        Err(e) => format!("cannot inspect: {e}"),
    };
    report.error(path, None, problem);
    false
}

/// Whether `path` exists as a file (following links, see [`kind`]).
pub(crate) fn is_file(path: &Path) -> bool {
    matches!(kind(path), Ok(Kind::File))
}

/// The text of `path`, a file of the configuration directory `root`, or `None` after
/// recording why it could not be read. Only a regular file of at most
/// [`saferoot::CONFIG_LIMIT`] bytes is read (a FIFO or a device node is refused without
/// blocking), and a link on the way is followed only while it stays inside `root`: one that
/// leads out is reported, never followed, and neither its target nor what lies there is
/// printed.
pub(crate) fn read_text(report: &mut Report, root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let result = saferoot::Root::open(root)
        .and_then(|r| r.read_to_string(rel, Resolve::Beneath, saferoot::CONFIG_LIMIT));
    let message = match result {
        Ok(text) => return Some(text),
        Err(SafeError::Escapes { .. }) => format!(
            "is a symbolic link (or lies behind one) that leads out of the configuration {}; \
             it is not read: replace the link with the file itself",
            root.display()
        ),
        Err(SafeError::NotRegular { kind, .. }) => {
            format!("is a {kind}, not a regular file; it is not read: replace it with a file")
        }
        Err(SafeError::TooLarge { limit, .. }) => format!(
            "is larger than {} KiB, the limit for a configuration file; it is not read",
            limit / 1024
        ),
        Err(SafeError::Io { source, .. }) => format!("cannot read: {source}"),
    };
    report.error(path, None, message);
    None
}

/// Reads an atom file (a world): one atom or set per line; `#` starts a comment, blank lines
/// are skipped. A line with several words or characters no atom has is an error with its
/// line number, and is left out. `None` when the file cannot be read.
pub(crate) fn read_atoms(report: &mut Report, root: &Path, path: &Path) -> Option<Vec<String>> {
    let text = read_text(report, root, path)?;
    let mut atoms = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or_default();
        let words: Vec<&str> = content.split_whitespace().collect();
        let line_no = Some(index + 1);
        match words.as_slice() {
            [] => {}
            [atom] if atom.starts_with('-') => report.error(
                path,
                line_no,
                format!(
                    "{atom:?} starts with `-`, which no atom or set does (emerge would take it \
                     as an option); remove it or write the atom"
                ),
            ),
            [atom] => match atom.chars().find(|&c| !is_atom_char(c)) {
                None => atoms.push((*atom).to_owned()),
                Some(ch) => report.error(
                    path,
                    line_no,
                    format!("`{atom}` contains {ch:?}, which no atom or set holds"),
                ),
            },
            _ => report.error(
                path,
                line_no,
                format!(
                    "line holds {} words (`{}`); write one atom or set per line",
                    words.len(),
                    words.join(" ")
                ),
            ),
        }
    }
    Some(atoms)
}

/// The characters of a world name or a local repository directory name (the names that
/// reach generated scripts and image file names): ASCII letters, digits, `_`, `.`, `+` and
/// `-`, not starting with `.`, `-` or `+`, at most 64 characters. Portage's own repository
/// names (PMS 3.1.5: `[A-Za-z0-9_][A-Za-z0-9_-]*`) and every world of the original's
/// configurations (`base`, `rust.clean`, `net`, ...) fit.
pub const NAME_CHARS: &str = "ASCII letters, digits, `_`, `.`, `+` and `-`, not starting with \
                              `.`, `-` or `+`, at most 64 characters";

/// Whether `name` is made of [`NAME_CHARS`].
pub(crate) fn is_plain_name(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_.+-".contains(c);
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().all(ok)
}

/// Records an error unless `name` (of the entry `path`, a `what`) is made of
/// [`NAME_CHARS`]; returns whether it is. The name is shown escaped.
pub(crate) fn check_name(report: &mut Report, path: &Path, name: &str, what: &str) -> bool {
    if is_plain_name(name) {
        return true;
    }
    report.error(
        path,
        None,
        format!("{what} name {name:?} is not allowed: use {NAME_CHARS}; rename it"),
    );
    false
}

fn is_atom_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-+./:@=<>~*[],!?".contains(c)
}

/// Names in directory `dir` (not starting with `.`, not ending with `~`), sorted, whose
/// entries pass `keep`. Records an error and returns nothing when `dir` cannot be listed.
pub(crate) fn names(report: &mut Report, dir: &Path, keep: fn(Kind) -> bool) -> Vec<String> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            report.error(dir, None, format!("cannot list: {e}"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                report.error(dir, None, format!("cannot list: {e}"));
                continue;
            }
        };
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            report.error(entry.path(), None, "name is not valid UTF-8; rename it");
            continue;
        };
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        match kind(&entry.path()) {
            Ok(k) if keep(k) => out.push(name),
            Ok(_) => {}
            Err(e) => report.error(entry.path(), None, format!("cannot inspect: {e}")),
        }
    }
    out.sort();
    out
}

/// Whether `path` (a directory the run binds into an environment) resolves inside the
/// configuration `root`; records an error naming neither where a link leads nor what lies
/// there when it does not.
pub(crate) fn stays_inside(report: &mut Report, root: &Path, path: &Path) -> bool {
    let inside = match (fs::canonicalize(root), fs::canonicalize(path)) {
        (Ok(root), Ok(real)) => real.starts_with(root),
        _ => true, // a missing entry is reported where it is required
    };
    if !inside {
        report.error(
            path,
            None,
            format!(
                "is a symbolic link (or lies behind one) that leads out of the configuration \
                 {}; it would be bound into the environment: replace it with the directory",
                root.display()
            ),
        );
    }
    inside
}

/// Where the build environment mounts each local repository directory `repos/<dir>`
/// (docs/recipe.md, the mount layout).
pub(crate) const REPOS_ROOT: &str = "/var/db/repos";

/// The sub-directory names of `repos_dir` (sorted), each checked to be declared in
/// `portage_dir/repos.conf` (a directory of files, or a single file, INI as in Portage's
/// `repos.conf(5)`): some section must have `location = /var/db/repos/<dir>`, where the
/// environment mounts it. The section name is the repository's name, which may differ from
/// the directory (the original's configurations: `[musl-local-zen2-tb-stack]` for
/// `repos/portage-musl-zen2-tb-stack`); the repository's `profiles/repo_name`, when present,
/// must name the same repository, since Portage matches the two.
pub(crate) fn local_repos(
    report: &mut Report,
    root: &Path,
    repos_dir: &Path,
    portage_dir: &Path,
) -> Vec<String> {
    let repos: Vec<String> = names(report, repos_dir, |k| k == Kind::Dir)
        .into_iter()
        .filter(|r| {
            check_name(report, &repos_dir.join(r), r, "local repository")
                && stays_inside(report, root, &repos_dir.join(r))
        })
        .collect();
    if repos.is_empty() {
        return repos;
    }
    let conf = portage_dir.join("repos.conf");
    let sections = repo_sections(report, root, &conf);
    for repo in &repos {
        let dir = repos_dir.join(repo);
        let location = format!("{REPOS_ROOT}/{repo}");
        let Some(section) = sections
            .iter()
            .find(|s| s.location.as_deref() == Some(location.as_str()))
        else {
            let hint = match sections.iter().find(|s| s.name == *repo) {
                Some(RepoSection {
                    location: Some(other),
                    ..
                }) => format!(
                    "; its section `[{repo}]` has location {other}, but the environment \
                     mounts it at {location}"
                ),
                Some(_) => format!("; its section `[{repo}]` has no location"),
                None => String::new(),
            };
            let name = repo_name(report, root, &dir).unwrap_or_else(|| repo.clone());
            report.error(
                &dir,
                None,
                format!(
                    "local repository `{repo}` is not declared in {}: no section has \
                     `location = {location}`{hint}; add a `[{name}]` section with that location",
                    conf.display()
                ),
            );
            continue;
        };
        let repo_name_file = dir.join("profiles/repo_name");
        match repo_name(report, root, &dir) {
            Some(name) if name != section.name => report.error(
                &repo_name_file,
                None,
                format!(
                    "names the repository `{name}`, but its repos.conf section (location \
                     {location}, {}) is `[{}]`; Portage needs both to name it the same: \
                     rename one",
                    section.file.display(),
                    section.name
                ),
            ),
            Some(_) => {}
            None if matches!(kind(&repo_name_file), Ok(Kind::Missing)) => report.warn(
                &repo_name_file,
                None,
                format!(
                    "missing; Portage then names the repository after its repos.conf section \
                     `[{}]` and warns on every run; write that name here",
                    section.name
                ),
            ),
            None => {}
        }
    }
    repos
}

/// A section of repos.conf: its name and `location` (trailing `/` removed).
#[derive(Debug)]
struct RepoSection {
    name: String,
    location: Option<String>,
    file: std::path::PathBuf,
}

/// The first line of `repo/profiles/repo_name`, trimmed; `None` when missing or unreadable
/// (unreadable is reported).
fn repo_name(report: &mut Report, root: &Path, repo: &Path) -> Option<String> {
    let path = repo.join("profiles/repo_name");
    if !matches!(kind(&path), Ok(Kind::File)) {
        return None;
    }
    let text = read_text(report, root, &path)?;
    text.lines()
        .next()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
}

/// Sections of `repos.conf` (file or directory of files; missing = none), in file order;
/// `[DEFAULT]` is skipped.
fn repo_sections(report: &mut Report, root: &Path, conf: &Path) -> Vec<RepoSection> {
    let files: Vec<_> = match kind(conf) {
        Ok(Kind::Dir) => names(report, conf, |k| k == Kind::File)
            .into_iter()
            .map(|n| conf.join(n))
            .collect(),
        Ok(Kind::File) => vec![conf.to_path_buf()],
        Ok(_) => Vec::new(),
        Err(e) => {
            report.error(conf, None, format!("cannot inspect: {e}"));
            Vec::new()
        }
    };
    let mut sections: Vec<RepoSection> = Vec::new();
    for file in files {
        let Some(text) = read_text(report, root, &file) else {
            continue;
        };
        let mut current: Option<usize> = None;
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let name = name.trim();
                current = (name != "DEFAULT").then(|| {
                    sections.push(RepoSection {
                        name: name.to_owned(),
                        location: None,
                        file: file.clone(),
                    });
                    sections.len() - 1
                });
            } else if let (Some(i), Some((key, value))) = (current, line.split_once('=')) {
                if key.trim() == "location" {
                    let value = value.trim();
                    let value = if value.len() > 1 {
                        value.trim_end_matches('/')
                    } else {
                        value
                    };
                    sections[i].location = Some(value.to_owned());
                }
            }
        }
    }
    sections
}

/// Checks that `link` (a make.profile) is a symbolic link whose text names a profile
/// (contains `profiles/`). The link is read, never followed: it points into the build
/// environment. A missing link is an error only when `required`.
pub(crate) fn check_make_profile(report: &mut Report, link: &Path, required: bool) {
    const EXAMPLE: &str = "/var/db/repos/gentoo/profiles/default/linux/amd64/23.0/musl";
    match fs::symlink_metadata(link) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if required {
                report.error(
                    link,
                    None,
                    format!(
                        "missing; create a symbolic link to the profile, \
                         e.g. `ln -s {EXAMPLE} make.profile`"
                    ),
                );
            }
        }
        Err(e) => report.error(link, None, format!("cannot inspect: {e}")),
        Ok(meta) if !meta.file_type().is_symlink() => report.error(
            link,
            None,
            format!(
                "is not a symbolic link; replace it with a link to the profile, e.g. {EXAMPLE}"
            ),
        ),
        Ok(_) => match fs::read_link(link) {
            Ok(text) if text.to_string_lossy().contains("profiles/") => {}
            Ok(text) => report.error(
                link,
                None,
                format!(
                    "points to `{}`, which is not a profile path (no `profiles/`); link it to a \
                     profile in the build environment, e.g. {EXAMPLE}",
                    text.display()
                ),
            ),
            Err(e) => report.error(link, None, format!("cannot read the link: {e}")),
        },
    }
}
