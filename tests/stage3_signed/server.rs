//! A tiny HTTP/1.1 server on 127.0.0.1 for the tests: serves a directory, honours
//! `Range: bytes=N-`, logs every request line with its Range header, and can cut the first
//! response of one file after a number of bytes (closing the connection) to test resumption.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What the server did: one line per request, `GET <path> range=<value or ->`.
pub type Log = Arc<Mutex<Vec<String>>>;

/// A running server.
pub struct Server {
    pub url: String,
    pub log: Log,
}

/// Cut the first response for a path ending in `suffix` after `bytes` body bytes.
#[derive(Clone)]
pub struct Cut {
    pub suffix: String,
    pub bytes: u64,
}

/// Serves `root` on an ephemeral loopback port until the test process ends.
pub fn serve(root: PathBuf, cut: Option<Cut>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log: Log = Arc::default();
    let cut = Arc::new(Mutex::new(cut));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for sock in listener.incoming().flatten() {
            let (root, log, cut) = (root.clone(), log2.clone(), cut.clone());
            std::thread::spawn(move || {
                let _ = handle(sock, &root, &log, &cut);
            });
        }
    });
    Server { url, log }
}

fn handle(
    mut sock: TcpStream,
    root: &std::path::Path,
    log: &Log,
    cut: &Mutex<Option<Cut>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(sock.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
    log.lock().unwrap().push(format!(
        "GET {path} range={}",
        range.as_deref().unwrap_or("-")
    ));
    let file = root.join(path.trim_start_matches('/'));
    let Ok(mut f) = std::fs::File::open(&file) else {
        let body = b"not found";
        write!(
            sock,
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        return sock.write_all(body);
    };
    let len = f.metadata()?.len();
    let start: u64 = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if start > len {
        return write!(
            sock,
            "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    if range.is_some() {
        write!(
            sock,
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{len}\r\nConnection: close\r\n\r\n",
            len - start,
            len.saturating_sub(1)
        )?;
    } else {
        write!(
            sock,
            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )?;
    }
    f.seek(SeekFrom::Start(start))?;
    let mut limit = u64::MAX;
    {
        let mut cut = cut.lock().unwrap();
        if cut.as_ref().is_some_and(|c| path.ends_with(&c.suffix)) {
            limit = cut.take().map(|c| c.bytes).unwrap_or(u64::MAX);
        }
    }
    let mut sent = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let n = (n as u64).min(limit - sent) as usize;
        sock.write_all(&buf[..n])?;
        sent += n as u64;
        if sent >= limit {
            // Close the connection half-way, as a broken link would.
            sock.flush()?;
            return sock.shutdown(std::net::Shutdown::Both);
        }
    }
    Ok(())
}
