/* watch_service.c — etcdserverpb.Watch/Watch on the watch hub (kvstore/watch/watch.h): the
 * commit hand-over from the writer thread, one watch_stream per gRPC bidi stream, the timers
 * that drive progress notification and catch-up, and the watch metrics.
 *
 * Key decisions:
 * - Commits reach the loop in commit order through one mutex-guarded queue and a uv_async.
 *   The queue is bounded in bytes (watch_queue_bytes): a commit that does not fit is dropped
 *   and the loop is told "a commit was lost" (one flag, taken with the queue), so the hub
 *   catches every synced watcher up from LMDB history instead — the writer never waits for
 *   watchers, and memory does not grow with a stalled loop.
 * - Back-pressure is the gRPC call's output queue: the sink reports "over high-water" and the
 *   hub holds the stream back (etcd's victims) until on_writable; the held-back watchers
 *   catch up from history. Per stream the server buffers at most the high-water mark plus one
 *   response, however slow the client.
 * - Client half-close keeps the stream open, as etcd 3.4 does (v3rpc/watch.go: recvLoop
 *   returns nil on io.EOF and Watch() then waits for the stream's context): events keep
 *   flowing until the client cancels. Bytes that are not a WatchRequest end the stream
 *   (etcd: the receive error ends Watch()). Metadata such as "hasleader" is ignored.
 * - Metrics as etcd's etcd_debugging_mvcc_* families, read from watch_hub_stats at scrape
 *   time. The hub is loop-only, so a scrape on another thread reads the snapshot the loop
 *   refreshes (every tick and on every loop-thread scrape).
 */
#include <stdlib.h>
#include <string.h>

#include "srv_internal.h"
#include "watch.h"

#define TAG_WATCH 0x77617463

typedef struct wcall wcall;

/* The per-client collector's handle: owned by the registry (which may outlive the hub), cut
 * loose when the watch side is freed. */
typedef struct collector_ref {
    uv_mutex_t mu;
    struct kvs_watch *w; /* NULL once freed */
} collector_ref;

typedef struct kvs_watch {
    kvs_server *srv;
    watch_hub *hub;
    uv_async_t async;
    uv_idle_t idle;
    uv_timer_t tick;
    bool idle_on, handles_up, stopping;
    /* commit queue: writer -> loop (guarded by mu) */
    uv_mutex_t mu;
    struct qitem *head, *tail;
    size_t queued_bytes, queue_cap;
    bool lost;
    /* streams and the snapshot for scrapes from other threads (guarded by calls_mu) */
    uv_mutex_t calls_mu;
    wcall *calls;
    watch_stats snap;
    kvs_series *m_watchers, *m_streams, *m_slow, *m_events, *m_victims, *m_dropped;
    collector_ref *cref;
} kvs_watch;

typedef struct qitem {
    struct qitem *next;
    watch_batch *b;
    size_t bytes;
} qitem;

struct wcall {
    int tag; /* TAG_WATCH */
    kvs_watch *w;
    grpc_call *call;
    kvs_conn *conn;
    watch_stream *ws;
    uint64_t t0;
    size_t watchers; /* for relistlab_client_watches (guarded by calls_mu) */
    wcall *prev, *next;
};

/* ---- scheduling ---------------------------------------------------------------------------- */

static void on_idle(uv_idle_t *h);

/* After any call into the hub: keep catching up while it has work that can proceed. */
static void kick(kvs_watch *w) {
    if (!w->handles_up || w->idle_on || !watch_hub_pending(w->hub)) return;
    w->idle_on = true;
    uv_idle_start(&w->idle, on_idle);
}

static void on_idle(uv_idle_t *h) {
    kvs_watch *w = h->data;
    if (!watch_hub_sync(w->hub, 4)) {
        uv_idle_stop(&w->idle);
        w->idle_on = false;
    }
}

static void refresh_snapshot(kvs_watch *w) {
    watch_stats st;
    watch_hub_stats(w->hub, &st);
    uv_mutex_lock(&w->calls_mu);
    w->snap = st;
    for (wcall *c = w->calls; c; c = c->next) {
        watch_stream_stats ss;
        watch_stream_stats_get(c->ws, &ss);
        c->watchers = ss.watchers;
    }
    uv_mutex_unlock(&w->calls_mu);
}

static void on_tick(uv_timer_t *t) {
    kvs_watch *w = t->data;
    watch_hub_tick(w->hub, (int64_t)uv_now(t->loop));
    refresh_snapshot(w);
    kick(w);
}

/* ---- commits: writer thread -> loop -----------------------------------------------------------
 */

/* kv_commit_fn, on the writer thread after each durable commit. */
static void on_commit(void *ud, const kv_event *ev, size_t n, int64_t revision) {
    kvs_watch *w = ud;
    if (!n) return;
    watch_batch *b = watch_batch_from_events(ev, n, revision);
    qitem *it = b ? malloc(sizeof *it) : NULL;
    uv_mutex_lock(&w->mu);
    size_t bytes = b ? watch_batch_bytes(b) + sizeof *it : 0;
    if (!it || w->queued_bytes + bytes > w->queue_cap) {
        w->lost = true; /* the hub reads it from history */
        uv_mutex_unlock(&w->mu);
        free(it);
        if (b) watch_batch_free(b);
        uv_async_send(&w->async);
        return;
    }
    it->next = NULL;
    it->b = b;
    it->bytes = bytes;
    if (w->tail)
        w->tail->next = it;
    else
        w->head = it;
    w->tail = it;
    w->queued_bytes += bytes;
    uv_mutex_unlock(&w->mu);
    uv_async_send(&w->async);
}

static void drain_queue(kvs_watch *w, bool deliver) {
    uv_mutex_lock(&w->mu);
    qitem *list = w->head;
    bool lost = w->lost;
    w->head = w->tail = NULL;
    w->queued_bytes = 0;
    w->lost = false;
    uv_mutex_unlock(&w->mu);
    while (list) {
        qitem *next = list->next;
        if (deliver) watch_hub_on_commit(w->hub, list->b);
        watch_batch_free(list->b);
        free(list);
        list = next;
    }
    if (lost && deliver) watch_hub_on_lost_commit(w->hub);
}

static void on_async(uv_async_t *a) {
    kvs_watch *w = a->data;
    drain_queue(w, true);
    kick(w);
}

/* ---- metrics ----------------------------------------------------------------------------------
 */

/* Scrape-time values: live from the hub on the loop thread, else the last snapshot. */
static watch_stats read_stats(kvs_watch *w) {
    uv_thread_t self = uv_thread_self();
    if (uv_thread_equal(&self, &w->srv->loop_thread)) refresh_snapshot(w);
    uv_mutex_lock(&w->calls_mu);
    watch_stats st = w->snap;
    uv_mutex_unlock(&w->calls_mu);
    return st;
}

static double g_watchers(void *ud) {
    return (double)read_stats(ud).watchers;
}
static double g_streams(void *ud) {
    return (double)read_stats(ud).streams;
}
static double g_slow(void *ud) {
    return (double)read_stats(ud).slow_watchers;
}
static double c_events(void *ud) {
    return (double)read_stats(ud).events_total;
}
static double c_victims(void *ud) {
    return (double)read_stats(ud).victims_total;
}
static double c_dropped(void *ud) {
    return (double)read_stats(ud).lost_commits;
}

/* relistlab_client_watches{peer}: watchers per client address, summed over its streams. */
static void collect_client_watches(void *ud, kvs_sample_writer *sw) {
    collector_ref *ref = ud;
    uv_mutex_lock(&ref->mu);
    kvs_watch *w = ref->w;
    if (!w) {
        uv_mutex_unlock(&ref->mu);
        return;
    }
    static const char *const names[] = {"peer"};
    uv_mutex_lock(&w->calls_mu);
    for (wcall *c = w->calls; c; c = c->next) {
        const char *peer = kvs_peer_label(c->conn->peer);
        bool seen = false; /* already summed under an earlier stream of the same peer */
        for (wcall *p = w->calls; p != c && !seen; p = p->next)
            seen = !strcmp(kvs_peer_label(p->conn->peer), peer);
        if (seen) continue;
        size_t sum = 0;
        for (wcall *p = c; p; p = p->next)
            if (!strcmp(kvs_peer_label(p->conn->peer), peer)) sum += p->watchers;
        const char *values[] = {peer};
        kvs_sample_write(sw, "", names, values, 1, (double)sum);
    }
    uv_mutex_unlock(&w->calls_mu);
    uv_mutex_unlock(&ref->mu);
}

static void free_collector_ref(void *ud) {
    collector_ref *ref = ud;
    uv_mutex_destroy(&ref->mu);
    free(ref);
}

static int init_metrics(kvs_watch *w) {
    kvs_registry *r = w->srv->reg;
    kvs_family *f;
    w->m_watchers = kvs_family_only(f = kvs_registry_gauge(r, "etcd_debugging_mvcc_watcher_total",
                                                           "Total number of watchers.", NULL));
    if (!f) return -1;
    w->m_streams =
        kvs_family_only(f = kvs_registry_gauge(r, "etcd_debugging_mvcc_watch_stream_total",
                                               "Total number of watch streams.", NULL));
    if (!f) return -1;
    w->m_slow =
        kvs_family_only(f = kvs_registry_gauge(r, "etcd_debugging_mvcc_slow_watcher_total",
                                               "Total number of unsynced slow watchers.", NULL));
    if (!f) return -1;
    w->m_events = kvs_family_only(
        f = kvs_registry_counter(r, "etcd_debugging_mvcc_events_total",
                                 "Total number of events sent by this member.", NULL));
    if (!f) return -1;
    w->m_victims = kvs_family_only(
        f = kvs_registry_counter(r, "relistlab_watch_held_back_total",
                                 "Times a synced watcher was held back because its stream's "
                                 "output was over the high-water mark (etcd's victims).",
                                 NULL));
    if (!f) return -1;
    w->m_dropped = kvs_family_only(
        f = kvs_registry_counter(r, "relistlab_watch_lost_commits_total",
                                 "Commits the watch hub read back from history instead of "
                                 "receiving them from the writer (hand-over queue full).",
                                 NULL));
    if (!f) return -1;
    kvs_series_set_fn(w->m_watchers, g_watchers, w);
    kvs_series_set_fn(w->m_streams, g_streams, w);
    kvs_series_set_fn(w->m_slow, g_slow, w);
    kvs_series_set_fn(w->m_events, c_events, w);
    kvs_series_set_fn(w->m_victims, c_victims, w);
    kvs_series_set_fn(w->m_dropped, c_dropped, w);
    collector_ref *ref = calloc(1, sizeof *ref);
    if (!ref) return -1;
    if (uv_mutex_init(&ref->mu) != 0) {
        free(ref);
        return -1;
    }
    ref->w = w;
    if (!kvs_registry_custom(r, "relistlab_client_watches",
                             "Watchers open per client address (all its Watch streams).", KVS_GAUGE,
                             collect_client_watches, ref, free_collector_ref)) {
        free_collector_ref(ref);
        return -1;
    }
    w->cref = ref;
    return 0;
}

/* ---- life cycle --------------------------------------------------------------------------- */

int kvs_watch_init(kvs_server *srv) {
    kvs_watch *w = calloc(1, sizeof *w);
    if (!w) return -1;
    w->srv = srv;
    w->queue_cap = srv->opts.watch_queue_bytes;
    watch_hub_opts ho = {
        .progress_interval_ms = srv->opts.progress_notify_ms,
        /* etcd's watch server fragments at max-request-bytes + gRPC overhead */
        .max_response_bytes = srv->opts.max_request_bytes + KVS_GRPC_OVERHEAD_BYTES,
        .max_request_bytes = srv->opts.max_request_bytes + KVS_GRPC_OVERHEAD_BYTES,
    };
    if (uv_mutex_init(&w->mu) != 0) {
        free(w);
        return -1;
    }
    if (uv_mutex_init(&w->calls_mu) != 0) {
        uv_mutex_destroy(&w->mu);
        free(w);
        return -1;
    }
    srv->watch = w;
    if (!(w->hub = watch_hub_new(srv->store, &ho)) || init_metrics(w) != 0) {
        kvs_watch_free(srv);
        return -1;
    }
    uv_async_init(srv->loop, &w->async, on_async);
    uv_idle_init(srv->loop, &w->idle);
    uv_timer_init(srv->loop, &w->tick);
    w->async.data = w->idle.data = w->tick.data = w;
    w->handles_up = true;
    /* Ticks drive progress_notify: at least 4 per period, at most one a second. */
    uint64_t period = srv->opts.progress_notify_ms / 4;
    if (period > 1000) period = 1000;
    if (period < 10) period = 10;
    uv_timer_start(&w->tick, on_tick, period, period);
    kv_set_commit_cb(srv->store, on_commit, w);
    return 0;
}

static void end_call(wcall *c, int status, const char *msg) {
    kvs_watch *w = c->w;
    uv_mutex_lock(&w->calls_mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    uv_mutex_unlock(&w->calls_mu);
    watch_stream_free(c->ws);
    grpc_stream_finish(c->call, status, msg);
    kvs_rpc_metrics_done(&w->srv->rpc[KVS_M_WATCH], status, (double)(uv_hrtime() - c->t0) / 1e9);
    kvs_conn_unref(c->conn);
    free(c);
}

void kvs_watch_shutdown_begin(kvs_server *srv) {
    kvs_watch *w = srv->watch;
    if (!w) return;
    w->stopping = true;
    while (w->calls)
        end_call(w->calls, GRPC_STATUS_UNAVAILABLE, "etcdserver: server stopped");
}

static void on_handle_closed(uv_handle_t *h) {
    kvs_watch *w = h->data;
    kvs_server_step_done(w->srv);
}

int kvs_watch_close(kvs_server *srv) {
    kvs_watch *w = srv->watch;
    if (!w || !w->handles_up) return 0;
    kv_set_commit_cb(srv->store, NULL, NULL); /* the writer has stopped: no more commits */
    w->handles_up = false;
    uv_idle_stop(&w->idle);
    uv_timer_stop(&w->tick);
    uv_close((uv_handle_t *)&w->async, on_handle_closed);
    uv_close((uv_handle_t *)&w->idle, on_handle_closed);
    uv_close((uv_handle_t *)&w->tick, on_handle_closed);
    return 3;
}

void kvs_watch_free(kvs_server *srv) {
    kvs_watch *w = srv->watch;
    if (!w) return;
    srv->watch = NULL;
    if (w->hub) drain_queue(w, false);
    /* The registry may outlive the hub: scrapes then read zeros. */
    kvs_series_set_fn(w->m_watchers, NULL, NULL);
    kvs_series_set_fn(w->m_streams, NULL, NULL);
    kvs_series_set_fn(w->m_slow, NULL, NULL);
    kvs_series_set_fn(w->m_events, NULL, NULL);
    kvs_series_set_fn(w->m_victims, NULL, NULL);
    kvs_series_set_fn(w->m_dropped, NULL, NULL);
    if (w->cref) {
        uv_mutex_lock(&w->cref->mu);
        w->cref->w = NULL;
        uv_mutex_unlock(&w->cref->mu);
    }
    while (w->calls) { /* not reached in an orderly shutdown */
        wcall *c = w->calls;
        w->calls = c->next;
        watch_stream_free(c->ws);
        free(c);
    }
    watch_hub_free(w->hub);
    uv_mutex_destroy(&w->calls_mu);
    uv_mutex_destroy(&w->mu);
    free(w);
}

/* ---- one Watch call ------------------------------------------------------------------------- */

static int sink_result(int rc) {
    if (rc < 0) return -1;
    return rc == GRPC_SEND_FULL ? 1 : 0;
}

static void count_sent(wcall *c, size_t len) {
    kvs_counter_inc(c->w->srv->rpc[KVS_M_WATCH].msg_sent);
    if (c->conn) kvs_peer_add_sent(c->conn->peer, len + 5);
}

static int sink_send(void *ud, const uint8_t *msg, size_t len) {
    wcall *c = ud;
    int rc = grpc_call_send(c->call, msg, len);
    if (rc >= 0) count_sent(c, len);
    return sink_result(rc);
}

static int sink_sendv(void *ud, const uint8_t *head, size_t head_len, const uint8_t *body,
                      size_t body_len) {
    wcall *c = ud;
    int rc = grpc_call_send_begin(c->call, head_len + body_len), full = 0;
    if (rc < 0) return -1;
    full |= rc == GRPC_SEND_FULL;
    if (head_len) {
        if ((rc = grpc_call_send_chunk(c->call, head, head_len)) < 0) return -1;
        full |= rc == GRPC_SEND_FULL;
    }
    if (body_len) {
        if ((rc = grpc_call_send_chunk(c->call, body, body_len)) < 0) return -1;
        full |= rc == GRPC_SEND_FULL;
    }
    count_sent(c, head_len + body_len);
    return full ? 1 : 0;
}

void kvs_watch_on_open(grpc_stream *s, void *ud) {
    kvs_method_ud *mu = ud;
    kvs_server *srv = mu->srv;
    kvs_watch *w = srv->watch;
    kvs_counter_inc(srv->rpc[KVS_M_WATCH].started);
    if (w->stopping) {
        grpc_stream_finish(s, GRPC_STATUS_UNAVAILABLE, "etcdserver: server stopped");
        kvs_rpc_metrics_done(&srv->rpc[KVS_M_WATCH], GRPC_STATUS_UNAVAILABLE, 0);
        return;
    }
    wcall *c = calloc(1, sizeof *c);
    static const watch_sink sink = {sink_send, sink_sendv};
    if (c) c->ws = watch_stream_new(w->hub, &sink, c);
    if (!c || !c->ws) {
        free(c);
        grpc_stream_finish(s, GRPC_STATUS_RESOURCE_EXHAUSTED, kv_code_message(KV_ERR_NOMEM));
        kvs_rpc_metrics_done(&srv->rpc[KVS_M_WATCH], GRPC_STATUS_RESOURCE_EXHAUSTED, 0);
        return;
    }
    c->tag = TAG_WATCH;
    c->w = w;
    c->call = s;
    c->t0 = uv_hrtime();
    c->conn = grpc_conn_user_data(grpc_call_conn(s));
    if (c->conn) c->conn->refs++;
    uv_mutex_lock(&w->calls_mu);
    c->next = w->calls;
    if (w->calls) w->calls->prev = c;
    w->calls = c;
    uv_mutex_unlock(&w->calls_mu);
    grpc_call_set_user_data(s, c);
}

void kvs_watch_on_message(grpc_stream *s, const uint8_t *msg, size_t len, void *ud) {
    wcall *c = ud;
    (void)s;
    kvs_server *srv = c->w->srv;
    kvs_counter_inc(srv->rpc[KVS_M_WATCH].msg_received);
    if (c->conn) kvs_peer_count_request(srv->metrics.peers, c->conn->peer, "Watch");
    int rc = watch_stream_request(c->ws, msg, len);
    if (rc != WATCH_OK) {
        /* grpc-go fails Recv on bytes that do not unmarshal; etcd's Watch() returns that. */
        end_call(c, rc == WATCH_ERR_NOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INTERNAL,
                 rc == WATCH_ERR_MALFORMED
                     ? "grpc: failed to unmarshal the received message: proto: cannot parse "
                       "invalid wire-format data"
                     : watch_code_message(rc));
        return;
    }
    watch_stream_stats ss;
    watch_stream_stats_get(c->ws, &ss);
    uv_mutex_lock(&c->w->calls_mu);
    c->watchers = ss.watchers;
    uv_mutex_unlock(&c->w->calls_mu);
    kick(c->w);
}

void kvs_watch_on_half_close(grpc_stream *s, void *ud) {
    /* etcd 3.4 keeps serving the watchers until the client cancels the stream. */
    (void)s;
    (void)ud;
}

void kvs_watch_on_cancel(grpc_call *call, void *ud) {
    wcall *c = ud;
    (void)call;
    if (!c || c->tag != TAG_WATCH) return;
    end_call(c, GRPC_STATUS_CANCELLED, "context canceled");
}

void kvs_watch_on_writable(grpc_call *call, void *ud) {
    wcall *c = ud;
    (void)call;
    if (!c || c->tag != TAG_WATCH) return;
    watch_stream_writable(c->ws);
    kick(c->w);
}
