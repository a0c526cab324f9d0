//! `build-helper history list | show NAME | prune --keep N`.

use std::path::{Path, PathBuf};

use crate::error::UsageError;
use crate::history::{self, Meta};
use crate::starter::HistoryType;

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
pub fn list(tree: &Path) {
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
pub fn show(tree: &Path, name: &str) -> anyhow::Result<()> {
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

/// Histories a run may be using: those in the plan of an unfinished run or of a run with
/// mounts (its journal exists).
fn in_use(tree: &Path) -> Vec<PathBuf> {
    crate::rundir::runs(tree)
        .into_iter()
        .filter(|dir| {
            let unfinished = crate::rundir::load_checkpoint(dir, None).is_ok_and(|cp| !cp.finished);
            unfinished || crate::rundir::journal::Journal::path(dir).exists()
        })
        .filter_map(|dir| crate::rundir::load_plan(&dir).ok())
        .filter_map(|p| p.layout.history.map(|(path, _)| path))
        .collect()
}

/// The plan dates of `tree`'s live runs: a partial archive of one of these dates may be
/// being written right now.
fn archiving_dates(tree: &Path) -> Vec<String> {
    crate::rundir::runs(tree)
        .into_iter()
        .filter(|dir| crate::rundir::live_pid(dir).is_some())
        .filter_map(|dir| crate::rundir::load_plan(&dir).ok())
        .map(|p| p.date)
        .collect()
}

/// Removes the partial archives an interrupted archive left in `tree`'s history folder
/// (never one a live run may be writing); returns the removed paths. Called by `umount`,
/// `history prune` and at the start of a run.
///
/// Errors: a removal failed (the message names the path).
pub fn remove_stale_partials(tree: &Path) -> Result<Vec<PathBuf>, String> {
    history::remove_partials(tree, &archiving_dates(tree))
}

/// Removes all but the newest `keep` histories, never one a run is using, and the partial
/// archives interrupted archives left.
///
/// Errors: a removal failed.
pub fn prune(tree: &Path, keep: usize) -> anyhow::Result<()> {
    let busy = in_use(tree);
    for p in remove_stale_partials(tree).map_err(anyhow::Error::msg)? {
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
