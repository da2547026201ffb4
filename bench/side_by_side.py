#!/usr/bin/env python3
"""Side-by-side CPU per WQL query: pywinrm vs the bare libcurl + tinyxml2 floor vs winrm_exporter.

One winrm-sim (plain HTTP, Basic, N virtual hosts h00001.sim.test ... with 95 services each) is
pinned to --sim-cpu; each client runs alone, pinned to --client-cpu, polling the N hosts at
N / interval queries per second for --window seconds after --warmup:
  pywinrm         bench/pywinrm_client.py (python3-winrm, persistent requests session, ElementTree)
  floor           floor_loop (libcurl easy handle per host with keep-alive, tinyxml2 parse)
  winrm_exporter  the daemon with one custom collector holding exactly the WQL, interval as above;
                  CPU from /proc/<pid>/stat, polls completed from its /metrics self metrics
CPU per query = client CPU seconds in the window / queries completed in the window. Rounds
interleave the clients (rotated order); the table shows medians over rounds, and the ratios are
medians of the per-round ratios (same run, so machine noise hits both sides alike).
See bench/README.md.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import bench_lock  # bench/bench_lock.py: one pinned benchmark at a time
from scale import free_port, start_perf, stop, stop_perf, wait_ports_file  # bench/scale.py, beside this script

CLK_TCK = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)

QUERIES = {
    "os": dict(
        wql="SELECT Caption, Version, FreePhysicalMemory FROM Win32_OperatingSystem",
        label="os (1 row)",
        metrics="""          - {name: bench_os_free_physical_memory_bytes, type: gauge, help: free memory,
             value: FreePhysicalMemory, scale: 1024, labels: {caption: Caption, version: Version}}"""),
    "service": dict(
        wql="SELECT Name, DisplayName, State, StartMode, ProcessId, StartName FROM Win32_Service",
        label="service (95 rows, 3 pages)",
        metrics="""          - {name: bench_service_info, type: gauge, help: service, info: true,
             labels: {name: Name, display_name: DisplayName, state: State, start_mode: StartMode,
                      start_name: StartName}}
          - {name: bench_service_process_id, type: gauge, help: process id, value: ProcessId,
             labels: {name: Name}}"""),
}
CLIENTS = ["pywinrm", "floor", "exporter"]
SERVICES_PER_HOST = 95  # with page_size 50 and OptimizeEnumeration: 1 + 50 + 44 = 3 pages

children = []  # every process we start, stopped by PID on exit


def start(cmd, **kwargs):
    proc = subprocess.Popen(cmd, **kwargs)
    children.append(proc)
    return proc


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)  # runs the finally blocks, which stop the children


def cpu_times(pid):
    """(utime, stime) seconds of all threads of pid."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def context_switches(pid):
    """(voluntary, involuntary) context switches summed over the threads of pid."""
    vol = invol = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            for line in open(f"/proc/{pid}/task/{tid}/status"):
                if line.startswith("voluntary_ctxt_switches:"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    invol += int(line.split()[1])
        except OSError:
            pass  # a thread that ended meanwhile
    return vol, invol


SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def scrape(url):
    with urllib.request.urlopen(url, timeout=60) as resp:
        text = resp.read().decode("utf-8", "replace")
    totals = {}
    for line in text.splitlines():
        if line.startswith("winrm_exporter_"):
            m = SAMPLE_RE.match(line)
            if m:
                totals[m.group(1)] = totals.get(m.group(1), 0.0) + float(m.group(3))
    return totals


def host_name(i):
    return f"h{i:05d}.sim.test"


def write_sim_config(tmp, args):
    path = os.path.join(tmp, "sim.yml")
    keep_alive = max(30, int(3 * args.interval))  # longer than the poll interval: connections stay open
    with open(path, "w") as f:
        f.write(f"""http: {{address: 127.0.0.1, port: 0}}
keep_alive_timeout: {keep_alive}s
threads: {2 * args.hosts + 16}
users:
  - {{username: monitor, password: s3cret}}
hosts:
""")
        for i in range(1, args.hosts + 1):
            f.write(f"  - {{name: {host_name(i)}, services: {SERVICES_PER_HOST}}}\n")
    return path


def write_exporter_config(tmp, args, sim_port, query):
    path = os.path.join(tmp, f"exporter-{query}.yml")
    with open(path, "w") as f:
        f.write(f"""global:
  interval: {args.interval:g}s
  timeout: {max(1.0, args.interval - 1):g}s
  scheme: http
  port: {sim_port}
  credential: sim
  collectors: [bench_{query}]
credentials:
  sim:
    auth: basic
    username: monitor
    password_file: {tmp}/password
custom_collectors:
  - name: bench_{query}
    queries:
      - wql: {QUERIES[query]['wql']}
        metrics:
{QUERIES[query]['metrics']}
targets:
""")
        for i in range(1, args.hosts + 1):
            f.write(f"  - {{name: {host_name(i)}, connect_address: 127.0.0.1}}\n")
    return path


def run_client_process(args, client, query, sim_port, tmp, rate):
    common = ["--port", str(sim_port), "--hosts", str(args.hosts), "--rate", f"{rate:g}",
              "--warmup", f"{args.warmup:g}", "--window", f"{args.window:g}",
              "--password-file", f"{tmp}/password", "--wql", QUERIES[query]["wql"]]
    if client == "pywinrm":
        cmd = [args.python, os.path.join(HERE, "pywinrm_client.py")] + common
    else:
        cmd = [args.floor_bin] + common
    log = open(os.path.join(tmp, f"{client}-{query}.log"), "w")
    proc = start(["taskset", "-c", args.client_cpu] + cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        out, _ = proc.communicate(timeout=args.warmup + args.window + 120)
    except subprocess.TimeoutExpired:
        stop(proc)
        return None, "timed out"
    result = None
    for line in out.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
    if result is None or proc.returncode != 0:
        return None, f"exit {proc.returncode}: {out.strip()[:300]} (log {log.name})"
    return result, None


def run_exporter(args, query, sim_port, tmp, rnd=1):
    config = write_exporter_config(tmp, args, sim_port, query)
    web_port = free_port()
    base = f"http://127.0.0.1:{web_port}"
    log = open(os.path.join(tmp, f"exporter-{query}.log"), "w")
    proc = start(["taskset", "-c", args.client_cpu, args.exporter_bin, f"--config.file={config}",
                  f"--web.listen-address=127.0.0.1:{web_port}", "--log.level=warn"],
                 stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                return None, f"exporter exited with {proc.returncode} (log {log.name})"
            try:
                urllib.request.urlopen(base + "/-/ready", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    return None, "exporter not ready within 60 s"
                time.sleep(0.2)
        time.sleep(args.warmup)
        # Scrape outside the CPU window: serializing /metrics is not polling work.
        first = scrape(base + "/metrics")
        # perf's sampling interrupts land in the exporter's system time: a profiled window's
        # figure is for where the CPU goes, not for the table.
        perf = start_perf(args.perf_dir, f"exporter-{query}-r{rnd}", proc.pid, args.perf_freq)
        sw0, cpu0, t0 = context_switches(proc.pid), cpu_times(proc.pid), time.monotonic()
        time.sleep(args.window)
        cpu1, t1, sw1 = cpu_times(proc.pid), time.monotonic(), context_switches(proc.pid)
        stop_perf(perf)
        last = scrape(base + "/metrics")
    finally:
        stop(proc)

    def delta(name):
        return last.get(name, 0.0) - first.get(name, 0.0)

    polls = delta("winrm_exporter_scheduler_polls_started_total") - delta("winrm_exporter_scheduler_polls_running")
    errors = delta("winrm_exporter_winrm_transport_errors_total")
    requests = delta("winrm_exporter_winrm_requests_total")
    result = {"client": "exporter", "queries": int(polls), "errors": int(errors),
              "cpu_seconds": round(sum(cpu1) - sum(cpu0), 3), "user_seconds": round(cpu1[0] - cpu0[0], 3),
              "system_seconds": round(cpu1[1] - cpu0[1], 3), "window_seconds": round(t1 - t0, 3),
              "pages_per_query": round(requests / polls, 2) if polls else 0,
              "voluntary_switches": sw1[0] - sw0[0], "involuntary_switches": sw1[1] - sw0[1]}
    if polls <= 0 or errors > 0:
        return None, f"{polls:.0f} polls, {errors:.0f} errors (log {log.name}): {json.dumps(result)}"
    return result, None


def callgrind_ir(path):
    """Total instructions (Ir) of a callgrind output file."""
    with open(path) as f:
        for line in f:
            m = re.match(r"^(?:summary|totals):\s+(\d+)", line)
            if m:
                return int(m.group(1))
    raise ValueError(f"no summary in {path}")


def valgrind(tmp, name):
    return ["valgrind", "--tool=callgrind", "--quiet", f"--callgrind-out-file={tmp}/{name}.cg"]


def callgrind_client(args, client, query, sim_port, tmp):
    """Instructions per query of a client: the difference of two runs of K1 and K2 queries, so
    start-up and the first connection pass cancel out."""
    irs = []
    for count in (args.cg_queries // 5, args.cg_queries + args.cg_queries // 5):
        name = f"cg-{client}-{query}-{count}"
        cmd = ["--port", str(sim_port), "--hosts", str(args.hosts), "--count", str(count),
               "--password-file", f"{tmp}/password", "--wql", QUERIES[query]["wql"]]
        cmd = ([args.python, os.path.join(HERE, "pywinrm_client.py")] if client == "pywinrm"
               else [args.floor_bin]) + cmd
        log = open(os.path.join(tmp, name + ".log"), "w")
        proc = start(["taskset", "-c", args.client_cpu] + valgrind(tmp, name) + cmd,
                     stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            out, _ = proc.communicate(timeout=args.window * 20 + 600)
        except subprocess.TimeoutExpired:
            stop(proc)
            return None, "timed out"
        if proc.returncode != 0:
            return None, f"exit {proc.returncode}: {out.strip()[:300]} (log {log.name})"
        irs.append((count, callgrind_ir(os.path.join(tmp, name + ".cg"))))
    (k1, ir1), (k2, ir2) = irs
    return {"client": client, "queries": k2 - k1, "instructions": ir2 - ir1}, None


def callgrind_exporter(args, query, sim_port, tmp):
    """Instructions per poll of the exporter: callgrind counters zeroed after the warm-up and
    dumped after the window (callgrind_control), polls from /metrics scraped outside."""
    config = write_exporter_config(tmp, args, sim_port, query)
    web_port = free_port()
    base = f"http://127.0.0.1:{web_port}"
    name = f"cg-exporter-{query}"
    log = open(os.path.join(tmp, name + ".log"), "w")
    proc = start(["taskset", "-c", args.client_cpu] + valgrind(tmp, name) +
                 [args.exporter_bin, f"--config.file={config}",
                  f"--web.listen-address=127.0.0.1:{web_port}", "--log.level=warn"],
                 stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                return None, f"exporter exited with {proc.returncode} (log {log.name})"
            try:
                urllib.request.urlopen(base + "/-/ready", timeout=10).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    return None, "exporter not ready within 300 s"
                time.sleep(0.5)
        time.sleep(args.warmup)
        first = scrape(base + "/metrics")
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        time.sleep(args.window)
        subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        last = scrape(base + "/metrics")
    finally:
        stop(proc)
    polls = (last.get("winrm_exporter_scheduler_polls_started_total", 0) -
             first.get("winrm_exporter_scheduler_polls_started_total", 0) -
             (last.get("winrm_exporter_scheduler_polls_running", 0) -
              first.get("winrm_exporter_scheduler_polls_running", 0)))
    errors = (last.get("winrm_exporter_winrm_transport_errors_total", 0) -
              first.get("winrm_exporter_winrm_transport_errors_total", 0))
    # The dump callgrind_control asked for is NAME.cg.1; NAME.cg is the one written at exit.
    dumps = sorted(f for f in os.listdir(tmp) if f.startswith(name + ".cg.") or
                   (f.startswith(name + ".cg") and f != name + ".cg"))
    if polls <= 0 or errors > 0 or not dumps:
        return None, f"{polls:.0f} polls, {errors:.0f} errors, dumps {dumps} (log {log.name})"
    return {"client": "exporter", "queries": int(polls),
            "instructions": callgrind_ir(os.path.join(tmp, dumps[0]))}, None


def fmt_ms(seconds_per_query):
    return "n/a" if seconds_per_query is None else f"{seconds_per_query * 1000:.3f} ms"


def fmt_ir(instructions_per_query):
    return "n/a" if instructions_per_query is None else f"{instructions_per_query / 1000:,.0f} kIr"


def fmt_ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    build = os.path.join(SRC, "build")
    ap.add_argument("-n", "--hosts", type=int, default=200, help="virtual hosts / exporter targets")
    ap.add_argument("--interval", type=float, default=5, help="seconds between polls of one host")
    ap.add_argument("--warmup", type=float, default=10, help="seconds before each measurement window")
    ap.add_argument("--window", type=float, default=60, help="measurement window per client, seconds")
    ap.add_argument("--rounds", type=int, default=3, help="repetitions; each round runs every client")
    ap.add_argument("--queries", default="os,service", help="comma list of: " + ", ".join(QUERIES))
    ap.add_argument("--clients", default=",".join(CLIENTS),
                    help="comma list of: " + ", ".join(CLIENTS) + " (a subset gives no ratios for the others)")
    ap.add_argument("--flat-out", action="store_true",
                    help="also run pywinrm and floor flat out (no pacing) each round")
    ap.add_argument("--smoke", action="store_true",
                    help="quick check: 10 hosts, 2 s warm-up, 3 s window, 1 round")
    ap.add_argument("--callgrind", action="store_true",
                    help="count instructions per query under valgrind's callgrind instead of CPU time "
                         "(immune to machine noise; pair with a small -n, e.g. 10)")
    ap.add_argument("--cg-queries", type=int, default=100,
                    help="callgrind: measured queries per client (difference of two runs)")
    ap.add_argument("--build-dir", default=build)
    ap.add_argument("--exporter-bin", help="default BUILD_DIR/daemon/winrm_exporter (an old build for 'before')")
    ap.add_argument("--sim-bin", help="default BUILD_DIR/sim/winrm-sim")
    ap.add_argument("--floor-bin", help="default BUILD_DIR/bench/floor_loop")
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="interpreter with Debian's python3-winrm for the pywinrm column")
    ap.add_argument("--sim-cpu", default="0", help="taskset CPU list for winrm-sim")
    ap.add_argument("--client-cpu", default="1", help="taskset CPU list for the client under test")
    ap.add_argument("--json", help="also write every per-round result to this file")
    ap.add_argument("--perf-dir", help="record the exporter's windows with `perf record --call-graph dwarf` "
                                       "into DIR/exporter-QUERY-rROUND.data (its CPU figures then include "
                                       "perf's sampling cost)")
    ap.add_argument("--perf-freq", type=int, default=4999,
                    help="samples per second of the exporter's CPU time with --perf-dir (a one-row "
                         "poll at 40/s uses ~2%% of a core: 4999 Hz gives ~100 samples a second)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = ap.parse_args()
    if not args.smoke:
        bench_lock.hold(" ".join(sys.argv))
    if args.smoke:
        # Six windows in a row (3 clients x 2 queries): 2 + 3 s each keeps ~6 queries per window
        # at 2 queries/s, enough for a figure, and the ctest run at ~30 s instead of ~50 s.
        args.hosts, args.warmup, args.window, args.rounds = 10, 2, 3, 1
    args.exporter_bin = args.exporter_bin or os.path.join(args.build_dir, "daemon", "winrm_exporter")
    args.sim_bin = args.sim_bin or os.path.join(args.build_dir, "sim", "winrm-sim")
    args.floor_bin = args.floor_bin or os.path.join(args.build_dir, "bench", "floor_loop")
    for b in (args.exporter_bin, args.sim_bin, args.floor_bin):
        if not os.access(b, os.X_OK):
            sys.exit(f"{b} not built (cmake --build BUILD --target winrm_exporter winrm-sim floor_loop)")
    queries = [q for q in args.queries.split(",") if q]
    for q in queries:
        if q not in QUERIES:
            sys.exit(f"unknown query {q}")
    clients = [c for c in args.clients.split(",") if c]
    for c in clients:
        if c not in CLIENTS:
            sys.exit(f"unknown client {c}")
    rate = args.hosts / args.interval
    allowed = os.sched_getaffinity(0)
    for attr in ("sim_cpu", "client_cpu"):
        cpu_list = getattr(args, attr)
        cpus = {c for part in cpu_list.split(",")
                for c in range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1)}
        if cpus <= allowed:
            continue
        if not args.smoke:
            sys.exit(f"CPU list {cpu_list} is not available here (allowed {sorted(allowed)}): "
                     "pass --sim-cpu/--client-cpu")
        # The smoke run checks the plumbing, not figures: run unpinned on a smaller machine.
        setattr(args, attr, ",".join(str(c) for c in sorted(allowed)))
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        os.environ.pop(var, None)  # loopback only
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    tmp = tempfile.mkdtemp(prefix="winrm-side-by-side-")
    sim = None
    results = []  # (round, query, column, result or None, problem)
    try:
        with open(os.path.join(tmp, "password"), "w") as f:
            f.write("s3cret\n")
        os.chmod(os.path.join(tmp, "password"), 0o600)
        ports = os.path.join(tmp, "ports")
        sim_log = open(os.path.join(tmp, "sim.log"), "w")
        sim = start(["taskset", "-c", args.sim_cpu, args.sim_bin, "--config", write_sim_config(tmp, args),
                     "--ports-file", ports, "--log-level", "warn"], stdout=sim_log, stderr=subprocess.STDOUT)
        sim_port = wait_ports_file(sim, ports, kind="http")
        print(f"winrm-sim on 127.0.0.1:{sim_port} (cpu {args.sim_cpu}), {args.hosts} hosts, clients on cpu "
              f"{args.client_cpu}, {rate:g} queries/s, warm-up {args.warmup:g} s, window {args.window:g} s, "
              f"{args.rounds} round(s); exporter {args.exporter_bin}", flush=True)
        columns = clients + (["pywinrm-flat", "floor-flat"] if args.flat_out and not args.callgrind else [])
        for rnd in range(args.rounds):
            order = columns[rnd % len(columns):] + columns[:rnd % len(columns)]
            for query in queries:
                for column in order:
                    if args.callgrind:
                        if column == "exporter":
                            result, problem = callgrind_exporter(args, query, sim_port, tmp)
                        else:
                            result, problem = callgrind_client(args, column, query, sim_port, tmp)
                        per_query = result["instructions"] / result["queries"] if result else None
                        results.append(dict(round=rnd + 1, query=query, column=column, result=result,
                                            problem=problem, cpu_per_query=per_query))
                        detail = json.dumps(result) if result else f"FAILED: {problem}"
                        shown = "n/a" if per_query is None else f"{per_query:,.0f} Ir"
                        print(f"round {rnd + 1} {query:8} {column:13} {shown:>14}  {detail}", flush=True)
                        continue
                    if column == "exporter":
                        result, problem = run_exporter(args, query, sim_port, tmp, rnd + 1)
                    else:
                        client = column.removesuffix("-flat")
                        result, problem = run_client_process(args, client, query, sim_port, tmp,
                                                             0 if column.endswith("-flat") else rate)
                    per_query = result["cpu_seconds"] / result["queries"] if result else None
                    results.append(dict(round=rnd + 1, query=query, column=column, result=result,
                                        problem=problem, cpu_per_query=per_query))
                    detail = json.dumps(result) if result else f"FAILED: {problem}"
                    print(f"round {rnd + 1} {query:8} {column:13} {fmt_ms(per_query):>12}  {detail}", flush=True)
    finally:
        for proc in reversed(children):
            stop(proc)
        if args.keep:
            print(f"kept {tmp}")
        else:
            subprocess.run(["rm", "-rf", tmp])

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)

    def cell(rnd, query, column):
        for r in results:
            if r["round"] == rnd and r["query"] == query and r["column"] == column:
                return r["cpu_per_query"]
        return None

    def ratio(rnd, query, num, den):
        a, b = cell(rnd, query, num), cell(rnd, query, den)
        return a / b if a is not None and b else None

    missing = 0
    rounds = range(1, args.rounds + 1)
    print()
    if args.callgrind:
        print("Instructions per query (callgrind Ir, all threads), medians over rounds; ratios are "
              "medians of per-round ratios")
        fmt = fmt_ir
    else:
        print("CPU per query (client CPU seconds / queries completed), medians over rounds; ratios are "
              "medians of per-round ratios")
        fmt = fmt_ms
    print()
    print("| query | pywinrm | floor | winrm_exporter | exporter/floor | pywinrm/exporter |")
    print("|---|---|---|---|---|---|")
    for query in queries:
        med = {c: median_or_none([cell(r, query, c) for r in rounds]) for c in CLIENTS}
        missing += sum(1 for c in clients if med[c] is None)
        ef = median_or_none([ratio(r, query, "exporter", "floor") for r in rounds])
        pe = median_or_none([ratio(r, query, "pywinrm", "exporter") for r in rounds])
        print(f"| {QUERIES[query]['label']} | {fmt(med['pywinrm'])} | {fmt(med['floor'])} | "
              f"{fmt(med['exporter'])} | {fmt_ratio(ef)} | {fmt_ratio(pe)} |")
    if args.flat_out and not args.callgrind:
        print()
        print("| query | pywinrm flat out | floor flat out |")
        print("|---|---|---|")
        for query in queries:
            print(f"| {QUERIES[query]['label']} | "
                  f"{fmt_ms(median_or_none([cell(r, query, 'pywinrm-flat') for r in rounds]))} | "
                  f"{fmt_ms(median_or_none([cell(r, query, 'floor-flat') for r in rounds]))} |")
    if missing:
        print(f"\n{missing} column(s) without a figure: see the FAILED lines above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
