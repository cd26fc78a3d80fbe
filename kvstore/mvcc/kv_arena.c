/* kv_arena.c — the response arena: a chain of bump-allocated chunks so a whole response (and
 * everything it points to) is freed in one call. Chunks grow geometrically (a 10 MB LIST takes
 * a handful of mallocs, not hundreds) and reset keeps the largest one, so an arena reused per
 * request stops touching malloc once it has grown to the usual response size.
 */
#include <stdlib.h>
#include <string.h>

#include "kv_internal.h"

#define ARENA_MIN_CHUNK (64 * 1024)
#define ARENA_MAX_CHUNK (16 * 1024 * 1024)

typedef struct chunk {
    struct chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
} chunk;

struct kv_arena {
    chunk *head;  /* current chunk; older ones follow */
    size_t total; /* capacity of all chunks */
};

kv_arena *kv_arena_new(void) {
    return calloc(1, sizeof(kv_arena));
}

void *kv_arena_alloc(kv_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (!n) n = 16;
    chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = a->total < ARENA_MIN_CHUNK ? ARENA_MIN_CHUNK : a->total;
        if (cap > ARENA_MAX_CHUNK) cap = ARENA_MAX_CHUNK;
        if (cap < n) cap = n;
        chunk *nc = malloc(sizeof(chunk) + cap);
        if (!nc) return NULL;
        nc->cap = cap;
        nc->used = 0;
        nc->next = c;
        a->head = c = nc;
        a->total += cap;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

void kv_arena_reset(kv_arena *a) {
    if (!a || !a->head) return;
    chunk *keep = a->head;
    for (chunk *c = a->head->next; c; c = c->next)
        if (c->cap > keep->cap) keep = c;
    /* Still growing: replace everything with one chunk of the whole size, so the next request
     * of this size is served from memory that is already mapped and faulted in. */
    size_t want = a->total > ARENA_MAX_CHUNK ? ARENA_MAX_CHUNK : a->total;
    bool merge = keep->cap < want;
    chunk *c = a->head;
    while (c) {
        chunk *next = c->next;
        if (merge || c != keep) free(c);
        c = next;
    }
    if (merge && (keep = malloc(sizeof(chunk) + want))) keep->cap = want;
    a->head = keep;
    a->total = keep ? keep->cap : 0;
    if (keep) {
        keep->next = NULL;
        keep->used = 0;
    }
}

void kv_arena_free(kv_arena *a) {
    if (!a) return;
    chunk *c = a->head;
    while (c) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

void *kv_arena_dup(kv_arena *a, const void *p, size_t n) {
    void *d = kv_arena_alloc(a, n ? n : 1);
    if (d && n) memcpy(d, p, n);
    return d;
}

Mvccpb__KeyValue *kv_arena_kv(kv_arena *a, const kv_rec *r, bool keys_only) {
    size_t vlen = keys_only ? 0 : r->value_len;
    size_t sz = (sizeof(Mvccpb__KeyValue) + 15) & ~(size_t)15;
    uint8_t *m = kv_arena_alloc(a, sz + r->key_len + vlen);
    if (!m) return NULL;
    Mvccpb__KeyValue *kv = (Mvccpb__KeyValue *)m;
    mvccpb__key_value__init(kv);
    uint8_t *data = m + sz;
    if (r->key_len) memcpy(data, r->key, r->key_len);
    if (vlen) memcpy(data + r->key_len, r->value, vlen);
    kv->key.data = r->key_len ? data : NULL;
    kv->key.len = r->key_len;
    kv->value.data = vlen ? data + r->key_len : NULL;
    kv->value.len = vlen;
    kv->create_revision = r->create;
    kv->mod_revision = r->mod;
    kv->version = r->version;
    kv->lease = r->lease;
    return kv;
}
