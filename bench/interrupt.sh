#!/usr/bin/env bash
# Benchmark (not a test). How long `backupctl run` takes to exit after
# SIGINT (Ctrl-C) in the middle of a slow archive, at zstd -19 and gzip -9,
# paired against `tar cf - DIR | zstd -19 -T2` (and `| gzip -9`) interrupted
# the same way on the same data: the pairs of each round follow each other.
# The goal is under a second; the partial archive must be gone afterwards.
#
#   bench/interrupt.sh
#
# The data is 64 MiB of /dev/urandom (nothing compresses it, so every
# compressor is as slow as it gets). Each run gets SIGINT after $DELAY seconds
# (default 1.5). The binary is $BACKUPCTL, by default target/release/backupctl
# (`cargo build --release`). $ROUNDS rounds (default 5); prints the best and
# the median latency in milliseconds. Not a test: numbers depend on the machine.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$here/target}
bin=${BACKUPCTL:-$target_dir/release/backupctl}
rounds=${ROUNDS:-5}
delay=${DELAY:-1.5}
[[ -x $bin ]] || { echo "no binary at $bin: run cargo build --release" >&2; exit 1; }

home=$(mktemp -d "${TMPDIR:-/tmp}/backupctl-interrupt.XXXXXX")
trap 'rm -rf "$home"' EXIT
mkdir "$home/src"
head -c $((64 << 20)) /dev/urandom >"$home/src/random.bin"
"$bin" --home "$home" create "$home/src;04:00;zst;format=tar.zst,level=19" 2>/dev/null
"$bin" --home "$home" create "$home/src;04:00;gz;format=tar.gz,level=9" 2>/dev/null

# latency COMMAND...: starts COMMAND in its own process group, sends the
# group SIGINT after $delay s (as a terminal's Ctrl-C does) and prints the
# milliseconds until it has exited.
latency() {
    setsid "$@" >/dev/null 2>&1 &
    local pid=$! start
    sleep "$delay"
    start=$(date +%s%N)
    kill -INT -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo $((($(date +%s%N) - start) / 1000000))
}

declare -A ms
for _ in $(seq "$rounds"); do
    ms[zst]+="$(latency "$bin" --home "$home" run zst) "
    ms[tar_zstd]+="$(latency sh -c "tar cf - -C '$home' src | zstd -q -19 -T2 -o '$home/out.tar.zst' -f") "
    ms[gz]+="$(latency "$bin" --home "$home" run gz) "
    ms[tar_gzip]+="$(latency sh -c "tar cf - -C '$home' src | gzip -9 >'$home/out.tar.gz'") "
done
leftovers=$(find "$home/backups" -name '*.partial' | wc -l)

echo "SIGINT to exit, ms, $rounds rounds after ${delay} s; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for what in zst tar_zstd gz tar_gzip; do
    sorted=$(tr ' ' '\n' <<<"${ms[$what]}" | grep . | sort -n)
    best=$(head -1 <<<"$sorted")
    median=$(sed -n "$(((rounds + 1) / 2))p" <<<"$sorted")
    case $what in
    zst) label="backupctl run, tar.zst -19" ;;
    tar_zstd) label="tar | zstd -19 -T2" ;;
    gz) label="backupctl run, tar.gz -9" ;;
    tar_gzip) label="tar | gzip -9" ;;
    esac
    printf '%-28s best %5d  median %5d\n' "$label" "$best" "$median"
done
echo "partial archives left behind by backupctl: $leftovers"
