//! The run's job pool with real GNU make: three makes, one per target fifo, never run more
//! compile jobs at once than the pool allows (and do without it); a killed step's tokens come
//! back; low memory holds tokens back. The makes get the jobserver in the form the installed
//! make understands (fd form for 4.2/4.3, fifo form for 4.4 and newer).

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
