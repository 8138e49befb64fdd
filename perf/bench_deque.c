/*
 * bench_deque — micro-benchmark of the Chase–Lev deque (deque/weft_deque.h) against a
 * deque protected by one pthread mutex, with the same operations on both:
 *
 *   push+take, batches   single thread: push 256 elements, take them back (LIFO); the takes
 *                        are the owner's fast path except the last of each batch
 *   push+take, single    single thread: push one element and take it back at once; every
 *                        take is a take of the last element (weft: the CAS on top)
 *   steal, T thieves     the owner keeps pushing (it waits while 1024 elements are queued)
 *                        and T thieves steal everything; throughput = items / wall time
 *
 * Each figure is the median of RUNS timed runs after one warm-up run, with min and max.
 * Every run checks that each element came back exactly once (count and sum, LIFO order for
 * the single-threaded runs) and the program exits 1 on any mismatch.
 *
 *   usage: bench_deque [scale]    scale multiplies the operation counts (default 1, > 0)
 *
 * weft's deque runs in its epoch mode (as in the pool): the owner and each thief hold a
 * ck_epoch record. On a machine with fewer cores than owner + thieves, the steal figures
 * measure time-sharing as much as the deque: the core count is printed with the table.
 */
#include "weft_deque.h"

#include <ck_epoch.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    RUNS = 9,                   /* timed runs per figure, after one warm-up */
    BATCH = 256,                /* elements per push/take batch */
    STEAL_LIMIT = 1024,         /* the owner waits while this many elements are queued */
    MAX_THIEVES = 2,            /* steal runs use 1 and 2 thieves */
    PAIRS_BASE = 1 << 22,       /* push+take pairs per run at scale 1 */
    STEAL_ITEMS_BASE = 1 << 20, /* items stolen per run at scale 1 */
};

static int mismatches; /* runs whose results did not check out */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static void backoff(unsigned *spins)
{
    if (++*spins < 128)
        cpu_relax();
    else
        sched_yield();
}

/* Items are the integers 1..n cast to pointers (non-NULL). */
static void *item(uint64_t i)
{
    return (void *)(uintptr_t)i;
}

/* ---- the baseline: a deque behind one pthread mutex ---------------------------------------- */

typedef struct {
    pthread_mutex_t lock;
    void **buf;
    int64_t mask;
    /* Atomic (relaxed, written under the lock) only so that mx_size, the owner's unlocked
     * estimate used for throttling, is not a data race. */
    _Atomic int64_t top, bottom;
} mx_deque;

static int mx_init(mx_deque *q, size_t capacity, ck_epoch_record_t *rec)
{
    (void)rec;
    int64_t cap = 2;
    while ((size_t)cap < capacity)
        cap <<= 1;
    q->buf = malloc((size_t)cap * sizeof(void *));
    if (q->buf == NULL)
        return -ENOMEM;
    q->mask = cap - 1;
    atomic_init(&q->top, 0);
    atomic_init(&q->bottom, 0);
    return pthread_mutex_init(&q->lock, NULL) == 0 ? 0 : -ENOMEM;
}

static void mx_destroy(mx_deque *q)
{
    pthread_mutex_destroy(&q->lock);
    free(q->buf);
}

static inline int mx_push(mx_deque *q, void *x)
{
    pthread_mutex_lock(&q->lock);
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    if (b - t > q->mask) { /* full: double, as the Chase–Lev deque does */
        int64_t cap = (q->mask + 1) * 2;
        void **nb = malloc((size_t)cap * sizeof(void *));
        if (nb == NULL) {
            pthread_mutex_unlock(&q->lock);
            return -ENOMEM;
        }
        for (int64_t i = t; i < b; i++)
            nb[i & (cap - 1)] = q->buf[i & q->mask];
        free(q->buf);
        q->buf = nb;
        q->mask = cap - 1;
    }
    q->buf[b & q->mask] = x;
    atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

static inline void *mx_take(mx_deque *q)
{
    void *x = NULL;
    pthread_mutex_lock(&q->lock);
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    if (b > t) {
        x = q->buf[(b - 1) & q->mask];
        atomic_store_explicit(&q->bottom, b - 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&q->lock);
    return x;
}

static inline enum weft_steal_result mx_steal(mx_deque *q, ck_epoch_record_t *rec, void **out)
{
    (void)rec;
    enum weft_steal_result r = WEFT_STEAL_EMPTY;
    pthread_mutex_lock(&q->lock);
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    if (t < b) {
        *out = q->buf[t & q->mask];
        atomic_store_explicit(&q->top, t + 1, memory_order_relaxed);
        r = WEFT_STEAL_OK;
    }
    pthread_mutex_unlock(&q->lock);
    return r;
}

static inline int64_t mx_size(mx_deque *q)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    return b > t ? b - t : 0;
}

/* ---- weft's deque under the same names (its inline hot paths, as the pool uses them) ------- */

typedef weft_deque lf_deque;

static int lf_init(lf_deque *q, size_t capacity, ck_epoch_record_t *rec)
{
    return weft_deque_init(q, capacity, rec);
}

static void lf_destroy(lf_deque *q)
{
    weft_deque_destroy(q);
}

static inline int lf_push(lf_deque *q, void *x)
{
    return weft_deque_push_inline(q, x);
}

static inline void *lf_take(lf_deque *q)
{
    return weft_deque_take_inline(q);
}

static inline enum weft_steal_result lf_steal(lf_deque *q, ck_epoch_record_t *rec, void **out)
{
    return weft_deque_steal(q, rec, out);
}

static inline int64_t lf_size(lf_deque *q)
{
    return weft_deque_size(q);
}

/* ---- epoch records for weft (owner + thieves), registered once ----------------------------- */

static ck_epoch_t epoch;
static ck_epoch_record_t records[1 + MAX_THIEVES]; /* [0]: the owner's */

/* After destroying a weft deque: free the buffers its growth deferred through ck_epoch. */
static void lf_reclaim(void)
{
    ck_epoch_barrier(&records[0]);
}

static void mx_reclaim(void) {}

/* ---- the benchmarks, instantiated for each implementation ---------------------------------- */

struct steal_ctx {
    void *q;
    ck_epoch_record_t *rec;
    uint64_t n;          /* items 1..n */
    _Atomic bool *start; /* set once the owner starts pushing */
    _Atomic bool *done;  /* set once the owner has pushed everything */
    uint64_t count, sum; /* out: what this thief stole */
    uint64_t bad;        /* out: elements out of 1..n */
};

#define DEFINE_BENCH(P)                                                                            \
    /* Seconds for `pairs` push+take pairs in batches of `batch`; checks LIFO order. */            \
    static double P##_pushtake(uint64_t pairs, unsigned batch)                                     \
    {                                                                                              \
        P##_deque q;                                                                               \
        if (P##_init(&q, 16, &records[0]) != 0) { /* grows */                                      \
            mismatches++;                                                                          \
            return 0;                                                                              \
        }                                                                                          \
        uint64_t wrong = 0;                                                                        \
        const double t0 = now_s();                                                                 \
        for (uint64_t done = 0; done < pairs; done += batch) {                                     \
            for (unsigned j = 0; j < batch; j++)                                                   \
                wrong += P##_push(&q, item(done + j + 1)) != 0;                                    \
            for (unsigned j = batch; j-- > 0;)                                                     \
                wrong += P##_take(&q) != item(done + j + 1);                                       \
        }                                                                                          \
        const double t = now_s() - t0;                                                             \
        wrong += P##_take(&q) != NULL;                                                             \
        P##_destroy(&q);                                                                           \
        P##_reclaim();                                                                             \
        if (wrong != 0) {                                                                          \
            fprintf(stderr, "bench_deque: " #P " push+take: %llu mismatches\n",                    \
                    (unsigned long long)wrong);                                                    \
            mismatches++;                                                                          \
        }                                                                                          \
        return t;                                                                                  \
    }                                                                                              \
                                                                                                   \
    static void *P##_thief(void *arg)                                                              \
    {                                                                                              \
        struct steal_ctx *c = arg;                                                                 \
        P##_deque *q = c->q;                                                                       \
        uint64_t count = 0, sum = 0, bad = 0;                                                      \
        unsigned spins = 0;                                                                        \
        while (!atomic_load_explicit(c->start, memory_order_acquire))                              \
            backoff(&spins);                                                                       \
        spins = 0;                                                                                 \
        for (;;) {                                                                                 \
            /* Acquire: with done set, the pushes are all visible: EMPTY is then final. */         \
            const bool done = atomic_load_explicit(c->done, memory_order_acquire);                 \
            void *x = NULL;                                                                        \
            enum weft_steal_result r = P##_steal(q, c->rec, &x);                                   \
            if (r == WEFT_STEAL_OK) {                                                              \
                const uint64_t v = (uint64_t)(uintptr_t)x;                                         \
                bad += v == 0 || v > c->n;                                                         \
                count++;                                                                           \
                sum += v;                                                                          \
                spins = 0;                                                                         \
            } else if (r == WEFT_STEAL_ABORT) {                                                    \
                continue; /* lost a race: retry at once */                                         \
            } else if (done) {                                                                     \
                break;                                                                             \
            } else {                                                                               \
                backoff(&spins);                                                                   \
            }                                                                                      \
        }                                                                                          \
        c->count = count;                                                                          \
        c->sum = sum;                                                                              \
        c->bad = bad;                                                                              \
        return NULL;                                                                               \
    }                                                                                              \
                                                                                                   \
    /* Seconds for `thieves` thieves to steal n items while this thread pushes them. */            \
    static double P##_steal_run(uint64_t n, int thieves)                                           \
    {                                                                                              \
        P##_deque q;                                                                               \
        if (P##_init(&q, 2 * STEAL_LIMIT, &records[0]) != 0) {                                     \
            mismatches++;                                                                          \
            return 0;                                                                              \
        }                                                                                          \
        _Atomic bool start = false, done = false;                                                  \
        struct steal_ctx ctx[MAX_THIEVES];                                                         \
        pthread_t th[MAX_THIEVES];                                                                 \
        for (int i = 0; i < thieves; i++) {                                                        \
            ctx[i] = (struct steal_ctx){                                                           \
                .q = &q, .rec = &records[1 + i], .n = n, .start = &start, .done = &done};          \
            if (pthread_create(&th[i], NULL, P##_thief, &ctx[i]) != 0) {                           \
                fprintf(stderr, "bench_deque: pthread_create failed\n");                           \
                exit(1);                                                                           \
            }                                                                                      \
        }                                                                                          \
        uint64_t push_failures = 0;                                                                \
        const double t0 = now_s();                                                                 \
        atomic_store_explicit(&start, true, memory_order_release);                                 \
        for (uint64_t i = 1; i <= n; i++) {                                                        \
            unsigned spins = 0;                                                                    \
            while (P##_size(&q) >= STEAL_LIMIT)                                                    \
                backoff(&spins);                                                                   \
            push_failures += P##_push(&q, item(i)) != 0;                                           \
        }                                                                                          \
        atomic_store_explicit(&done, true, memory_order_release);                                  \
        for (int i = 0; i < thieves; i++)                                                          \
            pthread_join(th[i], NULL);                                                             \
        const double t = now_s() - t0;                                                             \
        uint64_t count = 0, sum = 0, bad = 0;                                                      \
        for (int i = 0; i < thieves; i++) {                                                        \
            count += ctx[i].count;                                                                 \
            sum += ctx[i].sum;                                                                     \
            bad += ctx[i].bad;                                                                     \
        }                                                                                          \
        const bool left = P##_take(&q) != NULL;                                                    \
        P##_destroy(&q);                                                                           \
        P##_reclaim();                                                                             \
        if (push_failures || bad || left || count != n || sum != n * (n + 1) / 2) {                \
            fprintf(stderr,                                                                        \
                    "bench_deque: " #P " steal, %d thieves: %llu of %llu items stolen, sum "       \
                    "%llu (expected %llu), %llu invalid, %s, %llu failed pushes\n",                \
                    thieves, (unsigned long long)count, (unsigned long long)n,                     \
                    (unsigned long long)sum, (unsigned long long)(n * (n + 1) / 2),                \
                    (unsigned long long)bad, left ? "deque not empty" : "deque empty",             \
                    (unsigned long long)push_failures);                                            \
            mismatches++;                                                                          \
        }                                                                                          \
        return t;                                                                                  \
    }

DEFINE_BENCH(lf)
DEFINE_BENCH(mx)

/* ---- statistics and the table -------------------------------------------------------------- */

struct stats {
    double median, min, max;
};

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median, min and max of per-run figures: `work` units per run, given as millions per
 * second (rate) or as nanoseconds per unit. */
static struct stats summarize(const double *secs, int n, double work, bool rate)
{
    double v[RUNS];
    for (int i = 0; i < n; i++)
        v[i] = rate ? work / secs[i] * 1e-6 /* millions per second */
                    : secs[i] * 1e9 / work; /* ns per unit of work */
    qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
    return (struct stats){v[n / 2], v[0], v[n - 1]};
}

static void print_header(void)
{
    printf("%-34s %-6s %10s %10s %10s  %-10s %s\n", "benchmark", "deque", "median", "min", "max",
           "unit", "weft vs mutex");
    printf("%-34s %-6s %10s %10s %10s  %-10s %s\n", "----------------------------------", "------",
           "----------", "----------", "----------", "----------", "-------------");
}

static void print_pair(const char *name, const char *unit, struct stats lf, struct stats mx,
                       bool higher_is_better)
{
    const double ratio = higher_is_better ? lf.median / mx.median : mx.median / lf.median;
    printf("%-34s %-6s %10.2f %10.2f %10.2f  %-10s %.1fx %s\n", name, "weft", lf.median, lf.min,
           lf.max, unit, ratio, ratio >= 1 ? "faster" : "slower");
    printf("%-34s %-6s %10.2f %10.2f %10.2f  %-10s\n", "", "mutex", mx.median, mx.min, mx.max,
           unit);
}

typedef double (*pushtake_fn)(uint64_t, unsigned);
typedef double (*steal_fn)(uint64_t, int);

static void time_pushtake(pushtake_fn fn, uint64_t pairs, unsigned batch, double *secs)
{
    (void)fn(pairs, batch); /* warm-up */
    for (int i = 0; i < RUNS; i++)
        secs[i] = fn(pairs, batch);
}

static void time_steal(steal_fn fn, uint64_t n, int thieves, double *secs)
{
    (void)fn(n, thieves); /* warm-up */
    for (int i = 0; i < RUNS; i++)
        secs[i] = fn(n, thieves);
}

int main(int argc, char **argv)
{
    double scale = 1;
    if (argc > 2 || (argc == 2 && ((scale = strtod(argv[1], NULL)) <= 0 || scale > 1000))) {
        fprintf(stderr, "usage: %s [scale]   (0 < scale <= 1000, default 1)\n", argv[0]);
        return 2;
    }
    uint64_t pairs = (uint64_t)(PAIRS_BASE * scale);
    pairs = pairs < BATCH ? BATCH : pairs / BATCH * BATCH;
    uint64_t steal_items = (uint64_t)(STEAL_ITEMS_BASE * scale);
    if (steal_items < 1000)
        steal_items = 1000;

    ck_epoch_init(&epoch);
    for (int i = 0; i < 1 + MAX_THIEVES; i++)
        ck_epoch_register(&epoch, &records[i], NULL);

    const double t_start = now_s();
    printf("bench_deque: weft's Chase-Lev deque vs a pthread-mutex deque; %ld CPUs online; "
           "scale %g\n",
           sysconf(_SC_NPROCESSORS_ONLN), scale);
    printf("each figure: median of %d runs after 1 warm-up (min, max); push+take: %llu pairs "
           "per run; steal: %llu items per run\n\n",
           RUNS, (unsigned long long)pairs, (unsigned long long)steal_items);
    print_header();

    double lf_s[RUNS], mx_s[RUNS];
    time_pushtake(lf_pushtake, pairs, BATCH, lf_s);
    time_pushtake(mx_pushtake, pairs, BATCH, mx_s);
    print_pair("push+take, batches of 256", "ns/pair", summarize(lf_s, RUNS, (double)pairs, false),
               summarize(mx_s, RUNS, (double)pairs, false), false);

    time_pushtake(lf_pushtake, pairs, 1, lf_s);
    time_pushtake(mx_pushtake, pairs, 1, mx_s);
    print_pair("push+take, one at a time", "ns/pair", summarize(lf_s, RUNS, (double)pairs, false),
               summarize(mx_s, RUNS, (double)pairs, false), false);

    for (int thieves = 1; thieves <= MAX_THIEVES; thieves++) {
        char name[64];
        time_steal(lf_steal_run, steal_items, thieves, lf_s);
        time_steal(mx_steal_run, steal_items, thieves, mx_s);
        snprintf(name, sizeof(name), "steal, %d thie%s, owner pushing", thieves,
                 thieves == 1 ? "f" : "ves");
        print_pair(name, "M steals/s", summarize(lf_s, RUNS, (double)steal_items, true),
                   summarize(mx_s, RUNS, (double)steal_items, true), true);
        snprintf(name, sizeof(name), "  ns per stolen item (wall)");
        print_pair(name, "ns/item", summarize(lf_s, RUNS, (double)steal_items, false),
                   summarize(mx_s, RUNS, (double)steal_items, false), false);
    }

    printf("\ntotal %.1f s; results checked: %s\n", now_s() - t_start,
           mismatches ? "MISMATCH" : "every element accounted for");
    return mismatches ? 1 : 0;
}
