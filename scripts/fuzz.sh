#!/bin/sh
# The fuzz campaign (src/fuzz): every parser that takes outside input gets CASES inputs
# (default 100000), random bytes and mutations of real samples, from a fixed seed. Prints
# one line per parser: parser, cases, seconds, panics, hangs; then each finding. Exits 1
# when any parser panicked or hung, 2 on bad usage.
#
#   scripts/fuzz.sh [CASES]
#
# Environment: BH_FUZZ_SEED (another seed, a number), BH_FUZZ_ONLY (parser names, comma-
# separated), BH_FUZZ_CASE_SECS (the per-case time bound, default 10), BH_FUZZ_PROFILE
# (`release`, the default, or `dev`). No root needed.
set -eu
cd "$(dirname "$0")/.."
cases=${1:-100000}
case "$cases" in
    '' | *[!0-9]*)
        echo "usage: scripts/fuzz.sh [CASES]   (CASES: inputs per parser, a number; default 100000)" >&2
        exit 2
        ;;
esac
profile=${BH_FUZZ_PROFILE:-release}
case "$profile" in
    release) flag=--release ;;
    dev) flag= ;;
    *)
        echo "scripts/fuzz.sh: BH_FUZZ_PROFILE must be release or dev, not '$profile'" >&2
        exit 2
        ;;
esac
out=$(mktemp)
trap 'rm -f "$out"' EXIT INT TERM
echo "scripts/fuzz.sh: building the tests ($profile) and running $cases cases per parser" >&2
status=0
BH_FUZZ_CASES=$cases cargo test $flag --lib fuzz::every_parser_of_outside_input_survives_the_fuzz_campaign \
    -- --exact --nocapture --test-threads=1 >"$out" 2>&1 || status=$?
grep '^fuzz: ' "$out" | sed 's/^fuzz: //' || true
if [ "$status" -ne 0 ]; then
    if ! grep -q '^fuzz: parser' "$out"; then
        # The build or the test harness failed before the campaign: show why.
        tail -n 40 "$out" >&2
    fi
    echo "scripts/fuzz.sh: the campaign found panics or hangs (or did not run); see above" >&2
    exit 1
fi
