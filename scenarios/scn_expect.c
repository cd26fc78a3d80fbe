/* scn_expect.c — evaluating a script's expectations against measured runs.
 *
 * An expectation without @mode references is checked once per run whose mode and settings
 * match its filters (so one line states a claim for every namespaced mode, say); one with an
 * @mode reference compares named runs and is checked once. Missing data fails: a claim that
 * could not be measured is not a passed claim. Modes left out with --set modes=... skip. */
#include "scn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool when_matches(const scn_watchers *when, const scn_watchers *cfg) {
    for (const scn_opt *o = scn_watcher_opts; o->name; o++) {
        if (!(when->set & o->bit)) continue;
        const char *a = (const char *)when + o->off, *b = (const char *)cfg + o->off;
        if (o->size) {
            if (strcmp(a, b) != 0) return false;
        } else if (memcmp(a, b, 8) != 0) {
            return false;
        }
    }
    return true;
}

static bool compare(double a, scn_op op, double b) {
    switch (op) {
    case SCN_OP_LT:
        return a < b;
    case SCN_OP_LE:
        return a <= b;
    case SCN_OP_GT:
        return a > b;
    case SCN_OP_GE:
        return a >= b;
    case SCN_OP_EQ:
        return a == b;
    case SCN_OP_NE:
        return a != b;
    }
    return false;
}

static const char *base_name(const char *path) {
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static bool mode_in_script(const scn_script *s, const char *name) {
    if (!s->n_modes) return !strcmp(name, "run");
    for (size_t i = 0; i < s->n_modes; i++)
        if (!strcmp(s->modes[i].name, name)) return true;
    return false;
}

/* Does a mode left out of this run (--set modes=...) match the filters? */
static bool disabled_match(const scn_script *s, const scn_watchers *when) {
    for (size_t i = 0; i < s->n_modes; i++) {
        if (s->modes[i].enabled) continue;
        scn_watchers w = s->watchers;
        scn_watchers_merge(&w, &s->modes[i].over);
        if (when_matches(when, &w)) return true;
    }
    return false;
}

typedef struct vlist {
    scn_verdict *v;
    size_t n, cap;
} vlist;

static scn_verdict *push(vlist *l) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        scn_verdict *p = realloc(l->v, nc * sizeof *p);
        if (!p) return NULL;
        l->v = p;
        l->cap = nc;
    }
    scn_verdict *v = &l->v[l->n++];
    memset(v, 0, sizeof *v);
    v->actual = v->bound = NAN;
    return v;
}

static void finish(const scn_script *s, const scn_expect *e, scn_verdict *v, const char *label,
                   const char *detail) {
    const char *tag = v->skipped ? "SKIP" : v->pass ? "PASS" : "FAIL";
    scn_fmt(v->msg, sizeof v->msg, "%s %s:%d %s%s%s%s: %s", tag, base_name(s->file), e->loc.line,
            label[0] ? "[" : "", label, label[0] ? "] " : "", e->text, detail);
}

/* Evaluates e with lhs on run `lhs_run` (NULL = not run) and the rhs mode defaulting to it. */
static void eval_one(const scn_script *s, const scn_result *r, const scn_expect *e,
                     const scn_run *lhs_run, const char *lhs_mode, scn_verdict *v) {
    char detail[256], a[32], b[32], k[32];
    int phase = e->phase[0] ? scn_result_phase(r, e->phase) : -1;
    const char *rhs_mode = e->rhs_is_ref && e->rhs.mode[0] ? e->rhs.mode : lhs_mode;
    const scn_run *rhs_run = e->rhs_is_ref ? scn_result_find(r, rhs_mode) : NULL;
    if (!lhs_run || (e->rhs_is_ref && !rhs_run)) {
        const char *missing = !lhs_run ? lhs_mode : rhs_mode;
        v->skipped = mode_in_script(s, missing);
        scn_fmt(detail, sizeof detail, "mode '%s' was not run", missing);
        finish(s, e, v, v->mode, detail);
        return;
    }
    v->actual = scn_run_metric(lhs_run, phase, e->lhs.metric);
    double rhs = e->rhs_is_ref ? scn_run_metric(rhs_run, phase, e->rhs.metric) : 1;
    v->bound = e->k * rhs;
    scn_fmt_num(v->actual, a, sizeof a);
    scn_fmt_num(v->bound, b, sizeof b);
    if (isnan(v->actual) || isnan(v->bound)) {
        v->pass = false;
        scn_fmt(detail, sizeof detail, "no data (%s%s%s was not measured)",
                isnan(v->actual) ? e->lhs.metric : e->rhs.metric, phase >= 0 ? " in phase " : "",
                phase >= 0 ? e->phase : "");
    } else {
        v->pass = compare(v->actual, e->op, v->bound);
        if (e->rhs_is_ref) {
            char r2[32];
            scn_fmt_num(e->k, k, sizeof k);
            scn_fmt_num(rhs, r2, sizeof r2);
            scn_fmt(detail, sizeof detail, "%s%s %s %s (= %s x %s@%s %s)", a,
                    v->pass ? "" : ", expected", scn_op_name(e->op), b, k, e->rhs.metric, rhs_mode,
                    r2);
        } else if (v->pass) {
            scn_fmt(detail, sizeof detail, "%s", a);
        } else {
            scn_fmt(detail, sizeof detail, "%s, expected %s %s", a, scn_op_name(e->op), b);
        }
    }
    finish(s, e, v, v->mode, detail);
}

int scn_expect_eval(const scn_script *s, const scn_result *r, scn_verdict **out, size_t *n) {
    vlist l = {0};
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < s->n_expects; i++) {
        const scn_expect *e = &s->expects[i];
        if (e->lhs.mode[0]) {
            scn_verdict *v = push(&l);
            if (!v) goto oom;
            v->expect = i;
            snprintf(v->mode, sizeof v->mode, "%s", e->lhs.mode);
            eval_one(s, r, e, scn_result_find(r, e->lhs.mode), e->lhs.mode, v);
            continue;
        }
        size_t matched = 0;
        for (size_t j = 0; j < r->n_runs; j++) {
            const scn_run *run = &r->runs[j];
            if (e->mode[0] && strcmp(e->mode, run->mode) != 0) continue;
            if (!when_matches(&e->when, &run->cfg)) continue;
            scn_verdict *v = push(&l);
            if (!v) goto oom;
            v->expect = i;
            snprintf(v->mode, sizeof v->mode, "%s", run->mode);
            eval_one(s, r, e, run, run->mode, v);
            matched++;
        }
        if (!matched) {
            scn_verdict *v = push(&l);
            if (!v) goto oom;
            v->expect = i;
            /* a filter naming a mode that exists but was left out is a skip, not a failure */
            if (e->mode[0] && mode_in_script(s, e->mode)) {
                snprintf(v->mode, sizeof v->mode, "%s", e->mode);
                v->skipped = true;
                finish(s, e, v, v->mode, "mode was not run");
            } else if (!e->mode[0] && disabled_match(s, &e->when)) {
                v->skipped = true;
                finish(s, e, v, "", "no mode that was run matches");
            } else {
                finish(s, e, v, "", "matches no mode");
            }
        }
    }
    *out = l.v;
    *n = l.n;
    return 0;
oom:
    free(l.v);
    return -1;
}
