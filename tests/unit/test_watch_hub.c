/* test_watch_hub.c — the watch hub's request handling against etcd 3.4's behaviour: create
 * (ids, duplicate id, empty range, start revisions), cancel, progress (request and periodic),
 * filters, prev_kv, fragment, compaction, malformed requests, encoding. */
#include "test_watch_util.h"

typedef struct fx {
    tw_env e;
    tw_sink k;
    watch_stream *s;
} fx;

static fx *fx_open(const watch_hub_opts *o) {
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    tw_env_open(&f->e, o);
    tw_sink_init(&f->k, 0);
    f->s = watch_stream_new(f->e.hub, &tw_sink_ops, &f->k);
    assert_non_null(f->s);
    return f;
}

static void fx_close(fx *f) {
    watch_stream_free(f->s);
    tw_env_close(&f->e);
    tw_sink_free(&f->k);
    free(f);
}

static void test_create_put_cancel(void **state) {
    (void)state;
    fx *f = fx_open(NULL);
    int64_t r1 = tw_put(&f->e, "a", "1");
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "a"}), WATCH_OK);
    assert_int_equal(f->k.n, 1);
    Etcdserverpb__WatchResponse *r = tw_decode(&f->k, 0);
    assert_true(r->created);
    assert_false(r->canceled);
    assert_int_equal(r->watch_id, 0); /* etcd's first auto id */
    assert_non_null(r->header);
    assert_int_equal(r->header->revision, r1);
    assert_int_equal(r->header->raft_term, 1);
    etcdserverpb__watch_response__free_unpacked(r, NULL);

    int64_t r2 = tw_put(&f->e, "a", "2");
    tw_put(&f->e, "b", "x"); /* not watched */
    assert_int_equal(f->k.n, 2);
    r = tw_decode(&f->k, 1);
    assert_int_equal(r->watch_id, 0);
    assert_int_equal(r->n_events, 1);
    assert_int_equal(r->header->revision, r2);
    assert_int_equal(r->events[0]->type, MVCCPB__EVENT__EVENT_TYPE__PUT);
    assert_int_equal(r->events[0]->kv->mod_revision, r2);
    assert_int_equal(r->events[0]->kv->version, 2);
    assert_memory_equal(r->events[0]->kv->value.data, "2", 1);
    assert_null(r->events[0]->prev_kv);
    etcdserverpb__watch_response__free_unpacked(r, NULL);

    assert_int_equal(tw_req_cancel(f->s, 0), WATCH_OK);
    assert_int_equal(f->k.n, 3);
    r = tw_decode(&f->k, 2);
    assert_true(r->canceled);
    assert_false(r->created);
    assert_int_equal(r->watch_id, 0);
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    tw_put(&f->e, "a", "3");
    assert_int_equal(f->k.n, 3);
    /* Cancel of an unknown id: etcd answers nothing. */
    assert_int_equal(tw_req_cancel(f->s, 42), WATCH_OK);
    assert_int_equal(f->k.n, 3);
    watch_stats st;
    watch_hub_stats(f->e.hub, &st);
    assert_int_equal(st.watchers, 0);
    assert_int_equal(st.streams, 1);
    assert_int_equal(st.events_total, 1);
    fx_close(f);
}

static void test_ids(void **state) {
    (void)state;
    fx *f = fx_open(NULL);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "a", .id = 7}), WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "b"}), WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "c"}), WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "d", .id = 7}), WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "b", .end = "a"}), WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "b", .end = "b"}), WATCH_OK);
    assert_int_equal(f->k.n, 6);
    int64_t want_id[] = {7, 0, 1, -1, -1, -1};
    for (size_t i = 0; i < 6; i++) {
        Etcdserverpb__WatchResponse *r = tw_decode(&f->k, i);
        assert_true(r->created);
        assert_int_equal(r->watch_id, want_id[i]);
        assert_int_equal(r->canceled, i >= 3);
        if (i == 3) assert_string_equal(r->cancel_reason, WATCH_REASON_DUPLICATE_ID);
        if (i >= 4) assert_string_equal(r->cancel_reason, WATCH_REASON_EMPTY_RANGE);
        etcdserverpb__watch_response__free_unpacked(r, NULL);
    }
    tw_put(&f->e, "a", "1");
    tw_put(&f->e, "c", "1");
    assert_int_equal(f->k.n, 8);
    Etcdserverpb__WatchResponse *r = tw_decode(&f->k, 6);
    assert_int_equal(r->watch_id, 7);
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    r = tw_decode(&f->k, 7);
    assert_int_equal(r->watch_id, 1);
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    watch_stream_stats ss;
    watch_stream_stats_get(f->s, &ss);
    assert_int_equal(ss.watchers, 3);
    fx_close(f);
}

static void test_ranges(void **state) {
    (void)state;
    fx *f = fx_open(NULL);
    tw_create pre = {.key = "p/", .end = "p0"}, from = {.key = "m", .from_key = true},
              all = {.key = "", .from_key = true}, rng = {.key = "a", .end = "c"};
    assert_int_equal(tw_req_create(f->s, &pre), WATCH_OK);  /* id 0 */
    assert_int_equal(tw_req_create(f->s, &from), WATCH_OK); /* id 1 */
    assert_int_equal(tw_req_create(f->s, &all), WATCH_OK);  /* id 2 */
    assert_int_equal(tw_req_create(f->s, &rng), WATCH_OK);  /* id 3 */
    tw_put(&f->e, "p/x", "1");
    tw_put(&f->e, "a", "1");
    tw_put(&f->e, "bzz", "1");
    tw_put(&f->e, "c", "1");
    tw_put(&f->e, "zz", "1");
    tw_put(&f->e, "p0", "1");
    int64_t cur = watch_hub_revision(f->e.hub);
    tw_create *cs[] = {&pre, &from, &all, &rng};
    size_t want_n[] = {1, 3, 6, 2};
    for (int id = 0; id < 4; id++) {
        tw_evs got = {0}, want = {0};
        tw_collect(&f->k, id, &got);
        tw_reference(&f->e, cs[id], 2, cur, &want);
        assert_int_equal(want.n, want_n[id]);
        tw_assert_same(&got, &want);
        free(got.v);
        free(want.v);
    }
    fx_close(f);
}

static void test_start_revisions(void **state) {
    (void)state;
    fx *f = fx_open(NULL);
    for (int i = 0; i < 10; i++)
        tw_put(&f->e, "k", "v");
    int64_t cur = watch_hub_revision(f->e.hub); /* 11 */
    /* From history, from now (0), and from the future. */
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "k", .start = 4}), WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "k"}), WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "k", .start = cur + 3}), WATCH_OK);
    /* created(0) then its catch-up, created(1), created(2) */
    Etcdserverpb__WatchResponse *r = tw_decode(&f->k, 1);
    assert_int_equal(r->watch_id, 0);
    assert_int_equal(r->n_events, 8); /* revisions 4..11 */
    assert_int_equal(r->events[0]->kv->mod_revision, 4);
    assert_int_equal(r->header->revision, cur);
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    for (int i = 0; i < 5; i++)
        tw_put(&f->e, "k", "w");
    tw_evs g0 = {0}, g1 = {0}, g2 = {0};
    tw_collect(&f->k, 0, &g0);
    tw_collect(&f->k, 1, &g1);
    tw_collect(&f->k, 2, &g2);
    assert_int_equal(g0.n, 13);
    assert_int_equal(g1.n, 5);
    assert_int_equal(g2.n, 3);
    assert_int_equal(g2.v[0].main, cur + 3);
    free(g0.v);
    free(g1.v);
    free(g2.v);
    fx_close(f);
}

static void test_filters_prev_kv(void **state) {
    (void)state;
    fx *f = fx_open(NULL);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "k", .noput = true}), WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "k", .nodelete = true}), WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "k", .prev_kv = true}), WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "k", .noput = true, .nodelete = true}),
                     WATCH_OK);
    size_t base = f->k.n;
    tw_put(&f->e, "k", "1");
    tw_put(&f->e, "k", "2");
    tw_del(&f->e, "k", NULL);
    tw_put(&f->e, "k", "3");
    tw_evs g[4] = {{0}};
    for (int i = 0; i < 4; i++)
        tw_collect(&f->k, i, &g[i]);
    assert_int_equal(g[0].n, 1);
    assert_int_equal(g[0].v[0].type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
    assert_int_equal(g[1].n, 3);
    assert_int_equal(g[2].n, 4);
    assert_int_equal(g[3].n, 0);
    /* prev_kv: none for a create, the previous value otherwise (delete included). */
    assert_false(g[2].v[0].has_prev);
    assert_true(g[2].v[1].has_prev);
    assert_string_equal(g[2].v[1].prev, "1");
    assert_true(g[2].v[2].has_prev);
    assert_string_equal(g[2].v[2].prev, "2");
    assert_false(g[2].v[3].has_prev);
    for (int i = 0; i < 4; i++)
        free(g[i].v);
    /* Watchers without prev_kv never see it; the fully filtered one got no response at all. */
    for (size_t i = base; i < f->k.n; i++) {
        Etcdserverpb__WatchResponse *r = tw_decode(&f->k, i);
        assert_int_not_equal(r->watch_id, 3);
        if (r->watch_id != 2)
            for (size_t j = 0; j < r->n_events; j++)
                assert_null(r->events[j]->prev_kv);
        etcdserverpb__watch_response__free_unpacked(r, NULL);
    }
    fx_close(f);
}

static void test_fragment(void **state) {
    (void)state;
    watch_hub_opts o = {0};
    o.max_response_bytes = 1024;
    fx *f = fx_open(&o);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "f/", .end = "f0", .fragment = true}),
                     WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "f/", .end = "f0"}), WATCH_OK);
    char val[101];
    memset(val, 'v', 100);
    val[100] = 0;
    int64_t rev = tw_txn_puts(&f->e, "f/", 40, val); /* one revision, ~5 KB of events */
    size_t frags = 0, whole = 0;
    for (size_t i = 2; i < f->k.n; i++) {
        Etcdserverpb__WatchResponse *r = tw_decode(&f->k, i);
        assert_int_equal(r->header->revision, rev);
        if (r->watch_id == 0) {
            assert_true(f->k.m[i].len < 1024 + 200);
            frags++;
        } else {
            whole++;
            assert_int_equal(r->n_events, 40);
            assert_false(r->fragment);
        }
        etcdserverpb__watch_response__free_unpacked(r, NULL);
    }
    assert_true(frags >= 4);
    assert_int_equal(whole, 1);
    tw_evs g = {0};
    tw_collect(&f->k, 0, &g); /* checks fragment flags: all but the last */
    assert_int_equal(g.n, 40);
    free(g.v);
    /* A single large event is never fragmented. */
    char big[3000];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    size_t before = f->k.n;
    tw_put(&f->e, "f/big", big);
    assert_int_equal(f->k.n, before + 2);
    fx_close(f);
}

static void test_compacted(void **state) {
    (void)state;
    fx *f = fx_open(NULL);
    for (int i = 0; i < 10; i++)
        tw_put(&f->e, "k", "v");
    kv_err err;
    assert_int_equal(kv_compact(f->e.kv, 6, &err), KV_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "k", .start = 3}), WATCH_OK);
    assert_int_equal(f->k.n, 2);
    Etcdserverpb__WatchResponse *r = tw_decode(&f->k, 0);
    assert_true(r->created);
    assert_false(r->canceled);
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    r = tw_decode(&f->k, 1);
    assert_int_equal(r->watch_id, 0);
    assert_true(r->canceled);
    assert_int_equal(r->compact_revision, 6);
    assert_int_equal(r->n_events, 0);
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    /* The compacted watcher keeps its id until canceled, and gets nothing more. */
    tw_put(&f->e, "k", "v");
    assert_int_equal(f->k.n, 2);
    /* Starting exactly at the compaction revision is allowed. */
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "k", .start = 6}), WATCH_OK);
    tw_evs g = {0};
    tw_collect(&f->k, 1, &g);
    assert_int_equal(g.n, 7); /* 6..12 */
    assert_int_equal(g.v[0].main, 6);
    free(g.v);
    assert_int_equal(tw_req_cancel(f->s, 0), WATCH_OK);
    r = tw_decode(&f->k, f->k.n - 1);
    assert_true(r->canceled);
    assert_int_equal(r->watch_id, 0);
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    watch_stats st;
    watch_hub_stats(f->e.hub, &st);
    assert_int_equal(st.compacted_total, 1);
    assert_int_equal(st.watchers, 1);
    assert_int_equal(st.slow_watchers, 0);
    fx_close(f);
}

static void test_progress_notify_tick(void **state) {
    (void)state;
    watch_hub_opts o = {0};
    o.progress_interval_ms = 100;
    fx *f = fx_open(&o);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "k", .progress = true}), WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "j"}), WATCH_OK);
    size_t n0 = f->k.n;
    watch_hub_tick(f->e.hub, 1000); /* starts the period */
    watch_hub_tick(f->e.hub, 1050);
    assert_int_equal(f->k.n, n0);
    watch_hub_tick(f->e.hub, 1100);
    assert_int_equal(f->k.n, n0 + 1);
    Etcdserverpb__WatchResponse *r = tw_decode(&f->k, n0);
    assert_int_equal(r->watch_id, 0);
    assert_int_equal(r->n_events, 0);
    assert_false(r->created || r->canceled);
    assert_int_equal(r->header->revision, watch_hub_revision(f->e.hub));
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    tw_put(&f->e, "k", "1"); /* events since the last tick: the next notify is elided */
    size_t n1 = f->k.n;
    watch_hub_tick(f->e.hub, 1200);
    assert_int_equal(f->k.n, n1);
    watch_hub_tick(f->e.hub, 1300);
    assert_int_equal(f->k.n, n1 + 1);
    r = tw_decode(&f->k, n1);
    assert_int_equal(r->n_events, 0);
    assert_int_equal(r->header->revision, watch_hub_revision(f->e.hub));
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    fx_close(f);
}

static void test_progress_request(void **state) {
    (void)state;
    fx *f = fx_open(NULL);
    /* No watchers: answered at once. */
    assert_int_equal(tw_req_progress(f->s), WATCH_OK);
    assert_int_equal(f->k.n, 1);
    Etcdserverpb__WatchResponse *r = tw_decode(&f->k, 0);
    assert_int_equal(r->watch_id, -1);
    assert_int_equal(r->header->revision, watch_hub_revision(f->e.hub));
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "k"}), WATCH_OK);
    tw_put(&f->e, "k", "1");
    /* Hold the stream back; the next event makes the watcher a victim. */
    f->k.hw = 1;
    tw_put(&f->e, "k", "big enough to pass the high-water mark");
    tw_put(&f->e, "k", "3");
    watch_stats st;
    watch_hub_stats(f->e.hub, &st);
    assert_int_equal(st.slow_watchers, 1);
    assert_int_equal(st.victims_total, 1);
    size_t n = f->k.n;
    assert_int_equal(tw_req_progress(f->s), WATCH_OK); /* deferred: a watcher is unsynced */
    assert_int_equal(f->k.n, n);
    f->k.hw = 0;
    tw_drain(&f->k, f->s);
    assert_int_equal(f->k.n, n + 2); /* the caught-up event, then the progress response */
    r = tw_decode(&f->k, n);
    assert_int_equal(r->n_events, 1);
    assert_memory_equal(r->events[0]->kv->value.data, "3", 1);
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    r = tw_decode(&f->k, n + 1);
    assert_int_equal(r->watch_id, -1);
    assert_int_equal(r->n_events, 0);
    assert_int_equal(r->header->revision, watch_hub_revision(f->e.hub));
    etcdserverpb__watch_response__free_unpacked(r, NULL);
    fx_close(f);
}

static void test_malformed(void **state) {
    (void)state;
    watch_hub_opts o = {0};
    o.max_request_bytes = 4096;
    fx *f = fx_open(&o);
    const uint8_t junk[] = {0x0a, 0x50, 0x01, 0x02};           /* length past the end */
    const uint8_t badwire[] = {0x0f, 0x01};                    /* wire type 7 */
    const uint8_t badcreate[] = {0x0a, 0x03, 0x0a, 0x05, 'a'}; /* nested truncation */
    assert_int_equal(watch_stream_request(f->s, junk, sizeof(junk)), WATCH_ERR_MALFORMED);
    assert_int_equal(watch_stream_request(f->s, badwire, sizeof(badwire)), WATCH_ERR_MALFORMED);
    assert_int_equal(watch_stream_request(f->s, badcreate, sizeof(badcreate)), WATCH_ERR_MALFORMED);
    uint8_t *big = calloc(1, 5000);
    assert_int_equal(watch_stream_request(f->s, big, 5000), WATCH_ERR_TOO_LARGE);
    free(big);
    /* An empty request is a WatchRequest with nothing set: ignored, as etcd does. */
    assert_int_equal(watch_stream_request(f->s, NULL, 0), WATCH_OK);
    assert_int_equal(f->k.n, 0);
    /* Random bytes never crash. */
    srand(7);
    uint8_t buf[64];
    for (int i = 0; i < 2000; i++) {
        size_t n = (size_t)(rand() % 64);
        for (size_t j = 0; j < n; j++)
            buf[j] = (uint8_t)rand();
        int rc = watch_stream_request(f->s, buf, n);
        assert_true(rc == WATCH_OK || rc == WATCH_ERR_MALFORMED);
    }
    assert_string_equal(watch_code_message(WATCH_ERR_TOO_LARGE),
                        "etcdserver: request is too large");
    fx_close(f);
}

/* Our hand-written responses must be exactly what a protobuf encoder writes. */
static void test_encoding_canonical(void **state) {
    (void)state;
    fx *f = fx_open(NULL);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "k", .prev_kv = true, .id = 300}),
                     WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "k", .id = -5}), WATCH_OK);
    tw_put(&f->e, "k", "one");
    tw_put(&f->e, "k", "two");
    tw_del(&f->e, "k", NULL);
    assert_int_equal(tw_req_cancel(f->s, 300), WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "k", .id = -5}), WATCH_OK);
    assert_true(f->k.n >= 9);
    for (size_t i = 0; i < f->k.n; i++) {
        Etcdserverpb__WatchResponse *r = tw_decode(&f->k, i);
        size_t n = etcdserverpb__watch_response__get_packed_size(r);
        uint8_t *p = malloc(n);
        etcdserverpb__watch_response__pack(r, p);
        assert_int_equal(n, f->k.m[i].len);
        assert_memory_equal(p, f->k.m[i].p, n);
        free(p);
        etcdserverpb__watch_response__free_unpacked(r, NULL);
    }
    fx_close(f);
}

static void test_stream_free_and_stats(void **state) {
    (void)state;
    fx *f = fx_open(NULL);
    tw_sink k2;
    tw_sink_init(&k2, 0);
    watch_stream *s2 = watch_stream_new(f->e.hub, &tw_sink_ops, &k2);
    for (int i = 0; i < 10; i++)
        assert_int_equal(tw_req_create(s2, &(tw_create){.key = "p", .end = "q"}), WATCH_OK);
    assert_int_equal(tw_req_create(f->s, &(tw_create){.key = "p", .end = "q"}), WATCH_OK);
    watch_stats st;
    watch_hub_stats(f->e.hub, &st);
    assert_int_equal(st.watchers, 11);
    assert_int_equal(st.streams, 2);
    tw_put(&f->e, "pp", "1");
    watch_hub_stats(f->e.hub, &st);
    assert_int_equal(st.events_total, 11);
    watch_stream_free(s2);
    watch_hub_stats(f->e.hub, &st);
    assert_int_equal(st.watchers, 1);
    assert_int_equal(st.streams, 1);
    tw_put(&f->e, "pp", "2");
    watch_hub_stats(f->e.hub, &st);
    assert_int_equal(st.events_total, 12);
    tw_sink_free(&k2);
    fx_close(f);
}

/* sink.sendv gets head + shared body; together they are one WatchResponse. */
static int rec_sendv(void *ud, const uint8_t *head, size_t hl, const uint8_t *body, size_t bl) {
    tw_sink *k = ud;
    uint8_t *m = malloc(hl + bl + 1);
    assert_non_null(m);
    memcpy(m, head, hl);
    if (bl) memcpy(m + hl, body, bl);
    int rc = tw_send(ud, m, hl + bl);
    free(m);
    (void)k;
    return rc;
}

static int dead_send(void *ud, const uint8_t *msg, size_t len) {
    (void)msg;
    (void)len;
    (*(int *)ud)++;
    return -1;
}

static void test_sendv_and_dead_transport(void **state) {
    (void)state;
    tw_env e;
    tw_env_open(&e, NULL);
    tw_sink k;
    tw_sink_init(&k, 0);
    watch_sink vs = {tw_send, rec_sendv};
    watch_stream *s = watch_stream_new(e.hub, &vs, &k);
    int dead_calls = 0;
    watch_sink ds = {dead_send, NULL};
    watch_stream *d = watch_stream_new(e.hub, &ds, &dead_calls);
    tw_create c = {.key = "v/", .end = "v0", .prev_kv = true};
    assert_int_equal(tw_req_create(s, &c), WATCH_OK);
    assert_int_equal(tw_req_create(d, &c), WATCH_OK);
    assert_int_equal(dead_calls, 1); /* the created response found the transport gone */
    int64_t first = watch_hub_revision(e.hub) + 1;
    tw_put(&e, "v/1", "a");
    tw_put(&e, "v/1", "b");
    tw_txn_puts(&e, "v/t", 3, "c");
    assert_int_equal(dead_calls, 1); /* nothing more is offered to a gone transport */
    tw_evs got = {0}, want = {0};
    tw_collect(&k, 0, &got);
    tw_reference(&e, &c, first, watch_hub_revision(e.hub), &want);
    assert_int_equal(want.n, 5);
    tw_assert_same(&got, &want);
    free(got.v);
    free(want.v);
    watch_stream_free(d);
    watch_stream_free(s);
    tw_sink_free(&k);
    tw_env_close(&e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_put_cancel),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_start_revisions),
        cmocka_unit_test(test_filters_prev_kv),
        cmocka_unit_test(test_fragment),
        cmocka_unit_test(test_compacted),
        cmocka_unit_test(test_progress_notify_tick),
        cmocka_unit_test(test_progress_request),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_encoding_canonical),
        cmocka_unit_test(test_stream_free_and_stats),
        cmocka_unit_test(test_sendv_and_dead_transport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
