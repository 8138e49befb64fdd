/*
 * weft_wait: the counterpart of Python's concurrent.futures.wait (CPython's WaitTests and
 * ThreadPoolWaitTests): duplicates, FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED, the
 * done/not-done split, timeouts (0 included), cancelled futures, the pending-calls race,
 * waiting from inside a task, bad arguments, and the lifetime of what a wait leaves behind.
 *
 * Futures are held unfinished deterministically (promises nobody completes yet, tasks held on
 * latches); a helper thread completes them later when a test needs the wait to block first.
 * Nothing asserts on durations. Assertions are made on the main thread only (cmocka's failure
 * path longjmps): tasks and helper threads record, the test checks after joining them.
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
    return make_pool_named(n, "twait");
}

static void *fail_task(void *arg)
{
    return weft_fail((int)(intptr_t)arg, "task %d failed", (int)(intptr_t)arg);
}

/* A helper thread that does one thing after a delay: completes a promise, fails it, or opens
 * a latch. The delay only makes it likely that the main thread is already blocked in
 * weft_wait; the outcome checked never depends on it. */
enum act_kind { ACT_VALUE, ACT_ERROR, ACT_OPEN };
struct act {
    enum act_kind kind;
    long delay_ms;
    weft_future *f;
    int code;
    latch *l;
    int rc; /* what the completion returned, checked after the join */
};

static void *act_main(void *arg)
{
    struct act *a = arg;
    sleep_ms(a->delay_ms);
    switch (a->kind) {
    case ACT_VALUE:
        a->rc = weft_future_set_value(a->f, (void *)0x5a);
        break;
    case ACT_ERROR:
        a->rc = weft_future_set_error(a->f, a->code, "late failure");
        break;
    case ACT_OPEN:
        latch_open(a->l);
        a->rc = 0;
        break;
    }
    return NULL;
}

static pthread_t act_start(struct act *a)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, act_main, a), 0);
    return th;
}

static void act_join(pthread_t th, struct act *a)
{
    pthread_join(th, NULL);
    assert_int_equal(a->rc, 0);
}

/* ---------------------------------------------------------------------------------------
 * Duplicates
 * ------------------------------------------------------------------------------------- */
static void wait_counts_a_duplicated_future_once(void **state)
{
    (void)state;
    weft_future *f = promise_done((void *)1);
    weft_future *g = promise();
    weft_future *fs[] = {f, f, g, f, g};
    bool done[5];
    size_t ndone = 99;

    assert_int_equal(weft_wait(fs, 5, 0, WEFT_FIRST_COMPLETED, done, &ndone), 0);
    assert_true(done[0] && done[1] && done[3]);
    assert_false(done[2] || done[4]);
    assert_int_equal(ndone, 1);

    ndone = 99;
    assert_int_equal(weft_wait(fs, 5, 0, WEFT_ALL_COMPLETED, done, &ndone), WEFT_ETIMEDOUT);
    assert_int_equal(ndone, 1);

    assert_int_equal(weft_future_set_value(g, (void *)2), 0);
    ndone = 99;
    assert_int_equal(weft_wait(fs, 5, WEFT_FOREVER, WEFT_ALL_COMPLETED, done, &ndone), 0);
    for (int i = 0; i < 5; i++)
        assert_true(done[i]);
    assert_int_equal(ndone, 2);

    /* All entries the same future: one distinct future, done. */
    weft_future *same[] = {f, f, f};
    assert_int_equal(weft_wait(same, 3, WEFT_FOREVER, WEFT_FIRST_EXCEPTION, done, &ndone), 0);
    assert_int_equal(ndone, 1);
    weft_future_release(f);
    weft_future_release(g);
}

static void wait_with_duplicates_of_a_pending_future_waits_for_the_others(void **state)
{
    (void)state;
    /* A pending duplicate must not be counted twice towards ALL_COMPLETED (or the wait would
     * never be satisfied), and its two entries must not be counted as two completions. */
    weft_future *a = promise();
    weft_future *b = promise();
    weft_future *fs[] = {a, b, a, a};
    struct act act = {ACT_VALUE, 10, a, 0, NULL, -1};
    pthread_t th = act_start(&act);
    bool done[4];
    size_t ndone = 99;
    assert_int_equal(weft_wait(fs, 4, WEFT_FOREVER, WEFT_FIRST_COMPLETED, done, &ndone), 0);
    act_join(th, &act);
    assert_true(done[0] && done[2] && done[3]);
    assert_false(done[1]);
    assert_int_equal(ndone, 1);

    struct act act2 = {ACT_VALUE, 10, b, 0, NULL, -1};
    th = act_start(&act2);
    assert_int_equal(weft_wait(fs, 4, WEFT_FOREVER, WEFT_ALL_COMPLETED, done, &ndone), 0);
    act_join(th, &act2);
    assert_int_equal(ndone, 2);
    weft_future_release(a);
    weft_future_release(b);
}

/* ---------------------------------------------------------------------------------------
 * FIRST_COMPLETED
 * ------------------------------------------------------------------------------------- */
static void wait_first_completed_returns_on_the_first_completion(void **state)
{
    (void)state;
    weft_future *fs[] = {promise(), promise(), promise()};
    struct act act = {ACT_VALUE, 10, fs[1], 0, NULL, -1};
    pthread_t th = act_start(&act);
    bool done[3];
    size_t ndone = 99;
    assert_int_equal(weft_wait(fs, 3, WEFT_FOREVER, WEFT_FIRST_COMPLETED, done, &ndone), 0);
    act_join(th, &act);
    assert_false(done[0]);
    assert_true(done[1]);
    assert_false(done[2]);
    assert_int_equal(ndone, 1);
    /* The unfinished ones stay not done. */
    assert_int_equal(weft_future_state(fs[0]), WEFT_PENDING);
    assert_int_equal(weft_future_state(fs[2]), WEFT_PENDING);
    /* Complete them, so that the waiter's callbacks on them run and free what they hold. */
    assert_int_equal(weft_future_set_value(fs[0], NULL), 0);
    assert_int_equal(weft_future_cancel(fs[2]), 0);
    release_all(fs, 3);
}

static void wait_first_completed_on_pool_tasks_leaves_the_running_one_not_done(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct gate ga, gb;
    gate_init(&ga, (void *)0xa);
    gate_init(&gb, (void *)0xb);
    weft_future *fs[] = {submit_gate(p, &ga), submit_gate(p, &gb)};
    struct act act = {ACT_OPEN, 10, NULL, 0, gb.release, -1};
    pthread_t th = act_start(&act);
    bool done[2];
    size_t ndone = 99;
    assert_int_equal(weft_wait(fs, 2, WEFT_FOREVER, WEFT_FIRST_COMPLETED, done, &ndone), 0);
    act_join(th, &act);
    assert_false(done[0]);
    assert_true(done[1]);
    assert_int_equal(ndone, 1);
    assert_int_equal(weft_future_state(fs[0]), WEFT_RUNNING);
    assert_int_equal(weft_future_state(fs[1]), WEFT_FINISHED);
    latch_open(ga.release);
    void *v = NULL;
    assert_int_equal(weft_future_result(fs[0], WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)0xa);
    release_all(fs, 2);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&ga);
    gate_destroy(&gb);
}

static void wait_first_completed_returns_at_once_when_some_are_already_done(void **state)
{
    (void)state;
    weft_future *fs[] = {promise(), promise_done((void *)3), promise(), promise_failed(EIO)};
    bool done[4];
    size_t ndone = 99;
    /* FOREVER: a wait that did not return at once would hang (nobody completes fs[0], fs[2]). */
    assert_int_equal(weft_wait(fs, 4, WEFT_FOREVER, WEFT_FIRST_COMPLETED, done, &ndone), 0);
    assert_false(done[0]);
    assert_true(done[1]);
    assert_false(done[2]);
    assert_true(done[3]);
    assert_int_equal(ndone, 2);
    assert_int_equal(weft_future_cancel(fs[0]), 0);
    assert_int_equal(weft_future_cancel(fs[2]), 0);
    release_all(fs, 4);
}

/* ---------------------------------------------------------------------------------------
 * FIRST_EXCEPTION
 * ------------------------------------------------------------------------------------- */
static void wait_first_exception_returns_on_the_first_failure(void **state)
{
    (void)state;
    weft_future *fs[] = {promise(), promise(), promise()};
    /* A success first (must not end the wait), then a failure (must). */
    struct act ok = {ACT_VALUE, 5, fs[2], 0, NULL, -1};
    struct act bad = {ACT_ERROR, 20, fs[1], EPIPE, NULL, -1};
    pthread_t t1 = act_start(&ok);
    pthread_t t2 = act_start(&bad);
    bool done[3];
    size_t ndone = 99;
    assert_int_equal(weft_wait(fs, 3, WEFT_FOREVER, WEFT_FIRST_EXCEPTION, done, &ndone), 0);
    act_join(t2, &bad);
    act_join(t1, &ok);
    assert_false(done[0]);
    assert_true(done[1]);
    assert_true(done[2]);
    assert_int_equal(ndone, 2);
    assert_int_equal(weft_future_error(fs[1]), -EPIPE);
    assert_int_equal(weft_future_state(fs[0]), WEFT_PENDING);
    assert_int_equal(weft_future_set_value(fs[0], NULL), 0);
    release_all(fs, 3);
}

static void wait_first_exception_returns_on_a_failing_pool_task(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct gate g;
    gate_init(&g, NULL);
    weft_future *fs[2];
    fs[0] = submit_gate(p, &g);
    assert_int_equal(weft_submit(p, fail_task, (void *)(intptr_t)ENOSPC, &fs[1]), 0);
    bool done[2];
    size_t ndone = 99;
    assert_int_equal(weft_wait(fs, 2, WEFT_FOREVER, WEFT_FIRST_EXCEPTION, done, &ndone), 0);
    assert_false(done[0]);
    assert_true(done[1]);
    assert_int_equal(ndone, 1);
    assert_int_equal(weft_future_result(fs[1], 0, NULL), -ENOSPC);
    assert_string_equal(weft_future_message(fs[1]), "task 28 failed");
    latch_open(g.release);
    release_all(fs, 2);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

static void wait_first_exception_returns_at_once_when_one_already_failed(void **state)
{
    (void)state;
    weft_future *fs[] = {promise(), promise_done(NULL), promise_failed(EBADF), promise()};
    bool done[4];
    size_t ndone = 99;
    assert_int_equal(weft_wait(fs, 4, WEFT_FOREVER, WEFT_FIRST_EXCEPTION, done, &ndone), 0);
    assert_false(done[0]);
    assert_true(done[1]);
    assert_true(done[2]);
    assert_false(done[3]);
    assert_int_equal(ndone, 2);
    /* Also with timeout 0 ("just check"): the condition holds. */
    assert_int_equal(weft_wait(fs, 4, 0, WEFT_FIRST_EXCEPTION, done, &ndone), 0);
    assert_int_equal(weft_future_cancel(fs[0]), 0);
    assert_int_equal(weft_future_cancel(fs[3]), 0);
    release_all(fs, 4);
}

static void wait_first_exception_behaves_like_all_completed_when_none_fails(void **state)
{
    (void)state;
    weft_future *fs[] = {promise(), promise(), promise_done(NULL)};
    struct act a0 = {ACT_VALUE, 5, fs[0], 0, NULL, -1};
    struct act a1 = {ACT_VALUE, 15, fs[1], 0, NULL, -1};
    pthread_t t0 = act_start(&a0);
    pthread_t t1 = act_start(&a1);
    bool done[3];
    size_t ndone = 99;
    assert_int_equal(weft_wait(fs, 3, WEFT_FOREVER, WEFT_FIRST_EXCEPTION, done, &ndone), 0);
    act_join(t0, &a0);
    act_join(t1, &a1);
    assert_true(done[0] && done[1] && done[2]);
    assert_int_equal(ndone, 3);
    release_all(fs, 3);
}

static void wait_first_exception_does_not_count_a_cancellation_as_a_failure(void **state)
{
    (void)state;
    weft_future *fs[] = {promise_cancelled(), promise(), promise_done(NULL)};
    bool done[3];
    size_t ndone = 99;
    assert_int_equal(weft_wait(fs, 3, 0, WEFT_FIRST_EXCEPTION, done, &ndone), WEFT_ETIMEDOUT);
    assert_int_equal(weft_wait(fs, 3, 5 * MS, WEFT_FIRST_EXCEPTION, done, &ndone), WEFT_ETIMEDOUT);
    assert_true(done[0]);
    assert_false(done[1]);
    assert_true(done[2]);
    assert_int_equal(ndone, 2);
    assert_int_equal(weft_future_cancel(fs[1]), 0);
    assert_int_equal(weft_wait(fs, 3, WEFT_FOREVER, WEFT_FIRST_EXCEPTION, done, &ndone), 0);
    assert_int_equal(ndone, 3);
    release_all(fs, 3);
}

static void wait_first_exception_counts_a_timed_out_future_as_failed(void **state)
{
    (void)state;
    /* weft_future_set_timeout turns a RUNNING future into FAILED (WEFT_ETIMEDOUT). */
    weft_future *fs[] = {promise(), promise()};
    assert_int_equal(weft_future_set_running(fs[1]), 0);
    assert_int_equal(weft_future_set_timeout(fs[1], 1 * MS), 0);
    bool done[2];
    size_t ndone = 99;
    assert_int_equal(weft_wait(fs, 2, WEFT_FOREVER, WEFT_FIRST_EXCEPTION, done, &ndone), 0);
    assert_false(done[0]);
    assert_true(done[1]);
    assert_int_equal(weft_future_state(fs[1]), WEFT_FAILED);
    assert_int_equal(weft_future_error(fs[1]), WEFT_ETIMEDOUT);
    assert_int_equal(weft_future_set_value(fs[0], NULL), 0);
    release_all(fs, 2);
}

/* ---------------------------------------------------------------------------------------
 * ALL_COMPLETED and timeouts
 * ------------------------------------------------------------------------------------- */
static void wait_all_completed_splits_done_and_not_done(void **state)
{
    (void)state;
    weft_future *fs[] = {promise_done(NULL), promise(), promise_failed(EIO), promise_cancelled(),
                         promise()};
    bool done[5];
    size_t ndone = 99;
    assert_int_equal(weft_wait(fs, 5, 10 * MS, WEFT_ALL_COMPLETED, done, &ndone), WEFT_ETIMEDOUT);
    assert_true(done[0]);
    assert_false(done[1]);
    assert_true(done[2]);
    assert_true(done[3]);
    assert_false(done[4]);
    assert_int_equal(ndone, 3);

    struct act a1 = {ACT_VALUE, 5, fs[1], 0, NULL, -1};
    struct act a4 = {ACT_ERROR, 10, fs[4], EAGAIN, NULL, -1};
    pthread_t t1 = act_start(&a1);
    pthread_t t4 = act_start(&a4);
    assert_int_equal(weft_wait(fs, 5, WEFT_FOREVER, WEFT_ALL_COMPLETED, done, &ndone), 0);
    act_join(t1, &a1);
    act_join(t4, &a4);
    for (int i = 0; i < 5; i++)
        assert_true(done[i]);
    assert_int_equal(ndone, 5);
    release_all(fs, 5);
}

static void wait_all_completed_waits_for_every_pool_task(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    enum { N = 64 };
    weft_future *fs[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_submit(p, ident_task, (void *)(intptr_t)(i + 1), &fs[i]), 0);
    bool done[N];
    size_t ndone = 0;
    assert_int_equal(weft_wait(fs, N, WEFT_FOREVER, WEFT_ALL_COMPLETED, done, &ndone), 0);
    assert_int_equal(ndone, N);
    for (int i = 0; i < N; i++) {
        assert_true(done[i]);
        void *v = NULL;
        assert_int_equal(weft_future_result(fs[i], 0, &v), 0);
        assert_ptr_equal(v, (void *)(intptr_t)(i + 1));
    }
    release_all(fs, N);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void wait_timeout_zero_just_checks_in_every_mode(void **state)
{
    (void)state;
    weft_future *fs[] = {promise(), promise()};
    bool done[2] = {true, true};
    size_t ndone = 99;
    for (int mode = WEFT_FIRST_COMPLETED; mode <= WEFT_ALL_COMPLETED; mode++) {
        done[0] = done[1] = true;
        ndone = 99;
        assert_int_equal(weft_wait(fs, 2, 0, mode, done, &ndone), WEFT_ETIMEDOUT);
        assert_false(done[0]);
        assert_false(done[1]);
        assert_int_equal(ndone, 0);
        /* done and ndone are optional. */
        assert_int_equal(weft_wait(fs, 2, 0, mode, NULL, NULL), WEFT_ETIMEDOUT);
    }
    assert_int_equal(weft_future_set_value(fs[1], NULL), 0);
    assert_int_equal(weft_wait(fs, 2, 0, WEFT_FIRST_COMPLETED, done, &ndone), 0);
    assert_false(done[0]);
    assert_true(done[1]);
    assert_int_equal(ndone, 1);
    assert_int_equal(weft_wait(fs, 2, 0, WEFT_ALL_COMPLETED, done, &ndone), WEFT_ETIMEDOUT);
    assert_int_equal(ndone, 1);
    assert_int_equal(weft_future_set_value(fs[0], NULL), 0);
    assert_int_equal(weft_wait(fs, 2, 0, WEFT_ALL_COMPLETED, done, &ndone), 0);
    assert_int_equal(ndone, 2);
    release_all(fs, 2);
}

static void wait_timeout_fills_done_flags_in_every_mode(void **state)
{
    (void)state;
    weft_future *fs[] = {promise(), promise_done(NULL), promise()};
    for (int mode = WEFT_FIRST_EXCEPTION; mode <= WEFT_ALL_COMPLETED; mode++) {
        bool done[3] = {true, false, true};
        size_t ndone = 99;
        assert_int_equal(weft_wait(fs, 3, 5 * MS, mode, done, &ndone), WEFT_ETIMEDOUT);
        assert_false(done[0]);
        assert_true(done[1]);
        assert_false(done[2]);
        assert_int_equal(ndone, 1);
    }
    /* FIRST_COMPLETED over the two pending ones alone. */
    weft_future *pend[] = {fs[0], fs[2]};
    bool done[2] = {true, true};
    size_t ndone = 99;
    assert_int_equal(weft_wait(pend, 2, 5 * MS, WEFT_FIRST_COMPLETED, done, &ndone),
                     WEFT_ETIMEDOUT);
    assert_false(done[0]);
    assert_false(done[1]);
    assert_int_equal(ndone, 0);
    assert_int_equal(weft_future_set_value(fs[0], NULL), 0);
    assert_int_equal(weft_future_set_value(fs[2], NULL), 0);
    release_all(fs, 3);
}

static void wait_counts_cancelled_futures_as_done(void **state)
{
    (void)state;
    weft_future *fs[] = {promise(), promise_cancelled()};
    bool done[2];
    size_t ndone = 99;
    assert_int_equal(weft_wait(fs, 2, WEFT_FOREVER, WEFT_FIRST_COMPLETED, done, &ndone), 0);
    assert_false(done[0]);
    assert_true(done[1]);
    assert_int_equal(ndone, 1);
    /* A cancellation while the wait blocks also counts. */
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, NULL);
    weft_future *held = submit_gate(p, &g);
    weft_future *queued = NULL;
    assert_int_equal(weft_submit(p, ident_task, NULL, &queued), 0);
    weft_future *ws[] = {held, queued};
    /* Cancel from the main thread after checking; the wait of ALL_COMPLETED must still see the
     * running one as not done. */
    assert_int_equal(weft_future_cancel(queued), 0);
    assert_int_equal(weft_wait(ws, 2, 0, WEFT_ALL_COMPLETED, done, &ndone), WEFT_ETIMEDOUT);
    assert_false(done[0]);
    assert_true(done[1]);
    assert_int_equal(ndone, 1);
    assert_int_equal(weft_wait(ws, 2, WEFT_FOREVER, WEFT_FIRST_COMPLETED, done, &ndone), 0);
    assert_true(done[1]);
    latch_open(g.release);
    assert_int_equal(weft_wait(ws, 2, WEFT_FOREVER, WEFT_ALL_COMPLETED, done, &ndone), 0);
    assert_int_equal(ndone, 2);
    assert_int_equal(weft_future_state(queued), WEFT_CANCELLED);

    weft_future *all_cancelled[] = {fs[1], queued};
    assert_int_equal(weft_wait(all_cancelled, 2, WEFT_FOREVER, WEFT_ALL_COMPLETED, done, &ndone),
                     0);
    assert_int_equal(ndone, 2);
    weft_future_release(held);
    weft_future_release(queued);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
    assert_int_equal(weft_future_cancel(fs[0]), 0);
    release_all(fs, 2);
}

/* ---------------------------------------------------------------------------------------
 * Races (CPython's test_pending_calls_race) and stress
 * ------------------------------------------------------------------------------------- */
static void wait_all_completed_on_100_futures_does_not_hang(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    enum { N = 100 };
    int rounds = SCALED(200);
    for (int r = 0; r < rounds; r++) {
        weft_future *fs[N];
        for (int i = 0; i < N; i++)
            assert_int_equal(weft_submit(p, ident_task, (void *)(intptr_t)i, &fs[i]), 0);
        bool done[N];
        size_t ndone = 0;
        assert_int_equal(weft_wait(fs, N, WEFT_FOREVER, WEFT_ALL_COMPLETED, done, &ndone), 0);
        assert_int_equal(ndone, N);
        for (int i = 0; i < N; i++)
            assert_true(done[i]);
        release_all(fs, N);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void wait_first_completed_races_with_completions_safely(void **state)
{
    (void)state;
    /* The wait registers callbacks while the tasks complete, returns early, and leaves its
     * callbacks behind on futures still running; the futures are released at once. The
     * sanitizers check the collector's lifetime. */
    weft_pool *p = make_pool(2);
    enum { N = 16 };
    int rounds = SCALED(2000);
    for (int r = 0; r < rounds; r++) {
        weft_future *fs[N];
        for (int i = 0; i < N; i++)
            assert_int_equal(weft_submit(p, ident_task, NULL, &fs[i]), 0);
        bool done[N];
        size_t ndone = 0;
        assert_int_equal(weft_wait(fs, N, WEFT_FOREVER, WEFT_FIRST_COMPLETED, done, &ndone), 0);
        assert_true(ndone >= 1);
        bool any = false;
        for (int i = 0; i < N; i++)
            any |= done[i];
        assert_true(any);
        release_all(fs, N);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void wait_first_exception_races_with_completions_safely(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    enum { N = 16 };
    int rounds = SCALED(2000);
    for (int r = 0; r < rounds; r++) {
        weft_future *fs[N];
        int bad = r % N;
        for (int i = 0; i < N; i++) {
            if (i == bad)
                assert_int_equal(weft_submit(p, fail_task, (void *)(intptr_t)EIO, &fs[i]), 0);
            else
                assert_int_equal(weft_submit(p, ident_task, NULL, &fs[i]), 0);
        }
        bool done[N];
        size_t ndone = 0;
        assert_int_equal(weft_wait(fs, N, WEFT_FOREVER, WEFT_FIRST_EXCEPTION, done, &ndone), 0);
        assert_true(done[bad]);
        assert_int_equal(weft_future_error(fs[bad]), -EIO);
        release_all(fs, N);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void wait_first_exception_is_not_ended_by_successes_completing_during_it(void **state)
{
    (void)state;
    /* One future is held (it never fails during the wait), thousands of others succeed while
     * the wait sleeps and wakes: FIRST_EXCEPTION must not hold, so the wait times out. */
    weft_pool *p = make_pool(2);
    struct gate g;
    gate_init(&g, NULL);
    enum { N = 2001 };
    weft_future **fs = malloc(N * sizeof(*fs));
    bool *done = malloc(N * sizeof(*done));
    assert_non_null(fs);
    assert_non_null(done);
    int rounds = SCALED(20);
    for (int r = 0; r < rounds; r++) {
        fs[0] = submit_gate(p, &g);
        for (int i = 1; i < N; i++)
            assert_int_equal(weft_submit(p, spin_task, NULL, &fs[i]), 0);
        size_t ndone = 0;
        assert_int_equal(weft_wait(fs, N, 20 * MS, WEFT_FIRST_EXCEPTION, done, &ndone),
                         WEFT_ETIMEDOUT);
        assert_false(done[0]);
        latch_open(g.release);
        assert_int_equal(weft_wait(fs, N, WEFT_FOREVER, WEFT_ALL_COMPLETED, NULL, NULL), 0);
        release_all(fs, N);
        gate_destroy(&g);
        gate_init(&g, NULL);
    }
    gate_destroy(&g);
    free(fs);
    free(done);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void wait_ndone_agrees_with_the_done_flags_while_futures_complete(void **state)
{
    (void)state;
    /* done[] and *ndone describe the same moment: ndone is the number of distinct futures
     * flagged done, and the entries of one future listed twice agree, also while the workers
     * complete thousands of futures during the call. */
    weft_pool *p = make_pool(2);
    enum { N = 4096 };
    weft_future **fs = malloc(2 * N * sizeof(*fs)); /* fs[N + i] == fs[i] */
    bool *done = malloc(2 * N * sizeof(*done));
    assert_non_null(fs);
    assert_non_null(done);
    int rounds = SCALED(40);
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < N; i++) {
            assert_int_equal(weft_submit(p, spin_task, NULL, &fs[i]), 0);
            fs[N + i] = fs[i];
        }
        for (int mode = WEFT_FIRST_COMPLETED; mode <= WEFT_ALL_COMPLETED; mode++) {
            size_t ndone = 0;
            int rc = weft_wait(fs, 2 * N, 0, mode, done, &ndone);
            assert_true(rc == 0 || rc == WEFT_ETIMEDOUT);
            size_t k = 0, disagree = 0;
            for (int i = 0; i < N; i++) {
                k += done[i];
                disagree += done[i] != done[N + i];
            }
            assert_int_equal(disagree, 0);
            assert_int_equal(k, ndone);
        }
        assert_int_equal(weft_wait(fs, N, WEFT_FOREVER, WEFT_ALL_COMPLETED, NULL, NULL), 0);
        release_all(fs, N);
    }
    free(fs);
    free(done);
    assert_int_equal(weft_pool_destroy(p), 0);
}

/* ---------------------------------------------------------------------------------------
 * Waiting from inside a task (the worker helps)
 * ------------------------------------------------------------------------------------- */
struct inner_wait {
    int mode;
    int rc;
    size_t ndone;
    int children_ok;
};

static void *inner_wait_task(void *arg)
{
    struct inner_wait *w = arg;
    enum { N = 8 };
    weft_future *fs[N];
    for (int i = 0; i < N; i++)
        if (weft_submit(weft_current_pool(), ident_task, (void *)(intptr_t)(i + 1), &fs[i]) != 0)
            return NULL;
    bool done[N];
    w->rc = weft_wait(fs, N, WEFT_FOREVER, w->mode, done, &w->ndone);
    w->children_ok = 1;
    for (int i = 0; i < N; i++) {
        void *v = NULL;
        /* Whatever the mode, the children finish (the worker helps): check each. */
        if (weft_future_result(fs[i], WEFT_FOREVER, &v) != 0 || v != (void *)(intptr_t)(i + 1))
            w->children_ok = 0;
        weft_future_release(fs[i]);
    }
    return NULL;
}

static void wait_from_inside_a_task_helps_instead_of_deadlocking(void **state)
{
    (void)state;
    /* One worker: the waiting task's children can only run if the wait helps. */
    weft_pool *p = make_pool(1);
    for (int mode = WEFT_FIRST_COMPLETED; mode <= WEFT_ALL_COMPLETED; mode++) {
        struct inner_wait w = {mode, -1, 0, 0};
        assert_int_equal(weft_run(p, inner_wait_task, &w, NULL), 0);
        assert_int_equal(w.rc, 0);
        assert_true(w.ndone >= 1);
        if (mode != WEFT_FIRST_COMPLETED)
            assert_int_equal(w.ndone, 8);
        assert_int_equal(w.children_ok, 1);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
}

/* ---------------------------------------------------------------------------------------
 * Arguments, and lifetimes
 * ------------------------------------------------------------------------------------- */
static void wait_rejects_bad_arguments(void **state)
{
    (void)state;
    weft_future *f = promise_done(NULL);
    weft_future *fs[] = {f, NULL};
    bool done[2];
    size_t ndone = 0;
    assert_int_equal(weft_wait(NULL, 1, 0, WEFT_ALL_COMPLETED, done, &ndone), WEFT_EINVAL);
    assert_int_equal(weft_wait(fs, 0, 0, WEFT_ALL_COMPLETED, done, &ndone), WEFT_EINVAL);
    assert_int_equal(weft_wait(fs, 2, 0, WEFT_ALL_COMPLETED, done, &ndone), WEFT_EINVAL);
    assert_int_equal(weft_wait(fs, 2, WEFT_FOREVER, WEFT_FIRST_COMPLETED, done, &ndone),
                     WEFT_EINVAL);
    assert_int_equal(weft_wait(fs, 1, 0, -1, done, &ndone), WEFT_EINVAL);
    assert_int_equal(weft_wait(fs, 1, 0, 3, done, &ndone), WEFT_EINVAL);
    assert_int_equal(weft_wait(fs, 1, WEFT_FOREVER, 42, done, &ndone), WEFT_EINVAL);
    /* A valid call on the same future still works. */
    assert_int_equal(weft_wait(fs, 1, 0, WEFT_ALL_COMPLETED, done, &ndone), 0);
    assert_int_equal(ndone, 1);
    weft_future_release(f);
}

static void wait_accepts_the_largest_timeout(void **state)
{
    (void)state;
    /* INT64_MAX ns (292 years) is a valid relative timeout: it must behave like a very long
     * wait, not overflow the deadline (signed overflow is undefined; UBSan checks it). */
    weft_future *fs[] = {promise_done(NULL), promise()};
    bool done[2];
    size_t ndone = 0;
    assert_int_equal(weft_wait(fs, 2, INT64_MAX, WEFT_FIRST_COMPLETED, done, &ndone), 0);
    assert_int_equal(ndone, 1);
    struct act a = {ACT_VALUE, 5, fs[1], 0, NULL, -1};
    pthread_t th = act_start(&a);
    assert_int_equal(weft_wait(fs, 2, INT64_MAX, WEFT_ALL_COMPLETED, done, &ndone), 0);
    act_join(th, &a);
    assert_int_equal(ndone, 2);
    release_all(fs, 2);
}

static void wait_on_futures_that_outlive_their_pool(void **state)
{
    (void)state;
    /* "Futures obtained from [a pool] stay valid until released: their outcome is kept."
     * Waiting on such a done future together with an unfinished one must not touch the
     * destroyed pool (ASan: heap-use-after-free if it does). */
    weft_pool *p = make_pool(1);
    weft_future *old = NULL;
    assert_int_equal(weft_submit(p, ident_task, (void *)0x77, &old), 0);
    assert_int_equal(weft_future_result(old, WEFT_FOREVER, NULL), 0);
    assert_int_equal(weft_pool_destroy(p), 0);

    weft_future *fresh = promise();
    weft_future *fs[] = {old, fresh};
    bool done[2];
    size_t ndone = 0;
    for (int mode = WEFT_FIRST_COMPLETED; mode <= WEFT_ALL_COMPLETED; mode++) {
        int want = mode == WEFT_FIRST_COMPLETED ? 0 : WEFT_ETIMEDOUT;
        assert_int_equal(weft_wait(fs, 2, 2 * MS, mode, done, &ndone), want);
        assert_true(done[0]);
        assert_false(done[1]);
        assert_int_equal(ndone, 1);
    }
    assert_int_equal(weft_future_set_value(fresh, NULL), 0);
    weft_future_release(fresh);
    weft_future_release(old);
}

static void wait_leaves_nothing_behind_once_an_abandoned_promise_is_cancelled(void **state)
{
    (void)state;
    /* A wait that returns early leaves its done-callbacks on the unfinished futures. When
     * such a promise is abandoned (cancelled, then released), what the wait allocated must
     * not leak (LSan checks at exit). */
    weft_future *fs[] = {promise(), promise_done(NULL)};
    bool done[2];
    size_t ndone = 0;
    assert_int_equal(weft_wait(fs, 2, WEFT_FOREVER, WEFT_FIRST_COMPLETED, done, &ndone), 0);
    assert_int_equal(weft_wait(fs, 2, 1 * MS, WEFT_ALL_COMPLETED, done, &ndone), WEFT_ETIMEDOUT);
    weft_future *pend[] = {fs[0]};
    assert_int_equal(weft_wait(pend, 1, 1 * MS, WEFT_FIRST_COMPLETED, done, &ndone),
                     WEFT_ETIMEDOUT);
    /* The contract (weft_future_release): an abandoned promise is cancelled before its last
     * release, which runs the callbacks the wait/iterator left and frees their bookkeeping. */
    assert_int_equal(weft_future_cancel(fs[0]), 0);
    release_all(fs, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wait_counts_a_duplicated_future_once),
        cmocka_unit_test(wait_with_duplicates_of_a_pending_future_waits_for_the_others),
        cmocka_unit_test(wait_first_completed_returns_on_the_first_completion),
        cmocka_unit_test(wait_first_completed_on_pool_tasks_leaves_the_running_one_not_done),
        cmocka_unit_test(wait_first_completed_returns_at_once_when_some_are_already_done),
        cmocka_unit_test(wait_first_exception_returns_on_the_first_failure),
        cmocka_unit_test(wait_first_exception_returns_on_a_failing_pool_task),
        cmocka_unit_test(wait_first_exception_returns_at_once_when_one_already_failed),
        cmocka_unit_test(wait_first_exception_behaves_like_all_completed_when_none_fails),
        cmocka_unit_test(wait_first_exception_does_not_count_a_cancellation_as_a_failure),
        cmocka_unit_test(wait_first_exception_counts_a_timed_out_future_as_failed),
        cmocka_unit_test(wait_all_completed_splits_done_and_not_done),
        cmocka_unit_test(wait_all_completed_waits_for_every_pool_task),
        cmocka_unit_test(wait_timeout_zero_just_checks_in_every_mode),
        cmocka_unit_test(wait_timeout_fills_done_flags_in_every_mode),
        cmocka_unit_test(wait_counts_cancelled_futures_as_done),
        cmocka_unit_test(wait_all_completed_on_100_futures_does_not_hang),
        cmocka_unit_test(wait_first_completed_races_with_completions_safely),
        cmocka_unit_test(wait_first_exception_is_not_ended_by_successes_completing_during_it),
        cmocka_unit_test(wait_ndone_agrees_with_the_done_flags_while_futures_complete),
        cmocka_unit_test(wait_first_exception_races_with_completions_safely),
        cmocka_unit_test(wait_from_inside_a_task_helps_instead_of_deadlocking),
        cmocka_unit_test(wait_rejects_bad_arguments),
        cmocka_unit_test(wait_accepts_the_largest_timeout),
        cmocka_unit_test(wait_on_futures_that_outlive_their_pool),
        cmocka_unit_test(wait_leaves_nothing_behind_once_an_abandoned_promise_is_cancelled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
