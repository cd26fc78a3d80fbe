/* http1.h — the HTTP/1.1 side of `kvstore serve`: GET /metrics (Prometheus text 0.0.4),
 * GET /health and GET /version, answered like etcd 3.4 on the same port as gRPC.
 *
 * The gRPC server sniffs each connection's first bytes; when they are not the HTTP/2 preface it
 * hands the connection over (grpc_server_opts.on_http1) and kvs_http1_adopt() takes it from there:
 * requests are parsed with http_parser (keep-alive and pipelining supported), answered in order,
 * and every resource a client can make us hold is bounded (header bytes, queued response bytes,
 * idle time).
 *
 * Threading: everything here runs on the loop thread. The metrics registry it renders may be
 * updated from any thread.
 */
#ifndef RELIST_KVS_HTTP1_H
#define RELIST_KVS_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvs_http1 kvs_http1;

/* A response produced by a route handler: body is malloc'd (or NULL) and becomes ours. */
typedef struct kvs_http1_response {
    int status;               /* e.g. 200 */
    const char *content_type; /* static string */
    char *body;
    size_t body_len;
} kvs_http1_response;

/* An extra GET route (e.g. a debug page). Return 0 and fill *out, or -1 for a 500. */
typedef struct kvs_http1_route {
    const char *path; /* exact path, e.g. "/debug/vars" (copied) */
    int (*handler)(void *ud, kvs_http1_response *out);
    void *ud;
} kvs_http1_route;

/* Options; zero means the default in brackets. */
typedef struct kvs_http1_opts {
    kvs_registry *metrics; /* rendered at /metrics [NULL: /metrics answers 404] */
    /* Health provider: nonzero = healthy [NULL: always healthy]. Unhealthy answers 503
     * {"health":"false"} like etcd. */
    int (*health)(void *ud);
    void *health_ud;
    const char *etcdserver_version;  /* ["3.4.23"] the /version strings (copied) */
    const char *etcdcluster_version; /* ["3.4.0"] */
    const kvs_http1_route *routes;   /* extra GET routes (copied); they win over built-ins */
    size_t n_routes;
    size_t max_header_bytes;  /* [8192] request line + headers; more -> 431 and close */
    size_t high_water;        /* [1 MiB] queued response bytes per connection at which we stop
                                 reading/parsing until the client drains them */
    uint32_t idle_timeout_ms; /* [60000] no input and no write progress for this long -> close
                                 (also ends a client that stops reading) */
    uint32_t max_connections; /* [1024] adopted connections beyond this are closed at once */
} kvs_http1_opts;

/* Creates the handler. opts may be NULL. If opts->metrics is set, the families
 * etcd_server_health_success/failures are registered in it. Returns NULL on allocation failure. */
kvs_http1 *kvs_http1_new(uv_loop_t *loop, const kvs_http1_opts *opts);

/* Takes over an accepted, connected TCP handle (reading stopped) whose first n bytes were
 * already read (`initial`, valid during the call). Ownership always passes, even on error: the
 * handle was malloc()ed and is uv_close()d and free()d by us; handle->data becomes ours.
 * Returns 0, or a negative uv error (the handle is then being closed). Signature-compatible with
 * grpc_server_opts.on_http1 through kvs_http1_on_grpc(). */
int kvs_http1_adopt(kvs_http1 *h, uv_tcp_t *tcp, const char *initial, size_t n);

/* Adapter with grpc_server_opts.on_http1's signature: set on_http1 = kvs_http1_on_grpc and
 * ud = the kvs_http1 (or call kvs_http1_adopt from your own callback). */
void kvs_http1_on_grpc(void *ud, uv_tcp_t *tcp, const char *initial, size_t n);

/* Closes every connection and frees the handler once their handles are closed (keep running the
 * loop; `done`, if set, runs then — possibly before this returns, when no connection is open).
 * Adopting after this closes the handle. */
void kvs_http1_free(kvs_http1 *h, void (*done)(void *ud), void *ud);

/* Counters (loop thread, or after the loop stopped). */
typedef struct kvs_http1_stats {
    uint64_t conns_adopted;
    uint32_t conns_open;
    uint64_t requests;       /* responses produced, errors included */
    uint64_t bad_requests;   /* 400 / 413 / 431 */
    uint64_t closed_idle;    /* closed by the idle / stalled-reader timeout */
    size_t queued_bytes;     /* response bytes not yet written, all connections */
    size_t queued_peak_conn; /* the most any one connection ever had queued */
} kvs_http1_stats;
void kvs_http1_get_stats(const kvs_http1 *h, kvs_http1_stats *out);

#ifdef __cplusplus
}
#endif
#endif
