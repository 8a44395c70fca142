#!/usr/bin/env bash
# The usage script of the original specification (shared/seeds/000_*.txt in
# the project's steering repository: two Python scripts, backup_manager.py and
# backup_service.py), run through backupctl's symlinked names instead.
#
# Run it from a directory holding the `backup_manager` and `backup_service`
# symlinks to backupctl (the tests do), or from anywhere else: it then makes a
# fresh temporary home, links the names there to $BACKUPCTL (by default the
# release build next to this script, else `backupctl` on the PATH), and says
# on stderr where it ran:
#
#   cargo build --release && examples/spec_usage.sh
#
# The schedules are set to the current minute (SPEC_TIME=hh:mm overrides it),
# so `start` backs them up at once and `stop` waits for those backups.
set -u

if [ ! -e ./backup_manager ]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  bin=${BACKUPCTL:-$here/target/release/backupctl}
  [ -x "$bin" ] || bin=$(command -v backupctl || true)
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "spec_usage.sh: no backupctl binary: run cargo build --release first" >&2
    exit 1
  fi
  home=$(mktemp -d "${TMPDIR:-/tmp}/backupctl-demo.XXXXXX")
  ln -s "$bin" "$home/backup_manager"
  ln -s "$bin" "$home/backup_service"
  cd "$home" || exit 1
  echo "spec_usage.sh: running in a fresh home, $home" >&2
fi

T=${SPEC_TIME:-$(date +%H:%M)}
# The spec backs up directories test, test1 and test2; give them some content.
for dir in test test1 test2; do
  mkdir -p "$dir" && echo "sample data of $dir" > "$dir/notes.txt"
done

echo "--> Create 3 new schedules"
./backup_manager create "test;$T;backup_test"
./backup_manager create "test1;$T;personal_data"
./backup_manager create "test2;$T;office_docs"
echo "--> Try to add a malformed schedule"
./backup_manager create "test;"
echo "--> Instruction list"
./backup_manager list

./backup_manager start
./backup_manager stop

echo "--> Instruction backups"
./backup_manager backups

echo "--> Content of the directory"
ls
echo "--> cat on ./logs/backup_manager.log"
cat ./logs/backup_manager.log
echo "--> cat on ./logs/backup_service.log"
cat ./logs/backup_service.log
echo "--> Content of ./backups"
ls ./backups
