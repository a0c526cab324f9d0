//! Golden test of the plan of `starters/demo.toml`: the targets, world orders, mount layout
//! and every generated command, as `build-helper plan --json` prints them. Any change to the
//! recipe or the layout shows up here as a reviewable snapshot diff (`cargo insta review`).

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

#[test]
fn demo_plan_matches_the_golden_snapshot() {
    let tree = tempfile::tempdir().unwrap();
    copy_tree(tree.path());
    let tree_path = tree.path().to_path_buf();
    let env = move |k: &str| match k {
        "BUILD_HELPER_TREE" => Some(tree_path.display().to_string()),
        "BUILD_JOBS" => Some("4".to_string()),
        _ => None,
    };
    let starter =
        build_helper::starter::load(&tree.path().join("starters/demo.toml"), &env).unwrap();
    let plan = build_helper::plan::build(&starter, "20260101-000000", None).unwrap();
    let json = serde_json::to_string_pretty(&plan)
        .unwrap()
        .replace(&tree.path().display().to_string(), "<tree>");
    insta::assert_snapshot!("demo_plan", json);
    let text = build_helper::plan_text::render(&plan)
        .replace(&tree.path().display().to_string(), "<tree>");
    insta::assert_snapshot!("demo_plan_text", text);
}
