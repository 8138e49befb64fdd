/*
 * Options: the WEFT_* environment variables (read once, at pool creation), their
 * validation, the automatic worker count, and the CPU list for pinning.
 */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_THREADS     1024
#define DEFAULT_SPIN_NS 50000
#define MAX_SPIN_NS     1000000000LL
#define DEFAULT_DEQUE   1024
#define MIN_DEQUE       16
#define MAX_DEQUE       (1u << 24)

static int env_error(const char *name, const char *value, const char *expected)
{
    fprintf(stderr, "weft: %s=\"%s\" is invalid: expected %s\n", name, value, expected);
    return WEFT_EINVAL;
}

/* getenv, with surrounding white space removed (so "4 " and " 4" mean 4 for every
 * variable). NULL if unset; a value too long for any valid setting comes back as "?". */
static const char *env_value(const char *name, char *buf, size_t size)
{
    const char *v = getenv(name);
    if (v == NULL)
        return NULL;
    while (isspace((unsigned char)*v))
        v++;
    size_t n = strlen(v);
    while (n > 0 && isspace((unsigned char)v[n - 1]))
        n--;
    if (n >= size)
        return "?";
    memcpy(buf, v, n);
    buf[n] = '\0';
    return buf;
}

/* Parses a whole decimal integer in [lo, hi]. */
static bool parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *s, int *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return (*out = 1), true;
        if (strcasecmp(s, no[i]) == 0)
            return (*out = 0), true;
    }
    return false;
}

/* "50us", "2ms", "100ns", "1s", or a bare number of microseconds. */
static bool parse_duration_ns(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || v < 0)
        return false;
    long long mul = 1000; /* bare number: microseconds */
    if (strcmp(end, "ns") == 0)
        mul = 1;
    else if (strcmp(end, "us") == 0 || *end == '\0')
        mul = 1000;
    else if (strcmp(end, "ms") == 0)
        mul = 1000000;
    else if (strcmp(end, "s") == 0)
        mul = 1000000000;
    else
        return false;
    if (v > MAX_SPIN_NS / mul)
        return false;
    *out = v * mul;
    return true;
}

static bool parse_bind(const char *s, int *out)
{
    if (strcasecmp(s, "false") == 0 || strcasecmp(s, "none") == 0)
        *out = WEFT_BIND_NONE;
    else if (strcasecmp(s, "true") == 0 || strcasecmp(s, "close") == 0 ||
             strcasecmp(s, "compact") == 0)
        *out = WEFT_BIND_COMPACT;
    else if (strcasecmp(s, "spread") == 0 || strcasecmp(s, "scatter") == 0)
        *out = WEFT_BIND_SCATTER;
    else
        return false;
    return true;
}

/* CPUs the process may run on, capped by the cgroup (v2, then v1) CPU quota. */
static unsigned auto_threads(void)
{
    cpu_set_t set;
    unsigned n = 1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = (unsigned)CPU_COUNT(&set);
    long long quota = -1, period = -1;
    FILE *fp = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (fp != NULL) {
        char q[32];
        if (fscanf(fp, "%31s %lld", q, &period) == 2 && strcmp(q, "max") != 0)
            quota = atoll(q);
        fclose(fp);
    } else if ((fp = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r")) != NULL) {
        if (fscanf(fp, "%lld", &quota) != 1)
            quota = -1;
        fclose(fp);
        if ((fp = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r")) != NULL) {
            if (fscanf(fp, "%lld", &period) != 1)
                period = -1;
            fclose(fp);
        }
    }
    if (quota > 0 && period > 0) {
        unsigned cap = (unsigned)((quota + period - 1) / period);
        if (cap >= 1 && cap < n)
            n = cap;
    }
    if (n < 1)
        n = 1;
    return n > MAX_THREADS ? MAX_THREADS : n;
}

static const char *bind_name(int b)
{
    return b == WEFT_BIND_COMPACT ? "close" : b == WEFT_BIND_SCATTER ? "spread" : "false";
}

int weft_resolve_options_(const weft_pool_options *in, weft_pool_options *o, size_t *deque_size)
{
    weft_pool_options def;
    if (in == NULL) {
        weft_pool_options_init(&def);
        in = &def;
    }
    *o = *in;
    const char *v;
    char buf[64];
    long long x;
    int rc = 0;

    if (o->num_threads > MAX_THREADS)
        return WEFT_EINVAL;
    if ((v = env_value("WEFT_NUM_THREADS", buf, sizeof(buf))) != NULL) {
        if (!parse_int(v, 0, MAX_THREADS, &x))
            rc = env_error("WEFT_NUM_THREADS", v, "an integer in 0..1024 (0 = automatic)");
        else if (o->num_threads == 0)
            o->num_threads = (unsigned)x;
    }
    if (o->num_threads == 0)
        o->num_threads = auto_threads();

    if (o->bind < WEFT_BIND_DEFAULT || o->bind > WEFT_BIND_SCATTER)
        return WEFT_EINVAL;
    if ((v = env_value("WEFT_PROC_BIND", buf, sizeof(buf))) != NULL) {
        int b;
        if (!parse_bind(v, &b))
            rc =
                env_error("WEFT_PROC_BIND", v, "false|none, true|close|compact, or spread|scatter");
        else if (o->bind == WEFT_BIND_DEFAULT)
            o->bind = b;
    }
    if (o->bind == WEFT_BIND_DEFAULT)
        o->bind = WEFT_BIND_NONE;

    if (o->spin_ns < -1 || o->spin_ns > MAX_SPIN_NS)
        return WEFT_EINVAL;
    if ((v = env_value("WEFT_SPIN", buf, sizeof(buf))) != NULL) {
        int64_t ns;
        if (!parse_duration_ns(v, &ns))
            rc = env_error("WEFT_SPIN", v,
                           "a duration in 0..1s: a number of microseconds, or with a unit "
                           "(ns, us, ms, s), e.g. 50us");
        else if (o->spin_ns == -1)
            o->spin_ns = ns;
    }
    if (o->spin_ns == -1)
        o->spin_ns = DEFAULT_SPIN_NS;

    if (o->deque_size > MAX_DEQUE)
        return WEFT_EINVAL;
    if ((v = env_value("WEFT_DEQUE_SIZE", buf, sizeof(buf))) != NULL) {
        if (!parse_int(v, MIN_DEQUE, MAX_DEQUE, &x))
            rc = env_error("WEFT_DEQUE_SIZE", v, "an integer in 16..16777216 (elements)");
        else if (o->deque_size == 0)
            o->deque_size = (unsigned)x;
    }
    *deque_size = o->deque_size ? o->deque_size : DEFAULT_DEQUE;
    if (*deque_size < MIN_DEQUE)
        *deque_size = MIN_DEQUE;

    if (o->stats < -1 || o->stats > 1)
        return WEFT_EINVAL;
    if ((v = env_value("WEFT_STATS", buf, sizeof(buf))) != NULL) {
        int b;
        if (!parse_bool(v, &b))
            rc = env_error("WEFT_STATS", v, "0 or 1 (also false/true, no/yes, off/on)");
        else if (o->stats == -1)
            o->stats = b;
    }
    if (o->stats == -1)
        o->stats = 0;

    int display = 0;
    if ((v = env_value("WEFT_DISPLAY_ENV", buf, sizeof(buf))) != NULL && !parse_bool(v, &display))
        rc = env_error("WEFT_DISPLAY_ENV", v, "0 or 1 (also false/true, no/yes, off/on)");
    if (rc != 0)
        return rc;
    if (display)
        fprintf(stderr,
                "weft: pool settings\n"
                "  WEFT_NUM_THREADS = %u\n"
                "  WEFT_PROC_BIND   = %s\n"
                "  WEFT_SPIN        = %lldns\n"
                "  WEFT_DEQUE_SIZE  = %zu\n"
                "  WEFT_STATS       = %d\n",
                o->num_threads, bind_name(o->bind), (long long)o->spin_ns, *deque_size, o->stats);
    return 0;
}

static int read_topo(int cpu, const char *what)
{
    char path[128];
    snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/%s", cpu, what);
    FILE *fp = fopen(path, "r");
    int v = 0;
    if (fp != NULL) {
        if (fscanf(fp, "%d", &v) != 1)
            v = 0;
        fclose(fp);
    }
    return v;
}

struct cpu_key {
    int cpu, pkg, core, rank;
};

static int by_spread(const void *a, const void *b)
{
    const struct cpu_key *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank - y->rank;
    if (x->core != y->core)
        return x->core - y->core;
    if (x->pkg != y->pkg)
        return x->pkg - y->pkg;
    return x->cpu - y->cpu;
}

int weft_cpu_list_(int bind, unsigned n, int *cpus)
{
    for (unsigned i = 0; i < n; i++)
        cpus[i] = -1;
    if (bind == WEFT_BIND_NONE)
        return 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return 0;
    struct cpu_key keys[CPU_SETSIZE];
    int m = 0;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &set))
            continue;
        keys[m].cpu = c;
        keys[m].pkg = read_topo(c, "physical_package_id");
        keys[m].core = read_topo(c, "core_id");
        keys[m].rank = 0; /* SMT sibling rank: how many earlier CPUs share this core */
        for (int j = 0; j < m; j++)
            if (keys[j].pkg == keys[m].pkg && keys[j].core == keys[m].core)
                keys[m].rank++;
        m++;
    }
    if (m == 0)
        return 0;
    if (bind == WEFT_BIND_SCATTER)
        qsort(keys, (size_t)m, sizeof(keys[0]), by_spread);
    for (unsigned i = 0; i < n; i++)
        cpus[i] = keys[i % (unsigned)m].cpu;
    return 0;
}

WEFT_API void weft_pool_options_init(weft_pool_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof(*o));
    o->num_threads = 0;
    o->bind = WEFT_BIND_DEFAULT;
    o->spin_ns = -1;
    o->deque_size = 0;
    o->stats = -1;
}
