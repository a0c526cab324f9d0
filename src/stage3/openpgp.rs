//! OpenPGP verification of release files against a trusted key file, in pure Rust (rPGP, the
//! `pgp` crate): clear-signed texts (`latest-stage3-*.txt`, `*.DIGESTS`, the older
//! `*.DIGESTS.asc`) and detached signatures (`*.tar.xz.asc`, checked while the tarball's
//! bytes arrive, on a thread of its own so the download does not wait for it).
//!
//! Why rPGP: it is pure Rust (no C crypto, no gpg process), actively maintained (releases
//! through 2025, used by Delta Chat), and exposes subkeys, binding signatures, revocations
//! and expiry times, which is what the subkey rule of the spec needs. sequoia-openpgp is the
//! more complete policy engine, but its pure-Rust crypto backend is marked experimental; by
//! default it links Nettle (C).
//!
//! Rules: text outside the signed part of a clear-signed message (before the `BEGIN PGP
//! SIGNED MESSAGE` line or after the signature) is refused, never ignored (GnuPG's 2025
//! advisory); a signature counts only when made by a key of the key file or a signing
//! subkey bound to one ([`Keyring`]), which is neither revoked nor expired (at signing time
//! or now).
//!
//! Not for: fetching (`fetch.rs`) or parsing the signed text (`index.rs`, `digests.rs`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use pgp::composed::{CleartextSignedMessage, Deserializable, DetachedSignature};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureType, SignatureVersion};

use super::index::{DetachedCheck, Signed};
use super::keyring::{Keyring, SigningKey, Unusable};
use super::{SignatureVerifier, Stage3Error};

/// Chunks queued to the detached-signature thread before the download waits for it.
const QUEUE: usize = 8;

/// Verifies release signatures against the keys of one key file.
pub struct OpenPgpVerifier {
    ring: Arc<Keyring>,
}

impl OpenPgpVerifier {
    /// Loads the trusted key file (ASCII-armored; the default is
    /// [`DEFAULT_KEY_FILE`](super::DEFAULT_KEY_FILE)).
    ///
    /// Errors: [`Stage3Error::NoKeyFile`] (says how to get Gentoo's key),
    /// [`Stage3Error::BadKeyFile`], [`Stage3Error::Io`].
    pub fn from_file(path: &Path) -> Result<Self, Stage3Error> {
        Ok(OpenPgpVerifier {
            ring: Arc::new(Keyring::load(path)?),
        })
    }

    /// The key file this verifier trusts.
    pub fn key_file(&self) -> &Path {
        &self.ring.path
    }

    /// Upper-case hex fingerprints of the primary keys in the key file.
    pub fn primary_fingerprints(&self) -> &[String] {
        &self.ring.primaries
    }
}

impl SignatureVerifier for OpenPgpVerifier {
    fn verify_clearsigned(&self, text: &str, location: &str) -> Result<Signed, Stage3Error> {
        let bad = |reason: String| Stage3Error::Signature {
            location: location.to_string(),
            reason,
        };
        // rPGP refuses text before the armor header ("leading data") and after the
        // signature block ("trailing data"): both are outside the signed part.
        let (msg, _) = CleartextSignedMessage::from_string(text)
            .map_err(|e| bad(format!("not a well-formed clear-signed message ({e})")))?;
        let signed = msg.signed_text();
        let mut last = None;
        for sig in msg.signatures() {
            match check(&self.ring, sig, signed.as_bytes()) {
                Ok(signer) => {
                    return Ok(Signed {
                        text: signed.replace("\r\n", "\n"),
                        signer,
                    })
                }
                Err(reason) => last = Some(reason),
            }
        }
        Err(bad(last.unwrap_or_else(|| {
            "the message carries no signature".into()
        })))
    }

    fn start_detached(
        &self,
        armored: &str,
        location: &str,
    ) -> Result<Box<dyn DetachedCheck>, Stage3Error> {
        let bad = |reason: String| Stage3Error::Signature {
            location: location.to_string(),
            reason,
        };
        let (sig, _) = DetachedSignature::from_string(armored)
            .map_err(|e| bad(format!("not an armored OpenPGP signature ({e})")))?;
        let sig = sig.signature;
        if prefix_mode(&sig) {
            return Ok(Box::new(Prefixed {
                ring: self.ring.clone(),
                sig,
                location: location.to_string(),
            }));
        }
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let ring = self.ring.clone();
        let handle = std::thread::Builder::new()
            .name("stage3-openpgp".into())
            .spawn(move || {
                let reader = ChannelReader {
                    rx,
                    buf: Vec::new(),
                    pos: 0,
                };
                check_stream(&ring, &sig, reader)
            })
            .map_err(|e| Stage3Error::io("start a thread for", PathBuf::from(location), e))?;
        Ok(Box::new(Streamed {
            tx: Some(tx),
            handle: Some(handle),
            location: location.to_string(),
        }))
    }
}

/// Whether `sig` hashes exactly `SHA512(data || signature data || trailer)`: a version 4
/// signature of binary data with SHA512 (what Gentoo's release signatures are). Then the
/// SHA512 state the DIGESTS check computes anyway is continued instead of hashing again.
fn prefix_mode(sig: &Signature) -> bool {
    sig.version() == SignatureVersion::V4
        && sig.typ() == Some(SignatureType::Binary)
        && sig.hash_alg() == Some(HashAlgorithm::Sha512)
}

/// A detached signature checked from the caller's SHA512 state ([`prefix_mode`]).
struct Prefixed {
    ring: Arc<Keyring>,
    sig: Signature,
    location: String,
}

impl DetachedCheck for Prefixed {
    fn wants_sha512(&self) -> bool {
        true
    }

    fn update(&mut self, _chunk: &[u8]) {}

    fn finish(self: Box<Self>, sha512: Option<sha2::Sha512>) -> Result<String, Stage3Error> {
        let bad = |reason: String| Stage3Error::Signature {
            location: self.location.clone(),
            reason,
        };
        let Some(state) = sha512 else {
            return Err(bad("the SHA512 of the file was not computed".into()));
        };
        let Some(key) = self
            .ring
            .keys
            .iter()
            .find(|k| k.key.is_issuer_of(&self.sig))
        else {
            return Err(bad(untrusted(&self.ring, &self.sig)));
        };
        let verified = (|| -> Result<(), String> {
            let config = self.sig.config().ok_or("unknown signature version")?;
            let mut hasher: Box<dyn sha2::digest::DynDigest + Send> = Box::new(state);
            let len = config
                .hash_signature_data(&mut hasher)
                .map_err(|e| e.to_string())?;
            hasher.update(&config.trailer(len).map_err(|e| e.to_string())?);
            let hash = hasher.finalize();
            let (Some(left16), Some(bytes)) = (self.sig.signed_hash_value(), self.sig.signature())
            else {
                return Err("incomplete signature packet".into());
            };
            if hash.get(..2) != Some(&left16[..]) {
                return Err("the hash does not match".into());
            }
            key.key
                .verify_hash(HashAlgorithm::Sha512, &hash, bytes)
                .map_err(|e| e.to_string())
        })();
        verified.map_err(|e| bad(bad_signature(key, &e)))?;
        judge(key, &self.sig).map_err(bad)
    }
}

/// A detached signature being checked on its own thread over the fed bytes (signatures
/// that are not [`prefix_mode`]).
struct Streamed {
    tx: Option<SyncSender<Vec<u8>>>,
    handle: Option<JoinHandle<Result<String, String>>>,
    location: String,
}

impl DetachedCheck for Streamed {
    fn wants_sha512(&self) -> bool {
        false
    }

    fn update(&mut self, chunk: &[u8]) {
        if let Some(tx) = &self.tx {
            // A send fails only when the thread ended early; `finish` reports its result.
            let _ = tx.send(chunk.to_vec());
        }
    }

    fn finish(mut self: Box<Self>, _sha512: Option<sha2::Sha512>) -> Result<String, Stage3Error> {
        self.tx = None;
        let joined = self.handle.take().map(JoinHandle::join);
        let reason = match joined {
            Some(Ok(Ok(signer))) => return Ok(signer),
            Some(Ok(Err(reason))) => reason,
            _ => "the verifying thread stopped unexpectedly".into(),
        };
        Err(Stage3Error::Signature {
            location: self.location.clone(),
            reason,
        })
    }
}

/// Reads the chunks sent by [`Streamed::update`] until the sender is dropped.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Checks `sig` over the bytes of `data`; returns the signer's description.
fn check(ring: &Keyring, sig: &Signature, data: &[u8]) -> Result<String, String> {
    check_stream(ring, sig, data)
}

/// Checks `sig` over the bytes `data` yields (read once): picks the key the signature names
/// as its issuer, verifies, then applies revocation and expiry. Returns `subkey <fpr> of key
/// <fpr>` (or `key <fpr>`); the error says why the signature is refused.
fn check_stream(ring: &Keyring, sig: &Signature, data: impl Read) -> Result<String, String> {
    let Some(key) = ring.keys.iter().find(|k| k.key.is_issuer_of(sig)) else {
        return Err(untrusted(ring, sig));
    };
    key.key
        .verify(sig, data)
        .map_err(|e| bad_signature(key, &e.to_string()))?;
    judge(key, sig)
}

/// The reason for a signature by a key outside the key file.
fn untrusted(ring: &Keyring, sig: &Signature) -> String {
    format!(
        "made by a key that is not trusted (issuer {}); {} holds only key(s) {} and their \
         signing subkeys",
        issuer(sig),
        ring.path.display(),
        ring.primaries.join(", ")
    )
}

/// The reason for a signature that does not match the bytes.
fn bad_signature(key: &SigningKey, e: &str) -> String {
    format!(
        "bad signature by {} ({e}): the file was changed after it was signed",
        key.describe()
    )
}

/// Applies revocation and expiry to a cryptographically good signature by `key`.
fn judge(key: &SigningKey, sig: &Signature) -> Result<String, String> {
    let made = sig.created().map(|t| t.as_secs()).unwrap_or(0);
    let now = chrono::Utc::now().timestamp().clamp(0, i64::from(u32::MAX)) as u32;
    match key.unusable(made, now) {
        None => Ok(key.describe()),
        Some(Unusable::Revoked) => Err(format!(
            "good signature, but {} is revoked: do not trust this file; update the key file \
             (emerge sec-keys/openpgp-keys-gentoo-release)",
            key.describe()
        )),
        Some(Unusable::Expired(at)) => Err(format!(
            "good signature, but {} expired at {} (epoch seconds {at}); update the key file \
             (emerge sec-keys/openpgp-keys-gentoo-release) or the mirror",
            key.describe(),
            chrono::DateTime::from_timestamp(i64::from(at), 0)
                .map(|t| t.to_rfc2822())
                .unwrap_or_default()
        )),
    }
}

/// The issuer fingerprint(s) or key id(s) a signature names, for messages.
fn issuer(sig: &Signature) -> String {
    let fps: Vec<String> = sig
        .issuer_fingerprint()
        .iter()
        .map(|f| format!("{f:X}"))
        .collect();
    if !fps.is_empty() {
        return fps.join(", ");
    }
    let ids: Vec<String> = sig.issuer_key_id().iter().map(hex::encode_upper).collect();
    if ids.is_empty() {
        "not stated".into()
    } else {
        ids.join(", ")
    }
}
