/* refl_fleet.c — N reflectors on one libuv loop: options and prefixes, connection slots
 * (shared grpc clients, endpoint failover), start/stop, live reconfiguration, stats and the
 * JSON summary.
 *
 * Key decisions:
 * - A slot's client is made on demand by the first request that needs it, and dropped (freed)
 *   as soon as it fails to connect or disconnects; the slot then moves to the next endpoint.
 *   Reflectors learn about the loss from their own failed calls and come back through their
 *   backoff, so a dead server costs one connection attempt per slot per retry, not a loop.
 * - grpc_client_free may be called from the client's own callbacks (it defers the teardown);
 *   pending calls then fail with CANCELLED "client closed", which reflectors treat like
 *   UNAVAILABLE (connection-level: re-watch, no relist).
 * - refl_fleet_drop_connections aborts clients (TCP RST, no GOAWAY) instead of holding
 *   watchers: the reflectors then learn of the loss the way they would from a real network
 *   failure (UNAVAILABLE on their own calls) and recover through the same code path.
 * - The summary reuses refl_summary_json for "totals" and "watchers" (one shape for every
 *   consumer) and appends a "fleet" object for what the core counters do not have. */
#include "refl_fleet_internal.h"
#include "refl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *refl_state_name(refl_state s) {
    switch (s) {
    case REFL_ST_IDLE:
        return "idle";
    case REFL_ST_WAITING:
        return "waiting";
    case REFL_ST_LISTING:
        return "listing";
    case REFL_ST_WATCH_STARTING:
        return "watch-starting";
    case REFL_ST_WATCHING:
        return "watching";
    case REFL_ST_HELD:
        return "held";
    case REFL_ST_STOPPED:
        return "stopped";
    }
    return "unknown";
}

uint8_t *refl_prefix_end(const char *prefix, size_t len, size_t *out_len) {
    uint8_t *e = malloc(len ? len : 1);
    if (!e) return NULL;
    memcpy(e, prefix, len);
    size_t n = len;
    while (n > 0) {
        if (e[n - 1] < 0xff) {
            e[n - 1]++;
            *out_len = n;
            return e;
        }
        n--;
    }
    /* empty or all 0xff: every key from the prefix on ("\0" means "to the end") */
    e[0] = 0;
    *out_len = 1;
    return e;
}

/* ---- connection slots ------------------------------------------------------------------------ */

static void slot_drop(refl_slot *s, const char *why) {
    refl_fleet *f = s->f;
    if (s->c) grpc_client_free(s->c);
    s->c = NULL;
    s->up = false;
    if (f->n_endpoints > 1) {
        s->ep = (s->ep + 1) % f->n_endpoints;
        f->failovers++;
    }
    refl_trace_emit(f, REFL_TRACE_CONN_DOWN, s->idx, 0, 0, why);
}

static void slot_on_connect(void *ud, grpc_client *c, int status) {
    refl_slot *s = ud;
    if (c != s->c) return;
    if (status == 0) {
        s->up = true;
        return;
    }
    char why[160];
    snprintf(why, sizeof why, "connect %s: %s", s->f->endpoints[s->ep], uv_strerror(status));
    slot_drop(s, why);
}

static void slot_on_disconnect(void *ud, grpc_client *c, int status, const char *message) {
    (void)status;
    refl_slot *s = ud;
    if (c != s->c) return;
    char why[160];
    snprintf(why, sizeof why, "disconnected from %s: %s", s->f->endpoints[s->ep],
             message ? message : "");
    slot_drop(s, why);
}

grpc_client *refl_slot_client(refl_slot *s) {
    if (s->c) return s->c;
    refl_fleet *f = s->f;
    if (f->stopping) return NULL;
    grpc_client_opts o = {
        .on_connect = slot_on_connect, .on_disconnect = slot_on_disconnect, .ud = s};
    s->c = grpc_client_new(f->loop, f->endpoints[s->ep], &o);
    s->up = false;
    f->connects++;
    return s->c;
}

/* ---- construction ---------------------------------------------------------------------------- */

/* fmt with its single "%d" replaced by num ("%%" is a literal '%'). -1 on a bad format. */
static int format_prefix(const char *fmt, size_t num, char *out, size_t cap) {
    size_t k = 0;
    int subs = 0;
    for (const char *p = fmt; *p; p++) {
        char tmp[32];
        const char *piece = tmp;
        if (*p == '%') {
            if (p[1] == '%') {
                tmp[0] = '%';
                tmp[1] = 0;
                p++;
            } else if (p[1] == 'd') {
                snprintf(tmp, sizeof tmp, "%zu", num);
                subs++;
                p++;
            } else {
                return -1;
            }
        } else {
            tmp[0] = *p;
            tmp[1] = 0;
        }
        size_t n = strlen(piece);
        if (k + n + 1 > cap) return -1;
        memcpy(out + k, piece, n);
        k += n;
    }
    out[k] = 0;
    return subs == 1 ? 0 : -1;
}

static void fleet_free_mem(refl_fleet *f) {
    if (f->rs)
        for (size_t i = 0; i < f->n; i++)
            refl_r_fini(&f->rs[i]);
    free(f->rs);
    free(f->slots);
    for (size_t i = 0; i < f->n_endpoints; i++)
        free(f->endpoints[i]);
    free(f->endpoints);
    refl_verify_free_jobs(f);
    if (f->pool) refl_objpool_free(f->pool);
    free(f);
}

refl_fleet *refl_fleet_new(struct uv_loop_s *loop, const refl_fleet_opts *opts, char *err,
                           size_t err_cap) {
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        if (err && err_cap) snprintf(err, err_cap, __VA_ARGS__);                                   \
        if (f) fleet_free_mem(f);                                                                  \
        return NULL;                                                                               \
    } while (0)
    refl_fleet *f = NULL;
    if (!loop || !opts) FAIL("no loop or options");
    if (!opts->endpoints || opts->n_endpoints == 0) FAIL("no endpoints");
    if (opts->count == 0) FAIL("count must be at least 1");
    if (opts->page_size < 0) FAIL("page size must not be negative");
    if (!(opts->qps >= 0) || !(opts->burst >= 0)) FAIL("bad rate limit");
    f = calloc(1, sizeof(*f));
    if (!f) FAIL("out of memory");
    f->loop = loop;
    f->o = *opts;
    f->o.endpoints = NULL;
    f->o.prefix = NULL;
    f->o.prefix_fmt = NULL;
    if (!f->o.request_timeout_ms) f->o.request_timeout_ms = 60000;
    f->mode = opts->key_mode;
    f->endpoints = calloc(opts->n_endpoints, sizeof(char *));
    if (!f->endpoints) FAIL("out of memory");
    for (size_t i = 0; i < opts->n_endpoints; i++) {
        const char *e = opts->endpoints[i];
        if (!e || !*e || !strchr(e, ':')) FAIL("bad endpoint \"%s\" (want host:port)", e ? e : "");
        f->endpoints[i] = strdup(e);
        f->n_endpoints = i + 1;
        if (!f->endpoints[i]) FAIL("out of memory");
    }
    f->n = opts->count;
    f->n_slots = opts->conns && opts->conns < opts->count ? opts->conns : opts->count;
    f->pool = refl_objpool_new();
    f->slots = calloc(f->n_slots, sizeof(*f->slots));
    f->rs = calloc(f->n, sizeof(*f->rs));
    if (!f->pool || !f->slots || !f->rs) FAIL("out of memory");
    for (size_t s = 0; s < f->n_slots; s++) {
        f->slots[s].f = f;
        f->slots[s].idx = s;
        f->slots[s].ep = s % f->n_endpoints;
    }
    const char *base = opts->prefix && *opts->prefix ? opts->prefix : "/registry/pods/";
    for (size_t i = 0; i < f->n; i++) {
        char prefix[1024];
        size_t num = opts->namespaces ? i % opts->namespaces : i;
        if (opts->prefix_fmt) {
            if (format_prefix(opts->prefix_fmt, num, prefix, sizeof prefix))
                FAIL("bad per-watcher prefix \"%s\" (want exactly one %%d)", opts->prefix_fmt);
        } else if (opts->namespaces) {
            snprintf(prefix, sizeof prefix, "%sns-%zu/", base, num);
        } else {
            snprintf(prefix, sizeof prefix, "%s", base);
        }
        if (refl_r_init(&f->rs[i], f, i, prefix)) FAIL("out of memory");
    }
    for (size_t i = 0; i < f->n; i++)
        refl_r_init_timers(&f->rs[i]);
    uv_timer_init(loop, &f->verify_timer);
    f->verify_timer.data = f;
    return f;
#undef FAIL
}

int refl_fleet_start(refl_fleet *f) {
    if (f->started || f->stopping) return -1;
    f->started = true;
    for (size_t i = 0; i < f->n; i++)
        refl_r_start(&f->rs[i]);
    return 0;
}

static void closed_one(refl_fleet *f) {
    if (--f->closes_pending == 0 && f->stop_done) f->stop_done(f->stop_ud);
}

static void on_closed_fleet(uv_handle_t *h) {
    closed_one(h->data);
}

static void on_closed_reflector(uv_handle_t *h) {
    closed_one(((refl_reflector *)h->data)->f);
}

void refl_fleet_stop(refl_fleet *f, void (*done)(void *ud), void *ud) {
    if (f->stopping) return;
    f->stopping = true;
    f->stop_done = done;
    f->stop_ud = ud;
    refl_verify_abort_all(f);
    for (size_t i = 0; i < f->n; i++)
        refl_r_stop(&f->rs[i]);
    /* pending unary calls complete (as CANCELLED) inside grpc_client_free: all stale now */
    for (size_t s = 0; s < f->n_slots; s++) {
        if (f->slots[s].c) grpc_client_free(f->slots[s].c);
        f->slots[s].c = NULL;
        f->slots[s].up = false;
    }
    f->closes_pending = 1 + 2 * (int)f->n;
    uv_close((uv_handle_t *)&f->verify_timer, on_closed_fleet);
    for (size_t i = 0; i < f->n; i++) {
        uv_close((uv_handle_t *)&f->rs[i].timer, on_closed_reflector);
        uv_close((uv_handle_t *)&f->rs[i].resync_timer, on_closed_reflector);
    }
}

void refl_fleet_free(refl_fleet *f) {
    if (!f) return;
    fleet_free_mem(f);
}

/* ---- reconfiguration ---------------------------------------------------------------------------
 */

void refl_fleet_set_key_mode(refl_fleet *f, refl_key_mode mode) {
    f->mode = mode;
    for (size_t i = 0; i < f->n; i++)
        refl_r_rekey(&f->rs[i], mode);
}

void refl_fleet_set_miss_policy(refl_fleet *f, refl_miss_policy p) {
    f->o.miss_policy = p;
    for (size_t i = 0; i < f->n; i++)
        f->rs[i].policy = p;
}

void refl_fleet_set_backoff(refl_fleet *f, const refl_backoff_cfg *cfg) {
    f->o.backoff = *cfg;
    for (size_t i = 0; i < f->n; i++) {
        refl_reflector *r = &f->rs[i];
        refl_backoff_init(&r->bo, cfg, f->o.seed + i, refl_now(f));
    }
}

void refl_fleet_set_ratelimit(refl_fleet *f, double qps, double burst) {
    f->o.qps = qps;
    f->o.burst = burst;
    for (size_t i = 0; i < f->n; i++) {
        refl_reflector *r = &f->rs[i];
        r->waits_base += r->tb.waits;
        refl_tokenbucket_init(&r->tb, qps, burst, refl_now(f));
    }
}

void refl_fleet_set_resync(refl_fleet *f, int64_t resync_ms) {
    f->o.resync_ms = resync_ms;
    if (f->stopping) return;
    for (size_t i = 0; i < f->n; i++)
        if (f->started) refl_r_set_resync(&f->rs[i], resync_ms);
}

int refl_fleet_hold(refl_fleet *f, size_t i, bool hold) {
    if (i >= f->n || f->stopping) return -1;
    refl_r_hold(&f->rs[i], hold);
    return 0;
}

int refl_fleet_drop_connections(refl_fleet *f, double fraction, uint64_t seed,
                                refl_drop_result *out) {
    refl_drop_result res = {0};
    if (out) *out = res;
    if (f->stopping || !(fraction >= 0)) return -1;
    size_t *open = malloc(f->n_slots * sizeof(*open));
    bool *cut = calloc(f->n_slots, sizeof(*cut));
    if (!open || !cut) {
        free(open);
        free(cut);
        return -1;
    }
    for (size_t s = 0; s < f->n_slots; s++)
        if (f->slots[s].c && f->slots[s].up) open[res.conns_open++] = s;
    size_t k = res.conns_open;
    if (fraction < 1) {
        double want = fraction * (double)res.conns_open;
        k = (size_t)want;
        if ((double)k < want) k++; /* ceil without libm */
    }
    /* a seeded partial Fisher-Yates: the first k of open[] are the chosen ones */
    refl_rng rng;
    refl_rng_seed(&rng, seed);
    for (size_t i = 0; i < k; i++) {
        size_t j = i + (size_t)(refl_rng_next(&rng) % (res.conns_open - i));
        size_t t = open[i];
        open[i] = open[j];
        open[j] = t;
        cut[open[i]] = true;
    }
    for (size_t i = 0; i < f->n; i++) {
        if (!cut[f->rs[i].slot->idx]) continue;
        res.watchers++;
        if (f->rs[i].ws) res.streams++;
    }
    /* Each abort fails the slot's calls (reflectors schedule their retries on timers, nothing
     * is sent from inside), then on_disconnect drops the slot: its next request reconnects. */
    for (size_t i = 0; i < k; i++) {
        refl_slot *s = &f->slots[open[i]];
        if (!s->c) continue;
        grpc_client_abort(s->c);
        res.conns++;
        f->drops++;
    }
    free(open);
    free(cut);
    if (out) *out = res;
    return (int)res.conns;
}

/* ---- stats -------------------------------------------------------------------------------------
 */

size_t refl_fleet_count(const refl_fleet *f) {
    return f->n;
}

const refl_cache *refl_fleet_cache(const refl_fleet *f, size_t i) {
    return i < f->n ? f->rs[i].cache : NULL;
}

static void extra_add(refl_extra_counters *a, const refl_extra_counters *b) {
    a->resyncs += b->resyncs;
    a->resync_objects += b->resync_objects;
    a->rewatches += b->rewatches;
    a->reconnects += b->reconnects;
    a->list_failures += b->list_failures;
    a->get_failures += b->get_failures;
    a->duplicates += b->duplicates;
    a->progress += b->progress;
    a->rekeys += b->rekeys;
    a->verifies += b->verifies;
}

void refl_fleet_get_stats(const refl_fleet *f, refl_fleet_stats *out) {
    memset(out, 0, sizeof(*out));
    out->watchers = f->n;
    for (size_t i = 0; i < f->n; i++) {
        const refl_reflector *r = &f->rs[i];
        refl_counters c;
        refl_r_counters(r, &c);
        refl_counters_add(&out->totals, &c);
        extra_add(&out->extra, &r->ex);
        if (r->state == REFL_ST_WATCHING) {
            out->watching++;
            if (r->synced) out->synced++;
        }
        if (r->state == REFL_ST_HELD) out->held++;
        out->objects += refl_cache_count(r->cache);
    }
    for (size_t s = 0; s < f->n_slots; s++)
        if (f->slots[s].up) out->conns_up++;
    out->connects = f->connects;
    out->failovers = f->failovers;
    out->drops = f->drops;
    out->pool = refl_objpool_get_stats(f->pool);
    out->verify_rounds = f->verify_rounds;
    out->verify_lists = f->verify_lists;
}

int refl_fleet_watcher_info(const refl_fleet *f, size_t i, refl_watcher_info *out) {
    if (i >= f->n) return -1;
    const refl_reflector *r = &f->rs[i];
    memset(out, 0, sizeof(*out));
    out->name = r->name;
    out->prefix = r->prefix;
    out->state = r->state;
    out->synced = r->synced;
    out->revision = r->rev;
    out->objects = refl_cache_count(r->cache);
    out->slot = r->slot->idx;
    out->endpoint = f->endpoints[r->slot->ep];
    out->key_mode = refl_cache_mode(r->cache);
    out->miss_policy = r->policy;
    refl_r_counters(r, &out->counters);
    out->extra = r->ex;
    out->verified = r->verified;
    if (r->verified) out->verify = r->vrep;
    return 0;
}

/* ---- summary ------------------------------------------------------------------------------------
 */

static void put_extra(refl_buf *b, const refl_extra_counters *x) {
    refl_buf_printf(b,
                    "\"resyncs\": %llu, \"resync_objects\": %llu, \"rewatches\": %llu, "
                    "\"reconnects\": %llu, \"list_failures\": %llu, \"get_failures\": %llu, "
                    "\"duplicates\": %llu, \"progress\": %llu, \"rekeys\": %llu, "
                    "\"verifies\": %llu",
                    (unsigned long long)x->resyncs, (unsigned long long)x->resync_objects,
                    (unsigned long long)x->rewatches, (unsigned long long)x->reconnects,
                    (unsigned long long)x->list_failures, (unsigned long long)x->get_failures,
                    (unsigned long long)x->duplicates, (unsigned long long)x->progress,
                    (unsigned long long)x->rekeys, (unsigned long long)x->verifies);
}

char *refl_fleet_summary_json(const refl_fleet *f, size_t *len) {
    refl_watcher_row *rows = calloc(f->n ? f->n : 1, sizeof(*rows));
    if (!rows) return NULL;
    for (size_t i = 0; i < f->n; i++) {
        const refl_reflector *r = &f->rs[i];
        rows[i].name = r->name;
        rows[i].prefix = r->prefix;
        rows[i].key_mode = refl_key_mode_name(refl_cache_mode(r->cache));
        rows[i].miss_policy = refl_miss_policy_name(r->policy);
        refl_r_counters(r, &rows[i].counters);
    }
    size_t core_len = 0;
    char *core = refl_summary_json(rows, f->n, &core_len);
    free(rows);
    if (!core) return NULL;
    char *close = strrchr(core, '}'); /* the top-level object's end */
    if (!close) {
        free(core);
        return NULL;
    }
    refl_buf b = {0};
    refl_buf_append(&b, core, (size_t)(close - core));
    free(core);
    while (b.len && (b.p[b.len - 1] == '\n' || b.p[b.len - 1] == ' '))
        b.len--;

    refl_fleet_stats st;
    refl_fleet_get_stats(f, &st);
    refl_buf_puts(&b, ",\n  \"fleet\": {\"endpoints\": [");
    for (size_t i = 0; i < f->n_endpoints; i++) {
        if (i) refl_buf_puts(&b, ", ");
        refl_buf_json_str(&b, f->endpoints[i], strlen(f->endpoints[i]));
    }
    refl_buf_printf(&b,
                    "], \"conns\": %zu, \"conns_up\": %zu, \"connects\": %llu, \"failovers\": "
                    "%llu, \"drops\": %llu, \"watchers\": %zu, \"synced\": %zu, \"held\": %zu, "
                    "\"objects\": %zu, \"key_mode\": \"%s\", \"miss_policy\": \"%s\", "
                    "\"page_size\": %lld, ",
                    f->n_slots, st.conns_up, (unsigned long long)st.connects,
                    (unsigned long long)st.failovers, (unsigned long long)st.drops, st.watchers,
                    st.synced, st.held, st.objects, refl_key_mode_name(f->mode),
                    refl_miss_policy_name(f->o.miss_policy), (long long)f->o.page_size);
    refl_buf_printf(&b,
                    "\"pool\": {\"objects\": %llu, \"bytes\": %llu, \"interns\": %llu, "
                    "\"shared_hits\": %llu}, ",
                    (unsigned long long)st.pool.objects, (unsigned long long)st.pool.bytes,
                    (unsigned long long)st.pool.interns, (unsigned long long)st.pool.shared_hits);
    put_extra(&b, &st.extra);
    const refl_verify_round *v = &f->last_round;
    refl_buf_printf(
        &b,
        ",\n    \"verify\": {\"rounds\": %llu, \"lists\": %llu, \"verified\": %zu, "
        "\"unverified\": %zu, \"divergent_watchers\": %zu, \"missing\": %llu, "
        "\"extra\": %llu, \"stale\": %llu, \"ahead\": %llu, \"collided\": %llu, "
        "\"misplaced\": %llu, \"divergent\": %llu, \"min_revision\": %lld, "
        "\"max_revision\": %lld, \"listings\": [",
        (unsigned long long)f->verify_rounds, (unsigned long long)f->verify_lists, v->verified,
        v->unverified, v->divergent_watchers, (unsigned long long)v->missing,
        (unsigned long long)v->extra, (unsigned long long)v->stale, (unsigned long long)v->ahead,
        (unsigned long long)v->collided, (unsigned long long)v->misplaced,
        (unsigned long long)v->divergent, (long long)v->min_revision, (long long)v->max_revision);
    size_t shown = 0;
    for (size_t i = 0; i < f->n && shown < 8; i++) {
        const refl_reflector *r = &f->rs[i];
        if (!r->verified || !r->vrep.divergent) continue;
        refl_buf_puts(&b, shown ? ",\n      {" : "\n      {");
        refl_buf_printf(&b, "\"watcher\": \"%s\", \"revision\": %lld, \"listing\": ", r->name,
                        (long long)r->vrep.revision);
        refl_buf_json_str(&b, r->vrep.listing, strlen(r->vrep.listing));
        refl_buf_puts(&b, "}");
        shown++;
    }
    refl_buf_puts(&b, "]}}\n}\n");
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    if (len) *len = b.len;
    return b.p;
}
