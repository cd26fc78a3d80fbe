/* grpc_srv_thread.h — a grpc_server on its own loop thread, for the suites that poke it with
 * raw sockets (test_grpc_raw.c, test_grpc_keepalive.c): start on an ephemeral loopback port,
 * run a function on the server's loop and wait for it, an HTTP/1 hand-over hook that counts
 * and answers "ok", a clean stop; and the raw side: connect, send, write one HTTP/2 frame.
 *
 * Header-only (static inline) like etcd_proc.h; include after <cmocka.h> (it asserts). */
#ifndef RELIST_TEST_GRPC_SRV_THREAD_H
#define RELIST_TEST_GRPC_SRV_THREAD_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "grpc.h"

typedef struct srv_thread {
    uv_loop_t loop;
    grpc_server *srv;
    uv_thread_t th;
    int port;
    bool done;
    int http1_calls;        /* connections handed over by srv_on_http1 */
    char http1_initial[64]; /* the first bytes of the last one */
} srv_thread;

static inline void srv_h1_closed(uv_handle_t *h) {
    free(h);
}

static inline void srv_h1_written(uv_write_t *w, int status) {
    (void)status;
    uv_close((uv_handle_t *)w->handle, srv_h1_closed);
    free(w);
}

/* grpc_server_opts.on_http1: counts, keeps the first bytes, answers "ok" and closes. */
static inline void srv_on_http1(void *ud, uv_tcp_t *tcp, const char *initial, size_t n) {
    srv_thread *t = ud;
    t->http1_calls++;
    snprintf(t->http1_initial, sizeof t->http1_initial, "%.*s", (int)(n < 63 ? n : 63), initial);
    static char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    uv_write_t *w = malloc(sizeof *w);
    uv_buf_t b = uv_buf_init(resp, sizeof resp - 1);
    uv_write(w, (uv_stream_t *)tcp, &b, 1, srv_h1_written);
}

static inline void srv_run(void *arg) {
    uv_run(&((srv_thread *)arg)->loop, UV_RUN_DEFAULT);
}

/* Starts a server with opts o (o->ud is set to the thread) serving methods[0..n). */
static inline srv_thread *srv_start_with(grpc_server_opts *o, const grpc_method *methods,
                                         size_t n) {
    srv_thread *t = calloc(1, sizeof *t);
    assert_non_null(t);
    uv_loop_init(&t->loop);
    o->ud = t;
    t->srv = grpc_server_new(&t->loop, o, methods, n);
    assert_non_null(t->srv);
    assert_int_equal(grpc_server_listen(t->srv, "127.0.0.1", 0), 0);
    t->port = grpc_server_port(t->srv);
    uv_thread_create(&t->th, srv_run, t);
    return t;
}

typedef struct srv_call {
    srv_thread *t;
    void (*fn)(srv_thread *t, void *arg);
    void *arg;
    uv_sem_t sem;
} srv_call;

static inline void srv_call_cb(void *p) {
    srv_call *c = p;
    c->fn(c->t, c->arg);
    uv_sem_post(&c->sem);
}

/* Runs fn(t, arg) on the server's loop and waits until it has run (reading stats safely). */
static inline void srv_on_loop(srv_thread *t, void (*fn)(srv_thread *t, void *arg), void *arg) {
    srv_call c = {.t = t, .fn = fn, .arg = arg};
    uv_sem_init(&c.sem, 0);
    assert_int_equal(grpc_server_post(t->srv, srv_call_cb, &c), 0);
    uv_sem_wait(&c.sem);
    uv_sem_destroy(&c.sem);
}

static inline void srv_done(void *ud) {
    ((srv_thread *)ud)->done = true;
}

static inline void srv_stop_cb(void *arg) {
    grpc_server_shutdown(((srv_thread *)arg)->srv, srv_done, arg);
}

/* Graceful shutdown, thread joined, everything freed; the loop must close clean. */
static inline void srv_stop(srv_thread *t) {
    assert_int_equal(grpc_server_post(t->srv, srv_stop_cb, t), 0);
    uv_thread_join(&t->th);
    assert_true(t->done);
    grpc_server_free(t->srv);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    free(t);
}

/* ---------------------------------------------------------------- the raw side */

/* A loopback connection; rcv_timeout_s > 0 bounds each read (0 = block). */
static inline int raw_connect(int port, int rcv_timeout_s) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    if (rcv_timeout_s > 0) {
        struct timeval tv = {.tv_sec = rcv_timeout_s};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    return fd;
}

static inline void raw_send(int fd, const void *p, size_t n) {
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static inline void raw_frame(int fd, uint8_t type, uint8_t flags, uint32_t sid, const void *p,
                             size_t n) {
    uint8_t h[9] = {
        (uint8_t)(n >> 16),   (uint8_t)(n >> 8),    (uint8_t)n,          type,        flags,
        (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
    raw_send(fd, h, 9);
    if (n) raw_send(fd, p, n);
}

#endif
