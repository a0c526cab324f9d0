#!/bin/sh
# Builds the second STAND-IN stage3 variant for the real-Portage end-to-end test
# (tests/e2e/portage.rs): Debian (debootstrap minbase) with python3 and bash, squashfs-tools-ng,
# cpio and gzip (the `images` step packs the images and the split initramfs with them), GNU
# make (it runs the source kernel's STAND-IN Makefile) and kmod (depmod of the split
# initramfs), and
# REAL Portage installed from PyPI (the `portage` package). It is NOT Gentoo: there is no toolchain for the
# target and no ::gentoo tree; the test's ebuild repository (tests/e2e/portage-tree) only
# installs files, which real emerge builds into binary packages and installs from them.
#
# Portage from PyPI is a "module" install: it takes its EPREFIX from the Python prefix and
# its data from <prefix>/lib/portage. Here it is made to behave as a system install: its data
# moved to /usr/lib/portage and /usr/share/portage, installation.TYPE set to SYSTEM and the
# paths const.py leaves empty for system installs filled in, so EPREFIX is "" and emerge
# reads /etc/portage and /var/db/pkg like on Gentoo.
#
# The crossdev pieces the test needs but does not build (the `<tuple>-emerge` wrapper, the
# `/usr/<tuple>.skeleton` directory, the cross gcc and binutils profile directories) and the
# Gentoo tools Debian lacks (eselect, perl-cleaner, emerge-webrsync, which would fetch
# ::gentoo) come from scripts/portage-stage3/ and say STAND-IN.
#
# Usage: scripts/portage-stage3.sh DIR   (as root; needs debootstrap and network access to
#        the Debian mirror of /etc/apt and to PyPI). DIR is reused when it is complete.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$1
version=${PORTAGE_VERSION:-3.0.83}
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
tuple=x86_64-unknown-linux-musl
# Bumped when the stage3's contents change, so a kept directory is rebuilt.
revision=3
stamp=.build-helper-portage-$version-r$revision
# The STAND-IN files of scripts/portage-stage3/ are refreshed on every call (a plain copy), so
# changing them needs no rebuild.
if [ -e "$root/$stamp" ]; then cp -a "$here/portage-stage3/." "$root/"; exit 0; fi
command -v debootstrap >/dev/null || { echo "$0: debootstrap missing: scripts/install-deps.sh" >&2; exit 2; }
part=$root.partial
if [ ! -e "$part/.debootstrap-done" ]; then
    rm -rf "$part"
    debootstrap --variant=minbase \
        --include=python3,python3-pip,bash,xz-utils,zstd,bzip2,patch,rsync,ca-certificates,squashfs-tools-ng,cpio,gzip,make,kmod \
        "$suite" "$part" "$mirror"
    touch "$part/.debootstrap-done"
fi
# Real Portage from PyPI: the wheel is fetched by the build machine's pip (its index and
# certificate settings apply) and installed by the chroot's pip without network.
wheels=$part/tmp/portage-wheel
rm -rf "$wheels"
mkdir -p "$wheels"
python3 -m pip download -q --no-deps --only-binary=:all: -d "$wheels" "portage==$version"
chroot "$part" sh -c 'python3 -m pip install -q --no-deps --no-index --break-system-packages \
    --root-user-action=ignore /tmp/portage-wheel/portage-*.whl'
rm -rf "$wheels"
site=$(chroot "$part" python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
pym=$part$site/portage
[ -f "$pym/installation.py" ] || { echo "$0: portage not found in $site" >&2; exit 1; }
data=$part/usr/local
mkdir -p "$part/usr/lib" "$part/usr/share"
for d in lib/portage share/portage; do
    if [ -d "$data/$d" ]; then rm -rf "$part/usr/$d"; mv "$data/$d" "$part/usr/$d"; fi
done
for f in "$data"/etc/*.conf; do if [ -e "$f" ]; then mv "$f" "$part/etc/"; fi; done
grep -q '^TYPE = TYPES.SYSTEM$' "$pym/installation.py" || printf '\n# build-helper stage3: a system install (EPREFIX "", data in /usr/lib/portage).\nTYPE = TYPES.SYSTEM\n' \
    >> "$pym/installation.py"
sed -i 's|^    PORTAGE_BASE_PATH = """"""$|    PORTAGE_BASE_PATH = "/usr/lib/portage"|;
        s|^    PORTAGE_BIN_PATH = """"""$|    PORTAGE_BIN_PATH = "/usr/lib/portage/bin"|' "$pym/const.py"
grep -q 'PORTAGE_BIN_PATH = "/usr/lib/portage/bin"' "$pym/const.py" \
    || { echo "$0: portage $version const.py changed; adapt the system-install patch" >&2; exit 1; }
find "$pym" -name __pycache__ -prune -exec rm -rf {} +
# No ::gentoo here: the test's repository is the main one.
printf '[DEFAULT]\nmain-repo = bhtest\n' > "$part/usr/share/portage/config/repos.conf"
chroot "$part" sh -c 'getent group portage >/dev/null || groupadd -g 250 portage
getent passwd portage >/dev/null || useradd -K UID_MIN=100 -u 250 -g portage -d /var/tmp/portage -s /bin/false portage'
mkdir -p "$part/etc/portage/repos.conf" "$part/var/db/repos/bhtest" "$part/var/db/pkg" \
    "$part/var/lib/portage" "$part/var/cache/distfiles" "$part/var/cache/binpkgs"
ln -sfn /var/db/repos/bhtest/profiles/default "$part/etc/portage/make.profile"
printf '[DEFAULT]\nmain-repo = bhtest\n\n[bhtest]\nlocation = /var/db/repos/bhtest\nauto-sync = no\n' \
    > "$part/etc/portage/repos.conf/bhtest.conf"
echo 'FEATURES="-sandbox -usersandbox -userpriv -ipc-sandbox -network-sandbox -pid-sandbox -mount-sandbox -news"' \
    > "$part/etc/portage/make.conf"
# STAND-IN crossdev results: the emerge wrapper and the merged-usr skeleton of the tuple.
cp -a "$here/portage-stage3/." "$part/"
skel=$part/usr/$tuple.skeleton
mkdir -p "$skel/usr/lib" "$skel/usr/bin" "$skel/etc"
ln -sfn usr/lib "$skel/lib"
ln -sfn usr/lib "$skel/lib64"
ln -sfn lib "$skel/usr/lib64"
ln -sfn usr/bin "$skel/bin"
ln -sfn usr/bin "$skel/sbin"
ln -sfn bin "$skel/usr/sbin"
echo "STAND-IN crossdev skeleton of $tuple (build-helper real-Portage test stage3)" > "$skel/etc/STAND-IN"
chroot "$part" python3 -c 'import portage.const as c
assert c.EPREFIX == "" and c.PORTAGE_BIN_PATH == "/usr/lib/portage/bin", (c.EPREFIX, c.PORTAGE_BIN_PATH)
print("build-helper stage3: portage works as a system install")'
touch "$part/$stamp"
rm -rf "$root"
mv "$part" "$root"
