/* Error names, the version, the clock, and message formatting. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

WEFT_API unsigned weft_version(void)
{
    return WEFT_VERSION_HEX;
}

WEFT_API const char *weft_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case WEFT_ETIMEDOUT:
        return "timed out waiting for the future";
    case WEFT_ECANCELED:
        return "the future was cancelled";
    case WEFT_ESTATE:
        return "the future is not in a state that allows this";
    case WEFT_ESHUTDOWN:
        return "the pool is shut down";
    case WEFT_EBROKEN:
        return "the pool is broken: a worker initializer failed";
    case WEFT_EFAILED:
        return "the task failed";
    case WEFT_ENOTWORKER:
        return "must be called from a task running on a pool's worker";
    case WEFT_EEND:
        return "the iterator has nothing more to yield";
    default:
        break;
    }
    /* strerrordesc_np (glibc >= 2.32): static strings, thread-safe, NULL if unknown. */
    const char *d = code < 0 && code > -4096 ? strerrordesc_np(-code) : NULL;
    return d != NULL ? d : "unknown error";
}

WEFT_API int64_t weft_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

char *weft_vformat_(const char *fmt, va_list ap)
{
    if (fmt == NULL)
        return NULL;
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return s;
}
