//! The priority of build-helper's own short control work against the build's processes.
//!
//! During a run the build keeps every processor busy: emerge and `make -jN` in every target
//! at once, dozens of runnable processes on a small machine. build-helper's own work on the
//! way from a tuple's toolchain-ready to the first step of the targets waiting for it is
//! short (a target's mounts take about a millisecond of CPU) but would wait its turn behind
//! all of them, and every waiting target waits for the one before it. So that work runs at
//! [`CONTROL`] niceness: a mount slot's thread while it mounts ([`with_control`]), and a
//! worker process, which only relays messages; each step and rescue shell a worker starts is
//! put back to the niceness build-helper was started with ([`build_niceness`], applied in
//! the chroot spawn). The build's own priority is left as the operator chose it (`nice`,
//! Portage's `PORTAGE_NICENESS`).
//!
//! The nice value is per thread on Linux: setpriority(2) with `PRIO_PROCESS` and a thread id
//! (or 0) changes only that thread, and threads and children start with their creator's
//! (sched(7), "The nice value"). Raising a priority needs `CAP_SYS_NICE` (root has it);
//! where it is refused (a container without it) nothing changes and nothing fails.

use std::sync::OnceLock;

/// The niceness of build-helper's control work: the highest priority (setpriority(2)).
pub const CONTROL: i32 = -20;

/// The niceness the build runs at, once recorded by [`raise_worker`].
static BUILD: OnceLock<i32> = OnceLock::new();

/// The calling thread's niceness (getpriority(2)).
fn current() -> i32 {
    // SAFETY: getpriority has no memory effects; -1 is a valid result, so errno tells
    // failure apart, and the calling thread always exists.
    unsafe {
        *libc::__errno_location() = 0;
        let n = libc::getpriority(libc::PRIO_PROCESS, 0);
        if n == -1 && *libc::__errno_location() != 0 {
            0
        } else {
            n
        }
    }
}

/// Sets the calling thread's niceness; false when refused.
fn set(n: i32) -> bool {
    // SAFETY: setpriority on the calling thread only.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) == 0 }
}

/// Runs `work` on the calling thread at [`CONTROL`] niceness, then puts the thread back
/// to its own (a thread of a shared pool must not keep it).
pub fn with_control<T>(work: impl FnOnce() -> T) -> T {
    let own = current();
    let raised = own > CONTROL && set(CONTROL);
    let out = work();
    if raised {
        set(own);
    }
    out
}

/// Records the calling process's niceness as the build's, then raises the process to
/// [`CONTROL`]. For a worker, before it starts any thread: threads inherit it.
pub fn raise_worker() {
    let own = current();
    let _ = BUILD.set(own);
    if own > CONTROL {
        set(CONTROL);
    }
}

/// The niceness steps run at: the one [`raise_worker`] recorded, `None` in a process that
/// did not (nothing is changed for its children then).
pub fn build_niceness() -> Option<i32> {
    BUILD.get().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_work_leaves_the_thread_at_its_own_niceness() {
        // In a thread of its own: the change must not touch the test harness's threads.
        std::thread::spawn(|| {
            let own = current();
            let inside = with_control(current);
            // Raised where allowed (root), unchanged where not.
            assert!(inside == CONTROL || inside == own, "{inside} vs {own}");
            assert_eq!(current(), own);
        })
        .join()
        .unwrap();
    }
}
