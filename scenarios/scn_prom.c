/* scn_prom.c — a parser for the Prometheus text exposition format (what kvstore's and etcd's
 * /metrics serve) and the queries the sampler needs: sums of matching series and histograms
 * aggregated across series by their `le` bound.
 *
 * Lenient where servers differ harmlessly (blanks inside braces, a trailing comma, unknown
 * comment lines, missing TYPE lines); strict where a misread would give a wrong number (label
 * escapes, values, timestamps). Every sample owns its strings; scn_prom_free releases all. */
#include "scn_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool name_start(int c) {
    return isalpha(c) || c == '_' || c == ':';
}
static bool name_char(int c) {
    return isalnum(c) || c == '_' || c == ':';
}

typedef struct lexer {
    const char *p, *end;
    size_t line;
    char *err;
    size_t cap;
} lexer;

static int fail(lexer *l, const char *what) {
    snprintf(l->err, l->cap, "line %zu: %s", l->line, what);
    return -1;
}

static void skip_blanks(lexer *l) {
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t'))
        l->p++;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* A value: a float, NaN, +Inf, -Inf (Go's ParseFloat spellings). */
static int parse_value(const char *s, size_t n, double *out) {
    char tmp[64];
    if (n == 0 || n >= sizeof tmp) return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (!strcasecmp(tmp, "NaN")) {
        *out = NAN;
        return 0;
    }
    if (!strcasecmp(tmp, "+Inf") || !strcasecmp(tmp, "Inf")) {
        *out = INFINITY;
        return 0;
    }
    if (!strcasecmp(tmp, "-Inf")) {
        *out = -INFINITY;
        return 0;
    }
    char *e;
    errno = 0;
    double v = strtod(tmp, &e);
    if (*e || e == tmp) return -1;
    *out = v;
    return 0;
}

static void free_sample(scn_prom_sample *s) {
    free(s->name);
    for (size_t i = 0; i < s->n_labels; i++) {
        free(s->labels[i].name);
        free(s->labels[i].value);
    }
    free(s->labels);
}

/* name{labels} value [timestamp] — l->p at the name; the line ends at l->end. */
static int parse_sample(lexer *l, scn_prom_sample *s) {
    const char *p0 = l->p;
    if (!name_start((unsigned char)*l->p)) return fail(l, "expected a metric name");
    while (l->p < l->end && name_char((unsigned char)*l->p))
        l->p++;
    if (!(s->name = dup_n(p0, (size_t)(l->p - p0)))) return fail(l, "out of memory");
    skip_blanks(l);
    if (l->p < l->end && *l->p == '{') {
        l->p++;
        for (;;) {
            skip_blanks(l);
            if (l->p < l->end && *l->p == '}') {
                l->p++;
                break;
            }
            const char *n0 = l->p;
            if (l->p >= l->end || !name_start((unsigned char)*l->p))
                return fail(l, "expected a label name or '}'");
            while (l->p < l->end && name_char((unsigned char)*l->p))
                l->p++;
            size_t nlen = (size_t)(l->p - n0);
            skip_blanks(l);
            if (l->p >= l->end || *l->p != '=') return fail(l, "expected '=' after a label name");
            l->p++;
            skip_blanks(l);
            if (l->p >= l->end || *l->p != '"')
                return fail(l, "expected '\"' to open a label value");
            l->p++;
            /* the unescaped value is never longer than the escaped one */
            const char *v0 = l->p;
            while (l->p < l->end && *l->p != '"')
                l->p += (*l->p == '\\' && l->p + 1 < l->end) ? 2 : 1;
            if (l->p >= l->end) return fail(l, "unterminated label value");
            char *val = malloc((size_t)(l->p - v0) + 1);
            if (!val) return fail(l, "out of memory");
            size_t o = 0;
            for (const char *q = v0; q < l->p; q++) {
                if (*q == '\\') {
                    q++;
                    if (*q == 'n')
                        val[o++] = '\n';
                    else if (*q == '\\' || *q == '"')
                        val[o++] = *q;
                    else {
                        free(val);
                        return fail(l, "bad escape in a label value (expected \\\\, \\\" or \\n)");
                    }
                } else {
                    val[o++] = *q;
                }
            }
            val[o] = 0;
            l->p++; /* closing quote */
            scn_prom_label *nl = realloc(s->labels, (s->n_labels + 1) * sizeof *nl);
            char *name = dup_n(n0, nlen);
            if (!nl || !name) {
                if (nl) s->labels = nl;
                free(val);
                free(name);
                return fail(l, "out of memory");
            }
            s->labels = nl;
            s->labels[s->n_labels].name = name;
            s->labels[s->n_labels].value = val;
            s->n_labels++;
            skip_blanks(l);
            if (l->p < l->end && *l->p == ',') {
                l->p++;
                continue;
            }
            if (l->p < l->end && *l->p == '}') {
                l->p++;
                break;
            }
            return fail(l, "expected ',' or '}' after a label value");
        }
    }
    skip_blanks(l);
    const char *v0 = l->p;
    while (l->p < l->end && *l->p != ' ' && *l->p != '\t')
        l->p++;
    if (parse_value(v0, (size_t)(l->p - v0), &s->value))
        return fail(l, "expected a sample value (a number, NaN, +Inf or -Inf)");
    skip_blanks(l);
    if (l->p < l->end) {
        const char *t0 = l->p;
        while (l->p < l->end && *l->p != ' ' && *l->p != '\t')
            l->p++;
        char tmp[32];
        size_t n = (size_t)(l->p - t0);
        char *e;
        if (n >= sizeof tmp) return fail(l, "bad timestamp");
        memcpy(tmp, t0, n);
        tmp[n] = 0;
        errno = 0;
        long long ts = strtoll(tmp, &e, 10);
        if (*e || errno) return fail(l, "bad timestamp (expected milliseconds)");
        s->timestamp_ms = ts;
        skip_blanks(l);
        if (l->p < l->end) return fail(l, "unexpected text after the timestamp");
    }
    return 0;
}

static scn_prom_type type_of(const char *s, size_t n) {
    static const struct {
        const char *name;
        scn_prom_type t;
    } types[] = {{"counter", SCN_PROM_COUNTER},
                 {"gauge", SCN_PROM_GAUGE},
                 {"histogram", SCN_PROM_HISTOGRAM},
                 {"summary", SCN_PROM_SUMMARY},
                 {"untyped", SCN_PROM_UNTYPED}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strlen(types[i].name) == n && !strncmp(types[i].name, s, n)) return types[i].t;
    return (scn_prom_type)-1;
}

/* "# TYPE name type": recorded; other comments ignored. */
static int parse_comment(lexer *l, scn_prom *out) {
    l->p++;
    skip_blanks(l);
    if (l->end - l->p < 4 || strncmp(l->p, "TYPE", 4) != 0 ||
        (l->p + 4 < l->end && l->p[4] != ' ' && l->p[4] != '\t'))
        return 0;
    l->p += 4;
    skip_blanks(l);
    const char *n0 = l->p;
    while (l->p < l->end && name_char((unsigned char)*l->p))
        l->p++;
    size_t nlen = (size_t)(l->p - n0);
    if (!nlen) return fail(l, "expected a metric name after # TYPE");
    skip_blanks(l);
    const char *t0 = l->p;
    while (l->p < l->end && *l->p != ' ' && *l->p != '\t')
        l->p++;
    scn_prom_type t = type_of(t0, (size_t)(l->p - t0));
    if ((int)t < 0)
        return fail(l,
                    "unknown metric type (expected counter, gauge, histogram, summary or untyped)");
    scn_prom_family *f = realloc(out->families, (out->n_families + 1) * sizeof *f);
    if (!f) return fail(l, "out of memory");
    out->families = f;
    if (!(f[out->n_families].name = dup_n(n0, nlen))) return fail(l, "out of memory");
    f[out->n_families++].type = t;
    return 0;
}

int scn_prom_parse(const char *text, size_t len, scn_prom *out, char *err, size_t err_cap) {
    memset(out, 0, sizeof *out);
    char dummy[8];
    if (!err || !err_cap) {
        err = dummy;
        err_cap = sizeof dummy;
    }
    err[0] = 0;
    size_t cap = 0;
    const char *p = text, *end = text + len;
    size_t line = 0;
    while (p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) e = end;
        const char *le = e;
        if (le > p && le[-1] == '\r') le--;
        line++;
        lexer l = {p, le, line, err, err_cap};
        skip_blanks(&l);
        int rc = 0;
        if (l.p < l.end) {
            if (*l.p == '#') {
                rc = parse_comment(&l, out);
            } else {
                if (out->n == cap) {
                    size_t nc = cap ? cap * 2 : 64;
                    scn_prom_sample *ns = realloc(out->samples, nc * sizeof *ns);
                    if (!ns) {
                        rc = fail(&l, "out of memory");
                        goto done;
                    }
                    out->samples = ns;
                    cap = nc;
                }
                scn_prom_sample *s = &out->samples[out->n];
                memset(s, 0, sizeof *s);
                rc = parse_sample(&l, s);
                if (rc)
                    free_sample(s);
                else
                    out->n++;
            }
        }
    done:
        if (rc) {
            scn_prom_free(out);
            return -1;
        }
        p = e + 1;
    }
    return 0;
}

void scn_prom_free(scn_prom *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n; i++)
        free_sample(&p->samples[i]);
    free(p->samples);
    for (size_t i = 0; i < p->n_families; i++)
        free(p->families[i].name);
    free(p->families);
    memset(p, 0, sizeof *p);
}

scn_prom_type scn_prom_family_type(const scn_prom *p, const char *family) {
    for (size_t i = 0; i < p->n_families; i++)
        if (!strcmp(p->families[i].name, family)) return p->families[i].type;
    return SCN_PROM_UNTYPED;
}

const char *scn_prom_label_value(const scn_prom_sample *s, const char *name) {
    for (size_t i = 0; i < s->n_labels; i++)
        if (!strcmp(s->labels[i].name, name)) return s->labels[i].value;
    return NULL;
}

bool scn_prom_match(const scn_prom_sample *s, const char *const *match) {
    for (size_t i = 0; match && match[i] && match[i + 1]; i += 2) {
        const char *v = scn_prom_label_value(s, match[i]);
        if (!v || strcmp(v, match[i + 1]) != 0) return false;
    }
    return true;
}

double scn_prom_sum(const scn_prom *p, const char *name, const char *const *match) {
    double sum = 0;
    bool any = false;
    for (size_t i = 0; i < p->n; i++) {
        const scn_prom_sample *s = &p->samples[i];
        if (strcmp(s->name, name) != 0 || !scn_prom_match(s, match)) continue;
        any = true;
        if (!isnan(s->value)) sum += s->value;
    }
    return any ? sum : NAN;
}

int scn_prom_histogram(const scn_prom *p, const char *family, const char *const *match,
                       scn_hist *out) {
    char bucket[192], sumname[192];
    snprintf(bucket, sizeof bucket, "%s_bucket", family);
    snprintf(sumname, sizeof sumname, "%s_sum", family);
    double le[SCN_HIST_MAX], cnt[SCN_HIST_MAX];
    size_t n = 0;
    bool any = false;
    for (size_t i = 0; i < p->n; i++) {
        const scn_prom_sample *s = &p->samples[i];
        if (strcmp(s->name, bucket) != 0 || !scn_prom_match(s, match)) continue;
        const char *les = scn_prom_label_value(s, "le");
        double b;
        if (!les || parse_value(les, strlen(les), &b) || isnan(b)) continue;
        any = true;
        size_t j = 0;
        while (j < n && le[j] < b)
            j++;
        if (j < n && le[j] == b) {
            cnt[j] += s->value;
            continue;
        }
        if (n == SCN_HIST_MAX) return -1;
        memmove(le + j + 1, le + j, (n - j) * sizeof le[0]);
        memmove(cnt + j + 1, cnt + j, (n - j) * sizeof cnt[0]);
        le[j] = b;
        cnt[j] = s->value;
        n++;
    }
    if (!any || !isinf(le[n - 1])) return -1; /* a histogram always has its +Inf bucket */
    memset(out, 0, sizeof *out);
    out->n = n;
    memcpy(out->le, le, n * sizeof le[0]);
    memcpy(out->cum, cnt, n * sizeof cnt[0]);
    double sum = scn_prom_sum(p, sumname, match);
    out->sum = isnan(sum) ? 0 : sum;
    return 0;
}
