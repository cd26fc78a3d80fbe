/* bench_srv_kv.c — the two speed goals of `kvstore serve`, measured with the project's own gRPC
 * client against any etcd v3 endpoint (kvstore or a real etcd started beside it):
 *   1. LIST: one client, back-to-back Ranges of 10,000 x 1 KiB keys -> lists/s, p50, p99;
 *   2. PUT: 64 requests always in flight (durable unless the server was started without fsync)
 *      -> puts/s, p50, p99.
 * usage: bench_srv_kv HOST:PORT [seconds per phase, default 5] [keys, default 10000]
 *                     [list|put|both, default both]
 * Writes under /bench/ in the target store. Not run by ctest. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc.h"
#include "rpc.pb-c.h"

typedef struct bench {
    uv_loop_t loop;
    grpc_client *c;
    double *lat;
    size_t n_lat, cap_lat;
    int inflight;
    uint64_t end_ns;
    bool stop, done;
    int errors;
    uint64_t seq;
    char *value;
    size_t vlen;
} bench;

static void lat_add(bench *b, double ms) {
    if (b->n_lat == b->cap_lat) {
        b->cap_lat = b->cap_lat ? b->cap_lat * 2 : 1024;
        b->lat = realloc(b->lat, b->cap_lat * sizeof *b->lat);
    }
    b->lat[b->n_lat++] = ms;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(bench *b, const char *what, double secs) {
    qsort(b->lat, b->n_lat, sizeof *b->lat, cmp_d);
    double p50 = b->n_lat ? b->lat[b->n_lat / 2] : 0;
    double p99 = b->n_lat ? b->lat[(size_t)((double)b->n_lat * 0.99)] : 0;
    printf("%-5s %8.1f /s  p50 %7.2f ms  p99 %7.2f ms  (%zu ops, %d errors)\n", what,
           (double)b->n_lat / secs, p50, p99, b->n_lat, b->errors);
    b->n_lat = 0;
    b->errors = 0;
}

typedef struct op {
    bench *b;
    uint64_t t0;
    int kind; /* 0 list, 1 put, 2 fill */
} op;

static void issue(bench *b, int kind);

static void on_done(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    (void)resp;
    (void)len;
    op *o = ud;
    bench *b = o->b;
    if (status) {
        if (b->errors++ < 3) fprintf(stderr, "error %d: %s\n", status, message);
    } else if (o->kind != 2) {
        lat_add(b, (double)(uv_hrtime() - o->t0) / 1e6);
    }
    b->inflight--;
    int kind = o->kind;
    free(o);
    if (kind != 2 && !b->stop && uv_hrtime() < b->end_ns)
        issue(b, kind);
    else if (b->inflight == 0)
        b->done = true;
}

static void issue(bench *b, int kind) {
    op *o = malloc(sizeof *o);
    o->b = b;
    o->kind = kind;
    o->t0 = uv_hrtime();
    uint8_t small[256];
    if (kind == 0) {
        Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
        q.key = (ProtobufCBinaryData){12, (uint8_t *)"/bench/list/"};
        q.range_end = (ProtobufCBinaryData){12, (uint8_t *)"/bench/list0"};
        size_t n = etcdserverpb__range_request__pack(&q, small);
        grpc_client_unary(b->c, "/etcdserverpb.KV/Range", small, n, 60000, on_done, o);
    } else {
        char key[64];
        snprintf(key, sizeof key, "/bench/put/%llu", (unsigned long long)(b->seq++ % 100000));
        Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
        p.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
        p.value = (ProtobufCBinaryData){100, (uint8_t *)b->value};
        size_t n = etcdserverpb__put_request__pack(&p, small);
        grpc_client_unary(b->c, "/etcdserverpb.KV/Put", small, n, 60000, on_done, o);
    }
    b->inflight++;
}

static void run_until_done(bench *b) {
    b->done = false;
    while (!b->done)
        uv_run(&b->loop, UV_RUN_ONCE);
}

static void fill(bench *b, int keys) {
    enum { PER = 100 };
    Etcdserverpb__PutRequest ps[PER];
    Etcdserverpb__RequestOp ops[PER], *opp[PER];
    char names[PER][32];
    for (int base = 0; base < keys; base += PER) {
        int m = keys - base < PER ? keys - base : PER;
        for (int i = 0; i < m; i++) {
            Etcdserverpb__PutRequest pi = ETCDSERVERPB__PUT_REQUEST__INIT;
            Etcdserverpb__RequestOp oi = ETCDSERVERPB__REQUEST_OP__INIT;
            snprintf(names[i], sizeof names[i], "/bench/list/%08d", base + i);
            ps[i] = pi;
            ps[i].key = (ProtobufCBinaryData){strlen(names[i]), (uint8_t *)names[i]};
            ps[i].value = (ProtobufCBinaryData){1024, (uint8_t *)b->value};
            ops[i] = oi;
            ops[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
            ops[i].request_put = &ps[i];
            opp[i] = &ops[i];
        }
        Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
        t.n_success = (size_t)m;
        t.success = opp;
        size_t n = etcdserverpb__txn_request__get_packed_size(&t);
        uint8_t *buf = malloc(n);
        etcdserverpb__txn_request__pack(&t, buf);
        op *o = malloc(sizeof *o);
        o->b = b;
        o->kind = 2;
        o->t0 = uv_hrtime();
        b->inflight++;
        grpc_client_unary(b->c, "/etcdserverpb.KV/Txn", buf, n, 60000, on_done, o);
        free(buf);
        run_until_done(b);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s HOST:PORT [seconds] [keys]\n", argv[0]);
        return 2;
    }
    double secs = argc > 2 ? atof(argv[2]) : 5;
    int keys = argc > 3 ? atoi(argv[3]) : 10000;
    const char *phases = argc > 4 ? argv[4] : "both";
    bool do_list = strcmp(phases, "put") != 0, do_put = strcmp(phases, "list") != 0;
    bench b;
    memset(&b, 0, sizeof b);
    b.value = malloc(1024);
    memset(b.value, 'v', 1024);
    uv_loop_init(&b.loop);
    grpc_client_opts co = {.max_recv_msg_size = 512u << 20};
    b.c = grpc_client_new(&b.loop, argv[1], &co);
    if (!b.c) return 1;
    fill(&b, keys);
    if (b.errors) {
        fprintf(stderr, "fill failed\n");
        return 1;
    }
    printf("target %s, %d keys x 1 KiB, %.0f s per phase\n", argv[1], keys, secs);

    if (do_list) {
        uint64_t t0 = uv_hrtime();
        b.end_ns = t0 + (uint64_t)(secs * 1e9);
        issue(&b, 0);
        run_until_done(&b);
        report(&b, "LIST", (double)(uv_hrtime() - t0) / 1e9);
    }
    if (do_put) {
        uint64_t t0 = uv_hrtime();
        b.end_ns = t0 + (uint64_t)(secs * 1e9);
        for (int i = 0; i < 64; i++)
            issue(&b, 1);
        run_until_done(&b);
        report(&b, "PUT64", (double)(uv_hrtime() - t0) / 1e9);
    }

    grpc_client_free(b.c);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    uv_loop_close(&b.loop);
    free(b.lat);
    free(b.value);
    return 0;
}
