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
# qemu-system-x86 and qemu-system-arm boot the demo's builds (`build-helper boot`,
# tests/e2e/boot.rs: x86_64, and aarch64 under -M virt); strace
# slows mount(2) and fchown(2) so the fault suite can stop a run in its mounts and extraction
# (tests/e2e/faults.rs); make (GNU make, which the job pool's tests run as jobserver clients:
# tests/e2e/job_pool.rs).
# It also unpacks the kernels of Debian's linux-image-amd64 and linux-image-arm64 and the
# static busybox of Debian's busybox-static for arm64 (see the end) for the demo stage3; the
# arm64 packages need dpkg's foreign architecture arm64 (added here; nothing of it is
# installed, the packages are only downloaded and unpacked).
set -eu
need=
for p in busybox-static squashfs-tools squashfs-tools-ng rsync xz-utils file gnupg curl tmux \
    debootstrap python3-pip binutils qemu-system-x86 qemu-system-arm strace make; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    echo "scripts/install-deps.sh: installing$need (apt-get)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $need >/dev/null
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

# STAND-IN for the demo's kernel builds: the kernels of Debian's linux-image-amd64 and
# linux-image-arm64 (the versioned linux-image package each depends on), unpacked with
# dpkg-deb, never installed on this machine. scripts/demo-mirror.sh puts them in the demo
# stage3, whose stand-in `make` hands them out as the built kernel (ARCH=x86_64: bzImage,
# ARCH=arm64: Image). Kept: the kernel (arm64's vmlinuz is a gzip'd Image: kept uncompressed,
# as `make` leaves arch/arm64/boot/Image), its config and the modules an initramfs needs to
# stack squashfs images from the initramfs, a virtio disk or virtio 9p (with their
# dependencies). For the aarch64 demo target, whose images must run on the guest's CPU, the
# static busybox of Debian's busybox-static for arm64 is unpacked the same way
# (scripts/demo-stage3/usr/bin/emerge installs it for sys-apps/busybox).
modules="squashfs overlay loop 9p 9pnet fscache netfs 9pnet_virtio virtio virtio_ring virtio_blk
    virtio_pci virtio_pci_modern_dev virtio_pci_legacy_dev vfat fat nls_cp437 nls_ascii nls_utf8"
updated=$([ -n "$need" ] && echo yes || echo no)
apt_update() { # once per run of this script
    [ "$updated" = yes ] || apt-get update -qq
    updated=yes
}
# arch_packages ARCH: makes ARCH's package lists known to apt (dpkg's foreign architecture).
arch_packages() {
    [ "$1" = "$(dpkg --print-architecture)" ] && return 0
    if ! dpkg --print-foreign-architectures | grep -qx "$1"; then
        dpkg --add-architecture "$1"
        updated=no
    fi
    apt_update
}
# download PACKAGE DIR: `apt-get download PACKAGE` unpacked into DIR/x.
download() {
    chown _apt "$2" 2>/dev/null || true # apt downloads as _apt where that user exists
    (cd "$2" && apt-get download -qq "$1") ||
        { echo "$0: apt-get download $1 failed" >&2; rm -rf "$2"; exit 1; }
    dpkg-deb -x "$2"/*.deb "$2/x"
}
# unpack_kernel DEBARCH DIR MODULES: the kernel of linux-image-DEBARCH into DIR (see above).
unpack_kernel() {
    debarch=$1 kdir=$2 modules=$3
    if [ -f "$kdir/vmlinuz" ] && [ "$(cat "$kdir/modules.wanted" 2>/dev/null)" = "$modules" ]; then
        return 0
    fi
    arch_packages "$debarch"
    pkg=$(apt-cache depends "linux-image-$debarch:$debarch" | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    [ -n "$pkg" ] || { echo "$0: no versioned kernel package behind linux-image-$debarch" >&2; exit 1; }
    pkg=${pkg%%:*}
    tmp=$(mktemp -d)
    download "$pkg:$debarch" "$tmp"
    ver=$(ls "$tmp/x/lib/modules")
    rm -rf "$kdir.partial"
    mkdir -p "$kdir.partial/modules/$ver"
    if [ "$debarch" = arm64 ] && gzip -t "$tmp/x/boot/vmlinuz-$ver" 2>/dev/null; then
        gzip -dc "$tmp/x/boot/vmlinuz-$ver" > "$kdir.partial/vmlinuz"
    else
        cp "$tmp/x/boot/vmlinuz-$ver" "$kdir.partial/vmlinuz"
    fi
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
}
unpack_kernel amd64 "${BH_DEMO_KERNEL:-/var/cache/build-helper/demo-kernel}" "$modules"
unpack_kernel arm64 "${BH_DEMO_KERNEL_ARM64:-/var/cache/build-helper/demo-kernel-arm64}" "$modules"
bbdir=${BH_DEMO_BUSYBOX_ARM64:-/var/cache/build-helper/demo-busybox-arm64}
if [ ! -x "$bbdir/busybox" ]; then
    arch_packages arm64
    tmp=$(mktemp -d)
    download busybox-static:arm64 "$tmp"
    rm -rf "$bbdir.partial"
    mkdir -p "$bbdir.partial"
    cp "$tmp/x/bin/busybox" "$bbdir.partial/busybox"
    dpkg-deb -f "$tmp"/*.deb Version > "$bbdir.partial/version"
    rm -rf "$tmp" "$bbdir"
    mv "$bbdir.partial" "$bbdir"
fi
