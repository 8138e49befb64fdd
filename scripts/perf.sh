#!/usr/bin/env bash
# The perf suite, in one command: installs what it needs (scripts/setup.sh --perf), builds a
# Release tree in build/perf (tests off), runs weft and its peers (oneTBB, OpenMP with
# libgomp and LLVM's libomp, libuv's pool, a mutex+condvar pool) over fib, nqueens, UTS,
# fan-out, latency and idle, and prints the table (weft's ratio to the best peer: below 1.0
# weft is faster). Writes results/perf.csv, results/table.md, results/perf-<workload>.png.
#
# Usage: scripts/perf.sh [--quick | --large] [--threads 1,2,4] [--runs N] [run.py options]
#   --quick       tiny sizes, a smoke run in under a minute (CI)
#   --large       fib 40, nqueens 14, UTS T1L/T3L, fan-out 10M (an hour or more)
#   --threads L   comma-separated thread counts (default: 1..nproc)
#   --runs N      measured runs per cell (default 5)
#   --only W      some workloads only (fib,nqueens,uts,fanout,latency,idle); see
#                 `python3 perf/run.py --help` for the rest (--runtimes, --timeout,
#                 --cell-budget, --idle-runs)
# Environment: WEFT_PERF_BUILD (build directory, default build/perf), WEFT_PERF_RESULTS
# (default results), WEFT_PERF_JOBS (build parallelism, default nproc), WEFT_PROC_BIND (pin
# weft's workers: close/spread; default unpinned, like the peers).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${WEFT_PERF_BUILD:-build/perf}
results=${WEFT_PERF_RESULTS:-results}

for a in "$@"; do
    if [[ $a == -h || $a == --help ]]; then
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
    fi
done

"$root/scripts/setup.sh" --perf
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DWEFT_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j "${WEFT_PERF_JOBS:-$(nproc)}"
exec python3 "$root/perf/run.py" --build "$build" --results "$results" "$@"
