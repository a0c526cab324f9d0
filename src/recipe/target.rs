//! The first half of the target phase (docs/recipe.md, "The target phase"): one target's cross root,
//! from the crossdev skeleton to its built world; the rest is in [`super::images`]. `$R` is
//! the target's cross root, `$S` its base image directory, `$X` what stays out of the images,
//! `$K` its kernel sources, `$F` its initramfs, `$KI` the kept kernel image, `$KB` the kept
//! raspberry pi boot files (dtbs, overlays).

use super::{sh_dq, sh_quote, sh_words, step, tmpdir_commands, tmpdir_word, Phase, Step};
use crate::config::{BoxKind, Libc, TargetConfig};

/// Kernel packages whose sources are built here (target-config.md, linux.config).
pub(super) const SOURCE_KERNELS: [&str; 3] = [
    "sys-kernel/gentoo-sources",
    "sys-kernel/git-sources",
    "sys-kernel/raspberrypi-sources",
];

/// What the target phase depends on.
#[derive(Debug, Clone)]
pub struct TargetRecipe<'a> {
    /// The target's configuration.
    pub config: &'a TargetConfig,
    /// The starter sets GENTOO_MIRRORS: the target-portage make.conf gets a
    /// `GENTOO_MIRRORS="$GENTOO_MIRRORS"` line for the run (added in `target-env`, removed in
    /// `collect`, docs/recipe.md "Environment").
    pub gentoo_mirrors: bool,
    /// The compressor of the base and world images (gensquashfs `-c`), one the target's
    /// kernel reads ([`TargetConfig::image_compressor`]).
    pub image_compressor: String,
    /// `PORTAGE_TMPDIR` of the host configuration's make.conf (the target's own is in
    /// `config`); both are created at the start of every target step.
    pub host_portage_tmpdir: Option<String>,
}

/// The marker ending the make.conf line that [`TargetRecipe`] adds for GENTOO_MIRRORS, so
/// it (and only it) can be removed again.
pub const MIRRORS_MARKER: &str = "# build-helper: this run only";

pub(super) const DIRS: &str = r#"S="$R/usr/src/squashfs"
X="$R/usr/src/squashfs.exclude"
K="$R/usr/src/linux"
F="$R/usr/src/initramfs"
KI="$R/usr/src/kernel-image"
KB="$R/usr/src/kernel-boot"
kmake() { make -C "$K" ARCH="$BUILD_ARCH" CROSS_COMPILE="$CROSSDEV_TARGET-" "$@"; }
# -j only without the run's jobserver: a make given -j leaves the jobserver for a pool of its own.
kjobs() { case " ${MAKEFLAGS:-} " in *" --jobserver-auth="*) ;; *) echo "-j$BUILD_JOBS" ;; esac; }
FI() { FEATURES=-collision-protect "$CROSSDEV_TARGET-emerge" --config-root="$S" "$@"; }
nodes() {
  mkdir -p "$1/dev"
  [ -e "$1/dev/console" ] || mknod -m 600 "$1/dev/console" c 5 1
  [ -e "$1/dev/null" ] || mknod -m 666 "$1/dev/null" c 1 3
  [ -e "$1/dev/tty" ] || mknod -m 666 "$1/dev/tty" c 5 0
  [ -e "$1/dev/tty1" ] || mknod -m 620 "$1/dev/tty1" c 4 1
  [ -e "$1/dev/random" ] || mknod -m 666 "$1/dev/random" c 1 8
  [ -e "$1/dev/urandom" ] || mknod -m 666 "$1/dev/urandom" c 1 9
  [ -e "$1/dev/zero" ] || mknod -m 666 "$1/dev/zero" c 1 5
}
unstray() { if [ -d "$1$R" ]; then cp -a "$1$R/." "$1/"; rm -rf "$1/usr/$CROSSDEV_TARGET.$BUILD_NAME"; fi; }
"#;

impl TargetRecipe<'_> {
    /// The kernel package is built from sources here (full `.config`).
    pub(super) fn source_kernel(&self) -> bool {
        self.config
            .kernel_package
            .as_deref()
            .is_some_and(|k| SOURCE_KERNELS.contains(&k))
    }

    /// The kernel package is `gentoo-kernel`, built by kernel-build.eclass with the
    /// configuration's linux.config as a config.d fragment.
    pub(super) fn dist_kernel(&self) -> bool {
        self.config.kernel_package.as_deref() == Some("sys-kernel/gentoo-kernel")
    }

    /// The kernel image a distribution kernel (gentoo-kernel, gentoo-kernel-bin, or any other
    /// kernel-install.eclass package) leaves below its `/usr/src/linux-<version>` under a
    /// cross ROOT, by build-arch: dist-kernel-utils.eclass, `dist-kernel_get_image_path`
    /// (arm64 and riscv without KERNEL_EFI_ZBOOT; the architectures it refuses get `vmlinux`,
    /// the m68k kernel's name).
    pub(super) fn dist_kernel_image(&self) -> &'static str {
        match self.config.build_arch.as_str() {
            "x86_64" | "x86" | "i386" => "arch/x86/boot/bzImage",
            "arm64" => "arch/arm64/boot/Image.gz",
            "riscv" => "arch/riscv/boot/Image.gz",
            "arm" => "arch/arm/boot/zImage",
            "loongarch" => "arch/loongarch/boot/vmlinux.elf",
            _ => "vmlinux",
        }
    }

    fn libc_package(&self) -> &'static str {
        match self.config.libc {
            Libc::Musl => "sys-libs/musl",
            Libc::Glibc => "sys-libs/glibc",
        }
    }

    pub(super) fn box_package(&self) -> (&'static str, &'static str) {
        match self.config.box_kind {
            BoxKind::Toybox => ("sys-apps/toybox", "toybox"),
            BoxKind::Busybox => ("sys-apps/busybox", "busybox"),
        }
    }

    /// The path of the built kernel image below `$K`, by build-arch. A raspberry pi's
    /// arm64 kernel is `Image.gz` (the original's `kernel8.img`; the firmware reads it
    /// compressed), every other arm64 kernel the plain `Image`.
    pub(super) fn kernel_image(&self) -> &'static str {
        if self.config.build_arch == "arm64" && self.rpi_kernel_name().is_some() {
            return "arch/arm64/boot/Image.gz";
        }
        match self.config.build_arch.as_str() {
            "x86_64" | "x86" | "i386" => "arch/x86/boot/bzImage",
            "arm64" => "arch/arm64/boot/Image",
            "arm" => "arch/arm/boot/zImage",
            "riscv" => "arch/riscv/boot/Image",
            _ => "vmlinux",
        }
    }

    /// musl's dynamic loader name for the tuple (`/etc/ld-musl-<arch>.path`).
    fn musl_arch(&self) -> String {
        let t = &self.config.target.tuple;
        let arch = self.config.target.arch();
        if arch.starts_with("arm") && !arch.starts_with("arm64") && t.ends_with("hf") {
            "armhf".into()
        } else if arch == "i686" || arch == "i586" || arch == "i486" {
            "i386".into()
        } else {
            arch.into()
        }
    }

    pub(super) fn parent_db(&self, parent: &str) -> String {
        if parent == "base" {
            if self.config.stage0 {
                "$X/pkg.base".into()
            } else {
                "$S/var/db/pkg".into()
            }
        } else {
            format!("$X/pkg.{}", sh_dq(parent))
        }
    }

    pub(super) fn parent_dir(parent: &str) -> String {
        if parent == "base" {
            "$S".into()
        } else {
            format!("$R/usr/src/squashfs.{}", sh_dq(parent))
        }
    }

    fn target_env(&self) -> String {
        let mut s = String::from(
            r#"if [ ! -d "$R/usr" ]; then
  mkdir -p "$R"
  cp -a "/usr/$CROSSDEV_TARGET.skeleton/." "$R/"
fi
if [ -e "$R/etc/portage" ] && [ ! -L "$R/etc/portage" ]; then rm -rf "$R/etc/portage"; fi
mkdir -p "$R/etc"
ln -sfn "$BUILD_CONF/target-portage" "$R/etc/portage"
if [ -e "$R/packages" ] && [ ! -L "$R/packages" ]; then rm -rf "$R/packages"; fi
ln -sfn "$BUILD_PKGS" "$R/packages"
ln -sfn "$CROSSDEV_TARGET.$BUILD_NAME" "/usr/$CROSSDEV_TARGET"
"#,
        );
        if self.config.stage0 && self.config.full_box_config {
            let name = self.config.box_kind.name();
            s.push_str(&format!(
                "mkdir -p \"$BUILD_CONF/target-portage/savedconfig/sys-apps\"\n\
                 cp \"$BUILD_CONF/{name}.config\" \"$BUILD_CONF/target-portage/savedconfig/sys-apps/{name}\"\n"
            ));
        }
        if self.gentoo_mirrors {
            s.push_str(&format!(
                "sed -i '/ {MIRRORS_MARKER}$/d' \"$BUILD_CONF/target-portage/make.conf\"\n\
                 echo \"GENTOO_MIRRORS=\\\"$GENTOO_MIRRORS\\\" {MIRRORS_MARKER}\" >> \"$BUILD_CONF/target-portage/make.conf\"\n"
            ));
        }
        s
    }

    /// The build name asks for a native build (contains `native`).
    fn native(&self) -> bool {
        self.config.target.name.contains("native")
    }

    /// What every target step starts with: the VIDEO_CARDS decision of `target-env`. A
    /// native build (name contains `native`) of the host's architecture gets
    /// VIDEO_CARDS from the starter's VIDEO_CARDS_NATIVE and LLVM_TARGETS=AMDGPU when amdgpu
    /// is among them, and the build machine's CPU flags ([`super::CPU_FLAGS_EXPORT`]); every
    /// other build runs with VIDEO_CARDS unset. Exported in each step
    /// because every step is its own process.
    pub(super) fn video_cards(&self) -> String {
        if self.native() {
            r#"native=no
if [ "${CROSSDEV_TARGET%%-*}" = "$(portageq envvar CHOST | cut -d- -f1)" ]; then native=yes; fi
if [ "$native" = yes ]; then
  export VIDEO_CARDS="${VIDEO_CARDS_NATIVE:-}"
  case " $VIDEO_CARDS " in *" amdgpu "*) export LLVM_TARGETS=AMDGPU ;; esac
else
  unset VIDEO_CARDS
fi
if [ "$native" = yes ]; then
"#
            .to_string()
                + &super::CPU_FLAGS_EXPORT
                    .lines()
                    .map(|l| format!("  {l}\n"))
                    .collect::<String>()
                + "fi\n"
        } else {
            "unset VIDEO_CARDS\n".into()
        }
    }

    /// What every target step starts with besides VIDEO_CARDS: the `PORTAGE_TMPDIR`s, and
    /// `install_mask_on` / `install_mask_off`, which switch the `INSTALL_MASK=` line of every
    /// target-portage file that carries one (make.conf, `env/sys-devel/gcc`, ...).
    pub(super) fn target_prelude(&self) -> String {
        // The host configuration's is read by the build environment's own emerges (ROOT
        // `/`), the target's by the cross emerges (ROOT `$R/`).
        let mut dirs: Vec<String> = Vec::new();
        for (d, root) in [
            (&self.host_portage_tmpdir, "/"),
            (&self.config.portage_tmpdir, "\"$R\"/"),
        ] {
            if let Some(d) = d {
                let word = tmpdir_word(d, root);
                if !dirs.contains(&word) {
                    dirs.push(word);
                }
            }
        }
        let mut s = tmpdir_commands(&dirs);
        let files: Vec<String> = self
            .config
            .install_mask_files
            .iter()
            .map(|f| format!("\"$BUILD_CONF/target-portage/\"{}", sh_quote(f)))
            .collect();
        if files.is_empty() {
            s.push_str("install_mask_on() { :; }\ninstall_mask_off() { :; }\n");
        } else {
            let files = files.join(" ");
            s.push_str(&format!(
                "install_mask_on() {{ sed -i 's/^#\\(INSTALL_MASK=\\)/\\1/' {files}; }}\n\
                 install_mask_off() {{ sed -i 's/^\\(INSTALL_MASK=\\)/#\\1/' {files}; }}\n"
            ));
        }
        s
    }

    /// The target's `PORTAGE_TMPDIR` when it is below `${ROOT}` (Portage expands it for
    /// each emerge's ROOT): the path below the ROOT, e.g. `tmp`; `None` otherwise.
    pub(super) fn root_tmpdir(&self) -> Option<&str> {
        self.config
            .portage_tmpdir
            .as_deref()
            .and_then(|d| d.strip_prefix(crate::config::ROOT_PREFIX))
            .filter(|rest| !rest.is_empty())
    }

    /// `mkdir -p` of the target's `PORTAGE_TMPDIR` below `${ROOT}` for emerges whose ROOT is
    /// `root` (shell text such as `"$S"`), mode 1777 as /tmp's; empty when it is not below
    /// `${ROOT}` (the step prelude made it).
    pub(super) fn root_tmpdir_commands(&self, root: &str) -> String {
        match self.root_tmpdir() {
            Some(rest) => format!("mkdir -p -m 1777 {root}/{}\n", sh_quote(rest)),
            None => String::new(),
        }
    }

    fn target_libc(&self) -> String {
        let mut s = String::new();
        if self.config.libc == Libc::Glibc {
            s.push_str(
                "mkdir -p \"$R/etc\"\ngrep -qx 'en_US.UTF-8 UTF-8' \"$R/etc/locale.gen\" 2>/dev/null || echo 'en_US.UTF-8 UTF-8' >> \"$R/etc/locale.gen\"\n",
            );
        }
        if self.config.stage0 {
            s.push_str("install_mask_off\n");
        }
        s.push_str(&format!(
            "E -1kq {} sys-apps/baselayout sys-libs/binutils-libs sys-libs/ncurses\n",
            self.libc_package()
        ));
        s
    }

    fn kernel_sources(&self) -> String {
        let mut s = String::from(DIRS);
        // kernel-build.eclass, kernel-build_merge_configs: the fragments are read from
        // ${BROOT}/etc/kernel/config.d, the build environment's, never from ROOT (the
        // original writes the build environment's too). A fragment left in ROOT by an older
        // run is removed.
        s.push_str("rm -f \"$R/etc/kernel/config.d/build-helper.config\"\n");
        if self.dist_kernel() {
            s.push_str(
                "mkdir -p /etc/kernel/config.d\ncp \"$BUILD_CONF/linux.config\" /etc/kernel/config.d/build-helper.config\n",
            );
            // A fragment's CONFIG_INITRAMFS_SOURCE may point at the initramfs, which the
            // first kernel build needs before the `initramfs` step fills it.
            s.push_str(
                "if [ ! -e \"$F/initramfs_list\" ]; then mkdir -p \"$F\"; : > \"$F/initramfs_list\"; fi\n",
            );
        } else {
            s.push_str("rm -f /etc/kernel/config.d/build-helper.config\n");
        }
        let provided = !self.config.stage0;
        if provided {
            s.push_str(
                r#"P="$BUILD_CONF/target-portage/profile"
restore() { if [ -e "$P/package.provided.build-helper" ]; then mv "$P/package.provided.build-helper" "$P/package.provided"; fi; }
trap restore EXIT
restore
if [ -e "$P/package.provided.kernel" ]; then
  if [ -e "$P/package.provided" ]; then mv "$P/package.provided" "$P/package.provided.build-helper"; fi
  cp "$P/package.provided.kernel" "$P/package.provided"
fi
"#,
            );
        }
        if !self.config.kernel_atoms.is_empty() {
            s.push_str(&format!(
                "E -ukq --with-bdeps=y {}\n",
                sh_words(&self.config.kernel_atoms)
            ));
        }
        if provided {
            s.push_str("rm -f \"$P/package.provided\"\nrestore\n");
        }
        // The original: "a missing lib64 breaks many target packages' pkgconfig" (and a
        // lib64 link breaks glibc builds): the build environment gets a /usr/lib64/pkgconfig
        // link to ../lib/pkgconfig when it has a real /usr/lib64 or none.
        s.push_str(
            r#"if [ ! -e /usr/lib64/pkgconfig ] && [ ! -L /usr/lib64/pkgconfig ] && [ ! -L /usr/lib64 ]; then
  mkdir -p /usr/lib64
  ln -s ../lib/pkgconfig /usr/lib64/pkgconfig
fi
"#,
        );
        s.push_str(
            r#"newest=$(ls -d "$R"/usr/src/linux-* 2>/dev/null | sort -V | tail -n 1)
if [ -n "$newest" ]; then ln -sfn "$(basename "$newest")" "$K"; fi
"#,
        );
        if self.source_kernel() {
            s.push_str("cp \"$BUILD_CONF/linux.config\" \"$K/.config\"\n");
            if !self.config.split_initramfs {
                s.push_str(
                    r#"sed -i '/^CONFIG_INITRAMFS_SOURCE=/d' "$K/.config"
echo "CONFIG_INITRAMFS_SOURCE=\"$F\"" >> "$K/.config"
"#,
                );
            }
            s.push_str("kmake olddefconfig\nkmake modules_prepare\n");
        }
        if self.config.libc == Libc::Musl {
            s.push_str(&format!(
                "cat \"$R\"/etc/ld.so.conf.d/*.conf \"$R/etc/ld.so.conf\" 2>/dev/null | grep -v -e '^#' -e '^include' > \"$R/etc/ld-musl-{}.path\" || true\n",
                sh_dq(&self.musl_arch())
            ));
        }
        s
    }

    fn pam_bootstrap(&self) -> String {
        r#"pu="$BUILD_CONF/target-portage/package.use"
restore() { rm -f "$pu/zz-build-helper-pam"; }
trap restore EXIT
mkdir -p "$pu"
echo 'sys-libs/libcap -pam' > "$pu/zz-build-helper-pam"
E -1kq sys-libs/pam
restore
"#
        .into()
    }

    fn target_world(&self) -> String {
        // glibc's ldd runs the loader by its path on the build machine; inside ROOT it must
        // be the target's (the original's fix, for gobject-introspection's qemu wrapper).
        let mut s = String::from(
            r#"if [ -f "$R/usr/bin/ldd" ]; then
  sed -i -e 's/x $rtld/x ${ROOT}$rtld/' -e 's/${rtld} --verify/${ROOT}${rtld} --verify/' -e 's/RTLD=${rtld}/RTLD=${ROOT}${rtld}/' "$R/usr/bin/ldd"
fi
"#,
        );
        // One emerge for the base and every world, in tree order, as the original: blockers
        // and USE changes across worlds are resolved together.
        let atoms: Vec<String> = self
            .config
            .base_atoms
            .iter()
            .chain(self.config.worlds.iter().flat_map(|w| w.atoms.iter()))
            .cloned()
            .collect();
        if !atoms.is_empty() {
            s.push_str(&format!("E -uDNkq --with-bdeps=y {}\n", sh_words(&atoms)));
        }
        s
    }

    fn target_maintenance(&self) -> String {
        let mut s = String::from(DIRS);
        s.push_str(
            r#"if command -v smart-live-rebuild >/dev/null 2>&1; then
  CHOST="$CROSSDEV_TARGET" PORTAGE_CONFIGROOT="$R" ROOT="$R" SYSROOT="$R" smart-live-rebuild -- -k
fi
"#,
        );
        if self.source_kernel() {
            s.push_str("kmake modules_prepare\n");
        }
        s.push_str(
            "UNINSTALL_IGNORE=\"/lib/modules/* /etc/portage\" E -q --depclean\n\
             E -q @preserved-rebuild\nE -q @module-rebuild\n",
        );
        s
    }
}

/// The target phase's steps for one target, in [`super::TARGET_STEPS`] order.
pub fn target_steps(r: &TargetRecipe<'_>) -> Vec<Step> {
    let video = format!("{}{}", r.video_cards(), r.target_prelude());
    let mk = |name: &str, body: String| step(name, Phase::Target, format!("{video}{body}"));
    let mut sync = mk("target-sync", "E --sync\n".to_string());
    sync.sync_lock = true;
    vec![
        mk("target-env", r.target_env()),
        sync,
        mk("target-libc", r.target_libc()),
        mk("kernel-sources", r.kernel_sources()),
        mk("pam-bootstrap", r.pam_bootstrap()),
        mk("target-world", r.target_world()),
        mk("target-maintenance", r.target_maintenance()),
        mk("final-root", r.final_root()),
        mk("world-images", r.world_images()),
        mk("initramfs", r.initramfs()),
        mk("kernel", r.kernel()),
        mk("images", r.images()),
        mk("collect", r.collect()),
    ]
}
