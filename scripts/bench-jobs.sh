#!/bin/sh
# The run's job pool against one `make -jN` per target, through `build-helper run`: TARGETS
# stage0 targets of tests/e2e/jobs-tree each build test-jobs/cbuild (FILES generated C files
# of unrolled loops, about 0.3 s of gcc -O2 each, compiled by emake with the gcc stage3's real
# gcc, one compiler call per file) in the gcc stage3 of scripts/distcc-stage3.sh (GNU make
# 4.4.1). Four runs, alternating: pooled (job_pool = true, jobs = nproc: one jobserver of
# nproc tokens for the whole run), unpooled (job_pool = false: MAKEOPTS=-j<nproc> in every
# target), pooled, unpooled. Every run is an update from one history archived from the stage3.
#
# While a run compiles, /proc is sampled every 20 ms for compiler processes (comm `cc1`): their
# number and their summed resident memory. For each run it prints the peak of both, the peak
# of concurrent compiles from the compiles' own start/end logs, and the makespan of the compile
# phase (first compile start to last compile end, from the logs); then the means per mode and
# a last line `makespan ratio X peak jobs Y/Z memory ratio W`: pooled / unpooled, with the
# makespans and the peak memories averaged over each mode's runs and Y/Z the highest sampled
# compiler count of the pooled runs over that of the unpooled ones. The goals at TARGETS=3 on a
# 2-core machine: pooled peak <= max(jobs, TARGETS) + 1, makespan ratio <= 1.05, memory ratio
# <= 0.7. Other load on the machine disturbs the figures: the load average before each run is
# printed.
#
# Usage: scripts/bench-jobs.sh [TARGETS] [FILES]   (default 3 and 48; as root, after
#        `cargo build`; the stage3 comes from scripts/distcc-stage3.sh, default
#        target/bh-distcc-stage3 or $BH_DISTCC_STAGE3; BH_JOBS_WORK sets the loop blocks per
#        file, default 4). Nothing stays mounted; the work directory is removed on any exit.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
targets=${1:-3}
files=${2:-48}
work_units=${BH_JOBS_WORK:-4}
bin=${BH_BIN:-$here/target/debug/build-helper}
stage3=${BH_DISTCC_STAGE3:-$here/target/bh-distcc-stage3}
[ "$(id -u)" = 0 ] || { echo "$0: run as root (build-helper run mounts and chroots)" >&2; exit 2; }
[ -x "$bin" ] || { echo "$0: $bin missing: cargo build" >&2; exit 2; }
case $(chroot "$stage3" make --version 2>/dev/null | head -n 1) in
    "GNU Make 4.4"*|"GNU Make 4.5"*|"GNU Make 5"*) ;;
    *) echo "$0: $stage3 has no GNU make 4.4 or newer: scripts/distcc-stage3.sh" >&2; exit 2 ;;
esac
jobs=$(nproc)
work=$(mktemp -d /tmp/bh-bench-jobs-XXXXXX)
runpid=
cleanup() {
    if [ -n "$runpid" ] && kill -0 "$runpid" 2>/dev/null; then
        kill -INT "$runpid" 2>/dev/null || true
        wait "$runpid" 2>/dev/null || true
    fi
    for t in "$work"/run*; do
        if [ -d "$t" ]; then "$bin" umount --all --tree "$t" >/dev/null 2>&1 || true; fi
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mksquashfs "$stage3" "$work/history.sqfs" -comp zstd -Xcompression-level 3 -quiet -no-progress >/dev/null

# sample PID TREE: while the run PID lives, the peak number of cc1 processes and the peak of
# their summed resident memory (bytes), sampled every 20 ms once the compiles began.
cat > "$work/sample.py" <<'PY'
import os, sys, time
pid, tree = int(sys.argv[1]), sys.argv[2]
logs = os.path.join(tree, "distfiles", "bh-jobs")
page = os.sysconf("SC_PAGE_SIZE")
peak_n = peak_rss = 0
def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
while alive():
    if not os.path.isdir(logs):
        time.sleep(0.2)
        continue
    n = rss = 0
    for e in os.scandir("/proc"):
        if not e.name.isdigit():
            continue
        try:
            with open(f"/proc/{e.name}/comm") as f:
                if f.read() != "cc1\n":
                    continue
            with open(f"/proc/{e.name}/statm") as f:
                rss += int(f.read().split()[1]) * page
            n += 1
        except (OSError, IndexError, ValueError):
            pass
    peak_n, peak_rss = max(peak_n, n), max(peak_rss, rss)
    time.sleep(0.02)
print(peak_n, peak_rss)
PY
# analyse TREE TARGETS FILES: the compile phase's makespan (s) and the peak of concurrent
# compiles, from the compiles' start/end logs; fails unless every compile ran.
cat > "$work/analyse.py" <<'PY'
import glob, os, sys
tree, targets, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ev, ends = [], {}
for log in glob.glob(os.path.join(tree, "distfiles", "bh-jobs", "*.log")):
    for line in open(log):
        w = line.split()
        if len(w) == 4 and w[0] in ("start", "end"):
            ev.append((int(w[1]), 1 if w[0] == "start" else -1))
            if w[0] == "end":
                ends[w[2]] = ends.get(w[2], 0) + 1
if len(ends) != targets or any(n != files + 1 for n in ends.values()):
    sys.exit(f"not every compile ran: {ends}")
ev.sort()
now = peak = 0
for _, d in ev:
    now += d
    peak = max(peak, now)
print(f"{(ev[-1][0] - ev[0][0]) / 1e9:.3f} {peak}")
PY

# one N MODE: run N, pooled (MODE true) or not (false); appends its figures to results.
one() {
    t=$work/run$1
    BH_JOBS_FILES=$files BH_JOBS_WORK=$work_units BH_JOBS_SLEEP=0 \
        "$here/tests/e2e/jobs-tree/make-tree.sh" "$t" "$targets"
    printf 'jobs = %s\njob_pool = %s\n' "$jobs" "$2" >> "$t/starters/jobs.toml"
    load=$(cut -d' ' -f1 /proc/loadavg)
    s=$(date +%s%N)
    BUILD_HELPER_TREE=$t "$bin" run "$t/starters/jobs.toml" --ui plain --history "$work/history.sqfs" \
        < /dev/null > "$t/run.log" 2>&1 &
    runpid=$!
    sample=$(python3 "$work/sample.py" "$runpid" "$t")
    rc=0
    wait "$runpid" || rc=$?
    runpid=
    e=$(date +%s%N)
    if [ "$rc" != 0 ]; then
        tail -n 30 "$t/run.log" >&2
        echo "$0: run $1 (job_pool = $2) failed with exit status $rc" >&2
        exit 1
    fi
    logs=$(python3 "$work/analyse.py" "$t" "$targets" "$files")
    mode=$([ "$2" = true ] && echo pooled || echo unpooled)
    echo "$mode $logs $sample $(( (e - s) / 1000000 ))" >> "$work/results"
    set -- $1 $mode $logs $sample $(( (e - s) / 1000000 )) "$load"
    # N mode makespan logpeak cc1peak rssbytes run_ms load
    printf 'run %s %-8s (jobs = %s): compile makespan %s s, peak cc1 %s (%s concurrent compiles in the logs), peak cc1 RSS %s MiB, run %s s (load before %s)\n' \
        "$1" "$2" "$jobs" "$3" "$5" "$4" "$(( $6 / 1048576 ))" "$(( $7 / 1000 ))" "$8"
    "$bin" umount --all --tree "$t" >/dev/null 2>&1 || true
    rm -rf "$t"
}

echo "bench-jobs: $targets targets, $files C files each ($work_units loop blocks per file), jobs = $jobs, $(nproc) CPUs"
one 1 true
one 2 false
one 3 true
one 4 false
python3 - "$work/results" "$jobs" "$targets" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
jobs, targets = int(sys.argv[2]), int(sys.argv[3])
def of(mode):
    r = [x for x in rows if x[0] == mode]
    return (sum(float(x[1]) for x in r) / len(r), max(int(x[3]) for x in r),
            sum(int(x[4]) for x in r) / len(r), max(int(x[2]) for x in r))
pm, pp, pr, pl = of("pooled")
um, up, ur, ul = of("unpooled")
print(f"pooled   (mean of 2): compile makespan {pm:.2f} s, peak cc1 {pp} (logs {pl}, bound max(jobs, targets) + 1 = {max(jobs, targets) + 1}), peak cc1 RSS {pr / 1048576:.0f} MiB")
print(f"unpooled (mean of 2): compile makespan {um:.2f} s, peak cc1 {up} (logs {ul}), peak cc1 RSS {ur / 1048576:.0f} MiB")
print(f"makespan ratio {pm / um:.2f} peak jobs {pp}/{up} memory ratio {pr / ur:.2f}")
PY
