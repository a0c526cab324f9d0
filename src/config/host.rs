//! The host configuration (`configs/host`, usually a link to `configs/host-<arch>/`): the
//! shared build environment's portage configuration, world and local repositories.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::files::{self, Kind};
use super::portage;
use super::{Problem, Report};

/// A loaded host configuration (docs/configuration.md, "The host configuration").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostConfig {
    /// The directory as given (`configs/host` may be a link; it points inside the tree, so
    /// following it on the build host is fine).
    pub dir: PathBuf,
    /// `worlds/base`: the host world (crossdev, rust, squashfs-tools-ng, ...).
    pub world_atoms: Vec<String>,
    /// Sub-directory names of `repos/` (optional), sorted.
    pub repos: Vec<String>,
    /// `cpuflags` exists: the primary steps export `cpuid2cpuflags`' flags (the original wrote
    /// them to `package.use/00cpu-flags-native`; here nothing is written into `configs/`).
    pub cpuflags: bool,
    /// `PORTAGE_TMPDIR` of `target-portage/make.conf`: created before the first emerge.
    pub portage_tmpdir: Option<String>,
    /// `(tuple, rust target)` pairs of `target-portage/env/dev-lang/rust`
    /// (`RUST_CROSS_TARGETS`): the tuples that get a rust cross toolchain, and the rust
    /// target name each has (custom ones such as `x86_64-crossdev-linux-musl` included).
    pub rust_targets: Vec<(String, String)>,
}

/// Loads and validates a host configuration: `target-portage/` and `worlds/base` are
/// required, `repos/` is optional (each repository declared in `target-portage/repos.conf`),
/// a `target-portage/make.profile`, if present, must be a link to a profile.
///
/// # Errors
/// Every problem found, each naming its path.
pub fn load_host(dir: &Path) -> Result<HostConfig, Vec<Problem>> {
    match inspect_host(dir) {
        (Some(host), report) if report.is_ok() => Ok(host),
        (_, report) => Err(report.errors),
    }
}

/// Loads `dir` and returns the configuration (when it could be read) with all problems.
pub(crate) fn inspect_host(dir: &Path) -> (Option<HostConfig>, Report) {
    let mut report = Report::default();
    if !files::require(&mut report, dir, Kind::Dir, "the host configuration") {
        return (None, report);
    }
    let portage = dir.join("target-portage");
    let portage_ok = files::require(
        &mut report,
        &portage,
        Kind::Dir,
        "the build environment's /etc/portage",
    ) && files::stays_inside(&mut report, dir, &portage);
    let base = dir.join("worlds/base");
    let world_atoms = if files::require(
        &mut report,
        &base,
        Kind::File,
        "the host world, one atom per line",
    ) {
        files::read_atoms(&mut report, dir, &base)
    } else {
        None
    };
    let repos_dir = dir.join("repos");
    let repos = match files::kind(&repos_dir) {
        Ok(Kind::Missing) => Vec::new(),
        _ if files::require(
            &mut report,
            &repos_dir,
            Kind::Dir,
            "local ebuild repositories",
        ) =>
        {
            files::local_repos(&mut report, dir, &repos_dir, &portage)
        }
        _ => Vec::new(),
    };
    if portage_ok {
        files::check_make_profile(&mut report, &portage.join("make.profile"), false);
    }
    let cpuflags = files::is_file(&dir.join("cpuflags"));
    let (mut tmpdir, mut rust_targets) = (None, Vec::new());
    if portage_ok {
        tmpdir = portage::portage_tmpdir(&mut report, dir, &portage.join("make.conf"));
        rust_targets =
            portage::rust_cross_targets(&mut report, dir, &portage.join("env/dev-lang/rust"));
    }
    let host = world_atoms.map(|world_atoms| HostConfig {
        dir: dir.to_path_buf(),
        world_atoms,
        repos,
        cpuflags,
        portage_tmpdir: tmpdir,
        rust_targets,
    });
    (host, report)
}

/// The host world installs distcc (`sys-devel/distcc`, with or without a version operator).
pub fn world_has_distcc(atoms: &[String]) -> bool {
    atoms.iter().any(|a| {
        let a = a.trim_start_matches(['=', '<', '>', '~']);
        a == "sys-devel/distcc"
            || a.starts_with("sys-devel/distcc-")
            || a.starts_with("sys-devel/distcc:")
    })
}
