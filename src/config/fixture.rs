//! Test fixtures: minimal valid configuration directories in temporary trees.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// Where the fixture's make.profile points (inside the build environment, not on the host).
pub(crate) const PROFILE: &str = "/var/db/repos/gentoo/profiles/default/linux/amd64/23.0/musl";

/// Writes `text` to `path`, creating parent directories.
pub(crate) fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, text).unwrap();
}

/// Creates a minimal valid target configuration `<root>/<dir_name>/`: build-arch,
/// initramfs/, repos/, target-portage/{make.profile -> PROFILE, repos.conf/},
/// toybox-mini.config, worlds/{base (with @system), kernel (gentoo-sources), tree/},
/// linux.config. Returns its path.
pub(crate) fn target_dir(root: &Path, dir_name: &str) -> PathBuf {
    let dir = root.join(dir_name);
    write(&dir.join("build-arch"), "x86_64\n");
    write(&dir.join("initramfs/init"), "#!/bin/sh\n");
    fs::create_dir_all(dir.join("repos")).unwrap();
    fs::create_dir_all(dir.join("target-portage/repos.conf")).unwrap();
    symlink(PROFILE, dir.join("target-portage/make.profile")).unwrap();
    write(&dir.join("toybox-mini.config"), "CONFIG_SH=y\n");
    write(&dir.join("worlds/base"), "# the base\n\n@system\n");
    write(&dir.join("worlds/kernel"), "sys-kernel/gentoo-sources\n");
    fs::create_dir_all(dir.join("worlds/tree")).unwrap();
    write(
        &dir.join("linux.config"),
        "CONFIG_64BIT=y\nCONFIG_SQUASHFS=y\nCONFIG_SQUASHFS_XZ=y\n",
    );
    dir
}

/// Creates a minimal valid host configuration `<root>/<dir_name>/`.
pub(crate) fn host_dir(root: &Path, dir_name: &str) -> PathBuf {
    let dir = root.join(dir_name);
    fs::create_dir_all(dir.join("target-portage")).unwrap();
    write(
        &dir.join("worlds/base"),
        "sys-devel/crossdev\ndev-lang/rust\n",
    );
    dir
}

/// Adds stacked world `name` building on `parent` with the given world file text.
pub(crate) fn add_world(dir: &Path, name: &str, parent: &str, atoms: &str) {
    write(&dir.join("worlds").join(name), atoms);
    write(&dir.join("worlds/tree").join(name), &format!("{parent}\n"));
}
