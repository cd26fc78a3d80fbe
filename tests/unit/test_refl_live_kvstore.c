/* test_refl_live_kvstore.c — the same reflector checks as test_refl_live_etcd.c against our own
 * server (`kvstore serve` of this build, ../kvstore next to this test). Skipped while the
 * binary is not built, or while it has no Watch service yet (probed once at start). */
#define LIVE_SERVER_DEFAULT "kvstore:auto"
#include "test_refl_live_suite.h"

static void probe_msg(grpc_cstream *s, const uint8_t *msg, size_t len, void *ud) {
    (void)s;
    Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(NULL, len, msg);
    if (r && r->created) *(int *)ud = 1;
    if (r) etcdserverpb__watch_response__free_unpacked(r, NULL);
}

static void probe_close(grpc_cstream *s, int status, const char *message, void *ud) {
    (void)s;
    (void)message;
    *(int *)ud = status == GRPC_STATUS_OK ? 1 : -1;
}

/* 1 when the server answers a watch create with "created". */
static int has_watch(void) {
    if (!L.ok || !L.c) return 0;
    int got = 0;
    grpc_cstream_cbs cbs = {.on_message = probe_msg, .on_close = probe_close};
    grpc_cstream *s =
        grpc_client_stream_open(L.c, "/etcdserverpb.Watch/Watch", NULL, 0, &cbs, &got);
    if (!s) return 0;
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    cr.key = (ProtobufCBinaryData){6, (uint8_t *)"/probe"};
    Etcdserverpb__WatchRequest wr = ETCDSERVERPB__WATCH_REQUEST__INIT;
    wr.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    wr.create_request = &cr;
    uint8_t buf[64];
    size_t n = etcdserverpb__watch_request__pack(&wr, buf);
    grpc_cstream_send(s, buf, n);
    uint64_t end = uv_now(&L.loop) + 3000;
    while (!got && uv_now(&L.loop) < end)
        live_run_for(10);
    if (got != -1) grpc_cstream_cancel(s);
    return got == 1;
}

static int kv_setup(void **state) {
    live_setup(state);
    if (L.ok && !has_watch()) {
        snprintf(L.why, sizeof L.why, "%.300s has no Watch service yet", L.bin);
        live_kill(SIGKILL);
        L.ok = false;
    }
    return 0;
}

int main(void) {
    return live_suite_main(kv_setup);
}
