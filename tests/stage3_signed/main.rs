//! The stage3 download against the signed demo mirror (scripts/demo-mirror.sh) served by a
//! loopback HTTP server: good signatures pass and are reported with the signing subkey;
//! tampering, foreign, expired and revoked keys, text outside the signed part and truncated
//! downloads fail with a clear error and leave no tarball; a cut download resumes with Range;
//! a dead mirror falls through to the next; a kept tarball is reused offline.

mod gpg;
mod legacy;
mod resume;
mod server;
#[path = "../support/skip.rs"]
mod skip;
#[path = "../support/temp_mirror.rs"]
mod temp_mirror;

use std::path::{Path, PathBuf};
use std::process::Command;

use build_helper::stage3::{
    obtain_with_verifier, OpenPgpVerifier, Request, SignatureVerifier, Stage3Error, Verified,
};
use gpg::{signed_files, walk, Kind, TestKey};
use server::{serve, Cut};

/// The demo mirror, built once per test process and removed when it exits.
fn demo_mirror() -> &'static Path {
    temp_mirror::demo_mirror("bh-signed-mirror")
}

/// Whether the demo mirror can be built; skips the test otherwise (the packages it needs,
/// busybox-static, gnupg, squashfs-tools-ng and the kernels, come from
/// scripts/install-deps.sh).
fn have_demo_mirror() -> bool {
    let missing = temp_mirror::try_demo_mirror("bh-signed-mirror").err();
    skip::skip_unless(
        missing.is_none(),
        &format!("the demo mirror ({})", missing.unwrap_or_default()),
    )
}

/// A private copy of the demo mirror, its distfiles directory, and the demo key.
struct Case {
    tmp: tempfile::TempDir,
}

impl Case {
    /// A new case; `None` when the test skips (see [`have_demo_mirror`]).
    fn new() -> Option<Case> {
        if !have_demo_mirror() {
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(demo_mirror())
            .arg(tmp.path().join("mirror"))
            .status()
            .unwrap();
        assert!(status.success());
        Some(Case { tmp })
    }
    fn mirror(&self) -> PathBuf {
        self.tmp.path().join("mirror")
    }
    fn distfiles(&self) -> PathBuf {
        self.tmp.path().join("distfiles")
    }
    fn key(&self) -> PathBuf {
        self.mirror().join("demo-release.asc")
    }
    fn tarball(&self) -> PathBuf {
        walk(&self.mirror())
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with(".tar.xz"))
            .unwrap()
    }
    fn file_ending(&self, suffix: &str) -> PathBuf {
        walk(&self.mirror())
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap()
    }
    /// Runs the download from `mirror` (URL list) with the verifier of `key`.
    fn obtain(&self, mirror: &str, key: &Path) -> (Result<Verified, Stage3Error>, Vec<String>) {
        let verifier = OpenPgpVerifier::from_file(key).unwrap();
        let req = Request {
            mirror: mirror.to_string(),
            arch: "amd64".into(),
            flavor: "amd64-musl-hardened".into(),
            distfiles: self.distfiles(),
            progress_bar: false,
        };
        let mut lines = Vec::new();
        let mut progress = |l: String| lines.push(l);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let v: &dyn SignatureVerifier = &verifier;
        let result = rt.block_on(obtain_with_verifier(&req, Some(v), &mut progress));
        for l in &lines {
            eprintln!("{l}");
        }
        (result, lines)
    }
    /// Asserts that distfiles holds no tarball (nothing to extract) after a failure.
    fn assert_nothing_kept(&self) {
        let names: Vec<String> = std::fs::read_dir(self.distfiles())
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !names.iter().any(|n| n.ends_with(".tar.xz")),
            "a tarball was kept: {names:?}"
        );
    }
}

fn primary_and_subkey(key: &Path) -> (String, String) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("gpg")
        .env("GNUPGHOME", home.path())
        .args(["--batch", "--with-colons", "--show-keys"])
        .arg(key)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let fprs: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("fpr:"))
        .filter_map(|l| l.split(':').nth(8).map(String::from))
        .collect();
    (fprs[0].clone(), fprs[1].clone())
}

fn expect_err(result: Result<Verified, Stage3Error>, want: &str) -> String {
    let msg = match result {
        Ok(v) => panic!("expected an error containing {want:?}, got {v:?}"),
        Err(e) => e.to_string(),
    };
    assert!(msg.contains(want), "error {msg:?} lacks {want:?}");
    msg
}

#[test]
fn valid_signatures_pass_and_name_the_signing_subkey() {
    let Some(case) = Case::new() else {
        return;
    };
    let srv = serve(case.mirror(), None);
    let (result, lines) = case.obtain(&srv.url, &case.key());
    let v = result.unwrap();
    assert!(!v.reused);
    let (primary, sub) = primary_and_subkey(&case.key());
    let by = format!("by subkey {sub} of key {primary}");
    let good: Vec<&String> = lines.iter().filter(|l| l.contains(&by)).collect();
    assert_eq!(good.len(), 3, "index, DIGESTS and .asc: {lines:#?}");
    assert!(good[2].contains(".tar.xz.asc"), "{good:?}");
    assert!(v.tarball.with_extension("xz.asc").exists());
}

#[test]
fn tampered_tarball_fails_and_nothing_is_kept() {
    let Some(case) = Case::new() else {
        return;
    };
    let tarball = case.tarball();
    let mut bytes = std::fs::read(&tarball).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&tarball, bytes).unwrap();
    let srv = serve(case.mirror(), None);
    expect_err(case.obtain(&srv.url, &case.key()).0, "digest mismatch");
    case.assert_nothing_kept();
}

#[test]
fn tampered_digests_fail_the_signature() {
    let Some(case) = Case::new() else {
        return;
    };
    let digests = case.file_ending(".DIGESTS");
    let text = std::fs::read_to_string(&digests).unwrap();
    // Change one hex digit of the first digest inside the signed part.
    let at = text.find("HASH\n").unwrap() + 5;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&digests, bytes).unwrap();
    let srv = serve(case.mirror(), None);
    expect_err(case.obtain(&srv.url, &case.key()).0, "bad signature");
    case.assert_nothing_kept();
}

#[test]
fn signature_by_another_key_fails() {
    let Some(case) = Case::new() else {
        return;
    };
    TestKey::new(Kind::Plain).resign_mirror(&case.mirror());
    let srv = serve(case.mirror(), None);
    expect_err(case.obtain(&srv.url, &case.key()).0, "not trusted");
    case.assert_nothing_kept();
}

#[test]
fn text_outside_the_signed_part_fails() {
    for (before, after) in [("", "\n20990101T000000Z/evil.tar.xz 1\n"), ("# hi\n", "")] {
        let Some(case) = Case::new() else {
            return;
        };
        let index = case.file_ending("latest-stage3-amd64-musl-hardened.txt");
        let text = std::fs::read_to_string(&index).unwrap();
        std::fs::write(&index, format!("{before}{text}{after}")).unwrap();
        let srv = serve(case.mirror(), None);
        expect_err(
            case.obtain(&srv.url, &case.key()).0,
            "not a well-formed clear-signed",
        );
        case.assert_nothing_kept();
    }
}

#[test]
fn expired_key_fails() {
    let Some(case) = Case::new() else {
        return;
    };
    let key = TestKey::new(Kind::Expired);
    key.resign_mirror(&case.mirror());
    key.export(&case.key());
    let srv = serve(case.mirror(), None);
    expect_err(case.obtain(&srv.url, &case.key()).0, "expired");
    case.assert_nothing_kept();
}

#[test]
fn revoked_key_fails() {
    let Some(case) = Case::new() else {
        return;
    };
    let key = TestKey::new(Kind::Plain);
    key.resign_mirror(&case.mirror());
    key.revoke();
    key.export(&case.key());
    let srv = serve(case.mirror(), None);
    expect_err(case.obtain(&srv.url, &case.key()).0, "revoked");
    case.assert_nothing_kept();
}

/// Re-makes the DIGESTS of the (changed) tarball and signs index and DIGESTS with `key`.
fn redigest(case: &Case, key: &TestKey) {
    let tarball = case.tarball();
    let name = tarball.file_name().unwrap().to_str().unwrap().to_string();
    let mut body = String::new();
    for (header, tool) in [("BLAKE2B", "b2sum"), ("SHA512", "sha512sum")] {
        let out = Command::new(tool)
            .arg(&name)
            .current_dir(tarball.parent().unwrap())
            .output();
        body.push_str(&format!(
            "# {header} HASH\n{}",
            String::from_utf8(out.unwrap().stdout).unwrap()
        ));
    }
    std::fs::write(case.file_ending(".DIGESTS"), key.clearsign(&body)).unwrap();
}

#[test]
fn tarball_signature_mismatch_fails_even_with_matching_digests() {
    // The .asc (SHA512: checked from the DIGESTS' SHA512 state) is of the original tarball;
    // the tarball is then changed and the DIGESTS re-made and signed to match it.
    let Some(case) = Case::new() else {
        return;
    };
    let key = TestKey::new(Kind::Plain);
    key.resign_mirror(&case.mirror());
    key.export(&case.key());
    let tarball = case.tarball();
    let mut bytes = std::fs::read(&tarball).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&tarball, bytes).unwrap();
    redigest(&case, &key);
    let srv = serve(case.mirror(), None);
    let msg = expect_err(case.obtain(&srv.url, &case.key()).0, "bad signature");
    assert!(msg.contains(".tar.xz.asc"), "{msg}");
    case.assert_nothing_kept();
}

#[test]
fn sha256_tarball_signature_is_checked_on_its_own_thread() {
    let Some(case) = Case::new() else {
        return;
    };
    let key = TestKey::new(Kind::Plain);
    key.resign_mirror(&case.mirror());
    key.export(&case.key());
    let tarball = case.tarball();
    let asc = case.file_ending(".tar.xz.asc");
    std::fs::write(&asc, key.detach_sign_with(&tarball, "SHA256")).unwrap();
    let srv = serve(case.mirror(), None);
    let (result, lines) = case.obtain(&srv.url, &case.key());
    result.unwrap();
    assert!(
        lines.iter().any(|l| l.contains(".tar.xz.asc by subkey")),
        "{lines:#?}"
    );
    // And a mismatch in that mode fails too.
    let Some(case) = Case::new() else {
        return;
    };
    key.resign_mirror(&case.mirror());
    key.export(&case.key());
    let tarball = case.tarball();
    let asc = case.file_ending(".tar.xz.asc");
    std::fs::write(&asc, key.detach_sign_with(&tarball, "SHA256")).unwrap();
    let mut bytes = std::fs::read(&tarball).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&tarball, bytes).unwrap();
    redigest(&case, &key);
    let srv = serve(case.mirror(), None);
    expect_err(case.obtain(&srv.url, &case.key()).0, "bad signature");
    case.assert_nothing_kept();
}

#[test]
fn truncated_download_fails_after_retries() {
    let Some(case) = Case::new() else {
        return;
    };
    let tarball = case.tarball();
    let len = std::fs::metadata(&tarball).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&tarball)
        .unwrap();
    f.set_len(len / 2).unwrap();
    let srv = serve(case.mirror(), None);
    expect_err(case.obtain(&srv.url, &case.key()).0, "size mismatch");
    case.assert_nothing_kept();
}

#[test]
fn cut_download_resumes_with_a_range_request() {
    let Some(case) = Case::new() else {
        return;
    };
    let len = std::fs::metadata(case.tarball()).unwrap().len();
    let half = len / 2;
    let cut = Cut {
        suffix: ".tar.xz".into(),
        bytes: half,
    };
    let srv = serve(case.mirror(), Some(cut));
    let (result, lines) = case.obtain(&srv.url, &case.key());
    result.unwrap();
    let log = srv.log.lock().unwrap().clone();
    for l in &log {
        eprintln!("server: {l}");
    }
    let tar: Vec<&String> = log.iter().filter(|l| l.contains(".tar.xz range")).collect();
    assert_eq!(tar.len(), 2, "{log:#?}");
    assert!(tar[0].ends_with("range=-"), "{log:#?}");
    assert!(
        tar[1].ends_with(&format!("range=bytes={half}-")),
        "{log:#?}"
    );
    assert!(lines
        .iter()
        .any(|l| l.contains(&format!("resuming from byte {half}"))));
}

#[test]
fn a_dead_mirror_falls_through_to_the_next() {
    let Some(case) = Case::new() else {
        return;
    };
    // A port nobody listens on: bind, note it, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let srv = serve(case.mirror(), None);
    let (result, lines) = case.obtain(&format!("{dead_url} {}", srv.url), &case.key());
    result.unwrap();
    assert!(
        lines.iter().any(|l| l.contains("trying the next")),
        "{lines:#?}"
    );
}

#[test]
fn kept_tarball_is_reused_offline_with_its_signatures() {
    let Some(case) = Case::new() else {
        return;
    };
    let srv = serve(case.mirror(), None);
    case.obtain(&srv.url, &case.key()).0.unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let (result, lines) = case.obtain(&dead_url, &case.key());
    assert!(result.unwrap().reused);
    let good = lines
        .iter()
        .filter(|l| l.contains("good signature"))
        .count();
    assert_eq!(good, 2, "the kept DIGESTS and .asc: {lines:#?}");
}

#[test]
fn kept_copy_with_a_foreign_signature_is_not_reused() {
    let Some(case) = Case::new() else {
        return;
    };
    let srv = serve(case.mirror(), None);
    case.obtain(&srv.url, &case.key()).0.unwrap();
    // The user now trusts another key only: the kept copy must not pass.
    let other = TestKey::new(Kind::Plain);
    let other_key = case.tmp.path().join("other.asc");
    other.export(&other_key);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let (result, _) = case.obtain(&dead_url, &other_key);
    assert!(result.is_err());
    case.assert_nothing_kept();
}

#[test]
fn missing_key_file_says_how_to_get_it() {
    let err = match OpenPgpVerifier::from_file(Path::new("/nonexistent/gentoo-release.asc")) {
        Ok(_) => panic!("a verifier without a key file"),
        Err(e) => e.to_string(),
    };
    for want in [
        "emerge sec-keys/openpgp-keys-gentoo-release",
        "13EBBDBEDE7A12775DFDB1BABB572E0E2D182910",
        "--no-verify-signatures",
    ] {
        assert!(err.contains(want), "{err}");
    }
    // The signed files list is what the tests re-sign.
    if !have_demo_mirror() {
        return;
    }
    assert_eq!(signed_files(demo_mirror()).len(), 3);
}
