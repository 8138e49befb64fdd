/*
 * as_completed: the counterpart of Python's concurrent.futures.as_completed (CPython's
 * AsCompletedTests): already-done futures first in input order, then completion order,
 * timeouts (0 and short) with the "N (of M) unfinished" count, duplicates, the end of the
 * iteration, the iterator's references (none kept on a yielded future; the rest released by
 * destroy), iteration from inside a task, and bad arguments.
 *
 * Completion order is forced with latches released one at a time; before releasing the next
 * one the test waits for a done-callback registered after the iterator's own, so the
 * iterator's callback has run too (callbacks run in registration order). Nothing asserts on
 * durations; assertions are made on the main thread only.
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
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------- */

static weft_pool *make_pool(unsigned n)
{
    return make_pool_named(n, "tascomp");
}

/* A done-callback that opens a latch: registered after the iterator's, it tells the test
 * that the iterator's callback has run. */
static void open_cb(weft_future *f, void *arg)
{
    (void)f;
    latch_open(arg);
}

/* Completes promise `f` and returns once every callback registered so far has run (set_value
 * runs them in this thread before returning). */
static void complete(weft_future *f, void *v)
{
    assert_int_equal(weft_future_set_value(f, v), 0);
}

/* A helper thread that completes a promise after a delay (to let next() block first; the
 * outcome never depends on it). */
struct later {
    weft_future *f;
    long delay_ms;
};

static void *later_main(void *arg)
{
    struct later *l = arg;
    sleep_ms(l->delay_ms);
    weft_future_set_value(l->f, (void *)0x1a7e);
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * Order
 * ------------------------------------------------------------------------------------- */
static void as_completed_yields_already_done_futures_first_in_input_order(void **state)
{
    (void)state;
    weft_future *f_fail = promise();
    assert_int_equal(weft_future_set_error(f_fail, EIO, "x"), 0);
    weft_future *f_cancel = promise();
    assert_int_equal(weft_future_cancel(f_cancel), 0);
    weft_future *fs[] = {promise(), promise_done((void *)1), f_fail, promise(),
                         f_cancel,  promise_done((void *)2)};
    weft_as_completed *it = NULL;
    assert_int_equal(weft_as_completed_init(fs, 6, WEFT_FOREVER, &it), 0);
    assert_non_null(it);
    /* Completing a pending one now must not jump ahead of those done at init. */
    complete(fs[3], (void *)3);
    weft_future *got = NULL;
    const int expect[] = {1, 2, 4, 5, 3};
    for (int k = 0; k < 5; k++) {
        assert_int_equal(weft_as_completed_next(it, &got), 0);
        assert_ptr_equal(got, fs[expect[k]]);
        weft_future_release(got);
    }
    complete(fs[0], NULL);
    assert_int_equal(weft_as_completed_next(it, &got), 0);
    assert_ptr_equal(got, fs[0]);
    weft_future_release(got);
    assert_int_equal(weft_as_completed_next(it, &got), WEFT_EEND);
    assert_null(got);
    weft_as_completed_destroy(it);
    release_all(fs, 6);
}

static void as_completed_yields_in_completion_order(void **state)
{
    (void)state;
    weft_pool *p = make_pool(4);
    enum { N = 4 };
    struct gate g[N];
    weft_future *fs[N];
    for (int i = 0; i < N; i++) {
        gate_init(&g[i], (void *)(intptr_t)(i + 10));
        assert_int_equal(weft_submit(p, gate_task, &g[i], &fs[i]), 0);
    }
    weft_as_completed *it = NULL;
    assert_int_equal(weft_as_completed_init(fs, N, WEFT_FOREVER, &it), 0);
    latch seen[N];
    for (int i = 0; i < N; i++) {
        latch_init(&seen[i]);
        assert_int_equal(weft_future_add_done_callback(fs[i], open_cb, &seen[i]), 0);
    }
    /* Release in the order 2, 0, 3, 1, each after the previous one's callbacks ran. */
    const int order[N] = {2, 0, 3, 1};
    for (int k = 0; k < N; k++) {
        latch_open(g[order[k]].release);
        latch_wait(&seen[order[k]]);
    }
    for (int k = 0; k < N; k++) {
        weft_future *got = NULL;
        assert_int_equal(weft_as_completed_next(it, &got), 0);
        assert_ptr_equal(got, fs[order[k]]);
        void *v = NULL;
        assert_int_equal(weft_future_result(got, 0, &v), 0);
        assert_ptr_equal(v, (void *)(intptr_t)(order[k] + 10));
        weft_future_release(got);
    }
    weft_future *got = NULL;
    assert_int_equal(weft_as_completed_next(it, &got), WEFT_EEND);
    weft_as_completed_destroy(it);
    release_all(fs, N);
    assert_int_equal(weft_pool_destroy(p), 0);
    for (int i = 0; i < N; i++) {
        gate_destroy(&g[i]);
        latch_destroy(&seen[i]);
    }
}

static void as_completed_next_blocks_until_the_next_completion(void **state)
{
    (void)state;
    weft_future *fs[] = {promise(), promise()};
    weft_as_completed *it = NULL;
    assert_int_equal(weft_as_completed_init(fs, 2, WEFT_FOREVER, &it), 0);
    struct later l1 = {fs[1], 10};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, later_main, &l1), 0);
    weft_future *got = NULL;
    assert_int_equal(weft_as_completed_next(it, &got), 0);
    pthread_join(th, NULL);
    assert_ptr_equal(got, fs[1]);
    assert_true(weft_future_done(got));
    weft_future_release(got);
    struct later l0 = {fs[0], 10};
    assert_int_equal(pthread_create(&th, NULL, later_main, &l0), 0);
    assert_int_equal(weft_as_completed_next(it, &got), 0);
    pthread_join(th, NULL);
    assert_ptr_equal(got, fs[0]);
    weft_future_release(got);
    assert_int_equal(weft_as_completed_next(it, &got), WEFT_EEND);
    weft_as_completed_destroy(it);
    release_all(fs, 2);
}

/* ---------------------------------------------------------------------------------------
 * Timeouts
 * ------------------------------------------------------------------------------------- */
static void check_timeout_after_done_ones(int64_t timeout_ns)
{
    weft_future *fs[] = {promise(), promise_done((void *)1), promise(), promise_done((void *)2)};
    weft_as_completed *it = NULL;
    assert_int_equal(weft_as_completed_init(fs, 4, timeout_ns, &it), 0);
    size_t unfinished = 99, total = 99;
    weft_as_completed_pending(it, &unfinished, &total);
    assert_int_equal(unfinished, 4);
    assert_int_equal(total, 4);

    weft_future *got = NULL;
    assert_int_equal(weft_as_completed_next(it, &got), 0);
    assert_ptr_equal(got, fs[1]);
    weft_future_release(got);
    assert_int_equal(weft_as_completed_next(it, &got), 0);
    assert_ptr_equal(got, fs[3]);
    weft_future_release(got);
    assert_int_equal(weft_as_completed_next(it, &got), WEFT_ETIMEDOUT);
    assert_null(got);
    /* "2 (of 4) futures unfinished" */
    weft_as_completed_pending(it, &unfinished, &total);
    assert_int_equal(unfinished, 2);
    assert_int_equal(total, 4);
    weft_as_completed_pending(it, NULL, &total); /* either pointer may be NULL */
    weft_as_completed_pending(it, &unfinished, NULL);
    assert_int_equal(unfinished, 2);
    /* Again: at once. */
    assert_int_equal(weft_as_completed_next(it, &got), WEFT_ETIMEDOUT);

    /* A future that completes after the timeout is still yielded by a later next(). */
    complete(fs[2], (void *)3);
    assert_int_equal(weft_as_completed_next(it, &got), 0);
    assert_ptr_equal(got, fs[2]);
    weft_future_release(got);
    assert_int_equal(weft_as_completed_next(it, &got), WEFT_ETIMEDOUT);
    weft_as_completed_pending(it, &unfinished, &total);
    assert_int_equal(unfinished, 1);
    assert_int_equal(total, 4);
    weft_as_completed_destroy(it); /* releases its reference on fs[0] */
    complete(fs[0], NULL);
    release_all(fs, 4);
}

static void as_completed_with_timeout_zero_yields_done_ones_then_times_out(void **state)
{
    (void)state;
    check_timeout_after_done_ones(0);
}

static void as_completed_with_short_timeout_yields_done_ones_then_times_out(void **state)
{
    (void)state;
    check_timeout_after_done_ones(20 * MS);
}

static void as_completed_timeout_counts_from_init(void **state)
{
    (void)state;
    weft_future *fs[] = {promise()};
    weft_as_completed *it = NULL;
    assert_int_equal(weft_as_completed_init(fs, 1, 5 * MS, &it), 0);
    sleep_ms(20); /* the whole timeout elapses before the first next() */
    weft_future *got = NULL;
    /* Nobody completes fs[0]: next() returns WEFT_ETIMEDOUT on the deadline set at init
     * (already past), with the count of the unfinished. */
    assert_int_equal(weft_as_completed_next(it, &got), WEFT_ETIMEDOUT);
    size_t unfinished = 0, total = 0;
    weft_as_completed_pending(it, &unfinished, &total);
    assert_int_equal(unfinished, 1);
    assert_int_equal(total, 1);
    weft_as_completed_destroy(it);
    complete(fs[0], NULL);
    release_all(fs, 1);
}

static void as_completed_timeout_on_pool_tasks_reports_unfinished(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct gate g;
    gate_init(&g, NULL);
    weft_future *fs[4];
    assert_int_equal(weft_submit(p, gate_task, &g, &fs[0]), 0);
    latch_wait(g.started);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(weft_submit(p, ident_task, (void *)(intptr_t)i, &fs[i]), 0);
        assert_int_equal(weft_future_result(fs[i], WEFT_FOREVER, NULL), 0);
    }
    fs[3] = promise();
    weft_as_completed *it = NULL;
    assert_int_equal(weft_as_completed_init(fs, 4, 10 * MS, &it), 0);
    weft_future *got = NULL;
    int yielded = 0;
    int rc;
    while ((rc = weft_as_completed_next(it, &got)) == 0) {
        assert_true(got == fs[1] || got == fs[2]);
        weft_future_release(got);
        yielded++;
    }
    assert_int_equal(rc, WEFT_ETIMEDOUT);
    assert_int_equal(yielded, 2);
    size_t unfinished = 0, total = 0;
    weft_as_completed_pending(it, &unfinished, &total);
    assert_int_equal(unfinished, 2);
    assert_int_equal(total, 4);
    weft_as_completed_destroy(it);
    latch_open(g.release);
    complete(fs[3], NULL);
    release_all(fs, 4);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

/* ---------------------------------------------------------------------------------------
 * Duplicates and the end
 * ------------------------------------------------------------------------------------- */
static void as_completed_yields_a_duplicated_future_once(void **state)
{
    (void)state;
    weft_future *a = promise_done((void *)1);
    weft_future *b = promise();
    weft_future *fs[] = {a, b, a, b, a};
    weft_as_completed *it = NULL;
    assert_int_equal(weft_as_completed_init(fs, 5, WEFT_FOREVER, &it), 0);
    size_t unfinished = 0, total = 0;
    weft_as_completed_pending(it, &unfinished, &total);
    assert_int_equal(unfinished, 2);
    assert_int_equal(total, 2);
    weft_future *got = NULL;
    assert_int_equal(weft_as_completed_next(it, &got), 0);
    assert_ptr_equal(got, a);
    weft_future_release(got);
    complete(b, (void *)2);
    assert_int_equal(weft_as_completed_next(it, &got), 0);
    assert_ptr_equal(got, b);
    weft_future_release(got);
    assert_int_equal(weft_as_completed_next(it, &got), WEFT_EEND);
    weft_as_completed_pending(it, &unfinished, &total);
    assert_int_equal(unfinished, 0);
    assert_int_equal(total, 2);
    weft_as_completed_destroy(it);
    weft_future_release(a);
    weft_future_release(b);
}

static void as_completed_returns_eend_after_the_last_and_keeps_returning_it(void **state)
{
    (void)state;
    weft_future *fs[] = {promise_done(NULL)};
    weft_as_completed *it = NULL;
    assert_int_equal(weft_as_completed_init(fs, 1, 0, &it), 0);
    weft_future *got = NULL;
    assert_int_equal(weft_as_completed_next(it, &got), 0);
    weft_future_release(got);
    for (int i = 0; i < 3; i++) {
        got = (weft_future *)0x1;
        assert_int_equal(weft_as_completed_next(it, &got), WEFT_EEND);
        assert_null(got);
    }
    weft_as_completed_destroy(it);
    release_all(fs, 1);
}

static void as_completed_end_code_has_a_name(void **state)
{
    (void)state;
    /* weft_strerror "names any of [weft's codes]". */
    const char *s = weft_strerror(WEFT_EEND);
    assert_non_null(s);
    assert_string_not_equal(s, "unknown error");
    assert_string_not_equal(s, weft_strerror(-7099));
}

/* ---------------------------------------------------------------------------------------
 * References
 * ------------------------------------------------------------------------------------- */
static void as_completed_keeps_no_reference_on_a_yielded_future(void **state)
{
    (void)state;
    /* Each future's only references: the caller's (released right after init) and the
     * iterator's. After next() hands over the iterator's, releasing it frees the future:
     * destroy must not touch it (ASan: use-after-free / double free), and no reference may
     * be left over (LSan: leak). */
    weft_pool *p = make_pool(2);
    enum { N = 8 };
    weft_future *fs[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_submit(p, ident_task, (void *)(intptr_t)i, &fs[i]), 0);
    weft_as_completed *it = NULL;
    assert_int_equal(weft_as_completed_init(fs, N, WEFT_FOREVER, &it), 0);
    release_all(fs, N);
    int seen[N] = {0};
    weft_future *got = NULL;
    while (weft_as_completed_next(it, &got) == 0) {
        void *v = NULL;
        assert_int_equal(weft_future_result(got, WEFT_FOREVER, &v), 0);
        seen[(intptr_t)v]++;
        weft_future_release(got); /* usually the last reference: frees the future */
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    weft_as_completed_destroy(it);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void as_completed_destroy_after_partial_iteration_releases_the_rest(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct gate g;
    gate_init(&g, NULL);
    weft_future *fs[5];
    fs[0] = promise_done(NULL);
    fs[1] = promise_done(NULL);
    fs[2] = promise();
    assert_int_equal(weft_submit(p, gate_task, &g, &fs[3]), 0);
    assert_int_equal(weft_submit(p, ident_task, NULL, &fs[4]), 0);
    weft_as_completed *it = NULL;
    assert_int_equal(weft_as_completed_init(fs, 5, WEFT_FOREVER, &it), 0);
    /* The iterator is now the only owner of fs[0], fs[1], fs[4] (and shares fs[3] with the
     * pool); the test keeps fs[2] (a promise it completes later). */
    for (int i = 0; i < 5; i++)
        if (i != 2)
            weft_future_release(fs[i]);
    weft_future *got = NULL;
    assert_int_equal(weft_as_completed_next(it, &got), 0);
    assert_ptr_equal(got, fs[0]);
    weft_future_release(got);
    /* Destroy with fs[1] done but not yielded, fs[2] and fs[3] unfinished, fs[4] either. */
    weft_as_completed_destroy(it);
    /* The unfinished ones complete after the iterator is gone: its callbacks still run
     * safely, and everything is freed (LSan at exit). */
    complete(fs[2], NULL);
    weft_future_release(fs[2]);
    latch_open(g.release);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

static void as_completed_leaves_nothing_behind_once_an_abandoned_promise_is_cancelled(void **state)
{
    (void)state;
    /* An iterator destroyed before a promise completes, and the promise then abandoned
     * (cancelled, then released): nothing may leak (LSan checks at exit). */
    weft_future *fs[] = {promise(), promise_done(NULL)};
    weft_as_completed *it = NULL;
    assert_int_equal(weft_as_completed_init(fs, 2, WEFT_FOREVER, &it), 0);
    weft_future *got = NULL;
    assert_int_equal(weft_as_completed_next(it, &got), 0);
    weft_future_release(got);
    weft_as_completed_destroy(it);
    /* The contract (weft_future_release): an abandoned promise is cancelled before its last
     * release, which runs the callbacks the wait/iterator left and frees their bookkeeping. */
    assert_int_equal(weft_future_cancel(fs[0]), 0);
    release_all(fs, 2);
}

static void as_completed_on_futures_that_outlive_their_pool(void **state)
{
    (void)state;
    /* Futures stay valid after their pool is destroyed; iterating over them must not touch
     * the destroyed pool (ASan: heap-use-after-free if it does). */
    weft_pool *p = make_pool(1);
    weft_future *old = NULL;
    assert_int_equal(weft_submit(p, ident_task, (void *)0x5, &old), 0);
    assert_int_equal(weft_future_result(old, WEFT_FOREVER, NULL), 0);
    assert_int_equal(weft_pool_destroy(p), 0);
    weft_future *fs[] = {old, promise()};
    weft_as_completed *it = NULL;
    assert_int_equal(weft_as_completed_init(fs, 2, 1 * MS, &it), 0);
    weft_future *got = NULL;
    assert_int_equal(weft_as_completed_next(it, &got), 0);
    assert_ptr_equal(got, old);
    weft_future_release(got);
    assert_int_equal(weft_as_completed_next(it, &got), WEFT_ETIMEDOUT);
    weft_as_completed_destroy(it);
    complete(fs[1], NULL);
    release_all(fs, 2);
}

/* ---------------------------------------------------------------------------------------
 * From a worker, stress, arguments
 * ------------------------------------------------------------------------------------- */
struct inner_ac {
    int count;
    int rc_end;
    int sum;
};

static void *inner_ac_task(void *arg)
{
    struct inner_ac *r = arg;
    enum { N = 16 };
    weft_future *fs[N];
    for (int i = 0; i < N; i++)
        if (weft_submit(weft_current_pool(), ident_task, (void *)(intptr_t)(i + 1), &fs[i]) != 0)
            return NULL;
    weft_as_completed *it = NULL;
    if (weft_as_completed_init(fs, N, WEFT_FOREVER, &it) != 0)
        return NULL;
    release_all(fs, N);
    weft_future *got = NULL;
    int rc;
    while ((rc = weft_as_completed_next(it, &got)) == 0) {
        void *v = NULL;
        weft_future_result(got, 0, &v);
        r->sum += (int)(intptr_t)v;
        r->count++;
        weft_future_release(got);
    }
    r->rc_end = rc;
    weft_as_completed_destroy(it);
    return NULL;
}

static void as_completed_from_inside_a_task_helps_instead_of_deadlocking(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1); /* the children can only run if next() helps */
    struct inner_ac r = {0, 0, 0};
    assert_int_equal(weft_run(p, inner_ac_task, &r, NULL), 0);
    assert_int_equal(r.count, 16);
    assert_int_equal(r.sum, 16 * 17 / 2);
    assert_int_equal(r.rc_end, WEFT_EEND);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void as_completed_yields_each_of_many_racing_futures_exactly_once(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    enum { N = 64 };
    int rounds = SCALED(300);
    for (int r = 0; r < rounds; r++) {
        weft_future *fs[N + 1];
        for (int i = 0; i < N; i++)
            assert_int_equal(weft_submit(p, ident_task, (void *)(intptr_t)i, &fs[i]), 0);
        fs[N] = fs[r % N]; /* a duplicate, too */
        weft_as_completed *it = NULL;
        assert_int_equal(weft_as_completed_init(fs, N + 1, WEFT_FOREVER, &it), 0);
        int seen[N] = {0};
        weft_future *got = NULL;
        int n = 0;
        while (weft_as_completed_next(it, &got) == 0) {
            void *v = NULL;
            assert_int_equal(weft_future_result(got, 0, &v), 0);
            seen[(intptr_t)v]++;
            n++;
            weft_future_release(got);
        }
        assert_int_equal(n, N);
        for (int i = 0; i < N; i++)
            assert_int_equal(seen[i], 1);
        weft_as_completed_destroy(it);
        release_all(fs, N);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void as_completed_next_survives_completions_racing_with_its_sleep(void **state)
{
    (void)state;
    /* The iterator keeps catching up with thousands of completions: next() goes to sleep
     * and is woken again and again, with completions landing at every point of that path.
     * Each must yield a future (never crash), each exactly once. */
    weft_pool *p = make_pool(2);
    enum { N = 2000 };
    weft_future **fs = malloc(N * sizeof(*fs));
    int *seen = malloc(N * sizeof(*seen));
    assert_non_null(fs);
    assert_non_null(seen);
    int rounds = SCALED(100);
    for (int r = 0; r < rounds; r++) {
        memset(seen, 0, N * sizeof(*seen));
        for (int i = 0; i < N; i++)
            assert_int_equal(weft_submit(p, spin_task, (void *)(intptr_t)i, &fs[i]), 0);
        weft_as_completed *it = NULL;
        assert_int_equal(weft_as_completed_init(fs, N, WEFT_FOREVER, &it), 0);
        release_all(fs, N);
        weft_future *got = NULL;
        int n = 0, rc;
        while ((rc = weft_as_completed_next(it, &got)) == 0) {
            assert_non_null(got);
            void *v = NULL;
            assert_int_equal(weft_future_result(got, 0, &v), 0);
            seen[(intptr_t)v]++;
            n++;
            weft_future_release(got);
        }
        assert_int_equal(rc, WEFT_EEND);
        assert_int_equal(n, N);
        for (int i = 0; i < N; i++)
            assert_int_equal(seen[i], 1);
        weft_as_completed_destroy(it);
    }
    free(fs);
    free(seen);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void as_completed_rejects_bad_arguments(void **state)
{
    (void)state;
    weft_future *f = promise_done(NULL);
    weft_future *fs[] = {f, NULL};
    weft_as_completed *it = NULL;
    assert_int_equal(weft_as_completed_init(NULL, 1, 0, &it), WEFT_EINVAL);
    assert_int_equal(weft_as_completed_init(fs, 0, 0, &it), WEFT_EINVAL);
    assert_int_equal(weft_as_completed_init(fs, 2, 0, &it), WEFT_EINVAL);
    assert_int_equal(weft_as_completed_init(fs, 1, 0, NULL), WEFT_EINVAL);

    assert_int_equal(weft_as_completed_init(fs, 1, 0, &it), 0);
    weft_future *got = NULL;
    assert_int_equal(weft_as_completed_next(NULL, &got), WEFT_EINVAL);
    assert_int_equal(weft_as_completed_next(it, NULL), WEFT_EINVAL);
    size_t u = 7, t = 7;
    weft_as_completed_pending(NULL, &u, &t); /* ignored */
    weft_as_completed_destroy(NULL);         /* ignored */
    assert_int_equal(weft_as_completed_next(it, &got), 0);
    assert_ptr_equal(got, f);
    weft_future_release(got);
    weft_as_completed_destroy(it);
    weft_future_release(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(as_completed_yields_already_done_futures_first_in_input_order),
        cmocka_unit_test(as_completed_yields_in_completion_order),
        cmocka_unit_test(as_completed_next_blocks_until_the_next_completion),
        cmocka_unit_test(as_completed_with_timeout_zero_yields_done_ones_then_times_out),
        cmocka_unit_test(as_completed_with_short_timeout_yields_done_ones_then_times_out),
        cmocka_unit_test(as_completed_timeout_counts_from_init),
        cmocka_unit_test(as_completed_timeout_on_pool_tasks_reports_unfinished),
        cmocka_unit_test(as_completed_yields_a_duplicated_future_once),
        cmocka_unit_test(as_completed_returns_eend_after_the_last_and_keeps_returning_it),
        cmocka_unit_test(as_completed_end_code_has_a_name),
        cmocka_unit_test(as_completed_keeps_no_reference_on_a_yielded_future),
        cmocka_unit_test(as_completed_destroy_after_partial_iteration_releases_the_rest),
        cmocka_unit_test(as_completed_leaves_nothing_behind_once_an_abandoned_promise_is_cancelled),
        cmocka_unit_test(as_completed_on_futures_that_outlive_their_pool),
        cmocka_unit_test(as_completed_from_inside_a_task_helps_instead_of_deadlocking),
        cmocka_unit_test(as_completed_yields_each_of_many_racing_futures_exactly_once),
        cmocka_unit_test(as_completed_next_survives_completions_racing_with_its_sleep),
        cmocka_unit_test(as_completed_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
