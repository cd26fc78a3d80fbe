/* http1.c — HTTP/1.1 connections handed over by the gRPC server's first-bytes sniffing: parse
 * with http_parser, answer /metrics, /health, /version (and extra routes) like etcd 3.4.
 *
 * Key decisions:
 * - Responses are produced synchronously as each request completes and queued with uv_write, so
 *   pipelined requests are answered in order without a per-connection response queue of our own.
 * - Back-pressure: once a connection has high_water response bytes not yet written, the parser
 *   is paused (the unparsed rest of the current read is kept, at most one read buffer) and reading
 *   stops; it resumes below high_water / 4. Memory per connection is thus bounded by high_water
 *   plus one response plus one read buffer, whatever the client pipelines.
 * - One timer per connection bounds idle time: it restarts on input and on write progress, so a
 *   client that stops reading (or never finishes a request) is closed after idle_timeout_ms.
 * - Request bodies are never needed: a request announcing one is answered (413 for GET, else the
 *   route's 404/405) with Connection: close. Errors close after a lingering shutdown (write side
 *   shut, input discarded briefly) so the client reads the error instead of a reset.
 */
#include "http1.h"

#include <http_parser.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define READ_BUF_BYTES   16384
#define LINGER_MS        1000
#define LINGER_MAX_BYTES (256 * 1024)

typedef enum {
    C_OPEN,    /* parsing requests */
    C_DRAIN,   /* no more requests: flush queued responses, then linger */
    C_LINGER,  /* write side shut down; discarding input until EOF or the linger timer */
    C_CLOSING, /* uv_close issued */
} conn_state;

typedef enum { R_NONE, R_CUSTOM, R_METRICS, R_HEALTH, R_VERSION } route_kind;

typedef struct conn conn;

struct kvs_http1 {
    uv_loop_t *loop;
    kvs_http1_opts o;
    char *version_body;
    size_t version_len;
    kvs_http1_route *routes;
    kvs_series *health_ok, *health_failed;
    conn *conns;
    bool freeing;
    void (*done)(void *);
    void *done_ud;
    kvs_http1_stats st;
};

struct conn {
    kvs_http1 *h;
    conn *prev, *next;
    uv_tcp_t *tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    int handles; /* open libuv handles (tcp, timer); the conn is freed when both are closed */
    conn_state state;
    bool reading, paused, eof;
    http_parser parser;
    /* the request being parsed */
    char *url;
    size_t url_len, url_cap, header_bytes;
    int reject;    /* status decided by a callback (431) before failing the parse */
    bool answered; /* a response ending the connection was already queued */
    /* output */
    size_t queued;
    char *stash; /* unparsed input kept while paused */
    size_t stash_len, lingered;
    char rbuf[READ_BUF_BYTES];
};

typedef struct wreq {
    uv_write_t req;
    conn *c;
    size_t bytes;
    char *head, *body;
} wreq;

static void feed(conn *c, const char *data, size_t n);
static void read_start(conn *c);

/* ---- lifecycle ----------------------------------------------------------------------------- */

static void maybe_finish(kvs_http1 *h) {
    if (!h->freeing || h->conns) return;
    void (*done)(void *) = h->done;
    void *ud = h->done_ud;
    for (size_t i = 0; i < h->o.n_routes; i++)
        free((char *)h->routes[i].path);
    free(h->routes);
    free((char *)h->o.etcdserver_version);
    free((char *)h->o.etcdcluster_version);
    free(h->version_body);
    free(h);
    if (done) done(ud);
}

static void on_handle_closed(uv_handle_t *hd) {
    conn *c = hd->data;
    if (--c->handles > 0) return;
    kvs_http1 *h = c->h;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    h->st.conns_open--;
    free(c->tcp);
    free(c->url);
    free(c->stash);
    free(c);
    maybe_finish(h);
}

static void close_conn(conn *c) {
    if (c->state == C_CLOSING) return;
    c->state = C_CLOSING;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)c->tcp, on_handle_closed);
}

static void on_timer(uv_timer_t *t) {
    conn *c = t->data;
    if (c->state == C_OPEN || c->state == C_DRAIN) c->h->st.closed_idle++;
    close_conn(c);
}

static void arm_timer(conn *c, uint64_t ms) {
    if (c->state != C_CLOSING) uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    conn *c = req->data;
    if (status < 0 || c->eof) close_conn(c); /* after EOF nothing unread can cause a reset */
}

/* Everything is flushed: shut our write side and discard input briefly, so the client reads our
 * last response rather than a reset caused by unread input. */
static void linger(conn *c) {
    if (c->state == C_LINGER || c->state == C_CLOSING) return;
    c->state = C_LINGER;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)c->tcp, on_shutdown) != 0) {
        close_conn(c);
        return;
    }
    arm_timer(c, LINGER_MS);
    if (!c->eof) read_start(c);
}

/* No more requests on this connection: finish writing what is queued, then linger. */
static void drain(conn *c) {
    if (c->state != C_OPEN) return;
    c->state = C_DRAIN;
    free(c->stash);
    c->stash = NULL;
    c->stash_len = 0;
    if (c->queued == 0) linger(c);
}

/* ---- responses ----------------------------------------------------------------------------- */

static void after_write(uv_write_t *req, int status) {
    wreq *w = (wreq *)req;
    conn *c = w->c;
    kvs_http1 *h = c->h;
    c->queued -= w->bytes;
    h->st.queued_bytes -= w->bytes;
    free(w->head);
    free(w->body);
    free(w);
    if (c->state == C_CLOSING) return;
    if (status < 0) {
        close_conn(c);
        return;
    }
    arm_timer(c, h->o.idle_timeout_ms);
    if (c->state == C_DRAIN && c->queued == 0) {
        linger(c);
    } else if (c->state == C_OPEN && c->paused && c->queued <= h->o.high_water / 4) {
        c->paused = false;
        http_parser_pause(&c->parser, 0);
        while (c->stash && c->state == C_OPEN && !c->paused) {
            char *s = c->stash;
            size_t n = c->stash_len;
            c->stash = NULL;
            c->stash_len = 0;
            feed(c, s, n);
            free(s);
        }
        if (c->state == C_OPEN && !c->paused) read_start(c);
    }
}

static const char *reason_phrase(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Request Entity Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static void http_date(char *out, size_t n) {
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Queues one response; `body` (malloc'd or NULL) becomes ours. `close` ends the connection after
 * it. extra: additional header lines, each ending in \r\n. */
static void respond(conn *c, int status, const char *ctype, char *body, size_t len, bool head_only,
                    bool close, const char *extra) {
    kvs_http1 *h = c->h;
    h->st.requests++;
    if (status == 400 || status == 413 || status == 431) h->st.bad_requests++;
    if (c->state != C_OPEN) {
        free(body);
        return;
    }
    char date[64];
    http_date(date, sizeof date);
    bool keep_alive_10 = !close && c->parser.http_major == 1 && c->parser.http_minor == 0;
    const char *conn_hdr = close           ? "Connection: close\r\n"
                           : keep_alive_10 ? "Connection: keep-alive\r\n"
                                           : "";
    static const char fmt[] =
        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nDate: %s\r\n%s%s\r\n";
    /* sized first: a custom route's content type has no length limit */
    int hn = snprintf(NULL, 0, fmt, status, reason_phrase(status), ctype, len, date,
                      extra ? extra : "", conn_hdr);
    char *head = hn > 0 ? malloc((size_t)hn + 1) : NULL;
    wreq *w = calloc(1, sizeof *w);
    if (!head || !w) {
        free(head);
        free(w);
        free(body);
        close_conn(c);
        return;
    }
    snprintf(head, (size_t)hn + 1, fmt, status, reason_phrase(status), ctype, len, date,
             extra ? extra : "", conn_hdr);
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)hn), uv_buf_init(body, (unsigned)len)};
    unsigned nbufs = head_only || !body || len == 0 ? 1 : 2;
    w->c = c;
    w->head = head;
    w->body = body;
    w->bytes = (size_t)hn + (nbufs == 2 ? len : 0);
    if (uv_write(&w->req, (uv_stream_t *)c->tcp, bufs, nbufs, after_write) != 0) {
        free(head);
        free(body);
        free(w);
        close_conn(c);
        return;
    }
    c->queued += w->bytes;
    h->st.queued_bytes += w->bytes;
    if (c->queued > h->st.queued_peak_conn) h->st.queued_peak_conn = c->queued;
    if (close) {
        c->answered = true;
        drain(c);
    }
}

static char *dup_text(const char *s, size_t *len) {
    *len = strlen(s);
    char *p = malloc(*len + 1);
    if (p) memcpy(p, s, *len + 1);
    return p;
}

static const char text_plain[] = "text/plain; charset=utf-8";
static const char nosniff[] = "X-Content-Type-Options: nosniff\r\n";

static void respond_error(conn *c, int status, bool close) {
    char msg[96];
    /* Go's net/http wording: http.Error bodies end in a newline, connection-level errors not. */
    if (status == 404)
        snprintf(msg, sizeof msg, "404 page not found\n");
    else if (status == 405)
        snprintf(msg, sizeof msg, "Method Not Allowed\n");
    else if (status == 500)
        snprintf(msg, sizeof msg, "Internal Server Error\n");
    else
        snprintf(msg, sizeof msg, "%d %s", status, reason_phrase(status));
    size_t len = 0;
    char *body = dup_text(msg, &len);
    char extra[160];
    snprintf(extra, sizeof extra, "%s%s", nosniff, status == 405 ? "Allow: GET, HEAD\r\n" : "");
    respond(c, status, text_plain, body, body ? len : 0, false, close, extra);
}

/* ---- routing ------------------------------------------------------------------------------- */

static route_kind route_of(kvs_http1 *h, const char *path, size_t n, size_t *custom) {
    for (size_t i = 0; i < h->o.n_routes; i++) {
        if (strlen(h->routes[i].path) == n && memcmp(h->routes[i].path, path, n) == 0) {
            *custom = i;
            return R_CUSTOM;
        }
    }
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(path, lit, n) == 0)
    if (IS("/metrics") && h->o.metrics) return R_METRICS;
    if (IS("/health")) return R_HEALTH;
    if (IS("/version")) return R_VERSION;
#undef IS
    return R_NONE;
}

/* The status the current request gets before running its handler: 0 = run it. */
static int precheck(conn *c, route_kind *kind, size_t *custom) {
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (c->url_len == 0 ||
        http_parser_parse_url(c->url, c->url_len, c->parser.method == HTTP_CONNECT, &u) != 0)
        return 400;
    const char *path = "/";
    size_t plen = 1;
    if (u.field_set & (1 << UF_PATH)) {
        path = c->url + u.field_data[UF_PATH].off;
        plen = u.field_data[UF_PATH].len;
    }
    *kind = route_of(c->h, path, plen, custom);
    if (*kind == R_NONE) return 404;
    if (c->parser.method != HTTP_GET && c->parser.method != HTTP_HEAD) return 405;
    return 0;
}

static void run_route(conn *c, route_kind kind, size_t custom, bool close) {
    kvs_http1 *h = c->h;
    bool head = c->parser.method == HTTP_HEAD;
    size_t len = 0;
    char *body = NULL;
    switch (kind) {
    case R_CUSTOM: {
        kvs_http1_response r = {200, text_plain, NULL, 0};
        const kvs_http1_route *rt = &h->routes[custom];
        if (rt->handler(rt->ud, &r) != 0) {
            free(r.body);
            respond_error(c, 500, close);
            return;
        }
        respond(c, r.status, r.content_type ? r.content_type : text_plain, r.body, r.body_len, head,
                close, NULL);
        return;
    }
    case R_METRICS:
        if (kvs_registry_render(h->o.metrics, &body, &len) != 0) {
            respond_error(c, 500, close);
            return;
        }
        respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, len, head, close, NULL);
        return;
    case R_HEALTH: {
        bool ok = h->o.health ? h->o.health(h->o.health_ud) != 0 : true;
        kvs_counter_inc(ok ? h->health_ok : h->health_failed);
        /* etcd 3.4: 200 with the bare JSON; 503 via http.Error (newline, nosniff). */
        body = dup_text(ok ? "{\"health\":\"true\"}" : "{\"health\":\"false\"}\n", &len);
        respond(c, ok ? 200 : 503, text_plain, body, body ? len : 0, head, close,
                ok ? NULL : nosniff);
        return;
    }
    case R_VERSION:
        body = malloc(h->version_len + 1);
        if (body) memcpy(body, h->version_body, h->version_len + 1);
        respond(c, 200, "application/json", body, body ? h->version_len : 0, head, close, NULL);
        return;
    case R_NONE:
        break;
    }
    respond_error(c, 404, close);
}

/* ---- parsing ------------------------------------------------------------------------------- */

static int on_message_begin(http_parser *p) {
    conn *c = p->data;
    c->url_len = 0;
    c->header_bytes = 0;
    c->reject = 0;
    return 0;
}

static int count_header(conn *c, size_t n) {
    c->header_bytes += n;
    if (c->header_bytes > c->h->o.max_header_bytes) {
        c->reject = 431;
        return -1;
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
    conn *c = p->data;
    if (count_header(c, n) != 0) return -1;
    if (c->url_len + n > c->url_cap) {
        size_t cap = c->url_cap ? c->url_cap : 64;
        while (cap < c->url_len + n)
            cap *= 2;
        char *u = realloc(c->url, cap);
        if (!u) return -1;
        c->url = u;
        c->url_cap = cap;
    }
    memcpy(c->url + c->url_len, at, n);
    c->url_len += n;
    return 0;
}

static int on_header_bytes(http_parser *p, const char *at, size_t n) {
    (void)at;
    return count_header(p->data, n + 2); /* + the ": " / CRLF the parser does not report */
}

static int on_headers_complete(http_parser *p) {
    conn *c = p->data;
    bool has_body =
        (p->flags & F_CHUNKED) ||
        ((p->flags & F_CONTENTLENGTH) && p->content_length > 0 && p->content_length != ULLONG_MAX);
    if (!has_body) return 0;
    /* We never read bodies: answer now and end the connection after it. */
    route_kind kind = R_NONE;
    size_t custom = 0;
    int st = precheck(c, &kind, &custom);
    respond_error(c, st ? st : 413, true);
    return -1;
}

static int on_message_complete(http_parser *p) {
    conn *c = p->data;
    bool close = !http_should_keep_alive(p) || p->upgrade;
    route_kind kind = R_NONE;
    size_t custom = 0;
    int st = precheck(c, &kind, &custom);
    if (st)
        respond_error(c, st, close || st == 400);
    else
        run_route(c, kind, custom, close);
    if (c->state != C_OPEN) return -1; /* stop parsing whatever follows */
    if (c->queued >= c->h->o.high_water) {
        c->paused = true;
        http_parser_pause(p, 1);
    }
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_bytes,
    .on_header_value = on_header_bytes,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

static void feed(conn *c, const char *data, size_t n) {
    if (c->state != C_OPEN || n == 0) return;
    size_t used = http_parser_execute(&c->parser, &parser_settings, data, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
        if (used < n && c->state == C_OPEN) {
            c->stash = malloc(n - used);
            if (!c->stash) {
                close_conn(c);
                return;
            }
            memcpy(c->stash, data + used, n - used);
            c->stash_len = n - used;
        }
        if (c->reading) {
            uv_read_stop((uv_stream_t *)c->tcp);
            c->reading = false;
        }
        return;
    }
    if (e != HPE_OK) {
        if (!c->answered) respond_error(c, c->reject ? c->reject : 400, true);
        drain(c);
        return;
    }
    if (c->parser.upgrade) drain(c); /* the rest is a protocol we do not speak */
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    conn *c = hd->data;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    conn *c = s->data;
    if (nread == 0 || c->state == C_CLOSING) return;
    if (nread < 0) {
        /* EOF: the client sends nothing more, but may still read what we queued. */
        uv_read_stop(s);
        c->reading = false;
        c->eof = true;
        if (nread != UV_EOF || c->state == C_LINGER)
            close_conn(c);
        else
            drain(c);
        return;
    }
    if (c->state != C_OPEN) { /* input after our last response is discarded, boundedly */
        c->lingered += (size_t)nread;
        if (c->lingered > LINGER_MAX_BYTES) close_conn(c);
        return;
    }
    arm_timer(c, c->h->o.idle_timeout_ms);
    feed(c, c->rbuf, (size_t)nread);
}

static void read_start(conn *c) {
    if (c->reading || c->state == C_CLOSING) return;
    if (uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read) != 0) {
        close_conn(c);
        return;
    }
    c->reading = true;
}

/* ---- public API ---------------------------------------------------------------------------- */

static char *copy_str(const char *s, const char *dflt) {
    return strdup(s && *s ? s : dflt);
}

static void json_escaped(char *out, size_t cap, size_t *len, const char *s) {
    for (; *s && *len + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            *len += (size_t)snprintf(out + *len, cap - *len, "\\%c", ch);
        else if (ch < 0x20)
            *len += (size_t)snprintf(out + *len, cap - *len, "\\u%04x", ch);
        else
            out[(*len)++] = (char)ch;
    }
    out[*len] = '\0';
}

kvs_http1 *kvs_http1_new(uv_loop_t *loop, const kvs_http1_opts *opts) {
    if (!loop) return NULL;
    kvs_http1 *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->loop = loop;
    if (opts) h->o = *opts;
    if (!h->o.max_header_bytes) h->o.max_header_bytes = 8192;
    if (!h->o.high_water) h->o.high_water = 1024 * 1024;
    if (!h->o.idle_timeout_ms) h->o.idle_timeout_ms = 60000;
    if (!h->o.max_connections) h->o.max_connections = 1024;
    h->o.etcdserver_version = copy_str(h->o.etcdserver_version, "3.4.23");
    h->o.etcdcluster_version = copy_str(h->o.etcdcluster_version, "3.4.0");
    size_t nr = h->o.n_routes;
    h->routes = calloc(nr ? nr : 1, sizeof *h->routes);
    h->o.n_routes = 0;
    bool ok = h->o.etcdserver_version && h->o.etcdcluster_version && h->routes;
    for (size_t i = 0; ok && i < nr; i++) {
        h->routes[i] = opts->routes[i];
        ok = h->routes[i].path && h->routes[i].handler &&
             (h->routes[i].path = strdup(h->routes[i].path)) != NULL;
        if (ok) h->o.n_routes++;
    }
    h->o.routes = NULL;
    size_t cap = 64 + 6 * (strlen(h->o.etcdserver_version) + strlen(h->o.etcdcluster_version));
    h->version_body = ok ? malloc(cap) : NULL;
    if (h->version_body) {
        size_t len = 0;
        len += (size_t)snprintf(h->version_body, cap, "{\"etcdserver\":\"");
        json_escaped(h->version_body, cap, &len, h->o.etcdserver_version);
        len += (size_t)snprintf(h->version_body + len, cap - len, "\",\"etcdcluster\":\"");
        json_escaped(h->version_body, cap, &len, h->o.etcdcluster_version);
        len += (size_t)snprintf(h->version_body + len, cap - len, "\"}");
        h->version_len = len;
    }
    if (h->o.metrics) {
        h->health_ok = kvs_family_only(
            kvs_registry_counter(h->o.metrics, "etcd_server_health_success",
                                 "The total number of successful health checks", NULL));
        h->health_failed =
            kvs_family_only(kvs_registry_counter(h->o.metrics, "etcd_server_health_failures",
                                                 "The total number of failed health checks", NULL));
    }
    if (!h->version_body) {
        h->freeing = true;
        maybe_finish(h);
        return NULL;
    }
    return h;
}

static void free_handle(uv_handle_t *hd) {
    free(hd);
}

int kvs_http1_adopt(kvs_http1 *h, uv_tcp_t *tcp, const char *initial, size_t n) {
    if (!tcp) return UV_EINVAL;
    conn *c = NULL;
    int rc = UV_ECANCELED;
    if (h && !h->freeing && h->st.conns_open < h->o.max_connections) {
        rc = UV_ENOMEM;
        c = calloc(1, sizeof *c);
    }
    if (c) {
        rc = uv_timer_init(h->loop, &c->timer);
        if (rc != 0) {
            free(c);
            c = NULL;
        }
    }
    if (!c) {
        tcp->data = NULL;
        uv_close((uv_handle_t *)tcp, free_handle);
        return rc;
    }
    c->h = h;
    c->tcp = tcp;
    c->handles = 2;
    c->timer.data = c;
    tcp->data = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = h->conns;
    if (h->conns) h->conns->prev = c;
    h->conns = c;
    h->st.conns_adopted++;
    h->st.conns_open++;
    arm_timer(c, h->o.idle_timeout_ms);
    feed(c, initial, n);
    if (c->state == C_OPEN && !c->paused) read_start(c);
    return 0;
}

void kvs_http1_on_grpc(void *ud, uv_tcp_t *tcp, const char *initial, size_t n) {
    kvs_http1_adopt(ud, tcp, initial, n);
}

void kvs_http1_free(kvs_http1 *h, void (*done)(void *ud), void *ud) {
    if (!h || h->freeing) return;
    h->freeing = true;
    h->done = done;
    h->done_ud = ud;
    for (conn *c = h->conns; c; c = c->next)
        close_conn(c);
    maybe_finish(h);
}

void kvs_http1_get_stats(const kvs_http1 *h, kvs_http1_stats *out) {
    if (h && out) *out = h->st;
}
