//! The parsers of outside input, each as the campaign calls it, with its samples: real files
//! of the repository (configs/, starters/, tests/fixtures/) or messages and documents in the
//! exact format of their source.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::harness::{Make, Parse};
use crate::attach::proto::{self, Bytes, ClientMsg, ServerMsg};
use crate::config::Target;
use crate::protocol::{self, WorkerMsg};
use crate::stage3::parse_tests::clearsign;

/// One parser of the campaign.
pub struct Parser {
    /// Its name in the table.
    pub name: &'static str,
    /// Makes the parser on the campaign's thread.
    pub make: Make,
    /// The samples mutations start from.
    pub samples: fn() -> Vec<Vec<u8>>,
}

/// Every parser that takes outside input, in the table's order.
pub fn all() -> Vec<Parser> {
    vec![
        Parser {
            name: "starter-toml",
            make: starter_toml,
            samples: starter_samples,
        },
        Parser {
            name: "make.conf",
            make: make_conf,
            samples: make_conf_samples,
        },
        Parser {
            name: "repos.conf",
            make: repos_conf,
            samples: repos_conf_samples,
        },
        Parser {
            name: "package.*",
            make: package_files,
            samples: package_samples,
        },
        Parser {
            name: "worlds",
            make: world_file,
            samples: world_samples,
        },
        Parser {
            name: "tree",
            make: tree_file,
            samples: tree_samples,
        },
        Parser {
            name: "import-starter",
            make: import_starter,
            samples: script_samples,
        },
        Parser {
            name: "attach-client",
            make: attach_client,
            samples: client_samples,
        },
        Parser {
            name: "attach-server",
            make: attach_server,
            samples: server_samples,
        },
        Parser {
            name: "worker-socket",
            make: worker_socket,
            samples: worker_samples,
        },
        Parser {
            name: "emerge-output",
            make: emerge_output,
            samples: output_samples,
        },
        Parser {
            name: "emerge.log",
            make: emerge_log,
            samples: emerge_log_samples,
        },
        Parser {
            name: "stage3-digests",
            make: digests,
            samples: digests_samples,
        },
        Parser {
            name: "stage3-index",
            make: index,
            samples: index_samples,
        },
    ]
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The regular files directly in `dir` (not hidden), sorted.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

/// The contents of `rel` (a file, or the files of a directory) in every configuration of
/// configs/.
fn config_samples(rel: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for config in files_or_dirs(&repo().join("configs")) {
        let p = config.join(rel);
        let files = if p.is_dir() { files_in(&p) } else { vec![p] };
        out.extend(files.iter().filter_map(|f| std::fs::read(f).ok()));
    }
    out
}

fn files_or_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Copies the directory `from` to `to`, links as links.
fn copy_tree(from: &Path, to: &Path) {
    let _ = std::fs::create_dir_all(to);
    for entry in files_or_dirs(from) {
        let Some(name) = entry.file_name() else {
            continue;
        };
        let dest = to.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&entry) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            if let Ok(target) = std::fs::read_link(&entry) {
                let _ = std::os::unix::fs::symlink(target, &dest);
            }
        } else if meta.is_dir() {
            copy_tree(&entry, &dest);
        } else {
            let _ = std::fs::copy(&entry, &dest);
        }
    }
}

/// A copy of the demo's target configuration and of the host configuration in a temporary
/// directory kept for the thread's life; `check` runs on both after `rel` (in the target,
/// and in the host when `host` is true) got the case's bytes.
fn config_parser(rel: &'static str, host: bool) -> Parse {
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => panic!("no temporary directory for the configuration fuzzing: {e}"),
    };
    let target = tmp.path().join("x86_64-unknown-linux-musl.demo-a");
    copy_tree(
        &repo().join("configs/x86_64-unknown-linux-musl.demo-a"),
        &target,
    );
    let host_dir = tmp.path().join("host");
    copy_tree(&repo().join("configs/host-amd64"), &host_dir);
    let mut dirs = vec![target.clone()];
    if host {
        dirs.push(host_dir.clone());
    }
    Box::new(move |input| {
        let _keep = &tmp;
        for dir in &dirs {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::fs::write(&path, input);
        }
        let _ = crate::config::check(&dirs);
    })
}

fn make_conf() -> Parse {
    config_parser("target-portage/make.conf", true)
}

fn make_conf_samples() -> Vec<Vec<u8>> {
    let mut out = config_samples("target-portage/make.conf");
    out.extend(config_samples("target-portage/profile/make.defaults"));
    out
}

fn repos_conf() -> Parse {
    config_parser("target-portage/repos.conf/demo-local.conf", false)
}

fn repos_conf_samples() -> Vec<Vec<u8>> {
    config_samples("target-portage/repos.conf")
}

fn package_files() -> Parse {
    config_parser("target-portage/package.use/fuzz", true)
}

fn package_samples() -> Vec<Vec<u8>> {
    let mut out = config_samples("target-portage/package.use");
    out.extend(config_samples("target-portage/package.accept_keywords"));
    out.extend(config_samples("target-portage/env/dev-lang/rust"));
    out
}

fn world_file() -> Parse {
    config_parser("worlds/net", false)
}

fn world_samples() -> Vec<Vec<u8>> {
    let mut out = config_samples("worlds");
    out.extend(config_samples("build-arch"));
    out
}

fn tree_file() -> Parse {
    config_parser("worlds/tree/net", false)
}

fn tree_samples() -> Vec<Vec<u8>> {
    config_samples("worlds/tree")
}

fn starter_toml() -> Parse {
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => panic!("no temporary directory for the starter fuzzing: {e}"),
    };
    let path = tmp.path().join("starter.toml");
    Box::new(move |input| {
        let _keep = &tmp;
        let _ = std::fs::write(&path, input);
        let _ = crate::starter::load(&path, &|_| None);
        // The environment overrides go through the same checks as the file's values.
        let env =
            |name: &str| (name == "MNT_TYPE").then(|| String::from_utf8_lossy(input).into_owned());
        let _ = crate::starter::load(&path, &env);
    })
}

fn starter_samples() -> Vec<Vec<u8>> {
    files_in(&repo().join("starters"))
        .iter()
        .filter_map(|f| std::fs::read(f).ok())
        .collect()
}

fn import_starter() -> Parse {
    Box::new(|input| {
        let _ =
            crate::starter::import_starter(&String::from_utf8_lossy(input), Path::new("fuzz.sh"));
    })
}

fn script_samples() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> =
        std::fs::read(repo().join("tests/fixtures/example-starter-parallel.sh"))
            .into_iter()
            .collect();
    out.push(
        b"#!/bin/sh\nexport MNT_TYPE=\"tmpfs\"\nexport TMP_TYPE=bind\n\
          if [ -n \"$X\" ]; then\n  export HIST_TYPE=squashfs\nfi\n\
          export GENTOO_MIRRORS=\"${GENTOO_MIRRORS}\"\nexport MAKEOPTS=\"-j$(nproc)\"\n\
          HELPER_CMD=\"./build-helper.sh aarch64-unknown-linux-musl:x86_64-unknown-linux-musl rpi4b:laptop\"\n\
          $HELPER_CMD\n"
            .to_vec(),
    );
    out
}

fn target(name: &str) -> Target {
    match Target::new("x86_64-unknown-linux-musl", name) {
        Ok(t) => t,
        Err(e) => panic!("sample target: {e}"),
    }
}

fn attach_client() -> Parse {
    Box::new(|input| {
        let mut r = input;
        loop {
            match proto::read_limited::<ClientMsg>(&mut r, proto::MAX_CLIENT_LINE) {
                Ok(None) | Err(proto::ProtoError::Io(_)) => break,
                Ok(Some(ClientMsg::Resize { cols, rows, .. })) => {
                    let _ = proto::check_size(cols, rows);
                }
                Ok(Some(ClientMsg::Keys { target, bytes })) => {
                    let _ = proto::keys_messages(&target, &bytes.0);
                }
                Ok(Some(ClientMsg::Hello { protocol })) => {
                    let _ = proto::check_version(protocol);
                }
                Ok(Some(_)) | Err(_) => {}
            }
        }
    })
}

fn client_samples() -> Vec<Vec<u8>> {
    let t = target("demo-a");
    let msgs = [
        ClientMsg::Hello {
            protocol: proto::VERSION,
        },
        ClientMsg::Keys {
            target: t.clone(),
            bytes: Bytes(b"echo hi\r\x1b[A".to_vec()),
        },
        ClientMsg::Resize {
            target: t,
            cols: 160,
            rows: 48,
        },
        ClientMsg::Answer { yes: true },
        ClientMsg::Detach,
        ClientMsg::Stop,
    ];
    let all: String = msgs.iter().map(proto::encode).collect();
    let mut out: Vec<Vec<u8>> = msgs.iter().map(|m| proto::encode(m).into_bytes()).collect();
    out.push(all.into_bytes());
    out
}

fn attach_server() -> Parse {
    Box::new(|input| {
        let mut r = input;
        loop {
            match proto::read::<ServerMsg>(&mut r) {
                Ok(None) | Err(proto::ProtoError::Io(_)) => break,
                Ok(Some(_)) | Err(_) => {}
            }
        }
    })
}

fn server_samples() -> Vec<Vec<u8>> {
    let t = target("demo-a");
    let msgs = [
        ServerMsg::Hello {
            protocol: proto::VERSION,
            run: "demo-a-20261207-060000".into(),
        },
        ServerMsg::Screen {
            target: t.clone(),
            rows: 24,
            cols: 80,
            scrollback: Bytes(b"line one\r\nline two\r\n".to_vec()),
            screen: Bytes(b"\x1b[H\x1b[2Jprompt $ ".to_vec()),
            live: true,
        },
        ServerMsg::Say {
            text: "run started".into(),
        },
        ServerMsg::Output {
            target: t.clone(),
            bytes: Bytes(b">>> Emerging (1 of 2)\r\n".to_vec()),
        },
        ServerMsg::Started { target: t.clone() },
        ServerMsg::Gone { target: t },
        ServerMsg::Alert {
            title: "demo-b failed".into(),
        },
        ServerMsg::Summary {
            table: "target  result\ndemo-a  done\n".into(),
        },
        ServerMsg::Ask {
            text: "Unmount now? [Y/n]".into(),
            wait: false,
        },
        ServerMsg::Answered,
        ServerMsg::End { code: 0 },
        ServerMsg::Dropped {
            reason: "too slow".into(),
        },
    ];
    let all: String = msgs.iter().map(proto::encode).collect();
    let mut out: Vec<Vec<u8>> = msgs.iter().map(|m| proto::encode(m).into_bytes()).collect();
    out.push(all.into_bytes());
    out
}

fn worker_socket() -> Parse {
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => panic!("no runtime for the worker socket fuzzing: {e}"),
    };
    Box::new(move |input| {
        rt.block_on(async {
            let mut r = tokio::io::BufReader::new(input);
            // As the supervisor's reader: a line over the bound ends the connection.
            while let Ok(Some(line)) = protocol::read_line(&mut r).await {
                let _ = protocol::decode_worker(&line);
            }
        });
    })
}

fn worker_samples() -> Vec<Vec<u8>> {
    let t = target("demo-b");
    let progress =
        crate::progress::Tracker::new().feed(b">>> Emerging (3 of 12) app-misc/foo-1.0::gentoo\n");
    let mut msgs = vec![
        WorkerMsg::Hello {
            target: t,
            pid: 4242,
        },
        WorkerMsg::StepStarted {
            step: "target-world".into(),
            cgroup: None,
        },
        WorkerMsg::StepFinished {
            step: "target-world".into(),
            exit_code: 1,
            duration_ms: 1234,
            cost: None,
        },
        WorkerMsg::ToolchainReady {
            tuple: "aarch64-unknown-linux-musl".into(),
        },
        WorkerMsg::AcquireSync,
        WorkerMsg::ReleaseSync,
        WorkerMsg::Retry,
        WorkerMsg::RescueWaiting {
            step: "target-world".into(),
        },
    ];
    if let Some(progress) = progress {
        msgs.push(WorkerMsg::Progress {
            step: "target-world".into(),
            progress,
        });
    }
    let all: String = msgs.iter().map(protocol::encode).collect();
    let mut out: Vec<Vec<u8>> = msgs
        .iter()
        .map(|m| protocol::encode(m).into_bytes())
        .collect();
    out.push(all.into_bytes());
    out
}

/// `text` in pieces of `lines` lines.
fn chunks(text: &[u8], lines: usize) -> Vec<Vec<u8>> {
    let all: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    all.chunks(lines).map(<[&[u8]]>::concat).collect()
}

fn emerge_output() -> Parse {
    Box::new(|input| {
        // Any split of the output, also inside a line or a UTF-8 character.
        let mut tracker = crate::progress::Tracker::new();
        let step = 1 + input.len() % 97;
        for piece in input.chunks(step) {
            let _ = tracker.feed(piece);
        }
        let _ = tracker.progress().map(|p| p.short());
        for line in String::from_utf8_lossy(input).lines() {
            let _ = crate::progress::parse_line(line);
        }
    })
}

fn output_samples() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in files_in(&repo().join("tests/fixtures/progress")) {
        if f.extension().is_some_and(|e| e == "txt") {
            if let Ok(text) = std::fs::read(&f) {
                out.extend(chunks(&text, 40));
            }
        }
    }
    out
}

fn emerge_log() -> Parse {
    Box::new(|input| {
        let merges = crate::progress::emergelog::merges(&String::from_utf8_lossy(input));
        let _ = crate::progress::emergelog::times_by_package(&merges);
    })
}

fn emerge_log_samples() -> Vec<Vec<u8>> {
    let path = repo().join("tests/fixtures/progress/emlop-emerge.10000.log.xz");
    let mut text = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = xz2::read::XzDecoder::new(f).read_to_end(&mut text);
    }
    chunks(&text, 200)
}

const NAME: &str = "stage3-amd64-musl-20261130T170339Z.tar.xz";

fn digests() -> Parse {
    Box::new(|input| {
        let text = String::from_utf8_lossy(input);
        let _ = crate::stage3::parse_digests(&text, NAME);
        let _ = crate::stage3::parse_digests(&text, "");
        if let Some(body) = crate::stage3::signed_body(&text) {
            let _ = crate::stage3::parse_digests(&body, NAME);
        }
    })
}

fn digests_samples() -> Vec<Vec<u8>> {
    let hex = |c: char| c.to_string().repeat(128);
    let body = format!(
        "# BLAKE2B HASH\n{b}  {NAME}\n# SHA512 HASH\n{s}  {NAME}\n\
         # BLAKE2B HASH\n{c}  {NAME}.CONTENTS.gz\n# SHA512 HASH\n{d}  {NAME}.CONTENTS.gz\n",
        b = hex('b'),
        s = hex('5'),
        c = hex('c'),
        d = hex('d'),
    );
    vec![body.clone().into_bytes(), clearsign(&body).into_bytes()]
}

fn index() -> Parse {
    Box::new(|input| {
        let text = String::from_utf8_lossy(input);
        let _ = crate::stage3::is_clearsigned(&text);
        let _ = crate::stage3::parse_latest(&text);
        if let Some(body) = crate::stage3::signed_body(&text) {
            let _ = crate::stage3::parse_latest(&body);
        }
    })
}

fn index_samples() -> Vec<Vec<u8>> {
    let body = format!(
        "# Latest as of Mon, 30 Nov 2026 18:00:01 +0000\n# ts=1796148001\n\
         20261130T170339Z/{NAME} 211640840\n"
    );
    vec![body.clone().into_bytes(), clearsign(&body).into_bytes()]
}
