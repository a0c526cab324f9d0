//! The stage3 seed: find the newest stage3 on a Gentoo mirror, download it with its DIGESTS
//! into distfiles while hashing it, keep it only once verified, and extract it safely.
//!
//! Format and rules: docs/mirror.md. The parsers ([`parse_latest`],
//! [`parse_digests`], [`signed_body`]) are pure; [`obtain`] does the network and file work
//! (async); [`extract`] is blocking (call it from `spawn_blocking`). OpenPGP signatures are
//! checked by [`OpenPgpVerifier`] (pure Rust, rPGP) passed to [`obtain_with_verifier`].
//!
//! Not for: mounting the extracted environment (`mounts`) or the history (`history`).

mod digests;
mod download;
mod error;
mod extract;
mod fetch;
mod hashing;
mod index;
mod kept;
mod keyring;
mod meta;
mod mirror;
mod openpgp;
mod progress;
mod request;
mod signed;

#[cfg(test)]
mod extract_tests;
#[cfg(test)]
mod fetch_tests;
#[cfg(test)]
pub(crate) mod parse_tests;
#[cfg(test)]
mod prop_tests;

pub use digests::{parse_digests, Digests};
pub use error::Stage3Error;
pub use extract::{extract, extract_until, ExtractStats};
pub use fetch::{obtain, obtain_with_verifier};
pub use index::{
    is_clearsigned, parse_latest, signed_body, DetachedCheck, Latest, SignatureVerifier, Signed,
};
pub use keyring::{Keyring, DEFAULT_KEY_FILE, GENTOO_RELEASE_FINGERPRINT};
pub use openpgp::OpenPgpVerifier;
pub use request::{Request, Verified};
