/*
 * perf/uts.h: the Unbalanced Tree Search benchmark's trees (Olivier et al., "UTS: An
 * Unbalanced Tree Search Benchmark", LCPC 2006), shared by weft's version and the peers'.
 *
 * A node is its 20-byte SHA-1 state and its depth. As in the UTS reference (uts.c,
 * rng/brg_sha1.c):
 *   root state      = SHA-1(16 zero bytes ++ seed as 4 bytes big-endian)
 *   child i's state = SHA-1(parent state ++ i as 4 bytes big-endian)
 *   random value    = last 4 bytes of the state, big-endian, & 0x7fffffff; u = value / 2^31
 * Geometric trees (-t 1, shape -a 3 FIXED): b_i = b0 below depth gen_mx (-d), 0 from there;
 *   children = floor(log(1 - u) / log(1 - p)), p = 1 / (1 + b_i), at most 100.
 * Binomial trees (-t 0): the root has b0 children; any other node m with probability q,
 *   else none.
 *
 * SHA-1 is OpenSSL's (libcrypto). Its low-level SHA1_Init/Update/Final are used rather than
 * the one-shot SHA1(): in OpenSSL 3.0 SHA1() goes through EVP_Q_digest, which fetches the
 * algorithm from the provider store (a lock) on every call: 6x slower on one thread and no
 * faster on two than on one, so UTS would measure that lock instead of the task runtimes.
 * The compression function is the same. OPENSSL_API_COMPAT keeps them free of deprecation
 * warnings.
 */
#ifndef WEFT_PERF_UTS_H
#define WEFT_PERF_UTS_H

#define OPENSSL_API_COMPAT 0x10100000L
#include <openssl/sha.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common.h"

enum { UTS_BIN = 0, UTS_GEO = 1 };

typedef struct uts_tree {
    const char *name;
    const char *args; /* the reference implementation's command line */
    int type;         /* UTS_BIN or UTS_GEO */
    double b0;        /* -b: expected branching (geometric), root branching (binomial) */
    int gen_mx;       /* -d: depth from which geometric nodes have no children */
    double q;         /* -q: binomial: probability of having children */
    int m;            /* -m: binomial: number of children */
    int seed;         /* -r */
    long nodes;       /* expected size */
} uts_tree;

/* T1, T3 (and T1L, T3L) are the UTS distribution's sample trees with their published sizes.
 * T1S and T3S are smaller variants for smoke runs; their sizes are what this implementation
 * counts (it reproduces the published sizes of T1, T3, T1L and T3L exactly). */
static const uts_tree uts_trees[] = {
    {"T1", "-t 1 -a 3 -d 10 -b 4 -r 19", UTS_GEO, 4, 10, 0, 0, 19, 4130071},
    {"T3", "-t 0 -b 2000 -q 0.124875 -m 8 -r 42", UTS_BIN, 2000, 0, 0.124875, 8, 42, 4112897},
    {"T1L", "-t 1 -a 3 -d 13 -b 4 -r 29", UTS_GEO, 4, 13, 0, 0, 29, 102181082},
    {"T3L", "-t 0 -b 2000 -q 0.200014 -m 5 -r 7", UTS_BIN, 2000, 0, 0.200014, 5, 7, 111345631},
    {"T1S", "-t 1 -a 3 -d 8 -b 4 -r 19", UTS_GEO, 4, 8, 0, 0, 19, 257042},
    {"T3S", "-t 0 -b 2000 -q 0.1225 -m 8 -r 42", UTS_BIN, 2000, 0, 0.1225, 8, 42, 198913},
};

#define UTS_MAX_CHILDREN 100 /* MAXNUMCHILDREN of the reference (not for a binomial root) */
/* Children kept in the parent's stack frame; a node with more uses the heap. Binomial nodes
 * have m (8 or 5) children; geometric ones more than 8 with probability 0.8^9 = 13%. */
#define UTS_STACK_KIDS 8

typedef struct uts_node {
    unsigned char state[SHA_DIGEST_LENGTH];
    int height;
} uts_node;

static inline const uts_tree *uts_find(const char *runtime, const char *name)
{
    for (size_t i = 0; i < sizeof(uts_trees) / sizeof(uts_trees[0]); i++)
        if (strcmp(uts_trees[i].name, name) == 0)
            return &uts_trees[i];
    perf_die("%s uts: unknown tree '%s' (T1, T3, T1L, T3L, T1S, T3S)", runtime, name);
}

static inline void uts_sha1(const unsigned char *a, size_t na, const unsigned char *b, size_t nb,
                            unsigned char out[SHA_DIGEST_LENGTH])
{
    SHA_CTX c;
    SHA1_Init(&c);
    SHA1_Update(&c, a, na);
    SHA1_Update(&c, b, nb);
    SHA1_Final(out, &c);
}

static inline void uts_be32(unsigned char out[4], uint32_t v)
{
    out[0] = (unsigned char)(v >> 24);
    out[1] = (unsigned char)(v >> 16);
    out[2] = (unsigned char)(v >> 8);
    out[3] = (unsigned char)v;
}

static inline void uts_root(const uts_tree *t, uts_node *root)
{
    unsigned char zero[16] = {0}, seed[4];
    uts_be32(seed, (uint32_t)t->seed);
    uts_sha1(zero, sizeof(zero), seed, sizeof(seed), root->state);
    root->height = 0;
}

static inline void uts_child(const uts_node *parent, int i, uts_node *child)
{
    unsigned char idx[4];
    uts_be32(idx, (uint32_t)i);
    uts_sha1(parent->state, SHA_DIGEST_LENGTH, idx, sizeof(idx), child->state);
    child->height = parent->height + 1;
}

static inline double uts_uniform(const uts_node *n)
{
    const unsigned char *s = n->state;
    uint32_t v = ((uint32_t)s[16] << 24) | ((uint32_t)s[17] << 16) | ((uint32_t)s[18] << 8) |
                 (uint32_t)s[19];
    return (double)(v & 0x7fffffffu) / 2147483648.0;
}

static inline int uts_num_children(const uts_tree *t, const uts_node *n)
{
    int nc;
    if (t->type == UTS_BIN) {
        if (n->height == 0)
            return (int)floor(t->b0);
        nc = uts_uniform(n) < t->q ? t->m : 0;
    } else {
        double b = n->height < t->gen_mx ? t->b0 : 0.0;
        double p = 1.0 / (1.0 + b);
        nc = (int)floor(log(1.0 - uts_uniform(n)) / log(1.0 - p));
    }
    return nc > UTS_MAX_CHILDREN ? UTS_MAX_CHILDREN : nc;
}

static inline void uts_check(const char *runtime, const uts_tree *t, long got)
{
    if (t->nodes != 0 && got != t->nodes)
        perf_die("%s uts %s (%s): %ld nodes, expected %ld", runtime, t->name, t->args, got,
                 t->nodes);
}

#endif /* WEFT_PERF_UTS_H */
