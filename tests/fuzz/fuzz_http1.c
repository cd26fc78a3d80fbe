/* fuzz_http1.c — libFuzzer target for the HTTP/1 side of `kvstore serve`
 * (kvstore/server/http1.c): request parsing, routing (/metrics, /health, /version, a custom
 * route), keep-alive and pipelining, header limits, back-pressure and connection teardown.
 *
 * http1.c has no socket-free entry point: kvs_http1_adopt takes an accepted TCP handle and the
 * bytes already read by the gRPC server's sniffer. So each input goes over loopback TCP on one
 * libuv loop: the harness's listener accepts, hands the handle over with the first k bytes of
 * the input as `initial` (k = first input byte % 64, as the sniffer would have read them), the
 * client writes the rest, half-closes, and reads the answers until the server closes. A guard
 * timer bounds each input. Small limits (header bytes, high-water, idle timeout) put the error
 * and back-pressure paths in reach. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fuzz_common.h"
#include "http1.h"
#include "metrics.h"

#define GUARD_MS  500
#define INPUT_MAX (64 * 1024)

static uv_loop_t g_loop;
static uv_tcp_t g_listener;
static struct sockaddr_in g_addr;
static kvs_http1 *g_h1;
static kvs_registry *g_reg;
static unsigned g_health;

typedef struct client {
    fuzz_client net; /* writes the rest of the input */
    const uint8_t *initial;
    size_t n_initial;
    bool adopted;
    char rbuf[16 * 1024]; /* small: a large /metrics answer takes several reads */
} client;

static client *g_cur; /* the input's client, for the listener's accept */

static int health(void *ud) {
    (void)ud;
    return ++g_health % 3 != 0;
}

static int debug_route(void *ud, kvs_http1_response *out) {
    (void)ud;
    out->status = 200;
    out->content_type = "text/plain";
    out->body = strdup("debug\n");
    out->body_len = out->body ? 6 : 0;
    return out->body ? 0 : -1;
}

static int failing_route(void *ud, kvs_http1_response *out) {
    (void)ud;
    (void)out;
    return -1;
}

static void on_accept(uv_stream_t *ls, int status) {
    (void)ls;
    if (status < 0) return;
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (!tcp) abort();
    uv_tcp_init(&g_loop, tcp);
    if (uv_accept((uv_stream_t *)&g_listener, (uv_stream_t *)tcp) != 0) abort();
    client *c = g_cur;
    c->adopted = true;
    kvs_http1_adopt(g_h1, tcp, (const char *)c->initial, c->n_initial);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (uv_loop_init(&g_loop) != 0) abort();
    g_reg = kvs_registry_new();
    if (!g_reg) abort();
    static const char *const labels[] = {"method", NULL};
    kvs_family *f = kvs_registry_counter(g_reg, "fuzz_requests_total", "Requests.", labels);
    static const char *const v1[] = {"GET"}, *const v2[] = {"we\"ird\\\n"};
    kvs_counter_add(kvs_family_series(f, v1), 3);
    kvs_counter_add(kvs_family_series(f, v2), 1);
    kvs_histogram_observe(kvs_family_only(kvs_registry_family(g_reg, "fuzz_seconds", "Latency.",
                                                              KVS_HISTOGRAM, NULL, NULL, 0)),
                          0.01);
    static const kvs_http1_route routes[] = {{.path = "/debug/x", .handler = debug_route},
                                             {.path = "/debug/fail", .handler = failing_route}};
    kvs_http1_opts o = {.metrics = g_reg,
                        .health = health,
                        .routes = routes,
                        .n_routes = 2,
                        .max_header_bytes = 512,
                        .high_water = 2048,
                        .idle_timeout_ms = 200,
                        .max_connections = 4};
    g_h1 = kvs_http1_new(&g_loop, &o);
    if (!g_h1) abort();
    uv_tcp_init(&g_loop, &g_listener);
    uv_ip4_addr("127.0.0.1", 0, &g_addr);
    if (uv_tcp_bind(&g_listener, (const struct sockaddr *)&g_addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&g_listener, 16, on_accept) != 0) {
        fprintf(stderr, "fuzz_http1: cannot listen on 127.0.0.1\n");
        abort();
    }
    int len = sizeof g_addr;
    uv_tcp_getsockname(&g_listener, (struct sockaddr *)&g_addr, &len);
    return 0;
}

static bool server_quiet(void) {
    kvs_http1_stats st;
    kvs_http1_get_stats(g_h1, &st);
    return st.conns_open == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > INPUT_MAX) return 0;
    client *c = calloc(1, sizeof *c);
    if (!c) abort();
    size_t k = size ? data[0] % 64 : 0;
    if (size) data++, size--;
    if (k > size) k = size;
    c->initial = data;
    c->n_initial = k;
    c->net.out[0] = uv_buf_init((char *)data + k, (unsigned)(size - k));
    c->net.n_out = 1;
    c->net.rbuf = c->rbuf;
    c->net.rbuf_len = sizeof c->rbuf;
    g_cur = c;
    fuzz_client_start(&c->net, &g_loop, &g_addr, GUARD_MS);
    while (!c->net.closed || (c->adopted && !server_quiet()))
        uv_run(&g_loop, UV_RUN_ONCE);
    fuzz_client_finish(&c->net, &g_loop);
    g_cur = NULL;
    free(c);
    return 0;
}
