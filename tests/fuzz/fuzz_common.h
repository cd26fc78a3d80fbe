/* fuzz_common.h — what several libFuzzer targets of tests/fuzz share:
 *   - a loopback client for the socket-backed targets (fuzz_grpc_server, fuzz_http1): connect,
 *     write the input, half-close, read and drop the answers until the server closes, with a
 *     guard timer that bounds each input;
 *   - the engine kept across inputs by the store-backed targets (fuzz_kv_request,
 *     fuzz_watch_request): a no_sync store in a temporary directory, wiped and reopened now and
 *     then so it stays small.
 *
 * Key decisions:
 * - Header-only (static inline): each target stays one file plus the sources it exercises, and
 *   a target that uses only one half pays nothing for the other.
 * - The store half needs kv.h (clang's __has_include: the fuzz build is clang-only).
 * - Harness failures abort(): libFuzzer records that as a crash, which is what a broken harness
 *   must look like.
 * - The client owns no policy: the target sets what to write (up to two buffers) and how large
 *   a read buffer to use, then decides itself when the server side is done. */
#ifndef RELIST_FUZZ_COMMON_H
#define RELIST_FUZZ_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

/* ================================================================ loopback client */

typedef struct fuzz_client {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    uv_timer_t guard;
    uv_buf_t out[2]; /* written once connected, then the write side is shut down */
    unsigned n_out;
    char *rbuf; /* the target's read buffer: its size sets how many reads a long answer takes */
    size_t rbuf_len;
    bool closed, guard_closed;
} fuzz_client;

static inline void fuzz_on_client_closed(uv_handle_t *h) {
    fuzz_client *c = h->data;
    c->closed = true;
}

static inline void fuzz_client_close(fuzz_client *c) {
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, fuzz_on_client_closed);
}

static inline void fuzz_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)hint;
    fuzz_client *c = h->data;
    *buf = uv_buf_init(c->rbuf, (unsigned)c->rbuf_len);
}

static inline void fuzz_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    if (nread < 0) fuzz_client_close(s->data);
}

static inline void fuzz_on_shutdown(uv_shutdown_t *req, int status) {
    (void)req;
    (void)status;
}

static inline void fuzz_on_write(uv_write_t *req, int status) {
    fuzz_client *c = req->data;
    if (status < 0) {
        fuzz_client_close(c);
        return;
    }
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, fuzz_on_shutdown) != 0) fuzz_client_close(c);
}

static inline void fuzz_on_connect(uv_connect_t *req, int status) {
    fuzz_client *c = req->data;
    if (status < 0) {
        fuzz_client_close(c);
        return;
    }
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, c->out, c->n_out, fuzz_on_write) != 0) {
        fuzz_client_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, fuzz_on_alloc, fuzz_on_read);
}

static inline void fuzz_on_guard(uv_timer_t *t) {
    fuzz_client_close(t->data);
}

static inline void fuzz_on_guard_closed(uv_handle_t *h) {
    fuzz_client *c = h->data;
    c->guard_closed = true;
}

/* Starts c (out, n_out, rbuf and rbuf_len already set) towards addr on loop; the guard closes
 * the client after guard_ms. Run the loop until c->closed (and the server is done), then
 * fuzz_client_finish. */
static inline void fuzz_client_start(fuzz_client *c, uv_loop_t *loop,
                                     const struct sockaddr_in *addr, uint64_t guard_ms) {
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    uv_timer_init(loop, &c->guard);
    c->guard.data = c;
    uv_timer_start(&c->guard, fuzz_on_guard, guard_ms, 0);
    if (uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)addr, fuzz_on_connect) != 0)
        fuzz_client_close(c);
}

/* Closes the guard timer and runs loop until it is closed (c may be freed afterwards). */
static inline void fuzz_client_finish(fuzz_client *c, uv_loop_t *loop) {
    uv_close((uv_handle_t *)&c->guard, fuzz_on_guard_closed);
    while (!c->guard_closed)
        uv_run(loop, UV_RUN_ONCE);
}

/* ================================================================ engine across inputs */

/* Only where the target can see the engine's header (the socket-backed targets link no engine). */
#if __has_include("kv.h")
#include "kv.h"
#include "testutil.h"

typedef struct fuzz_store {
    const char *who; /* the target's name, for the one error message */
    char *dir;       /* tu_mkdtemp */
    kv_store *kv;
    void (*seed)(kv_store *kv); /* optional: history written after every (re)open */
} fuzz_store;

/* Opens the engine in s->dir (no_sync, a 64 MiB map), then seeds it. */
static inline void fuzz_store_open(fuzz_store *s) {
    kv_options o = {.map_size = (size_t)64 << 20, .no_sync = true, .cluster_id = 1, .member_id = 2};
    kv_err err;
    if (kv_open(s->dir, &o, &s->kv, &err) != KV_OK) {
        fprintf(stderr, "%s: kv_open %s: %s\n", s->who, s->dir, err.msg);
        abort();
    }
    if (s->seed) s->seed(s->kv);
}

/* Makes the temporary directory (named after tag) and opens the engine in it. */
static inline void fuzz_store_init(fuzz_store *s, const char *tag) {
    s->dir = tu_mkdtemp(tag);
    fuzz_store_open(s);
}

/* Closes the engine, deletes its files and reopens it empty (then seeded). */
static inline void fuzz_store_reset(fuzz_store *s) {
    kv_close(s->kv);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -f '%s'/*", s->dir);
    if (system(cmd) != 0) abort();
    fuzz_store_open(s);
}

/* Closes the engine and removes the directory (for atexit). */
static inline void fuzz_store_destroy(fuzz_store *s) {
    if (s->kv) kv_close(s->kv);
    s->kv = NULL;
    tu_rmtree(s->dir);
    s->dir = NULL;
}

#endif /* __has_include("kv.h") */

#endif
