#!/usr/bin/env python3
"""sd_notify protocol test: the exporter as systemd's Type=notify + WatchdogSec sees it.

The test owns an AF_UNIX datagram socket (like /run/systemd/notify, with
SO_PASSCRED so every datagram's sender PID is checked: the unit says
NotifyAccess=main), starts winrm-sim (HTTPS, Basic) and the exporter with
NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID set, and checks:
  1. READY=1 arrives, and right after it /metrics is served (the listener is
     bound before READY=1) and /-/ready answers 200;
  2. WATCHDOG=1 keeps arriving for longer than the stall grace (longest timeout + 5 s),
     also while no poll is due, and /-/healthy answers 200;
  3. SIGHUP gives RELOADING=1 and then READY=1;
  4. SIGTERM gives STOPPING=1 and exit status 0.
Then a second exporter whose polls hang after the first few (the test hook
WINRM_EXPORTER_TEST_STALL_AFTER_POLLS, as a poll stuck past its deadline would):
  5. WATCHDOG=1 arrives at first, then stops, and /-/healthy answers 503;
  6. SIGTERM still gives STOPPING=1 and exit status 0.
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


def write_exporter_config(tmp, sim_port, interval="5s", timeout="3s"):
    password_file = os.path.join(tmp, "password")
    with open(password_file, "w") as f:
        f.write("s3cret\n")
    os.chmod(password_file, 0o600)
    path = os.path.join(tmp, f"exporter-{interval}.yml")
    with open(path, "w") as f:
        f.write(f"""global:
  interval: {interval}
  timeout: {timeout}
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

            # Longer than the stall grace (timeout 3 s + 5 s): an idle heap between rounds
            # must not stop the pings.
            times = [time.monotonic()]
            while times[-1] - times[0] < 11:
                listener.wait_for("WATCHDOG", "1", exporter, timeout=WATCHDOG_USEC / 1e6 + 2)
                times.append(time.monotonic())
            gaps = [round(b - a, 2) for a, b in zip(times[1:], times[2:])]
            print(f"{len(times) - 1} x WATCHDOG=1 in 11s (largest gap {max(gaps)}s, "
                  f"WATCHDOG_USEC={WATCHDOG_USEC})")
            status, body = http_get(base + "/-/healthy")
            if status != 200:
                raise Failure(f"/-/healthy answered {status} while polls run: {body}")

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
            exporter = None
            stalled_run(args, tmp, sim_port)
        finally:
            stop(exporter)
            stop(sim, signal.SIGTERM)


def stalled_run(args, tmp, sim_port):
    """A scheduler whose polls hang: the pings must stop and /-/healthy turn 503."""
    config = write_exporter_config(tmp, sim_port, interval="2s", timeout="1s")
    notify_path = os.path.join(tmp, "notify-stalled")
    listener = NotifyListener(notify_path)
    web_port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC=str(WATCHDOG_USEC),
               WINRM_EXPORTER_TEST_STALL_AFTER_POLLS="4")
    exporter = subprocess.Popen(
        ["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"', args.exporter,
         f"--config.file={config}", f"--web.listen-address=127.0.0.1:{web_port}"],
        env=env)
    base = f"http://127.0.0.1:{web_port}"
    try:
        listener.wait_for("READY", "1", exporter)
        listener.wait_for("WATCHDOG", "1", exporter, timeout=WATCHDOG_USEC / 1e6 + 2)
        print("stalled run: READY=1 and a first WATCHDOG=1")
        # Grace: timeout 1 s + 5 s after the last poll start; bounded at 30 s.
        status = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, _ = http_get(base + "/-/healthy")
            if status == 503:
                break
            if status != 200:
                raise Failure(f"/-/healthy answered {status}")
            time.sleep(0.2)
        if status != 503:
            raise Failure("/-/healthy still 200 30s after the polls hung")
        unhealthy_at = time.monotonic()
        print(f"stalled run: /-/healthy 503 after {unhealthy_at - listener.log[0][0]:.1f}s")
        # Pings already in flight may arrive for one period; none after that.
        quiet_from = unhealthy_at + WATCHDOG_USEC / 1e6
        while time.monotonic() < quiet_from + 3 * WATCHDOG_USEC / 1e6:
            got = listener.receive(0.2)
            if got and got[1].get("WATCHDOG") == "1" and time.monotonic() > quiet_from:
                raise Failure("WATCHDOG=1 still sent while the scheduler is stalled")
        status, _ = http_get(base + "/-/healthy")
        if status != 503:
            raise Failure(f"/-/healthy answered {status} again while stalled")
        print(f"stalled run: no WATCHDOG=1 for {3 * WATCHDOG_USEC / 1e6:.0f}s, "
              "/-/healthy still 503")
        os.kill(exporter.pid, signal.SIGTERM)
        listener.wait_for("STOPPING", "1", exporter)
        try:
            code = exporter.wait(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise Failure("stalled exporter did not exit within 20s of SIGTERM")
        if code != 0:
            raise Failure(f"stalled exporter exited with {code} after SIGTERM")
        print("stalled run: SIGTERM: STOPPING=1, exit 0")
    finally:
        stop(exporter)


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
