/* test_kv_model.c — randomized model-based test of the MVCC engine (kvstore/mvcc/kv.h).
 *
 * Thousands of random operations (puts, deletes, range deletes, txns with compares and nested
 * txns, groups of requests per kv_apply with invalid members, compactions logical and
 * physical, close + reopen) are applied both to the engine and to kv_model.h, a naive
 * reference of etcd 3.4's semantics. Every response is compared; ranges (current and
 * historical, limits, sorts, filters, kv_range_raw), the change feed (batching, continuation,
 * prev_kv) and the commit callback are checked regularly.
 *
 * Key decisions:
 * - A small key space (12 keys over a few "namespaces") so collisions, re-creates, ranges
 *   and txn conflicts are frequent; keys only come from that table.
 * - Deterministic: a fixed seed in CI. RELIST_MODEL_SEED=S, RELIST_MODEL_SEEDS=N (N seeds from
 *   S, default 1) and RELIST_MODEL_OPS=M (default 5000) to search longer.
 * - On a mismatch: the seed, op index, request, expected and actual are printed, then fail.
 * - Where etcd leaves results unspecified (order of sort ties; prev_kv of an event at exactly
 *   the compaction revision, whose previous version compaction may remove — etcd's watch
 *   omits it there), either answer is accepted. Everything else must match exactly.
 * - no_sync: durability is not under test here.
 * - test_concurrent_reads replays the same operations with two reader threads checking every
 *   whole-key-space read (current, historical, raw) against a hash of the model state at the
 *   revision read, while the writer applies, compacts and steps physical compaction.
 * - One executable on purpose: generator, driver and comparator share the run state; the model
 *   itself lives in kv_model.h.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv.h"
#include "kv_model.h"
#include "testutil.h"

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

/* ---- comparing responses ------------------------------------------------------------------- */

static bool bd_eq(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static int cmp_kv(run *r, const char *path, const Mvccpb__KeyValue *g, long i, bool keys_only) {
    const km_model *m = &r->m;
    if (i < 0) {
        if (g) return mismatch(r, "%s: expected no kv, got one", path);
        return 0;
    }
    if (!g) return mismatch(r, "%s: expected a kv, got none", path);
    const km_rec *x = &m->rec[i];
    const ProtobufCBinaryData *k = &m->keys[x->k];
    bool ok = bd_eq(g->key.data, g->key.len, k->data, k->len) && g->create_revision == x->create &&
              g->mod_revision == x->main && g->version == x->version && g->lease == x->lease;
    if (keys_only)
        ok = ok && g->value.len == 0;
    else
        ok = ok && bd_eq(g->value.data, g->value.len, x->value, x->vlen);
    if (ok) return 0;
    mismatch(r, "%s: kv differs", path);
    fprintf(stderr, "  expected ");
    print_rec(m, i, keys_only);
    fprintf(stderr, "\n  got      ");
    print_got_kv(g);
    fprintf(stderr, "\n");
    return -1;
}

static int cmp_hdr(run *r, const char *path, const Etcdserverpb__ResponseHeader *h, int64_t rev) {
    if (!h) return mismatch(r, "%s: no header", path);
    if (h->revision != rev)
        return mismatch(r, "%s: header revision %lld, expected %lld", path, (long long)h->revision,
                        (long long)rev);
    return 0;
}

static int cmp_range(run *r, const char *path, const km_resp *x,
                     const Etcdserverpb__RangeResponse *g) {
    const km_model *m = &r->m;
    const Etcdserverpb__RangeRequest *q = x->rreq;
    if (!g) return mismatch(r, "%s: no RangeResponse", path);
    if (cmp_hdr(r, path, g->header, x->rev)) return -1;
    if (g->count != x->count)
        return mismatch(r, "%s: count %lld, expected %lld", path, (long long)g->count,
                        (long long)x->count);
    if (!!g->more != x->more)
        return mismatch(r, "%s: more %d, expected %d", path, g->more, x->more);
    if (g->n_kvs != x->nkvs)
        return mismatch(r, "%s: %zu kvs, expected %zu", path, g->n_kvs, x->nkvs);
    bool ties = q->sort_target != ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY;
    bool used[64] = {false};
    char sub[96];
    for (size_t i = 0; i < g->n_kvs; i++) {
        snprintf(sub, sizeof sub, "%s.kvs[%zu]", path, i);
        const Mvccpb__KeyValue *kv = g->kvs[i];
        if (!kv) return mismatch(r, "%s: NULL kv", sub);
        if (!ties) {
            if (cmp_kv(r, sub, kv, x->cand[i], q->keys_only)) return -1;
            continue;
        }
        /* etcd's sort is unstable: any candidate with the same sort value may stand here */
        size_t j = 0;
        for (; j < x->ncand; j++) {
            const ProtobufCBinaryData *k = &m->keys[m->rec[x->cand[j]].k];
            if (bd_eq(kv->key.data, kv->key.len, k->data, k->len)) break;
        }
        if (j == x->ncand || used[j] ||
            km_target_cmp(m, q->sort_target, x->cand[j], x->cand[i]) != 0) {
            mismatch(r, "%s: key not expected at this position (sort target %d)", sub,
                     (int)q->sort_target);
            fprintf(stderr, "  expected ");
            print_rec(m, x->cand[i], q->keys_only);
            fprintf(stderr, " (or a tie)\n  got      ");
            print_got_kv(kv);
            fprintf(stderr, "\n");
            return -1;
        }
        used[j] = true;
        if (cmp_kv(r, sub, kv, x->cand[j], q->keys_only)) return -1;
    }
    return 0;
}

static int cmp_resp(run *r, const char *path, const km_resp *x, const Etcdserverpb__ResponseOp *g);

static int cmp_txn(run *r, const char *path, const km_resp *x, const Etcdserverpb__TxnResponse *g) {
    if (!g) return mismatch(r, "%s: no TxnResponse", path);
    if (x->nested_txn) {
        /* etcd leaves a nested txn's header empty; a missing header is the same on the wire */
        if (g->header && g->header->revision != 0)
            return mismatch(r, "%s: nested txn header revision %lld, etcd leaves it 0", path,
                            (long long)g->header->revision);
    } else if (cmp_hdr(r, path, g->header, x->rev)) {
        return -1;
    }
    if (!!g->succeeded != x->succeeded)
        return mismatch(r, "%s: succeeded=%d, expected %d", path, g->succeeded, x->succeeded);
    if (g->n_responses != x->nsub)
        return mismatch(r, "%s: %zu responses, expected %zu", path, g->n_responses, x->nsub);
    char sub[96];
    for (size_t i = 0; i < x->nsub; i++) {
        snprintf(sub, sizeof sub, "%s.%s[%zu]", path, x->succeeded ? "then" : "else", i);
        if (cmp_resp(r, sub, &x->sub[i], g->responses[i])) return -1;
    }
    return 0;
}

static int cmp_resp(run *r, const char *path, const km_resp *x, const Etcdserverpb__ResponseOp *g) {
    if (!g) return mismatch(r, "%s: NULL ResponseOp", path);
    char sub[96];
    switch (x->kind) {
    case KM_RANGE:
        if (g->response_case != ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE) break;
        return cmp_range(r, path, x, g->response_range);
    case KM_PUT:
        if (g->response_case != ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT) break;
        if (!g->response_put) return mismatch(r, "%s: NULL PutResponse", path);
        if (cmp_hdr(r, path, g->response_put->header, x->rev)) return -1;
        snprintf(sub, sizeof sub, "%s.prev_kv", path);
        return cmp_kv(r, sub, g->response_put->prev_kv, x->prev, false);
    case KM_DEL: {
        const Etcdserverpb__DeleteRangeResponse *d = g->response_delete_range;
        if (g->response_case != ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE) break;
        if (!d) return mismatch(r, "%s: NULL DeleteRangeResponse", path);
        if (cmp_hdr(r, path, d->header, x->rev)) return -1;
        if (d->deleted != x->deleted)
            return mismatch(r, "%s: deleted %lld, expected %lld", path, (long long)d->deleted,
                            (long long)x->deleted);
        if (d->n_prev_kvs != x->nprevs)
            return mismatch(r, "%s: %zu prev_kvs, expected %zu", path, d->n_prev_kvs, x->nprevs);
        for (size_t i = 0; i < x->nprevs; i++) {
            snprintf(sub, sizeof sub, "%s.prev_kvs[%zu]", path, i);
            if (cmp_kv(r, sub, d->prev_kvs[i], x->prevs[i], false)) return -1;
        }
        return 0;
    }
    case KM_TXN:
        if (g->response_case != ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN) break;
        return cmp_txn(r, path, x, g->response_txn);
    }
    return mismatch(r, "%s: response case %d, expected kind %d", path, (int)g->response_case,
                    x->kind);
}

/* ---- events --------------------------------------------------------------------------------- */

enum { PREV_NONE, PREV_STRICT, PREV_MAYBE };

static int cmp_event(run *r, const char *path, const cap_ev *g, long i, int prev_mode) {
    const km_model *m = &r->m;
    const km_rec *x = &m->rec[i];
    const ProtobufCBinaryData *k = &m->keys[x->k];
    int type = x->tomb ? MVCCPB__EVENT__EVENT_TYPE__DELETE : MVCCPB__EVENT__EVENT_TYPE__PUT;
    char sub[128];
    if (g->type != type || g->main != x->main || g->sub != x->sub ||
        !bd_eq(g->key, g->key_len, k->data, k->len)) {
        mismatch(r, "%s: event differs: got type=%d rev={%lld,%lld} key=", path, g->type,
                 (long long)g->main, (long long)g->sub);
        pbytes(g->key, g->key_len);
        fprintf(stderr, "\n  expected type=%d rev={%lld,%lld} key=", type, (long long)x->main,
                (long long)x->sub);
        pbytes(k->data, k->len);
        fprintf(stderr, "\n");
        return -1;
    }
    Mvccpb__KeyValue *kv = mvccpb__key_value__unpack(NULL, g->kv_len, g->kv);
    if (!kv) return mismatch(r, "%s: event kv does not decode", path);
    int rc = 0;
    snprintf(sub, sizeof sub, "%s.kv", path);
    if (x->tomb) {
        /* a DELETE event's kv holds only key and mod_revision */
        if (!bd_eq(kv->key.data, kv->key.len, k->data, k->len) || kv->mod_revision != x->main ||
            kv->create_revision || kv->version || kv->lease || kv->value.len) {
            rc = mismatch(r, "%s: DELETE kv must be {key, mod_revision=%lld} only", sub,
                          (long long)x->main);
            fprintf(stderr, "  got ");
            print_got_kv(kv);
            fprintf(stderr, "\n");
        }
    } else {
        rc = cmp_kv(r, sub, kv, i, false);
    }
    mvccpb__key_value__free_unpacked(kv, NULL);
    if (rc) return rc;
    long p = x->prev >= 0 && !m->rec[x->prev].tomb ? x->prev : -1;
    snprintf(sub, sizeof sub, "%s.prev_kv", path);
    if (prev_mode == PREV_NONE || p < 0) {
        if (g->prev)
            return mismatch(r, "%s: unexpected prev_kv (%s)", sub,
                            prev_mode == PREV_NONE ? "not asked" : "key did not exist before");
        return 0;
    }
    if (!g->prev) {
        if (prev_mode == PREV_MAYBE && m->rec[p].main < m->compact) return 0;
        return mismatch(r, "%s: missing prev_kv (previous version at %lld)", sub,
                        (long long)m->rec[p].main);
    }
    kv = mvccpb__key_value__unpack(NULL, g->prev_len, g->prev);
    if (!kv) return mismatch(r, "%s: prev_kv does not decode", sub);
    rc = cmp_kv(r, sub, kv, p, false);
    mvccpb__key_value__free_unpacked(kv, NULL);
    return rc;
}

/* The commit callback must have delivered exactly the records appended since n0. */
static int check_commit_events(run *r, size_t n0) {
    cap *c = &r->cb;
    size_t want = r->m.nrec - n0;
    if (c->n != want)
        return mismatch(r, "commit callback delivered %zu events, expected %zu", c->n, want);
    char path[64];
    for (size_t i = 0; i < want; i++) {
        snprintf(path, sizeof path, "commit_cb.ev[%zu]", i);
        if (cmp_event(r, path, &c->v[i], (long)(n0 + i), PREV_STRICT)) return -1;
    }
    for (size_t i = 0; i < c->ncalls; i++)
        if (c->call_rev[i] != r->m.rev)
            return mismatch(r, "commit callback revision %lld, expected %lld",
                            (long long)c->call_rev[i], (long long)r->m.rev);
    r->st.events += (long)want;
    return 0;
}

/* ---- status ------------------------------------------------------------------------------- */

static int check_status(run *r) {
    kv_status st;
    memset(&st, 0, sizeof st);
    kv_status_get(r->s, &st);
    if (st.revision != r->m.rev)
        return mismatch(r, "status revision %lld, expected %lld", (long long)st.revision,
                        (long long)r->m.rev);
    if (st.compact_revision != r->m.compact)
        return mismatch(r, "status compact_revision %lld, expected %lld",
                        (long long)st.compact_revision, (long long)r->m.compact);
    if (st.compact_finished > st.compact_revision)
        return mismatch(r, "status compact_finished %lld > compact_revision %lld",
                        (long long)st.compact_finished, (long long)st.compact_revision);
    if (st.keys != km_live_keys(&r->m))
        return mismatch(r, "status keys %lld, expected %d", (long long)st.keys,
                        km_live_keys(&r->m));
    return 0;
}

/* ---- request generation ------------------------------------------------------------------ */

static Etcdserverpb__RequestOp *new_op(run *r) {
    Etcdserverpb__RequestOp *o = km_alloc(&r->rq, sizeof *o);
    etcdserverpb__request_op__init(o);
    return o;
}

static ProtobufCBinaryData rand_key(run *r) {
    return r->keys[rn(r, NKEYS)];
}
static ProtobufCBinaryData rand_probe(run *r) {
    return r->probes[rn(r, NPROBES)];
}

/* etcdctl's prefix end: last byte < 0xff incremented, trailing 0xff dropped; all-0xff = "\0". */
static ProtobufCBinaryData prefix_end(run *r, ProtobufCBinaryData k) {
    uint8_t *e = km_alloc(&r->rq, k.len + 1);
    memcpy(e, k.data, k.len);
    for (size_t n = k.len; n > 0; n--) {
        if (e[n - 1] < 0xff) {
            e[n - 1]++;
            return bd(e, n);
        }
    }
    e[0] = 0;
    return bd(e, 1);
}

static ProtobufCBinaryData from_key_end(void) {
    return bd("", 1); /* the byte 0 */
}

/* A key span: single key, prefix, [a, b), from-key or everything. */
static void gen_span(run *r, ProtobufCBinaryData *key, ProtobufCBinaryData *end, bool from_key,
                     bool inverted) {
    int c = (int)rn(r, 100);
    *end = bd(NULL, 0);
    if (c < 35) {
        *key = pct(r, 85) ? rand_key(r) : rand_probe(r);
    } else if (c < 62) {
        *key = rand_probe(r);
        *end = prefix_end(r, *key);
    } else if (c < 82 || !from_key) {
        *key = rand_probe(r);
        *end = rand_probe(r);
        if (!inverted || pct(r, 90)) {
            if (km_bcmp(key->data, key->len, end->data, end->len) > 0) {
                ProtobufCBinaryData t = *key;
                *key = *end;
                *end = t;
            }
            if (km_bcmp(key->data, key->len, end->data, end->len) == 0) *end = prefix_end(r, *key);
        }
    } else if (c < 93) {
        *key = rand_probe(r);
        *end = from_key_end();
    } else {
        *key = bd("", 1); /* "\0" .. "\0": the whole key space */
        *end = from_key_end();
    }
}

static ProtobufCBinaryData gen_value(run *r) {
    size_t n;
    int c = (int)rn(r, 100);
    if (c < 5)
        n = 0;
    else if (c < 8)
        n = (size_t)rin(r, 1500, 4000);
    else
        n = (size_t)rin(r, 1, 10);
    uint8_t *v = km_alloc(&r->rq, n + 1);
    for (size_t i = 0; i < n; i++)
        v[i] = (uint8_t)("abc"[rn(r, 3)]);
    return bd(v, n);
}

/* Leases 1 and 2 exist, 3 does not (see lease_exists). */
static int64_t gen_lease(run *r) {
    return pct(r, 70) ? 0 : pct(r, 92) ? rin(r, 1, 2) : 3;
}

/* A revision for a historical read: mostly valid, sometimes compacted or future. */
static int64_t gen_read_rev(run *r, int p_nonzero) {
    km_model *m = &r->m;
    if (!pct(r, p_nonzero)) return 0;
    int c = (int)rn(r, 100);
    if (c < 10 && m->compact > 1) return rin(r, 1, m->compact - 1);
    if (c < 20) return m->rev + rin(r, 1, 3);
    if (c < 30 && m->compact) return m->compact;
    return rin(r, m->compact > 1 ? m->compact : 1, m->rev);
}

static Etcdserverpb__RangeRequest *gen_range_req(run *r, int p_hist) {
    Etcdserverpb__RangeRequest *q = km_alloc(&r->rq, sizeof *q);
    etcdserverpb__range_request__init(q);
    gen_span(r, &q->key, &q->range_end, true, true);
    if (pct(r, 45)) q->limit = rin(r, 1, 5);
    q->revision = gen_read_rev(r, p_hist);
    int c = (int)rn(r, 100);
    q->sort_order = c < 50   ? ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE
                    : c < 75 ? ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND
                             : ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    q->sort_target = pct(r, 50) ? ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY
                                : (Etcdserverpb__RangeRequest__SortTarget)rin(r, 1, 4);
    q->keys_only = pct(r, 15);
    q->count_only = pct(r, 8);
    int64_t top = r->m.rev + 1;
    if (pct(r, 8)) q->min_mod_revision = rin(r, 1, top);
    if (pct(r, 8)) q->max_mod_revision = rin(r, 1, top);
    if (pct(r, 8)) q->min_create_revision = rin(r, 1, top);
    if (pct(r, 8)) q->max_create_revision = rin(r, 1, top);
    return q;
}

static Etcdserverpb__RequestOp *gen_range(run *r, int p_hist) {
    Etcdserverpb__RequestOp *o = new_op(r);
    o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    o->request_range = gen_range_req(r, p_hist);
    return o;
}

/* A put of key index k (-1: random), sometimes with ignore_value/ignore_lease (etcd: the key
 * must exist — before the txn, for a put inside one). */
static Etcdserverpb__RequestOp *gen_put(run *r, int k, bool top) {
    Etcdserverpb__RequestOp *o = new_op(r);
    Etcdserverpb__PutRequest *p = km_alloc(&r->rq, sizeof *p);
    etcdserverpb__put_request__init(p);
    o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    o->request_put = p;
    p->key = k >= 0 ? r->keys[k] : rand_key(r);
    p->value = gen_value(r);
    p->lease = gen_lease(r);
    p->prev_kv = pct(r, 50);
    if (pct(r, top ? 5 : 1)) {
        p->ignore_value = true;
        p->value = bd(NULL, 0);
    }
    if (pct(r, top ? 4 : 1)) {
        p->ignore_lease = true;
        p->lease = 0;
    }
    return o;
}

static Etcdserverpb__RequestOp *gen_delete(run *r, int k, bool top) {
    Etcdserverpb__RequestOp *o = new_op(r);
    Etcdserverpb__DeleteRangeRequest *d = km_alloc(&r->rq, sizeof *d);
    etcdserverpb__delete_range_request__init(d);
    o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    o->request_delete_range = d;
    d->prev_kv = pct(r, 50);
    if (top) {
        gen_span(r, &d->key, &d->range_end, true, true);
    } else if (k >= 0) {
        d->key = r->keys[k];
    } else { /* a prefix delete inside a txn (no "\0": see km_ivls_hit) */
        d->key = rand_probe(r);
        d->range_end = prefix_end(r, d->key);
    }
    return o;
}

/* A compare that is true about half of the time: its operand is drawn near the key's current
 * state. */
static Etcdserverpb__Compare *gen_compare(run *r) {
    km_model *m = &r->m;
    Etcdserverpb__Compare *c = km_alloc(&r->rq, sizeof *c);
    etcdserverpb__compare__init(c);
    int k = (int)rn(r, NKEYS);
    int how = (int)rn(r, 100);
    c->key = how < 5 ? rand_probe(r) : r->keys[k];
    if (how >= 5 && how < 15) c->range_end = prefix_end(r, rand_probe(r));
    if (c->range_end.len &&
        km_bcmp(c->key.data, c->key.len, c->range_end.data, c->range_end.len) >= 0)
        c->range_end = prefix_end(r, c->key);
    c->target = (Etcdserverpb__Compare__CompareTarget)rn(r, 5);
    c->result = (Etcdserverpb__Compare__CompareResult)rn(r, 4);
    long i = km_at(m, k, m->rev);
    const km_rec *x = i >= 0 ? &m->rec[i] : NULL;
    int64_t d = rin(r, -1, 1) * (pct(r, 50) ? 0 : 1);
    switch (c->target) {
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
        c->version = (x ? x->version : 0) + d;
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
        c->create_revision = (x ? x->create : 0) + d;
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        c->mod_revision = (x ? x->main : 0) + d;
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE:
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
        c->value = x && pct(r, 60) ? bd(x->value, x->vlen) : gen_value(r);
        if (c->value.len > 16) c->value.len = 16; /* a prefix of a big value: LESS/GREATER */
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE:
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
        c->lease = x && pct(r, 60) ? x->lease : gen_lease(r);
        break;
    default:
        break;
    }
    return c;
}

/* Picks a key for a put/delete inside a txn: mostly one not yet used in this txn tree, so
 * that most txns are valid; sometimes any key, which makes etcd's duplicate-key rule fire. */
static int pick_txn_key(run *r, uint64_t *used) {
    int k = (int)rn(r, NKEYS);
    if (pct(r, 92))
        for (int t = 0; t < NKEYS && (*used >> k & 1); t++)
            k = (k + 1) % NKEYS;
    *used |= (uint64_t)1 << k;
    return k;
}

static Etcdserverpb__RequestOp *gen_txn_op(run *r, int depth, uint64_t *used);

static Etcdserverpb__RequestOp **gen_txn_ops(run *r, size_t n, int depth, uint64_t *used) {
    Etcdserverpb__RequestOp **v = km_alloc(&r->rq, sizeof *v * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        int c = (int)rn(r, 100);
        if (c < 38)
            v[i] = gen_put(r, pick_txn_key(r, used), false);
        else if (c < 53)
            v[i] = gen_delete(r, pick_txn_key(r, used), false);
        else if (c < 58)
            v[i] = gen_delete(r, -1, false);
        else if (c < 85 || depth >= 3)
            v[i] = gen_range(r, 25);
        else
            v[i] = gen_txn_op(r, depth + 1, used);
    }
    return v;
}

static Etcdserverpb__RequestOp *gen_txn_op(run *r, int depth, uint64_t *used) {
    Etcdserverpb__RequestOp *o = new_op(r);
    Etcdserverpb__TxnRequest *t = km_alloc(&r->rq, sizeof *t);
    etcdserverpb__txn_request__init(t);
    o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    o->request_txn = t;
    t->n_compare = (size_t)rn(r, 4);
    t->compare = km_alloc(&r->rq, sizeof *t->compare * (t->n_compare + 1));
    for (size_t i = 0; i < t->n_compare; i++)
        t->compare[i] = gen_compare(r);
    t->n_success = (size_t)rn(r, 5);
    t->success = gen_txn_ops(r, t->n_success, depth, used);
    t->n_failure = (size_t)rn(r, 4);
    t->failure = gen_txn_ops(r, t->n_failure, depth, used);
    return o;
}

/* A txn with more than KV_MAX_TXN_OPS ops (or exactly the maximum). */
static Etcdserverpb__RequestOp *gen_big_txn(run *r, size_t n) {
    Etcdserverpb__RequestOp *o = new_op(r);
    Etcdserverpb__TxnRequest *t = km_alloc(&r->rq, sizeof *t);
    etcdserverpb__txn_request__init(t);
    o->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    o->request_txn = t;
    t->n_success = n;
    t->success = km_alloc(&r->rq, sizeof *t->success * n);
    for (size_t i = 0; i < n; i++) {
        t->success[i] = gen_range(r, 0);
        t->success[i]->request_range->count_only = true;
    }
    return o;
}

/* Makes one request invalid in a way etcd rejects before applying anything. */
static Etcdserverpb__RequestOp *gen_invalid(run *r) {
    int c = (int)rn(r, 100);
    if (c < 25) {
        Etcdserverpb__RequestOp *o = gen_put(r, -1, false);
        o->request_put->key = bd(NULL, 0);
        return o;
    }
    if (c < 35) {
        Etcdserverpb__RequestOp *o = gen_delete(r, -1, true);
        o->request_delete_range->key = bd(NULL, 0);
        return o;
    }
    if (c < 45) {
        Etcdserverpb__RequestOp *o = gen_range(r, 0);
        o->request_range->key = bd(NULL, 0);
        return o;
    }
    if (c < 55) { /* key longer than LMDB allows */
        Etcdserverpb__RequestOp *o = gen_put(r, -1, false);
        uint8_t *k = km_alloc(&r->rq, KV_MAX_KEY_LEN + 40);
        memset(k, 'k', KV_MAX_KEY_LEN + 40);
        k[0] = '/';
        o->request_put->key = bd(k, KV_MAX_KEY_LEN + 1 + (size_t)rn(r, 39));
        return o;
    }
    if (c < 60) return gen_big_txn(r, KV_MAX_TXN_OPS + 1);
    if (c < 66) { /* ignore_value with a value, ignore_lease with a lease */
        Etcdserverpb__RequestOp *o = gen_put(r, -1, false);
        o->request_put->ignore_value = o->request_put->ignore_lease = false;
        if (pct(r, 50))
            o->request_put->ignore_value = true, o->request_put->value = bds("v");
        else
            o->request_put->ignore_lease = true, o->request_put->lease = 7;
        return o;
    }
    if (c < 70) { /* a txn holding an empty RequestOp */
        uint64_t used = 0;
        Etcdserverpb__RequestOp *o = gen_txn_op(r, 1, &used);
        Etcdserverpb__TxnRequest *t = o->request_txn;
        Etcdserverpb__RequestOp **v = km_alloc(&r->rq, sizeof *v * (t->n_failure + 1));
        memcpy(v, t->failure, sizeof *v * t->n_failure);
        v[t->n_failure++] = new_op(r);
        t->failure = v;
        return o;
    }
    /* a txn putting one key twice (or put + delete of it), possibly through a nested txn */
    uint64_t used = 0;
    Etcdserverpb__RequestOp *o = gen_txn_op(r, 1, &used);
    Etcdserverpb__TxnRequest *t = o->request_txn;
    int k = (int)rn(r, NKEYS);
    Etcdserverpb__RequestOp *second = pct(r, 50) ? gen_put(r, k, false) : gen_delete(r, k, false);
    if (pct(r, 30)) {
        Etcdserverpb__RequestOp *n = new_op(r);
        Etcdserverpb__TxnRequest *nt = km_alloc(&r->rq, sizeof *nt);
        etcdserverpb__txn_request__init(nt);
        n->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
        n->request_txn = nt;
        nt->n_success = 1;
        nt->success = km_alloc(&r->rq, sizeof *nt->success);
        nt->success[0] = second;
        second = n;
    }
    Etcdserverpb__RequestOp **v = km_alloc(&r->rq, sizeof *v * (t->n_success + 2));
    memcpy(v, t->success, sizeof *v * t->n_success);
    v[t->n_success] = gen_put(r, k, false);
    v[t->n_success + 1] = second;
    t->success = v;
    t->n_success += 2;
    return o;
}

/* ---- applying requests --------------------------------------------------------------------- */

static void dump_ops(run *r, Etcdserverpb__RequestOp **ops, size_t n, const km_resp *x,
                     const int *xe, kv_write *w) {
    for (size_t i = 0; i < n; i++) {
        fprintf(stderr, "--- request %zu of %zu:\n", i, n);
        print_op(ops[i], 1);
        fprintf(stderr, "--- expected (%s):\n", code_name(xe[i]));
        if (xe[i] == KV_OK) print_exp(&r->m, &x[i], 1);
        fprintf(stderr, "--- got (%s%s%s):\n", code_name(w[i].err.code),
                w[i].err.msg[0] ? ": " : "", w[i].err.msg);
        if (w[i].err.code == KV_OK) print_got(w[i].resp, 1);
    }
}

static bool is_etcd_error(int c) {
    return c == KV_ERR_COMPACTED || c == KV_ERR_FUTURE_REV || c == KV_ERR_EMPTY_KEY ||
           c == KV_ERR_TOO_MANY_OPS || c == KV_ERR_DUPLICATE_KEY || c == KV_ERR_LEASE_NOT_FOUND ||
           c == KV_ERR_KEY_NOT_FOUND || c == KV_ERR_VALUE_PROVIDED || c == KV_ERR_LEASE_PROVIDED;
}

/* Runs ops through kv_apply (as one group), or through the typed wrapper when `wrapper` and
 * n == 1, then through the model, and compares everything. */
static int do_apply(run *r, Etcdserverpb__RequestOp **ops, size_t n, bool wrapper) {
    km_model *m = &r->m;
    kv_write w[16];
    km_resp x[16];
    int xe[16];
    assert_true(n <= 16);
    memset(w, 0, sizeof w);
    cap_clear(&r->cb);
    kv_err err;
    memset(&err, 0, sizeof err);
    if (wrapper && n == 1) {
        Etcdserverpb__ResponseOp *g = kv_arena_alloc(r->ar, sizeof *g);
        assert_non_null(g);
        etcdserverpb__response_op__init(g);
        int rc = KV_ERR_INVALID;
        err.code = (kv_code)-99;
        switch (ops[0]->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
            g->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
            rc = kv_put(r->s, ops[0]->request_put, r->ar, &g->response_put, &err);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
            g->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
            rc = kv_delete_range(r->s, ops[0]->request_delete_range, r->ar,
                                 &g->response_delete_range, &err);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
            g->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN;
            rc = kv_txn(r->s, ops[0]->request_txn, r->ar, &g->response_txn, &err);
            break;
        default:
            abort();
        }
        if (rc != KV_OK && (int)err.code != rc)
            return mismatch(r, "wrapper returned %s but err.code is %s", code_name(rc),
                            code_name(err.code));
        w[0].err = err;
        w[0].err.code = (kv_code)rc;
        w[0].resp = rc == KV_OK ? g : NULL;
        w[0].revision = -1; /* the wrappers do not report it */
    } else {
        for (size_t i = 0; i < n; i++) {
            w[i].op = ops[i];
            w[i].arena = r->ar;
            w[i].revision = -1;
        }
        int rc = kv_apply(r->s, w, n, &err);
        if (rc != KV_OK) return mismatch(r, "kv_apply failed: %s %s", code_name(rc), err.msg);
    }
    size_t n0 = m->nrec;
    for (size_t i = 0; i < n; i++)
        xe[i] = km_apply_op(m, ops[i], &r->xp, &x[i]);
    for (size_t i = 0; i < n; i++) {
        char path[32];
        snprintf(path, sizeof path, "req[%zu]", i);
        int gc = w[i].err.code;
        bool code_ok = xe[i] == KM_ERR_ANY ? gc != KV_OK : gc == xe[i];
        if (!code_ok) {
            mismatch(r, "%s: error %s, expected %s", path, code_name(gc), code_name(xe[i]));
            break;
        }
        if (gc != KV_OK) {
            r->st.errors++;
            if (gc > 0 && gc <= KV_ERR_LEASE_PROVIDED) r->st.by_code[gc]++;
            if (w[i].resp) {
                mismatch(r, "%s: failed with %s but has a response", path, code_name(gc));
                break;
            }
            if (is_etcd_error(gc) && strcmp(w[i].err.msg, kv_code_message(gc)) != 0) {
                mismatch(r, "%s: message \"%s\", expected \"%s\"", path, w[i].err.msg,
                         kv_code_message(gc));
                break;
            }
            continue;
        }
        if (cmp_resp(r, path, &x[i], w[i].resp)) break;
        if (w[i].revision != -1 && w[i].revision != x[i].rev) {
            mismatch(r, "%s: kv_write.revision %lld, expected %lld", path, (long long)w[i].revision,
                     (long long)x[i].rev);
            break;
        }
    }
    if (!r->failed) check_commit_events(r, n0);
    if (r->failed) {
        dump_ops(r, ops, n, x, xe, w);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (xe[i] != KV_OK) continue;
        switch (ops[i]->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
            r->st.puts++;
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
            r->st.dels++;
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
            r->st.txns++;
            if (x[i].succeeded)
                r->st.txn_ok++;
            else
                r->st.txn_else++;
            break;
        default:
            break;
        }
    }
    return 0;
}

/* ---- reads --------------------------------------------------------------------------------- */

static int check_range_req(run *r, const Etcdserverpb__RangeRequest *q) {
    km_model *m = &r->m;
    km_resp x;
    int xe = q->key.len ? km_range(m, q, m->rev, &r->xp, &x) : KV_ERR_EMPTY_KEY;
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    op.request_range = (Etcdserverpb__RangeRequest *)q;
    Etcdserverpb__RangeResponse *g = NULL;
    kv_err err;
    memset(&err, 0, sizeof err);
    int rc = kv_range(r->s, q, r->ar, &g, &err);
    r->st.ranges++;
    if (rc != xe) {
        mismatch(r, "kv_range: %s (%s), expected %s", code_name(rc), err.msg, code_name(xe));
        print_op(&op, 1);
        return -1;
    }
    if (rc != KV_OK) {
        if (is_etcd_error(rc) && strcmp(err.msg, kv_code_message(rc)) != 0)
            return mismatch(r, "kv_range: message \"%s\", expected \"%s\"", err.msg,
                            kv_code_message(rc));
    } else {
        kv_status st;
        kv_status_get(r->s, &st);
        if (!g || !g->header || g->header->cluster_id != st.cluster_id ||
            g->header->member_id != st.member_id)
            return mismatch(r, "kv_range: header cluster/member id differ from kv_status");
        if (cmp_range(r, "kv_range", &x, g)) {
            print_op(&op, 1);
            fprintf(stderr, "expected:\n");
            print_exp(m, &x, 1);
            Etcdserverpb__ResponseOp go = ETCDSERVERPB__RESPONSE_OP__INIT;
            go.response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
            go.response_range = g;
            fprintf(stderr, "got:\n");
            print_got(&go, 1);
            return -1;
        }
    }
    /* the LIST fast path must give the same answer */
    raw_cap c = {0};
    kv_range_info info;
    memset(&info, 0, sizeof info);
    memset(&err, 0, sizeof err);
    rc = kv_range_raw(r->s, q, on_raw, &c, &info, &err);
    int res = 0;
    if (rc != xe) {
        res = mismatch(r, "kv_range_raw: %s (%s), expected %s", code_name(rc), err.msg,
                       code_name(xe));
        print_op(&op, 1);
    } else if (rc == KV_OK) {
        Etcdserverpb__RangeResponse rr = ETCDSERVERPB__RANGE_RESPONSE__INIT;
        Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
        h.revision = info.revision;
        rr.header = &h;
        rr.count = info.count;
        rr.more = info.more;
        rr.n_kvs = c.n;
        rr.kvs = calloc(c.n + 1, sizeof *rr.kvs);
        if (!rr.kvs) abort();
        for (size_t i = 0; i < c.n && !res; i++) {
            rr.kvs[i] = mvccpb__key_value__unpack(NULL, c.len[i], c.kv[i]);
            if (!rr.kvs[i]) res = mismatch(r, "kv_range_raw: kv %zu does not decode", i);
        }
        if (!res && (info.kvs != c.n || info.kv_bytes != c.bytes))
            res = mismatch(r, "kv_range_raw: info kvs=%zu kv_bytes=%zu, callback saw %zu / %zu",
                           info.kvs, info.kv_bytes, c.n, c.bytes);
        if (!res && cmp_range(r, "kv_range_raw", &x, &rr)) {
            print_op(&op, 1);
            fprintf(stderr, "expected:\n");
            print_exp(m, &x, 1);
            res = -1;
        }
        for (size_t i = 0; i < c.n; i++)
            if (rr.kvs[i]) mvccpb__key_value__free_unpacked(rr.kvs[i], NULL);
        free(rr.kvs);
    }
    for (size_t i = 0; i < c.n; i++)
        free(c.kv[i]);
    free(c.kv);
    free(c.len);
    return res;
}

static int check_random_range(run *r) {
    Etcdserverpb__RangeRequest *q = gen_range_req(r, 40);
    if (pct(r, 2)) q->key = bd(NULL, 0);
    return check_range_req(r, q);
}

/* The whole key space at revision rev. */
static int check_full_range(run *r, int64_t rev) {
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("", 1);
    q.range_end = from_key_end();
    q.revision = rev;
    return check_range_req(r, &q);
}

/* Reads the feed from start to end_rev in batches and checks each batch against the model:
 * exactly the events of [start, next_rev), whole revisions only, the limit respected. */
static int check_feed(run *r, int64_t start, int64_t end_rev, ProtobufCBinaryData key,
                      ProtobufCBinaryData end, bool with_prev, size_t max_ev, size_t max_bytes) {
    km_model *m = &r->m;
    int64_t eff_end = end_rev ? end_rev : m->rev;
    int64_t next = start;
    bool want_compacted = start < m->compact;
    char path[96];
    r->st.feeds++;
    for (int calls = 0;; calls++) {
        cap c = {0};
        kv_err err;
        memset(&err, 0, sizeof err);
        int64_t nr = -12345;
        int rc = kv_feed_read(r->s, next, end_rev, key.data, key.len, end.data, end.len, with_prev,
                              max_ev, max_bytes, on_feed, &c, &nr, &err);
        int res = 0;
        if (want_compacted) {
            if (rc != KV_ERR_COMPACTED)
                res = mismatch(r,
                               "kv_feed_read(start=%lld) below compaction %lld: %s, expected "
                               "COMPACTED",
                               (long long)start, (long long)m->compact, code_name(rc));
            else if (c.n)
                res = mismatch(r, "kv_feed_read: COMPACTED but delivered %zu events", c.n);
            cap_free(&c);
            return res;
        }
        if (rc != KV_OK) {
            res = mismatch(r, "kv_feed_read(start=%lld end=%lld) = %s (%s)", (long long)next,
                           (long long)end_rev, code_name(rc), err.msg);
        } else if (nr > eff_end + 1 || nr < next || (nr == next && next <= eff_end)) {
            res = mismatch(r,
                           "kv_feed_read(start=%lld end=%lld): next_rev %lld (no progress or past "
                           "the end %lld)",
                           (long long)next, (long long)end_rev, (long long)nr, (long long)eff_end);
        }
        size_t gi = 0, before_last = 0;
        int64_t last_main = c.n ? c.v[c.n - 1].main : 0;
        for (size_t i = km_first_at(m, next); !res && i < m->nrec && m->rec[i].main < nr; i++) {
            const km_rec *x = &m->rec[i];
            if (!km_in_range(m->keys[x->k], key, end)) continue;
            snprintf(path, sizeof path, "feed(start=%lld batch from %lld).ev[%zu]",
                     (long long)start, (long long)next, gi);
            if (gi >= c.n) {
                res = mismatch(r, "%s: missing event {%lld,%lld}", path, (long long)x->main,
                               (long long)x->sub);
                break;
            }
            int mode = !with_prev                              ? PREV_NONE
                       : (m->compact && x->main == m->compact) ? PREV_MAYBE
                                                               : PREV_STRICT;
            res = cmp_event(r, path, &c.v[gi], (long)i, mode);
            if (c.v[gi].main < last_main) before_last++;
            gi++;
        }
        if (!res && gi != c.n)
            res = mismatch(r, "feed(start=%lld batch from %lld): %zu events, expected %zu",
                           (long long)start, (long long)next, c.n, gi);
        if (!res && nr <= eff_end) { /* stopped early: at a limit, after a whole revision */
            if (c.n == 0)
                res = mismatch(r, "feed batch from %lld stopped at %lld with no events",
                               (long long)next, (long long)nr);
            else if (nr != last_main + 1)
                res = mismatch(r, "feed batch from %lld: next_rev %lld, last event at %lld",
                               (long long)next, (long long)nr, (long long)last_main);
            else if (max_bytes == SIZE_MAX && c.n < max_ev)
                res = mismatch(r, "feed batch from %lld stopped after %zu events (max_events %zu)",
                               (long long)next, c.n, max_ev);
        }
        if (!res && max_bytes == SIZE_MAX && c.n && before_last >= max_ev)
            res = mismatch(r,
                           "feed batch from %lld: %zu events before its last revision, max_events "
                           "%zu: it should have stopped earlier",
                           (long long)next, before_last, max_ev);
        r->st.feed_events += (long)c.n;
        cap_free(&c);
        if (res) {
            fprintf(stderr, "  feed: start=%lld end_rev=%lld key=", (long long)start,
                    (long long)end_rev);
            pbytes(key.data, key.len);
            fprintf(stderr, " range_end=");
            pbytes(end.data, end.len);
            fprintf(stderr, " prev_kv=%d max_events=%zu max_bytes=%zu\n", with_prev, max_ev,
                    max_bytes);
            return -1;
        }
        if (nr > eff_end) return 0;
        next = nr;
        if (calls > 1000000) return mismatch(r, "feed does not end");
    }
}

static int check_random_feed(run *r) {
    km_model *m = &r->m;
    int64_t lo = m->compact > 1 ? m->compact : 1;
    int64_t start;
    int c = (int)rn(r, 100);
    if (c < 8 && m->compact > 1)
        start = rin(r, 1, m->compact - 1);
    else if (c < 60)
        start = rin(r, m->rev - 40 > lo ? m->rev - 40 : lo, m->rev + 1);
    else if (c < 70)
        start = lo;
    else
        start = rin(r, lo, m->rev + 1);
    int64_t end_rev = 0;
    if (pct(r, 30) && start <= m->rev) end_rev = rin(r, start, m->rev);
    ProtobufCBinaryData key = bd("", 1), end = from_key_end();
    if (pct(r, 60)) gen_span(r, &key, &end, true, false);
    size_t max_ev = pct(r, 40) ? SIZE_MAX : (size_t)rin(r, 1, 8);
    size_t max_bytes = pct(r, 70) ? SIZE_MAX : (size_t)rin(r, 1, 3000);
    if (max_ev == SIZE_MAX && max_bytes == SIZE_MAX && m->rev - start > 200) max_ev = 64;
    return check_feed(r, start, end_rev, key, end, pct(r, 50), max_ev, max_bytes);
}

static int check_all(run *r) {
    km_model *m = &r->m;
    if (check_status(r) || check_full_range(r, 0)) return -1;
    if (m->compact && check_full_range(r, m->compact)) return -1;
    int64_t lo = m->compact > 1 ? m->compact : 1;
    for (int i = 0; i < 3; i++)
        if (check_full_range(r, rin(r, lo, m->rev))) return -1;
    return check_random_feed(r);
}

/* ---- compaction and reopen ------------------------------------------------------------------ */

static int do_compact_steps(run *r, int n) {
    for (int i = 0; i < n; i++) {
        bool done = false;
        kv_err err;
        memset(&err, 0, sizeof err);
        int rc = kv_compact_step(r->s, (size_t)rin(r, 1, 16), &done, &err);
        r->st.steps++;
        if (rc != KV_OK) return mismatch(r, "kv_compact_step: %s %s", code_name(rc), err.msg);
        if (done) {
            kv_status st;
            kv_status_get(r->s, &st);
            if (st.compact_finished != st.compact_revision)
                return mismatch(r, "kv_compact_step done but compact_finished %lld != %lld",
                                (long long)st.compact_finished, (long long)st.compact_revision);
            break;
        }
    }
    return 0;
}

static int do_compact(run *r) {
    km_model *m = &r->m;
    int64_t rev;
    int c = (int)rn(r, 100);
    if (c < 12 && m->compact >= 1)
        rev = rin(r, m->compact > 1 ? m->compact - 1 : 1, m->compact);
    else if (c < 22)
        rev = m->rev + rin(r, 1, 2);
    else if (c < 30)
        rev = m->rev;
    else if (c < 45)
        rev = rin(r, m->compact + 1, m->rev);
    else
        rev = rin(r, m->compact + 1, m->rev - 60); /* keep some history readable */
    if (rev < 1) rev = 1;
    cap_clear(&r->cb);
    kv_err err;
    memset(&err, 0, sizeof err);
    int rc = kv_compact(r->s, rev, &err);
    int xe = km_compact(m, rev);
    r->st.compacts++;
    if (rc != xe)
        return mismatch(r, "kv_compact(%lld): %s (%s), expected %s", (long long)rev, code_name(rc),
                        err.msg, code_name(xe));
    if (rc != KV_OK && strcmp(err.msg, kv_code_message(rc)) != 0)
        return mismatch(r, "kv_compact: message \"%s\", expected \"%s\"", err.msg,
                        kv_code_message(rc));
    if (r->cb.n)
        return mismatch(r, "kv_compact: the commit callback delivered %zu events", r->cb.n);
    if (check_status(r)) return -1;
    return do_compact_steps(r, (int)rn(r, 4));
}

static bool lease_exists(void *ud, int64_t lease) {
    (void)ud;
    return lease != 3;
}

static int store_open(run *r) {
    kv_err err;
    memset(&err, 0, sizeof err);
    int rc = kv_open(r->dir, &r->opt, &r->s, &err);
    if (rc != KV_OK) return mismatch(r, "kv_open: %s %s", code_name(rc), err.msg);
    kv_set_commit_cb(r->s, on_commit, &r->cb);
    kv_set_lease_checker(r->s, lease_exists, NULL);
    return 0;
}

static int do_reopen(run *r) {
    kv_close(r->s);
    r->s = NULL;
    r->st.reopens++;
    if (store_open(r)) return -1;
    return check_all(r);
}

/* ---- concurrent readers -------------------------------------------------------------------
 * Reads may run on any thread while the writer applies, compacts and steps physical
 * compaction. Readers check each whole-key-space read (kv_range, kv_range_raw; current and
 * historical) against a hash of the model state at that revision, published by the writer
 * after each op: a torn read, a header revision not matching the snapshot, or a historical read
 * that succeeds on data compaction already removed all show up as a hash mismatch. */

#define FNV0 0xcbf29ce484222325ULL

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t hash_kv(uint64_t h, const Mvccpb__KeyValue *kv) {
    int64_t f[6] = {(int64_t)kv->key.len, kv->create_revision, kv->mod_revision,
                    kv->version,          kv->lease,           (int64_t)kv->value.len};
    h = fnv(h, f, sizeof f);
    h = fnv(h, kv->key.data, kv->key.len);
    return fnv(h, kv->value.data, kv->value.len);
}

static uint64_t hash_model(const km_model *m, int64_t rev) {
    uint64_t h = FNV0;
    for (int k = 0; k < m->nkeys; k++) {
        long i = km_at(m, k, rev);
        if (i < 0) continue;
        const km_rec *x = &m->rec[i];
        Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT;
        kv.key = m->keys[k];
        kv.create_revision = x->create;
        kv.mod_revision = x->main;
        kv.version = x->version;
        kv.lease = x->lease;
        kv.value = bd(x->value, x->vlen);
        h = hash_kv(h, &kv);
    }
    return h;
}

static void publish(run *r) {
    if (!r->concurrent) return;
    int64_t p = atomic_load_explicit(&r->published, memory_order_relaxed);
    if (r->m.rev >= r->hash_cap) abort();
    for (int64_t v = p + 1; v <= r->m.rev; v++)
        r->hash[v] = hash_model(&r->m, v);
    atomic_store_explicit(&r->published, r->m.rev, memory_order_release);
}

static void rfail(run *r, const char *fmt, ...) {
    pthread_mutex_lock(&r->rmu);
    if (!atomic_load(&r->rfail)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->rmsg, sizeof r->rmsg, fmt, ap);
        va_end(ap);
        atomic_store(&r->rfail, true);
    }
    pthread_mutex_unlock(&r->rmu);
}

typedef struct reader {
    run *r;
    pthread_t th;
    uint64_t rng;
    long reads, hist, compacted, feeds;
} reader;

static uint64_t rd_rnd(reader *d) {
    d->rng ^= d->rng << 13;
    d->rng ^= d->rng >> 7;
    d->rng ^= d->rng << 17;
    return d->rng;
}

typedef struct raw_hash {
    uint64_t h;
    size_t n;
    bool bad;
} raw_hash;

static int on_raw_hash(void *ud, const uint8_t *p, size_t len) {
    raw_hash *x = ud;
    Mvccpb__KeyValue *kv = mvccpb__key_value__unpack(NULL, len, p);
    if (!kv) {
        x->bad = true;
        return 1;
    }
    x->h = hash_kv(x->h, kv);
    x->n++;
    mvccpb__key_value__free_unpacked(kv, NULL);
    return 0;
}

typedef struct feed_order {
    int64_t start, main, sub;
    bool bad;
} feed_order;

static int on_feed_order(void *ud, const kv_event *ev) {
    feed_order *f = ud;
    if (ev->main < f->start || ev->main < f->main || (ev->main == f->main && ev->sub <= f->sub))
        f->bad = true;
    f->main = ev->main;
    f->sub = ev->sub;
    return 0;
}

static void reader_feed(reader *d, int64_t pub) {
    run *r = d->r;
    static const uint8_t zero = 0;
    int64_t start = pub - (int64_t)(rd_rnd(d) % 40);
    if (start < 1) start = 1;
    feed_order f = {start, 0, -1, false};
    int64_t next = 0;
    kv_err err;
    int rc = kv_feed_read(r->s, start, 0, &zero, 1, &zero, 1, rd_rnd(d) % 2, 16, SIZE_MAX,
                          on_feed_order, &f, &next, &err);
    d->feeds++;
    if (rc == KV_ERR_COMPACTED) return;
    if (rc != KV_OK)
        rfail(r, "kv_feed_read(%lld): %s %s", (long long)start, code_name(rc), err.msg);
    else if (f.bad)
        rfail(r, "kv_feed_read(%lld): events out of order", (long long)start);
    else if (next <= f.main || next < start)
        rfail(r, "kv_feed_read(%lld): next_rev %lld after events up to %lld", (long long)start,
              (long long)next, (long long)f.main);
}

static void *reader_main(void *arg) {
    reader *d = arg;
    run *r = d->r;
    kv_arena *a = kv_arena_new();
    static const uint8_t zero = 0;
    int64_t last_hdr = 0, last_status = 0;
    while (a && !atomic_load(&r->stop) && !atomic_load(&r->rfail)) {
        int64_t pub = atomic_load_explicit(&r->published, memory_order_acquire);
        uint64_t dice = rd_rnd(d);
        if (dice % 8 == 0) {
            reader_feed(d, pub);
            continue;
        }
        Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
        q.key = bd(&zero, 1);
        q.range_end = bd(&zero, 1);
        bool hist = dice / 8 % 2, raw = dice / 16 % 2;
        if (hist) q.revision = pub - (int64_t)(dice / 32 % 50);
        if (q.revision < 1 && hist) q.revision = 1;
        uint64_t h = FNV0;
        int64_t hdr = 0, count = 0;
        size_t n = 0;
        kv_err err;
        int rc;
        if (!raw) {
            Etcdserverpb__RangeResponse *g = NULL;
            rc = kv_range(r->s, &q, a, &g, &err);
            if (rc == KV_OK) {
                hdr = g->header ? g->header->revision : -1;
                count = g->count;
                n = g->n_kvs;
                for (size_t i = 0; i < g->n_kvs; i++)
                    h = hash_kv(h, g->kvs[i]);
            }
        } else {
            raw_hash x = {FNV0, 0, false};
            kv_range_info info;
            rc = kv_range_raw(r->s, &q, on_raw_hash, &x, &info, &err);
            if (rc == KV_OK) {
                if (x.bad || x.n != info.kvs) rfail(r, "kv_range_raw: bad kv or count");
                hdr = info.revision;
                count = info.count;
                n = x.n;
                h = x.h;
            }
        }
        kv_arena_reset(a);
        d->reads++;
        d->hist += hist;
        if (rc == KV_ERR_COMPACTED && hist) {
            d->compacted++;
            continue;
        }
        if (rc != KV_OK) {
            rfail(r, "%s(rev=%lld): %s %s", raw ? "kv_range_raw" : "kv_range",
                  (long long)q.revision, code_name(rc), err.msg);
            break;
        }
        if (hdr < last_hdr || (hist && hdr < q.revision) || count != (int64_t)n) {
            rfail(r, "%s(rev=%lld): header revision %lld (previous read %lld), count %lld, %zu kvs",
                  raw ? "kv_range_raw" : "kv_range", (long long)q.revision, (long long)hdr,
                  (long long)last_hdr, (long long)count, n);
            break;
        }
        last_hdr = hdr;
        int64_t at = hist ? q.revision : hdr;
        while (atomic_load_explicit(&r->published, memory_order_acquire) < at) {
            if (atomic_load(&r->stop)) break;
            sched_yield();
        }
        if (atomic_load_explicit(&r->published, memory_order_acquire) < at) break;
        if (h != r->hash[at]) {
            rfail(r,
                  "%s(rev=%lld) while writing: the %zu kvs read are not the state at revision "
                  "%lld",
                  raw ? "kv_range_raw" : "kv_range", (long long)q.revision, n, (long long)at);
            break;
        }
        kv_status st;
        kv_status_get(r->s, &st);
        if (st.revision < last_status) {
            rfail(r, "kv_status revision went back from %lld to %lld", (long long)last_status,
                  (long long)st.revision);
            break;
        }
        last_status = st.revision;
    }
    kv_arena_free(a);
    return NULL;
}

/* ---- the driver ---------------------------------------------------------------------------- */

static int one_op(run *r) {
    Etcdserverpb__RequestOp *ops[16];
    int c = (int)rn(r, 1000);
    bool wrapper = pct(r, 30);
    if (c < 280) {
        ops[0] = pct(r, 2) ? gen_invalid(r) : gen_put(r, -1, true);
        return do_apply(r, ops, 1,
                        wrapper &&
                            ops[0]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT);
    }
    if (c < 400) {
        ops[0] = gen_delete(r, -1, true);
        return do_apply(r, ops, 1, wrapper);
    }
    if (c < 600) {
        uint64_t used = 0;
        if (pct(r, 1))
            ops[0] = gen_big_txn(r, KV_MAX_TXN_OPS);
        else if (pct(r, 4))
            ops[0] = gen_invalid(r);
        else
            ops[0] = gen_txn_op(r, 1, &used);
        bool txn = ops[0]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
        return do_apply(r, ops, 1, wrapper && txn);
    }
    if (c < 730) { /* a group: several requests, one commit */
        size_t n = (size_t)rin(r, 2, 8);
        for (size_t i = 0; i < n; i++) {
            int k = (int)rn(r, 100);
            uint64_t used = 0;
            if (k < 40)
                ops[i] = gen_put(r, -1, true);
            else if (k < 55)
                ops[i] = gen_delete(r, -1, true);
            else if (k < 85)
                ops[i] = gen_txn_op(r, 1, &used);
            else
                ops[i] = gen_range(r, 40);
        }
        if (pct(r, 20)) ops[rn(r, (int64_t)n)] = gen_invalid(r);
        r->st.groups++;
        return do_apply(r, ops, n, false);
    }
    if (c < 850) return check_random_range(r);
    if (c < 900) return check_random_feed(r);
    if (c < 912) return do_compact(r);
    if (c < 975) return do_compact_steps(r, (int)rin(r, 1, 4));
    if (c < 985) return r->concurrent ? check_all(r) : do_reopen(r);
    return check_all(r);
}

static int run_seed(uint64_t seed, long nops, bool verbose, int nreaders) {
    run *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->seed = seed;
    r->rng = seed * 0x2545f4914f6cdd1dULL + 1;
    r->nops = nops;
    for (int i = 0; i < NKEYS; i++)
        r->keys[i] = bds(key_names[i]);
    qsort(r->keys, NKEYS, sizeof r->keys[0], cmp_bd);
    for (int i = 0; i < NKEYS; i++)
        r->probes[i] = r->keys[i];
    for (int i = NKEYS; i < NPROBES; i++)
        r->probes[i] = bds(extra_probes[i - NKEYS]);
    km_init(&r->m, r->keys, NKEYS);
    r->m.missing_lease = 3;
    r->dir = tu_mkdtemp("kv-model");
    r->opt.no_sync = true;
    r->opt.map_size = (size_t)512 << 20;
    r->ar = kv_arena_new();
    assert_non_null(r->ar);
    int rc = store_open(r);
    if (!rc) rc = check_all(r);
    reader rd[4];
    if (nreaders > 4) nreaders = 4;
    if (nreaders > 0) {
        r->concurrent = true;
        r->hash_cap = nops * 9 + 16;
        r->hash = calloc((size_t)r->hash_cap, sizeof *r->hash);
        if (!r->hash) abort();
        atomic_init(&r->published, 0);
        atomic_init(&r->stop, false);
        atomic_init(&r->rfail, false);
        pthread_mutex_init(&r->rmu, NULL);
        publish(r);
        for (int i = 0; i < nreaders; i++) {
            rd[i] = (reader){.r = r, .rng = seed * 7919 + (uint64_t)i * 104729 + 1};
            if (pthread_create(&rd[i].th, NULL, reader_main, &rd[i])) abort();
        }
    }
    for (r->op = 0; !rc && r->op < nops; r->op++) {
        rc = one_op(r);
        if (!rc && r->op % 50 == 49) rc = check_all(r);
        publish(r);
        if (!rc && r->concurrent && atomic_load(&r->rfail)) {
            pthread_mutex_lock(&r->rmu);
            rc = mismatch(r, "concurrent reader: %s", r->rmsg);
            pthread_mutex_unlock(&r->rmu);
        }
        kv_arena_reset(r->ar);
        km_pool_reset(&r->rq);
        km_pool_reset(&r->xp);
    }
    if (r->concurrent) {
        atomic_store(&r->stop, true);
        long reads = 0, hist = 0, compacted = 0, feeds = 0;
        for (int i = 0; i < nreaders; i++) {
            pthread_join(rd[i].th, NULL);
            reads += rd[i].reads, hist += rd[i].hist, compacted += rd[i].compacted;
            feeds += rd[i].feeds;
        }
        if (!rc && atomic_load(&r->rfail)) rc = mismatch(r, "concurrent reader: %s", r->rmsg);
        if (verbose || rc)
            printf("kv_model seed=%llu: %d concurrent readers: %ld full reads (%ld historical, %ld "
                   "of them compacted), %ld feed reads\n",
                   (unsigned long long)seed, nreaders, reads, hist, compacted, feeds);
        if (!rc && reads - compacted < 10) rc = mismatch(r, "the readers hardly read anything");
        pthread_mutex_destroy(&r->rmu);
        free(r->hash);
        r->concurrent = false;
    }
    if (!rc) rc = do_reopen(r);
    if (!rc) {
        /* finish physical compaction and check that nothing visible changed */
        for (int i = 0; i < 100000 && !rc; i++) {
            bool done = false;
            kv_err err;
            rc = kv_compact_step(r->s, 64, &done, &err);
            if (rc) rc = mismatch(r, "kv_compact_step: %s", code_name(rc));
            if (done) break;
        }
        if (!rc) rc = check_all(r);
    }
    const stats *s = &r->st;
    if (verbose || rc)
        printf("kv_model seed=%llu ops=%ld rev=%lld compact=%lld: puts=%ld dels=%ld txns=%ld "
               "(then %ld, else %ld) groups=%ld errors=%ld events=%ld ranges=%ld feeds=%ld "
               "(%ld events) compacts=%ld steps=%ld reopens=%ld -> %s\n",
               (unsigned long long)seed, r->op, (long long)r->m.rev, (long long)r->m.compact,
               s->puts, s->dels, s->txns, s->txn_ok, s->txn_else, s->groups, s->errors, s->events,
               s->ranges, s->feeds, s->feed_events, s->compacts, s->steps, s->reopens,
               rc ? "FAILED" : "ok");
    if (verbose || rc) {
        printf("  request errors:");
        for (int c = 1; c <= KV_ERR_LEASE_PROVIDED; c++)
            if (s->by_code[c]) printf(" %s=%ld", code_name(c), s->by_code[c]);
        printf("\n");
    }
    if (r->s) kv_close(r->s);
    kv_arena_free(r->ar);
    km_pool_free(&r->rq);
    km_pool_free(&r->xp);
    cap_free(&r->cb);
    km_free(&r->m);
    if (rc)
        fprintf(stderr, "store left in %s for inspection\n", r->dir), free(r->dir);
    else
        tu_rmtree(r->dir);
    free(r);
    return rc;
}

static long env_long(const char *name, long dflt) {
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

static void test_model_random(void **state) {
    (void)state;
    long seed0 = env_long("RELIST_MODEL_SEED", 1);
    long seeds = env_long("RELIST_MODEL_SEEDS", 1);
    long ops = env_long("RELIST_MODEL_OPS", 5000);
    int failures = 0;
    for (long i = 0; i < seeds; i++)
        failures += run_seed((uint64_t)(seed0 + i), ops, true, 0) != 0;
    if (failures) fail_msg("%d of %ld seeds failed (see above)", failures, seeds);
}

/* The same operations with two reader threads checking snapshots meanwhile. */
static void test_concurrent_reads(void **state) {
    (void)state;
    long seed0 = env_long("RELIST_MODEL_SEED", 1);
    long seeds = env_long("RELIST_MODEL_SEEDS", 1);
    long ops = env_long("RELIST_MODEL_OPS", 5000);
    int failures = 0;
    for (long i = 0; i < seeds; i++)
        failures += run_seed((uint64_t)(seed0 + i), ops, true, 2) != 0;
    if (failures) fail_msg("%d of %ld seeds failed (see above)", failures, seeds);
}

/* etcd's messages and gRPC codes, which the server passes through unchanged. */
static void test_error_messages(void **state) {
    (void)state;
    assert_string_equal(kv_code_message(KV_ERR_COMPACTED),
                        "etcdserver: mvcc: required revision has been compacted");
    assert_string_equal(kv_code_message(KV_ERR_FUTURE_REV),
                        "etcdserver: mvcc: required revision is a future revision");
    assert_string_equal(kv_code_message(KV_ERR_EMPTY_KEY), "etcdserver: key is not provided");
    assert_string_equal(kv_code_message(KV_ERR_TOO_MANY_OPS),
                        "etcdserver: too many operations in txn request");
    assert_string_equal(kv_code_message(KV_ERR_DUPLICATE_KEY),
                        "etcdserver: duplicate key given in txn request");
    assert_string_equal(kv_code_message(KV_ERR_LEASE_NOT_FOUND),
                        "etcdserver: requested lease not found");
    assert_string_equal(kv_code_message(KV_ERR_NOSPACE),
                        "etcdserver: mvcc: database space exceeded");
    assert_int_equal(kv_code_grpc_status(KV_OK), 0);
    assert_int_equal(kv_code_grpc_status(KV_ERR_COMPACTED), 11);
    assert_int_equal(kv_code_grpc_status(KV_ERR_FUTURE_REV), 11);
    assert_int_equal(kv_code_grpc_status(KV_ERR_EMPTY_KEY), 3);
    assert_int_equal(kv_code_grpc_status(KV_ERR_TOO_MANY_OPS), 3);
    assert_int_equal(kv_code_grpc_status(KV_ERR_DUPLICATE_KEY), 3);
    assert_int_equal(kv_code_grpc_status(KV_ERR_LEASE_NOT_FOUND), 5);
    assert_int_equal(kv_code_grpc_status(KV_ERR_NOSPACE), 8);
    assert_string_equal(kv_code_message(KV_ERR_KEY_NOT_FOUND), "etcdserver: key not found");
    assert_string_equal(kv_code_message(KV_ERR_VALUE_PROVIDED), "etcdserver: value is provided");
    assert_string_equal(kv_code_message(KV_ERR_LEASE_PROVIDED), "etcdserver: lease is provided");
    assert_int_equal(kv_code_grpc_status(KV_ERR_KEY_NOT_FOUND), 3);
    assert_int_equal(kv_code_grpc_status(KV_ERR_VALUE_PROVIDED), 3);
    assert_int_equal(kv_code_grpc_status(KV_ERR_LEASE_PROVIDED), 3);
    for (int c = KV_OK; c <= KV_ERR_LEASE_PROVIDED; c++)
        assert_non_null(kv_code_message((kv_code)c));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_model_random),
        cmocka_unit_test(test_concurrent_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
