#!/bin/sh
# Benchmark: the delay between a tuple's toolchain-ready event and the first step of the
# targets waiting for it, read from the runs' recorded events (work/<run>/events.jsonl), and
# the bytes the supervisor itself writes to storage per step (write_bytes of its threads in
# /proc/<pid>/task/*/io: the checkpoint and its log, the mount journal, the event log; not
# its children's), for a run of N targets.
# Goals (issues 2 and 9): under 100 ms at 64 targets; bytes written per step constant in N.
# Runs the demo starter (its demo-a primary, then N-1 copies of demo-b and demo-c) once from
# the stage3 (not measured: it makes the history and its extraction would dominate the bytes
# written), then RUNS times (default 3) as updates from the newest history, per N, with the
# release binary on the demo/test stand-in stage3, in a throw-away tree; as root.
# BH_DEMO_DELAY=0 unless set. BH_BIN=<build-helper binary> measures that binary instead of
# building this tree's (to compare with an earlier build); BH_BENCH_KEEP=1 keeps the
# throw-away tree (its runs' events and logs) for a closer look.
# The latency metric: for every waiting target (every target but the primary) of every
# measured run, the time from its tuple's toolchain-ready event to its own first
# step-started event (both timestamps `t_us` in events.jsonl, written by the supervisor);
# min, median and max over all of them.
#   scripts/bench-latency.sh [RUNS] [N...]       e.g. scripts/bench-latency.sh 1 3 16 32 64
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
[ $# -gt 0 ] && shift
sizes=${*:-3}
target_dir=${CARGO_TARGET_DIR:-$src/target}
bin=${BH_BIN:-$target_dir/release/build-helper}
[ -n "${BH_BIN:-}" ] || (cd "$src" && cargo build --release --quiet)
base=$(mktemp -d /tmp/bh-bench-latency.XXXXXX)
trap 'for t in "$base"/n*; do [ -d "$t" ] && "$bin" umount --all --tree "$t" >/dev/null 2>&1 || true; done; [ -n "${BH_BENCH_KEEP:-}" ] || rm -rf "$base"' EXIT
"$src/scripts/demo-mirror.sh" "$base/mirror" >/dev/null

# make_tree N DIR: the demo tree with N targets (demo-a first, then copies of b and c).
make_tree() {
    n=$1 tree=$2
    mkdir -p "$tree"
    cp -a "$src/configs" "$src/starters" "$tree/"
    starter=$tree/starters/bench.toml
    {
        printf '[[target]]\ntuple = "x86_64-unknown-linux-musl"\nname = "demo-a"\n\n'
        i=1
        while [ "$i" -lt "$n" ]; do
            if [ $((i % 2)) = 1 ]; then tuple=x86_64-unknown-linux-musl from=demo-b
            else tuple=aarch64-unknown-linux-musl from=demo-c; fi
            name=bench$i
            cp -a "$tree/configs/$tuple.$from" "$tree/configs/$tuple.$name"
            printf '[[target]]\ntuple = "%s"\nname = "%s"\n\n' "$tuple" "$name"
            i=$((i + 1))
        done
        sed -n '/^\[options\]/,$p' "$src/starters/demo.toml"
    } > "$starter"
}

# watch_io PID OUT: appends "<thread file> <write_bytes>" of each of the supervisor's own
# threads to OUT every 50 ms until it exits. Per thread (/proc/PID/task/TID/io), because the
# process's own /proc/PID/io also adds what its reaped children wrote: the workers, their
# steps and mksquashfs, i.e. the build itself. A thread's last 50 ms before it ends are
# missed (the supervisor's long-lived threads end with it).
watch_io() {
    while [ -r "/proc/$1/io" ]; do
        awk '/^write_bytes/ { print FILENAME, $2 }' /proc/"$1"/task/*/io >> "$2" 2>/dev/null || true
        sleep 0.05
    done
}

for n in $sizes; do
    tree=$base/n$n
    make_tree "$n" "$tree"
    i=0
    while [ "$i" -le "$runs" ]; do
        if [ "$i" = 0 ]; then history=none; else history=latest; fi
        # The previous run's writes (its history, ~100 MB at 64 targets) reach the disk
        # first: their writeback would land in this run's mounts.
        sync
        BUILD_HELPER_TREE=$tree TARBALL_MIRROR=file://$base/mirror BH_OPENPGP_KEY=$base/mirror/demo-release.asc \
            BH_DEMO_DELAY=${BH_DEMO_DELAY:-0} \
            "$bin" run "$tree/starters/bench.toml" --ui plain --history "$history" >/dev/null 2>&1 &
        pid=$!
        watch_io "$pid" "$tree/io.$i" &
        wait "$pid" || echo "run $i of N=$n exited $?" >&2
        wait
        i=$((i + 1))
        sleep 1
    done
done

python3 - "$base" $sizes <<'PY'
import glob, json, os, statistics, sys
base = sys.argv[1]
print("updates from history: toolchain-ready -> first step of every waiting target (ms), supervisor"
      " bytes written to storage per step; release build, BH_DEMO_DELAY=%s:" % os.environ.get("BH_DEMO_DELAY", "0"))
print("  %4s  %5s  %8s  %8s  %8s  %10s" % ("N", "runs", "min", "median", "max", "B/step"))
worst_at_max = None
for n in sys.argv[2:]:
    tree = os.path.join(base, "n" + n)
    gaps, per_step, mounts = [], [], []
    for k, run in enumerate(sorted(os.listdir(os.path.join(tree, "work")))):
        if k == 0:
            continue  # the first build, from the stage3: not measured
        d = os.path.join(tree, "work", run)
        if not os.path.isfile(os.path.join(d, "events.jsonl")):
            continue
        ev = [json.loads(l) for l in open(os.path.join(d, "events.jsonl"))]
        plan = json.load(open(os.path.join(d, "plan.json")))
        for t in plan["targets"][1:]:
            tup = t["target"]["tuple"]; name = "%s.%s" % (tup, t["target"]["name"])
            ready = next(e["t_us"] for e in ev if e["event"] == "toolchain-ready" and e["tuple"] == tup)
            first = next((e["t_us"] for e in ev if e["event"] == "step-started" and e["target"] == name), None)
            if first is not None:
                gaps.append((first - ready) / 1000)
        steps = sum(1 for e in ev if e["event"] == "step-finished")
        io = os.path.join(tree, "io.%d" % k)
        if steps and os.path.isfile(io):
            last = {}
            for line in open(io):
                f = line.split()
                if len(f) == 2 and f[1].isdigit():
                    last[f[0]] = max(last.get(f[0], 0), int(f[1]))
            per_step.append(sum(last.values()) / steps)
    if not gaps:
        print("  %4s  no waiting target started" % n)
        continue
    worst_at_max = max(gaps)
    print("  %4s  %5d  %8.1f  %8.1f  %8.1f  %10.0f" % (
        n, len(per_step), min(gaps), statistics.median(gaps), max(gaps),
        statistics.median(per_step) if per_step else float("nan")))
if worst_at_max is not None:
    print("goal < 100 ms at the largest N: %s (worst %.1f ms)" % ("met" if worst_at_max < 100 else "NOT met", worst_at_max))
PY
