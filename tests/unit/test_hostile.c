/* test_hostile.c — hostile clients against the REAL `kvstore serve` binary (a child process,
 * see hostile_common.h): random bytes, a valid preface then garbage frames, a raw client that
 * never reads large LISTs, requests just over each limit, deeply nested txns, and a range over
 * 100k keys followed by a watch of every key from revision 1. Each hostile client must get an
 * error or a closed connection; after each, a normal Put/Range on a fresh connection must work;
 * and the server's memory stays bounded. The connection-level suites (10,000 idle connections,
 * the handshake and keepalive flags) are in test_hostile_conns.c. Random input is seeded from
 * the clock, or from $RELIST_HOSTILE_SEED to replay a run. */
#include "hostile_common.h"

/* Random bytes from rand() (seeded in main, so a failing run can be replayed). */
static void fill_random(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rand() >> 7);
}

/* ================================================================ random bytes / garbage frames */

static void test_random_bytes(void **state) {
    (void)state;
    server s = {0};
    server_start(&s);
    s.rss0 = rss_anon(&s);
    enum { N = 64 };
    int closed = 0;
    for (int i = 0; i < N; i++) {
        int fd = tcp_connect(s.port);
        size_t n = 1 + (size_t)rand() % 65536;
        uint8_t *b = malloc(n);
        fill_random(b, n);
        if (b[0] == 'P') b[0] = 'X'; /* not the preface, and not by luck an HTTP/1 PRI */
        send_some(fd, b, n);
        free(b);
        closed += drained_to_eof(fd, 5000);
        close(fd);
    }
    print_message("  random bytes: %d/%d connections closed by the server\n", closed, N);
    assert_int_equal(closed, N);
    check_alive(&s, "random-bytes");
    check_mem(&s, "after random bytes", 64);
    server_stop(&s);
}

static void test_garbage_frames(void **state) {
    (void)state;
    server s = {0};
    server_start(&s);
    s.rss0 = rss_anon(&s);
    enum { N = 64 };
    int closed = 0;
    for (int i = 0; i < N; i++) {
        int fd = tcp_connect(s.port);
        uint8_t hdr[9];
        send_some(fd, PREFACE, 24);
        frame_hdr(hdr, 0, 4, 0, 0); /* empty SETTINGS: a valid start */
        send_some(fd, hdr, 9);
        int frames = 1 + rand() % 32;
        for (int f = 0; f < frames; f++) {
            size_t len = (size_t)rand() % (i % 4 == 0 ? 70000 : 512); /* some over 16 KiB */
            uint8_t *p = malloc(len + 1);
            fill_random(p, len);
            frame_hdr(hdr, len, (uint8_t)(rand() % 12), (uint8_t)rand(),
                      (uint32_t)(rand() % 4 ? rand() % 16 : rand()));
            send_some(fd, hdr, 9);
            send_some(fd, p, len);
            free(p);
        }
        if (i % 8 == 0) { /* HEADERS with garbage HPACK on a valid stream */
            uint8_t junk[40];
            fill_random(junk, sizeof junk);
            frame_hdr(hdr, sizeof junk, 1, 0x4 | 0x1, 1);
            send_some(fd, hdr, 9);
            send_some(fd, junk, sizeof junk);
        }
        closed += drained_to_eof(fd, 5000);
        close(fd);
    }
    print_message("  garbage frames: %d/%d connections closed by the server\n", closed, N);
    assert_int_equal(closed, N);
    check_alive(&s, "garbage-frames");
    check_mem(&s, "after garbage frames", 64);
    server_stop(&s);
}

/* ================================================================ seeding */

/* Puts keys prefix%08d [0, n) with vlen-byte values in txns of `per` puts. */
static void seed(cli *c, const char *prefix, int n, size_t vlen, int per) {
    char *val = malloc(vlen + 1);
    memset(val, 'x', vlen);
    val[vlen] = 0;
    Etcdserverpb__PutRequest *ps = calloc((size_t)per, sizeof *ps);
    Etcdserverpb__RequestOp *ops = calloc((size_t)per, sizeof *ops);
    Etcdserverpb__RequestOp **opp = calloc((size_t)per, sizeof *opp);
    char(*keys)[48] = calloc((size_t)per, sizeof *keys);
    result r = {0};
    for (int b = 0; b < n; b += per) {
        int m = n - b < per ? n - b : per;
        for (int i = 0; i < m; i++) {
            Etcdserverpb__PutRequest pi = ETCDSERVERPB__PUT_REQUEST__INIT;
            Etcdserverpb__RequestOp oi = ETCDSERVERPB__REQUEST_OP__INIT;
            snprintf(keys[i], sizeof keys[i], "%s%08d", prefix, b + i);
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
        int st = call(c, P_TXN, &t.base, &r);
        if (st != 0) fail_msg("seed txn: %d %s", st, r.message);
    }
    free(r.data);
    free(val);
    free(ps);
    free(ops);
    free(opp);
    free(keys);
}

/* ================================================================ a LIST reader that never reads
 */

/* HPACK literal header field without indexing, new name (no Huffman; lengths < 127). */
static size_t hpack_lit(uint8_t *p, const char *name, const char *value) {
    size_t n = 0, nl = strlen(name), vl = strlen(value);
    p[n++] = 0x00;
    p[n++] = (uint8_t)nl;
    memcpy(p + n, name, nl);
    n += nl;
    p[n++] = (uint8_t)vl;
    memcpy(p + n, value, vl);
    return n + vl;
}

static void test_unread_list(void **state) {
    (void)state;
    server s = {0};
    server_start(&s);
    cli *c = cli_new(s.port);
    enum { NKEYS = 20000, NSTREAMS = 24 };
    seed(c, "/list/", NKEYS, 1024, 128);
    cli_free(c);
    s.rss0 = rss_anon(&s);

    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("/list/");
    q.range_end = bd("/list0");
    uint8_t req[64];
    size_t qn = etcdserverpb__range_request__pack(&q, req + 5);
    req[0] = 0;
    req[1] = 0, req[2] = 0, req[3] = (uint8_t)(qn >> 8), req[4] = (uint8_t)qn;

    int fd = tcp_connect(s.port);
    int small = 4096; /* a small receive buffer: TCP back-pressure comes early */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    uint8_t buf[8192];
    size_t n = 0;
    memcpy(buf, PREFACE, 24);
    n = 24;
    /* SETTINGS: INITIAL_WINDOW_SIZE = 2^31-1, so HTTP/2 flow control never holds the server back:
     * only its own output bound can */
    frame_hdr(buf + n, 6, 4, 0, 0);
    n += 9;
    const uint8_t set[6] = {0, 4, 0x7f, 0xff, 0xff, 0xff};
    memcpy(buf + n, set, 6);
    n += 6;
    frame_hdr(buf + n, 4, 8, 0, 0); /* connection WINDOW_UPDATE to 2^31-1 */
    n += 9;
    uint32_t inc = 0x7fffffffu - 65535u;
    buf[n++] = (uint8_t)(inc >> 24), buf[n++] = (uint8_t)(inc >> 16);
    buf[n++] = (uint8_t)(inc >> 8), buf[n++] = (uint8_t)inc;
    for (uint32_t sid = 1; sid < 2 * NSTREAMS; sid += 2) {
        uint8_t hb[256];
        size_t hn = 0;
        hn += hpack_lit(hb + hn, ":method", "POST");
        hn += hpack_lit(hb + hn, ":scheme", "http");
        hn += hpack_lit(hb + hn, ":path", P_RANGE);
        hn += hpack_lit(hb + hn, ":authority", "hostile");
        hn += hpack_lit(hb + hn, "content-type", "application/grpc");
        hn += hpack_lit(hb + hn, "te", "trailers");
        frame_hdr(buf + n, hn, 1, 0x4, sid);
        memcpy(buf + n + 9, hb, hn);
        n += 9 + hn;
        frame_hdr(buf + n, 5 + qn, 0, 0x1, sid);
        memcpy(buf + n + 9, req, 5 + qn);
        n += 9 + 5 + qn;
    }
    send_some(fd, buf, n);
    print_message("  %d LISTs of %d x 1 KiB (~%d MiB each) requested; never reading\n", NSTREAMS,
                  NKEYS, NKEYS / 1000);
    long peak = 0;
    for (int i = 0; i < 30; i++) { /* 3 s */
        usleep(100000);
        long now = rss_anon(&s);
        if (now > peak) peak = now;
    }
    print_message("  peak RssAnon while stalled: %ld KiB (+%ld KiB)\n", peak, peak - s.rss0);
    check_mem(&s, "stalled LIST reader", 200);
    check_alive(&s, "stalled-list");
    close(fd);
    usleep(300000);
    check_alive(&s, "after-stalled-list");
    check_mem(&s, "after it closed", 200);
    server_stop(&s);
}

/* ================================================================ limits and nesting */

static void expect_status(cli *c, const char *path, const ProtobufCMessage *m, int code,
                          const char *msg_part) {
    result r = {0};
    int st = call(c, path, m, &r);
    if (st != code || (msg_part && !strstr(r.message, msg_part)))
        fail_msg("%s: want %s \"%s\", got %d (%s) \"%s\"", path, grpc_status_name(code),
                 msg_part ? msg_part : "", st, grpc_status_name(st), r.message);
    print_message("  %s -> %s \"%s\"\n", path, grpc_status_name(st), r.message);
    free(r.data);
}

/* A Put whose packed size is exactly `total` bytes (key "big"). */
static void put_of_size(cli *c, size_t total, int code, const char *msg_part) {
    size_t vlen = total - 5 - 1 - 3; /* key field 5 bytes; value tag 1 + 3-byte length */
    uint8_t *v = calloc(1, vlen);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd("big");
    p.value = (ProtobufCBinaryData){vlen, v};
    assert_int_equal(etcdserverpb__put_request__get_packed_size(&p), total);
    expect_status(c, P_PUT, &p.base, code, msg_part);
    free(v);
}

static void txn_of_puts(cli *c, int nops, int code, const char *msg_part) {
    Etcdserverpb__PutRequest *ps = calloc((size_t)nops, sizeof *ps);
    Etcdserverpb__RequestOp *ops = calloc((size_t)nops, sizeof *ops);
    Etcdserverpb__RequestOp **opp = calloc((size_t)nops, sizeof *opp);
    char(*keys)[16] = calloc((size_t)nops, sizeof *keys);
    Etcdserverpb__TxnRequest t;
    etcd_txn_of_puts(&t, (size_t)nops, ps, ops, opp, &keys[0][0], sizeof keys[0], "/ops/%d");
    expect_status(c, P_TXN, &t.base, code, msg_part);
    free(ps);
    free(ops);
    free(opp);
    free(keys);
}

/* TxnRequest{success: [RequestOp{request_txn: ...}]} nested `depth` times, written back to
 * front so building it is linear. Returns the message (at *out) and its length. */
static size_t nested_txn(int depth, uint8_t **out) {
    size_t cap = (size_t)depth * 12 + 16;
    uint8_t *b = malloc(cap);
    size_t pos = cap, len = 0; /* innermost: an empty TxnRequest */
    for (int d = 0; d < depth; d++) {
        for (int pass = 0; pass < 2; pass++) {
            uint8_t v[10];
            size_t vn = 0, x = len;
            while (x >= 0x80)
                v[vn++] = (uint8_t)(x | 0x80), x >>= 7;
            v[vn++] = (uint8_t)x;
            pos -= vn;
            memcpy(b + pos, v, vn);
            b[--pos] = pass == 0 ? 0x22 : 0x12; /* RequestOp.request_txn, TxnRequest.success */
            len = cap - pos;
        }
    }
    memmove(b, b + pos, len);
    *out = b;
    return len;
}

static void test_limits_and_nesting(void **state) {
    (void)state;
    server s = {0};
    server_start(&s);
    s.rss0 = rss_anon(&s);
    cli *c = cli_new(s.port);
    const size_t max_req = 1572864, grpc_max = max_req + 512 * 1024;
    put_of_size(c, max_req + 1, GRPC_STATUS_INVALID_ARGUMENT, "etcdserver: request is too large");
    put_of_size(c, max_req - 1024, GRPC_STATUS_OK, NULL);
    put_of_size(c, grpc_max + 1, GRPC_STATUS_RESOURCE_EXHAUSTED,
                "grpc: received message larger than max");
    txn_of_puts(c, 129, GRPC_STATUS_INVALID_ARGUMENT,
                "etcdserver: too many operations in txn request");
    txn_of_puts(c, 128, GRPC_STATUS_OK, NULL);
    check_alive(&s, "limits");

    /* deep nesting: 1000 levels (small), then as deep as fits under the request limit */
    int depths[] = {1000, 150000};
    for (size_t i = 0; i < sizeof depths / sizeof *depths; i++) {
        uint8_t *m;
        size_t n = nested_txn(depths[i], &m);
        result r = {0};
        int st = call_raw(c, P_TXN, m, n, &r);
        print_message("  txn nested %d deep (%zu bytes) -> %s \"%s\"\n", depths[i], n,
                      grpc_status_name(st), r.message);
        if (st != GRPC_STATUS_OK && st != GRPC_STATUS_INVALID_ARGUMENT &&
            st != GRPC_STATUS_RESOURCE_EXHAUSTED)
            fail_msg("nested txn %d: unexpected %d %s", depths[i], st, r.message);
        free(r.data);
        free(m);
        check_alive(&s, "nested-txn");
    }
    cli_free(c);
    check_mem(&s, "after limits and nesting", 64);
    server_stop(&s);
}

/* ================================================================ 100k keys: range, then watch all
 */

typedef struct wcount {
    uint64_t events, responses;
    int64_t last_rev;
    bool closed, ordered;
    int status;
    char message[256];
} wcount;

static void wc_msg(grpc_cstream *st, const uint8_t *msg, size_t len, void *ud) {
    (void)st;
    wcount *w = ud;
    Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(NULL, len, msg);
    if (!r) return;
    w->responses++;
    for (size_t i = 0; i < r->n_events; i++) {
        int64_t rev = r->events[i]->kv ? r->events[i]->kv->mod_revision : 0;
        if (rev < w->last_rev) w->ordered = false;
        w->last_rev = rev;
    }
    w->events += r->n_events;
    etcdserverpb__watch_response__free_unpacked(r, NULL);
}

static void wc_close(grpc_cstream *st, int status, const char *message, void *ud) {
    (void)st;
    wcount *w = ud;
    w->closed = true;
    w->status = status;
    snprintf(w->message, sizeof w->message, "%s", message);
}

static void test_range_100k_then_watch(void **state) {
    (void)state;
    server s = {0};
    server_start(&s);
    s.rss0 = rss_anon(&s);
    cli *c = cli_new(s.port);
    enum { NKEYS = 100000 };
    uint64_t t0 = uv_hrtime();
    seed(c, "/big/", NKEYS, 32, 128);
    double seed_ms = (double)(uv_hrtime() - t0) / 1e6;

    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("/big/");
    q.range_end = bd("/big0");
    result r = {0};
    t0 = uv_hrtime();
    int st = call(c, P_RANGE, &q.base, &r);
    double range_ms = (double)(uv_hrtime() - t0) / 1e6;
    if (st != 0) fail_msg("range of 100k: %d %s", st, r.message);
    Etcdserverpb__RangeResponse *rr = etcdserverpb__range_response__unpack(NULL, r.len, r.data);
    assert_non_null(rr);
    assert_int_equal(rr->n_kvs, NKEYS);
    assert_int_equal(rr->count, NKEYS);
    print_message("  seeded %d keys in %.0f ms; range of all: %zu bytes in %.0f ms\n", NKEYS,
                  seed_ms, r.len, range_ms);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    free(r.data);

    /* watch every key from revision 1 */
    wcount w = {.ordered = true};
    grpc_cstream_cbs cbs = {.on_message = wc_msg, .on_close = wc_close};
    grpc_cstream *ws = grpc_client_stream_open(c->c, P_WATCH, NULL, 0, &cbs, &w);
    assert_non_null(ws);
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    static const uint8_t zero = 0;
    cr.key = (ProtobufCBinaryData){1, (uint8_t *)&zero}; /* key "\0" + range_end "\0": all */
    cr.range_end = (ProtobufCBinaryData){1, (uint8_t *)&zero};
    cr.start_revision = 1;
    Etcdserverpb__WatchRequest wr = ETCDSERVERPB__WATCH_REQUEST__INIT;
    wr.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    wr.create_request = &cr;
    uint8_t wb[64];
    size_t wn = etcdserverpb__watch_request__pack(&wr, wb);
    assert_true(grpc_cstream_send(ws, wb, wn) >= 0);
    t0 = uv_hrtime();
    long peak = 0;
    uint64_t deadline = uv_now(&c->loop) + 30000;
    bool f = false;
    while (!w.closed && w.events < NKEYS && uv_now(&c->loop) < deadline) {
        run_until(&c->loop, &f, 50);
        long now = rss_anon(&s);
        if (now > peak) peak = now;
    }
    double watch_ms = (double)(uv_hrtime() - t0) / 1e6;
    if (w.closed && w.status == GRPC_STATUS_UNIMPLEMENTED) {
        print_message("  Watch answers UNIMPLEMENTED: the watch-from-revision-1 part is skipped\n");
    } else {
        print_message("  watch from revision 1: %llu events in %llu responses in %.0f ms; peak "
                      "RssAnon +%ld KiB\n",
                      (unsigned long long)w.events, (unsigned long long)w.responses, watch_ms,
                      peak - s.rss0);
        if (w.closed) fail_msg("watch closed: %d %s", w.status, w.message);
        assert_int_equal(w.events, NKEYS);
        assert_true(w.ordered);
        grpc_cstream_cancel(ws);
    }
    cli_free(c);
    check_alive(&s, "range-100k-watch");
    check_mem(&s, "after 100k range + watch", 200);
    server_stop(&s);
}

int main(void) {
    unsigned seed = (unsigned)time(NULL);
    if (getenv("RELIST_HOSTILE_SEED"))
        seed = (unsigned)strtoul(getenv("RELIST_HOSTILE_SEED"), NULL, 10);
    srand(seed);
    signal(SIGPIPE, SIG_IGN);
    print_message("hostile clients against %s (seed %u, memory bounds x%d)\n",
                  kvstore_bin() ? kvstore_bin() : "(no kvstore)", seed, MEM_SCALE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_bytes),          cmocka_unit_test(test_garbage_frames),
        cmocka_unit_test(test_limits_and_nesting),    cmocka_unit_test(test_unread_list),
        cmocka_unit_test(test_range_100k_then_watch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
