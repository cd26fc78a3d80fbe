/* scn_run_http.c — a one-shot HTTP/1.0 GET on libuv, for scraping /metrics and probing /health
 * of kvstore or etcd on loopback.
 *
 * Key decisions:
 * - HTTP/1.0 with "Connection: close": the body ends at EOF, so Go's net/http (etcd) sends no
 *   chunked encoding; chunked bodies are still decoded in case a server uses them anyway.
 * - Numeric addresses only (plus "localhost"): the runner talks to loopback servers, and a
 *   resolver would add a thread-pool hop to every scrape.
 * - The request owns three handles (tcp, timer) and frees itself when the last one closed;
 *   cancelling just forgets the callback, so a cancelled request never touches its caller. */
#include "scn_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_BODY_MAX (256u << 20)

struct scn_http_req {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t conn;
    uv_write_t wr;
    char reqbuf[512];
    char *buf;
    size_t len, cap;
    scn_http_cb cb;
    void *ud;
    int open_handles;
    bool done;
};

static void on_closed(uv_handle_t *h) {
    scn_http_req *r = h->data;
    if (--r->open_handles == 0) {
        free(r->buf);
        free(r);
    }
}

static void finish(scn_http_req *r, int status, const char *body, size_t len, const char *err) {
    if (r->done) return;
    r->done = true;
    scn_http_cb cb = r->cb;
    r->cb = NULL;
    if (cb) cb(r->ud, status, body ? body : "", len, err ? err : "");
    uv_timer_stop(&r->timer);
    if (!uv_is_closing((uv_handle_t *)&r->tcp)) uv_close((uv_handle_t *)&r->tcp, on_closed);
    if (!uv_is_closing((uv_handle_t *)&r->timer)) uv_close((uv_handle_t *)&r->timer, on_closed);
}

static void fail(scn_http_req *r, const char *what, int uverr) {
    char m[160];
    if (uverr)
        snprintf(m, sizeof m, "%s: %s", what, uv_strerror(uverr));
    else
        snprintf(m, sizeof m, "%s", what);
    finish(r, 0, NULL, 0, m);
}

/* In-place chunked decoding; returns the decoded length or -1 when malformed/incomplete. */
static long dechunk(char *p, size_t n) {
    size_t in = 0, out = 0;
    for (;;) {
        char *end;
        if (in >= n) return -1;
        unsigned long sz = strtoul(p + in, &end, 16);
        char *crlf = strstr(p + in, "\r\n");
        if (!crlf || end == p + in) return -1;
        in = (size_t)(crlf - p) + 2;
        if (sz == 0) break;
        if (sz > n - in) return -1;
        memmove(p + out, p + in, sz);
        out += sz;
        in += sz;
        if (in + 2 > n || p[in] != '\r') return -1;
        in += 2;
    }
    p[out] = 0;
    return (long)out;
}

static void parse_response(scn_http_req *r) {
    if (!r->buf) {
        fail(r, "empty response", 0);
        return;
    }
    r->buf[r->len] = 0;
    int major, minor, status;
    if (sscanf(r->buf, "HTTP/%d.%d %d", &major, &minor, &status) != 3) {
        fail(r, "not an HTTP response", 0);
        return;
    }
    char *hdr_end = strstr(r->buf, "\r\n\r\n");
    if (!hdr_end) {
        fail(r, "truncated response headers", 0);
        return;
    }
    *hdr_end = 0;
    char *body = hdr_end + 4;
    size_t blen = r->len - (size_t)(body - r->buf);
    bool chunked = false;
    long clen = -1;
    for (char *line = strstr(r->buf, "\r\n"); line && *line; line = strstr(line, "\r\n")) {
        line += 2;
        if (!strncasecmp(line, "transfer-encoding:", 18) && strcasestr(line, "chunked"))
            chunked = true;
        else if (!strncasecmp(line, "content-length:", 15))
            clen = strtol(line + 15, NULL, 10);
    }
    if (chunked) {
        long n = dechunk(body, blen);
        if (n < 0) {
            fail(r, "bad chunked body", 0);
            return;
        }
        blen = (size_t)n;
    } else if (clen >= 0 && (size_t)clen < blen) {
        blen = (size_t)clen;
        body[blen] = 0;
    }
    finish(r, status, body, blen, NULL);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
    scn_http_req *r = h->data;
    (void)hint;
    if (r->cap - r->len < 65536 + 1) {
        size_t nc = r->cap ? r->cap * 2 : 262144;
        char *nb = nc <= HTTP_BODY_MAX ? realloc(r->buf, nc) : NULL;
        if (!nb) {
            *b = uv_buf_init(NULL, 0);
            return;
        }
        r->buf = nb;
        r->cap = nc;
    }
    *b = uv_buf_init(r->buf + r->len, (unsigned)(r->cap - r->len - 1));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    scn_http_req *r = s->data;
    (void)b;
    if (n > 0) {
        r->len += (size_t)n;
        return;
    }
    if (n == UV_EOF) {
        parse_response(r);
    } else if (n == UV_ENOBUFS) {
        fail(r, "response too large", 0);
    } else if (n < 0) {
        fail(r, "read", (int)n);
    }
}

static void on_write(uv_write_t *w, int status) {
    scn_http_req *r = w->data;
    if (status < 0 && !r->done) fail(r, "write", status);
}

static void on_connect(uv_connect_t *c, int status) {
    scn_http_req *r = c->data;
    if (r->done) return;
    if (status < 0) {
        fail(r, "connect", status);
        return;
    }
    uv_buf_t b = uv_buf_init(r->reqbuf, (unsigned)strlen(r->reqbuf));
    r->wr.data = r;
    int rv = uv_write(&r->wr, (uv_stream_t *)&r->tcp, &b, 1, on_write);
    if (rv == 0) rv = uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read);
    if (rv < 0) fail(r, "send", rv);
}

static void on_timeout(uv_timer_t *t) {
    fail(t->data, "timed out", 0);
}

static void on_first(uv_timer_t *t);

scn_http_req *scn_http_get(uv_loop_t *loop, const char *hostport, const char *path,
                           uint32_t timeout_ms, scn_http_cb cb, void *ud) {
    if (!strncmp(hostport, "http://", 7)) hostport += 7;
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || (size_t)(colon - hostport) >= 64) return NULL;
    char host[64];
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535) return NULL;
    if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    struct sockaddr_storage ss;
    if (host[0] == '[') {
        size_t hl = strlen(host);
        if (hl < 3 || host[hl - 1] != ']') return NULL;
        host[hl - 1] = 0;
        if (uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)&ss)) return NULL;
    } else if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss)) {
        return NULL;
    }
    scn_http_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->cb = cb;
    r->ud = ud;
    snprintf(r->reqbuf, sizeof r->reqbuf,
             "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: relistlab-scenario\r\n"
             "Accept: text/plain\r\nConnection: close\r\n\r\n",
             path, hostport);
    uv_tcp_init(loop, &r->tcp);
    uv_timer_init(loop, &r->timer);
    r->tcp.data = r->timer.data = r->conn.data = r;
    r->open_handles = 2;
    int rv = uv_tcp_connect(&r->conn, &r->tcp, (const struct sockaddr *)&ss, on_connect);
    if (rv < 0) {
        /* report on the loop, never inside this call */
        uv_timer_start(&r->timer, on_first, 0, 0);
        return r;
    }
    uv_timer_start(&r->timer, on_timeout, timeout_ms ? timeout_ms : 5000, 0);
    return r;
}

static void on_first(uv_timer_t *t) {
    fail(t->data, "connect: cannot start", 0);
}

void scn_http_cancel(scn_http_req *r) {
    if (!r || r->done) return;
    r->cb = NULL;
    finish(r, 0, NULL, 0, NULL);
}
