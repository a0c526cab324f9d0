//! Saved histories of the build environment: `history/<date>.sqfs` (squashfs image) or
//! `history/<date>/` (plain directory). Finding the starting point of a run
//! ([`resolve`]) and archiving the combined environment at its end ([`archive`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::plan::ArchiveOptions;
use crate::starter::{HistorySel, HistoryType};

/// One saved history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name: the file or directory name without `.sqfs`.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    /// Image or directory.
    pub kind: HistoryType,
}

/// The histories under `<tree>/history`, oldest first (names are dates, so sorting by name
/// sorts by age). Hidden and `.partial` entries are skipped.
pub fn list(tree: &Path) -> Vec<Entry> {
    let Ok(dir) = std::fs::read_dir(tree.join("history")) else {
        return Vec::new();
    };
    let mut out: Vec<Entry> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file_name = e.file_name().to_string_lossy().into_owned();
            if file_name.starts_with('.') || file_name.ends_with(".partial") {
                return None;
            }
            let path = e.path();
            if let Some(name) = file_name.strip_suffix(".sqfs") {
                path.is_file().then(|| Entry {
                    name: name.to_string(),
                    path,
                    kind: HistoryType::Squashfs,
                })
            } else {
                let is_dir = path.is_dir();
                is_dir.then_some(Entry {
                    name: file_name,
                    path,
                    kind: HistoryType::Files,
                })
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn kind_of(path: &Path) -> HistoryType {
    if path.is_dir() {
        HistoryType::Files
    } else {
        HistoryType::Squashfs
    }
}

/// The history a run starts from: `None` for a first build (selection `none`, or `latest`
/// with no history yet).
///
/// Errors: a named history or path that does not exist (the message lists what exists).
pub fn resolve(tree: &Path, sel: &HistorySel) -> Result<Option<(PathBuf, HistoryType)>, String> {
    match sel {
        HistorySel::None => Ok(None),
        HistorySel::Latest => Ok(list(tree).pop().map(|e| (e.path, e.kind))),
        HistorySel::Name(name) => list(tree)
            .into_iter()
            .find(|e| &e.name == name || e.path.file_name().is_some_and(|f| f == name.as_str()))
            .map(|e| Some((e.path, e.kind)))
            .ok_or_else(|| {
                let names: Vec<String> = list(tree).into_iter().map(|e| e.name).collect();
                format!(
                    "history `{name}` does not exist in {}; available: {}; use --history none for a fresh stage3",
                    tree.join("history").display(),
                    if names.is_empty() { "none".into() } else { names.join(", ") }
                )
            }),
        HistorySel::Path(path) => {
            if path.exists() {
                Ok(Some((path.clone(), kind_of(path))))
            } else {
                Err(format!(
                    "history path {} does not exist; give a squashfs image or a directory made by `build-helper run`",
                    path.display()
                ))
            }
        }
    }
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed: {status}"))
    }
}

/// Archives `source` (the combined environment view `M/b`) as `<tree>/history/<date>.sqfs`
/// (or `<date>/` for history type files) and returns the path. The archive is written under
/// a `.partial` name and renamed when complete. squashfs images use the build machine's
/// `mksquashfs` (squashfs-tools) with every core, else its `gensquashfs` (squashfs-tools-ng);
/// directories use `rsync -HAaX`.
///
/// Errors: no archiver found (the message names the packages), or the archiver failed.
pub fn archive(
    source: &Path,
    tree: &Path,
    date: &str,
    opts: &ArchiveOptions,
    jobs: u32,
) -> Result<PathBuf, String> {
    let dir = tree.join("history");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    match opts.history_type {
        HistoryType::Files => {
            let out = dir.join(date);
            let partial = dir.join(format!("{date}.partial"));
            let _ = std::fs::remove_dir_all(&partial);
            run(Command::new("rsync")
                .arg("-HAaX")
                .arg(format!("{}/", source.display()))
                .arg(format!("{}/", partial.display())))?;
            std::fs::rename(&partial, &out).map_err(|e| format!("{}: {e}", out.display()))?;
            Ok(out)
        }
        HistoryType::Squashfs => {
            let out = dir.join(format!("{date}.sqfs"));
            let partial = dir.join(format!("{date}.sqfs.partial"));
            let _ = std::fs::remove_file(&partial);
            let comp = opts.compressor.as_str();
            if let Some(mksquashfs) = find_tool("mksquashfs") {
                let mut cmd = Command::new(mksquashfs);
                cmd.arg(source)
                    .arg(&partial)
                    .args(["-noappend", "-quiet", "-no-progress", "-comp", comp])
                    .args(["-processors", &jobs.max(1).to_string()]);
                if let Some(level) = opts.level {
                    cmd.args(["-Xcompression-level", &level.to_string()]);
                }
                run(&mut cmd)?;
            } else if let Some(gensquashfs) = find_tool("gensquashfs") {
                let mut cmd = Command::new(gensquashfs);
                cmd.args(["-q", "-f", "-k", "-j", &jobs.max(1).to_string(), "-c", comp]);
                if let Some(level) = opts.level {
                    cmd.args(["-X", &format!("level={level}")]);
                }
                cmd.arg("-D").arg(source).arg(&partial);
                run(&mut cmd)?;
            } else {
                return Err(
                    "neither mksquashfs nor gensquashfs is installed on the build machine: \
                     install sys-fs/squashfs-tools (Debian: squashfs-tools) or set \
                     history_type = \"files\" in the starter"
                        .into(),
                );
            }
            std::fs::rename(&partial, &out).map_err(|e| format!("{}: {e}", out.display()))?;
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_latest_takes_newest_and_none_without_history() {
        let tree = tempfile::tempdir().unwrap();
        assert_eq!(resolve(tree.path(), &HistorySel::Latest).unwrap(), None);
        let h = tree.path().join("history");
        std::fs::create_dir_all(h.join("20260101-000000")).unwrap();
        std::fs::write(h.join("20260301-000000.sqfs"), b"x").unwrap();
        std::fs::write(h.join("20260401-000000.sqfs.partial"), b"x").unwrap();
        let (path, kind) = resolve(tree.path(), &HistorySel::Latest).unwrap().unwrap();
        assert_eq!(path, h.join("20260301-000000.sqfs"));
        assert_eq!(kind, HistoryType::Squashfs);
        let (path, kind) = resolve(tree.path(), &HistorySel::Name("20260101-000000".into()))
            .unwrap()
            .unwrap();
        assert_eq!(path, h.join("20260101-000000"));
        assert_eq!(kind, HistoryType::Files);
    }

    #[test]
    fn resolve_unknown_name_lists_what_exists() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("history/20260101-000000")).unwrap();
        let err = resolve(tree.path(), &HistorySel::Name("nope".into())).unwrap_err();
        assert!(err.contains("`nope` does not exist"), "{err}");
        assert!(err.contains("20260101-000000"), "{err}");
    }
}
