//! Every repository path that README.md, `docs/*.md` and the comments of `src/**/*.rs` cite
//! exists, so a moved or renamed file cannot leave a dangling citation behind. No root, no
//! build of the binary: it reads files only.
//!
//! What counts as a **cited repository path** (the rule this test applies):
//!
//! - A *path word*: a maximal run of the characters `A-Z a-z 0-9 _ . - / < > * { }` whose
//!   first component is one of the repository's tracked top-level directories
//!   ([`TOP_DIRS`]), e.g. `docs/recipe.md`, `scripts/demo.sh`, `src/saferoot.rs`,
//!   `tests/e2e/portage-tree`, `configs/host/worlds/base`, `starters/demo.toml`. A run that
//!   starts with `/` or another name (`/usr/src/linux`, `work/<run>/logs`,
//!   `builds/<tuple>.<name>.<date>/`, `history/<date>.sqfs`) is a path on a build machine or in
//!   a run's tree, not in the repository, and is not checked. Trailing `.`, `,` and `:` end
//!   the word (sentence punctuation, `file:line`).
//! - A path word right after a possessive naming another repository, `the original's` (the
//!   original shell tool, armtux/build-helper) or `<owner>/<name>'s` (a backtick between is
//!   allowed), is that repository's path and is not checked: "the original's
//!   `scripts/build-helper-chroot.sh`".
//! - In Markdown, a *link target* `[text](target)` that is not a URL (no `scheme://`, no
//!   `mailto:`): resolved against the Markdown file's directory, it must exist; a `#fragment`
//!   must name a heading of the file it points to (GitHub's anchor rule: lower case, spaces
//!   as `-`, punctuation other than `-` and `_` dropped).
//! - A *placeholder* (a component holding `<`, `*` or `{`, such as `configs/<tuple>.<name>/`,
//!   `src/**/*.rs` or `stage3/{download,fetch}`) means "the path exists up to the
//!   placeholder": the directories before it must exist.
//! - In Markdown, fenced blocks marked `text` show what a program printed (it may name the
//!   user's files, such as `starters/s.toml:5: ...`); their path words are not checked.
//! - In Rust sources only comment lines (`//`, `///`, `//!`) are read: string literals are
//!   test data and messages, which other tests check.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The repository's tracked top-level directories: a path word must start with one of these
/// to count as a citation. (`history/`, `builds/`, `work/`, `distfiles/` and `binpkgs/` are
/// tracked only as empty folders of the tree a run fills, so their paths are never checked.)
const TOP_DIRS: &[&str] = &[
    ".ci",
    "benches",
    "configs",
    "docs",
    "examples",
    "packaging",
    "scripts",
    "src",
    "starters",
    "tests",
];

/// One citation found in a text: the path as written and the line it is on (1-based).
#[derive(Debug, PartialEq, Eq)]
struct Cited {
    /// The path word or link target, as written (a link target without its `#fragment`).
    path: String,
    /// For a Markdown link, the `#fragment` (without `#`), if any.
    fragment: Option<String>,
    /// Link targets resolve against the citing file's directory; path words against the
    /// repository's root.
    relative_to_file: bool,
    /// 1-based line number in the citing file.
    line: usize,
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.-/<>*{}".contains(c)
}

/// The path words of one line (see the module comment for the rule).
fn path_words(line: &str, lineno: usize, out: &mut Vec<Cited>) {
    let mut rest = line;
    while let Some(start) = rest.find(is_path_char) {
        let before = &line[..line.len() - rest.len() + start];
        let tail = &rest[start..];
        let end = tail.find(|c| !is_path_char(c)).unwrap_or(tail.len());
        let word = tail[..end].trim_end_matches(['.', ',', ':']);
        let first = word.split('/').next().unwrap_or("");
        if word.contains('/') && TOP_DIRS.contains(&first) && !other_repository(before) {
            out.push(Cited {
                path: word.to_string(),
                fragment: None,
                relative_to_file: false,
                line: lineno,
            });
        }
        rest = &tail[end.max(1)..];
    }
}

/// Whether the text before a path word ends in a possessive naming another repository:
/// `the original's ` or `<owner>/<name>'s `, optionally followed by a backtick.
fn other_repository(before: &str) -> bool {
    let Some(owner) = before
        .strip_suffix('`')
        .unwrap_or(before)
        .strip_suffix("'s ")
    else {
        return false;
    };
    let last = owner.rsplit(char::is_whitespace).next().unwrap_or("");
    last == "original" || last.contains('/')
}

/// The Markdown link targets of one line that are not URLs.
fn link_targets(line: &str, lineno: usize, out: &mut Vec<Cited>) {
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let tail = &rest[i + 2..];
        let Some(end) = tail.find(')') else { break };
        let target = tail[..end].trim();
        rest = &tail[end..];
        if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, fragment) = match target.split_once('#') {
            Some((p, f)) => (p, Some(f.to_string())),
            None => (target, None),
        };
        out.push(Cited {
            path: path.to_string(),
            fragment,
            relative_to_file: true,
            line: lineno,
        });
    }
}

/// Every citation of a Markdown text: path words outside `text` fences, and link targets.
fn cited_in_markdown(text: &str) -> Vec<Cited> {
    let mut out = Vec::new();
    let mut fence: Option<bool> = None; // Some(is_text) inside a fenced block
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(info.trim() == "text"),
            };
            continue;
        }
        if fence == Some(true) {
            continue;
        }
        path_words(line, i + 1, &mut out);
        if fence.is_none() {
            link_targets(line, i + 1, &mut out);
        }
    }
    out
}

/// Every citation in the comment lines of a Rust source.
fn cited_in_rust(text: &str) -> Vec<Cited> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            path_words(line, i + 1, &mut out);
        }
    }
    out
}

/// GitHub's anchor of a Markdown heading's text.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of every heading of a Markdown text (outside fenced blocks).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// What is wrong with one citation of `file` (a path relative to `root`), if anything.
fn problem(root: &Path, file: &Path, c: &Cited) -> Option<String> {
    let base = if c.relative_to_file {
        root.join(file).parent().map(Path::to_path_buf)?
    } else {
        root.to_path_buf()
    };
    // Up to the first placeholder component.
    let mut checked = PathBuf::new();
    let mut whole = true;
    for comp in c.path.split('/').filter(|s| !s.is_empty()) {
        if comp.contains(['<', '*', '{']) {
            whole = false;
            break;
        }
        checked.push(comp);
    }
    let target = base.join(&checked);
    let at = format!("{}:{}", file.display(), c.line);
    if !target.exists() {
        let what = if whole {
            ""
        } else {
            " (up to its placeholder)"
        };
        return Some(format!(
            "{at}: cites {}, which does not exist{what} in the repository",
            c.path
        ));
    }
    if let Some(frag) = &c.fragment {
        let doc = if c.path.is_empty() {
            root.join(file)
        } else {
            target.clone()
        };
        let is_md = doc.extension().is_some_and(|e| e == "md");
        if is_md {
            let text = std::fs::read_to_string(&doc).unwrap_or_default();
            if !anchors(&text).contains(frag) {
                return Some(format!(
                    "{at}: cites {}#{frag}, but {} has no heading with that anchor",
                    c.path,
                    doc.strip_prefix(root).unwrap_or(&doc).display()
                ));
            }
        }
    }
    None
}

/// The files whose citations are checked: README.md, docs/**/*.md, src/**/*.rs; paths
/// relative to `root`, sorted.
fn citing_files(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let rel = dir.join(e.file_name());
            let ty = e.file_type().unwrap();
            if ty.is_dir() {
                walk(root, &rel, ext, out);
            } else if rel.extension().is_some_and(|x| x == ext) {
                out.push(rel);
            }
        }
    }
    let mut out = vec![PathBuf::from("README.md")];
    walk(root, Path::new("docs"), "md", &mut out);
    walk(root, Path::new("src"), "rs", &mut out);
    out
}

/// Every problem of every citing file under `root`.
fn problems(root: &Path) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut found = Vec::new();
    for file in citing_files(root) {
        let text = std::fs::read_to_string(root.join(&file)).unwrap();
        let cited = if file.extension().is_some_and(|e| e == "md") {
            cited_in_markdown(&text)
        } else {
            cited_in_rust(&text)
        };
        count += cited.len();
        // A link whose target is also a path word (`[x](docs/x.md)`) is reported once.
        for p in cited.iter().filter_map(|c| problem(root, &file, c)) {
            if !found.contains(&p) {
                found.push(p);
            }
        }
    }
    (count, found)
}

/// The rule's list of top-level directories is the repository's: each one exists.
#[test]
fn every_listed_top_dir_exists() {
    for d in TOP_DIRS {
        assert!(Path::new(ROOT).join(d).is_dir(), "{d} is not a directory");
    }
}

/// The README, every docs/ file and every comment in src/ cite only paths that exist.
#[test]
fn every_cited_repository_path_exists() {
    let (count, found) = problems(Path::new(ROOT));
    eprintln!("{count} citations checked");
    assert!(
        found.is_empty(),
        "{} dangling citation(s):\n{}",
        found.len(),
        found.join("\n")
    );
    // The README alone cites a dozen docs/ files and scripts: a count this low means the
    // extractor stopped finding citations.
    assert!(count > 200, "only {count} citations found");
}

/// The extractor finds path words by their first component, stops at punctuation, and
/// leaves out paths of a build machine, a run's tree or another repository.
#[test]
fn path_words_are_repository_paths_only() {
    let mut out = Vec::new();
    path_words(
        "see `docs/recipe.md`, scripts/demo.sh: /usr/src/linux work/<run>/logs src/x.rs.",
        7,
        &mut out,
    );
    path_words(
        "the original's `scripts/a.sh`, armtux/build-helper's configs/b but our's src/c",
        8,
        &mut out,
    );
    let paths: Vec<&str> = out.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        ["docs/recipe.md", "scripts/demo.sh", "src/x.rs", "src/c"]
    );
    assert!(out.iter().all(|c| !c.relative_to_file));
}

/// Markdown: links resolve against the file, URLs are skipped, `text` fences are output.
#[test]
fn markdown_links_and_text_fences() {
    let md = "[a](attach.md#leaving) [b](https://x.org/src/y) [c](#top)\n\
              ```text\nstarters/s.toml:5: bad\n```\n```sh\nscripts/nothere.sh\n```\n";
    let cited = cited_in_markdown(md);
    let got: Vec<(&str, Option<&str>, usize)> = cited
        .iter()
        .map(|c| (c.path.as_str(), c.fragment.as_deref(), c.line))
        .collect();
    assert_eq!(
        got,
        [
            ("attach.md", Some("leaving"), 1),
            ("", Some("top"), 1),
            ("scripts/nothere.sh", None, 6)
        ]
    );
}

/// A made-up path, a made-up anchor and a placeholder past a missing directory are each
/// reported; a placeholder after an existing directory and a real anchor are not.
#[test]
fn made_up_citations_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(
        root.join("src/lib.rs"),
        "/// See docs/real.md and scripts/made-up.sh.\n",
    )
    .unwrap();
    std::fs::write(
        root.join("docs/real.md"),
        "# Real\n\n## Two words\n\n[ok](#two-words) [bad](#three) [gone](missing.md)\n",
    )
    .unwrap();
    std::fs::write(
        root.join("README.md"),
        "`configs/<tuple>.<name>/` [x](docs/real.md#real) src/**/*.rs tests/<t>/x [y](docs/no.md)\n",
    )
    .unwrap();
    let (_, found) = problems(root);
    assert_eq!(
        found,
        [
            "README.md:1: cites configs/<tuple>.<name>/, which does not exist (up to its placeholder) in the repository",
            "README.md:1: cites tests/<t>/x, which does not exist (up to its placeholder) in the repository",
            "README.md:1: cites docs/no.md, which does not exist in the repository",
            "docs/real.md:5: cites #three, but docs/real.md has no heading with that anchor",
            "docs/real.md:5: cites missing.md, which does not exist in the repository",
            "src/lib.rs:1: cites scripts/made-up.sh, which does not exist in the repository",
        ]
    );
}

/// GitHub's anchors: lower case, spaces to `-`, backticks and other punctuation dropped.
#[test]
fn heading_anchors_follow_github() {
    assert_eq!(
        anchor(" Booting a build: `build-helper boot`"),
        "booting-a-build-build-helper-boot"
    );
    assert_eq!(anchor("Rules check applies"), "rules-check-applies");
}
