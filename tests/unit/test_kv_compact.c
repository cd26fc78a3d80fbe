/* test_kv_compact.c — the MVCC engine's compaction boundaries (reads at, below and above the
 * compacted revision, repeated and future compactions) and the change feed (batches by
 * revision, continuation, limits, prev_kv) through kv.h. Fixture: kv_fixture.h.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv.h"
#include "kv_fixture.h"
#include "testutil.h"

/* ---- compaction ---- */

static void test_compaction_boundaries(void **state) {
    fx *f = *state;
    put(f, "a", "a1");                                  /* 2 */
    put(f, "b", "b1");                                  /* 3 */
    put(f, "a", "a2");                                  /* 4 */
    del(f, "b", (ProtobufCBinaryData){0, NULL}, false); /* 5: b tombstone < compact rev */
    put(f, "c", "c1");                                  /* 6 */
    del(f, "c", (ProtobufCBinaryData){0, NULL}, false); /* 7: c tombstone == compact rev */
    put(f, "a", "a3");                                  /* 8 */
    put(f, "d", "d1");                                  /* 9 */
    kv_err e;
    assert_int_equal(kv_compact(f->s, 10, &e), KV_ERR_FUTURE_REV);
    assert_int_equal(kv_compact(f->s, 7, &e), KV_OK);
    assert_int_equal(kv_compact(f->s, 7, &e), KV_ERR_COMPACTED);
    assert_int_equal(kv_compact(f->s, 3, &e), KV_ERR_COMPACTED);
    kv_status st;
    kv_status_get(f->s, &st);
    assert_int_equal(st.compact_revision, 7);
    assert_true(st.compact_finished < 7);
    /* logically compacted before any physical step */
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key = B("a");
    r.revision = 6;
    range_req(f, &r, KV_ERR_COMPACTED);
    int64_t next;
    evlog l;
    assert_int_equal(kv_feed_read(f->s, 6, 0, (const uint8_t *)"a", 1, NULL, 0, false, 0, 0,
                                  feed_collect, &l, &next, &e),
                     KV_ERR_COMPACTED);
    /* physical removal in small steps */
    bool done = false;
    int steps = 0;
    while (!done) {
        assert_int_equal(kv_compact_step(f->s, 1, &done, &e), KV_OK);
        assert_true(++steps < 100);
    }
    assert_true(steps > 2);
    kv_status_get(f->s, &st);
    assert_int_equal(st.compact_finished, 7);
    /* reading exactly at the compact revision works: each key's latest version at 7 */
    Etcdserverpb__RangeResponse *resp = get_range(f, "a", FROM_KEY, 7);
    expect_keys(resp, "a");
    assert_kv(resp->kvs[0], "a", "a2", 2, 4, 2);
    r.revision = 6;
    range_req(f, &r, KV_ERR_COMPACTED);
    /* the feed from 7 still has the tombstone at 7, not the one at 5 */
    feed_all(f, 7, &l, true);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.key[0], "c");
    assert_int_equal(l.type[0], MVCCPB__EVENT__EVENT_TYPE__DELETE);
    assert_false(l.has_prev[0]); /* c's put at 6 was compacted away */
    assert_string_equal(l.key[1], "a");
    assert_string_equal(l.prev_val[1], "a2");
    /* a second compaction removes the tombstone at 7 and old a */
    assert_int_equal(kv_compact(f->s, 9, &e), KV_OK);
    done = false;
    while (!done)
        assert_int_equal(kv_compact_step(f->s, 100, &done, &e), KV_OK);
    feed_all(f, 9, &l, false);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.key[0], "d");
    resp = get_range(f, "a", FROM_KEY, 9);
    expect_keys(resp, "a,d");
    assert_kv(resp->kvs[0], "a", "a3", 2, 8, 3);
    /* steps when nothing is left */
    assert_int_equal(kv_compact_step(f->s, 10, &done, &e), KV_OK);
    assert_true(done);
    /* Compact(0) of a compacted store */
    assert_int_equal(kv_compact(f->s, 0, &e), KV_ERR_COMPACTED);
}

/* ---- change feed ---- */

typedef struct batch {
    int n;
    int64_t mains[64];
    int stop_at;
} batch;

static int batch_collect(void *ud, const kv_event *ev) {
    batch *b = ud;
    b->mains[b->n++] = ev->main;
    if (b->stop_at && b->n == b->stop_at) return 7;
    return 0;
}

static void test_feed_batches(void **state) {
    fx *f = *state;
    /* revisions: 2 put a, 3 txn of 3 puts (x,y,z), 4 put b, 5 delete range x..z (3 subs), 6 put a
     */
    put(f, "a", "1");
    Etcdserverpb__RequestOp o[3], *op[3];
    Etcdserverpb__PutRequest p[3];
    const char *ks[3] = {"x", "y", "z"};
    for (int i = 0; i < 3; i++)
        op[i] = op_put(&o[i], &p[i], ks[i], "v");
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_success = 3;
    t.success = op;
    Etcdserverpb__TxnResponse *tr;
    kv_err e;
    assert_int_equal(kv_txn(f->s, &t, f->a, &tr, &e), KV_OK);
    put(f, "b", "1");
    del(f, "x", B("zz"), false);
    put(f, "a", "2");
    assert_int_equal(cur_rev(f), 6);
    /* max_events 2: the first batch ends after revision 3 (never split) */
    batch b = {0};
    int64_t next;
    const uint8_t *all = (const uint8_t *)"\0";
    assert_int_equal(
        kv_feed_read(f->s, 2, 0, all, 1, all, 1, false, 2, 0, batch_collect, &b, &next, &e), KV_OK);
    assert_int_equal(b.n, 4);
    assert_int_equal(next, 4);
    memset(&b, 0, sizeof(b));
    assert_int_equal(
        kv_feed_read(f->s, next, 0, all, 1, all, 1, false, 2, 0, batch_collect, &b, &next, &e),
        KV_OK);
    assert_int_equal(b.n, 4); /* 4 then 5 (3 events) */
    assert_int_equal(next, 6);
    memset(&b, 0, sizeof(b));
    assert_int_equal(
        kv_feed_read(f->s, next, 0, all, 1, all, 1, false, 2, 0, batch_collect, &b, &next, &e),
        KV_OK);
    assert_int_equal(b.n, 1);
    assert_int_equal(next, 7);
    memset(&b, 0, sizeof(b));
    assert_int_equal(
        kv_feed_read(f->s, next, 0, all, 1, all, 1, false, 2, 0, batch_collect, &b, &next, &e),
        KV_OK);
    assert_int_equal(b.n, 0);
    assert_int_equal(next, 7);
    /* max_bytes */
    memset(&b, 0, sizeof(b));
    assert_int_equal(
        kv_feed_read(f->s, 2, 0, all, 1, all, 1, false, 0, 1, batch_collect, &b, &next, &e), KV_OK);
    assert_int_equal(b.n, 1);
    assert_int_equal(next, 3);
    /* end_rev */
    memset(&b, 0, sizeof(b));
    assert_int_equal(
        kv_feed_read(f->s, 2, 4, all, 1, all, 1, false, 0, 0, batch_collect, &b, &next, &e), KV_OK);
    assert_int_equal(b.n, 5);
    assert_int_equal(next, 5);
    /* key filter: single key, and a range */
    memset(&b, 0, sizeof(b));
    assert_int_equal(kv_feed_read(f->s, 1, 0, (const uint8_t *)"a", 1, NULL, 0, false, 0, 0,
                                  batch_collect, &b, &next, &e),
                     KV_OK);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.mains[1], 6);
    memset(&b, 0, sizeof(b));
    assert_int_equal(kv_feed_read(f->s, 1, 0, (const uint8_t *)"y", 1, (const uint8_t *)"z", 1,
                                  false, 0, 0, batch_collect, &b, &next, &e),
                     KV_OK);
    assert_int_equal(b.n, 2); /* put y at 3, delete y at 5 */
    /* prev_kv of the deletes and of the second put of a */
    evlog l;
    feed_all(f, 5, &l, true);
    assert_int_equal(l.n, 4);
    for (int i = 0; i < 4; i++)
        assert_true(l.has_prev[i]);
    assert_string_equal(l.prev_val[3], "1");
    /* the callback stops the read */
    memset(&b, 0, sizeof(b));
    b.stop_at = 2;
    assert_int_equal(
        kv_feed_read(f->s, 2, 0, all, 1, all, 1, false, 0, 0, batch_collect, &b, &next, &e), 7);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_compaction_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_batches, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
