/*
 * Chase–Lev deque: the out-of-line parts (init, growth, reclamation, steal). The ordering
 * argument for every access is written next to it; see weft_deque.h for the design and
 * the paper it follows.
 */
#include "weft_deque.h"

#include <errno.h>
#include <stdlib.h>

static struct weft_deque_array *array_new(int64_t capacity)
{
    struct weft_deque_array *a = malloc(sizeof(*a) + (size_t)capacity * sizeof(_Atomic(void *)));
    if (a == NULL)
        return NULL;
    a->mask = capacity - 1;
    a->next = NULL;
    return a;
}

/* ck_epoch callback: the grace period has passed, no thief can still read this buffer. */
static void array_free_cb(ck_epoch_entry_t *e)
{
    free((char *)e - offsetof(struct weft_deque_array, epoch_entry));
}

int weft_deque_init(weft_deque *dq, size_t capacity, ck_epoch_record_t *owner_rec)
{
    int64_t cap = 2;
    while ((size_t)cap < capacity && cap < ((int64_t)1 << 40))
        cap <<= 1;
    struct weft_deque_array *a = array_new(cap);
    if (a == NULL)
        return -ENOMEM;
    /* Plain initialisation: the deque is published to thieves by whatever publishes `dq`
     * itself (for the pool, thread creation). */
    atomic_init(&dq->top, 0);
    atomic_init(&dq->bottom, 0);
    atomic_init(&dq->array, a);
    dq->owner_rec = owner_rec;
    dq->retired = NULL;
    return 0;
}

void weft_deque_destroy(weft_deque *dq)
{
    struct weft_deque_array *a = atomic_load_explicit(&dq->array, memory_order_relaxed);
    free(a);
    atomic_store_explicit(&dq->array, NULL, memory_order_relaxed);
    while (dq->retired != NULL) {
        struct weft_deque_array *r = dq->retired;
        dq->retired = r->next;
        free(r);
    }
    /* Buffers deferred through ck_epoch_call are freed by the owner record's next
     * ck_epoch_barrier/poll; the pool runs a barrier on every worker record at teardown. */
}

int weft_deque_grow_(weft_deque *dq, int64_t t, int64_t b)
{
    struct weft_deque_array *old = atomic_load_explicit(&dq->array, memory_order_relaxed);
    int64_t cap = (old->mask + 1) * 2;
    struct weft_deque_array *a = array_new(cap);
    if (a == NULL)
        return -ENOMEM;
    /* Copy the live range [t, b). Relaxed loads: only the owner writes slots. Relaxed
     * stores: the new buffer is published by the release store below. A thief may steal
     * index t meanwhile from the old buffer; the copy then holds a stale element at t, but
     * top has moved past it and no one will read it again. */
    for (int64_t i = t; i < b; i++)
        atomic_store_explicit(
            &a->slots[i & a->mask],
            atomic_load_explicit(&old->slots[i & old->mask], memory_order_relaxed),
            memory_order_relaxed);
    /* Release: pairs with the thieves' acquire load of `array`. A thief that reads the new
     * pointer sees the copied elements. A thief that still reads the old pointer finds the
     * same elements there: the old buffer stays intact until reclaimed. */
    atomic_store_explicit(&dq->array, a, memory_order_release);
    if (dq->owner_rec != NULL) {
        /* Seq_cst fence: the new pointer must be visible before ck_epoch_call reads the
         * global epoch (ck 0.7.1 reads it with no fence). Otherwise another thread's poll
         * could advance the epoch while our store is still buffered, a thief could enter a
         * section at the new epoch, still load the old pointer, and have it freed under it.
         * Growth is rare: the fence costs nothing that matters. */
        atomic_thread_fence(memory_order_seq_cst);
        /* Deferred free: runs once every epoch section that could have loaded `old` has
         * ended. Poll reclaims whatever earlier growths retired, without blocking. */
        ck_epoch_call(dq->owner_rec, &old->epoch_entry, array_free_cb);
        ck_epoch_poll(dq->owner_rec);
    } else {
        old->next = dq->retired;
        dq->retired = old;
    }
    return 0;
}

int weft_deque_push(weft_deque *dq, void *x)
{
    return weft_deque_push_inline(dq, x);
}

void *weft_deque_take(weft_deque *dq)
{
    return weft_deque_take_inline(dq);
}

enum weft_steal_result weft_deque_steal(weft_deque *dq, ck_epoch_record_t *rec, void **out)
{
    /* Acquire: pairs with the release half of other thieves' (and the owner's last-element)
     * seq_cst CAS on top, so that what they published before taking is visible. */
    int64_t t = atomic_load_explicit(&dq->top, memory_order_acquire);
    /* Seq_cst fence: the thief's half of the StoreLoad pairing with take()'s fence. Top must
     * be read before bottom; otherwise a thief could pair an old top with a new, already
     * decremented bottom and the owner's claim of the last element would go unseen. */
    atomic_thread_fence(memory_order_seq_cst);
    /* Acquire: pairs with push()'s release fence before its bottom store, making the element
     * at index t (and the task it points to) visible. */
    int64_t b = atomic_load_explicit(&dq->bottom, memory_order_acquire);
    if (t >= b)
        return WEFT_STEAL_EMPTY;

    /* Non-empty: read the buffer inside an epoch section, so that a buffer the owner
     * retires meanwhile is not freed under us. Emptiness is tested first so that idle
     * thieves polling empty deques pay no epoch fence. */
    if (rec != NULL)
        ck_epoch_begin(rec, NULL);
    /* Acquire: pairs with grow()'s release store of the new buffer, so its copied slots are
     * visible. (The paper uses consume; compilers implement consume as acquire anyway.) */
    struct weft_deque_array *a = atomic_load_explicit(&dq->array, memory_order_acquire);
    /* Read the element BEFORE the CAS. After a successful CAS the owner may overwrite the
     * slot (push wraps around) or free the buffer (growth + reclaim), so reading afterwards
     * could return garbage (the crossbeam-deque bug, PR #149). If the CAS fails, the value
     * read is simply discarded. Relaxed: its visibility comes from the acquire on bottom. */
    void *x = atomic_load_explicit(&a->slots[t & a->mask], memory_order_relaxed);
    /* Seq_cst CAS: the single point that decides which of the thieves (and the owner, for
     * the last element) gets index t. Strong: a spurious failure would only cost a retry,
     * but it would be counted as a lost race. */
    bool won = atomic_compare_exchange_strong_explicit(&dq->top, &t, t + 1, memory_order_seq_cst,
                                                       memory_order_relaxed);
    if (rec != NULL)
        ck_epoch_end(rec, NULL);
    if (!won)
        return WEFT_STEAL_ABORT;
    *out = x;
    return WEFT_STEAL_OK;
}
