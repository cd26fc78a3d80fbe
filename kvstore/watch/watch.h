/* watch.h — the watch hub of kvstore: etcd's "watchable store" as a library with no network.
 *
 * A hub fans the MVCC engine's commits out to watchers; a watch stream (one gRPC Watch bidi
 * stream) holds many watchers and speaks etcd's WatchRequest / WatchResponse bytes through a
 * sink the server provides. Semantics are etcd 3.4's (mvcc/watchable_store.go, watcher_group.go,
 * etcdserver/api/v3rpc/watch.go).
 *
 * Key decisions:
 * - Single-threaded: every function except watch_batch_from_events / watch_batch_free runs on
 *   one thread (the server's loop). The writer thread turns a commit's events into an owned,
 *   pre-encoded watch_batch and posts it; the loop calls watch_hub_on_commit.
 * - Encode once: each event is encoded once per commit (as a WatchResponse `events` field, with
 *   and without prev_kv); a watcher's response is its own small head (header, watch_id) followed
 *   by shared event bytes — usually a slice of the batch, built at most once per key range.
 * - Watcher groups as in etcd: synced watchers get commits as they happen; unsynced watchers
 *   (a past start_revision, or held back because their stream's transport is over its
 *   high-water mark — etcd's "victims") catch up from LMDB history with kv_feed_read in
 *   bounded batches, then rejoin the synced group at exactly the hub's revision. The hub never
 *   queues events per watcher, so memory stays bounded whatever clients do.
 * - Guarantees per watcher: events in revision order, none lost, none duplicated, a revision
 *   never split across responses (except fragment=true pieces, as in etcd).
 * - Time is an input (watch_hub_tick), so progress notification is testable without a timer.
 *
 * Server wiring (kvstore/server/watch_service.c):
 * - kv_set_commit_cb -> on the writer thread watch_batch_from_events, post it to the loop in
 *   commit order (a mutex queue + uv_async); on the loop watch_hub_on_commit + watch_batch_free.
 *   To bound that queue, drop batches past a byte limit (watch_batch_bytes) and post one "lost"
 *   marker instead: watch_hub_on_lost_commit makes the hub catch up from history.
 * - Per Watch call: watch_stream_new with a sink that frames and queues the message on the
 *   HTTP/2 stream and returns 1 above the stream's high-water mark; on drain
 *   watch_stream_writable; each received message -> watch_stream_request (an error value ends
 *   the call); call end -> watch_stream_free.
 * - A uv timer (about 1 s) -> watch_hub_tick(h, uv_now); a uv_idle handler calling
 *   watch_hub_sync(h, a few rounds) while watch_hub_pending(h) is true (check after each call).
 * - Metrics: watch_hub_stats.
 */
#ifndef RELIST_WATCH_H
#define RELIST_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum watch_code {
    WATCH_OK = 0,
    WATCH_ERR_MALFORMED, /* a WatchRequest that does not decode */
    WATCH_ERR_TOO_LARGE, /* a WatchRequest over watch_hub_opts.max_request_bytes */
    WATCH_ERR_NOMEM,
} watch_code;

const char *watch_code_message(watch_code code); /* never NULL */

/* etcd's cancel reasons (WatchResponse.cancel_reason on a created+canceled response). */
#define WATCH_REASON_DUPLICATE_ID "mvcc: duplicate watch ID provided on the WatchStream"
#define WATCH_REASON_EMPTY_RANGE  "mvcc: watcher range is empty"

/* The watch_id of responses not tied to one watcher (etcd's clientv3.InvalidWatchID). */
#define WATCH_ID_NONE (-1)

/* ---- hub ------------------------------------------------------------------------------------ */

typedef struct watch_hub watch_hub;

typedef struct watch_hub_opts {
    int64_t progress_interval_ms; /* progress_notify period; 0 = 600000 (etcd's 10 min) */
    size_t max_response_bytes;    /* fragment threshold; 0 = 1.5 MiB (etcd --max-request-bytes) */
    size_t max_request_bytes;     /* WatchRequest size limit; 0 = 2 MiB */
    size_t feed_batch_events;     /* catch-up read size (events); 0 = 1000 */
    size_t feed_batch_bytes;      /* catch-up read size (bytes); 0 = 1 MiB */
    size_t max_watchers_per_sync; /* unsynced watchers served per catch-up round; 0 = 512 */
    /* Catch-up rounds run inside watch_stream_request / _writable / watch_hub_on_commit /
     * watch_hub_tick: 0 = 1 round, negative = none (the server then calls watch_hub_sync). */
    int sync_rounds_per_call;
} watch_hub_opts;

/* A hub over an open store, starting at the store's current revision. NULL on OOM. The store
 * must outlive the hub. opts may be NULL (all defaults). */
watch_hub *watch_hub_new(kv_store *kv, const watch_hub_opts *opts);
/* Frees the hub and any stream still open (without sending anything). */
void watch_hub_free(watch_hub *h);

/* The revision up to which every synced watcher has been served (header.revision of control
 * responses and progress notifications). */
int64_t watch_hub_revision(const watch_hub *h);

/* ---- commits -------------------------------------------------------------------------------- */

/* An owned, encoded copy of one durable commit's events. */
typedef struct watch_batch watch_batch;

/* Copies and encodes the events of kv_set_commit_cb (events in revision order, `revision` the
 * store revision after the commit). Thread-safe: meant for the writer thread, inside the commit
 * callback. NULL on OOM — then call watch_hub_on_lost_commit on the loop instead. */
watch_batch *watch_batch_from_events(const kv_event *ev, size_t n, int64_t revision);
void watch_batch_free(watch_batch *b);
size_t watch_batch_bytes(const watch_batch *b); /* memory held, for back-pressure accounting */

/* Delivers a commit to synced watchers (loop thread). Batches must come in commit order; a
 * batch at or below the hub revision is ignored, and a gap (a lost commit) makes every synced
 * watcher catch up from history. Does not take ownership of `b`. */
void watch_hub_on_commit(watch_hub *h, const watch_batch *b);
/* A commit could not be handed over (watch_batch_from_events failed): every synced watcher is
 * caught up from history to the store's current revision. */
void watch_hub_on_lost_commit(watch_hub *h);

/* ---- time and catch-up ------------------------------------------------------------------ */

/* Drives progress_notify (the server calls it from a timer, e.g. every second). The first call
 * starts the period. Also runs catch-up rounds (see sync_rounds_per_call). */
void watch_hub_tick(watch_hub *h, int64_t now_ms);
/* Runs up to max_rounds catch-up rounds (each one bounded kv_feed_read for up to
 * max_watchers_per_sync unsynced watchers of writable streams). Returns true while catch-up
 * work remains that could proceed now (the server keeps calling it from an idle handler). */
bool watch_hub_sync(watch_hub *h, size_t max_rounds);
/* True while some unsynced watcher of a writable stream waits for catch-up (the server starts
 * its idle handler when this turns true after a call into the hub). */
bool watch_hub_pending(const watch_hub *h);

/* ---- streams -------------------------------------------------------------------------------- */

typedef struct watch_stream watch_stream;

/* Where a stream's responses go: each call hands over ONE encoded etcdserverpb.WatchResponse,
 * which the transport must copy before returning. Return 0 = accepted; 1 = accepted, but the
 * transport is over its high-water mark: hold this stream back until watch_stream_writable;
 * negative = the transport is gone (nothing more is sent; free the stream). A sink must not
 * call back into the hub. `sendv` (optional, preferred when set) gets the response as two
 * parts — a small head and the shared event bytes — to save one copy. */
typedef struct watch_sink {
    int (*send)(void *ud, const uint8_t *msg, size_t len);
    int (*sendv)(void *ud, const uint8_t *head, size_t head_len, const uint8_t *body,
                 size_t body_len);
} watch_sink;

/* A new stream; NULL on OOM. The sink struct is copied. */
watch_stream *watch_stream_new(watch_hub *h, const watch_sink *sink, void *ud);
/* Cancels its watchers (no responses) and frees it. */
void watch_stream_free(watch_stream *s);

/* One encoded WatchRequest (create / cancel / progress), answered through the sink as etcd 3.4
 * does. Returns WATCH_OK (also for requests etcd answers with an error response, or ignores),
 * or an error value for bytes that are not a WatchRequest (the server then ends the stream). */
int watch_stream_request(watch_stream *s, const uint8_t *msg, size_t len);

/* The same requests, already decoded (for the server's own decoding path, tests, benchmarks).
 * watch_stream_create returns WATCH_OK or WATCH_ERR_NOMEM; *id_out (may be NULL) gets the
 * watch_id of the created response (-1 when it was rejected). */
int watch_stream_create(watch_stream *s, const Etcdserverpb__WatchCreateRequest *req,
                        int64_t *id_out);
int watch_stream_cancel(watch_stream *s, int64_t watch_id);
int watch_stream_progress(watch_stream *s);

/* The transport drained below its low-water mark: held-back watchers catch up again. */
void watch_stream_writable(watch_stream *s);

/* ---- stats (for the server's metrics; no metrics dependency here) ------------------------ */

typedef struct watch_stats {
    int64_t revision;         /* hub revision */
    int64_t watchers;         /* etcd_debugging_mvcc_watcher_total (gauge) */
    int64_t streams;          /* etcd_debugging_mvcc_watch_stream_total (gauge) */
    int64_t slow_watchers;    /* etcd_debugging_mvcc_slow_watcher_total (gauge): unsynced now */
    uint64_t events_total;    /* etcd_debugging_mvcc_events_total: events delivered */
    uint64_t responses_total; /* WatchResponses handed to sinks */
    uint64_t bytes_total;     /* their bytes */
    uint64_t victims_total;   /* times a synced watcher was held back by its stream */
    uint64_t compacted_total; /* watchers canceled because their revision was compacted */
    uint64_t feed_reads;      /* kv_feed_read calls for catch-up */
    uint64_t feed_errors;     /* failed catch-up reads (retried later) */
    uint64_t lost_commits;    /* gaps seen in the commit sequence */
    size_t buffered_bytes;    /* memory the hub holds now for delivery (scratch buffers) */
    size_t buffered_peak;     /* the most it ever held */
} watch_stats;

void watch_hub_stats(const watch_hub *h, watch_stats *out);

typedef struct watch_stream_stats {
    size_t watchers;
    size_t unsynced;
    bool held_back;
    uint64_t responses;
    uint64_t bytes;
    uint64_t events;
} watch_stream_stats;

void watch_stream_stats_get(const watch_stream *s, watch_stream_stats *out);

#ifdef __cplusplus
}
#endif
#endif
