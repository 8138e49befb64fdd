/*
 * bench_weft: weft's side of the perf suite (runtime "weft").
 *
 *   fib <n>         weft_spawn(fib(n-1)) at every call with n >= 2 (no cutoff), fib(n-2)
 *                   inline, weft_join; weft_task on the stack; the root under weft_run.
 *   nqueens <n>     a spawned task per legal placement at every row, board copied per task.
 *   uts <tree>      a spawned task per child node (see uts.h).
 *   fanout <n>      this (outside) thread weft_submits n tasks, keeping the futures, then
 *                   waits for each (weft_future_result) and releases it.
 *   latency <n>     weft_submit an empty task + weft_future_result + release, n times.
 *   map <n>         weft_map over n tiny items (automatic chunk size); ns per item.
 *   mapsubmit <n>   the same with a plain loop: weft_submit per item, then wait for each in
 *                   order (what weft_map's chunking saves).
 *   ascompleted <n> weft_submit n tiny tasks, then collect them with weft_as_completed.
 *   parfor <n>      the map's loop through weft_parallel_for: the body loops over a range
 *                   (as oneTBB's parallel_for and OpenMP's taskloop bodies do).
 *   idle <seconds>  CPU time the pool uses over <seconds> with nothing to do, after work.
 *
 * The pool has <threads> workers (weft_pool_options.num_threads); pinning follows
 * WEFT_PROC_BIND (the runner leaves it unset: not pinned, like the peers).
 */
#include "common.h"
#include "uts.h"

#include <weft.h>

/* The same program, linked against a weft built with libc malloc instead of jemalloc,
 * is "weft-libc" (perf/CMakeLists.txt): it measures what jemalloc buys on the paths that
 * allocate a future per task. */
#ifndef WEFT_BENCH_RUNTIME
#define WEFT_BENCH_RUNTIME "weft"
#endif
#ifndef WEFT_BENCH_WORKLOADS
#define WEFT_BENCH_WORKLOADS "fib nqueens uts fanout latency map mapsubmit ascompleted parfor idle"
#endif

static weft_pool *pool;

/* weft_spawn; any failure (even WEFT_ENOMEM, which the contract lets a caller absorb by
 * running the task itself) is worth a loud stop in a benchmark. */
static void spawn(weft_task *t, weft_fn fn, void *arg)
{
    int rc = weft_spawn(t, fn, arg);
    if (rc != 0)
        perf_die("weft_spawn: %s", weft_strerror(rc));
}

static intptr_t join(weft_task *t)
{
    int err = 0;
    void *v = weft_join(t, &err);
    if (err != 0)
        perf_die("weft_join: %s", weft_strerror(err));
    return (intptr_t)v;
}

static intptr_t run_root(weft_fn fn, void *arg)
{
    void *v = NULL;
    int rc = weft_run(pool, fn, arg, &v);
    if (rc != 0)
        perf_die("weft_run: %s", weft_strerror(rc));
    return (intptr_t)v;
}

/* ---------------------------------------------------------------------------------------
 * fib
 * ------------------------------------------------------------------------------------- */
static void *fib_task(void *arg)
{
    intptr_t n = (intptr_t)arg;
    if (n < 2)
        return arg;
    weft_task t;
    spawn(&t, fib_task, (void *)(n - 1));
    intptr_t b = (intptr_t)fib_task((void *)(n - 2));
    intptr_t a = join(&t);
    return (void *)(a + b);
}

static double fib_once(const perf_args *a, void *ctx, double *metric)
{
    (void)ctx;
    int64_t t0 = perf_now_ns();
    long v = (long)run_root(fib_task, (void *)(intptr_t)a->n);
    int64_t t1 = perf_now_ns();
    perf_fib_check(a->runtime, a->n, v);
    *metric = (double)(t1 - t0) / (double)perf_fib_spawns(a->n);
    return (double)(t1 - t0) / 1e9;
}

/* ---------------------------------------------------------------------------------------
 * nqueens
 * ------------------------------------------------------------------------------------- */
typedef struct nq_arg {
    int n, row;
    char board[NQ_MAX];
} nq_arg;

static void *nq_task(void *arg)
{
    const nq_arg *p = arg;
    if (p->row == p->n)
        return (void *)1;
    weft_task t[NQ_MAX];
    nq_arg c[NQ_MAX];
    int k = 0;
    for (int col = 0; col < p->n; col++) {
        if (!perf_nq_ok(p->board, p->row, col))
            continue;
        c[k].n = p->n;
        c[k].row = p->row + 1;
        memcpy(c[k].board, p->board, (size_t)p->row);
        c[k].board[p->row] = (char)col;
        spawn(&t[k], nq_task, &c[k]);
        k++;
    }
    intptr_t sum = 0;
    while (k-- > 0)
        sum += join(&t[k]);
    return (void *)sum;
}

static double nqueens_once(const perf_args *a, void *ctx, double *metric)
{
    (void)ctx;
    nq_arg root = {.n = (int)a->n, .row = 0};
    int64_t t0 = perf_now_ns();
    long v = (long)run_root(nq_task, &root);
    int64_t t1 = perf_now_ns();
    perf_nq_check(a->runtime, a->n, v);
    *metric = (double)(t1 - t0) / (double)perf_nq_tasks[a->n];
    return (double)(t1 - t0) / 1e9;
}

/* ---------------------------------------------------------------------------------------
 * UTS
 * ------------------------------------------------------------------------------------- */
static const uts_tree *tree;

static void *uts_task(void *arg)
{
    const uts_node *node = arg;
    int nc = uts_num_children(tree, node);
    if (nc == 0)
        return (void *)1;
    weft_task tbuf[UTS_STACK_KIDS];
    uts_node kbuf[UTS_STACK_KIDS];
    weft_task *t = tbuf;
    uts_node *kid = kbuf;
    if (nc > UTS_STACK_KIDS) {
        t = perf_xmalloc((size_t)nc * sizeof(*t));
        kid = perf_xmalloc((size_t)nc * sizeof(*kid));
    }
    for (int i = 0; i < nc; i++) {
        uts_child(node, i, &kid[i]);
        spawn(&t[i], uts_task, &kid[i]);
    }
    intptr_t sum = 1;
    for (int i = nc - 1; i >= 0; i--)
        sum += join(&t[i]);
    if (nc > UTS_STACK_KIDS) {
        free(t);
        free(kid);
    }
    return (void *)sum;
}

static double uts_once(const perf_args *a, void *ctx, double *metric)
{
    (void)ctx;
    tree = uts_find(a->runtime, a->param);
    uts_node root;
    int64_t t0 = perf_now_ns();
    uts_root(tree, &root);
    long v = (long)run_root(uts_task, &root);
    int64_t t1 = perf_now_ns();
    uts_check(a->runtime, tree, v);
    *metric = (double)(t1 - t0) / (double)v;
    return (double)(t1 - t0) / 1e9;
}

/* ---------------------------------------------------------------------------------------
 * fan-out, latency, idle
 * ------------------------------------------------------------------------------------- */
static void *identity(void *arg)
{
    return arg;
}

static void submit(weft_fn fn, void *arg, weft_future **f)
{
    int rc = weft_submit(pool, fn, arg, f);
    if (rc != 0)
        perf_die("weft_submit: %s", weft_strerror(rc));
}

static intptr_t result(weft_future *f)
{
    void *v = NULL;
    int rc = weft_future_result(f, WEFT_FOREVER, &v);
    if (rc != 0)
        perf_die("weft_future_result: %s", weft_strerror(rc));
    weft_future_release(f);
    return (intptr_t)v;
}

static double fanout_once(const perf_args *a, void *ctx, double *metric)
{
    weft_future **f = ctx;
    long n = a->n;
    int64_t t0 = perf_now_ns();
    for (long i = 0; i < n; i++)
        submit(identity, (void *)(intptr_t)(i + 1), &f[i]);
    long sum = 0;
    for (long i = 0; i < n; i++)
        sum += (long)result(f[i]);
    int64_t t1 = perf_now_ns();
    perf_fanout_check(a->runtime, n, sum);
    *metric = (double)(t1 - t0) / (double)n;
    return (double)(t1 - t0) / 1e9;
}

/* ---------------------------------------------------------------------------------------
 * map, mapsubmit, ascompleted
 * ------------------------------------------------------------------------------------- */
struct map_ctx {
    void **in, **out;
    weft_future **f;
};

static void *map_item(void *x)
{
    return (void *)(intptr_t)perf_map_item((long)(intptr_t)x);
}

static double map_once(const perf_args *a, void *ctx, double *metric)
{
    struct map_ctx *m = ctx;
    long n = a->n;
    int64_t t0 = perf_now_ns();
    size_t bad = 0;
    int rc = weft_map(pool, map_item, m->in, (size_t)n, m->out, NULL, &bad);
    int64_t t1 = perf_now_ns();
    if (rc != 0)
        perf_die("weft_map: %s at %zu", weft_strerror(rc), bad);
    perf_map_check(a->runtime, n, m->out);
    *metric = (double)(t1 - t0) / (double)n;
    return (double)(t1 - t0) / 1e9;
}

static double mapsubmit_once(const perf_args *a, void *ctx, double *metric)
{
    struct map_ctx *m = ctx;
    long n = a->n;
    int64_t t0 = perf_now_ns();
    for (long i = 0; i < n; i++)
        submit(map_item, m->in[i], &m->f[i]);
    for (long i = 0; i < n; i++)
        m->out[i] = (void *)result(m->f[i]);
    int64_t t1 = perf_now_ns();
    perf_map_check(a->runtime, n, m->out);
    *metric = (double)(t1 - t0) / (double)n;
    return (double)(t1 - t0) / 1e9;
}

static double ascompleted_once(const perf_args *a, void *ctx, double *metric)
{
    struct map_ctx *m = ctx;
    long n = a->n;
    int64_t t0 = perf_now_ns();
    for (long i = 0; i < n; i++)
        submit(identity, (void *)(intptr_t)(i + 1), &m->f[i]);
    weft_as_completed *it;
    int rc = weft_as_completed_init(m->f, (size_t)n, WEFT_FOREVER, &it);
    if (rc != 0)
        perf_die("weft_as_completed_init: %s", weft_strerror(rc));
    long sum = 0, got = 0;
    weft_future *f;
    while ((rc = weft_as_completed_next(it, &f)) == 0) {
        sum += (long)result(f); /* releases the iterator's reference */
        got++;
    }
    weft_as_completed_destroy(it);
    for (long i = 0; i < n; i++)
        weft_future_release(m->f[i]); /* ours, from weft_submit */
    int64_t t1 = perf_now_ns();
    if (rc != WEFT_EEND || got != n)
        perf_die("weft as_completed: %ld of %ld yielded, rc %d", got, n, rc);
    perf_fanout_check(a->runtime, n, sum);
    *metric = (double)(t1 - t0) / (double)n;
    return (double)(t1 - t0) / 1e9;
}

static int parfor_body(size_t begin, size_t end, void *arg)
{
    void **out = arg;
    for (size_t i = begin; i < end; i++)
        out[i] = (void *)(intptr_t)perf_map_item((long)i);
    return 0;
}

static double parfor_once(const perf_args *a, void *ctx, double *metric)
{
    struct map_ctx *m = ctx;
    long n = a->n;
    int64_t t0 = perf_now_ns();
    int rc = weft_parallel_for(pool, (size_t)n, 0, parfor_body, m->out);
    int64_t t1 = perf_now_ns();
    if (rc != 0)
        perf_die("weft_parallel_for: %s", weft_strerror(rc));
    perf_map_check(a->runtime, n, m->out);
    *metric = (double)(t1 - t0) / (double)n;
    return (double)(t1 - t0) / 1e9;
}

static void roundtrip(void *ctx, long i)
{
    (void)ctx;
    weft_future *f;
    submit(identity, (void *)(intptr_t)(i + 1), &f);
    if (result(f) != (intptr_t)(i + 1))
        perf_die("weft latency: task %ld: wrong result", i);
}

static void idle(const perf_args *a)
{
    double window = perf_idle_seconds(a);
    weft_future **f = perf_xmalloc(10000 * sizeof(*f));
    perf_args w = *a;
    w.n = 10000;
    for (int run = 1; run <= a->runs; run++) {
        double m;
        fanout_once(&w, f, &m); /* some work first, then nothing */
        if (run_root(fib_task, (void *)20) != 6765)
            perf_die("weft idle: fib(20) wrong");
        perf_idle_measure(a, run, window);
    }
    free(f);
}

int main(int argc, char **argv)
{
    perf_args a = perf_parse(argc, argv, WEFT_BENCH_RUNTIME, WEFT_BENCH_WORKLOADS);
    weft_pool_options o;
    weft_pool_options_init(&o);
    o.num_threads = (unsigned)a.threads;
    int rc = weft_pool_create(&o, &pool);
    if (rc != 0)
        perf_die("weft_pool_create(%d threads): %s", a.threads, weft_strerror(rc));

    if (strcmp(a.workload, "fib") == 0) {
        perf_loop(&a, fib_once, NULL, "ns/spawn");
    } else if (strcmp(a.workload, "nqueens") == 0) {
        perf_nq_param(a.runtime, a.n);
        perf_loop(&a, nqueens_once, NULL, "ns/task");
    } else if (strcmp(a.workload, "uts") == 0) {
        perf_loop(&a, uts_once, NULL, "ns/node");
    } else if (strcmp(a.workload, "fanout") == 0) {
        weft_future **f = perf_xmalloc((size_t)a.n * sizeof(*f));
        perf_loop(&a, fanout_once, f, "ns/task");
        free(f);
    } else if (strcmp(a.workload, "latency") == 0) {
        perf_latency_loop(&a, roundtrip, NULL);
    } else if (strcmp(a.workload, "map") == 0 || strcmp(a.workload, "mapsubmit") == 0 ||
               strcmp(a.workload, "ascompleted") == 0 || strcmp(a.workload, "parfor") == 0) {
        struct map_ctx m = {perf_xmalloc((size_t)a.n * sizeof(void *)),
                            perf_xmalloc((size_t)a.n * sizeof(void *)),
                            perf_xmalloc((size_t)a.n * sizeof(weft_future *))};
        for (long i = 0; i < a.n; i++)
            m.in[i] = (void *)(intptr_t)i;
        perf_once_fn once = strcmp(a.workload, "map") == 0         ? map_once
                            : strcmp(a.workload, "mapsubmit") == 0 ? mapsubmit_once
                            : strcmp(a.workload, "parfor") == 0    ? parfor_once
                                                                   : ascompleted_once;
        perf_loop(&a, once, &m, "ns/item");
        free(m.in);
        free(m.out);
        free(m.f);
    } else if (strcmp(a.workload, "idle") == 0) {
        idle(&a);
    } else {
        perf_unsupported(&a);
    }

    weft_stats st;
    weft_pool_stats(pool, &st);
    fprintf(stderr,
            "INFO weft %s %s threads=%d: tasks_run=%llu spawns=%llu submits=%llu steals=%llu "
            "failed_steals=%llu parks=%llu wakes=%llu inline_joins=%llu\n",
            a.workload, a.param, a.threads, (unsigned long long)st.tasks_run,
            (unsigned long long)st.spawns, (unsigned long long)st.submits,
            (unsigned long long)st.steals, (unsigned long long)st.failed_steals,
            (unsigned long long)st.parks, (unsigned long long)st.wakes,
            (unsigned long long)st.inline_joins);
    rc = weft_pool_destroy(pool);
    if (rc != 0)
        perf_die("weft_pool_destroy: %s", weft_strerror(rc));
    return 0;
}
