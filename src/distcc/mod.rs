//! distcc across machines: the `distcc-helper` command that serves a history's compilers
//! ([`helper`]). The starter's `distcc_hosts` (compile jobs of a run sent to helpers) is the
//! starter's (`crate::starter::distcc_hosts`).
//!
//! Gentoo's answer to outgrowing one machine is distcc, whose catch is that every helper needs
//! exactly the compilers of the machine sending the jobs, cross toolchains included. A history
//! is that whole environment in one file, so a helper runs the history's own distccd.

pub mod exposure;
pub mod helper;
pub mod scratch;

pub use helper::{serve, HelperOptions};
