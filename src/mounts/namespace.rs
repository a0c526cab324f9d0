//! The run's private mount namespace: entered before the first mount, so that every mount
//! of the run disappears with its last process and none propagates to the build machine.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Enters a private mount namespace whose mounts never propagate to the build machine
/// (catalyst does the same), so every mount of the run disappears with its last process.
/// The new namespace starts with copies of every mount of the machine; copies of other runs'
/// mount directories (a `--mount-hist` exploration) are detached at once, so this run never
/// keeps them, or their loop devices, busy. Must be called while the process is
/// single-threaded.
///
/// Errors: not root, or the kernel refuses.
pub fn private_namespace(sys: &dyn crate::sys::Sys) -> anyhow::Result<()> {
    sys.unshare_mount_ns()?;
    sys.set_propagation(Path::new("/"), crate::sys::Propagation::Private, true)
        .context("making / private in the run's mount namespace")?;
    let info = sys.mount_table().unwrap_or_default();
    for m in other_runs(&info) {
        let _ = sys.umount(&m, true);
    }
    Ok(())
}

/// The mount directories `<tree>/work/<run>/M` of runs (identified by their mount journal)
/// that have mounts in a mountinfo text.
fn other_runs(mountinfo: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for line in mountinfo.lines() {
        let Some(mp) = line.split(' ').nth(4) else {
            continue;
        };
        let m = Path::new(mp)
            .ancestors()
            .find(|a| {
                a.file_name().is_some_and(|n| n == "M")
                    && a.parent()
                        .is_some_and(|run| crate::rundir::journal::Journal::path(run).is_file())
            })
            .map(Path::to_path_buf);
        if let Some(m) = m {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_private_namespace_detaches_the_copies_of_other_runs_mounts() {
        let tree = tempfile::tempdir().unwrap();
        let run = tree.path().join("work/a-1");
        std::fs::create_dir_all(run.join("M")).unwrap();
        std::fs::write(run.join("journal.json"), b"{}").unwrap();
        let sys = crate::sys::RecordingSys::default();
        sys.add_mounted(std::path::Path::new("/"));
        sys.add_mounted(&run.join("M"));
        sys.add_mounted(&run.join("M/m"));
        super::private_namespace(&sys).unwrap();
        use crate::sys::{Call, Propagation};
        assert_eq!(
            sys.take(),
            [
                Call::UnshareMountNs,
                Call::Propagation {
                    target: "/".into(),
                    kind: Propagation::Private,
                    recursive: true
                },
                Call::Umount {
                    target: run.join("M"),
                    detach: true
                },
            ]
        );
    }

    #[test]
    fn other_runs_finds_mount_directories_of_runs_with_a_journal() {
        let tree = tempfile::tempdir().unwrap();
        let run = tree.path().join("work/a-1");
        std::fs::create_dir_all(run.join("M")).unwrap();
        std::fs::write(run.join("journal.json"), b"{}").unwrap();
        std::fs::create_dir_all(tree.path().join("work/b-2/M")).unwrap();
        let m = run.join("M");
        let info = format!(
            "1 0 0:1 / / rw - ext4 /dev/vda rw\n\
             2 1 0:2 / {m} rw - tmpfs tmpfs rw\n\
             3 2 0:3 / {m}/m/proc rw - proc proc rw\n\
             4 1 0:4 / {other}/M/m rw - overlay overlay rw\n",
            m = m.display(),
            other = tree.path().join("work/b-2").display()
        );
        assert_eq!(super::other_runs(&info), [m]);
    }
}
