/* bench_watch_fanout.c — watch hub fan-out speed: 1,000 watchers of one prefix on one stream,
 * through a counting sink (no transport), for
 *   1. the commit path, one event per commit, sink.send (one copy per response);
 *   2. the same with sink.sendv (head + shared event bytes, no copy in the hub);
 *   3. group commits of 16 events, 8 of them in the prefix (non-contiguous selection);
 *   4. catch-up: 1,000 watchers created at revision 1 over a history of N events;
 *   5. end to end: kv_put (no_sync) -> commit callback -> batch -> hub -> 1,000 watchers.
 * Commit batches are made up front with watch_batch_from_events, so 1-3 measure the hub alone.
 * Usage: bench_watch_fanout [commits] (default 20000). Prints events/s per case. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "watch.h"

typedef struct counter {
    uint64_t msgs, bytes;
} counter;

static int count_send(void *ud, const uint8_t *msg, size_t len) {
    counter *c = ud;
    c->msgs++;
    (void)msg; /* the transport's own copy is not measured */
    c->bytes += len;
    return 0;
}

static int count_sendv(void *ud, const uint8_t *h, size_t hl, const uint8_t *b, size_t bl) {
    counter *c = ud;
    (void)h;
    (void)b;
    c->msgs++;
    c->bytes += hl + bl;
    return 0;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* An encoded mvccpb.KeyValue like a small Kubernetes object's. */
static size_t make_kv(uint8_t *buf, const char *key, int64_t rev, size_t vlen) {
    static uint8_t val[4096];
    memset(val, 'o', sizeof(val));
    Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT;
    kv.key.data = (uint8_t *)key;
    kv.key.len = strlen(key);
    kv.create_revision = 2;
    kv.mod_revision = rev;
    kv.version = rev;
    kv.value.data = val;
    kv.value.len = vlen;
    return mvccpb__key_value__pack(&kv, buf);
}

static void add_watchers(watch_stream *s, int n, const char *key, const char *end, int64_t start) {
    for (int i = 0; i < n; i++) {
        Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
        cr.key.data = (uint8_t *)key;
        cr.key.len = strlen(key);
        cr.range_end.data = (uint8_t *)end;
        cr.range_end.len = strlen(end);
        cr.start_revision = start;
        if (watch_stream_create(s, &cr, NULL) != WATCH_OK) abort();
    }
}

/* Cases 1-3: fan-out of pre-built batches. per_commit events per batch, `inside` of them in
 * the watched prefix. */
static void run_commits(kv_store *kv, int commits, int per_commit, int inside, bool vec,
                        const char *name) {
    watch_hub *h = watch_hub_new(kv, NULL);
    counter c = {0};
    watch_sink sink = {count_send, vec ? count_sendv : NULL};
    watch_stream *s = watch_stream_new(h, &sink, &c);
    add_watchers(s, 1000, "pods/", "pods0", 0);
    int64_t rev = watch_hub_revision(h);
    watch_batch **bs = malloc((size_t)commits * sizeof(*bs));
    static uint8_t kvb[16][600];
    char keys[16][32];
    kv_event ev[16];
    for (int i = 0; i < commits; i++) {
        for (int j = 0; j < per_commit; j++) {
            bool in = j % (per_commit / inside) == 0;
            snprintf(keys[j], 32, in ? "pods/p%d" : "events/e%d", (i * per_commit + j) % 500);
            int64_t r = rev + 1 + (int64_t)i * per_commit + j;
            size_t n = make_kv(kvb[j], keys[j], r, 400);
            ev[j] = (kv_event){.type = 0,
                               .main = r,
                               .key = (uint8_t *)keys[j],
                               .key_len = strlen(keys[j]),
                               .kv = kvb[j],
                               .kv_len = n};
        }
        bs[i] = watch_batch_from_events(ev, (size_t)per_commit, ev[per_commit - 1].main);
        if (!bs[i]) abort();
    }
    double t0 = now_s();
    for (int i = 0; i < commits; i++)
        watch_hub_on_commit(h, bs[i]);
    double t = now_s() - t0;
    watch_stats st;
    watch_hub_stats(h, &st);
    printf("%-44s %9.0f events/s  %8.0f responses/s  %6.1f MB/s  (%llu events, %.3f s)\n", name,
           (double)st.events_total / t, (double)c.msgs / t, (double)c.bytes / t / 1e6,
           (unsigned long long)st.events_total, t);
    for (int i = 0; i < commits; i++)
        watch_batch_free(bs[i]);
    free(bs);
    watch_stream_free(s);
    watch_hub_free(h);
}

/* The server's path, minus the thread hop: batch on the writer, hand to the hub. */
typedef struct e2e_ctx {
    watch_hub *h;
} e2e_ctx;

static void e2e_commit(void *ud, const kv_event *ev, size_t n, int64_t rev) {
    e2e_ctx *x = ud;
    watch_batch *b = watch_batch_from_events(ev, n, rev);
    watch_hub_on_commit(x->h, b);
    watch_batch_free(b);
}

int main(int argc, char **argv) {
    int commits = argc > 1 ? atoi(argv[1]) : 20000;
    char *dir = tu_mkdtemp("bench-watch");
    kv_options ko = {0};
    ko.no_sync = true;
    kv_store *kv;
    kv_err err;
    if (kv_open(dir, &ko, &kv, &err)) {
        fprintf(stderr, "kv_open: %s\n", err.msg);
        return 1;
    }
    run_commits(kv, commits, 1, 1, false, "1 event/commit, 1000 watchers, send");
    run_commits(kv, commits, 1, 1, true, "1 event/commit, 1000 watchers, sendv");
    run_commits(kv, commits / 8, 16, 8, false, "16 events/commit (8 watched), send");

    /* Case 4: history in the store, then 1,000 watchers from revision 1. */
    int hist = commits / 4;
    kv_arena *a = kv_arena_new();
    static char val[401];
    double t0, t;
    memset(val, 'o', 400);
    for (int i = 0; i < hist; i++) {
        char key[32];
        snprintf(key, sizeof(key), i % 2 ? "pods/p%d" : "events/e%d", i % 500);
        Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
        r.key.data = (uint8_t *)key;
        r.key.len = strlen(key);
        r.value.data = (uint8_t *)val;
        r.value.len = 400;
        Etcdserverpb__PutResponse *out;
        if (kv_put(kv, &r, a, &out, &err)) abort();
        kv_arena_reset(a);
    }
    kv_arena_free(a);
    watch_hub_opts o = {0};
    o.sync_rounds_per_call = -1;
    watch_hub *h = watch_hub_new(kv, &o);
    counter c = {0};
    watch_sink sink = {count_send, NULL};
    watch_stream *s = watch_stream_new(h, &sink, &c);
    add_watchers(s, 1000, "pods/", "pods0", 1);
    t0 = now_s();
    while (watch_hub_sync(h, 16)) {
    }
    t = now_s() - t0;
    watch_stats st;
    watch_hub_stats(h, &st);
    printf("%-44s %9.0f events/s  %8.0f responses/s  %6.1f MB/s  (%llu events, %llu reads, "
           "%.3f s)\n",
           "catch-up from history, 1000 watchers", (double)st.events_total / t, (double)c.msgs / t,
           (double)c.bytes / t / 1e6, (unsigned long long)st.events_total,
           (unsigned long long)st.feed_reads, t);
    watch_stream_free(s);
    watch_hub_free(h);

    /* Case 5: end to end through the engine (no_sync kv_put, commit callback, batch, hub). */
    e2e_ctx x = {watch_hub_new(kv, NULL)};
    kv_set_commit_cb(kv, e2e_commit, &x);
    c = (counter){0};
    s = watch_stream_new(x.h, &sink, &c);
    add_watchers(s, 1000, "pods/", "pods0", 0);
    a = kv_arena_new();
    int puts = commits / 10;
    t0 = now_s();
    for (int i = 0; i < puts; i++) {
        char key[32];
        snprintf(key, sizeof(key), "pods/p%d", i % 500);
        Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
        r.key.data = (uint8_t *)key;
        r.key.len = strlen(key);
        r.value.data = (uint8_t *)val;
        r.value.len = 400;
        Etcdserverpb__PutResponse *out;
        if (kv_put(kv, &r, a, &out, &err)) abort();
        kv_arena_reset(a);
    }
    t = now_s() - t0;
    watch_hub_stats(x.h, &st);
    printf("%-44s %9.0f events/s  %8.0f puts/s  (%llu events, %.3f s)\n",
           "kv_put -> 1000 watchers, end to end", (double)st.events_total / t, puts / t,
           (unsigned long long)st.events_total, t);
    kv_set_commit_cb(kv, NULL, NULL);
    kv_arena_free(a);
    watch_stream_free(s);
    watch_hub_free(x.h);
    kv_close(kv);
    tu_rmtree(dir);
    return 0;
}
