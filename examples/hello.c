/* The README's first program (kept in sync: the README quotes this file). */
#include <errno.h>
#include <weft.h>
#include <stdio.h>
#include <stdint.h>

static void *fib(void *arg) /* fork-join: spawn one half, compute the other */
{
    intptr_t n = (intptr_t)arg;
    if (n < 2)
        return (void *)n;
    weft_task t; /* storage on the stack: no allocation */
    weft_spawn(&t, fib, (void *)(n - 1));
    intptr_t b = (intptr_t)fib((void *)(n - 2));
    intptr_t a = (intptr_t)weft_join(&t, NULL);
    return (void *)(a + b);
}

static void *parse(void *path) /* a task that can fail */
{
    if (path == NULL)
        return weft_fail(EINVAL, "no path given");
    return path;
}

int main(void)
{
    weft_pool *pool;
    if (weft_pool_create(NULL, &pool) != 0) /* one worker per allowed CPU */
        return 1;

    weft_future *f;
    weft_submit(pool, fib, (void *)30, &f); /* returns at once */
    void *v;
    if (weft_future_result(f, WEFT_FOREVER, &v) == 0)
        printf("fib(30) = %ld\n", (long)(intptr_t)v);
    weft_future_release(f);

    weft_submit(pool, parse, NULL, &f);
    int rc = weft_future_result(f, 1000000000 /* 1 s */, &v);
    if (rc != 0) /* -EINVAL, re-raised from the task */
        printf("failed: %s (%s)\n", weft_strerror(rc), weft_future_message(f));
    weft_future_release(f);

    weft_pool_destroy(pool); /* runs what is queued, joins workers */
    return 0;
}
