/* test_srv_limits.c — `kvstore serve` under pressure: etcd's exact error codes and messages,
 * the request size limits (etcd's own check and the gRPC receive limit), hostile input (garbage
 * preface, a half-open connection, deeply nested txn, malformed and expanding protobuf), PING,
 * a client that stops reading large LISTs (server output stays bounded), and group commit of
 * concurrent durable puts. Server in-process, see srv_harness.h. */
#include "srv_harness.h"

/* ================================================================ errors and limits */

static void test_errors(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    int64_t rev = put(c, "x", "1");
    put(c, "x", "2");
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("x");
    q.revision = rev + 100;
    expect_error(c, P_RANGE, &q.base, GRPC_STATUS_OUT_OF_RANGE,
                 "etcdserver: mvcc: required revision is a future revision");
    q.key = bd("");
    q.revision = 0;
    expect_error(c, P_RANGE, &q.base, GRPC_STATUS_INVALID_ARGUMENT,
                 "etcdserver: key is not provided");
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    expect_error(c, P_PUT, &p.base, GRPC_STATUS_INVALID_ARGUMENT,
                 "etcdserver: key is not provided");
    Etcdserverpb__CompactionRequest cr = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    cr.revision = rev + 1;
    result r = {0};
    assert_int_equal(call(c, P_COMPACT, &cr.base, &r), 0);
    expect_error(c, P_COMPACT, &cr.base, GRPC_STATUS_OUT_OF_RANGE,
                 "etcdserver: mvcc: required revision has been compacted");
    cr.revision = rev + 100;
    expect_error(c, P_COMPACT, &cr.base, GRPC_STATUS_OUT_OF_RANGE,
                 "etcdserver: mvcc: required revision is a future revision");
    q.key = bd("x");
    q.revision = rev;
    expect_error(c, P_RANGE, &q.base, GRPC_STATUS_OUT_OF_RANGE,
                 "etcdserver: mvcc: required revision has been compacted");

    /* too many ops: 129 puts */
    enum { N = 129 };
    Etcdserverpb__PutRequest ps[N];
    Etcdserverpb__RequestOp ops[N], *opp[N];
    char keys[N][8];
    Etcdserverpb__TxnRequest t;
    etcd_txn_of_puts(&t, N, ps, ops, opp, &keys[0][0], sizeof keys[0], "t%d");
    expect_error(c, P_TXN, &t.base, GRPC_STATUS_INVALID_ARGUMENT,
                 "etcdserver: too many operations in txn request");
    /* duplicate key */
    ps[1].key = bd("t0");
    t.n_success = 2;
    expect_error(c, P_TXN, &t.base, GRPC_STATUS_INVALID_ARGUMENT,
                 "etcdserver: duplicate key given in txn request");
    /* the server is still fine */
    put(c, "y", "ok");
    free(r.data);
    cli_free(c);
    srv_stop(h, false);
}

static void test_size_limits(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    size_t big = KVS_DEFAULT_MAX_REQUEST_BYTES + 1000; /* over etcd's check, under gRPC's */
    char *v = malloc(big + 1);
    memset(v, 'v', big);
    v[big] = 0;
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd("big");
    p.value = (ProtobufCBinaryData){big, (uint8_t *)v};
    expect_error(c, P_PUT, &p.base, GRPC_STATUS_INVALID_ARGUMENT,
                 "etcdserver: request is too large");
    free(v);
    big = KVS_DEFAULT_MAX_REQUEST_BYTES + KVS_GRPC_OVERHEAD_BYTES + 10;
    v = calloc(1, big);
    p.value = (ProtobufCBinaryData){big, (uint8_t *)v};
    expect_error(c, P_PUT, &p.base, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL);
    free(v);
    /* just under the limit works */
    big = KVS_DEFAULT_MAX_REQUEST_BYTES - 100;
    v = calloc(1, big);
    p.value = (ProtobufCBinaryData){big, (uint8_t *)v};
    result r = {0};
    assert_int_equal(call(c, P_PUT, &p.base, &r), 0);
    free(v);
    free(r.data);
    put(c, "after", "ok");
    cli_free(c);
    srv_stop(h, false);
}

/* ================================================================ hostile input */

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void frame_hdr(uint8_t *h, size_t len, uint8_t type, uint8_t flags, uint32_t sid) {
    h[0] = (uint8_t)(len >> 16), h[1] = (uint8_t)(len >> 8), h[2] = (uint8_t)len;
    h[3] = type, h[4] = flags;
    h[5] = (uint8_t)(sid >> 24), h[6] = (uint8_t)(sid >> 16), h[7] = (uint8_t)(sid >> 8);
    h[8] = (uint8_t)sid;
}

static void test_hostile_connections(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    put(c, "k", "v");

    /* garbage instead of the preface: closed (the HTTP/1 side answers 400 or closes) */
    int g = tcp_connect(h->port);
    const char junk[] = "\x16\x03\x01\x02\x00garbage-garbage-garbage\r\n\r\n";
    send_all(g, junk, sizeof junk - 1);
    uint8_t buf[4096];
    ssize_t k;
    while ((k = recv(g, buf, sizeof buf, 0)) > 0) {
    }
    assert_true(k == 0 || k < 0);
    close(g);

    /* half-open: preface + half a frame header, then silence */
    int ho = tcp_connect(h->port);
    send_all(ho, PREFACE, 24);
    uint8_t half[4] = {0, 0, 8, 6};
    send_all(ho, half, sizeof half);

    /* PING answered */
    int pg = tcp_connect(h->port);
    uint8_t out[24 + 9 + 9 + 8];
    memcpy(out, PREFACE, 24);
    frame_hdr(out + 24, 0, 4, 0, 0);
    frame_hdr(out + 33, 8, 6, 0, 0);
    memcpy(out + 42, "pingpong", 8);
    send_all(pg, out, sizeof out);
    bool acked = false;
    for (int i = 0; i < 20 && !acked; i++) {
        uint8_t fh[9];
        if (!read_full(pg, fh, 9)) break;
        size_t len = (size_t)fh[0] << 16 | (size_t)fh[1] << 8 | fh[2];
        uint8_t *payload = malloc(len ? len : 1);
        if (!read_full(pg, payload, len)) {
            free(payload);
            break;
        }
        if (fh[3] == 6 && (fh[4] & 1) && len == 8 && !memcmp(payload, "pingpong", 8)) acked = true;
        free(payload);
    }
    assert_true(acked);
    close(pg);

    /* others are still served while the half-open connection sits there */
    put(c, "k2", "v2");
    cli *c2 = cli_new(h->port);
    put(c2, "k3", "v3");
    cli_free(c2);
    close(ho);

    /* deeply nested txn: rejected before unpack (depth 1000) */
    size_t cap = 1 << 16, n = 0;
    uint8_t *msg = malloc(cap), *tmp = malloc(cap);
    for (int d = 0; d < 1000; d++) {
        /* RequestOp{request_txn = msg} then TxnRequest{success = op} */
        uint8_t hdr[12];
        size_t hn = 0;
        hdr[hn++] = 0x22;
        size_t v = n;
        while (v >= 0x80)
            hdr[hn++] = (uint8_t)(v | 0x80), v >>= 7;
        hdr[hn++] = (uint8_t)v;
        memcpy(tmp, hdr, hn);
        memcpy(tmp + hn, msg, n);
        size_t opn = hn + n;
        hn = 0;
        hdr[hn++] = 0x12;
        v = opn;
        while (v >= 0x80)
            hdr[hn++] = (uint8_t)(v | 0x80), v >>= 7;
        hdr[hn++] = (uint8_t)v;
        memcpy(msg, hdr, hn);
        memcpy(msg + hn, tmp, opn);
        n = hn + opn;
        assert_true(n + 32 < cap);
    }
    result r = {0};
    assert_int_equal(call_raw(c, P_TXN, msg, n, &r), GRPC_STATUS_INVALID_ARGUMENT);
    free(msg);
    free(tmp);

    /* malformed protobuf: grpc-go's INTERNAL "grpc: error unmarshalling request: ..." */
    const uint8_t bad[] = {0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01};
    assert_int_equal(call_raw(c, P_PUT, bad, sizeof bad, &r), GRPC_STATUS_INTERNAL);
    assert_non_null(strstr(r.message, "grpc: error unmarshalling request"));
    assert_int_equal(call_raw(c, P_RANGE, bad, sizeof bad, &r), GRPC_STATUS_INTERNAL);
    assert_int_equal(call_raw(c, P_TXN, bad, sizeof bad, &r), GRPC_STATUS_INTERNAL);
    /* a small message that would expand into many structs: bounded, not a crash */
    size_t many = 1 << 20;
    uint8_t *ops = malloc(many);
    for (size_t i = 0; i < many; i += 2)
        ops[i] = 0x12, ops[i + 1] = 0;
    int st = call_raw(c, P_TXN, ops, many, &r);
    assert_true(st == GRPC_STATUS_RESOURCE_EXHAUSTED || st == GRPC_STATUS_INVALID_ARGUMENT);
    free(ops);
    /* unknown method */
    assert_int_equal(call_raw(c, "/etcdserverpb.Cluster/MemberList", "", 0, &r),
                     GRPC_STATUS_UNIMPLEMENTED);
    put(c, "still", "alive");
    free(r.data);
    cli_free(c);
    srv_stop(h, false);
}

/* ================================================================ slow LIST reader */

typedef struct lstream {
    bool closed;
    int status;
    size_t bytes;
} lstream;

static void ls_msg(grpc_cstream *s, const uint8_t *msg, size_t len, void *ud) {
    (void)s;
    (void)msg;
    ((lstream *)ud)->bytes += len;
}
static void ls_close(grpc_cstream *s, int status, const char *message, void *ud) {
    (void)s;
    (void)message;
    ((lstream *)ud)->closed = true;
    ((lstream *)ud)->status = status;
}

static void fill_keys(cli *c, int n, size_t vlen) {
    char *val = malloc(vlen + 1);
    memset(val, 'x', vlen);
    val[vlen] = 0;
    enum { PER = 100 };
    Etcdserverpb__PutRequest ps[PER];
    Etcdserverpb__RequestOp ops[PER], *opp[PER];
    char keys[PER][32];
    for (int base = 0; base < n; base += PER) {
        int m = n - base < PER ? n - base : PER;
        for (int i = 0; i < m; i++) {
            Etcdserverpb__PutRequest pi = ETCDSERVERPB__PUT_REQUEST__INIT;
            Etcdserverpb__RequestOp oi = ETCDSERVERPB__REQUEST_OP__INIT;
            snprintf(keys[i], sizeof keys[i], "/list/%08d", base + i);
            ps[i] = pi;
            ps[i].key = bd(keys[i]);
            ps[i].value = (ProtobufCBinaryData){vlen, (uint8_t *)val};
            ops[i] = oi;
            ops[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
            ops[i].request_put = &ps[i];
            opp[i] = &ops[i];
        }
        Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
        t.n_success = (size_t)m;
        t.success = opp;
        Etcdserverpb__TxnResponse *tr = txn(c, &t);
        etcdserverpb__txn_response__free_unpacked(tr, NULL);
    }
    free(val);
}

static void test_slow_list_reader(void **state) {
    (void)state;
    kvs_server_opts o;
    memset(&o, 0, sizeof o);
    o.no_sync = true;
    o.conn_out_cap = 4u << 20;
    srvh *h = srv_start_opts(NULL, &o);
    cli *c = cli_new(h->port);
    enum { NKEYS = 20000 };
    fill_keys(c, NKEYS, 1024);

    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("/list/");
    q.range_end = bd("/list0");
    uint64_t t0 = uv_hrtime();
    Etcdserverpb__RangeResponse *rr = range(c, &q);
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    assert_int_equal(rr->n_kvs, NKEYS);
    assert_int_equal(rr->count, NKEYS);
    size_t resp_size = etcdserverpb__range_response__get_packed_size(rr);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    print_message("LIST of %d x 1 KiB (%zu bytes): %.1f ms\n", NKEYS, resp_size, ms);

    /* A reader that stops: 8 LISTs on paused streams of one connection. */
    cli *slow = cli_new(h->port);
    size_t qn = etcdserverpb__range_request__get_packed_size(&q);
    uint8_t *qb = malloc(qn);
    etcdserverpb__range_request__pack(&q, qb);
    enum { NS = 8 };
    lstream ls[NS];
    grpc_cstream *ss[NS];
    grpc_cstream_cbs cbs = {.on_message = ls_msg, .on_close = ls_close};
    for (int i = 0; i < NS; i++) {
        memset(&ls[i], 0, sizeof ls[i]);
        ss[i] = grpc_client_stream_open(slow->c, P_RANGE, NULL, 0, &cbs, &ls[i]);
        assert_non_null(ss[i]);
        grpc_cstream_pause(ss[i]);
        assert_true(grpc_cstream_send(ss[i], qb, qn) >= 0);
        assert_int_equal(grpc_cstream_half_close(ss[i]), 0);
    }
    sleep_loop(&slow->loop, 600);
    grpc_server_stats gs;
    run_on_server(h, get_grpc_stats, &gs);
    kvs_server_stats ks;
    run_on_server(h, get_kvs_stats, &ks);
    /* Bound: the cap + one response (+ 1 MiB of framing slack). Without parking 8 responses
     * (~170 MB) would be queued. */
    size_t bound = o.conn_out_cap + resp_size + (1u << 20);
    print_message("paused reader: server out_buffered %zu (peak %zu), bound %zu, parked %llu\n",
                  gs.out_buffered, gs.out_buffered_peak, bound, (unsigned long long)ks.parked);
    assert_true(gs.out_buffered_peak <= bound);
    assert_true(ks.parked >= 1);

    /* meanwhile another client is served */
    Etcdserverpb__RangeRequest q1 = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q1.key = bd("/list/00000001");
    rr = range(c, &q1);
    assert_int_equal(rr->n_kvs, 1);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    put(c, "/other", "served");

    /* resume: every LIST completes */
    for (int i = 0; i < NS; i++)
        grpc_cstream_resume(ss[i]);
    for (int i = 0; i < NS; i++) {
        assert_true(run_until(&slow->loop, &ls[i].closed, 30000));
        assert_int_equal(ls[i].status, 0);
        assert_int_equal(ls[i].bytes, resp_size);
    }
    free(qb);
    cli_free(slow);
    cli_free(c);
    srv_stop(h, false);
}

/* ================================================================ group commit */

typedef struct many {
    int done, failed;
    bool all;
    int want;
} many;

static void on_many(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    (void)message;
    (void)resp;
    (void)len;
    many *m = ud;
    if (status) m->failed++;
    if (++m->done == m->want) m->all = true;
}

static void test_group_commit(void **state) {
    (void)state;
    kvs_server_opts o;
    memset(&o, 0, sizeof o); /* durable: fsync per group */
    srvh *h = srv_start_opts(NULL, &o);
    cli *c = cli_new(h->port);
    put(c, "warm", "up");
    kvs_server_stats before, after;
    run_on_server(h, get_kvs_stats, &before);
    enum { N = 64, ROUNDS = 5 };
    many m = {0, 0, false, N * ROUNDS};
    uint64_t t0 = uv_hrtime();
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < N; i++) {
            char key[32];
            snprintf(key, sizeof key, "/g/%d/%d", r, i);
            Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
            p.key = bd(key);
            p.value = bd("value");
            uint8_t buf[64];
            size_t n = etcdserverpb__put_request__pack(&p, buf);
            assert_int_equal(grpc_client_unary(c->c, P_PUT, buf, n, 20000, on_many, &m), 0);
        }
    assert_true(run_until(&c->loop, &m.all, 30000));
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    assert_int_equal(m.failed, 0);
    run_on_server(h, get_kvs_stats, &after);
    uint64_t groups = after.write_groups - before.write_groups;
    uint64_t writes = after.writes_applied - before.writes_applied;
    print_message("%d durable puts (%d in flight): %llu groups, %.0f puts/s\n", N * ROUNDS,
                  N * ROUNDS, (unsigned long long)groups, N * ROUNDS / secs);
    assert_int_equal(writes, N * ROUNDS);
    assert_true(groups < (uint64_t)N * ROUNDS / 2);
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("/g/");
    q.range_end = bd("/g0");
    q.count_only = 1;
    Etcdserverpb__RangeResponse *rr = range(c, &q);
    assert_int_equal(rr->count, N * ROUNDS);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    cli_free(c);
    srv_stop(h, false);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_hostile_connections),
        cmocka_unit_test(test_slow_list_reader),
        cmocka_unit_test(test_group_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
