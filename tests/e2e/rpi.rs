//! The Raspberry Pi layout end to end: `build-helper run` of the repository's
//! `aarch64-unknown-linux-musl.rpi4b` configuration (raspberrypi-sources built here with its
//! linux.config, raspberrypi-firmware in the target's /boot) with split.base, split.extra and
//! one stacked world, on the demo stand-in stage3. Its stand-in raspberrypi-sources has the
//! raspberrypi tree's device tree sources (arm64's `dts/overlays` a link to arm's), its
//! stand-in make builds arm64's `Image.gz` and the device trees, its stand-in
//! raspberrypi-firmware installs into ROOT's /boot as ::gentoo's. The result's `boot/` is
//! what goes onto the SD card's boot partition: it is checked file by file. The same
//! configuration's base.patch (it adds etc/inittab) shows that a target gets it on its own
//! first build, also when it is new to an update run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const TARGET: &str = "aarch64-unknown-linux-musl.rpi4b";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A starter of the demo stand-in stage3 for the aarch64 targets named.
fn write_starter(tree: &Tree, file: &str, names: &[&str]) -> PathBuf {
    let mut text = String::new();
    for name in names {
        text.push_str(&format!(
            "[[target]]\ntuple = \"aarch64-unknown-linux-musl\"\nname = \"{name}\"\n\n"
        ));
    }
    text.push_str(
        "[options]\nui = \"plain\"\nstage3 = \"amd64-musl-hardened\"\n\
         mount_type = \"bind\"\ntmp_type = \"none\"\nhistory_type = \"squashfs\"\n\
         umount_ask = false\n",
    );
    let path = tree.path().join("starters").join(file);
    write(&path, &text);
    path
}

/// `build-helper run STARTER --ui plain`, which must succeed; then a second's pause, since
/// runs are named by the second they start.
fn run(tree: &Tree, starter: &Path, target: &str) {
    let out = tree.bh(&["run", starter.to_str().unwrap(), "--ui", "plain"], &[]);
    assert!(
        out.status.success(),
        "the run of {} failed:\n{}",
        starter.display(),
        tail(&tree.log(target), 40)
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

/// The one build directory of `target` under builds/.
fn build_dir(tree: &Tree, target: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(tree.path().join("builds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{target}.")))
        })
        .collect();
    assert_eq!(dirs.len(), 1, "one build of {target}: {dirs:?}");
    dirs.remove(0)
}

/// `unsquashfs -l` of an image: its paths, without `squashfs-root/`.
fn listing(image: &Path) -> Vec<String> {
    let out = Command::new("unsquashfs")
        .arg("-l")
        .arg(image)
        .output()
        .expect("unsquashfs");
    assert!(out.status.success(), "unsquashfs -l {}", image.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("squashfs-root/").map(str::to_string))
        .collect()
}

#[test]
fn raspberry_pi_boot_holds_kernel8_img_device_trees_firmware_and_the_split_images() {
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let tree = Tree::new();
    let conf = tree.path().join("configs").join(TARGET);
    write(&conf.join("split.base"), "");
    write(&conf.join("split.extra"), "");
    write(&conf.join("worlds/tools"), "app-misc/screen\n");
    write(&conf.join("worlds/tree/tools"), "base\n");
    let starter = write_starter(&tree, "rpi-e2e.toml", &["rpi4b"]);
    run(&tree, &starter, TARGET);

    let d = build_dir(&tree, TARGET);
    let boot = d.join("boot");
    // kernel8.img is arm64's Image.gz (gzip), not the plain Image.
    let kernel = std::fs::read(boot.join("kernel8.img")).expect("boot/kernel8.img");
    assert_eq!(
        &kernel[..2],
        &[0x1f, 0x8b],
        "kernel8.img is gzip-compressed"
    );
    // The device trees the kernel build made, the overlays through arm64's link to arm's.
    assert!(boot.join("bcm2711-rpi-4-b.dtb").is_file());
    assert!(boot.join("overlays/vc4-kms-v3d.dtbo").is_file());
    // raspberrypi-firmware's files, from the target's /boot.
    for f in [
        "bootcode.bin",
        "start4.elf",
        "fixup4.dat",
        "config.txt",
        "cmdline.txt",
    ] {
        assert!(boot.join(f).is_file(), "boot/{f}");
    }
    // split.base and split.extra: beside kernel8.img, and not at the top.
    for image in ["base", "tools"] {
        assert!(boot.join(image).is_file(), "boot/{image}");
        assert!(!d.join(image).exists(), "{image} at the top of the build");
    }
    let efi = std::fs::read_link(d.join("EFI/boot/bootx64.efi")).unwrap();
    assert_eq!(efi, Path::new("../../boot/kernel8.img"));
    // base.patch (it adds etc/inittab) is in the base image on the target's first build.
    let base = listing(&boot.join("base"));
    assert!(base.iter().any(|p| p == "etc/inittab"), "{base:?}");
    assert!(listing(&boot.join("tools"))
        .iter()
        .any(|p| p == "usr/share/demo/app-misc/screen"));
    // Nothing left mounted.
    assert_eq!(mounts_anywhere(tree.path()), Vec::<String>::new());
}

#[test]
fn base_patch_reaches_a_target_new_to_an_update_run() {
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let tree = Tree::new();
    // A first run without the raspberry pi target makes the history...
    let first = write_starter(&tree, "first.toml", &["demo-c"]);
    run(&tree, &first, "aarch64-unknown-linux-musl.demo-c");
    // ...which the second run updates, with the raspberry pi target new to it.
    write(
        &tree.path().join("configs").join(TARGET).join("split.base"),
        "",
    );
    let second = write_starter(&tree, "second.toml", &["demo-c", "rpi4b"]);
    run(&tree, &second, TARGET);
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tree.run_dir().join("plan.json")).unwrap()).unwrap();
    assert_eq!(
        plan["first_build"],
        serde_json::Value::Bool(false),
        "not an update"
    );
    let base = listing(&build_dir(&tree, TARGET).join("boot/base"));
    assert!(
        base.iter().any(|p| p == "etc/inittab"),
        "base.patch was not applied: {base:?}"
    );
    assert_eq!(mounts_anywhere(tree.path()), Vec::<String>::new());
}
