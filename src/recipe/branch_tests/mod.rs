//! One test per configuration branch of the recipe (docs/recipe.md, docs/configuration.md):
//! each builds the steps of a small [`TargetConfig`] fixture with and without the branch and
//! checks that the generated commands change as the spec says.

mod hostile;
mod images;

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
        portage_tmpdir: None,
        install_mask_files: vec!["make.conf".into()],
        squashfs_compressors: Some(vec!["xz".into(), "zstd".into()]),
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

fn steps_of(c: &TargetConfig, gentoo_mirrors: bool) -> Vec<Step> {
    target_steps(&TargetRecipe {
        config: c,
        gentoo_mirrors,
        image_compressor: c.image_compressor(None).unwrap(),
        host_portage_tmpdir: None,
    })
}

/// The script of step `name` (prelude included) for `c` on a first build.
fn script(c: &TargetConfig, name: &str) -> String {
    script_with(c, name, false)
}

fn script_with(c: &TargetConfig, name: &str, mirrors: bool) -> String {
    steps_of(c, mirrors)
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
            rust_target: Some("aarch64-unknown-linux-musl".into()),
            target_portage: "/tree/configs/aarch64-unknown-linux-musl.a/target-portage".into(),
            portage_tmpdir: None,
        }],
        portage_tmpdirs: Vec::new(),
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
fn update_disables_rust_cross_only_for_tuples_whose_rust_target_is_missing() {
    let first = host_script(&host(true), "host-toolchain");
    let update = host_script(&host(false), "host-toolchain");
    let aside = "mv \"$rust_env\" \"$rust_env.build-helper\"";
    assert!(first.contains(aside) && update.contains(aside));
    assert!(!first.contains("sed -i -e '/:aarch64-unknown-linux-musl"));
    assert!(update.contains("cp \"$rust_env.build-helper\" \"$rust_env\""));
    assert!(update.contains(
        "/usr/lib/rustlib/aarch64-unknown-linux-musl >/dev/null 2>&1; then sed -i -e '/:aarch64-unknown-linux-musl\"/d' -e '/:aarch64-unknown-linux-musl$/d' \"$rust_env\"; fi"
    ));
    let world = update.find("emerge -uDNkq --with-bdeps=y @world").unwrap();
    assert!(update.find("sed -i -e '/:aarch64").unwrap() < world);
}

#[test]
fn base_patch_is_applied_on_the_targets_own_first_build_also_in_an_update_run() {
    let mut c = config();
    c.base_patch = true;
    let patch = "(cd \"$S\" && patch -p0 < \"$BUILD_CONF/base.patch\")";
    // The target's own first build counts, not the run's: final-root marks a base image
    // directory it creates, and images patches once then (the scripts are the same for a
    // first build and an update).
    let root = script(&c, "final-root");
    let marker = root
        .find("if [ ! -d \"$S/usr\" ]; then\n  mkdir -p \"$X\"\n  : > \"$X/base.patch.pending\"\n")
        .expect("the marker when the base image directory is new");
    assert!(marker < root.find("FI --root").unwrap());
    let images = script(&c, "images");
    assert!(images.contains(&format!(
        "if [ -e \"$X/base.patch.pending\" ]; then\n  {patch}\n  rm -f \"$X/base.patch.pending\"\nfi\n"
    )));
    assert!(images.find(patch).unwrap() < images.find("gensquashfs").unwrap());
    assert!(!script(&config(), "images").contains("patch -p0"));
    assert!(!script(&config(), "final-root").contains("base.patch.pending"));
}

#[test]
fn glibc_target_adds_en_us_to_locale_gen() {
    let mut c = config();
    assert!(!script(&c, "target-libc").contains("locale.gen"));
    c.libc = Libc::Glibc;
    let s = script(&c, "target-libc");
    assert!(s.contains("echo 'en_US.UTF-8 UTF-8' >> \"$R/etc/locale.gen\""));
    assert!(s.contains("E -1kq sys-libs/glibc sys-apps/baselayout"));
    // The image gets the same locale.gen, before its packages are installed.
    let root = script(&c, "final-root");
    let copy = root
        .find("cp -a \"$R/etc/locale.gen\" \"$S/etc/locale.gen\"\n")
        .unwrap();
    assert!(copy < root.find("FI --root").unwrap());
    assert!(!script(&config(), "final-root").contains("locale.gen"));
}

#[test]
fn image_emerges_use_the_image_as_sysroot_and_install_build_dependencies() {
    let mut c = full(config());
    c.worlds = vec![world("net", "base", &["net-misc/curl"])];
    let root = script(&c, "final-root");
    assert!(root.contains(
        "FI --root=\"$S\" --sysroot=\"$S\" -1uDNKq --with-bdeps=y sys-apps/baselayout\n"
    ));
    assert!(root.contains("FI --root=\"$S\" --sysroot=\"$S\" -uDNKq --with-bdeps=y @system\n"));
    assert!(root.contains("FI --root=\"$S\" --sysroot=\"$S\" -q --depclean\n"));
    let worlds = script(&c, "world-images");
    assert!(
        worlds.contains("FI --root=\"$I\" --sysroot=\"$I\" -uDNKq --with-bdeps=y net-misc/curl\n")
    );
    assert!(worlds.contains("FI --root=\"$I\" --sysroot=\"$I\" -q --depclean\n"));
}

#[test]
fn images_and_initramfs_get_tty1_random_and_urandom_nodes() {
    for step in ["final-root", "initramfs"] {
        let s = script(&config(), step);
        for node in [
            "mknod -m 620 \"$1/dev/tty1\" c 4 1",
            "mknod -m 666 \"$1/dev/random\" c 1 8",
            "mknod -m 666 \"$1/dev/urandom\" c 1 9",
            "mknod -m 600 \"$1/dev/console\" c 5 1",
        ] {
            assert!(s.contains(node), "{step}: {node}");
        }
    }
}

#[test]
fn build_environment_gets_the_lib64_pkgconfig_link() {
    let s = script(&config(), "kernel-sources");
    assert!(s.contains(
        "if [ ! -e /usr/lib64/pkgconfig ] && [ ! -L /usr/lib64/pkgconfig ] && [ ! -L /usr/lib64 ]; then\n  mkdir -p /usr/lib64\n  ln -s ../lib/pkgconfig /usr/lib64/pkgconfig\nfi\n"
    ));
}

#[test]
fn target_world_resolves_base_and_every_world_in_one_emerge_in_tree_order() {
    let mut c = config();
    c.base_atoms = vec!["sys-apps/toybox".into()];
    c.worlds = vec![
        world("net", "base", &["net-misc/curl"]),
        world("gui", "net", &["x11-apps/xterm", "net-misc/curl"]),
    ];
    let s = script(&c, "target-world");
    assert!(s.contains(
        "E -uDNkq --with-bdeps=y sys-apps/toybox net-misc/curl x11-apps/xterm net-misc/curl\n"
    ));
    assert_eq!(s.matches("\nE ").count(), 1);
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
    assert!(s.contains("cp -a \"$S/var/db/pkg/.\" \"$I/var/db/pkg/\""));
    assert!(s.contains("cp -a \"$I/var/db/pkg\" \"$X/pkg.gui\""));
    assert!(!s.contains("mv \"$I/var/db/pkg\""));
    let mut c0 = config();
    c0.worlds = c.worlds.clone();
    let s0 = script(&c0, "world-images");
    assert!(s0.contains("cp -a \"$X/pkg.base/.\" \"$I/var/db/pkg/\""));
    assert!(s0.contains("mv \"$I/var/db/pkg\" \"$X/pkg.gui\""));
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
fn mini_box_is_built_without_symlinks_and_pam_from_its_own_savedconfig_only() {
    for (kind, name) in [(BoxKind::Toybox, "toybox"), (BoxKind::Busybox, "busybox")] {
        let mut c = config();
        c.box_kind = kind;
        let s = script(&c, "initramfs");
        // busybox: `pam? ( !static )`; make-symlinks would link every applet.
        assert!(s.contains("USE=\"-make-symlinks -syslog -pam static savedconfig static-libs\" "));
        // savedconfig.eclass, restore_config: a versioned file (saved by the full box's
        // build) is taken before the plain name, so it is removed first.
        let rm = s
            .find(&format!(
                "rm -f \"$B/etc/portage/savedconfig/sys-apps/{name}\"-*\n"
            ))
            .unwrap();
        assert!(
            rm < s
                .find(&format!("cp \"$BUILD_CONF/{name}-mini.config\""))
                .unwrap()
        );
    }
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
    assert!(world.contains("export \"${cpu_flags%%:*}=${cpu_flags#*: }\""));
    // Nothing is written into the configuration.
    assert!(!script(&c, "target-env").contains("00cpu-flags-native"));
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
fn rust_dependencies_go_into_every_missing_skeleton_before_one_rust_build() {
    let mut r = host(true);
    r.rust = true;
    r.tuples.push(TupleInfo {
        tuple: "armv7a-unknown-linux-musleabihf".into(),
        build_arch: "arm".into(),
        libc: "musl".into(),
        rust_clean: Vec::new(),
        rust_target: Some("armv7a-unknown-linux-musleabihf".into()),
        target_portage: "/tree/configs/armv7a-unknown-linux-musleabihf.b/target-portage".into(),
        portage_tmpdir: Some("${ROOT}tmp".into()),
    });
    let rust = host_script(&r, "rust-cross");
    let deps = |t: &str| {
        rust.find(&format!(
            "{t}-emerge --root=\"$S\" --sysroot=\"$S\" -1kq virtual/libc sys-devel/gcc dev-libs/openssl"
        ))
        .unwrap()
    };
    let build = rust.find("emerge -1q dev-lang/rust").unwrap();
    assert_eq!(rust.matches("emerge -1q dev-lang/rust").count(), 1);
    assert!(deps("aarch64-unknown-linux-musl") < build);
    assert!(deps("armv7a-unknown-linux-musleabihf") < build);
    // Each skeleton is pointed at its first target's configuration; the primary target's
    // tuple at its binary packages too; a ${ROOT} PORTAGE_TMPDIR is made in the skeleton.
    let link = rust
        .find("ln -sfn /tree/configs/armv7a-unknown-linux-musleabihf.b/target-portage \"$S/etc/portage\"")
        .unwrap();
    assert!(link < deps("armv7a-unknown-linux-musleabihf"));
    assert!(rust.contains(
        "ln -sfn /tree/configs/aarch64-unknown-linux-musl.a/target-portage \"$S/etc/portage\""
    ));
    assert_eq!(
        rust.matches("ln -sfn \"$BUILD_PKGS\" \"$S/packages\"")
            .count(),
        1
    );
    assert!(rust.contains("  mkdir -p \"$S\"/tmp\n"));
    // Cleaned and announced after the one build, only where rust was missing.
    let clean = rust.find("if [ \"$missing_0\" = yes ]; then").unwrap();
    assert!(build < clean);
    assert!(
        build
            < rust
                .find("announce armv7a-unknown-linux-musleabihf")
                .unwrap()
    );
    assert!(rust.contains("if [ \"$rebuild\" = yes ]; then emerge -1q dev-lang/rust; fi\n"));
}

#[test]
fn portage_tmpdir_below_root_is_made_where_each_emerge_expands_it() {
    let mut c = config();
    c.portage_tmpdir = Some("${ROOT}tmp".into());
    let steps = target_steps(&TargetRecipe {
        config: &c,
        gentoo_mirrors: false,
        image_compressor: "xz".into(),
        host_portage_tmpdir: Some("${ROOT}var/tmp".into()),
    });
    for s in &steps {
        assert!(
            s.script.contains("mkdir -p /var/tmp \"$R\"/tmp\n"),
            "{}",
            s.name
        );
    }
    drop(steps);
    // The image emerges have ROOT "$S", "$I" and the mini box's "$B/root": their own.
    c.worlds = vec![world("net", "base", &["net-misc/curl"])];
    let root = script(&c, "final-root");
    let made = root.find("mkdir -p -m 1777 \"$S\"/tmp\n").unwrap();
    assert!(made < root.find("FI --root").unwrap());
    let emptied = root
        .find("(cd \"$S\" && rmdir tmp/portage) 2>/dev/null || true\n")
        .unwrap();
    assert!(emptied > root.find("--depclean").unwrap());
    let worlds = script(&c, "world-images");
    let made = worlds.find("mkdir -p -m 1777 \"$I\"/tmp\n").unwrap();
    assert!(made < worlds.find("FI --root").unwrap());
    let removed = worlds
        .find("(cd \"$I\" && rmdir -p tmp/portage tmp) 2>/dev/null || true\n")
        .unwrap();
    assert!(removed > worlds.find("--depclean").unwrap());
    assert!(script(&c, "initramfs").contains("mkdir -p -m 1777 \"$B/root\"/tmp\n"));
    // A plain path is made by the step prelude only.
    assert!(!script(&config(), "final-root").contains("-m 1777"));
    let mut r = host(true);
    r.portage_tmpdirs = vec!["${ROOT}tmp".into(), "/var/tmp/portage/x".into()];
    for s in primary_steps(&r) {
        assert!(
            s.script.contains("mkdir -p /tmp /var/tmp/portage/x\n"),
            "{}",
            s.name
        );
    }
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
    let env = script_with(&c, "target-env", true);
    assert!(env.contains(&format!(
        "echo \"GENTOO_MIRRORS=\\\"$GENTOO_MIRRORS\\\" {MIRRORS_MARKER}\" >> \"$BUILD_CONF/target-portage/make.conf\""
    )));
    let collect = script_with(&c, "collect", true);
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
fn host_cpuflags_are_exported_to_the_primary_steps_not_written_into_configs() {
    let mut r = host(true);
    let line = "export \"${cpu_flags%%:*}=${cpu_flags#*: }\"";
    assert!(!host_script(&r, "host-portage").contains(line));
    r.cpuflags = true;
    for s in primary_steps(&r) {
        assert!(s.script.contains(line), "{}", s.name);
        assert!(!s.script.contains("00cpu-flags-native"), "{}", s.name);
    }
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
    // The world's own previous database first, its parent chain's laid over it.
    let own = s[office..]
        .find("cp -a \"$X/pkg.office/.\" \"$I/var/db/pkg/\"")
        .unwrap();
    let parent = s[office..]
        .find("cp -a \"$X/pkg.desktop/.\" \"$I/var/db/pkg/\"")
        .unwrap();
    assert!(own < parent);
    assert!(s[office..].contains("cp \"$R/usr/src/squashfs.desktop/var/lib/portage/world\""));
    assert!(s[office..].contains(
        "FI --root=\"$I\" --sysroot=\"$I\" -uDNKq --with-bdeps=y app-office/libreoffice"
    ));
    assert!(s[office..].contains("mv \"$I/var/db/pkg\" \"$X/pkg.office\""));
    let bind = s[office..]
        .find("mount --bind \"$S/etc\" \"$I/etc\"")
        .unwrap();
    let install = s[office..]
        .find("-uDNKq --with-bdeps=y app-office")
        .unwrap();
    let unbind = s[office..].find("umount \"$I/etc\"").unwrap();
    let depclean = s[office..]
        .find("FI --root=\"$I\" --sysroot=\"$I\" -q --depclean")
        .unwrap();
    assert!(bind < install && install < unbind && unbind < depclean);
    assert!(s.contains("trap unbind EXIT"));
    assert!(!script(&config(), "world-images").contains("mount --bind"));
    let w = script(&c, "target-world");
    assert!(w.find("x11-base/xorg-server") < w.find("app-office/libreoffice"));
}

#[test]
fn world_images_carry_the_merged_usr_links_of_the_base() {
    let mut c = config();
    c.worlds = vec![world("gui", "base", &["x11-base/xorg-server"])];
    let s = script(&c, "world-images");
    assert!(s.contains("[ -e \"$I\"/lib64 ] || ln -s usr/lib \"$I\"/lib64"));
    assert!(s.contains("[ -e \"$I\"/bin ] || ln -s usr/bin \"$I\"/bin"));
    assert!(s.contains("[ -e \"$I\"/usr/sbin ] || ln -s bin \"$I\"/usr/sbin"));
}

#[test]
fn portage_tmpdirs_exist_before_every_step_that_may_emerge() {
    let mut c = config();
    c.portage_tmpdir = Some("/var/tmp/portage/zen2".into());
    let steps = target_steps(&TargetRecipe {
        config: &c,
        gentoo_mirrors: false,
        image_compressor: "xz".into(),
        host_portage_tmpdir: Some("/var/tmp/portage/host".into()),
    });
    for s in &steps {
        assert!(
            s.script
                .contains("mkdir -p /var/tmp/portage/host /var/tmp/portage/zen2\n"),
            "{}",
            s.name
        );
    }
    let mut r = host(true);
    r.portage_tmpdirs = vec!["/var/tmp/portage/zen2".into()];
    for s in primary_steps(&r) {
        let at = s.script.find("mkdir -p /var/tmp/portage/zen2\n").unwrap();
        assert!(
            at < s.script.find("\nemerge").unwrap_or(usize::MAX),
            "{}",
            s.name
        );
    }
}

#[test]
fn install_mask_switches_every_file_that_carries_the_line() {
    let mut c = config();
    c.install_mask_files = vec!["env/sys-devel/gcc".into(), "make.conf".into()];
    let s = script(&c, "target-libc");
    assert!(s.contains(
        "install_mask_off() { sed -i 's/^\\(INSTALL_MASK=\\)/#\\1/' \"$BUILD_CONF/target-portage/\"env/sys-devel/gcc \"$BUILD_CONF/target-portage/\"make.conf; }"
    ));
    assert!(s.contains("install_mask_off\nE -1kq"));
    c.install_mask_files.clear();
    assert!(script(&c, "final-root").contains("install_mask_on() { :; }"));
}

#[test]
fn host_toolchain_selects_the_native_chost_profiles_and_rebuilds_libc() {
    let first = host_script(&host(true), "host-toolchain");
    assert!(first.contains("case \"$chost\" in *-musl*) host_libc=sys-libs/musl"));
    assert!(first.contains("sys-devel/gcc \"$host_libc\""));
    assert!(first.contains("eselect gcc set \"$chost-$(newest_in \"/usr/lib/gcc/$chost\")\""));
    assert!(
        first.contains("eselect binutils set \"$chost-$(newest_in \"/usr/$chost/binutils-bin\")\"")
    );
    assert!(first.contains("sed -i '/^cross-/d' /var/lib/portage/world"));
    assert!(!host_script(&host(false), "host-toolchain").contains("/^cross-/d"));
    let cross = host_script(&host(true), "crossdev");
    assert!(cross.contains(
        "eselect binutils set \"aarch64-unknown-linux-musl-$(newest_in \"/usr/$chost/aarch64-unknown-linux-musl/binutils-bin\")\""
    ));
    assert!(cross
        .contains("eselect gcc set \"aarch64-unknown-linux-musl-$(newest_in /usr/lib/gcc/aarch64-unknown-linux-musl)\""));
}

#[test]
fn crossdev_links_the_clang_cross_names_and_empties_the_gcc_install_cfg() {
    let cross = host_script(&host(true), "crossdev");
    for name in ["clang", "clang++", "clang-cl", "clang-cpp"] {
        assert!(cross.contains(&format!(
            "ln -sfn \"$chost-clang\" \"$b/aarch64-unknown-linux-musl-{name}\""
        )));
        assert!(cross.contains(&format!(
            "ln -sfn \"$chost-clang\" \"$b/aarch64-unknown-linux-musl-{name}-$llvm\""
        )));
    }
    assert!(cross
        .contains("ln -sfn \"$chost-llvm-config\" \"$b/aarch64-unknown-linux-musl-llvm-config\""));
    assert!(cross.contains(": > /etc/clang/gentoo-gcc-install.cfg"));
}

#[test]
fn rust_targets_come_from_the_host_env_and_a_tuple_without_one_never_rebuilds_rust() {
    let mut r = host(false);
    r.rust = true;
    r.tuples[0].rust_target = Some("x86_64-crossdev-linux-musl".into());
    r.tuples.push(TupleInfo {
        tuple: "m68k-unknown-linux-musl".into(),
        build_arch: "m68k".into(),
        libc: "musl".into(),
        rust_clean: Vec::new(),
        rust_target: None,
        target_portage: "/tree/configs/m68k-unknown-linux-musl.m/target-portage".into(),
        portage_tmpdir: None,
    });
    let cross = host_script(&r, "crossdev");
    assert!(cross.contains("/usr/lib/rust/*/lib/rustlib/x86_64-crossdev-linux-musl"));
    assert!(cross.contains("\nannounce m68k-unknown-linux-musl\n"));
    let rust = host_script(&r, "rust-cross");
    assert!(!rust.contains("m68k"));
    let rc = primary_steps(&r);
    let rc = rc.iter().find(|s| s.name == "rust-cross").unwrap();
    assert_eq!(rc.announces, ["aarch64-unknown-linux-musl"]);
    assert!(!host_script(&r, "host-toolchain").contains("m68k-unknown-linux-musl\""));
    r.tuples.remove(0);
    assert!(primary_steps(&r).iter().all(|s| s.name != "rust-cross"));
}

#[test]
fn host_steps_take_video_cards_from_video_cards_native() {
    let line = "if [ -n \"${VIDEO_CARDS_NATIVE:-}\" ]; then export VIDEO_CARDS=\"$VIDEO_CARDS_NATIVE\"; fi";
    for step in ["host-portage", "host-toolchain", "crossdev"] {
        assert!(host_script(&host(true), step).contains(line), "{step}");
    }
}

#[test]
fn target_maintenance_depclean_ignores_modules_and_portage_config() {
    assert!(script(&config(), "target-maintenance")
        .contains("UNINSTALL_IGNORE=\"/lib/modules/* /etc/portage\" E -q --depclean"));
}

#[test]
fn target_world_fixes_ldd_to_run_the_loader_inside_root() {
    let s = script(&config(), "target-world");
    let fix = s.find("s/x $rtld/x ${ROOT}$rtld/").unwrap();
    assert!(s.contains("if [ -f \"$R/usr/bin/ldd\" ]"));
    assert!(fix < s.find("E -uDNkq").unwrap_or(usize::MAX));
}
