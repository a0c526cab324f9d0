//! Golden tests of the plans of every starter in `starters/`: the targets, world orders,
//! mount layout and every generated command, as `build-helper plan --json` prints them. Any
//! change to the recipe, the layout or an example configuration shows up here as a
//! reviewable snapshot diff (`cargo insta review`, or `INSTA_UPDATE=always` and `git diff`).
//! Every example configuration must also pass `build-helper check`.

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

/// The plan of `starters/<file>` in a copy of the tree, as JSON and as text, with the
/// tree's path replaced by `<tree>`, for run date 20260101-000000 and 4 jobs.
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
    let json = serde_json::to_string_pretty(&plan)
        .unwrap()
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
