/* grpc_client_internal.h — what the two halves of the gRPC client share: grpc_client.c owns
 * the connection (resolve, connect, read, flush, loss, GOAWAY, free/abort) and
 * grpc_client_call.c the calls on it (unary calls, bidi streams, deadlines, inbound flow
 * control). The connection struct lives here because both touch it; the call struct
 * (grpc_cstream) stays private to grpc_client_call.c, which exposes only the few operations
 * the connection needs on its calls. */
#ifndef RELIST_GRPC_CLIENT_INTERNAL_H
#define RELIST_GRPC_CLIENT_INTERNAL_H

#include "grpc_internal.h"

struct grpc_client {
    h2io io; /* first: nghttp2 user_data */
    uv_loop_t *loop;
    grpc_client_opts opts;
    char *host, *port, *authority;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    uv_tcp_t tcp;
    uv_idle_t idle;
    uv_timer_t timer; /* call deadlines (grpc_client_call.c); owned by the connection */
    bool gai_pending, tcp_inited, timer_on;
    bool connected, dead, goaway, told_down;
    bool abort_requested; /* grpc_client_abort inside a callback: see grpc_client_leave() */
    bool reset_on_close;  /* close the socket with a TCP RST (grpc_client_abort) */
    int busy;
    bool free_requested, freed;
    int closes_pending;
    glist calls; /* grpc_cstream.node */
    uint8_t *rbuf;
    size_t in_buffered;
    /* The receive buffer for large unary responses (see grpc_client_big_take): idle in big
     * (NULL: none), or lent to one call (big_lent); big_timer unmaps an idle one. */
    uint8_t *big;
    size_t big_cap;
    bool big_lent;
    uv_timer_t big_timer;
    /* Flow control for large unary responses (grpc_client_call.c, on_frame_send): the largest
     * such response seen on this connection, and the connection window now granted. */
    size_t big_seen;
    int32_t conn_window;
};

/* Unary responses this large are assembled in the connection's reusable buffer (smaller ones
 * are malloc'd as before: glibc reuses its heap for them, below its 32 MiB mmap threshold). */
#define GRPC_CLIENT_BIG_MIN ((size_t)4 << 20)
/* An idle reusable buffer is unmapped after this long without a large response. */
#define GRPC_CLIENT_BIG_IDLE_MS 2000

/* grpc_client.c */
/* Brackets library code that runs user callbacks: a grpc_client_free() (or abort) asked for
 * meanwhile is carried out by the outermost leave. */
void grpc_client_enter(grpc_client *c);
void grpc_client_leave(grpc_client *c);
/* h2io's schedule hook: a flush on the next idle turn, while connected. */
void grpc_client_schedule(h2io *io);
/* Lends the connection's reusable buffer for a unary response of len bytes (grown to fit;
 * *cap: its mapped size), or NULL when another call holds it or mapping failed (the caller then
 * assembles with malloc as before). A fresh malloc of ~100 MB per LIST costs more in page
 * faults (zeroing, mapping and unmapping 25,000 pages) than receiving the bytes does. */
uint8_t *grpc_client_big_take(grpc_client *c, size_t len, size_t *cap);
/* Gives the lent buffer back: kept for the next large response, unmapped after
 * GRPC_CLIENT_BIG_IDLE_MS idle or at once when the connection is gone. */
void grpc_client_big_return(grpc_client *c, uint8_t *p, size_t cap);

/* grpc_client_call.c */
/* Installs the per-stream nghttp2 callbacks (headers, data, stream close). */
void grpc_client_set_call_callbacks(nghttp2_session_callbacks *cbs);
/* Tells every call it is over with status/msg and frees it (the connection is gone). */
void grpc_client_fail_calls(grpc_client *c, int status, const char *msg);
/* h2io's writable hook: fires the stream's on_writable. */
void grpc_client_call_writable(h2io *io, goutq *q);

#endif
