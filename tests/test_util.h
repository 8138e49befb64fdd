/*
 * Helpers shared by the cmocka tests that link libweft: latches, a gate that holds a task in
 * RUNNING, pool and promise constructors, and a few trivial task functions.
 *
 * Everything is static inline, so a test that does not use a helper gets no warning for it.
 * Assertions inside these helpers run on the calling thread: call the asserting ones (those
 * that create pools or promises) from the test's main thread only.
 */
#ifndef WEFT_TEST_UTIL_H
#define WEFT_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "weft.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

/* Stress sizes shrink under the sanitizers (tests/CMakeLists.txt sets the scale); never to 0. */
#ifndef WEFT_STRESS_SCALE
#define WEFT_STRESS_SCALE 1
#endif
#define SCALED(n) ((n) / WEFT_STRESS_SCALE > 0 ? (n) / WEFT_STRESS_SCALE : 1)

#define MS 1000000LL /* nanoseconds */

/* A one-shot latch (mutex + condition variable): wait blocks until someone opens it. */
typedef struct latch {
    pthread_mutex_t m;
    pthread_cond_t c;
    int open;
} latch;

static inline void latch_init(latch *l)
{
    pthread_mutex_init(&l->m, NULL);
    pthread_cond_init(&l->c, NULL);
    l->open = 0;
}

static inline void latch_open(latch *l)
{
    pthread_mutex_lock(&l->m);
    l->open = 1;
    pthread_cond_broadcast(&l->c);
    pthread_mutex_unlock(&l->m);
}

static inline void latch_wait(latch *l)
{
    pthread_mutex_lock(&l->m);
    while (!l->open)
        pthread_cond_wait(&l->c, &l->m);
    pthread_mutex_unlock(&l->m);
}

static inline void latch_destroy(latch *l)
{
    pthread_cond_destroy(&l->c);
    pthread_mutex_destroy(&l->m);
}

/* A latch on the heap, for one a worker may still touch after the test's frame is gone. */
static inline latch *latch_new(void)
{
    latch *l = malloc(sizeof(*l));
    assert_non_null(l);
    latch_init(l);
    return l;
}

static inline void latch_free(latch *l)
{
    latch_destroy(l);
    free(l);
}

/* Sleeps ms milliseconds, resuming after signals. */
static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A pool of n workers whose threads are named after `name` (NULL: the default) and whose
 * idle workers spin for spin_ns before they park (-1: the default); asserts that creation
 * worked. */
static inline weft_pool *make_pool_with(unsigned n, const char *name, int64_t spin_ns)
{
    weft_pool_options o;
    weft_pool_options_init(&o);
    o.num_threads = n;
    if (name != NULL)
        o.name = name;
    o.spin_ns = spin_ns;
    weft_pool *p = NULL;
    assert_int_equal(weft_pool_create(&o, &p), 0);
    assert_non_null(p);
    return p;
}

static inline weft_pool *make_pool_named(unsigned n, const char *name)
{
    return make_pool_with(n, name, -1);
}

/* A promise (a future no task completes), PENDING until the test completes it. */
static inline weft_future *promise(void)
{
    weft_future *f = NULL;
    assert_int_equal(weft_future_create(&f), 0);
    assert_non_null(f);
    return f;
}

/* A promise already FINISHED with value v. */
static inline weft_future *promise_done(void *v)
{
    weft_future *f = promise();
    assert_int_equal(weft_future_set_value(f, v), 0);
    return f;
}

/* A promise already FINISHED with error `code`. */
static inline weft_future *promise_failed(int code)
{
    weft_future *f = promise();
    assert_int_equal(weft_future_set_error(f, code, "failed on purpose"), 0);
    return f;
}

/* A promise already CANCELLED. */
static inline weft_future *promise_cancelled(void)
{
    weft_future *f = promise();
    assert_int_equal(weft_future_cancel(f), 0);
    return f;
}

/* A task that counts its runs, announces it started, then blocks until released: holds a
 * worker (and its future) in RUNNING for as long as the test wants. Once released it marks
 * itself finished and returns `ret`, or fails with `fail_code` when that is set (non-zero). */
struct gate {
    latch *started; /* on the heap: a worker left waiting by a failed test never blocks on */
    latch *release; /* (or writes to) a later test's stack frame */
    void *ret;
    int fail_code;
    atomic_int runs;
    atomic_int finished;
};

static inline void gate_init(struct gate *g, void *ret)
{
    g->started = latch_new();
    g->release = latch_new();
    g->ret = ret;
    g->fail_code = 0;
    atomic_init(&g->runs, 0);
    atomic_init(&g->finished, 0);
}

static inline void gate_destroy(struct gate *g)
{
    latch_free(g->started);
    latch_free(g->release);
}

static inline void *gate_task(void *arg)
{
    struct gate *g = arg;
    atomic_fetch_add(&g->runs, 1);
    /* Read before announcing the start (which the test waits for): if a failed test never
     * releases the gate, this worker touches the test's stack frame no more. */
    latch *release = g->release;
    latch_open(g->started);
    latch_wait(release);
    atomic_store(&g->finished, 1);
    if (g->fail_code != 0)
        return weft_fail(g->fail_code, "gate failed late");
    return g->ret;
}

/* Submits a gate task to p and returns its future once the task is RUNNING. */
static inline weft_future *submit_gate(weft_pool *p, struct gate *g)
{
    weft_future *f = NULL;
    assert_int_equal(weft_submit(p, gate_task, g, &f), 0);
    latch_wait(g->started);
    return f;
}

/* Task: increments the atomic_int at arg, returns arg. */
static inline void *count_task(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return arg;
}

/* Task: returns its argument. */
static inline void *ident_task(void *arg)
{
    return arg;
}

/* A task of a few microseconds: keeps completions flowing while a wait runs. */
static inline void *spin_task(void *arg)
{
    int64_t end = weft_now_ns() + 3000;
    while (weft_now_ns() < end) {
    }
    return arg;
}

/* Done-callback: increments the atomic_int at arg. */
static inline void cnt_cb(weft_future *f, void *arg)
{
    (void)f;
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* Releases the first n futures of fs. */
static inline void release_all(weft_future **fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        weft_future_release(fs[i]);
}

#endif /* WEFT_TEST_UTIL_H */
