//! The hub's sockets: accepting root peers, the hello and snapshot, each client's writer
//! thread and its reader (keys, sizes, answers, detach, stop).

use std::io::{BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::{log, Client, Shared};
use crate::attach::proto::{self, ClientMsg, ServerMsg};
use crate::ui::Request;

/// The uid of a unix socket's peer (SO_PEERCRED, unix(7)).
fn peer_uid(stream: &UnixStream) -> Option<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, a valid ucred.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(cred.uid)
}

pub(super) fn accept_loop(shared: &Arc<Shared>, listener: &UnixListener) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            // Shut down by `end` (or out of descriptors): stop serving.
            break;
        };
        // Only root may talk to the supervisor (DESIGN.md, Processes).
        if peer_uid(&stream) != Some(shared.uid) {
            log(format_args!(
                "[build-helper] attach: refused a client of another user"
            ));
            continue;
        }
        let shared = Arc::clone(shared);
        std::thread::spawn(move || {
            if let Err(e) = serve(&shared, stream) {
                log(format_args!("[build-helper] attach: a client failed: {e}"));
            }
        });
    }
}

/// One client: hello, snapshot, then its messages until it leaves.
fn serve(shared: &Arc<Shared>, stream: UnixStream) -> Result<(), proto::ProtoError> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let theirs = match proto::read_limited::<ClientMsg>(&mut reader, proto::MAX_CLIENT_LINE)? {
        Some(ClientMsg::Hello { protocol }) => protocol,
        Some(_) => return Err(proto::ProtoError::NoHello),
        None => return Err(proto::ProtoError::Closed),
    };
    if let Err(e) = proto::check_version(theirs) {
        // Say who we are, so the client can name both versions.
        let mut w = stream.try_clone()?;
        let _ = proto::write(
            &mut w,
            &ServerMsg::Hello {
                protocol: proto::VERSION,
                run: shared.run.clone(),
            },
        );
        return Err(e);
    }
    stream.set_read_timeout(None)?;
    let Some(id) = register(shared, &stream)? else {
        let served = super::MAX_CLIENTS;
        // Refused before it gets a writer thread or a queue; the write cannot block long.
        let reason = format!(
            "{served} clients are attached, the most a run serves; detach one (q, then d) \
             and attach again"
        );
        log(format_args!(
            "[build-helper] attach: refused a client: {reason}"
        ));
        let mut w = stream.try_clone()?;
        w.set_write_timeout(Some(Duration::from_secs(10)))?;
        for msg in [
            ServerMsg::Hello {
                protocol: proto::VERSION,
                run: shared.run.clone(),
            },
            ServerMsg::Dropped { reason },
        ] {
            proto::write(&mut w, &msg)?;
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return Ok(());
    };
    let result = read_loop(shared, id, &mut reader);
    let mut st = shared.state();
    if let Some(i) = st.clients.iter().position(|c| c.id == id) {
        let c = st.clients.remove(i);
        if let Err(proto::ProtoError::Bad(why)) = &result {
            // Say why before the connection ends: the writer sends what is queued, then
            // this, then shuts the socket down (within 10 s if the client does not read).
            let _ = c.stream.set_write_timeout(Some(Duration::from_secs(10)));
            let _ =
                c.tx.send(std::sync::Arc::new(proto::encode(&ServerMsg::Dropped {
                    reason: format!("the client sent {why}; attach again with build-helper attach"),
                })));
            let _ = c.stream.shutdown(std::net::Shutdown::Read);
        } else {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
    }
    if st.clients.is_empty() && st.question.take().is_some() {
        // Nobody is left to answer: the unattended default.
        drop(st);
        shared.answer(None);
    }
    result
}

/// Queues the snapshot and adds the client to the broadcast list in one step under the
/// lock, so it misses nothing and gets nothing twice. `None` when [`super::MAX_CLIENTS`]
/// are served already (counted under the same lock, so never one more).
fn register(shared: &Arc<Shared>, stream: &UnixStream) -> std::io::Result<Option<u64>> {
    let (tx, rx) = mpsc::channel::<Arc<String>>();
    let queued = Arc::new(AtomicUsize::new(0));
    let mut st = shared.state();
    if st.clients.len() >= super::MAX_CLIENTS {
        return Ok(None);
    }
    st.next_id += 1;
    let id = st.next_id;
    for msg in st.snapshot(&shared.run) {
        let line = Arc::new(proto::encode(&msg));
        queued.fetch_add(line.len(), Ordering::SeqCst);
        let _ = tx.send(line);
    }
    let writer = {
        let mut out = std::io::BufWriter::new(stream.try_clone()?);
        let queued = Arc::clone(&queued);
        let stream = stream.try_clone()?;
        std::thread::spawn(move || {
            while let Ok(line) = rx.recv() {
                if out.write_all(line.as_bytes()).is_err() {
                    break;
                }
                queued.fetch_sub(line.len(), Ordering::SeqCst);
                // Flush when nothing else waits: batches writes under load.
                if queued.load(Ordering::SeqCst) == 0 && out.flush().is_err() {
                    break;
                }
            }
            let _ = out.flush();
            let _ = stream.shutdown(std::net::Shutdown::Write);
        })
    };
    st.clients.push(Client {
        id,
        tx,
        queued,
        stream: stream.try_clone()?,
        writer: Some(writer),
    });
    log(format_args!(
        "[build-helper] attach: client {id} attached ({} attached)",
        st.clients.len()
    ));
    Ok(Some(id))
}

fn read_loop(
    shared: &Arc<Shared>,
    id: u64,
    reader: &mut BufReader<UnixStream>,
) -> Result<(), proto::ProtoError> {
    while let Some(msg) = proto::read_limited::<ClientMsg>(reader, proto::MAX_CLIENT_LINE)? {
        match msg {
            ClientMsg::Hello { .. } => {}
            ClientMsg::Keys { target, bytes } => {
                // Written after the lock is let go: a worker that reads no input fills its
                // terminal's buffer and blocks this writer, which must then hold up this
                // client only, never the run's output.
                let pty = shared
                    .state()
                    .panes
                    .iter()
                    .find(|p| p.target == target)
                    .and_then(|p| p.pty.clone());
                if let Some(pty) = pty {
                    pty.write(&bytes.0);
                }
            }
            ClientMsg::Resize { target, cols, rows } => {
                let mut st = shared.state();
                // A pane's emulator is `cols` x `rows` cells: an unbounded size is an
                // unbounded allocation (65535 x 65535 would be ~300 GB).
                if let Err(why) = proto::check_size(cols, rows) {
                    log(format_args!(
                        "[build-helper] attach: client {id}: {target}: {why}"
                    ));
                    st.tell(id, &ServerMsg::Say { text: why });
                    continue;
                }
                st.size = Some((rows, cols));
                // Only the run's panes: a name the run does not have makes no pane (the size
                // is kept for workers that start later).
                let Some(p) = st.panes.iter_mut().find(|p| p.target == target) else {
                    continue;
                };
                if p.term.screen().size() != (rows, cols) {
                    p.term.set_size(rows, cols);
                    if let Some(pty) = &p.pty {
                        pty.resize(cols, rows);
                    }
                }
            }
            ClientMsg::Answer { yes } => {
                let mut st = shared.state();
                if st.question.take().is_some() {
                    st.broadcast(&ServerMsg::Answered);
                    drop(st);
                    shared.answer(Some(yes));
                }
            }
            ClientMsg::Detach => {
                log(format_args!("[build-helper] attach: client {id} detached"));
                break;
            }
            ClientMsg::Stop => {
                log(format_args!(
                    "[build-helper] attach: client {id} stops the run"
                ));
                let _ = shared.requests.send(Request::Quit);
            }
        }
    }
    Ok(())
}
