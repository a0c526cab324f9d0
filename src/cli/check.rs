//! `build-helper check`: validates configuration directories, or a starter's; exit 0 when valid, 2 otherwise.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config;
use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// Configuration directories (configs/<tuple>.<name>/ or configs/host; format:
    /// docs/configuration.md), or starter files (*.toml): a starter checks the host's
    /// and each target's configuration.
    #[arg(required_unless_present = "starter")]
    pub dirs: Vec<PathBuf>,
    /// Also check the host and every target configuration of this starter (the same as
    /// naming the starter among the directories), and that each target's kernel reads
    /// the starter's image_compressor.
    #[arg(long)]
    pub starter: Option<PathBuf>,
}

/// What `check` checks: the configuration directories named or implied by starters, the
/// starters' warnings, and each target directory's starter-chosen image compressor.
struct CheckTargets {
    dirs: Vec<PathBuf>,
    warnings: Vec<config::Problem>,
    compressors: Vec<(PathBuf, String)>,
}

/// Expands `check`'s arguments: a `*.toml` file is a starter (its host and every target's
/// configuration, the distcc warning, its `image_compressor`), anything else a directory.
fn check_targets(args: &[PathBuf]) -> anyhow::Result<CheckTargets> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut warnings = Vec::new();
    let mut compressors = Vec::new();
    for arg in args {
        if arg.is_file() && arg.extension().is_some_and(|e| e == "toml") {
            let s = super::load_starter(arg, None)?;
            let host = s.tree.join("configs/host");
            warnings.extend(crate::starter::distcc_hosts::host_world_warning(
                &host,
                s.options.distcc_hosts.as_deref(),
            ));
            dirs.push(host);
            for t in &s.targets {
                let dir = s.tree.join("configs").join(t.to_string());
                if let Some(wanted) = &s.options.image_compressor {
                    compressors.push((dir.clone(), wanted.clone()));
                }
                dirs.push(dir);
            }
        } else {
            dirs.push(arg.clone());
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    Ok(CheckTargets {
        dirs,
        warnings,
        compressors,
    })
}

/// Checks and prints the report; 0 valid, 2 problems.
pub(super) fn run(args: Args, _sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    let Args { mut dirs, starter } = args;
    dirs.extend(starter);
    let checked = check_targets(&dirs)?;
    let mut report = config::check(&checked.dirs);
    report.warnings.extend(checked.warnings);
    for (dir, wanted) in &checked.compressors {
        if let Ok(c) = config::load_target(dir) {
            if let Err(p) = c.image_compressor(Some(wanted)) {
                report.errors.push(p);
            }
        }
    }
    let dirs = checked.dirs;
    let mut out = String::new();
    for w in &report.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    for p in &report.errors {
        out.push_str(&format!("{p}\n"));
    }
    let code = if report.errors.is_empty() {
        out.push_str(&format!("{} configuration(s) valid\n", dirs.len()));
        0
    } else {
        out.push_str(&format!("{} problem(s)\n", report.errors.len()));
        2
    };
    super::print_quietly_on_closed_pipe(&out)?;
    Ok(code)
}
