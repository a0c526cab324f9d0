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

use crate::starter::HistoryType;

/// How the history archive is written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArchiveOptions {
    /// squashfs image or plain directory.
    pub history_type: HistoryType,
    /// squashfs compressor (`zstd`, `xz`, ...).
    pub compressor: String,
    /// Compression level, when the compressor takes one.
    pub level: Option<u32>,
}

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

/// Block size of history images: 1 MiB. With zstd level 5 it gives 1.17 x the size of
/// squashfs' default xz (128 KiB blocks) at ~60 x its speed on a 687 MB tree of libraries
/// (scripts/bench-history.sh); 128 KiB blocks gave 1.30 x.
pub const BLOCK_SIZE: u32 = 1 << 20;

/// The command that packs `source` into the image `out` with `opts`' compressor and level
/// on `jobs` threads in [`BLOCK_SIZE`] blocks, keeping extended attributes (file
/// capabilities).
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
                .args(["-b", &BLOCK_SIZE.to_string(), "-processors", &jobs]);
            if let Some(level) = opts.level {
                cmd.args(["-Xcompression-level", &level.to_string()]);
            }
        }
        Tool::Gensquashfs => {
            cmd.args([
                "-q",
                "-f",
                "-k",
                "-j",
                &jobs,
                "-b",
                &BLOCK_SIZE.to_string(),
                "-c",
                comp,
            ]);
            if let Some(level) = opts.level {
                cmd.args(["-X", &format!("level={level}")]);
            }
            cmd.arg("-D").arg(source).arg(out);
        }
    }
    cmd
}

/// The archiver running now (its pid), 0 when none: [`kill_running`] ends it.
static RUNNING: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Kills the archiver started by [`run`] or [`run_chrooted`] that is running now, if any,
/// with its whole process group (it leads one of its own), and waits (up to 5 s) until it
/// is gone, so its partial output can be removed.
pub fn kill_running(sys: &dyn crate::sys::Sys) {
    let pid = RUNNING.swap(0, std::sync::atomic::Ordering::SeqCst);
    if let Ok(pid) = u32::try_from(pid) {
        if pid > 0 {
            // Gone already is what we want.
            let _ = sys.kill(pid, nix::sys::signal::Signal::SIGKILL, true);
            crate::sys::procs::kill_all(sys, &[pid], std::time::Duration::from_secs(5));
        }
    }
}

/// Runs `cmd` (the environment's own squashfs tool, in a process group of its own,
/// [`Group::Own`](crate::sys::Group): it dies with the thread that started it) through `sys`
/// to completion; [`kill_running`] ends it early, as for [`run`].
///
/// Errors: it cannot start, or exits non-zero (the message shows the root and the command).
pub fn run_chrooted(
    sys: &dyn crate::sys::Sys,
    cmd: crate::sys::ChrootCommand,
) -> Result<(), String> {
    let shown = format!(
        "{} {} (chrooted in {})",
        cmd.program,
        cmd.args.join(" "),
        cmd.root.display()
    );
    let mut child = sys
        .spawn_chrooted(cmd)
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    RUNNING.store(child.id() as i32, std::sync::atomic::Ordering::SeqCst);
    let code = child.wait();
    RUNNING.store(0, std::sync::atomic::Ordering::SeqCst);
    match code.map_err(|e| format!("waiting for {shown}: {e}"))? {
        0 => Ok(()),
        code => Err(format!("{shown} failed: exit status {code}")),
    }
}

/// Runs `cmd` to completion in a process group of its own. The archiver dies with the
/// thread that started it (`PR_SET_PDEATHSIG`: when the supervisor is killed, its archiver
/// is too), and [`kill_running`] ends it and its group early.
///
/// Errors: it cannot start, or exits non-zero (the message shows the command).
pub fn run(cmd: &mut Command) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let shown = format!("{cmd:?}");
    // A process group of its own, killed whole by `kill_running`.
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    RUNNING.store(child.id() as i32, std::sync::atomic::Ordering::SeqCst);
    let status = child.wait();
    RUNNING.store(0, std::sync::atomic::Ordering::SeqCst);
    let status = status.map_err(|e| format!("waiting for {shown}: {e}"))?;
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
             -b 1048576 -processors 8 -Xcompression-level 3"
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
            "-q -f -k -j 2 -b 1048576 -c zstd -X level=3 -D /src /out"
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
