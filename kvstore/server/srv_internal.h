/* srv_internal.h — what the files of `kvstore serve` share: the server object, per-connection
 * state, one in-flight request, the writer thread's interface, the request decoder and the
 * Watch / Lease services' entry points.
 * Not part of the public API (see server.h). */
#ifndef RELIST_KVS_SRV_INTERNAL_H
#define RELIST_KVS_SRV_INTERNAL_H

#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>

#include "http1.h"
#include "list_cache.h"
#include "server.h"

typedef enum kvs_method {
    KVS_M_RANGE = 0,
    KVS_M_PUT,
    KVS_M_DELETE,
    KVS_M_TXN,
    KVS_M_COMPACT,
    KVS_M_STATUS,
    /* Watch and Lease (watch_service.c, lease_service.c): kvs_method_names in kv_service.c
     * names only the methods above; use kvs_method_name() for any method. */
    KVS_M_WATCH,
    KVS_M_LEASE_GRANT,
    KVS_M_LEASE_REVOKE,
    KVS_M_LEASE_KEEPALIVE,
    KVS_M_LEASE_TTL,
    KVS_M_LEASE_LEASES,
    KVS_M__N
} kvs_method;

/* Short gRPC method name ("Range", "Watch", "LeaseGrant", ...) of any method (server.c). */
const char *kvs_method_name(kvs_method m);

/* Tags telling apart what a call's user data points at (see on_cancel). */
enum { KVS_TAG_METHOD = 0x6d657468, KVS_TAG_PARKED = 0x7061726b };

typedef struct kvs_method_ud {
    int tag; /* KVS_TAG_METHOD */
    kvs_server *srv;
    kvs_method m;
} kvs_method_ud;

/* ---- bounded protobuf-c allocator (decode.c) ---- */

typedef struct kvs_alloc {
    ProtobufCAllocator pc; /* pc.allocator_data points back here */
    size_t used, cap;
    bool exceeded;
} kvs_alloc;

void kvs_alloc_init(kvs_alloc *a, size_t cap);

/* Outcome of decoding one request. */
typedef enum kvs_decode_rc {
    KVS_DEC_OK = 0,
    KVS_DEC_MALFORMED, /* grpc-go: INTERNAL "grpc: error unmarshalling request: ..." */
    KVS_DEC_TOO_DEEP,  /* nested txn deeper than KV_MAX_TXN_DEPTH */
    KVS_DEC_NOMEM      /* the bounded allocator refused */
} kvs_decode_rc;

/* Walks a TxnRequest's wire format (without unpacking) and checks that nested txns
 * (RequestOp.request_txn inside success/failure) go at most max_depth levels deep.
 * Returns KVS_DEC_OK, KVS_DEC_TOO_DEEP or KVS_DEC_MALFORMED. Iterative: no recursion. */
kvs_decode_rc kvs_txn_prescan(const uint8_t *p, size_t n, int max_depth);

/* Unpacks msg of the descriptor with the bounded allocator (the message must be freed with
 * protobuf_c_message_free_unpacked(m, &a->pc)). */
kvs_decode_rc kvs_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                         kvs_alloc *a, ProtobufCMessage **out);

/* etcd's checkTxnRequest op-count rule at every level (compare/success/failure each <= max). */
bool kvs_txn_ops_ok(const Etcdserverpb__TxnRequest *t, uint32_t max, int depth);

/* ---- connections ---- */

typedef struct kvs_parked kvs_parked;

typedef struct kvs_conn {
    kvs_server *srv;
    grpc_conn *gc;
    kvs_peer *peer;
    unsigned refs; /* 1 while open + one per request in flight */
    bool closed;
    kvs_parked *park_head, *park_tail;
    size_t parked_bytes;
    bool in_park_list;
    struct kvs_conn *park_next;
} kvs_conn;

struct kvs_parked {
    int tag; /* KVS_TAG_PARKED */
    kvs_parked *next;
    kvs_conn *conn;
    grpc_call *call;
    kvs_method m;
    uint64_t t0;
    size_t len;
    uint8_t data[];
};

void kvs_conn_unref(kvs_conn *c);

/* ---- one request in flight (loop -> writer -> loop) ---- */

typedef struct kvs_req {
    struct kvs_req *next;
    kvs_server *srv;
    grpc_call *call;
    kvs_conn *conn;
    kvs_method m;
    uint64_t t0; /* uv_hrtime at arrival */
    kvs_alloc alloc;
    ProtobufCMessage *msg; /* the unpacked request */
    Etcdserverpb__RequestOp op;
    kv_arena *arena;
    kv_write w; /* writes: filled by the writer */
    /* Compact */
    int64_t compact_rev;
    bool physical;
    kv_err err; /* Compact, or a group failure */
    /* Lease writes (lease_service.c): the writer hands w.lease = lease to kv_apply (op unused). */
    kv_lease_op *lease;
    kv_lease_op lease_op;
    Etcdserverpb__LeaseRevokeRequest revoke_local; /* an expiry revoke (no client request) */
    /* Completion on the loop thread instead of kvs_writer_done (which knows only KV requests);
     * it must complete and free the request. */
    void (*on_done)(struct kvs_req *r);
} kvs_req;

void kvs_req_free(kvs_req *r);

/* ---- writer thread (writer.c) ---- */

typedef struct kvs_writer kvs_writer;
/* Starts the thread. `done(srv, list)` runs on the loop thread (through grpc_server_post) with a
 * list of finished requests in completion order. */
int kvs_writer_start(kvs_server *srv, kvs_writer **out);
/* Queues one request (any thread; called on the loop). */
void kvs_writer_submit(kvs_writer *w, kvs_req *r);
/* Stops after the queue is drained; joins. Requests whose completion could not be posted are
 * returned (the caller completes them). */
kvs_req *kvs_writer_stop(kvs_writer *w);

/* ---- the server object ---- */

struct kvs_server {
    uv_loop_t *loop;
    kvs_server_opts opts;
    char *host, *data_dir;
    int dir_lock; /* fd holding the exclusive flock on the data dir */
    kv_store *store;
    grpc_server *grpc;
    kvs_http1 *http1;
    kvs_registry *reg;
    kvs_srv_metrics metrics;
    kvs_rpc_metrics rpc[KVS_M__N];
    kvs_series *m_commit_seconds, *m_group_size; /* the writer's group commits */
    kvs_series *m_wal_fsync, *m_backend_commit;  /* kv_set_disk_observer */
    kvs_method_ud mud[KVS_M__N];
    kvs_writer *writer;
    uv_timer_t park_timer;
    bool park_timer_on;
    kvs_conn *park_list;
    bool stopping;
    int closing; /* shutdown steps still running */
    void (*done)(void *ud);
    void *done_ud;
    uint64_t parked_total, lists_served;
    uint8_t *pool[16]; /* free 256 KiB LIST chunks (kv_service.c), loop thread only */
    size_t n_pool;
    _Atomic uint64_t w_groups, w_writes, w_steps; /* updated by the writer */
    struct kvs_watch *watch;                      /* watch_service.c */
    struct kvs_lease *lease;                      /* lease_service.c */
    uv_thread_t loop_thread; /* where kvs_server_start ran (the loop's thread) */

    /* The LIST response cache (list_cache.c, kv_service.c; loop thread): NULL when off. */
    kvs_lcache *lcache;
    uint64_t lc_hits, lc_misses;
    kvs_series *m_lc_hits, *m_lc_misses, *m_lc_bytes; /* relistlab_list_cache_* */
};

/* server.c: one shutdown step (a handle closed) finished. */
void kvs_server_step_done(kvs_server *srv);
/* Monotonic milliseconds: the clock every lease call gets (thread-safe, unlike uv_now). */
int64_t kvs_now_ms(void);

/* kv_service.c */
#define KVS_CHUNK_POOL 16
void kvs_chunk_pool_free(kvs_server *srv);
extern const char *const kvs_method_names[KVS_M__N];
void kvs_on_unary(grpc_call *call, const uint8_t *msg, size_t len, void *ud);
void kvs_on_cancel(grpc_call *call, void *ud);
void kvs_writer_done(kvs_server *srv, kvs_req *list); /* loop thread */
void kvs_park_timer_cb(uv_timer_t *t);
/* Completes a request with an error (loop thread), with metrics. */
void kvs_req_fail(kvs_req *r, int status, const char *msg);
void kvs_finish_metrics(kvs_server *srv, kvs_conn *conn, kvs_method m, uint64_t t0, int code,
                        size_t bytes_sent);
/* Fails a unary call with a status (or a kv_err mapped to etcd's status and message) and
 * records it in the metrics (kv_service.c). */
void kvs_fail_call(kvs_server *srv, grpc_call *call, kvs_conn *kc, kvs_method m, uint64_t t0,
                   int status, const char *msg);
void kvs_fail_kv(kvs_server *srv, grpc_call *call, kvs_conn *kc, kvs_method m, uint64_t t0,
                 const kv_err *e);

/* maintenance.c */
void kvs_status_unary(kvs_server *srv, grpc_call *call, kvs_conn *conn, const uint8_t *msg,
                      size_t len, uint64_t t0);

/* watch_service.c: the hub, its commit hand-over from the writer, timers and metrics.
 * init runs before the writer starts (it installs the commit callback); shutdown_begin ends
 * every Watch stream (etcd: "server stopped"); close runs after the writer stopped and returns
 * how many kvs_server_step_done calls will follow; free runs before kv_close. */
int kvs_watch_init(kvs_server *srv);
void kvs_watch_shutdown_begin(kvs_server *srv);
int kvs_watch_close(kvs_server *srv);
void kvs_watch_free(kvs_server *srv);
void kvs_watch_on_open(grpc_stream *s, void *ud);
void kvs_watch_on_message(grpc_stream *s, const uint8_t *msg, size_t len, void *ud);
void kvs_watch_on_half_close(grpc_stream *s, void *ud);
void kvs_watch_on_cancel(grpc_call *call, void *ud);
void kvs_watch_on_writable(grpc_call *call, void *ud);

/* lease_service.c: the unary Lease methods, LeaseKeepAlive, the expiry timer, lease metrics.
 * Same life cycle as the watch side. */
int kvs_lease_init(kvs_server *srv);
void kvs_lease_shutdown_begin(kvs_server *srv);
int kvs_lease_close(kvs_server *srv);
void kvs_lease_free(kvs_server *srv);
void kvs_lease_on_unary(grpc_call *call, const uint8_t *msg, size_t len, void *ud);
void kvs_lease_ka_on_open(grpc_stream *s, void *ud);
void kvs_lease_ka_on_message(grpc_stream *s, const uint8_t *msg, size_t len, void *ud);
void kvs_lease_ka_on_half_close(grpc_stream *s, void *ud);
void kvs_lease_ka_on_cancel(grpc_call *call, void *ud);

void kvs_logf(const kvs_server *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
