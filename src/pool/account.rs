//! The pool's accounting, without I/O of its own: which target was granted how many tokens,
//! how many are free, and what to put into or take out of each target's fifo next.
//!
//! Every token is in exactly one place: `free` (in the broker's hands), or granted to one
//! target, where it is either a byte waiting in that target's fifo or held by one of that
//! target's processes. So `free + Σ granted = total` at every instant, and the broker never
//! needs to know which process holds a token: when a target's step ends (its whole process
//! tree is gone), everything granted to it comes back, read from the fifo or lost with a
//! killed process alike.
//!
//! A pass ([`Ledger::settle`]) looks at each fifo's byte count and:
//! - takes bytes nobody was granted (a confused client wrote more than it read) and drops them;
//! - keeps about `offer` bytes on offer in each target in a step, taking surplus returns back
//!   into `free`;
//! - withdraws bytes on offer when admission is closed (low memory, high load) or when the
//!   number of targets in a step grew and tokens out exceed the cap (see [`ImplicitSlots`]);
//! - hands free tokens to targets without an offer, a starving one first, then the one that
//!   holds the fewest;
//! - moves a byte nobody is waiting for (it still sits in its fifo) from one target to a
//!   starving one when no token is free.
//!
//! A target is *starving* when the byte it was offered was read and the pool could not refill
//! it: a reader there may be blocked, and a byte sitting unread in another target's fifo is
//! proof that nobody there is. Blocked readers themselves are invisible to the broker (a fifo
//! reports bytes, not waiters), which is why that is the signal used.
//!
//! The channels come through [`TokenChannel`], so the rules are unit-tested with a fake fifo.

use serde::Serialize;

use super::admission::Held;
use super::PoolError;

/// One target's end of the pool: a fifo (or a fake one in tests) holding token bytes.
pub trait TokenChannel: Send {
    /// How many bytes wait in the channel now (FIONREAD on a fifo).
    fn waiting(&mut self) -> Result<usize, PoolError>;
    /// Writes `n` token bytes; returns how many were written.
    fn put(&mut self, n: usize) -> Result<usize, PoolError>;
    /// Reads up to `n` bytes without blocking; returns how many were read (fewer when a
    /// client read some first).
    fn take(&mut self, n: usize) -> Result<usize, PoolError>;
}

/// How the implicit job slot of each jobserver client is counted.
///
/// GNU make (and ninja, cargo) run one job without a token: the slot their parent is assumed
/// to hold for them (GNU make manual, "Sharing Job Slots with GNU make"). With one top-level
/// client per target in a step, K targets run up to `bytes out + K` jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImplicitSlots {
    /// One token per target in a step stays in the pool for that target's implicit slot, but
    /// at least one token is always available as a byte: at most `max(jobs - K, 1)` bytes are
    /// out, so the peak is `max(jobs, K + 1)` concurrent jobs, within `max(jobs, K) + 1`.
    /// Right for plain make, and for emerge whose `MAKEFLAGS` came from its environment
    /// (with `FEATURES=jobserver-token` it then runs its first job on its implicit slot):
    /// what a run's steps use.
    ReservePerTarget,
    /// The top-level client of each step already holds a real token for its implicit slot
    /// (Portage's `FEATURES=jobserver-token` makes emerge take a token per job it starts), so
    /// all `jobs` tokens go out as bytes and the peak is `jobs`.
    CoveredByClient,
}

/// Counters of what the pool did, for measurements and the run's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// Settle passes run.
    pub passes: u64,
    /// Bytes written into fifos (tokens offered).
    pub offered: u64,
    /// Bytes taken back into `free` (surplus returns, withdrawn offers, drained at step end).
    pub taken_back: u64,
    /// Bytes moved from an idle offer to a starving target.
    pub moved: u64,
    /// Bytes found in a fifo beyond what its target was granted, dropped.
    pub foreign: u64,
    /// Tokens that never came back as bytes and were reclaimed at a step's end (held by a
    /// process that was killed or crashed).
    pub reclaimed_lost: u64,
    /// Passes in which a client had read or written since the pass before.
    pub client_changes: u64,
}

/// One target's share, as [`Ledger::snapshot`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetShare {
    /// The target (`<tuple>.<name>`).
    pub target: String,
    /// Tokens granted: bytes in its fifo plus tokens its processes hold.
    pub granted: usize,
    /// Bytes in its fifo at the end of the last pass.
    pub waiting: usize,
    /// Whether one of its steps is running.
    pub active: bool,
    /// Whether it read its offer and could not be refilled.
    pub starving: bool,
}

/// The pool at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolSnapshot {
    /// Tokens in the pool (`jobs`).
    pub total: usize,
    /// Tokens in the broker's hands.
    pub free: usize,
    /// The most tokens that may be out as bytes now (see [`ImplicitSlots`]).
    pub cap: usize,
    /// Why admission is closed, if it is.
    pub held: Option<Held>,
    /// Each target's share, in the order the targets were given.
    pub targets: Vec<TargetShare>,
    /// What the pool did so far.
    pub stats: PoolStats,
}

/// What front ends show of the pool: tokens in use of the total, and why no new job is
/// handed out, if that is so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PoolView {
    /// Tokens in the pool.
    pub total: usize,
    /// Tokens out of the broker's hands (offered or held by jobs).
    pub in_use: usize,
    /// Why admission is closed, in words (`low memory: 1.2 GiB available, 2.0 GiB needed`).
    pub held: Option<String>,
}

impl PoolSnapshot {
    /// What front ends show of it.
    pub fn view(&self) -> PoolView {
        let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
        PoolView {
            total: self.total,
            in_use: self.total.saturating_sub(self.free),
            held: self.held.as_ref().map(|h| match h {
                Held::LowMemory { available, min } => format!(
                    "low memory: {:.1} GiB available, {:.1} GiB needed",
                    gib(*available),
                    gib(*min)
                ),
                Held::HighLoad { load, max } => format!("load {load:.2}, limit {max}"),
                Held::Unreadable { error } => format!("cannot read /proc: {error}"),
            }),
        }
    }
}

/// What [`Ledger::step_ended`] got back from a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reclaimed {
    /// Tokens granted to the target when its step ended, all back in `free` now.
    pub granted: usize,
    /// Bytes read out of its fifo.
    pub drained: usize,
    /// Tokens that were not in the fifo: held by processes that died without returning them.
    pub lost: usize,
}

struct Slot<C> {
    name: String,
    channel: C,
    granted: usize,
    active: bool,
    starving: bool,
    /// Bytes left in the fifo at the end of the last pass.
    left: usize,
}

/// The token ledger over one channel per target.
pub struct Ledger<C: TokenChannel> {
    total: usize,
    free: usize,
    offer: usize,
    implicit: ImplicitSlots,
    held: Option<Held>,
    slots: Vec<Slot<C>>,
    stats: PoolStats,
}

/// The most bytes one step end drains (the pipe holds at most 64 KiB; a client that keeps
/// writing is not allowed to hold the pool).
const DRAIN_ROUNDS: usize = 64;

impl<C: TokenChannel> Ledger<C> {
    /// A ledger of `total` tokens (all free) over `channels` (target name, channel), keeping
    /// `offer` bytes on offer per target in a step.
    ///
    /// Errors: [`PoolError::BadJobs`] when `total` is 0 or above 4096 (a fifo holds 64 KiB;
    /// no machine needs more), or `offer` is 0; [`PoolError::DuplicateTarget`].
    pub fn new(
        total: usize,
        offer: usize,
        implicit: ImplicitSlots,
        channels: Vec<(String, C)>,
    ) -> Result<Self, PoolError> {
        if total == 0 || total > 4096 {
            return Err(PoolError::BadJobs {
                jobs: total,
                why: "the pool needs between 1 and 4096 tokens".into(),
            });
        }
        if offer == 0 {
            return Err(PoolError::BadJobs {
                jobs: total,
                why: "at least one token must be kept on offer per target".into(),
            });
        }
        let mut slots: Vec<Slot<C>> = Vec::with_capacity(channels.len());
        for (name, channel) in channels {
            if slots.iter().any(|s| s.name == name) {
                return Err(PoolError::DuplicateTarget(name));
            }
            slots.push(Slot {
                name,
                channel,
                granted: 0,
                active: false,
                starving: false,
                left: 0,
            });
        }
        Ok(Ledger {
            total,
            free: total,
            offer,
            implicit,
            held: None,
            slots,
            stats: PoolStats::default(),
        })
    }

    fn index(&self, target: &str) -> Result<usize, PoolError> {
        self.slots
            .iter()
            .position(|s| s.name == target)
            .ok_or_else(|| PoolError::UnknownTarget(target.to_string()))
    }

    /// Tokens in the pool.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Tokens in the broker's hands.
    pub fn free(&self) -> usize {
        self.free
    }

    /// Tokens granted to `target` (in its fifo or held by its processes).
    ///
    /// Errors: [`PoolError::UnknownTarget`].
    pub fn granted(&self, target: &str) -> Result<usize, PoolError> {
        Ok(self.slots[self.index(target)?].granted)
    }

    /// The most tokens that may be out as bytes with the targets in a step now.
    pub fn cap(&self) -> usize {
        match self.implicit {
            ImplicitSlots::CoveredByClient => self.total,
            ImplicitSlots::ReservePerTarget => {
                let active = self.slots.iter().filter(|s| s.active).count();
                self.total - active.min(self.total - 1)
            }
        }
    }

    /// A step of `target` starts: it gets offers from the next pass on.
    ///
    /// Errors: [`PoolError::UnknownTarget`].
    pub fn step_started(&mut self, target: &str) -> Result<(), PoolError> {
        let i = self.index(target)?;
        self.slots[i].active = true;
        Ok(())
    }

    /// A step of `target` ended and its whole process tree is gone: drains its fifo and
    /// returns everything it was granted to `free`, bytes read back and tokens lost with
    /// killed processes alike. Bytes beyond what it was granted are dropped as foreign.
    ///
    /// Errors: [`PoolError::UnknownTarget`]; an I/O error from the channel (the grant is
    /// reclaimed in the ledger all the same).
    pub fn step_ended(&mut self, target: &str) -> Result<Reclaimed, PoolError> {
        let i = self.index(target)?;
        let slot = &mut self.slots[i];
        let mut drained = 0;
        let mut failure = None;
        for _ in 0..DRAIN_ROUNDS {
            match slot.channel.waiting() {
                Ok(0) => break,
                Ok(w) => match slot.channel.take(w) {
                    Ok(0) => break,
                    Ok(got) => drained += got,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                },
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let granted = slot.granted;
        let lost = granted.saturating_sub(drained);
        self.stats.foreign += drained.saturating_sub(granted) as u64;
        self.stats.taken_back += drained.min(granted) as u64;
        self.stats.reclaimed_lost += lost as u64;
        self.free += granted;
        slot.granted = 0;
        slot.active = false;
        slot.starving = false;
        slot.left = 0;
        self.check();
        match failure {
            Some(e) => Err(e),
            None => Ok(Reclaimed {
                granted,
                drained,
                lost,
            }),
        }
    }

    /// One pass over every channel with admission `held` (`None`: open): see the module
    /// documentation for the rules. Returns whether a client had read or written a byte since
    /// the last pass.
    ///
    /// Errors: the first I/O error of a channel; the ledger stays consistent (each byte moved
    /// is accounted as it moves).
    pub fn settle(&mut self, held: Option<Held>) -> Result<bool, PoolError> {
        self.stats.passes += 1;
        self.held = held;
        let open = self.held.is_none();
        let n = self.slots.len();
        let mut waiting = vec![0usize; n];
        let mut client_change = false;

        // Observe: bytes nobody was granted, idle targets, reads since the last pass.
        for (i, w) in waiting.iter_mut().enumerate() {
            let slot = &mut self.slots[i];
            let mut now = slot.channel.waiting()?;
            if now != slot.left {
                client_change = true;
            }
            if now < slot.left && slot.active {
                // An offer was read: someone there wanted a token.
                slot.starving = true;
            }
            if now > slot.granted {
                let got = slot.channel.take(now - slot.granted)?;
                self.stats.foreign += got as u64;
                now -= got.min(now);
            }
            *w = now;
        }
        if client_change {
            self.stats.client_changes += 1;
        }

        // Take back: everything from idle targets, surplus beyond the offer, all offers while
        // admission is closed.
        for (i, w) in waiting.iter_mut().enumerate() {
            let keep = if self.slots[i].active && open {
                self.offer
            } else {
                0
            };
            if *w > keep {
                let got = self.take_back(i, *w - keep)?;
                *w -= got.min(*w);
            }
        }

        // Over the cap (more targets entered a step): withdraw offers, largest grant first.
        let cap = self.cap();
        while self.out() > cap {
            let Some(i) = (0..n)
                .filter(|&i| waiting[i] > 0)
                .max_by_key(|&i| (self.slots[i].granted, std::cmp::Reverse(i)))
            else {
                break;
            };
            let got = self.take_back(i, 1)?;
            waiting[i] -= got.min(waiting[i]);
            if got == 0 {
                waiting[i] = 0;
            }
        }

        if open {
            // Grants from free: starving first, then the fewest granted.
            while self.free > 0 && self.out() < cap {
                let Some(i) = (0..n)
                    .filter(|&i| self.slots[i].active && waiting[i] < self.offer)
                    .min_by_key(|&i| (!self.slots[i].starving, self.slots[i].granted, i))
                else {
                    break;
                };
                let put = self.slots[i].channel.put(1)?;
                if put == 0 {
                    break;
                }
                self.free -= 1;
                self.slots[i].granted += 1;
                self.slots[i].starving = false;
                self.stats.offered += 1;
                waiting[i] += 1;
            }
            // Moves: an unread offer goes to a starving target.
            while let Some(to) =
                (0..n).find(|&i| self.slots[i].active && self.slots[i].starving && waiting[i] == 0)
            {
                let Some(from) = (0..n)
                    .filter(|&i| i != to && waiting[i] > 0)
                    .max_by_key(|&i| (self.slots[i].granted, std::cmp::Reverse(i)))
                else {
                    break;
                };
                let got = self.slots[from].channel.take(1)?;
                if got == 0 {
                    // Read by a client meanwhile; the next pass sees it.
                    waiting[from] = 0;
                    continue;
                }
                self.slots[from].granted -= 1;
                waiting[from] -= 1;
                let put = self.slots[to].channel.put(1)?;
                if put == 0 {
                    self.free += 1;
                    self.stats.taken_back += 1;
                    break;
                }
                self.slots[to].granted += 1;
                self.slots[to].starving = false;
                self.stats.moved += 1;
                waiting[to] += 1;
            }
        }

        for (slot, w) in self.slots.iter_mut().zip(&waiting) {
            if *w > 0 {
                slot.starving = false;
            }
            slot.left = *w;
        }
        self.check();
        Ok(client_change)
    }

    /// Takes up to `n` bytes from target `i` back into `free`; returns how many.
    fn take_back(&mut self, i: usize, n: usize) -> Result<usize, PoolError> {
        let slot = &mut self.slots[i];
        let got = slot.channel.take(n)?;
        let back = got.min(slot.granted);
        slot.granted -= back;
        self.free += back;
        self.stats.taken_back += back as u64;
        self.stats.foreign += (got - back) as u64;
        Ok(got)
    }

    /// Tokens out as bytes or held: Σ granted.
    fn out(&self) -> usize {
        self.total - self.free
    }

    fn check(&self) {
        debug_assert_eq!(
            self.free + self.slots.iter().map(|s| s.granted).sum::<usize>(),
            self.total,
            "free + granted must equal total"
        );
    }

    /// The pool now.
    pub fn snapshot(&self) -> PoolSnapshot {
        PoolSnapshot {
            total: self.total,
            free: self.free,
            cap: self.cap(),
            held: self.held.clone(),
            targets: self
                .slots
                .iter()
                .map(|s| TargetShare {
                    target: s.name.clone(),
                    granted: s.granted,
                    waiting: s.left,
                    active: s.active,
                    starving: s.starving,
                })
                .collect(),
            stats: self.stats,
        }
    }
}
