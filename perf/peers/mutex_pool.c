/*
 * bench_mutex: the pool everyone writes by hand (runtime "mutex"), the floor for fan-out and
 * latency: one FIFO list under one mutex, one condition variable the workers sleep on, a
 * malloc'ed job per task; completion through an atomic countdown whose last arrival signals a
 * condition variable (a one-shot "future" for latency, a latch for fan-out).
 *
 *   fanout <n>      this thread submits n jobs, then waits on the latch.
 *   latency <n>     submit an empty job and wait for it, n times.
 * (No idle workload: its workers block in pthread_cond_wait, by construction.)
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct job {
    struct job *next;
    void (*fn)(void *);
    void *arg;
} job;

typedef struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    bool stop;
    int n;
    pthread_t *threads;
} pool;

static void *worker(void *arg)
{
    pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->head == NULL && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        job *j = p->head;
        if (j == NULL) { /* stopping, queue drained */
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        j->fn(j->arg);
        free(j);
    }
}

static void pool_start(pool *p, int n)
{
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->head = p->tail = NULL;
    p->stop = false;
    p->n = n;
    p->threads = perf_xmalloc((size_t)n * sizeof(pthread_t));
    for (int i = 0; i < n; i++)
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0)
            perf_die("mutex pool: pthread_create failed");
}

static void pool_submit(pool *p, void (*fn)(void *), void *arg)
{
    job *j = perf_xmalloc(sizeof(*j));
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (p->tail != NULL)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_mutex_unlock(&p->mu);
    pthread_cond_signal(&p->cv);
}

static void pool_stop(pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_mutex_unlock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    for (int i = 0; i < p->n; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

/* Completion: a countdown of `count` arrivals (a one-shot future at 1). Arrivals are atomic;
 * the last one takes the mutex and signals the condition variable the waiter sleeps on. */
typedef struct latch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic long count;
    _Atomic long sum;
    bool done;
} latch;

static void latch_init(latch *l, long count)
{
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    atomic_init(&l->count, count);
    atomic_init(&l->sum, 0);
    l->done = false;
}

static void latch_destroy(latch *l)
{
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
}

static void latch_arrive(latch *l, long value)
{
    atomic_fetch_add_explicit(&l->sum, value, memory_order_relaxed);
    if (atomic_fetch_sub_explicit(&l->count, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_lock(&l->mu);
        l->done = true;
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
}

static long latch_wait(latch *l)
{
    pthread_mutex_lock(&l->mu);
    while (!l->done)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
    return atomic_load_explicit(&l->sum, memory_order_relaxed);
}

/* ---------------------------------------------------------------------------------------
 * Workloads
 * ------------------------------------------------------------------------------------- */
static pool the_pool;

/* Fan-out: job i carries its value i+1 in its argument; the latch sums them. */
typedef struct fan {
    latch done;
    long *values;
} fan;

static fan *the_fan;

static void fan_job(void *arg)
{
    latch_arrive(&the_fan->done, *(long *)arg);
}

static double fanout_once(const perf_args *a, void *ctx, double *metric)
{
    fan *f = ctx;
    long n = a->n;
    latch_init(&f->done, n);
    the_fan = f;
    int64_t t0 = perf_now_ns();
    for (long i = 0; i < n; i++)
        pool_submit(&the_pool, fan_job, &f->values[i]);
    long sum = latch_wait(&f->done);
    int64_t t1 = perf_now_ns();
    latch_destroy(&f->done);
    perf_fanout_check(a->runtime, n, sum);
    *metric = (double)(t1 - t0) / (double)n;
    return (double)(t1 - t0) / 1e9;
}

static void done_job(void *arg)
{
    latch_arrive(arg, 1);
}

static void roundtrip(void *ctx, long i)
{
    (void)ctx;
    latch l;
    latch_init(&l, 1);
    pool_submit(&the_pool, done_job, &l);
    if (latch_wait(&l) != 1)
        perf_die("mutex latency: task %ld: wrong result", i);
    latch_destroy(&l);
}

static fan *fan_new(long n)
{
    fan *f = perf_xmalloc(sizeof(*f));
    f->values = perf_xmalloc((size_t)n * sizeof(long));
    for (long i = 0; i < n; i++)
        f->values[i] = i + 1;
    return f;
}

static void fan_free(fan *f)
{
    free(f->values);
    free(f);
}

int main(int argc, char **argv)
{
    perf_args a = perf_parse(argc, argv, "mutex", "fanout latency");
    pool_start(&the_pool, a.threads);
    if (strcmp(a.workload, "fanout") == 0) {
        fan *f = fan_new(a.n);
        perf_loop(&a, fanout_once, f, "ns/task");
        fan_free(f);
    } else if (strcmp(a.workload, "latency") == 0) {
        perf_latency_loop(&a, roundtrip, NULL);
    } else {
        perf_unsupported(&a);
    }
    pool_stop(&the_pool);
    return 0;
}
