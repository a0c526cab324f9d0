//! The attach protocol's messages and framing: one JSON object per line (`\n`-terminated,
//! UTF-8), tagged by `"msg"` in kebab-case; terminal bytes travel as standard base64 (RFC
//! 4648 §4, with padding) in string fields. See the [module doc](super) for the order.

use std::io::{BufRead, Read, Write};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::config::Target;
use crate::engine::watch::Shown;
use crate::engine::Checkpoint;

/// The protocol version this build speaks; both hellos carry it and a mismatch ends the
/// connection with [`ProtoError::Version`].
pub const VERSION: u32 = 2;

/// Longest line a client accepts from the supervisor (bytes): a snapshot of a pane with
/// 10,000 lines of scrollback is ~1.4 MB of base64; anything far above is not a peer of ours.
pub const MAX_LINE: usize = 64 << 20;

/// Longest line the supervisor accepts from a client (bytes): the largest client message is
/// `keys` with [`KEYS_CHUNK`] bytes (~22 KiB as base64 in JSON). A longer line ends that
/// client's connection with [`ServerMsg::Dropped`]; it never makes the supervisor allocate
/// more than this per client.
pub const MAX_CLIENT_LINE: usize = 64 << 10;

/// Most terminal bytes one `keys` message carries; a client splits a longer paste into
/// several messages ([`keys_messages`]).
pub const KEYS_CHUNK: usize = 16 << 10;

/// Widest pane a client may ask for, in columns (a `resize` beyond it is refused): the
/// supervisor keeps a terminal emulator of `cols` x `rows` cells per pane (~70 bytes a
/// cell), so 1000 x 1000 bounds one pane near 70 MB; no screen shows more.
pub const MAX_COLS: u16 = 1000;

/// Tallest pane a client may ask for, in rows; see [`MAX_COLS`].
pub const MAX_ROWS: u16 = 1000;

/// Terminal bytes as a base64 string field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(Bytes)
            .map_err(serde::de::Error::custom)
    }
}

/// Supervisor (server) -> client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "kebab-case")]
pub enum ServerMsg {
    /// First message: the server's protocol version and the run it serves.
    Hello {
        /// [`VERSION`] of the server.
        protocol: u32,
        /// The run id (`<primary name>-<date>`).
        run: String,
    },
    /// One target's terminal as it is now (snapshot, once per target after the hello).
    Screen {
        /// The target.
        target: Target,
        /// The terminal's size in cells.
        rows: u16,
        /// The terminal's size in cells.
        cols: u16,
        /// The kept lines of output ([`crate::ui::tui::scrollback::Scrollback::bytes`]).
        scrollback: Bytes,
        /// Bytes that draw the current screen on an empty terminal of `rows` x `cols`
        /// ([`screen_bytes`]).
        screen: Bytes,
        /// The worker has a terminal that takes keys (not exited).
        live: bool,
    },
    /// The run's state (after every checkpoint write; once in the snapshot).
    Checkpoint {
        /// The checkpoint.
        cp: Box<Checkpoint>,
    },
    /// A target's running step and estimates.
    Progress {
        /// The target.
        target: Target,
        /// What front ends show.
        shown: Shown,
        /// The whole run's remaining milliseconds, when known.
        run_eta_ms: Option<u64>,
    },
    /// The run's job pool (after a step started or ended, at most once a second while it
    /// changes; once in the snapshot).
    Pool {
        /// Tokens in use of the total, and why no new job is handed out.
        pool: crate::pool::PoolView,
    },
    /// A supervisor message (one line).
    Say {
        /// The text.
        text: String,
    },
    /// A chunk of a worker's terminal output.
    Output {
        /// The target.
        target: Target,
        /// The bytes, escape sequences included.
        bytes: Bytes,
    },
    /// A worker was started: its terminal takes keys.
    Started {
        /// The target.
        target: Target,
    },
    /// A worker's terminal has ended.
    Gone {
        /// The target.
        target: Target,
    },
    /// Something needs the user (ring the bell, set the title).
    Alert {
        /// The title.
        title: String,
    },
    /// The end-of-run summary table.
    Summary {
        /// The table.
        table: String,
    },
    /// A yes/no question (the umount question); any client may answer with
    /// [`ClientMsg::Answer`]. `wait` means it only waits for Enter.
    Ask {
        /// The question.
        text: String,
        /// Only "press Enter" (the answer is ignored).
        wait: bool,
    },
    /// The pending question was answered (by some client) or dropped.
    Answered,
    /// The run is over; `code` is the supervisor's exit status (0 done, 1 failed, 2 bad
    /// input, 130 stopped). Last message.
    End {
        /// Exit status.
        code: i32,
    },
    /// The server drops this client (it fell too far behind). Last message, queued behind
    /// what the client has not read: the socket is shut down at once, so a client usually
    /// sees its stream end instead.
    Dropped {
        /// Why.
        reason: String,
    },
}

/// Client -> supervisor (server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "kebab-case")]
pub enum ClientMsg {
    /// First message: the client's protocol version.
    Hello {
        /// [`VERSION`] of the client.
        protocol: u32,
    },
    /// Keystrokes for a target's terminal (raw bytes, as a terminal sends them).
    Keys {
        /// The target.
        target: Target,
        /// The bytes.
        bytes: Bytes,
    },
    /// The client draws a target's terminal at this size: the worker's pty takes it (the
    /// last client to resize wins, as tmux's `window-size latest`).
    Resize {
        /// The target.
        target: Target,
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// The answer to the pending [`ServerMsg::Ask`].
    Answer {
        /// Yes or no.
        yes: bool,
    },
    /// The client leaves; the run goes on.
    Detach,
    /// Stop the run (as `q` + stop or Ctrl-C did before: the workers stop, resumable).
    Stop,
}

/// Errors of the protocol.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The peer speaks another protocol version.
    #[error(
        "the supervisor speaks attach protocol {theirs}, this build-helper speaks {ours}: \
         attach with the build-helper that started the run"
    )]
    Version {
        /// Ours ([`VERSION`]).
        ours: u32,
        /// The peer's.
        theirs: u32,
    },
    /// A line is not a message of this protocol.
    #[error("not an attach protocol message: {0}")]
    Bad(String),
    /// The first message was not a hello.
    #[error("the peer did not start with a hello")]
    NoHello,
    /// The connection ended.
    #[error("the connection ended")]
    Closed,
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One message as its line (with the `\n`).
pub fn encode<T: Serialize>(msg: &T) -> String {
    // Serializing these enums cannot fail: no maps with non-string keys, no floats.
    let mut s = serde_json::to_string(msg).unwrap_or_default();
    s.push('\n');
    s
}

/// Writes one message.
///
/// Errors: the write fails.
pub fn write<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), ProtoError> {
    w.write_all(encode(msg).as_bytes())?;
    w.flush()?;
    Ok(())
}

/// Reads one message (a client reading the supervisor's); `Ok(None)` at the end of the
/// stream.
///
/// Errors: I/O, a line longer than [`MAX_LINE`], or a line that is not a `T`.
pub fn read<T: serde::de::DeserializeOwned>(r: &mut impl BufRead) -> Result<Option<T>, ProtoError> {
    read_limited(r, MAX_LINE)
}

/// Reads one message of at most `max` bytes (the supervisor reads clients' with
/// [`MAX_CLIENT_LINE`]); `Ok(None)` at the end of the stream. At most `max + 1` bytes are
/// buffered, whatever the peer sends.
///
/// Errors: I/O, a line longer than `max` (or cut off by the end of the stream after more
/// than `max` bytes), or a line that is not a `T`.
pub fn read_limited<T: serde::de::DeserializeOwned>(
    r: &mut impl BufRead,
    max: usize,
) -> Result<Option<T>, ProtoError> {
    let mut line = Vec::new();
    let n = std::io::Read::by_ref(r)
        .take(max as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.len() > max {
        return Err(ProtoError::Bad(format!("a line over {max} bytes")));
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(|e| ProtoError::Bad(e.to_string()))
}

/// Checks a client's `resize`: both sizes at least 1 and at most [`MAX_COLS`] x
/// [`MAX_ROWS`].
///
/// Errors: the refusal for that client, naming the size asked, the bounds and what to do.
pub fn check_size(cols: u16, rows: u16) -> Result<(), String> {
    if (1..=MAX_COLS).contains(&cols) && (1..=MAX_ROWS).contains(&rows) {
        return Ok(());
    }
    Err(format!(
        "resize to {cols} x {rows} refused: a pane is 1 to {MAX_COLS} columns by 1 to \
         {MAX_ROWS} rows; the pane keeps its size (use a smaller terminal window)"
    ))
}

/// The `keys` messages that carry `bytes` for `target`: one per [`KEYS_CHUNK`] bytes, so
/// that each line stays under [`MAX_CLIENT_LINE`] (a long paste).
pub fn keys_messages(target: &Target, bytes: &[u8]) -> Vec<ClientMsg> {
    bytes
        .chunks(KEYS_CHUNK)
        .map(|chunk| ClientMsg::Keys {
            target: target.clone(),
            bytes: Bytes(chunk.to_vec()),
        })
        .collect()
}

/// Checks a peer's hello version.
///
/// Errors: [`ProtoError::Version`] naming both versions.
pub fn check_version(theirs: u32) -> Result<(), ProtoError> {
    if theirs == VERSION {
        Ok(())
    } else {
        Err(ProtoError::Version {
            ours: VERSION,
            theirs,
        })
    }
}

/// The snapshot of one terminal: the bytes that redraw `parser`'s screen (contents, cursor,
/// input modes, title, current colours) on an empty terminal of the same size (vt100's
/// `state_formatted` and `attributes_formatted`).
pub fn screen_bytes(parser: &vt100::Parser) -> Vec<u8> {
    let screen = parser.screen();
    let mut out = screen.state_formatted();
    out.extend_from_slice(&screen.attributes_formatted());
    out
}
