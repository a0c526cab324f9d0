//! Tests of loading and checking configuration directories, on fixture trees.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::fixture::{add_world, host_dir, target_dir, write, PROFILE};
use super::*;

const DEMO: &str = "x86_64-unknown-linux-musl.demo";

fn errors(dir: &Path) -> Vec<Problem> {
    load_target(dir).expect_err("the configuration should be rejected")
}

/// The only error, which must concern `path`; returns its message.
fn only_error(dir: &Path, path: &Path) -> String {
    let errors = errors(dir);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, path, "{errors:#?}");
    errors[0].message.clone()
}

fn world_names(config: &TargetConfig) -> Vec<(&str, &str)> {
    config
        .worlds
        .iter()
        .map(|w| (w.name.as_str(), w.parent.as_str()))
        .collect()
}

#[test]
fn minimal_target_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    let config = load_target(&dir).unwrap();
    assert_eq!(config.target, Target::parse(DEMO).unwrap());
    assert_eq!(config.build_arch, "x86_64");
    assert_eq!(config.box_kind, BoxKind::Toybox);
    assert_eq!(config.libc, Libc::Musl);
    assert!(!config.stage0);
    assert_eq!(config.base_atoms, ["@system"]);
    assert_eq!(
        config.kernel_package.as_deref(),
        Some("sys-kernel/gentoo-sources")
    );
    assert!(config.has_linux_config && !config.full_box_config && !config.split_base);
    assert!(config.worlds.is_empty() && config.warnings.is_empty() && config.repos.is_empty());
}

#[test]
fn every_missing_required_entry_is_a_problem_naming_its_path() {
    let cases = [
        "build-arch",
        "initramfs",
        "repos",
        "target-portage",
        "worlds/base",
        "target-portage/make.profile",
        "linux.config",
    ];
    for entry in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = target_dir(tmp.path(), DEMO);
        let path = dir.join(entry);
        if path.is_dir() {
            fs::remove_dir_all(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
        let message = only_error(&dir, &path);
        assert!(message.starts_with("missing"), "{entry}: {message}");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), "x86_64-linux-musl.demo");
    fs::remove_file(dir.join("build-arch")).unwrap();
    fs::remove_dir_all(dir.join("initramfs")).unwrap();
    fs::remove_file(dir.join("toybox-mini.config")).unwrap();
    write(&dir.join("worlds/base"), "@system extra\n");
    add_world(&dir, "gui", "nowhere", "x11-base/xorg-server\n");
    let errors = errors(&dir);
    let text: Vec<String> = errors.iter().map(|p| p.to_string()).collect();
    assert_eq!(errors.len(), 6, "{text:#?}");
    let expect = [
        (dir.clone(), "has 3 parts"),
        (dir.join("build-arch"), "missing"),
        (dir.join("initramfs"), "missing"),
        (
            dir.clone(),
            "neither toybox-mini.config nor busybox-mini.config",
        ),
        (dir.join("worlds/base"), "line holds 2 words"),
        (dir.join("worlds/tree/gui"), "builds on `nowhere`"),
    ];
    for (path, needle) in expect {
        assert!(
            errors
                .iter()
                .any(|p| p.path == path && p.message.contains(needle)),
            "no problem at {} with {needle:?} in {text:#?}",
            path.display()
        );
    }
}

#[test]
fn problem_display_has_path_line_and_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    write(
        &dir.join("worlds/base"),
        "# comment\n@system\ndev-libs/a dev-libs/b\n",
    );
    let errors = errors(&dir);
    assert_eq!(
        errors[0].to_string(),
        format!(
            "{}:3: line holds 2 words (`dev-libs/a dev-libs/b`); write one atom or set per line",
            dir.join("worlds/base").display()
        )
    );
}

#[test]
fn bad_directory_names_are_rejected_with_the_value() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), "x86_64-linux-musl.demo");
    let message = only_error(&dir, &dir);
    assert!(
        message.contains("target tuple `x86_64-linux-musl` has 3 parts"),
        "{message}"
    );
    let dir = target_dir(tmp.path(), "x86_64-unknown-linux-musl.a b");
    let message = only_error(&dir, &dir);
    assert!(
        message.contains("build name `a b` contains ' '"),
        "{message}"
    );
}

#[test]
fn build_arch_must_be_one_word() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    write(&dir.join("build-arch"), "  \n");
    assert!(only_error(&dir, &dir.join("build-arch")).starts_with("is empty"));
    write(&dir.join("build-arch"), "arm64 arm\n");
    assert!(only_error(&dir, &dir.join("build-arch")).starts_with("holds 2 words"));
}

#[test]
fn exactly_one_mini_box_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    write(&dir.join("busybox-mini.config"), "");
    assert!(only_error(&dir, &dir).contains("both"));
    fs::remove_file(dir.join("toybox-mini.config")).unwrap();
    write(&dir.join("busybox.config"), "");
    let config = load_target(&dir).unwrap();
    assert_eq!(config.box_kind, BoxKind::Busybox);
    assert!(config.full_box_config);
}

#[test]
fn linux_config_is_optional_only_for_binary_kernels() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    fs::remove_file(dir.join("linux.config")).unwrap();
    write(&dir.join("worlds/kernel"), "sys-kernel/gentoo-kernel:6.6\n");
    assert!(only_error(&dir, &dir.join("linux.config")).contains("config fragment"));
    write(&dir.join("worlds/kernel"), "sys-kernel/gentoo-kernel-bin\n");
    assert!(!load_target(&dir).unwrap().has_linux_config);
    fs::remove_file(dir.join("worlds/kernel")).unwrap();
    let config = load_target(&dir).unwrap();
    assert_eq!((config.kernel_package, config.kernel_atoms), (None, vec![]));
}

#[test]
fn two_kernel_packages_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    write(
        &dir.join("worlds/kernel"),
        "gentoo-sources\nsys-kernel/git-sources\n",
    );
    assert!(only_error(&dir, &dir.join("worlds/kernel")).contains("2 kernel packages"));
}

#[test]
fn missing_world_tree_is_an_empty_tree_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    write(&dir.join("worlds/gui"), "x11-base/xorg-server\n");
    fs::remove_dir_all(dir.join("worlds/tree")).unwrap();
    let config = load_target(&dir).unwrap();
    assert!(config.worlds.is_empty());
    assert_eq!(config.warnings.len(), 1, "{:#?}", config.warnings);
    assert_eq!(config.warnings[0].path, dir.join("worlds/tree"));
    assert!(config.warnings[0]
        .message
        .contains("no stacked world image is built"));
    write(&dir.join("worlds/tree"), "base\n");
    assert!(only_error(&dir, &dir.join("worlds/tree")).contains("not a directory"));
}

/// Mirrors the original's `configs/x86_64-unknown-linux-musl.zen2-tb-stack/`:
/// `repos/portage-musl-zen2-tb-stack/profiles/repo_name` holds `musl-local-zen2-tb-stack`,
/// declared in `target-portage/repos.conf/musl-local-zen2-tb-stack` (a file without `.conf`)
/// beside `gentoo.conf`.
#[test]
fn local_repo_is_declared_by_its_location_and_named_by_its_repo_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    write(
        &dir.join("repos/portage-musl-zen2-tb-stack/profiles/repo_name"),
        "musl-local-zen2-tb-stack\n",
    );
    write(
        &dir.join("repos/portage-musl-zen2-tb-stack/metadata/layout.conf"),
        "masters = gentoo\n",
    );
    write(
        &dir.join("target-portage/repos.conf/gentoo.conf"),
        "[gentoo]\nlocation = /var/db/repos/gentoo\nsync-type = git\nauto-sync = no\n",
    );
    let conf = dir.join("target-portage/repos.conf/musl-local-zen2-tb-stack");
    write(
        &conf,
        "[musl-local-zen2-tb-stack]\nlocation = /var/db/repos/portage-musl-zen2-tb-stack\n\
         priority = 10\nmasters = gentoo\nauto-sync = no\n",
    );
    let config = load_target(&dir).unwrap();
    assert_eq!(config.repos, ["portage-musl-zen2-tb-stack"]);
    assert!(config.warnings.is_empty(), "{:#?}", config.warnings);
    // A trailing slash on the location is the same place.
    write(
        &conf,
        "[musl-local-zen2-tb-stack]\nlocation = /var/db/repos/portage-musl-zen2-tb-stack/\n",
    );
    assert!(load_target(&dir).is_ok());
}

#[test]
fn repo_name_disagreeing_with_its_section_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    let name_file = dir.join("repos/portage-local/profiles/repo_name");
    write(&name_file, "other-name\n");
    write(
        &dir.join("target-portage/repos.conf/local.conf"),
        "[local]\nlocation = /var/db/repos/portage-local\n",
    );
    let message = only_error(&dir, &name_file);
    assert!(
        message.contains("`other-name`") && message.contains("`[local]`"),
        "{message}"
    );
}

#[test]
fn local_repos_must_be_declared_at_their_mount_location() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    write(&dir.join("repos/local/profiles/repo_name"), "local\n");
    fs::create_dir_all(dir.join("repos/extra")).unwrap();
    write(
        &dir.join("target-portage/repos.conf/local.conf"),
        "[local]\nlocation = /x\n",
    );
    let errors = errors(&dir);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].path, dir.join("repos/extra"));
    assert!(errors[0]
        .message
        .contains("`location = /var/db/repos/extra`"));
    assert!(errors[0].message.contains("add a `[extra]` section"));
    assert_eq!(errors[1].path, dir.join("repos/local"));
    assert!(errors[1].message.contains("has location /x"), "{errors:#?}");
    fs::remove_dir_all(dir.join("target-portage/repos.conf")).unwrap();
    write(
        &dir.join("target-portage/repos.conf"),
        "[DEFAULT]\nmain-repo = gentoo\n[ local ]\nlocation=/var/db/repos/local\n\
         [extra]\nlocation = /var/db/repos/extra\n",
    );
    let config = load_target(&dir).unwrap();
    assert_eq!(config.repos, ["extra", "local"]);
    assert_eq!(config.warnings.len(), 1, "{:#?}", config.warnings);
    assert_eq!(
        config.warnings[0].path,
        dir.join("repos/extra/profiles/repo_name")
    );
}

#[test]
fn make_profile_must_be_a_link_naming_a_profile_and_is_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    let link = dir.join("target-portage/make.profile");
    assert!(!Path::new(PROFILE).exists() || load_target(&dir).is_ok());
    fs::remove_file(&link).unwrap();
    symlink("/somewhere/else", &link).unwrap();
    assert!(only_error(&dir, &link).contains("`/somewhere/else`"));
    fs::remove_file(&link).unwrap();
    fs::create_dir(&link).unwrap();
    assert!(only_error(&dir, &link).starts_with("is not a symbolic link"));
}

#[test]
fn libc_comes_from_make_defaults_else_the_tuple() {
    let tmp = tempfile::tempdir().unwrap();
    let gnu = target_dir(tmp.path(), "x86_64-pc-linux-gnu.demo");
    assert_eq!(load_target(&gnu).unwrap().libc, Libc::Glibc);
    let defaults = gnu.join("target-portage/profile/make.defaults");
    write(&defaults, "ARCH=amd64\nELIBC=musl\n");
    let config = load_target(&gnu).unwrap();
    assert_eq!(config.libc, Libc::Musl);
    assert_eq!(config.warnings.len(), 1, "tuple and ELIBC disagree");
    write(&defaults, "ELIBC=\"glibc\"\n");
    assert_eq!(load_target(&gnu).unwrap().libc, Libc::Glibc);
    write(&defaults, "# libc\nELIBC=\"uclibc\"\n");
    assert_eq!(errors(&gnu)[0].line, Some(2));
    let odd = target_dir(tmp.path(), "m68k-unknown-linux-uclibc.demo");
    let message = only_error(&odd, &odd.join("target-portage/profile/make.defaults"));
    assert!(message.contains("cannot tell the C library"), "{message}");
}

#[test]
fn worlds_are_ordered_parents_first_siblings_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    add_world(&dir, "zz-tools", "base", "dev-util/strace\n");
    add_world(&dir, "desktop", "gui", "kde-plasma/plasma-meta\n");
    add_world(&dir, "gui", "base", "# X\nx11-base/xorg-server\n");
    add_world(&dir, "audio", "base", "media-sound/alsa-utils\n");
    let config = load_target(&dir).unwrap();
    assert_eq!(
        world_names(&config),
        [
            ("audio", "base"),
            ("gui", "base"),
            ("desktop", "gui"),
            ("zz-tools", "base")
        ]
    );
    assert_eq!(config.worlds[1].atoms, ["x11-base/xorg-server"]);
}

#[test]
fn world_cycle_is_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    add_world(&dir, "b", "a", "dev-libs/b\n");
    add_world(&dir, "a", "b", "dev-libs/a\n");
    let message = only_error(&dir, &dir.join("worlds/tree/a"));
    assert!(message.starts_with("cycle a -> b -> a;"), "{message}");
}

#[test]
fn tree_entry_without_world_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    write(&dir.join("worlds/tree/ghost"), "base\n");
    let message = only_error(&dir, &dir.join("worlds/tree/ghost"));
    assert!(message.contains("worlds/ghost does not exist"), "{message}");
}

#[test]
fn tree_entry_with_unknown_parent_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    add_world(&dir, "gui", "graphics", "x11-base/xorg-server\n");
    add_world(&dir, "desktop", "gui", "kde-plasma/plasma-meta\n");
    let message = only_error(&dir, &dir.join("worlds/tree/gui"));
    assert!(message.contains("builds on `graphics`"), "{message}");
}

#[test]
fn empty_or_multi_word_tree_entries_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    add_world(&dir, "gui", "base other", "x11-base/xorg-server\n");
    assert!(only_error(&dir, &dir.join("worlds/tree/gui")).starts_with("holds 2 words"));
    write(&dir.join("worlds/tree/gui"), "\n");
    assert!(only_error(&dir, &dir.join("worlds/tree/gui")).starts_with("is empty"));
    write(&dir.join("worlds/tree/gui"), "base\n");
    write(&dir.join("worlds/tree/kernel"), "base\n");
    assert!(only_error(&dir, &dir.join("worlds/tree/kernel")).contains("not a stacked world"));
}

#[test]
fn world_named_like_another_artifact_is_an_error() {
    for name in ["config", "initramfs", "EFI", "boot"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = target_dir(tmp.path(), DEMO);
        add_world(&dir, name, "base", "dev-libs/x\n");
        let message = only_error(&dir, &dir.join("worlds/tree").join(name));
        assert!(message.contains("collide"), "{name}: {message}");
    }
}

#[test]
fn world_without_tree_entry_is_a_warning_and_not_built() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    write(&dir.join("worlds/orphan"), "dev-libs/x\n");
    write(&dir.join("worlds/rust.clean"), "dev-lang/rust\n");
    let config = load_target(&dir).unwrap();
    assert!(config.worlds.is_empty());
    assert_eq!(config.rust_clean_atoms, ["dev-lang/rust"]);
    assert_eq!(config.warnings.len(), 1, "{:#?}", config.warnings);
    assert_eq!(config.warnings[0].path, dir.join("worlds/orphan"));
    assert!(config.warnings[0].message.contains("not built"));
}

#[test]
fn base_without_system_is_a_stage0() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    write(
        &dir.join("worlds/base"),
        "# embedded\nsys-apps/toybox\n\ndev-libs/openssl # tls\n",
    );
    let config = load_target(&dir).unwrap();
    assert!(config.stage0);
    assert_eq!(config.base_atoms, ["sys-apps/toybox", "dev-libs/openssl"]);
}

#[test]
fn bad_atom_character_names_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    write(&dir.join("worlds/base"), "@system\n\"dev-libs/x\"\n");
    let errors = errors(&dir);
    assert_eq!((errors[0].line, errors.len()), (Some(2), 1));
}

#[test]
fn unreadable_file_reports_the_io_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = target_dir(tmp.path(), DEMO);
    fs::write(dir.join("worlds/base"), [0xff, 0xfe, b'\n']).unwrap();
    let message = only_error(&dir, &dir.join("worlds/base"));
    assert!(
        message.starts_with("cannot read: ") && message.contains("UTF-8"),
        "{message}"
    );
}

#[test]
fn host_config_loads_through_its_link() {
    let tmp = tempfile::tempdir().unwrap();
    let real = host_dir(tmp.path(), "host-amd64");
    write(&real.join("cpuflags"), "");
    symlink("host-amd64", tmp.path().join("host")).unwrap();
    let host = load_host(&tmp.path().join("host")).unwrap();
    assert_eq!(host.world_atoms, ["sys-devel/crossdev", "dev-lang/rust"]);
    assert!(host.cpuflags && host.repos.is_empty());
    fs::create_dir_all(real.join("repos/crossdev")).unwrap();
    let errors = load_host(&real).unwrap_err();
    assert_eq!(errors[0].path, real.join("repos/crossdev"));
}

#[test]
fn host_config_needs_portage_and_base_world() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("host-arm64");
    fs::create_dir_all(&dir).unwrap();
    let paths: Vec<PathBuf> = load_host(&dir)
        .unwrap_err()
        .into_iter()
        .map(|p| p.path)
        .collect();
    assert_eq!(paths, [dir.join("target-portage"), dir.join("worlds/base")]);
}

#[test]
fn check_dispatches_host_and_target_dirs_and_keeps_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host");
    fs::create_dir_all(&host).unwrap();
    let target = target_dir(tmp.path(), DEMO);
    write(&target.join("worlds/orphan"), "dev-libs/x\n");
    let bad = target_dir(tmp.path(), "x86_64-unknown-linux-musl.broken");
    fs::remove_file(bad.join("build-arch")).unwrap();
    let report = check(&[host.clone(), target.clone(), bad.clone()]);
    let paths: Vec<&Path> = report.errors.iter().map(|p| p.path.as_path()).collect();
    assert_eq!(
        paths,
        [
            host.join("target-portage"),
            host.join("worlds/base"),
            bad.join("build-arch")
        ]
    );
    assert_eq!(report.warnings.len(), 1);
    assert!(!report.is_ok());
}

#[test]
fn missing_directory_is_one_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(DEMO);
    assert!(only_error(&dir, &dir).starts_with("missing"));
}
