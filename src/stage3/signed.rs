//! The signed companions of a tarball on a mirror: its `.DIGESTS` (clear-signed since 2022;
//! before that, the clear-signed copy was a separate `.DIGESTS.asc`) and its detached
//! `.asc` signature (docs/mirror.md, "Layout" and ".DIGESTS").
//!
//! Not for: the tarball itself (`download.rs`) or checking signatures (`openpgp.rs`).

use super::index::{is_clearsigned, trusted_text};
use super::mirror::Mirror;
use super::progress::Progress;
use super::request::say_signed;
use super::{parse_digests, Digests, SignatureVerifier, Stage3Error};

/// What the mirror says about one tarball, verified as far as a verifier allows.
pub(super) struct SignedFiles {
    /// The digests text to keep next to the tarball: the clear-signed `.DIGESTS`, or the
    /// clear-signed `.DIGESTS.asc` of a pre-2022 release (same digests, signed).
    pub(super) digests_text: String,
    /// The digests listed for the tarball (from the verified text when verified).
    pub(super) expected: Digests,
    /// The armored detached signature of the tarball; `None` without a verifier or when the
    /// mirror has none (then the signed DIGESTS alone vouch for the tarball).
    pub(super) asc: Option<String>,
}

/// Fetches and checks the `.DIGESTS` of the tarball at `tar_url` (file name `file_name`) and,
/// with a verifier, its detached `.asc`.
///
/// Errors: as [`Mirror::fetch_text`]; `Unsigned` when a verifier is in use and neither the
/// `.DIGESTS` nor a `.DIGESTS.asc` is clear-signed; the verifier's `Signature`; the DIGESTS
/// parse errors.
pub(super) async fn signed_files(
    mirror: &Mirror,
    tar_url: &str,
    file_name: &str,
    verifier: Option<&dyn SignatureVerifier>,
    progress: Progress<'_>,
) -> Result<SignedFiles, Stage3Error> {
    let mut digests_url = format!("{tar_url}.DIGESTS");
    progress(format!("stage3: fetching {digests_url}"));
    let mut digests_text = mirror.fetch_text(&digests_url).await?;
    if verifier.is_some() && !is_clearsigned(&digests_text) {
        // Before 2022 the signed digests were a separate clear-signed `.DIGESTS.asc`.
        digests_url.push_str(".asc");
        progress(format!(
            "stage3: the DIGESTS are not clear-signed; fetching {digests_url}"
        ));
        digests_text = match mirror.fetch_text(&digests_url).await {
            Ok(text) => text,
            Err(e) if is_missing(&e) => {
                return Err(Stage3Error::Unsigned {
                    location: format!("{tar_url}.DIGESTS"),
                })
            }
            Err(e) => return Err(e),
        };
    }
    let (text, signer) = trusted_text(&digests_text, &digests_url, verifier)?;
    say_signed(&digests_url, signer, progress);
    let expected = parse_digests(&text, file_name).map_err(|e| e.at(&digests_url))?;
    drop(text);
    let asc = match verifier {
        None => None,
        Some(_) => {
            let asc_url = format!("{tar_url}.asc");
            match mirror.fetch_text(&asc_url).await {
                Ok(asc) => Some(asc),
                Err(e) if is_missing(&e) => {
                    progress(format!(
                        "stage3: the mirror has no {asc_url}; the signed DIGESTS vouch for \
                         the tarball"
                    ));
                    None
                }
                Err(e) => return Err(e),
            }
        }
    };
    Ok(SignedFiles {
        digests_text,
        expected,
        asc,
    })
}

/// Whether `e` says that the file does not exist on the mirror (HTTP 404, or a missing file
/// on a `file://` mirror).
fn is_missing(e: &Stage3Error) -> bool {
    match e {
        Stage3Error::HttpStatus { status, .. } => *status == 404 || *status == 410,
        Stage3Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}
