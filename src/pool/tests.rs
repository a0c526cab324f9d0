//! The ledger's rules, over fake fifos whose clients the tests play by hand.

use std::sync::{Arc, Mutex};

use super::account::{ImplicitSlots, Ledger, TokenChannel};
use super::admission::{AdmissionLimits, Held, SystemProbe};
use super::PoolError;

/// A fifo as a shared byte count: the ledger's end and the clients' end.
#[derive(Clone, Default)]
struct FakeFifo(Arc<Mutex<usize>>);

impl FakeFifo {
    fn bytes(&self) -> usize {
        *self.0.lock().unwrap()
    }
    /// A client reads up to `n` tokens; returns how many it got.
    fn client_read(&self, n: usize) -> usize {
        let mut b = self.0.lock().unwrap();
        let got = n.min(*b);
        *b -= got;
        got
    }
    /// A client writes `n` tokens back.
    fn client_write(&self, n: usize) {
        *self.0.lock().unwrap() += n;
    }
}

impl TokenChannel for FakeFifo {
    fn waiting(&mut self) -> Result<usize, PoolError> {
        Ok(self.bytes())
    }
    fn put(&mut self, n: usize) -> Result<usize, PoolError> {
        self.client_write(n);
        Ok(n)
    }
    fn take(&mut self, n: usize) -> Result<usize, PoolError> {
        Ok(self.client_read(n))
    }
}

fn ledger(
    total: usize,
    implicit: ImplicitSlots,
    names: &[&str],
) -> (Ledger<FakeFifo>, Vec<FakeFifo>) {
    let fifos: Vec<FakeFifo> = names.iter().map(|_| FakeFifo::default()).collect();
    let channels = names
        .iter()
        .zip(&fifos)
        .map(|(n, f)| (n.to_string(), f.clone()))
        .collect();
    (Ledger::new(total, 1, implicit, channels).unwrap(), fifos)
}

fn sum_granted(l: &Ledger<FakeFifo>) -> usize {
    l.snapshot().targets.iter().map(|t| t.granted).sum()
}

fn assert_balanced(l: &Ledger<FakeFifo>) {
    assert_eq!(l.free() + sum_granted(l), l.total(), "{:?}", l.snapshot());
}

#[test]
fn a_step_gets_one_token_on_offer_and_refills_as_it_reads() {
    let (mut l, f) = ledger(4, ImplicitSlots::CoveredByClient, &["a"]);
    l.settle(None).unwrap();
    assert_eq!(f[0].bytes(), 0, "an idle target gets no offer");
    l.step_started("a").unwrap();
    l.settle(None).unwrap();
    assert_eq!((f[0].bytes(), l.granted("a").unwrap(), l.free()), (1, 1, 3));
    for held in 1..=4 {
        assert_eq!(f[0].client_read(1), 1);
        l.settle(None).unwrap();
        assert_eq!(l.granted("a").unwrap(), (held + 1).min(4));
        assert_balanced(&l);
    }
    // All four held; nothing left to offer.
    assert_eq!((f[0].bytes(), l.free()), (0, 0));
}

#[test]
fn returned_tokens_beyond_the_offer_go_back_to_free() {
    let (mut l, f) = ledger(4, ImplicitSlots::CoveredByClient, &["a"]);
    l.step_started("a").unwrap();
    l.settle(None).unwrap();
    f[0].client_read(1);
    l.settle(None).unwrap();
    f[0].client_read(1);
    l.settle(None).unwrap();
    assert_eq!(l.granted("a").unwrap(), 3); // two held, one on offer
    f[0].client_write(2); // both jobs done
    l.settle(None).unwrap();
    assert_eq!((f[0].bytes(), l.granted("a").unwrap(), l.free()), (1, 1, 3));
    assert_balanced(&l);
}

#[test]
fn implicit_slots_are_reserved_per_target_in_a_step() {
    // jobs=2, three targets: one byte out at most, so the peak is 1 + 3 implicit = 4.
    let (mut l, f) = ledger(2, ImplicitSlots::ReservePerTarget, &["a", "b", "c"]);
    for t in ["a", "b", "c"] {
        l.step_started(t).unwrap();
    }
    l.settle(None).unwrap();
    assert_eq!(l.cap(), 1);
    let out: usize = f.iter().map(FakeFifo::bytes).sum();
    assert_eq!(out, 1);
    // Everyone reads what it can: still one token out.
    for fifo in &f {
        fifo.client_read(5);
        l.settle(None).unwrap();
    }
    assert_eq!(sum_granted(&l), 1);
    // jobs=8 with three targets: 5 bytes out at most, peak 8.
    let (mut l, _) = ledger(8, ImplicitSlots::ReservePerTarget, &["a", "b", "c"]);
    l.step_started("a").unwrap();
    assert_eq!(l.cap(), 7);
    l.step_started("b").unwrap();
    l.step_started("c").unwrap();
    assert_eq!(l.cap(), 5);
}

#[test]
fn a_new_step_shrinks_the_cap_by_withdrawing_offers() {
    let (mut l, f) = ledger(3, ImplicitSlots::ReservePerTarget, &["a", "b"]);
    l.step_started("a").unwrap();
    l.settle(None).unwrap();
    f[0].client_read(1);
    l.settle(None).unwrap(); // a holds 1, 1 on offer: cap 2 reached
    assert_eq!(l.granted("a").unwrap(), 2);
    l.step_started("b").unwrap();
    l.settle(None).unwrap(); // cap 1: a's offer is withdrawn, nothing for b yet
    assert_eq!(l.cap(), 1);
    assert_eq!((f[0].bytes(), f[1].bytes()), (0, 0));
    assert_eq!(l.granted("a").unwrap(), 1);
    assert_balanced(&l);
}

#[test]
fn an_unread_offer_moves_to_a_starving_target() {
    let (mut l, f) = ledger(2, ImplicitSlots::CoveredByClient, &["a", "b"]);
    l.step_started("a").unwrap();
    l.step_started("b").unwrap();
    l.settle(None).unwrap();
    assert_eq!((f[0].bytes(), f[1].bytes(), l.free()), (1, 1, 0));
    // b reads its offer and wants more; a's offer sits unread.
    f[1].client_read(1);
    l.settle(None).unwrap();
    assert_eq!((f[0].bytes(), f[1].bytes()), (0, 1), "{:?}", l.snapshot());
    assert_eq!((l.granted("a").unwrap(), l.granted("b").unwrap()), (0, 2));
    assert_eq!(l.snapshot().stats.moved, 1);
    // Stable: nothing moves back while a shows no demand.
    l.settle(None).unwrap();
    assert_eq!((f[0].bytes(), f[1].bytes()), (0, 1));
    assert_balanced(&l);
}

#[test]
fn step_ended_returns_every_granted_token_even_those_lost_with_killed_processes() {
    let (mut l, f) = ledger(4, ImplicitSlots::CoveredByClient, &["a", "b"]);
    l.step_started("a").unwrap();
    l.step_started("b").unwrap();
    l.settle(None).unwrap();
    f[0].client_read(1);
    l.settle(None).unwrap();
    f[0].client_read(1);
    l.settle(None).unwrap();
    assert_eq!(l.granted("a").unwrap(), 3);
    // a's processes are killed holding two tokens; one byte is still in its fifo.
    let back = l.step_ended("a").unwrap();
    assert_eq!((back.granted, back.drained, back.lost), (3, 1, 2));
    assert_eq!((f[0].bytes(), l.granted("a").unwrap()), (0, 0));
    l.settle(None).unwrap();
    assert_eq!(l.granted("b").unwrap(), 1, "b keeps one on offer");
    l.step_ended("b").unwrap();
    assert_eq!(l.free(), l.total(), "the pool is full again");
    assert_eq!(l.snapshot().stats.reclaimed_lost, 2);
}

#[test]
fn bytes_nobody_was_granted_are_dropped() {
    let (mut l, f) = ledger(2, ImplicitSlots::CoveredByClient, &["a"]);
    // A survivor of an ended step writes into an idle target's fifo.
    f[0].client_write(3);
    l.settle(None).unwrap();
    assert_eq!((f[0].bytes(), l.free()), (0, 2));
    assert_eq!(l.snapshot().stats.foreign, 3);
    // A step end finds more bytes than granted: the extra ones are foreign too.
    l.step_started("a").unwrap();
    l.settle(None).unwrap();
    f[0].client_write(2);
    let back = l.step_ended("a").unwrap();
    assert_eq!((back.granted, back.drained, back.lost), (1, 3, 0));
    assert_eq!(l.free(), 2);
}

/// A probe with a settable MemAvailable.
struct FakeProbe(Arc<Mutex<u64>>);

impl SystemProbe for FakeProbe {
    fn mem_available(&mut self) -> Result<u64, PoolError> {
        Ok(*self.0.lock().unwrap())
    }
    fn load_average(&mut self) -> Result<f64, PoolError> {
        Ok(0.5)
    }
}

#[test]
fn low_memory_holds_tokens_back_until_memory_recovers() {
    let mem = Arc::new(Mutex::new(8u64 << 30));
    let mut probe = FakeProbe(Arc::clone(&mem));
    let limits = AdmissionLimits {
        min_mem_avail: Some(2 << 30),
        max_load: None,
    };
    let (mut l, f) = ledger(4, ImplicitSlots::CoveredByClient, &["a"]);
    l.step_started("a").unwrap();
    l.settle(limits.check(&mut probe)).unwrap();
    f[0].client_read(1);
    l.settle(limits.check(&mut probe)).unwrap();
    assert_eq!((l.granted("a").unwrap(), f[0].bytes()), (2, 1));
    // Memory drops: the unread offer is withdrawn, the held token stays with its job.
    *mem.lock().unwrap() = 1 << 30;
    let held = limits.check(&mut probe);
    assert!(matches!(held, Some(Held::LowMemory { .. })), "{held:?}");
    l.settle(held).unwrap();
    assert_eq!((l.granted("a").unwrap(), f[0].bytes()), (1, 0));
    // The job ends and returns its token: it goes back to free, nothing new goes out.
    f[0].client_write(1);
    l.settle(limits.check(&mut probe)).unwrap();
    assert_eq!((l.granted("a").unwrap(), f[0].bytes(), l.free()), (0, 0, 4));
    assert!(l.snapshot().held.is_some());
    // Memory recovers: the offer comes back.
    *mem.lock().unwrap() = 4 << 30;
    l.settle(limits.check(&mut probe)).unwrap();
    assert_eq!((l.granted("a").unwrap(), f[0].bytes()), (1, 1));
    assert!(l.snapshot().held.is_none());
    assert_balanced(&l);
}

#[test]
fn high_load_and_unreadable_probes_close_admission() {
    struct Broken;
    impl SystemProbe for Broken {
        fn mem_available(&mut self) -> Result<u64, PoolError> {
            Err(PoolError::Format {
                path: "/proc/meminfo".into(),
                why: "test".into(),
            })
        }
        fn load_average(&mut self) -> Result<f64, PoolError> {
            Ok(9.0)
        }
    }
    let mem_only = AdmissionLimits {
        min_mem_avail: Some(1),
        max_load: None,
    };
    assert!(matches!(
        mem_only.check(&mut Broken),
        Some(Held::Unreadable { .. })
    ));
    let load_only = AdmissionLimits {
        min_mem_avail: None,
        max_load: Some(4.0),
    };
    assert!(matches!(
        load_only.check(&mut Broken),
        Some(Held::HighLoad { .. })
    ));
    assert_eq!(AdmissionLimits::default().check(&mut Broken), None);
}

#[test]
fn bad_pools_and_unknown_targets_are_errors() {
    let ch = |n: &str| (n.to_string(), FakeFifo::default());
    assert!(Ledger::new(0, 1, ImplicitSlots::ReservePerTarget, vec![ch("a")]).is_err());
    assert!(Ledger::new(2, 0, ImplicitSlots::ReservePerTarget, vec![ch("a")]).is_err());
    let dup = Ledger::new(
        2,
        1,
        ImplicitSlots::ReservePerTarget,
        vec![ch("a"), ch("a")],
    );
    assert!(matches!(dup, Err(PoolError::DuplicateTarget(_))));
    let (mut l, _) = ledger(2, ImplicitSlots::ReservePerTarget, &["a"]);
    let err = l.step_started("zz").unwrap_err().to_string();
    assert!(err.contains("zz"), "{err}");
}

#[test]
fn many_random_client_moves_keep_the_books_balanced() {
    // A deterministic walk of reads, writes, step starts and ends.
    let names = ["a", "b", "c"];
    let (mut l, f) = ledger(5, ImplicitSlots::ReservePerTarget, &names);
    let mut held = [0usize; 3];
    let mut seed = 12345u64;
    for _ in 0..5000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (seed >> 33) as usize;
        let t = r % 3;
        match (r / 3) % 6 {
            0 | 1 => held[t] += f[t].client_read(1),
            2 | 3 if held[t] > 0 => {
                held[t] -= 1;
                f[t].client_write(1);
            }
            4 => l.step_started(names[t]).unwrap(),
            5 if r.is_multiple_of(7) => {
                l.step_ended(names[t]).unwrap();
                held[t] = 0;
            }
            _ => {}
        }
        l.settle(None).unwrap();
        assert_balanced(&l);
        let snap = l.snapshot();
        let out: usize = snap.targets.iter().map(|t| t.granted).sum();
        assert!(out <= 5);
        for (i, share) in snap.targets.iter().enumerate() {
            assert_eq!(share.granted, held[i] + f[i].bytes(), "{snap:?}");
        }
    }
}

#[test]
fn front_ends_see_tokens_in_use_and_why_admission_is_held() {
    let (mut l, f) = ledger(4, ImplicitSlots::CoveredByClient, &["a"]);
    l.step_started("a").unwrap();
    l.settle(None).unwrap();
    assert_eq!(f[0].client_read(1), 1);
    l.settle(None).unwrap();
    let v = l.snapshot().view();
    assert_eq!((v.total, v.in_use, v.held), (4, 2, None));
    let low = Held::LowMemory {
        available: 3 << 29,
        min: 2 << 30,
    };
    l.settle(Some(low)).unwrap();
    let v = l.snapshot().view();
    assert_eq!(
        v.held.as_deref(),
        Some("low memory: 1.5 GiB available, 2.0 GiB needed")
    );
    // The unread offer was withdrawn; the token a job holds stays out.
    assert_eq!(v.in_use, 1);
}
