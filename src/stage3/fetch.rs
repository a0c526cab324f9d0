//! Obtaining a verified stage3 tarball: read the mirror's index, fetch the `.DIGESTS`,
//! download the tarball while hashing it, and keep it in distfiles only once every listed
//! digest and the listed size match. A tarball kept by an earlier run is checked again and
//! reused without downloading.
//!
//! Mirrors are `http://`, `https://` (reqwest, streamed) or `file:///` (read in chunks).
//! Not for: extraction ([`super::extract`]) or OpenPGP checks ([`super::SignatureVerifier`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufWriter};

use super::digests::{check, Hasher};
use super::index::trusted_text;
use super::kept::{discard, newest_kept, verify_kept};
use super::mirror::Mirror;
use super::{parse_digests, parse_latest, Digests, SignatureVerifier, Stage3Error};

/// Where to get a stage3 from and where to keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Mirror root, e.g. `https://gentoo.osuosl.org`, `http://127.0.0.1:8080` or
    /// `file:///srv/mirror`; a trailing `/` is allowed.
    pub mirror: String,
    /// Gentoo release arch, e.g. `amd64` (letters, digits, `._+-`).
    pub arch: String,
    /// Stage3 flavor, e.g. `amd64-musl-hardened` (letters, digits, `._+-`).
    pub flavor: String,
    /// Directory where verified tarballs and their `.DIGESTS` are kept (created if missing).
    pub distfiles: PathBuf,
}

/// A verified tarball on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `<distfiles>/<file name>`.
    pub tarball: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// SHA512 (lower-case hex), when the DIGESTS list one (then it was checked).
    pub sha512: Option<String>,
    /// BLAKE2B-512 (lower-case hex), when the DIGESTS list one (then it was checked).
    pub blake2b: Option<String>,
    /// `true` when a copy kept by an earlier run was checked and used, nothing downloaded.
    pub reused: bool,
}

/// Read buffer and write buffer size, in bytes.
pub(super) const CHUNK: usize = 1 << 20;
/// At most one progress line per this interval while bytes flow.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Receives human-readable progress lines.
pub(super) type Progress<'a> = &'a mut (dyn FnMut(String) + Send);

/// Fetches `latest-stage3-<flavor>.txt`, downloads the tarball it lists and its `.DIGESTS`
/// into `req.distfiles`, and checks the listed size and every listed digest (SHA512,
/// BLAKE2B-512) on the bytes as they arrive. The tarball is written to `<name>.partial` and
/// renamed to `<name>` only after the checks pass; on any failure the partial file is deleted.
///
/// When `<name>` and `<name>.DIGESTS` already exist in distfiles, the kept tarball is checked
/// against the kept DIGESTS and reused (`reused: true`); if it fails, it is deleted and
/// downloaded again. When the index cannot be fetched at all (mirror unreachable), the newest
/// kept `stage3-<flavor>-<stamp>.tar.xz` that passes its check is used instead.
///
/// OpenPGP signatures are **not** checked (see [`obtain_with_verifier`]): only the signed part
/// of each clear-signed text is parsed, and a progress line says so. `progress` receives lines
/// such as `stage3: fetching <url>`, `stage3: 120/496 MiB`, `stage3: verified SHA512, BLAKE2B`,
/// at most a few per second.
///
/// Errors: every [`Stage3Error`] kind of fetching and checking: `BadRequest`, `BadMirror`,
/// `Network`, `HttpStatus`, `Io`, the parse errors, `SizeMismatch`, `DigestMismatch`.
pub async fn obtain(
    req: &Request,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Verified, Stage3Error> {
    obtain_with_verifier(req, None, progress).await
}

/// [`obtain`] with an optional OpenPGP verifier for the clear-signed index and DIGESTS (the
/// seam for the later signature issue). With `Some`, unsigned texts are refused and only the
/// text the verifier returns is parsed. `obtain` passes `None`.
///
/// Errors: as [`obtain`], plus `Unsigned` and `Signature` from the verifier.
pub async fn obtain_with_verifier(
    req: &Request,
    verifier: Option<&dyn SignatureVerifier>,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Verified, Stage3Error> {
    let mirror = Mirror::new(req)?;
    let index_url = mirror.url(&format!("latest-stage3-{}.txt", req.flavor));
    progress(format!("stage3: fetching {index_url}"));
    let index_text = match mirror.fetch_text(&index_url).await {
        Ok(text) => text,
        Err(err) => {
            progress(format!(
                "stage3: cannot read the index ({err}); looking for a kept stage3 in {}",
                req.distfiles.display()
            ));
            return match newest_kept(req, verifier, progress).await? {
                Some(kept) => Ok(kept),
                None => Err(err),
            };
        }
    };
    if verifier.is_none() {
        progress(
            "stage3: OpenPGP signatures are not checked (not implemented yet); using the \
             signed part of each text and the digests"
                .into(),
        );
    }
    let latest = parse_latest(&trusted_text(&index_text, &index_url, verifier)?)
        .map_err(|e| e.at(&index_url))?;
    let tarball = req.distfiles.join(&latest.file_name);
    let digests_file = with_suffix(&tarball, ".DIGESTS");
    if exists(&tarball).await && exists(&digests_file).await {
        let listed = Some((latest.size, index_url.as_str()));
        match verify_kept(&tarball, &digests_file, listed, verifier, progress).await {
            Ok(kept) => return Ok(kept),
            Err(e @ Stage3Error::Io { .. }) => return Err(e),
            Err(e) => {
                progress(format!(
                    "stage3: the kept copy is not usable ({e}); downloading again"
                ));
                discard(&tarball, &digests_file).await?;
            }
        }
    }

    let tar_url = mirror.url(&latest.rel_path);
    let digests_url = format!("{tar_url}.DIGESTS");
    progress(format!("stage3: fetching {digests_url}"));
    let digests_text = mirror.fetch_text(&digests_url).await?;
    let expected = parse_digests(
        &trusted_text(&digests_text, &digests_url, verifier)?,
        &latest.file_name,
    )
    .map_err(|e| e.at(&digests_url))?;

    tokio::fs::create_dir_all(&req.distfiles)
        .await
        .map_err(|e| Stage3Error::io("create directory", &req.distfiles, e))?;
    progress(format!("stage3: fetching {tar_url}"));
    let download = Download {
        url: &tar_url,
        index_url: &index_url,
        size: latest.size,
        expected: &expected,
        tarball: &tarball,
        partial: &with_suffix(&tarball, ".partial"),
    };
    let (got, checked) = download
        .keep(&mirror, &digests_file, &digests_text, progress)
        .await?;
    sync_dir(&req.distfiles).await;
    progress(format!("stage3: verified {}", checked.join(", ")));
    Ok(Verified {
        tarball,
        size: latest.size,
        sha512: got.sha512,
        blake2b: got.blake2b,
        reused: false,
    })
}

/// One tarball download into its `.partial` file.
struct Download<'a> {
    url: &'a str,
    index_url: &'a str,
    size: u64,
    expected: &'a Digests,
    tarball: &'a Path,
    partial: &'a Path,
}

impl Download<'_> {
    /// Downloads, checks every listed digest, writes the DIGESTS next to the tarball, then
    /// renames the partial file to its final name. On any failure the partial file is
    /// deleted. Returns the computed digests and the names of the checked kinds.
    async fn keep(
        &self,
        mirror: &Mirror,
        digests_file: &Path,
        digests_text: &str,
        progress: Progress<'_>,
    ) -> Result<(Digests, Vec<&'static str>), Stage3Error> {
        let result = async {
            let got = self.run(mirror, progress).await?;
            let checked = check(self.expected, &got, self.tarball)?;
            // The DIGESTS first: a tarball is only ever reused together with them.
            write_synced(digests_file, digests_text.as_bytes()).await?;
            tokio::fs::rename(self.partial, self.tarball)
                .await
                .map_err(|e| Stage3Error::io("rename to its final name", self.partial, e))?;
            Ok((got, checked))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(self.partial).await;
        }
        result
    }

    /// Streams the body into the partial file, hashing each chunk as it is written; stops as
    /// soon as more bytes arrive than listed. Returns the computed digests.
    async fn run(&self, mirror: &Mirror, progress: Progress<'_>) -> Result<Digests, Stage3Error> {
        let file = tokio::fs::File::create(self.partial)
            .await
            .map_err(|e| Stage3Error::io("create", self.partial, e))?;
        let mut out = BufWriter::with_capacity(CHUNK, file);
        let mut body = mirror.open(self.url).await?;
        let mut hasher = Hasher::new(self.expected);
        let mut meter = Meter::default();
        let write_err = |e| Stage3Error::io("write", self.partial, e);
        while let Some(chunk) = body.next().await? {
            let got = hasher.len() + chunk.len() as u64;
            if got > self.size {
                return Err(self.size_mismatch(got));
            }
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(write_err)?;
            meter.tick("", got, self.size, progress);
        }
        out.flush().await.map_err(write_err)?;
        out.into_inner().sync_all().await.map_err(write_err)?;
        if hasher.len() != self.size {
            return Err(self.size_mismatch(hasher.len()));
        }
        Ok(hasher.finish())
    }

    fn size_mismatch(&self, got: u64) -> Stage3Error {
        Stage3Error::SizeMismatch {
            location: self.index_url.to_string(),
            expected: self.size,
            got,
            path: self.tarball.to_path_buf(),
        }
    }
}

/// Rate-limited "done/total" progress lines.
#[derive(Default)]
pub(super) struct Meter {
    last: Option<Instant>,
}

impl Meter {
    pub(super) fn tick(&mut self, verb: &str, done: u64, total: u64, progress: Progress<'_>) {
        if self.last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        const MIB: u64 = 1 << 20;
        let amount = if total >= MIB {
            format!("{}/{} MiB", done / MIB, total / MIB)
        } else {
            format!("{done}/{total} bytes")
        };
        progress(format!("stage3: {verb}{amount}"));
    }
}

/// `path` with `suffix` appended to its file name.
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
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
