/* test_srv_watch.c — etcdserverpb.Watch on `kvstore serve`, end to end over the project's own
 * gRPC client: create / cancel / progress, half-close, 1,000 watchers on one stream, watchers
 * from many start revisions checked against a reference built from the writes' own responses,
 * a paused (slow) reader with bounded server output and no event lost, compacted starts,
 * progress_notify, filters, ranges, fragments, duplicate ids, malformed requests, metrics. */
#include "srv_watchcli.h"

/* ---- helpers ---- */

static const Mvccpb__Event *ev_at(wstream *w, size_t resp, size_t i) {
    assert_true(resp < w->n);
    assert_true(i < w->r[resp]->n_events);
    return w->r[resp]->events[i];
}

static int64_t current_rev(cli *c) {
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("/nope");
    Etcdserverpb__RangeResponse *rr = range(c, &q);
    int64_t rev = rr->header->revision;
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    return rev;
}

static void del_key(cli *c, const char *k, int64_t *rev) {
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    d.key = bd(k);
    result r = {0};
    assert_int_equal(call(c, P_DEL, &d.base, &r), 0);
    Etcdserverpb__DeleteRangeResponse *dr =
        etcdserverpb__delete_range_response__unpack(NULL, r.len, r.data);
    if (rev) *rev = dr->header->revision;
    etcdserverpb__delete_range_response__free_unpacked(dr, NULL);
    free(r.data);
}

static void compact(cli *c, int64_t rev) {
    Etcdserverpb__CompactionRequest q = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    q.revision = rev;
    result r = {0};
    assert_int_equal(call(c, P_COMPACT, &q.base, &r), 0);
    free(r.data);
}

/* Pipelined puts may reach the writer in any order: the indices of recs by revision. */
static put_rec *sort_base;
static int by_rev(const void *a, const void *b) {
    int64_t x = sort_base[*(const int *)a].rev, y = sort_base[*(const int *)b].rev;
    return x < y ? -1 : x > y;
}
static int *order_by_rev(put_rec *recs, int n) {
    int *ix = malloc((size_t)n * sizeof *ix);
    for (int i = 0; i < n; i++)
        ix[i] = i;
    sort_base = recs;
    qsort(ix, (size_t)n, sizeof *ix, by_rev);
    for (int i = 1; i < n; i++)
        assert_true(recs[ix[i]].rev > recs[ix[i - 1]].rev);
    return ix;
}

/* ---- basics ---- */

static void test_watch_create_events_cancel_progress(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    int64_t r0 = put(c, "/a/0", "x"); /* before the watch: not delivered */
    wstream *w = ws_open(c);
    ws_create(w, "/a/", &(ws_create_opts){.end = "/a0"});
    ws_wait_n(w, 1);
    assert_true(w->r[0]->created);
    assert_false(w->r[0]->canceled);
    assert_int_equal(w->r[0]->watch_id, 0); /* the stream's first automatic id */
    assert_int_equal(w->r[0]->header->revision, r0);
    assert_true(w->r[0]->header->cluster_id && w->r[0]->header->member_id);

    int64_t r1 = put(c, "/a/1", "one");
    put(c, "/b/1", "other");
    int64_t r2 = put(c, "/a/2", "two");
    int64_t r3;
    del_key(c, "/a/1", &r3);
    ws_wait_n(w, 4);
    assert_int_equal(w->events, 3);
    const Mvccpb__Event *e = ev_at(w, 1, 0);
    assert_int_equal(e->type, MVCCPB__EVENT__EVENT_TYPE__PUT);
    assert_true(kv_is(e->kv, "/a/1", "one"));
    assert_int_equal(e->kv->mod_revision, r1);
    assert_int_equal(e->kv->create_revision, r1);
    assert_int_equal(e->kv->version, 1);
    assert_int_equal(w->r[1]->header->revision, r1);
    assert_int_equal(ev_at(w, 2, 0)->kv->mod_revision, r2);
    e = ev_at(w, 3, 0);
    assert_int_equal(e->type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
    assert_true(kv_is(e->kv, "/a/1", NULL));
    assert_int_equal(e->kv->mod_revision, r3);
    assert_null(e->prev_kv);

    /* progress: watch_id -1, header.revision = current */
    ws_progress(w);
    ws_wait_n(w, 5);
    assert_int_equal(w->r[4]->watch_id, -1);
    assert_int_equal(w->r[4]->header->revision, r3);
    assert_int_equal(w->r[4]->n_events, 0);

    /* cancel: canceled response with the id; nothing after it */
    ws_cancel(w, 0);
    ws_wait_n(w, 6);
    assert_true(w->r[5]->canceled);
    assert_int_equal(w->r[5]->watch_id, 0);
    ws_cancel(w, 0); /* unknown id: etcd answers nothing */
    put(c, "/a/3", "three");
    sleep_loop(&c->loop, 100);
    assert_int_equal(w->n, 6);
    ws_free(w);
    cli_free(c);
    srv_stop(h, false);
}

/* etcd 3.4 keeps a half-closed Watch stream open: events keep flowing. */
static void test_watch_half_close_keeps_stream(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    wstream *w = ws_open(c);
    ws_create(w, "k", NULL);
    ws_wait_n(w, 1);
    assert_int_equal(grpc_cstream_half_close(w->s), 0);
    sleep_loop(&c->loop, 50);
    put(c, "k", "v1");
    put(c, "k", "v2");
    ws_wait_n(w, 3);
    assert_false(w->closed);
    assert_true(kv_is(ev_at(w, 2, 0)->kv, "k", "v2"));
    ws_free(w);
    cli_free(c);
    srv_stop(h, false);
}

/* ---- 1,000 watchers on one stream ---- */

static void test_watch_thousand_on_one_stream(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    cli *wc = cli_new(h->port);
    wstream *w = ws_open(wc);
    enum { NW = 1000, NP = 50 };
    for (int i = 0; i < NW; i++)
        ws_create(w, "/p/", &(ws_create_opts){.end = "/p0", .prev_kv = i % 2});
    ws_wait_n(w, NW);
    for (int i = 0; i < NW; i++) {
        assert_true(w->r[i]->created);
        assert_int_equal(w->r[i]->watch_id, i);
    }
    put_rec recs[NP];
    char key[32], val[32];
    for (int i = 0; i < NP; i++) {
        snprintf(key, sizeof key, "/p/%d", i % 7);
        snprintf(val, sizeof val, "v%d", i);
        put_async(c, key, (const uint8_t *)val, strlen(val), 0, &recs[i]);
    }
    puts_wait(c, recs, NP);
    uint64_t want = (uint64_t)NW * NP;
    if (!ws_wait(w, ws_has_events, &want, 20000))
        fail_msg("%llu events, want %llu", (unsigned long long)w->events, (unsigned long long)want);
    /* every watcher: all NP events, in revision order, once each */
    int64_t *next = calloc(NW, sizeof *next), *with_prev = calloc(NW, sizeof *with_prev);
    int *ix = order_by_rev(recs, NP);
    for (size_t i = NW; i < w->n; i++) {
        Etcdserverpb__WatchResponse *r = w->r[i];
        assert_true(r->watch_id >= 0 && r->watch_id < NW);
        for (size_t j = 0; j < r->n_events; j++) {
            int k = (int)next[r->watch_id]++;
            assert_true(k < NP);
            assert_int_equal(r->events[j]->kv->mod_revision, recs[ix[k]].rev);
            snprintf(val, sizeof val, "v%d", ix[k]);
            assert_true(bytes_is(r->events[j]->kv->value, val));
            if (r->events[j]->prev_kv) with_prev[r->watch_id]++;
        }
    }
    for (int i = 0; i < NW; i++) {
        assert_int_equal(next[i], NP);
        assert_int_equal(with_prev[i], i % 2 ? NP - 7 : 0); /* 7 keys: their first put has none */
    }
    free(ix);
    free(with_prev);
    free(next);
    assert_int_equal(w->events, want);
    ws_free(w);
    cli_free(wc);
    cli_free(c);
    srv_stop(h, false);
}

/* ---- many start revisions vs. a reference from the writes' responses ---- */

typedef struct ref_ev {
    int64_t rev;
    int type;
    char key[16];
    char value[24];
    int64_t create, version;
    bool has_prev;
    char prev_value[24];
} ref_ev;

typedef struct model_key {
    char key[16];
    bool live;
    char value[24];
    int64_t create, version;
} model_key;

static model_key *model_find(model_key *m, size_t n, const char *k) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(m[i].key, k)) return &m[i];
    return NULL;
}

static int ref_cmp(const void *a, const void *b) {
    const ref_ev *x = a, *y = b;
    if (x->rev != y->rev) return x->rev < y->rev ? -1 : 1;
    return strcmp(x->key, y->key); /* one delete of several keys: key order (sub revisions) */
}

typedef struct wspec {
    const char *key, *end;
    bool from_key, prev_kv;
    int64_t start;
} wspec;

static bool in_range(const wspec *s, const char *k) {
    if (s->from_key) return strcmp(k, s->key) >= 0;
    if (!s->end) return !strcmp(k, s->key);
    return strcmp(k, s->key) >= 0 && strcmp(k, s->end) < 0;
}

static void test_watch_history_matches_reference(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    cli *wc = cli_new(h->port);
    enum { PHASE1 = 240, PHASE2 = 160, MAXREF = 1000, NKEYS = 12 };
    ref_ev *ref = calloc(MAXREF, sizeof *ref);
    size_t nref = 0;
    static const char *const keys[NKEYS] = {"/h/a/0", "/h/a/1", "/h/a/2", "/h/a/3",
                                            "/h/b/0", "/h/b/1", "/h/b/2", "/h/b/3",
                                            "/h/c/0", "/h/c/1", "/x/0",   "/x/1"};
    srand(7);
    /* phase 1: puts and deletes (a prefix delete removes several keys in one revision) */
    char val[24];
    for (int i = 0; i < PHASE1; i++) {
        int op = rand() % 10;
        const char *k = keys[rand() % NKEYS];
        if (op < 8) {
            snprintf(val, sizeof val, "p1-%d", i);
            ref_ev *e = &ref[nref++];
            e->rev = put(c, k, val);
            e->type = MVCCPB__EVENT__EVENT_TYPE__PUT;
            snprintf(e->key, sizeof e->key, "%s", k);
            snprintf(e->value, sizeof e->value, "%s", val);
        } else {
            Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
            d.key = bd(op == 8 ? k : "/h/b/");
            if (op == 9) d.range_end = bd("/h/b0");
            d.prev_kv = true;
            result r = {0};
            assert_int_equal(call(c, P_DEL, &d.base, &r), 0);
            Etcdserverpb__DeleteRangeResponse *dr =
                etcdserverpb__delete_range_response__unpack(NULL, r.len, r.data);
            for (size_t j = 0; j < dr->n_prev_kvs; j++) {
                ref_ev *e = &ref[nref++];
                e->rev = dr->header->revision;
                e->type = MVCCPB__EVENT__EVENT_TYPE__DELETE;
                snprintf(e->key, sizeof e->key, "%.*s", (int)dr->prev_kvs[j]->key.len,
                         (const char *)dr->prev_kvs[j]->key.data);
            }
            etcdserverpb__delete_range_response__free_unpacked(dr, NULL);
            free(r.data);
        }
    }
    int64_t mid = current_rev(c);
    /* watchers at many start revisions, created while phase 2's puts are in flight */
    enum { NWS = 120 };
    wspec specs[NWS];
    wstream *streams[3];
    for (int s = 0; s < 3; s++)
        streams[s] = ws_open(wc);
    put_rec recs[PHASE2];
    char key2[PHASE2][16];
    for (int i = 0; i < NWS; i++) {
        wspec *sp = &specs[i];
        memset(sp, 0, sizeof *sp);
        switch (i % 4) {
        case 0:
            sp->key = "/h/", sp->end = "/h0";
            break;
        case 1:
            sp->key = "/h/a/", sp->end = "/h/a0";
            break;
        case 2:
            sp->key = keys[i % NKEYS];
            break;
        default:
            sp->key = "/h/b/", sp->from_key = true;
            break;
        }
        sp->prev_kv = i % 3 == 0;
        sp->start = 1 + (int64_t)i * (mid + PHASE2 / 2) / NWS; /* some past mid: live + catch-up */
        ws_create(streams[i % 3], sp->key,
                  &(ws_create_opts){.end = sp->end,
                                    .from_key = sp->from_key,
                                    .start = sp->start,
                                    .prev_kv = sp->prev_kv,
                                    .watch_id = 100 + i});
        if (i < PHASE2) {
            snprintf(key2[i], sizeof key2[i], "%s", keys[rand() % NKEYS]);
            snprintf(val, sizeof val, "p2-%d", i);
            put_async(c, key2[i], (const uint8_t *)val, strlen(val), 0, &recs[i]);
        }
    }
    for (int i = NWS; i < PHASE2; i++) {
        snprintf(key2[i], sizeof key2[i], "%s", keys[rand() % NKEYS]);
        snprintf(val, sizeof val, "p2-%d", i);
        put_async(c, key2[i], (const uint8_t *)val, strlen(val), 0, &recs[i]);
    }
    puts_wait(c, recs, PHASE2);
    for (int i = 0; i < PHASE2; i++) {
        ref_ev *e = &ref[nref++];
        e->rev = recs[i].rev;
        e->type = MVCCPB__EVENT__EVENT_TYPE__PUT;
        snprintf(e->key, sizeof e->key, "%s", key2[i]);
        snprintf(e->value, sizeof e->value, "p2-%d", i);
    }
    qsort(ref, nref, sizeof *ref, ref_cmp);
    /* the model gives create_revision, version and prev_kv of every event */
    model_key model[NKEYS];
    memset(model, 0, sizeof model);
    for (int i = 0; i < NKEYS; i++)
        snprintf(model[i].key, sizeof model[i].key, "%s", keys[i]);
    for (size_t i = 0; i < nref; i++) {
        ref_ev *e = &ref[i];
        model_key *m = model_find(model, NKEYS, e->key);
        assert_non_null(m);
        e->has_prev = m->live;
        snprintf(e->prev_value, sizeof e->prev_value, "%s", m->value);
        if (e->type == MVCCPB__EVENT__EVENT_TYPE__PUT) {
            if (!m->live) m->create = e->rev, m->version = 0;
            m->live = true;
            m->version++;
            snprintf(m->value, sizeof m->value, "%s", e->value);
            e->create = m->create;
            e->version = m->version;
        } else {
            m->live = false;
        }
    }
    int64_t last = ref[nref - 1].rev;
    /* expected event counts, then wait for them */
    uint64_t want[3] = {0, 0, 0};
    for (int i = 0; i < NWS; i++)
        for (size_t j = 0; j < nref; j++)
            if (ref[j].rev >= specs[i].start && in_range(&specs[i], ref[j].key)) want[i % 3]++;
    for (int s = 0; s < 3; s++)
        if (!ws_wait(streams[s], ws_has_events, &want[s], 20000))
            fail_msg("stream %d: %llu events, want %llu", s, (unsigned long long)streams[s]->events,
                     (unsigned long long)want[s]);
    sleep_loop(&wc->loop, 100); /* nothing extra may follow */
    /* compare each watcher's events with the reference, in order */
    for (int i = 0; i < NWS; i++) {
        wstream *w = streams[i % 3];
        const wspec *sp = &specs[i];
        size_t j = 0;
        bool created = false;
        int64_t last_resp_rev = 0;
        for (size_t r = 0; r < w->n; r++) {
            Etcdserverpb__WatchResponse *resp = w->r[r];
            if (resp->watch_id != 100 + i) continue;
            if (resp->created) {
                created = true;
                continue;
            }
            assert_true(created);
            assert_false(resp->fragment);
            if (resp->n_events) { /* a revision is never split across responses */
                int64_t first = resp->events[0]->kv->mod_revision;
                assert_true(first > last_resp_rev);
                last_resp_rev = resp->events[resp->n_events - 1]->kv->mod_revision;
                assert_true(resp->header->revision >= last_resp_rev);
            }
            for (size_t k = 0; k < resp->n_events; k++) {
                const Mvccpb__Event *e = resp->events[k];
                while (j < nref && !(ref[j].rev >= sp->start && in_range(sp, ref[j].key)))
                    j++;
                if (j >= nref)
                    fail_msg("watcher %d: extra event at %lld", i, (long long)e->kv->mod_revision);
                const ref_ev *x = &ref[j++];
                if (e->kv->mod_revision != x->rev || (int)e->type != x->type ||
                    !kv_is(e->kv, x->key, NULL))
                    fail_msg("watcher %d (start %lld): got %s %.*s@%lld, want %s %s@%lld", i,
                             (long long)sp->start, e->type ? "DELETE" : "PUT", (int)e->kv->key.len,
                             (const char *)e->kv->key.data, (long long)e->kv->mod_revision,
                             x->type ? "DELETE" : "PUT", x->key, (long long)x->rev);
                if (x->type == MVCCPB__EVENT__EVENT_TYPE__PUT) {
                    assert_true(bytes_is(e->kv->value, x->value));
                    assert_int_equal(e->kv->create_revision, x->create);
                    assert_int_equal(e->kv->version, x->version);
                }
                if (sp->prev_kv && x->has_prev) {
                    assert_non_null(e->prev_kv);
                    assert_true(bytes_is(e->prev_kv->value, x->prev_value));
                } else {
                    assert_null(e->prev_kv);
                }
            }
        }
        while (j < nref && !(ref[j].rev >= sp->start && in_range(sp, ref[j].key)))
            j++;
        if (j != nref) fail_msg("watcher %d: missing events from %lld", i, (long long)ref[j].rev);
    }
    print_message("history: %zu reference events up to rev %lld, %d watchers, starts 1..%lld\n",
                  nref, (long long)last, NWS, (long long)specs[NWS - 1].start);
    for (int s = 0; s < 3; s++)
        ws_free(streams[s]);
    free(ref);
    cli_free(wc);
    cli_free(c);
    srv_stop(h, false);
}

/* ---- a paused reader ---- */

static void test_watch_slow_reader_bounded(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    /* a small client window so the paused stream stops the server quickly */
    cli *wc = calloc(1, sizeof *wc);
    uv_loop_init(&wc->loop);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", h->port);
    grpc_client_opts co = {.initial_window_size = 256 * 1024, .conn_window_size = 1 << 20};
    wc->c = grpc_client_new(&wc->loop, target, &co);
    wstream *w = ws_open(wc);
    ws_create(w, "/s/", &(ws_create_opts){.end = "/s0"});
    ws_create(w, "/s/0", NULL);
    ws_wait_n(w, 2);
    grpc_cstream_pause(w->s);
    enum { N = 3000, VLEN = 4096, BATCH = 200 };
    static uint8_t v[VLEN];
    memset(v, 'v', sizeof v);
    put_rec *recs = calloc(N, sizeof *recs);
    char key[32];
    grpc_server_stats st;
    size_t peak_seen = 0;
    for (int b = 0; b < N / BATCH; b++) {
        for (int i = b * BATCH; i < (b + 1) * BATCH; i++) {
            snprintf(key, sizeof key, "/s/%d", i % 50);
            memcpy(v, &i, sizeof i);
            put_async(c, key, v, VLEN, 0, &recs[i]);
        }
        puts_wait(c, recs + b * BATCH, BATCH);
        sleep_loop(&wc->loop, 1); /* the paused client's loop still runs (no delivery) */
        run_on_server(h, get_grpc_stats, &st);
        if (st.out_buffered > peak_seen) peak_seen = st.out_buffered;
    }
    run_on_server(h, get_grpc_stats, &st);
    char *m = http_get(h->port, "/metrics");
    long slow = metric(m, "etcd_debugging_mvcc_slow_watcher_total ");
    long held = metric(m, "relistlab_watch_held_back_total ");
    free(m);
    /* ~12 MiB of events were written while the reader was paused. The server holds at most the
     * call's high-water (1 MiB) + one response + socket buffers; the rest waits in LMDB. */
    const size_t bound = 2u << 20;
    print_message("paused reader: %d x %d B written; server out_buffered %zu, peak %zu (bound "
                  "%zu); slow watchers %ld, held back %ld; delivered %zu responses\n",
                  N, VLEN, st.out_buffered, st.out_buffered_peak, bound, slow, held, w->n);
    assert_true(st.out_buffered_peak <= bound);
    assert_true(slow >= 1);
    assert_true(held >= 1);
    /* resume: everything arrives, in order, once */
    grpc_cstream_resume(w->s);
    uint64_t want = N + N / 50;
    if (!ws_wait(w, ws_has_events, &want, 30000))
        fail_msg("%llu events, want %llu", (unsigned long long)w->events, (unsigned long long)want);
    sleep_loop(&wc->loop, 100);
    assert_int_equal(w->events, want);
    int *ix = order_by_rev(recs, N);
    int next0 = 0, next1 = 0;
    for (size_t r = 2; r < w->n; r++) {
        for (size_t j = 0; j < w->r[r]->n_events; j++) {
            const Mvccpb__KeyValue *kv = w->r[r]->events[j]->kv;
            int k;
            if (w->r[r]->watch_id == 0) {
                k = ix[next0++];
            } else {
                while (next1 < N && ix[next1] % 50)
                    next1++;
                assert_true(next1 < N);
                k = ix[next1++];
            }
            assert_int_equal(kv->mod_revision, recs[k].rev);
            int got;
            memcpy(&got, kv->value.data, sizeof got);
            assert_int_equal(got, k);
        }
    }
    free(ix);
    assert_int_equal(next0, N);
    m = http_get(h->port, "/metrics");
    assert_int_equal(metric(m, "etcd_debugging_mvcc_slow_watcher_total "), 0);
    free(m);
    ws_free(w);
    cli_free(wc);
    free(recs);
    cli_free(c);
    srv_stop(h, false);
}

/* ---- compaction, progress_notify, filters, ranges, fragments, errors ---- */

static void test_watch_compacted_start(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    for (int i = 0; i < 10; i++)
        put(c, "ck", "v");
    int64_t cur = current_rev(c);
    compact(c, cur - 3);
    wstream *w = ws_open(c);
    ws_create(w, "ck", &(ws_create_opts){.start = 2});
    ws_wait_n(w, 2);
    assert_true(w->r[0]->created);
    assert_false(w->r[0]->canceled);
    assert_true(w->r[1]->canceled);
    assert_int_equal(w->r[1]->compact_revision, cur - 3);
    assert_int_equal(w->r[1]->watch_id, w->r[0]->watch_id);
    /* at the compaction revision itself: events from there */
    ws_create(w, "ck", &(ws_create_opts){.start = cur - 3});
    ws_wait_n(w, 3);
    uint64_t want = 4;
    assert_true(ws_wait(w, ws_has_events, &want, 5000));
    assert_int_equal(w->r[3]->events[0]->kv->mod_revision, cur - 3);
    ws_free(w);
    cli_free(c);
    srv_stop(h, false);
}

static bool has_progress(wstream *w, void *arg) {
    (void)arg;
    for (size_t i = 1; i < w->n; i++)
        if (!w->r[i]->n_events && !w->r[i]->created && !w->r[i]->canceled) return true;
    return false;
}

static void test_watch_progress_notify(void **state) {
    (void)state;
    kvs_server_opts o;
    memset(&o, 0, sizeof o);
    o.no_sync = true;
    o.progress_notify_ms = 200;
    srvh *h = srv_start_opts(NULL, &o);
    cli *c = cli_new(h->port);
    int64_t rev = put(c, "pn", "v");
    wstream *w = ws_open(c);
    ws_create(w, "pn", &(ws_create_opts){.progress_notify = true, .watch_id = 7});
    ws_create(w, "other", &(ws_create_opts){.watch_id = 8}); /* no progress_notify */
    ws_wait_n(w, 2);
    assert_true(ws_wait(w, has_progress, NULL, 3000));
    for (size_t i = 2; i < w->n; i++) {
        assert_int_equal(w->r[i]->watch_id, 7);
        assert_int_equal(w->r[i]->header->revision, rev);
        assert_int_equal(w->r[i]->n_events, 0);
    }
    ws_free(w);
    cli_free(c);
    srv_stop(h, false);
}

static void test_watch_filters_ranges_fragments(void **state) {
    (void)state;
    kvs_server_opts o;
    memset(&o, 0, sizeof o);
    o.no_sync = true;
    o.max_request_bytes = 64 * 1024; /* responses over this are fragmented when asked */
    srvh *h = srv_start_opts(NULL, &o);
    cli *c = cli_new(h->port);
    wstream *w = ws_open(c);
    ws_create(w, "f/", &(ws_create_opts){.end = "f0", .noput = true, .watch_id = 1});
    ws_create(w, "f/", &(ws_create_opts){.end = "f0", .nodelete = true, .watch_id = 2});
    ws_create(w, "f/b", &(ws_create_opts){.from_key = true, .watch_id = 3});
    ws_create(w, "e/",
              &(ws_create_opts){.end = "e0", .fragment = true, .prev_kv = true, .watch_id = 4});
    ws_create(w, "e/", &(ws_create_opts){.end = "e0", .prev_kv = true, .watch_id = 5});
    ws_create(w, "z", &(ws_create_opts){.end = "a", .watch_id = 6});   /* empty range */
    ws_create(w, "f/", &(ws_create_opts){.end = "f0", .watch_id = 2}); /* duplicate id */
    ws_wait_n(w, 7);
    assert_true(w->r[5]->created && w->r[5]->canceled);
    assert_int_equal(w->r[5]->watch_id, -1);
    assert_string_equal(w->r[5]->cancel_reason, "mvcc: watcher range is empty");
    assert_true(w->r[6]->created && w->r[6]->canceled);
    assert_string_equal(w->r[6]->cancel_reason,
                        "mvcc: duplicate watch ID provided on the WatchStream");
    put(c, "f/a", "1");
    put(c, "f/c", "2");
    del_key(c, "f/a", NULL);
    /* 60 keys of 12 KiB, then one delete of them all: with prev_kv that one revision is
     * ~720 KiB of events, over etcd's fragment size (max-request-bytes + 512 KiB = 576 KiB) */
    enum { NG = 60 };
    static char big[12 * 1024 + 1];
    memset(big, 'b', sizeof big - 1);
    char key[16];
    for (int i = 0; i < NG; i++) {
        snprintf(key, sizeof key, "e/%02d", i);
        put(c, key, big);
    }
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    d.key = bd("e/");
    d.range_end = bd("e0");
    result dres = {0};
    assert_int_equal(call(c, P_DEL, &d.base, &dres), 0);
    free(dres.data);
    uint64_t want = 1 + 2 + 1 + 2 * 2 * NG; /* noput: 1 delete; nodelete: 2 puts; f/b..: 1 */
    if (!ws_wait(w, ws_has_events, &want, 5000)) {
        for (size_t i = 0; i < w->n; i++)
            print_message("resp %zu: id %lld created %d canceled %d events %zu closed %d\n", i,
                          (long long)w->r[i]->watch_id, w->r[i]->created, w->r[i]->canceled,
                          w->r[i]->n_events, w->closed);
        fail_msg("%llu events, want %llu", (unsigned long long)w->events, (unsigned long long)want);
    }
    sleep_loop(&c->loop, 50);
    assert_int_equal(w->events, want);
    size_t n_by[7] = {0}, del_by[7] = {0}, frags = 0, resp5 = 0;
    for (size_t i = 7; i < w->n; i++) {
        Etcdserverpb__WatchResponse *r = w->r[i];
        assert_true(r->watch_id >= 1 && r->watch_id <= 5);
        n_by[r->watch_id] += r->n_events;
        bool deletes = false;
        for (size_t j = 0; j < r->n_events; j++) {
            const Mvccpb__Event *e = r->events[j];
            if (r->watch_id == 1) assert_int_equal(e->type, 1);
            if (r->watch_id == 2) assert_int_equal(e->type, 0);
            if (r->watch_id == 3) assert_true(kv_is(e->kv, "f/c", "2"));
            if (r->watch_id >= 4 && e->type == 1) {
                deletes = true;
                del_by[r->watch_id]++;
                assert_non_null(e->prev_kv);
                assert_int_equal(e->prev_kv->value.len, sizeof big - 1);
            }
        }
        if (r->watch_id == 4 && deletes) {
            assert_true(r->fragment == (del_by[4] < NG));
            frags++;
        }
        if (r->watch_id == 5 && deletes) {
            resp5++;
            assert_false(r->fragment);
        }
    }
    assert_int_equal(n_by[1], 1);
    assert_int_equal(n_by[2], 2);
    assert_int_equal(n_by[3], 1);
    assert_int_equal(n_by[4], 2 * NG);
    assert_int_equal(n_by[5], 2 * NG);
    assert_true(frags >= 2);
    assert_int_equal(resp5, 1); /* not asked to fragment: the whole revision at once */
    ws_free(w);
    cli_free(c);
    srv_stop(h, false);
}

static void test_watch_malformed_ends_stream(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    wstream *w = ws_open(c);
    static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff};
    assert_true(grpc_cstream_send(w->s, junk, sizeof junk) >= 0);
    bool *closed = &w->closed;
    assert_true(run_until(&c->loop, closed, 5000));
    assert_int_equal(w->status, GRPC_STATUS_INTERNAL);
    ws_free(w);
    /* the server is fine */
    put(c, "x", "y");
    cli_free(c);
    srv_stop(h, false);
}

/* ---- metrics ---- */

static void test_watch_metrics(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    wstream *w1 = ws_open(c), *w2 = ws_open(c);
    for (int i = 0; i < 3; i++)
        ws_create(w1, "m", NULL);
    ws_create(w2, "m", NULL);
    ws_wait_n(w1, 3);
    ws_wait_n(w2, 1);
    put(c, "m", "v");
    uint64_t one = 1, three = 3;
    assert_true(ws_wait(w1, ws_has_events, &three, 5000));
    assert_true(ws_wait(w2, ws_has_events, &one, 5000));
    char *m = http_get(h->port, "/metrics");
    assert_int_equal(metric(m, "etcd_debugging_mvcc_watcher_total "), 4);
    assert_int_equal(metric(m, "etcd_debugging_mvcc_watch_stream_total "), 2);
    assert_int_equal(metric(m, "etcd_debugging_mvcc_events_total "), 4);
    assert_int_equal(metric(m, "etcd_debugging_mvcc_slow_watcher_total "), 0);
    assert_non_null(strstr(m, "relistlab_client_watches{peer=\"127.0.0.1:"));
    const char *p = strstr(m, "\nrelistlab_client_watches{");
    assert_non_null(p);
    assert_int_equal(strtol(strchr(p, '}') + 1, NULL, 10), 4);
    assert_int_equal(metric(m, "grpc_server_started_total{grpc_method=\"Watch\","
                               "grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"} "),
                     2);
    assert_int_equal(metric(m, "grpc_server_msg_received_total{grpc_method=\"Watch\","
                               "grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"} "),
                     4);
    assert_int_equal(metric(m, "grpc_server_msg_sent_total{grpc_method=\"Watch\","
                               "grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"} "),
                     8);
    free(m);
    ws_free(w1);
    ws_free(w2);
    cli_free(c);
    m = http_get(h->port, "/metrics");
    for (int i = 0; i < 100 && metric(m, "etcd_debugging_mvcc_watch_stream_total ") != 0; i++) {
        free(m);
        usleep(10000);
        m = http_get(h->port, "/metrics");
    }
    assert_int_equal(metric(m, "etcd_debugging_mvcc_watch_stream_total "), 0);
    assert_int_equal(metric(m, "etcd_debugging_mvcc_watcher_total "), 0);
    free(m);
    srv_stop(h, false);
}

/* A server with open Watch streams stops promptly (etcd: "server stopped"). */
static void test_watch_server_stop(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    wstream *w = ws_open(c);
    ws_create(w, "s", NULL);
    ws_wait_n(w, 1);
    uint64_t t0 = uv_hrtime();
    srv_stop_begin(h);
    assert_true(run_until(&c->loop, &w->closed, 5000));
    assert_int_equal(w->status, GRPC_STATUS_UNAVAILABLE);
    assert_string_equal(w->message, "etcdserver: server stopped");
    char *dir = srv_stop(h, true);
    assert_true(uv_hrtime() - t0 < 2000000000ull);
    tu_rmtree(dir);
    ws_free(w);
    cli_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watch_create_events_cancel_progress),
        cmocka_unit_test(test_watch_half_close_keeps_stream),
        cmocka_unit_test(test_watch_thousand_on_one_stream),
        cmocka_unit_test(test_watch_history_matches_reference),
        cmocka_unit_test(test_watch_slow_reader_bounded),
        cmocka_unit_test(test_watch_compacted_start),
        cmocka_unit_test(test_watch_progress_notify),
        cmocka_unit_test(test_watch_filters_ranges_fragments),
        cmocka_unit_test(test_watch_malformed_ends_stream),
        cmocka_unit_test(test_watch_metrics),
        cmocka_unit_test(test_watch_server_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
