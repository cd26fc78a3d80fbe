/* lease_service.c — etcdserverpb.Lease on the engine's lessor (kv_lease_* in kv.h): the unary
 * methods, the LeaseKeepAlive stream, expiry, and the lease metrics.
 *
 * Key decisions (etcd 3.4: etcdserver/api/v3rpc/lease.go, etcdserver/v3_server.go,
 * lease/lessor.go):
 * - LeaseGrant and LeaseRevoke change the store, so they are writes: queued to the writer
 *   thread as kv_write.lease ops and group-committed in order with the puts around them (etcd
 *   sends both through raft). A revoke deletes the lease's keys in one revision; watchers see
 *   the DELETE events through the ordinary commit path.
 * - LeaseKeepAlive, LeaseTimeToLive and LeaseLeases only read or renew in-memory expiry, so
 *   they run on the loop thread (the engine allows that concurrently with the writer). An
 *   unknown lease answers TTL 0 (keep-alive) or TTL -1 (time-to-live), as v3rpc does.
 * - Expiry: a 500 ms timer (etcd's lessor checks every 500 ms) asks kv_lease_expired and
 *   queues one revoke per expired lease through the writer. No new check starts while the
 *   previous round's revokes are in flight, so a lease is not revoked twice.
 * - Every lease call gets kvs_now_ms() (a monotonic clock usable from any thread).
 * - A client half-close of LeaseKeepAlive ends the stream with OK (etcd: Recv io.EOF ->
 *   return nil).
 */
#include <stdlib.h>
#include <string.h>

#include "srv_internal.h"

#define TAG_KEEPALIVE 0x6b616c76
#define MAX_EXPIRED   256
/* A keep-alive client that never reads its responses: end the stream past this. */
#define KA_MAX_BUFFERED ((size_t)16 << 20)
#define MSG_UNMARSHAL                                                                              \
    "grpc: error unmarshalling request: proto: cannot parse invalid wire-format data"
#define MSG_TOO_LARGE "etcdserver: request is too large"

typedef struct kacall kacall;

typedef struct kvs_lease {
    kvs_server *srv;
    uv_timer_t expiry;
    bool timer_up, stopping;
    size_t inflight; /* expiry revokes queued at the writer */
    kv_arena *arena; /* loop-thread responses (reset after each) */
    kvs_series *granted, *revoked, *renewed, *live;
    kacall *calls; /* open LeaseKeepAlive streams */
} kvs_lease;

struct kacall {
    int tag; /* TAG_KEEPALIVE */
    kvs_lease *l;
    grpc_call *call;
    kvs_conn *conn;
    uint64_t t0;
    kacall *prev, *next;
};

int64_t kvs_now_ms(void) {
    return (int64_t)(uv_hrtime() / 1000000u);
}

/* ---- responses ---------------------------------------------------------------------------- */

/* Packs m into buf (stack) or a malloc'd buffer; returns it and its size, NULL on OOM. */
static uint8_t *pack(const ProtobufCMessage *m, uint8_t *stack, size_t cap, size_t *n) {
    *n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = *n <= cap ? stack : malloc(*n);
    if (buf) protobuf_c_message_pack(m, buf);
    return buf;
}

static void reply(kvs_server *srv, grpc_call *call, kvs_conn *kc, kvs_method m, uint64_t t0,
                  const ProtobufCMessage *msg) {
    uint8_t stack[1024];
    size_t n;
    uint8_t *buf = pack(msg, stack, sizeof stack, &n);
    if (!buf) {
        grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, kv_code_message(KV_ERR_NOMEM));
        kvs_finish_metrics(srv, kc, m, t0, GRPC_STATUS_RESOURCE_EXHAUSTED, 0);
        return;
    }
    grpc_call_reply(call, buf, n);
    if (buf != stack) free(buf);
    kvs_finish_metrics(srv, kc, m, t0, GRPC_STATUS_OK, n);
}

/* ---- grant / revoke: through the writer ------------------------------------------------------ */

static void write_done(kvs_req *r) {
    kvs_server *srv = r->srv;
    kvs_lease *l = srv->lease;
    bool ok = r->w.err.code == KV_OK;
    bool grant = r->m == KVS_M_LEASE_GRANT;
    if (ok) kvs_counter_inc(grant ? l->granted : l->revoked);
    if (!r->call) { /* an expiry revoke */
        l->inflight--;
        if (!ok && r->w.err.code != KV_ERR_LEASE_NOT_FOUND)
            kvs_logf(srv, "revoking expired lease %llx failed: %s",
                     (unsigned long long)r->revoke_local.id, r->w.err.msg);
        kvs_req_free(r);
        return;
    }
    const ProtobufCMessage *m = NULL;
    if (ok) {
        m = grant ? (const ProtobufCMessage *)r->lease_op.grant_resp
                  : (const ProtobufCMessage *)r->lease_op.revoke_resp;
    }
    if (!ok || !m) {
        kv_err e = r->w.err;
        if (e.code == KV_OK) e.code = KV_ERR_IO;
        kvs_fail_kv(srv, r->call, r->conn, r->m, r->t0, &e);
    } else {
        reply(srv, r->call, r->conn, r->m, r->t0, m);
    }
    kvs_req_free(r);
}

static kvs_req *new_write(kvs_server *srv, kvs_method m) {
    kvs_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    if (!(r->arena = kv_arena_new())) {
        free(r);
        return NULL;
    }
    r->srv = srv;
    r->m = m;
    r->t0 = uv_hrtime();
    r->lease = &r->lease_op;
    r->on_done = write_done;
    return r;
}

static void submit_write(kvs_server *srv, grpc_call *call, kvs_conn *kc, kvs_method m,
                         const uint8_t *msg, size_t len, uint64_t t0) {
    if (len > srv->opts.max_request_bytes) { /* etcd's check on the raft path */
        kvs_fail_call(srv, call, kc, m, t0, GRPC_STATUS_INVALID_ARGUMENT, MSG_TOO_LARGE);
        return;
    }
    kvs_req *r = new_write(srv, m);
    if (!r) {
        kvs_fail_call(srv, call, kc, m, t0, GRPC_STATUS_RESOURCE_EXHAUSTED,
                      kv_code_message(KV_ERR_NOMEM));
        return;
    }
    r->call = call;
    r->t0 = t0;
    kvs_alloc_init(&r->alloc, 8 * len + 4096);
    const ProtobufCMessageDescriptor *d = m == KVS_M_LEASE_GRANT
                                              ? &etcdserverpb__lease_grant_request__descriptor
                                              : &etcdserverpb__lease_revoke_request__descriptor;
    if (kvs_unpack(d, msg, len, &r->alloc, &r->msg) != KVS_DEC_OK) {
        r->msg = NULL;
        kvs_fail_call(srv, call, kc, m, t0, GRPC_STATUS_INTERNAL, MSG_UNMARSHAL);
        kvs_req_free(r);
        return;
    }
    if (m == KVS_M_LEASE_GRANT) {
        r->lease_op.grant = (const Etcdserverpb__LeaseGrantRequest *)r->msg;
        r->lease_op.now_ms = kvs_now_ms();
    } else {
        r->lease_op.revoke = (const Etcdserverpb__LeaseRevokeRequest *)r->msg;
    }
    if (kc) kc->refs++;
    r->conn = kc;
    kvs_writer_submit(srv->writer, r);
}

/* ---- expiry -------------------------------------------------------------------------------- */

static void on_expiry(uv_timer_t *t) {
    kvs_lease *l = t->data;
    kvs_server *srv = l->srv;
    if (l->inflight || l->stopping || !srv->writer) return;
    int64_t ids[MAX_EXPIRED];
    size_t n = kv_lease_expired(srv->store, kvs_now_ms(), ids, MAX_EXPIRED);
    for (size_t i = 0; i < n; i++) {
        kvs_req *r = new_write(srv, KVS_M_LEASE_REVOKE);
        if (!r) break; /* retried at the next check */
        Etcdserverpb__LeaseRevokeRequest init = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
        r->revoke_local = init;
        r->revoke_local.id = ids[i];
        r->lease_op.revoke = &r->revoke_local;
        l->inflight++;
        kvs_writer_submit(srv->writer, r);
    }
}

/* ---- time-to-live / leases: on the loop --------------------------------------------------------
 */

static void serve_read(kvs_server *srv, grpc_call *call, kvs_conn *kc, kvs_method m,
                       const uint8_t *msg, size_t len, uint64_t t0) {
    kvs_lease *l = srv->lease;
    kvs_alloc a;
    kvs_alloc_init(&a, 8 * len + 4096);
    ProtobufCMessage *pm = NULL;
    const ProtobufCMessageDescriptor *d =
        m == KVS_M_LEASE_TTL ? &etcdserverpb__lease_time_to_live_request__descriptor
                             : &etcdserverpb__lease_leases_request__descriptor;
    if (kvs_unpack(d, msg, len, &a, &pm) != KVS_DEC_OK) {
        kvs_fail_call(srv, call, kc, m, t0, GRPC_STATUS_INTERNAL, MSG_UNMARSHAL);
        return;
    }
    kv_err err;
    memset(&err, 0, sizeof err);
    const ProtobufCMessage *resp = NULL;
    int rc;
    if (m == KVS_M_LEASE_TTL) {
        Etcdserverpb__LeaseTimeToLiveResponse *tr = NULL;
        rc = kv_lease_timetolive(srv->store, (const Etcdserverpb__LeaseTimeToLiveRequest *)pm,
                                 kvs_now_ms(), l->arena, &tr, &err);
        resp = (const ProtobufCMessage *)tr;
    } else {
        Etcdserverpb__LeaseLeasesResponse *lr = NULL;
        rc = kv_lease_leases(srv->store, kvs_now_ms(), l->arena, &lr, &err);
        resp = (const ProtobufCMessage *)lr;
    }
    protobuf_c_message_free_unpacked(pm, &a.pc);
    if (rc != KV_OK || !resp) {
        if (err.code == KV_OK) err.code = rc != KV_OK ? (kv_code)rc : KV_ERR_IO;
        kvs_fail_kv(srv, call, kc, m, t0, &err);
    } else {
        reply(srv, call, kc, m, t0, resp);
    }
    kv_arena_reset(l->arena);
}

void kvs_lease_on_unary(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    kvs_method_ud *mu = ud;
    kvs_server *srv = mu->srv;
    uint64_t t0 = uv_hrtime();
    kvs_conn *kc = grpc_conn_user_data(grpc_call_conn(call));
    kvs_counter_inc(srv->rpc[mu->m].started);
    kvs_counter_inc(srv->rpc[mu->m].msg_received);
    if (kc) kvs_peer_count_request(srv->metrics.peers, kc->peer, kvs_method_name(mu->m));
    if (mu->m == KVS_M_LEASE_GRANT || mu->m == KVS_M_LEASE_REVOKE)
        submit_write(srv, call, kc, mu->m, msg, len, t0);
    else
        serve_read(srv, call, kc, mu->m, msg, len, t0);
}

/* ---- LeaseKeepAlive ---------------------------------------------------------------------------
 */

static void ka_end(kacall *c, int status, const char *msg) {
    kvs_lease *l = c->l;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    grpc_stream_finish(c->call, status, msg);
    kvs_rpc_metrics_done(&l->srv->rpc[KVS_M_LEASE_KEEPALIVE], status,
                         (double)(uv_hrtime() - c->t0) / 1e9);
    kvs_conn_unref(c->conn);
    free(c);
}

void kvs_lease_ka_on_open(grpc_stream *s, void *ud) {
    kvs_method_ud *mu = ud;
    kvs_server *srv = mu->srv;
    kvs_lease *l = srv->lease;
    kvs_counter_inc(srv->rpc[KVS_M_LEASE_KEEPALIVE].started);
    kacall *c = l->stopping ? NULL : calloc(1, sizeof *c);
    if (!c) {
        int st = l->stopping ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_RESOURCE_EXHAUSTED;
        grpc_stream_finish(
            s, st, l->stopping ? "etcdserver: server stopped" : kv_code_message(KV_ERR_NOMEM));
        kvs_rpc_metrics_done(&srv->rpc[KVS_M_LEASE_KEEPALIVE], st, 0);
        return;
    }
    c->tag = TAG_KEEPALIVE;
    c->l = l;
    c->call = s;
    c->t0 = uv_hrtime();
    c->conn = grpc_conn_user_data(grpc_call_conn(s));
    if (c->conn) c->conn->refs++;
    c->next = l->calls;
    if (l->calls) l->calls->prev = c;
    l->calls = c;
    grpc_call_set_user_data(s, c);
}

void kvs_lease_ka_on_message(grpc_stream *s, const uint8_t *msg, size_t len, void *ud) {
    kacall *c = ud;
    kvs_lease *l = c->l;
    kvs_server *srv = l->srv;
    kvs_rpc_metrics *rm = &srv->rpc[KVS_M_LEASE_KEEPALIVE];
    kvs_counter_inc(rm->msg_received);
    if (c->conn) kvs_peer_count_request(srv->metrics.peers, c->conn->peer, "LeaseKeepAlive");
    kvs_alloc a;
    kvs_alloc_init(&a, 8 * len + 4096);
    ProtobufCMessage *pm = NULL;
    if (kvs_unpack(&etcdserverpb__lease_keep_alive_request__descriptor, msg, len, &a, &pm) !=
        KVS_DEC_OK) {
        ka_end(c, GRPC_STATUS_INTERNAL, MSG_UNMARSHAL);
        return;
    }
    Etcdserverpb__LeaseKeepAliveResponse *resp = NULL;
    kv_err err;
    memset(&err, 0, sizeof err);
    int rc = kv_lease_keepalive(srv->store, (const Etcdserverpb__LeaseKeepAliveRequest *)pm,
                                kvs_now_ms(), l->arena, &resp, &err);
    protobuf_c_message_free_unpacked(pm, &a.pc);
    if (rc != KV_OK || !resp) {
        kv_arena_reset(l->arena);
        if (err.code == KV_OK) err.code = rc != KV_OK ? (kv_code)rc : KV_ERR_IO;
        ka_end(c, kv_code_grpc_status(err.code), err.msg[0] ? err.msg : kv_code_message(err.code));
        return;
    }
    if (resp->ttl > 0) kvs_counter_inc(l->renewed);
    uint8_t stack[256];
    size_t n;
    uint8_t *buf = pack(&resp->base, stack, sizeof stack, &n);
    kv_arena_reset(l->arena);
    if (!buf) {
        ka_end(c, GRPC_STATUS_RESOURCE_EXHAUSTED, kv_code_message(KV_ERR_NOMEM));
        return;
    }
    int sr = grpc_stream_send(s, buf, n);
    if (buf != stack) free(buf);
    if (sr < 0) return; /* cancelled: on_cancel ends it */
    kvs_counter_inc(rm->msg_sent);
    if (c->conn) kvs_peer_add_sent(c->conn->peer, n + 5);
    /* The input is consumed as it arrives, so a client that sends keep-alives without reading
     * the answers is cut off rather than buffered for without bound. */
    if (grpc_call_out_buffered(s) > KA_MAX_BUFFERED)
        ka_end(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
               "kvstore: keep-alive responses are not being read");
}

void kvs_lease_ka_on_half_close(grpc_stream *s, void *ud) {
    (void)s;
    ka_end(ud, GRPC_STATUS_OK, NULL);
}

void kvs_lease_ka_on_cancel(grpc_call *call, void *ud) {
    kacall *c = ud;
    (void)call;
    if (!c || c->tag != TAG_KEEPALIVE) return;
    ka_end(c, GRPC_STATUS_CANCELLED, "context canceled");
}

/* ---- metrics and life cycle ----------------------------------------------------------------- */

static double g_live(void *ud) {
    kvs_lease *l = ud;
    kv_arena *a = kv_arena_new(); /* any thread: not the loop's arena */
    if (!a) return 0;
    Etcdserverpb__LeaseLeasesResponse *lr = NULL;
    kv_err err;
    double n = 0;
    if (kv_lease_leases(l->srv->store, kvs_now_ms(), a, &lr, &err) == KV_OK && lr)
        n = (double)lr->n_leases;
    kv_arena_free(a);
    return n;
}

int kvs_lease_init(kvs_server *srv) {
    kvs_lease *l = calloc(1, sizeof *l);
    if (!l) return -1;
    l->srv = srv;
    srv->lease = l;
    kvs_registry *r = srv->reg;
    kvs_family *fg, *fr, *fn, *fl;
    fg = kvs_registry_counter(r, "etcd_debugging_lease_granted_total",
                              "The total number of granted leases.", NULL);
    fr = kvs_registry_counter(r, "etcd_debugging_lease_revoked_total",
                              "The total number of revoked leases.", NULL);
    fn = kvs_registry_counter(r, "etcd_debugging_lease_renewed_total",
                              "The number of renewed leases seen by the leader.", NULL);
    fl = kvs_registry_gauge(r, "relistlab_lease_live",
                            "Leases granted and not yet revoked (expired ones until revoked).",
                            NULL);
    if (!(l->arena = kv_arena_new()) || !fg || !fr || !fn || !fl) {
        kvs_lease_free(srv);
        return -1;
    }
    l->granted = kvs_family_only(fg);
    l->revoked = kvs_family_only(fr);
    l->renewed = kvs_family_only(fn);
    l->live = kvs_family_only(fl);
    kvs_series_set_fn(l->live, g_live, l);
    uv_timer_init(srv->loop, &l->expiry);
    l->expiry.data = l;
    l->timer_up = true;
    uv_timer_start(&l->expiry, on_expiry, KVS_LEASE_CHECK_MS, KVS_LEASE_CHECK_MS);
    return 0;
}

void kvs_lease_shutdown_begin(kvs_server *srv) {
    kvs_lease *l = srv->lease;
    if (!l) return;
    l->stopping = true;
    if (l->timer_up) uv_timer_stop(&l->expiry);
    while (l->calls)
        ka_end(l->calls, GRPC_STATUS_UNAVAILABLE, "etcdserver: server stopped");
}

static void on_closed(uv_handle_t *h) {
    kvs_lease *l = h->data;
    kvs_server_step_done(l->srv);
}

int kvs_lease_close(kvs_server *srv) {
    kvs_lease *l = srv->lease;
    if (!l || !l->timer_up) return 0;
    l->timer_up = false;
    uv_close((uv_handle_t *)&l->expiry, on_closed);
    return 1;
}

void kvs_lease_free(kvs_server *srv) {
    kvs_lease *l = srv->lease;
    if (!l) return;
    srv->lease = NULL;
    kvs_series_set_fn(l->live, NULL, NULL);
    while (l->calls) { /* not reached in an orderly shutdown */
        kacall *c = l->calls;
        l->calls = c->next;
        free(c);
    }
    if (l->arena) kv_arena_free(l->arena);
    free(l);
}
