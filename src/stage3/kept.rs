//! Tarballs kept in distfiles by an earlier run: check one against its kept `.DIGESTS` in a
//! single read, find the newest kept one when the mirror cannot be reached, and delete a
//! kept copy that fails its check.
//!
//! Not for: downloading (`fetch.rs`).

use std::path::Path;

use tokio::io::AsyncReadExt;

use super::digests::check;
use super::hashing::Hasher;
use super::index::trusted_text;
use super::mirror::read_text_file;
use super::progress::{Meter, Progress};
use super::request::{say_signed, with_suffix, CHUNK};
use super::{parse_digests, Request, SignatureVerifier, Stage3Error, Verified};

/// Checks a kept tarball against its kept DIGESTS in one read (and against the size the index
/// lists, when known). Deletes nothing; the caller decides.
pub(super) async fn verify_kept(
    tarball: &Path,
    digests_file: &Path,
    listed: Option<(u64, &str)>,
    verifier: Option<&dyn SignatureVerifier>,
    progress: Progress<'_>,
) -> Result<Verified, Stage3Error> {
    let location = digests_file.display().to_string();
    let text = read_text_file(digests_file).await?;
    let file_name = tarball.file_name().unwrap_or_default().to_string_lossy();
    let (signed, signer) = trusted_text(&text, &location, verifier)?;
    say_signed(&location, signer, progress);
    let expected = parse_digests(&signed, &file_name).map_err(|e| e.at(&location))?;
    // The detached signature kept with the tarball, checked on the same single read.
    let asc_file = with_suffix(tarball, ".asc");
    let asc_location = asc_file.display().to_string();
    let mut detached = match verifier {
        Some(v) if tokio::fs::symlink_metadata(&asc_file).await.is_ok() => {
            let armored = read_text_file(&asc_file).await?;
            Some(v.start_detached(&armored, &asc_location)?)
        }
        _ => None,
    };
    let read_err = |e| Stage3Error::io("read", tarball, e);
    let mut file = tokio::fs::File::open(tarball).await.map_err(read_err)?;
    let len = file.metadata().await.map_err(read_err)?.len();
    if let Some((size, index_url)) = listed {
        if len != size {
            return Err(Stage3Error::SizeMismatch {
                location: index_url.to_string(),
                expected: size,
                got: len,
                path: tarball.to_path_buf(),
            });
        }
    }
    progress(format!("stage3: checking the kept {}", tarball.display()));
    let sha512_state = detached.as_ref().is_some_and(|d| d.wants_sha512());
    let mut hasher = Hasher::new(&expected, sha512_state);
    let mut meter = Meter::new("checking ", len, 0, false);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).await.map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(d) = detached.as_mut().filter(|d| !d.wants_sha512()) {
            d.update(&buf[..n]);
        }
        meter.tick(hasher.len(), progress);
    }
    meter.finish();
    let size = hasher.len();
    let (got, sha512_state) = hasher.finish(&expected);
    let checked = check(&expected, &got, tarball)?;
    if let Some(d) = detached {
        say_signed(&asc_location, Some(d.finish(sha512_state)?), progress);
    }
    progress(format!(
        "stage3: verified {} of the kept {}",
        checked.join(", "),
        tarball.display()
    ));
    Ok(Verified {
        tarball: tarball.to_path_buf(),
        size,
        sha512: got.sha512,
        blake2b: got.blake2b,
        reused: true,
    })
}

/// The newest kept `stage3-<flavor>-<stamp>.tar.xz` with its `.DIGESTS` that passes its
/// check; failing copies are deleted. `None` when there is none.
pub(super) async fn newest_kept(
    req: &Request,
    verifier: Option<&dyn SignatureVerifier>,
    progress: Progress<'_>,
) -> Result<Option<Verified>, Stage3Error> {
    let list_err = |e| Stage3Error::io("list", &req.distfiles, e);
    let mut dir = match tokio::fs::read_dir(&req.distfiles).await {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(list_err(e)),
    };
    let prefix = format!("stage3-{}-", req.flavor);
    let mut found = Vec::new();
    while let Some(entry) = dir.next_entry().await.map_err(list_err)? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stamp = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tar.xz"));
        if let Some(stamp) = stamp.filter(|s| is_stamp(s)) {
            found.push((stamp.to_string(), name.to_string()));
        }
    }
    found.sort_unstable_by(|a, b| b.cmp(a));
    for (_, name) in found {
        let tarball = req.distfiles.join(name);
        let digests_file = with_suffix(&tarball, ".DIGESTS");
        if tokio::fs::symlink_metadata(&digests_file).await.is_err() {
            continue;
        }
        match verify_kept(&tarball, &digests_file, None, verifier, progress).await {
            Ok(kept) => return Ok(Some(kept)),
            Err(e @ Stage3Error::Io { .. }) => return Err(e),
            Err(e) => {
                progress(format!("stage3: the kept copy is not usable ({e})"));
                discard(&tarball, &digests_file).await?;
            }
        }
    }
    Ok(None)
}

/// `YYYYMMDDTHHMMSSZ`.
fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

/// Deletes a kept tarball, its DIGESTS and its `.asc` (missing files are fine).
pub(super) async fn discard(tarball: &Path, digests_file: &Path) -> Result<(), Stage3Error> {
    for path in [tarball, digests_file, &with_suffix(tarball, ".asc")] {
        match tokio::fs::remove_file(path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Stage3Error::io("delete", path, e));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_stamp_takes_only_release_stamps() {
        assert!(super::is_stamp("20260811T083102Z"));
        assert!(!super::is_stamp("hardened-20260811T083102Z"));
        assert!(!super::is_stamp("20260811T083102"));
        assert!(!super::is_stamp("2026081xT083102Z"));
        assert!(!super::is_stamp("é0260811T08310Z"));
    }
}
