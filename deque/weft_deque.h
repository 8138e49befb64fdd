/*
 * weft_deque — a Chase–Lev work-stealing deque in C11 atomics.
 *
 * Follows N. M. Lê, A. Pop, A. Cohen, F. Zappa Nardelli, "Correct and Efficient
 * Work-Stealing for Weak Memory Models", PPoPP 2013 (Figure 1, the C11 version), itself
 * built on D. Chase and Y. Lev, "Dynamic Circular Work-Stealing Deque", SPAA 2005.
 *
 *   owner   push / take at the bottom, no lock, no CAS except for the last element;
 *   thieves steal at the top with one CAS on `top`.
 *
 * Elements are non-NULL pointers. Indices are monotonic 64-bit integers (`top` only grows,
 * so a CAS on it can never succeed against a recycled value: no ABA in 2^63 operations).
 * The circular buffer doubles when full; the retired buffer may still be read by a thief
 * that loaded the old array pointer, so it is not freed at once:
 *
 *   - with an epoch record (ck_epoch from Concurrency Kit): each steal that reads a buffer
 *     does so inside an epoch section, and the owner defers the free with ck_epoch_call and
 *     reclaims with ck_epoch_poll when it grows again (and at destroy). Memory stays bounded
 *     by the live buffer plus what readers still hold.
 *   - without (owner_rec == NULL): retired buffers are kept on a list until the deque is
 *     destroyed. Growth is geometric, so they add up to less than the live buffer: memory is
 *     at most twice the peak, and steals pay no epoch fence. Fine for short-lived deques.
 *
 * The pool uses the epoch variant, so that a burst that grew a deque once does not pin
 * twice its memory for the life of the service.
 *
 * Thread-safety: weft_deque_push / weft_deque_take / weft_deque_destroy by the owner thread
 * only; weft_deque_steal by any number of other threads concurrently (each with its own
 * epoch record, registered in the same ck_epoch_t as the owner's). weft_deque_size is a
 * racy estimate, callable from anywhere.
 */
#ifndef WEFT_DEQUE_H
#define WEFT_DEQUE_H

#include <ck_epoch.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT_CACHELINE 64

struct weft_deque_array {
    ck_epoch_entry_t epoch_entry;  /* for ck_epoch_call */
    struct weft_deque_array *next; /* retired list when no epoch record is used */
    int64_t mask;                  /* capacity - 1, capacity a power of two */
    _Atomic(void *) slots[];       /* atomic (relaxed) so a racing thief's read is defined */
};

typedef struct weft_deque {
    /* Thieves' end. On its own cache line: every steal CASes it. */
    _Alignas(WEFT_CACHELINE) _Atomic int64_t top;
    /* Owner's end, and the buffer pointer the owner replaces on growth. */
    _Alignas(WEFT_CACHELINE) _Atomic int64_t bottom;
    _Atomic(struct weft_deque_array *) array;
    ck_epoch_record_t *owner_rec;     /* NULL: keep retired buffers until destroy */
    struct weft_deque_array *retired; /* owner-only */
    char pad_[WEFT_CACHELINE - 4 * sizeof(void *)];
} weft_deque;

enum weft_steal_result {
    WEFT_STEAL_OK = 0,    /* *out holds the stolen element */
    WEFT_STEAL_EMPTY = 1, /* the deque looked empty */
    WEFT_STEAL_ABORT = 2, /* lost a race with another thief or the owner: try again */
};

/* Initialises an empty deque holding `capacity` elements before its first growth
 * (rounded up to a power of two, at least 2). owner_rec: the owner's ck_epoch record, or
 * NULL (see above). Returns 0 or -ENOMEM. */
int weft_deque_init(weft_deque *dq, size_t capacity, ck_epoch_record_t *owner_rec);

/* Frees the buffers. No thread may use the deque any more (with an epoch record, no thief
 * may be inside a steal of it). Elements still in it are dropped, not freed. */
void weft_deque_destroy(weft_deque *dq);

/* Owner only. Pushes a non-NULL element at the bottom. Returns 0, or -ENOMEM if the buffer
 * had to grow and could not (the element is then not pushed). The store of the element
 * happens-before a thief's successful steal of it. */
int weft_deque_push(weft_deque *dq, void *x);

/* Owner only. Takes the element pushed last that no thief took, or NULL if none. */
void *weft_deque_take(weft_deque *dq);

/* Any thread but the owner. Takes the element pushed first. rec: the thief's epoch record
 * (must be non-NULL iff the deque was initialised with an owner record). */
enum weft_steal_result weft_deque_steal(weft_deque *dq, ck_epoch_record_t *rec, void **out);

/* Estimated number of elements (exact when no other thread touches the deque). */
static inline int64_t weft_deque_size(weft_deque *dq)
{
    int64_t b = atomic_load_explicit(&dq->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&dq->top, memory_order_relaxed);
    return b > t ? b - t : 0;
}

/* Slow path of push, out of line. */
int weft_deque_grow_(weft_deque *dq, int64_t top, int64_t bottom);

/* ---------------------------------------------------------------------------------------
 * Hot paths, inline so that spawn and join in the pool cost no call.
 *
 * Ordering argument, per access. Names: the owner O, a thief T.
 * ------------------------------------------------------------------------------------- */

static inline int weft_deque_push_inline(weft_deque *dq, void *x)
{
    /* Relaxed: only the owner writes bottom. */
    int64_t b = atomic_load_explicit(&dq->bottom, memory_order_relaxed);
    /* Acquire: pairs with the release half of a thief's seq_cst CAS on top. A thief reads
     * slot t *before* its CAS (see steal); seeing top = t+1 here makes that read
     * happen-before our possible overwrite of the same slot at index t + capacity, so the
     * thief never reads a half-overwritten element. */
    int64_t t = atomic_load_explicit(&dq->top, memory_order_acquire);
    /* Relaxed: only the owner writes the array pointer. */
    struct weft_deque_array *a = atomic_load_explicit(&dq->array, memory_order_relaxed);
    if (__builtin_expect(b - t > a->mask, 0)) {
        if (weft_deque_grow_(dq, t, b) != 0)
            return -12; /* -ENOMEM, without pulling <errno.h> into every includer */
        /* Reload after growth: the PPoPP'13 listing used the stale array here (the bug
         * CDSChecker found); the element must go into the new buffer. */
        a = atomic_load_explicit(&dq->array, memory_order_relaxed);
    }
    /* Relaxed store of the element: published by the release store of bottom below. */
    atomic_store_explicit(&a->slots[b & a->mask], x, memory_order_relaxed);
    /* Release store (the paper has a release fence followed by a relaxed store; a release
     * store gives the same guarantee here and ThreadSanitizer, which does not model
     * standalone fences, can see it): orders the element store, and everything the owner
     * wrote into the task before pushing it, before the new bottom. Pairs with the thief's
     * acquire load of bottom, so a thief that sees bottom > t also sees slot t's content. */
    atomic_store_explicit(&dq->bottom, b + 1, memory_order_release);
    return 0;
}

static inline void *weft_deque_take_inline(weft_deque *dq)
{
    int64_t b = atomic_load_explicit(&dq->bottom, memory_order_relaxed) - 1;
    struct weft_deque_array *a = atomic_load_explicit(&dq->array, memory_order_relaxed);
    /* Claim slot b first (relaxed: the fence below orders it). */
    atomic_store_explicit(&dq->bottom, b, memory_order_relaxed);
    /* Seq_cst fence: the StoreLoad barrier of Chase–Lev. Our store of bottom must be visible
     * before we read top, and a thief's read of top before its read of bottom (it has the
     * matching fence). Without it, O reads an old top while T reads the old bottom: both see
     * one element left at index b and both take it. With the two fences, in the single
     * total order of seq_cst fences one of them comes first, and the other sees its write:
     * either T sees bottom = b (and backs off, or races O on the CAS below) or O sees T's
     * top. */
    atomic_thread_fence(memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&dq->top, memory_order_relaxed);
    void *x;
    if (t <= b) {
        /* Non-empty. Relaxed: only the owner writes slots, and we are the owner. */
        x = atomic_load_explicit(&a->slots[b & a->mask], memory_order_relaxed);
        if (t == b) {
            /* The last element: thieves may be racing for it. Seq_cst CAS on top decides
             * one winner among O and all T; losing means a thief has it. Strong CAS: a
             * spurious failure would drop an element nobody took. */
            if (!atomic_compare_exchange_strong_explicit(&dq->top, &t, t + 1, memory_order_seq_cst,
                                                         memory_order_relaxed))
                x = NULL;
            /* Either way the deque is now empty with top = b + 1: restore bottom. Relaxed:
             * the CAS (or the failed CAS's view of top) already orders it for thieves,
             * which only compare bottom against top. */
            atomic_store_explicit(&dq->bottom, b + 1, memory_order_relaxed);
        }
    } else {
        /* Empty: undo the claim. */
        x = NULL;
        atomic_store_explicit(&dq->bottom, b + 1, memory_order_relaxed);
    }
    return x;
}

#endif /* WEFT_DEQUE_H */
