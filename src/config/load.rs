//! Loading one target configuration directory (`configs/<tuple>.<name>/`) into a
//! [`TargetConfig`], checking every rule of docs/configuration.md on the way.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::files::{self, Kind};
use super::libc::{elibc, resolve_libc, Libc};
use super::portage::{install_mask_files, kernel_squashfs_compressors, portage_tmpdir};
use super::target::Target;
use super::worlds::{kernel_package, optional_atoms, stacked_worlds, World};
use super::{Problem, Report};

/// Kernel packages that need `linux.config` (a full `.config`, or a fragment for
/// gentoo-kernel); the others are binary kernels.
const NEEDS_LINUX_CONFIG: [&str; 4] = [
    "sys-kernel/gentoo-kernel",
    "sys-kernel/gentoo-sources",
    "sys-kernel/git-sources",
    "sys-kernel/raspberrypi-sources",
];

/// The box of the initramfs (and of a stage0 installation), from which of
/// `toybox-mini.config` / `busybox-mini.config` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BoxKind {
    Toybox,
    Busybox,
}

impl BoxKind {
    /// `toybox` or `busybox`: the package name and the prefix of its config files.
    pub fn name(self) -> &'static str {
        match self {
            BoxKind::Toybox => "toybox",
            BoxKind::Busybox => "busybox",
        }
    }

    fn other(self) -> BoxKind {
        match self {
            BoxKind::Toybox => BoxKind::Busybox,
            BoxKind::Busybox => BoxKind::Toybox,
        }
    }
}

/// A loaded and validated target configuration directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetConfig {
    /// The directory as given.
    pub dir: PathBuf,
    /// From the directory name `<tuple>.<name>`.
    pub target: Target,
    /// `build-arch`: the kernel's `ARCH` when cross-compiling (`arm64`, `x86_64`, ...).
    pub build_arch: String,
    pub box_kind: BoxKind,
    pub libc: Libc,
    /// `worlds/base` has no `@system`: an embedded installation on toybox or busybox.
    pub stage0: bool,
    /// `worlds/base` without comments and blank lines.
    pub base_atoms: Vec<String>,
    /// Stacked worlds in build order: parents first, ready siblings by name; base excluded.
    pub worlds: Vec<World>,
    /// `worlds/kernel` (empty when missing).
    pub kernel_atoms: Vec<String>,
    /// The one of [`KERNEL_PACKAGES`](super::KERNEL_PACKAGES) named in `worlds/kernel`, as
    /// `sys-kernel/<package>`.
    pub kernel_package: Option<String>,
    /// `worlds/rust.clean` (empty when missing).
    pub rust_clean_atoms: Vec<String>,
    /// Sub-directory names of `repos/`, sorted.
    pub repos: Vec<String>,
    pub split_base: bool,
    pub split_extra: bool,
    pub split_initramfs: bool,
    pub skip_mrproper: bool,
    /// `base.patch` exists.
    pub base_patch: bool,
    /// `linux.config` exists.
    pub has_linux_config: bool,
    /// The full box configuration of [`Self::box_kind`] (`toybox.config` or
    /// `busybox.config`) exists.
    pub full_box_config: bool,
    /// `PORTAGE_TMPDIR` of `target-portage/make.conf` (e.g. `/var/tmp/portage/zen2`): the
    /// recipe creates it before the first emerge.
    pub portage_tmpdir: Option<String>,
    /// Files below `target-portage/` with an `INSTALL_MASK=` line (commented or not), relative
    /// and sorted: stage0 builds switch INSTALL_MASK on and off in each.
    pub install_mask_files: Vec<String>,
    /// The squashfs compressors the kernel's `linux.config` enables (a full `.config` of a
    /// kernel built from sources), in preference order; `None` when not known from here
    /// (binary kernels, and gentoo-kernel's config fragment, whose base configuration
    /// enables them all).
    pub squashfs_compressors: Option<Vec<String>>,
    /// Things that do not block a build, e.g. a world file without a tree entry.
    pub warnings: Vec<Problem>,
}

impl TargetConfig {
    /// The compressor for this target's base and world images: `wanted` (the starter's
    /// `image_compressor`) when given, else the first of [`super::KERNEL_COMPRESSORS`] the
    /// kernel reads (xz, the original's, where it can).
    ///
    /// # Errors
    /// A [`Problem`] at `linux.config` when the kernel cannot read `wanted`.
    pub fn image_compressor(&self, wanted: Option<&str>) -> Result<String, Problem> {
        let known = self.squashfs_compressors.as_deref();
        match (wanted, known) {
            (Some(w), Some(list)) if !list.iter().any(|c| c == w) => Err(Problem {
                path: self.dir.join("linux.config"),
                line: None,
                message: format!(
                    "the starter's image_compressor `{w}` cannot be read by this kernel (it \
                     enables {}); enable {} here or choose one of those",
                    if list.is_empty() {
                        "none".to_owned()
                    } else {
                        list.join(", ")
                    },
                    super::portage::KERNEL_COMPRESSORS
                        .iter()
                        .find(|(name, _)| *name == w)
                        .map_or("it", |(_, option)| option)
                ),
            }),
            (Some(w), _) => Ok(w.to_owned()),
            (None, Some(list)) => Ok(list.first().cloned().unwrap_or_else(|| "xz".into())),
            (None, None) => Ok("xz".into()),
        }
    }
}

/// Loads and validates `configs/<tuple>.<name>/` (docs/configuration.md). Never follows the
/// links that point into the build environment.
///
/// # Errors
/// Every problem found (not only the first), each naming its path and, where one applies,
/// its line.
pub fn load_target(dir: &Path) -> Result<TargetConfig, Vec<Problem>> {
    match inspect_target(dir) {
        (Some(config), report) if report.is_ok() => Ok(config),
        (_, report) if report.is_ok() => Err(vec![Problem {
            path: dir.to_path_buf(),
            line: None,
            message: "could not be loaded for an unknown reason (a bug: please report it)".into(),
        }]),
        (_, report) => Err(report.errors),
    }
}

/// Loads `dir` and returns the configuration (when everything needed could be read) with
/// all errors and warnings.
pub(crate) fn inspect_target(dir: &Path) -> (Option<TargetConfig>, Report) {
    let mut r = Report::default();
    if !files::require(&mut r, dir, Kind::Dir, "the target configuration") {
        return (None, r);
    }
    let target = target_from_dir(&mut r, dir);
    let build_arch = build_arch(&mut r, dir, &dir.join("build-arch"));
    files::require(
        &mut r,
        &dir.join("initramfs"),
        Kind::Dir,
        "the initramfs template",
    );
    let repos_dir = dir.join("repos");
    let repos_ok = files::require(
        &mut r,
        &repos_dir,
        Kind::Dir,
        "local ebuild repositories, may be empty",
    );
    let portage = dir.join("target-portage");
    let portage_ok = files::require(&mut r, &portage, Kind::Dir, "the target's /etc/portage");
    let worlds_dir = dir.join("worlds");
    let worlds_ok = files::require(&mut r, &worlds_dir, Kind::Dir, "the package sets (worlds)");
    let box_kind = box_kind(&mut r, dir);

    let repos = if repos_ok {
        files::local_repos(&mut r, dir, &repos_dir, &portage)
    } else {
        Vec::new()
    };
    let mut libc = None;
    if portage_ok {
        files::check_make_profile(&mut r, &portage.join("make.profile"), true);
        libc = elibc(&mut r, dir, &portage.join("profile/make.defaults"));
    }
    if let Some(target) = &target {
        libc = resolve_libc(&mut r, &portage, target, libc);
    }

    let (mut base_atoms, mut worlds) = (None, Vec::new());
    let (mut kernel_atoms, mut rust_clean_atoms) = (Vec::new(), Vec::new());
    if worlds_ok {
        let base = worlds_dir.join("base");
        if files::require(
            &mut r,
            &base,
            Kind::File,
            "the base world, one atom or set per line",
        ) {
            base_atoms = files::read_atoms(&mut r, dir, &base);
        }
        worlds = stacked_worlds(&mut r, dir, &worlds_dir);
        kernel_atoms = optional_atoms(&mut r, dir, &worlds_dir.join("kernel"));
        rust_clean_atoms = optional_atoms(&mut r, dir, &worlds_dir.join("rust.clean"));
    }
    let kernel_package = kernel_package(&mut r, &worlds_dir.join("kernel"), &kernel_atoms);

    let linux_config = dir.join("linux.config");
    let has_linux_config = files::is_file(&linux_config);
    if let Some(pkg) = &kernel_package {
        if !has_linux_config && NEEDS_LINUX_CONFIG.contains(&pkg.as_str()) {
            let what = if pkg == "sys-kernel/gentoo-kernel" {
                "a config fragment (copied to /etc/kernel/config.d/)"
            } else {
                "a full kernel .config"
            };
            r.error(
                &linux_config,
                None,
                format!("missing; the kernel package {pkg} needs {what} here"),
            );
        }
    }
    let full_box_config = box_kind.is_some_and(|b| full_box_config(&mut r, dir, b));
    let source_kernel = kernel_package
        .as_deref()
        .is_some_and(|p| NEEDS_LINUX_CONFIG.contains(&p) && p != "sys-kernel/gentoo-kernel");
    let squashfs_compressors = if source_kernel && has_linux_config {
        squashfs_compressors(&mut r, dir, &linux_config)
    } else {
        None
    };
    let (mut tmpdir, mut mask_files) = (None, Vec::new());
    if portage_ok {
        tmpdir = portage_tmpdir(&mut r, dir, &portage.join("make.conf"));
        mask_files = install_mask_files(&mut r, &portage);
    }

    let flag = |name: &str| files::is_file(&dir.join(name));
    let config = match (target, build_arch, box_kind, libc, base_atoms) {
        (Some(target), Some(build_arch), Some(box_kind), Some(libc), Some(base_atoms)) => {
            Some(TargetConfig {
                dir: dir.to_path_buf(),
                target,
                build_arch,
                box_kind,
                libc,
                stage0: !base_atoms.iter().any(|a| a == "@system"),
                base_atoms,
                worlds,
                kernel_atoms,
                kernel_package,
                rust_clean_atoms,
                repos,
                split_base: flag("split.base"),
                split_extra: flag("split.extra"),
                split_initramfs: flag("split.initramfs"),
                skip_mrproper: flag("skip.mrproper"),
                base_patch: flag("base.patch"),
                has_linux_config,
                full_box_config,
                portage_tmpdir: tmpdir,
                install_mask_files: mask_files,
                squashfs_compressors,
                warnings: r.warnings.clone(),
            })
        }
        _ => None,
    };
    (config, r)
}

/// The squashfs compressors of a full kernel configuration; a kernel that cannot mount any
/// squashfs image is an error, since every build boots from them.
fn squashfs_compressors(r: &mut Report, root: &Path, linux_config: &Path) -> Option<Vec<String>> {
    let text = files::read_text(r, root, linux_config)?;
    match kernel_squashfs_compressors(&text) {
        Some(list) if !list.is_empty() => Some(list),
        Some(_) => {
            r.error(
                linux_config,
                None,
                "enables no squashfs compressor, so the kernel cannot mount the images; set \
                 CONFIG_SQUASHFS_XZ=y (or _ZSTD, _ZLIB, _LZO, _LZ4)",
            );
            None
        }
        None => {
            r.error(
                linux_config,
                None,
                "does not enable squashfs (CONFIG_SQUASHFS=y or =m), so the kernel cannot mount \
                 the base and world images; enable it and a compressor such as \
                 CONFIG_SQUASHFS_XZ",
            );
            None
        }
    }
}

/// The target named by the directory (`<tuple>.<name>`).
fn target_from_dir(r: &mut Report, dir: &Path) -> Option<Target> {
    let name = dir.file_name().and_then(|n| n.to_str());
    let parsed = name.map(Target::parse);
    match parsed {
        Some(Ok(target)) => Some(target),
        Some(Err(e)) => {
            r.error(
                dir,
                None,
                format!("directory name: {e}; rename the directory to `<tuple>.<name>`"),
            );
            None
        }
        None => {
            r.error(
                dir,
                None,
                "cannot tell the target: the directory name is not `<tuple>.<name>`",
            );
            None
        }
    }
}

/// `build-arch`: exactly one word.
fn build_arch(r: &mut Report, root: &Path, path: &Path) -> Option<String> {
    if !files::require(
        r,
        path,
        Kind::File,
        "the kernel's ARCH, one word such as arm64",
    ) {
        return None;
    }
    let text = files::read_text(r, root, path)?;
    match text.split_whitespace().collect::<Vec<_>>().as_slice() {
        [word] if !word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            r.error(
                path,
                None,
                format!(
                    "{word:?} is not a kernel ARCH: use ASCII letters, digits and `_` \
                     (such as arm64 or x86_64)"
                ),
            );
            None
        }
        [word] => Some((*word).to_owned()),
        [] => {
            r.error(
                path,
                None,
                "is empty; write the kernel's ARCH, one word such as arm64",
            );
            None
        }
        words => {
            r.error(
                path,
                None,
                format!(
                    "holds {} words; write exactly one: the kernel's ARCH (such as arm64)",
                    words.len()
                ),
            );
            None
        }
    }
}

/// Exactly one of `toybox-mini.config` and `busybox-mini.config`.
fn box_kind(r: &mut Report, dir: &Path) -> Option<BoxKind> {
    let toybox = files::is_file(&dir.join("toybox-mini.config"));
    let busybox = files::is_file(&dir.join("busybox-mini.config"));
    match (toybox, busybox) {
        (true, false) => Some(BoxKind::Toybox),
        (false, true) => Some(BoxKind::Busybox),
        (false, false) => {
            r.error(
                dir,
                None,
                "has neither toybox-mini.config nor busybox-mini.config; add exactly one \
                 (it chooses the initramfs box)",
            );
            None
        }
        (true, true) => {
            r.error(
                dir,
                None,
                "has both toybox-mini.config and busybox-mini.config; keep exactly one",
            );
            None
        }
    }
}

/// Whether the full configuration of `box_kind` exists; the other box's is ignored (warning).
fn full_box_config(r: &mut Report, dir: &Path, box_kind: BoxKind) -> bool {
    let other = dir.join(format!("{}.config", box_kind.other().name()));
    if files::is_file(&other) {
        let (used, unused) = (box_kind.name(), box_kind.other().name());
        r.warn(
            other,
            None,
            format!("ignored: the box is {used}, not {unused}"),
        );
    }
    files::is_file(&dir.join(format!("{}.config", box_kind.name())))
}
