#!/usr/bin/env python3
"""The perf suite's runner (Python 3 standard library only).

Runs every benchmark program built in <build>/perf (bench_weft, the peers, the sequential
baseline) over the workloads, parameters and thread counts of the chosen mode, each
invocation under a timeout, and writes

    <results>/perf.csv               every measured run
    <results>/table.md               the tables below, in Markdown, with the machine
    <results>/perf-<workload>.png    median vs threads, one line per runtime (gnuplot)
    <results>/perf-<workload>.dat    the plotted data (and .gp, the gnuplot script)

and prints the tables: per workload and thread count, each runtime's median [min-max] and
weft's ratio to the best peer (below 1.0: weft is faster), then the derived metric
(ns/spawn, ns/task, ...) and the peak memory (max RSS).

A benchmark that exits non-zero (a wrong answer, a crash) or runs past its timeout (a hang)
is reported loudly with the command that reproduces it, its cell shows FAIL or TIMEOUT, the
suite goes on, and the runner exits with status 1 at the end.

Usually started by scripts/perf.sh, which builds first. Directly:
    python3 perf/run.py --build build/perf [--quick | --large] [--threads 1,2] [--runs 5]
"""

import argparse
import csv
import datetime
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

# Runtimes, in table order: (name, executable). "seq" is the sequential baseline, not a peer.
RUNTIMES = [
    ("weft", "bench_weft"),
    ("weft-libc", "bench_weft_libc"),  # weft with libc malloc: what jemalloc buys
    ("tbb", "bench_tbb"),
    ("omp-gomp", "bench_omp_gomp"),
    ("omp-llvm", "bench_omp_llvm"),
    ("libuv", "bench_libuv"),
    ("mutex", "bench_mutex"),
    ("seq", "bench_seq"),
]
BASELINE = "seq"

# Parameters per mode. idle: the window in seconds.
PARAMS = {
    "default": {
        "fib": ["30", "35"],
        "nqueens": ["12", "13"],
        "uts": ["T1", "T3"],
        "fanout": ["1000000"],
        "latency": ["100000"],
        "map": ["1000000"],
        "mapsubmit": ["1000000"],
        "parfor": ["1000000"],
        "ascompleted": ["100000"],
        "idle": ["5"],
    },
    "quick": {
        "fib": ["25"],
        "nqueens": ["10"],
        "uts": ["T1S", "T3S"],
        "fanout": ["100000"],
        "latency": ["10000"],
        "map": ["100000"],
        "mapsubmit": ["100000"],
        "parfor": ["100000"],
        "ascompleted": ["10000"],
        "idle": ["1"],
    },
    "large": {
        "fib": ["40"],
        "nqueens": ["14"],
        "uts": ["T1L", "T3L"],
        "fanout": ["10000000"],
        "latency": ["100000"],
        "map": ["10000000"],
        "mapsubmit": ["10000000"],
        "parfor": ["10000000"],
        "ascompleted": ["1000000"],
        "idle": ["5"],
    },
}
WORKLOAD_ORDER = ["fib", "nqueens", "uts", "fanout", "latency", "map", "mapsubmit", "parfor",
                  "ascompleted", "idle"]
# Seconds per cell after which the slow runtimes stop at 3 runs (PERF_CELL_BUDGET_S), and
# the timeout of one invocation, per mode.
CELL_BUDGET = {"default": 15.0, "quick": 4.0, "large": 120.0}
TIMEOUT = {"default": 300, "quick": 60, "large": 3600}
# Worker stack size (RLIMIT_STACK, hence glibc's default thread stack; OMP_STACKSIZE; TBB's
# thread_stack_size): 8 MiB, the usual default; the large binomial tree T3L is 17844 deep.
STACK = {"default": 8 << 20, "quick": 8 << 20, "large": 64 << 20}

# Which runtimes a goal is measured against (rows where the goal does not apply: "-").
GOALS = {
    "fib": ["tbb", "omp-gomp", "omp-llvm"],
    "nqueens": ["tbb", "omp-gomp", "omp-llvm"],
    "uts": ["tbb", "omp-gomp", "omp-llvm"],
    "fanout": ["libuv", "mutex"],
    "latency-p50": ["libuv", "mutex"],
    "latency-p99": ["libuv", "mutex"],
    "map": ["tbb", "omp-gomp", "omp-llvm"],
    "parfor": ["tbb", "omp-gomp", "omp-llvm"],
}

RESULT_RE = re.compile(r"^RESULT (.*)$")
ENV_PREFIXES = ("WEFT_", "OMP_", "GOMP_", "KMP_", "UV_", "TBB_", "PERF_")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Rows of the tables: a workload and its parameter, and how its cells are shown
# ---------------------------------------------------------------------------------------
class Row:
    """One table row group: e.g. fib(35), or latency-p99 (a workload printing two rows)."""

    def __init__(self, workload, param):
        self.workload = workload  # as in RESULT lines: fib, ..., latency-p50, idle
        self.param = param

    @property
    def key(self):
        return f"{self.workload}-{self.param}"

    @property
    def base(self):
        return self.workload.split("-")[0]

    @property
    def primary(self):
        """The figure the main table shows: seconds (shown as ms) or the metric."""
        return "metric" if self.base in ("latency", "idle") else "seconds"

    def label(self):
        if self.base == "latency":
            pct = self.workload.split("-")[1]
            return f"latency {pct} ({int(self.param):,} round trips), µs"
        if self.base == "idle":
            return f"idle {self.param} s, % of a core"
        if self.param.isdigit() and self.base not in ("fib", "nqueens"):
            return f"{self.workload}({int(self.param):,}), ms"
        return f"{self.workload}({self.param}), ms"

    def value(self, rec):
        return rec["seconds"] * 1000.0 if self.primary == "seconds" else rec["metric"]


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


# ---------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------
def set_stack(size):
    def preexec():
        soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
        want = size if hard == resource.RLIM_INFINITY else min(size, hard)
        resource.setrlimit(resource.RLIMIT_STACK, (want, hard))

    return preexec


def supported(exe):
    try:
        out = subprocess.run([exe, "list"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    for line in out.splitlines():
        if line.startswith("WORKLOADS "):
            return set(line.split()[1:])
    return set()


def parse_result(line):
    m = RESULT_RE.match(line)
    if not m:
        return None
    kv = dict(item.split("=", 1) for item in m.group(1).split())
    return {
        "workload": kv["workload"],
        "param": kv["param"],
        "runtime": kv["runtime"],
        "threads": int(kv["threads"]),
        "run": int(kv["run"]),
        "seconds": float(kv["seconds"]),
        "metric": float(kv["metric"]),
        "unit": kv["unit"],
        "rss_kb": int(kv["rss_kb"]),
    }


def run_one(exe, workload, param, threads, runs, env, opts):
    """Runs one invocation; returns (records, failure or None)."""
    cmd = [exe, workload, param, str(threads), str(runs)]
    # The variables we set, and any of the user's that steer a runtime (WEFT_*, OMP_*, ...).
    keys = set(opts.env_keys) | {k for k in env if k.startswith(ENV_PREFIXES)}
    env_shown = " ".join(f"{k}={env[k]}" for k in sorted(keys))
    repro = f"cd {os.getcwd()} && ulimit -s {opts.stack // 1024} && env {env_shown} {' '.join(cmd)}"
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=opts.timeout, env=env,
                           preexec_fn=set_stack(opts.stack))
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        recs = [r for r in map(parse_result, out.splitlines()) if r]
        return recs, {"kind": "TIMEOUT", "cmd": repro,
                      "why": f"still running after {opts.timeout} s (a hang?): killed",
                      "stderr": err[-2000:], "seconds": time.monotonic() - t0}
    recs = [r for r in map(parse_result, p.stdout.splitlines()) if r]
    if p.returncode != 0 or not recs:
        why = (f"exit status {p.returncode}" if p.returncode >= 0
               else f"killed by signal {-p.returncode}")
        if p.returncode == 0:
            why = "no RESULT line"
        return recs, {"kind": "FAIL", "cmd": repro, "why": why, "stderr": p.stderr[-2000:],
                      "seconds": time.monotonic() - t0}
    return recs, None


def loud(failure, what):
    bar = "!" * 88
    log(f"\n{bar}\n{failure['kind']}: {what}: {failure['why']}\n  reproduce: {failure['cmd']}")
    if failure["stderr"].strip():
        log("  stderr (tail):")
        for line in failure["stderr"].strip().splitlines()[-15:]:
            log("    " + line)
    log(bar + "\n")


# ---------------------------------------------------------------------------------------
# Aggregation and output
# ---------------------------------------------------------------------------------------
def aggregate(records, row, runtime, threads):
    vals = [row.value(r) for r in records
            if r["workload"] == row.workload and r["param"] == row.param
            and r["runtime"] == runtime and r["threads"] == threads]
    if not vals:
        return None
    sel = [r for r in records
           if r["workload"] == row.workload and r["param"] == row.param
           and r["runtime"] == runtime and r["threads"] == threads]
    return {
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
        "metric": statistics.median(r["metric"] for r in sel),
        "unit": sel[0]["unit"],
        "rss_kb": max(r["rss_kb"] for r in sel),
    }


def build_tables(records, failures, rows, threads_list, runtimes, runs):
    """Returns (main, metric, rss) tables as lists of rows of strings (first: header).
    runs(row): the runs asked for, to mark cells that have fewer."""
    peers = [r for r in runtimes if not r.startswith("weft") and r != BASELINE]
    main = [["workload", "threads"] + runtimes + ["weft/best peer", "goal"]]
    metric = [["workload", "unit", "threads"] + runtimes]
    rss = [["workload", "threads"] + runtimes]
    seq_threads = threads_list[0]
    for row in rows:
        for t in threads_list:
            cells, mcells, rcells = [], [], []
            aggs = {}
            for rt in runtimes:
                at = seq_threads if rt == BASELINE else t
                a = aggregate(records, row, rt, at)
                f = failures.get((row.base, row.param, rt, at))
                if a is None:
                    shown = f["kind"] if f else ""
                    if rt == BASELINE and t != seq_threads:
                        shown = ""
                    cells.append(shown)
                    mcells.append(shown)
                    rcells.append(shown)
                    continue
                if rt == BASELINE and t != seq_threads:
                    cells.append("")
                    mcells.append("")
                    rcells.append("")
                    continue
                if rt != BASELINE:
                    aggs[rt] = a
                want = runs(row)
                mark = "" if a["n"] >= want else f" ({a['n']} run{'s' if a['n'] > 1 else ''})"
                if f:
                    mark += " " + f["kind"]
                cells.append(f"{fmt(a['median'])} [{fmt(a['min'])}–{fmt(a['max'])}]{mark}")
                mcells.append(fmt(a["metric"]))
                rcells.append(f"{a['rss_kb'] / 1024:.1f}")
            ratio, goal = "-", "-"
            w = aggs.get("weft")
            best = [aggs[p]["median"] for p in peers if p in aggs]
            if w is not None and best:
                b = min(best)
                ratio = f"{w['median'] / b:.2f}" if b > 0 else "n/a"
            targets = [p for p in GOALS.get(row.workload, GOALS.get(row.base, [])) if p in aggs]
            if w is not None and targets:
                beaten = [p for p in targets if w["median"] < aggs[p]["median"]]
                goal = "yes" if len(beaten) == len(targets) else \
                    "NO (" + ", ".join(p for p in targets if p not in beaten) + ")"
            if not any(cells):
                continue
            main.append([row.label(), str(t)] + cells + [ratio, goal])
            unit = next((a["unit"] for a in aggs.values()), "")
            metric.append([f"{row.workload}({row.param})", unit, str(t)] + mcells)
            rss.append([f"{row.workload}({row.param})", str(t)] + rcells)
    return main, metric, rss


def text_table(table):
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    out = []
    for k, r in enumerate(table):
        out.append("  ".join(c.rjust(widths[i]) if i >= 1 else c.ljust(widths[i])
                             for i, c in enumerate(r)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def md_table(table):
    out = ["| " + " | ".join(table[0]) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(table[0]))) + "|"]
    for r in table[1:]:
        out.append("| " + " | ".join(c if c else " " for c in r) + " |")
    return "\n".join(out)


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_info(repo):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()) + f" (nproc: {sh('nproc')})",
        "cpu": cpu or platform.processor(),
        "kernel": platform.release(),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
        "gcc": sh("gcc --version | head -1"),
        "clang": sh("clang --version | head -1"),
        "libs": sh("for m in tbb libuv libcrypto; do printf '%s %s  ' $m "
                   "\"$(pkg-config --modversion $m 2>/dev/null)\"; done"),
        "weft": sh(f"git -C {repo} describe --always --dirty 2>/dev/null"),
    }


def plot(results, rows, threads_list, runtimes, records):
    gnuplot = shutil.which("gnuplot")
    made = []
    for row in rows:
        series = {}
        for rt in runtimes:
            pts = []
            for t in threads_list:
                a = aggregate(records, row, rt, threads_list[0] if rt == BASELINE else t)
                if a is not None:
                    pts.append(a["median"])
                else:
                    pts.append(None)
            if any(p is not None for p in pts):
                series[rt] = pts
        if not series:
            continue
        names = list(series)
        dat = os.path.join(results, f"perf-{row.key}.dat")
        with open(dat, "w") as f:
            f.write("# threads " + " ".join(names) + "   (median; seq: 1 thread, repeated)\n")
            for i, t in enumerate(threads_list):
                f.write(f"{t} " + " ".join("NaN" if series[n][i] is None else f"{series[n][i]:.6g}"
                                           for n in names) + "\n")
        png = os.path.join(results, f"perf-{row.key}.png")
        vals = [v for pts in series.values() for v in pts if v is not None and v > 0]
        logy = bool(vals) and max(vals) / min(vals) > 20
        yscale = "set logscale y\n" if logy else "set yrange [0:*]\n"
        ylabel = row.label().rsplit(", ", 1)[1]
        lines = []
        for i, n in enumerate(names):
            style = "lines dashtype 2" if n == BASELINE else "linespoints pointsize 1.3"
            title = "seq (1 thread)" if n == BASELINE else n
            width = 3 if n == "weft" else 1.5
            lines.append(f"'{os.path.basename(dat)}' using 1:{i + 2} with {style} "
                         f"linewidth {width} title '{title}'")
        gp = os.path.join(results, f"perf-{row.key}.gp")
        with open(gp, "w") as f:
            f.write(f"""set terminal pngcairo size 900,560 noenhanced font 'sans,11'
set output '{os.path.basename(png)}'
set title '{row.label().rsplit(", ", 1)[0]}: median vs threads'
set xlabel 'threads'
set ylabel '{ylabel}{" (log scale)" if logy else ""}'
{yscale}set xtics ({", ".join(str(t) for t in threads_list)})
set xrange [{threads_list[0] - 0.3}:{threads_list[-1] + 0.3}]
set key outside right top
set grid
set datafile missing 'NaN'
plot {", ".join(lines)}
""")
        if gnuplot:
            r = subprocess.run([gnuplot, os.path.basename(gp)], cwd=results, capture_output=True,
                               text=True)
            if r.returncode != 0:
                log(f"gnuplot failed for {gp}: {r.stderr.strip()}")
            else:
                made.append(png)
    if not gnuplot:
        log("gnuplot not found: wrote the .dat/.gp files, no PNG (scripts/setup.sh --perf)")
    return made


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/perf", help="the CMake build directory")
    ap.add_argument("--results", default="results", help="where the outputs go")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run (< 1 min)")
    mode.add_argument("--large", action="store_true",
                      help="larger inputs: fib 40, nqueens 14, UTS T1L/T3L (long)")
    ap.add_argument("--threads", help="comma-separated thread counts (default: 1..nproc)")
    ap.add_argument("--runs", type=int, default=5, help="measured runs per cell (default 5)")
    ap.add_argument("--only", help="comma-separated workloads (fib,nqueens,uts,fanout,"
                                   "latency,idle)")
    ap.add_argument("--runtimes", help="comma-separated runtimes (default: all built)")
    ap.add_argument("--timeout", type=int, help="seconds per invocation before it counts as "
                                                 "a hang (default 300; quick 60; large 3600)")
    ap.add_argument("--cell-budget", type=float,
                    help="seconds of measured runs per cell after which a slow runtime stops "
                         "at 3 runs (default 15; quick 4; large 120; 0: always --runs)")
    ap.add_argument("--idle-runs", type=int, default=1,
                    help="runs of the idle workload (each a full window; default 1)")
    opts = ap.parse_args()

    m = "quick" if opts.quick else "large" if opts.large else "default"
    if opts.timeout is None:
        opts.timeout = TIMEOUT[m]
    if opts.cell_budget is None:
        opts.cell_budget = CELL_BUDGET[m]
    opts.stack = STACK[m]
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads_list = ([int(x) for x in opts.threads.split(",") if x.strip()] if opts.threads
                    else list(range(1, ncpu + 1)))
    if not threads_list or min(threads_list) < 1:
        ap.error("--threads: a comma-separated list of positive counts")
    threads_list = sorted(set(threads_list))
    if opts.runs < 1:
        ap.error("--runs must be >= 1")

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bindir = os.path.join(os.path.abspath(opts.build), "perf")
    results = os.path.abspath(opts.results)
    os.makedirs(results, exist_ok=True)

    available = []
    for name, exe in RUNTIMES:
        path = os.path.join(bindir, exe)
        if os.access(path, os.X_OK):
            available.append((name, path, supported(path)))
        else:
            log(f"perf: {name}: {exe} not built (its package missing?): skipped")
    if opts.runtimes:
        want = set(opts.runtimes.split(","))
        available = [a for a in available if a[0] in want]
    if not any(a[0] == "weft" for a in available):
        log(f"perf: {bindir}/bench_weft not found: build first (scripts/perf.sh does)")
        return 2
    runtimes = [a[0] for a in available]

    workloads = [w for w in WORKLOAD_ORDER
                 if not opts.only or w in opts.only.split(",")]
    env = dict(os.environ)
    env["PERF_CELL_BUDGET_S"] = str(opts.cell_budget)
    env["OMP_STACKSIZE"] = f"{opts.stack // 1024}K"
    opts.env_keys = ["PERF_CELL_BUDGET_S", "OMP_STACKSIZE"]
    bind = os.environ.get("WEFT_PROC_BIND", "")

    # The plan: workload, param, threads, runtime.
    plan = []
    for w in workloads:
        for param in PARAMS[m][w]:
            for t in threads_list:
                for name, path, wl in available:
                    if w not in wl:
                        continue
                    if name == BASELINE and t != threads_list[0]:
                        continue
                    plan.append((w, param, t, name, path))

    info = machine_info(repo)
    load0 = sh("cat /proc/loadavg")
    log(f"perf: mode {m}, threads {threads_list}, runs {opts.runs}, cell budget "
        f"{opts.cell_budget:g} s, timeout {opts.timeout} s, {len(plan)} invocations")
    log(f"perf: runtimes {', '.join(runtimes)}; weft bind: "
        f"{bind or 'not pinned (WEFT_PROC_BIND unset)'}; load average {load0}")

    records, failures = [], {}
    start = time.monotonic()
    for i, (w, param, t, name, path) in enumerate(plan, 1):
        runs = opts.idle_runs if w == "idle" else opts.runs
        t0 = time.monotonic()
        recs, fail = run_one(path, w, param, t, runs, env, opts)
        dt = time.monotonic() - t0
        records.extend(recs)
        status = "ok"
        if fail:
            failures[(w, param, name, t)] = fail
            status = fail["kind"]
            loud(fail, f"{name} {w} {param} threads={t}")
        first = next((r for r in recs if r["run"] >= 1), None)
        med = ""
        if recs:
            row = Row(first["workload"], param)
            vals = [row.value(r) for r in recs if r["workload"] == first["workload"]]
            med = f"median {fmt(statistics.median(vals))} {row.label().rsplit(', ', 1)[1]}"
        log(f"[{i:3d}/{len(plan)}] {w:8s} {param:>8s} T={t:<3d} {name:9s} {status:7s} "
            f"{dt:6.1f} s  {med}")
    wall = time.monotonic() - start
    load1 = sh("cat /proc/loadavg")

    # Rows, in order; latency expands to p50 and p99.
    rows = []
    for w in workloads:
        for param in PARAMS[m][w]:
            if w == "latency":
                rows += [Row("latency-p50", param), Row("latency-p99", param)]
            else:
                rows.append(Row(w, param))

    with open(os.path.join(results, "perf.csv"), "w", newline="") as f:
        cw = csv.writer(f)
        cw.writerow(["workload", "param", "runtime", "threads", "run", "seconds", "metric",
                     "unit", "rss_kb"])
        for r in records:
            cw.writerow([r["workload"], r["param"], r["runtime"], r["threads"], r["run"],
                         f"{r['seconds']:.9f}", f"{r['metric']:.6g}", r["unit"], r["rss_kb"]])

    main_t, metric_t, rss_t = build_tables(
        records, failures, rows, threads_list, runtimes,
        lambda row: opts.idle_runs if row.base == "idle" else opts.runs)
    pngs = plot(results, rows, threads_list, runtimes, records)

    notes = [
        f"Each cell: median [min–max] of {opts.runs} measured runs after one warm-up at a "
        "reduced size (fib n-5, nqueens n-2, UTS T1S/T3S, fan-out and latency a tenth); "
        f"a cell marked '(k runs)' stopped early at the cell budget ({opts.cell_budget:g} s "
        "of measured runs, at least 3 runs). idle: "
        f"{opts.idle_runs} window per cell.",
        "weft/best peer: weft's median over the best peer's (seq excluded); below 1.0 weft "
        "is faster. goal: weft faster than every runtime the goal names (fib, nqueens, UTS: "
        "tbb and both OpenMPs; fan-out and latency: libuv and the mutex pool).",
        "Threads: weft, tbb (fan-out, latency), libuv, mutex: <threads> workers plus the "
        "submitting thread; tbb fork-join and OpenMP: <threads> threads in all, the one "
        "that starts the work included (OpenMP fan-out: one thread of the team creates the "
        "tasks). OpenMP has no latency row (a task waited for by its creator runs in it). "
        "OpenMP fan-out: libgomp and libomp stop deferring tasks once a few dozen per "
        "thread are queued (the creating thread runs the next ones itself), so that row "
        "mostly measures their inline path, not a hand-off to other threads.",
        "seq: the same recursion with plain calls, 1 thread (fib: ns per call).",
        f"weft: {'pinned, WEFT_PROC_BIND=' + bind if bind else 'not pinned'}; the peers are "
        "not pinned either. Worker stacks "
        f"{opts.stack >> 20} MiB. weft's benchmark is linked with jemalloc (weft's "
        "allocator); the peers use glibc malloc (TBB its own task allocator).",
    ]
    header = [
        f"machine: {info['cpu']}, {info['nproc']} CPUs, Linux {info['kernel']}",
        f"date: {info['date']}; load average (/proc/loadavg) at start: {load0}; at end: "
        f"{load1}",
        f"compilers: {info['gcc']}; {info['clang']}",
        f"libraries: {info['libs']}",
        f"weft: {info['weft']}; mode {m}; threads {','.join(map(str, threads_list))}; "
        f"wall time {wall:.0f} s",
    ]

    print()
    for h in header:
        print(h)
    print()
    print(text_table(main_t))
    print()
    print("Derived metric (median):")
    print(text_table(metric_t))
    print()
    print("Peak memory, max RSS over the cell's runs (MiB):")
    print(text_table(rss_t))
    print()
    for n in notes:
        print("* " + n)

    with open(os.path.join(results, "table.md"), "w") as f:
        f.write("# weft perf suite\n\n")
        for h in header:
            f.write(f"- {h}\n")
        f.write("\n## Time / latency / idle CPU\n\n" + md_table(main_t) + "\n")
        f.write("\n## Derived metric (median)\n\n" + md_table(metric_t) + "\n")
        f.write("\n## Peak memory: max RSS (MiB)\n\n" + md_table(rss_t) + "\n")
        f.write("\n## Notes\n\n" + "".join(f"- {n}\n" for n in notes))
        if failures:
            f.write("\n## Failures\n\n")
            for (w, param, name, t), fl in failures.items():
                f.write(f"- **{fl['kind']}** {name} {w} {param} threads={t}: {fl['why']}; "
                        f"reproduce: `{fl['cmd']}`\n")
        if pngs:
            f.write("\n## Plots\n\n" + "".join(
                f"![{os.path.basename(p)}]({os.path.basename(p)})\n" for p in pngs))

    print(f"\nwrote {results}/perf.csv, table.md and {len(pngs)} plots; wall time {wall:.0f} s")
    if failures:
        log(f"\n{len(failures)} benchmark invocation(s) FAILED:")
        for (w, param, name, t), fl in failures.items():
            log(f"  {fl['kind']}: {name} {w} {param} threads={t}: {fl['why']}\n"
                f"    reproduce: {fl['cmd']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
