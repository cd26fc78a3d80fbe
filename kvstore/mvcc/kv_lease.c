/* kv_lease.c — etcd's lessor inside the MVCC engine: grant, revoke (deleting the attached keys
 * in one revision), keep-alive, time-to-live, the lease list and the expiry check.
 *
 * Key decisions:
 * - Two sources of truth with one job each. LMDB ("lease", "lkeys") decides existence inside a
 *   write txn, so a grant and a put naming it in the same group commit see each other, and a
 *   failed attempt leaves nothing behind. The in-memory table holds the COMMITTED leases with
 *   their expiry times (never persisted, as in etcd) and is updated from the attempt's pending
 *   list only after the durable commit, so readers on other threads never see a lease that a
 *   replayed or failed group did not commit.
 * - A revoke deletes each attached key through kv_exec_delete, so it produces ordinary DELETE
 *   events (prev_kv included) for the commit callback and the change feed, in key order at one
 *   main revision — exactly what a watcher of etcd sees. An attachment whose key no longer
 *   carries the lease (a stale row written by a build without leases) is skipped, not deleted.
 * - Time comes from the caller (now_ms), which keeps expiry testable and lets the server decide
 *   when to revoke; the engine never acts on its own.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv_internal.h"

/* A lease write waiting for the commit. */
typedef struct kv_lease_pend {
    bool grant; /* else revoke */
    int64_t id, ttl, expiry_ms;
} kv_lease_pend;

static void id_key(uint8_t b[8], int64_t id) {
    kv_u64_put(b, (uint64_t)id);
}

/* ---- the in-memory table ---- */

static size_t home(const kv_lessor *l, int64_t id) {
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 29) & (l->cap - 1);
}

static kv_lease_ent *lt_find(kv_lessor *l, int64_t id) {
    if (!l->cap) return NULL;
    for (size_t i = home(l, id);; i = (i + 1) & (l->cap - 1)) {
        if (l->tab[i].id == id) return &l->tab[i];
        if (!l->tab[i].id) return NULL;
    }
}

/* Room for `n` entries at a load of at most one half. */
static int lt_reserve(kv_lessor *l, size_t n) {
    if (n * 2 <= l->cap) return 0;
    size_t cap = l->cap ? l->cap : 64;
    while (n * 2 > cap)
        cap *= 2;
    kv_lease_ent *nt = calloc(cap, sizeof(*nt));
    if (!nt) return -1;
    kv_lease_ent *old = l->tab;
    size_t ocap = l->cap;
    l->tab = nt;
    l->cap = cap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].id) continue;
        size_t j = home(l, old[i].id);
        while (nt[j].id)
            j = (j + 1) & (cap - 1);
        nt[j] = old[i];
    }
    free(old);
    return 0;
}

/* The caller reserved room. */
static void lt_set(kv_lessor *l, const kv_lease_ent *e) {
    size_t i = home(l, e->id);
    while (l->tab[i].id && l->tab[i].id != e->id)
        i = (i + 1) & (l->cap - 1);
    if (!l->tab[i].id) l->n++;
    l->tab[i] = *e;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void lt_remove(kv_lessor *l, int64_t id) {
    kv_lease_ent *e = lt_find(l, id);
    if (!e) return;
    size_t mask = l->cap - 1, i = (size_t)(e - l->tab), j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!l->tab[j].id) break;
        size_t k = home(l, l->tab[j].id);
        /* entry j may move to i when its home is not cyclically within (i, j] */
        bool stays = i <= j ? (k > i && k <= j) : (k > i || k <= j);
        if (!stays) {
            l->tab[i] = l->tab[j];
            i = j;
        }
    }
    l->tab[i].id = 0;
    l->n--;
}

static int64_t expiry_at(int64_t now_ms, int64_t ttl) {
    return now_ms + ttl * 1000;
}

/* etcd's Promote: leases loaded at open get their full TTL from the first clock seen. Called
 * with mu held. */
static void promote(kv_lessor *l, int64_t now_ms) {
    if (!l->unpromoted) return;
    for (size_t i = 0; i < l->cap; i++)
        if (l->tab[i].id && l->tab[i].expiry_ms == KV_LEASE_UNPROMOTED)
            l->tab[i].expiry_ms = expiry_at(now_ms, l->tab[i].ttl);
    l->unpromoted = false;
}

/* ---- open / close ---- */

static uint64_t rng_next(uint64_t *x) { /* xorshift64* */
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 2685821657736338717ull;
}

int kv_lease_open(kv_store *s, MDB_txn *txn, const kv_options *opt, kv_err *err) {
    kv_lessor *l = &s->lessor;
    int rc;
    if ((rc = mdb_dbi_open(txn, "lease", MDB_CREATE, &s->lease)) ||
        (rc = mdb_dbi_open(txn, "lkeys", MDB_CREATE | MDB_DUPSORT, &s->lkeys)))
        return kv_mdb_err(err, rc, "open lease databases");
    l->enforce = opt && opt->leases;
    l->min_ttl = opt && opt->lease_min_ttl > 0 ? opt->lease_min_ttl : KV_LEASE_DEFAULT_MIN_TTL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    l->rng = (s->member_id ^ (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^
              (uint64_t)ts.tv_sec << 20 ^ (uint64_t)getpid()) |
             1;
    MDB_stat ms;
    if ((rc = mdb_stat(txn, s->lease, &ms))) return kv_mdb_err(err, rc, "stat leases");
    if (lt_reserve(l, (size_t)ms.ms_entries + 1)) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(txn, s->lease, &c))) return kv_mdb_err(err, rc, "read leases");
    MDB_val k, v;
    int code = KV_OK;
    while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
        if (k.mv_size != 8 || v.mv_size < 8) {
            code = kv_seterr(err, KV_ERR_CORRUPT, "kvstore: a lease record does not decode");
            break;
        }
        kv_lease_ent e = {(int64_t)kv_u64_get(k.mv_data), (int64_t)kv_u64_get(v.mv_data),
                          KV_LEASE_UNPROMOTED};
        if (e.ttl < l->min_ttl) e.ttl = l->min_ttl; /* as etcd's recovery does */
        lt_set(l, &e);
        l->unpromoted = true;
    }
    mdb_cursor_close(c);
    if (!code && rc != MDB_NOTFOUND) code = kv_mdb_err(err, rc, "read leases");
    if (code) {
        free(l->tab);
        l->tab = NULL;
        l->cap = l->n = 0;
        return code;
    }
    if (pthread_mutex_init(&l->mu, NULL)) {
        free(l->tab);
        l->tab = NULL;
        l->cap = l->n = 0;
        return kv_seterr(err, KV_ERR_NOMEM, NULL);
    }
    l->ready = true;
    return KV_OK;
}

void kv_lease_close(kv_store *s) {
    kv_lessor *l = &s->lessor;
    if (l->ready) pthread_mutex_destroy(&l->mu);
    l->ready = false;
    free(l->tab);
    l->tab = NULL;
    l->cap = l->n = 0;
}

/* ---- attachments (write txn) ---- */

int kv_lease_exists(kv_store *s, MDB_txn *txn, int64_t id, kv_err *err) {
    uint8_t b[8];
    id_key(b, id);
    MDB_val k = {8, b}, v;
    int rc = mdb_get(txn, s->lease, &k, &v);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return -kv_mdb_err(err, rc, "read lease");
    return 1;
}

int kv_lease_track(kv_wctx *w, const uint8_t *key, size_t key_len, int64_t old, int64_t now,
                   kv_err *err) {
    kv_store *s = w->s;
    uint8_t b[8];
    MDB_val k = {8, b}, v = {key_len, (void *)key};
    int rc;
    if (old && old != now) {
        id_key(b, old);
        rc = mdb_del(w->txn, s->lkeys, &k, &v);
        if (rc && rc != MDB_NOTFOUND) return kv_mdb_err(err, rc, "detach key from lease");
    }
    if (now) {
        /* Also for old == now: the key may have been put while the lease was not granted
         * (unverified leases); the put below is a no-op when the row exists. */
        int r = kv_lease_exists(s, w->txn, now, err);
        if (r <= 0) return -r;
        id_key(b, now);
        rc = mdb_put(w->txn, s->lkeys, &k, &v, MDB_NODUPDATA);
        if (rc && rc != MDB_KEYEXIST) return kv_mdb_err(err, rc, "attach key to lease");
    }
    return KV_OK;
}

/* ---- grant and revoke (write txn) ---- */

static int pend_add(kv_wctx *w, const kv_lease_pend *p, kv_err *err) {
    if (w->n_lpend == w->cap_lpend) {
        size_t nc = w->cap_lpend ? w->cap_lpend * 2 : 16;
        kv_lease_pend *np = realloc(w->lpend, nc * sizeof(*np));
        if (!np) return kv_seterr(err, KV_ERR_NOMEM, NULL);
        w->lpend = np;
        w->cap_lpend = nc;
    }
    w->lpend[w->n_lpend++] = *p;
    return KV_OK;
}

static Etcdserverpb__ResponseHeader *header(kv_wctx *w, kv_arena *a) {
    Etcdserverpb__ResponseHeader *h = kv_arena_alloc(a, sizeof(*h));
    if (!h) return NULL;
    etcdserverpb__response_header__init(h);
    kv_fill_header(w->s, h, w->rev + (w->changes ? 1 : 0));
    return h;
}

static int exec_grant(kv_wctx *w, kv_lease_op *op, kv_arena *a, kv_err *err) {
    kv_store *s = w->s;
    kv_lessor *l = &s->lessor;
    const Etcdserverpb__LeaseGrantRequest *req = op->grant;
    int64_t id = req->id, ttl = req->ttl;
    if (ttl > KV_LEASE_MAX_TTL) return kv_seterr(err, KV_ERR_LEASE_TTL_TOO_LARGE, NULL);
    if (ttl < l->min_ttl) ttl = l->min_ttl;
    int r = 0;
    if (id) {
        if ((r = kv_lease_exists(s, w->txn, id, err)) < 0) return -r;
        if (r) return kv_seterr(err, KV_ERR_LEASE_EXISTS, NULL);
    } else {
        /* etcd draws ids until one is non-zero; also skipping taken ones costs one lookup */
        do {
            id = (int64_t)(rng_next(&l->rng) >> 1);
            if (id && (r = kv_lease_exists(s, w->txn, id, err)) < 0) return -r;
        } while (!id || r);
    }
    /* Room in the table now, so applying the commit cannot fail for memory. */
    size_t grants = 1;
    for (size_t i = 0; i < w->n_lpend; i++)
        grants += w->lpend[i].grant;
    pthread_mutex_lock(&l->mu);
    int full = lt_reserve(l, l->n + grants);
    pthread_mutex_unlock(&l->mu);
    Etcdserverpb__LeaseGrantResponse *resp = kv_arena_alloc(a, sizeof(*resp));
    if (full || !resp) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    etcdserverpb__lease_grant_response__init(resp);
    resp->id = id;
    resp->ttl = ttl;
    if (!(resp->header = header(w, a))) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    kv_lease_pend p = {true, id, ttl, expiry_at(op->now_ms, ttl)};
    int code = pend_add(w, &p, err);
    if (code) return code;
    uint8_t kb[8], vb[8];
    id_key(kb, id);
    kv_u64_put(vb, (uint64_t)ttl);
    MDB_val k = {8, kb}, v = {8, vb};
    w->dirty = true;
    w->force_commit = true;
    int rc = mdb_put(w->txn, s->lease, &k, &v, 0);
    if (rc) return kv_mdb_err(err, rc, "write lease");
    op->grant_resp = resp;
    return KV_OK;
}

/* Copies the keys attached to lease `id` (the cursor's pages change under the deletes). */
static int attached_keys(kv_store *s, MDB_txn *txn, int64_t id, kv_buf *keys, size_t **offs,
                         size_t *n, kv_err *err) {
    uint8_t b[8];
    id_key(b, id);
    MDB_val k = {8, b}, v;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->lkeys, &c);
    if (rc) return kv_mdb_err(err, rc, "read lease keys");
    *n = 0;
    *offs = NULL;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
    if (rc == MDB_NOTFOUND) {
        mdb_cursor_close(c);
        return KV_OK;
    }
    size_t cnt = 0;
    if (!rc) rc = mdb_cursor_count(c, &cnt);
    int code = KV_OK;
    if (!rc && !(*offs = malloc((cnt + 1) * sizeof(**offs))))
        code = kv_seterr(err, KV_ERR_NOMEM, NULL);
    while (!rc && !code && *n < cnt) {
        if (kv_buf_reserve(keys, v.mv_size)) {
            code = kv_seterr(err, KV_ERR_NOMEM, NULL);
            break;
        }
        (*offs)[(*n)++] = keys->len;
        memcpy(keys->p + keys->len, v.mv_data, v.mv_size);
        keys->len += v.mv_size;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP);
    }
    mdb_cursor_close(c);
    if (!code && rc && rc != MDB_NOTFOUND) code = kv_mdb_err(err, rc, "read lease keys");
    if (!code) (*offs)[*n] = keys->len;
    return code;
}

static int exec_revoke(kv_wctx *w, kv_lease_op *op, kv_arena *a, kv_err *err) {
    kv_store *s = w->s;
    int64_t id = op->revoke->id;
    int r = kv_lease_exists(s, w->txn, id, err);
    if (r < 0) return -r;
    if (!r) return kv_seterr(err, KV_ERR_LEASE_NOT_FOUND, NULL);
    Etcdserverpb__LeaseRevokeResponse *resp = kv_arena_alloc(a, sizeof(*resp));
    if (!resp) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    etcdserverpb__lease_revoke_response__init(resp);
    kv_buf keys = {0};
    size_t *offs = NULL, n = 0;
    int code = attached_keys(s, w->txn, id, &keys, &offs, &n, err);
    kv_arena *scratch = n ? kv_arena_new() : NULL;
    if (!code && n && !scratch) code = kv_seterr(err, KV_ERR_NOMEM, NULL);
    for (size_t i = 0; !code && i < n; i++) {
        const uint8_t *key = keys.p + offs[i];
        size_t key_len = offs[i + 1] - offs[i];
        MDB_val k = {key_len, (void *)key}, v;
        kv_rec rec;
        int rc = mdb_get(w->txn, s->cur, &k, &v);
        if (rc == MDB_NOTFOUND) continue;
        if (rc) {
            code = kv_mdb_err(err, rc, "read current");
            break;
        }
        if (kv_rec_decode(v.mv_data, v.mv_size, &rec)) {
            code = kv_seterr(err, KV_ERR_CORRUPT, "kvstore: a stored KeyValue does not decode");
            break;
        }
        if (rec.lease != id) continue; /* stale attachment */
        Etcdserverpb__DeleteRangeRequest del = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
        del.key.data = (uint8_t *)key;
        del.key.len = key_len;
        Etcdserverpb__DeleteRangeResponse *dr;
        kv_arena_reset(scratch);
        code = kv_exec_delete(w, &del, scratch, false, &dr, err);
    }
    kv_arena_free(scratch);
    kv_buf_free(&keys);
    free(offs);
    if (code) return code;
    uint8_t b[8];
    id_key(b, id);
    MDB_val k = {8, b};
    w->dirty = true;
    w->force_commit = true;
    int rc = mdb_del(w->txn, s->lkeys, &k, NULL); /* stale rows, if any */
    if (rc && rc != MDB_NOTFOUND) return kv_mdb_err(err, rc, "remove lease keys");
    if ((rc = mdb_del(w->txn, s->lease, &k, NULL))) return kv_mdb_err(err, rc, "remove lease");
    if (!(resp->header = header(w, a))) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    kv_lease_pend p = {false, id, 0, 0};
    if ((code = pend_add(w, &p, err))) return code;
    op->revoke_resp = resp;
    return KV_OK;
}

int kv_exec_lease(kv_wctx *w, kv_write *wr) {
    kv_lease_op *op = wr->lease;
    op->grant_resp = NULL;
    op->revoke_resp = NULL;
    if (!wr->arena) return kv_seterr(&wr->err, KV_ERR_INVALID, "kvstore: lease op without arena");
    if (!op->grant == !op->revoke)
        return kv_seterr(&wr->err, KV_ERR_INVALID,
                         "kvstore: a lease op needs exactly one of grant and revoke");
    return op->grant ? exec_grant(w, op, wr->arena, &wr->err)
                     : exec_revoke(w, op, wr->arena, &wr->err);
}

void kv_lease_committed(kv_wctx *w) {
    if (!w->n_lpend) return;
    kv_lessor *l = &w->s->lessor;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < w->n_lpend; i++) {
        const kv_lease_pend *p = &w->lpend[i];
        if (p->grant) {
            /* A replayed grant's clock was the crashed process's: start it like a loaded one. */
            kv_lease_ent e = {p->id, p->ttl, w->s->replaying ? KV_LEASE_UNPROMOTED : p->expiry_ms};
            if (w->s->replaying) l->unpromoted = true;
            lt_set(l, &e); /* room was reserved by exec_grant */
        } else {
            lt_remove(l, p->id);
        }
    }
    pthread_mutex_unlock(&l->mu);
}

/* ---- single-request wrappers ---- */

static int apply_lease(kv_store *s, kv_lease_op *op, kv_arena *a, kv_err *err) {
    kv_write w;
    memset(&w, 0, sizeof(w));
    w.arena = a;
    w.lease = op;
    int code = kv_apply(s, &w, 1, err);
    if (code) return code;
    if (w.err.code) {
        if (err) *err = w.err;
        return w.err.code;
    }
    return KV_OK;
}

int kv_lease_grant(kv_store *s, const Etcdserverpb__LeaseGrantRequest *req, int64_t now_ms,
                   kv_arena *a, Etcdserverpb__LeaseGrantResponse **out, kv_err *err) {
    kv_lease_op op = {0};
    op.grant = req;
    op.now_ms = now_ms;
    *out = NULL;
    int code = apply_lease(s, &op, a, err);
    if (!code) *out = op.grant_resp;
    return code;
}

int kv_lease_revoke(kv_store *s, const Etcdserverpb__LeaseRevokeRequest *req, kv_arena *a,
                    Etcdserverpb__LeaseRevokeResponse **out, kv_err *err) {
    kv_lease_op op = {0};
    op.revoke = req;
    *out = NULL;
    int code = apply_lease(s, &op, a, err);
    if (!code) *out = op.revoke_resp;
    return code;
}

/* ---- reads of the lessor ---- */

static Etcdserverpb__ResponseHeader *cur_header(kv_store *s, kv_arena *a) {
    Etcdserverpb__ResponseHeader *h = kv_arena_alloc(a, sizeof(*h));
    if (!h) return NULL;
    etcdserverpb__response_header__init(h);
    kv_fill_header(s, h, atomic_load(&s->rev));
    return h;
}

int kv_lease_keepalive(kv_store *s, const Etcdserverpb__LeaseKeepAliveRequest *req, int64_t now_ms,
                       kv_arena *a, Etcdserverpb__LeaseKeepAliveResponse **out, kv_err *err) {
    if (err) err->code = KV_OK, err->msg[0] = 0;
    *out = NULL;
    Etcdserverpb__LeaseKeepAliveResponse *resp = kv_arena_alloc(a, sizeof(*resp));
    if (!resp) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    etcdserverpb__lease_keep_alive_response__init(resp);
    /* etcd fills the header before renewing: a revoke is never hidden behind a later revision */
    if (!(resp->header = cur_header(s, a))) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    resp->id = req->id;
    kv_lessor *l = &s->lessor;
    pthread_mutex_lock(&l->mu);
    promote(l, now_ms);
    kv_lease_ent *e = lt_find(l, req->id);
    if (e && e->expiry_ms > now_ms) {
        e->expiry_ms = expiry_at(now_ms, e->ttl);
        resp->ttl = e->ttl;
    }
    pthread_mutex_unlock(&l->mu);
    *out = resp;
    return KV_OK;
}

int kv_lease_timetolive(kv_store *s, const Etcdserverpb__LeaseTimeToLiveRequest *req,
                        int64_t now_ms, kv_arena *a, Etcdserverpb__LeaseTimeToLiveResponse **out,
                        kv_err *err) {
    if (err) err->code = KV_OK, err->msg[0] = 0;
    *out = NULL;
    Etcdserverpb__LeaseTimeToLiveResponse *resp = kv_arena_alloc(a, sizeof(*resp));
    if (!resp) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    etcdserverpb__lease_time_to_live_response__init(resp);
    if (!(resp->header = cur_header(s, a))) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    resp->id = req->id;
    kv_lessor *l = &s->lessor;
    pthread_mutex_lock(&l->mu);
    promote(l, now_ms);
    kv_lease_ent *e = lt_find(l, req->id);
    bool found = e != NULL;
    if (found) {
        resp->ttl = (e->expiry_ms - now_ms) / 1000; /* truncates toward zero, as etcd's int64() */
        resp->grantedttl = e->ttl;
    }
    pthread_mutex_unlock(&l->mu);
    if (!found) {
        resp->ttl = -1;
        *out = resp;
        return KV_OK;
    }
    if (req->keys) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
        if (rc) return kv_mdb_err(err, rc, "begin read");
        kv_buf keys = {0};
        size_t *offs = NULL, n = 0;
        int code = attached_keys(s, txn, req->id, &keys, &offs, &n, err);
        mdb_txn_abort(txn);
        if (!code && n) {
            resp->keys = kv_arena_alloc(a, n * sizeof(*resp->keys));
            if (!resp->keys) code = kv_seterr(err, KV_ERR_NOMEM, NULL);
        }
        for (size_t i = 0; !code && i < n; i++) {
            size_t len = offs[i + 1] - offs[i];
            resp->keys[i].len = len;
            resp->keys[i].data = kv_arena_dup(a, keys.p + offs[i], len);
            if (!resp->keys[i].data) code = kv_seterr(err, KV_ERR_NOMEM, NULL);
            resp->n_keys = i + 1;
        }
        kv_buf_free(&keys);
        free(offs);
        if (code) return code;
    }
    *out = resp;
    return KV_OK;
}

static int by_expiry(const void *x, const void *y) {
    const kv_lease_ent *a = x, *b = y;
    if (a->expiry_ms != b->expiry_ms) return a->expiry_ms < b->expiry_ms ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

int kv_lease_leases(kv_store *s, int64_t now_ms, kv_arena *a,
                    Etcdserverpb__LeaseLeasesResponse **out, kv_err *err) {
    if (err) err->code = KV_OK, err->msg[0] = 0;
    *out = NULL;
    Etcdserverpb__LeaseLeasesResponse *resp = kv_arena_alloc(a, sizeof(*resp));
    if (!resp) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    etcdserverpb__lease_leases_response__init(resp);
    if (!(resp->header = cur_header(s, a))) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    kv_lessor *l = &s->lessor;
    pthread_mutex_lock(&l->mu);
    promote(l, now_ms);
    size_t n = l->n;
    kv_lease_ent *v = n ? malloc(n * sizeof(*v)) : NULL;
    size_t k = 0;
    for (size_t i = 0; v && i < l->cap; i++)
        if (l->tab[i].id) v[k++] = l->tab[i];
    pthread_mutex_unlock(&l->mu);
    if (n && !v) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    if (k > 1) qsort(v, k, sizeof(*v), by_expiry);
    Etcdserverpb__LeaseStatus **ls = k ? kv_arena_alloc(a, k * sizeof(*ls)) : NULL;
    Etcdserverpb__LeaseStatus *st = k ? kv_arena_alloc(a, k * sizeof(*st)) : NULL;
    if (k && (!ls || !st)) {
        free(v);
        return kv_seterr(err, KV_ERR_NOMEM, NULL);
    }
    for (size_t i = 0; i < k; i++) {
        etcdserverpb__lease_status__init(&st[i]);
        st[i].id = v[i].id;
        ls[i] = &st[i];
    }
    free(v);
    resp->leases = ls;
    resp->n_leases = k;
    *out = resp;
    return KV_OK;
}

size_t kv_lease_expired(kv_store *s, int64_t now_ms, int64_t *ids, size_t max) {
    kv_lessor *l = &s->lessor;
    size_t n = 0;
    pthread_mutex_lock(&l->mu);
    promote(l, now_ms);
    for (size_t i = 0; i < l->cap && n < max; i++)
        if (l->tab[i].id && l->tab[i].expiry_ms <= now_ms) ids[n++] = l->tab[i].id;
    pthread_mutex_unlock(&l->mu);
    return n;
}
