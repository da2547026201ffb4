#!/bin/sh
# What one idle connected session costs the exporter's process (bench/README.md): starts
# winrm-sim (HTTPS, Basic auth, keep-alive 120 s) pinned to CPU 0, runs conn_cost pinned to
# CPU 1, prints its JSON line, stops the sim by its PID.
#   bench/conn-cost.sh [--build-dir build] [--connections 1000] [--threads 8] [--polls 0] [--bin conn_cost]
#                      [--wrap 'heaptrack -o /tmp/conn-cost']  (a profiler to run conn_cost under)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build="$here/../build"
connections=1000
threads=8
polls=0
bin=
wrap=
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --polls) polls=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --wrap) wrap=$2; shift 2 ;;  # another build of conn_cost (before/after comparisons)
    *) echo "usage: $0 [--build-dir DIR] [--connections N] [--threads T] [--polls K] [--bin PATH] [--wrap CMD]" >&2; exit 2 ;;
  esac
done
ulimit -n "$(ulimit -Hn)"
# One pinned benchmark at a time (bench/bench_lock.py): wait for the lock, name the holder.
lock=/tmp/winrm-exporter-bench.lock
exec 9>>"$lock"
if ! flock -n 9; then
  echo "waiting for another benchmark to finish ($(cat "$lock" 2>/dev/null); lock $lock)" >&2
  flock -w 3600 9 || { echo "another benchmark still holds $lock" >&2; exit 1; }
fi
: >"$lock"
echo "pid $$ conn-cost.sh $* since $(date +%T)" >&9
tmp=$(mktemp -d /tmp/conn-cost-XXXXXX)
sim_pid=
cleanup() {
  if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
sh "$here/../tests/scripts/gen-certs.sh" "$tmp/certs" >/dev/null 2>&1
cat > "$tmp/sim.yml" <<YML
https: {address: 127.0.0.1, port: 0, cert: $tmp/certs/server.pem, key: $tmp/certs/server.key}
keep_alive_timeout: 120s
threads: 2
max_connections: 40000
users:
  - {username: monitor, password: s3cret}
YML
taskset -c 0 "$build/sim/winrm-sim" --config "$tmp/sim.yml" --ports-file "$tmp/ports" \
  --log-level warn >"$tmp/sim.log" 2>&1 &
sim_pid=$!
i=0
while [ ! -s "$tmp/ports" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$tmp/ports" ] || { echo "winrm-sim did not start" >&2; cat "$tmp/sim.log" >&2; exit 1; }
port=$(awk '$1 == "https" {print $2}' "$tmp/ports")
: "${bin:=$build/bench/conn_cost}"
# shellcheck disable=SC2086  # $wrap is a command line
taskset -c 1 $wrap "$bin" --port "$port" --ca "$tmp/certs/ca.pem" \
  --connections "$connections" --threads "$threads" --polls "$polls"
