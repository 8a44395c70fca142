#!/usr/bin/env bash
# Benchmark (not a test). Times `backupctl run` for each archive format against GNU tar and the usual
# compressors on the same tree, side by side, and prints wall time, archive
# size, size and speed ratios and peak memory. Also times an `if-changed` run
# on the unchanged tree against a full .tar run.
#
#   bench/compress.sh [TREE]
#
# TREE defaults to a copy of /usr/share/doc and /usr/include (a few thousand
# real files, text and already-compressed) made under $BENCH_DIR. The binary is
# $BACKUPCTL, by default target/release/backupctl (build it with
# `cargo build --release`). Every measurement is the best of $REPEAT runs
# (default 3) with a warm page cache. Not a test: numbers depend on the machine.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bench_dir=${BENCH_DIR:-${TMPDIR:-/tmp}/backupctl-bench}
target_dir=${CARGO_TARGET_DIR:-$here/target}
bin=${BACKUPCTL:-$target_dir/release/backupctl}
repeat=${REPEAT:-3}
[[ -x $bin ]] || { echo "no binary at $bin: run cargo build --release" >&2; exit 1; }

mkdir -p "$bench_dir"
tree=${1:-$bench_dir/tree}
if [[ -z ${1:-} && ! -d $tree ]]; then
    mkdir -p "$tree"
    cp -a /usr/share/doc "$tree/doc"
    cp -a /usr/include "$tree/include"
fi
tree=$(cd "$tree" && pwd)
out=$bench_dir/out
home=$bench_dir/home
rm -rf "$out" "$home"
mkdir -p "$out" "$home"

files=$(find "$tree" -type f | wc -l)
bytes=$(du -sb "$tree" | cut -f1)
echo "tree: $tree: $files files, $((bytes / 1048576)) MiB; $(nproc) cores"
# Warm the page cache (GNU tar skips reading when writing to /dev/null).
tar cf - -C "$(dirname "$tree")" "$(basename "$tree")" | cat >/dev/null

# best_of NAME OUTPUT COMMAND...: runs COMMAND $repeat times, keeps the best
# wall time and its peak RSS, records the size of OUTPUT.
declare -A secs rss size
best_of() {
    local name=$1 output=$2 best="" best_rss=0 t m
    shift 2
    for _ in $(seq "$repeat"); do
        rm -f "$output"
        /usr/bin/time -o "$out/time" -f '%e %M' "$@" >/dev/null 2>"$out/stderr" ||
            { echo "$name failed:" >&2; cat "$out/stderr" >&2; exit 1; }
        read -r t m <"$out/time"
        if [[ -z $best ]] || awk -v a="$t" -v b="$best" 'BEGIN{exit !(a<b)}'; then
            best=$t best_rss=$m
        fi
    done
    secs[$name]=$best
    rss[$name]=$best_rss
    size[$name]=$( [[ -e $output ]] && stat -c %s "$output" || echo 0)
}

parent=$(dirname "$tree")
base=$(basename "$tree")
printf '%s\n' "$tree;03:00;b_tar" "$tree;03:00;b_gz;format=tar.gz" \
    "$tree;03:00;b_zst;format=tar.zst" "$tree;03:00;b_ic;format=tar,if-changed" \
    >"$home/backup_schedules.txt"
ctl() { "$bin" --home "$home" "$@"; }

best_of "backupctl tar" "$home/backups/b_tar.tar" "$bin" --home "$home" run b_tar
best_of "backupctl tar.gz -6" "$home/backups/b_gz.tar.gz" "$bin" --home "$home" run b_gz
best_of "backupctl tar.zst -3" "$home/backups/b_zst.tar.zst" "$bin" --home "$home" run b_zst
best_of "GNU tar cf" "$out/ref.tar" tar cf "$out/ref.tar" -C "$parent" "$base"
# backupctl syncs its archive before renaming it into place; GNU tar does not.
best_of "GNU tar cf + sync" "$out/ref.tar" \
    sh -c "tar cf '$out/ref.tar' -C '$parent' '$base' && sync '$out/ref.tar'"
best_of "GNU tar czf" "$out/ref.tar.gz" tar czf "$out/ref.tar.gz" -C "$parent" "$base"
best_of "tar | zstd -3" "$out/ref.tar.zst" \
    sh -c "tar cf - -C '$parent' '$base' | zstd -q -3 -o '$out/ref.tar.zst'"
if command -v pigz >/dev/null; then
    best_of "tar | pigz -6" "$out/ref.pigz.tar.gz" \
        sh -c "tar cf - -C '$parent' '$base' | pigz -6 >'$out/ref.pigz.tar.gz'"
fi

# if-changed: one full run records the fingerprint, then the timed runs skip.
ctl run b_ic >/dev/null
ic=$home/backups/b_ic.tar
best_of "backupctl if-changed (unchanged)" "$out/none" "$bin" --home "$home" run b_ic
size["backupctl if-changed (unchanged)"]=$(stat -c %s "$ic")

printf '\n%-34s %9s %14s %10s\n' "what" "seconds" "bytes" "peak RSS"
for name in "backupctl tar" "GNU tar cf" "GNU tar cf + sync" "backupctl tar.gz -6" "GNU tar czf" "tar | pigz -6" \
    "backupctl tar.zst -3" "tar | zstd -3" "backupctl if-changed (unchanged)"; do
    [[ -n ${secs[$name]:-} ]] || continue
    printf '%-34s %9s %14s %7s MiB\n' "$name" "${secs[$name]}" "${size[$name]}" \
        "$(( ${rss[$name]} / 1024 ))"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
echo
echo "tar.gz: speed-up over tar czf $(ratio "${secs[GNU tar czf]}" "${secs[backupctl tar.gz -6]}")x (goal >= 2), size $(ratio "${size[backupctl tar.gz -6]}" "${size[GNU tar czf]}")x of tar czf (goal <= 1.03)"
echo "tar.zst: time $(ratio "${secs[backupctl tar.zst -3]}" "${secs[tar | zstd -3]}")x of tar | zstd -3 (goal <= 1), size $(ratio "${size[backupctl tar.zst -3]}" "${size[tar | zstd -3]}")x"
echo "tar: time $(ratio "${secs[backupctl tar]}" "${secs[GNU tar cf]}")x of tar cf (goal <= 1.2), $(ratio "${secs[backupctl tar]}" "${secs[GNU tar cf + sync]}")x of tar cf + sync"
ic_secs=${secs[backupctl if-changed (unchanged)]}
echo "if-changed on an unchanged tree: $(ratio "$ic_secs" "${secs[backupctl tar]}")x of a full .tar run (goal < 0.05);" \
    "$(ratio "$ic_secs" "${secs[backupctl tar.gz -6]}")x of tar.gz, $(ratio "$ic_secs" "${secs[backupctl tar.zst -3]}")x of tar.zst"
# The floor for any metadata walk: find stats every entry too.
/usr/bin/time -o "$out/time" -f '%e' sh -c "find '$tree' -printf '%s %T@ %m %y %l\n' | sha256sum >/dev/null"
echo "for scale, find -printf of the same metadata: $(cat "$out/time") s"
