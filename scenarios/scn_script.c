/* scn_script.c — what a parsed script means: overrides (--set and `short`), cross-checks,
 * the runs (modes merged over `watchers`), phase and action timing, the seed's key layout and
 * the canonical text of a script.
 *
 * An override goes through the same option tables as the script text, on a copy of the one
 * struct it touches, so a rejected override leaves the script unchanged and a dry run (used to
 * check `short` lines at parse time) is the same code path. */
#include "scn_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

const char *scn_op_name(scn_op op) {
    switch (op) {
    case SCN_OP_LT:
        return "<";
    case SCN_OP_LE:
        return "<=";
    case SCN_OP_GT:
        return ">";
    case SCN_OP_GE:
        return ">=";
    case SCN_OP_EQ:
        return "==";
    case SCN_OP_NE:
        return "!=";
    }
    return "?";
}

void scn_script_free(scn_script *s) {
    if (!s) return;
    free(s->phases);
    free(s->modes);
    free(s->actions);
    free(s->expects);
    for (size_t i = 0; i < s->n_shorts; i++)
        free(s->shorts[i]);
    free(s->shorts);
    free(s->short_locs);
    memset(s, 0, sizeof *s);
}

int scn_phase_find(const scn_script *s, const char *name) {
    for (size_t i = 0; i < s->n_phases; i++)
        if (!strcmp(s->phases[i].name, name)) return (int)i;
    return -1;
}

static int mode_find(const scn_script *s, const char *name) {
    for (size_t i = 0; i < s->n_modes; i++)
        if (!strcmp(s->modes[i].name, name)) return (int)i;
    return -1;
}

/* ---- overrides ---- */

typedef struct setctx {
    const char *file;
    scn_loc loc;      /* where the assignment starts (line 0: a command-line --set) */
    const char *text; /* the whole assignment */
    scn_errors *errs;
} setctx;

static int set_err(const setctx *c, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(const setctx *c, size_t off, const char *fmt, ...) {
    char msg[SCN_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->loc.line > 0)
        scn_err_add(c->errs, c->file, (scn_loc){c->loc.line, c->loc.col + (int)off}, "%s", msg);
    else
        scn_err_add(c->errs, c->file, (scn_loc){0, 0}, "%s: %s", c->text, msg);
    return -1;
}

/* Applies key=value to a copy of *obj (size bytes) and writes it back unless dry. */
static int set_opt(const setctx *c, const scn_opt *table, void *obj, size_t size, uint32_t *set,
                   const char *key, size_t key_off, const char *value, size_t val_off, bool dry) {
    char copy[1024];
    if (size > sizeof copy) return set_err(c, 0, "internal: object too large");
    memcpy(copy, obj, size);
    uint32_t bits = set ? *set : 0;
    char msg[SCN_ERR_MAX];
    int rc = scn_opt_set(table, copy, &bits, key, value, msg, sizeof msg);
    if (rc == -1) return set_err(c, key_off, "%s", msg);
    if (rc == -2) return set_err(c, val_off, "%s", msg);
    if (!dry) {
        memcpy(obj, copy, size);
        if (set) *set = bits;
    }
    return 0;
}

static int names_list(const scn_script *s, bool phases, char *buf, size_t cap) {
    size_t l = 0, n = phases ? s->n_phases : s->n_modes;
    buf[0] = 0;
    for (size_t i = 0; i < n && l < cap; i++) {
        int k = snprintf(buf + l, cap - l, "%s%s", i ? ", " : "",
                         phases ? s->phases[i].name : s->modes[i].name);
        if (k > 0) l += (size_t)k;
    }
    if (!n) snprintf(buf, cap, phases ? "none declared" : "run");
    return 0;
}

int scn_script_set_at(scn_script *s, const char *assignment, const char *file, scn_loc loc,
                      bool dry, scn_errors *errs) {
    setctx c = {file, loc, assignment, errs};
    const char *eq = strchr(assignment, '=');
    if (!eq) return set_err(&c, 0, "expected PATH=VALUE like watchers.count=50");
    char path[192];
    size_t plen = (size_t)(eq - assignment);
    while (plen && isspace((unsigned char)assignment[plen - 1]))
        plen--;
    if (plen == 0 || plen >= sizeof path) return set_err(&c, 0, "expected a path before '='");
    memcpy(path, assignment, plen);
    path[plen] = 0;
    const char *value = eq + 1;
    while (isspace((unsigned char)*value))
        value++;
    size_t voff = (size_t)(value - assignment);
    char val[256];
    scn_fmt(val, sizeof val, "%s", value);
    for (size_t n = strlen(val); n && isspace((unsigned char)val[n - 1]);)
        val[--n] = 0;

    /* split the path: at most three segments */
    char *seg[3] = {path, NULL, NULL};
    size_t off[3] = {0, 0, 0};
    size_t nseg = 1;
    for (char *p = path; *p; p++)
        if (*p == '.') {
            if (nseg == 3) return set_err(&c, (size_t)(p - path), "path has too many parts");
            *p = 0;
            seg[nseg] = p + 1;
            off[nseg] = (size_t)(p + 1 - path);
            nseg++;
        }
    const char *top = seg[0];
    if (!strcmp(top, "title") && nseg == 1) {
        if (!dry) snprintf(s->title, sizeof s->title, "%s", val);
        return 0;
    }
    if (!strcmp(top, "modes") && nseg == 1) {
        bool want[64] = {false};
        if (s->n_modes > 64) return set_err(&c, voff, "too many modes");
        char tmp[256];
        scn_fmt(tmp, sizeof tmp, "%s", val);
        size_t vo = voff;
        for (char *p = tmp, *tok; (tok = strsep(&p, ","));) {
            int m = mode_find(s, tok);
            if (m < 0 && !(s->n_modes == 0 && !strcmp(tok, "run"))) {
                char names[256];
                names_list(s, false, names, sizeof names);
                return set_err(&c, vo, "unknown mode '%s' (expected one of: %s)", tok, names);
            }
            if (m >= 0) want[m] = true;
            vo += strlen(tok) + 1;
        }
        if (!dry)
            for (size_t i = 0; i < s->n_modes; i++)
                s->modes[i].enabled = want[i];
        return 0;
    }
    if (!strcmp(top, "server")) {
        scn_server sv = s->server;
        char msg[SCN_ERR_MAX];
        if (nseg == 1) {
            if (!strcmp(val, "embedded"))
                sv.kind = SCN_SERVER_EMBEDDED;
            else if (!strcmp(val, "etcd"))
                sv.kind = SCN_SERVER_ETCD;
            else if (scn_server_set_endpoints(&sv, val, msg, sizeof msg) == 0)
                sv.kind = SCN_SERVER_ENDPOINTS;
            else
                return set_err(&c, voff,
                               "bad server '%s' (expected embedded | etcd | "
                               "HOST:PORT[,HOST:PORT...])",
                               val);
        } else if (nseg == 2 && !strcmp(seg[1], "endpoints")) {
            if (scn_server_set_endpoints(&sv, val, msg, sizeof msg))
                return set_err(&c, voff, "%s", msg);
            sv.kind = SCN_SERVER_ENDPOINTS;
        } else if (nseg == 2 && (!strcmp(seg[1], "metrics") || !strcmp(seg[1], "args"))) {
            char *dst = seg[1][0] == 'm' ? sv.metrics : sv.args;
            size_t cap = seg[1][0] == 'm' ? sizeof sv.metrics : sizeof sv.args;
            if (strlen(val) >= cap) return set_err(&c, voff, "value too long");
            scn_fmt(dst, cap, "%s", val);
        } else {
            return set_err(&c, nseg > 1 ? off[1] : 0,
                           "unknown server setting (expected server, server.endpoints, "
                           "server.metrics or server.args)");
        }
        if (!dry) s->server = sv;
        return 0;
    }
    if (!strcmp(top, "seed") || !strcmp(top, "watchers") || !strcmp(top, "slo") ||
        !strcmp(top, "report")) {
        if (nseg != 2) return set_err(&c, 0, "expected %s.KEY=VALUE", top);
        if (top[0] == 's' && top[1] == 'e') {
            if (set_opt(&c, scn_seed_opts, &s->seed, sizeof s->seed, NULL, seg[1], off[1], val,
                        voff, dry))
                return -1;
            if (!dry) s->seed.present = true;
            return 0;
        }
        if (top[0] == 'w')
            return set_opt(&c, scn_watcher_opts, &s->watchers, sizeof s->watchers, &s->watchers.set,
                           seg[1], off[1], val, voff, dry);
        if (top[0] == 's')
            return set_opt(&c, scn_slo_opts, &s->slo, sizeof s->slo, NULL, seg[1], off[1], val,
                           voff, dry);
        return set_opt(&c, scn_report_opts, &s->report, sizeof s->report, NULL, seg[1], off[1], val,
                       voff, dry);
    }
    if (!strcmp(top, "mode") || !strcmp(top, "phase")) {
        bool is_phase = top[0] == 'p';
        if (nseg < 2)
            return set_err(&c, 0, "expected %s.NAME%s=VALUE", top, is_phase ? "[.KEY]" : ".KEY");
        int idx = is_phase ? scn_phase_find(s, seg[1]) : mode_find(s, seg[1]);
        if (idx < 0) {
            char names[256];
            names_list(s, is_phase, names, sizeof names);
            return set_err(&c, off[1], "unknown %s '%s' (expected one of: %s)", top, seg[1], names);
        }
        if (is_phase) {
            scn_phase *p = &s->phases[idx];
            const char *key = nseg == 3 ? seg[2] : "duration";
            scn_phase copy = *p;
            if (set_opt(&c, scn_phase_opts, &copy, sizeof copy, NULL, key, nseg == 3 ? off[2] : 0,
                        val, voff, false))
                return -1;
            if (copy.duration_ms <= 0)
                return set_err(&c, voff, "a phase's duration must be above 0");
            if (copy.hot_namespaces <= 0)
                return set_err(&c, voff, "hot-namespaces must be above 0");
            if (!dry) *p = copy;
            return 0;
        }
        if (nseg != 3) return set_err(&c, 0, "expected mode.NAME.KEY=VALUE");
        scn_mode *m = &s->modes[idx];
        if (!strcmp(seg[2], "title")) {
            if (!dry) { /* a longer title is cut, on purpose */
                size_t n = strnlen(val, sizeof m->title - 1);
                memcpy(m->title, val, n);
                m->title[n] = '\0';
            }
            return 0;
        }
        return set_opt(&c, scn_watcher_opts, &m->over, sizeof m->over, &m->over.set, seg[2], off[2],
                       val, voff, dry);
    }
    return set_err(&c, 0,
                   "unknown setting '%s' (expected title, modes, server[.KEY], seed.KEY, "
                   "watchers.KEY, mode.NAME.KEY, phase.NAME[.KEY], slo.KEY or report.KEY)",
                   top);
}

int scn_script_set(scn_script *s, const char *assignment, scn_errors *errs) {
    return scn_script_set_at(s, assignment, "--set", (scn_loc){0, 0}, false, errs);
}

int scn_script_apply_short(scn_script *s, scn_errors *errs) {
    if (s->short_applied) return 0;
    int rc = 0;
    for (size_t i = 0; i < s->n_shorts; i++)
        if (scn_script_set_at(s, s->shorts[i], s->file, s->short_locs[i], false, errs)) rc = -1;
    s->short_applied = true;
    return rc;
}

/* ---- cross-checks ---- */

static bool run_exists(const scn_script *s, const char *name) {
    if (!s->n_modes) return !strcmp(name, "run");
    return mode_find(s, name) >= 0;
}

int scn_script_check(const scn_script *s, scn_errors *errs) {
    size_t before = errs ? errs->n + errs->dropped : 0;
    scn_errors local = {0};
    if (!errs) errs = &local;
    char names[256];
    if (!s->n_phases)
        scn_err_add(errs, s->file, (scn_loc){0, 0},
                    "no phase: add at least one, e.g. `phase run 30s update=10/s`");
    if (!scn_script_run_count(s))
        scn_err_add(errs, s->file, (scn_loc){0, 0}, "every mode is disabled (--set modes=...)");
    bool ns_prefix = !strcmp(s->watchers.prefix, "namespace");
    for (size_t i = 0; i < s->n_modes; i++)
        if (s->modes[i].over.set & SCN_W_PREFIX)
            ns_prefix = ns_prefix || !strcmp(s->modes[i].over.prefix, "namespace");
    if (ns_prefix && s->seed.namespaces < 1)
        scn_err_add(errs, s->file, s->seed.loc,
                    "watchers prefix=namespace needs seed namespaces=1 or more");
    for (size_t i = 0; i < s->n_expects; i++) {
        const scn_expect *e = &s->expects[i];
        if (e->phase[0] && scn_phase_find(s, e->phase) < 0) {
            names_list(s, true, names, sizeof names);
            scn_err_add(errs, s->file, e->loc, "expect: unknown phase '%s' (expected one of: %s)",
                        e->phase, names);
        }
        const char *modes[3] = {e->mode, e->lhs.mode, e->rhs_is_ref ? e->rhs.mode : ""};
        for (size_t j = 0; j < 3; j++)
            if (modes[j][0] && !run_exists(s, modes[j])) {
                names_list(s, false, names, sizeof names);
                scn_err_add(errs, s->file, e->loc,
                            "expect: unknown mode '%s' (expected one of: %s)", modes[j], names);
            }
    }
    if (s->report.window[0] && scn_phase_find(s, s->report.window) < 0) {
        names_list(s, true, names, sizeof names);
        scn_err_add(errs, s->file, (scn_loc){0, 0},
                    "report: unknown window phase '%s' (expected one of: %s)", s->report.window,
                    names);
    }
    return errs->n + errs->dropped == before ? 0 : -1;
}

/* ---- runs and timing ---- */

size_t scn_script_run_count(const scn_script *s) {
    if (!s->n_modes) return 1;
    size_t n = 0;
    for (size_t i = 0; i < s->n_modes; i++)
        n += s->modes[i].enabled;
    return n;
}

int scn_script_run(const scn_script *s, size_t i, const char **name, scn_watchers *out) {
    scn_watchers w = s->watchers;
    if (!s->n_modes) {
        if (i != 0) return -1;
        if (name) *name = "run";
        if (out) *out = w;
        return 0;
    }
    for (size_t m = 0; m < s->n_modes; m++) {
        if (!s->modes[m].enabled) continue;
        if (i-- == 0) {
            scn_watchers_merge(&w, &s->modes[m].over);
            if (name) *name = s->modes[m].name;
            if (out) *out = w;
            return 0;
        }
    }
    return -1;
}

int64_t scn_phase_start_ms(const scn_script *s, size_t phase) {
    int64_t t = 0;
    for (size_t i = 0; i < phase && i < s->n_phases; i++)
        t += s->phases[i].duration_ms;
    return t;
}

int64_t scn_script_duration_ms(const scn_script *s) {
    return scn_phase_start_ms(s, s->n_phases);
}

int scn_phase_at(const scn_script *s, int64_t t_ms) {
    int64_t start = 0;
    if (t_ms < 0) return -1;
    for (size_t i = 0; i < s->n_phases; i++) {
        start += s->phases[i].duration_ms;
        if (t_ms < start) return (int)i;
    }
    return -1;
}

int64_t scn_action_time_ms(const scn_script *s, const scn_action *a) {
    return (a->phase >= 0 ? scn_phase_start_ms(s, (size_t)a->phase) : 0) + a->offset_ms;
}

scn_slo scn_script_slo(const scn_script *s) {
    scn_slo v = s->slo;
    if (v.list_ms <= 0) {
        scn_watchers w;
        if (scn_script_run(s, 0, NULL, &w) != 0) w = s->watchers;
        v.list_ms = !strcmp(w.prefix, "all") ? 30000 : 5000;
    }
    return v;
}

size_t scn_seed_key(const scn_seed *seed, int64_t ns, int64_t j, char *buf, size_t cap) {
    /* the first shared_names * per_namespace names repeat in every namespace */
    int64_t shared = (int64_t)(seed->shared_names * (double)seed->per_namespace + 0.5);
    int n;
    if (j < shared)
        n = snprintf(buf, cap, "%s%s/ns-%lld/obj-%lld", seed->prefix, seed->resource, (long long)ns,
                     (long long)j);
    else
        n = snprintf(buf, cap, "%s%s/ns-%lld/obj-%lld-%lld", seed->prefix, seed->resource,
                     (long long)ns, (long long)ns, (long long)j);
    return n < 0 ? 0 : (size_t)n;
}

/* ---- canonical text ---- */

static void fmt_opts(scn_buf *b, const scn_opt *table, const void *base, uint32_t set,
                     bool only_set) {
    for (const scn_opt *o = table; o->name; o++) {
        if (only_set && !(set & o->bit)) continue;
        char kv[256];
        scn_opt_format(o, base, kv, sizeof kv);
        scn_buf_printf(b, " %s", kv);
    }
}

static void fmt_str(scn_buf *b, const char *s) {
    scn_buf_puts(b, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') scn_buf_puts(b, "\\");
        scn_buf_put(b, s, 1);
    }
    scn_buf_puts(b, "\"");
}

static void fmt_ref(scn_buf *b, const scn_mref *r) {
    scn_buf_puts(b, r->metric);
    if (r->mode[0]) scn_buf_printf(b, "@%s", r->mode);
}

char *scn_script_format(const scn_script *s) {
    scn_buf b = {0};
    scn_buf_printf(&b, "scenario %s", s->name);
    if (s->title[0]) {
        scn_buf_puts(&b, " ");
        fmt_str(&b, s->title);
    }
    scn_buf_puts(&b, "\n");
    static const char *const kinds[] = {"embedded", "etcd", "endpoints"};
    scn_buf_printf(&b, "server %s", kinds[s->server.kind]);
    for (size_t i = 0; i < s->server.n_endpoints; i++)
        scn_buf_printf(&b, "%s%s", i ? "," : " ", s->server.endpoints[i]);
    if (s->server.metrics[0]) {
        scn_buf_puts(&b, " metrics=");
        fmt_str(&b, s->server.metrics);
    }
    if (s->server.args[0]) {
        scn_buf_puts(&b, " args=");
        fmt_str(&b, s->server.args);
    }
    scn_buf_puts(&b, "\n");
    if (s->seed.present) {
        scn_buf_printf(&b, "seed %s", s->seed.resource);
        for (const scn_opt *o = scn_seed_opts; o->name; o++) {
            if (!strcmp(o->name, "resource")) continue;
            char kv[256];
            scn_opt_format(o, &s->seed, kv, sizeof kv);
            scn_buf_printf(&b, " %s", kv);
        }
        scn_buf_puts(&b, "\n");
    }
    scn_buf_puts(&b, "watchers");
    fmt_opts(&b, scn_watcher_opts, &s->watchers, 0, false);
    scn_buf_puts(&b, "\n");
    for (size_t i = 0; i < s->n_modes; i++) {
        const scn_mode *m = &s->modes[i];
        scn_buf_printf(&b, "%smode %s", m->enabled ? "" : "# disabled: ", m->name);
        fmt_opts(&b, scn_watcher_opts, &m->over, m->over.set, true);
        if (m->title[0]) {
            scn_buf_puts(&b, " ");
            fmt_str(&b, m->title);
        }
        scn_buf_puts(&b, "\n");
    }
    for (size_t i = 0; i < s->n_phases; i++) {
        const scn_phase *p = &s->phases[i];
        scn_buf_printf(&b, "phase %s", p->name);
        char d[64];
        scn_opt_format(scn_opt_find(scn_phase_opts, "duration"), p, d, sizeof d);
        scn_buf_printf(&b, " %s", d + strlen("duration="));
        for (const scn_opt *o = scn_phase_opts; o->name; o++) {
            if (!strcmp(o->name, "duration")) continue;
            char kv[128];
            scn_opt_format(o, p, kv, sizeof kv);
            scn_buf_printf(&b, " %s", kv);
        }
        scn_buf_puts(&b, "\n");
    }
    for (size_t i = 0; i < s->n_actions; i++) {
        const scn_action *a = &s->actions[i];
        char t[96];
        int64_t off = a->offset_ms;
        char d[32];
        if (off % 1000 == 0)
            scn_fmt(d, sizeof d, "%llds", (long long)(off / 1000));
        else
            scn_fmt(d, sizeof d, "%lldms", (long long)off);
        if (a->phase >= 0)
            scn_fmt(t, sizeof t, "%s+%s", s->phases[a->phase].name, d);
        else
            scn_fmt(t, sizeof t, "%s", d);
        scn_buf_printf(&b, "at %s ", t);
        switch (a->kind) {
        case SCN_ACT_SWITCH:
            scn_buf_puts(&b, "switch");
            fmt_opts(&b, scn_watcher_opts, &a->sw, a->sw.set, true);
            break;
        case SCN_ACT_COMPACT:
            if (a->every_ms)
                scn_buf_printf(&b, "compact every=%lldms keep=%lld", (long long)a->every_ms,
                               (long long)a->keep);
            else
                scn_buf_printf(&b, "compact once keep=%lld", (long long)a->keep);
            break;
        case SCN_ACT_RESTART_SERVER:
            scn_buf_printf(&b, "restart-server down=%lldms", (long long)a->down_ms);
            break;
        case SCN_ACT_DROP_CONNECTIONS:
            scn_buf_printf(&b, "drop-connections fraction=%g", a->fraction);
            break;
        case SCN_ACT_HOLD:
            scn_buf_printf(&b, "hold fraction=%g for=%lldms", a->fraction, (long long)a->for_ms);
            break;
        case SCN_ACT_VERIFY:
            scn_buf_puts(&b, "verify");
            break;
        }
        scn_buf_puts(&b, "\n");
    }
    for (size_t i = 0; i < s->n_expects; i++) {
        const scn_expect *e = &s->expects[i];
        scn_buf_puts(&b, "expect");
        if (e->phase[0]) scn_buf_printf(&b, " phase=%s", e->phase);
        if (e->mode[0]) scn_buf_printf(&b, " mode=%s", e->mode);
        scn_buf_puts(&b, " ");
        fmt_ref(&b, &e->lhs);
        scn_buf_printf(&b, " %s %.17g", scn_op_name(e->op), e->k);
        if (e->rhs_is_ref) {
            scn_buf_puts(&b, " * ");
            fmt_ref(&b, &e->rhs);
        }
        if (e->when.set) {
            scn_buf_puts(&b, " when");
            fmt_opts(&b, scn_watcher_opts, &e->when, e->when.set, true);
        }
        scn_buf_puts(&b, "\n");
    }
    scn_buf_puts(&b, "slo");
    fmt_opts(&b, scn_slo_opts, &s->slo, 0, false);
    scn_buf_puts(&b, "\nreport");
    fmt_opts(&b, scn_report_opts, &s->report, 0, false);
    scn_buf_puts(&b, "\n");
    if (!s->short_applied)
        for (size_t i = 0; i < s->n_shorts; i++)
            scn_buf_printf(&b, "short %s\n", s->shorts[i]);
    return scn_buf_take(&b);
}
