//! The worlds of a target configuration (`worlds/`): the stacked worlds in tree order, the
//! kernel world and its kernel package, and the other atom files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use super::files::{self, Kind};
use super::tree::{self, TreeError};
use super::Report;

/// The kernel packages a `worlds/kernel` may name, exactly one of them.
pub const KERNEL_PACKAGES: [&str; 6] = [
    "sys-kernel/gentoo-kernel",
    "sys-kernel/gentoo-kernel-bin",
    "sys-kernel/gentoo-sources",
    "sys-kernel/git-sources",
    "sys-kernel/raspberrypi-sources",
    "sys-kernel/raspberrypi-image",
];

/// Worlds that are not stacked images, so they need no tree entry.
const NOT_IMAGES: [&str; 3] = ["base", "kernel", "rust.clean"];

/// Names a stacked world's image may not take: they are the other artifacts of
/// `builds/<tuple>.<name>.<date>/` (`initramfs`, `kernel`, `EFI`, `boot`, and `config`, the
/// optional configuration image the original's `initramfs/init` scripts mount), so an image
/// of that name would overwrite or shadow one of them.
pub const RESERVED_IMAGE_NAMES: [&str; 5] = ["config", "initramfs", "kernel", "EFI", "boot"];

/// A stacked world: `worlds/<name>`, built on `parent` (`worlds/tree/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct World {
    pub name: String,
    /// `base` or another world's name.
    pub parent: String,
    /// The atoms and sets of `worlds/<name>`, comments and blank lines removed.
    pub atoms: Vec<String>,
}

/// The atoms of an optional world file (empty when missing).
pub(super) fn optional_atoms(r: &mut Report, path: &Path) -> Vec<String> {
    if matches!(files::kind(path), Ok(Kind::Missing)) {
        return Vec::new();
    }
    files::read_atoms(r, path).unwrap_or_default()
}

/// The kernel package named in `worlds/kernel`; two different ones are an error.
pub(super) fn kernel_package(r: &mut Report, path: &Path, atoms: &[String]) -> Option<String> {
    let found: BTreeSet<&str> = atoms.iter().filter_map(|a| kernel_package_of(a)).collect();
    if found.len() > 1 {
        let list: Vec<&str> = found.iter().copied().collect();
        r.error(
            path,
            None,
            format!(
                "names {} kernel packages ({}); keep exactly one",
                found.len(),
                list.join(", ")
            ),
        );
    }
    found.first().map(|p| (*p).to_owned())
}

/// Which of [`KERNEL_PACKAGES`] an atom names, ignoring operators, versions, slots, repos
/// and USE dependencies; bare package names count as `sys-kernel/`.
fn kernel_package_of(atom: &str) -> Option<&'static str> {
    let atom = atom.trim_start_matches(['>', '<', '=', '~', '!']);
    let atom = atom.split([':', '[']).next().unwrap_or_default();
    KERNEL_PACKAGES.into_iter().find(|&full| {
        let short = full.trim_start_matches("sys-kernel/");
        [full, short]
            .into_iter()
            .any(|name| match atom.strip_prefix(name) {
                Some("") => true,
                Some(rest) => rest
                    .strip_prefix('-')
                    .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit())),
                None => false,
            })
    })
}

/// The stacked worlds in build order, from `worlds/tree/` and the world files.
pub(super) fn stacked_worlds(r: &mut Report, worlds_dir: &Path) -> Vec<World> {
    let tree_dir = worlds_dir.join("tree");
    let world_files = files::names(r, worlds_dir, |k| k != Kind::Dir);
    if matches!(files::kind(&tree_dir), Ok(Kind::Missing)) {
        // The original builds no stacked image then; say so once instead of per world.
        let message = "missing, so no stacked world image is built (an empty world tree); \
                       create it with one file per stacked world naming its parent to build some";
        r.warn(&tree_dir, None, message);
        return Vec::new();
    }
    if !files::require(
        r,
        &tree_dir,
        Kind::Dir,
        "the world tree: one file per stacked world naming its parent; may be empty",
    ) {
        return Vec::new();
    }
    let mut parents = BTreeMap::new();
    for world in files::names(r, &tree_dir, |k| k != Kind::Dir) {
        let entry = tree_dir.join(&world);
        if NOT_IMAGES.contains(&world.as_str()) {
            r.error(
                &entry,
                None,
                format!("`{world}` is not a stacked world and has no tree entry; remove this file"),
            );
            continue;
        }
        if RESERVED_IMAGE_NAMES.contains(&world.as_str()) {
            r.error(
                &entry,
                None,
                format!(
                    "`{world}` names another artifact of the build directory, so its image \
                     would collide with it; rename worlds/{world} and this entry"
                ),
            );
            continue;
        }
        if !world_files.contains(&world) {
            r.error(
                &entry,
                None,
                format!(
                    "names world `{world}`, but {} does not exist; create it or remove this entry",
                    worlds_dir.join(&world).display()
                ),
            );
        }
        let Some(text) = files::read_text(r, &entry) else {
            continue;
        };
        match text.split_whitespace().collect::<Vec<_>>().as_slice() {
            [parent] => {
                parents.insert(world, (*parent).to_owned());
            }
            [] => r.error(
                &entry,
                None,
                "is empty; write the name of the world this one builds on \
                 (`base` or another world)",
            ),
            words => {
                let message = format!(
                    "holds {} words (`{}`); write exactly one: the world this one builds on",
                    words.len(),
                    words.join(" ")
                );
                r.error(&entry, None, message);
            }
        }
    }
    for world in &world_files {
        if !NOT_IMAGES.contains(&world.as_str()) && !parents.contains_key(world) {
            let message = format!(
                "has no tree entry ({}), so it is not built; add one naming its parent, \
                 e.g. `base`",
                tree_dir.join(world).display()
            );
            r.warn(worlds_dir.join(world), None, message);
        }
    }
    let order = match tree::order(&parents) {
        Ok(order) => order,
        Err(errors) => {
            for e in errors {
                let first = match &e {
                    TreeError::UnknownParent { world, .. } => world.clone(),
                    TreeError::Cycle(ring) => ring.first().cloned().unwrap_or_default(),
                };
                r.error(
                    tree_dir.join(first),
                    None,
                    format!("{e}; fix the tree entries in {}", tree_dir.display()),
                );
            }
            return Vec::new();
        }
    };
    let mut worlds = Vec::new();
    for name in order {
        let path = worlds_dir.join(&name);
        let Some(parent) = parents.get(&name).cloned() else {
            continue;
        };
        if !world_files.contains(&name) {
            continue; // reported with its tree entry
        }
        let Some(atoms) = files::read_atoms(r, &path) else {
            continue;
        };
        if atoms.is_empty() {
            r.warn(&path, None, "holds no atoms; its image adds nothing");
        }
        worlds.push(World {
            name,
            parent,
            atoms,
        });
    }
    worlds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_package_matches_versions_slots_and_bare_names() {
        let cases = [
            (
                "sys-kernel/gentoo-sources",
                Some("sys-kernel/gentoo-sources"),
            ),
            (
                "=sys-kernel/gentoo-sources-6.6.1",
                Some("sys-kernel/gentoo-sources"),
            ),
            (
                "sys-kernel/gentoo-sources:6.6",
                Some("sys-kernel/gentoo-sources"),
            ),
            (
                ">=sys-kernel/gentoo-kernel-6.1[savedconfig]",
                Some("sys-kernel/gentoo-kernel"),
            ),
            (
                "sys-kernel/gentoo-kernel-bin",
                Some("sys-kernel/gentoo-kernel-bin"),
            ),
            ("gentoo-sources", Some("sys-kernel/gentoo-sources")),
            (
                "raspberrypi-image::gentoo",
                Some("sys-kernel/raspberrypi-image"),
            ),
            ("sys-kernel/linux-firmware", None),
            ("other/gentoo-sources", None),
        ];
        for (atom, want) in cases {
            assert_eq!(kernel_package_of(atom), want, "{atom}");
        }
    }
}
