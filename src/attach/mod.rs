//! Screens that leave and come back: the supervisor of a `--ui tui` run serves its state on
//! a unix socket ([`hub`], a [`crate::ui::Frontend`]), and TUI clients ([`client`]:
//! `build-helper run --ui tui` in the foreground, `build-helper attach`) draw it, as
//! tmux, zellij and process-compose do: the run belongs to the supervisor, not to a terminal.
//!
//! Not here: the screen itself ([`crate::ui::tui`], the same code in every client), or
//! starting the supervisor in its own session (`build-helper run`, the hidden `supervise`
//! command).
//!
//! # The protocol (version [`proto::VERSION`])
//!
//! Local only: the socket is `work/<run>/attach.sock` ([`crate::rundir::sockets::attach`]), mode 0600 in
//! the 0700 run directory, and the supervisor serves only root peers (SO_PEERCRED). Each
//! message is one JSON object on one line, tagged `"msg"`; terminal bytes are base64
//! ([`proto::Bytes`]). In order:
//!
//! 1. client -> server `hello {protocol}`; server -> client `hello {protocol, run}`. A
//!    version mismatch ends the connection (the server still sends its hello, so the client
//!    names both versions: [`proto::ProtoError::Version`]).
//! 2. server -> client, the snapshot: `checkpoint {cp}`; one `screen {target, rows, cols,
//!    scrollback, screen, live}` per target (its kept lines and the bytes that redraw its
//!    current screen, [`proto::screen_bytes`]); `progress` per running target; `pool
//!    {pool}` (the job pool's tokens in use, total and why none is handed out) once served;
//!    the kept `say` messages; then `summary`, `ask` and `end` when the run is that far.
//! 3. server -> client, live, in the order they happen: `output {target, bytes}`, `started`
//!    / `gone {target}` (a worker's terminal takes keys / has ended), `checkpoint`,
//!    `progress`, `pool`, `say`, `alert`, `summary`, `ask {text, wait}` (the umount question) and
//!    `answered`, and last `end {code}` (the supervisor's exit status) or `dropped {reason}`.
//! 4. client -> server, any time after its hello: `keys {target, bytes}`, `resize {target,
//!    cols, rows}` (the pane's size; the last client to resize wins), `answer {yes}`,
//!    `stop` (the run stops as by Ctrl-C: exit 130, resumable) and `detach` (the client
//!    leaves; closing the socket means the same).
//!
//! Several clients may attach at once, and every one has the keyboard, as in tmux: a run is
//! driven by one person from wherever they are (a second client is usually the same person
//! on another machine, or one left behind), and a read-only second client would need a way
//! to take the keyboard over. A client whose queue passes [`hub::CLIENT_QUEUE`] bytes is
//! dropped (the supervisor's log says so); it can attach again.

pub mod client;
pub mod daemon;
pub mod hub;
pub mod proto;
#[cfg(test)]
mod tests;
pub mod timing;
