/* test_kv_engine.c — the MVCC engine's operations through kv.h: put/delete/range semantics as
 * etcd 3.4 defines them (versions, generations, options and errors, limits, sorts, filters,
 * kv_range_raw) and readers concurrent with a writer. Txns and group commit are in
 * test_kv_txn.c, compaction and the change feed in test_kv_compact.c; the fixture is
 * kv_fixture.h (stores opened with no_sync: durability is test_kv_open's subject).
 */
#include <pthread.h>
#include <stdatomic.h>
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
#include "kv_fixture.h"
#include "testutil.h"

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
    /* the largest limit: limit+1 (for `more`) must not overflow (found by fuzz_kv_request) */
    r.limit = INT64_MAX;
    resp = range_req(f, &r, KV_OK);
    expect_keys(resp, "k1,k2,k3,k4");
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

/* ---- concurrent readers ---- */

typedef struct reader {
    kv_store *s;
    atomic_int *stop;
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
    /* at least one read even if the writer finished before this thread got a core */
    while (!atomic_load(r->stop) || r->reads == 0) {
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
    atomic_int stop = 0;
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
    atomic_store(&stop, 1);
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
        cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
