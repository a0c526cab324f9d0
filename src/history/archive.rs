//! Writing a history: the combined environment of a finished run archived as a squashfs
//! image or copied as a plain directory (rsync), under a `.partial` name renamed when
//! complete.
//!
//! The squashfs tool is the build machine's `mksquashfs` (squashfs-tools, multi-threaded),
//! else its `gensquashfs` (squashfs-tools-ng), else the build environment's own one, run
//! chrooted (a Gentoo admincd may lack squashfs-tools; the environment has them from the host
//! world). [`squashfs_command`] builds the command line for either tool.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::plan::ArchiveOptions;
use crate::starter::HistoryType;

/// A squashfs writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// squashfs-tools' `mksquashfs`.
    Mksquashfs,
    /// squashfs-tools-ng's `gensquashfs`.
    Gensquashfs,
}

const TOOLS: [(Tool, &str); 2] = [
    (Tool::Mksquashfs, "mksquashfs"),
    (Tool::Gensquashfs, "gensquashfs"),
];

/// The build machine's squashfs tool, from `PATH`, mksquashfs first.
pub fn host_tool() -> Option<(Tool, PathBuf)> {
    let path = std::env::var_os("PATH")?;
    TOOLS.iter().find_map(|(tool, name)| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .map(|p| (*tool, p))
    })
}

/// The environment's own squashfs tool: its path inside `root` (absolute in the chroot).
pub fn env_tool(root: &Path) -> Option<(Tool, PathBuf)> {
    TOOLS.iter().find_map(|(tool, name)| {
        ["usr/bin", "usr/sbin", "bin", "sbin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| root.join(p).is_file())
            .map(|p| (*tool, Path::new("/").join(p)))
    })
}

/// The command that packs `source` into the image `out` with `opts`' compressor and level
/// on `jobs` threads, keeping extended attributes (file capabilities).
pub fn squashfs_command(
    tool: Tool,
    program: &Path,
    source: &Path,
    out: &Path,
    opts: &ArchiveOptions,
    jobs: u32,
) -> Command {
    let jobs = jobs.max(1).to_string();
    let comp = opts.compressor.as_str();
    let mut cmd = Command::new(program);
    match tool {
        Tool::Mksquashfs => {
            cmd.arg(source)
                .arg(out)
                .args([
                    "-noappend",
                    "-quiet",
                    "-no-progress",
                    "-xattrs",
                    "-comp",
                    comp,
                ])
                .args(["-processors", &jobs]);
            if let Some(level) = opts.level {
                cmd.args(["-Xcompression-level", &level.to_string()]);
            }
        }
        Tool::Gensquashfs => {
            cmd.args(["-q", "-f", "-k", "-j", &jobs, "-c", comp]);
            if let Some(level) = opts.level {
                cmd.args(["-X", &format!("level={level}")]);
            }
            cmd.arg("-D").arg(source).arg(out);
        }
    }
    cmd
}

/// Runs `cmd` to completion.
///
/// Errors: it cannot start, or exits non-zero (the message shows the command).
pub fn run(cmd: &mut Command) -> Result<(), String> {
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

/// Where an archive is written while in progress, and its final name, for run date `date`.
pub fn paths(tree: &Path, date: &str, kind: HistoryType) -> (PathBuf, PathBuf) {
    let dir = tree.join("history");
    match kind {
        HistoryType::Files => (dir.join(format!("{date}.partial")), dir.join(date)),
        HistoryType::Squashfs => (
            dir.join(format!("{date}.sqfs.partial")),
            dir.join(format!("{date}.sqfs")),
        ),
    }
}

/// Archives `source` (the combined environment view `M/b`) with the build machine's tools
/// as `<tree>/history/<date>.sqfs` (or `<date>/` for history type files); returns the path.
/// Returns `Ok(None)` when a squashfs image is wanted and the build machine has no squashfs
/// tool: the caller then uses the environment's own ([`env_tool`]).
///
/// Errors: the archiver failed, or the rename.
pub fn archive(
    source: &Path,
    tree: &Path,
    date: &str,
    opts: &ArchiveOptions,
    jobs: u32,
) -> Result<Option<PathBuf>, String> {
    let (partial, out) = paths(tree, date, opts.history_type);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    match opts.history_type {
        HistoryType::Files => {
            let _ = std::fs::remove_dir_all(&partial);
            run(Command::new("rsync")
                .arg("-HAaX")
                .arg(format!("{}/", source.display()))
                .arg(format!("{}/", partial.display())))?;
        }
        HistoryType::Squashfs => {
            let Some((tool, program)) = host_tool() else {
                return Ok(None);
            };
            let _ = std::fs::remove_file(&partial);
            run(&mut squashfs_command(
                tool, &program, source, &partial, opts, jobs,
            ))?;
        }
    }
    std::fs::rename(&partial, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ArchiveOptions {
        ArchiveOptions {
            history_type: HistoryType::Squashfs,
            compressor: "zstd".into(),
            level: Some(3),
        }
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn mksquashfs_gets_compressor_level_and_every_core() {
        let cmd = squashfs_command(
            Tool::Mksquashfs,
            Path::new("/usr/bin/mksquashfs"),
            Path::new("/M/b"),
            Path::new("/h/x.sqfs.partial"),
            &opts(),
            8,
        );
        assert_eq!(
            args(&cmd).join(" "),
            "/M/b /h/x.sqfs.partial -noappend -quiet -no-progress -xattrs -comp zstd \
             -processors 8 -Xcompression-level 3"
        );
    }

    #[test]
    fn gensquashfs_gets_the_same_settings_in_its_words() {
        let cmd = squashfs_command(
            Tool::Gensquashfs,
            Path::new("/usr/bin/gensquashfs"),
            Path::new("/src"),
            Path::new("/out"),
            &opts(),
            2,
        );
        assert_eq!(
            args(&cmd).join(" "),
            "-q -f -k -j 2 -c zstd -X level=3 -D /src /out"
        );
    }

    #[test]
    fn env_tool_is_found_inside_the_root_and_named_as_seen_from_it() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(env_tool(root.path()), None);
        std::fs::create_dir_all(root.path().join("usr/bin")).unwrap();
        std::fs::write(root.path().join("usr/bin/gensquashfs"), b"").unwrap();
        assert_eq!(
            env_tool(root.path()),
            Some((Tool::Gensquashfs, PathBuf::from("/usr/bin/gensquashfs")))
        );
    }
}
