//! `build-helper plan`: prints the plan of a starter, as text or JSON; no root needed.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::UsageError;
use crate::sys::Sys;
use crate::{history, plan, plan_text};

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// The starter file (TOML; format: docs/starter.md).
    pub starter: PathBuf,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
    /// History to start from: latest, none, a name under history/, or a path.
    #[arg(long)]
    pub history: Option<String>,
}

/// Prints the plan.
pub(super) fn run(args: Args, _sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    let s = super::load_starter(&args.starter, args.history.as_deref())?;
    let hist = history::resolve(&s.tree, &s.options.history).map_err(UsageError)?;
    let p = plan::build(&s, &plan::date_now(), hist).map_err(|e| UsageError(e.to_string()))?;
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&p)?)
    } else {
        plan_text::render(&p)
    };
    super::print_quietly_on_closed_pipe(&text)?;
    Ok(0)
}
