/* scn_values.c — value syntax (durations, rates, counts, sizes, fractions, backoff specs) and
 * the option tables. One table per statement drives the script parser, `--set` and `switch`
 * alike, so a key accepted in one place is accepted with the same meaning everywhere and every
 * rejection can say what was expected. The enum spellings match watcher/refl.h's parsers
 * (refl_key_mode_parse, refl_miss_policy_parse, refl_backoff_parse), which the runner applies;
 * they are repeated here so that checking a script needs no watcher code. */
#include "scn_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A finite decimal number followed by a suffix; end points at the suffix. */
static int number_prefix(const char *s, double *v, const char **end) {
    if (!s || !*s || isspace((unsigned char)*s)) return -1;
    char *e;
    errno = 0;
    double x = strtod(s, &e);
    if (e == s || errno == ERANGE || !isfinite(x)) return -1;
    /* strtod accepts hex and inf/nan spellings; scripts only use plain decimals */
    for (const char *p = s; p < e; p++)
        if (!(isdigit((unsigned char)*p) || *p == '.' || *p == '-' || *p == '+' || *p == 'e' ||
              *p == 'E'))
            return -1;
    *v = x;
    *end = e;
    return 0;
}

int scn_parse_number(const char *s, double *out) {
    double v;
    const char *e;
    if (number_prefix(s, &v, &e) != 0) return -1;
    if (!strcmp(e, "k") || !strcmp(e, "K"))
        v *= 1e3;
    else if (!strcmp(e, "M"))
        v *= 1e6;
    else if (*e)
        return -1;
    *out = v;
    return 0;
}

int scn_parse_duration_ms(const char *s, int64_t *out) {
    double v;
    const char *e;
    if (number_prefix(s, &v, &e) != 0 || v < 0) return -1;
    double mul;
    if (!strcmp(e, "ms"))
        mul = 1;
    else if (!strcmp(e, "s"))
        mul = 1000;
    else if (!strcmp(e, "m") || !strcmp(e, "min"))
        mul = 60000;
    else if (!strcmp(e, "h"))
        mul = 3600000;
    else if (!*e && v == 0)
        mul = 0;
    else
        return -1;
    double ms = v * mul;
    if (ms > 9.0e15) return -1;
    *out = (int64_t)llround(ms);
    return 0;
}

int scn_parse_rate(const char *s, double *per_second) {
    double v;
    const char *e;
    if (number_prefix(s, &v, &e) != 0 || v < 0) return -1;
    if (!*e || !strcmp(e, "/s"))
        *per_second = v;
    else if (!strcmp(e, "/m") || !strcmp(e, "/min"))
        *per_second = v / 60.0;
    else if (!strcmp(e, "/h"))
        *per_second = v / 3600.0;
    else
        return -1;
    return 0;
}

int scn_parse_count(const char *s, int64_t *out) {
    double v;
    if (scn_parse_number(s, &v) != 0 || v < 0 || v != floor(v) || v > 9.0e15) return -1;
    *out = (int64_t)v;
    return 0;
}

int scn_parse_size(const char *s, int64_t *out) {
    double v;
    const char *e;
    if (number_prefix(s, &v, &e) != 0 || v < 0) return -1;
    double mul;
    if (!*e || !strcasecmp(e, "b"))
        mul = 1;
    else if (!strcasecmp(e, "k") || !strcasecmp(e, "kb") || !strcasecmp(e, "kib"))
        mul = 1024;
    else if (!strcasecmp(e, "m") || !strcasecmp(e, "mb") || !strcasecmp(e, "mib"))
        mul = 1024.0 * 1024;
    else
        return -1;
    double b = v * mul;
    if (b != floor(b) || b > 9.0e15) return -1;
    *out = (int64_t)b;
    return 0;
}

int scn_parse_bound(const char *s, bool ms, double *out) {
    if (scn_parse_number(s, out) == 0) return 0;
    int64_t d;
    if (ms && scn_parse_duration_ms(s, &d) == 0) {
        *out = (double)d;
        return 0;
    }
    /* a leading minus for durations is never meaningful; plain negatives parse above */
    return -1;
}

/* none | client-go | exp:INITIAL,MAX,FACTOR,JITTER[,RESET] */
static int check_backoff(const char *s) {
    if (!strcmp(s, "none") || !strcmp(s, "client-go")) return 0;
    if (strncmp(s, "exp:", 4) != 0) return -1;
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s", s + 4);
    char *fields[6];
    size_t n = 0;
    for (char *p = tmp, *tok; (tok = strsep(&p, ","));) {
        if (n == 6) return -1;
        fields[n++] = tok;
    }
    if (n < 4 || n > 5) return -1;
    int64_t d;
    double x;
    if (scn_parse_duration_ms(fields[0], &d) || scn_parse_duration_ms(fields[1], &d)) return -1;
    if (scn_parse_number(fields[2], &x) || x < 1) return -1;
    if (scn_parse_number(fields[3], &x) || x < 0) return -1;
    if (n == 5 && scn_parse_duration_ms(fields[4], &d)) return -1;
    return 0;
}

bool scn_is_ident(const char *s) {
    if (!s || !isalnum((unsigned char)*s)) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.') return false;
    return true;
}

static const char *const key_modes[] = {"namespaced", "name", "mismatch", "uid", NULL};
static const char *const miss_policies[] = {"relist", "get", "ignore", NULL};

#define W(f) offsetof(scn_watchers, f)
const scn_opt scn_watcher_opts[] = {
    {"count", SCN_OT_COUNT, W(count), 0, SCN_W_COUNT, NULL},
    {"prefix", SCN_OT_PREFIX, W(prefix), sizeof((scn_watchers *)0)->prefix, SCN_W_PREFIX, NULL},
    {"key-mode", SCN_OT_ENUM, W(key_mode), sizeof((scn_watchers *)0)->key_mode, SCN_W_KEY_MODE,
     key_modes},
    {"on-miss", SCN_OT_ENUM, W(on_miss), sizeof((scn_watchers *)0)->on_miss, SCN_W_ON_MISS,
     miss_policies},
    {"backoff", SCN_OT_BACKOFF, W(backoff), sizeof((scn_watchers *)0)->backoff, SCN_W_BACKOFF,
     NULL},
    {"qps", SCN_OT_NUMBER, W(qps), 0, SCN_W_QPS, NULL},
    {"burst", SCN_OT_NUMBER, W(burst), 0, SCN_W_BURST, NULL},
    {"page-size", SCN_OT_COUNT, W(page_size), 0, SCN_W_PAGE_SIZE, NULL},
    {"conns", SCN_OT_COUNT, W(conns), 0, SCN_W_CONNS, NULL},
    {"resync", SCN_OT_DURATION, W(resync_ms), 0, SCN_W_RESYNC, NULL},
    {"timeout", SCN_OT_DURATION, W(timeout_ms), 0, SCN_W_TIMEOUT, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};
#undef W

#define S(f) offsetof(scn_seed, f)
const scn_opt scn_seed_opts[] = {
    {"namespaces", SCN_OT_COUNT, S(namespaces), 0, 0, NULL},
    {"per-namespace", SCN_OT_COUNT, S(per_namespace), 0, 0, NULL},
    {"value-size", SCN_OT_SIZE, S(value_size), 0, 0, NULL},
    {"shared-names", SCN_OT_FRACTION, S(shared_names), 0, 0, NULL},
    {"prefix", SCN_OT_STRING, S(prefix), sizeof((scn_seed *)0)->prefix, 0, NULL},
    {"resource", SCN_OT_STRING, S(resource), sizeof((scn_seed *)0)->resource, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};
#undef S

#define P(f) offsetof(scn_phase, f)
const scn_opt scn_phase_opts[] = {
    {"create", SCN_OT_RATE, P(create), 0, 0, NULL},
    {"update", SCN_OT_RATE, P(update), 0, 0, NULL},
    {"delete", SCN_OT_RATE, P(del), 0, 0, NULL},
    {"hot-namespaces", SCN_OT_FRACTION, P(hot_namespaces), 0, 0, NULL},
    {"writers", SCN_OT_COUNT, P(writers), 0, 0, NULL},
    {"value-size", SCN_OT_SIZE, P(value_size), 0, 0, NULL},
    {"duration", SCN_OT_DURATION, P(duration_ms), 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};
#undef P

const scn_opt scn_slo_opts[] = {
    {"list", SCN_OT_DURATION, offsetof(scn_slo, list_ms), 0, 0, NULL},
    {"get", SCN_OT_DURATION, offsetof(scn_slo, get_ms), 0, 0, NULL},
    {"put", SCN_OT_DURATION, offsetof(scn_slo, put_ms), 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

const scn_opt scn_report_opts[] = {
    {"log-scale", SCN_OT_TRISTATE, offsetof(scn_report_cfg, log_scale), 0, 0, NULL},
    {"by-phase", SCN_OT_TRISTATE, offsetof(scn_report_cfg, by_phase), 0, 0, NULL},
    {"window", SCN_OT_STRING, offsetof(scn_report_cfg, window), sizeof((scn_report_cfg *)0)->window,
     0, NULL},
    {NULL, 0, 0, 0, 0, NULL},
};

void scn_opt_names(const scn_opt *table, char *buf, size_t cap) {
    size_t len = 0;
    if (cap) buf[0] = 0;
    for (const scn_opt *o = table; o->name; o++) {
        int n =
            snprintf(buf + len, len < cap ? cap - len : 0, "%s%s", o == table ? "" : ", ", o->name);
        if (n > 0) len += (size_t)n;
        if (len >= cap) break;
    }
}

const scn_opt *scn_opt_find(const scn_opt *table, const char *key) {
    char norm[64];
    size_t i = 0;
    for (; key[i] && i + 1 < sizeof norm; i++)
        norm[i] = key[i] == '_' ? '-' : key[i];
    norm[i] = 0;
    for (const scn_opt *o = table; o->name; o++)
        if (!strcmp(o->name, norm)) return o;
    return NULL;
}

static void choices_text(const char *const *c, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = 0;
    for (size_t i = 0; c[i]; i++) {
        int n = snprintf(buf + len, len < cap ? cap - len : 0, "%s%s", i ? " | " : "", c[i]);
        if (n > 0) len += (size_t)n;
        if (len >= cap) break;
    }
}

int scn_opt_set(const scn_opt *table, void *base, uint32_t *set, const char *key, const char *value,
                char *err, size_t cap) {
    const scn_opt *o = scn_opt_find(table, key);
    if (!o) {
        char names[256];
        scn_opt_names(table, names, sizeof names);
        snprintf(err, cap, "unknown option '%s' (expected one of: %s)", key, names);
        return -1;
    }
    char *p = (char *)base + o->off;
    int64_t i64;
    double d;
    const char *want = NULL;
    switch (o->type) {
    case SCN_OT_COUNT:
        if (scn_parse_count(value, &i64) == 0)
            memcpy(p, &i64, sizeof i64);
        else
            want = "a whole number like 200 or 2k";
        break;
    case SCN_OT_SIZE:
        if (scn_parse_size(value, &i64) == 0)
            memcpy(p, &i64, sizeof i64);
        else
            want = "a size in bytes like 1024 or 4k";
        break;
    case SCN_OT_NUMBER:
        if (scn_parse_number(value, &d) == 0 && d >= 0)
            memcpy(p, &d, sizeof d);
        else
            want = "a non-negative number like 5 or 0.5";
        break;
    case SCN_OT_FRACTION:
        if (scn_parse_number(value, &d) == 0 && d >= 0 && d <= 1)
            memcpy(p, &d, sizeof d);
        else
            want = "a fraction between 0 and 1 like 0.8";
        break;
    case SCN_OT_DURATION:
        if (scn_parse_duration_ms(value, &i64) == 0)
            memcpy(p, &i64, sizeof i64);
        else
            want = "a duration like 30s, 500ms or 2m";
        break;
    case SCN_OT_RATE:
        if (scn_parse_rate(value, &d) == 0)
            memcpy(p, &d, sizeof d);
        else
            want = "a rate like 20/s, 120/m or 5";
        break;
    case SCN_OT_ENUM: {
        bool ok = false;
        for (size_t i = 0; o->choices[i]; i++)
            if (!strcmp(o->choices[i], value)) ok = true;
        if (ok) {
            snprintf(p, o->size, "%s", value);
        } else {
            char c[128];
            choices_text(o->choices, c, sizeof c);
            snprintf(err, cap, "bad %s '%s' (expected %s)", o->name, value, c);
            return -2;
        }
        break;
    }
    case SCN_OT_BACKOFF:
        if (strlen(value) < o->size && check_backoff(value) == 0)
            snprintf(p, o->size, "%s", value);
        else
            want = "none | client-go | exp:INITIAL,MAX,FACTOR,JITTER[,RESET] like "
                   "exp:800ms,30s,2,0";
        break;
    case SCN_OT_PREFIX:
        if (strlen(value) < o->size &&
            (!strcmp(value, "namespace") || !strcmp(value, "all") || value[0] == '/'))
            snprintf(p, o->size, "%s", value);
        else
            want = "namespace | all | a key prefix starting with '/'";
        break;
    case SCN_OT_STRING:
        if (strlen(value) < o->size)
            snprintf(p, o->size, "%s", value);
        else
            want = "a shorter text";
        break;
    case SCN_OT_TRISTATE: {
        int v = -2;
        if (!strcmp(value, "auto")) v = -1;
        if (!strcmp(value, "off") || !strcmp(value, "no") || !strcmp(value, "0")) v = 0;
        if (!strcmp(value, "on") || !strcmp(value, "yes") || !strcmp(value, "1")) v = 1;
        if (v == -2)
            want = "auto | on | off";
        else
            memcpy(p, &v, sizeof v);
        break;
    }
    }
    if (want) {
        snprintf(err, cap, "bad %s '%s' (expected %s)", o->name, value, want);
        return -2;
    }
    if (set) *set |= o->bit;
    return 0;
}

static void fmt_duration(int64_t ms, char *buf, size_t cap) {
    if (ms == 0)
        snprintf(buf, cap, "0");
    else if (ms % 3600000 == 0)
        snprintf(buf, cap, "%lldh", (long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        snprintf(buf, cap, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, cap, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, cap, "%lldms", (long long)ms);
}

size_t scn_opt_format(const scn_opt *o, const void *base, char *buf, size_t cap) {
    const char *p = (const char *)base + o->off;
    char v[160];
    int64_t i64;
    double d;
    int t;
    switch (o->type) {
    case SCN_OT_COUNT:
    case SCN_OT_SIZE:
        memcpy(&i64, p, sizeof i64);
        snprintf(v, sizeof v, "%lld", (long long)i64);
        break;
    case SCN_OT_NUMBER:
    case SCN_OT_FRACTION:
        memcpy(&d, p, sizeof d);
        snprintf(v, sizeof v, "%g", d);
        break;
    case SCN_OT_RATE:
        memcpy(&d, p, sizeof d);
        snprintf(v, sizeof v, "%g/s", d);
        break;
    case SCN_OT_DURATION:
        memcpy(&i64, p, sizeof i64);
        fmt_duration(i64, v, sizeof v);
        break;
    case SCN_OT_TRISTATE:
        memcpy(&t, p, sizeof t);
        snprintf(v, sizeof v, "%s", t < 0 ? "auto" : t ? "on" : "off");
        break;
    default: {
        bool plain = *p != 0;
        for (const char *c = p; *c; c++)
            if (*c == ' ' || *c == '"' || *c == '#' || *c == '=') plain = false;
        if (plain)
            snprintf(v, sizeof v, "%s", p);
        else
            snprintf(v, sizeof v, "\"%s\"", p);
    }
    }
    return (size_t)snprintf(buf, cap, "%s=%s", o->name, v);
}

void scn_watchers_defaults(scn_watchers *w) {
    memset(w, 0, sizeof *w);
    w->count = 100;
    snprintf(w->prefix, sizeof w->prefix, "namespace");
    snprintf(w->key_mode, sizeof w->key_mode, "namespaced");
    snprintf(w->on_miss, sizeof w->on_miss, "relist");
    snprintf(w->backoff, sizeof w->backoff, "none");
    w->qps = 0;
    w->burst = 10;
    w->page_size = 500;
    w->conns = 0;
    w->resync_ms = 0;
    w->timeout_ms = 60000;
}

void scn_watchers_merge(scn_watchers *dst, const scn_watchers *over) {
    for (const scn_opt *o = scn_watcher_opts; o->name; o++) {
        if (!(over->set & o->bit)) continue;
        size_t n = o->size;
        if (!n) n = (o->type == SCN_OT_NUMBER) ? sizeof(double) : sizeof(int64_t);
        memcpy((char *)dst + o->off, (const char *)over + o->off, n);
        dst->set |= o->bit;
    }
}
