/* hostile_common.h — what the hostile-client suites share (test_hostile.c: random bytes,
 * garbage frames, limits and nesting, unread LISTs, 100k keys; test_hostile_conns.c: idle
 * connections, handshake and keepalive flags):
 *   - the REAL `kvstore serve` binary as a child process (127.0.0.1:0, --unsafe-no-fsync so
 *     seeding is fast, plus per-test flags), stopped with SIGTERM;
 *   - its memory: RssAnon from /proc/PID/status (heap; LMDB's file-backed mmap pages are not the
 *     server's to bound), checked as growth over the test's own baseline, the bound tripled
 *     under sanitizers (ASan's shadow and redzones);
 *   - a synchronous gRPC client (the project's client on its own loop) and check_alive(): a
 *     normal Put/Range on a fresh connection must work after each hostile client;
 *   - raw sockets: connect, send what the server accepts, drain to EOF, HTTP/2 frame headers.
 *
 * Key decisions:
 * - Header-only (static inline), like etcd_proc.h: every test_*.c stays one executable and an
 *   unused helper costs nothing.
 * - Unlike etcd_proc.h these helpers assert with cmocka (fail_msg, skip): they exist only to
 *   fail or skip the running test.
 * - The kvstore path: $RELIST_KVSTORE_BIN or the RELIST_KVSTORE_BIN compile definition that
 *   tests/integration/reliability.cmake gives both suites; without either they skip. */
#ifndef RELIST_HOSTILE_COMMON_H
#define RELIST_HOSTILE_COMMON_H

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
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcd_proc.h" /* run_until, kvstore serve on port 0, txn of puts */
#include "grpc.h"
#include "rpc.pb-c.h"
#include "testutil.h"

#define P_RANGE "/etcdserverpb.KV/Range"
#define P_PUT   "/etcdserverpb.KV/Put"
#define P_TXN   "/etcdserverpb.KV/Txn"
#define P_WATCH "/etcdserverpb.Watch/Watch"

#if defined(__SANITIZE_ADDRESS__)
#define MEM_SCALE 3
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_SCALE 3
#endif
#endif
#ifndef MEM_SCALE
#define MEM_SCALE 1
#endif
#define MiB (1024L * 1024L)

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* ================================================================ the child process */

static inline const char *kvstore_bin(void) {
    return etcd_proc_kvstore_bin();
}

typedef struct server {
    pid_t pid;
    int port, out;
    char *dir;
    long rss0; /* RssAnon (KiB) after start */
} server;

/* `kvstore serve --listen 127.0.0.1:0 --unsafe-no-fsync` plus the NULL-terminated extra
 * flags (may be NULL). */
static inline void server_start_with(server *s, const char *const *extra) {
    const char *bin = kvstore_bin();
    if (!bin) skip();
    s->dir = tu_mkdtemp("hostile");
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[24] = {bin,          "serve", "--listen",         "127.0.0.1:0",
                                "--data-dir", s->dir,  "--unsafe-no-fsync"};
        for (int n = 7; extra && *extra && n < 23; n++)
            argv[n] = *extra++;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(pfd[1], 1);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    s->pid = pid;
    s->out = pfd[0];
    char line[512];
    s->port = etcd_proc_read_serving_port(pfd[0], line, sizeof line);
    if (s->port <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("kvstore did not start (output \"%s\")", line);
    }
}

static inline void server_start(server *s) {
    server_start_with(s, NULL);
}

/* A /proc/PID/status field in KiB (VmRSS, RssAnon, VmHWM...). */
static inline long proc_kib(pid_t pid, const char *field) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl) && line[fl] == ':') v = atol(line + fl + 1);
    fclose(f);
    return v;
}

static inline long rss_anon(const server *s) {
    return proc_kib(s->pid, "RssAnon");
}

/* The server is alive (not exited) and its anonymous RSS grew less than bound_mib. */
static inline void check_mem(const server *s, const char *what, long bound_mib) {
    int st;
    if (waitpid(s->pid, &st, WNOHANG) == s->pid)
        fail_msg("%s: kvstore exited (status 0x%x)", what, st);
    long now = rss_anon(s), rss = proc_kib(s->pid, "VmRSS");
    long bound = bound_mib * MEM_SCALE * 1024;
    print_message("  %-28s RssAnon %6ld KiB (+%ld KiB, bound +%ld KiB), VmRSS %ld KiB\n", what, now,
                  now - s->rss0, bound, rss);
    if (now - s->rss0 > bound)
        fail_msg("%s: server RssAnon grew %ld KiB > %ld KiB", what, now - s->rss0, bound);
}

static inline void server_stop(server *s) {
    kill(s->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 500; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) break;
        usleep(10000);
        if (i == 499) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            fail_msg("kvstore did not stop within 5 s of SIGTERM");
        }
    }
    /* a clean SIGTERM shutdown exits 0; reported, not asserted (sanitizer leak reports) */
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        print_message("  note: kvstore stopped with wait status 0x%x after SIGTERM\n", st);
    close(s->out);
    tu_rmtree(s->dir);
}

/* ================================================================ a synchronous gRPC client */

static inline cli *cli_new(int port) {
    cli *c = cli_open(port, 512u << 20);
    assert_non_null(c);
    return c;
}

static inline void cli_free(cli *c) {
    assert_int_equal(cli_close(c), 0);
}

/* etcd_proc.h's synchronous unary call, with deadlines for a server under attack */
static inline int call_raw(cli *c, const char *path, const void *req, size_t len, result *r) {
    return unary_raw_wait(&c->loop, c->c, path, req, len, r, 60000, 70000);
}

static inline int call(cli *c, const char *path, const ProtobufCMessage *m, result *r) {
    return unary_wait(&c->loop, c->c, path, m, r, 60000, 70000);
}

static inline ProtobufCBinaryData bd(const char *s) {
    return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

/* A normal client on a fresh connection: Put then Range of the same key. */
static inline void check_alive(const server *s, const char *what) {
    cli *c = cli_new(s->port);
    char key[64];
    snprintf(key, sizeof key, "/alive/%s", what);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd(key);
    p.value = bd("ok");
    result r = {0};
    int st = call(c, P_PUT, &p.base, &r);
    if (st != 0) fail_msg("%s: Put afterwards: %d %s", what, st, r.message);
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd(key);
    st = call(c, P_RANGE, &q.base, &r);
    if (st != 0) fail_msg("%s: Range afterwards: %d %s", what, st, r.message);
    Etcdserverpb__RangeResponse *rr = etcdserverpb__range_response__unpack(NULL, r.len, r.data);
    assert_non_null(rr);
    assert_int_equal(rr->n_kvs, 1);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    free(r.data);
    cli_free(c);
}

/* ================================================================ raw sockets */

static inline int tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Sends what the server lets us send (it may close early: that is an allowed answer). */
static inline void send_some(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k <= 0) return;
        b += k;
        n -= (size_t)k;
    }
}

/* Half-closes and reads until the server closes; false if it is still open after timeout. */
static inline bool drained_to_eof(int fd, int timeout_ms) {
    shutdown(fd, SHUT_WR);
    uint8_t buf[16384];
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left =
            timeout_ms - ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) return false;
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k <= 0) return true; /* EOF or reset */
    }
}

static inline void frame_hdr(uint8_t *h, size_t len, uint8_t type, uint8_t flags, uint32_t sid) {
    h[0] = (uint8_t)(len >> 16), h[1] = (uint8_t)(len >> 8), h[2] = (uint8_t)len;
    h[3] = type, h[4] = flags;
    h[5] = (uint8_t)(sid >> 24), h[6] = (uint8_t)(sid >> 16), h[7] = (uint8_t)(sid >> 8);
    h[8] = (uint8_t)sid;
}

#endif
