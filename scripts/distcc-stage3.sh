#!/bin/sh
# Builds the gcc variant of the STAND-IN real-Portage stage3, for the distcc end-to-end test
# (tests/e2e/distcc.rs) and the job pool's tests through `build-helper run`
# (tests/e2e/job_pool.rs, scripts/bench-jobs.sh): a copy of the stage3 of
# scripts/portage-stage3.sh with Debian's REAL gcc, libc6-dev and distcc added (apt-get,
# chrooted), and REAL GNU make 4.4.1. It is NOT Gentoo: the compilers are Debian's
# x86_64-linux-gnu gcc, which the tests' ebuilds call as `gcc`; distcc's masquerade directory
# /usr/lib/distcc (Debian's layout) is one of the two Portage looks for with FEATURES=distcc.
# Package scripts are stopped from starting services (policy-rc.d).
#
# Test instrumentation, not a real part: /etc/profile.d/bh-test-step-env.sh, which every step
# runs (its script starts with `. /etc/profile`), appends the step's job-pool variables
# (MAKEFLAGS, MAKEOPTS, FEATURES, NINJAOPTS) to /var/cache/distfiles/bh-step-env/<name>.log when
# that directory exists: the job pool's tests make it in the run's distfiles directory, bound
# into every environment, and read what each step got. Without it the file does nothing.
#
# GNU make 4.4.1: the job pool hands a run's targets the jobserver as
# `--jobserver-auth=fifo:PATH`, which make 4.4 and newer understand and bookworm's make 4.3
# refuses. Debian has 4.4.1 only from trixie on, and trixie's binary package
# (make_4.4.1-2_amd64.deb) cannot run here: it depends on libc6 (>= 2.38) and really calls
# GLIBC_2.38 symbols (__isoc23_strtoul, __isoc23_strtoll, __isoc23_sscanf), where bookworm has
# glibc 2.36; pinning a trixie source to it would drag trixie's libc6 into the stage3 under
# bookworm's gcc and libc6-dev. So the script builds that same Debian source package
# (make-dfsg 4.4.1-2: upstream 4.4.1 without its non-free manual, plus Debian's patch series),
# as Debian's rules do (autoreconf -fi, then configure --without-guile), with the stage3's own
# gcc against its own glibc. The two source files are downloaded from the Debian mirror and
# checked against the SHA-256 sums pinned below (those of make-dfsg_4.4.1-2.dsc). The
# autotools the build needs are installed in a throw-away overlay of the stage3, so they never
# reach it; the stage3 gets the binary only, as /usr/bin/make, with bookworm's make 4.3
# diverted to /usr/bin/make.distrib (dpkg-divert: dpkg knows).
#
# Usage: scripts/distcc-stage3.sh PORTAGE_STAGE3 DIR   (as root; needs network access to the
#        Debian mirror of PORTAGE_STAGE3's /etc/apt and to $DEBIAN_MIRROR, default
#        http://deb.debian.org/debian). DIR is reused when it is complete.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 PORTAGE_STAGE3 DIR" >&2; exit 2; }
src=$1
root=$2
# Bumped when the stage3's contents change, so a kept directory is rebuilt (3: make 4.4.1;
# 4: the step environment log).
mark=.build-helper-distcc-4
[ -e "$root/$mark" ] && exit 0
[ -e "$src/usr/local/bin/emerge" ] || { echo "$0: $src is not the stage3 of scripts/portage-stage3.sh" >&2; exit 2; }
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
make_version=4.4.1
make_orig=make-dfsg_4.4.1.orig.tar.xz
make_orig_sha256=3b16b00ea1079af9f8096bbc71ff7cc00c249fc6a862003da3c42308a0adb0fe
make_debian=make-dfsg_4.4.1-2.debian.tar.xz
make_debian_sha256=c785b80bd83b8294f104da43aee9573ba3e175e2e9a77ac00a49f0a569d6e061
part=$root.partial
scratch=$root.make-build
cleanup() { rm -rf "$scratch"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$part" "$scratch"
cp -a "$src" "$part"
printf '#!/bin/sh\n# build-helper distcc stage3: no service starts while packages are installed.\nexit 101\n' \
    > "$part/usr/sbin/policy-rc.d"
chmod 755 "$part/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$part/etc/resolv.conf"
# The make source, checked against the pinned sums before anything reads it.
mkdir -p "$scratch/src" "$scratch/u" "$scratch/w" "$scratch/m"
for f in "$make_orig $make_orig_sha256" "$make_debian $make_debian_sha256"; do
    set -- $f
    curl -fsS -o "$scratch/src/$1" "$mirror/pool/main/m/make-dfsg/$1"
    echo "$2  $scratch/src/$1" | sha256sum -c --quiet - \
        || { echo "$0: $1 does not have the pinned SHA-256 sum" >&2; exit 1; }
done
# /proc for the package scripts; the private namespace takes it and the build overlay away
# with the command.
unshare --mount --propagation private sh -eu -c '
    part=$1 scratch=$2 version=$3
    mount -t proc proc "$part/proc"
    chroot "$part" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev make distcc >/dev/null"
    umount "$part/proc"
    # make 4.4.1, built in an overlay of the stage3 whose changes (the autotools, the build
    # tree) are thrown away.
    m=$scratch/m
    mount -t overlay overlay -o "lowerdir=$part,upperdir=$scratch/u,workdir=$scratch/w" "$m"
    mount -t proc proc "$m/proc"
    mkdir -p "$m/build"
    mount --bind "$scratch/src" "$m/build"
    chroot "$m" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        version="$version" sh -eu -c "
        apt-get install -y -qq --no-install-recommends autoconf automake autopoint pkgconf >/dev/null
        cd /build
        tar xf make-dfsg_\$version.orig.tar.xz
        tar xf make-dfsg_\$version-2.debian.tar.xz -C make-\$version
        cd make-\$version
        while read -r p; do
            case \$p in \"\"|\\#*) continue ;; esac
            patch -s -p1 < debian/patches/\$p
        done < debian/patches/series
        autoreconf -fi >/dev/null 2>&1 || { autoreconf -fi; exit 1; }
        ./configure -q --prefix=/usr --without-guile CFLAGS=\"-g -O2\" >/dev/null
        make -s -j\$(nproc) >/dev/null
        ./make --version | head -n 1"
' sh "$part" "$scratch" "$make_version"
built=$scratch/src/make-$make_version/make
[ -x "$built" ] || { echo "$0: make $make_version was not built" >&2; exit 1; }
chroot "$part" dpkg-divert --quiet --local --rename --divert /usr/bin/make.distrib --add /usr/bin/make
install -m 755 "$built" "$part/usr/bin/make"
rm -f "$part/usr/sbin/policy-rc.d"
chroot "$part" apt-get clean
rm -rf "$part/var/lib/apt/lists/"*
# Portage finds distcc through its masquerade directory; distccd serves only compilers linked
# there (distcc 3.3 and later).
for c in gcc x86_64-linux-gnu-gcc; do
    [ -e "$part/usr/lib/distcc/$c" ] || { echo "$0: /usr/lib/distcc/$c missing after installing distcc" >&2; exit 1; }
done
chroot "$part" distccd --version | head -n 1
cat > "$part/etc/profile.d/bh-test-step-env.sh" <<'EOF'
# build-helper test stage3 (scripts/distcc-stage3.sh), test instrumentation: when the run's
# distfiles directory has bh-step-env/ (the job pool's tests make it), each step's login
# shell appends the job-pool variables it was given, one tab-separated line per step.
if [ -n "${BUILD_HELPER_STEP-}" ] && [ -d /var/cache/distfiles/bh-step-env ]; then
    printf '%s\t%s\tMAKEFLAGS=%s\tMAKEOPTS=%s\tFEATURES=%s\tNINJAOPTS=%s\n' "$BUILD_HELPER_STEP" \
        "${BUILD_NAME-}" "${MAKEFLAGS-<unset>}" "${MAKEOPTS-<unset>}" "${FEATURES-<unset>}" \
        "${NINJAOPTS-<unset>}" >> "/var/cache/distfiles/bh-step-env/${BUILD_NAME:-none}.log"
fi
EOF
# The environment's make is 4.4.1 and joins a jobserver named by a fifo: a sub-make started
# with --jobserver-style=fifo sees the fifo form in its MAKEFLAGS.
chroot "$part" make --version | head -n 1 | grep -qx "GNU Make $make_version" \
    || { echo "$0: make --version in the stage3 is not GNU Make $make_version" >&2; exit 1; }
printf 'all:\n\t@+$(MAKE) -s -f /tmp/bh-fifo.mk sub\nsub:\n\t@echo "$(MAKEFLAGS)"\n' > "$part/tmp/bh-fifo.mk"
flags=$(chroot "$part" make -s -j2 --jobserver-style=fifo -f /tmp/bh-fifo.mk)
rm -f "$part/tmp/bh-fifo.mk"
case $flags in
    *--jobserver-auth=fifo:*) ;;
    *) echo "$0: make $make_version does not pass a fifo jobserver: $flags" >&2; exit 1 ;;
esac
chroot "$part" make --version | head -n 1
touch "$part/$mark"
rm -rf "$root"
mv "$part" "$root"
