/* grpc_client_call.c — the calls on a client connection (grpc_client.c owns the connection):
 * unary calls and bidi streams as nghttp2 streams, their deadlines, and the delivery of what
 * the server sends. Calls made before the TCP connection is up are submitted to the nghttp2
 * session at once and leave with the first flush after connect. Inbound flow control is
 * manual: bytes are consumed (WINDOW_UPDATE) once their messages are delivered, and a paused
 * stream keeps its bytes unconsumed so the server holds back (bounded by our stream window).
 * Large unary responses (>= GRPC_CLIENT_BIG_MIN) are assembled in one reusable buffer per
 * connection instead of a fresh malloc each (big_feed), and once a connection has seen one,
 * its unary calls get a stream window that covers such a response (on_frame_send).
 * A call is freed once the user was told (or cancelled it) AND nghttp2 is done with the
 * stream; on connection loss grpc_client_fail_calls() ends them all at once. */
#include "grpc_client_internal.h"

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
    /* a large unary response assembled in the connection's reusable buffer (big_feed) */
    uint8_t *big; /* while assembling; then it is resp, with resp_big set */
    size_t big_cap, big_len, big_got;
    bool resp_big;
    pmsg *pend_head, *pend_tail;
    size_t unconsumed;
    int final_status;
    char *final_msg;
};

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
    if (s->big)
        grpc_client_big_return(s->c, s->big, s->big_cap);
    else if (s->resp_big)
        grpc_client_big_return(s->c, s->resp, s->big_cap);
    else
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

/* ---------------------------------------------------------------- connection hooks */

void grpc_client_fail_calls(grpc_client *c, int status, const char *msg) {
    glist *l;
    while ((l = glist_pop(&c->calls))) {
        grpc_cstream *s = GRPC_CONTAINER_OF(l, grpc_cstream, node);
        s->stream_closed = true;
        complete(s, status, msg);
        s->done = true;
        call_free(s);
    }
}

void grpc_client_call_writable(h2io *io, goutq *q) {
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

/* A unary response of GRPC_CLIENT_BIG_MIN bytes or more whose 5-byte prefix starts this
 * input is assembled in the connection's reusable buffer rather than by the de-framer (which
 * mallocs each message: ~100 MB freshly mapped and faulted in per large LIST). Returns how
 * many bytes of data it took (0: not this path; the de-framer takes the rest). A prefix split
 * across inputs, a compressed or oversized message, or a buffer already lent to another call
 * on this connection leave the message to the de-framer: the same result, just slower. */
static size_t big_feed(grpc_cstream *s, const uint8_t *data, size_t len) {
    size_t taken = 0;
    if (!s->big) {
        if (s->got_resp || gdeframer_partial(&s->df) || len < 5 || data[0] != 0) return 0;
        size_t mlen =
            ((size_t)data[1] << 24) | ((size_t)data[2] << 16) | ((size_t)data[3] << 8) | data[4];
        if (mlen < GRPC_CLIENT_BIG_MIN || mlen > s->df.max || mlen <= len - 5) return 0;
        if (mlen > s->c->big_seen) s->c->big_seen = mlen;
        s->big = grpc_client_big_take(s->c, mlen, &s->big_cap);
        if (!s->big) return 0;
        s->big_len = mlen;
        s->big_got = 0;
        taken = 5;
    }
    size_t k = s->big_len - s->big_got;
    if (k > len - taken) k = len - taken;
    memcpy(s->big + s->big_got, data + taken, k);
    s->big_got += k;
    if (s->big_got == s->big_len) {
        s->got_resp = true;
        s->resp = s->big;
        s->resp_len = s->big_len;
        s->resp_big = true;
        s->big = NULL;
    }
    return taken + k;
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
    size_t big = 0, off = s->is_stream ? 0 : big_feed(s, data, len);
    int rv = off < len ? gdeframer_feed(&s->df, data + off, len - off, on_msg, s, &big) : GDF_OK;
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

/* ---------------------------------------------------------------- deadlines */

static void on_timer(uv_timer_t *t) {
    grpc_client *c = t->data;
    uint64_t now = uv_now(c->loop);
    grpc_client_enter(c);
    bool any = false;
    for (glist *l = c->calls.next; l != &c->calls && !c->dead;) {
        grpc_cstream *s = GRPC_CONTAINER_OF(l, grpc_cstream, node);
        l = l->next;
        if (!s->deadline || s->done) continue;
        if (s->deadline <= now) {
            local_fail(s, GRPC_STATUS_DEADLINE_EXCEEDED, "context deadline exceeded");
            grpc_client_schedule(&c->io);
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
    grpc_client_leave(c);
}

/* A unary call's response is consumed as it arrives (assembled into one buffer bounded by
 * max_recv_msg_size), so its stream window protects no memory; it only makes the server wait
 * for WINDOW_UPDATEs. A server building a large response synchronously (kvstore's LIST) reads
 * none until it is done, so with the 4 MiB default it stalls after 4 MiB and the rest goes out
 * only afterwards. Once a connection has received a unary response of GRPC_CLIENT_BIG_MIN
 * bytes or more, each unary call's stream window is raised, as its HEADERS go out (nghttp2
 * knows the stream only then), to twice the largest seen (at most max_recv_msg_size plus
 * framing), and the connection window to the default plus that grant (never lowered again:
 * it also caps what paused streams may hold, now by that much more on this connection). The
 * WINDOW_UPDATE goes out right behind the request, so the server has the credit before it
 * starts. Measured (kvbench, LIST of 100,000 x 1 KiB, kvstore): p50 89 -> 69-77 ms. */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
    grpc_client *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    if (c->big_seen < GRPC_CLIENT_BIG_MIN) return 0;
    grpc_cstream *s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (!s || s->is_stream) return 0;
    size_t max = c->opts.max_recv_msg_size + (64u << 10), grant = 2 * c->big_seen + (64u << 10);
    if (grant > max) grant = max;
    if (grant > 0x7fffffff) grant = 0x7fffffff;
    if (grant <= c->opts.initial_window_size) return 0;
    if (nghttp2_session_set_local_window_size(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                                              (int32_t)grant) != 0)
        return 0; /* only slower */
    size_t conn = c->opts.conn_window_size + grant;
    if (conn > 0x7fffffff) conn = 0x7fffffff;
    if ((int32_t)conn > c->conn_window &&
        nghttp2_session_set_local_window_size(ng, NGHTTP2_FLAG_NONE, 0, (int32_t)conn) == 0)
        c->conn_window = (int32_t)conn;
    return 0;
}

void grpc_client_set_call_callbacks(nghttp2_session_callbacks *cbs) {
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
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
    grpc_client_schedule(&c->io);
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
    grpc_client_schedule(&c->io);
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
    grpc_client_schedule(&c->io);
}

void grpc_cstream_pause(grpc_cstream *s) {
    s->paused = true;
}

void grpc_cstream_resume(grpc_cstream *s) {
    if (!s->paused) return;
    s->paused = false;
    grpc_client *c = s->c;
    grpc_client_enter(c);
    drain_pending(s);
    grpc_client_schedule(&c->io);
    grpc_client_leave(c);
}

void *grpc_cstream_user_data(const grpc_cstream *s) {
    return s->ud;
}
