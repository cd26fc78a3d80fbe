/* decode.c — turning untrusted request bytes into protobuf-c messages safely.
 *
 * protobuf-c 1.4.1 has neither a size nor a nesting-depth limit, so:
 * - a TxnRequest is pre-scanned on the wire format before unpack: success/failure RequestOps
 *   holding request_txn (field 4) are followed with an explicit stack, never recursion, and a
 *   nesting deeper than KV_MAX_TXN_DEPTH is rejected before protobuf-c could recurse into it;
 * - unpack runs with a bounded allocator (a byte budget per request), so a small message that
 *   expands into many tiny structs (e.g. thousands of empty RequestOps) cannot take unbounded
 *   memory: the allocator refuses and unpack fails cleanly.
 */
#include <stdlib.h>
#include <string.h>

#include "srv_internal.h"

/* ---- bounded allocator ---- */

typedef struct alloc_hdr {
    size_t n;
    size_t pad; /* keeps the payload 16-byte aligned */
} alloc_hdr;

static void *balloc(void *ud, size_t n) {
    kvs_alloc *a = ud;
    if (n > a->cap - a->used || a->exceeded) {
        a->exceeded = true;
        return NULL;
    }
    alloc_hdr *h = malloc(sizeof *h + n);
    if (!h) {
        a->exceeded = true;
        return NULL;
    }
    h->n = n;
    a->used += n;
    return h + 1;
}

static void bfree(void *ud, void *p) {
    kvs_alloc *a = ud;
    if (!p) return;
    alloc_hdr *h = (alloc_hdr *)p - 1;
    a->used -= h->n;
    free(h);
}

void kvs_alloc_init(kvs_alloc *a, size_t cap) {
    a->pc.alloc = balloc;
    a->pc.free = bfree;
    a->pc.allocator_data = a;
    a->used = 0;
    a->cap = cap;
    a->exceeded = false;
}

/* ---- wire-format walking ---- */

static bool read_varint(const uint8_t *p, size_t n, size_t *at, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*at >= n) return false;
        uint8_t b = p[(*at)++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* Skips one field's value of wire type wt. */
static bool skip_value(const uint8_t *p, size_t n, size_t *at, unsigned wt) {
    uint64_t v;
    switch (wt) {
    case 0:
        return read_varint(p, n, at, &v);
    case 1:
        if (n - *at < 8) return false;
        *at += 8;
        return true;
    case 2:
        if (!read_varint(p, n, at, &v) || v > n - *at) return false;
        *at += (size_t)v;
        return true;
    case 5:
        if (n - *at < 4) return false;
        *at += 4;
        return true;
    default:
        return false; /* groups (3, 4) do not occur in proto3 etcd messages */
    }
}

typedef struct scan_frame {
    size_t end;  /* end offset of this message */
    bool is_txn; /* TxnRequest (else RequestOp) */
} scan_frame;

kvs_decode_rc kvs_txn_prescan(const uint8_t *p, size_t n, int max_depth) {
    /* Two frames per level (TxnRequest, RequestOp) plus the top. */
    enum { MAX_FRAMES = 2 * KV_MAX_TXN_DEPTH + 4 };
    if (max_depth > KV_MAX_TXN_DEPTH) max_depth = KV_MAX_TXN_DEPTH;
    scan_frame st[MAX_FRAMES];
    int top = 0, depth = 1;
    st[0].end = n;
    st[0].is_txn = true;
    size_t at = 0;
    for (;;) {
        scan_frame *f = &st[top];
        if (at == f->end) {
            if (top == 0) return KVS_DEC_OK;
            if (f->is_txn) depth--;
            top--;
            continue;
        }
        uint64_t tag;
        if (!read_varint(p, f->end, &at, &tag)) return KVS_DEC_MALFORMED;
        unsigned field = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
        if (field == 0) return KVS_DEC_MALFORMED;
        bool descend = wt == 2 && (f->is_txn ? (field == 2 || field == 3) : field == 4);
        if (!descend) {
            if (!skip_value(p, f->end, &at, wt)) return KVS_DEC_MALFORMED;
            continue;
        }
        uint64_t len;
        if (!read_varint(p, f->end, &at, &len) || len > f->end - at) return KVS_DEC_MALFORMED;
        bool child_txn = !f->is_txn;
        if (child_txn && ++depth > max_depth) return KVS_DEC_TOO_DEEP;
        if (top + 1 >= MAX_FRAMES) return KVS_DEC_TOO_DEEP;
        top++;
        st[top].end = at + (size_t)len;
        st[top].is_txn = child_txn;
    }
}

kvs_decode_rc kvs_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                         kvs_alloc *a, ProtobufCMessage **out) {
    *out = protobuf_c_message_unpack(d, &a->pc, n, p);
    if (*out) return KVS_DEC_OK;
    return a->exceeded ? KVS_DEC_NOMEM : KVS_DEC_MALFORMED;
}

static bool op_ok(const Etcdserverpb__RequestOp *u, uint32_t max, int depth) {
    if (!u || u->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN || !u->request_txn)
        return true;
    return kvs_txn_ops_ok(u->request_txn, max, depth + 1);
}

/* Recursion is bounded: the prescan already limited the depth (and depth is re-checked). */
bool kvs_txn_ops_ok(const Etcdserverpb__TxnRequest *t, uint32_t max, int depth) {
    if (depth > KV_MAX_TXN_DEPTH) return true; /* the engine reports the depth error */
    size_t opc = t->n_compare;
    if (opc < t->n_success) opc = t->n_success;
    if (opc < t->n_failure) opc = t->n_failure;
    if (opc > max) return false;
    uint32_t rest = max - (uint32_t)opc; /* etcd: nested txns get maxTxnOps - opc */
    for (size_t i = 0; i < t->n_success; i++)
        if (!op_ok(t->success[i], rest, depth)) return false;
    for (size_t i = 0; i < t->n_failure; i++)
        if (!op_ok(t->failure[i], rest, depth)) return false;
    return true;
}
