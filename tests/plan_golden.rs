//! Golden tests of the plans of every starter in `starters/`: the targets, world orders,
//! mount layout and every generated command, as `build-helper plan --json` prints them. Any
//! change to the recipe, the layout or an example configuration shows up here as a
//! reviewable snapshot diff (`cargo insta review`, or `INSTA_UPDATE=always` and `git diff`).
//! In the JSON goldens each step's `script` is an array of its lines (see [`scripts_as_lines`]),
//! so that a change to one command shows as one changed line; `plan --json` itself prints
//! each script as one string. Every example configuration must also pass `build-helper check`.

use std::path::Path;

fn copy_tree(dst: &Path) {
    let src = env!("CARGO_MANIFEST_DIR");
    for sub in ["configs", "starters"] {
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{src}/{sub}"))
            .arg(dst)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// `json` (as `serde_json::to_string_pretty` prints it) with every `"script": "<string>"`
/// member written as the array of the script's lines, without their `\n`: joining the lines
/// with `\n` and appending one `\n` gives the script back. Works on the text, not on a
/// `serde_json::Value`, so that the members keep the plan's order. Panics when a script
/// does not end with `\n` (the array form would then lose that fact).
fn scripts_as_lines(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for line in json.lines() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let (value, comma) = match body.strip_suffix(',') {
            Some(v) => (v, ","),
            None => (body, ""),
        };
        let script = value
            .strip_prefix("\"script\": ")
            .and_then(|s| serde_json::from_str::<String>(s).ok());
        let Some(script) = script else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        assert!(
            script.ends_with('\n'),
            "a script that does not end with a newline: {script:?}"
        );
        out.push_str(&format!("{indent}\"script\": [\n"));
        let lines: Vec<&str> = script.split_terminator('\n').collect();
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 < lines.len() { "," } else { "" };
            let quoted = serde_json::to_string(l).unwrap();
            out.push_str(&format!("{indent}  {quoted}{sep}\n"));
        }
        out.push_str(&format!("{indent}]{comma}\n"));
    }
    out.pop();
    out
}

#[test]
fn golden_scripts_are_arrays_of_their_lines() {
    let plan = serde_json::json!({
        "steps": [{"name": "a", "script": "set -eux\n\necho \"x\"\n"}],
        "text": "not\na script\n"
    });
    let json = scripts_as_lines(&serde_json::to_string_pretty(&plan).unwrap());
    let back: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        back,
        serde_json::json!({
            "steps": [{"name": "a", "script": ["set -eux", "", "echo \"x\""]}],
            "text": "not\na script\n"
        })
    );
    assert!(
        json.contains("\n      \"script\": [\n        \"set -eux\",\n"),
        "{json}"
    );
}

/// The plan of `starters/<file>` in a copy of the tree, as JSON (scripts as arrays of lines,
/// see [`scripts_as_lines`]) and as text, with the tree's path replaced by `<tree>`, for run
/// date 20260101-000000 and 4 jobs.
fn plan_of(file: &str) -> (String, String) {
    let tree = tempfile::tempdir().unwrap();
    copy_tree(tree.path());
    let tree_path = tree.path().to_path_buf();
    let env = move |k: &str| match k {
        "BUILD_HELPER_TREE" => Some(tree_path.display().to_string()),
        "BUILD_JOBS" => Some("4".to_string()),
        _ => None,
    };
    let starter =
        build_helper::starter::load(&tree.path().join("starters").join(file), &env).unwrap();
    let plan = build_helper::plan::build(&starter, "20260101-000000", None).unwrap();
    let json = scripts_as_lines(&serde_json::to_string_pretty(&plan).unwrap())
        .replace(&tree.path().display().to_string(), "<tree>");
    let text = build_helper::plan_text::render(&plan)
        .replace(&tree.path().display().to_string(), "<tree>");
    (json, text)
}

#[test]
fn demo_plan_matches_the_golden_snapshot() {
    let (json, text) = plan_of("demo.toml");
    insta::assert_snapshot!("demo_plan", json);
    insta::assert_snapshot!("demo_plan_text", text);
}

#[test]
fn laptop_plan_matches_the_golden_snapshot() {
    insta::assert_snapshot!("laptop_plan", plan_of("laptop.toml").0);
}

#[test]
fn rpi4b_plan_matches_the_golden_snapshot() {
    insta::assert_snapshot!("rpi4b_plan", plan_of("rpi4b.toml").0);
}

#[test]
fn zen2_native_plan_matches_the_golden_snapshot() {
    insta::assert_snapshot!("zen2_native_plan", plan_of("zen2-native.toml").0);
}

#[test]
fn fleet_plan_matches_the_golden_snapshot() {
    let (json, text) = plan_of("fleet.toml");
    insta::assert_snapshot!("fleet_plan", json);
    insta::assert_snapshot!("fleet_plan_text", text);
}

#[test]
fn every_starter_has_a_golden_test() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("starters");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "demo.toml",
            "fleet.toml",
            "laptop.toml",
            "rpi4b.toml",
            "zen2-native.toml"
        ]
    );
}

#[test]
fn every_example_configuration_passes_check() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut dirs: Vec<_> = std::fs::read_dir(configs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "{dirs:?}");
    let report = build_helper::config::check(&dirs);
    assert!(report.is_ok(), "{:#?}", report.errors);
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
}

#[path = "fixtures/original.rs"]
mod original;

/// A tree holding configurations in the shape of the original tool's (see
/// `tests/fixtures/original.rs`) and the starter `script` converted by `import-starter` into
/// `starters/<name>.toml`; returns the plan of that starter (date 20260101-000000, 4 jobs)
/// with the tree's path replaced by `<tree>`, or the planning error.
fn original_plan(
    script: &str,
    name: &str,
    extra_options: &str,
) -> Result<build_helper::plan::Plan, String> {
    let tree = tempfile::tempdir().unwrap();
    original::write_tree(tree.path());
    let toml = build_helper::starter::import_starter(script, Path::new("example-starter.sh"))
        .map_err(|e| e.to_string())?;
    let toml = toml.replace("[options]\n", &format!("[options]\n{extra_options}"));
    let path = tree.path().join("starters").join(format!("{name}.toml"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, toml).unwrap();
    let tree_path = tree.path().to_path_buf();
    let env = move |k: &str| match k {
        "BUILD_HELPER_TREE" => Some(tree_path.display().to_string()),
        "BUILD_JOBS" => Some("4".to_string()),
        _ => None,
    };
    let starter = build_helper::starter::load(&path, &env).map_err(|e| e.to_string())?;
    build_helper::plan::build(&starter, "20260101-000000", None).map_err(|e| e.to_string())
}

fn step<'a>(p: &'a build_helper::plan::Plan, target: &str, name: &str) -> &'a str {
    let t = p
        .targets
        .iter()
        .find(|t| t.target.to_string() == target)
        .unwrap_or_else(|| panic!("no target {target}"));
    &t.steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name} in {target}"))
        .script
}

#[test]
fn original_configurations_pass_check_unchanged() {
    let tree = tempfile::tempdir().unwrap();
    original::write_tree(tree.path());
    let configs = tree.path().join("configs");
    let mut dirs = vec![configs.join("host")];
    dirs.extend(
        original::TARGETS
            .iter()
            .map(|t| configs.join(format!("{}.{}", t.tuple, t.name))),
    );
    let report = build_helper::config::check(&dirs);
    assert!(report.is_ok(), "{:#?}", report.errors);
    // The only warnings: the world files without a tree entry, which are not built.
    assert!(
        report
            .warnings
            .iter()
            .all(|w| w.path.ends_with("worlds/emu")),
        "{:#?}",
        report.warnings
    );
}

#[test]
fn original_parallel_starter_converted_by_import_starter_plans() {
    let p = original_plan(original::PARALLEL_STARTER, "parallel", "").unwrap();
    let names: Vec<String> = p.targets.iter().map(|t| t.target.to_string()).collect();
    assert_eq!(
        names,
        [
            "x86_64-unknown-linux-musl.mbp-tb-stack",
            "x86_64-unknown-linux-musl.zen2-tb-stack",
            "x86_64-unknown-linux-gnu.zen2-tb-slim",
            "x86_64-unknown-linux-gnu.zen2-tb-steam",
            "i686-unknown-linux-gnu.zen2-steam",
        ]
    );
    for t in original::TARGETS.iter().take(5) {
        let target = format!("{}.{}", t.tuple, t.name);
        // PORTAGE_TMPDIR exists before the first emerge of the target.
        let tmpdir = format!("/var/tmp/portage/{}", t.tmp);
        assert!(
            step(&p, &target, "target-libc").contains(&tmpdir),
            "{target}"
        );
        // INSTALL_MASK is switched in env/sys-devel/gcc too.
        assert!(step(&p, &target, "target-libc")
            .contains("\"$BUILD_CONF/target-portage/\"env/sys-devel/gcc"));
        // xz, which every x86 kernel here reads, with file times kept; artifact names.
        let images = step(&p, &target, "images");
        assert!(
            images.contains("gensquashfs -f -k -j \"$BUILD_JOBS\" -c xz -D \"$S\" \"$O/base\"\n")
        );
        assert!(images.contains("> \"$O/initramfs\")"));
    }
    // The primary creates every target's PORTAGE_TMPDIR for its own steps.
    let sync = step(&p, "x86_64-unknown-linux-musl.mbp-tb-stack", "host-sync");
    assert!(sync.contains(
        "mkdir -p /var/tmp/portage/mbp /var/tmp/portage/zen2 /var/tmp/portage/zen2gnu \
         /var/tmp/portage/zen2steam /var/tmp/portage/zen2steam32\n"
    ));
    // The musl tuple's rust target is the host's custom one.
    let cross = step(&p, "x86_64-unknown-linux-musl.mbp-tb-stack", "crossdev");
    assert!(cross.contains("/usr/lib/rust/*/lib/rustlib/x86_64-crossdev-linux-musl "));
    // The repositories are mounted where their repos.conf sections say.
    let text = build_helper::plan_text::render(&p);
    assert!(text.contains("/repos/portage-musl-zen2-tb-stack -> "));
    assert!(text.contains("/var/db/repos/portage-musl-zen2-tb-stack\n"));
}

#[test]
fn original_m68k_target_plans_with_xz_images_and_no_rust() {
    let p = original_plan(original::MARCHINTOSH_STARTER, "marchintosh", "").unwrap();
    let t = "m68k-unknown-linux-musl.marchintosh";
    let images = step(&p, t, "images");
    assert!(images.contains("-c xz -D \"$S\" \"$O/base\"\n"));
    assert!(images.contains("-c xz -D \"$R/usr/src/squashfs.netlib\" \"$O/netlib\"\n"));
    assert!(images.contains("| cat > \"$O/initramfs\")"));
    assert!(step(&p, t, "crossdev").contains("\nannounce m68k-unknown-linux-musl\n"));
    assert!(p.targets[0].steps.iter().all(|s| s.name != "rust-cross"));
    assert!(step(&p, t, "target-env").contains("mkdir -p /var/tmp/portage/marchintosh\n"));
    // The whole plan, for review: every item of the comparison shows in its scripts.
    let text = build_helper::plan_text::render(&p).replace(&p.tree.display().to_string(), "<tree>");
    insta::assert_snapshot!("original_m68k_plan_text", text);
}

#[test]
fn a_starter_compressor_the_m68k_kernel_cannot_read_is_refused() {
    let e = original_plan(
        original::MARCHINTOSH_STARTER,
        "marchintosh",
        "image_compressor = \"zstd\"\n",
    )
    .unwrap_err();
    assert!(
        e.contains("m68k-unknown-linux-musl.marchintosh/linux.config"),
        "{e}"
    );
    assert!(
        e.contains("image_compressor `zstd` cannot be read by this kernel"),
        "{e}"
    );
    assert!(e.contains("CONFIG_SQUASHFS_ZSTD"), "{e}");
    let ok = original_plan(
        original::PARALLEL_STARTER,
        "parallel",
        "image_compressor = \"zstd\"\n",
    )
    .unwrap();
    assert!(step(&ok, "i686-unknown-linux-gnu.zen2-steam", "images").contains("-c zstd -D"));
}

/// Runs the `build-helper` binary with `args`; returns its exit code and standard output.
fn cli(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_build-helper"))
        .args(args)
        .env_remove("BUILD_HELPER_TREE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn import_starter_and_check_starter_work_from_the_command_line() {
    let tree = tempfile::tempdir().unwrap();
    original::write_tree(tree.path());
    let script = tree.path().join("example-starter-marchintosh.sh");
    std::fs::write(&script, original::MARCHINTOSH_STARTER).unwrap();
    let (code, toml) = cli(&["import-starter".as_ref(), script.as_os_str()]);
    assert_eq!(code, 0, "{toml}");
    let starter = tree.path().join("starters/marchintosh.toml");
    std::fs::create_dir_all(starter.parent().unwrap()).unwrap();
    std::fs::write(&starter, &toml).unwrap();
    let (code, out) = cli(&["check".as_ref(), "--starter".as_ref(), starter.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 configuration(s) valid"), "{out}");
    let zstd = toml.replace("[options]\n", "[options]\nimage_compressor = \"zstd\"\n");
    std::fs::write(&starter, zstd).unwrap();
    let (code, out) = cli(&["check".as_ref(), "--starter".as_ref(), starter.as_os_str()]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("marchintosh/linux.config: the starter's image_compressor `zstd`"),
        "{out}"
    );
    let (code, out) = cli(&[
        "import-starter".as_ref(),
        tree.path().join("none.sh").as_os_str(),
    ]);
    // Bad input, as `plan` of a missing starter.
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("cannot read starter script"), "{out}");
}

#[test]
fn plan_check_and_import_starter_end_quietly_on_a_closed_pipe() {
    let tree = tempfile::tempdir().unwrap();
    original::write_tree(tree.path());
    let script = tree.path().join("example-starter-parallel.sh");
    std::fs::write(&script, original::PARALLEL_STARTER).unwrap();
    let starter = tree.path().join("starters/parallel.toml");
    std::fs::create_dir_all(starter.parent().unwrap()).unwrap();
    let (_, toml) = cli(&["import-starter".as_ref(), script.as_os_str()]);
    std::fs::write(&starter, toml).unwrap();
    let runs: [Vec<&std::ffi::OsStr>; 3] = [
        vec!["plan".as_ref(), starter.as_os_str()],
        vec!["check".as_ref(), "--starter".as_ref(), starter.as_os_str()],
        vec!["import-starter".as_ref(), script.as_os_str()],
    ];
    for args in runs {
        // A reader that closes the pipe at once, as `| head -c0` does.
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_build-helper"))
            .args(&args)
            .env_remove("BUILD_HELPER_TREE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        // Quiet, as `ls | head`: done before the pipe closed, or ended by SIGPIPE (print-only
        // commands take its default back), never a panic or an error message.
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.code() == Some(0) || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?} {err}",
            out.status
        );
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}
