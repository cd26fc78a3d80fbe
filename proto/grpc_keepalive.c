/* grpc_keepalive.c — bounding what idle and half-open connections cost the server, the way
 * grpc-go (etcd's transport) does:
 * - Handshake deadline (grpc-go's ConnectionTimeout): a connection must deliver the HTTP/2
 *   client preface and its first frame, which must be SETTINGS (nghttp2 checks that), within
 *   handshake_timeout_ms, or, with on_http1, a first line (grpc_server.c sniffs it); otherwise
 *   it is closed. The first frame is tracked by counting bytes: its 9-byte header gives the
 *   payload length, so a client that sends the header and stalls is caught too.
 * - Keepalive (grpc-go's ServerParameters Time/Timeout; etcd's --grpc-keepalive-interval and
 *   --grpc-keepalive-timeout): after keepalive_interval_ms without input the server PINGs, and
 *   closes the connection if nothing at all arrives within keepalive_timeout_ms. Any input
 *   counts as the answer, as in grpc-go.
 * - Client PING policy (grpc-go's EnforcementPolicy as etcd sets it: MinTime =
 *   --grpc-keepalive-min-time, PermitWithoutStream false): a client PING less than min_time
 *   after the previous one (2 h when no stream is open) is a strike, unless the server sent
 *   HEADERS or DATA in between; the third strike gets GOAWAY ENHANCE_YOUR_CALM
 *   "too_many_pings" and the connection closes once that is written. grpc-go clients keep to
 *   this: their keepalive PINGs are at least 10 s apart and, by default, only sent with streams
 *   open; their BDP PINGs follow DATA from the server, which resets the strikes. Our own client
 *   never PINGs (nghttp2 answers the server's PINGs).
 * Deadlines: three lists (handshaking, idle, PING outstanding), each with one fixed delay, so
 * appending keeps every list ordered by deadline and one uv timer at the earliest head serves
 * them all. Input moves a connection to the idle list's tail: O(1) per read; the timer touches
 * only connections whose deadline has passed.
 */
#include "grpc_internal.h"

#define DEFAULT_HANDSHAKE_MS 10000u
#define DEFAULT_INTERVAL_MS  (2u * 3600u * 1000u) /* grpc-go and etcd: 2 h */
#define DEFAULT_TIMEOUT_MS   20000u               /* grpc-go and etcd: 20 s */
#define DEFAULT_MIN_TIME_MS  5000u                /* etcd's --grpc-keepalive-min-time */
#define PING_STRIKES_MAX     2                    /* grpc-go: the third strike ends it */
#define PING_NO_STREAM_MS    (2ull * 3600u * 1000u)

static const char CALM_DEBUG[] = "too_many_pings";
static const uint8_t PING_DATA[8] = {'k', 'e', 'e', 'p', 'a', 'l', 'v', 'e'};

static bool keepalive_on(const grpc_server *srv) {
    return srv->opts.keepalive_interval_ms != GRPC_OPT_NEVER &&
           srv->opts.keepalive_timeout_ms != GRPC_OPT_NEVER;
}

/* The fixed delay of a list's deadline. */
static uint64_t list_delay(const grpc_server *srv, int list) {
    if (list == KA_HS) return srv->opts.handshake_timeout_ms;
    if (list == KA_IDLE) return srv->opts.keepalive_interval_ms;
    return srv->opts.keepalive_timeout_ms;
}

static void on_ka_timer(uv_timer_t *t);

/* Makes sure the timer fires no later than `at` (uv_now milliseconds). */
static void ka_need(grpc_server *srv, uint64_t at) {
    if (srv->handles_closing || (srv->ka_armed && srv->ka_due <= at)) return;
    uint64_t now = uv_now(srv->loop);
    srv->ka_armed = true;
    srv->ka_due = at;
    uv_timer_start(&srv->ka_timer, on_ka_timer, at > now ? at - now : 0, 0);
}

/* Puts the connection at the tail of `list` (KA_NONE: on none) with its clock at now. */
static void ka_move(grpc_conn *conn, int list, uint64_t now) {
    grpc_server *srv = conn->srv;
    glist_remove(&conn->ka_node);
    conn->ka_list = (uint8_t)list;
    conn->ka_at = now;
    if (list == KA_NONE) return;
    glist_push(&srv->ka_lists[list - 1], &conn->ka_node);
    ka_need(srv, now + list_delay(srv, list));
}

/* A deadline passed: close (handshake, unanswered PING) or PING (idle). */
static void ka_expired(grpc_conn *conn, int list, uint64_t now) {
    grpc_server *srv = conn->srv;
    if (list == KA_IDLE && conn->state == CONN_H2 &&
        nghttp2_submit_ping(conn->io.ng, NGHTTP2_FLAG_NONE, PING_DATA) == 0) {
        srv->ka_stats.pings_sent++;
        ka_move(conn, KA_PING, now);
        grpc_conn_schedule(&conn->io);
        return;
    }
    if (list == KA_HS)
        srv->ka_stats.handshake_timeouts++;
    else
        srv->ka_stats.keepalive_timeouts++;
    grpc_conn_close(conn); /* takes it off the list (grpc_ka_forget) */
}

static void on_ka_timer(uv_timer_t *t) {
    grpc_server *srv = t->data;
    srv->ka_armed = false;
    uint64_t now = uv_now(srv->loop);
    for (int list = KA_HS; list <= KA_PING; list++) {
        glist *head = &srv->ka_lists[list - 1];
        uint64_t delay = list_delay(srv, list);
        while (!glist_empty(head)) {
            grpc_conn *conn = GRPC_CONTAINER_OF(head->next, grpc_conn, ka_node);
            if (conn->ka_at + delay > now) {
                ka_need(srv, conn->ka_at + delay);
                break;
            }
            ka_expired(conn, list, now);
        }
    }
}

void grpc_ka_init(grpc_server *srv) {
    grpc_server_opts *o = &srv->opts;
    if (!o->handshake_timeout_ms) o->handshake_timeout_ms = DEFAULT_HANDSHAKE_MS;
    if (!o->keepalive_interval_ms) o->keepalive_interval_ms = DEFAULT_INTERVAL_MS;
    if (!o->keepalive_timeout_ms) o->keepalive_timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!o->keepalive_min_time_ms) o->keepalive_min_time_ms = DEFAULT_MIN_TIME_MS;
    for (int i = 0; i < 3; i++)
        glist_init(&srv->ka_lists[i]);
    uv_timer_init(srv->loop, &srv->ka_timer);
    srv->ka_timer.data = srv;
}

void grpc_ka_accepted(grpc_conn *conn) {
    if (conn->srv->opts.handshake_timeout_ms != GRPC_OPT_NEVER)
        ka_move(conn, KA_HS, uv_now(conn->srv->loop));
}

void grpc_ka_h2_input(grpc_conn *conn, const uint8_t *p, size_t n) {
    if (conn->handshaken) return;
    for (; n > 0 && conn->hs_hdr_got < 9; p++, n--)
        if (conn->hs_hdr_got++ < 3) conn->hs_len = conn->hs_len << 8 | *p; /* 24-bit length */
    if (conn->hs_hdr_got < 9) return;
    conn->hs_len -= n < conn->hs_len ? (uint32_t)n : conn->hs_len; /* payload still owed */
    if (conn->hs_len > 0) return;
    conn->handshaken = true;
    ka_move(conn, keepalive_on(conn->srv) ? KA_IDLE : KA_NONE, uv_now(conn->srv->loop));
}

void grpc_ka_input(grpc_conn *conn) {
    if (conn->ka_list == KA_IDLE || conn->ka_list == KA_PING)
        ka_move(conn, KA_IDLE, uv_now(conn->srv->loop));
}

void grpc_ka_forget(grpc_conn *conn) {
    glist_remove(&conn->ka_node);
    conn->ka_list = KA_NONE;
}

void grpc_ka_close(grpc_server *srv, uv_close_cb cb) {
    uv_timer_stop(&srv->ka_timer);
    srv->ka_armed = false;
    uv_close((uv_handle_t *)&srv->ka_timer, cb);
}

/* ---------------------------------------------------------------- client PING policy */

/* A client PING (not an ACK) begins: counts a strike if it came too soon. Runs inside
 * nghttp2_session_mem_recv, so the GOAWAY waits for grpc_ka_after_recv. */
static void client_ping(grpc_conn *conn) {
    grpc_server *srv = conn->srv;
    if (!srv || srv->opts.keepalive_min_time_ms == GRPC_OPT_NEVER || conn->calm) return;
    uint64_t now = uv_now(srv->loop);
    bool sent = conn->headers_sent_mark || conn->io.data_frames_out != conn->data_mark;
    conn->headers_sent_mark = false;
    conn->data_mark = conn->io.data_frames_out;
    uint64_t prev = conn->last_ping_in;
    bool had = conn->pinged_in;
    conn->last_ping_in = now;
    conn->pinged_in = true;
    if (sent) {
        conn->ping_strikes = 0;
        return;
    }
    uint64_t min = glist_empty(&conn->calls) ? PING_NO_STREAM_MS : srv->opts.keepalive_min_time_ms;
    if (had && now - prev < min && ++conn->ping_strikes > PING_STRIKES_MAX) conn->calm = true;
}

static int on_begin_frame(nghttp2_session *s, const nghttp2_frame_hd *hd, void *ud) {
    (void)s;
    if (hd->type == NGHTTP2_PING && !(hd->flags & NGHTTP2_FLAG_ACK)) client_ping(ud);
    return 0;
}

/* HEADERS going out reset the strikes (DATA frames are counted by h2io). */
static int before_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *ud) {
    (void)s;
    if (frame->hd.type == NGHTTP2_HEADERS) ((grpc_conn *)ud)->headers_sent_mark = true;
    return 0;
}

void grpc_ka_set_callbacks(nghttp2_session_callbacks *cbs) {
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_before_frame_send_callback(cbs, before_frame_send);
}

void grpc_ka_after_recv(grpc_conn *conn) {
    if (!conn->calm || conn->calm_sent || conn->state != CONN_H2) return;
    conn->calm_sent = true;
    conn->srv->ka_stats.too_many_pings++;
    nghttp2_submit_goaway(
        conn->io.ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(conn->io.ng),
        NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)CALM_DEBUG, sizeof CALM_DEBUG - 1);
}

bool grpc_ka_flushed(grpc_conn *conn) {
    return conn->calm_sent && h2io_idle(&conn->io);
}

void grpc_server_get_ka_stats(const grpc_server *srv, grpc_server_ka_stats *out) {
    *out = srv->ka_stats;
}
