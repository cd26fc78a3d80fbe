/* scn_run.c — one scenario run from start to teardown, on its own libuv loop: server, seed,
 * fleet sync, phases (load + actions + samples), final verification, teardown. See scn_run.h
 * for the flow; the sampler and the actions live in scn_run_sample.c and scn_run_act.c.
 *
 * Key decisions:
 * - t = 0 is when every watcher has LISTed and is watching: the initial LIST burst is setup,
 *   not a measurement (a phase named warmup then measures the calm, not the sync).
 * - A stage that cannot complete (server not ready, seeding failed) fails the run with a
 *   message; an incomplete sync only adds a note (a huge fleet that syncs slowly is itself a
 *   result worth reporting).
 * - Teardown stops the fleet and the load driver first, then the server, so nothing sees the
 *   server vanish under it; the loop ends when the last handle has closed, and only then is
 *   anything freed.
 * - Signals (when asked for): the first SIGINT/SIGTERM ends the phases at once and skips the
 *   verification, keeping the samples; a second one tears down immediately. */
#include "scn_run_internal.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERVER_START_MS 20000
#define LOG_LINES_PER_S 8

const char *scn_stage_name(scn_stage s) {
    switch (s) {
    case SCN_STAGE_SERVER:
        return "server";
    case SCN_STAGE_SEED:
        return "seed";
    case SCN_STAGE_SYNC:
        return "sync";
    case SCN_STAGE_RUN:
        return "run";
    case SCN_STAGE_VERIFY:
        return "verify";
    case SCN_STAGE_DONE:
        return "done";
    }
    return "?";
}

/* ---- messages ---- */

static void vlog(scn_runner *r, bool limited, const char *fmt, va_list ap) {
    if (!r->o->log) return;
    if (limited) {
        uint64_t sec = uv_now(&r->loop) / 1000;
        if (sec != r->log_second) {
            if (r->log_dropped) {
                char m[96];
                snprintf(m, sizeof m, "[%s] (%llu more messages)", r->mode,
                         (unsigned long long)r->log_dropped);
                r->o->log(r->o->ud, m);
            }
            r->log_second = sec;
            r->log_count = 0;
            r->log_dropped = 0;
        }
        if (++r->log_count > LOG_LINES_PER_S) {
            r->log_dropped++;
            return;
        }
    }
    char line[640];
    int n = snprintf(line, sizeof line, "[%s] ", r->mode);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    r->o->log(r->o->ud, line);
}

void scn_runner_log(scn_runner *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(r, true, fmt, ap);
    va_end(ap);
}

/* An action's own line: never dropped by the per-second limit (the lines the action itself
 * causes, e.g. one per cut stream, may have used it up). */
void scn_runner_log_event(scn_runner *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(r, false, fmt, ap);
    va_end(ap);
}

/* A note is shown in the reports (joined with "; ") and logged. */
void scn_runner_note(scn_runner *r, const char *fmt, ...) {
    char m[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    size_t len = strlen(r->run->note), cap = sizeof r->run->note;
    if (len && len + 2 < cap) {
        memcpy(r->run->note + len, "; ", 3);
        len += 2;
    }
    size_t ml = strlen(m);
    if (len + ml >= cap) ml = cap - len - 1;
    memcpy(r->run->note + len, m, ml);
    r->run->note[len + ml] = 0;
    va_start(ap, fmt);
    vlog(r, false, fmt, ap);
    va_end(ap);
}

static void srv_log_hook(void *ud, const char *line) {
    scn_runner_log(ud, "%s", line);
}

uint64_t scn_runner_elapsed(const scn_runner *r) {
    if (!r->t0) return 0;
    uint64_t now = uv_now((uv_loop_t *)&r->loop);
    return now > r->t0 ? now - r->t0 : 0;
}

void scn_runner_progress(scn_runner *r, bool sample) {
    if (!r->o->progress) return;
    scn_progress p = {0};
    p.mode = r->mode;
    p.run = r->index;
    p.n_runs = r->res->n_runs;
    p.stage = r->stage;
    uint64_t el = scn_runner_elapsed(r);
    /* the sample at the very end still belongs to the last phase */
    int64_t at = (int64_t)(el < r->total_ms ? el : (r->total_ms ? r->total_ms - 1 : 0));
    int ph =
        r->stage == SCN_STAGE_RUN || r->stage == SCN_STAGE_VERIFY ? scn_phase_at(r->s, at) : -1;
    p.phase = ph >= 0 ? r->s->phases[ph].name : "";
    p.elapsed_s = r->stage >= SCN_STAGE_RUN ? (double)el / 1000 : 0;
    p.total_s = (double)r->total_ms / 1000;
    p.request_rate = p.list_rate = p.relist_rate = p.event_rate = p.write_rate = NAN;
    p.list_p99_ms = NAN;
    if (r->have_last) {
        p.request_rate = r->last.v[SCN_F_REQUESTS];
        p.list_rate = r->last.v[SCN_F_LIST];
        p.relist_rate = r->last.v[SCN_F_RELISTS];
        p.event_rate = r->last.v[SCN_F_EVENTS];
        p.write_rate = r->last.v[SCN_F_WRITES];
        p.list_p99_ms = r->last.list_ms[SCN_Q99];
    }
    if (r->fleet) {
        refl_fleet_stats st;
        refl_fleet_get_stats(r->fleet, &st);
        p.synced = st.synced;
        p.watchers = st.watchers;
    }
    p.sample = sample;
    r->o->progress(r->o->ud, &p);
}

static void set_stage(scn_runner *r, scn_stage s) {
    r->stage = s;
    r->stage_start = uv_now(&r->loop);
    scn_runner_progress(r, false);
}

/* ---- teardown ---- */

static void close_handle(uv_handle_t *h) {
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* The signal handles close last, once the server is down: a Ctrl-C during teardown must not
 * find the default disposition (death before the report is printed). */
static void close_signals(scn_runner *r) {
    if (!r->signals_on) return;
    close_handle((uv_handle_t *)&r->sigint);
    close_handle((uv_handle_t *)&r->sigterm);
}

static void on_server_stopped(void *ud) {
    close_signals(ud);
}

static void on_pieces_stopped(scn_runner *r) {
    close_handle((uv_handle_t *)&r->tick);
    close_handle((uv_handle_t *)&r->sample_timer);
    if (r->srv)
        scn_srv_stop(r->srv, on_server_stopped, r);
    else
        close_signals(r);
}

static void on_fleet_stopped(void *ud) {
    scn_runner *r = ud;
    if (--r->pending == 0) on_pieces_stopped(r);
}

static void teardown(scn_runner *r) {
    if (r->stopping) return;
    r->stopping = true;
    r->stage = SCN_STAGE_DONE;
    scn_sampler_cancel(r);
    if (r->ld) scn_ld_set_phase(r->ld, NULL);
    /* fleet and load driver first; the server after both are down */
    r->pending = 1; /* this function's own reference */
    if (r->fleet) {
        r->pending++;
        refl_fleet_stop(r->fleet, on_fleet_stopped, r);
    }
    if (r->ld) {
        r->pending++;
        scn_ld_stop(r->ld, on_fleet_stopped, r);
    }
    on_fleet_stopped(r);
}

static void fail_run(scn_runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_run(scn_runner *r, const char *fmt, ...) {
    if (!r->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, sizeof r->err, fmt, ap);
        va_end(ap);
        r->failed = true;
        scn_runner_note(r, "%s", r->err);
    }
    teardown(r);
}

/* ---- the end: final sample, verification ---- */

static void on_verified(void *ud, const refl_verify_round *v) {
    scn_runner *r = ud;
    scn_end *e = &r->run->end;
    e->verified = v->verified > 0;
    e->watchers_verified = (double)v->verified;
    e->unverified = (double)v->unverified;
    e->divergent_watchers = (double)v->divergent_watchers;
    e->divergent = (double)v->divergent;
    e->missing = (double)v->missing;
    e->extra = (double)v->extra;
    e->stale = (double)v->stale;
    e->collided = (double)v->collided;
    scn_runner_log(r,
                   "verify: %zu watchers verified, %zu unverified, %zu divergent watchers; "
                   "divergent %llu (missing %llu, extra %llu, stale %llu), collided %llu",
                   v->verified, v->unverified, v->divergent_watchers,
                   (unsigned long long)v->divergent, (unsigned long long)v->missing,
                   (unsigned long long)v->extra, (unsigned long long)v->stale,
                   (unsigned long long)v->collided);
    if (v->unverified) scn_runner_note(r, "%zu watchers could not be verified", v->unverified);
    teardown(r);
}

static void after_final_sample(scn_runner *r) {
    if (r->interrupted || r->stopping) {
        teardown(r);
        return;
    }
    set_stage(r, SCN_STAGE_VERIFY);
    scn_actions_release(r);
    int64_t to = r->o->verify_timeout_ms > 0 ? r->o->verify_timeout_ms : 15000;
    if (refl_fleet_verifying(r->fleet)) {
        r->verify_wait = true; /* the tick starts the final round after it */
        return;
    }
    if (refl_fleet_verify(r->fleet, (uint32_t)to, on_verified, r) != 0) {
        scn_runner_note(r, "final verification could not start");
        teardown(r);
    }
}

void scn_runner_end(scn_runner *r) {
    if (r->stage != SCN_STAGE_RUN) {
        teardown(r);
        return;
    }
    if (r->ld) scn_ld_set_phase(r->ld, NULL);
    r->stage = SCN_STAGE_VERIFY; /* no more phase work on the tick */
    scn_sampler_finish(r, after_final_sample);
}

/* ---- stages ---- */

static void begin_run(scn_runner *r) {
    r->t0 = uv_now(&r->loop);
    if (r->t0 == 0) r->t0 = 1;
    r->phase = -2;
    set_stage(r, SCN_STAGE_RUN);
    scn_sampler_begin(r);
}

static void on_tick(uv_timer_t *t) {
    scn_runner *r = t->data;
    if (r->stopping) return;
    uint64_t now = uv_now(&r->loop);
    switch (r->stage) {
    case SCN_STAGE_SYNC: {
        refl_fleet_stats st;
        refl_fleet_get_stats(r->fleet, &st);
        int64_t to = r->o->sync_timeout_ms > 0 ? r->o->sync_timeout_ms : 60000;
        if (st.synced >= st.watchers) {
            scn_runner_log(r, "fleet synced: %zu watchers in %.1fs", st.watchers,
                           (double)(now - r->stage_start) / 1000);
            begin_run(r);
        } else if (now - r->stage_start >= (uint64_t)to) {
            scn_runner_note(r, "only %zu of %zu watchers synced after %.0fs", st.synced,
                            st.watchers, (double)to / 1000);
            begin_run(r);
        } else if ((now - r->stage_start) % 1000 < SCN_RUN_TICK_MS) {
            scn_runner_progress(r, false);
        }
        break;
    }
    case SCN_STAGE_RUN: {
        uint64_t el = scn_runner_elapsed(r);
        int p = scn_phase_at(r->s, (int64_t)el);
        if (p != r->phase) {
            r->phase = p;
            scn_ld_set_phase(r->ld, p >= 0 ? &r->s->phases[p] : NULL);
            if (p >= 0)
                scn_runner_log(r, "t=%.1fs phase %s", (double)el / 1000, r->s->phases[p].name);
        }
        scn_actions_tick(r, el);
        if (!r->restarting && !r->srv_dead && scn_srv_is_child(r->srv) &&
            !scn_srv_running(r->srv)) {
            r->srv_dead = true;
            scn_runner_note(r, "the server exited at t=%.1fs (see --verbose, --keep)",
                            (double)el / 1000);
        }
        if (el >= r->total_ms) scn_runner_end(r);
        break;
    }
    case SCN_STAGE_VERIFY:
        /* a mid-run round was still going when the phases ended: the final one follows it */
        if (r->verify_wait && !refl_fleet_verifying(r->fleet)) {
            r->verify_wait = false;
            int64_t to = r->o->verify_timeout_ms > 0 ? r->o->verify_timeout_ms : 15000;
            if (refl_fleet_verify(r->fleet, (uint32_t)to, on_verified, r) != 0) {
                scn_runner_note(r, "final verification could not start");
                teardown(r);
            }
        }
        break;
    default:
        break;
    }
}

static void on_seeded(void *ud, int status, const char *msg) {
    scn_runner *r = ud;
    if (r->stopping) return;
    if (status) {
        fail_run(r, "%s", msg);
        return;
    }
    set_stage(r, SCN_STAGE_SYNC);
    if (refl_fleet_start(r->fleet)) fail_run(r, "the watcher fleet did not start");
}

static void on_server_ready(void *ud, int status, const char *msg) {
    scn_runner *r = ud;
    if (r->stopping) return;
    if (status) {
        fail_run(r, "server did not start: %s", msg);
        return;
    }
    scn_runner_log(r, "server up at %s (metrics %s)", scn_srv_endpoint(r->srv, 0),
                   scn_srv_metrics(r->srv));
    r->ld = scn_ld_new(&r->loop, scn_srv_endpoint(r->srv, 0), &r->s->seed,
                       r->o->seed ? r->o->seed : 1, r->o->log ? srv_log_hook : NULL, r);
    if (!r->ld) {
        fail_run(r, "load driver: out of memory");
        return;
    }
    set_stage(r, SCN_STAGE_SEED);
    if (scn_ld_seed(r->ld, on_seeded, r)) fail_run(r, "seeding could not start");
}

static void on_signal(uv_signal_t *h, int sig) {
    scn_runner *r = h->data;
    if (r->interrupted || r->stage == SCN_STAGE_VERIFY) {
        scn_runner_log(r, "signal %d again: stopping now", sig);
        r->interrupted = true;
        teardown(r);
        return;
    }
    r->interrupted = true;
    scn_runner_note(r, "interrupted by signal %d at t=%.1fs", sig,
                    (double)scn_runner_elapsed(r) / 1000);
    scn_runner_end(r);
}

/* ---- the fleet's options from the run's watcher settings ---- */

static void on_trace(void *ud, const refl_trace *t) {
    scn_runner *r = ud;
    if (t->kind == REFL_TRACE_CONN_DOWN)
        scn_runner_log(r, "conn slot %zu down: %s", t->watcher, t->detail);
    else if (t->kind == REFL_TRACE_ERROR)
        scn_runner_log(r, "watcher %zu: %s", t->watcher, t->detail);
}

static int make_fleet(scn_runner *r, char *err, size_t cap) {
    const scn_watchers *w = &r->w;
    const scn_seed *sd = &r->s->seed;
    char prefix[256];
    size_t namespaces = 0;
    if (!strcmp(w->prefix, "namespace")) {
        snprintf(prefix, sizeof prefix, "%s%s/", sd->prefix, sd->resource);
        namespaces = (size_t)sd->namespaces;
    } else if (!strcmp(w->prefix, "all")) {
        snprintf(prefix, sizeof prefix, "%s%s/", sd->prefix, sd->resource);
    } else {
        snprintf(prefix, sizeof prefix, "%s", w->prefix);
    }
    refl_fleet_opts fo = {0};
    const char *eps[SCN_ENDPOINTS_MAX];
    fo.n_endpoints = scn_srv_endpoint_count(r->srv);
    if (fo.n_endpoints == 0) {
        /* an embedded server's port is known only once it runs: the fleet is made then */
        snprintf(err, cap, "no endpoint");
        return -1;
    }
    for (size_t i = 0; i < fo.n_endpoints; i++)
        eps[i] = scn_srv_endpoint(r->srv, i);
    fo.endpoints = eps;
    fo.count = (size_t)w->count;
    fo.prefix = prefix;
    fo.namespaces = namespaces;
    fo.conns = w->conns > 0 ? (size_t)w->conns : 0;
    if (refl_key_mode_parse(w->key_mode, &fo.key_mode)) {
        snprintf(err, cap, "unknown key mode '%s'", w->key_mode);
        return -1;
    }
    if (refl_miss_policy_parse(w->on_miss, &fo.miss_policy)) {
        snprintf(err, cap, "unknown on-miss policy '%s'", w->on_miss);
        return -1;
    }
    char berr[128];
    if (refl_backoff_parse(w->backoff[0] ? w->backoff : "none", &fo.backoff, berr, sizeof berr)) {
        snprintf(err, cap, "backoff '%s': %s", w->backoff, berr);
        return -1;
    }
    fo.qps = w->qps;
    fo.burst = w->burst;
    fo.page_size = w->page_size;
    fo.resync_ms = w->resync_ms;
    fo.request_timeout_ms = w->timeout_ms > 0 ? (uint32_t)w->timeout_ms : 60000;
    fo.seed = r->o->seed ? r->o->seed : 1;
    fo.trace = r->o->log ? on_trace : NULL;
    fo.trace_ud = r;
    r->fleet = refl_fleet_new(&r->loop, &fo, err, cap);
    return r->fleet ? 0 : -1;
}

/* The fleet needs the endpoint, which an embedded server only knows once it is up. */
static void on_server_ready_fleet(void *ud, int status, const char *msg) {
    scn_runner *r = ud;
    if (!r->stopping && status == 0 && !r->fleet) {
        char err[256];
        if (make_fleet(r, err, sizeof err)) {
            fail_run(r, "watcher fleet: %s", err);
            return;
        }
    }
    on_server_ready(ud, status, msg);
}

/* ---- API ---- */

int scn_run_one(const scn_script *s, scn_result *res, size_t index, const scn_run_opts *o,
                char *err, size_t err_cap) {
    if (index >= res->n_runs) {
        snprintf(err, err_cap, "no run %zu", index);
        return -1;
    }
    scn_runner *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, err_cap, "out of memory");
        return -1;
    }
    r->s = s;
    r->res = res;
    r->index = index;
    r->o = o;
    r->run = &res->runs[index];
    if (scn_script_run(s, index, &r->mode, &r->w)) {
        snprintf(err, err_cap, "no run %zu in the script", index);
        free(r);
        return -1;
    }
    r->cur = r->w;
    r->total_ms = (uint64_t)scn_script_duration_ms(s);
    r->last_t = -1;
    if (uv_loop_init(&r->loop)) {
        snprintf(err, err_cap, "uv_loop_init failed");
        free(r);
        return -1;
    }
    /* checks that need no server: settings the fleet would reject */
    {
        refl_key_mode km;
        refl_miss_policy mp;
        refl_backoff_cfg bc;
        char be[128];
        if (refl_key_mode_parse(r->w.key_mode, &km) || refl_miss_policy_parse(r->w.on_miss, &mp) ||
            refl_backoff_parse(r->w.backoff[0] ? r->w.backoff : "none", &bc, be, sizeof be)) {
            snprintf(err, err_cap,
                     "mode %s: bad watcher settings (key-mode %s, on-miss %s, backoff %s)", r->mode,
                     r->w.key_mode, r->w.on_miss, r->w.backoff);
            uv_loop_close(&r->loop);
            free(r);
            return -1;
        }
    }

    const char *eps[SCN_ENDPOINTS_MAX];
    for (size_t i = 0; i < s->server.n_endpoints; i++)
        eps[i] = s->server.endpoints[i];
    scn_srv_opts so = {
        .kind = s->server.kind,
        .bin = s->server.kind == SCN_SERVER_ETCD ? o->etcd_bin : o->kvstore_bin,
        .args = s->server.args,
        .endpoints = eps,
        .n_endpoints = s->server.n_endpoints,
        .metrics = s->server.metrics,
        .tmp_root = o->tmp_root,
        .keep_data = o->keep_data,
        .log = o->log ? srv_log_hook : NULL,
        .ud = r,
    };
    r->srv = scn_srv_new(&r->loop, &so, err, err_cap);
    int rc = 0;
    if (!r->srv || scn_actions_init(r)) {
        if (r->srv) snprintf(err, err_cap, "out of memory");
        snprintf(r->run->note, sizeof r->run->note, "%s", err);
        rc = -1;
        if (r->srv) {
            scn_srv_stop(r->srv, NULL, NULL);
            uv_run(&r->loop, UV_RUN_DEFAULT);
            scn_srv_free(r->srv);
        }
        uv_loop_close(&r->loop);
        scn_actions_free(r);
        free(r);
        return rc;
    }
    uv_timer_init(&r->loop, &r->tick);
    uv_timer_init(&r->loop, &r->sample_timer);
    r->tick.data = r->sample_timer.data = r;
    uv_timer_start(&r->tick, on_tick, SCN_RUN_TICK_MS, SCN_RUN_TICK_MS);
    if (o->handle_signals) {
        uv_signal_init(&r->loop, &r->sigint);
        uv_signal_init(&r->loop, &r->sigterm);
        r->sigint.data = r->sigterm.data = r;
        uv_signal_start(&r->sigint, on_signal, SIGINT);
        uv_signal_start(&r->sigterm, on_signal, SIGTERM);
        r->signals_on = true;
    }
    set_stage(r, SCN_STAGE_SERVER);
    if (scn_srv_start(r->srv, SERVER_START_MS, on_server_ready_fleet, r))
        fail_run(r, "server could not be started");

    uv_run(&r->loop, UV_RUN_DEFAULT);
    if (r->signals_on && r->interrupted) {
        /* the user asked to stop: further Ctrl-C's must not cut the report short (libuv
         * restored the default disposition when the handles closed) */
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
    }

    if (r->fleet) refl_fleet_free(r->fleet);
    scn_ld_free(r->ld);
    scn_srv_free(r->srv);
    scn_actions_free(r);
    if (uv_loop_close(&r->loop) != 0) {
        /* a handle left open is a bug here; run once more to close what can be closed */
        uv_run(&r->loop, UV_RUN_NOWAIT);
        uv_loop_close(&r->loop);
    }
    if (r->failed) {
        snprintf(err, err_cap, "%s: %s", r->mode, r->err);
        rc = -1;
    } else if (r->interrupted) {
        snprintf(err, err_cap, "%s: interrupted", r->mode);
        rc = 1;
    }
    free(r);
    return rc;
}

int scn_run_all(const scn_script *s, scn_result *res, const scn_run_opts *o, char *err,
                size_t err_cap) {
    int worst = 0;
    err[0] = 0;
    for (size_t i = 0; i < res->n_runs; i++) {
        char e[512];
        int rc = scn_run_one(s, res, i, o, e, sizeof e);
        if (rc != 0 && !err[0]) snprintf(err, err_cap, "%s", e);
        if (rc == 1) return 1;
        if (rc < 0) worst = -1;
    }
    return worst;
}
