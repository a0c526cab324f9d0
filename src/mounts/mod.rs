//! Mounts: the layout as data ([`plan`]), its executor and teardown ([`exec`]), recording every
//! mount point in the run's mount journal (`crate::rundir::journal`), which lets
//! `build-helper umount` clean up after a crashed run. Loop devices
//! for squashfs images are the system-call seam's (`crate::sys::loopdev`).
//!
//! Not for deciding *when* to mount (the supervisor does) or what runs inside (the worker).

pub mod exec;
pub mod namespace;
pub mod plan;
pub mod upper;

pub use exec::{apply, apply_shared, mounts_under, teardown, MountError};
pub use namespace::private_namespace;
pub use plan::{Entry, Layout, TargetDirs};
pub use upper::fill_upper;
