#!/bin/sh
# Builds the distcc variant of the STAND-IN real-Portage stage3 for the distcc end-to-end test
# (tests/e2e/distcc.rs): a copy of the stage3 of scripts/portage-stage3.sh with Debian's REAL
# gcc, libc6-dev, make and distcc added (apt-get, chrooted). It is NOT Gentoo: the compilers are
# Debian's x86_64-linux-gnu gcc, which the test's ebuild calls as `gcc`; distcc's masquerade
# directory /usr/lib/distcc (Debian's layout) is one of the two Portage looks for with
# FEATURES=distcc. Package scripts are stopped from starting services (policy-rc.d).
#
# Usage: scripts/distcc-stage3.sh PORTAGE_STAGE3 DIR   (as root; needs network access to the
#        Debian mirror of PORTAGE_STAGE3's /etc/apt). DIR is reused when it is complete.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 PORTAGE_STAGE3 DIR" >&2; exit 2; }
src=$1
root=$2
mark=.build-helper-distcc-2
[ -e "$root/$mark" ] && exit 0
[ -e "$src/usr/local/bin/emerge" ] || { echo "$0: $src is not the stage3 of scripts/portage-stage3.sh" >&2; exit 2; }
part=$root.partial
rm -rf "$part"
cp -a "$src" "$part"
printf '#!/bin/sh\n# build-helper distcc stage3: no service starts while packages are installed.\nexit 101\n' \
    > "$part/usr/sbin/policy-rc.d"
chmod 755 "$part/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$part/etc/resolv.conf"
# /proc for the package scripts; the private namespace takes it away with the command.
unshare --mount --propagation private sh -c '
    mount -t proc proc "$1/proc"
    chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev make distcc >/dev/null"
' sh "$part"
rm -f "$part/usr/sbin/policy-rc.d"
chroot "$part" apt-get clean
rm -rf "$part/var/lib/apt/lists/"*
# Portage finds distcc through its masquerade directory; distccd serves only compilers linked
# there (distcc 3.3 and later).
for c in gcc x86_64-linux-gnu-gcc; do
    [ -e "$part/usr/lib/distcc/$c" ] || { echo "$0: /usr/lib/distcc/$c missing after installing distcc" >&2; exit 1; }
done
chroot "$part" distccd --version | head -n 1
touch "$part/$mark"
rm -rf "$root"
mv "$part" "$root"
