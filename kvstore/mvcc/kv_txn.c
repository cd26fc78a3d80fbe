/* kv_txn.c — etcd's Txn: request checks (v3rpc checkTxnRequest and checkIntervals), compare
 * evaluation into a path of branch choices (compareToPath: every compare, nested ones included,
 * sees the state before the txn), apply-time checks on the chosen path (checkRequests), then
 * execution at one main revision with increasing sub revisions.
 *
 * Faithful corners: the op budget shrinks per nesting level (maxTxnOps - opc of the parent); a
 * delete's interval is [key, range_end) taken literally, so a from-key delete ("\0") overlaps no
 * put, as in etcd 3.4; a put in an earlier nested txn may be deleted by a later sibling. Nesting
 * is bounded by KV_MAX_TXN_DEPTH before any recursion that is not itself depth-checked.
 */
#include <stdlib.h>
#include <string.h>

#include "kv_internal.h"

/* ---- static checks ---- */

static int check_txn(const Etcdserverpb__TxnRequest *r, int max_ops, int depth, kv_err *err);

static int check_op(const Etcdserverpb__RequestOp *u, int max_ops, int depth, kv_err *err) {
    switch (u ? u->request_case : ETCDSERVERPB__REQUEST_OP__REQUEST__NOT_SET) {
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
        if (!u->request_range) break;
        return u->request_range->key.len ? KV_OK : kv_seterr(err, KV_ERR_EMPTY_KEY, NULL);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
        if (!u->request_put) break;
        return kv_check_put(u->request_put, err);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
        if (!u->request_delete_range) break;
        return u->request_delete_range->key.len ? KV_OK : kv_seterr(err, KV_ERR_EMPTY_KEY, NULL);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
        if (!u->request_txn) break;
        return check_txn(u->request_txn, max_ops, depth + 1, err);
    default:
        break;
    }
    return kv_seterr(err, KV_ERR_KEY_NOT_FOUND, NULL); /* etcd: empty op */
}

static int check_txn(const Etcdserverpb__TxnRequest *r, int max_ops, int depth, kv_err *err) {
    if (depth > KV_MAX_TXN_DEPTH)
        return kv_seterr(err, KV_ERR_TXN_TOO_DEEP, "kvstore: txn nested deeper than %d levels",
                         KV_MAX_TXN_DEPTH);
    size_t opc = r->n_compare;
    if (opc < r->n_success) opc = r->n_success;
    if (opc < r->n_failure) opc = r->n_failure;
    if (max_ops < 0 || opc > (size_t)max_ops) return kv_seterr(err, KV_ERR_TOO_MANY_OPS, NULL);
    for (size_t i = 0; i < r->n_compare; i++)
        if (!r->compare[i] || r->compare[i]->key.len == 0)
            return kv_seterr(err, KV_ERR_EMPTY_KEY, NULL);
    int code;
    for (size_t i = 0; i < r->n_success; i++)
        if ((code = check_op(r->success[i], max_ops - (int)opc, depth, err))) return code;
    for (size_t i = 0; i < r->n_failure; i++)
        if ((code = check_op(r->failure[i], max_ops - (int)opc, depth, err))) return code;
    return KV_OK;
}

/* ---- checkIntervals ---- */

typedef struct bin {
    const uint8_t *p;
    size_t n;
} bin;

typedef struct binset { /* sorted, unique */
    bin *v;
    size_t n, cap;
} binset;

typedef struct ivl {
    bin b, e; /* [b, e) */
} ivl;

typedef struct ivlset {
    ivl *v;
    size_t n, cap;
} ivlset;

static size_t bs_find(const binset *s, bin k, bool *found) {
    size_t lo = 0, hi = s->n;
    *found = false;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = kv_bytes_cmp(s->v[mid].p, s->v[mid].n, k.p, k.n);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool bs_has(const binset *s, bin k) {
    bool f;
    bs_find(s, k, &f);
    return f;
}

static int bs_add(binset *s, bin k) {
    bool f;
    size_t at = bs_find(s, k, &f);
    if (f) return 0;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        bin *nv = realloc(s->v, nc * sizeof(*nv));
        if (!nv) return -1;
        s->v = nv;
        s->cap = nc;
    }
    memmove(s->v + at + 1, s->v + at, (s->n - at) * sizeof(bin));
    s->v[at] = k;
    s->n++;
    return 0;
}

static int is_add(ivlset *s, ivl x) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        ivl *nv = realloc(s->v, nc * sizeof(*nv));
        if (!nv) return -1;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = x;
    return 0;
}

/* Does the point k (= [k, k+"\0")) overlap any interval? b <= k < e. */
static bool is_hits(const ivlset *s, bin k) {
    for (size_t i = 0; i < s->n; i++) {
        const ivl *x = &s->v[i];
        if (x->e.n == 0) { /* a point */
            if (kv_bytes_cmp(x->b.p, x->b.n, k.p, k.n) == 0) return true;
            continue;
        }
        if (kv_bytes_cmp(x->b.p, x->b.n, k.p, k.n) <= 0 &&
            kv_bytes_cmp(k.p, k.n, x->e.p, x->e.n) < 0)
            return true;
    }
    return false;
}

static int intervals(Etcdserverpb__RequestOp **ops, size_t n, binset *puts, ivlset *dels,
                     kv_err *err) {
    const char *oom = NULL;
    for (size_t i = 0; i < n; i++) {
        const Etcdserverpb__RequestOp *u = ops[i];
        if (u->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE ||
            !u->request_delete_range)
            continue;
        const Etcdserverpb__DeleteRangeRequest *d = u->request_delete_range;
        ivl x = {{d->key.data, d->key.len}, {d->range_end.data, d->range_end.len}};
        if (is_add(dels, x)) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        const Etcdserverpb__RequestOp *u = ops[i];
        if (u->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN || !u->request_txn)
            continue;
        binset pt = {0}, pe = {0};
        ivlset dt = {0}, de = {0};
        int code = intervals(u->request_txn->success, u->request_txn->n_success, &pt, &dt, err);
        if (!code)
            code = intervals(u->request_txn->failure, u->request_txn->n_failure, &pe, &de, err);
        for (size_t j = 0; !code && j < pt.n; j++) {
            if (bs_has(puts, pt.v[j]) || is_hits(dels, pt.v[j]))
                code = kv_seterr(err, KV_ERR_DUPLICATE_KEY, NULL);
            else if (bs_add(puts, pt.v[j]))
                oom = "puts";
        }
        for (size_t j = 0; !code && !oom && j < pe.n; j++) {
            if ((bs_has(puts, pe.v[j]) && !bs_has(&pt, pe.v[j])) || is_hits(dels, pe.v[j]))
                code = kv_seterr(err, KV_ERR_DUPLICATE_KEY, NULL);
            else if (bs_add(puts, pe.v[j]))
                oom = "puts";
        }
        for (size_t j = 0; !code && !oom && j < dt.n; j++)
            if (is_add(dels, dt.v[j])) oom = "dels";
        for (size_t j = 0; !code && !oom && j < de.n; j++)
            if (is_add(dels, de.v[j])) oom = "dels";
        free(pt.v);
        free(pe.v);
        free(dt.v);
        free(de.v);
        if (oom) return kv_seterr(err, KV_ERR_NOMEM, NULL);
        if (code) return code;
    }
    for (size_t i = 0; i < n; i++) {
        const Etcdserverpb__RequestOp *u = ops[i];
        if (u->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT || !u->request_put)
            continue;
        bin k = {u->request_put->key.data, u->request_put->key.len};
        if (bs_has(puts, k) || is_hits(dels, k)) return kv_seterr(err, KV_ERR_DUPLICATE_KEY, NULL);
        if (bs_add(puts, k)) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    }
    return KV_OK;
}

static int check_intervals(Etcdserverpb__RequestOp **ops, size_t n, kv_err *err) {
    binset puts = {0};
    ivlset dels = {0};
    int code = intervals(ops, n, &puts, &dels, err);
    free(puts.v);
    free(dels.v);
    return code;
}

/* ---- compares and the path ---- */

typedef struct path {
    bool *v;
    size_t n, cap, at;
} path;

static int cmp_i64(int64_t a, int64_t b) {
    return a < b ? -1 : a > b;
}

static bool compare_kv(const Etcdserverpb__Compare *c, const kv_rec *r) {
    int res = 0;
    switch (c->target) {
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE: {
        bool set = c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
        res = kv_bytes_cmp(r->value, r->value_len, set ? c->value.data : NULL,
                           set ? c->value.len : 0);
        break;
    }
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
        res = cmp_i64(r->create,
                      c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION
                          ? c->create_revision
                          : 0);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
        res =
            cmp_i64(r->mod, c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION
                                ? c->mod_revision
                                : 0);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
        res = cmp_i64(
            r->version,
            c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION ? c->version : 0);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE:
        res = cmp_i64(r->lease, c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE
                                    ? c->lease
                                    : 0);
        break;
    default:
        break;
    }
    switch (c->result) {
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL:
        return res == 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL:
        return res != 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER:
        return res > 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS:
        return res < 0;
    default:
        return true;
    }
}

static int eval_compare(kv_wctx *w, const Etcdserverpb__Compare *c, bool *ok, kv_err *err) {
    kv_keyrange kr = kv_keyrange_make(c->key.data, c->key.len, c->range_end.data, c->range_end.len);
    kv_scan it;
    int code = kv_scan_open(&it, w->s, w->txn, &kr, w->rev, true, err);
    if (code) return code;
    bool any = false;
    *ok = true;
    for (;;) {
        const uint8_t *kv;
        size_t len;
        int r = kv_scan_next(&it, true, &kv, &len, err);
        if (r < 0) code = -r;
        if (r <= 0) break;
        any = true;
        kv_rec rec;
        if (kv_rec_decode(kv, len, &rec)) {
            code = kv_seterr(err, KV_ERR_CORRUPT, "kvstore: a stored KeyValue does not decode");
            break;
        }
        if (!compare_kv(c, &rec)) {
            *ok = false;
            break;
        }
    }
    kv_scan_close(&it);
    if (!code && !any) {
        if (c->target == ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE) {
            *ok = false; /* a missing key has no value to compare */
        } else {
            kv_rec zero;
            memset(&zero, 0, sizeof(zero));
            *ok = compare_kv(c, &zero);
        }
    }
    return code;
}

static int path_push(path *p, bool b) {
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 16;
        bool *nv = realloc(p->v, nc);
        if (!nv) return -1;
        p->v = nv;
        p->cap = nc;
    }
    p->v[p->n++] = b;
    return 0;
}

static int compute_path(kv_wctx *w, const Etcdserverpb__TxnRequest *t, path *p, kv_err *err) {
    bool ok = true;
    for (size_t i = 0; ok && i < t->n_compare; i++) {
        int code = eval_compare(w, t->compare[i], &ok, err);
        if (code) return code;
    }
    if (path_push(p, ok)) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
    size_t n = ok ? t->n_success : t->n_failure;
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN) continue;
        int code = compute_path(w, ops[i]->request_txn, p, err);
        if (code) return code;
    }
    return KV_OK;
}

/* checkRequests: `puts` selects the put checks, otherwise the range checks. */
static int check_path(kv_wctx *w, const Etcdserverpb__TxnRequest *t, path *p, bool puts,
                      kv_err *err) {
    bool ok = p->v[p->at++];
    Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
    size_t n = ok ? t->n_success : t->n_failure;
    for (size_t i = 0; i < n; i++) {
        const Etcdserverpb__RequestOp *u = ops[i];
        int code = KV_OK;
        if (u->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN) {
            code = check_path(w, u->request_txn, p, puts, err);
        } else if (puts && u->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT) {
            code =
                kv_check_put_state(w, u->request_put, false, err); /* etcd: existence, then lease */
        } else if (!puts && u->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE) {
            int64_t rev = u->request_range->revision;
            /* etcd's FirstRev is the compaction point, -1 when never compacted */
            int64_t first = w->compact_rev ? w->compact_rev : -1;
            if (rev == 0)
                code = KV_OK;
            else if (rev > w->rev)
                code = kv_seterr(err, KV_ERR_FUTURE_REV, NULL);
            else if (rev < first)
                code = kv_seterr(err, KV_ERR_COMPACTED, NULL);
        }
        if (code) return code;
    }
    return KV_OK;
}

/* ---- execution ---- */

static int apply_txn(kv_wctx *w, const Etcdserverpb__TxnRequest *t, path *p, kv_arena *a,
                     Etcdserverpb__TxnResponse **out, kv_err *err) {
    bool ok = p->v[p->at++];
    Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
    size_t n = ok ? t->n_success : t->n_failure;
    Etcdserverpb__TxnResponse *resp = kv_arena_alloc(a, sizeof(*resp));
    Etcdserverpb__ResponseHeader *h = kv_arena_alloc(a, sizeof(*h));
    Etcdserverpb__ResponseOp **rs = n ? kv_arena_alloc(a, n * sizeof(*rs)) : NULL;
    if (!resp || !h || (n && !rs)) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    etcdserverpb__txn_response__init(resp);
    etcdserverpb__response_header__init(h);
    resp->header = h;
    resp->succeeded = ok;
    resp->responses = rs;
    resp->n_responses = n;
    for (size_t i = 0; i < n; i++) {
        const Etcdserverpb__RequestOp *u = ops[i];
        Etcdserverpb__ResponseOp *r = kv_arena_alloc(a, sizeof(*r));
        if (!r) return kv_seterr(err, KV_ERR_NOMEM, NULL);
        etcdserverpb__response_op__init(r);
        rs[i] = r;
        int code = KV_OK;
        switch (u->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
            r->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
            code = kv_range_build(w->s, w->txn, u->request_range, w->rev + (w->changes ? 1 : 0),
                                  w->compact_rev, a, false, &r->response_range, err);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
            r->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
            code = kv_exec_put(w, u->request_put, a, false, &r->response_put, err);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
            r->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
            code = kv_exec_delete(w, u->request_delete_range, a, false, &r->response_delete_range,
                                  err);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
            r->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN;
            code = apply_txn(w, u->request_txn, p, a, &r->response_txn, err);
            break;
        default:
            break;
        }
        if (code) return code;
    }
    *out = resp;
    return KV_OK;
}

int kv_exec_txn(kv_wctx *w, const Etcdserverpb__TxnRequest *req, kv_arena *a,
                Etcdserverpb__TxnResponse **out, kv_err *err) {
    *out = NULL;
    int code = check_txn(req, KV_MAX_TXN_OPS, 1, err);
    if (!code) code = check_intervals(req->success, req->n_success, err);
    if (!code) code = check_intervals(req->failure, req->n_failure, err);
    if (code) return code;
    path p = {0};
    code = compute_path(w, req, &p, err);
    if (!code) code = check_path(w, req, &p, true, err);
    if (!code) {
        p.at = 0;
        code = check_path(w, req, &p, false, err);
    }
    if (!code) {
        p.at = 0;
        code = apply_txn(w, req, &p, a, out, err);
    }
    free(p.v);
    if (code) {
        *out = NULL;
        return code;
    }
    kv_fill_header(w->s, (*out)->header, w->rev + (w->changes ? 1 : 0));
    return KV_OK;
}
