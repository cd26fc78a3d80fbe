/* fuzz_grpc_server.c — libFuzzer target for the gRPC server (proto/): the input is what a client
 * sends on one HTTP/2 connection after the preface (frames, HPACK, gRPC message framing).
 *
 * The server only takes connections from its listener (there is no socket-free entry point in
 * proto/), so each input goes over loopback TCP on one libuv loop: connect, write the client
 * preface followed by the input, half-close, read and drop whatever the server answers until it
 * closes, then complete every call handle still held. A guard timer bounds each input. The
 * server (made once per process) has a few test methods covering the call API: unary echo,
 * unary failure with a status message built from the request, a unary call completed only
 * after the connection is gone (detached handles), a large reply framed with send_begin +
 * chunks, and a bidi stream that echoes each message and finishes on half-close. Small limits
 * (max message size, windows, water marks) put the error and back-pressure paths in reach.
 * Before the connection, the same bytes go in-process through the gRPC message de-framer (whole,
 * then in small pieces: the messages and the outcome must be the same) and through the
 * grpc-message percent-encoding (decode(encode(s)) == s) and grpc-timeout parsers. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fuzz_common.h"
#include "grpc.h"
#include "grpc_internal.h"

#define GUARD_MS  500
#define MAX_LATER 64
#define INPUT_MAX (64 * 1024)

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static uv_loop_t g_loop;
static grpc_server *g_srv;
static struct sockaddr_in g_addr;
static grpc_call *g_later[MAX_LATER]; /* calls completed after the connection ended */
static size_t g_n_later;

/* ---- test methods ---- */

static void m_echo(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    (void)grpc_call_metadata(call, "x-test");
    (void)grpc_call_deadline(call);
    grpc_call_reply(call, msg, len);
}

static void m_fail(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    /* The message carries arbitrary bytes: they must be percent-encoded in grpc-message. */
    char text[64];
    size_t n = len < sizeof text - 1 ? len : sizeof text - 1;
    memcpy(text, msg, n);
    text[n] = 0;
    grpc_call_fail(call, len ? 1 + msg[0] % 16 : GRPC_STATUS_INTERNAL, text);
}

static void m_later(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)msg;
    (void)len;
    (void)ud;
    if (g_n_later < MAX_LATER)
        g_later[g_n_later++] = call;
    else
        grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many");
}

static void m_big(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    /* A reply of (first byte * 1 KiB) bytes in chunks: more than the water marks. */
    size_t total = len ? (size_t)msg[0] * 1024 : 0;
    static uint8_t fill[1024];
    if (grpc_call_send_begin(call, total) < 0) {
        grpc_call_finish(call, GRPC_STATUS_OK, NULL);
        return;
    }
    for (size_t done = 0; done < total; done += sizeof fill)
        if (grpc_call_send_chunk(call, fill, sizeof fill) < 0) break;
    grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static void b_open(grpc_stream *s, void *ud) {
    (void)s;
    (void)ud;
}

static void b_message(grpc_stream *s, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    if (len && msg[0] == 'F') { /* the server ends the stream early */
        grpc_stream_finish(s, GRPC_STATUS_ABORTED, "finished by the server");
        return;
    }
    grpc_stream_send(s, msg, len);
    grpc_stream_send(s, msg, len);
}

static void b_half_close(grpc_stream *s, void *ud) {
    (void)ud;
    grpc_stream_finish(s, GRPC_STATUS_OK, NULL);
}

static void on_cancel(grpc_call *call, void *ud) {
    (void)ud;
    for (size_t i = 0; i < g_n_later; i++)
        if (g_later[i] == call) return; /* completed at the end of the input */
    grpc_call_finish(call, GRPC_STATUS_CANCELLED, NULL);
}

static void on_writable(grpc_call *call, void *ud) {
    (void)call;
    (void)ud;
}

static const grpc_method g_methods[] = {
    {.path = "/test.Echo/Unary", .kind = GRPC_UNARY, .on_unary = m_echo, .on_cancel = on_cancel},
    {.path = "/test.Echo/Fail", .kind = GRPC_UNARY, .on_unary = m_fail, .on_cancel = on_cancel},
    {.path = "/test.Echo/Later", .kind = GRPC_UNARY, .on_unary = m_later, .on_cancel = on_cancel},
    {.path = "/test.Echo/Big",
     .kind = GRPC_UNARY,
     .on_unary = m_big,
     .on_cancel = on_cancel,
     .on_writable = on_writable},
    {.path = "/test.Echo/Bidi",
     .kind = GRPC_BIDI_STREAM,
     .on_open = b_open,
     .on_message = b_message,
     .on_half_close = b_half_close,
     .on_cancel = on_cancel,
     .on_writable = on_writable},
};

/* ---- in-process: de-framer and header value codecs ---- */

typedef struct msgs {
    uint64_t hash; /* FNV-1a over every message's length and bytes, in order */
    size_t n;
} msgs;

static void fnv(uint64_t *h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ p[i]) * 0x100000001b3ULL;
}

static int collect(void *ud, const uint8_t *m, size_t len) {
    msgs *a = ud;
    uint8_t l[8];
    memcpy(l, &len, sizeof l < sizeof len ? sizeof l : sizeof len);
    fnv(&a->hash, l, sizeof l);
    fnv(&a->hash, m, len);
    a->n++;
    return 0;
}

static void framing_check(const uint8_t *data, size_t size) {
    size_t too_large = 0;
    gdeframer d1 = {.max = 4096};
    msgs a = {0xcbf29ce484222325ULL, 0};
    int r1 = gdeframer_feed(&d1, data, size, collect, &a, &too_large);
    bool p1 = gdeframer_partial(&d1);
    gdeframer_free(&d1);

    gdeframer d2 = {.max = 4096};
    msgs b = {0xcbf29ce484222325ULL, 0};
    int r2 = GDF_OK;
    size_t at = 0, k = 0;
    while (at < size && r2 == GDF_OK) {
        size_t step = 1 + (k++ * 7 + data[at]) % 13;
        if (step > size - at) step = size - at;
        r2 = gdeframer_feed(&d2, data + at, step, collect, &b, &too_large);
        at += step;
    }
    bool p2 = gdeframer_partial(&d2);
    gdeframer_free(&d2);
    if (r1 != r2 || a.hash != b.hash || a.n != b.n || (r1 == GDF_OK && p1 != p2)) abort();
}

static void codec_check(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    char *enc = grpc_pct_encode(s);
    if (enc) {
        char *dec = grpc_pct_decode(enc, strlen(enc));
        if (dec && strcmp(dec, s) != 0) abort();
        free(dec);
        free(enc);
    }
    free(grpc_pct_decode((const char *)data, size));
    int64_t ms = grpc_parse_timeout((const char *)data, size < 16 ? size : 16);
    if (ms >= 0 && ms <= UINT32_MAX) {
        char out[16];
        grpc_format_timeout((uint32_t)ms, out);
        if (grpc_parse_timeout(out, strlen(out)) < 0) abort();
    }
    free(s);
}

/* ---- one client connection per input (fuzz_common.h) ---- */

typedef struct client {
    fuzz_client net;
    char rbuf[64 * 1024];
} client;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (uv_loop_init(&g_loop) != 0) abort();
    grpc_server_opts o = {.max_recv_msg_size = 4096,
                          .max_concurrent_streams = 16,
                          .initial_window_size = 65535,
                          .conn_window_size = 65535,
                          .high_water = 8192,
                          .shutdown_grace_ms = 10};
    g_srv = grpc_server_new(&g_loop, &o, g_methods, sizeof g_methods / sizeof g_methods[0]);
    if (!g_srv || grpc_server_listen(g_srv, "127.0.0.1", 0) != 0) {
        fprintf(stderr, "fuzz_grpc_server: cannot listen on 127.0.0.1\n");
        abort();
    }
    uv_ip4_addr("127.0.0.1", grpc_server_port(g_srv), &g_addr);
    return 0;
}

static bool server_quiet(void) {
    grpc_server_stats st;
    grpc_server_get_stats(g_srv, &st);
    return st.conns_open == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > INPUT_MAX) return 0;
    framing_check(data, size);
    codec_check(data, size);
    client *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->net.out[0] = uv_buf_init((char *)PREFACE, 24);
    c->net.out[1] = uv_buf_init((char *)data, (unsigned)size);
    c->net.n_out = size ? 2 : 1;
    c->net.rbuf = c->rbuf;
    c->net.rbuf_len = sizeof c->rbuf;
    fuzz_client_start(&c->net, &g_loop, &g_addr, GUARD_MS);
    /* Until the client is closed and the server dropped the connection (the guard bounds it:
     * once it fires the client closes, and the server sees the reset). */
    while (!c->net.closed || !server_quiet())
        uv_run(&g_loop, UV_RUN_ONCE);
    for (size_t i = 0; i < g_n_later; i++) {
        if (i % 2)
            grpc_call_reply(g_later[i], "late", 4);
        else
            grpc_call_fail(g_later[i], GRPC_STATUS_UNAVAILABLE, "late");
    }
    g_n_later = 0;
    fuzz_client_finish(&c->net, &g_loop);
    free(c);
    return 0;
}
