//! Front ends. They consume what the supervisor reports and render it; they own no state.
//! `plain` is line-prefixed output for scripts and CI.

pub mod plain;
