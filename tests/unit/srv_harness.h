/* srv_harness.h — shared by the `kvstore serve` suites (test_srv_kv.c, test_srv_limits.c): the
 * server in-process on its own loop in a thread (127.0.0.1, port 0), a synchronous wrapper around
 * the project's gRPC client (on etcd_proc.h's loop helpers), raw-socket and HTTP helpers.
 * Header-only (static inline) so each suite stays one executable. */
#ifndef RELIST_SRV_HARNESS_H
#define RELIST_SRV_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etcd_proc.h" /* run_until, result, unary_wait */
#include "grpc.h"
#include "rpc.pb-c.h"
#include "server.h"
#include "testutil.h"

#define P_RANGE   "/etcdserverpb.KV/Range"
#define P_PUT     "/etcdserverpb.KV/Put"
#define P_DEL     "/etcdserverpb.KV/DeleteRange"
#define P_TXN     "/etcdserverpb.KV/Txn"
#define P_COMPACT "/etcdserverpb.KV/Compact"
#define P_STATUS  "/etcdserverpb.Maintenance/Status"

/* ================================================================ server in a thread */

typedef struct srvh {
    uv_thread_t th;
    uv_loop_t loop;
    uv_async_t stop;
    kvs_server *srv;
    kvs_server_opts o;
    char *dir;
    int port;
    uv_sem_t ready;
    bool failed;
    bool stop_sent; /* srv_stop_begin was called */
    char err[512];
} srvh;

static inline void on_srv_done(void *ud) {
    srvh *h = ud;
    uv_close((uv_handle_t *)&h->stop, NULL);
}

static inline void on_stop(uv_async_t *a) {
    srvh *h = a->data;
    kvs_server_shutdown(h->srv, on_srv_done, h);
}

static inline void srv_thread(void *arg) {
    srvh *h = arg;
    uv_loop_init(&h->loop);
    uv_async_init(&h->loop, &h->stop, on_stop);
    h->stop.data = h;
    if (kvs_server_start(&h->loop, &h->o, &h->srv, h->err, sizeof h->err) != 0) {
        h->failed = true;
        uv_close((uv_handle_t *)&h->stop, NULL);
        uv_run(&h->loop, UV_RUN_DEFAULT);
        uv_loop_close(&h->loop);
        uv_sem_post(&h->ready);
        return;
    }
    h->port = kvs_server_port(h->srv);
    uv_sem_post(&h->ready);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    kvs_server_free(h->srv);
    assert_int_equal(uv_loop_close(&h->loop), 0);
}

/* Starts a server on dir (made if NULL) with opts tweaks applied by the caller beforehand. */
static inline srvh *srv_start_opts(const char *dir, const kvs_server_opts *o) {
    srvh *h = calloc(1, sizeof *h);
    if (o) h->o = *o;
    h->dir = dir ? strdup(dir) : tu_mkdtemp("srv-kv");
    h->o.data_dir = h->dir;
    h->o.port = 0;
    uv_sem_init(&h->ready, 0);
    uv_thread_create(&h->th, srv_thread, h);
    uv_sem_wait(&h->ready);
    if (h->failed) fail_msg("server start failed: %s", h->err);
    return h;
}

static inline srvh *srv_start(void) {
    kvs_server_opts o;
    memset(&o, 0, sizeof o);
    o.no_sync = true; /* most tests do not measure durability */
    return srv_start_opts(NULL, &o);
}

/* Stops the server; keeps the data dir when keep is set (returns it), else removes it. */
/* Begins the server's shutdown (GOAWAY, in-flight calls finish) without waiting. */
static inline void srv_stop_begin(srvh *h) {
    if (!h->stop_sent) uv_async_send(&h->stop);
    h->stop_sent = true;
}

static inline char *srv_stop(srvh *h, bool keep) {
    srv_stop_begin(h);
    uv_thread_join(&h->th);
    uv_sem_destroy(&h->ready);
    char *dir = h->dir;
    free(h);
    if (keep) return dir;
    tu_rmtree(dir);
    return NULL;
}

/* Runs fn(arg) on the server's loop thread and waits for it. */
typedef struct on_srv {
    uv_sem_t sem;
    srvh *h;
    void (*fn)(srvh *h, void *arg);
    void *arg;
} on_srv;

static inline void on_srv_run(void *p) {
    on_srv *o = p;
    o->fn(o->h, o->arg);
    uv_sem_post(&o->sem);
}

static inline void run_on_server(srvh *h, void (*fn)(srvh *, void *), void *arg) {
    on_srv o = {.h = h, .fn = fn, .arg = arg};
    uv_sem_init(&o.sem, 0);
    assert_int_equal(grpc_server_post(kvs_server_grpc(h->srv), on_srv_run, &o), 0);
    uv_sem_wait(&o.sem);
    uv_sem_destroy(&o.sem);
}

static inline void get_grpc_stats(srvh *h, void *arg) {
    grpc_server_get_stats(kvs_server_grpc(h->srv), arg);
}
static inline void get_kvs_stats(srvh *h, void *arg) {
    kvs_server_get_stats(h->srv, arg);
}

/* ================================================================ client side */

static inline void sleep_loop(uv_loop_t *loop, uint64_t ms) {
    run_for(loop, ms);
}

static inline cli *cli_new(int port) {
    cli *c = cli_open(port, 256u << 20);
    assert_non_null(c);
    return c;
}

static inline void cli_free(cli *c) {
    assert_int_equal(cli_close(c), 0);
}

static inline int call_raw(cli *c, const char *path, const void *req, size_t len, result *r) {
    return unary_raw_wait(&c->loop, c->c, path, req, len, r, 20000, 30000);
}

static inline int call(cli *c, const char *path, const ProtobufCMessage *m, result *r) {
    return unary_wait(&c->loop, c->c, path, m, r, 20000, 30000);
}

static inline ProtobufCBinaryData bd(const char *s) {
    return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

static inline int64_t put(cli *c, const char *k, const char *v) {
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd(k);
    p.value = bd(v);
    result r = {0};
    assert_int_equal(call(c, P_PUT, &p.base, &r), 0);
    Etcdserverpb__PutResponse *pr = etcdserverpb__put_response__unpack(NULL, r.len, r.data);
    assert_non_null(pr);
    assert_non_null(pr->header);
    int64_t rev = pr->header->revision;
    assert_int_equal(pr->header->raft_term, 1);
    assert_true(pr->header->cluster_id != 0 && pr->header->member_id != 0);
    etcdserverpb__put_response__free_unpacked(pr, NULL);
    free(r.data);
    return rev;
}

static inline Etcdserverpb__RangeResponse *range(cli *c, Etcdserverpb__RangeRequest *q) {
    result r = {0};
    int st = call(c, P_RANGE, &q->base, &r);
    if (st != 0) fail_msg("range: %d %s", st, r.message);
    Etcdserverpb__RangeResponse *rr = etcdserverpb__range_response__unpack(NULL, r.len, r.data);
    free(r.data);
    assert_non_null(rr);
    assert_non_null(rr->header);
    return rr;
}

static inline bool kv_is(const Mvccpb__KeyValue *kv, const char *k, const char *v) {
    return kv->key.len == strlen(k) && !memcmp(kv->key.data, k, kv->key.len) &&
           (!v || (kv->value.len == strlen(v) && !memcmp(kv->value.data, v, kv->value.len)));
}

static inline void expect_error(cli *c, const char *path, const ProtobufCMessage *m, int code,
                                const char *msg) {
    result r = {0};
    int st = call(c, path, m, &r);
    if (st != code || (msg && strcmp(r.message, msg)))
        fail_msg("%s: want %d \"%s\", got %d \"%s\"", path, code, msg ? msg : "", st, r.message);
    free(r.data);
}

static inline Etcdserverpb__TxnResponse *txn(cli *c, Etcdserverpb__TxnRequest *t) {
    result r = {0};
    int st = call(c, P_TXN, &t->base, &r);
    if (st) fail_msg("txn: %d %s", st, r.message);
    Etcdserverpb__TxnResponse *tr = etcdserverpb__txn_response__unpack(NULL, r.len, r.data);
    free(r.data);
    assert_non_null(tr);
    return tr;
}

/* ---- raw sockets and HTTP ---- */

static inline int tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static inline void send_all(int fd, const void *p, size_t n) {
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static inline bool read_full(int fd, uint8_t *p, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = recv(fd, p + got, n - got, 0);
        if (k <= 0) return false;
        got += (size_t)k;
    }
    return true;
}

static inline char *http_get(int port, const char *path) {
    int fd = tcp_connect(port);
    char req[256];
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    send_all(fd, req, (size_t)n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t k;
    while ((k = recv(fd, buf + len, cap - len - 1, 0)) > 0) {
        len += (size_t)k;
        if (cap - len < 4096) buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    close(fd);
    return buf;
}

/* The value of the sample line starting with line_prefix (HELP/TYPE lines never match). */
static inline long metric(const char *text, const char *line_prefix) {
    char pat[512];
    snprintf(pat, sizeof pat, "\n%s", line_prefix);
    const char *p = strstr(text, pat);
    if (!p) return -1;
    return strtol(p + strlen(pat), NULL, 10);
}

#endif
