//! History metadata: `history/<name>.json`, written beside the archive when a run ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::starter::HistoryType;

/// The largest metadata file read, bytes: a real one is a few KiB to a few hundred
/// (per-package durations).
pub const META_LIMIT: u64 = 16 << 20;

/// What a history holds and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The history's name (its date, `YYYYMMDD-HHMMSS`).
    pub name: String,
    /// When the archive was written, RFC 3339 UTC.
    pub created: String,
    /// squashfs image or plain directory.
    pub kind: HistoryType,
    /// Size on disk in bytes (the image file; for a directory, its apparent size).
    pub size_bytes: u64,
    /// The targets whose roots it holds, `<tuple>.<name>`, primary first.
    pub targets: Vec<String>,
    /// The starter of the run that made it.
    pub starter: PathBuf,
    /// The run that made it.
    pub run_id: String,
    /// The history that run started from (`None`: a stage3).
    pub based_on: Option<String>,
    /// build-helper's version.
    pub tool_version: String,
    /// The squashfs compressor and level (`zstd 5`), `None` for directories.
    pub compression: Option<String>,
    /// Milliseconds the archive took.
    pub archive_ms: u64,
    /// Per target (primary first), per step in the order the steps ran: the duration of its
    /// last attempt in milliseconds. A JSON object keeps its members' order in the file and
    /// [`IndexMap`] keeps it in memory (histories written before this kept the order sorted
    /// by name).
    pub step_ms: IndexMap<String, IndexMap<String, u64>>,
    /// Per target and step, as [`Meta::step_ms`]: what the step's last attempt cost (CPU
    /// time, peak memory, where the figures come from; docs/job-pool.md), for the steps
    /// that were measured. Per step only: emerge.log records merge times, no CPU or memory.
    /// Absent in older metadata.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub step_cost: IndexMap<String, IndexMap<String, crate::pool::StepCost>>,
    /// Per package (`category/package`): its last merge times in seconds, oldest first, at
    /// most [`crate::progress::eta::KEEP`] (from the environment's emerge.log files and the
    /// history before); the next run's estimates start from them. Absent in older metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub package_secs: BTreeMap<String, Vec<u64>>,
}

impl Meta {
    /// The metadata file of the history entry at `path` (`x.sqfs` or `x/` -> `x.json`).
    pub fn path_for(entry: &Path) -> PathBuf {
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name.strip_suffix(".sqfs").unwrap_or(&name);
        entry.with_file_name(format!("{stem}.json"))
    }

    /// Reads the metadata of the entry at `path`; `None` when there is none or it is
    /// unreadable (histories made by hand or by the original tool have none). history/ is
    /// written during the archive from inside an environment, so the file is read through
    /// the one reader of files a build may have made ([`crate::saferoot`]): a link, a FIFO,
    /// a device or a file over [`META_LIMIT`] bytes is no metadata.
    pub fn load(entry: &Path) -> Option<Meta> {
        let meta = Self::path_for(entry);
        let root = crate::saferoot::Root::open(meta.parent()?).ok()?;
        let bytes = root
            .read(
                Path::new(meta.file_name()?),
                crate::saferoot::Resolve::NoSymlinks,
                META_LIMIT,
            )
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes the metadata beside the entry.
    ///
    /// Errors: I/O, with the path.
    pub fn save(&self, entry: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic_mode(&Self::path_for(entry), &bytes, 0o644)
    }
}

/// Bytes an entry takes: the file's length, or the sum of a directory's file lengths
/// (symbolic links not followed).
pub fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|d| d.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_that_is_a_fifo_or_a_link_is_no_metadata_and_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("20260101-000000.sqfs");
        nix::unistd::mkfifo(
            &Meta::path_for(&entry),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        assert_eq!(Meta::load(&entry), None);
        let outside = tempfile::tempdir().unwrap();
        let real = outside.path().join("meta.json");
        std::fs::write(&real, "{}").unwrap();
        let entry = dir.path().join("20260201-000000.sqfs");
        std::os::unix::fs::symlink(&real, Meta::path_for(&entry)).unwrap();
        assert_eq!(Meta::load(&entry), None);
    }

    #[test]
    fn metadata_sits_beside_image_and_directory() {
        assert_eq!(
            Meta::path_for(Path::new("/t/history/20260101-000000.sqfs")),
            Path::new("/t/history/20260101-000000.json")
        );
        assert_eq!(
            Meta::path_for(Path::new("/t/history/20260101-000000")),
            Path::new("/t/history/20260101-000000.json")
        );
    }

    #[test]
    fn step_durations_keep_run_order_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("20260101-000000.sqfs");
        let mut steps = IndexMap::new();
        for (step, ms) in [("host-sync", 3), ("crossdev", 2), ("archive", 1)] {
            steps.insert(step.to_string(), ms);
        }
        let mut step_ms = IndexMap::new();
        step_ms.insert("z.primary".to_string(), steps.clone());
        step_ms.insert("a.second".to_string(), steps);
        let meta = Meta {
            name: "20260101-000000".into(),
            created: "2026-01-01T00:00:00Z".into(),
            kind: HistoryType::Squashfs,
            size_bytes: 1,
            targets: vec![],
            starter: PathBuf::from("s.toml"),
            run_id: "r".into(),
            based_on: None,
            tool_version: "0".into(),
            compression: None,
            archive_ms: 0,
            step_ms,
            step_cost: IndexMap::from([(
                "z.primary".to_string(),
                IndexMap::from([(
                    "crossdev".to_string(),
                    crate::pool::StepCost {
                        cpu_us: 7_200_000_000,
                        peak_rss_bytes: 1 << 30,
                        source: crate::pool::CostSource::Cgroup,
                    },
                )]),
            )]),
            package_secs: BTreeMap::new(),
        };
        meta.save(&entry).unwrap();
        let text = std::fs::read_to_string(Meta::path_for(&entry)).unwrap();
        assert!(text.contains("\"step_cost\""), "{text}");
        let back = Meta::load(&entry).unwrap();
        assert_eq!(back.step_cost, meta.step_cost);
        let targets: Vec<_> = back.step_ms.keys().cloned().collect();
        assert_eq!(targets, ["z.primary", "a.second"]);
        let steps: Vec<_> = back.step_ms["z.primary"].keys().cloned().collect();
        assert_eq!(steps, ["host-sync", "crossdev", "archive"]);
    }
}
