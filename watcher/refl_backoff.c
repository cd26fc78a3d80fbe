/* refl_backoff.c — the reflector's retry backoff, its configuration strings, durations, and
 * the seeded PRNG that makes jitter reproducible.
 *
 * Behaviour follows client-go's reflector (wait.NewExponentialBackoffManager(800ms, 30s, 2m,
 * 2.0, 1.0)) as read in k8s.io/apimachinery: Backoff.Step returns the current d jittered and
 * multiplies d by the factor for next time, clamping d (not the jittered sleep) at the cap;
 * the manager resets d to the initial value when more than the reset window passed since the
 * previous backoff. Jitter: sleep = d + uniform[0,1) * jitter * d. Time is the caller's now_ms.
 * The PRNG is splitmix64: tiny, good enough for jitter, and one state word per reflector. */
#include "refl_internal.h"

#include <stdio.h>
#include <string.h>

void refl_rng_seed(refl_rng *r, uint64_t seed) {
    r->state = seed;
}

uint64_t refl_rng_next(refl_rng *r) {
    r->state += 0x9e3779b97f4a7c15ULL;
    return refl_hash_mix(r->state);
}

double refl_rng_uniform(refl_rng *r) {
    return (double)(refl_rng_next(r) >> 11) * 0x1.0p-53;
}

/* A plain decimal "123" or "1.25" (no sign, exponent, inf/nan; locale-independent). Returns
 * the number of characters used, 0 if none. */
static size_t parse_decimal(const char *s, double *out) {
    size_t i = 0;
    double v = 0;
    int digits = 0;
    while (s[i] >= '0' && s[i] <= '9') {
        v = v * 10 + (s[i++] - '0');
        digits++;
    }
    if (s[i] == '.') {
        double scale = 0.1;
        size_t j = i + 1;
        int frac = 0;
        while (s[j] >= '0' && s[j] <= '9') {
            v += (s[j++] - '0') * scale;
            scale /= 10;
            frac++;
        }
        if (frac) {
            i = j;
            digits += frac;
        }
    }
    if (!digits || v > 1e15) return 0;
    *out = v;
    return i;
}

int refl_parse_duration_ms(const char *s, int64_t *out_ms) {
    double v;
    size_t i;
    if (!s || !(i = parse_decimal(s, &v))) return -1;
    const char *u = s + i;
    double mul;
    if (!strcmp(u, "ms"))
        mul = 1;
    else if (!strcmp(u, "s"))
        mul = 1000;
    else if (!strcmp(u, "m"))
        mul = 60e3;
    else if (!strcmp(u, "h"))
        mul = 3600e3;
    else if (!*u && v == 0)
        mul = 0;
    else
        return -1;
    double ms = v * mul + 0.5;
    if (ms > 9e15) return -1;
    *out_ms = (int64_t)ms;
    return 0;
}

static const refl_backoff_cfg client_go_backoff = {
    .kind = REFL_BACKOFF_EXP,
    .initial_ms = 800,
    .max_ms = 30000,
    .factor = 2.0,
    .jitter = 1.0,
    .reset_ms = 120000,
};

#define BACKOFF_USAGE "none, client-go or exp:INITIAL,MAX,FACTOR,JITTER[,RESET]"

int refl_backoff_parse(const char *s, refl_backoff_cfg *out, char *err, size_t err_cap) {
    char dummy[1];
    if (!err || !err_cap) {
        err = dummy;
        err_cap = sizeof dummy;
    }
    err[0] = '\0';
    if (!s) s = "";
    if (!strcmp(s, "none")) {
        memset(out, 0, sizeof(*out));
        out->kind = REFL_BACKOFF_NONE;
        return 0;
    }
    if (!strcmp(s, "client-go")) {
        *out = client_go_backoff;
        return 0;
    }
    if (strncmp(s, "exp:", 4)) {
        snprintf(err, err_cap, "unknown backoff \"%s\" (want " BACKOFF_USAGE ")", s);
        return -1;
    }
    char tmp[256];
    if (strlen(s + 4) >= sizeof tmp) {
        snprintf(err, err_cap, "backoff spec too long");
        return -1;
    }
    strcpy(tmp, s + 4);
    char *f[6];
    size_t nf = 0;
    for (char *p = tmp;;) {
        if (nf == 6) break;
        f[nf++] = p;
        char *comma = strchr(p, ',');
        if (!comma) break;
        *comma = '\0';
        p = comma + 1;
    }
    if (nf < 4 || nf > 5) {
        snprintf(err, err_cap,
                 "backoff \"%s\": want 4 or 5 comma-separated fields "
                 "exp:INITIAL,MAX,FACTOR,JITTER[,RESET], e.g. exp:100ms,10s,2,0.5",
                 s);
        return -1;
    }
    refl_backoff_cfg c = {.kind = REFL_BACKOFF_EXP, .reset_ms = client_go_backoff.reset_ms};
    static const char *const names[] = {"INITIAL", "MAX", "FACTOR", "JITTER", "RESET"};
    int64_t *durs[] = {&c.initial_ms, &c.max_ms, NULL, NULL, &c.reset_ms};
    double *nums[] = {NULL, NULL, &c.factor, &c.jitter, NULL};
    for (size_t i = 0; i < nf; i++) {
        if (durs[i]) {
            if (refl_parse_duration_ms(f[i], durs[i])) {
                snprintf(err, err_cap,
                         "backoff \"%s\": bad %s duration \"%s\" (use e.g. 800ms, "
                         "1.5s, 2m)",
                         s, names[i], f[i]);
                return -1;
            }
        } else {
            size_t used = parse_decimal(f[i], nums[i]);
            if (!used || f[i][used]) {
                snprintf(err, err_cap, "backoff \"%s\": bad %s number \"%s\"", s, names[i], f[i]);
                return -1;
            }
        }
    }
    if (c.initial_ms <= 0) {
        snprintf(err, err_cap, "backoff \"%s\": INITIAL must be > 0", s);
        return -1;
    }
    if (c.max_ms < c.initial_ms) {
        snprintf(err, err_cap, "backoff \"%s\": MAX must be >= INITIAL", s);
        return -1;
    }
    if (c.factor < 1.0) {
        snprintf(err, err_cap, "backoff \"%s\": FACTOR must be >= 1", s);
        return -1;
    }
    *out = c;
    return 0;
}

static size_t fmt_dur(char *buf, size_t cap, int64_t ms) {
    if (ms && ms % 60000 == 0) return (size_t)snprintf(buf, cap, "%lldm", (long long)(ms / 60000));
    if (ms && ms % 1000 == 0) return (size_t)snprintf(buf, cap, "%llds", (long long)(ms / 1000));
    return (size_t)snprintf(buf, cap, "%lldms", (long long)ms);
}

size_t refl_backoff_format(const refl_backoff_cfg *cfg, char *buf, size_t cap) {
    if (cfg->kind == REFL_BACKOFF_NONE) return (size_t)snprintf(buf, cap, "none");
    const refl_backoff_cfg *g = &client_go_backoff;
    if (cfg->initial_ms == g->initial_ms && cfg->max_ms == g->max_ms && cfg->factor == g->factor &&
        cfg->jitter == g->jitter && cfg->reset_ms == g->reset_ms)
        return (size_t)snprintf(buf, cap, "client-go");
    char a[32], b[32], r[32];
    fmt_dur(a, sizeof a, cfg->initial_ms);
    fmt_dur(b, sizeof b, cfg->max_ms);
    fmt_dur(r, sizeof r, cfg->reset_ms);
    if (cfg->reset_ms == client_go_backoff.reset_ms)
        return (size_t)snprintf(buf, cap, "exp:%s,%s,%g,%g", a, b, cfg->factor, cfg->jitter);
    return (size_t)snprintf(buf, cap, "exp:%s,%s,%g,%g,%s", a, b, cfg->factor, cfg->jitter, r);
}

void refl_backoff_init(refl_backoff *b, const refl_backoff_cfg *cfg, uint64_t seed,
                       int64_t now_ms) {
    memset(b, 0, sizeof(*b));
    b->cfg = *cfg;
    b->cur_ms = (double)cfg->initial_ms;
    b->last_failure_ms = now_ms;
    b->last_success_ms = now_ms;
    refl_rng_seed(&b->rng, seed);
}

int64_t refl_backoff_failure(refl_backoff *b, int64_t now_ms) {
    b->failures++;
    if (b->cfg.kind == REFL_BACKOFF_NONE) return 0;
    if (now_ms - b->last_failure_ms > b->cfg.reset_ms) b->cur_ms = (double)b->cfg.initial_ms;
    b->last_failure_ms = now_ms;
    double d = b->cur_ms;
    b->cur_ms *= b->cfg.factor;
    if (b->cur_ms > (double)b->cfg.max_ms) b->cur_ms = (double)b->cfg.max_ms;
    double sleep = d;
    if (b->cfg.jitter > 0) sleep += refl_rng_uniform(&b->rng) * b->cfg.jitter * d;
    int64_t ms = (int64_t)sleep; /* truncate, as Go's Duration conversion does */
    b->total_ms += (double)ms;
    return ms;
}

void refl_backoff_success(refl_backoff *b, int64_t now_ms) {
    b->successes++;
    b->last_success_ms = now_ms;
}
