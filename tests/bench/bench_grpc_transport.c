/* bench_grpc_transport.c — transport-only figures for proto/grpc.h (no storage): the server runs
 * in its own thread/loop, the client on the main loop, over loopback.
 *   list:   10 MB unary responses framed in 64 KiB chunks (like a RangeResponse from LMDB pages)
 *   unary:  small calls with 64 in flight on one connection
 *   fanout: 1,000 bidi streams on one connection, each receiving 256-byte messages
 * Usage: bench_grpc_transport [list_count] [unary_count] [events_per_stream] */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc.h"

static uint8_t *BIG;
static size_t BIG_LEN = 10u << 20;

typedef struct pump {
    size_t off;
} pump;

static void list_pump(grpc_call *call) {
    pump *p = grpc_call_user_data(call);
    while (p->off < BIG_LEN) {
        size_t n = BIG_LEN - p->off < 65536 ? BIG_LEN - p->off : 65536;
        int rv = grpc_call_send_chunk(call, BIG + p->off, n);
        if (rv < 0) return;
        p->off += n;
        if (rv == GRPC_SEND_FULL) return;
    }
    free(p);
    grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static void m_list(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)msg;
    (void)len;
    (void)ud;
    grpc_call_set_user_data(call, calloc(1, sizeof(pump)));
    grpc_call_send_begin(call, BIG_LEN);
    list_pump(call);
}

static void list_writable(grpc_call *call, void *ud) {
    (void)ud;
    list_pump(call);
}

static void list_cancel(grpc_call *call, void *ud) {
    free(ud);
    grpc_call_finish(call, GRPC_STATUS_CANCELLED, NULL);
}

static void m_echo(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    grpc_call_reply(call, msg, len);
}

/* Fan-out: the first message on a stream says how many events to send back. */
typedef struct fan {
    uint32_t left;
    bool half;
} fan;

static void fan_pump(grpc_stream *s) {
    fan *f = grpc_call_user_data(s);
    static uint8_t ev[256];
    while (f && f->left > 0) {
        f->left--;
        int rv = grpc_stream_send(s, ev, sizeof ev);
        if (rv < 0 || rv == GRPC_SEND_FULL) return;
    }
    if (f && f->half) {
        free(f);
        grpc_call_set_user_data(s, NULL);
        grpc_call_finish(s, GRPC_STATUS_OK, NULL);
    }
}

static void fan_msg(grpc_stream *s, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    fan *f = calloc(1, sizeof *f);
    memcpy(&f->left, msg, len < 4 ? len : 4);
    grpc_call_set_user_data(s, f);
    fan_pump(s);
}

static void fan_writable(grpc_call *s, void *ud) {
    (void)ud;
    fan_pump(s);
}

static void fan_half(grpc_call *s, void *ud) {
    fan *f = ud;
    f->half = true;
    fan_pump(s);
}

static void fan_end(grpc_call *s, void *ud) {
    free(ud);
    grpc_call_set_user_data(s, NULL);
    grpc_call_finish(s, GRPC_STATUS_OK, NULL);
}

static const grpc_method METHODS[] = {
    {.path = "/b.B/List",
     .kind = GRPC_UNARY,
     .on_unary = m_list,
     .on_writable = list_writable,
     .on_cancel = list_cancel},
    {.path = "/b.B/Echo", .kind = GRPC_UNARY, .on_unary = m_echo},
    {.path = "/b.B/Fan",
     .kind = GRPC_BIDI_STREAM,
     .on_message = fan_msg,
     .on_writable = fan_writable,
     .on_half_close = fan_half,
     .on_cancel = fan_end},
};

typedef struct srv_thread {
    uv_loop_t loop;
    grpc_server *srv;
    uv_thread_t th;
} srv_thread;

static void srv_run(void *arg) {
    uv_run(&((srv_thread *)arg)->loop, UV_RUN_DEFAULT);
}
static void srv_stop(void *arg) {
    grpc_server_shutdown(((srv_thread *)arg)->srv, NULL, NULL);
}

static double now_s(void) {
    return (double)uv_hrtime() / 1e9;
}

typedef struct run {
    int left, inflight, done, errors;
    size_t bytes;
    grpc_client *c;
    const char *path;
    bool finished;
} run;

static void on_list(void *ud, int status, const char *m, const uint8_t *r, size_t n);

static void issue(run *x) {
    x->left--;
    x->inflight++;
    uint32_t v = 7;
    if (grpc_client_unary(x->c, x->path, &v, 4, 0, on_list, x) != 0) x->errors++;
}

static void on_list(void *ud, int status, const char *m, const uint8_t *r, size_t n) {
    (void)m;
    (void)r;
    run *x = ud;
    x->inflight--;
    x->done++;
    x->bytes += n;
    if (status != 0) x->errors++;
    if (x->left > 0) issue(x);
    if (x->inflight == 0 && x->left == 0) x->finished = true;
}

typedef struct fanrun {
    size_t events;
    int closed, streams;
    bool finished;
} fanrun;

static void fan_cmsg(grpc_cstream *s, const uint8_t *msg, size_t len, void *ud) {
    (void)s;
    (void)msg;
    (void)len;
    ((fanrun *)ud)->events++;
}

static void fan_cclose(grpc_cstream *s, int status, const char *m, void *ud) {
    (void)s;
    (void)status;
    (void)m;
    fanrun *f = ud;
    if (++f->closed == f->streams) f->finished = true;
}

int main(int argc, char **argv) {
    int lists = argc > 1 ? atoi(argv[1]) : 50;
    int unaries = argc > 2 ? atoi(argv[2]) : 50000;
    uint32_t per_stream = argc > 3 ? (uint32_t)atoi(argv[3]) : 200;
    BIG = malloc(BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++)
        BIG[i] = (uint8_t)i;

    srv_thread st;
    uv_loop_init(&st.loop);
    st.srv = grpc_server_new(&st.loop, NULL, METHODS, 3);
    if (!st.srv || grpc_server_listen(st.srv, "127.0.0.1", 0) != 0) return 1;
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", grpc_server_port(st.srv));
    uv_thread_create(&st.th, srv_run, &st);

    uv_loop_t loop;
    uv_loop_init(&loop);
    grpc_client *c = grpc_client_new(&loop, target, NULL);

    /* list: one at a time */
    run x = {.left = lists, .c = c, .path = "/b.B/List"};
    double t0 = now_s();
    issue(&x);
    while (!x.finished)
        uv_run(&loop, UV_RUN_ONCE);
    double dt = now_s() - t0;
    printf("list   : %d x 10 MB in %.3f s: %.0f lists/s, %.2f GB/s, %d errors\n", lists, dt,
           lists / dt, x.bytes / dt / 1e9, x.errors);

    /* unary: 64 in flight */
    run u = {.left = unaries, .c = c, .path = "/b.B/Echo"};
    t0 = now_s();
    for (int i = 0; i < 64 && u.left > 0; i++)
        issue(&u);
    while (!u.finished)
        uv_run(&loop, UV_RUN_ONCE);
    dt = now_s() - t0;
    printf("unary  : %d calls, 64 in flight, %.3f s: %.0f calls/s, %d errors\n", unaries, dt,
           unaries / dt, u.errors);

    /* fan-out: 1,000 streams */
    fanrun f = {.streams = 1000};
    grpc_cstream_cbs cbs = {.on_message = fan_cmsg, .on_close = fan_cclose};
    t0 = now_s();
    for (int i = 0; i < f.streams; i++) {
        grpc_cstream *s = grpc_client_stream_open(c, "/b.B/Fan", NULL, 0, &cbs, &f);
        grpc_cstream_send(s, &per_stream, 4);
        grpc_cstream_half_close(s);
    }
    while (!f.finished)
        uv_run(&loop, UV_RUN_ONCE);
    dt = now_s() - t0;
    printf("fanout : 1000 streams x %u events of 256 B in %.3f s: %.0f events/s (%zu delivered)\n",
           per_stream, dt, f.events / dt, f.events);

    grpc_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    grpc_server_post(st.srv, srv_stop, &st);
    uv_thread_join(&st.th);
    grpc_server_free(st.srv);
    uv_run(&st.loop, UV_RUN_DEFAULT);
    uv_loop_close(&st.loop);
    free(BIG);
    return 0;
}
