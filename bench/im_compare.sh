#!/usr/bin/env bash
# IM fan-out beside the channel server's, in one run (issue 14: IM deliveries/s of one
# 50-member conversation at least 0.8x the channel server's 50x200 figure).
#
#   bash bench/im_compare.sh                       3 interleaved rounds, medians and IM/channel
#   flock /tmp/parley-bench.lock bash bench/im_compare.sh     (how it is meant to be run)
#
# Each round starts each server fresh and drives it once:
#   channel: taskset -c 0 deno run --allow-net servers/channel.ts PORT
#            taskset -c 1 fanout -P fixed200 -n 50 -m 200 -w 8 -Q      (../shared/bench/fanout.c)
#   im:      taskset -c 0 deno run --allow-net servers/im.ts --port PORT
#            taskset -c 1 im_fanout -n 50 -m 200 -w 8 -Q               (bench/im_fanout.c)
# Both generators count deliveries to the other N-1 members per second, check every one
# (sender, sequence, check value, duplicates) and report lost ones; the IM generator also
# checks the copy each sender gets of its own message (SPEC 2.3) but does not count it.
# The order alternates per round (channel first, then IM first, ...). srvCPU is the server's
# CPU seconds for the run; genCPU the IM generator's own (fanout does not report it): near the
# run's length it would mean the generator, not the server, sets the rate.
#
# Env knobs: ROUNDS=3 N=50 M=200 W=8 TMAX=60 (per generator run) QA=1 (-Q)
#            CHANNEL_PORT=17261 IM_PORT=17262 SHARED=../shared (where bench/fanout.c is)
#            IM_BASE=DIR: also run servers/im.ts from checkout DIR (e.g. a worktree at an older
#            commit) as "im_base" in every round, for a before/after in the same run.
#            OUT=DIR (default: a new temporary directory) keeps the logs.
# Loopback only; every run is bounded (-t, -s, timeout) and every server is stopped by its PID.
set -u
cd "$(dirname "$0")/.."
PROJECT=$PWD
SHARED=${SHARED:-../shared}
ROUNDS=${ROUNDS:-3}
N=${N:-50}
M=${M:-200}
W=${W:-8}
TMAX=${TMAX:-60}
QA=${QA:-1}
QFLAG=; [ "$QA" = 1 ] && QFLAG=-Q
CHANNEL_PORT=${CHANNEL_PORT:-17261}
IM_PORT=${IM_PORT:-17262}
IM_BASE=${IM_BASE:-}
OUT=${OUT:-$(mktemp -d --tmpdir parley-im-compare-XXXXXX)}
mkdir -p "$OUT/bin"
gcc -O2 -Wall -o "$OUT/bin/fanout" "$SHARED/bench/fanout.c" || exit 2
gcc -O2 -Wall -o "$OUT/bin/im_fanout" bench/im_fanout.c || exit 2
ulimit -n 4096 2>/dev/null || true

SERVER_PID=
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill "$SERVER_PID" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

port_of() { case $1 in channel) echo "$CHANNEL_PORT" ;; *) echo "$IM_PORT" ;; esac; }

start_server() { # $1 = channel | im | im_base
  local port; port=$(port_of "$1")
  if ss -Hltn "sport = :$port" | grep -q LISTEN; then
    echo "port $port is already in use" >&2
    return 1
  fi
  local dir=$PROJECT server=servers/im.ts args=(--port "$port")
  [ "$1" = im_base ] && dir=$IM_BASE
  [ "$1" = channel ] && server=servers/channel.ts args=("$port")
  (cd "$dir" && exec taskset -c 0 deno run --allow-net "$server" "${args[@]}") \
    >"$OUT/$1.server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do # up to 10 s for the listener
    if ss -Hltn "sport = :$port" | grep -q LISTEN; then sleep 0.2; return 0; fi
    sleep 0.1
  done
  echo "$1 server did not start (see $OUT/$1.server.log)" >&2
  stop_server
  return 1
}

cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }
kv() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k {print $2}'; }

RESULTS=$OUT/results
: >"$RESULTS"
run_one() { # $1 = channel | im | im_base, $2 = round
  local line cpu port; port=$(port_of "$1")
  start_server "$1" || return 1
  if [ "$1" = channel ]; then
    line=$(timeout $((TMAX + 15)) taskset -c 1 "$OUT/bin/fanout" -h 127.0.0.1 -p "$port" \
      -P fixed200 -n "$N" -m "$M" -w "$W" $QFLAG -t "$TMAX" -s 10 2>"$OUT/$1.$2.gen.log" | grep '^RESULT')
  else
    line=$(timeout $((TMAX + 15)) taskset -c 1 "$OUT/bin/im_fanout" -h 127.0.0.1 -p "$port" \
      -n "$N" -m "$M" -w "$W" $QFLAG -t "$TMAX" -s 10 2>"$OUT/$1.$2.gen.log" | grep '^RESULT')
  fi
  cpu=$(cpu_s "$SERVER_PID")
  stop_server
  [ -n "$line" ] || line="RESULT rate=0 p50_us=0 p99_us=0 lost=? stop=no_result"
  echo "server=$1 round=$2 srv_cpu_s=$cpu ${line#RESULT }" | tee -a "$RESULTS" >&2
}

KINDS="channel im"
[ -n "$IM_BASE" ] && KINDS="channel im_base im"
for round in $(seq "$ROUNDS"); do
  order=$KINDS
  [ $((round % 2)) = 0 ] && order=$(tr ' ' '\n' <<<"$KINDS" | tac | tr '\n' ' ')
  for kind in $order; do run_one "$kind" "$round"; done
done

median() { sort -n | awk '{v[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
field() { # $1 = server, $2 = key: one value per round
  grep "^server=$1 " "$RESULTS" | while read -r l; do kv "$2" "$l"; done
}

echo
echo "== IM vs channel fan-out ($(date -u +%FT%TZ), $(nproc) cores; server CPU 0, generator CPU 1;" \
  "$N clients x $M msgs, window $W, quickack=$QA; medians of $ROUNDS rounds) =="
printf "%-8s %12s %9s %9s %9s %9s %7s %s\n" server "deliv/s" "p50_ms" "p99_ms" "srvCPU" "genCPU" lost "rates"
CHANNEL_RATE=0
for kind in $KINDS; do
  rate=$(field "$kind" rate | median)
  [ "$kind" = channel ] && CHANNEL_RATE=$rate
  lost=$(field "$kind" lost | awk '{s += $1} END {print s + 0}')
  awk -v k="$kind" -v r="$rate" -v p50="$(field "$kind" p50_us | median)" \
    -v p99="$(field "$kind" p99_us | median)" -v cpu="$(field "$kind" srv_cpu_s | median)" \
    -v gen="$(field "$kind" gen_cpu_s | median)" -v lost="$lost" -v all="$(field "$kind" rate | tr '\n' ' ')" \
    'BEGIN {printf "%-8s %12.0f %9.2f %9.2f %9.2f %9s %7s %s\n", k, r, p50 / 1000, p99 / 1000, cpu, k == "channel" ? "-" : gen, lost, all}'
done
for kind in $KINDS; do
  [ "$kind" = channel ] && continue
  awk -v k="$kind" -v r="$(field "$kind" rate | median)" -v c="$CHANNEL_RATE" \
    'BEGIN {printf "ratio %s/channel = %s (target >= 0.8)\n", k, c > 0 ? sprintf("%.3f", r / c) : "-"}'
done
echo "logs: $OUT"
