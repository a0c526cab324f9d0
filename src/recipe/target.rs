//! The target phase (spec/recipe.md steps 6-18): one target's installation, from its cross
//! root to the collected artifacts. `$R` is the target's cross root, `$S` its base image
//! directory, `$X` what stays out of the images, `$K` its kernel sources, `$F` its initramfs.

use super::{lib_bits, sh_words, skeleton_commands, step, Phase, Step};
use crate::config::{BoxKind, Libc, TargetConfig};

/// Kernel packages whose sources are built here (target-config.md, linux.config).
const SOURCE_KERNELS: [&str; 3] = [
    "sys-kernel/gentoo-sources",
    "sys-kernel/git-sources",
    "sys-kernel/raspberrypi-sources",
];

/// What the target phase depends on.
#[derive(Debug, Clone)]
pub struct TargetRecipe<'a> {
    /// The target's configuration.
    pub config: &'a TargetConfig,
    /// No history was mounted.
    pub first_build: bool,
}

const DIRS: &str = r#"S="$R/usr/src/squashfs"
X="$R/usr/src/squashfs.exclude"
K="$R/usr/src/linux"
F="$R/usr/src/initramfs"
KI="$R/usr/src/kernel-image"
kmake() { make -C "$K" ARCH="$BUILD_ARCH" CROSS_COMPILE="$CROSSDEV_TARGET-" "$@"; }
FI() { FEATURES=-collision-protect "$CROSSDEV_TARGET-emerge" --config-root="$S" "$@"; }
nodes() {
  mkdir -p "$1/dev"
  [ -e "$1/dev/console" ] || mknod -m 600 "$1/dev/console" c 5 1
  [ -e "$1/dev/null" ] || mknod -m 666 "$1/dev/null" c 1 3
  [ -e "$1/dev/tty" ] || mknod -m 666 "$1/dev/tty" c 5 0
  [ -e "$1/dev/zero" ] || mknod -m 666 "$1/dev/zero" c 1 5
}
unstray() { if [ -d "$1$R" ]; then cp -a "$1$R/." "$1/"; rm -rf "$1/usr/$CROSSDEV_TARGET.$BUILD_NAME"; fi; }
"#;

impl TargetRecipe<'_> {
    fn source_kernel(&self) -> bool {
        self.config
            .kernel_package
            .as_deref()
            .is_some_and(|k| SOURCE_KERNELS.contains(&k))
    }

    fn dist_kernel(&self) -> bool {
        self.config.kernel_package.as_deref() == Some("sys-kernel/gentoo-kernel")
    }

    fn libc_package(&self) -> &'static str {
        match self.config.libc {
            Libc::Musl => "sys-libs/musl",
            Libc::Glibc => "sys-libs/glibc",
        }
    }

    fn box_package(&self) -> (&'static str, &'static str) {
        match self.config.box_kind {
            BoxKind::Toybox => ("sys-apps/toybox", "toybox"),
            BoxKind::Busybox => ("sys-apps/busybox", "busybox"),
        }
    }

    /// The path of the built kernel image below `$K`, by build-arch.
    fn kernel_image(&self) -> &'static str {
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

    fn parent_db(&self, parent: &str) -> String {
        if parent == "base" {
            if self.config.stage0 {
                "$X/pkg.base".into()
            } else {
                "$S/var/db/pkg".into()
            }
        } else {
            format!("$X/pkg.{parent}")
        }
    }

    fn parent_dir(parent: &str) -> String {
        if parent == "base" {
            "$S".into()
        } else {
            format!("$R/usr/src/squashfs.{parent}")
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
        if self.config.target.name.contains("native") {
            s.push_str(
                r#"if [ "$CROSSDEV_TARGET" = "$(portageq envvar CHOST)" ]; then
  echo "*/* $(cpuid2cpuflags)" > "$BUILD_CONF/target-portage/package.use/00cpu-flags-native"
fi
"#,
            );
        }
        s
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
        if self.dist_kernel() {
            s.push_str(
                "mkdir -p \"$R/etc/kernel/config.d\"\ncp \"$BUILD_CONF/linux.config\" \"$R/etc/kernel/config.d/build-helper.config\"\n",
            );
        } else {
            s.push_str("rm -f \"$R/etc/kernel/config.d/build-helper.config\"\n");
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
                self.musl_arch()
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
        let mut s = String::new();
        if !self.config.base_atoms.is_empty() {
            s.push_str(&format!(
                "E -uDNkq --with-bdeps=y {}\n",
                sh_words(&self.config.base_atoms)
            ));
        }
        for w in &self.config.worlds {
            if !w.atoms.is_empty() {
                s.push_str(&format!("E -uDNkq --with-bdeps=y {}\n", sh_words(&w.atoms)));
            }
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
        s.push_str("E -q --depclean\nE -q @preserved-rebuild\nE -q @module-rebuild\n");
        s
    }

    fn final_root(&self) -> String {
        let mut s = String::from(DIRS);
        s.push_str("if [ ! -d \"$S/usr\" ]; then\n");
        for line in skeleton_commands("\"$S\"", lib_bits(&self.config.build_arch)).lines() {
            s.push_str(&format!("  {line}\n"));
        }
        s.push_str("fi\nmkdir -p \"$S/etc\" \"$X\"\n");
        if self.config.stage0 {
            s.push_str(
                r#"install_mask_on
if [ -d "$X/pkg.base" ] && [ ! -d "$S/var/db/pkg" ]; then mkdir -p "$S/var/db"; mv "$X/pkg.base" "$S/var/db/pkg"; fi
"#,
            );
        }
        s.push_str(
            r#"rm -rf "$S/etc/portage"
cp -a "$BUILD_CONF/target-portage" "$S/etc/portage"
PORTAGE_CONFIGROOT="$R" ROOT="$R" emaint binhost -f
FI --root="$S" -uDNKq sys-apps/baselayout
"#,
        );
        if !self.config.base_atoms.is_empty() {
            s.push_str(&format!(
                "FI --root=\"$S\" -uDNKq {}\n",
                sh_words(&self.config.base_atoms)
            ));
        }
        s.push_str(
            r#"FI --root="$S" -q --depclean
mkdir -p "$S/dev" "$S/home" "$S/media" "$S/mnt" "$S/opt" "$S/proc" "$S/sys"
nodes "$S"
unstray "$S"
if [ -d "$S/lib/modules" ]; then
  newest=$(ls "$S/lib/modules" | sort -V | tail -n 1)
  for m in "$S"/lib/modules/*; do
    if [ "$(basename "$m")" != "$newest" ]; then
      mkdir -p "$X/modules"
      rm -rf "$X/modules/$(basename "$m")"
      mv "$m" "$X/modules/"
    fi
  done
fi
"#,
        );
        if self.config.stage0 {
            s.push_str(
                "if [ -d \"$S/var/db/pkg\" ]; then rm -rf \"$X/pkg.base\"; mv \"$S/var/db/pkg\" \"$X/pkg.base\"; fi\n",
            );
        }
        s
    }

    fn world_images(&self) -> String {
        let mut s = String::from(DIRS);
        for w in &self.config.worlds {
            let parent_dir = Self::parent_dir(&w.parent);
            s.push_str(&format!(
                r#"I="$R/usr/src/squashfs.{name}"
mkdir -p "$I/var/db" "$I/var/lib/portage"
rm -rf "$I/var/db/pkg"
cp -a "{db}" "$I/var/db/pkg"
if [ -f "{parent_dir}/var/lib/portage/world" ]; then cp "{parent_dir}/var/lib/portage/world" "$I/var/lib/portage/world"; fi
"#,
                name = w.name,
                db = self.parent_db(&w.parent),
            ));
            if !w.atoms.is_empty() {
                s.push_str(&format!("FI --root=\"$I\" -uDNKq {}\n", sh_words(&w.atoms)));
            }
            s.push_str(&format!(
                "FI --root=\"$I\" -q --depclean\nunstray \"$I\"\nrm -rf \"$X/pkg.{name}\"\nmv \"$I/var/db/pkg\" \"$X/pkg.{name}\"\n",
                name = w.name
            ));
        }
        s
    }

    fn initramfs(&self) -> String {
        let (pkg, name) = self.box_package();
        let mut s = String::from(DIRS);
        s.push_str(&format!(
            r#"rm -rf "$F"
cp -a "$BUILD_CONF/initramfs" "$F"
B="/var/tmp/build-helper/{name}.$CROSSDEV_TARGET.$BUILD_NAME"
rm -rf "$B"
mkdir -p "$B/root" "$B/pkgs" "$B/etc/portage"
cp -a "$BUILD_CONF/target-portage/." "$B/etc/portage/"
mkdir -p "$B/etc/portage/savedconfig/sys-apps"
cp "$BUILD_CONF/{name}-mini.config" "$B/etc/portage/savedconfig/sys-apps/{name}"
USE="static savedconfig" PKGDIR="$B/pkgs" "$CROSSDEV_TARGET-emerge" --root="$B/root" --sysroot="$R" --config-root="$B" --buildpkg=n -1q --nodeps {pkg}
mkdir -p "$F/bin"
for d in bin sbin usr/bin usr/sbin; do
  if [ -d "$B/root/$d" ]; then cp -a "$B/root/$d/." "$F/bin/"; fi
done
nodes "$F"
rm -rf "$B"
"#
        ));
        s
    }

    fn kernel(&self) -> String {
        let mut s = String::from(DIRS);
        if self.source_kernel() {
            s.push_str(
                "kmake -j\"$BUILD_JOBS\"\nkmake modules_install INSTALL_MOD_PATH=\"$S\" INSTALL_MOD_STRIP=1\n",
            );
        } else {
            s.push_str(
                r#"newest=$(ls "$R/lib/modules" 2>/dev/null | sort -V | tail -n 1)
if [ -n "$newest" ]; then
  mkdir -p "$S/lib/modules"
  rm -rf "$S/lib/modules/$newest"
  cp -a "$R/lib/modules/$newest" "$S/lib/modules/"
fi
"#,
            );
        }
        s
    }

    fn images(&self) -> String {
        let c = self.config;
        let mut s = String::from(DIRS);
        s.push_str("O=\"$R/usr/src/out\"\nrm -rf \"$O\"\nmkdir -p \"$O\" \"$F\"\n");
        if self.first_build && c.base_patch {
            s.push_str("(cd \"$S\" && patch -p0 < \"$BUILD_CONF/base.patch\")\n");
        }
        let pack = "gensquashfs -f -j \"$BUILD_JOBS\" -c zstd -D";
        let base_out = if c.split_base {
            "\"$O/base-$BUILD_DATE\""
        } else {
            "\"$F/base.sqfs\""
        };
        s.push_str(&format!("{pack} \"$S\" {base_out}\n"));
        for w in &c.worlds {
            let out = if c.split_extra {
                format!("\"$O/{}-$BUILD_DATE\"", w.name)
            } else {
                format!("\"$F/{}.sqfs\"", w.name)
            };
            s.push_str(&format!(
                "{pack} \"$R/usr/src/squashfs.{}\" {out}\n",
                w.name
            ));
        }
        if c.split_initramfs {
            let compress = if c.build_arch == "m68k" {
                "cat"
            } else {
                "gzip -9"
            };
            s.push_str(&format!(
                r#"for lib in "$R"/usr/lib/libc.so "$R"/usr/lib/ld-musl-*.so.1 "$R"/usr/lib/libatomic.so* "$R"/usr/lib/libcrypto.so* "$R"/usr/lib/libssl.so*; do
  if [ -e "$lib" ]; then mkdir -p "$F/lib"; cp -a "$lib" "$F/lib/"; fi
done
ver=$(ls "$S/lib/modules" 2>/dev/null | sort -V | tail -n 1)
if [ -n "$ver" ]; then
  for m in loop virtio virtio_blk virtio_pci 9p 9pnet_virtio squashfs overlay vfat fat; do
    find "$S/lib/modules/$ver" -name "$m.ko*" -exec sh -c 'mkdir -p "$1/$(dirname "${{2#$3/}}")" && cp "$2" "$1/$(dirname "${{2#$3/}}")/"' _ "$F" {{}} "$S" \;
  done
  depmod -b "$F" "$ver" || true
fi
(cd "$F" && find . | cpio -o -H newc | {compress} > "$O/initramfs-$BUILD_DATE")
"#
            ));
        } else if self.source_kernel() {
            s.push_str("kmake -j\"$BUILD_JOBS\"\n");
        }
        // The kernel image is kept for `collect` before `make mrproper` cleans the sources.
        let image = if self.source_kernel() {
            format!("\"$K/{}\"", self.kernel_image())
        } else {
            "\"$(ls \"$R\"/boot/vmlinuz-* \"$R\"/boot/kernel-* 2>/dev/null | sort -V | tail -n 1)\""
                .to_string()
        };
        s.push_str(&format!("cp {image} \"$KI\"\n"));
        if c.stage0 {
            s.push_str("install_mask_off\n");
        }
        if self.source_kernel() && !c.skip_mrproper {
            s.push_str(
                "cp \"$K/.config\" \"$K/.config.build-helper\"\nkmake mrproper\nmv \"$K/.config.build-helper\" \"$K/.config\"\n",
            );
        }
        s
    }

    fn collect(&self) -> String {
        let mut s = String::from(DIRS);
        s.push_str(
            r#"O="$R/usr/src/out"
D="$BUILD_DEST"
mkdir -p "$D"
rm -rf "$D/EFI" "$D/.EFI.partial"
mkdir -p "$D/.EFI.partial/boot"
if [ -d "$O" ]; then cp -a "$O/." "$D/"; fi
"#,
        );
        if self.config.build_arch == "m68k" {
            s.push_str(
                "cp \"$KI\" \"$D/kernel\"\nln -sfn ../../kernel \"$D/.EFI.partial/boot/bootx64.efi\"\n",
            );
        } else {
            s.push_str("cp \"$KI\" \"$D/.EFI.partial/boot/bootx64.efi\"\n");
        }
        s.push_str("mv \"$D/.EFI.partial\" \"$D/EFI\"\n");
        s
    }
}

/// The target phase's steps for one target, in [`super::TARGET_STEPS`] order.
pub fn target_steps(r: &TargetRecipe<'_>) -> Vec<Step> {
    let mut sync = step("target-sync", Phase::Target, "E --sync\n".to_string());
    sync.sync_lock = true;
    vec![
        step("target-env", Phase::Target, r.target_env()),
        sync,
        step("target-libc", Phase::Target, r.target_libc()),
        step("kernel-sources", Phase::Target, r.kernel_sources()),
        step("pam-bootstrap", Phase::Target, r.pam_bootstrap()),
        step("target-world", Phase::Target, r.target_world()),
        step("target-maintenance", Phase::Target, r.target_maintenance()),
        step("final-root", Phase::Target, r.final_root()),
        step("world-images", Phase::Target, r.world_images()),
        step("initramfs", Phase::Target, r.initramfs()),
        step("kernel", Phase::Target, r.kernel()),
        step("images", Phase::Target, r.images()),
        step("collect", Phase::Target, r.collect()),
    ]
}
