//! The human-readable rendering of a plan (`build-helper plan STARTER` without `--json`).

use std::fmt::Write;

use crate::mounts::Entry;
use crate::plan::Plan;

fn entry_line(e: &Entry) -> String {
    match e {
        Entry::Bind {
            source,
            target,
            recursive,
            readonly,
        } => format!(
            "{} {} -> {}{}",
            if *recursive { "rbind" } else { "bind " },
            source.display(),
            target.display(),
            if *readonly { " (ro)" } else { "" }
        ),
        Entry::Tmpfs { target, options } => {
            format!("tmpfs {} ({options})", target.display())
        }
        Entry::Proc { target } => format!("proc  {}", target.display()),
        Entry::Overlay {
            lower,
            upper,
            work,
            target,
        } => format!(
            "overlay {} (lower {}, upper {}, work {})",
            target.display(),
            lower
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
            upper.display(),
            work.display()
        ),
        Entry::Image { file, target } => {
            format!(
                "squashfs {} -> {} (ro, loop)",
                file.display(),
                target.display()
            )
        }
        Entry::Copy { source, target } => {
            format!("copy  {} -> {}", source.display(), target.display())
        }
    }
}

/// Renders `plan` as text: targets (primary first) with world order, the mount layout, and
/// every step with its environment and script.
pub fn render(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "run {} ({})",
        plan.run_id,
        if plan.first_build {
            "first build"
        } else {
            "update"
        }
    );
    let _ = writeln!(s, "tree {}", plan.tree.display());
    if let Some(st) = &plan.stage3 {
        let _ = writeln!(s, "stage3 {} {} from {}", st.arch, st.flavor, st.mirror);
    }
    if let Some((h, _)) = &plan.layout.history {
        let _ = writeln!(s, "history {}", h.display());
    }
    let _ = writeln!(s, "\ntargets:");
    for t in &plan.targets {
        let _ = writeln!(
            s,
            "  {}{}  worlds: {}",
            t.target,
            if t.primary { " (primary)" } else { "" },
            t.worlds.join(" -> ")
        );
    }
    let _ = writeln!(s, "\nmounts (base and primary):");
    for e in plan
        .layout
        .base_entries()
        .iter()
        .chain(&plan.layout.primary_entries())
    {
        let _ = writeln!(s, "  {}", entry_line(e));
    }
    for d in plan.layout.targets.iter().skip(1) {
        let _ = writeln!(
            s,
            "mounts of {} (on toolchain-ready {}):",
            d.target, d.target.tuple
        );
        for e in plan.layout.secondary_entries(d) {
            let _ = writeln!(s, "  {}", entry_line(&e));
        }
    }
    let _ = writeln!(s, "mounts for archive-history:");
    for e in plan.layout.archive_entries() {
        let _ = writeln!(s, "  {}", entry_line(&e));
    }
    for t in &plan.targets {
        let _ = writeln!(s, "\n== {} ==\nenvironment:", t.target);
        for (k, v) in &t.env {
            let _ = writeln!(s, "  {k}={}", crate::recipe::sh_quote(v));
        }
        for (i, step) in t.steps.iter().enumerate() {
            let _ = writeln!(
                s,
                "-- step {}/{}: {} ({:?}{}{})",
                i + 1,
                t.steps.len(),
                step.name,
                step.phase,
                if step.sync_lock { ", sync lock" } else { "" },
                if step.announces.is_empty() {
                    String::new()
                } else {
                    format!(", announces {}", step.announces.join(" "))
                }
            );
            let body = step
                .script
                .strip_prefix(crate::recipe::PRELUDE)
                .unwrap_or(&step.script);
            for line in body.lines() {
                let _ = writeln!(s, "   {line}");
            }
        }
    }
    s
}
