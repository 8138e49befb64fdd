/* Thin wrappers over the Linux futex system call (private futexes: the thread pool never
 * shares these words across processes). */
#ifndef WEFT_FUTEX_H
#define WEFT_FUTEX_H

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleeps while *word == expected, at most until `deadline` (CLOCK_MONOTONIC ns; -1: no
 * limit). Returns 0 when woken (or spuriously), -EAGAIN if *word != expected on entry,
 * -ETIMEDOUT, -EINTR. The kernel compares and sleeps atomically against a wake, which is
 * what makes the check-then-sleep of every caller free of lost wake-ups. */
static inline int weft_futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline)
{
    struct timespec ts, *tsp = NULL;
    int op = FUTEX_WAIT_PRIVATE;
    if (deadline >= 0) {
        /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline: no drift when
         * the wait is retried after a spurious wake. */
        ts.tv_sec = deadline / 1000000000;
        ts.tv_nsec = deadline % 1000000000;
        tsp = &ts;
        op = FUTEX_WAIT_BITSET_PRIVATE;
    }
    long rc = syscall(SYS_futex, (uint32_t *)word, op, expected, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
    return rc == 0 ? 0 : -errno;
}

/* Wakes up to n threads sleeping on word; returns how many were woken. */
static inline int weft_futex_wake(_Atomic uint32_t *word, int n)
{
    long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
    return rc > 0 ? (int)rc : 0;
}

/* A polite spin-wait hint. */
static inline void weft_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

#endif
