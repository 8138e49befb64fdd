/*
 * bench_omp_gomp / bench_omp_llvm: OpenMP tasks (runtime "omp-gomp": gcc + libgomp,
 * "omp-llvm": clang + LLVM's libomp; one source, two executables).
 *
 *   fib <n>         #pragma omp task for fib(n-1) at every call with n >= 2 (no cutoff),
 *                   fib(n-2) inline, taskwait; started by one thread of the team (single).
 *   nqueens <n>     a task per legal placement at every row, the board copied in the task
 *                   (as in BOTS nqueens).
 *   uts <tree>      a task per child node.
 *   fanout <n>      one thread of the team creates n tasks (omp single), the region's
 *                   barrier waits for all. The creating thread is one of the <threads>: there
 *                   is no "outside" thread in OpenMP; it also runs tasks once done.
 *   idle <seconds>  CPU time over <seconds> with nothing to do, after a parallel region
 *                   (default wait policy: the team's threads spin, then sleep).
 * No latency workload: an OpenMP task waited for by its creator mostly runs in the
 * creator itself (taskwait executes it), so it would not measure a hand-off.
 */
#include "common.h"
#include "uts.h"

#include <omp.h>
#include <stdatomic.h>

#ifndef OMP_RUNTIME_NAME
#define OMP_RUNTIME_NAME "omp"
#endif

static int nthreads;

/* ---------------------------------------------------------------------------------------
 * fib
 * ------------------------------------------------------------------------------------- */
static long fib(long n)
{
    if (n < 2)
        return n;
    long a, b;
#pragma omp task shared(a) firstprivate(n)
    a = fib(n - 1);
    b = fib(n - 2);
#pragma omp taskwait
    return a + b;
}

static double fib_once(const perf_args *a, void *ctx, double *metric)
{
    (void)ctx;
    long v = 0, n = a->n;
    int64_t t0 = perf_now_ns();
#pragma omp parallel num_threads(nthreads) shared(v, n)
#pragma omp single
    v = fib(n);
    int64_t t1 = perf_now_ns();
    perf_fib_check(a->runtime, a->n, v);
    *metric = (double)(t1 - t0) / (double)perf_fib_spawns(a->n);
    return (double)(t1 - t0) / 1e9;
}

/* ---------------------------------------------------------------------------------------
 * nqueens
 * ------------------------------------------------------------------------------------- */
static long nqueens(int n, int row, const char *board)
{
    if (row == n)
        return 1;
    long count[NQ_MAX];
    int k = 0;
    for (int col = 0; col < n; col++) {
        if (!perf_nq_ok(board, row, col))
            continue;
#pragma omp task firstprivate(col, k, n, row, board) shared(count)
        {
            char b[NQ_MAX];
            memcpy(b, board, (size_t)row);
            b[row] = (char)col;
            count[k] = nqueens(n, row + 1, b);
        }
        k++;
    }
#pragma omp taskwait
    long sum = 0;
    for (int i = 0; i < k; i++)
        sum += count[i];
    return sum;
}

static double nqueens_once(const perf_args *a, void *ctx, double *metric)
{
    (void)ctx;
    char board[NQ_MAX] = {0};
    long v = 0;
    int n = (int)a->n;
    int64_t t0 = perf_now_ns();
#pragma omp parallel num_threads(nthreads) shared(v, n, board)
#pragma omp single
    v = nqueens(n, 0, board);
    int64_t t1 = perf_now_ns();
    perf_nq_check(a->runtime, a->n, v);
    *metric = (double)(t1 - t0) / (double)perf_nq_tasks[a->n];
    return (double)(t1 - t0) / 1e9;
}

/* ---------------------------------------------------------------------------------------
 * UTS
 * ------------------------------------------------------------------------------------- */
static const uts_tree *tree;

static long uts(const uts_node *node)
{
    int nc = uts_num_children(tree, node);
    if (nc == 0)
        return 1;
    uts_node kbuf[UTS_STACK_KIDS];
    long cbuf[UTS_STACK_KIDS];
    uts_node *kid = kbuf;
    long *count = cbuf;
    if (nc > UTS_STACK_KIDS) {
        kid = perf_xmalloc((size_t)nc * sizeof(*kid));
        count = perf_xmalloc((size_t)nc * sizeof(*count));
    }
    for (int i = 0; i < nc; i++) {
        uts_child(node, i, &kid[i]);
#pragma omp task firstprivate(i, kid, count)
        count[i] = uts(&kid[i]);
    }
#pragma omp taskwait
    long sum = 1;
    for (int i = 0; i < nc; i++)
        sum += count[i];
    if (nc > UTS_STACK_KIDS) {
        free(kid);
        free(count);
    }
    return sum;
}

static double uts_once(const perf_args *a, void *ctx, double *metric)
{
    (void)ctx;
    tree = uts_find(a->runtime, a->param);
    uts_node root;
    long v = 0;
    int64_t t0 = perf_now_ns();
    uts_root(tree, &root);
#pragma omp parallel num_threads(nthreads) shared(v, root)
#pragma omp single
    v = uts(&root);
    int64_t t1 = perf_now_ns();
    uts_check(a->runtime, tree, v);
    *metric = (double)(t1 - t0) / (double)v;
    return (double)(t1 - t0) / 1e9;
}

/* ---------------------------------------------------------------------------------------
 * fan-out, idle
 * ------------------------------------------------------------------------------------- */
static _Atomic long fan_sum;

static double fanout_once(const perf_args *a, void *ctx, double *metric)
{
    (void)ctx;
    long n = a->n;
    atomic_store(&fan_sum, 0);
    int64_t t0 = perf_now_ns();
#pragma omp parallel num_threads(nthreads) shared(n)
#pragma omp single
    for (long i = 0; i < n; i++) {
#pragma omp task firstprivate(i)
        atomic_fetch_add_explicit(&fan_sum, i + 1, memory_order_relaxed);
    }
    int64_t t1 = perf_now_ns();
    perf_fanout_check(a->runtime, n, atomic_load(&fan_sum));
    *metric = (double)(t1 - t0) / (double)n;
    return (double)(t1 - t0) / 1e9;
}

/* map: an OpenMP taskloop over the items (the runtime chooses the grain). */
static double map_once(const perf_args *a, void *ctx, double *metric)
{
    void **out = ctx;
    long n = a->n;
    size_t un = (size_t)n; /* unsigned: clang's taskloop lowering warns on a signed bound */
    int64_t t0 = perf_now_ns();
#pragma omp parallel num_threads(nthreads) shared(un, out)
#pragma omp single
#pragma omp taskloop
    for (size_t i = 0; i < un; i++)
        out[i] = (void *)(intptr_t)perf_map_item((long)i);
    int64_t t1 = perf_now_ns();
    perf_map_check(a->runtime, n, out);
    *metric = (double)(t1 - t0) / (double)n;
    return (double)(t1 - t0) / 1e9;
}

int main(int argc, char **argv)
{
    perf_args a =
        perf_parse(argc, argv, OMP_RUNTIME_NAME, "fib nqueens uts fanout map parfor idle");
    nthreads = a.threads;
    omp_set_dynamic(0);

    if (strcmp(a.workload, "fib") == 0) {
        perf_loop(&a, fib_once, NULL, "ns/spawn");
    } else if (strcmp(a.workload, "nqueens") == 0) {
        perf_nq_param(a.runtime, a.n);
        perf_loop(&a, nqueens_once, NULL, "ns/task");
    } else if (strcmp(a.workload, "uts") == 0) {
        perf_loop(&a, uts_once, NULL, "ns/node");
    } else if (strcmp(a.workload, "fanout") == 0) {
        perf_loop(&a, fanout_once, NULL, "ns/task");
    } else if (strcmp(a.workload, "map") == 0 || strcmp(a.workload, "parfor") == 0) {
        void **out = perf_xmalloc((size_t)a.n * sizeof(*out));
        perf_loop(&a, map_once, out, "ns/item");
        free(out);
    } else if (strcmp(a.workload, "idle") == 0) {
        double window = perf_idle_seconds(&a);
        perf_args w = a;
        for (int run = 1; run <= a.runs; run++) {
            double m;
            w.n = 10000;
            fanout_once(&w, NULL, &m);
            w.n = 20;
            fib_once(&w, NULL, &m);
            perf_idle_measure(&a, run, window);
        }
    } else {
        perf_unsupported(&a);
    }
    return 0;
}
