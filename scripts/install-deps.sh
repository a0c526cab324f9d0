#!/bin/sh
# Installs the Debian packages the demo and the tests need (as root; idempotent):
# busybox-static for the stand-in stage3, squashfs-tools (mksquashfs archives the history,
# unsquashfs reads it), squashfs-tools-ng, rsync (history type files), xz-utils, file, gnupg
# (signs the demo mirror with a throw-away key), curl (scripts/bench-fetch.sh), tmux (the TUI
# and tmux-mode end-to-end tests); debootstrap and python3-pip build the real-Portage
# stand-in stage3 (scripts/portage-stage3.sh: Debian minbase + Portage from PyPI) and the
# clean chroot the portable tarball is tried in (scripts/minbase-chroot.sh); binutils'
# readelf reads the tarball's binary (glibc floor); pycargoebuild (PyPI, pinned: its output
# is compared with the committed ebuild) regenerates the ebuild's CRATES and LICENSE.
set -eu
need=
for p in busybox-static squashfs-tools squashfs-tools-ng rsync xz-utils file gnupg curl tmux \
    debootstrap python3-pip binutils; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
pycargoebuild=0.17.2
if ! pycargoebuild --help 2>/dev/null | grep -q . \
    || [ "$(python3 -m pip show pycargoebuild 2>/dev/null | sed -n 's/^Version: //p')" != "$pycargoebuild" ]; then
    python3 -m pip install -q --break-system-packages --root-user-action=ignore \
        "pycargoebuild==$pycargoebuild"
fi
# overlayfs, squashfs and loop devices are used for real.
for m in overlay squashfs loop; do
    grep -qw "$m" /proc/filesystems 2>/dev/null || [ "$m" = loop ] || modprobe "$m" 2>/dev/null || true
done
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || true
