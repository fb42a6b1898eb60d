#!/usr/bin/env bash
# Failover of the daemon's aggregate pipeline on the embedded backend:
# the time from SIGTERM (then SIGKILL) of the worker holding the one shard
# to another worker logging "lease taken". Run from a folder of its own with
# `wildrydes-ops local --in-memory` up and its `export` lines in the
# environment; binaries from target/debug (cargo build --bins).
set -u
B=${WILDRYDES_BIN_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target/debug}
now() { date +%s.%N; }
waitfor() { # file pattern
  until grep -q "$2" "$1" 2>/dev/null; do sleep 0.05; done; }
$B/producer --count 20 --time-scale 1 --duration 300s --quiet > producer.log 2>&1 &
P=$!
$B/wildrydes-daemon aggregate --worker-id A --metrics-addr 127.0.0.1:19461 > A.log 2>&1 &
A=$!
waitfor A.log "lease taken"
$B/wildrydes-daemon aggregate --worker-id B --metrics-addr 127.0.0.1:19462 > B.log 2>&1 &
BP=$!
sleep $(python3 -c "import random; print(round(random.uniform(4,8),2))")
t0=$(now); kill -TERM $A; waitfor B.log "lease taken"; t1=$(now)
echo "SIGTERM failover: $(echo "$t1 - $t0" | bc) s"
wait $A; echo "A exit $?"
$B/wildrydes-daemon aggregate --worker-id C --metrics-addr 127.0.0.1:19463 > C.log 2>&1 &
C=$!
sleep $(python3 -c "import random; print(round(random.uniform(4,8),2))")
t0=$(now); kill -KILL $BP; waitfor C.log "lease taken"; t1=$(now)
echo "SIGKILL failover: $(echo "$t1 - $t0" | bc) s"
kill -TERM $C; kill -TERM $P; wait
