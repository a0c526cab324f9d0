//! The error that means "bad input": the command exits with status 2 and prints the message
//! (what, where, what to do). Every other error exits with status 1.

/// Bad input from the user: a starter, a configuration, a name, a downloaded file that does
/// not verify. The message is complete as it stands.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Nothing to do: the command's request is already met (`run --resume RUN` of a finished
/// run). The command prints the message and exits with status 0, having changed nothing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NothingToDo(pub String);
