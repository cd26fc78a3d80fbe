/* test_refl_drop.c — cutting real TCP connections under watchers, against `kvstore serve` of this
 * build (../kvstore next to this test; RELIST_REFL_SERVER overrides it, see
 * test_refl_live_util.h):
 *  1. grpc_client_abort: the streams and calls of the client fail with UNAVAILABLE inside the
 *     call, on_disconnect fires once, the client refuses new calls, a new client works; asked
 *     for from inside a stream callback (with the client freed from on_disconnect) it happens
 *     when the callback returns; asked for while still resolving it reports on_connect; the
 *     peer sees no GOAWAY, then a TCP reset;
 *  2. refl_fleet_drop_connections under a write load: 40 watchers over 10 namespaces share 10
 *     connections; a timer cuts half of the open connections six times while writes go on;
 *     every cut watch stream reconnects through its backoff (never sooner than the backoff's
 *     floor) and re-watches from its last revision: no relist, no lost or duplicated event,
 *     no divergence;
 *  3. history compacted while the cut watchers wait out their backoff: exactly they relist
 *     (compacted), the others keep watching; no divergence.
 * Each test uses its own resource (/registry/d<k>pods/) so they share one server. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define LIVE_SERVER_DEFAULT "kvstore:auto"
/* the shared live harness defines plain static helpers; this suite does not use them all */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "refl_fleet_churn.h"

enum { MAX_SLOTS = 16, MAX_WATCHERS = 64, MAX_LAT = 1024 };

/* ---- 1. grpc_client_abort ---------------------------------------------------------------------
 */

typedef struct abort_obs {
    grpc_client *c;
    int msgs, closes, close_status, discs, connects, connect_status;
    char close_msg[128];
    bool abort_in_msg;  /* call grpc_client_abort from the first on_message */
    bool free_in_disc;  /* call grpc_client_free from on_disconnect (as the fleet does) */
    bool abort_inside;  /* ... and it returned before the stream closed */
    bool closed_inside; /* the stream closed while on_message was still running */
    bool in_msg;
} abort_obs;

static void ab_on_msg(grpc_cstream *s, const uint8_t *msg, size_t len, void *ud) {
    (void)s;
    (void)msg;
    (void)len;
    abort_obs *a = ud;
    a->msgs++;
    if (a->abort_in_msg && a->msgs == 1) {
        a->in_msg = true;
        grpc_client_abort(a->c);
        a->abort_inside = a->closes == 0;
        a->in_msg = false;
    }
}

static void ab_on_close(grpc_cstream *s, int status, const char *message, void *ud) {
    (void)s;
    abort_obs *a = ud;
    a->closes++;
    a->close_status = status;
    if (a->in_msg) a->closed_inside = true;
    snprintf(a->close_msg, sizeof a->close_msg, "%s", message);
}

static void ab_on_connect(void *ud, grpc_client *c, int status) {
    (void)c;
    abort_obs *a = ud;
    a->connects++;
    a->connect_status = status;
}

static void ab_on_disconnect(void *ud, grpc_client *c, int status, const char *message) {
    (void)status;
    (void)message;
    abort_obs *a = ud;
    a->discs++;
    if (a->free_in_disc) {
        grpc_client_free(c);
        a->c = NULL;
    }
}

static grpc_client *ab_client(abort_obs *a) {
    grpc_client_opts o = {.on_connect = ab_on_connect, .on_disconnect = ab_on_disconnect, .ud = a};
    a->c = grpc_client_new(&L.loop, L.ep, &o);
    assert_non_null(a->c);
    return a->c;
}

/* Opens a watch of /registry/dabort/ on a->c (its "created" response is the first message). */
static grpc_cstream *ab_watch(abort_obs *a) {
    grpc_cstream_cbs cbs = {.on_message = ab_on_msg, .on_close = ab_on_close};
    static const grpc_metadata md[] = {{"hasleader", "true"}};
    grpc_cstream *s = grpc_client_stream_open(a->c, "/etcdserverpb.Watch/Watch", md, 1, &cbs, a);
    assert_non_null(s);
    static const char key[] = "/registry/dabort/", end[] = "/registry/dabort0";
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    cr.key = (ProtobufCBinaryData){sizeof key - 1, (uint8_t *)key};
    cr.range_end = (ProtobufCBinaryData){sizeof end - 1, (uint8_t *)end};
    Etcdserverpb__WatchRequest wr = ETCDSERVERPB__WATCH_REQUEST__INIT;
    wr.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    wr.create_request = &cr;
    uint8_t buf[128];
    size_t n = etcdserverpb__watch_request__get_packed_size(&wr);
    assert_true(n <= sizeof buf);
    etcdserverpb__watch_request__pack(&wr, buf);
    assert_true(grpc_cstream_send(s, buf, n) >= 0);
    return s;
}

static bool ab_got_msg(void *arg) {
    return ((abort_obs *)arg)->msgs > 0;
}
static bool ab_closed(void *arg) {
    return ((abort_obs *)arg)->closes > 0;
}

static int range_status(grpc_client *c) {
    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key = (ProtobufCBinaryData){2, (uint8_t *)"/x"};
    result r = {0};
    int st = unary_wait(&L.loop, c, "/etcdserverpb.KV/Range", &rq.base, &r, 5000, 8000);
    free(r.data);
    return st;
}

static void test_client_abort(void **state) {
    (void)state;
    LIVE_REQUIRE();
    /* a. from outside any callback: everything fails inside the call */
    abort_obs a = {0};
    grpc_client *c = ab_client(&a);
    ab_watch(&a);
    assert_true(live_wait(ab_got_msg, &a, 5000));
    assert_int_equal(a.connects, 1);
    assert_int_equal(a.connect_status, 0);
    assert_true(grpc_client_is_connected(c));
    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key = (ProtobufCBinaryData){2, (uint8_t *)"/x"};
    uint8_t rbuf[64];
    size_t rn = etcdserverpb__range_request__pack(&rq, rbuf);
    result r = {0};
    assert_int_equal(grpc_client_unary(c, "/etcdserverpb.KV/Range", rbuf, rn, 5000, on_result, &r),
                     0);
    grpc_client_abort(c);
    assert_int_equal(a.closes, 1);
    assert_int_equal(a.close_status, GRPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(a.close_msg, "connection reset"));
    assert_true(r.done);
    assert_int_equal(r.status, GRPC_STATUS_UNAVAILABLE);
    assert_int_equal(a.discs, 1);
    assert_false(grpc_client_is_connected(c));
    assert_int_equal(grpc_client_unary(c, "/etcdserverpb.KV/Range", rbuf, rn, 0, on_result, &r),
                     GRPC_EUNAVAILABLE);
    grpc_cstream_cbs cbs = {.on_message = ab_on_msg, .on_close = ab_on_close};
    assert_null(grpc_client_stream_open(c, "/etcdserverpb.Watch/Watch", NULL, 0, &cbs, &a));
    grpc_client_abort(c); /* a second abort changes nothing */
    assert_int_equal(a.closes + a.discs, 2);
    grpc_client_free(c);
    live_run_for(20);
    assert_int_equal(a.closes + a.discs, 2);

    /* the server took the reset in its stride: a new connection works */
    abort_obs b = {0};
    c = ab_client(&b);
    assert_int_equal(range_status(c), GRPC_STATUS_OK);

    /* b. from inside on_message, with the client freed from on_disconnect: the abort waits for
     * the callback to return, then happens before the loop turns again */
    b.abort_in_msg = true;
    b.free_in_disc = true;
    ab_watch(&b);
    assert_true(live_wait(ab_closed, &b, 5000));
    assert_true(b.abort_inside);
    assert_false(b.closed_inside);
    assert_int_equal(b.close_status, GRPC_STATUS_UNAVAILABLE);
    assert_int_equal(b.discs, 1);
    assert_null(b.c); /* freed from on_disconnect */
    live_run_for(20);

    /* c. before the connection is up: on_connect reports the abort, then free (twice: once
     * after the resolver finished, once while it may still run) */
    for (int k = 0; k < 2; k++) {
        abort_obs d = {0};
        c = ab_client(&d);
        grpc_client_abort(c);
        assert_int_equal(d.connects, 1);
        assert_int_equal(d.connect_status, UV_ECONNABORTED);
        assert_int_equal(d.discs, 0);
        if (k == 0) live_run_for(50);
        assert_int_equal(d.connects, 1);
        grpc_client_free(c);
        live_run_for(20);
    }
    abort_obs e = {0};
    c = ab_client(&e);
    assert_int_equal(range_status(c), GRPC_STATUS_OK);
    grpc_client_free(c);
    live_run_for(20);
}

static bool ab_connected(void *arg) {
    return ((abort_obs *)arg)->connects > 0;
}

/* What the peer sees: the client's preface and frames, no GOAWAY, then a TCP reset (ECONNRESET),
 * not an orderly end of stream. The peer is a plain socket, so every byte is visible. */
static void test_client_abort_wire(void **state) {
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", ntohs(a.sin_port));
    uv_loop_t loop;
    uv_loop_init(&loop);
    abort_obs o = {0};
    grpc_client_opts co = {
        .on_connect = ab_on_connect, .on_disconnect = ab_on_disconnect, .ud = &o};
    grpc_client *c = grpc_client_new(&loop, ep, &co);
    assert_non_null(c);
    assert_true(run_until_fn(&loop, ab_connected, &o, 5000));
    assert_int_equal(o.connect_status, 0);
    int fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    run_for(&loop, 20); /* the preface and SETTINGS leave */
    grpc_client_abort(c);
    assert_int_equal(o.discs, 1);
    uint8_t buf[4096];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof buf && (k = recv(fd, buf + n, sizeof buf - n, 0)) > 0)
        n += (size_t)k;
    int err = errno;
    assert_true(k < 0);
    assert_int_equal(err, ECONNRESET);
    assert_true(n >= 24);
    assert_memory_equal(buf, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    int frames = 0;
    for (size_t p = 24; p + 9 <= n; frames++) {
        size_t len = ((size_t)buf[p] << 16) | ((size_t)buf[p + 1] << 8) | buf[p + 2];
        assert_int_not_equal(buf[p + 3], 0x7); /* GOAWAY */
        p += 9 + len;
    }
    assert_true(frames >= 1);
    close(fd);
    close(lfd);
    grpc_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- fleet helpers -------------------------------------------------------------------------- */

/* Follows the fleet's trace: connection drops per slot and, per watcher, the time from its
 * connection's cut to its next watch "created" (the reconnect time). */
typedef struct tracker {
    size_t conns;
    uint64_t slot_downs[MAX_SLOTS];
    bool pending[MAX_WATCHERS];
    uint64_t down_at[MAX_WATCHERS];
    uint64_t lat[MAX_LAT];
    size_t n_lat;
    uint64_t relist_traces, error_traces;
} tracker;

static void track(void *ud, const refl_trace *t) {
    tracker *k = ud;
    uint64_t now = uv_now(&L.loop);
    switch (t->kind) {
    case REFL_TRACE_CONN_DOWN:
        if (t->watcher < MAX_SLOTS) k->slot_downs[t->watcher]++;
        for (size_t i = t->watcher; i < MAX_WATCHERS; i += k->conns)
            if (!k->pending[i]) {
                k->pending[i] = true;
                k->down_at[i] = now;
            }
        break;
    case REFL_TRACE_WATCH_CREATED:
        if (t->watcher < MAX_WATCHERS && k->pending[t->watcher]) {
            k->pending[t->watcher] = false;
            if (k->n_lat < MAX_LAT) k->lat[k->n_lat++] = now - k->down_at[t->watcher];
        }
        break;
    case REFL_TRACE_RELIST:
        k->relist_traces++;
        break;
    case REFL_TRACE_ERROR:
        k->error_traces++;
        break;
    default:
        break;
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static refl_fleet_opts drop_opts(const char *prefix, size_t count, size_t conns, tracker *k,
                                 const char *backoff) {
    refl_fleet_opts o = live_opts(prefix, count);
    o.namespaces = 10;
    o.conns = conns;
    o.page_size = 50;
    char err[128];
    if (refl_backoff_parse(backoff, &o.backoff, err, sizeof err) != 0) fail_msg("%s", err);
    memset(k, 0, sizeof *k);
    k->conns = conns ? conns : count; /* 0: one connection per watcher */
    o.trace = track;
    o.trace_ud = k;
    return o;
}

/* Stops the fleet even when a test fails half-way (the per-test teardown). */
static refl_fleet *RUNNING;

static int fleet_teardown(void **state) {
    (void)state;
    if (RUNNING) live_fleet_free(RUNNING);
    RUNNING = NULL;
    return 0;
}

/* ---- 2. drops under a write load ------------------------------------------------------------ */

typedef struct dropper {
    refl_fleet *f;
    double fraction;
    uint64_t seed;
    int left, done;
    size_t conns, watchers, streams, open_min;
} dropper;

static void on_drop_timer(uv_timer_t *t) {
    dropper *d = t->data;
    if (d->left <= 0) return;
    refl_drop_result res;
    int n = refl_fleet_drop_connections(d->f, d->fraction, d->seed + (uint64_t)d->done, &res);
    assert_true(n >= 0);
    assert_int_equal((size_t)n, res.conns);
    d->conns += res.conns;
    d->watchers += res.watchers;
    d->streams += res.streams;
    if (res.conns_open < d->open_min) d->open_min = res.conns_open;
    d->left--;
    d->done++;
}

static void test_drop_under_writes(void **state) {
    (void)state;
    LIVE_REQUIRE();
    enum { W = 40, CONNS = 10, NS = 10, DROPS = 6 };
    churn ch;
    churn_init(&ch, "d2pods", NS, 16, 200, 2);
    assert_int_equal(churn_seed(&ch, 8), 0);
    tracker k;
    /* client-go's shape, shortened: 100 ms doubling to a 1 s cap, jitter 0.5 */
    refl_fleet_opts o = drop_opts("/registry/d2pods/", W, CONNS, &k, "exp:100ms,1s,2,0.5");
    refl_fleet *f = RUNNING = live_fleet(&o);
    churn_wait(f, &ch, true, 20000);
    for (int i = 0; i < 50; i++)
        assert_true(churn_step(&ch) > 0);
    churn_wait(f, &ch, true, 20000);

    /* a random half of the open connections is cut every 300 ms while the writes go on */
    dropper d = {.f = f, .fraction = 0.5, .seed = 7, .left = DROPS, .open_min = SIZE_MAX};
    uv_timer_t t;
    uv_timer_init(&L.loop, &t);
    t.data = &d;
    uv_timer_start(&t, on_drop_timer, 300, 300);
    uint64_t t0 = uv_now(&L.loop);
    size_t during = 0;
    while (d.left > 0 && uv_now(&L.loop) - t0 < 30000) {
        assert_true(churn_step(&ch) > 0);
        during++;
    }
    uv_timer_stop(&t);
    uv_close((uv_handle_t *)&t, NULL);
    assert_int_equal(d.done, DROPS);
    for (int i = 0; i < 50; i++)
        assert_true(churn_step(&ch) > 0);
    churn_wait(f, &ch, true, 20000);

    refl_fleet_stats st;
    refl_fleet_get_stats(f, &st);
    assert_true(d.conns >= DROPS); /* at least one connection each time */
    assert_int_equal(st.drops, d.conns);
    /* every watch stream on a cut connection came back through the reconnect path, and
     * nothing else failed (no LIST was in flight: no relist) */
    assert_true(d.streams > 0);
    assert_int_equal(st.extra.reconnects, d.streams);
    assert_int_equal(st.extra.rewatches, d.streams);
    assert_int_equal(st.extra.list_failures, 0);
    assert_int_equal(st.totals.lists, W);
    assert_int_equal(st.totals.relists.miss + st.totals.relists.compacted + st.totals.relists.error,
                     0);
    assert_int_equal(k.relist_traces, 0);
    assert_int_equal(st.extra.duplicates, 0);
    assert_int_equal(st.totals.misses, 0);
    assert_int_equal(st.connects, CONNS + d.conns); /* one new connection per cut one */
    assert_int_equal(st.conns_up, CONNS);
    uint64_t cut_slots = 0;
    for (size_t s = 0; s < CONNS; s++)
        cut_slots += k.slot_downs[s];
    assert_int_equal(cut_slots, d.conns);
    for (size_t i = 0; i < W; i++) {
        refl_watcher_info wi = live_info(f, i);
        int n = (int)(i % NS);
        /* no event lost, none twice: exactly the writes of its namespace */
        assert_int_equal(wi.counters.events, ch.writes[n]);
        assert_int_equal(wi.counters.lists, 1);
        assert_true(wi.extra.reconnects <= k.slot_downs[wi.slot]);
        if (k.slot_downs[wi.slot] == 0)
            assert_int_equal(wi.extra.reconnects, 0);
        else
            assert_true(wi.extra.reconnects >= 1); /* the first cut found it watching */
        assert_false(k.pending[i]);
    }
    /* the backoff was respected: never back sooner than its first step (100 ms) */
    assert_true(k.n_lat >= d.streams / 2);
    qsort(k.lat, k.n_lat, sizeof k.lat[0], cmp_u64);
    assert_true(k.lat[0] >= 100);
    assert_true(k.lat[0] >= REFL_RECONNECT_FLOOR_MS);

    refl_verify_round v = live_verify(f);
    assert_int_equal(v.verified, W);
    assert_int_equal(v.divergent, 0);
    assert_int_equal(v.divergent_watchers, 0);
    char *js = refl_fleet_summary_json(f, NULL);
    assert_non_null(js);
    char want[64];
    snprintf(want, sizeof want, "\"drops\": %zu", d.conns);
    assert_non_null(strstr(js, want));
    snprintf(want, sizeof want, "\"reconnects\": %zu", d.streams);
    assert_non_null(strstr(js, want));
    free(js);
    print_message("  %d drops: %zu connections cut (of >= %zu open), %zu watcher cuts, %zu watch "
                  "streams; %zu writes during the drops, %llu in all; %llu events applied, 0 lost, "
                  "0 duplicated; reconnect (cut -> watch created) min %llu ms, median %llu ms, "
                  "max %llu ms over %zu\n",
                  d.done, d.conns, d.open_min, d.watchers, d.streams, during,
                  (unsigned long long)ch.total, (unsigned long long)st.totals.events,
                  (unsigned long long)k.lat[0], (unsigned long long)k.lat[k.n_lat / 2],
                  (unsigned long long)k.lat[k.n_lat - 1], k.n_lat);
    live_fleet_free(f);
    RUNNING = NULL;
}

/* ---- 3. compaction while the cut watchers are away ------------------------------------------ */

static void test_drop_compacted(void **state) {
    (void)state;
    LIVE_REQUIRE();
    enum { W = 20, CONNS = 5, NS = 10, BACKOFF_MS = 1500 };
    churn ch;
    churn_init(&ch, "d3pods", NS, 16, 100, 3);
    assert_int_equal(churn_seed(&ch, 8), 0);
    tracker k;
    /* a fixed 1.5 s: the writes and the compaction below land while the cut watchers wait */
    refl_fleet_opts o = drop_opts("/registry/d3pods/", W, CONNS, &k, "exp:1500ms,1500ms,1,0");
    refl_fleet *f = RUNNING = live_fleet(&o);
    churn_wait(f, &ch, true, 20000);
    for (int i = 0; i < 40; i++)
        assert_true(churn_step(&ch) > 0);
    churn_wait(f, &ch, true, 20000);
    uint64_t t0 = uv_now(&L.loop);
    refl_drop_result res;
    /* 0.4 of 5 open connections: 2, each carrying 4 watchers (w, w + 5, w + 10, w + 15) */
    assert_int_equal(refl_fleet_drop_connections(f, 0.4, 99, &res), 2);
    assert_int_equal(res.conns_open, CONNS);
    assert_int_equal(res.conns, 2);
    assert_int_equal(res.watchers, 8);
    assert_int_equal(res.streams, 8);
    bool cut[W];
    for (size_t i = 0; i < W; i++) {
        refl_watcher_info wi = live_info(f, i);
        cut[i] = k.slot_downs[wi.slot] > 0;
        assert_int_equal(wi.state, cut[i] ? REFL_ST_WAITING : REFL_ST_WATCHING);
    }
    /* two writes per namespace past every cut watcher's revision, then compact them away */
    for (int round = 0; round < 2; round++)
        for (int n = 0; n < NS; n++)
            assert_true(churn_step_in(&ch, n) > 0);
    assert_int_equal(live_compact(ch.max_rev), 0);
    uint64_t away = uv_now(&L.loop) - t0;
    if (away >= BACKOFF_MS)
        fail_msg("writes took %llu ms: the watchers were back", (unsigned long long)away);
    churn_wait(f, &ch, true, 20000);
    /* one more write per namespace: a verification LISTs at each watcher's revision, which must
     * not be below the compaction */
    for (int n = 0; n < NS; n++)
        assert_true(churn_step_in(&ch, n) > 0);
    churn_wait(f, &ch, true, 20000);
    for (size_t i = 0; i < W; i++) {
        refl_watcher_info wi = live_info(f, i);
        int n = (int)(i % NS);
        assert_int_equal(wi.counters.relists.miss + wi.counters.relists.error, 0);
        if (cut[i]) {
            assert_int_equal(wi.extra.reconnects, 1);
            assert_int_equal(wi.counters.relists.compacted, 1);
            assert_int_equal(wi.counters.lists, 2);
            assert_true(wi.counters.events <= ch.writes[n]); /* the LIST absorbed the gap */
        } else {
            assert_int_equal(wi.extra.reconnects, 0);
            assert_int_equal(wi.counters.relists.compacted, 0);
            assert_int_equal(wi.counters.lists, 1);
            assert_int_equal(wi.counters.events, ch.writes[n]);
        }
    }
    refl_fleet_stats st;
    refl_fleet_get_stats(f, &st);
    assert_int_equal(st.totals.relists.compacted, 8);
    assert_int_equal(st.extra.duplicates, 0);
    assert_int_equal(st.drops, 2);
    /* back no sooner than the backoff */
    assert_int_equal(k.n_lat, 8);
    qsort(k.lat, k.n_lat, sizeof k.lat[0], cmp_u64);
    assert_true(k.lat[0] >= BACKOFF_MS);
    refl_verify_round v = live_verify(f);
    assert_int_equal(v.verified, W);
    assert_int_equal(v.divergent, 0);
    print_message("  2 of 5 connections cut (8 watchers); %llu ms of writes and a compaction at "
                  "%lld while away; 8 relists (compacted); back after %llu..%llu ms\n",
                  (unsigned long long)away, (long long)ch.max_rev, (unsigned long long)k.lat[0],
                  (unsigned long long)k.lat[k.n_lat - 1]);
    live_fleet_free(f);
    RUNNING = NULL;
}

/* ---- bad arguments --------------------------------------------------------------------------- */

static void test_drop_args(void **state) {
    (void)state;
    LIVE_REQUIRE();
    tracker k;
    refl_fleet_opts o = drop_opts("/registry/d4pods/", 2, 0, &k, "none");
    refl_fleet *f = RUNNING = live_fleet(&o);
    refl_drop_result res;
    assert_int_equal(refl_fleet_drop_connections(f, -0.5, 1, &res), -1);
    assert_int_equal(refl_fleet_drop_connections(f, NAN, 1, &res), -1);
    assert_int_equal(refl_fleet_drop_connections(f, 0, 1, &res), 0);
    live_wait_synced(f, 0, 10000);
    assert_int_equal(refl_fleet_drop_connections(f, 0, 1, NULL), 0);
    assert_int_equal(refl_fleet_drop_connections(f, 0.1, 1, &res), 1); /* ceil(0.1 * 2) */
    assert_int_equal(res.conns_open, 2);
    assert_int_equal(res.watchers, 1);
    live_wait_synced(f, 0, 10000);
    assert_int_equal(refl_fleet_drop_connections(f, 5, 1, &res), 2);
    assert_int_equal(res.watchers, 2);
    /* nothing open right now: nothing to cut */
    assert_int_equal(refl_fleet_drop_connections(f, 1, 1, &res), 0);
    assert_int_equal(res.conns_open, 0);
    live_wait_synced(f, 0, 10000);
    refl_fleet_stats st;
    refl_fleet_get_stats(f, &st);
    assert_int_equal(st.drops, 3);
    assert_int_equal(st.extra.reconnects, 3);
    assert_int_equal(st.totals.lists, 2);
    live_fleet_free(f);
    RUNNING = NULL;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_abort),
        cmocka_unit_test(test_client_abort_wire),
        cmocka_unit_test_teardown(test_drop_args, fleet_teardown),
        cmocka_unit_test_teardown(test_drop_under_writes, fleet_teardown),
        cmocka_unit_test_teardown(test_drop_compacted, fleet_teardown),
    };
    return cmocka_run_group_tests(tests, live_setup, live_teardown);
}
