/* kv_model_run.h — the state of one randomized run of test_kv_model.c: the key space, the
 * captured commit-callback and feed events, the run itself (engine, model, RNG, statistics),
 * and the mismatch report with its printers for requests, expected and actual responses.
 *
 * Key decisions:
 * - Part of test_kv_model.c, split out for size only: included by that file alone (after
 *   kv_model.h), so its functions stay plain static and share the run state with the driver.
 * - The key space is tiny on purpose (12 keys): collisions, re-creates and txn conflicts are
 *   frequent. Keys only come from that table.
 */
#ifndef RELIST_KV_MODEL_RUN_H
#define RELIST_KV_MODEL_RUN_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv.h"
#include "kv_model.h"

/* ---- key space ------------------------------------------------------------------------------ */

#define NKEYS 12
static const char *const key_names[NKEYS] = {
    "/registry/pods/ns-a/web-0",
    "/registry/pods/ns-a/web-1",
    "/registry/pods/ns-a/web-10",
    "/registry/pods/ns-a/db-0",
    "/registry/pods/ns-b/web-0",
    "/registry/pods/ns-b/web-1",
    "/registry/pods/ns-b/cache",
    "/registry/services/ns-a/web",
    "/registry/services/ns-b/web",
    "/registry/configmaps/ns-a/cfg",
    "/registry/zz\xff",
    "/a",
};
/* Range starts besides the keys: namespace prefixes, partial names, bounds around the space. */
static const char *const extra_probes[] = {
    "/",
    "/registry/",
    "/registry/pods/",
    "/registry/pods/ns-a/",
    "/registry/pods/ns-a/web",
    "/registry/pods/ns-b/",
    "/registry/services/",
    "/registry/zz",
    "0",
    "\x01",
    "/registry/pods/ns-a/web-1\x01",
};
#define NPROBES (NKEYS + (int)(sizeof extra_probes / sizeof extra_probes[0]))

static ProtobufCBinaryData bd(const void *p, size_t n) {
    ProtobufCBinaryData b = {n, (uint8_t *)p};
    return b;
}

static ProtobufCBinaryData bds(const char *s) {
    return bd(s, strlen(s));
}

static int cmp_bd(const void *a, const void *b) {
    const ProtobufCBinaryData *x = a, *y = b;
    return km_bcmp(x->data, x->len, y->data, y->len);
}

/* ---- captured events (commit callback and feed) ------------------------------------------ */

typedef struct cap_ev {
    int type;
    int64_t main, sub;
    uint8_t *key, *kv, *prev;
    size_t key_len, kv_len, prev_len;
} cap_ev;

typedef struct cap {
    cap_ev *v;
    size_t n, cap;
    int64_t *call_rev; /* commit callback: revision of each non-empty call */
    size_t ncalls, calls_cap;
} cap;

static uint8_t *dupb(const uint8_t *d, size_t n) {
    uint8_t *p = malloc(n ? n : 1);
    if (!p) abort();
    if (n) memcpy(p, d, n);
    return p;
}

static void cap_add(cap *c, const kv_event *e) {
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->v = realloc(c->v, c->cap * sizeof *c->v);
        if (!c->v) abort();
    }
    cap_ev *x = &c->v[c->n++];
    x->type = e->type;
    x->main = e->main;
    x->sub = e->sub;
    x->key = dupb(e->key, e->key_len);
    x->key_len = e->key_len;
    x->kv = dupb(e->kv, e->kv_len);
    x->kv_len = e->kv_len;
    x->prev = e->prev_kv ? dupb(e->prev_kv, e->prev_kv_len) : NULL;
    x->prev_len = e->prev_kv_len;
}

static void cap_clear(cap *c) {
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].key);
        free(c->v[i].kv);
        free(c->v[i].prev);
    }
    c->n = 0;
    c->ncalls = 0;
}

static void cap_free(cap *c) {
    cap_clear(c);
    free(c->v);
    free(c->call_rev);
    memset(c, 0, sizeof *c);
}

static void on_commit(void *ud, const kv_event *ev, size_t n, int64_t revision) {
    cap *c = ud;
    if (n == 0) return; /* an empty commit (e.g. compaction) may or may not be reported */
    for (size_t i = 0; i < n; i++)
        cap_add(c, &ev[i]);
    if (c->ncalls == c->calls_cap) {
        c->calls_cap = c->calls_cap ? c->calls_cap * 2 : 8;
        c->call_rev = realloc(c->call_rev, c->calls_cap * sizeof *c->call_rev);
        if (!c->call_rev) abort();
    }
    c->call_rev[c->ncalls++] = revision;
}

static int on_feed(void *ud, const kv_event *ev) {
    cap_add(ud, ev);
    return 0;
}

typedef struct raw_cap {
    uint8_t **kv;
    size_t *len;
    size_t n, cap, bytes;
} raw_cap;

static int on_raw(void *ud, const uint8_t *kv, size_t len) {
    raw_cap *c = ud;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->kv = realloc(c->kv, c->cap * sizeof *c->kv);
        c->len = realloc(c->len, c->cap * sizeof *c->len);
        if (!c->kv || !c->len) abort();
    }
    c->kv[c->n] = dupb(kv, len);
    c->len[c->n++] = len;
    c->bytes += len;
    return 0;
}

/* ---- the run ------------------------------------------------------------------------------- */

typedef struct stats {
    long puts, dels, txns, txn_ok, txn_else, nested, groups, ranges, feeds, feed_events, compacts,
        steps, reopens, errors, events;
    long by_code[KV_ERR_LEASE_PROVIDED + 1]; /* request errors seen, by code */
} stats;

typedef struct run {
    uint64_t seed, rng;
    long op, nops;
    char *dir;
    kv_store *s;
    kv_options opt;
    bool durable; /* the log on (no no_sync): every other reopen is a crash + replay */
    ProtobufCBinaryData keys[NKEYS];
    ProtobufCBinaryData probes[NPROBES];
    km_model m;
    km_pool rq; /* requests of the current op */
    km_pool xp; /* expected responses of the current op */
    kv_arena *ar;
    cap cb;
    bool failed;
    stats st;
    /* concurrent readers (test_concurrent_reads): hash[v] = hash of the model state at v,
     * valid for v <= published; no reopen while they run */
    bool concurrent;
    uint64_t *hash;
    int64_t hash_cap;
    _Atomic int64_t published;
    atomic_bool stop, rfail;
    pthread_mutex_t rmu;
    char rmsg[512];
} run;

static uint64_t rnd(run *r) { /* splitmix64 */
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static int64_t rn(run *r, int64_t n) {
    return n > 0 ? (int64_t)(rnd(r) % (uint64_t)n) : 0;
}
static bool pct(run *r, int p) {
    return rn(r, 100) < p;
}
/* uniform in [lo, hi] (lo if empty) */
static int64_t rin(run *r, int64_t lo, int64_t hi) {
    return hi < lo ? lo : lo + rn(r, hi - lo + 1);
}

static int mismatch(run *r, const char *fmt, ...) {
    if (!r->failed) {
        fprintf(stderr, "\nkv_model MISMATCH seed=%llu op=%ld (model rev=%lld compact=%lld): ",
                (unsigned long long)r->seed, r->op, (long long)r->m.rev, (long long)r->m.compact);
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        fprintf(stderr, "reproduce: RELIST_MODEL_SEED=%llu RELIST_MODEL_OPS=%ld\n",
                (unsigned long long)r->seed, r->nops);
    }
    r->failed = true;
    return -1;
}

static const char *code_name(int c) {
    switch (c) {
    case KV_OK:
        return "OK";
    case KV_ERR_COMPACTED:
        return "COMPACTED";
    case KV_ERR_FUTURE_REV:
        return "FUTURE_REV";
    case KV_ERR_EMPTY_KEY:
        return "EMPTY_KEY";
    case KV_ERR_TOO_MANY_OPS:
        return "TOO_MANY_OPS";
    case KV_ERR_DUPLICATE_KEY:
        return "DUPLICATE_KEY";
    case KV_ERR_LEASE_NOT_FOUND:
        return "LEASE_NOT_FOUND";
    case KV_ERR_KEY_TOO_LONG:
        return "KEY_TOO_LONG";
    case KV_ERR_TXN_TOO_DEEP:
        return "TXN_TOO_DEEP";
    case KV_ERR_INVALID:
        return "INVALID";
    case KV_ERR_NOMEM:
        return "NOMEM";
    case KV_ERR_NOSPACE:
        return "NOSPACE";
    case KV_ERR_IO:
        return "IO";
    case KV_ERR_NOT_A_STORE:
        return "NOT_A_STORE";
    case KV_ERR_LAYOUT:
        return "LAYOUT";
    case KV_ERR_CORRUPT:
        return "CORRUPT";
    case KV_ERR_KEY_NOT_FOUND:
        return "KEY_NOT_FOUND";
    case KV_ERR_VALUE_PROVIDED:
        return "VALUE_PROVIDED";
    case KV_ERR_LEASE_PROVIDED:
        return "LEASE_PROVIDED";
    case KM_ERR_ANY:
        return "(any error)";
    default:
        return "?";
    }
}

/* ---- printing (for mismatch reports) ------------------------------------------------------ */

static void pbytes(const uint8_t *d, size_t n) {
    size_t lim = n > 48 ? 48 : n;
    fputc('"', stderr);
    for (size_t i = 0; i < lim; i++) {
        if (d[i] >= 0x20 && d[i] < 0x7f && d[i] != '"' && d[i] != '\\')
            fputc(d[i], stderr);
        else
            fprintf(stderr, "\\x%02x", d[i]);
    }
    fputc('"', stderr);
    if (n > lim) fprintf(stderr, "..(%zu bytes)", n);
}

static void pind(int d) {
    fprintf(stderr, "%*s", 2 * d, "");
}

static void print_got_kv(const Mvccpb__KeyValue *kv) {
    if (!kv) {
        fprintf(stderr, "(none)");
        return;
    }
    fprintf(stderr, "{");
    pbytes(kv->key.data, kv->key.len);
    fprintf(stderr, " c=%lld m=%lld v=%lld l=%lld val=", (long long)kv->create_revision,
            (long long)kv->mod_revision, (long long)kv->version, (long long)kv->lease);
    pbytes(kv->value.data, kv->value.len);
    fprintf(stderr, "}");
}

static void print_rec(const km_model *m, long i, bool keys_only) {
    if (i < 0) {
        fprintf(stderr, "(none)");
        return;
    }
    const km_rec *x = &m->rec[i];
    fprintf(stderr, "{");
    pbytes(m->keys[x->k].data, m->keys[x->k].len);
    fprintf(stderr, " c=%lld m=%lld v=%lld l=%lld val=", (long long)x->create, (long long)x->main,
            (long long)x->version, (long long)x->lease);
    if (keys_only)
        fprintf(stderr, "\"\"");
    else
        pbytes(x->value, x->vlen);
    fprintf(stderr, "}");
}

static void print_op(const Etcdserverpb__RequestOp *op, int d);

static void print_txn(const Etcdserverpb__TxnRequest *t, int d) {
    static const char *tg[] = {"VERSION", "CREATE", "MOD", "VALUE", "LEASE"};
    static const char *rs[] = {"==", ">", "<", "!="};
    fprintf(stderr, "TXN\n");
    for (size_t i = 0; i < t->n_compare; i++) {
        const Etcdserverpb__Compare *c = t->compare[i];
        pind(d + 1);
        fprintf(stderr, "if %s(", tg[c->target % 5]);
        pbytes(c->key.data, c->key.len);
        if (c->range_end.len) {
            fprintf(stderr, "..");
            pbytes(c->range_end.data, c->range_end.len);
        }
        fprintf(stderr, ") %s ", rs[c->result % 4]);
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE)
            pbytes(c->value.data, c->value.len);
        else
            fprintf(stderr, "%lld", (long long)c->version); /* same union slot */
        fprintf(stderr, "\n");
    }
    pind(d + 1);
    fprintf(stderr, "then:\n");
    for (size_t i = 0; i < t->n_success; i++)
        print_op(t->success[i], d + 2);
    pind(d + 1);
    fprintf(stderr, "else:\n");
    for (size_t i = 0; i < t->n_failure; i++)
        print_op(t->failure[i], d + 2);
}

static void print_op(const Etcdserverpb__RequestOp *op, int d) {
    pind(d);
    switch (op->request_case) {
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT: {
        const Etcdserverpb__PutRequest *p = op->request_put;
        fprintf(stderr, "PUT ");
        pbytes(p->key.data, p->key.len);
        fprintf(stderr, " = ");
        pbytes(p->value.data, p->value.len);
        fprintf(stderr, " lease=%lld%s%s%s\n", (long long)p->lease, p->prev_kv ? " prev_kv" : "",
                p->ignore_value ? " ignore_value" : "", p->ignore_lease ? " ignore_lease" : "");
        break;
    }
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE: {
        const Etcdserverpb__DeleteRangeRequest *p = op->request_delete_range;
        fprintf(stderr, "DELETE ");
        pbytes(p->key.data, p->key.len);
        fprintf(stderr, " .. ");
        pbytes(p->range_end.data, p->range_end.len);
        fprintf(stderr, "%s\n", p->prev_kv ? " prev_kv" : "");
        break;
    }
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE: {
        const Etcdserverpb__RangeRequest *p = op->request_range;
        fprintf(stderr, "RANGE ");
        pbytes(p->key.data, p->key.len);
        fprintf(stderr, " .. ");
        pbytes(p->range_end.data, p->range_end.len);
        fprintf(stderr,
                " limit=%lld rev=%lld order=%d target=%d%s%s mod=[%lld,%lld] create=[%lld,%lld]\n",
                (long long)p->limit, (long long)p->revision, (int)p->sort_order,
                (int)p->sort_target, p->keys_only ? " keys_only" : "",
                p->count_only ? " count_only" : "", (long long)p->min_mod_revision,
                (long long)p->max_mod_revision, (long long)p->min_create_revision,
                (long long)p->max_create_revision);
        break;
    }
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
        print_txn(op->request_txn, d);
        break;
    default:
        fprintf(stderr, "(empty op)\n");
    }
}

static void print_exp(const km_model *m, const km_resp *x, int d) {
    pind(d);
    switch (x->kind) {
    case KM_RANGE:
        fprintf(stderr, "RANGE rev=%lld count=%lld more=%d kvs=%zu:", (long long)x->rev,
                (long long)x->count, x->more, x->nkvs);
        for (size_t i = 0; i < x->nkvs; i++) {
            fprintf(stderr, "\n");
            pind(d + 1);
            print_rec(m, x->cand[i], x->rreq->keys_only);
        }
        fprintf(stderr, "\n");
        break;
    case KM_PUT:
        fprintf(stderr, "PUT rev=%lld prev=", (long long)x->rev);
        print_rec(m, x->prev, false);
        fprintf(stderr, "\n");
        break;
    case KM_DEL:
        fprintf(stderr, "DELETE rev=%lld deleted=%lld prevs:", (long long)x->rev,
                (long long)x->deleted);
        for (size_t i = 0; i < x->nprevs; i++) {
            fprintf(stderr, " ");
            print_rec(m, x->prevs[i], false);
        }
        fprintf(stderr, "\n");
        break;
    case KM_TXN:
        fprintf(stderr, "TXN rev=%lld%s succeeded=%d\n", (long long)x->rev,
                x->nested_txn ? "(nested: empty header)" : "", x->succeeded);
        for (size_t i = 0; i < x->nsub; i++)
            print_exp(m, &x->sub[i], d + 1);
        break;
    default:
        fprintf(stderr, "(nothing)\n");
    }
}

static void print_hdr(const Etcdserverpb__ResponseHeader *h) {
    if (!h)
        fprintf(stderr, "rev=(no header)");
    else
        fprintf(stderr, "rev=%lld", (long long)h->revision);
}

static void print_got(const Etcdserverpb__ResponseOp *g, int d) {
    pind(d);
    if (!g) {
        fprintf(stderr, "(null response)\n");
        return;
    }
    switch (g->response_case) {
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE: {
        const Etcdserverpb__RangeResponse *x = g->response_range;
        if (!x) break;
        fprintf(stderr, "RANGE ");
        print_hdr(x->header);
        fprintf(stderr, " count=%lld more=%d kvs=%zu:", (long long)x->count, x->more, x->n_kvs);
        for (size_t i = 0; i < x->n_kvs; i++) {
            fprintf(stderr, "\n");
            pind(d + 1);
            print_got_kv(x->kvs[i]);
        }
        fprintf(stderr, "\n");
        return;
    }
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT: {
        const Etcdserverpb__PutResponse *x = g->response_put;
        if (!x) break;
        fprintf(stderr, "PUT ");
        print_hdr(x->header);
        fprintf(stderr, " prev=");
        print_got_kv(x->prev_kv);
        fprintf(stderr, "\n");
        return;
    }
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE: {
        const Etcdserverpb__DeleteRangeResponse *x = g->response_delete_range;
        if (!x) break;
        fprintf(stderr, "DELETE ");
        print_hdr(x->header);
        fprintf(stderr, " deleted=%lld prevs:", (long long)x->deleted);
        for (size_t i = 0; i < x->n_prev_kvs; i++) {
            fprintf(stderr, " ");
            print_got_kv(x->prev_kvs[i]);
        }
        fprintf(stderr, "\n");
        return;
    }
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN: {
        const Etcdserverpb__TxnResponse *x = g->response_txn;
        if (!x) break;
        fprintf(stderr, "TXN ");
        print_hdr(x->header);
        fprintf(stderr, " succeeded=%d\n", x->succeeded);
        for (size_t i = 0; i < x->n_responses; i++)
            print_got(x->responses[i], d + 1);
        return;
    }
    default:
        break;
    }
    fprintf(stderr, "(response case %d, or NULL message)\n", (int)g->response_case);
}

#endif
