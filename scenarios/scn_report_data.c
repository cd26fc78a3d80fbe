/* scn_report_data.c — the machine-readable outputs: timeline.csv (one row per mode per
 * sample) and summary.json ({"modes": {"<mode>": {...}}, "expectations": [...]}). NaN is an
 * empty CSV field and a JSON null, never a made-up zero. */
#include "scn_internal.h"

#include <math.h>
#include <string.h>

static void csv_num(scn_buf *b, double v) {
    if (isfinite(v)) scn_buf_printf(b, "%.6g", v);
}

static void csv_str(scn_buf *b, const char *s) {
    bool quote = strpbrk(s, ",\"\n") != NULL;
    if (!quote) {
        scn_buf_puts(b, s);
        return;
    }
    scn_buf_puts(b, "\"");
    for (; *s; s++) {
        if (*s == '"') scn_buf_puts(b, "\"");
        scn_buf_put(b, s, 1);
    }
    scn_buf_puts(b, "\"");
}

char *scn_report_csv(const scn_result *r) {
    scn_buf b = {0};
    static const char *const q[] = {"p50", "p90", "p99", "p999"};
    scn_buf_puts(&b, "mode,t,dt,phase");
    for (int f = 0; f < SCN_F_COUNT; f++)
        scn_buf_printf(&b, ",%s", scn_field_name((scn_field)f));
    for (int i = 0; i < SCN_Q_COUNT; i++)
        scn_buf_printf(&b, ",list_%s_ms", q[i]);
    for (int i = 0; i < SCN_Q_COUNT; i++)
        scn_buf_printf(&b, ",put_%s_ms", q[i]);
    scn_buf_puts(&b, "\n");
    for (size_t i = 0; i < r->n_runs; i++) {
        const scn_run *run = &r->runs[i];
        for (size_t k = 0; k < run->n; k++) {
            const scn_sample *s = &run->samples[k];
            csv_str(&b, run->mode);
            scn_buf_printf(&b, ",%.3f,%.3f,", s->t, s->dt);
            csv_str(&b, s->phase >= 0 && (size_t)s->phase < r->n_phases ? r->phases[s->phase] : "");
            for (int f = 0; f < SCN_F_COUNT; f++) {
                scn_buf_puts(&b, ",");
                csv_num(&b, s->v[f]);
            }
            for (int j = 0; j < SCN_Q_COUNT; j++) {
                scn_buf_puts(&b, ",");
                csv_num(&b, s->list_ms[j]);
            }
            for (int j = 0; j < SCN_Q_COUNT; j++) {
                scn_buf_puts(&b, ",");
                csv_num(&b, s->put_ms[j]);
            }
            scn_buf_puts(&b, "\n");
        }
    }
    return scn_buf_take(&b);
}

static void kv_num(scn_buf *b, const char *k, double v, bool comma) {
    scn_buf_json_str(b, k);
    scn_buf_puts(b, ": ");
    scn_buf_json_num(b, v);
    if (comma) scn_buf_puts(b, ", ");
}

/* {"mean": .., "p50": .., ...} of a metric family. */
static void group(scn_buf *b, const scn_run *run, int phase, const char *family,
                  const char *const *aggs) {
    scn_buf_json_str(b, family);
    scn_buf_puts(b, ": {");
    for (size_t i = 0; aggs[i]; i++) {
        char path[96];
        scn_fmt(path, sizeof path, "%s.%s", family, aggs[i]);
        kv_num(b, aggs[i], scn_run_metric(run, phase, path), aggs[i + 1] != NULL);
    }
    scn_buf_puts(b, "}, ");
}

static void stats(scn_buf *b, const scn_result *r, const scn_run *run, int phase) {
    static const char *const rate[] = {"mean", "p50", "p90", "max", NULL};
    static const char *const lat[] = {"p50", "p90", "p99", "p999", NULL};
    static const char *const mean[] = {"mean", "max", NULL};
    static const char *const rate_families[] = {"request_rate", "list_rate",  "get_rate",
                                                "put_rate",     "watch_rate", NULL};
    static const char *const mean_families[] = {
        "bytes_rate", "event_rate", "write_rate", "relist_rate", "cpu", "synced", NULL};
    scn_buf_puts(b, "{");
    for (size_t i = 0; rate_families[i]; i++)
        group(b, run, phase, rate_families[i], rate);
    for (size_t i = 0; mean_families[i]; i++)
        group(b, run, phase, mean_families[i], mean);
    group(b, run, phase, "list_latency_ms", lat);
    group(b, run, phase, "get_latency_ms", lat);
    group(b, run, phase, "put_latency_ms", lat);
    kv_num(b, "relists", scn_run_metric(run, phase, "relists"), true);
    scn_buf_puts(b, "\"relists_by_cause\": {");
    kv_num(b, "miss", scn_run_metric(run, phase, "relists.miss"), true);
    kv_num(b, "compacted", scn_run_metric(run, phase, "relists.compacted"), true);
    kv_num(b, "error", scn_run_metric(run, phase, "relists.error"), false);
    scn_buf_puts(b, "}, ");
    static const char *const counts[] = {"misses",
                                         "events",
                                         "lists",
                                         "writes",
                                         "write_errors",
                                         "divergent",
                                         "divergent_watchers",
                                         "missing",
                                         "extra",
                                         "stale",
                                         "collided",
                                         NULL};
    for (size_t i = 0; counts[i]; i++)
        kv_num(b, counts[i], scn_run_metric(run, phase, counts[i]), true);
    char msg[256];
    bool ok = scn_slo_verdict(r, run, phase, msg, sizeof msg);
    scn_buf_printf(b, "\"slo\": {\"ok\": %s, \"detail\": ", ok ? "true" : "false");
    scn_buf_json_str(b, msg);
    scn_buf_puts(b, "}");
}

char *scn_report_json(const scn_result *r, const scn_verdict *v, size_t nv) {
    scn_buf b = {0};
    int window = r->report.window[0] ? scn_result_phase(r, r->report.window) : -1;
    scn_buf_puts(&b, "{\"scenario\": ");
    scn_buf_json_str(&b, r->scenario);
    scn_buf_puts(&b, ", \"title\": ");
    scn_buf_json_str(&b, r->title);
    scn_buf_puts(&b, ", \"window\": ");
    scn_buf_json_str(&b, scn_window_name(r, window));
    scn_buf_printf(&b, ", \"slo_ms\": {\"list\": %lld, \"get\": %lld, \"put\": %lld}",
                   (long long)r->slo.list_ms, (long long)r->slo.get_ms, (long long)r->slo.put_ms);
    scn_buf_puts(&b, ", \"phases\": [");
    for (size_t p = 0; p < r->n_phases; p++) {
        if (p) scn_buf_puts(&b, ", ");
        scn_buf_json_str(&b, r->phases[p]);
    }
    scn_buf_puts(&b, "],\n \"modes\": {");
    for (size_t i = 0; i < r->n_runs; i++) {
        const scn_run *run = &r->runs[i];
        scn_buf_puts(&b, i ? ",\n  " : "\n  ");
        scn_buf_json_str(&b, run->mode);
        scn_buf_puts(&b, ": ");
        stats(&b, r, run, window);
        scn_buf_puts(&b, ", \"config\": {\"watchers\": ");
        scn_buf_json_num(&b, (double)run->cfg.count);
        scn_buf_puts(&b, ", \"prefix\": ");
        scn_buf_json_str(&b, run->cfg.prefix);
        scn_buf_puts(&b, ", \"key_mode\": ");
        scn_buf_json_str(&b, run->cfg.key_mode);
        scn_buf_puts(&b, ", \"on_miss\": ");
        scn_buf_json_str(&b, run->cfg.on_miss);
        scn_buf_puts(&b, ", \"backoff\": ");
        scn_buf_json_str(&b, run->cfg.backoff);
        scn_buf_puts(&b, ", \"qps\": ");
        scn_buf_json_num(&b, run->cfg.qps);
        scn_buf_printf(&b, "}, \"samples\": %zu, \"verified\": %s, \"note\": ", run->n,
                       run->end.verified ? "true" : "false");
        scn_buf_json_str(&b, run->note);
        scn_buf_puts(&b, ", \"phases\": {");
        for (size_t p = 0; p < r->n_phases; p++) {
            scn_buf_puts(&b, p ? ",\n    " : "\n    ");
            scn_buf_json_str(&b, r->phases[p]);
            scn_buf_puts(&b, ": ");
            stats(&b, r, run, (int)p);
            scn_buf_puts(&b, "}");
        }
        scn_buf_puts(&b, "}}");
    }
    scn_buf_puts(&b, "},\n \"expectations\": [");
    size_t pass = 0, fail = 0, skip = 0;
    for (size_t i = 0; i < nv; i++) {
        const scn_verdict *x = &v[i];
        scn_buf_puts(&b, i ? ",\n  " : "\n  ");
        scn_buf_printf(&b, "{\"index\": %zu, \"mode\": ", x->expect);
        scn_buf_json_str(&b, x->mode);
        scn_buf_printf(&b, ", \"pass\": %s, \"skipped\": %s, ", x->pass ? "true" : "false",
                       x->skipped ? "true" : "false");
        kv_num(&b, "actual", x->actual, true);
        kv_num(&b, "bound", x->bound, true);
        scn_buf_puts(&b, "\"message\": ");
        scn_buf_json_str(&b, x->msg);
        scn_buf_puts(&b, "}");
        if (x->skipped)
            skip++;
        else if (x->pass)
            pass++;
        else
            fail++;
    }
    scn_buf_printf(&b, "],\n \"passed\": %zu, \"failed\": %zu, \"skipped\": %zu}\n", pass, fail,
                   skip);
    return scn_buf_take(&b);
}
