/* test_grpc_big.c — the client's path for large unary responses (proto/grpc_client_call.c
 * big_feed: >= 4 MiB assembled in one reusable per-connection mapping, unmapped after 2 s idle
 * or on connection loss; raised windows once a connection has seen one), checked through the
 * public API against a real grpc_server on its own thread (grpc_srv_thread.h).
 *
 * Key decisions:
 * - The server answers "/t.Big/Unary" with a response of the requested size whose byte i is
 *   (i * 131 + seed) & 0xff; the client checks every byte inside the callback (no copy), so a
 *   response from a stale or shared buffer shows as a wrong byte, and memory stays bounded.
 * - Mode 1 sends half the message and then stalls until cancelled: the client sees a large
 *   response half received (progress read from grpc_client_get_stats bytes_in) and then loses
 *   the connection (abort, server close, free) or its deadline.
 * - Reuse and the unmaps are not visible through the API, but the buffer is the only mapping
 *   in this process advised MADV_HUGEPAGE: big_mapped() sums the VMAs flagged "hg" in
 *   /proc/self/smaps, so a suite can say "one buffer of 40 MiB" or "none" exactly (skipped on
 *   kernels without THP). RSS must not grow across ten 40 MiB responses either. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "etcd_proc.h" /* run_until, run_until_fn, run_for */
#include "grpc.h"
#include "grpc_srv_thread.h"

#define MIB          ((size_t)1 << 20)
#define PAT(i, seed) ((uint8_t)((size_t)(i)*131u + (seed)))

/* ---------------------------------------------------------------- server side */

typedef struct job { /* messages still to send on one call */
    size_t size[8];
    uint8_t seed[8];
    int n, i;
    size_t sent;
    bool begun, stall; /* stall: stop after half of each message */
} job;

/* One requested message: 4-byte big-endian size, 1-byte seed. */
static void put_req(uint8_t *p, size_t size, uint8_t seed) {
    for (int k = 0; k < 4; k++)
        p[k] = (uint8_t)(size >> (24 - 8 * k));
    p[4] = seed;
}

/* Sends what the queue takes; pauses on GRPC_SEND_FULL (on_writable resumes). */
static void pump(grpc_call *call) {
    static uint8_t chunk[64 * 1024]; /* the server thread's only */
    job *j = grpc_call_user_data(call);
    if (!j) return;
    while (j->i < j->n) {
        size_t total = j->size[j->i], limit = j->stall ? total / 2 : total;
        if (!j->begun && grpc_call_send_begin(call, total) < 0) return;
        j->begun = true;
        while (j->sent < limit) {
            size_t n = limit - j->sent < sizeof chunk ? limit - j->sent : sizeof chunk;
            for (size_t k = 0; k < n; k++)
                chunk[k] = PAT(j->sent + k, j->seed[j->i]);
            int rv = grpc_call_send_chunk(call, chunk, n);
            if (rv < 0) return; /* cancelled: on_cancel completes */
            j->sent += n;
            if (rv == GRPC_SEND_FULL) return;
        }
        if (j->sent < total) return; /* stalled until cancelled */
        j->i++;
        j->sent = 0;
        j->begun = false;
    }
    free(j);
    grpc_call_set_user_data(call, NULL);
    grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

/* Request: n x (4-byte big-endian size, 1-byte seed), then an optional mode byte (1: stall). */
static void start_job(grpc_call *call, const uint8_t *msg, size_t len) {
    job *j = calloc(1, sizeof *j);
    assert_non_null(j);
    for (; len >= 5 && j->n < 8; msg += 5, len -= 5, j->n++) {
        j->size[j->n] = ((size_t)msg[0] << 24) | ((size_t)msg[1] << 16) | (msg[2] << 8) | msg[3];
        j->seed[j->n] = msg[4];
    }
    j->stall = len == 1 && msg[0] == 1;
    grpc_call_set_user_data(call, j);
    pump(call);
}

static void m_writable(grpc_call *call, void *ud) {
    (void)ud;
    pump(call);
}

static void m_cancel(grpc_call *call, void *ud) {
    free(ud);
    grpc_call_finish(call, GRPC_STATUS_CANCELLED, NULL);
}

static void m_request(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    if (!ud) start_job(call, msg, len); /* one request per call (stream: the first message) */
}

static const grpc_method METHODS[] = {
    {.path = "/t.Big/Unary",
     .kind = GRPC_UNARY,
     .on_unary = m_request,
     .on_writable = m_writable,
     .on_cancel = m_cancel},
    {.path = "/t.Big/Stream",
     .kind = GRPC_BIDI_STREAM,
     .on_message = m_request,
     .on_writable = m_writable,
     .on_cancel = m_cancel},
};

/* ---------------------------------------------------------------- client side */

typedef struct env {
    srv_thread *t;
    uv_loop_t loop;
    grpc_client *c;
    int disconnects;
    size_t mapped0; /* big_mapped() at the start (a failed test may leave a client behind) */
} env;

typedef struct res {
    bool done;
    int status;
    char msg[160];
    size_t len, bad; /* bad: first wrong byte, or SIZE_MAX */
    uint8_t seed;
    void (*then)(grpc_client *c); /* called on `c` inside the callback (re-entrancy) */
    grpc_client *c;
} res;

static size_t check(const uint8_t *p, size_t len, uint8_t seed) {
    for (size_t i = 0; i < len; i++)
        if (p[i] != PAT(i, seed)) return i;
    return SIZE_MAX;
}

static void on_res(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    res *r = ud;
    r->done = true;
    r->status = status;
    snprintf(r->msg, sizeof r->msg, "%s", message);
    r->len = len;
    r->bad = resp ? check(resp, len, r->seed) : SIZE_MAX;
    if (r->then) r->then(r->c);
}

static void on_disc(void *ud, grpc_client *c, int status, const char *msg) {
    (void)c, (void)status, (void)msg;
    ((env *)ud)->disconnects++;
}

static size_t rss(void) {
    unsigned long v[2] = {0, 0};
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%lu %lu", &v[0], &v[1]), 2);
    fclose(f);
    return v[1] * (size_t)sysconf(_SC_PAGESIZE);
}

/* Bytes of the client's large-response buffers now mapped (see the top of the file). */
static size_t big_mapped(void) {
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512];
    unsigned long a, b;
    size_t cur = 0, total = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2)
            cur = b - a;
        else if (strncmp(line, "VmFlags:", 8) == 0 && strstr(line, " hg"))
            total += cur;
    }
    fclose(f);
    return total;
}

static grpc_client *client_new(env *e, size_t max_recv) {
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", e->t->port);
    grpc_client_opts co = {.max_recv_msg_size = max_recv, .on_disconnect = on_disc, .ud = e};
    grpc_client *c = grpc_client_new(&e->loop, target, &co);
    assert_non_null(c);
    return c;
}

static env *env_new(uint32_t grace_ms, size_t max_recv) {
    env *e = calloc(1, sizeof *e);
    grpc_server_opts so = {.shutdown_grace_ms = grace_ms};
    e->t = srv_start_with(&so, METHODS, sizeof METHODS / sizeof METHODS[0]);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    e->c = client_new(e, max_recv);
    e->mapped0 = big_mapped();
    return e;
}

static void client_close(env *e) {
    if (e->c) grpc_client_free(e->c);
    e->c = NULL;
    uv_run(&e->loop, UV_RUN_DEFAULT);
}

static void env_free(env *e, bool srv_running) {
    client_close(e);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    if (srv_running) srv_stop(e->t);
    free(e);
}

static void call(env *e, size_t size, uint8_t seed, bool stall, uint32_t tmo, res *r) {
    uint8_t req[6] = {[5] = 1};
    put_req(req, size, seed);
    memset(r, 0, sizeof *r);
    r->seed = seed;
    assert_int_equal(grpc_client_unary(e->c, "/t.Big/Unary", req, stall ? 6 : 5, tmo, on_res, r),
                     0);
}

static void wait_res(env *e, res *r) {
    assert_true(run_until(&e->loop, &r->done, 20000));
}

static void expect_ok(const res *r, size_t size) {
    if (r->status != GRPC_STATUS_OK)
        fail_msg("status %d (%s) for %zu bytes", r->status, r->msg, size);
    assert_int_equal(r->len, size);
    if (r->bad != SIZE_MAX) fail_msg("%zu-byte response: byte %zu wrong", size, r->bad);
}

static void call_ok(env *e, size_t size, uint8_t seed) {
    res r;
    call(e, size, seed, false, 0, &r);
    wait_res(e, &r);
    expect_ok(&r, size);
}

/* This env's buffers must map lo..hi bytes (no THP in the kernel: madvise fails, no "hg"). */
static void expect_mapped_in(env *e, size_t lo, size_t hi) {
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0) return;
    size_t got = big_mapped() - e->mapped0;
    if (got < lo || got > hi)
        fail_msg("large-response buffers mapped: %zu bytes, expected %zu..%zu", got, lo, hi);
}
#define expect_mapped(e, n) expect_mapped_in(e, n, n)

/* ---------------------------------------------------------------- tests */

/* Below, at and above the threshold, growing the buffer and reusing it at smaller sizes. */
static void test_sizes_one_conn(void **state) {
    (void)state;
    env *e = env_new(0, 0);
    const size_t sizes[] = {39 * MIB / 10, 4 * MIB, 4 * MIB + 1, 12 * MIB, 40 * MIB, 5 * MIB};
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
            call_ok(e, sizes[k], (uint8_t)(pass * 16 + k));
    call_ok(e, 1000, 7); /* a small one after all that */
    assert_int_equal(e->disconnects, 0);
    expect_mapped(e, 40 * MIB); /* one buffer, grown to the largest */
    client_close(e);
    expect_mapped(e, 0);
    env_free(e, true);
}

/* Ten 40 MiB responses cost about one buffer; 2 s idle gives it back. */
static void test_rss_reuse_and_idle(void **state) {
    (void)state;
    env *e = env_new(0, 0);
    call_ok(e, 40 * MIB, 1);
    size_t base = rss(), peak = base;
    for (int i = 0; i < 10; i++) {
        call_ok(e, 40 * MIB, (uint8_t)(i + 2));
        if (rss() > peak) peak = rss();
    }
    expect_mapped(e, 40 * MIB);
    run_for(&e->loop, 1000);
    expect_mapped(e, 40 * MIB); /* still kept after 1 s */
    run_for(&e->loop, 1300);
    expect_mapped(e, 0);
    size_t idle = rss();
    print_message("  RSS after 1st 40 MiB %zu MiB, peak over 10 more %zu MiB, after 2.3 s idle "
                  "%zu MiB\n",
                  base / MIB, peak / MIB, idle / MIB);
#if !defined(__SANITIZE_ADDRESS__)        /* ASan's allocator and quarantine distort RSS */
    assert_true(peak <= base + 44 * MIB); /* at most one more buffer, not ten */
#endif
    assert_true(idle + 32 * MIB <= peak); /* the idle buffer was unmapped */
    call_ok(e, 40 * MIB, 99);             /* and is mapped again on demand */
    expect_mapped(e, 40 * MIB);
    env_free(e, true);
}

/* Several large responses at once on one connection: one takes the buffer, the rest malloc. */
static void test_in_flight_together(void **state) {
    (void)state;
    env *e = env_new(0, 0);
    const size_t sizes[] = {40 * MIB, 12 * MIB, 39 * MIB / 10, 40 * MIB};
    for (int round = 0; round < 3; round++) { /* round 0 on a fresh connection, no grants */
        res r[4];
        for (int k = 0; k < 4; k++)
            call(e, sizes[k], (uint8_t)(round * 4 + k + 100), false, 0, &r[k]);
        for (int k = 0; k < 4; k++) {
            wait_res(e, &r[k]);
            expect_ok(&r[k], sizes[k]);
        }
        /* one buffer however many were in flight (the 12 MiB one may have taken it first) */
        expect_mapped_in(e, 12 * MIB, 40 * MIB);
    }
    assert_int_equal(e->disconnects, 0);
    env_free(e, true);
}

/* Over max_recv_msg_size: RESOURCE_EXHAUSTED as before, and the connection goes on. */
static void test_too_large(void **state) {
    (void)state;
    env *e = env_new(0, 16 * MIB);
    for (int round = 0; round < 2; round++) { /* round 1 after big responses: windows raised */
        res r;
        call(e, 20 * MIB, 1, false, 0, &r);
        wait_res(e, &r);
        assert_int_equal(r.status, GRPC_STATUS_RESOURCE_EXHAUSTED);
        assert_string_equal(r.msg,
                            "grpc: received message larger than max (20971520 vs. 16777216)");
        call_ok(e, 16 * MIB, 2);
        call_ok(e, 12 * MIB, 3);
        expect_mapped(e, 16 * MIB);
    }
    assert_int_equal(e->disconnects, 0);
    env_free(e, true);
}

typedef struct half {
    env *e;
    res *r;
    uint64_t want; /* bytes_in to wait for */
} half;

static bool half_in(void *arg) {
    half *h = arg;
    grpc_client_stats st;
    grpc_client_get_stats(h->e->c, &st);
    return h->r->done || st.bytes_in >= h->want;
}

/* Starts a 40 MiB response that stalls at half and waits until the client has that half. */
static void start_half(env *e, res *r, uint32_t tmo) {
    grpc_client_stats st;
    grpc_client_get_stats(e->c, &st);
    half h = {e, r, st.bytes_in + 20 * MIB};
    call(e, 40 * MIB, 5, true, tmo, r);
    assert_true(run_until_fn(&e->loop, half_in, &h, 10000));
    assert_false(r->done);
}

static void srv_shutdown_fn(srv_thread *t, void *arg) {
    (void)arg;
    grpc_server_shutdown(t->srv, srv_done, t);
}

/* Half a large response received, then the connection or the call is lost. */
static void test_loss_mid_response(void **state) {
    (void)state;
    env *e = env_new(200, 0);
    res r;
    /* the client cuts the connection (after a 12 MiB response left an idle buffer) */
    call_ok(e, 12 * MIB, 1);
    start_half(e, &r, 0);
    grpc_client_abort(e->c);
    assert_true(r.done); /* the callbacks ran inside abort */
    assert_int_equal(r.status, GRPC_STATUS_UNAVAILABLE);
    assert_int_equal(e->disconnects, 1);
    expect_mapped(e, 0); /* the lent buffer came back to a dead connection */
    client_close(e);
    /* the client is freed: CANCELLED */
    e->c = client_new(e, 0);
    start_half(e, &r, 0);
    grpc_client_free(e->c);
    e->c = NULL;
    assert_true(r.done);
    assert_int_equal(r.status, GRPC_STATUS_CANCELLED);
    expect_mapped(e, 0);
    client_close(e);
    /* the deadline passes: the stream is reset, the connection goes on with large responses */
    e->c = client_new(e, 0);
    start_half(e, &r, 300);
    wait_res(e, &r);
    assert_int_equal(r.status, GRPC_STATUS_DEADLINE_EXCEEDED);
    call_ok(e, 40 * MIB, 2);
    call_ok(e, 12 * MIB, 3);
    expect_mapped(e, 40 * MIB);
    /* the server goes away (grace 200 ms, then it closes the socket) */
    e->disconnects = 0;
    start_half(e, &r, 0);
    srv_on_loop(e->t, srv_shutdown_fn, NULL);
    wait_res(e, &r);
    assert_int_equal(r.status, GRPC_STATUS_UNAVAILABLE);
    assert_true(e->disconnects >= 1);
    expect_mapped(e, 0);
    uv_thread_join(&e->t->th); /* srv_stop's tail: the shutdown is already under way */
    assert_true(e->t->done);
    grpc_server_free(e->t->srv);
    uv_run(&e->t->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->t->loop), 0);
    free(e->t);
    env_free(e, false);
}

/* The callback of a large response aborts or frees its client: the teardown is deferred until
 * it returns, so the buffer first goes back to the connection, then is unmapped. */
static void test_reentrant_in_callback(void **state) {
    (void)state;
    env *e = env_new(0, 0);
    void (*fns[])(grpc_client *) = {grpc_client_abort, grpc_client_free};
    for (int k = 0; k < 2; k++) {
        if (!e->c) e->c = client_new(e, 0);
        call_ok(e, 40 * MIB, 1); /* the second one is assembled in a reused buffer */
        res r;
        call(e, 12 * MIB, 2, false, 0, &r);
        r.then = fns[k];
        r.c = e->c;
        wait_res(e, &r);
        expect_ok(&r, 12 * MIB);
        run_for(&e->loop, 20);
        assert_int_equal(e->disconnects, 1); /* from the abort; a free does not report */
        expect_mapped(e, 0);
        if (k == 1) e->c = NULL; /* freed by the callback */
        client_close(e);
    }
    env_free(e, true);
}

/* Stream messages are not unary responses: the de-framer's path, beside a large unary call. */
typedef struct sres {
    int got;
    size_t bad_msg; /* index of the first wrong message, or SIZE_MAX */
    bool closed;
    int status;
} sres;

static const size_t SSIZES[] = {5 * MIB, 40 * MIB, 4 * MIB, 39 * MIB / 10, 12 * MIB};

static void sc_msg(grpc_cstream *s, const uint8_t *msg, size_t len, void *ud) {
    (void)s;
    sres *r = ud;
    int k = r->got++;
    bool ok = k < 5 && len == SSIZES[k] && check(msg, len, (uint8_t)(50 + k)) == SIZE_MAX;
    if (!ok && r->bad_msg == SIZE_MAX) r->bad_msg = (size_t)k;
}

static void sc_close(grpc_cstream *s, int status, const char *message, void *ud) {
    (void)s, (void)message;
    ((sres *)ud)->closed = true;
    ((sres *)ud)->status = status;
}

static void test_stream_big_messages(void **state) {
    (void)state;
    env *e = env_new(0, 0);
    call_ok(e, 40 * MIB, 1); /* the connection has seen a large unary response */
    uint8_t req[5 * 5];
    for (int k = 0; k < 5; k++)
        put_req(req + 5 * k, SSIZES[k], (uint8_t)(50 + k));
    sres sr = {.bad_msg = SIZE_MAX};
    grpc_cstream_cbs cbs = {.on_message = sc_msg, .on_close = sc_close};
    grpc_cstream *s = grpc_client_stream_open(e->c, "/t.Big/Stream", NULL, 0, &cbs, &sr);
    assert_non_null(s);
    assert_true(grpc_cstream_send(s, req, sizeof req) >= 0);
    assert_int_equal(grpc_cstream_half_close(s), 0);
    res r;
    call(e, 12 * MIB, 9, false, 0, &r); /* a large unary call alongside */
    assert_true(run_until(&e->loop, &sr.closed, 20000));
    wait_res(e, &r);
    expect_ok(&r, 12 * MIB);
    assert_int_equal(sr.status, GRPC_STATUS_OK);
    assert_int_equal(sr.got, 5);
    if (sr.bad_msg != SIZE_MAX) fail_msg("stream message %zu wrong", sr.bad_msg);
    env_free(e, true);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_one_conn),      cmocka_unit_test(test_rss_reuse_and_idle),
        cmocka_unit_test(test_in_flight_together),  cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_loss_mid_response),   cmocka_unit_test(test_reentrant_in_callback),
        cmocka_unit_test(test_stream_big_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
