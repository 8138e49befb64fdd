/*
 * weft — a lock-free work-stealing task engine with futures, for C services.
 *
 * This header is the contract. Every function states its thread-safety, who owns what and
 * for how long, every error it returns, and what happens-before what. Nothing here requires
 * reading src/.
 *
 * Overview
 * --------
 *   weft_pool      a set of worker threads, one per CPU by default, each owning a
 *                  work-stealing deque. Idle workers steal from each other, then park on a
 *                  futex (no CPU used while idle).
 *   weft_future    the handle `weft_submit` returns at once. It moves
 *                  PENDING -> RUNNING -> FINISHED | FAILED, or PENDING -> CANCELLED, through
 *                  atomic transitions of one state word. Waiting sleeps on that word.
 *   weft_task      caller-owned storage for the fork-join fast path (`weft_spawn` /
 *                  `weft_join`): no heap allocation, no reference counting.
 *
 * Errors
 * ------
 * Functions return 0 on success or a negative code. weft's own codes (WEFT_E*) live in a
 * reserved block (-7000 .. -7099) so they never collide with negated errno values, which
 * weft also returns (WEFT_EINVAL is -EINVAL, WEFT_ENOMEM is -ENOMEM). `weft_strerror`
 * names any of them. A task fails with a code of its own choosing (see `weft_fail`); waiting
 * on its future returns that code: the task's error is "re-raised" in the waiter.
 *
 * Memory ordering, in one sentence
 * --------------------------------
 * Everything a task did before it completed happens-before everything a thread does after
 * it observed that completion (result/done/callback/join returning), and everything the
 * submitter did before `weft_submit`/`weft_spawn` happens-before the task starts.
 */
#ifndef WEFT_H
#define WEFT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0
#define WEFT_VERSION_HEX                                                                           \
    ((WEFT_VERSION_MAJOR << 16) | (WEFT_VERSION_MINOR << 8) | WEFT_VERSION_PATCH)

/* The version of the library linked at run time, as WEFT_VERSION_HEX. */
unsigned weft_version(void);

/* ---------------------------------------------------------------------------------------
 * Error codes
 * ------------------------------------------------------------------------------------- */
#define WEFT_EINVAL     (-EINVAL) /* a bad argument (NULL, out of range, wrong thread) */
#define WEFT_ENOMEM     (-ENOMEM) /* an allocation failed; nothing was changed */
#define WEFT_ETIMEDOUT  (-7001)   /* the wait's timeout expired before the future was done */
#define WEFT_ECANCELED  (-7002)   /* the future was cancelled before its task started */
#define WEFT_ESTATE     (-7003)   /* the future is not in a state that allows this */
#define WEFT_ESHUTDOWN  (-7004)   /* the pool is shut down: it accepts no new work */
#define WEFT_EBROKEN    (-7005)   /* the pool is broken (a worker initializer failed) */
#define WEFT_EFAILED    (-7006)   /* a task failed without giving a code (weft_fail(0,..)) */
#define WEFT_ENOTWORKER (-7007)   /* the call must be made from inside a pool's task */
#define WEFT_EEND       (-7008)   /* an iterator has nothing more to yield */

/* A static, human-readable description of any code weft returns, including negated errno
 * values and task codes (for which it falls back to strerror). Never NULL. Thread-safe. */
const char *weft_strerror(int code);

/* ---------------------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------------------- */
typedef struct weft_pool weft_pool;
typedef struct weft_future weft_future;

/* A task: takes the argument given at submission, returns the value the future holds. To
 * fail, call `weft_fail` (typically `return weft_fail(code, "...")`). */
typedef void *(*weft_fn)(void *arg);

/* A done-callback: runs exactly once, when the future becomes FINISHED, FAILED or CANCELLED
 * (or at once, in the registering thread, if it already is). `f` is borrowed: it stays valid
 * for the duration of the call; retain it to keep it longer. */
typedef void (*weft_done_cb)(weft_future *f, void *arg);

/* Future states, as returned by weft_future_state. */
enum weft_state {
    WEFT_PENDING = 0,   /* submitted, not started: cancel succeeds */
    WEFT_RUNNING = 1,   /* a worker is running the task: cancel fails */
    WEFT_FINISHED = 2,  /* done with a value */
    WEFT_FAILED = 3,    /* done with an error code (and maybe a message) */
    WEFT_CANCELLED = 4, /* done: cancelled before it started; the task never runs */
};

/* Timeouts are in nanoseconds, relative to the call. */
#define WEFT_FOREVER ((int64_t)-1) /* wait without a timeout */

/* ---------------------------------------------------------------------------------------
 * Pool
 * ------------------------------------------------------------------------------------- */

/* How workers are pinned to CPUs (WEFT_PROC_BIND; names follow OMP_PROC_BIND). */
enum weft_bind {
    WEFT_BIND_DEFAULT = -1, /* use WEFT_PROC_BIND, else WEFT_BIND_NONE */
    WEFT_BIND_NONE = 0,     /* "false": not pinned, the kernel places threads */
    WEFT_BIND_COMPACT = 1,  /* "close": worker i on the i-th allowed CPU, siblings first */
    WEFT_BIND_SCATTER = 2,  /* "spread": spread workers over cores and sockets first */
};

typedef struct weft_pool_options {
    /* Number of workers; 0 = WEFT_NUM_THREADS, else the CPUs in the process's affinity mask
     * capped by the cgroup CPU quota. At most 1024. */
    unsigned num_threads;
    /* enum weft_bind; WEFT_BIND_DEFAULT = from the environment. */
    int bind;
    /* How long an idle worker looks for work before parking on a futex, in nanoseconds;
     * -1 = WEFT_SPIN, else 50 µs. 0 parks at once. In a pool of four or more workers, only
     * while fewer than half the awake workers are already looking; the others park at once.
     * (Threads that wait outside any worker spin a fixed 20 µs before they sleep.) */
    int64_t spin_ns;
    /* Initial capacity of each worker's deque (rounded up to a power of two, it grows on
     * demand); 0 = WEFT_DEQUE_SIZE, else 1024. */
    unsigned deque_size;
    /* 1 = print a statistics table to stderr when the pool is destroyed; 0 = don't;
     * -1 = WEFT_STATS. */
    int stats;
    /* Worker thread name prefix: threads are named "<prefix>_<N>" (truncated to the 15
     * characters Linux keeps). NULL = "weft". Copied; need not outlive the call. */
    const char *name;
    /* Optional per-worker initializer, run on each worker thread before it takes any task.
     * A nonzero return breaks the pool: every pending future fails with WEFT_EBROKEN, and so
     * does every later submit. `worker` is the worker's index, 0 .. num_threads-1. */
    int (*initializer)(void *arg, unsigned worker);
    /* Optional per-worker finalizer, run on each worker thread as it exits, on every
     * worker whose initializer succeeded (also when another worker's failed and broke the
     * pool); not on the worker whose initializer failed. */
    void (*finalizer)(void *arg, unsigned worker);
    void *init_arg;
} weft_pool_options;

/* Fills `opts` with "take it from the environment, else the default" for every field.
 * Always call it before setting fields, so that fields added later keep their defaults. */
void weft_pool_options_init(weft_pool_options *opts);

/* Creates a pool and starts its workers. `opts` may be NULL (all defaults). The WEFT_*
 * environment variables are read here, once; explicit options override them. A malformed
 * variable is not ignored: it is reported on stderr with its name and accepted range, and
 * creation fails with WEFT_EINVAL.
 * Returns 0 and sets *out, WEFT_EINVAL (bad option or environment, NULL out), WEFT_ENOMEM,
 * or a negated errno from thread creation (nothing is left behind on failure).
 * Thread-safe: several pools may live in one process. */
int weft_pool_create(const weft_pool_options *opts, weft_pool **out);

/* Stops accepting work. After it returns, weft_submit/weft_spawn on this pool fail with
 * WEFT_ESHUTDOWN. If `cancel_futures`, every future that has not started is cancelled
 * (its callbacks run, its waiters wake); running tasks complete normally. If `wait`, returns
 * once every queued and running task has finished (must not be called from one of the
 * pool's own workers then: WEFT_EINVAL); if not, returns at once, even if a task never ends.
 * Idempotent; may be called from any thread. Returns 0 or WEFT_EINVAL. */
int weft_pool_shutdown(weft_pool *pool, bool wait, bool cancel_futures);

/* Shuts the pool down with wait = true (queued work still runs), joins its workers and
 * frees it. Futures obtained from it stay valid until released: their outcome is kept.
 * Must not be called from one of the pool's workers (WEFT_EINVAL) nor twice. With
 * WEFT_STATS=1 (or opts.stats) prints the statistics table first. Returns 0 or WEFT_EINVAL. */
int weft_pool_destroy(weft_pool *pool);

/* Number of worker threads. */
unsigned weft_pool_size(const weft_pool *pool);

/* The pool whose task the calling thread is running, and that worker's index; NULL / -1
 * outside any pool's worker. */
weft_pool *weft_current_pool(void);
int weft_current_worker(void);

/* Counters since the pool was created. Each is summed over workers by weft_pool_stats;
 * weft_pool_worker_stats gives one worker's. Values are read without stopping the workers:
 * the set is not a single snapshot. Nothing is counted on weft_join's fast path:
 * inline_joins (and the part of tasks_run it adds) is derived from the other counters, so
 * while spawned tasks wait to be joined they already count as run; once the tasks that
 * spawned them have returned, every counter is exact. */
typedef struct weft_stats {
    uint64_t tasks_run;     /* tasks (futures and spawned tasks) executed */
    uint64_t spawns;        /* weft_spawn calls, and weft_submit calls made by tasks */
    uint64_t submits;       /* futures submitted from outside threads (counted when a
                               worker takes them from an inbox) */
    uint64_t steals;        /* successful steals from another worker's deque: one task,
                               or a run of up to 32 consecutive outside submissions */
    uint64_t failed_steals; /* steal attempts that found nothing or lost a race */
    uint64_t inbox_takes;   /* batches taken from submission inboxes */
    uint64_t parks;         /* times a worker went to sleep on the futex */
    uint64_t wakes;         /* futex wake calls made for this pool's workers */
    uint64_t inline_joins;  /* weft_join that ran its task itself (not stolen) */
} weft_stats;

/* Fills *out with the pool total. Returns 0 or WEFT_EINVAL. Thread-safe. */
int weft_pool_stats(const weft_pool *pool, weft_stats *out);
/* One worker's counters; WEFT_EINVAL if worker >= weft_pool_size(pool). */
int weft_pool_worker_stats(const weft_pool *pool, unsigned worker, weft_stats *out);

/* ---------------------------------------------------------------------------------------
 * Futures
 *
 * Lifetime, the one rule: every weft_future pointer that weft hands you carries one
 * reference, which you give back with weft_future_release. weft_future_retain adds one.
 * The pool holds its own reference while the task is queued or running, so releasing a
 * future early never harms the task; the task still runs unless it was cancelled.
 * ------------------------------------------------------------------------------------- */

/* Submits fn(arg) to the pool and returns at once with *out PENDING (the task may already
 * be running by the time the caller looks). From one of the pool's workers the task goes
 * onto that worker's deque (LIFO for it, stealable by the others); from any other thread it
 * goes through a lock-free per-worker inbox and wakes a parked worker if one is parked.
 * Outside submissions start roughly in submission order: a worker takes everything waiting
 * in an inbox at once and starts the oldest first, while idle workers steal runs of up to
 * 32 of the newest. No order is guaranteed between tasks that run on different workers.
 * Returns 0, WEFT_EINVAL (NULL pool/fn/out), WEFT_ENOMEM, WEFT_ESHUTDOWN or WEFT_EBROKEN; on
 * error *out is NULL and fn never runs. Thread-safe. */
int weft_submit(weft_pool *pool, weft_fn fn, void *arg, weft_future **out);

/* Waits until the future is done, for at most timeout_ns (WEFT_FOREVER: no limit; 0: do not
 * wait). Returns
 *   0               FINISHED; *value (if value is not NULL) is the task's return value
 *   WEFT_ETIMEDOUT  not done within the timeout (the future is unchanged)
 *   WEFT_ECANCELED  CANCELLED
 *   the task's code FAILED (see weft_fail; weft_future_message gives the message)
 *   WEFT_EINVAL     f is NULL
 * Called from one of a pool's workers, the wait does not block the worker: it runs other
 * tasks (its own first, then stolen ones) until the future is done, so recursive
 * fork-join cannot deadlock whatever the number of workers. Elsewhere it spins for up to
 * 20 µs, then sleeps on a futex. Thread-safe; any number of threads may wait on one future.
 * A timeout too large to represent as a deadline means no limit. */
int weft_future_result(weft_future *f, int64_t timeout_ns, void **value);

/* The error code of a FAILED future (the task's code), WEFT_ECANCELED for a CANCELLED one,
 * 0 otherwise. Never blocks. */
int weft_future_error(const weft_future *f);

/* The message the task gave weft_fail, or NULL. Owned by the future: valid until the last
 * reference is released. Never blocks. */
const char *weft_future_message(const weft_future *f);

/* The state now (enum weft_state). Never blocks; acquire ordering, so a FINISHED or FAILED
 * state read here makes the task's writes visible. */
int weft_future_state(const weft_future *f);
bool weft_future_done(const weft_future *f);      /* FINISHED, FAILED or CANCELLED */
bool weft_future_running(const weft_future *f);   /* RUNNING */
bool weft_future_cancelled(const weft_future *f); /* CANCELLED */

/* Cancels the future if its task has not started. Returns 0 if it is now CANCELLED (also
 * when it already was: idempotent) and WEFT_ESTATE if it is RUNNING, FINISHED or FAILED.
 * On success the task never runs, waiters wake with WEFT_ECANCELED and callbacks run (in
 * this thread). Thread-safe. */
int weft_future_cancel(weft_future *f);

/* Registers cb(f, arg) to run exactly once when f is done: in the completing thread, in
 * registration order, or at once in this thread if f is already done. Callbacks run after
 * the state is final and after waiters are released. A callback must not block for long;
 * it may call any weft function, including on f. A callback cannot make another one be
 * skipped (C has no exceptions to escape with). Returns 0, WEFT_EINVAL (NULL f or cb) or
 * WEFT_ENOMEM (the callback is then not registered). Thread-safe, also concurrently with
 * completion: each callback runs exactly once either way. */
int weft_future_add_done_callback(weft_future *f, weft_done_cb cb, void *arg);

/* Adds a reference. Thread-safe. */
void weft_future_retain(weft_future *f);
/* Gives one reference back; the last one frees the future (its message included). NULL is
 * ignored. Thread-safe. A future from weft_submit always completes (the pool holds its own
 * reference until then). A promise (weft_future_create) must be completed or cancelled
 * before its last reference goes: released unfinished, its pending done-callbacks are
 * dropped without running, and what they would have freed (the bookkeeping of a weft_wait,
 * weft_as_completed, weft_then, weft_all or weft_any watching it) is leaked. */
void weft_future_release(weft_future *f);

/* Called from inside a task: records that the task fails with `code` and a printf-style
 * message (fmt may be NULL), and returns NULL so that `return weft_fail(...)` reads well.
 * The code is stored negated if positive (so weft_fail(errno, ...) works), and as
 * WEFT_EFAILED if 0. The last call before the task returns wins; the task's return value is
 * then discarded. Outside a task it does nothing but return NULL. */
void *weft_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The future of the submitted task the calling thread is running, or NULL outside tasks.
 * A weft_spawn task has no future of its own: inside one this is the future of the
 * submitted task that spawned it, directly or through other spawned tasks, whichever
 * worker runs it (NULL if the spawning code was no submitted task, e.g. a done-callback).
 * Borrowed: valid while that task runs. */
weft_future *weft_current_future(void);

/* Promise side: a future with no task, completed by the caller (the executor side of a
 * future, as in Python's Future.set_result). Starts PENDING with one reference. Use it to
 * adapt other sources of completion (a callback API, an event loop) to weft's futures.
 * Returns 0, WEFT_EINVAL or WEFT_ENOMEM. */
int weft_future_create(weft_future **out);
/* The three calls below are for promises only: on a future from weft_submit (which its
 * task alone completes) they return WEFT_EINVAL and change nothing, as for a NULL f.
 *
 * PENDING -> RUNNING. Returns 0, or WEFT_ECANCELED if it was cancelled (then do not run the
 * work), or WEFT_ESTATE if it is not PENDING. */
int weft_future_set_running(weft_future *f);
/* PENDING|RUNNING -> FINISHED with `value`. Exactly one completion wins: returns 0, or
 * WEFT_ESTATE if the future is already done (the first outcome stays). Wakes waiters, then
 * runs the callbacks in the calling thread. */
int weft_future_set_value(weft_future *f, void *value);
/* PENDING|RUNNING -> FAILED with `code` (normalised as in weft_fail) and an optional
 * message (copied; NULL for none). Returns 0, WEFT_ESTATE (already done; first outcome
 * stays) or WEFT_ENOMEM (message copy failed; the future is failed without a message). */
int weft_future_set_error(weft_future *f, int code, const char *message);

/* ---------------------------------------------------------------------------------------
 * Fork-join fast path
 *
 * A weft_task lives in the caller's storage (usually its stack frame): spawn and join
 * allocate nothing and touch no reference count. Both must be called on a pool's worker
 * thread: inside a task (a weft_submit task, or a spawned one) or a done-callback that the
 * worker runs. Every spawned task must
 * be joined, by the thread that spawned it, before its storage goes away; joining in the
 * reverse order of spawning is fastest (the task is usually still on the worker's own deque
 * and runs inline), any order is correct.
 * ------------------------------------------------------------------------------------- */
typedef struct weft_task {
    void *opaque_[8]; /* private */
} weft_task;

/* Records fn(arg) on the calling worker's private spawn stack (plain stores, no atomic
 * instruction). Whenever the worker's public deque may be empty (at first, after a steal
 * from it, after the worker took from it, or when an idle worker found it empty), a spawn
 * also moves the worker's oldest private task onto that deque, where idle workers steal
 * it: so `spawn(a); long work; join(a)` runs `a` in parallel. A task nobody took runs
 * inline in weft_join, or while this worker waits in any weft wait.
 * Returns 0, WEFT_ENOTWORKER (not on a pool's worker), WEFT_EINVAL (NULL t or fn),
 * WEFT_ENOMEM (the private stack could not grow: the task is not spawned; run it yourself).
 * Spawning is allowed after weft_pool_shutdown: running work completes normally, and it
 * may need its children. */
int weft_spawn(weft_task *t, weft_fn fn, void *arg);

/* Waits for a spawned task and returns its value; while the task is running elsewhere, the
 * worker runs other tasks. If the task failed (weft_fail), returns NULL and, when err is
 * not NULL, sets *err to its code (0 on success). The task's message, if any, is dropped. */
void *weft_join(weft_task *t, int *err);

/* Convenience: submit fn(arg) and wait for it. Returns what weft_future_result returns. */
int weft_run(weft_pool *pool, weft_fn fn, void *arg, void **value);

/* ---------------------------------------------------------------------------------------
 * Collecting results (the counterparts of Python's concurrent.futures.wait, as_completed
 * and Executor.map)
 *
 * None of these polls, and none costs a thread per future: a waiter registers one
 * done-callback per future, which wakes it through one futex word.
 * ------------------------------------------------------------------------------------- */
enum weft_wait_mode {
    WEFT_FIRST_COMPLETED = 0, /* any future done (finished, failed or cancelled) */
    WEFT_FIRST_EXCEPTION = 1, /* any future FAILED; like ALL_COMPLETED if none fails */
    WEFT_ALL_COMPLETED = 2,   /* every future done */
};

/* Waits until the condition `mode` holds over fs[0..n-1], for at most timeout_ns
 * (WEFT_FOREVER: no limit; 0: just check). Returns at once when it already holds. A future
 * listed twice counts once. On return, if `done` is not NULL, done[i] tells whether fs[i]
 * was done at that moment (the "done" and "not done" sets), and *ndone (if not NULL) counts
 * the distinct done futures.
 * Returns 0 (the condition holds), WEFT_ETIMEDOUT (it did not within the timeout; done[]
 * is still filled), WEFT_EINVAL (fs NULL, n == 0, a NULL entry, bad mode) or WEFT_ENOMEM.
 * No reference is taken or given: the caller keeps fs alive for the call. From a worker it
 * helps (runs other tasks) while waiting. Thread-safe. */
int weft_wait(weft_future *const *fs, size_t n, int64_t timeout_ns, int mode, bool *done,
              size_t *ndone);

/* as_completed: yields each distinct future of fs once, in the order they complete; those
 * already done when the iterator is created come first, in input order. The timeout counts
 * from weft_as_completed_init (WEFT_FOREVER: none).
 *
 *   weft_as_completed *it;
 *   weft_as_completed_init(fs, n, WEFT_FOREVER, &it);
 *   weft_future *f;
 *   while (weft_as_completed_next(it, &f) == 0) { ... weft_future_release(f); }
 *   weft_as_completed_destroy(it);
 *
 * The iterator takes a reference on each future at init and hands it to the caller with
 * the future it yields (release it), so it holds no reference to a yielded future. One
 * thread uses an iterator at a time. */
typedef struct weft_as_completed weft_as_completed;

/* Returns 0, WEFT_EINVAL (fs NULL, n == 0, a NULL entry, NULL out) or WEFT_ENOMEM. */
int weft_as_completed_init(weft_future *const *fs, size_t n, int64_t timeout_ns,
                           weft_as_completed **out);
/* Waits for the next completed future and returns 0 with *out set (a reference the caller
 * now owns), WEFT_EEND when every future was yielded, or WEFT_ETIMEDOUT when the overall
 * timeout expired first (weft_as_completed_pending then says how many are unfinished;
 * calling next again returns futures that completed since, or WEFT_ETIMEDOUT at once). */
int weft_as_completed_next(weft_as_completed *it, weft_future **out);
/* How many distinct futures have not been yielded yet (*unfinished) out of how many
 * (*total) — the "2 (of 4) futures unfinished" of a timeout. Either pointer may be NULL. */
void weft_as_completed_pending(const weft_as_completed *it, size_t *unfinished, size_t *total);
/* Releases the references of futures not yet yielded and frees the iterator. The futures
 * keep running. NULL is ignored. */
void weft_as_completed_destroy(weft_as_completed *it);

typedef struct weft_map_options {
    /* Inputs per task; 0 = automatic (about n / (8 * workers), at least 1, at most 4096).
     * Batching tiny items in one task amortises the submission cost. */
    size_t chunksize;
    /* Most tasks in flight at once; 0 = no bound. Bounds memory for a huge input (Python's
     * buffersize): a new chunk is submitted only as the oldest one is collected. */
    size_t window;
    /* Overall timeout from the call, WEFT_FOREVER (the default) for none. */
    int64_t timeout_ns;
} weft_map_options;

/* Sets the defaults: chunksize 0 (automatic), window 0 (unbounded), no timeout. */
void weft_map_options_init(weft_map_options *opts);

/* Runs outputs[i] = fn(inputs[i]) for i in 0..n-1 on the pool, results in input order.
 * Stops at the first failure in input order: returns the element's code (see weft_fail),
 * sets *failed_index (if not NULL) to its index, cancels every chunk that has not started,
 * and waits for the ones running before returning, so that nothing writes to outputs after
 * the call. The same on timeout (WEFT_ETIMEDOUT; *failed_index = first unfinished index).
 * outputs of elements that did not run are left untouched. opts may be NULL (defaults).
 * Returns 0, a task's code, WEFT_ETIMEDOUT, WEFT_EINVAL (NULL pool/fn, n == 0, NULL inputs
 * or outputs), WEFT_ENOMEM, WEFT_ESHUTDOWN or WEFT_EBROKEN. Callable from a pool's worker
 * (it helps while waiting). */
int weft_map(weft_pool *pool, weft_fn fn, void *const *inputs, size_t n, void **outputs,
             const weft_map_options *opts, size_t *failed_index);

/* A loop body over the index range [begin, end): returns 0, or an error code that stops
 * the loop (see weft_parallel_for). */
typedef int (*weft_range_fn)(size_t begin, size_t end, void *arg);

/* Runs fn over [0, n) on the pool, split by recursive halving (weft_spawn/weft_join, so idle
 * workers steal the large halves first) into ranges of at most `grain` indices (0 =
 * automatic: about n / (8 * workers), at least 1). The C counterpart of oneTBB's
 * parallel_for: the body loops over a whole range itself, so the compiler can inline and
 * vectorise it, where weft_map calls a function per element. Returns when every range is
 * done: 0, or the code returned by a failing range (the first to fail); once one has
 * failed, ranges not yet started are skipped. Also WEFT_EINVAL (NULL pool or fn),
 * WEFT_ESHUTDOWN, WEFT_EBROKEN. Callable from a task on the same pool (nested loops run on
 * the calling worker's deque); everything fn wrote happens-before the return. */
int weft_parallel_for(weft_pool *pool, size_t n, size_t grain, weft_range_fn fn, void *arg);

/* ---------------------------------------------------------------------------------------
 * Composition: continuations, combinators, timeouts (no thread blocks on any of them)
 * ------------------------------------------------------------------------------------- */

/* A continuation: receives the completed source future (borrowed; inspect it with
 * weft_future_result(src, 0, &v), weft_future_error, ...) and returns the new future's
 * value, or fails it with weft_fail. */
typedef void *(*weft_then_fn)(weft_future *src, void *arg);

/* Returns in *out a new future that completes with cont(src, arg) once src is done,
 * whatever src's outcome. cont runs on `pool` (submitted when src completes), or inline in
 * the thread that completes src (or in this thread, if src is already done) when pool is
 * NULL — keep inline continuations short. Cancelling *out before cont starts cancels cont,
 * not src. If the pool refuses the continuation (shut down, broken), *out fails with that
 * code. Returns 0, WEFT_EINVAL (NULL src/cont/out) or WEFT_ENOMEM. */
int weft_then(weft_future *src, weft_pool *pool, weft_then_fn cont, void *arg, weft_future **out);

/* A future that completes when every fs[i] is done: FINISHED (value NULL) if none failed,
 * else FAILED with the code and message of the first failure, once all have finished; a
 * cancelled input counts as a failure with WEFT_ECANCELED. Returns 0, WEFT_EINVAL (fs NULL,
 * n == 0, NULL entry, NULL out) or WEFT_ENOMEM. The inputs need not outlive the call. */
int weft_all(weft_future *const *fs, size_t n, weft_future **out);

/* A future that completes when the first of fs[i] is done, whatever its outcome, with the
 * value (void *)(uintptr_t)i: inspect fs[i] for its outcome. If several are already done
 * when it is called, the lowest such index wins. Same returns as weft_all. */
int weft_any(weft_future *const *fs, size_t n, weft_future **out);

/* Puts a deadline on a future: if it is not done timeout_ns from now, a PENDING future is
 * cancelled (its task never runs) and a RUNNING one is completed at once as FAILED with
 * WEFT_ETIMEDOUT (the task runs on, and its outcome is discarded when it returns; weft
 * cannot interrupt C code). A timer thread, started on first use, fires the deadlines; a
 * future that completes first removes its timer. Returns 0, WEFT_EINVAL (NULL f, negative
 * timeout), WEFT_ESTATE (f already done) or WEFT_ENOMEM. */
int weft_future_set_timeout(weft_future *f, int64_t timeout_ns);

/* Like weft_submit, but a task that has not started within start_timeout_ns is cancelled
 * instead of being run late (waiters see WEFT_ECANCELED). Same returns as weft_submit,
 * plus WEFT_EINVAL for a negative timeout. */
int weft_submit_before(weft_pool *pool, weft_fn fn, void *arg, int64_t start_timeout_ns,
                       weft_future **out);

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC), the clock all weft timeouts use. */
int64_t weft_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_H */
