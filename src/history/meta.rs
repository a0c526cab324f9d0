//! History metadata: `history/<name>.json`, written beside the archive when a run ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::starter::HistoryType;

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
    /// Per target, per step: the duration of its last attempt in milliseconds.
    pub step_ms: BTreeMap<String, BTreeMap<String, u64>>,
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
    /// unreadable (histories made by hand or by the original tool have none).
    pub fn load(entry: &Path) -> Option<Meta> {
        let bytes = std::fs::read(Self::path_for(entry)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes the metadata beside the entry.
    ///
    /// Errors: I/O, with the path.
    pub fn save(&self, entry: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(&Self::path_for(entry), &bytes)
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
}
