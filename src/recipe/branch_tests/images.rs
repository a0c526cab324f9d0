//! Kernel and image branches: the kernel packages, split images, m68k, skip.mrproper.

use super::*;

#[test]
fn gentoo_kernel_fragment_goes_to_the_build_environment_config_d_that_kernel_build_reads() {
    let s = script(&kernel(config(), "gentoo-kernel"), "kernel-sources");
    // kernel-build_merge_configs reads ${BROOT}/etc/kernel/config.d, never ROOT's.
    let cp = s
        .find("cp \"$BUILD_CONF/linux.config\" /etc/kernel/config.d/build-helper.config\n")
        .expect("the fragment in the build environment");
    assert!(
        cp < s
            .find("E -ukq --with-bdeps=y sys-kernel/gentoo-kernel")
            .unwrap()
    );
    assert!(!s.contains("mkdir -p \"$R/etc/kernel/config.d\""));
    assert!(s.contains("rm -f \"$R/etc/kernel/config.d/build-helper.config\"\n"));
    assert!(!s.contains("\nkmake "));
    let k = script(&kernel(config(), "gentoo-kernel"), "kernel");
    assert!(k.contains("cp -a \"$R/lib/modules/$newest\" \"$S/lib/modules/\""));
}

#[test]
fn gentoo_kernel_bin_removes_a_stale_fragment_and_builds_nothing() {
    let c = kernel(config(), "gentoo-kernel-bin");
    let s = script(&c, "kernel-sources");
    assert!(s.contains("rm -f /etc/kernel/config.d/build-helper.config\n"));
    assert!(!s.contains("\nkmake ") && !s.contains("$K/.config"));
    assert!(!script(&c, "kernel").contains("\nkmake "));
}

#[test]
fn dist_kernels_take_the_image_from_usr_src_linux_where_kernel_install_leaves_it_under_root() {
    // kernel-install_pkg_postinst installs into /boot only when ROOT is empty; the image
    // stays at /usr/src/linux-<PV>/<dist-kernel_get_image_path>, which $K points at.
    for pkg in ["gentoo-kernel", "gentoo-kernel-bin"] {
        let mut c = kernel(config(), pkg);
        let images = script(&c, "images");
        assert!(
            images.contains("cp \"$K/arch/x86/boot/bzImage\" \"$KI\"\n"),
            "{pkg}"
        );
        assert!(!images.contains("/boot/vmlinuz"), "{pkg}");
        let sources = script(&c, "kernel-sources");
        assert!(sources.contains("ln -sfn \"$(basename \"$newest\")\" \"$K\""));
        for (arch, image) in [
            ("arm64", "arch/arm64/boot/Image.gz"),
            ("riscv", "arch/riscv/boot/Image.gz"),
            ("arm", "arch/arm/boot/zImage"),
            ("m68k", "vmlinux"),
        ] {
            c.build_arch = arch.into();
            assert!(
                script(&c, "images").contains(&format!("cp \"$K/{image}\" \"$KI\"\n")),
                "{pkg} {arch}"
            );
        }
    }
}

#[test]
fn source_kernels_get_a_full_config_oldconfig_and_the_initramfs_source() {
    for pkg in ["gentoo-sources", "git-sources"] {
        let c = kernel(config(), pkg);
        let s = script(&c, "kernel-sources");
        assert!(
            s.contains("cp \"$BUILD_CONF/linux.config\" \"$K/.config\""),
            "{pkg}"
        );
        assert!(s.contains("echo \"CONFIG_INITRAMFS_SOURCE=\\\"$F\\\"\" >> \"$K/.config\""));
        assert!(s.contains("kmake olddefconfig\nkmake modules_prepare\n"));
        assert!(script(&c, "kernel").contains("kmake modules_install INSTALL_MOD_PATH=\"$S\""));
        assert!(script(&c, "images").contains("cp \"$K/arch/x86/boot/bzImage\" \"$KI\""));
    }
}

#[test]
fn raspberrypi_sources_collects_kernel8_img_dtbs_and_overlays_in_boot() {
    let mut c = kernel(config(), "raspberrypi-sources");
    c.build_arch = "arm64".into();
    let images = script(&c, "images");
    // kernel8.img is the compressed Image.gz, as the original copies it.
    assert!(images.contains("cp \"$K/arch/arm64/boot/Image.gz\" \"$KI\""));
    assert!(images
        .contains("find -L \"$K/arch/$BUILD_ARCH/boot/dts\" -name '*.dtb' -exec cp {} \"$KB/\""));
    assert!(images.contains("-name '*.dtbo' -exec cp {} \"$KB/overlays/\""));
    let collect = script(&c, "collect");
    assert!(collect.contains("cp \"$KI\" \"$D/boot/kernel8.img\""));
    assert!(collect.contains("cp -a \"$KB/.\" \"$D/boot/\""));
    assert!(collect.contains("ln -sfn ../../boot/kernel8.img \"$D/.EFI.partial/boot/bootx64.efi\""));
    c.build_arch = "arm".into();
    assert!(script(&c, "collect").contains("\"$D/boot/kernel.img\""));
    assert!(script(&c, "images").contains("arch/arm/boot/zImage"));
    assert!(!script(&config(), "collect").contains("$D/boot"));
}

#[test]
fn raspberrypi_image_takes_kernel_and_dtbs_from_the_installed_boot() {
    let mut c = kernel(config(), "raspberrypi-image");
    c.build_arch = "arm64".into();
    let images = script(&c, "images");
    assert!(images.contains("cp \"$R/boot/kernel8.img\" \"$KI\""));
    assert!(images.contains("cp -a \"$R/boot/overlays/.\" \"$KB/overlays/\""));
    assert!(!script(&c, "kernel-sources").contains("\nkmake "));
    assert!(script(&c, "collect").contains("\"$D/boot/kernel8.img\""));
}

#[test]
fn split_base_writes_the_base_image_beside_the_kernel_as_base() {
    let mut c = config();
    assert!(script(&c, "images").contains("\"$S\" \"$F/base\"\n"));
    c.split_base = true;
    assert!(script(&c, "images").contains("\"$S\" \"$O/base\"\n"));
}

#[test]
fn split_extra_writes_world_images_beside_the_kernel_by_world_name() {
    let mut c = config();
    c.worlds = vec![world("net", "base", &["net-misc/curl"])];
    assert!(script(&c, "images").contains("squashfs.net\" \"$F/net\"\n"));
    c.split_extra = true;
    assert!(script(&c, "images").contains("squashfs.net\" \"$O/net\"\n"));
}

#[test]
fn split_initramfs_writes_a_gzip_cpio_and_keeps_the_kernel_without_it() {
    let mut c = config();
    let embedded = script(&c, "images");
    assert!(script(&c, "kernel-sources").contains("CONFIG_INITRAMFS_SOURCE"));
    assert!(embedded.contains("kmake $(kjobs)\n") && !embedded.contains("cpio"));
    c.split_initramfs = true;
    let split = script(&c, "images");
    assert!(!script(&c, "kernel-sources").contains("CONFIG_INITRAMFS_SOURCE"));
    assert!(split.contains("cpio -0 -o -H newc | gzip -9 > \"$O/initramfs\""));
    // A kernel that builds none of the listed modules still gets its (empty) index, as the
    // original's directories made first.
    assert!(split.contains("  mkdir -p \"$F/lib/modules/$ver\"\n  depmod -a -b \"$F\" \"$ver\"\n"));
    assert!(!split.contains("kmake $(kjobs)\n"));
}

#[test]
fn split_initramfs_holds_the_modules_libraries_and_tools_its_init_needs() {
    let mut c = config();
    c.split_initramfs = true;
    let s = script(&c, "images");
    // The original's list first, then what those modules need when built as modules.
    assert!(s.contains(
        "for m in loop virtio_blk netfs 9p 9pnet 9pnet_virtio fat vfat msdos squashfs overlay \
         virtio virtio_ring virtio_pci virtio_pci_modern_dev virtio_pci_legacy_dev fscache \
         nls_cp437 nls_ascii nls_utf8; do"
    ));
    for lib in [
        "\"$S\"/usr/lib/ld-*",
        "\"$S\"/usr/lib/libc.so*",
        "\"$S\"/usr/lib/libcrypt.so*",
        "\"$S\"/usr/lib/libm.so*",
        "\"$S\"/usr/lib/gcc/\"$CROSSDEV_TARGET\"/*/libatomic.so*",
        "\"$S\"/usr/lib/libcrypto.so*",
        "\"$S\"/usr/lib/libssl.so*",
    ] {
        assert!(s.contains(lib), "{lib}");
    }
    assert!(s.contains("for b in rdmsr wrmsr; do"));
    let chown = s.find("chown -R 0:0 \"$F\"").unwrap();
    assert!(chown < s.find("cpio").unwrap());
    assert!(script(&c, "initramfs").contains("chown -R 0:0 \"$F\""));
}

#[test]
fn images_use_the_chosen_compressor_and_keep_file_times() {
    let c = config();
    assert!(script(&c, "images").contains("gensquashfs -f -k -j \"$BUILD_JOBS\" -c xz -D \"$S\""));
    let steps = target_steps(&TargetRecipe {
        config: &c,
        gentoo_mirrors: false,
        image_compressor: "zstd".into(),
        host_portage_tmpdir: None,
    });
    let images = steps.iter().find(|s| s.name == "images").unwrap();
    assert!(images.script.contains("-c zstd -D"));
}

#[test]
fn gentoo_kernel_is_emerged_again_to_embed_the_initramfs() {
    let c = kernel(config(), "gentoo-kernel");
    assert!(script(&c, "images").contains("E -1q sys-kernel/gentoo-kernel\n"));
    assert!(script(&c, "kernel-sources").contains(": > \"$F/initramfs_list\""));
    let mut split = c.clone();
    split.split_initramfs = true;
    assert!(!script(&split, "images").contains("E -1q sys-kernel/gentoo-kernel"));
    assert!(!script(&kernel(config(), "gentoo-kernel-bin"), "images").contains("E -1q"));
}

#[test]
fn raspberry_pi_firmware_comes_from_the_target_boot() {
    let mut c = kernel(config(), "raspberrypi-sources");
    c.build_arch = "arm64".into();
    let collect = script(&c, "collect");
    let firmware = collect
        .find("if [ -d \"$R/boot\" ]; then cp -a \"$R/boot/.\" \"$D/boot/\"; fi")
        .unwrap();
    assert!(firmware < collect.find("cp \"$KI\" \"$D/boot/kernel8.img\"").unwrap());
}

#[test]
fn m68k_names_the_kernel_kernel_and_leaves_the_initramfs_uncompressed() {
    let mut c = config();
    c.build_arch = "m68k".into();
    c.split_initramfs = true;
    assert!(script(&c, "images").contains("cpio -0 -o -H newc | cat > "));
    assert!(script(&c, "images").contains("cp \"$K/vmlinux\" \"$KI\""));
    let collect = script(&c, "collect");
    assert!(collect.contains("cp \"$KI\" \"$D/kernel\""));
    assert!(collect.contains("ln -sfn ../../kernel \"$D/.EFI.partial/boot/bootx64.efi\""));
}

#[test]
fn skip_mrproper_keeps_the_built_kernel_tree() {
    let mut c = config();
    assert!(script(&c, "images").contains("kmake mrproper"));
    c.skip_mrproper = true;
    assert!(!script(&c, "images").contains("mrproper"));
}

#[test]
fn raspberry_pi_split_images_go_to_boot_beside_kernel8_img() {
    let mut c = kernel(config(), "raspberrypi-sources");
    c.build_arch = "arm64".into();
    c.worlds = vec![world("net", "base", &["net-misc/curl"])];
    c.split_base = true;
    c.split_extra = true;
    let images = script(&c, "images");
    assert!(images.contains("\"$S\" \"$O/boot/base\"\n"));
    assert!(images.contains("squashfs.net\" \"$O/boot/net\"\n"));
    let collect = script(&c, "collect");
    // The firmware first, then the images and the kernel over it.
    let firmware = collect.find("cp -a \"$R/boot/.\" \"$D/boot/\"").unwrap();
    let out = collect.find("cp -a \"$O/.\" \"$D/\"").unwrap();
    let kernel = collect.find("cp \"$KI\" \"$D/boot/kernel8.img\"").unwrap();
    assert!(firmware < out && out < kernel);
    // Not a raspberry pi: beside the kernel at the top of the build directory.
    let mut x86 = config();
    x86.worlds = c.worlds.clone();
    x86.split_base = true;
    x86.split_extra = true;
    let images = script(&x86, "images");
    assert!(images.contains("\"$S\" \"$O/base\"\n") && images.contains("\"$O/net\"\n"));
    assert!(!images.contains("$O/boot"));
}
