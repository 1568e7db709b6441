#!/usr/bin/env bash
# CRC network load test with the shared generator (../shared/bench/crc_load.c).
# Eleven real node processes form a tree (all on CPU 0); the generator (CPU 1) attaches four
# clients to each end of the longest path (S8 and S11, seven hops apart), so every chat crosses
# the whole tree. Prints the generator's RESULT lines: convergence (every client knows every
# other one), chats/s with a window of 8, and p50/p99 latency at a fixed 100 chats/s; then one
# node alone (CPU 0) with 8 clients (issue 14: one node's ceiling on the generator).
# Loopback only; every run is bounded (-t, -s) and stops by itself.
#
#   bash bench/crc_load.sh [BASE_PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:-23000}
SHARED=${SHARED:-../shared}
GEN=${CRC_LOAD:-/tmp/parley-crc_load}
[ -x "$GEN" ] || gcc -O2 -o "$GEN" "$SHARED/bench/crc_load.c"

# node parent (0 = root): the eleven-server tree of tests/scenarios/03_eleven_servers.json
PARENTS=(0 0 1 1 2 2 3 3 4 5 6 10)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
for n in $(seq 1 11); do
  args=(--id "$n" --name "S$n" --port $((BASE + n)) --log-level warning)
  p=${PARENTS[$n]}
  [ "$p" -ne 0 ] && args+=(--connect-to-host 127.0.0.1 --connect-to-port $((BASE + p)))
  taskset -c 0 deno run --allow-net servers/crc_node.ts "${args[@]}" &
  PIDS+=($!)
  wait_port $((BASE + n))
done
sleep 0.5

echo "== 8 clients (4 on S8, 4 on S11), 2000 chats each across 7 hops, window 8"
taskset -c 1 "$GEN" -a $((BASE + 8)):4 -a $((BASE + 11)):4 -b 5000 -m 2000 -w 8 -P half -L 64 -t 60 -s 10 -Q | grep RESULT
echo "== the same clients at a fixed 100 chats/s (latency)"
taskset -c 1 "$GEN" -a $((BASE + 8)):4 -a $((BASE + 11)):4 -b 6000 -m 100 -w 0 -r 100 -P half -L 64 -t 60 -s 10 -Q | grep RESULT

echo "== one node alone, 8 clients, 20000 chats each, window 8"
taskset -c 0 deno run --allow-net servers/crc_node.ts --id 99 --port $((BASE + 50)) --log-level warning &
PIDS+=($!)
wait_port $((BASE + 50))
taskset -c 1 "$GEN" -a $((BASE + 50)):8 -b 7000 -m 20000 -w 8 -P half -L 64 -t 60 -s 10 -Q | grep RESULT
