/* watch_group.c — the watcher groups' index: which watchers care about a key.
 *
 * Key decisions:
 * - Watchers are grouped into buckets by their exact range, so 1,000 watchers of one prefix
 *   cost one range test per event, not 1,000 (the common Kubernetes-style load).
 * - Single-key buckets live in a hash table keyed by (key, range); the commit path finds them
 *   with one lookup per event. Range buckets (prefix, [key, end), from-key) are also kept in an
 *   array sorted by start key: an event's key is tested only against ranges starting at or
 *   before it. Distinct ranges are few in practice; etcd's interval tree would only pay off
 *   with thousands of distinct overlapping ranges.
 * - Per batch, each hit bucket records the indices of its matching events (its "match list")
 *   under a generation number, so nothing is cleared between batches.
 */
#include <stdlib.h>
#include <string.h>

#include "watch_internal.h"

static uint64_t range_hash(const uint8_t *key, size_t key_len, const uint8_t *end, size_t end_len,
                           bool single, bool from_key) {
    uint64_t x = 1469598103934665603ull;
    for (size_t i = 0; i < key_len; i++)
        x = (x ^ key[i]) * 1099511628211ull;
    x = (x ^ (single ? 1u : from_key ? 2u : 3u)) * 1099511628211ull;
    if (!single && !from_key)
        for (size_t i = 0; i < end_len; i++)
            x = (x ^ end[i]) * 1099511628211ull;
    return x ^ (x >> 29);
}

static int bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

bool wg_contains(const wbucket *b, const uint8_t *key, size_t key_len) {
    if (b->single) return key_len == b->key_len && memcmp(key, b->key, key_len) == 0;
    if (bytes_cmp(key, key_len, b->key, b->key_len) < 0) return false;
    return b->from_key || bytes_cmp(key, key_len, b->end, b->end_len) < 0;
}

static bool same_range(const wbucket *b, const uint8_t *key, size_t key_len, const uint8_t *end,
                       size_t end_len, bool single, bool from_key) {
    if (b->single != single || b->from_key != from_key || b->key_len != key_len) return false;
    if (key_len && memcmp(b->key, key, key_len)) return false;
    if (single || from_key) return true;
    return b->end_len == end_len && memcmp(b->end, end, end_len) == 0;
}

static int btab_grow(watch_hub *h) {
    size_t cap = h->bcap ? h->bcap * 2 : 64;
    wbucket **t = calloc(cap, sizeof(*t));
    if (!t) return -1;
    for (size_t i = 0; i < h->bcap; i++) {
        for (wbucket *b = h->btab[i], *nx; b; b = nx) {
            nx = b->hnext;
            size_t j = b->hash & (cap - 1);
            b->hnext = t[j];
            t[j] = b;
        }
    }
    free(h->btab);
    h->btab = t;
    h->bcap = cap;
    return 0;
}

static wbucket *btab_find(const watch_hub *h, const uint8_t *key, size_t key_len,
                          const uint8_t *end, size_t end_len, bool single, bool from_key,
                          uint64_t hash) {
    if (!h->bcap) return NULL;
    for (wbucket *b = h->btab[hash & (h->bcap - 1)]; b; b = b->hnext)
        if (b->hash == hash && same_range(b, key, key_len, end, end_len, single, from_key))
            return b;
    return NULL;
}

/* Position of the first range bucket whose start key is > key (upper bound). */
static size_t ranges_upper(const watch_hub *h, const uint8_t *key, size_t key_len) {
    size_t lo = 0, hi = h->nranges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const wbucket *b = h->ranges[mid];
        if (bytes_cmp(b->key, b->key_len, key, key_len) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void bucket_free(wbucket *b) {
    free(b->key);
    free(b->end);
    free(b->match);
    free(b);
}

wbucket *wg_bucket_get(watch_hub *h, const uint8_t *key, size_t key_len, const uint8_t *end,
                       size_t end_len, bool from_key) {
    bool single = !from_key && end_len == 0;
    uint64_t hash = range_hash(key, key_len, end, end_len, single, from_key);
    wbucket *b = btab_find(h, key, key_len, end, end_len, single, from_key, hash);
    if (b) {
        b->refs++;
        return b;
    }
    if ((h->nbuckets + 1) * 4 > h->bcap * 3 && btab_grow(h)) return NULL; /* load <= 3/4 */
    if (!single && h->nranges == h->ranges_cap) {
        size_t cap = h->ranges_cap ? h->ranges_cap * 2 : 16;
        wbucket **r = realloc(h->ranges, cap * sizeof(*r));
        if (!r) return NULL;
        h->ranges = r;
        h->ranges_cap = cap;
    }
    b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    b->key = malloc(key_len + 1);
    /* A single key's exclusive end is key+"\0": the catch-up path reads [key, end). */
    size_t el = single ? key_len + 1 : end_len;
    b->end = from_key ? NULL : malloc(el ? el : 1);
    if (!b->key || (!from_key && !b->end)) {
        bucket_free(b);
        return NULL;
    }
    memcpy(b->key, key, key_len);
    b->key_len = key_len;
    if (single) {
        memcpy(b->end, key, key_len);
        b->end[key_len] = 0;
    } else if (!from_key && end_len) {
        memcpy(b->end, end, end_len);
    }
    b->end_len = from_key ? 0 : el;
    b->single = single;
    b->from_key = from_key;
    b->hash = hash;
    b->refs = 1;
    size_t j = hash & (h->bcap - 1);
    b->hnext = h->btab[j];
    h->btab[j] = b;
    h->nbuckets++;
    if (!single) {
        size_t pos = ranges_upper(h, key, key_len);
        memmove(h->ranges + pos + 1, h->ranges + pos, (h->nranges - pos) * sizeof(*h->ranges));
        h->ranges[pos] = b;
        h->nranges++;
    }
    return b;
}

void wg_bucket_put(watch_hub *h, wbucket *b) {
    if (--b->refs) return;
    size_t j = b->hash & (h->bcap - 1);
    for (wbucket **pp = &h->btab[j]; *pp; pp = &(*pp)->hnext) {
        if (*pp == b) {
            *pp = b->hnext;
            break;
        }
    }
    h->nbuckets--;
    if (!b->single) {
        for (size_t i = 0; i < h->nranges; i++) {
            if (h->ranges[i] == b) {
                memmove(h->ranges + i, h->ranges + i + 1,
                        (h->nranges - i - 1) * sizeof(*h->ranges));
                h->nranges--;
                break;
            }
        }
    }
    bucket_free(b);
}

void wg_synced_add(wbucket *b, watcher *w) {
    w->bprev = NULL;
    w->bnext = b->synced;
    if (b->synced) b->synced->bprev = w;
    b->synced = w;
    b->nsynced++;
}

void wg_synced_del(wbucket *b, watcher *w) {
    if (w->bprev)
        w->bprev->bnext = w->bnext;
    else
        b->synced = w->bnext;
    if (w->bnext) w->bnext->bprev = w->bprev;
    w->bprev = w->bnext = NULL;
    b->nsynced--;
}

static int match_push(watch_hub *h, wbucket *b, size_t i) {
    if (b->gen != h->gen) {
        b->gen = h->gen;
        b->nmatch = 0;
        b->contig = true;
    }
    if (b->nmatch == b->match_cap) {
        size_t cap = b->match_cap ? b->match_cap * 2 : 8;
        size_t *m = realloc(b->match, cap * sizeof(*m));
        if (!m) return -1;
        b->match = m;
        b->match_cap = cap;
    }
    if (b->nmatch && b->match[b->nmatch - 1] + 1 != i) b->contig = false;
    b->match[b->nmatch++] = i;
    return 0;
}

static int hit(watch_hub *h, wbucket *b, size_t i) {
    bool first = b->gen != h->gen;
    if (match_push(h, b, i)) return -1;
    if (!first) return 0;
    if (h->nhits == h->hits_cap) {
        size_t cap = h->hits_cap ? h->hits_cap * 2 : 16;
        wbucket **x = realloc(h->hits, cap * sizeof(*x));
        if (!x) return -1;
        h->hits = x;
        h->hits_cap = cap;
    }
    h->hits[h->nhits++] = b;
    return 0;
}

int wg_match_batch(watch_hub *h, const watch_batch *b, size_t from) {
    h->nhits = 0;
    for (size_t i = from; i < b->n; i++) {
        const uint8_t *k = wb_key(b, i);
        size_t kl = b->ev[i].key_len;
        uint64_t hash = range_hash(k, kl, NULL, 0, true, false);
        wbucket *s = btab_find(h, k, kl, NULL, 0, true, false, hash);
        if (s && s->nsynced && hit(h, s, i)) return -1;
        size_t upto = ranges_upper(h, k, kl);
        for (size_t r = 0; r < upto; r++) {
            wbucket *rb = h->ranges[r];
            if (rb->nsynced && wg_contains(rb, k, kl) && hit(h, rb, i)) return -1;
        }
    }
    return 0;
}

int wg_match_bucket(watch_hub *h, wbucket *bk, const watch_batch *b) {
    if (bk->gen == h->gen) return 0;
    bk->gen = h->gen;
    bk->nmatch = 0;
    bk->contig = true;
    for (size_t i = 0; i < b->n; i++)
        if (wg_contains(bk, wb_key(b, i), b->ev[i].key_len) && match_push(h, bk, i)) return -1;
    return 0;
}

void wg_free_all(watch_hub *h) {
    for (size_t i = 0; i < h->bcap; i++) {
        for (wbucket *b = h->btab[i], *nx; b; b = nx) {
            nx = b->hnext;
            bucket_free(b);
        }
    }
    free(h->btab);
    free(h->ranges);
    free(h->hits);
    h->btab = NULL;
    h->ranges = NULL;
    h->hits = NULL;
    h->bcap = h->nbuckets = h->nranges = h->nhits = 0;
}
