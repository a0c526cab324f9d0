//! `build-helper generate`: writes the man pages or a shell completion script from this command line.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::CommandFactory;

use crate::clidocs;
use crate::sys::Sys;

/// The arguments of this command (their help is the command line's).
#[derive(clap::Args)]
pub(super) struct Args {
    #[command(subcommand)]
    pub action: Action,
}

/// What `generate` writes.
#[derive(clap::Subcommand)]
pub(super) enum Action {
    /// Write one man page per command (build-helper.1, build-helper-plan.1, ...) into DIR.
    Man {
        /// The directory (created if missing), e.g. /usr/local/share/man/man1.
        dir: PathBuf,
    },
    /// Print the completion script for SHELL (install it as bash: build-helper, zsh:
    /// _build-helper, fish: build-helper.fish).
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clidocs::Shell,
    },
}

/// Writes the pages, or prints the script.
pub(super) fn run(args: Args, _sys: Arc<dyn Sys>) -> anyhow::Result<i32> {
    match args.action {
        Action::Man { dir } => {
            for page in clidocs::write_man_pages(super::Cli::command(), &dir)? {
                println!("{}", page.display());
            }
        }
        Action::Completion { shell } => {
            let script = clidocs::completion(super::Cli::command(), shell);
            clidocs::write_out(&mut std::io::stdout().lock(), &script)
                .context("writing the completion script to standard output")?;
        }
    }
    Ok(0)
}
