/* test_watch_history.c — the watch hub's delivery guarantees against the store's own history:
 * watchers of many ranges and start revisions, on fast and slow streams, receive exactly the
 * events kv_feed_read reports (same order, no duplicates, no revision split); slow streams are
 * held back and caught up with bounded memory; 1,000 watchers on one stream; lost commits. */
#include <time.h>

#include "test_watch_util.h"

/* ---- workload ------------------------------------------------------------------------------ */

static void put_op(Etcdserverpb__RequestOp *op, Etcdserverpb__PutRequest *p, const char *k,
                   const char *v) {
    Etcdserverpb__PutRequest pi = ETCDSERVERPB__PUT_REQUEST__INIT;
    pi.key.data = (uint8_t *)k;
    pi.key.len = strlen(k);
    pi.value.data = (uint8_t *)v;
    pi.value.len = strlen(v);
    *p = pi;
    Etcdserverpb__RequestOp o = ETCDSERVERPB__REQUEST_OP__INIT;
    o.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    o.request_put = p;
    *op = o;
}

/* A group commit of n puts: n revisions in one batch. */
static void group_puts(tw_env *e, char keys[][32], char vals[][32], int n) {
    Etcdserverpb__RequestOp ops[8];
    Etcdserverpb__PutRequest puts[8];
    kv_write w[8];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < n; i++) {
        put_op(&ops[i], &puts[i], keys[i], vals[i]);
        w[i].op = &ops[i];
        w[i].arena = e->arena;
    }
    kv_err err;
    assert_int_equal(kv_apply(e->kv, w, (size_t)n, &err), KV_OK);
    for (int i = 0; i < n; i++)
        assert_int_equal(w[i].err.code, KV_OK);
    kv_arena_reset(e->arena);
    tw_pump(e);
}

static void random_key(unsigned *rng, char *k) {
    int r = rand_r(rng) % 100;
    if (r < 55)
        snprintf(k, 32, "a/%02d", rand_r(rng) % 20);
    else if (r < 85)
        snprintf(k, 32, "b/%d", rand_r(rng) % 10);
    else
        snprintf(k, 32, "c");
}

static void workload_step(tw_env *e, unsigned *rng, int step) {
    char k[32], v[32];
    int r = rand_r(rng) % 100;
    random_key(rng, k);
    snprintf(v, sizeof(v), "v%d", step);
    if (r < 60) {
        tw_put(e, k, v);
    } else if (r < 72) {
        tw_del(e, k, NULL); /* may delete nothing: then no revision, no event */
    } else if (r < 76) {
        tw_del(e, "b/", "b0");
    } else if (r < 86) {
        char p[16];
        snprintf(p, sizeof(p), "a/t%d/", rand_r(rng) % 3);
        tw_txn_puts(e, p, 1 + rand_r(rng) % 4, v);
    } else {
        char keys[8][32], vals[8][32];
        int n = 2 + rand_r(rng) % 5;
        for (int i = 0; i < n; i++) {
            random_key(rng, keys[i]);
            snprintf(vals[i], 32, "g%d.%d", step, i);
        }
        group_puts(e, keys, vals, n);
    }
}

/* ---- many watchers, many start revisions, fast and slow streams ----------------------------- */

typedef struct wspec {
    tw_create c;
    int stream;
    int64_t from; /* first revision it must get */
} wspec;

static void settle(tw_env *e, tw_sink *k, watch_stream **s, int ns) {
    for (int round = 0; round < 100000; round++) {
        for (int i = 0; i < ns; i++)
            tw_drain(&k[i], s[i]);
        bool more = watch_hub_sync(e->hub, 4);
        watch_stats st;
        watch_hub_stats(e->hub, &st);
        if (!more && st.slow_watchers == 0) return;
    }
    fail_msg("watchers never caught up");
}

static void test_many_start_revisions(void **state) {
    (void)state;
    watch_hub_opts o = {0};
    o.feed_batch_events = 7; /* many small catch-up batches */
    o.feed_batch_bytes = 512;
    o.max_watchers_per_sync = 5;
    tw_env e;
    tw_env_open(&e, &o);
    enum { NS = 3 };
    tw_sink k[NS];
    watch_stream *s[NS];
    tw_sink_init(&k[0], 0);   /* fast */
    tw_sink_init(&k[1], 600); /* slow, drained often */
    tw_sink_init(&k[2], 300); /* slow, drained rarely */
    for (int i = 0; i < NS; i++)
        s[i] = watch_stream_new(e.hub, &tw_sink_ops, &k[i]);
    unsigned rng = 12345;
    wspec ws[64];
    int nw = 0;
    const tw_create shapes[] = {
        {.key = "a/", .end = "a0"},
        {.key = "c"},
        {.key = "b", .from_key = true},
        {.key = "", .from_key = true},
        {.key = "a/05", .end = "b/3"},
        {.key = "a/", .end = "a0", .prev_kv = true},
        {.key = "", .from_key = true, .prev_kv = true, .nodelete = true},
        {.key = "b/", .end = "b0", .noput = true},
        {.key = "a/t1/", .end = "a/t10"},
    };
    const int nshapes = (int)(sizeof(shapes) / sizeof(shapes[0]));
    for (int step = 0; step < 400; step++) {
        workload_step(&e, &rng, step);
        if (step % 13 == 0 && nw < 64) {
            wspec *w = &ws[nw];
            w->c = shapes[rand_r(&rng) % nshapes];
            w->c.id = nw + 1;
            w->stream = nw % NS;
            int64_t cur = watch_hub_revision(e.hub);
            int pick = rand_r(&rng) % 4;
            w->c.start = pick == 0   ? 0
                         : pick == 1 ? 1
                         : pick == 2 ? 1 + rand_r(&rng) % cur
                                     : cur + 1 + rand_r(&rng) % 5;
            w->from = w->c.start ? w->c.start : cur + 1;
            assert_int_equal(tw_req_create(s[w->stream], &w->c), WATCH_OK);
            nw++;
        }
        if (step % 5 == 0) tw_drain(&k[1], s[1]);
        if (step % 97 == 0) tw_drain(&k[2], s[2]);
    }
    settle(&e, k, s, NS);
    int64_t cur = watch_hub_revision(e.hub);
    watch_stats st;
    watch_hub_stats(e.hub, &st);
    assert_true(st.victims_total > 0);
    assert_int_equal(st.slow_watchers, 0);
    size_t total = 0;
    for (int i = 0; i < nw; i++) {
        tw_evs got = {0}, want = {0};
        tw_collect(&k[ws[i].stream], ws[i].c.id, &got);
        tw_reference(&e, &ws[i].c, ws[i].from, cur, &want);
        tw_assert_same(&got, &want);
        total += got.n;
        free(got.v);
        free(want.v);
    }
    assert_true(total > 1000);
    for (int i = 0; i < NS; i++) {
        assert_int_equal(k[i].sent_while_full, 0);
        watch_stream_free(s[i]);
        tw_sink_free(&k[i]);
    }
    tw_env_close(&e);
}

/* ---- a slow sink: held back, caught up, nothing lost, bounded memory ------------------------ */

static void test_slow_sink_bounded(void **state) {
    (void)state;
    watch_hub_opts o = {0};
    o.feed_batch_bytes = 16 * 1024;
    o.feed_batch_events = 100;
    tw_env e;
    tw_env_open(&e, &o);
    tw_sink k;
    tw_sink_init(&k, 8 * 1024);
    watch_stream *s = watch_stream_new(e.hub, &tw_sink_ops, &k);
    enum { NW = 50 };
    for (int i = 0; i < NW; i++)
        assert_int_equal(tw_req_create(s, &(tw_create){.key = "p/", .end = "p0", .id = i + 1}),
                         WATCH_OK);
    char val[501];
    memset(val, 'x', 500);
    val[500] = 0;
    size_t largest = 0;
    int64_t first = watch_hub_revision(e.hub) + 1;
    for (int i = 0; i < 2000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "p/%d", i % 37);
        tw_put(&e, key, val);
        if (i % 400 == 399) tw_drain(&k, s); /* the transport drains now and then */
    }
    for (size_t i = 0; i < k.n; i++)
        if (k.m[i].len > largest) largest = k.m[i].len;
    /* Over the high-water mark by at most one response; nothing sent while held. */
    assert_true(k.max_queued <= k.hw + largest);
    assert_int_equal(k.sent_while_full, 0);
    watch_stats st;
    watch_hub_stats(e.hub, &st);
    assert_true(st.slow_watchers > 0);
    assert_true(st.victims_total >= NW);
    /* 2000 x 50 x 500 B = 50 MB of events went by; the hub held a few hundred KB at most. */
    assert_true(st.buffered_peak < 512 * 1024);
    int drains = 0;
    while (true) {
        watch_hub_stats(e.hub, &st);
        if (!st.slow_watchers) break;
        tw_drain(&k, s);
        assert_true(k.max_queued <= k.hw + largest + 64 * 1024);
        assert_true(++drains < 100000);
    }
    assert_true(drains > 10);
    watch_hub_stats(e.hub, &st);
    assert_true(st.buffered_peak < 512 * 1024);
    assert_int_equal(st.events_total, 2000u * NW);
    int64_t cur = watch_hub_revision(e.hub);
    for (int i = 0; i < NW; i++) {
        tw_evs got = {0}, want = {0};
        tw_create c = {.key = "p/", .end = "p0"};
        tw_collect(&k, i + 1, &got);
        tw_reference(&e, &c, first, cur, &want);
        assert_int_equal(want.n, 2000);
        tw_assert_same(&got, &want);
        free(got.v);
        free(want.v);
    }
    /* Synced again: with room in the transport, new events flow directly. */
    k.hw = 0;
    tw_drain(&k, s);
    size_t n = k.n;
    tw_put(&e, "p/new", "1");
    assert_int_equal(k.n, n + NW);
    watch_stream_free(s);
    tw_sink_free(&k);
    tw_env_close(&e);
}

/* ---- 1,000 watchers of one prefix on one stream ------------------------------------------- */

static void test_thousand_watchers(void **state) {
    (void)state;
    tw_env e;
    tw_env_open(&e, NULL);
    tw_sink k;
    tw_sink_init(&k, 0);
    watch_stream *s = watch_stream_new(e.hub, &tw_sink_ops, &k);
    enum { NW = 1000, NP = 200 };
    for (int i = 0; i < NW; i++)
        assert_int_equal(tw_req_create(s, &(tw_create){.key = "pods/", .end = "pods0"}), WATCH_OK);
    assert_int_equal(k.n, NW);
    int64_t first = watch_hub_revision(e.hub) + 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < NP; i++) {
        char key[32];
        snprintf(key, sizeof(key), "pods/p%d", i % 50);
        tw_put(&e, key, "spec");
        tw_put(&e, "nodes/n1", "x"); /* unwatched */
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    watch_stats st;
    watch_hub_stats(e.hub, &st);
    assert_int_equal(st.events_total, (uint64_t)NW * NP);
    assert_int_equal(k.n, NW + (size_t)NW * NP);
    printf("[ info ] 1000 watchers: %llu events delivered in %.3f s (incl. %d kv_put)\n",
           (unsigned long long)st.events_total, secs, 2 * NP);
    int64_t cur = watch_hub_revision(e.hub);
    tw_create c = {.key = "pods/", .end = "pods0"};
    tw_evs want = {0};
    tw_reference(&e, &c, first, cur, &want);
    for (int id = 0; id < NW; id += 333) {
        tw_evs got = {0};
        tw_collect(&k, id, &got);
        tw_assert_same(&got, &want);
        free(got.v);
    }
    free(want.v);
    /* Cancel them all: the stream and hub are empty again. */
    for (int id = 0; id < NW; id++)
        assert_int_equal(tw_req_cancel(s, id), WATCH_OK);
    watch_hub_stats(e.hub, &st);
    assert_int_equal(st.watchers, 0);
    watch_stream_free(s);
    tw_sink_free(&k);
    tw_env_close(&e);
}

/* ---- lost commits and group commits --------------------------------------------------------- */

static void test_lost_commit(void **state) {
    (void)state;
    tw_env e;
    tw_env_open(&e, NULL);
    tw_sink k;
    tw_sink_init(&k, 0);
    watch_stream *s = watch_stream_new(e.hub, &tw_sink_ops, &k);
    tw_create c = {.key = "k", .end = "l", .prev_kv = true};
    assert_int_equal(tw_req_create(s, &c), WATCH_OK);
    int64_t first = watch_hub_revision(e.hub) + 1;
    tw_put(&e, "k1", "a");
    e.drop_next = true;
    tw_put(&e, "k2", "b"); /* never reaches the hub */
    tw_put(&e, "k1", "c"); /* the gap is seen here: caught up from history */
    e.drop_next = true;
    tw_put(&e, "k3", "d");
    watch_hub_on_lost_commit(e.hub); /* the server's path when a batch cannot be made */
    tw_put(&e, "k3", "e");
    watch_stats st;
    watch_hub_stats(e.hub, &st);
    assert_int_equal(st.lost_commits, 2);
    tw_evs got = {0}, want = {0};
    tw_collect(&k, 0, &got);
    tw_reference(&e, &c, first, watch_hub_revision(e.hub), &want);
    assert_int_equal(want.n, 5);
    tw_assert_same(&got, &want);
    free(got.v);
    free(want.v);
    watch_stream_free(s);
    tw_sink_free(&k);
    tw_env_close(&e);
}

static void test_group_commit_batch(void **state) {
    (void)state;
    tw_env e;
    tw_env_open(&e, NULL);
    tw_sink k;
    tw_sink_init(&k, 0);
    watch_stream *s = watch_stream_new(e.hub, &tw_sink_ops, &k);
    tw_create c = {.key = "g/", .end = "g0"};
    assert_int_equal(tw_req_create(s, &c), WATCH_OK);
    assert_int_equal(tw_req_create(s, &(tw_create){.key = "g/2"}), WATCH_OK);
    int64_t first = watch_hub_revision(e.hub) + 1;
    char keys[8][32] = {"g/1", "x", "g/2", "g/3", "y"}, vals[8][32] = {"1", "2", "3", "4", "5"};
    group_puts(&e, keys, vals, 5);
    /* One batch of 5 revisions: the prefix watcher gets its 3 in one response (a non-contiguous
     * selection), the single-key watcher its one. */
    assert_int_equal(k.n, 4);
    Etcdserverpb__WatchResponse *r = tw_decode(&k, 2);
    Etcdserverpb__WatchResponse *r2 = tw_decode(&k, 3);
    Etcdserverpb__WatchResponse *pre = r->watch_id == 0 ? r : r2, *one = r->watch_id == 0 ? r2 : r;
    assert_int_equal(pre->n_events, 3);
    assert_int_equal(one->n_events, 1);
    assert_int_equal(one->events[0]->kv->mod_revision, first + 2);
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    etcdserverpb__watch_response__free_unpacked(r2, NULL);
    tw_evs got = {0}, want = {0};
    tw_collect(&k, 0, &got);
    tw_reference(&e, &c, first, watch_hub_revision(e.hub), &want);
    tw_assert_same(&got, &want);
    free(got.v);
    free(want.v);
    watch_stream_free(s);
    tw_sink_free(&k);
    tw_env_close(&e);
}

/* A held-back watcher whose next revision is compacted meanwhile gets etcd's compacted
 * response when its stream drains; others on the same stream continue. */
static void test_victim_compacted(void **state) {
    (void)state;
    tw_env e;
    tw_env_open(&e, NULL);
    tw_sink k;
    tw_sink_init(&k, 1);
    watch_stream *s = watch_stream_new(e.hub, &tw_sink_ops, &k);
    assert_int_equal(tw_req_create(s, &(tw_create){.key = "v", .id = 1}), WATCH_OK);
    assert_int_equal(tw_req_create(s, &(tw_create){.key = "w", .id = 2}), WATCH_OK);
    tw_drain(&k, s);
    tw_put(&e, "v", "1");              /* accepted; the stream is now over its mark */
    int64_t r2 = tw_put(&e, "v", "2"); /* watcher 1 becomes a victim at r2 */
    for (int i = 0; i < 5; i++)
        tw_put(&e, "x", "y");
    kv_err err;
    assert_int_equal(kv_compact(e.kv, r2 + 3, &err), KV_OK);
    size_t n = k.n;
    k.hw = 0;
    tw_drain(&k, s);
    assert_int_equal(k.n, n + 1);
    Etcdserverpb__WatchResponse *r = tw_decode(&k, n);
    assert_int_equal(r->watch_id, 1);
    assert_true(r->canceled);
    assert_int_equal(r->compact_revision, r2 + 3);
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    tw_put(&e, "w", "1");
    tw_put(&e, "v", "3"); /* the compacted watcher gets nothing more */
    assert_int_equal(k.n, n + 2);
    watch_stats st;
    watch_hub_stats(e.hub, &st);
    assert_int_equal(st.slow_watchers, 0);
    assert_int_equal(st.compacted_total, 1);
    watch_stream_free(s);
    tw_sink_free(&k);
    tw_env_close(&e);
}

/* One revision with thousands of events: one response per watcher (fragment off), all there. */
static void test_huge_revision(void **state) {
    (void)state;
    tw_env e;
    tw_env_open(&e, NULL);
    tw_sink k;
    tw_sink_init(&k, 0);
    watch_stream *s = watch_stream_new(e.hub, &tw_sink_ops, &k);
    tw_create all = {.key = "", .from_key = true}, half = {.key = "h/0", .end = "h/1"};
    assert_int_equal(tw_req_create(s, &all), WATCH_OK);
    assert_int_equal(tw_req_create(s, &half), WATCH_OK);
    int64_t first = watch_hub_revision(e.hub) + 1;
    for (int i = 0; i < 50; i++) { /* 6,000 keys, 120 per txn (etcd's max-txn-ops is 128) */
        char p[16];
        snprintf(p, sizeof(p), "h/%d%02d/", i / 25, i % 25);
        tw_txn_puts(&e, p, 120, "x");
    }
    tw_del(&e, "h/", "h0"); /* one revision, 6,000 events */
    assert_int_equal(k.n, 2 + 50 + 25 + 2);
    Etcdserverpb__WatchResponse *r = tw_decode(&k, k.n - 1);
    assert_int_equal(r->n_events, r->watch_id == 0 ? 6000 : 3000);
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    int64_t cur = watch_hub_revision(e.hub);
    tw_create *cs[] = {&all, &half};
    size_t want_n[] = {12000, 6000};
    for (int id = 0; id < 2; id++) {
        tw_evs got = {0}, want = {0};
        tw_collect(&k, id, &got);
        tw_reference(&e, cs[id], first, cur, &want);
        assert_int_equal(want.n, want_n[id]);
        tw_assert_same(&got, &want);
        free(got.v);
        free(want.v);
    }
    /* A late watcher from the start catches up through the same revisions from history. */
    tw_create late = {.key = "h/", .end = "h0", .start = first, .id = 9};
    assert_int_equal(tw_req_create(s, &late), WATCH_OK);
    while (watch_hub_sync(e.hub, 4)) {
    }
    tw_evs got = {0}, want = {0};
    tw_collect(&k, 9, &got);
    tw_reference(&e, &late, first, cur, &want);
    assert_int_equal(want.n, 12000);
    tw_assert_same(&got, &want);
    free(got.v);
    free(want.v);
    watch_stream_free(s);
    tw_sink_free(&k);
    tw_env_close(&e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_start_revisions), cmocka_unit_test(test_slow_sink_bounded),
        cmocka_unit_test(test_thousand_watchers),    cmocka_unit_test(test_lost_commit),
        cmocka_unit_test(test_group_commit_batch),   cmocka_unit_test(test_victim_compacted),
        cmocka_unit_test(test_huge_revision),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
