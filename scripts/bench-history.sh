#!/bin/sh
# Benchmark: archiving a history with build-helper's default (the build machine's
# mksquashfs, zstd level 5, 1 MiB blocks, every core: exactly what history::archive runs)
# against xz (the
# original tool's choice: gensquashfs's default compressor, and mksquashfs -comp xz).
# Sources: the demo environment (a demo run's history, unpacked) and a tree of at least
# 600 MB (default: /usr/bin /usr/include /usr/lib/x86_64-linux-gnu of this machine, binaries,
# libraries and headers like a build environment; or give directories as arguments).
# Goal (issue 5): default at least 20 x faster than xz at no more than 1.2 x its size.
#   scripts/bench-history.sh [DIR...]        (as root)
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$src/target}
jobs=$(nproc)
tmp=$(mktemp -d /tmp/bh-bench-history.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# The demo environment: one demo run, its history unpacked.
(cd "$src" && cargo build --release --quiet)
mkdir -p "$tmp/tree"
cp -a "$src/configs" "$src/starters" "$tmp/tree/"
"$src/scripts/demo-mirror.sh" "$tmp/mirror" >/dev/null
BUILD_HELPER_TREE=$tmp/tree TARBALL_MIRROR=file://$tmp/mirror BH_OPENPGP_KEY=$tmp/mirror/demo-release.asc BH_DEMO_DELAY=0.01 \
    "$target_dir/release/build-helper" run "$tmp/tree/starters/demo.toml" --ui plain >/dev/null
unsquashfs -q -no-progress -d "$tmp/demo-env" "$tmp/tree/history/"*.sqfs >/dev/null

if [ $# -gt 0 ]; then big="$*"; else big="/usr/bin /usr/include /usr/lib/x86_64-linux-gnu"; fi
mkdir -p "$tmp/big"
for d in $big; do cp -a "$d" "$tmp/big/"; done

now() { date +%s.%N; }
measure() { # label dir command...
    label=$1 dir=$2
    shift 2
    out=$tmp/out.sqfs
    rm -f "$out"
    sync
    t0=$(now)
    "$@" >/dev/null 2>&1
    t1=$(now)
    size=$(stat -c %s "$out")
    echo "$label $(awk "BEGIN { print $t1 - $t0 }") $size"
}
for set in demo-env big; do
    dir=$tmp/$set
    in=$(du -sb "$dir" | cut -f1)
    echo "== $set: $in bytes in, $jobs cores"
    {
        measure default "$dir" mksquashfs "$dir" "$tmp/out.sqfs" -noappend -quiet -no-progress -comp zstd -Xcompression-level 5 -b 1048576 -processors "$jobs"
        measure xz-mksquashfs "$dir" mksquashfs "$dir" "$tmp/out.sqfs" -noappend -quiet -no-progress -comp xz -processors "$jobs"
        measure xz-gensquashfs "$dir" gensquashfs -q -f -k -j "$jobs" -D "$dir" "$tmp/out.sqfs"
    } > "$tmp/res"
    awk '{ t[$1]=$2; s[$1]=$3; printf "  %-16s %8.2f s  %12d bytes\n", $1, $2, $3 }
         END { for (x in t) if (x != "default")
                 printf "  default vs %-15s %5.1f x faster, %4.2f x the size\n", x, t[x]/t["default"], s["default"]/s[x] }' "$tmp/res"
done
