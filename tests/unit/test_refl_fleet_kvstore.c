/* test_refl_fleet_kvstore.c — the reflector fleet at scale (100 watchers) against our own server,
 * `kvstore serve` of this build (../kvstore next to this test; RELIST_REFL_SERVER overrides it,
 * see test_refl_live_util.h), with churn across 10 namespaces that share object names:
 *  1. namespaced keys, one namespace-scoped watcher per node-like client: no relist after the
 *     initial LIST, no miss, no duplicate, every event of its namespace, zero divergence;
 *  2. mismatch + relist: exactly the relists the churn model predicts (one per update/delete of
 *     an object the watcher last got from a LIST), the writes serialized per namespace so no
 *     relist absorbs a second event;
 *  3. name keys on whole-resource watchers: the collisions are detected (divergent, collided),
 *     a namespaced control fleet on the same data is clean;
 *  4. a server restart (same port and data dir): re-watch, no relist, no gap, no duplicate; then
 *     a compaction past the revision of held watchers: exactly those relist (compacted).
 * Each test uses its own resource (/registry/f<k>pods/) so they share one server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define LIVE_SERVER_DEFAULT "kvstore:auto"
/* the shared live harness defines plain static helpers; this suite does not use them all */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "refl_fleet_churn.h"

enum { FLEET = 100, NS = 10 };

static uint64_t relists_of(const refl_counters *c) {
    return c->relists.miss + c->relists.compacted + c->relists.error;
}

/* The fleets a test has running, so that a failed test's fleets are still stopped (by the
 * per-test teardown) and the group teardown's loop drain does not wait on their handles. */
static refl_fleet *RUNNING[4];

static refl_fleet *fleet_start(const refl_fleet_opts *o) {
    refl_fleet *f = live_fleet(o);
    for (size_t k = 0; k < sizeof RUNNING / sizeof RUNNING[0]; k++)
        if (!RUNNING[k]) {
            RUNNING[k] = f;
            return f;
        }
    fail_msg("too many fleets");
    return NULL;
}

static void fleet_free(refl_fleet *f) {
    for (size_t k = 0; k < sizeof RUNNING / sizeof RUNNING[0]; k++)
        if (RUNNING[k] == f) RUNNING[k] = NULL;
    live_fleet_free(f);
}

static int fleet_teardown(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof RUNNING / sizeof RUNNING[0]; k++)
        if (RUNNING[k]) fleet_free(RUNNING[k]);
    return 0;
}

static refl_fleet_opts fleet_opts(const char *prefix, size_t namespaces, size_t conns) {
    refl_fleet_opts o = live_opts(prefix, FLEET);
    o.namespaces = namespaces;
    o.conns = conns;
    o.page_size = 50;
    return o;
}

/* ---- 1. namespaced churn ------------------------------------------------------------------- */

static void test_fleet_namespaced_churn(void **state) {
    (void)state;
    LIVE_REQUIRE();
    churn ch;
    churn_init(&ch, "f1pods", NS, 20, 200, 11);
    assert_int_equal(churn_seed(&ch, 10), 0); /* web-0..web-9 in every namespace */
    refl_fleet_opts o = fleet_opts("/registry/f1pods/", NS, 0); /* a connection per watcher */
    refl_fleet *f = fleet_start(&o);
    churn_wait(f, &ch, true, 20000);
    for (int k = 0; k < 300; k++)
        assert_true(churn_step(&ch) > 0);
    churn_wait(f, &ch, true, 20000);

    refl_verify_round v = live_verify(f);
    assert_int_equal(v.verified, FLEET);
    assert_int_equal(v.unverified, 0);
    assert_int_equal(v.divergent, 0);
    assert_int_equal(v.divergent_watchers, 0);
    assert_int_equal(v.collided, 0);
    refl_fleet_stats st;
    refl_fleet_get_stats(f, &st);
    assert_int_equal(st.totals.lists, FLEET); /* the initial LISTs only */
    assert_int_equal(relists_of(&st.totals), 0);
    assert_int_equal(st.totals.misses, 0);
    assert_int_equal(st.extra.duplicates, 0);
    for (size_t i = 0; i < FLEET; i++) {
        refl_watcher_info wi = live_info(f, i);
        int n = (int)(i % NS);
        assert_int_equal(wi.counters.events, ch.writes[n]); /* every write of its namespace */
        assert_int_equal(wi.counters.lists, 1);
        assert_int_equal(relists_of(&wi.counters), 0);
        assert_int_equal(wi.counters.misses, 0);
    }
    print_message("  %llu writes (%llu creates, %llu updates, %llu deletes), %llu events, truth "
                  "lists %llu\n",
                  (unsigned long long)ch.total, (unsigned long long)churn_sum(ch.creates, NS),
                  (unsigned long long)churn_sum(ch.updates, NS),
                  (unsigned long long)churn_sum(ch.deletes, NS),
                  (unsigned long long)st.totals.events, (unsigned long long)v.lists);
    fleet_free(f);
}

/* ---- 2. mismatch + relist: the storm, counted ------------------------------------------------ */

static void test_fleet_mismatch_relists(void **state) {
    (void)state;
    LIVE_REQUIRE();
    churn ch;
    churn_init(&ch, "f2pods", NS, 14, 100, 22);
    assert_int_equal(churn_seed(&ch, 10), 0);
    refl_fleet_opts o = fleet_opts("/registry/f2pods/", NS, 10);
    o.key_mode = REFL_KEY_MISMATCH;
    o.miss_policy = REFL_MISS_RELIST;
    refl_fleet *f = fleet_start(&o); /* backoff none: a relist LISTs at once */
    churn_wait(f, &ch, true, 20000);
    /* Rounds of one write per namespace, then wait until every watcher applied it (or relisted
     * past it). Each watcher sees only its namespace's writes, one at a time, so the model's
     * count is exact. Unserialized, a relist's LIST at revision R would absorb every later
     * event of the namespace up to R and the count would only be bounded (the burst below). */
    for (int round = 0; round < 30; round++) {
        for (int n = 0; n < NS; n++)
            assert_true(churn_step_in(&ch, n) > 0);
        churn_wait(f, &ch, true, 20000);
    }
    uint64_t predicted = 0;
    for (size_t i = 0; i < FLEET; i++) {
        refl_watcher_info wi = live_info(f, i);
        int n = (int)(i % NS);
        uint64_t upd_del = ch.updates[n] + ch.deletes[n];
        if (wi.counters.relists.miss != ch.mismatch_misses[n])
            print_message("  %s: relists.miss %llu, predicted %llu (updates+deletes %llu)\n",
                          wi.name, (unsigned long long)wi.counters.relists.miss,
                          (unsigned long long)ch.mismatch_misses[n], (unsigned long long)upd_del);
        assert_int_equal(wi.counters.relists.miss, ch.mismatch_misses[n]);
        assert_int_equal(wi.counters.misses, ch.mismatch_misses[n]);
        assert_int_equal(wi.counters.lists, 1 + ch.mismatch_misses[n]);
        assert_int_equal(wi.counters.relists.compacted + wi.counters.relists.error, 0);
        assert_int_equal(wi.counters.events, ch.writes[n]);
        assert_true(ch.mismatch_misses[n] <= upd_del);
        predicted += ch.mismatch_misses[n];
    }
    refl_fleet_stats st;
    refl_fleet_get_stats(f, &st);
    assert_int_equal(st.extra.duplicates, 0);
    assert_int_equal(st.totals.relists.miss, predicted);
    assert_true(predicted >= FLEET); /* a storm: many relists per watcher */
    uint64_t storm_writes = ch.total,
             storm_upd_del = churn_sum(ch.updates, NS) + churn_sum(ch.deletes, NS);
    /* every miss relisted, so the caches hold the truth, stored under the wrong keys */
    refl_verify_round v = live_verify(f);
    assert_int_equal(v.verified, FLEET);
    assert_int_equal(v.divergent, 0);
    assert_true(v.misplaced > 0);
    print_message("  serialized: %llu writes (%llu updates+deletes), %llu relists over %d "
                  "watchers (predicted %llu), %llu LIST pages\n",
                  (unsigned long long)storm_writes, (unsigned long long)storm_upd_del,
                  (unsigned long long)st.totals.relists.miss, FLEET, (unsigned long long)predicted,
                  (unsigned long long)st.totals.list_pages);

    /* A burst without waiting: a relist's LIST at revision R absorbs the namespace's events up
     * to R, so only bounds hold. Upper: one relist per update/delete. Lower: the first
     * update/delete the model says misses does miss (nothing was absorbed before it). */
    uint64_t ev0[FLEET], rl0[FLEET], upd0[NS], del0[NS], mm0[NS];
    for (size_t i = 0; i < FLEET; i++) {
        refl_watcher_info wi = live_info(f, i);
        ev0[i] = wi.counters.events;
        rl0[i] = wi.counters.relists.miss;
    }
    memcpy(upd0, ch.updates, sizeof upd0);
    memcpy(del0, ch.deletes, sizeof del0);
    memcpy(mm0, ch.mismatch_misses, sizeof mm0);
    uint64_t w0[NS];
    memcpy(w0, ch.writes, sizeof w0);
    for (int k = 0; k < 200; k++)
        assert_true(churn_step(&ch) > 0);
    churn_wait(f, &ch, true, 20000);
    uint64_t burst = 0, burst_upd_del = 0;
    for (size_t i = 0; i < FLEET; i++) {
        refl_watcher_info wi = live_info(f, i);
        int n = (int)(i % NS);
        uint64_t rl = wi.counters.relists.miss - rl0[i];
        uint64_t upd_del = ch.updates[n] - upd0[n] + ch.deletes[n] - del0[n];
        assert_true(rl <= upd_del);
        assert_true(rl >= (ch.mismatch_misses[n] > mm0[n] ? 1u : 0u));
        assert_true(wi.counters.events - ev0[i] <= ch.writes[n] - w0[n]);
        assert_int_equal(wi.counters.misses, wi.counters.relists.miss);
        assert_int_equal(wi.counters.relists.compacted + wi.counters.relists.error, 0);
        burst += rl;
        burst_upd_del += upd_del;
    }
    refl_fleet_get_stats(f, &st);
    assert_int_equal(st.extra.duplicates, 0);
    v = live_verify(f);
    assert_int_equal(v.verified, FLEET);
    assert_int_equal(v.divergent, 0);
    print_message("  burst: %llu relists for %llu updates/deletes of the watchers' namespaces\n",
                  (unsigned long long)burst, (unsigned long long)burst_upd_del);
    fleet_free(f);
}

/* ---- 3. name keys: collisions across namespaces are detected -------------------------------- */

static void test_fleet_name_mode_diverges(void **state) {
    (void)state;
    LIVE_REQUIRE();
    churn ch;
    churn_init(&ch, "f3pods", NS, 12, 100, 33);
    assert_int_equal(churn_seed(&ch, 10), 0);
    refl_fleet_opts o = fleet_opts("/registry/f3pods/", 0, 10); /* whole resource */
    o.key_mode = REFL_KEY_NAME;
    o.miss_policy = REFL_MISS_IGNORE;
    refl_fleet *f = fleet_start(&o);
    refl_fleet_opts oc = live_opts("/registry/f3pods/", 10); /* the control */
    oc.conns = 2;
    refl_fleet *g = fleet_start(&oc);
    churn_wait(f, &ch, false, 20000);
    churn_wait(g, &ch, false, 20000);
    for (size_t i = 0; i < FLEET; i++)
        assert_true(live_info(f, i).objects <= 12); /* 100 objects under at most 12 names */
    for (int k = 0; k < 200; k++)
        assert_true(churn_step(&ch) > 0);
    churn_wait(f, &ch, false, 20000);
    churn_wait(g, &ch, false, 20000);

    refl_verify_round v = live_verify(f);
    assert_int_equal(v.verified, FLEET);
    assert_int_equal(v.divergent_watchers, FLEET);
    assert_true(v.divergent > 0);
    assert_true(v.collided > 0);
    for (size_t i = 0; i < FLEET; i++) {
        refl_watcher_info wi = live_info(f, i);
        assert_true(wi.verified);
        assert_true(wi.counters.divergent > 0);
        assert_true(wi.verify.collided > 0);
        /* at most 12 entries (one per name) for the truth's objects of 10 namespaces */
        assert_true(wi.verify.cache_entries <= 12);
        assert_true(wi.verify.missing + 12 >= wi.verify.truth_objects);
        assert_non_null(strstr(wi.verify.listing, "missing"));
    }
    char *js = refl_fleet_summary_json(f, NULL);
    assert_non_null(js);
    assert_non_null(strstr(js, "\"divergent_watchers\": 100"));
    free(js);
    refl_verify_round w = live_verify(g);
    assert_int_equal(w.verified, 10);
    assert_int_equal(w.divergent, 0);
    assert_int_equal(w.collided, 0);
    refl_fleet_stats st;
    refl_fleet_get_stats(g, &st);
    assert_int_equal(relists_of(&st.totals), 0);
    assert_int_equal(st.totals.events, 10 * ch.total);
    print_message("  name mode: %llu divergent entries (missing %llu, extra %llu, stale %llu), "
                  "collided %llu over %zu watchers\n",
                  (unsigned long long)v.divergent, (unsigned long long)v.missing,
                  (unsigned long long)v.extra, (unsigned long long)v.stale,
                  (unsigned long long)v.collided, v.verified);
    fleet_free(f);
    fleet_free(g);
}

/* ---- 4. server restart, then compaction while held ------------------------------------------ */

static void test_fleet_restart_and_compaction(void **state) {
    (void)state;
    LIVE_REQUIRE();
    churn ch;
    churn_init(&ch, "f4pods", NS, 16, 100, 44);
    assert_int_equal(churn_seed(&ch, 10), 0);
    refl_fleet_opts o = fleet_opts("/registry/f4pods/", NS, 20);
    refl_fleet *f = fleet_start(&o);
    churn_wait(f, &ch, true, 20000);
    for (int k = 0; k < 100; k++)
        assert_true(churn_step(&ch) > 0);
    churn_wait(f, &ch, true, 20000);
    uint64_t before[FLEET], seen_writes[NS];
    for (size_t i = 0; i < FLEET; i++)
        before[i] = live_info(f, i).counters.events;
    memcpy(seen_writes, ch.writes, sizeof seen_writes);

    /* writes the watchers may or may not have seen when the server goes down */
    for (int k = 0; k < 30; k++)
        assert_true(churn_step(&ch) > 0);
    assert_true(live_restart());
    for (int k = 0; k < 100; k++)
        assert_true(churn_step(&ch) > 0);
    churn_wait(f, &ch, true, 25000);
    refl_fleet_stats st;
    refl_fleet_get_stats(f, &st);
    assert_int_equal(st.totals.lists, FLEET);
    assert_int_equal(relists_of(&st.totals), 0);
    assert_int_equal(st.extra.duplicates, 0);
    assert_true(st.extra.reconnects >= 1);
    for (size_t i = 0; i < FLEET; i++) {
        refl_watcher_info wi = live_info(f, i);
        int n = (int)(i % NS);
        /* no gap, no duplicate: exactly the writes since the snapshot */
        assert_int_equal(wi.counters.events - before[i], ch.writes[n] - seen_writes[n]);
        assert_int_equal(wi.counters.events, ch.writes[n]);
        assert_true(wi.extra.rewatches >= 1);
        assert_int_equal(wi.counters.lists, 1);
    }
    refl_verify_round v = live_verify(f);
    assert_int_equal(v.verified, FLEET);
    assert_int_equal(v.divergent, 0);
    print_message("  restart: %llu writes after the snapshot, %llu rewatches, %llu reconnects\n",
                  (unsigned long long)(ch.total - churn_sum(seen_writes, NS)),
                  (unsigned long long)st.extra.rewatches, (unsigned long long)st.extra.reconnects);

    /* hold 20 watchers (two per namespace), write past them in every namespace, compact */
    enum { HELD = 20 };
    for (size_t i = 0; i < HELD; i++)
        assert_int_equal(refl_fleet_hold(f, i, true), 0);
    live_run_for(50);
    for (size_t i = 0; i < HELD; i++)
        assert_int_equal(live_info(f, i).state, REFL_ST_HELD);
    for (int round = 0; round < 2; round++)
        for (int n = 0; n < NS; n++)
            assert_true(churn_step_in(&ch, n) > 0);
    assert_int_equal(live_compact(ch.max_rev), 0);
    for (size_t i = 0; i < HELD; i++)
        assert_int_equal(refl_fleet_hold(f, i, false), 0);
    churn_wait(f, &ch, true, 20000);
    /* one more write per namespace: a verification LISTs at each watcher's revision, which must
     * not be below the compaction */
    for (int n = 0; n < NS; n++)
        assert_true(churn_step_in(&ch, n) > 0);
    churn_wait(f, &ch, true, 20000);
    for (size_t i = 0; i < FLEET; i++) {
        refl_watcher_info wi = live_info(f, i);
        if (i < HELD) {
            assert_int_equal(wi.counters.relists.compacted, 1);
            assert_int_equal(wi.counters.lists, 2);
        } else {
            assert_int_equal(wi.counters.lists, 1);
        }
        assert_int_equal(wi.counters.relists.miss + wi.counters.relists.error, 0);
        if (i >= HELD) assert_int_equal(wi.counters.relists.compacted, 0);
    }
    refl_fleet_get_stats(f, &st);
    assert_int_equal(st.totals.relists.compacted, HELD);
    assert_int_equal(st.extra.duplicates, 0);
    v = live_verify(f);
    assert_int_equal(v.verified, FLEET);
    assert_int_equal(v.divergent, 0);
    fleet_free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fleet_namespaced_churn, fleet_teardown),
        cmocka_unit_test_teardown(test_fleet_mismatch_relists, fleet_teardown),
        cmocka_unit_test_teardown(test_fleet_name_mode_diverges, fleet_teardown),
        cmocka_unit_test_teardown(test_fleet_restart_and_compaction, fleet_teardown),
    };
    return cmocka_run_group_tests(tests, live_setup, live_teardown);
}
