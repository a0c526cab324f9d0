//! Man pages and shell completions, generated from the command line's clap definitions
//! (`build-helper generate`), never written by hand: a subcommand added to the CLI gets its
//! page and its completions without anything else to change.
//!
//! Pages are rendered by `clap_mangen` (roff, section 1), one per visible command: the
//! top-level `build-helper.1` and `build-helper-<sub>[-<subsub>].1` for each subcommand, as
//! git and cargo name theirs; hidden commands (the internal `worker`) get none. Completions
//! are rendered by `clap_complete`. The tarball (`scripts/dist.sh`), the ebuild and
//! `cargo install`'s post-step all call the binary, so what they install always matches it.
//!
//! Not for: the command table of docs/commands.md, which stays prose.

use std::io::Write;
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// What went wrong while writing generated documentation.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    /// A page or completion file could not be written (or its directory created).
    #[error("writing {path}: {source}; check that the directory exists and is writable")]
    Write {
        /// The file or directory concerned.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Rendering failed (only a failing writer can cause it).
    #[error("rendering the man page of `{command}`: {source}")]
    Render {
        /// The command's display name, e.g. `build-helper-history-list`.
        command: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Renders one man page per visible command of `cmd` (depth first, parents before their
/// subcommands) as `(file name, roff text)`, e.g. `("build-helper-plan.1", ".TH ...")`.
/// The implicit `help` subcommand and hidden commands are left out.
///
/// Errors: [`DocsError::Render`] only if rendering into memory fails.
pub fn man_pages(cmd: clap::Command) -> Result<Vec<(String, Vec<u8>)>, DocsError> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let source = match cmd.get_version() {
        Some(v) => format!("{} {v}", cmd.get_name()),
        None => cmd.get_name().to_string(),
    };
    let mut pages = Vec::new();
    render_tree(&cmd, &source, &mut pages)?;
    Ok(pages)
}

/// Renders `cmd` and its visible subcommands; every page's footer names `source` (the
/// program and its version: subcommands carry no version of their own).
fn render_tree(
    cmd: &clap::Command,
    source: &str,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), DocsError> {
    let man = clap_mangen::Man::new(cmd.clone()).source(source);
    let mut text = Vec::new();
    man.render(&mut text).map_err(|source| DocsError::Render {
        command: cmd.get_display_name().unwrap_or(cmd.get_name()).to_string(),
        source,
    })?;
    pages.push((man.get_filename(), text));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render_tree(sub, source, pages)?;
    }
    Ok(())
}

/// Writes [`man_pages`] of `cmd` into `dir` (created if missing) and returns the paths
/// written, in the same order.
///
/// Errors: [`DocsError::Write`] naming the directory or file that could not be written.
pub fn write_man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, DocsError> {
    std::fs::create_dir_all(dir).map_err(|source| DocsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    man_pages(cmd)?
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| DocsError::Write {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        })
        .collect()
}

/// The completion script of `cmd` for `shell`, for the program named `cmd.get_name()`.
///
/// Rendered into memory: `clap_complete` panics when its writer fails, so a closed pipe
/// must be met by the caller's write, not inside the generator.
pub fn completion(cmd: clap::Command, shell: Shell) -> Vec<u8> {
    let mut cmd = cmd;
    let name = cmd.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    script
}

/// The file name under which `shell` looks a program's completions up, by the shells' own
/// conventions: bash-completion's `completions/<bin>`, zsh's `_<bin>` in `site-functions`,
/// fish's `<bin>.fish` in `vendor_completions.d`, `<bin>.elv` and `_<bin>.ps1` otherwise.
pub fn completion_file_name(shell: Shell, bin: &str) -> String {
    match shell {
        Shell::Bash => bin.to_string(),
        Shell::Zsh => format!("_{bin}"),
        Shell::Fish => format!("{bin}.fish"),
        Shell::Elvish => format!("{bin}.elv"),
        Shell::PowerShell => format!("_{bin}.ps1"),
        _ => format!("{bin}.{shell}"),
    }
}

/// Writes `bytes` to `out` and flushes it; a reader that went away (`EPIPE`) is not an
/// error, so `build-helper generate completion bash | head` ends quietly.
///
/// Errors: any other I/O error of `out`.
pub fn write_out(out: &mut dyn Write, bytes: &[u8]) -> std::io::Result<()> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn sample() -> Command {
        Command::new("bh")
            .version("1.2.3")
            .about("Sample tool")
            .subcommand(
                Command::new("plan")
                    .about("Print the plan")
                    .arg(Arg::new("starter").required(true)),
            )
            .subcommand(
                Command::new("history")
                    .about("Histories")
                    .subcommand(Command::new("list").about("List them")),
            )
            .subcommand(Command::new("worker").hide(true))
    }

    #[test]
    fn one_page_per_visible_command_and_none_for_hidden_or_help() {
        let names: Vec<String> = man_pages(sample())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            ["bh.1", "bh-plan.1", "bh-history.1", "bh-history-list.1"]
        );
    }

    #[test]
    fn pages_are_roff_with_the_commands_text() {
        let pages = man_pages(sample()).unwrap();
        let plan = String::from_utf8(pages[1].1.clone()).unwrap();
        assert!(plan.starts_with(".ie \\n(.g .ds Aq"), "{plan}");
        assert!(plan.contains(".TH bh-plan 1  \"bh 1.2.3\""), "{plan}");
        assert!(plan.contains("Print the plan"), "{plan}");
        assert!(
            plan.contains("bh\\-plan") || plan.contains("bh plan"),
            "{plan}"
        );
    }

    #[test]
    fn completions_name_every_visible_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completion(sample(), shell)).unwrap();
            for sub in ["plan", "history", "list"] {
                assert!(script.contains(sub), "{shell}: {sub} missing");
            }
        }
    }

    #[test]
    fn completion_files_follow_each_shells_convention() {
        assert_eq!(completion_file_name(Shell::Bash, "bh"), "bh");
        assert_eq!(completion_file_name(Shell::Zsh, "bh"), "_bh");
        assert_eq!(completion_file_name(Shell::Fish, "bh"), "bh.fish");
    }

    #[test]
    fn write_man_pages_names_the_directory_it_cannot_create() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = write_man_pages(sample(), &file.join("man1")).unwrap_err();
        assert!(err.to_string().contains("file/man1"), "{err}");
    }

    #[test]
    fn a_closed_pipe_is_not_an_error() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        assert!(write_out(&mut Closed, b"x").is_ok());
    }
}
