//! The run's state and the rules that change it.
//!
//! [`state`] is the checkpoint: every step of every target with its state, exit code and
//! duration, written atomically after each transition; [`events`] is the append-only event
//! log (`events.jsonl`) with microsecond timestamps; [`protocol`] is what workers and the
//! supervisor say to each other over the run's unix socket. The supervisor owns all of it;
//! front ends only read.

pub mod events;
pub mod protocol;
pub mod state;

pub use state::{Checkpoint, StepRecord, StepState, TargetRecord, TargetState};
