//! Locating a build and preparing its boot, on configuration fixtures (no QEMU is started).

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::config::fixture::{add_world, target_dir, write};
// The demo tree (configs/ and starters/ copied into a temporary directory): the explore
// tests' fixture; its history directory is not used here.
use crate::explore::tests::demo_tree;

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

/// The find_build of a build directory given by path (no run records needed).
fn by_path(root: &Path, date: &str) -> Build {
    let dir = root.join(format!("builds/{T}.{date}"));
    find_build(Path::new("/nonexistent"), dir.to_str().unwrap()).unwrap()
}

const A: &str = "x86_64-unknown-linux-musl.demo-a";

/// Records a run of the demo at `date` (its plan and checkpoint under work/), with the
/// `collect` step done for the targets in `collected`.
fn record_run(starter: &crate::starter::Starter, date: &str, collected: &[&str]) {
    let plan = crate::plan::build(starter, date, None).unwrap();
    let dir = crate::rundir::work(&starter.tree).join(&plan.run_id);
    fs::create_dir_all(&dir).unwrap();
    crate::rundir::save_plan(&dir, &plan).unwrap();
    let mut cp = crate::engine::state::Checkpoint::new(&plan);
    for t in collected {
        let t = Target::parse(t).unwrap();
        cp.step_started(&t, "collect", 1);
        cp.step_finished(&t, "collect", 0, 1, None);
    }
    crate::rundir::save_checkpoint(&dir, &cp).unwrap();
}

/// A build directory of `target` at `date` with a kernel.
fn build_at(root: &Path, target: &str, date: &str) -> PathBuf {
    let b = root.join("builds").join(format!("{target}.{date}"));
    write(&b.join("EFI/boot/bootx64.efi"), "kernel");
    b
}

#[test]
fn a_target_boots_the_newest_build_its_run_records_name() {
    let (tmp, starter) = demo_tree();
    let root = tmp.path();
    record_run(&starter, "20260101-000000", &[A]);
    record_run(&starter, "20260301-000000", &[A]);
    // A newer run that did not collect this target (it failed before): not taken.
    record_run(
        &starter,
        "20260401-000000",
        &["x86_64-unknown-linux-musl.demo-b"],
    );
    for date in ["20260101-000000", "20260301-000000", "20260401-000000"] {
        build_at(root, A, date);
    }
    // A directory a build planted under builds/, newest by name: no run names it.
    build_at(root, A, "99999999-999999");
    let b = find_build(root, A).unwrap();
    assert_eq!(b.dir, root.join(format!("builds/{A}.20260301-000000")));
    assert_eq!(b.config.build_arch, "x86_64");
}

#[test]
fn a_recorded_build_whose_directory_is_a_link_is_not_taken() {
    let (tmp, starter) = demo_tree();
    let root = tmp.path();
    record_run(&starter, "20260101-000000", &[A]);
    record_run(&starter, "20260301-000000", &[A]);
    build_at(root, A, "20260101-000000");
    // The newer run's directory was replaced by a link to a directory elsewhere.
    let elsewhere = build_at(root, "elsewhere", "x");
    std::os::unix::fs::symlink(&elsewhere, root.join(format!("builds/{A}.20260301-000000")))
        .unwrap();
    let b = find_build(root, A).unwrap();
    assert_eq!(b.dir, root.join(format!("builds/{A}.20260101-000000")));
}

#[test]
fn a_build_directory_finds_its_tree_and_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    tree_with_builds(tmp.path(), &["20260101-000000"], &[]);
    assert_eq!(
        by_path(tmp.path(), "20260101-000000").config.build_arch,
        "x86_64"
    );
}

#[test]
fn a_target_without_builds_says_to_build_first() {
    let (tmp, starter) = demo_tree();
    // Directories alone, without a run that collected them, are no builds.
    build_at(tmp.path(), A, "20260101-000000");
    record_run(&starter, "20260201-000000", &[]);
    let e = find_build(tmp.path(), A).unwrap_err().to_string();
    assert!(e.contains(&format!("no finished build of {A}")), "{e}");
    assert!(e.contains("build-helper run"), "{e}");
    let e = find_build(tmp.path(), "nonsense").unwrap_err().to_string();
    assert!(e.contains("nor a target"), "{e}");
}

#[test]
fn the_transcript_replaces_a_planted_link_and_refuses_a_linked_build_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build_at(tmp.path(), A, "1");
    let victim = tmp.path().join("victim");
    fs::write(&victim, "host file\n").unwrap();
    std::os::unix::fs::symlink(&victim, b.join(TRANSCRIPT)).unwrap();
    let p = save_transcript(&b, b"console\n").unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "host file\n");
    assert!(fs::symlink_metadata(&p).unwrap().file_type().is_file());
    assert_eq!(fs::read_to_string(&p).unwrap(), "console\n");
    // The build directory itself a link (to a directory out of builds/): nothing written.
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let linked = tmp.path().join(format!("builds/{A}.2"));
    std::os::unix::fs::symlink(&out, &linked).unwrap();
    let e = save_transcript(&linked, b"console\n").unwrap_err();
    assert!(e.to_string().contains("link"), "{e}");
    assert!(!out.join(TRANSCRIPT).exists());
}

#[test]
fn a_kernel_or_initramfs_that_is_a_link_is_not_booted() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("b");
    fs::create_dir_all(b.join("EFI/boot")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", b.join("EFI/boot/bootx64.efi")).unwrap();
    let e = kernel_of(&b).unwrap_err().to_string();
    assert!(e.contains("no kernel"), "{e}");
}

#[test]
fn split_images_are_shared_over_9p_and_images_inside_the_initramfs_need_no_medium() {
    let tmp = tempfile::tempdir().unwrap();
    tree_with_builds(tmp.path(), &["20260101-000000"], &["initramfs"]);
    let b = by_path(tmp.path(), "20260101-000000");
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
    let b = by_path(tmp.path(), "20260101-000000");
    let mut req = request();
    req.stack = Some(vec!["tools".into()]);
    let e = prepare(&b, &req).unwrap_err().to_string();
    assert!(e.contains("image `tools`"), "{e}");
    assert!(e.contains("EFI base net"), "{e}");
    // Not split: only the target's worlds can be inside the initramfs.
    fs::remove_file(cfg.join("split.extra")).unwrap();
    let b = by_path(tmp.path(), "20260101-000000");
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
    let b = by_path(tmp.path(), "20260101-000000");
    let e = prepare(&b, &request()).unwrap_err().to_string();
    assert!(e.contains("build-arch `riscv`"), "{e}");
}
