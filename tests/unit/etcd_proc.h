/* etcd_proc.h — what the suites that talk to a live server share (test_grpc_etcd.c,
 * test_grpc_loop.c, srv_harness.h, test_refl_live_util.h):
 *   - a free loopback port;
 *   - a real etcd 3.4 (or our `kvstore serve`) as a child process on such ports with a
 *     temporary data dir: start, wait until it answers, kill, remove its files;
 *   - running a uv loop until a flag is set (or a predicate holds), and a synchronous unary gRPC
 * call on top of it, with a client on its own loop (cli);
 *   - for the suites that run `kvstore serve --listen 127.0.0.1:0` themselves (test_crash_kill.c,
 *     hostile_common.h): where the binary is, the child's exec, and the port it announces;
 *   - a TxnRequest of n puts (etcd's ops limit and duplicate-key checks).
 *
 * Key decisions:
 * - Header-only (static inline): every test_*.c stays one executable and an unused helper costs
 *   nothing.
 * - Plain C, no cmocka: errors are values (-1 / false, the reason in err[]), so each suite decides
 *   between skip() and fail_msg().
 * - Ports come from bind(127.0.0.1:0) and close, so another process may take one before the
 *   server binds it: callers that must not flake retry a start with fresh ports.
 * - The child's stdout/stderr go to <dir>/server.log, appended across restarts, for post-mortems.
 * - Ready means "a probe succeeds while the process lives". The default probe is HTTP GET /health
 *   (200 with "health":"true"), which etcd 3.4 answers only once it has elected itself; a suite
 *   may pass its own probe (e.g. a Put through the client under test). */
#ifndef RELIST_ETCD_PROC_H
#define RELIST_ETCD_PROC_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <protobuf-c/protobuf-c.h>

#include "grpc.h"
#include "rpc.pb-c.h"
#include "testutil.h"

/* ================================================================ uv loop helpers */

static inline void on_wake(uv_timer_t *t) {
    (void)t;
}

/* Runs loop until done(arg) or timeout_ms; returns done(arg). A 5 ms timer keeps uv_run from
 * blocking forever when nothing else is pending. */
static inline bool run_until_fn(uv_loop_t *loop, bool (*done)(void *arg), void *arg,
                                uint64_t timeout_ms) {
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, on_wake, 5, 5);
    uint64_t end = uv_now(loop) + timeout_ms;
    while (!done(arg) && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return done(arg);
}

static inline bool flag_is_set(void *flag) {
    return *(const volatile bool *)flag;
}

/* Runs loop until *flag or timeout_ms; returns *flag. */
static inline bool run_until(uv_loop_t *loop, const volatile bool *flag, uint64_t timeout_ms) {
    return run_until_fn(loop, flag_is_set, (void *)flag, timeout_ms);
}

/* Runs loop for ms (the callbacks of everything on it keep running). */
static inline void run_for(uv_loop_t *loop, uint64_t ms) {
    bool never = false;
    run_until(loop, &never, ms);
}

/* The outcome of one unary call; data (the response message, malloc'd) is the caller's. */
typedef struct result {
    bool done;
    int status;
    char message[256];
    uint8_t *data;
    size_t len;
} result;

static inline void on_result(void *ud, int status, const char *message, const uint8_t *resp,
                             size_t len) {
    result *r = ud;
    r->done = true;
    r->status = status;
    snprintf(r->message, sizeof r->message, "%s", message);
    free(r->data);
    r->data = NULL;
    if (resp) {
        r->data = malloc(len ? len : 1);
        memcpy(r->data, resp, len);
    }
    r->len = len;
}

/* A unary call of len request bytes with a deadline of deadline_ms, waiting up to wait_ms on
 * loop. Returns the gRPC status, grpc_client_unary's error when it refused the call, or -100
 * when no answer came in time. */
static inline int unary_raw_wait(uv_loop_t *loop, grpc_client *c, const char *path, const void *req,
                                 size_t len, result *r, uint32_t deadline_ms, uint64_t wait_ms) {
    r->done = false;
    int rv = grpc_client_unary(c, path, req, len, deadline_ms, on_result, r);
    if (rv != 0) return rv;
    if (!run_until(loop, &r->done, wait_ms)) return -100;
    return r->status;
}

/* The same with a protobuf-c message packed for the caller. */
static inline int unary_wait(uv_loop_t *loop, grpc_client *c, const char *path,
                             const ProtobufCMessage *m, result *r, uint32_t deadline_ms,
                             uint64_t wait_ms) {
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    protobuf_c_message_pack(m, buf);
    int st = unary_raw_wait(loop, c, path, buf, n, r, deadline_ms, wait_ms);
    free(buf);
    return st;
}

/* A client on its own loop for the synchronous calls above (srv_harness.h, hostile_common.h):
 * NULL when the client cannot be made. cli_free runs the loop until the client is gone. */
typedef struct cli {
    uv_loop_t loop;
    grpc_client *c;
} cli;

static inline cli *cli_open(int port, size_t max_recv_msg_size) {
    cli *c = calloc(1, sizeof *c);
    if (!c || uv_loop_init(&c->loop) != 0) {
        free(c);
        return NULL;
    }
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    grpc_client_opts o = {.max_recv_msg_size = max_recv_msg_size};
    if (!(c->c = grpc_client_new(&c->loop, target, &o))) {
        uv_loop_close(&c->loop);
        free(c);
        return NULL;
    }
    return c;
}

/* 0, or -1 when the loop would not close (a handle left open). */
static inline int cli_close(cli *c) {
    grpc_client_free(c->c);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&c->loop);
    free(c);
    return rc == 0 ? 0 : -1;
}

/* ================================================================ the server process */

/* A free TCP port on 127.0.0.1, or -1. */
static inline int etcd_proc_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

typedef struct etcd_proc {
    const char *bin; /* the server binary (the caller's string) */
    bool kvstore;    /* run bin as `kvstore serve` (one client port, no peers) */
    char *dir;       /* temporary dir (tu_mkdtemp): data/ and server.log */
    char datadir[1100], logpath[1100];
    int cport, pport; /* client and peer ports */
    char ep[64];      /* "127.0.0.1:<cport>", a grpc_client target */
    pid_t pid;        /* 0 when not running */
    char err[256];
} etcd_proc;

/* Prepares p for bin (nothing runs yet): a fresh temporary dir named after tag. */
static inline void etcd_proc_init(etcd_proc *p, const char *bin, bool kvstore, const char *tag) {
    memset(p, 0, sizeof *p);
    p->bin = bin;
    p->kvstore = kvstore;
    p->dir = tu_mkdtemp(tag);
    snprintf(p->datadir, sizeof p->datadir, "%s/data", p->dir);
    snprintf(p->logpath, sizeof p->logpath, "%s/server.log", p->dir);
}

/* Starts the server on the current ports and data dir (a restart keeps both). */
static inline int etcd_proc_spawn(etcd_proc *p) {
    char curl[64], purl[64], cluster[96];
    snprintf(curl, sizeof curl, "http://127.0.0.1:%d", p->cport);
    snprintf(purl, sizeof purl, "http://127.0.0.1:%d", p->pport);
    snprintf(cluster, sizeof cluster, "n1=%s", purl);
    snprintf(p->ep, sizeof p->ep, "127.0.0.1:%d", p->cport);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(p->err, sizeof p->err, "fork failed");
        return -1;
    }
    if (pid > 0) {
        p->pid = pid;
        return 0;
    }
    int fd = open(p->logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    if (p->kvstore)
        execl(p->bin, "kvstore", "serve", "--listen-client-urls", curl, "--data-dir", p->datadir,
              (char *)NULL);
    else
        execl(p->bin, "etcd", "--data-dir", p->datadir, "--name", "n1", "--listen-client-urls",
              curl, "--advertise-client-urls", curl, "--listen-peer-urls", purl,
              "--initial-advertise-peer-urls", purl, "--initial-cluster", cluster, (char *)NULL);
    _exit(127);
}

/* Picks fresh free ports and starts the server on them. */
static inline int etcd_proc_start(etcd_proc *p) {
    p->cport = etcd_proc_free_port();
    p->pport = etcd_proc_free_port();
    if (p->cport < 0 || p->pport < 0) {
        snprintf(p->err, sizeof p->err, "no free loopback port");
        return -1;
    }
    return etcd_proc_spawn(p);
}

/* True when the process is not running (reaped here if it exited on its own). */
static inline bool etcd_proc_exited(etcd_proc *p) {
    int st;
    if (p->pid > 0 && waitpid(p->pid, &st, WNOHANG) == p->pid) p->pid = 0;
    return p->pid <= 0;
}

/* One GET /health on the client port with blocking 1 s timeouts: true on 200 and "true". */
static inline bool etcd_proc_healthy(const etcd_proc *p) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)p->cport)};
    static const char req[] =
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    char buf[1024];
    size_t n = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1)) {
        ssize_t k;
        while (n < sizeof buf - 1 && (k = recv(fd, buf + n, sizeof buf - 1 - n, 0)) > 0)
            n += (size_t)k;
    }
    close(fd);
    buf[n] = 0;
    return strncmp(buf, "HTTP/1.1 200", 12) == 0 && strstr(buf, "\"health\":\"true\"") != NULL;
}

/* Waits until probe(arg) (NULL: etcd_proc_healthy) succeeds, at most timeout_ms; between tries
 * it runs loop for 100 ms (or sleeps when loop is NULL). False when the process exits first or
 * time runs out (the reason in p->err). */
static inline bool etcd_proc_wait_ready(etcd_proc *p, uv_loop_t *loop, bool (*probe)(void *arg),
                                        void *arg, uint64_t timeout_ms) {
    for (uint64_t waited = 0;; waited += 100) {
        if (etcd_proc_exited(p)) {
            snprintf(p->err, sizeof p->err, "%.100s exited (log %.120s)", p->bin, p->logpath);
            return false;
        }
        if (probe ? probe(arg) : etcd_proc_healthy(p)) return true;
        if (waited >= timeout_ms) break;
        if (loop)
            run_for(loop, 100);
        else
            usleep(100 * 1000);
    }
    snprintf(p->err, sizeof p->err, "%.100s not ready in %llu ms (log %.120s)", p->bin,
             (unsigned long long)timeout_ms, p->logpath);
    return false;
}

/* Sends sig and reaps the process (no-op when it is not running). */
static inline void etcd_proc_kill(etcd_proc *p, int sig) {
    if (p->pid > 0) {
        kill(p->pid, sig);
        int st;
        waitpid(p->pid, &st, 0);
        p->pid = 0;
    }
}

/* Kills the server if it still runs and removes its temporary dir. */
static inline void etcd_proc_cleanup(etcd_proc *p) {
    etcd_proc_kill(p, SIGKILL);
    if (p->dir) tu_rmtree(p->dir);
    p->dir = NULL;
}

/* ================================================================ `kvstore serve` on port 0 */

/* The kvstore binary: $RELIST_KVSTORE_BIN, else the RELIST_KVSTORE_BIN the suite was compiled
 * with, else NULL (the caller skips). */
static inline const char *etcd_proc_kvstore_bin(void) {
    const char *e = getenv("RELIST_KVSTORE_BIN");
    if (e && *e) return e;
#ifdef RELIST_KVSTORE_BIN
    return RELIST_KVSTORE_BIN;
#else
    return NULL;
#endif
}

/* In the forked child: dies with the parent (a failed test never leaves a server behind), sends
 * stdout to out_fd and execs `bin serve --listen 127.0.0.1:0 --data-dir dir` (plus
 * --unsafe-no-fsync when no_fsync). Never returns. */
static inline void etcd_proc_exec_serve(const char *bin, const char *dir, int out_fd,
                                        bool no_fsync) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(out_fd, 1);
    if (no_fsync)
        execl(bin, bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--unsafe-no-fsync",
              (char *)NULL);
    else
        execl(bin, bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir, (char *)NULL);
    _exit(127);
}

/* Reads the child's first output line from fd (at most 20 s between reads) into line (cap
 * bytes, NUL-terminated) and returns the port of its "... on 127.0.0.1:PORT", or -1. */
static inline int etcd_proc_read_serving_port(int fd, char *line, size_t cap) {
    size_t n = 0;
    while (n < cap - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20000) <= 0) break;
        ssize_t k = read(fd, line + n, cap - 1 - n);
        if (k <= 0) break;
        n += (size_t)k;
        line[n] = 0;
        if (strchr(line, '\n')) break;
    }
    line[n] = 0;
    const char *p = strstr(line, "on 127.0.0.1:");
    return p ? atoi(p + strlen("on 127.0.0.1:")) : -1;
}

/* ================================================================ request builders */

/* Fills a TxnRequest whose success branch is n puts on keys printf(key_fmt, i) (keys[i], each
 * key_cap bytes, all arrays of n owned by the caller). */
static inline void etcd_txn_of_puts(Etcdserverpb__TxnRequest *t, size_t n,
                                    Etcdserverpb__PutRequest *ps, Etcdserverpb__RequestOp *ops,
                                    Etcdserverpb__RequestOp **opp, char *keys, size_t key_cap,
                                    const char *key_fmt) {
    for (size_t i = 0; i < n; i++) {
        Etcdserverpb__PutRequest pi = ETCDSERVERPB__PUT_REQUEST__INIT;
        Etcdserverpb__RequestOp oi = ETCDSERVERPB__REQUEST_OP__INIT;
        char *k = keys + i * key_cap;
        snprintf(k, key_cap, key_fmt, (int)i);
        ps[i] = pi;
        ps[i].key = (ProtobufCBinaryData){strlen(k), (uint8_t *)k};
        ops[i] = oi;
        ops[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        ops[i].request_put = &ps[i];
        opp[i] = &ops[i];
    }
    Etcdserverpb__TxnRequest ti = ETCDSERVERPB__TXN_REQUEST__INIT;
    *t = ti;
    t->n_success = n;
    t->success = opp;
}

#endif
