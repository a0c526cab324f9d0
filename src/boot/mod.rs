//! `build-helper boot`: starts a build in QEMU, the way the result boots on a machine: the
//! build's kernel and (split.initramfs) initramfs, the build directory as the medium holding
//! the squashfs images (virtio 9p or a virtio disk), and the original build-helper's boot
//! parameters on the kernel command line. With `--expect` it is a smoke test that watches the
//! serial console ([`console`]). The command lines themselves are built in [`qemu`].
//!
//! Not for: building anything, or writing to the build (the medium is read-only; only the
//! console transcript `boot-console.log` is written next to the artifacts, through
//! [`crate::saferoot`]: builds/ is writable from every chroot, so a link planted there is
//! replaced, never written through).
//!
//! A build directory is `builds/<tuple>.<name>.<date>/` as the recipe's `collect` step leaves
//! it (docs/recipe.md): the kernel in `EFI/boot/bootx64.efi` (a raspberry pi's in
//! `boot/kernel8.img` or `boot/kernel.img`, m68k's in `kernel`), the separate initramfs in
//! `initramfs`, split images as `base`, `<world>` and `config`. A target's build is found
//! from the run records (`work/<run>/`, root's alone), never from the names under builds/.

pub mod console;
pub mod qemu;
pub mod run;

use std::path::{Path, PathBuf};

use crate::config::{self, Target, TargetConfig};
use crate::saferoot::{Resolve, Root, SafeError};
pub use qemu::{Accel, Arch, BootSpec, Medium};

/// What went wrong before QEMU started; every message says what, where and what to do.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(
        "no finished build of {target} in the run records of {work} (a run whose `collect` \
         step is done, its directory under builds/): run the build first (build-helper run \
         STARTER), or name a build directory"
    )]
    NoBuild { target: String, work: PathBuf },
    #[error(
        "{0}: not a build directory (builds/<tuple>.<name>.<date>/) nor a target (<tuple>.<name>)"
    )]
    NotABuild(String),
    #[error("{dir}: no kernel (looked for {looked}); was the build's collect step done?")]
    NoKernel { dir: PathBuf, looked: String },
    #[error("the configuration of {target} could not be read: {problems}")]
    Config { target: String, problems: String },
    #[error(
        "build-arch `{0}` cannot be booted by build-helper boot yet (x86_64, x86 and arm64 can)"
    )]
    Arch(String),
    #[error("{binary} not found in PATH: install Debian's {package} (apt-get install {package})")]
    NoQemu {
        binary: &'static str,
        package: &'static str,
    },
    #[error("--accel kvm: {0}")]
    NoKvm(String),
    #[error("image `{name}` is neither in {dir} nor inside the initramfs (split.extra is {split}); the build has: {have}")]
    NoImage {
        name: String,
        dir: PathBuf,
        split: &'static str,
        have: String,
    },
}

/// What the user asked for (`build-helper boot` flags).
#[derive(Debug, Clone, Default)]
pub struct BootRequest {
    /// `squash_stack`; `None`: the build's world tree (every world image, children above
    /// their parents), or, for a target without worlds, nothing (the init's default).
    pub stack: Option<Vec<String>>,
    /// `squash_load`; `None`: the init's default.
    pub load: Option<Vec<String>>,
    /// `docache`: the init copies the images into memory and releases the medium.
    pub docache: bool,
    /// Kernel arguments appended last.
    pub append: Vec<String>,
    /// The medium; `None`: 9p when the build directory holds an image, else none.
    pub medium: Option<Medium>,
    /// `None`: KVM when it works here ([`kvm_works`]), TCG otherwise.
    pub accel: Option<Accel>,
    /// Guest memory, MiB.
    pub memory_mib: u32,
    /// A smoke test is running: the console is a pipe, not the user's terminal.
    pub smoke: bool,
}

/// A build located on disk: its directory and its target's configuration.
#[derive(Debug, Clone)]
pub struct Build {
    /// `builds/<tuple>.<name>.<date>/`, absolute when it was given as a path.
    pub dir: PathBuf,
    /// The target's configuration (`configs/<tuple>.<name>/` of the build's tree).
    pub config: TargetConfig,
}

/// Finds the build to boot: `what` is a build directory (named by the user: trusted), or a
/// target `<tuple>.<name>`, whose build is the newest finished one in the run records: of
/// the runs under `<tree>/work/` whose plan holds the target and whose checkpoint has its
/// `collect` step done, the greatest plan date; its directory `builds/<target>.<date>` must
/// be a directory, not a link. Directory names under builds/ (writable from every chroot)
/// choose nothing. The target's configuration is read from `<tree>/configs/` (for a build
/// directory: the tree two levels above it).
///
/// Errors: [`BootError::NoBuild`], [`BootError::NotABuild`], [`BootError::Config`].
pub fn find_build(tree: &Path, what: &str) -> Result<Build, BootError> {
    let as_dir = Path::new(what);
    let (dir, target, tree) = if as_dir.is_dir() {
        let dir = std::fs::canonicalize(as_dir).unwrap_or_else(|_| as_dir.to_path_buf());
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // <tuple>.<name>.<date>: the date is the last dot-separated part.
        let target = name
            .rsplit_once('.')
            .and_then(|(t, _)| Target::parse(t).ok())
            .ok_or_else(|| BootError::NotABuild(what.into()))?;
        let tree = dir
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| tree.to_path_buf());
        (dir, target, tree)
    } else {
        let target = Target::parse(what).map_err(|_| BootError::NotABuild(what.into()))?;
        let dir = recorded_build(tree, &target).ok_or_else(|| BootError::NoBuild {
            target: target.to_string(),
            work: crate::rundir::work(tree),
        })?;
        (dir, target, tree.to_path_buf())
    };
    let config_dir = tree.join("configs").join(target.to_string());
    let config = config::load_target(&config_dir).map_err(|problems| BootError::Config {
        target: target.to_string(),
        problems: problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("; "),
    })?;
    Ok(Build { dir, config })
}

/// The newest finished build of `target` in the run records of `tree` (see [`find_build`]);
/// runs whose plan or checkpoint cannot be read are passed over.
fn recorded_build(tree: &Path, target: &Target) -> Option<PathBuf> {
    let builds = tree.join("builds");
    crate::rundir::runs(tree)
        .iter()
        .filter_map(|run| {
            let plan = crate::rundir::load_plan(run).ok()?;
            plan.targets.iter().find(|t| &t.target == target)?;
            let cp = crate::rundir::load_checkpoint(run, Some(&plan)).ok()?;
            let record = cp.targets.iter().find(|t| &t.target == target)?;
            let collected = record
                .steps
                .iter()
                .any(|s| s.name == "collect" && s.state.is_done());
            collected.then_some(plan.date)
        })
        .filter(|date| {
            std::fs::symlink_metadata(builds.join(format!("{target}.{date}")))
                .is_ok_and(|m| m.file_type().is_dir())
        })
        .max()
        .map(|date| builds.join(format!("{target}.{date}")))
}

/// Writes the console transcript `bytes` to `<build dir>/boot-console.log` (mode 0644)
/// through [`crate::saferoot`]: the build directory is opened from its parent without
/// following a link, and a link at `boot-console.log` is replaced, never written through.
/// Returns the file's path.
///
/// Errors: [`crate::saferoot::SafeError`] (a build directory that is a link is
/// [`crate::saferoot::SafeError::Escapes`]).
pub fn save_transcript(build_dir: &Path, bytes: &[u8]) -> Result<PathBuf, SafeError> {
    let (Some(parent), Some(name)) = (build_dir.parent(), build_dir.file_name()) else {
        return Err(SafeError::Io {
            path: build_dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a build directory"),
        });
    };
    let root = Root::open(parent)?;
    let rel = Path::new(name).join(TRANSCRIPT);
    root.replace(&rel, Resolve::NoSymlinks, bytes, 0o644, false)?;
    Ok(build_dir.join(TRANSCRIPT))
}

/// The console transcript's name in the build directory.
pub const TRANSCRIPT: &str = "boot-console.log";

/// The kernel of a build directory: `EFI/boot/bootx64.efi`, else `boot/kernel8.img`,
/// `boot/kernel.img`, `kernel` (the places `collect` uses); a link there is not taken (QEMU
/// would read what it points to, on the build machine).
///
/// Errors: [`BootError::NoKernel`].
pub fn kernel_of(dir: &Path) -> Result<PathBuf, BootError> {
    let places = [
        "EFI/boot/bootx64.efi",
        "boot/kernel8.img",
        "boot/kernel.img",
        "kernel",
    ];
    places
        .iter()
        .map(|p| dir.join(p))
        .find(|p| is_plain_file(p))
        .ok_or_else(|| BootError::NoKernel {
            dir: dir.to_path_buf(),
            looked: places.join(", "),
        })
}

/// The default `squash_stack` of a configuration: every world, children above their
/// parents (the reverse of the world tree's order, worlds/tree).
pub fn default_stack(config: &TargetConfig) -> Vec<String> {
    config.worlds.iter().rev().map(|w| w.name.clone()).collect()
}

/// The medium when none is asked for: 9p when the build directory holds `base`, `config` or
/// an image of `stack` (split.base / split.extra), none when every image is inside the
/// initramfs.
pub fn default_medium(build_dir: &Path, stack: &[String]) -> Medium {
    let in_dir = |name: &str| build_dir.join(name).is_file();
    if ["base", "config"].iter().any(|n| in_dir(n)) || stack.iter().any(|n| in_dir(n)) {
        Medium::NineP
    } else {
        Medium::None
    }
}

/// KVM works here for `arch`: the build machine is that machine, `/dev/kvm` opens for
/// reading and writing, and the CPU has hardware virtualisation (`vmx` or `svm` in
/// /proc/cpuinfo on x86; a nested or paravirtual KVM without them cannot run a plain guest).
/// `Err` says why not.
pub fn kvm_works(arch: Arch) -> Result<(), String> {
    let machine = nix::sys::utsname::uname()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_default();
    if machine != arch.host_machine() {
        return Err(format!(
            "this build machine is {machine}, the build is {}",
            arch.host_machine()
        ));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm: {e}"))?;
    if arch == Arch::X86_64 {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let hw = cpuinfo
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
        if !hw {
            return Err("the CPU shows no vmx/svm flag (no hardware virtualisation)".into());
        }
    }
    Ok(())
}

/// `path` is a regular file, not a link to one.
fn is_plain_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

/// Finds `binary` in PATH.
fn in_path(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
}

/// Turns a located build and a request into a [`BootSpec`] and the QEMU program to run.
/// Every image named in the stack must exist, in the build directory (split.extra) or
/// inside the initramfs (not split); the medium is 9p by default when the build directory
/// holds `base`, `config` or a stacked image, and none otherwise.
///
/// Errors: [`BootError::Arch`], [`BootError::NoKernel`], [`BootError::NoQemu`],
/// [`BootError::NoKvm`] (only for an explicit `--accel kvm`), [`BootError::NoImage`].
pub fn prepare(build: &Build, req: &BootRequest) -> Result<(PathBuf, BootSpec), BootError> {
    let c = &build.config;
    let arch = Arch::from_build_arch(&c.build_arch)
        .ok_or_else(|| BootError::Arch(c.build_arch.clone()))?;
    let kernel = kernel_of(&build.dir)?;
    let initramfs = Some(build.dir.join("initramfs")).filter(|p| is_plain_file(p));
    // No world and no --stack: nothing is passed, the init's default (`extra`) applies.
    let stack = req
        .stack
        .clone()
        .or_else(|| Some(default_stack(c)).filter(|s| !s.is_empty()));
    let in_dir = |name: &str| build.dir.join(name).is_file();
    for name in stack.iter().flatten().chain(req.load.iter().flatten()) {
        if !in_dir(name) && c.split_extra {
            let mut have: Vec<String> = std::fs::read_dir(&build.dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            have.sort();
            return Err(BootError::NoImage {
                name: name.clone(),
                dir: build.dir.clone(),
                split: "on",
                have: have.join(" "),
            });
        }
        if !c.split_extra && !c.worlds.iter().any(|w| &w.name == name) && !in_dir(name) {
            return Err(BootError::NoImage {
                name: name.clone(),
                dir: build.dir.clone(),
                split: "off",
                have: c
                    .worlds
                    .iter()
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
    }
    let medium = req
        .medium
        .unwrap_or_else(|| default_medium(&build.dir, stack.as_deref().unwrap_or_default()));
    let accel = match req.accel {
        Some(Accel::Kvm) => {
            kvm_works(arch).map_err(BootError::NoKvm)?;
            Accel::Kvm
        }
        Some(Accel::Tcg) => Accel::Tcg,
        None => {
            if kvm_works(arch).is_ok() {
                Accel::Kvm
            } else {
                Accel::Tcg
            }
        }
    };
    let qemu = in_path(arch.qemu_binary()).ok_or(BootError::NoQemu {
        binary: arch.qemu_binary(),
        package: arch.debian_package(),
    })?;
    let spec = BootSpec {
        arch,
        accel,
        kernel,
        initramfs,
        build_dir: build.dir.clone(),
        medium,
        stack,
        load: req.load.clone(),
        docache: req.docache,
        append: req.append.clone(),
        memory_mib: req.memory_mib,
        interactive: !req.smoke,
    };
    Ok((qemu, spec))
}

#[cfg(test)]
mod tests;
