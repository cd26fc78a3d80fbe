/* test_grpc_raw.c — the server against hand-made bytes on blocking sockets (server loop in its
 * own thread): garbage instead of the preface, the HTTP/1.1 hand-off hook, PING ACK, a non-POST
 * request, a compressed message, max_connections, broken frames after a valid preface and a
 * burst of random inputs — after each, the server still serves a normal call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "grpc.h"
#include "grpc_srv_thread.h"

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* ---------------------------------------------------------------- server thread */

static void m_echo(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    grpc_call_reply(call, msg, len);
}

static const grpc_method METHODS[] = {
    {.path = "/test.Echo/Unary", .kind = GRPC_UNARY, .on_unary = m_echo},
};

static srv_thread *srv_start(grpc_server_opts *o) {
    return srv_start_with(o, METHODS, 1);
}

static void get_stats(srv_thread *t, void *arg) {
    grpc_server_get_stats(t->srv, arg);
}

static grpc_server_stats srv_stats(srv_thread *t) {
    grpc_server_stats st;
    srv_on_loop(t, get_stats, &st);
    return st;
}

/* ---------------------------------------------------------------- raw socket helpers */

static bool read_full(int fd, uint8_t *p, size_t n) {
    while (n) {
        ssize_t k = recv(fd, p, n, 0);
        if (k <= 0) return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

typedef struct frame {
    uint8_t type, flags;
    uint32_t sid;
    size_t len;
    uint8_t payload[1 << 16];
} frame;

static bool raw_read_frame(int fd, frame *f) {
    uint8_t h[9];
    if (!read_full(fd, h, 9)) return false;
    f->len = ((size_t)h[0] << 16) | ((size_t)h[1] << 8) | h[2];
    f->type = h[3];
    f->flags = h[4];
    f->sid =
        ((uint32_t)(h[5] & 0x7f) << 24) | ((uint32_t)h[6] << 16) | ((uint32_t)h[7] << 8) | h[8];
    if (f->len > sizeof f->payload) return false;
    return read_full(fd, f->payload, f->len);
}

/* True when the peer closed the connection (EOF or reset) within the socket timeout. */
static bool raw_closed(int fd) {
    uint8_t b[4096];
    for (;;) {
        ssize_t k = recv(fd, b, sizeof b, 0);
        if (k == 0) return true;
        if (k < 0) return errno == ECONNRESET;
    }
}

/* HPACK "literal without indexing, new name", no Huffman: enough for test requests. */
static size_t hp_lit(uint8_t *out, const char *name, const char *value) {
    size_t nl = strlen(name), vl = strlen(value), o = 0;
    out[o++] = 0;
    out[o++] = (uint8_t)nl;
    memcpy(out + o, name, nl);
    o += nl;
    out[o++] = (uint8_t)vl;
    memcpy(out + o, value, vl);
    return o + vl;
}

static size_t request_block(uint8_t *out, const char *method, const char *path, const char *ct) {
    size_t o = 0;
    o += hp_lit(out + o, ":method", method);
    o += hp_lit(out + o, ":scheme", "http");
    o += hp_lit(out + o, ":path", path);
    o += hp_lit(out + o, ":authority", "localhost");
    o += hp_lit(out + o, "content-type", ct);
    o += hp_lit(out + o, "te", "trailers");
    return o;
}

/* Reads frames of stream `sid` until END_STREAM; decodes header blocks and returns the value
 * of `want` (":status" or "grpc-status") from the last block holding it, or "" if none. */
static void read_response(int fd, uint32_t sid, const char *want, char *out, size_t outlen) {
    nghttp2_hd_inflater *inf;
    nghttp2_hd_inflate_new(&inf);
    out[0] = 0;
    frame *f = malloc(sizeof *f);
    bool end = false;
    while (!end && raw_read_frame(fd, f)) {
        if (f->sid != sid) continue;
        if (f->type == NGHTTP2_HEADERS) {
            uint8_t *in = f->payload;
            size_t inlen = f->len;
            for (;;) {
                nghttp2_nv nv;
                int fl = 0;
                ssize_t rv = nghttp2_hd_inflate_hd2(inf, &nv, &fl, in, inlen, 1);
                assert_true(rv >= 0);
                in += rv;
                inlen -= (size_t)rv;
                if (fl & NGHTTP2_HD_INFLATE_EMIT) {
                    if (nv.namelen == strlen(want) && memcmp(nv.name, want, nv.namelen) == 0)
                        snprintf(out, outlen, "%.*s", (int)nv.valuelen, nv.value);
                }
                if (fl & NGHTTP2_HD_INFLATE_FINAL) {
                    nghttp2_hd_inflate_end_headers(inf);
                    break;
                }
                if (inlen == 0 && !(fl & NGHTTP2_HD_INFLATE_EMIT)) break;
            }
        }
        if (f->flags & NGHTTP2_FLAG_END_STREAM) end = true;
        if (f->type == NGHTTP2_RST_STREAM) end = true;
    }
    free(f);
    nghttp2_hd_inflate_del(inf);
}

/* A normal call through our client on a private loop: proves the server still serves. */
typedef struct result {
    bool done;
    int status;
} result;

static void on_result(void *ud, int status, const char *m, const uint8_t *r, size_t n) {
    (void)m;
    (void)r;
    (void)n;
    result *res = ud;
    res->done = true;
    res->status = status;
}

static void on_wake(uv_timer_t *t) {
    (void)t;
}

static int normal_call(int port) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    grpc_client *c = grpc_client_new(&loop, target, NULL);
    result r = {0};
    assert_int_equal(grpc_client_unary(c, "/test.Echo/Unary", "x", 1, 2000, on_result, &r), 0);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_wake, 5, 5);
    uint64_t end = uv_now(&loop) + 3000;
    while (!r.done && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    grpc_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return r.done ? r.status : -1;
}

/* Preface + empty SETTINGS, then skips the server's SETTINGS / ACK frames. */
static int h2_open(int port) {
    int fd = raw_connect(port, 3);
    raw_send(fd, PREFACE, 24);
    raw_frame(fd, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
    return fd;
}

/* ---------------------------------------------------------------- tests */

static void test_garbage_preface(void **state) {
    (void)state;
    grpc_server_opts o = {0};
    srv_thread *t = srv_start(&o);
    int fd = raw_connect(t->port, 3);
    raw_send(fd, "\x16\x03\x01garbage-not-http2-at-all", 27);
    assert_true(raw_closed(fd));
    close(fd);
    fd = raw_connect(t->port, 3);
    raw_send(fd, "GET / HTTP/1.1\r\n\r\n", 18); /* no on_http1 hook: closed too */
    assert_true(raw_closed(fd));
    close(fd);
    assert_int_equal(normal_call(t->port), 0);
    grpc_server_stats st = srv_stats(t);
    assert_int_equal(st.conns_rejected, 2);
    srv_stop(t);
}

static void test_http1_handoff(void **state) {
    (void)state;
    grpc_server_opts o = {.on_http1 = srv_on_http1};
    srv_thread *t = srv_start(&o);
    int fd = raw_connect(t->port, 3);
    raw_send(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    char buf[256] = {0};
    size_t got = 0;
    ssize_t k;
    while ((k = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0)
        got += (size_t)k;
    close(fd);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
    assert_non_null(strstr(buf, "\r\n\r\nok"));
    assert_int_equal(normal_call(t->port), 0); /* gRPC on the same port */
    grpc_server_stats st = srv_stats(t);
    assert_int_equal(t->http1_calls, 1);
    assert_true(strncmp(t->http1_initial, "GET / HTTP/1.1", 14) == 0);
    assert_int_equal(st.conns_http1, 1);
    srv_stop(t);
}

static void test_ping_ack(void **state) {
    (void)state;
    grpc_server_opts o = {0};
    srv_thread *t = srv_start(&o);
    int fd = h2_open(t->port);
    raw_frame(fd, NGHTTP2_PING, 0, 0, "12345678", 8);
    frame *f = malloc(sizeof *f);
    bool settings_first = false, first = true, acked = false;
    while (!acked && raw_read_frame(fd, f)) {
        if (first) settings_first = f->type == NGHTTP2_SETTINGS && !(f->flags & 1);
        first = false;
        if (f->type == NGHTTP2_PING && (f->flags & NGHTTP2_FLAG_ACK))
            acked = f->len == 8 && memcmp(f->payload, "12345678", 8) == 0;
    }
    free(f);
    assert_true(settings_first);
    assert_true(acked);
    close(fd);
    srv_stop(t);
}

static void test_bad_requests(void **state) {
    (void)state;
    grpc_server_opts o = {0};
    srv_thread *t = srv_start(&o);
    uint8_t hb[512];
    char v[32];

    /* GET -> HTTP 405 */
    int fd = h2_open(t->port);
    size_t n = request_block(hb, "GET", "/test.Echo/Unary", "application/grpc");
    raw_frame(fd, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1, hb, n);
    read_response(fd, 1, ":status", v, sizeof v);
    assert_string_equal(v, "405");
    close(fd);

    /* wrong content-type -> HTTP 415 */
    fd = h2_open(t->port);
    n = request_block(hb, "POST", "/test.Echo/Unary", "application/json");
    raw_frame(fd, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1, hb, n);
    read_response(fd, 1, ":status", v, sizeof v);
    assert_string_equal(v, "415");
    close(fd);

    /* compressed flag -> UNIMPLEMENTED (Trailers-Only) */
    fd = h2_open(t->port);
    n = request_block(hb, "POST", "/test.Echo/Unary", "application/grpc");
    raw_frame(fd, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, hb, n);
    raw_frame(fd, NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, 1, "\x01\x00\x00\x00\x01x", 6);
    read_response(fd, 1, "grpc-status", v, sizeof v);
    assert_string_equal(v, "12");
    close(fd);

    /* a message split over many 1-byte DATA frames, two messages in one frame elsewhere */
    fd = h2_open(t->port);
    n = request_block(hb, "POST", "/test.Echo/Unary", "application/grpc");
    raw_frame(fd, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, hb, n);
    const char msg[] = "\x00\x00\x00\x00\x03"
                       "abc";
    for (int i = 0; i < 8; i++)
        raw_frame(fd, NGHTTP2_DATA, i == 7 ? NGHTTP2_FLAG_END_STREAM : 0, 1, msg + i, 1);
    read_response(fd, 1, "grpc-status", v, sizeof v);
    assert_string_equal(v, "0");
    close(fd);

    /* HEADERS without a message -> INTERNAL; then a frame on a bogus stream -> GOAWAY/close */
    fd = h2_open(t->port);
    n = request_block(hb, "POST", "/test.Echo/Unary", "application/grpc");
    raw_frame(fd, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1, hb, n);
    read_response(fd, 1, "grpc-status", v, sizeof v);
    assert_string_equal(v, "13");
    raw_frame(fd, NGHTTP2_DATA, 0, 2, "zz", 2); /* even stream id from a client: protocol error */
    assert_true(raw_closed(fd));
    close(fd);

    assert_int_equal(normal_call(t->port), 0);
    srv_stop(t);
}

static void test_max_connections(void **state) {
    (void)state;
    grpc_server_opts o = {.max_connections = 1};
    srv_thread *t = srv_start(&o);
    int fd1 = h2_open(t->port);
    frame *f = malloc(sizeof *f);
    assert_true(raw_read_frame(fd1, f)); /* first one is served: SETTINGS */
    assert_int_equal(f->type, NGHTTP2_SETTINGS);
    int fd2 = raw_connect(t->port, 3);
    assert_true(raw_closed(fd2));
    close(fd2);
    close(fd1);
    free(f);
    usleep(50000);
    assert_int_equal(normal_call(t->port), 0); /* the slot is free again */
    srv_stop(t);
}

static void test_random_input(void **state) {
    (void)state;
    grpc_server_opts o = {0};
    srv_thread *t = srv_start(&o);
    uint32_t seed = 12345;
    uint8_t buf[4096];
    for (int round = 0; round < 150; round++) {
        int fd = raw_connect(t->port, 3);
        if (round % 3) raw_send(fd, PREFACE, 24);
        size_t n = 0;
        /* frame-shaped noise: random headers with plausible lengths, random payloads */
        while (n + 9 + 64 < sizeof buf) {
            seed = seed * 1103515245 + 12345;
            size_t len = (seed >> 8) % 48;
            uint8_t h[9] = {0,
                            0,
                            (uint8_t)len,
                            (uint8_t)((seed >> 4) % 10),
                            (uint8_t)(seed >> 16),
                            0,
                            0,
                            0,
                            (uint8_t)((seed >> 20) % 6)};
            memcpy(buf + n, h, 9);
            n += 9;
            for (size_t i = 0; i < len; i++) {
                seed = seed * 1103515245 + 12345;
                buf[n++] = (uint8_t)(seed >> 16);
            }
        }
        send(fd, buf, n, MSG_NOSIGNAL);
        close(fd);
    }
    assert_int_equal(normal_call(t->port), 0);
    srv_stop(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage_preface), cmocka_unit_test(test_http1_handoff),
        cmocka_unit_test(test_ping_ack),        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_max_connections), cmocka_unit_test(test_random_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
