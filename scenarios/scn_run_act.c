/* scn_run_act.c — the script's actions at their times: live watcher switches, compaction (once
 * or every N), a server restart on the same port and data dir, dropped watch connections, held
 * watchers, and verification rounds mid-run.
 *
 * Key decisions:
 * - Times are checked on the runner's 50 ms tick against the time since t0 (the fleet synced),
 *   the same clock the samples use, so an action lands in the sample that shows its effect.
 * - drop-connections cuts TCP connections for real (refl_fleet_drop_connections: a random,
 *   seeded fraction of the open connections is reset, no GOAWAY); the watchers on them go
 *   through their reconnect path (backoff, re-watch from the last revision, a relist only if
 *   that history was compacted). The seed is the run's seed and the action's index, so a
 *   script replays the same cut.
 * - The watchers hold picks are the first fraction of the fleet: watcher i watches namespace
 *   i % N, so the first half still covers every namespace. */
#include "scn_run_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t pick(const scn_runner *r, double fraction) {
    size_t n = refl_fleet_count(r->fleet);
    if (fraction <= 0) return 0;
    if (fraction >= 1) return n;
    size_t k = (size_t)ceil(fraction * (double)n);
    return k > n ? n : k;
}

static void do_switch(scn_runner *r, const scn_watchers *sw) {
    char m[256] = "";
    size_t ml = 0;
    if (sw->set & SCN_W_KEY_MODE) {
        refl_key_mode km;
        if (refl_key_mode_parse(sw->key_mode, &km) == 0) {
            refl_fleet_set_key_mode(r->fleet, km);
            snprintf(r->cur.key_mode, sizeof r->cur.key_mode, "%s", sw->key_mode);
            ml += (size_t)snprintf(m + ml, sizeof m - ml, " key-mode=%s", sw->key_mode);
        }
    }
    if ((sw->set & SCN_W_ON_MISS) && ml < sizeof m) {
        refl_miss_policy p;
        if (refl_miss_policy_parse(sw->on_miss, &p) == 0) {
            refl_fleet_set_miss_policy(r->fleet, p);
            snprintf(r->cur.on_miss, sizeof r->cur.on_miss, "%s", sw->on_miss);
            ml += (size_t)snprintf(m + ml, sizeof m - ml, " on-miss=%s", sw->on_miss);
        }
    }
    if ((sw->set & SCN_W_BACKOFF) && ml < sizeof m) {
        refl_backoff_cfg b;
        char e[128];
        if (refl_backoff_parse(sw->backoff, &b, e, sizeof e) == 0) {
            refl_fleet_set_backoff(r->fleet, &b);
            snprintf(r->cur.backoff, sizeof r->cur.backoff, "%s", sw->backoff);
            ml += (size_t)snprintf(m + ml, sizeof m - ml, " backoff=%s", sw->backoff);
        }
    }
    if ((sw->set & (SCN_W_QPS | SCN_W_BURST)) && ml < sizeof m) {
        if (sw->set & SCN_W_QPS) r->cur.qps = sw->qps;
        if (sw->set & SCN_W_BURST) r->cur.burst = sw->burst;
        refl_fleet_set_ratelimit(r->fleet, r->cur.qps, r->cur.burst);
        ml += (size_t)snprintf(m + ml, sizeof m - ml, " qps=%g burst=%g", r->cur.qps, r->cur.burst);
    }
    if ((sw->set & SCN_W_RESYNC) && ml < sizeof m) {
        refl_fleet_set_resync(r->fleet, sw->resync_ms);
        r->cur.resync_ms = sw->resync_ms;
        ml += (size_t)snprintf(m + ml, sizeof m - ml, " resync=%lldms", (long long)sw->resync_ms);
    }
    scn_runner_log(r, "t=%.1fs switch%s", (double)scn_runner_elapsed(r) / 1000, m);
}

static void on_restarted(void *ud, int status, const char *msg) {
    scn_runner *r = ud;
    r->restarting = false;
    if (status == 0)
        scn_runner_log(r, "t=%.1fs server back up", (double)scn_runner_elapsed(r) / 1000);
    else
        scn_runner_note(r, "server restart failed: %s", msg);
}

static void on_mid_verify(void *ud, const refl_verify_round *v) {
    scn_runner *r = ud;
    scn_runner_log(r,
                   "t=%.1fs verify: %zu verified, %zu unverified, %zu divergent watchers, "
                   "%llu divergent (missing %llu, extra %llu, stale %llu), collided %llu",
                   (double)scn_runner_elapsed(r) / 1000, v->verified, v->unverified,
                   v->divergent_watchers, (unsigned long long)v->divergent,
                   (unsigned long long)v->missing, (unsigned long long)v->extra,
                   (unsigned long long)v->stale, (unsigned long long)v->collided);
}

static int add_hold(scn_runner *r, uint64_t until, size_t from, size_t n) {
    if (r->n_holds == r->cap_holds) {
        size_t nc = r->cap_holds ? r->cap_holds * 2 : 8;
        scn_hold *nh = realloc(r->holds, nc * sizeof *nh);
        if (!nh) return -1;
        r->holds = nh;
        r->cap_holds = nc;
    }
    r->holds[r->n_holds++] = (scn_hold){.until_ms = until, .from = from, .n = n};
    return 0;
}

static void fire(scn_runner *r, size_t k, uint64_t now_ms) {
    const scn_action *a = &r->s->actions[k];
    double t = (double)now_ms / 1000;
    r->act_next[k] = UINT64_MAX;
    switch (a->kind) {
    case SCN_ACT_SWITCH:
        do_switch(r, &a->sw);
        break;
    case SCN_ACT_COMPACT:
        scn_runner_log(r, "t=%.1fs compact keep=%lld", t, (long long)a->keep);
        scn_ld_compact(r->ld, a->keep);
        if (a->every_ms > 0) r->act_next[k] = now_ms + (uint64_t)a->every_ms;
        break;
    case SCN_ACT_RESTART_SERVER:
        if (!scn_srv_is_child(r->srv)) {
            scn_runner_note(r, "restart-server skipped: the server is not the runner's child");
            break;
        }
        if (r->restarting || scn_srv_restart(r->srv, a->down_ms, 20000, on_restarted, r) != 0) {
            scn_runner_note(r, "restart-server at %.1fs skipped: server not up", t);
            break;
        }
        r->restarting = true;
        scn_runner_log(r, "t=%.1fs restart-server down=%lldms", t, (long long)a->down_ms);
        break;
    case SCN_ACT_DROP_CONNECTIONS: {
        uint64_t seed = (r->o->seed ? r->o->seed : 1) * 0x9e3779b97f4a7c15ull + k;
        refl_drop_result d;
        if (refl_fleet_drop_connections(r->fleet, a->fraction, seed, &d) < 0) {
            scn_runner_note(r, "drop-connections at %.1fs skipped: the fleet is stopping", t);
            break;
        }
        /* the cut's own trace lines (one per failed stream) may have used up this second's
         * log budget: the action's line is logged regardless */
        scn_runner_log_event(r,
                             "t=%.1fs drop-connections: %zu of %zu open connections cut (%zu "
                             "watchers, %zu watch streams)",
                             t, d.conns, d.conns_open, d.watchers, d.streams);
        break;
    }
    case SCN_ACT_HOLD: {
        size_t n = pick(r, a->fraction);
        for (size_t i = 0; i < n; i++)
            refl_fleet_hold(r->fleet, i, true);
        if (add_hold(r, now_ms + (uint64_t)(a->for_ms > 0 ? a->for_ms : 0), 0, n)) {
            for (size_t i = 0; i < n; i++)
                refl_fleet_hold(r->fleet, i, false);
            break;
        }
        scn_runner_log(r, "t=%.1fs hold %zu watchers for %lldms", t, n, (long long)a->for_ms);
        break;
    }
    case SCN_ACT_VERIFY:
        if (refl_fleet_verify(r->fleet, 10000, on_mid_verify, r) != 0)
            scn_runner_log(r, "t=%.1fs verify skipped: a round is in progress", t);
        break;
    }
}

int scn_actions_init(scn_runner *r) {
    size_t n = r->s->n_actions;
    r->act_next = calloc(n ? n : 1, sizeof *r->act_next);
    if (!r->act_next) return -1;
    for (size_t k = 0; k < n; k++) {
        int64_t at = scn_action_time_ms(r->s, &r->s->actions[k]);
        r->act_next[k] = at < 0 ? 0 : (uint64_t)at;
    }
    return 0;
}

void scn_actions_tick(scn_runner *r, uint64_t elapsed_ms) {
    for (size_t k = 0; k < r->s->n_actions; k++)
        if (r->act_next[k] != UINT64_MAX && elapsed_ms >= r->act_next[k] &&
            r->act_next[k] < r->total_ms)
            fire(r, k, elapsed_ms);
    for (size_t h = 0; h < r->n_holds;) {
        if (elapsed_ms >= r->holds[h].until_ms) {
            for (size_t i = r->holds[h].from; i < r->holds[h].from + r->holds[h].n; i++)
                refl_fleet_hold(r->fleet, i, false);
            scn_runner_log(r, "t=%.1fs released %zu held watchers", (double)elapsed_ms / 1000,
                           r->holds[h].n);
            r->holds[h] = r->holds[--r->n_holds];
        } else {
            h++;
        }
    }
}

void scn_actions_release(scn_runner *r) {
    if (r->fleet)
        for (size_t h = 0; h < r->n_holds; h++)
            for (size_t i = r->holds[h].from; i < r->holds[h].from + r->holds[h].n; i++)
                refl_fleet_hold(r->fleet, i, false);
    r->n_holds = 0;
}

void scn_actions_free(scn_runner *r) {
    free(r->holds);
    r->holds = NULL;
    r->n_holds = r->cap_holds = 0;
    free(r->act_next);
    r->act_next = NULL;
}
