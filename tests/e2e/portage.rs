//! The real-Portage end-to-end test: the plan's `target-env`, `target-world`, `final-root` and
//! `world-images` steps of a stage0 target run with REAL emerge (Portage from PyPI) in the
//! Debian stand-in stage3 of scripts/portage-stage3.sh, with the test ebuild repository of
//! tests/e2e/portage-tree. It checks that binary packages are really built into the target's
//! package directory, that the final root is installed from them (`-K`, INSTALL_MASK on), and
//! that each stacked world image, packed with gensquashfs and listed with `unsquashfs -l`,
//! holds its own packages and none of its parent chain's.
//!
//! The stage3 takes about three minutes to build (debootstrap); it is kept in
//! `$BH_PORTAGE_STAGE3`, else `target/bh-portage-stage3`, and reused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const TARGET: &str = "x86_64-unknown-linux-musl.portage";

/// Mounts the stage3 under an overlay (upper dir kept between steps), /proc, /dev, the tree and
/// the target's repository (as the product's mount layout does), then runs `env -i ARGS...`
/// chrooted. Runs inside `unshare --mount`: every mount disappears with it.
const RUNNER: &str = r#"set -eu
st=$1 up=$2 m=$3 tree=$4 repo=$5
shift 5
mkdir -p "$up/u" "$up/w" "$m"
mount -t overlay overlay -o "lowerdir=$st,upperdir=$up/u,workdir=$up/w" "$m"
mount -t proc proc "$m/proc"
mount --rbind /dev "$m/dev"
mkdir -p "$m$tree" "$m/var/db/repos/bhtest"
mount --bind "$tree" "$m$tree"
mount --bind "$repo" "$m/var/db/repos/bhtest"
exec chroot "$m" /usr/bin/env -i "$@"
"#;

fn portage_stage3() -> PathBuf {
    let dir = std::env::var_os("BH_PORTAGE_STAGE3")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let bin = Path::new(BIN);
            bin.ancestors().nth(2).unwrap().join("bh-portage-stage3")
        });
    let status = Command::new(format!("{SRC}/scripts/portage-stage3.sh"))
        .arg(&dir)
        .status()
        .expect("run portage-stage3.sh");
    assert!(status.success(), "scripts/portage-stage3.sh failed");
    dir
}

/// Every file below `dir`, relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// `unsquashfs -l` of `dir` packed with gensquashfs: the paths, without `squashfs-root/`.
fn squashfs_listing(dir: &Path, out: &Path) -> Vec<String> {
    let st = Command::new("gensquashfs")
        .args(["-f", "-q", "-D"])
        .arg(dir)
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success(), "gensquashfs {}", dir.display());
    let list = Command::new("unsquashfs")
        .arg("-l")
        .arg(out)
        .output()
        .unwrap();
    assert!(list.status.success());
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("squashfs-root/").map(str::to_string))
        .collect()
}

fn has(list: &[String], pkg: &str) -> bool {
    list.iter()
        .any(|p| p == &format!("usr/share/{pkg}/{pkg}.txt"))
}

#[test]
fn real_portage_builds_binpkgs_final_root_and_stacked_world_images() {
    require_root();
    let stage3 = portage_stage3();
    let work = tempfile::Builder::new()
        .prefix("bh-e2e-portage-")
        .tempdir()
        .unwrap();
    let tree = work.path().join("tree");
    std::fs::create_dir_all(tree.join("configs")).unwrap();
    let cp = |from: &str, to: &Path| {
        let st = Command::new("cp")
            .args(["-a", from])
            .arg(to)
            .status()
            .unwrap();
        assert!(st.success(), "cp {from}");
    };
    cp(&format!("{SRC}/tests/e2e/portage-tree/starters"), &tree);
    cp(
        &format!("{SRC}/tests/e2e/portage-tree/configs/{TARGET}"),
        &tree.join("configs"),
    );
    cp(&format!("{SRC}/configs/host-amd64"), &tree.join("configs"));
    std::os::unix::fs::symlink("host-amd64", tree.join("configs/host")).unwrap();
    for sub in ["binpkgs", "builds", "history", "work", "distfiles"] {
        std::fs::create_dir_all(tree.join(sub)).unwrap();
    }
    std::fs::create_dir_all(tree.join("binpkgs").join(TARGET)).unwrap();

    let out = Command::new(BIN)
        .args(["plan", "--json"])
        .arg(tree.join("starters/portage.toml"))
        .env("BUILD_HELPER_TREE", &tree)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let target = &plan["targets"][0];
    let env: BTreeMap<String, String> = serde_json::from_value(target["env"].clone()).unwrap();

    let repo = tree.join(format!("configs/{TARGET}/repos/bhtest"));
    let (up, mnt) = (work.path().join("up"), work.path().join("m"));
    let mut outputs = BTreeMap::new();
    for name in ["target-env", "target-world", "final-root", "world-images"] {
        let step = target["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no step {name}"));
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            RUNNER,
            "sh",
        ])
        .arg(&stage3)
        .arg(&up)
        .arg(&mnt)
        .arg(&tree)
        .arg(&repo);
        for (k, v) in &env {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.arg(format!("BUILD_HELPER_STEP={name}"));
        cmd.args(["/bin/sh", "-c", step["script"].as_str().unwrap()]);
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("=== step {name}\n{}", tail(&text, 80));
        assert!(out.status.success(), "step {name} failed");
        outputs.insert(name, text);
    }
    // Built from source in target-world; only binary packages afterwards (`-K`).
    assert!(outputs["target-world"].contains(">>> Emerging (1 of"));
    for name in ["final-root", "world-images"] {
        assert!(
            outputs[name].contains(">>> Emerging binary (1 of"),
            "{name}"
        );
        assert!(
            !outputs[name].contains(">>> Emerging ("),
            "{name} built from source"
        );
    }

    // Binary packages really built by emerge into the target's package directory.
    let pkgs = files(&tree.join("binpkgs").join(TARGET));
    for p in [
        "sys-apps/baselayout",
        "test-base/libbase",
        "test-base/tool",
        "test-net/libnet",
        "test-net/netd",
        "test-gui/libgui",
        "test-gui/desktop",
    ] {
        assert!(
            pkgs.iter()
                .any(|f| f.starts_with(p) && f.ends_with(".gpkg.tar")),
            "no binary package of {p} in {pkgs:?}"
        );
    }

    // The final root: installed from those packages, INSTALL_MASK on, database moved out.
    let r = up.join("u/usr").join(TARGET).join("usr/src");
    let base = files(&r.join("squashfs"));
    for p in ["baselayout", "libbase", "tool"] {
        assert!(has(&base, p), "{p} missing from the final root: {base:?}");
    }
    assert!(
        !base.iter().any(|f| f.starts_with("usr/share/doc")),
        "{base:?}"
    );
    assert!(
        !base.iter().any(|f| f.starts_with("var/db/pkg")),
        "{base:?}"
    );
    let db = files(&r.join("squashfs.exclude/pkg.base"));
    assert!(
        db.iter().any(|f| f.starts_with("test-base/tool-1.0/")),
        "{db:?}"
    );

    // Stacked images: each holds its own packages and none of its parent chain's.
    let net = squashfs_listing(&r.join("squashfs.net"), &work.path().join("net.sqfs"));
    let gui = squashfs_listing(&r.join("squashfs.gui"), &work.path().join("gui.sqfs"));
    assert!(has(&net, "netd") && has(&net, "libnet"), "{net:?}");
    for p in ["libbase", "tool", "baselayout", "desktop"] {
        assert!(!has(&net, p), "net image holds {p}: {net:?}");
    }
    assert!(has(&gui, "desktop") && has(&gui, "libgui"), "{gui:?}");
    for p in ["libbase", "tool", "baselayout", "libnet", "netd"] {
        assert!(!has(&gui, p), "gui image holds {p}: {gui:?}");
    }
    let gui_db = files(&r.join("squashfs.exclude/pkg.gui"));
    for p in [
        "test-base/libbase-1.0/",
        "test-net/netd-1.0/",
        "test-gui/desktop-1.0/",
    ] {
        assert!(
            gui_db.iter().any(|f| f.starts_with(p)),
            "{p} not in {gui_db:?}"
        );
    }
}
