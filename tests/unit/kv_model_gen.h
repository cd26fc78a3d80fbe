/* kv_model_gen.h — the random request generator of test_kv_model.c: keys and spans, values,
 * leases, read revisions, ranges, puts, deletes, compares, txns (nested, large, with duplicate
 * keys) and deliberately invalid requests, all drawn from the run's splitmix64 RNG.
 *
 * Key decisions:
 * - Part of test_kv_model.c, split out for size only: included by that file alone, after
 *   kv_model_run.h. Requests are allocated from the run's per-op pool (r->rq), freed in bulk.
 * - Deterministic for a seed: the same seed always produces the same operation sequence.
 */
#ifndef RELIST_KV_MODEL_GEN_H
#define RELIST_KV_MODEL_GEN_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv.h"
#include "kv_model.h"
#include "kv_model_run.h"

/* ---- request generation ------------------------------------------------------------------ */

static Etcdserverpb__RequestOp *new_op(run *r) {
    Etcdserverpb__RequestOp *o = km_alloc(&r->rq, sizeof *o);
    etcdserverpb__request_op__init(o);
    return o;
}

static ProtobufCBinaryData rand_key(run *r) {
    return r->keys[rn(r, NKEYS)];
}
static ProtobufCBinaryData rand_probe(run *r) {
    return r->probes[rn(r, NPROBES)];
}

/* etcdctl's prefix end: last byte < 0xff incremented, trailing 0xff dropped; all-0xff = "\0". */
static ProtobufCBinaryData prefix_end(run *r, ProtobufCBinaryData k) {
    uint8_t *e = km_alloc(&r->rq, k.len + 1);
    memcpy(e, k.data, k.len);
    for (size_t n = k.len; n > 0; n--) {
        if (e[n - 1] < 0xff) {
            e[n - 1]++;
            return bd(e, n);
        }
    }
    e[0] = 0;
    return bd(e, 1);
}

static ProtobufCBinaryData from_key_end(void) {
    return bd("", 1); /* the byte 0 */
}

/* A key span: single key, prefix, [a, b), from-key or everything. */
static void gen_span(run *r, ProtobufCBinaryData *key, ProtobufCBinaryData *end, bool from_key,
                     bool inverted) {
    int c = (int)rn(r, 100);
    *end = bd(NULL, 0);
    if (c < 35) {
        *key = pct(r, 85) ? rand_key(r) : rand_probe(r);
    } else if (c < 62) {
        *key = rand_probe(r);
        *end = prefix_end(r, *key);
    } else if (c < 82 || !from_key) {
        *key = rand_probe(r);
        *end = rand_probe(r);
        if (!inverted || pct(r, 90)) {
            if (km_bcmp(key->data, key->len, end->data, end->len) > 0) {
                ProtobufCBinaryData t = *key;
                *key = *end;
                *end = t;
            }
            if (km_bcmp(key->data, key->len, end->data, end->len) == 0) *end = prefix_end(r, *key);
        }
    } else if (c < 93) {
        *key = rand_probe(r);
        *end = from_key_end();
    } else {
        *key = bd("", 1); /* "\0" .. "\0": the whole key space */
        *end = from_key_end();
    }
}

static ProtobufCBinaryData gen_value(run *r) {
    size_t n;
    int c = (int)rn(r, 100);
    if (c < 5)
        n = 0;
    else if (c < 8)
        n = (size_t)rin(r, 1500, 4000);
    else
        n = (size_t)rin(r, 1, 10);
    uint8_t *v = km_alloc(&r->rq, n + 1);
    for (size_t i = 0; i < n; i++)
        v[i] = (uint8_t)("abc"[rn(r, 3)]);
    return bd(v, n);
}

/* Leases 1 and 2 exist, 3 does not (see lease_exists). */
static int64_t gen_lease(run *r) {
    return pct(r, 70) ? 0 : pct(r, 92) ? rin(r, 1, 2) : 3;
}

/* A revision for a historical read: mostly valid, sometimes compacted or future. */
static int64_t gen_read_rev(run *r, int p_nonzero) {
    km_model *m = &r->m;
    if (!pct(r, p_nonzero)) return 0;
    int c = (int)rn(r, 100);
    if (c < 10 && m->compact > 1) return rin(r, 1, m->compact - 1);
    if (c < 20) return m->rev + rin(r, 1, 3);
    if (c < 30 && m->compact) return m->compact;
    return rin(r, m->compact > 1 ? m->compact : 1, m->rev);
}

static Etcdserverpb__RangeRequest *gen_range_req(run *r, int p_hist) {
    Etcdserverpb__RangeRequest *q = km_alloc(&r->rq, sizeof *q);
    etcdserverpb__range_request__init(q);
    gen_span(r, &q->key, &q->range_end, true, true);
    if (pct(r, 45)) q->limit = rin(r, 1, 5);
    q->revision = gen_read_rev(r, p_hist);
    int c = (int)rn(r, 100);
    q->sort_order = c < 50   ? ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE
                    : c < 75 ? ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND
                             : ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    q->sort_target = pct(r, 50) ? ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY
                                : (Etcdserverpb__RangeRequest__SortTarget)rin(r, 1, 4);
    q->keys_only = pct(r, 15);
    q->count_only = pct(r, 8);
    int64_t top = r->m.rev + 1;
    if (pct(r, 8)) q->min_mod_revision = rin(r, 1, top);
    if (pct(r, 8)) q->max_mod_revision = rin(r, 1, top);
    if (pct(r, 8)) q->min_create_revision = rin(r, 1, top);
    if (pct(r, 8)) q->max_create_revision = rin(r, 1, top);
    return q;
}

static Etcdserverpb__RequestOp *gen_range(run *r, int p_hist) {
    Etcdserverpb__RequestOp *o = new_op(r);
    o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    o->request_range = gen_range_req(r, p_hist);
    return o;
}

/* A put of key index k (-1: random), sometimes with ignore_value/ignore_lease (etcd: the key
 * must exist — before the txn, for a put inside one). */
static Etcdserverpb__RequestOp *gen_put(run *r, int k, bool top) {
    Etcdserverpb__RequestOp *o = new_op(r);
    Etcdserverpb__PutRequest *p = km_alloc(&r->rq, sizeof *p);
    etcdserverpb__put_request__init(p);
    o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    o->request_put = p;
    p->key = k >= 0 ? r->keys[k] : rand_key(r);
    p->value = gen_value(r);
    p->lease = gen_lease(r);
    p->prev_kv = pct(r, 50);
    if (pct(r, top ? 5 : 1)) {
        p->ignore_value = true;
        p->value = bd(NULL, 0);
    }
    if (pct(r, top ? 4 : 1)) {
        p->ignore_lease = true;
        p->lease = 0;
    }
    return o;
}

static Etcdserverpb__RequestOp *gen_delete(run *r, int k, bool top) {
    Etcdserverpb__RequestOp *o = new_op(r);
    Etcdserverpb__DeleteRangeRequest *d = km_alloc(&r->rq, sizeof *d);
    etcdserverpb__delete_range_request__init(d);
    o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    o->request_delete_range = d;
    d->prev_kv = pct(r, 50);
    if (top) {
        gen_span(r, &d->key, &d->range_end, true, true);
    } else if (k >= 0) {
        d->key = r->keys[k];
    } else { /* a prefix delete inside a txn (no "\0": see km_ivls_hit) */
        d->key = rand_probe(r);
        d->range_end = prefix_end(r, d->key);
    }
    return o;
}

/* A compare that is true about half of the time: its operand is drawn near the key's current
 * state. */
static Etcdserverpb__Compare *gen_compare(run *r) {
    km_model *m = &r->m;
    Etcdserverpb__Compare *c = km_alloc(&r->rq, sizeof *c);
    etcdserverpb__compare__init(c);
    int k = (int)rn(r, NKEYS);
    int how = (int)rn(r, 100);
    c->key = how < 5 ? rand_probe(r) : r->keys[k];
    if (how >= 5 && how < 15) c->range_end = prefix_end(r, rand_probe(r));
    if (c->range_end.len &&
        km_bcmp(c->key.data, c->key.len, c->range_end.data, c->range_end.len) >= 0)
        c->range_end = prefix_end(r, c->key);
    c->target = (Etcdserverpb__Compare__CompareTarget)rn(r, 5);
    c->result = (Etcdserverpb__Compare__CompareResult)rn(r, 4);
    long i = km_at(m, k, m->rev);
    const km_rec *x = i >= 0 ? &m->rec[i] : NULL;
    int64_t d = rin(r, -1, 1) * (pct(r, 50) ? 0 : 1);
    switch (c->target) {
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
        c->version = (x ? x->version : 0) + d;
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
        c->create_revision = (x ? x->create : 0) + d;
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        c->mod_revision = (x ? x->main : 0) + d;
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE:
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
        c->value = x && pct(r, 60) ? bd(x->value, x->vlen) : gen_value(r);
        if (c->value.len > 16) c->value.len = 16; /* a prefix of a big value: LESS/GREATER */
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE:
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
        c->lease = x && pct(r, 60) ? x->lease : gen_lease(r);
        break;
    default:
        break;
    }
    return c;
}

/* Picks a key for a put/delete inside a txn: mostly one not yet used in this txn tree, so
 * that most txns are valid; sometimes any key, which makes etcd's duplicate-key rule fire. */
static int pick_txn_key(run *r, uint64_t *used) {
    int k = (int)rn(r, NKEYS);
    if (pct(r, 92))
        for (int t = 0; t < NKEYS && (*used >> k & 1); t++)
            k = (k + 1) % NKEYS;
    *used |= (uint64_t)1 << k;
    return k;
}

static Etcdserverpb__RequestOp *gen_txn_op(run *r, int depth, uint64_t *used);

static Etcdserverpb__RequestOp **gen_txn_ops(run *r, size_t n, int depth, uint64_t *used) {
    Etcdserverpb__RequestOp **v = km_alloc(&r->rq, sizeof *v * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        int c = (int)rn(r, 100);
        if (c < 38)
            v[i] = gen_put(r, pick_txn_key(r, used), false);
        else if (c < 53)
            v[i] = gen_delete(r, pick_txn_key(r, used), false);
        else if (c < 58)
            v[i] = gen_delete(r, -1, false);
        else if (c < 85 || depth >= 3)
            v[i] = gen_range(r, 25);
        else
            v[i] = gen_txn_op(r, depth + 1, used);
    }
    return v;
}

static Etcdserverpb__RequestOp *gen_txn_op(run *r, int depth, uint64_t *used) {
    Etcdserverpb__RequestOp *o = new_op(r);
    Etcdserverpb__TxnRequest *t = km_alloc(&r->rq, sizeof *t);
    etcdserverpb__txn_request__init(t);
    o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    o->request_txn = t;
    t->n_compare = (size_t)rn(r, 4);
    t->compare = km_alloc(&r->rq, sizeof *t->compare * (t->n_compare + 1));
    for (size_t i = 0; i < t->n_compare; i++)
        t->compare[i] = gen_compare(r);
    t->n_success = (size_t)rn(r, 5);
    t->success = gen_txn_ops(r, t->n_success, depth, used);
    t->n_failure = (size_t)rn(r, 4);
    t->failure = gen_txn_ops(r, t->n_failure, depth, used);
    return o;
}

/* A txn with more than KV_MAX_TXN_OPS ops (or exactly the maximum). */
static Etcdserverpb__RequestOp *gen_big_txn(run *r, size_t n) {
    Etcdserverpb__RequestOp *o = new_op(r);
    Etcdserverpb__TxnRequest *t = km_alloc(&r->rq, sizeof *t);
    etcdserverpb__txn_request__init(t);
    o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    o->request_txn = t;
    t->n_success = n;
    t->success = km_alloc(&r->rq, sizeof *t->success * n);
    for (size_t i = 0; i < n; i++) {
        t->success[i] = gen_range(r, 0);
        t->success[i]->request_range->count_only = true;
    }
    return o;
}

/* Makes one request invalid in a way etcd rejects before applying anything. */
static Etcdserverpb__RequestOp *gen_invalid(run *r) {
    int c = (int)rn(r, 100);
    if (c < 25) {
        Etcdserverpb__RequestOp *o = gen_put(r, -1, false);
        o->request_put->key = bd(NULL, 0);
        return o;
    }
    if (c < 35) {
        Etcdserverpb__RequestOp *o = gen_delete(r, -1, true);
        o->request_delete_range->key = bd(NULL, 0);
        return o;
    }
    if (c < 45) {
        Etcdserverpb__RequestOp *o = gen_range(r, 0);
        o->request_range->key = bd(NULL, 0);
        return o;
    }
    if (c < 55) { /* key longer than LMDB allows */
        Etcdserverpb__RequestOp *o = gen_put(r, -1, false);
        uint8_t *k = km_alloc(&r->rq, KV_MAX_KEY_LEN + 40);
        memset(k, 'k', KV_MAX_KEY_LEN + 40);
        k[0] = '/';
        o->request_put->key = bd(k, KV_MAX_KEY_LEN + 1 + (size_t)rn(r, 39));
        return o;
    }
    if (c < 60) return gen_big_txn(r, KV_MAX_TXN_OPS + 1);
    if (c < 66) { /* ignore_value with a value, ignore_lease with a lease */
        Etcdserverpb__RequestOp *o = gen_put(r, -1, false);
        o->request_put->ignore_value = o->request_put->ignore_lease = false;
        if (pct(r, 50))
            o->request_put->ignore_value = true, o->request_put->value = bds("v");
        else
            o->request_put->ignore_lease = true, o->request_put->lease = 7;
        return o;
    }
    if (c < 70) { /* a txn holding an empty RequestOp */
        uint64_t used = 0;
        Etcdserverpb__RequestOp *o = gen_txn_op(r, 1, &used);
        Etcdserverpb__TxnRequest *t = o->request_txn;
        Etcdserverpb__RequestOp **v = km_alloc(&r->rq, sizeof *v * (t->n_failure + 1));
        memcpy(v, t->failure, sizeof *v * t->n_failure);
        v[t->n_failure++] = new_op(r);
        t->failure = v;
        return o;
    }
    /* a txn putting one key twice (or put + delete of it), possibly through a nested txn */
    uint64_t used = 0;
    Etcdserverpb__RequestOp *o = gen_txn_op(r, 1, &used);
    Etcdserverpb__TxnRequest *t = o->request_txn;
    int k = (int)rn(r, NKEYS);
    Etcdserverpb__RequestOp *second = pct(r, 50) ? gen_put(r, k, false) : gen_delete(r, k, false);
    if (pct(r, 30)) {
        Etcdserverpb__RequestOp *n = new_op(r);
        Etcdserverpb__TxnRequest *nt = km_alloc(&r->rq, sizeof *nt);
        etcdserverpb__txn_request__init(nt);
        n->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
        n->request_txn = nt;
        nt->n_success = 1;
        nt->success = km_alloc(&r->rq, sizeof *nt->success);
        nt->success[0] = second;
        second = n;
    }
    Etcdserverpb__RequestOp **v = km_alloc(&r->rq, sizeof *v * (t->n_success + 2));
    memcpy(v, t->success, sizeof *v * t->n_success);
    v[t->n_success] = gen_put(r, k, false);
    v[t->n_success + 1] = second;
    t->success = v;
    t->n_success += 2;
    return o;
}

#endif
