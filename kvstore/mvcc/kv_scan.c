/* kv_scan.c — keys of a range at a revision, and the key-index lookups behind historical reads.
 *
 * At the snapshot's current revision the scan walks "cur" and hands out the stored bytes (the
 * LIST fast path: no per-key lookups). At an older revision it walks the key index: per key the
 * last duplicate (the common case for a slightly old revision is that it is already <= rev),
 * otherwise a GET_BOTH_RANGE seek and one step back. A live key whose newest revision is <= rev
 * is read from "cur" through a second cursor that follows the scan in key order (pagination
 * reads slightly behind the head then cost little more than a current read); older versions
 * cost one "hist" lookup each.
 * Keys longer than LMDB's limit cannot be stored, so seeks use a 511-byte prefix and skip.
 */
#include <string.h>

#include "kv_internal.h"

static void idx_put(uint8_t out[KV_IDX_LEN], int64_t main, int64_t sub, unsigned flag) {
    kv_rev_put(out, main, sub);
    out[16] = (uint8_t)flag;
}

int kv_hist_get(kv_store *s, MDB_txn *txn, int64_t main, int64_t sub, unsigned *flag,
                const uint8_t **kv, size_t *len, kv_err *err) {
    uint8_t rk[KV_REV_LEN];
    kv_rev_put(rk, main, sub);
    MDB_val k = {KV_REV_LEN, rk}, v;
    int rc = mdb_get(txn, s->hist, &k, &v);
    if (rc == MDB_NOTFOUND)
        return kv_seterr(err, KV_ERR_CORRUPT,
                         "kvstore: key index names revision {%lld,%lld} missing from history",
                         (long long)main, (long long)sub);
    if (rc) return kv_mdb_err(err, rc, "read history");
    if (v.mv_size < 1) return kv_seterr(err, KV_ERR_CORRUPT, "kvstore: empty history record");
    *flag = ((const uint8_t *)v.mv_data)[0];
    *kv = (const uint8_t *)v.mv_data + 1;
    *len = v.mv_size - 1;
    return KV_OK;
}

/* With the cursor on some duplicate of a key: finds the latest duplicate <= rev. *is_last tells
 * whether that is the key's newest revision. */
static int dup_at(MDB_cursor *c, int64_t rev, MDB_val *k, MDB_val *v, bool *is_last) {
    *is_last = false;
    int rc = mdb_cursor_get(c, k, v, MDB_LAST_DUP);
    if (rc) return rc;
    if (v->mv_size != KV_IDX_LEN) return MDB_CORRUPTED;
    if ((int64_t)kv_u64_get(v->mv_data) <= rev) {
        *is_last = true;
        return 0;
    }
    uint8_t probe[KV_IDX_LEN];
    idx_put(probe, rev + 1, 0, 0);
    MDB_val pv = {KV_IDX_LEN, probe};
    rc = mdb_cursor_get(c, k, &pv, MDB_GET_BOTH_RANGE);
    if (rc) return rc; /* cannot happen: the last dup is > rev */
    rc = mdb_cursor_get(c, k, v, MDB_PREV_DUP);
    return rc;
}

int kv_kidx_at(kv_store *s, MDB_txn *txn, const uint8_t *key, size_t key_len, int64_t rev,
               uint8_t idx[KV_IDX_LEN], kv_err *err) {
    if (key_len == 0 || key_len > KV_MAX_KEY_LEN) return 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->kidx, &c);
    if (rc) return -kv_mdb_err(err, rc, "open cursor");
    MDB_val k = {key_len, (void *)key}, v;
    bool last;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET);
    if (!rc) rc = dup_at(c, rev, &k, &v, &last);
    if (!rc) memcpy(idx, v.mv_data, KV_IDX_LEN);
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return -kv_mdb_err(err, rc, "read key index");
    return 1;
}

int kv_scan_open(kv_scan *it, kv_store *s, MDB_txn *txn, const kv_keyrange *kr, int64_t rev,
                 bool current, kv_err *err) {
    memset(it, 0, sizeof(*it));
    it->s = s;
    it->txn = txn;
    it->kr = *kr;
    it->rev = rev;
    it->historical = !current;
    int rc = mdb_cursor_open(txn, current ? s->cur : s->kidx, &it->c);
    if (rc) return kv_mdb_err(err, rc, "open cursor");
    return KV_OK;
}

void kv_scan_close(kv_scan *it) {
    if (it->c) mdb_cursor_close(it->c);
    if (it->cc) mdb_cursor_close(it->cc);
    it->c = it->cc = NULL;
}

/* The live record of a key whose newest revision is visible at the scan revision: that is the
 * record in "cur". Keys come in order, so a few cursor steps usually reach it without a seek. */
static int cur_follow(kv_scan *it, const MDB_val *key, const uint8_t **kv, size_t *len) {
    MDB_val k, v;
    int rc;
    if (!it->cc) {
        if ((rc = mdb_cursor_open(it->txn, it->s->cur, &it->cc))) return rc;
        it->cc_pos = false;
    }
    if (it->cc_pos) {
        for (int step = 0; step < 8; step++) {
            if ((rc = mdb_cursor_get(it->cc, &k, &v, MDB_NEXT))) break;
            int c = kv_bytes_cmp(k.mv_data, k.mv_size, key->mv_data, key->mv_size);
            if (c == 0) {
                *kv = v.mv_data;
                *len = v.mv_size;
                return 0;
            }
            if (c > 0) break;
        }
    }
    k = *key;
    rc = mdb_cursor_get(it->cc, &k, &v, MDB_SET_KEY);
    it->cc_pos = rc == 0;
    if (rc) return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
    *kv = v.mv_data;
    *len = v.mv_size;
    return 0;
}

/* Positions on the next user key of the range (any revision); 1 found, 0 end. */
static int next_key(kv_scan *it, MDB_val *k, MDB_val *v) {
    int rc;
    if (!it->started) {
        it->started = true;
        const kv_keyrange *kr = &it->kr;
        if (kr->key_len == 0 && kr->single) return 0;
        if (kr->single) {
            if (kr->key_len > KV_MAX_KEY_LEN) return 0;
            k->mv_size = kr->key_len;
            k->mv_data = (void *)kr->key;
            rc = mdb_cursor_get(it->c, k, v, MDB_SET_KEY);
        } else if (kr->key_len == 0) {
            rc = mdb_cursor_get(it->c, k, v, MDB_FIRST);
        } else {
            k->mv_size = kr->key_len > KV_MAX_KEY_LEN ? KV_MAX_KEY_LEN : kr->key_len;
            k->mv_data = (void *)kr->key;
            rc = mdb_cursor_get(it->c, k, v, MDB_SET_RANGE);
            while (rc == 0 && kv_bytes_cmp(k->mv_data, k->mv_size, kr->key, kr->key_len) < 0)
                rc = mdb_cursor_get(it->c, k, v, it->historical ? MDB_NEXT_NODUP : MDB_NEXT);
        }
    } else {
        if (it->kr.single) return 0;
        rc = mdb_cursor_get(it->c, k, v, it->historical ? MDB_NEXT_NODUP : MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return -rc;
    if (kv_keyrange_past(&it->kr, k->mv_data, k->mv_size)) return 0;
    return 1;
}

int kv_scan_next(kv_scan *it, bool need_value, const uint8_t **kv, size_t *len, kv_err *err) {
    if (it->done) return 0;
    for (;;) {
        MDB_val k, v;
        int r = next_key(it, &k, &v);
        if (r <= 0) {
            it->done = true;
            if (r < 0) return -kv_mdb_err(err, -r, "scan");
            return 0;
        }
        if (!it->historical) {
            *kv = v.mv_data;
            *len = v.mv_size;
            return 1;
        }
        bool last;
        MDB_val key = k;
        int rc = dup_at(it->c, it->rev, &k, &v, &last);
        if (rc == MDB_NOTFOUND) continue; /* created after rev */
        if (rc) {
            it->done = true;
            return -kv_mdb_err(err, rc, "read key index");
        }
        const uint8_t *d = v.mv_data;
        if (d[16] & KV_FLAG_TOMBSTONE) continue;
        *kv = NULL;
        *len = 0;
        if (need_value && last) {
            if ((rc = cur_follow(it, &key, kv, len))) {
                it->done = true;
                return -kv_mdb_err(err, rc, "read current");
            }
        } else if (need_value) {
            kv_rev r2 = kv_rev_get(d);
            unsigned flag;
            int code = kv_hist_get(it->s, it->txn, r2.main, r2.sub, &flag, kv, len, err);
            if (code) {
                it->done = true;
                return -code;
            }
        }
        return 1;
    }
}
