//! `build-helper history`: lists, shows or prunes the saved histories.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cleanup;
use crate::error::UsageError;
use crate::history::{self, Meta};
use crate::starter::HistoryType;
use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    #[command(subcommand)]
    pub action: Action,
    /// The tree (default: BUILD_HELPER_TREE, else the current directory).
    #[arg(long, global = true)]
    pub tree: Option<PathBuf>,
}

/// What `history` does.
#[derive(clap::Subcommand)]
pub(super) enum Action {
    /// One line per history: name, date, type, size, targets, starter.
    List,
    /// Everything about one history, with its step durations.
    Show {
        /// The history's name, or `latest` for the newest.
        name: String,
    },
    /// Remove all but the newest N histories (never one a run uses).
    Prune {
        /// How many to keep.
        #[arg(long)]
        keep: usize,
    },
}

/// Runs the action.
pub(super) fn run(args: Args, _sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    let tree = super::tree_arg(args.tree);
    match args.action {
        Action::List => list(&tree),
        Action::Show { name } => show(&tree, &name)?,
        Action::Prune { keep } => prune(&tree, keep)?,
    }
    Ok(0)
}

fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

fn kind_word(k: HistoryType) -> &'static str {
    match k {
        HistoryType::Squashfs => "squashfs",
        HistoryType::Files => "files",
    }
}

/// Prints one line per history, oldest first: name, date, type, size, targets, starter (from
/// the metadata; `-` where a history has none).
fn list(tree: &Path) {
    let entries = history::list(tree);
    let partials = history::partials(tree);
    for p in &partials {
        println!(
            "{}: partial archive ({}), not a history: left by an archive that did not finish; \
             `build-helper umount` removes it",
            p.display(),
            human(history::meta::size_of(p))
        );
    }
    if entries.is_empty() {
        println!("no history in {}", tree.join("history").display());
        return;
    }
    println!(
        "{:<17} {:<20} {:<8} {:>10}  targets / starter",
        "name", "created", "type", "size"
    );
    for e in entries {
        let meta = Meta::load(&e.path);
        let size = meta
            .as_ref()
            .map(|m| m.size_bytes)
            .unwrap_or_else(|| history::meta::size_of(&e.path));
        let created = meta
            .as_ref()
            .map(|m| {
                m.created
                    .chars()
                    .take(19)
                    .collect::<String>()
                    .replace('T', " ")
            })
            .unwrap_or_else(|| "-".into());
        let (targets, starter) = match &meta {
            Some(m) => (m.targets.join(" "), m.starter.display().to_string()),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<17} {:<20} {:<8} {:>10}  {targets} ({starter})",
            e.name,
            created,
            kind_word(e.kind),
            human(size)
        );
    }
}

/// Prints everything known about one history (`latest`: the newest), step durations
/// included, in the order the steps ran.
///
/// Errors: [`UsageError`] for an unknown name.
fn show(tree: &Path, name: &str) -> anyhow::Result<()> {
    let all = history::list(tree);
    let entry = if name == "latest" {
        all.into_iter().last()
    } else {
        all.into_iter().find(|e| e.name == name)
    };
    let entry = entry.ok_or_else(|| {
        UsageError(format!(
            "history `{name}` does not exist in {}; `build-helper history list` shows them",
            tree.join("history").display()
        ))
    })?;
    println!("name     {}", entry.name);
    println!("path     {}", entry.path.display());
    println!("type     {}", kind_word(entry.kind));
    let Some(m) = Meta::load(&entry.path) else {
        println!("size     {}", human(history::meta::size_of(&entry.path)));
        println!("(no metadata: not made by build-helper run)");
        return Ok(());
    };
    println!("size     {}", human(m.size_bytes));
    println!("created  {}", m.created);
    println!("run      {}", m.run_id);
    println!("starter  {}", m.starter.display());
    println!(
        "based on {}",
        m.based_on.as_deref().unwrap_or("a stage3 (first build)")
    );
    println!("tool     build-helper {}", m.tool_version);
    if let Some(c) = &m.compression {
        println!("archive  {c}, {:.1} s", m.archive_ms as f64 / 1000.0);
    }
    for (target, steps) in &m.step_ms {
        println!("{target}:");
        for (step, ms) in steps {
            println!("  {step:<20} {:>9.1} s", *ms as f64 / 1000.0);
        }
    }
    Ok(())
}

/// Removes all but the newest `keep` histories, never one a run is using, and the partial
/// archives interrupted archives left.
///
/// Errors: a removal failed.
fn prune(tree: &Path, keep: usize) -> anyhow::Result<()> {
    let busy = cleanup::histories_in_use(tree);
    for p in cleanup::remove_stale_partials(tree).map_err(anyhow::Error::msg)? {
        println!("removed {} (a partial archive)", p.display());
    }
    let removed = history::prune(tree, keep, &busy).map_err(anyhow::Error::msg)?;
    for p in &removed {
        println!("removed {}", p.display());
    }
    for p in busy {
        if history::list(tree).iter().any(|e| e.path == p) {
            println!("kept {} (a run uses it)", p.display());
        }
    }
    if removed.is_empty() {
        println!("nothing to remove");
    }
    Ok(())
}
