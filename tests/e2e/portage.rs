//! The real-Portage end-to-end tests: `build-helper run --ui plain` of a stage0 and of a
//! full-stage target, with the real supervisor, workers, mounts and every planned step (the
//! primary phase included), on the Debian stand-in stage3 of scripts/portage-stage3.sh
//! with REAL emerge (Portage from PyPI), served as a signed release mirror. The test
//! ebuild repository (tests/e2e/portage-tree) is the build machine's main repository too
//! (configuration `host-portage`); what the primary phase and the libc steps emerge from it
//! for a toolchain (gcc, binutils, libc, perl, ...) are STAND-IN ebuilds, and the stage3's
//! eselect, perl-cleaner, emerge-webrsync and crossdev results are STAND-INs (no ::gentoo,
//! no toolchain to build here). It checks that binary packages are really built into the
//! target's package directory, that the final root is installed from them (`-K`,
//! INSTALL_MASK on), and that each stacked world image, packed with gensquashfs and listed
//! with `unsquashfs -l`, holds its own packages and none of its parent chain's. The worker's
//! progress tracker, fed each step's real output as a pipe delivers it, must report every
//! emerge with its real total, counted up to it.
//!
//! The configurations have the shape of the original's (armtux/build-helper `configs/`): the
//! repository `repos/portage-musl-portage` is named `bhtest` and declared by its location,
//! make.conf sets `PORTAGE_TMPDIR=/var/tmp/portage/<name>` (the stage0) or
//! `PORTAGE_TMPDIR="${ROOT}tmp/"` (the full stage, as the original's archived configurations;
//! Portage expands it per emerge), which the steps must create (emerge refuses to run without
//! it), and `env/sys-devel/gcc` carries a second commented INSTALL_MASK.
//!
//! Both kernel branches run through real Portage: the stage0 names a distribution kernel
//! (the gentoo-kernel STAND-IN: its image stays in /usr/src/linux-<version> under a cross
//! ROOT, as kernel-install.eclass's, and it merges the config.d fragments of the build
//! environment, as kernel-build.eclass's), the full stage a source kernel (the gentoo-sources
//! STAND-IN, configured and built by the recipe with its linux.config) with split.initramfs.
//!
//! The last steps pack the base and world images with the stage3's own gensquashfs and collect
//! the artifacts into `builds/<target>.<date>/`: their names (`base`, `<W>`, `initramfs`) and
//! compressor (xz: the test kernel's configuration is unknown) are checked on the real files.
//!
//! The stage3 takes about three minutes to build (debootstrap); it is kept in
//! `$BH_PORTAGE_STAGE3`, else `target/bh-portage-stage3`, and reused; its mirror
//! (`<stage3>.mirror`, about 50 s) is made once per test process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use build_helper::progress::{Phase, Tracker};

use crate::common::*;

/// The stage0 target, whose configuration also holds the test ebuild repository.
const TARGET: &str = "x86_64-unknown-linux-musl.portage";
/// The full-stage (`@system`) target.
const FULL_TARGET: &str = "x86_64-unknown-linux-musl.portagefull";
/// The test's build-machine configuration (configs/host links to it): make.profile and
/// repos.conf point at the test repository, so the primary phase emerges from it too.
const HOST: &str = "host-portage";

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

/// The stage3 served as a signed release mirror (scripts/demo-mirror.sh with STAGE3_ROOT),
/// made once per test process beside the stage3 directory (`<stage3>.mirror`, replaced each
/// time: the STAND-IN files may have changed): the run fetches, verifies and unpacks it like
/// a Gentoo stage3. Returns the mirror directory.
fn portage_mirror() -> PathBuf {
    static MIRROR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MIRROR
        .get_or_init(|| {
            let stage3 = portage_stage3();
            let mut dir = stage3.clone().into_os_string();
            dir.push(".mirror");
            let dir = PathBuf::from(dir);
            let _ = std::fs::remove_dir_all(&dir);
            let status = Command::new(format!("{SRC}/scripts/demo-mirror.sh"))
                .arg(&dir)
                .env("STAGE3_ROOT", &stage3)
                .env("XZ_LEVEL", "0")
                .status()
                .expect("run demo-mirror.sh");
            assert!(status.success(), "demo-mirror.sh STAGE3_ROOT=... failed");
            dir
        })
        .clone()
}

/// A throw-away tree whose mounts are released even when a test fails half-way.
struct TestTree(tempfile::TempDir);

impl Drop for TestTree {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .args(["umount", "--all", "--tree"])
            .arg(self.0.path())
            .output();
    }
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

/// Per emerge in `output`, the total Portage printed on its first `>>> Emerging [binary] (1
/// of N)` line, as `(N, N)`: what the tracker must report once the emerge ended. Read here
/// with plain string operations (colour escapes removed), independently of the tracker.
fn portage_totals(output: &str) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for line in output.lines() {
        let mut plain = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // CSI: ESC [ parameters, ended by a letter.
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                plain.push(c);
            }
        }
        for head in [">>> Emerging (1 of ", ">>> Emerging binary (1 of "] {
            if let Some(rest) = plain.find(head).map(|i| &plain[i + head.len()..]) {
                if let Some(n) = rest.split(')').next().and_then(|n| n.trim().parse().ok()) {
                    out.push((n, n));
                }
            }
        }
    }
    out
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

/// What the run left behind for one target.
struct Built {
    /// The tree (configs, work, builds, history), shared by the run's targets.
    tree: std::rc::Rc<TestTree>,
    /// The target environment's root (`work/<run>/root/m`), or for a secondary target the
    /// upper directory of its overlay.
    root: PathBuf,
    /// `<root>/usr/<target>/usr/src`: the base image directory and its siblings.
    src: PathBuf,
    /// Scratch space for packing images to list them.
    scratch: tempfile::TempDir,
    /// The target's binary packages, relative to its package directory.
    pkgs: Vec<String>,
    /// Each step's output, from the target's log.
    outputs: BTreeMap<String, String>,
    /// `builds/<target>.<date>/`: the collected artifacts.
    dest: PathBuf,
}

/// Runs `build-helper run starters/portage.toml --ui plain` of tests/e2e/portage-tree (the
/// stage0 [`TARGET`], primary, and the full stage [`FULL_TARGET`], in parallel) on the
/// Portage stage3 served by [`portage_mirror`]: the real supervisor, workers, mounts and
/// every planned step, with REAL emerge. Returns what each target left, in that order.
fn build() -> Vec<Built> {
    let starter = "portage.toml";
    let targets = [TARGET, FULL_TARGET];
    let mirror = portage_mirror();
    let dir = tempfile::Builder::new()
        .prefix("bh-e2e-portage-")
        .tempdir()
        .unwrap();
    let tree = std::rc::Rc::new(TestTree(dir));
    let t = tree.0.path();
    std::fs::create_dir_all(t.join("configs")).unwrap();
    let cp = |from: &str, to: &Path| {
        let st = Command::new("cp")
            .args(["-a", from])
            .arg(to)
            .status()
            .unwrap();
        assert!(st.success(), "cp {from}");
    };
    cp(&format!("{SRC}/tests/e2e/portage-tree/starters"), t);
    for c in [TARGET, FULL_TARGET, HOST] {
        cp(
            &format!("{SRC}/tests/e2e/portage-tree/configs/{c}"),
            &t.join("configs"),
        );
    }
    // The test repository is kept once, in the stage0's configuration; the full stage's
    // environment (an overlay of its own) mounts its own copy at the same place,
    // /var/db/repos/portage-musl-portage, where its and the build machine's repos.conf point.
    cp(
        &format!("{SRC}/tests/e2e/portage-tree/configs/{TARGET}/repos/portage-musl-portage"),
        &t.join("configs").join(FULL_TARGET).join("repos"),
    );
    std::os::unix::fs::symlink(HOST, t.join("configs/host")).unwrap();
    for sub in ["binpkgs", "builds", "history", "work", "distfiles"] {
        std::fs::create_dir_all(t.join(sub)).unwrap();
    }

    let out = Command::new(BIN)
        .args(["run"])
        .arg(t.join("starters").join(starter))
        .args(["--ui", "plain"])
        .env("BUILD_HELPER_TREE", t)
        .env("TARBALL_MIRROR", format!("file://{}", mirror.display()))
        .env("BH_OPENPGP_KEY", mirror.join("demo-release.asc"))
        .env_remove("TMUX")
        .output()
        .unwrap();
    let text = stdout_then_stderr(&out);
    eprintln!("=== build-helper run {starter}\n{}", tail(&text, 120));
    assert_eq!(
        out.status.code(),
        Some(0),
        "build-helper run {starter} failed"
    );
    assert!(mounts_anywhere(t).is_empty(), "{:?}", mounts_anywhere(t));

    let run = std::fs::read_dir(t.join("work"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("plan.json").exists())
        .expect("a run directory");
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("plan.json")).unwrap()).unwrap();
    let cp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("checkpoint.json")).unwrap()).unwrap();
    let mut built = Vec::new();
    for (i, target) in targets.into_iter().enumerate() {
        let planned: Vec<String> = plan["targets"][i]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect();
        // Every planned step ran, the primary phase included, and finished.
        let done = steps(&cp, target);
        assert_eq!(
            done.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
            planned
        );
        assert!(done.iter().all(|s| s.1 == "done"), "{done:?}");
        let first = if i == 0 { "host-sync" } else { "target-env" };
        assert_eq!(planned.first().map(String::as_str), Some(first));

        // The target's log, split at the worker's step banners.
        let log = std::fs::read_to_string(run.join("logs").join(format!("{target}.log"))).unwrap();
        let mut outputs: BTreeMap<String, String> = BTreeMap::new();
        let mut current = String::new();
        for line in log.lines() {
            let banner = line
                .strip_prefix("=== build-helper: step ")
                .and_then(|rest| rest.split_once(" started "));
            if let Some((name, _)) = banner {
                current = name.to_string();
                continue;
            }
            let o = outputs.entry(current.clone()).or_default();
            o.push_str(line);
            o.push('\n');
        }
        for name in &planned {
            assert!(outputs.contains_key(name), "no output of step {name}");
        }
        if i == 0 {
            // The primary phase ran real emerge against the test repository (its toolchain
            // packages are STAND-INs), and the stand-in eselect found the profiles they
            // installed.
            assert!(outputs["host-sync"].contains(">>> Emerging (1 of 1) dev-vcs/git-"));
            assert!(outputs["host-toolchain"].contains("sys-devel/gcc-13::bhtest"));
            assert!(outputs["host-toolchain"]
                .contains("STAND-IN eselect: gcc profile x86_64-pc-linux-gnu-13"));
            assert!(outputs["crossdev"]
                .contains("STAND-IN eselect: gcc profile x86_64-unknown-linux-musl-13"));
        }
        assert!(outputs["target-libc"].contains("sys-libs/musl-1.2.5::bhtest for /usr/"));
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
        // The progress a worker reports from the real output: one run per emerge, each with
        // the total Portage printed for it and counted up to it. (Which packages an emerge
        // merges depends on what earlier steps installed: target-libc already merged
        // baselayout, so the stage0's base world is 2 packages here, not 3.)
        for (name, phase) in [
            ("target-world", Phase::Build),
            ("final-root", Phase::Binary),
            ("world-images", Phase::Binary),
        ] {
            let (runs, phases) = progress_runs(&outputs[name]);
            let want = portage_totals(&outputs[name]);
            assert!(
                !want.is_empty(),
                "{target} {name}: no emerge printed a total"
            );
            assert_eq!(runs, want, "{target} {name}: (total, done) per emerge");
            assert!(phases.contains(&phase), "{target} {name}: {phases:?}");
            assert!(
                phases.contains(&Phase::Install),
                "{target} {name}: {phases:?}"
            );
        }
        let pkgs = files(&t.join("binpkgs").join(target));
        // The primary environment's root; a secondary target's changes stay in the upper
        // directory of its overlay (`<name>-<date>/u`).
        let root = if i == 0 {
            run.join("root/m")
        } else {
            let name = target.rsplit_once('.').unwrap().1;
            run.join(format!("root/{name}-{}/u", plan["date"].as_str().unwrap()))
        };
        let src = root.join("usr").join(target).join("usr/src");
        let env: BTreeMap<String, String> =
            serde_json::from_value(plan["targets"][i]["env"].clone()).unwrap();
        let dest = PathBuf::from(&env["BUILD_DEST"]);
        built.push(Built {
            tree: tree.clone(),
            root,
            src,
            scratch: tempfile::tempdir().unwrap(),
            pkgs,
            outputs,
            dest,
        });
    }
    built
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
    let (r, w) = (&b.src, b.scratch.path());
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

/// The stage0: INSTALL_MASK switched on for the final root, images inside the initramfs.
fn assert_stage0_with_install_mask_and_stacked_world_images(b: &Built) {
    assert_packages_and_stacked_images(b);
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
    // the final root, in the run's view of configs/: the user's files keep their commented
    // line.
    let conf = b
        .tree
        .0
        .path()
        .join("configs")
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
    assert!(b.root.join("var/tmp/portage/portage").is_dir());
    // Not split: the images are /base and /<W> inside the initramfs, packed with xz.
    let f = b.src.join("initramfs");
    for image in ["base", "net", "gui"] {
        assert_eq!(compressor_of(&f.join(image)), "xz", "{image}");
    }
    assert!(!f.join("base.sqfs").exists());
    assert!(files(&f).contains(&"bin/toybox".to_string()));
    assert_dist_kernel_from_usr_src_with_the_build_environment_fragment(b);
}

/// The stage0's distribution kernel (the gentoo-kernel STAND-IN, faithful to
/// kernel-install.eclass's ROOT rule): under the target's ROOT nothing lands in /boot, the
/// image stays in /usr/src/linux-<version>, and that is the kernel collected; it was built
/// with the configuration's fragment, read from the build environment's config.d
/// (kernel-build.eclass reads ${BROOT}/etc/kernel/config.d).
fn assert_dist_kernel_from_usr_src_with_the_build_environment_fragment(b: &Built) {
    let r = b.root.join("usr").join(TARGET);
    let image = r.join("usr/src/linux-6.6.0-gentoo-dist/arch/x86/boot/bzImage");
    assert!(image.is_file(), "{}", image.display());
    let boot = if r.join("boot").exists() {
        files(&r.join("boot"))
    } else {
        Vec::new()
    };
    assert!(
        !boot.iter().any(|f| f.starts_with("vmlinuz")),
        "a kernel in ROOT's /boot: {boot:?}"
    );
    let kernel = std::fs::read_to_string(b.dest.join("EFI/boot/bootx64.efi")).unwrap();
    assert!(
        kernel.contains("STAND-IN kernel image gentoo-kernel-6.6 6.6.0-gentoo-dist"),
        "{kernel}"
    );
    assert!(
        kernel.contains("/etc/kernel/config.d/build-helper.config\n")
            && kernel.contains("CONFIG_BUILD_HELPER_TEST_FRAGMENT=y"),
        "the fragment was not merged: {kernel}"
    );
    assert!(!r.join("etc/kernel/config.d/build-helper.config").exists());
    // Its modules are in the base image.
    assert!(b
        .src
        .join("squashfs/lib/modules/6.6.0-gentoo-dist/modules.order")
        .is_file());
}

/// The full stage: its package database kept, split artifacts collected.
fn assert_full_stage_that_keeps_its_package_database(b: &Built) {
    assert_packages_and_stacked_images(b);
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
    // PORTAGE_TMPDIR="${ROOT}tmp/": Portage used the ROOT of each emerge, and the world
    // images do not carry the directory made for them.
    assert!(b.root.join("usr").join(FULL_TARGET).join("tmp").is_dir());
    assert!(!b.root.join("var/tmp/portage/portagefull").exists());
    for w in ["net", "gui"] {
        let list = files(&b.src.join(format!("squashfs.{w}")));
        assert!(!list.iter().any(|f| f.starts_with("tmp/")), "{w}: {list:?}");
    }
    assert!(b.src.join("squashfs/tmp").is_dir());
    assert!(!b.src.join("squashfs/tmp/portage").exists());
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
    assert_source_kernel_built_with_linux_config_and_a_split_initramfs(b);
}

/// The full stage's source kernel (the gentoo-sources STAND-IN, built with the stage3's real
/// GNU make): configured with the configuration's linux.config, without an embedded
/// initramfs (split.initramfs), its modules in the base image and in the initramfs with
/// their depmod index.
fn assert_source_kernel_built_with_linux_config_and_a_split_initramfs(b: &Built) {
    let kernel = std::fs::read_to_string(b.dest.join("EFI/boot/bootx64.efi")).unwrap();
    assert!(
        kernel.starts_with("STAND-IN kernel image 6.6.0-gentoo\n"),
        "{kernel}"
    );
    assert!(
        kernel.contains("CONFIG_BUILD_HELPER_TEST_SOURCES=y"),
        "{kernel}"
    );
    assert!(!kernel.contains("CONFIG_INITRAMFS_SOURCE"), "{kernel}");
    assert!(b
        .src
        .join("squashfs/lib/modules/6.6.0-gentoo/modules.order")
        .is_file());
    assert!(b
        .src
        .join("initramfs/lib/modules/6.6.0-gentoo/modules.dep")
        .is_file());
    // make mrproper ran, and the configuration was kept.
    let k = b.src.join("linux");
    assert!(!k.join("arch/x86/boot/bzImage").exists());
    assert!(std::fs::read_to_string(k.join(".config"))
        .unwrap()
        .contains("CONFIG_BUILD_HELPER_TEST_SOURCES=y"));
}

/// One run builds both targets in parallel (one primary phase, one unpack of the stage3).
#[test]
fn real_portage_builds_a_stage0_and_a_full_stage_through_build_helper_run() {
    if !require_root() {
        return;
    }
    let _heavy = heavy_lock();
    let built = build();
    assert_stage0_with_install_mask_and_stacked_world_images(&built[0]);
    assert_full_stage_that_keeps_its_package_database(&built[1]);
}
