//! Downloading one tarball into its `.partial` file so that a bad link costs little: the
//! bytes are hashed (SHA512, BLAKE2B-512, and the detached OpenPGP signature when there is
//! one) as they arrive; a transfer cut short is resumed with an HTTP `Range` request after a
//! growing pause; a `.partial` left by an interrupted earlier run is read once through the
//! hashes and resumed too.
//!
//! Not for: choosing the mirror or the file (`fetch.rs`), keeping the result (`fetch.rs`).

use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

use super::hashing::Hasher;
use super::index::DetachedCheck;
use super::mirror::Mirror;
use super::progress::{Meter, Progress};
use super::request::CHUNK;
use super::{Digests, SignatureVerifier, Stage3Error};

/// Transfer attempts per mirror (the first one and the retries).
pub(super) const ATTEMPTS: u32 = 4;
/// Bytes written between two write-back starts ([`start_write_back`]).
const WRITE_BACK: u64 = 32 << 20;
/// Pause before the first retry; doubled before each further one.
pub(super) const BACKOFF: Duration = Duration::from_millis(500);

/// A detached signature of the tarball to check while downloading.
#[derive(Clone, Copy)]
pub(super) struct DetachedSig<'a> {
    pub(super) armored: &'a str,
    pub(super) location: &'a str,
    pub(super) verifier: &'a dyn SignatureVerifier,
}

/// One tarball download into its `.partial` file.
pub(super) struct Download<'a> {
    pub(super) url: &'a str,
    pub(super) index_url: &'a str,
    /// Listed size in bytes.
    pub(super) size: u64,
    pub(super) expected: &'a Digests,
    pub(super) tarball: &'a Path,
    pub(super) partial: &'a Path,
    pub(super) signature: Option<DetachedSig<'a>>,
    /// Draw an indicatif bar on a terminal (plain mode) instead of progress lines.
    pub(super) bar: bool,
}

/// The running checks of the bytes in the partial file.
pub(super) struct Checks {
    pub(super) hasher: Hasher,
    pub(super) signature: Option<Box<dyn DetachedCheck>>,
}

impl Checks {
    fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        if let Some(sig) = self.signature.as_mut().filter(|s| !s.wants_sha512()) {
            sig.update(chunk);
        }
    }
}

impl Download<'_> {
    fn fresh_checks(&self) -> Result<Checks, Stage3Error> {
        let signature = match self.signature {
            Some(s) => Some(s.verifier.start_detached(s.armored, s.location)?),
            None => None,
        };
        let sha512_state = signature.as_ref().is_some_and(|s| s.wants_sha512());
        Ok(Checks {
            hasher: Hasher::new(self.expected, sha512_state),
            signature,
        })
    }

    /// Fills the partial file up to the listed size, resuming after interruptions, and
    /// returns the running checks over all its bytes. Retries transient failures (network
    /// errors, HTTP 408/429/5xx, a body cut short) up to [`ATTEMPTS`] times.
    ///
    /// Errors: the last transient error once the attempts are used up (a body cut short
    /// becomes `SizeMismatch`), any other error at once. The partial file is left in place;
    /// the caller decides whether to keep it.
    pub(super) async fn run(
        &self,
        mirror: &Mirror,
        progress: Progress<'_>,
    ) -> Result<Checks, Stage3Error> {
        let write_err = |e| Stage3Error::io("write", self.partial, e);
        let mut file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.partial)
            .await
            .map_err(write_err)?;
        let mut checks = self.fresh_checks()?;
        self.reuse_partial(&mut file, &mut checks, progress).await?;
        let mut attempt = 1;
        loop {
            let result = self
                .transfer(mirror, &mut file, &mut checks, progress)
                .await;
            let done = checks.hasher.len();
            let err = match result {
                Ok(()) if done == self.size => break,
                Ok(()) => self.size_mismatch(done),
                Err(e) => e,
            };
            if !transient(&err) || attempt >= ATTEMPTS {
                return Err(err);
            }
            let pause = BACKOFF * 2u32.pow(attempt - 1);
            progress(format!(
                "stage3: the transfer stopped at {done} of {} bytes ({err}); attempt {} of \
                 {ATTEMPTS} in {:.1} s, resuming from byte {done}",
                self.size,
                attempt + 1,
                pause.as_secs_f64()
            ));
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
        file.sync_all().await.map_err(write_err)?;
        Ok(checks)
    }

    /// Feeds the bytes a `.partial` of an earlier run holds through the checks (one read),
    /// so the transfer resumes after them; a partial larger than listed is emptied.
    async fn reuse_partial(
        &self,
        file: &mut tokio::fs::File,
        checks: &mut Checks,
        progress: Progress<'_>,
    ) -> Result<(), Stage3Error> {
        let read_err = |e| Stage3Error::io("read", self.partial, e);
        let len = file.metadata().await.map_err(read_err)?.len();
        if len == 0 {
            return Ok(());
        }
        if len > self.size {
            file.set_len(0).await.map_err(read_err)?;
            return Ok(());
        }
        progress(format!(
            "stage3: resuming the partial download {} ({len} of {} bytes)",
            self.partial.display(),
            self.size
        ));
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf).await.map_err(read_err)?;
            if n == 0 {
                return Ok(());
            }
            checks.update(&buf[..n]);
        }
    }

    /// One request from the current length of the partial file to the end of the body.
    async fn transfer(
        &self,
        mirror: &Mirror,
        file: &mut tokio::fs::File,
        checks: &mut Checks,
        progress: Progress<'_>,
    ) -> Result<(), Stage3Error> {
        let write_err = |e| Stage3Error::io("write", self.partial, e);
        let offset = checks.hasher.len();
        let (mut body, resumed) = mirror.open_from(self.url, offset).await?;
        if !resumed {
            if offset > 0 {
                progress(format!(
                    "stage3: {} does not resume downloads; starting again from byte 0",
                    self.url
                ));
            }
            *checks = self.fresh_checks()?;
            file.set_len(0).await.map_err(write_err)?;
        }
        file.seek(std::io::SeekFrom::Start(checks.hasher.len()))
            .await
            .map_err(write_err)?;
        let fd = file.as_raw_fd();
        let mut out = BufWriter::with_capacity(CHUNK, &mut *file);
        let mut meter = Meter::new("", self.size, checks.hasher.len(), self.bar);
        let mut written_back = checks.hasher.len();
        let result = async {
            while let Some(chunk) = body.next().await? {
                let got = checks.hasher.len() + chunk.len() as u64;
                if got > self.size {
                    return Err(self.size_mismatch(got));
                }
                checks.update(&chunk);
                out.write_all(&chunk).await.map_err(write_err)?;
                meter.tick(got, progress);
                if got - written_back >= WRITE_BACK {
                    out.flush().await.map_err(write_err)?;
                    start_write_back(fd, written_back, got - written_back);
                    written_back = got;
                }
            }
            Ok(())
        }
        .await;
        meter.finish();
        // Whatever arrived is kept: the next attempt resumes after it.
        out.flush().await.map_err(write_err)?;
        result
    }

    pub(super) fn size_mismatch(&self, got: u64) -> Stage3Error {
        Stage3Error::SizeMismatch {
            location: self.index_url.to_string(),
            expected: self.size,
            got,
            path: self.tarball.to_path_buf(),
        }
    }
}

/// Starts writing `len` bytes at `offset` of the file `fd` to disk without waiting
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the final fsync finds little left to do
/// and the download's end is not held up by flushing the whole file. Best effort: errors
/// are ignored (the final fsync reports real ones).
fn start_write_back(fd: RawFd, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: `fd` is the open partial file, borrowed by the caller for this call; the
    // kernel only reads the arguments; no memory is passed.
    unsafe {
        libc::sync_file_range(fd, offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Whether trying again may help: network errors, HTTP 408, 429 and 5xx, a body that ended
/// before the listed size.
pub(super) fn transient(err: &Stage3Error) -> bool {
    match err {
        Stage3Error::Network { .. } => true,
        Stage3Error::HttpStatus { status, .. } => {
            matches!(status, 408 | 429) || (500..600).contains(status)
        }
        Stage3Error::SizeMismatch { expected, got, .. } => got < expected,
        _ => false,
    }
}
