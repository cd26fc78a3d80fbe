/* test_kv_engine.c — the MVCC engine's operations through kv.h: put/delete/range/txn semantics
 * as etcd 3.4 defines them, group commit isolation, compaction boundaries, the change feed and
 * the commit callback. Stores are opened with no_sync (durability is test_kv_open's subject).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
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

static int setup(void **state) {
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

static int teardown(void **state) {
    fx *f = *state;
    kv_close(f->s);
    kv_arena_free(f->a);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

/* ---- request helpers ---- */

static ProtobufCBinaryData B(const char *s) {
    ProtobufCBinaryData b = {strlen(s), (uint8_t *)s};
    return b;
}
static const ProtobufCBinaryData FROM_KEY = {1, (uint8_t *)"\0"};

static int64_t put(fx *f, const char *k, const char *v) {
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    r.key = B(k);
    r.value = B(v);
    Etcdserverpb__PutResponse *resp;
    kv_err e;
    int rc = kv_put(f->s, &r, f->a, &resp, &e);
    assert_int_equal(rc, KV_OK);
    return resp->header->revision;
}

static int64_t put_lease(fx *f, const char *k, const char *v, int64_t lease) {
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    r.key = B(k);
    r.value = B(v);
    r.lease = lease;
    Etcdserverpb__PutResponse *resp;
    kv_err e;
    assert_int_equal(kv_put(f->s, &r, f->a, &resp, &e), KV_OK);
    return resp->header->revision;
}

static Etcdserverpb__DeleteRangeResponse *del(fx *f, const char *k, ProtobufCBinaryData end,
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

static Etcdserverpb__RangeResponse *range_req(fx *f, const Etcdserverpb__RangeRequest *r,
                                              int want) {
    Etcdserverpb__RangeResponse *resp = NULL;
    kv_err e;
    int rc = kv_range(f->s, r, f->a, &resp, &e);
    assert_int_equal(rc, want);
    if (want) assert_null(resp);
    return resp;
}

static Etcdserverpb__RangeResponse *get(fx *f, const char *k, int64_t rev) {
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key = B(k);
    r.revision = rev;
    return range_req(f, &r, KV_OK);
}

static Etcdserverpb__RangeResponse *get_range(fx *f, const char *k, ProtobufCBinaryData end,
                                              int64_t rev) {
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key = B(k);
    r.range_end = end;
    r.revision = rev;
    return range_req(f, &r, KV_OK);
}

static void assert_kv(const Mvccpb__KeyValue *kv, const char *k, const char *v, int64_t create,
                      int64_t mod, int64_t version) {
    assert_non_null(kv);
    assert_int_equal(kv->key.len, strlen(k));
    assert_memory_equal(kv->key.data, k, strlen(k));
    assert_int_equal(kv->value.len, strlen(v));
    if (*v) assert_memory_equal(kv->value.data, v, strlen(v));
    assert_int_equal(kv->create_revision, create);
    assert_int_equal(kv->mod_revision, mod);
    assert_int_equal(kv->version, version);
}

static bool key_is(const Mvccpb__KeyValue *kv, const char *k) {
    return kv->key.len == strlen(k) && memcmp(kv->key.data, k, kv->key.len) == 0;
}

static int64_t cur_rev(fx *f) {
    kv_status st;
    kv_status_get(f->s, &st);
    return st.revision;
}

/* ---- basics ---- */

static void test_new_store(void **state) {
    fx *f = *state;
    kv_status st;
    kv_status_get(f->s, &st);
    assert_int_equal(st.revision, 1);
    assert_int_equal(st.keys, 0);
    assert_int_equal(st.compact_revision, 0);
    assert_int_equal(st.cluster_id, 11);
    assert_int_equal(st.member_id, 22);
    Etcdserverpb__RangeResponse *r = get(f, "a", 0);
    assert_int_equal(r->n_kvs, 0);
    assert_int_equal(r->count, 0);
    assert_int_equal(r->header->revision, 1);
    assert_int_equal(r->header->cluster_id, 11);
    assert_int_equal(r->header->member_id, 22);
    assert_int_equal(r->header->raft_term, 1);
    assert_int_equal(put(f, "a", "1"), 2);
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    kv_fill_header(f->s, &h, 7);
    assert_int_equal(h.revision, 7);
    assert_int_equal(h.cluster_id, 11);
}

static void test_versions_and_generations(void **state) {
    fx *f = *state;
    assert_int_equal(put(f, "k", "v1"), 2);
    assert_int_equal(put(f, "k", "v2"), 3);
    assert_kv(get(f, "k", 0)->kvs[0], "k", "v2", 2, 3, 2);
    Etcdserverpb__DeleteRangeResponse *d = del(f, "k", (ProtobufCBinaryData){0, NULL}, true);
    assert_int_equal(d->deleted, 1);
    assert_int_equal(d->header->revision, 4);
    assert_int_equal(d->n_prev_kvs, 1);
    assert_kv(d->prev_kvs[0], "k", "v2", 2, 3, 2);
    assert_int_equal(get(f, "k", 0)->n_kvs, 0);
    assert_int_equal(put(f, "k", "v3"), 5);
    assert_kv(get(f, "k", 0)->kvs[0], "k", "v3", 5, 5, 1); /* new generation */
    /* history across the delete and re-create */
    assert_kv(get(f, "k", 2)->kvs[0], "k", "v1", 2, 2, 1);
    assert_kv(get(f, "k", 3)->kvs[0], "k", "v2", 2, 3, 2);
    assert_int_equal(get(f, "k", 4)->n_kvs, 0);
    assert_int_equal(get(f, "k", 1)->n_kvs, 0);
    Etcdserverpb__RangeResponse *r = get(f, "k", 3);
    assert_int_equal(r->header->revision, 5); /* header = current revision */
    /* a delete matching nothing takes no revision */
    d = del(f, "nope", (ProtobufCBinaryData){0, NULL}, false);
    assert_int_equal(d->deleted, 0);
    assert_int_equal(d->header->revision, 5);
    assert_int_equal(cur_rev(f), 5);
    /* future revision */
    Etcdserverpb__RangeRequest rr = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rr.key = B("k");
    rr.revision = 6;
    range_req(f, &rr, KV_ERR_FUTURE_REV);
}

static bool no_leases(void *ud, int64_t lease) {
    (void)ud;
    return lease == 42;
}

static void test_put_options_and_errors(void **state) {
    fx *f = *state;
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__PutResponse *resp;
    kv_err e;
    /* ignore_value on a missing key */
    r.key = B("x");
    r.ignore_value = true;
    assert_int_equal(kv_put(f->s, &r, f->a, &resp, &e), KV_ERR_KEY_NOT_FOUND);
    assert_string_equal(e.msg, "etcdserver: key not found");
    assert_int_equal(kv_code_grpc_status(e.code), 3);
    r.ignore_value = false;
    r.ignore_lease = true;
    assert_int_equal(kv_put(f->s, &r, f->a, &resp, &e), KV_ERR_KEY_NOT_FOUND);
    /* value/lease provided with ignore_* */
    r.ignore_lease = false;
    r.ignore_value = true;
    r.value = B("v");
    assert_int_equal(kv_put(f->s, &r, f->a, &resp, &e), KV_ERR_VALUE_PROVIDED);
    assert_string_equal(e.msg, "etcdserver: value is provided");
    r.ignore_value = false;
    r.ignore_lease = true;
    r.lease = 5;
    assert_int_equal(kv_put(f->s, &r, f->a, &resp, &e), KV_ERR_LEASE_PROVIDED);
    assert_string_equal(e.msg, "etcdserver: lease is provided");
    /* empty key, long key */
    Etcdserverpb__PutRequest r2 = ETCDSERVERPB__PUT_REQUEST__INIT;
    assert_int_equal(kv_put(f->s, &r2, f->a, &resp, &e), KV_ERR_EMPTY_KEY);
    assert_string_equal(e.msg, "etcdserver: key is not provided");
    assert_string_equal(kv_code_message(KV_ERR_EMPTY_KEY), "etcdserver: key is not provided");
    char longkey[600];
    memset(longkey, 'L', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = 0;
    r2.key = B(longkey);
    assert_int_equal(kv_put(f->s, &r2, f->a, &resp, &e), KV_ERR_KEY_TOO_LONG);
    assert_non_null(strstr(e.msg, "too long"));
    longkey[KV_MAX_KEY_LEN] = 0;
    r2.key = B(longkey);
    assert_int_equal(kv_put(f->s, &r2, f->a, &resp, &e), KV_OK);
    assert_int_equal(get(f, longkey, 0)->n_kvs, 1);
    assert_int_equal(cur_rev(f), 2); /* the failures took no revision */
    /* prev_kv, ignore_value, ignore_lease */
    put_lease(f, "x", "orig", 7);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = B("x");
    p.ignore_value = true;
    p.prev_kv = true;
    p.lease = 9;
    assert_int_equal(kv_put(f->s, &p, f->a, &resp, &e), KV_OK);
    assert_non_null(resp->prev_kv);
    assert_kv(resp->prev_kv, "x", "orig", 3, 3, 1);
    Mvccpb__KeyValue *kv = get(f, "x", 0)->kvs[0];
    assert_kv(kv, "x", "orig", 3, 4, 2);
    assert_int_equal(kv->lease, 9);
    p.ignore_value = false;
    p.ignore_lease = true;
    p.lease = 0;
    p.value = B("new");
    assert_int_equal(kv_put(f->s, &p, f->a, &resp, &e), KV_OK);
    kv = get(f, "x", 0)->kvs[0];
    assert_kv(kv, "x", "new", 3, 5, 3);
    assert_int_equal(kv->lease, 9);
    /* prev_kv on a new key: none */
    p.key = B("fresh");
    p.ignore_lease = false;
    assert_int_equal(kv_put(f->s, &p, f->a, &resp, &e), KV_OK);
    assert_null(resp->prev_kv);
    /* lease checker */
    kv_set_lease_checker(f->s, no_leases, NULL);
    Etcdserverpb__PutRequest l = ETCDSERVERPB__PUT_REQUEST__INIT;
    l.key = B("leased");
    l.lease = 43;
    assert_int_equal(kv_put(f->s, &l, f->a, &resp, &e), KV_ERR_LEASE_NOT_FOUND);
    assert_string_equal(e.msg, "etcdserver: requested lease not found");
    assert_int_equal(kv_code_grpc_status(KV_ERR_LEASE_NOT_FOUND), 5);
    l.lease = 42;
    assert_int_equal(kv_put(f->s, &l, f->a, &resp, &e), KV_OK);
    /* empty key for range and delete */
    Etcdserverpb__RangeRequest rr = ETCDSERVERPB__RANGE_REQUEST__INIT;
    range_req(f, &rr, KV_ERR_EMPTY_KEY);
    Etcdserverpb__DeleteRangeRequest dr = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    Etcdserverpb__DeleteRangeResponse *dresp;
    assert_int_equal(kv_delete_range(f->s, &dr, f->a, &dresp, &e), KV_ERR_EMPTY_KEY);
    assert_int_equal(kv_code_grpc_status(KV_ERR_COMPACTED), 11);
    assert_string_equal(kv_code_message(KV_ERR_COMPACTED),
                        "etcdserver: mvcc: required revision has been compacted");
    assert_string_equal(kv_code_message(KV_ERR_FUTURE_REV),
                        "etcdserver: mvcc: required revision is a future revision");
}

/* ---- delete range ---- */

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

static int feed_collect(void *ud, const kv_event *ev) {
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

static void feed_all(fx *f, int64_t from, evlog *l, bool prev) {
    memset(l, 0, sizeof(*l));
    int64_t next;
    kv_err e;
    assert_int_equal(kv_feed_read(f->s, from, 0, (const uint8_t *)"\0", 1, (const uint8_t *)"\0", 1,
                                  prev, 0, 0, feed_collect, l, &next, &e),
                     KV_OK);
    assert_int_equal(next, cur_rev(f) + 1);
}

static void test_delete_range(void **state) {
    fx *f = *state;
    put(f, "a", "1");  /* 2 */
    put(f, "b", "2");  /* 3 */
    put(f, "ba", "3"); /* 4 */
    put(f, "c", "4");  /* 5 */
    put(f, "d", "5");  /* 6 */
    /* [b, c) */
    Etcdserverpb__DeleteRangeResponse *d = del(f, "b", B("c"), true);
    assert_int_equal(d->deleted, 2);
    assert_int_equal(d->n_prev_kvs, 2);
    assert_true(key_is(d->prev_kvs[0], "b"));
    assert_true(key_is(d->prev_kvs[1], "ba"));
    assert_int_equal(d->header->revision, 7);
    /* each deleted key its own sub revision */
    evlog l;
    feed_all(f, 7, &l, true);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.main[0], 7);
    assert_int_equal(l.sub[0], 0);
    assert_int_equal(l.sub[1], 1);
    assert_int_equal(l.type[1], MVCCPB__EVENT__EVENT_TYPE__DELETE);
    assert_string_equal(l.key[1], "ba");
    assert_string_equal(l.prev_val[1], "3");
    /* from key "c": deletes c and d, without prev_kv */
    d = del(f, "c", FROM_KEY, false);
    assert_int_equal(d->deleted, 2);
    assert_int_equal(d->n_prev_kvs, 0);
    Etcdserverpb__RangeResponse *r = get_range(f, "a", FROM_KEY, 0);
    assert_int_equal(r->count, 1);
    assert_true(key_is(r->kvs[0], "a"));
    kv_status st;
    kv_status_get(f->s, &st);
    assert_int_equal(st.keys, 1);
    assert_int_equal(st.revision, 8);
}

/* ---- range ---- */

static void fill_sort_data(fx *f) {
    /* key: version, create, mod, value */
    put(f, "k1", "c"); /* 2 */
    put(f, "k2", "a"); /* 3 */
    put(f, "k3", "b"); /* 4 */
    put(f, "k1", "z"); /* 5: k1 v2 */
    put(f, "k4", "a"); /* 6 */
    put(f, "k1", "d"); /* 7: k1 v3 */
    put(f, "k3", "e"); /* 8: k3 v2 */
    put(f, "other", "x");
}

static void expect_keys(Etcdserverpb__RangeResponse *r, const char *keys) {
    char buf[128] = "";
    for (size_t i = 0; i < r->n_kvs; i++) {
        if (i) strcat(buf, ",");
        strncat(buf, (const char *)r->kvs[i]->key.data, r->kvs[i]->key.len);
    }
    assert_string_equal(buf, keys);
}

static void test_range_limit_count_more(void **state) {
    fx *f = *state;
    fill_sort_data(f);
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key = B("k");
    r.range_end = B("l");
    Etcdserverpb__RangeResponse *resp = range_req(f, &r, KV_OK);
    expect_keys(resp, "k1,k2,k3,k4");
    assert_int_equal(resp->count, 4);
    assert_false(resp->more);
    r.limit = 2;
    resp = range_req(f, &r, KV_OK);
    expect_keys(resp, "k1,k2");
    assert_int_equal(resp->count, 4);
    assert_true(resp->more);
    r.limit = 4;
    resp = range_req(f, &r, KV_OK);
    assert_false(resp->more);
    r.limit = 0;
    r.count_only = true;
    resp = range_req(f, &r, KV_OK);
    assert_int_equal(resp->n_kvs, 0);
    assert_int_equal(resp->count, 4);
    r.count_only = false;
    r.keys_only = true;
    resp = range_req(f, &r, KV_OK);
    assert_int_equal(resp->n_kvs, 4);
    assert_int_equal(resp->kvs[0]->value.len, 0);
    assert_int_equal(resp->kvs[0]->version, 3);
    /* from key and the whole keyspace */
    r.keys_only = false;
    r.key = B("k3");
    r.range_end = FROM_KEY;
    resp = range_req(f, &r, KV_OK);
    expect_keys(resp, "k3,k4,other");
    r.key = FROM_KEY;
    resp = range_req(f, &r, KV_OK);
    assert_int_equal(resp->count, 5);
    /* a range whose end is below its start */
    r.key = B("z");
    r.range_end = B("a");
    resp = range_req(f, &r, KV_OK);
    assert_int_equal(resp->count, 0);
    /* a start key longer than any storable key */
    char lk[700];
    memset(lk, 'k', sizeof(lk) - 1);
    lk[sizeof(lk) - 1] = 0;
    lk[1] = '1';
    r.key = B(lk);
    r.range_end = B("l");
    resp = range_req(f, &r, KV_OK);
    expect_keys(resp, "k2,k3,k4");
    r.range_end = (ProtobufCBinaryData){0, NULL};
    resp = range_req(f, &r, KV_OK);
    assert_int_equal(resp->count, 0);
}

static void test_range_sort(void **state) {
    fx *f = *state;
    fill_sort_data(f);
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key = B("k");
    r.range_end = B("l");
    r.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    expect_keys(range_req(f, &r, KV_OK), "k4,k3,k2,k1");
    r.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION;
    expect_keys(range_req(f, &r, KV_OK), "k1,k3,k2,k4"); /* ties keep key order */
    r.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
    expect_keys(range_req(f, &r, KV_OK), "k2,k4,k3,k1");
    r.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE;
    expect_keys(range_req(f, &r, KV_OK), "k1,k2,k3,k4");
    r.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    expect_keys(range_req(f, &r, KV_OK), "k4,k3,k2,k1");
    r.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD;
    expect_keys(range_req(f, &r, KV_OK), "k3,k1,k4,k2");
    r.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE;
    r.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
    expect_keys(range_req(f, &r, KV_OK), "k2,k4,k1,k3");
    /* sorted then limited: limit applies after sorting everything */
    r.limit = 2;
    Etcdserverpb__RangeResponse *resp = range_req(f, &r, KV_OK);
    expect_keys(resp, "k2,k4");
    assert_true(resp->more);
    assert_int_equal(resp->count, 4);
    /* etcd: order NONE with target != KEY sorts ascending, but the limit is pushed into the
     * scan first, so only the first limit+1 keys in key order are sorted. */
    r.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE;
    r.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD;
    r.limit = 2;
    resp = range_req(f, &r, KV_OK);
    expect_keys(resp, "k2,k1"); /* k1(mod 7) k2(3) k3(8) fetched, sorted by mod, cut to 2 */
    assert_true(resp->more);
}

static void test_range_filters(void **state) {
    fx *f = *state;
    fill_sort_data(f);
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key = B("k");
    r.range_end = B("l");
    r.min_mod_revision = 5;
    Etcdserverpb__RangeResponse *resp = range_req(f, &r, KV_OK);
    expect_keys(resp, "k1,k3,k4");
    assert_int_equal(resp->count, 4); /* count is before filters */
    r.max_mod_revision = 7;
    expect_keys(range_req(f, &r, KV_OK), "k1,k4");
    r.min_mod_revision = r.max_mod_revision = 0;
    r.min_create_revision = 3;
    r.max_create_revision = 4;
    expect_keys(range_req(f, &r, KV_OK), "k2,k3");
    /* with a filter the limit applies after filtering */
    r.limit = 1;
    resp = range_req(f, &r, KV_OK);
    expect_keys(resp, "k2");
    assert_true(resp->more);
    r.limit = 2;
    resp = range_req(f, &r, KV_OK);
    assert_false(resp->more);
}

typedef struct rawcol {
    kv_arena *a;
    uint8_t *bufs[64];
    size_t lens[64];
    int n;
    int stop_after;
} rawcol;

static int raw_collect(void *ud, const uint8_t *kv, size_t len) {
    rawcol *c = ud;
    assert_true(c->n < 64);
    c->bufs[c->n] = malloc(len ? len : 1);
    memcpy(c->bufs[c->n], kv, len);
    c->lens[c->n++] = len;
    if (c->stop_after && c->n == c->stop_after) return 99;
    return 0;
}

static void raw_equals_range(fx *f, const Etcdserverpb__RangeRequest *r) {
    Etcdserverpb__RangeResponse *resp = range_req(f, r, KV_OK);
    rawcol c = {0};
    kv_range_info info;
    kv_err e;
    assert_int_equal(kv_range_raw(f->s, r, raw_collect, &c, &info, &e), KV_OK);
    assert_int_equal((int)info.kvs, (int)resp->n_kvs);
    assert_int_equal(c.n, (int)resp->n_kvs);
    assert_int_equal(info.count, resp->count);
    assert_int_equal(info.more, resp->more);
    assert_int_equal(info.revision, resp->header->revision);
    size_t total = 0;
    for (int i = 0; i < c.n; i++) {
        size_t n = mvccpb__key_value__get_packed_size(resp->kvs[i]);
        uint8_t *buf = malloc(n + 1);
        mvccpb__key_value__pack(resp->kvs[i], buf);
        assert_int_equal(n, c.lens[i]);
        assert_memory_equal(buf, c.bufs[i], n);
        total += n;
        free(buf);
        free(c.bufs[i]);
    }
    assert_int_equal(info.kv_bytes, total);
}

static void test_range_raw_equals_range(void **state) {
    fx *f = *state;
    fill_sort_data(f);
    put_lease(f, "k2", "leased", 77);
    del(f, "k4", (ProtobufCBinaryData){0, NULL}, false);
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key = B("k");
    r.range_end = B("l");
    raw_equals_range(f, &r);
    r.limit = 2;
    raw_equals_range(f, &r);
    r.keys_only = true;
    raw_equals_range(f, &r);
    r.limit = 0;
    r.revision = 6; /* historical: k4 alive, k2 without lease */
    raw_equals_range(f, &r);
    r.keys_only = false;
    raw_equals_range(f, &r);
    r.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    r.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE;
    raw_equals_range(f, &r);
    r.revision = 0;
    raw_equals_range(f, &r);
    r.count_only = true;
    raw_equals_range(f, &r);
    /* the callback stops the scan */
    Etcdserverpb__RangeRequest all = ETCDSERVERPB__RANGE_REQUEST__INIT;
    all.key = FROM_KEY;
    all.range_end = FROM_KEY;
    rawcol c = {.stop_after = 2};
    kv_range_info info;
    kv_err e;
    assert_int_equal(kv_range_raw(f->s, &all, raw_collect, &c, &info, &e), 99);
    assert_int_equal(c.n, 2);
    for (int i = 0; i < c.n; i++)
        free(c.bufs[i]);
    /* errors */
    all.revision = 100;
    assert_int_equal(kv_range_raw(f->s, &all, raw_collect, &c, &info, &e), KV_ERR_FUTURE_REV);
}

static void test_many_revisions_of_one_key(void **state) {
    fx *f = *state;
    char v[16];
    /* enough revisions that the key's index spans several LMDB pages */
    for (int i = 0; i < 1500; i++) {
        snprintf(v, sizeof(v), "%d", i);
        put(f, "hot", v);
        if (i % 100 == 0) put(f, "cold", v);
    }
    int64_t last = cur_rev(f);
    for (int64_t rev = 2; rev <= last; rev += 37) {
        Etcdserverpb__RangeResponse *r = get_range(f, "a", B("z"), rev);
        assert_true(r->n_kvs >= 1);
        Mvccpb__KeyValue *hot = NULL;
        for (size_t i = 0; i < r->n_kvs; i++)
            if (key_is(r->kvs[i], "hot")) hot = r->kvs[i];
        assert_non_null(hot);
        assert_true(hot->mod_revision <= rev);
        assert_true(hot->mod_revision >= rev - 1);
        kv_arena_reset(f->a);
    }
}

/* ---- txn ---- */

static Etcdserverpb__Compare *cmp_new(Etcdserverpb__Compare *c, const char *key, int target,
                                      int result) {
    etcdserverpb__compare__init(c);
    c->key = B(key);
    c->target = target;
    c->result = result;
    return c;
}

static Etcdserverpb__RequestOp *op_put(Etcdserverpb__RequestOp *op, Etcdserverpb__PutRequest *p,
                                       const char *k, const char *v) {
    etcdserverpb__request_op__init(op);
    etcdserverpb__put_request__init(p);
    p->key = B(k);
    p->value = B(v);
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op->request_put = p;
    return op;
}

static Etcdserverpb__RequestOp *op_del(Etcdserverpb__RequestOp *op,
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

static Etcdserverpb__RequestOp *op_get(Etcdserverpb__RequestOp *op, Etcdserverpb__RangeRequest *r,
                                       const char *k) {
    etcdserverpb__request_op__init(op);
    etcdserverpb__range_request__init(r);
    r->key = B(k);
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    op->request_range = r;
    return op;
}

static Etcdserverpb__RequestOp *op_txn(Etcdserverpb__RequestOp *op, Etcdserverpb__TxnRequest *t) {
    etcdserverpb__request_op__init(op);
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    op->request_txn = t;
    return op;
}

static bool cmp1(fx *f, Etcdserverpb__Compare *c) {
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_compare = 1;
    t.compare = &c;
    Etcdserverpb__TxnResponse *resp;
    kv_err e;
    assert_int_equal(kv_txn(f->s, &t, f->a, &resp, &e), KV_OK);
    return resp->succeeded;
}

static void test_txn_compares(void **state) {
    fx *f = *state;
    put_lease(f, "a", "va", 5); /* 2 */
    put(f, "a", "vb");          /* 3: a version 2, create 2, mod 3, lease 0 */
    put(f, "b", "x");           /* 4 */
    Etcdserverpb__Compare c;
    const Etcdserverpb__Compare__CompareResult EQ = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL,
                                               GT = ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER,
                                               LT = ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS,
                                               NE =
                                                   ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL;
    cmp_new(&c, "a", ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION, EQ);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
    c.version = 2;
    assert_true(cmp1(f, &c));
    c.result = GT;
    assert_false(cmp1(f, &c));
    c.result = LT;
    c.version = 3;
    assert_true(cmp1(f, &c));
    c.result = NE;
    assert_true(cmp1(f, &c));
    cmp_new(&c, "a", ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE, EQ);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
    c.create_revision = 2;
    assert_true(cmp1(f, &c));
    cmp_new(&c, "a", ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD, GT);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    c.mod_revision = 2;
    assert_true(cmp1(f, &c));
    cmp_new(&c, "a", ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE, EQ);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    c.value = B("vb");
    assert_true(cmp1(f, &c));
    c.result = LT;
    c.value = B("vc");
    assert_true(cmp1(f, &c));
    cmp_new(&c, "a", ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE, EQ);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
    c.lease = 0;
    assert_true(cmp1(f, &c));
    /* missing key: version/create/mod compare against 0, value always fails */
    cmp_new(&c, "missing", ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION, EQ);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
    c.version = 0;
    assert_true(cmp1(f, &c));
    cmp_new(&c, "missing", ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE, EQ);
    assert_true(cmp1(f, &c)); /* union unset = 0 */
    cmp_new(&c, "missing", ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD, LT);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    c.mod_revision = 1;
    assert_true(cmp1(f, &c));
    cmp_new(&c, "missing", ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE, NE);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    c.value = B("x");
    assert_false(cmp1(f, &c));
    /* range compare: every key must satisfy */
    cmp_new(&c, "a", ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD, GT);
    c.range_end = B("c");
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    c.mod_revision = 2;
    assert_true(cmp1(f, &c));
    c.mod_revision = 3;
    assert_false(cmp1(f, &c));
    c.range_end = FROM_KEY;
    c.mod_revision = 2;
    assert_true(cmp1(f, &c));
    assert_int_equal(cur_rev(f), 4); /* read-only txns take no revision */
}

static void test_txn_branches_and_own_writes(void **state) {
    fx *f = *state;
    put(f, "a", "1"); /* 2 */
    Etcdserverpb__Compare c, *cp = &c;
    cmp_new(&c, "a", ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE, 0);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    c.value = B("1");
    Etcdserverpb__RequestOp s0, s1, s2, s3, f0, *succ[4] = {&s0, &s1, &s2, &s3}, *fail[1] = {&f0};
    Etcdserverpb__PutRequest p0, p1, pf;
    Etcdserverpb__RangeRequest g0;
    Etcdserverpb__DeleteRangeRequest d0;
    op_put(&s0, &p0, "x", "X");
    op_put(&s1, &p1, "y", "Y");
    p1.prev_kv = true;
    op_get(&s2, &g0, "x");
    op_del(&s3, &d0, "a", (ProtobufCBinaryData){0, NULL});
    op_put(&f0, &pf, "failed", "F");
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_compare = 1;
    t.compare = &cp;
    t.n_success = 4;
    t.success = succ;
    t.n_failure = 1;
    t.failure = fail;
    Etcdserverpb__TxnResponse *resp;
    kv_err e;
    assert_int_equal(kv_txn(f->s, &t, f->a, &resp, &e), KV_OK);
    assert_true(resp->succeeded);
    assert_int_equal(resp->header->revision, 3);
    assert_int_equal(resp->header->cluster_id, 11);
    assert_int_equal(resp->n_responses, 4);
    assert_int_equal(resp->responses[0]->response_case,
                     ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT);
    assert_int_equal(resp->responses[0]->response_put->header->revision, 3);
    assert_null(resp->responses[1]->response_put->prev_kv);
    Etcdserverpb__RangeResponse *rr = resp->responses[2]->response_range;
    assert_int_equal(rr->n_kvs, 1); /* sees the txn's own put */
    assert_kv(rr->kvs[0], "x", "X", 3, 3, 1);
    assert_int_equal(rr->header->revision, 3);
    assert_int_equal(resp->responses[3]->response_delete_range->deleted, 1);
    evlog l;
    feed_all(f, 3, &l, false);
    assert_int_equal(l.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(l.main[i], 3);
        assert_int_equal(l.sub[i], i);
    }
    /* now a is gone: the failure branch runs */
    assert_int_equal(kv_txn(f->s, &t, f->a, &resp, &e), KV_OK);
    assert_false(resp->succeeded);
    assert_int_equal(resp->n_responses, 1);
    assert_int_equal(resp->header->revision, 4);
    assert_int_equal(get(f, "failed", 0)->n_kvs, 1);
    /* a txn whose chosen branch only reads takes no revision; its range reads the current one */
    Etcdserverpb__RequestOp r0, *ro[1] = {&r0};
    Etcdserverpb__RangeRequest g1;
    op_get(&r0, &g1, "x");
    Etcdserverpb__TxnRequest t2 = ETCDSERVERPB__TXN_REQUEST__INIT;
    t2.n_success = 1;
    t2.success = ro;
    assert_int_equal(kv_txn(f->s, &t2, f->a, &resp, &e), KV_OK);
    assert_int_equal(resp->header->revision, 4);
    assert_int_equal(cur_rev(f), 4);
    /* ranges inside a txn are checked against the revision before the txn */
    g1.revision = 5;
    assert_int_equal(kv_txn(f->s, &t2, f->a, &resp, &e), KV_ERR_FUTURE_REV);
    g1.revision = 2;
    assert_int_equal(kv_txn(f->s, &t2, f->a, &resp, &e), KV_OK);
    assert_int_equal(resp->responses[0]->response_range->n_kvs, 0); /* x did not exist at 2 */
    /* ignore_value inside a txn on a missing key */
    Etcdserverpb__RequestOp i0, *io[1] = {&i0};
    Etcdserverpb__PutRequest ip;
    op_put(&i0, &ip, "nokey", "");
    ip.ignore_value = true;
    Etcdserverpb__TxnRequest t3 = ETCDSERVERPB__TXN_REQUEST__INIT;
    t3.n_success = 1;
    t3.success = io;
    assert_int_equal(kv_txn(f->s, &t3, f->a, &resp, &e), KV_ERR_KEY_NOT_FOUND);
    /* an empty op inside a txn */
    Etcdserverpb__RequestOp empty = ETCDSERVERPB__REQUEST_OP__INIT, *eo[1] = {&empty};
    t3.success = eo;
    assert_int_equal(kv_txn(f->s, &t3, f->a, &resp, &e), KV_ERR_KEY_NOT_FOUND);
    assert_int_equal(cur_rev(f), 4);
}

/* Builds a chain of `depth` nested txns, the innermost putting "deep". */
static void test_txn_nesting_and_depth(void **state) {
    fx *f = *state;
    enum { N = KV_MAX_TXN_DEPTH + 1 };
    Etcdserverpb__TxnRequest t[N];
    Etcdserverpb__RequestOp ops[N], *opp[N];
    Etcdserverpb__PutRequest p;
    for (int depth = KV_MAX_TXN_DEPTH; depth <= N; depth++) {
        for (int i = 0; i < depth; i++) {
            etcdserverpb__txn_request__init(&t[i]);
            opp[i] = &ops[i];
            if (i + 1 < depth)
                op_txn(&ops[i], &t[i + 1]);
            else
                op_put(&ops[i], &p, "deep", "v");
            t[i].n_success = 1;
            t[i].success = &opp[i];
        }
        Etcdserverpb__TxnResponse *resp;
        kv_err e;
        int rc = kv_txn(f->s, &t[0], f->a, &resp, &e);
        if (depth <= KV_MAX_TXN_DEPTH) {
            assert_int_equal(rc, KV_OK);
            Etcdserverpb__TxnResponse *in = resp;
            for (int i = 1; i < depth; i++) {
                assert_int_equal(in->responses[0]->response_case,
                                 ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN);
                in = in->responses[0]->response_txn;
                assert_true(in->succeeded);
            }
            assert_int_equal(in->responses[0]->response_put->header->revision, 2);
        } else {
            assert_int_equal(rc, KV_ERR_TXN_TOO_DEEP);
            assert_int_equal(kv_code_grpc_status(rc), 3);
        }
    }
    assert_int_equal(cur_rev(f), 2);
    /* nested compares see the state before the txn, branches choose independently */
    Etcdserverpb__Compare c1, *c1p = &c1;
    cmp_new(&c1, "deep", ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION, 0);
    c1.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
    c1.version = 1;
    Etcdserverpb__TxnRequest inner = ETCDSERVERPB__TXN_REQUEST__INIT,
                             outer = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__RequestOp is, iff, os0, os1, *isp[1] = {&is}, *ifp[1] = {&iff},
                                               *osp[2] = {&os0, &os1};
    Etcdserverpb__PutRequest pis, pif, pos;
    op_put(&is, &pis, "inner-yes", "1");
    op_put(&iff, &pif, "inner-no", "1");
    inner.n_compare = 1;
    inner.compare = &c1p;
    inner.n_success = 1;
    inner.success = isp;
    inner.n_failure = 1;
    inner.failure = ifp;
    op_put(&os0, &pos, "deep", "v2"); /* makes version 2 before the inner txn runs */
    op_txn(&os1, &inner);
    outer.n_success = 2;
    outer.success = osp;
    Etcdserverpb__TxnResponse *resp;
    kv_err e;
    assert_int_equal(kv_txn(f->s, &outer, f->a, &resp, &e), KV_OK);
    assert_true(
        resp->responses[1]->response_txn->succeeded); /* compared version 1: pre-txn state */
    assert_int_equal(resp->responses[1]->response_txn->header->revision, 0);
    assert_int_equal(get(f, "inner-yes", 0)->n_kvs, 1);
    assert_int_equal(get(f, "inner-no", 0)->n_kvs, 0);
}

static void test_txn_too_many_ops(void **state) {
    fx *f = *state;
    enum { M = KV_MAX_TXN_OPS + 1 };
    static Etcdserverpb__RequestOp ops[M];
    static Etcdserverpb__PutRequest ps[M];
    static char keys[M][8];
    Etcdserverpb__RequestOp *opp[M];
    for (int i = 0; i < M; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%03d", i);
        op_put(&ops[i], &ps[i], keys[i], "v");
        opp[i] = &ops[i];
    }
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_success = M;
    t.success = opp;
    Etcdserverpb__TxnResponse *resp;
    kv_err e;
    assert_int_equal(kv_txn(f->s, &t, f->a, &resp, &e), KV_ERR_TOO_MANY_OPS);
    assert_string_equal(e.msg, "etcdserver: too many operations in txn request");
    t.n_success = KV_MAX_TXN_OPS;
    assert_int_equal(kv_txn(f->s, &t, f->a, &resp, &e), KV_OK);
    assert_int_equal(resp->header->revision, 2);
    /* compares count too */
    static Etcdserverpb__Compare cs[M];
    Etcdserverpb__Compare *cp[M];
    for (int i = 0; i < M; i++)
        cp[i] = cmp_new(&cs[i], "k000", 0, 0);
    Etcdserverpb__TxnRequest tc = ETCDSERVERPB__TXN_REQUEST__INIT;
    tc.n_compare = M;
    tc.compare = cp;
    assert_int_equal(kv_txn(f->s, &tc, f->a, &resp, &e), KV_ERR_TOO_MANY_OPS);
    /* a nested txn gets what its parent left: 100 ops + a txn with 29 ops */
    Etcdserverpb__TxnRequest inner = ETCDSERVERPB__TXN_REQUEST__INIT;
    inner.n_success = 29;
    inner.success = opp + 100;
    Etcdserverpb__RequestOp tx;
    op_txn(&tx, &inner);
    Etcdserverpb__RequestOp *outer_ops[100];
    for (int i = 0; i < 99; i++)
        outer_ops[i] = opp[i];
    outer_ops[99] = &tx;
    Etcdserverpb__TxnRequest outer = ETCDSERVERPB__TXN_REQUEST__INIT;
    outer.n_success = 100;
    outer.success = outer_ops;
    assert_int_equal(kv_txn(f->s, &outer, f->a, &resp, &e), KV_ERR_TOO_MANY_OPS);
    inner.n_success = 28;
    assert_int_equal(kv_txn(f->s, &outer, f->a, &resp, &e), KV_OK);
}

static int txn_rc(fx *f, Etcdserverpb__RequestOp **succ, size_t ns, Etcdserverpb__RequestOp **fail,
                  size_t nf) {
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_success = ns;
    t.success = succ;
    t.n_failure = nf;
    t.failure = fail;
    Etcdserverpb__TxnResponse *resp;
    kv_err e;
    int rc = kv_txn(f->s, &t, f->a, &resp, &e);
    if (rc == KV_ERR_DUPLICATE_KEY)
        assert_string_equal(e.msg, "etcdserver: duplicate key given in txn request");
    return rc;
}

static void test_txn_duplicate_keys(void **state) {
    fx *f = *state;
    Etcdserverpb__RequestOp a1, a2, d1, t1, t2;
    Etcdserverpb__PutRequest pa1, pa2, pi1, pi2;
    Etcdserverpb__DeleteRangeRequest dd;
    Etcdserverpb__RequestOp i1, i2;
    op_put(&a1, &pa1, "a", "1");
    op_put(&a2, &pa2, "a", "2");
    Etcdserverpb__RequestOp *two_puts[2] = {&a1, &a2};
    assert_int_equal(txn_rc(f, two_puts, 2, NULL, 0), KV_ERR_DUPLICATE_KEY);
    /* the same key in success and failure is fine */
    Etcdserverpb__RequestOp *s1[1] = {&a1}, *f1[1] = {&a2};
    assert_int_equal(txn_rc(f, s1, 1, f1, 1), KV_OK);
    /* put overlapping a delete range at the same level */
    op_del(&d1, &dd, "a", B("b"));
    Etcdserverpb__RequestOp *put_del[2] = {&d1, &a1};
    assert_int_equal(txn_rc(f, put_del, 2, NULL, 0), KV_ERR_DUPLICATE_KEY);
    /* a from-key delete ("\0") overlaps nothing in etcd 3.4's check */
    op_del(&d1, &dd, "a", FROM_KEY);
    assert_int_equal(txn_rc(f, put_del, 2, NULL, 0), KV_OK);
    /* nested: the parent's put against a child's put */
    Etcdserverpb__TxnRequest nt = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__RequestOp *nts[1] = {&i1}, *ntf[1] = {&i2};
    op_put(&i1, &pi1, "a", "then");
    op_put(&i2, &pi2, "a", "else");
    nt.n_success = 1;
    nt.success = nts;
    nt.n_failure = 1;
    nt.failure = ntf;
    op_txn(&t1, &nt);
    Etcdserverpb__RequestOp *parent_and_child[2] = {&a2, &t1};
    assert_int_equal(txn_rc(f, parent_and_child, 2, NULL, 0), KV_ERR_DUPLICATE_KEY);
    /* then/else of one child may put the same key */
    Etcdserverpb__RequestOp *child_only[1] = {&t1};
    assert_int_equal(txn_rc(f, child_only, 1, NULL, 0), KV_OK);
    /* two children putting the same key */
    Etcdserverpb__TxnRequest nt2 = nt;
    op_txn(&t2, &nt2);
    Etcdserverpb__RequestOp *two_children[2] = {&t1, &t2};
    assert_int_equal(txn_rc(f, two_children, 2, NULL, 0), KV_ERR_DUPLICATE_KEY);
    /* a child's delete against a later child's put, and against the parent's put */
    Etcdserverpb__TxnRequest dt = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__RequestOp dop, *dts[1] = {&dop};
    Etcdserverpb__DeleteRangeRequest ddd;
    op_del(&dop, &ddd, "a", (ProtobufCBinaryData){0, NULL});
    dt.n_success = 1;
    dt.success = dts;
    op_txn(&t2, &dt);
    Etcdserverpb__RequestOp *del_then_put[2] = {&t2, &t1};
    assert_int_equal(txn_rc(f, del_then_put, 2, NULL, 0), KV_ERR_DUPLICATE_KEY);
    Etcdserverpb__RequestOp *child_del_parent_put[2] = {&t2, &a1};
    assert_int_equal(txn_rc(f, child_del_parent_put, 2, NULL, 0), KV_ERR_DUPLICATE_KEY);
    /* ... but etcd lets an earlier child's put be deleted by a later child */
    Etcdserverpb__RequestOp *put_then_del[2] = {&t1, &t2};
    assert_int_equal(txn_rc(f, put_then_del, 2, NULL, 0), KV_OK);
    assert_int_equal(get(f, "a", 0)->n_kvs, 0);
}

/* ---- group commit ---- */

static void commit_cb(void *ud, const kv_event *ev, size_t n, int64_t revision) {
    evlog *l = ud;
    l->revs[l->commits++] = revision;
    for (size_t i = 0; i < n; i++)
        feed_collect(l, &ev[i]);
}

static void test_apply_group_isolation(void **state) {
    fx *f = *state;
    evlog l;
    memset(&l, 0, sizeof(l));
    kv_set_commit_cb(f->s, commit_cb, &l);
    put(f, "base", "0"); /* 2 */
    assert_int_equal(l.commits, 1);
    assert_int_equal(l.revs[0], 2);
    assert_int_equal(l.n, 1);
    assert_false(l.has_prev[0]);
    memset(&l, 0, sizeof(l));

    Etcdserverpb__RequestOp o0, o1, o2, o3, o4, o5;
    Etcdserverpb__PutRequest p0, p1, p3;
    Etcdserverpb__RangeRequest g4;
    op_put(&o0, &p0, "g1", "A");
    op_put(&o1, &p1, "g2", "B");
    p1.ignore_value = true; /* g2 does not exist: fails validation */
    p1.value = B("");
    /* a txn that fails after writing: from-key delete of "base".., then ignore_value put on
     * base: passes the pre-txn checks, fails when applied (etcd would panic) */
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__RequestOp to0, to1, *tops[2] = {&to0, &to1};
    Etcdserverpb__DeleteRangeRequest td;
    Etcdserverpb__PutRequest tp;
    op_del(&to0, &td, "base", FROM_KEY);
    op_put(&to1, &tp, "base", "");
    tp.ignore_value = true;
    t.n_success = 2;
    t.success = tops;
    op_txn(&o2, &t);
    op_put(&o3, &p3, "g1", "C");
    op_get(&o4, &g4, "g1");
    etcdserverpb__request_op__init(&o5); /* empty */
    kv_arena *ar[6];
    kv_write w[6];
    Etcdserverpb__RequestOp *ops[6] = {&o0, &o1, &o2, &o3, &o4, &o5};
    for (int i = 0; i < 6; i++) {
        ar[i] = kv_arena_new();
        memset(&w[i], 0, sizeof(w[i]));
        w[i].op = ops[i];
        w[i].arena = ar[i];
    }
    kv_err e;
    assert_int_equal(kv_apply(f->s, w, 6, &e), KV_OK);
    assert_int_equal(w[0].err.code, KV_OK);
    assert_int_equal(w[0].revision, 3);
    assert_int_equal(w[0].resp->response_put->header->revision, 3);
    assert_int_equal(w[1].err.code, KV_ERR_KEY_NOT_FOUND);
    assert_null(w[1].resp);
    assert_int_equal(w[2].err.code, KV_ERR_KEY_NOT_FOUND);
    assert_null(w[2].resp);
    assert_int_equal(w[3].err.code, KV_OK);
    assert_int_equal(w[3].revision, 4);
    assert_int_equal(w[4].err.code, KV_OK);
    assert_int_equal(w[4].revision, 4);
    assert_kv(w[4].resp->response_range->kvs[0], "g1", "C", 3, 4, 2);
    assert_int_equal(w[4].resp->response_range->header->revision, 4);
    assert_int_equal(w[5].err.code, KV_ERR_INVALID);
    /* the failed txn left no trace */
    assert_int_equal(get(f, "base", 0)->n_kvs, 1);
    assert_int_equal(cur_rev(f), 4);
    /* one commit with both events, prev_kv filled */
    assert_int_equal(l.commits, 1);
    assert_int_equal(l.revs[0], 4);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.key[0], "g1");
    assert_int_equal(l.main[0], 3);
    assert_false(l.has_prev[0]);
    assert_int_equal(l.main[1], 4);
    assert_true(l.has_prev[1]);
    assert_string_equal(l.prev_val[1], "A");
    /* a group where nothing changes commits nothing and calls nobody */
    kv_write r1 = {.op = &o4, .arena = ar[0]};
    assert_int_equal(kv_apply(f->s, &r1, 1, &e), KV_OK);
    assert_int_equal(l.commits, 1);
    for (int i = 0; i < 6; i++)
        kv_arena_free(ar[i]);
    kv_set_commit_cb(f->s, NULL, NULL);
}

/* ---- compaction ---- */

static void test_compaction_boundaries(void **state) {
    fx *f = *state;
    put(f, "a", "a1");                                  /* 2 */
    put(f, "b", "b1");                                  /* 3 */
    put(f, "a", "a2");                                  /* 4 */
    del(f, "b", (ProtobufCBinaryData){0, NULL}, false); /* 5: b tombstone < compact rev */
    put(f, "c", "c1");                                  /* 6 */
    del(f, "c", (ProtobufCBinaryData){0, NULL}, false); /* 7: c tombstone == compact rev */
    put(f, "a", "a3");                                  /* 8 */
    put(f, "d", "d1");                                  /* 9 */
    kv_err e;
    assert_int_equal(kv_compact(f->s, 10, &e), KV_ERR_FUTURE_REV);
    assert_int_equal(kv_compact(f->s, 7, &e), KV_OK);
    assert_int_equal(kv_compact(f->s, 7, &e), KV_ERR_COMPACTED);
    assert_int_equal(kv_compact(f->s, 3, &e), KV_ERR_COMPACTED);
    kv_status st;
    kv_status_get(f->s, &st);
    assert_int_equal(st.compact_revision, 7);
    assert_true(st.compact_finished < 7);
    /* logically compacted before any physical step */
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key = B("a");
    r.revision = 6;
    range_req(f, &r, KV_ERR_COMPACTED);
    int64_t next;
    evlog l;
    assert_int_equal(kv_feed_read(f->s, 6, 0, (const uint8_t *)"a", 1, NULL, 0, false, 0, 0,
                                  feed_collect, &l, &next, &e),
                     KV_ERR_COMPACTED);
    /* physical removal in small steps */
    bool done = false;
    int steps = 0;
    while (!done) {
        assert_int_equal(kv_compact_step(f->s, 1, &done, &e), KV_OK);
        assert_true(++steps < 100);
    }
    assert_true(steps > 2);
    kv_status_get(f->s, &st);
    assert_int_equal(st.compact_finished, 7);
    /* reading exactly at the compact revision works: each key's latest version at 7 */
    Etcdserverpb__RangeResponse *resp = get_range(f, "a", FROM_KEY, 7);
    expect_keys(resp, "a");
    assert_kv(resp->kvs[0], "a", "a2", 2, 4, 2);
    r.revision = 6;
    range_req(f, &r, KV_ERR_COMPACTED);
    /* the feed from 7 still has the tombstone at 7, not the one at 5 */
    feed_all(f, 7, &l, true);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.key[0], "c");
    assert_int_equal(l.type[0], MVCCPB__EVENT__EVENT_TYPE__DELETE);
    assert_false(l.has_prev[0]); /* c's put at 6 was compacted away */
    assert_string_equal(l.key[1], "a");
    assert_string_equal(l.prev_val[1], "a2");
    /* a second compaction removes the tombstone at 7 and old a */
    assert_int_equal(kv_compact(f->s, 9, &e), KV_OK);
    done = false;
    while (!done)
        assert_int_equal(kv_compact_step(f->s, 100, &done, &e), KV_OK);
    feed_all(f, 9, &l, false);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.key[0], "d");
    resp = get_range(f, "a", FROM_KEY, 9);
    expect_keys(resp, "a,d");
    assert_kv(resp->kvs[0], "a", "a3", 2, 8, 3);
    /* steps when nothing is left */
    assert_int_equal(kv_compact_step(f->s, 10, &done, &e), KV_OK);
    assert_true(done);
    /* Compact(0) of a compacted store */
    assert_int_equal(kv_compact(f->s, 0, &e), KV_ERR_COMPACTED);
}

/* ---- change feed ---- */

typedef struct batch {
    int n;
    int64_t mains[64];
    int stop_at;
} batch;

static int batch_collect(void *ud, const kv_event *ev) {
    batch *b = ud;
    b->mains[b->n++] = ev->main;
    if (b->stop_at && b->n == b->stop_at) return 7;
    return 0;
}

static void test_feed_batches(void **state) {
    fx *f = *state;
    /* revisions: 2 put a, 3 txn of 3 puts (x,y,z), 4 put b, 5 delete range x..z (3 subs), 6 put a
     */
    put(f, "a", "1");
    Etcdserverpb__RequestOp o[3], *op[3];
    Etcdserverpb__PutRequest p[3];
    const char *ks[3] = {"x", "y", "z"};
    for (int i = 0; i < 3; i++)
        op[i] = op_put(&o[i], &p[i], ks[i], "v");
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_success = 3;
    t.success = op;
    Etcdserverpb__TxnResponse *tr;
    kv_err e;
    assert_int_equal(kv_txn(f->s, &t, f->a, &tr, &e), KV_OK);
    put(f, "b", "1");
    del(f, "x", B("zz"), false);
    put(f, "a", "2");
    assert_int_equal(cur_rev(f), 6);
    /* max_events 2: the first batch ends after revision 3 (never split) */
    batch b = {0};
    int64_t next;
    const uint8_t *all = (const uint8_t *)"\0";
    assert_int_equal(
        kv_feed_read(f->s, 2, 0, all, 1, all, 1, false, 2, 0, batch_collect, &b, &next, &e), KV_OK);
    assert_int_equal(b.n, 4);
    assert_int_equal(next, 4);
    memset(&b, 0, sizeof(b));
    assert_int_equal(
        kv_feed_read(f->s, next, 0, all, 1, all, 1, false, 2, 0, batch_collect, &b, &next, &e),
        KV_OK);
    assert_int_equal(b.n, 4); /* 4 then 5 (3 events) */
    assert_int_equal(next, 6);
    memset(&b, 0, sizeof(b));
    assert_int_equal(
        kv_feed_read(f->s, next, 0, all, 1, all, 1, false, 2, 0, batch_collect, &b, &next, &e),
        KV_OK);
    assert_int_equal(b.n, 1);
    assert_int_equal(next, 7);
    memset(&b, 0, sizeof(b));
    assert_int_equal(
        kv_feed_read(f->s, next, 0, all, 1, all, 1, false, 2, 0, batch_collect, &b, &next, &e),
        KV_OK);
    assert_int_equal(b.n, 0);
    assert_int_equal(next, 7);
    /* max_bytes */
    memset(&b, 0, sizeof(b));
    assert_int_equal(
        kv_feed_read(f->s, 2, 0, all, 1, all, 1, false, 0, 1, batch_collect, &b, &next, &e), KV_OK);
    assert_int_equal(b.n, 1);
    assert_int_equal(next, 3);
    /* end_rev */
    memset(&b, 0, sizeof(b));
    assert_int_equal(
        kv_feed_read(f->s, 2, 4, all, 1, all, 1, false, 0, 0, batch_collect, &b, &next, &e), KV_OK);
    assert_int_equal(b.n, 5);
    assert_int_equal(next, 5);
    /* key filter: single key, and a range */
    memset(&b, 0, sizeof(b));
    assert_int_equal(kv_feed_read(f->s, 1, 0, (const uint8_t *)"a", 1, NULL, 0, false, 0, 0,
                                  batch_collect, &b, &next, &e),
                     KV_OK);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.mains[1], 6);
    memset(&b, 0, sizeof(b));
    assert_int_equal(kv_feed_read(f->s, 1, 0, (const uint8_t *)"y", 1, (const uint8_t *)"z", 1,
                                  false, 0, 0, batch_collect, &b, &next, &e),
                     KV_OK);
    assert_int_equal(b.n, 2); /* put y at 3, delete y at 5 */
    /* prev_kv of the deletes and of the second put of a */
    evlog l;
    feed_all(f, 5, &l, true);
    assert_int_equal(l.n, 4);
    for (int i = 0; i < 4; i++)
        assert_true(l.has_prev[i]);
    assert_string_equal(l.prev_val[3], "1");
    /* the callback stops the read */
    memset(&b, 0, sizeof(b));
    b.stop_at = 2;
    assert_int_equal(
        kv_feed_read(f->s, 2, 0, all, 1, all, 1, false, 0, 0, batch_collect, &b, &next, &e), 7);
}

/* ---- concurrent readers ---- */

typedef struct reader {
    kv_store *s;
    volatile int *stop;
    int64_t last_count, last_rev, reads;
    bool bad;
} reader;

static int raw_check(void *ud, const uint8_t *kv, size_t len) {
    reader *r = ud;
    Mvccpb__KeyValue *m = mvccpb__key_value__unpack(NULL, len, kv);
    if (!m || m->version < 1) r->bad = true;
    if (m) mvccpb__key_value__free_unpacked(m, NULL);
    return 0;
}

static void *reader_main(void *ud) {
    reader *r = ud;
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    req.key = B("p/");
    req.range_end = B("p0");
    while (!*r->stop) {
        kv_range_info info;
        kv_err e;
        if (kv_range_raw(r->s, &req, raw_check, r, &info, &e) != KV_OK) r->bad = true;
        /* keys are only added: a later snapshot never has fewer, and count == kvs */
        if (info.count < r->last_count || info.revision < r->last_rev ||
            (int64_t)info.kvs != info.count)
            r->bad = true;
        r->last_count = info.count;
        r->last_rev = info.revision;
        r->reads++;
    }
    return NULL;
}

static void test_concurrent_readers(void **state) {
    fx *f = *state;
    volatile int stop = 0;
    reader rs[2] = {{f->s, &stop, 0, 0, 0, false}, {f->s, &stop, 0, 0, 0, false}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rs[i]), 0);
    char k[32];
    for (int i = 0; i < 400; i++) {
        snprintf(k, sizeof(k), "p/%04d", i);
        put(f, k, "value");
        kv_arena_reset(f->a);
    }
    stop = 1;
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_false(rs[i].bad);
        assert_true(rs[i].reads > 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions_and_generations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_options_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_limit_count_more, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_sort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_raw_equals_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_revisions_of_one_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_compares, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_branches_and_own_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_nesting_and_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_too_many_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_duplicate_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_group_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
