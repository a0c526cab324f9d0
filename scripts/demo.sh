#!/bin/sh
# Runs the demo end to end on this machine, as root: builds the release binary, makes the
# demo/test STAND-IN mirror (signed with a throw-away key) if missing, and runs
# starters/demo.toml with it, trusting that key (BH_OPENPGP_KEY).
#   scripts/demo.sh [run options]      e.g. scripts/demo.sh --ui plain
# The tree is the one holding this script unless BUILD_HELPER_TREE says otherwise; the binary
# goes to CARGO_TARGET_DIR (default target/). The demo stage3 carries stand-in Gentoo tools:
# a real build needs a Gentoo host with network.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
tree=${BUILD_HELPER_TREE:-$src}
target_dir=${CARGO_TARGET_DIR:-$src/target}
(cd "$src" && cargo build --release --quiet)
mirror=$tree/demo-mirror
if [ ! -f "$mirror/releases/amd64/autobuilds/latest-stage3-amd64-musl-hardened.txt" ] ||
    [ ! -f "$mirror/demo-release.asc" ]; then
    rm -rf "$mirror"
    "$src/scripts/demo-mirror.sh" "$mirror"
fi
export BUILD_HELPER_TREE="$tree"
export TARBALL_MIRROR="file://$mirror"
# The demo mirror is signed with a throw-away key made by demo-mirror.sh; trust only it here.
export BH_OPENPGP_KEY="$mirror/demo-release.asc"
exec "$target_dir/release/build-helper" run "$tree/starters/demo.toml" "$@"
