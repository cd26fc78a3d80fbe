/* scn_report.c — what every report format shares: the columns of a compare (one per mode, or
 * one per phase of a single run), the summary rows and their cell texts, the SLO verdict, and
 * writing the four files of --out DIR. Keeping the rows in one table makes the terminal table,
 * the Markdown, the HTML and the JSON say the same thing. */
#include "scn_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const scn_row scn_report_rows[] = {
    {"request rate peak /s", "request_rate.max", SCN_ROW_METRIC},
    {"request rate mean /s", "request_rate.mean", SCN_ROW_METRIC},
    {"LIST rate mean /s", "list_rate.mean", SCN_ROW_METRIC},
    {"LIST rate p50 /s", "list_rate.p50", SCN_ROW_METRIC},
    {"LIST rate max /s", "list_rate.max", SCN_ROW_METRIC},
    {"LIST latency p50 ms", "list_latency_ms.p50", SCN_ROW_METRIC},
    {"LIST latency p99 ms", "list_latency_ms.p99", SCN_ROW_METRIC},
    {"put latency p50 ms", "put_latency_ms.p50", SCN_ROW_METRIC},
    {"put latency p99 ms", "put_latency_ms.p99", SCN_ROW_METRIC},
    {"writes /s", "write_rate.mean", SCN_ROW_METRIC},
    {"watch events /s", "event_rate.mean", SCN_ROW_METRIC},
    {"bytes sent /s", "bytes_rate.mean", SCN_ROW_BYTES},
    {"relists (miss/compacted/error)", "relists", SCN_ROW_RELISTS},
    {"misses", "misses", SCN_ROW_METRIC},
    {"divergent (end of run)", "divergent", SCN_ROW_METRIC},
};
const size_t scn_report_n_rows = sizeof scn_report_rows / sizeof scn_report_rows[0];

const char *scn_window_name(const scn_result *r, int phase) {
    return phase >= 0 && (size_t)phase < r->n_phases ? r->phases[phase] : "whole run";
}

size_t scn_report_columns(const scn_result *r, scn_col *cols, size_t cap) {
    size_t n = 0;
    int window = r->report.window[0] ? scn_result_phase(r, r->report.window) : -1;
    bool by_phase =
        r->report.by_phase == 1 || (r->report.by_phase < 0 && r->n_runs == 1 && r->n_phases > 1);
    for (size_t i = 0; i < r->n_runs; i++) {
        const scn_run *run = &r->runs[i];
        if (!by_phase) {
            if (n == cap) break;
            cols[n] = (scn_col){run, window, ""};
            scn_fmt(cols[n].label, sizeof cols[n].label, "%s", run->mode);
            n++;
            continue;
        }
        for (size_t p = 0; p < r->n_phases && n < cap; p++) {
            cols[n] = (scn_col){run, (int)p, ""};
            if (r->n_runs == 1)
                scn_fmt(cols[n].label, sizeof cols[n].label, "%s", r->phases[p]);
            else
                scn_fmt(cols[n].label, sizeof cols[n].label, "%s/%s", run->mode, r->phases[p]);
            n++;
        }
    }
    return n;
}

static void fmt_bytes(double v, char *buf, size_t cap) {
    if (isnan(v))
        scn_fmt(buf, cap, "-");
    else if (v >= 1024.0 * 1024 * 1024)
        scn_fmt(buf, cap, "%.1f GiB", v / (1024.0 * 1024 * 1024));
    else if (v >= 1024.0 * 1024)
        scn_fmt(buf, cap, "%.1f MiB", v / (1024.0 * 1024));
    else if (v >= 1024)
        scn_fmt(buf, cap, "%.1f KiB", v / 1024);
    else
        scn_fmt(buf, cap, "%.0f B", v);
}

void scn_report_cell(const scn_col *c, const scn_row *row, char *buf, size_t cap) {
    double v = scn_run_metric(c->run, c->phase, row->metric);
    if (row->kind == SCN_ROW_BYTES) {
        fmt_bytes(v, buf, cap);
        return;
    }
    char a[32];
    scn_fmt_num(v, a, sizeof a);
    if (row->kind == SCN_ROW_RELISTS && !isnan(v)) {
        char m[32], k[32], e[32];
        scn_fmt_num(scn_run_metric(c->run, c->phase, "relists.miss"), m, sizeof m);
        scn_fmt_num(scn_run_metric(c->run, c->phase, "relists.compacted"), k, sizeof k);
        scn_fmt_num(scn_run_metric(c->run, c->phase, "relists.error"), e, sizeof e);
        scn_fmt(buf, cap, "%s (%s/%s/%s)", a, m, k, e);
        return;
    }
    scn_fmt(buf, cap, "%s", a);
}

void scn_report_tally(const scn_verdict *v, size_t nv, const char *mode, char *buf, size_t cap) {
    size_t pass = 0, fail = 0;
    for (size_t i = 0; i < nv; i++) {
        if (strcmp(v[i].mode, mode) != 0 || v[i].skipped) continue;
        if (v[i].pass)
            pass++;
        else
            fail++;
    }
    if (!pass && !fail)
        scn_fmt(buf, cap, "-");
    else if (!fail)
        scn_fmt(buf, cap, "%zu/%zu pass", pass, pass);
    else
        scn_fmt(buf, cap, "%zu pass, %zu FAIL", pass, fail);
}

bool scn_slo_verdict(const scn_result *r, const scn_run *run, int phase, char *msg, size_t cap) {
    static const struct {
        const char *metric, *what;
    } checks[] = {{"list_latency_ms.p99", "LIST"},
                  {"get_latency_ms.p99", "GET"},
                  {"put_latency_ms.p99", "put"}};
    int64_t limits[] = {r->slo.list_ms, r->slo.get_ms, r->slo.put_ms};
    bool ok = true;
    size_t len = 0;
    if (cap) msg[0] = 0;
    for (size_t i = 0; i < 3; i++) {
        double v = scn_run_metric(run, phase, checks[i].metric);
        if (isnan(v) || limits[i] <= 0 || v <= (double)limits[i]) continue;
        char a[32];
        scn_fmt_num(v, a, sizeof a);
        int n = snprintf(msg + len, len < cap ? cap - len : 0, "%s%s p99 %s ms > %lld ms",
                         ok ? "BREACH: " : ", ", checks[i].what, a, (long long)limits[i]);
        if (n > 0) len += (size_t)n;
        ok = false;
    }
    if (ok) scn_fmt(msg, cap, "ok");
    return ok;
}

static int mkdirs(const char *dir) {
    char tmp[1024];
    if (strlen(dir) >= sizeof tmp) return -1;
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

static int write_file(const char *dir, const char *name, char *text, char *err, size_t cap) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!text) {
        scn_fmt(err, cap, "%s: out of memory", path);
        return -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        scn_fmt(err, cap, "%s: %s", path, strerror(errno));
        free(text);
        return -1;
    }
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, f) == n;
    ok = fclose(f) == 0 && ok;
    free(text);
    if (!ok) {
        scn_fmt(err, cap, "%s: write failed", path);
        return -1;
    }
    return 0;
}

int scn_report_write_dir(const char *dir, const scn_result *r, const scn_verdict *v, size_t nv,
                         char *err, size_t err_cap) {
    if (mkdirs(dir) != 0) {
        scn_fmt(err, err_cap, "%s: cannot create the directory: %s", dir, strerror(errno));
        return -1;
    }
    if (write_file(dir, "report.html", scn_report_html(r, v, nv), err, err_cap) ||
        write_file(dir, "report.md", scn_report_markdown(r, v, nv), err, err_cap) ||
        write_file(dir, "timeline.csv", scn_report_csv(r), err, err_cap) ||
        write_file(dir, "summary.json", scn_report_json(r, v, nv), err, err_cap))
        return -1;
    return 0;
}
