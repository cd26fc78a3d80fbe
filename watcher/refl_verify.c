/* refl_verify.c — compares a reflector's cache with the server's truth at one revision.
 * Nothing in client-go does this, which is why the cache-key bug shows only as load; here it
 * is the check that proves a cache diverged and how. Differences are by etcd key (what the
 * cache holds), independent of the cache key; collisions are computed from the truth alone
 * under the cache's key mode. The truth is indexed once and reused for every cache. */
#include "refl_internal.h"

#include <stdlib.h>
#include <string.h>

/* The three distinct key constructions: namespace/name, name, uid. */
enum { K_NSNAME, K_NAME, K_UID, K_N };

typedef struct truth_item {
    refl_hnode node; /* by etcd key */
    const char *key;
    size_t key_len;
    int64_t mod_revision;
    refl_objmeta meta;
    size_t partner[K_N]; /* another item with the same cache key, or SIZE_MAX */
} truth_item;

struct refl_truth {
    int64_t revision;
    size_t n;
    truth_item *items;
    char *bytes; /* all keys and values, copied */
    refl_htab by_key;
};

static uint64_t etcd_key_hash(const char *k, size_t n) {
    return refl_hash_bytes(k, n, 0x74727574);
}

/* Marks items whose cache key under construction kc equals another item's. */
static int find_collisions(refl_truth *t, int kc) {
    static const refl_key_mode modes[K_N] = {REFL_KEY_NAMESPACED, REFL_KEY_NAME, REFL_KEY_UID};
    typedef struct {
        refl_hnode node;
        size_t idx;
        refl_keybuf kb;
    } knode;
    int rc = 0;
    knode *nodes = calloc(t->n ? t->n : 1, sizeof(*nodes));
    refl_htab tab;
    if (!nodes || refl_htab_init(&tab, t->n)) {
        free(nodes);
        return -1;
    }
    size_t built = 0;
    for (size_t i = 0; i < t->n; i++, built++) {
        knode *kn = &nodes[i];
        if (refl_keybuf_build(&kn->kb, modes[kc], REFL_PHASE_EVENT, &t->items[i].meta)) {
            rc = -1;
            break;
        }
        kn->idx = i;
        kn->node.hash = refl_hash_bytes(kn->kb.p, kn->kb.len, 0);
        knode *first = NULL;
        for (refl_hnode *h = refl_htab_first(&tab, kn->node.hash); h && !first;
             h = refl_htab_next_same(h)) {
            knode *o = REFL_CONTAINER_OF(h, knode, node);
            if (o->kb.len == kn->kb.len && !memcmp(o->kb.p, kn->kb.p, kn->kb.len)) first = o;
        }
        if (first) {
            t->items[i].partner[kc] = first->idx;
            if (t->items[first->idx].partner[kc] == SIZE_MAX) t->items[first->idx].partner[kc] = i;
        } else {
            refl_htab_insert(&tab, &kn->node);
        }
    }
    for (size_t i = 0; i < built; i++)
        refl_keybuf_fini(&nodes[i].kb);
    refl_htab_fini(&tab);
    free(nodes);
    return rc;
}

refl_truth *refl_truth_new(const refl_kv *items, size_t n, int64_t revision) {
    refl_truth *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->revision = revision;
    t->n = n;
    size_t total = 1;
    for (size_t i = 0; i < n; i++)
        total += items[i].key_len + 1 + items[i].value_len;
    t->items = calloc(n ? n : 1, sizeof(*t->items));
    t->bytes = malloc(total);
    if (!t->items || !t->bytes || refl_htab_init(&t->by_key, n)) goto fail;
    char *p = t->bytes;
    for (size_t i = 0; i < n; i++) {
        truth_item *it = &t->items[i];
        if (items[i].key_len) memcpy(p, items[i].key, items[i].key_len);
        p[items[i].key_len] = '\0';
        it->key = p;
        it->key_len = items[i].key_len;
        p += it->key_len + 1;
        if (items[i].value_len) memcpy(p, items[i].value, items[i].value_len);
        refl_meta_extract(it->key, it->key_len, p, items[i].value_len, &it->meta);
        p += items[i].value_len;
        it->mod_revision = items[i].mod_revision;
        for (int k = 0; k < K_N; k++)
            it->partner[k] = SIZE_MAX;
        it->node.hash = etcd_key_hash(it->key, it->key_len);
        refl_htab_insert(&t->by_key, &it->node);
    }
    for (int k = 0; k < K_N; k++)
        if (find_collisions(t, k)) goto fail;
    return t;
fail:
    refl_truth_free(t);
    return NULL;
}

void refl_truth_free(refl_truth *t) {
    if (!t) return;
    refl_htab_fini(&t->by_key);
    free(t->items);
    free(t->bytes);
    free(t);
}

size_t refl_truth_count(const refl_truth *t) {
    return t->n;
}

static const truth_item *truth_find(const refl_truth *t, const char *k, size_t n) {
    for (refl_hnode *h = refl_htab_first(&t->by_key, etcd_key_hash(k, n)); h;
         h = refl_htab_next_same(h)) {
        const truth_item *it = REFL_CONTAINER_OF(h, truth_item, node);
        if (it->key_len == n && refl_mem_eq(it->key, k, n)) return it;
    }
    return NULL;
}

/* The partner of item i under the mode's constructions (list- and event-time), or SIZE_MAX. */
static size_t collision_partner(const truth_item *it, refl_key_mode mode) {
    switch (mode) {
    case REFL_KEY_NAMESPACED:
        return it->partner[K_NSNAME];
    case REFL_KEY_NAME:
        return it->partner[K_NAME];
    case REFL_KEY_MISMATCH:
        return it->partner[K_NAME] != SIZE_MAX ? it->partner[K_NAME] : it->partner[K_NSNAME];
    case REFL_KEY_UID:
        return it->partner[K_UID];
    }
    return SIZE_MAX;
}

/* ---- the listing -------------------------------------------------------------------------- */

enum { C_MISSING, C_STALE, C_EXTRA, C_COLLIDED, C_N };

typedef struct listing {
    refl_buf lines[C_N];
    unsigned count[C_N];
} listing;

/* Appends s with unprintable bytes as '?' and long strings shortened: it is for people. */
static void put_human(refl_buf *b, const char *s, size_t n) {
    char tmp[96] = {0};
    size_t m = n < 80 ? n : 80;
    for (size_t i = 0; i < m; i++) {
        unsigned char c = (unsigned char)s[i];
        tmp[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    refl_buf_append(b, tmp, m);
    if (m < n) refl_buf_puts(b, "...");
}

static refl_buf *line(listing *l, int cls, const char *tag) {
    if (l->count[cls]++ >= REFL_VERIFY_LISTING_ITEMS) return NULL;
    refl_buf_puts(&l->lines[cls], tag);
    return &l->lines[cls];
}

static void compose(listing *l, refl_verify_report *r) {
    refl_buf out = {0};
    uint64_t total = 0;
    for (int c = 0; c < C_N; c++)
        total += l->count[c];
    unsigned shown = 0;
    for (int c = 0; c < C_N; c++) {
        const char *p = l->lines[c].p;
        while (p && *p && shown < REFL_VERIFY_LISTING_ITEMS) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
            refl_buf_append(&out, p, n);
            p += n;
            shown++;
        }
    }
    if (total > shown)
        refl_buf_printf(&out, "... and %llu more\n", (unsigned long long)(total - shown));
    if (out.p) {
        size_t n = out.len < REFL_VERIFY_LISTING_MAX - 1 ? out.len : REFL_VERIFY_LISTING_MAX - 1;
        memcpy(r->listing, out.p, n);
        r->listing[n] = '\0';
    }
    free(out.p);
    for (int c = 0; c < C_N; c++)
        free(l->lines[c].p);
}

int refl_verify(const refl_truth *t, const refl_cache *c, refl_verify_report *r) {
    memset(r, 0, sizeof(*r));
    unsigned char *seen = calloc(t->n ? t->n : 1, 1);
    if (!seen) return -1;
    refl_key_mode mode = refl_cache_mode(c);
    listing l;
    memset(&l, 0, sizeof l);
    r->revision = t->revision;
    r->truth_objects = t->n;
    r->cache_entries = refl_cache_count(c);

    refl_cache_iter iter = {0};
    const refl_cache_entry *e;
    while ((e = refl_cache_next(c, &iter))) {
        const refl_obj *o = e->obj;
        refl_keybuf kb;
        if (refl_keybuf_build(&kb, mode, REFL_PHASE_EVENT, &o->meta) == 0) {
            if (kb.len != e->key_len || memcmp(kb.p, e->key, kb.len)) r->misplaced++;
            refl_keybuf_fini(&kb);
        }
        const truth_item *it = truth_find(t, o->key, o->key_len);
        refl_buf *b;
        if (!it || seen[it - t->items]) {
            r->extra++;
            if ((b = line(&l, C_EXTRA, "extra    "))) {
                put_human(b, o->key, o->key_len);
                refl_buf_printf(b, " mod_revision %lld (cache key ", (long long)o->mod_revision);
                put_human(b, e->key, e->key_len);
                refl_buf_puts(b, it ? "): duplicate of another entry\n" : "): not on the server\n");
            }
            continue;
        }
        seen[it - t->items] = 1;
        if (o->mod_revision < it->mod_revision) {
            r->stale++;
            if ((b = line(&l, C_STALE, "stale    "))) {
                put_human(b, o->key, o->key_len);
                refl_buf_printf(b, " cache mod_revision %lld < server %lld\n",
                                (long long)o->mod_revision, (long long)it->mod_revision);
            }
        } else if (o->mod_revision > it->mod_revision) {
            r->ahead++;
        }
    }
    for (size_t i = 0; i < t->n; i++) {
        const truth_item *it = &t->items[i];
        refl_buf *b;
        if (!seen[i]) {
            r->missing++;
            if ((b = line(&l, C_MISSING, "missing  "))) {
                put_human(b, it->key, it->key_len);
                refl_buf_printf(b, " mod_revision %lld\n", (long long)it->mod_revision);
            }
        }
        size_t p = collision_partner(it, mode);
        if (p == SIZE_MAX) continue;
        r->collided++;
        if (p > i && (b = line(&l, C_COLLIDED, "collided "))) {
            put_human(b, it->key, it->key_len);
            refl_buf_puts(b, " and ");
            put_human(b, t->items[p].key, t->items[p].key_len);
            refl_buf_puts(b, " share a cache key\n");
        }
    }
    r->divergent = r->missing + r->extra + r->stale;
    compose(&l, r);
    free(seen);
    return 0;
}
