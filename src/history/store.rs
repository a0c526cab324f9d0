//! The history folder: listing its entries, choosing a run's starting point ([`resolve`]),
//! checking that an entry really is a history before anything mounts it ([`check`]), and
//! pruning old entries ([`prune`]).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

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
/// sorts by age). Hidden and `.partial` entries are skipped, and so is a link: history/ is
/// written from inside an environment during the archive, so a link there may be a build's,
/// and no history is taken through one (a history named by path in the starter may be one).
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
            let file_type = e.file_type().ok()?;
            if let Some(name) = file_name.strip_suffix(".sqfs") {
                file_type.is_file().then(|| Entry {
                    name: name.to_string(),
                    path,
                    kind: HistoryType::Squashfs,
                })
            } else {
                file_type.is_dir().then_some(Entry {
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

/// The partial archives under `<tree>/history`: `<date>.sqfs.partial` (an image) and
/// `<date>.partial/` (a directory) that an archive writes before renaming them to their
/// final name ([`super::archive::paths`]). One that outlived its archive (the supervisor was
/// killed with SIGKILL during it) is not a history: [`list`] skips it, `history list`
/// shows it, and [`remove_partials`] removes it. Sorted by name; links are not followed.
pub fn partials(tree: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(tree.join("history")) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = dir
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !name.starts_with('.') && name.ends_with(".partial")
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// The date (`YYYYMMDD-HHMMSS`, the run's plan date) a partial archive belongs to.
pub fn partial_date(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".partial")?;
    Some(stem.strip_suffix(".sqfs").unwrap_or(stem).to_string())
}

/// Removes the partial archives of `tree` ([`partials`]) except those of a run still
/// archiving (`busy_dates`: the plan dates of the tree's live runs); returns what was removed.
/// A link named like a partial is removed itself, never what it points to.
///
/// Errors: a removal failed (the message names the path; earlier removals stay done).
pub fn remove_partials(tree: &Path, busy_dates: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut removed = Vec::new();
    for p in partials(tree) {
        if partial_date(&p).is_some_and(|d| busy_dates.contains(&d)) {
            continue;
        }
        let is_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
        let result = if is_dir {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match result {
            Ok(()) => removed.push(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", p.display())),
        }
    }
    Ok(removed)
}

fn kind_of(path: &Path) -> HistoryType {
    if path.is_dir() {
        HistoryType::Files
    } else {
        HistoryType::Squashfs
    }
}

/// `hsqs`, the squashfs 4 superblock magic, little-endian (squashfs-tools, `squashfs_fs.h`).
const SQUASHFS_MAGIC: u32 = 0x7371_7368;

/// Checks that `path` is a history of kind `kind` without mounting it: a squashfs image has
/// the squashfs magic and is not shorter than its superblock's `bytes_used` (offset 40); a
/// directory holds a root filesystem (`etc/` and `usr/`).
///
/// Errors: a message naming the path and what is wrong with it.
pub fn check(path: &Path, kind: HistoryType) -> Result<(), String> {
    match kind {
        HistoryType::Squashfs => {
            let mut head = [0u8; 48];
            // Never blocking on a FIFO a build planted in history/ during the archive: only
            // a regular file is an image. (Links: [`list`] takes none; a path the starter
            // names may be one.)
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(path)
                .map_err(|e| format!("history {}: {e}", path.display()))?;
            if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
                return Err(format!(
                    "history {} is not a regular file; remove it or move it out of history/",
                    path.display()
                ));
            }
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            file.read_exact(&mut head).map_err(|_| {
                format!(
                    "history {} is not a squashfs image (too short)",
                    path.display()
                )
            })?;
            let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            if magic != SQUASHFS_MAGIC {
                return Err(format!(
                    "history {} is not a squashfs image (no squashfs magic); give an image or directory made by `build-helper run`",
                    path.display()
                ));
            }
            let mut used = [0u8; 8];
            used.copy_from_slice(&head[40..48]);
            let used = u64::from_le_bytes(used);
            if used > len {
                return Err(format!(
                    "history {} is truncated or corrupt: its superblock says {used} bytes, the file has {len}; pick another with --history",
                    path.display()
                ));
            }
            Ok(())
        }
        HistoryType::Files => {
            if path.join("etc").is_dir() && path.join("usr").is_dir() {
                Ok(())
            } else {
                Err(format!(
                    "{} is not a history: a history directory holds a root filesystem (etc/, usr/); give one made by `build-helper run` with history_type = \"files\"",
                    path.display()
                ))
            }
        }
    }
}

/// The history a run starts from: `None` for a first build (selection `none`, or `latest`
/// with no history yet). The chosen entry is [`check`]ed.
///
/// Errors: a named history or path that does not exist (the message lists what exists), or
/// one that is not a history.
pub fn resolve(tree: &Path, sel: &HistorySel) -> Result<Option<(PathBuf, HistoryType)>, String> {
    let chosen = choose(tree, sel)?;
    if let Some((path, kind)) = &chosen {
        check(path, *kind)?;
    }
    Ok(chosen)
}

/// Removes the oldest entries (and their metadata) so that at most `keep` remain, never one
/// listed in `in_use`; returns the removed paths.
///
/// Errors: a removal failed (the message names the path; earlier removals stay done).
pub fn prune(tree: &Path, keep: usize, in_use: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let entries = list(tree);
    let excess = entries.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for e in entries.into_iter().take(excess) {
        if in_use.iter().any(|u| u == &e.path) {
            continue;
        }
        let result = match e.kind {
            HistoryType::Squashfs => std::fs::remove_file(&e.path),
            HistoryType::Files => std::fs::remove_dir_all(&e.path),
        };
        result.map_err(|err| format!("cannot remove {}: {err}", e.path.display()))?;
        let _ = std::fs::remove_file(super::Meta::path_for(&e.path));
        removed.push(e.path);
    }
    Ok(removed)
}

fn choose(tree: &Path, sel: &HistorySel) -> Result<Option<(PathBuf, HistoryType)>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_latest_takes_newest_and_none_without_history() {
        let tree = tempfile::tempdir().unwrap();
        assert_eq!(resolve(tree.path(), &HistorySel::Latest).unwrap(), None);
        let h = tree.path().join("history");
        std::fs::create_dir_all(h.join("20260101-000000/etc")).unwrap();
        std::fs::create_dir_all(h.join("20260101-000000/usr")).unwrap();
        let mut image = vec![0u8; 96];
        image[..4].copy_from_slice(b"hsqs");
        image[40] = 96;
        std::fs::write(h.join("20260301-000000.sqfs"), &image).unwrap();
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

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn a_fifo_or_a_link_planted_in_history_is_no_history_and_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("20260101-000000.sqfs");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = check(&fifo, HistoryType::Squashfs).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let mut image = vec![0u8; 96];
        image[..4].copy_from_slice(b"hsqs");
        image[40] = 96;
        let real = dir.path().join("elsewhere.img");
        std::fs::write(&real, &image).unwrap();
        assert_eq!(check(&real, HistoryType::Squashfs), Ok(()));
        let history = dir.path().join("history");
        std::fs::create_dir(&history).unwrap();
        std::os::unix::fs::symlink(&real, history.join("20260201-000000.sqfs")).unwrap();
        std::os::unix::fs::symlink(dir.path(), history.join("20260301-000000")).unwrap();
        assert!(list(dir.path()).is_empty());
        std::fs::copy(&real, history.join("20260401-000000.sqfs")).unwrap();
        let names: Vec<String> = list(dir.path()).into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["20260401-000000"]);
    }

    #[test]
    fn check_refuses_a_file_without_squashfs_magic_and_a_truncated_image() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.sqfs");
        std::fs::write(&p, vec![0u8; 100]).unwrap();
        assert!(check(&p, HistoryType::Squashfs)
            .unwrap_err()
            .contains("no squashfs magic"));
        let mut image = vec![0u8; 100];
        image[..4].copy_from_slice(b"hsqs");
        image[40..48].copy_from_slice(&4096u64.to_le_bytes());
        std::fs::write(&p, &image).unwrap();
        assert!(check(&p, HistoryType::Squashfs)
            .unwrap_err()
            .contains("truncated"));
    }

    #[test]
    fn check_refuses_a_directory_that_is_not_a_root() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check(dir.path(), HistoryType::Files)
            .unwrap_err()
            .contains("is not a history"));
    }

    #[test]
    fn prune_keeps_the_newest_and_anything_in_use() {
        let tree = tempfile::tempdir().unwrap();
        let h = tree.path().join("history");
        std::fs::create_dir_all(&h).unwrap();
        for n in [
            "20260101-000000",
            "20260102-000000",
            "20260103-000000",
            "20260104-000000",
        ] {
            std::fs::write(h.join(format!("{n}.sqfs")), b"x").unwrap();
            std::fs::write(h.join(format!("{n}.json")), b"{}").unwrap();
        }
        let in_use = [h.join("20260102-000000.sqfs")];
        let removed = prune(tree.path(), 1, &in_use).unwrap();
        assert_eq!(
            removed,
            [
                h.join("20260101-000000.sqfs"),
                h.join("20260103-000000.sqfs")
            ]
        );
        let left: Vec<String> = list(tree.path()).into_iter().map(|e| e.name).collect();
        assert_eq!(left, ["20260102-000000", "20260104-000000"]);
        assert!(!h.join("20260101-000000.json").exists());
    }

    #[test]
    fn partial_archives_are_listed_apart_and_removed_unless_a_live_run_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let h = dir.path().join("history");
        std::fs::create_dir_all(h.join("20260103-000000.partial")).unwrap();
        std::fs::write(h.join("20260101-000000.sqfs.partial"), b"x").unwrap();
        std::fs::write(h.join("20260102-000000.sqfs.partial"), b"x").unwrap();
        std::fs::write(h.join("20260100-000000.sqfs"), b"x").unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, h.join("20260104-000000.partial")).unwrap();
        assert_eq!(partials(dir.path()).len(), 4);
        assert_eq!(list(dir.path()).len(), 1, "partials are not histories");
        let removed = remove_partials(dir.path(), &["20260102-000000".to_string()]).unwrap();
        assert_eq!(removed.len(), 3, "{removed:?}");
        assert_eq!(
            partials(dir.path()),
            [h.join("20260102-000000.sqfs.partial")]
        );
        assert!(outside.is_dir(), "a link is removed, not its target");
    }
}
