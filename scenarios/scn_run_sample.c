/* scn_run_sample.c — the per-second sampler: GET /metrics, parse it (scn_prom), add the fleet's
 * counters, the load driver's writes and latency histogram and the server's CPU time into one
 * cumulative scn_snapshot, and turn consecutive snapshots into samples (scn_sampler_push ->
 * scn_run_add_sample).
 *
 * Key decisions:
 * - A snapshot is taken when the scrape's reply arrives: the fleet and load counters are read
 *   then, so all parts describe the same instant (give or take the scrape's own latency).
 * - One scrape at a time: if the previous one is still out when the next second comes, that
 *   second is skipped rather than queued (a slow server is then visible as longer intervals).
 * - A sample's phase is the phase at the middle of its interval, so the sample that ends on a
 *   phase boundary belongs to the phase it measured.
 * - etcd has no LIST/GET split (grpc_server_handled_total{grpc_method="Range"} counts both):
 *   then the LIST and GET counts come from the watchers' own counters (LIST pages and GETs
 *   sent), which is what the server received from them; bytes sent come from etcd's
 *   etcd_network_client_grpc_sent_bytes_total. */
#include "scn_run_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRAPE_TIMEOUT_MS 900

static void take_snapshot(scn_runner *r, const char *body, size_t len, bool ok) {
    scn_snapshot snap;
    scn_snapshot_init(&snap);
    snap.t = (double)scn_runner_elapsed(r) / 1000.0;
    refl_fleet_stats fs;
    refl_fleet_get_stats(r->fleet, &fs);
    if (ok) {
        scn_prom p;
        char perr[160];
        if (scn_prom_parse(body, len, &p, perr, sizeof perr) == 0) {
            scn_server_snap_from_prom(&p, &snap.srv);
            /* etcd counts the bytes it sends to gRPC clients under its own name */
            if (isnan(snap.srv.bytes_sent))
                snap.srv.bytes_sent =
                    scn_prom_sum(&p, "etcd_network_client_grpc_sent_bytes_total", NULL);
            scn_prom_free(&p);
        } else {
            scn_runner_log(r, "sampler: bad /metrics: %s", perr);
        }
    }
    if (snap.srv.ok && !snap.srv.range_split) {
        snap.srv.req[SCN_M_LIST] = (double)fs.totals.list_pages;
        snap.srv.req[SCN_M_GET] = (double)fs.totals.gets;
    }
    snap.events = (double)fs.totals.events;
    snap.misses = (double)fs.totals.misses;
    snap.relists_miss = (double)fs.totals.relists.miss;
    snap.relists_compacted = (double)fs.totals.relists.compacted;
    snap.relists_error = (double)fs.totals.relists.error;
    snap.list_bytes = (double)fs.totals.list_bytes;
    snap.synced = (double)fs.synced;
    scn_ld_stats ls;
    scn_ld_get_stats(r->ld, &ls);
    snap.writes = ls.writes;
    snap.write_errors = ls.write_errors;
    snap.put_hist = ls.put_hist;
    snap.cpu_seconds = scn_srv_cpu_seconds(r->srv);

    int phase = -1;
    if (r->last_t >= 0) {
        double mid = (r->last_t + snap.t) / 2;
        phase = scn_phase_at(r->s, (int64_t)(mid * 1000));
    }
    scn_sample smp;
    if (scn_sampler_push(&r->sm, &snap, phase, &smp)) {
        if (scn_run_add_sample(r->run, &smp)) scn_runner_log(r, "sampler: out of memory");
        r->last = smp;
        r->have_last = true;
    }
    r->last_t = snap.t;
    scn_runner_progress(r, true);
}

static void on_scrape(void *ud, int status, const char *body, size_t len, const char *err) {
    scn_runner *r = ud;
    r->scrape = NULL;
    bool ok = status == 200;
    if (!ok) {
        r->scrape_failures++;
        if (status)
            scn_runner_log(r, "sampler: GET /metrics: HTTP %d", status);
        else
            scn_runner_log(r, "sampler: GET /metrics: %s", err);
    }
    take_snapshot(r, body, len, ok);
    if (r->final_scrape) {
        r->final_scrape = false;
        void (*done)(scn_runner *) = r->final_done;
        r->final_done = NULL;
        if (done) done(r);
    }
}

static void scrape(scn_runner *r) {
    if (r->scrape) return; /* the previous one is still out: skip this second */
    r->scrape = scn_http_get(&r->loop, scn_srv_metrics(r->srv), "/metrics", SCRAPE_TIMEOUT_MS,
                             on_scrape, r);
    if (!r->scrape) {
        /* unusable address: sample the client side only */
        take_snapshot(r, "", 0, false);
    }
}

static void on_sample_timer(uv_timer_t *t) {
    scrape(t->data);
}

void scn_sampler_begin(scn_runner *r) {
    scn_sampler_init(&r->sm);
    r->last_t = -1;
    r->have_last = false;
    scrape(r);
    uv_timer_start(&r->sample_timer, on_sample_timer, 1000, 1000);
}

void scn_sampler_finish(scn_runner *r, void (*done)(scn_runner *r)) {
    uv_timer_stop(&r->sample_timer);
    double now = (double)scn_runner_elapsed(r) / 1000.0;
    if (r->scrape) {
        /* the one in flight becomes the last */
        r->final_scrape = true;
        r->final_done = done;
        return;
    }
    if (r->last_t >= 0 && now - r->last_t < 0.3) {
        done(r);
        return;
    }
    r->final_scrape = true;
    r->final_done = done;
    r->scrape = scn_http_get(&r->loop, scn_srv_metrics(r->srv), "/metrics", SCRAPE_TIMEOUT_MS,
                             on_scrape, r);
    if (!r->scrape) {
        r->final_scrape = false;
        r->final_done = NULL;
        take_snapshot(r, "", 0, false);
        done(r);
    }
}

void scn_sampler_cancel(scn_runner *r) {
    uv_timer_stop(&r->sample_timer);
    if (r->scrape) {
        scn_http_cancel(r->scrape);
        r->scrape = NULL;
    }
    r->final_scrape = false;
    r->final_done = NULL;
}
