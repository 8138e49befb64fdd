/*
 * The WEFT_* environment variables, read by weft_pool_create: accepted values take effect
 * where observable (pool size, CPU pinning, the WEFT_DISPLAY_ENV settings table, the
 * WEFT_STATS table at destruction), explicit options override them, and a malformed value
 * makes creation fail with WEFT_EINVAL after naming the variable and its accepted range on
 * stderr (captured here through a temporary file).
 *
 * Every test starts and ends with no WEFT_* variable set.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "weft.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const weft_vars[] = {
    "WEFT_NUM_THREADS", "WEFT_PROC_BIND", "WEFT_SPIN",
    "WEFT_DEQUE_SIZE",  "WEFT_STATS",     "WEFT_DISPLAY_ENV",
};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof(weft_vars) / sizeof(weft_vars[0]); i++)
        unsetenv(weft_vars[i]);
}

static int setup_env(void **state)
{
    (void)state;
    clear_env();
    return 0;
}

static int teardown_env(void **state)
{
    (void)state;
    clear_env();
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * stderr capture
 * ------------------------------------------------------------------------------------- */
#define CAP_SIZE 8192
struct capture {
    FILE *tmp;
    int saved;
    char text[CAP_SIZE];
};

static void capture_begin(struct capture *c)
{
    fflush(stderr);
    c->tmp = tmpfile();
    assert_non_null(c->tmp);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->tmp), STDERR_FILENO) >= 0);
}

static const char *capture_end(struct capture *c)
{
    fflush(stderr);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    rewind(c->tmp);
    size_t n = fread(c->text, 1, CAP_SIZE - 1, c->tmp);
    c->text[n] = '\0';
    fclose(c->tmp);
    return c->text;
}

/* Creates a pool with var=value set (var NULL: nothing set), capturing stderr. */
static int create_with(const char *var, const char *value, const weft_pool_options *o,
                       weft_pool **p, struct capture *c)
{
    if (var != NULL)
        assert_int_equal(setenv(var, value, 1), 0);
    *p = (weft_pool *)0x1;
    capture_begin(c);
    int rc = weft_pool_create(o, p);
    capture_end(c);
    if (var != NULL)
        unsetenv(var);
    return rc;
}

static void *noop_task(void *arg)
{
    return arg;
}

static weft_pool_options opts_with_threads(unsigned n)
{
    weft_pool_options o;
    weft_pool_options_init(&o);
    o.num_threads = n;
    return o;
}

/* A malformed value: creation fails with WEFT_EINVAL, nothing is created, and stderr names
 * the variable, the value and (a part of) the accepted range. */
static void expect_malformed(const char *var, const char *value, const char *range,
                             const weft_pool_options *o)
{
    struct capture c;
    weft_pool *p;
    int rc = create_with(var, value, o, &p, &c);
    if (rc != WEFT_EINVAL)
        fail_msg("%s=\"%s\": weft_pool_create returned %d, expected WEFT_EINVAL", var, value, rc);
    assert_null(p);
    if (strstr(c.text, var) == NULL || strstr(c.text, range) == NULL ||
        (value[0] != '\0' && strstr(c.text, value) == NULL))
        fail_msg("%s=\"%s\": stderr does not name the variable, its value and \"%s\": \"%s\"", var,
                 value, range, c.text);
}

/* ---------------------------------------------------------------------------------------
 * WEFT_NUM_THREADS
 * ------------------------------------------------------------------------------------- */
static void env_num_threads_sets_pool_size(void **state)
{
    (void)state;
    const char *values[] = {"3", "1", "5", "16"};
    const unsigned sizes[] = {3, 1, 5, 16};
    for (size_t i = 0; i < 4; i++) {
        struct capture c;
        weft_pool *p;
        assert_int_equal(create_with("WEFT_NUM_THREADS", values[i], NULL, &p, &c), 0);
        assert_int_equal(weft_pool_size(p), sizes[i]);
        assert_string_equal(c.text, ""); /* a valid value prints nothing */
        assert_int_equal(weft_pool_destroy(p), 0);
    }
    /* Through options_init too (num_threads 0 = from the environment). */
    weft_pool_options o = opts_with_threads(0);
    struct capture c;
    weft_pool *p;
    assert_int_equal(create_with("WEFT_NUM_THREADS", "3", &o, &p, &c), 0);
    assert_int_equal(weft_pool_size(p), 3);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void env_num_threads_zero_means_automatic(void **state)
{
    (void)state;
    struct capture c;
    weft_pool *p;
    assert_int_equal(create_with(NULL, NULL, NULL, &p, &c), 0);
    unsigned automatic = weft_pool_size(p);
    assert_int_equal(weft_pool_destroy(p), 0);
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    assert_true(automatic >= 1 && automatic <= (unsigned)CPU_COUNT(&set));
    assert_int_equal(create_with("WEFT_NUM_THREADS", "0", NULL, &p, &c), 0);
    assert_int_equal(weft_pool_size(p), automatic);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void env_num_threads_explicit_option_overrides(void **state)
{
    (void)state;
    weft_pool_options o = opts_with_threads(2);
    struct capture c;
    weft_pool *p;
    assert_int_equal(create_with("WEFT_NUM_THREADS", "3", &o, &p, &c), 0);
    assert_int_equal(weft_pool_size(p), 2);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void env_num_threads_malformed_fails_einval(void **state)
{
    (void)state;
    const char *bad[] = {"abc", "-1", "1025", "2000", "3x", "", "3.0", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_malformed("WEFT_NUM_THREADS", bad[i], "0..1024", NULL);
    /* Not ignored even when the option would override it. */
    weft_pool_options o = opts_with_threads(2);
    expect_malformed("WEFT_NUM_THREADS", "lots", "0..1024", &o);
}

static void env_read_once_at_creation(void **state)
{
    (void)state;
    struct capture c;
    weft_pool *p, *q;
    assert_int_equal(create_with("WEFT_NUM_THREADS", "3", NULL, &p, &c), 0);
    /* Changing or breaking the environment later does not affect the live pool. */
    assert_int_equal(setenv("WEFT_NUM_THREADS", "bogus", 1), 0);
    assert_int_equal(weft_pool_size(p), 3);
    assert_int_equal(weft_run(p, noop_task, NULL, NULL), 0);
    unsetenv("WEFT_NUM_THREADS");
    assert_int_equal(create_with("WEFT_NUM_THREADS", "2", NULL, &q, &c), 0);
    assert_int_equal(weft_pool_size(q), 2);
    assert_int_equal(weft_pool_size(p), 3);
    assert_int_equal(weft_pool_destroy(q), 0);
    assert_int_equal(weft_pool_destroy(p), 0);
}

/* ---------------------------------------------------------------------------------------
 * WEFT_PROC_BIND
 * ------------------------------------------------------------------------------------- */
#define BIND_WORKERS 2
struct affinity {
    pthread_barrier_t all_in;
    int cpus[BIND_WORKERS];   /* CPU_COUNT of each worker's mask */
    int first[BIND_WORKERS];  /* its lowest CPU */
    int worker[BIND_WORKERS]; /* which worker ran probe i */
};

struct probe {
    struct affinity *a;
    int i;
};

static void *affinity_probe(void *arg)
{
    struct probe *pr = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    pr->a->cpus[pr->i] = -1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        pr->a->cpus[pr->i] = CPU_COUNT(&set);
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &set)) {
                pr->a->first[pr->i] = c;
                break;
            }
    }
    pr->a->worker[pr->i] = weft_current_worker();
    /* Hold this worker until the other probe runs: one probe per worker. */
    pthread_barrier_wait(&pr->a->all_in);
    return NULL;
}

/* Runs one probe on each worker of a BIND_WORKERS-worker pool. */
static void probe_workers(weft_pool *p, struct affinity *a)
{
    assert_int_equal(weft_pool_size(p), BIND_WORKERS);
    pthread_barrier_init(&a->all_in, NULL, BIND_WORKERS);
    struct probe pr[BIND_WORKERS];
    weft_future *f[BIND_WORKERS];
    for (int i = 0; i < BIND_WORKERS; i++) {
        pr[i] = (struct probe){a, i};
        assert_int_equal(weft_submit(p, affinity_probe, &pr[i], &f[i]), 0);
    }
    for (int i = 0; i < BIND_WORKERS; i++) {
        assert_int_equal(weft_future_result(f[i], WEFT_FOREVER, NULL), 0);
        weft_future_release(f[i]);
    }
    pthread_barrier_destroy(&a->all_in);
    assert_int_not_equal(a->worker[0], a->worker[1]);
}

static int process_cpus(void)
{
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    return CPU_COUNT(&set);
}

static void check_bind(const char *value, const weft_pool_options *o, bool pinned)
{
    struct capture c;
    weft_pool *p;
    assert_int_equal(create_with("WEFT_PROC_BIND", value, o, &p, &c), 0);
    struct affinity a;
    memset(&a, 0, sizeof(a));
    probe_workers(p, &a);
    assert_int_equal(weft_pool_destroy(p), 0);
    for (int i = 0; i < BIND_WORKERS; i++) {
        if (pinned && a.cpus[i] != 1)
            fail_msg("WEFT_PROC_BIND=%s: worker %d may run on %d CPUs, expected 1", value,
                     a.worker[i], a.cpus[i]);
        if (!pinned && a.cpus[i] != process_cpus())
            fail_msg("WEFT_PROC_BIND=%s: worker %d may run on %d CPUs, expected all %d", value,
                     a.worker[i], a.cpus[i], process_cpus());
    }
    /* Pinned workers get distinct CPUs while there are enough. */
    if (pinned && process_cpus() >= BIND_WORKERS)
        assert_int_not_equal(a.first[0], a.first[1]);
}

static void env_proc_bind_pins_workers(void **state)
{
    (void)state;
    weft_pool_options o = opts_with_threads(BIND_WORKERS);
    const char *pinned[] = {"close", "true", "compact", "spread", "scatter"};
    for (size_t i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++)
        check_bind(pinned[i], &o, true);
    const char *unpinned[] = {"false", "none"};
    for (size_t i = 0; i < sizeof(unpinned) / sizeof(unpinned[0]); i++)
        check_bind(unpinned[i], &o, false);
}

static void env_proc_bind_explicit_option_overrides(void **state)
{
    (void)state;
    weft_pool_options o = opts_with_threads(BIND_WORKERS);
    o.bind = WEFT_BIND_NONE;
    check_bind("close", &o, false);
    o.bind = WEFT_BIND_COMPACT;
    check_bind("false", &o, true);
}

static void env_proc_bind_malformed_fails_einval(void **state)
{
    (void)state;
    const char *bad[] = {"sideways", "", "closer", "1", "master_of_cpus"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_malformed("WEFT_PROC_BIND", bad[i], "close", NULL);
        expect_malformed("WEFT_PROC_BIND", bad[i], "spread", NULL);
    }
}

/* ---------------------------------------------------------------------------------------
 * WEFT_DISPLAY_ENV, and through it WEFT_SPIN and WEFT_DEQUE_SIZE
 * ------------------------------------------------------------------------------------- */
/* Creates a pool with WEFT_DISPLAY_ENV=1 plus var=value; returns the settings table. */
static const char *display_with(const char *var, const char *value, const weft_pool_options *o,
                                struct capture *c)
{
    assert_int_equal(setenv("WEFT_DISPLAY_ENV", "1", 1), 0);
    weft_pool *p;
    int rc = create_with(var, value, o, &p, c);
    unsetenv("WEFT_DISPLAY_ENV");
    if (rc != 0)
        fail_msg("%s=%s: weft_pool_create returned %d; stderr: %s", var ? var : "-",
                 value ? value : "-", rc, c->text);
    assert_int_equal(weft_pool_destroy(p), 0);
    return c->text;
}

/* The table line for `name` contains `expect` (e.g. "WEFT_SPIN ... = 2000000ns"). */
static void expect_setting(const char *table, const char *name, const char *expect)
{
    const char *line = strstr(table, name);
    if (line == NULL)
        fail_msg("no %s line in the settings table: \"%s\"", name, table);
    const char *eol = strchr(line, '\n');
    size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
    char buf[256];
    snprintf(buf, sizeof(buf), "%.*s", (int)len, line);
    const char *eq = strchr(buf, '=');
    if (eq == NULL || strstr(eq, expect) == NULL)
        fail_msg("expected \"%s\" in \"%s\"", expect, buf);
}

static void env_display_env_prints_settings(void **state)
{
    (void)state;
    struct capture c;
    weft_pool_options o = opts_with_threads(3);
    const char *t = display_with(NULL, NULL, &o, &c);
    assert_non_null(strstr(t, "WEFT_NUM_THREADS"));
    expect_setting(t, "WEFT_NUM_THREADS", "3");
    /* The defaults when nothing else is set. */
    expect_setting(t, "WEFT_PROC_BIND", "false");
    expect_setting(t, "WEFT_SPIN", "50000ns");
    expect_setting(t, "WEFT_DEQUE_SIZE", "1024");
    expect_setting(t, "WEFT_STATS", "0");
    /* Accepted spellings. */
    const char *on[] = {"1", "true", "yes", "on", "TRUE"};
    for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
        assert_int_equal(setenv("WEFT_DISPLAY_ENV", on[i], 1), 0);
        weft_pool *p;
        assert_int_equal(create_with(NULL, NULL, &o, &p, &c), 0);
        assert_non_null(strstr(c.text, "WEFT_NUM_THREADS"));
        assert_int_equal(weft_pool_destroy(p), 0);
    }
    const char *off[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
        assert_int_equal(setenv("WEFT_DISPLAY_ENV", off[i], 1), 0);
        weft_pool *p;
        assert_int_equal(create_with(NULL, NULL, &o, &p, &c), 0);
        assert_string_equal(c.text, "");
        assert_int_equal(weft_pool_destroy(p), 0);
    }
    unsetenv("WEFT_DISPLAY_ENV");
    /* It shows what the environment set. */
    t = display_with("WEFT_NUM_THREADS", "2", NULL, &c);
    expect_setting(t, "WEFT_NUM_THREADS", "2");
    t = display_with("WEFT_PROC_BIND", "spread", &o, &c);
    expect_setting(t, "WEFT_PROC_BIND", "spread");
    t = display_with("WEFT_STATS", "0", &o, &c);
    expect_setting(t, "WEFT_STATS", "0");
}

static void env_display_env_malformed_fails_einval(void **state)
{
    (void)state;
    const char *bad[] = {"2", "maybe", "", "yess"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_malformed("WEFT_DISPLAY_ENV", bad[i], "0 or 1", NULL);
}

static void env_spin_accepts_durations(void **state)
{
    (void)state;
    weft_pool_options o = opts_with_threads(1);
    const struct {
        const char *value, *shown;
    } ok[] = {
        {"2ms", "2000000ns"}, {"50us", "50000ns"},    {"100", "100000ns"},
        {"0", "= 0ns"},       {"1s", "1000000000ns"}, {"250ns", "250ns"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct capture c;
        const char *t = display_with("WEFT_SPIN", ok[i].value, &o, &c);
        expect_setting(t, "WEFT_SPIN", ok[i].shown);
    }
    /* An explicit spin_ns overrides it. */
    o.spin_ns = 7;
    struct capture c;
    expect_setting(display_with("WEFT_SPIN", "2ms", &o, &c), "WEFT_SPIN", "= 7ns");
    /* WEFT_SPIN=0: idle workers park at once, and still wake up for work. */
    assert_int_equal(setenv("WEFT_SPIN", "0", 1), 0);
    weft_pool_options o2 = opts_with_threads(2);
    weft_pool *p;
    assert_int_equal(weft_pool_create(&o2, &p), 0);
    unsetenv("WEFT_SPIN");
    for (int i = 0; i < 50; i++)
        assert_int_equal(weft_run(p, noop_task, NULL, NULL), 0);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void env_spin_malformed_fails_einval(void **state)
{
    (void)state;
    const char *bad[] = {"abc", "2s", "1001ms", "-1", "5min", "1.5ms", "", "50 us", "ms"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_malformed("WEFT_SPIN", bad[i], "0..1s", NULL);
}

static void *fan_out_task(void *arg)
{
    /* More spawns than the deque's initial capacity, all joined. */
    (void)arg;
    enum { N = 3000 };
    weft_task *t = malloc(sizeof(*t) * N);
    if (t == NULL)
        return (void *)(intptr_t)-1;
    intptr_t sum = 0;
    int n = 0;
    for (; n < N; n++)
        if (weft_spawn(&t[n], noop_task, NULL) != 0)
            break;
    for (int i = n - 1; i >= 0; i--) {
        int err = -1;
        weft_join(&t[i], &err);
        sum += err == 0;
    }
    free(t);
    return (void *)sum;
}

static void env_deque_size_takes_effect(void **state)
{
    (void)state;
    weft_pool_options o = opts_with_threads(2);
    const char *ok[] = {"64", "16", "1000", "65536"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct capture c;
        expect_setting(display_with("WEFT_DEQUE_SIZE", ok[i], &o, &c), "WEFT_DEQUE_SIZE", ok[i]);
    }
    /* An explicit deque_size overrides it. */
    o.deque_size = 128;
    struct capture c;
    expect_setting(display_with("WEFT_DEQUE_SIZE", "64", &o, &c), "WEFT_DEQUE_SIZE", "128");
    /* A small deque still takes any amount of work (it grows). */
    o.deque_size = 0;
    weft_pool *p;
    assert_int_equal(create_with("WEFT_DEQUE_SIZE", "16", &o, &p, &c), 0);
    void *v = NULL;
    assert_int_equal(weft_run(p, fan_out_task, NULL, &v), 0);
    assert_int_equal((intptr_t)v, 3000);
    assert_int_equal(weft_pool_destroy(p), 0);
}

static void env_deque_size_malformed_fails_einval(void **state)
{
    (void)state;
    const char *bad[] = {"8", "15", "0", "16777217", "abc", "-16", "", "1k"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_malformed("WEFT_DEQUE_SIZE", bad[i], "16..16777216", NULL);
}

/* ---------------------------------------------------------------------------------------
 * WEFT_STATS
 * ------------------------------------------------------------------------------------- */
/* Creates a pool (WEFT_STATS=value unless NULL), runs a little, destroys it; returns what
 * the destruction printed. */
static const char *destroy_output(const char *value, const weft_pool_options *o, struct capture *c)
{
    if (value != NULL)
        assert_int_equal(setenv("WEFT_STATS", value, 1), 0);
    weft_pool *p;
    int rc = weft_pool_create(o, &p);
    unsetenv("WEFT_STATS");
    assert_int_equal(rc, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(weft_run(p, noop_task, NULL, NULL), 0);
    capture_begin(c);
    rc = weft_pool_destroy(p);
    capture_end(c);
    assert_int_equal(rc, 0);
    return c->text;
}

static void env_stats_prints_table_at_destroy(void **state)
{
    (void)state;
    weft_pool_options o = opts_with_threads(2);
    o.name = "tstat";
    const char *on[] = {"1", "true", "yes", "on", "On"};
    for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
        struct capture c;
        const char *t = destroy_output(on[i], &o, &c);
        if (strstr(t, "tasks_run") == NULL || strstr(t, "tstat") == NULL)
            fail_msg("WEFT_STATS=%s: no statistics table at destroy: \"%s\"", on[i], t);
    }
    const char *off[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
        struct capture c;
        assert_string_equal(destroy_output(off[i], &o, &c), "");
    }
    struct capture c;
    assert_string_equal(destroy_output(NULL, &o, &c), ""); /* unset: off */
    /* Explicit options override the environment, both ways. */
    o.stats = 0;
    assert_string_equal(destroy_output("1", &o, &c), "");
    o.stats = 1;
    assert_non_null(strstr(destroy_output("0", &o, &c), "tasks_run"));
}

static void env_stats_malformed_fails_einval(void **state)
{
    (void)state;
    const char *bad[] = {"2", "maybe", "", "-1", "yes please"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_malformed("WEFT_STATS", bad[i], "0 or 1", NULL);
}

/* ---------------------------------------------------------------------------------------
 * Several at once
 * ------------------------------------------------------------------------------------- */
static void env_every_malformed_variable_is_reported(void **state)
{
    (void)state;
    assert_int_equal(setenv("WEFT_NUM_THREADS", "many", 1), 0);
    assert_int_equal(setenv("WEFT_SPIN", "forever", 1), 0);
    assert_int_equal(setenv("WEFT_STATS", "perhaps", 1), 0);
    struct capture c;
    weft_pool *p;
    int rc = create_with(NULL, NULL, NULL, &p, &c);
    clear_env();
    assert_int_equal(rc, WEFT_EINVAL);
    assert_null(p);
    assert_non_null(strstr(c.text, "WEFT_NUM_THREADS"));
    assert_non_null(strstr(c.text, "WEFT_SPIN"));
    assert_non_null(strstr(c.text, "WEFT_STATS"));
    assert_null(strstr(c.text, "WEFT_DEQUE_SIZE")); /* valid (unset) ones are not */
}

static void env_all_valid_together(void **state)
{
    (void)state;
    assert_int_equal(setenv("WEFT_NUM_THREADS", "2", 1), 0);
    assert_int_equal(setenv("WEFT_PROC_BIND", "close", 1), 0);
    assert_int_equal(setenv("WEFT_SPIN", "10us", 1), 0);
    assert_int_equal(setenv("WEFT_DEQUE_SIZE", "32", 1), 0);
    assert_int_equal(setenv("WEFT_STATS", "0", 1), 0);
    struct capture c;
    const char *t = display_with(NULL, NULL, NULL, &c);
    clear_env();
    expect_setting(t, "WEFT_NUM_THREADS", "2");
    expect_setting(t, "WEFT_PROC_BIND", "close");
    expect_setting(t, "WEFT_SPIN", "10000ns");
    expect_setting(t, "WEFT_DEQUE_SIZE", "32");
    expect_setting(t, "WEFT_STATS", "0");
}

#define ENV_TEST(name) cmocka_unit_test_setup_teardown(name, setup_env, teardown_env)

int main(void)
{
    const struct CMUnitTest tests[] = {
        ENV_TEST(env_num_threads_sets_pool_size),
        ENV_TEST(env_num_threads_zero_means_automatic),
        ENV_TEST(env_num_threads_explicit_option_overrides),
        ENV_TEST(env_num_threads_malformed_fails_einval),
        ENV_TEST(env_read_once_at_creation),
        ENV_TEST(env_proc_bind_pins_workers),
        ENV_TEST(env_proc_bind_explicit_option_overrides),
        ENV_TEST(env_proc_bind_malformed_fails_einval),
        ENV_TEST(env_display_env_prints_settings),
        ENV_TEST(env_display_env_malformed_fails_einval),
        ENV_TEST(env_spin_accepts_durations),
        ENV_TEST(env_spin_malformed_fails_einval),
        ENV_TEST(env_deque_size_takes_effect),
        ENV_TEST(env_deque_size_malformed_fails_einval),
        ENV_TEST(env_stats_prints_table_at_destroy),
        ENV_TEST(env_stats_malformed_fails_einval),
        ENV_TEST(env_every_malformed_variable_is_reported),
        ENV_TEST(env_all_valid_together),
    };
    /* CMOCKA_TEST_FILTER / CMOCKA_SKIP_FILTER: run a subset (wildcards * and ?). */
    if (getenv("CMOCKA_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("CMOCKA_TEST_FILTER"));
    if (getenv("CMOCKA_SKIP_FILTER") != NULL)
        cmocka_set_skip_filter(getenv("CMOCKA_SKIP_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
