/*
 * Futures: every state transition and its races, waiting (with and without timeouts), the
 * promise side, done-callbacks, task failure codes and messages, lifetime, error names.
 *
 * Tasks are held in RUNNING deterministically with latches (mutex + condition variable);
 * nothing here asserts on timing. Assertions are made on the main thread only (cmocka's
 * failure path longjmps): helper threads record what they saw, the test checks it after
 * joining them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"
#include "weft.h"

#include <errno.h>
#include <limits.h>
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
    weft_pool *p = make_pool_named(n, "tfut");
    assert_int_equal(weft_pool_size(p), n);
    return p;
}

/* Records callback invocations: order, thread, and what the future looked like. */
#define LOG_MAX 64
struct cb_log {
    pthread_mutex_t m;
    int n;
    int id[LOG_MAX];
    pthread_t thread[LOG_MAX];
    int state[LOG_MAX];
    int code[LOG_MAX];
    void *value[LOG_MAX];
    const char *msg[LOG_MAX];
};

struct cb_arg {
    struct cb_log *log;
    int id;
};

static void cb_log_init(struct cb_log *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->m, NULL);
}

static void log_cb(weft_future *f, void *arg)
{
    struct cb_arg *a = arg;
    struct cb_log *l = a->log;
    void *v = NULL;
    int code = weft_future_result(f, 0, &v);
    pthread_mutex_lock(&l->m);
    if (l->n < LOG_MAX) {
        l->id[l->n] = a->id;
        l->thread[l->n] = pthread_self();
        l->state[l->n] = weft_future_state(f);
        l->code[l->n] = code;
        l->value[l->n] = v;
        l->msg[l->n] = weft_future_message(f);
    }
    l->n++;
    pthread_mutex_unlock(&l->m);
}

/* ---------------------------------------------------------------------------------------
 * The state truth table (promises: each state reached deterministically)
 * ------------------------------------------------------------------------------------- */
static void future_pending_reports_pending(void **state)
{
    (void)state;
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    assert_non_null(f);
    assert_int_equal(weft_future_state(f), WEFT_PENDING);
    assert_false(weft_future_done(f));
    assert_false(weft_future_running(f));
    assert_false(weft_future_cancelled(f));
    assert_int_equal(weft_future_error(f), 0);
    assert_null(weft_future_message(f));
    weft_future_release(f);
}

static void future_cancel_pending_succeeds(void **state)
{
    (void)state;
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(weft_future_state(f), WEFT_CANCELLED);
    assert_true(weft_future_done(f));
    assert_true(weft_future_cancelled(f));
    assert_false(weft_future_running(f));
    assert_int_equal(weft_future_error(f), WEFT_ECANCELED);
    assert_null(weft_future_message(f));
    void *v = (void *)0x1;
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, &v), WEFT_ECANCELED);
    /* The promise side sees the cancellation: do not run the work. */
    assert_int_equal(weft_future_set_running(f), WEFT_ECANCELED);
    assert_int_equal(weft_future_set_value(f, (void *)0x2), WEFT_ESTATE);
    assert_int_equal(weft_future_set_error(f, 5, "late"), WEFT_ESTATE);
    assert_int_equal(weft_future_state(f), WEFT_CANCELLED);
    assert_null(weft_future_message(f));
    weft_future_release(f);
}

static void future_cancel_cancelled_is_idempotent(void **state)
{
    (void)state;
    struct cb_log log;
    cb_log_init(&log);
    struct cb_arg a = {&log, 1};
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_add_done_callback(f, log_cb, &a), 0);
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(weft_future_state(f), WEFT_CANCELLED);
    assert_int_equal(log.n, 1); /* the callback ran once, not once per cancel */
    assert_int_equal(log.code[0], WEFT_ECANCELED);
    weft_future_release(f);
}

static void future_cancel_running_fails(void **state)
{
    (void)state;
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_set_running(f), 0);
    assert_int_equal(weft_future_state(f), WEFT_RUNNING);
    assert_true(weft_future_running(f));
    assert_false(weft_future_done(f));
    assert_false(weft_future_cancelled(f));
    assert_int_equal(weft_future_error(f), 0);
    assert_int_equal(weft_future_cancel(f), WEFT_ESTATE);
    assert_int_equal(weft_future_state(f), WEFT_RUNNING);
    assert_int_equal(weft_future_set_running(f), WEFT_ESTATE);
    /* Still completes normally after the refused cancel. */
    assert_int_equal(weft_future_set_value(f, (void *)0x42), 0);
    void *v = NULL;
    assert_int_equal(weft_future_result(f, 0, &v), 0);
    assert_ptr_equal(v, (void *)0x42);
    weft_future_release(f);
}

static void future_cancel_finished_fails(void **state)
{
    (void)state;
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_set_value(f, (void *)0x77), 0);
    assert_int_equal(weft_future_state(f), WEFT_FINISHED);
    assert_true(weft_future_done(f));
    assert_false(weft_future_running(f));
    assert_false(weft_future_cancelled(f));
    assert_int_equal(weft_future_error(f), 0);
    assert_null(weft_future_message(f));
    assert_int_equal(weft_future_cancel(f), WEFT_ESTATE);
    assert_int_equal(weft_future_state(f), WEFT_FINISHED);
    assert_int_equal(weft_future_set_running(f), WEFT_ESTATE);
    void *v = NULL;
    assert_int_equal(weft_future_result(f, 0, &v), 0);
    assert_ptr_equal(v, (void *)0x77);
    weft_future_release(f);
}

static void future_cancel_failed_fails(void **state)
{
    (void)state;
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_set_error(f, EIO, "disk on fire"), 0);
    assert_int_equal(weft_future_state(f), WEFT_FAILED);
    assert_true(weft_future_done(f));
    assert_false(weft_future_running(f));
    assert_false(weft_future_cancelled(f));
    assert_int_equal(weft_future_error(f), -EIO);
    assert_string_equal(weft_future_message(f), "disk on fire");
    assert_int_equal(weft_future_cancel(f), WEFT_ESTATE);
    assert_int_equal(weft_future_state(f), WEFT_FAILED);
    assert_int_equal(weft_future_set_running(f), WEFT_ESTATE);
    assert_int_equal(weft_future_result(f, 0, NULL), -EIO);
    weft_future_release(f);
}

static void future_completion_after_done_keeps_first_outcome(void **state)
{
    (void)state;
    weft_future *f = NULL;
    /* value first */
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_set_value(f, (void *)0x10), 0);
    assert_int_equal(weft_future_set_value(f, (void *)0x20), WEFT_ESTATE);
    assert_int_equal(weft_future_set_error(f, 3, "no"), WEFT_ESTATE);
    void *v = NULL;
    assert_int_equal(weft_future_result(f, 0, &v), 0);
    assert_ptr_equal(v, (void *)0x10);
    assert_null(weft_future_message(f));
    weft_future_release(f);
    /* error first, from RUNNING */
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_set_running(f), 0);
    assert_int_equal(weft_future_set_error(f, 7, "first"), 0);
    assert_int_equal(weft_future_set_value(f, (void *)0x20), WEFT_ESTATE);
    assert_int_equal(weft_future_set_error(f, 9, "second"), WEFT_ESTATE);
    assert_int_equal(weft_future_result(f, 0, NULL), -7);
    assert_string_equal(weft_future_message(f), "first");
    weft_future_release(f);
}

static void future_set_error_copies_and_normalises(void **state)
{
    (void)state;
    weft_future *f = NULL;
    char buf[32];
    strcpy(buf, "copied message");
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_set_error(f, ENOENT, buf), 0);
    memset(buf, 'x', sizeof(buf) - 1); /* the future kept its own copy */
    assert_string_equal(weft_future_message(f), "copied message");
    assert_int_equal(weft_future_error(f), -ENOENT);
    weft_future_release(f);

    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_set_error(f, 0, NULL), 0);
    assert_int_equal(weft_future_error(f), WEFT_EFAILED);
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), WEFT_EFAILED);
    assert_null(weft_future_message(f));
    weft_future_release(f);

    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_set_error(f, -4321, NULL), 0); /* negative: kept as is */
    assert_int_equal(weft_future_error(f), -4321);
    weft_future_release(f);
}

/* ---------------------------------------------------------------------------------------
 * The truth table on pool futures (held in PENDING/RUNNING by a 1-worker pool)
 * ------------------------------------------------------------------------------------- */
static void future_pool_task_goes_pending_running_finished(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, (void *)0x51);
    weft_future *running = submit_gate(p, &g);
    assert_int_equal(weft_future_state(running), WEFT_RUNNING);
    assert_true(weft_future_running(running));
    assert_false(weft_future_done(running));
    assert_int_equal(weft_future_cancel(running), WEFT_ESTATE);

    atomic_int ran = 0;
    weft_future *queued = NULL;
    assert_int_equal(weft_submit(p, count_task, &ran, &queued), 0);
    assert_int_equal(weft_future_state(queued), WEFT_PENDING); /* the only worker is busy */
    assert_false(weft_future_done(queued));

    latch_open(g.release);
    void *v = NULL;
    assert_int_equal(weft_future_result(running, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)0x51);
    assert_int_equal(weft_future_state(running), WEFT_FINISHED);
    assert_int_equal(weft_future_cancel(running), WEFT_ESTATE);
    assert_int_equal(weft_future_result(queued, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, &ran);
    assert_int_equal(atomic_load(&ran), 1);
    assert_int_equal(weft_future_state(queued), WEFT_FINISHED);

    weft_future_release(running);
    weft_future_release(queued);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

static void future_pool_cancel_queued_task_never_runs(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, NULL);
    weft_future *running = submit_gate(p, &g);

    atomic_int ran = 0;
    weft_future *queued = NULL;
    assert_int_equal(weft_submit(p, count_task, &ran, &queued), 0);
    assert_int_equal(weft_future_cancel(queued), 0);
    assert_int_equal(weft_future_cancel(queued), 0);
    assert_true(weft_future_cancelled(queued));
    assert_int_equal(weft_future_result(queued, 0, NULL), WEFT_ECANCELED);

    latch_open(g.release);
    assert_int_equal(weft_future_result(running, WEFT_FOREVER, NULL), 0);
    assert_int_equal(weft_pool_destroy(p), 0); /* every queued item has been dequeued */
    assert_int_equal(atomic_load(&ran), 0);
    assert_int_equal(weft_future_state(queued), WEFT_CANCELLED);
    weft_future_release(running);
    weft_future_release(queued);
    gate_destroy(&g);
}

/* The promise side is refused on a submitted task's future, queued or running: the task
 * alone completes it, and the futures queued behind it still run (a completion written
 * into a queued future used to overwrite the link that queued it). */
static void future_promise_calls_on_pool_future_rejected(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, (void *)0x77);
    weft_future *running = submit_gate(p, &g);

    enum { QUEUED = 8 };
    atomic_int ran = 0;
    weft_future *q[QUEUED];
    for (int i = 0; i < QUEUED; i++)
        assert_int_equal(weft_submit(p, count_task, &ran, &q[i]), 0);
    for (int i = 0; i < QUEUED; i++) {
        assert_int_equal(weft_future_set_value(q[i], (void *)0xbad), WEFT_EINVAL);
        assert_int_equal(weft_future_set_error(q[i], EIO, "no"), WEFT_EINVAL);
        assert_int_equal(weft_future_set_running(q[i]), WEFT_EINVAL);
        assert_int_equal(weft_future_state(q[i]), WEFT_PENDING);
    }
    assert_int_equal(weft_future_set_value(running, NULL), WEFT_EINVAL);

    latch_open(g.release);
    void *v = NULL;
    assert_int_equal(weft_future_result(running, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)0x77);
    for (int i = 0; i < QUEUED; i++) {
        assert_int_equal(weft_future_result(q[i], WEFT_FOREVER, &v), 0);
        assert_ptr_equal(v, &ran);
        weft_future_release(q[i]);
    }
    assert_int_equal(atomic_load(&ran), QUEUED);
    weft_future_release(running);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

static void *fail_after_gate_task(void *arg)
{
    struct gate *g = arg;
    gate_task(g);
    return weft_fail(EPIPE, "pipe %d", 7);
}

static void future_pool_failed_task_refuses_cancel(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, NULL);
    weft_future *f = NULL;
    assert_int_equal(weft_submit(p, fail_after_gate_task, &g, &f), 0);
    latch_wait(g.started);
    assert_int_equal(weft_future_cancel(f), WEFT_ESTATE);
    latch_open(g.release);
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), -EPIPE);
    assert_int_equal(weft_future_state(f), WEFT_FAILED);
    assert_int_equal(weft_future_cancel(f), WEFT_ESTATE);
    assert_string_equal(weft_future_message(f), "pipe 7");
    weft_future_release(f);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

/* ---------------------------------------------------------------------------------------
 * Races
 * ------------------------------------------------------------------------------------- */
static void *flag_task(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return (void *)0x5;
}

/* Cancel right after submit, against workers that are idle and spinning for work: for each
 * round exactly one of "the task ran" / "the cancel succeeded" happens. */
static void future_cancel_vs_start_race_exactly_one_wins(void **state)
{
    (void)state;
    const int rounds = SCALED(20000);
    weft_pool *p = make_pool(2);
    atomic_int *ran = calloc((size_t)rounds, sizeof(*ran));
    int *cancelled = calloc((size_t)rounds, sizeof(*cancelled));
    weft_future **fs = calloc((size_t)rounds, sizeof(*fs));
    assert_non_null(ran);
    assert_non_null(cancelled);
    assert_non_null(fs);
    for (int i = 0; i < rounds; i++) {
        assert_int_equal(weft_submit(p, flag_task, &ran[i], &fs[i]), 0);
        /* 0 to 63 µs between submit and cancel: a parked worker takes some µs to wake, a
         * spinning one less, so both outcomes happen (the counts are printed). */
        int64_t until = weft_now_ns() + (i % 64) * 1000;
        while (weft_now_ns() < until) {
        }
        int rc = weft_future_cancel(fs[i]);
        assert_true(rc == 0 || rc == WEFT_ESTATE);
        cancelled[i] = rc == 0;
    }
    assert_int_equal(weft_pool_destroy(p), 0); /* nothing can start after this */
    int nran = 0, ncancel = 0;
    for (int i = 0; i < rounds; i++) {
        int r = atomic_load(&ran[i]);
        assert_int_equal(r + cancelled[i], 1); /* never both, never neither */
        if (cancelled[i]) {
            assert_int_equal(weft_future_state(fs[i]), WEFT_CANCELLED);
            assert_int_equal(weft_future_result(fs[i], 0, NULL), WEFT_ECANCELED);
            ncancel++;
        } else {
            void *v = NULL;
            assert_int_equal(weft_future_result(fs[i], 0, &v), 0);
            assert_ptr_equal(v, (void *)0x5);
            nran++;
        }
        weft_future_release(fs[i]);
    }
    assert_int_equal(nran + ncancel, rounds);
    print_message("cancel vs start: %d ran, %d cancelled\n", nran, ncancel);
    free(ran);
    free(cancelled);
    free(fs);
}

/* The same race on a promise: set_running in one thread, cancel in another. */
struct running_race {
    pthread_barrier_t start, end;
    weft_future *f;
    int rc;
    int rounds;
};

static void *set_running_thread(void *arg)
{
    struct running_race *r = arg;
    for (int i = 0; i < r->rounds; i++) {
        pthread_barrier_wait(&r->start);
        r->rc = weft_future_set_running(r->f);
        pthread_barrier_wait(&r->end);
    }
    return NULL;
}

static void future_cancel_vs_set_running_race_exactly_one_wins(void **state)
{
    (void)state;
    struct running_race r;
    r.rounds = SCALED(5000);
    pthread_barrier_init(&r.start, NULL, 2);
    pthread_barrier_init(&r.end, NULL, 2);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, set_running_thread, &r), 0);
    for (int i = 0; i < r.rounds; i++) {
        assert_int_equal(weft_future_create(&r.f), 0);
        pthread_barrier_wait(&r.start);
        int crc = weft_future_cancel(r.f);
        pthread_barrier_wait(&r.end);
        if (crc == 0) {
            assert_int_equal(r.rc, WEFT_ECANCELED);
            assert_int_equal(weft_future_state(r.f), WEFT_CANCELLED);
        } else {
            assert_int_equal(crc, WEFT_ESTATE);
            assert_int_equal(r.rc, 0);
            assert_int_equal(weft_future_state(r.f), WEFT_RUNNING);
            assert_int_equal(weft_future_set_value(r.f, NULL), 0);
        }
        weft_future_release(r.f);
    }
    pthread_join(t, NULL);
    pthread_barrier_destroy(&r.start);
    pthread_barrier_destroy(&r.end);
}

/* Several threads complete one promise at once: exactly one wins, the others get
 * WEFT_ESTATE and the winner's outcome stays. */
#define COMPLETERS 4
struct completer_race {
    pthread_barrier_t start, end;
    weft_future *f;
    int rc[COMPLETERS];
    int rounds;
    bool with_running; /* set_running before the race (RUNNING -> done) */
};

struct completer_arg {
    struct completer_race *r;
    int id;
};

static void *completer_thread(void *arg)
{
    struct completer_arg *a = arg;
    struct completer_race *r = a->r;
    char msg[32];
    snprintf(msg, sizeof(msg), "completer %d", a->id);
    for (int i = 0; i < r->rounds; i++) {
        pthread_barrier_wait(&r->start);
        if (a->id % 2 == 0)
            r->rc[a->id] = weft_future_set_value(r->f, (void *)(uintptr_t)(a->id + 1));
        else
            r->rc[a->id] = weft_future_set_error(r->f, a->id + 100, msg);
        pthread_barrier_wait(&r->end);
    }
    return NULL;
}

static void run_completer_race(bool with_running)
{
    struct completer_race r;
    r.rounds = SCALED(3000);
    r.with_running = with_running;
    pthread_barrier_init(&r.start, NULL, COMPLETERS + 1);
    pthread_barrier_init(&r.end, NULL, COMPLETERS + 1);
    pthread_t t[COMPLETERS];
    struct completer_arg a[COMPLETERS];
    for (int i = 0; i < COMPLETERS; i++) {
        a[i].r = &r;
        a[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, completer_thread, &a[i]), 0);
    }
    int wins_by[COMPLETERS] = {0};
    for (int round = 0; round < r.rounds; round++) {
        assert_int_equal(weft_future_create(&r.f), 0);
        if (with_running)
            assert_int_equal(weft_future_set_running(r.f), 0);
        pthread_barrier_wait(&r.start);
        pthread_barrier_wait(&r.end);
        int winner = -1, wins = 0;
        for (int i = 0; i < COMPLETERS; i++) {
            if (r.rc[i] == 0) {
                winner = i;
                wins++;
            } else {
                assert_int_equal(r.rc[i], WEFT_ESTATE);
            }
        }
        assert_int_equal(wins, 1);
        wins_by[winner]++;
        void *v = NULL;
        int code = weft_future_result(r.f, 0, &v);
        if (winner % 2 == 0) {
            assert_int_equal(code, 0);
            assert_ptr_equal(v, (void *)(uintptr_t)(winner + 1));
            assert_int_equal(weft_future_state(r.f), WEFT_FINISHED);
            assert_null(weft_future_message(r.f));
        } else {
            char msg[32];
            snprintf(msg, sizeof(msg), "completer %d", winner);
            assert_int_equal(code, -(winner + 100));
            assert_int_equal(weft_future_state(r.f), WEFT_FAILED);
            assert_string_equal(weft_future_message(r.f), msg);
        }
        weft_future_release(r.f);
    }
    for (int i = 0; i < COMPLETERS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&r.start);
    pthread_barrier_destroy(&r.end);
}

static void future_concurrent_completers_exactly_one_wins(void **state)
{
    (void)state;
    run_completer_race(false);
}

static void future_concurrent_completers_of_running_promise_exactly_one_wins(void **state)
{
    (void)state;
    run_completer_race(true);
}

/* ---------------------------------------------------------------------------------------
 * Many waiters
 * ------------------------------------------------------------------------------------- */
#define WAITERS 8
struct waiters {
    weft_future *f;
    int64_t timeout;
    atomic_int ready;
    int rc[WAITERS];
    void *value[WAITERS];
};

struct waiter_arg {
    struct waiters *w;
    int id;
};

static void *waiter_thread(void *arg)
{
    struct waiter_arg *a = arg;
    atomic_fetch_add(&a->w->ready, 1);
    a->w->value[a->id] = NULL;
    a->w->rc[a->id] = weft_future_result(a->w->f, a->w->timeout, &a->w->value[a->id]);
    return NULL;
}

static void start_waiters(struct waiters *w, pthread_t *t, struct waiter_arg *a)
{
    atomic_init(&w->ready, 0);
    for (int i = 0; i < WAITERS; i++) {
        a[i].w = w;
        a[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, waiter_thread, &a[i]), 0);
    }
    while (atomic_load(&w->ready) < WAITERS)
        sleep_ms(1);
    /* Give them the chance to get past their spin and onto the futex (not required for
     * correctness: the test passes either way, it only covers the sleeping path more). */
    sleep_ms(20);
}

static void join_waiters(pthread_t *t)
{
    for (int i = 0; i < WAITERS; i++)
        pthread_join(t[i], NULL);
}

static void future_many_waiters_all_woken_with_value(void **state)
{
    (void)state;
    struct waiters w = {0};
    pthread_t t[WAITERS];
    struct waiter_arg a[WAITERS];
    assert_int_equal(weft_future_create(&w.f), 0);
    w.timeout = WEFT_FOREVER;
    start_waiters(&w, t, a);
    assert_int_equal(weft_future_set_value(w.f, (void *)0xabc), 0);
    join_waiters(t);
    for (int i = 0; i < WAITERS; i++) {
        assert_int_equal(w.rc[i], 0);
        assert_ptr_equal(w.value[i], (void *)0xabc);
    }
    weft_future_release(w.f);
}

static void future_many_waiters_all_woken_with_error(void **state)
{
    (void)state;
    struct waiters w = {0};
    pthread_t t[WAITERS];
    struct waiter_arg a[WAITERS];
    assert_int_equal(weft_future_create(&w.f), 0);
    assert_int_equal(weft_future_set_running(w.f), 0);
    w.timeout = 60000 * MS; /* a finite timeout that never expires in practice */
    start_waiters(&w, t, a);
    assert_int_equal(weft_future_set_error(w.f, ECONNRESET, "reset"), 0);
    join_waiters(t);
    for (int i = 0; i < WAITERS; i++)
        assert_int_equal(w.rc[i], -ECONNRESET);
    weft_future_release(w.f);
}

static void future_many_waiters_on_pool_task_all_woken(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct gate g;
    gate_init(&g, (void *)0x99);
    struct waiters w = {0};
    pthread_t t[WAITERS];
    struct waiter_arg a[WAITERS];
    w.f = submit_gate(p, &g);
    w.timeout = WEFT_FOREVER;
    start_waiters(&w, t, a);
    latch_open(g.release);
    join_waiters(t);
    for (int i = 0; i < WAITERS; i++) {
        assert_int_equal(w.rc[i], 0);
        assert_ptr_equal(w.value[i], (void *)0x99);
    }
    weft_future_release(w.f);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

struct canceller {
    weft_future *f;
    int rc;
};

static void *cancel_thread(void *arg)
{
    struct canceller *c = arg;
    c->rc = weft_future_cancel(c->f);
    return NULL;
}

static void future_waiters_woken_by_cancel_from_another_thread(void **state)
{
    (void)state;
    struct waiters w = {0};
    pthread_t t[WAITERS];
    struct waiter_arg a[WAITERS];
    assert_int_equal(weft_future_create(&w.f), 0);
    w.timeout = WEFT_FOREVER;
    start_waiters(&w, t, a);
    struct canceller c = {w.f, -1};
    pthread_t ct;
    assert_int_equal(pthread_create(&ct, NULL, cancel_thread, &c), 0);
    pthread_join(ct, NULL);
    assert_int_equal(c.rc, 0);
    join_waiters(t);
    for (int i = 0; i < WAITERS; i++)
        assert_int_equal(w.rc[i], WEFT_ECANCELED);
    weft_future_release(w.f);
}

static void future_waiters_on_queued_pool_task_woken_by_cancel(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, NULL);
    weft_future *running = submit_gate(p, &g);
    atomic_int ran = 0;
    struct waiters w = {0};
    pthread_t t[WAITERS];
    struct waiter_arg a[WAITERS];
    assert_int_equal(weft_submit(p, count_task, &ran, &w.f), 0);
    w.timeout = WEFT_FOREVER;
    start_waiters(&w, t, a);
    struct canceller c = {w.f, -1};
    pthread_t ct;
    assert_int_equal(pthread_create(&ct, NULL, cancel_thread, &c), 0);
    pthread_join(ct, NULL);
    assert_int_equal(c.rc, 0);
    join_waiters(t);
    for (int i = 0; i < WAITERS; i++)
        assert_int_equal(w.rc[i], WEFT_ECANCELED);
    latch_open(g.release);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&ran), 0);
    weft_future_release(w.f);
    weft_future_release(running);
    gate_destroy(&g);
}

/* ---------------------------------------------------------------------------------------
 * Done-callbacks
 * ------------------------------------------------------------------------------------- */
static void future_callbacks_run_once_in_registration_order_on_value(void **state)
{
    (void)state;
    struct cb_log log;
    cb_log_init(&log);
    struct cb_arg a[5];
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    for (int i = 0; i < 5; i++) {
        a[i] = (struct cb_arg){&log, i};
        assert_int_equal(weft_future_add_done_callback(f, log_cb, &a[i]), 0);
    }
    assert_int_equal(log.n, 0); /* nothing runs before completion */
    assert_int_equal(weft_future_set_value(f, (void *)0x31), 0);
    assert_int_equal(log.n, 5); /* run by the completer, before set_value returned */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(log.id[i], i);
        assert_true(pthread_equal(log.thread[i], pthread_self()));
        assert_int_equal(log.state[i], WEFT_FINISHED);
        assert_int_equal(log.code[i], 0);
        assert_ptr_equal(log.value[i], (void *)0x31);
    }
    /* Completion refused later runs nothing again. */
    assert_int_equal(weft_future_set_value(f, NULL), WEFT_ESTATE);
    assert_int_equal(weft_future_cancel(f), WEFT_ESTATE);
    assert_int_equal(log.n, 5);
    weft_future_release(f);
}

static void future_callbacks_run_once_in_registration_order_on_error(void **state)
{
    (void)state;
    struct cb_log log;
    cb_log_init(&log);
    struct cb_arg a[4];
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_set_running(f), 0);
    for (int i = 0; i < 4; i++) {
        a[i] = (struct cb_arg){&log, i};
        assert_int_equal(weft_future_add_done_callback(f, log_cb, &a[i]), 0);
    }
    assert_int_equal(weft_future_set_error(f, EACCES, "denied"), 0);
    assert_int_equal(log.n, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(log.id[i], i);
        assert_int_equal(log.state[i], WEFT_FAILED);
        assert_int_equal(log.code[i], -EACCES);
        assert_non_null(log.msg[i]);
        assert_string_equal(log.msg[i], "denied");
    }
    weft_future_release(f);
}

static void future_callbacks_run_once_in_registration_order_on_cancel(void **state)
{
    (void)state;
    struct cb_log log;
    cb_log_init(&log);
    struct cb_arg a[4];
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    for (int i = 0; i < 4; i++) {
        a[i] = (struct cb_arg){&log, i};
        assert_int_equal(weft_future_add_done_callback(f, log_cb, &a[i]), 0);
    }
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(log.n, 4); /* in the cancelling thread, before cancel returned */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(log.id[i], i);
        assert_true(pthread_equal(log.thread[i], pthread_self()));
        assert_int_equal(log.state[i], WEFT_CANCELLED);
        assert_int_equal(log.code[i], WEFT_ECANCELED);
    }
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(log.n, 4);
    weft_future_release(f);
}

static void future_callback_added_after_completion_runs_at_once_in_caller(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct cb_log log;
    cb_log_init(&log);
    struct cb_arg a[3] = {{&log, 0}, {&log, 1}, {&log, 2}};
    weft_future *f = NULL;
    assert_int_equal(weft_submit(p, ident_task, (void *)0x61, &f), 0);
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(weft_future_add_done_callback(f, log_cb, &a[i]), 0);
        assert_int_equal(log.n, i + 1); /* ran before add returned */
        assert_true(pthread_equal(log.thread[i], pthread_self()));
        assert_int_equal(log.id[i], i);
        assert_int_equal(log.state[i], WEFT_FINISHED);
        assert_ptr_equal(log.value[i], (void *)0x61);
    }
    weft_future_release(f);

    /* Also on cancelled and failed futures. */
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(weft_future_add_done_callback(f, log_cb, &a[0]), 0);
    assert_int_equal(log.n, 4);
    assert_int_equal(log.code[3], WEFT_ECANCELED);
    weft_future_release(f);
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_set_error(f, 0, "m"), 0);
    assert_int_equal(weft_future_add_done_callback(f, log_cb, &a[1]), 0);
    assert_int_equal(log.n, 5);
    assert_int_equal(log.code[4], WEFT_EFAILED);
    assert_string_equal(log.msg[4], "m");
    weft_future_release(f);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void future_callbacks_on_pool_task_run_in_completing_worker(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, (void *)0x71);
    struct cb_log log;
    cb_log_init(&log);
    struct cb_arg a[3] = {{&log, 0}, {&log, 1}, {&log, 2}};
    weft_future *f = submit_gate(p, &g);
    for (int i = 0; i < 3; i++)
        assert_int_equal(weft_future_add_done_callback(f, log_cb, &a[i]), 0);
    assert_int_equal(log.n, 0);
    latch_open(g.release);
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), 0);
    /* Callbacks run after waiters are released: wait for the pool to settle. */
    assert_int_equal(weft_pool_shutdown(p, true, false), 0);
    assert_int_equal(log.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(log.id[i], i);
        assert_false(pthread_equal(log.thread[i], pthread_self()));
        assert_true(pthread_equal(log.thread[i], log.thread[0]));
        assert_int_equal(log.state[i], WEFT_FINISHED);
        assert_ptr_equal(log.value[i], (void *)0x71);
    }
    weft_future_release(f);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

/* A callback that uses the very future it is called for. */
struct reentrant {
    int state, done, error, result_rc, result_forever_rc, cancel_rc, set_value_rc, set_error_rc,
        set_running_rc, add_rc;
    void *value;
    int inner_runs;
    bool inner_ran_during_add;
    int outer_runs;
};

static void inner_cb(weft_future *f, void *arg)
{
    (void)f;
    ((struct reentrant *)arg)->inner_runs++;
}

static void reentrant_cb(weft_future *f, void *arg)
{
    struct reentrant *r = arg;
    r->outer_runs++;
    r->state = weft_future_state(f);
    r->done = weft_future_done(f);
    r->error = weft_future_error(f);
    r->result_rc = weft_future_result(f, 0, &r->value);
    r->result_forever_rc = weft_future_result(f, WEFT_FOREVER, NULL);
    r->cancel_rc = weft_future_cancel(f);
    r->set_value_rc = weft_future_set_value(f, (void *)0xdead);
    r->set_error_rc = weft_future_set_error(f, 1, "no");
    r->set_running_rc = weft_future_set_running(f);
    weft_future_retain(f);
    r->add_rc = weft_future_add_done_callback(f, inner_cb, r);
    r->inner_ran_during_add = r->inner_runs == 1;
    weft_future_release(f);
}

static void future_callback_may_call_weft_on_same_future(void **state)
{
    (void)state;
    /* completed with a value */
    struct reentrant r = {0};
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_add_done_callback(f, reentrant_cb, &r), 0);
    assert_int_equal(weft_future_set_value(f, (void *)0x123), 0);
    assert_int_equal(r.outer_runs, 1);
    assert_int_equal(r.state, WEFT_FINISHED);
    assert_true(r.done);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.result_rc, 0);
    assert_ptr_equal(r.value, (void *)0x123);
    assert_int_equal(r.result_forever_rc, 0);
    assert_int_equal(r.cancel_rc, WEFT_ESTATE);
    assert_int_equal(r.set_value_rc, WEFT_ESTATE);
    assert_int_equal(r.set_error_rc, WEFT_ESTATE);
    assert_int_equal(r.set_running_rc, WEFT_ESTATE);
    assert_int_equal(r.add_rc, 0);
    assert_true(r.inner_ran_during_add);
    assert_int_equal(r.inner_runs, 1);
    void *v = NULL;
    assert_int_equal(weft_future_result(f, 0, &v), 0);
    assert_ptr_equal(v, (void *)0x123); /* the outcome did not change */
    weft_future_release(f);

    /* cancelled */
    memset(&r, 0, sizeof(r));
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_add_done_callback(f, reentrant_cb, &r), 0);
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(r.outer_runs, 1);
    assert_int_equal(r.state, WEFT_CANCELLED);
    assert_int_equal(r.result_rc, WEFT_ECANCELED);
    assert_int_equal(r.cancel_rc, 0); /* idempotent, also from inside the callback */
    assert_int_equal(r.set_running_rc, WEFT_ECANCELED);
    assert_int_equal(r.set_value_rc, WEFT_ESTATE);
    assert_int_equal(r.inner_runs, 1);
    assert_true(r.inner_ran_during_add);
    weft_future_release(f);

    /* on a pool future, completed by a worker */
    weft_pool *p = make_pool(2);
    struct gate g;
    gate_init(&g, (void *)0x456);
    memset(&r, 0, sizeof(r));
    f = submit_gate(p, &g);
    assert_int_equal(weft_future_add_done_callback(f, reentrant_cb, &r), 0);
    latch_open(g.release);
    assert_int_equal(weft_pool_shutdown(p, true, false), 0);
    assert_int_equal(r.outer_runs, 1);
    assert_int_equal(r.state, WEFT_FINISHED);
    assert_ptr_equal(r.value, (void *)0x456);
    assert_int_equal(r.cancel_rc, WEFT_ESTATE);
    assert_int_equal(r.inner_runs, 1);
    weft_future_release(f);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

/* Registration concurrent with completion: every callback runs exactly once. */
#define RACE_CBS 4
struct cb_race {
    pthread_barrier_t start, end;
    weft_future *f;
    atomic_int hits[2][RACE_CBS];
    atomic_int bad; /* a callback saw a future that was not done, or the wrong value */
    int rounds;
};

struct cb_race_arg {
    struct cb_race *r;
    int id; /* 0, 1: adders; 2: completer */
};

struct race_cb_arg {
    struct cb_race *r;
    int adder, slot;
};

static void race_cb(weft_future *f, void *arg)
{
    struct race_cb_arg *a = arg;
    void *v = NULL;
    if (!weft_future_done(f) || weft_future_result(f, 0, &v) != 0 || v != (void *)0xfeed)
        atomic_fetch_add(&a->r->bad, 1);
    atomic_fetch_add(&a->r->hits[a->adder][a->slot], 1);
}

static void *cb_race_thread(void *arg)
{
    struct cb_race_arg *a = arg;
    struct cb_race *r = a->r;
    struct race_cb_arg cargs[RACE_CBS];
    for (int i = 0; i < r->rounds; i++) {
        pthread_barrier_wait(&r->start);
        if (a->id == 2) {
            for (volatile int k = 0; k < (i % 31) * 16; k++) {
            }
            if (weft_future_set_value(r->f, (void *)0xfeed) != 0)
                atomic_fetch_add(&r->bad, 1);
        } else {
            for (int s = 0; s < RACE_CBS; s++) {
                cargs[s] = (struct race_cb_arg){r, a->id, s};
                if (weft_future_add_done_callback(r->f, race_cb, &cargs[s]) != 0)
                    atomic_fetch_add(&r->bad, 1);
            }
        }
        /* cargs must outlive the callbacks: every one has run by the time add returned
         * (done) or set_value returned (pending), so the end barrier covers both. */
        pthread_barrier_wait(&r->end);
        pthread_barrier_wait(&r->end);
    }
    return NULL;
}

static void future_callbacks_added_concurrently_with_completion_run_exactly_once(void **state)
{
    (void)state;
    struct cb_race r;
    r.rounds = SCALED(5000);
    atomic_init(&r.bad, 0);
    pthread_barrier_init(&r.start, NULL, 4);
    pthread_barrier_init(&r.end, NULL, 4);
    pthread_t t[3];
    struct cb_race_arg a[3];
    for (int i = 0; i < 3; i++) {
        a[i] = (struct cb_race_arg){&r, i};
        assert_int_equal(pthread_create(&t[i], NULL, cb_race_thread, &a[i]), 0);
    }
    for (int round = 0; round < r.rounds; round++) {
        for (int x = 0; x < 2; x++)
            for (int s = 0; s < RACE_CBS; s++)
                atomic_store(&r.hits[x][s], 0);
        assert_int_equal(weft_future_create(&r.f), 0);
        pthread_barrier_wait(&r.start);
        pthread_barrier_wait(&r.end);
        for (int x = 0; x < 2; x++)
            for (int s = 0; s < RACE_CBS; s++)
                assert_int_equal(atomic_load(&r.hits[x][s]), 1);
        assert_int_equal(atomic_load(&r.bad), 0);
        weft_future_release(r.f);
        pthread_barrier_wait(&r.end);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&r.start);
    pthread_barrier_destroy(&r.end);
}

static void future_callbacks_on_racing_pool_tasks_run_exactly_once(void **state)
{
    (void)state;
    const int n = SCALED(20000);
    weft_pool *p = make_pool(2);
    atomic_int *hits = calloc((size_t)n * 2, sizeof(*hits));
    weft_future **fs = calloc((size_t)n, sizeof(*fs));
    assert_non_null(hits);
    assert_non_null(fs);
    for (int i = 0; i < n; i++) {
        assert_int_equal(weft_submit(p, ident_task, NULL, &fs[i]), 0);
        assert_int_equal(weft_future_add_done_callback(fs[i], cnt_cb, &hits[2 * i]), 0);
        assert_int_equal(weft_future_add_done_callback(fs[i], cnt_cb, &hits[2 * i + 1]), 0);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
    for (int i = 0; i < 2 * n; i++)
        assert_int_equal(atomic_load(&hits[i]), 1);
    for (int i = 0; i < n; i++)
        weft_future_release(fs[i]);
    free(hits);
    free(fs);
}

/* A common pattern: hand the caller's reference to the callback, which releases it (fire
 * and forget). The callback gets f borrowed for the duration of the call; once it has run,
 * weft must not touch f from the registering thread either, since that reference was the
 * caller's last. Registered right after submit, so completion races with registration. */
struct owned_cb {
    atomic_int runs;
    atomic_int bad;
};

static void release_owned_cb(weft_future *f, void *arg)
{
    struct owned_cb *o = arg;
    if (!weft_future_done(f))
        atomic_fetch_add(&o->bad, 1);
    atomic_fetch_add(&o->runs, 1);
    weft_future_release(f); /* the caller's reference, handed over at registration */
}

static void future_callback_may_release_the_callers_last_reference(void **state)
{
    (void)state;
    /* Not scaled down under the sanitizers: they are what detects the bug here. */
    const int n = 100000;
    weft_pool *p = make_pool(2);
    struct owned_cb o;
    atomic_init(&o.runs, 0);
    atomic_init(&o.bad, 0);
    for (int i = 0; i < n; i++) {
        weft_future *f = NULL;
        assert_int_equal(weft_submit(p, ident_task, NULL, &f), 0);
        assert_int_equal(weft_future_add_done_callback(f, release_owned_cb, &o), 0);
        /* f is not ours any more: not touched after this point */
    }
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&o.runs), n);
    assert_int_equal(atomic_load(&o.bad), 0);
}

/* ---------------------------------------------------------------------------------------
 * Waiting with timeouts
 * ------------------------------------------------------------------------------------- */
static void future_result_times_out_on_pending_and_running(void **state)
{
    (void)state;
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    void *v = (void *)0x1;
    assert_int_equal(weft_future_result(f, 0, &v), WEFT_ETIMEDOUT);
    assert_int_equal(weft_future_result(f, 1 * MS, &v), WEFT_ETIMEDOUT);
    assert_int_equal(weft_future_result(f, 1, NULL), WEFT_ETIMEDOUT);
    assert_int_equal(weft_future_state(f), WEFT_PENDING); /* unchanged */
    assert_int_equal(weft_future_set_running(f), 0);
    assert_int_equal(weft_future_result(f, 0, &v), WEFT_ETIMEDOUT);
    assert_int_equal(weft_future_result(f, 1 * MS, &v), WEFT_ETIMEDOUT);
    assert_int_equal(weft_future_result(f, 2 * MS, NULL), WEFT_ETIMEDOUT);
    assert_int_equal(weft_future_state(f), WEFT_RUNNING);
    /* A timed-out wait does not spoil a later one. */
    assert_int_equal(weft_future_set_value(f, (void *)0x3), 0);
    assert_int_equal(weft_future_result(f, 1 * MS, &v), 0);
    assert_ptr_equal(v, (void *)0x3);
    weft_future_release(f);
}

static void future_result_times_out_on_queued_and_running_pool_tasks(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, (void *)0x8);
    weft_future *running = submit_gate(p, &g);
    weft_future *queued = NULL;
    assert_int_equal(weft_submit(p, ident_task, (void *)0x9, &queued), 0);
    assert_int_equal(weft_future_result(running, 0, NULL), WEFT_ETIMEDOUT);
    assert_int_equal(weft_future_result(running, 1 * MS, NULL), WEFT_ETIMEDOUT);
    assert_int_equal(weft_future_result(queued, 0, NULL), WEFT_ETIMEDOUT);
    assert_int_equal(weft_future_result(queued, 1 * MS, NULL), WEFT_ETIMEDOUT);
    assert_int_equal(weft_future_state(running), WEFT_RUNNING);
    assert_int_equal(weft_future_state(queued), WEFT_PENDING);
    latch_open(g.release);
    void *v = NULL;
    assert_int_equal(weft_future_result(queued, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)0x9);
    assert_int_equal(weft_future_result(running, 0, &v), 0);
    assert_ptr_equal(v, (void *)0x8);
    weft_future_release(running);
    weft_future_release(queued);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

static void future_result_with_zero_or_small_timeout_on_done_futures(void **state)
{
    (void)state;
    const int64_t timeouts[] = {0, 1, 1 * MS, WEFT_FOREVER};
    weft_future *fin = NULL, *fail = NULL, *canc = NULL;
    assert_int_equal(weft_future_create(&fin), 0);
    assert_int_equal(weft_future_create(&fail), 0);
    assert_int_equal(weft_future_create(&canc), 0);
    assert_int_equal(weft_future_set_value(fin, (void *)0x44), 0);
    assert_int_equal(weft_future_set_error(fail, ETIME, "late"), 0);
    assert_int_equal(weft_future_cancel(canc), 0);
    for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
        void *v = NULL;
        assert_int_equal(weft_future_result(fin, timeouts[i], &v), 0);
        assert_ptr_equal(v, (void *)0x44);
        assert_int_equal(weft_future_result(fin, timeouts[i], NULL), 0);
        assert_int_equal(weft_future_result(fail, timeouts[i], &v), -ETIME);
        assert_int_equal(weft_future_result(canc, timeouts[i], &v), WEFT_ECANCELED);
    }
    weft_future_release(fin);
    weft_future_release(fail);
    weft_future_release(canc);
}

/* Waiting inside a worker (the helping path) honours the timeout too. */
static void *wait_promise_with_timeout_task(void *arg)
{
    weft_future *promise = arg;
    int a = weft_future_result(promise, 0, NULL);
    int b = weft_future_result(promise, 1 * MS, NULL);
    return (void *)(intptr_t)(a == WEFT_ETIMEDOUT && b == WEFT_ETIMEDOUT ? 1 : -1);
}

static void future_result_inside_worker_times_out(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    weft_future *promise = NULL;
    assert_int_equal(weft_future_create(&promise), 0);
    void *v = NULL;
    assert_int_equal(weft_run(p, wait_promise_with_timeout_task, promise, &v), 0);
    assert_ptr_equal(v, (void *)(intptr_t)1);
    assert_int_equal(weft_future_state(promise), WEFT_PENDING);
    weft_future_release(promise);
    assert_int_equal(weft_pool_destroy(p), 0);
}

struct delayed_set {
    weft_future *f;
    void *value;
};

static void *delayed_set_thread(void *arg)
{
    struct delayed_set *d = arg;
    sleep_ms(10);
    weft_future_set_value(d->f, d->value);
    return NULL;
}

/* A timeout too large to add to the clock still means "wait until done". */
static void future_result_with_huge_timeout_waits_for_completion(void **state)
{
    (void)state;
    const int64_t timeouts[] = {INT64_MAX, INT64_MAX - 1, (int64_t)1 << 62};
    for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
        struct delayed_set d = {NULL, (void *)(uintptr_t)(0x700 + i)};
        assert_int_equal(weft_future_create(&d.f), 0);
        weft_future_retain(d.f); /* the setter's reference */
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, delayed_set_thread, &d), 0);
        void *v = NULL;
        assert_int_equal(weft_future_result(d.f, timeouts[i], &v), 0);
        assert_ptr_equal(v, d.value);
        pthread_join(t, NULL);
        weft_future_release(d.f);
        weft_future_release(d.f);
    }
}

/* ---------------------------------------------------------------------------------------
 * Task failure: weft_fail codes and messages
 * ------------------------------------------------------------------------------------- */
struct fail_spec {
    int code;
    const char *msg; /* NULL: fmt NULL */
};

static void *fail_task(void *arg)
{
    struct fail_spec *s = arg;
    if (s->msg == NULL)
        return weft_fail(s->code, NULL);
    weft_fail(s->code, "%s #%d", s->msg, 42);
    return (void *)0x1; /* discarded: the task failed */
}

static void *fail_twice_task(void *arg)
{
    (void)arg;
    weft_fail(EINVAL, "first");
    weft_fail(ERANGE, "second %s", "call");
    return (void *)0x2;
}

static void future_weft_fail_codes_and_messages(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct {
        struct fail_spec spec;
        int expect;
        const char *expect_msg;
    } cases[] = {
        {{EIO, "io"}, -EIO, "io #42"},
        {{-EIO, "neg"}, -EIO, "neg #42"},
        {{0, "zero"}, WEFT_EFAILED, "zero #42"},
        {{0, NULL}, WEFT_EFAILED, NULL},
        {{1234, NULL}, -1234, NULL},
        {{-55555, "custom"}, -55555, "custom #42"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        weft_future *f = NULL;
        assert_int_equal(weft_submit(p, fail_task, &cases[i].spec, &f), 0);
        void *v = (void *)0x77;
        assert_int_equal(weft_future_result(f, WEFT_FOREVER, &v), cases[i].expect);
        assert_int_equal(weft_future_state(f), WEFT_FAILED);
        assert_int_equal(weft_future_error(f), cases[i].expect);
        if (cases[i].expect_msg == NULL)
            assert_null(weft_future_message(f));
        else
            assert_string_equal(weft_future_message(f), cases[i].expect_msg);
        weft_future_release(f);
    }
    /* The last call wins. */
    weft_future *f = NULL;
    assert_int_equal(weft_submit(p, fail_twice_task, NULL, &f), 0);
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), -ERANGE);
    assert_string_equal(weft_future_message(f), "second call");
    weft_future_release(f);
    /* A failure does not leak into the next task run by the same worker. */
    assert_int_equal(weft_submit(p, ident_task, (void *)0x3, &f), 0);
    void *v = NULL;
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)0x3);
    assert_null(weft_future_message(f));
    weft_future_release(f);
    /* weft_run reports the code as well. */
    struct fail_spec s = {ENOSPC, "full"};
    assert_int_equal(weft_run(p, fail_task, &s, NULL), -ENOSPC);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void future_weft_fail_outside_task_does_nothing(void **state)
{
    (void)state;
    assert_null(weft_fail(EIO, "outside %d", 1));
    assert_null(weft_fail(0, NULL));
    assert_null(weft_current_future());
    /* ... and it does not stick to this thread: a promise completed here is unaffected. */
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_set_value(f, (void *)0x5), 0);
    assert_int_equal(weft_future_result(f, 0, NULL), 0);
    weft_future_release(f);
}

/* ---------------------------------------------------------------------------------------
 * Lifetime
 * ------------------------------------------------------------------------------------- */
static void future_release_before_task_runs_is_safe(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, NULL);
    weft_future *running = submit_gate(p, &g);
    atomic_int ran = 0;
    for (int i = 0; i < 16; i++) {
        weft_future *f = NULL;
        assert_int_equal(weft_submit(p, count_task, &ran, &f), 0);
        weft_future_release(f); /* the pool's own reference keeps it alive */
    }
    weft_future_release(running); /* even the running one */
    latch_open(g.release);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&ran), 16); /* released early, still run */
    assert_int_equal(atomic_load(&g.runs), 1);
    gate_destroy(&g);
}

static void future_release_many_unwaited_pool_futures_is_safe(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    atomic_int ran = 0;
    const int n = SCALED(50000);
    for (int i = 0; i < n; i++) {
        weft_future *f = NULL;
        assert_int_equal(weft_submit(p, count_task, &ran, &f), 0);
        weft_future_release(f);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&ran), n);
}

static void future_retain_keeps_future_alive(void **state)
{
    (void)state;
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    weft_future_retain(f);
    weft_future_retain(f);
    weft_future_release(f);
    weft_future_release(f);
    /* one reference left: still usable */
    assert_int_equal(weft_future_set_error(f, 3, "still here"), 0);
    assert_string_equal(weft_future_message(f), "still here");
    weft_future_release(f);
    weft_future_release(NULL); /* ignored */
}

static void future_released_pending_promise_drops_callbacks(void **state)
{
    (void)state;
    struct cb_log log;
    cb_log_init(&log);
    struct cb_arg a = {&log, 0};
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_add_done_callback(f, log_cb, &a), 0);
    assert_int_equal(weft_future_add_done_callback(f, log_cb, &a), 0);
    weft_future_release(f); /* never completed: freed with its callbacks (ASan: no leak) */
    assert_int_equal(log.n, 0);
}

/* weft_current_future: the task's own future inside it, NULL outside. */
struct self_check {
    latch go;
    weft_future *f;
    atomic_int same;
};

static void *self_task(void *arg)
{
    struct self_check *c = arg;
    latch_wait(&c->go);
    atomic_store(&c->same, weft_current_future() == c->f ? 1 : -1);
    return NULL;
}

static void future_current_future_is_the_running_task(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct self_check c;
    latch_init(&c.go);
    atomic_init(&c.same, 0);
    assert_int_equal(weft_submit(p, self_task, &c, &c.f), 0);
    latch_open(&c.go);
    assert_int_equal(weft_future_result(c.f, WEFT_FOREVER, NULL), 0);
    assert_int_equal(atomic_load(&c.same), 1);
    assert_null(weft_current_future());
    weft_future_release(c.f);
    assert_int_equal(weft_pool_destroy(p), 0);
    latch_destroy(&c.go);
}

/* ---------------------------------------------------------------------------------------
 * Error names and NULL arguments
 * ------------------------------------------------------------------------------------- */
static void future_strerror_names_every_code(void **state)
{
    (void)state;
    const int codes[] = {WEFT_ETIMEDOUT, WEFT_ECANCELED, WEFT_ESTATE,    WEFT_ESHUTDOWN,
                         WEFT_EBROKEN,   WEFT_EFAILED,   WEFT_ENOTWORKER};
    const size_t n = sizeof(codes) / sizeof(codes[0]);
    const char *names[sizeof(codes) / sizeof(codes[0])];
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] <= -7000 && codes[i] >= -7099); /* the reserved block */
        names[i] = weft_strerror(codes[i]);
        assert_non_null(names[i]);
        assert_true(strlen(names[i]) > 0);
        assert_string_not_equal(names[i], "unknown error");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(names[i], names[j]); /* each its own description */
    }
    /* negated errno values, the library's and a task's */
    assert_string_equal(weft_strerror(WEFT_EINVAL), strerror(EINVAL));
    assert_string_equal(weft_strerror(WEFT_ENOMEM), strerror(ENOMEM));
    assert_string_equal(weft_strerror(-EIO), strerror(EIO));
    assert_string_equal(weft_strerror(-ECONNRESET), strerror(ECONNRESET));
    /* success, and anything else: a string, never NULL */
    const int others[] = {0, 1, -7099, -7000, -4096, -99999, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        assert_non_null(weft_strerror(others[i]));
        assert_true(strlen(weft_strerror(others[i])) > 0);
    }
}

static void future_null_arguments_rejected(void **state)
{
    (void)state;
    assert_int_equal(weft_future_create(NULL), WEFT_EINVAL);
    assert_int_equal(weft_future_result(NULL, 0, NULL), WEFT_EINVAL);
    assert_int_equal(weft_future_result(NULL, WEFT_FOREVER, NULL), WEFT_EINVAL);
    assert_int_equal(weft_future_cancel(NULL), WEFT_EINVAL);
    assert_int_equal(weft_future_set_running(NULL), WEFT_EINVAL);
    assert_int_equal(weft_future_set_value(NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_future_set_error(NULL, 1, "x"), WEFT_EINVAL);
    assert_int_equal(weft_future_add_done_callback(NULL, cnt_cb, NULL), WEFT_EINVAL);
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    assert_int_equal(weft_future_add_done_callback(f, NULL, NULL), WEFT_EINVAL);
    weft_future_release(f);
    weft_future_release(NULL);

    weft_pool *p = make_pool(1);
    weft_future *out = (weft_future *)0x1;
    assert_int_equal(weft_submit(NULL, ident_task, NULL, &out), WEFT_EINVAL);
    assert_null(out);
    out = (weft_future *)0x1;
    assert_int_equal(weft_submit(p, NULL, NULL, &out), WEFT_EINVAL);
    assert_null(out);
    assert_int_equal(weft_submit(p, ident_task, NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_run(NULL, ident_task, NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_run(p, NULL, NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_pool_destroy(p), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(future_pending_reports_pending),
        cmocka_unit_test(future_cancel_pending_succeeds),
        cmocka_unit_test(future_cancel_cancelled_is_idempotent),
        cmocka_unit_test(future_cancel_running_fails),
        cmocka_unit_test(future_cancel_finished_fails),
        cmocka_unit_test(future_cancel_failed_fails),
        cmocka_unit_test(future_completion_after_done_keeps_first_outcome),
        cmocka_unit_test(future_set_error_copies_and_normalises),
        cmocka_unit_test(future_pool_task_goes_pending_running_finished),
        cmocka_unit_test(future_pool_cancel_queued_task_never_runs),
        cmocka_unit_test(future_promise_calls_on_pool_future_rejected),
        cmocka_unit_test(future_pool_failed_task_refuses_cancel),
        cmocka_unit_test(future_cancel_vs_start_race_exactly_one_wins),
        cmocka_unit_test(future_cancel_vs_set_running_race_exactly_one_wins),
        cmocka_unit_test(future_concurrent_completers_exactly_one_wins),
        cmocka_unit_test(future_concurrent_completers_of_running_promise_exactly_one_wins),
        cmocka_unit_test(future_many_waiters_all_woken_with_value),
        cmocka_unit_test(future_many_waiters_all_woken_with_error),
        cmocka_unit_test(future_many_waiters_on_pool_task_all_woken),
        cmocka_unit_test(future_waiters_woken_by_cancel_from_another_thread),
        cmocka_unit_test(future_waiters_on_queued_pool_task_woken_by_cancel),
        cmocka_unit_test(future_callbacks_run_once_in_registration_order_on_value),
        cmocka_unit_test(future_callbacks_run_once_in_registration_order_on_error),
        cmocka_unit_test(future_callbacks_run_once_in_registration_order_on_cancel),
        cmocka_unit_test(future_callback_added_after_completion_runs_at_once_in_caller),
        cmocka_unit_test(future_callbacks_on_pool_task_run_in_completing_worker),
        cmocka_unit_test(future_callback_may_call_weft_on_same_future),
        cmocka_unit_test(future_callbacks_added_concurrently_with_completion_run_exactly_once),
        cmocka_unit_test(future_callbacks_on_racing_pool_tasks_run_exactly_once),
        cmocka_unit_test(future_callback_may_release_the_callers_last_reference),
        cmocka_unit_test(future_result_times_out_on_pending_and_running),
        cmocka_unit_test(future_result_times_out_on_queued_and_running_pool_tasks),
        cmocka_unit_test(future_result_with_zero_or_small_timeout_on_done_futures),
        cmocka_unit_test(future_result_inside_worker_times_out),
        cmocka_unit_test(future_result_with_huge_timeout_waits_for_completion),
        cmocka_unit_test(future_weft_fail_codes_and_messages),
        cmocka_unit_test(future_weft_fail_outside_task_does_nothing),
        cmocka_unit_test(future_release_before_task_runs_is_safe),
        cmocka_unit_test(future_release_many_unwaited_pool_futures_is_safe),
        cmocka_unit_test(future_retain_keeps_future_alive),
        cmocka_unit_test(future_released_pending_promise_drops_callbacks),
        cmocka_unit_test(future_current_future_is_the_running_task),
        cmocka_unit_test(future_strerror_names_every_code),
        cmocka_unit_test(future_null_arguments_rejected),
    };
    /* CMOCKA_TEST_FILTER / CMOCKA_SKIP_FILTER: run a subset (wildcards * and ?). */
    if (getenv("CMOCKA_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("CMOCKA_TEST_FILTER"));
    if (getenv("CMOCKA_SKIP_FILTER") != NULL)
        cmocka_set_skip_filter(getenv("CMOCKA_SKIP_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
