#!/bin/sh
# Builds the demo/test STAND-IN stage3 and lays it out under DIR exactly like a Gentoo release
# mirror (docs/mirror.md):
#   DIR/releases/amd64/autobuilds/latest-stage3-amd64-musl-hardened.txt
#   DIR/releases/amd64/autobuilds/<stamp>/stage3-amd64-musl-hardened-<stamp>.tar.xz
#                                          ...tar.xz.DIGESTS  ...tar.xz.sha256  ...tar.xz.CONTENTS.gz
#                                          ...tar.xz.asc
#   DIR/demo-release.asc      the public key that signs it
# Like Gentoo's, the index and the DIGESTS are clear-signed and the tarball has a detached
# .asc, all made by a signing SUBKEY of a certify-only primary key. The key is a THROW-AWAY
# made for the demo and the tests (no passphrase; its secret part is deleted with the work
# directory): point build-helper at DIR/demo-release.asc (BH_OPENPGP_KEY, or the starter's
# openpgp_key), never at Gentoo's key.
# The stage3 is NOT Gentoo: Debian's busybox-static plus the stand-in commands of
# scripts/demo-stage3 (emerge, crossdev, eselect, make, gensquashfs, ... each says STAND-IN).
# It lets the whole tool run on a machine without Gentoo or network. A real build needs a
# Gentoo host with network and a real mirror.
#
# Usage: scripts/demo-mirror.sh DIR    (needs busybox-static, xz-utils, coreutils, gnupg; as
#                                       root so that owners and device nodes are kept)
# With STAGE3_ROOT=ROOTDIR it packs that directory instead of building the busybox stand-in
# (the real-Portage end-to-end test serves its stage3 so); XZ_LEVEL sets the xz preset (3).
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
out=$1
if [ -z "${STAGE3_ROOT:-}" ]; then
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "$0: $busybox missing: apt-get install busybox-static" >&2; exit 2; }
file "$busybox" 2>/dev/null | grep -q 'dynamically linked' && { echo "$0: $busybox is not static: apt-get install busybox-static" >&2; exit 2; }

fi
command -v gpg >/dev/null || { echo "$0: gpg missing: apt-get install gnupg" >&2; exit 2; }
if [ -z "${STAGE3_ROOT:-}" ]; then
# The kernels that stand in for the demo's kernel builds and the aarch64 target's busybox
# (Debian's, unpacked by install-deps.sh).
kernel=${BH_DEMO_KERNEL:-/var/cache/build-helper/demo-kernel}
kernel_arm64=${BH_DEMO_KERNEL_ARM64:-/var/cache/build-helper/demo-kernel-arm64}
busybox_arm64=${BH_DEMO_BUSYBOX_ARM64:-/var/cache/build-helper/demo-busybox-arm64}/busybox
for f in "$kernel/vmlinuz" "$kernel_arm64/vmlinuz" "$busybox_arm64"; do
    [ -f "$f" ] || { echo "$0: $f missing: run scripts/install-deps.sh" >&2; exit 2; }
done
command -v gensquashfs >/dev/null || { echo "$0: gensquashfs missing: apt-get install squashfs-tools-ng" >&2; exit 2; }
fi

flavor=amd64-musl-hardened
stamp=${BH_DEMO_STAMP:-$(date -u +%Y%m%dT%H%M%SZ)}
work=$(mktemp -d)
trap 'GNUPGHOME="$work/gnupg" gpgconf --kill gpg-agent 2>/dev/null; rm -rf "$work"' EXIT
root=$work/root
xz_level=${XZ_LEVEL:-3}

# The throw-away release key: a certify-only primary key and a signing subkey (as Gentoo's).
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg_q() { gpg --batch --quiet --no-tty --pinentry-mode loopback --passphrase '' "$@"; }
gpg_q --quick-gen-key 'build-helper demo release key (THROW-AWAY, demo and tests only) <demo-release@build-helper.invalid>' ed25519 cert never 2>/dev/null
fpr=$(gpg --batch --with-colons --list-keys | awk -F: '/^fpr/ { print $10; exit }')
gpg_q --quick-add-key "$fpr" ed25519 sign never 2>/dev/null
clearsign() { gpg_q --yes --local-user "$fpr" --digest-algo SHA512 --clearsign --output "$1.signed" "$1" && mv "$1.signed" "$1"; }

if [ -n "${STAGE3_ROOT:-}" ]; then
# Another stage3 directory, packed as it is (the real-Portage test's, scripts/portage-stage3.sh).
[ -d "$STAGE3_ROOT/usr" ] || { echo "$0: STAGE3_ROOT=$STAGE3_ROOT is not a root directory" >&2; exit 2; }
root=$STAGE3_ROOT
else
# Merged-usr layout with busybox as every basic command.
mkdir -p "$root/usr/bin" "$root/usr/lib" "$root/etc/portage" "$root/var/db/repos" \
    "$root/var/db/pkg" "$root/var/cache/distfiles" "$root/var/cache/binpkgs" \
    "$root/var/lib/portage" "$root/var/tmp" "$root/tmp" "$root/root" "$root/proc" \
    "$root/sys" "$root/dev" "$root/run" "$root/usr/src" "$root/usr/share"
ln -s usr/bin "$root/bin"
ln -s usr/bin "$root/sbin"
ln -s bin "$root/usr/sbin"
ln -s usr/lib "$root/lib"
ln -s usr/lib "$root/lib64"
cp "$busybox" "$root/usr/bin/busybox"
for applet in $("$busybox" --list); do
    [ -e "$root/usr/bin/$applet" ] || ln -s busybox "$root/usr/bin/$applet"
done
# The stand-in Gentoo commands (they replace nothing busybox has).
cp -a "$here/demo-stage3/." "$root/"
chmod 1777 "$root/tmp" "$root/var/tmp"
# Real parts the stand-ins hand out, so that the demo's results boot: Debian's kernels (amd64
# and arm64) and their initramfs modules (for the stand-in make), Debian's static busybox for
# arm64 (for the stand-in emerge of sys-apps/busybox on aarch64; x86_64 targets get the
# stage3's own), and the build machine's gensquashfs with its shared libraries and loader
# (run by the stand-in gensquashfs; the stage3 has no libc).
mkdir -p "$root/usr/share/build-helper-demo"
cp -a "$kernel" "$root/usr/share/build-helper-demo/kernel"
cp -a "$kernel_arm64" "$root/usr/share/build-helper-demo/kernel-arm64"
cp "$busybox_arm64" "$root/usr/share/build-helper-demo/busybox-aarch64"
ng=$root/usr/lib/build-helper-demo/squashfs-tools-ng
mkdir -p "$ng"
cp "$(command -v gensquashfs)" "$ng/"
ldd "$(command -v gensquashfs)" | awk '/=> \// { print $3 } /^\t\// { print $1 }' | while read -r lib; do
    cp -L "$lib" "$ng/"
done

cat > "$root/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
portage:x:250:250:portage:/var/tmp/portage:/bin/false
PW
cat > "$root/etc/group" <<'GR'
root:x:0:
portage:x:250:
GR
cat > "$root/etc/profile" <<'PR'
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export PS1='(demo stage3) \w \$ '
PR
echo 'NAME="Gentoo stand-in (build-helper demo stage3)"' > "$root/etc/os-release"
echo 'CHOST="x86_64-gentoo-linux-musl"' > "$root/etc/portage/make.conf"
ln -s ../../run/resolv.conf "$root/etc/resolv.conf"
fi

dir=$out/releases/amd64/autobuilds
mkdir -p "$dir/$stamp"
name=stage3-$flavor-$stamp.tar.xz
tarball=$dir/$stamp/$name
tar --numeric-owner --xattrs -C "$root" -cf - . | xz -T0 -"$xz_level" > "$tarball"
tar -tvf "$tarball" | gzip -9 > "$tarball.CONTENTS.gz"
{
    for f in "$name" "$name.CONTENTS.gz"; do
        echo "# BLAKE2B HASH"
        (cd "$dir/$stamp" && b2sum "$f")
        echo "# SHA512 HASH"
        (cd "$dir/$stamp" && sha512sum "$f")
    done
} > "$tarball.DIGESTS"
clearsign "$tarball.DIGESTS"
gpg_q --yes --local-user "$fpr" --digest-algo SHA512 --armor --detach-sign --output "$tarball.asc" "$tarball"
(cd "$dir/$stamp" && sha256sum "$name") > "$tarball.sha256"
size=$(stat -c %s "$tarball")
{
    echo "# Latest as of $(date -u -R)"
    echo "# ts=$(date -u +%s)"
    echo "$stamp/$name $size"
} > "$dir/latest-stage3-$flavor.txt"
clearsign "$dir/latest-stage3-$flavor.txt"
gpg --batch --armor --export "$fpr" > "$out/demo-release.asc"
echo "demo mirror: $out ($name, $size bytes, signed by key $fpr)"
