/*
 * Collecting results: weft_wait, as_completed, weft_map.
 *
 * Waiting on many futures uses one "collector": a block shared between the waiting thread
 * and one done-callback per future. A callback pushes its entry onto the collector's
 * completion stack (lock-free), bumps the collector's futex word and wakes the waiter if it
 * sleeps. The waiter thus wakes once per completion at most and never polls.
 *
 * Wake-up argument (no lost wake-up):
 *   callback:  push entry [release CAS]; fetch_add(seq) [seq_cst]; load(sleeping) [seq_cst]
 *   waiter:    store(sleeping, 1) [seq_cst]; s = load(seq) [seq_cst]; drain stack [acquire];
 *              futex_wait(seq, s)
 * If the callback reads sleeping == 0, the waiter's store comes later in the seq_cst order,
 * so its load of seq sees the increment, which follows the push: its drain sees the entry.
 * Otherwise the callback wakes it; and if the increment lands between the waiter's load and
 * its sleep, futex_wait returns at once because seq != s.
 *
 * The collector is reference counted (the waiter + one per registered callback), because
 * callbacks cannot be unregistered: a waiter that returns early (first completed, timeout)
 * leaves them behind, and the last one to run frees the block.
 */
#include "alloc.h"
#include "futex.h"
#include "internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct centry {
    struct collector *c;
    weft_future *f;
    size_t slot; /* index among the distinct futures */
    struct centry *next;
    bool queued;  /* on the iterator's ready list (as_completed) */
    bool yielded; /* handed to the caller (as_completed) */
};

struct collector {
    _Atomic uint32_t refs;
    _Atomic uint32_t seq;
    _Atomic uint32_t sleeping;
    _Atomic(struct centry *) completed; /* stack, newest first */
    size_t n;
    struct centry e[];
};

static struct collector *collector_new(size_t n)
{
    struct collector *c = malloc(sizeof(*c) + n * sizeof(struct centry));
    if (c == NULL)
        return NULL;
    atomic_init(&c->refs, 1);
    atomic_init(&c->seq, 0);
    atomic_init(&c->sleeping, 0);
    atomic_init(&c->completed, NULL);
    c->n = n;
    return c;
}

static void collector_unref(struct collector *c)
{
    /* Acq_rel: the last dropper sees every other user's writes before freeing. */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        free(c);
}

static void collector_cb(weft_future *f, void *arg)
{
    (void)f;
    struct centry *e = arg;
    struct collector *c = e->c;
    struct centry *h = atomic_load_explicit(&c->completed, memory_order_relaxed);
    do {
        e->next = h;
        /* Release: publishes e->next to the draining waiter. */
    } while (!atomic_compare_exchange_weak_explicit(&c->completed, &h, e, memory_order_release,
                                                    memory_order_relaxed));
    atomic_fetch_add_explicit(&c->seq, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&c->sleeping, memory_order_seq_cst))
        weft_futex_wake(&c->seq, INT_MAX);
    collector_unref(c);
}

/* Registers the callback of entry i; returns 0 or WEFT_ENOMEM. */
static int collector_watch(struct collector *c, size_t i)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    int rc = weft_future_add_done_callback(c->e[i].f, collector_cb, &c->e[i]);
    if (rc != 0)
        atomic_fetch_sub_explicit(&c->refs, 1, memory_order_relaxed);
    return rc;
}

/* Takes the entries completed so far, oldest first. */
static struct centry *collector_drain(struct collector *c)
{
    if (atomic_load_explicit(&c->completed, memory_order_relaxed) == NULL)
        return NULL;
    /* Acquire: pairs with the callbacks' release CAS. */
    struct centry *l = atomic_exchange_explicit(&c->completed, NULL, memory_order_acquire);
    struct centry *fwd = NULL;
    while (l != NULL) {
        struct centry *next = l->next;
        l->next = fwd;
        fwd = l;
        l = next;
    }
    return fwd;
}

static bool collector_arm(struct collector *c, _Atomic uint32_t **word, uint32_t *expect)
{
    atomic_store_explicit(&c->sleeping, 1, memory_order_seq_cst);
    *expect = atomic_load_explicit(&c->seq, memory_order_seq_cst);
    *word = &c->seq;
    if (atomic_load_explicit(&c->completed, memory_order_acquire) != NULL) {
        atomic_store_explicit(&c->sleeping, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

static void collector_disarm(struct collector *c)
{
    atomic_store_explicit(&c->sleeping, 0, memory_order_relaxed);
}

/* Distinct futures: uniq[0..*m-1] in first-seen (input) order, and, if map is not NULL,
 * map[i] = the index in uniq of fs[i]. O(n log n). */
struct pidx {
    weft_future *f;
    size_t i;
};
static int by_ptr(const void *a, const void *b)
{
    const struct pidx *x = a, *y = b;
    if (x->f != y->f)
        return x->f < y->f ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}
static int by_idx(const void *a, const void *b)
{
    const struct pidx *x = a, *y = b;
    return x->i < y->i ? -1 : x->i > y->i;
}
static int distinct(weft_future *const *fs, size_t n, weft_future **uniq, size_t *m, size_t *map)
{
    struct pidx *v = malloc(n * sizeof(*v));
    struct pidx *runs = malloc(n * sizeof(*runs)); /* (run number as f, first index) */
    size_t *pos = malloc(n * sizeof(*pos));
    if (v == NULL || runs == NULL || pos == NULL) {
        free(v);
        free(runs);
        free(pos);
        return WEFT_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = (struct pidx){fs[i], i};
    qsort(v, n, sizeof(*v), by_ptr); /* equal pointers together, smallest index first */
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        if (j == 0 || v[j].f != v[j - 1].f) {
            runs[k] = (struct pidx){(weft_future *)(uintptr_t)k, v[j].i};
            k++;
        }
        if (map != NULL)
            map[v[j].i] = k - 1; /* run number, for now */
    }
    qsort(runs, k, sizeof(*runs), by_idx); /* runs in order of first appearance */
    for (size_t u = 0; u < k; u++) {
        uniq[u] = fs[runs[u].i];
        pos[(uintptr_t)runs[u].f] = u;
    }
    if (map != NULL)
        for (size_t i = 0; i < n; i++)
            map[i] = pos[map[i]];
    free(v);
    free(runs);
    free(pos);
    *m = k;
    return 0;
}

static int check_futures(weft_future *const *fs, size_t n)
{
    if (fs == NULL || n == 0)
        return WEFT_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (fs[i] == NULL)
            return WEFT_EINVAL;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * weft_wait
 * ------------------------------------------------------------------------------------- */
struct wait_ctx {
    struct collector *c;
    int mode;
    size_t pending; /* distinct futures not seen done */
    bool failed;
};

static void wait_account(struct wait_ctx *w, struct centry *e)
{
    for (; e != NULL; e = e->next) {
        w->pending--;
        if (weft_future_state(e->f) == WEFT_FAILED)
            w->failed = true;
    }
}

static bool wait_ready(void *ctx)
{
    struct wait_ctx *w = ctx;
    wait_account(w, collector_drain(w->c));
    if (w->mode == WEFT_FIRST_COMPLETED)
        return w->pending < w->c->n;
    if (w->mode == WEFT_FIRST_EXCEPTION && w->failed)
        return true;
    return w->pending == 0;
}

static bool wait_arm(void *ctx, _Atomic uint32_t **word, uint32_t *expect)
{
    return collector_arm(((struct wait_ctx *)ctx)->c, word, expect);
}

static void wait_disarm(void *ctx)
{
    collector_disarm(((struct wait_ctx *)ctx)->c);
}

/* Reads each distinct future's state once, so that done[] and *ndone agree, and so do the
 * entries of a duplicated future. ud: scratch space for m flags. */
static size_t fill_done(size_t n, bool *done, weft_future *const *uniq, size_t m, const size_t *map,
                        bool *ud)
{
    size_t k = 0;
    for (size_t u = 0; u < m; u++)
        k += ud[u] = weft_future_done(uniq[u]);
    if (done != NULL)
        for (size_t i = 0; i < n; i++)
            done[i] = ud[map[i]];
    return k;
}

WEFT_API int weft_wait(weft_future *const *fs, size_t n, int64_t timeout_ns, int mode, bool *done,
                       size_t *ndone)
{
    int rc = check_futures(fs, n);
    if (rc != 0)
        return rc;
    if (mode < WEFT_FIRST_COMPLETED || mode > WEFT_ALL_COMPLETED)
        return WEFT_EINVAL;
    int64_t deadline = weft_deadline_(timeout_ns);
    /* One allocation for the distinct futures, the input -> distinct map and the flags. */
    weft_future **uniq = malloc(n * (sizeof(*uniq) + sizeof(size_t) + sizeof(bool)));
    if (uniq == NULL)
        return WEFT_ENOMEM;
    size_t *map = (size_t *)(uniq + n);
    bool *ud = (bool *)(map + n);
    size_t m;
    if ((rc = distinct(fs, n, uniq, &m, map)) != 0) {
        free(uniq);
        return rc;
    }

    /* The condition may already hold: no registration at all. */
    size_t ndone0 = 0;
    bool failed0 = false;
    for (size_t i = 0; i < m; i++) {
        int st = weft_future_state(uniq[i]);
        if (weft_future_done(uniq[i]))
            ndone0++;
        failed0 |= st == WEFT_FAILED;
    }
    bool holds = ndone0 == m || (mode == WEFT_FIRST_COMPLETED && ndone0 > 0) ||
                 (mode == WEFT_FIRST_EXCEPTION && failed0);
    if (!holds && timeout_ns != 0) {
        if (mode == WEFT_ALL_COMPLETED) {
            /* Every one must finish anyway: wait for each in turn, no callbacks needed. */
            holds = true;
            for (size_t i = 0; i < m && holds; i++)
                holds = weft_future_block_(uniq[i], deadline, NULL);
        } else {
            struct collector *c = collector_new(m);
            if (c == NULL) {
                free(uniq);
                return WEFT_ENOMEM;
            }
            struct wait_ctx w = {c, mode, m, false};
            for (size_t i = 0; i < m; i++)
                c->e[i] = (struct centry){c, uniq[i], i, NULL, false, false};
            /* Every future gets a callback (those already done run it at once), so the
             * completion stack accounts for each exactly once. */
            for (size_t i = 0; i < m && rc == 0; i++)
                rc = collector_watch(c, i);
            if (rc == 0) {
                struct weft_waitable wt = {wait_ready, wait_arm, wait_disarm, &w};
                holds = weft_block_(&wt, deadline, WEFT_WAITER_SPIN_NS, NULL);
            }
            collector_unref(c);
            if (rc != 0) {
                free(uniq);
                return rc;
            }
        }
    }
    size_t k = fill_done(n, done, uniq, m, map, ud);
    if (ndone != NULL)
        *ndone = k;
    free(uniq);
    return holds ? 0 : WEFT_ETIMEDOUT;
}

/* ---------------------------------------------------------------------------------------
 * as_completed
 * ------------------------------------------------------------------------------------- */
struct weft_as_completed {
    struct collector *c;
    struct centry *ready; /* to yield, oldest first */
    struct centry *ready_tail;
    size_t yielded;
    int64_t deadline;
};

static void ac_append(weft_as_completed *it, struct centry *l)
{
    while (l != NULL) {
        struct centry *next = l->next;
        l->next = NULL;
        if (it->ready_tail != NULL)
            it->ready_tail->next = l;
        else
            it->ready = l;
        it->ready_tail = l;
        l = next;
    }
}

WEFT_API int weft_as_completed_init(weft_future *const *fs, size_t n, int64_t timeout_ns,
                                    weft_as_completed **out)
{
    if (out == NULL)
        return WEFT_EINVAL;
    *out = NULL;
    int rc = check_futures(fs, n);
    if (rc != 0)
        return rc;
    weft_as_completed *it = calloc(1, sizeof(*it));
    weft_future **uniq = malloc(n * sizeof(*uniq));
    size_t m = 0;
    if (it == NULL || uniq == NULL || distinct(fs, n, uniq, &m, NULL) != 0 ||
        (it->c = collector_new(m)) == NULL) {
        free(uniq);
        free(it);
        return WEFT_ENOMEM;
    }
    it->deadline = weft_deadline_(timeout_ns);
    struct collector *c = it->c;
    /* Already done: yielded first, in input order, without a callback. */
    for (size_t i = 0; i < m; i++) {
        c->e[i] = (struct centry){c, uniq[i], i, NULL, false, false};
        weft_future_retain(uniq[i]); /* handed to the caller when yielded */
        if (weft_future_done(uniq[i])) {
            c->e[i].queued = true;
            ac_append(it, &c->e[i]);
        }
    }
    for (size_t i = 0; i < m && rc == 0; i++)
        if (!c->e[i].queued)
            rc = collector_watch(c, i);
    free(uniq);
    if (rc != 0) {
        weft_as_completed_destroy(it);
        return rc;
    }
    *out = it;
    return 0;
}

static bool ac_ready(void *ctx)
{
    weft_as_completed *it = ctx;
    ac_append(it, collector_drain(it->c));
    return it->ready != NULL;
}

static bool ac_arm(void *ctx, _Atomic uint32_t **word, uint32_t *expect)
{
    return collector_arm(((weft_as_completed *)ctx)->c, word, expect);
}

static void ac_disarm(void *ctx)
{
    collector_disarm(((weft_as_completed *)ctx)->c);
}

WEFT_API int weft_as_completed_next(weft_as_completed *it, weft_future **out)
{
    if (it == NULL || out == NULL)
        return WEFT_EINVAL;
    *out = NULL;
    if (it->yielded == it->c->n)
        return WEFT_EEND;
    if (!ac_ready(it)) {
        struct weft_waitable wt = {ac_ready, ac_arm, ac_disarm, it};
        int64_t deadline = it->deadline;
        if (deadline >= 0 && weft_now_ns() >= deadline)
            return WEFT_ETIMEDOUT;
        if (!weft_block_(&wt, deadline, WEFT_WAITER_SPIN_NS, NULL))
            return WEFT_ETIMEDOUT;
    }
    struct centry *e = it->ready;
    it->ready = e->next;
    if (it->ready == NULL)
        it->ready_tail = NULL;
    e->yielded = true;
    it->yielded++;
    *out = e->f; /* the reference taken at init goes to the caller */
    return 0;
}

WEFT_API void weft_as_completed_pending(const weft_as_completed *it, size_t *unfinished,
                                        size_t *total)
{
    if (it == NULL)
        return;
    if (unfinished != NULL)
        *unfinished = it->c->n - it->yielded;
    if (total != NULL)
        *total = it->c->n;
}

WEFT_API void weft_as_completed_destroy(weft_as_completed *it)
{
    if (it == NULL)
        return;
    for (size_t i = 0; i < it->c->n; i++)
        if (!it->c->e[i].yielded)
            weft_future_release(it->c->e[i].f);
    collector_unref(it->c);
    free(it);
}

/* ---------------------------------------------------------------------------------------
 * weft_map
 * ------------------------------------------------------------------------------------- */
struct map_chunk {
    weft_fn fn;
    void *const *in;
    void **out;
    size_t count;
    size_t failed_at; /* index in the chunk of the failing element */
};

static void *map_chunk_run(void *arg)
{
    struct map_chunk *c = arg;
    struct weft_tls *tl = &weft_tls_;
    for (size_t i = 0; i < c->count; i++) {
        void *v = c->fn(c->in[i]);
        if (tl->fail_code != 0) {
            /* The element called weft_fail: its code and message stay recorded for this
             * chunk's future; the rest of the chunk is not run. */
            c->failed_at = i;
            return NULL;
        }
        c->out[i] = v;
    }
    return NULL;
}

WEFT_API void weft_map_options_init(weft_map_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof(*o));
    o->timeout_ns = WEFT_FOREVER;
}

WEFT_API int weft_map(weft_pool *pool, weft_fn fn, void *const *inputs, size_t n, void **outputs,
                      const weft_map_options *opts, size_t *failed_index)
{
    if (pool == NULL || fn == NULL || inputs == NULL || outputs == NULL || n == 0)
        return WEFT_EINVAL;
    weft_map_options o;
    weft_map_options_init(&o);
    if (opts != NULL)
        o = *opts;
    size_t chunk = o.chunksize;
    if (chunk == 0) {
        chunk = n / (8 * (size_t)weft_pool_size(pool));
        chunk = chunk < 1 ? 1 : chunk > 4096 ? 4096 : chunk;
    }
    size_t nchunks = n / chunk + (n % chunk != 0); /* no overflow for any chunksize */
    size_t window = o.window == 0 || o.window > nchunks ? nchunks : o.window;
    int64_t deadline = weft_deadline_(o.timeout_ns);

    struct map_chunk *cs = malloc(window * sizeof(*cs));
    weft_future **fs = malloc(window * sizeof(*fs));
    if (cs == NULL || fs == NULL) {
        free(cs);
        free(fs);
        return WEFT_ENOMEM;
    }
    size_t submitted = 0, collected = 0;
    int rc = 0;
    size_t bad = 0;
    /* Slot k % window holds chunk k. */
    while (collected < nchunks) {
        while (rc == 0 && submitted < nchunks && submitted - collected < window) {
            size_t k = submitted, s = k % window, off = k * chunk;
            cs[s] = (struct map_chunk){fn, inputs + off, outputs + off,
                                       n - off < chunk ? n - off : chunk, 0};
            rc = weft_submit(pool, map_chunk_run, &cs[s], &fs[s]);
            if (rc != 0) {
                bad = off;
                break;
            }
            submitted++;
        }
        if (collected == submitted)
            break; /* a submission failed with nothing left in flight */
        size_t s = collected % window;
        if (rc == 0) {
            if (!weft_future_block_(fs[s], deadline, NULL)) {
                rc = WEFT_ETIMEDOUT;
                bad = collected * chunk;
            } else if ((rc = weft_future_error(fs[s])) != 0) {
                bad = collected * chunk + cs[s].failed_at;
            }
        }
        if (rc != 0) {
            /* Stop: cancel what has not started, then wait for what runs (it writes to
             * outputs), oldest first. */
            for (size_t k = collected; k < submitted; k++)
                weft_future_cancel(fs[k % window]);
            for (size_t k = collected; k < submitted; k++) {
                weft_future_block_(fs[k % window], -1, NULL);
                weft_future_release(fs[k % window]);
            }
            collected = submitted;
            break;
        }
        weft_future_release(fs[s]);
        collected++;
    }
    free(cs);
    free(fs);
    if (rc != 0 && failed_index != NULL)
        *failed_index = bad;
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * weft_parallel_for: recursive halving on the fork-join fast path
 * ------------------------------------------------------------------------------------- */
struct pfor {
    weft_range_fn fn;
    void *arg;
    size_t grain;
    _Atomic int err; /* first failure's code, 0 while none */
};

struct pfor_range {
    struct pfor *pf;
    size_t begin, end;
};

#define PFOR_MAX_SPLITS 64 /* halvings per task: enough for any size_t range */

static void *pfor_task(void *a)
{
    const struct pfor_range *r = a;
    struct pfor *pf = r->pf;
    size_t b = r->begin, e = r->end;
    weft_task t[PFOR_MAX_SPLITS];
    struct pfor_range right[PFOR_MAX_SPLITS];
    int k = 0;
    /* Split off right halves (stealable, largest first) until the rest fits the grain. */
    while (e - b > pf->grain && k < PFOR_MAX_SPLITS) {
        size_t mid = b + (e - b) / 2;
        right[k] = (struct pfor_range){pf, mid, e};
        if (weft_spawn(&t[k], pfor_task, &right[k]) != 0)
            break; /* cannot spawn: do the rest here */
        k++;
        e = mid;
    }
    /* Relaxed: a skip hint; the failure itself is published by the joins. */
    if (atomic_load_explicit(&pf->err, memory_order_relaxed) == 0) {
        int rc = pf->fn(b, e, pf->arg);
        int zero = 0;
        if (rc != 0)
            atomic_compare_exchange_strong_explicit(&pf->err, &zero, rc, memory_order_relaxed,
                                                    memory_order_relaxed);
    }
    while (k-- > 0)
        weft_join(&t[k], NULL);
    return NULL;
}

WEFT_API int weft_parallel_for(weft_pool *pool, size_t n, size_t grain, weft_range_fn fn, void *arg)
{
    if (pool == NULL || fn == NULL)
        return WEFT_EINVAL;
    if (n == 0)
        return 0;
    if (grain == 0) {
        grain = n / (8 * (size_t)weft_pool_size(pool));
        if (grain == 0)
            grain = 1;
    }
    struct pfor pf = {fn, arg, grain, 0};
    struct pfor_range root = {&pf, 0, n};
    if (weft_current_pool() == pool) {
        pfor_task(&root); /* nested: this worker is already in the pool */
    } else {
        int rc = weft_run(pool, pfor_task, &root, NULL);
        if (rc != 0)
            return rc;
    }
    return atomic_load_explicit(&pf.err, memory_order_relaxed);
}
