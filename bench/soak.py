#!/usr/bin/env python3
"""Soak benchmark: one exporter, N simulated hosts, a fraction of them cycling through faults.

Starts winrm-sim (HTTPS, Basic) with one virtual host per fault mode and the exporter with N
targets (default 1,000, interval 60 s, timeout 20 s, default collectors). --faulty (default 10%)
of the targets cycle through the phases
    healthy -> timeout -> reset -> 401 -> quota -> malformed -> stall -> healthy ...
one step every --phase seconds (default 180), each target starting at its own offset, so at any
time every fault is present. A target is moved into a fault by pointing its `host:` at the sim's
virtual host of that fault and reloading the exporter (SIGHUP): only the faulty targets change,
the others keep their sessions. Fault hosts in the sim:
    timeout    delay 60s      (the host answers the w:TimedOut fault after OperationTimeout)
    reset      close_mid_body (headers and half a body, then the connection is closed)
    401        always_401
    quota      fault: quota_exceeded
    malformed  malformed_xml
    stall      trickle_bytes_per_second 20 (the poll runs into the exporter's timeout)
The sim and the exporter are pinned to separate CPUs (--sim-cpu, --exporter-cpu; taskset).
Every --sample seconds it prints RSS, open fds, threads, exporter CPU and the polls that completed
and failed in the sample (from the exporter's own metrics); at the end a summary compares the
first and last quarter of the run after the warm-up ("flat" when within --flat-tolerance).
See bench/README.md.
"""
import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import bench_lock  # bench/bench_lock.py: one pinned benchmark at a time
from scale import (Proc, free_port, get, parse_metrics, stop, total, wait_ports_file,  # bench/scale.py
                   wait_ready, histogram, quantile_from_buckets, pinned, sim_config_head,
                   exporter_config_head)

PHASES = ["healthy", "timeout", "reset", "401", "quota", "malformed", "stall"]
FAULT_HOSTS = {
    "timeout": "delay: 60s",
    "reset": "close_mid_body: true",
    "401": "always_401: true",
    "quota": "fault: quota_exceeded",
    "malformed": "malformed_xml: true",
    "stall": "trickle_bytes_per_second: 20",
}


def fault_host(kind):
    return f"fault-{kind}.sim.test"


def write_sim_config(tmp, threads, keep_alive):
    path = os.path.join(tmp, "sim.yml")
    with open(path, "w") as f:
        f.write(sim_config_head(tmp, threads, keep_alive) + "hosts:\n")
        for kind, setting in FAULT_HOSTS.items():
            f.write(f"  - {{name: {fault_host(kind)}, {setting}}}\n")
    return path


def phase_of(index, faulty, step):
    """Phase of target `index` at cycle step `step` (healthy for the targets that never fault)."""
    if index >= faulty:
        return "healthy"
    return PHASES[(index + step) % len(PHASES)]


def write_exporter_config(path, tmp, n, faulty, step, sim_port, interval, timeout, concurrency):
    body = [exporter_config_head(tmp, sim_port, interval, timeout, concurrency)]
    for i in range(n):
        name = f"h{i + 1:05d}.sim.test"
        phase = phase_of(i, faulty, step)
        host = "" if phase == "healthy" else f", host: {fault_host(phase)}"
        body.append(f"  - {{name: {name}{host}, connect_address: 127.0.0.1, credential: sim}}\n")
    with open(path + ".new", "w") as f:
        f.write("".join(body))
    os.replace(path + ".new", path)  # the exporter never reads a half-written file


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--targets", type=int, default=1000)
    ap.add_argument("--faulty", type=float, default=0.10, help="fraction of targets cycling through faults")
    ap.add_argument("--duration", type=float, default=1800, help="seconds measured after the warm-up")
    ap.add_argument("--warmup", type=float, default=120, help="seconds after ready before measuring")
    ap.add_argument("--phase", type=float, default=180, help="seconds per fault phase")
    ap.add_argument("--sample", type=float, default=60, help="seconds between samples")
    ap.add_argument("--interval", default="60s")
    ap.add_argument("--timeout", default="20s")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--build-dir", default=os.path.join(src, "build"))
    ap.add_argument("--exporter-bin", default=None)
    ap.add_argument("--sim-bin", default=None)
    ap.add_argument("--sim-threads", type=int, default=2, help="winrm-sim handler worker threads")
    ap.add_argument("--sim-keep-alive", default="120s", help="winrm-sim keep_alive_timeout (Windows: 120 s)")
    ap.add_argument("--sim-cpu", default="0", help="taskset CPU list for winrm-sim ('' = unpinned)")
    ap.add_argument("--exporter-cpu", default="1", help="taskset CPU list for the exporter ('' = unpinned)")
    ap.add_argument("--flat-tolerance", type=float, default=0.10,
                    help="relative growth from first to last quarter still called flat")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = ap.parse_args()
    bench_lock.hold(" ".join(sys.argv))

    exporter_bin = args.exporter_bin or os.path.join(args.build_dir, "daemon", "winrm_exporter")
    sim_bin = args.sim_bin or os.path.join(args.build_dir, "sim", "winrm-sim")
    for b in (exporter_bin, sim_bin):
        if not os.access(b, os.X_OK):
            sys.exit(f"{b} not built")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    faulty = int(round(args.targets * args.faulty))
    tmp = tempfile.mkdtemp(prefix="winrm-soak-")
    sim = exporter = None
    # SIGTERM (e.g. from a test runner) stops the children through the finally block below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        subprocess.run(["sh", os.path.join(src, "tests", "scripts", "gen-certs.sh"),
                        os.path.join(tmp, "certs")], check=True, timeout=60, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        sim_log = open(os.path.join(tmp, "sim.log"), "w")
        sim = subprocess.Popen(pinned(args.sim_cpu, [sim_bin, "--config",
                                                     write_sim_config(tmp, args.sim_threads, args.sim_keep_alive),
                                                     "--ports-file", os.path.join(tmp, "sim.ports"),
                                                     "--log-level", "warn"]),
                               stdout=sim_log, stderr=subprocess.STDOUT)
        sim_port = wait_ports_file(sim, os.path.join(tmp, "sim.ports"))
        config = os.path.join(tmp, "exporter.yml")
        step = 0
        write_exporter_config(config, tmp, args.targets, faulty, step, sim_port, args.interval,
                              args.timeout, args.concurrency)
        web_port = free_port()
        base = f"http://127.0.0.1:{web_port}"
        exp_log = open(os.path.join(tmp, "exporter.log"), "w")
        exporter = subprocess.Popen(pinned(args.exporter_cpu, [exporter_bin, f"--config.file={config}",
                                                               f"--web.listen-address=127.0.0.1:{web_port}",
                                                               "--log.level=error"]),
                                    stdout=exp_log, stderr=subprocess.STDOUT)
        wait_ready(exporter, base, f"{tmp}/exporter.log")
        t0 = time.monotonic()
        next_phase = t0 + args.phase
        print(f"soak: {args.targets} targets, {faulty} cycling through {' -> '.join(PHASES)} "
              f"({args.phase:.0f} s per phase), warm-up {args.warmup:.0f} s, duration {args.duration:.0f} s, "
              f"sim CPU {args.sim_cpu or '-'}, exporter CPU {args.exporter_cpu or '-'} (temp dir {tmp})", flush=True)

        def advance_phases(until):
            nonlocal step, next_phase
            while time.monotonic() < until:
                if exporter.poll() is not None:
                    sys.exit(f"exporter exited with {exporter.returncode}; log: {tmp}/exporter.log")
                if time.monotonic() >= next_phase:
                    step += 1
                    write_exporter_config(config, tmp, args.targets, faulty, step, sim_port,
                                          args.interval, args.timeout, args.concurrency)
                    os.kill(exporter.pid, signal.SIGHUP)
                    next_phase += args.phase
                time.sleep(max(0.0, min(1.0, until - time.monotonic(), next_phase - time.monotonic())))

        advance_phases(t0 + args.warmup)
        ex = Proc(exporter.pid)
        _, _, text = get(base + "/metrics", timeout=300)
        last = parse_metrics(text)
        first = last
        prev_t, prev_cpu = time.monotonic(), ex.cpu_seconds()
        start_t = prev_t
        end = start_t + args.duration
        rows = []
        print(f"{'t(s)':>6} {'RSS MiB':>8} {'fds':>6} {'thr':>4} {'CPU %':>6} {'polls':>6} {'failed':>6} "
              f"{'ok %':>6} {'up':>5} {'reloads':>7}", flush=True)

        def errors(metrics):
            return total(metrics, "winrm_exporter_collector_errors_total")

        def completed(metrics):
            return total(metrics, "winrm_exporter_scheduler_polls_started_total") - \
                total(metrics, "winrm_exporter_scheduler_polls_running")

        while time.monotonic() < end:
            advance_phases(min(end, time.monotonic() + args.sample))
            now, cpu = time.monotonic(), ex.cpu_seconds()
            _, _, text = get(base + "/metrics", timeout=300)
            cur = parse_metrics(text)
            # The cache keeps a target's error counters across reloads (its name stays).
            polls = completed(cur) - completed(last)
            failed = max(0.0, errors(cur) - errors(last))
            row = dict(t=now - start_t, rss=ex.rss_mib(), fds=ex.fds(), threads=ex.threads(),
                       cpu=100 * (cpu - prev_cpu) / (now - prev_t), polls=polls, failed=failed,
                       ok=100 * (polls - failed) / polls if polls else float("nan"),
                       up=total(cur, "winrm_exporter_target_up"),
                       reloads=total(cur, "winrm_exporter_config_reloads_total"))
            rows.append(row)
            print(f"{row['t']:6.0f} {row['rss']:8.1f} {row['fds']:6d} {row['threads']:4d} {row['cpu']:6.1f} "
                  f"{row['polls']:6.0f} {row['failed']:6.0f} {row['ok']:6.1f} {row['up']:5.0f} "
                  f"{row['reloads']:7.0f}", flush=True)
            prev_t, prev_cpu, last = now, cpu, cur
        if len(rows) < 4:
            sys.exit("too few samples for a soak summary (raise --duration or lower --sample)")

        quarter = max(1, len(rows) // 4)
        head, tail = rows[:quarter], rows[-quarter:]
        expected_ok = 100 * (1 - faulty * (len(PHASES) - 1) / len(PHASES) / args.targets)
        lag_sum1, lag_n1, b1 = histogram(last, "winrm_exporter_scheduler_lag_seconds")
        lag_sum0, lag_n0, b0 = histogram(first, "winrm_exporter_scheduler_lag_seconds")
        lag_n = lag_n1 - lag_n0
        lag_p99 = quantile_from_buckets({le: b1[le] - b0.get(le, 0) for le in b1}, lag_n, 0.99)
        print()
        print(f"soak summary: {args.targets} targets ({faulty} cycling through faults), interval {args.interval}, "
              f"{len(rows)} samples over {rows[-1]['t']:.0f} s after {args.warmup:.0f} s warm-up")
        verdicts = []
        for key, label, unit in (("rss", "RSS", "MiB"), ("fds", "open fds", ""), ("threads", "threads", "")):
            a = statistics.median(r[key] for r in head)
            b = statistics.median(r[key] for r in tail)
            growth = (b - a) / a if a else 0.0
            flat = growth <= args.flat_tolerance
            verdicts.append(flat)
            print(f"  {label:<10} first quarter {a:9.1f} {unit:<3} last quarter {b:9.1f} {unit:<3} "
                  f"min {min(r[key] for r in rows):9.1f} max {max(r[key] for r in rows):9.1f} "
                  f"{'flat' if flat else 'GROWING'} ({100 * growth:+.1f}%)")
        ok_head = statistics.median(r["ok"] for r in head)
        ok_tail = statistics.median(r["ok"] for r in tail)
        polls = sum(r["polls"] for r in rows)
        failed = sum(r["failed"] for r in rows)
        print(f"  poll ok %  first quarter {ok_head:9.1f}     last quarter {ok_tail:9.1f}     overall "
              f"{100 * (polls - failed) / polls:.1f}% of {polls:.0f} polls (all faults failing, back-off "
              f"aside: ~{expected_ok:.1f}%)")
        print(f"  CPU        median {statistics.median(r['cpu'] for r in rows):.1f}% of one core; scheduler "
              f"lag p99 <= {lag_p99} s ({lag_n:.0f} polls); reloads {rows[-1]['reloads']:.0f}")
        kinds = {}
        for (name, labels), value in last.items():
            if name == "winrm_exporter_collector_errors_total":
                kind = labels.split('kind="', 1)[1].split('"', 1)[0]
                kinds[kind] = kinds.get(kind, 0) + value - first.get((name, labels), 0)
        print("  failures   " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(kinds.items()) if v > 0))
        print(f"  verdict    {'flat' if all(verdicts) else 'NOT flat'} (tolerance {100 * args.flat_tolerance:.0f}%)")
        return 0
    finally:
        stop(exporter)
        stop(sim)
        if args.keep:
            print(f"kept {tmp}")
        else:
            subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
