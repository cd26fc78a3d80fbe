/* scn_report_text.c — the side-by-side terminal table (one column per mode, like the incident
 * write-up's normal/storm table) and the same summary as Markdown. Plain ASCII, padded to the
 * widest cell, so it reads in any terminal and diffs well. */
#include "scn_internal.h"

#include <stdlib.h>
#include <string.h>

#define CELL_MAX 96

typedef struct grid {
    size_t rows, cols; /* cols includes the label column */
    char (*cell)[CELL_MAX];
} grid;

static char *at(grid *g, size_t r, size_t c) {
    return g->cell[r * g->cols + c];
}

/* Header row, one row per summary row, the SLO row and the expectations row. */
static int build(const scn_result *r, const scn_verdict *v, size_t nv, grid *g, scn_col *cols,
                 size_t *ncols) {
    *ncols = scn_report_columns(r, cols, SCN_COLS_MAX);
    g->cols = *ncols + 1;
    g->rows = scn_report_n_rows + 3;
    g->cell = calloc(g->rows * g->cols, sizeof *g->cell);
    if (!g->cell) return -1;
    scn_fmt(at(g, 0, 0), CELL_MAX, "%s", "");
    for (size_t c = 0; c < *ncols; c++)
        scn_fmt(at(g, 0, c + 1), CELL_MAX, "%s", cols[c].label);
    for (size_t i = 0; i < scn_report_n_rows; i++) {
        scn_fmt(at(g, i + 1, 0), CELL_MAX, "%s", scn_report_rows[i].label);
        for (size_t c = 0; c < *ncols; c++)
            scn_report_cell(&cols[c], &scn_report_rows[i], at(g, i + 1, c + 1), CELL_MAX);
    }
    size_t slo = scn_report_n_rows + 1;
    char lim[64];
    scn_fmt(lim, sizeof lim, "SLO (LIST p99 <= %llds)", (long long)(r->slo.list_ms / 1000));
    scn_fmt(at(g, slo, 0), CELL_MAX, "%s", lim);
    scn_fmt(at(g, slo + 1, 0), CELL_MAX, "%s", "expectations");
    for (size_t c = 0; c < *ncols; c++) {
        scn_slo_verdict(r, cols[c].run, cols[c].phase, at(g, slo, c + 1), CELL_MAX);
        scn_report_tally(v, nv, cols[c].run->mode, at(g, slo + 1, c + 1), CELL_MAX);
    }
    return 0;
}

static void header(scn_buf *b, const scn_result *r, const scn_col *cols, size_t n, bool md) {
    scn_buf_printf(b, "%sscenario %s%s%s\n", md ? "# " : "", r->scenario, r->title[0] ? ": " : "",
                   r->title);
    if (md) scn_buf_puts(b, "\n");
    int window = n ? cols[0].phase : -1;
    bool same = true;
    for (size_t i = 1; i < n; i++)
        same = same && cols[i].phase == window;
    if (same) scn_buf_printf(b, "window: %s%s", scn_window_name(r, window), md ? "  \n" : "\n");
    for (size_t i = 0; i < r->n_runs; i++) {
        const scn_run *run = &r->runs[i];
        scn_buf_printf(b, "%s%s: key-mode=%s on-miss=%s backoff=%s qps=%g watchers=%lld%s%s%s",
                       md ? "- " : "  ", run->mode, run->cfg.key_mode, run->cfg.on_miss,
                       run->cfg.backoff, run->cfg.qps, (long long)run->cfg.count,
                       run->note[0] ? " (" : "", run->note, run->note[0] ? ")" : "");
        scn_buf_puts(b, "\n");
    }
    scn_buf_puts(b, "\n");
}

static void verdict_list(scn_buf *b, const scn_verdict *v, size_t nv, bool md) {
    if (!nv) return;
    size_t pass = 0, fail = 0, skip = 0;
    if (md) scn_buf_puts(b, "\n## Expectations\n\n");
    for (size_t i = 0; i < nv; i++) {
        scn_buf_printf(b, "%s%s\n", md ? "- " : "", v[i].msg);
        if (v[i].skipped)
            skip++;
        else if (v[i].pass)
            pass++;
        else
            fail++;
    }
    scn_buf_printf(b, "%sexpectations: %zu passed, %zu failed, %zu skipped\n", md ? "\n" : "", pass,
                   fail, skip);
}

char *scn_report_table(const scn_result *r, const scn_verdict *v, size_t nv) {
    scn_col cols[SCN_COLS_MAX];
    size_t n;
    grid g = {0};
    if (build(r, v, nv, &g, cols, &n)) return NULL;
    size_t *w = calloc(g.cols, sizeof *w);
    scn_buf b = {0};
    if (!w) {
        free(g.cell);
        return NULL;
    }
    for (size_t rr = 0; rr < g.rows; rr++)
        for (size_t c = 0; c < g.cols; c++) {
            size_t l = strlen(at(&g, rr, c));
            if (l > w[c]) w[c] = l;
        }
    header(&b, r, cols, n, false);
    size_t total = 0;
    for (size_t c = 0; c < g.cols; c++)
        total += w[c] + 2;
    for (size_t rr = 0; rr < g.rows; rr++) {
        /* labels left-aligned, numbers right-aligned under their mode */
        for (size_t c = 0; c < g.cols; c++)
            scn_buf_printf(&b, c == 0 ? "%-*s  " : "%*s  ", (int)w[c], at(&g, rr, c));
        while (b.len && b.p[b.len - 1] == ' ')
            b.p[--b.len] = 0;
        scn_buf_puts(&b, "\n");
        if (rr == 0 || rr == scn_report_n_rows) {
            for (size_t i = 0; i + 2 < total; i++)
                scn_buf_puts(&b, "-");
            scn_buf_puts(&b, "\n");
        }
    }
    scn_buf_puts(&b, "\n");
    verdict_list(&b, v, nv, false);
    free(w);
    free(g.cell);
    return scn_buf_take(&b);
}

static void md_cell(scn_buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '|') scn_buf_puts(b, "\\");
        scn_buf_put(b, s, 1);
    }
}

char *scn_report_markdown(const scn_result *r, const scn_verdict *v, size_t nv) {
    scn_col cols[SCN_COLS_MAX];
    size_t n;
    grid g = {0};
    if (build(r, v, nv, &g, cols, &n)) return NULL;
    scn_buf b = {0};
    header(&b, r, cols, n, true);
    for (size_t rr = 0; rr < g.rows; rr++) {
        scn_buf_puts(&b, "|");
        for (size_t c = 0; c < g.cols; c++) {
            scn_buf_puts(&b, " ");
            md_cell(&b, at(&g, rr, c));
            scn_buf_puts(&b, " |");
        }
        scn_buf_puts(&b, "\n");
        if (rr == 0) {
            scn_buf_puts(&b, "|---|");
            for (size_t c = 1; c < g.cols; c++)
                scn_buf_puts(&b, "---:|");
            scn_buf_puts(&b, "\n");
        }
    }
    verdict_list(&b, v, nv, true);
    scn_buf_puts(&b, "\nCharts over time: report.html; per-second data: timeline.csv; "
                     "numbers: summary.json.\n");
    free(g.cell);
    return scn_buf_take(&b);
}
