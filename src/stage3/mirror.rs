//! Reading from one mirror: `http(s)://` through reqwest (the body streamed chunk by chunk,
//! from a byte offset with an HTTP `Range` request when resuming; connect timeout 30 s, at
//! most 60 s between bytes) or `file:///` from the local filesystem, plus reading small local
//! text files.
//!
//! Not for: deciding what to fetch or checking it (`fetch.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::error::chain;
use super::request::CHUNK;
use super::{Request, Stage3Error};

/// Largest accepted index or DIGESTS text, in bytes.
const TEXT_LIMIT: u64 = 1 << 20;
/// TCP (and TLS) connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the next bytes of a response.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Where files are fetched from: the mirror's `releases/<arch>/autobuilds` URL.
pub(super) struct Mirror {
    base: String,
    client: Option<reqwest::Client>,
}

/// A body being read: an HTTP stream or a local file.
pub(super) enum Body {
    Http(String, BoxStream<'static, reqwest::Result<Vec<u8>>>),
    File(PathBuf, tokio::fs::File),
}

impl Mirror {
    /// Checks the request and builds the HTTP client for one mirror `root` (one of the
    /// space-separated URLs of `req.mirror`).
    pub(super) fn new(root: &str, req: &Request) -> Result<Self, Stage3Error> {
        check_name("arch", &req.arch)?;
        check_name("flavor", &req.flavor)?;
        let root = root.trim().trim_end_matches('/');
        let bad = |reason: String| Stage3Error::BadMirror {
            mirror: root.to_string(),
            reason,
        };
        let url = reqwest::Url::parse(root).map_err(|e| bad(e.to_string()))?;
        let client = match url.scheme() {
            "http" | "https" => Some(
                reqwest::Client::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(READ_TIMEOUT)
                    .user_agent(concat!("build-helper/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| bad(chain(&e)))?,
            ),
            "file" if url.to_file_path().is_ok() => None,
            "file" => return Err(bad("not a local absolute path".into())),
            other => return Err(bad(format!("unsupported scheme {other:?}"))),
        };
        let base = format!("{root}/releases/{}/autobuilds", req.arch);
        Ok(Mirror { base, client })
    }

    /// `<base>/<rel>`.
    pub(super) fn url(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    /// Starts reading `url`. Errors: `Network`, `HttpStatus`, `Io` (file mirrors).
    pub(super) async fn open(&self, url: &str) -> Result<Body, Stage3Error> {
        Ok(self.open_from(url, 0).await?.0)
    }

    /// Starts reading `url` from byte `offset` (an HTTP `Range: bytes=<offset>-` request when
    /// `offset > 0`). Returns the body and whether it starts at `offset` (`false`: the server
    /// ignored the range and sends the whole file from byte 0).
    ///
    /// Errors: `Network`, `HttpStatus` (416 when `offset` is past the end), `Io`.
    pub(super) async fn open_from(
        &self,
        url: &str,
        offset: u64,
    ) -> Result<(Body, bool), Stage3Error> {
        let Some(client) = &self.client else {
            let path = reqwest::Url::parse(url)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| Stage3Error::BadMirror {
                    mirror: url.to_string(),
                    reason: "not a local absolute path".into(),
                })?;
            let mut file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| Stage3Error::io("open", &path, e))?;
            if offset > 0 {
                file.seek(std::io::SeekFrom::Start(offset))
                    .await
                    .map_err(|e| Stage3Error::io("seek in", &path, e))?;
            }
            return Ok((Body::File(path, file), true));
        };
        let net = |e: reqwest::Error| Stage3Error::Network {
            url: url.to_string(),
            detail: chain(&e),
        };
        let mut get = client.get(url);
        if offset > 0 {
            get = get.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        let resp = get.send().await.map_err(net)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Stage3Error::HttpStatus {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let resumed = offset == 0
            || (status == reqwest::StatusCode::PARTIAL_CONTENT
                && range_start(&resp) == Some(offset));
        if offset > 0 && status == reqwest::StatusCode::PARTIAL_CONTENT && !resumed {
            return Err(Stage3Error::Network {
                url: url.to_string(),
                detail: format!("asked for bytes from {offset}, got another range"),
            });
        }
        let stream = resp.bytes_stream().map(|r| r.map(|b| b.to_vec())).boxed();
        Ok((Body::Http(url.to_string(), stream), resumed))
    }

    /// Reads a whole small text (index, DIGESTS). Errors: as [`Mirror::open`], `TooLarge`,
    /// `NotText`.
    pub(super) async fn fetch_text(&self, url: &str) -> Result<String, Stage3Error> {
        let mut body = self.open(url).await?;
        let mut buf = Vec::new();
        while let Some(chunk) = body.next().await? {
            buf.extend_from_slice(&chunk);
            if buf.len() as u64 > TEXT_LIMIT {
                return Err(Stage3Error::TooLarge {
                    location: url.to_string(),
                    limit: TEXT_LIMIT,
                });
            }
        }
        String::from_utf8(buf).map_err(|_| Stage3Error::NotText {
            location: url.to_string(),
        })
    }
}

impl Body {
    /// The next chunk, `None` at the end.
    pub(super) async fn next(&mut self) -> Result<Option<Vec<u8>>, Stage3Error> {
        match self {
            Body::Http(url, stream) => match stream.next().await {
                None => Ok(None),
                Some(Ok(chunk)) => Ok(Some(chunk)),
                Some(Err(e)) => Err(Stage3Error::Network {
                    url: url.clone(),
                    detail: chain(&e),
                }),
            },
            Body::File(path, file) => {
                let mut buf = vec![0u8; CHUNK];
                let n = file
                    .read(&mut buf)
                    .await
                    .map_err(|e| Stage3Error::io("read", &*path, e))?;
                buf.truncate(n);
                Ok((n > 0).then_some(buf))
            }
        }
    }
}

/// The first byte of a `Content-Range: bytes <first>-<last>/<total>` answer.
fn range_start(resp: &reqwest::Response) -> Option<u64> {
    let value = resp.headers().get(reqwest::header::CONTENT_RANGE)?;
    let rest = value.to_str().ok()?.trim().strip_prefix("bytes ")?;
    rest.split('-').next()?.trim().parse().ok()
}

/// Refuses empty names and anything but letters, digits and `._+-` (the names become URL
/// and file name parts).
fn check_name(what: &str, value: &str) -> Result<(), Stage3Error> {
    let ok = !value.is_empty()
        && !value.starts_with('.')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if ok {
        return Ok(());
    }
    Err(Stage3Error::BadRequest {
        reason: format!("{what} {value:?} must be non-empty letters, digits and ._+-"),
    })
}

/// Reads a small local text file (a `file://` mirror's index or DIGESTS) through the one
/// reader of user-supplied files ([`crate::saferoot::read_file`]: a FIFO or a device is
/// refused without blocking, at most `TEXT_LIMIT` bytes). Errors: `Io`, `TooLarge`,
/// `NotText`.
pub(super) async fn read_text_file(path: &Path) -> Result<String, Stage3Error> {
    let owned = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || crate::saferoot::read_file(&owned, TEXT_LIMIT))
        .await
        .map_err(|e| Stage3Error::io("read", path, std::io::Error::other(e.to_string())))?;
    let buf = match read {
        Ok(buf) => buf,
        Err(crate::saferoot::SafeError::TooLarge { .. }) => {
            return Err(Stage3Error::TooLarge {
                location: path.display().to_string(),
                limit: TEXT_LIMIT,
            })
        }
        Err(e) => return Err(Stage3Error::io("read", path, e.into_io())),
    };
    String::from_utf8(buf).map_err(|_| Stage3Error::NotText {
        location: path.display().to_string(),
    })
}
