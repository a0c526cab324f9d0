//! The run's state and the rules that change it.
//!
//! [`run`] is the pure state machine of the run's phases (stage3, mounts, steps, archive,
//! teardown: what comes next, what a stop or a failure in each leads to, the exit status);
//! [`machine`] is the pure state machine of the steps phase (inputs in, actions out, no I/O)
//! that decides what the workers do next; [`state`] is the checkpoint: every step of every target with its state, exit code and
//! duration, written atomically after each transition; [`events`] is the append-only event
//! log (`events.jsonl`) with microsecond timestamps; [`protocol`] is what workers and the
//! supervisor say to each other over the run's unix socket. The supervisor owns all of it;
//! front ends only read.

pub mod events;
pub mod machine;
pub mod protocol;
pub mod run;
pub mod state;

pub use state::{Checkpoint, StepRecord, StepState, TargetRecord, TargetState};
