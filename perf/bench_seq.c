/*
 * bench_seq: the sequential baselines (runtime "seq"): the same recursions as the parallel
 * versions with plain calls instead of tasks. fib's ns per call is the function-call cost a
 * spawn is compared with; nqueens' and UTS's times are the work the parallel versions share.
 * The thread count is ignored.
 *
 * Extra, for maintainers: `bench_seq count <maxn> [large]` prints the n-queens task counts
 * up to maxn (perf_nq_tasks in common.h) and the sizes of the UTS trees (with `large`, also
 * T1L and T3L: a minute).
 */
#include "common.h"
#include "uts.h"

static long fib(long n)
{
    if (n < 2)
        return n;
    return fib(n - 1) + fib(n - 2);
}

static double fib_once(const perf_args *a, void *ctx, double *metric)
{
    (void)ctx;
    /* Through a volatile, so the compiler cannot hoist the call out of the timing. */
    volatile long n = a->n;
    int64_t t0 = perf_now_ns();
    long v = fib(n);
    int64_t t1 = perf_now_ns();
    perf_fib_check(a->runtime, a->n, v);
    *metric = (double)(t1 - t0) / (double)perf_fib_spawns(a->n);
    return (double)(t1 - t0) / 1e9;
}

/* Counts solutions; *tasks += legal placements (what the parallel versions spawn). */
static long nqueens(int n, int row, const char *board, long *tasks)
{
    if (row == n)
        return 1;
    long sum = 0;
    for (int col = 0; col < n; col++) {
        if (!perf_nq_ok(board, row, col))
            continue;
        char b[NQ_MAX]; /* copied per placement, as the task versions do */
        memcpy(b, board, (size_t)row);
        b[row] = (char)col;
        ++*tasks;
        sum += nqueens(n, row + 1, b, tasks);
    }
    return sum;
}

static double nqueens_once(const perf_args *a, void *ctx, double *metric)
{
    (void)ctx;
    char board[NQ_MAX] = {0};
    long tasks = 0;
    int64_t t0 = perf_now_ns();
    long v = nqueens((int)a->n, 0, board, &tasks);
    int64_t t1 = perf_now_ns();
    perf_nq_check(a->runtime, a->n, v);
    perf_count_check(a->runtime, "nqueens placements", perf_nq_tasks[a->n], tasks);
    *metric = (double)(t1 - t0) / (double)tasks;
    return (double)(t1 - t0) / 1e9;
}

static long uts(const uts_tree *t, const uts_node *n)
{
    int nc = uts_num_children(t, n);
    long sum = 1;
    for (int i = 0; i < nc; i++) {
        uts_node c;
        uts_child(n, i, &c);
        sum += uts(t, &c);
    }
    return sum;
}

static double uts_once(const perf_args *a, void *ctx, double *metric)
{
    (void)ctx;
    const uts_tree *t = uts_find(a->runtime, a->param);
    uts_node root;
    int64_t t0 = perf_now_ns();
    uts_root(t, &root);
    long v = uts(t, &root);
    int64_t t1 = perf_now_ns();
    uts_check(a->runtime, t, v);
    *metric = (double)(t1 - t0) / (double)v;
    return (double)(t1 - t0) / 1e9;
}

static void count(int maxn, int large)
{
    printf("n-queens task counts (perf_nq_tasks):");
    for (int n = 0; n <= maxn && n <= NQ_MAX; n++) {
        char board[NQ_MAX] = {0};
        long tasks = 0;
        long sol = nqueens(n, 0, board, &tasks);
        printf("%s%ld", n ? ", " : " ", tasks);
        if (sol != perf_nq_solutions[n])
            perf_die("nqueens(%d) = %ld, expected %ld", n, sol, perf_nq_solutions[n]);
    }
    printf("\n");
    for (size_t i = 0; i < sizeof(uts_trees) / sizeof(uts_trees[0]); i++) {
        const uts_tree *t = &uts_trees[i];
        if (t->nodes > 10000000 && !large)
            continue;
        uts_node root;
        uts_root(t, &root);
        printf("uts %-4s (%s): %ld nodes (published/expected: %ld)\n", t->name, t->args,
               uts(t, &root), t->nodes);
    }
}

int main(int argc, char **argv)
{
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "count") == 0) {
        count(atoi(argv[2]), argc == 4 && strcmp(argv[3], "large") == 0);
        return 0;
    }
    perf_args a = perf_parse(argc, argv, "seq", "fib nqueens uts");
    if (strcmp(a.workload, "fib") == 0) {
        perf_loop(&a, fib_once, NULL, "ns/call");
    } else if (strcmp(a.workload, "nqueens") == 0) {
        perf_nq_param(a.runtime, a.n);
        perf_loop(&a, nqueens_once, NULL, "ns/task");
    } else if (strcmp(a.workload, "uts") == 0) {
        perf_loop(&a, uts_once, NULL, "ns/node");
    } else {
        perf_unsupported(&a);
    }
    return 0;
}
