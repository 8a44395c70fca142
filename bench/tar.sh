#!/usr/bin/env bash
# Benchmark (not a test): `backupctl run` against GNU `tar cf` on the same tree.
#
#   bench/tar.sh [TREE]      default TREE: a copy of /usr/include (~8k files)
#
# Prints the median wall time of RUNS runs (default 5) of each, the ratio, and
# the peak memory of each. backupctl fsyncs its archive before renaming it into
# place; GNU tar does not, so "tar cf + sync" is shown too for a fair pair.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
work=$(mktemp -d "${TMPDIR:-/tmp}/backupctl-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
bin=$PWD/target/release/backupctl

src=${1:-}
if [ -z "$src" ]; then
  cp -a /usr/include "$work/tree"
  src=$work/tree
fi
files=$(find "$src" -type f | wc -l)
bytes=$(du -sb "$src" | cut -f1)
parent=$(dirname "$src"); base=$(basename "$src")
home=$work/home
mkdir -p "$home"
"$bin" --home "$home" create "$src;03:00;bench" 2>/dev/null

# Median of the wall times (seconds) of running "$@" RUNS times.
median() {
  local times=()
  for _ in $(seq "$RUNS"); do
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc)")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"
}
peak_kib() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

gnu_tar() { tar cf "$work/gnu.tar" -C "$parent" "$base"; }
gnu_tar_sync() { gnu_tar && sync "$work/gnu.tar"; }
ours() { "$bin" --home "$home" run bench; }

gnu_tar; ours >/dev/null   # warm the page cache
t_tar=$(median gnu_tar)
t_tar_sync=$(median gnu_tar_sync)
t_ours=$(median ours)
m_tar=$(peak_kib tar cf "$work/gnu.tar" -C "$parent" "$base")
m_ours=$(peak_kib "$bin" --home "$home" run bench)

printf 'tree: %s (%d files, %d MiB)\n' "$src" "$files" "$((bytes / 1048576))"
printf '%-22s %8s %10s %12s\n' tool "wall s" "peak MiB" "archive MiB"
printf '%-22s %8.3f %10.1f %12.1f\n' "GNU tar cf" "$t_tar" "$(echo "$m_tar/1024" | bc -l)" "$(echo "$(stat -c %s "$work/gnu.tar")/1048576" | bc -l)"
printf '%-22s %8.3f %10s %12s\n' "GNU tar cf + sync" "$t_tar_sync" "" ""
printf '%-22s %8.3f %10.1f %12.1f\n' "backupctl run" "$t_ours" "$(echo "$m_ours/1024" | bc -l)" "$(echo "$(stat -c %s "$home/backups/bench.tar")/1048576" | bc -l)"
printf 'ratio backupctl / tar cf:        %.2f\n' "$(echo "$t_ours / $t_tar" | bc -l)"
printf 'ratio backupctl / tar cf + sync: %.2f\n' "$(echo "$t_ours / $t_tar_sync" | bc -l)"
