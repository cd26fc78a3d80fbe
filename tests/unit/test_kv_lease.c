/* test_kv_lease.c — etcd 3.4 lease semantics of the MVCC engine through kv.h: grant (auto id,
 * given id, duplicate, minimum and maximum TTL), puts naming leases, revoke deleting attached
 * keys in one revision with DELETE events through the commit callback, keep-alive, time-to-live,
 * the lease list, expiry by the caller's clock, keys moving between leases, lease writes in
 * groups, persistence across a restart (also of a store made before leases) and compaction.
 * Time is always passed in (now_ms), so nothing here sleeps.
 */
#include <lmdb.h>
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

/* ---- commit callback capture ---- */

typedef struct cap_ev {
    int type;
    int64_t main, sub;
    char key[64];
    int64_t prev_lease; /* -1: no prev_kv */
} cap_ev;

typedef struct capture {
    cap_ev ev[64];
    size_t n, commits;
    int64_t last_rev;
} capture;

static void on_commit(void *ud, const kv_event *ev, size_t n, int64_t revision) {
    capture *c = ud;
    c->commits++;
    c->last_rev = revision;
    for (size_t i = 0; i < n && c->n < 64; i++) {
        cap_ev *e = &c->ev[c->n++];
        e->type = ev[i].type;
        e->main = ev[i].main;
        e->sub = ev[i].sub;
        snprintf(e->key, sizeof(e->key), "%.*s", (int)ev[i].key_len, (const char *)ev[i].key);
        e->prev_lease = -1;
        if (ev[i].prev_kv) {
            Mvccpb__KeyValue *kv =
                mvccpb__key_value__unpack(NULL, ev[i].prev_kv_len, ev[i].prev_kv);
            assert_non_null(kv);
            e->prev_lease = kv->lease;
            mvccpb__key_value__free_unpacked(kv, NULL);
        }
    }
}

/* ---- fixture ---- */

typedef struct fx {
    char *dir;
    kv_store *s;
    kv_arena *a;
    capture cap;
    kv_options o;
} fx;

static void fx_open(fx *f) {
    kv_err e;
    if (kv_open(f->dir, &f->o, &f->s, &e) != KV_OK) fail_msg("open: %s", e.msg);
    kv_set_commit_cb(f->s, on_commit, &f->cap);
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof(*f));
    f->dir = tu_mkdtemp("kv-lease");
    f->o = (kv_options){
        .map_size = 64u << 20, .no_sync = true, .cluster_id = 7, .member_id = 8, .leases = true};
    fx_open(f);
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

static void fx_reopen(fx *f) {
    kv_close(f->s);
    fx_open(f);
}

/* ---- helpers ---- */

static ProtobufCBinaryData B(const char *s) {
    ProtobufCBinaryData b = {strlen(s), (uint8_t *)s};
    return b;
}

static int64_t rev_of(fx *f) {
    kv_status st;
    kv_status_get(f->s, &st);
    return st.revision;
}

static int grant(fx *f, int64_t id, int64_t ttl, int64_t now, Etcdserverpb__LeaseGrantResponse **r,
                 kv_err *e) {
    Etcdserverpb__LeaseGrantRequest q = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    q.id = id;
    q.ttl = ttl;
    return kv_lease_grant(f->s, &q, now, f->a, r, e);
}

static int64_t grant_ok(fx *f, int64_t id, int64_t ttl, int64_t now) {
    Etcdserverpb__LeaseGrantResponse *r;
    kv_err e;
    int rc = grant(f, id, ttl, now, &r, &e);
    if (rc) fail_msg("grant: %s", e.msg);
    assert_non_null(r->header);
    return r->id;
}

static int lrevoke(fx *f, int64_t id, Etcdserverpb__LeaseRevokeResponse **r, kv_err *e) {
    Etcdserverpb__LeaseRevokeRequest q = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    q.id = id;
    return kv_lease_revoke(f->s, &q, f->a, r, e);
}

static int put_lease(fx *f, const char *k, int64_t lease, kv_err *e) {
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    r.key = B(k);
    r.value = B("v");
    r.lease = lease;
    Etcdserverpb__PutResponse *resp;
    return kv_put(f->s, &r, f->a, &resp, e);
}

static void put_ok(fx *f, const char *k, int64_t lease) {
    kv_err e;
    if (put_lease(f, k, lease, &e)) fail_msg("put %s: %s", k, e.msg);
}

static Etcdserverpb__RangeResponse *get(fx *f, const char *k) {
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key = B(k);
    Etcdserverpb__RangeResponse *resp;
    kv_err e;
    assert_int_equal(kv_range(f->s, &r, f->a, &resp, &e), KV_OK);
    return resp;
}

static Etcdserverpb__LeaseTimeToLiveResponse *ttl_of(fx *f, int64_t id, bool keys, int64_t now) {
    Etcdserverpb__LeaseTimeToLiveRequest q = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
    q.id = id;
    q.keys = keys;
    Etcdserverpb__LeaseTimeToLiveResponse *r;
    kv_err e;
    assert_int_equal(kv_lease_timetolive(f->s, &q, now, f->a, &r, &e), KV_OK);
    assert_int_equal(r->id, id);
    assert_non_null(r->header);
    return r;
}

/* The attached keys of a lease, joined by ',' (the response's order). */
static const char *keys_of(fx *f, int64_t id, char *buf, size_t n) {
    Etcdserverpb__LeaseTimeToLiveResponse *r = ttl_of(f, id, true, 0);
    buf[0] = 0;
    for (size_t i = 0; i < r->n_keys; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%.*s", i ? "," : "", (int)r->keys[i].len,
                 (const char *)r->keys[i].data);
    }
    return buf;
}

static int64_t keepalive(fx *f, int64_t id, int64_t now) {
    Etcdserverpb__LeaseKeepAliveRequest q = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
    q.id = id;
    Etcdserverpb__LeaseKeepAliveResponse *r;
    kv_err e;
    assert_int_equal(kv_lease_keepalive(f->s, &q, now, f->a, &r, &e), KV_OK);
    assert_int_equal(r->id, id);
    assert_non_null(r->header);
    assert_int_equal(r->header->cluster_id, 7);
    return r->ttl;
}

/* ---- tests ---- */

static void test_grant(void **state) {
    fx *f = *state;
    int64_t rev = rev_of(f);
    Etcdserverpb__LeaseGrantResponse *r;
    kv_err e;
    /* auto ids: positive and distinct */
    int64_t ids[20];
    for (int i = 0; i < 20; i++) {
        assert_int_equal(grant(f, 0, 30, 0, &r, &e), KV_OK);
        assert_true(r->id > 0);
        assert_int_equal(r->ttl, 30);
        assert_int_equal(r->header->revision, rev); /* a grant takes no revision */
        assert_int_equal(r->header->cluster_id, 7);
        assert_int_equal(r->header->member_id, 8);
        ids[i] = r->id;
        for (int j = 0; j < i; j++)
            assert_true(ids[j] != ids[i]);
    }
    assert_int_equal(rev_of(f), rev);
    assert_int_equal(f->cap.commits, 0); /* no events: no commit callback */
    /* given id */
    assert_int_equal(grant(f, 1234, 60, 0, &r, &e), KV_OK);
    assert_int_equal(r->id, 1234);
    assert_int_equal(r->ttl, 60);
    /* duplicate id: etcd's ErrLeaseExist */
    assert_int_equal(grant(f, 1234, 60, 0, &r, &e), KV_ERR_LEASE_EXISTS);
    assert_string_equal(e.msg, "etcdserver: lease already exists");
    assert_int_equal(kv_code_grpc_status(KV_ERR_LEASE_EXISTS), 9);
    /* minimum TTL: raised to 2 s (etcd: ceil(1.5 * 10 ticks * 100 ms)), also 0 and negative */
    assert_int_equal(grant(f, 0, 1, 0, &r, &e), KV_OK);
    assert_int_equal(r->ttl, 2);
    assert_int_equal(grant(f, 0, 0, 0, &r, &e), KV_OK);
    assert_int_equal(r->ttl, 2);
    assert_int_equal(grant(f, 0, -5, 0, &r, &e), KV_OK);
    assert_int_equal(r->ttl, 2);
    assert_int_equal(ttl_of(f, r->id, false, 0)->grantedttl, 2);
    /* maximum TTL */
    assert_int_equal(grant(f, 99, KV_LEASE_MAX_TTL + 1, 0, &r, &e), KV_ERR_LEASE_TTL_TOO_LARGE);
    assert_string_equal(e.msg, "etcdserver: too large lease TTL");
    assert_int_equal(kv_code_grpc_status(KV_ERR_LEASE_TTL_TOO_LARGE), 11);
    assert_int_equal(grant(f, 99, KV_LEASE_MAX_TTL, 0, &r, &e), KV_OK);
    assert_int_equal(r->ttl, KV_LEASE_MAX_TTL);
    assert_int_equal(ttl_of(f, 99, false, 0)->ttl, KV_LEASE_MAX_TTL);
    /* a negative id given by a client is a lease id like any other */
    assert_int_equal(grant(f, -3, 10, 0, &r, &e), KV_OK);
    assert_int_equal(r->id, -3);
    assert_int_equal(rev_of(f), rev);
}

static void test_min_ttl_option(void **state) {
    fx *f = *state;
    kv_close(f->s);
    f->o.lease_min_ttl = 5;
    fx_open(f);
    Etcdserverpb__LeaseGrantResponse *r;
    kv_err e;
    assert_int_equal(grant(f, 0, 3, 0, &r, &e), KV_OK);
    assert_int_equal(r->ttl, 5);
    assert_int_equal(grant(f, 0, 6, 0, &r, &e), KV_OK);
    assert_int_equal(r->ttl, 6);
}

static void test_put_with_lease(void **state) {
    fx *f = *state;
    kv_err e;
    /* unknown lease: etcd's ErrLeaseNotFound */
    assert_int_equal(put_lease(f, "k", 555, &e), KV_ERR_LEASE_NOT_FOUND);
    assert_string_equal(e.msg, "etcdserver: requested lease not found");
    assert_int_equal(kv_code_grpc_status(KV_ERR_LEASE_NOT_FOUND), 5);
    assert_int_equal(get(f, "k")->n_kvs, 0);
    int64_t l = grant_ok(f, 555, 10, 0);
    put_ok(f, "k", l);
    Etcdserverpb__RangeResponse *g = get(f, "k");
    assert_int_equal(g->n_kvs, 1);
    assert_int_equal(g->kvs[0]->lease, 555);
    /* inside a txn too */
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = B("t");
    p.lease = 556;
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT, *ops[1] = {&op};
    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op.request_put = &p;
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.success = ops;
    t.n_success = 1;
    Etcdserverpb__TxnResponse *tr;
    assert_int_equal(kv_txn(f->s, &t, f->a, &tr, &e), KV_ERR_LEASE_NOT_FOUND);
    p.lease = 555;
    assert_int_equal(kv_txn(f->s, &t, f->a, &tr, &e), KV_OK);
    char buf[256];
    assert_string_equal(keys_of(f, 555, buf, sizeof(buf)), "k,t");
}

static bool yes(void *ud, int64_t lease) {
    (void)ud;
    (void)lease;
    return true;
}
static bool only_42(void *ud, int64_t lease) {
    (void)ud;
    return lease == 42;
}

static void test_checker_hook(void **state) {
    fx *f = *state;
    kv_err e;
    /* with kv_options.leases the engine decides; the hook is not consulted */
    kv_set_lease_checker(f->s, yes, NULL);
    assert_int_equal(put_lease(f, "a", 9, &e), KV_ERR_LEASE_NOT_FOUND);
    /* without it: unverified, or the hook when set (the engine's earlier contract) */
    kv_close(f->s);
    f->o.leases = false;
    fx_open(f);
    put_ok(f, "a", 9);
    kv_set_lease_checker(f->s, only_42, NULL);
    assert_int_equal(put_lease(f, "b", 9, &e), KV_ERR_LEASE_NOT_FOUND);
    put_ok(f, "b", 42);
    kv_set_lease_checker(f->s, NULL, NULL);
    /* the lease API works in this mode too: a granted lease gets its keys attached */
    grant_ok(f, 9, 10, 0);
    put_ok(f, "c", 9);
    char buf[256];
    assert_string_equal(keys_of(f, 9, buf, sizeof(buf)), "c");
    Etcdserverpb__LeaseRevokeResponse *r;
    assert_int_equal(lrevoke(f, 9, &r, &e), KV_OK);
    assert_int_equal(get(f, "c")->n_kvs, 0);
    assert_int_equal(get(f, "a")->n_kvs, 1); /* put before the grant: never attached */
}

static void test_revoke_deletes_in_one_revision(void **state) {
    fx *f = *state;
    int64_t l = grant_ok(f, 0, 10, 0), other = grant_ok(f, 0, 10, 0);
    put_ok(f, "z", l);
    put_ok(f, "b", l);
    put_ok(f, "plain", 0);
    put_ok(f, "a", l);
    put_ok(f, "o", other);
    int64_t rev = rev_of(f);
    memset(&f->cap, 0, sizeof(f->cap));
    Etcdserverpb__LeaseRevokeResponse *r;
    kv_err e;
    assert_int_equal(lrevoke(f, l, &r, &e), KV_OK);
    assert_int_equal(r->header->revision, rev + 1);
    assert_int_equal(r->header->member_id, 8);
    assert_int_equal(rev_of(f), rev + 1);
    /* one commit, one DELETE per key, key order, one main revision, subs 0.. */
    assert_int_equal(f->cap.commits, 1);
    assert_int_equal(f->cap.last_rev, rev + 1);
    assert_int_equal(f->cap.n, 3);
    const char *want[] = {"a", "b", "z"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f->cap.ev[i].type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
        assert_int_equal(f->cap.ev[i].main, rev + 1);
        assert_int_equal(f->cap.ev[i].sub, i);
        assert_string_equal(f->cap.ev[i].key, want[i]);
        assert_int_equal(f->cap.ev[i].prev_lease, l);
    }
    assert_int_equal(get(f, "a")->n_kvs, 0);
    assert_int_equal(get(f, "z")->n_kvs, 0);
    assert_int_equal(get(f, "plain")->n_kvs, 1);
    assert_int_equal(get(f, "o")->n_kvs, 1);
    /* the lease is gone */
    assert_int_equal(ttl_of(f, l, false, 0)->ttl, -1);
    assert_int_equal(lrevoke(f, l, &r, &e), KV_ERR_LEASE_NOT_FOUND);
    assert_string_equal(e.msg, "etcdserver: requested lease not found");
    /* a lease with no keys: removed without taking a revision, no events */
    int64_t empty = grant_ok(f, 0, 10, 0);
    memset(&f->cap, 0, sizeof(f->cap));
    assert_int_equal(lrevoke(f, empty, &r, &e), KV_OK);
    assert_int_equal(r->header->revision, rev + 1);
    assert_int_equal(rev_of(f), rev + 1);
    assert_int_equal(f->cap.commits, 0);
    assert_int_equal(ttl_of(f, empty, false, 0)->ttl, -1);
    /* a key put with the revoked lease is refused now */
    assert_int_equal(put_lease(f, "a", l, &e), KV_ERR_LEASE_NOT_FOUND);
}

typedef struct feed_cap {
    int n;
    int64_t main[8], sub[8];
    int type[8];
} feed_cap;

static int feed_fn(void *ud, const kv_event *ev) {
    feed_cap *c = ud;
    if (c->n < 8) {
        c->main[c->n] = ev->main;
        c->sub[c->n] = ev->sub;
        c->type[c->n] = ev->type;
    }
    c->n++;
    return 0;
}

static void test_revoke_events_in_feed(void **state) {
    fx *f = *state;
    int64_t l = grant_ok(f, 0, 10, 0);
    put_ok(f, "x", l);
    put_ok(f, "y", l);
    int64_t rev = rev_of(f);
    Etcdserverpb__LeaseRevokeResponse *r;
    kv_err e;
    assert_int_equal(lrevoke(f, l, &r, &e), KV_OK);
    feed_cap c = {0};
    int64_t next = 0;
    assert_int_equal(kv_feed_read(f->s, rev + 1, 0, (const uint8_t *)"\0", 1, (const uint8_t *)"\0",
                                  1, true, 100, 1 << 20, feed_fn, &c, &next, &e),
                     KV_OK);
    assert_int_equal(c.n, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(c.main[i], rev + 1);
        assert_int_equal(c.sub[i], i);
        assert_int_equal(c.type[i], MVCCPB__EVENT__EVENT_TYPE__DELETE);
    }
    assert_int_equal(next, rev + 2);
}

static void test_keepalive_and_ttl(void **state) {
    fx *f = *state;
    int64_t l = grant_ok(f, 0, 10, 1000); /* expires at 11000 */
    assert_int_equal(ttl_of(f, l, false, 1000)->ttl, 10);
    assert_int_equal(ttl_of(f, l, false, 1001)->ttl, 9); /* truncated, as etcd's int64(secs) */
    assert_int_equal(ttl_of(f, l, false, 5000)->ttl, 6);
    assert_int_equal(ttl_of(f, l, false, 5000)->grantedttl, 10);
    assert_int_equal(keepalive(f, l, 5000), 10); /* now expires at 15000 */
    assert_int_equal(ttl_of(f, l, false, 5000)->ttl, 10);
    int64_t ids[4];
    assert_int_equal(kv_lease_expired(f->s, 11000, ids, 4), 0);
    assert_int_equal(kv_lease_expired(f->s, 14999, ids, 4), 0);
    assert_int_equal(kv_lease_expired(f->s, 15000, ids, 4), 1);
    assert_int_equal(ids[0], l);
    /* an expired lease is not renewed (etcd waits for its revoke, then answers not found) */
    assert_int_equal(keepalive(f, l, 15000), 0);
    assert_int_equal(kv_lease_expired(f->s, 15000, ids, 4), 1);
    assert_int_equal(ttl_of(f, l, false, 17500)->ttl, -2); /* expired, not yet revoked */
    /* unknown lease: TTL 0 for keepalive, -1 for timetolive (v3rpc's answers) */
    assert_int_equal(keepalive(f, 4242, 0), 0);
    Etcdserverpb__LeaseTimeToLiveResponse *t = ttl_of(f, 4242, true, 0);
    assert_int_equal(t->ttl, -1);
    assert_int_equal(t->grantedttl, 0);
    assert_int_equal(t->n_keys, 0);
}

static void test_timetolive_keys(void **state) {
    fx *f = *state;
    int64_t l = grant_ok(f, 77, 20, 0);
    char buf[256];
    assert_string_equal(keys_of(f, l, buf, sizeof(buf)), "");
    put_ok(f, "m/2", l);
    put_ok(f, "m/1", l);
    put_ok(f, "n", 0);
    put_ok(f, "a", l);
    Etcdserverpb__LeaseTimeToLiveResponse *t = ttl_of(f, l, true, 3000);
    assert_int_equal(t->ttl, 17);
    assert_int_equal(t->grantedttl, 20);
    assert_int_equal(t->n_keys, 3);
    assert_string_equal(keys_of(f, l, buf, sizeof(buf)), "a,m/1,m/2");
    assert_int_equal(ttl_of(f, l, false, 3000)->n_keys, 0); /* keys only when asked */
}

static void test_leases_list(void **state) {
    fx *f = *state;
    Etcdserverpb__LeaseLeasesResponse *r;
    kv_err e;
    assert_int_equal(kv_lease_leases(f->s, 0, f->a, &r, &e), KV_OK);
    assert_int_equal(r->n_leases, 0);
    assert_non_null(r->header);
    grant_ok(f, 3, 30, 0);
    grant_ok(f, 1, 10, 0);
    grant_ok(f, 2, 20, 0);
    assert_int_equal(kv_lease_leases(f->s, 0, f->a, &r, &e), KV_OK);
    assert_int_equal(r->n_leases, 3);
    /* soonest expiry first, as etcd's Leases() */
    assert_int_equal(r->leases[0]->id, 1);
    assert_int_equal(r->leases[1]->id, 2);
    assert_int_equal(r->leases[2]->id, 3);
    assert_int_equal(r->header->revision, rev_of(f));
    Etcdserverpb__LeaseRevokeResponse *rv;
    assert_int_equal(lrevoke(f, 2, &rv, &e), KV_OK);
    assert_int_equal(kv_lease_leases(f->s, 0, f->a, &r, &e), KV_OK);
    assert_int_equal(r->n_leases, 2);
}

static void test_expiry_and_grouped_revokes(void **state) {
    fx *f = *state;
    int64_t a = grant_ok(f, 0, 5, 0), b = grant_ok(f, 0, 5, 1000), c = grant_ok(f, 0, 60, 0);
    put_ok(f, "a1", a);
    put_ok(f, "a2", a);
    put_ok(f, "b1", b);
    put_ok(f, "c1", c);
    int64_t ids[8];
    assert_int_equal(kv_lease_expired(f->s, 4999, ids, 8), 0);
    assert_int_equal(kv_lease_expired(f->s, 5000, ids, 8), 1);
    assert_int_equal(ids[0], a);
    assert_int_equal(kv_lease_expired(f->s, 6000, ids, 1), 1); /* bounded by max */
    size_t n = kv_lease_expired(f->s, 6000, ids, 8);
    assert_int_equal(n, 2);
    /* the server's writer revokes them in one group commit: one revision each */
    int64_t rev = rev_of(f);
    memset(&f->cap, 0, sizeof(f->cap));
    kv_write w[2];
    kv_lease_op lo[2];
    Etcdserverpb__LeaseRevokeRequest rq[2];
    memset(w, 0, sizeof(w));
    memset(lo, 0, sizeof(lo));
    for (size_t i = 0; i < n; i++) {
        etcdserverpb__lease_revoke_request__init(&rq[i]);
        rq[i].id = ids[i];
        lo[i].revoke = &rq[i];
        w[i].lease = &lo[i];
        w[i].arena = f->a;
    }
    kv_err e;
    assert_int_equal(kv_apply(f->s, w, n, &e), KV_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(w[i].err.code, KV_OK);
        assert_null(w[i].resp);
        assert_non_null(lo[i].revoke_resp);
        assert_int_equal(w[i].revision, rev + 1 + (int64_t)i);
        assert_int_equal(lo[i].revoke_resp->header->revision, rev + 1 + (int64_t)i);
    }
    assert_int_equal(f->cap.commits, 1);
    assert_int_equal(f->cap.n, 3);
    assert_int_equal(rev_of(f), rev + 2);
    assert_int_equal(kv_lease_expired(f->s, 6000, ids, 8), 0);
    assert_int_equal(get(f, "a1")->n_kvs, 0);
    assert_int_equal(get(f, "b1")->n_kvs, 0);
    assert_int_equal(get(f, "c1")->n_kvs, 1);
}

static void test_group_mixes_leases_and_kv(void **state) {
    fx *f = *state;
    int64_t rev = rev_of(f);
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    g.id = 500;
    g.ttl = 10;
    Etcdserverpb__PutRequest p1 = ETCDSERVERPB__PUT_REQUEST__INIT, p2 = p1;
    p1.key = B("k1");
    p1.lease = 500; /* granted earlier in the same group: visible */
    p2.key = B("k2");
    p2.lease = 501; /* never granted */
    Etcdserverpb__RequestOp o1 = ETCDSERVERPB__REQUEST_OP__INIT, o2 = o1;
    o1.request_case = o2.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    o1.request_put = &p1;
    o2.request_put = &p2;
    Etcdserverpb__LeaseRevokeRequest rv = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    rv.id = 500;
    kv_lease_op lg = {0}, lr = {0}, dup = {0};
    lg.grant = dup.grant = &g;
    lr.revoke = &rv;
    kv_write w[5];
    memset(w, 0, sizeof(w));
    w[0].lease = &lg;
    w[1].op = &o1;
    w[2].op = &o2;
    w[3].lease = &dup;
    w[4].lease = &lr;
    for (int i = 0; i < 5; i++)
        w[i].arena = f->a;
    kv_err e;
    memset(&f->cap, 0, sizeof(f->cap));
    assert_int_equal(kv_apply(f->s, w, 5, &e), KV_OK);
    assert_int_equal(w[0].err.code, KV_OK);
    assert_int_equal(lg.grant_resp->id, 500);
    assert_int_equal(w[0].revision, rev);
    assert_int_equal(w[1].err.code, KV_OK);
    assert_int_equal(w[1].revision, rev + 1);
    assert_int_equal(w[2].err.code, KV_ERR_LEASE_NOT_FOUND);
    assert_int_equal(w[3].err.code, KV_ERR_LEASE_EXISTS);
    assert_null(dup.grant_resp);
    assert_int_equal(w[4].err.code, KV_OK);
    assert_int_equal(w[4].revision, rev + 2);
    assert_int_equal(f->cap.n, 2); /* PUT k1, DELETE k1 */
    assert_int_equal(f->cap.ev[0].type, MVCCPB__EVENT__EVENT_TYPE__PUT);
    assert_int_equal(f->cap.ev[1].type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
    assert_int_equal(get(f, "k1")->n_kvs, 0);
    assert_int_equal(ttl_of(f, 500, false, 0)->ttl, -1);
    /* a grant alone commits (no revision) and a failed one leaves nothing behind */
    Etcdserverpb__LeaseGrantResponse *gr;
    assert_int_equal(grant(f, 600, KV_LEASE_MAX_TTL + 1, 0, &gr, &e), KV_ERR_LEASE_TTL_TOO_LARGE);
    assert_int_equal(ttl_of(f, 600, false, 0)->ttl, -1);
    /* a lease op with both (or neither) of grant and revoke is refused */
    kv_write bad;
    memset(&bad, 0, sizeof(bad));
    lg.revoke = &rv;
    bad.lease = &lg;
    bad.arena = f->a;
    assert_int_equal(kv_apply(f->s, &bad, 1, &e), KV_OK);
    assert_int_equal(bad.err.code, KV_ERR_INVALID);
    lg.grant = NULL;
    lg.revoke = NULL;
    assert_int_equal(kv_apply(f->s, &bad, 1, &e), KV_OK);
    assert_int_equal(bad.err.code, KV_ERR_INVALID);
}

static void test_key_moves_between_leases(void **state) {
    fx *f = *state;
    int64_t l1 = grant_ok(f, 11, 10, 0), l2 = grant_ok(f, 12, 10, 0);
    char buf[256];
    put_ok(f, "k", l1);
    put_ok(f, "j", l1);
    assert_string_equal(keys_of(f, l1, buf, sizeof(buf)), "j,k");
    put_ok(f, "k", l2); /* moves */
    assert_string_equal(keys_of(f, l1, buf, sizeof(buf)), "j");
    assert_string_equal(keys_of(f, l2, buf, sizeof(buf)), "k");
    /* ignore_lease keeps the current lease */
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = B("k");
    p.value = B("new");
    p.ignore_lease = true;
    Etcdserverpb__PutResponse *pr;
    kv_err e;
    assert_int_equal(kv_put(f->s, &p, f->a, &pr, &e), KV_OK);
    assert_int_equal(get(f, "k")->kvs[0]->lease, l2);
    assert_string_equal(keys_of(f, l2, buf, sizeof(buf)), "k");
    /* revoking the old lease leaves the moved key alone */
    Etcdserverpb__LeaseRevokeResponse *r;
    assert_int_equal(lrevoke(f, l1, &r, &e), KV_OK);
    assert_int_equal(get(f, "k")->n_kvs, 1);
    assert_int_equal(get(f, "j")->n_kvs, 0);
    /* a put without a lease detaches */
    put_ok(f, "k", 0);
    assert_string_equal(keys_of(f, l2, buf, sizeof(buf)), "");
    put_ok(f, "k", l2);
    /* a delete detaches */
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    d.key = B("k");
    Etcdserverpb__DeleteRangeResponse *dr;
    assert_int_equal(kv_delete_range(f->s, &d, f->a, &dr, &e), KV_OK);
    assert_int_equal(dr->deleted, 1);
    assert_string_equal(keys_of(f, l2, buf, sizeof(buf)), "");
    put_ok(f, "other", l2);
    int64_t rev = rev_of(f);
    assert_int_equal(lrevoke(f, l2, &r, &e), KV_OK);
    assert_int_equal(r->header->revision, rev + 1); /* only "other" */
    assert_int_equal(get(f, "other")->n_kvs, 0);
}

static void test_restart_persistence(void **state) {
    fx *f = *state;
    int64_t l = grant_ok(f, 0, 10, 0), gone = grant_ok(f, 0, 3, 0);
    grant_ok(f, 31, 1, 0); /* raised to 2 */
    put_ok(f, "p/1", l);
    put_ok(f, "p/2", l);
    Etcdserverpb__LeaseRevokeResponse *r;
    kv_err e;
    assert_int_equal(lrevoke(f, gone, &r, &e), KV_OK);
    fx_reopen(f);
    Etcdserverpb__LeaseLeasesResponse *ls;
    assert_int_equal(kv_lease_leases(f->s, 1000000, f->a, &ls, &e), KV_OK);
    assert_int_equal(ls->n_leases, 2);
    /* expiry restarts at the full TTL from the first clock seen (etcd's Promote) */
    int64_t ids[4];
    assert_int_equal(kv_lease_expired(f->s, 1000000, ids, 4), 0);
    assert_int_equal(kv_lease_expired(f->s, 1002000, ids, 4), 1);
    assert_int_equal(ids[0], 31);
    Etcdserverpb__LeaseTimeToLiveResponse *t = ttl_of(f, l, true, 1004000);
    assert_int_equal(t->ttl, 6);
    assert_int_equal(t->grantedttl, 10);
    assert_int_equal(t->n_keys, 2);
    assert_int_equal(ttl_of(f, gone, false, 0)->ttl, -1);
    /* still a lease: puts may name it, a duplicate grant fails, revoke deletes its keys */
    put_ok(f, "p/3", l);
    Etcdserverpb__LeaseGrantResponse *gr;
    assert_int_equal(grant(f, l, 10, 0, &gr, &e), KV_ERR_LEASE_EXISTS);
    int64_t rev = rev_of(f);
    memset(&f->cap, 0, sizeof(f->cap));
    assert_int_equal(lrevoke(f, l, &r, &e), KV_OK);
    assert_int_equal(rev_of(f), rev + 1);
    assert_int_equal(f->cap.n, 3);
    assert_string_equal(f->cap.ev[0].key, "p/1");
    assert_string_equal(f->cap.ev[2].key, "p/3");
    fx_reopen(f);
    assert_int_equal(kv_lease_leases(f->s, 0, f->a, &ls, &e), KV_OK);
    assert_int_equal(ls->n_leases, 1);
    assert_int_equal(get(f, "p/1")->n_kvs, 0);
}

/* A store written before leases existed has no "lease"/"lkeys" databases: opening adds them. */
static void test_store_from_before_leases(void **state) {
    fx *f = *state;
    put_ok(f, "old", 0);
    kv_close(f->s);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi d;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 64u << 20), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "lease", 0, &d), 0);
    assert_int_equal(mdb_drop(txn, d, 1), 0);
    assert_int_equal(mdb_dbi_open(txn, "lkeys", MDB_DUPSORT, &d), 0);
    assert_int_equal(mdb_drop(txn, d, 1), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "lease", 0, &d), MDB_NOTFOUND);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    fx_open(f);
    assert_int_equal(get(f, "old")->n_kvs, 1);
    int64_t l = grant_ok(f, 0, 10, 0);
    put_ok(f, "new", l);
    fx_reopen(f);
    char buf[64];
    assert_string_equal(keys_of(f, l, buf, sizeof(buf)), "new");
}

static void test_compaction_unaffected(void **state) {
    fx *f = *state;
    int64_t l = grant_ok(f, 0, 10, 0);
    for (int i = 0; i < 5; i++) {
        put_ok(f, "c/a", l);
        put_ok(f, "c/b", 0);
    }
    int64_t rev = rev_of(f);
    kv_err e;
    assert_int_equal(kv_compact(f->s, rev, &e), KV_OK);
    bool done = false;
    while (!done)
        assert_int_equal(kv_compact_step(f->s, 3, &done, &e), KV_OK);
    char buf[64];
    assert_string_equal(keys_of(f, l, buf, sizeof(buf)), "c/a");
    Etcdserverpb__LeaseRevokeResponse *r;
    assert_int_equal(lrevoke(f, l, &r, &e), KV_OK);
    assert_int_equal(rev_of(f), rev + 1);
    assert_int_equal(get(f, "c/a")->n_kvs, 0);
    /* history at the compaction point still reads the key with its lease */
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = B("c/a");
    q.revision = rev;
    Etcdserverpb__RangeResponse *g;
    assert_int_equal(kv_range(f->s, &q, f->a, &g, &e), KV_OK);
    assert_int_equal(g->n_kvs, 1);
    assert_int_equal(g->kvs[0]->lease, l);
    assert_int_equal(kv_compact(f->s, rev + 1, &e), KV_OK);
    done = false;
    while (!done)
        assert_int_equal(kv_compact_step(f->s, 3, &done, &e), KV_OK);
    assert_int_equal(get(f, "c/b")->n_kvs, 1);
}

/* Many leases: the in-memory table grows and shrinks (deletion keeps lookups right). */
static void test_many_leases(void **state) {
    fx *f = *state;
    kv_err e;
    enum { N = 600 };
    kv_write *w = calloc(N, sizeof(*w));
    kv_lease_op *lo = calloc(N, sizeof(*lo));
    Etcdserverpb__LeaseGrantRequest *g = calloc(N, sizeof(*g));
    for (int i = 0; i < N; i++) {
        etcdserverpb__lease_grant_request__init(&g[i]);
        g[i].id = 1000 + i;
        g[i].ttl = 10 + i % 7;
        lo[i].grant = &g[i];
        w[i].lease = &lo[i];
        w[i].arena = f->a;
    }
    assert_int_equal(kv_apply(f->s, w, N, &e), KV_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(w[i].err.code, KV_OK);
    Etcdserverpb__LeaseRevokeResponse *r;
    for (int i = 0; i < N; i += 2)
        assert_int_equal(lrevoke(f, 1000 + i, &r, &e), KV_OK);
    for (int i = 0; i < N; i++) {
        Etcdserverpb__LeaseTimeToLiveResponse *t = ttl_of(f, 1000 + i, false, 0);
        assert_int_equal(t->ttl, i % 2 ? 10 + i % 7 : -1);
    }
    Etcdserverpb__LeaseLeasesResponse *ls;
    assert_int_equal(kv_lease_leases(f->s, 0, f->a, &ls, &e), KV_OK);
    assert_int_equal(ls->n_leases, N / 2);
    int64_t ids[N];
    size_t due = 0;
    for (int i = 1; i < N; i += 2)
        due += 10 + i % 7 <= 13;
    assert_int_equal(kv_lease_expired(f->s, 13000, ids, N), due);
    free(w);
    free(lo);
    free(g);
}

/* Keep-alives, time-to-live and the expiry check run on other threads than the writer. */
typedef struct side {
    kv_store *s;
    _Atomic int stop;
    long calls;
} side;

static void *side_main(void *p) {
    side *sd = p;
    kv_arena *a = kv_arena_new();
    int64_t ids[16];
    while (!sd->stop) {
        for (int64_t id = 1; id <= 40; id++) {
            Etcdserverpb__LeaseKeepAliveRequest k = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
            Etcdserverpb__LeaseTimeToLiveRequest t = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
            k.id = t.id = id;
            t.keys = true;
            Etcdserverpb__LeaseKeepAliveResponse *kr;
            Etcdserverpb__LeaseTimeToLiveResponse *tr;
            kv_err e;
            if (kv_lease_keepalive(sd->s, &k, 0, a, &kr, &e) ||
                kv_lease_timetolive(sd->s, &t, 0, a, &tr, &e))
                abort();
            if (kr->ttl != 0 && kr->ttl != 10) abort();
            sd->calls++;
        }
        kv_lease_expired(sd->s, 1 << 30, ids, 16);
        kv_arena_reset(a);
    }
    kv_arena_free(a);
    return NULL;
}

static void test_concurrent_readers(void **state) {
    fx *f = *state;
    side sd = {.s = f->s};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, side_main, &sd), 0);
    char k[32];
    for (int round = 0; round < 15; round++) {
        for (int64_t id = 1; id <= 40; id++)
            grant_ok(f, id, 10, 0);
        for (int64_t id = 1; id <= 40; id++) {
            snprintf(k, sizeof(k), "k/%d/%lld", round, (long long)id);
            put_ok(f, k, id);
        }
        Etcdserverpb__LeaseRevokeResponse *r;
        kv_err e;
        for (int64_t id = 1; id <= 40; id++)
            assert_int_equal(lrevoke(f, id, &r, &e), KV_OK);
        kv_arena_reset(f->a);
    }
    sd.stop = 1;
    pthread_join(th, NULL);
    assert_true(sd.calls > 0);
    kv_status st;
    kv_status_get(f->s, &st);
    assert_int_equal(st.keys, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_grant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min_ttl_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_with_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checker_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_deletes_in_one_revision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_events_in_feed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_and_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timetolive_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leases_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_and_grouped_revokes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_mixes_leases_and_kv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_moves_between_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_from_before_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_unaffected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
