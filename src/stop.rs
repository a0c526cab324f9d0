//! Stopping a live run from any terminal (`build-helper stop [RUN]`, in `cli::stop`), as Ctrl-C in its own
//! terminal would. The run's supervisor is found through its run directory's lock
//! ([`crate::rundir::live_pid`]), sent SIGTERM, and waited for until its lock is free (its
//! workers stopped, every mount removed, the checkpoint saved) or the timeout passes. A
//! supervisor that shows its summary on its own terminal (the foreground TUI waits for Enter
//! there) has stopped the run once it records `run-finished` in `events.jsonl`: that is
//! written after the mounts are down and the checkpoint is saved.
//!
//! Not here: what the supervisor does when it is told to stop (`supervisor`, engine `Stop`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::UsageError;
use crate::rundir;
use crate::sys::{Sys, SysError};

/// How often the lock is looked at while waiting.
const POLL: Duration = Duration::from_millis(100);

/// The live run `stop` acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRun {
    /// Its run directory, `<tree>/work/<run>`.
    pub dir: PathBuf,
    /// The supervisor's process id (from the lock file).
    pub pid: u32,
}

/// The run to stop: `run` when named (it must be live), else the tree's only live run.
///
/// Errors ([`UsageError`], exit 2): an unknown or malformed run name; the named run is not
/// live; no live run in the tree (naming the tree and the runs found); several live runs
/// and none named.
pub fn find(tree: &Path, run: Option<&str>) -> Result<LiveRun, UsageError> {
    if let Some(name) = run {
        let dir = rundir::open(tree, name).map_err(|e| UsageError(e.to_string()))?;
        return match rundir::live_pid(&dir) {
            Some(pid) => Ok(LiveRun { dir, pid }),
            None => Err(UsageError(format!(
                "run {name} is not running (no supervisor holds {}): nothing to stop; \
                 `build-helper status {name}` shows where it ended",
                dir.join(rundir::LOCK).display()
            ))),
        };
    }
    let runs = rundir::runs(tree);
    let live: Vec<LiveRun> = runs
        .iter()
        .filter_map(|d| {
            rundir::live_pid(d).map(|pid| LiveRun {
                dir: d.clone(),
                pid,
            })
        })
        .collect();
    match live.as_slice() {
        [one] => Ok(one.clone()),
        [] => {
            let found = if runs.is_empty() {
                "no runs at all".to_string()
            } else {
                let names: Vec<String> = runs.iter().map(|d| rundir::id_of(d)).collect();
                format!("runs found, none running: {}", names.join(", "))
            };
            Err(UsageError(format!(
                "no live run in {} ({found}): nothing to stop; is BUILD_HELPER_TREE or \
                 --tree the tree the run was started in?",
                rundir::work(tree).display()
            )))
        }
        many => {
            let names: Vec<String> = many.iter().map(|r| rundir::id_of(&r.dir)).collect();
            Err(UsageError(format!(
                "several live runs in {}: {}; name the one to stop (`build-helper stop RUN`)",
                rundir::work(tree).display(),
                names.join(", ")
            )))
        }
    }
}

/// How a stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The supervisor let go of its run directory after this long.
    After(Duration),
    /// The run ended (`run-finished` recorded) after this long, but its supervisor has not
    /// exited (the foreground TUI shows the end on its terminal until Enter is pressed; a
    /// notify command may still run, up to its timeout).
    Finished(Duration),
    /// It still held it when the timeout passed.
    TimedOut,
}

/// Whether `events.jsonl` in `run_dir` holds a `run-finished` event after byte `from`.
fn finished_since(run_dir: &Path, from: u64) -> bool {
    use crate::engine::events::{Event, Record};
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(run_dir.join(crate::rundir::EVENTS)) else {
        return false;
    };
    let mut text = String::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_string(&mut text).is_err() {
        return false;
    }
    text.lines().any(|l| {
        serde_json::from_str::<Record>(l)
            .is_ok_and(|r| matches!(r.event, Event::RunFinished { .. }))
    })
}

/// Sends SIGTERM to the supervisor of `run` and waits up to `timeout` until it has let go
/// of the run directory's lock and its process is gone.
///
/// Errors: [`SysError::Signal`] when the signal cannot be sent (no permission: not root; the
/// process vanished is no error, it stopped).
pub fn signal_and_wait(
    sys: &dyn Sys,
    run: &LiveRun,
    timeout: Duration,
) -> Result<Stopped, SysError> {
    let start = Instant::now();
    let events_before =
        std::fs::metadata(run.dir.join(crate::rundir::EVENTS)).map_or(0, |m| m.len());
    match sys.kill(run.pid, nix::sys::signal::Signal::SIGTERM, false) {
        Ok(())
        | Err(SysError::Signal {
            errno: nix::errno::Errno::ESRCH,
            ..
        }) => {}
        Err(e) => return Err(e),
    }
    loop {
        let lock_free = rundir::live_pid(&run.dir).is_none();
        if lock_free && !sys.alive(run.pid) {
            return Ok(Stopped::After(start.elapsed()));
        }
        if finished_since(&run.dir, events_before) {
            // Give a supervisor that is about to exit a moment to do so.
            std::thread::sleep(Duration::from_millis(500));
            if rundir::live_pid(&run.dir).is_none() {
                return Ok(Stopped::After(start.elapsed()));
            }
            return Ok(Stopped::Finished(start.elapsed()));
        }
        if start.elapsed() >= timeout {
            return Ok(Stopped::TimedOut);
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_dir(tree: &Path, name: &str) -> PathBuf {
        let d = rundir::work(tree).join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(rundir::PLAN), "{}").unwrap();
        d
    }

    #[test]
    fn no_live_run_names_the_tree_and_the_runs_found() {
        let tree = tempfile::tempdir().unwrap();
        let e = find(tree.path(), None).unwrap_err().0;
        assert!(
            e.contains("no live run in") && e.contains("no runs at all"),
            "{e}"
        );
        run_dir(tree.path(), "demo-a-1");
        run_dir(tree.path(), "demo-a-2");
        let e = find(tree.path(), None).unwrap_err().0;
        assert!(
            e.contains(&rundir::work(tree.path()).display().to_string())
                && e.contains("none running: demo-a-1, demo-a-2"),
            "{e}"
        );
    }

    #[test]
    fn a_named_run_that_is_not_live_or_unknown_is_bad_input() {
        let tree = tempfile::tempdir().unwrap();
        run_dir(tree.path(), "demo-a-1");
        let e = find(tree.path(), Some("demo-a-1")).unwrap_err().0;
        assert!(e.contains("run demo-a-1 is not running"), "{e}");
        assert!(find(tree.path(), Some("nope")).is_err());
        assert!(find(tree.path(), Some("../x")).is_err());
    }

    /// A stand-in supervisor: a process holding `dir`'s lock (flock(1) on fd 9, kept across
    /// exec), that ignores SIGTERM when `deaf`.
    fn holder(dir: &Path, deaf: bool) -> (std::process::Child, LiveRun) {
        let lock = dir.join(rundir::LOCK);
        let trap = if deaf { "trap '' TERM; " } else { "" };
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{trap}exec 9>>\"$0\"; flock 9; echo locked; exec sleep 20"
            ))
            .arg(&lock)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "locked\n");
        let run = LiveRun {
            dir: dir.to_path_buf(),
            pid: child.id(),
        };
        (child, run)
    }

    #[test]
    fn a_supervisor_that_lets_go_of_its_lock_has_stopped() {
        let tree = tempfile::tempdir().unwrap();
        let d = run_dir(tree.path(), "demo-a-1");
        let (mut child, run) = holder(&d, false);
        assert!(rundir::live_pid(&d).is_some());
        // The child is ours: reap it as soon as it exits, as init would.
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        let got = signal_and_wait(&crate::sys::LinuxSys, &run, Duration::from_secs(10)).unwrap();
        assert!(matches!(got, Stopped::After(t) if t < Duration::from_secs(10)));
        assert!(rundir::live_pid(&d).is_none());
        reaper.join().unwrap();
    }

    #[test]
    fn a_supervisor_that_keeps_its_lock_times_out() {
        let tree = tempfile::tempdir().unwrap();
        let d = run_dir(tree.path(), "demo-a-1");
        let (mut child, run) = holder(&d, true);
        let got = signal_and_wait(&crate::sys::LinuxSys, &run, Duration::from_millis(300)).unwrap();
        assert_eq!(got, Stopped::TimedOut);
        assert!(rundir::live_pid(&d).is_some(), "still holding its lock");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_supervisor_that_recorded_the_end_but_keeps_its_screen_has_stopped_the_run() {
        let tree = tempfile::tempdir().unwrap();
        let d = run_dir(tree.path(), "demo-a-1");
        std::fs::write(
            d.join("events.jsonl"),
            "{\"t_us\":1,\"event\":\"run-finished\",\"result\":\"done\"}\n",
        )
        .unwrap();
        let (mut child, run) = holder(&d, true);
        // An end recorded before the signal is an older one: it does not count.
        let got = signal_and_wait(&crate::sys::LinuxSys, &run, Duration::from_millis(300)).unwrap();
        assert_eq!(got, Stopped::TimedOut);
        let events = d.join("events.jsonl");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(events)
                .unwrap();
            std::io::Write::write_all(
                &mut f,
                b"{\"t_us\":2,\"event\":\"run-finished\",\"result\":\"interrupted\"}\n",
            )
            .unwrap();
        });
        let got = signal_and_wait(&crate::sys::LinuxSys, &run, Duration::from_secs(10)).unwrap();
        assert!(matches!(got, Stopped::Finished(_)), "{got:?}");
        writer.join().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn the_live_run_is_found_through_its_lock() {
        let tree = tempfile::tempdir().unwrap();
        run_dir(tree.path(), "demo-a-1");
        let d = run_dir(tree.path(), "demo-a-2");
        let lock = rundir::lock(&d).unwrap();
        // flock(2) locks are per open file: this process holds it, another open sees it.
        let found = find(tree.path(), None).unwrap();
        assert_eq!(found.dir, d);
        assert_eq!(found.pid, std::process::id());
        assert_eq!(find(tree.path(), Some("demo-a-2")).unwrap(), found);
        drop(lock);
        assert!(find(tree.path(), None).is_err());
    }
}
