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

/// The text of `path`, or `None` after recording why it could not be read.
pub(crate) fn read_text(report: &mut Report, path: &Path) -> Option<String> {
    match fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) => {
            report.error(path, None, format!("cannot read: {e}"));
            None
        }
    }
}

/// Reads an atom file (a world): one atom or set per line; `#` starts a comment, blank lines
/// are skipped. A line with several words or characters no atom has is an error with its
/// line number, and is left out. `None` when the file cannot be read.
pub(crate) fn read_atoms(report: &mut Report, path: &Path) -> Option<Vec<String>> {
    let text = read_text(report, path)?;
    let mut atoms = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or_default();
        let words: Vec<&str> = content.split_whitespace().collect();
        let line_no = Some(index + 1);
        match words.as_slice() {
            [] => {}
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

/// Where the build environment mounts each local repository directory `repos/<dir>`
/// (spec/recipe.md, mount layout).
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
    repos_dir: &Path,
    portage_dir: &Path,
) -> Vec<String> {
    let repos = names(report, repos_dir, |k| k == Kind::Dir);
    if repos.is_empty() {
        return repos;
    }
    let conf = portage_dir.join("repos.conf");
    let sections = repo_sections(report, &conf);
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
            let name = repo_name(report, &dir).unwrap_or_else(|| repo.clone());
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
        match repo_name(report, &dir) {
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
fn repo_name(report: &mut Report, repo: &Path) -> Option<String> {
    let path = repo.join("profiles/repo_name");
    if !matches!(kind(&path), Ok(Kind::File)) {
        return None;
    }
    let text = read_text(report, &path)?;
    text.lines()
        .next()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
}

/// Sections of `repos.conf` (file or directory of files; missing = none), in file order;
/// `[DEFAULT]` is skipped.
fn repo_sections(report: &mut Report, conf: &Path) -> Vec<RepoSection> {
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
        let Some(text) = read_text(report, &file) else {
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
