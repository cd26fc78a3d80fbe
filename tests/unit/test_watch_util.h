/* test_watch_util.h — shared fixtures of the watch hub suites: a store in a temp dir wired to a
 * hub the way the server will wire it (commit callback -> watch_batch_from_events -> posted ->
 * watch_hub_on_commit, here drained synchronously after each write), a recording sink that can
 * play a transport over its high-water mark, and decoding / reference helpers.
 * Header-only so each suite stays one file. */
#ifndef RELIST_TEST_WATCH_UTIL_H
#define RELIST_TEST_WATCH_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"
#include "watch.h"

/* ---- recording sink ---------------------------------------------------------------------- */

typedef struct tw_msg {
    uint8_t *p;
    size_t len;
} tw_msg;

typedef struct tw_sink {
    tw_msg *m;
    size_t n, cap;
    size_t hw;     /* high-water mark in bytes; 0 = never full */
    size_t queued; /* bytes accepted since the last drain */
    size_t max_queued;
    size_t sent_while_full; /* event responses accepted while over hw (must stay 0) */
    bool full;
    bool keep; /* record messages (off for counting-only benchmarks) */
    uint64_t count, bytes;
} tw_sink;

static inline bool tw_has_events(const uint8_t *p, size_t len) {
    Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(NULL, len, p);
    bool ev = r && r->n_events;
    if (r) etcdserverpb__watch_response__free_unpacked(r, NULL);
    return ev;
}

static inline int tw_send(void *ud, const uint8_t *msg, size_t len) {
    tw_sink *k = ud;
    if (k->full && tw_has_events(msg, len)) k->sent_while_full++;
    k->count++;
    k->bytes += len;
    if (k->keep) {
        if (k->n == k->cap) {
            k->cap = k->cap ? k->cap * 2 : 64;
            k->m = realloc(k->m, k->cap * sizeof(*k->m));
            assert_non_null(k->m);
        }
        k->m[k->n].p = malloc(len ? len : 1);
        assert_non_null(k->m[k->n].p);
        memcpy(k->m[k->n].p, msg, len);
        k->m[k->n].len = len;
        k->n++;
    }
    k->queued += len;
    if (k->queued > k->max_queued) k->max_queued = k->queued;
    if (k->hw && k->queued > k->hw) {
        k->full = true;
        return 1;
    }
    return 0;
}

static inline void tw_sink_init(tw_sink *k, size_t hw) {
    memset(k, 0, sizeof(*k));
    k->hw = hw;
    k->keep = true;
}

static inline void tw_sink_clear(tw_sink *k) {
    for (size_t i = 0; i < k->n; i++)
        free(k->m[i].p);
    k->n = 0;
}

static inline void tw_sink_free(tw_sink *k) {
    tw_sink_clear(k);
    free(k->m);
    k->m = NULL;
    k->cap = 0;
}

static const watch_sink tw_sink_ops = {tw_send, NULL};

/* The transport drained: tells the stream. */
static inline void tw_drain(tw_sink *k, watch_stream *s) {
    k->queued = 0;
    k->full = false;
    watch_stream_writable(s);
}

static inline Etcdserverpb__WatchResponse *tw_decode(const tw_sink *k, size_t i) {
    assert_true(i < k->n);
    Etcdserverpb__WatchResponse *r =
        etcdserverpb__watch_response__unpack(NULL, k->m[i].len, k->m[i].p);
    assert_non_null(r);
    return r;
}

/* ---- store + hub fixture ------------------------------------------------------------------ */

typedef struct tw_env {
    char *dir;
    kv_store *kv;
    watch_hub *hub;
    kv_arena *arena;
    watch_batch **pending; /* batches "posted" by the commit callback */
    size_t npending, cap;
    bool drop_next; /* lose the next commit (simulates a failed hand-over) */
} tw_env;

static inline void tw_commit_cb(void *ud, const kv_event *ev, size_t n, int64_t rev) {
    tw_env *e = ud;
    if (e->drop_next) {
        e->drop_next = false;
        return;
    }
    watch_batch *b = watch_batch_from_events(ev, n, rev);
    assert_non_null(b);
    if (e->npending == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 16;
        e->pending = realloc(e->pending, e->cap * sizeof(*e->pending));
        assert_non_null(e->pending);
    }
    e->pending[e->npending++] = b;
}

/* The loop's side: hand posted batches to the hub in order. */
static inline void tw_pump(tw_env *e) {
    for (size_t i = 0; i < e->npending; i++) {
        watch_hub_on_commit(e->hub, e->pending[i]);
        watch_batch_free(e->pending[i]);
    }
    e->npending = 0;
}

static inline void tw_env_open(tw_env *e, const watch_hub_opts *o) {
    memset(e, 0, sizeof(*e));
    e->dir = tu_mkdtemp("watch");
    kv_options ko = {0};
    ko.no_sync = true;
    ko.map_size = 256u << 20;
    kv_err err;
    assert_int_equal(kv_open(e->dir, &ko, &e->kv, &err), KV_OK);
    kv_set_commit_cb(e->kv, tw_commit_cb, e);
    e->hub = watch_hub_new(e->kv, o);
    assert_non_null(e->hub);
    e->arena = kv_arena_new();
    assert_non_null(e->arena);
}

static inline void tw_env_close(tw_env *e) {
    tw_pump(e);
    watch_hub_free(e->hub);
    kv_close(e->kv);
    kv_arena_free(e->arena);
    free(e->pending);
    tu_rmtree(e->dir);
}

static inline int64_t tw_put(tw_env *e, const char *key, const char *val) {
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    r.key.data = (uint8_t *)key;
    r.key.len = strlen(key);
    r.value.data = (uint8_t *)val;
    r.value.len = strlen(val);
    Etcdserverpb__PutResponse *out;
    kv_err err;
    assert_int_equal(kv_put(e->kv, &r, e->arena, &out, &err), KV_OK);
    int64_t rev = out->header->revision;
    kv_arena_reset(e->arena);
    tw_pump(e);
    return rev;
}

static inline int64_t tw_del(tw_env *e, const char *key, const char *end) {
    Etcdserverpb__DeleteRangeRequest r = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    r.key.data = (uint8_t *)key;
    r.key.len = strlen(key);
    if (end) {
        r.range_end.data = (uint8_t *)end;
        r.range_end.len = strlen(end);
    }
    Etcdserverpb__DeleteRangeResponse *out;
    kv_err err;
    assert_int_equal(kv_delete_range(e->kv, &r, e->arena, &out, &err), KV_OK);
    int64_t rev = out->header->revision;
    kv_arena_reset(e->arena);
    tw_pump(e);
    return rev;
}

/* One txn putting n keys "<prefix><i>" = value: one revision, n events. */
static inline int64_t tw_txn_puts(tw_env *e, const char *prefix, int n, const char *val) {
    Etcdserverpb__RequestOp *ops = calloc((size_t)n, sizeof(*ops));
    Etcdserverpb__RequestOp **pops = calloc((size_t)n, sizeof(*pops));
    Etcdserverpb__PutRequest *puts = calloc((size_t)n, sizeof(*puts));
    char(*keys)[64] = calloc((size_t)n, 64);
    assert_true(ops && pops && puts && keys);
    for (int i = 0; i < n; i++) {
        Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
        snprintf(keys[i], 64, "%s%04d", prefix, i);
        p.key.data = (uint8_t *)keys[i];
        p.key.len = strlen(keys[i]);
        p.value.data = (uint8_t *)val;
        p.value.len = strlen(val);
        puts[i] = p;
        Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
        op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        op.request_put = &puts[i];
        ops[i] = op;
        pops[i] = &ops[i];
    }
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_success = (size_t)n;
    t.success = pops;
    Etcdserverpb__TxnResponse *out;
    kv_err err;
    assert_int_equal(kv_txn(e->kv, &t, e->arena, &out, &err), KV_OK);
    int64_t rev = out->header->revision;
    kv_arena_reset(e->arena);
    free(ops);
    free(pops);
    free(puts);
    free(keys);
    tw_pump(e);
    return rev;
}

/* ---- requests ---------------------------------------------------------------------------- */

typedef struct tw_create {
    const char *key, *end; /* end: NULL = single key, "\0"-string via from_key */
    bool from_key;
    int64_t start, id;
    bool prev_kv, fragment, progress, noput, nodelete;
} tw_create;

static inline int tw_req_create(watch_stream *s, const tw_create *c) {
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    static uint8_t zero = 0;
    cr.key.data = (uint8_t *)c->key;
    cr.key.len = c->key ? strlen(c->key) : 0;
    if (c->from_key) {
        cr.range_end.data = &zero;
        cr.range_end.len = 1;
    } else if (c->end) {
        cr.range_end.data = (uint8_t *)c->end;
        cr.range_end.len = strlen(c->end);
    }
    cr.start_revision = c->start;
    cr.watch_id = c->id;
    cr.prev_kv = c->prev_kv;
    cr.fragment = c->fragment;
    cr.progress_notify = c->progress;
    Etcdserverpb__WatchCreateRequest__FilterType f[2];
    size_t nf = 0;
    if (c->noput) f[nf++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT;
    if (c->nodelete) f[nf++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE;
    cr.n_filters = nf;
    cr.filters = f;
    Etcdserverpb__WatchRequest r = ETCDSERVERPB__WATCH_REQUEST__INIT;
    r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    r.create_request = &cr;
    uint8_t buf[4096];
    size_t n = etcdserverpb__watch_request__get_packed_size(&r);
    assert_true(n <= sizeof(buf));
    etcdserverpb__watch_request__pack(&r, buf);
    return watch_stream_request(s, buf, n);
}

static inline int tw_req_cancel(watch_stream *s, int64_t id) {
    Etcdserverpb__WatchCancelRequest c = ETCDSERVERPB__WATCH_CANCEL_REQUEST__INIT;
    c.watch_id = id;
    Etcdserverpb__WatchRequest r = ETCDSERVERPB__WATCH_REQUEST__INIT;
    r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST;
    r.cancel_request = &c;
    uint8_t buf[64];
    size_t n = etcdserverpb__watch_request__pack(&r, buf);
    return watch_stream_request(s, buf, n);
}

static inline int tw_req_progress(watch_stream *s) {
    Etcdserverpb__WatchProgressRequest p = ETCDSERVERPB__WATCH_PROGRESS_REQUEST__INIT;
    Etcdserverpb__WatchRequest r = ETCDSERVERPB__WATCH_REQUEST__INIT;
    r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST;
    r.progress_request = &p;
    uint8_t buf[16];
    size_t n = etcdserverpb__watch_request__pack(&r, buf);
    return watch_stream_request(s, buf, n);
}

/* ---- event comparison --------------------------------------------------------------------- */

/* One event as the tests compare it: revision, type, key, value, prev value. */
typedef struct tw_ev {
    int64_t main, version;
    int type;
    char key[96];
    char val[160];
    bool has_prev;
    char prev[160];
} tw_ev;

typedef struct tw_evs {
    tw_ev *v;
    size_t n, cap;
} tw_evs;

static inline void tw_evs_push(tw_evs *l, const tw_ev *e) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        assert_non_null(l->v);
    }
    l->v[l->n++] = *e;
}

static inline void tw_copy(char *dst, size_t cap, const uint8_t *p, size_t len) {
    if (len >= cap) len = cap - 1;
    if (len) memcpy(dst, p, len);
    dst[len] = 0;
}

static inline void tw_from_pb(tw_ev *o, const Mvccpb__Event *e) {
    memset(o, 0, sizeof(*o));
    o->type = e->type;
    assert_non_null(e->kv);
    o->main = e->kv->mod_revision;
    o->version = e->kv->version;
    tw_copy(o->key, sizeof(o->key), e->kv->key.data, e->kv->key.len);
    tw_copy(o->val, sizeof(o->val), e->kv->value.data, e->kv->value.len);
    if (e->prev_kv) {
        o->has_prev = true;
        tw_copy(o->prev, sizeof(o->prev), e->prev_kv->value.data, e->prev_kv->value.len);
    }
}

typedef struct tw_ref_ctx {
    tw_evs *out;
    unsigned filters; /* 1 NOPUT, 2 NODELETE */
} tw_ref_ctx;

static inline int tw_ref_cb(void *ud, const kv_event *ev) {
    tw_ref_ctx *c = ud;
    if ((c->filters & 1) && ev->type == MVCCPB__EVENT__EVENT_TYPE__PUT) return 0;
    if ((c->filters & 2) && ev->type == MVCCPB__EVENT__EVENT_TYPE__DELETE) return 0;
    Mvccpb__KeyValue *kv = mvccpb__key_value__unpack(NULL, ev->kv_len, ev->kv);
    assert_non_null(kv);
    tw_ev o;
    memset(&o, 0, sizeof(o));
    o.type = ev->type;
    o.main = ev->main;
    o.version = kv->version;
    tw_copy(o.key, sizeof(o.key), kv->key.data, kv->key.len);
    tw_copy(o.val, sizeof(o.val), kv->value.data, kv->value.len);
    mvccpb__key_value__free_unpacked(kv, NULL);
    if (ev->prev_kv) {
        Mvccpb__KeyValue *p = mvccpb__key_value__unpack(NULL, ev->prev_kv_len, ev->prev_kv);
        assert_non_null(p);
        o.has_prev = true;
        tw_copy(o.prev, sizeof(o.prev), p->value.data, p->value.len);
        mvccpb__key_value__free_unpacked(p, NULL);
    }
    tw_evs_push(c->out, &o);
    return 0;
}

/* The reference: what a watcher of c, created with start revision `start`, must receive up to
 * revision `upto`, straight from the store's history. */
static inline void tw_reference(tw_env *e, const tw_create *c, int64_t start, int64_t upto,
                                tw_evs *out) {
    static uint8_t zero = 0;
    const uint8_t *key = c->key && *c->key ? (const uint8_t *)c->key : &zero;
    size_t kl = c->key && *c->key ? strlen(c->key) : 1;
    const uint8_t *end = c->from_key ? &zero : (const uint8_t *)c->end;
    size_t el = c->from_key ? 1 : c->end ? strlen(c->end) : 0;
    tw_ref_ctx ctx = {out, (c->noput ? 1u : 0u) | (c->nodelete ? 2u : 0u)};
    int64_t rev = start;
    while (rev <= upto) {
        int64_t next;
        kv_err err;
        assert_int_equal(kv_feed_read(e->kv, rev, upto, key, kl, end, el, c->prev_kv, 0, 0,
                                      tw_ref_cb, &ctx, &next, &err),
                         KV_OK);
        assert_true(next > rev);
        rev = next;
    }
}

static inline bool tw_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v) {
    *v = 0;
    for (int sh = 0; *i < len && sh < 64; sh += 7) {
        uint8_t b = p[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << sh;
        if (!(b & 0x80)) return true;
    }
    return false;
}

/* The watch_id of an encoded WatchResponse without decoding it all (0 when absent). */
static inline int64_t tw_peek_id(const uint8_t *p, size_t len) {
    size_t i = 0;
    uint64_t tag, v;
    while (i < len && tw_varint(p, len, &i, &tag)) {
        if ((tag & 7) == 0) {
            if (!tw_varint(p, len, &i, &v)) break;
            if ((tag >> 3) == 2) return (int64_t)v;
        } else if ((tag & 7) == 2) {
            if (!tw_varint(p, len, &i, &v) || v > len - i) break;
            i += (size_t)v;
        } else {
            break;
        }
        if ((tag >> 3) > 2) break; /* fields come in order: watch_id would have been seen */
    }
    return 0;
}

/* Collects the events the sink received for watch `id`, checking the per-response guarantees:
 * strictly increasing revisions across responses (no duplicate, no split revision unless the
 * response is a fragment), every response non-empty. */
static inline void tw_collect(const tw_sink *k, int64_t id, tw_evs *out) {
    int64_t last_main = 0;
    bool in_fragment = false;
    for (size_t i = 0; i < k->n; i++) {
        if (tw_peek_id(k->m[i].p, k->m[i].len) != id) continue;
        Etcdserverpb__WatchResponse *r = tw_decode(k, i);
        if (r->watch_id != id || (!r->n_events && !r->fragment)) {
            etcdserverpb__watch_response__free_unpacked(r, NULL);
            continue;
        }
        assert_true(r->n_events > 0);
        for (size_t j = 0; j < r->n_events; j++) {
            tw_ev o;
            tw_from_pb(&o, r->events[j]);
            if (j == 0 && !in_fragment) {
                if (o.main <= last_main) {
                    fprintf(stderr, "watch %lld: revision %lld after %lld\n", (long long)id,
                            (long long)o.main, (long long)last_main);
                }
                assert_true(o.main > last_main); /* never split, never duplicated */
            } else {
                assert_true(o.main >= last_main);
            }
            last_main = o.main;
            tw_evs_push(out, &o);
        }
        in_fragment = r->fragment;
        etcdserverpb__watch_response__free_unpacked(r, NULL);
    }
    assert_false(in_fragment);
}

static inline void tw_assert_same(const tw_evs *got, const tw_evs *want) {
    if (got->n != want->n) fprintf(stderr, "got %zu events, want %zu\n", got->n, want->n);
    assert_int_equal(got->n, want->n);
    for (size_t i = 0; i < got->n; i++) {
        const tw_ev *a = &got->v[i], *b = &want->v[i];
        if (a->main != b->main || strcmp(a->key, b->key))
            fprintf(stderr, "event %zu: got %lld %s want %lld %s\n", i, (long long)a->main, a->key,
                    (long long)b->main, b->key);
        assert_int_equal(a->main, b->main);
        assert_int_equal(a->type, b->type);
        assert_string_equal(a->key, b->key);
        assert_string_equal(a->val, b->val);
        assert_int_equal(a->version, b->version);
        assert_int_equal(a->has_prev, b->has_prev);
        assert_string_equal(a->prev, b->prev);
    }
}

#endif
