#!/bin/sh
# Regenerates CRATES and LICENSE+= of the versioned ebuild in packaging/gentoo from
# Cargo.lock with pycargoebuild (PyPI; scripts/install-deps.sh installs it), and copies the
# LICENSE+= line into the live ebuild (-9999), whose crates cargo fetches itself. Run it
# after changing dependencies or the version; tests/ebuild.rs runs it with --check.
#
# The ebuild is packaging/gentoo/dev-util/build-helper/build-helper-<version>.ebuild, the
# version taken from Cargo.toml; when the version changed it is first copied from the newest
# versioned ebuild there (remove the old one with git rm if it should go).
#
# pycargoebuild reads every crate's license from its .crate file: they are taken from
# cargo's own download cache (`cargo fetch --locked` fills it, for every platform) through
# symbolic links in target/ebuild-distfiles, so nothing is fetched twice. SPDX names map to
# Gentoo's license names through packaging/gentoo/license-mapping.conf.
#
# Usage: scripts/update-ebuild.sh [--check]
#   --check  write nothing; exit 1 and show the difference when the committed ebuild is
#            not what pycargoebuild makes of Cargo.lock.
set -eu
cd "$(dirname "$0")/.."
check=
case "${1-}" in
    --check) check=1 ;;
    "") ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
command -v pycargoebuild >/dev/null \
    || { echo "$0: pycargoebuild missing: run scripts/install-deps.sh (pip install pycargoebuild)" >&2; exit 2; }
id=$(cargo pkgid --quiet)
version=${id##*[@#]}
dir=packaging/gentoo/dev-util/build-helper
ebuild=$dir/build-helper-$version.ebuild
if [ ! -e "$ebuild" ]; then
    newest=$(ls "$dir"/build-helper-[0-9]*.ebuild 2>/dev/null | sort -V | tail -n 1)
    [ -n "$newest" ] || { echo "$0: no versioned ebuild in $dir to start from" >&2; exit 2; }
    [ -z "$check" ] || { echo "$0: $ebuild missing (version $version): run $0 without --check" >&2; exit 1; }
    cp "$newest" "$ebuild"
    echo "$0: $ebuild created from $newest"
fi

cargo fetch --quiet --locked
registry=${CARGO_HOME:-$HOME/.cargo}/registry/cache
distdir=target/ebuild-distfiles
mkdir -p "$distdir"
for f in "$registry"/*/*.crate; do
    [ -e "$f" ] || continue
    ln -sfn "$f" "$distdir/${f##*/}"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/bh-ebuild.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
out=$work/${ebuild##*/}
# -M: no `pkgdev manifest` (the overlay keeps no Manifest: thin manifests are made on install).
pycargoebuild --no-config -M -F wget -d "$distdir" \
    -l packaging/gentoo/license-mapping.conf -i "$ebuild" -o "$out" -f . >"$work/log" 2>&1 \
    || { cat "$work/log" >&2; echo "$0: pycargoebuild failed (an unmatched license goes into packaging/gentoo/license-mapping.conf)" >&2; exit 1; }
live=$dir/build-helper-9999.ebuild
license=$(grep '^LICENSE+=' "$out")
sed "s|^LICENSE+=.*|$license|" "$live" > "$work/live"
if [ -n "$check" ]; then
    stale=
    diff -u "$ebuild" "$out" || stale="$stale $ebuild"
    diff -u "$live" "$work/live" || stale="$stale $live"
    if [ -n "$stale" ]; then
        echo "$0: out of date with Cargo.lock:$stale: run scripts/update-ebuild.sh" >&2
        exit 1
    fi
else
    cp "$out" "$ebuild"
    cp "$work/live" "$live"
    echo "$ebuild"
    echo "$live"
fi
