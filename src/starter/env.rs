//! The environment variables of the original starter scripts (docs/starter.md), applied
//! over the starter's options. Variables that are unset or empty change nothing, except
//! `BUILD_HIST` (empty = latest) and `GENTOO_MIRRORS` (empty = none).

use std::path::{Path, PathBuf};

use super::options::{self, HistorySel, Options, UiKind};
use super::StarterError;

/// Reads one variable; `None` when unset.
pub type EnvFn<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Applies every override found through `env` to `o`.
///
/// # Errors
/// [`StarterError::Env`] naming the first variable whose value is not allowed.
pub(crate) fn apply(o: &mut Options, env: EnvFn<'_>, tree: &Path) -> Result<(), StarterError> {
    let set = |var: &str| env(var).filter(|v| !v.is_empty());
    if let Some(v) = set("TMUX_MODE") {
        if check("TMUX_MODE", &v, options::switch)? {
            o.ui = Some(UiKind::Tmux);
        } else if o.ui == Some(UiKind::Tmux) {
            o.ui = None;
        }
    }
    if let Some(v) = set("TARBALL_MIRROR") {
        o.mirror = check("TARBALL_MIRROR", &v, options::mirror)?;
    }
    if let Some(v) = set("MNT_TYPE") {
        o.mount_type = check("MNT_TYPE", &v, str::parse)?;
    }
    if let Some(v) = set("MNT_OPTS") {
        o.mount_opts = check("MNT_OPTS", &v, options::mount_opts)?;
    }
    if let Some(v) = set("TMP_TYPE") {
        o.tmp_type = check("TMP_TYPE", &v, str::parse)?;
    }
    if let Some(v) = set("TMP_SIZE") {
        o.tmp_size = check("TMP_SIZE", &v, options::size)?;
    }
    if let Some(v) = set("BUILD_JOBS") {
        o.jobs = check("BUILD_JOBS", &v, |s| {
            s.parse::<i64>()
                .map_err(|_| "expected a whole number".to_owned())
                .and_then(options::jobs)
        })?;
    }
    if let Some(v) = env("BUILD_HIST") {
        o.history = match check("BUILD_HIST", &v, |s| options::history(s, "".as_ref()))? {
            HistorySel::Path(p) => {
                let p = absolute("BUILD_HIST", &v, p)?;
                check("BUILD_HIST", &v, |_| options::path_option(&p, tree))?;
                HistorySel::Path(p)
            }
            other => other,
        };
    }
    if let Some(v) = set("HIST_TYPE") {
        o.history_type = check("HIST_TYPE", &v, str::parse)?;
    }
    if let Some(v) = set("DISTFILES") {
        let p = absolute("DISTFILES", &v, PathBuf::from(&v))?;
        o.distfiles = check("DISTFILES", &v, |_| options::path_option(&p, tree))?;
    }
    if let Some(v) = set("BH_OPENPGP_KEY") {
        o.openpgp_key = absolute("BH_OPENPGP_KEY", &v, PathBuf::from(&v))?;
    }
    if let Some(v) = set("UMOUNT_ASK") {
        o.umount_ask = check("UMOUNT_ASK", &v, options::switch)?;
    }
    if let Some(v) = set("MOUNT_HIST") {
        o.mount_hist = check("MOUNT_HIST", &v, options::switch)?;
    }
    if let Some(v) = env("GENTOO_MIRRORS") {
        o.gentoo_mirrors = check("GENTOO_MIRRORS", &v, options::gentoo_mirrors)?;
    }
    Ok(())
}

/// Parses `value` of `var`, naming the variable on error.
fn check<T>(
    var: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, StarterError> {
    parse(value).map_err(|reason| env_error(var, value, reason))
}

/// `path` made absolute against the current directory (paths in variables are relative to
/// where the command runs).
fn absolute(var: &str, value: &str, path: PathBuf) -> Result<PathBuf, StarterError> {
    std::path::absolute(&path).map_err(|e| {
        env_error(
            var,
            value,
            format!("cannot make the path absolute ({e}); give an absolute path"),
        )
    })
}

fn env_error(var: &str, value: &str, reason: String) -> StarterError {
    StarterError::Env {
        var: var.to_owned(),
        value: value.to_owned(),
        reason,
    }
}
