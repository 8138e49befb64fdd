/*
 * Futures: the state word, completion, cancellation, done-callbacks, waiting and the
 * promise side. See internal.h for the state word's layout and transitions.
 */
#include "alloc.h"
#include "futex.h"
#include "internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

__thread struct weft_tls weft_tls_ __attribute__((tls_model("initial-exec")));

struct weft_future *weft_future_alloc_(void)
{
    struct weft_future *f = weft_alloc(sizeof(*f));
    if (f == NULL)
        return NULL;
    /* Plain initialisation: the future is published to other threads by the queue it is
     * pushed on (release) or by the caller's own hand-off. */
    atomic_init(&f->state, WEFT_PENDING);
    atomic_init(&f->refs, 1);
    f->err = 0;
    atomic_init(&f->thief, -1);
    f->fn = NULL;
    f->arg = NULL;
    f->value = NULL;
    f->pool = NULL;
    atomic_init(&f->cbs, NULL);
    f->msg = NULL;
    return f;
}

static void future_free(struct weft_future *f)
{
    /* Callbacks of a promise that was never completed: dropped, never run. */
    struct weft_cb_node *n = atomic_load_explicit(&f->cbs, memory_order_relaxed);
    if (n != CB_CLOSED) {
        while (n != NULL) {
            struct weft_cb_node *next = n->next;
            weft_free(n, sizeof(*n));
            n = next;
        }
    }
    free(f->msg);
    weft_free(f, sizeof(*f));
}

WEFT_API void weft_future_retain(weft_future *f)
{
    /* Relaxed: taking a new reference from an existing one needs no ordering (the caller
     * already holds a reference that keeps f alive). */
    if (f != NULL)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

WEFT_API void weft_future_release(weft_future *f)
{
    if (f == NULL)
        return;
    /* Acq_rel: the release half orders this thread's uses of f before the decrement; the
     * thread that drops the last reference acquires all of them before freeing. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        future_free(f);
}

/* ---------------------------------------------------------------------------------------
 * Done-callbacks
 *
 * A Treiber stack of nodes on f->cbs. Draining = exchange(cbs, CB_CLOSED): it hands the
 * whole list to exactly one thread, so each node runs exactly once. Completion does not
 * drain unconditionally (one locked instruction saved per task when nobody registered):
 *
 *   completer:  exchange(state, done)  [seq_cst]   then  load(cbs)   [seq_cst]
 *   adder:      CAS push onto cbs      [seq_cst]   then  load(state) [seq_cst]
 *
 * All four are seq_cst, so in their single total order either the completer's load of
 * cbs comes after the adder's push (the completer sees the node and drains), or the
 * adder's load of state comes after the completion (the adder sees "done" and drains).
 * Both may drain; the exchange gives the nodes to one of them.
 * ------------------------------------------------------------------------------------- */
static void drain_callbacks(struct weft_future *f)
{
    struct weft_cb_node *l = atomic_exchange_explicit(&f->cbs, CB_CLOSED, memory_order_seq_cst);
    if (l == NULL || l == CB_CLOSED)
        return;
    /* The stack is newest-first: reverse it to run in registration order. */
    struct weft_cb_node *fwd = NULL;
    while (l != NULL) {
        struct weft_cb_node *next = l->next;
        l->next = fwd;
        fwd = l;
        l = next;
    }
    while (fwd != NULL) {
        struct weft_cb_node *next = fwd->next;
        fwd->fn(f, fwd->arg);
        weft_free(fwd, sizeof(*fwd));
        fwd = next;
    }
}

WEFT_API int weft_future_add_done_callback(weft_future *f, weft_done_cb cb, void *arg)
{
    if (f == NULL || cb == NULL)
        return WEFT_EINVAL;
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    struct weft_cb_node *head = atomic_load_explicit(&f->cbs, memory_order_acquire);
    if (st_is_done(s) && (head == NULL || head == CB_CLOSED)) {
        /* Already done and no older callback waits to be drained: run now, in the caller.
         * (Any adder racing with us sees "done" too and drains its own node.) */
        cb(f, arg);
        return 0;
    }
    struct weft_cb_node *n = weft_alloc(sizeof(*n));
    if (n == NULL)
        return WEFT_ENOMEM;
    n->fn = cb;
    n->arg = arg;
    /* Keep f alive until we are done with it: once the node is pushed, the completer may
     * run the callback, which may release the caller's (last) reference. */
    weft_future_retain(f);
    for (;;) {
        if (head == CB_CLOSED) {
            weft_free(n, sizeof(*n));
            cb(f, arg);
            break;
        }
        n->next = head;
        /* Seq_cst: see the block comment above (and release: publishes the node). */
        if (atomic_compare_exchange_weak_explicit(&f->cbs, &head, n, memory_order_seq_cst,
                                                  memory_order_acquire)) {
            if (st_is_done(atomic_load_explicit(&f->state, memory_order_seq_cst)))
                drain_callbacks(f);
            break;
        }
    }
    weft_future_release(f);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Completion
 * ------------------------------------------------------------------------------------- */

/* Publishes a final state. The caller owns the outcome (it moved the state to RUNNING or
 * COMPLETING, or it runs a spawned task) and has written it. Returns false if a timer
 * expired the future first (ST_TIMEDOUT): the caller's outcome is then discarded. */
static bool publish(struct weft_future *f, uint32_t final)
{
    /* Relaxed: we only need the current bits to build the CAS; the CAS orders. */
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (s & ST_TASK) {
        /* A spawned task has a single runner and no timer: no competition. */
        s = atomic_exchange_explicit(&f->state, final | ST_TASK, memory_order_seq_cst);
    } else {
        for (;;) {
            uint32_t v = s & ST_MASK;
            if (v != WEFT_RUNNING && v != ST_COMPLETING)
                return false; /* expired by the timer thread */
            /* Seq_cst CAS: release publishes value/err/msg (and everything the task wrote)
             * to whoever acquires the final state; seq_cst for the callback protocol
             * above. Clears ST_WAITERS: all waiters are woken below. */
            if (atomic_compare_exchange_weak_explicit(&f->state, &s, final, memory_order_seq_cst,
                                                      memory_order_relaxed))
                break;
        }
    }
    if (s & ST_WAITERS)
        weft_futex_wake(&f->state, INT_MAX);
    /* A spawned task's storage may be gone once its state is final (the joiner returns):
     * touch nothing after the CAS but the futex address (a wake on a reused address is a
     * spurious wake-up, which every futex waiter tolerates). */
    if (!(s & ST_TASK) && atomic_load_explicit(&f->cbs, memory_order_seq_cst) != NULL)
        drain_callbacks(f);
    return true;
}

void weft_future_complete_(struct weft_future *f, void *value, int err, char *msg)
{
    if (err != 0) {
        f->err = err;
        f->msg = msg;
        if (!publish(f, WEFT_FAILED)) {
            f->msg = NULL; /* never read: the state says TIMEDOUT */
            free(msg);
        }
    } else {
        free(msg);
        f->value = value;
        publish(f, WEFT_FINISHED);
    }
}

void weft_future_expire_(struct weft_future *f, bool start_only)
{
    if (weft_future_try_cancel_(f) || start_only)
        return;
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    while ((s & ST_MASK) == WEFT_RUNNING) {
        /* Seq_cst, as in publish(). No outcome field is written: TIMEDOUT says it all, so
         * the runner may still be writing its own fields (it will lose its CAS). */
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, ST_TIMEDOUT, memory_order_seq_cst,
                                                  memory_order_relaxed)) {
            if (s & ST_WAITERS)
                weft_futex_wake(&f->state, INT_MAX);
            if (atomic_load_explicit(&f->cbs, memory_order_seq_cst) != NULL)
                drain_callbacks(f);
            return;
        }
    }
}

bool weft_future_try_cancel_(struct weft_future *f)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    while ((s & ST_MASK) == WEFT_PENDING) {
        /* Seq_cst: a final state, published as in publish(). Exactly one of the start CAS
         * (PENDING -> RUNNING) and this CAS wins. */
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, (s & ST_TASK) | WEFT_CANCELLED,
                                                  memory_order_seq_cst, memory_order_relaxed)) {
            if (s & ST_WAITERS)
                weft_futex_wake(&f->state, INT_MAX);
            if (atomic_load_explicit(&f->cbs, memory_order_seq_cst) != NULL)
                drain_callbacks(f);
            return true;
        }
    }
    return false;
}

WEFT_API int weft_future_cancel(weft_future *f)
{
    if (f == NULL)
        return WEFT_EINVAL;
    if (weft_future_try_cancel_(f))
        return 0;
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    return (s & ST_MASK) == WEFT_CANCELLED ? 0 : WEFT_ESTATE;
}

/* ---------------------------------------------------------------------------------------
 * Promise side
 * ------------------------------------------------------------------------------------- */
WEFT_API int weft_future_create(weft_future **out)
{
    if (out == NULL)
        return WEFT_EINVAL;
    *out = weft_future_alloc_();
    return *out != NULL ? 0 : WEFT_ENOMEM;
}

int weft_future_start_(struct weft_future *f)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    while ((s & ST_MASK) == WEFT_PENDING) {
        /* Acquire: whatever cancelled-or-not decision we read is ordered before the work.
         * Keeps ST_WAITERS. */
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, (s & ~ST_MASK) | WEFT_RUNNING,
                                                  memory_order_acq_rel, memory_order_relaxed))
            return 0;
    }
    return (s & ST_MASK) == WEFT_CANCELLED ? WEFT_ECANCELED : WEFT_ESTATE;
}

/* The promise side is for promises: a submitted task's future is completed by its task
 * alone (and while queued, the pool links it through the field its value would take). */
static bool is_promise(const struct weft_future *f)
{
    return f->pool == NULL;
}

WEFT_API int weft_future_set_running(weft_future *f)
{
    if (f == NULL || !is_promise(f))
        return WEFT_EINVAL;
    return weft_future_start_(f);
}

/* Claims the outcome: PENDING|RUNNING -> COMPLETING. Exactly one claimant wins. */
static bool claim(struct weft_future *f)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    for (;;) {
        uint32_t v = s & ST_MASK;
        if (v != WEFT_PENDING && v != WEFT_RUNNING)
            return false;
        /* Relaxed is enough for the claim itself: the outcome is published later by the
         * seq_cst exchange in publish(). */
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, (s & ~ST_MASK) | ST_COMPLETING,
                                                  memory_order_relaxed, memory_order_relaxed))
            return true;
    }
}

WEFT_API int weft_future_set_value(weft_future *f, void *value)
{
    if (f == NULL || !is_promise(f))
        return WEFT_EINVAL;
    if (!claim(f))
        return WEFT_ESTATE;
    weft_future_complete_(f, value, 0, NULL);
    return 0;
}

static int normalise_code(int code)
{
    if (code > 0)
        return -code;
    return code == 0 ? WEFT_EFAILED : code;
}

WEFT_API int weft_future_set_error(weft_future *f, int code, const char *message)
{
    if (f == NULL || !is_promise(f))
        return WEFT_EINVAL;
    if (!claim(f))
        return WEFT_ESTATE;
    char *msg = message != NULL ? strdup(message) : NULL;
    int rc = (message != NULL && msg == NULL) ? WEFT_ENOMEM : 0;
    weft_future_complete_(f, NULL, normalise_code(code), msg);
    return rc;
}

WEFT_API void *weft_fail(int code, const char *fmt, ...)
{
    struct weft_tls *tl = &weft_tls_;
    /* In a task: a submitted one sets `current`; a spawned one runs on a worker (a spawned
     * task run from a done-callback on a worker has no `current`, and still fails). */
    if (tl->current == NULL && tl->worker == NULL)
        return NULL;
    free(tl->fail_msg);
    va_list ap;
    va_start(ap, fmt);
    tl->fail_msg = weft_vformat_(fmt, ap);
    va_end(ap);
    tl->fail_code = normalise_code(code);
    return NULL;
}

WEFT_API weft_future *weft_current_future(void)
{
    return weft_tls_.current;
}

/* ---------------------------------------------------------------------------------------
 * Observing and waiting
 * ------------------------------------------------------------------------------------- */
WEFT_API int weft_future_state(const weft_future *f)
{
    if (f == NULL)
        return WEFT_EINVAL;
    /* Acquire: pairs with publish()'s exchange, so a final state read here makes the
     * outcome (and the task's writes) visible. */
    uint32_t v = atomic_load_explicit(&f->state, memory_order_acquire) & ST_MASK;
    return v == ST_COMPLETING ? WEFT_RUNNING : v == ST_TIMEDOUT ? WEFT_FAILED : (int)v;
}

WEFT_API bool weft_future_done(const weft_future *f)
{
    return f != NULL && st_is_done(atomic_load_explicit(&f->state, memory_order_acquire));
}

WEFT_API bool weft_future_running(const weft_future *f)
{
    return weft_future_state(f) == WEFT_RUNNING;
}

WEFT_API bool weft_future_cancelled(const weft_future *f)
{
    return weft_future_state(f) == WEFT_CANCELLED;
}

int weft_future_code_(const struct weft_future *f, uint32_t s)
{
    switch (s & ST_MASK) {
    case WEFT_FINISHED:
        return 0;
    case WEFT_FAILED:
        return f->err;
    case WEFT_CANCELLED:
        return WEFT_ECANCELED;
    case ST_TIMEDOUT:
        return WEFT_ETIMEDOUT;
    default:
        return 0;
    }
}

WEFT_API int weft_future_error(const weft_future *f)
{
    if (f == NULL)
        return WEFT_EINVAL;
    return weft_future_code_(f, atomic_load_explicit(&f->state, memory_order_acquire));
}

WEFT_API const char *weft_future_message(const weft_future *f)
{
    if (f == NULL)
        return NULL;
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    return (s & ST_MASK) == WEFT_FAILED ? f->msg : NULL;
}

static bool state_ready(void *ctx)
{
    struct weft_future *f = ctx;
    /* Acquire: pairs with publish()'s CAS; the outcome is visible once this is true. */
    return st_is_done(atomic_load_explicit(&f->state, memory_order_acquire));
}

static bool state_arm(void *ctx, _Atomic uint32_t **word, uint32_t *expect)
{
    struct weft_future *f = ctx;
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    for (;;) {
        if (st_is_done(s))
            return false;
        if (s & ST_WAITERS)
            break;
        /* Announce the sleeper. Relaxed suffices: the completer's CAS and this CAS are RMWs
         * on the same word, so one precedes the other in its modification order: either
         * the completer sees ST_WAITERS and wakes, or this CAS fails on the final state
         * and the loop sees "done". The kernel re-checks the word under its lock. */
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, s | ST_WAITERS,
                                                  memory_order_acquire, memory_order_acquire)) {
            s |= ST_WAITERS;
            break;
        }
    }
    *word = &f->state;
    *expect = s;
    return true;
}

bool weft_future_block_(struct weft_future *f, int64_t deadline, _Atomic int32_t *prefer)
{
    struct weft_waitable w = {state_ready, state_arm, NULL, f};
    /* Workers do not spin: they help (see weft_block_). */
    return weft_block_(&w, deadline, WEFT_WAITER_SPIN_NS, prefer);
}

WEFT_API int weft_future_result(weft_future *f, int64_t timeout_ns, void **value)
{
    if (f == NULL)
        return WEFT_EINVAL;
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    if (!st_is_done(s)) {
        if (timeout_ns == 0)
            return WEFT_ETIMEDOUT;
        int64_t deadline = weft_deadline_(timeout_ns);
        if (!weft_future_block_(f, deadline, NULL))
            return WEFT_ETIMEDOUT;
        s = atomic_load_explicit(&f->state, memory_order_acquire);
    }
    int code = weft_future_code_(f, s);
    if (code == 0 && value != NULL)
        *value = f->value;
    return code;
}
