/* test_hostile.c — hostile clients against the REAL `kvstore serve` binary (a child process,
 * --unsafe-no-fsync so seeding is fast): random bytes, a valid preface then garbage frames,
 * 10,000 idle connections, a raw client that never reads large LISTs, requests just over each
 * limit, deeply nested txns, and a range over 100k keys followed by a watch of every key from
 * revision 1. Each hostile client must get an error or a closed connection; after each, a
 * normal Put/Range on a fresh connection must work; and the server's memory stays bounded.
 * Memory is the child's RssAnon from /proc/PID/status (heap; LMDB's file-backed mmap pages are
 * not the server's to bound); the bounds below are growth over the test's own baseline and are
 * tripled under sanitizers (ASan's shadow and redzones). The kvstore path: $RELIST_KVSTORE_BIN
 * or the RELIST_KVSTORE_BIN compile definition (tests/integration/reliability.cmake). */
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

static const char *kvstore_bin(void) {
    return etcd_proc_kvstore_bin();
}

typedef struct server {
    pid_t pid;
    int port, out;
    char *dir;
    long rss0; /* RssAnon (KiB) after start */
} server;

static void server_start(server *s) {
    const char *bin = kvstore_bin();
    if (!bin) skip();
    s->dir = tu_mkdtemp("hostile");
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) etcd_proc_exec_serve(bin, s->dir, pfd[1], true);
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

/* A /proc/PID/status field in KiB (VmRSS, RssAnon, VmHWM...). */
static long proc_kib(pid_t pid, const char *field) {
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

static long rss_anon(const server *s) {
    return proc_kib(s->pid, "RssAnon");
}

/* The server is alive (not exited) and its anonymous RSS grew less than bound_mib. */
static void check_mem(const server *s, const char *what, long bound_mib) {
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

static void server_stop(server *s) {
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

typedef struct cli {
    uv_loop_t loop;
    grpc_client *c;
} cli;

typedef struct reply {
    bool done;
    int status;
    char message[256];
    uint8_t *data;
    size_t len;
} reply;

static cli *cli_new(int port) {
    cli *c = calloc(1, sizeof *c);
    uv_loop_init(&c->loop);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    grpc_client_opts o = {.max_recv_msg_size = 512u << 20};
    c->c = grpc_client_new(&c->loop, target, &o);
    assert_non_null(c->c);
    return c;
}

static void cli_free(cli *c) {
    grpc_client_free(c->c);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    free(c);
}

static void on_reply(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    reply *r = ud;
    r->done = true;
    r->status = status;
    snprintf(r->message, sizeof r->message, "%s", message);
    free(r->data);
    r->data = malloc(len ? len : 1);
    if (resp) memcpy(r->data, resp, len);
    r->len = len;
}

static int call_raw(cli *c, const char *path, const void *req, size_t len, reply *r) {
    r->done = false;
    if (grpc_client_unary(c->c, path, req, len, 60000, on_reply, r) != 0) return -100;
    if (!run_until(&c->loop, &r->done, 70000)) return -101;
    return r->status;
}

static int call(cli *c, const char *path, const ProtobufCMessage *m, reply *r) {
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    protobuf_c_message_pack(m, buf);
    int st = call_raw(c, path, buf, n, r);
    free(buf);
    return st;
}

static ProtobufCBinaryData bd(const char *s) {
    return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

/* A normal client on a fresh connection: Put then Range of the same key. */
static void check_alive(const server *s, const char *what) {
    cli *c = cli_new(s->port);
    char key[64];
    snprintf(key, sizeof key, "/alive/%s", what);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd(key);
    p.value = bd("ok");
    reply r = {0};
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

static int tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Sends what the server lets us send (it may close early: that is an allowed answer). */
static void send_some(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k <= 0) return;
        b += k;
        n -= (size_t)k;
    }
}

/* Half-closes and reads until the server closes; false if it is still open after timeout. */
static bool drained_to_eof(int fd, int timeout_ms) {
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

static void frame_hdr(uint8_t *h, size_t len, uint8_t type, uint8_t flags, uint32_t sid) {
    h[0] = (uint8_t)(len >> 16), h[1] = (uint8_t)(len >> 8), h[2] = (uint8_t)len;
    h[3] = type, h[4] = flags;
    h[5] = (uint8_t)(sid >> 24), h[6] = (uint8_t)(sid >> 16), h[7] = (uint8_t)(sid >> 8);
    h[8] = (uint8_t)sid;
}

static void fill_random(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rand() >> 7);
}

/* ================================================================ random bytes / garbage frames */

static void test_random_bytes(void **state) {
    (void)state;
    server s = {0};
    server_start(&s);
    s.rss0 = rss_anon(&s);
    enum { N = 64 };
    int closed = 0;
    for (int i = 0; i < N; i++) {
        int fd = tcp_connect(s.port);
        size_t n = 1 + (size_t)rand() % 65536;
        uint8_t *b = malloc(n);
        fill_random(b, n);
        if (b[0] == 'P') b[0] = 'X'; /* not the preface, and not by luck an HTTP/1 PRI */
        send_some(fd, b, n);
        free(b);
        closed += drained_to_eof(fd, 5000);
        close(fd);
    }
    print_message("  random bytes: %d/%d connections closed by the server\n", closed, N);
    assert_int_equal(closed, N);
    check_alive(&s, "random-bytes");
    check_mem(&s, "after random bytes", 64);
    server_stop(&s);
}

static void test_garbage_frames(void **state) {
    (void)state;
    server s = {0};
    server_start(&s);
    s.rss0 = rss_anon(&s);
    enum { N = 64 };
    int closed = 0;
    for (int i = 0; i < N; i++) {
        int fd = tcp_connect(s.port);
        uint8_t hdr[9];
        send_some(fd, PREFACE, 24);
        frame_hdr(hdr, 0, 4, 0, 0); /* empty SETTINGS: a valid start */
        send_some(fd, hdr, 9);
        int frames = 1 + rand() % 32;
        for (int f = 0; f < frames; f++) {
            size_t len = (size_t)rand() % (i % 4 == 0 ? 70000 : 512); /* some over 16 KiB */
            uint8_t *p = malloc(len + 1);
            fill_random(p, len);
            frame_hdr(hdr, len, (uint8_t)(rand() % 12), (uint8_t)rand(),
                      (uint32_t)(rand() % 4 ? rand() % 16 : rand()));
            send_some(fd, hdr, 9);
            send_some(fd, p, len);
            free(p);
        }
        if (i % 8 == 0) { /* HEADERS with garbage HPACK on a valid stream */
            uint8_t junk[40];
            fill_random(junk, sizeof junk);
            frame_hdr(hdr, sizeof junk, 1, 0x4 | 0x1, 1);
            send_some(fd, hdr, 9);
            send_some(fd, junk, sizeof junk);
        }
        closed += drained_to_eof(fd, 5000);
        close(fd);
    }
    print_message("  garbage frames: %d/%d connections closed by the server\n", closed, N);
    assert_int_equal(closed, N);
    check_alive(&s, "garbage-frames");
    check_mem(&s, "after garbage frames", 64);
    server_stop(&s);
}

/* ================================================================ 10,000 idle connections */

static void test_idle_connections(void **state) {
    (void)state;
    int want = 10000;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rlim_t need = (rlim_t)want + 512;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < need) {
        want = (int)rl.rlim_cur - 512;
        print_message("  RLIMIT_NOFILE hard limit %llu: only %d idle connections\n",
                      (unsigned long long)rl.rlim_max, want);
    }
    server s = {0};
    server_start(&s); /* inherits our raised limit */
    s.rss0 = rss_anon(&s);
    {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/limits", (int)s.pid);
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof line, f))
            if (!strncmp(line, "Max open files", 14)) print_message("  server: %s", line);
        if (f) fclose(f);
    }
    int *fds = malloc(sizeof(int) * (size_t)want);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)s.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    uint8_t hello[24 + 9];
    memcpy(hello, PREFACE, 24);
    frame_hdr(hello + 24, 0, 4, 0, 0);
    int up = 0;
    enum { BATCH = 500 };
    for (int base = 0; base < want; base += BATCH) {
        int m = want - base < BATCH ? want - base : BATCH;
        struct pollfd *p = calloc((size_t)m, sizeof *p);
        for (int i = 0; i < m; i++) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            assert_true(fd >= 0);
            int rv = connect(fd, (struct sockaddr *)&a, sizeof a);
            assert_true(rv == 0 || errno == EINPROGRESS);
            fds[base + i] = fd;
            p[i] = (struct pollfd){.fd = fd, .events = POLLOUT};
        }
        int pending = m;
        for (int tries = 0; pending > 0 && tries < 100; tries++) {
            if (poll(p, (nfds_t)m, 100) < 0) break;
            pending = 0;
            for (int i = 0; i < m; i++) {
                if (p[i].fd < 0) continue;
                if (p[i].revents & (POLLOUT | POLLERR | POLLHUP)) {
                    int err = 0;
                    socklen_t el = sizeof err;
                    getsockopt(p[i].fd, SOL_SOCKET, SO_ERROR, &err, &el);
                    if (!err) {
                        up++;
                        /* half of them are HTTP/2 clients that then say nothing */
                        if ((base + i) % 2 == 0) send_some(p[i].fd, hello, sizeof hello);
                    }
                    p[i].fd = -1;
                } else {
                    pending++;
                }
            }
        }
        free(p);
    }
    usleep(500000);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)s.pid);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ls %s | wc -l", path);
    FILE *pf = popen(cmd, "r");
    long server_fds = -1;
    if (pf) {
        if (fscanf(pf, "%ld", &server_fds) != 1) server_fds = -1;
        pclose(pf);
    }
    print_message("  idle connections: %d of %d connected; server has %ld fds open\n", up, want,
                  server_fds);
    assert_true(up >= want * 99 / 100);
    check_mem(&s, "with 10k idle connections", 200);
    check_alive(&s, "idle-connections");
    /* the idle ones: count those the server closed on its own (an idle timeout is allowed) */
    int server_closed = 0;
    for (int i = 0; i < want; i++) {
        uint8_t b[256];
        ssize_t k;
        while ((k = recv(fds[i], b, sizeof b, MSG_DONTWAIT)) > 0) {
        }
        if (k == 0) server_closed++;
        close(fds[i]);
    }
    free(fds);
    print_message("  idle connections closed by the server meanwhile: %d\n", server_closed);
    usleep(300000);
    check_alive(&s, "after-idle-close");
    check_mem(&s, "after closing them", 200);
    server_stop(&s);
}

/* ================================================================ seeding */

/* Puts keys prefix%08d [0, n) with vlen-byte values in txns of `per` puts. */
static void seed(cli *c, const char *prefix, int n, size_t vlen, int per) {
    char *val = malloc(vlen + 1);
    memset(val, 'x', vlen);
    val[vlen] = 0;
    Etcdserverpb__PutRequest *ps = calloc((size_t)per, sizeof *ps);
    Etcdserverpb__RequestOp *ops = calloc((size_t)per, sizeof *ops);
    Etcdserverpb__RequestOp **opp = calloc((size_t)per, sizeof *opp);
    char(*keys)[48] = calloc((size_t)per, sizeof *keys);
    reply r = {0};
    for (int b = 0; b < n; b += per) {
        int m = n - b < per ? n - b : per;
        for (int i = 0; i < m; i++) {
            Etcdserverpb__PutRequest pi = ETCDSERVERPB__PUT_REQUEST__INIT;
            Etcdserverpb__RequestOp oi = ETCDSERVERPB__REQUEST_OP__INIT;
            snprintf(keys[i], sizeof keys[i], "%s%08d", prefix, b + i);
            ps[i] = pi;
            ps[i].key = bd(keys[i]);
            ps[i].value = (ProtobufCBinaryData){vlen, (uint8_t *)val};
            ops[i] = oi;
            ops[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
            ops[i].request_put = &ps[i];
            opp[i] = &ops[i];
        }
        Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
        t.n_success = (size_t)m;
        t.success = opp;
        int st = call(c, P_TXN, &t.base, &r);
        if (st != 0) fail_msg("seed txn: %d %s", st, r.message);
    }
    free(r.data);
    free(val);
    free(ps);
    free(ops);
    free(opp);
    free(keys);
}

/* ================================================================ a LIST reader that never reads
 */

/* HPACK literal header field without indexing, new name (no Huffman; lengths < 127). */
static size_t hpack_lit(uint8_t *p, const char *name, const char *value) {
    size_t n = 0, nl = strlen(name), vl = strlen(value);
    p[n++] = 0x00;
    p[n++] = (uint8_t)nl;
    memcpy(p + n, name, nl);
    n += nl;
    p[n++] = (uint8_t)vl;
    memcpy(p + n, value, vl);
    return n + vl;
}

static void test_unread_list(void **state) {
    (void)state;
    server s = {0};
    server_start(&s);
    cli *c = cli_new(s.port);
    enum { NKEYS = 20000, NSTREAMS = 24 };
    seed(c, "/list/", NKEYS, 1024, 128);
    cli_free(c);
    s.rss0 = rss_anon(&s);

    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("/list/");
    q.range_end = bd("/list0");
    uint8_t req[64];
    size_t qn = etcdserverpb__range_request__pack(&q, req + 5);
    req[0] = 0;
    req[1] = 0, req[2] = 0, req[3] = (uint8_t)(qn >> 8), req[4] = (uint8_t)qn;

    int fd = tcp_connect(s.port);
    int small = 4096; /* a small receive buffer: TCP back-pressure comes early */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    uint8_t buf[8192];
    size_t n = 0;
    memcpy(buf, PREFACE, 24);
    n = 24;
    /* SETTINGS: INITIAL_WINDOW_SIZE = 2^31-1, so HTTP/2 flow control never holds the server back:
     * only its own output bound can */
    frame_hdr(buf + n, 6, 4, 0, 0);
    n += 9;
    const uint8_t set[6] = {0, 4, 0x7f, 0xff, 0xff, 0xff};
    memcpy(buf + n, set, 6);
    n += 6;
    frame_hdr(buf + n, 4, 8, 0, 0); /* connection WINDOW_UPDATE to 2^31-1 */
    n += 9;
    uint32_t inc = 0x7fffffffu - 65535u;
    buf[n++] = (uint8_t)(inc >> 24), buf[n++] = (uint8_t)(inc >> 16);
    buf[n++] = (uint8_t)(inc >> 8), buf[n++] = (uint8_t)inc;
    for (uint32_t sid = 1; sid < 2 * NSTREAMS; sid += 2) {
        uint8_t hb[256];
        size_t hn = 0;
        hn += hpack_lit(hb + hn, ":method", "POST");
        hn += hpack_lit(hb + hn, ":scheme", "http");
        hn += hpack_lit(hb + hn, ":path", P_RANGE);
        hn += hpack_lit(hb + hn, ":authority", "hostile");
        hn += hpack_lit(hb + hn, "content-type", "application/grpc");
        hn += hpack_lit(hb + hn, "te", "trailers");
        frame_hdr(buf + n, hn, 1, 0x4, sid);
        memcpy(buf + n + 9, hb, hn);
        n += 9 + hn;
        frame_hdr(buf + n, 5 + qn, 0, 0x1, sid);
        memcpy(buf + n + 9, req, 5 + qn);
        n += 9 + 5 + qn;
    }
    send_some(fd, buf, n);
    print_message("  %d LISTs of %d x 1 KiB (~%d MiB each) requested; never reading\n", NSTREAMS,
                  NKEYS, NKEYS / 1000);
    long peak = 0;
    for (int i = 0; i < 30; i++) { /* 3 s */
        usleep(100000);
        long now = rss_anon(&s);
        if (now > peak) peak = now;
    }
    print_message("  peak RssAnon while stalled: %ld KiB (+%ld KiB)\n", peak, peak - s.rss0);
    check_mem(&s, "stalled LIST reader", 200);
    check_alive(&s, "stalled-list");
    close(fd);
    usleep(300000);
    check_alive(&s, "after-stalled-list");
    check_mem(&s, "after it closed", 200);
    server_stop(&s);
}

/* ================================================================ limits and nesting */

static void expect_status(cli *c, const char *path, const ProtobufCMessage *m, int code,
                          const char *msg_part) {
    reply r = {0};
    int st = call(c, path, m, &r);
    if (st != code || (msg_part && !strstr(r.message, msg_part)))
        fail_msg("%s: want %s \"%s\", got %d (%s) \"%s\"", path, grpc_status_name(code),
                 msg_part ? msg_part : "", st, grpc_status_name(st), r.message);
    print_message("  %s -> %s \"%s\"\n", path, grpc_status_name(st), r.message);
    free(r.data);
}

/* A Put whose packed size is exactly `total` bytes (key "big"). */
static void put_of_size(cli *c, size_t total, int code, const char *msg_part) {
    size_t vlen = total - 5 - 1 - 3; /* key field 5 bytes; value tag 1 + 3-byte length */
    uint8_t *v = calloc(1, vlen);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd("big");
    p.value = (ProtobufCBinaryData){vlen, v};
    assert_int_equal(etcdserverpb__put_request__get_packed_size(&p), total);
    expect_status(c, P_PUT, &p.base, code, msg_part);
    free(v);
}

static void txn_of_puts(cli *c, int nops, int code, const char *msg_part) {
    Etcdserverpb__PutRequest *ps = calloc((size_t)nops, sizeof *ps);
    Etcdserverpb__RequestOp *ops = calloc((size_t)nops, sizeof *ops);
    Etcdserverpb__RequestOp **opp = calloc((size_t)nops, sizeof *opp);
    char(*keys)[16] = calloc((size_t)nops, sizeof *keys);
    Etcdserverpb__TxnRequest t;
    etcd_txn_of_puts(&t, (size_t)nops, ps, ops, opp, &keys[0][0], sizeof keys[0], "/ops/%d");
    expect_status(c, P_TXN, &t.base, code, msg_part);
    free(ps);
    free(ops);
    free(opp);
    free(keys);
}

/* TxnRequest{success: [RequestOp{request_txn: ...}]} nested `depth` times, written back to
 * front so building it is linear. Returns the message (at *out) and its length. */
static size_t nested_txn(int depth, uint8_t **out) {
    size_t cap = (size_t)depth * 12 + 16;
    uint8_t *b = malloc(cap);
    size_t pos = cap, len = 0; /* innermost: an empty TxnRequest */
    for (int d = 0; d < depth; d++) {
        for (int pass = 0; pass < 2; pass++) {
            uint8_t v[10];
            size_t vn = 0, x = len;
            while (x >= 0x80)
                v[vn++] = (uint8_t)(x | 0x80), x >>= 7;
            v[vn++] = (uint8_t)x;
            pos -= vn;
            memcpy(b + pos, v, vn);
            b[--pos] = pass == 0 ? 0x22 : 0x12; /* RequestOp.request_txn, TxnRequest.success */
            len = cap - pos;
        }
    }
    memmove(b, b + pos, len);
    *out = b;
    return len;
}

static void test_limits_and_nesting(void **state) {
    (void)state;
    server s = {0};
    server_start(&s);
    s.rss0 = rss_anon(&s);
    cli *c = cli_new(s.port);
    const size_t max_req = 1572864, grpc_max = max_req + 512 * 1024;
    put_of_size(c, max_req + 1, GRPC_STATUS_INVALID_ARGUMENT, "etcdserver: request is too large");
    put_of_size(c, max_req - 1024, GRPC_STATUS_OK, NULL);
    put_of_size(c, grpc_max + 1, GRPC_STATUS_RESOURCE_EXHAUSTED,
                "grpc: received message larger than max");
    txn_of_puts(c, 129, GRPC_STATUS_INVALID_ARGUMENT,
                "etcdserver: too many operations in txn request");
    txn_of_puts(c, 128, GRPC_STATUS_OK, NULL);
    check_alive(&s, "limits");

    /* deep nesting: 1000 levels (small), then as deep as fits under the request limit */
    int depths[] = {1000, 150000};
    for (size_t i = 0; i < sizeof depths / sizeof *depths; i++) {
        uint8_t *m;
        size_t n = nested_txn(depths[i], &m);
        reply r = {0};
        int st = call_raw(c, P_TXN, m, n, &r);
        print_message("  txn nested %d deep (%zu bytes) -> %s \"%s\"\n", depths[i], n,
                      grpc_status_name(st), r.message);
        if (st != GRPC_STATUS_OK && st != GRPC_STATUS_INVALID_ARGUMENT &&
            st != GRPC_STATUS_RESOURCE_EXHAUSTED)
            fail_msg("nested txn %d: unexpected %d %s", depths[i], st, r.message);
        free(r.data);
        free(m);
        check_alive(&s, "nested-txn");
    }
    cli_free(c);
    check_mem(&s, "after limits and nesting", 64);
    server_stop(&s);
}

/* ================================================================ 100k keys: range, then watch all
 */

typedef struct wcount {
    uint64_t events, responses;
    int64_t last_rev;
    bool closed, ordered;
    int status;
    char message[256];
} wcount;

static void wc_msg(grpc_cstream *st, const uint8_t *msg, size_t len, void *ud) {
    (void)st;
    wcount *w = ud;
    Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(NULL, len, msg);
    if (!r) return;
    w->responses++;
    for (size_t i = 0; i < r->n_events; i++) {
        int64_t rev = r->events[i]->kv ? r->events[i]->kv->mod_revision : 0;
        if (rev < w->last_rev) w->ordered = false;
        w->last_rev = rev;
    }
    w->events += r->n_events;
    etcdserverpb__watch_response__free_unpacked(r, NULL);
}

static void wc_close(grpc_cstream *st, int status, const char *message, void *ud) {
    (void)st;
    wcount *w = ud;
    w->closed = true;
    w->status = status;
    snprintf(w->message, sizeof w->message, "%s", message);
}

static void test_range_100k_then_watch(void **state) {
    (void)state;
    server s = {0};
    server_start(&s);
    s.rss0 = rss_anon(&s);
    cli *c = cli_new(s.port);
    enum { NKEYS = 100000 };
    uint64_t t0 = uv_hrtime();
    seed(c, "/big/", NKEYS, 32, 128);
    double seed_ms = (double)(uv_hrtime() - t0) / 1e6;

    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("/big/");
    q.range_end = bd("/big0");
    reply r = {0};
    t0 = uv_hrtime();
    int st = call(c, P_RANGE, &q.base, &r);
    double range_ms = (double)(uv_hrtime() - t0) / 1e6;
    if (st != 0) fail_msg("range of 100k: %d %s", st, r.message);
    Etcdserverpb__RangeResponse *rr = etcdserverpb__range_response__unpack(NULL, r.len, r.data);
    assert_non_null(rr);
    assert_int_equal(rr->n_kvs, NKEYS);
    assert_int_equal(rr->count, NKEYS);
    print_message("  seeded %d keys in %.0f ms; range of all: %zu bytes in %.0f ms\n", NKEYS,
                  seed_ms, r.len, range_ms);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    free(r.data);

    /* watch every key from revision 1 */
    wcount w = {.ordered = true};
    grpc_cstream_cbs cbs = {.on_message = wc_msg, .on_close = wc_close};
    grpc_cstream *ws = grpc_client_stream_open(c->c, P_WATCH, NULL, 0, &cbs, &w);
    assert_non_null(ws);
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    static const uint8_t zero = 0;
    cr.key = (ProtobufCBinaryData){1, (uint8_t *)&zero}; /* key "\0" + range_end "\0": all */
    cr.range_end = (ProtobufCBinaryData){1, (uint8_t *)&zero};
    cr.start_revision = 1;
    Etcdserverpb__WatchRequest wr = ETCDSERVERPB__WATCH_REQUEST__INIT;
    wr.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    wr.create_request = &cr;
    uint8_t wb[64];
    size_t wn = etcdserverpb__watch_request__pack(&wr, wb);
    assert_true(grpc_cstream_send(ws, wb, wn) >= 0);
    t0 = uv_hrtime();
    long peak = 0;
    uint64_t deadline = uv_now(&c->loop) + 30000;
    bool f = false;
    while (!w.closed && w.events < NKEYS && uv_now(&c->loop) < deadline) {
        run_until(&c->loop, &f, 50);
        long now = rss_anon(&s);
        if (now > peak) peak = now;
    }
    double watch_ms = (double)(uv_hrtime() - t0) / 1e6;
    if (w.closed && w.status == GRPC_STATUS_UNIMPLEMENTED) {
        print_message("  Watch answers UNIMPLEMENTED: the watch-from-revision-1 part is skipped\n");
    } else {
        print_message("  watch from revision 1: %llu events in %llu responses in %.0f ms; peak "
                      "RssAnon +%ld KiB\n",
                      (unsigned long long)w.events, (unsigned long long)w.responses, watch_ms,
                      peak - s.rss0);
        if (w.closed) fail_msg("watch closed: %d %s", w.status, w.message);
        assert_int_equal(w.events, NKEYS);
        assert_true(w.ordered);
        grpc_cstream_cancel(ws);
    }
    cli_free(c);
    check_alive(&s, "range-100k-watch");
    check_mem(&s, "after 100k range + watch", 200);
    server_stop(&s);
}

int main(void) {
    unsigned seed = (unsigned)time(NULL);
    if (getenv("RELIST_HOSTILE_SEED"))
        seed = (unsigned)strtoul(getenv("RELIST_HOSTILE_SEED"), NULL, 10);
    srand(seed);
    signal(SIGPIPE, SIG_IGN);
    print_message("hostile clients against %s (seed %u, memory bounds x%d)\n",
                  kvstore_bin() ? kvstore_bin() : "(no kvstore)", seed, MEM_SCALE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_bytes),       cmocka_unit_test(test_garbage_frames),
        cmocka_unit_test(test_limits_and_nesting), cmocka_unit_test(test_unread_list),
        cmocka_unit_test(test_idle_connections),   cmocka_unit_test(test_range_100k_then_watch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
