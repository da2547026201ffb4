#!/usr/bin/env python3
"""Scale benchmark: one exporter polling N virtual hosts served by winrm-sim.

Starts winrm-sim (HTTPS, Basic) and the exporter with a generated config of N
targets (h00001.sim.test ..., all connecting to 127.0.0.1, interval 60s,
timeout 20s), waits for a warm-up, then samples for a fixed window:
  polls completed per second   (delta of polls_started_total minus the change in polls_running)
  scheduler lag                (winrm_exporter_scheduler_lag_seconds histogram: mean, ~p50/p99)
  exporter RSS, CPU %, open fds, threads (from /proc)   and winrm-sim CPU %
  /metrics scrape duration     (median of 5 scrapes, plain and gzip) and size
Prints one row per sample and a summary with medians. Not part of `make test`.
See bench/README.md.
"""
import argparse
import gzip
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, gzip_ok=False, timeout=60):
    req = urllib.request.Request(url)
    if gzip_ok:
        req.add_header("Accept-Encoding", "gzip")
    start = time.monotonic()
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
        elapsed = time.monotonic() - start
        encoding = resp.headers.get("Content-Encoding", "")
    body = gzip.decompress(raw) if encoding == "gzip" else raw
    return elapsed, len(raw), body.decode("utf-8", "replace")


SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def parse_metrics(text):
    """{(name, labels string): value} for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = SAMPLE_RE.match(line)
        if m:
            try:
                out[(m.group(1), m.group(2) or "")] = float(m.group(3))
            except ValueError:
                pass
    return out


def total(metrics, name):
    return sum(v for (n, _), v in metrics.items() if n == name)


def histogram(metrics, name):
    buckets = {}
    for (n, labels), v in metrics.items():
        if n == name + "_bucket":
            le = re.search(r'le="([^"]*)"', labels).group(1)
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0) + v
    return total(metrics, name + "_sum"), total(metrics, name + "_count"), buckets


def quantile_from_buckets(buckets, count, q):
    if count <= 0:
        return float("nan")
    for le in sorted(buckets):
        if buckets[le] >= q * count:
            return le
    return float("inf")


class Proc:
    def __init__(self, pid):
        self.pid = pid

    def cpu_seconds(self):
        fields = open(f"/proc/{self.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def rss_mib(self):
        return int(open(f"/proc/{self.pid}/statm").read().split()[1]) * PAGE / 2**20

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def threads(self):
        for line in open(f"/proc/{self.pid}/status"):
            if line.startswith("Threads:"):
                return int(line.split()[1])
        return 0


def write_sim_config(tmp, threads, keep_alive):
    # httplib holds a sim worker thread per open connection until keep_alive_timeout:
    # the sim needs many threads and a short keep-alive, or it becomes the bottleneck.
    path = os.path.join(tmp, "sim.yml")
    with open(path, "w") as f:
        f.write(f"""https: {{address: 127.0.0.1, port: 0, cert: {tmp}/certs/server.pem, key: {tmp}/certs/server.key}}
keep_alive_timeout: {keep_alive}
threads: {threads}
users:
  - {{username: monitor, password: s3cret}}
""")
    return path


def write_exporter_config(tmp, n, sim_port, interval, timeout, concurrency):
    password_file = os.path.join(tmp, "password")
    with open(password_file, "w") as f:
        f.write("s3cret\n")
    os.chmod(password_file, 0o600)
    path = os.path.join(tmp, "exporter.yml")
    with open(path, "w") as f:
        f.write(f"""global:
  interval: {interval}
  timeout: {timeout}
  concurrency: {concurrency}
  scheme: https
  port: {sim_port}
  tls_ca_file: {tmp}/certs/ca.pem
credentials:
  sim:
    auth: basic
    username: monitor
    password_file: {password_file}
targets:
""")
        for i in range(1, n + 1):
            f.write(f"  - {{name: h{i:05d}.sim.test, connect_address: 127.0.0.1, credential: sim}}\n")
    return path


def stop(proc, sig=signal.SIGTERM):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, sig)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass


def wait_ports_file(proc, path, kind="https", timeout=30):
    """Port of winrm-sim's `kind` listener from its --ports-file (also used by side_by_side.py)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"winrm-sim exited with {proc.returncode}")
        if os.path.exists(path):
            for line in open(path):
                scheme, _, port = line.strip().partition(" ")
                if scheme == kind:
                    return int(port)
        time.sleep(0.1)
    sys.exit("winrm-sim wrote no ports file")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--targets", type=int, default=10000)
    ap.add_argument("--build-dir", default=os.path.join(src, "build"))
    ap.add_argument("--interval", default="60s")
    ap.add_argument("--timeout", default="20s")
    ap.add_argument("--concurrency", type=int, default=64, help="global targets in flight")
    ap.add_argument("--warmup", type=float, default=70, help="seconds after ready before measuring")
    ap.add_argument("--window", type=float, default=120, help="measurement window in seconds")
    ap.add_argument("--sample", type=float, default=10, help="seconds between samples")
    ap.add_argument("--sim-threads", type=int, default=1024, help="winrm-sim worker threads")
    ap.add_argument("--sim-keep-alive", default="5s", help="winrm-sim keep_alive_timeout")
    ap.add_argument("--scheduler-workers", type=int, default=0,
                    help="exporter --scheduler.workers (0 = its default)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = ap.parse_args()

    exporter_bin = os.path.join(args.build_dir, "daemon", "winrm_exporter")
    sim_bin = os.path.join(args.build_dir, "sim", "winrm-sim")
    for b in (exporter_bin, sim_bin):
        if not os.access(b, os.X_OK):
            sys.exit(f"{b} not built (cmake --build {args.build_dir} --target winrm_exporter winrm-sim)")

    # One keep-alive connection per target on both sides: raise the fd limit the children inherit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    tmp = tempfile.mkdtemp(prefix="winrm-bench-")
    sim = exporter = None
    try:
        subprocess.run(["sh", os.path.join(src, "tests", "scripts", "gen-certs.sh"),
                        os.path.join(tmp, "certs")], check=True, timeout=60)
        sim_log = open(os.path.join(tmp, "sim.log"), "w")
        sim = subprocess.Popen([sim_bin, "--config", write_sim_config(tmp, args.sim_threads, args.sim_keep_alive),
                                "--ports-file",
                                os.path.join(tmp, "sim.ports"), "--log-level", "warn"],
                               stdout=sim_log, stderr=subprocess.STDOUT)
        sim_port = wait_ports_file(sim, os.path.join(tmp, "sim.ports"))
        config = write_exporter_config(tmp, args.targets, sim_port, args.interval, args.timeout,
                                       args.concurrency)
        web_port = free_port()
        base = f"http://127.0.0.1:{web_port}"
        exp_log = open(os.path.join(tmp, "exporter.log"), "w")
        t_start = time.monotonic()
        exporter = subprocess.Popen([exporter_bin, f"--config.file={config}",
                                     f"--web.listen-address=127.0.0.1:{web_port}",
                                     f"--scheduler.workers={args.scheduler_workers}",
                                     "--log.level=warn"], stdout=exp_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            if exporter.poll() is not None:
                sys.exit(f"exporter exited with {exporter.returncode}; log: {tmp}/exporter.log")
            try:
                get(base + "/-/ready", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("exporter not ready within 120s")
                time.sleep(0.2)
        print(f"N={args.targets}: exporter ready after {time.monotonic() - t_start:.1f}s; "
              f"warm-up {args.warmup:.0f}s, window {args.window:.0f}s (temp dir {tmp})", flush=True)
        time.sleep(args.warmup)

        ex, sm = Proc(exporter.pid), Proc(sim.pid)
        rows = []
        prev_t, prev_cpu, prev_sim = time.monotonic(), ex.cpu_seconds(), sm.cpu_seconds()
        _, _, text = get(base + "/metrics")
        first = parse_metrics(text)
        first_t = prev_t
        end = first_t + args.window
        print(f"{'t(s)':>6} {'RSS MiB':>8} {'CPU %':>6} {'sim CPU%':>8} {'fds':>6} {'thr':>4} "
              f"{'polls/s':>8} {'lag mean':>9} {'running':>7} {'waiting':>7} {'up':>6}")
        last = first
        while time.monotonic() < end:
            time.sleep(min(args.sample, max(0.0, end - time.monotonic())))
            now = time.monotonic()
            cpu, sim_cpu = ex.cpu_seconds(), sm.cpu_seconds()
            _, _, text = get(base + "/metrics")
            cur = parse_metrics(text)
            dt = now - prev_t
            started = total(cur, "winrm_exporter_scheduler_polls_started_total") - \
                total(last, "winrm_exporter_scheduler_polls_started_total")
            running_delta = total(cur, "winrm_exporter_scheduler_polls_running") - \
                total(last, "winrm_exporter_scheduler_polls_running")
            lag_sum1, lag_n1, _ = histogram(cur, "winrm_exporter_scheduler_lag_seconds")
            lag_sum0, lag_n0, _ = histogram(last, "winrm_exporter_scheduler_lag_seconds")
            row = dict(t=now - first_t, rss=ex.rss_mib(), cpu=100 * (cpu - prev_cpu) / dt,
                       sim_cpu=100 * (sim_cpu - prev_sim) / dt, fds=ex.fds(), threads=ex.threads(),
                       polls=(started - running_delta) / dt,
                       lag=(lag_sum1 - lag_sum0) / (lag_n1 - lag_n0) if lag_n1 > lag_n0 else float("nan"),
                       running=total(cur, "winrm_exporter_scheduler_polls_running"),
                       waiting=total(cur, "winrm_exporter_scheduler_polls_waiting"),
                       up=total(cur, "winrm_exporter_target_up"))
            rows.append(row)
            print(f"{row['t']:6.0f} {row['rss']:8.1f} {row['cpu']:6.1f} {row['sim_cpu']:8.1f} "
                  f"{row['fds']:6d} {row['threads']:4d} {row['polls']:8.1f} {row['lag']:9.4f} "
                  f"{row['running']:7.0f} {row['waiting']:7.0f} {row['up']:6.0f}", flush=True)
            prev_t, prev_cpu, prev_sim, last = now, cpu, sim_cpu, cur
        if not rows:
            sys.exit("no samples taken")

        window = prev_t - first_t
        started = total(last, "winrm_exporter_scheduler_polls_started_total") - \
            total(first, "winrm_exporter_scheduler_polls_started_total")
        completed = started - (total(last, "winrm_exporter_scheduler_polls_running") -
                               total(first, "winrm_exporter_scheduler_polls_running"))
        lag_sum1, lag_n1, b1 = histogram(last, "winrm_exporter_scheduler_lag_seconds")
        lag_sum0, lag_n0, b0 = histogram(first, "winrm_exporter_scheduler_lag_seconds")
        lag_buckets = {le: b1[le] - b0.get(le, 0) for le in b1}
        lag_n = lag_n1 - lag_n0
        collectors = {re.search(r'collector="([^"]*)"', l).group(1)
                      for (n, l) in last if n == "winrm_exporter_collector_success" and "collector=" in l}
        success = [v for (n, _), v in last.items() if n == "winrm_exporter_collector_success"]
        expected_rate = args.targets * max(len(collectors), 1) / parse_seconds(args.interval)

        scrapes, scrapes_gz = [], []
        size = size_gz = series = 0
        for _ in range(5):
            t, size, text = get(base + "/metrics")
            scrapes.append(t)
            series = sum(1 for line in text.splitlines() if line and line[0] != "#")
        for _ in range(5):
            t, size_gz, _ = get(base + "/metrics", gzip_ok=True)
            scrapes_gz.append(t)

        med = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
        print()
        print(f"summary N={args.targets} targets x {len(collectors)} collectors, interval {args.interval}, "
              f"window {window:.0f}s")
        print(f"  polls completed/s          {completed / window:10.1f}   (expected steady state "
              f"{expected_rate:.1f}/s)")
        print(f"  collector_success=1        {sum(1 for v in success if v == 1):10d} / {len(success)}")
        print(f"  targets up                 {total(last, 'winrm_exporter_target_up'):10.0f} / {args.targets}")
        print(f"  scheduler lag mean         {((lag_sum1 - lag_sum0) / lag_n if lag_n else float('nan')):10.4f} s"
              f"   p50 <= {quantile_from_buckets(lag_buckets, lag_n, 0.5)} s, "
              f"p99 <= {quantile_from_buckets(lag_buckets, lag_n, 0.99)} s ({lag_n:.0f} polls)")
        print(f"  exporter RSS median        {med('rss'):10.1f} MiB (max {max(r['rss'] for r in rows):.1f})")
        print(f"  exporter CPU median        {med('cpu'):10.1f} % of one core")
        print(f"  winrm-sim CPU median       {med('sim_cpu'):10.1f} %")
        print(f"  open fds median            {med('fds'):10.0f}   threads {med('threads'):.0f}")
        print(f"  /metrics scrape median     {statistics.median(scrapes) * 1000:10.1f} ms plain, "
              f"{statistics.median(scrapes_gz) * 1000:.1f} ms gzip")
        print(f"  /metrics size              {size / 2**20:10.2f} MiB plain, {size_gz / 2**20:.2f} MiB gzip, "
              f"{series} series")
        return 0
    finally:
        stop(exporter)
        stop(sim)
        if args.keep:
            print(f"kept {tmp}")
        else:
            subprocess.run(["rm", "-rf", tmp])


def parse_seconds(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text))


if __name__ == "__main__":
    sys.exit(main())
