/*
 * The pool: life cycle (threads and memory come back), options, worker names, submission
 * from outside and inside, a million-future stress, statistics, parking, shutdown in all
 * its modes, initializers and finalizers, and argument checking.
 *
 * Assertions are made on the main thread only (cmocka's failure path longjmps): helper
 * threads and tasks record what they saw, the test checks it afterwards.
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
#include <limits.h>
#include <sched.h>
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

/* Polls cond for up to 20 s (a bound against hangs, not a performance expectation). */
#define EVENTUALLY(cond)                                                                           \
    do {                                                                                           \
        for (int ev_i_ = 0; ev_i_ < 20000 && !(cond); ev_i_++)                                     \
            sleep_ms(1);                                                                           \
    } while (0)

static weft_pool *make_pool(unsigned n)
{
    return make_pool_named(n, "tpool");
}

/* Idle workers spin for spin_ns before they park (-1: the default, 0: park at once). */
static const int64_t spin_settings[] = {-1, 0};

static int count_threads(void);

/* The thread count with no pool alive, once the runtime's lazily started threads (a
 * sanitizer's background thread starts with the first pthread_create) exist. */
static int thread_baseline(void)
{
    weft_pool_options o;
    weft_pool_options_init(&o);
    o.num_threads = 1;
    weft_pool *p = NULL;
    assert_int_equal(weft_pool_create(&o, &p), 0);
    assert_int_equal(weft_pool_destroy(p), 0);
    int base = count_threads();
    for (int i = 0; i < 100; i++) { /* a joined worker may linger in /proc a moment */
        sleep_ms(1);
        int now = count_threads();
        if (now < base)
            base = now, i = 0;
    }
    return base;
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Collects the comm names of this process's threads into names[] (up to max). */
static int thread_names(char names[][16], int max)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] == '.')
            continue;
        char path[300];
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *fp = fopen(path, "r");
        if (fp == NULL)
            continue; /* the thread exited meanwhile */
        char buf[32] = {0};
        if (fgets(buf, sizeof(buf), fp) != NULL) {
            buf[strcspn(buf, "\n")] = '\0';
            snprintf(names[n], 16, "%.15s", buf); /* comm: at most 15 characters */
            n++;
        }
        fclose(fp);
    }
    closedir(d);
    return n;
}

static bool has_thread_named(const char *name)
{
    char names[256][16];
    int n = thread_names(names, 256);
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static int threads_with_prefix(const char *prefix)
{
    char names[256][16];
    int n = thread_names(names, 256), c = 0;
    for (int i = 0; i < n; i++)
        if (strncmp(names[i], prefix, strlen(prefix)) == 0)
            c++;
    return c;
}

/* ---------------------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------------------- */
static void pool_create_destroy_repeatedly_leaks_no_thread(void **state)
{
    (void)state;
    const int base = thread_baseline();
    assert_true(base >= 1);
    for (int round = 0; round < 50; round++) {
        weft_pool *p = make_pool(1 + (unsigned)round % 4);
        assert_int_equal(count_threads(), base + 1 + round % 4);
        if (round % 2 == 0) { /* with and without work */
            atomic_int ran = 0;
            assert_int_equal(weft_run(p, count_task, &ran, NULL), 0);
            assert_int_equal(atomic_load(&ran), 1);
        }
        assert_int_equal(weft_pool_destroy(p), 0);
        /* Joined threads may linger in /proc for a moment after pthread_join. */
        EVENTUALLY(count_threads() == base);
        assert_int_equal(count_threads(), base);
    }
}

static void *whoami_task(void *arg)
{
    weft_pool **where = arg;
    *where = weft_current_pool();
    return (void *)(intptr_t)weft_current_worker();
}

struct cross {
    weft_pool *other;
    void *value;
    int rc;
};

static void *cross_pool_task(void *arg)
{
    struct cross *c = arg;
    weft_future *f = NULL;
    c->rc = weft_submit(c->other, ident_task, (void *)0xc0, &f);
    if (c->rc == 0) {
        c->rc = weft_future_result(f, WEFT_FOREVER, &c->value);
        weft_future_release(f);
    }
    return NULL;
}

static void pool_several_pools_live_at_once(void **state)
{
    (void)state;
    const int base = thread_baseline();
    weft_pool *a = make_pool_named(2, "pa"), *b = make_pool_named(3, "pb"),
              *c = make_pool_named(1, "pc");
    assert_int_equal(count_threads(), base + 6);
    weft_pool *pools[3] = {a, b, c};
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 3; i++) {
            weft_pool *where = NULL;
            void *w = NULL;
            assert_int_equal(weft_run(pools[i], whoami_task, &where, &w), 0);
            assert_ptr_equal(where, pools[i]);
            assert_true((intptr_t)w >= 0 && (intptr_t)w < (intptr_t)weft_pool_size(pools[i]));
        }
    }
    /* A task of one pool waits for a future of another. */
    struct cross x = {b, NULL, -1};
    assert_int_equal(weft_run(c, cross_pool_task, &x, NULL), 0);
    assert_int_equal(x.rc, 0);
    assert_ptr_equal(x.value, (void *)0xc0);
    assert_int_equal(weft_pool_destroy(b), 0); /* the others live on */
    assert_int_equal(weft_run(a, ident_task, NULL, NULL), 0);
    assert_int_equal(weft_run(c, ident_task, NULL, NULL), 0);
    assert_int_equal(weft_pool_destroy(a), 0);
    assert_int_equal(weft_pool_destroy(c), 0);
    EVENTUALLY(count_threads() == base);
    assert_int_equal(count_threads(), base);
}

static void pool_num_threads_option_is_honoured(void **state)
{
    (void)state;
    const unsigned sizes[] = {1, 2, 3, 7, 16};
    const int base = thread_baseline();
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        weft_pool *p = make_pool(sizes[i]);
        assert_int_equal(weft_pool_size(p), sizes[i]);
        assert_int_equal(count_threads(), base + (int)sizes[i]);
        weft_stats s;
        assert_int_equal(weft_pool_worker_stats(p, sizes[i] - 1, &s), 0);
        assert_int_equal(weft_pool_worker_stats(p, sizes[i], &s), WEFT_EINVAL);
        assert_int_equal(weft_pool_destroy(p), 0);
    }
    /* 0 = automatic: at least one worker. */
    weft_pool_options o;
    weft_pool_options_init(&o);
    weft_pool *p = NULL;
    assert_int_equal(weft_pool_create(&o, &p), 0);
    assert_true(weft_pool_size(p) >= 1 && weft_pool_size(p) <= 1024);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(weft_pool_create(NULL, &p), 0); /* NULL options: all defaults */
    assert_true(weft_pool_size(p) >= 1);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(weft_pool_size(NULL), 0);
}

static void pool_worker_threads_are_named_prefix_index(void **state)
{
    (void)state;
    weft_pool *p = make_pool_named(3, "tnam");
    /* Workers name themselves as they start. */
    EVENTUALLY(threads_with_prefix("tnam_") == 3);
    assert_true(has_thread_named("tnam_0"));
    assert_true(has_thread_named("tnam_1"));
    assert_true(has_thread_named("tnam_2"));
    assert_int_equal(threads_with_prefix("tnam_"), 3);
    assert_int_equal(weft_pool_destroy(p), 0);
    EVENTUALLY(threads_with_prefix("tnam_") == 0);
    assert_int_equal(threads_with_prefix("tnam_"), 0);

    /* NULL name: "weft". */
    weft_pool_options o;
    weft_pool_options_init(&o);
    o.num_threads = 2;
    assert_int_equal(weft_pool_create(&o, &p), 0);
    EVENTUALLY(has_thread_named("weft_0") && has_thread_named("weft_1"));
    assert_true(has_thread_named("weft_0"));
    assert_true(has_thread_named("weft_1"));
    assert_int_equal(weft_pool_destroy(p), 0);

    /* A long prefix is cut to the 15 characters Linux keeps; the option string need not
     * outlive the call. */
    char name[64];
    snprintf(name, sizeof(name), "%s", "longprefixpool_abcdefgh");
    o.name = name;
    o.num_threads = 2;
    assert_int_equal(weft_pool_create(&o, &p), 0);
    memset(name, 0, sizeof(name));
    EVENTUALLY(threads_with_prefix("longprefix") == 2);
    assert_int_equal(threads_with_prefix("longprefix"), 2);
    char names[256][16];
    int n = thread_names(names, 256);
    for (int i = 0; i < n; i++)
        if (strncmp(names[i], "longprefix", 10) == 0)
            assert_true(strlen(names[i]) <= 15);
    assert_int_equal(weft_pool_destroy(p), 0);
}

/* ---------------------------------------------------------------------------------------
 * Stress: a million futures from four outside threads
 * ------------------------------------------------------------------------------------- */
#define STRESS_N     (1000000 / WEFT_STRESS_SCALE)
#define STRESS_SUBS  4
#define STRESS_BATCH 512

static atomic_int *g_stress_counts;

static void *stress_task(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    atomic_fetch_add_explicit(&g_stress_counts[i], 1, memory_order_relaxed);
    return (void *)(i * 2 + 1);
}

struct stress_sub {
    weft_pool *p;
    size_t lo, hi;
    long bad_submit, bad_result;
};

static void *stress_submitter(void *arg)
{
    struct stress_sub *s = arg;
    weft_future *fs[STRESS_BATCH];
    for (size_t base = s->lo; base < s->hi; base += STRESS_BATCH) {
        size_t n = s->hi - base < STRESS_BATCH ? s->hi - base : STRESS_BATCH;
        for (size_t k = 0; k < n; k++)
            if (weft_submit(s->p, stress_task, (void *)(uintptr_t)(base + k), &fs[k]) != 0) {
                s->bad_submit++;
                fs[k] = NULL;
            }
        for (size_t k = 0; k < n; k++) {
            if (fs[k] == NULL)
                continue;
            void *v = NULL;
            if (weft_future_result(fs[k], WEFT_FOREVER, &v) != 0 ||
                v != (void *)((base + k) * 2 + 1))
                s->bad_result++;
            weft_future_release(fs[k]);
        }
    }
    return NULL;
}

static void pool_stress_million_futures_from_four_threads_each_runs_once(void **state)
{
    (void)state;
    g_stress_counts = calloc(STRESS_N, sizeof(*g_stress_counts));
    assert_non_null(g_stress_counts);
    weft_pool *p = make_pool(2);
    pthread_t t[STRESS_SUBS];
    struct stress_sub subs[STRESS_SUBS];
    size_t per = STRESS_N / STRESS_SUBS;
    for (int i = 0; i < STRESS_SUBS; i++) {
        subs[i] = (struct stress_sub){
            p, per * (size_t)i, i == STRESS_SUBS - 1 ? STRESS_N : per * (size_t)(i + 1), 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, stress_submitter, &subs[i]), 0);
    }
    for (int i = 0; i < STRESS_SUBS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(subs[i].bad_submit, 0);
        assert_int_equal(subs[i].bad_result, 0);
    }
    assert_int_equal(weft_pool_shutdown(p, true, false), 0);
    for (size_t i = 0; i < STRESS_N; i++)
        if (atomic_load(&g_stress_counts[i]) != 1)
            fail_msg("item %zu ran %d times", i, atomic_load(&g_stress_counts[i]));
    weft_stats s;
    assert_int_equal(weft_pool_stats(p, &s), 0);
    assert_true(s.tasks_run >= STRESS_N);
    assert_int_equal(s.submits, STRESS_N); /* every outside submission, counted once */
    assert_int_equal(weft_pool_destroy(p), 0);
    free(g_stress_counts);
    g_stress_counts = NULL;
}

/* Outside submitters that only release: every future still runs exactly once. */
static void *stress_fire_and_forget(void *arg)
{
    struct stress_sub *s = arg;
    for (size_t i = s->lo; i < s->hi; i++) {
        weft_future *f = NULL;
        if (weft_submit(s->p, stress_task, (void *)(uintptr_t)i, &f) != 0)
            s->bad_submit++;
        weft_future_release(f);
    }
    return NULL;
}

static void pool_stress_released_futures_each_run_once(void **state)
{
    (void)state;
    const size_t n = SCALED(200000);
    g_stress_counts = calloc(n, sizeof(*g_stress_counts));
    assert_non_null(g_stress_counts);
    weft_pool *p = make_pool(3);
    pthread_t t[STRESS_SUBS];
    struct stress_sub subs[STRESS_SUBS];
    for (int i = 0; i < STRESS_SUBS; i++) {
        subs[i] =
            (struct stress_sub){p, n / STRESS_SUBS * (size_t)i,
                                i == STRESS_SUBS - 1 ? n : n / STRESS_SUBS * (size_t)(i + 1), 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, stress_fire_and_forget, &subs[i]), 0);
    }
    for (int i = 0; i < STRESS_SUBS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(subs[i].bad_submit, 0);
    }
    assert_int_equal(weft_pool_destroy(p), 0); /* waits for the queued work */
    for (size_t i = 0; i < n; i++)
        if (atomic_load(&g_stress_counts[i]) != 1)
            fail_msg("item %zu ran %d times", i, atomic_load(&g_stress_counts[i]));
    free(g_stress_counts);
    g_stress_counts = NULL;
}

/* ---------------------------------------------------------------------------------------
 * Submission from inside, current pool/worker
 * ------------------------------------------------------------------------------------- */
struct child_seen {
    weft_pool *pool;
    int worker;
};

static void *child_task(void *arg)
{
    struct child_seen *c = arg;
    c->pool = weft_current_pool();
    c->worker = weft_current_worker();
    return (void *)c;
}

#define CHILDREN 32
struct parent {
    struct child_seen seen[CHILDREN];
    int submit_rc[CHILDREN];
    int result_rc[CHILDREN];
    void *value[CHILDREN];
};

static void *parent_task(void *arg)
{
    struct parent *pa = arg;
    weft_future *fs[CHILDREN];
    weft_pool *self = weft_current_pool();
    for (int i = 0; i < CHILDREN; i++)
        pa->submit_rc[i] = weft_submit(self, child_task, &pa->seen[i], &fs[i]);
    for (int i = CHILDREN - 1; i >= 0; i--) { /* waiting inside a worker: it helps */
        if (pa->submit_rc[i] != 0)
            continue;
        pa->result_rc[i] = weft_future_result(fs[i], WEFT_FOREVER, &pa->value[i]);
        weft_future_release(fs[i]);
    }
    return NULL;
}

static void check_submit_from_inside(unsigned workers)
{
    weft_pool *p = make_pool(workers);
    struct parent pa;
    memset(&pa, 0, sizeof(pa));
    assert_int_equal(weft_run(p, parent_task, &pa, NULL), 0);
    for (int i = 0; i < CHILDREN; i++) {
        assert_int_equal(pa.submit_rc[i], 0);
        assert_int_equal(pa.result_rc[i], 0);
        assert_ptr_equal(pa.value[i], &pa.seen[i]);
        assert_ptr_equal(pa.seen[i].pool, p); /* ran on one of this pool's workers */
        assert_true(pa.seen[i].worker >= 0 && pa.seen[i].worker < (int)workers);
    }
    weft_stats s;
    assert_int_equal(weft_pool_stats(p, &s), 0);
    assert_true(s.spawns >= CHILDREN); /* pushed onto the worker's own deque */
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void pool_submit_from_inside_task_runs_on_worker(void **state)
{
    (void)state;
    check_submit_from_inside(1); /* the only worker waits for its own children */
    check_submit_from_inside(2);
}

static void pool_current_pool_is_null_outside_workers(void **state)
{
    (void)state;
    assert_null(weft_current_pool());
    assert_int_equal(weft_current_worker(), -1);
    weft_pool *p = make_pool(2);
    struct child_seen c = {NULL, -1};
    assert_int_equal(weft_run(p, child_task, &c, NULL), 0);
    assert_ptr_equal(c.pool, p);
    assert_true(c.worker == 0 || c.worker == 1);
    assert_null(weft_current_pool());
    assert_int_equal(weft_current_worker(), -1);
    assert_int_equal(weft_pool_destroy(p), 0);
}

/* ---------------------------------------------------------------------------------------
 * Statistics and parking
 * ------------------------------------------------------------------------------------- */
static void *spawning_task(void *arg)
{
    atomic_int *executed = arg;
    weft_task t[16];
    int spawned = 0;
    for (int i = 0; i < 16; i++)
        if (weft_spawn(&t[i], count_task, executed) == 0)
            spawned++;
    for (int i = spawned - 1; i >= 0; i--)
        weft_join(&t[i], NULL);
    atomic_fetch_add(executed, 1);
    return (void *)(intptr_t)spawned;
}

static void pool_stats_totals_are_consistent(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    atomic_int executed = 0;
    const int outside = 200;
    weft_future *fs[200];
    for (int i = 0; i < outside; i++)
        assert_int_equal(weft_submit(p, i % 2 ? spawning_task : count_task, &executed, &fs[i]), 0);
    int spawned = 0;
    for (int i = 0; i < outside; i++) {
        void *v = NULL;
        assert_int_equal(weft_future_result(fs[i], WEFT_FOREVER, &v), 0);
        if (i % 2)
            spawned += (int)(intptr_t)v;
        weft_future_release(fs[i]);
    }
    assert_int_equal(spawned, 100 * 16);
    assert_int_equal(weft_pool_shutdown(p, true, false), 0); /* quiescent from here */
    assert_int_equal(atomic_load(&executed), outside + spawned);

    weft_stats total, sum, w;
    assert_int_equal(weft_pool_stats(p, &total), 0);
    memset(&sum, 0, sizeof(sum));
    for (unsigned i = 0; i < weft_pool_size(p); i++) {
        assert_int_equal(weft_pool_worker_stats(p, i, &w), 0);
        sum.tasks_run += w.tasks_run;
        sum.spawns += w.spawns;
        sum.submits += w.submits;
        sum.steals += w.steals;
        sum.parks += w.parks;
        sum.inline_joins += w.inline_joins;
    }
    /* The total is the sum of the workers' counters. */
    assert_int_equal(total.tasks_run, sum.tasks_run);
    assert_int_equal(total.spawns, sum.spawns);
    assert_int_equal(total.submits, sum.submits);
    assert_int_equal(total.steals, sum.steals);
    assert_int_equal(total.parks, sum.parks);
    assert_int_equal(total.inline_joins, sum.inline_joins);
    /* Every future and every spawned task executed is counted in tasks_run. */
    assert_int_equal(total.submits, outside);
    assert_true(total.spawns >= (uint64_t)spawned);
    assert_true(total.inline_joins <= (uint64_t)spawned);
    assert_true(total.steals <= (uint64_t)spawned);
    assert_int_equal(weft_pool_destroy(p), 0);
    /* Exactly: the inline joins are derived from the other counters (nothing counts them on
     * the join's fast path), and at quiescence the derivation is exact. */
    if (total.tasks_run != (uint64_t)(outside + spawned))
        fail_msg("tasks_run = %llu, but %d futures and %d spawned tasks ran (inline_joins = "
                 "%llu, steals = %llu)",
                 (unsigned long long)total.tasks_run, outside, spawned,
                 (unsigned long long)total.inline_joins, (unsigned long long)total.steals);
}

static void pool_idle_workers_park(void **state)
{
    (void)state;
    for (size_t k = 0; k < 2; k++) {
        weft_pool *p = make_pool_with(2, NULL, spin_settings[k]);
        atomic_int ran = 0;
        for (int i = 0; i < 100; i++)
            assert_int_equal(weft_run(p, count_task, &ran, NULL), 0);
        /* With nothing to do, the workers go to sleep on their futex. */
        weft_stats s;
        memset(&s, 0, sizeof(s));
        EVENTUALLY((weft_pool_stats(p, &s), s.parks > 0));
        assert_true(s.parks > 0);
        /* ... and parked workers still wake up for new work. */
        EVENTUALLY((weft_pool_stats(p, &s), s.parks >= 2));
        for (int i = 0; i < 100; i++)
            assert_int_equal(weft_run(p, count_task, &ran, NULL), 0);
        assert_int_equal(atomic_load(&ran), 200);
        assert_int_equal(weft_pool_destroy(p), 0);
    }
}

/* Tasks that can only finish together (each waits for the other to arrive, by spinning:
 * weft cannot see the dependency) need two workers at once, and two idle workers must both
 * get them: whichever inboxes the submissions went to, whether a worker took them in one
 * batch, and whether one was submitted by the other from inside the pool. A task that
 * waited in vain reports it (bounded wait, no hang). */
struct rendezvous {
    atomic_int arrived;
    weft_pool *p;
    weft_future *child; /* inner mode: submitted by the first task */
};

static void *rendezvous_task(void *arg)
{
    struct rendezvous *r = arg;
    atomic_fetch_add(&r->arrived, 1);
    int64_t deadline = weft_now_ns() + 10 * 1000000000LL;
    while (atomic_load(&r->arrived) < 2 && weft_now_ns() < deadline)
        sched_yield();
    return (void *)(intptr_t)(atomic_load(&r->arrived) >= 2);
}

static void *rendezvous_parent_task(void *arg)
{
    struct rendezvous *r = arg;
    if (weft_submit(r->p, rendezvous_task, r, &r->child) != 0)
        return NULL;
    return rendezvous_task(r);
}

enum rendezvous_mode { RDV_PAIR, RDV_AFTER_QUICK, RDV_INNER };

static void check_rendezvous(enum rendezvous_mode mode, unsigned workers)
{
    for (size_t k = 0; k < 2; k++) {
        weft_pool *p = make_pool_with(workers, NULL, spin_settings[k]);
        for (int i = 0; i < 300; i++) {
            struct rendezvous r = {.p = p};
            weft_future *q = NULL, *a = NULL, *b = NULL;
            if (mode == RDV_AFTER_QUICK) /* the pair behind it in the same batch */
                assert_int_equal(weft_submit(p, ident_task, NULL, &q), 0);
            if (mode == RDV_INNER) {
                assert_int_equal(weft_submit(p, rendezvous_parent_task, &r, &a), 0);
            } else {
                assert_int_equal(weft_submit(p, rendezvous_task, &r, &a), 0);
                assert_int_equal(weft_submit(p, rendezvous_task, &r, &b), 0);
            }
            void *va = NULL, *vb = NULL;
            assert_int_equal(weft_future_result(a, WEFT_FOREVER, &va), 0);
            if (mode == RDV_INNER) {
                assert_non_null(r.child);
                b = r.child;
            }
            assert_int_equal(weft_future_result(b, WEFT_FOREVER, &vb), 0);
            if (va == NULL || vb == NULL)
                fail_msg("mode %d, iteration %d (spin %lld): the two tasks did not run at the "
                         "same time",
                         (int)mode, i, (long long)spin_settings[k]);
            weft_future_release(q);
            weft_future_release(a);
            weft_future_release(b);
        }
        assert_int_equal(weft_pool_destroy(p), 0);
    }
}

static void pool_outside_tasks_that_rendezvous_run_concurrently(void **state)
{
    (void)state;
    check_rendezvous(RDV_PAIR, 2);
}

static void pool_rendezvous_pair_behind_a_quick_task_runs_concurrently(void **state)
{
    (void)state;
    check_rendezvous(RDV_AFTER_QUICK, 2);
}

static void pool_task_and_the_task_it_submits_rendezvous(void **state)
{
    (void)state;
    check_rendezvous(RDV_INNER, 2);
}

/* From four workers up, idle workers beyond half the awake ones park without spinning: the
 * pairs must still find two workers. */
static void pool_rendezvous_in_a_pool_of_six(void **state)
{
    (void)state;
    check_rendezvous(RDV_PAIR, 6);
    check_rendezvous(RDV_AFTER_QUICK, 6);
    check_rendezvous(RDV_INNER, 6);
}

static void pool_stats_null_arguments_rejected(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    weft_stats s;
    assert_int_equal(weft_pool_stats(NULL, &s), WEFT_EINVAL);
    assert_int_equal(weft_pool_stats(p, NULL), WEFT_EINVAL);
    assert_int_equal(weft_pool_worker_stats(NULL, 0, &s), WEFT_EINVAL);
    assert_int_equal(weft_pool_worker_stats(p, 0, NULL), WEFT_EINVAL);
    assert_int_equal(weft_pool_worker_stats(p, 2, &s), WEFT_EINVAL);
    assert_int_equal(weft_pool_worker_stats(p, UINT_MAX, &s), WEFT_EINVAL);
    assert_int_equal(weft_pool_destroy(p), 0);
}

/* ---------------------------------------------------------------------------------------
 * Shutdown
 * ------------------------------------------------------------------------------------- */
struct late_submit {
    struct gate g;
    int rc;
    weft_future *out;
};

static void *late_submit_task(void *arg)
{
    struct late_submit *l = arg;
    gate_task(&l->g);
    l->out = (weft_future *)0x1;
    l->rc = weft_submit(weft_current_pool(), ident_task, NULL, &l->out);
    return NULL;
}

static void pool_submit_after_shutdown_fails(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct late_submit l;
    gate_init(&l.g, NULL);
    l.rc = 1;
    weft_future *running = NULL;
    assert_int_equal(weft_submit(p, late_submit_task, &l, &running), 0);
    latch_wait(l.g.started);

    assert_int_equal(weft_pool_shutdown(p, false, false), 0);
    weft_future *f = (weft_future *)0x1;
    assert_int_equal(weft_submit(p, ident_task, NULL, &f), WEFT_ESHUTDOWN);
    assert_null(f);
    assert_int_equal(weft_run(p, ident_task, NULL, NULL), WEFT_ESHUTDOWN);
    assert_int_equal(weft_pool_shutdown(p, false, false), 0); /* idempotent */

    /* From inside a task that was already running: refused too. */
    latch_open(l.g.release);
    assert_int_equal(weft_future_result(running, WEFT_FOREVER, NULL), 0);
    assert_int_equal(l.rc, WEFT_ESHUTDOWN);
    assert_null(l.out);
    weft_future_release(running);

    assert_int_equal(weft_pool_shutdown(p, true, false), 0);
    assert_int_equal(weft_pool_shutdown(p, true, true), 0);
    assert_int_equal(weft_submit(p, ident_task, NULL, &f), WEFT_ESHUTDOWN);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&l.g);
}

static void *slow_task(void *arg)
{
    sleep_ms(1);
    return count_task(arg);
}

static void *slow_parent_task(void *arg)
{
    /* Leaves children queued on this worker's deque without waiting for them. */
    weft_pool *self = weft_current_pool();
    intptr_t n = 0;
    for (int i = 0; i < 10; i++) {
        weft_future *f = NULL;
        if (weft_submit(self, slow_task, arg, &f) == 0) {
            weft_future_release(f);
            n++;
        }
    }
    count_task(arg);
    return (void *)n;
}

static void pool_shutdown_wait_returns_after_queued_work_finished(void **state)
{
    (void)state;
    for (unsigned workers = 1; workers <= 2; workers++) {
        weft_pool *p = make_pool(workers);
        atomic_int ran = 0;
        weft_future *fs[60];
        /* Parents queue 10 slow children each on their worker's deque and return. */
        intptr_t children = 0;
        for (int i = 0; i < 6; i++)
            assert_int_equal(weft_submit(p, slow_parent_task, &ran, &fs[i]), 0);
        for (int i = 0; i < 6; i++) {
            void *v = NULL;
            assert_int_equal(weft_future_result(fs[i], WEFT_FOREVER, &v), 0);
            children += (intptr_t)v;
        }
        assert_int_equal(children, 60);
        /* More slow work queued from outside, then shutdown(wait) at once. */
        for (int i = 6; i < 60; i++)
            assert_int_equal(weft_submit(p, slow_task, &ran, &fs[i]), 0);
        assert_int_equal(weft_pool_shutdown(p, true, false), 0);
        /* Everything queued before the shutdown ran, the children included. */
        assert_int_equal(atomic_load(&ran), 60 + children);
        for (int i = 0; i < 60; i++) {
            assert_true(weft_future_done(fs[i]));
            assert_int_equal(weft_future_state(fs[i]), WEFT_FINISHED);
            assert_int_equal(weft_future_result(fs[i], 0, NULL), 0);
            weft_future_release(fs[i]);
        }
        assert_int_equal(weft_pool_destroy(p), 0);
    }
}

static void pool_destroy_waits_for_queued_work_and_keeps_futures(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    atomic_int ran = 0;
    weft_future *fs[30];
    for (int i = 0; i < 30; i++)
        assert_int_equal(weft_submit(p, slow_task, &ran, &fs[i]), 0);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&ran), 30);
    for (int i = 0; i < 30; i++) { /* valid after the pool is gone; outcome kept */
        void *v = NULL;
        assert_int_equal(weft_future_result(fs[i], WEFT_FOREVER, &v), 0);
        assert_ptr_equal(v, &ran);
        weft_future_release(fs[i]);
    }
}

static void pool_shutdown_cancel_futures_cancels_queued_running_completes(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, (void *)0x33);
    weft_future *running = submit_gate(p, &g);
    atomic_int ran = 0, cbs = 0;
    weft_future *queued[10];
    for (int i = 0; i < 10; i++) {
        assert_int_equal(weft_submit(p, count_task, &ran, &queued[i]), 0);
        assert_int_equal(weft_future_add_done_callback(queued[i], cnt_cb, &cbs), 0);
    }
    assert_int_equal(weft_pool_shutdown(p, false, true), 0);
    /* Not-started futures are cancelled by the time shutdown returns; callbacks ran. */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(weft_future_state(queued[i]), WEFT_CANCELLED);
        assert_int_equal(weft_future_result(queued[i], 0, NULL), WEFT_ECANCELED);
    }
    assert_int_equal(atomic_load(&cbs), 10);
    /* The running task is untouched and completes normally. */
    assert_int_equal(weft_future_state(running), WEFT_RUNNING);
    weft_future *refused = (weft_future *)0x1;
    assert_int_equal(weft_submit(p, count_task, &ran, &refused), WEFT_ESHUTDOWN);
    assert_null(refused);
    latch_open(g.release);
    void *v = NULL;
    assert_int_equal(weft_future_result(running, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)0x33);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&ran), 0); /* none of the cancelled ever ran */
    assert_int_equal(atomic_load(&cbs), 10);
    for (int i = 0; i < 10; i++)
        weft_future_release(queued[i]);
    weft_future_release(running);
    gate_destroy(&g);
}

/* A batch of outside submissions that a worker took from its inbox waits on its deque (as
 * runs of consecutive futures) while the batch's first task blocks: shutdown(cancel_futures)
 * cancels every one of them, and their callbacks run. */
static void pool_shutdown_cancel_futures_cancels_batch_taken_by_busy_worker(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct gate a, b;
    gate_init(&a, NULL);
    gate_init(&b, (void *)0x44);
    weft_future *fa = submit_gate(p, &a);
    /* Queued behind a: b first, then the batch. */
    weft_future *fb = NULL;
    assert_int_equal(weft_submit(p, gate_task, &b, &fb), 0);
    enum { BATCH = 100 };
    atomic_int ran = 0, cbs = 0;
    weft_future *queued[BATCH];
    for (int i = 0; i < BATCH; i++) {
        assert_int_equal(weft_submit(p, count_task, &ran, &queued[i]), 0);
        assert_int_equal(weft_future_add_done_callback(queued[i], cnt_cb, &cbs), 0);
    }
    /* a returns; the worker takes b and the batch in one go and blocks in b. */
    latch_open(a.release);
    assert_int_equal(weft_future_result(fa, WEFT_FOREVER, NULL), 0);
    latch_wait(b.started);
    assert_int_equal(weft_pool_shutdown(p, false, true), 0);
    for (int i = 0; i < BATCH; i++)
        assert_int_equal(weft_future_result(queued[i], 0, NULL), WEFT_ECANCELED);
    assert_int_equal(atomic_load(&cbs), BATCH);
    latch_open(b.release);
    void *v = NULL;
    assert_int_equal(weft_future_result(fb, WEFT_FOREVER, &v), 0);
    assert_ptr_equal(v, (void *)0x44);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&ran), 0);
    for (int i = 0; i < BATCH; i++)
        weft_future_release(queued[i]);
    weft_future_release(fa);
    weft_future_release(fb);
    gate_destroy(&a);
    gate_destroy(&b);
}

/* The running task submitted children onto its own worker's deque before blocking: they
 * have not started either, so shutdown(cancel_futures) cancels them too (and wakes their
 * waiters) even though the worker is busy and may stay busy for ever. */
struct holding_parent {
    struct gate g;
    atomic_int ran;
    weft_future *kids[5];
    int rc[5];
};

static void *holding_parent_task(void *arg)
{
    struct holding_parent *h = arg;
    weft_pool *self = weft_current_pool();
    for (int i = 0; i < 5; i++)
        h->rc[i] = weft_submit(self, count_task, &h->ran, &h->kids[i]);
    return gate_task(&h->g);
}

static void pool_shutdown_cancel_futures_cancels_children_queued_on_busy_worker(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct holding_parent h;
    memset(&h, 0, sizeof(h));
    gate_init(&h.g, NULL);
    weft_future *parent = NULL;
    assert_int_equal(weft_submit(p, holding_parent_task, &h, &parent), 0);
    latch_wait(h.g.started);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(h.rc[i], 0);
        assert_int_equal(weft_future_state(h.kids[i]), WEFT_PENDING);
    }
    assert_int_equal(weft_pool_shutdown(p, false, true), 0);
    int not_cancelled = 0;
    for (int i = 0; i < 5; i++)
        if (weft_future_state(h.kids[i]) != WEFT_CANCELLED)
            not_cancelled++;
    /* Release the worker before asserting, so that a failure does not leave it blocked. */
    latch_open(h.g.release);
    assert_int_equal(weft_future_result(parent, WEFT_FOREVER, NULL), 0);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&h.ran), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(weft_future_state(h.kids[i]), WEFT_CANCELLED);
        weft_future_release(h.kids[i]);
    }
    weft_future_release(parent);
    gate_destroy(&h.g);
    if (not_cancelled != 0)
        fail_msg("%d of 5 not-started futures were still PENDING when "
                 "weft_pool_shutdown(wait=false, cancel_futures=true) returned",
                 not_cancelled);
}

struct shutdown_call {
    weft_pool *p;
    bool wait, cancel;
    int rc;
};

static void *shutdown_caller(void *arg)
{
    struct shutdown_call *c = arg;
    c->rc = weft_pool_shutdown(c->p, c->wait, c->cancel);
    return NULL;
}

/* shutdown(wait, cancel_futures) from another thread: queued futures (in the inbox and on
 * the busy worker's deque) end up CANCELLED, the running one finishes normally, and the
 * call returns only after that. */
static void pool_shutdown_wait_and_cancel_cancels_queued_and_waits_for_running(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct holding_parent h;
    memset(&h, 0, sizeof(h));
    gate_init(&h.g, (void *)0x44);
    weft_future *parent = NULL;
    assert_int_equal(weft_submit(p, holding_parent_task, &h, &parent), 0);
    latch_wait(h.g.started);
    atomic_int ran = 0, cbs = 0;
    weft_future *queued[10];
    for (int i = 0; i < 10; i++) {
        assert_int_equal(weft_submit(p, count_task, &ran, &queued[i]), 0);
        assert_int_equal(weft_future_add_done_callback(queued[i], cnt_cb, &cbs), 0);
    }
    struct shutdown_call c = {p, true, true, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, shutdown_caller, &c), 0);
    /* The inbox is settled at once; the caller keeps waiting for the running task. */
    EVENTUALLY(atomic_load(&cbs) == 10);
    assert_int_equal(atomic_load(&cbs), 10);
    assert_int_equal(weft_future_state(parent), WEFT_RUNNING);
    latch_open(h.g.release);
    pthread_join(t, NULL);
    assert_int_equal(c.rc, 0);
    void *v = NULL;
    assert_int_equal(weft_future_result(parent, 0, &v), 0);
    assert_ptr_equal(v, (void *)0x44);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(weft_future_state(queued[i]), WEFT_CANCELLED);
        weft_future_release(queued[i]);
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(h.rc[i], 0);
        assert_int_equal(weft_future_state(h.kids[i]), WEFT_CANCELLED);
        weft_future_release(h.kids[i]);
    }
    assert_int_equal(atomic_load(&ran), 0);
    assert_int_equal(atomic_load(&h.ran), 0);
    weft_future_release(parent);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&h.g);
}

/* Several threads shut one pool down at once, with and without waiting: all succeed, and
 * the waiting ones return after the queued work ran. */
static void pool_concurrent_shutdowns_all_succeed(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    atomic_int ran = 0;
    weft_future *fs[50];
    for (int i = 0; i < 50; i++)
        assert_int_equal(weft_submit(p, slow_task, &ran, &fs[i]), 0);
    struct shutdown_call c[4] = {
        {p, true, false, -1}, {p, false, false, -1}, {p, true, false, -1}, {p, false, false, -1}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, shutdown_caller, &c[i]), 0);
    pthread_join(t[0], NULL);
    assert_int_equal(atomic_load(&ran), 50); /* a waiting caller returned: all done */
    for (int i = 1; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(c[i].rc, 0);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(weft_future_state(fs[i]), WEFT_FINISHED);
        weft_future_release(fs[i]);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void pool_shutdown_without_wait_returns_while_task_blocked(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct gate g;
    gate_init(&g, (void *)0x5);
    weft_future *running = submit_gate(p, &g);
    atomic_int ran = 0;
    weft_future *queued = NULL;
    assert_int_equal(weft_submit(p, count_task, &ran, &queued), 0);
    /* Returns although a task is blocked and will stay blocked until we release it. */
    assert_int_equal(weft_pool_shutdown(p, false, false), 0);
    assert_int_equal(weft_future_state(running), WEFT_RUNNING);
    weft_future *refused = (weft_future *)0x1;
    assert_int_equal(weft_submit(p, count_task, &ran, &refused), WEFT_ESHUTDOWN);
    assert_null(refused);
    latch_open(g.release);
    assert_int_equal(weft_pool_destroy(p), 0);
    void *v = NULL;
    assert_int_equal(weft_future_result(running, 0, &v), 0);
    assert_ptr_equal(v, (void *)0x5);
    /* Work queued before the shutdown still ran (no cancel_futures). */
    assert_int_equal(weft_future_result(queued, 0, NULL), 0);
    assert_int_equal(atomic_load(&ran), 1);
    weft_future_release(queued);
    weft_future_release(running);
    gate_destroy(&g);
}

/* Shutdown with wait from another thread while work is queued: returns only after it ran. */
struct shutdown_thread_arg {
    weft_pool *p;
    int rc;
};

static void *shutdown_thread(void *arg)
{
    struct shutdown_thread_arg *a = arg;
    a->rc = weft_pool_shutdown(a->p, true, false);
    return NULL;
}

static void pool_shutdown_wait_from_another_thread_blocks_until_done(void **state)
{
    (void)state;
    weft_pool *p = make_pool(1);
    struct gate g;
    gate_init(&g, NULL);
    weft_future *running = submit_gate(p, &g);
    atomic_int ran = 0;
    weft_future *queued[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(weft_submit(p, count_task, &ran, &queued[i]), 0);
    struct shutdown_thread_arg a = {p, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, shutdown_thread, &a), 0);
    /* New work is refused as soon as the shutdown has begun. */
    weft_future *f = NULL;
    int rc = 0;
    for (int i = 0; i < 20000 && rc == 0; i++) {
        rc = weft_submit(p, ident_task, NULL, &f);
        if (rc == 0) {
            weft_future_release(f);
            sleep_ms(1);
        }
    }
    assert_int_equal(rc, WEFT_ESHUTDOWN);
    latch_open(g.release);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, 0);
    /* shutdown(wait) returned: everything queued before it has run. */
    assert_int_equal(atomic_load(&ran), 8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(weft_future_state(queued[i]), WEFT_FINISHED);
        weft_future_release(queued[i]);
    }
    assert_int_equal(weft_future_state(running), WEFT_FINISHED);
    weft_future_release(running);
    assert_int_equal(weft_pool_destroy(p), 0);
    gate_destroy(&g);
}

struct from_worker {
    int shutdown_wait_rc, destroy_rc, shutdown_nowait_rc;
};

static void *shutdown_from_worker_task(void *arg)
{
    struct from_worker *r = arg;
    weft_pool *self = weft_current_pool();
    r->shutdown_wait_rc = weft_pool_shutdown(self, true, false);
    r->destroy_rc = weft_pool_destroy(self);
    r->shutdown_nowait_rc = weft_pool_shutdown(self, false, false);
    return NULL;
}

static void pool_shutdown_wait_or_destroy_from_own_worker_rejected(void **state)
{
    (void)state;
    weft_pool *p = make_pool(2);
    struct from_worker r = {1, 1, 1};
    assert_int_equal(weft_run(p, shutdown_from_worker_task, &r, NULL), 0);
    assert_int_equal(r.shutdown_wait_rc, WEFT_EINVAL);
    assert_int_equal(r.destroy_rc, WEFT_EINVAL);
    assert_int_equal(r.shutdown_nowait_rc, 0); /* allowed: it does not wait */
    assert_int_equal(weft_run(p, ident_task, NULL, NULL), WEFT_ESHUTDOWN);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(weft_pool_shutdown(NULL, false, false), WEFT_EINVAL);
    assert_int_equal(weft_pool_destroy(NULL), WEFT_EINVAL);
}

/* ---------------------------------------------------------------------------------------
 * Initializer and finalizer
 * ------------------------------------------------------------------------------------- */
#define INIT_MAX 8
struct init_rec {
    unsigned n;
    int fail_index; /* -1: none fails */
    latch fail_go;  /* the failing initializer waits for it */
    atomic_int init_hits[INIT_MAX], fini_hits[INIT_MAX];
    atomic_int init_done;
    atomic_int bad; /* wrong index, wrong thread, bad name */
    pthread_t init_thread[INIT_MAX];
};

static int rec_initializer(void *arg, unsigned worker)
{
    struct init_rec *r = arg;
    if (worker >= r->n) {
        atomic_fetch_add(&r->bad, 1);
        return 0;
    }
    atomic_fetch_add(&r->init_hits[worker], 1);
    r->init_thread[worker] = pthread_self();
    if (weft_current_worker() != (int)worker)
        atomic_fetch_add(&r->bad, 1);
    if ((int)worker == r->fail_index) {
        latch_wait(&r->fail_go);
        return -1;
    }
    atomic_fetch_add(&r->init_done, 1);
    return 0;
}

static void rec_finalizer(void *arg, unsigned worker)
{
    struct init_rec *r = arg;
    if (worker >= r->n) {
        atomic_fetch_add(&r->bad, 1);
        return;
    }
    atomic_fetch_add(&r->fini_hits[worker], 1);
    if (!pthread_equal(r->init_thread[worker], pthread_self()))
        atomic_fetch_add(&r->bad, 1);
}

static void init_rec_setup(struct init_rec *r, unsigned n, int fail_index)
{
    memset(r, 0, sizeof(*r));
    r->n = n;
    r->fail_index = fail_index;
    latch_init(&r->fail_go);
}

static weft_pool *make_init_pool(struct init_rec *r)
{
    weft_pool_options o;
    weft_pool_options_init(&o);
    o.num_threads = r->n;
    o.name = "tinit";
    o.initializer = rec_initializer;
    o.finalizer = rec_finalizer;
    o.init_arg = r;
    weft_pool *p = NULL;
    assert_int_equal(weft_pool_create(&o, &p), 0);
    return p;
}

static void *init_seen_task(void *arg)
{
    struct init_rec *r = arg;
    /* No task starts before every initializer has returned. */
    return (void *)(intptr_t)atomic_load(&r->init_done);
}

static void pool_initializer_and_finalizer_run_once_per_worker_with_index(void **state)
{
    (void)state;
    struct init_rec r;
    init_rec_setup(&r, 4, -1);
    weft_pool *p = make_init_pool(&r);
    for (int i = 0; i < 20; i++) {
        void *v = NULL;
        assert_int_equal(weft_run(p, init_seen_task, &r, &v), 0);
        assert_int_equal((intptr_t)v, 4);
    }
    assert_int_equal(weft_pool_destroy(p), 0);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(atomic_load(&r.init_hits[i]), 1);
        assert_int_equal(atomic_load(&r.fini_hits[i]), 1);
    }
    assert_int_equal(atomic_load(&r.bad), 0);
    latch_destroy(&r.fail_go);
}

static void pool_initializer_failure_breaks_pool(void **state)
{
    (void)state;
    struct init_rec r;
    init_rec_setup(&r, 3, 1);
    weft_pool *p = make_init_pool(&r);
    /* Submitted while worker 1's initializer is still running: pending. */
    atomic_int ran = 0;
    weft_future *pending[6];
    for (int i = 0; i < 6; i++)
        assert_int_equal(weft_submit(p, count_task, &ran, &pending[i]), 0);
    latch_open(&r.fail_go); /* worker 1's initializer now fails */
    for (int i = 0; i < 6; i++) {
        assert_int_equal(weft_future_result(pending[i], WEFT_FOREVER, NULL), WEFT_EBROKEN);
        assert_int_equal(weft_future_state(pending[i]), WEFT_FAILED);
        assert_int_equal(weft_future_error(pending[i]), WEFT_EBROKEN);
        weft_future_release(pending[i]);
    }
    /* Every later submit is refused with WEFT_EBROKEN. */
    weft_future *f = (weft_future *)0x1;
    assert_int_equal(weft_submit(p, count_task, &ran, &f), WEFT_EBROKEN);
    assert_null(f);
    assert_int_equal(weft_run(p, count_task, &ran, NULL), WEFT_EBROKEN);
    assert_int_equal(weft_pool_shutdown(p, true, false), 0);
    assert_int_equal(weft_submit(p, count_task, &ran, &f), WEFT_EBROKEN);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&ran), 0);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&r.init_hits[i]), 1);
    /* The finalizer ran on the workers whose initializer succeeded (and at most once on the
     * one that failed). */
    assert_int_equal(atomic_load(&r.fini_hits[0]), 1);
    assert_int_equal(atomic_load(&r.fini_hits[2]), 1);
    assert_true(atomic_load(&r.fini_hits[1]) <= 1);
    assert_int_equal(atomic_load(&r.bad), 0);
    latch_destroy(&r.fail_go);
}

/* ---------------------------------------------------------------------------------------
 * Bad options
 * ------------------------------------------------------------------------------------- */
static void expect_einval(const weft_pool_options *o)
{
    weft_pool *p = (weft_pool *)0x1;
    assert_int_equal(weft_pool_create(o, &p), WEFT_EINVAL);
    assert_null(p);
}

static void pool_bad_options_rejected_with_einval(void **state)
{
    (void)state;
    const int base = thread_baseline();
    weft_pool_options o;

    weft_pool_options_init(&o);
    o.num_threads = 2000;
    expect_einval(&o);
    o.num_threads = 1025;
    expect_einval(&o);

    weft_pool_options_init(&o);
    o.bind = 7;
    expect_einval(&o);
    o.bind = -2;
    expect_einval(&o);

    weft_pool_options_init(&o);
    o.spin_ns = -2;
    expect_einval(&o);
    o.spin_ns = INT64_MAX;
    expect_einval(&o);

    weft_pool_options_init(&o);
    o.stats = 2;
    expect_einval(&o);
    o.stats = -2;
    expect_einval(&o);

    weft_pool_options_init(&o);
    o.deque_size = (1u << 24) + 1;
    expect_einval(&o);
    o.deque_size = UINT_MAX;
    expect_einval(&o);

    weft_pool_options_init(&o);
    o.num_threads = 1;
    assert_int_equal(weft_pool_create(&o, NULL), WEFT_EINVAL);
    assert_int_equal(weft_pool_create(NULL, NULL), WEFT_EINVAL);

    assert_int_equal(count_threads(), base); /* nothing left behind */

    /* The accepted extremes of each range do work. */
    weft_pool_options_init(&o);
    o.num_threads = 2;
    o.bind = WEFT_BIND_SCATTER;
    o.spin_ns = 0;
    o.deque_size = 1;
    o.stats = 0;
    weft_pool *p = NULL;
    assert_int_equal(weft_pool_create(&o, &p), 0);
    atomic_int ran = 0;
    assert_int_equal(weft_run(p, count_task, &ran, NULL), 0);
    assert_int_equal(weft_pool_destroy(p), 0);
    o.bind = WEFT_BIND_COMPACT;
    o.spin_ns = 1000000000LL;
    o.deque_size = 1u << 12;
    assert_int_equal(weft_pool_create(&o, &p), 0);
    assert_int_equal(weft_run(p, count_task, &ran, NULL), 0);
    assert_int_equal(weft_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&ran), 2);
}

static void pool_options_init_sets_from_environment_defaults(void **state)
{
    (void)state;
    weft_pool_options o;
    memset(&o, 0x5a, sizeof(o));
    weft_pool_options_init(&o);
    assert_int_equal(o.num_threads, 0);
    assert_int_equal(o.bind, WEFT_BIND_DEFAULT);
    assert_int_equal(o.spin_ns, -1);
    assert_int_equal(o.deque_size, 0);
    assert_int_equal(o.stats, -1);
    assert_null(o.name);
    assert_null(o.initializer);
    assert_null(o.finalizer);
    assert_null(o.init_arg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pool_create_destroy_repeatedly_leaks_no_thread),
        cmocka_unit_test(pool_several_pools_live_at_once),
        cmocka_unit_test(pool_num_threads_option_is_honoured),
        cmocka_unit_test(pool_worker_threads_are_named_prefix_index),
        cmocka_unit_test(pool_stress_million_futures_from_four_threads_each_runs_once),
        cmocka_unit_test(pool_stress_released_futures_each_run_once),
        cmocka_unit_test(pool_submit_from_inside_task_runs_on_worker),
        cmocka_unit_test(pool_current_pool_is_null_outside_workers),
        cmocka_unit_test(pool_stats_totals_are_consistent),
        cmocka_unit_test(pool_idle_workers_park),
        cmocka_unit_test(pool_outside_tasks_that_rendezvous_run_concurrently),
        cmocka_unit_test(pool_rendezvous_pair_behind_a_quick_task_runs_concurrently),
        cmocka_unit_test(pool_task_and_the_task_it_submits_rendezvous),
        cmocka_unit_test(pool_rendezvous_in_a_pool_of_six),
        cmocka_unit_test(pool_stats_null_arguments_rejected),
        cmocka_unit_test(pool_submit_after_shutdown_fails),
        cmocka_unit_test(pool_shutdown_wait_returns_after_queued_work_finished),
        cmocka_unit_test(pool_destroy_waits_for_queued_work_and_keeps_futures),
        cmocka_unit_test(pool_shutdown_cancel_futures_cancels_queued_running_completes),
        cmocka_unit_test(pool_shutdown_cancel_futures_cancels_batch_taken_by_busy_worker),
        cmocka_unit_test(pool_shutdown_cancel_futures_cancels_children_queued_on_busy_worker),
        cmocka_unit_test(pool_shutdown_wait_and_cancel_cancels_queued_and_waits_for_running),
        cmocka_unit_test(pool_concurrent_shutdowns_all_succeed),
        cmocka_unit_test(pool_shutdown_without_wait_returns_while_task_blocked),
        cmocka_unit_test(pool_shutdown_wait_from_another_thread_blocks_until_done),
        cmocka_unit_test(pool_shutdown_wait_or_destroy_from_own_worker_rejected),
        cmocka_unit_test(pool_initializer_and_finalizer_run_once_per_worker_with_index),
        cmocka_unit_test(pool_initializer_failure_breaks_pool),
        cmocka_unit_test(pool_bad_options_rejected_with_einval),
        cmocka_unit_test(pool_options_init_sets_from_environment_defaults),
    };
    /* CMOCKA_TEST_FILTER / CMOCKA_SKIP_FILTER: run a subset (wildcards * and ?). */
    if (getenv("CMOCKA_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("CMOCKA_TEST_FILTER"));
    if (getenv("CMOCKA_SKIP_FILTER") != NULL)
        cmocka_set_skip_filter(getenv("CMOCKA_SKIP_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
