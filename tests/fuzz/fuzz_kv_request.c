/* fuzz_kv_request.c — libFuzzer target for the kvstore server's request decoding and the MVCC
 * engine behind it, without a network: the same steps as kv_service.c / writer.c take for a
 * unary KV call, driven from bytes.
 *
 * Input: a sequence of records [method byte][length, 2 bytes little-endian][request bytes]
 * (the last record takes whatever is left if its length overruns). method % 6 picks Range
 * (kv_range), Range through the LIST path (kv_range_raw), Put, DeleteRange, Txn or Compact.
 * Each request goes through the server's decoder exactly as kv_service.c runs it: size limit,
 * the txn nesting pre-scan, unpack with the bounded allocator (8 * len + 64 KiB), etcd's
 * max-txn-ops rule. Consecutive writes are applied as ONE group (kv_apply with several
 * requests, as the writer thread does); a read or a compaction ends the group. Compaction runs
 * kv_compact then kv_compact_step batches, like the writer.
 *
 * State: the engine (no_sync, a small map) lives in a temporary directory made once per process;
 * the store is wiped and reopened every RESET_EVERY inputs so it stays small and runs stay fast.
 * A crash that needs earlier inputs' state reproduces by replaying the corpus in order; an input
 * that writes the keys it then reads reproduces alone (the seeds are written that way). */
#include <protobuf-c/protobuf-c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "kv.h"
#include "rpc.pb-c.h"
#include "srv_internal.h"
#include "testutil.h"

#define MAX_REQUEST_BYTES ((size_t)3 << 19) /* etcd's MaxRequestBytes, 1.5 MiB */
#define MAX_RECORDS       24
#define MAX_GROUP         8
#define RESET_EVERY       512

static fuzz_store g_store = {.who = "fuzz_kv_request"};
static unsigned g_runs;

static void at_exit_cleanup(void) {
    fuzz_store_destroy(&g_store);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_store_init(&g_store, "fuzz-kv");
    atexit(at_exit_cleanup);
    return 0;
}

/* One decoded write waiting for its group's kv_apply. */
typedef struct pending {
    kvs_alloc alloc;
    ProtobufCMessage *msg;
    Etcdserverpb__RequestOp op;
} pending;

static void group_apply(pending *p, size_t n, kv_arena *arena) {
    if (n == 0) return;
    kv_write w[MAX_GROUP];
    memset(w, 0, sizeof w);
    for (size_t i = 0; i < n; i++) {
        w[i].op = &p[i].op;
        w[i].arena = arena;
    }
    kv_err err;
    memset(&err, 0, sizeof err);
    kv_apply(g_store.kv, w, n, &err);
    for (size_t i = 0; i < n; i++) {
        /* Encode the responses like the completion path does. */
        if (w[i].err.code == KV_OK && w[i].resp) {
            size_t len = protobuf_c_message_get_packed_size(&w[i].resp->base);
            uint8_t *buf = malloc(len ? len : 1);
            if (!buf) abort();
            protobuf_c_message_pack(&w[i].resp->base, buf);
            free(buf);
        } else if (w[i].err.code != KV_OK) {
            (void)kv_code_grpc_status(w[i].err.code);
            (void)kv_code_message(w[i].err.code);
        }
        protobuf_c_message_free_unpacked(p[i].msg, &p[i].alloc.pc);
    }
    kv_arena_reset(arena);
}

static volatile uint8_t g_sink;

static int raw_sink(void *ud, const uint8_t *kv, size_t len) {
    size_t *total = ud;
    /* Touch every byte: the pointer goes straight into LMDB's map. */
    uint8_t x = 0;
    for (size_t i = 0; i < len; i++)
        x ^= kv[i];
    g_sink = x;
    *total += len;
    return 0;
}

static void do_range(const uint8_t *msg, size_t len, bool raw, kv_arena *arena) {
    kvs_alloc a;
    kvs_alloc_init(&a, 8 * len + 65536);
    ProtobufCMessage *pm;
    if (kvs_unpack(&etcdserverpb__range_request__descriptor, msg, len, &a, &pm) != KVS_DEC_OK)
        return;
    Etcdserverpb__RangeRequest *req = (Etcdserverpb__RangeRequest *)pm;
    kv_err err;
    memset(&err, 0, sizeof err);
    if (raw) {
        kv_range_info info;
        size_t total = 0;
        if (kv_range_raw(g_store.kv, req, raw_sink, &total, &info, &err) == KV_OK &&
            info.kv_bytes != total)
            abort(); /* the sink saw other bytes than the info claims */
    } else {
        Etcdserverpb__RangeResponse *resp = NULL;
        if (kv_range(g_store.kv, req, arena, &resp, &err) == KV_OK && resp) {
            size_t n = protobuf_c_message_get_packed_size(&resp->base);
            uint8_t *buf = malloc(n ? n : 1);
            if (!buf) abort();
            protobuf_c_message_pack(&resp->base, buf);
            free(buf);
        }
        kv_arena_reset(arena);
    }
    protobuf_c_message_free_unpacked(pm, &a.pc);
}

static void do_compact(const uint8_t *msg, size_t len) {
    kvs_alloc a;
    kvs_alloc_init(&a, 8 * len + 65536);
    ProtobufCMessage *pm;
    if (kvs_unpack(&etcdserverpb__compaction_request__descriptor, msg, len, &a, &pm) != KVS_DEC_OK)
        return;
    Etcdserverpb__CompactionRequest *c = (Etcdserverpb__CompactionRequest *)pm;
    kv_err err;
    memset(&err, 0, sizeof err);
    if (kv_compact(g_store.kv, c->revision, &err) == KV_OK) {
        bool done = false;
        for (int i = 0; i < 64 && !done; i++)
            if (kv_compact_step(g_store.kv, 16, &done, &err) != KV_OK) break;
    }
    protobuf_c_message_free_unpacked(pm, &a.pc);
}

/* The intake checks of kv_service.c's submit_write. Returns true when p holds a write to apply. */
static bool decode_write(int kind, const uint8_t *msg, size_t len, pending *p) {
    static const ProtobufCMessageDescriptor *const desc[3] = {
        &etcdserverpb__put_request__descriptor,
        &etcdserverpb__delete_range_request__descriptor,
        &etcdserverpb__txn_request__descriptor,
    };
    if (len > MAX_REQUEST_BYTES) return false;
    if (kind == 2) {
        kvs_decode_rc pre = kvs_txn_prescan(msg, len, KV_MAX_TXN_DEPTH);
        if (pre != KVS_DEC_OK) return false;
    }
    kvs_alloc_init(&p->alloc, 8 * len + 65536);
    if (kvs_unpack(desc[kind], msg, len, &p->alloc, &p->msg) != KVS_DEC_OK) return false;
    Etcdserverpb__RequestOp init = ETCDSERVERPB__REQUEST_OP__INIT;
    p->op = init;
    switch (kind) {
    case 0:
        p->op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        p->op.request_put = (Etcdserverpb__PutRequest *)p->msg;
        break;
    case 1:
        p->op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
        p->op.request_delete_range = (Etcdserverpb__DeleteRangeRequest *)p->msg;
        break;
    default:
        p->op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
        p->op.request_txn = (Etcdserverpb__TxnRequest *)p->msg;
        if (!kvs_txn_ops_ok(p->op.request_txn, KV_MAX_TXN_OPS, 1)) {
            protobuf_c_message_free_unpacked(p->msg, &p->alloc.pc);
            return false;
        }
        break;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (++g_runs % RESET_EVERY == 0) fuzz_store_reset(&g_store);
    kv_arena *arena = kv_arena_new();
    if (!arena) abort();
    pending *group = calloc(MAX_GROUP, sizeof *group);
    if (!group) abort();
    size_t n_group = 0;
    size_t at = 0;
    for (int rec = 0; rec < MAX_RECORDS && at < size; rec++) {
        unsigned method = data[at++] % 6;
        size_t len = 0;
        if (size - at >= 2) {
            len = (size_t)data[at] | (size_t)data[at + 1] << 8;
            at += 2;
        }
        if (len > size - at) len = size - at;
        /* An exact-size copy: protobuf-c must not read past the message. */
        uint8_t *msg = malloc(len ? len : 1);
        if (!msg) abort();
        memcpy(msg, data + at, len);
        at += len;
        if (method >= 2 && method <= 4) {
            if (decode_write((int)method - 2, msg, len, &group[n_group])) n_group++;
            if (n_group == MAX_GROUP) {
                group_apply(group, n_group, arena);
                n_group = 0;
            }
        } else {
            group_apply(group, n_group, arena);
            n_group = 0;
            if (method == 5)
                do_compact(msg, len);
            else
                do_range(msg, len, method == 1, arena);
        }
        free(msg);
    }
    group_apply(group, n_group, arena);
    free(group);
    kv_arena_free(arena);
    return 0;
}
