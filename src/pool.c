/*
 * The pool: creation and teardown, submission from inside and outside, shutdown, and
 * statistics. The workers' loop is in worker.c.
 */
#include "alloc.h"
#include "futex.h"
#include "internal.h"

#include <ck_backoff.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pool_free(struct weft_pool *p)
{
    for (unsigned i = 0; i < p->n; i++) {
        struct weft_worker *w = &p->workers[i];
        /* No thread runs any more: reclaim the buffers the deques deferred through the
         * epoch (a barrier with no active section returns at once), then the live ones. */
        ck_epoch_barrier(&w->rec);
        weft_deque_destroy(&w->dq);
        free(w->pmem);
    }
    ck_epoch_barrier(&p->ctl_rec);
    pthread_mutex_destroy(&p->life_lock);
    free(p->workers);
    free(p);
}

static int join_workers(struct weft_pool *p)
{
    pthread_mutex_lock(&p->life_lock);
    if (!p->joined) {
        for (unsigned i = 0; i < p->n; i++)
            if (p->workers[i].started)
                pthread_join(p->workers[i].thread, NULL);
        p->joined = true;
    }
    pthread_mutex_unlock(&p->life_lock);
    return 0;
}

WEFT_API int weft_pool_create(const weft_pool_options *opts, weft_pool **out)
{
    if (out == NULL)
        return WEFT_EINVAL;
    *out = NULL;
    weft_pool_options o;
    size_t deque_size;
    int rc = weft_resolve_options_(opts, &o, &deque_size);
    if (rc != 0)
        return rc;

    struct weft_pool *p = aligned_alloc(WEFT_CACHELINE, sizeof(*p));
    if (p == NULL)
        return WEFT_ENOMEM;
    memset(p, 0, sizeof(*p));
    size_t wbytes = sizeof(struct weft_worker) * o.num_threads;
    p->workers = aligned_alloc(WEFT_CACHELINE,
                               (wbytes + WEFT_CACHELINE - 1) & ~(size_t)(WEFT_CACHELINE - 1));
    if (p->workers == NULL) {
        free(p);
        return WEFT_ENOMEM;
    }
    memset(p->workers, 0, wbytes);
    p->n = o.num_threads;
    p->spin_ns = o.spin_ns;
    p->bind = o.bind;
    p->stats = o.stats;
    p->deque_size = deque_size;
    snprintf(p->name, sizeof(p->name), "%s", o.name != NULL ? o.name : "weft");
    p->initializer = o.initializer;
    p->finalizer = o.finalizer;
    p->init_arg = o.init_arg;
    ck_epoch_init(&p->epoch);
    ck_epoch_register(&p->epoch, &p->ctl_rec, NULL);
    pthread_mutex_init(&p->life_lock, NULL);
    atomic_init(&p->run_state, POOL_RUNNING);

    int cpus[1024];
    weft_cpu_list_(p->bind, p->n, cpus);
    unsigned inited = 0;
    for (unsigned i = 0; i < p->n; i++, inited++) {
        struct weft_worker *w = &p->workers[i];
        w->pool = p;
        w->index = i;
        w->cpu = cpus[i];
        w->rng = 0x9E3779B97F4A7C15ull * (i + 1);
        atomic_init(&w->inbox, NULL);
        atomic_init(&w->steal_req, p->n > 1); /* the deque is empty */
        ck_epoch_register(&p->epoch, &w->rec, w);
        if (weft_pstack_init_(w) != 0)
            break;
        if (weft_deque_init(&w->dq, deque_size, &w->rec) != 0) {
            free(w->pmem);
            break;
        }
    }
    if (inited < p->n) {
        for (unsigned i = 0; i < inited; i++) {
            weft_deque_destroy(&p->workers[i].dq);
            free(p->workers[i].pmem);
        }
        pthread_mutex_destroy(&p->life_lock);
        free(p->workers);
        free(p);
        return WEFT_ENOMEM;
    }

    /* Thread creation publishes everything above to each worker (pthread_create is a
     * synchronisation point). */
    for (unsigned i = 0; i < p->n; i++) {
        struct weft_worker *w = &p->workers[i];
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (w->cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(w->cpu, &set);
            pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
        }
        rc = pthread_create(&w->thread, &attr, weft_worker_main_, w);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            /* Tear down what started: shut down, wake, join. */
            weft_pool_shutdown(p, false, false);
            /* Release the started workers from their start barrier. */
            atomic_fetch_add_explicit(&p->init_done, p->n, memory_order_acq_rel);
            weft_futex_wake(&p->init_done, INT_MAX);
            join_workers(p);
            pool_free(p);
            return -rc;
        }
        w->started = true;
    }
    *out = p;
    return 0;
}

WEFT_API unsigned weft_pool_size(const weft_pool *p)
{
    return p != NULL ? p->n : 0;
}

WEFT_API weft_pool *weft_current_pool(void)
{
    struct weft_worker *w = weft_tls_.worker;
    return w != NULL ? w->pool : NULL;
}

WEFT_API int weft_current_worker(void)
{
    struct weft_worker *w = weft_tls_.worker;
    return w != NULL ? (int)w->index : -1;
}

/* ---------------------------------------------------------------------------------------
 * Submission
 * ------------------------------------------------------------------------------------- */
static int closed_code(struct weft_pool *p)
{
    return atomic_load_explicit(&p->run_state, memory_order_acquire) == POOL_BROKEN
               ? WEFT_EBROKEN
               : WEFT_ESHUTDOWN;
}

/* Pushes f onto worker w's inbox. Returns -1 if the inbox is closed (shutdown), 1 if f is
 * the first of a new batch (the inbox was empty), 0 if it joined a batch not yet taken. */
static int inbox_push(struct weft_worker *w, struct weft_future *f)
{
    struct weft_future *h = atomic_load_explicit(&w->inbox, memory_order_relaxed);
    do {
        if (h == INBOX_CLOSED)
            return -1;
        f->next = h;
        /* Seq_cst (a release at least): publishes f (its task, argument, and whatever the
         * submitter wrote before submitting) to the worker that takes the list with an
         * acquire CAS. Every push is an RMW, so the release sequence of each push extends
         * through all later pushes and the taker synchronises with all of them. Seq_cst
         * for the parking protocol (weft_notify_): it replaces a fence, at no cost on x86
         * where a CAS is a locked instruction anyway. */
    } while (!atomic_compare_exchange_weak_explicit(&w->inbox, &h, f, memory_order_seq_cst,
                                                    memory_order_relaxed));
    return h == NULL;
}

WEFT_API int weft_submit(weft_pool *p, weft_fn fn, void *arg, weft_future **out)
{
    if (out == NULL)
        return WEFT_EINVAL;
    *out = NULL;
    if (p == NULL || fn == NULL)
        return WEFT_EINVAL;
    if (atomic_load_explicit(&p->run_state, memory_order_relaxed) != POOL_RUNNING)
        return closed_code(p);
    struct weft_future *f = weft_future_alloc_();
    if (f == NULL)
        return WEFT_ENOMEM;
    f->fn = fn;
    f->arg = arg;
    f->pool = p;
    atomic_init(&f->refs, 2); /* the caller's and the pool's (dropped after completion) */

    struct weft_tls *tl = &weft_tls_;
    struct weft_worker *w = tl->worker;
    if (w != NULL && w->pool == p) {
        /* From one of our workers: its own deque, LIFO for it, stealable by the others. */
        if (weft_deque_push_inline(&w->dq, f) != 0) {
            weft_free(f, sizeof(*f));
            return WEFT_ENOMEM;
        }
        ctr_inc(&w->ctr.task_submits);
        weft_notify_published_(p); /* the submitting task may now block on it */
    } else {
        /* From outside: onto this thread's current inbox (threads start at different
         * ones), until a worker has taken what it held; then onto the next worker's. A
         * burst therefore lands as one run of consecutive submissions per inbox, which a
         * worker's distribute() walks in allocation order (the hardware prefetcher follows
         * it; alternating inboxes made that walk 3x dearer), and each worker in turn gets
         * a batch of its own. */
        if (tl->submit_inbox == 0)
            tl->submit_inbox = (unsigned)(((uintptr_t)tl >> 6) * 2654435761u) | 1u;
        struct weft_worker *v = &p->workers[tl->submit_inbox % p->n];
        if (atomic_load_explicit(&v->inbox, memory_order_relaxed) == NULL)
            v = &p->workers[++tl->submit_inbox % p->n];
        int first = inbox_push(v, f);
        if (first < 0) {
            weft_free(f, sizeof(*f));
            return closed_code(p);
        }
        /* An outside submitter must never leave work with every worker asleep: the full
         * protocol (see weft_notify_), run by the first submission of each batch. A later
         * one joined a list that no worker has taken yet, after the first one's notify: the
         * worker that notify relied on (woken, searching, or re-checking before it parks)
         * takes the whole list, ours included, and calls for help if it holds more than one
         * task. So the rest skip the loads of the pool's parking counters, lines that every
         * parking or searching worker writes. */
        if (first)
            weft_notify_(p, true);
    }
    *out = f;
    return 0;
}

WEFT_API int weft_run(weft_pool *p, weft_fn fn, void *arg, void **value)
{
    weft_future *f;
    int rc = weft_submit(p, fn, arg, &f);
    if (rc != 0)
        return rc;
    rc = weft_future_result(f, WEFT_FOREVER, value);
    weft_future_release(f);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Shutdown
 * ------------------------------------------------------------------------------------- */

/* Pushes the chain first..last (linked through `next`) onto the orphan stack. */
static void orphan_push(struct weft_pool *p, struct weft_future *first, struct weft_future *last)
{
    struct weft_future *h = atomic_load_explicit(&p->orphans, memory_order_relaxed);
    do {
        last->next = h;
        /* Release: publishes the futures to the worker that takes the orphans (acquire). */
    } while (!atomic_compare_exchange_weak_explicit(&p->orphans, &h, first, memory_order_release,
                                                    memory_order_relaxed));
}

/* Fails (broken) or cancels every future in a detached list, dropping the pool's reference
 * of each. A spawned task is never cancelled (its parent joins it): it goes back to the
 * orphan list, for the workers to run. */
static void settle_list(struct weft_pool *p, struct weft_future *l, int code)
{
    while (l != NULL) {
        struct weft_future *next = l->next;
        if (atomic_load_explicit(&l->state, memory_order_relaxed) & ST_TASK) {
            orphan_push(p, l, l);
        } else {
            if (code == WEFT_ECANCELED)
                weft_future_try_cancel_(l);
            else if (weft_future_start_(l) == 0)
                weft_future_complete_(l, NULL, code, NULL);
            weft_future_release(l);
        }
        l = next;
    }
}

/* Closes every inbox; what they held is cancelled, failed, or handed to the workers through
 * the orphan list. Called with run_state already changed. */
void weft_close_inboxes_(struct weft_pool *p, int settle_code)
{
    for (unsigned i = 0; i < p->n; i++) {
        /* Acquire: we take ownership of the futures pushed so far (as a worker would). */
        struct weft_future *l =
            atomic_exchange_explicit(&p->workers[i].inbox, INBOX_CLOSED, memory_order_acquire);
        if (l == NULL || l == INBOX_CLOSED)
            continue;
        if (settle_code != 0) {
            settle_list(p, l, settle_code);
            continue;
        }
        /* Hand the list to the workers, on the orphan stack. */
        struct weft_future *tail = l;
        while (tail->next != NULL)
            tail = tail->next;
        orphan_push(p, l, tail);
    }
}

/* shutdown(cancel_futures): cancels the futures queued on the workers' deques right away,
 * even those of a worker busy with a task that never ends. The calling thread steals them
 * like any thief (with its own epoch record). A spawned task found there is not ours to
 * cancel (its parent will join it): it goes to the orphan list for the workers to run. */
static void cancel_deques(struct weft_pool *p)
{
    pthread_mutex_lock(&p->life_lock);
    for (unsigned i = 0; i < p->n; i++) {
        ck_backoff_t backoff = CK_BACKOFF_INITIALIZER;
        for (;;) {
            void *x;
            enum weft_steal_result r = weft_deque_steal(&p->workers[i].dq, &p->ctl_rec, &x);
            if (r == WEFT_STEAL_EMPTY)
                break;
            if (r == WEFT_STEAL_ABORT) {
                ck_backoff_eb(&backoff);
                continue;
            }
            struct weft_future *f = weft_entry_head_(x);
            if (!weft_entry_is_chain_(x))
                f->next = NULL; /* a lone task; a chain is a NULL-terminated list already */
            settle_list(p, f, WEFT_ECANCELED);
        }
    }
    pthread_mutex_unlock(&p->life_lock);
}

WEFT_API int weft_pool_shutdown(weft_pool *p, bool wait, bool cancel_futures)
{
    if (p == NULL)
        return WEFT_EINVAL;
    struct weft_worker *self = weft_tls_.worker;
    if (wait && self != NULL && self->pool == p)
        return WEFT_EINVAL; /* a worker cannot wait for itself to exit */
    if (cancel_futures)
        atomic_store_explicit(&p->cancel_pending, true, memory_order_seq_cst);
    /* Inboxes first, state second. A submitter that read RUNNING and pushes meanwhile is
     * either in a list we detach, or finds its inbox closed and reports the shutdown. A
     * worker that reads the new state (acquire) therefore finds every detached future on
     * the orphan list: none is stranded when the workers exit. */
    weft_close_inboxes_(p, cancel_futures ? WEFT_ECANCELED : 0);
    if (cancel_futures) {
        /* Orphans left by an earlier shutdown without cancel. */
        struct weft_future *l = atomic_exchange_explicit(&p->orphans, NULL, memory_order_acquire);
        settle_list(p, l, WEFT_ECANCELED);
    }
    if (cancel_futures)
        cancel_deques(p);
    int expected = POOL_RUNNING;
    atomic_compare_exchange_strong_explicit(&p->run_state, &expected, POOL_SHUTDOWN,
                                            memory_order_seq_cst, memory_order_seq_cst);
    /* Parked workers must see the new state: they exit once they find no work. */
    weft_wake_all_(p);
    if (wait)
        join_workers(p);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Statistics and destruction
 * ------------------------------------------------------------------------------------- */
static void read_counters(const weft_counters *c, weft_stats *s)
{
#define RD(f) atomic_load_explicit(&c->f, memory_order_relaxed)
    s->submits = RD(submits);
    s->steals = RD(steals);
    s->failed_steals = RD(failed_steals);
    s->inbox_takes = RD(inbox_takes);
    s->parks = RD(parks);
    s->wakes = RD(wakes);
    /* Every spawned task is run exactly once: by its join on the fast path (counted
     * nowhere: it is the hottest path), by its join after taking it back from the deque,
     * or through weft_run_task_ (tasks_run) after it was exposed or, still private, by its
     * worker while helping. So the fast-path joins are what the others leave over. Tasks
     * spawned and not joined yet count as joined until they are. */
    uint64_t spawns = RD(spawns), other = RD(exposed) + RD(private_runs);
    uint64_t inl = spawns + RD(taken_back);
    s->inline_joins = inl > other ? inl - other : 0;
    s->spawns = spawns + RD(task_submits);
    s->tasks_run = RD(tasks_run) + s->inline_joins;
#undef RD
}

WEFT_API int weft_pool_worker_stats(const weft_pool *p, unsigned worker, weft_stats *out)
{
    if (p == NULL || out == NULL || worker >= p->n)
        return WEFT_EINVAL;
    read_counters(&p->workers[worker].ctr, out);
    return 0;
}

WEFT_API int weft_pool_stats(const weft_pool *p, weft_stats *out)
{
    if (p == NULL || out == NULL)
        return WEFT_EINVAL;
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < p->n; i++) {
        weft_stats s;
        read_counters(&p->workers[i].ctr, &s);
        out->tasks_run += s.tasks_run;
        out->spawns += s.spawns;
        out->submits += s.submits;
        out->steals += s.steals;
        out->failed_steals += s.failed_steals;
        out->inbox_takes += s.inbox_takes;
        out->parks += s.parks;
        out->wakes += s.wakes;
        out->inline_joins += s.inline_joins;
    }
    return 0;
}

static void print_stats(const struct weft_pool *p)
{
    fprintf(stderr, "weft: pool '%s' statistics (%u workers)\n", p->name, p->n);
    fprintf(stderr, "%8s %12s %12s %10s %10s %12s %10s %8s %8s %12s\n", "worker", "tasks_run",
            "spawns", "submits", "steals", "fail_steals", "inbox", "parks", "wakes", "inline_join");
    weft_stats t;
    weft_pool_stats(p, &t);
    for (unsigned i = 0; i <= p->n; i++) {
        weft_stats s;
        char label[16];
        if (i < p->n) {
            weft_pool_worker_stats(p, i, &s);
            snprintf(label, sizeof(label), "%u", i);
        } else {
            s = t;
            snprintf(label, sizeof(label), "total");
        }
        fprintf(stderr,
                "%8s %12" PRIu64 " %12" PRIu64 " %10" PRIu64 " %10" PRIu64 " %12" PRIu64
                " %10" PRIu64 " %8" PRIu64 " %8" PRIu64 " %12" PRIu64 "\n",
                label, s.tasks_run, s.spawns, s.submits, s.steals, s.failed_steals, s.inbox_takes,
                s.parks, s.wakes, s.inline_joins);
    }
}

WEFT_API int weft_pool_destroy(weft_pool *p)
{
    if (p == NULL)
        return WEFT_EINVAL;
    struct weft_worker *self = weft_tls_.worker;
    if (self != NULL && self->pool == p)
        return WEFT_EINVAL;
    weft_pool_shutdown(p, true, false);
    if (p->stats)
        print_stats(p);
    /* Futures that are still referenced keep their outcome; their `pool` pointer is not
     * used once they are done. */
    pool_free(p);
    return 0;
}
