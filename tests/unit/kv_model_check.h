/* kv_model_check.h — the comparators of test_kv_model.c: engine responses against the model's
 * (headers, key-values, ranges, txns, errors), the commit callback and change feed events, the
 * store status, and the read checks (current and historical ranges, kv_range_raw, the feed with
 * batching and continuation). Each returns 0, or -1 after reporting through mismatch().
 *
 * Key decisions:
 * - Part of test_kv_model.c, split out for size only: included by that file alone, after
 *   kv_model_run.h and kv_model_gen.h (the random read checks draw their requests from there).
 * - Where etcd leaves a result unspecified (order of sort ties; prev_kv of an event at exactly
 *   the compaction revision) either answer is accepted; everything else must match exactly.
 */
#ifndef RELIST_KV_MODEL_CHECK_H
#define RELIST_KV_MODEL_CHECK_H

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
#include "kv_model_gen.h"
#include "kv_model_run.h"

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
        /* compaction may have removed it: below the compaction revision, or an earlier change
         * of the key in the compaction revision itself */
        if (prev_mode == PREV_MAYBE && m->rec[p].main <= m->compact) return 0;
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

static bool is_etcd_error(int c) {
    return c == KV_ERR_COMPACTED || c == KV_ERR_FUTURE_REV || c == KV_ERR_EMPTY_KEY ||
           c == KV_ERR_TOO_MANY_OPS || c == KV_ERR_DUPLICATE_KEY || c == KV_ERR_LEASE_NOT_FOUND ||
           c == KV_ERR_KEY_NOT_FOUND || c == KV_ERR_VALUE_PROVIDED || c == KV_ERR_LEASE_PROVIDED;
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

/* True when record i's key changes again later in the same main revision. */
static bool superseded_in_rev(const km_model *m, size_t i) {
    for (size_t j = i + 1; j < m->nrec && m->rec[j].main == m->rec[i].main; j++)
        if (m->rec[j].k == m->rec[i].k) return true;
    return false;
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
            /* Compaction keeps a key's last change at or below the compaction revision (etcd's
             * keyIndex.compact): an earlier change of the same key in that same revision (a
             * txn's put then delete) may be gone once physical removal passed it. */
            if (m->compact && x->main == m->compact && superseded_in_rev(m, i) &&
                (gi >= c.n || c.v[gi].main != x->main || c.v[gi].sub != x->sub))
                continue;
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

#endif
