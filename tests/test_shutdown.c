/*
 * Pool shutdown and life cycle, after CPython's shutdown and executor tests: submit after
 * shutdown (from outside and from a task), draining queued work, cancel_futures, no hang with
 * blocked tasks or cancels just before, idempotence, destroy after shutdown(wait=false), a
 * failing initializer breaking the pool, initializer/finalizer per worker, thread names,
 * threads left behind, and references left behind (ASan/LSan).
 *
 * Workers are held deterministically on latches; nothing asserts on durations. Assertions are
 * made on the main thread only: tasks, initializers and helper threads record what they saw.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"
#include "weft.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>
#include <time.h>

/* ---------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------- */

static weft_pool *make_pool(unsigned n)
{
    return make_pool_named(n, "tshut");
}

/* Threads of this process, by name (/proc/self/task/<tid>/comm). */
static int count_threads(const char *only_named, const char *except_named)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *fp = fopen(path, "r");
        if (fp == NULL)
            continue; /* the thread exited meanwhile */
        if (fgets(comm, sizeof(comm), fp) == NULL)
            comm[0] = '\0';
        fclose(fp);
        comm[strcspn(comm, "\n")] = '\0';
        if (only_named != NULL && strcmp(comm, only_named) != 0)
            continue;
        if (except_named != NULL && strcmp(comm, except_named) == 0)
            continue;
        n++;
    }
    closedir(d);
    return n;
}

/* The name of thread `tid` of this process, or "" if it is gone. */
static void thread_name(pid_t tid, char *out, size_t n)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
    out[0] = '\0';
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return;
    if (fgets(out, (int)n, fp) == NULL)
        out[0] = '\0';
    fclose(fp);
    out[strcspn(out, "\n")] = '\0';
}

/* Waits (bounded) until thread `tid` has the name `want`; returns the name it has. The
 * contract does not say when a worker names itself, only that it is named. */
static const char *await_thread_name(pid_t tid, const char *want, char *out, size_t n)
{
    for (int i = 0; i < 5000; i++) {
        thread_name(tid, out, n);
        if (strcmp(out, want) == 0)
            break;
        sleep_ms(1);
    }
    return out;
}

/* Waits (bounded) until exactly `want` threads are named `name`; returns the count. */
static int await_thread_count(const char *name, int want)
{
    int n = -1;
    for (int i = 0; i < 5000; i++) {
        n = count_threads(name, NULL);
        if (n == want)
            break;
        sleep_ms(1);
    }
    return n;
}

/* A helper thread that shuts a pool down (with wait, it blocks until the workers exit). */
struct shutter {
    weft_pool *p;
    bool wait, cancel;
    int rc;
    atomic_int returned;
};

static void *shutter_main(void *arg)
{
    struct shutter *s = arg;
    s->rc = weft_pool_shutdown(s->p, s->wait, s->cancel);
    atomic_store(&s->returned, 1);
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * Submitting after shutdown
 * ------------------------------------------------------------------------------------- */
static void submit_after_shutdown_returns_eshutdown(void **state)
{
    (void)state;
    for (int wait = 0; wait <= 1; wait++) {
        weft_pool *p = make_pool(2);
        assert_int_equal(weft_pool_shutdown(p, wait, false), 0);
        atomic_int runs = 0;
        weft_future *f = (weft_future *)0x1;
        assert_int_equal(weft_submit(p, count_task, &runs, &f), WEFT_ESHUTDOWN);
        assert_null(f);
        assert_int_equal(weft_run(p, count_task, &runs, NULL), WEFT_ESHUTDOWN);
        f = (weft_future *)0x1;
        assert_int_equal(weft_submit_before(p, count_task, &runs, 1000 * MS, &f), WEFT_ESHUTDOWN);
        assert_null(f);
        assert_int_equal(weft_pool_destroy(p), 0);
        assert_int_equal(atomic_load(&runs), 0);
    }
}

struct late_submitter {
    struct gate g;
    int submit_rc;
    weft_future *submitted;
    int spawn_rc;
    void *join_value;
    int join_err;
};

static void *late_submit_task(void *arg)
{
    struct late_submitter *s = arg;
    gate_task(&s->g);
    s->submit_rc = weft_submit(weft_current_pool(), ident_task, NULL, &s->submitted);
    /* Spawning stays allowed: running work completes normally and may need its children. */
    weft_task t;
    s->spawn_rc = weft_spawn(&t, ident_task, (void *)0x5b);
    if (s->spawn_rc == 0)
        s->join_value = weft_join(&t, &s->join_err);
    return NULL;
}

static void submit_from_inside_a_task_after_shutdown_returns_eshutdown(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct late_submitter s;
    memset(&s, 0, sizeof(s));
    gate_init(&s.g, NULL);
    s.submitted = (weft_future *)0x1;
    s.join_err = -1;
    weft_future *f = NULL;
    assert_int_equal(weft_submit(p, late_submit_task, &s, &f), 0);
    latch_wait(s.g.started);
    assert_int_equal(weft_pool_shutdown(p, false, false), 0);
    latch_open(s.g.release);
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), 0);
    assert_int_equal(s.submit_rc, WEFT_ESHUTDOWN);
    assert_null(s.submitted);
    assert_int_equal(s.spawn_rc, 0);
    assert_ptr_equal(s.join_value, (void *)0x5b);
    assert_int_equal(s.join_err, 0);
    weft_future_release(f);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&s.g);
}

/* ---------------------------------------------------------------------------------------
 * Draining and cancelling
 * ------------------------------------------------------------------------------------- */
static void shutdown_wait_drains_queued_work(void **state)
{
    (void)state;
    enum { N = 50 };
    /* 1: shutdown(wait=false) closes the pool with work queued; shutdown(wait=true) then runs
     * all of it. */
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, (void *)0x6);
    weft_future *held = submit_gate(p, &g);
    atomic_int runs = 0;
    weft_future *fs[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_submit(p, count_task, &runs, &fs[i]), 0);
    assert_int_equal(weft_pool_shutdown(p, false, false), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_future_state(fs[i]), WEFT_PENDING); /* not cancelled */
    latch_open(g.release);
    assert_int_equal(weft_pool_shutdown(p, true, false), 0);
    for (int i = 0; i < N; i++) {
        assert_true(weft_future_done(fs[i]));
        assert_int_equal(weft_future_state(fs[i]), WEFT_FINISHED);
    }
    assert_int_equal(atomic_load(&runs), N);
    assert_int_equal(weft_future_state(held), WEFT_FINISHED);
    release_all(fs, N);
    weft_future_release(held);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);

    /* 2: shutdown(wait=true) from another thread while the worker is held: it returns only
     * after the queue is drained. */
    p = make_pool(2);
    struct gate g2[2];
    weft_future *held2[2];
    for (int i = 0; i < 2; i++) {
        gate_init(&g2[i], NULL);
        held2[i] = submit_gate(p, &g2[i]);
    }
    atomic_store(&runs, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_submit(p, count_task, &runs, &fs[i]), 0);
    struct shutter sh = {p, true, false, -1, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, shutter_main, &sh), 0);
    sleep_ms(10); /* usually inside the shutdown by now; either way the outcome is the same */
    assert_int_equal(atomic_load(&sh.returned), 0); /* cannot return: the workers are held */
    for (int i = 0; i < 2; i++)
        latch_open(g2[i].release);
    pthread_join(th, NULL);
    assert_int_equal(sh.rc, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(weft_future_state(fs[i]), WEFT_FINISHED);
    assert_int_equal(atomic_load(&runs), N);
    release_all(fs, N);
    release_all(held2, 2);
    assert_int_equal(weft_pool_destroy(p), 0);
    for (int i = 0; i < 2; i++)
        gate_destroy(&g2[i]);
}

static void shutdown_cancel_futures_cancels_queued_work_and_lets_running_work_finish(void **state)
{
    (void)state;
    for (int wait = 0; wait <= 1; wait++) {
        weft_pool *p = make_pool(2);
        struct gate g[2];
        weft_future *held[2];
        for (int i = 0; i < 2; i++) {
            gate_init(&g[i], (void *)(intptr_t)(0x70 + i));
            held[i] = submit_gate(p, &g[i]); /* every worker busy */
        }
        enum { N = 20 };
        atomic_int runs = 0;
        weft_future *fs[N];
        for (int i = 0; i < N; i++)
            assert_int_equal(weft_submit(p, count_task, &runs, &fs[i]), 0);
        if (!wait) {
            assert_int_equal(weft_pool_shutdown(p, false, true), 0);
            /* Queued: cancelled by the time shutdown returns. Running: untouched. */
            for (int i = 0; i < N; i++)
                assert_int_equal(weft_future_state(fs[i]), WEFT_CANCELLED);
            for (int i = 0; i < 2; i++)
                assert_int_equal(weft_future_state(held[i]), WEFT_RUNNING);
            for (int i = 0; i < 2; i++)
                latch_open(g[i].release);
        } else {
            struct shutter sh = {p, true, true, -1, 0};
            pthread_t th;
            assert_int_equal(pthread_create(&th, NULL, shutter_main, &sh), 0);
            sleep_ms(10);
            for (int i = 0; i < 2; i++)
                latch_open(g[i].release);
            pthread_join(th, NULL);
            assert_int_equal(sh.rc, 0);
        }
        assert_int_equal(weft_pool_destroy(p), 0);
        for (int i = 0; i < N; i++) {
            int st = weft_future_state(fs[i]);
            /* With wait, the shutdown may begin after a worker was released: a queued task
             * that already started completes normally; none is left pending. */
            if (!wait)
                assert_int_equal(st, WEFT_CANCELLED);
            else
                assert_true(st == WEFT_CANCELLED || st == WEFT_FINISHED);
            assert_true(weft_future_done(fs[i]));
        }
        if (!wait)
            assert_int_equal(atomic_load(&runs), 0);
        for (int i = 0; i < 2; i++) {
            void *v = NULL;
            assert_int_equal(weft_future_result(held[i], 0, &v), 0);
            assert_ptr_equal(v, (void *)(intptr_t)(0x70 + i));
            assert_int_equal(weft_future_state(held[i]), WEFT_FINISHED);
        }
        release_all(fs, N);
        release_all(held, 2);
        for (int i = 0; i < 2; i++)
            gate_destroy(&g[i]);
    }
}

struct parent {
    struct gate g;
    atomic_int runs;
    weft_future *children[8];
    int submit_rc;
};

static void *parent_task(void *arg)
{
    struct parent *pa = arg;
    pa->submit_rc = 0;
    for (int i = 0; i < 8; i++) {
        int rc = weft_submit(weft_current_pool(), count_task, &pa->runs, &pa->children[i]);
        if (rc != 0)
            pa->submit_rc = rc;
    }
    return gate_task(&pa->g);
}

static void shutdown_cancel_futures_also_cancels_work_queued_on_a_worker_deque(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct parent pa;
    memset(&pa, 0, sizeof(pa));
    gate_init(&pa.g, NULL);
    atomic_init(&pa.runs, 0);
    weft_future *f = NULL;
    assert_int_equal(weft_submit(p, parent_task, &pa, &f), 0);
    latch_wait(pa.g.started); /* the children are on the only worker's deque */
    assert_int_equal(pa.submit_rc, 0);
    assert_int_equal(weft_pool_shutdown(p, false, true), 0);
    latch_open(pa.g.release);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(weft_future_state(f), WEFT_FINISHED);
    for (int i = 0; i < 8; i++)
        assert_int_equal(weft_future_state(pa.children[i]), WEFT_CANCELLED);
    assert_int_equal(atomic_load(&pa.runs), 0);
    release_all(pa.children, 8);
    weft_future_release(f);
    gate_destroy(&pa.g);
}

static void shutdown_wait_drains_work_queued_on_a_worker_deque(void **state)
{
    (void)state;
    /* Children submitted from inside a task sit on its worker's deque when the pool shuts
     * down; shutdown(wait=true) runs them too. */
    weft_pool *p = make_pool(1);
    struct parent pa;
    memset(&pa, 0, sizeof(pa));
    gate_init(&pa.g, NULL);
    atomic_init(&pa.runs, 0);
    weft_future *f = NULL;
    assert_int_equal(weft_submit(p, parent_task, &pa, &f), 0);
    latch_wait(pa.g.started);
    assert_int_equal(pa.submit_rc, 0);
    assert_int_equal(weft_pool_shutdown(p, false, false), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(weft_future_state(pa.children[i]), WEFT_PENDING);
    latch_open(pa.g.release);
    assert_int_equal(weft_pool_shutdown(p, true, false), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(weft_future_state(pa.children[i]), WEFT_FINISHED);
    assert_int_equal(atomic_load(&pa.runs), 8);
    release_all(pa.children, 8);
    weft_future_release(f);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&pa.g);
}

/* ---------------------------------------------------------------------------------------
 * No hangs
 * ------------------------------------------------------------------------------------- */
static void shutdown_without_wait_returns_while_a_task_is_blocked(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct gate g;
    gate_init(&g, (void *)0x99);
    weft_future *f = submit_gate(p, &g);
    /* The task is blocked until we release it: a shutdown that waited would never return. */
    assert_int_equal(weft_pool_shutdown(p, false, false), 0);
    assert_int_equal(weft_future_state(f), WEFT_RUNNING);
    assert_int_equal(weft_pool_shutdown(p, false, true), 0); /* cancel: running one untouched */
    assert_int_equal(weft_future_state(f), WEFT_RUNNING);
    latch_open(g.release);
    assert_int_equal(weft_pool_destroy(p), 0); /* destroy after shutdown(wait=false) */
    void *v = NULL;
    assert_int_equal(weft_future_result(f, 0, &v), 0);
    assert_ptr_equal(v, (void *)0x99);
    weft_future_release(f);
    gate_destroy(&g);
}

static void cancel_just_before_shutdown_wait_does_not_hang(void **state)
{
    (void)state;
    int rounds = SCALED(100);
    for (int r = 0; r < rounds; r++) {
        weft_pool *p = make_pool(1);
        struct gate g;
        gate_init(&g, NULL);
        weft_future *held = submit_gate(p, &g);
        weft_future *fs[4];
        for (int i = 0; i < 4; i++)
            assert_int_equal(weft_submit(p, ident_task, NULL, &fs[i]), 0);
        assert_int_equal(weft_future_cancel(fs[r % 4]), 0);
        latch_open(g.release);
        assert_int_equal(weft_pool_shutdown(p, true, false), 0);
        for (int i = 0; i < 4; i++)
            assert_int_equal(weft_future_state(fs[i]), i == r % 4 ? WEFT_CANCELLED : WEFT_FINISHED);
        release_all(fs, 4);
        weft_future_release(held);
        assert_int_equal(weft_pool_destroy(p), 0);
        gate_destroy(&g);
    }
    /* Without a held worker: the cancel races with the start. */
    for (int r = 0; r < rounds; r++) {
        weft_pool *p = make_pool(2);
        weft_future *f = NULL;
        assert_int_equal(weft_submit(p, ident_task, NULL, &f), 0);
        int rc = weft_future_cancel(f);
        assert_true(rc == 0 || rc == WEFT_ESTATE);
        assert_int_equal(weft_pool_shutdown(p, true, false), 0);
        assert_true(weft_future_done(f));
        weft_future_release(f);
        assert_int_equal(weft_pool_destroy(p), 0);
    }
}

static void shutdown_is_idempotent(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    assert_int_equal(weft_pool_shutdown(NULL, true, false), WEFT_EINVAL);
    assert_int_equal(weft_pool_shutdown(p, true, false), 0);
    assert_int_equal(weft_pool_shutdown(p, true, false), 0);
    assert_int_equal(weft_pool_shutdown(p, false, false), 0);
    assert_int_equal(weft_pool_shutdown(p, false, true), 0);
    assert_int_equal(weft_pool_shutdown(p, true, true), 0);
    weft_future *f = NULL;
    assert_int_equal(weft_submit(p, ident_task, NULL, &f), WEFT_ESHUTDOWN);
    assert_int_equal(weft_pool_destroy(p), 0);

    /* Concurrent shutdowns from several threads. */
    p = make_pool(2);
    struct shutter sh[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        sh[i] = (struct shutter){p, (i & 1) != 0, i >= 2, -1, 0};
        assert_int_equal(pthread_create(&th[i], NULL, shutter_main, &sh[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(sh[i].rc, 0);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
}

struct self_shutdown {
    int wait_rc;
    int destroy_rc;
    int nowait_rc;
    int submit_rc;
};

static void *self_shutdown_task(void *arg)
{
    struct self_shutdown *s = arg;
    weft_pool *p = weft_current_pool();
    s->wait_rc = weft_pool_shutdown(p, true, false);
    s->destroy_rc = weft_pool_destroy(p);
    s->nowait_rc = weft_pool_shutdown(p, false, false);
    weft_future *f = NULL;
    s->submit_rc = weft_submit(p, ident_task, NULL, &f);
    return NULL;
}

static void shutdown_with_wait_from_a_worker_is_refused(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct self_shutdown s = {1, 1, 1, 1};
    weft_future *f = NULL;
    assert_int_equal(weft_submit(p, self_shutdown_task, &s, &f), 0);
    assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), 0);
    assert_int_equal(s.wait_rc, WEFT_EINVAL);
    assert_int_equal(s.destroy_rc, WEFT_EINVAL);
    assert_int_equal(s.nowait_rc, 0); /* without wait it is allowed */
    assert_int_equal(s.submit_rc, WEFT_ESHUTDOWN);
    weft_future_release(f);
    assert_int_equal(weft_pool_destroy(p), 0);
}

struct racing_submitter {
    weft_pool *p;
    weft_future *fs[4096];
    int n;
    int last_rc;
};

static void *racing_submit_main(void *arg)
{
    struct racing_submitter *r = arg;
    for (;;) {
        if (r->n == 4096) {
            r->last_rc = 0;
            break;
        }
        int rc = weft_submit(r->p, ident_task, NULL, &r->fs[r->n]);
        if (rc != 0) {
            r->last_rc = rc;
            break;
        }
        r->n++;
    }
    return NULL;
}

static void shutdown_racing_with_submitters_strands_no_future(void **state)
{
    (void)state;
    /* A submit that succeeded while the pool was shutting down must still run (or, with
     * cancel_futures, be cancelled): none may stay PENDING once shutdown(wait) returned. */
    int rounds = SCALED(60);
    for (int r = 0; r < rounds; r++) {
        bool cancel = (r & 1) != 0;
        weft_pool *p = make_pool(2);
        struct racing_submitter *rs = calloc(2, sizeof(*rs));
        assert_non_null(rs);
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            rs[i].p = p;
            assert_int_equal(pthread_create(&th[i], NULL, racing_submit_main, &rs[i]), 0);
        }
        sleep_ms(r % 3);
        assert_int_equal(weft_pool_shutdown(p, true, cancel), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        for (int i = 0; i < 2; i++) {
            assert_true(rs[i].last_rc == WEFT_ESHUTDOWN || rs[i].last_rc == 0);
            for (int k = 0; k < rs[i].n; k++) {
                int st = weft_future_state(rs[i].fs[k]);
                if (cancel)
                    assert_true(st == WEFT_FINISHED || st == WEFT_CANCELLED);
                else
                    assert_int_equal(st, WEFT_FINISHED);
                weft_future_release(rs[i].fs[k]);
            }
        }
        free(rs);
        assert_int_equal(weft_pool_destroy(p), 0);
    }
}

/* ---------------------------------------------------------------------------------------
 * Initializer, finalizer, broken pool
 * ------------------------------------------------------------------------------------- */
#define MAXW 8
struct lifecycle {
    latch go; /* initializers wait on it when `hold` */
    int hold;
    int fail_worker; /* -1: none fails */
    atomic_int inits[MAXW];
    atomic_int finis[MAXW];
    atomic_int init_total;
    atomic_int bad_index;
    pid_t init_tid[MAXW]; /* the thread each initializer ran on */
    pthread_t init_thread[MAXW];
    atomic_int fini_other_thread;
    pthread_mutex_t m;
    pthread_cond_t c;
};

static void lifecycle_init(struct lifecycle *l, int hold, int fail_worker)
{
    memset(l, 0, sizeof(*l));
    latch_init(&l->go);
    l->hold = hold;
    l->fail_worker = fail_worker;
    pthread_mutex_init(&l->m, NULL);
    pthread_cond_init(&l->c, NULL);
}

static void lifecycle_destroy(struct lifecycle *l)
{
    latch_destroy(&l->go);
    pthread_mutex_destroy(&l->m);
    pthread_cond_destroy(&l->c);
}

static int lc_initializer(void *arg, unsigned worker)
{
    struct lifecycle *l = arg;
    if (worker >= MAXW) {
        atomic_fetch_add(&l->bad_index, 1);
        return 0;
    }
    if (l->hold)
        latch_wait(&l->go);
    l->init_tid[worker] = (pid_t)syscall(SYS_gettid);
    l->init_thread[worker] = pthread_self();
    atomic_fetch_add(&l->inits[worker], 1);
    pthread_mutex_lock(&l->m);
    atomic_fetch_add(&l->init_total, 1);
    pthread_cond_broadcast(&l->c);
    pthread_mutex_unlock(&l->m);
    return (int)worker == l->fail_worker ? -1 : 0;
}

static void lc_finalizer(void *arg, unsigned worker)
{
    struct lifecycle *l = arg;
    if (worker >= MAXW) {
        atomic_fetch_add(&l->bad_index, 1);
        return;
    }
    if (atomic_load(&l->inits[worker]) != 1 ||
        !pthread_equal(l->init_thread[worker], pthread_self()))
        atomic_fetch_add(&l->fini_other_thread, 1);
    atomic_fetch_add(&l->finis[worker], 1);
}

static void lc_wait_inits(struct lifecycle *l, int n)
{
    pthread_mutex_lock(&l->m);
    while (atomic_load(&l->init_total) < n)
        pthread_cond_wait(&l->c, &l->m);
    pthread_mutex_unlock(&l->m);
}

static weft_pool *make_lc_pool(unsigned n, const char *name, struct lifecycle *l)
{
    weft_pool_options o;
    weft_pool_options_init(&o);
    o.num_threads = n;
    o.name = name;
    o.initializer = lc_initializer;
    o.finalizer = lc_finalizer;
    o.init_arg = l;
    weft_pool *p = NULL;
    assert_int_equal(weft_pool_create(&o, &p), 0);
    assert_non_null(p);
    return p;
}

static void initializer_and_finalizer_run_once_per_worker_with_its_index(void **state)
{
    (void)state;
    enum { N = 4 };
    struct lifecycle l;
    lifecycle_init(&l, 0, -1);
    weft_pool *p = make_lc_pool(N, "tinit", &l);
    lc_wait_inits(&l, N);
    /* Each initializer ran on its own worker thread: the one named "tinit_<index>". */
    for (int i = 0; i < N; i++) {
        char want[16], got[32];
        snprintf(want, sizeof(want), "tinit_%d", i);
        assert_string_equal(await_thread_name(l.init_tid[i], want, got, sizeof(got)), want);
    }
    atomic_int runs = 0;
    for (int i = 0; i < 32; i++)
        assert_int_equal(weft_run(p, count_task, &runs, NULL), 0);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&l.bad_index), 0);
    assert_int_equal(atomic_load(&l.init_total), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&l.inits[i]), 1);
        assert_int_equal(atomic_load(&l.finis[i]), 1);
    }
    assert_int_equal(atomic_load(&l.fini_other_thread), 0);
    assert_int_equal(atomic_load(&runs), 32);
    lifecycle_destroy(&l);
}

static void failing_initializer_breaks_the_pool(void **state)
{
    (void)state;
    enum { N = 3 };
    struct lifecycle l;
    lifecycle_init(&l, 1, 1); /* held until we submitted; worker 1 fails */
    weft_pool *p = make_lc_pool(N, "tbroken", &l);
    atomic_int runs = 0;
    weft_future *pending[5];
    for (int i = 0; i < 5; i++)
        assert_int_equal(weft_submit(p, count_task, &runs, &pending[i]), 0);
    latch_open(&l.go);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(weft_future_result(pending[i], WEFT_FOREVER, NULL), WEFT_EBROKEN);
        assert_int_equal(weft_future_state(pending[i]), WEFT_FAILED);
        assert_int_equal(weft_future_error(pending[i]), WEFT_EBROKEN);
    }
    lc_wait_inits(&l, N);
    /* Every later submit fails. */
    for (int i = 0; i < 3; i++) {
        weft_future *f = (weft_future *)0x1;
        assert_int_equal(weft_submit(p, count_task, &runs, &f), WEFT_EBROKEN);
        assert_null(f);
    }
    assert_int_equal(weft_run(p, count_task, &runs, NULL), WEFT_EBROKEN);
    assert_int_equal(weft_pool_shutdown(p, true, false), 0);
    weft_future *f = (weft_future *)0x1;
    assert_int_equal(weft_submit(p, count_task, &runs, &f), WEFT_EBROKEN); /* still broken */
    assert_null(f);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&runs), 0);
    /* Finalizers ran on the workers whose initializer succeeded (even though another's
     * failed), once each. */
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&l.inits[i]), 1);
        if (i != 1)
            assert_int_equal(atomic_load(&l.finis[i]), 1);
        else
            assert_true(atomic_load(&l.finis[i]) <= 1);
    }
    assert_int_equal(atomic_load(&l.fini_other_thread), 0);
    release_all(pending, 5);
    lifecycle_destroy(&l);
}

static void failing_initializer_breaks_the_pool_for_submits_racing_with_it(void **state)
{
    (void)state;
    /* Without holding the initializers: whatever the interleaving, each submit either fails
     * with WEFT_EBROKEN or gives a future that fails with it; no task ever runs. */
    int rounds = SCALED(50);
    for (int r = 0; r < rounds; r++) {
        struct lifecycle l;
        lifecycle_init(&l, 0, r % 2);
        weft_pool *p = make_lc_pool(2, "tbroken2", &l);
        atomic_int runs = 0;
        for (int i = 0; i < 20; i++) {
            weft_future *f = NULL;
            int rc = weft_submit(p, count_task, &runs, &f);
            if (rc == 0) {
                assert_int_equal(weft_future_result(f, WEFT_FOREVER, NULL), WEFT_EBROKEN);
                weft_future_release(f);
            } else {
                assert_int_equal(rc, WEFT_EBROKEN);
            }
        }
        assert_int_equal(weft_pool_destroy(p), 0);
        assert_int_equal(atomic_load(&runs), 0);
        lifecycle_destroy(&l);
    }
}

/* ---------------------------------------------------------------------------------------
 * Threads: names, and none left behind
 * ------------------------------------------------------------------------------------- */
static void worker_threads_are_named_prefix_index(void **state)
{
    (void)state;
    enum { N = 3 };
    struct lifecycle l;
    lifecycle_init(&l, 0, -1);
    weft_pool *p = make_lc_pool(N, "tnames", &l);
    lc_wait_inits(&l, N);
    for (int i = 0; i < N; i++) {
        char want[16];
        snprintf(want, sizeof(want), "tnames_%d", i);
        assert_int_equal(await_thread_count(want, 1), 1);
    }
    assert_int_equal(count_threads("tnames_3", NULL), 0);
    assert_int_equal(weft_pool_destroy(p), 0);
    for (int i = 0; i < N; i++) {
        char want[16];
        snprintf(want, sizeof(want), "tnames_%d", i);
        assert_int_equal(count_threads(want, NULL), 0); /* joined */
    }
    lifecycle_destroy(&l);
}

static void worker_threads_are_named_weft_index_by_default(void **state)
{
    (void)state;
    enum { N = 2 };
    struct lifecycle l;
    lifecycle_init(&l, 0, -1);
    weft_pool *p = make_lc_pool(N, NULL, &l);
    lc_wait_inits(&l, N);
    assert_int_equal(await_thread_count("weft_0", 1), 1);
    assert_int_equal(await_thread_count("weft_1", 1), 1);
    char got[32];
    assert_string_equal(await_thread_name(l.init_tid[0], "weft_0", got, sizeof(got)), "weft_0");
    assert_string_equal(await_thread_name(l.init_tid[1], "weft_1", got, sizeof(got)), "weft_1");
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(count_threads("weft_0", NULL), 0);
    lifecycle_destroy(&l);
}

static void worker_threads_with_a_long_prefix_keep_their_index(void **state)
{
    (void)state;
    /* Linux keeps 15 characters: the prefix is cut, not the "_N" telling workers apart. */
    enum { N = 2 };
    struct lifecycle l;
    lifecycle_init(&l, 0, -1);
    weft_pool *p = make_lc_pool(N, "averyverylongprefix", &l);
    lc_wait_inits(&l, N);
    assert_int_equal(await_thread_count("averyverylong_0", 1), 1);
    assert_int_equal(await_thread_count("averyverylong_1", 1), 1);
    assert_int_equal(weft_pool_destroy(p), 0);
    lifecycle_destroy(&l);
}

static void pools_created_and_destroyed_100_times_leave_no_threads_behind(void **state)
{
    (void)state;
    /* The process-wide "weft_timer" thread, started once on the first timeout, stays: use
     * one now so that it exists before the count, and leave it out of the count anyway. */
    weft_future *t = NULL;
    assert_int_equal(weft_future_create(&t), 0);
    assert_int_equal(weft_future_set_timeout(t, 0), 0);
    assert_int_equal(weft_future_result(t, WEFT_FOREVER, NULL), WEFT_ECANCELED);
    weft_future_release(t);
    assert_int_equal(count_threads("weft_timer", NULL), 1);

    int before = count_threads(NULL, "weft_timer");
    for (int i = 0; i < 100; i++) {
        weft_pool *p = make_pool(1 + i % 3);
        atomic_int runs = 0;
        assert_int_equal(weft_run(p, count_task, &runs, NULL), 0);
        if (i % 4 == 1)
            assert_int_equal(weft_pool_shutdown(p, false, false), 0);
        if (i % 4 == 2)
            assert_int_equal(weft_pool_shutdown(p, false, true), 0);
        assert_int_equal(weft_pool_destroy(p), 0);
    }
    assert_int_equal(count_threads(NULL, "weft_timer"), before);
    assert_int_equal(count_threads("weft_timer", NULL), 1);
}

/* ---------------------------------------------------------------------------------------
 * References
 * ------------------------------------------------------------------------------------- */
struct owned_arg {
    atomic_int *freed;
    int payload;
};

static void *use_owned(void *arg)
{
    struct owned_arg *a = arg;
    return (void *)(intptr_t)a->payload;
}

static void free_owned_cb(weft_future *f, void *arg)
{
    (void)f;
    struct owned_arg *a = arg;
    atomic_fetch_add(a->freed, 1);
    free(a);
}

static void no_stale_references_after_shutdown(void **state)
{
    (void)state;
    /* Futures released by their submitter before they ran: the pool's own references keep
     * them alive until they complete or are cancelled, then they are freed; each task's
     * argument is freed by a done-callback, which runs for cancelled ones too. Nothing may
     * leak (LSan at exit) nor be used after free (ASan). */
    for (int cancel = 0; cancel <= 1; cancel++) {
        weft_pool *p = make_pool(2);
        struct gate g[2];
        weft_future *held[2];
        for (int i = 0; i < 2; i++) {
            gate_init(&g[i], NULL);
            held[i] = submit_gate(p, &g[i]);
        }
        enum { N = 40 };
        atomic_int freed = 0;
        for (int i = 0; i < N; i++) {
            struct owned_arg *a = malloc(sizeof(*a));
            assert_non_null(a);
            a->freed = &freed;
            a->payload = i;
            weft_future *f = NULL;
            assert_int_equal(weft_submit(p, use_owned, a, &f), 0);
            assert_int_equal(weft_future_add_done_callback(f, free_owned_cb, a), 0);
            weft_future_release(f);
        }
        assert_int_equal(weft_pool_shutdown(p, false, cancel != 0), 0);
        if (cancel)
            assert_int_equal(atomic_load(&freed), N); /* all cancelled, callbacks ran */
        for (int i = 0; i < 2; i++)
            latch_open(g[i].release);
        assert_int_equal(weft_pool_destroy(p), 0);
        assert_int_equal(atomic_load(&freed), N);
        release_all(held, 2);
        for (int i = 0; i < 2; i++)
            gate_destroy(&g[i]);
    }
}

static void futures_stay_valid_after_their_pool_is_destroyed(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    weft_future *ok = NULL, *cancelled = NULL;
    struct gate g;
    gate_init(&g, NULL);
    weft_future *held[2];
    assert_int_equal(weft_submit(p, ident_task, (void *)0x31, &ok), 0);
    assert_int_equal(weft_future_result(ok, WEFT_FOREVER, NULL), 0);
    held[0] = submit_gate(p, &g);
    struct gate g2;
    gate_init(&g2, NULL);
    held[1] = submit_gate(p, &g2);
    assert_int_equal(weft_submit(p, ident_task, NULL, &cancelled), 0);
    assert_int_equal(weft_pool_shutdown(p, false, true), 0);
    latch_open(g.release);
    latch_open(g2.release);
    assert_int_equal(weft_pool_destroy(p), 0);
    void *v = NULL;
    assert_int_equal(weft_future_result(ok, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)0x31);
    assert_int_equal(weft_future_state(ok), WEFT_FINISHED);
    assert_int_equal(weft_future_result(cancelled, 1 * MS, NULL), WEFT_ECANCELED);
    assert_int_equal(weft_future_cancel(cancelled), 0);
    assert_int_equal(weft_future_cancel(ok), WEFT_ESTATE);
    atomic_int freed = 0;
    struct owned_arg *a = malloc(sizeof(*a));
    assert_non_null(a);
    a->freed = &freed;
    assert_int_equal(weft_future_add_done_callback(ok, free_owned_cb, a), 0); /* at once */
    assert_int_equal(atomic_load(&freed), 1);
    weft_future_release(ok);
    weft_future_release(cancelled);
    release_all(held, 2);
    gate_destroy(&g);
    gate_destroy(&g2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(submit_after_shutdown_returns_eshutdown),
        cmocka_unit_test(submit_from_inside_a_task_after_shutdown_returns_eshutdown),
        cmocka_unit_test(shutdown_wait_drains_queued_work),
        cmocka_unit_test(shutdown_wait_drains_work_queued_on_a_worker_deque),
        cmocka_unit_test(shutdown_cancel_futures_cancels_queued_work_and_lets_running_work_finish),
        cmocka_unit_test(shutdown_cancel_futures_also_cancels_work_queued_on_a_worker_deque),
        cmocka_unit_test(shutdown_without_wait_returns_while_a_task_is_blocked),
        cmocka_unit_test(cancel_just_before_shutdown_wait_does_not_hang),
        cmocka_unit_test(shutdown_is_idempotent),
        cmocka_unit_test(shutdown_with_wait_from_a_worker_is_refused),
        cmocka_unit_test(shutdown_racing_with_submitters_strands_no_future),
        cmocka_unit_test(initializer_and_finalizer_run_once_per_worker_with_its_index),
        cmocka_unit_test(failing_initializer_breaks_the_pool),
        cmocka_unit_test(failing_initializer_breaks_the_pool_for_submits_racing_with_it),
        cmocka_unit_test(worker_threads_are_named_prefix_index),
        cmocka_unit_test(worker_threads_are_named_weft_index_by_default),
        cmocka_unit_test(worker_threads_with_a_long_prefix_keep_their_index),
        cmocka_unit_test(pools_created_and_destroyed_100_times_leave_no_threads_behind),
        cmocka_unit_test(no_stale_references_after_shutdown),
        cmocka_unit_test(futures_stay_valid_after_their_pool_is_destroyed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
