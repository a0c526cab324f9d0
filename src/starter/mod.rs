//! Starters: the TOML file that says which targets to build and how
//! (`starters/<file>.toml`, spec/starter.md), with the environment overrides of the original
//! starter scripts applied, checked and turned into a [`Starter`].
//!
//! Pure: it reads the starter file and looks whether each target's configuration directory
//! exists; it does not load configurations (see [`crate::config`]) nor plan the run.
//!
//! The format (every key optional except the targets):
//! ```toml
//! [[target]]                 # one or more; the first is the primary target
//! tuple = "x86_64-unknown-linux-musl"
//! name = "demo"
//! [options]
//! ui = "plain"               # tui | tmux | plain (default: the command line decides)
//! mirror = "https://gentoo.osuosl.org"   # several: space-separated, tried in order
//! openpgp_key = "/usr/share/openpgp-keys/gentoo-release.asc"   # relative to the tree, or
//!                            # absolute; env BH_OPENPGP_KEY (relative to the current directory)
//! verify_signatures = true   # false (or `run --no-verify-signatures`): digests only
//! arch = "amd64"             # the build machine's Gentoo release arch
//! stage3 = "amd64-musl-hardened"   # default: <arch>-musl-hardened
//! mount_type = "bind"        # bind | tmpfs
//! mount_opts = "size=30G"
//! tmp_type = "none"          # none | tmpfs
//! tmp_size = "30G"
//! jobs = 16                  # default: the number of CPUs
//! history = "latest"         # latest | none | <name under history/> | <path>
//!                            # (a value with `/`; relative to the tree)
//! history_type = "squashfs"  # squashfs | files
//! compressor = "zstd"        # zstd | xz | gzip | lz4 | lzo
//! compression_level = 5      # default 5 for zstd
//! image_compressor = "xz"    # base and world images: xz | zstd | gzip | lzo | lz4;
//!                            # default: the first the target's kernel reads, xz first
//! distfiles = "distfiles"    # relative to the tree, or absolute
//! umount_ask = true
//! gentoo_mirrors = ""
//! distcc_hosts = ""          # distcc(1) DISTCC_HOSTS, e.g. "helper1/8 helper2/8,lzo":
//!                            # FEATURES=distcc for every emerge of the run
//! pass_env = ["BH_DEMO_FAIL"]
//! notify = ["ntfy", "publish", "--title", "build-helper", "mytopic"]
//!                            # run with the event as JSON on stdin when a step fails,
//!                            # a rescue shell waits or the run ends (src/notify.rs)
//! [env]                      # exported to every step
//! MAKEOPTS = "-j16"
//! ```

mod env;
mod error;
mod import;
mod options;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::target::{validate_name, validate_tuple, Target};
pub use env::EnvFn;
pub use error::{Location, StarterError};
pub use import::{import_starter, ImportError};
pub use options::{HistorySel, HistoryType, MountType, Options, TmpType, UiKind, COMPRESSORS};

/// The stage3 mirror used when neither the starter nor `TARBALL_MIRROR` names one.
pub const DEFAULT_MIRROR: &str = "https://gentoo.osuosl.org";

/// A loaded starter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Starter {
    /// The starter file, absolute and canonical.
    pub path: PathBuf,
    /// The tree (starters, configs, history, builds, distfiles, work), absolute:
    /// `BUILD_HELPER_TREE`, else the parent of the starter's folder.
    pub tree: PathBuf,
    /// The targets, primary first; each has its directory under `<tree>/configs/`.
    pub targets: Vec<Target>,
    pub options: Options,
    /// `[env]`: exported to every step.
    pub env: BTreeMap<String, String>,
}

/// Loads the starter at `path`, applies the environment overrides read through `env`
/// (`|name| std::env::var(name).ok()` in the program), and checks everything.
///
/// # Errors
/// A [`StarterError`] naming the file and line (or the variable) and what to do.
pub fn load(path: &Path, env: EnvFn<'_>) -> Result<Starter, StarterError> {
    let read_error = |source| StarterError::Read {
        path: path.to_path_buf(),
        source,
    };
    let text = fs::read_to_string(path).map_err(read_error)?;
    let src = Source { path, text: &text };
    let raw: RawStarter = toml::from_str(&text).map_err(|e| src.syntax(&e))?;
    let abs = fs::canonicalize(path).map_err(read_error)?;
    let tree = tree(&abs, env)?;
    let targets = src.targets(&raw.target, &tree)?;
    let mut options = src.options(&raw.options, &tree)?;
    env::apply(&mut options, env)?;
    let mut env_table = BTreeMap::new();
    for (key, value) in raw.env {
        let name = options::env_name(&key).map_err(|reason| StarterError::Invalid {
            at: src.at(value.span()),
            key: "[env] key".into(),
            value: format!("{key:?}"),
            reason,
        })?;
        env_table.insert(name, value.into_inner());
    }
    Ok(Starter {
        path: abs,
        tree,
        targets,
        options,
        env: env_table,
    })
}

/// The tree: `BUILD_HELPER_TREE` (an existing directory), else the parent of the folder
/// holding the (canonical) starter.
fn tree(starter: &Path, env: EnvFn<'_>) -> Result<PathBuf, StarterError> {
    match env("BUILD_HELPER_TREE").filter(|v| !v.is_empty()) {
        Some(value) => match fs::canonicalize(&value) {
            Ok(dir) if dir.is_dir() => Ok(dir),
            Ok(_) => Err("is not a directory".to_owned()),
            Err(e) => Err(e.to_string()),
        }
        .map_err(|why| StarterError::Env {
            var: "BUILD_HELPER_TREE".into(),
            reason: format!("expected the tree directory (holding starters/ and configs/): {why}"),
            value,
        }),
        None => starter
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .ok_or_else(|| StarterError::NoTree {
                path: starter.to_path_buf(),
            }),
    }
}

/// The starter as written: unknown keys are errors, values carry their byte spans.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStarter {
    #[serde(default)]
    target: Vec<RawTarget>,
    #[serde(default)]
    options: RawOptions,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    tuple: Spanned<String>,
    name: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    ui: Option<Spanned<String>>,
    mirror: Option<Spanned<String>>,
    arch: Option<Spanned<String>>,
    stage3: Option<Spanned<String>>,
    mount_type: Option<Spanned<String>>,
    mount_opts: Option<Spanned<String>>,
    tmp_type: Option<Spanned<String>>,
    tmp_size: Option<Spanned<String>>,
    jobs: Option<Spanned<i64>>,
    history: Option<Spanned<String>>,
    history_type: Option<Spanned<String>>,
    compressor: Option<Spanned<String>>,
    compression_level: Option<Spanned<i64>>,
    image_compressor: Option<Spanned<String>>,
    distfiles: Option<Spanned<String>>,
    openpgp_key: Option<Spanned<String>>,
    verify_signatures: Option<bool>,
    umount_ask: Option<bool>,
    gentoo_mirrors: Option<Spanned<String>>,
    distcc_hosts: Option<Spanned<String>>,
    #[serde(default)]
    pass_env: Vec<Spanned<String>>,
    notify: Option<Spanned<Vec<String>>>,
}

/// The starter file being checked, for locating errors.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    /// The location of a byte span (its first line).
    fn at(&self, span: Range<usize>) -> Location {
        let before = self
            .text
            .as_bytes()
            .get(..span.start)
            .unwrap_or(self.text.as_bytes());
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        Location {
            path: self.path.to_path_buf(),
            line: Some(line),
        }
    }

    /// A TOML error as one line, with the offending line of the file quoted.
    fn syntax(&self, e: &toml::de::Error) -> StarterError {
        let lines: Vec<&str> = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let mut message = lines.join(": ");
        let Some(span) = e.span() else {
            let at = Location {
                path: self.path.to_path_buf(),
                line: None,
            };
            return StarterError::Syntax { at, message };
        };
        let at = self.at(span.clone());
        let line = at
            .line
            .and_then(|n| self.text.lines().nth(n - 1))
            .map(str::trim);
        if let Some(line) = line.filter(|l| !l.is_empty() && l.len() <= 80) {
            message.push_str(&format!(" (in `{line}`)"));
        }
        StarterError::Syntax { at, message }
    }

    /// Parses `value` of `key`; on error names key, value, file and line.
    fn check<V: fmt::Debug, T>(
        &self,
        key: &str,
        value: &Spanned<V>,
        parse: impl FnOnce(&V) -> Result<T, String>,
    ) -> Result<T, StarterError> {
        parse(value.get_ref()).map_err(|reason| StarterError::Invalid {
            at: self.at(value.span()),
            key: key.to_owned(),
            value: format!("{:?}", value.get_ref()),
            reason,
        })
    }

    /// Like [`Self::check`] for an optional value; `Ok(None)` when absent.
    fn opt<V: fmt::Debug, T>(
        &self,
        key: &str,
        value: &Option<Spanned<V>>,
        parse: impl FnOnce(&V) -> Result<T, String>,
    ) -> Result<Option<T>, StarterError> {
        value
            .as_ref()
            .map(|v| self.check(key, v, parse))
            .transpose()
    }

    /// The targets: at least one, valid names, no duplicates, each with its
    /// configuration directory under `<tree>/configs/`.
    fn targets(&self, raw: &[RawTarget], tree: &Path) -> Result<Vec<Target>, StarterError> {
        if raw.is_empty() {
            return Err(StarterError::NoTarget {
                path: self.path.to_path_buf(),
            });
        }
        let mut lines: BTreeMap<Target, usize> = BTreeMap::new();
        let mut targets = Vec::new();
        for t in raw {
            self.check("tuple", &t.tuple, |s| {
                validate_tuple(s).map_err(|e| e.to_string())
            })?;
            self.check("name", &t.name, |s| {
                validate_name(s).map_err(|e| e.to_string())
            })?;
            let target = Target {
                tuple: t.tuple.get_ref().clone(),
                name: t.name.get_ref().clone(),
            };
            let at = self.at(t.tuple.span());
            let line = at.line.unwrap_or_default();
            if let Some(&first_line) = lines.get(&target) {
                return Err(StarterError::DuplicateTarget {
                    at,
                    target: target.to_string(),
                    first_line,
                });
            }
            let dir = target.config_dir(tree);
            if !dir.is_dir() {
                return Err(StarterError::MissingConfig {
                    at,
                    target: target.to_string(),
                    dir,
                });
            }
            lines.insert(target.clone(), line);
            targets.push(target);
        }
        Ok(targets)
    }

    /// `[options]` with defaults; relative paths are taken relative to `tree`.
    fn options(&self, raw: &RawOptions, tree: &Path) -> Result<Options, StarterError> {
        let arch = self.opt("arch", &raw.arch, |s| options::word(s, "", "amd64"))?;
        let arch = arch.unwrap_or_else(|| "amd64".to_owned());
        let stage3 = self.opt("stage3", &raw.stage3, |s| {
            options::word(s, "-.+", "amd64-musl-hardened")
        })?;
        let compressor = self.opt("compressor", &raw.compressor, |s| {
            options::compression(s, None).map(|_| s.clone())
        })?;
        let compressor = compressor.unwrap_or_else(|| "zstd".to_owned());
        let level = self.opt("compression_level", &raw.compression_level, |&l| {
            options::compression(&compressor, Some(l))
        })?;
        let mut pass_env: Vec<String> = Vec::new();
        for name in &raw.pass_env {
            let name = self.check("pass_env", name, |s| options::env_name(s))?;
            if !pass_env.contains(&name) {
                pass_env.push(name);
            }
        }
        Ok(Options {
            ui: self.opt("ui", &raw.ui, |s| s.parse())?,
            mirror: self
                .opt("mirror", &raw.mirror, |s| options::mirror(s))?
                .unwrap_or_else(|| DEFAULT_MIRROR.to_owned()),
            stage3: stage3.unwrap_or_else(|| format!("{arch}-musl-hardened")),
            arch,
            mount_type: self
                .opt("mount_type", &raw.mount_type, |s| s.parse())?
                .unwrap_or(MountType::Bind),
            mount_opts: self
                .opt("mount_opts", &raw.mount_opts, |s| options::mount_opts(s))?
                .unwrap_or_else(|| "size=30G".to_owned()),
            tmp_type: self
                .opt("tmp_type", &raw.tmp_type, |s| s.parse())?
                .unwrap_or(TmpType::None),
            tmp_size: self
                .opt("tmp_size", &raw.tmp_size, |s| options::size(s))?
                .unwrap_or_else(|| "30G".to_owned()),
            jobs: match self.opt("jobs", &raw.jobs, |&n| options::jobs(n))? {
                Some(jobs) => jobs,
                None => default_jobs(),
            },
            history: self
                .opt("history", &raw.history, |s| options::history(s, tree))?
                .unwrap_or(HistorySel::Latest),
            history_type: self
                .opt("history_type", &raw.history_type, |s| s.parse())?
                .unwrap_or(HistoryType::Squashfs),
            compression_level: match level {
                Some(level) => level,
                None => options::compression(&compressor, None).unwrap_or_default(),
            },
            compressor,
            image_compressor: self.opt("image_compressor", &raw.image_compressor, |s| {
                if crate::config::KERNEL_COMPRESSORS
                    .iter()
                    .any(|(c, _)| c == s)
                {
                    Ok(s.clone())
                } else {
                    let names: Vec<&str> = crate::config::KERNEL_COMPRESSORS
                        .iter()
                        .map(|(c, _)| *c)
                        .collect();
                    Err(format!("expected one of {}", names.join(", ")))
                }
            })?,
            distfiles: self
                .opt("distfiles", &raw.distfiles, |s| Ok(tree.join(s)))?
                .unwrap_or_else(|| tree.join("distfiles")),
            openpgp_key: self
                .opt("openpgp_key", &raw.openpgp_key, |s| Ok(tree.join(s)))?
                .unwrap_or_else(|| PathBuf::from(crate::stage3::DEFAULT_KEY_FILE)),
            verify_signatures: raw.verify_signatures.unwrap_or(true),
            umount_ask: raw.umount_ask.unwrap_or(true),
            gentoo_mirrors: self
                .opt("gentoo_mirrors", &raw.gentoo_mirrors, |s| {
                    options::gentoo_mirrors(s)
                })?
                .flatten(),
            distcc_hosts: self
                .opt("distcc_hosts", &raw.distcc_hosts, |s| {
                    crate::distcc::hosts::parse(s)
                })?
                .flatten(),
            pass_env,
            notify: self
                .opt("notify", &raw.notify, |argv| options::notify(argv))?
                .unwrap_or_default(),
            mount_hist: false,
        })
    }
}

/// The number of CPUs (1 when unknown).
fn default_jobs() -> u32 {
    std::thread::available_parallelism()
        .ok()
        .and_then(|n| u32::try_from(n.get()).ok())
        .unwrap_or(1)
}
