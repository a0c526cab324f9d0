#!/bin/sh
# Benchmark: how long `build-helper attach` takes to show a full screen. Per attach, the time
# from connecting to a supervisor's attach socket until the first frame is drawn with every
# target's pane filled (snapshot read and decoded, panes loaded into the TUI's state, fitted
# to a 200x60 terminal, rendered), for N targets with 500 and with 10,000 lines of output
# each (10,000 is the most a pane keeps). The hub is the supervisor's own code, in-process,
# fed with coloured build output; no root, no run. Not included: starting the process and
# switching the terminal to raw mode. Prints the snapshot's size and the median and slowest
# of 5 attaches per case.
#   scripts/bench-attach.sh [N...]          e.g. scripts/bench-attach.sh 3 16 64
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
sizes=${*:-3 16}
cd "$src"
cargo bench --quiet --bench attach --no-run
BH_BENCH_TARGETS=$sizes cargo bench --quiet --bench attach 2>/dev/null
