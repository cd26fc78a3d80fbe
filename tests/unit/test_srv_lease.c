/* test_srv_lease.c — etcdserverpb.Lease on `kvstore serve`, end to end over the project's own
 * gRPC client: grant (random and chosen ids, minimum TTL, duplicates), put with a lease,
 * time-to-live with keys, the lease list, revoke (keys deleted in one revision, watchers see
 * DELETE events), LeaseKeepAlive (TTL answers, unknown lease -> TTL 0, half-close ends with
 * OK), expiry by time (min TTL 2 s, so the test takes ~3.5 s), leases across a restart, and the
 * lease metrics. */
#include "srv_watchcli.h"

static Etcdserverpb__LeaseTimeToLiveResponse *ttl_of(cli *c, int64_t id, bool keys) {
    Etcdserverpb__LeaseTimeToLiveRequest q = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
    q.id = id;
    q.keys = keys;
    result r = {0};
    int st = call(c, P_LTTL, &q.base, &r);
    if (st) fail_msg("timetolive: %d %s", st, r.message);
    Etcdserverpb__LeaseTimeToLiveResponse *tr =
        etcdserverpb__lease_time_to_live_response__unpack(NULL, r.len, r.data);
    free(r.data);
    assert_non_null(tr);
    assert_non_null(tr->header);
    return tr;
}

static size_t n_leases(cli *c, int64_t want_id) {
    Etcdserverpb__LeaseLeasesRequest q = ETCDSERVERPB__LEASE_LEASES_REQUEST__INIT;
    result r = {0};
    assert_int_equal(call(c, P_LLEASES, &q.base, &r), 0);
    Etcdserverpb__LeaseLeasesResponse *lr =
        etcdserverpb__lease_leases_response__unpack(NULL, r.len, r.data);
    free(r.data);
    assert_non_null(lr);
    size_t n = lr->n_leases;
    bool found = !want_id;
    for (size_t i = 0; i < n; i++)
        found |= lr->leases[i]->id == want_id;
    assert_true(found);
    etcdserverpb__lease_leases_response__free_unpacked(lr, NULL);
    return n;
}

static int lease_revoke(cli *c, int64_t id, int64_t *rev, char *msg) {
    Etcdserverpb__LeaseRevokeRequest q = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    q.id = id;
    result r = {0};
    int st = call(c, P_LREVOKE, &q.base, &r);
    if (msg) snprintf(msg, 256, "%s", r.message);
    if (st == 0 && rev) {
        Etcdserverpb__LeaseRevokeResponse *rr =
            etcdserverpb__lease_revoke_response__unpack(NULL, r.len, r.data);
        *rev = rr->header->revision;
        etcdserverpb__lease_revoke_response__free_unpacked(rr, NULL);
    }
    free(r.data);
    return st;
}

static long count_keys(cli *c, const char *prefix, const char *end) {
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd(prefix);
    q.range_end = bd(end);
    q.count_only = true;
    Etcdserverpb__RangeResponse *rr = range(c, &q);
    long n = (long)rr->count;
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    return n;
}

/* ---- grant, put, timetolive, list, revoke -> DELETE events ---- */

static void test_lease_grant_put_revoke(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    int64_t ttl;
    int64_t id = lease_grant(c, 60, 0, &ttl);
    assert_true(id > 0);
    assert_int_equal(ttl, 60);
    assert_int_equal(lease_grant(c, 1, 42, &ttl), 42);
    assert_int_equal(ttl, 2); /* raised to the minimum TTL, as etcd does */
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    g.id = 42;
    g.ttl = 10;
    expect_error(c, P_LGRANT, &g.base, GRPC_STATUS_FAILED_PRECONDITION,
                 "etcdserver: lease already exists");
    assert_int_equal(n_leases(c, id), 2);

    wstream *w = ws_open(c);
    ws_create(w, "/l/", &(ws_create_opts){.end = "/l0", .prev_kv = true});
    ws_wait_n(w, 1);
    put_lease(c, "/l/a", "va", id);
    put_lease(c, "/l/b", "vb", id);
    put_lease(c, "/l/c", "vc", 0);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd("/l/x");
    p.value = bd("v");
    p.lease = 0x1234;
    expect_error(c, P_PUT, &p.base, GRPC_STATUS_NOT_FOUND, "etcdserver: requested lease not found");

    Etcdserverpb__LeaseTimeToLiveResponse *tr = ttl_of(c, id, true);
    assert_int_equal(tr->id, id);
    assert_int_equal(tr->grantedttl, 60);
    assert_true(tr->ttl >= 58 && tr->ttl <= 60);
    assert_int_equal(tr->n_keys, 2);
    assert_true(bytes_is(tr->keys[0], "/l/a") && bytes_is(tr->keys[1], "/l/b"));
    etcdserverpb__lease_time_to_live_response__free_unpacked(tr, NULL);
    tr = ttl_of(c, 999, false); /* unknown: TTL -1, not an error (v3rpc) */
    assert_int_equal(tr->ttl, -1);
    etcdserverpb__lease_time_to_live_response__free_unpacked(tr, NULL);

    int64_t rrev;
    assert_int_equal(lease_revoke(c, id, &rrev, NULL), 0);
    assert_int_equal(count_keys(c, "/l/", "/l0"), 1);
    uint64_t want = 5;
    assert_true(ws_wait(w, ws_has_events, &want, 5000));
    /* both DELETEs in one response at one revision (the revoke's) */
    Etcdserverpb__WatchResponse *last = w->r[w->n - 1];
    assert_int_equal(last->n_events, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(last->events[i]->type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
        assert_int_equal(last->events[i]->kv->mod_revision, rrev);
        assert_non_null(last->events[i]->prev_kv);
        assert_int_equal(last->events[i]->prev_kv->lease, id);
    }
    assert_true(kv_is(last->events[0]->kv, "/l/a", NULL));
    assert_true(kv_is(last->events[1]->kv, "/l/b", NULL));

    char msg[256];
    assert_int_equal(lease_revoke(c, id, NULL, msg), GRPC_STATUS_NOT_FOUND);
    assert_string_equal(msg, "etcdserver: requested lease not found");
    /* a lease without keys: revoked without a revision */
    int64_t before;
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("x");
    Etcdserverpb__RangeResponse *rr = range(c, &q);
    before = rr->header->revision;
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    assert_int_equal(lease_revoke(c, 42, &rrev, NULL), 0);
    assert_int_equal(rrev, before);
    assert_int_equal(n_leases(c, 0), 0);

    char *m = http_get(h->port, "/metrics");
    assert_int_equal(metric(m, "etcd_debugging_lease_granted_total "), 2);
    assert_int_equal(metric(m, "etcd_debugging_lease_revoked_total "), 2);
    assert_int_equal(metric(m, "relistlab_lease_live "), 0);
    assert_int_equal(metric(m, "grpc_server_handled_total{grpc_code=\"OK\",grpc_method="
                               "\"LeaseGrant\",grpc_service=\"etcdserverpb.Lease\","
                               "grpc_type=\"unary\"} "),
                     2);
    free(m);
    ws_free(w);
    cli_free(c);
    srv_stop(h, false);
}

/* ---- keep-alive stream ---- */

typedef struct ka {
    Etcdserverpb__LeaseKeepAliveResponse *r[16];
    size_t n;
    bool closed;
    int status;
} ka;

static void ka_msg(grpc_cstream *s, const uint8_t *msg, size_t len, void *ud) {
    (void)s;
    ka *k = ud;
    assert_true(k->n < 16);
    k->r[k->n++] = etcdserverpb__lease_keep_alive_response__unpack(NULL, len, msg);
    assert_non_null(k->r[k->n - 1]);
}

static void ka_close(grpc_cstream *s, int status, const char *message, void *ud) {
    (void)s;
    (void)message;
    ka *k = ud;
    k->closed = true;
    k->status = status;
}

static void ka_send(grpc_cstream *s, int64_t id) {
    Etcdserverpb__LeaseKeepAliveRequest q = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
    q.id = id;
    uint8_t buf[32];
    size_t n = etcdserverpb__lease_keep_alive_request__pack(&q, buf);
    assert_true(grpc_cstream_send(s, buf, n) >= 0);
}

static bool ka_has(ka *k, size_t n, cli *c) {
    bool f = false;
    for (int i = 0; i < 1000 && k->n < n; i++)
        run_until(&c->loop, &f, 5);
    return k->n >= n;
}

static void test_lease_keepalive_stream(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    int64_t id = lease_grant(c, 30, 0, NULL);
    ka k = {0};
    grpc_cstream_cbs cbs = {.on_message = ka_msg, .on_close = ka_close};
    grpc_cstream *s = grpc_client_stream_open(c->c, P_LKEEP, NULL, 0, &cbs, &k);
    assert_non_null(s);
    ka_send(s, id);
    ka_send(s, 777); /* unknown: TTL 0 */
    ka_send(s, id);
    assert_true(ka_has(&k, 3, c));
    assert_int_equal(k.r[0]->id, id);
    assert_int_equal(k.r[0]->ttl, 30);
    assert_non_null(k.r[0]->header);
    assert_int_equal(k.r[1]->id, 777);
    assert_int_equal(k.r[1]->ttl, 0);
    assert_int_equal(k.r[2]->ttl, 30);
    assert_int_equal(grpc_cstream_half_close(s), 0);
    assert_true(run_until(&c->loop, &k.closed, 5000));
    assert_int_equal(k.status, GRPC_STATUS_OK); /* etcd: io.EOF -> return nil */
    for (size_t i = 0; i < k.n; i++)
        etcdserverpb__lease_keep_alive_response__free_unpacked(k.r[i], NULL);
    char *m = http_get(h->port, "/metrics");
    assert_int_equal(metric(m, "etcd_debugging_lease_renewed_total "), 2);
    assert_int_equal(metric(m, "relistlab_lease_live "), 1);
    free(m);
    cli_free(c);
    srv_stop(h, false);
}

/* ---- expiry by time: TTL 2 s (the minimum) ---- */

static void test_lease_expiry_deletes_keys(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    int64_t dying = lease_grant(c, 2, 0, NULL);
    int64_t kept = lease_grant(c, 2, 0, NULL);
    put_lease(c, "/e/a", "1", dying);
    put_lease(c, "/e/b", "2", dying);
    put_lease(c, "/e/k", "3", kept);
    wstream *w = ws_open(c);
    ws_create(w, "/e/", &(ws_create_opts){.end = "/e0"});
    ws_wait_n(w, 1);
    /* keep `kept` alive every 500 ms while `dying` expires */
    ka k = {0};
    grpc_cstream_cbs cbs = {.on_message = ka_msg, .on_close = ka_close};
    grpc_cstream *s = grpc_client_stream_open(c->c, P_LKEEP, NULL, 0, &cbs, &k);
    uint64_t t0 = uv_now(&c->loop);
    uint64_t two = 2;
    size_t sent = 0;
    while (uv_now(&c->loop) - t0 < 4500 && w->events < two) {
        if (sent < 9 && uv_now(&c->loop) - t0 >= sent * 500) {
            ka_send(s, kept);
            sent++;
        }
        sleep_loop(&c->loop, 20);
    }
    uint64_t took = uv_now(&c->loop) - t0;
    print_message("expired after %llu ms (TTL 2 s, checked every 500 ms)\n",
                  (unsigned long long)took);
    assert_int_equal(w->events, 2);
    Etcdserverpb__WatchResponse *r = w->r[1];
    assert_int_equal(r->n_events, 2); /* one revision, one response */
    assert_int_equal(r->events[0]->type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
    assert_true(kv_is(r->events[0]->kv, "/e/a", NULL));
    assert_true(kv_is(r->events[1]->kv, "/e/b", NULL));
    assert_int_equal(r->events[0]->kv->mod_revision, r->events[1]->kv->mod_revision);
    assert_true(took >= 1500);
    assert_int_equal(count_keys(c, "/e/", "/e0"), 1);
    assert_int_equal(n_leases(c, kept), 1);
    Etcdserverpb__LeaseTimeToLiveResponse *tr = ttl_of(c, dying, false);
    assert_int_equal(tr->ttl, -1);
    etcdserverpb__lease_time_to_live_response__free_unpacked(tr, NULL);
    for (size_t i = 0; i < k.n; i++) {
        assert_int_equal(k.r[i]->ttl, 2);
        etcdserverpb__lease_keep_alive_response__free_unpacked(k.r[i], NULL);
    }
    grpc_cstream_cancel(s);
    char *m = http_get(h->port, "/metrics");
    assert_int_equal(metric(m, "etcd_debugging_lease_revoked_total "), 1);
    free(m);
    ws_free(w);
    cli_free(c);
    srv_stop(h, false);
}

/* ---- leases survive a restart ---- */

static void test_lease_survives_restart(void **state) {
    (void)state;
    kvs_server_opts o;
    memset(&o, 0, sizeof o);
    srvh *h = srv_start_opts(NULL, &o); /* durable */
    cli *c = cli_new(h->port);
    int64_t id = lease_grant(c, 100, 0, NULL);
    put_lease(c, "/r/a", "x", id);
    cli_free(c);
    char *dir = srv_stop(h, true);
    h = srv_start_opts(dir, &o);
    free(dir);
    c = cli_new(h->port);
    assert_int_equal(n_leases(c, id), 1);
    Etcdserverpb__LeaseTimeToLiveResponse *tr = ttl_of(c, id, true);
    assert_int_equal(tr->grantedttl, 100);
    assert_true(tr->ttl >= 98); /* etcd's Promote: full TTL again after a restart */
    assert_int_equal(tr->n_keys, 1);
    etcdserverpb__lease_time_to_live_response__free_unpacked(tr, NULL);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd("/r/b");
    p.value = bd("y");
    p.lease = id;
    result r = {0};
    assert_int_equal(call(c, P_PUT, &p.base, &r), 0); /* still a known lease */
    free(r.data);
    wstream *w = ws_open(c);
    ws_create(w, "/r/", &(ws_create_opts){.end = "/r0"});
    ws_wait_n(w, 1);
    assert_int_equal(lease_revoke(c, id, NULL, NULL), 0);
    uint64_t two = 2;
    assert_true(ws_wait(w, ws_has_events, &two, 5000));
    assert_int_equal(count_keys(c, "/r/", "/r0"), 0);
    ws_free(w);
    cli_free(c);
    srv_stop(h, false);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lease_grant_put_revoke),
        cmocka_unit_test(test_lease_keepalive_stream),
        cmocka_unit_test(test_lease_expiry_deletes_keys),
        cmocka_unit_test(test_lease_survives_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
