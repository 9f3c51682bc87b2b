#!/usr/bin/env bash
# Give a measurement the machine: every process at nice 19 (tests, helpers' work) is moved to
# the SCHED_IDLE class every 2 s, so it runs only on cores the measurement leaves idle.
#
#   sudo bash bench/quiet.sh &      # then start the training run / benchmark at nice 0
#   nice -n 19 python -m pytest ... # anything else meanwhile
#
# Why not plain `nice -n 19`: with the kernel's autogroup scheduling (on by default on many
# distributions, and on these machines) nice only ranks processes within one session, so a
# nice-19 fuzzer in another shell took half of a 2-thread training run's CPU and cut its
# tokens/s tenfold (454 vs 4,646, measured). The script turns autogroup off (needs root) and
# uses SCHED_IDLE, with which a busy-looping nice-19 process left the run's tokens/s unchanged
# (4,704 vs 4,646).
set -u
if [[ -w /proc/sys/kernel/sched_autogroup_enabled ]]; then
  echo 0 > /proc/sys/kernel/sched_autogroup_enabled
fi
while true; do
  for tid in $(ps -eLo lwp=,ni= | awk '$2 == 19 {print $1}'); do
    chrt -i -p 0 "$tid" 2>/dev/null
  done
  sleep 2
done
