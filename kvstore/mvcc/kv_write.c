/* kv_write.c — group commit (kv_apply), put and delete-range execution, and the single-request
 * wrappers.
 *
 * Every request is validated completely before its first LMDB write (etcd's v3rpc checks, then
 * the apply-time checks against the current state), so a request that fails validation leaves
 * nothing behind and the group goes on. A failure after a request started writing (the LMDB map
 * filling up, or etcd's ignore_value-after-delete corner inside one txn) cannot be rolled back
 * inside the LMDB transaction without nested txns; instead the attempt is aborted and replayed
 * without that request. Such failures are rare, so the common path pays nothing for isolation.
 * Puts and deletes keep the lease attachments in step (kv_lease_track); a kv_write whose op is a
 * kv_write.lease is executed by kv_lease.c inside the same group.
 */
#include <stdlib.h>
#include <string.h>

#include "kv_internal.h"

/* ---- change recording ---- */

static int ev_add(kv_wctx *w, int type, int64_t main, int64_t sub, const uint8_t *kv, size_t kv_len,
                  const uint8_t *prev, size_t prev_len, bool has_prev, kv_err *err) {
    if (!w->want_events) return KV_OK;
    if (w->n_evs == w->cap_evs) {
        size_t nc = w->cap_evs ? w->cap_evs * 2 : 64;
        kv_evrec *ne = realloc(w->evs, nc * sizeof(*ne));
        if (!ne) return kv_seterr(err, KV_ERR_NOMEM, NULL);
        w->evs = ne;
        w->cap_evs = nc;
    }
    if (kv_buf_reserve(&w->evbytes, kv_len + prev_len)) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    kv_evrec *e = &w->evs[w->n_evs++];
    e->type = type;
    e->main = main;
    e->sub = sub;
    e->kv_off = w->evbytes.len;
    e->kv_len = kv_len;
    memcpy(w->evbytes.p + w->evbytes.len, kv, kv_len);
    w->evbytes.len += kv_len;
    e->prev_off = w->evbytes.len;
    e->prev_len = prev_len;
    e->has_prev = has_prev;
    if (prev_len) memcpy(w->evbytes.p + w->evbytes.len, prev, prev_len);
    w->evbytes.len += prev_len;
    return KV_OK;
}

/* Writes one revision of a key: history record, key index entry, and the "cur" update.
 * `rec` is in w->scratch at offset 1 (after the flag byte). */
static int write_rev(kv_wctx *w, const uint8_t *key, size_t key_len, int64_t main, int64_t sub,
                     unsigned flag, size_t rec_len, kv_err *err) {
    kv_store *s = w->s;
    uint8_t rk[KV_REV_LEN], ik[KV_IDX_LEN];
    kv_rev_put(rk, main, sub);
    memcpy(ik, rk, KV_REV_LEN);
    ik[16] = (uint8_t)flag;
    w->scratch.p[0] = (uint8_t)flag;
    w->dirty = true;
    MDB_val k = {KV_REV_LEN, rk}, v = {rec_len + 1, w->scratch.p};
    int rc = mdb_put(w->txn, s->hist, &k, &v, MDB_APPEND);
    if (rc) return kv_mdb_err(err, rc, "write history");
    MDB_val uk = {key_len, (void *)key}, iv = {KV_IDX_LEN, ik};
    rc = mdb_put(w->txn, s->kidx, &uk, &iv, MDB_APPENDDUP);
    if (rc) return kv_mdb_err(err, rc, "write key index");
    if (flag & KV_FLAG_TOMBSTONE) {
        rc = mdb_del(w->txn, s->cur, &uk, NULL);
    } else {
        MDB_val cv = {rec_len, w->scratch.p + 1};
        rc = mdb_put(w->txn, s->cur, &uk, &cv, 0);
    }
    if (rc) return kv_mdb_err(err, rc, "write current");
    return KV_OK;
}

static int encode_scratch(kv_wctx *w, const kv_rec *r, size_t *len, kv_err *err) {
    size_t n = kv_rec_size(r);
    w->scratch.len = 0;
    if (kv_buf_reserve(&w->scratch, n + 1)) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    *len = kv_rec_encode(r, w->scratch.p + 1);
    return KV_OK;
}

static Etcdserverpb__ResponseHeader *new_header(kv_wctx *w, kv_arena *a, bool top, int64_t rev) {
    Etcdserverpb__ResponseHeader *h = kv_arena_alloc(a, sizeof(*h));
    if (!h) return NULL;
    etcdserverpb__response_header__init(h);
    if (top)
        kv_fill_header(w->s, h, rev);
    else
        h->revision = rev;
    return h;
}

/* ---- put ---- */

int kv_check_put(const Etcdserverpb__PutRequest *req, kv_err *err) {
    if (req->key.len == 0) return kv_seterr(err, KV_ERR_EMPTY_KEY, NULL);
    if (req->ignore_value && req->value.len) return kv_seterr(err, KV_ERR_VALUE_PROVIDED, NULL);
    if (req->ignore_lease && req->lease) return kv_seterr(err, KV_ERR_LEASE_PROVIDED, NULL);
    if (req->key.len > KV_MAX_KEY_LEN)
        return kv_seterr(err, KV_ERR_KEY_TOO_LONG,
                         "kvstore: key is too long (%zu bytes; at most %d)", req->key.len,
                         KV_MAX_KEY_LEN);
    return KV_OK;
}

static int cur_get(kv_wctx *w, const uint8_t *key, size_t key_len, MDB_val *v, kv_err *err) {
    MDB_val k = {key_len, (void *)key};
    int rc = mdb_get(w->txn, w->s->cur, &k, v);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return -kv_mdb_err(err, rc, "read current");
    return 1;
}

int kv_check_put_state(kv_wctx *w, const Etcdserverpb__PutRequest *req, bool lease_first,
                       kv_err *err) {
    kv_store *s = w->s;
    bool lease_ok = true;
    if (req->lease && s->lessor.enforce) {
        int r = kv_lease_exists(s, w->txn, req->lease, err);
        if (r < 0) return -r;
        lease_ok = r;
    } else if (req->lease && s->lease_fn) {
        lease_ok = s->lease_fn(s->lease_ud, req->lease);
    }
    if (lease_first && !lease_ok) return kv_seterr(err, KV_ERR_LEASE_NOT_FOUND, NULL);
    if (req->ignore_value || req->ignore_lease) {
        MDB_val v;
        int r = cur_get(w, req->key.data, req->key.len, &v, err);
        if (r < 0) return -r;
        if (r == 0) return kv_seterr(err, KV_ERR_KEY_NOT_FOUND, NULL);
    }
    if (!lease_ok) return kv_seterr(err, KV_ERR_LEASE_NOT_FOUND, NULL);
    return KV_OK;
}

int kv_exec_put(kv_wctx *w, const Etcdserverpb__PutRequest *req, kv_arena *a, bool top,
                Etcdserverpb__PutResponse **out, kv_err *err) {
    *out = NULL;
    int64_t main = w->rev + 1, sub = w->changes;
    MDB_val pv;
    int r = cur_get(w, req->key.data, req->key.len, &pv, err);
    if (r < 0) return -r;
    kv_rec prev, rec;
    if (r && kv_rec_decode(pv.mv_data, pv.mv_size, &prev))
        return kv_seterr(err, KV_ERR_CORRUPT, "kvstore: a stored KeyValue does not decode");
    if ((req->ignore_value || req->ignore_lease) && !r)
        return kv_seterr(err, KV_ERR_KEY_NOT_FOUND, NULL);
    Etcdserverpb__PutResponse *resp = kv_arena_alloc(a, sizeof(*resp));
    if (!resp) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    etcdserverpb__put_response__init(resp);
    if (req->prev_kv && r && !(resp->prev_kv = kv_arena_kv(a, &prev, false)))
        return kv_seterr(err, KV_ERR_NOMEM, NULL);
    rec.key = req->key.data;
    rec.key_len = req->key.len;
    rec.create = r ? prev.create : main;
    rec.mod = main;
    rec.version = r ? prev.version + 1 : 1;
    rec.value = req->ignore_value ? prev.value : req->value.data;
    rec.value_len = req->ignore_value ? prev.value_len : req->value.len;
    rec.lease = req->ignore_lease ? prev.lease : req->lease;
    size_t len = 0;
    int code = encode_scratch(w, &rec, &len, err);
    if (!code)
        code = ev_add(w, MVCCPB__EVENT__EVENT_TYPE__PUT, main, sub, w->scratch.p + 1, len,
                      r ? pv.mv_data : NULL, r ? pv.mv_size : 0, r, err);
    if (!code) code = write_rev(w, req->key.data, req->key.len, main, sub, 0, len, err);
    if (!code)
        code = kv_lease_track(w, req->key.data, req->key.len, r ? prev.lease : 0, rec.lease, err);
    if (code) return code;
    w->changes++;
    if (!(resp->header = new_header(w, a, top, main))) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    *out = resp;
    return KV_OK;
}

/* ---- delete range ---- */

typedef struct victim {
    size_t off, len; /* the live record in the collection buffer */
} victim;

int kv_exec_delete(kv_wctx *w, const Etcdserverpb__DeleteRangeRequest *req, kv_arena *a, bool top,
                   Etcdserverpb__DeleteRangeResponse **out, kv_err *err) {
    *out = NULL;
    Etcdserverpb__DeleteRangeResponse *resp = kv_arena_alloc(a, sizeof(*resp));
    if (!resp) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    etcdserverpb__delete_range_response__init(resp);
    /* Collect first: the records must be copied before the deletes touch their pages. */
    kv_keyrange kr =
        kv_keyrange_make(req->key.data, req->key.len, req->range_end.data, req->range_end.len);
    kv_scan it;
    int code = kv_scan_open(&it, w->s, w->txn, &kr, w->rev + (w->changes ? 1 : 0), true, err);
    if (code) return code;
    kv_buf recs = {0};
    victim *vs = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        const uint8_t *kv;
        size_t len;
        int r = kv_scan_next(&it, true, &kv, &len, err);
        if (r < 0) code = -r;
        if (r <= 0) break;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            victim *nv = realloc(vs, nc * sizeof(*nv));
            if (!nv) {
                code = kv_seterr(err, KV_ERR_NOMEM, NULL);
                break;
            }
            vs = nv;
            cap = nc;
        }
        if (kv_buf_reserve(&recs, len)) {
            code = kv_seterr(err, KV_ERR_NOMEM, NULL);
            break;
        }
        memcpy(recs.p + recs.len, kv, len);
        vs[n].off = recs.len;
        vs[n].len = len;
        recs.len += len;
        n++;
    }
    kv_scan_close(&it);
    if (!code && req->prev_kv && n) {
        resp->prev_kvs = kv_arena_alloc(a, n * sizeof(*resp->prev_kvs));
        if (!resp->prev_kvs) code = kv_seterr(err, KV_ERR_NOMEM, NULL);
    }
    int64_t main = w->rev + 1;
    for (size_t i = 0; !code && i < n; i++) {
        kv_rec prev;
        const uint8_t *pb = recs.p + vs[i].off;
        if (kv_rec_decode(pb, vs[i].len, &prev)) {
            code = kv_seterr(err, KV_ERR_CORRUPT, "kvstore: a stored KeyValue does not decode");
            break;
        }
        if (req->prev_kv) {
            if (!(resp->prev_kvs[i] = kv_arena_kv(a, &prev, false))) {
                code = kv_seterr(err, KV_ERR_NOMEM, NULL);
                break;
            }
            resp->n_prev_kvs = i + 1;
        }
        kv_rec tomb = {prev.key, prev.key_len, 0, main, 0, 0, NULL, 0};
        size_t len = 0;
        int64_t sub = w->changes;
        code = encode_scratch(w, &tomb, &len, err);
        if (!code)
            code = ev_add(w, MVCCPB__EVENT__EVENT_TYPE__DELETE, main, sub, w->scratch.p + 1, len,
                          pb, vs[i].len, true, err);
        if (!code)
            code = write_rev(w, prev.key, prev.key_len, main, sub, KV_FLAG_TOMBSTONE, len, err);
        if (!code && prev.lease)
            code = kv_lease_track(w, prev.key, prev.key_len, prev.lease, 0, err);
        if (!code) w->changes++;
    }
    kv_buf_free(&recs);
    free(vs);
    if (code) return code;
    resp->deleted = (int64_t)n;
    if (!(resp->header = new_header(w, a, top, w->rev + (w->changes ? 1 : 0))))
        return kv_seterr(err, KV_ERR_NOMEM, NULL);
    *out = resp;
    return KV_OK;
}

/* ---- group commit ---- */

static int exec_one(kv_wctx *w, kv_write *wr) {
    const Etcdserverpb__RequestOp *op = wr->op;
    kv_err *err = &wr->err;
    kv_arena *a = wr->arena;
    if (wr->lease) return kv_exec_lease(w, wr);
    Etcdserverpb__ResponseOp *resp = kv_arena_alloc(a, sizeof(*resp));
    if (!resp) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    etcdserverpb__response_op__init(resp);
    int code;
    switch (op ? op->request_case : ETCDSERVERPB__REQUEST_OP__REQUEST__NOT_SET) {
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT: {
        const Etcdserverpb__PutRequest *p = op->request_put;
        if (!p) return kv_seterr(err, KV_ERR_INVALID, "kvstore: empty put request");
        if ((code = kv_check_put(p, err)) || (code = kv_check_put_state(w, p, true, err)))
            return code;
        resp->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
        code = kv_exec_put(w, p, a, true, &resp->response_put, err);
        break;
    }
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE: {
        const Etcdserverpb__DeleteRangeRequest *d = op->request_delete_range;
        if (!d) return kv_seterr(err, KV_ERR_INVALID, "kvstore: empty delete request");
        if (d->key.len == 0) return kv_seterr(err, KV_ERR_EMPTY_KEY, NULL);
        resp->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
        code = kv_exec_delete(w, d, a, true, &resp->response_delete_range, err);
        break;
    }
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE: {
        const Etcdserverpb__RangeRequest *r = op->request_range;
        if (!r) return kv_seterr(err, KV_ERR_INVALID, "kvstore: empty range request");
        if (r->key.len == 0) return kv_seterr(err, KV_ERR_EMPTY_KEY, NULL);
        resp->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
        code = kv_range_build(w->s, w->txn, r, w->rev, w->compact_rev, a, true,
                              &resp->response_range, err);
        break;
    }
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN: {
        const Etcdserverpb__TxnRequest *t = op->request_txn;
        if (!t) return kv_seterr(err, KV_ERR_INVALID, "kvstore: empty txn request");
        resp->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN;
        code = kv_exec_txn(w, t, a, &resp->response_txn, err);
        break;
    }
    default:
        return kv_seterr(err, KV_ERR_INVALID, "kvstore: request holds no operation");
    }
    if (!code) wr->resp = resp;
    return code;
}

static void run_commit_cb(kv_wctx *w) {
    kv_store *s = w->s;
    if (!s->commit_fn || !w->n_evs) return;
    kv_event *evs = malloc(w->n_evs * sizeof(*evs));
    if (!evs) return; /* cannot report: the watch layer resyncs from the feed */
    for (size_t i = 0; i < w->n_evs; i++) {
        const kv_evrec *e = &w->evs[i];
        kv_event *ev = &evs[i];
        kv_rec r;
        ev->type = e->type;
        ev->main = e->main;
        ev->sub = e->sub;
        ev->kv = w->evbytes.p + e->kv_off;
        ev->kv_len = e->kv_len;
        if (kv_rec_decode(ev->kv, ev->kv_len, &r)) r.key = ev->kv, r.key_len = 0;
        ev->key = r.key;
        ev->key_len = r.key_len;
        ev->prev_kv = e->has_prev ? w->evbytes.p + e->prev_off : NULL;
        ev->prev_kv_len = e->has_prev ? e->prev_len : 0;
    }
    s->commit_fn(s->commit_ud, evs, w->n_evs, atomic_load(&s->rev));
    free(evs);
}

int kv_apply(kv_store *s, kv_write *wv, size_t n, kv_err *err) {
    if (err) err->code = KV_OK, err->msg[0] = 0;
    if (!n) return KV_OK;
    int sticky = kv_wal_check(s, err);
    if (sticky) {
        for (size_t i = 0; i < n; i++) {
            wv[i].resp = NULL;
            wv[i].err = *err;
        }
        return sticky;
    }
    bool *failed = calloc(n, sizeof(bool));
    if (!failed) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    kv_wctx w;
    memset(&w, 0, sizeof(w));
    w.s = s;
    w.want_events = s->commit_fn != NULL;
    int code = KV_OK;
    for (;;) {
        int rc = mdb_txn_begin(s->env, NULL, 0, &w.txn);
        if (rc) {
            code = kv_mdb_err(err, rc, "begin write");
            break;
        }
        int64_t start_rev = atomic_load(&s->rev);
        w.rev = start_rev;
        w.compact_rev = atomic_load(&s->compact_rev);
        w.n_evs = 0;
        w.evbytes.len = 0;
        w.n_lpend = 0;
        w.force_commit = false;
        bool replay = false;
        for (size_t i = 0; i < n; i++) {
            kv_write *wr = &wv[i];
            if (failed[i]) continue;
            wr->resp = NULL;
            wr->err.code = KV_OK;
            wr->err.msg[0] = 0;
            wr->revision = 0;
            w.changes = 0;
            w.dirty = false;
            size_t evs_before = w.n_evs, lpend_before = w.n_lpend;
            int c = exec_one(&w, wr);
            if (c) {
                wr->resp = NULL;
                if (w.dirty) {
                    failed[i] = true;
                    if (c == KV_ERR_NOSPACE) { /* everything after would fail the same way */
                        for (size_t j = i + 1; j < n; j++) {
                            failed[j] = true;
                            wv[j].resp = NULL;
                            kv_seterr(&wv[j].err, KV_ERR_NOSPACE, NULL);
                        }
                    }
                    replay = true;
                    break;
                }
                w.n_evs = evs_before;
                w.n_lpend = lpend_before;
                continue;
            }
            if (w.changes) w.rev++;
            wr->revision = w.rev;
        }
        if (replay) {
            mdb_txn_abort(w.txn);
            w.txn = NULL;
            continue;
        }
        if (w.rev != start_rev || w.force_commit) {
            int64_t crev = atomic_load(&s->compact_rev), cfin = atomic_load(&s->compact_finished);
            code = kv_meta_put_state(s, w.txn, w.rev, crev, cfin, err);
            /* Durable before visible: the log record is flushed before LMDB commits. */
            if (!code && s->wal && !s->replaying)
                code = kv_wal_log_group(s, wv, n, start_rev, w.rev, err);
            if (code) {
                mdb_txn_abort(w.txn);
                w.txn = NULL;
                break;
            }
            rc = mdb_txn_commit(w.txn);
            w.txn = NULL;
            if (rc) {
                code = kv_mdb_err(err, rc, "commit");
                if (s->wal) kv_wal_commit_failed(s, err); /* the log holds a group LMDB does not */
                break;
            }
            atomic_store(&s->rev, w.rev);
            kv_lease_committed(&w);
            run_commit_cb(&w);
            kv_wal_committed(s);
        } else {
            mdb_txn_abort(w.txn); /* nothing written: no commit, no fsync */
            w.txn = NULL;
        }
        break;
    }
    if (code) {
        for (size_t i = 0; i < n; i++) {
            wv[i].resp = NULL;
            wv[i].err = *err;
        }
    }
    free(failed);
    kv_buf_free(&w.scratch);
    kv_buf_free(&w.evbytes);
    free(w.evs);
    free(w.lpend);
    return code;
}

/* ---- single-request wrappers ---- */

static int apply_one(kv_store *s, Etcdserverpb__RequestOp *op, kv_arena *a,
                     Etcdserverpb__ResponseOp **resp, kv_err *err) {
    kv_write w = {.op = op, .arena = a};
    int code = kv_apply(s, &w, 1, err);
    if (code) return code;
    if (w.err.code) {
        if (err) *err = w.err;
        return w.err.code;
    }
    *resp = w.resp;
    return KV_OK;
}

int kv_put(kv_store *s, const Etcdserverpb__PutRequest *req, kv_arena *a,
           Etcdserverpb__PutResponse **out, kv_err *err) {
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op.request_put = (Etcdserverpb__PutRequest *)req;
    Etcdserverpb__ResponseOp *r = NULL;
    *out = NULL;
    int code = apply_one(s, &op, a, &r, err);
    if (!code) *out = r->response_put;
    return code;
}

int kv_delete_range(kv_store *s, const Etcdserverpb__DeleteRangeRequest *req, kv_arena *a,
                    Etcdserverpb__DeleteRangeResponse **out, kv_err *err) {
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    op.request_delete_range = (Etcdserverpb__DeleteRangeRequest *)req;
    Etcdserverpb__ResponseOp *r = NULL;
    *out = NULL;
    int code = apply_one(s, &op, a, &r, err);
    if (!code) *out = r->response_delete_range;
    return code;
}

int kv_txn(kv_store *s, const Etcdserverpb__TxnRequest *req, kv_arena *a,
           Etcdserverpb__TxnResponse **out, kv_err *err) {
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    op.request_txn = (Etcdserverpb__TxnRequest *)req;
    Etcdserverpb__ResponseOp *r = NULL;
    *out = NULL;
    int code = apply_one(s, &op, a, &r, err);
    if (!code) *out = r->response_txn;
    return code;
}
