#!/bin/sh
# Runs the demo end to end on this machine, as root: makes the demo/test STAND-IN mirror
# (signed with a throw-away key) if missing, and runs starters/demo.toml with it, trusting
# that key (BH_OPENPGP_KEY).
#   scripts/demo.sh [run options]      e.g. scripts/demo.sh --ui plain
# The binary: $BH_BIN, else `build-helper` on PATH (the README's first command installs it
# with `cargo install --locked --path . --root /usr/local`), else a release build of this
# source (cargo's progress shown). The tree is the one holding this script unless
# BUILD_HELPER_TREE says otherwise. The demo stage3 carries stand-in Gentoo tools: a real
# build needs a Gentoo host with network.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
tree=${BUILD_HELPER_TREE:-$src}
bin=${BH_BIN:-$(command -v build-helper || true)}
if [ -z "$bin" ]; then
    echo "scripts/demo.sh: build-helper is not on PATH; building it (cargo build --release)" >&2
    (cd "$src" && cargo build --release)
    bin=${CARGO_TARGET_DIR:-$src/target}/release/build-helper
fi
mirror=$tree/demo-mirror
if [ ! -f "$mirror/releases/amd64/autobuilds/latest-stage3-amd64-musl-hardened.txt" ] ||
    [ ! -f "$mirror/demo-release.asc" ]; then
    echo "scripts/demo.sh: making the stand-in mirror $mirror (scripts/demo-mirror.sh)" >&2
    rm -rf "$mirror"
    "$src/scripts/demo-mirror.sh" "$mirror"
fi
export BUILD_HELPER_TREE="$tree"
export TARBALL_MIRROR="file://$mirror"
# The demo mirror is signed with a throw-away key made by demo-mirror.sh; trust only it here.
export BH_OPENPGP_KEY="$mirror/demo-release.asc"
echo "scripts/demo.sh: $bin run $tree/starters/demo.toml $*" >&2
exec "$bin" run "$tree/starters/demo.toml" "$@"
