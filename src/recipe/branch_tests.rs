//! One test per configuration branch of the recipe (spec/recipe.md, spec/target-config.md):
//! each builds the steps of a small [`TargetConfig`] fixture with and without the branch and
//! checks that the generated commands change as the spec says.

use std::path::PathBuf;

use super::*;
use crate::config::{BoxKind, Libc, Target, TargetConfig, World};

/// A minimal stage0 musl x86_64 target on toybox with gentoo-sources and no worlds.
fn config() -> TargetConfig {
    TargetConfig {
        dir: PathBuf::from("/tree/configs/x86_64-unknown-linux-musl.t"),
        target: Target::new("x86_64-unknown-linux-musl", "t").unwrap(),
        build_arch: "x86_64".into(),
        box_kind: BoxKind::Toybox,
        libc: Libc::Musl,
        stage0: true,
        base_atoms: vec!["sys-apps/toybox".into()],
        worlds: Vec::new(),
        kernel_atoms: vec!["sys-kernel/gentoo-sources".into()],
        kernel_package: Some("sys-kernel/gentoo-sources".into()),
        rust_clean_atoms: Vec::new(),
        repos: Vec::new(),
        split_base: false,
        split_extra: false,
        split_initramfs: false,
        skip_mrproper: false,
        base_patch: false,
        has_linux_config: true,
        full_box_config: false,
        warnings: Vec::new(),
    }
}

/// A full stage (`@system` in worlds/base).
fn full(mut c: TargetConfig) -> TargetConfig {
    c.stage0 = false;
    c.base_atoms = vec!["@system".into()];
    c
}

fn kernel(mut c: TargetConfig, pkg: &str) -> TargetConfig {
    c.kernel_package = Some(format!("sys-kernel/{pkg}"));
    c.kernel_atoms = vec![format!("sys-kernel/{pkg}")];
    c
}

fn steps_of(c: &TargetConfig, first_build: bool, gentoo_mirrors: bool) -> Vec<Step> {
    target_steps(&TargetRecipe {
        config: c,
        first_build,
        gentoo_mirrors,
    })
}

/// The script of step `name` (prelude included) for `c` on a first build.
fn script(c: &TargetConfig, name: &str) -> String {
    script_with(c, name, true, false)
}

fn script_with(c: &TargetConfig, name: &str, first: bool, mirrors: bool) -> String {
    steps_of(c, first, mirrors)
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| s.script)
        .unwrap_or_else(|| panic!("no step {name}"))
}

fn host(first_build: bool) -> HostRecipe {
    HostRecipe {
        first_build,
        tuples: vec![TupleInfo {
            tuple: "aarch64-unknown-linux-musl".into(),
            build_arch: "arm64".into(),
            libc: "musl".into(),
            rust_clean: vec!["dev-libs/openssl".into()],
        }],
        cpuflags: false,
        rust: false,
        gentoo_mirrors: false,
    }
}

fn host_script(r: &HostRecipe, name: &str) -> String {
    primary_steps(r)
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| s.script)
        .unwrap_or_else(|| panic!("no step {name}"))
}

fn world(name: &str, parent: &str, atoms: &[&str]) -> World {
    World {
        name: name.into(),
        parent: parent.into(),
        atoms: atoms.iter().map(|a| a.to_string()).collect(),
    }
}

#[test]
fn first_build_fetches_a_snapshot_and_update_only_syncs() {
    let first = host_script(&host(true), "host-sync");
    let update = host_script(&host(false), "host-sync");
    assert!(first.contains("emerge-webrsync") && first.contains("masters = gentoo"));
    assert!(!update.contains("emerge-webrsync"));
    assert!(update.contains("emerge --sync || { rm -rf /var/db/repos/gentoo; emerge --sync; }"));
}

#[test]
fn first_build_rebuilds_world_with_e_and_update_with_udn() {
    let first = host_script(&host(true), "host-toolchain");
    let update = host_script(&host(false), "host-toolchain");
    assert!(first.contains("emerge -ekq --with-bdeps=y @world"));
    assert!(first.contains("emerge -1kq sys-kernel/linux-headers"));
    assert!(update.contains("emerge -uDNkq --with-bdeps=y @world"));
    assert!(update.contains("emerge -1ukq sys-kernel/linux-headers"));
    assert!(update.contains("ln -sfn \"${newest_env#/usr/}\" /usr/aarch64-unknown-linux-musl"));
    assert!(!first.contains("newest_env"));
}

#[test]
fn first_build_applies_base_patch_and_update_does_not() {
    let mut c = config();
    c.base_patch = true;
    let patch = "patch -p0 < \"$BUILD_CONF/base.patch\"";
    assert!(script_with(&c, "images", true, false).contains(patch));
    assert!(!script_with(&c, "images", false, false).contains(patch));
    assert!(!script(&config(), "images").contains(patch));
}

#[test]
fn glibc_target_adds_en_us_to_locale_gen() {
    let mut c = config();
    assert!(!script(&c, "target-libc").contains("locale.gen"));
    c.libc = Libc::Glibc;
    let s = script(&c, "target-libc");
    assert!(s.contains("echo 'en_US.UTF-8 UTF-8' >> \"$R/etc/locale.gen\""));
    assert!(s.contains("E -1kq sys-libs/glibc sys-apps/baselayout"));
}

#[test]
fn musl_target_writes_the_ld_musl_path_and_glibc_does_not() {
    let mut c = config();
    assert!(script(&c, "kernel-sources").contains("/etc/ld-musl-x86_64.path"));
    c.libc = Libc::Glibc;
    assert!(!script(&c, "kernel-sources").contains("ld-musl"));
}

#[test]
fn stage0_switches_install_mask_off_for_libc_on_for_final_root_and_off_after_images() {
    let c = config();
    assert!(script(&c, "target-libc").contains("\ninstall_mask_off\nE -1kq"));
    assert!(script(&c, "final-root").contains("\ninstall_mask_on\n"));
    assert!(script(&c, "images").contains("\ninstall_mask_off\n"));
    let f = full(config());
    for step in ["target-libc", "final-root", "images"] {
        let s = script(&f, step);
        assert!(!s.contains("\ninstall_mask_on\n"), "{step}");
        assert!(!s.contains("\ninstall_mask_off\n"), "{step}");
    }
}

#[test]
fn stage0_moves_the_package_database_out_of_the_final_root() {
    let move_out = "mv \"$S/var/db/pkg\" \"$X/pkg.base\"";
    assert!(script(&config(), "final-root").contains(move_out));
    assert!(!script(&full(config()), "final-root").contains(move_out));
}

#[test]
fn stage0_with_full_box_config_copies_it_to_savedconfig() {
    let mut c = config();
    c.full_box_config = true;
    let save = "cp \"$BUILD_CONF/toybox.config\" \"$BUILD_CONF/target-portage/savedconfig/sys-apps/toybox\"";
    assert!(script(&c, "target-env").contains(save));
    c.box_kind = BoxKind::Busybox;
    assert!(script(&c, "target-env").contains("savedconfig/sys-apps/busybox"));
    let mut f = full(config());
    f.full_box_config = true;
    assert!(!script(&f, "target-env").contains("savedconfig"));
}

#[test]
fn full_stage_swaps_package_provided_kernel_around_the_kernel_emerge() {
    let s = script(&full(config()), "kernel-sources");
    let swap = s.find("cp \"$P/package.provided.kernel\" \"$P/package.provided\"");
    let emerge = s.find("E -ukq --with-bdeps=y sys-kernel/gentoo-sources");
    let back = s.find("rm -f \"$P/package.provided\"\nrestore");
    assert!(swap < emerge && emerge < back && swap.is_some(), "{s}");
    assert!(!script(&config(), "kernel-sources").contains("package.provided"));
}

#[test]
fn full_stage_keeps_the_package_database_and_stacks_worlds_on_it() {
    let mut c = full(config());
    c.worlds = vec![world("gui", "base", &["x11-base/xorg-server"])];
    let s = script(&c, "world-images");
    assert!(s.contains("cp -a \"$S/var/db/pkg\" \"$I/var/db/pkg\""));
    let mut c0 = config();
    c0.worlds = c.worlds.clone();
    assert!(script(&c0, "world-images").contains("cp -a \"$X/pkg.base\" \"$I/var/db/pkg\""));
}

#[test]
fn toybox_and_busybox_build_their_own_box_for_the_initramfs() {
    let s = script(&config(), "initramfs");
    assert!(s.contains("--nodeps sys-apps/toybox"));
    assert!(s.contains("cp \"$BUILD_CONF/toybox-mini.config\""));
    let mut c = config();
    c.box_kind = BoxKind::Busybox;
    let s = script(&c, "initramfs");
    assert!(s.contains("--nodeps sys-apps/busybox"));
    assert!(s.contains("cp \"$BUILD_CONF/busybox-mini.config\""));
    assert!(s.contains("PKGDIR=\"$B/pkgs\"") && s.contains("--buildpkg=n"));
}

#[test]
fn gentoo_kernel_copies_linux_config_to_config_d() {
    let s = script(&kernel(config(), "gentoo-kernel"), "kernel-sources");
    assert!(s.contains(
        "cp \"$BUILD_CONF/linux.config\" \"$R/etc/kernel/config.d/build-helper.config\""
    ));
    assert!(!s.contains("\nkmake "));
    let k = script(&kernel(config(), "gentoo-kernel"), "kernel");
    assert!(k.contains("cp -a \"$R/lib/modules/$newest\" \"$S/lib/modules/\""));
}

#[test]
fn gentoo_kernel_bin_removes_a_stale_fragment_and_builds_nothing() {
    let c = kernel(config(), "gentoo-kernel-bin");
    let s = script(&c, "kernel-sources");
    assert!(s.contains("rm -f \"$R/etc/kernel/config.d/build-helper.config\""));
    assert!(!s.contains("\nkmake ") && !s.contains("$K/.config"));
    assert!(!script(&c, "kernel").contains("\nkmake "));
    assert!(script(&c, "images").contains("\"$R\"/boot/vmlinuz-*"));
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
    assert!(images.contains("cp \"$K/arch/arm64/boot/Image\" \"$KI\""));
    assert!(images.contains("-name '*.dtb' -exec cp {} \"$KB/\""));
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
fn split_base_writes_the_base_image_beside_the_kernel() {
    let mut c = config();
    assert!(script(&c, "images").contains("\"$S\" \"$F/base.sqfs\""));
    c.split_base = true;
    assert!(script(&c, "images").contains("\"$S\" \"$O/base-$BUILD_DATE\""));
}

#[test]
fn split_extra_writes_world_images_beside_the_kernel() {
    let mut c = config();
    c.worlds = vec![world("net", "base", &["net-misc/curl"])];
    assert!(script(&c, "images").contains("squashfs.net\" \"$F/net.sqfs\""));
    c.split_extra = true;
    assert!(script(&c, "images").contains("squashfs.net\" \"$O/net-$BUILD_DATE\""));
}

#[test]
fn split_initramfs_writes_a_gzip_cpio_and_keeps_the_kernel_without_it() {
    let mut c = config();
    let embedded = script(&c, "images");
    assert!(script(&c, "kernel-sources").contains("CONFIG_INITRAMFS_SOURCE"));
    assert!(embedded.contains("kmake -j\"$BUILD_JOBS\"\n") && !embedded.contains("cpio"));
    c.split_initramfs = true;
    let split = script(&c, "images");
    assert!(!script(&c, "kernel-sources").contains("CONFIG_INITRAMFS_SOURCE"));
    assert!(split.contains("cpio -o -H newc | gzip -9 > \"$O/initramfs-$BUILD_DATE\""));
    assert!(split.contains("depmod -b \"$F\""));
    assert!(split.contains("ld-musl-*.so.1") && split.contains("libssl.so*"));
    assert!(!split.contains("kmake -j\"$BUILD_JOBS\"\n"));
    c.libc = Libc::Glibc;
    assert!(script(&c, "images").contains("libc.so.6"));
}

#[test]
fn m68k_names_the_kernel_kernel_and_leaves_the_initramfs_uncompressed() {
    let mut c = config();
    c.build_arch = "m68k".into();
    c.split_initramfs = true;
    assert!(script(&c, "images").contains("cpio -o -H newc | cat > "));
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
fn native_build_name_writes_cpu_flags_and_exports_video_cards() {
    let mut c = config();
    let plain = script(&c, "target-world");
    assert!(plain.contains("unset VIDEO_CARDS\n") && !plain.contains("VIDEO_CARDS_NATIVE"));
    assert!(!script(&c, "target-env").contains("cpuid2cpuflags"));
    c.target = Target::new("x86_64-unknown-linux-musl", "zen2-native").unwrap();
    let world = script(&c, "target-world");
    assert!(world.contains("export VIDEO_CARDS=\"${VIDEO_CARDS_NATIVE:-}\""));
    assert!(world.contains("*\" amdgpu \"*) export LLVM_TARGETS=AMDGPU"));
    assert!(script(&c, "target-env").contains("package.use/00cpu-flags-native"));
}

#[test]
fn rust_host_builds_cross_toolchains_and_cleans_rust_clean_from_the_skeleton() {
    let mut r = host(true);
    assert!(primary_steps(&r).iter().all(|s| s.name != "rust-cross"));
    assert!(host_script(&r, "crossdev").contains("announce aarch64-unknown-linux-musl\n"));
    r.rust = true;
    let cross = host_script(&r, "crossdev");
    assert!(cross.contains("rust-cross builds it\"; else announce aarch64-unknown-linux-musl"));
    let rust = host_script(&r, "rust-cross");
    assert!(rust.contains("emerge -1q dev-lang/rust"));
    assert!(rust.contains(
        "aarch64-unknown-linux-musl-emerge --root=\"$S\" --sysroot=\"$S\" -Cq dev-libs/openssl"
    ));
    assert!(rust.contains(
        "emerge -1kq cross-aarch64-unknown-linux-musl/gcc cross-aarch64-unknown-linux-musl/musl"
    ));
    r.first_build = false;
    assert!(host_script(&r, "host-toolchain").contains("eselect rust update"));
}

#[test]
fn build_arch_with_64_links_lib64_and_others_lib32() {
    let s = script(&config(), "final-root");
    assert!(s.contains("ln -s usr/lib \"$S\"/lib64"));
    let mut c = config();
    c.build_arch = "arm".into();
    let s = script(&c, "final-root");
    assert!(s.contains("ln -s usr/lib \"$S\"/lib32") && !s.contains("lib64"));
    let mut r = host(true);
    assert!(
        host_script(&r, "crossdev").contains("ln -s usr/lib /usr/aarch64-unknown-linux-musl/lib64")
    );
    r.tuples[0].build_arch = "m68k".into();
    assert!(host_script(&r, "crossdev").contains("/usr/aarch64-unknown-linux-musl/lib32"));
}

#[test]
fn gentoo_mirrors_are_added_to_make_conf_and_removed_after() {
    let c = config();
    let env = script_with(&c, "target-env", true, true);
    assert!(env.contains(&format!(
        "echo \"GENTOO_MIRRORS=\\\"$GENTOO_MIRRORS\\\" {MIRRORS_MARKER}\" >> \"$BUILD_CONF/target-portage/make.conf\""
    )));
    let collect = script_with(&c, "collect", true, true);
    assert!(collect.contains(&format!("sed -i '/ {MIRRORS_MARKER}$/d'")));
    assert!(!script(&c, "target-env").contains("GENTOO_MIRRORS"));
    assert!(
        !script(&c, "collect").contains("GENTOO_MIRRORS")
            && !script(&c, "collect").contains(MIRRORS_MARKER)
    );
    let mut r = host(true);
    r.gentoo_mirrors = true;
    assert!(host_script(&r, "host-sync").contains(">> /etc/portage/make.conf"));
}

#[test]
fn host_cpuflags_writes_cpuid2cpuflags_to_package_use() {
    let mut r = host(true);
    let line = "echo \"*/* $(cpuid2cpuflags)\" > /etc/portage/package.use/00cpu-flags-native";
    assert!(!host_script(&r, "host-portage").contains(line));
    r.cpuflags = true;
    assert!(host_script(&r, "host-portage").contains(line));
}

#[test]
fn world_images_stack_on_their_parent_chain_and_save_their_own_database() {
    let mut c = config();
    c.worlds = vec![
        world("desktop", "base", &["x11-base/xorg-server"]),
        world("office", "desktop", &["app-office/libreoffice"]),
    ];
    let s = script(&c, "world-images");
    let desk = s.find("I=\"$R/usr/src/squashfs.desktop\"").unwrap();
    let office = s.find("I=\"$R/usr/src/squashfs.office\"").unwrap();
    assert!(desk < office);
    assert!(s[office..].contains("cp -a \"$X/pkg.desktop\" \"$I/var/db/pkg\""));
    assert!(s[office..].contains("cp \"$R/usr/src/squashfs.desktop/var/lib/portage/world\""));
    assert!(s[office..].contains("FI --root=\"$I\" -uDNKq app-office/libreoffice"));
    assert!(s[office..].contains("mv \"$I/var/db/pkg\" \"$X/pkg.office\""));
    let w = script(&c, "target-world");
    assert!(w.find("x11-base/xorg-server") < w.find("app-office/libreoffice"));
}
