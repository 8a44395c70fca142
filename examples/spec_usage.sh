#!/usr/bin/env bash
# The spec's usage script, run through the symlinked names instead of the two
# Python scripts. Run it in an empty directory holding the `backup_manager` and
# `backup_service` symlinks to backupctl (see the README), e.g.:
#
#   mkdir /tmp/demo && cd /tmp/demo
#   ln -s "$(command -v backupctl)" backup_manager
#   ln -s "$(command -v backupctl)" backup_service
#   bash /path/to/examples/spec_usage.sh
#
# The schedules are set to the current minute (SPEC_TIME=hh:mm overrides it),
# so `start` backs them up at once and `stop` waits for those backups.
set -u

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
