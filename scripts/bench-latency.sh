#!/bin/sh
# Benchmark: the delay between a tuple's toolchain-ready event and the first step of the
# target waiting for it, read from the runs' recorded events (work/<run>/events.jsonl).
# Goal (issue 2): under 100 ms. Runs the demo starter N times (default 5) with the release
# binary on the demo/test stand-in stage3, in a throw-away tree; as root.
#   scripts/bench-latency.sh [N]
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-5}
target_dir=${CARGO_TARGET_DIR:-$src/target}
(cd "$src" && cargo build --release --quiet)
tree=$(mktemp -d /tmp/bh-bench-latency.XXXXXX)
trap 'rm -rf "$tree"' EXIT
cp -a "$src/configs" "$src/starters" "$tree/"
"$src/scripts/demo-mirror.sh" "$tree/mirror" >/dev/null
i=0
while [ "$i" -lt "$n" ]; do
    BUILD_HELPER_TREE=$tree TARBALL_MIRROR=file://$tree/mirror BH_OPENPGP_KEY=$tree/mirror/demo-release.asc BH_DEMO_DELAY=0.01 \
        "$target_dir/release/build-helper" run "$tree/starters/demo.toml" --ui plain --history none >/dev/null
    i=$((i + 1))
    sleep 1
done
python3 - "$tree/work" <<'PY'
import json, os, statistics, sys
gaps = {}
for run in sorted(os.listdir(sys.argv[1])):
    ev = [json.loads(l) for l in open(os.path.join(sys.argv[1], run, "events.jsonl"))]
    plan = json.load(open(os.path.join(sys.argv[1], run, "plan.json")))
    for t in plan["targets"][1:]:
        tuple_ = t["target"]["tuple"]; name = "%s.%s" % (tuple_, t["target"]["name"])
        ready = next(e["t_us"] for e in ev if e["event"] == "toolchain-ready" and e["tuple"] == tuple_)
        first = next(e["t_us"] for e in ev if e["event"] == "step-started" and e["target"] == name)
        gaps.setdefault(name, []).append((first - ready) / 1000)
print("toolchain-ready -> first step of the waiting target (ms), %d runs, release build:" % len(os.listdir(sys.argv[1])))
for name, g in gaps.items():
    print("  %-36s min %6.1f  median %6.1f  max %6.1f" % (name, min(g), statistics.median(g), max(g)))
worst = max(max(g) for g in gaps.values())
print("goal < 100 ms: %s (worst %.1f ms)" % ("met" if worst < 100 else "NOT met", worst))
PY
