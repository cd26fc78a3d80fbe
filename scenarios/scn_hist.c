/* scn_hist.c — histograms, the server snapshot read from a scrape, and per-second samples from
 * two cumulative snapshots.
 *
 * Latency quantiles are estimated the way Prometheus' histogram_quantile does (linear within a
 * bucket), from bucket deltas between scrapes, so a sample's p99 describes that second only and
 * a window's p99 comes from the summed deltas, never from averaging per-second quantiles.
 * Counters that go down (a restarted server) count from zero, like Prometheus' rate(). */
#include "scn_internal.h"

#include <math.h>
#include <string.h>

const double scn_quantiles[SCN_Q_COUNT] = {0.5, 0.9, 0.99, 0.999};

int scn_hist_init(scn_hist *h, const double *bounds, size_t n) {
    memset(h, 0, sizeof *h);
    if (n > 0 && isinf(bounds[n - 1]) && bounds[n - 1] > 0) n--;
    if (n + 1 > SCN_HIST_MAX) return -1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
            memset(h, 0, sizeof *h);
            return -1;
        }
        h->le[i] = bounds[i];
    }
    h->le[n] = INFINITY;
    h->n = n + 1;
    return 0;
}

void scn_hist_init_latency(scn_hist *h) {
    /* 1, 1.5, 2.5, 4, 6 per decade: about 5 buckets a decade keeps interpolation error small */
    static const double steps[] = {1, 1.5, 2.5, 4, 6};
    double b[SCN_HIST_MAX];
    size_t n = 0;
    for (double dec = 1e-4; dec < 100; dec *= 10)
        for (size_t i = 0; i < 5; i++)
            b[n++] = dec * steps[i];
    b[n++] = 100;
    scn_hist_init(h, b, n);
}

void scn_hist_observe(scn_hist *h, double v) {
    if (!h->n || isnan(v)) return;
    for (size_t i = 0; i < h->n; i++)
        if (v <= h->le[i]) h->cum[i] += 1;
    h->sum += v;
}

double scn_hist_count(const scn_hist *h) {
    return h->n ? h->cum[h->n - 1] : 0;
}

static bool same_bounds(const scn_hist *a, const scn_hist *b) {
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->le[i] != b->le[i]) return false;
    return true;
}

int scn_hist_delta(const scn_hist *prev, const scn_hist *cur, scn_hist *out) {
    scn_hist d = *cur;
    if (!prev->n || !cur->n) {
        *out = d;
        return 0;
    }
    if (!same_bounds(prev, cur)) {
        *out = d;
        return -1;
    }
    bool reset = false;
    for (size_t i = 0; i < cur->n; i++)
        if (cur->cum[i] < prev->cum[i]) reset = true;
    if (!reset) {
        for (size_t i = 0; i < cur->n; i++)
            d.cum[i] = cur->cum[i] - prev->cum[i];
        d.sum = cur->sum - prev->sum;
    }
    *out = d;
    return 0;
}

int scn_hist_add(scn_hist *acc, const scn_hist *d) {
    if (!d->n) return 0;
    if (!acc->n) {
        *acc = *d;
        return 0;
    }
    if (!same_bounds(acc, d)) return -1;
    for (size_t i = 0; i < d->n; i++)
        acc->cum[i] += d->cum[i];
    acc->sum += d->sum;
    return 0;
}

double scn_hist_quantile(const scn_hist *h, double q) {
    if (!h->n || isnan(q)) return NAN;
    double count = h->cum[h->n - 1];
    if (!(count > 0)) return NAN;
    if (q < 0) q = 0;
    if (q > 1) q = 1;
    double rank = q * count;
    /* cumulative counts summed across series may dip; keep them monotonic */
    double prev = 0;
    for (size_t b = 0; b < h->n; b++) {
        double c = h->cum[b] > prev ? h->cum[b] : prev;
        if (c >= rank && c > 0) {
            if (b == h->n - 1) return h->n >= 2 ? h->le[h->n - 2] : NAN;
            double lo = b == 0 ? (h->le[0] > 0 ? 0 : h->le[0]) : h->le[b - 1];
            double hi = h->le[b];
            double in = c - prev;
            if (in <= 0) return hi;
            return lo + (hi - lo) * ((rank - prev) / in);
        }
        prev = c;
    }
    return h->n >= 2 ? h->le[h->n - 2] : NAN;
}

/* ---- the server's counters from a scrape ---- */

void scn_server_snap_from_prom(const scn_prom *p, scn_server_snap *out) {
    memset(out, 0, sizeof *out);
    out->ok = p->n > 0;
    static const char *const k_list[] = {"kind", "list", NULL};
    static const char *const k_get[] = {"kind", "get", NULL};
    static const char *const m_range[] = {"grpc_method", "Range", NULL};
    static const char *const m_put[] = {"grpc_method", "Put", NULL};
    static const char *const m_del[] = {"grpc_method", "DeleteRange", NULL};
    static const char *const m_txn[] = {"grpc_method", "Txn", NULL};
    static const char *const m_watch[] = {"grpc_method", "Watch", NULL};
    double list = scn_prom_sum(p, "relistlab_range_requests_total", k_list);
    double get = scn_prom_sum(p, "relistlab_range_requests_total", k_get);
    out->range_split = !isnan(list) || !isnan(get);
    if (out->range_split) {
        out->req[SCN_M_LIST] = isnan(list) ? 0 : list;
        out->req[SCN_M_GET] = isnan(get) ? 0 : get;
    } else {
        out->req[SCN_M_LIST] = scn_prom_sum(p, "grpc_server_handled_total", m_range);
        out->req[SCN_M_GET] = 0;
    }
    out->req[SCN_M_PUT] = scn_prom_sum(p, "grpc_server_handled_total", m_put);
    out->req[SCN_M_DELETE] = scn_prom_sum(p, "grpc_server_handled_total", m_del);
    out->req[SCN_M_TXN] = scn_prom_sum(p, "grpc_server_handled_total", m_txn);
    double w = scn_prom_sum(p, "grpc_server_msg_received_total", m_watch);
    if (isnan(w)) w = scn_prom_sum(p, "grpc_server_started_total", m_watch);
    out->req[SCN_M_WATCH] = w;
    for (int m = 0; m < SCN_M_COUNT; m++)
        if (isnan(out->req[m])) out->req[m] = 0; /* a method never called has no series */
    out->bytes_sent = scn_prom_sum(p, "relistlab_client_sent_bytes_total", NULL);
    if (out->range_split) {
        scn_prom_histogram(p, "relistlab_range_seconds", k_list, &out->list_hist);
        scn_prom_histogram(p, "relistlab_range_seconds", k_get, &out->get_hist);
    } else {
        scn_prom_histogram(p, "grpc_server_handling_seconds", m_range, &out->list_hist);
    }
    out->revision = scn_prom_sum(p, "etcd_debugging_mvcc_current_revision", NULL);
    out->compact_revision = scn_prom_sum(p, "etcd_debugging_mvcc_compact_revision", NULL);
}

void scn_snapshot_init(scn_snapshot *s) {
    memset(s, 0, sizeof *s);
    s->srv.bytes_sent = NAN;
    s->srv.revision = NAN;
    s->srv.compact_revision = NAN;
    s->cpu_seconds = NAN;
    scn_hist_init_latency(&s->put_hist);
}

/* ---- samples ---- */

static double delta(double prev, double cur) {
    if (isnan(prev) || isnan(cur)) return NAN;
    return cur >= prev ? cur - prev : cur; /* a reset counts from zero */
}

static void quantiles_ms(const scn_hist *h, double *out) {
    for (int q = 0; q < SCN_Q_COUNT; q++)
        out[q] = scn_hist_quantile(h, scn_quantiles[q]) * 1000;
}

void scn_sample_quantiles(scn_sample *s) {
    quantiles_ms(&s->list_hist, s->list_ms);
    quantiles_ms(&s->put_hist, s->put_ms);
}

void scn_sample_from(const scn_snapshot *prev, const scn_snapshot *cur, int phase,
                     scn_sample *out) {
    memset(out, 0, sizeof *out);
    out->t = cur->t;
    out->dt = cur->t - prev->t;
    out->phase = phase;
    double dt = out->dt > 0 ? out->dt : 1;
    if (cur->srv.ok && prev->srv.ok) {
        static const scn_field fields[SCN_M_COUNT] = {SCN_F_LIST,   SCN_F_GET, SCN_F_PUT,
                                                      SCN_F_DELETE, SCN_F_TXN, SCN_F_WATCH};
        double all = 0;
        for (int m = 0; m < SCN_M_COUNT; m++) {
            double d = delta(prev->srv.req[m], cur->srv.req[m]);
            out->v[fields[m]] = d / dt;
            if (!isnan(d)) all += d;
        }
        out->v[SCN_F_REQUESTS] = all / dt;
        out->v[SCN_F_BYTES] = delta(prev->srv.bytes_sent, cur->srv.bytes_sent) / dt;
        scn_hist_delta(&prev->srv.list_hist, &cur->srv.list_hist, &out->list_hist);
        scn_hist_delta(&prev->srv.get_hist, &cur->srv.get_hist, &out->get_hist);
    } else {
        for (int f = SCN_F_REQUESTS; f <= SCN_F_BYTES; f++)
            out->v[f] = NAN;
    }
    if (isnan(out->v[SCN_F_BYTES]))
        out->v[SCN_F_BYTES] = delta(prev->list_bytes, cur->list_bytes) / dt;
    out->v[SCN_F_EVENTS] = delta(prev->events, cur->events) / dt;
    out->v[SCN_F_RELISTS_MISS] = delta(prev->relists_miss, cur->relists_miss) / dt;
    out->v[SCN_F_RELISTS_COMPACTED] = delta(prev->relists_compacted, cur->relists_compacted) / dt;
    out->v[SCN_F_RELISTS_ERROR] = delta(prev->relists_error, cur->relists_error) / dt;
    out->v[SCN_F_RELISTS] =
        out->v[SCN_F_RELISTS_MISS] + out->v[SCN_F_RELISTS_COMPACTED] + out->v[SCN_F_RELISTS_ERROR];
    out->v[SCN_F_MISSES] = delta(prev->misses, cur->misses) / dt;
    out->v[SCN_F_WRITES] = delta(prev->writes, cur->writes) / dt;
    out->v[SCN_F_WRITE_ERRORS] = delta(prev->write_errors, cur->write_errors) / dt;
    out->v[SCN_F_CPU] = delta(prev->cpu_seconds, cur->cpu_seconds) / dt;
    out->v[SCN_F_SYNCED] = cur->synced;
    scn_hist_delta(&prev->put_hist, &cur->put_hist, &out->put_hist);
    scn_sample_quantiles(out);
}

void scn_sampler_init(scn_sampler *sm) {
    memset(sm, 0, sizeof *sm);
}

int scn_sampler_push(scn_sampler *sm, const scn_snapshot *cur, int phase, scn_sample *out) {
    if (!sm->have) {
        sm->last = *cur;
        sm->good = cur->srv;
        sm->good_t = cur->t;
        sm->have = true;
        return 0;
    }
    /* the server part is measured from the last good scrape: a failed scrape (server down)
     * gives NaN server rates for that second; the first good one after it covers the gap (a
     * restart's reset counts from zero, attributed to this second) */
    scn_snapshot prev = sm->last;
    bool gap = cur->srv.ok && sm->good.ok && !sm->last.srv.ok;
    prev.srv = sm->good;
    scn_sample_from(&prev, cur, phase, out);
    if (gap) {
        /* rates over the gap: the reset case already counted from zero over the last second;
         * without a reset spread the counts over the whole gap */
        bool reset = false;
        for (int m = 0; m < SCN_M_COUNT; m++)
            if (cur->srv.req[m] < sm->good.req[m]) reset = true;
        double span = cur->t - sm->good_t;
        if (!reset && span > out->dt && out->dt > 0) {
            double k = out->dt / span;
            for (int f = SCN_F_REQUESTS; f <= SCN_F_WATCH; f++)
                out->v[f] *= k;
            if (cur->srv.bytes_sent >= sm->good.bytes_sent) out->v[SCN_F_BYTES] *= k;
        }
    }
    sm->last = *cur;
    if (cur->srv.ok) {
        sm->good = cur->srv;
        sm->good_t = cur->t;
    }
    return 1;
}
