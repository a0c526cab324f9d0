//! `build-helper run --events json`: other tools follow a run on stdout.

use crate::common::*;

#[test]
fn events_json_streams_one_event_per_line_with_the_failure() {
    require_root();
    let tree = Tree::new();
    let failing = format!("{}:target-world", TARGETS[1]);
    let out = tree.bh(
        &["run", tree.starter().to_str().unwrap(), "--events", "json"],
        &[("BH_DEMO_FAIL", &failing)],
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    for k in [
        "run-started",
        "step-started",
        "step-finished",
        "toolchain-ready",
        "run-finished",
    ] {
        assert!(kinds.contains(&k), "no {k} in {kinds:?}");
    }
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "step-failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["target"], TARGETS[1]);
    assert_eq!(failed[0]["step"], "target-world");
    // The same records as the run's event log, and the plain lines went to stderr.
    assert_eq!(events.len(), tree.events().len());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[build-helper] run "));
}
