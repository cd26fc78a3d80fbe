/* test_srv_list_cache.c — the LIST response cache (kvstore/server/list_cache.c) seen from a
 * client: the server in-process (srv_harness.h), real gRPC calls. A hit must be byte-identical
 * to the miss that filled it; a write (a put, or a lease revoke that deletes keys and completes
 * outside the KV writer path) makes the next LIST read the store again; request variants
 * (limit, keys_only, count_only, sort, filters, revisions) never share an entry unless their
 * answers are the same; a compacted revision fails even when its answer was cached; the byte
 * budget holds; --list-cache-bytes 0 turns it off. Hits and misses are read from
 * kvs_server_get_stats and /metrics. */
#include "srv_harness.h"

#define P_LGRANT  "/etcdserverpb.Lease/LeaseGrant"
#define P_LREVOKE "/etcdserverpb.Lease/LeaseRevoke"

#define NKEYS 60 /* x ~1 KiB: ~64 KiB responses, above the 32 KiB caching threshold */

static char value_buf[1024];

/* Puts NKEYS keys <prefix>k<i> with 1000-byte values tagged by `tag`. */
static int64_t seed(cli *c, const char *prefix, int n, char tag) {
    memset(value_buf, tag, 1000);
    value_buf[1000] = 0;
    int64_t rev = 0;
    for (int i = 0; i < n; i++) {
        char k[64];
        snprintf(k, sizeof k, "%sk%03d", prefix, i);
        rev = put(c, k, value_buf);
    }
    return rev;
}

static void prefix_end(const char *prefix, char *end) {
    strcpy(end, prefix);
    end[strlen(end) - 1]++;
}

/* One Range; returns the raw response bytes (caller frees) or fails the test. */
static uint8_t *list_raw(cli *c, Etcdserverpb__RangeRequest *q, size_t *len) {
    result r = {0};
    int st = call(c, P_RANGE, &q->base, &r);
    if (st != 0) fail_msg("range: %d %s", st, r.message);
    *len = r.len;
    return r.data;
}

static Etcdserverpb__RangeRequest list_req(const char *prefix, char *end) {
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    prefix_end(prefix, end);
    q.key = bd(prefix);
    q.range_end = bd(end);
    return q;
}

static kvs_server_stats stats(srvh *h) {
    kvs_server_stats st;
    run_on_server(h, get_kvs_stats, &st);
    return st;
}

/* Two identical LISTs: the second must be a hit with the very same bytes. Returns the decoded
 * response (caller frees). */
static Etcdserverpb__RangeResponse *list_twice(srvh *h, cli *c, Etcdserverpb__RangeRequest *q,
                                               bool expect_hit) {
    kvs_server_stats before = stats(h);
    size_t n1, n2;
    uint8_t *a = list_raw(c, q, &n1);
    uint8_t *b = list_raw(c, q, &n2);
    kvs_server_stats after = stats(h);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    if (expect_hit) assert_int_equal(after.list_cache_hits, before.list_cache_hits + 1);
    Etcdserverpb__RangeResponse *rr = etcdserverpb__range_response__unpack(NULL, n2, b);
    assert_non_null(rr);
    assert_non_null(rr->header);
    free(a);
    free(b);
    return rr;
}

static void check_header(const Etcdserverpb__RangeResponse *rr, int64_t rev) {
    assert_int_equal(rr->header->revision, rev);
    assert_int_equal(rr->header->raft_term, 1);
    assert_true(rr->header->cluster_id != 0 && rr->header->member_id != 0);
}

static srvh *start_with(size_t budget, bool off) {
    kvs_server_opts o;
    memset(&o, 0, sizeof o);
    o.no_sync = true;
    o.list_cache_bytes = budget;
    o.list_cache_off = off;
    return srv_start_opts(NULL, &o);
}

/* ================================================================ tests */

static void test_hit_is_identical(void **state) {
    (void)state;
    srvh *h = start_with(0, false);
    cli *c = cli_new(h->port);
    int64_t rev = seed(c, "/p/", NKEYS, 'a');
    char end[64];
    Etcdserverpb__RangeRequest q = list_req("/p/", end);
    Etcdserverpb__RangeResponse *rr = list_twice(h, c, &q, true);
    check_header(rr, rev);
    assert_int_equal(rr->n_kvs, NKEYS);
    assert_int_equal(rr->count, NKEYS);
    assert_false(rr->more);
    assert_int_equal(rr->kvs[NKEYS - 1]->value.len, 1000);
    assert_true(kv_is(rr->kvs[0], "/p/k000", NULL));
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    kvs_server_stats st = stats(h);
    assert_int_equal(st.list_cache_misses, 1);
    assert_int_equal(st.list_cache_hits, 1);
    assert_true(st.list_cache_bytes > (size_t)NKEYS * 1000);

    /* serializable reads share the entry (one member: same answer) */
    q.serializable = 1;
    size_t n;
    free(list_raw(c, &q, &n));
    assert_int_equal(stats(h).list_cache_hits, 2);
    /* so does the current revision named explicitly */
    q.serializable = 0;
    q.revision = rev;
    free(list_raw(c, &q, &n));
    assert_int_equal(stats(h).list_cache_hits, 3);

    /* a small LIST is neither cached nor counted */
    put(c, "/s/1", "x");
    Etcdserverpb__RangeRequest s = list_req("/s/", end);
    st = stats(h);
    free(list_raw(c, &s, &n));
    free(list_raw(c, &s, &n));
    kvs_server_stats st2 = stats(h);
    assert_int_equal(st2.list_cache_hits, st.list_cache_hits);
    assert_int_equal(st2.list_cache_misses, st.list_cache_misses);

    /* /metrics */
    char *m = http_get(h->port, "/metrics");
    assert_int_equal(metric(m, "relistlab_list_cache_hits_total "), 3);
    assert_int_equal(metric(m, "relistlab_list_cache_misses_total "), 1);
    assert_true(metric(m, "relistlab_list_cache_bytes ") == 0); /* the put above cleared it */
    assert_int_equal(metric(m, "etcd_mvcc_range_total "), 6);
    free(m);
    cli_free(c);
    srv_stop(h, false);
}

/* An answer of 2 MiB or more gets its own (huge-page) mapping: same behaviour. */
static void test_large_entry(void **state) {
    (void)state;
    srvh *h = start_with(0, false);
    cli *c = cli_new(h->port);
    int n = 2200; /* ~2.3 MB */
    int64_t rev = seed(c, "/L/", n, 'q');
    char end[64];
    Etcdserverpb__RangeRequest q = list_req("/L/", end);
    Etcdserverpb__RangeResponse *rr = list_twice(h, c, &q, true);
    check_header(rr, rev);
    assert_int_equal(rr->n_kvs, (size_t)n);
    assert_true(kv_is(rr->kvs[n - 1], "/L/k999", NULL)); /* key order: k2199 < k999 */
    assert_int_equal(rr->kvs[n - 1]->value.len, 1000);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    kvs_server_stats st = stats(h);
    assert_int_equal(st.list_cache_bytes % (2u << 20), 0); /* whole huge pages */
    assert_true(st.list_cache_bytes >= (size_t)n * 1000);
    /* a write: the mapping is released and the next LIST is new */
    int64_t r2 = put(c, "/L/k000", "x");
    assert_int_equal(stats(h).list_cache_bytes, 0);
    rr = list_twice(h, c, &q, true);
    check_header(rr, r2);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    cli_free(c);
    srv_stop(h, false);
}

static void test_write_between(void **state) {
    (void)state;
    srvh *h = start_with(0, false);
    cli *c = cli_new(h->port);
    int64_t rev = seed(c, "/p/", NKEYS, 'a');
    char end[64];
    Etcdserverpb__RangeRequest q = list_req("/p/", end);
    Etcdserverpb__RangeResponse *rr = list_twice(h, c, &q, true);
    check_header(rr, rev);
    etcdserverpb__range_response__free_unpacked(rr, NULL);

    /* a put inside the prefix: new value, new revision */
    int64_t r2 = put(c, "/p/k007", "changed");
    rr = list_twice(h, c, &q, true);
    check_header(rr, r2);
    assert_true(kv_is(rr->kvs[7], "/p/k007", "changed"));
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    assert_int_equal(stats(h).list_cache_misses, 2);

    /* a put elsewhere: same kvs but the header moves, so no stale header is served */
    int64_t r3 = put(c, "/elsewhere", "x");
    rr = list_twice(h, c, &q, true);
    check_header(rr, r3);
    etcdserverpb__range_response__free_unpacked(rr, NULL);

    /* a lease revoke deletes keys outside the KV writer completion path */
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    g.ttl = 600;
    result r = {0};
    assert_int_equal(call(c, P_LGRANT, &g.base, &r), 0);
    Etcdserverpb__LeaseGrantResponse *gr =
        etcdserverpb__lease_grant_response__unpack(NULL, r.len, r.data);
    int64_t lease = gr->id;
    etcdserverpb__lease_grant_response__free_unpacked(gr, NULL);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd("/p/zz-leased");
    p.value = bd("temp");
    p.lease = lease;
    assert_int_equal(call(c, P_PUT, &p.base, &r), 0);
    rr = list_twice(h, c, &q, true);
    assert_int_equal(rr->n_kvs, NKEYS + 1);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    Etcdserverpb__LeaseRevokeRequest lr = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    lr.id = lease;
    assert_int_equal(call(c, P_LREVOKE, &lr.base, &r), 0);
    Etcdserverpb__LeaseRevokeResponse *lrr =
        etcdserverpb__lease_revoke_response__unpack(NULL, r.len, r.data);
    int64_t r4 = lrr->header->revision;
    etcdserverpb__lease_revoke_response__free_unpacked(lrr, NULL);
    free(r.data);
    rr = list_twice(h, c, &q, true);
    check_header(rr, r4);
    assert_int_equal(rr->n_kvs, NKEYS);
    assert_int_equal(rr->count, NKEYS);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    cli_free(c);
    srv_stop(h, false);
}

/* Variants of one prefix, each listed twice in an interleaved order after all were filled: a
 * hit must answer its own request. */
static void test_variants_not_confused(void **state) {
    (void)state;
    srvh *h = start_with(0, false);
    cli *c = cli_new(h->port);
    int64_t r_old = seed(c, "/p/", NKEYS, 'a');
    int64_t rev = seed(c, "/p/", NKEYS, 'b'); /* every key rewritten: history differs */
    char end[64];
    enum { PLAIN, LIMIT, KEYS, COUNT, OLD, DESC, MINMOD, N_VAR };
    Etcdserverpb__RangeRequest q[N_VAR];
    for (int i = 0; i < N_VAR; i++)
        q[i] = list_req("/p/", end);
    q[LIMIT].limit = 40;
    q[KEYS].keys_only = 1;
    q[COUNT].count_only = 1;
    q[OLD].revision = r_old;
    q[DESC].sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    q[MINMOD].min_mod_revision = rev - 9; /* the last ten puts */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N_VAR; i++) {
            int v = round ? N_VAR - 1 - i : i;
            size_t n;
            uint8_t *raw = list_raw(c, &q[v], &n);
            Etcdserverpb__RangeResponse *rr = etcdserverpb__range_response__unpack(NULL, n, raw);
            assert_non_null(rr);
            check_header(rr, rev);
            assert_int_equal(rr->count, NKEYS); /* before filters and limit */
            switch (v) {
            case PLAIN:
                assert_int_equal(rr->n_kvs, NKEYS);
                assert_int_equal(rr->kvs[0]->value.data[0], 'b');
                break;
            case LIMIT:
                assert_int_equal(rr->n_kvs, 40);
                assert_true(rr->more);
                break;
            case KEYS:
                assert_int_equal(rr->n_kvs, NKEYS);
                assert_int_equal(rr->kvs[5]->value.len, 0);
                break;
            case COUNT:
                assert_int_equal(rr->n_kvs, 0);
                break;
            case OLD:
                assert_int_equal(rr->n_kvs, NKEYS);
                assert_int_equal(rr->kvs[0]->value.data[0], 'a');
                assert_int_equal(rr->kvs[0]->mod_revision, r_old - NKEYS + 1);
                break;
            case DESC:
                assert_int_equal(rr->n_kvs, NKEYS);
                assert_true(kv_is(rr->kvs[0], "/p/k059", NULL));
                break;
            case MINMOD:
                assert_int_equal(rr->n_kvs, 10);
                assert_true(kv_is(rr->kvs[0], "/p/k050", NULL));
                break;
            }
            etcdserverpb__range_response__free_unpacked(rr, NULL);
            free(raw);
        }
    }
    /* cacheable variants: PLAIN, LIMIT (~42 KiB), OLD, DESC; KEYS, COUNT, MINMOD are small */
    kvs_server_stats st = stats(h);
    assert_int_equal(st.list_cache_misses, 4);
    assert_int_equal(st.list_cache_hits, 4);

    /* compaction past a cached old revision: the error, not the cached answer */
    Etcdserverpb__CompactionRequest cr = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    cr.revision = r_old + 1;
    result r = {0};
    assert_int_equal(call(c, P_COMPACT, &cr.base, &r), 0);
    free(r.data);
    expect_error(c, P_RANGE, &q[OLD].base, GRPC_STATUS_OUT_OF_RANGE,
                 "etcdserver: mvcc: required revision has been compacted");
    /* the current answer is still cached (compaction takes no revision) */
    size_t n;
    free(list_raw(c, &q[PLAIN], &n));
    assert_int_equal(stats(h).list_cache_hits, st.list_cache_hits + 1);
    cli_free(c);
    srv_stop(h, false);
}

static void test_budget(void **state) {
    (void)state;
    /* room for two ~64 KiB responses, not three */
    size_t budget = 150u << 10;
    srvh *h = start_with(budget, false);
    cli *c = cli_new(h->port);
    const char *pre[] = {"/a/", "/b/", "/c/"};
    for (int i = 0; i < 3; i++)
        seed(c, pre[i], NKEYS, (char)('a' + i));
    seed(c, "/big/", 3 * NKEYS, 'z'); /* ~190 KiB: more than the whole budget */
    char end[3][64], bend[64];
    Etcdserverpb__RangeRequest q[3];
    for (int i = 0; i < 3; i++)
        q[i] = list_req(pre[i], end[i]);
    size_t n;
    for (int i = 0; i < 3; i++) {
        free(list_raw(c, &q[i], &n));
        assert_true(stats(h).list_cache_bytes <= budget);
    }
    /* /a/ was least recently used: evicted; /c/ is there */
    kvs_server_stats st = stats(h);
    free(list_raw(c, &q[2], &n));
    assert_int_equal(stats(h).list_cache_hits, st.list_cache_hits + 1);
    free(list_raw(c, &q[0], &n));
    kvs_server_stats st2 = stats(h);
    assert_int_equal(st2.list_cache_hits, st.list_cache_hits + 1);
    assert_int_equal(st2.list_cache_misses, st.list_cache_misses + 1);
    assert_true(st2.list_cache_bytes <= budget);

    /* too big to cache: served right, every time from the store */
    Etcdserverpb__RangeRequest b = list_req("/big/", bend);
    for (int i = 0; i < 2; i++) {
        Etcdserverpb__RangeResponse *rr = range(c, &b);
        assert_int_equal(rr->n_kvs, 3 * NKEYS);
        etcdserverpb__range_response__free_unpacked(rr, NULL);
    }
    kvs_server_stats st3 = stats(h);
    assert_int_equal(st3.list_cache_hits, st2.list_cache_hits);
    assert_int_equal(st3.list_cache_misses, st2.list_cache_misses + 2);
    assert_true(st3.list_cache_bytes <= budget);
    cli_free(c);
    srv_stop(h, false);
}

static void test_disabled(void **state) {
    (void)state;
    srvh *h = start_with(0, true);
    cli *c = cli_new(h->port);
    int64_t rev = seed(c, "/p/", NKEYS, 'a');
    char end[64];
    Etcdserverpb__RangeRequest q = list_req("/p/", end);
    Etcdserverpb__RangeResponse *rr = list_twice(h, c, &q, false);
    check_header(rr, rev);
    assert_int_equal(rr->n_kvs, NKEYS);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    kvs_server_stats st = stats(h);
    assert_int_equal(st.list_cache_hits, 0);
    assert_int_equal(st.list_cache_misses, 0);
    assert_int_equal(st.list_cache_bytes, 0);
    assert_int_equal(st.lists_served, 2);
    char *m = http_get(h->port, "/metrics");
    assert_int_equal(metric(m, "relistlab_list_cache_hits_total "), 0);
    free(m);
    cli_free(c);
    srv_stop(h, false);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_is_identical), cmocka_unit_test(test_large_entry),
        cmocka_unit_test(test_write_between),    cmocka_unit_test(test_variants_not_confused),
        cmocka_unit_test(test_budget),           cmocka_unit_test(test_disabled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
