#!/bin/sh
# Benchmark of the stage3 fetch + verify (issue 6), printing every figure; not a test.
#   scripts/bench-fetch.sh [SIZE_MB [RATE_MB_PER_S [RUNS]]]     defaults: 500 100 3
# Makes a signed mirror (random SIZE_MB x 10^6 byte "tarball", DIGESTS with SHA512 and
# BLAKE2B, clear-signed index and DIGESTS, detached .asc, throw-away key with a signing
# subkey), serves it from scripts/bench-server.py on 127.0.0.1 twice (limited to
# RATE_MB_PER_S x 10^6 bytes/s, and unlimited), and times, RUNS times each:
#   curl -o                      the bare download
#   curl -o && sync FILE         the bare download made durable (build-helper fsyncs)
#   curl -o && sha512sum         what the original tool did
#   bench_fetch                  build-helper's fetch + verify (SHA512, BLAKE2B, OpenPGP on
#                                the index, the DIGESTS and the tarball; fsync; rename)
#   sha512sum / b2sum alone      on the downloaded file (page cache), unlimited case goal
# Goals: limited: fetch+verify <= 1.05 x curl -o; unlimited: <= 1.1 x the slower hash alone.
# Needs curl, python3, gpg, coreutils; a release build of examples/bench_fetch.
set -eu
size_mb=${1:-500}
rate_mb=${2:-100}
runs=${3:-3}
src=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$src/target}
(cd "$src" && cargo build --release --quiet --example bench_fetch)
bin=$target_dir/release/examples/bench_fetch
work=$(mktemp -d /var/tmp/bh-bench.XXXXXX)
cleanup() {
    # The servers this script started (their pids are in $work/pids).
    for p in $(cat "$work/pids" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    GNUPGHOME=$work/gnupg gpgconf --kill gpg-agent 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

flavor=amd64-musl-hardened
stamp=20260101T000000Z
name=stage3-$flavor-$stamp.tar.xz
dir=$work/mirror/releases/amd64/autobuilds
mkdir -p "$dir/$stamp" "$work/dl"
echo "making a $size_mb MB file and signing it..."
head -c $((size_mb * 1000 * 1000)) /dev/urandom > "$dir/$stamp/$name"
size=$(stat -c %s "$dir/$stamp/$name")
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
g() { gpg --batch --quiet --no-tty --pinentry-mode loopback --passphrase '' "$@"; }
g --quick-gen-key 'bench key (throw-away) <bench@build-helper.invalid>' ed25519 cert never 2>/dev/null
fpr=$(gpg --batch --with-colons --list-keys | awk -F: '/^fpr/ { print $10; exit }')
g --quick-add-key "$fpr" ed25519 sign never 2>/dev/null
(cd "$dir/$stamp" && { echo "# BLAKE2B HASH"; b2sum "$name"; echo "# SHA512 HASH"; sha512sum "$name"; }) > "$work/DIGESTS"
g --local-user "$fpr" --digest-algo SHA512 --clearsign --output "$dir/$stamp/$name.DIGESTS" "$work/DIGESTS"
printf '# ts=0\n%s/%s %s\n' "$stamp" "$name" "$size" > "$work/latest"
g --local-user "$fpr" --digest-algo SHA512 --clearsign --output "$dir/latest-stage3-$flavor.txt" "$work/latest"
g --local-user "$fpr" --digest-algo SHA512 --armor --detach-sign --output "$dir/$stamp/$name.asc" "$dir/$stamp/$name"
gpg --batch --armor --export "$fpr" > "$work/key.asc"

start_server() { # RATE -> prints the port
    python3 "$src/scripts/bench-server.py" "$work/mirror" 0 "$1" > "$work/port.$1" &
    echo $! >> "$work/pids"
    while ! grep -q port "$work/port.$1" 2>/dev/null; do sleep 0.1; done
    awk '{ print $2 }' "$work/port.$1"
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

url_of() { echo "http://127.0.0.1:$1/releases/amd64/autobuilds/$stamp/$name"; }

# time_cmd LABEL CMD...: runs CMD, prints and returns (in $t) the seconds.
time_cmd() {
    label=$1; shift
    a=$(now); "$@" >/dev/null; b=$(now)
    t=$(secs "$a" "$b")
    echo "  $label: $t s"
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

bench() { # RATE LABEL
    port=$(start_server "$1")
    url=$(url_of "$port")
    echo "== $2 (server 127.0.0.1:$port) =="
    c=; cy=; cs=; f=
    i=0
    while [ $i -lt "$runs" ]; do
        i=$((i + 1))
        rm -f "$work/dl/f"
        time_cmd "run $i curl -o" curl -s -o "$work/dl/f" "$url"; c="$c $t"
        rm -f "$work/dl/f"
        time_cmd "run $i curl -o && sync FILE" sh -c "curl -s -o '$work/dl/f' '$url' && sync '$work/dl/f'"; cy="$cy $t"
        rm -f "$work/dl/f"
        time_cmd "run $i curl -o && sha512sum" sh -c "curl -s -o '$work/dl/f' '$url' && sha512sum '$work/dl/f'"; cs="$cs $t"
        rm -rf "$work/distfiles"
        time_cmd "run $i build-helper fetch+verify" "$bin" "http://127.0.0.1:$port" "$work/distfiles" "$work/key.asc"; f="$f $t"
    done
    mc=$(echo "$c" | median); mcy=$(echo "$cy" | median); mcs=$(echo "$cs" | median); mf=$(echo "$f" | median)
    echo "  median: curl -o $mc s, curl -o && sync $mcy s, curl -o && sha512sum $mcs s, fetch+verify $mf s"
    echo "  fetch+verify / (curl -o && sync) = $(awk -v a="$mf" -v b="$mcy" 'BEGIN { printf "%.3f", a / b }')"
    echo "  fetch+verify / curl -o = $(awk -v a="$mf" -v b="$mc" 'BEGIN { printf "%.3f", a / b }')"
    echo "  fetch+verify / (curl -o && sha512sum) = $(awk -v a="$mf" -v b="$mcs" 'BEGIN { printf "%.3f", a / b }')"
    mb=$(awk -v s="$size" -v t="$mf" 'BEGIN { printf "%.1f", s / t / 1e6 }')
    echo "  fetch+verify throughput: $mb MB/s"
}

echo "file: $size bytes; runs per figure: $runs; CPUs: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"
bench $((rate_mb * 1000 * 1000)) "limited to $rate_mb MB/s"
bench 0 "unlimited loopback"
echo "== hashes alone on the downloaded file (in the page cache) =="
curl -s -o "$work/dl/f" "$(url_of "$port")"
s=; b=
i=0
while [ $i -lt "$runs" ]; do
    i=$((i + 1))
    time_cmd "run $i sha512sum" sha512sum "$work/dl/f"; s="$s $t"
    time_cmd "run $i b2sum" b2sum "$work/dl/f"; b="$b $t"
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
ms=$(echo "$s" | median); mb2=$(echo "$b" | median)
slower=$(awk -v a="$ms" -v b="$mb2" 'BEGIN { print (a > b ? a : b) }')
echo "  median: sha512sum $ms s, b2sum $mb2 s; slower: $slower s"
echo "  unlimited fetch+verify / slower hash = $(awk -v a="$mf" -v b="$slower" 'BEGIN { printf "%.3f", a / b }')"
