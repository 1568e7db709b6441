#!/usr/bin/env bash
# Cluster load test (SPEC.md 8.2) with the shared fanout generator (../shared/bench/fanout.c),
# built with one change: `-2 PORT` sends every odd client to a second server, so the clients of one
# channel are spread over two instances. One nats-server on a free loopback port; servers and NATS
# share CPU 0, the generator has CPU 1, in every run. Each run is bounded (-t) and stops by itself;
# only loopback is used. Prints the RESULT lines and the ratio of the two fan-out rates.
#
#   bash bench/cluster_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
FANOUT=${FANOUT:-/tmp/parley-fanout2}
NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
if [ ! -x "$FANOUT" ]; then
  sed -e 's/^static int g_port = 0;/static int g_port = 0, g_port2 = 0;/' \
    -e 's/htons(g_port)/htons(g_port2 \&\& (i % 2) ? g_port2 : g_port)/' \
    -e 's/"h:p:P:n:m:w:r:t:s:I:c:R:x:C:O:vQ"/"h:p:2:P:n:m:w:r:t:s:I:c:R:x:C:O:vQ"/' \
    -e "s/        case 'p': g_port = atoi(optarg); break;/&\n        case '2': g_port2 = atoi(optarg); break;/" \
    "$SHARED/bench/fanout.c" > /tmp/parley-fanout2.c
  gcc -O2 -o "$FANOUT" /tmp/parley-fanout2.c
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NATS_PORT=$(free_port)
P1=$(free_port)
P2=$(free_port)
P0=$(free_port)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
taskset -c 0 "$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" >/dev/null 2>&1 &
PIDS+=($!)
NATS="nats://127.0.0.1:$NATS_PORT"
server() { taskset -c 0 deno run --allow-net servers/channel.ts --log-level warning "$@" & PIDS+=($!); }
server --port "$P0"
server --port "$P1" --nats "$NATS"
server --port "$P2" --nats "$NATS"
for port in "$P0" "$P1" "$P2"; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
sleep 1.5 # the two cluster instances find each other (heartbeats every second)

rate() { sed -n 's/.* rate=\([0-9]*\) .*/\1/p'; }
run() { taskset -c 1 "$FANOUT" -P fixed200 -Q -t 60 "$@" 2>/tmp/parley-fanout2.err | grep RESULT || { tail -3 /tmp/parley-fanout2.err >&2; echo "RESULT failed rate=0 "; }; }
echo "== fan-out: 50 clients x 400 messages, window 8; one instance, then two (25 + 25), alternating"
ONE=0
TWO=0
for _ in 1 2 3; do
  R1=$(run -p "$P0" -n 50 -m 400 -w 8)
  echo "one instance:  $R1"
  R2=$(run -p "$P1" -2 "$P2" -n 50 -m 400 -w 8)
  echo "two instances: $R2"
  ONE=$((ONE + $(echo "$R1" | rate)))
  TWO=$((TWO + $(echo "$R2" | rate)))
done
echo "mean deliveries/s: one instance $((ONE / 3)), two instances $((TWO / 3)), ratio $(python3 -c "print(round($TWO / $ONE, 2))")"
# Latency: the processes may use both cores (as instances on different machines would).
for pid in "${PIDS[@]}"; do taskset -a -p -c 0,1 "$pid" >/dev/null 2>&1 || true; done
run() { "$FANOUT" -P fixed200 -Q -t 60 "$@" 2>/tmp/parley-fanout2.err | grep RESULT || { tail -3 /tmp/parley-fanout2.err >&2; echo "RESULT failed rate=0 "; }; }
echo "== latency of a chat that crosses instances, 2 clients (one on each), 2,000 messages/s"
run -p "$P1" -2 "$P2" -n 2 -m 4000 -w 0 -r 2000
echo "== the same with both clients on one instance"
run -p "$P0" -n 2 -m 4000 -w 0 -r 2000
echo "== latency at 2,000 messages/s, 50 clients over two instances"
run -p "$P1" -2 "$P2" -n 50 -m 200 -w 0 -r 2000
