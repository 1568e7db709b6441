#!/usr/bin/env bash
# The floor under the CRC tree's figures (issue 14): what one relay hop costs a Deno process
# against a C one, with nothing else done per message. N relays in a chain on CPU 0 (each
# accepted connection piped to a new one to the next relay, the last echoes); a C client on
# CPU 1 keeps W 77-byte messages in flight on each of K connections. Prints messages/s and the
# relays' CPU per hop (all threads, /proc/PID/task/*/schedstat). Loopback only, bounded.
#
#   bash bench/relay_floor.sh [BASE_PORT]        N=11 K=8 DURATION=3 WINDOWS="1 2 8"
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:-24500}
N=${N:-11} K=${K:-8} DURATION=${DURATION:-3} WINDOWS=${WINDOWS:-1 2 8}
BIN=${TMPDIR:-/tmp}/parley-relay-floor
mkdir -p "$BIN"
gcc -O2 -o "$BIN/client" bench/relay_floor/client.c
gcc -O2 -o "$BIN/relay" bench/relay_floor/relay.c
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
cpu_ns() {
  local t=0 a _ f
  for f in $(printf "/proc/%s/task/*/schedstat " "$@"); do [ -r "$f" ] && read -r a _ <"$f" && t=$((t + a)); done
  echo "$t"
}
port=$BASE
for kind in deno c; do
  for w in $WINDOWS; do
    chain=()
    port=$((port + N + 1))
    for i in $(seq "$N" -1 1); do
      next=$((port + i + 1)); [ "$i" -eq "$N" ] && next=0
      if [ $kind = deno ]; then
        taskset -c 0 deno run --allow-net bench/relay_floor/relay.ts $((port + i)) $next &
      else
        taskset -c 0 "$BIN/relay" $((port + i)) $next &
      fi
      chain+=($!); PIDS+=($!)
      wait_port $((port + i))
    done
    sleep 0.5
    n0=$(cpu_ns "${chain[@]}")
    out=$(taskset -c 1 "$BIN/client" $((port + 1)) "$K" "$w" "$DURATION")
    n1=$(cpu_ns "${chain[@]}")
    rate=${out#msgs/s=}
    hops=$((2 * N - 1))
    echo "RESULT relay=$kind relays=$N conns=$K window=$w msgs_per_s=$rate hops_per_msg=$hops" \
      "cpu_us_per_hop=$(awk -v ns=$((n1 - n0)) -v m="$rate" -v s="$DURATION" -v h=$hops \
        'BEGIN { printf "%.2f", (m > 0) ? ns / (m * s * h) / 1000 : -1 }')"
    kill "${chain[@]}" 2>/dev/null || true
    wait "${chain[@]}" 2>/dev/null || true
  done
done
