/* list_cache.h — encoded LIST responses kept for reuse at one store revision (internal to
 * `kvstore serve`; used by kv_service.c).
 *
 * A Range response read at a given revision never changes, and a relist storm asks for the
 * same prefix again and again between writes. An entry holds one whole encoded RangeResponse
 * (the gRPC message body: header, kvs, more, count) under its key: the request's canonical
 * bytes (kv_service.c clears the fields that cannot change the answer) plus the read revision
 * it resolved to. A hit is sent by reference (grpc_call_send_chunk_owned): entries are
 * refcounted, one reference held by the cache and one per send in flight, so evicting an
 * entry that is still going out to a slow client is safe (its memory then counts toward that
 * connection's output queue, which is bounded by conn_out_cap).
 *
 * Key decisions:
 * - One epoch: every entry was built at the same store revision (the header revision of its
 *   response). Storing an entry built at another revision, or kvs_lcache_clear(), drops all
 *   of them: every response carries the current revision in its header, so after a write no
 *   older entry can be sent again (not even for requests naming an explicit old revision).
 *   The caller proves the epoch is still current before each hit (kv_service.c probes the
 *   store).
 * - Budget: the entries held by the cache (data + key + bookkeeping, rounded up to whole huge
 *   pages for entries of 2 MiB or more, which get their own mapping) stay <= the byte budget;
 *   the least recently used go first. A response larger than the whole budget is not cached.
 * - Loop thread only; no locks. The data structure (first half) knows nothing of the server;
 *   the server side (second half) makes keys, proves an entry current and sends it.
 */
#ifndef RELIST_KVS_LIST_CACHE_H
#define RELIST_KVS_LIST_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "grpc.h"
#include "rpc.pb-c.h"

typedef struct kvs_lcache kvs_lcache;

/* One encoded response. `data` (len bytes) must not change once the entry is stored. */
typedef struct kvs_lentry {
    struct kvs_lentry *hnext;       /* hash chain */
    struct kvs_lentry *prev, *next; /* LRU list, most recently used first */
    unsigned refs;                  /* the builder's or the cache's + one per send in flight */
    uint64_t hash;
    int64_t rev; /* the read revision the request resolved to */
    size_t len, key_len;
    size_t map_len;     /* an own mapping of this many bytes (large entries), else 0: malloc */
    const uint8_t *key; /* key_len bytes, after data */
    uint8_t data[];
} kvs_lentry;

/* A cache holding at most budget bytes; NULL when out of memory. budget 0 is allowed (nothing
 * is ever stored), but a server simply has no cache then. */
kvs_lcache *kvs_lcache_new(size_t budget);
/* Drops the cache's references; entries still being sent are freed by their last release. */
void kvs_lcache_free(kvs_lcache *c);

/* The store revision every stored entry was built at (0 when empty). */
int64_t kvs_lcache_epoch(const kvs_lcache *c);
/* Drops every entry (a write happened). */
void kvs_lcache_clear(kvs_lcache *c);
/* True when a response of len bytes with a key of key_len bytes can be stored. */
bool kvs_lcache_fits(const kvs_lcache *c, size_t len, size_t key_len);

/* The entry for (key, rev), marked most recently used, or NULL. No reference is taken. */
kvs_lentry *kvs_lcache_find(kvs_lcache *c, const uint8_t *key, size_t key_len, int64_t rev);

/* A new entry with room for len bytes of data, holding one reference (the caller's); NULL when
 * out of memory. */
kvs_lentry *kvs_lentry_new(const uint8_t *key, size_t key_len, int64_t rev, size_t len);
/* Stores e (fully written) as built at store revision epoch, evicting as the budget needs; the
 * caller's reference passes to the cache. A different epoch clears the cache first. If e does
 * not fit at all it is just released. */
void kvs_lcache_store(kvs_lcache *c, kvs_lentry *e, int64_t epoch);

void kvs_lentry_ref(kvs_lentry *e);
void kvs_lentry_unref(kvs_lentry *e);
/* kvs_lentry_unref as a grpc_call_send_chunk_owned release callback. */
void kvs_lentry_release(void *ud);

/* ---- the server side (list_cache.c too; loop thread) ---- */

struct kvs_server;

/* Responses smaller than this are not cached: a short walk costs about what a hit does. */
#define KVS_LC_MIN_BYTES ((size_t)32 << 10)
/* Longest cache key (canonical request bytes); longer requests are not cached. */
#define KVS_LC_MAX_KEY 1536

/* The cache key of a Range request: its bytes as protobuf-c packs them with `revision` and
 * `serializable` cleared (the revision is matched separately once resolved; serializable makes
 * no difference on one member). Writes into buf (KVS_LC_MAX_KEY bytes) and returns the length,
 * or 0 when the request is too large to be a key. req is restored before returning. */
size_t kvs_lc_key(Etcdserverpb__RangeRequest *req, uint8_t *buf);

/* Answers the Range from the cache when an entry for (key, the revision req resolves to) exists
 * and the store is still at the entry's revision (a one-key read of the store proves it; a
 * newer revision clears the cache). Sends the message (not the trailers) and returns true, with
 * *bytes the message length and *ok whether the send was accepted; false: not answered. */
bool kvs_lc_serve(struct kvs_server *srv, grpc_call *call, const Etcdserverpb__RangeRequest *req,
                  const uint8_t *key, size_t key_len, size_t *bytes, bool *ok);

/* A write committed at revision rev (loop thread): entries of older revisions are dropped now
 * rather than at the next LIST. */
void kvs_lc_note_write(struct kvs_server *srv, int64_t rev);

/* Publishes the cache's size on /metrics (after it changed). */
void kvs_lc_publish(struct kvs_server *srv);

/* What the cache holds now. */
typedef struct kvs_lcache_stats {
    size_t entries, bytes, budget;
    uint64_t evictions; /* entries dropped for room (not by clears) */
} kvs_lcache_stats;
void kvs_lcache_get_stats(const kvs_lcache *c, kvs_lcache_stats *out);

#endif
