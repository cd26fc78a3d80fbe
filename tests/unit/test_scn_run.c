/* test_scn_run.c — the scenario runner's pieces that need no server binary: the HTTP/1.0 GET
 * client (Content-Length, chunked and close-delimited bodies, a refused connection, a
 * timeout, cancellation) against a tiny in-process libuv server, and the server piece in
 * ENDPOINTS mode (ready once GET /health answers, failure when nothing listens).
 *
 * Key decision: the fake server answers from a fixed table keyed by the request path, so each
 * test states the exact bytes on the wire; everything runs on one loop, bounded by a timer. */
#include "scn_run.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- a fake HTTP server ---- */

typedef struct fake_srv {
    uv_tcp_t listener;
    int port;
    int accepted;
} fake_srv;

typedef struct fake_conn {
    uv_tcp_t tcp;
    char req[2048];
    size_t len;
    bool answered;
    uv_write_t wr;
    char *resp;
} fake_conn;

static const char *response_for(const char *path) {
    if (!strcmp(path, "/cl"))
        return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello";
    if (!strcmp(path, "/chunked"))
        return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               "4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n";
    if (!strcmp(path, "/eof")) return "HTTP/1.0 200 OK\r\n\r\nuntil the end";
    if (!strcmp(path, "/health")) return "HTTP/1.0 200 OK\r\n\r\n{\"health\":\"true\"}";
    if (!strcmp(path, "/missing")) return "HTTP/1.0 404 Not Found\r\n\r\nno";
    return NULL; /* "/slow": never answers */
}

static void conn_closed(uv_handle_t *h) {
    fake_conn *c = h->data;
    free(c->resp);
    free(c);
}

static void conn_written(uv_write_t *w, int status) {
    (void)status;
    fake_conn *c = w->data;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
    fake_conn *c = h->data;
    (void)hint;
    *b = uv_buf_init(c->req + c->len, (unsigned)(sizeof c->req - 1 - c->len));
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    fake_conn *c = s->data;
    (void)b;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, conn_closed);
        return;
    }
    c->len += (size_t)n;
    c->req[c->len] = 0;
    if (c->answered || !strstr(c->req, "\r\n\r\n")) return;
    c->answered = true;
    char path[256] = "";
    sscanf(c->req, "GET %255s", path);
    const char *r = response_for(path);
    if (!r) return;
    c->resp = strdup(r);
    uv_buf_t out = uv_buf_init(c->resp, (unsigned)strlen(c->resp));
    c->wr.data = c;
    uv_write(&c->wr, s, &out, 1, conn_written);
}

static void on_conn(uv_stream_t *l, int status) {
    fake_srv *f = l->data;
    if (status < 0) return;
    fake_conn *c = calloc(1, sizeof *c);
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) == 0) {
        f->accepted++;
        uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
    } else {
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
    }
}

static void fake_start(uv_loop_t *loop, fake_srv *f) {
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &f->listener);
    f->listener.data = f;
    assert_int_equal(uv_tcp_bind(&f->listener, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->listener, 16, on_conn), 0);
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(&f->listener, (struct sockaddr *)&got, &len);
    f->port = ntohs(got.sin_port);
}

/* A port with nothing listening: bind, read the port, close. */
static int dead_port(uv_loop_t *loop) {
    fake_srv f = {0};
    fake_start(loop, &f);
    uv_close((uv_handle_t *)&f.listener, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return f.port;
}

static void close_all(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void loop_finish(uv_loop_t *loop) {
    uv_walk(loop, close_all, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- HTTP GET ---- */

typedef struct got {
    int calls;
    int status;
    char body[256];
    size_t len;
    char err[128];
    fake_srv *stop; /* close this listener once answered */
} got;

static void on_got(void *ud, int status, const char *body, size_t len, const char *err) {
    got *g = ud;
    g->calls++;
    g->status = status;
    g->len = len;
    snprintf(g->body, sizeof g->body, "%s", body);
    snprintf(g->err, sizeof g->err, "%s", err);
    if (g->stop && !uv_is_closing((uv_handle_t *)&g->stop->listener))
        uv_close((uv_handle_t *)&g->stop->listener, NULL);
}

static void get_one(const char *path, uint32_t timeout_ms, got *g) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake_srv f = {0};
    fake_start(&loop, &f);
    char hp[64];
    snprintf(hp, sizeof hp, "127.0.0.1:%d", f.port);
    memset(g, 0, sizeof *g);
    g->stop = &f;
    assert_non_null(scn_http_get(&loop, hp, path, timeout_ms, on_got, g));
    assert_int_equal(g->calls, 0); /* never inside the call */
    uv_run(&loop, UV_RUN_DEFAULT);
    loop_finish(&loop);
    assert_int_equal(g->calls, 1);
}

static void test_http_content_length(void **st) {
    (void)st;
    got g;
    get_one("/cl", 2000, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "hello");
    assert_int_equal(g.len, 5);
}

static void test_http_chunked(void **st) {
    (void)st;
    got g;
    get_one("/chunked", 2000, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "wikipedia");
    assert_int_equal(g.len, 9);
}

static void test_http_eof_and_status(void **st) {
    (void)st;
    got g;
    get_one("/eof", 2000, &g);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "until the end");
    get_one("/missing", 2000, &g);
    assert_int_equal(g.status, 404);
}

static void test_http_timeout(void **st) {
    (void)st;
    got g;
    get_one("/slow", 150, &g);
    assert_int_equal(g.status, 0);
    assert_non_null(strstr(g.err, "timed out"));
}

static void test_http_refused_and_bad_address(void **st) {
    (void)st;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char hp[64];
    snprintf(hp, sizeof hp, "localhost:%d", dead_port(&loop));
    got g = {0};
    assert_non_null(scn_http_get(&loop, hp, "/x", 2000, on_got, &g));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_non_null(strstr(g.err, "connect"));
    assert_null(scn_http_get(&loop, "no-port", "/x", 100, on_got, &g));
    assert_null(scn_http_get(&loop, "example.com:80", "/x", 100, on_got, &g));
    loop_finish(&loop);
}

static void test_http_cancel(void **st) {
    (void)st;
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake_srv f = {0};
    fake_start(&loop, &f);
    char hp[64];
    snprintf(hp, sizeof hp, "http://127.0.0.1:%d", f.port);
    got g = {0};
    scn_http_req *r = scn_http_get(&loop, hp, "/cl", 2000, on_got, &g);
    assert_non_null(r);
    scn_http_cancel(r);
    uv_close((uv_handle_t *)&f.listener, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 0);
    loop_finish(&loop);
}

/* ---- the server piece, ENDPOINTS mode ---- */

typedef struct ready {
    int calls, status;
    char msg[512];
    scn_srv *v;
    bool stopped;
} ready;

static void on_stopped(void *ud) {
    ((ready *)ud)->stopped = true;
}

static void on_ready(void *ud, int status, const char *msg) {
    ready *r = ud;
    r->calls++;
    r->status = status;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
    scn_srv_stop(r->v, on_stopped, r);
}

static void test_srv_endpoints(void **st) {
    (void)st;
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake_srv f = {0};
    fake_start(&loop, &f);
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", f.port);
    const char *eps[] = {ep};
    scn_srv_opts o = {.kind = SCN_SERVER_ENDPOINTS, .endpoints = eps, .n_endpoints = 1};
    char err[256];
    scn_srv *v = scn_srv_new(&loop, &o, err, sizeof err);
    assert_non_null(v);
    assert_false(scn_srv_is_child(v));
    assert_string_equal(scn_srv_endpoint(v, 0), ep);
    assert_string_equal(scn_srv_metrics(v), ep);
    assert_true(scn_srv_cpu_seconds(v) != scn_srv_cpu_seconds(v)); /* NaN: no child */
    ready r = {.v = v};
    assert_int_equal(scn_srv_start(v, 3000, on_ready, &r), 0);
    assert_int_equal(scn_srv_restart(v, 0, 1000, on_ready, &r), -1); /* not ours */
    while (!r.stopped)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    scn_srv_free(v);
    loop_finish(&loop);
}

static void test_srv_endpoints_down(void **st) {
    (void)st;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", dead_port(&loop));
    const char *eps[] = {ep};
    scn_srv_opts o = {.kind = SCN_SERVER_ENDPOINTS, .endpoints = eps, .n_endpoints = 1};
    char err[256];
    scn_srv *v = scn_srv_new(&loop, &o, err, sizeof err);
    assert_non_null(v);
    ready r = {.v = v};
    assert_int_equal(scn_srv_start(v, 400, on_ready, &r), 0);
    while (!r.stopped)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, -1);
    assert_non_null(strstr(r.msg, "/health"));
    scn_srv_free(v);
    loop_finish(&loop);
}

static void test_srv_bad_options(void **st) {
    (void)st;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    scn_srv_opts o = {.kind = SCN_SERVER_ENDPOINTS};
    assert_null(scn_srv_new(&loop, &o, err, sizeof err));
    assert_non_null(strstr(err, "endpoint"));
    scn_srv_opts e = {.kind = SCN_SERVER_EMBEDDED, .bin = "/nonexistent/kvstore"};
    assert_null(scn_srv_new(&loop, &e, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/kvstore"));
    scn_srv_opts n = {.kind = SCN_SERVER_EMBEDDED};
    assert_null(scn_srv_new(&loop, &n, err, sizeof err));
    assert_non_null(strstr(err, "--kvstore-bin"));
    loop_finish(&loop);
}

/* A child that is not a server: the start fails with the log's tail, the dir is removed. */
static void test_srv_child_fails(void **st) {
    (void)st;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    scn_srv_opts o = {.kind = SCN_SERVER_EMBEDDED, .bin = "/bin/false"};
    scn_srv *v = scn_srv_new(&loop, &o, err, sizeof err);
    assert_non_null(v);
    char dir[600];
    snprintf(dir, sizeof dir, "%s", scn_srv_dir(v));
    ready r = {.v = v};
    assert_int_equal(scn_srv_start(v, 3000, on_ready, &r), 0);
    while (!r.stopped)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(r.status, -1);
    assert_non_null(strstr(r.msg, "exited with status 1"));
    scn_srv_free(v);
    loop_finish(&loop);
    FILE *f = fopen(dir, "r");
    assert_null(f); /* removed */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_content_length),
        cmocka_unit_test(test_http_chunked),
        cmocka_unit_test(test_http_eof_and_status),
        cmocka_unit_test(test_http_timeout),
        cmocka_unit_test(test_http_refused_and_bad_address),
        cmocka_unit_test(test_http_cancel),
        cmocka_unit_test(test_srv_endpoints),
        cmocka_unit_test(test_srv_endpoints_down),
        cmocka_unit_test(test_srv_bad_options),
        cmocka_unit_test(test_srv_child_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
