#!/bin/sh
# Builds a clean Debian chroot (debootstrap --variant=minbase: no Rust, no compiler, no
# development files) for the portable tarball's end-to-end test (tests/e2e/dist.rs), which
# unpacks scripts/dist.sh's tarball into it and runs the binary there.
#
# Usage: scripts/minbase-chroot.sh DIR   (as root; needs debootstrap and the Debian mirror of
#        /etc/apt). DIR is reused when it is complete; a cut run is started again.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
root=$1
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ -e "$root/.build-helper-minbase-$suite" ] && exit 0
command -v debootstrap >/dev/null || { echo "$0: debootstrap missing: scripts/install-deps.sh" >&2; exit 2; }
part=$root.partial
rm -rf "$part"
debootstrap --variant=minbase "$suite" "$part" "$mirror" >"$part.log" 2>&1 \
    || { tail -n 20 "$part.log" >&2; echo "$0: debootstrap failed (log: $part.log)" >&2; exit 1; }
rm -f "$part.log"
rm -rf "$root"
touch "$part/.build-helper-minbase-$suite"
mv "$part" "$root"
