/*
 * bench_libuv: libuv's thread pool (runtime "libuv"): uv_queue_work from the loop thread,
 * completion through the loop (after_work_cb, run by uv_run). UV_THREADPOOL_SIZE is set to
 * <threads> before the pool starts (libuv reads it when the first work is queued).
 *
 *   fanout <n>      queue n work requests (caller-owned uv_work_t, one array), then uv_run
 *                   until every after_work_cb ran.
 *   latency <n>     queue one empty work request and uv_run until it completes, n times.
 *   idle <seconds>  CPU time over <seconds> with nothing to do, after work.
 */
#include "common.h"

#include <stdatomic.h>
#include <uv.h>

static uv_loop_t loop;
static _Atomic long work_sum; /* sum of the work callbacks' values (worker threads) */
static long after_count;      /* after_work callbacks run (loop thread) */

static void fan_work(uv_work_t *req)
{
    atomic_fetch_add_explicit(&work_sum, (long)(intptr_t)req->data, memory_order_relaxed);
}

static void fan_after(uv_work_t *req, int status)
{
    (void)req;
    if (status != 0)
        perf_die("libuv after_work: %s", uv_strerror(status));
    after_count++;
}

static void queue(uv_work_t *req, void *data, uv_work_cb work, uv_after_work_cb after)
{
    req->data = data;
    int rc = uv_queue_work(&loop, req, work, after);
    if (rc != 0)
        perf_die("uv_queue_work: %s", uv_strerror(rc));
}

static double fanout_once(const perf_args *a, void *ctx, double *metric)
{
    uv_work_t *reqs = ctx;
    long n = a->n;
    atomic_store(&work_sum, 0);
    after_count = 0;
    int64_t t0 = perf_now_ns();
    for (long i = 0; i < n; i++)
        queue(&reqs[i], (void *)(intptr_t)(i + 1), fan_work, fan_after);
    uv_run(&loop, UV_RUN_DEFAULT);
    int64_t t1 = perf_now_ns();
    perf_count_check(a->runtime, "fanout after_work", n, after_count);
    perf_fanout_check(a->runtime, n, atomic_load(&work_sum));
    *metric = (double)(t1 - t0) / (double)n;
    return (double)(t1 - t0) / 1e9;
}

static void empty_work(uv_work_t *req)
{
    (void)req;
}

static void roundtrip(void *ctx, long i)
{
    uv_work_t *req = ctx;
    long before = after_count;
    queue(req, NULL, empty_work, fan_after);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (after_count != before + 1)
        perf_die("libuv latency: task %ld: after_work did not run", i);
}

int main(int argc, char **argv)
{
    perf_args a = perf_parse(argc, argv, "libuv", "fanout latency idle");
    char size[16];
    snprintf(size, sizeof(size), "%d", a.threads);
    setenv("UV_THREADPOOL_SIZE", size, 1);
    int rc = uv_loop_init(&loop);
    if (rc != 0)
        perf_die("uv_loop_init: %s", uv_strerror(rc));

    if (strcmp(a.workload, "fanout") == 0) {
        uv_work_t *reqs = perf_xmalloc((size_t)a.n * sizeof(*reqs));
        perf_loop(&a, fanout_once, reqs, "ns/task");
        free(reqs);
    } else if (strcmp(a.workload, "latency") == 0) {
        uv_work_t req;
        perf_latency_loop(&a, roundtrip, &req);
    } else if (strcmp(a.workload, "idle") == 0) {
        double window = perf_idle_seconds(&a);
        perf_args w = a;
        w.n = 10000;
        uv_work_t *reqs = perf_xmalloc((size_t)w.n * sizeof(*reqs));
        for (int run = 1; run <= a.runs; run++) {
            double m;
            fanout_once(&w, reqs, &m);
            perf_idle_measure(&a, run, window);
        }
        free(reqs);
    } else {
        perf_unsupported(&a);
    }
    uv_loop_close(&loop);
    return 0;
}
