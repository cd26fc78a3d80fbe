/* scn_result.c — measured runs and the metric paths expectations and reports read.
 *
 * A metric is computed over a window (one phase's samples, or all): rates aggregate the
 * per-second values (mean is time-weighted: the window's total over its duration), latencies
 * come from the window's summed histogram deltas, counts are totals, and end-of-run metrics
 * ignore the window. Missing data is NaN, never 0, so "no LIST observed" cannot pass as "fast". */
#include "scn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const field_names[SCN_F_COUNT] = {
    "request_rate",
    "list_rate",
    "get_rate",
    "put_rate",
    "delete_rate",
    "txn_rate",
    "watch_rate",
    "bytes_rate",
    "event_rate",
    "relist_rate",
    "relist_miss_rate",
    "relist_compacted_rate",
    "relist_error_rate",
    "miss_rate",
    "write_rate",
    "write_error_rate",
    "cpu",
    "synced",
};

const char *scn_field_name(scn_field f) {
    return f >= 0 && f < SCN_F_COUNT ? field_names[f] : "?";
}

scn_result *scn_result_new(const scn_script *s) {
    scn_result *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    scn_fmt(r->scenario, sizeof r->scenario, "%s", s->name);
    scn_fmt(r->title, sizeof r->title, "%s", s->title);
    r->slo = scn_script_slo(s);
    r->report = s->report;
    r->n_phases = s->n_phases;
    r->n_runs = scn_script_run_count(s);
    r->phases = calloc(s->n_phases ? s->n_phases : 1, sizeof *r->phases);
    r->runs = calloc(r->n_runs ? r->n_runs : 1, sizeof *r->runs);
    if (!r->phases || !r->runs) {
        scn_result_free(r);
        return NULL;
    }
    for (size_t i = 0; i < s->n_phases; i++)
        scn_fmt(r->phases[i], SCN_NAME_MAX, "%s", s->phases[i].name);
    for (size_t i = 0; i < r->n_runs; i++) {
        const char *name = "run";
        scn_script_run(s, i, &name, &r->runs[i].cfg);
        scn_fmt(r->runs[i].mode, sizeof r->runs[i].mode, "%s", name);
    }
    return r;
}

void scn_result_free(scn_result *r) {
    if (!r) return;
    for (size_t i = 0; r->runs && i < r->n_runs; i++)
        free(r->runs[i].samples);
    free(r->runs);
    free(r->phases);
    free(r);
}

int scn_run_add_sample(scn_run *run, const scn_sample *s) {
    if (run->n == run->cap) {
        size_t nc = run->cap ? run->cap * 2 : 64;
        scn_sample *p = realloc(run->samples, nc * sizeof *p);
        if (!p) return -1;
        run->samples = p;
        run->cap = nc;
    }
    run->samples[run->n++] = *s;
    return 0;
}

int scn_result_phase(const scn_result *r, const char *name) {
    for (size_t i = 0; i < r->n_phases; i++)
        if (!strcmp(r->phases[i], name)) return (int)i;
    return -1;
}

const scn_run *scn_result_find(const scn_result *r, const char *mode) {
    for (size_t i = 0; i < r->n_runs; i++)
        if (!strcmp(r->runs[i].mode, mode)) return &r->runs[i];
    return NULL;
}

int scn_run_phase_span(const scn_run *run, int phase, double *start, double *end) {
    bool any = false;
    for (size_t i = 0; i < run->n; i++) {
        const scn_sample *s = &run->samples[i];
        if (s->phase != phase) continue;
        if (!any) *start = s->t - (s->dt > 0 ? s->dt : 0);
        *end = s->t;
        any = true;
    }
    return any ? 0 : -1;
}

/* ---- metric paths ---- */

typedef enum mkind { MK_RATE, MK_LAT, MK_COUNT, MK_END } mkind;

typedef struct mpath {
    mkind kind;
    int field; /* MK_RATE / MK_COUNT: scn_field; MK_LAT: 0 list, 1 get, 2 put; MK_END: index */
    int agg;   /* MK_RATE: aggregation; MK_LAT: quantile index or -1 for the mean */
} mpath;

enum { AGG_MEAN, AGG_P50, AGG_P90, AGG_P99, AGG_MAX, AGG_MIN, AGG_LAST };
static const struct {
    const char *name;
    int agg;
} aggs[] = {{"mean", AGG_MEAN}, {"p50", AGG_P50},  {"p90", AGG_P90}, {"p99", AGG_P99},
            {"max", AGG_MAX},   {"peak", AGG_MAX}, {"min", AGG_MIN}, {"last", AGG_LAST}};

static const struct {
    const char *name;
    scn_field f;
} counts[] = {
    {"requests", SCN_F_REQUESTS},
    {"lists", SCN_F_LIST},
    {"gets", SCN_F_GET},
    {"puts", SCN_F_PUT},
    {"relists", SCN_F_RELISTS},
    {"relists.miss", SCN_F_RELISTS_MISS},
    {"relists.compacted", SCN_F_RELISTS_COMPACTED},
    {"relists.error", SCN_F_RELISTS_ERROR},
    {"misses", SCN_F_MISSES},
    {"events", SCN_F_EVENTS},
    {"writes", SCN_F_WRITES},
    {"write_errors", SCN_F_WRITE_ERRORS},
};

static const char *const end_names[] = {"divergent", "divergent_watchers", "missing",   "extra",
                                        "stale",     "collided",           "unverified"};

static const char *const lat_names[] = {"list_latency_ms", "get_latency_ms", "put_latency_ms"};

static int parse_path(const char *path, mpath *out) {
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (!strcmp(path, counts[i].name)) {
            *out = (mpath){MK_COUNT, counts[i].f, 0};
            return 0;
        }
    for (size_t i = 0; i < sizeof end_names / sizeof end_names[0]; i++)
        if (!strcmp(path, end_names[i])) {
            *out = (mpath){MK_END, (int)i, 0};
            return 0;
        }
    const char *dot = strrchr(path, '.');
    if (!dot) return -1;
    size_t n = (size_t)(dot - path);
    const char *suffix = dot + 1;
    for (int i = 0; i < 3; i++)
        if (strlen(lat_names[i]) == n && !strncmp(path, lat_names[i], n)) {
            static const char *const q[] = {"p50", "p90", "p99", "p999"};
            for (int k = 0; k < 4; k++)
                if (!strcmp(suffix, q[k])) {
                    *out = (mpath){MK_LAT, i, k};
                    return 0;
                }
            if (!strcmp(suffix, "mean")) {
                *out = (mpath){MK_LAT, i, -1};
                return 0;
            }
            return -2;
        }
    for (int f = 0; f < SCN_F_COUNT; f++)
        if (strlen(field_names[f]) == n && !strncmp(path, field_names[f], n)) {
            for (size_t k = 0; k < sizeof aggs / sizeof aggs[0]; k++)
                if (!strcmp(suffix, aggs[k].name)) {
                    *out = (mpath){MK_RATE, f, aggs[k].agg};
                    return 0;
                }
            return -3;
        }
    return -1;
}

int scn_metric_check(const char *path, char *err, size_t cap) {
    mpath m;
    int rc = parse_path(path, &m);
    if (rc == 0) return 0;
    if (rc == -2)
        scn_fmt(err, cap,
                "unknown latency statistic in '%s' (expected p50, p90, p99, p999 or mean)", path);
    else if (rc == -3)
        scn_fmt(
            err, cap,
            "unknown aggregation in '%s' (expected mean, p50, p90, p99, max, peak, min or last)",
            path);
    else
        scn_fmt(err, cap,
                "unknown metric '%s' (expected e.g. list_rate.mean, request_rate.peak, "
                "list_latency_ms.p99, put_latency_ms.p50, relists, relists.miss, misses, "
                "divergent; see scenarios/README.md)",
                path);
    return -1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Linear interpolation between order statistics. */
static double percentile(double *v, size_t n, double q) {
    if (!n) return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo + 1 >= n) return v[n - 1];
    return v[lo] + (v[lo + 1] - v[lo]) * (pos - (double)lo);
}

static bool in_window(const scn_sample *s, int phase) {
    return phase < 0 || s->phase == phase;
}

static double rate_metric(const scn_run *run, int phase, int field, int agg) {
    double *vals = malloc((run->n ? run->n : 1) * sizeof *vals);
    if (!vals) return NAN;
    size_t n = 0;
    double total = 0, span = 0, last = NAN, mx = -INFINITY, mn = INFINITY;
    for (size_t i = 0; i < run->n; i++) {
        const scn_sample *s = &run->samples[i];
        if (!in_window(s, phase)) continue;
        double v = s->v[field];
        if (isnan(v)) continue;
        double dt = s->dt > 0 ? s->dt : 1;
        vals[n++] = v;
        total += v * dt;
        span += dt;
        last = v;
        if (v > mx) mx = v;
        if (v < mn) mn = v;
    }
    double out = NAN;
    if (n) switch (agg) {
        case AGG_MEAN:
            out = total / span;
            break;
        case AGG_P50:
            out = percentile(vals, n, 0.5);
            break;
        case AGG_P90:
            out = percentile(vals, n, 0.9);
            break;
        case AGG_P99:
            out = percentile(vals, n, 0.99);
            break;
        case AGG_MAX:
            out = mx;
            break;
        case AGG_MIN:
            out = mn;
            break;
        case AGG_LAST:
            out = last;
            break;
        }
    free(vals);
    return out;
}

static double count_metric(const scn_run *run, int phase, int field) {
    double total = 0;
    bool any = false;
    for (size_t i = 0; i < run->n; i++) {
        const scn_sample *s = &run->samples[i];
        if (!in_window(s, phase) || isnan(s->v[field])) continue;
        total += s->v[field] * (s->dt > 0 ? s->dt : 1);
        any = true;
    }
    return any ? total : NAN;
}

static double lat_metric(const scn_run *run, int phase, int which, int q) {
    scn_hist acc = {0};
    for (size_t i = 0; i < run->n; i++) {
        const scn_sample *s = &run->samples[i];
        if (!in_window(s, phase)) continue;
        const scn_hist *h = which == 0 ? &s->list_hist : which == 1 ? &s->get_hist : &s->put_hist;
        scn_hist_add(&acc, h);
    }
    if (!(scn_hist_count(&acc) > 0)) return NAN;
    if (q < 0) return acc.sum / scn_hist_count(&acc) * 1000;
    static const double qs[] = {0.5, 0.9, 0.99, 0.999};
    return scn_hist_quantile(&acc, qs[q]) * 1000;
}

static double end_metric(const scn_run *run, int idx) {
    const scn_end *e = &run->end;
    if (!e->verified) return NAN;
    switch (idx) {
    case 0:
        return e->divergent;
    case 1:
        return e->divergent_watchers;
    case 2:
        return e->missing;
    case 3:
        return e->extra;
    case 4:
        return e->stale;
    case 5:
        return e->collided;
    default:
        return e->unverified;
    }
}

double scn_run_metric(const scn_run *run, int phase, const char *path) {
    mpath m;
    if (parse_path(path, &m) != 0) return NAN;
    switch (m.kind) {
    case MK_RATE:
        return rate_metric(run, phase, m.field, m.agg);
    case MK_COUNT:
        return count_metric(run, phase, m.field);
    case MK_LAT:
        return lat_metric(run, phase, m.field, m.agg);
    case MK_END:
        return end_metric(run, m.field);
    }
    return NAN;
}
