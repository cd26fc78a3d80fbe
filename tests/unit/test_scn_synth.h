/* test_scn_synth.h — a synthetic measured result for the scenario tests: the relist-storm
 * compare (namespaced vs mismatch) with made-up but incident-shaped numbers (calm ~12
 * requests/s at ~8 ms; storm ~1,850 LISTs/s at ~420 ms), built through the same sample path the
 * runner uses (histograms observed, quantiles derived). Header-only, shared by two suites. */
#ifndef RELIST_TEST_SCN_SYNTH_H
#define RELIST_TEST_SCN_SYNTH_H

#include <math.h>
#include <string.h>

#include "scn.h"

static const char *synth_script =
    "scenario relist-storm \"synthetic incident\"\n"
    "seed pods namespaces=10 per-namespace=50 shared-names=0.8\n"
    "watchers count=1000 prefix=namespace on-miss=relist\n"
    "mode namespaced key-mode=namespaced\n"
    "mode mismatch key-mode=mismatch\n"
    "phase warmup 10s\n"
    "phase churn 30s update=10/s\n"
    "expect phase=churn list_rate.mean < 1 when key-mode=namespaced\n"
    "expect phase=churn list_rate.mean > 100 when key-mode=mismatch\n"
    "expect phase=churn list_rate.mean@mismatch > 50 * list_rate.mean@namespaced\n"
    "expect phase=churn list_latency_ms.p99 < 100\n"
    "expect divergent == 0\n"
    "expect phase=churn put_latency_ms.p50 > 0 when key-mode=uid\n"
    "report window=churn\n";

/* deterministic jitter in [-1, 1] */
static double synth_noise(unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return ((*seed >> 8) % 2001) / 1000.0 - 1.0;
}

static void synth_observe(scn_hist *h, double n, double center_s, unsigned *seed) {
    for (int i = 0; i < (int)n; i++)
        scn_hist_observe(h, center_s * (1 + 0.6 * synth_noise(seed)));
}

static void synth_fill(scn_result *r) {
    unsigned seed = 7;
    for (size_t m = 0; m < r->n_runs; m++) {
        scn_run *run = &r->runs[m];
        bool storm = !strcmp(run->mode, "mismatch");
        for (int t = 1; t <= 40; t++) {
            scn_sample s;
            memset(&s, 0, sizeof s);
            s.t = t;
            s.dt = 1;
            s.phase = t <= 10 ? 0 : 1;
            scn_hist_init_latency(&s.list_hist);
            scn_hist_init_latency(&s.put_hist);
            double lists, list_lat, put_lat;
            if (t <= 2) { /* the initial LISTs of every watcher */
                lists = 500;
                list_lat = 0.03;
                put_lat = 0.004;
            } else if (!storm || t <= 12) {
                lists = 0;
                list_lat = 0.008;
                put_lat = 0.003;
            } else {
                double ramp = t < 16 ? (t - 12) / 4.0 : 1;
                lists = 1850 * ramp * (1 + 0.1 * synth_noise(&seed));
                list_lat = 0.42 * ramp + 0.008;
                put_lat = 0.2 * ramp + 0.003;
            }
            double puts = 10 + synth_noise(&seed);
            synth_observe(&s.list_hist, lists, list_lat, &seed);
            synth_observe(&s.put_hist, puts, put_lat, &seed);
            s.v[SCN_F_LIST] = lists;
            s.v[SCN_F_PUT] = puts;
            s.v[SCN_F_WATCH] = t <= 2 ? 500 : storm && t > 12 ? lists : 0;
            s.v[SCN_F_REQUESTS] = lists + puts + s.v[SCN_F_WATCH] + 2;
            s.v[SCN_F_GET] = 2;
            s.v[SCN_F_BYTES] = lists * 50 * 1100;
            s.v[SCN_F_EVENTS] = 100;
            s.v[SCN_F_RELISTS_MISS] = storm && t > 12 ? lists : 0;
            s.v[SCN_F_RELISTS] = s.v[SCN_F_RELISTS_MISS];
            s.v[SCN_F_MISSES] = storm && t > 12 ? lists * 1.2 : 0;
            s.v[SCN_F_WRITES] = puts;
            s.v[SCN_F_CPU] = storm && t > 12 ? 1.8 : 0.1;
            s.v[SCN_F_SYNCED] = 1000;
            if (t == 25) s.v[SCN_F_CPU] = NAN; /* a gap in one series */
            scn_sample_quantiles(&s);
            scn_run_add_sample(run, &s);
        }
        run->end.verified = true;
        run->end.watchers_verified = 1000;
    }
}

#endif
