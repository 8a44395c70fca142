#!/usr/bin/env bash
# Benchmark (not a test). The walk that finds what changed, against
# `find -printf '%s %T@ %m %l'` over the same tree, paired: each round runs
# `backupctl run` of an `if-changed` schedule on the unchanged tree (the
# metadata walk and its fingerprint, no archive) and the `find`, one after
# the other.
#
#   bench/walk.sh [TREE]
#
# TREE defaults to /tmp/bench/many. The binary is $BACKUPCTL, by default
# target/release/backupctl. $ROUNDS pairs (default 11). Prints the median
# and best of each and the median of the per-round ratio. Not a test:
# numbers depend on the machine and its load.
#
# On the 2-core bench machine, load ~5.9 (other builds running), 9 rounds
# each, /tmp/bench/many (54,519 entries), run one after the other:
#   before (walkdir, one thread, lstat by full path)  median 1.101  best 1.015
#   after  (`scan`: two threads, openat/fstatat)      median 0.746  best 0.631
# Again at load ~1.5, 9 rounds each, before then after:
#   /tmp/bench/many   before median 1.199 best 1.121; after 0.517 best 0.474
#   /tmp/bench/small  before median 1.467 best 1.409; after 0.794 best 0.725
# `strace -f -c` of one run after: 54,529 newfstatat, 8,282 openat (one per
# directory), 16,522 getdents64, 191 futex; user 0.03 s, sys 0.17 s.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$here/target}
bin=${BACKUPCTL:-$target_dir/release/backupctl}
rounds=${ROUNDS:-11}
tree=$(cd "${1:-/tmp/bench/many}" && pwd)
[[ -x $bin ]] || { echo "no binary at $bin: run cargo build --release" >&2; exit 1; }

home=$(mktemp -d "${TMPDIR:-/tmp}/backupctl-walk.XXXXXX")
trap 'rm -rf "$home"' EXIT
touch "$home/backup_schedules.txt"
"$bin" --home "$home" create "$tree;04:00;w;if-changed,keep-last=2" 2>/dev/null
"$bin" --home "$home" run w >/dev/null # the archive the next runs compare with

now() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
best() { sort -g | head -1; }

ours=() theirs=() ratio=()
for _ in $(seq 1 "$rounds"); do
    start=$(now)
    "$bin" --home "$home" run w | grep -q unchanged
    a=$(echo "$(now) - $start" | bc -l)
    start=$(now)
    find "$tree" -printf '%s %T@ %m %l\n' >/dev/null
    b=$(echo "$(now) - $start" | bc -l)
    ours+=("$a") theirs+=("$b") ratio+=("$(echo "$a / $b" | bc -l)")
done
printf 'tree %s (%s entries), %s paired rounds, load %s\n' "$tree" "$(find "$tree" | wc -l)" \
    "$rounds" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'backupctl run, if-changed, unchanged  median %.3f s  best %.3f s\n' \
    "$(printf '%s\n' "${ours[@]}" | median)" "$(printf '%s\n' "${ours[@]}" | best)"
printf "find -printf '%%s %%T@ %%m %%l'          median %.3f s  best %.3f s\n" \
    "$(printf '%s\n' "${theirs[@]}" | median)" "$(printf '%s\n' "${theirs[@]}" | best)"
printf 'ratio (backupctl / find)              median %.3f  best %.3f\n' \
    "$(printf '%s\n' "${ratio[@]}" | median)" "$(printf '%s\n' "${ratio[@]}" | best)"
