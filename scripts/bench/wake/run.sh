#!/bin/bash
# What one event-loop wake-up costs, outside rdma-target: a C epoll echo server (as tgtd
# waits) against a Node echo server, each ping-ponged N times by a C client over a unix
# stream socket; the server's user and kernel CPU per round trip from /proc/PID/stat.
# Run in the soft-RoCE VM (where rdma-target's qd1 CPU is measured):
#   bash scripts/vm/run.sh --timeout 300 -- bash scripts/bench/wake/run.sh
set -eu
src=$(cd "$(dirname "$0")" && pwd)
out=$src/../../../.cache/wake
mkdir -p "$out"
for p in client cecho; do [[ $out/$p -nt $src/$p.c ]] || gcc -O2 -o "$out/$p" "$src/$p.c"; done
N=${N:-3000}
HZ=$(getconf CLK_TCK)
one() { # NAME CMD...
  local name=$1; shift
  "$@" /tmp/echo.sock &
  local pid=$!
  sleep 2
  "$out/client" /tmp/echo.sock 200 >/dev/null
  local u0 s0 u1 s1 r
  read -r u0 s0 < <(awk '{print $14, $15}' /proc/$pid/stat)
  r=$("$out/client" /tmp/echo.sock "$N")
  read -r u1 s1 < <(awk '{print $14, $15}' /proc/$pid/stat)
  echo "$name: $r; server CPU per round trip: user $(((u1 - u0) * 1000000 / HZ / N)) us, kernel $(((s1 - s0) * 1000000 / HZ / N)) us"
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
}
# NODE_FLAGS: '|'-separated sets of node options to compare (e.g. "|--jitless|--single-threaded").
IFS='|' read -r -a flagsets <<<"${NODE_FLAGS:-}"
((${#flagsets[@]})) || flagsets=("")
for round in 1 2; do
  one "C epoll echo" "$out/cecho"
  for f in "${flagsets[@]}"; do
    # shellcheck disable=SC2086 # each set is a list of options
    one "Node net echo ${f:-(default)}" node $f "$src/necho.mjs"
  done
done
