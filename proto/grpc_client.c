/* grpc_client.c — one HTTP/2 connection to a gRPC server (ours or a real etcd) on a uv loop:
 * unary calls and bidi streams. Calls made before the TCP connection is up are submitted to
 * the nghttp2 session at once and leave with the first flush after connect. Inbound flow
 * control is manual: bytes are consumed (WINDOW_UPDATE) once their messages are delivered, and
 * a paused stream keeps its bytes unconsumed so the server holds back (bounded by our stream
 * window). Reconnecting is the caller's job: on connection loss every pending call fails with
 * UNAVAILABLE and on_disconnect fires. grpc_client_abort() makes the same loss on purpose (a
 * network blip, a load balancer's reset): the socket is closed with SO_LINGER 0, so the server
 * reads ECONNRESET rather than an orderly EOF, and no GOAWAY is sent.
 * Re-entrancy: user callbacks may call grpc_client_free(); the actual teardown is deferred
 * until the library's own frames are off the stack (busy counter), memory is released in the
 * last uv close callback. */
#include "grpc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pmsg { /* a message received while the stream is paused */
    struct pmsg *next;
    size_t len;
    uint8_t data[];
} pmsg;

struct grpc_cstream {
    grpc_client *c;
    int32_t stream_id;
    bool is_stream;
    grpc_unary_cb cb;
    grpc_cstream_cbs cbs;
    void *ud;
    glist node; /* c->calls */
    goutq q;
    gdeframer df;
    bool deferred, half_close_pending;
    bool done;          /* the user was told (or cancelled): no more callbacks */
    bool stream_closed; /* nghttp2 is done with it */
    bool paused, close_pending, failed_locally;
    uint64_t deadline;
    int http_status, grpc_status;
    char *grpc_message;
    uint8_t *resp;
    size_t resp_len;
    bool got_resp;
    pmsg *pend_head, *pend_tail;
    size_t unconsumed;
    int final_status;
    char *final_msg;
};

struct grpc_client {
    h2io io; /* first: nghttp2 user_data */
    uv_loop_t *loop;
    grpc_client_opts opts;
    char *host, *port, *authority;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    uv_tcp_t tcp;
    uv_idle_t idle;
    uv_timer_t timer;
    bool gai_pending, tcp_inited, timer_on;
    bool connected, dead, goaway, told_down;
    bool abort_requested; /* grpc_client_abort from inside a callback: done in leave() */
    bool reset_on_close;  /* close the socket with a TCP RST (grpc_client_abort) */
    int busy;
    bool free_requested, freed;
    int closes_pending;
    glist calls;
    uint8_t *rbuf;
    size_t in_buffered;
};

static void client_do_free(grpc_client *c);
static void on_idle(uv_idle_t *h);

static void enter(grpc_client *c) {
    c->busy++;
}
static void do_abort(grpc_client *c);
static void leave(grpc_client *c) {
    /* an abort asked for inside a callback happens once the library's frames are gone (the
     * outermost leave, outside nghttp2), before a free asked for meanwhile */
    if (c->busy == 1 && c->abort_requested && !c->io.depth) do_abort(c);
    if (--c->busy == 0 && c->free_requested && !c->freed) client_do_free(c);
}

static void call_free(grpc_cstream *s) {
    glist_remove(&s->node);
    goutq_clear(&s->q);
    gdeframer_free(&s->df);
    pmsg *m = s->pend_head;
    while (m) {
        pmsg *n = m->next;
        free(m);
        m = n;
    }
    if (s->unconsumed) s->c->in_buffered -= s->unconsumed;
    free(s->grpc_message);
    free(s->resp);
    free(s->final_msg);
    free(s);
}

static void maybe_free(grpc_cstream *s) {
    if (s->done && s->stream_closed) call_free(s);
}

/* Tells the user the call is over (once). */
static void complete(grpc_cstream *s, int status, const char *msg) {
    if (s->done) return;
    s->done = true;
    if (!msg) msg = "";
    if (!s->is_stream) {
        bool ok = status == GRPC_STATUS_OK;
        s->cb(s->ud, status, msg, ok ? s->resp : NULL, ok ? s->resp_len : 0);
    } else if (s->cbs.on_close) {
        s->cbs.on_close(s, status, msg, s->ud);
    }
}

static void schedule(h2io *io) {
    grpc_client *c = (grpc_client *)io;
    if (!c->dead && c->connected) uv_idle_start(&c->idle, on_idle);
}

/* ---------------------------------------------------------------- connection loss */

static void fail_all(grpc_client *c, int status, const char *msg) {
    glist *l;
    while ((l = glist_pop(&c->calls))) {
        grpc_cstream *s = GRPC_CONTAINER_OF(l, grpc_cstream, node);
        s->stream_closed = true;
        complete(s, status, msg);
        s->done = true;
        call_free(s);
    }
}

static void on_handle_closed(uv_handle_t *h) {
    grpc_client *c = h->data;
    if (--c->closes_pending == 0 && c->freed) {
        h2io_free_buffers(&c->io);
        free(c->rbuf);
        free(c->host);
        free(c->port);
        free(c->authority);
        free(c);
    }
}

static void conn_lost(grpc_client *c, int err, const char *msg) {
    if (c->dead) return;
    c->dead = true;
    c->io.dead = true;
    if (c->io.ng) {
        nghttp2_session_del(c->io.ng);
        c->io.ng = NULL;
    }
    fail_all(c, GRPC_STATUS_UNAVAILABLE, msg);
    h2io_drop_pending(&c->io);
    if (c->tcp_inited && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->closes_pending++;
        /* close_reset fails only on a socket that is not open yet (or was shut down) */
        if (!c->reset_on_close || !c->connected ||
            uv_tcp_close_reset(&c->tcp, on_handle_closed) != 0)
            uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    }
    if (!c->connected) {
        if (c->opts.on_connect) c->opts.on_connect(c->opts.ud, c, err ? err : UV_ECONNRESET);
    } else if (!c->told_down) {
        c->told_down = true;
        if (c->opts.on_disconnect) c->opts.on_disconnect(c->opts.ud, c, err, msg);
    }
}

static void io_fail(h2io *io, int err) {
    grpc_client *c = (grpc_client *)io;
    enter(c);
    conn_lost(c, err, "connection error");
    leave(c);
}

static void io_flushed(h2io *io) {
    grpc_client *c = (grpc_client *)io;
    enter(c);
    if (c->io.ng && !nghttp2_session_want_read(c->io.ng) && !nghttp2_session_want_write(c->io.ng) &&
        h2io_idle(io))
        conn_lost(c, 0, "connection closed after GOAWAY");
    leave(c);
}

static void io_writable(h2io *io, goutq *q) {
    (void)io;
    grpc_cstream *s = GRPC_CONTAINER_OF(q, grpc_cstream, q);
    if (!s->done && s->cbs.on_writable) s->cbs.on_writable(s, s->ud);
}

/* ---------------------------------------------------------------- delivery */

static void consume(grpc_cstream *s, size_t n) {
    grpc_client *c = s->c;
    if (c->io.ng && n) nghttp2_session_consume(c->io.ng, s->stream_id, n);
}

/* Delivers held messages; then the held close, then consumes what was held. */
static void drain_pending(grpc_cstream *s) {
    while (s->pend_head && !s->paused && !s->done) {
        pmsg *m = s->pend_head;
        s->pend_head = m->next;
        if (!s->pend_head) s->pend_tail = NULL;
        if (s->cbs.on_message) s->cbs.on_message(s, m->data, m->len, s->ud);
        free(m);
    }
    if (s->paused && !s->done) return;
    if (s->unconsumed) {
        s->c->in_buffered -= s->unconsumed;
        if (!s->stream_closed) consume(s, s->unconsumed);
        s->unconsumed = 0;
    }
    if (s->close_pending) {
        s->close_pending = false;
        complete(s, s->final_status, s->final_msg);
        maybe_free(s);
    }
}

static int on_msg(void *ud, const uint8_t *msg, size_t len) {
    grpc_cstream *s = ud;
    if (!s->is_stream) {
        if (s->got_resp) return 0; /* extra messages are ignored */
        s->got_resp = true;
        if (s->df.heap_msg == msg) {
            s->resp = s->df.heap_msg; /* keep the assembled buffer: no second copy */
            s->df.heap_msg = NULL;
        } else {
            s->resp = malloc(len ? len : 1);
            if (!s->resp) return 1;
            memcpy(s->resp, msg, len);
        }
        s->resp_len = len;
        return 0;
    }
    if (s->paused || s->pend_head) {
        pmsg *m = malloc(sizeof *m + len);
        if (!m) return 1;
        m->next = NULL;
        m->len = len;
        memcpy(m->data, msg, len);
        if (s->pend_tail)
            s->pend_tail->next = m;
        else
            s->pend_head = m;
        s->pend_tail = m;
        return 0;
    }
    if (s->cbs.on_message) s->cbs.on_message(s, msg, len, s->ud);
    return s->done;
}

static int http_to_grpc(int http) {
    switch (http) {
    case 400:
        return GRPC_STATUS_INTERNAL;
    case 401:
        return GRPC_STATUS_UNAUTHENTICATED;
    case 403:
        return GRPC_STATUS_PERMISSION_DENIED;
    case 404:
        return GRPC_STATUS_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return GRPC_STATUS_UNAVAILABLE;
    default:
        return GRPC_STATUS_UNKNOWN;
    }
}

/* ---------------------------------------------------------------- nghttp2 callbacks */

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
    (void)flags;
    (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS) return 0;
    grpc_cstream *s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (!s) return 0;
    const char *n = (const char *)name, *v = (const char *)value;
    if (namelen == 7 && memcmp(n, ":status", 7) == 0) {
        s->http_status = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            s->http_status = s->http_status * 10 + (v[i] - '0');
    } else if (namelen == 11 && memcmp(n, "grpc-status", 11) == 0) {
        int st = 0;
        for (size_t i = 0; i < valuelen && i < 4; i++)
            st = st * 10 + (v[i] - '0');
        s->grpc_status = st;
    } else if (namelen == 12 && memcmp(n, "grpc-message", 12) == 0) {
        free(s->grpc_message);
        s->grpc_message = grpc_pct_decode(v, valuelen);
    }
    return 0;
}

static void local_fail(grpc_cstream *s, int status, const char *msg) {
    grpc_client *c = s->c;
    s->failed_locally = true;
    if (c->io.ng && !s->stream_closed)
        nghttp2_submit_rst_stream(c->io.ng, NGHTTP2_FLAG_NONE, s->stream_id, NGHTTP2_CANCEL);
    complete(s, status, msg);
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *ud) {
    (void)flags;
    grpc_client *c = ud;
    grpc_cstream *s = nghttp2_session_get_stream_user_data(ng, sid);
    if (!s || s->done || s->failed_locally) {
        nghttp2_session_consume(ng, sid, len);
        return 0;
    }
    /* Bytes are consumed once their messages are delivered; a paused stream holds them. */
    bool hold = s->paused || s->pend_head;
    size_t big = 0;
    int rv = gdeframer_feed(&s->df, data, len, on_msg, s, &big);
    if (hold) {
        s->unconsumed += len;
        c->in_buffered += len;
    } else {
        nghttp2_session_consume(ng, sid, len);
    }
    if (rv == GDF_OK || rv == GDF_STOPPED) return 0;
    char msg[128];
    if (rv == GDF_TOO_LARGE)
        snprintf(msg, sizeof msg, "grpc: received message larger than max (%zu vs. %zu)", big,
                 s->df.max);
    else
        snprintf(msg, sizeof msg, "%s",
                 rv == GDF_COMPRESSED ? "grpc: compressed responses are not supported"
                                      : "grpc: out of memory");
    local_fail(s, rv == GDF_TOO_LARGE ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INTERNAL, msg);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t sid, uint32_t err, void *ud) {
    (void)ud;
    grpc_cstream *s = nghttp2_session_get_stream_user_data(ng, sid);
    if (!s) return 0;
    s->stream_closed = true;
    if (!s->done) {
        int st;
        char buf[96];
        const char *msg = "";
        if (s->grpc_status >= 0) {
            st = s->grpc_status;
            msg = s->grpc_message ? s->grpc_message : "";
            if (!s->is_stream && st == GRPC_STATUS_OK && !s->got_resp) {
                st = GRPC_STATUS_INTERNAL;
                msg = "grpc: no response message";
            }
        } else if (err == NGHTTP2_REFUSED_STREAM) {
            st = GRPC_STATUS_UNAVAILABLE;
            msg = "stream refused by server";
        } else if (err == NGHTTP2_CANCEL) {
            st = GRPC_STATUS_CANCELLED;
            msg = "stream cancelled by server";
        } else if (err != 0) {
            st = GRPC_STATUS_INTERNAL;
            snprintf(buf, sizeof buf, "stream terminated by RST_STREAM with error code: %u", err);
            msg = buf;
        } else if (s->http_status && s->http_status != 200) {
            st = http_to_grpc(s->http_status);
            snprintf(buf, sizeof buf, "unexpected HTTP status code received from server: %d",
                     s->http_status);
            msg = buf;
        } else {
            st = GRPC_STATUS_INTERNAL;
            msg = "server closed the stream without sending trailers";
        }
        if (s->pend_head || s->paused) {
            s->close_pending = true;
            s->final_status = st;
            s->final_msg = strdup(msg);
            /* held bytes can no longer be consumed per stream: give the connection window back */
            if (s->unconsumed) nghttp2_session_consume_connection(ng, s->unconsumed);
            s->c->in_buffered -= s->unconsumed;
            s->unconsumed = 0;
            return 0;
        }
        complete(s, st, msg);
    } else if (s->unconsumed) {
        nghttp2_session_consume_connection(ng, s->unconsumed);
        s->c->in_buffered -= s->unconsumed;
        s->unconsumed = 0;
    }
    maybe_free(s);
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
    (void)ng;
    grpc_client *c = ud;
    if (f->hd.type == NGHTTP2_GOAWAY && !c->goaway) {
        c->goaway = true;
        if (!c->told_down && c->opts.on_disconnect) {
            c->told_down = true;
            c->opts.on_disconnect(c->opts.ud, c, 0, "server sent GOAWAY");
        }
    }
    return 0;
}

static ssize_t on_read_data(nghttp2_session *ng, int32_t sid, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud) {
    (void)ng;
    (void)sid;
    (void)buf;
    (void)ud;
    grpc_cstream *s = GRPC_CONTAINER_OF(src->ptr, grpc_cstream, q);
    ssize_t n = h2io_take_avail(&s->q, length, flags);
    if (s->half_close_pending && (size_t)n == s->q.len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return n;
    }
    if (n == 0) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return n;
}

/* ---------------------------------------------------------------- loop callbacks */

static void on_idle(uv_idle_t *h) {
    grpc_client *c = h->data;
    uv_idle_stop(h);
    enter(c);
    h2io_flush(&c->io);
    leave(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)hint;
    grpc_client *c = h->data;
    *buf = uv_buf_init((char *)c->rbuf, GRPC_CLIENT_READ_BUF);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    grpc_client *c = st->data;
    if (nread == 0 || c->dead) return;
    enter(c);
    if (nread < 0) {
        conn_lost(c, (int)nread,
                  nread == UV_EOF ? "connection closed by server" : uv_strerror((int)nread));
    } else if (h2io_recv(&c->io, (const uint8_t *)buf->base, (size_t)nread) != 0) {
        conn_lost(c, UV_EPROTO, "HTTP/2 protocol error");
    } else {
        h2io_flush(&c->io);
    }
    leave(c);
}

static void on_connected(uv_connect_t *req, int status) {
    grpc_client *c = req->data;
    if (c->dead) return;
    enter(c);
    if (status < 0) {
        conn_lost(c, status, uv_strerror(status));
    } else {
        uv_tcp_nodelay(&c->tcp, 1);
        c->io.stream = (uv_stream_t *)&c->tcp;
        c->connected = true;
        if (c->opts.on_connect) c->opts.on_connect(c->opts.ud, c, 0);
        if (!c->dead && !c->free_requested) {
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
            h2io_flush(&c->io);
        }
    }
    leave(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    grpc_client *c = req->data;
    c->gai_pending = false;
    if (c->freed) {
        if (res) uv_freeaddrinfo(res);
        on_handle_closed((uv_handle_t *)&c->idle); /* the request counted as a pending close */
        return;
    }
    if (c->dead) { /* aborted while resolving: the socket is closed already */
        if (res) uv_freeaddrinfo(res);
        return;
    }
    enter(c);
    if (status < 0 || !res) {
        conn_lost(c, status < 0 ? status : UV_EAI_NONAME, "cannot resolve host");
    } else {
        int rv = uv_tcp_connect(&c->creq, &c->tcp, res->ai_addr, on_connected);
        if (rv < 0) conn_lost(c, rv, uv_strerror(rv));
    }
    if (res) uv_freeaddrinfo(res);
    leave(c);
}

static void on_timer(uv_timer_t *t) {
    grpc_client *c = t->data;
    uint64_t now = uv_now(c->loop);
    enter(c);
    bool any = false;
    for (glist *l = c->calls.next; l != &c->calls && !c->dead;) {
        grpc_cstream *s = GRPC_CONTAINER_OF(l, grpc_cstream, node);
        l = l->next;
        if (!s->deadline || s->done) continue;
        if (s->deadline <= now) {
            local_fail(s, GRPC_STATUS_DEADLINE_EXCEEDED, "context deadline exceeded");
            schedule(&c->io);
            if (c->free_requested) break;
            l = c->calls.next; /* the callback may have changed the list */
        } else {
            any = true;
        }
    }
    if (!any) {
        uv_timer_stop(&c->timer);
        c->timer_on = false;
    }
    leave(c);
}

/* ---------------------------------------------------------------- lifecycle */

static nghttp2_session_callbacks *client_callbacks(void) {
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) return NULL;
    h2io_set_send_callbacks(cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    return cbs;
}

grpc_client *grpc_client_new(uv_loop_t *loop, const char *target, const grpc_client_opts *opts) {
    if (!loop || !target) return NULL;
    if (strncmp(target, "http://", 7) == 0) target += 7;
    const char *colon = strrchr(target, ':');
    if (!colon || colon == target || !colon[1]) return NULL;
    grpc_client *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    grpc_ignore_sigpipe();
    h2io_init(&c->io);
    c->loop = loop;
    if (opts) c->opts = *opts;
    grpc_client_opts *o = &c->opts;
    if (!o->max_recv_msg_size) o->max_recv_msg_size = 64u << 20;
    if (!o->initial_window_size) o->initial_window_size = 4u << 20;
    if (o->initial_window_size > 0x7fffffff) o->initial_window_size = 0x7fffffff;
    if (!o->conn_window_size) o->conn_window_size = 64u << 20;
    if (o->conn_window_size > 0x7fffffff) o->conn_window_size = 0x7fffffff;
    if (!o->high_water) o->high_water = 1u << 20;
    const char *h = target;
    size_t hl = (size_t)(colon - target);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    c->host = strndup(h, hl);
    c->port = strdup(colon + 1);
    c->authority = strdup(target);
    c->rbuf = malloc(GRPC_CLIENT_READ_BUF);
    glist_init(&c->calls);
    c->io.schedule = schedule;
    c->io.fail = io_fail;
    c->io.writable = io_writable;
    c->io.flushed = io_flushed;
    nghttp2_session_callbacks *cbs = client_callbacks();
    nghttp2_option *ngopt = NULL;
    bool ok =
        c->host && c->port && c->authority && c->rbuf && cbs && nghttp2_option_new(&ngopt) == 0;
    if (ok) {
        nghttp2_option_set_no_auto_window_update(ngopt, 1);
        nghttp2_option_set_no_closed_streams(ngopt, 1); /* see grpc_server_new */
        ok = nghttp2_session_client_new2(&c->io.ng, cbs, c, ngopt) == 0;
    }
    if (cbs) nghttp2_session_callbacks_del(cbs);
    if (ngopt) nghttp2_option_del(ngopt);
    if (ok) {
        nghttp2_settings_entry iv[] = {
            {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
            {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, o->initial_window_size},
        };
        ok = nghttp2_submit_settings(c->io.ng, NGHTTP2_FLAG_NONE, iv, 2) == 0 &&
             nghttp2_session_set_local_window_size(c->io.ng, NGHTTP2_FLAG_NONE, 0,
                                                   (int32_t)o->conn_window_size) == 0;
    }
    c->creq.data = c;
    c->gai.data = c;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (!ok || uv_getaddrinfo(loop, &c->gai, on_resolved, c->host, c->port, &hints) < 0) {
        if (c->io.ng) nghttp2_session_del(c->io.ng);
        free(c->host);
        free(c->port);
        free(c->authority);
        free(c->rbuf);
        free(c);
        return NULL;
    }
    c->gai_pending = true;
    uv_idle_init(loop, &c->idle);
    c->idle.data = c;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->tcp_inited = true;
    return c;
}

static void client_do_free(grpc_client *c) {
    c->freed = true;
    c->dead = true;
    c->io.dead = true;
    fail_all(c, GRPC_STATUS_CANCELLED, "client closed");
    if (c->io.ng) {
        nghttp2_session_del(c->io.ng);
        c->io.ng = NULL;
    }
    if (c->gai_pending) { /* on_resolved still runs (maybe with UV_ECANCELED) */
        uv_cancel((uv_req_t *)&c->gai);
        c->closes_pending++;
    }
    c->closes_pending += 2;
    uv_close((uv_handle_t *)&c->idle, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
        c->closes_pending++;
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    }
}

void grpc_client_free(grpc_client *c) {
    if (!c || c->freed) return;
    if (c->busy || c->io.depth) {
        c->free_requested = true;
        return;
    }
    client_do_free(c);
}

int grpc_client_is_connected(const grpc_client *c) {
    return c->connected && !c->dead && !c->goaway;
}

static void do_abort(grpc_client *c) {
    c->abort_requested = false;
    if (c->dead || c->freed || c->free_requested) return;
    c->reset_on_close = true;
    conn_lost(c, UV_ECONNABORTED, "connection reset: aborted by the client");
}

void grpc_client_abort(grpc_client *c) {
    if (!c || c->dead || c->freed || c->free_requested) return;
    if (c->busy || c->io.depth) { /* inside one of our callbacks: see leave() */
        c->abort_requested = true;
        return;
    }
    enter(c); /* a grpc_client_free from the callbacks below waits for leave() */
    do_abort(c);
    leave(c);
}

/* ---------------------------------------------------------------- calls */

static grpc_cstream *new_call(grpc_client *c) {
    grpc_cstream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->c = c;
    s->grpc_status = -1;
    s->df.max = c->opts.max_recv_msg_size;
    goutq_init(&s->q, &c->io, c->opts.high_water, c->opts.high_water / 4);
    return s;
}

static int submit(grpc_client *c, grpc_cstream *s, const char *path, const grpc_metadata *md,
                  size_t n_md, uint32_t timeout_ms) {
    nghttp2_nv stackv[16];
    size_t cap = 8 + n_md;
    nghttp2_nv *nv = cap <= 16 ? stackv : malloc(cap * sizeof *nv);
    if (!nv) return GRPC_ENOMEM;
    size_t k = 0;
#define NV(n, v)                                                                                   \
    nv[k++] = (nghttp2_nv) {                                                                       \
        (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), 0                                    \
    }
    char tmo[16];
    NV(":method", "POST");
    NV(":scheme", "http");
    NV(":path", path);
    NV(":authority", c->authority);
    NV("content-type", "application/grpc");
    NV("te", "trailers");
    NV("user-agent", "relistlab-grpc-c/0.1");
    if (timeout_ms) {
        grpc_format_timeout(timeout_ms, tmo);
        NV("grpc-timeout", tmo);
    }
    for (size_t i = 0; i < n_md; i++)
        NV(md[i].name, md[i].value);
#undef NV
    nghttp2_data_provider dp = {.source.ptr = &s->q, .read_callback = on_read_data};
    int32_t sid = nghttp2_submit_request(c->io.ng, NULL, nv, k, &dp, s);
    if (nv != stackv) free(nv);
    if (sid < 0) return sid == NGHTTP2_ERR_NOMEM ? GRPC_ENOMEM : GRPC_EUNAVAILABLE;
    s->stream_id = sid;
    glist_push(&c->calls, &s->node);
    if (timeout_ms) {
        s->deadline = uv_now(c->loop) + timeout_ms;
        if (!c->timer_on) {
            c->timer_on = true;
            uv_timer_start(&c->timer, on_timer, 5, 5);
        }
    }
    schedule(&c->io);
    return 0;
}

static bool usable(const grpc_client *c) {
    return c && !c->dead && !c->goaway && !c->free_requested && c->io.ng;
}

int grpc_client_unary_md(grpc_client *c, const char *path, const grpc_metadata *md, size_t n_md,
                         const void *req, size_t len, uint32_t timeout_ms, grpc_unary_cb cb,
                         void *ud) {
    if (!usable(c)) return GRPC_EUNAVAILABLE;
    if (!cb || !path || len > 0xffffffffu) return GRPC_EINVAL;
    grpc_cstream *s = new_call(c);
    if (!s) return GRPC_ENOMEM;
    s->cb = cb;
    s->ud = ud;
    s->half_close_pending = true;
    if (goutq_prefix(&s->q, len) < 0 || (len && goutq_append(&s->q, req, len) < 0)) {
        call_free(s);
        return GRPC_ENOMEM;
    }
    int rv = submit(c, s, path, md, n_md, timeout_ms);
    if (rv) call_free(s);
    return rv;
}

int grpc_client_unary(grpc_client *c, const char *path, const void *req, size_t len,
                      uint32_t timeout_ms, grpc_unary_cb cb, void *ud) {
    return grpc_client_unary_md(c, path, NULL, 0, req, len, timeout_ms, cb, ud);
}

grpc_cstream *grpc_client_stream_open(grpc_client *c, const char *path, const grpc_metadata *md,
                                      size_t n_md, const grpc_cstream_cbs *cbs, void *ud) {
    if (!usable(c) || !path || !cbs) return NULL;
    grpc_cstream *s = new_call(c);
    if (!s) return NULL;
    s->is_stream = true;
    s->cbs = *cbs;
    s->ud = ud;
    if (submit(c, s, path, md, n_md, 0) != 0) {
        call_free(s);
        return NULL;
    }
    return s;
}

static void kick(grpc_cstream *s) {
    grpc_client *c = s->c;
    if (s->deferred && c->io.ng && !s->stream_closed) {
        s->deferred = false;
        nghttp2_session_resume_data(c->io.ng, s->stream_id);
    }
    schedule(&c->io);
}

int grpc_cstream_send(grpc_cstream *s, const void *msg, size_t len) {
    if (s->done || s->stream_closed || s->c->dead) return GRPC_ECANCELLED;
    if (s->half_close_pending || len > 0xffffffffu) return GRPC_EINVAL;
    int rv = goutq_prefix(&s->q, len);
    if (rv >= 0 && len) rv = goutq_append(&s->q, msg, len);
    if (rv < 0) return rv;
    if (rv == GRPC_SEND_FULL) s->q.want_writable = true;
    kick(s);
    return rv;
}

int grpc_cstream_half_close(grpc_cstream *s) {
    if (s->done || s->stream_closed || s->c->dead) return GRPC_ECANCELLED;
    s->half_close_pending = true;
    s->deferred = true; /* ask the provider again even if it is not deferred right now */
    kick(s);
    return 0;
}

void grpc_cstream_cancel(grpc_cstream *s) {
    if (s->done) return;
    s->done = true;
    grpc_client *c = s->c;
    if (s->stream_closed || !c->io.ng) {
        call_free(s);
        return;
    }
    goutq_clear(&s->q);
    nghttp2_submit_rst_stream(c->io.ng, NGHTTP2_FLAG_NONE, s->stream_id, NGHTTP2_CANCEL);
    schedule(&c->io);
}

void grpc_cstream_pause(grpc_cstream *s) {
    s->paused = true;
}

void grpc_cstream_resume(grpc_cstream *s) {
    if (!s->paused) return;
    s->paused = false;
    grpc_client *c = s->c;
    enter(c);
    drain_pending(s);
    schedule(&c->io);
    leave(c);
}

void *grpc_cstream_user_data(const grpc_cstream *s) {
    return s->ud;
}

void grpc_client_get_stats(const grpc_client *c, grpc_client_stats *out) {
    out->bytes_in = c->io.bytes_in;
    out->bytes_out = c->io.bytes_out;
    out->in_buffered = c->in_buffered;
    uint32_t n = 0;
    for (const glist *l = c->calls.next; l != &c->calls; l = l->next)
        n++;
    out->calls_active = n;
}
