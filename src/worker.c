/*
 * Workers: the run loop, finding work (own deque, inboxes, stealing), running a task,
 * helping while waiting, and parking on the pool's futex when idle.
 *
 * Parking protocol (no lost wake-up)
 * ----------------------------------
 * A worker that found nothing during its spin phase parks:
 *
 *     seq = sleep_seq;  nsleeping++;  nsearching--;  FENCE;  look for work again;
 *     if none: futex_wait(&sleep_seq, seq)
 *
 * A thread that makes work available from outside (weft_submit) does
 *
 *     push (seq_cst CAS);  if (nsearching == 0 && nsleeping > 0) wake one  (seq_cst loads)
 *
 * The parker's FENCE and the submitter's seq_cst operations are all in the one total order
 * S, so either the parker's re-check sees the push, or the submitter sees the parker
 * counted in nsleeping (and no searcher) and wakes it (argued in detail in weft_notify_); the wake
 * bumps sleep_seq first, so a parker that has not yet entered futex_wait returns from it at once.
 * A worker that moves work onto its own deque which must not wait for its current task to
 * end (an inbox batch, the rest of a chain it took, a weft_submit from a task) does the same
 * with a fence after its push (weft_notify_published_): the task it runs next may block on
 * something weft cannot see, such as a lock or another queued task's progress. Spawns skip
 * the fence: a missed wake-up there costs parallelism, never work, because a spawned task
 * is joined by its spawner, which runs it if nobody stole it.
 *
 * A worker that finds work in its own park re-check is still counted in nsleeping while it
 * publishes the rest: weft_notify_ does not count it (w->parking), or a lone parker would
 * keep trying to wake itself, and not run what it found, until another worker came by.
 *
 * `waking` keeps a burst of submissions from issuing one futex_wake each while the first
 * woken worker is still on its way: a notifier that sees it set relies on that worker,
 * which clears it, fences, and only then searches. A waker whose futex_wake woke nobody
 * clears it itself and re-evaluates, so the flag never hides a parked worker.
 */
#include "alloc.h"
#include "futex.h"
#include "internal.h"

#include <ck_backoff.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#define HELP_SPINS      64
#define HELP_SLICE_MIN  50000LL    /* ns: first blocking slice of a helping waiter */
#define HELP_SLICE_MAX  10000000LL /* ns */
#define STEAL_RETRIES   4
#define BACKOFF_INITIAL 16

static inline uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ---------------------------------------------------------------------------------------
 * Wake-ups
 * ------------------------------------------------------------------------------------- */
/* self: 1 if the caller is a worker of p counted in nsleeping (it found work in its own
 * park re-check), else 0. It is no one to wake: without this, a lone parker that found work
 * would keep waking nobody, seeing only itself counted, and never run that work. */
static void wake_one(struct weft_pool *p, uint32_t self)
{
    for (;;) {
        uint32_t z = 0;
        if (!atomic_compare_exchange_strong_explicit(&p->waking, &z, 1, memory_order_seq_cst,
                                                     memory_order_relaxed))
            return; /* a wake is in flight; its worker will search */
        /* Release: a parker that reads the new sequence (and so does not sleep) also sees
         * the work that was pushed before. */
        atomic_fetch_add_explicit(&p->sleep_seq, 1, memory_order_seq_cst);
        if (weft_futex_wake(&p->sleep_seq, 1) > 0)
            return; /* the woken worker clears `waking` */
        /* Nobody was inside futex_wait: a parker may be between its count and its sleep
         * (the bumped sequence makes its futex_wait return), or it found work. Clear the
         * flag and look again, so that a parker that read the new sequence is not left
         * asleep behind a flag nobody will clear. */
        atomic_store_explicit(&p->waking, 0, memory_order_seq_cst);
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(&p->nsearching, memory_order_relaxed) != 0 ||
            atomic_load_explicit(&p->nsleeping, memory_order_relaxed) <= self)
            return;
    }
}

void weft_notify_(struct weft_pool *p, bool after_sc_push)
{
    uint32_t sleeping;
    if (after_sc_push) {
        /* The submitter's half of the parking protocol (see top), without a fence: the
         * push was a seq_cst CAS and these loads are seq_cst, so both are in the single
         * total order S. If the push precedes the parker's fence in S, the parker's
         * re-check (after its fence) sees it; otherwise the parker's increment of nsleeping
         * (sequenced before its fence) precedes our load in S, and we see it. On x86 this
         * saves the fence: the CAS is already a locked instruction, seq_cst loads are
         * plain loads. */
        /* nsleeping first: its line changes only when a worker parks or wakes, while
         * nsearching's changes whenever a worker starts or stops searching; a busy pool
         * with nobody parked never makes a submitter fetch the latter. The order of the
         * loads does not matter to the argument above (each one alone justifies
         * returning). */
        if ((sleeping = atomic_load_explicit(&p->nsleeping, memory_order_seq_cst)) == 0 ||
            atomic_load_explicit(&p->nsearching, memory_order_seq_cst) != 0 ||
            atomic_load_explicit(&p->waking, memory_order_seq_cst) != 0)
            return;
    } else {
        /* After a push onto our own deque: a hint only (see top). */
        if ((sleeping = atomic_load_explicit(&p->nsleeping, memory_order_relaxed)) == 0 ||
            atomic_load_explicit(&p->nsearching, memory_order_relaxed) != 0 ||
            atomic_load_explicit(&p->waking, memory_order_relaxed) != 0)
            return;
    }
    /* Only now, with somebody counted asleep, ask whether that is the caller itself. */
    struct weft_worker *me = weft_tls_.worker;
    uint32_t self = me != NULL && me->pool == p && me->parking ? 1 : 0;
    if (sleeping > self)
        wake_one(p, self);
}

void weft_wake_all_(struct weft_pool *p)
{
    atomic_fetch_add_explicit(&p->sleep_seq, 1, memory_order_seq_cst);
    weft_futex_wake(&p->sleep_seq, INT_MAX);
}

/* ---------------------------------------------------------------------------------------
 * Finding work
 * ------------------------------------------------------------------------------------- */

/* Takes a detached list (newest first) and returns its oldest future, to run now. The rest
 * goes onto w's deque as chains of up to CHAIN_MAX consecutive submissions, each relinked
 * oldest first, the newest chain pushed first: w takes them oldest first, thieves take the
 * newest, CHAIN_MAX futures per steal. Relinking writes each future's line, which its run
 * writes anyway (the state word). */
static struct weft_future *distribute(struct weft_worker *w, struct weft_future *l)
{
    uint64_t n = 0;
    unsigned k = 0;
    struct weft_future *chain = NULL;
    while (l != NULL) {
        struct weft_future *next = l->next;
        l->next = chain; /* prepend: the chain ends up oldest first */
        chain = l;
        l = next;
        n++;
        if (++k == CHAIN_MAX && l != NULL) {
            weft_push_chain_(w, chain);
            chain = NULL;
            k = 0;
        }
    }
    /* chain holds the oldest futures: run the first, queue the rest. */
    if (chain->next != NULL)
        weft_push_chain_(w, chain->next);
    ctr_inc(&w->ctr.inbox_takes);
    atomic_store_explicit(&w->ctr.submits,
                          atomic_load_explicit(&w->ctr.submits, memory_order_relaxed) + n,
                          memory_order_relaxed);
    if (n > 1)
        weft_notify_published_(w->pool); /* more work than one worker: call for help */
    return chain;
}

static struct weft_future *inbox_take(struct weft_worker *w, struct weft_worker *v)
{
    struct weft_future *h = atomic_load_explicit(&v->inbox, memory_order_relaxed);
    while (h != NULL && h != INBOX_CLOSED) {
        /* Acquire: pairs with the submitters' release CAS (see inbox_push): the futures in
         * the list are fully initialised. CAS to NULL (not exchange): must never replace
         * INBOX_CLOSED. */
        if (atomic_compare_exchange_weak_explicit(&v->inbox, &h, NULL, memory_order_acquire,
                                                  memory_order_relaxed))
            return distribute(w, h);
    }
    return NULL;
}

static struct weft_future *orphans_take(struct weft_worker *w)
{
    struct weft_pool *p = w->pool;
    if (atomic_load_explicit(&p->orphans, memory_order_relaxed) == NULL)
        return NULL;
    /* Acquire: pairs with the release CAS in weft_close_inboxes_. */
    struct weft_future *l = atomic_exchange_explicit(&p->orphans, NULL, memory_order_acquire);
    return l != NULL ? distribute(w, l) : NULL;
}

static struct weft_future *steal_from(struct weft_worker *w, struct weft_worker *v)
{
    ck_backoff_t backoff = BACKOFF_INITIAL;
    for (int i = 0; i < STEAL_RETRIES; i++) {
        void *x;
        switch (weft_deque_steal(&v->dq, &w->rec, &x)) {
        case WEFT_STEAL_OK: {
            struct weft_future *f = weft_entry_open_(w, x);
            ctr_inc(&w->ctr.steals);
            /* Relaxed: a hint for the joiner's leapfrogging, nothing depends on it. */
            atomic_store_explicit(&f->thief, (int32_t)w->index, memory_order_relaxed);
            weft_want_expose_(v); /* its deque may be empty now */
            return f;
        }
        case WEFT_STEAL_EMPTY:
            return NULL;
        case WEFT_STEAL_ABORT:
            /* Lost a race on `top`: back off (Concurrency Kit's exponential backoff) so
             * that thieves hammering one victim do not keep invalidating its line. */
            ck_backoff_eb(&backoff);
            break;
        }
    }
    return NULL;
}

static struct weft_future *find_local(struct weft_worker *w)
{
    void *x = weft_deque_take_inline(&w->dq);
    if (x != NULL) {
        weft_want_expose_(w); /* the deque may be empty now */
        return weft_entry_open_(w, x);
    }
    return inbox_take(w, w);
}

static struct weft_future *find_remote(struct weft_worker *w)
{
    struct weft_pool *p = w->pool;
    unsigned n = p->n;
    if (n > 1) {
        unsigned start = (unsigned)(next_rand(&w->rng) % n);
        for (unsigned k = 0; k < n; k++) {
            struct weft_worker *v = &p->workers[(start + k) % n];
            if (v == w)
                continue;
            /* The victim's inbox first: one CAS takes a whole batch of submissions that
             * nobody has started, where a steal moves one task and contends with its
             * owner. */
            struct weft_future *f = inbox_take(w, v);
            if (f == NULL)
                f = steal_from(w, v);
            if (f != NULL)
                return f;
            /* Nothing public there: ask the owner to expose a private task (forkjoin.c). */
            weft_want_expose_(v);
        }
        ctr_inc(&w->ctr.failed_steals);
    }
    return orphans_take(w);
}

static struct weft_future *find_any(struct weft_worker *w)
{
    struct weft_future *f = find_local(w);
    return f != NULL ? f : find_remote(w);
}

/* ---------------------------------------------------------------------------------------
 * Running
 * ------------------------------------------------------------------------------------- */
void weft_run_task_(struct weft_worker *w, struct weft_future *f)
{
    /* Relaxed: ST_TASK is fixed at initialisation, published with the task. */
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    bool task = (s & ST_TASK) != 0;
    if (!task) {
        struct weft_pool *p = w->pool;
        if (WEFT_UNLIKELY(atomic_load_explicit(&p->cancel_pending, memory_order_relaxed))) {
            weft_future_try_cancel_(f);
            weft_future_release(f);
            return;
        }
        if (WEFT_UNLIKELY(atomic_load_explicit(&p->run_state, memory_order_relaxed) ==
                          POOL_BROKEN)) {
            if (weft_future_start_(f) == 0)
                weft_future_complete_(f, NULL, WEFT_EBROKEN, NULL);
            weft_future_release(f);
            return;
        }
        /* PENDING -> RUNNING. Acq_rel: acquire orders the task after a cancel decision we
         * lost to; release lets running() observers see it. Fails only if cancelled. */
        while ((s & ST_MASK) == WEFT_PENDING) {
            if (atomic_compare_exchange_weak_explicit(&f->state, &s, (s & ~ST_MASK) | WEFT_RUNNING,
                                                      memory_order_acq_rel, memory_order_relaxed))
                break;
        }
        if ((s & ST_MASK) != WEFT_PENDING) {
            weft_future_release(f); /* cancelled while queued */
            return;
        }
    }
    int code;
    char *msg;
    /* A spawned task has no future of its own: it reports its spawner's. */
    void *v = weft_call_(task ? f->root : f, f->fn, f->arg, &code, &msg);
    ctr_inc(&w->ctr.tasks_run);
    if (task) {
        free(msg); /* weft_join reports the code only */
        msg = NULL;
    }
    weft_future_complete_(f, v, code, msg);
    if (!task)
        weft_future_release(f);
}

struct weft_future *weft_find_help_(struct weft_worker *w, _Atomic int32_t *prefer)
{
    /* Our own private tasks first, newest first: the task we wait for may depend on one
     * (a child that completes a promise we wait on), and nobody else can run them until
     * they are exposed. Their joins find them done. */
    if (w->ptop > w->pbase) {
        ctr_inc(&w->ctr.private_runs); /* run by the caller through weft_run_task_ */
        struct weft_future *x = *--w->ptop;
        weft_task_init_(x);
        return x;
    }
    struct weft_future *f = weft_entry_open_(w, weft_deque_take_inline(&w->dq));
    if (f != NULL)
        weft_want_expose_(w); /* the deque may be empty now */
    if (f == NULL && prefer != NULL) {
        /* Leapfrogging: the thief of the task we wait for is working on its subtasks;
         * stealing from it helps that very task finish. */
        int32_t t = atomic_load_explicit(prefer, memory_order_relaxed);
        if (t >= 0 && (unsigned)t < w->pool->n && (unsigned)t != w->index) {
            struct weft_worker *v = &w->pool->workers[t];
            f = steal_from(w, v);
            if (f == NULL)
                weft_want_expose_(v);
        }
    }
    if (f == NULL)
        f = inbox_take(w, w);
    if (f == NULL)
        f = find_remote(w);
    return f;
}

bool weft_block_(const struct weft_waitable *c, int64_t deadline, int64_t spin_ns,
                 _Atomic int32_t *prefer)
{
    if (c->ready(c->ctx))
        return true;
    struct weft_worker *w = weft_tls_.worker;
    unsigned idle = 0;
    int64_t slice = HELP_SLICE_MIN, spin_end = -1;
    for (;;) {
        if (c->ready(c->ctx))
            return true;
        if (w != NULL) {
            /* A worker never just blocks: it runs other tasks (so recursive fork-join and
             * nested futures cannot deadlock, whatever the number of workers). */
            struct weft_future *f = weft_find_help_(w, prefer);
            if (f != NULL) {
                weft_run_task_(w, f);
                idle = 0;
                slice = HELP_SLICE_MIN;
                continue;
            }
        }
        idle++;
        if (w != NULL ? idle < HELP_SPINS : (idle & 31) != 0) {
            /* An outside waiter backs off between polls (1, 2, .. 8 pauses): each poll
             * pulls the future's line to this CPU, and the worker completing it must take
             * it back (up to ~250 ns per transfer between the vCPUs of a VM). */
            for (unsigned k = w != NULL ? 1 : (idle < 8 ? idle : 8); k > 0; k--)
                weft_cpu_relax();
            continue;
        }
        int64_t now = weft_now_ns();
        if (deadline >= 0 && now >= deadline)
            return c->ready(c->ctx);
        if (w == NULL) {
            /* Outside thread: spin first; a futex sleep + wake costs 10-25 µs on a VM.
             * Yield every 32 polls, so that a worker sharing this CPU can run the task. */
            if (spin_end < 0)
                spin_end = now + spin_ns;
            if (now < spin_end) {
                /* The first quarter of the window polls without a system call (the common
                 * case: a worker on another CPU completes within a few µs). */
                if (spin_end - now < spin_ns - spin_ns / 4)
                    sched_yield();
                else
                    weft_cpu_relax();
                continue;
            }
        }
        _Atomic uint32_t *word;
        uint32_t expect;
        if (!c->arm(c->ctx, &word, &expect))
            continue; /* something changed: test the condition again */
        int64_t until = deadline;
        if (w != NULL) {
            /* A waiting worker sleeps in slices, then looks for work again: new tasks may
             * have arrived that it should run. */
            until = now + slice;
            if (deadline >= 0 && deadline < until)
                until = deadline;
            slice = slice * 2 > HELP_SLICE_MAX ? HELP_SLICE_MAX : slice * 2;
        }
        weft_futex_wait(word, expect, until);
        if (c->disarm != NULL)
            c->disarm(c->ctx);
    }
}

/* ---------------------------------------------------------------------------------------
 * Idle: search, then park
 * ------------------------------------------------------------------------------------- */
static struct weft_future *found_while_searching(struct weft_pool *p, struct weft_future *f)
{
    /* The last searcher leaving with work wakes a parked worker (if any) to take over the
     * search: a burst wakes workers one after another, as many as find work. */
    if (atomic_fetch_sub_explicit(&p->nsearching, 1, memory_order_seq_cst) == 1)
        weft_notify_(p, false);
    return f;
}

/* Returns work, or NULL when the pool is shut down and nothing is left to find. */
static struct weft_future *search(struct weft_worker *w)
{
    struct weft_pool *p = w->pool;
    /* In a pool of 4 or more, a worker spins only while searchers are fewer than half the
     * workers awake (Tokio's rule); the others park at once. Every search round reads the
     * inboxes and deques of the busy workers, and each read costs the writer of that line
     * a miss: on a 16-core machine, fan-out from one thread took 260 ns per task at 8
     * workers and 350 at 15, against 120 and 80-130 with the rule. Smaller pools keep
     * every idle worker spinning: there the rule cost fan-out and latency (a submitter
     * that finds everyone parked pays a futex wake). Relaxed loads: a heuristic; parking
     * early is always safe (see the protocol at the top). Decided on entry and after each
     * wake-up; we are counted among the searchers already. */
    atomic_fetch_add_explicit(&p->nsearching, 1, memory_order_seq_cst);
    for (;;) {
        int64_t end = -1;
        uint32_t awake = p->n - atomic_load_explicit(&p->nsleeping, memory_order_relaxed);
        uint32_t others = atomic_load_explicit(&p->nsearching, memory_order_relaxed) - 1;
        bool may_spin = p->n < 4 || 2 * others < awake;
        for (unsigned round = 1;; round++) {
            struct weft_future *f = find_any(w);
            if (f != NULL)
                return found_while_searching(p, f);
            /* Acquire: pairs with shutdown's seq_cst store, made after it closed the
             * inboxes; the re-check below therefore sees whatever they held. */
            if (atomic_load_explicit(&p->run_state, memory_order_acquire) != POOL_RUNNING) {
                f = find_any(w);
                if (f != NULL)
                    return found_while_searching(p, f);
                atomic_fetch_sub_explicit(&p->nsearching, 1, memory_order_seq_cst);
                return NULL;
            }
            if (p->spin_ns <= 0 || !may_spin)
                break;
            if (end < 0)
                end = weft_now_ns() + p->spin_ns;
            else if ((round & 7) == 0 && weft_now_ns() >= end)
                break;
            /* Yield the CPU between rounds: when threads outnumber cores (a submitter, or
             * another pool, on this worker's CPU), a pure spin would hold the CPU that
             * the thread about to give us work needs, for the whole spin window. The first
             * rounds poll without a system call; sched_yield returns at once on an idle
             * CPU. */
            if (round > 4)
                sched_yield();
            else
                for (int i = 0; i < 32; i++)
                    weft_cpu_relax();
        }

        /* Park (see the protocol at the top of this file). */
        uint32_t seq = atomic_load_explicit(&p->sleep_seq, memory_order_acquire);
        atomic_fetch_add_explicit(&p->nsleeping, 1, memory_order_seq_cst);
        atomic_fetch_sub_explicit(&p->nsearching, 1, memory_order_seq_cst);
        /* Seq_cst fence: the parker's half of the protocol; orders the count above before
         * the re-check below. */
        atomic_thread_fence(memory_order_seq_cst);
        w->parking = true; /* counted in nsleeping: weft_notify_ must not count us */
        struct weft_future *f = find_any(w);
        w->parking = false;
        if (f == NULL &&
            atomic_load_explicit(&p->run_state, memory_order_acquire) != POOL_RUNNING) {
            atomic_fetch_sub_explicit(&p->nsleeping, 1, memory_order_seq_cst);
            f = find_any(w);
            if (f == NULL)
                return NULL;
            return f;
        }
        if (f != NULL) {
            atomic_fetch_sub_explicit(&p->nsleeping, 1, memory_order_seq_cst);
            return f;
        }
        ctr_inc(&w->ctr.parks);
        weft_futex_wait(&p->sleep_seq, seq, -1);
        ctr_inc(&w->ctr.wakes);
        atomic_fetch_add_explicit(&p->nsearching, 1, memory_order_seq_cst);
        atomic_fetch_sub_explicit(&p->nsleeping, 1, memory_order_seq_cst);
        /* Clear the in-flight flag only once counted as a searcher, then fence before
         * searching: a notifier that still saw the flag set is covered by this search. */
        atomic_store_explicit(&p->waking, 0, memory_order_seq_cst);
        atomic_thread_fence(memory_order_seq_cst);
    }
}

static void break_pool(struct weft_pool *p)
{
    atomic_store_explicit(&p->run_state, POOL_BROKEN, memory_order_seq_cst);
    weft_close_inboxes_(p, WEFT_EBROKEN);
    weft_wake_all_(p);
}

/* Outside any task, a worker's failure slot holds what weft_fail recorded in code that is
 * no task's (an initializer, a done-callback): nobody reports it. */
static void discard_failure(struct weft_tls *tl)
{
    free(tl->fail_msg);
    tl->fail_msg = NULL;
    tl->fail_code = 0;
}

void *weft_worker_main_(void *arg)
{
    struct weft_worker *w = arg;
    struct weft_pool *p = w->pool;
    struct weft_tls *tl = &weft_tls_;
    tl->worker = w;

    /* Linux keeps 15 characters: cut the prefix, never the "_N" that tells workers apart. */
    char name[32], num[16];
    int nlen = snprintf(num, sizeof(num), "_%u", w->index);
    snprintf(name, sizeof(name), "%.*s%s", 15 - nlen, p->name, num);
    pthread_setname_np(pthread_self(), name);

    bool init_ok = true;
    if (p->initializer != NULL && p->initializer(p->init_arg, w->index) != 0) {
        init_ok = false;
        break_pool(p);
    }
    /* Start barrier: no worker takes a task before every initializer has run, so that a
     * failing one breaks the pool before any task starts. */
    uint32_t d = atomic_fetch_add_explicit(&p->init_done, 1, memory_order_acq_rel) + 1;
    if (d >= p->n) {
        weft_futex_wake(&p->init_done, INT_MAX);
    } else {
        while ((d = atomic_load_explicit(&p->init_done, memory_order_acquire)) < p->n)
            weft_futex_wait(&p->init_done, d, -1);
    }

    if (atomic_load_explicit(&p->run_state, memory_order_acquire) != POOL_BROKEN) {
        for (;;) {
            struct weft_future *f = find_local(w);
            if (f == NULL)
                f = search(w);
            if (f == NULL)
                break;
            weft_run_task_(w, f);
            if (WEFT_UNLIKELY(tl->fail_code != 0))
                discard_failure(tl); /* weft_fail in a done-callback: no task to fail */
        }
    }
    if (init_ok && p->finalizer != NULL)
        p->finalizer(p->init_arg, w->index);
    discard_failure(tl);
    tl->worker = NULL;
    return NULL;
}
