/* test_hostile_conns.c — connection-level hostile clients against the REAL `kvstore serve`
 * binary (a child process, see hostile_common.h): 10,000 idle connections (the silent half
 * closed by a short --grpc-handshake-timeout, the HTTP/2 half kept) and the --grpc-keepalive-*
 * flags (a mute client closed, a PING flood told "too_many_pings"). After each, a normal
 * Put/Range on a fresh connection must work and the server's memory stays bounded.
 * Kept apart from test_hostile.c because these tests are about connection lifetimes (timeouts,
 * file descriptors, per-connection memory) rather than what is sent on a connection. */
#include "hostile_common.h"

/* ================================================================ 10,000 idle connections */

static long server_fds(const server *s) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ls /proc/%d/fd | wc -l", (int)s->pid);
    FILE *pf = popen(cmd, "r");
    long n = -1;
    if (pf) {
        if (fscanf(pf, "%ld", &n) != 1) n = -1;
        pclose(pf);
    }
    return n;
}

/* Reads what is there without blocking: 1 = closed by the server, 0 = open. */
static int peer_closed(int fd) {
    uint8_t b[256];
    ssize_t k;
    while ((k = recv(fd, b, sizeof b, MSG_DONTWAIT)) > 0) {
    }
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* 10,000 connections: half never send a byte, half send the HTTP/2 preface + SETTINGS and then
 * nothing. The server runs with a short handshake timeout (--grpc-handshake-timeout): the silent
 * half must be closed by it, the other half (a completed handshake: only keepalive, 2 h by
 * default, would ever end them) must stay. Memory with all of them open is bounded (before the
 * handshake timeout and the smaller write buffers: ~106 MB; now ~80 MB, most of it nghttp2's
 * ~13 KiB per session). */
static void test_idle_connections(void **state) {
    (void)state;
    enum { HS_MS = 2000, SLACK_MS = 4000 };
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
    static const char *const flags[] = {"--grpc-handshake-timeout", "2s", NULL};
    server_start_with(&s, flags); /* inherits our raised limit */
    s.rss0 = rss_anon(&s);
    int *fds = malloc(sizeof(int) * (size_t)want);
    uint8_t *kind = calloc((size_t)want, 1); /* 0: not connected, 1: silent, 2: HTTP/2 */
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)s.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    uint8_t hello[24 + 9];
    memcpy(hello, PREFACE, 24);
    frame_hdr(hello + 24, 0, 4, 0, 0);
    int up = 0, n_silent = 0, n_h2 = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
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
                        if ((base + i) % 2 == 0) {
                            kind[base + i] = 2;
                            n_h2++;
                            send_some(p[i].fd, hello, sizeof hello);
                        } else {
                            kind[base + i] = 1;
                            n_silent++;
                        }
                    }
                    p[i].fd = -1;
                } else {
                    pending++;
                }
            }
        }
        free(p);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long connect_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    usleep(200000);
    print_message("  idle connections: %d of %d connected in %ld ms (handshake timeout %d ms); "
                  "server has %ld fds open\n",
                  up, want, connect_ms, HS_MS, server_fds(&s));
    assert_true(up >= want * 99 / 100);
    check_mem(&s, "with 10k idle connections", 120);
    check_alive(&s, "idle-connections");
    /* the silent half goes at the handshake deadline; the HTTP/2 half stays */
    int silent_closed = 0, h2_closed = 0;
    long waited = 0;
    for (; waited < HS_MS + SLACK_MS; waited += 50) {
        usleep(50000);
        silent_closed = 0;
        for (int i = 0; i < want; i++)
            if (kind[i] == 1) silent_closed += peer_closed(fds[i]);
        if (silent_closed == n_silent) break;
    }
    for (int i = 0; i < want; i++)
        if (kind[i] == 2) h2_closed += peer_closed(fds[i]);
    print_message("  after %ld ms more: %d/%d silent closed by the handshake timeout, %d/%d HTTP/2 "
                  "idle closed; server has %ld fds open\n",
                  waited, silent_closed, n_silent, h2_closed, n_h2, server_fds(&s));
    assert_int_equal(silent_closed, n_silent);
    assert_int_equal(h2_closed, 0);
    check_mem(&s, "after the handshake timeout", 120);
    for (int i = 0; i < want; i++)
        close(fds[i]);
    free(fds);
    free(kind);
    usleep(300000);
    check_alive(&s, "after-idle-close");
    check_mem(&s, "after closing them", 120);
    server_stop(&s);
}

/* ================================================================ keepalive flags */

/* The etcd keepalive flags reach the server: a client that never answers the server's PING is
 * closed after interval + timeout; our client, idle for several intervals, keeps its connection
 * (nghttp2 ACKs); one PINGing in a burst gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings". */
static void test_keepalive_flags(void **state) {
    (void)state;
    server s = {0};
    static const char *const flags[] = {"--grpc-keepalive-interval",
                                        "200ms",
                                        "--grpc-keepalive-timeout",
                                        "200ms",
                                        "--grpc-keepalive-min-time",
                                        "1s",
                                        NULL};
    server_start_with(&s, flags);
    uint8_t hello[24 + 9], ping[9 + 8] = {0};
    memcpy(hello, PREFACE, 24);
    frame_hdr(hello + 24, 0, 4, 0, 0);
    frame_hdr(ping, 8, 6, 0, 0);
    int mute = tcp_connect(s.port), pinger = tcp_connect(s.port);
    send_some(mute, hello, sizeof hello);
    send_some(pinger, hello, sizeof hello);
    for (int i = 0; i < 4; i++)
        send_some(pinger, ping, sizeof ping);
    cli *c = cli_new(s.port);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd("/ka/key");
    p.value = bd("v");
    result r = {0};
    assert_int_equal(call(c, P_PUT, &p.base, &r), 0);
    run_for(&c->loop, 1000); /* ~5 keepalive intervals of silence */
    assert_int_equal(call(c, P_PUT, &p.base, &r), 0);
    free(r.data);
    cli_free(c);
    assert_true(drained_to_eof(mute, 3000)); /* closed at ~400 ms */
    /* the pinger's frames up to EOF: a GOAWAY (type 7) with code 11 and the debug text */
    uint8_t *buf = malloc(1 << 16);
    size_t got = 0, off = 0;
    ssize_t k;
    while (got < (1 << 16) && (k = recv(pinger, buf + got, (1 << 16) - got, 0)) > 0)
        got += (size_t)k;
    bool calm = false;
    while (off + 9 <= got) {
        size_t len = (size_t)buf[off] << 16 | (size_t)buf[off + 1] << 8 | buf[off + 2];
        if (buf[off + 3] == 7 && len >= 8 + 14 && off + 9 + len <= got)
            calm = buf[off + 9 + 7] == 11 && !memcmp(buf + off + 17, "too_many_pings", 14);
        off += 9 + len;
    }
    free(buf);
    print_message("  mute client closed; pinger got GOAWAY too_many_pings: %s\n",
                  calm ? "yes" : "no");
    assert_true(calm);
    close(mute);
    close(pinger);
    server_stop(&s);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    print_message("hostile connections against %s (memory bounds x%d)\n",
                  kvstore_bin() ? kvstore_bin() : "(no kvstore)", MEM_SCALE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_connections),
        cmocka_unit_test(test_keepalive_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
