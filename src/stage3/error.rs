//! The error type of the stage3 module: every failure of fetching, verifying and extracting
//! a stage3, each with a whole message (what failed, where, what to do next).
//!
//! Not for: errors of the commands that call this module; they wrap [`Stage3Error`] with
//! `anyhow::Context` at the command edge.

use std::path::PathBuf;

/// What the user can do when a mirror or a download is at fault.
const TRY_MIRROR: &str = "try again later or pick another mirror with TARBALL_MIRROR";

/// Every failure of the stage3 module. `Display` gives a complete sentence: what, where (URL
/// or path), and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Stage3Error {
    /// The [`Request`](super::Request) itself is unusable (empty arch, a `/` in the flavor...).
    #[error("stage3 request: {reason}; fix the stage3 arch/flavor options")]
    BadRequest {
        /// What is wrong.
        reason: String,
    },

    /// The mirror is not an `http://`, `https://` or `file:///` URL.
    #[error(
        "stage3 mirror {mirror:?} is not usable: {reason}; give an http://, https:// or \
         file:///absolute/path URL with TARBALL_MIRROR"
    )]
    BadMirror {
        /// The mirror as given.
        mirror: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// The extraction was stopped on request (the run was stopped); `dest` is the partial
    /// directory, removed.
    #[error("stage3: the extraction into {dest} was stopped; its partial directory was removed")]
    Stopped {
        /// The partial directory.
        dest: PathBuf,
    },

    /// A network transfer failed (connect, TLS, timeout, broken stream).
    #[error("stage3: could not fetch {url}: {detail}; check the network, or {TRY_MIRROR}")]
    Network {
        /// The URL being fetched.
        url: String,
        /// The error and its causes, joined with `: `.
        detail: String,
    },

    /// The server answered with a status other than 2xx.
    #[error(
        "stage3: {url} answered HTTP {status}; check the stage3 arch and flavor options \
         (the file may not exist for them), or {TRY_MIRROR}"
    )]
    HttpStatus {
        /// The URL being fetched.
        url: String,
        /// The HTTP status code.
        status: u16,
    },

    /// A small text file (index or DIGESTS) is larger than any genuine one.
    #[error("stage3: {location} is larger than {limit} bytes, not a genuine index; {TRY_MIRROR}")]
    TooLarge {
        /// URL or path of the text.
        location: String,
        /// The limit in bytes.
        limit: u64,
    },

    /// A text file is not UTF-8.
    #[error("stage3: {location} is not UTF-8 text; {TRY_MIRROR}")]
    NotText {
        /// URL or path of the text.
        location: String,
    },

    /// A `latest-stage3-<flavor>.txt` line could not be understood.
    #[error("stage3 index {location} line {line}: {reason}; {TRY_MIRROR}")]
    BadIndex {
        /// URL or path of the index (`latest-stage3 index` when parsed without one).
        location: String,
        /// 1-based line number inside the parsed (signed) text.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },

    /// The index lists no `.tar.xz` file.
    #[error(
        "stage3 index {location} lists no .tar.xz file; check the stage3 flavor, or {TRY_MIRROR}"
    )]
    NoTarball {
        /// URL or path of the index.
        location: String,
    },

    /// A clear-signed text is malformed (no blank line after the armor headers, or no
    /// signature block).
    #[error("stage3: {location} looks clear-signed but is malformed ({reason}); {TRY_MIRROR}")]
    BadSignedText {
        /// URL or path of the text.
        location: String,
        /// What is missing.
        reason: String,
    },

    /// A signature verifier is in use but the text is not clear-signed.
    #[error("stage3: {location} is not clear-signed, so it cannot be verified; {TRY_MIRROR}")]
    Unsigned {
        /// URL or path of the text.
        location: String,
    },

    /// The signature verifier rejected a text.
    #[error("stage3: the OpenPGP signature of {location} is not valid: {reason}; {TRY_MIRROR}")]
    Signature {
        /// URL or path of the text.
        location: String,
        /// The verifier's explanation.
        reason: String,
    },

    /// The trusted OpenPGP key file does not exist.
    #[error(
        "stage3: the OpenPGP key file {path} does not exist, so the release signatures cannot \
         be checked; on Gentoo run `emerge sec-keys/openpgp-keys-gentoo-release`, elsewhere \
         download Gentoo's release key from https://www.gentoo.org/downloads/signatures/ and \
         check that its fingerprint is 13EBBDBEDE7A12775DFDB1BABB572E0E2D182910, then point \
         the starter option openpgp_key (or BH_OPENPGP_KEY) at it; to go on without \
         signatures (digests only) pass --no-verify-signatures"
    )]
    NoKeyFile {
        /// The key file looked for.
        path: PathBuf,
    },

    /// The trusted OpenPGP key file holds no usable public key.
    #[error(
        "stage3: the OpenPGP key file {path} is not usable: {reason}; replace it with Gentoo's \
         armored release key (fingerprint 13EBBDBEDE7A12775DFDB1BABB572E0E2D182910)"
    )]
    BadKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A DIGESTS line for the tarball could not be understood, or two lines disagree.
    #[error("stage3 digests {location} line {line}: {reason}; {TRY_MIRROR}")]
    BadDigests {
        /// URL or path of the DIGESTS file (`DIGESTS text` when parsed without one).
        location: String,
        /// 1-based line number inside the parsed (signed) text.
        line: usize,
        /// What is wrong.
        reason: String,
    },

    /// The DIGESTS file lists neither a SHA512 nor a BLAKE2B digest for the tarball.
    #[error(
        "stage3 digests {location} list no SHA512 or BLAKE2B digest for {file_name}; an \
         unverifiable tarball is never used; {TRY_MIRROR}"
    )]
    NoDigests {
        /// URL or path of the DIGESTS file.
        location: String,
        /// The tarball's base name.
        file_name: String,
    },

    /// The tarball's size differs from the size the index lists.
    #[error(
        "stage3 size mismatch: {location} lists {expected} bytes, got {got} for {path}; the \
         download was deleted; {TRY_MIRROR}"
    )]
    SizeMismatch {
        /// URL of the index that lists the size.
        location: String,
        /// Listed size in bytes.
        expected: u64,
        /// Received size in bytes (when the transfer was stopped because it ran past the
        /// listed size: the bytes received until then).
        got: u64,
        /// The deleted partial file.
        path: PathBuf,
    },

    /// A digest of the tarball differs from the DIGESTS file.
    #[error(
        "stage3 digest mismatch for {path}: {algo} expected {expected} got {got}; the download \
         was deleted; try again or pick another mirror with TARBALL_MIRROR"
    )]
    DigestMismatch {
        /// The tarball (its final name; the file itself was deleted).
        path: PathBuf,
        /// `SHA512` or `BLAKE2B`.
        algo: &'static str,
        /// Lower-case hex from the DIGESTS file.
        expected: String,
        /// Lower-case hex computed from the bytes.
        got: String,
    },

    /// A local file operation failed.
    #[error(
        "stage3: cannot {action} {path}: {source}; check the path, its permissions and free space"
    )]
    Io {
        /// What was being done (`create`, `write`, `rename ... to`...).
        action: String,
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// The extraction destination already exists.
    #[error(
        "stage3: cannot extract into {dest}: it already exists; remove it or choose another \
         destination"
    )]
    DestExists {
        /// The destination directory.
        dest: PathBuf,
    },

    /// The archive could not be read (corrupt xz or tar data).
    #[error(
        "stage3 archive {tarball} is unreadable{at}: {source}; nothing was extracted; delete \
         the tarball and download it again"
    )]
    Archive {
        /// The tarball.
        tarball: PathBuf,
        /// ` at entry <path>` when known, else empty.
        at: String,
        /// The read error.
        source: std::io::Error,
    },

    /// An archive entry would escape the destination, write through a symlink, or is of a
    /// kind that cannot be extracted safely.
    #[error(
        "stage3 archive {tarball} has an unsafe entry {entry:?}: {reason}; refused, nothing \
         was extracted; this is not a genuine stage3: delete it and download again"
    )]
    Unsafe {
        /// The tarball.
        tarball: PathBuf,
        /// The entry's path as stored in the archive.
        entry: String,
        /// Why it is refused.
        reason: String,
    },

    /// Creating or setting up one extracted file failed.
    #[error(
        "stage3: extracting {entry:?} from {tarball} failed: cannot {action} {path}: {source}; \
         nothing was extracted; check free space and that the destination filesystem supports \
         device nodes and extended attributes"
    )]
    Extract {
        /// The tarball.
        tarball: PathBuf,
        /// The entry's path as stored in the archive.
        entry: String,
        /// What was being done.
        action: String,
        /// The path on disk.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Stage3Error {
    /// True when the build machine's environment failed (the network, a server error, local
    /// I/O, the destination filesystem refusing an extracted entry) rather than the input
    /// (mirror, options, a file that does not verify, an unreadable or unsafe archive): the
    /// command then exits 1 instead of 2 (`src/error.rs`).
    pub fn is_environment(&self) -> bool {
        match self {
            Stage3Error::Network { .. } | Stage3Error::Io { .. } | Stage3Error::Extract { .. } => {
                true
            }
            Stage3Error::HttpStatus { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Replaces the generic location a pure parser put into its error with the URL or path the
    /// text came from.
    pub(crate) fn at(mut self, where_: &str) -> Self {
        match &mut self {
            Stage3Error::BadIndex { location, .. }
            | Stage3Error::NoTarball { location }
            | Stage3Error::BadSignedText { location, .. }
            | Stage3Error::BadDigests { location, .. }
            | Stage3Error::NoDigests { location, .. } => *location = where_.to_string(),
            _ => {}
        }
        self
    }

    /// Builds an [`Stage3Error::Io`].
    pub(crate) fn io(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Stage3Error::Io {
            action: action.into(),
            path: path.into(),
            source,
        }
    }
}

/// Joins an error and its chain of sources with `: ` (reqwest's own message says only
/// "error sending request").
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
