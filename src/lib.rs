//! build-helper: builds customised Gentoo installations for many crossdev targets in
//! parallel, in chroots on one build machine, and supervises them live.
//!
//! The flow of a run (DESIGN.md): [`starter`] and [`config`] are read into a [`plan::Plan`]
//! (pure data: targets, [`mounts`] layout, [`recipe`] steps); the [`supervisor`] fetches the
//! [`stage3`] or mounts a [`history`], makes the mounts through the [`sys`] seam in a private
//! namespace, starts one [`worker`] per target, keeps the [`engine`] checkpoint, and archives
//! the environment as the next history.

pub mod attach;
pub mod binhost;
pub mod boot;
pub mod cleanup;
pub mod cli;
pub mod clidocs;
pub mod config;
pub mod distcc;
pub mod engine;
pub mod error;
pub mod explore;
pub mod fsutil;
#[cfg(test)]
mod fuzz;
pub mod history;
pub mod mounts;
pub mod notify;
pub mod plan;
pub mod plan_text;
pub mod pool;
pub mod progress;
pub mod protocol;
pub mod recipe;
pub mod rundir;
pub mod saferoot;
pub mod sched;
pub mod stage3;
pub mod starter;
pub mod status;
pub mod stop;
pub mod supervisor;
pub mod sys;
pub mod ui;
pub mod worker;
