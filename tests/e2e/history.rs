//! History lifecycle and `--mount-hist` exploration, for real (root).

use std::process::Command;

use crate::common::*;

fn history_names(tree: &Tree) -> Vec<String> {
    build_helper::history::list(tree.path())
        .into_iter()
        .map(|e| e.name)
        .collect()
}

fn mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .collect()
}

/// `--mount-hist` with the given history, then checks, shell and umount.
fn explore(tree: &Tree, history: &str) {
    let out = tree.bh(
        &[
            "run",
            tree.starter().to_str().unwrap(),
            "--mount-hist",
            "--history",
            history,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let run = stdout
        .split("as run ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("run id printed")
        .to_string();
    let mounted = mount_points();
    for t in TARGETS {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{t}: ")))
            .unwrap_or_else(|| panic!("no path printed for {t}"));
        let root = line.split(": ").nth(1).unwrap().trim();
        assert!(
            mounted.iter().any(|m| m == root),
            "{root} is not a mount point"
        );
        assert!(mounted.iter().any(|m| m == &format!("{root}/proc")));
        for other in TARGETS {
            assert!(
                std::path::Path::new(root)
                    .join(format!("usr/{other}"))
                    .is_dir(),
                "{root}: /usr/{other} not visible"
            );
        }
        let shell = tree.bh(&["shell", &run, t, "-c", "ls /usr"], &[]);
        assert_eq!(shell.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&shell.stdout).contains(t));
    }
    let out = tree.bh(&["umount", &run], &[]);
    assert!(out.status.success());
    assert!(
        mounts_anywhere(tree.path()).is_empty(),
        "{:?}",
        mounts_anywhere(tree.path())
    );
}

#[test]
fn mount_hist_exposes_every_target_for_both_history_types_and_umount_removes_it() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    assert_eq!(tree.run_demo(&[], &[]).status.code(), Some(0));
    assert_eq!(
        tree.run_demo(&[], &[("HIST_TYPE", "files")]).status.code(),
        Some(0)
    );
    let names = history_names(&tree);
    assert_eq!(names.len(), 2);
    let kinds: Vec<_> = build_helper::history::list(tree.path())
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            build_helper::starter::HistoryType::Squashfs,
            build_helper::starter::HistoryType::Files
        ]
    );
    explore(&tree, &names[0]);
    explore(&tree, &names[1]);
    // The metadata lists the targets without mounting anything.
    let list = tree.bh(&["history", "list"], &[]);
    let list = String::from_utf8_lossy(&list.stdout);
    for t in TARGETS {
        assert!(list.contains(t), "{list}");
    }
    let show = tree.bh(&["history", "show", &names[1]], &[]);
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(show.contains(&format!("based on {}", names[0])), "{show}");
    assert!(show.contains("target-world"), "{show}");
    // `latest` is the newest; durations are listed in the order the steps ran.
    let latest = tree.bh(&["history", "show", "latest"], &[]);
    let latest = String::from_utf8_lossy(&latest.stdout);
    assert!(
        latest.contains(&format!("name     {}", names[1])),
        "{latest}"
    );
    let at = |s: &str| {
        latest
            .find(&format!("  {s} "))
            .unwrap_or_else(|| panic!("{s}: {latest}"))
    };
    assert!(at("host-sync") < at("host-toolchain"), "{latest}");
    assert!(at("host-toolchain") < at("crossdev"), "{latest}");
    assert!(at("crossdev") < at("target-env"), "{latest}");
    assert!(at("target-env") < at("collect"), "{latest}");

    // A run that stops early shows, for its steps not done, their duration last time.
    let failing = format!("{}:target-libc", TARGETS[2]);
    let out = tree.run_demo(&[], &[("BH_DEMO_FAIL", &failing)]);
    assert_eq!(out.status.code(), Some(1));
    let run = tree.run_dir();
    let status = tree.bh(&["status", run.file_name().unwrap().to_str().unwrap()], &[]);
    let status = String::from_utf8_lossy(&status.stdout);
    let kernel = status
        .lines()
        .skip_while(|l| !l.starts_with(TARGETS[2]))
        .find(|l| l.trim_start().starts_with("kernel "))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(kernel.contains("(last run)"), "{status}");
}

#[test]
fn prune_keeps_the_newest_and_history_picks_the_oldest() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    for _ in 0..3 {
        assert_eq!(tree.run_demo(&[], &[]).status.code(), Some(0));
    }
    let names = history_names(&tree);
    assert_eq!(names.len(), 3);
    let out = tree.run_demo(&["--history", &names[0]], &[]);
    assert_eq!(out.status.code(), Some(0));
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tree.run_dir().join("plan.json")).unwrap()).unwrap();
    let from = plan["layout"]["history"][0].as_str().unwrap().to_string();
    assert!(from.ends_with(&format!("{}.sqfs", names[0])), "{from}");
    assert_eq!(plan["first_build"], false);
    let newest = history_names(&tree).pop().unwrap();
    let out = tree.bh(&["history", "prune", "--keep", "1"], &[]);
    assert!(out.status.success());
    assert_eq!(history_names(&tree), [newest]);
}

#[test]
fn bad_history_choices_exit_2_and_mount_nothing() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let starter = tree.starter();
    let starter = starter.to_str().unwrap();
    let check = |args: &[&str], needle: &str| {
        let out = tree.bh(args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "`{needle}` not in {stderr}");
        assert!(mounts_anywhere(tree.path()).is_empty());
    };
    for mode in [&["--ui", "plain"][..], &["--mount-hist"][..]] {
        let mut args = vec!["run", starter, "--history", "nope"];
        args.extend(mode);
        check(&args, "`nope` does not exist");
        let mut args = vec!["run", starter, "--history", "/etc"];
        args.extend(mode);
        check(&args, "is not a history");
    }
    // A corrupt image: the squashfs magic, but cut short.
    let h = tree.path().join("history");
    let good = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(good.path().join("etc")).unwrap();
    // Incompressible content, so the image's used size is far beyond its half.
    let noise: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(good.path().join("etc/x"), noise).unwrap();
    let image = h.join("20300101-000000.sqfs");
    assert!(Command::new("mksquashfs")
        .arg(good.path())
        .arg(&image)
        .args(["-quiet", "-no-progress", "-noappend", "-noI"])
        .status()
        .unwrap()
        .success());
    let bytes = std::fs::read(&image).unwrap();
    std::fs::write(&image, &bytes[..bytes.len() / 2]).unwrap();
    check(&["run", starter, "--ui", "plain"], "corrupt");
    check(&["run", starter, "--mount-hist"], "corrupt");
    let work = std::fs::read_dir(tree.path().join("work")).unwrap().count();
    assert_eq!(work, 0, "a run directory was created for bad input");
    // An intact image that holds no root filesystem: refused once mounted, then unmounted.
    std::fs::remove_file(&image).unwrap();
    assert!(Command::new("mksquashfs")
        .arg(good.path())
        .arg(&image)
        .args(["-quiet", "-no-progress", "-noappend"])
        .status()
        .unwrap()
        .success());
    check(
        &["run", starter, "--ui", "plain"],
        "holds no root filesystem",
    );
}

#[test]
fn without_host_squashfs_tools_the_environment_archives_the_history() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().display().to_string();
    let out = tree.run_demo(&[], &[("PATH", &path)]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("using the environment's /usr/bin/gensquashfs"),
        "{stdout}"
    );
    // The demo environment's gensquashfs runs the build machine's real one (copied into the
    // stand-in stage3 with its libraries): the archive is a real squashfs of the archive
    // view, with every target's root.
    let image = build_helper::history::list(tree.path()).pop().unwrap().path;
    let listing = Command::new("/usr/bin/unsquashfs")
        .arg("-l")
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        listing.status.success(),
        "{} is no squashfs",
        image.display()
    );
    let listing = String::from_utf8_lossy(&listing.stdout);
    for t in TARGETS {
        assert!(
            listing.contains(&format!("/usr/{t}/usr/src/squashfs")),
            "no {t} in the archive"
        );
    }
    assert!(mounts_anywhere(tree.path()).is_empty());
}
