//! The trusted OpenPGP key file and which of its keys may sign releases: every primary key
//! in the file, and every subkey bound to one of them by a valid binding signature (with the
//! primary key binding back-signature a signing subkey must carry), each with its state
//! (usable, revoked, expired).
//!
//! Rule (docs/mirror.md, "The key"): Gentoo's release key signs with a **subkey**; a
//! signature by a bound signing subkey counts as a signature by the primary key. The crate is
//! rPGP (`pgp`): it parses keys and checks single signatures, but applies no policy of its
//! own (binding, revocation, expiry), so that policy lives here.
//!
//! Not for: verifying texts or streams (`openpgp.rs`).

use std::path::{Path, PathBuf};

use pgp::composed::{Deserializable, SignedPublicKey, SignedPublicSubKey};
use pgp::packet::{PublicKey, PublicSubkey, Signature, SignatureType};
use pgp::types::{KeyDetails, Timestamp, VerifyingKey};

use super::Stage3Error;

/// The default key file on Gentoo systems (package `sec-keys/openpgp-keys-gentoo-release`).
pub const DEFAULT_KEY_FILE: &str = "/usr/share/openpgp-keys/gentoo-release.asc";
/// Fingerprint of Gentoo's release engineering key (docs/mirror.md).
pub const GENTOO_RELEASE_FINGERPRINT: &str = "13EBBDBEDE7A12775DFDB1BABB572E0E2D182910";
/// Largest accepted key file, in bytes.
const KEY_FILE_LIMIT: u64 = 4 << 20;

/// Why a key that made a good signature is nevertheless not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unusable {
    /// A valid revocation signature exists (on the key itself or on its primary key).
    Revoked,
    /// Expired at this time (seconds since the epoch): before the signature was made, or now.
    Expired(u32),
}

/// A key that may have made a release signature.
pub(super) struct SigningKey {
    pub(super) key: AnyKey,
    /// Upper-case hex fingerprint of this key (the subkey for a subkey).
    pub(super) fingerprint: String,
    /// Upper-case hex fingerprint of its primary key (itself for a primary key).
    pub(super) primary: String,
    /// Expiry time in seconds since the epoch, if any.
    pub(super) expires: Option<u32>,
    /// `Some` when the key must not be trusted (revoked), whatever the time.
    pub(super) revoked: bool,
}

/// A primary key or a subkey packet; both verify signatures.
pub(super) enum AnyKey {
    Primary(PublicKey),
    Sub(PublicSubkey),
}

impl AnyKey {
    /// Checks `sig` over `data` with this key.
    pub(super) fn verify(
        &self,
        sig: &Signature,
        data: impl std::io::Read,
    ) -> pgp::errors::Result<()> {
        match self {
            AnyKey::Primary(k) => sig.verify(k, data),
            AnyKey::Sub(k) => sig.verify(k, data),
        }
    }

    /// Checks a signature `bytes` over the finished `hash` (made with `alg`) with this key.
    pub(super) fn verify_hash(
        &self,
        alg: pgp::crypto::hash::HashAlgorithm,
        hash: &[u8],
        bytes: &pgp::types::SignatureBytes,
    ) -> pgp::errors::Result<()> {
        match self {
            AnyKey::Primary(k) => k.verify(alg, hash, bytes),
            AnyKey::Sub(k) => k.verify(alg, hash, bytes),
        }
    }

    /// Whether `sig` names this key as its issuer (or names no issuer at all).
    pub(super) fn is_issuer_of(&self, sig: &Signature) -> bool {
        let (id, fp) = match self {
            AnyKey::Primary(k) => (k.legacy_key_id(), k.fingerprint()),
            AnyKey::Sub(k) => (k.legacy_key_id(), k.fingerprint()),
        };
        let ids = sig.issuer_key_id();
        let fps = sig.issuer_fingerprint();
        (ids.is_empty() && fps.is_empty())
            || ids.iter().any(|i| **i == id)
            || fps.iter().any(|f| **f == fp)
    }
}

impl SigningKey {
    /// Whether this key may be trusted for a signature made at `made` (seconds since the
    /// epoch), judged at `now`: not revoked, not expired at `made` nor at `now`.
    pub(super) fn unusable(&self, made: u32, now: u32) -> Option<Unusable> {
        if self.revoked {
            return Some(Unusable::Revoked);
        }
        match self.expires {
            Some(at) if made >= at || now >= at => Some(Unusable::Expired(at)),
            _ => None,
        }
    }

    /// `subkey <fpr> of <primary fpr>` or `<fpr>` for a primary key.
    pub(super) fn describe(&self) -> String {
        if self.fingerprint == self.primary {
            format!("key {}", self.fingerprint)
        } else {
            format!("subkey {} of key {}", self.fingerprint, self.primary)
        }
    }
}

/// The keys of a key file that may sign releases.
pub struct Keyring {
    /// The key file, for messages.
    pub(super) path: PathBuf,
    pub(super) keys: Vec<SigningKey>,
    /// Upper-case hex fingerprints of the primary keys in the file.
    pub(super) primaries: Vec<String>,
}

impl Keyring {
    /// Reads an ASCII-armored key file (one or more public keys) and works out which keys
    /// may sign: each primary key whose self-signature allows signing (or states no key
    /// flags), and each subkey with a valid binding signature that allows signing and a valid
    /// back-signature. Revocations and expiry times are recorded, not applied here.
    ///
    /// Errors: [`Stage3Error::NoKeyFile`] when `path` does not exist (the message says how to
    /// get Gentoo's key); [`Stage3Error::BadKeyFile`] when it cannot be read or holds no
    /// usable public key.
    pub fn load(path: &Path) -> Result<Keyring, Stage3Error> {
        let bad = |reason: String| Stage3Error::BadKeyFile {
            path: path.to_path_buf(),
            reason,
        };
        // The one reader of user-supplied files: a FIFO or a device is refused unread.
        let bytes = match crate::saferoot::read_file(path, KEY_FILE_LIMIT) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => {
                return Err(Stage3Error::NoKeyFile {
                    path: path.to_path_buf(),
                })
            }
            Err(crate::saferoot::SafeError::TooLarge { .. }) => {
                return Err(bad(format!("larger than {KEY_FILE_LIMIT} bytes")))
            }
            Err(e @ crate::saferoot::SafeError::NotRegular { .. }) => {
                return Err(bad(e.into_io().to_string()))
            }
            Err(e) => return Err(Stage3Error::io("read", path, e.into_io())),
        };
        let (keys, _) =
            SignedPublicKey::from_armor_many(&bytes[..]).map_err(|e| bad(e.to_string()))?;
        let mut ring = Keyring {
            path: path.to_path_buf(),
            keys: Vec::new(),
            primaries: Vec::new(),
        };
        for key in keys {
            let key = key.map_err(|e| bad(e.to_string()))?;
            ring.add(&key);
        }
        if ring.primaries.is_empty() {
            return Err(bad("no OpenPGP public key in it".into()));
        }
        Ok(ring)
    }

    /// Adds the signing-capable keys of one transferable public key.
    fn add(&mut self, key: &SignedPublicKey) {
        let primary = &key.primary_key;
        let primary_fpr = format!("{:X}", primary.fingerprint());
        self.primaries.push(primary_fpr.clone());
        let primary_revoked = key
            .details
            .revocation_signatures
            .iter()
            .any(|s| s.verify_key(primary).is_ok());
        // The newest valid self-signature on a user ID carries the primary key's flags and
        // expiry (RFC 9580 section 5.2.3.10); a direct-key signature may carry them too.
        let self_sigs = key
            .details
            .users
            .iter()
            .flat_map(|u| {
                u.signatures
                    .iter()
                    .filter(|s| u.verify_bindings(primary).is_ok() && s.is_certification())
            })
            .chain(
                key.details
                    .direct_signatures
                    .iter()
                    .filter(|s| s.verify_key(primary).is_ok()),
            );
        let newest = self_sigs.max_by_key(|s| s.created().map(Timestamp::as_secs));
        let primary_expires = newest.and_then(|s| expiry(primary.created_at(), s));
        if let Some(sig) = newest {
            let flags = sig.key_flags();
            let no_flags = !flags.sign() && !flags.certify() && !flags.encrypt_comms();
            if flags.sign() || no_flags {
                self.keys.push(SigningKey {
                    key: AnyKey::Primary(primary.clone()),
                    fingerprint: primary_fpr.clone(),
                    primary: primary_fpr.clone(),
                    expires: primary_expires,
                    revoked: primary_revoked,
                });
            }
        }
        for sub in &key.public_subkeys {
            if let Some(signing) = signing_subkey(primary, sub) {
                let expires = match (signing.expires, primary_expires) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                self.keys.push(SigningKey {
                    primary: primary_fpr.clone(),
                    expires,
                    revoked: signing.revoked || primary_revoked,
                    ..signing
                });
            }
        }
    }
}

/// The subkey as a [`SigningKey`] when its newest valid binding signature allows signing and
/// carries a valid back-signature; `revoked` when a valid subkey revocation exists.
fn signing_subkey(primary: &PublicKey, sub: &SignedPublicSubKey) -> Option<SigningKey> {
    let valid = |s: &&Signature| s.verify_subkey_binding(primary, &sub.key).is_ok();
    let revoked = sub
        .signatures
        .iter()
        .filter(valid)
        .any(|s| s.typ() == Some(SignatureType::SubkeyRevocation));
    let binding = sub
        .signatures
        .iter()
        .filter(valid)
        .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
        .max_by_key(|s| s.created().map(Timestamp::as_secs))?;
    if !binding.key_flags().sign() {
        return None;
    }
    let backsig = binding.embedded_signature()?;
    backsig.verify_primary_key_binding(&sub.key, primary).ok()?;
    Some(SigningKey {
        fingerprint: format!("{:X}", sub.key.fingerprint()),
        primary: String::new(),
        expires: expiry(sub.key.created_at(), binding),
        revoked,
        key: AnyKey::Sub(sub.key.clone()),
    })
}

/// Expiry time (seconds since the epoch) from a self-signature's key expiration time
/// subpacket, counted from the key's creation; `None` (or 0) means it never expires.
fn expiry(created: Timestamp, sig: &Signature) -> Option<u32> {
    let secs = sig.key_expiration_time()?.as_secs();
    (secs != 0).then(|| created.as_secs().saturating_add(secs))
}
