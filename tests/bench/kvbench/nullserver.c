/* nullserver.c — `kvbench __null-server`: a trivial in-memory etcd-API server (KV Range, Put,
 * DeleteRange, Txn, Compact on a sorted array; no durability, no MVCC history) used as target
 * `null` to measure kvbench's own ceiling: with a server this cheap, the client's CPU per op
 * is what limits the rate. It runs as a separate process so getrusage(RUSAGE_SELF) in kvbench
 * still measures the client alone. Prints "kvbench-null: serving on 127.0.0.1:PORT". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvbench.h"
#include "rpc.pb-c.h"

typedef struct ent {
    uint8_t *key, *val;
    size_t klen, vlen;
    int64_t create, mod, version;
} ent;

typedef struct store {
    ent *e;
    size_t n, cap;
    int64_t rev;
    /* the last Range request and its packed response, valid while rev is unchanged: repeated
     * LISTs then cost the server only the send, so the client's ceiling shows */
    uint8_t *last_req, *last_resp;
    size_t last_req_len, last_resp_len;
    int64_t last_rev;
} store;

static int keycmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

/* first index with key >= k */
static size_t lower(const store *s, const uint8_t *k, size_t kl) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (keycmp(s->e[mid].key, s->e[mid].klen, k, kl) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static ent *find(store *s, ProtobufCBinaryData k) {
    size_t i = lower(s, k.data, k.len);
    return i < s->n && keycmp(s->e[i].key, s->e[i].klen, k.data, k.len) == 0 ? &s->e[i] : NULL;
}

/* [from, to) of a key/range_end pair */
static void span(const store *s, ProtobufCBinaryData k, ProtobufCBinaryData end, size_t *from,
                 size_t *to) {
    *from = lower(s, k.data, k.len);
    if (end.len == 0) {
        *to = *from < s->n && keycmp(s->e[*from].key, s->e[*from].klen, k.data, k.len) == 0
                  ? *from + 1
                  : *from;
    } else if (end.len == 1 && end.data[0] == 0) {
        *to = s->n;
    } else {
        *to = lower(s, end.data, end.len);
        if (*to < *from) *to = *from;
    }
}

static int put(store *s, const Etcdserverpb__PutRequest *p, int64_t rev) {
    ent *e = find(s, p->key);
    uint8_t *v = malloc(p->value.len ? p->value.len : 1);
    if (!v) return -1;
    memcpy(v, p->value.data, p->value.len);
    if (e) {
        free(e->val);
        e->val = v;
        e->vlen = p->value.len;
        e->mod = rev;
        e->version++;
        return 0;
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 1024;
        ent *ne = realloc(s->e, nc * sizeof *ne);
        if (!ne) {
            free(v);
            return -1;
        }
        s->e = ne;
        s->cap = nc;
    }
    size_t i = lower(s, p->key.data, p->key.len);
    if (i < s->n) memmove(&s->e[i + 1], &s->e[i], (s->n - i) * sizeof *s->e);
    ent *n = &s->e[i];
    n->key = malloc(p->key.len ? p->key.len : 1);
    if (!n->key) return -1;
    memcpy(n->key, p->key.data, p->key.len);
    n->klen = p->key.len;
    n->val = v;
    n->vlen = p->value.len;
    n->create = n->mod = rev;
    n->version = 1;
    s->n++;
    return 0;
}

static int64_t del(store *s, ProtobufCBinaryData k, ProtobufCBinaryData end) {
    size_t from, to;
    span(s, k, end, &from, &to);
    if (to == from) return 0;
    for (size_t i = from; i < to; i++) {
        free(s->e[i].key);
        free(s->e[i].val);
    }
    memmove(&s->e[from], &s->e[to], (s->n - to) * sizeof *s->e);
    s->n -= to - from;
    return (int64_t)(to - from);
}

/* Builds a RangeResponse over live entries (kvs point into the store: pack before changing it). */
static void range(store *s, const Etcdserverpb__RangeRequest *rq, Etcdserverpb__RangeResponse *rr,
                  Mvccpb__KeyValue **kvp, Mvccpb__KeyValue *kvs) {
    size_t from, to;
    span(s, rq->key, rq->range_end, &from, &to);
    size_t n = to - from;
    rr->count = (int64_t)n;
    if (rq->limit > 0 && (size_t)rq->limit < n) {
        n = (size_t)rq->limit;
        rr->more = true;
    }
    if (rq->count_only) n = 0;
    for (size_t i = 0; i < n; i++) {
        ent *e = &s->e[from + i];
        mvccpb__key_value__init(&kvs[i]);
        kvs[i].key = (ProtobufCBinaryData){e->klen, e->key};
        if (!rq->keys_only) kvs[i].value = (ProtobufCBinaryData){e->vlen, e->val};
        kvs[i].create_revision = e->create;
        kvs[i].mod_revision = e->mod;
        kvs[i].version = e->version;
        kvp[i] = &kvs[i];
    }
    rr->kvs = kvp;
    rr->n_kvs = n;
}

static size_t range_size(store *s, const Etcdserverpb__RangeRequest *rq) {
    size_t from, to;
    span(s, rq->key, rq->range_end, &from, &to);
    return to - from;
}

static void reply(grpc_call *call, const ProtobufCMessage *m) {
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    protobuf_c_message_pack(m, b);
    grpc_call_reply(call, b, n);
    free(b);
}

static void m_range(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    store *s = ud;
    if (s->last_resp && s->last_rev == s->rev && s->last_req_len == len &&
        memcmp(s->last_req, msg, len) == 0) {
        grpc_call_reply(call, s->last_resp, s->last_resp_len);
        return;
    }
    Etcdserverpb__RangeRequest *rq = etcdserverpb__range_request__unpack(NULL, len, msg);
    if (!rq) {
        grpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "bad request");
        return;
    }
    size_t n = range_size(s, rq);
    Mvccpb__KeyValue **kvp = malloc((n + 1) * sizeof *kvp);
    Mvccpb__KeyValue *kvs = malloc((n + 1) * sizeof *kvs);
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    h.revision = s->rev;
    Etcdserverpb__RangeResponse rr = ETCDSERVERPB__RANGE_RESPONSE__INIT;
    rr.header = &h;
    if (kvp && kvs) {
        range(s, rq, &rr, kvp, kvs);
        size_t n_out = protobuf_c_message_get_packed_size(&rr.base);
        uint8_t *out = malloc(n_out ? n_out : 1);
        uint8_t *req = malloc(len ? len : 1);
        if (out && req) {
            protobuf_c_message_pack(&rr.base, out);
            memcpy(req, msg, len);
            grpc_call_reply(call, out, n_out);
            free(s->last_req);
            free(s->last_resp);
            s->last_req = req;
            s->last_req_len = len;
            s->last_resp = out;
            s->last_resp_len = n_out;
            s->last_rev = s->rev;
        } else {
            free(out);
            free(req);
            grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        }
    } else {
        grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    free(kvp);
    free(kvs);
    etcdserverpb__range_request__free_unpacked(rq, NULL);
}

static void m_put(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    store *s = ud;
    Etcdserverpb__PutRequest *p = etcdserverpb__put_request__unpack(NULL, len, msg);
    if (!p || put(s, p, s->rev + 1) != 0) {
        grpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "bad request");
    } else {
        s->rev++;
        Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
        h.revision = s->rev;
        Etcdserverpb__PutResponse pr = ETCDSERVERPB__PUT_RESPONSE__INIT;
        pr.header = &h;
        reply(call, &pr.base);
    }
    if (p) etcdserverpb__put_request__free_unpacked(p, NULL);
}

static void m_delete(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    store *s = ud;
    Etcdserverpb__DeleteRangeRequest *d =
        etcdserverpb__delete_range_request__unpack(NULL, len, msg);
    if (!d) {
        grpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "bad request");
        return;
    }
    Etcdserverpb__DeleteRangeResponse dr = ETCDSERVERPB__DELETE_RANGE_RESPONSE__INIT;
    dr.deleted = del(s, d->key, d->range_end);
    if (dr.deleted) s->rev++;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    h.revision = s->rev;
    dr.header = &h;
    reply(call, &dr.base);
    etcdserverpb__delete_range_request__free_unpacked(d, NULL);
}

static bool compare_ok(store *s, const Etcdserverpb__Compare *c) {
    ent *e = find(s, c->key);
    int64_t have = 0, want = 0;
    switch (c->target) {
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
        have = e ? e->mod : 0;
        want = c->mod_revision;
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
        have = e ? e->version : 0;
        want = c->version;
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
        have = e ? e->create : 0;
        want = c->create_revision;
        break;
    default:
        return false;
    }
    switch (c->result) {
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL:
        return have == want;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL:
        return have != want;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER:
        return have > want;
    default:
        return have < want;
    }
}

/* Flat txns only (no nested request_txn): enough for kvbench's seeding and CAS. */
static void m_txn(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    store *s = ud;
    Etcdserverpb__TxnRequest *t = etcdserverpb__txn_request__unpack(NULL, len, msg);
    if (!t) {
        grpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "bad request");
        return;
    }
    bool ok = true;
    for (size_t i = 0; i < t->n_compare; i++)
        ok = ok && compare_ok(s, t->compare[i]);
    Etcdserverpb__RequestOp **ops = ok ? t->success : t->failure;
    size_t n = ok ? t->n_success : t->n_failure;
    bool writes = false;
    for (size_t i = 0; i < n; i++)
        if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE) writes = true;
    int64_t rev = s->rev + (writes ? 1 : 0);
    Etcdserverpb__ResponseOp *ro = calloc(n + 1, sizeof *ro);
    Etcdserverpb__ResponseOp **rop = calloc(n + 1, sizeof *rop);
    Etcdserverpb__RangeResponse *rr = calloc(n + 1, sizeof *rr);
    Etcdserverpb__PutResponse *pr = calloc(n + 1, sizeof *pr);
    Etcdserverpb__DeleteRangeResponse *dr = calloc(n + 1, sizeof *dr);
    Mvccpb__KeyValue ***kvps = calloc(n + 1, sizeof *kvps);
    Mvccpb__KeyValue **kvss = calloc(n + 1, sizeof *kvss);
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    bool oom = !ro || !rop || !rr || !pr || !dr || !kvps || !kvss;
    /* reads first see the state before this txn's writes only if ordered so: apply in order */
    for (size_t i = 0; !oom && i < n; i++) {
        etcdserverpb__response_op__init(&ro[i]);
        rop[i] = &ro[i];
        Etcdserverpb__RequestOp *op = ops[i];
        if (op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT) {
            etcdserverpb__put_response__init(&pr[i]);
            pr[i].header = &h;
            ro[i].response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
            ro[i].response_put = &pr[i];
            if (put(s, op->request_put, rev) != 0) oom = true;
        } else if (op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE) {
            etcdserverpb__delete_range_response__init(&dr[i]);
            dr[i].header = &h;
            dr[i].deleted =
                del(s, op->request_delete_range->key, op->request_delete_range->range_end);
            ro[i].response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
            ro[i].response_delete_range = &dr[i];
        } else if (op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE) {
            etcdserverpb__range_response__init(&rr[i]);
            rr[i].header = &h;
            size_t m = range_size(s, op->request_range);
            kvps[i] = malloc((m + 1) * sizeof **kvps);
            kvss[i] = malloc((m + 1) * sizeof **kvss);
            if (!kvps[i] || !kvss[i]) {
                oom = true;
                break;
            }
            range(s, op->request_range, &rr[i], kvps[i], kvss[i]);
            ro[i].response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
            ro[i].response_range = &rr[i];
        }
    }
    s->rev = rev;
    h.revision = rev;
    if (oom) {
        grpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        Etcdserverpb__TxnResponse tr = ETCDSERVERPB__TXN_RESPONSE__INIT;
        tr.header = &h;
        tr.succeeded = ok;
        tr.responses = rop;
        tr.n_responses = n;
        reply(call, &tr.base);
    }
    for (size_t i = 0; kvps && kvss && i < n; i++) {
        free(kvps[i]);
        free(kvss[i]);
    }
    free(ro);
    free(rop);
    free(rr);
    free(pr);
    free(dr);
    free(kvps);
    free(kvss);
    etcdserverpb__txn_request__free_unpacked(t, NULL);
}

static void m_compact(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    (void)msg;
    (void)len;
    store *s = ud;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    h.revision = s->rev;
    Etcdserverpb__CompactionResponse cr = ETCDSERVERPB__COMPACTION_RESPONSE__INIT;
    cr.header = &h;
    reply(call, &cr.base);
}

int kb_null_server_main(void) {
    store s = {.rev = 1};
    grpc_method methods[] = {
        {.path = "/etcdserverpb.KV/Range", .kind = GRPC_UNARY, .on_unary = m_range, .ud = &s},
        {.path = "/etcdserverpb.KV/Put", .kind = GRPC_UNARY, .on_unary = m_put, .ud = &s},
        {.path = "/etcdserverpb.KV/DeleteRange",
         .kind = GRPC_UNARY,
         .on_unary = m_delete,
         .ud = &s},
        {.path = "/etcdserverpb.KV/Txn", .kind = GRPC_UNARY, .on_unary = m_txn, .ud = &s},
        {.path = "/etcdserverpb.KV/Compact", .kind = GRPC_UNARY, .on_unary = m_compact, .ud = &s},
    };
    uv_loop_t loop;
    uv_loop_init(&loop);
    grpc_server *srv = grpc_server_new(&loop, NULL, methods, sizeof methods / sizeof methods[0]);
    if (!srv || grpc_server_listen(srv, "127.0.0.1", 0) != 0) {
        fprintf(stderr, "kvbench-null: cannot listen on 127.0.0.1\n");
        return 1;
    }
    printf("kvbench-null: serving on 127.0.0.1:%d\n", grpc_server_port(srv));
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT); /* until SIGTERM (default action) */
    return 0;
}
