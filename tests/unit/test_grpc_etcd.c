/* test_grpc_etcd.c — interoperability with the real thing, both directions:
 * (1) our client against a real etcd 3.4 (/usr/bin/etcd on 127.0.0.1, free ports, temp data
 *     dir, killed at the end: etcd_proc.h): Put, Range, and a Watch stream receiving an event;
 * (2) an unmodified etcdctl 3.4 (grpc-go) against our server with canned KV/Watch handlers:
 *     get, put, watch, and an unknown service.
 * Each part is skipped with a message when its binary is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <signal.h>
#include <unistd.h>

#include "etcd_proc.h"
#include "grpc.h"
#include "rpc.pb-c.h"
#include "testutil.h"

static int unary(uv_loop_t *loop, grpc_client *c, const char *path, const ProtobufCMessage *m,
                 result *r) {
    return unary_wait(loop, c, path, m, r, 3000, 5000);
}

/* ---------------------------------------------------------------- (1) client vs etcd */

typedef struct watch_ctx {
    bool created, got_event, closed;
    char value[64];
} watch_ctx;

static void w_msg(grpc_cstream *s, const uint8_t *msg, size_t len, void *ud) {
    (void)s;
    watch_ctx *w = ud;
    Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(NULL, len, msg);
    assert_non_null(r);
    if (r->created) w->created = true;
    for (size_t i = 0; i < r->n_events; i++) {
        Mvccpb__KeyValue *kv = r->events[i]->kv;
        snprintf(w->value, sizeof w->value, "%.*s", (int)kv->value.len, kv->value.data);
        w->got_event = true;
    }
    etcdserverpb__watch_response__free_unpacked(r, NULL);
}

static void w_close(grpc_cstream *s, int status, const char *message, void *ud) {
    (void)s;
    (void)status;
    (void)message;
    ((watch_ctx *)ud)->closed = true;
}

static void test_client_against_etcd(void **state) {
    (void)state;
    if (access("/usr/bin/etcd", X_OK) != 0) {
        print_message("SKIP: /usr/bin/etcd not installed (apt-get install etcd-server)\n");
        skip();
    }
    etcd_proc ep;
    etcd_proc_init(&ep, "/usr/bin/etcd", false, "grpc-etcd");
    if (etcd_proc_start(&ep) != 0 || !etcd_proc_wait_ready(&ep, NULL, NULL, NULL, 20000)) {
        etcd_proc_cleanup(&ep);
        fail_msg("etcd did not start: %s", ep.err);
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    const char *target = ep.ep;

    /* etcd needs a moment (listen, elect itself): retry the first Put */
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    put.key = (ProtobufCBinaryData){8, (uint8_t *)"/t/hello"};
    put.value = (ProtobufCBinaryData){5, (uint8_t *)"world"};
    result r = {0};
    grpc_client *c = NULL;
    int st = -1;
    for (int attempt = 0; attempt < 100 && st != 0; attempt++) {
        if (c && !grpc_client_is_connected(c)) {
            grpc_client_free(c);
            c = NULL;
        }
        if (!c) c = grpc_client_new(&loop, target, NULL);
        st = unary(&loop, c, "/etcdserverpb.KV/Put", &put.base, &r);
        if (st != 0) {
            run_for(&loop, 100);
        }
    }
    assert_int_equal(st, 0);
    Etcdserverpb__PutResponse *pr = etcdserverpb__put_response__unpack(NULL, r.len, r.data);
    assert_non_null(pr);
    assert_non_null(pr->header);
    int64_t rev = pr->header->revision;
    assert_true(rev >= 2);
    etcdserverpb__put_response__free_unpacked(pr, NULL);

    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key = put.key;
    assert_int_equal(unary(&loop, c, "/etcdserverpb.KV/Range", &rq.base, &r), 0);
    Etcdserverpb__RangeResponse *rr = etcdserverpb__range_response__unpack(NULL, r.len, r.data);
    assert_non_null(rr);
    assert_int_equal(rr->n_kvs, 1);
    assert_int_equal(rr->kvs[0]->value.len, 5);
    assert_memory_equal(rr->kvs[0]->value.data, "world", 5);
    assert_int_equal(rr->kvs[0]->mod_revision, rev);
    etcdserverpb__range_response__free_unpacked(rr, NULL);

    /* a large response (8 x 1 MiB) through our client's flow control */
    uint8_t *mib = malloc(1u << 20);
    memset(mib, 'v', 1u << 20);
    for (int i = 0; i < 8; i++) {
        char key[16];
        snprintf(key, sizeof key, "/big/%d", i);
        Etcdserverpb__PutRequest bp = ETCDSERVERPB__PUT_REQUEST__INIT;
        bp.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
        bp.value = (ProtobufCBinaryData){1u << 20, mib};
        assert_int_equal(unary(&loop, c, "/etcdserverpb.KV/Put", &bp.base, &r), 0);
    }
    free(mib);
    Etcdserverpb__RangeRequest brq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    brq.key = (ProtobufCBinaryData){5, (uint8_t *)"/big/"};
    brq.range_end = (ProtobufCBinaryData){5, (uint8_t *)"/big0"};
    assert_int_equal(unary(&loop, c, "/etcdserverpb.KV/Range", &brq.base, &r), 0);
    rr = etcdserverpb__range_response__unpack(NULL, r.len, r.data);
    assert_non_null(rr);
    assert_int_equal(rr->n_kvs, 8);
    for (size_t i = 0; i < rr->n_kvs; i++)
        assert_int_equal(rr->kvs[i]->value.len, 1u << 20);
    etcdserverpb__range_response__free_unpacked(rr, NULL);

    /* an error status from a real server: a future revision */
    rq.revision = rev + 1000;
    assert_int_equal(unary(&loop, c, "/etcdserverpb.KV/Range", &rq.base, &r),
                     GRPC_STATUS_OUT_OF_RANGE);
    assert_string_equal(r.message, "etcdserver: mvcc: required revision is a future revision");

    /* unknown method */
    assert_int_equal(unary(&loop, c, "/etcdserverpb.KV/Nope", &rq.base, &r),
                     GRPC_STATUS_UNIMPLEMENTED);

    /* Watch: create, then a Put produces an event */
    watch_ctx w = {0};
    grpc_cstream_cbs cbs = {.on_message = w_msg, .on_close = w_close};
    grpc_metadata md[] = {{"hasleader", "true"}};
    grpc_cstream *ws = grpc_client_stream_open(c, "/etcdserverpb.Watch/Watch", md, 1, &cbs, &w);
    assert_non_null(ws);
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    cr.key = (ProtobufCBinaryData){4, (uint8_t *)"/t/w"};
    Etcdserverpb__WatchRequest wr = ETCDSERVERPB__WATCH_REQUEST__INIT;
    wr.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    wr.create_request = &cr;
    uint8_t wbuf[128];
    size_t wn = etcdserverpb__watch_request__pack(&wr, wbuf);
    assert_true(grpc_cstream_send(ws, wbuf, wn) >= 0);
    assert_true(run_until(&loop, &w.created, 5000));
    put.key = cr.key;
    put.value = (ProtobufCBinaryData){7, (uint8_t *)"changed"};
    assert_int_equal(unary(&loop, c, "/etcdserverpb.KV/Put", &put.base, &r), 0);
    assert_true(run_until(&loop, &w.got_event, 5000));
    assert_string_equal(w.value, "changed");
    assert_false(w.closed);
    grpc_cstream_cancel(ws);
    free(r.data);

    grpc_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    etcd_proc_kill(&ep, SIGTERM);
    etcd_proc_cleanup(&ep);
}

/* ---------------------------------------------------------------- (2) etcdctl vs our server */

typedef struct srv_thread {
    uv_loop_t loop;
    grpc_server *srv;
    uv_thread_t th;
    int watch_cancels;
    bool done;
} srv_thread;

static srv_thread *ST;

static void reply_msg(grpc_call *call, const ProtobufCMessage *m) {
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(n ? n : 1);
    protobuf_c_message_pack(m, b);
    grpc_call_reply(call, b, n);
    free(b);
}

static void m_range(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    Etcdserverpb__RangeRequest *rq = etcdserverpb__range_request__unpack(NULL, len, msg);
    if (!rq) {
        grpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "bad request");
        return;
    }
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    h.cluster_id = 1;
    h.member_id = 2;
    h.revision = 5;
    h.raft_term = 3;
    Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT;
    kv.key = rq->key;
    kv.value = (ProtobufCBinaryData){3, (uint8_t *)"bar"};
    uint8_t *big = NULL;
    if (rq->key.len == 4 && memcmp(rq->key.data, "/big", 4) == 0) {
        /* larger than grpc-go's initial windows: exercises flow control against a real client */
        big = malloc(8u << 20);
        memset(big, 'x', 8u << 20);
        kv.value = (ProtobufCBinaryData){8u << 20, big};
    }
    kv.create_revision = 2;
    kv.mod_revision = 5;
    kv.version = 1;
    Mvccpb__KeyValue *kvs[] = {&kv};
    Etcdserverpb__RangeResponse rr = ETCDSERVERPB__RANGE_RESPONSE__INIT;
    rr.header = &h;
    rr.kvs = kvs;
    rr.n_kvs = 1;
    rr.count = 1;
    reply_msg(call, &rr.base);
    free(big);
    etcdserverpb__range_request__free_unpacked(rq, NULL);
}

static void m_put(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)msg;
    (void)len;
    (void)ud;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    h.revision = 6;
    Etcdserverpb__PutResponse pr = ETCDSERVERPB__PUT_RESPONSE__INIT;
    pr.header = &h;
    reply_msg(call, &pr.base);
}

static void send_watch(grpc_stream *s, bool created, const char *key, const char *val) {
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    h.revision = 7;
    Etcdserverpb__WatchResponse wr = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    wr.header = &h;
    wr.created = created;
    Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT;
    Mvccpb__Event ev = MVCCPB__EVENT__INIT;
    Mvccpb__Event *evs[] = {&ev};
    if (key) {
        kv.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
        kv.value = (ProtobufCBinaryData){strlen(val), (uint8_t *)val};
        kv.mod_revision = 7;
        kv.create_revision = 7;
        kv.version = 1;
        ev.kv = &kv;
        wr.events = evs;
        wr.n_events = 1;
    }
    uint8_t buf[256];
    size_t n = etcdserverpb__watch_response__pack(&wr, buf);
    assert_true(grpc_stream_send(s, buf, n) >= 0);
}

static void w_message(grpc_stream *s, const uint8_t *msg, size_t len, void *ud) {
    (void)ud;
    Etcdserverpb__WatchRequest *wr = etcdserverpb__watch_request__unpack(NULL, len, msg);
    if (wr && wr->request_union_case == ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST) {
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)wr->create_request->key.len,
                 wr->create_request->key.data);
        send_watch(s, true, NULL, NULL);
        send_watch(s, false, key, "from-our-server");
    }
    if (wr) etcdserverpb__watch_request__free_unpacked(wr, NULL);
}

static void w_cancel(grpc_call *call, void *ud) {
    (void)ud;
    ST->watch_cancels++;
    grpc_call_finish(call, GRPC_STATUS_CANCELLED, NULL);
}

static void w_half(grpc_stream *s, void *ud) {
    (void)ud;
    grpc_stream_finish(s, GRPC_STATUS_OK, NULL);
}

static const grpc_method FAKE[] = {
    {.path = "/etcdserverpb.KV/Range", .kind = GRPC_UNARY, .on_unary = m_range},
    {.path = "/etcdserverpb.KV/Put", .kind = GRPC_UNARY, .on_unary = m_put},
    {.path = "/etcdserverpb.Watch/Watch",
     .kind = GRPC_BIDI_STREAM,
     .on_message = w_message,
     .on_half_close = w_half,
     .on_cancel = w_cancel},
};

static void srv_run(void *arg) {
    srv_thread *t = arg;
    uv_run(&t->loop, UV_RUN_DEFAULT);
}

static void srv_done(void *ud) {
    ((srv_thread *)ud)->done = true;
}

static void srv_stop(void *arg) {
    srv_thread *t = arg;
    grpc_server_shutdown(t->srv, srv_done, t);
}

static char *run_cmd(const char *cmd) {
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char *out = calloc(1, 65536);
    size_t n = fread(out, 1, 65535, f);
    out[n] = 0;
    pclose(f);
    return out;
}

static void test_etcdctl_against_our_server(void **state) {
    (void)state;
    if (access("/usr/bin/etcdctl", X_OK) != 0) {
        print_message("SKIP: /usr/bin/etcdctl not installed (apt-get install etcd-client)\n");
        skip();
    }
    srv_thread *t = calloc(1, sizeof *t);
    ST = t;
    uv_loop_init(&t->loop);
    t->srv = grpc_server_new(&t->loop, NULL, FAKE, sizeof FAKE / sizeof FAKE[0]);
    assert_int_equal(grpc_server_listen(t->srv, "127.0.0.1", 0), 0);
    int port = grpc_server_port(t->srv);
    uv_thread_create(&t->th, srv_run, t);
    char cmd[512];
    const char *base = "ETCDCTL_API=3 /usr/bin/etcdctl --dial-timeout=2s --command-timeout=3s";

    snprintf(cmd, sizeof cmd, "%s --endpoints=127.0.0.1:%d get /some/key 2>&1", base, port);
    char *out = run_cmd(cmd);
    assert_string_equal(out, "/some/key\nbar\n");
    free(out);

    snprintf(cmd, sizeof cmd, "%s --endpoints=127.0.0.1:%d -w json get /k 2>&1", base, port);
    out = run_cmd(cmd);
    assert_non_null(strstr(out, "\"revision\":5"));
    free(out);

    snprintf(cmd, sizeof cmd, "%s --endpoints=127.0.0.1:%d get /big --print-value-only | wc -c",
             base, port);
    out = run_cmd(cmd);
    assert_int_equal(atol(out), (8l << 20) + 1);
    free(out);

    snprintf(cmd, sizeof cmd, "%s --endpoints=127.0.0.1:%d put /k v 2>&1", base, port);
    out = run_cmd(cmd);
    assert_string_equal(out, "OK\n");
    free(out);

    snprintf(cmd, sizeof cmd, "%s --endpoints=127.0.0.1:%d lease list 2>&1", base, port);
    out = run_cmd(cmd);
    assert_non_null(strstr(out, "unknown service etcdserverpb.Lease"));
    free(out);

    snprintf(cmd, sizeof cmd, "ETCDCTL_API=3 timeout 2 %s --endpoints=127.0.0.1:%d watch /w 2>&1",
             base + strlen("ETCDCTL_API=3 "), port);
    out = run_cmd(cmd);
    assert_string_equal(out, "PUT\n/w\nfrom-our-server\n");
    free(out);

    assert_int_equal(grpc_server_post(t->srv, srv_stop, t), 0);
    uv_thread_join(&t->th);
    assert_true(t->done);
    assert_int_equal(t->watch_cancels, 1); /* etcdctl was killed mid-watch */
    grpc_server_free(t->srv);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_against_etcd),
        cmocka_unit_test(test_etcdctl_against_our_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
