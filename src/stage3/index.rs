//! The release index `latest-stage3-<flavor>.txt` and the OpenPGP clear-signed wrapper it
//! shares with the `.DIGESTS` files (format: docs/mirror.md, RFC 4880
//! section 7).
//!
//! Pure text handling, no I/O, and the seam for OpenPGP verification ([`SignatureVerifier`],
//! implemented in `openpgp.rs`). Without a verifier (the user opted out), callers parse only
//! the signed part of a clear-signed text ([`signed_body`]) and say that the signature was
//! not checked.

use std::borrow::Cow;

use super::Stage3Error;

/// The first line of a clear-signed message.
const BEGIN_SIGNED: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
/// The line that ends the signed text of a clear-signed message.
const BEGIN_SIGNATURE: &str = "-----BEGIN PGP SIGNATURE-----";
/// Location used in errors of the pure parser; [`super::obtain`] replaces it with the URL.
const INDEX: &str = "latest-stage3 index";

/// The tarball a `latest-stage3-<flavor>.txt` index points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    /// Path relative to `<mirror>/releases/<arch>/autobuilds/`, e.g.
    /// `20260811T083102Z/stage3-amd64-openrc-20260811T083102Z.tar.xz`. Never absolute, never
    /// with `.` or `..` components; only ASCII letters, digits and `._+-` in each component.
    pub rel_path: String,
    /// The last component of `rel_path`: the tarball's file name.
    pub file_name: String,
    /// The directory part of `rel_path`, normally the build stamp `YYYYMMDDTHHMMSSZ`.
    pub stamp: String,
    /// The listed size of the tarball in bytes (always > 0).
    pub size: u64,
}

/// A clear-signed text whose signature was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Exactly the text the signature covers, dash-escaping undone, `\n` line breaks.
    pub text: String,
    /// Who signed it: `subkey <fingerprint> of key <fingerprint>` or `key <fingerprint>`
    /// (upper-case hex).
    pub signer: String,
}

/// OpenPGP verification of release files. The implementation is
/// [`OpenPgpVerifier`](super::OpenPgpVerifier); tests may supply others. An implementation
/// must accept signatures made by a signing subkey bound to the trusted primary key (the
/// Gentoo release key signs with a subkey; see the spec).
pub trait SignatureVerifier: Send + Sync {
    /// Verifies the clear-signed `text` fetched from `location` (URL or path, for messages)
    /// and returns the text the signature covers and the signer.
    ///
    /// Errors: [`Stage3Error::Signature`] when the signature is invalid, made by an untrusted,
    /// revoked or expired key, missing, or when text lies outside the signed part.
    fn verify_clearsigned(&self, text: &str, location: &str) -> Result<Signed, Stage3Error>;

    /// Starts checking the ASCII-armored detached signature `armored` (fetched from
    /// `location`) over a stream of bytes fed to the returned check.
    ///
    /// Errors: [`Stage3Error::Signature`] when `armored` is not a signature; errors of the
    /// check itself come from [`DetachedCheck::finish`].
    fn start_detached(
        &self,
        armored: &str,
        location: &str,
    ) -> Result<Box<dyn DetachedCheck>, Stage3Error>;
}

/// A detached signature being checked over the bytes of a file, fed in order, each byte
/// exactly once: either through [`DetachedCheck::update`], or (when
/// [`DetachedCheck::wants_sha512`]) as the running SHA512 state the caller computes anyway
/// for the DIGESTS, so the file is not hashed twice with SHA512.
pub trait DetachedCheck: Send {
    /// `true` when the caller must pass the SHA512 state over all bytes to
    /// [`DetachedCheck::finish`] instead of feeding [`DetachedCheck::update`].
    fn wants_sha512(&self) -> bool;
    /// Feeds the next bytes of the signed file (ignored when [`DetachedCheck::wants_sha512`]).
    fn update(&mut self, chunk: &[u8]);
    /// Ends the input and returns the signer (as [`Signed::signer`]); `sha512` is the SHA512
    /// state over every byte of the file, before finalisation.
    ///
    /// Errors: [`Stage3Error::Signature`] when the signature does not match the bytes, its
    /// key is not trusted, revoked or expired, or the SHA512 state it wants is missing.
    fn finish(self: Box<Self>, sha512: Option<sha2::Sha512>) -> Result<String, Stage3Error>;
}

/// Whether `text` contains a clear-signed message (a line `-----BEGIN PGP SIGNED
/// MESSAGE-----`, anywhere: text placed before it is never trusted either).
pub fn is_clearsigned(text: &str) -> bool {
    text.lines().any(|l| l.trim_end() == BEGIN_SIGNED)
}

/// The signed text of a clear-signed message: what lies between the blank line that ends the
/// armor headers (`Hash: SHA512`) and the line `-----BEGIN PGP SIGNATURE-----`, without the
/// line break before that line, with dash-escaping (`- ` at a line start) undone.
///
/// Returns `None` when `text` is not clear-signed or is malformed (no blank line after the
/// headers, no signature block). Borrowed when nothing needed unescaping. Text before the
/// `BEGIN PGP SIGNED MESSAGE` line or after the signature is ignored. This does **not**
/// verify the signature (see [`SignatureVerifier`]).
pub fn signed_body(text: &str) -> Option<Cow<'_, str>> {
    let mut lines = line_spans(text);
    lines.find(|&(s, e, _)| text[s..e].trim_end() == BEGIN_SIGNED)?;
    // Armor headers up to the first blank line.
    let (_, _, body_start) = lines.find(|&(s, e, _)| text[s..e].trim().is_empty())?;
    let (sig_start, _, _) = lines.find(|&(s, e, _)| text[s..e].trim_end() == BEGIN_SIGNATURE)?;
    let mut body = &text[body_start..sig_start];
    // The line break before the signature line is not part of the signed text.
    body = body.strip_suffix('\n').unwrap_or(body);
    body = body.strip_suffix('\r').unwrap_or(body);
    if !body.lines().any(|l| l.starts_with("- ")) {
        return Some(Cow::Borrowed(body));
    }
    let mut out = String::with_capacity(body.len());
    for line in body.split_inclusive('\n') {
        out.push_str(line.strip_prefix("- ").unwrap_or(line));
    }
    Some(Cow::Owned(out))
}

/// `(start, end without line break, start of next line)` of every line of `text`.
fn line_spans(text: &str) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let mut pos = 0;
    text.split_inclusive('\n').map(move |line| {
        let start = pos;
        pos += line.len();
        let content = line.strip_suffix('\n').unwrap_or(line);
        let content = content.strip_suffix('\r').unwrap_or(content);
        (start, start + content.len(), pos)
    })
}

/// The text a parser may trust: the signed part when `text` is clear-signed, else `text`.
///
/// Errors: [`Stage3Error::BadSignedText`] for a malformed clear-signed text (location
/// `generic`, replaced by callers that know the URL).
pub(crate) fn parsable<'a>(text: &'a str, generic: &str) -> Result<Cow<'a, str>, Stage3Error> {
    if !is_clearsigned(text) {
        return Ok(Cow::Borrowed(text));
    }
    signed_body(text).ok_or_else(|| Stage3Error::BadSignedText {
        location: generic.to_string(),
        reason: "no blank line after the armor headers or no signature block".into(),
    })
}

/// The text to hand to the parsers for a download from `location`, and its signer: with a
/// verifier, the text its signature covers (an unsigned text is refused); without one, the
/// text as it is and no signer (the parsers then take its signed part, unverified).
///
/// Errors: [`Stage3Error::Unsigned`], or the verifier's error.
pub(crate) fn trusted_text<'a>(
    text: &'a str,
    location: &str,
    verifier: Option<&dyn SignatureVerifier>,
) -> Result<(Cow<'a, str>, Option<String>), Stage3Error> {
    match verifier {
        None => Ok((Cow::Borrowed(text), None)),
        Some(_) if !is_clearsigned(text) => Err(Stage3Error::Unsigned {
            location: location.to_string(),
        }),
        Some(v) => {
            let signed = v.verify_clearsigned(text, location)?;
            Ok((Cow::Owned(signed.text), Some(signed.signer)))
        }
    }
}

/// Parses a `latest-stage3-<flavor>.txt` index and returns its `.tar.xz` entry.
///
/// A clear-signed text is parsed only inside its signed part ([`signed_body`]); a plain
/// (pre-2023) text as it is. Blank lines and `#` comments are skipped, data lines are
/// `<stamp>/<file name> <size in bytes>`, lines for other files (`.tar.bz2`...) are ignored.
///
/// Errors ([`Stage3Error`], location `latest-stage3 index`): `BadSignedText` for a malformed
/// clear-signed text; `BadIndex` for a `.tar.xz` line with a missing, malformed or zero size,
/// an unsafe path (absolute, `..`, odd characters), or a second, different `.tar.xz` line;
/// `NoTarball` when there is no `.tar.xz` line.
pub fn parse_latest(text: &str) -> Result<Latest, Stage3Error> {
    let body = parsable(text, INDEX)?;
    let mut found: Option<Latest> = None;
    for (i, raw) in body.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| Stage3Error::BadIndex {
            location: INDEX.into(),
            line: i + 1,
            reason,
        };
        let mut fields = line.split_whitespace();
        let Some(path) = fields.next() else { continue };
        if !path.ends_with(".tar.xz") {
            continue;
        }
        let Some(size) = fields.next() else {
            return Err(bad(format!("no size after {path:?}")));
        };
        if fields.next().is_some() {
            return Err(bad(format!("unexpected text after the size of {path:?}")));
        }
        let size = parse_size(size).ok_or_else(|| bad(format!("malformed size {size:?}")))?;
        let (stamp, file_name) = split_rel_path(path).map_err(&bad)?;
        let latest = Latest {
            rel_path: path.to_string(),
            file_name: file_name.to_string(),
            stamp: stamp.to_string(),
            size,
        };
        match &found {
            Some(prev) if *prev != latest => {
                return Err(bad(format!(
                    "a second .tar.xz line ({path}) after {}; expected exactly one",
                    prev.rel_path
                )));
            }
            _ => found = Some(latest),
        }
    }
    found.ok_or_else(|| Stage3Error::NoTarball {
        location: INDEX.into(),
    })
}

/// A size in bytes: ASCII digits only (no sign, no spaces), > 0, fits in `u64`.
fn parse_size(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&n| n > 0)
}

/// Splits `<stamp>/<file name>` after checking every component; the error says why the path
/// is refused.
fn split_rel_path(path: &str) -> Result<(&str, &str), String> {
    if path.starts_with('/') {
        return Err(format!(
            "absolute path {path:?}; expected <stamp>/<file name>"
        ));
    }
    for comp in path.split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return Err(format!("path {path:?} has an empty, '.' or '..' component"));
        }
        if !comp
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
        {
            return Err(format!("path {path:?} has unexpected characters"));
        }
    }
    match path.rsplit_once('/') {
        Some((stamp, file_name)) => Ok((stamp, file_name)),
        None => Err(format!("path {path:?} has no <stamp>/ directory")),
    }
}
