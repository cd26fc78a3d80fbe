/* grpc.h — gRPC over HTTP/2 cleartext (h2c, prior knowledge) on libuv + nghttp2 1.52: a server with
 * a method table (unary and bidi-stream methods) and a client (unary calls and bidi streams).
 *
 * API STABLE (first written at project start; later changes only add functions or option fields).
 *
 * Signals: grpc_server_new()/grpc_client_new() set SIGPIPE to SIG_IGN if it is still SIG_DFL
 * (libuv writes with write(2); a vanished peer must not kill the process).
 *
 * Threading: every function here must be called on the thread running the uv loop the object is
 * bound to, except grpc_server_post() (any thread). Work finished on other threads (e.g. a writer
 * thread committing a Put) comes back with grpc_server_post(server, fn, arg): fn(arg) then runs on
 * the loop thread, where it may call grpc_call_reply() etc.
 *
 * Server call lifetime (one rule for unary calls and streams): a grpc_call handle given to a
 * handler stays valid until the application completes it with exactly one of grpc_call_reply(),
 * grpc_call_reply_iov(), grpc_call_finish() / grpc_call_fail() / grpc_stream_finish(). That holds
 * even if the client resets the stream, the deadline passes or the connection closes first: then
 * on_cancel fires once (the handle is still valid), further sends return GRPC_ECANCELLED and drop
 * their data, and the completing call just releases the handle. After completion never touch it.
 *
 * Output flow control (server and client streams): each call has a bounded output queue. A send
 * copies the bytes once into the queue (grpc_call_send_chunk_owned: not at all); DATA payloads
 * go from the queue to the socket by reference (writev), not copied again; a server's unary
 * handler runs after the recv that completed its request (outside nghttp2), so it may
 * grpc_call_flush() to write synchronously. nghttp2 pulls from the queue only as the peer's HTTP/2
 * window allows and the socket drains, coalescing frames into large writes (one uv_write per loop
 * iteration or per 256 KiB). A send returns GRPC_SEND_FULL when the queue is at or above the
 * high-water mark (the data was still accepted): the producer should pause until on_writable
 * fires (queue back under low-water). A producer that ignores that grows the queue without bound;
 * one that respects it keeps per-call memory <= high_water + its largest single send.
 * A large message can be framed without building it first: grpc_call_send_begin(call, total)
 * queues the 5-byte gRPC prefix, then grpc_call_send_chunk() appends parts (e.g. straight from
 * LMDB pages) and may pause between chunks on GRPC_SEND_FULL / on_writable.
 *
 * Input flow control: the server consumes inbound bytes (WINDOW_UPDATE) as it de-frames them, so
 * per stream it holds at most one partial message (<= max_recv_msg_size). The client consumes
 * as messages are delivered; grpc_cstream_pause() stops delivery and consumption so a slow reader
 * makes the server hold back (bounded by the stream window).
 */
#ifndef RELIST_GRPC_H
#define RELIST_GRPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* gRPC status codes (same numbers as grpc-go codes). */
typedef enum grpc_status {
    GRPC_STATUS_OK = 0,
    GRPC_STATUS_CANCELLED = 1,
    GRPC_STATUS_UNKNOWN = 2,
    GRPC_STATUS_INVALID_ARGUMENT = 3,
    GRPC_STATUS_DEADLINE_EXCEEDED = 4,
    GRPC_STATUS_NOT_FOUND = 5,
    GRPC_STATUS_ALREADY_EXISTS = 6,
    GRPC_STATUS_PERMISSION_DENIED = 7,
    GRPC_STATUS_RESOURCE_EXHAUSTED = 8,
    GRPC_STATUS_FAILED_PRECONDITION = 9,
    GRPC_STATUS_ABORTED = 10,
    GRPC_STATUS_OUT_OF_RANGE = 11,
    GRPC_STATUS_UNIMPLEMENTED = 12,
    GRPC_STATUS_INTERNAL = 13,
    GRPC_STATUS_UNAVAILABLE = 14,
    GRPC_STATUS_DATA_LOSS = 15,
    GRPC_STATUS_UNAUTHENTICATED = 16,
} grpc_status;

/* Return values of send-like functions (>= 0 means the data was accepted). */
enum {
    GRPC_SEND_OK = 0,      /* queued; queue under high-water */
    GRPC_SEND_FULL = 1,    /* queued; queue at/over high-water: wait for on_writable */
    GRPC_ECANCELLED = -1,  /* the call is cancelled/closed: data dropped */
    GRPC_EINVAL = -2,      /* misuse (e.g. chunk beyond the announced length, send after finish) */
    GRPC_ENOMEM = -3,      /* out of memory */
    GRPC_EUNAVAILABLE = -4 /* client: not connected / connection lost / draining */
};

/* One request metadata entry (header name lower-case; "-bin" values are passed as received). */
typedef struct grpc_metadata {
    const char *name;
    const char *value;
} grpc_metadata;

/* Name of a status code ("OK", "UNIMPLEMENTED", ...); "UNKNOWN" for out-of-range values. */
const char *grpc_status_name(int status);

/* ============================== server ============================== */

typedef struct grpc_server grpc_server;
typedef struct grpc_conn grpc_conn; /* one accepted HTTP/2 connection */
typedef struct grpc_call grpc_call; /* one server-side RPC (unary or stream) */
typedef grpc_call grpc_stream;      /* a grpc_call of a bidi-stream method */

typedef enum grpc_method_kind { GRPC_UNARY = 0, GRPC_BIDI_STREAM = 1 } grpc_method_kind;

/* A method table entry. `ud` in every callback is grpc_call_user_data(call), which starts as the
 * method's `ud` and may be replaced per call with grpc_call_set_user_data(). Callbacks run on the
 * loop thread, never re-entrantly for the same call. */
typedef struct grpc_method {
    const char *path; /* full path, e.g. "/etcdserverpb.KV/Range" (must stay valid) */
    grpc_method_kind kind;
    void *ud;
    /* GRPC_UNARY: the complete request message (de-framed, <= max_recv_msg_size; the bytes are
     * valid only during the callback). Reply now or later with grpc_call_reply()/grpc_call_fail().
     */
    void (*on_unary)(grpc_call *call, const uint8_t *msg, size_t len, void *ud);
    /* GRPC_BIDI_STREAM: stream opened (headers received). */
    void (*on_open)(grpc_stream *s, void *ud);
    /* GRPC_BIDI_STREAM: one inbound message (bytes valid only during the callback). */
    void (*on_message)(grpc_stream *s, const uint8_t *msg, size_t len, void *ud);
    /* GRPC_BIDI_STREAM: the client half-closed (END_STREAM); the server may keep sending. */
    void (*on_half_close)(grpc_stream *s, void *ud);
    /* Both kinds: client reset / deadline passed / connection lost / server shut down before the
     * call was completed. Fires at most once; the handle stays valid until completed. */
    void (*on_cancel)(grpc_call *call, void *ud);
    /* Both kinds: the output queue fell below low-water after a send returned GRPC_SEND_FULL. */
    void (*on_writable)(grpc_call *call, void *ud);
} grpc_method;

#define GRPC_OPT_NEVER 0xffffffffu /* a server timeout/interval option: off */

/* Server options; zero means the default given in brackets. */
typedef struct grpc_server_opts {
    size_t max_recv_msg_size;        /* [4 MiB] larger -> RESOURCE_EXHAUSTED like grpc-go */
    uint32_t max_concurrent_streams; /* [10000] SETTINGS_MAX_CONCURRENT_STREAMS per connection */
    uint32_t max_connections;        /* [0 = unlimited] excess accepted connections are closed */
    uint32_t initial_window_size; /* [1 MiB] SETTINGS_INITIAL_WINDOW_SIZE (inbound, per stream) */
    uint32_t conn_window_size;    /* [16 MiB] inbound connection window */
    size_t high_water;            /* [1 MiB] per-call output queue high-water mark */
    size_t low_water;             /* [high_water / 4] on_writable fires below this */
    uint32_t shutdown_grace_ms;   /* [3000] grpc_server_shutdown waits this long for calls */
    /* Idle and half-open connections (grpc-go's ConnectionTimeout and keepalive, with
     * etcd's defaults). GRPC_OPT_NEVER turns one off. A connection that has not delivered the
     * HTTP/2 client preface and its first SETTINGS frame (or, with on_http1, a first line) within
     * handshake_timeout_ms is closed. One that has sent nothing for keepalive_interval_ms is
     * PINGed and closed if it still sends nothing within keepalive_timeout_ms (any input counts
     * as the answer). A client PINGing more often than keepalive_min_time_ms (with streams open;
     * without, every 2 h) while the server sends it no HEADERS/DATA gets, on the third such
     * PING, GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and the connection closes. */
    uint32_t handshake_timeout_ms;  /* [10000] */
    uint32_t keepalive_interval_ms; /* [7200000] (2 h) */
    uint32_t keepalive_timeout_ms;  /* [20000] */
    uint32_t keepalive_min_time_ms; /* [5000] */
    /* If set, a connection whose first bytes are not the HTTP/2 client preface is handed over
     * once its first line is complete (a '\n'), or at once when the bytes cannot be an HTTP/1
     * request line (a control byte) or exceed 8 KiB: the server stops reading, forgets the
     * handle and never touches it again. `tcp` was malloc()ed; the callee owns it (handle->data
     * is free for its use), must uv_close() it eventually and free() it in the close callback.
     * `initial` holds the n bytes already read (valid during the call). Without it such
     * connections are closed. */
    void (*on_http1)(void *ud, uv_tcp_t *tcp, const char *initial, size_t n);
    /* Optional accounting hooks: an HTTP/2 connection began / ended (stats final at close). */
    void (*on_conn_open)(void *ud, grpc_conn *conn);
    void (*on_conn_close)(void *ud, grpc_conn *conn);
    void *ud;
} grpc_server_opts;

/* Creates a server on `loop` with a copy of the method table (paths are not copied). opts may be
 * NULL. Returns NULL on allocation failure or invalid arguments. */
grpc_server *grpc_server_new(uv_loop_t *loop, const grpc_server_opts *opts,
                             const grpc_method *methods, size_t n_methods);
/* Binds host:port (port 0 = ephemeral) and starts accepting. Returns 0 or a negative uv error. */
int grpc_server_listen(grpc_server *srv, const char *host, int port);
/* The bound port (after listen), or -1. */
int grpc_server_port(const grpc_server *srv);
/* Graceful shutdown: stop accepting; on every connection send a shutdown notice and then GOAWAY
 * with the last stream id; let in-flight calls finish for up to shutdown_grace_ms, then cancel
 * them (on_cancel) and close every connection. `done(ud)` runs (on the loop) when every handle
 * the server owns is closed; then grpc_server_free() may be called. Safe to call twice. */
void grpc_server_shutdown(grpc_server *srv, void (*done)(void *ud), void *ud);
/* Frees the server. Only after shutdown's done callback. Call handles still
 * held by the application stay valid (detached) until completed. */
void grpc_server_free(grpc_server *srv);
/* Thread-safe: runs fn(arg) on the loop thread soon (FIFO). Returns 0, or -1 once the server is
 * shutting down (fn not called). Never call after grpc_server_free(). */
int grpc_server_post(grpc_server *srv, void (*fn)(void *arg), void *arg);

/* Server-wide counters (monotonic unless noted). */
typedef struct grpc_server_stats {
    uint64_t conns_accepted; /* HTTP/2 connections accepted */
    uint64_t conns_rejected; /* closed because over max_connections or bad preface */
    uint64_t conns_http1;    /* handed to on_http1 */
    uint32_t conns_open;     /* gauge */
    uint64_t calls_started;  /* streams with a request */
    uint32_t calls_active;   /* gauge: calls not yet completed and not closed */
    uint64_t bytes_in, bytes_out;
    size_t out_buffered;      /* gauge: bytes in call output queues + socket write buffers */
    size_t out_buffered_peak; /* max of out_buffered seen */
} grpc_server_stats;
void grpc_server_get_stats(const grpc_server *srv, grpc_server_stats *out);
/* Connections closed by the handshake and keepalive rules (counters). */
typedef struct grpc_server_ka_stats {
    uint64_t handshake_timeouts; /* closed before completing the handshake in time */
    uint64_t pings_sent;         /* keepalive PINGs sent to idle connections */
    uint64_t keepalive_timeouts; /* closed: nothing received within the keepalive timeout */
    uint64_t too_many_pings;     /* sent GOAWAY ENHANCE_YOUR_CALM "too_many_pings" */
} grpc_server_ka_stats;
void grpc_server_get_ka_stats(const grpc_server *srv, grpc_server_ka_stats *out);
/* Calls fn for every open connection (e.g. for per-client accounting on /metrics). */
void grpc_server_foreach_conn(grpc_server *srv, void (*fn)(grpc_conn *conn, void *ud), void *ud);

/* Per-connection accounting. A grpc_conn stays readable while any call handle of it is held. */
typedef struct grpc_conn_stats {
    uint64_t bytes_in, bytes_out; /* raw TCP bytes */
    uint64_t msgs_in, msgs_out;   /* gRPC messages */
    uint64_t calls;               /* streams started */
    size_t out_buffered;          /* gauge: queued output bytes of this connection */
} grpc_conn_stats;
uint64_t grpc_conn_id(const grpc_conn *conn);      /* unique per server, starts at 1 */
const char *grpc_conn_peer(const grpc_conn *conn); /* "127.0.0.1:53122" */
void *grpc_conn_user_data(const grpc_conn *conn);
void grpc_conn_set_user_data(grpc_conn *conn, void *ud);
void grpc_conn_get_stats(const grpc_conn *conn, grpc_conn_stats *out);

/* Call handle accessors (valid until completion). */
grpc_conn *grpc_call_conn(const grpc_call *call);
const char *grpc_call_peer(const grpc_call *call);
const char *grpc_call_path(const grpc_call *call);
/* A request header/metadata value by lower-case name (e.g. "hasleader"), or NULL. */
const char *grpc_call_metadata(const grpc_call *call, const char *name);
/* Deadline from grpc-timeout in uv_now() milliseconds, or 0 when none. When it passes before
 * the call completes, the client gets DEADLINE_EXCEEDED and on_cancel fires. */
uint64_t grpc_call_deadline(const grpc_call *call);
int grpc_call_is_cancelled(const grpc_call *call);
void *grpc_call_user_data(const grpc_call *call);
void grpc_call_set_user_data(grpc_call *call, void *ud);
/* Bytes queued for this call and not yet handed to the socket. */
size_t grpc_call_out_buffered(const grpc_call *call);

/* Sending. Response headers go out with the first message. Each returns GRPC_SEND_OK,
 * GRPC_SEND_FULL or a negative GRPC_E* value (see the top of this file). */
int grpc_call_send(grpc_call *call, const void *msg, size_t len); /* one whole message */
/* One message whose parts are appended later: queues the 5-byte prefix for `total_len` bytes;
 * then grpc_call_send_chunk() exactly total_len bytes in any number of pieces before the next
 * message or the finish. */
int grpc_call_send_begin(grpc_call *call, size_t total_len);
int grpc_call_send_chunk(grpc_call *call, const void *p, size_t n);
/* Zero-copy chunk for large responses: like grpc_call_send_chunk() but the n bytes at
 * p are not copied; the library takes ownership and calls release(ud) exactly once, on the loop
 * thread, when it no longer needs them: after the socket took the last of them, or when the
 * call / connection goes away first, or before returning if the send fails (negative
 * return). release may be NULL (static memory). The bytes must not change until released.
 * The memory counts toward the call's output queue like copied bytes. */
int grpc_call_send_chunk_owned(grpc_call *call, const void *p, size_t n, void (*release)(void *ud),
                               void *ud);
/* Completes the call: trailers with grpc-status/grpc-message (percent-encoded by us; message may
 * be NULL). With no message sent yet it is a Trailers-Only response. Releases the handle. */
void grpc_call_finish(grpc_call *call, int status, const char *message);
/* Pushes this call's connection output toward the socket now (as far as HTTP/2 flow control
 * and the socket buffer allow; written synchronously when the socket has room) instead of at
 * the end of the loop iteration. A producer of a large response can so reuse cache-hot
 * buffers (owned chunks come back as soon as the socket took them). Added; unary handlers run
 * outside nghttp2, where this works; elsewhere inside library callbacks it is a no-op. */
void grpc_call_flush(grpc_call *call);
/* Unary conveniences: one message + OK trailers, releasing the handle. */
void grpc_call_reply(grpc_call *call, const void *msg, size_t len);
void grpc_call_reply_iov(grpc_call *call, const struct iovec *iov, size_t n_iov);
/* = grpc_call_finish(call, status, message), for errors. */
void grpc_call_fail(grpc_call *call, int status, const char *message);

/* Stream spellings of the same functions. */
static inline int grpc_stream_send(grpc_stream *s, const void *msg, size_t len) {
    return grpc_call_send(s, msg, len);
}
static inline void grpc_stream_finish(grpc_stream *s, int status, const char *message) {
    grpc_call_finish(s, status, message);
}

/* ============================== client ============================== */

typedef struct grpc_client grpc_client;
typedef struct grpc_cstream grpc_cstream; /* a client-side bidi stream */

/* Client options; zero means the default in brackets. */
typedef struct grpc_client_opts {
    size_t max_recv_msg_size;     /* [64 MiB] larger responses fail with RESOURCE_EXHAUSTED */
    uint32_t initial_window_size; /* [4 MiB] SETTINGS_INITIAL_WINDOW_SIZE (inbound per stream) */
    uint32_t conn_window_size;    /* [64 MiB] inbound connection window */
    size_t high_water;            /* [1 MiB] per-stream output queue high-water; low = 1/4 */
    /* The connection is up (status 0) or could not be made (negative uv error). */
    void (*on_connect)(void *ud, grpc_client *c, int status);
    /* The connection was lost or closed by the peer (after on_connect(0)), or a GOAWAY arrived:
     * all pending calls have been failed with UNAVAILABLE (or the GOAWAY's streams). The
     * client accepts no new calls; free it and make a new one to reconnect. */
    void (*on_disconnect)(void *ud, grpc_client *c, int status, const char *message);
    void *ud;
} grpc_client_opts;

/* Starts connecting to "host:port" (numeric address or a name resolved with getaddrinfo). Calls
 * may be issued at once: they are queued until the connection is up. Returns NULL on bad
 * target or allocation failure. */
grpc_client *grpc_client_new(uv_loop_t *loop, const char *target, const grpc_client_opts *opts);
/* Fails every pending call/stream with CANCELLED "client closed" (callbacks run inside this
 * call), closes the connection and frees the client once its handles are closed (keep running
 * the loop). */
void grpc_client_free(grpc_client *c);
int grpc_client_is_connected(const grpc_client *c);
/* Cuts the connection abruptly, as a network failure or a load balancer's reset would:
 * no GOAWAY; the socket is closed with a TCP RST (SO_LINGER 0); every pending call and stream
 * fails with UNAVAILABLE "connection reset: aborted by the client", then on_disconnect fires
 * (on_connect with UV_ECONNABORTED if the connection was not up yet). The callbacks run inside
 * this call, or, when it is called from one of this client's own callbacks, as soon as that
 * callback returns. Afterwards the client refuses new calls; free it and make a new one to
 * reconnect. No-op once the client is disconnected or being freed. */
void grpc_client_abort(grpc_client *c);

/* Completion of a unary call: status (GRPC_STATUS_*), message (decoded grpc-message, never NULL)
 * and the response message (NULL/0 unless status is OK; valid only during the callback). */
typedef void (*grpc_unary_cb)(void *ud, int status, const char *message, const uint8_t *resp,
                              size_t len);
/* Issues a unary call; timeout_ms 0 = none (else grpc-timeout is sent and enforced locally:
 * DEADLINE_EXCEEDED). cb runs exactly once, never inside this call. Returns 0, or a negative
 * GRPC_E* (then cb never runs). */
int grpc_client_unary(grpc_client *c, const char *path, const void *req, size_t len,
                      uint32_t timeout_ms, grpc_unary_cb cb, void *ud);
/* Same with extra request metadata. */
int grpc_client_unary_md(grpc_client *c, const char *path, const grpc_metadata *md, size_t n_md,
                         const void *req, size_t len, uint32_t timeout_ms, grpc_unary_cb cb,
                         void *ud);

typedef struct grpc_cstream_cbs {
    /* One response message (valid only during the callback). */
    void (*on_message)(grpc_cstream *s, const uint8_t *msg, size_t len, void *ud);
    /* The stream ended (trailers, reset, connection loss). Exactly once, unless the user cancelled;
     * the handle is freed right after this returns. */
    void (*on_close)(grpc_cstream *s, int status, const char *message, void *ud);
    /* The output queue fell below low-water after a send returned GRPC_SEND_FULL. Optional. */
    void (*on_writable)(grpc_cstream *s, void *ud);
} grpc_cstream_cbs;

/* Opens a bidi stream (HEADERS go out at once, before any message). Returns NULL if the client
 * is unusable or on allocation failure. `cbs` is copied. */
grpc_cstream *grpc_client_stream_open(grpc_client *c, const char *path, const grpc_metadata *md,
                                      size_t n_md, const grpc_cstream_cbs *cbs, void *ud);
int grpc_cstream_send(grpc_cstream *s, const void *msg, size_t len);
int grpc_cstream_half_close(grpc_cstream *s); /* END_STREAM after the queued messages */
/* Resets the stream (RST_STREAM CANCEL). on_close is NOT called; the handle is invalid after. */
void grpc_cstream_cancel(grpc_cstream *s);
/* Stop / restart delivering messages. While paused, received bytes are not consumed (no
 * WINDOW_UPDATE), so the server holds back once the stream window is full. */
void grpc_cstream_pause(grpc_cstream *s);
void grpc_cstream_resume(grpc_cstream *s);
void *grpc_cstream_user_data(const grpc_cstream *s);

typedef struct grpc_client_stats {
    uint64_t bytes_in, bytes_out;
    uint32_t calls_active; /* unary calls + streams in flight */
    size_t in_buffered;    /* received bytes not yet delivered (paused streams) */
} grpc_client_stats;
void grpc_client_get_stats(const grpc_client *c, grpc_client_stats *out);

#ifdef __cplusplus
}
#endif
#endif
