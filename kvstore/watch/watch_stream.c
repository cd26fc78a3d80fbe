/* watch_stream.c — one Watch bidi stream: WatchRequest decoding and validation, watch ids,
 * create / cancel / progress as etcd 3.4's v3rpc watch server and mvcc watchStream do them.
 *
 * Key decisions:
 * - etcd's answers, not errors: a duplicate watch_id or an empty range gets a response with
 *   created=true, canceled=true, watch_id=-1 and etcd's cancel_reason; a cancel of an unknown
 *   id gets nothing; an unset request is ignored. Only bytes that are not a WatchRequest (or
 *   are over the size limit) are an error value, for the server to end the stream.
 * - watch_id 0 asks for an id (etcd's AutoWatchID): the stream's next free id, from 0.
 * - WatchProgressRequest follows etcd >= 3.4.24 (RequestProgressAll): answered at once when
 *   every watcher of the stream is synced, otherwise as soon as they all are — so its
 *   header.revision always means "you have every event up to here". With no watchers it is
 *   answered at once (as 3.4.23 does).
 * - A watcher canceled by compaction keeps its id until the client cancels it (as in etcd).
 */
#include <stdlib.h>
#include <string.h>

#include "watch_internal.h"

/* ---- id table ---------------------------------------------------------------------------- */

static size_t id_slot(const watch_stream *s, int64_t id) {
    return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> 17) & (s->idcap - 1);
}

static watcher *id_find(const watch_stream *s, int64_t id) {
    if (!s->idcap) return NULL;
    for (watcher *w = s->idtab[id_slot(s, id)]; w; w = w->idnext)
        if (w->id == id) return w;
    return NULL;
}

static int id_insert(watch_stream *s, watcher *w) {
    if ((s->nwatchers + 1) * 4 > s->idcap * 3) {
        size_t cap = s->idcap ? s->idcap * 2 : 16;
        watcher **t = calloc(cap, sizeof(*t));
        if (!t) return -1;
        watcher **old = s->idtab;
        size_t ocap = s->idcap;
        s->idtab = t;
        s->idcap = cap;
        for (size_t i = 0; i < ocap; i++) {
            for (watcher *x = old[i], *nx; x; x = nx) {
                nx = x->idnext;
                size_t j = id_slot(s, x->id);
                x->idnext = t[j];
                t[j] = x;
            }
        }
        free(old);
    }
    size_t j = id_slot(s, w->id);
    w->idnext = s->idtab[j];
    s->idtab[j] = w;
    return 0;
}

static void id_remove(watch_stream *s, watcher *w) {
    for (watcher **pp = &s->idtab[id_slot(s, w->id)]; *pp; pp = &(*pp)->idnext) {
        if (*pp == w) {
            *pp = w->idnext;
            return;
        }
    }
}

/* ---- streams ------------------------------------------------------------------------------ */

watch_stream *watch_stream_new(watch_hub *h, const watch_sink *sink, void *ud) {
    if (!sink || !sink->send) return NULL;
    watch_stream *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->h = h;
    s->sink = *sink;
    s->ud = ud;
    s->next = h->streams;
    if (h->streams) h->streams->prev = s;
    h->streams = s;
    h->stats.streams++;
    return s;
}

/* Unlinks a watcher from every group and list and frees it. */
static void watcher_remove(watch_stream *s, watcher *w) {
    watch_hub *h = s->h;
    if (w->state == W_SYNCED) {
        wg_synced_del(w->b, w);
    } else if (w->state == W_UNSYNCED) {
        if (w->uprev)
            w->uprev->unext = w->unext;
        else
            s->uhead = w->unext;
        if (w->unext)
            w->unext->uprev = w->uprev;
        else
            s->utail = w->uprev;
        s->nunsynced--;
        h->stats.slow_watchers--;
        if (!s->nunsynced) hub_stream_dequeue(h, s);
    }
    id_remove(s, w);
    if (w->sprev)
        w->sprev->snext = w->snext;
    else
        s->all = w->snext;
    if (w->snext) w->snext->sprev = w->sprev;
    s->nwatchers--;
    h->stats.watchers--;
    wg_bucket_put(h, w->b);
    free(w);
}

void watch_stream_free(watch_stream *s) {
    if (!s) return;
    watch_hub *h = s->h;
    while (s->all)
        watcher_remove(s, s->all);
    hub_stream_dequeue(h, s);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    h->stats.streams--;
    free(s->idtab);
    free(s);
}

void watch_stream_stats_get(const watch_stream *s, watch_stream_stats *out) {
    out->watchers = s->nwatchers;
    out->unsynced = s->nunsynced;
    out->held_back = s->held;
    out->responses = s->responses;
    out->bytes = s->bytes;
    out->events = s->events;
}

void watch_stream_writable(watch_stream *s) {
    if (!s->held) return;
    s->held = false;
    hub_stream_requeue(s->h, s);
    hub_auto_sync(s->h);
}

/* ---- requests ------------------------------------------------------------------------------- */

static int bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

int watch_stream_create(watch_stream *s, const Etcdserverpb__WatchCreateRequest *req,
                        int64_t *id_out) {
    watch_hub *h = s->h;
    if (id_out) *id_out = WATCH_ID_NONE;
    static const uint8_t smallest = 0; /* etcd: an empty key means "\0", the smallest key */
    const uint8_t *key = req->key.len ? req->key.data : &smallest;
    size_t key_len = req->key.len ? req->key.len : 1;
    const uint8_t *end = req->range_end.data;
    size_t end_len = req->range_end.len;
    bool from_key = end_len == 1 && end[0] == 0;
    if (from_key) end_len = 0;
    int64_t wsrev = h->rev;
    if (!from_key && end_len && bytes_cmp(key, key_len, end, end_len) >= 0) {
        wr_send_control(s, wsrev, WATCH_ID_NONE, true, true, 0, WATCH_REASON_EMPTY_RANGE);
        return WATCH_OK;
    }
    int64_t id = req->watch_id;
    if (id == 0) {
        while (id_find(s, s->next_id))
            s->next_id++;
        id = s->next_id++;
    } else if (id_find(s, id)) {
        wr_send_control(s, wsrev, WATCH_ID_NONE, true, true, 0, WATCH_REASON_DUPLICATE_ID);
        return WATCH_OK;
    }
    watcher *w = calloc(1, sizeof(*w));
    if (!w) return WATCH_ERR_NOMEM;
    w->b = wg_bucket_get(h, key, key_len, end, end_len, from_key);
    if (!w->b) {
        free(w);
        return WATCH_ERR_NOMEM;
    }
    w->id = id;
    w->st = s;
    if (id_insert(s, w)) {
        wg_bucket_put(h, w->b);
        free(w);
        return WATCH_ERR_NOMEM;
    }
    wr_encode_id(w);
    for (size_t i = 0; i < req->n_filters; i++) {
        if (req->filters[i] == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT)
            w->filters |= WF_NOPUT;
        else if (req->filters[i] == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE)
            w->filters |= WF_NODELETE;
    }
    w->prev_kv = req->prev_kv;
    w->fragment = req->fragment;
    w->progress_notify = req->progress_notify;
    w->progress_idle = true;
    w->snext = s->all;
    if (s->all) s->all->sprev = w;
    s->all = w;
    s->nwatchers++;
    h->stats.watchers++;
    if (id_out) *id_out = id;

    wr_send_control(s, wsrev, id, true, false, 0, NULL);

    /* etcd: start 0 means "from now"; a start past the current revision waits for it; any
     * other start catches up from history first. */
    int64_t start = req->start_revision ? req->start_revision : wsrev + 1;
    if (start > h->rev) {
        w->state = W_SYNCED;
        w->next_rev = start;
        wg_synced_add(w->b, w);
    } else {
        /* Joins the unsynced group through the same path as a held-back watcher. */
        w->state = W_SYNCED;
        w->next_rev = start;
        wg_synced_add(w->b, w);
        hub_watcher_unsync(h, w, start);
        hub_auto_sync(h);
    }
    return WATCH_OK;
}

int watch_stream_cancel(watch_stream *s, int64_t watch_id) {
    watcher *w = id_find(s, watch_id);
    if (!w) return WATCH_OK; /* etcd answers nothing */
    watcher_remove(s, w);
    wr_send_control(s, s->h->rev, watch_id, false, true, 0, NULL);
    hub_stream_maybe_progress(s->h, s);
    return WATCH_OK;
}

int watch_stream_progress(watch_stream *s) {
    if (s->deferred_progress) return WATCH_OK; /* one outstanding request answers both */
    s->deferred_progress = true;
    hub_stream_maybe_progress(s->h, s);
    return WATCH_OK;
}

int watch_stream_request(watch_stream *s, const uint8_t *msg, size_t len) {
    if (len > s->h->o.max_request_bytes) return WATCH_ERR_TOO_LARGE;
    Etcdserverpb__WatchRequest *r = etcdserverpb__watch_request__unpack(NULL, len, msg);
    if (!r) return WATCH_ERR_MALFORMED;
    int rc = WATCH_OK;
    switch (r->request_union_case) {
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST:
        if (r->create_request) rc = watch_stream_create(s, r->create_request, NULL);
        break;
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST:
        if (r->cancel_request) rc = watch_stream_cancel(s, r->cancel_request->watch_id);
        break;
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST:
        if (r->progress_request) rc = watch_stream_progress(s);
        break;
    default:
        break; /* etcd ignores requests it does not know */
    }
    etcdserverpb__watch_request__free_unpacked(r, NULL);
    return rc;
}
