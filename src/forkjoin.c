/*
 * The fork-join fast path: weft_spawn / weft_join on caller-owned weft_task storage.
 *
 * spawn = three plain stores into the task + the deque's push (no atomic RMW, no fence on
 * x86 beyond the compiler's). join = the deque's take; when the task is still there (the
 * common case: nobody was idle enough to steal it) it runs inline with no atomic operation
 * on the task at all: nobody else ever saw it. Only a stolen task is waited for, through its
 * state word, while this worker helps (weft_block_).
 */
#include "internal.h"

#include <stdlib.h>

WEFT_API int weft_spawn(weft_task *t, weft_fn fn, void *arg)
{
    struct weft_worker *w = weft_tls_.worker;
    if (WEFT_UNLIKELY(w == NULL))
        return WEFT_ENOTWORKER;
    if (WEFT_UNLIKELY(t == NULL || fn == NULL))
        return WEFT_EINVAL;
    struct weft_future *f = (struct weft_future *)(void *)t;
    /* Relaxed stores: the deque push publishes the task (release fence before `bottom`). */
    atomic_store_explicit(&f->state, ST_TASK | WEFT_PENDING, memory_order_relaxed);
    atomic_store_explicit(&f->thief, -1, memory_order_relaxed);
    f->fn = fn;
    f->arg = arg;
    if (WEFT_UNLIKELY(weft_deque_push_inline(&w->dq, f) != 0))
        return WEFT_ENOMEM;
    ctr_inc(&w->ctr.spawns);
    weft_notify_(w->pool, false);
    return 0;
}

WEFT_API void *weft_join(weft_task *t, int *err)
{
    struct weft_tls *tl = &weft_tls_;
    struct weft_worker *w = tl->worker;
    struct weft_future *f = (struct weft_future *)(void *)t;
    if (WEFT_UNLIKELY(w == NULL || t == NULL)) {
        if (err != NULL)
            *err = w == NULL ? WEFT_ENOTWORKER : WEFT_EINVAL;
        return NULL;
    }
    for (;;) {
        struct weft_future *x = weft_deque_take_inline(&w->dq);
        if (x == f) {
            /* Not stolen: run it here, as a plain call. */
            struct weft_future *saved = tl->current;
            int saved_code = tl->fail_code;
            char *saved_msg = tl->fail_msg;
            tl->current = f;
            tl->fail_code = 0;
            tl->fail_msg = NULL;
            void *v = f->fn(f->arg);
            int code = tl->fail_code;
            free(tl->fail_msg);
            tl->current = saved;
            tl->fail_code = saved_code;
            tl->fail_msg = saved_msg;
            ctr_inc(&w->ctr.inline_joins);
            if (err != NULL)
                *err = code;
            return code != 0 ? NULL : v;
        }
        if (x == NULL)
            break; /* stolen */
        /* Something spawned after t (joined out of order) or before it (t was stolen):
         * work that is ours to do anyway. */
        weft_run_task_(w, x);
    }
    weft_future_block_(f, -1, &f->thief);
    /* Acquire: pairs with the thief's publish; value/err are visible. */
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    int code = (s & ST_MASK) == WEFT_FAILED ? f->err : 0;
    if (err != NULL)
        *err = code;
    return code != 0 ? NULL : f->value;
}
