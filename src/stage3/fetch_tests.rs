//! Tests of [`obtain`] against a loopback HTTP server and a `file://` mirror.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use blake2::Blake2b512;
use sha2::{Digest, Sha512};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const FLAVOR: &str = "amd64-musl-hardened";
const STAMP: &str = "20260811T083102Z";

fn tar_name() -> String {
    format!("stage3-{FLAVOR}-{STAMP}.tar.xz")
}

fn dir_url() -> String {
    "/releases/amd64/autobuilds".to_string()
}

/// 3 MiB + a bit of pseudo-random bytes (so that MiB progress lines appear).
fn payload() -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..(3 << 20) + 12345)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn clearsign(body: &str) -> String {
    format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{body}\
         -----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAdFiEE\n=abcd\n-----END PGP SIGNATURE-----\n"
    )
}

/// The mirror's files (URL path -> bytes) for `listed` (what the index and DIGESTS describe)
/// while serving `served` as the tarball.
fn mirror_files(listed: &[u8], served: Vec<u8>) -> HashMap<String, Vec<u8>> {
    let name = tar_name();
    let latest = clearsign(&format!(
        "# Latest as of Sat, 15 Aug 2026 09:15:01 +0000\n# ts=1786785301\n{STAMP}/{name} {}\n",
        listed.len()
    ));
    let sha = hex::encode(Sha512::digest(listed));
    let b2 = hex::encode(Blake2b512::digest(listed));
    let digests = clearsign(&format!(
        "# BLAKE2B HASH\n{b2}  {name}\n# SHA512 HASH\n{sha}  {name}\n\
         # BLAKE2B HASH\n{z}  {name}.CONTENTS.gz\n# SHA512 HASH\n{z}  {name}.CONTENTS.gz\n",
        z = "0".repeat(128)
    ));
    let base = dir_url();
    HashMap::from([
        (
            format!("{base}/latest-stage3-{FLAVOR}.txt"),
            latest.into_bytes(),
        ),
        (
            format!("{base}/{STAMP}/{name}.DIGESTS"),
            digests.into_bytes(),
        ),
        (format!("{base}/{STAMP}/{name}"), served),
    ])
}

/// Serves `files` over HTTP/1.1 on 127.0.0.1; returns the mirror URL.
async fn serve(files: HashMap<String, Vec<u8>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let files = Arc::new(files);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let files = files.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req);
                let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
                let (status, body) = match files.get(&path) {
                    Some(body) => ("200 OK", body.clone()),
                    None => ("404 Not Found", b"not found".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Writes `files` below `root`; returns the `file://` mirror URL.
fn file_mirror(root: &Path, files: &HashMap<String, Vec<u8>>) -> String {
    for (rel, bytes) in files {
        let path = root.join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    format!("file://{}/", root.display())
}

fn request(mirror: String, distfiles: &Path) -> Request {
    Request {
        mirror,
        arch: "amd64".into(),
        flavor: FLAVOR.into(),
        distfiles: distfiles.to_path_buf(),
        progress_bar: false,
    }
}

/// Runs [`obtain`] and returns its result with the progress lines.
async fn run(req: &Request) -> (Result<Verified, Stage3Error>, Vec<String>) {
    let mut lines = Vec::new();
    let mut progress = |l: String| lines.push(l);
    let result = obtain(req, &mut progress).await;
    (result, lines)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn assert_ok(v: &Verified, data: &[u8], reused: bool) {
    assert_eq!(v.size, data.len() as u64);
    assert_eq!(v.reused, reused);
    assert_eq!(
        v.sha512.as_deref(),
        Some(hex::encode(Sha512::digest(data)).as_str())
    );
    assert_eq!(
        v.blake2b.as_deref(),
        Some(hex::encode(Blake2b512::digest(data)).as_str())
    );
    assert_eq!(std::fs::read(&v.tarball).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obtain_over_http_downloads_and_verifies() {
    let data = payload();
    let mirror = serve(mirror_files(&data, data.clone())).await;
    let tmp = tempfile::tempdir().unwrap();
    let (result, lines) = run(&request(mirror.clone(), tmp.path())).await;
    let v = result.unwrap();
    assert_ok(&v, &data, false);
    assert_eq!(v.tarball, tmp.path().join(tar_name()));
    let name = tar_name();
    assert_eq!(
        listing(tmp.path()),
        vec![name.clone(), format!("{name}.DIGESTS")]
    );
    let want = format!("stage3: fetching {mirror}{}/{STAMP}/{name}", dir_url());
    assert!(lines.contains(&want), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("/3 MiB")), "{lines:#?}");
    assert!(
        lines.contains(&"stage3: verified SHA512, BLAKE2B".to_string()),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("NOT checked")),
        "{lines:#?}"
    );
    assert!(lines.len() < 20, "too many progress lines: {lines:#?}");
}

#[tokio::test]
async fn obtain_from_file_mirror_downloads_and_verifies() {
    let data = payload();
    let tmp = tempfile::tempdir().unwrap();
    let mirror = file_mirror(
        &tmp.path().join("mirror"),
        &mirror_files(&data, data.clone()),
    );
    let distfiles = tmp.path().join("distfiles");
    let (result, _) = run(&request(mirror, &distfiles)).await;
    assert_ok(&result.unwrap(), &data, false);
    assert_eq!(listing(&distfiles).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obtain_tampered_tarball_is_refused_and_deleted() {
    let data = payload();
    let mut evil = data.clone();
    evil[1000] ^= 0xff;
    let mirror = serve(mirror_files(&data, evil)).await;
    let tmp = tempfile::tempdir().unwrap();
    let (result, _) = run(&request(mirror, tmp.path())).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Stage3Error::DigestMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("digest mismatch") && msg.contains(&tar_name()),
        "{msg}"
    );
    assert!(msg.contains("the download was deleted"), "{msg}");
    assert_eq!(listing(tmp.path()), Vec::<String>::new());
}

#[tokio::test]
async fn obtain_truncated_tarball_is_a_size_mismatch() {
    let data = payload();
    let tmp = tempfile::tempdir().unwrap();
    let files = mirror_files(&data, data[..1000].to_vec());
    let mirror = file_mirror(&tmp.path().join("mirror"), &files);
    let distfiles = tmp.path().join("distfiles");
    let (result, _) = run(&request(mirror, &distfiles)).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, Stage3Error::SizeMismatch { got: 1000, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("lists {} bytes, got 1000", data.len())),
        "{msg}"
    );
    assert_eq!(listing(&distfiles), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obtain_stops_a_tarball_larger_than_listed() {
    let data = payload();
    let mut longer = data.clone();
    longer.extend_from_slice(&[0u8; 4096]);
    let mirror = serve(mirror_files(&data, longer)).await;
    let tmp = tempfile::tempdir().unwrap();
    let (result, _) = run(&request(mirror, tmp.path())).await;
    assert!(
        matches!(result, Err(Stage3Error::SizeMismatch { .. })),
        "{result:?}"
    );
    assert_eq!(listing(tmp.path()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obtain_reuses_kept_tarball_without_network() {
    let data = payload();
    let mirror = serve(mirror_files(&data, data.clone())).await;
    let tmp = tempfile::tempdir().unwrap();
    let (first, _) = run(&request(mirror.clone(), tmp.path())).await;
    assert!(!first.unwrap().reused);

    // Mirror reachable: the kept copy is checked and reused.
    let (again, _) = run(&request(mirror, tmp.path())).await;
    assert_ok(&again.unwrap(), &data, true);

    // Mirror unreachable: a closed port.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (offline, lines) = run(&request(format!("http://127.0.0.1:{port}"), tmp.path())).await;
    let v = offline.unwrap();
    assert_ok(&v, &data, true);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("verified SHA512, BLAKE2B of the kept")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obtain_downloads_again_when_kept_copy_is_corrupt() {
    let data = payload();
    let mirror = serve(mirror_files(&data, data.clone())).await;
    let tmp = tempfile::tempdir().unwrap();
    let (first, _) = run(&request(mirror.clone(), tmp.path())).await;
    let kept = first.unwrap().tarball;
    let mut bytes = std::fs::read(&kept).unwrap();
    bytes[5] ^= 1;
    std::fs::write(&kept, bytes).unwrap();
    let (again, lines) = run(&request(mirror, tmp.path())).await;
    assert_ok(&again.unwrap(), &data, false);
    assert!(lines.iter().any(|l| l.contains("not usable")), "{lines:#?}");
}

#[tokio::test]
async fn obtain_offline_without_kept_copy_reports_the_mirror_error() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let tmp = tempfile::tempdir().unwrap();
    let (result, _) = run(&request(format!("http://127.0.0.1:{port}"), tmp.path())).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Stage3Error::Network { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obtain_http_status_error_names_url_and_status() {
    let mirror = serve(HashMap::new()).await;
    let tmp = tempfile::tempdir().unwrap();
    let (result, _) = run(&request(mirror.clone(), tmp.path())).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, Stage3Error::HttpStatus { status: 404, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "{mirror}/releases/amd64/autobuilds/latest-stage3-{FLAVOR}.txt"
        )),
        "{msg}"
    );
    assert!(msg.contains("HTTP 404"), "{msg}");
}

#[tokio::test]
async fn obtain_without_digests_for_the_tarball_is_an_error() {
    let data = payload();
    let tmp = tempfile::tempdir().unwrap();
    let mut files = mirror_files(&data, data.clone());
    let key = format!("{}/{STAMP}/{}.DIGESTS", dir_url(), tar_name());
    files.insert(key, clearsign("# SHA512 HASH\n").into_bytes());
    let mirror = file_mirror(&tmp.path().join("mirror"), &files);
    let distfiles = tmp.path().join("distfiles");
    let (result, _) = run(&request(mirror, &distfiles)).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Stage3Error::NoDigests { .. }), "{err}");
    assert!(err.to_string().contains(".DIGESTS"), "{err}");
    assert_eq!(listing(&distfiles), Vec::<String>::new());
}

#[tokio::test]
async fn obtain_refuses_unusable_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let (r, _) = run(&request("ftp://example.org".into(), tmp.path())).await;
    assert!(matches!(r, Err(Stage3Error::BadMirror { .. })), "{r:?}");
    let (r, _) = run(&request("file://relative/x".into(), tmp.path())).await;
    assert!(matches!(r, Err(Stage3Error::BadMirror { .. })), "{r:?}");
    let mut req = request("http://127.0.0.1:1".into(), tmp.path());
    req.flavor = "../x".into();
    let (r, _) = run(&req).await;
    assert!(matches!(r, Err(Stage3Error::BadRequest { .. })), "{r:?}");
}

#[test]
fn obtain_future_is_send() {
    fn is_send<T: Send>(_: &T) {}
    let req = request("http://127.0.0.1:1".into(), Path::new("/nonexistent"));
    let mut progress = |_: String| {};
    let fut = obtain(&req, &mut progress);
    is_send(&fut);
}
