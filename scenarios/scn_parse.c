/* scn_parse.c — the scenario script parser: one function per statement (the lexer and token
 * helpers are scn_lex.c), then cross-references, `short` checks and scn_script_check.
 *
 * Decisions: the format is line-oriented (one statement a line, '#' comments anywhere), so an
 * error never cascades: the parser records it with line and column, skips to the next line and
 * goes on, reporting up to SCN_ERRORS_MAX at once. `key=value` may have blanks around '=';
 * '_' and '-' are the same in keys. Comparison operators are tokens of their own, so
 * `x<1` and `x < 1` read alike. Names that may be declared later (phases named by `at`) are
 * resolved once the whole file is read. */
#include "scn_parse_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- statements ---- */

static void st_scenario(pctx *c) {
    if (scn_p_need_word(c, 1, "a scenario name")) return;
    if (!scn_p_valid_name(c->t[1].text)) {
        scn_p_perr(c, c->t[1].col, "bad scenario name '%s' (expected letters, digits, '-' or '_')",
                   c->t[1].text);
        return;
    }
    scn_fmt(c->s->name, sizeof c->s->name, "%s", c->t[1].text);
    if (c->n > 2) {
        /* the rest is the title: one quoted string, or the plain words */
        size_t start = (size_t)(c->t[2].col - 1);
        if (c->t[2].kind == TK_STR && c->n == 3)
            scn_fmt(c->s->title, sizeof c->s->title, "%s", c->t[2].text);
        else
            scn_fmt(c->s->title, sizeof c->s->title, "%.*s", (int)(c->code_len - start),
                    c->code + start);
    }
}

static void st_title(pctx *c) {
    if (c->n < 2) {
        scn_p_perr(c, scn_p_end_col(c), "expected a title after 'title'");
        return;
    }
    size_t start = (size_t)(c->t[1].col - 1);
    if (c->t[1].kind == TK_STR && c->n == 2)
        scn_fmt(c->s->title, sizeof c->s->title, "%s", c->t[1].text);
    else
        scn_fmt(c->s->title, sizeof c->s->title, "%.*s", (int)(c->code_len - start),
                c->code + start);
}

static const scn_opt server_opts[] = {
    {"metrics", SCN_OT_STRING, offsetof(scn_server, metrics), sizeof((scn_server *)0)->metrics, 0,
     NULL},
    {"args", SCN_OT_STRING, offsetof(scn_server, args), sizeof((scn_server *)0)->args, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

/* Splits "a,b,c" into the server's endpoint list. */
static int set_endpoints(scn_server *sv, const char *list, char *err, size_t cap) {
    sv->n_endpoints = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || n >= sizeof sv->endpoints[0] || !memchr(p, ':', n)) {
            scn_fmt(err, cap, "bad endpoint '%.*s' (expected HOST:PORT[,HOST:PORT...])", (int)n, p);
            return -1;
        }
        if (sv->n_endpoints == SCN_ENDPOINTS_MAX) {
            scn_fmt(err, cap, "too many endpoints (at most %d)", SCN_ENDPOINTS_MAX);
            return -1;
        }
        memcpy(sv->endpoints[sv->n_endpoints], p, n);
        sv->endpoints[sv->n_endpoints++][n] = 0;
        p += n + (e ? 1 : 0);
        if (e && !*p) {
            scn_fmt(err, cap, "expected an endpoint after the last ','");
            return -1;
        }
    }
    if (!sv->n_endpoints) {
        scn_fmt(err, cap, "expected HOST:PORT[,HOST:PORT...]");
        return -1;
    }
    return 0;
}

int scn_server_set_endpoints(scn_server *sv, const char *list, char *err, size_t cap) {
    return set_endpoints(sv, list, err, cap);
}

static void st_server(pctx *c) {
    if (scn_p_need_word(c, 1, "embedded | etcd | endpoints HOST:PORT,...")) return;
    scn_server sv = c->s->server;
    sv.loc = scn_p_here(c, 0);
    const char *k = c->t[1].text;
    size_t i = 2;
    if (!strcmp(k, "embedded")) {
        sv.kind = SCN_SERVER_EMBEDDED;
    } else if (!strcmp(k, "etcd")) {
        sv.kind = SCN_SERVER_ETCD;
    } else if (!strcmp(k, "endpoints")) {
        sv.kind = SCN_SERVER_ENDPOINTS;
        if (scn_p_need_word(c, 2, "HOST:PORT[,HOST:PORT...]")) return;
        char msg[SCN_ERR_MAX];
        if (set_endpoints(&sv, c->t[2].text, msg, sizeof msg)) {
            scn_p_perr(c, c->t[2].col, "%s", msg);
            return;
        }
        i = 3;
    } else {
        scn_p_perr(c, c->t[1].col, "unknown server '%s' (expected embedded | etcd | endpoints)", k);
        return;
    }
    if (scn_p_opts_to_end(c, i, server_opts, &sv, NULL, "server")) return;
    c->s->server = sv;
}

static void st_seed(pctx *c) {
    scn_seed sd = c->s->seed;
    size_t i = 1;
    if (i < c->n && c->t[i].kind == TK_WORD && (i + 1 >= c->n || c->t[i + 1].kind != TK_EQ)) {
        if (!scn_p_valid_name(c->t[i].text)) {
            scn_p_perr(c, c->t[i].col, "bad resource '%s' (expected a name like pods)",
                       c->t[i].text);
            return;
        }
        scn_fmt(sd.resource, sizeof sd.resource, "%s", c->t[i].text);
        i++;
    }
    if (scn_p_opts_to_end(c, i, scn_seed_opts, &sd, NULL, "seed")) return;
    sd.present = true;
    sd.loc = scn_p_here(c, 0);
    c->s->seed = sd;
}

static void st_watchers(pctx *c) {
    scn_watchers w = c->s->watchers;
    if (scn_p_opts_to_end(c, 1, scn_watcher_opts, &w, &w.set, "watchers")) return;
    c->s->watchers = w;
}

static void st_mode(pctx *c) {
    if (scn_p_need_word(c, 1, "a mode name")) return;
    const tok *nm = &c->t[1];
    if (!scn_p_valid_name(nm->text)) {
        scn_p_perr(c, nm->col, "bad mode name '%s' (expected letters, digits, '-' or '_')",
                   nm->text);
        return;
    }
    for (size_t j = 0; j < c->s->n_modes; j++)
        if (!strcmp(c->s->modes[j].name, nm->text)) {
            scn_p_perr(c, nm->col, "mode '%s' already defined at line %d", nm->text,
                       c->s->modes[j].loc.line);
            return;
        }
    scn_mode m = {0};
    m.loc = scn_p_here(c, 0);
    m.enabled = true;
    scn_fmt(m.name, sizeof m.name, "%s", nm->text);
    for (size_t i = 2; i < c->n;) {
        if (c->t[i].kind == TK_STR) {
            scn_fmt(m.title, sizeof m.title, "%s", c->t[i].text);
            i++;
            continue;
        }
        const tok *k, *v;
        if (scn_p_kv_at(c, &i, &k, &v) ||
            scn_p_apply_opt(c, scn_watcher_opts, &m.over, &m.over.set, k, v, "mode"))
            return;
    }
    scn_mode *arr = scn_p_grow_array(c, c->s->modes, c->s->n_modes, sizeof *arr);
    if (!arr) return;
    c->s->modes = arr;
    arr[c->s->n_modes++] = m;
}

static void st_phase(pctx *c) {
    if (scn_p_need_word(c, 1, "a phase name")) return;
    const tok *nm = &c->t[1];
    if (!scn_p_valid_name(nm->text)) {
        scn_p_perr(c, nm->col, "bad phase name '%s' (expected letters, digits, '-' or '_')",
                   nm->text);
        return;
    }
    for (size_t j = 0; j < c->s->n_phases; j++)
        if (!strcmp(c->s->phases[j].name, nm->text)) {
            scn_p_perr(c, nm->col, "phase '%s' already defined at line %d", nm->text,
                       c->s->phases[j].loc.line);
            return;
        }
    scn_phase p = {0};
    p.loc = scn_p_here(c, 0);
    p.hot_namespaces = 1;
    p.writers = 4;
    scn_fmt(p.name, sizeof p.name, "%s", nm->text);
    if (scn_p_need_word(c, 2, "the phase's duration like 30s")) return;
    if (c->n > 3 && c->t[3].kind == TK_EQ) {
        scn_p_perr(c, c->t[2].col,
                   "expected the phase's duration like 30s before the options, got '%s'",
                   c->t[2].text);
        return;
    }
    if (scn_parse_duration_ms(c->t[2].text, &p.duration_ms) || p.duration_ms <= 0) {
        scn_p_perr(c, c->t[2].col,
                   "bad duration '%s' (expected a positive duration like 30s or 500ms)",
                   c->t[2].text);
        return;
    }
    if (scn_p_opts_to_end(c, 3, scn_phase_opts, &p, NULL, "phase")) return;
    if (p.hot_namespaces <= 0) {
        scn_p_perr(c, c->t[1].col, "phase: hot-namespaces must be above 0");
        return;
    }
    scn_phase *arr = scn_p_grow_array(c, c->s->phases, c->s->n_phases, sizeof *arr);
    if (!arr) return;
    c->s->phases = arr;
    arr[c->s->n_phases++] = p;
}

#define A(f) offsetof(scn_action, f)
static const scn_opt compact_opts[] = {
    {"every", SCN_OT_DURATION, A(every_ms), 0, 0, NULL},
    {"keep", SCN_OT_COUNT, A(keep), 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};
static const scn_opt restart_opts[] = {
    {"down", SCN_OT_DURATION, A(down_ms), 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};
static const scn_opt drop_opts[] = {
    {"fraction", SCN_OT_FRACTION, A(fraction), 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};
static const scn_opt hold_opts[] = {
    {"fraction", SCN_OT_FRACTION, A(fraction), 0, 0, NULL},
    {"for", SCN_OT_DURATION, A(for_ms), 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};
static const scn_opt no_opts[] = {{NULL, 0, 0, 0, 0, NULL}};
#undef A

#define SWITCHABLE                                                                                 \
    (SCN_W_KEY_MODE | SCN_W_ON_MISS | SCN_W_BACKOFF | SCN_W_QPS | SCN_W_BURST | SCN_W_RESYNC)

static void st_at(pctx *c) {
    if (scn_p_need_word(c, 1, "a time: 10s, PHASE or PHASE+5s")) return;
    scn_action a = {0};
    a.loc = scn_p_here(c, 0);
    a.phase = -1;
    a.down_ms = 1000;
    a.fraction = 1;
    a.for_ms = 5000;
    const tok *tt = &c->t[1];
    char phase[SCN_NAME_MAX] = "";
    const char *plus = strchr(tt->text, '+');
    if (scn_parse_duration_ms(tt->text, &a.offset_ms) == 0) {
        /* absolute */
    } else if (plus || scn_p_valid_name(tt->text)) {
        size_t n = plus ? (size_t)(plus - tt->text) : strlen(tt->text);
        if (n == 0 || n >= sizeof phase) {
            scn_p_perr(c, tt->col, "bad time '%s' (expected 10s, PHASE or PHASE+5s)", tt->text);
            return;
        }
        memcpy(phase, tt->text, n);
        phase[n] = 0;
        if (!scn_p_valid_name(phase)) {
            scn_p_perr(c, tt->col, "bad phase name '%s' in time '%s'", phase, tt->text);
            return;
        }
        if (plus && scn_parse_duration_ms(plus + 1, &a.offset_ms)) {
            scn_p_perr(c, tt->col + (int)n + 1, "bad offset '%s' (expected a duration like 5s)",
                       plus + 1);
            return;
        }
    } else {
        scn_p_perr(c, tt->col, "bad time '%s' (expected 10s, PHASE or PHASE+5s)", tt->text);
        return;
    }
    if (scn_p_need_word(c, 2,
                        "an action: switch | compact | restart-server | drop-connections | hold | "
                        "verify"))
        return;
    const tok *act = &c->t[2];
    size_t i = 3;
    const scn_opt *table = no_opts;
    if (!strcmp(act->text, "switch")) {
        a.kind = SCN_ACT_SWITCH;
        if (i >= c->n) {
            scn_p_perr(c, scn_p_end_col(c),
                       "expected key=value after 'switch' (key-mode, on-miss, backoff, "
                       "qps, burst, resync)");
            return;
        }
        while (i < c->n) {
            const tok *k, *v;
            if (scn_p_kv_at(c, &i, &k, &v) ||
                scn_p_apply_opt(c, scn_watcher_opts, &a.sw, &a.sw.set, k, v, "switch"))
                return;
            if (a.sw.set & ~(uint32_t)SWITCHABLE) {
                scn_p_perr(
                    c, k->col,
                    "switch cannot change '%s' live (expected key-mode, on-miss, backoff, qps, "
                    "burst or resync)",
                    k->text);
                return;
            }
        }
    } else {
        if (!strcmp(act->text, "compact")) {
            a.kind = SCN_ACT_COMPACT;
            table = compact_opts;
            if (i < c->n && c->t[i].kind == TK_WORD && !strcmp(c->t[i].text, "once")) i++;
        } else if (!strcmp(act->text, "restart-server")) {
            a.kind = SCN_ACT_RESTART_SERVER;
            table = restart_opts;
        } else if (!strcmp(act->text, "drop-connections")) {
            a.kind = SCN_ACT_DROP_CONNECTIONS;
            table = drop_opts;
        } else if (!strcmp(act->text, "hold")) {
            a.kind = SCN_ACT_HOLD;
            table = hold_opts;
        } else if (!strcmp(act->text, "verify")) {
            a.kind = SCN_ACT_VERIFY;
        } else {
            scn_p_perr(c, act->col,
                       "unknown action '%s' (expected switch | compact | restart-server | "
                       "drop-connections | hold | verify)",
                       act->text);
            return;
        }
        if (table == no_opts && i < c->n) {
            scn_p_perr(c, c->t[i].col, "'%s' takes no options", act->text);
            return;
        }
        if (scn_p_opts_to_end(c, i, table, &a, NULL, act->text)) return;
    }
    scn_action *arr = scn_p_grow_array(c, c->s->actions, c->s->n_actions, sizeof *arr);
    if (!arr) return;
    c->s->actions = arr;
    if (phase[0]) {
        at_ref *r = scn_p_grow_array(c, c->ats, c->n_ats, sizeof *r);
        if (!r) return;
        c->ats = r;
        r[c->n_ats] = (at_ref){c->s->n_actions, tt->col, ""};
        scn_fmt(r[c->n_ats].phase, sizeof r[c->n_ats].phase, "%s", phase);
        c->n_ats++;
    }
    arr[c->s->n_actions++] = a;
}

/* METRIC[@MODE] into ref; the metric is checked. */
static int metric_ref(pctx *c, const tok *t, scn_mref *ref) {
    const char *at = strchr(t->text, '@');
    size_t n = at ? (size_t)(at - t->text) : strlen(t->text);
    if (n >= sizeof ref->metric) {
        scn_p_perr(c, t->col, "metric name too long: '%s'", t->text);
        return -1;
    }
    memcpy(ref->metric, t->text, n);
    ref->metric[n] = 0;
    char msg[SCN_ERR_MAX];
    if (scn_metric_check(ref->metric, msg, sizeof msg)) {
        scn_p_perr(c, t->col, "%s", msg);
        return -1;
    }
    ref->mode[0] = 0;
    if (at) {
        if (!scn_p_valid_name(at + 1)) {
            scn_p_perr(c, t->col + (int)n + 1, "bad mode name '%s' after '@'", at + 1);
            return -1;
        }
        scn_fmt(ref->mode, sizeof ref->mode, "%s", at + 1);
    }
    return 0;
}

static bool looks_numeric(const char *s) {
    return isdigit((unsigned char)s[0]) || ((s[0] == '-' || s[0] == '.' || s[0] == '+') &&
                                            (isdigit((unsigned char)s[1]) || s[1] == '.'));
}

/* phase=, mode= or a watcher setting (key-mode=...) as an expectation filter. */
static int expect_filter(pctx *c, size_t *i, scn_expect *e) {
    const tok *k, *v;
    if (scn_p_kv_at(c, i, &k, &v)) return -1;
    if (!strcmp(k->text, "phase") || !strcmp(k->text, "mode")) {
        if (!scn_p_valid_name(v->text)) {
            scn_p_perr(c, v->col, "bad %s name '%s'", k->text, v->text);
            return -1;
        }
        char *dst = k->text[0] == 'p' ? e->phase : e->mode;
        scn_fmt(dst, SCN_NAME_MAX, "%s", v->text);
        return 0;
    }
    if (!scn_opt_find(scn_watcher_opts, k->text)) {
        char names[256];
        scn_opt_names(scn_watcher_opts, names, sizeof names);
        scn_p_perr(c, k->col, "unknown filter '%s' (expected phase, mode or a watcher setting: %s)",
                   k->text, names);
        return -1;
    }
    return scn_p_apply_opt(c, scn_watcher_opts, &e->when, &e->when.set, k, v, "expect");
}

static void st_expect(pctx *c) {
    scn_expect e = {0};
    e.loc = scn_p_here(c, 0);
    scn_fmt(e.text, sizeof e.text, "%.*s", (int)c->code_len, c->code);
    size_t i = 1;
    while (i + 1 < c->n && c->t[i].kind == TK_WORD && c->t[i + 1].kind == TK_EQ)
        if (expect_filter(c, &i, &e)) return;
    if (scn_p_need_word(c, i, "a metric like list_rate.mean")) return;
    if (metric_ref(c, &c->t[i], &e.lhs)) return;
    i++;
    if (i >= c->n || c->t[i].kind != TK_OP) {
        char d[TOK_TEXT_MAX + 8];
        scn_p_perr(c, i < c->n ? c->t[i].col : scn_p_end_col(c),
                   "expected a comparison (< <= > >= == !=) after the metric, got %s",
                   scn_p_tok_desc(c, i, d, sizeof d));
        return;
    }
    e.op = c->t[i].op;
    i++;
    if (scn_p_need_word(c, i, "a number or a metric after the comparison")) return;
    bool ms = strstr(e.lhs.metric, "_ms") != NULL;
    const tok *r = &c->t[i];
    if (looks_numeric(r->text)) {
        if (scn_parse_bound(r->text, ms, &e.k)) {
            scn_p_perr(c, r->col, "bad number '%s' (expected a number like 100, 0.5 or 2k%s)",
                       r->text, ms ? ", or a duration like 5s" : "");
            return;
        }
        i++;
        if (i < c->n && c->t[i].kind == TK_STAR) {
            i++;
            if (scn_p_need_word(c, i, "a metric after '*' like list_rate.mean@namespaced")) return;
            if (metric_ref(c, &c->t[i], &e.rhs)) return;
            e.rhs_is_ref = true;
            i++;
        }
    } else {
        if (metric_ref(c, r, &e.rhs)) return;
        e.rhs_is_ref = true;
        e.k = 1;
        i++;
    }
    if (i < c->n && c->t[i].kind == TK_WORD && !strcmp(c->t[i].text, "when")) {
        i++;
        if (i >= c->n) {
            scn_p_perr(c, scn_p_end_col(c),
                       "expected filters like key-mode=namespaced after 'when'");
            return;
        }
    }
    while (i < c->n)
        if (expect_filter(c, &i, &e)) return;
    scn_expect *arr = scn_p_grow_array(c, c->s->expects, c->s->n_expects, sizeof *arr);
    if (!arr) return;
    c->s->expects = arr;
    arr[c->s->n_expects++] = e;
}

static void st_slo(pctx *c) {
    scn_slo v = c->s->slo;
    if (c->n < 2) {
        scn_p_perr(c, scn_p_end_col(c), "expected list=, get= or put= after 'slo'");
        return;
    }
    if (scn_p_opts_to_end(c, 1, scn_slo_opts, &v, NULL, "slo")) return;
    c->s->slo = v;
}

static void st_report(pctx *c) {
    scn_report_cfg v = c->s->report;
    if (c->n < 2) {
        scn_p_perr(c, scn_p_end_col(c), "expected log-scale=, by-phase= or window= after 'report'");
        return;
    }
    if (scn_p_opts_to_end(c, 1, scn_report_opts, &v, NULL, "report")) return;
    c->s->report = v;
}

static void st_short(pctx *c) {
    if (c->n < 2) {
        scn_p_perr(c, scn_p_end_col(c), "expected overrides like watchers.count=20 after 'short'");
        return;
    }
    for (size_t i = 1; i < c->n;) {
        const tok *k, *v;
        if (scn_p_kv_at(c, &i, &k, &v)) return;
        char a[2 * TOK_TEXT_MAX + 2];
        scn_fmt(a, sizeof a, "%s=%s", k->text, v->text);
        char **sh = scn_p_grow_array(c, c->s->shorts, c->s->n_shorts, sizeof *sh);
        if (!sh) return;
        c->s->shorts = sh;
        scn_loc *sl = scn_p_grow_array(c, c->s->short_locs, c->s->n_shorts, sizeof *sl);
        if (!sl) return;
        c->s->short_locs = sl;
        sh[c->s->n_shorts] = strdup(a);
        if (!sh[c->s->n_shorts]) {
            c->oom = true;
            return;
        }
        sl[c->s->n_shorts] = (scn_loc){c->line, k->col};
        c->s->n_shorts++;
    }
}

static const struct {
    const char *kw;
    void (*fn)(pctx *);
} statements[] = {
    {"scenario", st_scenario}, {"title", st_title}, {"server", st_server}, {"seed", st_seed},
    {"watchers", st_watchers}, {"mode", st_mode},   {"phase", st_phase},   {"at", st_at},
    {"expect", st_expect},     {"slo", st_slo},     {"report", st_report}, {"short", st_short},
};

static void statement(pctx *c) {
    if (c->t[0].kind != TK_WORD) {
        scn_p_perr(c, c->t[0].col, "expected a statement keyword, got '%s'", c->t[0].text);
        return;
    }
    for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++)
        if (!strcmp(c->t[0].text, statements[i].kw)) {
            statements[i].fn(c);
            return;
        }
    scn_p_perr(
        c, c->t[0].col,
        "unknown statement '%s' (expected scenario, title, server, seed, watchers, mode, phase, "
        "at, expect, slo, report or short)",
        c->t[0].text);
}

static void script_defaults(scn_script *s, const char *file) {
    memset(s, 0, sizeof *s);
    scn_fmt(s->file, sizeof s->file, "%s", file ? file : "<script>");
    /* the default name: the file's base name without .scn */
    const char *b = strrchr(s->file, '/');
    b = b ? b + 1 : s->file;
    size_t n = strcspn(b, ".");
    if (n >= sizeof s->name) n = sizeof s->name - 1;
    memcpy(s->name, b, n);
    s->name[n] = 0;
    if (!s->name[0]) snprintf(s->name, sizeof s->name, "scenario");
    s->server.kind = SCN_SERVER_EMBEDDED;
    scn_fmt(s->seed.resource, sizeof s->seed.resource, "pods");
    scn_fmt(s->seed.prefix, sizeof s->seed.prefix, "/registry/");
    s->seed.namespaces = 10;
    s->seed.per_namespace = 10;
    s->seed.value_size = 256;
    scn_watchers_defaults(&s->watchers);
    s->slo.get_ms = 1000;
    s->slo.put_ms = 1000;
    s->report.log_scale = -1;
    s->report.by_phase = -1;
}

int scn_parse(const char *text, size_t len, const char *file, scn_script *out, scn_errors *errs) {
    scn_errors local = {0};
    if (!errs) errs = &local;
    size_t errs_before = errs->n + errs->dropped;
    script_defaults(out, file);
    pctx c = {.file = out->file, .errs = errs, .s = out};
    size_t pos = 0;
    while (pos < len && !c.oom) {
        size_t e = pos;
        while (e < len && text[e] != '\n')
            e++;
        c.line++;
        if (memchr(text + pos, 0, e - pos)) {
            scn_p_perr(&c, 1, "NUL byte in the script (expected text)");
        } else if (scn_p_lex(&c, text + pos, e - pos) == 0 && c.n > 0) {
            statement(&c);
        }
        pos = e + 1;
    }
    for (size_t i = 0; i < c.n_ats && !c.oom; i++) {
        int p = scn_phase_find(out, c.ats[i].phase);
        scn_action *a = &out->actions[c.ats[i].action];
        if (p < 0) {
            char names[256] = "";
            size_t l = 0;
            for (size_t j = 0; j < out->n_phases && l < sizeof names; j++) {
                int n = snprintf(names + l, sizeof names - l, "%s%s", j ? ", " : "",
                                 out->phases[j].name);
                if (n > 0) l += (size_t)n;
            }
            scn_err_add(errs, out->file, (scn_loc){a->loc.line, c.ats[i].col},
                        "unknown phase '%s' (expected one of: %s)", c.ats[i].phase,
                        out->n_phases ? names : "none declared");
        } else {
            a->phase = p;
        }
    }
    free(c.ats);
    /* `short` overrides are checked once every phase and mode is known */
    for (size_t i = 0; i < out->n_shorts && !c.oom; i++)
        scn_script_set_at(out, out->shorts[i], out->file, out->short_locs[i], true, errs);
    if (c.oom) scn_err_add(errs, out->file, (scn_loc){0, 0}, "out of memory");
    if (errs->n + errs->dropped == errs_before) scn_script_check(out, errs);
    if (errs->n + errs->dropped != errs_before) {
        scn_script_free(out);
        return -1;
    }
    return 0;
}

int scn_load(const char *path, scn_script *out, scn_errors *errs) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        scn_err_add(errs, path, (scn_loc){0, 0}, "cannot open: %s", strerror(errno));
        return -1;
    }
    scn_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        scn_buf_put(&b, chunk, n);
    bool bad = ferror(f);
    fclose(f);
    size_t len = b.len;
    char *text = scn_buf_take(&b);
    if (bad || !text) {
        free(text);
        scn_err_add(errs, path, (scn_loc){0, 0}, "cannot read the file");
        return -1;
    }
    int rc = scn_parse(text, len, path, out, errs);
    free(text);
    return rc;
}
