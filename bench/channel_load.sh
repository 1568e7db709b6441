#!/usr/bin/env bash
# Channel server load test with the shared fanout generator (../shared/bench/fanout.c).
# Server on CPU 0, generator on CPU 1, TCP_QUICKACK (-Q). Every run is bounded (-t) and stops
# by itself; only loopback is used. Prints the RESULT lines and the memory per idle client.
#
#   bash bench/channel_load.sh [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${1:-12345}
SHARED=${SHARED:-../shared}
FANOUT=${FANOUT:-/tmp/parley-fanout}
[ -x "$FANOUT" ] || gcc -O2 -o "$FANOUT" "$SHARED/bench/fanout.c"
ulimit -n 20000 || true

taskset -c 0 deno run --allow-net servers/channel.ts --port "$PORT" --log-level warning &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
  sleep 0.1
done
# Let the first connection's work settle before measuring the baseline.
sleep 0.5
rss() { awk '/VmRSS/ {print $2}' /proc/$SERVER/status; }

echo "== throughput: 50 clients x 200 messages, window 8 (5 runs)"
for _ in 1 2 3 4 5; do
  taskset -c 1 "$FANOUT" -p "$PORT" -P fixed200 -n 50 -m 200 -w 8 -Q -t 60 2>/dev/null | grep RESULT
done
echo "== throughput: 50 clients x 2000 messages, window 8"
taskset -c 1 "$FANOUT" -p "$PORT" -P fixed200 -n 50 -m 2000 -w 8 -Q -t 60 2>/dev/null | grep RESULT
echo "== latency at a fixed 2,000 messages/s"
taskset -c 1 "$FANOUT" -p "$PORT" -P fixed200 -n 50 -m 200 -w 0 -r 2000 -Q -t 60 2>/dev/null | grep RESULT

echo "== 5,000 idle clients"
BASE=$(rss)
taskset -c 1 "$FANOUT" -p "$PORT" -P fixed200 -n 5000 -I 6 -c 1000 -t 90 2>/dev/null > /tmp/parley-idle.txt &
GEN=$!
PEAK=$BASE
for _ in $(seq 60); do
  sleep 0.2
  NOW=$(rss)
  [ "$NOW" -gt "$PEAK" ] && PEAK=$NOW
  kill -0 $GEN 2>/dev/null || break
done
wait $GEN || true
grep RESULT /tmp/parley-idle.txt || cat /tmp/parley-idle.txt | tail -3
echo "server RSS: idle baseline ${BASE} KiB, with 5,000 clients ${PEAK} KiB, per client $(( (PEAK - BASE) * 1024 / 5000 / 1024 )).$(( ((PEAK - BASE) * 1024 / 5000 % 1024) * 10 / 1024 )) KiB"
