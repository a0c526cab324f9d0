//! Obtaining a verified stage3 tarball: read the mirror's index, fetch the `.DIGESTS`,
//! download the tarball while hashing it, and keep it in distfiles only once every listed
//! digest and the listed size match. A tarball kept by an earlier run is checked again and
//! reused without downloading.
//!
//! Mirrors are `http://`, `https://` (reqwest, streamed) or `file:///` (read in chunks),
//! several tried in order. Not for: extraction ([`super::extract`]), the transfer itself
//! (`download.rs`) or OpenPGP checks ([`super::SignatureVerifier`]).

use std::path::Path;

use tokio::io::AsyncWriteExt;

use super::digests::check;
use super::download::{DetachedSig, Download};
use super::index::trusted_text;
use super::kept::{discard, newest_kept, verify_kept};
use super::mirror::Mirror;
use super::progress::Progress;
use super::request::{say_signed, with_suffix, Request, Verified};
use super::signed::{signed_files, SignedFiles};
use super::{parse_latest, Digests, SignatureVerifier, Stage3Error};

/// Fetches `latest-stage3-<flavor>.txt`, downloads the tarball it lists and its `.DIGESTS`
/// into `req.distfiles`, and checks the listed size and every listed digest (SHA512,
/// BLAKE2B-512) on the bytes as they arrive, **without** OpenPGP signatures (only the signed
/// part of each clear-signed text is parsed; a progress line says the signatures were not
/// checked). Same as [`obtain_with_verifier`] with `None`; see there.
pub async fn obtain(
    req: &Request,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Verified, Stage3Error> {
    obtain_with_verifier(req, None, progress).await
}

/// Obtains a verified stage3: tries each mirror of `req.mirror` (space-separated) in order
/// and keeps the first verified tarball; when no mirror can even serve the index, uses the
/// newest kept copy in distfiles that still verifies (offline reuse).
///
/// From one mirror: fetches `latest-stage3-<flavor>.txt` and the `.DIGESTS` it implies, and
/// with a `verifier` checks their OpenPGP signatures (the pre-2022 `.DIGESTS.asc` when the
/// `.DIGESTS` is not clear-signed) and parses only the signed text. The tarball goes to
/// `<name>.partial` while SHA512, BLAKE2B-512 and (with a verifier, when the mirror has a
/// `<name>.asc`) its detached signature are computed on the arriving bytes; transfers cut
/// short are resumed with HTTP `Range` (see `download.rs`). Only when the size, every digest
/// and every signature match is the `.DIGESTS` (and `.asc`) written next to it and the
/// partial renamed to `<name>`. A tarball kept by an earlier run is checked again (digests and
/// signatures) and reused (`reused: true`); if it fails, it is deleted and downloaded again.
///
/// `progress` receives lines such as `stage3: fetching <url>`, `stage3: 120/496 MiB, 95.1
/// MiB/s, ETA 4 s`, `stage3: good signature on <url> by subkey <fpr> of key <fpr>`.
///
/// Errors: every [`Stage3Error`] kind of fetching and checking (`BadRequest`, `BadMirror`,
/// `Network`, `HttpStatus`, `Io`, the parse errors, `Unsigned`, `Signature`, `SizeMismatch`,
/// `DigestMismatch`); with several mirrors, the error of the last one tried.
pub async fn obtain_with_verifier(
    req: &Request,
    verifier: Option<&dyn SignatureVerifier>,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Verified, Stage3Error> {
    let roots: Vec<&str> = req.mirror.split_whitespace().collect();
    if verifier.is_none() {
        progress(
            "stage3: WARNING: OpenPGP signatures are NOT checked (signature checking was \
             turned off); only the digests protect this download"
                .into(),
        );
    }
    let mut last = Stage3Error::BadMirror {
        mirror: req.mirror.clone(),
        reason: "no mirror given".into(),
    };
    let mut index_reached = false;
    for (i, root) in roots.iter().enumerate() {
        let mirror = Mirror::new(root, req)?;
        match from_mirror(req, &mirror, verifier, progress).await {
            Ok(v) => return Ok(v),
            Err((reached, e)) => {
                index_reached |= reached;
                if i + 1 < roots.len() {
                    progress(format!(
                        "stage3: mirror {root} failed ({e}); trying the next"
                    ));
                }
                last = e;
            }
        }
    }
    let err = last;
    if index_reached || roots.is_empty() {
        return Err(err);
    }
    progress(format!(
        "stage3: no mirror serves the index ({err}); looking for a kept stage3 in {}",
        req.distfiles.display()
    ));
    match newest_kept(req, verifier, progress).await? {
        Some(kept) => Ok(kept),
        None => Err(err),
    }
}

/// Obtains the stage3 from one mirror. The error comes with whether the index was read (if
/// not, the caller may fall back to a kept copy).
async fn from_mirror(
    req: &Request,
    mirror: &Mirror,
    verifier: Option<&dyn SignatureVerifier>,
    progress: Progress<'_>,
) -> Result<Verified, (bool, Stage3Error)> {
    let index_url = mirror.url(&format!("latest-stage3-{}.txt", req.flavor));
    progress(format!("stage3: fetching {index_url}"));
    let index_text = mirror
        .fetch_text(&index_url)
        .await
        .map_err(|e| (false, e))?;
    let reached = |e| (true, e);
    let (text, signer) = trusted_text(&index_text, &index_url, verifier).map_err(reached)?;
    say_signed(&index_url, signer, progress);
    let latest = parse_latest(&text)
        .map_err(|e| e.at(&index_url))
        .map_err(reached)?;
    let tarball = req.distfiles.join(&latest.file_name);
    let digests_file = with_suffix(&tarball, ".DIGESTS");
    if exists(&tarball).await && exists(&digests_file).await {
        let listed = Some((latest.size, index_url.as_str()));
        match verify_kept(&tarball, &digests_file, listed, verifier, progress).await {
            Ok(kept) => return Ok(kept),
            Err(e @ Stage3Error::Io { .. }) => return Err(reached(e)),
            Err(e) => {
                progress(format!(
                    "stage3: the kept copy is not usable ({e}); downloading again"
                ));
                discard(&tarball, &digests_file).await.map_err(reached)?;
            }
        }
    }
    let tar_url = mirror.url(&latest.rel_path);
    let files = signed_files(mirror, &tar_url, &latest.file_name, verifier, progress)
        .await
        .map_err(reached)?;
    tokio::fs::create_dir_all(&req.distfiles)
        .await
        .map_err(|e| reached(Stage3Error::io("create directory", &req.distfiles, e)))?;
    progress(format!("stage3: fetching {tar_url}"));
    let asc_url = format!("{tar_url}.asc");
    let signature = match (verifier, &files.asc) {
        (Some(verifier), Some(armored)) => Some(DetachedSig {
            armored,
            location: &asc_url,
            verifier,
        }),
        _ => None,
    };
    let download = Download {
        url: &tar_url,
        index_url: &index_url,
        size: latest.size,
        expected: &files.expected,
        tarball: &tarball,
        partial: &with_suffix(&tarball, ".partial"),
        signature,
        bar: req.progress_bar,
    };
    let got = keep(&download, mirror, &files, progress)
        .await
        .map_err(reached)?;
    sync_dir(&req.distfiles).await;
    Ok(Verified {
        tarball,
        size: latest.size,
        sha512: got.sha512,
        blake2b: got.blake2b,
        reused: false,
    })
}

/// Downloads, checks every listed digest and the detached signature, writes the DIGESTS (and
/// `.asc`) next to the tarball, then renames the partial file to its final name. The partial
/// file is kept after a network failure (the next run resumes it) and deleted after any
/// other failure. Returns the computed digests.
async fn keep(
    dl: &Download<'_>,
    mirror: &Mirror,
    files: &SignedFiles,
    progress: Progress<'_>,
) -> Result<Digests, Stage3Error> {
    let result = async {
        let checks = dl.run(mirror, progress).await?;
        let (got, sha512_state) = checks.hasher.finish(dl.expected);
        let checked = check(dl.expected, &got, dl.tarball)?;
        progress(format!("stage3: verified {}", checked.join(", ")));
        if let Some(sig) = checks.signature {
            let signer = sig.finish(sha512_state)?;
            say_signed(&format!("{}.asc", dl.url), Some(signer), progress);
        }
        // The DIGESTS first: a tarball is only ever reused together with them.
        let digests_file = with_suffix(dl.tarball, ".DIGESTS");
        write_synced(&digests_file, files.digests_text.as_bytes()).await?;
        let asc_file = with_suffix(dl.tarball, ".asc");
        match &files.asc {
            Some(asc) => write_synced(&asc_file, asc.as_bytes()).await?,
            None => {
                let _ = tokio::fs::remove_file(&asc_file).await;
            }
        }
        tokio::fs::rename(dl.partial, dl.tarball)
            .await
            .map_err(|e| Stage3Error::io("rename to its final name", dl.partial, e))?;
        Ok(got)
    }
    .await;
    match &result {
        Err(e @ Stage3Error::Network { .. }) => progress(format!(
            "stage3: kept {} to resume it next time ({e})",
            dl.partial.display()
        )),
        Err(_) => {
            let _ = tokio::fs::remove_file(dl.partial).await;
        }
        Ok(_) => {}
    }
    result
}

async fn exists(path: &Path) -> bool {
    tokio::fs::symlink_metadata(path).await.is_ok()
}

/// Writes `bytes` to `path` through `<path>.partial`, fsync and rename.
async fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Stage3Error> {
    let tmp = with_suffix(path, ".partial");
    let result = async {
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(bytes).await?;
        f.sync_all().await?;
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(Stage3Error::io("write", path, e));
    }
    Ok(())
}

/// Makes a rename in `dir` durable; best effort.
async fn sync_dir(dir: &Path) {
    if let Ok(d) = tokio::fs::File::open(dir).await {
        let _ = d.sync_all().await;
    }
}
