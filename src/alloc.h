/* Memory for futures and callback nodes. jemalloc's mallocx/sdallocx give each thread a
 * cache (no lock on the submit path) and sized frees (no size lookup on the completion
 * path). Under the sanitizers the libc allocator is used instead, so that ASan and TSan see
 * (and check) every future's lifetime. */
#ifndef WEFT_ALLOC_H
#define WEFT_ALLOC_H

#include <stddef.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(WEFT_LIBC_MALLOC)
static inline void *weft_alloc(size_t n)
{
    return malloc(n);
}
static inline void weft_free(void *p, size_t n)
{
    (void)n;
    free(p);
}
#else
#include <jemalloc/jemalloc.h>
static inline void *weft_alloc(size_t n)
{
    return mallocx(n, 0);
}
static inline void weft_free(void *p, size_t n)
{
    sdallocx(p, n, 0);
}
#endif

#endif
