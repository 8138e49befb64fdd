/*
 * Tests of the Chase–Lev deque (deque/weft_deque.h).
 *
 *   - sequential semantics: LIFO for the owner, FIFO for thieves, emptiness, capacity
 *     rounding, growth across many resizes with a wrapped live range, and a randomised
 *     comparison against a sequential model;
 *   - reclamation of retired buffers in both modes: deferred by ck_epoch while a thief is
 *     inside its epoch section (and freed once it leaves), or kept until destroy;
 *   - publication: a thief that steals an element sees what the owner wrote before pushing
 *     it (plain data; the TSan build checks the happens-before edge);
 *   - two races checked for exactly-once delivery: a long stress (one owner pushing and
 *     popping in bursts, three thieves stealing, growth and reclamation during the race)
 *     and a round-by-round race for the last element(s).
 *
 * Tests that take a mode run twice: "/epoch" (owner and thieves hold ck_epoch records;
 * retired buffers are freed after a grace period) and "/retain" (NULL records; retired
 * buffers are kept until weft_deque_destroy).
 *
 * The single-threaded tests call weft_deque_steal from the test thread. The API keeps steal
 * for threads other than the owner because it runs concurrently with push and take;
 * interleaved sequentially in one thread it behaves exactly as a thief's would.
 *
 * cmocka's assertions longjmp, so they are made on the test thread only and never while
 * other threads run: workers (and the owner, mid-race) count anomalies in counters that the
 * test asserts after joining them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ck_epoch.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft_deque.h"

#ifndef WEFT_STRESS_SCALE
#define WEFT_STRESS_SCALE 1
#endif

/* ---- fixture: the deque's mode and the epoch records ------------------------------------ */

enum { MAX_THIEVES = 3 };

struct fixture {
    ck_epoch_record_t recs[1 + MAX_THIEVES]; /* [0] the owner's, then one per thief */
    ck_epoch_t epoch;
    bool epoch_mode;
    weft_deque dq;
};

static int setup_mode(void **state, bool epoch_mode)
{
    void *mem = NULL;
    /* ck_epoch_record_t and weft_deque are cache-line aligned types: not plain malloc. */
    if (posix_memalign(&mem, WEFT_CACHELINE, sizeof(struct fixture)) != 0)
        return -1;
    struct fixture *f = mem;
    memset(f, 0, sizeof(*f));
    f->epoch_mode = epoch_mode;
    if (epoch_mode) {
        ck_epoch_init(&f->epoch);
        for (int i = 0; i < 1 + MAX_THIEVES; i++)
            ck_epoch_register(&f->epoch, &f->recs[i], NULL);
    }
    *state = f;
    return 0;
}

static int setup_epoch(void **state)
{
    return setup_mode(state, true);
}

static int setup_retain(void **state)
{
    return setup_mode(state, false);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    /* The tests destroyed their deques; buffers they deferred through ck_epoch_call are
     * freed by the owner record's next barrier (every thread has been joined by now). */
    if (f->epoch_mode)
        ck_epoch_barrier(&f->recs[0]);
    free(f);
    return 0;
}

static ck_epoch_record_t *owner_rec(struct fixture *f)
{
    return f->epoch_mode ? &f->recs[0] : NULL;
}

static ck_epoch_record_t *thief_rec(struct fixture *f, int i)
{
    return f->epoch_mode ? &f->recs[1 + i] : NULL;
}

/* ---- helpers ------------------------------------------------------------------------------ */

/* Items are distinct non-NULL integers cast to pointers: item(i) = i + 1. */
static void *item(uint64_t i)
{
    return (void *)(uintptr_t)(i + 1);
}

static uint64_t item_index(void *p)
{
    return (uint64_t)(uintptr_t)p - 1;
}

/* Owner-side peek at the current buffer (white box). */
static struct weft_deque_array *current_array(weft_deque *dq)
{
    return atomic_load_explicit(&dq->array, memory_order_relaxed);
}

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static void spin_delay(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        cpu_relax();
}

/* Spins `budget` times, then yields: the machine may have fewer cores than threads. */
static void wait_backoff(unsigned *spins, unsigned budget)
{
    if (++*spins < budget)
        cpu_relax();
    else
        sched_yield();
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- sequential semantics ------------------------------------------------------------------ */

static void deque_init_rounds_capacity_up_to_a_power_of_two(void **state)
{
    struct fixture *f = *state;
    static const struct {
        size_t asked;
        int64_t capacity;
    } cases[] = {{0, 2}, {1, 2}, {2, 2}, {3, 4}, {64, 64}, {1000, 1024}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(weft_deque_init(&f->dq, cases[i].asked, owner_rec(f)), 0);
        assert_int_equal(current_array(&f->dq)->mask + 1, cases[i].capacity);
        assert_int_equal(weft_deque_size(&f->dq), 0);
        /* Exactly `capacity` elements fit before the first growth. */
        struct weft_deque_array *a = current_array(&f->dq);
        for (int64_t k = 0; k < cases[i].capacity; k++)
            assert_int_equal(weft_deque_push(&f->dq, item((uint64_t)k)), 0);
        assert_ptr_equal(current_array(&f->dq), a);
        assert_int_equal(weft_deque_push(&f->dq, item((uint64_t)cases[i].capacity)), 0);
        assert_ptr_not_equal(current_array(&f->dq), a);
        assert_int_equal(current_array(&f->dq)->mask + 1, 2 * cases[i].capacity);
        weft_deque_destroy(&f->dq);
    }
}

static void deque_take_is_lifo_for_owner(void **state)
{
    struct fixture *f = *state;
    weft_deque *dq = &f->dq;
    enum { N = 1000 }; /* grows from 16 to 1024 on the way */
    assert_int_equal(weft_deque_init(dq, 16, owner_rec(f)), 0);
    for (uint64_t i = 0; i < N; i++) {
        assert_int_equal(weft_deque_push(dq, item(i)), 0);
        assert_int_equal(weft_deque_size(dq), i + 1);
    }
    for (uint64_t i = N; i-- > 0;) {
        assert_ptr_equal(weft_deque_take(dq), item(i));
        assert_int_equal(weft_deque_size(dq), i);
    }
    assert_null(weft_deque_take(dq));

    /* Interleaved: take always returns the newest element still there. */
    assert_int_equal(weft_deque_push(dq, item(1)), 0);
    assert_int_equal(weft_deque_push(dq, item(2)), 0);
    assert_ptr_equal(weft_deque_take(dq), item(2));
    assert_int_equal(weft_deque_push(dq, item(3)), 0);
    assert_ptr_equal(weft_deque_take(dq), item(3));
    assert_ptr_equal(weft_deque_take(dq), item(1));
    assert_null(weft_deque_take(dq));
    assert_int_equal(weft_deque_size(dq), 0);
    weft_deque_destroy(dq);
}

static void deque_steal_is_fifo(void **state)
{
    struct fixture *f = *state;
    weft_deque *dq = &f->dq;
    ck_epoch_record_t *rec = thief_rec(f, 0);
    enum { N = 1000 };
    assert_int_equal(weft_deque_init(dq, 16, owner_rec(f)), 0);
    for (uint64_t i = 0; i < N; i++)
        assert_int_equal(weft_deque_push(dq, item(i)), 0);
    for (uint64_t i = 0; i < N; i++) {
        void *x = NULL;
        assert_int_equal(weft_deque_steal(dq, rec, &x), WEFT_STEAL_OK);
        assert_ptr_equal(x, item(i));
        assert_int_equal(weft_deque_size(dq), N - 1 - i);
    }
    void *x = NULL;
    assert_int_equal(weft_deque_steal(dq, rec, &x), WEFT_STEAL_EMPTY);

    /* Interleaved with pushes and takes: steal always returns the oldest element. */
    assert_int_equal(weft_deque_push(dq, item(10)), 0);
    assert_int_equal(weft_deque_push(dq, item(11)), 0);
    assert_int_equal(weft_deque_steal(dq, rec, &x), WEFT_STEAL_OK);
    assert_ptr_equal(x, item(10));
    assert_int_equal(weft_deque_push(dq, item(12)), 0);
    assert_int_equal(weft_deque_steal(dq, rec, &x), WEFT_STEAL_OK);
    assert_ptr_equal(x, item(11));
    assert_ptr_equal(weft_deque_take(dq), item(12));
    assert_int_equal(weft_deque_steal(dq, rec, &x), WEFT_STEAL_EMPTY);
    assert_null(weft_deque_take(dq));
    weft_deque_destroy(dq);
}

static void deque_empty_take_and_steal_return_nothing(void **state)
{
    struct fixture *f = *state;
    weft_deque *dq = &f->dq;
    ck_epoch_record_t *rec = thief_rec(f, 0);
    void *const sentinel = (void *)(uintptr_t)0xdeadbeef;
    assert_int_equal(weft_deque_init(dq, 2, owner_rec(f)), 0);

    /* A fresh deque: nothing, and *out is left alone. Repeated empty takes (each claims
     * and gives back a slot) must not drift bottom. */
    for (int i = 0; i < 100; i++) {
        void *x = sentinel;
        assert_null(weft_deque_take(dq));
        assert_int_equal(weft_deque_steal(dq, rec, &x), WEFT_STEAL_EMPTY);
        assert_ptr_equal(x, sentinel);
        assert_int_equal(weft_deque_size(dq), 0);
    }

    /* Emptied by the owner: thieves see nothing. */
    void *x = sentinel;
    assert_int_equal(weft_deque_push(dq, item(0)), 0);
    assert_ptr_equal(weft_deque_take(dq), item(0));
    assert_null(weft_deque_take(dq));
    assert_int_equal(weft_deque_steal(dq, rec, &x), WEFT_STEAL_EMPTY);
    assert_ptr_equal(x, sentinel);

    /* Emptied by a thief: the owner sees nothing. */
    assert_int_equal(weft_deque_push(dq, item(1)), 0);
    assert_int_equal(weft_deque_steal(dq, rec, &x), WEFT_STEAL_OK);
    assert_ptr_equal(x, item(1));
    assert_null(weft_deque_take(dq));
    x = sentinel;
    assert_int_equal(weft_deque_steal(dq, rec, &x), WEFT_STEAL_EMPTY);
    assert_ptr_equal(x, sentinel);
    assert_int_equal(weft_deque_size(dq), 0);

    /* And it still works normally afterwards. */
    for (uint64_t i = 2; i < 5; i++)
        assert_int_equal(weft_deque_push(dq, item(i)), 0);
    assert_int_equal(weft_deque_size(dq), 3);
    assert_int_equal(weft_deque_steal(dq, rec, &x), WEFT_STEAL_OK);
    assert_ptr_equal(x, item(2));
    assert_ptr_equal(weft_deque_take(dq), item(4));
    assert_ptr_equal(weft_deque_take(dq), item(3));
    assert_null(weft_deque_take(dq));
    assert_int_equal(weft_deque_steal(dq, rec, &x), WEFT_STEAL_EMPTY);
    weft_deque_destroy(dq);
}

static void deque_grows_across_many_resizes_keeping_order(void **state)
{
    struct fixture *f = *state;
    weft_deque *dq = &f->dq;
    ck_epoch_record_t *rec = thief_rec(f, 0);
    const uint64_t n = (uint64_t)1 << 20;
    assert_int_equal(weft_deque_init(dq, 2, owner_rec(f)), 0);
    /* Only the live buffer is dereferenced: with an epoch record, a retired one may already
     * be freed (no thief is inside a steal here, so the growth's poll reclaims at once). */
    struct weft_deque_array *a = current_array(dq);
    int64_t cap = a->mask + 1;
    assert_int_equal(cap, 2);

    /* Push 2^20 elements, stealing one after every fourth push: top keeps moving, so each
     * growth copies a live range that is wrapped around the old buffer. */
    uint64_t stolen = 0;
    unsigned growths = 0;
    for (uint64_t i = 0; i < n; i++) {
        assert_int_equal(weft_deque_push(dq, item(i)), 0);
        if (current_array(dq) != a) {
            a = current_array(dq);
            assert_int_equal(a->mask + 1, 2 * cap);
            cap = a->mask + 1;
            growths++;
        }
        if (i % 4 == 3) {
            void *x = NULL;
            assert_int_equal(weft_deque_steal(dq, rec, &x), WEFT_STEAL_OK);
            assert_ptr_equal(x, item(stolen));
            stolen++;
        }
    }
    const uint64_t live = n - stolen;
    assert_int_equal(weft_deque_size(dq), live);
    /* 3/4 of 2^20 live at the end: capacity 2^20, reached from 2 in 19 doublings. */
    assert_int_equal(a->mask + 1, (int64_t)1 << 20);
    assert_int_equal(growths, 19);

    /* Every element is still there, in order: the newer half from the bottom (LIFO), the
     * older half from the top (FIFO). */
    uint64_t hi = n;
    const uint64_t mid = stolen + live / 2;
    while (hi > mid) {
        hi--;
        assert_ptr_equal(weft_deque_take(dq), item(hi));
    }
    while (stolen < hi) {
        void *x = NULL;
        assert_int_equal(weft_deque_steal(dq, rec, &x), WEFT_STEAL_OK);
        assert_ptr_equal(x, item(stolen));
        stolen++;
    }
    void *x = NULL;
    assert_int_equal(weft_deque_steal(dq, rec, &x), WEFT_STEAL_EMPTY);
    assert_null(weft_deque_take(dq));
    weft_deque_destroy(dq);
}

static void deque_matches_a_sequential_model_under_random_operations(void **state)
{
    struct fixture *f = *state;
    weft_deque *dq = &f->dq;
    ck_epoch_record_t *rec = thief_rec(f, 0);
    const uint64_t ops = 2000000 / WEFT_STRESS_SCALE;
    /* The model: items at positions [head, tail) of a plain array; positions only grow at
     * the head, so `ops` slots are enough. */
    uint64_t *model = malloc(ops * sizeof(*model));
    assert_non_null(model);
    uint64_t head = 0, tail = 0, next_item = 0, rng = 42;
    uint64_t takes = 0, steals = 0, empties = 0;
    assert_int_equal(weft_deque_init(dq, 2, owner_rec(f)), 0);
    for (uint64_t op = 0; op < ops; op++) {
        /* Phases of 4096 operations alternately biased to push (70 %) and to remove
         * (30 %): the deque repeatedly grows big and drains to empty. */
        unsigned push_pct = (op / 4096) % 2 == 0 ? 70 : 30;
        unsigned r = (unsigned)(rng_next(&rng) % 100);
        if (r < push_pct) {
            model[tail++] = next_item;
            assert_int_equal(weft_deque_push(dq, item(next_item++)), 0);
        } else if (r < push_pct + (100 - push_pct) / 2) {
            void *x = weft_deque_take(dq);
            if (head == tail) {
                assert_null(x);
                empties++;
            } else {
                assert_ptr_equal(x, item(model[--tail]));
                takes++;
            }
        } else {
            void *x = NULL;
            enum weft_steal_result res = weft_deque_steal(dq, rec, &x);
            if (head == tail) {
                assert_int_equal(res, WEFT_STEAL_EMPTY);
                empties++;
            } else {
                assert_int_equal(res, WEFT_STEAL_OK);
                assert_ptr_equal(x, item(model[head++]));
                steals++;
            }
        }
        assert_int_equal(weft_deque_size(dq), tail - head);
    }
    /* The random walk did exercise every path. */
    assert_true(takes > 0 && steals > 0 && empties > 0);
    assert_true(current_array(dq)->mask >= 255);
    weft_deque_destroy(dq);
    free(model);
}

/* ---- reclamation of retired buffers -------------------------------------------------------- */

static void deque_epoch_mode_defers_freeing_a_buffer_a_thief_may_still_read(void **state)
{
    struct fixture *f = *state;
    weft_deque *dq = &f->dq;
    ck_epoch_record_t *orec = owner_rec(f), *trec = thief_rec(f, 0);
    assert_int_equal(weft_deque_init(dq, 2, orec), 0);
    assert_int_equal(weft_deque_push(dq, item(0)), 0);
    assert_int_equal(weft_deque_push(dq, item(1)), 0);
    const unsigned pending0 = orec->n_pending, dispatched0 = orec->n_dispatch;

    /* A thief in the middle of a steal: inside its epoch section, holding the buffer.
     * (Nothing is asserted inside the section: a failed assertion would leave it open and
     * the teardown's ck_epoch_barrier would wait for it forever.) */
    ck_epoch_begin(trec, NULL);
    struct weft_deque_array *old = current_array(dq);
    int pushed = 0;
    for (uint64_t i = 2; i < 64; i++) /* 2 -> 4 -> 8 -> 16 -> 32 -> 64: 5 growths */
        pushed += weft_deque_push(dq, item(i)) == 0;
    const int64_t mask = current_array(dq)->mask;
    const unsigned pending = orec->n_pending - pending0,
                   dispatched = orec->n_dispatch - dispatched0;
    /* The buffer the thief holds is intact (ASan would flag a use after free). */
    void *old0 = atomic_load_explicit(&old->slots[0], memory_order_relaxed);
    void *old1 = atomic_load_explicit(&old->slots[1], memory_order_relaxed);
    ck_epoch_end(trec, NULL);
    assert_int_equal(pushed, 62);
    assert_int_equal(mask, 63);
    /* Every retired buffer was deferred, none freed. */
    assert_int_equal(pending, 5);
    assert_int_equal(dispatched, 0);
    assert_ptr_equal(old0, item(0));
    assert_ptr_equal(old1, item(1));

    /* No reader left: the next growth's poll reclaims all six retired buffers. */
    assert_int_equal(weft_deque_push(dq, item(64)), 0);
    assert_int_equal(current_array(dq)->mask, 127);
    assert_int_equal(orec->n_pending, pending0);
    assert_int_equal(orec->n_dispatch - dispatched0, 6);

    for (uint64_t i = 0; i <= 64; i++) {
        void *x = NULL;
        assert_int_equal(weft_deque_steal(dq, trec, &x), WEFT_STEAL_OK);
        assert_ptr_equal(x, item(i));
    }
    weft_deque_destroy(dq);
}

static void deque_without_epoch_keeps_retired_buffers_until_destroy(void **state)
{
    struct fixture *f = *state;
    weft_deque *dq = &f->dq;
    assert_int_equal(weft_deque_init(dq, 2, NULL), 0);
    assert_int_equal(weft_deque_push(dq, item(0)), 0);
    assert_int_equal(weft_deque_push(dq, item(1)), 0);
    struct weft_deque_array *old = current_array(dq);
    for (uint64_t i = 2; i < 64; i++)
        assert_int_equal(weft_deque_push(dq, item(i)), 0);

    /* The five retired buffers, newest first (capacities 32, 16, 8, 4, 2), intact. */
    int64_t cap = 32;
    struct weft_deque_array *r = dq->retired;
    for (; r != NULL && cap >= 2; r = r->next, cap /= 2)
        assert_int_equal(r->mask + 1, cap);
    assert_null(r);
    assert_int_equal(cap, 1);
    assert_ptr_equal(atomic_load_explicit(&old->slots[0], memory_order_relaxed), item(0));
    assert_ptr_equal(atomic_load_explicit(&old->slots[1], memory_order_relaxed), item(1));

    for (uint64_t i = 0; i < 64; i++) {
        void *x = NULL;
        assert_int_equal(weft_deque_steal(dq, NULL, &x), WEFT_STEAL_OK);
        assert_ptr_equal(x, item(i));
    }
    /* Frees the live and the retired buffers (the ASan build checks for leaks). */
    weft_deque_destroy(dq);
    assert_null(dq->retired);
}

/* ---- stress: one owner, three thieves, every item taken exactly once ------------------------ */

enum {
    STRESS_THIEVES = 3,
    STRESS_PHASES = 32,        /* a fresh deque (capacity 2) per phase: growth keeps happening */
    STRESS_LIVE_LIMIT = 4096,  /* above, the owner waits for the thieves to halve it */
    STRESS_FIRST_BURST = 1024, /* each phase opens with a burst that forces ~9 growths */
};

struct stress {
    struct fixture *f;
    weft_deque *dqs;          /* STRESS_PHASES deques, all destroyed after the join */
    uint64_t n;               /* items 0 .. n-1 */
    _Atomic uint8_t *seen;    /* times each item was taken */
    _Atomic int phase;        /* index of the deque in use; release-published by the owner */
    _Atomic bool done;        /* the owner pushed everything and drained the last deque */
    _Atomic uint64_t invalid; /* NULL or out-of-range elements returned */
    struct {
        _Alignas(WEFT_CACHELINE) uint64_t ok, abort, empty;
    } thief[STRESS_THIEVES];
};

struct thief_arg {
    void *ctx;
    int id;
};

static void record_taken(_Atomic uint8_t *seen, uint64_t n, _Atomic uint64_t *invalid, void *x)
{
    uint64_t i = item_index(x);
    if (x == NULL || i >= n)
        atomic_fetch_add_explicit(invalid, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&seen[i], 1, memory_order_relaxed);
}

static void *stress_thief(void *arg)
{
    struct thief_arg *ta = arg;
    struct stress *s = ta->ctx;
    ck_epoch_record_t *rec = thief_rec(s->f, ta->id);
    uint64_t ok = 0, aborts = 0, empties = 0;
    unsigned spins = 0;
    for (;;) {
        /* Acquire: the owner's final drain happens-before, so EMPTY after this is final. */
        bool done = atomic_load_explicit(&s->done, memory_order_acquire);
        /* Acquire: pairs with the owner's release after initialising the phase's deque. */
        int p = atomic_load_explicit(&s->phase, memory_order_acquire);
        void *x = NULL;
        enum weft_steal_result r = weft_deque_steal(&s->dqs[p], rec, &x);
        if (r == WEFT_STEAL_OK) {
            record_taken(s->seen, s->n, &s->invalid, x);
            ok++;
            spins = 0;
        } else if (r == WEFT_STEAL_ABORT) {
            aborts++;
        } else {
            empties++;
            if (done)
                break;
            wait_backoff(&spins, 256);
        }
    }
    s->thief[ta->id].ok = ok;
    s->thief[ta->id].abort = aborts;
    s->thief[ta->id].empty = empties;
    return NULL;
}

static void deque_stress_every_item_taken_exactly_once(void **state)
{
    struct fixture *f = *state;
    const uint64_t n = 10000000 / WEFT_STRESS_SCALE;
    struct stress *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    void *mem = NULL;
    assert_int_equal(posix_memalign(&mem, WEFT_CACHELINE, STRESS_PHASES * sizeof(weft_deque)), 0);
    s->f = f;
    s->dqs = mem;
    s->n = n;
    s->seen = calloc(n, sizeof(*s->seen));
    assert_non_null(s->seen);
    atomic_init(&s->phase, 0);
    atomic_init(&s->done, false);
    atomic_init(&s->invalid, 0);
    assert_int_equal(weft_deque_init(&s->dqs[0], 2, owner_rec(f)), 0);
    const unsigned dispatched0 = f->epoch_mode ? owner_rec(f)->n_dispatch : 0;

    pthread_t th[STRESS_THIEVES];
    struct thief_arg args[STRESS_THIEVES];
    int started = 0;
    for (; started < STRESS_THIEVES; started++) {
        args[started] = (struct thief_arg){s, started};
        if (pthread_create(&th[started], NULL, stress_thief, &args[started]) != 0)
            break;
    }
    if (started < STRESS_THIEVES) {
        atomic_store(&s->done, true);
        for (int i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        fail_msg("pthread_create failed");
    }

    /* The owner: this thread. */
    const double t0 = now_s();
    uint64_t rng = 7, owner_taken = 0, push_failures = 0, init_failures = 0, growths = 0;
    uint64_t next = 0;
    int phases = 0; /* deques initialised */
    for (int p = 0; p < STRESS_PHASES; p++) {
        weft_deque *dq = &s->dqs[p];
        phases = p + 1;
        const uint64_t end = n * (uint64_t)(p + 1) / STRESS_PHASES;
        bool first = true;
        while (next < end) {
            uint64_t burst = first ? STRESS_FIRST_BURST : 1 + rng_next(&rng) % 256;
            first = false;
            if (burst > end - next)
                burst = end - next;
            for (uint64_t k = 0; k < burst; k++) {
                struct weft_deque_array *a = current_array(dq);
                if (weft_deque_push(dq, item(next)) != 0) {
                    push_failures++;
                    continue; /* the item stays unseen: reported as lost */
                }
                next++;
                growths += current_array(dq) != a;
            }
            /* Pop a burst now and then, racing the thieves at the bottom; one time in
             * sixteen pop everything, racing them for the last element. */
            const uint64_t dice = rng_next(&rng) % 16;
            if (dice < 4) {
                uint64_t pops = dice == 0 ? UINT64_MAX : rng_next(&rng) % (burst + 1);
                for (; pops > 0; pops--) {
                    void *x = weft_deque_take(dq);
                    if (x == NULL)
                        break;
                    record_taken(s->seen, n, &s->invalid, x);
                    owner_taken++;
                }
            }
            /* Thieves lagging behind: let them catch up (bounds the deque's size). */
            if (weft_deque_size(dq) > STRESS_LIVE_LIMIT) {
                unsigned spins = 0;
                while (weft_deque_size(dq) > STRESS_LIVE_LIMIT / 2)
                    wait_backoff(&spins, 256);
            }
        }
        /* Drain before moving on: thieves never come back to an old phase. */
        void *x;
        while ((x = weft_deque_take(dq)) != NULL) {
            record_taken(s->seen, n, &s->invalid, x);
            owner_taken++;
        }
        if (p + 1 < STRESS_PHASES) {
            /* (No assertion while the thieves run: it would longjmp away and leave them.) */
            if (weft_deque_init(&s->dqs[p + 1], 2, owner_rec(f)) != 0) {
                init_failures++;
                break;
            }
            /* Release: publishes the initialised deque to the thieves' acquire load. */
            atomic_store_explicit(&s->phase, p + 1, memory_order_release);
        }
    }
    /* Release: everything is pushed and the last deque drained. */
    atomic_store_explicit(&s->done, true, memory_order_release);
    for (int i = 0; i < STRESS_THIEVES; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    const double elapsed = now_s() - t0;
    const unsigned dispatched =
        f->epoch_mode ? owner_rec(f)->n_dispatch - dispatched0 : 0; /* before destroy */

    uint64_t lost = 0, duplicated = 0, first_bad = UINT64_MAX;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t c = atomic_load_explicit(&s->seen[i], memory_order_relaxed);
        if (c != 1 && first_bad == UINT64_MAX)
            first_bad = i;
        lost += c == 0;
        duplicated += c > 1;
    }
    uint64_t stolen = 0, aborts = 0;
    for (int i = 0; i < STRESS_THIEVES; i++) {
        stolen += s->thief[i].ok;
        aborts += s->thief[i].abort;
    }
    print_message("    %s: %llu items in %.2f s: owner took %llu, thieves stole %llu "
                  "(%llu / %llu / %llu), %llu aborts, %llu growths, %u buffers reclaimed during "
                  "the race\n",
                  f->epoch_mode ? "epoch" : "retain", (unsigned long long)n, elapsed,
                  (unsigned long long)owner_taken, (unsigned long long)stolen,
                  (unsigned long long)s->thief[0].ok, (unsigned long long)s->thief[1].ok,
                  (unsigned long long)s->thief[2].ok, (unsigned long long)aborts,
                  (unsigned long long)growths, dispatched);
    if (lost || duplicated)
        print_message("    first bad item %llu: taken %u times\n", (unsigned long long)first_bad,
                      (unsigned)atomic_load(&s->seen[first_bad]));

    for (int p = 0; p < phases; p++)
        weft_deque_destroy(&s->dqs[p]);
    free(s->seen);
    free(s->dqs);
    const uint64_t invalid = atomic_load(&s->invalid);
    free(s);

    assert_int_equal(init_failures, 0);
    assert_int_equal(push_failures, 0);
    assert_int_equal(invalid, 0);
    assert_int_equal(lost, 0);
    assert_int_equal(duplicated, 0);
    assert_int_equal(owner_taken + stolen, n);
    /* The race really happened, with growth (and, with epochs, reclamation) inside it. */
    assert_true(stolen > 0);
    assert_true(owner_taken > 0);
    assert_true(growths >= (uint64_t)STRESS_PHASES * 4);
    if (f->epoch_mode)
        assert_true(dispatched > 0);
}

/* ---- publication: a thief sees what the owner wrote before pushing ------------------------- */

enum { PUBLISH_ITEMS = 1 << 18 };

struct payload {
    uint64_t words[4]; /* plain (non-atomic) fields: published by the push itself */
};

struct publish {
    struct fixture *f;
    weft_deque *dq;
    struct payload *payloads;
    uint64_t n;
    _Atomic uint64_t taken; /* stolen so far, by all thieves */
    _Atomic uint64_t wrong; /* payloads read with other contents than written */
};

static void *publish_thief(void *arg)
{
    struct thief_arg *ta = arg;
    struct publish *s = ta->ctx;
    ck_epoch_record_t *rec = thief_rec(s->f, ta->id);
    unsigned spins = 0;
    /* Relaxed: only a progress count; each element is ordered by the deque. */
    while (atomic_load_explicit(&s->taken, memory_order_relaxed) < s->n) {
        void *x = NULL;
        if (weft_deque_steal(s->dq, rec, &x) != WEFT_STEAL_OK) {
            wait_backoff(&spins, 256);
            continue;
        }
        spins = 0;
        const struct payload *pl = x;
        const uint64_t i = (uint64_t)(pl - s->payloads);
        /* Plain reads of what the owner wrote before the push: a data race (TSan) or a
         * stale value unless push -> steal is a happens-before edge, as documented. */
        for (int w = 0; w < 4; w++)
            if (pl->words[w] != i * 4 + (uint64_t)w + 1)
                atomic_fetch_add_explicit(&s->wrong, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->taken, 1, memory_order_relaxed);
    }
    return NULL;
}

static void deque_steal_sees_what_the_owner_wrote_before_push(void **state)
{
    struct fixture *f = *state;
    struct publish s = {.f = f, .dq = &f->dq, .n = PUBLISH_ITEMS / WEFT_STRESS_SCALE};
    s.payloads = malloc(s.n * sizeof(*s.payloads));
    assert_non_null(s.payloads);
    atomic_init(&s.taken, 0);
    atomic_init(&s.wrong, 0);
    assert_int_equal(weft_deque_init(s.dq, 2, owner_rec(f)), 0);

    enum { THIEVES = 2 };
    pthread_t th[THIEVES];
    struct thief_arg args[THIEVES];
    int started = 0;
    for (; started < THIEVES; started++) {
        args[started] = (struct thief_arg){&s, started};
        if (pthread_create(&th[started], NULL, publish_thief, &args[started]) != 0)
            break;
    }
    uint64_t push_failures = 0;
    for (uint64_t i = 0; i < s.n && started == THIEVES; i++) {
        for (int w = 0; w < 4; w++) /* plain writes, then the push publishes them */
            s.payloads[i].words[w] = i * 4 + (uint64_t)w + 1;
        if (weft_deque_push(s.dq, &s.payloads[i]) != 0)
            push_failures++;
        /* Keep the deque small so that slots are reused while thieves read them. */
        unsigned spins = 0;
        while (weft_deque_size(s.dq) > 64)
            wait_backoff(&spins, 256);
    }
    if (started < THIEVES || push_failures != 0)
        atomic_store(&s.taken, s.n); /* let the thieves go */
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    weft_deque_destroy(s.dq);
    free(s.payloads);

    assert_int_equal(started, THIEVES);
    assert_int_equal(push_failures, 0);
    assert_int_equal(atomic_load(&s.taken), s.n);
    assert_int_equal(atomic_load(&s.wrong), 0);
}

/* ---- the race for the last element(s), round by round -------------------------------------- */

enum {
    RACE_THIEVES = 2,
    RACE_SPIN = 256,            /* pauses before a waiting thread yields its core */
    RACE_ARRIVE_SPIN = 1 << 14, /* the owner's bounded wait (no yield) for a thief to start */
    RACE_DELAY = 64,            /* both sides wait 0..63 pauses after lining up */
    RACE_WINDOW = 128,          /* rounds between two adjustments of the skew */
    RACE_MAX_SKEW = 1024,       /* bounds the extra wait; at the bound, the side waits and yields */
    RACE_MIN_ROUNDS = 2000,     /* rounds run even past the time budget */
    RACE_BUDGET_S = 6,          /* seconds: stop early on a slow or loaded machine */
};

struct race {
    struct fixture *f;
    weft_deque *dq;
    uint64_t n_items;      /* items 2r and 2r+1 belong to round r */
    _Atomic uint8_t *seen; /* times each item was taken */
    _Atomic uint64_t invalid;
    _Alignas(WEFT_CACHELINE) _Atomic uint64_t go; /* the round the thieves may start */
    _Atomic uint64_t last; /* the owner's last round; UINT64_MAX until it knows */
    _Alignas(WEFT_CACHELINE) _Atomic uint64_t ready; /* the round a thief is waiting for */
    _Atomic uint64_t arrived;                        /* the round a thief has seen `go` for */
    /* Extra pauses for the side that keeps winning (> 0: the owner waits longer, < 0: the
     * thieves), adjusted by the owner so that neither side wins nearly always, whatever the
     * build's speed (sanitizers) and the machine's load. */
    _Atomic int skew;
    struct {
        _Alignas(WEFT_CACHELINE) _Atomic uint64_t done; /* the last round this thief finished */
        uint64_t won;
    } thief[RACE_THIEVES];
};

static void *race_thief(void *arg)
{
    struct thief_arg *ta = arg;
    struct race *s = ta->ctx;
    ck_epoch_record_t *rec = thief_rec(s->f, ta->id);
    uint64_t rng = 1000 + (uint64_t)ta->id, won = 0;
    for (uint64_t r = 1;; r++) {
        unsigned spins = 0;
        bool stop = false;
        /* Tell the owner a thief is spinning for round r: it starts the round only then, so
         * the race is real even when the cores are oversubscribed. Relaxed: only a
         * rendezvous for timing, the deque orders the elements. */
        atomic_store_explicit(&s->ready, r, memory_order_relaxed);
        /* Acquire: pairs with the owner's release after pushing this round's elements. */
        while (!stop && atomic_load_explicit(&s->go, memory_order_acquire) < r) {
            /* Relaxed: `last` is set after the last `go`, and both only grow. */
            stop = atomic_load_explicit(&s->last, memory_order_relaxed) < r;
            wait_backoff(&spins, RACE_SPIN);
        }
        if (stop)
            break;
        /* Relaxed, like `ready`. */
        atomic_store_explicit(&s->arrived, r, memory_order_relaxed);
        /* Relaxed: a tuning knob, any recent value will do. */
        const int skew = atomic_load_explicit(&s->skew, memory_order_relaxed);
        if (skew <= -RACE_MAX_SKEW) /* the owner keeps losing even so: let it run */
            sched_yield();
        spin_delay((unsigned)(rng_next(&rng) % RACE_DELAY) + (unsigned)(skew < 0 ? -skew : 0));
        for (;;) {
            void *x = NULL;
            enum weft_steal_result res = weft_deque_steal(s->dq, rec, &x);
            if (res == WEFT_STEAL_EMPTY)
                break;
            if (res == WEFT_STEAL_OK) {
                record_taken(s->seen, s->n_items, &s->invalid, x);
                won++;
            }
        }
        /* Release: our record of this round happens-before the owner's check. */
        atomic_store_explicit(&s->thief[ta->id].done, r, memory_order_release);
    }
    s->thief[ta->id].won = won;
    return NULL;
}

static void deque_last_element_race(void **state)
{
    struct fixture *f = *state;
    const uint64_t max_rounds = 100000 / WEFT_STRESS_SCALE;
    struct race *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->f = f;
    s->dq = &f->dq;
    s->n_items = 2 * max_rounds + 2;
    s->seen = calloc(s->n_items, sizeof(*s->seen));
    assert_non_null(s->seen);
    atomic_init(&s->go, 0);
    atomic_init(&s->last, UINT64_MAX);
    atomic_init(&s->ready, 0);
    atomic_init(&s->arrived, 0);
    atomic_init(&s->skew, 0);
    atomic_init(&s->invalid, 0);
    for (int i = 0; i < RACE_THIEVES; i++)
        atomic_init(&s->thief[i].done, 0);
    assert_int_equal(weft_deque_init(s->dq, 2, owner_rec(f)), 0);

    pthread_t th[RACE_THIEVES];
    struct thief_arg args[RACE_THIEVES];
    int started = 0;
    for (; started < RACE_THIEVES; started++) {
        args[started] = (struct thief_arg){s, started};
        if (pthread_create(&th[started], NULL, race_thief, &args[started]) != 0)
            break;
    }
    if (started < RACE_THIEVES) {
        atomic_store(&s->last, 0);
        for (int i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        fail_msg("pthread_create failed");
    }

    const double t0 = now_s();
    uint64_t rng = 99, rounds = 0, owner_won = 0, expected = 0;
    uint64_t bad_rounds = 0, first_bad_round = 0, nonempty = 0, push_failures = 0;
    uint64_t all_owner = 0, all_thieves = 0, split = 0; /* how rounds ended */
    uint64_t window_owner = 0, window_thieves = 0;
    int skew = 0; /* the owner's copy of s->skew */
    for (uint64_t r = 1; r <= max_rounds; r++) {
        unsigned spins = 0;
        /* Line up: wait for a thief to spin for this round (see race_thief). */
        while (atomic_load_explicit(&s->ready, memory_order_relaxed) < r)
            wait_backoff(&spins, RACE_SPIN);
        /* Alternately one element (the owner's take is then the CAS on the last one) and
         * two (a plain take, then the last one). */
        const unsigned k = 1 + (unsigned)(r & 1);
        for (unsigned j = 0; j < k; j++)
            if (weft_deque_push(s->dq, item(2 * r + j)) != 0)
                push_failures++;
        expected += k;
        /* Release: the pushes happen-before the thieves start this round. */
        atomic_store_explicit(&s->go, r, memory_order_release);
        /* Wait, a bounded time and without yielding, for a thief to have seen `go`: both
         * sides are then running and both wait a random delay, so the take and the steals
         * overlap. (A thief that is off its core does not arrive in time: the owner just
         * goes on, and the skew makes up for it.) */
        for (unsigned i = 0; i < RACE_ARRIVE_SPIN; i++) {
            if (atomic_load_explicit(&s->arrived, memory_order_relaxed) >= r)
                break;
            cpu_relax();
        }
        if (skew >= RACE_MAX_SKEW) /* the thieves keep losing even so: let them run */
            sched_yield();
        spin_delay((unsigned)(rng_next(&rng) % RACE_DELAY) + (unsigned)(skew > 0 ? skew : 0));
        uint64_t got = 0;
        void *x;
        while ((x = weft_deque_take(s->dq)) != NULL) {
            record_taken(s->seen, s->n_items, &s->invalid, x);
            got++;
        }
        owner_won += got;
        for (int i = 0; i < RACE_THIEVES; i++) {
            spins = 0;
            /* Acquire: pairs with the thief's release at the end of its round. */
            while (atomic_load_explicit(&s->thief[i].done, memory_order_acquire) < r)
                wait_backoff(&spins, RACE_SPIN);
        }
        /* Everyone is done with round r: each of its elements was taken exactly once, and
         * the deque is empty again. */
        bool bad = false;
        for (unsigned j = 0; j < k; j++)
            bad |= atomic_load_explicit(&s->seen[2 * r + j], memory_order_relaxed) != 1;
        if (weft_deque_size(s->dq) != 0) {
            nonempty++;
            bad = true;
        }
        if (bad && bad_rounds++ == 0)
            first_bad_round = r;
        rounds = r;

        all_owner += got == k;
        all_thieves += got == 0;
        split += got != 0 && got != k;
        window_owner += got == k;
        window_thieves += got == 0;
        if (r % RACE_WINDOW == 0) {
            const int step = 16 + (skew < 0 ? -skew : skew) / 4;
            if (window_owner > 3 * window_thieves)
                skew = skew + step > RACE_MAX_SKEW ? RACE_MAX_SKEW : skew + step;
            else if (window_thieves > 3 * window_owner)
                skew = skew - step < -RACE_MAX_SKEW ? -RACE_MAX_SKEW : skew - step;
            /* Relaxed: see the thief's load. */
            atomic_store_explicit(&s->skew, skew, memory_order_relaxed);
            window_owner = window_thieves = 0;
            if (r >= RACE_MIN_ROUNDS && now_s() - t0 > RACE_BUDGET_S)
                break;
        }
    }
    atomic_store_explicit(&s->last, rounds, memory_order_relaxed);
    for (int i = 0; i < RACE_THIEVES; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    const double elapsed = now_s() - t0;

    uint64_t thieves_won = 0;
    for (int i = 0; i < RACE_THIEVES; i++)
        thieves_won += s->thief[i].won;
    uint64_t total = 0;
    for (uint64_t i = 0; i < s->n_items; i++)
        total += atomic_load_explicit(&s->seen[i], memory_order_relaxed);
    print_message("    %s: %llu rounds in %.2f s: %llu elements to the owner, %llu to the "
                  "thieves; rounds won outright by the owner %llu, by the thieves %llu, "
                  "split %llu; final skew %d\n",
                  f->epoch_mode ? "epoch" : "retain", (unsigned long long)rounds, elapsed,
                  (unsigned long long)owner_won, (unsigned long long)thieves_won,
                  (unsigned long long)all_owner, (unsigned long long)all_thieves,
                  (unsigned long long)split, skew);
    if (bad_rounds)
        print_message("    first bad round %llu\n", (unsigned long long)first_bad_round);
    const uint64_t invalid = atomic_load(&s->invalid);
    weft_deque_destroy(s->dq);
    free(s->seen);
    free(s);

    assert_int_equal(push_failures, 0);
    assert_int_equal(bad_rounds, 0);
    assert_int_equal(nonempty, 0);
    assert_int_equal(invalid, 0);
    assert_int_equal(total, expected);
    assert_int_equal(owner_won + thieves_won, expected);
    /* Both sides won some rounds: the race was real. */
    assert_true(owner_won > 0);
    assert_true(thieves_won > 0);
}

/* ---- main ---------------------------------------------------------------------------------- */

#define BOTH_MODES(fn)                                                                             \
    {#fn "/epoch", fn, setup_epoch, teardown, NULL},                                               \
    {                                                                                              \
#fn "/retain", fn, setup_retain, teardown, NULL                                            \
    }
#define EPOCH_ONLY(fn)                                                                             \
    {                                                                                              \
#fn, fn, setup_epoch, teardown, NULL                                                       \
    }
#define RETAIN_ONLY(fn)                                                                            \
    {                                                                                              \
#fn, fn, setup_retain, teardown, NULL                                                      \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH_MODES(deque_init_rounds_capacity_up_to_a_power_of_two),
        BOTH_MODES(deque_take_is_lifo_for_owner),
        BOTH_MODES(deque_steal_is_fifo),
        BOTH_MODES(deque_empty_take_and_steal_return_nothing),
        BOTH_MODES(deque_grows_across_many_resizes_keeping_order),
        BOTH_MODES(deque_matches_a_sequential_model_under_random_operations),
        EPOCH_ONLY(deque_epoch_mode_defers_freeing_a_buffer_a_thief_may_still_read),
        RETAIN_ONLY(deque_without_epoch_keeps_retired_buffers_until_destroy),
        BOTH_MODES(deque_stress_every_item_taken_exactly_once),
        BOTH_MODES(deque_steal_sees_what_the_owner_wrote_before_push),
        BOTH_MODES(deque_last_element_race),
    };
    return cmocka_run_group_tests_name("deque", tests, NULL, NULL);
}
