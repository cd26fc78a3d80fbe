/* kv_feed.c — the change feed: history in revision order for watchers catching up.
 *
 * One read txn walks "hist" from {start_rev, 0}; every record is already the event's kv bytes
 * (a tombstone holds key + mod_revision, exactly a DELETE event's kv). prev_kv is the key-index
 * entry just before the event, read from "hist". Batches end only at a main-revision boundary.
 * A key filter that matches little could make one call scan a long history, so a call also
 * stops (at a boundary) after FEED_SCAN_LIMIT records when it was given a batch limit.
 */
#include <string.h>

#include "kv_internal.h"

#define FEED_SCAN_LIMIT 65536

static int prev_of(kv_store *s, MDB_txn *txn, MDB_cursor *ic, const kv_rec *r, const uint8_t *rk,
                   unsigned flag, const uint8_t **prev, size_t *prev_len, kv_err *err) {
    *prev = NULL;
    *prev_len = 0;
    uint8_t idx[KV_IDX_LEN];
    memcpy(idx, rk, KV_REV_LEN);
    idx[16] = (uint8_t)flag;
    MDB_val k = {r->key_len, (void *)r->key}, v = {KV_IDX_LEN, idx};
    int rc = mdb_cursor_get(ic, &k, &v, MDB_GET_BOTH);
    if (!rc) rc = mdb_cursor_get(ic, &k, &v, MDB_PREV_DUP);
    if (rc == MDB_NOTFOUND) return KV_OK;
    if (rc) return kv_mdb_err(err, rc, "read key index");
    const uint8_t *d = v.mv_data;
    if (d[16] & KV_FLAG_TOMBSTONE) return KV_OK;
    kv_rev pr = kv_rev_get(d);
    unsigned pf;
    return kv_hist_get(s, txn, pr.main, pr.sub, &pf, prev, prev_len, err);
}

int kv_feed_read(kv_store *s, int64_t start_rev, int64_t end_rev, const uint8_t *key,
                 size_t key_len, const uint8_t *range_end, size_t range_end_len, bool with_prev_kv,
                 size_t max_events, size_t max_bytes, kv_event_fn fn, void *ud, int64_t *next_rev,
                 kv_err *err) {
    if (err) err->code = KV_OK, err->msg[0] = 0;
    *next_rev = start_rev;
    MDB_txn *txn;
    int64_t cur, crev;
    int code = kv_read_begin(s, &txn, &cur, &crev, err);
    if (code) return code;
    if (start_rev < 1) start_rev = 1;
    *next_rev = start_rev;
    if (start_rev < crev) {
        mdb_txn_abort(txn);
        return kv_seterr(err, KV_ERR_COMPACTED, NULL);
    }
    int64_t hi = end_rev <= 0 || end_rev > cur ? cur : end_rev;
    if (start_rev > hi) {
        mdb_txn_abort(txn);
        return KV_OK;
    }
    kv_keyrange kr = kv_keyrange_make(key, key_len, range_end, range_end_len);
    MDB_cursor *hc = NULL, *ic = NULL;
    int rc = mdb_cursor_open(txn, s->hist, &hc);
    if (!rc && with_prev_kv) rc = mdb_cursor_open(txn, s->kidx, &ic);
    if (rc) {
        code = kv_mdb_err(err, rc, "open cursor");
        goto out;
    }
    uint8_t sk[KV_REV_LEN];
    kv_rev_put(sk, start_rev, 0);
    MDB_val k = {KV_REV_LEN, sk}, v;
    rc = mdb_cursor_get(hc, &k, &v, MDB_SET_RANGE);
    size_t events = 0, bytes = 0, scanned = 0;
    int64_t last_main = -1;
    bool limited = max_events || max_bytes;
    *next_rev = hi + 1;
    for (; !rc; rc = mdb_cursor_get(hc, &k, &v, MDB_NEXT)) {
        if (k.mv_size != KV_REV_LEN || v.mv_size < 1) {
            code = kv_seterr(err, KV_ERR_CORRUPT, "kvstore: malformed history record");
            break;
        }
        kv_rev r = kv_rev_get(k.mv_data);
        if (r.main > hi) break;
        if (r.main != last_main) {
            if ((max_events && events >= max_events) || (max_bytes && bytes >= max_bytes) ||
                (limited && scanned >= FEED_SCAN_LIMIT)) {
                *next_rev = r.main;
                break;
            }
            last_main = r.main;
        }
        scanned++;
        unsigned flag = ((const uint8_t *)v.mv_data)[0];
        kv_event ev;
        kv_rec rec;
        ev.kv = (const uint8_t *)v.mv_data + 1;
        ev.kv_len = v.mv_size - 1;
        if (kv_rec_decode(ev.kv, ev.kv_len, &rec)) {
            code = kv_seterr(err, KV_ERR_CORRUPT, "kvstore: a stored KeyValue does not decode");
            break;
        }
        if (!kv_keyrange_has(&kr, rec.key, rec.key_len)) continue;
        ev.type = (flag & KV_FLAG_TOMBSTONE) ? MVCCPB__EVENT__EVENT_TYPE__DELETE
                                             : MVCCPB__EVENT__EVENT_TYPE__PUT;
        ev.main = r.main;
        ev.sub = r.sub;
        ev.key = rec.key;
        ev.key_len = rec.key_len;
        ev.prev_kv = NULL;
        ev.prev_kv_len = 0;
        if (with_prev_kv &&
            (code = prev_of(s, txn, ic, &rec, k.mv_data, flag, &ev.prev_kv, &ev.prev_kv_len, err)))
            break;
        int stop = fn(ud, &ev);
        if (stop) {
            code = stop;
            *next_rev = r.main; /* the revision was not completely delivered */
            break;
        }
        events++;
        bytes += ev.kv_len + ev.prev_kv_len;
    }
    if (!code && rc && rc != MDB_NOTFOUND) code = kv_mdb_err(err, rc, "read history");
out:
    if (hc) mdb_cursor_close(hc);
    if (ic) mdb_cursor_close(ic);
    mdb_txn_abort(txn);
    return code;
}
