/*
 * weft internals: the future's layout and state word, the pool and its workers, and the
 * thread-local context. Not installed; nothing here is part of the contract.
 */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include "weft.h"
#include "weft_deque.h"

#include <ck_epoch.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define WEFT_LIKELY(x)   __builtin_expect(!!(x), 1)
#define WEFT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define WEFT_INTERNAL    __attribute__((visibility("hidden")))
#define WEFT_API         __attribute__((visibility("default")))

/* ---------------------------------------------------------------------------------------
 * The state word (32 bits, also the futex word waiters sleep on)
 *
 *   bits 0..2  enum weft_state, plus two internal values:
 *              ST_COMPLETING (5): a completer has claimed the future and is writing its
 *                outcome; observers report it as RUNNING;
 *              ST_TIMEDOUT (6): final, FAILED with WEFT_ETIMEDOUT, set by a timer
 *                (weft_future_set_timeout); no outcome field is written for it, so it can
 *                be set while the runner is still writing its own (which then loses).
 *   bit  3     ST_WAITERS: at least one thread sleeps (or is about to) in futex_wait on
 *              this word; the completer then issues a futex wake. Without it, completion
 *              makes no system call.
 *   bit  4     ST_TASK: a caller-owned weft_task (spawn/join): no refcount, no callbacks.
 *
 * Transitions, each one atomic RMW on the word:
 *   PENDING -> RUNNING             CAS by the worker that dequeued it (start)
 *   PENDING -> CANCELLED           CAS by weft_future_cancel or a start deadline (final)
 *   PENDING|RUNNING -> COMPLETING  CAS by weft_future_set_value/set_error (promises)
 *   RUNNING|COMPLETING -> FINISHED|FAILED   CAS by the runner / the claimant, after it
 *                                  wrote the outcome fields
 *   RUNNING -> TIMEDOUT            CAS by the timer thread
 *   any -> any|WAITERS             CAS by a waiter before it sleeps
 * The outcome fields (value, err, msg) are written before the final CAS, which has
 * release semantics; every reader of a final state loads it with acquire.
 * ------------------------------------------------------------------------------------- */
#define ST_MASK       7u
#define ST_COMPLETING 5u
#define ST_TIMEDOUT   6u
#define ST_WAITERS    8u
#define ST_TASK       16u

static inline bool st_is_done(uint32_t s)
{
    uint32_t v = s & ST_MASK;
    return v == WEFT_FINISHED || v == WEFT_FAILED || v == WEFT_CANCELLED || v == ST_TIMEDOUT;
}

struct weft_cb_node {
    struct weft_cb_node *next;
    weft_done_cb fn;
    void *arg;
};
/* The callback list is closed (the future is done, callbacks were taken) when it holds
 * this value; an adder that finds it runs its callback itself. */
#define CB_CLOSED ((struct weft_cb_node *)(uintptr_t)1)

/* One future, 64 bytes: one cache line, the size of jemalloc's 64-byte class. A weft_task
 * has the same layout (spawned tasks share the worker's run and wait paths). */
struct weft_future {
    _Atomic uint32_t state;
    _Atomic uint32_t refs; /* unused for ST_TASK */
    int32_t err;           /* the task's error code, FAILED only */
    _Atomic int32_t thief; /* spawned task: index of the worker that stole it, else -1 */
    weft_fn fn;
    void *arg;
    union {
        void *value;              /* FINISHED: the result */
        struct weft_future *next; /* while queued in an inbox (before it runs) */
    };
    union {
        struct weft_pool *pool;   /* NULL for promises (weft_future_create) */
        struct weft_future *root; /* spawned task: weft_current_future of its spawner */
    };
    _Atomic(struct weft_cb_node *) cbs;
    char *msg; /* FAILED: the message (heap, owned), or NULL */
};
_Static_assert(sizeof(struct weft_future) == 64, "a future is one cache line");
_Static_assert(sizeof(struct weft_future) <= sizeof(weft_task), "weft_task holds a task");

/* ---------------------------------------------------------------------------------------
 * Pool and workers
 * ------------------------------------------------------------------------------------- */
/* Counters written by their worker only (relaxed load + store: no RMW, no lock prefix),
 * read by anyone. Nothing is counted on weft_join's fast path: weft_pool_stats derives the
 * inline joins from the others (see read_counters in pool.c). */
typedef struct weft_counters {
    _Atomic uint64_t tasks_run;    /* run by weft_run_task_ (futures and spawned tasks) */
    _Atomic uint64_t spawns;       /* weft_spawn calls that succeeded */
    _Atomic uint64_t task_submits; /* weft_submit calls made by this worker's tasks */
    _Atomic uint64_t exposed;      /* private tasks moved to the deque */
    _Atomic uint64_t private_runs; /* private tasks run through weft_run_task_ (helping) */
    _Atomic uint64_t taken_back;   /* exposed tasks their join took back and ran inline */
    _Atomic uint64_t submits, steals, failed_steals, inbox_takes, parks, wakes;
} weft_counters;

static inline void ctr_inc(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

#define INBOX_CLOSED ((struct weft_future *)(uintptr_t)1)
/* A private-stack slot that holds no task (never equal to a task's address). */
#define PSLOT_NONE  ((struct weft_future *)(uintptr_t)1)
#define PSTACK_INIT 256 /* initial private-stack slots per worker */

struct weft_worker {
    weft_deque dq; /* cache-aligned inside */
    /* Outside threads push futures here (Treiber stack, CAS on the head); any worker takes
     * the whole list at once with a CAS to NULL. INBOX_CLOSED after shutdown. */
    _Alignas(WEFT_CACHELINE) _Atomic(struct weft_future *) inbox;
    /* Set whenever this worker's deque may have become empty: initially, after any steal
     * from it, after the owner took from it, and by a thief that found it empty. The owner
     * clears it at its next spawn and moves its oldest private task to the deque (see
     * forkjoin.c), so idle workers always find something public to steal. Relaxed both
     * ways: a hint. Never set in a one-worker pool (nobody could steal). */
    _Alignas(WEFT_CACHELINE) _Atomic uint32_t steal_req;
    /* The private spawn stack, owner-only: tasks spawned and not yet exposed are in
     * [pbase, ptop), oldest at pbase; pend ends the array that pmem allocated. pmem[0] and
     * every slot below pbase hold PSLOT_NONE, so weft_join's check `ptop[-1] == t` needs no
     * bounds test. No other thread ever reads any of this. */
    _Alignas(WEFT_CACHELINE) struct weft_future **ptop;
    struct weft_future **pbase, **pend, **pmem;
    _Alignas(WEFT_CACHELINE) ck_epoch_record_t rec;
    struct weft_pool *pool;
    unsigned index;
    int cpu; /* pinned CPU, or -1 */
    uint64_t rng;
    bool parking; /* owner-only: in the re-check of its park, counted in nsleeping */
    pthread_t thread;
    bool started;
    weft_counters ctr;
};

enum pool_run_state { POOL_RUNNING = 0, POOL_SHUTDOWN = 1, POOL_BROKEN = 2 };

struct weft_pool {
    /* Read-mostly after creation. */
    unsigned n;
    struct weft_worker *workers; /* n entries, each cache-aligned */
    int64_t spin_ns;
    int bind;
    int stats;
    size_t deque_size;
    char name[16];
    int (*initializer)(void *, unsigned);
    void (*finalizer)(void *, unsigned);
    void *init_arg;
    ck_epoch_t epoch;

    /* Parking, written only when a worker parks or wakes: every submission reads nsleeping
     * first, and finds this line in its cache. */
    _Alignas(WEFT_CACHELINE) _Atomic uint32_t sleep_seq; /* futex word of parked workers */
    _Atomic uint32_t nsleeping;                          /* workers parked or about to park */
    _Atomic uint32_t waking; /* a wake-up is in flight: don't issue another */
    /* Written each time a worker starts or stops searching (often, in a busy pool): on a
     * line of its own, read by submitters only when some worker is parked. */
    _Alignas(WEFT_CACHELINE) _Atomic uint32_t nsearching; /* workers spinning in search */

    /* Life cycle. */
    _Alignas(WEFT_CACHELINE) _Atomic int run_state; /* enum pool_run_state */
    _Atomic bool cancel_pending;                    /* shutdown(cancel_futures) */
    _Atomic(struct weft_future *) orphans;          /* inbox leftovers at shutdown */
    _Atomic uint32_t init_done;                     /* workers past their initializer */
    pthread_mutex_t life_lock;                      /* shutdown/join/destroy only */
    ck_epoch_record_t ctl_rec; /* shutdown's own thief record, used under life_lock */
    bool joined;
};

/* Per-thread context. initial-exec: the library is linked, not dlopen()ed late, and the
 * general-dynamic model would cost a __tls_get_addr call on every spawn.
 *
 * The failure slot (fail_code, fail_msg) belongs to the innermost task the thread runs:
 * weft_fail writes it, and whoever ran the task takes it when the task returns. Invariant:
 * a task starts with the slot clear (code 0, message NULL), and fail_code == 0 implies
 * fail_msg == NULL. weft_call_ sets the enclosing task's slot aside for the call; weft_join
 * runs a task inline with no store at all when the slot is already clear (the common
 * case: the parent has not failed), and sets it aside only when it is not. */
struct weft_tls {
    struct weft_worker *worker;  /* NULL outside a pool's worker */
    struct weft_future *current; /* weft_current_future: NULL outside submitted tasks */
    int fail_code;               /* what weft_fail recorded for the innermost task, or 0 */
    char *fail_msg;              /* its message (heap), or NULL */
    unsigned submit_inbox;       /* outside threads: index of the inbox they add to */
};
extern __thread struct weft_tls weft_tls_ __attribute__((tls_model("initial-exec"))) WEFT_INTERNAL;

/* Runs fn(arg) as the body of a task whose weft_current_future is `current`, with a clear
 * failure slot, and restores the caller's context after. Returns fn's value; *code and
 * *msg get what weft_fail recorded (0 and NULL if nothing; *msg is the caller's to free). */
static inline void *weft_call_(struct weft_future *current, weft_fn fn, void *arg, int *code,
                               char **msg)
{
    struct weft_tls *tl = &weft_tls_;
    struct weft_future *saved_cur = tl->current;
    int saved_code = tl->fail_code;
    char *saved_msg = tl->fail_msg;
    tl->current = current;
    tl->fail_code = 0;
    tl->fail_msg = NULL;
    void *v = fn(arg);
    *code = tl->fail_code;
    *msg = tl->fail_msg;
    tl->current = saved_cur;
    tl->fail_code = saved_code;
    tl->fail_msg = saved_msg;
    return v;
}

/* ---------------------------------------------------------------------------------------
 * Cross-file internal functions
 * ------------------------------------------------------------------------------------- */
/* future.c */
WEFT_INTERNAL struct weft_future *weft_future_alloc_(void);
WEFT_INTERNAL void weft_future_complete_(struct weft_future *f, void *value, int err, char *msg);
WEFT_INTERNAL bool weft_future_try_cancel_(struct weft_future *f);
/* PENDING -> RUNNING: 0, WEFT_ECANCELED or WEFT_ESTATE (weft_future_set_running's body). */
WEFT_INTERNAL int weft_future_start_(struct weft_future *f);
WEFT_INTERNAL int weft_future_code_(const struct weft_future *f, uint32_t s);

/* A condition a thread can block on: ready() tests it; arm() prepares a futex sleep and
 * returns false if something changed since ready() looked (test again, do not sleep), else
 * sets the word and the value to sleep on; disarm() (may be NULL) undoes arm after the
 * sleep. */
struct weft_waitable {
    bool (*ready)(void *ctx);
    bool (*arm)(void *ctx, _Atomic uint32_t **word, uint32_t *expect);
    void (*disarm)(void *ctx);
    void *ctx;
};
/* Blocks until w->ready() or the deadline (weft_now_ns clock; -1: none). On a pool's
 * worker it runs other tasks meanwhile (stealing first from `prefer`'s worker if given);
 * elsewhere it spins for spin_ns, then sleeps on the futex. Returns ready(). */
WEFT_INTERNAL bool weft_block_(const struct weft_waitable *w, int64_t deadline, int64_t spin_ns,
                               _Atomic int32_t *prefer);
/* How long a thread that waits outside any worker spins (polling, then yielding) before it
 * sleeps on a futex: a sleep + wake costs 10-25 us on a VM. Fixed: reading the pool's
 * setting could race with the pool's destruction once the awaited future completes. */
#define WEFT_WAITER_SPIN_NS 20000

/* Blocks until the future's state word is final. */
WEFT_INTERNAL bool weft_future_block_(struct weft_future *f, int64_t deadline,
                                      _Atomic int32_t *prefer);
/* RUNNING -> TIMEDOUT, or PENDING -> CANCELLED (timer thread). */
WEFT_INTERNAL void weft_future_expire_(struct weft_future *f, bool start_only);

/* worker.c */
WEFT_INTERNAL void *weft_worker_main_(void *arg);
WEFT_INTERNAL void weft_run_task_(struct weft_worker *w, struct weft_future *f);
WEFT_INTERNAL void weft_notify_(struct weft_pool *p, bool after_sc_push);
/* After a push onto the caller's own deque of work that must not wait for the caller's
 * current task to end (an outside submission, a weft_submit from a task): the publisher's
 * half of the parking protocol, with the fence that the deque's release push lacks. A task
 * may block on something other than weft (a lock, a pipe, another task's progress), so
 * such work must reach a parked worker; a spawned task need not (its parent joins it). */
static inline void weft_notify_published_(struct weft_pool *p)
{
    if (p->n == 1)
        return; /* the publisher is the only worker: nobody to wake */
    atomic_thread_fence(memory_order_seq_cst);
    weft_notify_(p, true);
}
WEFT_INTERNAL void weft_wake_all_(struct weft_pool *p);
/* pool.c: closes every inbox; their futures are settled with settle_code (cancelled or
 * failed) or, with 0, handed to the workers on the orphan list. */
WEFT_INTERNAL void weft_close_inboxes_(struct weft_pool *p, int settle_code);
/* One round of looking for work for a worker that waits: returns a task or NULL. */
WEFT_INTERNAL struct weft_future *weft_find_help_(struct weft_worker *w, _Atomic int32_t *prefer);

/* After a push onto a worker's own deque: wakes a parked worker if nobody is searching.
 * Inline: on the spawn path this is two relaxed loads of a read-mostly line. No fence (see
 * the parking protocol in worker.c: a missed wake-up here costs parallelism, not work). */
static inline void weft_notify_spawn_(struct weft_pool *p)
{
    if (WEFT_UNLIKELY(atomic_load_explicit(&p->nsleeping, memory_order_relaxed) != 0) &&
        atomic_load_explicit(&p->nsearching, memory_order_relaxed) == 0)
        weft_notify_(p, false);
}

/* Asks worker v to expose a private task at its next spawn (see steal_req). Loads first,
 * so that repeated requests do not keep writing the owner's line. */
static inline void weft_want_expose_(struct weft_worker *v)
{
    if (atomic_load_explicit(&v->steal_req, memory_order_relaxed) == 0 && v->pool->n > 1)
        atomic_store_explicit(&v->steal_req, 1, memory_order_relaxed);
}

/* A spawned task's state word and thief index, written only when the task leaves the
 * private stack for anything but an inline run (exposed, or run through weft_run_task_):
 * an inline run reads neither, so weft_spawn does not write them. */
static inline void weft_task_init_(struct weft_future *f)
{
    atomic_store_explicit(&f->state, ST_TASK | WEFT_PENDING, memory_order_relaxed);
    atomic_store_explicit(&f->thief, -1, memory_order_relaxed);
}

/* A deque entry is a task, or a chain of outside submissions: futures linked through
 * `next` (NULL-terminated, oldest first), tagged in bit 0 (a future is 64-byte aligned). An
 * inbox batch goes onto the deque as chains of up to CHAIN_MAX, so that a thief takes a
 * run of consecutive submissions in one steal instead of one task per steal. Whoever takes a
 * chain (owner or thief) runs its first future and pushes the rest back onto its own deque,
 * as one entry: the rest stays stealable. */
#define CHAIN_TAG ((uintptr_t)1)
#define CHAIN_MAX 32

static inline bool weft_entry_is_chain_(void *x)
{
    return ((uintptr_t)x & CHAIN_TAG) != 0;
}

/* The task of an entry, or the first future of its chain. */
static inline struct weft_future *weft_entry_head_(void *x)
{
    return (struct weft_future *)((uintptr_t)x & ~CHAIN_TAG);
}

/* Queues chain c (oldest first) on w's deque as one entry. Returns false, having run every
 * future of the chain in order, if the deque could not grow: run now rather than lost. */
static inline bool weft_push_chain_(struct weft_worker *w, struct weft_future *c)
{
    if (weft_deque_push_inline(&w->dq, (void *)((uintptr_t)c | CHAIN_TAG)) == 0)
        return true;
    while (c != NULL) {
        struct weft_future *next = c->next; /* before the run: value shares the field */
        weft_run_task_(w, c);
        c = next;
    }
    return false;
}

/* Turns a deque entry taken by w (its own, or stolen) into a task to run now: a chain's
 * first future, its rest pushed back onto w's deque. NULL stays NULL. */
static inline struct weft_future *weft_entry_open_(struct weft_worker *w, void *x)
{
    if (WEFT_LIKELY(!weft_entry_is_chain_(x)))
        return x;
    struct weft_future *head = weft_entry_head_(x);
    struct weft_future *rest = head->next;
    if (rest != NULL) {
        /* Taking the chain may have left the deque empty for a moment, long enough for an
         * idle worker to look, find nothing and park: then the rest is published anew, with
         * the full protocol (the head may block for as long as it likes). Otherwise the
         * deque held other work when we looked: a thief that takes it afterwards runs it,
         * then searches and re-checks after its own fence before it parks, long after our
         * push left this CPU's store buffer. The C11 model alone does not promise that last
         * step; a fence on every chain step would, at a cost measured at 7 ns per task in the
         * two-worker fan-out, so it is taken only when the deque was seen empty. */
        bool was_empty = weft_deque_size(&w->dq) == 0;
        if (weft_push_chain_(w, rest) && was_empty)
            weft_notify_published_(w->pool);
    }
    return head;
}

/* forkjoin.c: moves the oldest private task to the public deque (a thief asked). */
WEFT_INTERNAL int weft_expose_(struct weft_worker *w); /* returns 0 */
/* forkjoin.c: allocates the worker's private spawn stack (WEFT_ENOMEM if it cannot). */
WEFT_INTERNAL int weft_pstack_init_(struct weft_worker *w);

/* env.c */
WEFT_INTERNAL int weft_resolve_options_(const weft_pool_options *in, weft_pool_options *out,
                                        size_t *deque_size);
WEFT_INTERNAL int weft_cpu_list_(int bind, unsigned n, int *cpus);

/* The absolute deadline timeout_ns from now on the weft_now_ns clock; -1 (none) for a
 * negative timeout or one too large to represent (saturating: no signed overflow). */
static inline int64_t weft_deadline_(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return -1;
    int64_t now = weft_now_ns();
    return timeout_ns > INT64_MAX - now ? -1 : now + timeout_ns;
}

/* error.c */
WEFT_INTERNAL char *weft_vformat_(const char *fmt, va_list ap);

#endif /* WEFT_INTERNAL_H */
