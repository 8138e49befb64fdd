/*
 * Deadlines on futures: weft_future_set_timeout and weft_submit_before.
 *
 * One timer thread per process, started on first use, sleeps on a condition variable
 * (CLOCK_MONOTONIC) until the earliest deadline of a binary min-heap. Timers are rare
 * compared with tasks, so a mutex is the right tool here: nothing on the submit/complete
 * path touches it.
 *
 * An entry is shared by two owners, each holding one of its two references: the heap
 * (which also holds a reference on the future) and the future's done-callback. Whoever
 * takes the entry out of the heap (the timer thread when it fires, or the callback when
 * the future completes first) drops the heap's references.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define NOT_IN_HEAP SIZE_MAX

struct timer_entry {
    int64_t deadline;
    weft_future *f;
    size_t idx; /* position in the heap, NOT_IN_HEAP once out; under the lock */
    bool start_only;
    _Atomic int refs;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct timer_entry **heap;
    size_t n, cap;
    int start_rc;
} T = {.mu = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t T_once = PTHREAD_ONCE_INIT;

static void entry_unref(struct timer_entry *e)
{
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        free(e);
}

static void heap_set(size_t i, struct timer_entry *e)
{
    T.heap[i] = e;
    e->idx = i;
}

static void sift_up(size_t i)
{
    struct timer_entry *e = T.heap[i];
    while (i > 0 && T.heap[(i - 1) / 2]->deadline > e->deadline) {
        heap_set(i, T.heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(i, e);
}

static void sift_down(size_t i)
{
    struct timer_entry *e = T.heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= T.n)
            break;
        if (c + 1 < T.n && T.heap[c + 1]->deadline < T.heap[c]->deadline)
            c++;
        if (T.heap[c]->deadline >= e->deadline)
            break;
        heap_set(i, T.heap[c]);
        i = c;
    }
    heap_set(i, e);
}

static void heap_remove(struct timer_entry *e)
{
    size_t i = e->idx;
    e->idx = NOT_IN_HEAP;
    struct timer_entry *last = T.heap[--T.n];
    if (i == T.n)
        return;
    heap_set(i, last);
    sift_down(i);
    sift_up(last->idx);
}

static void *timer_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "weft_timer");
    pthread_mutex_lock(&T.mu);
    for (;;) {
        if (T.n == 0) {
            pthread_cond_wait(&T.cv, &T.mu);
            continue;
        }
        struct timer_entry *e = T.heap[0];
        int64_t now = weft_now_ns();
        if (e->deadline > now) {
            struct timespec ts = {e->deadline / 1000000000, e->deadline % 1000000000};
            pthread_cond_timedwait(&T.cv, &T.mu, &ts);
            continue;
        }
        heap_remove(e);
        pthread_mutex_unlock(&T.mu);
        /* Outside the lock: expiring runs the future's callbacks, ours included. */
        weft_future_expire_(e->f, e->start_only);
        weft_future_release(e->f);
        entry_unref(e);
        pthread_mutex_lock(&T.mu);
    }
    return NULL;
}

static void timer_start(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&T.cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_t th;
    T.start_rc = pthread_create(&th, NULL, timer_main, NULL);
    if (T.start_rc == 0)
        pthread_detach(th);
}

static void timer_done_cb(weft_future *f, void *arg)
{
    (void)f;
    struct timer_entry *e = arg;
    bool removed = false;
    pthread_mutex_lock(&T.mu);
    if (e->idx != NOT_IN_HEAP) {
        heap_remove(e);
        removed = true;
    }
    pthread_mutex_unlock(&T.mu);
    if (removed) {
        /* The heap's references. Not the future's last: whoever completed it holds one
         * while its callbacks run. */
        weft_future_release(e->f);
        entry_unref(e);
    }
    entry_unref(e);
}

static int add_timer(weft_future *f, int64_t timeout_ns, bool start_only)
{
    pthread_once(&T_once, timer_start);
    if (T.start_rc != 0)
        return -T.start_rc;
    struct timer_entry *e = malloc(sizeof(*e));
    if (e == NULL)
        return WEFT_ENOMEM;
    e->deadline = weft_deadline_(timeout_ns);
    if (e->deadline < 0)
        e->deadline = INT64_MAX; /* beyond the clock's range: never fires */
    e->f = f;
    e->start_only = start_only;
    atomic_init(&e->refs, 2);
    weft_future_retain(f);
    pthread_mutex_lock(&T.mu);
    if (T.n == T.cap) {
        size_t cap = T.cap ? 2 * T.cap : 64;
        struct timer_entry **h = realloc(T.heap, cap * sizeof(*h));
        if (h == NULL) {
            pthread_mutex_unlock(&T.mu);
            weft_future_release(f);
            free(e);
            return WEFT_ENOMEM;
        }
        T.heap = h;
        T.cap = cap;
    }
    T.heap[T.n] = e;
    e->idx = T.n++;
    sift_up(e->idx);
    if (e->idx == 0)
        pthread_cond_signal(&T.cv);
    pthread_mutex_unlock(&T.mu);
    int rc = weft_future_add_done_callback(f, timer_done_cb, e);
    if (rc != 0)
        timer_done_cb(f, e); /* as if it had completed: take the entry back out */
    return rc;
}

WEFT_API int weft_future_set_timeout(weft_future *f, int64_t timeout_ns)
{
    if (f == NULL || timeout_ns < 0)
        return WEFT_EINVAL;
    if (weft_future_done(f))
        return WEFT_ESTATE;
    return add_timer(f, timeout_ns, false);
}

WEFT_API int weft_submit_before(weft_pool *pool, weft_fn fn, void *arg, int64_t start_timeout_ns,
                                weft_future **out)
{
    if (out != NULL)
        *out = NULL;
    if (start_timeout_ns < 0)
        return WEFT_EINVAL;
    int rc = weft_submit(pool, fn, arg, out);
    if (rc != 0)
        return rc;
    rc = add_timer(*out, start_timeout_ns, true);
    if (rc != 0) {
        /* Without its deadline the task must not run: cancel it if still possible. */
        weft_future_cancel(*out);
        weft_future_release(*out);
        *out = NULL;
    }
    return rc;
}
