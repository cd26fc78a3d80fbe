/* watch_internal.h — the watch hub's shared structures: byte buffers and protobuf writing,
 * encoded batches, key-range buckets (the watcher groups' index), watchers and streams.
 *
 * Key decisions:
 * - Watchers of the same [key, range_end) share one bucket: the commit path finds buckets for a
 *   key (a hash for single keys, a sorted array for ranges, which are few in practice: many
 *   watchers of one prefix are one bucket), computes the bucket's matching events once per
 *   batch, and every watcher of the bucket reuses that selection and its encoded bytes.
 * - Intrusive doubly linked lists: moving a watcher between groups is O(1) and allocation-free.
 * - Everything here runs on the hub's thread, except the batch builder (any thread).
 */
#ifndef RELIST_WATCH_INTERNAL_H
#define RELIST_WATCH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "watch.h"

/* ---- growable byte buffer and protobuf wire helpers (watch_encode.c) ------------------------ */

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
} wbuf;

int wbuf_reserve(wbuf *b, size_t extra); /* 0 or -1 on OOM */
int wbuf_put(wbuf *b, const void *p, size_t n);
void wbuf_free(wbuf *b);
/* Drops the contents; releases the memory when it grew past `keep` bytes. */
void wbuf_trim(wbuf *b, size_t keep);

#include "../../proto/pb_wire.h" /* pb_varint, pb_varint_len */

/* WatchResponse field tags. */
#define WR_HEADER   0x0a /* 1, length-delimited */
#define WR_WATCH_ID 0x10 /* 2, varint */
#define WR_CREATED  0x18
#define WR_CANCELED 0x20
#define WR_COMPACT  0x28
#define WR_REASON   0x32
#define WR_FRAGMENT 0x38
#define WR_EVENTS   0x5a /* 11, length-delimited */

/* ---- encoded batches ---------------------------------------------------------------------- */

typedef struct wb_event {
    int64_t main;
    int type;                /* MVCCPB__EVENT__EVENT_TYPE__PUT / __DELETE */
    size_t key_off, key_len; /* in keys */
    size_t off, len;         /* WatchResponse field 11 bytes without prev_kv, in plain */
    size_t poff, plen;       /* the same with prev_kv, in prev (when has_prev) */
} wb_event;

struct watch_batch {
    int64_t revision;    /* store revision after the commit (or the hub's, for a feed read) */
    int64_t first, last; /* main revisions of the first and last event */
    wb_event *ev;
    size_t n, cap;
    wbuf keys, plain, prev;
    bool has_prev; /* some event carries prev_kv: prev holds every event's with-prev bytes */
};

void wb_reset(watch_batch *b);
int wb_add(watch_batch *b, const kv_event *e, bool with_prev);
void wb_release(watch_batch *b); /* frees buffers, not the struct */
size_t wb_capacity(const watch_batch *b);
static inline const uint8_t *wb_key(const watch_batch *b, size_t i) {
    return b->keys.p + b->ev[i].key_off;
}

/* ---- watchers, buckets, streams --------------------------------------------------------- */

typedef struct watcher watcher;
typedef struct wbucket wbucket;

typedef enum wstate { W_SYNCED, W_UNSYNCED, W_COMPACTED } wstate;

#define WF_NOPUT    1u
#define WF_NODELETE 2u

struct watcher {
    int64_t id;
    uint8_t idenc[11]; /* encoded watch_id field (empty for id 0) */
    uint8_t idenc_len;
    watch_stream *st;
    wbucket *b;
    int64_t next_rev; /* first revision not yet delivered (synced: minimum revision wanted) */
    wstate state;
    unsigned filters;
    bool prev_kv, fragment, progress_notify;
    bool progress_idle;     /* no events since the last progress tick (etcd elides one notify) */
    watcher *bprev, *bnext; /* bucket's synced list */
    watcher *uprev, *unext; /* stream's unsynced list */
    watcher *sprev, *snext; /* stream's list of all its watchers */
    watcher *idnext;        /* stream's id hash chain */
};

/* Cached encoded events of one bucket for the current delivery (shared by its watchers). */
typedef struct wbody_cache {
    uint64_t gen, bgen;
    unsigned sig;
    size_t j0;
    int kind; /* 0 slice of batch plain, 1 slice of batch prev, 2 in hub bodies arena */
    size_t off, len, nev;
} wbody_cache;

struct wbucket {
    uint8_t *key, *end; /* end: exclusive upper bound (key+"\0" for a single key); NULL = none */
    size_t key_len, end_len;
    bool single, from_key;
    uint64_t hash;
    wbucket *hnext;
    size_t refs; /* watchers of any state */
    watcher *synced;
    size_t nsynced;
    /* per-batch selection */
    uint64_t gen;
    size_t *match, nmatch, match_cap;
    bool contig;
    wbody_cache cache;
};

struct watch_stream {
    watch_hub *h;
    watch_sink sink;
    void *ud;
    bool held, dead, deferred_progress, queued;
    int64_t next_id;
    watcher *all;
    size_t nwatchers;
    watcher *uhead, *utail;
    size_t nunsynced;
    watcher **idtab;
    size_t idcap;
    watch_stream *qprev, *qnext; /* hub's catch-up queue */
    watch_stream *prev, *next;   /* hub's list of streams */
    uint64_t responses, bytes, events;
};

struct watch_hub {
    kv_store *kv;
    watch_hub_opts o;
    uint64_t cluster_id, member_id, raft_term;
    int64_t rev;
    /* bucket index (watch_group.c) */
    wbucket **btab;
    size_t bcap, nbuckets;
    wbucket **ranges; /* non-single buckets sorted by key */
    size_t nranges, ranges_cap;
    wbucket **hits;
    size_t nhits, hits_cap;
    uint64_t gen, bgen;
    /* streams */
    watch_stream *streams;
    watch_stream *qhead, *qtail;
    /* scratch */
    watch_batch feed; /* catch-up read */
    wbuf bodies;      /* built event selections */
    wbuf msg;         /* one response being assembled */
    watcher **chosen; /* catch-up round */
    size_t chosen_cap;
    watch_stream **touched; /* streams served by the round */
    size_t touched_cap;
    struct wslice {
        const uint8_t *p;
        size_t len;
    } * sel; /* fragment pieces */
    size_t sel_cap;
    uint8_t hdr[48]; /* encoded header field for the current delivery */
    size_t hdr_len;
    int64_t next_progress_ms;
    watch_stats stats;
};

/* ---- bucket index (watch_group.c) -------------------------------------------------------- */

/* Finds or makes the bucket of a normalized range (end_len 0 = single key; from_key = "\0"). */
wbucket *wg_bucket_get(watch_hub *h, const uint8_t *key, size_t key_len, const uint8_t *end,
                       size_t end_len, bool from_key);
void wg_bucket_put(watch_hub *h, wbucket *b); /* drops one reference */
bool wg_contains(const wbucket *b, const uint8_t *key, size_t key_len);
void wg_synced_add(wbucket *b, watcher *w);
void wg_synced_del(wbucket *b, watcher *w);
/* Marks every bucket with synced watchers that matches events [from, n) of the batch: fills
 * their match lists for generation h->gen and h->hits. 0 or -1 on OOM. */
int wg_match_batch(watch_hub *h, const watch_batch *b, size_t from);
/* Fills one bucket's match list for generation h->gen (catch-up path). */
int wg_match_bucket(watch_hub *h, wbucket *bk, const watch_batch *b);
void wg_free_all(watch_hub *h);

/* ---- encoding of responses (watch_encode.c) ---------------------------------------------------
 */

/* Encodes the header field (cluster, member, revision, raft term) into h->hdr. */
void wr_set_header(watch_hub *h, int64_t revision);
/* Sends one response through the stream's sink; returns true when it was accepted. */
bool wr_send(watch_stream *s, const uint8_t *head, size_t head_len, const uint8_t *body,
             size_t body_len);
/* A control response (no events) for `id` at header revision `rev`. */
bool wr_send_control(watch_stream *s, int64_t rev, int64_t id, bool created, bool canceled,
                     int64_t compact_rev, const char *reason);
void wr_encode_id(watcher *w);

/* ---- delivery (watch_hub.c) --------------------------------------------------------------- */

void hub_account(watch_hub *h); /* refreshes buffered_bytes / buffered_peak */
void hub_watcher_unsync(watch_hub *h, watcher *w, int64_t next_rev);
void hub_watcher_sync(watch_hub *h, watcher *w);
void hub_stream_requeue(watch_hub *h, watch_stream *s);
void hub_stream_dequeue(watch_hub *h, watch_stream *s);
void hub_auto_sync(watch_hub *h);
void hub_stream_maybe_progress(watch_hub *h, watch_stream *s);

#endif
