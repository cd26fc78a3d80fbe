/* fuzz_watch_request.c — libFuzzer target for the watch hub (kvstore/watch): WatchRequest bytes
 * into watch_stream_request on a hub over a small engine, interleaved with commits, held-back
 * transports, catch-up rounds, progress ticks and compactions.
 *
 * Input: records [flags][length, 2 bytes little-endian][WatchRequest bytes] (the last record
 * takes what is left). After each request the flags drive the rest of the hub's life:
 *   bit 0: the sink reports "over high-water" from now on (held back, etcd's victim path);
 *   bit 1: the transport drained (watch_stream_writable) and the sink accepts again;
 *   bit 2: a commit — a put (or, with bit 5, a delete) on one of a few keys, delivered to the
 *          hub as the server does (watch_batch_from_events, then watch_hub_on_commit);
 *   bit 3: a progress tick 1 s later (watch_hub_tick);
 *   bit 4: compaction to two revisions below the current one;
 *   bit 6: a lost commit (watch_hub_on_lost_commit) instead of delivering the batch;
 *   bit 7: a second stream gets the request instead of the first.
 * Every response handed to the sink must decode as an etcdserverpb.WatchResponse.
 *
 * State: the engine (no_sync) in a temporary directory made once per process, seeded with a few
 * revisions of history; the hub and the streams are made per input; the store is wiped and
 * reseeded every RESET_EVERY inputs. */
#include <protobuf-c/protobuf-c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "kv.h"
#include "rpc.pb-c.h"
#include "testutil.h"
#include "watch.h"

#define MAX_RECORDS 24
#define RESET_EVERY 256

static fuzz_store g_store = {.who = "fuzz_watch_request"};
static unsigned g_runs;
static watch_batch *g_batch; /* the last commit's events, taken by the commit callback */
static bool g_lost;

static void on_commit(void *ud, const kv_event *ev, size_t n, int64_t revision) {
    (void)ud;
    watch_batch *b = watch_batch_from_events(ev, n, revision);
    if (!b || g_batch) {
        g_lost = true; /* one commit per step: never happens, but keep the rule */
        watch_batch_free(b);
        return;
    }
    g_batch = b;
}

static void put(const char *key, const char *val) {
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    r.key.data = (uint8_t *)key;
    r.key.len = strlen(key);
    r.value.data = (uint8_t *)val;
    r.value.len = strlen(val);
    kv_arena *a = kv_arena_new();
    Etcdserverpb__PutResponse *resp;
    kv_err err;
    if (!a || kv_put(g_store.kv, &r, a, &resp, &err) != KV_OK) abort();
    kv_arena_free(a);
}

/* History: revisions 2..9 on a handful of keys, compacted at 3 (after every (re)open). */
static void seed(kv_store *kv) {
    (void)kv; /* put() writes through g_store.kv, which is kv here */
    static const char *const keys[] = {"a", "b", "foo", "foo/1", "foo/2", "z", "a", "foo/1"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        put(keys[i], i % 2 ? "v1" : "value-two");
    kv_err e2;
    if (kv_compact(g_store.kv, 3, &e2) != KV_OK) abort();
    kv_set_commit_cb(g_store.kv, on_commit, NULL);
}

static void at_exit_cleanup(void) {
    fuzz_store_destroy(&g_store);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_store.seed = seed;
    fuzz_store_init(&g_store, "fuzz-watch");
    atexit(at_exit_cleanup);
    return 0;
}

typedef struct sink_state {
    bool held;
    uint64_t responses;
} sink_state;

static void check_response(const uint8_t *msg, size_t len) {
    Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(NULL, len, msg);
    if (!r) abort();
    etcdserverpb__watch_response__free_unpacked(r, NULL);
}

static int sink_send(void *ud, const uint8_t *msg, size_t len) {
    sink_state *st = ud;
    check_response(msg, len);
    st->responses++;
    return st->held ? 1 : 0;
}

static int sink_sendv(void *ud, const uint8_t *head, size_t head_len, const uint8_t *body,
                      size_t body_len) {
    uint8_t *all = malloc(head_len + body_len + 1);
    if (!all) abort();
    memcpy(all, head, head_len);
    if (body_len) memcpy(all + head_len, body, body_len);
    int rc = sink_send(ud, all, head_len + body_len);
    free(all);
    return rc;
}

static void commit(unsigned step, bool del, bool lose, watch_hub *h) {
    static const char *const keys[] = {"a", "foo/1", "foo/3", "zz"};
    const char *key = keys[step % 4];
    if (del) {
        Etcdserverpb__DeleteRangeRequest r = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
        r.key.data = (uint8_t *)key;
        r.key.len = strlen(key);
        r.prev_kv = true;
        kv_arena *a = kv_arena_new();
        Etcdserverpb__DeleteRangeResponse *resp;
        kv_err err;
        if (!a) abort();
        kv_delete_range(g_store.kv, &r, a, &resp, &err);
        kv_arena_free(a);
    } else {
        put(key, step % 3 ? "x" : "a-longer-value");
    }
    if (g_lost || (lose && g_batch)) {
        watch_hub_on_lost_commit(h);
    } else if (g_batch) {
        watch_hub_on_commit(h, g_batch);
    }
    watch_batch_free(g_batch);
    g_batch = NULL;
    g_lost = false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (++g_runs % RESET_EVERY == 0) fuzz_store_reset(&g_store);
    watch_hub_opts o = {.progress_interval_ms = 1000,
                        .max_response_bytes = 256, /* small: fragments happen */
                        .max_request_bytes = 4096,
                        .feed_batch_events = 3,
                        .feed_batch_bytes = 512,
                        .max_watchers_per_sync = 2};
    watch_hub *h = watch_hub_new(g_store.kv, &o);
    if (!h) abort();
    watch_sink sink = {.send = sink_send, .sendv = sink_sendv};
    watch_sink sink1 = {.send = sink_send};
    sink_state st[2] = {{0}, {0}};
    watch_stream *s[2] = {watch_stream_new(h, &sink, &st[0]), watch_stream_new(h, &sink1, &st[1])};
    if (!s[0] || !s[1]) abort();
    int64_t now = 1000;
    watch_hub_tick(h, now);
    size_t at = 0;
    for (unsigned rec = 0; rec < MAX_RECORDS && at < size; rec++) {
        unsigned flags = data[at++];
        size_t len = 0;
        if (size - at >= 2) {
            len = (size_t)data[at] | (size_t)data[at + 1] << 8;
            at += 2;
        }
        if (len > size - at) len = size - at;
        uint8_t *msg = malloc(len ? len : 1); /* exact size for ASan */
        if (!msg) abort();
        memcpy(msg, data + at, len);
        at += len;
        unsigned which = flags >> 7;
        if (s[which]) {
            if (watch_stream_request(s[which], msg, len) != WATCH_OK) {
                watch_stream_free(s[which]); /* the server ends the call */
                s[which] = NULL;
            }
        }
        free(msg);
        if (flags & 1) st[which].held = true;
        if ((flags & 2) && s[which]) {
            st[which].held = false;
            watch_stream_writable(s[which]);
        }
        if (flags & 4) commit(rec, flags & 32, flags & 64, h);
        if (flags & 8) watch_hub_tick(h, now += 1000);
        if (flags & 16) {
            kv_status ks;
            kv_status_get(g_store.kv, &ks);
            kv_err err;
            if (ks.revision - 2 > ks.compact_revision)
                kv_compact(g_store.kv, ks.revision - 2, &err);
        }
        for (int i = 0; i < 8 && watch_hub_pending(h); i++)
            watch_hub_sync(h, 2);
    }
    watch_stats ws;
    watch_hub_stats(h, &ws);
    for (int i = 0; i < 2; i++) {
        if (!s[i]) continue;
        watch_stream_stats ss;
        watch_stream_stats_get(s[i], &ss);
        if (ss.responses != st[i].responses) abort(); /* stats count what the sink took */
        watch_stream_free(s[i]);
    }
    watch_hub_free(h);
    return 0;
}
