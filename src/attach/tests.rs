//! Unit tests of the attach protocol (framing, versions, snapshots) and the hub (clients,
//! bounded queues, keys to the right target, questions without a client).

use std::io::{BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::hub;
use super::proto::{self, Bytes, ClientMsg, ProtoError, ServerMsg};
use crate::config::Target;
use crate::ui::tui::app::{App, KeySink};
use crate::ui::tui::scrollback::Scrollback;
use crate::ui::{Frontend, Request};

fn target(name: &str) -> Target {
    Target::parse(&format!("x86_64-unknown-linux-musl.{name}")).unwrap()
}

/// Output that exercises the emulator: colours, cursor movement, a progress line
/// rewritten with `\r`, a title, a line without its end.
const WORKER_OUTPUT: &[u8] = b"\x1b]0;title\x07step 1 \x1b[1;32mdone\x1b[0m\r\n\
    progress 10%\rprogress 50%\rprogress 90%\r\n\
    \x1b[5;10Hat five ten\x1b[2;1H\x1b[Kline two rewritten\r\n\
    \x1b[38;5;208morange\x1b[0m and plain\r\nprompt $ ";

#[test]
fn messages_are_one_json_line_each_and_bytes_survive_the_trip() {
    let msg = ServerMsg::Output {
        target: target("a"),
        bytes: Bytes(b"a\nb\x1b[31m\xff\x00".to_vec()),
    };
    let line = proto::encode(&msg);
    assert!(line.ends_with('\n'));
    assert_eq!(line.matches('\n').count(), 1, "{line}");
    assert!(line.starts_with("{\"msg\":\"output\""), "{line}");
    let two = format!("{line}{}", proto::encode(&ServerMsg::End { code: 130 }));
    let mut r = BufReader::new(two.as_bytes());
    assert_eq!(proto::read::<ServerMsg>(&mut r).unwrap(), Some(msg));
    assert_eq!(
        proto::read::<ServerMsg>(&mut r).unwrap(),
        Some(ServerMsg::End { code: 130 })
    );
    assert_eq!(
        proto::read::<ServerMsg>(&mut r).unwrap(),
        None,
        "end of stream"
    );
}

#[test]
fn a_line_that_is_no_message_is_an_error_naming_it() {
    let mut r = BufReader::new(&b"{\"msg\":\"launch-missiles\"}\n"[..]);
    let e = proto::read::<ClientMsg>(&mut r).unwrap_err();
    assert!(matches!(e, ProtoError::Bad(_)), "{e}");
    assert!(e.to_string().contains("launch-missiles"), "{e}");
}

#[test]
fn a_version_mismatch_names_both_versions() {
    let e = proto::check_version(proto::VERSION + 1).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("protocol {}", proto::VERSION + 1))
            && text.contains(&format!("speaks {}", proto::VERSION)),
        "{text}"
    );
    assert!(proto::check_version(proto::VERSION).is_ok());
}

#[test]
fn a_client_refuses_a_server_of_another_version() {
    let dir = tempfile::tempdir().unwrap();
    let listener = UnixListener::bind(crate::rundir::sockets::attach(dir.path())).unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let hello = proto::read::<ClientMsg>(&mut r).unwrap();
        let mut w = s;
        proto::write(
            &mut w,
            &ServerMsg::Hello {
                protocol: 99,
                run: "r".into(),
            },
        )
        .unwrap();
        hello
    });
    let e = super::client::connect(dir.path(), None).unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains("protocol 99") && text.contains(&format!("speaks {}", proto::VERSION)),
        "{text}"
    );
    assert_eq!(
        server.join().unwrap(),
        Some(ClientMsg::Hello {
            protocol: proto::VERSION
        })
    );
}

#[test]
fn a_snapshot_replayed_gives_the_live_screen_and_scrollback() {
    let mut live = vt100::Parser::new(12, 40, 0);
    let mut lines = Scrollback::new(100);
    for _ in 0..3 {
        live.process(WORKER_OUTPUT);
        lines.feed(WORKER_OUTPUT);
    }
    let screen = proto::screen_bytes(&live);
    let t = target("a");
    let mut app = App::new();
    app.load_screen(&t, (12, 40), &lines.bytes(), &screen, None);
    let got = app.panes[0].term.screen();
    let want = live.screen();
    assert_eq!(got.contents_formatted(), want.contents_formatted());
    assert_eq!(got.cursor_position(), want.cursor_position());
    assert_eq!(got.title(), want.title());
    assert_eq!(app.panes[0].lines.len(), lines.len());
    for i in 0..lines.len() {
        assert_eq!(app.panes[0].lines.line(i), lines.line(i), "line {i}");
    }
    // Output after the snapshot lands where it would have on the live screen.
    live.process(b"echo more\r\n");
    app.output(&t, b"echo more\r\n");
    assert_eq!(
        app.panes[0].term.screen().contents_formatted(),
        live.screen().contents_formatted()
    );
}

/// Keys and sizes a pane received.
#[derive(Default)]
struct Recorder {
    keys: Mutex<Vec<u8>>,
    sizes: Mutex<Vec<(u16, u16)>>,
}

impl KeySink for Recorder {
    fn write(&self, bytes: &[u8]) {
        self.keys.lock().unwrap().extend_from_slice(bytes);
    }
    fn resize(&self, cols: u16, rows: u16) {
        self.sizes.lock().unwrap().push((cols, rows));
    }
}

struct TestHub {
    hub: hub::Hub,
    handle: Option<hub::HubHandle>,
    requests: tokio::sync::mpsc::UnboundedReceiver<Request>,
    dir: tempfile::TempDir,
}

fn test_hub() -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let (tx, requests) = tokio::sync::mpsc::unbounded_channel();
    let uid = nix::unistd::geteuid().as_raw();
    // A small queue: the slow-client test needs only a few MiB of output.
    let (hub, handle) = hub::start_for(dir.path(), tx, uid, 1 << 20).unwrap();
    TestHub {
        hub,
        handle: Some(handle),
        requests,
        dir,
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.end(0);
        }
    }
}

/// A client that said hello: its writer and its reader.
fn client(dir: &std::path::Path) -> (UnixStream, BufReader<UnixStream>) {
    super::client::connect(dir, None).unwrap()
}

/// Reads messages until `pred` matches one; panics after 10 s.
fn read_until(r: &mut BufReader<UnixStream>, pred: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    loop {
        let m = proto::read::<ServerMsg>(r).unwrap().expect("a message");
        if pred(&m) {
            return m;
        }
    }
}

fn wait(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_late_client_gets_every_screen_then_live_output() {
    let mut h = test_hub();
    let (a, b) = (target("a"), target("b"));
    h.hub.output(&a, b"first of a\r\n");
    h.hub.output(&b, b"first of b\r\n");
    h.hub.say("run started");
    let (_w, mut r) = client(h.dir.path());
    let mut screens = Vec::new();
    let said = loop {
        match proto::read::<ServerMsg>(&mut r).unwrap().unwrap() {
            ServerMsg::Screen { target, screen, .. } => screens.push((target, screen)),
            ServerMsg::Say { text } => break text,
            other => panic!("unexpected before the messages: {other:?}"),
        }
    };
    assert_eq!(said, "run started");
    assert_eq!(screens.len(), 2);
    assert_eq!(screens[0].0, a);
    assert!(String::from_utf8_lossy(&screens[1].1 .0).contains("first of b"));
    h.hub.output(&a, b"live\r\n");
    let m = read_until(&mut r, |m| matches!(m, ServerMsg::Output { .. }));
    assert_eq!(
        m,
        ServerMsg::Output {
            target: a,
            bytes: Bytes(b"live\r\n".to_vec())
        }
    );
}

#[test]
fn keys_and_sizes_go_to_the_right_target_and_stop_asks_to_quit() {
    let mut h = test_hub();
    let (a, b) = (target("a"), target("b"));
    let (ra, rb) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    h.hub.attach_sink(&a, ra.clone());
    h.hub.attach_sink(&b, rb.clone());
    let (mut w, _r) = client(h.dir.path());
    for msg in [
        ClientMsg::Keys {
            target: b.clone(),
            bytes: Bytes(b"echo hi\r".to_vec()),
        },
        ClientMsg::Resize {
            target: a.clone(),
            cols: 100,
            rows: 30,
        },
        ClientMsg::Stop,
    ] {
        proto::write(&mut w, &msg).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let quit = loop {
        match h.requests.try_recv() {
            Ok(q) => break q,
            Err(_) => {
                assert!(Instant::now() < deadline, "no quit request");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    assert_eq!(quit, Request::Quit);
    assert_eq!(rb.keys.lock().unwrap().as_slice(), b"echo hi\r");
    assert!(ra.keys.lock().unwrap().is_empty(), "a got b's keys");
    assert_eq!(ra.sizes.lock().unwrap().last(), Some(&(100, 30)));
    assert_eq!(rb.sizes.lock().unwrap().as_slice(), &[(80, 24)]);
    // A worker started later gets the size clients draw at.
    assert_eq!(h.hub.pty_size(&target("c")), (100, 30));
}

#[test]
fn a_client_that_does_not_read_is_dropped_and_never_blocks_the_run() {
    let mut h = test_hub();
    let t = target("a");
    let (_w, r) = client(h.dir.path());
    wait("the client", || h.hub.clients() == 1);
    // 4 MiB of output (5.3 MiB as base64) for a client that reads nothing: past its 1 MiB
    // queue and the socket's buffer. Were the hub to wait for the client, this would hang.
    let chunk = b"0123456789abcdef".repeat(4 << 10);
    for _ in 0..64 {
        h.hub.output(&t, &chunk);
    }
    wait("the slow client to be dropped", || h.hub.clients() == 0);
    // Its connection ends (mid-line: what was queued is cut off) and never hangs.
    let mut r = r;
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    loop {
        match proto::read::<ServerMsg>(&mut r) {
            Ok(Some(_)) => continue,
            Ok(None) | Err(ProtoError::Bad(_)) => break,
            Err(e) => panic!("the dropped client's stream did not end: {e}"),
        }
    }
}

#[test]
fn questions_without_a_client_get_the_unattended_default_at_once() {
    let mut h = test_hub();
    assert_eq!(h.hub.ask("Unmount now?"), None);
    h.hub.wait_for_user("press Enter");
}

#[test]
fn a_client_answers_the_umount_question_and_gets_the_end() {
    let mut h = test_hub();
    let (mut w, mut r) = client(h.dir.path());
    wait("the client", || h.hub.clients() == 1);
    let answerer = std::thread::spawn(move || {
        let m = read_until(&mut r, |m| matches!(m, ServerMsg::Ask { .. }));
        proto::write(&mut w, &ClientMsg::Answer { yes: false }).unwrap();
        let _ = read_until(&mut r, |m| matches!(m, ServerMsg::Answered));
        let end = read_until(&mut r, |m| matches!(m, ServerMsg::End { .. }));
        let _ = w.flush();
        (m, end)
    });
    assert_eq!(h.hub.ask("Unmount now? [Y/n]"), Some(false));
    h.handle.take().unwrap().end(1);
    let (ask, end) = answerer.join().unwrap();
    assert_eq!(
        ask,
        ServerMsg::Ask {
            text: "Unmount now? [Y/n]".into(),
            wait: false
        }
    );
    assert_eq!(end, ServerMsg::End { code: 1 });
    assert!(
        !crate::rundir::sockets::attach(h.dir.path()).exists(),
        "the socket is removed at the end"
    );
}

#[test]
fn two_clients_see_the_same_output_and_one_detaching_leaves_the_other() {
    let mut h = test_hub();
    let t = target("a");
    let (mut w1, mut r1) = client(h.dir.path());
    let (_w2, mut r2) = client(h.dir.path());
    wait("two clients", || h.hub.clients() == 2);
    h.hub.output(&t, b"for both\r\n");
    for r in [&mut r1, &mut r2] {
        let m = read_until(r, |m| matches!(m, ServerMsg::Output { .. }));
        assert_eq!(
            m,
            ServerMsg::Output {
                target: t.clone(),
                bytes: Bytes(b"for both\r\n".to_vec())
            }
        );
    }
    proto::write(&mut w1, &ClientMsg::Detach).unwrap();
    wait("the detach", || h.hub.clients() == 1);
    h.hub.output(&t, b"after\r\n");
    let m = read_until(&mut r2, |m| matches!(m, ServerMsg::Output { .. }));
    assert_eq!(
        m,
        ServerMsg::Output {
            target: t,
            bytes: Bytes(b"after\r\n".to_vec())
        }
    );
    assert!(
        h.requests.try_recv().is_err(),
        "detaching does not stop the run"
    );
}

#[test]
fn a_resize_beyond_the_bounds_is_refused_to_that_client_and_changes_nothing() {
    let mut h = test_hub();
    let a = target("a");
    let ra = Arc::new(Recorder::default());
    h.hub.attach_sink(&a, ra.clone());
    let (mut w, mut r) = client(h.dir.path());
    wait("the client", || h.hub.clients() == 1);
    for (cols, rows) in [(65535, 65535), (1001, 24), (80, 1001), (0, 24)] {
        proto::write(
            &mut w,
            &ClientMsg::Resize {
                target: a.clone(),
                cols,
                rows,
            },
        )
        .unwrap();
        let m = read_until(&mut r, |m| matches!(m, ServerMsg::Say { .. }));
        let ServerMsg::Say { text } = m else {
            unreachable!()
        };
        assert!(
            text.contains(&format!("resize to {cols} x {rows} refused")) && text.contains("1000"),
            "{text}"
        );
    }
    // The pane kept its size; the client is still served; a size within bounds applies.
    assert_eq!(ra.sizes.lock().unwrap().as_slice(), &[(80, 24)]);
    assert_eq!(h.hub.pty_size(&target("later")), (80, 24));
    proto::write(
        &mut w,
        &ClientMsg::Resize {
            target: a.clone(),
            cols: 1000,
            rows: 1000,
        },
    )
    .unwrap();
    wait("the bounded resize", || {
        ra.sizes.lock().unwrap().last() == Some(&(1000, 1000))
    });
    assert_eq!(h.hub.clients(), 1);
}

#[test]
fn a_resize_of_a_target_the_run_does_not_have_makes_no_pane() {
    let h = test_hub();
    let (mut w, _r) = client(h.dir.path());
    wait("the client", || h.hub.clients() == 1);
    for i in 0..50 {
        proto::write(
            &mut w,
            &ClientMsg::Resize {
                target: target(&format!("ghost{i}")),
                cols: 100,
                rows: 30,
            },
        )
        .unwrap();
    }
    wait("the sizes", || h.hub.pty_size(&target("x")) == (100, 30));
    drop(w);
    // A new client's snapshot holds no screen: no pane was made for the names.
    let (_w2, mut r2) = client(h.dir.path());
    r2.get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    while let Ok(Some(m)) = proto::read::<ServerMsg>(&mut r2) {
        assert!(!matches!(m, ServerMsg::Screen { .. }), "{m:?}");
    }
}

#[test]
fn a_client_line_over_the_bound_ends_that_client_with_a_reason() {
    let h = test_hub();
    let (mut w, mut r) = client(h.dir.path());
    wait("the client", || h.hub.clients() == 1);
    // 1 MiB without a newline: the hub reads at most MAX_CLIENT_LINE + 1 bytes of it.
    let junk = vec![b'x'; 1 << 20];
    let _ = w.write_all(&junk);
    let m = read_until(&mut r, |m| matches!(m, ServerMsg::Dropped { .. }));
    let ServerMsg::Dropped { reason } = m else {
        unreachable!()
    };
    assert!(
        reason.contains(&format!("a line over {} bytes", proto::MAX_CLIENT_LINE)),
        "{reason}"
    );
    wait("the client to go", || h.hub.clients() == 0);
}

#[test]
fn a_long_paste_goes_as_keys_messages_within_the_line_bound() {
    let t = target("a");
    let paste = vec![b'p'; 100_000];
    let msgs = proto::keys_messages(&t, &paste);
    assert_eq!(msgs.len(), 100_000usize.div_ceil(proto::KEYS_CHUNK));
    let mut joined = Vec::new();
    for m in &msgs {
        assert!(proto::encode(m).len() <= proto::MAX_CLIENT_LINE);
        let ClientMsg::Keys { bytes, .. } = m else {
            panic!("{m:?}")
        };
        joined.extend_from_slice(&bytes.0);
    }
    assert_eq!(joined, paste);
}

#[test]
fn stale_sockets_of_a_dead_run_are_removed_and_a_live_runs_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path();
    std::fs::write(run.join(crate::rundir::LOCK), "1\n").unwrap();
    let sockets = [
        crate::rundir::sockets::supervisor(run),
        crate::rundir::sockets::attach(run),
    ];
    for s in &sockets {
        drop(UnixListener::bind(s).unwrap());
    }
    // A live supervisor holds the lock: nothing is removed.
    let held = std::fs::File::open(run.join(crate::rundir::LOCK)).unwrap();
    // SAFETY: flock on a valid descriptor.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&held), libc::LOCK_EX) },
        0
    );
    assert!(crate::rundir::sockets::remove_stale(run).is_empty());
    assert!(sockets.iter().all(|s| s.exists()));
    drop(held);
    // Dead: both go, and a second call finds nothing.
    let removed = crate::rundir::sockets::remove_stale(run);
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(sockets.iter().all(|s| !s.exists()));
    assert!(crate::rundir::sockets::remove_stale(run).is_empty());
    // A regular file at a socket's name is not ours to remove.
    std::fs::write(&sockets[0], "x").unwrap();
    assert!(crate::rundir::sockets::remove_stale(run).is_empty());
    assert!(sockets[0].exists());
}

/// A pane whose worker reads no input: a write blocks until the test lets it go.
struct StuckInput {
    writing: std::sync::atomic::AtomicBool,
    release: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl KeySink for StuckInput {
    fn write(&self, _bytes: &[u8]) {
        self.writing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self
            .release
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(20));
    }
    fn resize(&self, _cols: u16, _rows: u16) {}
}

#[test]
fn keys_for_a_worker_that_reads_nothing_never_hold_up_the_runs_output() {
    let mut h = test_hub();
    let a = target("a");
    let (release, rx) = std::sync::mpsc::channel();
    let stuck = Arc::new(StuckInput {
        writing: std::sync::atomic::AtomicBool::new(false),
        release: Mutex::new(rx),
    });
    h.hub.attach_sink(&a, stuck.clone());
    let (mut w, _r) = client(h.dir.path());
    proto::write(
        &mut w,
        &ClientMsg::Keys {
            target: a.clone(),
            bytes: Bytes(b"typed while nobody reads\r".to_vec()),
        },
    )
    .unwrap();
    wait("the blocked write", || {
        stuck.writing.load(std::sync::atomic::Ordering::SeqCst)
    });
    // The run's output goes on (the hub's lock is free) while the write is blocked.
    let t0 = Instant::now();
    h.hub.output(&a, b"the build goes on\r\n");
    h.hub.say("still running");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    release.send(()).unwrap();
}

#[test]
fn a_client_beyond_the_most_a_run_serves_is_told_and_the_others_stay() {
    let h = test_hub();
    let mut kept = Vec::new();
    for _ in 0..hub::MAX_CLIENTS {
        kept.push(client(h.dir.path()));
    }
    wait("every client", || h.hub.clients() == hub::MAX_CLIENTS);
    let (_w, mut r) = client(h.dir.path());
    let m = read_until(&mut r, |m| matches!(m, ServerMsg::Dropped { .. }));
    let ServerMsg::Dropped { reason } = m else {
        unreachable!()
    };
    assert!(reason.contains("64 clients are attached"), "{reason}");
    assert_eq!(h.hub.clients(), hub::MAX_CLIENTS);
    // One leaves: a new client is served again.
    drop(kept.pop());
    wait("a free place", || h.hub.clients() < hub::MAX_CLIENTS);
    let (_w2, _r2) = client(h.dir.path());
    wait("the new client", || h.hub.clients() == hub::MAX_CLIENTS);
}
