//! Saved histories of the build environment: `history/<name>.sqfs` (squashfs image) or
//! `history/<name>/` (plain directory), each with `history/<name>.json` metadata beside it.
//!
//! [`store`] lists, resolves, checks and prunes them; [`archive`] writes a new one at the end
//! of a run; [`meta`] is the metadata that lets `history list` work without mounting and a
//! later run estimate its step durations.

pub mod archive;
pub mod meta;
pub mod store;

pub use archive::{archive, ArchiveOptions};
pub use meta::Meta;
pub use store::{check, list, partials, prune, remove_partials, resolve, Entry};
