//! Locating a build and preparing its boot, on configuration fixtures (no QEMU is started).

use std::fs;
use std::path::Path;

use super::*;
use crate::config::fixture::{add_world, target_dir, write};

const T: &str = "x86_64-unknown-linux-musl.demo";

/// A tree with the fixture configuration (worlds net <- tools) and builds of `dates`, each
/// with a kernel and the given top-level files.
fn tree_with_builds(root: &Path, dates: &[&str], files: &[&str]) {
    let dir = target_dir(&root.join("configs"), T);
    add_world(&dir, "net", "base", "net-misc/curl\n");
    add_world(&dir, "tools", "net", "app-editors/nano\n");
    for date in dates {
        let b = root.join("builds").join(format!("{T}.{date}"));
        write(&b.join("EFI/boot/bootx64.efi"), "kernel");
        for f in files {
            write(&b.join(f), "image");
        }
    }
}

fn request() -> BootRequest {
    BootRequest {
        accel: Some(Accel::Tcg),
        memory_mib: 256,
        smoke: true,
        ..BootRequest::default()
    }
}

#[test]
fn a_target_boots_its_newest_complete_build() {
    let tmp = tempfile::tempdir().unwrap();
    tree_with_builds(tmp.path(), &["20260101-000000", "20260301-000000"], &[]);
    // A newer build whose collect step did not finish (no EFI/) is not taken.
    fs::create_dir_all(
        tmp.path()
            .join(format!("builds/{T}.20260401-000000/.EFI.partial")),
    )
    .unwrap();
    let b = find_build(tmp.path(), T).unwrap();
    assert!(
        b.dir.ends_with(format!("{T}.20260301-000000")),
        "{}",
        b.dir.display()
    );
    assert_eq!(default_stack(&b.config), ["tools", "net"]);
}

#[test]
fn a_build_directory_finds_its_tree_and_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    tree_with_builds(tmp.path(), &["20260101-000000"], &[]);
    let dir = tmp.path().join(format!("builds/{T}.20260101-000000"));
    let b = find_build(Path::new("/nonexistent"), dir.to_str().unwrap()).unwrap();
    assert_eq!(b.config.build_arch, "x86_64");
}

#[test]
fn a_target_without_builds_says_to_build_first() {
    let tmp = tempfile::tempdir().unwrap();
    tree_with_builds(tmp.path(), &[], &[]);
    let e = find_build(tmp.path(), T).unwrap_err().to_string();
    assert!(
        e.contains("no build of x86_64-unknown-linux-musl.demo"),
        "{e}"
    );
    assert!(e.contains("build-helper run"), "{e}");
    let e = find_build(tmp.path(), "nonsense").unwrap_err().to_string();
    assert!(e.contains("nor a target"), "{e}");
}

#[test]
fn split_images_are_shared_over_9p_and_images_inside_the_initramfs_need_no_medium() {
    let tmp = tempfile::tempdir().unwrap();
    tree_with_builds(tmp.path(), &["20260101-000000"], &["initramfs"]);
    let b = find_build(tmp.path(), T).unwrap();
    let stack = default_stack(&b.config);
    assert_eq!(default_medium(&b.dir, &stack), Medium::None);
    write(&b.dir.join("net"), "image");
    assert_eq!(default_medium(&b.dir, &stack), Medium::NineP);
    assert_eq!(default_medium(&b.dir, &[]), Medium::None);
    write(&b.dir.join("base"), "image");
    assert_eq!(default_medium(&b.dir, &[]), Medium::NineP);
}

#[test]
fn a_stacked_image_that_is_nowhere_is_named_with_what_the_build_has() {
    let tmp = tempfile::tempdir().unwrap();
    tree_with_builds(tmp.path(), &["20260101-000000"], &["base", "net"]);
    let cfg = tmp.path().join("configs").join(T);
    write(&cfg.join("split.extra"), "");
    write(&cfg.join("split.base"), "");
    let b = find_build(tmp.path(), T).unwrap();
    let mut req = request();
    req.stack = Some(vec!["tools".into()]);
    let e = prepare(&b, &req).unwrap_err().to_string();
    assert!(e.contains("image `tools`"), "{e}");
    assert!(e.contains("EFI base net"), "{e}");
    // Not split: only the target's worlds can be inside the initramfs.
    fs::remove_file(cfg.join("split.extra")).unwrap();
    let b = find_build(tmp.path(), T).unwrap();
    req.stack = Some(vec!["nowhere".into()]);
    let e = prepare(&b, &req).unwrap_err().to_string();
    assert!(e.contains("image `nowhere`"), "{e}");
}

#[test]
fn an_unsupported_build_arch_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    tree_with_builds(tmp.path(), &["20260101-000000"], &[]);
    write(
        &tmp.path().join("configs").join(T).join("build-arch"),
        "riscv\n",
    );
    let b = find_build(tmp.path(), T).unwrap();
    let e = prepare(&b, &request()).unwrap_err().to_string();
    assert!(e.contains("build-arch `riscv`"), "{e}");
}
