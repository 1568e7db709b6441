#!/usr/bin/env bash
# CRC network load test with the shared generator (../shared/bench/crc_load.c), issue 14.
# Node processes on CPU 0, the generator on CPU 1 with -Q; 64-byte chats. Scenarios:
#   tree:    the eleven-node tree of tests/scenarios/03_eleven_servers.json, 8 clients on
#            servers 1,1,2,3,7,6,5,11, client i sends 2000 chats to client i+4 (-P half), window 8.
#            Targets: conv_s (every client knows every other one) < 0.020, rate >= 50,000 chats/s.
#   longest: the same tree, 4 clients on each end of the longest path (S8 and S11, seven hops
#            apart), window 8; then the same clients at a fixed 100 chats/s (latency).
#   one:     one node alone with 8 clients, 20000 chats each, window 8. Target: rate >= 280,000.
# Each scenario runs once unmeasured on fresh nodes (the JIT's warm-up: its RESULT is printed as
# "cold"), then RUNS times (default 3) with a pause between runs, so a run's registrations do not
# meet the previous run's disconnects; then one "MEDIAN" line per scenario. Each measured run's line
# ends with node_cpu_us: the CPU time of all node processes per delivered chat (setup and teardown
# included), steadier than rate on a machine that other jobs share.
# Loopback only; every run is bounded (-t, -s) and stops by itself.
#
#   bash bench/crc_load.sh [BASE_PORT]        SCENARIOS="tree one" RUNS=5 for fewer / more
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:-23000}
SHARED=${SHARED:-../shared}
GEN=${CRC_LOAD:-/tmp/parley-crc_load}
SCENARIOS=${SCENARIOS:-tree longest one}
RUNS=${RUNS:-3}
[ -x "$GEN" ] || gcc -O2 -o "$GEN" "$SHARED/bench/crc_load.c"

# node parent (0 = root): the eleven-server tree of tests/scenarios/03_eleven_servers.json
PARENTS=(0 0 1 1 2 2 3 3 4 5 6 10)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
node() { taskset -c 0 deno run --allow-net servers/crc_node.ts --log-level error "$@" & PIDS+=($!); }
P() { echo $((BASE + $1)); }
b=5000
gen() { b=$((b + 1000)); taskset -c 1 "$GEN" -b "$b" -L 64 -t 60 -s 10 -Q "$@" | grep RESULT; }
field() { grep -o " $1=[^ ]*" | cut -d= -f2; }
# CPU time of every node process so far, ns (all threads: /proc/PID/task/*/schedstat)
node_ns() {
  local t=0 a _ f
  for f in $(printf "/proc/%s/task/*/schedstat " "${PIDS[@]}"); do
    [ -r "$f" ] && read -r a _ <"$f" && t=$((t + a))
  done
  echo "$t"
}
# gen with node_cpu_us= (node CPU per delivered chat, setup and teardown included) on its line
measured() {
  local n0 line n1
  n0=$(node_ns)
  line=$(gen "$@")
  sleep 0.3 # the disconnects are handled (and counted) too
  n1=$(node_ns)
  echo "$line" | awk -v ns=$((n1 - n0)) '{
    match($0, / delivered=[0-9]+/); d = substr($0, RSTART + 11, RLENGTH - 11) + 0
    printf "%s node_cpu_us=%.2f\n", $0, d ? ns / d / 1000 : -1 }'
}
median() { sort -g | awk '{v[NR] = $1} END {print NR ? v[int((NR + 1) / 2)] : "-"}'; }
# scenario NAME DESCRIPTION GENERATOR-ARGS...: a cold run, RUNS measured runs, their medians
scenario() {
  local name=$1 out="" line
  echo "== $name: $2 (cold: the first run on fresh nodes)"
  shift 2
  gen "$@" | sed 's/^RESULT/RESULT cold/'
  for _ in $(seq "$RUNS"); do
    sleep 0.2
    line=$(measured "$@")
    echo "$line"
    out+="$line"$'\n'
  done
  echo "MEDIAN $name runs=$RUNS conv_s=$(field conv_s <<<"$out" | median)" \
    "rate=$(field rate <<<"$out" | median) p50_us=$(field p50_us <<<"$out" | median)" \
    "p99_us=$(field p99_us <<<"$out" | median) node_cpu_us=$(field node_cpu_us <<<"$out" | median)" \
    "lost=$(field lost <<<"$out" | sort -g | tail -1)"
}

case " $SCENARIOS " in *" tree "* | *" longest "*)
  for n in $(seq 1 11); do
    args=(--id "$n" --name "S$n" --port "$(P "$n")")
    p=${PARENTS[$n]}
    [ "$p" -ne 0 ] && args+=(--connect-to-host 127.0.0.1 --connect-to-port "$(P "$p")")
    node "${args[@]}"
    wait_port "$(P "$n")"
  done
  sleep 0.5
esac
case " $SCENARIOS " in *" tree "*)
  scenario tree "8 clients on S1,S1,S2,S3,S7,S6,S5,S11, client i to client i+4, 2000 chats each, window 8" \
    -a "$(P 1)":2 -a "$(P 2)":1 -a "$(P 3)":1 -a "$(P 7)":1 -a "$(P 6)":1 -a "$(P 5)":1 \
    -a "$(P 11)":1 -m 2000 -w 8 -P half
esac
case " $SCENARIOS " in *" longest "*)
  scenario longest "4 clients on S8, 4 on S11, 2000 chats each across 7 hops, window 8" \
    -a "$(P 8)":4 -a "$(P 11)":4 -m 2000 -w 8 -P half
  scenario longest_latency "the same clients at a fixed 100 chats/s (latency)" \
    -a "$(P 8)":4 -a "$(P 11)":4 -m 100 -w 0 -r 100 -P half
esac
case " $SCENARIOS " in *" one "*)
  node --id 99 --port "$(P 50)"
  wait_port "$(P 50)"
  scenario one "one node alone, 8 clients, 20000 chats each, window 8" -a "$(P 50)":8 -m 20000 -w 8 -P half
esac
