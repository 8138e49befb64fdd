/*
 * perf/common.h: what every benchmark program of the perf suite shares (weft's and the
 * peers', C and C++): the command line, the clock, CPU time and peak memory, the harness
 * that runs one warm-up and then the measured runs, the RESULT lines the runner parses,
 * percentiles, and the expected answers every workload checks.
 *
 * Command line of every benchmark program:
 *     <program> list                                  the workloads it implements
 *     <program> <workload> <param> <threads> <runs>   one warm-up, then <runs> runs
 * Output, one line per measured run (the runner, perf/run.py, reads nothing else):
 *     RESULT workload=fib param=35 runtime=weft threads=2 run=3 seconds=0.123 metric=8.2
 *            unit=ns/spawn rss_kb=4567
 * A wrong answer prints "FAIL ..." on stderr and exits with status 1.
 */
#ifndef WEFT_PERF_COMMON_H
#define WEFT_PERF_COMMON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* ---------------------------------------------------------------------------------------
 * Clock, CPU time, memory
 * ------------------------------------------------------------------------------------- */
static inline int64_t perf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* User + system CPU time of the whole process (all threads), in nanoseconds. */
static inline int64_t perf_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* Peak resident set size of this program so far, in KiB: VmHWM from /proc/self/status.
 * Not getrusage's ru_maxrss: on Linux that survives execve, so a benchmark started by a
 * large parent (the Python runner, ~13 MB) would report the parent's peak. */
static inline long perf_max_rss_kb(void)
{
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f != NULL) {
        char line[256];
        while (fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "VmHWM:", 6) == 0) {
                kb = strtol(line + 6, NULL, 10);
                break;
            }
        fclose(f);
    }
    if (kb < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = ru.ru_maxrss;
    }
    return kb;
}

static inline void perf_sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---------------------------------------------------------------------------------------
 * Failing loudly
 * ------------------------------------------------------------------------------------- */
static inline void perf_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void perf_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stdout);
    exit(1);
}

static inline void *perf_xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        perf_die("out of memory (%zu bytes)", n);
    return p;
}

/* ---------------------------------------------------------------------------------------
 * The command line and the harness
 * ------------------------------------------------------------------------------------- */
typedef struct perf_args {
    const char *runtime;  /* "weft", "tbb", ... */
    const char *workload; /* "fib", "nqueens", "uts", "fanout", "latency", "idle" */
    const char *param;    /* as given: "35", "T1", ... */
    long n;               /* param as a number (0 when it is not one) */
    int threads;
    int runs;
} perf_args;

/* Parses argv; handles "list" itself (prints `workloads` and exits). */
static inline perf_args perf_parse(int argc, char **argv, const char *runtime,
                                   const char *workloads)
{
    perf_args a;
    memset(&a, 0, sizeof(a));
    a.runtime = runtime;
    if (argc == 2 && strcmp(argv[1], "list") == 0) {
        printf("WORKLOADS %s\n", workloads);
        exit(0);
    }
    if (argc != 5) {
        fprintf(stderr,
                "usage: %s <workload> <param> <threads> <runs>\n"
                "       %s list\n"
                "workloads (%s): %s\n",
                argv[0], argv[0], runtime, workloads);
        exit(2);
    }
    a.workload = argv[1];
    a.param = argv[2];
    a.n = strtol(argv[2], NULL, 10);
    a.threads = atoi(argv[3]);
    a.runs = atoi(argv[4]);
    if (a.threads < 1 || a.threads > 1024 || a.runs < 1)
        perf_die("bad threads (%s) or runs (%s)", argv[3], argv[4]);
    return a;
}

static inline void perf_unsupported(const perf_args *a)
{
    fprintf(stderr, "FAIL %s: unknown workload '%s'\n", a->runtime, a->workload);
    exit(2);
}

/* Prints one RESULT line. `workload` overrides a->workload (latency prints two). */
static inline void perf_result(const perf_args *a, const char *workload, int run, double seconds,
                               double metric, const char *unit)
{
    printf("RESULT workload=%s param=%s runtime=%s threads=%d run=%d seconds=%.9f metric=%.6g "
           "unit=%s rss_kb=%ld\n",
           workload != NULL ? workload : a->workload, a->param, a->runtime, a->threads, run,
           seconds, metric, unit, perf_max_rss_kb());
    fflush(stdout);
}

/* One execution of a workload: returns its wall time in seconds and sets *metric (checks
 * its answer itself, dying on a mismatch). */
typedef double (*perf_once_fn)(const perf_args *a, void *ctx, double *metric);

/* The warm-up runs the workload once at a reduced size (about a tenth of the work or less):
 * enough to start the runtime's threads and fill its allocator caches, without doubling
 * the time of a cell whose runs take seconds. */
static inline perf_args perf_warmup_args(const perf_args *a)
{
    static char buf[32];
    perf_args w = *a;
    if (strcmp(a->workload, "fib") == 0 && a->n >= 20) {
        w.n = a->n - 5;
    } else if (strcmp(a->workload, "nqueens") == 0 && a->n >= 10) {
        w.n = a->n - 2;
    } else if (strcmp(a->workload, "uts") == 0) {
        static const char *const map[][2] = {
            {"T1", "T1S"}, {"T3", "T3S"}, {"T1L", "T1"}, {"T3L", "T3"}};
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
            if (strcmp(a->param, map[i][0]) == 0)
                w.param = map[i][1];
        return w;
    } else if ((strcmp(a->workload, "fanout") == 0 || strcmp(a->workload, "latency") == 0 ||
                strncmp(a->workload, "map", 3) == 0 || strcmp(a->workload, "ascompleted") == 0 ||
                strcmp(a->workload, "parfor") == 0) &&
               a->n >= 1000) {
        w.n = a->n / 10;
    }
    snprintf(buf, sizeof(buf), "%ld", w.n);
    w.param = buf;
    return w;
}

/* The cell budget (environment PERF_CELL_BUDGET_S, seconds; unset or 0: none): once the
 * measured runs have taken that long, at least PERF_MIN_RUNS of them, the next is not
 * started if it would end past the budget. Lets the slowest peers at the largest sizes keep
 * a default suite within minutes; the runner marks cells that stopped early. */
#define PERF_MIN_RUNS 3
static inline int perf_more_runs(const perf_args *a, int done, double elapsed, double last)
{
    if (done >= a->runs)
        return 0;
    if (done < PERF_MIN_RUNS)
        return 1;
    const char *e = getenv("PERF_CELL_BUDGET_S");
    double budget = e != NULL ? strtod(e, NULL) : 0.0;
    return !(budget > 0 && elapsed + last > budget);
}

/* One warm-up at a reduced size (not reported), then up to a->runs measured runs, each
 * printed. */
static inline void perf_loop(const perf_args *a, perf_once_fn once, void *ctx, const char *unit)
{
    double metric = 0, elapsed = 0, last = 0;
    perf_args w = perf_warmup_args(a);
    once(&w, ctx, &metric);
    for (int r = 1; perf_more_runs(a, r - 1, elapsed, last); r++) {
        last = once(a, ctx, &metric);
        elapsed += last;
        perf_result(a, NULL, r, last, metric, unit);
    }
}

/* ---------------------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------------------- */
static inline int perf_cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* The q-quantile (0..1) of v[0..n), nearest rank; sorts v. */
static inline int64_t perf_quantile_i64(int64_t *v, size_t n, double q)
{
    qsort(v, n, sizeof(*v), perf_cmp_i64);
    size_t k = (size_t)(q * (double)n);
    return v[k >= n ? n - 1 : k];
}

/* Latency workload: `roundtrip(ctx, i)` submits task i, waits for it and checks it. One
 * warm-up of a->n / 10 round trips, then runs of a->n, each timed round trip by round trip;
 * each run prints two lines: workload latency-p50 and latency-p99, metric in µs, seconds =
 * the whole run. */
typedef void (*perf_roundtrip_fn)(void *ctx, long i);

static inline void perf_latency_loop(const perf_args *a, perf_roundtrip_fn roundtrip, void *ctx)
{
    size_t n = (size_t)a->n;
    if (a->n < 1)
        perf_die("%s latency: bad count '%s'", a->runtime, a->param);
    int64_t *lat = (int64_t *)perf_xmalloc(n * sizeof(*lat));
    perf_args w = perf_warmup_args(a);
    for (long i = 0; i < w.n; i++)
        roundtrip(ctx, i);
    double elapsed = 0, last = 0;
    for (int r = 1; perf_more_runs(a, r - 1, elapsed, last); r++) {
        int64_t start = perf_now_ns();
        for (size_t i = 0; i < n; i++) {
            int64_t t0 = perf_now_ns();
            roundtrip(ctx, (long)i);
            lat[i] = perf_now_ns() - t0;
        }
        last = (double)(perf_now_ns() - start) / 1e9;
        elapsed += last;
        int64_t p50 = perf_quantile_i64(lat, n, 0.50);
        int64_t p99 = perf_quantile_i64(lat, n, 0.99);
        perf_result(a, "latency-p50", r, last, (double)p50 / 1000.0, "us");
        perf_result(a, "latency-p99", r, last, (double)p99 / 1000.0, "us");
    }
    free(lat);
}

/* Idle workload: measures the process's CPU time over `seconds` of doing nothing (the
 * caller has just made its runtime do some work), prints metric = % of one core. */
static inline void perf_idle_measure(const perf_args *a, int run, double seconds)
{
    int64_t c0 = perf_cpu_ns(), t0 = perf_now_ns();
    perf_sleep_ns((int64_t)(seconds * 1e9));
    int64_t c1 = perf_cpu_ns(), t1 = perf_now_ns();
    double wall = (double)(t1 - t0) / 1e9;
    perf_result(a, NULL, run, wall, 100.0 * (double)(c1 - c0) / (double)(t1 - t0), "%core");
}

/* The idle window, in seconds, from the param ("5", "0.5"). */
static inline double perf_idle_seconds(const perf_args *a)
{
    double s = strtod(a->param, NULL);
    if (!(s > 0 && s <= 3600))
        perf_die("idle: bad window '%s' (seconds)", a->param);
    return s;
}

/* ---------------------------------------------------------------------------------------
 * Expected answers
 * ------------------------------------------------------------------------------------- */
/* fib(n), iteratively. */
static inline long perf_fib_expected(long n)
{
    long a = 0, b = 1;
    for (long i = 0; i < n; i++) {
        long t = a + b;
        a = b;
        b = t;
    }
    return a;
}

/* Number of calls fib(k) with k >= 2 in the recursive computation of fib(n): the spawns
 * (and the non-leaf calls of the sequential version): fib(n+1) - 1. */
static inline long perf_fib_spawns(long n)
{
    return n < 2 ? 0 : perf_fib_expected(n + 1) - 1;
}

static inline void perf_fib_check(const char *runtime, long n, long got)
{
    long want = perf_fib_expected(n);
    if (got != want)
        perf_die("%s fib(%ld) = %ld, expected %ld", runtime, n, got, want);
}

#define NQ_MAX 15
/* Solutions of n-queens, n = 0..15. */
static const long perf_nq_solutions[NQ_MAX + 1] = {
    1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724, 2680, 14200, 73712, 365596, 2279184};
/* Legal placements (nodes of the backtracking tree below the root) = the tasks of the
 * BOTS-style parallel version, n = 0..15. Counted by `bench_seq count 15`. */
static const long perf_nq_tasks[NQ_MAX + 1] = {
    0, 1, 2, 5, 16, 53, 152, 551, 2056, 8393, 35538, 166925, 856188, 4674889, 27358552, 171129071};

static inline void perf_nq_param(const char *runtime, long n)
{
    if (n < 1 || n > NQ_MAX)
        perf_die("%s nqueens: n must be 1..%d, not %ld", runtime, NQ_MAX, n);
}

static inline void perf_nq_check(const char *runtime, long n, long got)
{
    if (got != perf_nq_solutions[n])
        perf_die("%s nqueens(%ld) = %ld solutions, expected %ld", runtime, n, got,
                 perf_nq_solutions[n]);
}

/* Can a queen go at (row, col) given the queens b[0..row) (b[i] = column in row i)? */
static inline int perf_nq_ok(const char *b, int row, int col)
{
    for (int i = 0; i < row; i++) {
        int d = b[i] - col;
        if (d == 0 || d == row - i || -d == row - i)
            return 0;
    }
    return 1;
}

/* Fan-out: the tasks' values are 1..n; their sum is checked. */
static inline void perf_fanout_check(const char *runtime, long n, long got)
{
    long want = n * (n + 1) / 2;
    if (got != want)
        perf_die("%s fanout(%ld): sum of results %ld, expected %ld", runtime, n, got, want);
}

/* map: out[i] = perf_map_item(i) for i in 0..n-1, a tiny pure function; the whole output
 * array is checked, in order. */
static inline long perf_map_item(long x)
{
    return 3 * x + 1;
}

static inline void perf_map_check(const char *runtime, long n, void *const *out)
{
    for (long i = 0; i < n; i++)
        if ((long)(intptr_t)out[i] != perf_map_item(i))
            perf_die("%s map(%ld): out[%ld] = %ld, expected %ld", runtime, n, i,
                     (long)(intptr_t)out[i], perf_map_item(i));
}

static inline void perf_count_check(const char *runtime, const char *what, long n, long got)
{
    if (got != n)
        perf_die("%s %s: %ld tasks ran, expected %ld", runtime, what, got, n);
}

#endif /* WEFT_PERF_COMMON_H */
