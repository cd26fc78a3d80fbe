/* watch_hub.c — the watchable store: commit fan-out to synced watchers, catch-up of unsynced
 * watchers from history, progress notification, stats.
 *
 * Key decisions:
 * - The hub revision (h->rev) is the revision through which every synced watcher has been
 *   served. Unsynced watchers read kv_feed_read up to exactly h->rev and then rejoin the synced
 *   group, so the two paths meet with no gap and no overlap (one thread: no race between them).
 * - A synced watcher whose stream is held back when events arrive is moved to the unsynced
 *   group (etcd's victim) instead of getting a queue: the hub never buffers per watcher, and a
 *   held stream receives at most the one response that pushed it over its high-water mark.
 * - Catch-up reads one bounded batch for up to max_watchers_per_sync watchers at once (from the
 *   smallest next revision, over the union of their ranges), like etcd's syncWatchers: 1,000
 *   victims of one stream cost one read, not 1,000.
 * - A watcher's response reuses its bucket's encoded events: a slice of the batch when the
 *   matches are contiguous (the usual case), otherwise built once per bucket and variant
 *   (prev_kv, filters, first revision) in a scratch arena reset at each delivery.
 * - Compaction is found lazily: a catch-up read below the compaction point fails, then the hub
 *   reads the compaction revision and cancels the watchers below it (etcd's compacted response).
 */
#include <stdlib.h>
#include <string.h>

#include "watch_internal.h"

#define DEF_PROGRESS_MS 600000
#define DEF_MAX_RESP    (1536u * 1024u)
#define DEF_MAX_REQ     (2048u * 1024u)
#define DEF_FEED_EVENTS 1000
#define DEF_FEED_BYTES  (1024u * 1024u)
#define DEF_PER_SYNC    512
#define BODIES_MAX      (4u * 1024u * 1024u) /* arena reset threshold during one delivery */
#define SCRATCH_KEEP    (1024u * 1024u)      /* scratch kept between deliveries */

const char *watch_code_message(watch_code code) {
    switch (code) {
    case WATCH_OK:
        return "ok";
    case WATCH_ERR_MALFORMED:
        return "watch: malformed WatchRequest";
    case WATCH_ERR_TOO_LARGE:
        return "etcdserver: request is too large";
    case WATCH_ERR_NOMEM:
        return "watch: out of memory";
    }
    return "watch: unknown error";
}

watch_hub *watch_hub_new(kv_store *kv, const watch_hub_opts *opts) {
    watch_hub *h = calloc(1, sizeof(*h));
    if (!h) return NULL;
    h->kv = kv;
    if (opts) h->o = *opts;
    if (h->o.progress_interval_ms <= 0) h->o.progress_interval_ms = DEF_PROGRESS_MS;
    if (!h->o.max_response_bytes) h->o.max_response_bytes = DEF_MAX_RESP;
    if (!h->o.max_request_bytes) h->o.max_request_bytes = DEF_MAX_REQ;
    if (!h->o.feed_batch_events) h->o.feed_batch_events = DEF_FEED_EVENTS;
    if (!h->o.feed_batch_bytes) h->o.feed_batch_bytes = DEF_FEED_BYTES;
    if (!h->o.max_watchers_per_sync) h->o.max_watchers_per_sync = DEF_PER_SYNC;
    if (!h->o.sync_rounds_per_call) h->o.sync_rounds_per_call = 1;
    Etcdserverpb__ResponseHeader hd = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    kv_fill_header(kv, &hd, 0);
    h->cluster_id = hd.cluster_id;
    h->member_id = hd.member_id;
    h->raft_term = hd.raft_term;
    kv_status st;
    kv_status_get(kv, &st);
    h->rev = st.revision;
    h->stats.revision = h->rev;
    return h;
}

void watch_hub_free(watch_hub *h) {
    if (!h) return;
    while (h->streams)
        watch_stream_free(h->streams);
    wg_free_all(h);
    wb_release(&h->feed);
    wbuf_free(&h->bodies);
    wbuf_free(&h->msg);
    free(h->chosen);
    free(h->touched);
    free(h->sel);
    free(h);
}

int64_t watch_hub_revision(const watch_hub *h) {
    return h->rev;
}

void hub_account(watch_hub *h) {
    size_t n = wb_capacity(&h->feed) + h->bodies.cap + h->msg.cap + h->sel_cap * sizeof(*h->sel);
    h->stats.buffered_bytes = n;
    if (n > h->stats.buffered_peak) h->stats.buffered_peak = n;
}

void watch_hub_stats(const watch_hub *h, watch_stats *out) {
    *out = h->stats;
    out->revision = h->rev;
}

/* ---- groups ---------------------------------------------------------------------------------- */

void hub_stream_requeue(watch_hub *h, watch_stream *s) {
    if (s->queued || !s->nunsynced || s->held || s->dead) return;
    s->queued = true;
    s->qnext = NULL;
    s->qprev = h->qtail;
    if (h->qtail)
        h->qtail->qnext = s;
    else
        h->qhead = s;
    h->qtail = s;
}

void hub_stream_dequeue(watch_hub *h, watch_stream *s) {
    if (!s->queued) return;
    if (s->qprev)
        s->qprev->qnext = s->qnext;
    else
        h->qhead = s->qnext;
    if (s->qnext)
        s->qnext->qprev = s->qprev;
    else
        h->qtail = s->qprev;
    s->qprev = s->qnext = NULL;
    s->queued = false;
}

void hub_watcher_unsync(watch_hub *h, watcher *w, int64_t next_rev) {
    watch_stream *s = w->st;
    wg_synced_del(w->b, w);
    w->state = W_UNSYNCED;
    if (next_rev > w->next_rev) w->next_rev = next_rev;
    w->unext = NULL;
    w->uprev = s->utail;
    if (s->utail)
        s->utail->unext = w;
    else
        s->uhead = w;
    s->utail = w;
    s->nunsynced++;
    h->stats.slow_watchers++;
    hub_stream_requeue(h, s);
}

static void unsynced_unlink(watch_hub *h, watcher *w) {
    watch_stream *s = w->st;
    if (w->uprev)
        w->uprev->unext = w->unext;
    else
        s->uhead = w->unext;
    if (w->unext)
        w->unext->uprev = w->uprev;
    else
        s->utail = w->uprev;
    w->uprev = w->unext = NULL;
    s->nunsynced--;
    h->stats.slow_watchers--;
    if (!s->nunsynced) hub_stream_dequeue(h, s);
}

void hub_watcher_sync(watch_hub *h, watcher *w) {
    unsynced_unlink(h, w);
    w->state = W_SYNCED;
    wg_synced_add(w->b, w);
}

/* Moves every synced watcher to the unsynced group: used when commits were lost. */
static void unsync_all(watch_hub *h, int64_t next_rev) {
    for (size_t i = 0; i < h->bcap; i++)
        for (wbucket *b = h->btab[i]; b; b = b->hnext)
            while (b->synced)
                hub_watcher_unsync(h, b->synced, next_rev);
}

void hub_stream_maybe_progress(watch_hub *h, watch_stream *s) {
    if (!s->deferred_progress || s->nunsynced) return;
    s->deferred_progress = false;
    wr_send_control(s, h->rev, WATCH_ID_NONE, false, false, 0, NULL);
}

/* ---- delivery ------------------------------------------------------------------------------ */

static void begin_delivery(watch_hub *h, int64_t header_rev) {
    h->gen++;
    h->bgen++;
    h->bodies.len = 0;
    wr_set_header(h, header_rev);
}

/* A huge batch (a delete of many keys) must not leave large match lists behind. */
static void trim_match(wbucket *b) {
    if (b->match_cap <= 4096) return;
    free(b->match);
    b->match = NULL;
    b->match_cap = b->nmatch = 0;
    b->gen = 0;
    b->cache.gen = 0;
}

static void end_delivery(watch_hub *h) {
    for (size_t i = 0; i < h->nhits; i++)
        trim_match(h->hits[i]);
    h->nhits = 0;
    hub_account(h);
    wbuf_trim(&h->bodies, SCRATCH_KEEP);
    wbuf_trim(&h->msg, SCRATCH_KEEP);
}

static bool filtered(const watcher *w, const wb_event *e) {
    if ((w->filters & WF_NOPUT) && e->type == MVCCPB__EVENT__EVENT_TYPE__PUT) return true;
    if ((w->filters & WF_NODELETE) && e->type == MVCCPB__EVENT__EVENT_TYPE__DELETE) return true;
    return false;
}

static void ev_slice(const watch_batch *b, size_t i, bool prev, const uint8_t **p, size_t *len) {
    const wb_event *e = &b->ev[i];
    if (prev) {
        *p = b->prev.p + e->poff;
        *len = e->plen;
    } else {
        *p = b->plain.p + e->off;
        *len = e->len;
    }
}

/* The bucket's encoded events for this watcher's variant, from cache or built now. Returns 0,
 * or -1 on OOM. */
static int body_get(watch_hub *h, const watcher *w, wbucket *bk, const watch_batch *b, size_t j0,
                    bool prev, const uint8_t **p, size_t *len, size_t *nev) {
    wbody_cache *c = &bk->cache;
    unsigned sig = w->filters | (prev ? 4u : 0u);
    if (!(c->gen == h->gen && c->sig == sig && c->j0 == j0 &&
          (c->kind != 2 || c->bgen == h->bgen))) {
        c->gen = h->gen;
        c->sig = sig;
        c->j0 = j0;
        if (!w->filters && bk->contig) {
            const wb_event *f = &b->ev[bk->match[j0]], *l = &b->ev[bk->match[bk->nmatch - 1]];
            c->kind = prev ? 1 : 0;
            c->off = prev ? f->poff : f->off;
            c->len = prev ? l->poff + l->plen - f->poff : l->off + l->len - f->off;
            c->nev = bk->nmatch - j0;
        } else {
            if (h->bodies.len > BODIES_MAX) {
                h->bodies.len = 0;
                h->bgen++;
            }
            c->kind = 2;
            c->bgen = h->bgen;
            c->off = h->bodies.len;
            c->nev = 0;
            for (size_t j = j0; j < bk->nmatch; j++) {
                if (filtered(w, &b->ev[bk->match[j]])) continue;
                const uint8_t *ep;
                size_t el;
                ev_slice(b, bk->match[j], prev, &ep, &el);
                if (wbuf_put(&h->bodies, ep, el)) {
                    c->gen = 0;
                    return -1;
                }
                c->nev++;
            }
            c->len = h->bodies.len - c->off;
        }
    }
    const uint8_t *base = c->kind == 0 ? b->plain.p : c->kind == 1 ? b->prev.p : h->bodies.p;
    *p = base ? base + c->off : NULL; /* NULL: nothing was built (all filtered) */
    *len = c->len;
    *nev = c->nev;
    return 0;
}

/* etcd's sendFragments: pieces below max_response_bytes (at least one event each), every piece
 * but the last marked fragment=true. */
static bool send_fragments(watch_hub *h, watcher *w, wbucket *bk, const watch_batch *b, size_t j0,
                           bool prev, size_t head_len) {
    size_t n = 0;
    for (size_t j = j0; j < bk->nmatch; j++) {
        if (filtered(w, &b->ev[bk->match[j]])) continue;
        if (n == h->sel_cap) {
            size_t cap = h->sel_cap ? h->sel_cap * 2 : 64;
            void *x = realloc(h->sel, cap * sizeof(*h->sel));
            if (!x) return false;
            h->sel = x;
            h->sel_cap = cap;
        }
        ev_slice(b, bk->match[j], prev, &h->sel[n].p, &h->sel[n].len);
        n++;
    }
    watch_stream *s = w->st;
    size_t limit = h->o.max_response_bytes, i = 0;
    uint8_t head[80];
    memcpy(head, h->hdr, h->hdr_len);
    memcpy(head + h->hdr_len, w->idenc, w->idenc_len);
    while (i < n) {
        size_t size = head_len + 2, k = i;
        while (k < n && (k == i || size + h->sel[k].len < limit))
            size += h->sel[k++].len;
        bool last = k == n;
        size_t hl = head_len;
        if (!last) head[hl++] = WR_FRAGMENT, head[hl++] = 1;
        h->bodies.len = 0; /* the cache is not used past this point of the delivery */
        h->bgen++;
        for (size_t j = i; j < k; j++)
            if (wbuf_put(&h->bodies, h->sel[j].p, h->sel[j].len)) return false;
        if (!wr_send(s, head, hl, h->bodies.p, h->bodies.len)) return false;
        /* The pieces of one response belong together: finish it even over the high-water
         * mark, or a catch-up would resend the pieces already out. */
        i = k;
    }
    return true;
}

/* Delivers the bucket's events of `b` at or after w->next_rev to w. Returns 0 when there was
 * nothing to send, 1 when sent, -1 when the stream cannot take it (held back or gone). */
static int deliver(watch_hub *h, watcher *w, wbucket *bk, const watch_batch *b) {
    size_t lo = 0, hi = bk->nmatch;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->ev[bk->match[mid]].main < w->next_rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t j0 = lo;
    if (j0 == bk->nmatch) return 0;
    bool prev = w->prev_kv && b->has_prev;
    const uint8_t *body;
    size_t len, nev;
    if (body_get(h, w, bk, b, j0, prev, &body, &len, &nev)) return -1;
    if (!nev) return 0; /* all filtered out: etcd sends nothing */
    watch_stream *s = w->st;
    if (s->held || s->dead) return -1;
    size_t head_len = h->hdr_len + w->idenc_len;
    bool ok;
    if (w->fragment && head_len + len >= h->o.max_response_bytes && nev >= 2) {
        ok = send_fragments(h, w, bk, b, j0, prev, head_len);
    } else {
        uint8_t head[80];
        memcpy(head, h->hdr, h->hdr_len);
        memcpy(head + h->hdr_len, w->idenc, w->idenc_len);
        ok = wr_send(s, head, head_len, body, len);
    }
    if (!ok) return -1;
    s->events += nev;
    h->stats.events_total += nev;
    w->progress_idle = false;
    return 1;
}

void watch_hub_on_commit(watch_hub *h, const watch_batch *b) {
    if (!b) {
        watch_hub_on_lost_commit(h);
        return;
    }
    if (!b->n || b->last <= h->rev) return;
    int64_t prev = h->rev;
    int64_t rev = b->revision > b->last ? b->revision : b->last;
    if (b->first > prev + 1) {
        h->stats.lost_commits++;
        h->rev = rev;
        unsync_all(h, prev + 1);
        hub_auto_sync(h);
        return;
    }
    size_t from = 0;
    while (from < b->n && b->ev[from].main <= prev)
        from++;
    h->rev = rev;
    begin_delivery(h, rev);
    if (wg_match_batch(h, b, from)) {
        unsync_all(h, prev + 1); /* cannot tell who matched: all catch up from history */
    } else {
        for (size_t i = 0; i < h->nhits; i++) {
            wbucket *bk = h->hits[i];
            for (watcher *w = bk->synced, *nx; w; w = nx) {
                nx = w->bnext;
                if (deliver(h, w, bk, b) < 0) {
                    h->stats.victims_total++;
                    hub_watcher_unsync(h, w, prev + 1);
                }
            }
        }
    }
    end_delivery(h);
    hub_auto_sync(h);
}

void watch_hub_on_lost_commit(watch_hub *h) {
    kv_status st;
    kv_status_get(h->kv, &st);
    h->stats.lost_commits++;
    if (st.revision <= h->rev) return;
    int64_t prev = h->rev;
    h->rev = st.revision;
    unsync_all(h, prev + 1);
    hub_auto_sync(h);
}

/* ---- catch-up ---------------------------------------------------------------------------- */

typedef struct feed_ctx {
    watch_hub *h;
    bool prev;
} feed_ctx;

static int feed_cb(void *ud, const kv_event *ev) {
    feed_ctx *c = ud;
    return wb_add(&c->h->feed, ev, c->prev) ? 1 : 0;
}

static void watcher_compacted(watch_hub *h, watcher *w, int64_t compact_rev) {
    unsynced_unlink(h, w);
    w->state = W_COMPACTED;
    h->stats.compacted_total++;
    /* etcd 3.4: header revision 0, compact_revision set, canceled; the id stays taken. */
    wr_send_control(w->st, 0, w->id, false, true, compact_rev, NULL);
}

/* Sizes the round's scratch arrays for max_watchers_per_sync entries. */
static int round_arrays(watch_hub *h, size_t max) {
    if (h->chosen_cap < max) {
        watcher **c = realloc(h->chosen, max * sizeof(*c));
        if (!c) return -1;
        h->chosen = c;
        h->chosen_cap = max;
    }
    if (h->touched_cap < max) {
        watch_stream **t = realloc(h->touched, max * sizeof(*t));
        if (!t) return -1;
        h->touched = t;
        h->touched_cap = max;
    }
    return 0;
}

static int bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

/* One catch-up round. Returns 1 when it did something, 0 when nothing was waiting, -1 when
 * the read failed (retried on a later call). */
static int sync_round(watch_hub *h) {
    size_t max = h->o.max_watchers_per_sync, n = 0, nt = 0;
    if (round_arrays(h, max)) return -1;
    for (watch_stream *s = h->qhead; s && n < max; s = s->qnext) {
        h->touched[nt++] = s;
        for (watcher *w = s->uhead; w && n < max; w = w->unext)
            h->chosen[n++] = w;
    }
    if (!n) return 0;

    int64_t min_rev = INT64_MAX;
    const uint8_t *lo = NULL, *hi = NULL;
    size_t lo_len = 0, hi_len = 0;
    bool to_end = false, want_prev = false;
    for (size_t i = 0; i < n; i++) {
        watcher *w = h->chosen[i];
        wbucket *b = w->b;
        if (w->next_rev < min_rev) min_rev = w->next_rev;
        if (!lo || bytes_cmp(b->key, b->key_len, lo, lo_len) < 0) lo = b->key, lo_len = b->key_len;
        if (b->from_key)
            to_end = true;
        else if (!hi || bytes_cmp(b->end, b->end_len, hi, hi_len) > 0)
            hi = b->end, hi_len = b->end_len;
        want_prev |= w->prev_kv;
    }
    int rc = 1;
    if (min_rev > h->rev) {
        for (size_t i = 0; i < n; i++)
            hub_watcher_sync(h, h->chosen[i]);
        goto done;
    }
    static const uint8_t zero = 0;
    if (to_end) hi = &zero, hi_len = 1;
    wb_reset(&h->feed);
    feed_ctx fc = {h, want_prev};
    int64_t next = 0;
    kv_err err;
    int code =
        kv_feed_read(h->kv, min_rev, h->rev, lo, lo_len, hi, hi_len, want_prev,
                     h->o.feed_batch_events, h->o.feed_batch_bytes, feed_cb, &fc, &next, &err);
    h->stats.feed_reads++;
    if (code == KV_ERR_COMPACTED) {
        kv_status st;
        kv_status_get(h->kv, &st);
        size_t cut = 0;
        for (size_t i = 0; i < n; i++) {
            if (h->chosen[i]->next_rev < st.compact_revision) {
                watcher_compacted(h, h->chosen[i], st.compact_revision);
                cut++;
            }
        }
        if (!cut) {
            h->stats.feed_errors++;
            rc = -1;
        }
        goto done;
    }
    if (code) {
        h->stats.feed_errors++;
        rc = -1;
        goto done;
    }
    h->feed.revision = h->rev;
    begin_delivery(h, h->rev);
    for (size_t i = 0; i < n; i++) {
        watcher *w = h->chosen[i];
        int r = 0;
        if (h->feed.n) {
            if (wg_match_bucket(h, w->b, &h->feed)) {
                rc = -1;
                break;
            }
            r = deliver(h, w, w->b, &h->feed);
        }
        if (r >= 0 && next > w->next_rev) w->next_rev = next;
        if (w->next_rev > h->rev) hub_watcher_sync(h, w);
    }
    for (size_t i = 0; i < n; i++)
        trim_match(h->chosen[i]->b);
    end_delivery(h);
done:
    /* Round-robin: the streams served go to the back of the queue. */
    for (size_t i = 0; i < nt; i++) {
        watch_stream *s = h->touched[i];
        hub_stream_dequeue(h, s);
        hub_stream_requeue(h, s);
        hub_stream_maybe_progress(h, s);
    }
    if (wb_capacity(&h->feed) > 4 * h->o.feed_batch_bytes + SCRATCH_KEEP) wb_release(&h->feed);
    hub_account(h);
    return rc;
}

bool watch_hub_pending(const watch_hub *h) {
    return h->qhead != NULL;
}

bool watch_hub_sync(watch_hub *h, size_t max_rounds) {
    for (size_t i = 0; i < max_rounds; i++) {
        int r = sync_round(h);
        if (r <= 0) return false;
    }
    return h->qhead != NULL;
}

void hub_auto_sync(watch_hub *h) {
    if (h->o.sync_rounds_per_call > 0) watch_hub_sync(h, (size_t)h->o.sync_rounds_per_call);
}

/* ---- progress notification ------------------------------------------------------------------ */

void watch_hub_tick(watch_hub *h, int64_t now_ms) {
    if (!h->next_progress_ms) {
        h->next_progress_ms = now_ms + h->o.progress_interval_ms;
    } else if (now_ms >= h->next_progress_ms) {
        h->next_progress_ms = now_ms + h->o.progress_interval_ms;
        for (watch_stream *s = h->streams; s; s = s->next) {
            for (watcher *w = s->all; w; w = w->snext) {
                if (!w->progress_notify) continue;
                /* etcd: only synced watchers, and not when events went out since last tick. */
                if (w->progress_idle && w->state == W_SYNCED && !s->held && !s->dead)
                    wr_send_control(s, h->rev, w->id, false, false, 0, NULL);
                w->progress_idle = true;
            }
        }
    }
    hub_auto_sync(h);
}
