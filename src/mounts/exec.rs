//! Executes a mount layout through the [`Sys`] seam, and tears it down deepest first.
//!
//! Teardown reads the mount table (`/proc/self/mountinfo`, proc(5), through the seam) rather
//! than trusting a list: whatever is
//! mounted under `M` goes, in the reverse of the order the kernel lists it, which puts every
//! submount (rbind children, stacked mounts) before its parent.

use std::path::{Path, PathBuf};

use super::plan::Entry;
use super::upper::COPY_MODE;
use crate::rundir::journal::Journal;
use crate::sys::{MountCall, MountFlags, Propagation, Sys, SysError};

/// Errors of mounting and unmounting; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The seam failed.
    #[error(transparent)]
    Sys(#[from] SysError),
    /// Preparing a mount point or copying a file failed.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A component of a mount point is a symbolic link: mounting there could land outside `M`.
    #[error(
        "refusing to mount on {target}: {link} is a symbolic link, so the mount could land \
         outside the build environment; remove the link in the environment and resume"
    )]
    Symlink {
        /// The mount point.
        target: PathBuf,
        /// The offending component.
        link: PathBuf,
    },
    /// Some mounts could not be removed (`dir` is `<tree>/work/<run>/M`).
    #[error(
        "{count} mount(s) under {dir} could not be removed (first: {first}); a process may \
         still use them: check `fuser -vm {first}`, stop it, then run `{}`",
        umount_hint(dir)
    )]
    Busy {
        /// The directory torn down.
        dir: PathBuf,
        /// How many remain.
        count: usize,
        /// One that remains.
        first: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MountError + '_ {
    move |source| MountError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directories below a batch's anchor (`M`) already seen to be real directories (no
/// symbolic link), each with every directory above it: a mount point's walk then looks only at
/// the components not seen yet, instead of `lstat`ing every prefix again for every entry (a
/// waiting target's ~25 entries all lie under `M/<name>-<date>/m`). A mount replaces what
/// lies below its mount point, so what was seen there is forgotten ([`Seen::mounted`]). Lives
/// for one batch (one call of [`apply`] or [`apply_shared`]), whose environment nothing
/// else changes meanwhile (its worker waits for the batch to end).
#[derive(Debug, Default)]
struct Seen(std::collections::HashSet<PathBuf>);

impl Seen {
    /// Refuses a mount point with a symbolic link between `anchor` and `target` (inclusive),
    /// checking (`lstat`) only the components not seen yet; a directory found is remembered.
    fn check_no_symlink(&mut self, anchor: &Path, target: &Path) -> Result<(), MountError> {
        let Ok(rel) = target.strip_prefix(anchor) else {
            return Ok(());
        };
        let mut path = anchor.to_path_buf();
        for part in rel.components() {
            path.push(part);
            if self.0.contains(&path) {
                continue;
            }
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(MountError::Symlink {
                        target: target.to_path_buf(),
                        link: path,
                    })
                }
                Ok(meta) if meta.is_dir() => {
                    self.0.insert(path.clone());
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Makes the directory `dir` (and those above it) below `anchor`, refusing a symbolic
    /// link on the way; nothing is looked at again when `dir` was seen already.
    fn prepare_dir(&mut self, anchor: &Path, dir: &Path) -> Result<(), MountError> {
        if self.0.contains(dir) {
            return Ok(());
        }
        self.check_no_symlink(anchor, dir)?;
        if self.0.contains(dir) {
            // The walk found it, a directory.
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // Made by mkdir(2) or seen by the walk: directories, each of them.
        if let Ok(rel) = dir.strip_prefix(anchor) {
            let mut path = anchor.to_path_buf();
            for part in rel.components() {
                path.push(part);
                self.0.insert(path.clone());
            }
        }
        Ok(())
    }

    /// Forgets what was seen below `target`, where a filesystem was just mounted.
    fn mounted(&mut self, target: &Path) {
        self.0.retain(|p| p == target || !p.starts_with(target));
    }
}

/// Copies the build machine's file `source` (a regular file of at most
/// [`saferoot::ENV_LIMIT`] bytes) to `target` under `m_dir` without following any link below
/// `m_dir`: a link at `target` (resolv.conf -> /run/...) is replaced, never written through.
fn copy_into(m_dir: &Path, source: &Path, target: &Path) -> Result<(), MountError> {
    use crate::saferoot::{self, Resolve, Root};
    let safe = |e: saferoot::SafeError| MountError::Io {
        path: target.to_path_buf(),
        source: e.into_io(),
    };
    let bytes = saferoot::read_file(source, saferoot::ENV_LIMIT).map_err(|e| MountError::Io {
        path: source.to_path_buf(),
        source: e.into_io(),
    })?;
    let rel = target.strip_prefix(m_dir).map_err(|_| MountError::Io {
        path: target.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not under M"),
    })?;
    Root::open(m_dir)
        .map_err(safe)?
        // Not fsynced: the copy is made again at every mount of the environment.
        .replace(rel, Resolve::NoSymlinks, &bytes, COPY_MODE, false)
        .map_err(safe)
}

/// Mounts `entries` in order under the anchor `m_dir` (mount points below it must not pass
/// through symbolic links), recording each mount point in `journal`. The journal is saved
/// into `run_dir` durably before a run's first mount (so `umount` finds `M` after any crash)
/// and, without fsync, after each batch: a durable save costs two fsyncs (~9 ms here), and
/// teardown reads the kernel's mount table, not the journal's list. Stops at the first
/// error; the caller then tears down `m_dir`.
///
/// Errors: [`MountError`] naming the mount point.
pub fn apply(
    sys: &dyn Sys,
    m_dir: &Path,
    entries: &[Entry],
    journal: &mut Journal,
    run_dir: &Path,
) -> Result<(), MountError> {
    if journal.mounts.is_empty() {
        journal.save(run_dir, true).map_err(io(run_dir))?;
    }
    let result = apply_entries(sys, m_dir, entries, journal);
    journal.save(run_dir, false).map_err(io(run_dir))?;
    result
}

/// Like [`apply`] for a journal shared by threads that mount at the same time (the waiting
/// targets' stacked environments): the journal is locked only to record and save the mount
/// points of the batch, after the mounts, so the threads' mounts do not wait for each other.
/// The journal must have been saved once already (the base mounts did that).
///
/// Errors: [`MountError`] naming the mount point.
pub fn apply_shared(
    sys: &dyn Sys,
    m_dir: &Path,
    entries: &[Entry],
    journal: &std::sync::Mutex<Journal>,
    run_dir: &Path,
) -> Result<(), MountError> {
    let mut batch = Journal {
        host_namespace: journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .host_namespace,
        ..Journal::default()
    };
    let result = apply_entries(sys, m_dir, entries, &mut batch);
    let mut journal = journal.lock().unwrap_or_else(|p| p.into_inner());
    journal.mounts.append(&mut batch.mounts);
    journal.save(run_dir, false).map_err(io(run_dir))?;
    result
}

fn apply_entries(
    sys: &dyn Sys,
    m_dir: &Path,
    entries: &[Entry],
    journal: &mut Journal,
) -> Result<(), MountError> {
    let mut seen = Seen::default();
    for entry in entries {
        let target = entry.target();
        let call = match entry {
            Entry::Copy { source, target } => {
                if !source.exists() {
                    continue;
                }
                if let Some(parent) = target.parent() {
                    seen.prepare_dir(m_dir, parent)?;
                }
                copy_into(m_dir, source, target)?;
                continue;
            }
            Entry::Image { file, target } => {
                seen.prepare_dir(m_dir, target)?;
                sys.mount_image(file, target, "squashfs")?;
                seen.mounted(target);
                journal.mounts.push(target.clone());
                continue;
            }
            Entry::Bind {
                source,
                target,
                recursive,
                readonly,
            } => {
                // A source inside an environment (the primary package database, a target's
                // root in the archive view) must not be a link: bound as it is, a link to `/`
                // would put the build machine's root into the environment or the history.
                if source.starts_with(m_dir) {
                    seen.check_no_symlink(m_dir, source).map_err(|e| match e {
                        MountError::Symlink { link, .. } => MountError::Symlink {
                            target: target.clone(),
                            link,
                        },
                        other => other,
                    })?;
                }
                // A file, or the job pool's fifo: bound on an empty file.
                if std::fs::metadata(source).is_ok_and(|m| !m.is_dir()) {
                    if let Some(parent) = target.parent() {
                        seen.prepare_dir(m_dir, parent)?;
                    }
                    seen.check_no_symlink(m_dir, target)?;
                    if !target.exists() {
                        std::fs::File::create(target).map_err(io(target))?;
                    }
                } else {
                    seen.prepare_dir(m_dir, target)?;
                }
                MountCall {
                    source: source.display().to_string(),
                    target: target.clone(),
                    fstype: None,
                    flags: MountFlags {
                        bind: true,
                        recursive: *recursive,
                        readonly: *readonly,
                    },
                    data: None,
                }
            }
            Entry::Tmpfs { target, options } => {
                seen.prepare_dir(m_dir, target)?;
                MountCall {
                    source: "tmpfs".into(),
                    target: target.clone(),
                    fstype: Some("tmpfs".into()),
                    flags: MountFlags::default(),
                    data: (!options.is_empty()).then(|| options.clone()),
                }
            }
            Entry::Proc { target } => {
                seen.prepare_dir(m_dir, target)?;
                MountCall {
                    source: "proc".into(),
                    target: target.clone(),
                    fstype: Some("proc".into()),
                    flags: MountFlags::default(),
                    data: None,
                }
            }
            Entry::Overlay {
                lower,
                upper,
                work,
                target,
            } => {
                for dir in [upper, work, target] {
                    seen.prepare_dir(m_dir, dir)?;
                }
                let lower: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
                MountCall {
                    source: "overlay".into(),
                    target: target.clone(),
                    fstype: Some("overlay".into()),
                    flags: MountFlags::default(),
                    data: Some(format!(
                        "lowerdir={},upperdir={},workdir={}",
                        lower.join(":"),
                        upper.display(),
                        work.display()
                    )),
                }
            }
        };
        // `M` itself is the anchor: its own mount point lies outside it.
        if target != m_dir {
            seen.check_no_symlink(m_dir, target)?;
        }
        sys.mount(&call)?;
        seen.mounted(target);
        journal.mounts.push(target.to_path_buf());
        // In a shared namespace (`--mount-hist`) `M` would otherwise share events with the
        // tree it lives in, and an rbind of /dev or /sys would join the host's peer group:
        // unmounting its children would then unmount the host's /dev/pts. Private `M` and
        // slave rbinds stop that (the Gentoo handbook's `--make-rslave`). A run's own
        // namespace is private throughout (made so when it is entered): there an rbind is
        // a private copy already, and making it a slave of nothing would only cost a walk
        // of its submounts under the kernel's mount lock, for every target.
        if target == m_dir {
            sys.set_propagation(target, Propagation::Private, false)?;
        } else if call.flags.bind && call.flags.recursive && journal.host_namespace {
            sys.set_propagation(target, Propagation::Slave, true)?;
        }
    }
    Ok(())
}

/// Decodes the octal escapes (`\040` for space) of a mountinfo path field.
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match escape {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The mount points at or below `dir` in a mountinfo text (proc(5) format, field 5), in the
/// order listed.
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape)
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Unmounts everything at or below `dir` in this process's mount namespace, deepest first
/// (reverse mountinfo order), in passes until nothing more goes; returns how many mounts were
/// removed. What stays busy is detached lazily only when `detach_busy` is set.
///
/// Errors: [`MountError::Busy`] naming what could not be removed.
pub fn teardown(sys: &dyn Sys, dir: &Path, detach_busy: bool) -> Result<usize, MountError> {
    let mut removed = 0;
    loop {
        let mounted = mounts_under(&sys.mount_table()?, dir);
        if mounted.is_empty() {
            return Ok(removed);
        }
        let mut progress = false;
        for target in mounted.iter().rev() {
            if sys.umount(target, false).is_ok() {
                removed += 1;
                progress = true;
            }
        }
        if !progress {
            let remaining = mounts_under(&sys.mount_table()?, dir);
            if detach_busy {
                for target in remaining.iter().rev() {
                    if sys.umount(target, true).is_ok() {
                        removed += 1;
                    }
                }
                let left = mounts_under(&sys.mount_table()?, dir);
                if left.is_empty() {
                    return Ok(removed);
                }
            }
            return Err(MountError::Busy {
                dir: dir.to_path_buf(),
                count: remaining.len(),
                first: remaining
                    .last()
                    .cloned()
                    .unwrap_or_else(|| dir.to_path_buf()),
            });
        }
    }
}

/// The command that tears down the run whose mount directory is `m_dir`
/// (`<tree>/work/<run>/M`), typed from anywhere.
fn umount_hint(m_dir: &Path) -> String {
    let run = m_dir.parent();
    let name = run.and_then(|r| r.file_name()).map(|n| n.to_string_lossy());
    let tree = run.and_then(Path::parent).and_then(Path::parent);
    match (name, tree) {
        (Some(name), Some(tree)) => {
            format!("build-helper umount {name} --tree {}", tree.display())
        }
        _ => "build-helper umount --all".into(),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn busy_hint_names_the_run_and_its_tree() {
        assert_eq!(
            super::umount_hint(std::path::Path::new(
                "/srv/bh/work/demo-a-20261122-010414/M"
            )),
            "build-helper umount demo-a-20261122-010414 --tree /srv/bh"
        );
    }

    use super::*;

    #[test]
    fn mounts_under_decodes_escapes_and_keeps_order() {
        let info = "22 1 0:21 / /proc rw - proc proc rw\n\
            40 1 0:30 / /w/M rw - tmpfs tmpfs rw\n\
            41 40 0:31 / /w/M/m\\040x rw - overlay overlay rw\n\
            42 41 0:5 / /w/M/m\\040x/dev rw - devtmpfs udev rw\n\
            43 1 0:32 / /w/Mother rw - tmpfs tmpfs rw\n";
        let got = mounts_under(info, Path::new("/w/M"));
        assert_eq!(
            got,
            vec![
                PathBuf::from("/w/M"),
                PathBuf::from("/w/M/m x"),
                PathBuf::from("/w/M/m x/dev")
            ]
        );
    }

    #[test]
    fn apply_refuses_mount_point_behind_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("M");
        std::fs::create_dir_all(m.join("m")).unwrap();
        std::os::unix::fs::symlink("/", m.join("m/run")).unwrap();
        let sys = crate::sys::RecordingSys::default();
        let mut journal = Journal::default();
        let entries = [Entry::Tmpfs {
            target: m.join("m/run/x"),
            options: String::new(),
        }];
        let err = apply(&sys, &m, &entries, &mut journal, dir.path()).unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        assert!(sys.take().is_empty());
    }

    #[test]
    fn apply_refuses_a_bind_source_behind_a_symlink_in_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("M");
        std::fs::create_dir_all(m.join("m/usr")).unwrap();
        std::fs::create_dir_all(m.join("b")).unwrap();
        std::os::unix::fs::symlink("/", m.join("m/usr/x86_64-unknown-linux-musl.b")).unwrap();
        let sys = crate::sys::RecordingSys::default();
        let entries = [Entry::Bind {
            source: m.join("m/usr/x86_64-unknown-linux-musl.b"),
            target: m.join("b/usr/x86_64-unknown-linux-musl.b"),
            recursive: false,
            readonly: false,
        }];
        let err = apply(&sys, &m, &entries, &mut Journal::default(), dir.path()).unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        assert!(sys.take().is_empty());
    }

    #[test]
    fn seen_directories_are_forgotten_below_a_new_mount() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("M");
        let mut seen = Seen::default();
        seen.prepare_dir(&m, &m.join("t/m/var/tmp")).unwrap();
        for p in ["t", "t/m", "t/m/var", "t/m/var/tmp"] {
            assert!(seen.0.contains(&m.join(p)), "{p}");
        }
        // A filesystem mounted on `t/m` hides what was seen below it: a link there now is
        // found again.
        seen.mounted(&m.join("t/m"));
        assert!(seen.0.contains(&m.join("t/m")));
        assert!(!seen.0.contains(&m.join("t/m/var")));
        std::fs::remove_dir_all(m.join("t/m/var")).unwrap();
        std::os::unix::fs::symlink("/", m.join("t/m/var")).unwrap();
        let err = seen.prepare_dir(&m, &m.join("t/m/var/tmp")).unwrap_err();
        assert!(
            matches!(&err, MountError::Symlink { link, .. } if link == &m.join("t/m/var")),
            "{err}"
        );
        assert!(!seen.0.contains(&m.join("t/m/var")));
    }

    #[test]
    fn teardown_unmounts_deepest_first_until_nothing_is_left() {
        let sys = crate::sys::RecordingSys::default();
        for p in ["/w/M", "/w/M/m", "/w/M/m/proc", "/w/M/m/dev", "/w/Mother"] {
            sys.add_mounted(Path::new(p));
        }
        assert_eq!(teardown(&sys, Path::new("/w/M"), false).unwrap(), 4);
        assert_eq!(
            sys.take_lines(),
            [
                "umount /w/M/m/dev",
                "umount /w/M/m/proc",
                "umount /w/M/m",
                "umount /w/M"
            ]
        );
        assert_eq!(sys.mounted(), [PathBuf::from("/w/Mother")]);
    }

    #[test]
    fn a_busy_mount_is_named_and_detached_only_when_asked() {
        let sys = crate::sys::RecordingSys::default();
        for p in ["/w/M", "/w/M/m", "/w/M/m/proc"] {
            sys.add_mounted(Path::new(p));
        }
        sys.fail_at(Path::new("/w/M/m"));
        let err = teardown(&sys, Path::new("/w/M"), false).unwrap_err();
        assert!(
            matches!(&err, MountError::Busy { count: 2, first, .. } if first == Path::new("/w/M/m")),
            "{err}"
        );
        assert!(err.to_string().contains("fuser -vm /w/M/m"), "{err}");
        assert_eq!(teardown(&sys, Path::new("/w/M"), true).unwrap(), 2);
        assert!(sys.mounted().is_empty());
    }

    #[test]
    fn a_mount_failing_half_way_keeps_the_journal_of_what_was_mounted() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("M");
        let entries: Vec<Entry> = ["a", "b", "c"]
            .iter()
            .map(|n| Entry::Tmpfs {
                target: m.join(n),
                options: String::new(),
            })
            .collect();
        let sys = crate::sys::RecordingSys::default();
        sys.fail_at(&m.join("b"));
        let mut journal = Journal {
            m_dir: m.clone(),
            ..Journal::default()
        };
        let err = apply(&sys, &m, &entries, &mut journal, dir.path()).unwrap_err();
        assert!(
            err.to_string().contains(&m.join("b").display().to_string()),
            "{err}"
        );
        assert_eq!(journal.mounts, [m.join("a")]);
        let saved = Journal::load(dir.path()).unwrap().unwrap();
        assert_eq!(
            saved.mounts,
            [m.join("a")],
            "the journal on disk knows the first mount"
        );
        // What was mounted before the failure is torn down.
        assert_eq!(teardown(&sys, &m, false).unwrap(), 1);
        assert!(sys.mounted().is_empty());
    }

    #[test]
    fn targets_mounted_at_the_same_time_each_land_in_the_journal_once_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("M");
        let sys = crate::sys::RecordingSys::default();
        let mut journal = Journal {
            m_dir: m.clone(),
            ..Journal::default()
        };
        apply(&sys, &m, &[], &mut journal, dir.path()).unwrap();
        let journal = std::sync::Mutex::new(journal);
        let batch = |t: &str| -> Vec<Entry> {
            (0..20)
                .map(|k| Entry::Tmpfs {
                    target: m.join(t).join(k.to_string()),
                    options: String::new(),
                })
                .collect()
        };
        std::thread::scope(|s| {
            for t in ["t1", "t2", "t3", "t4"] {
                let (sys, m, journal, entries, run) = (&sys, &m, &journal, batch(t), dir.path());
                s.spawn(move || apply_shared(sys, m, &entries, journal, run).unwrap());
            }
        });
        let saved = Journal::load(dir.path()).unwrap().unwrap();
        assert_eq!(saved.mounts.len(), 80);
        for t in ["t1", "t2", "t3", "t4"] {
            let mine: Vec<&PathBuf> = saved
                .mounts
                .iter()
                .filter(|p| p.starts_with(m.join(t)))
                .collect();
            let want: Vec<PathBuf> = batch(t).iter().map(|e| e.target().to_path_buf()).collect();
            assert_eq!(mine, want.iter().collect::<Vec<_>>(), "{t}");
        }
        assert_eq!(teardown(&sys, &m, false).unwrap(), 80);
    }

    #[test]
    fn m_becomes_private_and_rbinds_become_slaves_in_a_shared_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("M");
        let entries = [
            Entry::Tmpfs {
                target: m.clone(),
                options: String::new(),
            },
            Entry::Bind {
                source: "/dev".into(),
                target: m.join("m/dev"),
                recursive: true,
                readonly: false,
            },
        ];
        // `--mount-hist`: the build machine's namespace.
        let sys = crate::sys::RecordingSys::default();
        let mut shared = Journal {
            host_namespace: true,
            ..Journal::default()
        };
        apply(&sys, &m, &entries, &mut shared, dir.path()).unwrap();
        use crate::sys::{Call, Propagation};
        let calls = sys.take();
        assert_eq!(calls.len(), 4, "{calls:?}");
        assert_eq!(
            calls[1],
            Call::Propagation {
                target: m.clone(),
                kind: Propagation::Private,
                recursive: false
            }
        );
        assert_eq!(
            calls[3],
            Call::Propagation {
                target: m.join("m/dev"),
                kind: Propagation::Slave,
                recursive: true
            }
        );
        // A run's own namespace is private throughout: the rbind is private already.
        let sys = crate::sys::RecordingSys::default();
        apply(&sys, &m, &entries, &mut Journal::default(), dir.path()).unwrap();
        let calls = sys.take();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert!(!matches!(calls[2], Call::Propagation { .. }), "{calls:?}");
    }
}
