//! `build-helper import-starter`: converts one of the original tool's starter scripts into starter TOML.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::UsageError;
use crate::starter;
use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    /// The starter script (shell).
    pub script: PathBuf,
}

/// Prints the TOML.
pub(super) fn run(args: Args, _sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    let text = starter::read_script(&args.script).map_err(|e| UsageError(e.to_string()))?;
    let toml =
        starter::import_starter(&text, &args.script).map_err(|e| UsageError(e.to_string()))?;
    super::print_quietly_on_closed_pipe(&toml)?;
    Ok(0)
}
