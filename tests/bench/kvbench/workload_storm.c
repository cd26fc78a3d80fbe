/* workload_storm.c — `storm`: the relistlab incident as a benchmark. --watchers reflectors over
 * --namespaces namespaces of --objects / --namespaces objects each (watcher i owns namespace
 * i % namespaces); each LISTs its namespace, watches it, and — the mismatch + relist behaviour
 * of the incident, where every update looks like a cache mismatch — re-LISTs its namespace on
 * every MODIFIED or DELETE event. A writer updates random objects at --rate puts/s (default 10).
 *
 * Figures: ops/s and latency are the writer's puts (what the storm does to everyone else's
 * writes: the target is a lower put p99 than etcd's); the `lists` column counts LISTs completed
 * in the window, and one line per round gives LIST/s and LIST latency.
 *
 * Built-in minimal reflector rather than watcher/refl.h: one LIST in flight per watcher, events
 * arriving meanwhile coalesce into one more LIST when it returns (a reflector relisting on a
 * mismatch does not queue relists either), and the watch stays open across relists so the load
 * is LIST-bound, the part of the incident that hurts. Watch streams are the kbw fleet of
 * workload_watch.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.pb-c.h"
#include "workload_watch.h"

#define STORM_PREFIX "/kvbench/storm/"

typedef struct storm_watcher {
    bool listing, dirty;
    uint64_t t0;
} storm_watcher;

typedef struct storm_state {
    kb_env *e;
    int n, n_ns, n_streams, n_slots;
    uint64_t per_ns, objects;
    uint64_t *ns_count; /* objects per namespace (what a LIST must return) */
    double rate;
    size_t vsize;
    uint8_t *value;
    uint64_t seq;
    kbw_fleet *fleet;
    storm_watcher *w;
    uv_timer_t **timers; /* per writer slot, pacing */
    kb_op **pending;     /* per writer slot, op waiting for its pacing timer */
    uint64_t next_ns;
    kb_op *last_op; /* most recently sent put: carries kb_op_aux() for LISTs in the window */
    /* this round's window, from the first op and the configured warmup / duration */
    bool round_started;
    uint64_t win_lo, win_hi, round_t0;
    kb_hist list_hist;
    uint64_t lists_win, lists_total, list_errors, bad_lists, events, relists_wanted;
    int lists_inflight;
    bool closing; /* teardown ran: free when the last LIST callback returns */
    int round;
    char first_error[160];
} storm_state;

static void ns_prefix(int ns, char *buf, size_t cap) {
    snprintf(buf, cap, STORM_PREFIX "ns-%03d/", ns);
}

static void obj_key(const storm_state *s, uint64_t i, char *buf, size_t cap) {
    snprintf(buf, cap, STORM_PREFIX "ns-%03d/obj-%06llu", (int)(i / s->per_ns),
             (unsigned long long)(i % s->per_ns));
}

static void keyfn(uint64_t i, char *buf, size_t cap, void *ud) {
    obj_key(ud, i, buf, cap);
}

static void watcher_prefix(void *ud, int w, char *buf, size_t cap) {
    storm_state *s = ud;
    ns_prefix(w % s->n_ns, buf, cap);
}

static void storm_free(storm_state *s) {
    free(s->ns_count);
    free(s->w);
    free(s->pending);
    free(s->timers);
    free(s->value);
    free(s);
}

/* Counts field 2 (kvs) of a RangeResponse on the wire. */
static int count_kv(void *ud, uint32_t f, int wire, uint64_t v, const uint8_t *p, size_t n) {
    (void)v;
    (void)p;
    (void)n;
    if (f == 2 && wire == 2) ++*(int64_t *)ud;
    return 0;
}

typedef struct list_call {
    storm_state *s;
    int w;
} list_call;

static void start_list(storm_state *s, int w);

static void on_list(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    list_call *c = ud;
    storm_state *s = c->s;
    int w = c->w;
    free(c);
    s->lists_inflight--;
    if (s->closing) {
        if (s->lists_inflight == 0) storm_free(s);
        return;
    }
    storm_watcher *sw = &s->w[w];
    sw->listing = false;
    uint64_t now = uv_hrtime();
    if (status != 0) {
        s->list_errors++;
        if (!s->first_error[0])
            snprintf(s->first_error, sizeof s->first_error, "LIST: %s %.100s",
                     grpc_status_name(status), message);
    } else {
        int64_t kvs = 0;
        if (kbw_fields(resp, len, count_kv, &kvs) != 0 || (uint64_t)kvs != s->ns_count[w % s->n_ns])
            s->bad_lists++;
        s->lists_total++;
        if (s->round_started && now >= s->win_lo && now < s->win_hi) {
            s->lists_win++;
            kb_hist_record(&s->list_hist, now - sw->t0);
            if (s->last_op) kb_op_aux(s->last_op);
        }
    }
    if (sw->dirty) start_list(s, w);
}

static void start_list(storm_state *s, int w) {
    storm_watcher *sw = &s->w[w];
    sw->dirty = false;
    list_call *c = malloc(sizeof *c);
    if (!c) return;
    *c = (list_call){s, w};
    char key[128], end[128];
    ns_prefix(w % s->n_ns, key, sizeof key);
    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    rq.range_end = (ProtobufCBinaryData){kb_prefix_end(key, end, sizeof end), (uint8_t *)end};
    rq.serializable = s->e->o->serializable;
    uint8_t buf[300];
    size_t n = etcdserverpb__range_request__pack(&rq, buf);
    sw->t0 = uv_hrtime();
    kb_env *e = s->e;
    if (grpc_client_unary(e->conns[w % e->n_conns], "/etcdserverpb.KV/Range", buf, n,
                          e->o->timeout_ms, on_list, c) != 0) {
        free(c);
        s->list_errors++;
        return;
    }
    sw->listing = true;
    s->lists_inflight++;
}

static void on_event(void *ud, int w, const kbw_event *ev, size_t bytes) {
    (void)bytes;
    storm_state *s = ud;
    s->events++;
    if (ev->type == 0 && ev->version <= 1) return; /* ADDED: no mismatch */
    s->relists_wanted++;
    storm_watcher *sw = &s->w[w];
    if (sw->listing)
        sw->dirty = true;
    else
        start_list(s, w);
}

static int send_put(storm_state *s, kb_op *op) {
    char key[128];
    obj_key(s, kb_rand_below(s->e, s->objects), key, sizeof key);
    uint64_t n = ++s->seq;
    memcpy(s->value, &n, s->vsize < sizeof n ? s->vsize : sizeof n);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    p.value = (ProtobufCBinaryData){s->vsize, s->value};
    op->t0 = uv_hrtime(); /* latency from the actual send, not from the pacing decision */
    s->last_op = op;
    return kb_op_unary_msg(op, "/etcdserverpb.KV/Put", &p.base, NULL);
}

static void on_pace(uv_timer_t *t) {
    storm_state *s = t->data;
    for (int i = 0; i < s->n_slots; i++) {
        if (s->timers[i] != t || !s->pending[i]) continue;
        kb_op *op = s->pending[i];
        s->pending[i] = NULL;
        if (send_put(s, op) != 0)
            kb_op_done(op, GRPC_STATUS_UNAVAILABLE, "cannot issue the put", 0);
    }
}

static int storm_op(void *state, kb_op *op) {
    storm_state *s = state;
    const kb_opts *o = s->e->o;
    uint64_t now = uv_hrtime();
    if (!s->round_started) {
        s->round_started = true;
        s->round_t0 = now;
        s->win_lo = now + (uint64_t)(o->warmup_s * 1e9);
        s->win_hi = o->count ? UINT64_MAX : s->win_lo + (uint64_t)(o->duration_s * 1e9);
        s->next_ns = 0;
        s->lists_win = 0;
        kb_hist_reset(&s->list_hist);
    }
    if (op->slot >= s->n_slots) return GRPC_EINVAL;
    if (s->rate <= 0) return send_put(s, op);
    uint64_t period = (uint64_t)(1e9 / s->rate);
    if (s->next_ns < now) s->next_ns = now;
    uint64_t at = s->next_ns;
    s->next_ns += period;
    if (at <= now + 500000) return send_put(s, op);
    if (!s->timers[op->slot]) {
        s->timers[op->slot] = malloc(sizeof(uv_timer_t));
        if (!s->timers[op->slot]) return GRPC_ENOMEM;
        uv_timer_init(s->e->loop, s->timers[op->slot]);
        s->timers[op->slot]->data = s;
    }
    s->pending[op->slot] = op;
    uv_timer_start(s->timers[op->slot], on_pace, (at - now) / 1000000, 0);
    return 0;
}

static bool lists_idle(void *ud) {
    storm_state *s = ud;
    return s->lists_inflight == 0 || s->e->broken;
}

static void storm_after_round(kb_env *e, void *state) {
    storm_state *s = state;
    s->round++;
    uint64_t win_end = s->win_hi;
    s->round_started = false;
    bool idle = kbw_run_until(e, lists_idle, s, 30000);
    double secs = (double)(win_end - s->win_lo) / 1e9;
    if (e->o->count) secs = (double)(uv_hrtime() - s->win_lo) / 1e9;
    printf("    storm %-8s round %d: LIST/s %.1f (%llu in window), LIST p50 %.2f ms p99 %.2f ms "
           "max %.2f ms; watch events %llu, relists wanted %llu; LIST errors %llu, wrong "
           "counts %llu%s%s%s\n",
           e->t->name, s->round, secs > 0 ? (double)s->lists_win / secs : 0,
           (unsigned long long)s->lists_win, (double)kb_hist_pct(&s->list_hist, 50) / 1e6,
           (double)kb_hist_pct(&s->list_hist, 99) / 1e6, (double)s->list_hist.max / 1e6,
           (unsigned long long)s->events, (unsigned long long)s->relists_wanted,
           (unsigned long long)s->list_errors, (unsigned long long)s->bad_lists,
           idle ? "" : " (relists still running)", s->first_error[0] ? "; first error: " : "",
           s->first_error);
    fflush(stdout);
    char err[256];
    if (idle && kb_compact(e, err, sizeof err) != 0)
        fprintf(stderr, "kvbench: %s: compaction after the round failed: %s\n", e->t->name, err);
}

static void timer_free(uv_handle_t *h) {
    free(h);
}

static void storm_teardown(void *state) {
    storm_state *s = state;
    if (!s) return;
    kbw_close(s->fleet);
    s->fleet = NULL;
    for (int i = 0; s->timers && i < s->n_slots; i++)
        if (s->timers[i]) uv_close((uv_handle_t *)s->timers[i], timer_free);
    if (s->timers) memset(s->timers, 0, (size_t)s->n_slots * sizeof *s->timers);
    /* LISTs still in flight complete (CANCELLED) when the clients are freed */
    if (s->lists_inflight > 0)
        s->closing = true;
    else
        storm_free(s);
}

static int storm_setup(kb_env *e, void **state, char *err, size_t errlen) {
    const kb_opts *o = e->o;
    storm_state *s = calloc(1, sizeof *s);
    if (!s) return -1;
    *state = s;
    s->e = e;
    s->n = (int)kb_opt_int(o, "watchers", 200);
    s->n_streams = (int)kb_opt_int(o, "streams", o->conns);
    s->rate = kb_opt_double(o, "rate", 10);
    s->n_ns = o->namespaces > 0 ? o->namespaces : 1;
    s->objects = o->objects;
    s->per_ns = (s->objects + (uint64_t)s->n_ns - 1) / (uint64_t)s->n_ns;
    if (s->per_ns == 0) s->per_ns = 1;
    s->vsize = o->value_size;
    s->n_slots = o->concurrency > 0 ? o->concurrency : 1;
    if (s->n < 1 || s->n_streams < 1 || s->rate < 0) {
        snprintf(err, errlen, "bad --watchers / --streams / --rate");
        return -1;
    }
    s->ns_count = calloc((size_t)s->n_ns, sizeof *s->ns_count);
    s->w = calloc((size_t)s->n, sizeof *s->w);
    s->timers = calloc((size_t)s->n_slots, sizeof *s->timers);
    s->pending = calloc((size_t)s->n_slots, sizeof *s->pending);
    s->value = malloc(s->vsize ? s->vsize : 1);
    if (!s->ns_count || !s->w || !s->timers || !s->pending || !s->value) return -1;
    kb_fill_value(s->value, s->vsize, 13);
    for (uint64_t i = 0; i < s->objects; i++)
        s->ns_count[i / s->per_ns]++;
    kb_hist_reset(&s->list_hist);
    if (kb_delete_prefix(e, STORM_PREFIX, err, errlen) != 0) return -1;
    if (kb_seed(e, s->objects, keyfn, s, s->vsize, err, errlen) != 0) return -1;
    s->fleet = kbw_open(e, s->n, s->n_streams, 0, watcher_prefix, on_event, s, err, errlen);
    if (!s->fleet) return -1;
    for (int w = 0; w < s->n; w++)
        start_list(s, w); /* the initial LIST of every reflector */
    if (!kbw_run_until(e, lists_idle, s, 60000)) {
        snprintf(err, errlen, "initial LISTs did not complete");
        return -1;
    }
    return 0;
}

static void storm_describe(const kb_opts *o, char *buf, size_t cap) {
    char vs[32], mode[48];
    kb_size_str(o->value_size, vs, sizeof vs);
    uint64_t ns = o->namespaces > 0 ? (uint64_t)o->namespaces : 1;
    double rate = kb_opt_double(o, "rate", 10);
    if (rate > 0)
        snprintf(mode, sizeof mode, "%.0f puts/s", rate);
    else
        snprintf(mode, sizeof mode, "puts closed loop c=%d", o->concurrency);
    snprintf(buf, cap, "storm %lld watchers, %llu ns x %llu x %s, %s",
             (long long)kb_opt_int(o, "watchers", 200), (unsigned long long)ns,
             (unsigned long long)((o->objects + ns - 1) / ns), vs, mode);
}

static const char *const storm_flags[] = {"watchers", "streams", "rate", NULL};

const kb_workload kb_wl_storm = {
    .name = "storm",
    .summary = "relist storm: watchers re-LIST their namespace on every update; put latency",
    .flags_help = "           --watchers N [200] over --namespaces (objects / namespaces each)\n"
                  "           --streams S [= --conns]  --rate PUTS/S [10; 0 = -c closed loop]\n",
    .extra_flags = storm_flags,
    .aux_name = "lists",
    .setup = storm_setup,
    .start_op = storm_op,
    .after_round = storm_after_round,
    .teardown = storm_teardown,
    .describe = storm_describe,
};
