//! The run's job pool: one GNU make jobserver shared by every target's environment, so N
//! targets never ask for N × nproc compile jobs (docs/job-pool.md).
//!
//! What it is for: the supervisor starts a [`Broker`] with the run's targets; the broker
//! serves one fifo per target (bind-mounted into that target's environment), accounts the
//! tokens each target was granted ([`Ledger`]), reclaims those of a step whose processes
//! died, and holds tokens back under memory or load pressure ([`AdmissionLimits`]).
//! [`makeflags`] says what a step's environment carries for the make found there;
//! [`cost`] measures what a step cost (CPU, peak memory).
//!
//! What it is not for: starting steps, mounting, or deciding which target runs; the
//! supervisor and the worker call it.

pub mod account;
pub mod admission;
pub mod broker;
pub mod cost;
mod error;
pub mod fifo;
pub mod makeflags;
#[cfg(test)]
mod tests;

pub use account::{
    ImplicitSlots, Ledger, PoolSnapshot, PoolStats, PoolView, Reclaimed, TargetShare, TokenChannel,
};
pub use admission::{AdmissionLimits, Held, ProcProbe, SystemProbe};
pub use broker::{fifo_path, Broker, PoolConfig, WakeStats};
pub use cost::{CostSource, StepCost};
pub use error::PoolError;
pub use makeflags::{JobserverAuth, MakeVersion};

/// Where a target's fifo is bind-mounted inside its environment, the same path in every
/// environment (the supervisor creates an empty file there as the mount point).
pub const FIFO_IN_ENV: &str = "/run/build-helper/jobserver";
