//! Filling a stacked environment's upper layer before its overlay is mounted.
//!
//! A waiting target's environment ([`super::Layout::secondary_stacked_entries`]) is mounted
//! only once its toolchain is ready, and every waiting target of that tuple is mounted at
//! the same moment. Made through the overlay, each mount point that the lower layer lacks
//! and each copied file ([`Entry::Copy`]) is a copy-up: the directories above it are copied
//! into the upper layer (mode, owner, times, extended attributes), then the new entry is
//! made there, all of it journaled by the upper layer's filesystem on the build machine's
//! disk. [`fill_upper`] makes exactly those directories and files in the upper layer
//! directly, while the target waits and its overlay is not mounted: "Offline changes, when
//! the overlay is not mounted, are allowed to the upper tree" (the kernel's
//! Documentation/filesystems/overlayfs.rst, "Changes to underlying filesystems"). The mount
//! then finds them in place: it only checks them ([`super::exec`]) and leaves out the copies
//! made here ([`Filled::not_copied`]).
//!
//! A directory is made as a copy-up makes it: with the mode, owner, extended attributes
//! (not overlayfs' own `trusted.overlay.*`) and times of the lower layer's directory. Only
//! the mount point itself (or the copied file) may be missing from the lower layer: a
//! directory above it that the lower layer lacks is left alone, so that nothing in the upper
//! layer shadows a directory the toolchain makes later (`usr/<tuple>`). Best effort: a path
//! that cannot be made here (a link, a whiteout or a file on the way in either layer, an I/O
//! error) is left to the mount, which makes it or refuses it exactly as without this step.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::plan::Entry;
use crate::saferoot::{self, Resolve, Root};

/// What [`fill_upper`] made.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filled {
    /// Directories made in the upper layer.
    pub dirs: usize,
    /// The copies ([`Entry::Copy`]) made in the upper layer: their targets (under the
    /// overlay's mount point). The mount leaves them out ([`Filled::not_copied`]).
    pub copied: Vec<PathBuf>,
}

impl Filled {
    /// `stacked` without the copies made in the upper layer already.
    pub fn not_copied(&self, stacked: &[Entry]) -> Vec<Entry> {
        stacked
            .iter()
            .filter(|e| !matches!(e, Entry::Copy { target, .. } if self.copied.contains(target)))
            .cloned()
            .collect()
    }
}

/// Fills the upper layer of `stacked` (an [`Entry::Overlay`] with one lower layer, then what
/// is mounted or copied into it, as [`super::Layout::secondary_stacked_entries`] gives) with
/// the mount points' directories and the copied files, as the module says. The overlay must
/// not be mounted. Never fails: what it cannot make is left to the mount.
pub fn fill_upper(stacked: &[Entry]) -> Filled {
    let mut filled = Filled::default();
    let Some(Entry::Overlay {
        lower,
        upper,
        target: root,
        ..
    }) = stacked.first()
    else {
        return filled;
    };
    let [lower] = lower.as_slice() else {
        return filled;
    };
    // Made here before a first mount (the overlay's mount would make it).
    match std::fs::symlink_metadata(upper) {
        Ok(meta) if meta.is_dir() => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::create_dir(upper).is_err() {
                return filled;
            }
        }
        _ => return filled,
    }
    // Mount points so far: what is mounted or copied below one lands in that mount, not in
    // the upper layer.
    let mut mounted: Vec<&Path> = Vec::new();
    for entry in &stacked[1..] {
        let target = entry.target();
        let below_a_mount = mounted
            .iter()
            .any(|m| target != *m && target.starts_with(m));
        let Ok(rel) = target.strip_prefix(root) else {
            continue;
        };
        if !below_a_mount && !rel.as_os_str().is_empty() {
            let layers = Layers { lower, upper };
            match entry {
                Entry::Copy { source, .. } => {
                    if let Some(parent) = rel.parent() {
                        if layers.make_dirs(parent, false, &mut filled) && layers.copy(source, rel)
                        {
                            filled.copied.push(target.to_path_buf());
                        }
                    }
                }
                // A file bound onto a file: only its directory.
                Entry::Bind { source, .. } if !source.is_dir() => {
                    if let Some(parent) = rel.parent() {
                        layers.make_dirs(parent, false, &mut filled);
                    }
                }
                Entry::Overlay { .. } => {}
                _ => {
                    layers.make_dirs(rel, true, &mut filled);
                }
            }
        }
        if !matches!(entry, Entry::Copy { .. }) {
            mounted.push(target);
        }
    }
    filled
}

/// The overlay's two layers.
struct Layers<'a> {
    lower: &'a Path,
    upper: &'a Path,
}

impl Layers<'_> {
    /// Makes `rel` and every directory above it in the upper layer, each as a copy-up of
    /// the lower layer's; the last component may be missing from the lower layer when
    /// `new_leaf` (a mount point), then it is made as mkdir(2) through the overlay makes it.
    /// False when a component is anything but a directory in either layer, when a directory
    /// above the leaf is missing from the lower layer, or on an error.
    fn make_dirs(&self, rel: &Path, new_leaf: bool, filled: &mut Filled) -> bool {
        let parts: Vec<Component> = rel.components().collect();
        if parts.iter().any(|c| !matches!(c, Component::Normal(_))) {
            return false;
        }
        // Looked at whole before anything is made: a path refused on the way makes nothing.
        let mut todo: Vec<(PathBuf, Option<std::fs::Metadata>)> = Vec::new();
        let mut path = PathBuf::new();
        for (i, part) in parts.iter().enumerate() {
            path.push(part);
            match std::fs::symlink_metadata(self.upper.join(&path)) {
                Ok(meta) if meta.is_dir() => continue,
                // A link, a file or a whiteout (a character device): the mount decides.
                Ok(_) => return false,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => return false,
            }
            match std::fs::symlink_metadata(self.lower.join(&path)) {
                Ok(meta) if meta.is_dir() => todo.push((path.clone(), Some(meta))),
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        && new_leaf
                        && i + 1 == parts.len() =>
                {
                    todo.push((path.clone(), None))
                }
                _ => return false,
            }
        }
        for (path, meta) in todo {
            let up = self.upper.join(&path);
            let made = match meta {
                Some(meta) => copy_up_dir(&self.lower.join(&path), &meta, &up),
                None => std::fs::create_dir(&up).is_ok(),
            };
            if !made {
                return false;
            }
            filled.dirs += 1;
        }
        true
    }

    /// Writes the build machine's file `source` to `rel` in the upper layer (mode 0644, as
    /// the mount's copy writes it), never through a link. False when `source` is missing or
    /// unreadable or the write fails.
    fn copy(&self, source: &Path, rel: &Path) -> bool {
        let Ok(bytes) = saferoot::read_file(source, saferoot::ENV_LIMIT) else {
            return false;
        };
        Root::open(self.upper)
            .and_then(|root| root.replace(rel, Resolve::NoSymlinks, &bytes, COPY_MODE, false))
            .is_ok()
    }
}

/// The mode of a file copied into an environment ([`Entry::Copy`]).
pub(super) const COPY_MODE: u32 = 0o644;

/// Makes `up` as a copy-up of the lower layer's directory `low` (its metadata `meta`):
/// owner, mode, extended attributes but overlayfs' own, then the times. Removes `up` again
/// when any of it fails.
fn copy_up_dir(low: &Path, meta: &std::fs::Metadata, up: &Path) -> bool {
    use nix::sys::stat::{fchmodat, utimensat, FchmodatFlags, Mode, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    if std::fs::create_dir(up).is_err() {
        return false;
    }
    let done = (|| -> Option<()> {
        std::os::unix::fs::lchown(up, Some(meta.uid()), Some(meta.gid())).ok()?;
        fchmodat(
            None,
            up,
            Mode::from_bits_truncate(meta.mode() & 0o7777),
            FchmodatFlags::NoFollowSymlink,
        )
        .ok()?;
        for name in xattr::list(low).ok()? {
            if name.as_encoded_bytes().starts_with(b"trusted.overlay.") {
                continue;
            }
            if let Some(value) = xattr::get(low, &name).ok()? {
                xattr::set(up, &name, &value).ok()?;
            }
        }
        utimensat(
            None,
            up,
            &TimeSpec::new(meta.atime(), meta.atime_nsec()),
            &TimeSpec::new(meta.mtime(), meta.mtime_nsec()),
            UtimensatFlags::NoFollowSymlink,
        )
        .ok()
    })();
    if done.is_none() {
        let _ = std::fs::remove_dir(up);
    }
    done.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stacked layout of `m` over `l` (upper `u`) under `dir`, with a bind, a tmpfs inside
    /// it, and a copy of `src`.
    fn stacked(dir: &Path, src: &Path) -> Vec<Entry> {
        let root = dir.join("m");
        vec![
            Entry::Overlay {
                lower: vec![dir.join("l")],
                upper: dir.join("u"),
                work: dir.join("w"),
                target: root.clone(),
            },
            Entry::Bind {
                source: dir.to_path_buf(),
                target: root.join("tree/binpkgs/x86_64-unknown-linux-musl.b"),
                recursive: false,
                readonly: false,
            },
            Entry::Tmpfs {
                target: root.join("var/tmp"),
                options: String::new(),
            },
            Entry::Tmpfs {
                target: root.join("var/tmp/portage"),
                options: String::new(),
            },
            Entry::Proc {
                target: root.join("proc"),
            },
            Entry::Copy {
                source: src.to_path_buf(),
                target: root.join("var/lib/portage/world"),
            },
            Entry::Tmpfs {
                target: root.join("usr/x86_64-unknown-linux-musl/tmp/portage"),
                options: String::new(),
            },
        ]
    }

    /// A temporary directory holding `world`, the build machine's file to copy, and its path.
    fn with_world(text: &str) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("world");
        std::fs::write(&src, text).unwrap();
        (tmp, src)
    }

    #[test]
    fn mount_points_and_copies_are_made_in_the_upper_layer_as_a_copy_up_makes_them() {
        let (tmp, src) = with_world("app-misc/hello\n");
        let dir = tmp.path();
        let l = dir.join("l");
        for d in ["tree/binpkgs", "var/tmp", "var/lib/portage", "proc", "usr"] {
            std::fs::create_dir_all(l.join(d)).unwrap();
        }
        std::fs::set_permissions(l.join("var/tmp"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        std::fs::set_permissions(l.join("tree"), std::fs::Permissions::from_mode(0o750)).unwrap();
        xattr::set(l.join("var/lib"), "user.bh-test", b"kept").ok();
        // No upper layer yet (a first mount): it is made.

        let filled = fill_upper(&stacked(dir, &src));

        let u = dir.join("u");
        let mode = |p: &str| std::fs::metadata(u.join(p)).unwrap().permissions().mode() & 0o7777;
        // The lower layer's modes, the new mount point as mkdir makes it.
        assert_eq!(mode("tree"), 0o750);
        assert_eq!(mode("var/tmp"), 0o1777);
        assert!(u.join("tree/binpkgs/x86_64-unknown-linux-musl.b").is_dir());
        assert!(u.join("proc").is_dir());
        assert_eq!(
            std::fs::read_to_string(u.join("var/lib/portage/world")).unwrap(),
            "app-misc/hello\n"
        );
        assert_eq!(mode("var/lib/portage/world"), 0o644);
        if xattr::get(l.join("var/lib"), "user.bh-test")
            .ok()
            .flatten()
            .is_some()
        {
            assert_eq!(
                xattr::get(u.join("var/lib"), "user.bh-test").unwrap(),
                Some(b"kept".to_vec())
            );
        }
        // Inside the var/tmp tmpfs: not in the upper layer.
        assert!(!u.join("var/tmp/portage").exists());
        // usr/<tuple> is the toolchain's to make: nothing shadows it, nothing is made above.
        assert!(!u.join("usr").exists());
        let world = dir.join("m/var/lib/portage/world");
        assert_eq!(
            filled,
            Filled {
                // tree, tree/binpkgs, the binpkgs mount point, var, var/tmp, proc, var/lib,
                // var/lib/portage
                dirs: 8,
                copied: vec![world.clone()],
            }
        );
        // The mount leaves out the copy made, and only that.
        let rest = filled.not_copied(&stacked(dir, &src));
        assert_eq!(rest.len(), stacked(dir, &src).len() - 1);
        assert!(rest.iter().all(|e| e.target() != world));
    }

    #[test]
    fn a_link_on_the_way_in_either_layer_is_left_to_the_mount() {
        let (tmp, src) = with_world("x\n");
        let dir = tmp.path();
        let l = dir.join("l");
        std::fs::create_dir_all(l.join("var/lib/portage")).unwrap();
        std::fs::create_dir_all(l.join("proc")).unwrap();
        // A link planted in the lower layer where a mount point's directory lies.
        std::os::unix::fs::symlink("/", l.join("tree")).unwrap();
        // A link in the upper layer (left by an earlier attempt's steps).
        std::fs::create_dir_all(dir.join("u/var")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("u/var/lib")).unwrap();

        let filled = fill_upper(&stacked(dir, &src));

        let u = dir.join("u");
        assert!(
            !u.join("tree").exists(),
            "nothing made through the lower link"
        );
        assert!(std::fs::symlink_metadata(u.join("var/lib"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(!dir.join("u/var/lib/portage").exists());
        // Only proc and var/tmp (var is there already) were made.
        assert_eq!(
            filled,
            Filled {
                dirs: 2,
                copied: vec![]
            }
        );
    }
}
