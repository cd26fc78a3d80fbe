/* test_grpc_loop.c — gRPC server and client of proto/grpc.h against each other on one uv loop
 * over real loopback sockets (port 0): unary round trips, an 8 MiB response framed in chunks,
 * many concurrent calls, asynchronous replies (timer and another thread via grpc_server_post),
 * error statuses / Trailers-Only, unknown methods, oversized requests, deadlines, bidi streams,
 * client cancel, bounded server buffering against a paused reader, shutdown with GOAWAY. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etcd_proc.h" /* run_until, result */
#include "grpc.h"

/* ---------------------------------------------------------------- harness */

typedef struct world {
    uv_loop_t loop;
    grpc_server *srv;
    grpc_client *cli;
    char target[64];
    int cancels;     /* server on_cancel count */
    int stream_msgs; /* server side messages seen on Stream */
    int half_closes;
    char last_hasleader[32];
    bool shut_done;
    int disconnects;
    char disconnect_msg[128];
    size_t flood_total; /* bytes the Flood method should produce */
} world;

static world *W;

/* ---------------------------------------------------------------- test methods */

static void m_echo(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    grpc_call_reply(call, msg, len);
}

static void m_meta(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)msg;
    (void)len;
    (void)ud;
    char out[256];
    const char *k = grpc_call_metadata(call, "x-key");
    snprintf(out, sizeof out, "%s|%s|%llu", k ? k : "-", grpc_call_peer(call),
             (unsigned long long)grpc_conn_id(grpc_call_conn(call)));
    grpc_call_reply(call, out, strlen(out));
}

/* Big: a response of the requested size, framed with send_begin and paced by on_writable. */
typedef struct big_state {
    size_t total, sent;
} big_state;

static void big_pump(grpc_call *call) {
    big_state *b = grpc_call_user_data(call);
    static uint8_t chunk[65536];
    while (b->sent < b->total) {
        size_t n = b->total - b->sent;
        if (n > sizeof chunk) n = sizeof chunk;
        for (size_t i = 0; i < n; i++)
            chunk[i] = (uint8_t)((b->sent + i) * 7 + 3);
        int rv = grpc_call_send_chunk(call, chunk, n);
        if (rv < 0) return; /* cancelled: on_cancel completes */
        b->sent += n;
        if (rv == GRPC_SEND_FULL) return;
    }
    free(b);
    grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static void m_big(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    assert_int_equal(len, 4);
    big_state *b = calloc(1, sizeof *b);
    b->total = ((size_t)msg[0] << 24) | ((size_t)msg[1] << 16) | ((size_t)msg[2] << 8) | msg[3];
    grpc_call_set_user_data(call, b);
    assert_true(grpc_call_send_begin(call, b->total) >= 0);
    big_pump(call);
}

static void big_writable(grpc_call *call, void *ud) {
    (void)ud;
    big_pump(call);
}

static void big_cancel(grpc_call *call, void *ud) {
    free(ud);
    grpc_call_finish(call, GRPC_STATUS_CANCELLED, NULL);
}

typedef struct delayed {
    uv_timer_t t;
    grpc_call *call;
    uint8_t buf[64];
    size_t len;
} delayed;

static void delayed_close(uv_handle_t *h) {
    free(h->data);
}

static void delayed_fire(uv_timer_t *t) {
    delayed *d = t->data;
    grpc_call_reply(d->call, d->buf, d->len);
    uv_close((uv_handle_t *)t, delayed_close);
}

static void m_delay(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    delayed *d = calloc(1, sizeof *d);
    d->call = call;
    d->len = len < sizeof d->buf ? len : sizeof d->buf;
    memcpy(d->buf, msg, d->len);
    uv_timer_init(&W->loop, &d->t);
    d->t.data = d;
    uv_timer_start(&d->t, delayed_fire, 30, 0);
}

/* Post: another thread finishes the work and hands the reply back with grpc_server_post. */
typedef struct posted {
    grpc_server *srv;
    grpc_call *call;
    uv_thread_t th;
    uint32_t value;
} posted;

static void posted_reply(void *arg) {
    posted *p = arg;
    uint32_t v = p->value * 2;
    grpc_call_reply(p->call, &v, sizeof v);
    uv_thread_join(&p->th);
    free(p);
}

static void posted_worker(void *arg) {
    posted *p = arg;
    uv_sleep(10);
    assert_int_equal(grpc_server_post(p->srv, posted_reply, p), 0);
}

static void m_post(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    posted *p = calloc(1, sizeof *p);
    p->srv = W->srv;
    p->call = call;
    memcpy(&p->value, msg, len < 4 ? len : 4);
    uv_thread_create(&p->th, posted_worker, p);
}

static void m_fail(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    grpc_call_fail(call, len ? msg[0] : GRPC_STATUS_UNKNOWN, "50% done\nnext: \xc3\xa9tcd");
}

static void m_never(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)call;
    (void)msg;
    (void)len;
    (void)ud;
}

static void count_cancel(grpc_call *call, void *ud) {
    (void)ud;
    W->cancels++;
    grpc_call_finish(call, GRPC_STATUS_CANCELLED, NULL);
}

static void s_open(grpc_stream *s, void *ud) {
    (void)ud;
    const char *v = grpc_call_metadata(s, "hasleader");
    snprintf(W->last_hasleader, sizeof W->last_hasleader, "%s", v ? v : "");
}

static void s_msg(grpc_stream *s, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    W->stream_msgs++;
    assert_true(grpc_stream_send(s, msg, len) >= 0);
}

static void s_half(grpc_stream *s, void *ud) {
    (void)ud;
    W->half_closes++;
    grpc_stream_finish(s, GRPC_STATUS_OK, NULL);
}

/* Flood: produces 256 KiB messages as fast as the queue allows, up to W->flood_total. */
typedef struct flood {
    size_t sent;
} flood;

static void flood_pump(grpc_stream *s) {
    flood *f = grpc_call_user_data(s);
    static uint8_t m[256 * 1024];
    while (f->sent < W->flood_total) {
        int rv = grpc_stream_send(s, m, sizeof m);
        if (rv < 0) return;
        f->sent += sizeof m;
        if (rv == GRPC_SEND_FULL) return;
    }
    free(f);
    grpc_call_set_user_data(s, NULL);
    grpc_stream_finish(s, GRPC_STATUS_OK, NULL);
}

static void flood_open(grpc_stream *s, void *ud) {
    (void)ud;
    grpc_call_set_user_data(s, calloc(1, sizeof(flood)));
    flood_pump(s);
}

static void flood_writable(grpc_call *s, void *ud) {
    (void)ud;
    flood_pump(s);
}

static void flood_cancel(grpc_call *s, void *ud) {
    free(ud);
    W->cancels++;
    grpc_call_finish(s, GRPC_STATUS_CANCELLED, NULL);
}

static const grpc_method METHODS[] = {
    {.path = "/test.Echo/Unary", .kind = GRPC_UNARY, .on_unary = m_echo},
    {.path = "/test.Echo/Meta", .kind = GRPC_UNARY, .on_unary = m_meta},
    {.path = "/test.Echo/Big",
     .kind = GRPC_UNARY,
     .on_unary = m_big,
     .on_writable = big_writable,
     .on_cancel = big_cancel},
    {.path = "/test.Echo/Delay", .kind = GRPC_UNARY, .on_unary = m_delay},
    {.path = "/test.Echo/Post", .kind = GRPC_UNARY, .on_unary = m_post},
    {.path = "/test.Echo/Fail", .kind = GRPC_UNARY, .on_unary = m_fail},
    {.path = "/test.Echo/Never",
     .kind = GRPC_UNARY,
     .on_unary = m_never,
     .on_cancel = count_cancel},
    {.path = "/test.Echo/Stream",
     .kind = GRPC_BIDI_STREAM,
     .on_open = s_open,
     .on_message = s_msg,
     .on_half_close = s_half,
     .on_cancel = count_cancel},
    {.path = "/test.Echo/Flood",
     .kind = GRPC_BIDI_STREAM,
     .on_open = flood_open,
     .on_writable = flood_writable,
     .on_cancel = flood_cancel},
};

static void on_disc(void *ud, grpc_client *c, int status, const char *msg) {
    (void)ud;
    (void)c;
    (void)status;
    W->disconnects++;
    snprintf(W->disconnect_msg, sizeof W->disconnect_msg, "%s", msg);
}

static world *world_new(const grpc_server_opts *so, const grpc_client_opts *co_in) {
    world *w = calloc(1, sizeof *w);
    W = w;
    assert_int_equal(uv_loop_init(&w->loop), 0);
    grpc_server_opts o = so ? *so : (grpc_server_opts){0};
    if (!o.max_recv_msg_size) o.max_recv_msg_size = 1 << 20;
    w->srv = grpc_server_new(&w->loop, &o, METHODS, sizeof METHODS / sizeof METHODS[0]);
    assert_non_null(w->srv);
    assert_int_equal(grpc_server_listen(w->srv, "127.0.0.1", 0), 0);
    assert_true(grpc_server_port(w->srv) > 0);
    snprintf(w->target, sizeof w->target, "127.0.0.1:%d", grpc_server_port(w->srv));
    grpc_client_opts co = co_in ? *co_in : (grpc_client_opts){0};
    co.on_disconnect = on_disc;
    w->cli = grpc_client_new(&w->loop, w->target, &co);
    assert_non_null(w->cli);
    return w;
}

static void shut_done(void *ud) {
    ((world *)ud)->shut_done = true;
}

static void world_free(world *w) {
    if (w->cli) grpc_client_free(w->cli);
    grpc_server_shutdown(w->srv, shut_done, w);
    assert_true(run_until(&w->loop, &w->shut_done, 5000));
    grpc_server_free(w->srv);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    free(w);
    W = NULL;
}

static void call_and_wait(world *w, const char *path, const void *req, size_t len, uint32_t tmo,
                          result *r) {
    memset(r, 0, sizeof *r);
    assert_int_equal(grpc_client_unary(w->cli, path, req, len, tmo, on_result, r), 0);
    assert_true(run_until(&w->loop, &r->done, 10000));
}

/* ---------------------------------------------------------------- tests */

static void test_unary_roundtrip(void **state) {
    (void)state;
    world *w = world_new(NULL, NULL);
    result r;
    call_and_wait(w, "/test.Echo/Unary", "hello", 5, 0, &r);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.data, "hello", 5);
    free(r.data);
    /* empty message */
    call_and_wait(w, "/test.Echo/Unary", "", 0, 1000, &r);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_int_equal(r.len, 0);
    free(r.data);
    /* metadata, peer, connection id */
    grpc_metadata md[] = {{"x-key", "v1"}};
    memset(&r, 0, sizeof r);
    assert_int_equal(
        grpc_client_unary_md(w->cli, "/test.Echo/Meta", md, 1, "", 0, 0, on_result, &r), 0);
    assert_true(run_until(&w->loop, &r.done, 5000));
    assert_int_equal(r.status, 0);
    char *s = strndup((char *)r.data, r.len);
    assert_true(strncmp(s, "v1|127.0.0.1:", 13) == 0);
    assert_non_null(strstr(s, "|1"));
    free(s);
    free(r.data);
    grpc_server_stats st;
    grpc_server_get_stats(w->srv, &st);
    assert_int_equal(st.conns_accepted, 1);
    assert_int_equal(st.calls_started, 3);
    assert_true(st.bytes_in > 0 && st.bytes_out > 0);
    world_free(w);
}

static void test_big_response(void **state) {
    (void)state;
    world *w = world_new(NULL, NULL);
    size_t total = 8u << 20;
    uint8_t req[4] = {(uint8_t)(total >> 24), (uint8_t)(total >> 16), (uint8_t)(total >> 8),
                      (uint8_t)total};
    result r;
    uint64_t t0 = uv_hrtime();
    call_and_wait(w, "/test.Echo/Big", req, 4, 0, &r);
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_int_equal(r.len, total);
    for (size_t i = 0; i < total; i++)
        if (r.data[i] != (uint8_t)(i * 7 + 3)) fail_msg("byte %zu differs", i);
    free(r.data);
    grpc_server_stats st;
    grpc_server_get_stats(w->srv, &st);
    print_message("8 MiB response in %.1f ms (%.0f MB/s incl. pattern fill), server peak buffered "
                  "%zu bytes\n",
                  ms, total / ms / 1e3, st.out_buffered_peak);
    assert_true(st.out_buffered_peak < (3u << 20));
    world_free(w);
}

typedef struct many {
    int done, ok;
    bool all;
    int n;
} many;

static void on_many(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    (void)message;
    many *m = ud;
    if (status == 0 && len == 4) m->ok++;
    (void)resp;
    if (++m->done == m->n) m->all = true;
}

static void test_many_concurrent(void **state) {
    (void)state;
    world *w = world_new(NULL, NULL);
    many m = {.n = 2000};
    for (int i = 0; i < m.n; i++) {
        uint32_t v = (uint32_t)i;
        const char *path = i % 3 == 0 ? "/test.Echo/Delay" : "/test.Echo/Unary";
        assert_int_equal(grpc_client_unary(w->cli, path, &v, 4, 5000, on_many, &m), 0);
    }
    assert_true(run_until(&w->loop, &m.all, 10000));
    assert_int_equal(m.ok, m.n);
    world_free(w);
}

static void test_async_reply(void **state) {
    (void)state;
    world *w = world_new(NULL, NULL);
    result r;
    call_and_wait(w, "/test.Echo/Delay", "later", 5, 2000, &r);
    assert_int_equal(r.status, 0);
    assert_memory_equal(r.data, "later", 5);
    free(r.data);
    uint32_t v = 21;
    call_and_wait(w, "/test.Echo/Post", &v, 4, 2000, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 4);
    memcpy(&v, r.data, 4);
    assert_int_equal(v, 42);
    free(r.data);
    world_free(w);
}

static void test_errors(void **state) {
    (void)state;
    world *w = world_new(NULL, NULL);
    result r;
    uint8_t code = GRPC_STATUS_NOT_FOUND;
    call_and_wait(w, "/test.Echo/Fail", &code, 1, 0, &r);
    assert_int_equal(r.status, GRPC_STATUS_NOT_FOUND);
    assert_string_equal(r.message, "50% done\nnext: \xc3\xa9tcd");
    assert_null(r.data);
    call_and_wait(w, "/nope.Svc/Foo", "x", 1, 0, &r);
    assert_int_equal(r.status, GRPC_STATUS_UNIMPLEMENTED);
    assert_string_equal(r.message, "unknown service nope.Svc");
    call_and_wait(w, "/test.Echo/Foo", "x", 1, 0, &r);
    assert_int_equal(r.status, GRPC_STATUS_UNIMPLEMENTED);
    assert_string_equal(r.message, "unknown method Foo for service test.Echo");
    /* oversized request (server max 1 MiB in this suite) */
    size_t big = (1u << 20) + 10;
    uint8_t *p = calloc(1, big);
    call_and_wait(w, "/test.Echo/Unary", p, big, 0, &r);
    assert_int_equal(r.status, GRPC_STATUS_RESOURCE_EXHAUSTED);
    assert_string_equal(r.message, "grpc: received message larger than max (1048586 vs. 1048576)");
    free(p);
    /* the connection still works */
    call_and_wait(w, "/test.Echo/Unary", "ok", 2, 0, &r);
    assert_int_equal(r.status, 0);
    free(r.data);
    world_free(w);
}

static void test_deadline(void **state) {
    (void)state;
    world *w = world_new(NULL, NULL);
    result r;
    uint64_t t0 = uv_now(&w->loop);
    call_and_wait(w, "/test.Echo/Never", "x", 1, 60, &r);
    assert_int_equal(r.status, GRPC_STATUS_DEADLINE_EXCEEDED);
    assert_true(uv_now(&w->loop) - t0 >= 55);
    /* the server saw the deadline pass too */
    run_for(&w->loop, 100);
    assert_int_equal(w->cancels, 1);
    world_free(w);
}

/* ---- bidi stream ---- */
typedef struct sctx {
    int got;
    size_t bytes;
    bool closed;
    int status;
    char msg[128];
    int expect_next;
    bool in_order;
} sctx;

static void c_msg(grpc_cstream *s, const uint8_t *msg, size_t len, void *ud) {
    (void)s;
    sctx *c = ud;
    if (len == 4) {
        uint32_t v;
        memcpy(&v, msg, 4);
        if ((int)v != c->expect_next) c->in_order = false;
        c->expect_next++;
    }
    c->got++;
    c->bytes += len;
}

static void c_close(grpc_cstream *s, int status, const char *message, void *ud) {
    (void)s;
    sctx *c = ud;
    c->closed = true;
    c->status = status;
    snprintf(c->msg, sizeof c->msg, "%s", message);
}

static void test_bidi_stream(void **state) {
    (void)state;
    world *w = world_new(NULL, NULL);
    sctx c = {.in_order = true};
    grpc_cstream_cbs cbs = {.on_message = c_msg, .on_close = c_close};
    grpc_metadata md[] = {{"hasleader", "true"}};
    grpc_cstream *s = grpc_client_stream_open(w->cli, "/test.Echo/Stream", md, 1, &cbs, &c);
    assert_non_null(s);
    const int N = 5000;
    for (int i = 0; i < N; i++) {
        uint32_t v = (uint32_t)i;
        assert_true(grpc_cstream_send(s, &v, 4) >= 0);
    }
    assert_int_equal(grpc_cstream_half_close(s), 0);
    assert_true(run_until(&w->loop, &c.closed, 10000));
    assert_int_equal(c.status, GRPC_STATUS_OK);
    assert_int_equal(c.got, N);
    assert_true(c.in_order);
    assert_int_equal(w->stream_msgs, N);
    assert_int_equal(w->half_closes, 1);
    assert_string_equal(w->last_hasleader, "true");
    world_free(w);
}

static void test_client_cancel(void **state) {
    (void)state;
    world *w = world_new(NULL, NULL);
    sctx c = {.in_order = true};
    grpc_cstream_cbs cbs = {.on_message = c_msg, .on_close = c_close};
    grpc_cstream *s = grpc_client_stream_open(w->cli, "/test.Echo/Stream", NULL, 0, &cbs, &c);
    uint32_t v = 0;
    assert_true(grpc_cstream_send(s, &v, 4) >= 0);
    for (int i = 0; i < 500 && c.got < 1; i++)
        run_for(&w->loop, 10);
    assert_int_equal(c.got, 1);
    grpc_cstream_cancel(s);
    for (int i = 0; i < 50 && w->cancels == 0; i++)
        run_for(&w->loop, 10);
    assert_int_equal(w->cancels, 1);
    assert_false(c.closed); /* on_close is not called after a user cancel */
    /* unary still fine afterwards */
    result r;
    call_and_wait(w, "/test.Echo/Unary", "z", 1, 0, &r);
    assert_int_equal(r.status, 0);
    free(r.data);
    world_free(w);
}

/* A reader that pauses: the server's buffered output must stay bounded. */
static void test_paused_reader_bounded(void **state) {
    (void)state;
    grpc_server_opts so = {.high_water = 512 * 1024};
    grpc_client_opts co = {.initial_window_size = 1 << 20, .conn_window_size = 2 << 20};
    world *w = world_new(&so, &co);
    w->flood_total = 64u << 20;
    sctx c = {.in_order = true};
    grpc_cstream_cbs cbs = {.on_message = c_msg, .on_close = c_close};
    grpc_cstream *s = grpc_client_stream_open(w->cli, "/test.Echo/Flood", NULL, 0, &cbs, &c);
    grpc_cstream_pause(s);
    run_for(&w->loop, 300);
    grpc_server_stats st;
    grpc_server_get_stats(w->srv, &st);
    grpc_client_stats cs;
    grpc_client_get_stats(w->cli, &cs);
    print_message("paused: server buffered now %zu peak %zu; client holds %zu; delivered %d\n",
                  st.out_buffered, st.out_buffered_peak, cs.in_buffered, c.got);
    /* high-water + one 256 KiB message + two write buffers (~2 x 272 KiB) */
    assert_true(st.out_buffered_peak <= 512 * 1024 + 256 * 1024 + 5 + 2 * 300 * 1024);
    assert_true(cs.in_buffered <= (1u << 20) + 65536);
    assert_int_equal(c.got, 0);
    assert_false(c.closed);
    /* resume: everything arrives */
    grpc_cstream_resume(s);
    assert_true(run_until(&w->loop, &c.closed, 20000));
    assert_int_equal(c.status, 0);
    assert_int_equal(c.bytes, w->flood_total);
    grpc_server_get_stats(w->srv, &st);
    assert_true(st.out_buffered_peak <= 512 * 1024 + 256 * 1024 + 5 + 2 * 300 * 1024);
    world_free(w);
}

static void test_shutdown_goaway(void **state) {
    (void)state;
    world *w = world_new(NULL, NULL);
    result r0;
    call_and_wait(w, "/test.Echo/Unary", "a", 1, 0, &r0); /* connection is up */
    free(r0.data);
    result r;
    memset(&r, 0, sizeof r);
    assert_int_equal(grpc_client_unary(w->cli, "/test.Echo/Delay", "slow", 4, 0, on_result, &r), 0);
    run_for(&w->loop, 5); /* request reaches the server */
    grpc_server_shutdown(w->srv, shut_done, w);
    assert_true(run_until(&w->loop, &r.done, 5000));
    assert_int_equal(r.status, 0); /* the in-flight call finished */
    free(r.data);
    r.data = NULL; /* on_result frees what it replaces */
    assert_true(run_until(&w->loop, &w->shut_done, 5000));
    assert_true(w->disconnects >= 1);
    assert_false(grpc_client_is_connected(w->cli));
    /* new calls fail at once */
    assert_int_equal(grpc_client_unary(w->cli, "/test.Echo/Unary", "a", 1, 0, on_result, &r),
                     GRPC_EUNAVAILABLE);
    grpc_client_free(w->cli);
    grpc_server_free(w->srv);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    free(w);
}

static void test_connection_refused(void **state) {
    (void)state;
    world *w = world_new(NULL, NULL);
    grpc_client_free(w->cli);
    w->cli = NULL;
    /* a port nobody listens on: bind, read the port, close */
    uv_tcp_t t;
    uv_tcp_init(&w->loop, &t);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&t, (struct sockaddr *)&a, 0);
    int len = sizeof a;
    uv_tcp_getsockname(&t, (struct sockaddr *)&a, &len);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", ntohs(a.sin_port));
    grpc_client *c = grpc_client_new(&w->loop, target, NULL);
    result r;
    memset(&r, 0, sizeof r);
    assert_int_equal(grpc_client_unary(c, "/test.Echo/Unary", "a", 1, 0, on_result, &r), 0);
    assert_true(run_until(&w->loop, &r.done, 5000));
    assert_int_equal(r.status, GRPC_STATUS_UNAVAILABLE);
    grpc_client_free(c);
    world_free(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_roundtrip),
        cmocka_unit_test(test_big_response),
        cmocka_unit_test(test_many_concurrent),
        cmocka_unit_test(test_async_reply),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_bidi_stream),
        cmocka_unit_test(test_client_cancel),
        cmocka_unit_test(test_paused_reader_bounded),
        cmocka_unit_test(test_shutdown_goaway),
        cmocka_unit_test(test_connection_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
