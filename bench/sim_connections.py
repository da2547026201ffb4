#!/usr/bin/env python3
"""winrm-sim at fleet scale: how many concurrent keep-alive TLS connections it holds, in
what memory and with how many threads.

Starts winrm-sim (HTTPS, keep_alive_timeout --keep-alive), opens --connections TLS connections from
--workers client processes (each connection does one handshake and one authenticated
request, then stays open and idle, as an exporter's connection between two polls), and
samples the simulator's RSS, threads and open descriptors from /proc once all are open and
again after --hold seconds. Then a fresh connection must still be served, and every worker
checks that its connections are still open (the server did not drop them). Bounded: every
socket has a timeout and the whole run a deadline; every process started is stopped.

  bench/sim_connections.py --build build [--connections 20000] [--workers 4] [--hold 20]
"""
import argparse
import base64
import os
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from scale import stop, wait_ports_file  # noqa: E402  (bench/scale.py: one copy of each)


def request_bytes(host):
    auth = base64.b64encode(b"monitor:s3cret").decode()
    return (f"POST /wsman HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\n"
            "Content-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: 0\r\n\r\n").encode()


def read_reply(sock):
    """Reads one response head (the empty authenticated POST has no body); returns the status."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return int(data.split(b" ", 2)[1])


def worker(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.create_default_context(cafile=args.ca)
    conns = []
    for i in range(args.count):
        host = f"host{args.index:02d}-{i:05d}.sim.test"
        raw = socket.create_connection(("127.0.0.1", args.port), timeout=30)
        s = ctx.wrap_socket(raw, server_hostname=host)
        s.sendall(request_bytes(host))
        status = read_reply(s)
        if status != 200:
            raise RuntimeError(f"status {status}")
        conns.append(s)
    print(f"ready {len(conns)}", flush=True)
    sys.stdin.readline()  # the parent says when to check and stop
    # Still open? A non-blocking peek sees EOF (b"") on a connection the server closed.
    alive = 0
    for s in conns:
        s.setblocking(False)
        try:
            s.recv(1)
        except ssl.SSLWantReadError:
            alive += 1
        except (BlockingIOError, ssl.SSLError, OSError):
            pass
    print(f"alive {alive}", flush=True)
    for s in conns:
        s.close()


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return int(out["VmRSS"].split()[0]), int(out["VmHWM"].split()[0]), int(out["Threads"]), fds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--connections", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--hold", type=float, default=20.0, help="seconds to hold before the second sample")
    # Longer than opening all connections takes on a loaded 2-core machine (several minutes),
    # so the first ones are still open when the last one is.
    ap.add_argument("--keep-alive", default="1800s", help="the simulator's keep_alive_timeout")
    ap.add_argument("--deadline", type=float, default=1500.0, help="whole-run limit in seconds")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--ca", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--index", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return 0

    sim_bin = os.path.join(args.build, "sim", "winrm-sim")
    start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="sim-connections-")
    sim = None
    workers = []
    try:
        subprocess.run(["sh", os.path.join(SRC, "tests", "scripts", "gen-certs.sh"), tmp],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cfg = os.path.join(tmp, "sim.yaml")
        with open(cfg, "w") as f:
            f.write(f"""https: {{address: 127.0.0.1, port: 0, cert: {tmp}/server.pem, key: {tmp}/server.key}}
keep_alive_timeout: {args.keep_alive}
max_connections: {args.connections + 100}
users:
  - {{username: monitor, password: s3cret}}
""")
        ports_file = os.path.join(tmp, "ports")
        sim = subprocess.Popen([sim_bin, "--config", cfg, "--ports-file", ports_file, "--log-level", "warn"])
        port = wait_ports_file(sim, ports_file)
        base = proc_status(sim.pid)
        per = [args.connections // args.workers + (1 if i < args.connections % args.workers else 0)
               for i in range(args.workers)]
        t_open = time.monotonic()
        for i, n in enumerate(per):
            workers.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--worker", "--port", str(port), "--ca",
                 os.path.join(tmp, "ca.pem"), "--count", str(n), "--index", str(i)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        opened = 0
        for w in workers:
            line = w.stdout.readline()
            if not line.startswith("ready"):
                raise RuntimeError(f"a client worker failed: {line!r}")
            opened += int(line.split()[1])
        t_opened = time.monotonic() - t_open
        first = proc_status(sim.pid)
        time.sleep(args.hold)
        second = proc_status(sim.pid)
        # A fresh connection is served while all the others are held.
        ctx = ssl.create_default_context(cafile=os.path.join(tmp, "ca.pem"))
        t0 = time.monotonic()
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30),
                             server_hostname="fresh.sim.test") as s:
            s.sendall(request_bytes("fresh.sim.test"))
            fresh_status = read_reply(s)
        fresh_ms = (time.monotonic() - t0) * 1000
        alive = 0
        for w in workers:
            w.stdin.write("check\n")
            w.stdin.flush()
            line = w.stdout.readline()
            alive += int(line.split()[1]) if line.startswith("alive") else 0
        for w in workers:
            w.stdin.close()
            w.wait(timeout=60)
        if time.monotonic() - start > args.deadline:
            raise RuntimeError("over the deadline")
        rss_per_conn = (second[0] - base[0]) * 1024 / max(1, opened)
        print("== winrm-sim connection hold summary")
        print(f"  connections opened (TLS + one request each) {opened} in {t_opened:.1f} s by {args.workers} client processes")
        print(f"  still open after holding {args.hold:.0f} s         {alive}")
        print(f"  sim RSS idle / all open / after hold      {base[0] / 1024:.1f} / {first[0] / 1024:.1f} / {second[0] / 1024:.1f} MiB (peak {second[1] / 1024:.1f} MiB)")
        print(f"  sim RSS per held connection               {rss_per_conn / 1024:.2f} KiB")
        print(f"  sim threads idle / all open               {base[2]} / {second[2]}")
        print(f"  sim open fds all open                     {second[3]}")
        print(f"  fresh connection while held: status {fresh_status}, {fresh_ms:.0f} ms (handshake + request)")
        ok = opened == args.connections and alive == opened and fresh_status == 200
        print(f"  result                                    {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
        stop(sim)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
