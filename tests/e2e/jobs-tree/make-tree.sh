#!/bin/sh
# Writes the tree of the job pool's runs (tests/e2e/job_pool.rs, scripts/bench-jobs.sh) into
# DEST: TARGETS stage0 targets x86_64-unknown-linux-musl.jobs1 ... jobsN (jobs1 is the
# primary), whose world holds test-jobs/cbuild, a real C build with the build environment's
# gcc (repos/bhjobs), and the build machine's configuration host-jobs (configs/host links to
# it). Everything the recipe emerges besides test-jobs/cbuild (the primary phase's toolchain,
# libc, kernel, box: STAND-IN ebuilds that only install files) comes from the real-Portage
# test repository, tests/e2e/portage-tree's `bhtest`, copied into every target's repos/ as
# `portage-musl-portage` (the build machine's repos.conf points there too). The stage3 is the
# gcc stage3 of scripts/distcc-stage3.sh (GNU make 4.4.1, Debian's gcc).
#
# The starter, DEST/starters/jobs.toml, ends with its [options] table, so a caller appends
# more options (`jobs = 2`, `job_pool = false`, ...) as plain lines. Its [env] carries the
# build's size: BH_JOBS_FILES C files per target (default 24), BH_JOBS_WORK functions of
# unrolled loops per file (default 1), and BH_JOBS_SLEEP seconds slept inside each logged
# compile (default 0.2), taken from this script's environment.
#
# Usage: tests/e2e/jobs-tree/make-tree.sh DEST [TARGETS]   (TARGETS: 1 to 99, default 3)
set -eu
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 DEST [TARGETS]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
dest=$1
n=${2:-3}
case $n in ''|*[!0-9]*) echo "$0: TARGETS is a number" >&2; exit 2 ;; esac
[ "$n" -ge 1 ] && [ "$n" -le 99 ] || { echo "$0: TARGETS is 1 to 99" >&2; exit 2; }
files=${BH_JOBS_FILES:-24}
work=${BH_JOBS_WORK:-1}
sleep=${BH_JOBS_SLEEP:-0.2}
tuple=x86_64-unknown-linux-musl
bhtest=$here/../portage-tree/configs/$tuple.portage/repos/portage-musl-portage
[ -d "$bhtest/profiles" ] || { echo "$0: $bhtest missing" >&2; exit 1; }
mkdir -p "$dest/configs" "$dest/starters"
for sub in binpkgs/host builds history work distfiles; do mkdir -p "$dest/$sub"; done
cp -a "$here/configs/host-jobs" "$dest/configs/"
ln -sfn host-jobs "$dest/configs/host"
{
    echo "# The job pool's run (written by tests/e2e/jobs-tree/make-tree.sh): $n stage0 targets"
    echo "# compiling test-jobs/cbuild with real gcc in the gcc stage3 (scripts/distcc-stage3.sh)."
} > "$dest/starters/jobs.toml"
i=1
while [ "$i" -le "$n" ]; do
    name=jobs$i
    conf=$dest/configs/$tuple.$name
    cp -a "$here/target" "$conf"
    sed "s/@NAME@/$name/g" "$conf/target-portage/make.conf.in" > "$conf/target-portage/make.conf"
    rm "$conf/target-portage/make.conf.in"
    mkdir -p "$conf/repos" "$conf/worlds/tree" "$dest/binpkgs/$tuple.$name"
    cp -a "$bhtest" "$conf/repos/portage-musl-portage"
    cp -a "$here/repos/bhjobs" "$conf/repos/bhjobs"
    printf '\n[[target]]\ntuple = "%s"\nname = "%s"\n' "$tuple" "$name" >> "$dest/starters/jobs.toml"
    i=$((i + 1))
done
cat >> "$dest/starters/jobs.toml" <<EOF

[env]
BH_JOBS_FILES = "$files"
BH_JOBS_WORK = "$work"
BH_JOBS_SLEEP = "$sleep"

[options]
ui = "plain"
stage3 = "amd64-musl-hardened"
mount_type = "bind"
tmp_type = "none"
umount_ask = false
# The history each run archives at its end: the fastest compressor.
compressor = "lz4"
EOF
