/* kv_range.c — etcd's Range (apply.go + mvcc rangeKeys) over a snapshot: revision checks, limit
 * push-down, min/max filters, sorting, keys_only and count_only; the arena response builder
 * (kv_range) and the LIST fast path (kv_range_raw) share one pipeline.
 *
 * etcd's order of operations is kept exactly: the limit (+1 for `more`) is pushed into the scan
 * only when sort_order is NONE and no filter is set; filters prune after the scan; an order of
 * NONE with a target other than KEY sorts ASCEND (so such a limited request sorts only the first
 * limit+1 keys); `count` is the number of keys in the range at the revision, before filters.
 * Ties in a sort keep key order (a stable sort; etcd's sort.Sort is stable for small inputs).
 * kv_range_raw_hold lets a LIST consumer keep the stored bytes' pointers until
 * the scan is complete, so it can size the message and copy each byte exactly once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kv_internal.h"

typedef struct item {
    const uint8_t *kv;
    size_t len;
    kv_rec rec;
    size_t idx;
} item;

typedef struct sort_spec {
    int target;
    bool desc;
} sort_spec;

static int cmp_i64(int64_t a, int64_t b) {
    return a < b ? -1 : a > b;
}

static int item_cmp(const void *pa, const void *pb, void *arg) {
    const item *a = pa, *b = pb;
    const sort_spec *sp = arg;
    int c = 0;
    switch (sp->target) {
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY:
        c = kv_bytes_cmp(a->rec.key, a->rec.key_len, b->rec.key, b->rec.key_len);
        break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION:
        c = cmp_i64(a->rec.version, b->rec.version);
        break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE:
        c = cmp_i64(a->rec.create, b->rec.create);
        break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD:
        c = cmp_i64(a->rec.mod, b->rec.mod);
        break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE:
        c = kv_bytes_cmp(a->rec.value, a->rec.value_len, b->rec.value, b->rec.value_len);
        break;
    default:
        break;
    }
    if (sp->desc) c = -c;
    if (c) return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static bool pruned(const Etcdserverpb__RangeRequest *req, const kv_rec *r) {
    if (req->max_mod_revision && r->mod > req->max_mod_revision) return true;
    if (req->min_mod_revision && r->mod < req->min_mod_revision) return true;
    if (req->max_create_revision && r->create > req->max_create_revision) return true;
    if (req->min_create_revision && r->create < req->min_create_revision) return true;
    return false;
}

int kv_range_run(kv_store *s, MDB_txn *txn, const Etcdserverpb__RangeRequest *req, int64_t cur_rev,
                 int64_t compact_rev, kv_emit_fn emit, void *ud, kv_range_out *out, kv_err *err) {
    memset(out, 0, sizeof(*out));
    int64_t rev = req->revision;
    if (rev > cur_rev) return kv_seterr(err, KV_ERR_FUTURE_REV, NULL);
    if (rev <= 0) rev = cur_rev;
    if (rev < compact_rev) return kv_seterr(err, KV_ERR_COMPACTED, NULL);

    bool filters = req->min_mod_revision || req->max_mod_revision || req->min_create_revision ||
                   req->max_create_revision;
    int64_t fetch = 0;
    if (req->sort_order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE && !filters &&
        req->limit > 0 && req->limit < INT64_MAX) /* etcd's limit+1 wraps: no limit */
        fetch = req->limit + 1;
    int order = req->sort_order;
    if (req->sort_target != ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY &&
        order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE)
        order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
    bool need_sort = order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE &&
                     !(req->sort_target == ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY &&
                       order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND);
    if (need_sort && order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND &&
        order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND)
        need_sort = false; /* unknown order: etcd leaves key order */

    kv_keyrange kr =
        kv_keyrange_make(req->key.data, req->key.len, req->range_end.data, req->range_end.len);
    kv_scan it;
    int code = kv_scan_open(&it, s, txn, &kr, rev, rev == cur_rev, err);
    if (code) return code;

    item *items = NULL;
    size_t n_items = 0, cap_items = 0;
    int64_t fetched = 0, kept = 0;
    int ret = KV_OK;
    for (;;) {
        bool want = !req->count_only && (fetch == 0 || fetched < fetch);
        const uint8_t *kv;
        size_t len;
        int r = kv_scan_next(&it, want, &kv, &len, err);
        if (r < 0) {
            ret = -r;
            break;
        }
        if (r == 0) break;
        out->count++;
        if (!want) continue;
        fetched++;
        item cur = {kv, len, {0}, 0};
        if (kv_rec_decode(kv, len, &cur.rec)) {
            ret = kv_seterr(err, KV_ERR_CORRUPT, "kvstore: a stored KeyValue does not decode");
            break;
        }
        if (filters && pruned(req, &cur.rec)) continue;
        if (need_sort) {
            if (n_items == cap_items) {
                size_t nc = cap_items ? cap_items * 2 : 256;
                item *ni = realloc(items, nc * sizeof(*ni));
                if (!ni) {
                    ret = kv_seterr(err, KV_ERR_NOMEM, NULL);
                    break;
                }
                items = ni;
                cap_items = nc;
            }
            cur.idx = n_items;
            items[n_items++] = cur;
            continue;
        }
        kept++;
        if (req->limit > 0 && kept > req->limit) {
            out->more = true;
            continue;
        }
        out->kvs++;
        out->kv_bytes += len;
        if (emit && (r = emit(ud, kv, len, &cur.rec)) != 0) {
            ret = r;
            break;
        }
    }
    kv_scan_close(&it);
    if (!ret && need_sort && n_items) {
        sort_spec sp = {req->sort_target,
                        order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND};
        qsort_r(items, n_items, sizeof(item), item_cmp, &sp);
        size_t n = n_items;
        if (req->limit > 0 && n > (size_t)req->limit) {
            n = (size_t)req->limit;
            out->more = true;
        }
        for (size_t i = 0; i < n; i++) {
            out->kvs++;
            out->kv_bytes += items[i].len;
            int r;
            if (emit && (r = emit(ud, items[i].kv, items[i].len, &items[i].rec)) != 0) {
                ret = r;
                break;
            }
        }
    }
    free(items);
    return ret;
}

/* ---- arena response ---- */

typedef struct build_ctx {
    kv_arena *a;
    bool keys_only;
    Mvccpb__KeyValue **v;
    size_t n, cap;
    kv_err *err;
} build_ctx;

static int build_emit(void *ud, const uint8_t *kv, size_t len, const kv_rec *rec) {
    (void)kv;
    (void)len;
    build_ctx *b = ud;
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        Mvccpb__KeyValue **nv = realloc(b->v, nc * sizeof(*nv));
        if (!nv) return kv_seterr(b->err, KV_ERR_NOMEM, NULL);
        b->v = nv;
        b->cap = nc;
    }
    Mvccpb__KeyValue *m = kv_arena_kv(b->a, rec, b->keys_only);
    if (!m) return kv_seterr(b->err, KV_ERR_NOMEM, NULL);
    b->v[b->n++] = m;
    return 0;
}

int kv_range_build(kv_store *s, MDB_txn *txn, const Etcdserverpb__RangeRequest *req,
                   int64_t cur_rev, int64_t compact_rev, kv_arena *a, bool top,
                   Etcdserverpb__RangeResponse **out, kv_err *err) {
    *out = NULL;
    build_ctx b = {a, req->keys_only, NULL, 0, 0, err};
    kv_range_out ro;
    int code = kv_range_run(s, txn, req, cur_rev, compact_rev, build_emit, &b, &ro, err);
    Etcdserverpb__RangeResponse *resp = NULL;
    Etcdserverpb__ResponseHeader *h = NULL;
    Mvccpb__KeyValue **kvs = NULL;
    if (!code) {
        resp = kv_arena_alloc(a, sizeof(*resp));
        h = kv_arena_alloc(a, sizeof(*h));
        if (b.n) kvs = kv_arena_alloc(a, b.n * sizeof(*kvs));
        if (!resp || !h || (b.n && !kvs)) code = kv_seterr(err, KV_ERR_NOMEM, NULL);
    }
    if (!code) {
        etcdserverpb__range_response__init(resp);
        etcdserverpb__response_header__init(h);
        if (top)
            kv_fill_header(s, h, cur_rev);
        else
            h->revision = cur_rev;
        resp->header = h;
        if (b.n) memcpy(kvs, b.v, b.n * sizeof(*kvs));
        resp->kvs = kvs;
        resp->n_kvs = b.n;
        resp->more = ro.more;
        resp->count = ro.count;
        *out = resp;
    }
    free(b.v);
    return code;
}

int kv_range(kv_store *s, const Etcdserverpb__RangeRequest *req, kv_arena *a,
             Etcdserverpb__RangeResponse **out, kv_err *err) {
    *out = NULL;
    if (err) err->code = KV_OK, err->msg[0] = 0;
    if (req->key.len == 0) return kv_seterr(err, KV_ERR_EMPTY_KEY, NULL);
    MDB_txn *txn;
    int64_t rev, crev;
    int code = kv_read_begin(s, &txn, &rev, &crev, err);
    if (code) return code;
    code = kv_range_build(s, txn, req, rev, crev, a, true, out, err);
    mdb_txn_abort(txn);
    return code;
}

/* ---- the LIST fast path ---- */

typedef struct raw_ctx {
    kv_raw_fn fn;
    void *ud;
    bool keys_only;
    kv_buf scratch;
    size_t bytes; /* what fn was handed (re-encoded lengths for keys_only) */
    kv_err *err;
} raw_ctx;

static int raw_emit(void *ud, const uint8_t *kv, size_t len, const kv_rec *rec) {
    raw_ctx *r = ud;
    if (!r->keys_only) {
        r->bytes += len;
        return r->fn(r->ud, kv, len);
    }
    kv_rec k = *rec;
    k.value_len = 0;
    size_t n = kv_rec_size(&k);
    r->scratch.len = 0;
    if (kv_buf_reserve(&r->scratch, n)) return kv_seterr(r->err, KV_ERR_NOMEM, NULL);
    kv_rec_encode(&k, r->scratch.p);
    r->bytes += n;
    return r->fn(r->ud, r->scratch.p, n);
}

int kv_range_raw_hold(kv_store *s, const Etcdserverpb__RangeRequest *req, kv_raw_fn fn, void *ud,
                      kv_raw_done_fn done, kv_range_info *info, kv_err *err) {
    memset(info, 0, sizeof(*info));
    if (err) err->code = KV_OK, err->msg[0] = 0;
    if (req->key.len == 0) return kv_seterr(err, KV_ERR_EMPTY_KEY, NULL);
    MDB_txn *txn;
    int64_t rev, crev;
    int code = kv_read_begin(s, &txn, &rev, &crev, err);
    if (code) return code;
    raw_ctx r = {fn, ud, req->keys_only, {0}, 0, err};
    kv_range_out ro;
    code = kv_range_run(s, txn, req, rev, crev, raw_emit, &r, &ro, err);
    info->revision = rev;
    info->count = ro.count;
    info->more = ro.more;
    info->kvs = ro.kvs;
    info->kv_bytes = r.bytes;
    if (!code && done) code = done(ud, info); /* the snapshot is still open */
    mdb_txn_abort(txn);
    kv_buf_free(&r.scratch);
    return code;
}

int kv_range_raw(kv_store *s, const Etcdserverpb__RangeRequest *req, kv_raw_fn fn, void *ud,
                 kv_range_info *info, kv_err *err) {
    return kv_range_raw_hold(s, req, fn, ud, NULL, info, err);
}
