//! The real-Portage end-to-end tests: the plan's `target-env`, `kernel-sources`,
//! `target-world`, `target-maintenance`, `final-root` and `world-images` steps of a stage0 and
//! of a full-stage target run with REAL emerge (Portage from PyPI) in the
//! Debian stand-in stage3 of scripts/portage-stage3.sh, with the test ebuild repository of
//! tests/e2e/portage-tree. It checks that binary packages are really built into the target's
//! package directory, that the final root is installed from them (`-K`, INSTALL_MASK on), and
//! that each stacked world image, packed with gensquashfs and listed with `unsquashfs -l`,
//! holds its own packages and none of its parent chain's. The worker's progress tracker,
//! fed each step's real output as a pipe delivers it, must report every emerge with its
//! real total, counted up to it.
//!
//! The configurations have the shape of the original's (armtux/build-helper `configs/`): the
//! repository `repos/portage-musl-portage` is named `bhtest` and declared by its location,
//! make.conf sets `PORTAGE_TMPDIR=/var/tmp/portage/<name>` (which the steps must create: emerge
//! refuses to run without it), and `env/sys-devel/gcc` carries a second commented INSTALL_MASK.
//!
//! The last steps pack the base and world images with the stage3's own gensquashfs and collect
//! the artifacts into `builds/<target>.<date>/`: their names (`base`, `<W>`, `initramfs`) and
//! compressor (xz: the test kernel's configuration is unknown) are checked on the real files.
//!
//! The stage3 takes about three minutes to build (debootstrap); it is kept in
//! `$BH_PORTAGE_STAGE3`, else `target/bh-portage-stage3`, and reused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use build_helper::progress::{Phase, Tracker};

use crate::common::*;

/// The stage0 target, whose configuration also holds the test ebuild repository.
const TARGET: &str = "x86_64-unknown-linux-musl.portage";
/// The planned steps run with real emerge, in plan order (target-sync needs a synced tree,
/// target-libc a libc and pam-bootstrap pam: the test repository has none of them). The
/// last four pack the images with the stage3's gensquashfs and collect the artifacts.
const STEPS: [&str; 10] = [
    "target-env",
    "kernel-sources",
    "target-world",
    "target-maintenance",
    "final-root",
    "world-images",
    "initramfs",
    "kernel",
    "images",
    "collect",
];
/// The full-stage (`@system`) target.
const FULL_TARGET: &str = "x86_64-unknown-linux-musl.portagefull";

/// Mounts the stage3 under an overlay (upper dir kept between steps), /proc, /dev, the tree and
/// the target's repository at `/var/db/repos/<its directory>` (as the product's mount layout
/// does), and the same repository as the stage3 host configuration's own `bhtest` (emerge
/// also loads the build machine's configuration, for build dependencies), then runs
/// `env -i ARGS...` chrooted. Runs inside `unshare --mount`: every mount disappears with it.
const RUNNER: &str = r#"set -eu
st=$1 up=$2 m=$3 tree=$4 repo=$5
shift 5
mkdir -p "$up/u" "$up/w" "$m"
mount -t overlay overlay -o "lowerdir=$st,upperdir=$up/u,workdir=$up/w" "$m"
mount -t proc proc "$m/proc"
mount --rbind /dev "$m/dev"
mkdir -p "$m$tree" "$m/var/db/repos/$(basename "$repo")" "$m/var/db/repos/bhtest"
mount --bind "$tree" "$m$tree"
mount --bind "$repo" "$m/var/db/repos/$(basename "$repo")"
mount --bind "$repo" "$m/var/db/repos/bhtest"
exec chroot "$m" /usr/bin/env -i "$@"
"#;

/// The stage3 directory, built (or checked) once per test process: the tests run in
/// parallel and must not build it twice at once.
pub(crate) fn portage_stage3() -> PathBuf {
    static STAGE3: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    STAGE3.get_or_init(build_stage3).clone()
}

fn build_stage3() -> PathBuf {
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

/// Feeds `output` to the worker's progress tracker line by line and returns, per emerge, its
/// total and the highest `done` reported, and every phase seen. Fed in chunks cut anywhere
/// (as a pipe may deliver it), the tracker must end in the same state.
fn progress_runs(output: &str) -> (Vec<(u32, u32)>, Vec<Phase>) {
    let mut chunked = Tracker::new();
    for chunk in output.as_bytes().chunks(37) {
        chunked.feed(chunk);
    }
    let mut t = Tracker::new();
    let mut runs: Vec<(u32, u32)> = Vec::new();
    let mut phases = Vec::new();
    let mut last_done = 0;
    for line in output.split_inclusive('\n') {
        let Some(p) = t.feed(line.as_bytes()) else {
            continue;
        };
        if !phases.contains(&p.phase) {
            phases.push(p.phase);
        }
        let new_run = match runs.last() {
            None => true,
            Some(&(total, _)) => total != p.total || p.done < last_done,
        };
        if new_run {
            runs.push((p.total, p.done));
        } else if let Some(r) = runs.last_mut() {
            r.1 = r.1.max(p.done);
        }
        last_done = p.done;
    }
    assert_eq!(chunked.progress(), t.progress());
    (runs, phases)
}

/// The compressor of squashfs image `image`, from `unsquashfs -s`.
fn compressor_of(image: &Path) -> String {
    let out = Command::new("unsquashfs")
        .arg("-s")
        .arg(image)
        .output()
        .unwrap();
    assert!(out.status.success(), "unsquashfs -s {}", image.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Compression ").map(str::to_string))
        .unwrap_or_default()
}

fn has(list: &[String], pkg: &str) -> bool {
    list.iter()
        .any(|p| p == &format!("usr/share/{pkg}/{pkg}.txt"))
}

/// What the four steps left behind for one target.
struct Built {
    /// Holds the tree, the overlay's upper dir and the packed images.
    work: tempfile::TempDir,
    /// `<upper>/usr/<target>/usr/src`: the base image directory and its siblings.
    src: PathBuf,
    /// The target's binary packages, relative to its package directory.
    pkgs: Vec<String>,
    /// Each step's output.
    outputs: BTreeMap<&'static str, String>,
    /// `builds/<target>.<date>/`: the collected artifacts.
    dest: PathBuf,
}

/// Plans `starters/<starter>` of tests/e2e/portage-tree and runs the target's [`STEPS`]
/// with real emerge; `repo_of` names the
/// configuration holding the test ebuild repository.
fn build(stage3: &Path, starter: &str, target: &str, repo_of: &str) -> Built {
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
    for t in [target, repo_of] {
        if !tree.join("configs").join(t).exists() {
            cp(
                &format!("{SRC}/tests/e2e/portage-tree/configs/{t}"),
                &tree.join("configs"),
            );
        }
    }
    cp(&format!("{SRC}/configs/host-amd64"), &tree.join("configs"));
    std::os::unix::fs::symlink("host-amd64", tree.join("configs/host")).unwrap();
    for sub in ["binpkgs", "builds", "history", "work", "distfiles"] {
        std::fs::create_dir_all(tree.join(sub)).unwrap();
    }
    std::fs::create_dir_all(tree.join("binpkgs").join(target)).unwrap();

    let out = Command::new(BIN)
        .args(["plan", "--json"])
        .arg(tree.join("starters").join(starter))
        .env("BUILD_HELPER_TREE", &tree)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let planned = &plan["targets"][0];
    let env: BTreeMap<String, String> = serde_json::from_value(planned["env"].clone()).unwrap();

    // Named `bhtest` (profiles/repo_name) in a directory of another name, declared by its
    // location, as the original's `repos/portage-musl-<name>` are.
    let repo = tree.join(format!("configs/{repo_of}/repos/portage-musl-portage"));
    let (up, mnt) = (work.path().join("up"), work.path().join("m"));
    let mut outputs = BTreeMap::new();
    for name in STEPS {
        let step = planned["steps"]
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
        .arg(stage3)
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
        eprintln!("=== {target} step {name}\n{}", tail(&text, 80));
        assert!(out.status.success(), "{target}: step {name} failed");
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
    // The progress a worker reports from the real output: one run per emerge, with Portage's
    // own totals (the test repository's worlds: base 3 packages, net 2, gui 2).
    for (name, want, phase) in [
        ("target-world", vec![(3, 3), (2, 2), (2, 2)], Phase::Build),
        ("final-root", vec![(1, 1), (2, 2)], Phase::Binary),
        ("world-images", vec![(2, 2), (2, 2)], Phase::Binary),
    ] {
        let (runs, phases) = progress_runs(&outputs[name]);
        assert_eq!(runs, want, "{target} {name}: (total, done) per emerge");
        assert!(phases.contains(&phase), "{target} {name}: {phases:?}");
        assert!(
            phases.contains(&Phase::Install),
            "{target} {name}: {phases:?}"
        );
    }
    let pkgs = files(&tree.join("binpkgs").join(target));
    let src = up.join("u/usr").join(target).join("usr/src");
    let dest = PathBuf::from(&env["BUILD_DEST"]);
    Built {
        work,
        src,
        pkgs,
        outputs,
        dest,
    }
}

/// Asserts the binary packages and the stacked images `net` (on base) and `gui` (on net).
fn assert_packages_and_stacked_images(b: &Built) {
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
            b.pkgs
                .iter()
                .any(|f| f.starts_with(p) && f.ends_with(".gpkg.tar")),
            "no binary package of {p} in {:?}",
            b.pkgs
        );
    }
    let (r, w) = (&b.src, b.work.path());
    let net = squashfs_listing(&r.join("squashfs.net"), &w.join("net.sqfs"));
    let gui = squashfs_listing(&r.join("squashfs.gui"), &w.join("gui.sqfs"));
    assert!(has(&net, "netd") && has(&net, "libnet"), "{net:?}");
    for p in ["libbase", "tool", "baselayout", "desktop"] {
        assert!(!has(&net, p), "net image holds {p}: {net:?}");
    }
    assert!(has(&gui, "desktop") && has(&gui, "libgui"), "{gui:?}");
    for p in ["libbase", "tool", "baselayout", "libnet", "netd"] {
        assert!(!has(&gui, p), "gui image holds {p}: {gui:?}");
    }
    // The base image's /etc is bound over each world image's: configuration files of every
    // world land in the base image.
    let base = files(&r.join("squashfs"));
    for p in ["netd", "libnet", "desktop", "libgui"] {
        let conf = format!("etc/{p}.conf");
        assert!(
            base.contains(&conf),
            "{conf} not in the base image: {base:?}"
        );
        assert!(
            !net.contains(&conf) && !gui.contains(&conf),
            "{conf} in a world image"
        );
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

#[test]
fn real_portage_builds_a_stage0_with_install_mask_and_stacked_world_images() {
    require_root();
    let stage3 = portage_stage3();
    let _heavy = heavy_lock();
    let b = build(&stage3, "portage.toml", TARGET, TARGET);
    assert_packages_and_stacked_images(&b);
    // The final root: INSTALL_MASK on, package database moved out (stage0).
    let base = files(&b.src.join("squashfs"));
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
    let db = files(&b.src.join("squashfs.exclude/pkg.base"));
    assert!(
        db.iter().any(|f| f.starts_with("test-base/tool-1.0/")),
        "{db:?}"
    );
    assert!(b.outputs["final-root"].contains("install_mask_on"));
    // INSTALL_MASK was switched on in every file that carries it (env/sys-devel/gcc too) for
    // the final root, and off again by `images`.
    let conf = b
        .work
        .path()
        .join("tree/configs")
        .join(TARGET)
        .join("target-portage");
    let on = b.outputs["final-root"]
        .lines()
        .find(|l| l.starts_with("+ sed -i") && l.contains("^#\\(INSTALL_MASK="))
        .unwrap_or_default()
        .to_string();
    for f in ["make.conf", "env/sys-devel/gcc"] {
        assert!(on.contains(&format!("target-portage/{f}")), "{f}: {on}");
        let text = std::fs::read_to_string(conf.join(f)).unwrap();
        assert!(
            text.lines().any(|l| l.starts_with("#INSTALL_MASK=")),
            "{f}: {text}"
        );
    }
    // The PORTAGE_TMPDIR of the target's make.conf was created in the environment.
    assert!(b.work.path().join("up/u/var/tmp/portage/portage").is_dir());
    // Not split: the images are /base and /<W> inside the initramfs, packed with xz.
    let f = b.src.join("initramfs");
    for image in ["base", "net", "gui"] {
        assert_eq!(compressor_of(&f.join(image)), "xz", "{image}");
    }
    assert!(!f.join("base.sqfs").exists());
    assert!(files(&f).contains(&"bin/toybox".to_string()));
    let kernel = std::fs::read_to_string(b.dest.join("EFI/boot/bootx64.efi")).unwrap();
    assert!(kernel.contains("STAND-IN kernel image"), "{kernel}");
}

#[test]
fn real_portage_builds_a_full_stage_that_keeps_its_package_database() {
    require_root();
    let stage3 = portage_stage3();
    let _heavy = heavy_lock();
    let b = build(&stage3, "portagefull.toml", FULL_TARGET, TARGET);
    assert_packages_and_stacked_images(&b);
    let base = files(&b.src.join("squashfs"));
    for p in ["baselayout", "libbase", "tool"] {
        assert!(has(&base, p), "{p} missing from the final root: {base:?}");
    }
    // No INSTALL_MASK for a full stage, and its package database stays in the image.
    assert!(
        base.iter().any(|f| f.starts_with("usr/share/doc/tool-1.0")),
        "{base:?}"
    );
    assert!(
        base.iter()
            .any(|f| f.starts_with("var/db/pkg/test-base/tool-1.0/")),
        "{base:?}"
    );
    assert!(!b.src.join("squashfs.exclude/pkg.base").exists());
    // Each world image keeps its package database too, and a copy is saved.
    assert!(files(&b.src.join("squashfs.gui"))
        .iter()
        .any(|f| f.starts_with("var/db/pkg/test-gui/desktop-1.0/")));
    assert!(b.src.join("squashfs.exclude/pkg.gui").is_dir());
    assert!(b
        .work
        .path()
        .join("up/u/var/tmp/portage/portagefull")
        .is_dir());
    // split.base, split.extra and split.initramfs: the artifacts the configurations'
    // initramfs/init scripts mount, beside the kernel.
    let mut names: Vec<String> = std::fs::read_dir(&b.dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["EFI", "base", "gui", "initramfs", "net"]);
    for image in ["base", "net", "gui"] {
        assert_eq!(compressor_of(&b.dest.join(image)), "xz", "{image}");
    }
    let initramfs = std::fs::read(b.dest.join("initramfs")).unwrap();
    assert_eq!(initramfs.get(..2), Some(&[0x1f, 0x8b][..]), "not gzip");
    // The initramfs tree is owned by root.
    use std::os::unix::fs::MetadataExt;
    let toybox = std::fs::metadata(b.src.join("initramfs/bin/toybox")).unwrap();
    assert_eq!((toybox.uid(), toybox.gid()), (0, 0));
}
