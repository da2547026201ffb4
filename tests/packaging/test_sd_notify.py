#!/usr/bin/env python3
"""sd_notify protocol test: the exporter as systemd's Type=notify + WatchdogSec sees it.

The test owns an AF_UNIX datagram socket (like /run/systemd/notify, with
SO_PASSCRED so every datagram's sender PID is checked: the unit says
NotifyAccess=main), starts winrm-sim (HTTPS, Basic) and the exporter with
NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID set, and checks:
  1. READY=1 arrives, and right after it /metrics is served (the listener is
     bound before READY=1) and /-/ready answers 200;
  2. WATCHDOG=1 keeps arriving (at least 3);
  3. SIGHUP gives RELOADING=1 and then READY=1;
  4. SIGTERM gives STOPPING=1 and exit status 0.
Every wait is bounded; both processes are stopped by PID on every path.
"""
import argparse
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

WATCHDOG_USEC = 2_000_000
STEP_TIMEOUT = 20.0  # seconds for any one expected notification


class Failure(Exception):
    pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError as e:
        return None, str(e)


class NotifyListener:
    """The service manager's end of the protocol."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.log = []  # (monotonic time, sender pid, {key: value})

    def receive(self, timeout):
        """One datagram as a dict, or None on timeout."""
        self.sock.settimeout(max(timeout, 0.01))
        try:
            data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _, _ = struct.unpack("iII", payload[:12])
        fields = {}
        for line in data.decode("utf-8", "replace").split("\n"):
            if "=" in line:
                key, value = line.split("=", 1)
                fields[key] = value
        self.log.append((time.monotonic(), pid, fields))
        return pid, fields

    def wait_for(self, key, value, proc, timeout=STEP_TIMEOUT, seen=None):
        """Waits for a datagram with key=value from proc; other datagrams go to seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.receive(deadline - time.monotonic())
            if got is None:
                if proc.poll() is not None:
                    raise Failure(f"exporter exited ({proc.returncode}) before {key}={value}")
                continue
            pid, fields = got
            if pid != proc.pid:
                raise Failure(f"notification {fields} from pid {pid}, main pid is {proc.pid}")
            if fields.get(key) == value:
                return fields
            if seen is not None:
                seen.append(fields)
        raise Failure(f"no {key}={value} within {timeout:.0f}s; got {[f for _, _, f in self.log]}")


def stop(proc, sig=signal.SIGKILL, timeout=10.0):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def start_sim(args, tmp):
    subprocess.run(["sh", args.gen_certs, os.path.join(tmp, "certs")], check=True, timeout=60)
    sim_config = os.path.join(tmp, "sim.yml")
    with open(sim_config, "w") as f:
        f.write(f"""https: {{address: 127.0.0.1, port: 0, cert: {tmp}/certs/server.pem, key: {tmp}/certs/server.key}}
users:
  - {{username: monitor, password: s3cret}}
""")
    ports_file = os.path.join(tmp, "sim.ports")
    proc = subprocess.Popen([args.sim, "--config", sim_config, "--ports-file", ports_file,
                             "--log-level", "warn"])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failure(f"winrm-sim exited with {proc.returncode}")
        if os.path.exists(ports_file):
            for line in open(ports_file):
                kind, _, port = line.strip().partition(" ")
                if kind == "https":
                    return proc, int(port)
        time.sleep(0.05)
    stop(proc)
    raise Failure("winrm-sim wrote no https port within 15s")


def write_exporter_config(tmp, sim_port):
    password_file = os.path.join(tmp, "password")
    with open(password_file, "w") as f:
        f.write("s3cret\n")
    os.chmod(password_file, 0o600)
    path = os.path.join(tmp, "exporter.yml")
    with open(path, "w") as f:
        f.write(f"""global:
  interval: 5s
  timeout: 3s
  scheme: https
  port: {sim_port}
  tls_ca_file: {tmp}/certs/ca.pem
credentials:
  sim:
    auth: basic
    username: monitor
    password_file: {password_file}
targets:
  - name: h00001.sim.test
    connect_address: 127.0.0.1
    credential: sim
  - name: h00002.sim.test
    connect_address: 127.0.0.1
    credential: sim
""")
    return path


def run(args):
    for binary in (args.exporter, args.sim):
        if not os.access(binary, os.X_OK):
            raise Failure(f"{binary} is not built")
    with tempfile.TemporaryDirectory(prefix="sd-notify-") as tmp:
        sim = exporter = None
        try:
            sim, sim_port = start_sim(args, tmp)
            config = write_exporter_config(tmp, sim_port)
            notify_path = os.path.join(tmp, "notify")
            listener = NotifyListener(notify_path)
            web_port = free_port()
            env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC=str(WATCHDOG_USEC))
            # systemd sets WATCHDOG_PID to the main PID: $$ of the shell that execs.
            exporter = subprocess.Popen(
                ["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"', args.exporter,
                 f"--config.file={config}", f"--web.listen-address=127.0.0.1:{web_port}"],
                env=env)
            base = f"http://127.0.0.1:{web_port}"

            listener.wait_for("READY", "1", exporter)
            print("READY=1 received")
            # READY=1 promises a bound listener: the first request must succeed.
            status, body = http_get(base + "/metrics")
            if status != 200 or "winrm_exporter_build_info" not in body:
                raise Failure(f"/metrics right after READY=1: status {status}: {body[:200]}")
            status = None
            for _ in range(100):  # /-/ready may wait for the first polls: bounded, 10s
                status, _ = http_get(base + "/-/ready")
                if status == 200:
                    break
                time.sleep(0.1)
            if status != 200:
                raise Failure(f"/-/ready answered {status} after READY=1")
            print("/metrics and /-/ready served after READY=1")

            times = []
            for _ in range(3):
                listener.wait_for("WATCHDOG", "1", exporter, timeout=2 * WATCHDOG_USEC / 1e6 + 5)
                times.append(time.monotonic())
            gaps = [round(b - a, 2) for a, b in zip(times, times[1:])]
            print(f"3 x WATCHDOG=1 received (gaps {gaps}s, WATCHDOG_USEC={WATCHDOG_USEC})")

            os.kill(exporter.pid, signal.SIGHUP)
            reloading = listener.wait_for("RELOADING", "1", exporter)
            listener.wait_for("READY", "1", exporter)
            print(f"SIGHUP: RELOADING=1 then READY=1 (MONOTONIC_USEC "
                  f"{'present' if 'MONOTONIC_USEC' in reloading else 'absent'})")
            status, _ = http_get(base + "/metrics")
            if status != 200:
                raise Failure(f"/metrics after reload: status {status}")

            os.kill(exporter.pid, signal.SIGTERM)
            listener.wait_for("STOPPING", "1", exporter)
            try:
                code = exporter.wait(timeout=STEP_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise Failure("exporter did not exit within 20s of SIGTERM")
            if code != 0:
                raise Failure(f"exporter exited with {code} after SIGTERM")
            print("SIGTERM: STOPPING=1, exit 0")
        finally:
            stop(exporter)
            stop(sim, signal.SIGTERM)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--exporter", required=True)
    parser.add_argument("--sim", required=True)
    parser.add_argument("--gen-certs", required=True)
    args = parser.parse_args()
    try:
        run(args)
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
