#!/bin/sh
# Installs the Debian packages the demo and the tests need (as root; idempotent):
# busybox-static for the stand-in stage3, squashfs-tools (mksquashfs archives the history,
# unsquashfs reads it), squashfs-tools-ng, rsync (history type files), xz-utils, file, gnupg
# (signs the demo mirror with a throw-away key), curl (scripts/bench-fetch.sh), tmux (the TUI
# and tmux-mode end-to-end tests); debootstrap and python3-pip build the real-Portage
# stand-in stage3 (scripts/portage-stage3.sh: Debian minbase + Portage from PyPI) and the
# clean chroot the portable tarball is tried in (scripts/minbase-chroot.sh); binutils'
# readelf reads the tarball's binary (glibc floor); pycargoebuild (PyPI, pinned: its output
# is compared with the committed ebuild) regenerates the ebuild's CRATES and LICENSE;
# qemu-system-x86 boots the demo's builds (`build-helper boot`, tests/e2e/boot.rs); strace
# slows mount(2) and fchown(2) so the fault suite can stop a run in its mounts and extraction
# (tests/e2e/faults.rs).
# It also unpacks the kernel of Debian's linux-image-amd64 (see the end) for the demo stage3.
set -eu
need=
for p in busybox-static squashfs-tools squashfs-tools-ng rsync xz-utils file gnupg curl tmux \
    debootstrap python3-pip binutils qemu-system-x86 strace; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    echo "scripts/install-deps.sh: installing$need (apt-get)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
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

# STAND-IN for the demo's kernel build: the kernel of Debian's linux-image-amd64 (the versioned
# linux-image package it depends on), unpacked with dpkg-deb, never installed on this machine.
# scripts/demo-mirror.sh puts it in the demo stage3, whose stand-in `make` hands it out as the
# built kernel. Kept: vmlinuz, its config and the modules an initramfs needs to stack squashfs
# images from the initramfs, a virtio disk or virtio 9p (with their dependencies).
kdir=${BH_DEMO_KERNEL:-/var/cache/build-helper/demo-kernel}
modules="squashfs overlay loop 9p 9pnet fscache netfs 9pnet_virtio virtio virtio_ring virtio_blk
    virtio_pci virtio_pci_modern_dev virtio_pci_legacy_dev vfat fat nls_cp437 nls_ascii nls_utf8"
if [ ! -f "$kdir/vmlinuz" ] || [ "$(cat "$kdir/modules.wanted" 2>/dev/null)" != "$modules" ]; then
    [ -n "$need" ] || apt-get update -qq
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    [ -n "$pkg" ] || { echo "$0: no versioned kernel package behind linux-image-amd64" >&2; exit 1; }
    tmp=$(mktemp -d)
    chown _apt "$tmp" 2>/dev/null || true # apt downloads as _apt where that user exists
    (cd "$tmp" && apt-get download -qq "$pkg") ||
        { echo "$0: apt-get download $pkg failed" >&2; rm -rf "$tmp"; exit 1; }
    dpkg-deb -x "$tmp"/*.deb "$tmp/x"
    ver=$(ls "$tmp/x/lib/modules")
    rm -rf "$kdir.partial"
    mkdir -p "$kdir.partial/modules/$ver"
    cp "$tmp/x/boot/vmlinuz-$ver" "$kdir.partial/vmlinuz"
    cp "$tmp/x/boot/config-$ver" "$kdir.partial/config"
    for m in $modules; do
        f=$(cd "$tmp/x/lib/modules/$ver" && find kernel -name "$m.ko*")
        [ -n "$f" ] || continue # built into this kernel
        mkdir -p "$kdir.partial/modules/$ver/$(dirname "$f")"
        cp "$tmp/x/lib/modules/$ver/$f" "$kdir.partial/modules/$ver/$f"
    done
    cp "$tmp/x/lib/modules/$ver/modules.order" "$tmp/x/lib/modules/$ver/modules.builtin" \
        "$kdir.partial/modules/$ver/" 2>/dev/null || true
    echo "$pkg" > "$kdir.partial/package"
    echo "$modules" > "$kdir.partial/modules.wanted"
    rm -rf "$tmp" "$kdir"
    mv "$kdir.partial" "$kdir"
fi
