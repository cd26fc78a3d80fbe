/* kv_model.h — a deliberately naive reference model of etcd v3.4's MVCC semantics, used by
 * test_kv_model.c to check the LMDB engine (kvstore/mvcc) operation by operation.
 *
 * Key decisions:
 * - History is one flat array of records (a put or a tombstone per key per revision), appended
 *   in {main, sub} order and never removed. A read at revision R walks a key's records back to
 *   the last one with main <= R. Compaction is only a number (reads below it fail): the data
 *   it would remove can never be observed at or above the compaction point, so the model stays
 *   obviously correct without implementing physical removal.
 * - Expected responses are the model's own small structs (km_resp) holding record indexes,
 *   so the comparator can tolerate what etcd leaves unspecified (order of sort ties).
 * - The semantics follow etcd v3.4.23 source (etcdserver/apply.go, mvcc/kvstore_txn.go,
 *   etcdserver/api/v3rpc/key.go); the quirks that matter are noted where they are modelled.
 * - Header-only (static inline) so the suite stays a single cmocka executable; test code may
 *   abort() on out-of-memory.
 */
#ifndef RELIST_KV_MODEL_H
#define RELIST_KV_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

/* "Some error, whichever code": for cases kv.h does not pin down. */
#define KM_ERR_ANY (-1)

/* ---- memory: a trivial pool of calloc'd blocks, freed together --------------------------- */

typedef struct km_pool {
    void **blk;
    size_t n, cap;
} km_pool;

static inline void *km_alloc(km_pool *p, size_t n) {
    void *b = calloc(1, n ? n : 1);
    if (!b) abort();
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->blk = realloc(p->blk, p->cap * sizeof *p->blk);
        if (!p->blk) abort();
    }
    p->blk[p->n++] = b;
    return b;
}

static inline void km_pool_reset(km_pool *p) {
    for (size_t i = 0; i < p->n; i++)
        free(p->blk[i]);
    p->n = 0;
}

static inline void km_pool_free(km_pool *p) {
    km_pool_reset(p);
    free(p->blk);
    p->blk = NULL;
    p->cap = 0;
}

/* ---- byte strings and etcd's range rules ------------------------------------------------- */

static inline int km_bcmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c < 0 ? -1 : 1;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

static inline bool km_is_from_key(ProtobufCBinaryData end) {
    return end.len == 1 && end.data[0] == 0;
}

/* etcd: empty range_end = the key alone; "\0" = every key >= key; else [key, range_end). */
static inline bool km_in_range(ProtobufCBinaryData k, ProtobufCBinaryData key,
                               ProtobufCBinaryData end) {
    int c = km_bcmp(k.data, k.len, key.data, key.len);
    if (end.len == 0) return c == 0;
    if (km_is_from_key(end)) return c >= 0;
    return c >= 0 && km_bcmp(k.data, k.len, end.data, end.len) < 0;
}

/* ---- the model ---------------------------------------------------------------------------- */

typedef struct km_rec {
    int k; /* index into the key table */
    int64_t main, sub;
    bool tomb;
    int64_t create, version, lease; /* 0 for a tombstone */
    uint8_t *value;
    size_t vlen;
    long prev; /* previous record of the same key, -1 if none */
} km_rec;

typedef struct km_model {
    const ProtobufCBinaryData *keys; /* sorted by bytes; every stored key is one of these */
    int nkeys;
    km_rec *rec;
    size_t nrec, cap;
    long *last;            /* per key: its newest record, -1 if none */
    int64_t rev;           /* current revision; 1 for a new store */
    int64_t compact;       /* compaction point, 0 = never */
    int64_t missing_lease; /* puts naming this lease fail with LEASE_NOT_FOUND (0: none) */
} km_model;

static inline void km_init(km_model *m, const ProtobufCBinaryData *keys, int nkeys) {
    memset(m, 0, sizeof *m);
    m->keys = keys;
    m->nkeys = nkeys;
    m->last = malloc(sizeof(long) * (size_t)nkeys);
    if (!m->last) abort();
    for (int i = 0; i < nkeys; i++)
        m->last[i] = -1;
    m->rev = 1;
}

static inline void km_free(km_model *m) {
    for (size_t i = 0; i < m->nrec; i++)
        free(m->rec[i].value);
    free(m->rec);
    free(m->last);
    memset(m, 0, sizeof *m);
}

static inline int km_key_index(const km_model *m, ProtobufCBinaryData k) {
    for (int i = 0; i < m->nkeys; i++)
        if (km_bcmp(m->keys[i].data, m->keys[i].len, k.data, k.len) == 0) return i;
    return -1;
}

/* The live record of key k at revision rev, or -1 (never written, or deleted). */
static inline long km_at(const km_model *m, int k, int64_t rev) {
    long i = m->last[k];
    while (i >= 0 && m->rec[i].main > rev)
        i = m->rec[i].prev;
    if (i < 0 || m->rec[i].tomb) return -1;
    return i;
}

static inline long km_append(km_model *m, int k, int64_t main, int64_t sub, bool tomb,
                             int64_t create, int64_t version, int64_t lease, const uint8_t *value,
                             size_t vlen) {
    if (m->nrec == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->rec = realloc(m->rec, m->cap * sizeof *m->rec);
        if (!m->rec) abort();
    }
    km_rec *r = &m->rec[m->nrec];
    memset(r, 0, sizeof *r);
    r->k = k;
    r->main = main;
    r->sub = sub;
    r->tomb = tomb;
    r->create = create;
    r->version = version;
    r->lease = lease;
    if (vlen) {
        r->value = malloc(vlen);
        if (!r->value) abort();
        memcpy(r->value, value, vlen);
        r->vlen = vlen;
    }
    r->prev = m->last[k];
    m->last[k] = (long)m->nrec;
    return (long)m->nrec++;
}

/* First record index with main >= rev (records are appended in revision order). */
static inline size_t km_first_at(const km_model *m, int64_t rev) {
    size_t lo = 0, hi = m->nrec;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->rec[mid].main < rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static inline int km_live_keys(const km_model *m) {
    int n = 0;
    for (int k = 0; k < m->nkeys; k++)
        n += km_at(m, k, m->rev) >= 0;
    return n;
}

/* ---- expected responses ------------------------------------------------------------------- */

enum { KM_RANGE = 1, KM_PUT, KM_DEL, KM_TXN };

typedef struct km_resp {
    int kind;
    int64_t rev;     /* header revision */
    bool nested_txn; /* a txn inside a txn: etcd leaves its header empty (revision 0) */
    /* range: cand[0..ncand) are the candidates after filters, sorted; the first nkvs are
     * returned. With a non-KEY sort target, etcd's sort is unstable: ties may come in any
     * order and, at the limit, any tied candidate may be chosen. */
    const Etcdserverpb__RangeRequest *rreq;
    long *cand;
    size_t ncand, nkvs;
    bool more;
    int64_t count;
    /* put */
    long prev; /* -1 = none */
    /* delete */
    int64_t deleted;
    long *prevs;
    size_t nprevs;
    /* txn */
    bool succeeded;
    struct km_resp *sub;
    size_t nsub;
} km_resp;

/* ---- range (etcd apply.go Range + mvcc rangeKeys) -------------------------------------- */

/* Compares two records by a sort target: -1, 0, 1. */
static inline int km_target_cmp(const km_model *m, int target, long a, long b) {
    const km_rec *x = &m->rec[a], *y = &m->rec[b];
    int64_t u = 0, v = 0;
    switch (target) {
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY:
        return km_bcmp(m->keys[x->k].data, m->keys[x->k].len, m->keys[y->k].data,
                       m->keys[y->k].len);
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE:
        return km_bcmp(x->value, x->vlen, y->value, y->vlen);
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION:
        u = x->version, v = y->version;
        break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE:
        u = x->create, v = y->create;
        break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD:
        u = x->main, v = y->main;
        break;
    }
    return u < v ? -1 : u > v ? 1 : 0;
}

/* etcd's Range at read revision `cur` (the header revision). Order of checks as in
 * rangeKeys: future first, then compacted. Quirks modelled from etcd 3.4.23:
 * - count is the number of keys in the range at the revision BEFORE the min/max filters;
 * - count_only returns no kvs and more=false, whatever the limit;
 * - with sort_order NONE and no filter, mvcc fetches limit+1 keys in key order and a non-KEY
 *   sort_target then sorts (ascending) only those — not the whole range;
 * - with a sort order or any filter, everything is fetched, filtered, sorted, then cut. */
static inline int km_range(const km_model *m, const Etcdserverpb__RangeRequest *r, int64_t cur,
                           km_pool *p, km_resp *out) {
    memset(out, 0, sizeof *out);
    out->kind = KM_RANGE;
    out->rreq = r;
    out->prev = -1;
    int64_t rev = r->revision;
    if (rev > cur) return KV_ERR_FUTURE_REV;
    if (rev <= 0) rev = cur;
    if (rev < m->compact) return KV_ERR_COMPACTED;
    out->rev = cur;
    long *all = km_alloc(p, sizeof(long) * (size_t)(m->nkeys + 1));
    size_t n = 0;
    for (int k = 0; k < m->nkeys; k++) {
        if (!km_in_range(m->keys[k], r->key, r->range_end)) continue;
        long i = km_at(m, k, rev);
        if (i >= 0) all[n++] = i;
    }
    out->count = (int64_t)n;
    out->cand = all;
    if (r->count_only) return KV_OK;
    bool filtered = r->min_mod_revision || r->max_mod_revision || r->min_create_revision ||
                    r->max_create_revision;
    int64_t fetch = r->limit;
    if (r->sort_order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE || filtered) fetch = 0;
    if (fetch > 0) fetch++;
    if (fetch > 0 && (size_t)fetch < n) n = (size_t)fetch;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        const km_rec *x = &m->rec[all[i]];
        if (r->max_mod_revision && x->main > r->max_mod_revision) continue;
        if (r->min_mod_revision && x->main < r->min_mod_revision) continue;
        if (r->max_create_revision && x->create > r->max_create_revision) continue;
        if (r->min_create_revision && x->create < r->min_create_revision) continue;
        all[j++] = all[i];
    }
    n = j;
    int order = r->sort_order;
    if (r->sort_target != ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY &&
        order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE)
        order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
    if (order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE) {
        int dir = order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND ? -1 : 1;
        for (size_t a = 1; a < n; a++) /* insertion sort: n is tiny */
            for (size_t b = a;
                 b > 0 && dir * km_target_cmp(m, r->sort_target, all[b - 1], all[b]) > 0; b--) {
                long t = all[b];
                all[b] = all[b - 1];
                all[b - 1] = t;
            }
    }
    out->ncand = n;
    out->nkvs = n;
    if (r->limit > 0 && n > (size_t)r->limit) {
        out->nkvs = (size_t)r->limit;
        out->more = true;
    }
    return KV_OK;
}

/* ---- writes --------------------------------------------------------------------------------- */

/* One write transaction (storeTxnWrite): every change gets main = begin + 1, sub = n++. */
typedef struct km_wtxn {
    int64_t begin;
    int64_t n;
} km_wtxn;

static inline void km_put_exec(km_model *m, km_wtxn *t, const Etcdserverpb__PutRequest *r,
                               km_pool *p, km_resp *out) {
    (void)p;
    memset(out, 0, sizeof *out);
    out->kind = KM_PUT;
    int k = km_key_index(m, r->key);
    if (k < 0) abort(); /* the generator only puts keys of the table */
    long prev = km_at(m, k, INT64_MAX);
    const uint8_t *val = r->value.data;
    size_t vlen = r->value.len;
    int64_t lease = r->lease;
    /* ignore_*: the key's value/lease as of now — inside a txn the same as before the txn,
     * since the duplicate-key rule forbids touching a put's key earlier in the txn */
    if (r->ignore_value) val = m->rec[prev].value, vlen = m->rec[prev].vlen;
    if (r->ignore_lease) lease = m->rec[prev].lease;
    int64_t main = t->begin + 1;
    int64_t create = prev >= 0 ? m->rec[prev].create : main;
    int64_t version = prev >= 0 ? m->rec[prev].version + 1 : 1;
    km_append(m, k, main, t->n++, false, create, version, lease, val, vlen);
    out->prev = r->prev_kv ? prev : -1;
    out->rev = main;
}

static inline void km_del_exec(km_model *m, km_wtxn *t, const Etcdserverpb__DeleteRangeRequest *r,
                               km_pool *p, km_resp *out) {
    memset(out, 0, sizeof *out);
    out->kind = KM_DEL;
    out->prev = -1;
    out->prevs = km_alloc(p, sizeof(long) * (size_t)(m->nkeys + 1));
    for (int k = 0; k < m->nkeys; k++) {
        if (!km_in_range(m->keys[k], r->key, r->range_end)) continue;
        long i = km_at(m, k, INT64_MAX);
        if (i < 0) continue;
        if (r->prev_kv) out->prevs[out->nprevs++] = i;
        km_append(m, k, t->begin + 1, t->n++, true, 0, 0, 0, NULL, 0);
        out->deleted++;
    }
    /* storeTxnWrite.DeleteRange: begin+1 when this or an earlier op of the txn changed
     * something, else the unchanged revision. */
    out->rev = t->n > 0 ? t->begin + 1 : t->begin;
}

/* ---- txn ---------------------------------------------------------------------------------- */

/* etcd applyCompare against the read view at `rev` (the state BEFORE the txn: etcd evaluates
 * every compare of every nested txn up front, in compareToPath). */
static inline bool km_compare(const km_model *m, const Etcdserverpb__Compare *c, int64_t rev) {
    long hit[64];
    int n = 0;
    for (int k = 0; k < m->nkeys; k++) {
        if (!km_in_range(m->keys[k], c->key, c->range_end)) continue;
        long i = km_at(m, k, rev);
        if (i >= 0) hit[n++] = i;
    }
    if (n == 0 && c->target == ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE) return false;
    static const km_rec zero = {0};
    for (int j = 0; j < (n ? n : 1); j++) {
        const km_rec *x = n ? &m->rec[hit[j]] : &zero;
        int res = 0;
        int64_t a = 0, b = 0;
        bool is_int = true;
        switch (c->target) {
        case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE: {
            ProtobufCBinaryData v = {0, NULL};
            if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE) v = c->value;
            res = km_bcmp(x->value, x->vlen, v.data, v.len);
            is_int = false;
            break;
        }
        case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
            a = x->create;
            if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION)
                b = c->create_revision;
            break;
        case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
            a = x->main;
            if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION)
                b = c->mod_revision;
            break;
        case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
            a = x->version;
            if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION) b = c->version;
            break;
        case ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE:
            a = x->lease;
            if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE) b = c->lease;
            break;
        default:
            break;
        }
        if (is_int) res = a < b ? -1 : a > b ? 1 : 0;
        bool ok = true;
        switch (c->result) {
        case ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL:
            ok = res == 0;
            break;
        case ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL:
            ok = res != 0;
            break;
        case ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER:
            ok = res > 0;
            break;
        case ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS:
            ok = res < 0;
            break;
        default:
            break;
        }
        if (!ok) return false;
    }
    return true;
}

static inline bool km_compares(const km_model *m, const Etcdserverpb__TxnRequest *t, int64_t rev) {
    for (size_t i = 0; i < t->n_compare; i++)
        if (!km_compare(m, t->compare[i], rev)) return false;
    return true;
}

static inline int km_check_op(const Etcdserverpb__RequestOp *op, int maxops);

/* v3rpc checkTxnRequest: too many ops (per level, the budget shrinking with depth), then empty
 * keys of compares, then each op. */
static inline int km_check_txn(const Etcdserverpb__TxnRequest *t, int maxops) {
    size_t opc = t->n_compare;
    if (opc < t->n_success) opc = t->n_success;
    if (opc < t->n_failure) opc = t->n_failure;
    if (opc > (size_t)maxops) return KV_ERR_TOO_MANY_OPS;
    for (size_t i = 0; i < t->n_compare; i++)
        if (t->compare[i]->key.len == 0) return KV_ERR_EMPTY_KEY;
    for (size_t i = 0; i < t->n_success; i++) {
        int e = km_check_op(t->success[i], maxops - (int)opc);
        if (e) return e;
    }
    for (size_t i = 0; i < t->n_failure; i++) {
        int e = km_check_op(t->failure[i], maxops - (int)opc);
        if (e) return e;
    }
    return KV_OK;
}

static inline int km_check_op(const Etcdserverpb__RequestOp *op, int maxops) {
    switch (op->request_case) {
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
        return op->request_range->key.len ? KV_OK : KV_ERR_EMPTY_KEY;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT: {
        const Etcdserverpb__PutRequest *r = op->request_put;
        if (!r->key.len) return KV_ERR_EMPTY_KEY;
        if (r->key.len > KV_MAX_KEY_LEN) return KV_ERR_KEY_TOO_LONG;
        if (r->ignore_value && r->value.len) return KV_ERR_VALUE_PROVIDED;
        if (r->ignore_lease && r->lease) return KV_ERR_LEASE_PROVIDED;
        return KV_OK;
    }
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
        return op->request_delete_range->key.len ? KV_OK : KV_ERR_EMPTY_KEY;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
        return km_check_txn(op->request_txn, maxops);
    default:
        return KV_ERR_KEY_NOT_FOUND; /* v3rpc checkRequestOp: an empty op */
    }
}

/* Delete intervals of v3rpc checkIntervals. */
typedef struct km_ivl {
    ProtobufCBinaryData b, e; /* e.len == 0: the point b */
} km_ivl;

typedef struct km_ivls {
    km_ivl *v;
    size_t n, cap;
} km_ivls;

static inline void km_ivls_add(km_ivls *s, km_ivl iv) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) abort();
    }
    s->v[s->n++] = iv;
}

/* adt: a point k ([k, k+"\0")) meets [b, e) iff b <= k < e. Quirk: etcd passes range_end
 * raw, so a "\0" (from-key) delete is the interval [key, "\0"), which meets nothing: in
 * etcd 3.4 a from-key delete never conflicts with a put of the same txn. The generator
 * does not put "\0" deletes in txns, so the engine may treat them either way. */
static inline bool km_ivls_hit(const km_ivls *s, ProtobufCBinaryData k) {
    for (size_t i = 0; i < s->n; i++) {
        const km_ivl *iv = &s->v[i];
        if (iv->e.len == 0) {
            if (km_bcmp(iv->b.data, iv->b.len, k.data, k.len) == 0) return true;
        } else if (km_bcmp(iv->b.data, iv->b.len, k.data, k.len) <= 0 &&
                   km_bcmp(k.data, k.len, iv->e.data, iv->e.len) < 0) {
            return true;
        }
    }
    return false;
}

/* v3rpc checkIntervals, faithfully (including its asymmetry: a child txn's puts are checked
 * against the deletes of this level and of EARLIER sibling txns only; this level's puts
 * against all of them). Puts are a bitmask over the key table. */
static inline int km_intervals(const km_model *m, Etcdserverpb__RequestOp *const *ops, size_t n,
                               uint64_t *puts_out, km_ivls *dels) {
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE)
            continue;
        const Etcdserverpb__DeleteRangeRequest *d = ops[i]->request_delete_range;
        km_ivls_add(dels, (km_ivl){d->key, d->range_end});
    }
    uint64_t puts = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN) continue;
        const Etcdserverpb__TxnRequest *t = ops[i]->request_txn;
        uint64_t pt = 0, pe = 0;
        km_ivls dt = {0}, de = {0};
        int e = km_intervals(m, t->success, t->n_success, &pt, &dt);
        if (!e) e = km_intervals(m, t->failure, t->n_failure, &pe, &de);
        for (int k = 0; !e && k < m->nkeys; k++) {
            uint64_t bit = (uint64_t)1 << k;
            if (pt & bit) {
                if ((puts & bit) || km_ivls_hit(dels, m->keys[k])) e = KV_ERR_DUPLICATE_KEY;
                puts |= bit;
            }
        }
        for (int k = 0; !e && k < m->nkeys; k++) {
            uint64_t bit = (uint64_t)1 << k;
            if (pe & bit) {
                if (((puts & bit) && !(pt & bit)) || km_ivls_hit(dels, m->keys[k]))
                    e = KV_ERR_DUPLICATE_KEY;
                puts |= bit;
            }
        }
        for (size_t j = 0; j < dt.n; j++)
            km_ivls_add(dels, dt.v[j]);
        for (size_t j = 0; j < de.n; j++)
            km_ivls_add(dels, de.v[j]);
        free(dt.v);
        free(de.v);
        if (e) return e;
    }
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT) continue;
        int k = km_key_index(m, ops[i]->request_put->key);
        if (k < 0) abort();
        uint64_t bit = (uint64_t)1 << k;
        if ((puts & bit) || km_ivls_hit(dels, m->keys[k])) return KV_ERR_DUPLICATE_KEY;
        puts |= bit;
    }
    *puts_out = puts;
    return KV_OK;
}

/* apply.go checkRequests along the chosen path, against the state before the txn: first
 * checkPut over the whole path (ignore_value/ignore_lease need the key to exist), then
 * checkRange (revision 0 is fine, > current is future, < compaction point is compacted). */
static inline int km_txn_check_path(const km_model *m, const Etcdserverpb__TxnRequest *t,
                                    int64_t begin, bool puts) {
    bool ok = km_compares(m, t, begin);
    size_t n = ok ? t->n_success : t->n_failure;
    Etcdserverpb__RequestOp *const *ops = ok ? t->success : t->failure;
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN) {
            int e = km_txn_check_path(m, ops[i]->request_txn, begin, puts);
            if (e) return e;
        } else if (puts && ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT) {
            const Etcdserverpb__PutRequest *p = ops[i]->request_put;
            if ((p->ignore_value || p->ignore_lease) &&
                km_at(m, km_key_index(m, p->key), begin) < 0)
                return KV_ERR_KEY_NOT_FOUND;
            if (p->lease && p->lease == m->missing_lease) return KV_ERR_LEASE_NOT_FOUND;
        } else if (!puts &&
                   ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE) {
            int64_t rev = ops[i]->request_range->revision;
            if (rev == 0) continue;
            if (rev > begin) return KV_ERR_FUTURE_REV;
            if (rev < m->compact) return KV_ERR_COMPACTED;
        }
    }
    return KV_OK;
}

static inline void km_txn_exec(km_model *m, km_wtxn *w, const Etcdserverpb__TxnRequest *t,
                               bool nested, km_pool *p, km_resp *out) {
    memset(out, 0, sizeof *out);
    out->kind = KM_TXN;
    out->prev = -1;
    out->nested_txn = nested;
    bool ok = km_compares(m, t, w->begin);
    size_t n = ok ? t->n_success : t->n_failure;
    Etcdserverpb__RequestOp *const *ops = ok ? t->success : t->failure;
    out->succeeded = ok;
    out->nsub = n;
    out->sub = km_alloc(p, sizeof(km_resp) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        const Etcdserverpb__RequestOp *op = ops[i];
        switch (op->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
            /* storeTxnWrite.Range reads its own writes: at begin+1 once something changed */
            if (km_range(m, op->request_range, w->begin + (w->n > 0), p, &out->sub[i])) abort();
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
            km_put_exec(m, w, op->request_put, p, &out->sub[i]);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
            km_del_exec(m, w, op->request_delete_range, p, &out->sub[i]);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
            km_txn_exec(m, w, op->request_txn, true, p, &out->sub[i]);
            break;
        default:
            abort();
        }
    }
    /* apply.go Txn: the top-level header gets txn.Rev() (+1 if it changed anything); a nested
     * txn's header stays empty (newTxnResp allocates it, nothing fills it). */
    out->rev = nested ? 0 : w->begin + (w->n > 0);
}

/* Applies one request of a kv_apply group. Returns its error (KV_OK, a kv_code, or
 * KM_ERR_ANY) and fills *out on success. A request that changes something advances m->rev. */
static inline int km_apply_op(km_model *m, const Etcdserverpb__RequestOp *op, km_pool *p,
                              km_resp *out) {
    memset(out, 0, sizeof *out);
    int e = km_check_op(op, KV_MAX_TXN_OPS);
    if (e) return e;
    km_wtxn w = {m->rev, 0};
    switch (op->request_case) {
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
        return km_range(m, op->request_range, m->rev, p, out);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT: {
        const Etcdserverpb__PutRequest *r = op->request_put;
        /* apply.go Put outside a txn: the lease first, then the previous kv */
        if (r->lease && r->lease == m->missing_lease) return KV_ERR_LEASE_NOT_FOUND;
        if ((r->ignore_value || r->ignore_lease) && km_at(m, km_key_index(m, r->key), m->rev) < 0)
            return KV_ERR_KEY_NOT_FOUND;
        km_put_exec(m, &w, r, p, out);
        break;
    }
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
        km_del_exec(m, &w, op->request_delete_range, p, out);
        break;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN: {
        const Etcdserverpb__TxnRequest *t = op->request_txn;
        uint64_t puts;
        km_ivls d1 = {0}, d2 = {0};
        e = km_intervals(m, t->success, t->n_success, &puts, &d1);
        if (!e) e = km_intervals(m, t->failure, t->n_failure, &puts, &d2);
        free(d1.v);
        free(d2.v);
        if (!e) e = km_txn_check_path(m, t, m->rev, true);
        if (!e) e = km_txn_check_path(m, t, m->rev, false);
        if (e) return e;
        km_txn_exec(m, &w, t, false, p, out);
        break;
    }
    default:
        return KV_ERR_INVALID;
    }
    if (w.n > 0) m->rev++;
    return KV_OK;
}

/* etcd Compact: <= compaction point -> compacted, > current -> future. */
static inline int km_compact(km_model *m, int64_t rev) {
    if (rev <= m->compact) return KV_ERR_COMPACTED;
    if (rev > m->rev) return KV_ERR_FUTURE_REV;
    m->compact = rev;
    return KV_OK;
}

#endif
