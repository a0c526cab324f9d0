//! The run's state and the rules that change it: data and rules only. Nothing here reads a
//! file, the clock or a thread; time comes in with the inputs (`now_us`), and what must be
//! done comes out as actions that the supervisor carries out.
//!
//! [`run`] is the pure state machine of the run's phases (stage3, mounts, steps, archive,
//! teardown: what comes next, what a stop or a failure in each leads to, the exit status);
//! [`machine`] is the pure state machine of the steps phase (inputs in, actions out) that
//! decides what the workers do next; [`state`] is the checkpoint: every step of every target
//! with its state, exit code and duration (written by the run directory's `checkpoint`);
//! [`events`] are the records of the event log (`events.jsonl`, written by
//! the run directory's `events`); [`watch`] is the view of every running step's progress and the
//! remaining-time estimates. The supervisor owns all of it; front ends only read.

pub mod events;
pub mod machine;
pub mod run;
pub mod state;
pub mod watch;

pub use state::{Checkpoint, StepRecord, StepState, TargetRecord, TargetState};
