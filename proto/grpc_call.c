/* grpc_call.c — server-side streams: request headers -> method dispatch (or an immediate
 * Trailers-Only / HTTP error), inbound de-framing with the receive-size check and prompt
 * WINDOW_UPDATE (we consume as we de-frame: at most one partial message is held per stream),
 * the response data provider (deferred while the queue is empty, resumed on send; trailers
 * submitted from inside the read callback so they follow the data), deadlines, cancellation.
 * Lifetime: a call is freed when the stream is closed (or detached) AND the application no
 * longer owns it (it completed it, or never got it). See grpc.h. */
#include "grpc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MD 64

static nghttp2_nv mknv(const char *name, const char *value) {
    nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                     NGHTTP2_NV_FLAG_NONE};
    return nv;
}

static void call_free(grpc_call *call) {
    glist_remove(&call->dl_node);
    glist_remove(&call->node);
    glist_remove(&call->ready_node);
    free(call->req_heap);
    goutq_clear(&call->q);
    gdeframer_free(&call->df);
    for (size_t i = 0; i < call->n_md; i++) {
        free((char *)call->md[i].name);
        free((char *)call->md[i].value);
    }
    free(call->md);
    free(call->path);
    free(call->status_msg);
    grpc_conn *conn = call->conn;
    free(call);
    grpc_conn_unref(conn);
}

static void kick(grpc_call *call) {
    grpc_conn *conn = call->conn;
    if (call->deferred && conn->io.ng) {
        call->deferred = false;
        nghttp2_session_resume_data(conn->io.ng, call->stream_id);
    }
    grpc_conn_schedule(&conn->io);
}

/* Tells the application once that the call is over for the transport. */
static void notify_cancel(grpc_call *call) {
    if (call->cancelled) return;
    call->cancelled = true;
    goutq_clear(&call->q);
    if (call->user_owned && call->method && call->method->on_cancel)
        call->method->on_cancel(call, call->ud); /* may complete (and free) the call */
}

/* The transport side is gone (stream closed or connection closed). */
static void stream_gone(grpc_call *call) {
    call->stream_closed = true;
    if (call->user_owned && call->conn->srv) call->conn->srv->stats.calls_active--;
    glist_remove(&call->node);
    glist_remove(&call->dl_node);
    goutq_clear(&call->q);
    call->q.io = NULL;
    gdeframer_free(&call->df);
    if (!call->user_owned) {
        call_free(call);
        return;
    }
    notify_cancel(call);
}

void grpc_call_detach(grpc_call *call) {
    stream_gone(call);
}

static ssize_t on_read_data(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud) {
    (void)buf;
    (void)ud;
    grpc_call *call = GRPC_CONTAINER_OF(src->ptr, grpc_call, q);
    ssize_t n = h2io_take_avail(&call->q, length, flags);
    if (call->trailers_pending && (size_t)n == call->q.len) {
        nghttp2_nv nv[2] = {mknv("grpc-status", call->status_str), mknv("grpc-message", "")};
        size_t nn = 1;
        if (call->status_msg && *call->status_msg) {
            nv[1] = mknv("grpc-message", call->status_msg);
            nn = 2;
        }
        call->trailers_pending = false;
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        /* a failure here concerns this stream only: reset it, keep the connection */
        if (nghttp2_submit_trailer(s, sid, nv, nn) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        return n;
    }
    if (n == 0) {
        call->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return n;
}

static int ensure_headers(grpc_call *call) {
    if (call->headers_sent) return 0;
    nghttp2_nv nv[2] = {mknv(":status", "200"), mknv("content-type", "application/grpc")};
    nghttp2_data_provider dp = {.source.ptr = &call->q, .read_callback = on_read_data};
    if (nghttp2_submit_response(call->conn->io.ng, call->stream_id, nv, 2, &dp) != 0) return -1;
    call->headers_sent = true;
    return 0;
}

/* Ends the stream with a gRPC status (trailers, or Trailers-Only before any message). */
static void submit_status(grpc_call *call, int status, const char *message) {
    if (call->finished || call->stream_closed) return;
    call->finished = true;
    glist_remove(&call->dl_node);
    snprintf(call->status_str, sizeof call->status_str, "%d", status);
    free(call->status_msg);
    call->status_msg = message && *message ? grpc_pct_encode(message) : NULL;
    nghttp2_session *ng = call->conn->io.ng;
    if (!call->headers_sent) {
        nghttp2_nv nv[4] = {mknv(":status", "200"), mknv("content-type", "application/grpc"),
                            mknv("grpc-status", call->status_str), mknv("grpc-message", "")};
        size_t nn = 3;
        if (call->status_msg) {
            nv[3] = mknv("grpc-message", call->status_msg);
            nn = 4;
        }
        call->headers_sent = true;
        if (nghttp2_submit_response(ng, call->stream_id, nv, nn, NULL) != 0)
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, call->stream_id,
                                      NGHTTP2_INTERNAL_ERROR);
    } else {
        call->trailers_pending = true;
        call->deferred = true; /* make sure the provider is asked again */
    }
    kick(call);
}

static void http_error(grpc_call *call, const char *code, const char *gmsg) {
    call->finished = true;
    call->discard = true;
    call->headers_sent = true;
    nghttp2_nv nv[4] = {mknv(":status", code), mknv("content-type", "application/grpc"),
                        mknv("grpc-status", "2"), mknv("grpc-message", gmsg)};
    char *enc = grpc_pct_encode(gmsg);
    if (enc) nv[3] = mknv("grpc-message", enc);
    nghttp2_submit_response(call->conn->io.ng, call->stream_id, nv, 4, NULL);
    free(enc);
    grpc_conn_schedule(&call->conn->io);
}

static const grpc_method *lookup(grpc_server *srv, const char *path, char *why, size_t whylen) {
    for (size_t i = 0; i < srv->n_methods; i++)
        if (strcmp(srv->methods[i].path, path) == 0) return &srv->methods[i];
    /* grpc-go wording: "unknown service S" / "unknown method M for service S" */
    const char *slash = path[0] == '/' ? strchr(path + 1, '/') : NULL;
    if (!slash) {
        snprintf(why, whylen, "malformed method name: \"%s\"", path);
        return NULL;
    }
    size_t svclen = (size_t)(slash - path - 1);
    bool known = false;
    for (size_t i = 0; i < srv->n_methods && !known; i++) {
        const char *p = srv->methods[i].path;
        known = strncmp(p, path, svclen + 2) == 0;
    }
    if (known)
        snprintf(why, whylen, "unknown method %s for service %.*s", slash + 1, (int)svclen,
                 path + 1);
    else
        snprintf(why, whylen, "unknown service %.*s", (int)svclen, path + 1);
    return NULL;
}

static void dispatch(grpc_call *call) {
    grpc_conn *conn = call->conn;
    grpc_server *srv = conn->srv;
    call->dispatched = true;
    if (!call->is_post) {
        http_error(call, "405", "invalid gRPC request method");
        return;
    }
    if (!call->is_grpc) {
        http_error(call, "415", "invalid gRPC request content-type");
        return;
    }
    char why[256];
    const grpc_method *m = lookup(srv, call->has_path ? call->path : "", why, sizeof why);
    if (!m) {
        call->discard = true;
        submit_status(call, GRPC_STATUS_UNIMPLEMENTED, why);
        return;
    }
    call->method = m;
    call->ud = m->ud;
    call->df.max = srv->opts.max_recv_msg_size;
    srv->stats.calls_started++;
    if (call->deadline) {
        glist_push(&srv->deadlines, &call->dl_node);
        grpc_server_timer_need(srv);
    }
    if (m->kind == GRPC_BIDI_STREAM) {
        call->user_owned = true;
        srv->stats.calls_active++;
        if (m->on_open) m->on_open(call, call->ud);
    }
}

static void end_of_request(grpc_call *call) {
    if (call->remote_closed) return;
    call->remote_closed = true;
    if (!call->method || call->finished || call->discard) return;
    if (call->method->kind == GRPC_UNARY) {
        if (!call->got_msg) {
            call->discard = true;
            submit_status(call, GRPC_STATUS_INTERNAL,
                          gdeframer_partial(&call->df) ? "grpc: truncated request message"
                                                       : "grpc: no request message");
        }
        return;
    }
    if (call->user_owned && !call->cancelled && call->method->on_half_close)
        call->method->on_half_close(call, call->ud);
}

static int on_message(void *ud, const uint8_t *msg, size_t len) {
    grpc_call *call = ud;
    call->conn->msgs_in++;
    if (call->method->kind == GRPC_UNARY) {
        call->got_msg = true;
        call->discard = true;           /* further messages on a unary call are ignored */
        if (call->df.heap_msg == msg) { /* assembled across chunks: keep the buffer */
            call->req_heap = call->df.heap_msg;
            call->df.heap_msg = NULL;
        }
        call->req = msg;
        call->req_len = len;
        glist_push(&call->conn->ready, &call->ready_node);
        return 1;
    }
    if (call->method->on_message) call->method->on_message(call, msg, len, call->ud);
    return call->finished || call->cancelled || !call->user_owned;
}

/* Unary handlers run here, after the recv that completed their requests, in arrival order:
 * outside nghttp2, so a handler may flush (grpc_call_flush). A call reset before this point
 * was freed and unlinked (call_free); the user never sees it. */
void grpc_conn_dispatch_ready(grpc_conn *conn) {
    glist *l;
    while (conn->srv && (l = glist_pop(&conn->ready))) {
        grpc_call *call = GRPC_CONTAINER_OF(l, grpc_call, ready_node);
        if (call->finished || call->stream_closed) continue; /* e.g. its deadline passed */
        uint8_t *heap = call->req_heap;
        call->req_heap = NULL;
        call->user_owned = true;
        conn->srv->stats.calls_active++;
        call->method->on_unary(call, call->req, call->req_len, call->ud);
        free(heap); /* the call may be gone: only the local copy is used */
    }
}

/* ---------------------------------------------------------------- nghttp2 callbacks */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    grpc_conn *conn = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    grpc_call *call = calloc(1, sizeof *call);
    if (!call) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    call->conn = conn;
    conn->refs++;
    conn->calls_started++;
    call->stream_id = f->hd.stream_id;
    goutq_init(&call->q, &conn->io, conn->srv->opts.high_water, conn->srv->opts.low_water);
    glist_push(&conn->calls, &call->node);
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, call);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
    (void)flags;
    (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    grpc_call *call = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!call) return 0;
    const char *n = (const char *)name, *v = (const char *)value;
    if (namelen == 7 && memcmp(n, ":method", 7) == 0) {
        call->is_post = valuelen == 4 && memcmp(v, "POST", 4) == 0;
    } else if (namelen == 5 && memcmp(n, ":path", 5) == 0) {
        free(call->path);
        call->path = strndup(v, valuelen);
        call->has_path = call->path != NULL;
    } else if (namelen == 12 && memcmp(n, "content-type", 12) == 0) {
        call->is_grpc = valuelen >= 16 && memcmp(v, "application/grpc", 16) == 0 &&
                        (valuelen == 16 || v[16] == '+' || v[16] == ';');
    } else if (namelen == 12 && memcmp(n, "grpc-timeout", 12) == 0) {
        int64_t ms = grpc_parse_timeout(v, valuelen);
        if (ms >= 0) call->deadline = uv_now(call->conn->srv->loop) + (uint64_t)ms;
    } else if (namelen > 0 && n[0] != ':' && call->n_md < MAX_MD) {
        if (call->n_md == call->cap_md) {
            size_t cap = call->cap_md ? call->cap_md * 2 : 8;
            grpc_metadata *md = realloc(call->md, cap * sizeof *md);
            if (!md) return 0;
            call->md = md;
            call->cap_md = cap;
        }
        char *kn = strndup(n, namelen), *kv = strndup(v, valuelen);
        if (!kn || !kv) {
            free(kn);
            free(kv);
            return 0;
        }
        call->md[call->n_md++] = (grpc_metadata){kn, kv};
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
    grpc_call *call = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!call) return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) dispatch(call);
    if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !call->stream_closed) end_of_request(call);
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *ud) {
    (void)flags;
    (void)ud;
    grpc_call *call = nghttp2_session_get_stream_user_data(s, sid);
    nghttp2_session_consume(s, sid, len);
    if (!call || call->discard || call->finished || !call->method) return 0;
    size_t big = 0;
    int rv = gdeframer_feed(&call->df, data, len, on_message, call, &big);
    if (rv == GDF_OK || rv == GDF_STOPPED) return 0;
    call->discard = true;
    gdeframer_free(&call->df);
    bool owned = call->user_owned;
    char msg[128];
    if (rv == GDF_TOO_LARGE) {
        snprintf(msg, sizeof msg, "grpc: received message larger than max (%zu vs. %zu)", big,
                 call->df.max);
        submit_status(call, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
    } else if (rv == GDF_COMPRESSED) {
        submit_status(call, GRPC_STATUS_UNIMPLEMENTED,
                      "grpc: compressed messages are not supported");
    } else {
        submit_status(call, GRPC_STATUS_INTERNAL, "grpc: out of memory");
    }
    if (owned) notify_cancel(call);
    return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    (void)ud;
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    grpc_call *call = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    /* Like grpc-go: once our side ended, tell a client still sending to stop. */
    if (call && !call->remote_closed)
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t err, void *ud) {
    (void)err;
    (void)ud;
    grpc_call *call = nghttp2_session_get_stream_user_data(s, sid);
    if (!call) return 0;
    nghttp2_session_set_stream_user_data(s, sid, NULL);
    stream_gone(call);
    return 0;
}

void grpc_server_set_callbacks(nghttp2_session_callbacks *cbs) {
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
}

void grpc_call_writable(h2io *io, goutq *q) {
    (void)io;
    grpc_call *call = GRPC_CONTAINER_OF(q, grpc_call, q);
    if (call->user_owned && !call->cancelled && !call->finished && call->method &&
        call->method->on_writable)
        call->method->on_writable(call, call->ud);
}

void grpc_call_deadline_tick(grpc_server *srv, uint64_t now) {
    glist *l = srv->deadlines.next;
    while (l != &srv->deadlines) {
        glist *next = l->next;
        grpc_call *call = GRPC_CONTAINER_OF(l, grpc_call, dl_node);
        if (call->deadline <= now) {
            glist_remove(l);
            /* the handler may complete calls inside on_cancel: restart from the head */
            submit_status(call, GRPC_STATUS_DEADLINE_EXCEEDED, "context deadline exceeded");
            notify_cancel(call);
            next = srv->deadlines.next;
        }
        l = next;
    }
}

/* ---------------------------------------------------------------- public call API */

grpc_conn *grpc_call_conn(const grpc_call *call) {
    return call->conn;
}
const char *grpc_call_peer(const grpc_call *call) {
    return call->conn->peer;
}
const char *grpc_call_path(const grpc_call *call) {
    return call->path ? call->path : "";
}
const char *grpc_call_metadata(const grpc_call *call, const char *name) {
    for (size_t i = 0; i < call->n_md; i++)
        if (strcmp(call->md[i].name, name) == 0) return call->md[i].value;
    return NULL;
}
uint64_t grpc_call_deadline(const grpc_call *call) {
    return call->deadline;
}
int grpc_call_is_cancelled(const grpc_call *call) {
    return call->cancelled;
}
void *grpc_call_user_data(const grpc_call *call) {
    return call->ud;
}
void grpc_call_set_user_data(grpc_call *call, void *ud) {
    call->ud = ud;
}
size_t grpc_call_out_buffered(const grpc_call *call) {
    return call->q.len;
}

static int send_check(grpc_call *call) {
    if (!call->user_owned) return GRPC_EINVAL;
    if (call->cancelled || call->stream_closed) return GRPC_ECANCELLED;
    if (call->finished) return GRPC_EINVAL;
    if (ensure_headers(call) != 0) return GRPC_ENOMEM;
    return 0;
}

static int send_result(grpc_call *call, int rv) {
    if (rv == GRPC_SEND_FULL) call->q.want_writable = true;
    kick(call);
    return rv;
}

int grpc_call_send_begin(grpc_call *call, size_t total_len) {
    int rv = send_check(call);
    if (rv) return rv;
    if (call->q.msg_left || total_len > 0xffffffffu) return GRPC_EINVAL;
    rv = goutq_prefix(&call->q, total_len);
    if (rv < 0) return rv;
    call->q.msg_left = total_len;
    call->conn->msgs_out++;
    return send_result(call, rv);
}

int grpc_call_send_chunk(grpc_call *call, const void *p, size_t n) {
    int rv = send_check(call);
    if (rv) return rv;
    if (n > call->q.msg_left) return GRPC_EINVAL;
    rv = goutq_append(&call->q, p, n);
    if (rv < 0) return rv;
    call->q.msg_left -= n;
    return send_result(call, rv);
}

int grpc_call_send_chunk_owned(grpc_call *call, const void *p, size_t n, void (*release)(void *ud),
                               void *ud) {
    int rv = send_check(call);
    if (!rv && n > call->q.msg_left) rv = GRPC_EINVAL;
    if (rv) {
        if (release) release(ud);
        return rv;
    }
    if (n == 0) {
        if (release) release(ud);
        return send_result(call, goutq_state(&call->q));
    }
    rv = goutq_append_owned(&call->q, p, n, release, ud);
    if (rv < 0) return rv;
    call->q.msg_left -= n;
    return send_result(call, rv);
}

int grpc_call_send(grpc_call *call, const void *msg, size_t len) {
    int rv = grpc_call_send_begin(call, len);
    if (rv < 0 || len == 0) return rv;
    return grpc_call_send_chunk(call, msg, len);
}

void grpc_call_finish(grpc_call *call, int status, const char *message) {
    if (!call->user_owned) return;
    call->user_owned = false;
    if (call->stream_closed) {
        call_free(call);
        return;
    }
    if (call->conn->srv) call->conn->srv->stats.calls_active--;
    if (call->q.msg_left) /* an unfinished message cannot be sent: fail the stream */
        submit_status(call, GRPC_STATUS_INTERNAL, "grpc: server sent a truncated message");
    else
        submit_status(call, status, message);
}

void grpc_call_flush(grpc_call *call) {
    grpc_conn *conn = call->conn;
    if (conn->srv && conn->state == CONN_H2 && !conn->io.depth) h2io_flush(&conn->io);
}

void grpc_call_fail(grpc_call *call, int status, const char *message) {
    grpc_call_finish(call, status, message);
}

void grpc_call_reply(grpc_call *call, const void *msg, size_t len) {
    grpc_call_send(call, msg, len);
    grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

void grpc_call_reply_iov(grpc_call *call, const struct iovec *iov, size_t n_iov) {
    size_t total = 0;
    for (size_t i = 0; i < n_iov; i++)
        total += iov[i].iov_len;
    if (grpc_call_send_begin(call, total) >= 0)
        for (size_t i = 0; i < n_iov; i++)
            if (iov[i].iov_len) grpc_call_send_chunk(call, iov[i].iov_base, iov[i].iov_len);
    grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}
