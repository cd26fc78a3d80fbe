/* metrics.c — the Prometheus registry: families, series, lock-free updates, text rendering.
 * (The per-client table is in metrics_peers.c, the server's families in metrics_srv.c.)
 *
 * Key decisions:
 * - Series lookup is lock-free: each family has an open-addressing table of series pointers
 *   (load <= 1/2) that is only ever published whole. Inserts take the family mutex; growing
 *   publishes a doubled copy and keeps the old table until the registry is freed (a reader may
 *   still be probing it; the retired tables sum to less than the live one).
 * - Values are C11 atomics: counters are uint64 fetch-adds; gauges and histogram sums are the
 *   bits of a double updated by compare-exchange. A histogram stores per-bucket (not cumulative)
 *   counts; rendering accumulates them, so _count always equals the +Inf bucket.
 * - Series are never removed, so a handle is valid for the registry's lifetime and rendering can
 *   read values without stopping writers.
 */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double kvs_latency_buckets[KVS_LATENCY_BUCKETS_N] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

#define MAX_LABELS  16
#define MAX_BUCKETS 64

struct kvs_series {
    kvs_family *fam;
    uint64_t hash;
    char **values;        /* fam->nlabels strings */
    _Atomic uint64_t val; /* counter value, or the bits of a gauge value / histogram sum */
    kvs_value_fn fn;      /* under fam->mu */
    void *fn_ud;
    _Atomic uint64_t buckets[]; /* histograms: per-bucket counts, the last one is +Inf */
};

typedef struct stable {
    size_t mask;
    struct stable *retired; /* older, smaller tables still possibly being probed */
    _Atomic(kvs_series *) slot[];
} stable;

struct kvs_family {
    char *name, *help;
    kvs_metric_type type;
    size_t nlabels;
    char **labels;
    size_t nbuckets;
    double *bounds;
    char (*le)[32]; /* bounds formatted once */
    kvs_collect_fn collect;
    void *collect_ud;
    void (*free_ud)(void *);
    pthread_mutex_t mu;
    _Atomic(stable *) table;
    kvs_series **all; /* every series, re-sorted by label values at each render */
    size_t n, cap;
};

struct kvs_registry {
    pthread_mutex_t mu;
    kvs_family **fams; /* sorted by name */
    size_t n, cap;
};

static uint64_t dbits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bitsd(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static const char *val_at(const char *const *v, size_t i) {
    return v && v[i] ? v[i] : "";
}

static uint64_t hash_values(const char *const *v, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)val_at(v, i); *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL; /* separator: ("ab","") != ("a","b") */
    }
    return h;
}

static bool same_values(const kvs_series *s, const char *const *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->values[i], val_at(v, i)) != 0) return false;
    return true;
}

static stable *stable_new(size_t size) {
    stable *t = calloc(1, sizeof *t + size * sizeof(t->slot[0]));
    if (!t) return NULL;
    t->mask = size - 1;
    for (size_t i = 0; i < size; i++)
        atomic_init(&t->slot[i], NULL);
    return t;
}

static kvs_series *stable_find(stable *t, uint64_t h, const char *const *v, size_t n) {
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        kvs_series *s = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (!s) return NULL;
        if (s->hash == h && same_values(s, v, n)) return s;
    }
}

static void stable_put(stable *t, kvs_series *s) {
    size_t i = s->hash & t->mask;
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed))
        i = (i + 1) & t->mask;
    atomic_store_explicit(&t->slot[i], s, memory_order_release);
}

/* ---- validation ---------------------------------------------------------------------------- */

static bool valid_name(const char *s, bool colon_ok) {
    if (!s || !*s) return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon_ok && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

static size_t count_labels(const char *const *labels) {
    size_t n = 0;
    while (labels && labels[n])
        n++;
    return n;
}

static bool valid_labels(const char *const *labels, size_t n, kvs_metric_type type) {
    if (n > MAX_LABELS) return false;
    for (size_t i = 0; i < n; i++) {
        if (!valid_name(labels[i], false) || strncmp(labels[i], "__", 2) == 0) return false;
        if (type == KVS_HISTOGRAM && strcmp(labels[i], "le") == 0) return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[i], labels[j]) == 0) return false;
    }
    return true;
}

/* ---- families ------------------------------------------------------------------------------ */

static void series_free(kvs_series *s) {
    if (!s) return;
    free(s->values);
    free(s);
}

static void family_free(kvs_family *f) {
    if (!f) return;
    if (f->free_ud) f->free_ud(f->collect_ud);
    for (size_t i = 0; i < f->n; i++)
        series_free(f->all[i]);
    free(f->all);
    stable *t = atomic_load(&f->table);
    while (t) {
        stable *next = t->retired;
        free(t);
        t = next;
    }
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->labels);
    free(f->bounds);
    free(f->le);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

kvs_registry *kvs_registry_new(void) {
    kvs_registry *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void kvs_registry_free(kvs_registry *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++)
        family_free(r->fams[i]);
    free(r->fams);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static kvs_family *family_alloc(const char *name, const char *help, kvs_metric_type type,
                                const char *const *labels, size_t nlabels) {
    kvs_family *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    pthread_mutex_init(&f->mu, NULL);
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->labels = calloc(nlabels ? nlabels : 1, sizeof(char *));
    f->nlabels = nlabels;
    bool ok = f->name && f->help && f->labels;
    for (size_t i = 0; ok && i < nlabels; i++)
        ok = (f->labels[i] = strdup(labels[i])) != NULL;
    atomic_init(&f->table, stable_new(8));
    if (!ok || !atomic_load(&f->table)) {
        family_free(f);
        return NULL;
    }
    return f;
}

/* Finds a family by name (r->mu held); *pos receives the sorted insertion point. */
static kvs_family *registry_find(kvs_registry *r, const char *name, size_t *pos) {
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(r->fams[mid]->name, name);
        if (c == 0) return r->fams[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return NULL;
}

static int registry_insert(kvs_registry *r, kvs_family *f, size_t pos) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        kvs_family **p = realloc(r->fams, cap * sizeof *p);
        if (!p) return -1;
        r->fams = p;
        r->cap = cap;
    }
    memmove(r->fams + pos + 1, r->fams + pos, (r->n - pos) * sizeof *r->fams);
    r->fams[pos] = f;
    r->n++;
    return 0;
}

static bool same_definition(const kvs_family *f, kvs_metric_type type, const char *const *labels,
                            size_t nlabels, const double *b, size_t nb) {
    if (f->collect || f->type != type || f->nlabels != nlabels) return false;
    for (size_t i = 0; i < nlabels; i++)
        if (strcmp(f->labels[i], labels[i]) != 0) return false;
    if (type != KVS_HISTOGRAM) return true;
    if (f->nbuckets != nb) return false;
    for (size_t i = 0; i < nb; i++)
        if (f->bounds[i] != b[i]) return false;
    return true;
}

kvs_family *kvs_registry_family(kvs_registry *r, const char *name, const char *help,
                                kvs_metric_type type, const char *const *label_names,
                                const double *buckets, size_t n_buckets) {
    size_t nl = count_labels(label_names);
    if (!r || !valid_name(name, true) || type > KVS_HISTOGRAM ||
        !valid_labels(label_names, nl, type))
        return NULL;
    if (type == KVS_HISTOGRAM) {
        if (!buckets) {
            buckets = kvs_latency_buckets;
            n_buckets = KVS_LATENCY_BUCKETS_N;
        }
        if (n_buckets > 0 && isinf(buckets[n_buckets - 1]) && buckets[n_buckets - 1] > 0)
            n_buckets--; /* +Inf is implicit */
        if (n_buckets > MAX_BUCKETS) return NULL;
        for (size_t i = 0; i < n_buckets; i++)
            if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1]))) return NULL;
    } else {
        n_buckets = 0;
    }
    pthread_mutex_lock(&r->mu);
    size_t pos = 0;
    kvs_family *f = registry_find(r, name, &pos);
    if (f) {
        if (!same_definition(f, type, label_names, nl, buckets, n_buckets)) f = NULL;
        pthread_mutex_unlock(&r->mu);
        return f;
    }
    f = family_alloc(name, help, type, label_names, nl);
    if (f && n_buckets) {
        f->bounds = malloc(n_buckets * sizeof *f->bounds);
        f->le = malloc(n_buckets * sizeof *f->le);
        if (f->bounds && f->le) {
            f->nbuckets = n_buckets;
            for (size_t i = 0; i < n_buckets; i++) {
                f->bounds[i] = buckets[i];
                kvs_format_value(f->le[i], sizeof f->le[i], buckets[i]);
            }
        } else {
            family_free(f);
            f = NULL;
        }
    }
    if (f && registry_insert(r, f, pos) != 0) {
        family_free(f);
        f = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    if (f && nl == 0 && !kvs_family_series(f, NULL)) return NULL; /* stays registered, empty */
    return f;
}

kvs_family *kvs_registry_counter(kvs_registry *r, const char *name, const char *help,
                                 const char *const *label_names) {
    return kvs_registry_family(r, name, help, KVS_COUNTER, label_names, NULL, 0);
}

kvs_family *kvs_registry_gauge(kvs_registry *r, const char *name, const char *help,
                               const char *const *label_names) {
    return kvs_registry_family(r, name, help, KVS_GAUGE, label_names, NULL, 0);
}

kvs_family *kvs_registry_custom(kvs_registry *r, const char *name, const char *help,
                                kvs_metric_type type, kvs_collect_fn collect, void *ud,
                                void (*free_ud)(void *ud)) {
    if (!r || !collect || !valid_name(name, true) || type > KVS_HISTOGRAM) return NULL;
    pthread_mutex_lock(&r->mu);
    size_t pos = 0;
    kvs_family *f = NULL;
    if (!registry_find(r, name, &pos)) {
        f = family_alloc(name, help, type, NULL, 0);
        if (f) {
            f->collect = collect;
            f->collect_ud = ud;
            if (registry_insert(r, f, pos) != 0) {
                family_free(f);
                f = NULL;
            } else {
                f->free_ud = free_ud; /* only once registered: on failure the caller keeps ud */
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    return f;
}

/* ---- series -------------------------------------------------------------------------------- */

static kvs_series *series_new(kvs_family *f, uint64_t h, const char *const *v) {
    size_t nb = f->type == KVS_HISTOGRAM ? f->nbuckets + 1 : 0;
    kvs_series *s = calloc(1, sizeof *s + nb * sizeof(s->buckets[0]));
    if (!s) return NULL;
    size_t bytes = f->nlabels * sizeof(char *) + 1;
    for (size_t i = 0; i < f->nlabels; i++)
        bytes += strlen(val_at(v, i)) + 1;
    s->values = malloc(bytes);
    if (!s->values) {
        free(s);
        return NULL;
    }
    char *p = (char *)(s->values + f->nlabels);
    for (size_t i = 0; i < f->nlabels; i++) {
        size_t n = strlen(val_at(v, i)) + 1;
        memcpy(p, val_at(v, i), n);
        s->values[i] = p;
        p += n;
    }
    s->fam = f;
    s->hash = h;
    atomic_init(&s->val, 0);
    for (size_t i = 0; i < nb; i++)
        atomic_init(&s->buckets[i], 0);
    return s;
}

/* Adds s to the family (f->mu held). */
static int family_add(kvs_family *f, kvs_series *s) {
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        kvs_series **p = realloc(f->all, cap * sizeof *p);
        if (!p) return -1;
        f->all = p;
        f->cap = cap;
    }
    stable *t = atomic_load_explicit(&f->table, memory_order_relaxed);
    if ((f->n + 1) * 2 > t->mask + 1) {
        stable *g = stable_new((t->mask + 1) * 2);
        if (!g) return -1;
        for (size_t i = 0; i < f->n; i++)
            stable_put(g, f->all[i]);
        g->retired = t;
        atomic_store_explicit(&f->table, g, memory_order_release);
        t = g;
    }
    f->all[f->n++] = s;
    stable_put(t, s);
    return 0;
}

kvs_series *kvs_family_series(kvs_family *f, const char *const *label_values) {
    if (!f || f->collect) return NULL;
    uint64_t h = hash_values(label_values, f->nlabels);
    stable *t = atomic_load_explicit(&f->table, memory_order_acquire);
    kvs_series *s = stable_find(t, h, label_values, f->nlabels);
    if (s) return s;
    pthread_mutex_lock(&f->mu);
    t = atomic_load_explicit(&f->table, memory_order_relaxed);
    s = stable_find(t, h, label_values, f->nlabels);
    if (!s) {
        s = series_new(f, h, label_values);
        if (s && family_add(f, s) != 0) {
            series_free(s);
            s = NULL;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return s;
}

size_t kvs_family_series_count(kvs_family *f) {
    if (!f) return 0;
    pthread_mutex_lock(&f->mu);
    size_t n = f->n;
    pthread_mutex_unlock(&f->mu);
    return n;
}

void kvs_counter_add(kvs_series *s, uint64_t n) {
    if (s && s->fam->type == KVS_COUNTER)
        atomic_fetch_add_explicit(&s->val, n, memory_order_relaxed);
}

void kvs_gauge_set(kvs_series *s, double v) {
    if (s && s->fam->type == KVS_GAUGE)
        atomic_store_explicit(&s->val, dbits(v), memory_order_relaxed);
}

static void add_double(_Atomic uint64_t *a, double delta) {
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, dbits(bitsd(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void kvs_gauge_add(kvs_series *s, double delta) {
    if (s && s->fam->type == KVS_GAUGE) add_double(&s->val, delta);
}

void kvs_histogram_observe(kvs_series *s, double v) {
    if (!s || s->fam->type != KVS_HISTOGRAM) return;
    const double *b = s->fam->bounds;
    size_t lo = 0, hi = s->fam->nbuckets;
    while (lo < hi) { /* first bound >= v ("le" is inclusive); NaN lands in +Inf */
        size_t mid = (lo + hi) / 2;
        if (v <= b[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
    add_double(&s->val, v);
}

void kvs_series_set_fn(kvs_series *s, kvs_value_fn fn, void *ud) {
    if (!s || s->fam->type == KVS_HISTOGRAM) return;
    pthread_mutex_lock(&s->fam->mu);
    s->fn = fn;
    s->fn_ud = ud;
    pthread_mutex_unlock(&s->fam->mu);
}

uint64_t kvs_counter_value(const kvs_series *s) {
    return s && s->fam->type == KVS_COUNTER ? atomic_load(&s->val) : 0;
}

double kvs_gauge_value(const kvs_series *s) {
    return s && s->fam->type == KVS_GAUGE ? bitsd(atomic_load(&s->val)) : 0;
}

void kvs_histogram_read(const kvs_series *s, uint64_t *count, double *sum,
                        uint64_t *bucket_counts) {
    uint64_t c = 0;
    double su = 0;
    if (s && s->fam->type == KVS_HISTOGRAM) {
        for (size_t i = 0; i <= s->fam->nbuckets; i++) {
            c += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
            if (bucket_counts) bucket_counts[i] = c;
        }
        su = bitsd(atomic_load_explicit(&s->val, memory_order_relaxed));
    }
    if (count) *count = c;
    if (sum) *sum = su;
}

/* ---- rendering ----------------------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

struct kvs_sample_writer {
    buf *b;
    const kvs_family *f;
    size_t samples;
};

static void buf_put(buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(buf *b, const char *s) {
    buf_put(b, s, strlen(s));
}

/* Escapes \ and newline (HELP text), and " too in label values. */
static void buf_escaped(buf *b, const char *s, bool quote) {
    const char *run = s;
    for (; *s; s++) {
        const char *rep = *s == '\\'             ? "\\\\"
                          : *s == '\n'           ? "\\n"
                          : (quote && *s == '"') ? "\\\""
                                                 : NULL;
        if (!rep) continue;
        buf_put(b, run, (size_t)(s - run));
        buf_str(b, rep);
        run = s + 1;
    }
    buf_put(b, run, (size_t)(s - run));
}

int kvs_format_value(char *out, size_t size, double v) {
    if (isnan(v)) return snprintf(out, size, "NaN");
    if (isinf(v)) return snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
    if (v == floor(v) && fabs(v) < 1e15) return snprintf(out, size, "%.0f", v);
    int n = 0;
    for (int prec = 1; prec <= 17; prec++) { /* shortest text that reads back exactly */
        n = snprintf(out, size, "%.*g", prec, v);
        if (strtod(out, NULL) == v) break;
    }
    return n;
}

static void write_line(buf *b, const kvs_family *f, const char *suffix, const char *const *names,
                       const char *const *values, size_t n, const char *le, const char *value) {
    buf_str(b, f->name);
    buf_str(b, suffix);
    if (n || le) {
        buf_put(b, "{", 1);
        for (size_t i = 0; i < n; i++) {
            if (i) buf_put(b, ",", 1);
            buf_str(b, names[i]);
            buf_put(b, "=\"", 2);
            buf_escaped(b, val_at(values, i), true);
            buf_put(b, "\"", 1);
        }
        if (le) {
            buf_str(b, n ? ",le=\"" : "le=\"");
            buf_str(b, le);
            buf_put(b, "\"", 1);
        }
        buf_put(b, "}", 1);
    }
    buf_put(b, " ", 1);
    buf_str(b, value);
    buf_put(b, "\n", 1);
}

void kvs_sample_write(kvs_sample_writer *w, const char *suffix, const char *const *label_names,
                      const char *const *label_values, size_t n_labels, double value) {
    if (!w) return;
    char num[40];
    kvs_format_value(num, sizeof num, value);
    write_line(w->b, w->f, suffix ? suffix : "", label_names, label_values, n_labels, NULL, num);
    w->samples++;
}

static int cmp_series(const void *a, const void *b) {
    const kvs_series *x = *(kvs_series *const *)a, *y = *(kvs_series *const *)b;
    for (size_t i = 0; i < x->fam->nlabels; i++) {
        int c = strcmp(x->values[i], y->values[i]);
        if (c) return c;
    }
    return 0;
}

static void render_series(buf *b, const kvs_family *f, const kvs_series *s) {
    const char *const *names = (const char *const *)f->labels;
    const char *const *vals = (const char *const *)s->values;
    char num[40];
    if (f->type == KVS_COUNTER) {
        uint64_t v = atomic_load_explicit(&s->val, memory_order_relaxed);
        if (s->fn) {
            double d = s->fn(s->fn_ud);
            v = d > 0 && d < 1.8e19 ? (uint64_t)d : 0;
        }
        snprintf(num, sizeof num, "%" PRIu64, v);
        write_line(b, f, "", names, vals, f->nlabels, NULL, num);
    } else if (f->type == KVS_GAUGE) {
        double d =
            s->fn ? s->fn(s->fn_ud) : bitsd(atomic_load_explicit(&s->val, memory_order_relaxed));
        kvs_format_value(num, sizeof num, d);
        write_line(b, f, "", names, vals, f->nlabels, NULL, num);
    } else {
        uint64_t cum = 0;
        for (size_t i = 0; i <= f->nbuckets; i++) {
            cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
            snprintf(num, sizeof num, "%" PRIu64, cum);
            write_line(b, f, "_bucket", names, vals, f->nlabels,
                       i < f->nbuckets ? f->le[i] : "+Inf", num);
        }
        kvs_format_value(num, sizeof num,
                         bitsd(atomic_load_explicit(&s->val, memory_order_relaxed)));
        write_line(b, f, "_sum", names, vals, f->nlabels, NULL, num);
        snprintf(num, sizeof num, "%" PRIu64, cum);
        write_line(b, f, "_count", names, vals, f->nlabels, NULL, num);
    }
}

static const char *type_name(kvs_metric_type t) {
    return t == KVS_COUNTER ? "counter" : t == KVS_GAUGE ? "gauge" : "histogram";
}

static void render_family(buf *b, kvs_family *f) {
    size_t mark = b->len;
    buf_str(b, "# HELP ");
    buf_str(b, f->name);
    buf_put(b, " ", 1);
    buf_escaped(b, f->help, false);
    buf_str(b, "\n# TYPE ");
    buf_str(b, f->name);
    buf_put(b, " ", 1);
    buf_str(b, type_name(f->type));
    buf_put(b, "\n", 1);
    pthread_mutex_lock(&f->mu);
    size_t samples = f->n;
    if (f->collect) {
        kvs_sample_writer w = {b, f, 0};
        f->collect(f->collect_ud, &w);
        samples = w.samples;
    } else {
        /* Sorting the family's own array is safe under f->mu: readers use the hash table. */
        if (f->n > 1) qsort(f->all, f->n, sizeof *f->all, cmp_series);
        for (size_t i = 0; i < f->n; i++)
            render_series(b, f, f->all[i]);
    }
    pthread_mutex_unlock(&f->mu);
    if (samples == 0 && !b->oom) { /* like the Go client: an empty family is not exposed */
        b->len = mark;
        if (b->p) b->p[mark] = '\0';
    }
}

int kvs_registry_render(kvs_registry *r, char **text, size_t *len) {
    if (!r || !text) return -1;
    buf b = {0};
    buf_put(&b, "", 0);
    pthread_mutex_lock(&r->mu); /* families are never removed; holding r->mu keeps the list still */
    for (size_t i = 0; i < r->n; i++)
        render_family(&b, r->fams[i]);
    pthread_mutex_unlock(&r->mu);
    if (b.oom) {
        free(b.p);
        return -1;
    }
    *text = b.p;
    if (len) *len = b.len;
    return 0;
}
