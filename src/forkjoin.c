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
 * Each worker keeps one hint, `steal_req`, set whenever its deque may have become empty:
 * at creation, after any steal from it, after the owner itself took from it, and by a thief
 * that found it empty. The owner reads the hint on every spawn (a plain load of a line that
 * stays in its cache until a thief writes it) and, when set, clears it and moves its OLDEST
 * private task onto the deque. So whenever a worker has spawned tasks, at least one of them
 * is public or about to be, and `spawn(a); long work; join(a)` runs `a` in parallel even
 * though this worker spawns nothing more; and every steal makes the owner expose one more
 * task, so exposure keeps pace with what thieves take. In a busy single-worker run the hint
 * is set once and nothing is ever exposed again. A worker that waits (weft_block_) runs its
 * own private tasks first, newest first. Oldest first keeps the invariant that every task on
 * the deque is older than every task on the private stack, so joins, which go newest first,
 * find their task on top of the private stack, else at the bottom of the deque (Chase-Lev
 * take), else stolen.
 *
 * Exactly-once: a task is in exactly one place at a time (private stack, deque, or taken),
 * and only the owner moves it from the first to the second. The flag is only a hint: a lost
 * request costs parallelism (the owner runs the task itself), never work. The Chase-Lev
 * StoreLoad fence is paid only for exposed tasks.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Makes room for one more private task. Returns false if memory ran out. */
static bool pstack_reserve(struct weft_worker *w)
{
    struct weft_future **first = w->pmem + 1; /* pmem[0] is the sentinel */
    if (w->pbase > first) {
        /* Exposed tasks left a gap at the base: slide down (owner-only memory). */
        size_t live = (size_t)(w->ptop - w->pbase);
        memmove(first, w->pbase, live * sizeof(*first));
        w->pbase = first;
        w->ptop = first + live;
        if (w->ptop < w->pend)
            return true;
    }
    size_t cap = 2 * (size_t)(w->pend - w->pmem);
    size_t live = (size_t)(w->ptop - w->pbase);
    struct weft_future **s = realloc(w->pmem, cap * sizeof(*s));
    if (s == NULL)
        return false;
    w->pmem = s;
    w->pbase = s + 1;
    w->ptop = s + 1 + live;
    w->pend = s + cap;
    return true;
}

int weft_pstack_init_(struct weft_worker *w)
{
    w->pmem = malloc(PSTACK_INIT * sizeof(*w->pmem));
    if (w->pmem == NULL)
        return WEFT_ENOMEM;
    w->pmem[0] = PSLOT_NONE;
    w->pbase = w->ptop = w->pmem + 1;
    w->pend = w->pmem + PSTACK_INIT;
    return 0;
}

int weft_expose_(struct weft_worker *w)
{
    /* Clear first: a request made after this store is seen at a later spawn. */
    atomic_store_explicit(&w->steal_req, 0, memory_order_relaxed);
    if (w->pbase == w->ptop)
        return 0;
    struct weft_future *f = *w->pbase;
    weft_task_init_(f);
    /* The deque's push publishes the task with a release store (and may grow). If it cannot
     * grow, the task simply stays private. */
    if (weft_deque_push_inline(&w->dq, f) != 0)
        return 0;
    *w->pbase++ = PSLOT_NONE; /* below pbase: never matches a join's check */
    ctr_inc(&w->ctr.exposed);
    weft_notify_spawn_(w->pool);
    return 0;
}

/* weft_spawn's slow path: the private stack is full. */
static __attribute__((noinline)) int spawn_grow(struct weft_worker *w, struct weft_future *f)
{
    if (!pstack_reserve(w))
        return WEFT_ENOMEM;
    *w->ptop++ = f;
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
    /* Plain stores: the task is private; if it is ever exposed, the deque's release store
     * publishes these fields to the thief. The state word is written only then (see
     * weft_task_init_). */
    f->fn = fn;
    f->arg = arg;
    f->root = weft_tls_.current;
    struct weft_future **top = w->ptop;
    if (WEFT_UNLIKELY(top == w->pend))
        return spawn_grow(w, f); /* out of line: keeps this path free of saved registers */
    *top = f;
    w->ptop = top + 1;
    ctr_inc(&w->ctr.spawns);
    /* Expose the oldest private task when the deque may be empty (see the top). Relaxed:
     * a hint. */
    if (WEFT_UNLIKELY(atomic_load_explicit(&w->steal_req, memory_order_relaxed) != 0))
        return weft_expose_(w); /* a tail call */
    return 0;
}

/* run_inline's slow path: the running task has itself failed already (its failure slot is
 * not clear), so weft_call_ sets that failure aside while f runs. */
static __attribute__((noinline)) void *run_inline_nested(struct weft_future *f, int *err)
{
    int code;
    char *msg;
    void *v = weft_call_(weft_tls_.current, f->fn, f->arg, &code, &msg);
    free(msg); /* weft_join reports the code only */
    if (err != NULL)
        *err = code;
    return code != 0 ? NULL : v;
}

/* Runs a task that nobody else ever saw, as a plain call. The task starts with a clear
 * failure slot (see struct weft_tls): when the caller's slot is clear, as it is unless the
 * caller has called weft_fail, nothing needs saving, so the common path stores nothing.
 * weft_current_future stays the spawner's, as for every spawned task. */
static inline __attribute__((always_inline)) void *run_inline(struct weft_future *f, int *err)
{
    struct weft_tls *tl = &weft_tls_;
    if (WEFT_UNLIKELY(tl->fail_code != 0))
        return run_inline_nested(f, err);
    void *v = f->fn(f->arg);
    int code = tl->fail_code;
    if (WEFT_UNLIKELY(code != 0)) {
        free(tl->fail_msg); /* weft_join reports the code only */
        tl->fail_msg = NULL;
        tl->fail_code = 0;
        v = NULL;
    }
    if (err != NULL)
        *err = code;
    return v;
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
        struct weft_future *x = *--w->ptop;
        if (x == f)
            return run_inline(f, err);
        /* Spawned after t and not joined yet (joins out of order): ours to run anyway. Its
         * own join will find it done. */
        ctr_inc(&w->ctr.private_runs);
        weft_task_init_(x);
        weft_run_task_(w, x);
    }
    /* 2. The public deque: t was exposed. Tasks above it there are ours to run too. */
    for (;;) {
        struct weft_future *x = weft_entry_open_(w, weft_deque_take_inline(&w->dq));
        weft_want_expose_(w); /* the deque may be empty now */
        if (x == NULL)
            break; /* stolen */
        if (x == f) {
            ctr_inc(&w->ctr.taken_back);
            return run_inline(f, err);
        }
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
    if (WEFT_LIKELY(w != NULL)) {
        struct weft_future **top = w->ptop;
        if (WEFT_LIKELY(top[-1] == f)) { /* the slot below pbase holds PSLOT_NONE */
            w->ptop = top - 1;
            return run_inline(f, err);
        }
    }
    return join_slow(w, f, err);
}
