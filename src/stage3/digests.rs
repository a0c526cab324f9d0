//! The `.DIGESTS` file of a stage3 (SHA512 and BLAKE2B-512 blocks, format:
//! docs/mirror.md) and the comparison of what a tarball hashed to.
//!
//! [`parse_digests`] is pure. The running hashes are in `hashing.rs`, fed chunk by chunk by
//! the download or by the check of a kept file, so a tarball is never read twice. Not for: signatures (see
//! [`super::SignatureVerifier`]).

use std::path::Path;

use super::index::parsable;
use super::Stage3Error;

/// Location used in errors of the pure parser; [`super::obtain`] replaces it with the URL.
const DIGESTS: &str = "DIGESTS text";

/// The digests a `.DIGESTS` file lists for one file, as lower-case hex (128 characters each).
/// At least one is `Some` when returned by [`parse_digests`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    /// SHA512, from a `# SHA512 HASH` block.
    pub sha512: Option<String>,
    /// BLAKE2B-512, from a `# BLAKE2B HASH` or the older `# BLAKE2 (b2sum) HASH` block.
    pub blake2b: Option<String>,
}

/// The hash blocks of a DIGESTS file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    /// Before any header, or under a header we do not use (MD5, SHA1, WHIRLPOOL...).
    Other,
    Sha512,
    Blake2b,
}

/// Parses a `.DIGESTS` text and returns the digests listed for `file_name`.
///
/// A clear-signed text is parsed only inside its signed part ([`super::signed_body`]).
/// Entries are `<hex>  <name>` lines below a `# ... HASH` header; `<name>` is matched on its
/// base name (older files list absolute paths), so entries of `<file_name>.CONTENTS.gz` and
/// other files are ignored. `file_name` may itself be a path; its base name is used.
///
/// Errors ([`Stage3Error`], location `DIGESTS text`): `BadSignedText`; `BadDigests` for a
/// digest of `file_name` that is not 128 hex digits, or two different digests of one kind;
/// `NoDigests` when neither a SHA512 nor a BLAKE2B digest is listed for `file_name`.
pub fn parse_digests(text: &str, file_name: &str) -> Result<Digests, Stage3Error> {
    let wanted = base_name(file_name);
    let body = parsable(text, DIGESTS)?;
    let mut block = Block::Other;
    let mut out = Digests::default();
    for (i, raw) in body.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('#') {
            block = match header.trim().to_ascii_uppercase().as_str() {
                "SHA512 HASH" => Block::Sha512,
                "BLAKE2B HASH" | "BLAKE2 (B2SUM) HASH" => Block::Blake2b,
                _ => Block::Other,
            };
            continue;
        }
        let Some((hex, name)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        // `sha512sum -b` marks binary mode with `*` before the name.
        let name = name.trim().trim_start_matches('*');
        if block == Block::Other || base_name(name) != wanted {
            continue;
        }
        let (slot, algo) = match block {
            Block::Sha512 => (&mut out.sha512, "SHA512"),
            _ => (&mut out.blake2b, "BLAKE2B"),
        };
        let bad = |reason: String| Stage3Error::BadDigests {
            location: DIGESTS.into(),
            line: i + 1,
            reason,
        };
        if hex.len() != 128 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!("malformed {algo} digest for {wanted}")));
        }
        let hex = hex.to_ascii_lowercase();
        match slot {
            Some(prev) if *prev != hex => {
                return Err(bad(format!("two different {algo} digests for {wanted}")));
            }
            _ => *slot = Some(hex),
        }
    }
    if out.sha512.is_none() && out.blake2b.is_none() {
        return Err(Stage3Error::NoDigests {
            location: DIGESTS.into(),
            file_name: wanted.to_string(),
        });
    }
    Ok(out)
}

/// The part after the last `/`.
fn base_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Compares every listed digest with the computed one and returns the names of the checked
/// kinds (`["SHA512", "BLAKE2B"]`).
///
/// Errors: [`Stage3Error::NoDigests`] when nothing is listed (never trust an unchecked file);
/// [`Stage3Error::DigestMismatch`] naming `path` for the first difference.
pub(crate) fn check(
    expected: &Digests,
    got: &Digests,
    path: &Path,
) -> Result<Vec<&'static str>, Stage3Error> {
    let mut checked = Vec::new();
    for (algo, want, have) in [
        ("SHA512", &expected.sha512, &got.sha512),
        ("BLAKE2B", &expected.blake2b, &got.blake2b),
    ] {
        let Some(want) = want else { continue };
        if have.as_deref() != Some(want.as_str()) {
            return Err(Stage3Error::DigestMismatch {
                path: path.to_path_buf(),
                algo,
                expected: want.clone(),
                got: have
                    .clone()
                    .unwrap_or_else(|| "nothing (not computed)".into()),
            });
        }
        checked.push(algo);
    }
    if checked.is_empty() {
        return Err(Stage3Error::NoDigests {
            location: path.display().to_string(),
            file_name: base_name(&path.to_string_lossy()).to_string(),
        });
    }
    Ok(checked)
}
