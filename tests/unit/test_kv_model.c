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
 * - no_sync, except in test_crash_replay: there the store keeps its write-ahead log and every
 *   other reopen is kv_close_unclean (a crash), so recovery is checked against the model.
 * - test_concurrent_reads replays the same operations with two reader threads checking every
 *   whole-key-space read (current, historical, raw) against a hash of the model state at the
 *   revision read, while the writer applies, compacts and steps physical compaction.
 * - One executable on purpose: generator, driver and comparator share the run state. The model
 *   itself lives in kv_model.h; for size, the run state and printers are in kv_model_run.h, the
 *   generator in kv_model_gen.h and the comparators in kv_model_check.h (this file only).
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
#include "kv_model_check.h"
#include "kv_model_gen.h"
#include "kv_model_run.h"
#include "testutil.h"

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
    if (r->durable && r->st.reopens % 2 == 0)
        kv_close_unclean(r->s); /* recovery must rebuild exactly the acknowledged state */
    else
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

static int run_seed(uint64_t seed, long nops, bool verbose, int nreaders, bool durable) {
    run *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->durable = durable;
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
    r->opt.no_sync = !durable;
    r->opt.wal_checkpoint_bytes = 8 << 10; /* many checkpoints, replays of any length */
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

/* Runs the seeds the environment asks for (see the top of this file) with nreaders concurrent
 * readers; returns how many failed and, in *seeds, how many ran. */
static int run_seeds(int nreaders, bool durable, long *seeds) {
    long seed0 = env_long("RELIST_MODEL_SEED", 1);
    long ops = env_long("RELIST_MODEL_OPS", 5000);
    *seeds = env_long("RELIST_MODEL_SEEDS", 1);
    int failures = 0;
    for (long i = 0; i < *seeds; i++)
        failures += run_seed((uint64_t)(seed0 + i), ops, true, nreaders, durable) != 0;
    return failures;
}

static void test_model_random(void **state) {
    (void)state;
    long seeds;
    int failures = run_seeds(0, false, &seeds);
    if (failures) fail_msg("%d of %ld seeds failed (see above)", failures, seeds);
}

/* The same operations with two reader threads checking snapshots meanwhile. */
static void test_concurrent_reads(void **state) {
    (void)state;
    long seeds;
    int failures = run_seeds(2, false, &seeds);
    if (failures) fail_msg("%d of %ld seeds failed (see above)", failures, seeds);
}

/* The same operations on a durable store (write-ahead log, a checkpoint every 8 KiB of it),
 * where every other reopen follows a crash: the meta pages are put back to the checkpoint's and
 * the log replays; the model must not see the difference. */
static void test_crash_replay(void **state) {
    (void)state;
    long seeds;
    int failures = run_seeds(0, true, &seeds);
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
        cmocka_unit_test(test_crash_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
