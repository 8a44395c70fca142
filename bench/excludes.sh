#!/usr/bin/env bash
# Benchmark (not a test). Times `backupctl run` of one tree with 100 exclude
# patterns that match nothing (the worst case: every entry is tested against
# all of them) against the same run with none, paired: the two runs of each
# round follow each other, so both see the same cache and machine load.
#
#   bench/excludes.sh [TREE]
#
# TREE defaults to /tmp/bench/small. The binary is $BACKUPCTL, by default
# target/release/backupctl (`cargo build --release`). $ROUNDS pairs
# (default 11); prints the median time of each and the median of the
# per-round ratio. Not a test: numbers depend on the machine.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$here/target}
bin=${BACKUPCTL:-$target_dir/release/backupctl}
rounds=${ROUNDS:-11}
tree=$(cd "${1:-/tmp/bench/small}" && pwd)
[[ -x $bin ]] || { echo "no binary at $bin: run cargo build --release" >&2; exit 1; }

home=$(mktemp -d "${TMPDIR:-/tmp}/backupctl-excludes.XXXXXX")
trap 'rm -rf "$home"' EXIT

# 100 patterns of the usual kinds: names at any depth, anchored paths,
# `**` across directories, directories only.
patterns=()
for i in $(seq 1 40); do patterns+=("exclude=*.nomatch$i"); done
for i in $(seq 1 30); do patterns+=("exclude=/nowhere$i/*.tmp"); done
for i in $(seq 1 20); do patterns+=("exclude=**/cache$i/**"); done
for i in $(seq 1 10); do patterns+=("exclude=build$i/"); done
options=$(IFS=,; echo "${patterns[*]}")

"$bin" --home "$home" create "$tree;04:00;none" 2>/dev/null
"$bin" --home "$home" create "$tree;04:00;hundred;$options" 2>/dev/null

seconds() { # NAME -> wall seconds of one run
    local start end
    start=$(date +%s.%N)
    "$bin" --home "$home" run "$1" >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

seconds none >/dev/null # warm the page cache
none=() hundred=() ratios=()
for _ in $(seq 1 "$rounds"); do
    a=$(seconds none)
    b=$(seconds hundred)
    none+=("$a") hundred+=("$b")
    ratios+=("$(echo "$b / $a" | bc -l)")
done
files=$(find "$tree" | wc -l)
printf 'tree %s (%s entries), %s paired rounds\n' "$tree" "$files" "$rounds"
printf 'no excludes:          median %.3f s\n' "$(printf '%s\n' "${none[@]}" | median)"
printf '100 exclude patterns: median %.3f s\n' "$(printf '%s\n' "${hundred[@]}" | median)"
printf 'ratio (100 / none):   median %.3f\n' "$(printf '%s\n' "${ratios[@]}" | median)"
