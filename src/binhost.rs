//! Binary package directories served as binhosts: after a run, `binpkgs/host` and every
//! `binpkgs/<tuple>.<name>` get a current `Packages` index, written by Portage's own
//! `emaint binhost --fix` run chrooted in the environment that built the packages, so any web
//! server can serve the directories to other machines and to installed full-stage targets
//! (Portage's binrepos.conf(5) points at them).
//!
//! Not for: serving the directories (a real web server does that; docs/machines.md),
//! signing packages, or pruning old ones (`eclean-pkg`).

use std::path::{Path, PathBuf};

use crate::plan::Plan;
use crate::sys::{ChrootCommand, Group, Sys};

/// Errors of writing an index; each names the package directory.
#[derive(Debug, thiserror::Error)]
pub enum BinhostError {
    /// emaint could not be started.
    #[error("cannot run emaint for {dir}: {source}")]
    Start {
        /// The package directory (`binpkgs/host`, `binpkgs/<target>`).
        dir: String,
        /// The cause (it names the environment root).
        source: Box<crate::sys::SysError>,
    },
    /// emaint failed.
    #[error(
        "emaint binhost --fix failed for {dir} (exit {code}): {output}; the packages are \
         intact, only their index is stale: fix the cause and run `build-helper binhost RUN`"
    )]
    Failed {
        /// The package directory.
        dir: String,
        /// Its exit status.
        code: i32,
        /// The end of its output.
        output: String,
    },
}

/// One package directory to index, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageDir {
    /// What the directory is, as the tree names it: `binpkgs/host` or
    /// `binpkgs/<tuple>.<name>`.
    pub label: String,
    /// The environment root (on the build machine) whose Portage writes the index.
    pub root: PathBuf,
    /// The Portage configuration root inside it: `None` for the build environment itself
    /// (its make.conf's PKGDIR is `binpkgs/host`), `/usr/<tuple>.<name>` for a target (its
    /// make.conf's PKGDIR is the target's package directory).
    pub config_root: Option<String>,
}

/// The package directories of a planned run: the host's in the primary environment, then each
/// target's in the environment it builds in.
pub fn package_dirs(plan: &Plan) -> Vec<PackageDir> {
    let mut out = Vec::new();
    if let Some(primary) = plan.targets.first() {
        out.push(PackageDir {
            label: "binpkgs/host".into(),
            root: primary.root.clone(),
            config_root: None,
        });
    }
    for t in &plan.targets {
        out.push(PackageDir {
            label: format!("binpkgs/{}", t.target),
            root: t.root.clone(),
            config_root: Some(format!("/usr/{}", t.target)),
        });
    }
    out
}

/// Exit status of [`script`] when the environment has no emaint, or the target never got a
/// Portage configuration (it failed before `target-env`): nothing to index there.
pub const SKIPPED: i32 = 3;

/// The script, run chrooted with `/bin/sh -c`, that writes the index of one package
/// directory: `emaint binhost --fix` (Portage's emaint(1)) with the configuration root of
/// `config_root` (`PORTAGE_CONFIGROOT` and `ROOT`, as crossdev's emerge wrapper sets them).
/// Exits [`SKIPPED`] when there is nothing it can do.
pub fn script(config_root: Option<&str>) -> String {
    let mut s = String::from(
        "command -v emaint >/dev/null 2>&1 || { echo 'no emaint in this environment'; exit 3; }\n",
    );
    match config_root {
        None => s.push_str("exec emaint binhost --fix\n"),
        Some(r) => {
            let r = crate::recipe::sh_quote(r);
            s.push_str(&format!(
                "[ -e {r}/etc/portage/make.conf ] || {{ echo 'no Portage configuration in '{r}; exit 3; }}\n\
                 PORTAGE_CONFIGROOT={r} ROOT={r} exec emaint binhost --fix\n"
            ));
        }
    }
    s
}

/// What indexing one directory did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Indexed {
    /// The index is current.
    Written,
    /// Nothing to do there, with the reason.
    Skipped(String),
}

/// Writes the index of `dir` by running [`script`] chrooted in its root with `env` (the step
/// environment, so PATH and the like are the run's). Blocking; the caller must already be in
/// the mount namespace where the root is mounted.
///
/// Errors: [`BinhostError`] naming the directory.
pub fn index(
    sys: &dyn Sys,
    dir: &PackageDir,
    env: &[(String, String)],
) -> Result<Indexed, BinhostError> {
    let cmd = ChrootCommand {
        root: dir.root.clone(),
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script(dir.config_root.as_deref())],
        env: env.iter().cloned().collect(),
        group: Group::Caller,
        output: None,
        fd3: None,
        cgroup: None,
    };
    let (code, out) =
        crate::sys::chroot::output(sys, cmd).map_err(|source| BinhostError::Start {
            dir: dir.label.clone(),
            source: Box::new(source),
        })?;
    let text = String::from_utf8_lossy(&out).to_string();
    match code {
        0 => Ok(Indexed::Written),
        SKIPPED => Ok(Indexed::Skipped(text.trim().to_string())),
        code => Err(BinhostError::Failed {
            dir: dir.label.clone(),
            code,
            output: tail(&text, 5),
        }),
    }
}
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim().lines().collect();
    all[all.len().saturating_sub(lines)..].join(" / ")
}

/// Indexes every package directory of `plan` whose root is mounted (has `proc/self`), each
/// with its target's step environment; returns one line per directory for the user. A
/// failure of one directory does not stop the others.
pub fn index_run(sys: &dyn Sys, plan: &Plan) -> Vec<Result<String, BinhostError>> {
    package_dirs(plan)
        .iter()
        .map(|dir| {
            if !mounted(&dir.root) {
                return Ok(format!(
                    "{}: not indexed ({} is not mounted)",
                    dir.label,
                    dir.root.display()
                ));
            }
            let env: Vec<(String, String)> = plan
                .targets
                .iter()
                .find(|t| t.root == dir.root)
                .map(|t| t.env.clone().into_iter().collect())
                .unwrap_or_default();
            index(sys, dir, &env).map(|r| match r {
                Indexed::Written => format!("{}: Packages index written", dir.label),
                Indexed::Skipped(why) => format!("{}: not indexed ({why})", dir.label),
            })
        })
        .collect()
}

fn mounted(root: &Path) -> bool {
    root.join("proc/self").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_index_uses_the_environments_own_configuration() {
        let s = script(None);
        assert!(s.ends_with("exec emaint binhost --fix\n"), "{s}");
        assert!(!s.contains("PORTAGE_CONFIGROOT"));
    }

    #[test]
    fn target_index_uses_the_targets_configuration_root() {
        let s = script(Some("/usr/aarch64-unknown-linux-musl.rpi4b"));
        assert!(s.contains(
            "PORTAGE_CONFIGROOT=/usr/aarch64-unknown-linux-musl.rpi4b \
             ROOT=/usr/aarch64-unknown-linux-musl.rpi4b exec emaint binhost --fix"
        ));
        assert!(s.contains("[ -e /usr/aarch64-unknown-linux-musl.rpi4b/etc/portage/make.conf ]"));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b / c");
    }
}
