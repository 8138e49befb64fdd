/*
 * weft_map: the counterpart of Python's Executor.map (CPython's test_map, test_map_exception,
 * test_map_timeout, the buffersize tests): results in input order equal to a serial map for
 * every chunking, a bounded window (never more than window*chunksize elements in flight), the
 * failure reported at the failing element, the timeout (the rest cancelled, nothing runs or
 * writes after the call), map from inside a task, a shut down or broken pool, bad arguments.
 *
 * Nothing asserts on durations. Tasks record what they saw in atomics; the main thread asserts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"
#include "weft.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SENTINEL ((void *)(intptr_t)-12345)

/* ---------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------- */

static weft_pool *make_pool(unsigned n)
{
    return make_pool_named(n, "tmap");
}

static void *square_plus_one(void *x)
{
    intptr_t v = (intptr_t)x;
    return (void *)(v * v + 1);
}

static void **make_inputs(size_t n)
{
    void **in = malloc(n * sizeof(*in));
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        in[i] = (void *)(intptr_t)i;
    return in;
}

static void **make_outputs(size_t n)
{
    void **out = malloc(n * sizeof(*out));
    assert_non_null(out);
    for (size_t i = 0; i < n; i++)
        out[i] = SENTINEL;
    return out;
}

/* Runs weft_map of square_plus_one and checks it against the serial map. */
static void check_map_matches_serial(weft_pool *p, size_t n, size_t chunksize, size_t window)
{
    void **in = make_inputs(n);
    void **out = make_outputs(n);
    weft_map_options o;
    weft_map_options_init(&o);
    o.chunksize = chunksize;
    o.window = window;
    size_t failed = 777;
    assert_int_equal(weft_map(p, square_plus_one, in, n, out, &o, &failed), 0);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(out[i], square_plus_one(in[i]));
    free(in);
    free(out);
}

/* Elements that know the test context: inputs[i] points at elems[i]. */
struct map_ctx;
struct elem {
    struct map_ctx *c;
    size_t i;
};

struct map_ctx {
    size_t n, chunk, window;
    struct elem *elems;
    void **in;
    void **out;
    atomic_int *ran;  /* per element: times started */
    atomic_int *done; /* per element: returned */
    atomic_int inflight, max_inflight, window_violations;
    atomic_int total_runs;
    /* failure scenarios */
    size_t fail_at[2];
    int fail_code[2];
    /* ordering scenarios */
    latch e1_started;
    atomic_int late_finished;
    atomic_int flag;
    long spin_us; /* per element work */
    long slow_ms; /* every element runs at least this long */
};

static void ctx_init(struct map_ctx *c, size_t n)
{
    memset(c, 0, sizeof(*c));
    c->n = n;
    c->elems = calloc(n, sizeof(*c->elems));
    c->in = malloc(n * sizeof(*c->in));
    c->out = make_outputs(n);
    c->ran = calloc(n, sizeof(*c->ran));
    c->done = calloc(n, sizeof(*c->done));
    assert_non_null(c->elems);
    assert_non_null(c->in);
    assert_non_null(c->ran);
    assert_non_null(c->done);
    for (size_t i = 0; i < n; i++) {
        c->elems[i] = (struct elem){c, i};
        c->in[i] = &c->elems[i];
        atomic_init(&c->ran[i], 0);
        atomic_init(&c->done[i], 0);
    }
    c->fail_at[0] = c->fail_at[1] = SIZE_MAX;
    latch_init(&c->e1_started);
}

static void ctx_destroy(struct map_ctx *c)
{
    latch_destroy(&c->e1_started);
    free(c->elems);
    free(c->in);
    free(c->out);
    free(c->ran);
    free(c->done);
}

static void *expected_of(size_t i)
{
    return (void *)(intptr_t)(3 * i + 1);
}

static void spin_for_us(long us)
{
    int64_t end = weft_now_ns() + us * 1000;
    while (weft_now_ns() < end)
        sched_yield();
}

static void *elem_task(void *arg)
{
    struct elem *e = arg;
    struct map_ctx *c = e->c;
    atomic_fetch_add(&c->ran[e->i], 1);
    atomic_fetch_add(&c->total_runs, 1);
    int now = atomic_fetch_add(&c->inflight, 1) + 1;
    int m = atomic_load(&c->max_inflight);
    while (now > m && !atomic_compare_exchange_weak(&c->max_inflight, &m, now)) {
    }
    if (c->window != 0) {
        /* Chunk k is submitted only once chunk k - window was collected, i.e. done. */
        size_t k = e->i / c->chunk;
        if (k >= c->window) {
            size_t old = k - c->window;
            for (size_t j = old * c->chunk; j < (old + 1) * c->chunk && j < c->n; j++)
                if (!atomic_load(&c->done[j]))
                    atomic_fetch_add(&c->window_violations, 1);
        }
    }
    if (c->spin_us > 0)
        spin_for_us(c->spin_us);
    if (c->slow_ms > 0) {
        int64_t end = weft_now_ns() + c->slow_ms * MS;
        while (weft_now_ns() < end)
            sleep_ms(1);
    }
    void *ret = expected_of(e->i);
    for (int k = 0; k < 2; k++)
        if (e->i == c->fail_at[k])
            ret = weft_fail(c->fail_code[k], "element %zu failed", e->i);
    atomic_fetch_sub(&c->inflight, 1);
    atomic_store(&c->done[e->i], 1);
    return ret;
}

/* Every element either ran (and, if before `upto`, wrote its output) or left its output
 * untouched. */
static void check_outputs(struct map_ctx *c, size_t upto)
{
    for (size_t i = 0; i < c->n; i++) {
        if (i < upto) {
            assert_int_equal(atomic_load(&c->ran[i]), 1);
            assert_ptr_equal(c->out[i], expected_of(i));
        } else if (atomic_load(&c->ran[i]) == 0) {
            assert_ptr_equal(c->out[i], SENTINEL);
        }
        assert_true(atomic_load(&c->ran[i]) <= 1);
    }
}

/* After the call nothing runs or writes any more: snapshot, wait a little, compare. */
static void check_quiet_after_return(struct map_ctx *c)
{
    void **snap = malloc(c->n * sizeof(*snap));
    assert_non_null(snap);
    memcpy(snap, c->out, c->n * sizeof(*snap));
    int runs = atomic_load(&c->total_runs);
    assert_int_equal(atomic_load(&c->inflight), 0);
    sleep_ms(30);
    assert_int_equal(atomic_load(&c->total_runs), runs);
    assert_memory_equal(snap, c->out, c->n * sizeof(*snap));
    free(snap);
}

/* ---------------------------------------------------------------------------------------
 * Results equal a serial map
 * ------------------------------------------------------------------------------------- */
static void map_with_chunksize_1_matches_a_serial_map(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    check_map_matches_serial(p, 1, 1, 0);
    check_map_matches_serial(p, 2, 1, 0);
    check_map_matches_serial(p, SCALED(5000), 1, 0);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void map_with_chunksize_7_matches_a_serial_map(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    check_map_matches_serial(p, 6, 7, 0);  /* one short chunk */
    check_map_matches_serial(p, 7, 7, 0);  /* one full chunk */
    check_map_matches_serial(p, 50, 7, 0); /* last chunk short */
    check_map_matches_serial(p, SCALED(10001), 7, 0);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void map_with_automatic_chunksize_matches_a_serial_map(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    check_map_matches_serial(p, 1, 0, 0);
    check_map_matches_serial(p, 3, 0, 0);
    check_map_matches_serial(p, 1000, 0, 0);
    check_map_matches_serial(p, SCALED(200000), 0, 0); /* capped at 4096 per chunk */
    assert_int_equal(
        weft_map(p, square_plus_one, (void *const[]){(void *)5}, 1, (void *[]){NULL}, NULL, NULL),
        0); /* opts and failed_index may be NULL */
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void map_with_a_chunksize_larger_than_the_input_runs_one_chunk(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    check_map_matches_serial(p, 100, 1000, 0);
    check_map_matches_serial(p, 100, 1000, 1);
    /* Any size_t is a valid chunksize; the largest must not overflow the chunk count. */
    check_map_matches_serial(p, 100, SIZE_MAX, 0);
    check_map_matches_serial(p, 100, SIZE_MAX / 2 + 1, 0);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void map_with_a_bounded_window_matches_a_serial_map(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    check_map_matches_serial(p, SCALED(10000), 1, 2);
    check_map_matches_serial(p, SCALED(10000), 7, 3);
    check_map_matches_serial(p, 100, 0, 1);
    check_map_matches_serial(p, 100, 1, 1000); /* window larger than the chunk count */
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void check_window(weft_pool *p, size_t n, size_t chunk, size_t window, long spin_us)
{
    struct map_ctx c;
    ctx_init(&c, n);
    c.chunk = chunk;
    c.window = window;
    c.spin_us = spin_us;
    weft_map_options o;
    weft_map_options_init(&o);
    o.chunksize = chunk;
    o.window = window;
    assert_int_equal(weft_map(p, elem_task, c.in, n, c.out, &o, NULL), 0);
    check_outputs(&c, n);
    assert_int_equal(atomic_load(&c.window_violations), 0);
    assert_true((size_t)atomic_load(&c.max_inflight) <= window * chunk);
    ctx_destroy(&c);
}

static void map_with_a_bounded_window_keeps_at_most_window_chunks_in_flight(void **state)
{
    (void)state;
    /* More workers than the window allows chunks: without the bound, up to 4 elements would
     * run at once. */
    weft_pool *p = make_pool(4);
    check_window(p, SCALED(10000), 1, 2, 0);
    check_window(p, SCALED(2000), 3, 1, 0);
    check_window(p, SCALED(2000), 5, 3, 0);
    check_window(p, 200, 1, 2, 200); /* elements long enough to overlap */
    check_window(p, 200, 1, 1, 100);
    assert_int_equal(weft_pool_destroy(p), 0);
}

/* ---------------------------------------------------------------------------------------
 * Failure
 * ------------------------------------------------------------------------------------- */
static void check_failure_at(weft_pool *p, size_t n, size_t chunk, size_t window, size_t bad)
{
    struct map_ctx c;
    ctx_init(&c, n);
    c.chunk = chunk == 0 ? 1 : chunk;
    c.fail_at[0] = bad;
    c.fail_code[0] = EIO;
    weft_map_options o;
    weft_map_options_init(&o);
    o.chunksize = chunk;
    o.window = window;
    size_t failed = 777;
    assert_int_equal(weft_map(p, elem_task, c.in, n, c.out, &o, &failed), -EIO);
    assert_int_equal(failed, bad);
    check_outputs(&c, bad); /* every element before it ran and wrote its output */
    assert_int_equal(atomic_load(&c.ran[bad]), 1);
    /* The rest of the failing element's chunk did not run (the chunk stops there). */
    if (chunk > 0)
        for (size_t j = bad + 1; j < (bad / chunk + 1) * chunk && j < n; j++)
            assert_int_equal(atomic_load(&c.ran[j]), 0);
    check_quiet_after_return(&c);
    ctx_destroy(&c);
}

static void map_reports_a_failure_at_the_failing_element(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    check_failure_at(p, 100, 1, 0, 0);
    check_failure_at(p, 100, 1, 0, 37);
    check_failure_at(p, 100, 1, 0, 99);
    check_failure_at(p, 100, 7, 0, 50); /* mid-chunk: 49..55 */
    check_failure_at(p, 100, 7, 0, 49); /* first of its chunk */
    check_failure_at(p, 100, 7, 2, 64);
    check_failure_at(p, 1000, 0, 0, 500);
    check_failure_at(p, 1000, 1, 3, 999);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void *fail_without_code(void *x)
{
    if ((intptr_t)x == 3)
        return weft_fail(0, NULL);
    return x;
}

static void map_reports_weft_efailed_for_a_failure_without_code(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    void **in = make_inputs(10);
    void **out = make_outputs(10);
    size_t failed = 0;
    assert_int_equal(weft_map(p, fail_without_code, in, 10, out, NULL, &failed), WEFT_EFAILED);
    assert_int_equal(failed, 3);
    for (size_t i = 0; i < 3; i++)
        assert_ptr_equal(out[i], in[i]);
    free(in);
    free(out);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void *first_failure_task(void *arg)
{
    struct elem *e = arg;
    struct map_ctx *c = e->c;
    atomic_fetch_add(&c->ran[e->i], 1);
    atomic_fetch_add(&c->total_runs, 1);
    if (e->i == 10) {
        /* Fail only after element 30 failed (bounded, in case 30 never runs). */
        int64_t end = weft_now_ns() + 5000 * MS;
        while (!atomic_load(&c->flag) && weft_now_ns() < end)
            sleep_ms(1);
        return weft_fail(EPERM, "ten");
    }
    if (e->i == 30) {
        void *r = weft_fail(EIO, "thirty");
        atomic_store(&c->flag, 1);
        return r;
    }
    return expected_of(e->i);
}

static void map_reports_the_first_failure_in_input_order_not_in_time(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct map_ctx c;
    ctx_init(&c, 100);
    weft_map_options o;
    weft_map_options_init(&o);
    o.chunksize = 1;
    size_t failed = 0;
    assert_int_equal(weft_map(p, first_failure_task, c.in, 100, c.out, &o, &failed), -EPERM);
    assert_int_equal(failed, 10);
    assert_int_equal(atomic_load(&c.flag), 1); /* 30 did fail first */
    for (size_t i = 0; i < 10; i++)
        assert_ptr_equal(c.out[i], expected_of(i));
    ctx_destroy(&c);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void *wait_for_running_task(void *arg)
{
    struct elem *e = arg;
    struct map_ctx *c = e->c;
    atomic_fetch_add(&c->ran[e->i], 1);
    atomic_fetch_add(&c->total_runs, 1);
    if (e->i == 0) {
        latch_wait(&c->e1_started); /* element 1 is running: it cannot be cancelled */
        return weft_fail(EPERM, "zero");
    }
    if (e->i == 1) {
        latch_open(&c->e1_started);
        sleep_ms(30); /* still running when the map sees element 0's failure */
        atomic_store(&c->late_finished, 1);
    }
    return expected_of(e->i);
}

static void map_failure_waits_for_running_chunks_before_returning(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    for (size_t n = 2; n <= 40; n += 38) {
        struct map_ctx c;
        ctx_init(&c, n);
        weft_map_options o;
        weft_map_options_init(&o);
        o.chunksize = 1;
        size_t failed = 99;
        assert_int_equal(weft_map(p, wait_for_running_task, c.in, n, c.out, &o, &failed), -EPERM);
        assert_int_equal(failed, 0);
        /* Element 1 was running: the call waited for it, and its output is written. */
        assert_int_equal(atomic_load(&c.late_finished), 1);
        assert_ptr_equal(c.out[1], expected_of(1));
        for (size_t i = 2; i < n; i++)
            if (atomic_load(&c.ran[i]) == 0)
                assert_ptr_equal(c.out[i], SENTINEL);
        check_quiet_after_return(&c);
        ctx_destroy(&c);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
}

/* ---------------------------------------------------------------------------------------
 * Timeout
 * ------------------------------------------------------------------------------------- */
static void map_timeout_cancels_the_rest(void **state)
{
    (void)state;
    /* One worker, every element runs far longer than the timeout (20 x 30 ms against 10 ms):
     * when the deadline passes one element runs and the others are queued. */
    weft_pool *p = make_pool(1);
    struct map_ctx c;
    ctx_init(&c, 20);
    c.chunk = 1;
    c.slow_ms = 30;
    weft_map_options o;
    weft_map_options_init(&o);
    o.chunksize = 1;
    o.timeout_ns = 10 * MS;
    size_t failed = 99;
    assert_int_equal(weft_map(p, elem_task, c.in, 20, c.out, &o, &failed), WEFT_ETIMEDOUT);
    assert_true(failed < 20); /* the first unfinished element (0, unless the host stalled) */
    /* Everything before it ran and wrote its output; the running chunk was waited for (its
     * output is written); the queued ones were cancelled: never started, never will be. */
    check_outputs(&c, failed);
    int runs = atomic_load(&c.total_runs);
    assert_true(runs < 20);
    for (size_t i = 0; i < 20; i++)
        if (atomic_load(&c.ran[i]))
            assert_ptr_equal(c.out[i], expected_of(i));
    check_quiet_after_return(&c);
    ctx_destroy(&c);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void map_timeout_with_a_window_reports_the_first_unfinished_element(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct map_ctx c;
    ctx_init(&c, 400);
    c.chunk = 3;
    c.window = 4;
    c.spin_us = 2000; /* 400 elements of 2 ms: far more than the timeout on 2 workers */
    weft_map_options o;
    weft_map_options_init(&o);
    o.chunksize = 3;
    o.window = 4;
    o.timeout_ns = 20 * MS;
    size_t failed = 9999;
    assert_int_equal(weft_map(p, elem_task, c.in, 400, c.out, &o, &failed), WEFT_ETIMEDOUT);
    assert_true(failed < 400);
    assert_int_equal(failed % 3, 0); /* a chunk boundary */
    check_outputs(&c, failed);
    assert_int_equal(atomic_load(&c.window_violations), 0);
    check_quiet_after_return(&c);
    ctx_destroy(&c);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void map_with_a_timeout_that_does_not_expire_succeeds(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    void **in = make_inputs(1000);
    void **out = make_outputs(1000);
    weft_map_options o;
    weft_map_options_init(&o);
    assert_int_equal(o.chunksize, 0);
    assert_int_equal(o.window, 0);
    assert_int_equal(o.timeout_ns, WEFT_FOREVER);
    o.timeout_ns = 60000 * MS;
    size_t failed = 5;
    assert_int_equal(weft_map(p, square_plus_one, in, 1000, out, &o, &failed), 0);
    for (size_t i = 0; i < 1000; i++)
        assert_ptr_equal(out[i], square_plus_one(in[i]));
    free(in);
    free(out);
    assert_int_equal(weft_pool_destroy(p), 0);
}

/* ---------------------------------------------------------------------------------------
 * From a worker
 * ------------------------------------------------------------------------------------- */
struct inner_map {
    size_t n, chunk, window;
    int rc;
    int ok;
};

static void *inner_map_task(void *arg)
{
    struct inner_map *m = arg;
    void **in = malloc(m->n * sizeof(*in));
    void **out = malloc(m->n * sizeof(*out));
    if (in == NULL || out == NULL) {
        free(in);
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < m->n; i++)
        in[i] = (void *)(intptr_t)i;
    weft_map_options o;
    weft_map_options_init(&o);
    o.chunksize = m->chunk;
    o.window = m->window;
    m->rc = weft_map(weft_current_pool(), square_plus_one, in, m->n, out, &o, NULL);
    m->ok = 1;
    for (size_t i = 0; i < m->n && m->rc == 0; i++)
        if (out[i] != square_plus_one(in[i]))
            m->ok = 0;
    free(in);
    free(out);
    return NULL;
}

static void map_called_from_inside_a_task_works(void **state)
{
    (void)state;
    const struct inner_map cases[] = {
        {1000, 1, 0, -1, 0}, {1000, 7, 0, -1, 0}, {1000, 0, 0, -1, 0}, {1000, 1, 2, -1, 0}};
    for (unsigned workers = 1; workers <= 2; workers++) {
        weft_pool *p = make_pool(workers); /* 1 worker: only helping can run the chunks */
        for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
            struct inner_map m = cases[k];
            assert_int_equal(weft_run(p, inner_map_task, &m, NULL), 0);
            assert_int_equal(m.rc, 0);
            assert_int_equal(m.ok, 1);
        }
        assert_int_equal(weft_pool_destroy(p), 0);
    }
}

/* ---------------------------------------------------------------------------------------
 * Pools that refuse work, arguments
 * ------------------------------------------------------------------------------------- */
static void map_on_a_shut_down_pool_returns_eshutdown(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    assert_int_equal(weft_pool_shutdown(p, true, false), 0);
    void **in = make_inputs(10);
    void **out = make_outputs(10);
    size_t failed = 99;
    assert_int_equal(weft_map(p, square_plus_one, in, 10, out, NULL, &failed), WEFT_ESHUTDOWN);
    assert_int_equal(failed, 0);
    for (size_t i = 0; i < 10; i++)
        assert_ptr_equal(out[i], SENTINEL);
    free(in);
    free(out);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static int failing_init(void *arg, unsigned worker)
{
    (void)arg;
    (void)worker;
    return -1;
}

static void map_on_a_broken_pool_returns_ebroken(void **state)
{
    (void)state;
    weft_pool_options opts;
    weft_pool_options_init(&opts);
    opts.num_threads = 2;
    opts.initializer = failing_init;
    weft_pool *p = NULL;
    assert_int_equal(weft_pool_create(&opts, &p), 0);
    void **in = make_inputs(10);
    void **out = make_outputs(10);
    /* Whether the pool broke before or after the submissions, the map reports it. */
    assert_int_equal(weft_map(p, square_plus_one, in, 10, out, NULL, NULL), WEFT_EBROKEN);
    assert_int_equal(weft_map(p, square_plus_one, in, 10, out, NULL, NULL), WEFT_EBROKEN);
    for (size_t i = 0; i < 10; i++)
        assert_ptr_equal(out[i], SENTINEL);
    free(in);
    free(out);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void map_rejects_bad_arguments(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    void **in = make_inputs(4);
    void **out = make_outputs(4);
    assert_int_equal(weft_map(NULL, square_plus_one, in, 4, out, NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_map(p, NULL, in, 4, out, NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_map(p, square_plus_one, NULL, 4, out, NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_map(p, square_plus_one, in, 4, NULL, NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_map(p, square_plus_one, in, 0, out, NULL, NULL), WEFT_EINVAL);
    for (size_t i = 0; i < 4; i++)
        assert_ptr_equal(out[i], SENTINEL);
    weft_map_options_init(NULL); /* ignored */
    free(in);
    free(out);
    assert_int_equal(weft_pool_destroy(p), 0);
}

/* ---------------------------------------------------------------------------------------
 * weft_parallel_for
 * ------------------------------------------------------------------------------------- */
struct pfor_ctx {
    _Atomic int *hits;
    size_t fail_at; /* a range containing this index fails; SIZE_MAX: none */
    _Atomic long ranges;
};

static int pfor_body(size_t begin, size_t end, void *arg)
{
    struct pfor_ctx *c = arg;
    atomic_fetch_add(&c->ranges, 1);
    if (c->fail_at >= begin && c->fail_at < end)
        return -EIO;
    for (size_t i = begin; i < end; i++)
        atomic_fetch_add_explicit(&c->hits[i], 1, memory_order_relaxed);
    return 0;
}

static void check_pfor(weft_pool *p, size_t n, size_t grain)
{
    struct pfor_ctx c = {calloc(n + 1, sizeof(_Atomic int)), SIZE_MAX, 0};
    assert_non_null(c.hits);
    assert_int_equal(weft_parallel_for(p, n, grain, pfor_body, &c), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(atomic_load(&c.hits[i]), 1); /* every index exactly once */
    assert_int_equal(atomic_load(&c.hits[n]), 0);
    if (grain > 0 && n > 0)
        assert_true((size_t)atomic_load(&c.ranges) >= (n + grain - 1) / grain);
    free((void *)c.hits);
}

static void parallel_for_runs_every_index_exactly_once(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    check_pfor(p, SCALED(100003), 0);
    check_pfor(p, SCALED(100003), 1);
    check_pfor(p, SCALED(100003), 7);
    check_pfor(p, 1000, SIZE_MAX); /* one range */
    check_pfor(p, 1, 0);
    assert_int_equal(weft_parallel_for(p, 0, 0, pfor_body, NULL), 0); /* nothing to do */
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void parallel_for_reports_a_failing_range_and_skips_the_rest(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    size_t n = SCALED(100000);
    struct pfor_ctx c = {calloc(n, sizeof(_Atomic int)), n / 2, 0};
    assert_int_equal(weft_parallel_for(p, n, 1, pfor_body, &c), -EIO);
    long done = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(atomic_load(&c.hits[i]) <= 1); /* never twice */
        done += atomic_load(&c.hits[i]);
    }
    assert_int_equal(atomic_load(&c.hits[n / 2]), 0); /* the failing index did not run */
    assert_true(done < (long)n);
    free((void *)c.hits);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void *pfor_nested_task(void *arg)
{
    struct pfor_ctx *c = arg;
    int rc = weft_parallel_for(weft_current_pool(), 5000, 3, pfor_body, c);
    return (void *)(intptr_t)rc;
}

static void parallel_for_nested_in_a_task_on_one_worker_does_not_deadlock(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct pfor_ctx c = {calloc(5000, sizeof(_Atomic int)), SIZE_MAX, 0};
    void *v = (void *)1;
    assert_int_equal(weft_run(p, pfor_nested_task, &c, &v), 0);
    assert_ptr_equal(v, NULL);
    for (size_t i = 0; i < 5000; i++)
        assert_int_equal(atomic_load(&c.hits[i]), 1);
    free((void *)c.hits);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void parallel_for_rejects_bad_arguments_and_closed_pools(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    assert_int_equal(weft_parallel_for(NULL, 10, 0, pfor_body, NULL), WEFT_EINVAL);
    assert_int_equal(weft_parallel_for(p, 10, 0, NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_pool_shutdown(p, true, false), 0);
    assert_int_equal(weft_parallel_for(p, 10, 0, pfor_body, NULL), WEFT_ESHUTDOWN);
    assert_int_equal(weft_pool_destroy(p), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(map_with_chunksize_1_matches_a_serial_map),
        cmocka_unit_test(map_with_chunksize_7_matches_a_serial_map),
        cmocka_unit_test(map_with_automatic_chunksize_matches_a_serial_map),
        cmocka_unit_test(map_with_a_chunksize_larger_than_the_input_runs_one_chunk),
        cmocka_unit_test(map_with_a_bounded_window_matches_a_serial_map),
        cmocka_unit_test(map_with_a_bounded_window_keeps_at_most_window_chunks_in_flight),
        cmocka_unit_test(map_reports_a_failure_at_the_failing_element),
        cmocka_unit_test(map_reports_weft_efailed_for_a_failure_without_code),
        cmocka_unit_test(map_reports_the_first_failure_in_input_order_not_in_time),
        cmocka_unit_test(map_failure_waits_for_running_chunks_before_returning),
        cmocka_unit_test(map_timeout_cancels_the_rest),
        cmocka_unit_test(map_timeout_with_a_window_reports_the_first_unfinished_element),
        cmocka_unit_test(map_with_a_timeout_that_does_not_expire_succeeds),
        cmocka_unit_test(map_called_from_inside_a_task_works),
        cmocka_unit_test(map_on_a_shut_down_pool_returns_eshutdown),
        cmocka_unit_test(map_on_a_broken_pool_returns_ebroken),
        cmocka_unit_test(map_rejects_bad_arguments),
        cmocka_unit_test(parallel_for_runs_every_index_exactly_once),
        cmocka_unit_test(parallel_for_reports_a_failing_range_and_skips_the_rest),
        cmocka_unit_test(parallel_for_nested_in_a_task_on_one_worker_does_not_deadlock),
        cmocka_unit_test(parallel_for_rejects_bad_arguments_and_closed_pools),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
