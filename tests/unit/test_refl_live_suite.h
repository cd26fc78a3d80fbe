/* test_refl_live_suite.h — the reflector fleet against a live server (see test_refl_live_util.h
 * for the harness and how the server is chosen). Included by test_refl_live_etcd.c (real etcd
 * 3.4) and test_refl_live_kvstore.c (our server), so both run the same checks:
 *  - namespaced caches under create/update/delete churn across namespaces that share names:
 *    no relist after the initial LIST, no duplicate, zero divergence (shared and
 *    namespace-scoped watchers, one shared connection and one per watcher);
 *  - mismatch + relist: one relist per update/delete of a listed object, none per create;
 *  - name keys: verification detects the divergence (collided, missing);
 *  - pagination: a LIST whose pages straddle writes is one snapshot at the first page's revision;
 *  - compaction past a held watcher's revision: relist (compacted), then consistent;
 *  - server restart: re-watch from the last revision, no relist, no gap, no duplicate;
 *  - mismatch + get: point reads instead of relists; a live key-mode change stops the misses;
 *  - endpoint failover, and resync (no requests).
 * Every test uses its own resource name (/registry/<resource>/...), so they share one server. */
#ifndef RELIST_TEST_REFL_LIVE_SUITE_H
#define RELIST_TEST_REFL_LIVE_SUITE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_refl_live_util.h"

static uint64_t total_relists(const refl_counters *c) {
    return c->relists.miss + c->relists.compacted + c->relists.error;
}

/* ---- namespaced churn --------------------------------------------------------------------------
 */

static void test_namespaced_churn(void **state) {
    (void)state;
    LIVE_REQUIRE();
    const char *res = "t1pods";
    enum { NS = 3, NAMES = 10 };
    int gen[NS][2 * NAMES] = {{0}};
    bool exists[NS][2 * NAMES] = {{false}};
    int64_t last[NS] = {0};
    char ns[NS][8], name[16];
    for (int n = 0; n < NS; n++) {
        snprintf(ns[n], sizeof ns[n], "ns-%d", n);
        for (int i = 0; i < NAMES; i++) {
            snprintf(name, sizeof name, "web-%d", i);
            last[n] = live_put_lab(res, ns[n], name, 0, 200);
            assert_true(last[n] > 0);
            exists[n][i] = true;
        }
    }
    /* three watchers of the whole resource over one shared connection, and three
     * namespace-scoped ones with a connection each */
    refl_fleet_opts o = live_opts("/registry/t1pods/", 3);
    o.conns = 1;
    o.page_size = 7;
    refl_fleet *all = live_fleet(&o);
    refl_fleet_opts on = live_opts("/registry/t1pods/", 3);
    on.namespaces = NS;
    refl_fleet *per = live_fleet(&on);
    live_wait_synced(all, 0, 10000);
    live_wait_synced(per, 0, 10000);
    assert_string_equal(live_info(per, 2).prefix, "/registry/t1pods/ns-2/");

    unsigned seed = 7;
    int writes = 0;
    for (int k = 0; k < 150; k++) {
        int n = (int)(rand_r(&seed) % NS), i = (int)(rand_r(&seed) % (2 * NAMES));
        snprintf(name, sizeof name, "web-%d", i);
        int64_t rev;
        if (exists[n][i] && rand_r(&seed) % 3 == 0) {
            rev = live_del(res, ns[n], name);
            exists[n][i] = false;
            gen[n][i]++;
        } else {
            rev = live_put_lab(res, ns[n], name, gen[n][i], 100 + (size_t)k);
            exists[n][i] = true;
        }
        assert_true(rev > 0);
        last[n] = rev;
        writes++;
    }
    int64_t max = 0;
    for (int n = 0; n < NS; n++)
        if (last[n] > max) max = last[n];
    live_wait_synced(all, max, 10000);
    for (int n = 0; n < NS; n++) {
        uint64_t end = uv_now(&L.loop) + 10000;
        while (live_info(per, (size_t)n).revision < last[n] && uv_now(&L.loop) < end)
            live_run_for(10);
        assert_true(live_info(per, (size_t)n).revision >= last[n]);
    }
    refl_fleet *fs[2] = {all, per};
    for (int k = 0; k < 2; k++) {
        refl_verify_round v = live_verify(fs[k]);
        assert_int_equal(v.verified, 3);
        assert_int_equal(v.divergent, 0);
        assert_int_equal(v.divergent_watchers, 0);
        refl_fleet_stats st;
        refl_fleet_get_stats(fs[k], &st);
        assert_int_equal(total_relists(&st.totals), 0);
        assert_int_equal(st.totals.lists, 3);
        assert_int_equal(st.totals.misses, 0);
        assert_int_equal(st.extra.duplicates, 0);
        /* every watcher saw every write of its prefix */
        if (k == 0) assert_int_equal(st.totals.events, 3 * writes);
        if (k == 0) assert_true(st.totals.list_pages >= 3 * ((NS * NAMES + 6) / 7));
        if (k == 0) assert_true(st.pool.shared_hits > 0);
    }
    live_fleet_free(all);
    live_fleet_free(per);
}

/* ---- mismatch + relist: the storm
 * ----------------------------------------------------------------- */

static void test_mismatch_relists(void **state) {
    (void)state;
    LIVE_REQUIRE();
    const char *res = "t2pods";
    const char *nss[] = {"a", "b"};
    char name[16];
    for (int n = 0; n < 2; n++)
        for (int i = 0; i < 5; i++) {
            snprintf(name, sizeof name, "web-%d", i);
            assert_true(live_put_lab(res, nss[n], name, 0, 64) > 0);
        }
    refl_fleet_opts o = live_opts("/registry/t2pods/", 2);
    o.key_mode = REFL_KEY_MISMATCH;
    o.miss_policy = REFL_MISS_RELIST;
    refl_fleet *f = live_fleet(&o);
    live_wait_synced(f, 0, 10000);
    /* one write at a time, each after the watchers settled: 4 updates, 2 deletes */
    int64_t rev;
    for (int k = 0; k < 6; k++) {
        snprintf(name, sizeof name, "web-%d", k % 5);
        if (k < 4)
            rev = live_put_lab(res, nss[k % 2], name, 0, 80);
        else
            rev = live_del(res, nss[k % 2], name);
        assert_true(rev > 0);
        live_wait_synced(f, rev, 10000);
    }
    /* a creation never misses (ADDED inserts) */
    rev = live_put_lab(res, "c", "new-0", 0, 64);
    live_wait_synced(f, rev, 10000);
    live_run_for(100);
    for (size_t i = 0; i < 2; i++) {
        refl_watcher_info wi = live_info(f, i);
        assert_int_equal(wi.counters.misses, 6);
        assert_int_equal(wi.counters.relists.miss, 6);
        assert_int_equal(wi.counters.lists, 7);
        assert_int_equal(wi.counters.events, 7);
    }
    live_fleet_free(f);
}

/* ---- name keys: silent divergence
 * ------------------------------------------------------------------ */

static void test_name_mode_diverges(void **state) {
    (void)state;
    LIVE_REQUIRE();
    const char *res = "t3pods";
    assert_true(live_put_lab(res, "a", "web-0", 0, 32) > 0);
    assert_true(live_put_lab(res, "a", "web-1", 0, 32) > 0);
    assert_true(live_put_lab(res, "b", "web-0", 0, 32) > 0);
    assert_true(live_put_lab(res, "b", "web-1", 0, 32) > 0);
    int64_t rev = live_put_lab(res, "a", "only-a", 0, 32);
    assert_true(rev > 0);

    refl_fleet_opts o = live_opts("/registry/t3pods/", 1);
    o.key_mode = REFL_KEY_NAME;
    o.miss_policy = REFL_MISS_IGNORE;
    refl_fleet *f = live_fleet(&o);
    o.key_mode = REFL_KEY_NAMESPACED;
    refl_fleet *g = live_fleet(&o);
    live_wait_synced(f, rev, 10000);
    live_wait_synced(g, rev, 10000);
    assert_int_equal(live_info(f, 0).objects, 3); /* 5 objects collapsed into 3 entries */
    assert_int_equal(live_info(g, 0).objects, 5);
    /* deleting b/web-0 removes the shared "web-0" entry, hiding a/web-0 too */
    rev = live_del(res, "b", "web-0");
    live_wait_synced(f, rev, 10000);
    live_wait_synced(g, rev, 10000);
    refl_verify_round v = live_verify(f);
    assert_int_equal(v.verified, 1);
    assert_true(v.divergent > 0);
    assert_true(v.missing >= 2);
    assert_true(v.collided >= 2);
    refl_watcher_info wi = live_info(f, 0);
    assert_true(wi.verified);
    assert_true(wi.counters.divergent > 0);
    assert_non_null(strstr(wi.verify.listing, "missing"));
    refl_verify_round w = live_verify(g);
    assert_int_equal(w.divergent, 0);
    assert_int_equal(w.collided, 0);
    char *js = refl_fleet_summary_json(f, NULL);
    assert_non_null(js);
    assert_non_null(strstr(js, "\"divergent_watchers\": 1"));
    free(js);
    live_fleet_free(f);
    live_fleet_free(g);
}

/* ---- pagination at a fixed revision
 * ------------------------------------------------------------------ */

typedef struct page_probe {
    refl_fleet *f;
    int pages;
    bool first_page, list_done;
    int64_t list_rev;
    size_t count_at_done;
    bool had_29;
    int64_t mod_28;
    bool had_30;
} page_probe;

static page_probe PP;

static void pp_trace(void *ud, const refl_trace *t) {
    (void)ud;
    if (t->kind == REFL_TRACE_LIST_PAGE && ++PP.pages == 1) PP.first_page = true;
    if (t->kind == REFL_TRACE_LIST_DONE && !PP.list_done) {
        PP.list_done = true;
        PP.list_rev = t->revision;
        const refl_cache *c = refl_fleet_cache(PP.f, 0);
        PP.count_at_done = refl_cache_count(c);
        PP.had_29 = refl_cache_get(c, "p/obj-29", 8) != NULL;
        PP.had_30 = refl_cache_get(c, "p/obj-30", 8) != NULL;
        const refl_cache_entry *e = refl_cache_get(c, "p/obj-28", 8);
        PP.mod_28 = e ? e->obj->mod_revision : -1;
    }
}

static void test_pagination_snapshot(void **state) {
    (void)state;
    LIVE_REQUIRE();
    const char *res = "t4pods";
    char name[16];
    int64_t mod28 = 0;
    for (int i = 0; i < 30; i++) {
        snprintf(name, sizeof name, "obj-%02d", i);
        int64_t r = live_put_lab(res, "p", name, 0, 50);
        assert_true(r > 0);
        if (i == 28) mod28 = r;
    }
    memset(&PP, 0, sizeof PP);
    refl_fleet_opts o = live_opts("/registry/t4pods/", 1);
    o.page_size = 4;
    o.qps = 4; /* 250 ms between pages: the writes below land between pages */
    o.burst = 1;
    o.trace = pp_trace;
    refl_fleet *f = live_fleet(&o);
    PP.f = f;
    assert_true(live_run_until(&PP.first_page, 5000));
    /* behind the LIST's cursor: delete one not yet listed, update one, add one */
    assert_true(live_del(res, "p", "obj-29") > 0);
    assert_true(live_put_lab(res, "p", "obj-28", 0, 60) > 0);
    int64_t last = live_put_lab(res, "p", "obj-30", 0, 50);
    assert_true(last > 0);
    assert_true(live_run_until(&PP.list_done, 8000));
    assert_true(PP.pages >= 8); /* 30 objects, 4 per page */
    assert_int_equal(PP.count_at_done, 30);
    assert_true(PP.had_29);
    assert_false(PP.had_30);
    assert_int_equal(PP.mod_28, mod28);
    assert_true(PP.list_rev < last - 2);
    /* the watch from the list revision brings the three writes */
    live_wait_synced(f, last, 10000);
    refl_watcher_info wi = live_info(f, 0);
    assert_int_equal(wi.objects, 30);
    assert_int_equal(wi.counters.lists, 1);
    assert_int_equal(wi.counters.events, 3);
    assert_int_equal(total_relists(&wi.counters), 0);
    assert_true(wi.counters.list_pages >= 8);
    refl_verify_round v = live_verify(f);
    assert_int_equal(v.verified, 1);
    assert_int_equal(v.divergent, 0);
    live_fleet_free(f);
}

/* ---- compaction while a watcher is away
 * -------------------------------------------------------------- */

static void test_compaction_relists(void **state) {
    (void)state;
    LIVE_REQUIRE();
    const char *res = "t5pods";
    int64_t rev = 0;
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "c-%d", i);
        rev = live_put_lab(res, "x", name, 0, 40);
        assert_true(rev > 0);
    }
    refl_fleet_opts o = live_opts("/registry/t5pods/", 2);
    refl_fleet *f = live_fleet(&o);
    live_wait_synced(f, rev, 10000);
    assert_int_equal(refl_fleet_hold(f, 0, true), 0);
    live_run_for(50);
    assert_int_equal(live_info(f, 0).state, REFL_ST_HELD);
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "c-%d", i);
        rev = live_put_lab(res, "x", name, 0, 41 + (size_t)i);
    }
    rev = live_del(res, "x", "c-0");
    assert_true(rev > 0);
    assert_int_equal(live_compact(rev), 0);
    assert_int_equal(refl_fleet_hold(f, 0, false), 0);
    live_wait_synced(f, rev, 10000);
    refl_watcher_info w0 = live_info(f, 0), w1 = live_info(f, 1);
    assert_int_equal(w0.counters.relists.compacted, 1);
    assert_int_equal(w0.counters.lists, 2);
    assert_int_equal(total_relists(&w1.counters), 0);
    assert_int_equal(w1.counters.lists, 1);
    assert_int_equal(w0.objects, 3);
    refl_verify_round v = live_verify(f);
    assert_int_equal(v.verified, 2);
    assert_int_equal(v.divergent, 0);
    live_fleet_free(f);
}

/* ---- server restart: re-watch, no relist, no gap, no duplicate
 * ------------------------------------- */

static void test_server_restart(void **state) {
    (void)state;
    LIVE_REQUIRE();
    const char *res = "t6pods";
    char name[16];
    int writes = 0;
    int64_t rev = 0;
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "r-%d", i);
        rev = live_put_lab(res, "x", name, 0, 40);
        assert_true(rev > 0);
    }
    refl_fleet_opts o = live_opts("/registry/t6pods/", 3);
    o.conns = 2;
    o.backoff.kind = REFL_BACKOFF_NONE;
    refl_fleet *f = live_fleet(&o);
    live_wait_synced(f, rev, 10000);
    for (int i = 0; i < 10; i++, writes++) {
        snprintf(name, sizeof name, "r-%d", i % 7);
        rev = live_put_lab(res, "x", name, 0, 50 + (size_t)i);
    }
    live_wait_synced(f, rev, 10000);
    /* writes the watchers may not have seen when the server goes down */
    for (int i = 0; i < 5; i++, writes++) {
        snprintf(name, sizeof name, "late-%d", i);
        rev = live_put_lab(res, "y", name, 0, 30);
        assert_true(rev > 0);
    }
    assert_true(live_restart());
    for (int i = 0; i < 10; i++, writes++) {
        snprintf(name, sizeof name, "after-%d", i);
        rev = live_put_lab(res, "z", name, 0, 30);
        assert_true(rev > 0);
    }
    live_wait_synced(f, rev, 15000);
    refl_fleet_stats st;
    refl_fleet_get_stats(f, &st);
    assert_int_equal(total_relists(&st.totals), 0);
    assert_int_equal(st.totals.lists, 3);
    assert_int_equal(st.extra.duplicates, 0);
    assert_int_equal(st.totals.events, 3 * writes); /* no gap, no duplicate */
    assert_true(st.extra.reconnects >= 1);
    assert_true(st.totals.watches >= 6);
    refl_verify_round v = live_verify(f);
    assert_int_equal(v.verified, 3);
    assert_int_equal(v.divergent, 0);
    live_fleet_free(f);
}

/* ---- mismatch + get, then a live fix
 * -------------------------------------------------------------- */

static void test_get_policy_and_rekey(void **state) {
    (void)state;
    LIVE_REQUIRE();
    const char *res = "t7pods";
    const char *nss[] = {"a", "b"};
    char name[16];
    for (int n = 0; n < 2; n++)
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "g-%d", i);
            assert_true(live_put_lab(res, nss[n], name, 0, 40) > 0);
        }
    refl_fleet_opts o = live_opts("/registry/t7pods/", 2);
    o.key_mode = REFL_KEY_MISMATCH;
    o.miss_policy = REFL_MISS_GET;
    o.qps = 100;
    o.burst = 1;
    refl_fleet *f = live_fleet(&o);
    live_wait_synced(f, 0, 10000);
    int64_t rev = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "g-%d", i);
        rev = live_put_lab(res, "a", name, 0, 50); /* listed under "g-i": misses */
    }
    live_wait_synced(f, rev, 10000);
    refl_fleet_stats st;
    refl_fleet_get_stats(f, &st);
    assert_int_equal(st.totals.misses, 6);
    assert_int_equal(st.totals.gets, 6);
    assert_int_equal(total_relists(&st.totals), 0);
    assert_int_equal(st.totals.lists, 2);
    /* the repaired objects now live under a/g-i next to the stale g-i: hits from here on */
    rev = live_put_lab(res, "a", "g-0", 0, 51);
    live_wait_synced(f, rev, 10000);
    refl_fleet_get_stats(f, &st);
    assert_int_equal(st.totals.misses, 6);

    refl_fleet_set_key_mode(f, REFL_KEY_NAMESPACED);
    live_wait_synced(f, rev, 10000);
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "g-%d", i);
        rev = live_put_lab(res, "b", name, 0, 52);
    }
    live_wait_synced(f, rev, 10000);
    refl_fleet_get_stats(f, &st);
    assert_int_equal(st.extra.rekeys, 2);
    assert_int_equal(st.totals.lists, 4);
    assert_int_equal(st.totals.misses, 6);
    refl_verify_round v = live_verify(f);
    assert_int_equal(v.divergent, 0);
    live_fleet_free(f);
}

/* ---- failover and resync -----------------------------------------------------------------------
 */

static void test_failover_and_resync(void **state) {
    (void)state;
    LIVE_REQUIRE();
    assert_true(live_put_lab("t8pods", "x", "f-0", 0, 40) > 0);
    int64_t rev = live_put_lab("t8pods", "x", "f-1", 0, 40);
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", live_free_port()); /* nothing listens */
    const char *eps[] = {dead, L.ep};
    refl_fleet_opts o = live_opts("/registry/t8pods/", 4);
    o.endpoints = eps;
    o.n_endpoints = 2;
    o.resync_ms = 100;
    refl_fleet *f = live_fleet(&o);
    live_wait_synced(f, rev, 10000);
    live_run_for(450);
    refl_fleet_stats st;
    refl_fleet_get_stats(f, &st);
    assert_true(st.failovers >= 2); /* slots 0 and 2 started on the dead endpoint */
    assert_int_equal(st.totals.lists, 4 + st.extra.list_failures); /* failed LISTs retried */
    assert_int_equal(total_relists(&st.totals), 0);
    assert_int_equal(st.synced, 4);
    assert_true(st.extra.resyncs >= 4);
    assert_true(st.extra.resync_objects >= 2 * 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(live_info(f, i).endpoint, L.ep);
    uint64_t lists = st.totals.lists;
    live_run_for(300); /* resync makes no request */
    refl_fleet_get_stats(f, &st);
    assert_int_equal(st.totals.lists, lists);
    live_fleet_free(f);
}

/* ---- verification while writes continue -------------------------------------------------------
 */

/* A watcher's events hold while its truth is read, so a verification under churn still compares
 * like with like: zero divergence for correct caches. */
static void test_verify_during_churn(void **state) {
    (void)state;
    LIVE_REQUIRE();
    const char *res = "t9pods";
    char name[16];
    int64_t rev = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "v-%d", i);
        rev = live_put_lab(res, i % 2 ? "a" : "b", name, 0, 100);
        assert_true(rev > 0);
    }
    refl_fleet_opts o = live_opts("/registry/t9pods/", 4);
    o.page_size = 9;
    refl_fleet *f = live_fleet(&o);
    live_wait_synced(f, rev, 10000);
    for (int round = 0; round < 3; round++) {
        live_vres v = {0};
        assert_int_equal(refl_fleet_verify(f, 8000, live_on_verify, &v), 0);
        assert_int_equal(refl_fleet_verify(f, 8000, live_on_verify, &v), -1); /* one at a time */
        for (int k = 0; !v.done && k < 200; k++) {
            snprintf(name, sizeof name, "v-%d", (k * 7 + round) % 40);
            if (k % 5 == 4)
                assert_true(live_del(res, k % 2 ? "a" : "b", name) > 0);
            else
                assert_true(live_put_lab(res, k % 2 ? "a" : "b", name, round, 90) > 0);
        }
        assert_true(live_run_until(&v.done, 10000));
        assert_int_equal(v.r.verified, 4);
        assert_int_equal(v.r.divergent, 0);
        assert_int_equal(v.r.unverified, 0);
    }
    refl_fleet_stats st;
    refl_fleet_get_stats(f, &st);
    assert_int_equal(total_relists(&st.totals), 0);
    assert_int_equal(st.extra.duplicates, 0);
    assert_int_equal(st.verify_rounds, 3);
    live_fleet_free(f);
}

/* Runs every check with the given group setup (live_setup, or a stricter one). */
static int live_suite_main(int (*setup)(void **state)) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_namespaced_churn),    cmocka_unit_test(test_mismatch_relists),
        cmocka_unit_test(test_name_mode_diverges),  cmocka_unit_test(test_pagination_snapshot),
        cmocka_unit_test(test_compaction_relists),  cmocka_unit_test(test_get_policy_and_rekey),
        cmocka_unit_test(test_failover_and_resync), cmocka_unit_test(test_verify_during_churn),
        cmocka_unit_test(test_server_restart),
    };
    return cmocka_run_group_tests(tests, setup, live_teardown);
}

#endif
