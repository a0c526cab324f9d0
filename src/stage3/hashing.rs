//! Running SHA512 and BLAKE2B-512 hashes of a byte stream, each on a thread of its own, so a
//! download or the check of a kept tarball is limited by the slower hash, not by their sum
//! (the machine has at least two cores). The SHA512 state before finalisation is handed out
//! too: a detached OpenPGP signature over the same bytes with SHA512 continues from it
//! instead of hashing the tarball a third time (`openpgp.rs`).
//!
//! Not for: comparing digests (`digests.rs`).

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use blake2::Blake2b512;
use sha2::{Digest, Sha512};

use super::Digests;

/// Bytes gathered before they are handed to the hash threads.
const BATCH: usize = 256 << 10;
/// Batches queued per hash thread before `update` waits for it.
const QUEUE: usize = 16;

/// One hash, on its thread (or inline when no thread could be started).
enum Worker<D> {
    Thread(SyncSender<Arc<[u8]>>, JoinHandle<D>),
    Inline(D),
}

impl<D: Digest + Send + 'static> Worker<D> {
    fn start(name: &str) -> Self {
        let (tx, rx) = sync_channel::<Arc<[u8]>>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name(format!("stage3-{name}"))
            .spawn(move || {
                let mut d = D::new();
                while let Ok(batch) = rx.recv() {
                    d.update(&batch[..]);
                }
                d
            });
        match spawned {
            Ok(handle) => Worker::Thread(tx, handle),
            Err(_) => Worker::Inline(D::new()),
        }
    }

    fn update(&mut self, batch: &Arc<[u8]>) {
        match self {
            // A send fails only if the thread died; `finish` then reports no digest.
            Worker::Thread(tx, _) => drop(tx.send(batch.clone())),
            Worker::Inline(d) => d.update(&batch[..]),
        }
    }

    /// The hash state after every byte; `None` if its thread died.
    fn finish(self) -> Option<D> {
        match self {
            Worker::Thread(tx, handle) => {
                drop(tx);
                handle.join().ok()
            }
            Worker::Inline(d) => Some(d),
        }
    }
}

/// Running SHA512 and BLAKE2B-512 of a byte stream (only the kinds asked for), and the
/// number of bytes seen.
pub(crate) struct Hasher {
    sha512: Option<Worker<Sha512>>,
    blake2b: Option<Worker<Blake2b512>>,
    pending: Vec<u8>,
    len: u64,
}

impl Hasher {
    /// Hashers for the digests `expected` lists; with `sha512_state`, SHA512 is computed
    /// even when not listed (a signature needs it).
    pub(crate) fn new(expected: &Digests, sha512_state: bool) -> Self {
        Hasher {
            sha512: (expected.sha512.is_some() || sha512_state).then(|| Worker::start("sha512")),
            blake2b: expected.blake2b.as_ref().map(|_| Worker::start("blake2b")),
            pending: Vec::with_capacity(BATCH),
            len: 0,
        }
    }

    /// Feeds the next chunk.
    pub(crate) fn update(&mut self, chunk: &[u8]) {
        self.len += chunk.len() as u64;
        self.pending.extend_from_slice(chunk);
        if self.pending.len() >= BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch: Arc<[u8]> = Arc::from(&self.pending[..]);
        self.pending.clear();
        if let Some(w) = &mut self.sha512 {
            w.update(&batch);
        }
        if let Some(w) = &mut self.blake2b {
            w.update(&batch);
        }
    }

    /// Bytes fed so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The computed digests (lower-case hex; only those listed in `expected`) and the SHA512
    /// state over all bytes before finalisation (when SHA512 was computed).
    pub(crate) fn finish(mut self, expected: &Digests) -> (Digests, Option<Sha512>) {
        self.flush();
        let sha = self.sha512.take().and_then(Worker::finish);
        let b2 = self.blake2b.take().and_then(Worker::finish);
        let digests = Digests {
            sha512: sha
                .as_ref()
                .filter(|_| expected.sha512.is_some())
                .map(|h| hex::encode(h.clone().finalize())),
            blake2b: b2.map(|h| hex::encode(h.finalize())),
        };
        (digests, sha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threaded_hashes_match_one_shot_hashes() {
        let data: Vec<u8> = (0..(3 * BATCH + 17))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let expected = Digests {
            sha512: Some(String::new()),
            blake2b: Some(String::new()),
        };
        let mut h = Hasher::new(&expected, false);
        for chunk in data.chunks(7001) {
            h.update(chunk);
        }
        assert_eq!(h.len(), data.len() as u64);
        let (got, state) = h.finish(&expected);
        assert_eq!(got.sha512, Some(hex::encode(Sha512::digest(&data))));
        assert_eq!(got.blake2b, Some(hex::encode(Blake2b512::digest(&data))));
        assert!(state.is_some());
    }

    #[test]
    fn sha512_state_is_kept_for_a_signature_when_not_listed() {
        let expected = Digests {
            sha512: None,
            blake2b: Some(String::new()),
        };
        let mut h = Hasher::new(&expected, true);
        h.update(b"abc");
        let (got, state) = h.finish(&expected);
        assert_eq!(got.sha512, None);
        let state = state.map(|s| hex::encode(s.finalize()));
        assert_eq!(state, Some(hex::encode(Sha512::digest(b"abc"))));
    }
}
