//! `build-helper run --events json`: other tools follow a run on stdout; the stand-in emerge's
//! progress lines (Portage's formats) come out as `progress` events, and the starter's
//! `notify` command gets the failure and the run's end as JSON on its standard input.

use crate::common::*;

#[test]
fn events_json_streams_one_event_per_line_with_the_failure() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    // The notify command: appends each event it is given to a file, one per line.
    let got = tree.path().join("notified.jsonl");
    let script = format!("cat >> {}", got.display());
    let starter = std::fs::read_to_string(tree.starter()).unwrap();
    let starter = starter.replace(
        "[options]\n",
        &format!("[options]\nnotify = [\"sh\", \"-c\", {script:?}]\n"),
    );
    std::fs::write(tree.starter(), starter).unwrap();
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
    // Package progress from the stand-in emerge's `>>> Emerging (k of N)` lines: every
    // emerge counts up to its own total.
    let progress: Vec<_> = events.iter().filter(|e| e["event"] == "progress").collect();
    assert!(!progress.is_empty(), "{kinds:?}");
    for p in &progress {
        let (done, total) = (p["done"].as_u64().unwrap(), p["total"].as_u64().unwrap());
        assert!(done <= total || total == 0, "{p}");
    }
    let world_done = progress.iter().any(|p| {
        p["target"] == TARGETS[0]
            && p["step"] == "target-world"
            && p["phase"] == "install"
            && p["done"] == p["total"]
            && p["total"].as_u64() > Some(0)
    });
    assert!(world_done, "{progress:?}");
    assert!(
        progress
            .iter()
            .any(|p| p["phase"] == "crossdev" && p["current"] == "cross-gcc"),
        "{progress:?}"
    );
    assert!(
        progress.iter().any(|p| p["phase"] == "sync"),
        "{progress:?}"
    );
    // The notify command ran on the failure and at the end, with the events' JSON.
    let notified: Vec<serde_json::Value> = std::fs::read_to_string(&got)
        .unwrap_or_else(|e| panic!("notify command never ran ({e})"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(notified.len(), 2, "{notified:?}");
    assert_eq!(notified[0]["event"], "step-failed");
    assert_eq!(notified[0]["target"], TARGETS[1]);
    assert_eq!(notified[0]["step"], "target-world");
    assert_eq!(notified[0]["exit_code"], failed[0]["exit_code"]);
    assert!(notified[0]["t_us"].as_u64().is_some());
    assert_eq!(notified[1]["event"], "run-finished");
    assert_eq!(notified[1]["result"], "failed");
    assert!(!tree.run_dir().join("logs/notify.log").exists());
    // The job pool (on by default) was served for the steps: every step's tokens came back,
    // none lost; each step's cost is on its step-finished.
    let of = |k: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e["event"] == k).collect()
    };
    let started = of("job-pool-started");
    assert_eq!(started.len(), 1, "{kinds:?}");
    let total = started[0]["total"].as_u64().unwrap();
    assert!(total >= 1);
    let finished = of("step-finished");
    let returned = of("job-tokens-returned");
    assert_eq!(returned.len(), finished.len(), "{returned:?}");
    for r in &returned {
        assert_eq!(
            (r["lost"].as_u64(), r["total"].as_u64()),
            (Some(0), Some(total)),
            "{r}"
        );
    }
    let closed = of("job-pool-closed");
    assert_eq!(closed.len(), 1, "{kinds:?}");
    assert_eq!(closed[0]["free"].as_u64(), Some(total), "{}", closed[0]);
    for f in &finished {
        assert!(f["cost"]["cpu_us"].as_u64().is_some(), "{f}");
        assert!(f["cost"]["peak_rss_bytes"].as_u64() > Some(0), "{f}");
        assert!(f["cost"]["source"].is_string(), "{f}");
    }
    // The demo stage3's make is a STAND-IN, not GNU make: its steps run unpooled and say so.
    let log =
        std::fs::read_to_string(tree.run_dir().join(format!("logs/{}.log", TARGETS[0]))).unwrap();
    assert!(
        log.contains("no GNU make in this environment") && log.contains("runs unpooled"),
        "{log}"
    );
    assert!(log.contains("cost: CPU"), "{log}");
    // The same records as the run's event log, and the plain lines went to stderr.
    assert_eq!(events.len(), tree.events().len());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[build-helper] run "));
}
