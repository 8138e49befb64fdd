/*
 * Fork-join: weft_spawn / weft_join with no cutoff on pools of 1, 2 and 8 workers (8 is
 * oversubscribed on a 2-core machine), joins in any order, failing spawned tasks, calls
 * from outside a worker, and nested futures waited for inside workers (deep chains on one
 * worker): none of it may deadlock.
 *
 * Assertions are made on the main thread only: tasks record what they saw.
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

static weft_pool *make_pool_opts(unsigned n, unsigned deque_size)
{
    weft_pool_options o;
    weft_pool_options_init(&o);
    o.num_threads = n;
    o.deque_size = deque_size;
    o.name = "tfj";
    weft_pool *p = NULL;
    assert_int_equal(weft_pool_create(&o, &p), 0);
    assert_non_null(p);
    assert_int_equal(weft_pool_size(p), n);
    return p;
}

static weft_pool *make_pool(unsigned n)
{
    return make_pool_opts(n, 0);
}

/* Errors seen inside tasks (spawn refused, unexpected join error, wrong pool...). */
static atomic_int g_errors;

static void note_error(void)
{
    atomic_fetch_add(&g_errors, 1);
}

static int reset_errors(void **state)
{
    (void)state;
    atomic_store(&g_errors, 0);
    return 0;
}

static int check_errors(void **state)
{
    (void)state;
    int e = atomic_load(&g_errors);
    if (e != 0)
        fprintf(stderr, "%d error(s) recorded inside tasks\n", e);
    return e != 0 ? -1 : 0;
}

/* ---------------------------------------------------------------------------------------
 * fib(25) and nqueens(8), spawning at every level
 * ------------------------------------------------------------------------------------- */
static void *fib_task(void *arg)
{
    intptr_t n = (intptr_t)arg;
    if (n < 2)
        return (void *)n;
    weft_task a, b;
    if (weft_spawn(&a, fib_task, (void *)(n - 1)) != 0) {
        note_error();
        return NULL;
    }
    if (weft_spawn(&b, fib_task, (void *)(n - 2)) != 0) {
        note_error();
        weft_join(&a, NULL);
        return NULL;
    }
    int ea = -1, eb = -1;
    intptr_t y = (intptr_t)weft_join(&b, &eb);
    intptr_t x = (intptr_t)weft_join(&a, &ea);
    if (ea != 0 || eb != 0)
        note_error();
    return (void *)(x + y);
}

static void check_fib(unsigned workers)
{
    weft_pool *p = make_pool(workers);
    void *v = NULL;
    assert_int_equal(weft_run(p, fib_task, (void *)(intptr_t)25, &v), 0);
    assert_int_equal((intptr_t)v, 75025);
    /* Again, on a warm pool: the first run may have been mostly inline. */
    v = NULL;
    assert_int_equal(weft_run(p, fib_task, (void *)(intptr_t)25, &v), 0);
    assert_int_equal((intptr_t)v, 75025);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void forkjoin_fib25_on_1_worker(void **state)
{
    (void)state;
    check_fib(1);
}

static void forkjoin_fib25_on_2_workers(void **state)
{
    (void)state;
    check_fib(2);
}

static void forkjoin_fib25_on_8_workers_oversubscribed(void **state)
{
    (void)state;
    check_fib(8);
}

#define NQ_MAX 12
struct nq {
    int n, row;
    int cols[NQ_MAX]; /* written by the spawner, read by the task: spawn publishes it */
};

static bool nq_safe(const struct nq *s, int c)
{
    for (int r = 0; r < s->row; r++) {
        int d = s->cols[r] - c;
        if (d == 0 || d == s->row - r || d == r - s->row)
            return false;
    }
    return true;
}

static void *nq_task(void *arg)
{
    const struct nq *s = arg;
    if (s->row == s->n)
        return (void *)(intptr_t)1;
    struct nq child[NQ_MAX];
    weft_task t[NQ_MAX];
    bool spawned[NQ_MAX] = {false};
    for (int c = 0; c < s->n; c++) {
        if (!nq_safe(s, c))
            continue;
        child[c] = *s;
        child[c].cols[s->row] = c;
        child[c].row = s->row + 1;
        if (weft_spawn(&t[c], nq_task, &child[c]) != 0) {
            note_error();
            continue;
        }
        spawned[c] = true;
    }
    intptr_t sum = 0;
    for (int c = s->n - 1; c >= 0; c--) {
        if (!spawned[c])
            continue;
        int err = -1;
        sum += (intptr_t)weft_join(&t[c], &err);
        if (err != 0)
            note_error();
    }
    return (void *)sum;
}

static void check_nqueens(unsigned workers)
{
    weft_pool *p = make_pool(workers);
    struct nq root;
    memset(&root, 0, sizeof(root));
    root.n = 8;
    void *v = NULL;
    assert_int_equal(weft_run(p, nq_task, &root, &v), 0);
    assert_int_equal((intptr_t)v, 92);
    root.n = 6;
    assert_int_equal(weft_run(p, nq_task, &root, &v), 0);
    assert_int_equal((intptr_t)v, 4);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void forkjoin_nqueens8_on_1_worker(void **state)
{
    (void)state;
    check_nqueens(1);
}

static void forkjoin_nqueens8_on_2_workers(void **state)
{
    (void)state;
    check_nqueens(2);
}

static void forkjoin_nqueens8_on_8_workers_oversubscribed(void **state)
{
    (void)state;
    check_nqueens(8);
}

/* Several outside threads run fork-join trees on one pool at the same time. */
struct fib_client {
    weft_pool *p;
    int rounds;
    int bad;
};

static void *fib_client_thread(void *arg)
{
    struct fib_client *c = arg;
    for (int i = 0; i < c->rounds; i++) {
        void *v = NULL;
        if (weft_run(c->p, fib_task, (void *)(intptr_t)(12 + i % 6), &v) != 0)
            c->bad++;
        static const intptr_t fibs[] = {144, 233, 377, 610, 987, 1597};
        if ((intptr_t)v != fibs[i % 6])
            c->bad++;
    }
    return NULL;
}

static void forkjoin_concurrent_trees_from_several_threads(void **state)
{
    (void)state;
    weft_pool *p = make_pool(3);
    struct fib_client c[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        c[i] = (struct fib_client){p, SCALED(300), 0};
        assert_int_equal(pthread_create(&t[i], NULL, fib_client_thread, &c[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].bad, 0);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
}

/* ---------------------------------------------------------------------------------------
 * Outside a worker
 * ------------------------------------------------------------------------------------- */

static void forkjoin_spawn_and_join_outside_worker_fail_enotworker(void **state)
{
    (void)state;
    weft_task t;
    memset(&t, 0, sizeof(t));
    assert_int_equal(weft_spawn(&t, ident_task, NULL), WEFT_ENOTWORKER);
    int err = 0;
    assert_null(weft_join(&t, &err));
    assert_int_equal(err, WEFT_ENOTWORKER);
    assert_null(weft_join(&t, NULL));
    /* Still so while a pool exists: this thread is not one of its workers. */
    weft_pool *p = make_pool(1);
    assert_int_equal(weft_spawn(&t, ident_task, NULL), WEFT_ENOTWORKER);
    err = 0;
    assert_null(weft_join(&t, &err));
    assert_int_equal(err, WEFT_ENOTWORKER);
    assert_int_equal(weft_pool_destroy(p), 0);
}

struct bad_args {
    int spawn_null_task, spawn_null_fn, join_null_err;
    void *join_null_ret;
};

static void *bad_args_task(void *arg)
{
    struct bad_args *b = arg;
    weft_task t;
    b->spawn_null_task = weft_spawn(NULL, ident_task, NULL);
    b->spawn_null_fn = weft_spawn(&t, NULL, NULL);
    b->join_null_err = 0;
    b->join_null_ret = weft_join(NULL, &b->join_null_err);
    return NULL;
}

static void forkjoin_null_arguments_rejected(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct bad_args b;
    memset(&b, 0, sizeof(b));
    b.join_null_ret = (void *)0x1;
    assert_int_equal(weft_run(p, bad_args_task, &b, NULL), 0);
    assert_int_equal(b.spawn_null_task, WEFT_EINVAL);
    assert_int_equal(b.spawn_null_fn, WEFT_EINVAL);
    assert_null(b.join_null_ret);
    assert_int_equal(b.join_null_err, WEFT_EINVAL);
    assert_int_equal(weft_pool_destroy(p), 0);
}

/* ---------------------------------------------------------------------------------------
 * Join order, failures
 * ------------------------------------------------------------------------------------- */
static void *times_ten_task(void *arg)
{
    intptr_t x = (intptr_t)arg;
    /* A little work of its own, and a nested spawn, so that thieves have a window. */
    weft_task t;
    intptr_t inner = 0;
    if (weft_spawn(&t, ident_task, (void *)x) == 0)
        inner = (intptr_t)weft_join(&t, NULL);
    else
        note_error();
    return (void *)(inner * 10);
}

static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};

static void *out_of_order_task(void *arg)
{
    (void)arg;
    intptr_t bad = 0;
    for (int round = 0; round < 50; round++) {
        const int *order = perms[round % 6];
        weft_task t[3];
        for (int i = 0; i < 3; i++)
            if (weft_spawn(&t[i], times_ten_task, (void *)(intptr_t)(i + 1 + round)) != 0)
                return (void *)(intptr_t)-1;
        for (int k = 0; k < 3; k++) {
            int i = order[k];
            int err = -1;
            intptr_t v = (intptr_t)weft_join(&t[i], &err);
            if (err != 0 || v != (i + 1 + round) * 10)
                bad++;
        }
    }
    return (void *)bad;
}

static void forkjoin_join_out_of_order_gives_right_results(void **state)
{
    (void)state;
    for (unsigned workers = 1; workers <= 8; workers *= 2) {
        weft_pool *p = make_pool(workers);
        void *v = (void *)0x1;
        assert_int_equal(weft_run(p, out_of_order_task, NULL, &v), 0);
        assert_int_equal((intptr_t)v, 0);
        assert_int_equal(weft_pool_destroy(p), 0);
    }
}

struct failing {
    int code;
    atomic_int ran_on; /* worker index + 1 */
};

static void *failing_task(void *arg)
{
    struct failing *f = arg;
    atomic_store(&f->ran_on, weft_current_worker() + 1);
    if (f->code == 0)
        return weft_fail(0, NULL);
    weft_fail(f->code, "spawned task failed with %d", f->code);
    return (void *)0x1234; /* discarded */
}

struct fail_report {
    void *ret[4];
    int err[4];
    void *ok_ret;
    int ok_err;
    int stolen;
};

static void *fail_parent_task(void *arg)
{
    struct fail_report *r = arg;
    struct failing specs[4] = {{ENOENT, 0}, {-EPIPE, 0}, {0, 0}, {-99999, 0}};
    weft_task t[4], ok;
    for (int i = 0; i < 4; i++)
        if (weft_spawn(&t[i], failing_task, &specs[i]) != 0)
            note_error();
    if (weft_spawn(&ok, ident_task, (void *)0x77) != 0)
        note_error();
    r->ok_err = -1;
    r->ok_ret = weft_join(&ok, &r->ok_err);
    /* Give idle workers the chance to steal some: a worker exposes its oldest private task
     * to a thief that asked at its next spawn, so spawn (and join) small tasks meanwhile.
     * Bounded by a count, not a time: joining the failing tasks inline is correct too. */
    for (int k = 0; k < 20000; k++) {
        int seen = 0;
        for (int i = 0; i < 4; i++)
            seen += atomic_load(&specs[i].ran_on) != 0;
        if (seen == 4)
            break;
        weft_task filler;
        if (weft_spawn(&filler, ident_task, NULL) == 0)
            weft_join(&filler, NULL);
    }
    for (int i = 0; i < 4; i++) {
        r->err[i] = 0;
        r->ret[i] = weft_join(&t[i], &r->err[i]);
        if (atomic_load(&specs[i].ran_on) - 1 != weft_current_worker())
            r->stolen++;
    }
    return (void *)0x600d; /* the parent itself succeeds */
}

static void forkjoin_failing_spawned_task_reported_by_join(void **state)
{
    (void)state;
    int stolen = 0;
    for (unsigned workers = 1; workers <= 2; workers++) {
        weft_pool *p = make_pool(workers);
        for (int round = 0; round < 20; round++) {
            struct fail_report r;
            memset(&r, 0, sizeof(r));
            void *v = NULL;
            weft_future *f = NULL;
            assert_int_equal(weft_submit(p, fail_parent_task, &r, &f), 0);
            assert_int_equal(weft_future_result(f, WEFT_FOREVER, &v), 0);
            /* A failing child does not fail its parent. */
            assert_ptr_equal(v, (void *)0x600d);
            assert_null(weft_future_message(f));
            weft_future_release(f);
            const int expect[4] = {-ENOENT, -EPIPE, WEFT_EFAILED, -99999};
            for (int i = 0; i < 4; i++) {
                assert_null(r.ret[i]);
                assert_int_equal(r.err[i], expect[i]);
            }
            assert_ptr_equal(r.ok_ret, (void *)0x77);
            assert_int_equal(r.ok_err, 0);
            stolen += r.stolen;
        }
        assert_int_equal(weft_pool_destroy(p), 0);
    }
    print_message("failing spawned tasks: %d of 160 joined after being stolen\n", stolen);
}

/* ---------------------------------------------------------------------------------------
 * Nested futures waited for inside workers
 * ------------------------------------------------------------------------------------- */
static void *chain_task(void *arg)
{
    intptr_t d = (intptr_t)arg;
    if (d == 0)
        return (void *)0;
    weft_future *f = NULL;
    if (weft_submit(weft_current_pool(), chain_task, (void *)(d - 1), &f) != 0) {
        note_error();
        return (void *)0;
    }
    void *v = NULL;
    if (weft_future_result(f, WEFT_FOREVER, &v) != 0)
        note_error();
    weft_future_release(f);
    return (void *)((intptr_t)v + 1);
}

static void forkjoin_nested_future_chain_1000_on_one_worker(void **state)
{
    (void)state;
    for (unsigned workers = 1; workers <= 2; workers++) {
        weft_pool *p = make_pool(workers);
        void *v = NULL;
        assert_int_equal(weft_run(p, chain_task, (void *)(intptr_t)1000, &v), 0);
        assert_int_equal((intptr_t)v, 1000);
        assert_int_equal(weft_pool_destroy(p), 0);
    }
}

/* A tree of futures: each task submits two and waits for both, in either order. */
static void *future_tree_task(void *arg)
{
    intptr_t d = (intptr_t)arg;
    if (d == 0)
        return (void *)1;
    weft_future *a = NULL, *b = NULL;
    weft_pool *self = weft_current_pool();
    if (weft_submit(self, future_tree_task, (void *)(d - 1), &a) != 0 ||
        weft_submit(self, future_tree_task, (void *)(d - 1), &b) != 0) {
        note_error();
        return NULL;
    }
    void *x = NULL, *y = NULL;
    weft_future *first = d % 2 ? a : b, *second = d % 2 ? b : a;
    if (weft_future_result(first, WEFT_FOREVER, &x) != 0 ||
        weft_future_result(second, WEFT_FOREVER, &y) != 0)
        note_error();
    weft_future_release(a);
    weft_future_release(b);
    return (void *)((intptr_t)x + (intptr_t)y + 1);
}

static void forkjoin_nested_future_tree_does_not_deadlock(void **state)
{
    (void)state;
    const unsigned sizes[] = {1, 2, 8};
    for (size_t i = 0; i < 3; i++) {
        weft_pool *p = make_pool(sizes[i]);
        void *v = NULL;
        assert_int_equal(weft_run(p, future_tree_task, (void *)(intptr_t)10, &v), 0);
        assert_int_equal((intptr_t)v, (1 << 11) - 1); /* 2^10 leaves + 2^10 - 1 inner */
        assert_int_equal(weft_pool_destroy(p), 0);
    }
}

/* Futures inside spawned tasks and spawns inside futures, mixed. */
static void *mixed_task(void *arg)
{
    intptr_t d = (intptr_t)arg;
    if (d <= 1)
        return (void *)d;
    weft_task t;
    weft_future *f = NULL;
    if (weft_spawn(&t, mixed_task, (void *)(d - 1)) != 0) {
        note_error();
        return NULL;
    }
    if (weft_submit(weft_current_pool(), mixed_task, (void *)(d - 2), &f) != 0) {
        note_error();
        weft_join(&t, NULL);
        return NULL;
    }
    void *y = NULL;
    if (weft_future_result(f, WEFT_FOREVER, &y) != 0)
        note_error();
    weft_future_release(f);
    int err = -1;
    intptr_t x = (intptr_t)weft_join(&t, &err);
    if (err != 0)
        note_error();
    return (void *)(x + (intptr_t)y);
}

static void forkjoin_mixed_spawns_and_nested_futures(void **state)
{
    (void)state;
    const unsigned sizes[] = {1, 2, 8};
    for (size_t i = 0; i < 3; i++) {
        weft_pool *p = make_pool(sizes[i]);
        void *v = NULL;
        assert_int_equal(weft_run(p, mixed_task, (void *)(intptr_t)18, &v), 0);
        assert_int_equal((intptr_t)v, 2584); /* fib(18) */
        assert_int_equal(weft_pool_destroy(p), 0);
    }
}

/* A worker that waits for a future runs its own tasks first: here the future is completed
 * by a task the waiter spawned itself and has not joined yet. On one worker nobody else can
 * run it. (The timeout only turns a deadlock into a failure; it never expires when the
 * waiter helps as it should.) */
struct self_dep {
    int wait_rc;
    void *value;
};

static void *complete_promise_task(void *arg)
{
    weft_future_set_value((weft_future *)arg, (void *)0x5e1f);
    return NULL;
}

static void *wait_on_own_spawn_task(void *arg)
{
    struct self_dep *d = arg;
    weft_future *promise = NULL;
    if (weft_future_create(&promise) != 0) {
        note_error();
        return NULL;
    }
    weft_task t;
    if (weft_spawn(&t, complete_promise_task, promise) != 0) {
        note_error();
        weft_future_release(promise);
        return NULL;
    }
    d->wait_rc = weft_future_result(promise, 5000 * 1000000LL, &d->value);
    int err = -1;
    weft_join(&t, &err); /* runs it now if the wait did not */
    if (err != 0)
        note_error();
    weft_future_release(promise);
    return NULL;
}

static void forkjoin_future_wait_runs_waiters_own_spawned_task(void **state)
{
    (void)state;
    int failed_rc = 0;
    unsigned failed_workers = 0;
    for (unsigned workers = 1; workers <= 2; workers++) {
        weft_pool *p = make_pool(workers);
        for (int round = 0; round < 5 && failed_rc == 0; round++) {
            struct self_dep d = {1, NULL};
            assert_int_equal(weft_run(p, wait_on_own_spawn_task, &d, NULL), 0);
            if (d.wait_rc != 0 && failed_rc == 0) {
                failed_rc = d.wait_rc;
                failed_workers = workers;
            }
            if (d.wait_rc == 0)
                assert_ptr_equal(d.value, (void *)0x5e1f);
        }
        assert_int_equal(weft_pool_destroy(p), 0);
    }
    if (failed_rc != 0)
        fail_msg("%u worker(s): weft_future_result on a future completed by the waiter's own "
                 "spawned task returned %d (%s)",
                 failed_workers, failed_rc, weft_strerror(failed_rc));
}

/* ---------------------------------------------------------------------------------------
 * Deque growth, current future, spawning after shutdown
 * ------------------------------------------------------------------------------------- */
#define WIDE 20000

static void *square_task(void *arg)
{
    intptr_t x = (intptr_t)arg;
    return (void *)(x * x);
}

static void *wide_task(void *arg)
{
    intptr_t forward = (intptr_t)arg;
    weft_task *t = malloc(sizeof(*t) * WIDE);
    if (t == NULL)
        return (void *)(intptr_t)-1;
    intptr_t bad = 0;
    int n = 0;
    for (; n < WIDE; n++)
        if (weft_spawn(&t[n], square_task, (void *)(intptr_t)n) != 0)
            break;
    if (n != WIDE)
        bad++;
    for (int k = 0; k < n; k++) {
        int i = forward ? k : n - 1 - k;
        int err = -1;
        if ((intptr_t)weft_join(&t[i], &err) != (intptr_t)i * i || err != 0)
            bad++;
    }
    free(t);
    return (void *)bad;
}

static void forkjoin_many_spawns_grow_a_small_deque(void **state)
{
    (void)state;
    for (unsigned workers = 1; workers <= 2; workers++) {
        weft_pool *p = make_pool_opts(workers, 16); /* grows ~10 times */
        for (intptr_t forward = 0; forward <= 1; forward++) {
            void *v = (void *)0x1;
            assert_int_equal(weft_run(p, wide_task, (void *)forward, &v), 0);
            assert_int_equal((intptr_t)v, 0);
        }
        assert_int_equal(weft_pool_destroy(p), 0);
    }
}

struct current_seen {
    weft_future *in_child, *in_grandchild;
    weft_pool *pool_in_child;
    int parent_worker;
    atomic_int child_worker; /* worker index + 1, once the child ran */
    weft_future *in_parent_after;
    bool wait_for_thief;
};

static void *current_grandchild_task(void *arg)
{
    struct current_seen *c = arg;
    c->in_grandchild = weft_current_future();
    return NULL;
}

static void *current_child_task(void *arg)
{
    struct current_seen *c = arg;
    c->in_child = weft_current_future();
    c->pool_in_child = weft_current_pool();
    weft_task t;
    if (weft_spawn(&t, current_grandchild_task, c) != 0)
        note_error();
    else
        weft_join(&t, NULL);
    atomic_store(&c->child_worker, weft_current_worker() + 1);
    return NULL;
}

static void *current_parent_task(void *arg)
{
    struct current_seen *c = arg;
    c->parent_worker = weft_current_worker();
    weft_task t;
    if (weft_spawn(&t, current_child_task, c) != 0) {
        note_error();
        return NULL;
    }
    /* With an idle second worker, the spawn exposed the child: wait (bounded) for that
     * worker to steal and run it, so the thief's path is the one tested. */
    for (int i = 0; c->wait_for_thief && i < 10000 && atomic_load(&c->child_worker) == 0; i++)
        sleep_ms(1);
    weft_join(&t, NULL);
    c->in_parent_after = weft_current_future();
    return NULL;
}

/* A spawned task has no future of its own: weft_current_future gives the future of the
 * submitted task it descends from, whether its join ran it inline or a thief ran it, and
 * the spawner's own is intact after the join. */
static void forkjoin_spawned_task_reports_its_spawners_future(void **state)
{
    (void)state;
    for (unsigned workers = 1; workers <= 2; workers++) {
        weft_pool *p = make_pool(workers);
        struct current_seen c;
        memset(&c, 0, sizeof(c));
        c.wait_for_thief = workers == 2;
        weft_future *f = NULL;
        assert_int_equal(weft_submit(p, current_parent_task, &c, &f), 0);
        assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), 0);
        assert_ptr_equal(c.in_child, f);
        assert_ptr_equal(c.in_grandchild, f);
        assert_ptr_equal(c.pool_in_child, p);
        assert_ptr_equal(c.in_parent_after, f);
        if (workers == 2) /* stolen: it ran on the other worker */
            assert_int_not_equal(atomic_load(&c.child_worker) - 1, c.parent_worker);
        weft_future_release(f);
        assert_int_equal(weft_pool_destroy(p), 0);
    }
}

struct failed_parent {
    int child_err[3];
    void *child_ret[3];
};

static void *ok_or_fail_task(void *arg)
{
    intptr_t code = (intptr_t)arg;
    if (code != 0)
        return weft_fail((int)code, "child %d", (int)code);
    return (void *)0x5;
}

static void *failed_parent_task(void *arg)
{
    struct failed_parent *r = arg;
    weft_fail(-EIO, "parent failed first");
    const intptr_t codes[3] = {-EPIPE, 0, -EBADF};
    weft_task t[3];
    for (int i = 0; i < 3; i++)
        if (weft_spawn(&t[i], ok_or_fail_task, (void *)codes[i]) != 0)
            note_error();
    for (int i = 2; i >= 0; i--)
        r->child_ret[i] = weft_join(&t[i], &r->child_err[i]);
    return (void *)0x1; /* discarded: the task failed */
}

/* A task that already called weft_fail and then joins children: each join reports its
 * child's own outcome, and the parent's failure (code and message) survives them. */
static void forkjoin_join_after_parent_failed_keeps_both_outcomes(void **state)
{
    (void)state;
    for (unsigned workers = 1; workers <= 2; workers++) {
        weft_pool *p = make_pool(workers);
        for (int round = 0; round < 20; round++) {
            struct failed_parent r;
            memset(&r, 0, sizeof(r));
            weft_future *f = NULL;
            assert_int_equal(weft_submit(p, failed_parent_task, &r, &f), 0);
            assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), -EIO);
            assert_string_equal(weft_future_message(f), "parent failed first");
            assert_int_equal(r.child_err[0], -EPIPE);
            assert_null(r.child_ret[0]);
            assert_int_equal(r.child_err[1], 0);
            assert_ptr_equal(r.child_ret[1], (void *)0x5);
            assert_int_equal(r.child_err[2], -EBADF);
            assert_null(r.child_ret[2]);
            weft_future_release(f);
        }
        assert_int_equal(weft_pool_destroy(p), 0);
    }
}

struct cb_spawn {
    int join_err;
    void *join_ret;
    atomic_int done;
};

/* A done-callback that runs on the worker (the future completes there): it fails outside
 * any task (nothing to report) and spawns and joins a failing child (reported). */
static void spawn_in_callback(weft_future *f, void *arg)
{
    (void)f;
    struct cb_spawn *c = arg;
    weft_fail(-EPERM, "no task to fail here");
    weft_task t;
    if (weft_spawn(&t, ok_or_fail_task, (void *)(intptr_t)-ENOSPC) != 0)
        note_error();
    else
        c->join_ret = weft_join(&t, &c->join_err);
    atomic_store(&c->done, 1);
}

static void *register_spawning_callback(void *arg)
{
    weft_future *self = weft_current_future();
    if (weft_future_add_done_callback(self, spawn_in_callback, arg) != 0)
        note_error();
    return (void *)0x2;
}

static void forkjoin_failure_outside_tasks_stays_out_of_later_tasks(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1); /* the next task runs on the same worker */
    struct cb_spawn c;
    memset(&c, 0, sizeof(c));
    weft_future *f = NULL, *g = NULL;
    void *v = NULL;
    assert_int_equal(weft_submit(p, register_spawning_callback, &c, &f), 0);
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)0x2);
    while (atomic_load(&c.done) == 0)
        sleep_ms(1);
    assert_int_equal(c.join_err, -ENOSPC);
    assert_null(c.join_ret);
    /* The callback's weft_fail belonged to no task: the next one does not inherit it. */
    assert_int_equal(weft_submit(p, ok_or_fail_task, (void *)0, &g), 0);
    assert_int_equal(weft_future_result(g, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)0x5);
    assert_null(weft_future_message(g));
    weft_future_release(f);
    weft_future_release(g);
    assert_int_equal(weft_pool_destroy(p), 0);
}

struct after_shutdown {
    latch started, go;
    int spawn_rc[4];
    void *joined[4];
    int join_err[4];
};

static void *spawn_after_shutdown_task(void *arg)
{
    struct after_shutdown *a = arg;
    latch_open(&a->started);
    latch_wait(&a->go);
    weft_task t[4];
    for (int i = 0; i < 4; i++)
        a->spawn_rc[i] = weft_spawn(&t[i], square_task, (void *)(intptr_t)(i + 2));
    for (int i = 3; i >= 0; i--)
        if (a->spawn_rc[i] == 0)
            a->joined[i] = weft_join(&t[i], &a->join_err[i]);
    return NULL;
}

static void forkjoin_spawn_after_shutdown_still_runs(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct after_shutdown a;
    memset(&a, 0, sizeof(a));
    latch_init(&a.started);
    latch_init(&a.go);
    weft_future *f = NULL;
    assert_int_equal(weft_submit(p, spawn_after_shutdown_task, &a, &f), 0);
    latch_wait(&a.started);
    assert_int_equal(weft_pool_shutdown(p, false, false), 0);
    latch_open(&a.go); /* the running task spawns its children now */
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(a.spawn_rc[i], 0);
        assert_int_equal(a.join_err[i], 0);
        assert_int_equal((intptr_t)a.joined[i], (intptr_t)(i + 2) * (i + 2));
    }
    weft_future_release(f);
    assert_int_equal(weft_pool_destroy(p), 0);
    latch_destroy(&a.started);
    latch_destroy(&a.go);
}

/* Repeated small trees on a 2-worker pool: many steal/join races. */
static void forkjoin_repeated_small_trees(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    for (int i = 0; i < SCALED(2000); i++) {
        void *v = NULL;
        assert_int_equal(weft_run(p, fib_task, (void *)(intptr_t)10, &v), 0);
        assert_int_equal((intptr_t)v, 55);
    }
    weft_stats s;
    assert_int_equal(weft_pool_stats(p, &s), 0);
    assert_true(s.spawns >= (uint64_t)SCALED(2000) * 176); /* fib(10) spawns 176 tasks */
    assert_int_equal(weft_pool_destroy(p), 0);
}

#define FJ_TEST(name) cmocka_unit_test_setup_teardown(name, reset_errors, check_errors)

int main(void)
{
    const struct CMUnitTest tests[] = {
        FJ_TEST(forkjoin_fib25_on_1_worker),
        FJ_TEST(forkjoin_fib25_on_2_workers),
        FJ_TEST(forkjoin_fib25_on_8_workers_oversubscribed),
        FJ_TEST(forkjoin_nqueens8_on_1_worker),
        FJ_TEST(forkjoin_nqueens8_on_2_workers),
        FJ_TEST(forkjoin_nqueens8_on_8_workers_oversubscribed),
        FJ_TEST(forkjoin_concurrent_trees_from_several_threads),
        FJ_TEST(forkjoin_spawn_and_join_outside_worker_fail_enotworker),
        FJ_TEST(forkjoin_null_arguments_rejected),
        FJ_TEST(forkjoin_join_out_of_order_gives_right_results),
        FJ_TEST(forkjoin_failing_spawned_task_reported_by_join),
        FJ_TEST(forkjoin_nested_future_chain_1000_on_one_worker),
        FJ_TEST(forkjoin_nested_future_tree_does_not_deadlock),
        FJ_TEST(forkjoin_mixed_spawns_and_nested_futures),
        FJ_TEST(forkjoin_future_wait_runs_waiters_own_spawned_task),
        FJ_TEST(forkjoin_many_spawns_grow_a_small_deque),
        FJ_TEST(forkjoin_spawned_task_reports_its_spawners_future),
        FJ_TEST(forkjoin_join_after_parent_failed_keeps_both_outcomes),
        FJ_TEST(forkjoin_failure_outside_tasks_stays_out_of_later_tasks),
        FJ_TEST(forkjoin_spawn_after_shutdown_still_runs),
        FJ_TEST(forkjoin_repeated_small_trees),
    };
    /* CMOCKA_TEST_FILTER / CMOCKA_SKIP_FILTER: run a subset (wildcards * and ?). */
    if (getenv("CMOCKA_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("CMOCKA_TEST_FILTER"));
    if (getenv("CMOCKA_SKIP_FILTER") != NULL)
        cmocka_set_skip_filter(getenv("CMOCKA_SKIP_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
