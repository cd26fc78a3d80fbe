/* scn_report_html.c — report.html: one self-contained page (inline CSS, inline SVG drawn here;
 * no script, no external resource) with the summary table, the expectations and charts over
 * time: one line per mode, phase boundaries marked, a legend, ticked axes, and a log scale
 * when a series spans more than two decades (a storm is 100x its calm, a linear axis would
 * flatten the calm to zero). */
#include "scn_internal.h"

#include <math.h>
#include <string.h>

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                      "#9467bd", "#8c564b", "#e377c2", "#17becf"};
#define N_COLORS (sizeof palette / sizeof palette[0])

/* Chart geometry (SVG user units). */
#define CW  1160.0
#define CH  300.0
#define PX0 78.0
#define PX1 (CW - 190.0)
#define PY0 40.0
#define PY1 (CH - 42.0)

typedef struct chart {
    const char *title;
    const char *unit;
    int field;   /* scn_field, or -1 for a latency chart */
    int lat;     /* 1 LIST, 2 put */
    bool dashed; /* latency charts: p50 dashed under the p99 line */
} chart;

static const chart charts[] = {
    {"Request rate (all methods)", "requests/s", SCN_F_REQUESTS, 0, false},
    {"LIST rate", "LISTs/s", SCN_F_LIST, 0, false},
    {"LIST latency: p99 (solid), p50 (dashed)", "ms", -1, 1, true},
    {"Put latency: p99 (solid), p50 (dashed)", "ms", -1, 2, true},
    {"Relists (all causes)", "relists/s", SCN_F_RELISTS, 0, false},
    {"Watch events received", "events/s", SCN_F_EVENTS, 0, false},
};

static double sample_y(const chart *c, const scn_sample *s, bool p50) {
    if (c->field >= 0) return s->v[c->field];
    const double *q = c->lat == 1 ? s->list_ms : s->put_ms;
    return q[p50 ? SCN_Q50 : SCN_Q99];
}

typedef struct axis {
    double lo, hi;
    bool log;
} axis;

static double nice_step(double range, int target) {
    if (!(range > 0)) return 1;
    double raw = range / target;
    double mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
}

static double ymap(const axis *a, double v) {
    double f;
    if (a->log) {
        if (!(v > a->lo)) v = a->lo;
        f = (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
    } else {
        f = (v - a->lo) / (a->hi - a->lo);
    }
    if (f < 0) f = 0;
    if (f > 1) f = 1;
    return PY1 - f * (PY1 - PY0);
}

static double xmap(double t, double tmax) {
    return PX0 + (tmax > 0 ? t / tmax : 0) * (PX1 - PX0);
}

static void compact(double v, char *buf, size_t cap) {
    double a = fabs(v);
    if (a >= 1e6)
        scn_fmt(buf, cap, "%gM", v / 1e6);
    else if (a >= 1e3)
        scn_fmt(buf, cap, "%gk", v / 1e3);
    else
        scn_fmt(buf, cap, "%g", v);
}

static void svg_text(scn_buf *b, double x, double y, const char *anchor, const char *cls,
                     const char *text) {
    scn_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" class=\"%s\">", x, y, anchor,
                   cls);
    scn_buf_html(b, text);
    scn_buf_puts(b, "</text>\n");
}

static void draw_chart(scn_buf *b, const scn_result *r, const chart *c) {
    double tmax = 0, ymax = -INFINITY, ypos = INFINITY;
    size_t points = 0;
    for (size_t i = 0; i < r->n_runs; i++)
        for (size_t k = 0; k < r->runs[i].n; k++) {
            const scn_sample *s = &r->runs[i].samples[k];
            if (s->t > tmax) tmax = s->t;
            for (int d = 0; d < (c->dashed ? 2 : 1); d++) {
                double y = sample_y(c, s, d == 1);
                if (!isfinite(y)) continue;
                points++;
                if (y > ymax) ymax = y;
                if (y > 0 && y < ypos) ypos = y;
            }
        }
    axis ax = {0, 1, false};
    if (points && ymax > 0) {
        bool wide = isfinite(ypos) && ymax / ypos > 100;
        ax.log = r->report.log_scale == 1   ? isfinite(ypos)
                 : r->report.log_scale == 0 ? false
                                            : wide;
        if (ax.log) {
            ax.lo = pow(10, floor(log10(ypos)));
            ax.hi = pow(10, ceil(log10(ymax)));
            if (ax.hi <= ax.lo) ax.hi = ax.lo * 10;
        } else {
            double step = nice_step(ymax, 5);
            ax.hi = ceil(ymax / step) * step;
        }
    }
    scn_buf_printf(b,
                   "<figure class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" "
                   "viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"",
                   CW, CH);
    scn_buf_html(b, c->title);
    scn_buf_puts(b, "\">\n");
    char title[160];
    scn_fmt(title, sizeof title, "%s%s", c->title, ax.log ? "  (log scale)" : "");
    svg_text(b, PX0, 22, "start", "ct", title);
    /* phase bands and boundaries, from the first run that has samples */
    const scn_run *ref = NULL;
    for (size_t i = 0; i < r->n_runs && !ref; i++)
        if (r->runs[i].n) ref = &r->runs[i];
    for (size_t p = 0; ref && p < r->n_phases; p++) {
        double s0, s1;
        if (scn_run_phase_span(ref, (int)p, &s0, &s1)) continue;
        double x0 = xmap(s0, tmax), x1 = xmap(s1, tmax);
        if (p % 2 == 1)
            scn_buf_printf(b,
                           "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                           "class=\"band\"/>\n",
                           x0, PY0, x1 - x0, PY1 - PY0);
        if (p > 0)
            scn_buf_printf(b,
                           "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                           "class=\"phase\"/>\n",
                           x0, PY0 - 4, x0, PY1);
        svg_text(b, x0 + 4, PY0 + 12, "start", "pl", r->phases[p]);
    }
    /* y grid and ticks */
    char lbl[32];
    if (ax.log) {
        for (double v = ax.lo; v <= ax.hi * 1.0001; v *= 10) {
            double y = ymap(&ax, v);
            scn_buf_printf(
                b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>\n", PX0,
                y, PX1, y);
            compact(v, lbl, sizeof lbl);
            svg_text(b, PX0 - 6, y + 4, "end", "tk", lbl);
        }
    } else {
        double step = nice_step(ax.hi - ax.lo, 5);
        for (double v = ax.lo; v <= ax.hi + step * 1e-6; v += step) {
            double y = ymap(&ax, v);
            scn_buf_printf(
                b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>\n", PX0,
                y, PX1, y);
            compact(fabs(v) < step * 1e-9 ? 0 : v, lbl, sizeof lbl);
            svg_text(b, PX0 - 6, y + 4, "end", "tk", lbl);
        }
    }
    /* x ticks */
    double xs = nice_step(tmax > 0 ? tmax : 1, 10);
    if (xs < 1) xs = 1;
    for (double t = 0; t <= tmax + 1e-9; t += xs) {
        double x = xmap(t, tmax);
        scn_buf_printf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n",
                       x, PY1, x, PY1 + 5);
        if (fmod(t, 60) == 0 && t >= 120)
            scn_fmt(lbl, sizeof lbl, "%gm", t / 60);
        else
            scn_fmt(lbl, sizeof lbl, "%gs", t);
        svg_text(b, x, PY1 + 18, "middle", "tk", lbl);
    }
    scn_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n",
                   PX0, PY1, PX1, PY1);
    scn_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n",
                   PX0, PY0, PX0, PY1);
    svg_text(b, (PX0 + PX1) / 2, CH - 6, "middle", "al", "time since start");
    scn_buf_printf(b,
                   "<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" class=\"al\" "
                   "transform=\"rotate(-90 16 %.1f)\">",
                   (PY0 + PY1) / 2, (PY0 + PY1) / 2);
    scn_buf_html(b, c->unit);
    scn_buf_puts(b, "</text>\n");
    if (!points) svg_text(b, (PX0 + PX1) / 2, (PY0 + PY1) / 2, "middle", "nd", "no data");
    /* the series: a polyline per unbroken stretch (NaN breaks it) */
    for (size_t i = 0; i < r->n_runs; i++) {
        const scn_run *run = &r->runs[i];
        const char *color = palette[i % N_COLORS];
        for (int d = c->dashed ? 1 : 0; d >= 0; d--) {
            bool open = false;
            for (size_t k = 0; k <= run->n; k++) {
                double y = k < run->n ? sample_y(c, &run->samples[k], d == 1) : NAN;
                if (!isfinite(y)) {
                    if (open) scn_buf_puts(b, "\"/>\n");
                    open = false;
                    continue;
                }
                if (!open) {
                    scn_buf_printf(b,
                                   "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s "
                                   "points=\"",
                                   color, d ? "1.3" : "2",
                                   d ? " stroke-dasharray=\"5 4\" opacity=\"0.8\"" : "");
                    open = true;
                }
                scn_buf_printf(b, "%.1f,%.1f ", xmap(run->samples[k].t, tmax), ymap(&ax, y));
            }
        }
    }
    /* legend */
    double ly = PY0 + 6;
    for (size_t i = 0; i < r->n_runs; i++, ly += 20) {
        scn_buf_printf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                       "stroke-width=\"3\"/>\n",
                       PX1 + 16, ly, PX1 + 40, ly, palette[i % N_COLORS]);
        svg_text(b, PX1 + 46, ly + 4, "start", "lg", r->runs[i].mode);
    }
    if (c->dashed) {
        scn_buf_printf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"key\"/>\n"
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"key\" "
                       "stroke-dasharray=\"5 4\"/>\n",
                       PX1 + 16, ly + 6, PX1 + 40, ly + 6, PX1 + 16, ly + 26, PX1 + 40, ly + 26);
        svg_text(b, PX1 + 46, ly + 10, "start", "lg", "p99");
        svg_text(b, PX1 + 46, ly + 30, "start", "lg", "p50");
    }
    scn_buf_puts(b, "</svg></figure>\n");
}

static const char *css =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;"
    "max-width:1200px;color:#222;padding:0 12px}\n"
    "h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.15em;margin-top:28px;"
    "border-bottom:1px solid #ddd;padding-bottom:4px}\n"
    ".sub{color:#555;margin-top:0}\n"
    "table.summary{border-collapse:collapse;font-size:14px}\n"
    "table.summary th,table.summary td{border:1px solid #ccc;padding:4px 10px}\n"
    "table.summary th{background:#f3f3f3}table.summary td.n{text-align:right;"
    "font-variant-numeric:tabular-nums}\n"
    "td.bad{background:#fde2e2;color:#a40000}td.good{background:#e6f4e6;color:#205020}\n"
    "ul.v{list-style:none;padding-left:0;font-family:ui-monospace,monospace;font-size:13px}\n"
    "ul.v li{padding:3px 8px;margin:2px 0;border-left:4px solid #aaa}\n"
    "li.pass{border-color:#2ca02c!important;background:#f0f8f0}li.fail{border-color:#d62728!"
    "important;background:#fdf0f0}li.skip{color:#777}\n"
    "figure.chart{margin:10px 0 18px 0}figure.chart svg{width:100%;height:auto;"
    "background:#fff;border:1px solid #e5e5e5}\n"
    "svg .ct{font-size:15px;font-weight:600;fill:#222}svg .tk{font-size:11px;fill:#555}\n"
    "svg .al{font-size:12px;fill:#444}svg .lg{font-size:13px;fill:#222}\n"
    "svg .pl{font-size:11px;fill:#666;font-style:italic}svg .nd{font-size:14px;fill:#999}\n"
    "svg .grid{stroke:#eee;stroke-width:1}svg .axis{stroke:#666;stroke-width:1}\n"
    "svg .phase{stroke:#888;stroke-width:1;stroke-dasharray:4 3}svg .band{fill:#f6f6f6}\n"
    "svg .key{stroke:#444;stroke-width:2}\n"
    ".cfg{font-size:13px;color:#444}.foot{color:#888;font-size:12px;margin-top:30px}\n";

char *scn_report_html(const scn_result *r, const scn_verdict *v, size_t nv) {
    scn_buf b = {0};
    scn_buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                     "<title>relistlab scenario ");
    scn_buf_html(&b, r->scenario);
    scn_buf_printf(&b, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", css);
    scn_buf_html(&b, r->scenario);
    scn_buf_puts(&b, "</h1>\n");
    if (r->title[0]) {
        scn_buf_puts(&b, "<p class=\"sub\">");
        scn_buf_html(&b, r->title);
        scn_buf_puts(&b, "</p>\n");
    }
    scn_buf_puts(&b, "<ul class=\"cfg\">\n");
    for (size_t i = 0; i < r->n_runs; i++) {
        const scn_run *run = &r->runs[i];
        char line[512];
        scn_fmt(line, sizeof line,
                "%s: %lld watchers, prefix=%s key-mode=%s on-miss=%s backoff=%s qps=%g%s%s",
                run->mode, (long long)run->cfg.count, run->cfg.prefix, run->cfg.key_mode,
                run->cfg.on_miss, run->cfg.backoff, run->cfg.qps, run->note[0] ? " — " : "",
                run->note);
        scn_buf_printf(&b, "<li><span style=\"color:%s\">&#9632;</span> ", palette[i % N_COLORS]);
        scn_buf_html(&b, line);
        scn_buf_puts(&b, "</li>\n");
    }
    scn_buf_puts(&b, "</ul>\n");

    /* summary table */
    scn_col cols[SCN_COLS_MAX];
    size_t nc = scn_report_columns(r, cols, SCN_COLS_MAX);
    int window = nc ? cols[0].phase : -1;
    bool same = true;
    for (size_t i = 1; i < nc; i++)
        same = same && cols[i].phase == window;
    scn_buf_puts(&b, "<h2>Summary");
    if (same) {
        scn_buf_puts(&b, " (");
        scn_buf_html(&b, scn_window_name(r, window));
        scn_buf_puts(&b, ")");
    }
    scn_buf_puts(&b, "</h2>\n<table class=\"summary\">\n<tr><th></th>");
    for (size_t c = 0; c < nc; c++) {
        scn_buf_puts(&b, "<th>");
        scn_buf_html(&b, cols[c].label);
        scn_buf_puts(&b, "</th>");
    }
    scn_buf_puts(&b, "</tr>\n");
    for (size_t i = 0; i < scn_report_n_rows; i++) {
        scn_buf_puts(&b, "<tr><th>");
        scn_buf_html(&b, scn_report_rows[i].label);
        scn_buf_puts(&b, "</th>");
        for (size_t c = 0; c < nc; c++) {
            char cell[96];
            scn_report_cell(&cols[c], &scn_report_rows[i], cell, sizeof cell);
            scn_buf_puts(&b, "<td class=\"n\">");
            scn_buf_html(&b, cell);
            scn_buf_puts(&b, "</td>");
        }
        scn_buf_puts(&b, "</tr>\n");
    }
    scn_buf_printf(&b, "<tr><th>SLO (LIST p99 &le; %llds, put p99 &le; %llds)</th>",
                   (long long)(r->slo.list_ms / 1000), (long long)(r->slo.put_ms / 1000));
    for (size_t c = 0; c < nc; c++) {
        char msg[256];
        bool ok = scn_slo_verdict(r, cols[c].run, cols[c].phase, msg, sizeof msg);
        scn_buf_printf(&b, "<td class=\"%s\">", ok ? "good" : "bad");
        scn_buf_html(&b, msg);
        scn_buf_puts(&b, "</td>");
    }
    scn_buf_puts(&b, "</tr>\n<tr><th>expectations</th>");
    for (size_t c = 0; c < nc; c++) {
        char t[64];
        scn_report_tally(v, nv, cols[c].run->mode, t, sizeof t);
        bool bad = strstr(t, "FAIL") != NULL;
        scn_buf_printf(&b, "<td class=\"%s\">", bad ? "bad" : strcmp(t, "-") ? "good" : "n");
        scn_buf_html(&b, t);
        scn_buf_puts(&b, "</td>");
    }
    scn_buf_puts(&b, "</tr>\n</table>\n");

    if (nv) {
        scn_buf_puts(&b, "<h2>Expectations</h2>\n<ul class=\"v\">\n");
        for (size_t i = 0; i < nv; i++) {
            scn_buf_printf(&b, "<li class=\"%s\">",
                           v[i].skipped ? "skip"
                           : v[i].pass  ? "pass"
                                        : "fail");
            scn_buf_html(&b, v[i].msg);
            scn_buf_puts(&b, "</li>\n");
        }
        scn_buf_puts(&b, "</ul>\n");
    }

    scn_buf_puts(&b, "<h2>Over time</h2>\n");
    for (size_t i = 0; i < sizeof charts / sizeof charts[0]; i++)
        draw_chart(&b, r, &charts[i]);
    scn_buf_puts(&b, "<p class=\"foot\">relistlab scenario report &middot; per-second data in "
                     "timeline.csv, numbers in summary.json</p>\n</body>\n</html>\n");
    return scn_buf_take(&b);
}
