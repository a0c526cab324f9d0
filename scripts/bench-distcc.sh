#!/bin/sh
# Times a small multi-file C compile (make -j, one compiler call per file) in the distcc test
# stage3, once with local gcc and once through `build-helper distcc-helper` on 127.0.0.1
# serving a history archived from the same stage3, with distcc's local fallback off. Prints
# each run's wall time, the medians and their ratio (distcc / local). On one machine the
# helper shares the same cores, so the ratio shows distcc's overhead, not a speed-up.
#
# Usage: scripts/bench-distcc.sh [FILES] [REPEATS]   (as root, after `cargo build`; the stage3
#        comes from scripts/distcc-stage3.sh, default target/bh-distcc-stage3 or
#        $BH_DISTCC_STAGE3)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
files=${1:-24}
repeats=${2:-3}
bin=${BH_BIN:-$here/target/debug/build-helper}
stage3=${BH_DISTCC_STAGE3:-$here/target/bh-distcc-stage3}
[ -x "$bin" ] || { echo "$0: $bin missing: cargo build" >&2; exit 2; }
[ -e "$stage3/usr/bin/distccd" ] || { echo "$0: $stage3 has no distccd: scripts/distcc-stage3.sh" >&2; exit 2; }
work=$(mktemp -d /tmp/bh-bench-distcc-XXXXXX)
helper=
cleanup() {
    if [ -n "$helper" ]; then kill -INT "$helper" 2>/dev/null || true; wait "$helper" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
mkdir -p "$work/tree/history" "$work/src"
mksquashfs "$stage3" "$work/tree/history/20261130-000000.sqfs" -comp zstd -Xcompression-level 3 \
    -quiet -no-progress >/dev/null
i=0
while [ "$i" -lt "$files" ]; do
    cat > "$work/src/f$i.c" <<C
/* Compile-time work: unrolled loops at -O2. */
static unsigned long t[256];
static unsigned long mix(unsigned long v, unsigned long k) {
    for (int r = 0; r < 16; r++) v = (v ^ (k + $i * r)) * 0x9e3779b97f4a7c15UL + (v >> 7);
    return v;
}
#define STEP(n) t[(n) & 255] = mix(t[((n) + 1) & 255] + (n), (n) * $i + 1);
#define S8(n) STEP(n) STEP(n+1) STEP(n+2) STEP(n+3) STEP(n+4) STEP(n+5) STEP(n+6) STEP(n+7)
#define S64(n) S8(n) S8(n+8) S8(n+16) S8(n+24) S8(n+32) S8(n+40) S8(n+48) S8(n+56)
unsigned long f$i(unsigned long x) { t[0] = x; S64(0) return t[7]; }
C
    i=$((i + 1))
done
printf 'OBJS = %s\nall: $(OBJS)\n%%.o: %%.c\n\t$(CC) -O2 -c $< -o $@\n' \
    "$(cd "$work/src" && ls *.c | sed 's/\.c$/.o/' | tr '\n' ' ')" > "$work/src/Makefile"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" distcc-helper --tree "$work/tree" --listen 127.0.0.1 --port "$port" --allow 127.0.0.1 \
    --jobs 2 > "$work/helper.log" 2>&1 &
helper=$!
n=0
until grep -q 'listening on' "$work/helper.log"; do
    n=$((n + 1)); [ "$n" -lt 300 ] || { cat "$work/helper.log" >&2; exit 1; }
    sleep 0.1
done
# The client: the same stage3 under an overlay, in a private mount namespace.
unshare --mount --propagation private sh -eu -c '
    st=$1 w=$2 port=$3 repeats=$4
    mkdir -p "$w/u" "$w/w" "$w/m"
    mount -t overlay overlay -o "lowerdir=$st,upperdir=$w/u,workdir=$w/w" "$w/m"
    mount -t proc proc "$w/m/proc"
    mkdir -p "$w/m/bench"
    mount --bind "$w/src" "$w/m/bench"
    chroot "$w/m" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        DISTCC_HOSTS="127.0.0.1:$port/2,lzo" DISTCC_FALLBACK=0 DISTCC_SKIP_LOCAL_RETRY=1 \
        repeats="$repeats" sh -eu -c "
        cd /bench
        t() { s=\$(date +%s.%N); make -s -j4 CC=\"\$1\"; e=\$(date +%s.%N); make -s clean >/dev/null 2>&1 || rm -f *.o; echo \"\$e - \$s\" | bc 2>/dev/null || python3 -c \"print(\$e - \$s)\"; }
        r=0; while [ \$r -lt \$repeats ]; do
            echo \"local \$(t gcc)\"; echo \"distcc \$(t \"distcc gcc\")\"; r=\$((r + 1)); done"
' sh "$stage3" "$work" "$port" "$repeats" > "$work/times"
jobs=$(grep -c COMPILE_OK "$work/helper.log" || true)
python3 - "$work/times" "$files" "$repeats" "$jobs" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
local = [float(v) for k, v in rows if k == "local"]
dist = [float(v) for k, v in rows if k == "distcc"]
print(f"{sys.argv[2]} files, make -j4, {sys.argv[3]} repeats; helper log: {sys.argv[4]} jobs compiled there")
print("local  s:", " ".join(f"{v:.2f}" for v in local))
print("distcc s:", " ".join(f"{v:.2f}" for v in dist))
ml, md = statistics.median(local), statistics.median(dist)
print(f"median local {ml:.2f} s, distcc {md:.2f} s, ratio distcc/local {md / ml:.2f}")
PY
