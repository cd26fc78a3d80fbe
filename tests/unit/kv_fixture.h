/* kv_fixture.h — shared by the MVCC engine suites (test_kv_engine.c, test_kv_txn.c,
 * test_kv_compact.c): a fresh no_sync store per test in a temporary dir (setup/teardown), and
 * the request helpers they all use: put/delete/get with assertions, the whole change feed
 * collected into an evlog, the keys of a range as one string, and txn request-op builders.
 *
 * Key decisions:
 * - Header-only (static inline): each suite stays one executable; a helper a suite does not use
 *   costs nothing.
 * - no_sync: durability is test_kv_open's subject. cluster_id 11 / member_id 22 so response
 *   headers are checkable.
 */
#ifndef RELIST_KV_FIXTURE_H
#define RELIST_KV_FIXTURE_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv.h"
#include "testutil.h"

typedef struct fx {
    char *dir;
    kv_store *s;
    kv_arena *a;
} fx;

static inline int setup(void **state) {
    fx *f = calloc(1, sizeof(*f));
    f->dir = tu_mkdtemp("kv-engine");
    kv_options o = {.map_size = 256u << 20, .no_sync = true, .cluster_id = 11, .member_id = 22};
    kv_err e;
    if (kv_open(f->dir, &o, &f->s, &e) != KV_OK) {
        fprintf(stderr, "open: %s\n", e.msg);
        return -1;
    }
    f->a = kv_arena_new();
    *state = f;
    return 0;
}

static inline int teardown(void **state) {
    fx *f = *state;
    kv_close(f->s);
    kv_arena_free(f->a);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

/* ---- request helpers ---- */

static inline ProtobufCBinaryData B(const char *s) {
    ProtobufCBinaryData b = {strlen(s), (uint8_t *)s};
    return b;
}
static const ProtobufCBinaryData FROM_KEY = {1, (uint8_t *)"\0"};

static inline int64_t put_lease(fx *f, const char *k, const char *v, int64_t lease) {
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    r.key = B(k);
    r.value = B(v);
    r.lease = lease;
    Etcdserverpb__PutResponse *resp;
    kv_err e;
    assert_int_equal(kv_put(f->s, &r, f->a, &resp, &e), KV_OK);
    return resp->header->revision;
}

static inline int64_t put(fx *f, const char *k, const char *v) {
    return put_lease(f, k, v, 0);
}

static inline Etcdserverpb__DeleteRangeResponse *del(fx *f, const char *k, ProtobufCBinaryData end,
                                                     bool prev) {
    Etcdserverpb__DeleteRangeRequest r = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    r.key = B(k);
    r.range_end = end;
    r.prev_kv = prev;
    Etcdserverpb__DeleteRangeResponse *resp;
    kv_err e;
    assert_int_equal(kv_delete_range(f->s, &r, f->a, &resp, &e), KV_OK);
    return resp;
}

static inline Etcdserverpb__RangeResponse *range_req(fx *f, const Etcdserverpb__RangeRequest *r,
                                                     int want) {
    Etcdserverpb__RangeResponse *resp = NULL;
    kv_err e;
    int rc = kv_range(f->s, r, f->a, &resp, &e);
    assert_int_equal(rc, want);
    if (want) assert_null(resp);
    return resp;
}

static inline Etcdserverpb__RangeResponse *get(fx *f, const char *k, int64_t rev) {
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key = B(k);
    r.revision = rev;
    return range_req(f, &r, KV_OK);
}

static inline Etcdserverpb__RangeResponse *get_range(fx *f, const char *k, ProtobufCBinaryData end,
                                                     int64_t rev) {
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key = B(k);
    r.range_end = end;
    r.revision = rev;
    return range_req(f, &r, KV_OK);
}

static inline void assert_kv(const Mvccpb__KeyValue *kv, const char *k, const char *v,
                             int64_t create, int64_t mod, int64_t version) {
    assert_non_null(kv);
    assert_int_equal(kv->key.len, strlen(k));
    assert_memory_equal(kv->key.data, k, strlen(k));
    assert_int_equal(kv->value.len, strlen(v));
    if (*v) assert_memory_equal(kv->value.data, v, strlen(v));
    assert_int_equal(kv->create_revision, create);
    assert_int_equal(kv->mod_revision, mod);
    assert_int_equal(kv->version, version);
}

static inline bool key_is(const Mvccpb__KeyValue *kv, const char *k) {
    return kv->key.len == strlen(k) && memcmp(kv->key.data, k, kv->key.len) == 0;
}

static inline int64_t cur_rev(fx *f) {
    kv_status st;
    kv_status_get(f->s, &st);
    return st.revision;
}

/* ---- the change feed, collected ---- */

typedef struct evlog {
    int n;
    int type[64];
    int64_t main[64], sub[64];
    char key[64][16];
    char prev_val[64][16];
    bool has_prev[64];
    int64_t revs[16];
    int commits;
} evlog;

static inline int feed_collect(void *ud, const kv_event *ev) {
    evlog *l = ud;
    assert_true(l->n < 64);
    l->type[l->n] = ev->type;
    l->main[l->n] = ev->main;
    l->sub[l->n] = ev->sub;
    snprintf(l->key[l->n], 16, "%.*s", (int)ev->key_len, (const char *)ev->key);
    l->has_prev[l->n] = ev->prev_kv != NULL;
    l->prev_val[l->n][0] = 0;
    if (ev->prev_kv) {
        Mvccpb__KeyValue *p = mvccpb__key_value__unpack(NULL, ev->prev_kv_len, ev->prev_kv);
        assert_non_null(p);
        snprintf(l->prev_val[l->n], 16, "%.*s", (int)p->value.len, (const char *)p->value.data);
        mvccpb__key_value__free_unpacked(p, NULL);
    }
    Mvccpb__KeyValue *kv = mvccpb__key_value__unpack(NULL, ev->kv_len, ev->kv);
    assert_non_null(kv);
    assert_int_equal(kv->mod_revision, ev->main);
    if (ev->type == MVCCPB__EVENT__EVENT_TYPE__DELETE) {
        assert_int_equal(kv->version, 0);
        assert_int_equal(kv->create_revision, 0);
        assert_int_equal(kv->value.len, 0);
    }
    mvccpb__key_value__free_unpacked(kv, NULL);
    l->n++;
    return 0;
}

static inline void feed_all(fx *f, int64_t from, evlog *l, bool prev) {
    memset(l, 0, sizeof(*l));
    int64_t next;
    kv_err e;
    assert_int_equal(kv_feed_read(f->s, from, 0, (const uint8_t *)"\0", 1, (const uint8_t *)"\0", 1,
                                  prev, 0, 0, feed_collect, l, &next, &e),
                     KV_OK);
    assert_int_equal(next, cur_rev(f) + 1);
}

/* ---- range results ---- */

static inline void expect_keys(Etcdserverpb__RangeResponse *r, const char *keys) {
    char buf[128] = "";
    for (size_t i = 0; i < r->n_kvs; i++) {
        if (i) strcat(buf, ",");
        strncat(buf, (const char *)r->kvs[i]->key.data, r->kvs[i]->key.len);
    }
    assert_string_equal(buf, keys);
}

/* ---- txn request builders ---- */

static inline Etcdserverpb__RequestOp *
op_put(Etcdserverpb__RequestOp *op, Etcdserverpb__PutRequest *p, const char *k, const char *v) {
    etcdserverpb__request_op__init(op);
    etcdserverpb__put_request__init(p);
    p->key = B(k);
    p->value = B(v);
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op->request_put = p;
    return op;
}

static inline Etcdserverpb__RequestOp *op_del(Etcdserverpb__RequestOp *op,
                                              Etcdserverpb__DeleteRangeRequest *d, const char *k,
                                              ProtobufCBinaryData end) {
    etcdserverpb__request_op__init(op);
    etcdserverpb__delete_range_request__init(d);
    d->key = B(k);
    d->range_end = end;
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    op->request_delete_range = d;
    return op;
}

static inline Etcdserverpb__RequestOp *op_get(Etcdserverpb__RequestOp *op,
                                              Etcdserverpb__RangeRequest *r, const char *k) {
    etcdserverpb__request_op__init(op);
    etcdserverpb__range_request__init(r);
    r->key = B(k);
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    op->request_range = r;
    return op;
}

static inline Etcdserverpb__RequestOp *op_txn(Etcdserverpb__RequestOp *op,
                                              Etcdserverpb__TxnRequest *t) {
    etcdserverpb__request_op__init(op);
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    op->request_txn = t;
    return op;
}

#endif
