//! Running one step: a chrooted `/bin/sh -c SCRIPT` in its own session, output teed to the
//! worker's terminal and the log, `toolchain-ready` lines read from file descriptor 3, and
//! the output's Portage / crossdev progress lines reported as `progress` messages.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Link, STEP_PGID};
use crate::pool::cost::{CgroupRoot, StepCgroup};
use crate::pool::{CostSource, StepCost};
use crate::progress::Tracker;
use crate::protocol::WorkerMsg;
use crate::recipe::Step;
use crate::sys::{ChrootCommand, Group, Sys};

/// How a step ended.
pub struct Outcome {
    /// Exit code; 128 + signal number when killed; 127 when it could not start.
    pub exit_code: i32,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// What its process tree cost; `None` when it did not start.
    pub cost: Option<StepCost>,
}

fn stamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn log_line(log: &Mutex<File>, line: &str) {
    // The terminal may be gone (supervisor died): never panic on a failed write.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
    drop(out);
    if let Ok(mut f) = log.lock() {
        let _ = f.write_all(line.as_bytes());
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

/// What a step gets beside its script and environment.
#[derive(Default)]
pub struct Extras {
    /// The cgroup v2 leaf it runs in, to measure its whole tree's cost (removed when the step
    /// ends); `None`: wait4's rusage alone.
    pub cgroup: Option<StepCgroup>,
    /// A line for its log after the banner (its share of the job pool).
    pub note: Option<String>,
}

/// The cgroup v2 leaf for one step of this worker under `root` (see [`CgroupRoot::detect`]);
/// `None` when there is no cgroup root or the leaf cannot be made.
pub fn step_cgroup(root: Option<&CgroupRoot>, step: &str) -> Option<StepCgroup> {
    let name = format!("build-helper-{}-{step}", std::process::id());
    root?.create(&name).ok()
}

/// Runs `step` chrooted into `root` with exactly `env` (plus `BUILD_HELPER_STEP`), started
/// through `sys` ([`crate::sys::Sys::spawn_chrooted`]: a session of its own, output to a
/// pipe teed to the worker's terminal and `log`, file descriptor 3 to read `toolchain-ready`
/// lines from), in `extras.cgroup` when given. A step that cannot start ends with 127 and
/// says why in `log`.
pub fn run(
    sys: &dyn Sys,
    root: &Path,
    step: &Step,
    env: &BTreeMap<String, String>,
    log: &Arc<Mutex<File>>,
    link: &Link,
    extras: Extras,
) -> Outcome {
    let started = Instant::now();
    log_line(
        log,
        &format!("=== build-helper: step {} started {}\n", step.name, stamp()),
    );
    let Extras { cgroup, note } = extras;
    if let Some(note) = &note {
        log_line(log, note);
    }
    let (exit_code, cost) = match spawn_and_wait(sys, root, step, env, log, link, cgroup) {
        Ok(ended) => ended,
        Err(e) => {
            log_line(
                log,
                &format!("build-helper: cannot run step {}: {e}\n", step.name),
            );
            (127, None)
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    log_line(
        log,
        &format!(
            "=== build-helper: step {} finished: exit {exit_code} after {:.3} s\n",
            step.name,
            duration_ms as f64 / 1000.0
        ),
    );
    if let Some(c) = &cost {
        log_line(
            log,
            &format!(
                "=== build-helper: step {} cost: CPU {:.1} s, peak memory {} MiB ({})\n",
                step.name,
                c.cpu_us as f64 / 1e6,
                c.peak_rss_bytes >> 20,
                match c.source {
                    CostSource::Cgroup => "its cgroup",
                    CostSource::CgroupCpuRusageMemory =>
                        "CPU from its cgroup, memory: largest process",
                    CostSource::Rusage => "waited-for processes; memory: largest process",
                }
            ),
        );
    }
    Outcome {
        exit_code,
        duration_ms,
        cost,
    }
}

fn spawn_and_wait(
    sys: &dyn Sys,
    root: &Path,
    step: &Step,
    env: &BTreeMap<String, String>,
    log: &Arc<Mutex<File>>,
    link: &Link,
    cgroup: Option<StepCgroup>,
) -> Result<(i32, Option<StepCost>), Box<dyn std::error::Error>> {
    let (out_r, out_w) = pipe()?;
    let procs = cgroup.as_ref().and_then(|c| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(c.path().join("cgroup.procs"))
            .ok()
            .map(OwnedFd::from)
    });
    let (ev_r, ev_w) = pipe()?;
    let mut env = env.clone();
    env.insert("BUILD_HELPER_STEP".into(), step.name.clone());
    let mut child = sys.spawn_chrooted(ChrootCommand {
        root: root.to_path_buf(),
        program: "/bin/sh".into(),
        args: vec!["-c".into(), step.script.clone()],
        env,
        group: Group::NewSession,
        output: Some(out_w),
        fd3: Some(ev_w),
        cgroup: procs,
    })?;
    STEP_PGID.store(child.id() as i32, Ordering::SeqCst);

    let log_out = Arc::clone(log);
    let link_out = link.clone();
    let step_name = step.name.clone();
    let output = std::thread::spawn(move || {
        let mut reader = File::from(out_r);
        let mut buf = [0u8; 16 * 1024];
        let stdout = std::io::stdout();
        let mut tracker = Tracker::new();
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut out = stdout.lock();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                    drop(out);
                    if let Ok(mut f) = log_out.lock() {
                        let _ = f.write_all(&buf[..n]);
                    }
                    if let Some(progress) = tracker.feed(&buf[..n]) {
                        link_out.send(&WorkerMsg::Progress {
                            step: step_name.clone(),
                            progress,
                        });
                    }
                }
            }
        }
    });
    let link_ev = link.clone();
    let events = std::thread::spawn(move || {
        for line in BufReader::new(File::from(ev_r)).lines() {
            let Ok(line) = line else { break };
            if let Some(tuple) = line.trim().strip_prefix("toolchain-ready ") {
                link_ev.send(&WorkerMsg::ToolchainReady {
                    tuple: tuple.trim().to_string(),
                });
            }
        }
    });

    let code = child.wait();
    // Nothing a step started may outlive it: it would hold the run's mounts busy.
    child.kill_group();
    STEP_PGID.store(0, Ordering::SeqCst);
    let _ = output.join();
    let _ = events.join();
    let code = code?;
    let rusage = child.usage().map(|u| StepCost {
        cpu_us: u.cpu_us,
        peak_rss_bytes: u.max_rss_bytes,
        source: CostSource::Rusage,
    });
    let cost = match (&cgroup, rusage) {
        (Some(c), Some(r)) => Some(c.cost(&r).unwrap_or(r)),
        (_, r) => r,
    };
    if let Some(c) = cgroup {
        // Leftovers the kill above missed (another session) keep it busy: it goes on drop
        // once they are gone, and the log says so.
        if let Err(e) = c.remove() {
            log_line(log, &format!("build-helper: {e}\n"));
        }
    }
    Ok((code, cost))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Phase;
    use crate::sys::RecordingSys;

    fn step() -> Step {
        Step {
            name: "target-env".into(),
            phase: Phase::Target,
            script: "emerge -1 sys-libs/musl".into(),
            sync_lock: false,
            announces: Vec::new(),
        }
    }

    /// A log file and a link whose other end is kept open (a closed one would exit).
    fn fixtures(dir: &Path) -> (Arc<Mutex<File>>, Link, std::os::unix::net::UnixStream) {
        let log = Arc::new(Mutex::new(File::create(dir.join("log")).unwrap()));
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let link = Link {
            writer: Arc::new(Mutex::new(ours)),
        };
        (log, link, theirs)
    }

    #[test]
    fn a_step_is_started_chrooted_in_its_own_session_with_exactly_its_environment() {
        let tmp = tempfile::tempdir().unwrap();
        let (log, link, _peer) = fixtures(tmp.path());
        let sys = RecordingSys::default();
        sys.set_exit_code(3);
        let env = BTreeMap::from([("PATH".to_string(), "/usr/bin:/bin".to_string())]);
        let root = Path::new("/tree/work/run/M/m");
        let outcome = run(&sys, root, &step(), &env, &log, &link, Extras::default());
        assert_eq!(
            sys.take_lines(),
            vec![
                "chroot /tree/work/run/M/m: /bin/sh -c emerge -1 sys-libs/musl \
                 (env BUILD_HELPER_STEP,PATH; new session; output piped; fd 3)"
            ]
        );
        assert_eq!(outcome.exit_code, 3);
        let text = std::fs::read_to_string(tmp.path().join("log")).unwrap();
        assert!(text.contains("step target-env finished: exit 3"), "{text}");
    }

    #[test]
    fn a_step_that_cannot_start_ends_with_127_and_says_why_in_its_log() {
        let tmp = tempfile::tempdir().unwrap();
        let (log, link, _peer) = fixtures(tmp.path());
        let sys = RecordingSys::default();
        let root = Path::new("/tree/work/run/M/m");
        sys.fail_at(root);
        let outcome = run(
            &sys,
            root,
            &step(),
            &BTreeMap::new(),
            &log,
            &link,
            Extras::default(),
        );
        assert_eq!(outcome.exit_code, 127);
        let text = std::fs::read_to_string(tmp.path().join("log")).unwrap();
        assert!(
            text.contains(
                "build-helper: cannot run step target-env: cannot start /bin/sh chrooted in \
                 /tree/work/run/M/m"
            ),
            "{text}"
        );
        assert!(text.contains("finished: exit 127"), "{text}");
    }
}
