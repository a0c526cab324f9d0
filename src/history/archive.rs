//! Writing a history: the combined environment of a finished run archived as a squashfs
//! image (the build machine's mksquashfs, else gensquashfs) or copied as a plain directory
//! (rsync), under a `.partial` name renamed when complete.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::plan::ArchiveOptions;
use crate::starter::HistoryType;

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
