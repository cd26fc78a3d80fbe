/* srv_watchcli.h — a Watch stream client for the `kvstore serve` suites (test_srv_watch.c,
 * test_srv_lease.c), on the project's own gRPC client (srv_harness.h): open a stream, send
 * create / cancel / progress requests, keep every response (decoded), wait for conditions;
 * plus pipelined puts that record their revisions. Header-only, like srv_harness.h. */
#ifndef RELIST_SRV_WATCHCLI_H
#define RELIST_SRV_WATCHCLI_H

#include "srv_harness.h"

#define P_WATCH   "/etcdserverpb.Watch/Watch"
#define P_LGRANT  "/etcdserverpb.Lease/LeaseGrant"
#define P_LREVOKE "/etcdserverpb.Lease/LeaseRevoke"
#define P_LKEEP   "/etcdserverpb.Lease/LeaseKeepAlive"
#define P_LTTL    "/etcdserverpb.Lease/LeaseTimeToLive"
#define P_LLEASES "/etcdserverpb.Lease/LeaseLeases"

typedef struct wstream {
    cli *c;
    grpc_cstream *s;
    Etcdserverpb__WatchResponse **r; /* every response, in arrival order */
    size_t n, cap;
    uint64_t events;
    bool closed;
    int status;
    char message[256];
} wstream;

static inline void ws_on_msg(grpc_cstream *s, const uint8_t *msg, size_t len, void *ud) {
    (void)s;
    wstream *w = ud;
    Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(NULL, len, msg);
    if (!r) fail_msg("undecodable WatchResponse (%zu bytes)", len);
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 256;
        w->r = realloc(w->r, w->cap * sizeof *w->r);
    }
    w->r[w->n++] = r;
    w->events += r->n_events;
}

static inline void ws_on_close(grpc_cstream *s, int status, const char *message, void *ud) {
    (void)s;
    wstream *w = ud;
    w->closed = true;
    w->s = NULL;
    w->status = status;
    snprintf(w->message, sizeof w->message, "%s", message);
}

static inline wstream *ws_open(cli *c) {
    wstream *w = calloc(1, sizeof *w);
    w->c = c;
    grpc_cstream_cbs cbs = {.on_message = ws_on_msg, .on_close = ws_on_close};
    grpc_metadata md[] = {{"hasleader", "true"}}; /* etcdctl sends it: accepted, ignored */
    w->s = grpc_client_stream_open(c->c, P_WATCH, md, 1, &cbs, w);
    assert_non_null(w->s);
    return w;
}

static inline void ws_send(wstream *w, const Etcdserverpb__WatchRequest *req) {
    size_t n = etcdserverpb__watch_request__get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    etcdserverpb__watch_request__pack(req, buf);
    assert_true(grpc_cstream_send(w->s, buf, n) >= 0);
    free(buf);
}

typedef struct ws_create_opts {
    const char *end; /* NULL = single key; "\0" spelled as from_key */
    bool from_key;
    int64_t start, watch_id;
    bool prev_kv, progress_notify, fragment, noput, nodelete;
} ws_create_opts;

static inline void ws_create(wstream *w, const char *key, const ws_create_opts *o) {
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    static const uint8_t zero = 0;
    cr.key = bd(key);
    if (o && o->from_key)
        cr.range_end = (ProtobufCBinaryData){1, (uint8_t *)&zero};
    else if (o && o->end)
        cr.range_end = bd(o->end);
    Etcdserverpb__WatchCreateRequest__FilterType f[2];
    if (o) {
        cr.start_revision = o->start;
        cr.watch_id = o->watch_id;
        cr.prev_kv = o->prev_kv;
        cr.progress_notify = o->progress_notify;
        cr.fragment = o->fragment;
        if (o->noput) f[cr.n_filters++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT;
        if (o->nodelete)
            f[cr.n_filters++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE;
        cr.filters = f;
    }
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    req.create_request = &cr;
    ws_send(w, &req);
}

static inline void ws_cancel(wstream *w, int64_t id) {
    Etcdserverpb__WatchCancelRequest cr = ETCDSERVERPB__WATCH_CANCEL_REQUEST__INIT;
    cr.watch_id = id;
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST;
    req.cancel_request = &cr;
    ws_send(w, &req);
}

static inline void ws_progress(wstream *w) {
    Etcdserverpb__WatchProgressRequest pr = ETCDSERVERPB__WATCH_PROGRESS_REQUEST__INIT;
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST;
    req.progress_request = &pr;
    ws_send(w, &req);
}

/* Runs the client loop until cond(w, arg) holds or timeout_ms passes. */
static inline bool ws_wait(wstream *w, bool (*cond)(wstream *, void *), void *arg,
                           uint64_t timeout_ms) {
    uint64_t end = uv_now(&w->c->loop) + timeout_ms;
    bool f = false;
    while (!cond(w, arg)) {
        if (uv_now(&w->c->loop) >= end) return false;
        run_until(&w->c->loop, &f, 5);
    }
    return true;
}

static inline bool ws_has_n(wstream *w, void *arg) {
    return w->n >= *(size_t *)arg || w->closed;
}
static inline bool ws_has_events(wstream *w, void *arg) {
    return w->events >= *(uint64_t *)arg || w->closed;
}
/* Waits for at least n responses in total. */
static inline void ws_wait_n(wstream *w, size_t n) {
    if (!ws_wait(w, ws_has_n, &n, 10000)) fail_msg("got %zu responses, want %zu", w->n, n);
}

static inline void ws_free(wstream *w) {
    if (w->s) grpc_cstream_cancel(w->s);
    for (size_t i = 0; i < w->n; i++)
        etcdserverpb__watch_response__free_unpacked(w->r[i], NULL);
    free(w->r);
    free(w);
}

static inline bool bytes_is(ProtobufCBinaryData b, const char *s) {
    return b.len == strlen(s) && !memcmp(b.data, s, b.len);
}

/* ---- pipelined puts ---- */

typedef struct put_rec {
    bool done;
    int status;
    int64_t rev;
} put_rec;

static inline void on_put_done(void *ud, int status, const char *message, const uint8_t *resp,
                               size_t len) {
    (void)message;
    put_rec *p = ud;
    p->done = true;
    p->status = status;
    if (status == 0) {
        Etcdserverpb__PutResponse *pr = etcdserverpb__put_response__unpack(NULL, len, resp);
        p->rev = pr && pr->header ? pr->header->revision : -1;
        etcdserverpb__put_response__free_unpacked(pr, NULL);
    }
}

/* Issues a put without waiting; rec is filled when it completes (keep the loop running). */
static inline void put_async(cli *c, const char *k, const uint8_t *v, size_t vlen, int64_t lease,
                             put_rec *rec) {
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd(k);
    p.value = (ProtobufCBinaryData){vlen, (uint8_t *)v};
    p.lease = lease;
    size_t n = etcdserverpb__put_request__get_packed_size(&p);
    uint8_t *buf = malloc(n);
    etcdserverpb__put_request__pack(&p, buf);
    memset(rec, 0, sizeof *rec);
    assert_int_equal(grpc_client_unary(c->c, P_PUT, buf, n, 20000, on_put_done, rec), 0);
    free(buf);
}

static inline void puts_wait(cli *c, put_rec *recs, size_t n) {
    bool f = false;
    uint64_t end = uv_now(&c->loop) + 30000;
    for (size_t i = 0; i < n; i++) {
        while (!recs[i].done && uv_now(&c->loop) < end)
            run_until(&c->loop, &f, 5);
        assert_true(recs[i].done);
        assert_int_equal(recs[i].status, 0);
    }
}

/* ---- leases ---- */

static inline int64_t lease_grant(cli *c, int64_t ttl, int64_t id, int64_t *ttl_out) {
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    g.ttl = ttl;
    g.id = id;
    result r = {0};
    int st = call(c, P_LGRANT, &g.base, &r);
    if (st) fail_msg("lease grant: %d %s", st, r.message);
    Etcdserverpb__LeaseGrantResponse *gr =
        etcdserverpb__lease_grant_response__unpack(NULL, r.len, r.data);
    free(r.data);
    assert_non_null(gr);
    assert_non_null(gr->header);
    int64_t out = gr->id;
    if (ttl_out) *ttl_out = gr->ttl;
    etcdserverpb__lease_grant_response__free_unpacked(gr, NULL);
    return out;
}

static inline int64_t put_lease(cli *c, const char *k, const char *v, int64_t lease) {
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd(k);
    p.value = bd(v);
    p.lease = lease;
    result r = {0};
    int st = call(c, P_PUT, &p.base, &r);
    if (st) fail_msg("put %s lease %lld: %d %s", k, (long long)lease, st, r.message);
    Etcdserverpb__PutResponse *pr = etcdserverpb__put_response__unpack(NULL, r.len, r.data);
    free(r.data);
    int64_t rev = pr->header->revision;
    etcdserverpb__put_response__free_unpacked(pr, NULL);
    return rev;
}

#endif
