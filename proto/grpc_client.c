/* grpc_client.c — one HTTP/2 connection to a gRPC server (ours or a real etcd) on a uv loop:
 * resolve, connect, read into nghttp2, flush through h2io, GOAWAY, loss, free and abort. The
 * calls on it (unary calls, bidi streams, deadlines, inbound flow control) are in
 * grpc_client_call.c. Reconnecting is the caller's job: on connection loss every pending call
 * fails with UNAVAILABLE and on_disconnect fires. grpc_client_abort() makes the same loss on
 * purpose (a network blip, a load balancer's reset): the socket is closed with SO_LINGER 0, so
 * the server reads ECONNRESET rather than an orderly EOF, and no GOAWAY is sent.
 * The connection also owns one reusable receive buffer for large unary responses (an own
 * mapping with transparent huge pages, unmapped after GRPC_CLIENT_BIG_IDLE_MS idle).
 * Re-entrancy: user callbacks may call grpc_client_free(); the actual teardown is deferred
 * until the library's own frames are off the stack (busy counter), memory is released in the
 * last uv close callback. */
#include "grpc_client_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void client_do_free(grpc_client *c);
static void on_idle(uv_idle_t *h);

void grpc_client_enter(grpc_client *c) {
    c->busy++;
}
static void do_abort(grpc_client *c);
void grpc_client_leave(grpc_client *c) {
    /* an abort asked for inside a callback happens once the library's frames are gone (the
     * outermost leave, outside nghttp2), before a free asked for meanwhile */
    if (c->busy == 1 && c->abort_requested && !c->io.depth) do_abort(c);
    if (--c->busy == 0 && c->free_requested && !c->freed) client_do_free(c);
}

void grpc_client_schedule(h2io *io) {
    grpc_client *c = (grpc_client *)io;
    if (!c->dead && c->connected) uv_idle_start(&c->idle, on_idle);
}

/* ---------------------------------------------------------------- large responses */

/* Own anonymous mappings in whole 2 MiB units, with transparent huge pages where the kernel
 * allows them (madvise mode): the receive copy and the caller's walk over the message then
 * touch ~50 TLB entries per 100 MB instead of ~25,000. */
#define BIG_UNIT ((size_t)2 << 20)

static void big_unmap(grpc_client *c) {
    if (c->big) munmap(c->big, c->big_cap);
    c->big = NULL;
    c->big_cap = 0;
}

static void on_big_idle(uv_timer_t *t) {
    big_unmap(t->data);
}

uint8_t *grpc_client_big_take(grpc_client *c, size_t len, size_t *cap) {
    if (c->big_lent || c->dead || len > SIZE_MAX - BIG_UNIT) return NULL;
    if (c->big && c->big_cap < len) big_unmap(c);
    if (!c->big) {
        size_t n = (len + BIG_UNIT - 1) & ~(BIG_UNIT - 1);
        void *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        (void)madvise(m, n, MADV_HUGEPAGE); /* a hint: 4 KiB pages work too */
        c->big = m;
        c->big_cap = n;
    }
    uv_timer_stop(&c->big_timer);
    uint8_t *p = c->big;
    *cap = c->big_cap;
    c->big = NULL;
    c->big_cap = 0;
    c->big_lent = true;
    return p;
}

void grpc_client_big_return(grpc_client *c, uint8_t *p, size_t cap) {
    c->big_lent = false;
    if (c->dead || c->freed || c->free_requested) {
        munmap(p, cap);
        return;
    }
    c->big = p;
    c->big_cap = cap;
    uv_timer_start(&c->big_timer, on_big_idle, GRPC_CLIENT_BIG_IDLE_MS, 0);
}

/* ---------------------------------------------------------------- connection loss */

static void on_handle_closed(uv_handle_t *h) {
    grpc_client *c = h->data;
    if (--c->closes_pending == 0 && c->freed) {
        big_unmap(c);
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
    grpc_client_fail_calls(c, GRPC_STATUS_UNAVAILABLE, msg);
    big_unmap(c); /* the calls gave theirs back: unmapped, as the connection is dead */
    uv_timer_stop(&c->big_timer);
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
    grpc_client_enter(c);
    conn_lost(c, err, "connection error");
    grpc_client_leave(c);
}

static void io_flushed(h2io *io) {
    grpc_client *c = (grpc_client *)io;
    grpc_client_enter(c);
    if (c->io.ng && !nghttp2_session_want_read(c->io.ng) && !nghttp2_session_want_write(c->io.ng) &&
        h2io_idle(io))
        conn_lost(c, 0, "connection closed after GOAWAY");
    grpc_client_leave(c);
}

/* The only connection-level frame we act on: GOAWAY (no new calls; on_disconnect once). */
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

/* ---------------------------------------------------------------- loop callbacks */

static void on_idle(uv_idle_t *h) {
    grpc_client *c = h->data;
    uv_idle_stop(h);
    grpc_client_enter(c);
    h2io_flush(&c->io);
    grpc_client_leave(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)hint;
    grpc_client *c = h->data;
    *buf = uv_buf_init((char *)c->rbuf, GRPC_CLIENT_READ_BUF);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    grpc_client *c = st->data;
    if (nread == 0 || c->dead) return;
    grpc_client_enter(c);
    if (nread < 0) {
        conn_lost(c, (int)nread,
                  nread == UV_EOF ? "connection closed by server" : uv_strerror((int)nread));
    } else if (h2io_recv(&c->io, (const uint8_t *)buf->base, (size_t)nread) != 0) {
        conn_lost(c, UV_EPROTO, "HTTP/2 protocol error");
    } else {
        h2io_flush(&c->io);
    }
    grpc_client_leave(c);
}

static void on_connected(uv_connect_t *req, int status) {
    grpc_client *c = req->data;
    if (c->dead) return;
    grpc_client_enter(c);
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
    grpc_client_leave(c);
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
    grpc_client_enter(c);
    if (status < 0 || !res) {
        conn_lost(c, status < 0 ? status : UV_EAI_NONAME, "cannot resolve host");
    } else {
        int rv = uv_tcp_connect(&c->creq, &c->tcp, res->ai_addr, on_connected);
        if (rv < 0) conn_lost(c, rv, uv_strerror(rv));
    }
    if (res) uv_freeaddrinfo(res);
    grpc_client_leave(c);
}

/* ---------------------------------------------------------------- lifecycle */

static nghttp2_session_callbacks *client_callbacks(void) {
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) return NULL;
    h2io_set_send_callbacks(cbs);
    grpc_client_set_call_callbacks(cbs);
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
    c->io.schedule = grpc_client_schedule;
    c->io.fail = io_fail;
    c->io.writable = grpc_client_call_writable;
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
        c->conn_window = (int32_t)o->conn_window_size;
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
    uv_timer_init(loop, &c->big_timer);
    c->big_timer.data = c;
    uv_unref((uv_handle_t *)&c->big_timer); /* an idle buffer never keeps the loop alive */
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->tcp_inited = true;
    return c;
}

static void client_do_free(grpc_client *c) {
    c->freed = true;
    c->dead = true;
    c->io.dead = true;
    grpc_client_fail_calls(c, GRPC_STATUS_CANCELLED, "client closed");
    if (c->io.ng) {
        nghttp2_session_del(c->io.ng);
        c->io.ng = NULL;
    }
    if (c->gai_pending) { /* on_resolved still runs (maybe with UV_ECANCELED) */
        uv_cancel((uv_req_t *)&c->gai);
        c->closes_pending++;
    }
    c->closes_pending += 3;
    uv_close((uv_handle_t *)&c->idle, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->big_timer, on_handle_closed);
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
    if (c->busy || c->io.depth) { /* inside one of our callbacks: see grpc_client_leave() */
        c->abort_requested = true;
        return;
    }
    /* a grpc_client_free from the callbacks below waits for grpc_client_leave() */
    grpc_client_enter(c);
    do_abort(c);
    grpc_client_leave(c);
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
