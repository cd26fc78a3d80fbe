/* report.c — what kvbench prints: per-target medians over rounds, the side-by-side ratio table
 * (the first target against each other one), and the --json file. Medians (not means) so one
 * noisy round on a shared 2-core machine does not move the figure. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvbench.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_of(double *v, int n) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double kb_median(const kb_result *rs, int n, size_t offset) {
    double v[64];
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++)
        memcpy(&v[i], (const char *)&rs[i] + offset, sizeof(double));
    return median_of(v, n);
}

#define MED(r, t, field) kb_median((r)->rounds[t], (r)->n_rounds, offsetof(kb_result, field))

static void fmt_lat(double ms, char *buf, size_t cap) {
    if (ms < 1)
        snprintf(buf, cap, "%.0fus", ms * 1000);
    else if (ms < 10)
        snprintf(buf, cap, "%.2fms", ms);
    else if (ms < 100)
        snprintf(buf, cap, "%.1fms", ms);
    else if (ms < 10000)
        snprintf(buf, cap, "%.0fms", ms);
    else
        snprintf(buf, cap, "%.1fs", ms / 1000);
}

static void fmt_rate(double v, char *buf, size_t cap) {
    if (v >= 1000)
        snprintf(buf, cap, "%.0f", v);
    else if (v >= 10)
        snprintf(buf, cap, "%.1f", v);
    else
        snprintf(buf, cap, "%.2f", v);
}

static uint64_t total_errors(const kb_report *r, int t) {
    uint64_t n = 0;
    for (int i = 0; i < r->n_rounds; i++)
        n += r->rounds[t][i].errors;
    return n;
}

void kb_report_print(const kb_report *r) {
    const kb_opts *o = r->o;
    printf("\n== %s — median of %d round%s, %s each%s\n", r->params, r->n_rounds,
           r->n_rounds == 1 ? "" : "s", o->count ? "count-bound" : "duration-bound",
           o->no_fsync ? " (kvstore NOT durable: --no-fsync)" : "");
    printf("%-10s %10s %9s %8s %8s %8s %8s %8s %7s %16s %16s%s%s\n", "target", "ops/s", "MB/s",
           "p50", "p90", "p99", "p99.9", "max", "errors", "client CPU", "server CPU",
           r->w->aux_name ? "  " : "", r->w->aux_name ? r->w->aux_name : "");
    for (int t = 0; t < r->n_targets; t++) {
        char ops[32], l[5][16];
        fmt_rate(MED(r, t, ops_s), ops, sizeof ops);
        fmt_lat(MED(r, t, p50), l[0], 16);
        fmt_lat(MED(r, t, p90), l[1], 16);
        fmt_lat(MED(r, t, p99), l[2], 16);
        fmt_lat(MED(r, t, p999), l[3], 16);
        fmt_lat(MED(r, t, max), l[4], 16);
        double secs = MED(r, t, secs), ops_s = MED(r, t, ops_s);
        double ccpu = MED(r, t, client_cpu_s), scpu = MED(r, t, server_cpu_s);
        char cc[32], sc[32];
        /* CPU as % of one core over the window, and per operation */
        snprintf(cc, sizeof cc, "%3.0f%% %6.1fus/op", 100 * ccpu / secs,
                 ops_s > 0 ? 1e6 * ccpu / (ops_s * secs) : 0);
        if (scpu >= 0)
            snprintf(sc, sizeof sc, "%3.0f%% %6.1fus/op", 100 * scpu / secs,
                     ops_s > 0 ? 1e6 * scpu / (ops_s * secs) : 0);
        else
            snprintf(sc, sizeof sc, "n/a");
        printf("%-10s %10s %9.1f %8s %8s %8s %8s %8s %7llu %16s %16s", r->targets[t].name, ops,
               MED(r, t, bytes_s) / 1e6, l[0], l[1], l[2], l[3], l[4],
               (unsigned long long)total_errors(r, t), cc, sc);
        if (r->w->aux_name) {
            double v[64];
            int n = r->n_rounds < 64 ? r->n_rounds : 64;
            for (int i = 0; i < n; i++)
                v[i] = (double)r->rounds[t][i].aux;
            printf("  %.0f", median_of(v, n));
        }
        printf("\n");
    }
    printf("client ceiling (one core / kvbench CPU per op):");
    for (int t = 0; t < r->n_targets; t++) {
        double ops = MED(r, t, ops_s) * MED(r, t, secs), cpu = MED(r, t, client_cpu_s);
        if (ops > 0 && cpu > 0)
            printf("  %s run ~%.0f ops/s (%.0f%% used)", r->targets[t].name, ops / cpu,
                   100 * MED(r, t, ops_s) / (ops / cpu));
    }
    printf("\n");
    if (r->n_targets < 2) return;
    const char *a = r->targets[0].name;
    for (int t = 1; t < r->n_targets; t++) {
        const char *b = r->targets[t].name;
        char ha[64], hb[64], pa[64], pb[64];
        snprintf(ha, sizeof ha, "%s ops/s", a);
        snprintf(hb, sizeof hb, "%s ops/s", b);
        snprintf(pa, sizeof pa, "%s p50/p99", a);
        snprintf(pb, sizeof pb, "%s p50/p99", b);
        int w = (int)strlen(r->params) > 28 ? (int)strlen(r->params) : 28;
        printf("\n%-*s | %13s | %13s | %7s | %19s | %19s | %s\n", w, "workload", ha, hb, "ratio",
               pa, pb, "p99 ratio");
        double oa = MED(r, 0, ops_s), ob = MED(r, t, ops_s);
        double p99a = MED(r, 0, p99), p99b = MED(r, t, p99);
        char ra[32], rb[32], la[2][16], lb[2][16], cell_a[40], cell_b[40], ratio[32], pr[32];
        fmt_rate(oa, ra, sizeof ra);
        fmt_rate(ob, rb, sizeof rb);
        fmt_lat(MED(r, 0, p50), la[0], 16);
        fmt_lat(p99a, la[1], 16);
        fmt_lat(MED(r, t, p50), lb[0], 16);
        fmt_lat(p99b, lb[1], 16);
        snprintf(cell_a, sizeof cell_a, "%s / %s", la[0], la[1]);
        snprintf(cell_b, sizeof cell_b, "%s / %s", lb[0], lb[1]);
        snprintf(ratio, sizeof ratio, ob > 0 ? "%.2fx" : "n/a", ob > 0 ? oa / ob : 0);
        snprintf(pr, sizeof pr, p99b > 0 ? "%.2f" : "n/a", p99b > 0 ? p99a / p99b : 0);
        printf("%-*s | %13s | %13s | %7s | %19s | %19s | %s\n", w, r->params, ra, rb, ratio, cell_a,
               cell_b, pr);
    }
    printf("(ratio = %s ops/s / other ops/s: > 1 is faster; p99 ratio = %s p99 / other p99: < 1 "
           "is better)\n",
           a, a);
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_result(FILE *f, const kb_result *x) {
    fprintf(f,
            "{\"secs\": %.6f, \"ops\": %llu, \"errors\": %llu, \"aux\": %llu, \"ops_per_s\": %.3f, "
            "\"bytes_per_s\": %.1f, \"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, "
            "\"p999_ms\": %.4f, \"max_ms\": %.4f, \"mean_ms\": %.4f, \"client_cpu_s\": %.4f, "
            "\"server_cpu_s\": %.4f, \"first_error\": ",
            x->secs, (unsigned long long)x->ops, (unsigned long long)x->errors,
            (unsigned long long)x->aux, x->ops_s, x->bytes_s, x->p50, x->p90, x->p99, x->p999,
            x->max, x->mean, x->client_cpu_s, x->server_cpu_s);
    json_str(f, x->first_error);
    fputc('}', f);
}

int kb_report_json(const kb_report *r, const char *path, char *err, size_t errlen) {
    const kb_opts *o = r->o;
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "{\n  \"tool\": \"kvbench\",\n  \"workload\": ");
    json_str(f, r->w->name);
    fprintf(f, ",\n  \"params\": ");
    json_str(f, r->params);
    fprintf(f,
            ",\n  \"options\": {\"duration_s\": %.3f, \"warmup_s\": %.3f, \"count\": %llu, "
            "\"rounds\": %d, \"concurrency\": %d, \"conns\": %d, \"value_size\": %zu, "
            "\"keys\": %llu, \"objects\": %llu, \"namespaces\": %d, \"scope\": \"%s\", "
            "\"serializable\": %s, \"verify\": %s, \"kvstore_durable\": %s},\n",
            o->duration_s, o->warmup_s, (unsigned long long)o->count, o->rounds, o->concurrency,
            o->conns, o->value_size, (unsigned long long)o->keys, (unsigned long long)o->objects,
            o->namespaces, o->scope_ns ? "namespace" : "all", o->serializable ? "true" : "false",
            o->verify ? "true" : "false", o->no_fsync ? "false" : "true");
    fprintf(f, "  \"targets\": [\n");
    for (int t = 0; t < r->n_targets; t++) {
        fprintf(f, "    {\"name\": ");
        json_str(f, r->targets[t].name);
        fprintf(f, ", \"addr\": ");
        json_str(f, r->targets[t].addr);
        fprintf(f, ", \"started\": %s,\n     \"rounds\": [",
                r->targets[t].kind == KB_EXTERNAL ? "false" : "true");
        kb_hist all;
        kb_hist_reset(&all);
        for (int i = 0; i < r->n_rounds; i++) {
            fprintf(f, "%s\n       ", i ? "," : "");
            json_result(f, &r->rounds[t][i]);
            kb_hist_merge(&all, &r->rounds[t][i].hist);
        }
        fprintf(f,
                "],\n     \"median\": {\"ops_per_s\": %.3f, \"bytes_per_s\": %.1f, \"p50_ms\": "
                "%.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, \"p999_ms\": %.4f, \"max_ms\": %.4f, "
                "\"client_cpu_s\": %.4f, \"server_cpu_s\": %.4f},\n",
                MED(r, t, ops_s), MED(r, t, bytes_s), MED(r, t, p50), MED(r, t, p90),
                MED(r, t, p99), MED(r, t, p999), MED(r, t, max), MED(r, t, client_cpu_s),
                MED(r, t, server_cpu_s));
        fprintf(f,
                "     \"all_rounds\": {\"ops\": %llu, \"p50_ms\": %.4f, \"p90_ms\": %.4f, "
                "\"p99_ms\": %.4f, \"p999_ms\": %.4f, \"max_ms\": %.4f}}%s\n",
                (unsigned long long)all.count, (double)kb_hist_pct(&all, 50) / 1e6,
                (double)kb_hist_pct(&all, 90) / 1e6, (double)kb_hist_pct(&all, 99) / 1e6,
                (double)kb_hist_pct(&all, 99.9) / 1e6, (double)all.max / 1e6,
                t + 1 < r->n_targets ? "," : "");
    }
    fprintf(f, "  ],\n  \"ratios\": [");
    for (int t = 1; t < r->n_targets; t++) {
        double ob = MED(r, t, ops_s), p99b = MED(r, t, p99);
        fprintf(f, "%s\n    {\"a\": ", t > 1 ? "," : "");
        json_str(f, r->targets[0].name);
        fprintf(f, ", \"b\": ");
        json_str(f, r->targets[t].name);
        fprintf(f, ", \"ops_ratio\": %.4f, \"p99_ratio\": %.4f}",
                ob > 0 ? MED(r, 0, ops_s) / ob : 0, p99b > 0 ? MED(r, 0, p99) / p99b : 0);
    }
    fprintf(f, "\n  ]\n}\n");
    if (fclose(f) != 0) {
        snprintf(err, errlen, "%s: write failed", path);
        return -1;
    }
    return 0;
}
