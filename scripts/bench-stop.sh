#!/bin/sh
# Benchmark: the stop latency of `build-helper run` (SIGINT to the supervisor's exit) in the
# stage3 extraction and in the mounts (issue 9 item 4: every phase stops within 2 s, exit
# 130). RUNS times (default 5) each, on the demo starter and a throw-away demo mirror and
# tree, as root; prints one line per stop and the exit status it ended with.
# - extraction: SIGINT 0.1 s after "extracting" is printed, as it is (no slowing);
# - mounts: the supervisor runs under strace with every mount(2) 150 ms slower (the mounts
#   take milliseconds otherwise, too short to land a signal in), SIGINT once the checkpoint
#   shows stage3 done and mounts running; the figure includes the rest of the mount(2) in
#   flight (at most 150 ms).
# The release binary unless BH_BIN names another (e.g. target/debug/build-helper).
#   scripts/bench-stop.sh [RUNS]
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
bin=${BH_BIN:-}
if [ -z "$bin" ]; then
    (cd "$src" && cargo build --release --quiet)
    bin=${CARGO_TARGET_DIR:-$src/target}/release/build-helper
fi
command -v strace >/dev/null || { echo "$0: strace is needed (scripts/install-deps.sh)" >&2; exit 1; }
base=$(mktemp -d /tmp/bh-bench-stop.XXXXXX)
tree=$base/tree
trap '"$bin" umount --all --tree "$tree" >/dev/null 2>&1 || true; rm -rf "$base"' EXIT
"$src/scripts/demo-mirror.sh" "$base/mirror" >/dev/null 2>&1
mkdir -p "$tree/history" "$tree/builds" "$tree/distfiles" "$tree/work" "$tree/binpkgs"
cp -a "$src/configs" "$src/starters" "$tree/"
export BUILD_HELPER_TREE="$tree" TARBALL_MIRROR="file://$base/mirror" \
    BH_OPENPGP_KEY="$base/mirror/demo-release.asc" BH_DEMO_DELAY=0
unset BH_DEMO_FAIL TMUX || true

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# run_step STEP: the state of run step STEP in the newest run's checkpoint (or nothing).
run_step() {
    python3 - "$tree/work" "$1" <<'EOF' 2>/dev/null || true
import json, os, sys
work, step = sys.argv[1], sys.argv[2]
runs = sorted(d for d in os.listdir(work) if os.path.exists(os.path.join(work, d, "plan.json")))
cp = json.load(open(os.path.join(work, runs[-1], "checkpoint.json")))
print(next((s["state"] for s in cp["run_steps"] if s["name"] == step), ""))
EOF
}

# wait_for SECONDS COMMAND...: polls COMMAND every 20 ms until it succeeds.
wait_for() {
    limit=$(($(now_ms) + $1 * 1000))
    shift
    until "$@"; do
        [ "$(now_ms)" -lt "$limit" ] || { echo "$0: timed out waiting for: $*" >&2; exit 1; }
        sleep 0.02
    done
}

extracting() { grep -q "extracting " "$base/out"; }
mounting() { [ "$(run_step stage3)" = done ] && [ "$(run_step mounts)" = running ]; }

# stop PHASE PID WAITPID: SIGINT to PID; WAITPID (the process started) ends; prints the line.
stop() {
    t0=$(now_ms)
    kill -INT "$2"
    rc=0
    wait "$3" || rc=$?
    echo "stop latency ($1, SIGINT): $(($(now_ms) - t0)) ms, exit $rc"
}

resume=
i=0
while [ "$i" -lt "$runs" ]; do
    "$bin" run "$tree/starters/demo.toml" --ui plain $resume >"$base/out" 2>&1 &
    pid=$!
    wait_for 120 extracting
    sleep 0.1
    stop extraction "$pid" "$pid"
    resume=--resume
    i=$((i + 1))
done
i=0
while [ "$i" -lt "$runs" ]; do
    strace -f -qq --seccomp-bpf -o /dev/null -e trace=mount -e inject=mount:delay_exit=150000 \
        "$bin" run "$tree/starters/demo.toml" --ui plain --resume >"$base/out" 2>&1 &
    tracer=$!
    wait_for 120 mounting
    stop mounts "$(pgrep -P "$tracer")" "$tracer"
    i=$((i + 1))
done
