/* refl_reflector.c — one reflector's state machine over etcd v3 gRPC: LIST (paginated, every
 * page read at the first page's revision, so one LIST is one consistent snapshot), then WATCH
 * from list revision + 1 with prev_kv and progress_notify; events go through the cache; a
 * miss acts per the miss policy; a watch canceled with compact_revision relists; a lost
 * connection re-watches from the last revision (no relist); other errors back off and relist.
 *
 * Key decisions (see refl_fleet_internal.h for the shared ones):
 * - r->rev, not refl_cache_revision, decides where a re-watch starts: a GET repair applies an
 *   object whose revision the stream has not reached in order, and a progress notification
 *   moves the watcher forward without touching the cache.
 * - The event that triggered a GET counts as applied only when the GET completes: if the
 *   stream drops meanwhile, the GET is abandoned and the re-watch delivers that event again.
 * - Duplicates: etcd never splits one revision across responses, so each response is checked
 *   against the revision applied before it (q->floor); events at or below are dropped and
 *   counted (a re-watch that overlaps would show there).
 * - Connection-level failures (UNAVAILABLE, or CANCELLED because the slot's client was closed)
 *   wait max(backoff, REFL_RECONNECT_FLOOR_MS); a watch that ends normally (OK) re-watches at
 *   once, like client-go. */
#include "refl_fleet_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const grpc_metadata WATCH_MD[] = {{"hasleader", "true"}};

int64_t refl_now(const refl_fleet *f) {
    return (int64_t)uv_now(f->loop);
}

void refl_trace_emit(refl_fleet *f, refl_trace_kind kind, size_t watcher, int64_t rev,
                     uint64_t count, const char *detail) {
    if (!f->o.trace) return;
    refl_trace t = {kind, watcher, rev, count, detail ? detail : ""};
    f->o.trace(f->o.trace_ud, &t);
}

static void on_timer(uv_timer_t *t);
static void on_resync(uv_timer_t *t);

int refl_r_init(refl_reflector *r, refl_fleet *f, size_t idx, const char *prefix) {
    memset(r, 0, sizeof(*r));
    r->f = f;
    r->idx = idx;
    snprintf(r->name, sizeof r->name, "w%zu", idx);
    r->prefix = strdup(prefix);
    r->prefix_len = strlen(prefix);
    if (!r->prefix) return -1;
    r->range_end = refl_prefix_end(r->prefix, r->prefix_len, &r->range_end_len);
    r->cache = refl_cache_new(f->pool, f->mode);
    if (!r->range_end || !r->cache) return -1;
    r->policy = f->o.miss_policy;
    refl_backoff_init(&r->bo, &f->o.backoff, f->o.seed + idx, refl_now(f));
    refl_tokenbucket_init(&r->tb, f->o.qps, f->o.burst, refl_now(f));
    r->slot = &f->slots[idx % f->n_slots];
    return 0;
}

void refl_r_init_timers(refl_reflector *r) {
    uv_timer_init(r->f->loop, &r->timer);
    r->timer.data = r;
    uv_timer_init(r->f->loop, &r->resync_timer);
    r->resync_timer.data = r;
}

static void queue_clear(refl_reflector *r) {
    refl_qitem *q = r->qhead;
    while (q) {
        refl_qitem *n = q->next;
        etcdserverpb__watch_response__free_unpacked(q->wr, NULL);
        free(q);
        q = n;
    }
    r->qhead = r->qtail = NULL;
}

void refl_r_fini(refl_reflector *r) {
    queue_clear(r);
    refl_cache_free(r->cache);
    free(r->prefix);
    free(r->range_end);
    free(r->list_key);
    free(r->get_key);
    r->cache = NULL;
}

void refl_r_counters(const refl_reflector *r, refl_counters *out) {
    *out = r->ctr;
    out->ratelimit_waits = r->waits_base + r->tb.waits;
    out->divergent = r->verified ? r->vrep.divergent : 0;
}

/* ---- scheduling ---------------------------------------------------------------------------- */

void refl_r_schedule(refl_reflector *r, refl_action a, int64_t delay_ms) {
    if (r->state == REFL_ST_STOPPED || r->state == REFL_ST_HELD) return;
    r->action = a;
    if (a == REFL_ACT_LIST || a == REFL_ACT_WATCH) r->state = REFL_ST_WAITING;
    uv_timer_start(&r->timer, on_timer, delay_ms > 0 ? (uint64_t)delay_ms : 0, 0);
}

void refl_r_kick(refl_reflector *r) {
    if (r->action == REFL_ACT_NONE && r->state == REFL_ST_WATCHING)
        refl_r_schedule(r, REFL_ACT_PROCESS, 0);
}

static void cancel_watch(refl_reflector *r) {
    if (r->ws) {
        grpc_cstream_cancel(r->ws);
        r->ws = NULL;
    }
    queue_clear(r);
}

/* Forgets every request and stream of the current attempt. */
static void abandon(refl_reflector *r) {
    r->gen++;
    cancel_watch(r);
    refl_cache_replace_abort(r->cache);
    r->get_inflight = false;
    r->token_ok = false;
    r->action = REFL_ACT_NONE;
    uv_timer_stop(&r->timer);
}

static int64_t backoff_delay(refl_reflector *r) {
    int64_t d = refl_backoff_failure(&r->bo, refl_now(r->f));
    r->ctr.backoff_seconds += (double)d / 1000.0;
    return d;
}

static bool conn_level(int status) {
    return status == GRPC_STATUS_UNAVAILABLE || status == GRPC_STATUS_CANCELLED;
}

static void trace_error(refl_reflector *r, const char *what, int status, const char *msg) {
    if (!r->f->o.trace) return;
    char d[256];
    snprintf(d, sizeof d, "%s: %s: %s", what, grpc_status_name(status), msg ? msg : "");
    refl_trace_emit(r->f, REFL_TRACE_ERROR, r->idx, r->rev, 0, d);
}

static void relist(refl_reflector *r, refl_relist_reason why) {
    static const char *names[] = {"initial", "miss", "compacted", "error"};
    if (why == REFL_RELIST_MISS) r->ctr.relists.miss++;
    if (why == REFL_RELIST_COMPACTED) r->ctr.relists.compacted++;
    if (why == REFL_RELIST_ERROR) r->ctr.relists.error++;
    refl_trace_emit(r->f, REFL_TRACE_RELIST, r->idx, r->rev, 0, names[why]);
    abandon(r);
    refl_r_schedule(r, REFL_ACT_LIST, backoff_delay(r));
}

static refl_req *req_new(refl_reflector *r) {
    refl_req *q = malloc(sizeof(*q));
    if (q) {
        q->r = r;
        q->gen = r->gen;
    }
    return q;
}

/* The request's reflector, or NULL when the request was abandoned (ctx freed either way). */
static refl_reflector *req_take(void *ud) {
    refl_req *q = ud;
    refl_reflector *r = q->r;
    bool live = q->gen == r->gen && r->state != REFL_ST_STOPPED && r->state != REFL_ST_HELD;
    free(q);
    return live ? r : NULL;
}

static int send_range(refl_reflector *r, const Etcdserverpb__RangeRequest *rq, grpc_unary_cb cb) {
    grpc_client *c = refl_slot_client(r->slot);
    if (!c) return GRPC_ENOMEM;
    size_t n = etcdserverpb__range_request__get_packed_size(rq);
    uint8_t stackbuf[512];
    uint8_t *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
    refl_req *ctx = req_new(r);
    int rv = GRPC_ENOMEM;
    if (buf && ctx) {
        etcdserverpb__range_request__pack(rq, buf);
        rv = grpc_client_unary(c, "/etcdserverpb.KV/Range", buf, n, r->f->o.request_timeout_ms, cb,
                               ctx);
    }
    if (buf != stackbuf) free(buf);
    if (rv != 0) free(ctx);
    return rv;
}

/* ---- LIST ------------------------------------------------------------------------------------ */

static void list_send_page(refl_reflector *r);

static void list_begin(refl_reflector *r) {
    refl_verify_detach(r);
    if (refl_cache_replace_begin(r->cache)) {
        refl_r_schedule(r, REFL_ACT_LIST, 1000); /* out of memory: try again later */
        return;
    }
    r->ctr.lists++;
    r->list_rev = 0;
    free(r->list_key);
    r->list_key = malloc(r->prefix_len + 1);
    if (!r->list_key) {
        refl_cache_replace_abort(r->cache);
        refl_r_schedule(r, REFL_ACT_LIST, 1000);
        return;
    }
    memcpy(r->list_key, r->prefix, r->prefix_len);
    r->list_key_len = r->prefix_len;
    r->state = REFL_ST_LISTING;
    r->token_ok = false;
    list_send_page(r);
}

static void list_failed(refl_reflector *r, int status, const char *msg) {
    refl_cache_replace_abort(r->cache);
    r->ex.list_failures++;
    trace_error(r, "LIST", status, msg);
    r->gen++;
    int64_t d = backoff_delay(r);
    if (conn_level(status)) {
        r->ex.reconnects++;
        if (d < REFL_RECONNECT_FLOOR_MS) d = REFL_RECONNECT_FLOOR_MS;
    }
    refl_r_schedule(r, REFL_ACT_LIST, d);
}

static void on_list_page(void *ud, int status, const char *message, const uint8_t *resp,
                         size_t len) {
    refl_reflector *r = req_take(ud);
    if (!r) return;
    if (status != GRPC_STATUS_OK) {
        list_failed(r, status, message);
        return;
    }
    Etcdserverpb__RangeResponse *rr = etcdserverpb__range_response__unpack(NULL, len, resp);
    if (!rr) {
        list_failed(r, GRPC_STATUS_INTERNAL, "cannot decode RangeResponse");
        return;
    }
    if (r->list_rev == 0) r->list_rev = rr->header ? rr->header->revision : 0;
    r->ctr.list_pages++;
    for (size_t i = 0; i < rr->n_kvs; i++) {
        const Mvccpb__KeyValue *kv = rr->kvs[i];
        refl_kv it = {(const char *)kv->key.data, kv->key.len,        kv->value.data, kv->value.len,
                      kv->mod_revision,           kv->create_revision};
        r->ctr.list_bytes += kv->value.len;
        if (refl_cache_replace_add(r->cache, &it)) {
            etcdserverpb__range_response__free_unpacked(rr, NULL);
            list_failed(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory filling the cache");
            return;
        }
    }
    refl_trace_emit(r->f, REFL_TRACE_LIST_PAGE, r->idx, r->list_rev, rr->n_kvs, "");
    if (rr->more && rr->n_kvs > 0) {
        /* next page: just after the last key, same range end, same revision */
        const ProtobufCBinaryData *last = &rr->kvs[rr->n_kvs - 1]->key;
        uint8_t *k = malloc(last->len + 1);
        if (!k) {
            etcdserverpb__range_response__free_unpacked(rr, NULL);
            list_failed(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        memcpy(k, last->data, last->len);
        k[last->len] = 0;
        free(r->list_key);
        r->list_key = k;
        r->list_key_len = last->len + 1;
        etcdserverpb__range_response__free_unpacked(rr, NULL);
        refl_r_schedule(r, REFL_ACT_LIST_PAGE, 0);
        return;
    }
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    refl_cache_replace_end(r->cache, r->list_rev);
    r->rev = r->list_rev;
    r->synced = true;
    refl_trace_emit(r->f, REFL_TRACE_LIST_DONE, r->idx, r->rev, refl_cache_count(r->cache), "");
    refl_r_schedule(r, REFL_ACT_WATCH, 0);
}

static void list_send_page(refl_reflector *r) {
    if (!r->token_ok) {
        int64_t w = refl_tokenbucket_take(&r->tb, refl_now(r->f));
        if (w > 0) {
            r->token_ok = true;
            refl_r_schedule(r, REFL_ACT_LIST_PAGE, w);
            return;
        }
    }
    r->token_ok = false;
    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key = (ProtobufCBinaryData){r->list_key_len, r->list_key};
    rq.range_end = (ProtobufCBinaryData){r->range_end_len, r->range_end};
    rq.limit = r->f->o.page_size > 0 ? r->f->o.page_size : 0;
    rq.revision = r->list_rev;
    int rv = send_range(r, &rq, on_list_page);
    if (rv != 0)
        list_failed(r, rv == GRPC_ENOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_UNAVAILABLE,
                    "cannot issue the LIST");
}

/* ---- WATCH ----------------------------------------------------------------------------------- */

static void on_watch_msg(grpc_cstream *s, const uint8_t *msg, size_t len, void *ud);
static void on_watch_close(grpc_cstream *s, int status, const char *message, void *ud);

/* The stream is gone (or could not be made) without a relist being needed. */
static void watch_lost(refl_reflector *r, int status, const char *msg) {
    /* a GET in flight is abandoned: its event was not counted as applied, so the re-watch
     * delivers it again */
    r->gen++;
    r->get_inflight = false;
    r->token_ok = false;
    queue_clear(r);
    if (status == GRPC_STATUS_OK) {
        r->ex.rewatches++;
        refl_trace_emit(r->f, REFL_TRACE_REWATCH, r->idx, r->rev, 0, "watch ended");
        refl_r_schedule(r, REFL_ACT_WATCH, 0);
        return;
    }
    trace_error(r, "WATCH", status, msg);
    if (!conn_level(status) && status != GRPC_STATUS_DEADLINE_EXCEEDED) {
        relist(r, REFL_RELIST_ERROR);
        return;
    }
    int64_t d = backoff_delay(r);
    if (conn_level(status)) {
        r->ex.reconnects++;
        if (d < REFL_RECONNECT_FLOOR_MS) d = REFL_RECONNECT_FLOOR_MS;
    }
    r->ex.rewatches++;
    refl_trace_emit(r->f, REFL_TRACE_REWATCH, r->idx, r->rev, 0, grpc_status_name(status));
    refl_r_schedule(r, REFL_ACT_WATCH, d);
}

static void watch_open(refl_reflector *r) {
    grpc_client *c = refl_slot_client(r->slot);
    grpc_cstream_cbs cbs = {.on_message = on_watch_msg, .on_close = on_watch_close};
    grpc_cstream *s =
        c ? grpc_client_stream_open(c, "/etcdserverpb.Watch/Watch", WATCH_MD, 1, &cbs, r) : NULL;
    if (!s) {
        watch_lost(r, GRPC_STATUS_UNAVAILABLE, "cannot open the watch stream");
        return;
    }
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    cr.key = (ProtobufCBinaryData){r->prefix_len, (uint8_t *)r->prefix};
    cr.range_end = (ProtobufCBinaryData){r->range_end_len, r->range_end};
    cr.start_revision = r->rev + 1;
    cr.prev_kv = 1;
    cr.progress_notify = 1;
    Etcdserverpb__WatchRequest wr = ETCDSERVERPB__WATCH_REQUEST__INIT;
    wr.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    wr.create_request = &cr;
    size_t n = etcdserverpb__watch_request__get_packed_size(&wr);
    uint8_t *buf = malloc(n ? n : 1);
    int rv = GRPC_ENOMEM;
    if (buf) {
        etcdserverpb__watch_request__pack(&wr, buf);
        rv = grpc_cstream_send(s, buf, n);
        free(buf);
    }
    if (rv < 0) {
        grpc_cstream_cancel(s);
        watch_lost(r, GRPC_STATUS_UNAVAILABLE, "cannot send the watch create request");
        return;
    }
    r->ws = s;
    r->ctr.watches++;
    r->state = REFL_ST_WATCH_STARTING;
}

static void on_watch_msg(grpc_cstream *s, const uint8_t *msg, size_t len, void *ud) {
    refl_reflector *r = ud;
    if (s != r->ws) return;
    Etcdserverpb__WatchResponse *wr = etcdserverpb__watch_response__unpack(NULL, len, msg);
    if (!wr) {
        trace_error(r, "WATCH", GRPC_STATUS_INTERNAL, "cannot decode WatchResponse");
        relist(r, REFL_RELIST_ERROR);
        return;
    }
    if (wr->created) {
        r->watch_id = wr->watch_id;
        if (r->state == REFL_ST_WATCH_STARTING) {
            r->state = REFL_ST_WATCHING;
            refl_backoff_success(&r->bo, refl_now(r->f));
            refl_trace_emit(r->f, REFL_TRACE_WATCH_CREATED, r->idx, r->rev, 0, "");
        }
    }
    if (wr->canceled) {
        bool compacted = wr->compact_revision > 0;
        if (r->f->o.trace) {
            char d[160];
            snprintf(d, sizeof d, "watch canceled: compact_revision %lld: %s",
                     (long long)wr->compact_revision, wr->cancel_reason ? wr->cancel_reason : "");
            refl_trace_emit(r->f, REFL_TRACE_ERROR, r->idx, r->rev, 0, d);
        }
        etcdserverpb__watch_response__free_unpacked(wr, NULL);
        relist(r, compacted ? REFL_RELIST_COMPACTED : REFL_RELIST_ERROR);
        return;
    }
    if (wr->created && wr->n_events == 0) {
        etcdserverpb__watch_response__free_unpacked(wr, NULL);
        refl_r_process(r);
        return;
    }
    refl_qitem *q = calloc(1, sizeof(*q));
    if (!q) {
        etcdserverpb__watch_response__free_unpacked(wr, NULL);
        relist(r, REFL_RELIST_ERROR);
        return;
    }
    q->wr = wr;
    if (r->qtail)
        r->qtail->next = q;
    else
        r->qhead = q;
    r->qtail = q;
    refl_r_process(r);
}

static void on_watch_close(grpc_cstream *s, int status, const char *message, void *ud) {
    refl_reflector *r = ud;
    if (s != r->ws) return;
    r->ws = NULL;
    if (r->state == REFL_ST_STOPPED || r->state == REFL_ST_HELD) return;
    watch_lost(r, status, message);
}

/* ---- events ------------------------------------------------------------------------------------
 */

enum { EV_CONTINUE, EV_STOP };

static int apply_event(refl_reflector *r, const Mvccpb__Event *e, int64_t floor) {
    const Mvccpb__KeyValue *kv = e->kv;
    if (!kv) return EV_CONTINUE;
    int64_t rev = kv->mod_revision;
    if (rev <= floor) {
        r->ex.duplicates++;
        return EV_CONTINUE;
    }
    bool del = e->type == MVCCPB__EVENT__EVENT_TYPE__DELETE;
    refl_event ev = {.key = (const char *)kv->key.data,
                     .key_len = kv->key.len,
                     .value = kv->value.data,
                     .value_len = kv->value.len,
                     .mod_revision = rev,
                     .create_revision = kv->create_revision};
    if (del && e->prev_kv) {
        ev.value = e->prev_kv->value.data;
        ev.value_len = e->prev_kv->value.len;
        ev.create_revision = e->prev_kv->create_revision;
    }
    ev.type = refl_event_type_of(del, kv->create_revision, rev);
    r->ctr.events++;
    refl_apply_result res = refl_cache_apply(r->cache, &ev);
    if (res == REFL_APPLY_ENOMEM) {
        relist(r, REFL_RELIST_ERROR);
        return EV_STOP;
    }
    if (res == REFL_APPLY_MISS) {
        r->ctr.misses++;
        if (r->policy == REFL_MISS_RELIST) {
            relist(r, REFL_RELIST_MISS);
            return EV_STOP;
        }
        if (r->policy == REFL_MISS_GET) {
            uint8_t *k = malloc(kv->key.len ? kv->key.len : 1);
            if (k) {
                memcpy(k, kv->key.data, kv->key.len);
                free(r->get_key);
                r->get_key = k;
                r->get_key_len = kv->key.len;
                r->get_rev = rev;
                r->get_inflight = true;
                r->ctr.gets++;
                r->token_ok = false;
                refl_r_schedule(r, REFL_ACT_GET, 0);
                return EV_STOP;
            }
            r->ex.get_failures++;
        }
    }
    if (rev > r->rev) r->rev = rev;
    return EV_CONTINUE;
}

void refl_r_process(refl_reflector *r) {
    while (r->qhead && r->state == REFL_ST_WATCHING && !r->get_inflight && !r->vjob) {
        refl_qitem *q = r->qhead;
        if (!q->started) {
            q->started = true;
            q->floor = r->rev;
        }
        Etcdserverpb__WatchResponse *wr = q->wr;
        if (wr->n_events == 0 && !wr->created) { /* progress notification */
            r->ex.progress++;
            if (wr->header && wr->header->revision > r->rev) r->rev = wr->header->revision;
        }
        while (q->next_ev < wr->n_events) {
            const Mvccpb__Event *e = wr->events[q->next_ev++];
            if (apply_event(r, e, q->floor) == EV_STOP) return; /* q may be gone */
        }
        r->qhead = q->next;
        if (!r->qhead) r->qtail = NULL;
        etcdserverpb__watch_response__free_unpacked(wr, NULL);
        free(q);
    }
    if (!r->qhead && r->state == REFL_ST_WATCHING && !r->get_inflight && !r->vjob &&
        r->verify_pending)
        refl_verify_maybe_start(r);
}

/* ---- GET repair
 * ---------------------------------------------------------------------------------- */

static void on_get(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    refl_reflector *r = req_take(ud);
    if (!r) return;
    if (status == GRPC_STATUS_OK) {
        Etcdserverpb__RangeResponse *rr = etcdserverpb__range_response__unpack(NULL, len, resp);
        if (rr && rr->n_kvs > 0) {
            const Mvccpb__KeyValue *kv = rr->kvs[0];
            refl_event ev = {
                REFL_EV_ADDED, (const char *)kv->key.data, kv->key.len,        kv->value.data,
                kv->value.len, kv->mod_revision,           kv->create_revision};
            refl_cache_apply(r->cache, &ev);
        }
        if (!rr) r->ex.get_failures++;
        if (rr) etcdserverpb__range_response__free_unpacked(rr, NULL);
    } else {
        r->ex.get_failures++;
        trace_error(r, "GET", status, message);
    }
    r->get_inflight = false;
    if (r->get_rev > r->rev) r->rev = r->get_rev;
    refl_r_schedule(r, REFL_ACT_PROCESS, 0);
}

static void get_send(refl_reflector *r) {
    if (!r->get_inflight) return;
    if (!r->token_ok) {
        int64_t w = refl_tokenbucket_take(&r->tb, refl_now(r->f));
        if (w > 0) {
            r->token_ok = true;
            refl_r_schedule(r, REFL_ACT_GET, w);
            return;
        }
    }
    r->token_ok = false;
    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key = (ProtobufCBinaryData){r->get_key_len, r->get_key};
    rq.revision = r->get_rev; /* the object as of the event: never ahead of the stream */
    if (send_range(r, &rq, on_get) != 0) {
        r->ex.get_failures++;
        r->get_inflight = false;
        if (r->get_rev > r->rev) r->rev = r->get_rev;
        refl_r_schedule(r, REFL_ACT_PROCESS, 0);
    }
}

/* ---- timers and lifecycle ---------------------------------------------------------------------
 */

static void on_timer(uv_timer_t *t) {
    refl_reflector *r = t->data;
    refl_action a = r->action;
    r->action = REFL_ACT_NONE;
    if (r->state == REFL_ST_STOPPED || r->state == REFL_ST_HELD) return;
    switch (a) {
    case REFL_ACT_LIST:
        list_begin(r);
        break;
    case REFL_ACT_LIST_PAGE:
        list_send_page(r);
        break;
    case REFL_ACT_WATCH:
        watch_open(r);
        break;
    case REFL_ACT_GET:
        get_send(r);
        break;
    case REFL_ACT_PROCESS:
        refl_r_process(r);
        break;
    case REFL_ACT_NONE:
        break;
    }
}

/* Resync: every object in the cache is handed to the (no-op) handler again; no request. */
static void on_resync(uv_timer_t *t) {
    refl_reflector *r = t->data;
    if (!r->synced || r->state != REFL_ST_WATCHING) return;
    uint64_t n = 0;
    refl_cache_iter it = {0};
    while (refl_cache_next(r->cache, &it))
        n++;
    r->ex.resyncs++;
    r->ex.resync_objects += n;
}

void refl_r_set_resync(refl_reflector *r, int64_t ms) {
    uv_timer_stop(&r->resync_timer);
    if (ms > 0) uv_timer_start(&r->resync_timer, on_resync, (uint64_t)ms, (uint64_t)ms);
}

void refl_r_start(refl_reflector *r) {
    r->state = REFL_ST_WAITING;
    refl_r_schedule(r, REFL_ACT_LIST, 0);
    refl_r_set_resync(r, r->f->o.resync_ms);
}

void refl_r_stop(refl_reflector *r) {
    refl_verify_detach(r);
    abandon(r);
    r->state = REFL_ST_STOPPED;
    uv_timer_stop(&r->resync_timer);
}

void refl_r_hold(refl_reflector *r, bool hold) {
    if (hold) {
        if (r->state == REFL_ST_HELD || r->state == REFL_ST_STOPPED) return;
        refl_verify_detach(r);
        abandon(r);
        r->state = REFL_ST_HELD;
        return;
    }
    if (r->state != REFL_ST_HELD) return;
    r->state = REFL_ST_WAITING;
    if (r->synced) {
        r->ex.rewatches++;
        refl_trace_emit(r->f, REFL_TRACE_REWATCH, r->idx, r->rev, 0, "released");
        refl_r_schedule(r, REFL_ACT_WATCH, 0);
    } else {
        refl_r_schedule(r, REFL_ACT_LIST, 0);
    }
}

void refl_r_rekey(refl_reflector *r, refl_key_mode mode) {
    if (refl_cache_mode(r->cache) == mode) return;
    refl_cache *c = refl_cache_new(r->f->pool, mode);
    if (!c) return; /* out of memory: keep the old code running */
    refl_verify_detach(r);
    abandon(r);
    refl_cache_free(r->cache);
    r->cache = c;
    r->synced = false;
    r->verified = false;
    r->rev = 0;
    r->ex.rekeys++;
    if (r->state != REFL_ST_HELD && r->state != REFL_ST_IDLE && r->state != REFL_ST_STOPPED)
        refl_r_schedule(r, REFL_ACT_LIST, 0);
}
