#!/usr/bin/env python3
"""winrm-sim under a burst of new TLS connections: how long a connect and a handshake wait
when thousands of hosts connect at once (an exporter starting with a large fleet).

Starts winrm-sim (HTTPS, Basic, keep_alive_timeout 1800 s, --loop-threads event loops) pinned to
--sim-cpu, then opens --connections connections with handshake_burst (libcurl multi, pinned to
--client-cpu; a Python client could not open more than ~60 a second), --concurrency of them in
flight at once. Each one: TCP connect, TLS handshake (SNI = its own host name), one
authenticated request; then it stays open until the end, as an exporter's keep-alive
connection does. Connect and handshake have the exporter's connect timeout (--connect-timeout,
5 s: slower is what the exporter counts as a "TLS handshake" timeout). Reports the wall to open all, the connect / handshake / request time
percentiles, the timeouts, the simulator's CPU, and the kernel's TcpExt counters
(ListenOverflows, ListenDrops, TCPSynRetrans: accept-queue overflows make the client resend its
SYN after 1 s, 3 s, 7 s ...). The counters are the network namespace's: other processes add to
them. Every process started is stopped; every wait is bounded.

  cmake --build build --target winrm-sim handshake_burst
  bench/sim_handshakes.py --build build [--connections 10000] [--concurrency 1000]
                          [--loop-threads 1] [--key rsa|ec]
"""
import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# bench/scale.py's helpers: one copy of the /proc readers, pinning, the ports file and stopping.
from scale import Proc, autogroup_nice, pinned, set_autogroup_nice, stop, wait_ports_file  # noqa: E402

import bench_lock  # bench/bench_lock.py: one pinned benchmark at a time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)


def netstat():
    """TcpExt counters of this network namespace."""
    lines = open("/proc/net/netstat").read().splitlines()
    out = {}
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            out.update(zip(names.split()[1:], map(int, values.split()[1:])))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=1000, help="connections being opened at once")
    ap.add_argument("--loop-threads", type=int, default=1, help="winrm-sim loop_threads")
    ap.add_argument("--threads", type=int, default=2, help="winrm-sim handler threads")
    ap.add_argument("--key", choices=("rsa", "ec"), default="rsa",
                    help="server key: RSA 2048 (tests/scripts/gen-certs.sh default) or ECDSA P-256")
    ap.add_argument("--sim-cpu", default="0", help="taskset CPU list for winrm-sim ('' = unpinned)")
    ap.add_argument("--client-cpu", default="1", help="CPU list for this client ('' = unpinned)")
    ap.add_argument("--connect-timeout", type=float, default=5.0, help="per step (the exporter's is 5 s)")
    ap.add_argument("--deadline", type=float, default=600.0, help="whole-run limit in seconds")
    ap.add_argument("--autogroup-nice", type=int, default=None,
                    help="write this nice value to /proc/self/autogroup first (start with setsid), as "
                         "bench/scale.py --autogroup-nice")
    args = ap.parse_args()
    bench_lock.hold(" ".join(sys.argv))
    if args.autogroup_nice is not None:
        set_autogroup_nice(args.autogroup_nice)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.connections + 256 > hard:
        sys.exit(f"--connections {args.connections} needs more than the fd limit {hard}")
    sim_bin = os.path.join(args.build, "sim", "winrm-sim")
    tmp = tempfile.mkdtemp(prefix="sim-handshakes-")
    sim = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        subprocess.run(["sh", os.path.join(SRC, "tests", "scripts", "gen-certs.sh"), tmp], check=True,
                       timeout=60, env=dict(os.environ, GEN_CERTS_KEY=args.key),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cfg = os.path.join(tmp, "sim.yaml")
        with open(cfg, "w") as f:
            f.write(f"""https: {{address: 127.0.0.1, port: 0, cert: {tmp}/server.pem, key: {tmp}/server.key}}
keep_alive_timeout: 1800s
threads: {args.threads}
loop_threads: {args.loop_threads}
max_connections: {args.connections + 100}
users:
  - {{username: monitor, password: s3cret}}
""")
        ports_file = os.path.join(tmp, "ports")
        cmd = [sim_bin, "--config", cfg, "--ports-file", ports_file, "--log-level", "warn"]
        sim = subprocess.Popen(pinned(args.sim_cpu, cmd))
        port = wait_ports_file(sim, ports_file)
        sim_proc = Proc(sim.pid)
        before, sim_cpu0, sim_wait0 = netstat(), sim_proc.cpu_seconds(), sim_proc.run_delay_seconds()
        client = [os.path.join(args.build, "bench", "handshake_burst"), "--port", str(port), "--ca",
                  os.path.join(tmp, "ca.pem"), "--connections", str(args.connections), "--concurrency",
                  str(args.concurrency), "--connect-timeout-ms", str(int(1000 * args.connect_timeout))]
        out = subprocess.run(pinned(args.client_cpu, client), check=True, capture_output=True, text=True,
                             timeout=args.deadline).stdout
        result = json.loads(out)
        after, sim_cpu = netstat(), sim_proc.cpu_seconds() - sim_cpu0
        sim_wait = sim_proc.run_delay_seconds() - sim_wait0
        threads = len(os.listdir(f"/proc/{sim.pid}/task"))
        delta = {k: after.get(k, 0) - before.get(k, 0)
                 for k in ("ListenOverflows", "ListenDrops", "TCPSynRetrans", "SyncookiesSent")}
        opened, wall = result["ok"], result["wall"]
        print(f"== winrm-sim burst of new TLS connections: {args.connections} connections, {args.concurrency} "
              f"at once, loop_threads {args.loop_threads}, threads {args.threads}, key {args.key}, sim CPU "
              f"{args.sim_cpu or 'unpinned'}, client CPU {args.client_cpu or 'unpinned'}")
        print(f"  opened and served                {opened} / {args.connections} in {wall:.1f} s "
              f"({opened / wall:.0f}/s); client CPU {result['client_cpu']:.2f} s")
        for step in ("connect", "handshake", "total"):
            p50, p99, top = result[step + "_ms"]
            print(f"  {step:<10} ms p50 / p99 / max  {p50:.1f} / {p99:.1f} / {top:.1f}")
        print(f"  failures                         {result['failures'] or 'none'}")
        print(f"  winrm-sim CPU                    {sim_cpu:.2f} s ({1000 * sim_cpu / max(1, opened):.2f} ms per "
              f"connection), threads {threads}; waiting for a CPU (run queue) {sim_wait:.2f} s; load "
              f"average {os.getloadavg()[0]:.1f}, autogroup {autogroup_nice()}")
        print(f"  kernel TcpExt deltas             " + ", ".join(f"{k} {v}" for k, v in delta.items()))
        return 0 if opened == args.connections else 1
    finally:
        stop(sim)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
