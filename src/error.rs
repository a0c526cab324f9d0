//! The error that means "bad input": the command exits with status 2 and prints the message
//! (what, where, what to do). Every other error exits with status 1. Also how a message names
//! the tree in a command the user may type ([`tree_flag`]).

use std::path::Path;

/// Bad input from the user: a starter, a configuration, a name, a downloaded file that does
/// not verify. The message is complete as it stands.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Nothing to do: the command's request is already met (`run --resume RUN` of a finished
/// run). The command prints the message and exits with status 0, having changed nothing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NothingToDo(pub String);

/// ` --tree TREE` for a hint the user may type into their own shell, which need not have
/// BUILD_HELPER_TREE set (scripts/demo.sh sets it only for itself); empty when the current
/// directory is the tree, where the commands find it without the flag.
pub fn tree_flag(tree: &Path) -> String {
    let same = std::env::current_dir()
        .and_then(|cwd| cwd.canonicalize())
        .ok()
        .zip(tree.canonicalize().ok())
        .is_some_and(|(cwd, tree)| cwd == tree);
    if same {
        String::new()
    } else {
        format!(" --tree {}", tree.display())
    }
}
