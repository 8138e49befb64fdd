/* A program a user would write: it sees only the installed <weft.h> and the library. */
#include <stdint.h>
#include <stdio.h>
#include <weft.h>

static void *fib(void *arg)
{
    intptr_t n = (intptr_t)arg;
    if (n < 2)
        return (void *)n;
    weft_task t;
    if (weft_spawn(&t, fib, (void *)(n - 1)) != 0)
        return weft_fail(WEFT_ENOMEM, "spawn failed");
    intptr_t b = (intptr_t)fib((void *)(n - 2));
    intptr_t a = (intptr_t)weft_join(&t, NULL);
    return (void *)(a + b);
}

int main(void)
{
    weft_pool *pool;
    int rc = weft_pool_create(NULL, &pool);
    if (rc != 0) {
        fprintf(stderr, "weft_pool_create: %s\n", weft_strerror(rc));
        return 1;
    }
    void *v = NULL;
    rc = weft_run(pool, fib, (void *)(intptr_t)20, &v);
    weft_pool_destroy(pool);
    if (rc != 0 || (intptr_t)v != 6765) {
        fprintf(stderr, "fib(20): rc=%d value=%ld\n", rc, (long)(intptr_t)v);
        return 1;
    }
    printf("consumer OK: weft %u.%u.%u, fib(20) = %ld\n", weft_version() >> 16,
           (weft_version() >> 8) & 0xff, weft_version() & 0xff, (long)(intptr_t)v);
    return 0;
}
