//! `build-helper distcc-helper`: serves a history's compilers to other build machines.
//!
//! A history holds the whole build environment, every crossdev toolchain included, so the
//! environment's own `distccd`, chrooted in it, compiles exactly as the build machine that
//! made it would. The history is mounted read-only (squashfs, or a directory bound read-only)
//! under an overlay whose upper directory is a tmpfs, in a private mount namespace: nothing
//! is written to the history, and every mount disappears with the command. distccd runs in
//! the foreground and logs to the terminal; Ctrl-C (or SIGTERM) stops it and the mounts are
//! taken down, and its scratch directory removed ([`super::scratch`]). It warns when its
//! `--allow` list is wider than the machine's own networks or it listens on every address
//! without `--listen` ([`super::exposure`]).
//!
//! Not for: scheduling jobs, discovering helpers (zeroconf) or authentication; distccd's own
//! `--allow` list is the access control.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::Context;

use crate::error::UsageError;
use crate::history;
use crate::mounts::{self, Entry};
use crate::rundir::journal::Journal;
use crate::starter::{HistorySel, HistoryType};
use crate::sys::{ChrootCommand, Group, Sys};

/// distccd's registered TCP port (IANA "distcc").
pub const DEFAULT_PORT: u16 = 3632;

/// Where distccd may live in an environment (Gentoo: /usr/bin; some layouts: /usr/sbin).
const DISTCCD: [&str; 3] = ["usr/bin/distccd", "usr/sbin/distccd", "bin/distccd"];

/// What `distcc-helper` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperOptions {
    /// The tree whose `history/` holds the history.
    pub tree: PathBuf,
    /// Which history.
    pub history: HistorySel,
    /// Address distccd listens on (`0.0.0.0`: every IPv4 address).
    pub listen: IpAddr,
    /// Whether `--listen` was given (listening on every address by default is warned
    /// about, see [`super::exposure::warnings`]).
    pub listen_given: bool,
    /// TCP port.
    pub port: u16,
    /// Networks allowed to connect, as distccd's `--allow` takes them (`ADDR` or
    /// `ADDR/BITS`); never empty.
    pub allow: Vec<String>,
    /// Compile jobs at once (distccd `--jobs`).
    pub jobs: u32,
}

/// Checks one `--allow` value: an IPv4 or IPv6 address, optionally with a prefix length.
///
/// Errors: a message saying what is expected.
pub fn check_allow(value: &str) -> Result<(), String> {
    let (addr, bits) = match value.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (value, None),
    };
    let max = match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => 32,
        Ok(IpAddr::V6(_)) => 128,
        Err(_) => {
            return Err(format!(
                "--allow {value}: expected an address or network such as 192.168.1.0/24 or \
                 127.0.0.1"
            ))
        }
    };
    match bits.map(str::parse::<u32>) {
        None => Ok(()),
        Some(Ok(n)) if n <= max => Ok(()),
        _ => Err(format!(
            "--allow {value}: the prefix length after `/` must be 0 to {max}"
        )),
    }
}

/// Checks the options: at least one `--allow`, each well formed, jobs at least 1.
///
/// Errors: [`UsageError`] saying what to give instead.
pub fn check(opts: &HelperOptions) -> Result<(), UsageError> {
    if opts.allow.is_empty() {
        return Err(UsageError(
            "distcc-helper needs --allow: distccd runs compilers for anyone who reaches it, so \
             name the networks of your build machines, e.g. --allow 192.168.1.0/24 (several \
             --allow are fine)"
                .into(),
        ));
    }
    for a in &opts.allow {
        check_allow(a).map_err(UsageError)?;
    }
    if opts.history == HistorySel::None {
        return Err(UsageError(
            "distcc-helper --history none: the helper serves the compilers of a history; name \
             one (latest, a name under history/, or a path)"
                .into(),
        ));
    }
    if opts.jobs == 0 || opts.port == 0 {
        return Err(UsageError(
            "distcc-helper: --jobs and --port must be at least 1".into(),
        ));
    }
    Ok(())
}

/// distccd's arguments: foreground (`--daemon --no-detach`), logging to standard error, the
/// listen address, port, jobs and every allowed network.
pub fn distccd_args(opts: &HelperOptions) -> Vec<String> {
    let mut args: Vec<String> = [
        "--daemon",
        "--no-detach",
        "--log-stderr",
        "--log-level",
        "info",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "--listen".into(),
        opts.listen.to_string(),
        "--port".into(),
        opts.port.to_string(),
        "--jobs".into(),
        opts.jobs.to_string(),
    ]);
    for a in &opts.allow {
        args.extend(["--allow".into(), a.clone()]);
    }
    args
}

/// The `DISTCC_HOSTS` entry for this helper (distcc(1) host specification with lzo
/// compression): `ADDR:PORT/JOBS,lzo`, IPv6 addresses in brackets. `hostname` stands in for
/// an unspecified listen address (`0.0.0.0`, `::`).
pub fn hosts_entry(listen: IpAddr, port: u16, jobs: u32, hostname: &str) -> String {
    let host = match listen {
        a if a.is_unspecified() => hostname.to_string(),
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    format!("{host}:{port}/{jobs},lzo")
}

/// The shell script, run chrooted, that links every compiler of the environment into
/// distcc's masquerade directory `/usr/lib/distcc` when it is not there yet: distccd 3.3 and
/// later serve only compilers linked there (what Gentoo's `distcc-config
/// --update-masquerade-with-crossdev` and Debian's `update-distcc-symlinks` do). It writes
/// into the overlay's tmpfs upper directory, never into the history; prints how many links
/// it added.
pub const MASQUERADE_SCRIPT: &str = r#"set -eu
d=/usr/lib/distcc
mkdir -p "$d"
n=0
for c in /usr/bin/*-gcc /usr/bin/*-g++ /usr/bin/*-c++ /usr/bin/*-clang /usr/bin/*-clang++ \
         /usr/bin/gcc /usr/bin/g++ /usr/bin/cc /usr/bin/c++ /usr/bin/clang /usr/bin/clang++; do
  [ -x "$c" ] || continue
  name=${c##*/}
  [ -e "$d/$name" ] || [ -L "$d/$name" ] || { ln -s ../../bin/distcc "$d/$name"; n=$((n+1)); }
done
echo "$n"
"#;

/// The last signal asked to stop the helper (0: none yet).
static STOP: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop(sig: libc::c_int) {
    STOP.store(sig, Ordering::SeqCst);
}

/// Runs the helper until distccd exits (Ctrl-C, SIGTERM, SIGHUP stop it); returns the exit
/// status for the command line: 0 after a requested stop, else distccd's.
///
/// Must be called while the process is single-threaded (it unshares its mount namespace).
///
/// Errors: [`UsageError`] for bad options, no root, no history, or a history without
/// distccd (saying how to add it); mount or start failures (whatever was mounted is taken down
/// again).
pub fn serve(sys: &dyn Sys, opts: &HelperOptions) -> anyhow::Result<i32> {
    check(opts)?;
    if !nix::unistd::geteuid().is_root() {
        return Err(UsageError(
            "distcc-helper needs root (it mounts the history and chroots): run it as root".into(),
        )
        .into());
    }
    for w in super::exposure::warnings(
        &opts.allow,
        opts.listen,
        opts.listen_given,
        &super::exposure::own_networks(),
    ) {
        eprintln!("distcc-helper: warning: {w}");
    }
    // What helpers killed with SIGKILL left behind.
    let (removed, failed) = super::scratch::remove_stale(sys, &std::env::temp_dir());
    for d in removed {
        eprintln!(
            "distcc-helper: removed {}, left by a helper that was killed",
            d.display()
        );
    }
    for f in failed {
        eprintln!("distcc-helper: warning: cannot remove a killed helper's directory {f}");
    }
    let (file, kind) = history::resolve(&opts.tree, &opts.history)
        .map_err(UsageError)?
        .ok_or_else(|| {
            UsageError(format!(
                "distcc-helper: there is no history in {}; copy one there (history/<date>.sqfs) or \
                 give its path with --history",
                opts.tree.join("history").display()
            ))
        })?;
    history::check(&file, kind).map_err(UsageError)?;
    crate::mounts::private_namespace(sys)?;
    // From here on a stop signal is an exit this command controls: the mounts come down and
    // the scratch directory goes.
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        let action = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::Handler(on_stop),
            nix::sys::signal::SaFlags::empty(),
            nix::sys::signal::SigSet::empty(),
        );
        // SAFETY: the handler only stores into an atomic.
        unsafe { nix::sys::signal::sigaction(sig, &action) }
            .context("installing the stop handler")?;
    }
    // Removed when this function returns, whatever the way (mounts first).
    let work = super::scratch::Scratch::new()?;
    let m = work.path().join("M");
    let result = mount_and_run(sys, opts, &file, kind, work.path(), &m);
    let down = mounts::teardown(sys, &m, true);
    if down.is_err() {
        // Never remove a directory with mounts below it (the history, /dev).
        let kept = work.keep();
        eprintln!(
            "distcc-helper: {} is kept: its mounts could not all be taken down",
            kept.display()
        );
    }
    let code = result?;
    down.context("taking the history's mounts down")?;
    Ok(code)
}

fn entries(file: &Path, kind: HistoryType, m: &Path) -> Vec<Entry> {
    let (s, root) = (m.join("s"), m.join("m"));
    vec![
        Entry::Tmpfs {
            target: m.to_path_buf(),
            options: "mode=0755".into(),
        },
        match kind {
            HistoryType::Squashfs => Entry::Image {
                file: file.to_path_buf(),
                target: s.clone(),
            },
            HistoryType::Files => Entry::Bind {
                source: file.to_path_buf(),
                target: s.clone(),
                recursive: false,
                readonly: true,
            },
        },
        Entry::Overlay {
            lower: vec![s],
            upper: m.join("u"),
            work: m.join("w"),
            target: root.clone(),
        },
        Entry::Proc {
            target: root.join("proc"),
        },
        Entry::Bind {
            source: PathBuf::from("/dev"),
            target: root.join("dev"),
            recursive: true,
            readonly: false,
        },
        Entry::Tmpfs {
            target: root.join("run"),
            options: "mode=0755".into(),
        },
    ]
}

/// `program` with `args`, to run chrooted in `root` in this command's process group (set
/// [`ChrootCommand::group`] to change it), with
/// a minimal environment (a standard `PATH`, `HOME` and `TMPDIR` at `/tmp`).
fn chrooted(root: &Path, program: &str, args: Vec<String>) -> ChrootCommand {
    ChrootCommand {
        root: root.to_path_buf(),
        program: program.to_string(),
        args,
        env: [
            (
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ),
            ("HOME", "/tmp"),
            ("TMPDIR", "/tmp"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        group: Group::Caller,
        output: None,
        fd3: None,
        cgroup: None,
    }
}

fn mount_and_run(
    sys: &dyn Sys,
    opts: &HelperOptions,
    file: &Path,
    kind: HistoryType,
    run_dir: &Path,
    m: &Path,
) -> anyhow::Result<i32> {
    let mut journal = Journal {
        m_dir: m.to_path_buf(),
        pid: std::process::id(),
        host_namespace: false,
        mnt_ns: crate::sys::procs::own_mnt_ns(sys),
        ..Journal::default()
    };
    mounts::apply(sys, m, &entries(file, kind, m), &mut journal, run_dir)?;
    let root = m.join("m");
    let Some(distccd) = DISTCCD.iter().find(|p| root.join(p).is_file()) else {
        return Err(UsageError(format!(
            "history {} has no distccd: add sys-devel/distcc to the host world \
             (configs/host/worlds/base), let a build archive a new history, then start \
             distcc-helper with it",
            file.display()
        ))
        .into());
    };
    let masquerade = chrooted(
        &root,
        "/bin/sh",
        vec!["-c".into(), MASQUERADE_SCRIPT.into()],
    );
    let (code, out) = crate::sys::chroot::output(sys, masquerade)
        .context("linking the environment's compilers for distccd")?;
    if code != 0 {
        anyhow::bail!(
            "linking the environment's compilers into /usr/lib/distcc failed (exit {code}): {}",
            String::from_utf8_lossy(&out).trim()
        );
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "THIS-MACHINE".into());
    let entry = hosts_entry(opts.listen, opts.port, opts.jobs, &hostname);
    println!(
        "distcc-helper: serving the compilers of history {} on {}:{} to {} ({} jobs)",
        file.display(),
        opts.listen,
        opts.port,
        opts.allow.join(" "),
        opts.jobs
    );
    println!("distcc-helper: use it with  distcc_hosts = \"{entry}\"  (starter [options])");
    println!("distcc-helper: DISTCC_HOSTS entry: {entry}");
    println!(
        "distcc-helper: the environment is mounted at {} (in this command's own mount namespace)",
        root.display()
    );
    println!("distcc-helper: Ctrl-C stops it; nothing is written to the history");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    if STOP.load(Ordering::SeqCst) != 0 {
        // Stopped while mounting: distccd never starts.
        return Ok(0);
    }
    let program = format!("/{distccd}");
    let mut cmd = chrooted(&root, &program, distccd_args(opts));
    // Its own process group, killed whole when it ends: no compiler it started outlives it.
    cmd.group = Group::Own;
    let child = sys.spawn_chrooted(cmd)?;
    // Waited for here, not with `child.wait()`: a stop signal interrupts waitid (EINTR)
    // and is forwarded to distccd.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut forwarded = STOP.load(Ordering::SeqCst);
    if forwarded != 0 {
        // Stopped between the check above and the start: waitpid will not be interrupted.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    // Ended, not reaped yet (WNOWAIT: its pid, the group's id, names no one else while its
    // group is killed), then reaped.
    let end_group = || {
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    };
    loop {
        use nix::sys::wait::{Id, WaitPidFlag};
        match nix::sys::wait::waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => {
                end_group();
                return Ok(if STOP.load(Ordering::SeqCst) != 0 {
                    0
                } else {
                    code
                });
            }
            Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => {
                end_group();
                return Ok(if STOP.load(Ordering::SeqCst) != 0 {
                    0
                } else {
                    128 + sig as i32
                });
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {
                let sig = STOP.load(Ordering::SeqCst);
                if sig != 0 && sig != forwarded {
                    forwarded = sig;
                    // distccd stops its children and exits on SIGTERM.
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                }
            }
            Err(e) => return Err(e).context("waiting for distccd"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(allow: &[&str]) -> HelperOptions {
        HelperOptions {
            tree: PathBuf::from("/t"),
            history: HistorySel::Latest,
            listen: "127.0.0.1".parse().unwrap(),
            listen_given: true,
            port: DEFAULT_PORT,
            allow: allow.iter().map(|s| s.to_string()).collect(),
            jobs: 4,
        }
    }

    #[test]
    fn helper_refuses_to_start_without_allow() {
        let err = check(&opts(&[])).unwrap_err().to_string();
        assert!(err.contains("--allow 192.168.1.0/24"), "{err}");
    }

    #[test]
    fn helper_needs_a_history() {
        let mut o = opts(&["127.0.0.1"]);
        o.history = HistorySel::None;
        assert!(check(&o).unwrap_err().to_string().contains("name one"));
    }

    #[test]
    fn allow_takes_addresses_and_networks_only() {
        assert!(check(&opts(&["127.0.0.1", "10.0.0.0/8", "fd00::/8"])).is_ok());
        for bad in [
            "everyone",
            "10.0.0.0/33",
            "::1/129",
            "1.2.3/8",
            "10.0.0.0/x",
        ] {
            let err = check(&opts(&[bad])).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn distccd_runs_in_the_foreground_with_every_allowed_network() {
        let args = distccd_args(&opts(&["127.0.0.1", "10.0.0.0/8"]));
        assert_eq!(
            args.join(" "),
            "--daemon --no-detach --log-stderr --log-level info --listen 127.0.0.1 \
             --port 3632 --jobs 4 --allow 127.0.0.1 --allow 10.0.0.0/8"
        );
    }

    #[test]
    fn hosts_entry_names_the_address_port_and_jobs() {
        let v4 = "127.0.0.1".parse().unwrap();
        assert_eq!(hosts_entry(v4, 3632, 8, "box"), "127.0.0.1:3632/8,lzo");
        let any = "0.0.0.0".parse().unwrap();
        assert_eq!(hosts_entry(any, 4000, 2, "box"), "box:4000/2,lzo");
        let v6 = "fd00::5".parse().unwrap();
        assert_eq!(hosts_entry(v6, 3632, 1, "box"), "[fd00::5]:3632/1,lzo");
        // What the helper prints is accepted as the starter's distcc_hosts.
        for e in [hosts_entry(v4, 3632, 8, "box"), hosts_entry(v6, 1, 1, "b")] {
            assert!(crate::starter::distcc_hosts::parse(&e).is_ok(), "{e}");
        }
    }
}
