#!/usr/bin/env bash
# Benchmark (not a test). Times `backupctl restore` against GNU tar
# extracting the very same archive, paired in one run: for each tree, one
# .tar and one .tar.zst are written once by `backupctl run`, then the two
# extractors run $REPEAT times each, alternating, every run into a fresh
# directory on the same filesystem. Prints best and median wall time of
# each and the ratios (restore / tar). Run as root, both restore owners.
#
#   bench/restore.sh [TREE...]
#
# TREEs default to /tmp/bench/small (~4k files) and /tmp/bench/many (~46k
# files), built by corpus.sh. $FORMATS chooses the formats (default
# "tar tar.zst"). The binary is $BACKUPCTL, by default
# $CARGO_TARGET_DIR/release/backupctl (`cargo build --release`). With
# $BASELINE set to another build (say, main's), it runs in the same
# alternation and a second table pairs ours against it. Needs free space
# for 3 x $REPEAT copies of the largest tree. Numbers depend on the machine
# and its load.
#
# Figures (2-core machine shared with other builds, load 0.5 to 1.6; ext4
# without a journal, where creating files just after a big tree was deleted
# is much slower, so single runs of the same command vary 2x to 5x), best /
# median, restore / `tar xf` and restore / main's build (BASELINE) before a
# plain .tar was checked with seeks and copied with copy_file_range:
#   FORMATS=tar REPEAT=7 bench/restore.sh /tmp/bench/many   (46k files), 4 runs
#     vs tar xf: 1.22x / 1.12x, 1.29x / 0.99x (REPEAT=9), 1.25x / 1.11x, 1.35x / 1.26x
#     vs main:   1.01x / 1.17x, 0.89x / 0.93x,            0.94x / 0.79x, 0.67x / 0.87x
#     (tar xf itself: best 1.7 to 2.0 s, medians 2.7 to 11 s)
#   TMPDIR=/dev/shm FORMATS=tar REPEAT=7 ... /tmp/bench/many   (tmpfs: little noise)
#     tar 1.091 / 1.119 s, ours 1.578 / 1.624 s: 1.45x / 1.45x; vs main 0.93x / 0.94x
#   TMPDIR=/dev/shm FORMATS=tar.zst REPEAT=5 ... /tmp/bench/many
#     vs tar --zstd -xf 1.11x / 1.13x; vs main 0.92x / 0.89x
#     (on disk, 5 rounds: 1.03x / 1.00x, vs main 1.81x / 1.26x, tar itself
#     5.6 to 14 s: the disk's noise, the .tar.zst path is unchanged but for
#     the checks' map)
#   REPEAT=7 bench/restore.sh /tmp/bench/small   (4k files)
#     .tar 1.13x / 1.03x, vs main 0.96x / 0.98x; .tar.zst 1.30x / 0.94x, vs main 0.95x / 0.94x
# What is left is mostly the SHA-256 of the 610 MiB archive, which must
# match the manifest before anything is written: 0.45 to 0.50 s on one core
# (`openssl dgst -sha256` takes 0.45 s), the whole of the first pass; the
# second pass takes about what `tar xf` takes (on tmpfs about 1.1 s).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BACKUPCTL:-${CARGO_TARGET_DIR:-$here/target}/release/backupctl}
repeat=${REPEAT:-5}
[[ -x $bin ]] || { echo "no binary at $bin: run cargo build --release" >&2; exit 1; }
trees=("$@")
[[ ${#trees[@]} -gt 0 ]] || trees=(/tmp/bench/small /tmp/bench/many)

home=$(mktemp -d "${TMPDIR:-/tmp}/backupctl-restore-bench.XXXXXX")
work=$home/work
trap 'rm -rf "$home"' EXIT
baseline=${BASELINE:-}
[[ -z $baseline || -x $baseline ]] || { echo "no baseline binary at $baseline" >&2; exit 1; }
pairs=()
touch "$home/backup_schedules.txt"

timed() { # COMMAND... -> wall seconds of one run
    local start
    start=$(date +%s.%N)
    "$@" >/dev/null 2>"$home/stderr" ||
        { echo "failed: $*" >&2; cat "$home/stderr" >&2; exit 1; }
    echo "$(date +%s.%N) - $start" | bc -l
}
best() { sort -g | head -1; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Deleting a big tree slows the next creations on some filesystems: runs
# go into fresh directories, all deleted after each pair of extractors.
cleanup() { rm -rf "$work"; sync; }

printf '%-6s %6s %-7s %8s %8s %8s %8s %7s %7s\n' \
    tree files format tar_best ours_best tar_med ours_med r_best r_med
for tree in "${trees[@]}"; do
    name=$(basename "$tree")
    files=$(find "$tree" | wc -l)
    for ext in ${FORMATS:-tar tar.zst}; do
        schedule=$name-${ext/./-}
        "$bin" --home "$home" create "$tree;04:00;$schedule;format=$ext" 2>/dev/null
        "$bin" --home "$home" run "$schedule" >/dev/null
        archive=$home/backups/$schedule.$ext
        cat "$archive" >/dev/null # warm the page cache
        if [[ $ext == tar ]]; then flags=(-xf); else flags=(--zstd -xf); fi
        cleanup
        t_tar=() t_ours=() t_base=()
        for i in $(seq "$repeat"); do # alternating: both meet the same load
            mkdir -p "$work/tar$i"
            t_tar+=("$(timed tar "${flags[@]}" "$archive" -C "$work/tar$i")")
            t_ours+=("$(timed "$bin" --home "$home" restore "$schedule.$ext" --to "$work/ours$i")")
            if [[ -n $baseline ]]; then
                t_base+=("$(timed "$baseline" --home "$home" restore "$schedule.$ext" --to "$work/base$i")")
            fi
        done
        cleanup
        tb=$(printf '%s\n' "${t_tar[@]}" | best) ob=$(printf '%s\n' "${t_ours[@]}" | best)
        tm=$(printf '%s\n' "${t_tar[@]}" | median) om=$(printf '%s\n' "${t_ours[@]}" | median)
        printf '%-6s %6s %-7s %8.3f %8.3f %8.3f %8.3f %7.2f %7.2f\n' "$name" "$files" "$ext" \
            "$tb" "$ob" "$tm" "$om" "$(echo "$ob / $tb" | bc -l)" "$(echo "$om / $tm" | bc -l)"
        if [[ -n $baseline ]]; then
            bb=$(printf '%s\n' "${t_base[@]}" | best) bm=$(printf '%s\n' "${t_base[@]}" | median)
            pairs+=("$(printf '%-6s %6s %-7s %8.3f %8.3f %8.3f %8.3f %7.2f %7.2f' "$name" "$files" "$ext" \
                "$bb" "$ob" "$bm" "$om" "$(echo "$ob / $bb" | bc -l)" "$(echo "$om / $bm" | bc -l)")")
        fi
    done
done
if [[ -n $baseline ]]; then
    echo
    printf '%-6s %6s %-7s %8s %8s %8s %8s %7s %7s\n' \
        tree files format base_best ours_best base_med ours_med r_best r_med
    printf '%s\n' "${pairs[@]}"
fi
