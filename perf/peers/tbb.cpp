/*
 * bench_tbb: oneTBB (runtime "tbb").
 *
 *   fib <n>         tbb::task_group: run(fib(n-1)) at every call with n >= 2 (no cutoff),
 *                   fib(n-2) inline, wait.
 *   nqueens <n>     a task_group task per legal placement at every row, board copied per
 *                   task.
 *   uts <tree>      a task_group task per child node.
 *   fanout <n>      this (outside) thread task_arena::enqueue()s n tasks into an arena of
 *                   <threads> worker slots, none reserved for it, then waits (std::atomic
 *                   wait, a futex) until the last task has counted itself.
 *   latency <n>     enqueue an empty task into that arena and wait for it, n times.
 *   idle <seconds>  CPU time over <seconds> with nothing to do, after fork-join work.
 *
 * Thread counts: the fork-join workloads run in the default arena from the main thread,
 * which takes part, with global_control max_allowed_parallelism = <threads> (so <threads>
 * threads work, as for weft's <threads> workers). fanout/latency need <threads> workers
 * besides the outside thread: max_allowed_parallelism = <threads> + 1.
 * Worker stacks: the process's RLIMIT_STACK (what glibc gives weft's and the other peers'
 * threads) instead of TBB's own default.
 */
#include "common.h"
#include "uts.h"

#include <atomic>
#include <memory>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

namespace
{

/* ---------------------------------------------------------------------------------------
 * fib
 * ------------------------------------------------------------------------------------- */
long fib(long n)
{
    if (n < 2)
        return n;
    long a, b;
    tbb::task_group g;
    g.run([&a, n] { a = fib(n - 1); });
    b = fib(n - 2);
    g.wait();
    return a + b;
}

double fib_once(const perf_args *a, void *, double *metric)
{
    int64_t t0 = perf_now_ns();
    long v = fib(a->n);
    int64_t t1 = perf_now_ns();
    perf_fib_check(a->runtime, a->n, v);
    *metric = double(t1 - t0) / double(perf_fib_spawns(a->n));
    return double(t1 - t0) / 1e9;
}

/* ---------------------------------------------------------------------------------------
 * nqueens
 * ------------------------------------------------------------------------------------- */
struct nq_board {
    char b[NQ_MAX];
};

long nqueens(int n, int row, const nq_board &board)
{
    if (row == n)
        return 1;
    long count[NQ_MAX];
    int k = 0;
    tbb::task_group g;
    for (int col = 0; col < n; col++) {
        if (!perf_nq_ok(board.b, row, col))
            continue;
        nq_board c = board; /* copied per task, into the task */
        c.b[row] = char(col);
        long *slot = &count[k++];
        g.run([n, row, c, slot] { *slot = nqueens(n, row + 1, c); });
    }
    g.wait();
    long sum = 0;
    for (int i = 0; i < k; i++)
        sum += count[i];
    return sum;
}

double nqueens_once(const perf_args *a, void *, double *metric)
{
    nq_board board{};
    int64_t t0 = perf_now_ns();
    long v = nqueens(int(a->n), 0, board);
    int64_t t1 = perf_now_ns();
    perf_nq_check(a->runtime, a->n, v);
    *metric = double(t1 - t0) / double(perf_nq_tasks[a->n]);
    return double(t1 - t0) / 1e9;
}

/* ---------------------------------------------------------------------------------------
 * UTS
 * ------------------------------------------------------------------------------------- */
const uts_tree *tree;

long uts(const uts_node *node)
{
    int nc = uts_num_children(tree, node);
    if (nc == 0)
        return 1;
    uts_node kbuf[UTS_STACK_KIDS];
    long cbuf[UTS_STACK_KIDS];
    std::unique_ptr<uts_node[]> kheap;
    std::unique_ptr<long[]> cheap;
    uts_node *kid = kbuf;
    long *count = cbuf;
    if (nc > UTS_STACK_KIDS) {
        kheap.reset(new uts_node[nc]);
        cheap.reset(new long[nc]);
        kid = kheap.get();
        count = cheap.get();
    }
    tbb::task_group g;
    for (int i = 0; i < nc; i++) {
        uts_child(node, i, &kid[i]);
        g.run([kid, count, i] { count[i] = uts(&kid[i]); });
    }
    g.wait();
    long sum = 1;
    for (int i = 0; i < nc; i++)
        sum += count[i];
    return sum;
}

double uts_once(const perf_args *a, void *, double *metric)
{
    tree = uts_find(a->runtime, a->param);
    uts_node root;
    int64_t t0 = perf_now_ns();
    uts_root(tree, &root);
    long v = uts(&root);
    int64_t t1 = perf_now_ns();
    uts_check(a->runtime, tree, v);
    *metric = double(t1 - t0) / double(v);
    return double(t1 - t0) / 1e9;
}

/* ---------------------------------------------------------------------------------------
 * fan-out, latency (an outside thread and an arena of <threads> worker slots)
 * ------------------------------------------------------------------------------------- */
tbb::task_arena *arena;

/* Waits until `flag` is nonzero (std::atomic wait: spins briefly, then a futex). */
void wait_flag(std::atomic<int> &flag)
{
    int v;
    while ((v = flag.load(std::memory_order_acquire)) == 0)
        flag.wait(v, std::memory_order_acquire);
}

struct fan_state {
    std::atomic<long> sum{0};
    std::atomic<long> left{0};
    std::atomic<int> done{0};
};

double fanout_once(const perf_args *a, void *ctx, double *metric)
{
    fan_state *st = static_cast<fan_state *>(ctx);
    long n = a->n;
    st->sum.store(0);
    st->left.store(n);
    st->done.store(0);
    int64_t t0 = perf_now_ns();
    for (long i = 0; i < n; i++) {
        arena->enqueue([st, i] {
            st->sum.fetch_add(i + 1, std::memory_order_relaxed);
            if (st->left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                st->done.store(1, std::memory_order_release);
                st->done.notify_one();
            }
        });
    }
    wait_flag(st->done);
    int64_t t1 = perf_now_ns();
    perf_fanout_check(a->runtime, n, st->sum.load());
    *metric = double(t1 - t0) / double(n);
    return double(t1 - t0) / 1e9;
}

/* The number of latency tasks completed: task i stores i + 1, the waiter waits for it
 * (global: a task may still be in notify_one when the waiter has moved on). */
std::atomic<long> lat_done{0};

void roundtrip(void *, long i)
{
    lat_done.store(0, std::memory_order_relaxed);
    arena->enqueue([i] {
        lat_done.store(i + 1, std::memory_order_release);
        lat_done.notify_one();
    });
    long v;
    while ((v = lat_done.load(std::memory_order_acquire)) != i + 1)
        lat_done.wait(v, std::memory_order_acquire);
}

// map: tbb::parallel_for over the items, TBB's automatic partitioner choosing the chunks.
double map_once(const perf_args *a, void *ctx, double *metric)
{
    void **out = static_cast<void **>(ctx);
    long n = a->n;
    int64_t t0 = perf_now_ns();
    tbb::parallel_for(tbb::blocked_range<long>(0, n), [out](const tbb::blocked_range<long> &r) {
        for (long i = r.begin(); i != r.end(); ++i)
            out[i] = reinterpret_cast<void *>(intptr_t(perf_map_item(i)));
    });
    int64_t t1 = perf_now_ns();
    perf_map_check(a->runtime, n, out);
    *metric = double(t1 - t0) / double(n);
    return double(t1 - t0) / 1e9;
}

size_t stack_size()
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_STACK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 8u << 20;
    return size_t(rl.rlim_cur);
}

} // namespace

int main(int argc, char **argv)
{
    perf_args a = perf_parse(argc, argv, "tbb", "fib nqueens uts fanout latency map parfor idle");
    bool outside = strcmp(a.workload, "fanout") == 0 || strcmp(a.workload, "latency") == 0;
    tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism,
                                    size_t(a.threads) + (outside ? 1 : 0));
    tbb::global_control stack(tbb::global_control::thread_stack_size, stack_size());

    if (strcmp(a.workload, "fib") == 0) {
        perf_loop(&a, fib_once, nullptr, "ns/spawn");
    } else if (strcmp(a.workload, "nqueens") == 0) {
        perf_nq_param(a.runtime, a.n);
        perf_loop(&a, nqueens_once, nullptr, "ns/task");
    } else if (strcmp(a.workload, "uts") == 0) {
        perf_loop(&a, uts_once, nullptr, "ns/node");
    } else if (strcmp(a.workload, "map") == 0 || strcmp(a.workload, "parfor") == 0) {
        std::unique_ptr<void *[]> out(new void *[size_t(a.n)]);
        perf_loop(&a, map_once, out.get(), "ns/item");
    } else if (outside) {
        tbb::task_arena ar(a.threads, 0);
        arena = &ar;
        if (strcmp(a.workload, "fanout") == 0) {
            fan_state st;
            perf_loop(&a, fanout_once, &st, "ns/task");
        } else {
            perf_latency_loop(&a, roundtrip, nullptr);
        }
        arena = nullptr;
    } else if (strcmp(a.workload, "idle") == 0) {
        double window = perf_idle_seconds(&a);
        perf_args w = a;
        w.n = 20;
        for (int run = 1; run <= a.runs; run++) {
            double m;
            fib_once(&w, nullptr, &m);
            perf_idle_measure(&a, run, window);
        }
    } else {
        perf_unsupported(&a);
    }
    return 0;
}
