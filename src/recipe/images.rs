//! The second half of the target phase (docs/recipe.md, "The target phase"): the final root, the
//! stacked world images, the initramfs, the kernel, the squashfs images and the collected
//! artifacts. Methods of [`TargetRecipe`]; the variables are those of [`super::target`].

use super::target::{TargetRecipe, DIRS, MIRRORS_MARKER};
use super::{lib_bits, sh_dq, sh_quote, sh_words, skeleton_commands};
use crate::config::Libc;

/// The marker in `$X` that the target's base image directory was just created, so
/// `images` applies base.patch once: on the target's own first build, as the original
/// (which patches when `../squashfs` did not exist yet), also when the run as a whole is an
/// update from a history that did not hold this target.
const PATCH_MARKER: &str = "\"$X/base.patch.pending\"";

/// Kernel modules the split initramfs's init loads: the original's list (block loop and
/// virtio, netfs and 9p over virtio, fat/vfat/msdos, squashfs, overlay), then what those
/// need when the kernel builds them as modules (virtio transport and PCI, fscache for netfs,
/// the FAT code pages), as Debian's kernel does.
const INITRAMFS_MODULES: [&str; 20] = [
    "loop",
    "virtio_blk",
    "netfs",
    "9p",
    "9pnet",
    "9pnet_virtio",
    "fat",
    "vfat",
    "msdos",
    "squashfs",
    "overlay",
    "virtio",
    "virtio_ring",
    "virtio_pci",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "fscache",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",
];

impl TargetRecipe<'_> {
    pub(super) fn final_root(&self) -> String {
        let mut s = String::from(DIRS);
        s.push_str("if [ ! -d \"$S/usr\" ]; then\n");
        if self.config.base_patch {
            s.push_str(&format!("  mkdir -p \"$X\"\n  : > {PATCH_MARKER}\n"));
        }
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
"#,
        );
        // A PORTAGE_TMPDIR below ${ROOT} is below the image for its emerges.
        s.push_str(&self.root_tmpdir_commands("\"$S\""));
        if self.config.libc == Libc::Glibc {
            // The locales target-libc chose, for the image's own locale-gen.
            s.push_str("cp -a \"$R/etc/locale.gen\" \"$S/etc/locale.gen\"\n");
        }
        // SYSROOT is the image itself, and build dependencies are installed into it too
        // (--with-bdeps=y), as the original: a self-hosting @system image needs its
        // DEPEND-only packages (headers, static libraries).
        s.push_str(
            r#"PORTAGE_CONFIGROOT="$R" ROOT="$R" emaint binhost -f
FI --root="$S" --sysroot="$S" -1uDNKq --with-bdeps=y sys-apps/baselayout
"#,
        );
        if !self.config.base_atoms.is_empty() {
            s.push_str(&format!(
                "FI --root=\"$S\" --sysroot=\"$S\" -uDNKq --with-bdeps=y {}\n",
                sh_words(&self.config.base_atoms)
            ));
        }
        s.push_str(
            r#"FI --root="$S" --sysroot="$S" -q --depclean
"#,
        );
        if let Some(rest) = self.root_tmpdir() {
            // What Portage left in the temporary directory stays out of the image.
            s.push_str(&format!(
                "(cd \"$S\" && rmdir {}/portage) 2>/dev/null || true\n",
                sh_quote(rest)
            ));
        }
        s.push_str(
            r#"mkdir -p "$S/dev" "$S/home" "$S/media" "$S/mnt" "$S/opt" "$S/proc" "$S/sys"
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

    /// `world-images`: per world, in tree order, the image directory with the base's
    /// merged-usr links, the package database of its parent chain laid over its own previous
    /// one (as the original's overlay `lowerdir=parent:own`), the parent's world file, the
    /// base image's `/etc` bound over its own (so configuration files land in the base image,
    /// as in the original) while its packages are installed from binary packages only, then
    /// unbound before depclean; its database is saved to `$X/pkg.<W>` (moved for stage0,
    /// copied for @system installations, which keep it in the image).
    pub(super) fn world_images(&self) -> String {
        let mut s = String::from(DIRS);
        if !self.config.worlds.is_empty() {
            s.push_str(
                r#"unbind() { if [ -n "${I:-}" ] && mountpoint -q "$I/etc"; then umount "$I/etc"; fi; }
trap unbind EXIT
"#,
            );
        }
        let bits = lib_bits(&self.config.build_arch);
        for w in &self.config.worlds {
            let parent_dir = Self::parent_dir(&w.parent);
            s.push_str(&format!(
                "I=\"$R/usr/src/squashfs.{name}\"\nmkdir -p \"$I/var/db\" \"$I/var/lib/portage\"\n",
                name = sh_dq(&w.name)
            ));
            // The merged-usr links of the base: an upper layer without them would hide them.
            s.push_str(&skeleton_commands("\"$I\"", bits));
            s.push_str(&format!(
                r#"rm -rf "$I/var/db/pkg"
mkdir -p "$I/var/db/pkg"
if [ -d "$X/pkg.{name}" ]; then cp -a "$X/pkg.{name}/." "$I/var/db/pkg/"; fi
cp -a "{db}/." "$I/var/db/pkg/"
if [ -f "{parent_dir}/var/lib/portage/world" ]; then cp "{parent_dir}/var/lib/portage/world" "$I/var/lib/portage/world"; fi
mkdir -p "$I/etc"
unbind
mount --bind "$S/etc" "$I/etc"
"#,
                name = sh_dq(&w.name),
                db = self.parent_db(&w.parent),
            ));
            s.push_str(&self.root_tmpdir_commands("\"$I\""));
            if !w.atoms.is_empty() {
                s.push_str(&format!(
                    "FI --root=\"$I\" --sysroot=\"$I\" -uDNKq --with-bdeps=y {}\n",
                    sh_words(&w.atoms)
                ));
            }
            // The base's /etc is unbound before depclean, so depclean never removes
            // configuration files of the base image.
            s.push_str(&format!(
                "umount \"$I/etc\"\nFI --root=\"$I\" --sysroot=\"$I\" -q --depclean\nunstray \"$I\"\nrm -rf \"$X/pkg.{name}\"\n",
                name = sh_dq(&w.name)
            ));
            if let Some(rest) = self.root_tmpdir() {
                // The temporary directory stays out of the world image (its mode would
                // cover the base's /tmp in the stacked root), as does what Portage left in it.
                let rest = sh_quote(rest);
                s.push_str(&format!(
                    "(cd \"$I\" && rmdir -p {rest}/portage {rest}) 2>/dev/null || true\n"
                ));
            }
            if self.config.stage0 {
                s.push_str(&format!(
                    "mv \"$I/var/db/pkg\" \"$X/pkg.{}\"\n",
                    sh_dq(&w.name)
                ));
            } else {
                // @system installations keep their package database in the image.
                s.push_str(&format!(
                    "cp -a \"$I/var/db/pkg\" \"$X/pkg.{}\"\n",
                    sh_dq(&w.name)
                ));
            }
        }
        s
    }

    pub(super) fn initramfs(&self) -> String {
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
rm -f "$B/etc/portage/savedconfig/sys-apps/{name}"-*
cp "$BUILD_CONF/{name}-mini.config" "$B/etc/portage/savedconfig/sys-apps/{name}"
{tmpdir}USE="-make-symlinks -syslog -pam static savedconfig static-libs" PKGDIR="$B/pkgs" "$CROSSDEV_TARGET-emerge" --root="$B/root" --sysroot="$R" --config-root="$B" --buildpkg=n -1q --nodeps {pkg}
mkdir -p "$F/bin"
for d in bin sbin usr/bin usr/sbin; do
  if [ -d "$B/root/$d" ]; then cp -a "$B/root/$d/." "$F/bin/"; fi
done
nodes "$F"
rm -rf "$B"
chown -R 0:0 "$F"
if [ -f "$F/init" ]; then chmod 700 "$F/init"; fi
"#,
            tmpdir = self.root_tmpdir_commands("\"$B/root\"")
        ));
        s
    }

    pub(super) fn kernel(&self) -> String {
        let mut s = String::from(DIRS);
        if self.source_kernel() {
            s.push_str(
                "kmake $(kjobs)\nkmake modules_install INSTALL_MOD_PATH=\"$S\" INSTALL_MOD_STRIP=1\n",
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

    pub(super) fn images(&self) -> String {
        let c = self.config;
        let mut s = String::from(DIRS);
        s.push_str("O=\"$R/usr/src/out\"\nrm -rf \"$O\"\nmkdir -p \"$O\" \"$F\"\n");
        if c.base_patch {
            s.push_str(&format!(
                "if [ -e {PATCH_MARKER} ]; then\n  (cd \"$S\" && patch -p0 < \"$BUILD_CONF/base.patch\")\n  rm -f {PATCH_MARKER}\nfi\n"
            ));
        }
        // -k keeps the files' times; the compressor is one the target's kernel reads.
        let pack = format!(
            "gensquashfs -f -k -j \"$BUILD_JOBS\" -c {} -D",
            sh_quote(&self.image_compressor)
        );
        // Split images go beside the kernel: on a raspberry pi that is boot/ (the SD card's
        // boot partition, beside kernel8.img), as the original's `boot/base` and `boot/<W>`.
        let split_dir = if self.rpi_kernel_name().is_some() {
            if c.split_base || c.split_extra {
                s.push_str("mkdir -p \"$O/boot\"\n");
            }
            "$O/boot"
        } else {
            "$O"
        };
        let base_out = if c.split_base {
            format!("\"{split_dir}/base\"")
        } else {
            "\"$F/base\"".into()
        };
        s.push_str(&format!("{pack} \"$S\" {base_out}\n"));
        for w in &c.worlds {
            let out = if c.split_extra {
                format!("\"{split_dir}/{}\"", sh_dq(&w.name))
            } else {
                format!("\"$F/{}\"", sh_dq(&w.name))
            };
            s.push_str(&format!(
                "{pack} \"$R/usr/src/squashfs.{}\" {out}\n",
                sh_dq(&w.name)
            ));
        }
        if c.split_initramfs {
            // The libraries come from the base image the init switches to: the loader and
            // libc (musl's ld-musl-<arch>.so.1 or glibc's ld-linux*), libcrypt, libm, gcc's
            // libatomic, and openssl's; then rdmsr/wrmsr when the base has them.
            let compress = if c.build_arch == "m68k" {
                "cat"
            } else {
                "gzip -9"
            };
            s.push_str(&format!(
                r#"mkdir -p "$F/lib" "$F/bin"
for lib in "$S"/usr/lib/ld-* "$S"/usr/lib/libc.so* "$S"/usr/lib/libcrypt.so* "$S"/usr/lib/libm.so* "$S"/usr/lib/gcc/"$CROSSDEV_TARGET"/*/libatomic.so* "$S"/usr/lib/libcrypto.so* "$S"/usr/lib/libssl.so*; do
  if [ -e "$lib" ]; then cp -a "$lib" "$F/lib/"; fi
done
for b in rdmsr wrmsr; do
  if [ -e "$S/usr/bin/$b" ]; then cp -a "$S/usr/bin/$b" "$F/bin/"; fi
done
ver=$(ls "$S/lib/modules" 2>/dev/null | sort -V | tail -n 1)
if [ -n "$ver" ]; then
  for m in {modules}; do
    find "$S/lib/modules/$ver" -name "$m.ko*" -exec sh -c 'mkdir -p "$1/$(dirname "${{2#$3/}}")" && cp "$2" "$1/$(dirname "${{2#$3/}}")/"' _ "$F" {{}} "$S" \;
  done
  mkdir -p "$F/lib/modules/$ver"
  depmod -a -b "$F" "$ver"
fi
chown -R 0:0 "$F"
(cd "$F" && find . -print0 | cpio -0 -o -H newc | {compress} > "$O/initramfs")
"#,
                modules = INITRAMFS_MODULES.join(" ")
            ));
        } else if self.source_kernel() {
            s.push_str("kmake $(kjobs)\n");
        } else if self.dist_kernel() {
            // gentoo-kernel embeds the initramfs when its config fragment says so: build it
            // again now that the initramfs holds the images.
            s.push_str("E -1q sys-kernel/gentoo-kernel\n");
        }
        // The kernel image (and a raspberry pi's dtbs and overlays) are kept for `collect`
        // before `make mrproper` cleans the sources.
        let image = if self.source_kernel() {
            format!("\"$K/{}\"", self.kernel_image())
        } else if let Some(name) = self.rpi_kernel_name() {
            // raspberrypi-image installs its kernel into ${ROOT}/boot itself.
            format!("\"$R/boot/{name}\"")
        } else {
            // kernel-install.eclass, kernel-install_pkg_postinst: the kernel is installed
            // into /boot only when ROOT is empty; under the target's ROOT it stays in
            // /usr/src/linux-<version>, which `$K` points at (kernel-sources).
            format!("\"$K/{}\"", self.dist_kernel_image())
        };
        s.push_str(&format!("cp {image} \"$KI\"\n"));
        if self.rpi_kernel_name().is_some() {
            s.push_str("rm -rf \"$KB\"\nmkdir -p \"$KB/overlays\"\n");
            if self.source_kernel() {
                // -L: the raspberrypi tree's arm64 dts/overlays is a link to arm's.
                s.push_str(
                    r#"find -L "$K/arch/$BUILD_ARCH/boot/dts" -name '*.dtb' -exec cp {} "$KB/" \;
find -L "$K/arch/$BUILD_ARCH/boot/dts" -name '*.dtbo' -exec cp {} "$KB/overlays/" \;
"#,
                );
            } else {
                s.push_str(
                    r#"for dtb in "$R"/boot/*.dtb; do if [ -e "$dtb" ]; then cp "$dtb" "$KB/"; fi; done
if [ -d "$R/boot/overlays" ]; then cp -a "$R/boot/overlays/." "$KB/overlays/"; fi
"#,
                );
            }
        }
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

    pub(super) fn collect(&self) -> String {
        let mut s = String::from(DIRS);
        s.push_str(
            r#"O="$R/usr/src/out"
D="$BUILD_DEST"
mkdir -p "$D"
rm -rf "$D/EFI" "$D/.EFI.partial"
mkdir -p "$D/.EFI.partial/boot"
"#,
        );
        if self.rpi_kernel_name().is_some() {
            // The firmware (bootcode, start*.elf, fixup*.dat, config.txt) that
            // raspberrypi-firmware installs in the target's /boot; the split images of
            // `images` (in $O/boot) and the kernel go over it.
            s.push_str(
                r#"rm -rf "$D/boot"
mkdir -p "$D/boot"
if [ -d "$R/boot" ]; then cp -a "$R/boot/." "$D/boot/"; fi
"#,
            );
        }
        s.push_str("if [ -d \"$O\" ]; then cp -a \"$O/.\" \"$D/\"; fi\n");
        if let Some(name) = self.rpi_kernel_name() {
            s.push_str(&format!(
                r#"cp "$KI" "$D/boot/{name}"
cp -a "$KB/." "$D/boot/"
ln -sfn ../../boot/{name} "$D/.EFI.partial/boot/bootx64.efi"
"#
            ));
        } else if self.config.build_arch == "m68k" {
            s.push_str(
                "cp \"$KI\" \"$D/kernel\"\nln -sfn ../../kernel \"$D/.EFI.partial/boot/bootx64.efi\"\n",
            );
        } else {
            s.push_str("cp \"$KI\" \"$D/.EFI.partial/boot/bootx64.efi\"\n");
        }
        if self.gentoo_mirrors {
            s.push_str(&format!(
                "sed -i '/ {MIRRORS_MARKER}$/d' \"$BUILD_CONF/target-portage/make.conf\"\n"
            ));
        }
        s.push_str("mv \"$D/.EFI.partial\" \"$D/EFI\"\n");
        s
    }

    /// The raspberry pi firmware's kernel file name, for `raspberrypi-sources` and
    /// `raspberrypi-image`: `kernel8.img` on arm64, `kernel.img` otherwise (32-bit arm).
    pub(super) fn rpi_kernel_name(&self) -> Option<&'static str> {
        match self.config.kernel_package.as_deref() {
            Some("sys-kernel/raspberrypi-sources" | "sys-kernel/raspberrypi-image") => {
                Some(if self.config.build_arch == "arm64" {
                    "kernel8.img"
                } else {
                    "kernel.img"
                })
            }
            _ => None,
        }
    }
}
