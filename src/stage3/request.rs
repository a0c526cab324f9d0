//! What a stage3 fetch is asked ([`Request`]) and gives back ([`Verified`]), and the small
//! rules its parts share: the buffer size, how a good signature is reported, the names of
//! the files kept beside a tarball.

use std::path::{Path, PathBuf};

use super::progress::Progress;

/// Where to get a stage3 from and where to keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Mirror roots, tried in order, separated by spaces, e.g. `https://gentoo.osuosl.org`,
    /// `http://127.0.0.1:8080` or `file:///srv/mirror`; a trailing `/` is allowed.
    pub mirror: String,
    /// Gentoo release arch, e.g. `amd64` (letters, digits, `._+-`).
    pub arch: String,
    /// Stage3 flavor, e.g. `amd64-musl-hardened` (letters, digits, `._+-`).
    pub flavor: String,
    /// Directory where verified tarballs and their `.DIGESTS` are kept (created if missing).
    pub distfiles: PathBuf,
    /// Draw an indicatif progress bar on stderr when it is a terminal (plain mode) instead
    /// of progress lines.
    pub progress_bar: bool,
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

/// `path` with `suffix` appended to its file name.
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Says who signed `location`, when it was verified.
pub(super) fn say_signed(location: &str, signer: Option<String>, progress: Progress<'_>) {
    if let Some(signer) = signer {
        progress(format!("stage3: good signature on {location} by {signer}"));
    }
}
