/* kv_compact.c — etcd's Compact: a durable logical step (the compaction point moves, reads below
 * it fail at once) and physical removal in bounded steps that walk the key index.
 *
 * What Compact(R) keeps, per key: every revision above R, and the latest revision at or below R
 * unless that is a tombstone below R (a deleted key vanishes entirely; a tombstone at exactly R
 * stays until a later compaction so a watcher starting at R still sees the delete). A step walks
 * keys in order and persists where it stopped ("compact_key": a byte saying "at"/"after", then
 * the key) in the same LMDB txn as its removals, so a restart resumes exactly there. A new
 * Compact restarts the walk from the first key: keys already passed may hold newly obsolete
 * revisions.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kv_internal.h"

#define PROGRESS_KEY "compact_key"

int kv_compact(kv_store *s, int64_t rev, kv_err *err) {
    if (err) err->code = KV_OK, err->msg[0] = 0;
    int64_t crev = atomic_load(&s->compact_rev);
    if (rev <= crev) {
        if (rev == 0 && crev == 0)
            return KV_OK; /* etcd accepts Compact(0) on a never-compacted store */
        return kv_seterr(err, KV_ERR_COMPACTED, NULL);
    }
    if (rev > atomic_load(&s->rev)) return kv_seterr(err, KV_ERR_FUTURE_REV, NULL);
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return kv_mdb_err(err, rc, "begin write");
    int64_t cur, old, fin;
    int code = kv_wal_check(s, err);
    if (!code) code = kv_meta_get_state(s, txn, &cur, &old, &fin, err);
    if (!code) code = kv_meta_put_state(s, txn, cur, rev, fin, err);
    if (!code) {
        MDB_val k = {strlen(PROGRESS_KEY), PROGRESS_KEY};
        rc = mdb_del(txn, s->meta, &k, NULL);
        if (rc && rc != MDB_NOTFOUND) code = kv_mdb_err(err, rc, "reset compaction progress");
    }
    if (!code && s->wal && !s->replaying) code = kv_wal_log_compact(s, rev, err);
    if (code) {
        mdb_txn_abort(txn);
        return code;
    }
    rc = mdb_txn_commit(txn);
    if (rc) {
        kv_mdb_err(err, rc, "commit compaction");
        if (s->wal) kv_wal_commit_failed(s, err);
        return err->code;
    }
    atomic_store(&s->compact_rev, rev);
    return KV_OK;
}

typedef struct dups {
    uint8_t (*v)[KV_IDX_LEN];
    size_t n, cap;
} dups;

static int dups_push(dups *d, const void *p) {
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 32;
        void *nv = realloc(d->v, nc * KV_IDX_LEN);
        if (!nv) return -1;
        d->v = nv;
        d->cap = nc;
    }
    memcpy(d->v[d->n++], p, KV_IDX_LEN);
    return 0;
}

/* Positions on the first key at or after the saved progress. */
static int seek_progress(MDB_cursor *c, const uint8_t *pk, size_t pn, MDB_val *k, MDB_val *v) {
    if (!pn) return mdb_cursor_get(c, k, v, MDB_FIRST);
    bool after = pk[0] == 1;
    k->mv_data = (void *)(pk + 1);
    k->mv_size = pn - 1;
    int rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
    if (!rc && after && kv_bytes_cmp(k->mv_data, k->mv_size, pk + 1, pn - 1) == 0)
        rc = mdb_cursor_get(c, k, v, MDB_NEXT_NODUP);
    return rc;
}

int kv_compact_step(kv_store *s, size_t max_items, bool *done, kv_err *err) {
    if (err) err->code = KV_OK, err->msg[0] = 0;
    *done = false;
    int64_t crev = atomic_load(&s->compact_rev);
    if (atomic_load(&s->compact_finished) >= crev) {
        *done = true;
        return KV_OK;
    }
    if (max_items == 0) max_items = 1;
    size_t visit_limit = max_items * 4 + 64;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return kv_mdb_err(err, rc, "begin write");
    uint8_t pbuf[KV_MAX_KEY_LEN + 2];
    size_t pn = 0;
    MDB_val pk = {strlen(PROGRESS_KEY), PROGRESS_KEY}, pv;
    rc = mdb_get(txn, s->meta, &pk, &pv);
    if (!rc && pv.mv_size >= 2 && pv.mv_size <= sizeof(pbuf)) {
        memcpy(pbuf, pv.mv_data, pv.mv_size);
        pn = pv.mv_size;
    }
    MDB_cursor *c = NULL;
    dups d = {0};
    int code = KV_OK;
    bool finished = false;
    size_t removed = 0, visited = 0;
    uint8_t key[KV_MAX_KEY_LEN];
    size_t key_len = 0;
    if ((rc = mdb_cursor_open(txn, s->kidx, &c))) {
        code = kv_mdb_err(err, rc, "open cursor");
        goto out;
    }
    MDB_val k, v;
    rc = seek_progress(c, pbuf, pn, &k, &v);
    for (;;) {
        if (rc == MDB_NOTFOUND) {
            finished = true;
            break;
        }
        if (rc) {
            code = kv_mdb_err(err, rc, "walk key index");
            break;
        }
        if (k.mv_size > sizeof(key)) {
            code = kv_seterr(err, KV_ERR_CORRUPT, "kvstore: key index key too long");
            break;
        }
        key_len = k.mv_size;
        memcpy(key, k.mv_data, key_len);
        /* Revisions <= crev of this key, at most budget + 1 of them. */
        size_t cap = max_items - removed + 1;
        d.n = 0;
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST_DUP);
        while (!rc && d.n < cap && (int64_t)kv_u64_get(v.mv_data) <= crev) {
            if (dups_push(&d, v.mv_data)) {
                rc = ENOMEM;
                break;
            }
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP);
        }
        if (rc && rc != MDB_NOTFOUND) {
            code = kv_mdb_err(err, rc, "walk key index");
            break;
        }
        bool partial = d.n == cap;
        size_t drop = d.n ? d.n - 1 : 0;
        if (!partial && d.n) {
            const uint8_t *last = d.v[d.n - 1];
            if ((last[16] & KV_FLAG_TOMBSTONE) && (int64_t)kv_u64_get(last) < crev) drop = d.n;
        }
        for (size_t i = 0; i < drop && !code; i++) {
            MDB_val hk = {KV_REV_LEN, d.v[i]}, uk = {key_len, key}, iv = {KV_IDX_LEN, d.v[i]};
            if ((rc = mdb_del(txn, s->hist, &hk, NULL)) && rc != MDB_NOTFOUND)
                code = kv_mdb_err(err, rc, "compact history");
            else if ((rc = mdb_del(txn, s->kidx, &uk, &iv)))
                code = kv_mdb_err(err, rc, "compact key index");
        }
        if (code) break;
        removed += drop;
        visited++;
        pbuf[0] = partial ? 0 : 1;
        memcpy(pbuf + 1, key, key_len);
        pn = key_len + 1;
        if (removed >= max_items || visited >= visit_limit) break;
        rc = seek_progress(c, pbuf, pn, &k, &v);
    }
out:
    if (c) mdb_cursor_close(c);
    free(d.v);
    int64_t cur, crev2, fin;
    if (!code) code = kv_meta_get_state(s, txn, &cur, &crev2, &fin, err);
    if (!code) {
        if (finished) {
            rc = mdb_del(txn, s->meta, &pk, NULL);
            if (rc && rc != MDB_NOTFOUND) code = kv_mdb_err(err, rc, "save compaction progress");
            if (!code) code = kv_meta_put_state(s, txn, cur, crev2, crev2, err);
        } else if (pn) {
            MDB_val nv = {pn, pbuf};
            if ((rc = mdb_put(txn, s->meta, &pk, &nv, 0)))
                code = kv_mdb_err(err, rc, "save compaction progress");
        }
    }
    if (code) {
        mdb_txn_abort(txn);
        return code;
    }
    if ((rc = mdb_txn_commit(txn))) return kv_mdb_err(err, rc, "commit compaction step");
    if (finished) atomic_store(&s->compact_finished, crev);
    *done = finished;
    return KV_OK;
}
