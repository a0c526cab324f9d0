//! The tracker on real and format-exact step output (tests/fixtures/progress/README.md).

use super::{Phase, Tracker};

/// Every progress the tracker reports, fed line by line as a pipe delivers them.
fn reports(text: &str) -> Vec<String> {
    let mut t = Tracker::new();
    text.split_inclusive('\n')
        .filter_map(|l| t.feed(l.as_bytes()))
        .map(|p| format!("{} {}", p.phase.word(), p.short()))
        .collect()
}

#[test]
fn real_portage_target_world_counts_each_emerge_to_its_total() {
    let r = reports(include_str!(
        "../../tests/fixtures/progress/real-portage-target-world.txt"
    ));
    assert_eq!(
        r,
        [
            "build 0/3 sys-apps/baselayout-2.17",
            "install 0/3 sys-apps/baselayout-2.17",
            "install 1/3 sys-apps/baselayout-2.17",
            "build 1/3 test-base/libbase-1.0",
            "install 1/3 test-base/libbase-1.0",
            "install 2/3 test-base/libbase-1.0",
            "build 2/3 test-base/tool-1.0",
            "install 2/3 test-base/tool-1.0",
            "install 3/3 test-base/tool-1.0",
            "build 0/2 test-net/libnet-1.0",
            "install 0/2 test-net/libnet-1.0",
            "install 1/2 test-net/libnet-1.0",
            "build 1/2 test-net/netd-1.0",
            "install 1/2 test-net/netd-1.0",
            "install 2/2 test-net/netd-1.0",
            "build 0/2 test-gui/libgui-1.0",
            "install 0/2 test-gui/libgui-1.0",
            "install 1/2 test-gui/libgui-1.0",
            "build 1/2 test-gui/desktop-1.0",
            "install 1/2 test-gui/desktop-1.0",
            "install 2/2 test-gui/desktop-1.0",
        ]
    );
}

#[test]
fn real_portage_binary_merges_are_reported_as_binpkg() {
    let r = reports(include_str!(
        "../../tests/fixtures/progress/real-portage-world-images.txt"
    ));
    assert!(
        r.iter().any(|l| l == "binpkg 0/2 test-net/libnet-1.0"),
        "{r:?}"
    );
    assert_eq!(
        r.last().map(String::as_str),
        Some("install 2/2 test-gui/desktop-1.0")
    );
    assert!(!r.iter().any(|l| l.starts_with("build ")), "{r:?}");
}

#[test]
fn parallel_coloured_sync_and_crossdev_output_gives_the_right_counts() {
    let text = include_str!("../../tests/fixtures/progress/jobs-colour-sync-crossdev.txt");
    let r = reports(text);
    assert_eq!(
        &r[..6],
        [
            "sync 0 gentoo",
            "sync 1 gentoo",
            "sync 1 crossdev",
            "sync 2 crossdev",
            "crossdev 0 cross-binutils",
            "crossdev 1 cross-linux-headers-quick",
        ]
    );
    // Started packages are never counted as done; completions out of order still count.
    assert!(
        r.contains(&"binpkg 0/4 dev-libs/openssl-3.3.2-r2".to_string()),
        "{r:?}"
    );
    assert!(
        r.contains(&"build 3/4 net-misc/curl-8.10.1".to_string()),
        "{r:?}"
    );
    let mut t = Tracker::new();
    t.feed(text.as_bytes());
    let p = t.progress().unwrap();
    assert_eq!((p.phase, p.done, p.total), (Phase::Fetch, 3, 4));
    assert_eq!(p.current.as_deref(), Some("net-misc/curl-8.10.1"));
}
