/*
 * Composition: weft_then (inline and on a pool), weft_all, weft_any, weft_future_set_timeout
 * and weft_submit_before.
 *
 * Sources are promises completed by the test (their callbacks, so inline continuations and
 * the combinators' bookkeeping, run in the completing thread before set_value returns) or
 * pool tasks held on latches. Workers are filled with latched tasks to keep a task from
 * starting. Nothing asserts on durations: where a deadline must pass, the test waits for its
 * effect (a cancellation, a failure), never for a time. Assertions are made on the main
 * thread only; continuations and callbacks record what they saw.
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

/* ---------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------- */

static weft_pool *make_pool(unsigned n)
{
    return make_pool_named(n, "tcomp");
}

/* What a continuation saw. */
struct rec {
    atomic_int runs;
    int src_code;
    void *src_value;
    char src_msg[64];
    pthread_t thread;
    weft_pool *pool;
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    atomic_init(&r->runs, 0);
}

/* Records the source's outcome; returns its value + 1 (or 0x99 if it did not finish). */
static void *cont_record(weft_future *src, void *arg)
{
    struct rec *r = arg;
    void *v = NULL;
    r->src_code = weft_future_result(src, 0, &v);
    r->src_value = v;
    const char *m = weft_future_message(src);
    snprintf(r->src_msg, sizeof(r->src_msg), "%s", m != NULL ? m : "");
    r->thread = pthread_self();
    r->pool = weft_current_pool();
    atomic_fetch_add(&r->runs, 1);
    return r->src_code == 0 ? (void *)((intptr_t)v + 1) : (void *)0x99;
}

/* A promise source with cont_record attached (run inline when p is NULL, else on p): resets
 * r, stores the new future in *out and returns the source, still PENDING. */
static weft_future *then_record(weft_pool *p, struct rec *r, weft_future **out)
{
    rec_init(r);
    weft_future *src = promise();
    assert_int_equal(weft_then(src, p, cont_record, r, out), 0);
    return src;
}

static void *cont_fail(weft_future *src, void *arg)
{
    (void)src;
    atomic_fetch_add(&((struct rec *)arg)->runs, 1);
    return weft_fail(EPERM, "nope %d", 7);
}

static void *cont_add_one(weft_future *src, void *arg)
{
    (void)arg;
    void *v = NULL;
    if (weft_future_result(src, 0, &v) != 0)
        return weft_fail(EINVAL, "source failed");
    return (void *)((intptr_t)v + 1);
}

/* A helper thread that completes a promise, to make an inline continuation run there. */
struct completer {
    weft_future *f;
    void *value;
    int rc;
};

static void *completer_main(void *arg)
{
    struct completer *c = arg;
    c->rc = weft_future_set_value(c->f, c->value);
    return NULL;
}

/* A done-callback that snapshots whether each of a set of futures was done when it ran. */
struct snapshot {
    weft_future **fs;
    size_t n;
    atomic_int ran;
    atomic_int all_done;
    latch ran_latch; /* callbacks run after waiters are released: wait for this one */
};

static void snapshot_init(struct snapshot *s, weft_future **fs, size_t n)
{
    s->fs = fs;
    s->n = n;
    atomic_init(&s->ran, 0);
    atomic_init(&s->all_done, 0);
    latch_init(&s->ran_latch);
}

static void snapshot_cb(weft_future *f, void *arg)
{
    (void)f;
    struct snapshot *s = arg;
    int all = 1;
    for (size_t i = 0; i < s->n; i++)
        all &= weft_future_done(s->fs[i]);
    atomic_store(&s->all_done, all);
    atomic_fetch_add(&s->ran, 1);
    latch_open(&s->ran_latch);
}

/* ---------------------------------------------------------------------------------------
 * then
 * ------------------------------------------------------------------------------------- */
static void then_inline_runs_in_the_completing_thread_with_the_source_value(void **state)
{
    (void)state;
    struct rec r;
    weft_future *out = NULL;
    weft_future *src = then_record(NULL, &r, &out);
    assert_non_null(out);
    assert_int_equal(atomic_load(&r.runs), 0);
    assert_int_equal(weft_future_state(out), WEFT_PENDING);

    struct completer c = {src, (void *)41, -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, completer_main, &c), 0);
    pthread_join(th, NULL);
    assert_int_equal(c.rc, 0);
    /* The continuation ran inline in the completing thread, before set_value returned. */
    assert_int_equal(atomic_load(&r.runs), 1);
    assert_true(pthread_equal(r.thread, th));
    assert_null(r.pool);
    assert_int_equal(r.src_code, 0);
    assert_ptr_equal(r.src_value, (void *)41);
    void *v = NULL;
    assert_int_equal(weft_future_result(out, 0, &v), 0);
    assert_ptr_equal(v, (void *)42);
    weft_future_release(out);
    weft_future_release(src);
}

static void then_inline_receives_the_error_of_the_source(void **state)
{
    (void)state;
    struct rec r;
    weft_future *out = NULL;
    weft_future *src = then_record(NULL, &r, &out);
    assert_int_equal(weft_future_set_error(src, EIO, "disk"), 0);
    assert_int_equal(atomic_load(&r.runs), 1);
    assert_true(pthread_equal(r.thread, pthread_self()));
    assert_int_equal(r.src_code, -EIO);
    assert_string_equal(r.src_msg, "disk");
    void *v = NULL;
    assert_int_equal(weft_future_result(out, 0, &v), 0); /* the continuation decides */
    assert_ptr_equal(v, (void *)0x99);
    weft_future_release(out);
    weft_future_release(src);
}

static void then_on_a_pool_runs_the_continuation_on_a_worker(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    /* Value of a promise source. */
    struct rec r;
    weft_future *out = NULL;
    weft_future *src = then_record(p, &r, &out);
    assert_int_equal(weft_future_set_value(src, (void *)9), 0);
    void *v = NULL;
    assert_int_equal(weft_future_result(out, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)10);
    assert_int_equal(atomic_load(&r.runs), 1);
    assert_ptr_equal(r.pool, p);
    assert_false(pthread_equal(r.thread, pthread_self()));
    weft_future_release(out);
    weft_future_release(src);

    /* Error of a pool-task source. */
    rec_init(&r);
    struct gate g;
    gate_init(&g, NULL);
    g.fail_code = ENOENT;
    weft_future *task = submit_gate(p, &g);
    assert_int_equal(weft_then(task, p, cont_record, &r, &out), 0);
    latch_open(g.release);
    assert_int_equal(weft_future_result(out, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)0x99);
    assert_int_equal(r.src_code, -ENOENT);
    assert_string_equal(r.src_msg, "gate failed late");
    assert_ptr_equal(r.pool, p);
    weft_future_release(out);
    weft_future_release(task);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

static void then_on_an_already_done_source_runs_at_once(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r);
    weft_future *src = promise();
    assert_int_equal(weft_future_set_value(src, (void *)1), 0);
    weft_future *out = NULL;
    assert_int_equal(weft_then(src, NULL, cont_record, &r, &out), 0);
    /* Inline: in this thread, before weft_then returned. */
    assert_int_equal(atomic_load(&r.runs), 1);
    assert_true(pthread_equal(r.thread, pthread_self()));
    assert_true(weft_future_done(out));
    void *v = NULL;
    assert_int_equal(weft_future_result(out, 0, &v), 0);
    assert_ptr_equal(v, (void *)2);
    weft_future_release(out);

    /* On a pool: submitted at once. */
    weft_pool *p = make_pool(1);
    rec_init(&r);
    assert_int_equal(weft_then(src, p, cont_record, &r, &out), 0);
    assert_int_equal(weft_future_result(out, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)2);
    assert_ptr_equal(r.pool, p);
    weft_future_release(out);
    weft_future_release(src);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void then_cancelled_before_it_runs_never_runs_the_continuation(void **state)
{
    (void)state;
    /* Inline, cancelled before the source completes. */
    struct rec r;
    weft_future *out = NULL;
    weft_future *src = then_record(NULL, &r, &out);
    assert_int_equal(weft_future_cancel(out), 0);
    assert_int_equal(weft_future_set_value(src, (void *)5), 0); /* callbacks ran here */
    assert_int_equal(atomic_load(&r.runs), 0);
    assert_int_equal(weft_future_state(src), WEFT_FINISHED); /* cancels cont, not src */
    assert_int_equal(weft_future_result(out, 0, NULL), WEFT_ECANCELED);
    weft_future_release(out);
    weft_future_release(src);

    /* On a pool, cancelled after the source completed but before the continuation started
     * (the only worker is held, so the continuation's task is queued). */
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, NULL);
    weft_future *held = submit_gate(p, &g);
    rec_init(&r);
    src = promise();
    assert_int_equal(weft_then(src, p, cont_record, &r, &out), 0);
    assert_int_equal(weft_future_set_value(src, (void *)5), 0); /* continuation queued */
    assert_int_equal(weft_future_state(out), WEFT_PENDING);
    assert_int_equal(weft_future_cancel(out), 0);
    assert_int_equal(weft_future_result(out, WEFT_FOREVER, NULL), WEFT_ECANCELED);

    /* On a pool, cancelled before the source completes. */
    struct rec r2;
    weft_future *out2 = NULL;
    weft_future *src2 = then_record(p, &r2, &out2);
    assert_int_equal(weft_future_cancel(out2), 0);
    assert_int_equal(weft_future_set_value(src2, NULL), 0);

    latch_open(g.release);
    assert_int_equal(weft_pool_destroy(p), 0); /* drains: the continuation tasks ran */
    assert_int_equal(atomic_load(&r.runs), 0);
    assert_int_equal(atomic_load(&r2.runs), 0);
    assert_int_equal(weft_future_state(out), WEFT_CANCELLED);
    assert_int_equal(weft_future_state(out2), WEFT_CANCELLED);
    assert_int_equal(weft_future_state(src), WEFT_FINISHED);
    weft_future_release(held);
    weft_future_release(out);
    weft_future_release(src);
    weft_future_release(out2);
    weft_future_release(src2);
    gate_destroy(&g);
}

static void then_fail_inside_a_continuation_fails_the_new_future(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    weft_pool *pools[] = {NULL, p};
    for (int k = 0; k < 2; k++) {
        struct rec r;
        rec_init(&r);
        weft_future *src = promise();
        weft_future *out = NULL;
        assert_int_equal(weft_then(src, pools[k], cont_fail, &r, &out), 0);
        assert_int_equal(weft_future_set_value(src, (void *)1), 0);
        assert_int_equal(weft_future_result(out, WEFT_FOREVER, NULL), -EPERM);
        assert_int_equal(weft_future_state(out), WEFT_FAILED);
        assert_int_equal(weft_future_error(out), -EPERM);
        assert_string_equal(weft_future_message(out), "nope 7");
        assert_int_equal(atomic_load(&r.runs), 1);
        /* The source is untouched by its continuation's failure. */
        assert_int_equal(weft_future_state(src), WEFT_FINISHED);
        assert_null(weft_future_message(src));
        weft_future_release(out);
        weft_future_release(src);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void
then_fail_inside_an_inline_continuation_run_by_a_task_leaves_the_task_alone(void **state)
{
    (void)state;
    /* The source is a pool task; the inline continuation runs in the worker as the task
     * completes. Its weft_fail must fail the continuation's future only. */
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, (void *)0x11);
    weft_future *task = submit_gate(p, &g);
    struct rec r;
    rec_init(&r);
    weft_future *out = NULL;
    assert_int_equal(weft_then(task, NULL, cont_fail, &r, &out), 0);
    latch_open(g.release);
    assert_int_equal(weft_future_result(out, WEFT_FOREVER, NULL), -EPERM);
    void *v = NULL;
    assert_int_equal(weft_future_result(task, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)0x11);
    /* A later task on the same worker is not failed by a stale code either. */
    weft_future *next = NULL;
    assert_int_equal(weft_submit(p, ident_task, (void *)0x22, &next), 0);
    assert_int_equal(weft_future_result(next, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)0x22);
    weft_future_release(next);
    weft_future_release(out);
    weft_future_release(task);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

static void then_on_a_cancelled_source_runs_and_sees_ecanceled(void **state)
{
    (void)state;
    struct rec r;
    weft_future *out = NULL;
    weft_future *src = then_record(NULL, &r, &out);
    assert_int_equal(weft_future_cancel(src), 0);
    assert_int_equal(atomic_load(&r.runs), 1);
    assert_int_equal(r.src_code, WEFT_ECANCELED);
    void *v = NULL;
    assert_int_equal(weft_future_result(out, 0, &v), 0);
    assert_ptr_equal(v, (void *)0x99);
    weft_future_release(out);
    weft_future_release(src);
}

static void then_on_a_shut_down_pool_fails_the_new_future_with_eshutdown(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct rec r;
    weft_future *out = NULL;
    weft_future *src = then_record(p, &r, &out);
    assert_int_equal(weft_pool_shutdown(p, true, false), 0);
    assert_int_equal(weft_future_set_value(src, NULL), 0);
    assert_int_equal(weft_future_result(out, WEFT_FOREVER, NULL), WEFT_ESHUTDOWN);
    assert_int_equal(weft_future_state(out), WEFT_FAILED);
    assert_int_equal(atomic_load(&r.runs), 0);
    weft_future_release(out);
    weft_future_release(src);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void
then_on_a_pool_that_cancels_the_queued_continuation_completes_the_new_future(void **state)
{
    (void)state;
    /* The pool accepts the continuation, then shutdown(cancel_futures) cancels it while it is
     * queued: the new future must not stay PENDING forever (its waiters would hang). */
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, NULL);
    weft_future *held = submit_gate(p, &g);
    struct rec r;
    weft_future *out = NULL;
    weft_future *src = then_record(p, &r, &out);
    assert_int_equal(weft_future_set_value(src, NULL), 0); /* continuation queued */
    assert_int_equal(weft_pool_shutdown(p, false, true), 0);
    /* Bounded, so that the bug fails the test instead of hanging it. */
    int rc = weft_future_result(out, 5000 * MS, NULL);
    latch_open(g.release); /* before asserting: a failure must not leave the worker held */
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_not_equal(rc, WEFT_ETIMEDOUT);
    assert_true(weft_future_done(out));
    assert_int_equal(rc, WEFT_ECANCELED);
    assert_int_equal(atomic_load(&r.runs), 0);
    weft_future_release(held);
    weft_future_release(out);
    weft_future_release(src);
    gate_destroy(&g);
}

static int failing_init_after_latch(void *arg, unsigned worker)
{
    (void)worker;
    latch_wait(arg);
    return -1;
}

static void then_on_a_pool_that_breaks_fails_the_new_future_with_ebroken(void **state)
{
    (void)state;
    /* The continuation is submitted (accepted) before the pool breaks; the broken pool fails
     * the continuation's task, and the new future must fail with WEFT_EBROKEN. */
    latch init_go;
    latch_init(&init_go);
    weft_pool_options o;
    weft_pool_options_init(&o);
    o.num_threads = 1;
    o.name = "tcompbrk";
    o.initializer = failing_init_after_latch;
    o.init_arg = &init_go;
    weft_pool *p = NULL;
    assert_int_equal(weft_pool_create(&o, &p), 0);
    struct rec r;
    rec_init(&r);
    weft_future *src = promise();
    assert_int_equal(weft_future_set_value(src, NULL), 0);
    weft_future *out = NULL;
    assert_int_equal(weft_then(src, p, cont_record, &r, &out), 0); /* submitted at once */
    latch_open(&init_go);
    int rc = weft_future_result(out, 5000 * MS, NULL);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_not_equal(rc, WEFT_ETIMEDOUT);
    assert_int_equal(rc, WEFT_EBROKEN);
    assert_int_equal(atomic_load(&r.runs), 0);
    weft_future_release(out);
    weft_future_release(src);
    latch_destroy(&init_go);
}

static void then_releasing_the_new_future_early_still_runs_the_continuation(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct rec r;
    weft_future *out = NULL;
    weft_future *src = then_record(p, &r, &out);
    weft_future_release(out);
    weft_future *out2 = NULL;
    struct rec r2;
    rec_init(&r2);
    assert_int_equal(weft_then(src, NULL, cont_record, &r2, &out2), 0);
    weft_future_release(out2);
    assert_int_equal(weft_future_set_value(src, NULL), 0);
    weft_future_release(src); /* then holds its own reference on the source */
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&r.runs), 1);
    assert_int_equal(atomic_load(&r2.runs), 1);
}

static void then_chains_many_continuations(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    int rounds = SCALED(50);
    for (int round = 0; round < rounds; round++) {
        weft_future *head = NULL;
        assert_int_equal(weft_submit(p, ident_task, (void *)0, &head), 0);
        weft_future *cur = head;
        weft_future_retain(cur);
        for (int i = 0; i < 100; i++) {
            weft_future *next = NULL;
            /* Alternate inline and pool continuations. */
            assert_int_equal(weft_then(cur, (i & 1) ? p : NULL, cont_add_one, NULL, &next), 0);
            weft_future_release(cur);
            cur = next;
        }
        void *v = NULL;
        assert_int_equal(weft_future_result(cur, WEFT_FOREVER, &v), 0);
        assert_ptr_equal(v, (void *)100);
        weft_future_release(cur);
        weft_future_release(head);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void then_rejects_bad_arguments(void **state)
{
    (void)state;
    weft_future *src = promise();
    weft_future *out = NULL;
    assert_int_equal(weft_then(NULL, NULL, cont_record, NULL, &out), WEFT_EINVAL);
    assert_int_equal(weft_then(src, NULL, NULL, NULL, &out), WEFT_EINVAL);
    assert_int_equal(weft_then(src, NULL, cont_record, NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_future_set_value(src, NULL), 0);
    weft_future_release(src);
}

/* ---------------------------------------------------------------------------------------
 * all
 * ------------------------------------------------------------------------------------- */
static void all_succeeds_when_all_succeed(void **state)
{
    (void)state;
    weft_pool *p = make_pool(3);
    struct gate g[3];
    weft_future *fs[3];
    for (int i = 0; i < 3; i++) {
        gate_init(&g[i], (void *)(intptr_t)(i + 1));
        fs[i] = submit_gate(p, &g[i]);
    }
    weft_future *all = NULL;
    assert_int_equal(weft_all(fs, 3, &all), 0);
    assert_non_null(all);
    assert_int_equal(weft_future_result(all, 0, NULL), WEFT_ETIMEDOUT);
    latch_open(g[1].release);
    latch_open(g[0].release);
    assert_int_equal(weft_future_result(fs[0], WEFT_FOREVER, NULL), 0);
    assert_int_equal(weft_future_result(fs[1], WEFT_FOREVER, NULL), 0);
    /* The third is still held: all cannot be done. */
    assert_int_equal(weft_future_result(all, 5 * MS, NULL), WEFT_ETIMEDOUT);
    latch_open(g[2].release);
    void *v = (void *)0x1;
    assert_int_equal(weft_future_result(all, WEFT_FOREVER, &v), 0);
    assert_null(v);
    assert_int_equal(weft_future_state(all), WEFT_FINISHED);
    for (int i = 0; i < 3; i++)
        assert_true(weft_future_done(fs[i]));
    weft_future_release(all);
    release_all(fs, 3);
    assert_int_equal(weft_pool_destroy(p), 0);
    for (int i = 0; i < 3; i++)
        gate_destroy(&g[i]);
}

static void all_fails_with_the_first_error_only_after_all_finished(void **state)
{
    (void)state;
    weft_future *fs[] = {promise(), promise(), promise()};
    weft_future *all = NULL;
    assert_int_equal(weft_all(fs, 3, &all), 0);
    struct snapshot snap;
    snapshot_init(&snap, fs, 3);
    assert_int_equal(weft_future_add_done_callback(all, snapshot_cb, &snap), 0);

    assert_int_equal(weft_future_set_error(fs[1], EIO, "first failure"), 0);
    assert_false(weft_future_done(all)); /* the others are not finished */
    assert_int_equal(weft_future_set_error(fs[0], EPERM, "second failure"), 0);
    assert_false(weft_future_done(all));
    assert_int_equal(weft_future_set_value(fs[2], NULL), 0);
    assert_true(weft_future_done(all));
    assert_int_equal(atomic_load(&snap.ran), 1); /* completed in this thread: ran here */
    assert_int_equal(atomic_load(&snap.all_done), 1);
    latch_destroy(&snap.ran_latch);
    assert_int_equal(weft_future_result(all, 0, NULL), -EIO);
    assert_int_equal(weft_future_state(all), WEFT_FAILED);
    assert_string_equal(weft_future_message(all), "first failure");
    weft_future_release(all);
    release_all(fs, 3);
}

static void all_on_pool_tasks_waits_for_the_running_ones_after_a_failure(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct gate g;
    gate_init(&g, NULL);
    weft_future *fs[2];
    fs[0] = submit_gate(p, &g);
    fs[1] = promise();
    weft_future *all = NULL;
    assert_int_equal(weft_all(fs, 2, &all), 0);
    struct snapshot snap;
    snapshot_init(&snap, fs, 2);
    assert_int_equal(weft_future_add_done_callback(all, snapshot_cb, &snap), 0);
    assert_int_equal(weft_future_set_error(fs[1], ENOMEM, NULL), 0);
    assert_int_equal(weft_future_result(all, 5 * MS, NULL), WEFT_ETIMEDOUT); /* fs[0] held */
    latch_open(g.release);
    assert_int_equal(weft_future_result(all, WEFT_FOREVER, NULL), -ENOMEM);
    assert_null(weft_future_message(all));
    latch_wait(&snap.ran_latch);
    latch_destroy(&snap.ran_latch);
    assert_int_equal(atomic_load(&snap.ran), 1);
    assert_int_equal(atomic_load(&snap.all_done), 1);
    assert_int_equal(atomic_load(&g.finished), 1);
    weft_future_release(all);
    release_all(fs, 2);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

static void all_with_a_cancelled_input_fails_with_ecanceled(void **state)
{
    (void)state;
    weft_future *fs[] = {promise(), promise()};
    weft_future *all = NULL;
    assert_int_equal(weft_all(fs, 2, &all), 0);
    assert_int_equal(weft_future_cancel(fs[0]), 0);
    assert_false(weft_future_done(all));
    assert_int_equal(weft_future_set_value(fs[1], NULL), 0);
    assert_int_equal(weft_future_result(all, 0, NULL), WEFT_ECANCELED);
    assert_int_equal(weft_future_state(all), WEFT_FAILED);
    weft_future_release(all);
    release_all(fs, 2);
}

static void all_of_already_done_inputs_completes_at_once(void **state)
{
    (void)state;
    weft_future *ok = promise();
    assert_int_equal(weft_future_set_value(ok, NULL), 0);
    weft_future *bad = promise();
    assert_int_equal(weft_future_set_error(bad, EBUSY, "busy"), 0);
    weft_future *fs1[] = {ok, ok, ok};
    weft_future *all = NULL;
    assert_int_equal(weft_all(fs1, 3, &all), 0);
    assert_true(weft_future_done(all));
    assert_int_equal(weft_future_result(all, 0, NULL), 0);
    weft_future_release(all);
    weft_future *fs2[] = {ok, bad};
    assert_int_equal(weft_all(fs2, 2, &all), 0);
    assert_int_equal(weft_future_result(all, 0, NULL), -EBUSY);
    assert_string_equal(weft_future_message(all), "busy");
    weft_future_release(all);
    weft_future_release(ok);
    weft_future_release(bad);
}

static void all_does_not_need_its_inputs_to_outlive_the_call(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    int rounds = SCALED(200);
    for (int r = 0; r < rounds; r++) {
        enum { N = 16 };
        weft_future **fs = malloc(N * sizeof(*fs));
        assert_non_null(fs);
        for (int i = 0; i < N; i++)
            assert_int_equal(weft_submit(p, ident_task, NULL, &fs[i]), 0);
        weft_future *all = NULL, *any = NULL;
        assert_int_equal(weft_all(fs, N, &all), 0);
        assert_int_equal(weft_any(fs, N, &any), 0);
        release_all(fs, N);
        free(fs);
        assert_int_equal(weft_future_result(all, WEFT_FOREVER, NULL), 0);
        void *v = NULL;
        assert_int_equal(weft_future_result(any, WEFT_FOREVER, &v), 0);
        assert_true((uintptr_t)v < N);
        weft_future_release(all);
        weft_future_release(any);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
}

/* ---------------------------------------------------------------------------------------
 * any
 * ------------------------------------------------------------------------------------- */
static void any_completes_with_the_index_of_the_first_to_complete(void **state)
{
    (void)state;
    weft_pool *p = make_pool(4);
    enum { N = 4 };
    struct gate g[N];
    weft_future *fs[N];
    for (int i = 0; i < N; i++) {
        gate_init(&g[i], NULL);
        fs[i] = submit_gate(p, &g[i]);
    }
    weft_future *any = NULL;
    assert_int_equal(weft_any(fs, N, &any), 0);
    assert_false(weft_future_done(any));
    g[2].fail_code = EIO; /* whatever its outcome */
    latch_open(g[2].release);
    void *v = NULL;
    assert_int_equal(weft_future_result(any, WEFT_FOREVER, &v), 0);
    assert_int_equal((uintptr_t)v, 2);
    for (int i = 0; i < N; i++)
        latch_open(g[i].release);
    for (int i = 0; i < N; i++)
        weft_future_result(fs[i], WEFT_FOREVER, NULL);
    assert_int_equal(weft_future_result(any, 0, &v), 0);
    assert_int_equal((uintptr_t)v, 2); /* later completions change nothing */
    weft_future_release(any);
    release_all(fs, N);
    assert_int_equal(weft_pool_destroy(p), 0);
    for (int i = 0; i < N; i++)
        gate_destroy(&g[i]);
}

static void any_counts_a_cancellation_as_a_completion(void **state)
{
    (void)state;
    weft_future *fs[] = {promise(), promise(), promise()};
    weft_future *any = NULL;
    assert_int_equal(weft_any(fs, 3, &any), 0);
    assert_int_equal(weft_future_cancel(fs[1]), 0);
    void *v = NULL;
    assert_int_equal(weft_future_result(any, 0, &v), 0);
    assert_int_equal((uintptr_t)v, 1);
    assert_int_equal(weft_future_set_value(fs[0], NULL), 0);
    assert_int_equal(weft_future_set_error(fs[2], EIO, NULL), 0);
    weft_future_release(any);
    release_all(fs, 3);
}

static void any_picks_the_lowest_index_among_already_done(void **state)
{
    (void)state;
    weft_future *fs[] = {promise(), promise(), promise(), promise()};
    assert_int_equal(weft_future_set_value(fs[3], NULL), 0);
    assert_int_equal(weft_future_set_error(fs[2], EIO, NULL), 0);
    weft_future *any = NULL;
    assert_int_equal(weft_any(fs, 4, &any), 0);
    void *v = NULL;
    assert_int_equal(weft_future_result(any, 0, &v), 0);
    assert_int_equal((uintptr_t)v, 2);
    weft_future_release(any);
    assert_int_equal(weft_future_cancel(fs[0]), 0);
    assert_int_equal(weft_future_cancel(fs[1]), 0);
    release_all(fs, 4);
}

static void all_and_any_reject_bad_arguments(void **state)
{
    (void)state;
    weft_future *f = promise();
    weft_future *fs[] = {f, NULL};
    int (*comb[])(weft_future *const *, size_t, weft_future **) = {weft_all, weft_any};
    for (int k = 0; k < 2; k++) {
        weft_future *out = NULL;
        assert_int_equal(comb[k](NULL, 1, &out), WEFT_EINVAL);
        assert_int_equal(comb[k](fs, 0, &out), WEFT_EINVAL);
        assert_int_equal(comb[k](fs, 2, &out), WEFT_EINVAL);
        assert_int_equal(comb[k](fs, 1, NULL), WEFT_EINVAL);
    }
    assert_int_equal(weft_future_set_value(f, NULL), 0);
    weft_future_release(f);
}

/* ---------------------------------------------------------------------------------------
 * weft_future_set_timeout
 * ------------------------------------------------------------------------------------- */
static void set_timeout_cancels_a_pending_future_whose_task_then_never_runs(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, NULL);
    weft_future *held = submit_gate(p, &g);
    atomic_int runs = 0;
    weft_future *f = NULL;
    assert_int_equal(weft_submit(p, count_task, &runs, &f), 0);
    assert_int_equal(weft_future_set_timeout(f, 2 * MS), 0);
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), WEFT_ECANCELED);
    assert_int_equal(weft_future_state(f), WEFT_CANCELLED);
    latch_open(g.release);
    assert_int_equal(weft_pool_destroy(p), 0); /* drains the queue */
    assert_int_equal(atomic_load(&runs), 0);
    weft_future_release(f);
    weft_future_release(held);
    gate_destroy(&g);
}

struct cb_count {
    atomic_int n;
    atomic_int code;
    latch ran; /* callbacks run after waiters are released: wait for this */
};

static void count_cb(weft_future *f, void *arg)
{
    struct cb_count *c = arg;
    atomic_store(&c->code, weft_future_error(f));
    atomic_fetch_add(&c->n, 1);
    latch_open(&c->ran);
}

static void set_timeout_fails_a_running_future_and_discards_its_late_outcome(void **state)
{
    (void)state;
    for (int late_failure = 0; late_failure <= 1; late_failure++) {
        weft_pool *p = make_pool(1);
        struct gate g;
        gate_init(&g, (void *)0x51);
        g.fail_code = late_failure ? EIO : 0; /* its message must be freed (ASan) */
        weft_future *f = submit_gate(p, &g);
        struct cb_count cc;
        atomic_init(&cc.n, 0);
        atomic_init(&cc.code, 0);
        latch_init(&cc.ran);
        assert_int_equal(weft_future_add_done_callback(f, count_cb, &cc), 0);
        assert_int_equal(weft_future_set_timeout(f, 2 * MS), 0);
        /* The task is held: the future can only complete through the timer. */
        assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), WEFT_ETIMEDOUT);
        assert_int_equal(weft_future_state(f), WEFT_FAILED);
        assert_int_equal(weft_future_error(f), WEFT_ETIMEDOUT);
        assert_null(weft_future_message(f));
        assert_int_equal(weft_future_cancel(f), WEFT_ESTATE);
        assert_int_equal(atomic_load(&g.finished), 0); /* the task runs on */
        latch_wait(&cc.ran);
        assert_int_equal(atomic_load(&cc.n), 1); /* callbacks ran at the timeout */
        assert_int_equal(atomic_load(&cc.code), WEFT_ETIMEDOUT);
        latch_open(g.release);
        assert_int_equal(weft_pool_destroy(p), 0); /* the task has returned */
        assert_int_equal(atomic_load(&g.finished), 1);
        /* Its outcome was discarded: still the timeout, no message, callbacks not rerun. */
        assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), WEFT_ETIMEDOUT);
        assert_int_equal(weft_future_state(f), WEFT_FAILED);
        assert_int_equal(weft_future_error(f), WEFT_ETIMEDOUT);
        assert_null(weft_future_message(f));
        assert_int_equal(atomic_load(&cc.n), 1);
        latch_destroy(&cc.ran);
        weft_future_release(f);
        gate_destroy(&g);
    }
}

static void set_timeout_keeps_the_timeout_after_the_task_returns(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, (void *)0x77);
    weft_future *f = submit_gate(p, &g);
    assert_int_equal(weft_future_set_timeout(f, 1 * MS), 0);
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), WEFT_ETIMEDOUT);
    latch_open(g.release);
    assert_int_equal(weft_pool_destroy(p), 0); /* the task has returned its value */
    void *v = (void *)0x1;
    assert_int_equal(weft_future_result(f, 0, &v), WEFT_ETIMEDOUT);
    assert_ptr_equal(v, (void *)0x1); /* the late value is not handed out */
    assert_int_equal(weft_future_state(f), WEFT_FAILED);
    assert_int_equal(weft_future_error(f), WEFT_ETIMEDOUT);
    weft_future_release(f);
    gate_destroy(&g);
}

static void set_timeout_does_not_affect_a_future_that_completes_first(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct gate g;
    gate_init(&g, (void *)0x33);
    weft_future *f = submit_gate(p, &g);
    assert_int_equal(weft_future_set_timeout(f, 60000 * MS), 0);
    latch_open(g.release);
    void *v = NULL;
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)0x33);
    assert_int_equal(weft_future_state(f), WEFT_FINISHED);
    weft_future_release(f);

    /* Many promises with far deadlines, completed (or cancelled) first: each timer is removed
     * and drops its reference, so every future is freed (LSan at exit). */
    int n = SCALED(2000);
    for (int i = 0; i < n; i++) {
        weft_future *q = promise();
        assert_int_equal(weft_future_set_timeout(q, (60000 + i) * MS), 0);
        if (i & 1)
            assert_int_equal(weft_future_set_value(q, (void *)(intptr_t)i), 0);
        else
            assert_int_equal(weft_future_cancel(q), 0);
        weft_future_release(q);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

static void set_timeout_on_a_running_promise_fails_it_and_refuses_later_outcomes(void **state)
{
    (void)state;
    weft_future *f = promise();
    assert_int_equal(weft_future_set_running(f), 0);
    assert_int_equal(weft_future_set_timeout(f, 1 * MS), 0);
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), WEFT_ETIMEDOUT);
    assert_int_equal(weft_future_set_value(f, (void *)1), WEFT_ESTATE);
    assert_int_equal(weft_future_set_error(f, EIO, "late"), WEFT_ESTATE);
    assert_int_equal(weft_future_error(f), WEFT_ETIMEDOUT);
    assert_null(weft_future_message(f));
    weft_future_release(f);

    /* A pending promise is cancelled instead. */
    f = promise();
    assert_int_equal(weft_future_set_timeout(f, 0), 0);
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), WEFT_ECANCELED);
    assert_int_equal(weft_future_set_running(f), WEFT_ECANCELED);
    weft_future_release(f);
}

static void set_timeout_on_a_done_future_returns_estate(void **state)
{
    (void)state;
    weft_future *f = promise();
    assert_int_equal(weft_future_set_timeout(NULL, 1), WEFT_EINVAL);
    assert_int_equal(weft_future_set_timeout(f, -1), WEFT_EINVAL);
    assert_int_equal(weft_future_set_value(f, NULL), 0);
    assert_int_equal(weft_future_set_timeout(f, 0), WEFT_ESTATE);
    assert_int_equal(weft_future_set_timeout(f, 1000 * MS), WEFT_ESTATE);
    weft_future_release(f);
    f = promise();
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(weft_future_set_timeout(f, 1 * MS), WEFT_ESTATE);
    weft_future_release(f);
    f = promise();
    assert_int_equal(weft_future_set_error(f, EIO, NULL), 0);
    assert_int_equal(weft_future_set_timeout(f, 1 * MS), WEFT_ESTATE);
    weft_future_release(f);
}

static void set_timeout_with_the_largest_timeout_never_fires(void **state)
{
    (void)state;
    /* INT64_MAX ns from now is 292 years away. The timer fires deadlines in order: once a
     * 1 ms deadline set afterwards has fired, an overflowed (negative) deadline would have
     * fired too. */
    weft_future *far = promise();
    assert_int_equal(weft_future_set_timeout(far, INT64_MAX), 0);
    weft_future *near = promise();
    assert_int_equal(weft_future_set_timeout(near, 1 * MS), 0);
    assert_int_equal(weft_future_result(near, WEFT_FOREVER, NULL), WEFT_ECANCELED);
    assert_int_equal(weft_future_state(far), WEFT_PENDING);
    assert_int_equal(weft_future_set_value(far, NULL), 0);
    weft_future_release(far);
    weft_future_release(near);
}

static void set_timeout_races_with_completion_safely(void **state)
{
    (void)state;
    /* Deadlines of 0..1 ms against tasks that finish about then: each future ends exactly
     * one way (value, timeout, or cancellation), and nothing leaks or is used after free. */
    weft_pool *p = make_pool(2);
    int n = SCALED(3000);
    for (int i = 0; i < n; i++) {
        weft_future *f = NULL;
        assert_int_equal(weft_submit(p, ident_task, (void *)0x5, &f), 0);
        int rc = weft_future_set_timeout(f, (i % 4) * 250000LL);
        assert_true(rc == 0 || rc == WEFT_ESTATE);
        void *v = NULL;
        rc = weft_future_result(f, WEFT_FOREVER, &v);
        assert_true(rc == 0 || rc == WEFT_ETIMEDOUT || rc == WEFT_ECANCELED);
        if (rc == 0)
            assert_ptr_equal(v, (void *)0x5);
        assert_int_equal(weft_future_error(f), rc);
        weft_future_release(f); /* often before the timer has fired or been removed */
    }
    assert_int_equal(weft_pool_destroy(p), 0);
}

/* ---------------------------------------------------------------------------------------
 * weft_submit_before
 * ------------------------------------------------------------------------------------- */
static void submit_before_cancels_a_task_that_could_not_start_in_time(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct gate g[2];
    weft_future *held[2];
    for (int i = 0; i < 2; i++) {
        gate_init(&g[i], NULL);
        held[i] = submit_gate(p, &g[i]); /* every worker busy */
    }
    atomic_int runs = 0;
    weft_future *f = NULL;
    assert_int_equal(weft_submit_before(p, count_task, &runs, 2 * MS, &f), 0);
    assert_non_null(f);
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), WEFT_ECANCELED);
    assert_int_equal(weft_future_state(f), WEFT_CANCELLED);
    for (int i = 0; i < 2; i++)
        latch_open(g[i].release);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&runs), 0);
    weft_future_release(f);
    release_all(held, 2);
    for (int i = 0; i < 2; i++)
        gate_destroy(&g[i]);
}

static void submit_before_runs_a_task_that_starts_in_time(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    atomic_int runs = 0;
    weft_future *f = NULL;
    assert_int_equal(weft_submit_before(p, count_task, &runs, 60000 * MS, &f), 0);
    void *v = NULL;
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, &runs);
    assert_int_equal(atomic_load(&runs), 1);
    weft_future_release(f);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static bool latch_is_open(latch *l)
{
    pthread_mutex_lock(&l->m);
    int o = l->open;
    pthread_mutex_unlock(&l->m);
    return o != 0;
}

static void submit_before_does_not_time_out_a_task_that_started(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    /* The start deadline is short; on a loaded host the idle worker may still miss it, and
     * the task is then (rightly) cancelled: try again with a longer one. */
    for (int64_t deadline = 2 * MS;; deadline *= 2) {
        struct gate g;
        gate_init(&g, (void *)0x44);
        weft_future *f = NULL;
        assert_int_equal(weft_submit_before(p, gate_task, &g, deadline, &f), 0);
        while (!latch_is_open(g.started) && !weft_future_done(f))
            sched_yield();
        if (!latch_is_open(g.started)) {
            assert_int_equal(weft_future_result(f, 0, NULL), WEFT_ECANCELED);
            assert_true(deadline < 60000 * MS);
            weft_future_release(f);
            gate_destroy(&g);
            continue;
        }
        /* Let the start deadline pass while the task runs; a second timer set later fires
         * after it (deadline order), so once that one fired the start deadline has been
         * processed. */
        weft_future *marker = promise();
        assert_int_equal(weft_future_set_timeout(marker, deadline + 1 * MS), 0);
        assert_int_equal(weft_future_result(marker, WEFT_FOREVER, NULL), WEFT_ECANCELED);
        weft_future_release(marker);
        assert_int_equal(weft_future_state(f), WEFT_RUNNING);
        latch_open(g.release);
        void *v = NULL;
        assert_int_equal(weft_future_result(f, WEFT_FOREVER, &v), 0);
        assert_ptr_equal(v, (void *)0x44);
        weft_future_release(f);
        assert_int_equal(weft_pool_destroy(p), 0); /* the task has returned */
        gate_destroy(&g);
        break;
    }
}

static void submit_before_rejects_bad_arguments_and_refusing_pools(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    weft_future *f = (weft_future *)0x1;
    assert_int_equal(weft_submit_before(p, ident_task, NULL, -1, &f), WEFT_EINVAL);
    assert_null(f);
    f = (weft_future *)0x1;
    assert_int_equal(weft_submit_before(NULL, ident_task, NULL, 1 * MS, &f), WEFT_EINVAL);
    assert_null(f);
    f = (weft_future *)0x1;
    assert_int_equal(weft_submit_before(p, NULL, NULL, 1 * MS, &f), WEFT_EINVAL);
    assert_null(f);
    assert_int_equal(weft_submit_before(p, ident_task, NULL, 1 * MS, NULL), WEFT_EINVAL);
    assert_int_equal(weft_pool_shutdown(p, true, false), 0);
    f = (weft_future *)0x1;
    assert_int_equal(weft_submit_before(p, ident_task, NULL, 1 * MS, &f), WEFT_ESHUTDOWN);
    assert_null(f);
    assert_int_equal(weft_pool_destroy(p), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(then_inline_runs_in_the_completing_thread_with_the_source_value),
        cmocka_unit_test(then_inline_receives_the_error_of_the_source),
        cmocka_unit_test(then_on_a_pool_runs_the_continuation_on_a_worker),
        cmocka_unit_test(then_on_an_already_done_source_runs_at_once),
        cmocka_unit_test(then_cancelled_before_it_runs_never_runs_the_continuation),
        cmocka_unit_test(then_fail_inside_a_continuation_fails_the_new_future),
        cmocka_unit_test(
            then_fail_inside_an_inline_continuation_run_by_a_task_leaves_the_task_alone),
        cmocka_unit_test(then_on_a_cancelled_source_runs_and_sees_ecanceled),
        cmocka_unit_test(then_on_a_shut_down_pool_fails_the_new_future_with_eshutdown),
        cmocka_unit_test(
            then_on_a_pool_that_cancels_the_queued_continuation_completes_the_new_future),
        cmocka_unit_test(then_on_a_pool_that_breaks_fails_the_new_future_with_ebroken),
        cmocka_unit_test(then_releasing_the_new_future_early_still_runs_the_continuation),
        cmocka_unit_test(then_chains_many_continuations),
        cmocka_unit_test(then_rejects_bad_arguments),
        cmocka_unit_test(all_succeeds_when_all_succeed),
        cmocka_unit_test(all_fails_with_the_first_error_only_after_all_finished),
        cmocka_unit_test(all_on_pool_tasks_waits_for_the_running_ones_after_a_failure),
        cmocka_unit_test(all_with_a_cancelled_input_fails_with_ecanceled),
        cmocka_unit_test(all_of_already_done_inputs_completes_at_once),
        cmocka_unit_test(all_does_not_need_its_inputs_to_outlive_the_call),
        cmocka_unit_test(any_completes_with_the_index_of_the_first_to_complete),
        cmocka_unit_test(any_counts_a_cancellation_as_a_completion),
        cmocka_unit_test(any_picks_the_lowest_index_among_already_done),
        cmocka_unit_test(all_and_any_reject_bad_arguments),
        cmocka_unit_test(set_timeout_cancels_a_pending_future_whose_task_then_never_runs),
        cmocka_unit_test(set_timeout_fails_a_running_future_and_discards_its_late_outcome),
        cmocka_unit_test(set_timeout_keeps_the_timeout_after_the_task_returns),
        cmocka_unit_test(set_timeout_does_not_affect_a_future_that_completes_first),
        cmocka_unit_test(set_timeout_on_a_running_promise_fails_it_and_refuses_later_outcomes),
        cmocka_unit_test(set_timeout_on_a_done_future_returns_estate),
        cmocka_unit_test(set_timeout_with_the_largest_timeout_never_fires),
        cmocka_unit_test(set_timeout_races_with_completion_safely),
        cmocka_unit_test(submit_before_cancels_a_task_that_could_not_start_in_time),
        cmocka_unit_test(submit_before_runs_a_task_that_starts_in_time),
        cmocka_unit_test(submit_before_does_not_time_out_a_task_that_started),
        cmocka_unit_test(submit_before_rejects_bad_arguments_and_refusing_pools),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
