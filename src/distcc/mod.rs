//! distcc across machines: the starter's `distcc_hosts` (compile jobs of a run sent to
//! helpers, [`hosts`]) and the `distcc-helper` command that serves a history's compilers
//! ([`helper`]).
//!
//! Gentoo's answer to outgrowing one machine is distcc, whose catch is that every helper needs
//! exactly the compilers of the machine sending the jobs, cross toolchains included. A history
//! is that whole environment in one file, so a helper runs the history's own distccd.

pub mod exposure;
pub mod helper;
pub mod hosts;
pub mod scratch;

pub use helper::{serve, HelperOptions};
