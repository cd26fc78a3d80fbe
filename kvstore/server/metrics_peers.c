/* metrics_peers.c — per-client accounting for /metrics: relistlab_client_requests_total{peer,
 * grpc_method} and relistlab_client_sent_bytes_total{peer}, bounded in peers and methods.
 *
 * Key decisions:
 * - A fixed array of max_peers + 1 slots (the last is peer="other"), allocated once: a handle is
 *   a slot pointer, updates are relaxed atomic adds, and no slot memory is ever freed while the
 *   registry lives, so a late reader never sees freed memory.
 * - A closed connection's entry stays until a new peer needs its slot; the longest-closed one is
 *   recycled first and its counts are folded into "other", so sums over peers stay monotonic.
 * - Method names are interned into an append-only array (lock-free lookups, mutex on insert).
 * - The table renders through the registry's custom-collector hook, which also owns its memory.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEER_METHODS    32 /* the last one is "other" */
#define PEER_ADDR_BYTES 64

struct kvs_peer {
    char addr[PEER_ADDR_BYTES]; /* "" = unused slot */
    unsigned refs;              /* live connections (t->mu) */
    uint64_t released_seq;      /* when refs fell to 0 (t->mu): the oldest is recycled first */
    _Atomic uint64_t sent;
    _Atomic uint64_t req[PEER_METHODS];
};

struct kvs_peer_table {
    pthread_mutex_t mu;
    size_t max;
    kvs_peer *slots; /* max + 1; slots[max] is "other" */
    uint64_t seq;
    _Atomic(char *) methods[PEER_METHODS];
    _Atomic size_t nmethods;
};

static void peer_table_free(void *ud) {
    kvs_peer_table *t = ud;
    if (!t) return;
    for (size_t i = 0; i < PEER_METHODS; i++)
        free(atomic_load(&t->methods[i]));
    free(t->slots);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static size_t method_index(kvs_peer_table *t, const char *method) {
    if (!method) method = "";
    size_t n = atomic_load_explicit(&t->nmethods, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (strcmp(atomic_load_explicit(&t->methods[i], memory_order_relaxed), method) == 0)
            return i;
    pthread_mutex_lock(&t->mu);
    size_t idx = PEER_METHODS - 1;
    n = atomic_load_explicit(&t->nmethods, memory_order_relaxed);
    for (size_t i = 0; i < n; i++)
        if (strcmp(atomic_load_explicit(&t->methods[i], memory_order_relaxed), method) == 0)
            idx = i;
    if (idx == PEER_METHODS - 1 && n < PEER_METHODS - 1) {
        char *dup = strdup(method);
        if (dup) {
            atomic_store_explicit(&t->methods[n], dup, memory_order_relaxed);
            atomic_store_explicit(&t->nmethods, n + 1, memory_order_release);
            idx = n;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return idx;
}

static const char *method_name(kvs_peer_table *t, size_t i) {
    return i == PEER_METHODS - 1 ? "other"
                                 : atomic_load_explicit(&t->methods[i], memory_order_relaxed);
}

static int cmp_peer(const void *a, const void *b) {
    return strcmp((*(kvs_peer *const *)a)->addr, (*(kvs_peer *const *)b)->addr);
}

/* The peers to show, sorted (t->mu held); "other" only once it has counted something. */
static size_t peers_sorted(kvs_peer_table *t, kvs_peer **out) {
    size_t n = 0;
    for (size_t i = 0; i < t->max; i++)
        if (t->slots[i].addr[0]) out[n++] = &t->slots[i];
    kvs_peer *o = &t->slots[t->max];
    bool used = atomic_load(&o->sent) > 0;
    for (size_t m = 0; m < PEER_METHODS && !used; m++)
        used = atomic_load(&o->req[m]) > 0;
    if (used) out[n++] = o;
    qsort(out, n, sizeof *out, cmp_peer);
    return n;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void collect_requests(void *ud, kvs_sample_writer *w) {
    kvs_peer_table *t = ud;
    static const char *const names[] = {"peer", "grpc_method"};
    kvs_peer **peers = malloc((t->max + 1) * sizeof *peers);
    if (!peers) return;
    pthread_mutex_lock(&t->mu);
    size_t np = peers_sorted(t, peers);
    /* methods in name order (interning order depends on which thread came first) */
    size_t nm = atomic_load(&t->nmethods);
    const char *mnames[PEER_METHODS];
    size_t order[PEER_METHODS];
    for (size_t i = 0; i < nm; i++)
        mnames[i] = method_name(t, i);
    mnames[nm] = "other";
    qsort(mnames, nm + 1, sizeof *mnames, cmp_str);
    for (size_t i = 0; i <= nm; i++) {
        order[i] = PEER_METHODS - 1;
        for (size_t j = 0; j < nm; j++)
            if (method_name(t, j) == mnames[i]) order[i] = j;
    }
    for (size_t p = 0; p < np; p++) {
        for (size_t i = 0; i <= nm; i++) {
            uint64_t v = atomic_load_explicit(&peers[p]->req[order[i]], memory_order_relaxed);
            if (!v) continue;
            const char *vals[] = {peers[p]->addr, method_name(t, order[i])};
            kvs_sample_write(w, "", names, vals, 2, (double)v);
        }
    }
    pthread_mutex_unlock(&t->mu);
    free(peers);
}

static void collect_sent(void *ud, kvs_sample_writer *w) {
    kvs_peer_table *t = ud;
    static const char *const names[] = {"peer"};
    kvs_peer **peers = malloc((t->max + 1) * sizeof *peers);
    if (!peers) return;
    pthread_mutex_lock(&t->mu);
    size_t np = peers_sorted(t, peers);
    for (size_t p = 0; p < np; p++) {
        const char *vals[] = {peers[p]->addr};
        kvs_sample_write(w, "", names, vals, 1,
                         (double)atomic_load_explicit(&peers[p]->sent, memory_order_relaxed));
    }
    pthread_mutex_unlock(&t->mu);
    free(peers);
}

kvs_peer_table *kvs_peer_table_new(kvs_registry *r, size_t max_peers) {
    if (!r) return NULL;
    kvs_peer_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->max = max_peers ? max_peers : KVS_PEERS_DEFAULT;
    t->slots = calloc(t->max + 1, sizeof *t->slots);
    if (!t->slots) {
        peer_table_free(t);
        return NULL;
    }
    snprintf(t->slots[t->max].addr, PEER_ADDR_BYTES, "other");
    if (!kvs_registry_custom(
            r, "relistlab_client_requests_total",
            "gRPC requests by client address (peer=\"other\" past the table bound).", KVS_COUNTER,
            collect_requests, t, peer_table_free)) {
        peer_table_free(t);
        return NULL;
    }
    /* From here the registry owns t. */
    if (!kvs_registry_custom(
            r, "relistlab_client_sent_bytes_total",
            "Bytes sent to each client address (peer=\"other\" past the table bound).", KVS_COUNTER,
            collect_sent, t, NULL))
        return NULL;
    return t;
}

kvs_peer *kvs_peer_acquire(kvs_peer_table *t, const char *addr) {
    if (!t) return NULL;
    if (!addr) addr = "";
    pthread_mutex_lock(&t->mu);
    kvs_peer *other = &t->slots[t->max], *free_slot = NULL, *oldest = NULL, *p = NULL;
    for (size_t i = 0; i < t->max && !p; i++) {
        kvs_peer *s = &t->slots[i];
        if (!s->addr[0]) {
            if (!free_slot) free_slot = s;
        } else if (strncmp(s->addr, addr, PEER_ADDR_BYTES - 1) == 0) {
            p = s;
        } else if (s->refs == 0 && (!oldest || s->released_seq < oldest->released_seq)) {
            oldest = s;
        }
    }
    if (!p && !free_slot && oldest) {
        /* Recycle the longest-closed entry; its counts move to "other" so sums stay monotonic. */
        atomic_fetch_add(&other->sent, atomic_exchange(&oldest->sent, 0));
        for (size_t m = 0; m < PEER_METHODS; m++)
            atomic_fetch_add(&other->req[m], atomic_exchange(&oldest->req[m], 0));
        free_slot = oldest;
    }
    if (!p && free_slot) {
        p = free_slot;
        snprintf(p->addr, PEER_ADDR_BYTES, "%s", addr[0] ? addr : "unknown");
        p->refs = 0;
    }
    if (!p) p = other;
    if (p != other) p->refs++;
    pthread_mutex_unlock(&t->mu);
    return p;
}

void kvs_peer_release(kvs_peer_table *t, kvs_peer *p) {
    if (!t || !p) return;
    pthread_mutex_lock(&t->mu);
    if (p != &t->slots[t->max] && p->refs > 0 && --p->refs == 0) p->released_seq = ++t->seq;
    pthread_mutex_unlock(&t->mu);
}

void kvs_peer_count_request(kvs_peer_table *t, kvs_peer *p, const char *method) {
    if (!t || !p) return;
    atomic_fetch_add_explicit(&p->req[method_index(t, method)], 1, memory_order_relaxed);
}

void kvs_peer_add_sent(kvs_peer *p, uint64_t bytes) {
    if (p) atomic_fetch_add_explicit(&p->sent, bytes, memory_order_relaxed);
}

const char *kvs_peer_label(const kvs_peer *p) {
    return p ? p->addr : "";
}

uint64_t kvs_peer_requests(kvs_peer_table *t, const kvs_peer *p, const char *method) {
    if (!t || !p) return 0;
    return atomic_load(&p->req[method_index(t, method)]);
}

uint64_t kvs_peer_sent(const kvs_peer *p) {
    return p ? atomic_load(&p->sent) : 0;
}
