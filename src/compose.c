/*
 * Composition: weft_then (continuations), weft_all and weft_any (combinators). Each is a
 * promise (weft_future_create) completed from done-callbacks: no thread blocks.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------
 * then
 * ------------------------------------------------------------------------------------- */
struct then_ctx {
    weft_future *src, *out; /* one reference each, dropped when done */
    weft_then_fn cont;
    void *arg;
    weft_pool *pool;
};

static void then_finish(struct then_ctx *t)
{
    weft_future_release(t->out);
    weft_future_release(t->src);
    free(t);
}

static void *then_thunk(void *arg)
{
    struct then_ctx *t = arg;
    return t->cont(t->src, t->arg);
}

/* Runs the continuation as the body of `out`, with weft_fail recording into it. */
static void then_run(struct then_ctx *t)
{
    if (weft_future_set_running(t->out) != 0)
        return; /* cancelled before it started */
    int code;
    char *msg;
    void *v = weft_call_(t->out, then_thunk, t, &code, &msg);
    weft_future_complete_(t->out, v, code, msg);
}

static void *then_task(void *arg)
{
    then_run(arg);
    then_finish(arg);
    return NULL;
}

/* Done-callback of the continuation's own task. then_task, once it runs, always finishes
 * normally (the continuation reports through `out`, with its own failure slot), and frees
 * `t`. Any other outcome means the pool dropped the task before it started: `t` is still
 * ours, and `out` must not stay pending. */
static void then_task_done(weft_future *task, void *arg)
{
    int st = weft_future_state(task);
    if (st == WEFT_FINISHED)
        return; /* ran: `t` is gone, do not touch it */
    struct then_ctx *t = arg;
    if (st == WEFT_CANCELLED)
        weft_future_cancel(t->out);
    else
        weft_future_set_error(t->out, weft_future_error(task),
                              "weft_then: the pool dropped the continuation before it ran");
    then_finish(t);
}

static void then_cb(weft_future *src, void *arg)
{
    (void)src;
    struct then_ctx *t = arg;
    if (t->pool == NULL) {
        then_run(t);
        then_finish(t);
        return;
    }
    weft_future *task;
    int rc = weft_submit(t->pool, then_task, t, &task);
    if (rc != 0) {
        weft_future_set_error(t->out, rc, "weft_then: the pool refused the continuation");
        then_finish(t);
        return;
    }
    /* The pool may still drop the task before it starts (shutdown with cancel_futures, a
     * broken pool): watch for that, so that `out` never stays pending. `t` may be freed by
     * then_task from here on; then_task_done only touches it if then_task never ran. */
    weft_future_add_done_callback(task, then_task_done, t);
    weft_future_release(task); /* the continuation reports through `out` */
}

WEFT_API int weft_then(weft_future *src, weft_pool *pool, weft_then_fn cont, void *arg,
                       weft_future **out)
{
    if (out == NULL)
        return WEFT_EINVAL;
    *out = NULL;
    if (src == NULL || cont == NULL)
        return WEFT_EINVAL;
    struct then_ctx *t = malloc(sizeof(*t));
    weft_future *o = NULL;
    if (t == NULL || weft_future_create(&o) != 0) {
        free(t);
        return WEFT_ENOMEM;
    }
    weft_future_retain(o);
    weft_future_retain(src);
    *t = (struct then_ctx){src, o, cont, arg, pool};
    int rc = weft_future_add_done_callback(src, then_cb, t);
    if (rc != 0) {
        weft_future_release(o);
        weft_future_release(o);
        weft_future_release(src);
        free(t);
        return rc;
    }
    *out = o;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * all / any
 * ------------------------------------------------------------------------------------- */
struct comb_ctx {
    weft_future *out;         /* one reference, dropped with the context */
    _Atomic size_t remaining; /* callbacks still to run */
    _Atomic int first_err;    /* all: code of the first failure */
    char *first_msg;          /* all: written by the first failure before its decrement */
    struct comb_slot {
        struct comb_ctx *c;
        size_t i;
    } slots[];
};

static void comb_done(struct comb_ctx *c, bool is_all)
{
    /* Acq_rel: the last callback acquires every earlier one's writes (first_msg). */
    if (atomic_fetch_sub_explicit(&c->remaining, 1, memory_order_acq_rel) != 1)
        return;
    if (is_all) {
        int err = atomic_load_explicit(&c->first_err, memory_order_relaxed);
        if (err != 0)
            weft_future_set_error(c->out, err, c->first_msg);
        else
            weft_future_set_value(c->out, NULL);
    }
    free(c->first_msg);
    weft_future_release(c->out);
    free(c);
}

static void all_cb(weft_future *f, void *arg)
{
    struct comb_slot *s = arg;
    struct comb_ctx *c = s->c;
    int code = weft_future_error(f);
    int zero = 0;
    if (code != 0 && atomic_compare_exchange_strong_explicit(
                         &c->first_err, &zero, code, memory_order_relaxed, memory_order_relaxed)) {
        const char *m = weft_future_message(f);
        c->first_msg = m != NULL ? strdup(m) : NULL;
    }
    comb_done(c, true);
}

static void any_cb(weft_future *f, void *arg)
{
    (void)f;
    struct comb_slot *s = arg;
    /* The first completion wins; later ones get WEFT_ESTATE, which is the point. */
    weft_future_set_value(s->c->out, (void *)(uintptr_t)s->i);
    comb_done(s->c, false);
}

static int combine(weft_future *const *fs, size_t n, weft_future **out, bool is_all)
{
    if (out == NULL)
        return WEFT_EINVAL;
    *out = NULL;
    if (fs == NULL || n == 0)
        return WEFT_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (fs[i] == NULL)
            return WEFT_EINVAL;
    struct comb_ctx *c = malloc(sizeof(*c) + n * sizeof(struct comb_slot));
    weft_future *o = NULL;
    if (c == NULL || weft_future_create(&o) != 0) {
        free(c);
        return WEFT_ENOMEM;
    }
    weft_future_retain(o); /* the context's */
    c->out = o;
    atomic_init(&c->remaining, n + 1); /* +1: ours, dropped once registration is over */
    atomic_init(&c->first_err, 0);
    c->first_msg = NULL;
    int rc = 0;
    size_t k = 0;
    for (; k < n; k++) {
        c->slots[k] = (struct comb_slot){c, k};
        rc = weft_future_add_done_callback(fs[k], is_all ? all_cb : any_cb, &c->slots[k]);
        if (rc != 0)
            break;
    }
    if (rc != 0) {
        weft_future_set_error(o, rc, "weft_all/weft_any: out of memory");
        /* The callbacks that were not registered will never run. */
        atomic_fetch_sub_explicit(&c->remaining, n - k, memory_order_acq_rel);
    }
    comb_done(c, is_all);
    if (rc != 0) {
        weft_future_release(o);
        return rc;
    }
    *out = o;
    return 0;
}

WEFT_API int weft_all(weft_future *const *fs, size_t n, weft_future **out)
{
    return combine(fs, n, out, true);
}

WEFT_API int weft_any(weft_future *const *fs, size_t n, weft_future **out)
{
    return combine(fs, n, out, false);
}
