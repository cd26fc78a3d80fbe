/* grpc_server.c — the server's listener and connections: accept (closing connections over
 * max_connections), sniffing the first bytes (HTTP/2 preface -> nghttp2 session; anything else
 * -> its first line handed to on_http1, or closed; both under the handshake deadline of
 * grpc_keepalive.c, which also runs keepalive PINGs and the client PING policy), the
 * per-loop-iteration flush of dirty connections (uv_idle), the deadline/shutdown timer, graceful
 * shutdown (notice, GOAWAY, grace period, close) and the thread-safe post queue. Stream handling
 * lives in grpc_call.c. A connection is refcounted by its open TCP handle and by every call handle
 * the application still holds, so peer/accounting reads stay valid on detached calls. */
#include "grpc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN 24

static void server_maybe_done(grpc_server *srv);
static void on_idle(uv_idle_t *h);

void grpc_conn_unref(grpc_conn *conn) {
    if (--conn->refs > 0) return;
    h2io_free_buffers(&conn->io);
    free(conn);
}

void grpc_conn_schedule(h2io *io) {
    grpc_conn *conn = (grpc_conn *)io;
    grpc_server *srv = conn->srv;
    if (!srv || conn->state != CONN_H2 || glist_linked(&conn->dirty_node)) return;
    glist_push(&srv->dirty, &conn->dirty_node);
    srv->n_dirty++;
    uv_idle_start(&srv->idle, on_idle);
}

static void on_idle(uv_idle_t *h) {
    grpc_server *srv = h->data;
    size_t n = srv->n_dirty;
    while (n-- > 0) {
        glist *l = glist_pop(&srv->dirty);
        if (!l) break;
        srv->n_dirty--;
        grpc_conn *conn = GRPC_CONTAINER_OF(l, grpc_conn, dirty_node);
        h2io_flush(&conn->io);
    }
    if (glist_empty(&srv->dirty)) uv_idle_stop(&srv->idle);
}

static void on_tcp_closed(uv_handle_t *h) {
    grpc_conn *conn = h->data;
    free(h);
    conn->tcp = NULL;
    grpc_server *srv = conn->srv;
    if (srv) {
        glist_remove(&conn->node);
        srv->stats.conns_open--;
        srv->closed_bytes_in += conn->io.bytes_in;
        srv->closed_bytes_out += conn->io.bytes_out;
        if (conn->opened_hook && srv->opts.on_conn_close)
            srv->opts.on_conn_close(srv->opts.ud, conn);
        conn->srv = NULL;
        server_maybe_done(srv);
    }
    grpc_conn_unref(conn);
}

/* Closes a connection: every call still attached is detached (on_cancel), the session goes. */
void grpc_conn_close(grpc_conn *conn) {
    if (conn->state == CONN_CLOSING) return;
    conn->state = CONN_CLOSING;
    conn->io.dead = true;
    grpc_ka_forget(conn);
    free(conn->h1buf);
    conn->h1buf = NULL;
    grpc_server *srv = conn->srv;
    if (srv && glist_linked(&conn->dirty_node)) {
        glist_remove(&conn->dirty_node);
        srv->n_dirty--;
    }
    uv_read_stop((uv_stream_t *)conn->tcp);
    glist *l;
    while ((l = glist_pop(&conn->calls)))
        grpc_call_detach(GRPC_CONTAINER_OF(l, grpc_call, node));
    if (conn->io.ng) {
        nghttp2_session_del(conn->io.ng);
        conn->io.ng = NULL;
    }
    /* Unsent bytes are dropped (their chunks released now); the in-flight write's chunks go
     * in its callback, which libuv runs before the close callback. Account everything now. */
    h2io_drop_pending(&conn->io);
    h2io_account(&conn->io, -(ptrdiff_t)conn->io.buffered);
    conn->io.agg_buffered = NULL;
    conn->io.buffered = conn->io.writing ? conn->io.inflight.total : 0;
    uv_close((uv_handle_t *)conn->tcp, on_tcp_closed);
}

static void conn_fail(h2io *io, int err) {
    (void)err;
    grpc_conn_close((grpc_conn *)io);
}

/* After each flush: a session that wants neither to read nor to write is finished (GOAWAY
 * exchanged and no streams left, or a fatal protocol error). */
static void conn_flushed(h2io *io) {
    grpc_conn *conn = (grpc_conn *)io;
    if (conn->state != CONN_H2) return;
    if (grpc_ka_flushed(conn)) { /* GOAWAY "too_many_pings" written */
        grpc_conn_close(conn);
        return;
    }
    if (!nghttp2_session_want_read(io->ng) && !nghttp2_session_want_write(io->ng) && h2io_idle(io))
        grpc_conn_close(conn);
}

/* After a recv: unary handlers (their requests may point into rbuf: before the next read),
 * then the flush (ACKs, WINDOW_UPDATEs, replies). A handler may close the connection. */
static void conn_after_recv(grpc_conn *conn) {
    conn->refs++;
    grpc_conn_dispatch_ready(conn);
    grpc_ka_after_recv(conn);
    if (conn->state == CONN_H2) h2io_flush(&conn->io);
    grpc_conn_unref(conn);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)hint;
    grpc_conn *conn = h->data;
    *buf = uv_buf_init((char *)conn->srv->rbuf, GRPC_READ_BUF);
}

static int conn_start_h2(grpc_conn *conn) {
    grpc_server *srv = conn->srv;
    if (nghttp2_session_server_new2(&conn->io.ng, srv->cbs, conn, srv->ngopt) != 0) return -1;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, srv->opts.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, srv->opts.initial_window_size},
    };
    if (nghttp2_submit_settings(conn->io.ng, NGHTTP2_FLAG_NONE, iv, 2) != 0) return -1;
    if (srv->opts.conn_window_size > 65535 &&
        nghttp2_session_set_local_window_size(conn->io.ng, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)srv->opts.conn_window_size) != 0)
        return -1;
    conn->state = CONN_H2;
    srv->stats.conns_accepted++;
    conn->opened_hook = true;
    if (srv->opts.on_conn_open) srv->opts.on_conn_open(srv->opts.ud, conn);
    if (srv->shutting_down) nghttp2_submit_shutdown_notice(conn->io.ng);
    return 0;
}

static void conn_hand_over(grpc_conn *conn, const char *initial, size_t n) {
    grpc_server *srv = conn->srv;
    uv_tcp_t *tcp = conn->tcp;
    uv_read_stop((uv_stream_t *)tcp);
    grpc_ka_forget(conn);
    glist_remove(&conn->node);
    srv->stats.conns_open--;
    srv->stats.conns_http1++;
    tcp->data = NULL;
    conn->tcp = NULL;
    conn->srv = NULL;
    grpc_conn_unref(conn);
    srv->opts.on_http1(srv->opts.ud, tcp, initial, n);
}

/* True once an HTTP/1 first line can be handed over: it ended, or holds a byte no request line
 * has (so on_http1 answers it at once), or is too long to keep collecting. */
static bool h1_line_ready(const uint8_t *p, size_t n, size_t total) {
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\n' || (p[i] < 0x20 && p[i] != '\r' && p[i] != '\t') || p[i] >= 0x7f)
            return true;
    return total >= GRPC_H1_LINE_MAX;
}

/* Not the HTTP/2 preface: collects the first line (so the handshake deadline covers HTTP/1
 * clients too), then hands everything read so far to on_http1. */
static void conn_sniff_h1(grpc_conn *conn, const uint8_t *p, size_t n) {
    size_t prev_len = conn->h1buf ? conn->h1len : conn->sniff_len;
    bool ready = h1_line_ready(p, n, prev_len + n);
    if (!conn->h1) { /* the bytes that matched the preface may hold its first line already */
        conn->h1 = true;
        ready = ready || h1_line_ready(conn->sniff, conn->sniff_len, conn->sniff_len);
    }
    char *all = realloc(conn->h1buf, prev_len + n + 1);
    if (!all) {
        conn->srv->stats.conns_rejected++;
        grpc_conn_close(conn); /* frees h1buf */
        return;
    }
    if (!conn->h1buf) memcpy(all, conn->sniff, conn->sniff_len);
    memcpy(all + prev_len, p, n);
    conn->h1buf = all;
    conn->h1len = prev_len + n;
    if (!ready) return;
    conn->h1buf = NULL;
    conn_hand_over(conn, all, prev_len + n);
    free(all);
}

/* Matches the first bytes against the HTTP/2 preface as they trickle in: a full match starts
 * the nghttp2 session (SETTINGS only then, so an HTTP/1 client never sees binary frames), a
 * mismatch makes it an HTTP/1 connection for on_http1, or closes it. */
static void conn_sniff(grpc_conn *conn, const uint8_t *p, size_t n) {
    grpc_server *srv = conn->srv;
    if (conn->h1) {
        conn_sniff_h1(conn, p, n);
        return;
    }
    size_t k = PREFACE_LEN - conn->sniff_len;
    if (k > n) k = n;
    if (memcmp(p, PREFACE + conn->sniff_len, k) != 0) {
        if (srv->opts.on_http1) {
            conn_sniff_h1(conn, p, n);
            return;
        }
        srv->stats.conns_rejected++;
        grpc_conn_close(conn);
        return;
    }
    memcpy(conn->sniff + conn->sniff_len, p, k);
    conn->sniff_len += k;
    if (conn->sniff_len < PREFACE_LEN) return;
    if (conn_start_h2(conn) != 0) {
        grpc_conn_close(conn);
        return;
    }
    grpc_ka_h2_input(conn, p + k, n - k);
    int rv = h2io_recv(&conn->io, conn->sniff, PREFACE_LEN);
    if (rv == 0 && n > k) rv = h2io_recv(&conn->io, p + k, n - k);
    if (rv != 0) {
        grpc_conn_close(conn);
        return;
    }
    conn_after_recv(conn);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    grpc_conn *conn = s->data;
    if (nread == 0) return;
    if (nread < 0) {
        grpc_conn_close(conn);
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    grpc_ka_input(conn);
    if (conn->state == CONN_SNIFF) {
        conn_sniff(conn, p, (size_t)nread);
        return;
    }
    if (conn->state != CONN_H2) return;
    grpc_ka_h2_input(conn, p, (size_t)nread);
    if (h2io_recv(&conn->io, p, (size_t)nread) != 0) {
        grpc_conn_close(conn);
        return;
    }
    conn_after_recv(conn);
}

static void on_reject_closed(uv_handle_t *h) {
    free(h);
}

static void on_connection(uv_stream_t *ls, int status) {
    grpc_server *srv = ls->data;
    if (status < 0) return;
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (!tcp) return;
    uv_tcp_init(srv->loop, tcp);
    if (uv_accept(ls, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, on_reject_closed);
        return;
    }
    grpc_conn *conn = NULL;
    bool over = srv->opts.max_connections && srv->stats.conns_open >= srv->opts.max_connections;
    if (!srv->shutting_down && !over) conn = calloc(1, sizeof *conn);
    if (!conn) {
        srv->stats.conns_rejected++;
        uv_close((uv_handle_t *)tcp, on_reject_closed);
        return;
    }
    h2io_init(&conn->io);
    conn->io.stream = (uv_stream_t *)tcp;
    conn->io.agg_buffered = &srv->stats.out_buffered;
    conn->io.agg_peak = &srv->stats.out_buffered_peak;
    conn->io.schedule = grpc_conn_schedule;
    conn->io.fail = conn_fail;
    conn->io.writable = grpc_call_writable;
    conn->io.flushed = conn_flushed;
    conn->srv = srv;
    conn->tcp = tcp;
    conn->refs = 1;
    conn->state = CONN_SNIFF;
    conn->id = ++srv->next_conn_id;
    glist_init(&conn->calls);
    glist_init(&conn->ready);
    tcp->data = conn;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    strcpy(conn->peer, "unknown");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[48] = "";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof ip);
            port = ntohs(a->sin_port);
            snprintf(conn->peer, sizeof conn->peer, "%s:%d", ip, port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            port = ntohs(a->sin6_port);
            snprintf(conn->peer, sizeof conn->peer, "[%s]:%d", ip, port);
        }
    }
    uv_tcp_nodelay(tcp, 1);
    glist_push(&srv->conns, &conn->node);
    srv->stats.conns_open++;
    grpc_ka_accepted(conn);
    if (uv_read_start((uv_stream_t *)tcp, on_alloc, on_read) != 0) grpc_conn_close(conn);
}

/* ---------------------------------------------------------------- timer */

static void on_timer(uv_timer_t *t) {
    grpc_server *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    grpc_call_deadline_tick(srv, now);
    if (srv->shutting_down && !srv->goaway_sent && now >= srv->goaway_at) {
        srv->goaway_sent = true;
        for (glist *l = srv->conns.next; l != &srv->conns; l = l->next) {
            grpc_conn *conn = GRPC_CONTAINER_OF(l, grpc_conn, node);
            if (conn->state != CONN_H2) continue;
            nghttp2_submit_goaway(conn->io.ng, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(conn->io.ng),
                                  NGHTTP2_NO_ERROR, NULL, 0);
            grpc_conn_schedule(&conn->io);
        }
    }
    if (srv->shutting_down && !srv->force_closed && now >= srv->force_at) {
        srv->force_closed = true;
        glist *l = srv->conns.next;
        while (l != &srv->conns) {
            glist *next = l->next;
            grpc_conn_close(GRPC_CONTAINER_OF(l, grpc_conn, node));
            l = next;
        }
    }
    if (!srv->shutting_down && glist_empty(&srv->deadlines)) {
        uv_timer_stop(&srv->timer);
        srv->timer_on = false;
    }
    if (srv->force_closed && !srv->handles_closing) {
        uv_timer_stop(&srv->timer);
        srv->timer_on = false;
    }
}

void grpc_server_timer_need(grpc_server *srv) {
    if (srv->timer_on || srv->handles_closing) return;
    srv->timer_on = true;
    uv_timer_start(&srv->timer, on_timer, 10, 10);
}

/* ---------------------------------------------------------------- post queue */

static void run_posts(grpc_server *srv) {
    uv_mutex_lock(&srv->mu);
    post_item *it = srv->post_head;
    srv->post_head = srv->post_tail = NULL;
    uv_mutex_unlock(&srv->mu);
    while (it) {
        post_item *next = it->next;
        it->fn(it->arg);
        free(it);
        it = next;
    }
}

static void on_async(uv_async_t *a) {
    run_posts(a->data);
}

int grpc_server_post(grpc_server *srv, void (*fn)(void *arg), void *arg) {
    post_item *it = malloc(sizeof *it);
    if (!it) return -1;
    it->next = NULL;
    it->fn = fn;
    it->arg = arg;
    uv_mutex_lock(&srv->mu);
    if (srv->post_closed) {
        uv_mutex_unlock(&srv->mu);
        free(it);
        return -1;
    }
    if (srv->post_tail)
        srv->post_tail->next = it;
    else
        srv->post_head = it;
    srv->post_tail = it;
    uv_async_send(&srv->async);
    uv_mutex_unlock(&srv->mu);
    return 0;
}

/* ---------------------------------------------------------------- lifecycle */

grpc_server *grpc_server_new(uv_loop_t *loop, const grpc_server_opts *opts,
                             const grpc_method *methods, size_t n_methods) {
    if (!loop || (n_methods && !methods)) return NULL;
    grpc_server *srv = calloc(1, sizeof *srv);
    if (!srv) return NULL;
    grpc_ignore_sigpipe();
    srv->loop = loop;
    if (opts) srv->opts = *opts;
    grpc_server_opts *o = &srv->opts;
    if (!o->max_recv_msg_size) o->max_recv_msg_size = 4u << 20;
    if (!o->max_concurrent_streams) o->max_concurrent_streams = 10000;
    if (!o->initial_window_size) o->initial_window_size = 1u << 20;
    if (o->initial_window_size > 0x7fffffff) o->initial_window_size = 0x7fffffff;
    if (!o->conn_window_size) o->conn_window_size = 16u << 20;
    if (o->conn_window_size > 0x7fffffff) o->conn_window_size = 0x7fffffff;
    if (!o->high_water) o->high_water = 1u << 20;
    if (!o->low_water || o->low_water > o->high_water) o->low_water = o->high_water / 4;
    if (!o->shutdown_grace_ms) o->shutdown_grace_ms = 3000;
    srv->methods = calloc(n_methods ? n_methods : 1, sizeof *methods);
    srv->rbuf = malloc(GRPC_READ_BUF);
    if (!srv->methods || !srv->rbuf || nghttp2_session_callbacks_new(&srv->cbs) != 0 ||
        nghttp2_option_new(&srv->ngopt) != 0) {
        if (srv->cbs) nghttp2_session_callbacks_del(srv->cbs);
        free(srv->methods);
        free(srv->rbuf);
        free(srv);
        return NULL;
    }
    if (n_methods) memcpy(srv->methods, methods, n_methods * sizeof *methods);
    srv->n_methods = n_methods;
    h2io_set_send_callbacks(srv->cbs);
    grpc_server_set_callbacks(srv->cbs);
    grpc_ka_set_callbacks(srv->cbs);
    nghttp2_option_set_no_auto_window_update(srv->ngopt, 1);
    /* nghttp2 keeps closed streams for HTTP/2 priority as long as the advertised stream limit
     * allows; with etcd's unlimited max-concurrent-streams that is forever, ~300 bytes per
     * request on a long-lived connection. gRPC uses no priorities: keep none. */
    nghttp2_option_set_no_closed_streams(srv->ngopt, 1);
    /* Relist storms cancel hundreds of watch streams at once: nghttp2's anti-"rapid reset"
     * default (burst 1000, 33/s) would GOAWAY such a client. Keep a limit, but a roomy one. */
    nghttp2_option_set_stream_reset_rate_limit(srv->ngopt, 20000, 2000);
    glist_init(&srv->dirty);
    glist_init(&srv->deadlines);
    glist_init(&srv->conns);
    uv_mutex_init(&srv->mu);
    uv_idle_init(loop, &srv->idle);
    srv->idle.data = srv;
    uv_timer_init(loop, &srv->timer);
    srv->timer.data = srv;
    uv_async_init(loop, &srv->async, on_async);
    srv->async.data = srv;
    uv_unref((uv_handle_t *)&srv->async); /* posting alone must not keep the loop alive */
    grpc_ka_init(srv);
    srv->handles_open = 4; /* idle, timer, async, ka_timer */
    srv->port = -1;
    return srv;
}

int grpc_server_listen(grpc_server *srv, const char *host, int port) {
    if (srv->listening || srv->shutting_down) return UV_EINVAL;
    struct sockaddr_storage ss;
    int rv = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
    if (rv != 0) rv = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
    if (rv != 0) return rv;
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    srv->listener_open = true;
    srv->handles_open++;
    rv = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0);
    if (rv == 0) rv = uv_listen((uv_stream_t *)&srv->listener, 1024, on_connection);
    if (rv != 0) return rv;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len) == 0)
        srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port); /* same offset for in6 */
    srv->listening = true;
    return 0;
}

int grpc_server_port(const grpc_server *srv) {
    return srv->port;
}

static void on_server_handle_closed(uv_handle_t *h) {
    grpc_server *srv = h->data;
    if (--srv->handles_open == 0 && srv->done) srv->done(srv->done_ud);
}

/* Once shutting down and every connection is closed, the server's own handles close. */
static void server_maybe_done(grpc_server *srv) {
    if (!srv->shutting_down || !glist_empty(&srv->conns) || srv->handles_closing) return;
    srv->handles_closing = true;
    srv->force_closed = true;
    uv_mutex_lock(&srv->mu);
    srv->post_closed = true;
    uv_mutex_unlock(&srv->mu);
    run_posts(srv); /* completions already posted still run (their calls are detached) */
    uv_close((uv_handle_t *)&srv->idle, on_server_handle_closed);
    uv_close((uv_handle_t *)&srv->timer, on_server_handle_closed);
    uv_close((uv_handle_t *)&srv->async, on_server_handle_closed);
    grpc_ka_close(srv, on_server_handle_closed);
}

void grpc_server_shutdown(grpc_server *srv, void (*done)(void *ud), void *ud) {
    if (srv->shutting_down) return;
    srv->shutting_down = true;
    srv->done = done;
    srv->done_ud = ud;
    if (srv->listener_open) uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
    uint64_t now = uv_now(srv->loop);
    srv->goaway_at = now + 50;
    srv->force_at = now + srv->opts.shutdown_grace_ms;
    glist *l = srv->conns.next;
    while (l != &srv->conns) {
        glist *next = l->next;
        grpc_conn *conn = GRPC_CONTAINER_OF(l, grpc_conn, node);
        if (conn->state == CONN_H2) {
            nghttp2_submit_shutdown_notice(conn->io.ng);
            grpc_conn_schedule(&conn->io);
        } else if (conn->state == CONN_SNIFF) {
            grpc_conn_close(conn);
        }
        l = next;
    }
    grpc_server_timer_need(srv);
    server_maybe_done(srv);
}

void grpc_server_free(grpc_server *srv) {
    if (!srv) return;
    nghttp2_session_callbacks_del(srv->cbs);
    nghttp2_option_del(srv->ngopt);
    uv_mutex_destroy(&srv->mu);
    free(srv->methods);
    free(srv->rbuf);
    free(srv);
}

/* ---------------------------------------------------------------- accounting */

void grpc_server_get_stats(const grpc_server *srv, grpc_server_stats *out) {
    *out = srv->stats;
    out->bytes_in = srv->closed_bytes_in;
    out->bytes_out = srv->closed_bytes_out;
    for (const glist *l = srv->conns.next; l != &srv->conns; l = l->next) {
        const grpc_conn *conn = GRPC_CONTAINER_OF(l, grpc_conn, node);
        out->bytes_in += conn->io.bytes_in;
        out->bytes_out += conn->io.bytes_out;
    }
}

void grpc_server_foreach_conn(grpc_server *srv, void (*fn)(grpc_conn *conn, void *ud), void *ud) {
    glist *l = srv->conns.next;
    while (l != &srv->conns) {
        glist *next = l->next;
        grpc_conn *conn = GRPC_CONTAINER_OF(l, grpc_conn, node);
        if (conn->state == CONN_H2) fn(conn, ud);
        l = next;
    }
}

uint64_t grpc_conn_id(const grpc_conn *conn) {
    return conn->id;
}
const char *grpc_conn_peer(const grpc_conn *conn) {
    return conn->peer;
}
void *grpc_conn_user_data(const grpc_conn *conn) {
    return conn->ud;
}
void grpc_conn_set_user_data(grpc_conn *conn, void *ud) {
    conn->ud = ud;
}
void grpc_conn_get_stats(const grpc_conn *conn, grpc_conn_stats *out) {
    out->bytes_in = conn->io.bytes_in;
    out->bytes_out = conn->io.bytes_out;
    out->msgs_in = conn->msgs_in;
    out->msgs_out = conn->msgs_out;
    out->calls = conn->calls_started;
    out->out_buffered = conn->io.buffered;
}
