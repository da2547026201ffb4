# Shared by the throwaway servers of the tests (tests/scripts/kdc.sh, tests/inventory/slapd.sh):
# a free loopback port, waiting for a background server to be ready, stopping it by PID.
# Source it: . "$(dirname "$0")/background.sh" (bash).

# A port free on 127.0.0.1 for both TCP and UDP (the KDC listens on both).
free_port() {
  python3 - <<'PY'
import socket
for _ in range(50):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        u.close(); t.close()
PY
}

# wait_ready PIDFILE NAME LOG CHECK...: runs CHECK every 0.1 s, at most 100 times, until it
# succeeds (0) or the process in PIDFILE has died; otherwise says so on stderr (1).
wait_ready() {
  local pidfile=$1 name=$2 log=$3
  shift 3
  for _ in $(seq 100); do
    "$@" && return 0
    kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not start (see $log)" >&2
  return 1
}

# stop_pidfile PIDFILE: SIGTERM, up to 5 s to exit, then SIGKILL; removes PIDFILE.
stop_pidfile() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}
