/* workload_watch.c — `watch`: --watchers watchers of one prefix (spread over --streams Watch
 * streams on --conns connections) and a writer putting --value-size values under it. The figure
 * is event DELIVERY: every event a watcher receives is one sample, its latency measured from the
 * put's send time (uv_hrtime stamped into the value's first 8 bytes, so no lookup is needed and
 * events that overtake the put's acknowledgement are timed right) to its arrival at the watcher.
 * ops/s is therefore delivered events/s summed over watchers.
 *
 * Writer modes: --rate R paces puts at R/s (-c slots share the schedule, so a slow put does not
 * stall the rate); --rate 0 (default) is the saturation mode: -c K puts are "in flight" until
 * every watcher has received them, a closed loop on delivery, so the rate settles at what the
 * server can fan out while latency stays bounded (sweep -c to find the knee).
 *
 * Correctness: each watcher must see every put exactly once, in revision order. The writer is
 * the only one writing during a round, so revisions are contiguous: a revision not above the
 * watcher's last is a duplicate / reordering, a jump is a gap. After each round (untimed) the
 * watchers are drained until they reach the last acknowledged revision (--drain, 30 s); a
 * watcher's lost events = puts acknowledged - distinct events it saw. One line per round prints
 * these counters (cumulative losses count again in later rounds' totals, not their deltas).
 *
 * The stream fleet (kbw_*) is shared with workload_storm.c; responses are parsed straight from
 * the wire, since at 1,000 watchers every put costs the client 1,000 WatchResponses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.pb-c.h"
#include "workload_watch.h"

/* ------------------------------------------------------------------ wire reading */

size_t kbw_varint(const uint8_t *p, size_t n, uint64_t *v) {
    uint64_t x = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = x;
            return i + 1;
        }
    }
    return 0;
}

int kbw_fields(const uint8_t *p, size_t n, kbw_field_fn fn, void *ud) {
    size_t i = 0;
    while (i < n) {
        uint64_t tag, v = 0;
        size_t k = kbw_varint(p + i, n - i, &tag);
        if (!k) return -1;
        i += k;
        const uint8_t *data = NULL;
        switch (tag & 7) {
        case 0:
            k = kbw_varint(p + i, n - i, &v);
            if (!k) return -1;
            i += k;
            break;
        case 1:
            if (n - i < 8) return -1;
            i += 8;
            continue;
        case 5:
            if (n - i < 4) return -1;
            i += 4;
            continue;
        case 2:
            k = kbw_varint(p + i, n - i, &v);
            if (!k || v > n - i - k) return -1;
            data = p + i + k;
            i += k + v;
            break;
        default:
            return -1;
        }
        if (fn(ud, (uint32_t)(tag >> 3), (int)(tag & 7), v, data, (size_t)v) != 0) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ the stream fleet */

typedef struct kbw_stream {
    kbw_fleet *f;
    grpc_cstream *cs;
    int *members; /* watcher indices in creation order */
    int n_members, n_created;
    int64_t *ids; /* open-addressing table watch_id -> member (ids[i] = -1 when empty) */
    int *idx;
    size_t cap;
    bool closed;
} kbw_stream;

struct kbw_fleet {
    kb_env *e;
    int n_watchers, n_streams;
    kbw_stream *streams;
    kbw_event_fn on_event;
    void *ud;
    kbw_stats st;
    int created;
    bool setup_failed;
    char err[256];
};

static size_t id_hash(int64_t id, size_t cap) {
    return (size_t)(((uint64_t)id * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

static void id_put(kbw_stream *s, int64_t id, int w) {
    size_t i = id_hash(id, s->cap);
    while (s->ids[i] != -1 && s->ids[i] != id)
        i = (i + 1) & (s->cap - 1);
    s->ids[i] = id;
    s->idx[i] = w;
}

static int id_get(const kbw_stream *s, int64_t id) {
    size_t i = id_hash(id, s->cap);
    while (s->ids[i] != -1) {
        if (s->ids[i] == id) return s->idx[i];
        i = (i + 1) & (s->cap - 1);
    }
    return -1;
}

typedef struct wr_top {
    int64_t watch_id;
    bool created, canceled;
    int n_events;
} wr_top;

static int top_field(void *ud, uint32_t f, int wire, uint64_t v, const uint8_t *p, size_t n) {
    (void)p;
    (void)n;
    wr_top *t = ud;
    if (f == 2 && wire == 0) t->watch_id = (int64_t)v;
    if (f == 3 && wire == 0) t->created = v != 0;
    if (f == 4 && wire == 0) t->canceled = v != 0;
    if (f == 11 && wire == 2) t->n_events++;
    return 0;
}

static int kv_field(void *ud, uint32_t f, int wire, uint64_t v, const uint8_t *p, size_t n) {
    kbw_event *ev = ud;
    if (wire == 2 && f == 1) {
        ev->key = p;
        ev->key_len = n;
    } else if (wire == 2 && f == 5) {
        ev->value = p;
        ev->value_len = n;
    } else if (wire == 0 && f == 3) {
        ev->mod_revision = (int64_t)v;
    } else if (wire == 0 && f == 4) {
        ev->version = (int64_t)v;
    }
    return 0;
}

static int event_field(void *ud, uint32_t f, int wire, uint64_t v, const uint8_t *p, size_t n) {
    kbw_event *ev = ud;
    if (f == 1 && wire == 0) ev->type = (int)v;
    if (f == 2 && wire == 2) return kbw_fields(p, n, kv_field, ev);
    return 0;
}

typedef struct wr_dispatch {
    kbw_fleet *f;
    int w;
    size_t share;
} wr_dispatch;

static int dispatch_field(void *ud, uint32_t f, int wire, uint64_t v, const uint8_t *p, size_t n) {
    (void)v;
    wr_dispatch *d = ud;
    if (f != 11 || wire != 2) return 0;
    kbw_event ev = {0};
    if (kbw_fields(p, n, event_field, &ev) != 0) return -1;
    d->f->st.events++;
    d->f->on_event(d->f->ud, d->w, &ev, d->share);
    return 0;
}

static void fleet_fail(kbw_fleet *f, const char *why) {
    kb_env *e = f->e;
    if (!f->setup_failed) snprintf(f->err, sizeof f->err, "%s", why);
    f->setup_failed = true;
    if (!e->broken) snprintf(e->err, sizeof e->err, "watch: %s", why);
    e->broken = true;
}

static void on_watch_msg(grpc_cstream *cs, const uint8_t *msg, size_t len, void *ud) {
    (void)cs;
    kbw_stream *s = ud;
    kbw_fleet *f = s->f;
    f->st.responses++;
    wr_top t = {0};
    if (kbw_fields(msg, len, top_field, &t) != 0) {
        f->st.bad++;
        return;
    }
    if (t.created) {
        if (s->n_created >= s->n_members) {
            f->st.bad++;
            return;
        }
        int w = s->members[s->n_created++];
        id_put(s, t.watch_id, w);
        f->created++;
        if (t.canceled) fleet_fail(f, "a watcher was refused at creation");
        return;
    }
    int w = id_get(s, t.watch_id);
    if (w < 0) {
        f->st.bad++;
        return;
    }
    if (t.canceled) {
        f->st.canceled++;
        fleet_fail(f, "a watcher was canceled by the server");
        return;
    }
    if (t.n_events == 0) return; /* progress notification */
    wr_dispatch d = {f, w, len / (size_t)t.n_events};
    if (kbw_fields(msg, len, dispatch_field, &d) != 0) f->st.bad++;
}

static void on_watch_close(grpc_cstream *cs, int status, const char *message, void *ud) {
    (void)cs;
    kbw_stream *s = ud;
    s->closed = true;
    s->cs = NULL;
    char why[200];
    snprintf(why, sizeof why, "watch stream closed: %s %.120s", grpc_status_name(status),
             message ? message : "");
    fleet_fail(s->f, why);
}

static void wake(uv_timer_t *t) {
    (void)t;
}

bool kbw_run_until(kb_env *e, bool (*done)(void *ud), void *ud, uint64_t timeout_ms) {
    uv_timer_t t;
    uv_timer_init(e->loop, &t);
    uv_timer_start(&t, wake, 20, 20);
    uv_update_time(e->loop);
    uint64_t end = uv_now(e->loop) + timeout_ms;
    while (!done(ud) && uv_now(e->loop) < end && !kb_interrupted())
        uv_run(e->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(e->loop, UV_RUN_NOWAIT);
    return done(ud);
}

static bool all_created(void *ud) {
    kbw_fleet *f = ud;
    return f->setup_failed || f->created == f->n_watchers;
}

kbw_fleet *kbw_open(kb_env *e, int n_watchers, int n_streams, int64_t start_revision,
                    kbw_prefix_fn prefix, kbw_event_fn on_event, void *ud, char *err,
                    size_t errlen) {
    if (n_watchers < 1) n_watchers = 1;
    if (n_streams < 1) n_streams = 1;
    if (n_streams > n_watchers) n_streams = n_watchers;
    kbw_fleet *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->e = e;
    f->n_watchers = n_watchers;
    f->n_streams = n_streams;
    f->on_event = on_event;
    f->ud = ud;
    f->streams = calloc((size_t)n_streams, sizeof *f->streams);
    if (!f->streams) goto oom;
    for (int i = 0; i < n_streams; i++) {
        kbw_stream *s = &f->streams[i];
        s->f = f;
        int per = n_watchers / n_streams + 1;
        s->members = calloc((size_t)per, sizeof *s->members);
        for (s->cap = 16; s->cap < (size_t)per * 2; s->cap *= 2)
            ;
        s->ids = malloc(s->cap * sizeof *s->ids);
        s->idx = malloc(s->cap * sizeof *s->idx);
        if (!s->members || !s->ids || !s->idx) goto oom;
        memset(s->ids, 0xff, s->cap * sizeof *s->ids);
        grpc_cstream_cbs cbs = {.on_message = on_watch_msg, .on_close = on_watch_close};
        s->cs = grpc_client_stream_open(e->conns[i % e->n_conns], "/etcdserverpb.Watch/Watch", NULL,
                                        0, &cbs, s);
        if (!s->cs) {
            snprintf(err, errlen, "cannot open Watch stream %d", i);
            kbw_close(f);
            return NULL;
        }
    }
    for (int w = 0; w < n_watchers; w++) {
        kbw_stream *s = &f->streams[w % n_streams];
        char key[256], end[256];
        prefix(ud, w, key, sizeof key);
        Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
        cr.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
        cr.range_end = (ProtobufCBinaryData){kb_prefix_end(key, end, sizeof end), (uint8_t *)end};
        cr.start_revision = start_revision;
        Etcdserverpb__WatchRequest wr = ETCDSERVERPB__WATCH_REQUEST__INIT;
        wr.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
        wr.create_request = &cr;
        uint8_t buf[600];
        size_t n = etcdserverpb__watch_request__pack(&wr, buf);
        s->members[s->n_members++] = w;
        if (grpc_cstream_send(s->cs, buf, n) < 0) {
            snprintf(err, errlen, "cannot send WatchCreateRequest %d", w);
            kbw_close(f);
            return NULL;
        }
    }
    if (!kbw_run_until(e, all_created, f, 30000) || f->setup_failed) {
        snprintf(err, errlen, "creating %d watchers: %s", n_watchers,
                 f->setup_failed ? f->err : "timeout");
        kbw_close(f);
        return NULL;
    }
    return f;
oom:
    snprintf(err, errlen, "out of memory");
    kbw_close(f);
    return NULL;
}

void kbw_get_stats(const kbw_fleet *f, kbw_stats *out) {
    *out = f->st;
}

void kbw_close(kbw_fleet *f) {
    if (!f) return;
    for (int i = 0; f->streams && i < f->n_streams; i++) {
        kbw_stream *s = &f->streams[i];
        if (s->cs && !s->closed) grpc_cstream_cancel(s->cs);
        free(s->members);
        free(s->ids);
        free(s->idx);
    }
    free(f->streams);
    free(f);
}

/* ------------------------------------------------------------------ the watch workload */

#define WATCH_PREFIX "/kvbench/watch/"
#define RING_BITS    16
#define RING_SIZE    (1u << RING_BITS)

typedef struct watcher_st {
    int64_t last;
    uint64_t unique, dups, gaps;
} watcher_st;

/* Deliveries of one revision (saturation mode): the slot waiting for it completes when every
 * watcher has it. Indexed by revision modulo RING_SIZE (K in flight << RING_SIZE). */
typedef struct ring_ent {
    int64_t rev;
    int count;
    kb_op *waiter;
} ring_ent;

typedef struct slot_st {
    uv_timer_t *timer; /* pacing (rate mode) / delivery deadline (saturation mode) */
    kb_op *op;
    int64_t rev;
} slot_st;

typedef struct watch_state {
    kb_env *e;
    int n, n_streams, n_slots;
    double rate;
    uint64_t drain_ms;
    uint64_t keys, seq;
    size_t vsize;
    uint8_t *value;
    kbw_fleet *fleet;
    watcher_st *w;
    ring_ent *ring;
    slot_st *slots;
    uint64_t next_ns; /* pacing schedule */
    bool round_started;
    uint64_t acked, max_acked_rev, sent;
    /* counters at the start of the round, for per-round deltas */
    uint64_t r_acked, r_sent, r_events, r_dups, r_gaps, r_lost;
    uint64_t lost_total;
    int round;
} watch_state;

static void watch_prefix(void *ud, int w, char *buf, size_t cap) {
    (void)ud;
    (void)w;
    snprintf(buf, cap, WATCH_PREFIX);
}

static void slot_complete(watch_state *s, int slot, int status, const char *msg) {
    slot_st *ss = &s->slots[slot];
    kb_op *op = ss->op;
    if (!op) return;
    ss->op = NULL;
    if (ss->timer) uv_timer_stop(ss->timer);
    kb_op_done(op, status, msg, 0);
}

static void on_event(void *ud, int wi, const kbw_event *ev, size_t bytes) {
    watch_state *s = ud;
    if (ev->type != 0) return;
    watcher_st *w = &s->w[wi];
    int64_t rev = ev->mod_revision;
    if (rev <= w->last) {
        w->dups++;
        return;
    }
    if (w->last > 0 && rev > w->last + 1) w->gaps += (uint64_t)(rev - w->last - 1);
    w->last = rev;
    w->unique++;
    if (ev->value_len >= 8) {
        uint64_t ts;
        memcpy(&ts, ev->value, 8);
        uint64_t now = uv_hrtime();
        kb_record(s->e, now > ts ? now - ts : 0, bytes);
    }
    if (s->rate > 0) return;
    ring_ent *r = &s->ring[(uint64_t)rev & (RING_SIZE - 1)];
    if (r->rev != rev) *r = (ring_ent){.rev = rev};
    if (++r->count == s->n && r->waiter) {
        kb_op *op = r->waiter;
        r->waiter = NULL;
        slot_complete(s, op->slot, 0, NULL);
    }
}

static int64_t put_revision(const uint8_t *p, size_t n);

static int hdr_field(void *ud, uint32_t f, int wire, uint64_t v, const uint8_t *p, size_t n) {
    (void)p;
    (void)n;
    if (f == 3 && wire == 0) *(int64_t *)ud = (int64_t)v;
    return 0;
}

static int resp_field(void *ud, uint32_t f, int wire, uint64_t v, const uint8_t *p, size_t n) {
    (void)v;
    if (f == 1 && wire == 2) return kbw_fields(p, n, hdr_field, ud);
    return 0;
}

/* header.revision of a Put/Range response, or -1. */
static int64_t put_revision(const uint8_t *p, size_t n) {
    int64_t rev = -1;
    if (kbw_fields(p, n, resp_field, &rev) != 0) return -1;
    return rev;
}

static void on_deadline(uv_timer_t *t) {
    slot_st *ss = t->data;
    if (!ss->op) return;
    watch_state *s = ss->op->env->wstate;
    ring_ent *r = &s->ring[(uint64_t)ss->rev & (RING_SIZE - 1)];
    if (r->rev == ss->rev) r->waiter = NULL;
    slot_complete(s, ss->op->slot, GRPC_STATUS_DEADLINE_EXCEEDED,
                  "put not delivered to every watcher in time");
}

static void on_put(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    kb_op *op = ud;
    watch_state *s = op->env->wstate;
    if (status != 0) {
        slot_complete(s, op->slot, status, message);
        return;
    }
    int64_t rev = put_revision(resp, len);
    if (rev <= 0) {
        slot_complete(s, op->slot, GRPC_STATUS_DATA_LOSS, "PutResponse without a revision");
        return;
    }
    s->acked++;
    if ((uint64_t)rev > s->max_acked_rev) s->max_acked_rev = (uint64_t)rev;
    if (s->rate > 0) {
        slot_complete(s, op->slot, 0, NULL);
        return;
    }
    ring_ent *r = &s->ring[(uint64_t)rev & (RING_SIZE - 1)];
    if (r->rev != rev) *r = (ring_ent){.rev = rev};
    if (r->count >= s->n) {
        slot_complete(s, op->slot, 0, NULL);
        return;
    }
    r->waiter = op;
    slot_st *ss = &s->slots[op->slot];
    ss->rev = rev;
    uv_timer_start(ss->timer, on_deadline, op->env->o->timeout_ms, 0);
}

static int send_put(watch_state *s, kb_op *op) {
    uint64_t i = s->seq++;
    char key[64];
    snprintf(key, sizeof key, WATCH_PREFIX "k%08llu", (unsigned long long)(i % s->keys));
    uint64_t now = uv_hrtime();
    op->t0 = now;
    memcpy(s->value, &now, 8);
    memcpy(s->value + 8, &i, 8);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    p.value = (ProtobufCBinaryData){s->vsize, s->value};
    uint8_t stackbuf[2048];
    size_t n = etcdserverpb__put_request__get_packed_size(&p);
    uint8_t *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (!buf) return GRPC_ENOMEM;
    etcdserverpb__put_request__pack(&p, buf);
    s->slots[op->slot].op = op;
    int rv = grpc_client_unary(op->conn, "/etcdserverpb.KV/Put", buf, n, op->env->o->timeout_ms,
                               on_put, op);
    if (buf != stackbuf) free(buf);
    if (rv == 0)
        s->sent++;
    else
        s->slots[op->slot].op = NULL;
    return rv;
}

static void on_pace(uv_timer_t *t) {
    slot_st *ss = t->data;
    kb_op *op = ss->op;
    if (!op) return;
    watch_state *s = op->env->wstate;
    int rv = send_put(s, op);
    if (rv != 0) {
        ss->op = op; /* still counted in flight by the runner: complete it as failed */
        slot_complete(s, op->slot, GRPC_STATUS_UNAVAILABLE, "cannot issue the put");
    }
}

static void round_begin(watch_state *s) {
    s->round_started = true;
    s->next_ns = 0;
    s->r_acked = s->acked;
    s->r_sent = s->sent;
    uint64_t ev = 0, d = 0, g = 0;
    for (int i = 0; i < s->n; i++) {
        ev += s->w[i].unique;
        d += s->w[i].dups;
        g += s->w[i].gaps;
    }
    s->r_events = ev;
    s->r_dups = d;
    s->r_gaps = g;
    s->r_lost = s->lost_total;
}

static int watch_op(void *state, kb_op *op) {
    watch_state *s = state;
    if (!s->round_started) round_begin(s);
    if (op->slot >= s->n_slots) return GRPC_EINVAL;
    slot_st *ss = &s->slots[op->slot];
    if (!ss->timer) {
        ss->timer = malloc(sizeof *ss->timer);
        if (!ss->timer) return GRPC_ENOMEM;
        uv_timer_init(s->e->loop, ss->timer);
        ss->timer->data = ss;
    }
    if (s->rate <= 0) return send_put(s, op);
    uint64_t now = uv_hrtime(), period = (uint64_t)(1e9 / s->rate);
    if (s->next_ns < now) s->next_ns = now;
    uint64_t at = s->next_ns;
    s->next_ns += period;
    if (at <= now + 500000) return send_put(s, op);
    ss->op = op;
    uv_timer_start(ss->timer, on_pace, (at - now) / 1000000, 0);
    return 0;
}

static bool caught_up(void *ud) {
    watch_state *s = ud;
    if (s->e->broken) return true;
    for (int i = 0; i < s->n; i++)
        if (s->w[i].last < (int64_t)s->max_acked_rev) return false;
    return true;
}

static void watch_after_round(kb_env *e, void *state) {
    watch_state *s = state;
    s->round_started = false;
    s->round++;
    uint64_t t0 = uv_hrtime();
    bool ok = kbw_run_until(e, caught_up, s, s->drain_ms);
    double drain_s = (double)(uv_hrtime() - t0) / 1e9;
    uint64_t ev = 0, d = 0, g = 0, lost = 0;
    for (int i = 0; i < s->n; i++) {
        ev += s->w[i].unique;
        d += s->w[i].dups;
        g += s->w[i].gaps;
        if (s->acked > s->w[i].unique) lost += s->acked - s->w[i].unique;
    }
    s->lost_total = lost;
    kbw_stats st;
    kbw_get_stats(s->fleet, &st);
    printf("    watch %-8s round %d: puts sent %llu acked %llu; events (all, incl. drain) %llu of "
           "%llu expected; lost %llu, duplicates %llu, gaps %llu; drained in %.2fs%s%s\n",
           e->t->name, s->round, (unsigned long long)(s->sent - s->r_sent),
           (unsigned long long)(s->acked - s->r_acked), (unsigned long long)(ev - s->r_events),
           (unsigned long long)((s->acked - s->r_acked) * (uint64_t)s->n),
           (unsigned long long)(lost - s->r_lost), (unsigned long long)(d - s->r_dups),
           (unsigned long long)(g - s->r_gaps), drain_s, ok ? "" : " (NOT caught up)",
           st.bad ? " (malformed responses seen)" : "");
    fflush(stdout);
    char err[256];
    if (ok && kb_compact(e, err, sizeof err) != 0)
        fprintf(stderr, "kvbench: %s: compaction after the round failed: %s\n", e->t->name, err);
}

static void timer_free(uv_handle_t *h) {
    free(h);
}

static void watch_teardown(void *state) {
    watch_state *s = state;
    if (!s) return;
    kbw_close(s->fleet);
    for (int i = 0; s->slots && i < s->n_slots; i++)
        if (s->slots[i].timer) uv_close((uv_handle_t *)s->slots[i].timer, timer_free);
    free(s->slots);
    free(s->ring);
    free(s->w);
    free(s->value);
    free(s);
}

static int watch_setup(kb_env *e, void **state, char *err, size_t errlen) {
    const kb_opts *o = e->o;
    watch_state *s = calloc(1, sizeof *s);
    if (!s) return -1;
    *state = s;
    s->e = e;
    s->n = (int)kb_opt_int(o, "watchers", 1000);
    s->n_streams = (int)kb_opt_int(o, "streams", o->conns);
    s->rate = kb_opt_double(o, "rate", 0);
    s->drain_ms = (uint64_t)(kb_opt_double(o, "drain", 30) * 1000);
    s->n_slots = o->concurrency > 0 ? o->concurrency : 1;
    s->keys = o->keys ? o->keys : 1;
    s->vsize = o->value_size;
    if (s->n < 1 || s->n_streams < 1 || s->rate < 0) {
        snprintf(err, errlen, "bad --watchers / --streams / --rate");
        return -1;
    }
    if (s->vsize < 16) {
        snprintf(err, errlen, "watch needs --value-size >= 16 (send time + sequence)");
        return -1;
    }
    s->value = malloc(s->vsize);
    s->w = calloc((size_t)s->n, sizeof *s->w);
    s->ring = calloc(RING_SIZE, sizeof *s->ring);
    s->slots = calloc((size_t)s->n_slots, sizeof *s->slots);
    if (!s->value || !s->w || !s->ring || !s->slots) return -1;
    kb_fill_value(s->value, s->vsize, 11);
    if (kb_delete_prefix(e, WATCH_PREFIX, err, errlen) != 0) return -1;
    s->fleet = kbw_open(e, s->n, s->n_streams, 0, watch_prefix, on_event, s, err, errlen);
    if (!s->fleet) return -1;
    int64_t rev = kb_current_revision(e);
    for (int i = 0; i < s->n; i++)
        s->w[i].last = rev;
    return 0;
}

static void watch_describe(const kb_opts *o, char *buf, size_t cap) {
    char vs[32];
    kb_size_str(o->value_size, vs, sizeof vs);
    double rate = kb_opt_double(o, "rate", 0);
    char mode[48];
    if (rate > 0)
        snprintf(mode, sizeof mode, "%.0f puts/s", rate);
    else
        snprintf(mode, sizeof mode, "saturation c=%d", o->concurrency);
    snprintf(buf, cap, "watch %lld watchers/%lld streams %s %s",
             (long long)kb_opt_int(o, "watchers", 1000),
             (long long)kb_opt_int(o, "streams", o->conns), vs, mode);
}

static const char *const watch_flags[] = {"watchers", "streams", "rate", "drain", NULL};

const kb_workload kb_wl_watch = {
    .name = "watch",
    .summary = "N watchers of one prefix; delivered events/s and put-send -> delivery latency",
    .flags_help = "           --watchers N [1000]  --streams S [= --conns]  --rate PUTS/S [0 =\n"
                  "           saturation: -c puts in flight until delivered to all]  --drain DUR\n"
                  "           [30s]; use --value-size 256 for the project's reference load\n",
    .extra_flags = watch_flags,
    .own_samples = true,
    .setup = watch_setup,
    .start_op = watch_op,
    .after_round = watch_after_round,
    .teardown = watch_teardown,
    .describe = watch_describe,
};
