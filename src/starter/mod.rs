//! Starters: the TOML file that says which targets to build and how
//! (`starters/<file>.toml`, docs/starter.md), with the environment overrides of the original
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
//! jobs = 16                  # default: the number of CPUs; the size of the job pool
//! job_pool = true            # one GNU make jobserver of `jobs` tokens for the whole run
//!                            # (docs/job-pool.md); false: MAKEOPTS="-j<jobs>" per target
//! min_mem_avail = "2G"       # no new job while MemAvailable is below (default: no limit)
//! max_load = 6               # no new job while the load average is at or above
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

pub mod distcc_hosts;
mod env;
mod error;
mod import;
mod options;
mod raw;
pub mod size;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use raw::{Problems, OPTION_KEYS, TARGET_KEYS};

use crate::config::target::{validate_name, validate_tuple, Target};
pub use env::EnvFn;
pub use error::{Location, StarterError};
pub use import::{import_starter, read_script, ImportError};
pub use options::{
    HistorySel, HistoryType, Load, MountType, Options, TmpType, UiKind, COMPRESSORS,
};

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
    let text = crate::saferoot::read_text_file(path, crate::saferoot::CONFIG_LIMIT)
        .map_err(|e| read_error(e.into_io()))?;
    let src = Source { path, text: &text };
    let problems = Problems::default();
    let raw = src.raw(&problems);
    let abs = fs::canonicalize(path).map_err(read_error)?;
    let tree = tree(&abs, env)?;
    let targets = src.targets(&raw.target, &tree, &problems);
    let mut options = src.options(&raw.options, &tree, &problems);
    if let Err(e) = env::apply(&mut options, env, &tree) {
        problems.push(e);
    }
    let mut env_table = BTreeMap::new();
    for (key, value) in &raw.env {
        let name = src.check(
            "[env] key",
            &Spanned::new(key.span(), key.get_ref().clone()),
            |k| options::env_name(k),
            &problems,
        );
        let value = match value.get_ref() {
            toml::Value::String(v) => src.check(
                &format!("[env] {}", key.get_ref()),
                &Spanned::new(value.span(), v.clone()),
                |v| options::env_value(v),
                &problems,
            ),
            other => {
                problems.push(src.wrong(
                    key.get_ref(),
                    &[(key.get_ref(), "a string: the variable's value")],
                    other,
                    &value.span(),
                ));
                None
            }
        };
        if let (Some(name), Some(value)) = (name, value) {
            env_table.insert(name, value);
        }
    }
    if !problems.is_empty() {
        return Err(StarterError::from_problems(path, problems.into_vec()));
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

    /// Parses `value` of `key`; on error records a problem naming key, value, file and
    /// line, and gives `None`.
    fn check<V: fmt::Debug, T>(
        &self,
        key: &str,
        value: &Spanned<V>,
        parse: impl FnOnce(&V) -> Result<T, String>,
        problems: &Problems,
    ) -> Option<T> {
        match parse(value.get_ref()) {
            Ok(v) => Some(v),
            Err(reason) => {
                problems.push(StarterError::Invalid {
                    at: self.at(value.span()),
                    key: key.to_owned(),
                    value: format!("{:?}", value.get_ref()),
                    reason,
                });
                None
            }
        }
    }

    /// The targets: at least one, valid names, no duplicates, each with its
    /// configuration directory under `<tree>/configs/`; problems are recorded.
    fn targets(&self, raw: &[raw::Table], tree: &Path, problems: &Problems) -> Vec<Target> {
        if raw.is_empty() && problems.is_empty() {
            problems.push(StarterError::NoTarget {
                path: self.path.to_path_buf(),
            });
        }
        let mut lines: BTreeMap<Target, usize> = BTreeMap::new();
        let mut targets = Vec::new();
        for t in raw {
            self.unknown_keys(t, "[[target]]", TARGET_KEYS, problems);
            let field = |key: &str| {
                let v = self.string(t, key, TARGET_KEYS, problems);
                if v.is_none() && !t.keys().any(|k| k.get_ref() == key) {
                    let span = t.values().next().map(|v| v.span()).unwrap_or(0..0);
                    problems.push(StarterError::Syntax {
                        at: self.at(span),
                        message: format!(
                            "[[target]] without `{key}`; add {key} = ... ({key} takes {})",
                            TARGET_KEYS
                                .iter()
                                .find(|(k, _)| *k == key)
                                .map(|(_, e)| *e)
                                .unwrap_or_default()
                        ),
                    });
                }
                v
            };
            let (Some(tuple), Some(name)) = (field("tuple"), field("name")) else {
                continue;
            };
            let tuple_ok = self.check(
                "tuple",
                &tuple,
                |s| validate_tuple(s).map_err(|e| e.to_string()),
                problems,
            );
            let name_ok = self.check(
                "name",
                &name,
                |s| validate_name(s).map_err(|e| e.to_string()),
                problems,
            );
            if tuple_ok.is_none() || name_ok.is_none() {
                continue;
            }
            let target = Target {
                tuple: tuple.get_ref().clone(),
                name: name.get_ref().clone(),
            };
            let at = self.at(tuple.span());
            let line = at.line.unwrap_or_default();
            if let Some(&first_line) = lines.get(&target) {
                problems.push(StarterError::DuplicateTarget {
                    at,
                    target: target.to_string(),
                    first_line,
                });
                continue;
            }
            let dir = target.config_dir(tree);
            if !dir.is_dir() {
                problems.push(StarterError::MissingConfig {
                    at,
                    target: target.to_string(),
                    dir,
                });
            }
            lines.insert(target.clone(), line);
            targets.push(target);
        }
        targets
    }

    /// `[options]` with defaults; relative paths are taken relative to `tree`. A value with
    /// a problem (recorded) leaves its default.
    fn options(&self, raw: &raw::Table, tree: &Path, problems: &Problems) -> Options {
        self.unknown_keys(raw, "[options]", OPTION_KEYS, problems);
        let string = |key: &str| self.string(raw, key, OPTION_KEYS, problems);
        let opt = |key: &str, parse: &dyn Fn(&String) -> Result<String, String>| {
            string(key).and_then(|v| self.check(key, &v, |s| parse(s), problems))
        };
        let word = |key: &str, parse: &dyn Fn(&str) -> Result<String, String>| {
            opt(key, &|s: &String| parse(s))
        };
        let arch =
            word("arch", &|s| options::word(s, "", "amd64")).unwrap_or_else(|| "amd64".to_owned());
        let stage3 = word("stage3", &|s| {
            options::word(s, "-.+", "amd64-musl-hardened")
        });
        let compressor = word("compressor", &|s| {
            options::compression(s, None).map(|_| s.to_owned())
        })
        .unwrap_or_else(|| "zstd".to_owned());
        let level = self
            .integer(raw, "compression_level", problems)
            .and_then(|l| {
                self.check(
                    "compression_level",
                    &l,
                    |&l| options::compression(&compressor, Some(l)),
                    problems,
                )
            });
        let mut pass_env: Vec<String> = Vec::new();
        for name in self.strings(raw, "pass_env", problems) {
            if let Some(name) = self.check("pass_env", &name, |s| options::env_name(s), problems) {
                if !pass_env.contains(&name) {
                    pass_env.push(name);
                }
            }
        }
        let parsed = |key: &str| string(key).map(|v| (key.to_owned(), v));
        let ui = parsed("ui").and_then(|(k, v)| self.check(&k, &v, |s| s.parse(), problems));
        let mount_type = parsed("mount_type")
            .and_then(|(k, v)| self.check(&k, &v, |s| s.parse(), problems))
            .unwrap_or(MountType::Bind);
        let tmp_type = parsed("tmp_type")
            .and_then(|(k, v)| self.check(&k, &v, |s| s.parse(), problems))
            .unwrap_or(TmpType::None);
        let history_type = parsed("history_type")
            .and_then(|(k, v)| self.check(&k, &v, |s| s.parse(), problems))
            .unwrap_or(HistoryType::Squashfs);
        let history = parsed("history")
            .and_then(|(k, v)| {
                self.check(
                    &k,
                    &v,
                    |s| options::history(s, tree).and_then(|h| options::history_path(h, tree)),
                    problems,
                )
            })
            .unwrap_or(HistorySel::Latest);
        let jobs = self
            .integer(raw, "jobs", problems)
            .and_then(|n| self.check("jobs", &n, |&n| options::jobs(n), problems))
            .unwrap_or_else(default_jobs);
        let min_mem_avail = parsed("min_mem_avail").and_then(|(k, v)| {
            self.check(
                &k,
                &v,
                |s| size::parse_size("min_mem_avail", s).map_err(|e| e.to_string()),
                problems,
            )
        });
        let max_load = self.number(raw, "max_load", problems).and_then(|n| {
            self.check(
                "max_load",
                &n,
                |n| size::parse_load(&format!("{n:?}")).map_err(|e| e.to_string()),
                problems,
            )
        });
        let gentoo_mirrors = parsed("gentoo_mirrors")
            .and_then(|(k, v)| self.check(&k, &v, |s| options::gentoo_mirrors(s), problems))
            .flatten();
        Options {
            ui,
            mirror: word("mirror", &options::mirror).unwrap_or_else(|| DEFAULT_MIRROR.to_owned()),
            stage3: stage3.unwrap_or_else(|| format!("{arch}-musl-hardened")),
            arch,
            mount_type,
            mount_opts: word("mount_opts", &options::mount_opts)
                .unwrap_or_else(|| "size=30G".to_owned()),
            tmp_type,
            tmp_size: word("tmp_size", &options::size).unwrap_or_else(|| "30G".to_owned()),
            jobs,
            job_pool: self.boolean(raw, "job_pool", problems).unwrap_or(true),
            min_mem_avail,
            max_load: max_load.map(options::Load),
            history,
            history_type,
            compression_level: match level {
                Some(level) => level,
                None => options::compression(&compressor, None).unwrap_or_default(),
            },
            compressor,
            image_compressor: opt("image_compressor", &|s: &String| {
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
            }),
            distfiles: string("distfiles")
                .and_then(|v| {
                    self.check(
                        "distfiles",
                        &v,
                        |s| options::path_option(options::non_empty(s)?.as_ref(), tree),
                        problems,
                    )
                })
                .unwrap_or_else(|| tree.join("distfiles")),
            openpgp_key: string("openpgp_key")
                .and_then(|v| {
                    self.check(
                        "openpgp_key",
                        &v,
                        |s| Ok(tree.join(options::non_empty(s)?)),
                        problems,
                    )
                })
                .unwrap_or_else(|| PathBuf::from(crate::stage3::DEFAULT_KEY_FILE)),
            verify_signatures: self
                .boolean(raw, "verify_signatures", problems)
                .unwrap_or(true),
            umount_ask: self.boolean(raw, "umount_ask", problems).unwrap_or(true),
            gentoo_mirrors,
            distcc_hosts: parsed("distcc_hosts")
                .and_then(|(k, v)| {
                    self.check(&k, &v, |s| crate::starter::distcc_hosts::parse(s), problems)
                })
                .flatten(),
            pass_env,
            notify: raw
                .iter()
                .find(|(k, _)| k.get_ref() == "notify")
                .map(|(_, v)| {
                    let argv: Vec<String> = self
                        .strings(raw, "notify", problems)
                        .into_iter()
                        .map(Spanned::into_inner)
                        .collect();
                    self.check(
                        "notify",
                        &Spanned::new(v.span(), argv),
                        |a| options::notify(a),
                        problems,
                    )
                    .unwrap_or_default()
                })
                .unwrap_or_default(),
            mount_hist: false,
        }
    }
}

/// The number of CPUs (1 when unknown).
fn default_jobs() -> u32 {
    std::thread::available_parallelism()
        .ok()
        .and_then(|n| u32::try_from(n.get()).ok())
        .unwrap_or(1)
}
