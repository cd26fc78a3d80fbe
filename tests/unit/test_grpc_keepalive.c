/* test_grpc_keepalive.c — the server's handshake deadline, keepalive PINGs and client PING
 * policy (grpc_keepalive.c) against hand-made bytes on sockets and our own client, with the
 * server loop in its own thread and every timeout set short (100-300 ms):
 * - silent, preface-only, half-SETTINGS and half-HTTP/1-line connections are closed at the
 *   handshake deadline; a completed handshake and a complete HTTP/1 line are not;
 * - a connection that ACKs the server's PINGs survives many intervals; one that never answers
 *   is closed after interval + timeout; our client, busy or idle, is never closed;
 * - PINGs faster than min_time get GOAWAY ENHANCE_YOUR_CALM "too_many_pings" on the third
 *   strike (also with no stream open), PINGs spaced by min_time do not, and PINGs that follow
 *   the server's DATA (grpc-go's BDP pings) never count.
 * Timing bounds are lower bounds plus generous slack (sanitizer builds and a shared machine). */
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
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "grpc.h"
#include "grpc_srv_thread.h"

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define SLACK_MS 1500 /* how late a deadline may be met on a loaded or sanitized run */

/* ---------------------------------------------------------------- server thread */

static void m_echo(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    grpc_call_reply(call, msg, len);
}

/* A stream that stays open until the connection goes. */
static void m_hold_cancel(grpc_call *call, void *ud) {
    (void)ud;
    grpc_call_finish(call, GRPC_STATUS_CANCELLED, NULL);
}

static const grpc_method METHODS[] = {
    {.path = "/test.Echo/Unary", .kind = GRPC_UNARY, .on_unary = m_echo},
    {.path = "/test.Stream/Hold", .kind = GRPC_BIDI_STREAM, .on_cancel = m_hold_cancel},
};

static srv_thread *srv_start(grpc_server_opts *o) {
    return srv_start_with(o, METHODS, sizeof METHODS / sizeof METHODS[0]);
}

typedef struct stats_req {
    grpc_server_ka_stats ka;
    int http1_calls;
} stats_req;

static void get_stats(srv_thread *t, void *arg) {
    stats_req *r = arg;
    grpc_server_get_ka_stats(t->srv, &r->ka);
    r->http1_calls = t->http1_calls;
}

static stats_req srv_stats(srv_thread *t) {
    stats_req r;
    srv_on_loop(t, get_stats, &r);
    print_message("  server: %llu handshake timeouts, %llu PINGs sent, %llu keepalive timeouts, "
                  "%llu too_many_pings\n",
                  (unsigned long long)r.ka.handshake_timeouts, (unsigned long long)r.ka.pings_sent,
                  (unsigned long long)r.ka.keepalive_timeouts,
                  (unsigned long long)r.ka.too_many_pings);
    return r;
}

/* ---------------------------------------------------------------- raw sockets */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Preface + empty SETTINGS: a completed handshake. */
static int h2_open(int port) {
    int fd = raw_connect(port, 0);
    raw_send(fd, PREFACE, 24);
    raw_frame(fd, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
    return fd;
}

/* A frame reader over a socket with deadlines. */
typedef struct reader {
    int fd;
    uint8_t buf[1 << 17];
    size_t len;
} reader;

typedef struct frame {
    uint8_t type, flags;
    uint32_t sid;
    size_t len;
    uint8_t payload[1 << 16];
} frame;

enum { RD_FRAME = 1, RD_TIMEOUT = 0, RD_EOF = -1 };

/* Next frame within until (now_ms clock): RD_FRAME, RD_TIMEOUT or RD_EOF (closed / reset). */
static int rd_next(reader *r, frame *f, int64_t until) {
    for (;;) {
        if (r->len >= 9) {
            size_t len = ((size_t)r->buf[0] << 16) | ((size_t)r->buf[1] << 8) | r->buf[2];
            assert_true(len <= sizeof f->payload);
            if (r->len >= 9 + len) {
                f->len = len;
                f->type = r->buf[3];
                f->flags = r->buf[4];
                f->sid = ((uint32_t)(r->buf[5] & 0x7f) << 24) | ((uint32_t)r->buf[6] << 16) |
                         ((uint32_t)r->buf[7] << 8) | r->buf[8];
                memcpy(f->payload, r->buf + 9, len);
                memmove(r->buf, r->buf + 9 + len, r->len - 9 - len);
                r->len -= 9 + len;
                return RD_FRAME;
            }
        }
        int64_t left = until - now_ms();
        if (left <= 0) return RD_TIMEOUT;
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) continue;
        ssize_t k = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
        if (k <= 0) return RD_EOF;
        r->len += (size_t)k;
    }
}

/* Reads (ACKing the server's PINGs if ack) until the server closes or `until`. Returns the
 * close time, or -1 if still open; counts the server's PINGs; a GOAWAY's code and debug data
 * go to goaway_code / goaway_debug when given. */
static int64_t read_until_closed(reader *r, int64_t until, bool ack, int *pings, int *goaway_code,
                                 char *goaway_debug, size_t debug_cap) {
    frame *f = malloc(sizeof *f);
    int64_t closed = -1;
    for (;;) {
        int rv = rd_next(r, f, until);
        if (rv == RD_TIMEOUT) break;
        if (rv == RD_EOF) {
            closed = now_ms();
            break;
        }
        if (f->type == NGHTTP2_PING && !(f->flags & NGHTTP2_FLAG_ACK)) {
            if (pings) ++*pings;
            if (ack) raw_frame(r->fd, NGHTTP2_PING, NGHTTP2_FLAG_ACK, 0, f->payload, 8);
        }
        if (f->type == NGHTTP2_GOAWAY && f->len >= 8) {
            if (goaway_code)
                *goaway_code =
                    (int)(((uint32_t)f->payload[4] << 24) | ((uint32_t)f->payload[5] << 16) |
                          ((uint32_t)f->payload[6] << 8) | f->payload[7]);
            if (goaway_debug)
                snprintf(goaway_debug, debug_cap, "%.*s", (int)(f->len - 8), f->payload + 8);
        }
    }
    free(f);
    return closed;
}

/* Discards bytes until the server closes (returns the time) or `until` (returns -1). */
static int64_t raw_until_closed(reader *r, int64_t until) {
    for (;;) {
        int64_t left = until - now_ms();
        if (left <= 0) return -1;
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) continue;
        if (recv(r->fd, r->buf, sizeof r->buf, 0) <= 0) return now_ms();
    }
}

static reader *reader_new(int fd) {
    reader *r = calloc(1, sizeof *r);
    r->fd = fd;
    return r;
}

static void reader_free(reader *r) {
    close(r->fd);
    free(r);
}

/* HPACK "literal without indexing, new name", no Huffman. */
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

/* HEADERS of a gRPC request on stream sid (END_STREAM not set). */
static void send_request_headers(int fd, uint32_t sid, const char *path) {
    uint8_t hb[512];
    size_t o = 0;
    o += hp_lit(hb + o, ":method", "POST");
    o += hp_lit(hb + o, ":scheme", "http");
    o += hp_lit(hb + o, ":path", path);
    o += hp_lit(hb + o, ":authority", "localhost");
    o += hp_lit(hb + o, "content-type", "application/grpc");
    o += hp_lit(hb + o, "te", "trailers");
    raw_frame(fd, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, sid, hb, o);
}

/* A unary echo request of "x" on stream sid. */
static void send_unary(int fd, uint32_t sid) {
    send_request_headers(fd, sid, "/test.Echo/Unary");
    const uint8_t msg[6] = {0, 0, 0, 0, 1, 'x'};
    raw_frame(fd, NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, sid, msg, sizeof msg);
}

static void send_ping(int fd, int i) {
    uint8_t data[8] = {'c', 'l', 'i', 'e', 'n', 't', '0', (uint8_t)('0' + i % 10)};
    raw_frame(fd, NGHTTP2_PING, 0, 0, data, 8);
}

/* Reads frames until `until`; true if the connection is still open (no GOAWAY, no EOF). */
static bool still_open(reader *r, int64_t until) {
    int code = -1;
    int64_t closed = read_until_closed(r, until, true, NULL, &code, NULL, 0);
    return closed < 0 && code < 0;
}

/* ---------------------------------------------------------------- handshake deadline */

static void test_handshake_timeout(void **state) {
    (void)state;
    enum { HS_MS = 300 };
    grpc_server_opts o = {.handshake_timeout_ms = HS_MS, .on_http1 = srv_on_http1};
    srv_thread *t = srv_start(&o);
    int64_t t0 = now_ms();
    /* read in this order: the ones closed first come first (a close is seen when read) */
    enum { H1_LINE, SILENT, MAGIC, HALF_SETTINGS, H1_PARTIAL, HELLO, N };
    static const char *const names[N] = {"GET line",     "silent",
                                         "preface only", "SETTINGS header only",
                                         "GET /me",      "preface + SETTINGS"};
    reader *r[N];
    for (int i = 0; i < N; i++)
        r[i] = reader_new(raw_connect(t->port, 0));
    raw_send(r[MAGIC]->fd, PREFACE, 24);
    raw_send(r[HALF_SETTINGS]->fd, PREFACE, 24);
    uint8_t hdr[9] = {0, 0, 6, NGHTTP2_SETTINGS, 0, 0, 0, 0, 0}; /* 6 payload bytes never sent */
    raw_send(r[HALF_SETTINGS]->fd, hdr, 9);
    raw_send(r[H1_PARTIAL]->fd, "GET /me", 7);
    raw_send(r[HELLO]->fd, PREFACE, 24);
    raw_frame(r[HELLO]->fd, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
    raw_send(r[H1_LINE]->fd, "GET / HTTP/1.1\r\n", 16);
    for (int i = 0; i < N; i++) {
        int64_t until = t0 + HS_MS + SLACK_MS;
        int64_t closed = i == H1_LINE || i == H1_PARTIAL
                             ? raw_until_closed(r[i], until)
                             : read_until_closed(r[i], until, true, NULL, NULL, NULL, 0);
        if (closed < 0)
            print_message("  %-22s still open after %d ms\n", names[i], HS_MS + SLACK_MS);
        else
            print_message("  %-22s closed after %lld ms\n", names[i], (long long)(closed - t0));
        if (i == HELLO) {
            assert_true(closed < 0); /* completed the handshake: no deadline any more */
        } else if (i == H1_LINE) {
            assert_true(closed >= 0); /* handed over at once; our on_http1 answers and closes */
            assert_true(closed - t0 < HS_MS);
        } else {
            assert_true(closed >= 0);
            assert_true(closed - t0 >= HS_MS - 20); /* uv_now granularity */
        }
    }
    stats_req s = srv_stats(t);
    assert_int_equal(s.ka.handshake_timeouts, 4);
    assert_int_equal(s.http1_calls, 1);
    assert_int_equal(s.ka.pings_sent, 0);
    for (int i = 0; i < N; i++)
        reader_free(r[i]);
    srv_stop(t);
}

/* ---------------------------------------------------------------- keepalive */

static void test_keepalive_acked_survives(void **state) {
    (void)state;
    enum { IV_MS = 150, TO_MS = 150, RUN_MS = 1200 };
    grpc_server_opts o = {.keepalive_interval_ms = IV_MS, .keepalive_timeout_ms = TO_MS};
    srv_thread *t = srv_start(&o);
    reader *r = reader_new(h2_open(t->port));
    int pings = 0;
    int64_t closed = read_until_closed(r, now_ms() + RUN_MS, true, &pings, NULL, NULL, 0);
    print_message("  ACKing client: %d PINGs in %d ms, %s\n", pings, RUN_MS,
                  closed < 0 ? "still open" : "closed");
    assert_true(closed < 0);
    assert_true(pings >= 3); /* one per interval + round trip: ~7 */
    stats_req s = srv_stats(t);
    assert_int_equal(s.ka.keepalive_timeouts, 0);
    assert_true(s.ka.pings_sent >= 3);
    reader_free(r);
    srv_stop(t);
}

static void test_keepalive_silent_closed(void **state) {
    (void)state;
    enum { IV_MS = 150, TO_MS = 150 };
    grpc_server_opts o = {.keepalive_interval_ms = IV_MS, .keepalive_timeout_ms = TO_MS};
    srv_thread *t = srv_start(&o);
    int64_t t0 = now_ms();
    reader *r = reader_new(h2_open(t->port));
    int pings = 0;
    int64_t closed =
        read_until_closed(r, t0 + IV_MS + TO_MS + SLACK_MS, false, &pings, NULL, NULL, 0);
    print_message("  silent client: %d PING(s), closed after %lld ms\n", pings,
                  closed < 0 ? -1LL : (long long)(closed - t0));
    assert_true(closed >= 0);
    assert_true(closed - t0 >= IV_MS + TO_MS - 20);
    assert_int_equal(pings, 1);
    stats_req s = srv_stats(t);
    assert_int_equal(s.ka.keepalive_timeouts, 1);
    assert_int_equal(s.ka.pings_sent, 1);
    reader_free(r);
    srv_stop(t);
}

/* ---------------------------------------------------------------- our client */

typedef struct cli_state {
    int calls_ok, calls_failed, disconnects;
    bool done;
} cli_state;

static void on_disconnect(void *ud, grpc_client *c, int status, const char *message) {
    (void)c;
    (void)status;
    (void)message;
    ((cli_state *)ud)->disconnects++;
}

static void on_reply(void *ud, int status, const char *m, const uint8_t *resp, size_t n) {
    (void)m;
    (void)resp;
    (void)n;
    cli_state *s = ud;
    s->done = true;
    if (status == GRPC_STATUS_OK)
        s->calls_ok++;
    else
        s->calls_failed++;
}

static void on_wake(uv_timer_t *t) {
    (void)t;
}

/* Runs the client loop for ms milliseconds, issuing back-to-back calls if busy. */
static void client_run(uv_loop_t *loop, grpc_client *c, cli_state *s, int ms, bool busy) {
    uv_update_time(loop);
    uint64_t end = uv_now(loop) + (uint64_t)ms;
    s->done = true;
    while (uv_now(loop) < end) {
        if (busy && s->done) {
            s->done = false;
            assert_int_equal(grpc_client_unary(c, "/test.Echo/Unary", "x", 1, 2000, on_reply, s),
                             0);
        }
        uv_run(loop, UV_RUN_ONCE);
    }
    while (!s->done) /* the last call */
        uv_run(loop, UV_RUN_ONCE);
}

static void test_our_client_never_closed(void **state) {
    (void)state;
    /* PINGed after 100 ms of silence, closed 100 ms later without an answer */
    grpc_server_opts o = {
        .keepalive_interval_ms = 100, .keepalive_timeout_ms = 100, .keepalive_min_time_ms = 1000};
    srv_thread *t = srv_start(&o);
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t wake;
    uv_timer_init(&loop, &wake);
    uv_timer_start(&wake, on_wake, 5, 5);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", t->port);
    cli_state s = {0};
    grpc_client_opts co = {.on_disconnect = on_disconnect, .ud = &s};
    grpc_client *c = grpc_client_new(&loop, target, &co);
    client_run(&loop, c, &s, 800, true);  /* busy */
    client_run(&loop, c, &s, 800, false); /* idle: nghttp2 ACKs the server's PINGs */
    client_run(&loop, c, &s, 300, true);  /* busy again on the same connection */
    print_message("  our client: %d calls OK, %d failed, %d disconnects\n", s.calls_ok,
                  s.calls_failed, s.disconnects);
    assert_true(s.calls_ok >= 10);
    assert_int_equal(s.calls_failed, 0);
    assert_int_equal(s.disconnects, 0);
    assert_true(grpc_client_is_connected(c));
    stats_req st = srv_stats(t);
    assert_true(st.ka.pings_sent >= 3); /* ~7 during the idle phase */
    assert_int_equal(st.ka.keepalive_timeouts, 0);
    assert_int_equal(st.ka.too_many_pings, 0);
    uv_close((uv_handle_t *)&wake, NULL);
    grpc_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    srv_stop(t);
}

/* ---------------------------------------------------------------- client PING policy */

static void expect_calm(reader *r) {
    int code = -1;
    char debug[64] = "";
    int64_t closed =
        read_until_closed(r, now_ms() + SLACK_MS, true, NULL, &code, debug, sizeof debug);
    print_message("  GOAWAY code %d \"%s\", %s\n", code, debug, closed < 0 ? "open" : "closed");
    assert_int_equal(code, NGHTTP2_ENHANCE_YOUR_CALM);
    assert_string_equal(debug, "too_many_pings");
    assert_true(closed >= 0);
}

static void test_too_many_pings(void **state) {
    (void)state;
    enum { MIN_MS = 200 };
    grpc_server_opts o = {.keepalive_min_time_ms = MIN_MS};
    srv_thread *t = srv_start(&o);

    /* no stream open: grpc-go allows one PING per 2 h; the 4th (3rd strike) ends it */
    reader *r = reader_new(h2_open(t->port));
    for (int i = 0; i < 4; i++)
        send_ping(r->fd, i);
    expect_calm(r);
    reader_free(r);

    /* a stream open: PINGs spaced by more than min_time are fine, faster ones are not */
    r = reader_new(h2_open(t->port));
    send_request_headers(r->fd, 1, "/test.Stream/Hold");
    for (int i = 0; i < 4; i++) {
        send_ping(r->fd, i);
        assert_true(still_open(r, now_ms() + MIN_MS + 60));
    }
    for (int i = 0; i < 4; i++)
        send_ping(r->fd, i);
    expect_calm(r);
    reader_free(r);

    /* PINGs right after the server's DATA (grpc-go's BDP pings) never count */
    r = reader_new(h2_open(t->port));
    for (uint32_t i = 0; i < 8; i++) {
        send_unary(r->fd, 2 * i + 1);
        frame *f = malloc(sizeof *f);
        bool data = false;
        while (!data && rd_next(r, f, now_ms() + SLACK_MS) == RD_FRAME)
            data = f->type == NGHTTP2_DATA;
        free(f);
        assert_true(data);
        send_ping(r->fd, (int)i);
    }
    assert_true(still_open(r, now_ms() + 100));
    reader_free(r);

    stats_req s = srv_stats(t);
    assert_int_equal(s.ka.too_many_pings, 2);
    srv_stop(t);
}

/* GRPC_OPT_NEVER turns each rule off. */
static void test_rules_off(void **state) {
    (void)state;
    grpc_server_opts o = {.handshake_timeout_ms = GRPC_OPT_NEVER,
                          .keepalive_interval_ms = GRPC_OPT_NEVER,
                          .keepalive_min_time_ms = GRPC_OPT_NEVER};
    srv_thread *t = srv_start(&o);
    reader *silent = reader_new(raw_connect(t->port, 0));
    reader *r = reader_new(h2_open(t->port));
    for (int i = 0; i < 8; i++)
        send_ping(r->fd, i);
    int pings = 0;
    assert_true(read_until_closed(r, now_ms() + 300, false, &pings, NULL, NULL, 0) < 0);
    assert_int_equal(pings, 0);
    assert_true(read_until_closed(silent, now_ms() + 10, false, NULL, NULL, NULL, 0) < 0);
    stats_req s = srv_stats(t);
    assert_int_equal(s.ka.handshake_timeouts + s.ka.pings_sent + s.ka.too_many_pings, 0);
    reader_free(silent);
    reader_free(r);
    srv_stop(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_keepalive_acked_survives),
        cmocka_unit_test(test_keepalive_silent_closed),
        cmocka_unit_test(test_our_client_never_closed),
        cmocka_unit_test(test_too_many_pings),
        cmocka_unit_test(test_rules_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
