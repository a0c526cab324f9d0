#!/bin/sh
# Benchmark: how long `build-helper attach` takes to show a full screen, two ways.
#
# In process (`cargo bench --bench attach`, no root): per attach, the time from connecting
# to a supervisor's attach socket until the first frame is drawn with every target's pane
# filled (snapshot read and decoded, panes loaded into the TUI's state, fitted to a 200x60
# terminal, rendered), for N targets with 500 and with 10,000 lines of output each (10,000
# is the most a pane keeps). The hub is the supervisor's own code, in-process, fed with
# coloured build output. Not included: starting the process and switching the terminal to
# raw mode. Prints the snapshot's size and the median and slowest of 5 attaches per case.
#
# End to end (root): the demo starter with N targets (demo-a, then N-1 copies of demo-b and
# demo-c, as scripts/bench-latency.sh builds them) runs with `--ui tui` in a detached tmux
# session of a private tmux server (its socket in the throw-away tree), which is left with `q` then `d` (the run goes on). Once
# every target's log has output, `build-helper attach` is started 5 times in a second 200x60
# tmux session, each with BH_ATTACH_TIMING=<file> (docs/attach.md): the client appends
# `targets=N connected_ms=.. snapshot_ms=.. full_frame_ms=..`, milliseconds from its main's
# start to the hello done, to every target's screen received, and to the first frame drawn
# on the terminal with every pane filled; each attach is then left with `q` `d`. Prints
# the median and slowest of the 5 per N. Release binary (BH_BIN=<binary> measures another),
# the demo stand-in stage3, a throw-away tree; afterwards the run is stopped
# (`build-helper stop`), unmounted (`umount --all`), the tmux server killed and the tree
# removed. The stand-in packages take BH_DEMO_PKG_DELAY s (0.5 unless set) so that the run
# is still going after the attaches.
#
#   scripts/bench-attach.sh [--in-process | --end-to-end] [N...]   (default: both; N: 3 16)
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
mode=both
case "${1:-}" in
    --in-process) mode=in-process; shift ;;
    --end-to-end) mode=end-to-end; shift ;;
    -*) echo "usage: $0 [--in-process | --end-to-end] [N...]" >&2; exit 2 ;;
esac
sizes=${*:-3 16}
cd "$src"

if [ "$mode" != end-to-end ]; then
    cargo bench --quiet --bench attach --no-run
    BH_BENCH_TARGETS=$sizes cargo bench --quiet --bench attach 2>/dev/null
fi
[ "$mode" = in-process ] && exit 0

[ "$(id -u)" = 0 ] || { echo "$0: the end-to-end attach needs root (mounts, chroot)" >&2; exit 2; }
command -v tmux >/dev/null || { echo "$0: tmux missing" >&2; exit 2; }
target_dir=${CARGO_TARGET_DIR:-$src/target}
bin=${BH_BIN:-$target_dir/release/build-helper}
[ -n "${BH_BIN:-}" ] || cargo build --release --quiet
attaches=5
base=$(mktemp -d /tmp/bh-bench-attach.XXXXXX)
sock=$base/tmux.sock
cleanup() {
    for t in "$base"/n*; do
        [ -d "$t" ] || continue
        "$bin" stop --tree "$t" --timeout 60 >/dev/null 2>&1 || true
        "$bin" umount --all --tree "$t" >/dev/null 2>&1 || true
    done
    tmux -S "$sock" kill-server 2>/dev/null || true
    rm -rf "$base"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$src/scripts/demo-mirror.sh" "$base/mirror" >/dev/null

# make_tree N DIR: the demo tree with N targets (demo-a first, then copies of b and c).
make_tree() {
    n=$1 tree=$2
    mkdir -p "$tree"
    cp -a "$src/configs" "$src/starters" "$tree/"
    {
        printf '[[target]]\ntuple = "x86_64-unknown-linux-musl"\nname = "demo-a"\n\n'
        i=1
        while [ "$i" -lt "$n" ]; do
            if [ $((i % 2)) = 1 ]; then tuple=x86_64-unknown-linux-musl from=demo-b
            else tuple=aarch64-unknown-linux-musl from=demo-c; fi
            cp -a "$tree/configs/$tuple.$from" "$tree/configs/$tuple.bench$i"
            printf '[[target]]\ntuple = "%s"\nname = "bench%s"\n\n' "$tuple" "$i"
            i=$((i + 1))
        done
        sed -n '/^\[options\]/,$p' "$src/starters/demo.toml"
    } > "$tree/starters/bench.toml"
}

# wait_for SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds; 1 on timeout.
wait_for() {
    limit=$1; shift
    end=$(($(date +%s) + limit))
    until "$@"; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.1
    done
}

# logs_filled TREE N: every one of the N targets' logs has output.
logs_filled() {
    [ "$(find "$1"/work/*/logs -name '*.log' ! -name '*.tty.log' -size +0 2>/dev/null | wc -l)" -ge "$2" ]
}

# lines_at_least FILE K: FILE has K lines or more.
lines_at_least() { [ "$(cat "$1" 2>/dev/null | wc -l)" -ge "$2" ]; }


# screen_has NAME TEXT: the session's screen shows TEXT.
screen_has() { tmux -S "$sock" capture-pane -p -t "$1" 2>/dev/null | grep -qF "$2"; }

# detach NAME: `q` then `d` in the TUI of session NAME; waits for the client to say so,
# then ends the session.
detach() {
    tmux -S "$sock" send-keys -t "$1" q
    wait_for 10 screen_has "$1" "[d]etach" || true
    tmux -S "$sock" send-keys -t "$1" d
    wait_for 30 screen_has "$1" "build-helper: detached" \
        || { echo "$0: the client in $1 did not detach:" >&2; tmux -S "$sock" capture-pane -p -t "$1" >&2; exit 1; }
    tmux -S "$sock" kill-session -t "$1"
}

env_line() {
    printf 'env BUILD_HELPER_TREE=%s TARBALL_MIRROR=file://%s BH_OPENPGP_KEY=%s BH_DEMO_DELAY=%s BH_DEMO_PKG_DELAY=%s TERM=xterm-256color' \
        "$1" "$base/mirror" "$base/mirror/demo-release.asc" "${BH_DEMO_DELAY:-0.05}" "${BH_DEMO_PKG_DELAY:-0.5}"
}

echo "attach end to end: main's start -> hello done -> every screen received -> first 200x60 frame"
echo "with every pane filled, ms (median of $attaches attaches; slowest in brackets); $(basename "$bin") $(uname -m), load $(cut -d' ' -f1 /proc/loadavg):"
printf '  %7s  %16s  %16s  %16s\n' targets connected snapshot "full frame"
for n in $sizes; do
    tree=$base/n$n
    make_tree "$n" "$tree"
    tmux -S "$sock" -f /dev/null new-session -d -s "run$n" -x 200 -y 60 \
        "$(env_line "$tree") $bin run $tree/starters/bench.toml --ui tui --history none; sleep 600"
    wait_for 300 logs_filled "$tree" "$n" || { echo "$0: N=$n: not every target had output within 300 s" >&2; exit 1; }
    detach "run$n"
    timing=$tree/timing
    i=1
    while [ "$i" -le "$attaches" ]; do
        tmux -S "$sock" -f /dev/null new-session -d -s "attach$n-$i" -x 200 -y 60 \
            "BH_ATTACH_TIMING=$timing $(env_line "$tree") $bin attach; sleep 600"
        if ! wait_for 60 lines_at_least "$timing" "$i"; then
            echo "$0: N=$n: attach $i wrote no timing line; its screen:" >&2
            tmux -S "$sock" capture-pane -p -t "attach$n-$i" >&2 || true
            exit 1
        fi
        detach "attach$n-$i"
        i=$((i + 1))
    done
    "$bin" stop --tree "$tree" --timeout 120 >/dev/null 2>&1 || echo "$0: N=$n: the run did not stop" >&2
    "$bin" umount --all --tree "$tree" >/dev/null 2>&1 || true
    python3 - "$timing" "$n" <<'PY'
import statistics, sys
rows = [dict(f.split("=", 1) for f in l.split()) for l in open(sys.argv[1]) if l.strip()]
def cell(key):
    v = [float(r[key]) for r in rows]
    return "%7.1f (%6.1f)" % (statistics.median(v), max(v))
assert all(r["targets"] == sys.argv[2] for r in rows), rows
print("  %7s  %16s  %16s  %16s" % (sys.argv[2], cell("connected_ms"), cell("snapshot_ms"), cell("full_frame_ms")))
PY
done
