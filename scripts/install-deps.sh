#!/bin/sh
# Installs the Debian packages the demo and the tests need (as root; idempotent):
# busybox-static for the stand-in stage3, squashfs-tools (mksquashfs archives the history,
# unsquashfs reads it), squashfs-tools-ng, rsync (history type files), xz-utils, file, gnupg
# (signs the demo mirror with a throw-away key), curl (scripts/bench-fetch.sh), tmux (the TUI
# and tmux-mode end-to-end tests); debootstrap and python3-pip build the real-Portage
# stand-in stage3 (scripts/portage-stage3.sh: Debian minbase + Portage from PyPI).
set -eu
need=
for p in busybox-static squashfs-tools squashfs-tools-ng rsync xz-utils file gnupg curl tmux \
    debootstrap python3-pip; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    echo "scripts/install-deps.sh: installing$need (apt-get)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
# overlayfs, squashfs and loop devices are used for real.
for m in overlay squashfs loop; do
    grep -qw "$m" /proc/filesystems 2>/dev/null || [ "$m" = loop ] || modprobe "$m" 2>/dev/null || true
done
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || true
