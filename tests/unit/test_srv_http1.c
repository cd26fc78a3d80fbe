/* test_srv_http1.c — the HTTP/1.1 side of `kvstore serve` against real sockets.
 *
 * The test plays the gRPC server's part: a libuv listener on 127.0.0.1:0 (loop on its own thread)
 * reads each connection's first bytes (at most `sniff` bytes, like the 24-byte preface check),
 * stops reading and hands the connection to kvs_http1_adopt(). Clients are blocking sockets on
 * the test thread; responses are parsed with http_parser in response mode (and curl, if
 * installed, is run once). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "http1.h"
#include "metrics.h"

/* ---- the server side: listener + sniffing + handover ---- */

typedef struct srv {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t wake;
    uv_thread_t thread;
    uv_sem_t ready, answered;
    kvs_http1 *h;
    kvs_registry *reg;
    kvs_series *ops;
    kvs_http1_opts opts;
    size_t sniff;
    int port;
    atomic_int healthy;
    atomic_int stop, want_stats;
    kvs_http1_stats stats;
    int freed;
} srv;

typedef struct sniffer {
    srv *s;
    char buf[4096];
} sniffer;

static void close_free(uv_handle_t *hd) {
    free(hd->data);
    free(hd);
}

static void sniff_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    sniffer *sn = hd->data;
    *buf = uv_buf_init(sn->buf, (unsigned)sn->s->sniff);
}

static void sniff_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    sniffer *sn = st->data;
    if (nread == 0) return;
    if (nread < 0) {
        uv_close((uv_handle_t *)st, close_free);
        return;
    }
    uv_read_stop(st);
    srv *s = sn->s;
    char first[4096];
    memcpy(first, sn->buf, (size_t)nread);
    free(sn);
    st->data = NULL;
    /* ownership passes even on error (e.g. over max_connections): nothing to clean up here */
    kvs_http1_adopt(s->h, (uv_tcp_t *)st, first, (size_t)nread);
}

static void on_connection(uv_stream_t *l, int status) {
    srv *s = l->data;
    if (status < 0) return;
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    sniffer *sn = calloc(1, sizeof *sn);
    if (!tcp || !sn) abort();
    sn->s = s;
    uv_tcp_init(&s->loop, tcp);
    tcp->data = sn;
    if (uv_accept(l, (uv_stream_t *)tcp) != 0 ||
        uv_read_start((uv_stream_t *)tcp, sniff_alloc, sniff_read) != 0)
        uv_close((uv_handle_t *)tcp, close_free);
}

static void on_freed(void *ud) {
    ((srv *)ud)->freed = 1;
}

static void on_wake(uv_async_t *a) {
    srv *s = a->data;
    if (atomic_exchange(&s->want_stats, 0)) {
        kvs_http1_get_stats(s->h, &s->stats);
        uv_sem_post(&s->answered);
    }
    if (atomic_load(&s->stop)) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        uv_close((uv_handle_t *)&s->wake, NULL);
        kvs_http1_free(s->h, on_freed, s);
    }
}

static int health_fn(void *ud) {
    return atomic_load(&((srv *)ud)->healthy);
}

static void loop_main(void *arg) {
    srv *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

static srv *srv_start(const kvs_http1_opts *extra, size_t sniff) {
    srv *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->sniff = sniff;
    atomic_init(&s->healthy, 1);
    s->reg = kvs_registry_new();
    s->ops = kvs_family_only(
        kvs_registry_counter(s->reg, "relistlab_test_ops_total", "Test ops.", NULL));
    if (extra) s->opts = *extra;
    if (!s->opts.metrics) s->opts.metrics = s->reg;
    s->opts.health = health_fn;
    s->opts.health_ud = s;
    assert_int_equal(uv_loop_init(&s->loop), 0);
    s->h = kvs_http1_new(&s->loop, &s->opts);
    assert_non_null(s->h);
    uv_tcp_init(&s->loop, &s->listener);
    s->listener.data = s;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 128, on_connection), 0);
    struct sockaddr_in bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
    s->port = ntohs(bound.sin_port);
    uv_async_init(&s->loop, &s->wake, on_wake);
    s->wake.data = s;
    uv_sem_init(&s->answered, 0);
    assert_int_equal(uv_thread_create(&s->thread, loop_main, s), 0);
    return s;
}

static kvs_http1_stats srv_stats(srv *s) {
    atomic_store(&s->want_stats, 1);
    uv_async_send(&s->wake);
    uv_sem_wait(&s->answered);
    return s->stats;
}

static void srv_stop(srv *s) {
    atomic_store(&s->stop, 1);
    uv_async_send(&s->wake);
    uv_thread_join(&s->thread);
    assert_true(s->freed); /* every connection closed and the handler freed */
    assert_int_equal(uv_loop_close(&s->loop), 0);
    uv_sem_destroy(&s->answered);
    kvs_registry_free(s->reg);
    free(s);
}

/* Waits (up to 3 s) until no adopted connection is open. */
static kvs_http1_stats wait_idle(srv *s) {
    kvs_http1_stats st = srv_stats(s);
    for (int i = 0; i < 300 && st.conns_open > 0; i++) {
        usleep(10000);
        st = srv_stats(s);
    }
    return st;
}

/* ---- the client side ---- */

static int cli_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void cli_send(int fd, const char *data, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        data += w;
        n -= (size_t)w;
    }
}

static void cli_sends(int fd, const char *s) {
    cli_send(fd, s, strlen(s));
}

typedef struct resp {
    int status;
    char headers[2048]; /* "name: value\n" lines, names lower-cased */
    size_t hlen;
    char *body;
    size_t body_len;
    int done, head_only, keep_alive;
} resp;

/* A client connection with bytes read past the last response. */
typedef struct cli {
    int fd;
    char buf[1 << 16];
    size_t len;
} cli;

static int r_header_field(http_parser *p, const char *at, size_t n) {
    resp *r = p->data;
    for (size_t i = 0; i < n && r->hlen + 4 < sizeof r->headers; i++) {
        char ch = at[i];
        r->headers[r->hlen++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    return 0;
}

static int r_header_value(http_parser *p, const char *at, size_t n) {
    resp *r = p->data;
    if (r->hlen + 2 < sizeof r->headers) {
        r->headers[r->hlen++] = ':';
        r->headers[r->hlen++] = ' ';
    }
    for (size_t i = 0; i < n && r->hlen + 2 < sizeof r->headers; i++)
        r->headers[r->hlen++] = at[i];
    r->headers[r->hlen++] = '\n';
    r->headers[r->hlen] = '\0';
    return 0;
}

static int r_headers_complete(http_parser *p) {
    resp *r = p->data;
    r->status = (int)p->status_code;
    r->keep_alive = http_should_keep_alive(p);
    return r->head_only ? 1 : 0;
}

static int r_body(http_parser *p, const char *at, size_t n) {
    resp *r = p->data;
    r->body = realloc(r->body, r->body_len + n + 1);
    memcpy(r->body + r->body_len, at, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 0;
}

static int r_message_complete(http_parser *p) {
    resp *r = p->data;
    r->done = 1;
    http_parser_pause(p, 1); /* one response at a time */
    return 0;
}

static const http_parser_settings resp_settings = {
    .on_header_field = r_header_field,
    .on_header_value = r_header_value,
    .on_headers_complete = r_headers_complete,
    .on_body = r_body,
    .on_message_complete = r_message_complete,
};

/* Reads one response; returns 0, or -1 on EOF/error before it completed. */
static int read_resp(cli *c, resp *r, int head_only) {
    memset(r, 0, sizeof *r);
    r->head_only = head_only;
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = r;
    for (;;) {
        if (c->len > 0) {
            size_t used = http_parser_execute(&p, &resp_settings, c->buf, c->len);
            memmove(c->buf, c->buf + used, c->len - used);
            c->len -= used;
            if (r->done) {
                if (!r->body) r->body = calloc(1, 1);
                return 0;
            }
            if (HTTP_PARSER_ERRNO(&p) != HPE_OK) return -1;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (n <= 0) return -1;
        c->len += (size_t)n;
    }
}

static void resp_free(resp *r) {
    free(r->body);
    r->body = NULL;
}

static int has_header(const resp *r, const char *line) {
    return strstr(r->headers, line) != NULL;
}

/* True when the server closed the connection (EOF or reset) with nothing more to read. */
static int at_eof(cli *c) {
    if (c->len) return 0;
    char b[256];
    ssize_t n = recv(c->fd, b, sizeof b, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static cli *cli_open(srv *s) {
    cli *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = cli_connect(s->port);
    return c;
}

static void cli_close(cli *c) {
    close(c->fd);
    free(c);
}

/* One GET on a fresh connection. */
static void get_once(srv *s, const char *path, resp *r) {
    cli *c = cli_open(s);
    char req[256];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    cli_sends(c->fd, req);
    assert_int_equal(read_resp(c, r, 0), 0);
    cli_close(c);
}

static uint64_t metric_value(const char *text, const char *name) {
    char key[256];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(text, key);
    assert_non_null(p);
    return strtoull(p + strlen(key), NULL, 10);
}

/* ---- tests ---- */

static void test_health_version_keepalive(void **state) {
    (void)state;
    srv *s = srv_start(NULL, 24);
    cli *c = cli_open(s);
    resp r;
    cli_sends(c->fd, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"health\":\"true\"}");
    assert_true(has_header(&r, "content-type: text/plain; charset=utf-8\n"));
    assert_true(has_header(&r, "content-length: 17\n"));
    assert_true(has_header(&r, "date: "));
    assert_true(r.keep_alive);
    resp_free(&r);
    /* second request on the same connection */
    cli_sends(c->fd, "GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"etcdserver\":\"3.4.23\",\"etcdcluster\":\"3.4.0\"}");
    assert_true(has_header(&r, "content-type: application/json\n"));
    resp_free(&r);
    /* HEAD: same headers, no body */
    cli_sends(c->fd, "HEAD /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 1), 0);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "content-length: 17\n"));
    resp_free(&r);
    cli_sends(c->fd, "GET /health?verbose=1 HTTP/1.1\r\n\r\n"); /* the query is not the path */
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* unhealthy: etcd answers 503 through http.Error */
    atomic_store(&s->healthy, 0);
    cli_sends(c->fd, "GET /health HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "{\"health\":\"false\"}\n");
    resp_free(&r);
    cli_sends(c->fd, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(metric_value(r.body, "etcd_server_health_success"), 3);
    assert_int_equal(metric_value(r.body, "etcd_server_health_failures"), 1);
    resp_free(&r);
    /* HTTP/1.0 without keep-alive: answered, then closed */
    cli_sends(c->fd, "GET /version HTTP/1.0\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "connection: close\n"));
    resp_free(&r);
    assert_true(at_eof(c));
    cli_close(c);
    kvs_http1_stats st = wait_idle(s);
    assert_int_equal(st.conns_open, 0);
    assert_int_equal(st.requests, 7);
    srv_stop(s);
}

static void test_metrics_move(void **state) {
    (void)state;
    srv *s = srv_start(NULL, 24);
    resp r;
    get_once(s, "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "content-type: text/plain; version=0.0.4; charset=utf-8\n"));
    assert_non_null(strstr(r.body, "# TYPE relistlab_test_ops_total counter\n"));
    uint64_t before = metric_value(r.body, "relistlab_test_ops_total");
    resp_free(&r);
    kvs_counter_add(s->ops, 5); /* from this thread, while the loop thread serves */
    get_once(s, "/metrics", &r);
    assert_int_equal(metric_value(r.body, "relistlab_test_ops_total"), before + 5);
    resp_free(&r);
    srv_stop(s);
}

static void test_404_405(void **state) {
    (void)state;
    srv *s = srv_start(NULL, 24);
    cli *c = cli_open(s);
    resp r;
    cli_sends(c->fd, "GET /nope HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "404 page not found\n");
    resp_free(&r);
    cli_sends(c->fd, "GET /metrics/ HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    cli_sends(c->fd, "POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 405);
    assert_true(has_header(&r, "allow: GET, HEAD\n"));
    assert_string_equal(r.body, "Method Not Allowed\n");
    resp_free(&r);
    cli_sends(c->fd, "DELETE /metrics HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 405);
    resp_free(&r);
    /* still usable after 404 / 405 */
    cli_sends(c->fd, "GET /health HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cli_close(c);
    srv_stop(s);
}

static void test_pipelining(void **state) {
    (void)state;
    /* sniff 24 bytes (the rest arrives by normal reads) and 4096 (requests inside `initial`) */
    for (size_t sniff = 24; sniff <= 4096; sniff += 4072) {
        srv *s = srv_start(NULL, sniff);
        cli *c = cli_open(s);
        cli_sends(c->fd, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n"
                         "GET /version HTTP/1.1\r\nHost: a\r\n\r\n"
                         "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"
                         "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                         "GET /health HTTP/1.1\r\n\r\n"); /* after close: ignored */
        resp r;
        int want[] = {200, 200, 404, 200};
        for (int i = 0; i < 4; i++) {
            assert_int_equal(read_resp(c, &r, 0), 0);
            assert_int_equal(r.status, want[i]);
            if (i == 1) assert_non_null(strstr(r.body, "etcdserver"));
            if (i == 3) {
                assert_non_null(strstr(r.body, "relistlab_test_ops_total"));
                assert_true(has_header(&r, "connection: close\n"));
            }
            resp_free(&r);
        }
        assert_true(at_eof(c));
        cli_close(c);

        /* a request trickled one byte per send */
        c = cli_open(s);
        const char *req = "GET /version HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n";
        for (size_t i = 0; req[i]; i++) {
            cli_send(c->fd, req + i, 1);
            if (i % 8 == 0) usleep(1000);
        }
        assert_int_equal(read_resp(c, &r, 0), 0);
        assert_int_equal(r.status, 200);
        resp_free(&r);
        cli_close(c);
        srv_stop(s);
    }
}

static void expect_error_and_close(srv *s, const char *req, size_t len, int status) {
    cli *c = cli_open(s);
    cli_send(c->fd, req, len);
    resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, status);
    assert_true(has_header(&r, "connection: close\n"));
    resp_free(&r);
    assert_true(at_eof(c));
    cli_close(c);
}

static void test_bad_requests(void **state) {
    (void)state;
    srv *s = srv_start(NULL, 24);
    const char *garbage = "GARBAGE\r\n\r\n";
    expect_error_and_close(s, garbage, strlen(garbage), 400);
    const char *bad_header = "GET /health HTTP/1.1\r\nBad Header Line\r\n\r\n";
    expect_error_and_close(s, bad_header, strlen(bad_header), 400);
    const char *bad_version = "GET /health HTTP/9.x\r\n\r\n";
    expect_error_and_close(s, bad_version, strlen(bad_version), 400);
    const char binary[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"; /* a TLS ClientHello */
    expect_error_and_close(s, binary, sizeof binary - 1, 400);
    /* a valid request before the garbage is still answered */
    cli *c = cli_open(s);
    cli_sends(c->fd, "GET /health HTTP/1.1\r\n\r\nNOT HTTP AT ALL\r\n\r\n");
    resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 400);
    resp_free(&r);
    assert_true(at_eof(c));
    cli_close(c);

    /* headers over 8 KiB: 431 */
    size_t big = 9000;
    char *req = malloc(big + 128);
    int n = snprintf(req, big + 128, "GET /health HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'x', big);
    n += (int)big;
    n += snprintf(req + n, 128, "\r\n\r\n");
    expect_error_and_close(s, req, (size_t)n, 431);
    /* the URL counts too */
    n = snprintf(req, 64, "GET /");
    memset(req + n, 'a', big);
    n += (int)big;
    n += snprintf(req + n, 128, " HTTP/1.1\r\n\r\n");
    expect_error_and_close(s, req, (size_t)n, 431);
    free(req);

    /* a body on GET: 413; on POST to a known path: 405, both closing */
    const char *get_body = "GET /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    expect_error_and_close(s, get_body, strlen(get_body), 413);
    const char *chunked =
        "GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    expect_error_and_close(s, chunked, strlen(chunked), 413);
    const char *post = "POST /health HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    expect_error_and_close(s, post, strlen(post), 405);

    kvs_http1_stats st = wait_idle(s);
    assert_int_equal(st.conns_open, 0);
    assert_int_equal(st.bad_requests, 9);
    resp health;
    get_once(s, "/health", &health); /* still serving */
    assert_int_equal(health.status, 200);
    resp_free(&health);
    srv_stop(s);
}

static void test_disconnects(void **state) {
    (void)state;
    kvs_http1_opts o = {.idle_timeout_ms = 300};
    srv *s = srv_start(&o, 24);
    /* mid-request */
    cli *c = cli_open(s);
    cli_sends(c->fd, "GET /hea");
    usleep(20000);
    cli_close(c);
    /* mid-headers, after the sniffed prefix */
    c = cli_open(s);
    cli_sends(c->fd, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: b");
    usleep(20000);
    cli_close(c);
    /* requests sent, then the client goes away without reading */
    c = cli_open(s);
    for (int i = 0; i < 20; i++)
        cli_sends(c->fd, "GET /metrics HTTP/1.1\r\n\r\n");
    cli_close(c);
    /* half-close: the client shuts its write side and still reads the answer */
    c = cli_open(s);
    cli_sends(c->fd, "GET /version HTTP/1.1\r\n\r\n");
    shutdown(c->fd, SHUT_WR);
    resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_true(at_eof(c));
    cli_close(c);
    /* an idle connection is closed after idle_timeout_ms */
    c = cli_open(s);
    cli_sends(c->fd, "GET /health HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    resp_free(&r);
    assert_true(at_eof(c)); /* blocks until the server closes it */
    cli_close(c);
    /* a connection that sends nothing at all is never handed over */
    c = cli_open(s);
    cli_close(c);
    kvs_http1_stats st = wait_idle(s);
    assert_int_equal(st.conns_open, 0);
    assert_int_equal(st.conns_adopted, 5);
    assert_true(st.closed_idle >= 1);
    assert_int_equal(st.queued_bytes, 0);
    resp health;
    get_once(s, "/health", &health);
    assert_int_equal(health.status, 200);
    resp_free(&health);
    srv_stop(s);
}

static void test_stalled_reader_bounded(void **state) {
    (void)state;
    kvs_http1_opts o = {.idle_timeout_ms = 400, .high_water = 64 * 1024};
    srv *s = srv_start(&o, 24);
    /* a /metrics page of ~100 KB */
    static const char *const k[] = {"key", NULL};
    kvs_family *f =
        kvs_registry_counter(s->reg, "relistlab_test_padding_total", "Makes the page big.", k);
    for (int i = 0; i < 2000; i++) {
        char v[32];
        snprintf(v, sizeof v, "some-longish-label-value-%05d", i);
        kvs_counter_inc(kvs_family_series(f, (const char *[]){v}));
    }
    resp r;
    get_once(s, "/metrics", &r);
    size_t page = r.body_len;
    resp_free(&r);
    assert_true(page > 90000);

    cli *c = cli_open(s);
    int small = 4096;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    /* 2,000 pipelined scrapes = ~200 MB of answers if nothing bounded them */
    const char *one = "GET /metrics HTTP/1.1\r\n\r\n";
    size_t n1 = strlen(one), total = 2000 * n1;
    char *all = malloc(total);
    for (int i = 0; i < 2000; i++)
        memcpy(all + (size_t)i * n1, one, n1);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_t sent = 0;
    while (sent < total) { /* may block once the server stops reading: that is the point */
        ssize_t w = send(c->fd, all + sent, total - sent, MSG_NOSIGNAL);
        if (w <= 0) break;
        sent += (size_t)w;
    }
    free(all);
    /* never read; the server must give up after the idle timeout */
    kvs_http1_stats st = wait_idle(s);
    printf(
        "  stalled reader: %zu of 2000 requests sent, %llu answered before the stall; page %zu B,"
        " peak queued on the connection %zu B (high water %zu), closed_idle %llu\n",
        sent / n1, (unsigned long long)st.requests - 1, page, st.queued_peak_conn, o.high_water,
        (unsigned long long)st.closed_idle);
    assert_int_equal(st.conns_open, 0);
    assert_true(st.closed_idle >= 1);
    assert_true(st.queued_peak_conn <= o.high_water + 2 * (page + 512));
    assert_int_equal(st.queued_bytes, 0);
    cli_close(c);
    srv_stop(s);
}

static int custom_route(void *ud, kvs_http1_response *out) {
    out->status = 200;
    out->content_type = "application/json";
    out->body = strdup((const char *)ud);
    out->body_len = strlen(out->body);
    return 0;
}

static int failing_route(void *ud, kvs_http1_response *out) {
    (void)ud;
    (void)out;
    return -1;
}

static void test_options_and_curl(void **state) {
    (void)state;
    kvs_http1_route routes[] = {{"/debug/x", custom_route, "{\"x\":1}"},
                                {"/debug/fail", failing_route, NULL}};
    kvs_http1_opts o = {.etcdserver_version = "3.5.\"9\"",
                        .etcdcluster_version = "3.5.0",
                        .routes = routes,
                        .n_routes = 2};
    srv *s = srv_start(&o, 24);
    resp r;
    get_once(s, "/version", &r);
    assert_string_equal(r.body, "{\"etcdserver\":\"3.5.\\\"9\\\"\",\"etcdcluster\":\"3.5.0\"}");
    resp_free(&r);
    get_once(s, "/debug/x", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"x\":1}");
    resp_free(&r);
    get_once(s, "/debug/fail", &r);
    assert_int_equal(r.status, 500);
    resp_free(&r);
    if (access("/usr/bin/curl", X_OK) == 0) {
        char cmd[256];
        snprintf(cmd, sizeof cmd,
                 "curl -s -m 5 http://127.0.0.1:%d/health http://127.0.0.1:%d/metrics 2>&1",
                 s->port, s->port);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        char *out = calloc(1, 1 << 16);
        size_t n = fread(out, 1, (1 << 16) - 1, p);
        pclose(p);
        out[n] = '\0';
        assert_non_null(strstr(out, "{\"health\":\"true\"}"));
        assert_non_null(strstr(out, "relistlab_test_ops_total 0"));
        free(out);
        printf("  curl: /health and /metrics (two requests on one connection) OK\n");
    }
    srv_stop(s);
}

static void test_free_with_open_connections(void **state) {
    (void)state;
    srv *s = srv_start(NULL, 24);
    cli *a = cli_open(s), *b = cli_open(s);
    cli_sends(a->fd, "GET /health HTTP/1.1\r\n\r\n");
    resp r;
    assert_int_equal(read_resp(a, &r, 0), 0);
    resp_free(&r);
    cli_sends(b->fd, "GET /heal"); /* mid-request */
    usleep(20000);
    kvs_http1_stats st = srv_stats(s);
    assert_int_equal(st.conns_open, 2);
    srv_stop(s); /* asserts the handler freed itself after closing both */
    assert_true(at_eof(a));
    cli_close(a);
    cli_close(b);
}

static void test_max_connections(void **state) {
    (void)state;
    kvs_http1_opts o = {.max_connections = 2};
    srv *s = srv_start(&o, 24);
    cli *c[3];
    resp r;
    for (int i = 0; i < 3; i++) {
        c[i] = cli_open(s);
        cli_sends(c[i]->fd, "GET /health HTTP/1.1\r\n\r\n");
        if (i < 2) { /* answered, and kept open */
            assert_int_equal(read_resp(c[i], &r, 0), 0);
            assert_int_equal(r.status, 200);
            resp_free(&r);
        }
    }
    assert_true(at_eof(c[2])); /* over the bound: closed without an answer */
    kvs_http1_stats st = srv_stats(s);
    assert_int_equal(st.conns_open, 2);
    assert_int_equal(st.conns_adopted, 2);
    for (int i = 0; i < 3; i++)
        cli_close(c[i]);
    st = wait_idle(s);
    assert_int_equal(st.conns_open, 0);
    get_once(s, "/health", &r); /* room again */
    assert_int_equal(r.status, 200);
    resp_free(&r);
    srv_stop(s);
}

/* Mutated requests (and pure noise): every connection ends cleanly and the server keeps serving. */
static void test_random_input(void **state) {
    (void)state;
    srv *s = srv_start(NULL, 24);
    static const char *const seeds[] = {
        "GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
        "GET /health HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /version HTTP/1.0\r\n\r\n",
        "POST /version HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "GET http://h/health?x=%zz HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"};
    uint32_t rnd = 12345;
    char req[512];
    for (int i = 0; i < 300; i++) {
        const char *seed = seeds[i % 4];
        size_t n = strlen(seed);
        memcpy(req, seed, n);
        rnd = rnd * 1103515245u + 12345u;
        int flips = (int)(rnd >> 16) % 4;
        for (int f = 0; f < flips; f++) {
            rnd = rnd * 1103515245u + 12345u;
            req[(rnd >> 8) % n] = (char)(rnd >> 24);
        }
        if (i % 10 == 9) { /* pure noise */
            for (size_t k = 0; k < n; k++) {
                rnd = rnd * 1103515245u + 12345u;
                req[k] = (char)(rnd >> 24);
            }
        }
        rnd = rnd * 1103515245u + 12345u;
        if (i % 3 == 0) n = 1 + (rnd >> 8) % n; /* cut short */
        cli *c = cli_open(s);
        cli_send(c->fd, req, n);
        shutdown(c->fd, SHUT_WR);
        char sink[4096];
        ssize_t got;
        while ((got = recv(c->fd, sink, sizeof sink, 0)) > 0) {
        }
        assert_true(got == 0 || errno == ECONNRESET); /* closed by the server, no timeout */
        cli_close(c);
    }
    kvs_http1_stats st = wait_idle(s);
    assert_int_equal(st.conns_open, 0);
    assert_int_equal(st.conns_adopted, 300);
    resp r;
    get_once(s, "/health", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    srv_stop(s);
}

int main(void) {
    /* a process serving sockets ignores SIGPIPE (libuv writes with writev) — kvstore's main does */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_version_keepalive),
        cmocka_unit_test(test_metrics_move),
        cmocka_unit_test(test_404_405),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_disconnects),
        cmocka_unit_test(test_stalled_reader_bounded),
        cmocka_unit_test(test_options_and_curl),
        cmocka_unit_test(test_free_with_open_connections),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_random_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
