/* server.h — `kvstore serve` as an embeddable object: the etcd v3 KV, Watch and Lease services
 * and Maintenance.Status on the MVCC engine, served over gRPC (proto/grpc.h) with the HTTP/1 side
 * (/metrics, /health, /version) on the same port.
 *
 * Key decisions:
 * - The uv loop thread does all network I/O, request decoding and every read (Range straight
 *   from LMDB through kv_range_raw, framed without protobuf-c KeyValue structs). ONE writer
 *   thread owns every write: it takes all queued writes at once and applies them with one
 *   kv_apply (group commit: one fsync per group), runs Compact in order with the writes and
 *   interleaves physical compaction steps with write groups. fsync never runs on the loop.
 * - Memory is bounded per connection: when a connection's queued output exceeds
 *   conn_out_cap, its further requests are parked (their request bytes kept, at most
 *   max_parked_bytes) until the client drains. Worst case server output memory is about
 *   max_connections x (conn_out_cap + largest single response).
 * - Watch: the writer hands each commit's events (encoded once) to the watch hub on the loop;
 *   slow watchers are held back and caught up from LMDB history, never queued per watcher.
 * - Leases: grant and revoke are writes (through the writer, ordered with puts); keep-alive,
 *   time-to-live and listing run on the loop; a 500 ms timer revokes expired leases through
 *   the writer, so their keys' DELETE events reach watchers like any other write.
 * - Errors are values: kvs_server_start fills a message; nothing here prints or exits, except
 *   through the optional log hook.
 *
 * Threading: every function must be called on the loop thread given to kvs_server_start.
 */
#ifndef RELIST_KVS_SERVER_H
#define RELIST_KVS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "grpc.h"
#include "kv.h"
#include "metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version Maintenance.Status and /version report (etcd clients check it). */
#define KVS_ETCD_VERSION         "3.4.23"
#define KVS_ETCD_CLUSTER_VERSION "3.4.0"

/* Defaults (etcd's where etcd has the flag). */
#define KVS_DEFAULT_MAX_REQUEST_BYTES ((size_t)1572864)    /* 1.5 MiB */
#define KVS_GRPC_OVERHEAD_BYTES       ((size_t)512 * 1024) /* gRPC receive limit = max + this */
#define KVS_DEFAULT_MAX_TXN_OPS       128u
#define KVS_DEFAULT_MAX_STREAMS       0xffffffffu        /* etcd: math.MaxUint32 */
#define KVS_DEFAULT_QUOTA_BYTES       ((size_t)8 << 30)  /* LMDB map size */
#define KVS_DEFAULT_CONN_OUT_CAP      ((size_t)32 << 20) /* park requests above this */
#define KVS_DEFAULT_MAX_PARKED_BYTES  ((size_t)16 << 20)
#define KVS_DEFAULT_COMPACT_BATCH     10000u
#define KVS_DEFAULT_PROGRESS_MS       600000u            /* etcd: progress_notify every 10 min */
#define KVS_DEFAULT_WATCH_QUEUE_BYTES ((size_t)64 << 20) /* commits in flight to the watch hub */
#define KVS_LEASE_CHECK_MS            500                /* etcd's lessor expiry check period */
#define KVS_DEFAULT_LIST_CACHE_BYTES  ((size_t)256 << 20) /* encoded LIST responses kept */

/* Options; zero means the default. */
typedef struct kvs_server_opts {
    const char *host;         /* ["127.0.0.1"] numeric address to bind */
    int port;                 /* 0 = ephemeral (see kvs_server_port) */
    const char *data_dir;     /* required */
    size_t max_request_bytes; /* [1.5 MiB] etcd's --max-request-bytes */
    uint32_t max_txn_ops;     /* [128] etcd's --max-txn-ops (the engine caps at KV_MAX_TXN_OPS) */
    uint32_t max_concurrent_streams; /* [2^32-1] per connection */
    uint32_t max_connections;        /* [0 = unlimited] */
    size_t quota_backend_bytes;      /* [8 GiB] LMDB map size */
    bool no_sync;                    /* benchmarks only: commits not fsynced */
    size_t conn_out_cap;             /* [32 MiB] queued output per connection before parking */
    size_t max_parked_bytes;         /* [16 MiB] parked request bytes per connection; beyond:
                                        RESOURCE_EXHAUSTED */
    uint32_t compact_batch;     /* [10000] history records removed per physical compaction step */
    uint32_t shutdown_grace_ms; /* [3000] in-flight calls get this long at shutdown */
    /* Idle and half-open connections (grpc_server_opts; GRPC_OPT_NEVER turns one off): the
     * handshake deadline (relistlab's; grpc-go's ConnectionTimeout, 120 s, in etcd) and etcd's
     * --grpc-keepalive-min-time, --grpc-keepalive-interval and --grpc-keepalive-timeout. */
    uint32_t handshake_timeout_ms;  /* [10000] HTTP/2 preface + SETTINGS, or HTTP/1 first line */
    uint32_t keepalive_min_time_ms; /* [5000] client PINGs closer than this: strikes */
    uint32_t keepalive_interval_ms; /* [7200000] PING a connection silent this long */
    uint32_t keepalive_timeout_ms;  /* [20000] then close it if still silent this long */
    /* Watch: the progress_notify period (etcd's is fixed at 10 min; tests shorten it). */
    uint32_t progress_notify_ms; /* [600000] */
    /* Commits handed from the writer to the watch hub and not yet delivered: above this many
     * bytes they are dropped and the hub catches watchers up from LMDB history instead. */
    size_t watch_queue_bytes; /* [64 MiB] */
    /* LIST response cache (list_cache.h): identical Range requests at an unchanged revision are
     * answered from one encoded response, sent by reference. Responses of at least 32 KiB are
     * kept, up to this many bytes in all (least recently used evicted; all dropped on a
     * write). list_cache_off disables it (kvstore's --list-cache-bytes 0). */
    size_t list_cache_bytes; /* [256 MiB] */
    bool list_cache_off;
    /* Optional log hook (verbose mode): one line per event, no trailing newline. */
    void (*log)(void *ud, const char *line);
    void *log_ud;
} kvs_server_opts;

typedef struct kvs_server kvs_server;

/* Opens the store, starts the writer thread, binds and listens. Returns 0 and *out, or -1
 * with a one-line reason in err (e.g. a foreign data dir, an address in use). */
int kvs_server_start(uv_loop_t *loop, const kvs_server_opts *opts, kvs_server **out, char *err,
                     size_t err_len);
/* The bound port. */
int kvs_server_port(const kvs_server *srv);
/* Graceful shutdown: GOAWAY to every client, in-flight calls finish (writes are committed), the
 * writer thread stops, the HTTP/1 side closes, LMDB is closed; then done(ud) runs on the loop.
 * Safe to call twice (the second call is ignored). */
void kvs_server_shutdown(kvs_server *srv, void (*done)(void *ud), void *ud);
/* Frees the server (after shutdown's done callback). */
void kvs_server_free(kvs_server *srv);

/* Counters for tests and reports (values read on the loop thread). */
typedef struct kvs_server_stats {
    uint64_t write_groups;   /* kv_apply calls made by the writer (one commit each at most) */
    uint64_t writes_applied; /* write requests handed to kv_apply */
    uint64_t compact_steps;  /* kv_compact_step calls */
    uint64_t parked;         /* requests parked because their connection's output was full */
    uint64_t lists_served;   /* Ranges answered by the raw LIST path */
    /* LIST response cache: LISTs answered from it, LISTs of >= 32 KiB built from the store
     * while it was on, and the bytes it holds now (entries, keys, bookkeeping). */
    uint64_t list_cache_hits, list_cache_misses;
    size_t list_cache_bytes;
} kvs_server_stats;
void kvs_server_get_stats(const kvs_server *srv, kvs_server_stats *out);

/* Accessors for embedding code and tests. */
grpc_server *kvs_server_grpc(kvs_server *srv);
kv_store *kvs_server_store(kvs_server *srv);
kvs_registry *kvs_server_registry(kvs_server *srv);

#ifdef __cplusplus
}
#endif
#endif
