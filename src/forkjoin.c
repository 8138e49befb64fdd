/*
 * The fork-join fast path: weft_spawn / weft_join on caller-owned weft_task storage.
 *
 * Two levels, after the private/public split of Lace (van Dijk and van de Pol, 2014) and
 * the private deques of Acar, Charguéraud and Rainey (PPoPP 2013):
 *
 *   private stack   owner-only array of spawned tasks; spawn pushes, join pops, with plain
 *                   loads and stores: no atomic instruction, no fence, nothing shared.
 *   public deque    the Chase-Lev deque thieves steal from.
 *
 * A thief that finds a worker's deque empty sets the worker's `steal_req` flag. The owner
 * reads that flag, and whether any worker is idle, on every spawn (plain loads of lines
 * that stay in its cache until they change) and, when so, moves its OLDEST private task
 * onto the deque, where a thief takes it. A worker that waits (weft_block_) runs its own
 * private tasks first, newest first. Oldest first keeps the invariant that every task on the deque
 * is older than every task on the private stack, so joins, which go newest first, find their task
 * on top of the private stack, else at the bottom of the deque (Chase-Lev take), else stolen.
 *
 * Exactly-once: a task is in exactly one place at a time (private stack, deque, or taken),
 * and only the owner moves it from the first to the second. The flag is only a hint: a lost
 * request costs parallelism (the owner runs the task itself), never work. The Chase-Lev
 * StoreLoad fence is paid only for exposed tasks, which a thief asked for.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Makes room for one more private task. Returns false if memory ran out. */
static bool pstack_reserve(struct weft_worker *w)
{
    if (w->pbase > 0) {
        /* Exposed tasks left a gap at the base: slide down (owner-only memory). */
        memmove(w->pstack, w->pstack + w->pbase, (w->ptop - w->pbase) * sizeof(*w->pstack));
        w->ptop -= w->pbase;
        w->pbase = 0;
        if (w->ptop < w->pcap)
            return true;
    }
    size_t cap = w->pcap ? 2 * w->pcap : 256;
    struct weft_future **s = realloc(w->pstack, cap * sizeof(*s));
    if (s == NULL)
        return false;
    w->pstack = s;
    w->pcap = cap;
    return true;
}

int weft_expose_(struct weft_worker *w)
{
    /* Clear first: a request made after this store is seen at a later spawn. */
    atomic_store_explicit(&w->steal_req, 0, memory_order_relaxed);
    if (w->pbase == w->ptop)
        return 0;
    struct weft_future *f = w->pstack[w->pbase];
    /* The deque's push publishes the task with a release store (and may grow). If it cannot
     * grow, the task simply stays private. */
    if (weft_deque_push_inline(&w->dq, f) != 0)
        return 0;
    if (++w->pbase == w->ptop)
        w->pbase = w->ptop = 0;
    weft_notify_spawn_(w->pool);
    return 0;
}

/* weft_spawn's slow path: the private stack is full. */
static __attribute__((noinline)) int spawn_grow(struct weft_worker *w, struct weft_future *f)
{
    if (!pstack_reserve(w))
        return WEFT_ENOMEM;
    w->pstack[w->ptop++] = f;
    ctr_inc(&w->ctr.spawns);
    return 0; /* the next spawn looks at the steal requests */
}

WEFT_API int weft_spawn(weft_task *t, weft_fn fn, void *arg)
{
    struct weft_worker *w = weft_tls_.worker;
    if (WEFT_UNLIKELY(w == NULL))
        return WEFT_ENOTWORKER;
    if (WEFT_UNLIKELY(t == NULL || fn == NULL))
        return WEFT_EINVAL;
    struct weft_future *f = (struct weft_future *)(void *)t;
    /* Relaxed stores: the task is private; if it is ever exposed, the deque's release store
     * publishes these fields to the thief. */
    atomic_store_explicit(&f->state, ST_TASK | WEFT_PENDING, memory_order_relaxed);
    atomic_store_explicit(&f->thief, -1, memory_order_relaxed);
    f->fn = fn;
    f->arg = arg;
    if (WEFT_UNLIKELY(w->ptop == w->pcap))
        return spawn_grow(w, f); /* out of line: keeps this path free of saved registers */
    w->pstack[w->ptop++] = f;
    ctr_inc(&w->ctr.spawns);
    /* Expose the oldest private task when a thief asked, or when some worker is idle
     * (searching or parked): then `spawn(a); long work; join(a)` runs `a` in parallel even
     * though this worker spawns nothing more. In the steady state of a busy pool all three
     * loads hit lines that stay in this core's cache. Relaxed: hints (see the top). */
    struct weft_pool *p = w->pool;
    if (WEFT_UNLIKELY(atomic_load_explicit(&w->steal_req, memory_order_relaxed) != 0 ||
                      atomic_load_explicit(&p->nsearching, memory_order_relaxed) != 0 ||
                      atomic_load_explicit(&p->nsleeping, memory_order_relaxed) != 0))
        return weft_expose_(w); /* a tail call */
    return 0;
}

/* Runs a task that nobody else ever saw, as a plain call. */
static inline __attribute__((always_inline)) void *run_inline(struct weft_worker *w,
                                                              struct weft_future *f, int *err)
{
    int code;
    char *msg;
    void *v = weft_call_(f, f->fn, f->arg, &code, &msg);
    if (WEFT_UNLIKELY(msg != NULL))
        free(msg);                 /* weft_join reports the code only */
    ctr_inc(&w->ctr.inline_joins); /* weft_pool_stats adds these to tasks_run */
    if (err != NULL)
        *err = code;
    return code != 0 ? NULL : v;
}

/* weft_join's slow path: t is not on top of the private stack. */
static __attribute__((noinline)) void *join_slow(struct weft_worker *w, struct weft_future *f,
                                                 int *err)
{
    if (WEFT_UNLIKELY(w == NULL || f == NULL)) {
        if (err != NULL)
            *err = w == NULL ? WEFT_ENOTWORKER : WEFT_EINVAL;
        return NULL;
    }
    /* 1. The private stack, newest first. */
    while (w->ptop > w->pbase) {
        struct weft_future *x = w->pstack[--w->ptop];
        if (w->ptop == w->pbase)
            w->pbase = w->ptop = 0;
        if (x == f)
            return run_inline(w, f, err);
        /* Spawned after t and not joined yet (joins out of order): ours to run anyway. Its
         * own join will find it done. */
        weft_run_task_(w, x);
    }
    /* 2. The public deque: t was exposed. Tasks above it there are ours to run too. */
    for (;;) {
        struct weft_future *x = weft_deque_take_inline(&w->dq);
        if (x == NULL)
            break; /* stolen */
        if (x == f)
            return run_inline(w, f, err);
        weft_run_task_(w, x);
    }
    /* 3. Stolen: help (leapfrogging onto the thief first) until it is done. */
    weft_future_block_(f, -1, &f->thief);
    /* Acquire (the last load in weft_future_block_): pairs with the thief's publish;
     * value and err are visible. */
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    int code = (s & ST_MASK) == WEFT_FAILED ? f->err : 0;
    if (err != NULL)
        *err = code;
    return code != 0 ? NULL : f->value;
}

WEFT_API void *weft_join(weft_task *t, int *err)
{
    struct weft_worker *w = weft_tls_.worker;
    struct weft_future *f = (struct weft_future *)(void *)t;
    /* The common case, kept small: t is the newest private task (joins in reverse order of
     * spawning, nobody stole it). */
    if (WEFT_LIKELY(w != NULL && w->ptop > w->pbase && w->pstack[w->ptop - 1] == f)) {
        if (--w->ptop == w->pbase)
            w->pbase = w->ptop = 0;
        return run_inline(w, f, err);
    }
    return join_slow(w, f, err);
}
