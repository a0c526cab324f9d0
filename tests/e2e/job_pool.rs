//! The run's job pool with real GNU make: three makes, one per target fifo, never run more
//! compile jobs at once than the pool allows (and do without it); a killed step's tokens come
//! back; low memory holds tokens back. The makes get the jobserver in the form the installed
//! make understands (fd form for 4.2/4.3, fifo form for 4.4 and newer).
//!
//! The `*_in_a_run` tests do the same through `build-helper run`: three stage0 targets of
//! tests/e2e/jobs-tree compile a real C package with real gcc and emake in the gcc stage3 of
//! scripts/distcc-stage3.sh (GNU make 4.4.1, Portage 3.0.83 with `jobserver-token`), the
//! supervisor serving the pool and the workers giving each step its `MAKEFLAGS`; the peak of
//! concurrent compiles comes from the compiles' own start and end logs.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use build_helper::pool::makeflags::{self, AuthStyle, JobserverAuth, MakeVersion};
use build_helper::pool::{
    AdmissionLimits, Broker, ImplicitSlots, PoolConfig, PoolError, SystemProbe,
};

use crate::common::*;

const TARGETS: [&str; 3] = [
    "x86_64-unknown-linux-musl.a",
    "x86_64-unknown-linux-musl.b",
    "aarch64-unknown-linux-musl.c",
];

/// The installed make's version.
fn make_version() -> MakeVersion {
    let out = Command::new("make").arg("--version").output().unwrap();
    MakeVersion::parse(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

/// Writes `<dir>/<name>.mk`: `jobs` independent jobs, each appending `start <ns>` and
/// `end <ns>` lines (CLOCK_REALTIME, nanoseconds) to `<dir>/<name>.log` around a sleep.
fn makefile(dir: &Path, name: &str, jobs: usize, sleep: &str) -> PathBuf {
    let log = dir.join(format!("{name}.log"));
    let mut text = String::from("all:");
    for j in 0..jobs {
        text.push_str(&format!(" j{j}"));
    }
    text.push('\n');
    for j in 0..jobs {
        text.push_str(&format!(
            "j{j}:\n\t@echo start $$(date +%s%N) >> {log}; sleep {sleep}; echo end $$(date +%s%N) >> {log}\n",
            log = log.display()
        ));
    }
    text.push_str(".PHONY: all");
    for j in 0..jobs {
        text.push_str(&format!(" j{j}"));
    }
    text.push('\n');
    let path = dir.join(format!("{name}.mk"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts make over `mk` in its own process group: with the pool of `fifo` (no -j) or, when
/// `fifo` is `None`, unpooled with `-j2`.
fn start_make(mk: &Path, fifo: Option<&Path>, version: MakeVersion) -> Child {
    let mut cmd = Command::new("make");
    cmd.arg("-s")
        .arg("-f")
        .arg(mk)
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .stdout(Stdio::null())
        .process_group(0);
    match fifo {
        Some(fifo) => {
            let auth = match makeflags::auth_style(version).expect("make 4.2 or newer") {
                AuthStyle::Fifo => JobserverAuth::Fifo(fifo.to_path_buf()),
                AuthStyle::Fds => makeflags::inherit_fds(&mut cmd, fifo).unwrap(),
            };
            for (k, v) in makeflags::step_env(&auth, None) {
                cmd.env(k, v);
            }
        }
        None => {
            cmd.arg("-j2");
        }
    }
    cmd.spawn().unwrap()
}

/// Every (time ns, +1 start / -1 end) in the logs.
fn events(dir: &Path, names: &[&str]) -> Vec<(u128, i32)> {
    let mut ev = Vec::new();
    for name in names {
        let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        for line in text.lines() {
            let (kind, t) = line.split_once(' ').unwrap();
            let t: u128 = t.trim().parse().unwrap();
            ev.push((t, if kind == "start" { 1 } else { -1 }));
        }
    }
    // Ends before starts at the same instant.
    ev.sort();
    ev
}

/// The most jobs running at once, and how many jobs ran.
fn peak(ev: &[(u128, i32)]) -> (i32, usize) {
    let (mut now, mut max) = (0, 0);
    for (_, d) in ev {
        now += d;
        max = max.max(now);
    }
    (max, ev.iter().filter(|(_, d)| *d == 1).count())
}

fn names(prefix: &str) -> Vec<String> {
    (0..3).map(|i| format!("{prefix}{i}")).collect()
}

/// Runs the three makes, pooled (through `broker`) or not; returns the makespan.
fn run_three(dir: &Path, broker: Option<&Broker>, prefix: &str, version: MakeVersion) -> Duration {
    let names = names(prefix);
    let t0 = Instant::now();
    let mut children = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mk = makefile(dir, name, 12, "0.2");
        let fifo = broker.map(|b| {
            b.step_started(TARGETS[i]).unwrap();
            b.fifo_path(TARGETS[i]).unwrap().to_path_buf()
        });
        children.push(start_make(&mk, fifo.as_deref(), version));
    }
    for (i, mut c) in children.into_iter().enumerate() {
        assert!(c.wait().unwrap().success(), "make {i} failed");
        if let Some(b) = broker {
            b.step_ended(TARGETS[i]).unwrap();
        }
    }
    t0.elapsed()
}

#[test]
fn job_pool_caps_concurrent_jobs_across_three_targets() {
    if !require_root() || !require_tool("make") {
        return;
    }
    let version = make_version();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let jobs = 2;
    let bound = jobs.max(TARGETS.len()) as i32 + 1;

    let broker = Broker::start(dir, &TARGETS, PoolConfig::new(jobs)).unwrap();
    let pooled = run_three(dir, Some(&broker), "pooled", version);
    let snap = broker.snapshot().unwrap();
    let wakes = broker.wake_stats().unwrap();
    assert_eq!(snap.free, snap.total, "{snap:?}");
    assert!(
        snap.stats.offered > 0,
        "no token was ever offered: {snap:?}"
    );
    let final_snap = broker.stop().unwrap();
    assert_eq!(final_snap.free, final_snap.total);

    let unpooled = run_three(dir, None, "unpooled", version);
    // The same four slots without a pool: -j2, -j1, -j1.
    let t0 = Instant::now();
    let mut fixed = Vec::new();
    for (i, j) in ["-j2", "-j1", "-j1"].iter().enumerate() {
        let mk = makefile(dir, &format!("fixed{i}"), 12, "0.2");
        let mut cmd = Command::new("make");
        cmd.args(["-s", j, "-f"]).arg(&mk).env_remove("MAKEFLAGS");
        fixed.push(cmd.stdout(Stdio::null()).spawn().unwrap());
    }
    for mut c in fixed {
        assert!(c.wait().unwrap().success());
    }
    let fixed = t0.elapsed();
    // The broker's own cost: one target, jobs=2 (one byte out, peak 2), against make -j2.
    let broker = Broker::start(dir, &TARGETS[..1], PoolConfig::new(2)).unwrap();
    let mk = makefile(dir, "single-pooled", 12, "0.2");
    broker.step_started(TARGETS[0]).unwrap();
    let fifo = broker.fifo_path(TARGETS[0]).unwrap().to_path_buf();
    let t0 = Instant::now();
    assert!(start_make(&mk, Some(&fifo), version)
        .wait()
        .unwrap()
        .success());
    let single_pooled = t0.elapsed();
    broker.step_ended(TARGETS[0]).unwrap();
    broker.stop().unwrap();
    let mk = makefile(dir, "single-j2", 12, "0.2");
    let t0 = Instant::now();
    assert!(start_make(&mk, None, version).wait().unwrap().success());
    let single_j2 = t0.elapsed();
    eprintln!(
        "job pool: fixed -j2/-j1/-j1 makespan {:.2}s; one target pooled (jobs=2) {:.2}s, \
         make -j2 {:.2}s",
        fixed.as_secs_f64(),
        single_pooled.as_secs_f64(),
        single_j2.as_secs_f64()
    );
    assert!(
        single_pooled <= single_j2 + Duration::from_millis(400),
        "the broker slows one make down: {single_pooled:?} against {single_j2:?}"
    );
    let names_p = names("pooled");
    let names_u = names("unpooled");
    let (peak_p, ran_p) = peak(&events(
        dir,
        &names_p.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let (peak_u, ran_u) = peak(&events(
        dir,
        &names_u.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    eprintln!(
        "job pool, make {}.{}: pooled peak {peak_p} makespan {:.2}s; unpooled (-j2 each) peak \
         {peak_u} makespan {:.2}s; wakes {wakes:?}; stats {:?}",
        version.major,
        version.minor,
        pooled.as_secs_f64(),
        unpooled.as_secs_f64(),
        snap.stats
    );
    assert_eq!((ran_p, ran_u), (36, 36));
    assert!(peak_p <= bound, "pooled peak {peak_p} above {bound}");
    assert!(
        peak_p > TARGETS.len() as i32,
        "the pool's token was never used: {peak_p}"
    );
    assert!(
        peak_u > bound,
        "unpooled peak {peak_u} should exceed {bound}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".fifo"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn job_pool_returns_the_tokens_of_a_killed_step() {
    if !require_root() || !require_tool("make") {
        return;
    }
    let version = make_version();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Six tokens, three targets in a step: three bytes out at most.
    let broker = Broker::start(dir, &TARGETS, PoolConfig::new(6)).unwrap();
    let names = names("kill");
    let mut children = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mk = makefile(dir, name, 8, "0.5");
        broker.step_started(TARGETS[i]).unwrap();
        let fifo = broker.fifo_path(TARGETS[i]).unwrap().to_path_buf();
        children.push(start_make(&mk, Some(&fifo), version));
    }
    // Wait until the first make's jobs hold a token (granted beyond what waits in its fifo).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let snap = broker.snapshot().unwrap();
        let t = &snap.targets[0];
        if t.granted > t.waiting {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "make 0 never took a token: {snap:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let victim = children.remove(0);
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(victim.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let mut victim = victim;
    let _ = victim.wait();
    // Its jobs were in its process group: wait until none is left.
    let deadline = Instant::now() + Duration::from_secs(10);
    while nix::sys::signal::killpg(nix::unistd::Pid::from_raw(victim.id() as i32), None).is_ok() {
        assert!(Instant::now() < deadline, "the killed step's jobs live on");
        std::thread::sleep(Duration::from_millis(20));
    }
    let back = broker.step_ended(TARGETS[0]).unwrap();
    assert!(back.lost >= 1, "the killed make held no token: {back:?}");
    for (i, mut c) in children.into_iter().enumerate() {
        assert!(c.wait().unwrap().success(), "make {} failed", i + 1);
        broker.step_ended(TARGETS[i + 1]).unwrap();
    }
    let snap = broker.stop().unwrap();
    assert_eq!(snap.free, snap.total, "{snap:?}");
    assert!(snap.stats.reclaimed_lost >= 1);
    let (_, ran) = peak(&events(dir, &["kill1", "kill2"]));
    assert_eq!(ran, 16, "the other makes ran every job");
}

/// MemAvailable as the test sets it.
struct TestMemory(Arc<AtomicU64>);

impl SystemProbe for TestMemory {
    fn mem_available(&mut self) -> Result<u64, PoolError> {
        Ok(self.0.load(Ordering::SeqCst))
    }
    fn load_average(&mut self) -> Result<f64, PoolError> {
        Ok(0.0)
    }
}

#[test]
fn job_pool_memory_admission_holds_tokens_back() {
    if !require_root() || !require_tool("make") {
        return;
    }
    let version = make_version();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mem = Arc::new(AtomicU64::new(1 << 30));
    let mut config = PoolConfig::new(3);
    config.implicit_slots = ImplicitSlots::CoveredByClient;
    config.limits = AdmissionLimits {
        min_mem_avail: Some(
            build_helper::starter::size::parse_size("min_mem_avail", "2G").unwrap(),
        ),
        max_load: None,
    };
    let target = [TARGETS[0]];
    let broker =
        Broker::start_with_probe(dir, &target, config, Box::new(TestMemory(Arc::clone(&mem))))
            .unwrap();
    broker.step_started(TARGETS[0]).unwrap();
    let snap = broker.snapshot().unwrap();
    assert!(snap.held.is_some(), "{snap:?}");
    assert_eq!(snap.targets[0].granted, 0, "{snap:?}");
    let mk = makefile(dir, "mem", 12, "0.2");
    let fifo = broker.fifo_path(TARGETS[0]).unwrap().to_path_buf();
    let mut child = start_make(&mk, Some(&fifo), version);
    std::thread::sleep(Duration::from_millis(900));
    let switch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    assert_eq!(broker.snapshot().unwrap().targets[0].granted, 0);
    mem.store(4 << 30, Ordering::SeqCst);
    assert!(child.wait().unwrap().success());
    broker.step_ended(TARGETS[0]).unwrap();
    let snap = broker.stop().unwrap();
    assert_eq!(snap.free, snap.total);
    let ev = events(dir, &["mem"]);
    let before: Vec<_> = ev.iter().copied().filter(|(t, _)| *t < switch).collect();
    let (peak_before, ran_before) = peak(&before);
    let (peak_all, ran) = peak(&ev);
    eprintln!(
        "memory admission: held peak {peak_before} ({ran_before} jobs), then peak {peak_all}"
    );
    assert_eq!(ran, 12);
    assert!(ran_before >= 2, "jobs ran while memory was low");
    assert_eq!(peak_before, 1, "only the implicit slot while memory is low");
    assert!(
        peak_all >= 2,
        "tokens were handed out after memory recovered"
    );
}

#[test]
#[allow(clippy::zombie_processes)] // wait_with_cost reaps it
fn job_pool_step_cost_measures_a_process_tree() {
    if !require_root() {
        return;
    }
    use build_helper::pool::cost::{self, CgroupRoot, CostSource};
    // A cgroup2 mount: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one.
    let root =
        CgroupRoot::detect().or_else(|| CgroupRoot::at(Path::new("/sys/fs/cgroup/unified")).ok());
    let busy = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done";
    let mut cmd = Command::new("sh");
    // The tree: a shell that runs the loop in a child it waits for.
    cmd.args(["-c", &format!("sh -c '{busy}'")]);
    let leaf = root.as_ref().map(|r| {
        r.create(&format!("bh-test-cost-{}", std::process::id()))
            .unwrap()
    });
    if let Some(leaf) = &leaf {
        leaf.join_on_spawn(&mut cmd).unwrap();
    }
    let child = cmd.spawn().unwrap();
    let (status, rusage) = cost::wait_with_cost(child.id()).unwrap();
    assert!(libc::WIFEXITED(status));
    assert!(rusage.cpu_us > 10_000, "{rusage:?}");
    assert!(rusage.peak_rss_bytes > 0);
    eprintln!("step cost by rusage: {rusage:?}");
    if let Some(leaf) = leaf {
        let path = leaf.path().to_path_buf();
        let c = leaf.cost(&rusage).unwrap();
        eprintln!("step cost by cgroup {}: {c:?}", path.display());
        assert!(matches!(
            c.source,
            CostSource::Cgroup | CostSource::CgroupCpuRusageMemory
        ));
        // Both count the same tree; the cgroup's figure is at least most of the rusage one.
        assert!(
            c.cpu_us * 10 >= rusage.cpu_us * 8,
            "{c:?} against {rusage:?}"
        );
        leaf.remove().unwrap();
        assert!(!path.exists(), "the step cgroup is left behind");
    }
}

// ---------------------------------------------------------------------------------------------
// Through `build-helper run`: three stage0 targets of tests/e2e/jobs-tree compile
// test-jobs/cbuild (24 C files each, real gcc, `emake`) in the gcc stage3 of
// scripts/distcc-stage3.sh, whose GNU make 4.4.1 joins the run's pool through
// `--jobserver-auth=fifo:/run/build-helper/jobserver`. Each compile logs its start and end
// (CLOCK_REALTIME ns) into the tree's distfiles (`bh-jobs/<target>.log`), each step's login
// shell its MAKEFLAGS, MAKEOPTS and FEATURES (`bh-step-env/<name>.log`, the stage3's
// /etc/profile.d/bh-test-step-env.sh). Every run is an update from one history archived from
// the stage3 once per test process: faster than a first build from a mirror of it (measured
// here: a run of 92 s against 112 s, and 2 s of archiving once against 28 s of mirror).
// ---------------------------------------------------------------------------------------------

/// The targets of the jobs tree (tests/e2e/jobs-tree/make-tree.sh), primary first.
const RUN_TARGETS: [&str; 3] = [
    "x86_64-unknown-linux-musl.jobs1",
    "x86_64-unknown-linux-musl.jobs2",
    "x86_64-unknown-linux-musl.jobs3",
];
/// C files each target compiles (test-jobs/cbuild's BH_JOBS_FILES).
const RUN_FILES: usize = 24;
/// What a pooled step's MAKEFLAGS names (GNU make 4.4 in the environment).
const FIFO_AUTH: &str = "--jobserver-auth=fifo:/run/build-helper/jobserver";
/// The history's name.
const RUN_HISTORY: &str = "20261201-000000";

/// The history every run starts from: the gcc stage3 archived with the product's archiver
/// into `<stage3>.jobs/history/`, once per test process (replaced each time, as portage.rs
/// replaces its mirror: the stage3 may have changed).
fn jobs_history() -> PathBuf {
    static HISTORY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HISTORY
        .get_or_init(|| {
            let stage3 = crate::distcc::distcc_stage3();
            let mut dir = stage3.clone().into_os_string();
            dir.push(".jobs");
            let dir = PathBuf::from(dir);
            let _ = std::fs::remove_dir_all(&dir);
            let opts = build_helper::history::ArchiveOptions {
                history_type: build_helper::starter::HistoryType::Squashfs,
                compressor: "zstd".into(),
                level: Some(3),
            };
            build_helper::history::archive(&stage3, &dir, RUN_HISTORY, &opts, 2)
                .expect("archiving the history")
                .expect("the build machine has mksquashfs (scripts/install-deps.sh)")
        })
        .clone()
}

/// A tree of the jobs tree with `options` appended to its starter's `[options]`.
fn jobs_tree(options: &str) -> Tree {
    let tree = Tree::bare("bh-e2e-jobs-");
    let st = Command::new(format!("{SRC}/tests/e2e/jobs-tree/make-tree.sh"))
        .arg(tree.path())
        .arg("3")
        .env("BH_JOBS_FILES", RUN_FILES.to_string())
        .env("BH_JOBS_WORK", "1")
        .env("BH_JOBS_SLEEP", "0.2")
        .status()
        .expect("run make-tree.sh");
    assert!(st.success(), "make-tree.sh failed");
    let starter = tree.path().join("starters/jobs.toml");
    let mut text = std::fs::read_to_string(&starter).unwrap();
    text.push_str(options);
    std::fs::write(&starter, text).unwrap();
    std::fs::create_dir_all(tree.path().join("distfiles/bh-step-env")).unwrap();
    tree
}

/// A finished `build-helper run` of a jobs tree.
struct RunOutcome {
    code: Option<i32>,
    text: String,
    took: Duration,
}

/// Runs the tree's starter (`--ui plain`, from [`jobs_history`]); while it runs, calls
/// `during` every 10 ms until it returns false.
fn run_jobs(tree: &Tree, mut during: impl FnMut(&Tree) -> bool) -> RunOutcome {
    let history = jobs_history();
    let out_path = tree.path().join("run.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let t0 = Instant::now();
    let mut child = Command::new(BIN)
        .arg("run")
        .arg(tree.path().join("starters/jobs.toml"))
        .args(["--ui", "plain", "--history"])
        .arg(&history)
        .env("BUILD_HELPER_TREE", tree.path())
        .env_remove("TMUX")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut polling = true;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(900),
            "the run takes more than 15 minutes"
        );
        if polling {
            polling = during(tree);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = t0.elapsed();
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    eprintln!(
        "=== build-helper run (jobs tree), {:.1} s, exit {:?}\n{}",
        took.as_secs_f64(),
        status.code(),
        tail(&text, 30)
    );
    assert!(
        mounts_anywhere(tree.path()).is_empty(),
        "mounts left: {:?}",
        mounts_anywhere(tree.path())
    );
    RunOutcome {
        code: status.code(),
        text,
        took,
    }
}

/// One logged compile of test-jobs/cbuild.
#[derive(Debug, Clone)]
struct Compile {
    target: String,
    file: String,
    start: u128,
    end: Option<u128>,
}

/// Every compile in the tree's compile logs, and the `make-env` lines (what emake saw).
fn compiles(tree: &Tree) -> (Vec<Compile>, Vec<String>) {
    let mut out: Vec<Compile> = Vec::new();
    let mut env = Vec::new();
    let dir = tree.path().join("distfiles/bh-jobs");
    for target in RUN_TARGETS {
        let text = std::fs::read_to_string(dir.join(format!("{target}.log"))).unwrap_or_default();
        for line in text.lines() {
            let w: Vec<&str> = line.split(' ').collect();
            match w.first() {
                Some(&"make-env") => env.push(line.to_string()),
                Some(&"start") if w.len() == 4 => out.push(Compile {
                    target: w[2].to_string(),
                    file: w[3].to_string(),
                    start: w[1].parse().unwrap(),
                    end: None,
                }),
                Some(&"end") if w.len() == 4 => {
                    let c = out
                        .iter_mut()
                        .find(|c| c.target == w[2] && c.file == w[3] && c.end.is_none())
                        .unwrap_or_else(|| panic!("an end without a start: {line}"));
                    c.end = Some(w[1].parse().unwrap());
                }
                // A line cut by a kill.
                _ => {}
            }
        }
    }
    (out, env)
}

/// The most compiles running at once among `list` (one without an end counts as running
/// until the last instant logged).
fn peak_of<'a>(list: impl IntoIterator<Item = &'a Compile>) -> usize {
    let list: Vec<&Compile> = list.into_iter().collect();
    let last = list
        .iter()
        .map(|c| c.end.unwrap_or(c.start))
        .max()
        .unwrap_or(0);
    let mut ev: Vec<(u128, i32)> = Vec::new();
    for c in &list {
        ev.push((c.start, 1));
        ev.push((c.end.unwrap_or(last + 1), -1));
    }
    // Ends before starts at the same instant.
    ev.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in ev {
        now += d;
        max = max.max(now);
    }
    max as usize
}

/// The peak of each target's own compiles, in [`RUN_TARGETS`] order.
fn peaks_per_target(all: &[Compile]) -> Vec<usize> {
    RUN_TARGETS
        .iter()
        .map(|t| peak_of(all.iter().filter(|c| c.target == *t)))
        .collect()
}

/// Each `(target name, step)` and the variables its login shell got, from
/// `distfiles/bh-step-env/<name>.log`, in the order the steps ran.
fn step_envs(tree: &Tree, name: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let text = std::fs::read_to_string(
        tree.path()
            .join("distfiles/bh-step-env")
            .join(format!("{name}.log")),
    )
    .unwrap_or_default();
    text.lines()
        .map(|l| {
            let mut f = l.split('\t');
            let step = f.next().unwrap().to_string();
            assert_eq!(f.next(), Some(name), "{l}");
            let vars = f
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (step, vars)
        })
        .collect()
}

/// The planned steps of each target, from the run's plan.json.
fn planned_steps(tree: &Tree) -> Vec<Vec<String>> {
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tree.run_dir().join("plan.json")).unwrap()).unwrap();
    plan["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

/// Asserts that every planned step of every target ran with the run's jobserver in its
/// environment (GNU make 4.4.1 there), `MAKEOPTS` without `-j`, and that emake in
/// test-jobs/cbuild saw the same.
fn assert_every_step_was_pooled(tree: &Tree, make_env: &[String]) {
    for (i, planned) in planned_steps(tree).iter().enumerate() {
        let name = RUN_TARGETS[i].rsplit_once('.').unwrap().1;
        let envs = step_envs(tree, name);
        // A step that sources /etc/profile again (host-toolchain after env-update) logs twice.
        let mut ran: Vec<String> = envs.iter().map(|(s, _)| s.clone()).collect();
        ran.dedup();
        assert_eq!(
            &ran, planned,
            "{name}: the steps whose environment was logged"
        );
        for (step, vars) in &envs {
            assert_eq!(
                vars.get("MAKEFLAGS").map(String::as_str),
                Some(FIFO_AUTH),
                "{name} {step}: {vars:?}"
            );
            let opts = vars.get("MAKEOPTS").cloned().unwrap_or_default();
            assert!(!opts.contains("-j"), "{name} {step}: MAKEOPTS={opts}");
        }
    }
    assert_eq!(make_env.len(), RUN_TARGETS.len(), "{make_env:?}");
    for line in make_env {
        assert!(
            line.contains(&format!(" MAKEFLAGS={FIFO_AUTH} MAKEOPTS= ")),
            "emake's environment: {line}"
        );
    }
}

/// The run's events of kind `kind`.
fn events_of(tree: &Tree, kind: &str) -> Vec<serde_json::Value> {
    tree.events()
        .into_iter()
        .filter(|e| e["event"] == kind)
        .collect()
}

/// Asserts the pool's events: started and closed with `jobs` tokens, nothing lost at the end,
/// and one `job-tokens-returned` per finished step (same target and step).
fn assert_pool_events(tree: &Tree, jobs: u64) {
    let started = events_of(tree, "job-pool-started");
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["total"], jobs);
    let closed = events_of(tree, "job-pool-closed");
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0]["total"], jobs, "{closed:?}");
    assert_eq!(closed[0]["free"], jobs, "tokens lost for good: {closed:?}");
    let mut finished: Vec<(String, String)> = events_of(tree, "step-finished")
        .iter()
        .map(|e| (e["target"].to_string(), e["step"].to_string()))
        .collect();
    let mut returned: Vec<(String, String)> = events_of(tree, "job-tokens-returned")
        .iter()
        .map(|e| (e["target"].to_string(), e["step"].to_string()))
        .collect();
    finished.sort();
    returned.sort();
    assert_eq!(
        returned, finished,
        "one job-tokens-returned after every step"
    );
}

/// Every compile of `target` logged its start and its end.
fn assert_all_compiled(all: &[Compile], target: &str) {
    let mine: Vec<&Compile> = all.iter().filter(|c| c.target == target).collect();
    // The objects and main.o.
    assert_eq!(mine.len(), RUN_FILES + 1, "{target}: {mine:?}");
    assert!(mine.iter().all(|c| c.end.is_some()), "{target}: {mine:?}");
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn job_pool_caps_concurrent_jobs_across_three_targets_in_a_run() {
    if !require_root() {
        return;
    }
    jobs_history();
    let _heavy = heavy_lock();
    let jobs = 2;
    let tree = jobs_tree(&format!("jobs = {jobs}\njob_pool = true\n"));
    let run = run_jobs(&tree, |_| false);
    assert_eq!(run.code, Some(0), "the pooled run failed");
    let cp = tree.checkpoint();
    for t in RUN_TARGETS {
        assert!(steps(&cp, t).iter().all(|s| s.1 == "done"), "{t}");
    }
    let (all, make_env) = compiles(&tree);
    for t in RUN_TARGETS {
        assert_all_compiled(&all, t);
    }
    let bound = jobs.max(RUN_TARGETS.len()) + 1;
    let peak = peak_of(&all);
    let per_target = peaks_per_target(&all);
    eprintln!(
        "job pool through build-helper run, jobs = {jobs}, 3 targets: peak {peak} concurrent \
         compiles (bound {bound}), per target {per_target:?}, run {:.1} s",
        run.took.as_secs_f64()
    );
    assert!(peak <= bound, "peak {peak} above {bound}");
    assert!(peak >= 2, "the targets compiled one at a time: {peak}");
    // A make given no -j runs one job at a time unless it holds a token of the pool.
    assert!(
        per_target.iter().any(|&p| p >= 2),
        "no target ever ran a job on a token: {per_target:?}"
    );
    assert_every_step_was_pooled(&tree, &make_env);
    assert_pool_events(&tree, jobs as u64);
    // Each step's cost: the compiles of target-world are in its CPU time.
    for e in events_of(&tree, "step-finished") {
        let cost = &e["cost"];
        assert!(cost.is_object(), "no cost: {e}");
        assert!(
            ["cgroup", "cgroup-cpu-rusage-memory", "rusage"]
                .contains(&cost["source"].as_str().unwrap_or("")),
            "{e}"
        );
        if e["step"] == "target-world" {
            assert!(cost["cpu_us"].as_u64().unwrap_or(0) > 0, "{e}");
            assert!(cost["peak_rss_bytes"].as_u64().unwrap_or(0) > 0, "{e}");
        }
    }
}

/// The pid of the top-level make of test-jobs/cbuild building for `target` (its environment
/// has `BH_TARGET=<target>`, exported by the ebuild's src_compile before emake).
fn make_of(target: &str) -> Option<i32> {
    let want = format!("BH_TARGET={target}");
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim_end() != "make" {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|&b| b == 0).any(|v| v == want.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

/// The compiles of `target` running at `t` (started before it, not ended by then).
fn running_at(all: &[Compile], target: &str, t: u128) -> usize {
    all.iter()
        .filter(|c| c.target == target && c.start < t && c.end.is_none_or(|e| e > t))
        .count()
}

#[test]
fn job_pool_returns_the_tokens_of_a_step_killed_in_a_run() {
    if !require_root() {
        return;
    }
    jobs_history();
    let _heavy = heavy_lock();
    // Six tokens, three targets in a step: three bytes out at most.
    let jobs = 6;
    let tree = jobs_tree(&format!("jobs = {jobs}\njob_pool = true\n"));
    // The first target seen running two compiles that both started less than 100 ms ago
    // (each lasts at least the 0.2 s it sleeps, so both still run when the kill lands): its
    // make holds a token for the second. Killed with SIGKILL, it never writes it back.
    let mut victim: Option<(String, i32, u128)> = None;
    let run = run_jobs(&tree, |tree| {
        let (all, _) = compiles(tree);
        let now = now_ns();
        for t in RUN_TARGETS {
            let fresh = all
                .iter()
                .filter(|c| c.target == t && c.end.is_none() && c.start + 100_000_000 > now)
                .count();
            if fresh < 2 {
                continue;
            }
            let Some(pid) = make_of(t) else { continue };
            let at = now_ns();
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            victim = Some((t.to_string(), pid, at));
            return false;
        }
        true
    });
    let (victim, pid, at) = victim.expect("no target was seen starting two compiles within 100 ms");
    assert_eq!(run.code, Some(1), "a target failed: the run exits 1");
    let (all, _) = compiles(&tree);
    // Tokens its make held when it died: one per compile running then, but the implicit slot.
    let held = running_at(&all, &victim, at).saturating_sub(1);
    assert!(
        held >= 1,
        "{victim}'s make (pid {pid}) held no token when killed: {all:?}"
    );
    let cp = tree.checkpoint();
    let st = steps(&cp, &victim);
    let world = st.iter().find(|s| s.0 == "target-world").unwrap();
    assert_eq!(world.1, "failed", "{victim}: {st:?}");
    assert!(
        tree.log(&victim).contains("emake failed"),
        "{victim} failed for another reason"
    );
    // The plain front end's summary: the victim failed, the others are done.
    let summary = |t: &str| {
        run.text
            .lines()
            .rev()
            .find(|l| l.split_whitespace().next() == Some(t))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        summary(&victim).contains(" failed "),
        "{}",
        summary(&victim)
    );
    let others: Vec<&str> = RUN_TARGETS.into_iter().filter(|t| *t != victim).collect();
    for t in &others {
        assert!(summary(t).contains(" done "), "{}", summary(t));
    }
    for t in &others {
        assert!(
            steps(&cp, t).iter().all(|s| s.1 == "done"),
            "{t}: {:?}",
            steps(&cp, t)
        );
        assert_all_compiled(&all, t);
    }
    let back = events_of(&tree, "job-tokens-returned");
    let killed = back
        .iter()
        .find(|e| e["target"] == victim.as_str() && e["step"] == "target-world")
        .unwrap_or_else(|| panic!("no job-tokens-returned for {victim} target-world: {back:?}"));
    let granted = killed["granted"].as_u64().unwrap() as usize;
    let lost = killed["lost"].as_u64().unwrap() as usize;
    eprintln!(
        "job pool through build-helper run: {victim}'s make killed holding at least {held} \
         token(s); job-tokens-returned {killed}; run {:.1} s",
        run.took.as_secs_f64()
    );
    assert!(
        lost >= held,
        "the tokens the killed make held came back as lost: {killed}"
    );
    assert!(granted >= lost, "{killed}");
    assert_pool_events(&tree, jobs as u64);
}

#[test]
fn job_pool_memory_admission_holds_tokens_back_in_a_run() {
    if !require_root() {
        return;
    }
    jobs_history();
    let _heavy = heavy_lock();
    let jobs = 6;
    let tree = jobs_tree(&format!(
        "jobs = {jobs}\njob_pool = true\nmin_mem_avail = \"1024T\"\n"
    ));
    // `status --json` of the live run, every half second until its pool says why it holds
    // tokens back while every target runs a step (the target phase).
    let mut held: Option<serde_json::Value> = None;
    let mut last = Instant::now() - Duration::from_secs(1);
    let run = run_jobs(&tree, |tree| {
        if last.elapsed() < Duration::from_millis(500) {
            return true;
        }
        last = Instant::now();
        let out = Command::new(BIN)
            .args(["status", "--json"])
            .env("BUILD_HELPER_TREE", tree.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return true;
        };
        let pool = doc["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|r| r["pool"].as_object().cloned());
        if let Some(pool) = pool {
            let active = pool["targets"]
                .as_array()
                .map_or(0, |ts| ts.iter().filter(|t| t["active"] == true).count());
            if active == RUN_TARGETS.len() && !pool["held"].is_null() {
                held = Some(serde_json::Value::Object(pool));
                return false;
            }
        }
        true
    });
    assert_eq!(run.code, Some(0), "the run failed");
    let pool = held.expect("status --json never showed the pool holding tokens back");
    eprintln!("status --json pool while memory is short: {pool}");
    let min = 1024u64 << 40;
    assert_eq!(pool["held"]["reason"], "low-memory", "{pool}");
    assert_eq!(pool["held"]["min"], min, "{pool}");
    assert!(pool["held"]["available"].as_u64().unwrap() < min, "{pool}");
    let (all, make_env) = compiles(&tree);
    for t in RUN_TARGETS {
        assert_all_compiled(&all, t);
    }
    let peak = peak_of(&all);
    let per_target = peaks_per_target(&all);
    eprintln!(
        "job pool through build-helper run, min_mem_avail above the machine's memory: peak \
         {peak} concurrent compiles, per target {per_target:?}, run {:.1} s",
        run.took.as_secs_f64()
    );
    // Only each make's implicit slot: one compile at a time per target.
    assert_eq!(per_target, vec![1; RUN_TARGETS.len()], "a token was used");
    assert!(peak <= RUN_TARGETS.len(), "peak {peak}");
    for e in events_of(&tree, "job-tokens-returned") {
        assert_eq!(
            e["granted"], 0,
            "a token left the pool while memory was short: {e}"
        );
    }
    assert_every_step_was_pooled(&tree, &make_env);
    assert_pool_events(&tree, jobs as u64);
}
