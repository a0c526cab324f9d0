//! The world tree: which stacked world builds on which, and the order to build them in.
//!
//! Pure: the input is the map read from `worlds/tree/` (world -> parent), the output a build
//! order or every error found. Reading files and naming paths is the loader's job
//! ([`crate::config::load_target`]). Rules from docs/configuration.md ("worlds/").

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The root of every world tree: the base image, which has no tree entry.
pub const ROOT: &str = "base";

/// A reason the world tree has no valid order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeError {
    /// `world` builds on `parent`, which is neither [`ROOT`] nor a world of the map.
    UnknownParent { world: String, parent: String },
    /// Worlds that build on each other in a ring: each entry's parent is the next one, the
    /// last one's parent is the first. Rotated so the smallest name comes first.
    Cycle(Vec<String>),
}

impl fmt::Display for TreeError {
    /// `UnknownParent`: a sentence naming both worlds; `Cycle`: `cycle a -> b -> a`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeError::UnknownParent { world, parent } => write!(
                f,
                "world `{world}` builds on `{parent}`, which is neither `{ROOT}` nor a world \
                 with a tree entry"
            ),
            TreeError::Cycle(ring) => {
                write!(f, "cycle {}", ring.join(" -> "))?;
                match ring.first() {
                    Some(first) => write!(f, " -> {first}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Orders the worlds of `parents` (world -> the world it builds on) so that every world
/// comes after its parent. Among the worlds whose parent is already placed, the smallest
/// name goes first, so the order is reproducible. A key equal to [`ROOT`] is ignored.
///
/// # Errors
/// Every [`TreeError::UnknownParent`] (sorted by world) and every distinct
/// [`TreeError::Cycle`]. Worlds that only hang below such an error are not reported again.
pub fn order(parents: &BTreeMap<String, String>) -> Result<Vec<String>, Vec<TreeError>> {
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (world, parent) in parents.iter().filter(|(w, _)| w.as_str() != ROOT) {
        children
            .entry(parent.as_str())
            .or_default()
            .push(world.as_str());
    }
    let mut ready: BTreeSet<&str> = children.get(ROOT).into_iter().flatten().copied().collect();
    let mut placed: Vec<String> = Vec::new();
    while let Some(world) = ready.pop_first() {
        placed.push(world.to_owned());
        ready.extend(children.get(world).into_iter().flatten().copied());
    }

    let done: BTreeSet<&str> = placed.iter().map(String::as_str).collect();
    let mut unknown = BTreeSet::new();
    let mut cycles = BTreeSet::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for start in parents.keys().map(String::as_str) {
        if start == ROOT || done.contains(start) || seen.contains(start) {
            continue;
        }
        // Walk up the parent chain until it leaves the map, loops, or meets a walked world.
        let mut path: Vec<&str> = Vec::new();
        let mut current = start;
        loop {
            if let Some(at) = path.iter().position(|&w| w == current) {
                cycles.insert(rotate_smallest_first(&path[at..]));
                break;
            }
            if seen.contains(current) {
                break;
            }
            let Some(parent) = parents.get(current) else {
                if let Some(&child) = path.last() {
                    unknown.insert((child.to_owned(), current.to_owned()));
                }
                break;
            };
            path.push(current);
            current = parent.as_str();
        }
        seen.extend(path);
    }

    if unknown.is_empty() && cycles.is_empty() {
        return Ok(placed);
    }
    let mut errors: Vec<TreeError> = unknown
        .into_iter()
        .map(|(world, parent)| TreeError::UnknownParent { world, parent })
        .collect();
    errors.extend(cycles.into_iter().map(TreeError::Cycle));
    Err(errors)
}

fn rotate_smallest_first(ring: &[&str]) -> Vec<String> {
    let start = (0..ring.len()).min_by_key(|&i| ring[i]).unwrap_or(0);
    ring[start..]
        .iter()
        .chain(&ring[..start])
        .map(|w| (*w).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(w, p)| ((*w).to_owned(), (*p).to_owned()))
            .collect()
    }

    #[test]
    fn parents_come_first_and_ready_siblings_sort_by_name() {
        let tree = map(&[
            ("zz", "base"),
            ("desktop", "gui"),
            ("gui", "base"),
            ("aa", "base"),
        ]);
        assert_eq!(order(&tree).unwrap(), ["aa", "gui", "desktop", "zz"]);
    }

    #[test]
    fn empty_tree_has_empty_order() {
        assert_eq!(order(&BTreeMap::new()).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn cycle_is_printed_as_a_ring() {
        let tree = map(&[("b", "a"), ("a", "b"), ("c", "a"), ("ok", "base")]);
        let errors = order(&tree).unwrap_err();
        assert_eq!(errors, [TreeError::Cycle(vec!["a".into(), "b".into()])]);
        assert_eq!(errors[0].to_string(), "cycle a -> b -> a");
    }

    #[test]
    fn self_parent_is_a_cycle() {
        let errors = order(&map(&[("x", "x")])).unwrap_err();
        assert_eq!(errors[0].to_string(), "cycle x -> x");
    }

    #[test]
    fn unknown_parent_is_reported_once_for_its_child() {
        let tree = map(&[("a", "nowhere"), ("b", "a"), ("c", "b")]);
        assert_eq!(
            order(&tree).unwrap_err(),
            [TreeError::UnknownParent {
                world: "a".into(),
                parent: "nowhere".into()
            }]
        );
    }
}
