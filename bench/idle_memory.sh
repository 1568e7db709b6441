#!/usr/bin/env bash
# Memory per idle registered connection of the channel server (issue 14), measured as
# ../shared/bench/compare.sh measures it: the server's RSS with N registered clients held,
# taken 3 s after the generator reports READY, minus its RSS right after it started,
# divided by N. Loopback only; bounded (the generator holds the clients HOLD seconds and
# gives up after 90 s; the server is killed by its PID at the end).
#
#   bash bench/idle_memory.sh [PORT]        N=5000 HOLD=6 RUNS=1 PROJECT=. (where servers/ is)
#
# Prints one line per run: `IDLE clients=N registered=R rss0_kb=A rss_held_kb=B kib_per_conn=K`.
# Figures (this 2-core machine, 5,000 clients): 16.7 KiB before the issue-14 changes, 12.3 after;
# see README "Memory per idle connection"; the C epoll server is 4.7, the target 4.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${1:-17443}
N=${N:-5000}
HOLD=${HOLD:-6}
RUNS=${RUNS:-1}
PROJECT=${PROJECT:-$PWD}
SHARED=${SHARED:-../shared}
FANOUT=${FANOUT:-/tmp/parley-fanout}
[ -x "$FANOUT" ] || gcc -O2 -o "$FANOUT" "$SHARED/bench/fanout.c"
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

for _ in $(seq "$RUNS"); do
  (cd "$PROJECT" && exec taskset -c 0 deno run --allow-net servers/channel.ts --port "$PORT" \
    --log-level warning) &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    ss -Hltn "sport = :$PORT" | grep -q LISTEN && break
    sleep 0.1
  done
  sleep 0.2
  RSS0=$(rss "$SERVER")
  FIFO=$(mktemp -u --tmpdir parley-idle-XXXXXX)
  mkfifo "$FIFO"
  timeout 120 taskset -c 1 "$FANOUT" -h 127.0.0.1 -p "$PORT" -P fixed200 -n "$N" -I "$HOLD" \
    -c 1000 -t 90 >"$FIFO" 2>/dev/null &
  GEN=$!
  HELD=0
  REG=0
  while IFS= read -r line; do
    case $line in
      READY*)
        REG=$(tr ' ' '\n' <<<"$line" | awk -F= '$1=="registered"{print $2}')
        sleep 3
        HELD=$(rss "$SERVER")
        ;;
    esac
  done <"$FIFO"
  wait "$GEN" || true
  rm -f "$FIFO"
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  trap - EXIT
  awk -v n="$N" -v r="$REG" -v a="$RSS0" -v b="$HELD" 'BEGIN {
    printf "IDLE clients=%d registered=%d rss0_kb=%d rss_held_kb=%d kib_per_conn=%.2f\n", n, r, a, b, (b - a) / n
  }'
done
