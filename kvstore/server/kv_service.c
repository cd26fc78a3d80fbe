/* kv_service.c — etcdserverpb.KV on the engine: request intake, the LIST path, completions,
 * per-connection output parking, metrics.
 *
 * - Range runs on the loop thread through kv_range_raw: each stored KeyValue is copied once,
 *   already encoded, into a chunk list as RangeResponse field 2; the header, more and count
 *   are encoded by hand; the chunks are handed to the gRPC library without a copy
 *   (grpc_call_send_chunk_owned), which writes them to the socket by reference, and a large
 *   LIST streams in L2-sized chunks (see "the LIST path"). So a LIST copies each stored byte
 *   once in user space. No protobuf-c KeyValue structs exist for it.
 * - LIST response cache (list_cache.h): a LIST whose answer is >= 32 KiB is built into a
 *   cache entry instead of pooled chunks (still one copy, still streamed as it fills); an
 *   identical LIST at the same store revision is then sent from that entry by reference, with
 *   no walk and no copy. A committed write drops the entries (kvs_writer_done; anything else
 *   that moves the revision is caught by the check before each hit).
 * - Put / DeleteRange / Txn / Compact are decoded here (size limit, txn depth pre-scan, bounded
 *   allocator, max-txn-ops) and queued for the writer thread; kvs_writer_done() encodes their
 *   responses back on the loop.
 * - A connection whose queued output is above conn_out_cap gets its further requests parked
 *   (bytes copied, at most max_parked_bytes); a 5 ms timer resumes them as it drains. So a client
 *   that stops reading costs at most cap + one response + parked bytes, not unbounded memory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_wire.h"
#include "srv_internal.h"

const char *const kvs_method_names[KVS_M__N] = {"Range", "Put",     "DeleteRange",
                                                "Txn",   "Compact", "Status"};

#define MSG_TOO_LARGE "etcdserver: request is too large"
#define MSG_UNMARSHAL                                                                              \
    "grpc: error unmarshalling request: proto: cannot parse invalid wire-format data"
#define MSG_DECODE_MEM "kvstore: request expands beyond the decoding memory bound"

void kvs_logf(const kvs_server *srv, const char *fmt, ...) {
    if (!srv->opts.log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    srv->opts.log(srv->opts.log_ud, line);
}

void kvs_conn_unref(kvs_conn *c) {
    if (!c || --c->refs) return;
    kvs_peer_release(c->srv->metrics.peers, c->peer);
    free(c);
}

void kvs_finish_metrics(kvs_server *srv, kvs_conn *conn, kvs_method m, uint64_t t0, int code,
                        size_t bytes_sent) {
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    kvs_rpc_metrics_done(&srv->rpc[m], code, secs);
    if (code == GRPC_STATUS_OK) kvs_counter_inc(srv->rpc[m].msg_sent);
    if (conn && bytes_sent) kvs_peer_add_sent(conn->peer, bytes_sent + 5);
}

void kvs_fail_call(kvs_server *srv, grpc_call *call, kvs_conn *kc, kvs_method m, uint64_t t0,
                   int status, const char *msg) {
    grpc_call_fail(call, status, msg);
    kvs_finish_metrics(srv, kc, m, t0, status, 0);
}

void kvs_fail_kv(kvs_server *srv, grpc_call *call, kvs_conn *kc, kvs_method m, uint64_t t0,
                 const kv_err *e) {
    kvs_fail_call(srv, call, kc, m, t0, kv_code_grpc_status(e->code),
                  e->msg[0] ? e->msg : kv_code_message(e->code));
}

/* ---- encoding helpers ---- */

/* field 1 (ResponseHeader) of any etcd response; buf >= 48 bytes. */
static size_t encode_header(uint8_t *buf, const Etcdserverpb__ResponseHeader *h) {
    uint8_t tmp[44];
    size_t n = 0;
    if (h->cluster_id) tmp[n++] = 0x08, n += pb_varint(tmp + n, h->cluster_id);
    if (h->member_id) tmp[n++] = 0x10, n += pb_varint(tmp + n, h->member_id);
    if (h->revision) tmp[n++] = 0x18, n += pb_varint(tmp + n, (uint64_t)h->revision);
    if (h->raft_term) tmp[n++] = 0x20, n += pb_varint(tmp + n, h->raft_term);
    size_t o = 0;
    buf[o++] = 0x0a;
    o += pb_varint(buf + o, n);
    memcpy(buf + o, tmp, n);
    return o + n;
}

/* ---- the LIST path ----
 *
 * One walk of the range (kv_range_raw_hold) collects a pointer into the LMDB map and the
 * length of every stored KeyValue; the walk's completion callback, still inside the read
 * snapshot, knows the message length, so it frames the response and copies the entries into
 * chunks, prefetching a few entries ahead (the map pages are in B-tree split order, so the
 * hardware cannot guess them). A large LIST streams: each LIST_CHUNK (L2-sized) is handed to
 * the gRPC library without a copy (grpc_call_send_chunk_owned) and flushed to the socket at
 * once, so the chunk usually comes back to the pool still cache-hot and the copy from LMDB,
 * the kernel's socket copy and the client's receive overlap on a small working set. Each
 * stored byte is copied once in user space. The snapshot stays open only for this
 * synchronous handler (what the socket does not take at once waits in the copied chunks).
 * keys_only entries are re-encoded by the engine in a reused buffer: those are copied at once.
 * Field order as etcd: header, kvs, more, count. */

typedef struct chunk {
    kvs_server *srv;
    size_t len, cap;
    uint8_t data[];
} chunk;

typedef struct entry {
    const uint8_t *p;
    size_t len;
} entry;

typedef struct range_out {
    kvs_server *srv;
    grpc_call *call;
    bool copy_now; /* keys_only: entry bytes are not stable, copy in the walk */
    entry *e;      /* the walk's entries (copy_now: unused) */
    size_t n_e, cap_e;
    chunk **c; /* copy_now: the chunks filled during the walk */
    size_t n_c, cap_c;
    size_t total; /* bytes of all kvs entries (field 2, with tag and length) */
    uint8_t head[64], tail[16];
    size_t hn, tn;
    bool ok; /* the message went out whole (done ran and every send was accepted) */
    /* LIST response cache: the request's key (lc_key_len 0: not cacheable) and revision */
    const uint8_t *lc_key;
    size_t lc_key_len;
    int64_t req_rev;
    entry e_stack[64]; /* last: not cleared */
} range_out;

#define FIRST_CHUNK    4096
#define LIST_CHUNK     ((size_t)256 << 10) /* L2-sized pieces (pool entries are this size) */
#define GRPC_ZC_HINT   8192                /* below this a chunk is copied, not handed over */
#define PREFETCH_AHEAD 6                   /* entries */

/* Big chunks come from a small per-server pool (srv->pool holds chunk pointers with LIST_CHUNK
 * bytes of data each): fresh large mallocs per LIST cost more in page faults than the copy. */
static chunk *chunk_get(kvs_server *srv, size_t need, bool small_ok) {
    size_t cap;
    chunk *c = NULL;
    if (need <= FIRST_CHUNK && small_ok) { /* a single-key GET stays small */
        cap = FIRST_CHUNK;
    } else if (need <= LIST_CHUNK) {
        cap = LIST_CHUNK;
        if (srv->n_pool) c = (chunk *)srv->pool[--srv->n_pool];
    } else {
        cap = need;
    }
    if (!c) c = malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->srv = srv;
    c->len = 0;
    c->cap = cap;
    return c;
}

static void chunk_put(chunk *c) {
    kvs_server *srv = c->srv;
    if (c->cap == LIST_CHUNK && srv->n_pool < KVS_CHUNK_POOL)
        srv->pool[srv->n_pool++] = (uint8_t *)c;
    else
        free(c);
}

static void chunk_release(void *ud) {
    chunk_put(ud);
}

void kvs_chunk_pool_free(kvs_server *srv) {
    while (srv->n_pool)
        free(srv->pool[--srv->n_pool]);
}

static size_t entry_size(size_t len) {
    return 1 + pb_varint_len(len) + len;
}

/* One KeyValue as RangeResponse field 2 at w; returns the bytes written (entry_size). */
static size_t entry_write(uint8_t *w, const uint8_t *kv, size_t len) {
    size_t k = 0;
    w[k++] = 0x12; /* RangeResponse.kvs */
    k += pb_varint(w + k, len);
    memcpy(w + k, kv, len);
    return k + len;
}

static void entry_copy(chunk *c, const uint8_t *kv, size_t len) {
    c->len += entry_write(c->data + c->len, kv, len);
}

/* keys_only: copy during the walk (small entries). */
static int emit_copy(range_out *o, const uint8_t *kv, size_t len, size_t need) {
    chunk *last = o->n_c ? o->c[o->n_c - 1] : NULL;
    if (!last || last->cap - last->len < need) {
        if (o->n_c == o->cap_c) {
            size_t cap = o->cap_c ? o->cap_c * 2 : 16;
            chunk **nc = realloc(o->c, cap * sizeof *nc);
            if (!nc) return KV_ERR_NOMEM;
            o->c = nc;
            o->cap_c = cap;
        }
        last = chunk_get(o->srv, need, o->n_c == 0);
        if (!last) return KV_ERR_NOMEM;
        o->c[o->n_c++] = last;
    }
    entry_copy(last, kv, len);
    return 0;
}

static int range_emit(void *ud, const uint8_t *kv, size_t len) {
    range_out *o = ud;
    size_t need = entry_size(len);
    o->total += need;
    if (o->copy_now) return emit_copy(o, kv, len, need);
    if (o->n_e == o->cap_e) {
        size_t cap = o->cap_e * 2;
        entry *ne = o->e == o->e_stack ? malloc(cap * sizeof *ne) : realloc(o->e, cap * sizeof *ne);
        if (!ne) return KV_ERR_NOMEM;
        if (o->e == o->e_stack) memcpy(ne, o->e_stack, sizeof o->e_stack);
        o->e = ne;
        o->cap_e = cap;
    }
    o->e[o->n_e++] = (entry){kv, len};
    return 0;
}

/* Hands a filled chunk to the library (or copies a small one); false when the call is gone. */
static bool hand_over(grpc_call *call, chunk *c) {
    if (c->len < GRPC_ZC_HINT) {
        bool ok = grpc_call_send_chunk(call, c->data, c->len) >= 0;
        chunk_put(c);
        return ok;
    }
    return grpc_call_send_chunk_owned(call, c->data, c->len, chunk_release, c) >= 0;
}

static void prefetch_entry(const entry *e) {
    for (size_t off = 0; off < e->len; off += 64)
        __builtin_prefetch(e->p + off);
    __builtin_prefetch(e->p + e->len - 1);
}

/* Copies the collected entries into chunks, handing each full one over; a large response is
 * flushed chunk by chunk. */
static bool send_entries(range_out *o, bool stream) {
    size_t n = o->n_e;
    for (size_t i = 0; i < n && i < PREFETCH_AHEAD; i++)
        prefetch_entry(&o->e[i]);
    chunk *cur = NULL;
    for (size_t i = 0; i < n; i++) {
        if (i + PREFETCH_AHEAD < n) prefetch_entry(&o->e[i + PREFETCH_AHEAD]);
        size_t need = entry_size(o->e[i].len);
        if (cur && cur->cap - cur->len < need) {
            chunk *full = cur;
            cur = NULL;
            if (!hand_over(o->call, full)) return false;
            if (stream) grpc_call_flush(o->call);
        }
        if (!cur && !(cur = chunk_get(o->srv, need, i == 0 && n == 1))) return false;
        entry_copy(cur, o->e[i].p, o->e[i].len);
    }
    return !cur || hand_over(o->call, cur);
}

/* Hands bytes [from, to) of a cache entry to the library by reference. */
static bool hand_slice(grpc_call *call, kvs_lentry *e, size_t from, size_t to) {
    if (to == from) return true;
    kvs_lentry_ref(e);
    return grpc_call_send_chunk_owned(call, e->data + from, to - from, kvs_lentry_release, e) >= 0;
}

/* A cacheable LIST: the message is built in a new cache entry instead of pooled chunks (the
 * same single copy from the map), streamed from it in LIST_CHUNK slices as it fills, and
 * stored when it went out whole. Returns false only when the entry could not be allocated
 * (nothing sent yet: the caller sends from chunks instead). */
static bool send_and_store(range_out *o, const kv_range_info *info, size_t msg_len) {
    kvs_server *srv = o->srv;
    grpc_call *call = o->call;
    kvs_lentry *e = kvs_lentry_new(o->lc_key, o->lc_key_len,
                                   o->req_rev > 0 ? o->req_rev : info->revision, msg_len);
    if (!e) return false;
    uint8_t *d = e->data;
    memcpy(d, o->head, o->hn);
    size_t w = o->hn, sent = 0;
    bool ok = grpc_call_send_begin(call, msg_len) >= 0;
    if (o->copy_now) { /* keys_only: the walk already copied into chunks */
        for (size_t i = 0; i < o->n_c; i++) {
            memcpy(d + w, o->c[i]->data, o->c[i]->len);
            w += o->c[i]->len;
        }
    } else {
        size_t n = o->n_e;
        for (size_t i = 0; i < n && i < PREFETCH_AHEAD; i++)
            prefetch_entry(&o->e[i]);
        for (size_t i = 0; ok && i < n; i++) {
            if (i + PREFETCH_AHEAD < n) prefetch_entry(&o->e[i + PREFETCH_AHEAD]);
            w += entry_write(d + w, o->e[i].p, o->e[i].len);
            if (w - sent >= LIST_CHUNK) { /* out while cache-hot, as send_entries does */
                ok = hand_slice(call, e, sent, w);
                sent = w;
                grpc_call_flush(call);
            }
        }
    }
    if (ok) {
        memcpy(d + w, o->tail, o->tn);
        w += o->tn;
        ok = hand_slice(call, e, sent, w);
    }
    o->ok = ok;
    if (ok && w == msg_len) {
        kvs_lcache_store(srv->lcache, e, info->revision);
        kvs_lc_publish(srv);
    } else {
        kvs_lentry_unref(e); /* the slices handed over keep it until sent */
    }
    return true;
}

/* The walk is complete and the snapshot still open: frame and send the whole message. */
static int range_done(void *ud, const kv_range_info *info) {
    range_out *o = ud;
    kvs_server *srv = o->srv;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    kv_fill_header(srv->store, &h, info->revision);
    o->hn = encode_header(o->head, &h);
    if (info->more) o->tail[o->tn++] = 0x18, o->tail[o->tn++] = 1;
    if (info->count)
        o->tail[o->tn++] = 0x20, o->tn += pb_varint(o->tail + o->tn, (uint64_t)info->count);
    grpc_call *call = o->call;
    size_t msg_len = o->hn + o->total + o->tn;
    if (o->lc_key_len && msg_len >= KVS_LC_MIN_BYTES) {
        srv->lc_misses++;
        kvs_counter_inc(srv->m_lc_misses);
        if (kvs_lcache_fits(srv->lcache, msg_len, o->lc_key_len) &&
            send_and_store(o, info, msg_len))
            return 0;
    }
    bool stream = o->total > LIST_CHUNK;
    bool ok = grpc_call_send_begin(call, o->hn + o->total + o->tn) >= 0 &&
              grpc_call_send_chunk(call, o->head, o->hn) >= 0;
    if (o->copy_now) {
        size_t i = 0;
        for (; ok && i < o->n_c; i++)
            ok = hand_over(call, o->c[i]);
        for (; i < o->n_c; i++) /* not handed over after a failure */
            chunk_put(o->c[i]);
        o->n_c = 0;
    } else if (ok) {
        if (stream) grpc_call_flush(call);
        ok = send_entries(o, stream);
    }
    if (ok && o->tn) ok = grpc_call_send_chunk(call, o->tail, o->tn) >= 0;
    o->ok = ok;
    return 0; /* a failed send means the call is gone or short: finish reports it */
}

static void range_out_free(range_out *o) {
    for (size_t i = 0; i < o->n_c; i++)
        chunk_put(o->c[i]);
    free(o->c);
    if (o->e != o->e_stack) free(o->e);
}

/* A Range answered (from the store or the cache): OK trailers and the accounting. */
static void range_finish(kvs_server *srv, grpc_call *call, kvs_conn *kc, uint64_t t0, bool is_list,
                         bool ok, size_t total) {
    grpc_call_finish(call, GRPC_STATUS_OK, NULL); /* a short message fails the stream */
    srv->lists_served++;
    kvs_finish_metrics(srv, kc, KVS_M_RANGE, t0, ok ? GRPC_STATUS_OK : GRPC_STATUS_INTERNAL,
                       ok ? total : 0);
    kvs_srv_observe_range(&srv->metrics, is_list, (double)(uv_hrtime() - t0) / 1e9);
}

static void serve_range(kvs_server *srv, grpc_call *call, kvs_conn *kc, const uint8_t *msg,
                        size_t len, uint64_t t0) {
    kvs_alloc a;
    kvs_alloc_init(&a, 8 * len + 65536);
    ProtobufCMessage *pm;
    kvs_decode_rc rc = kvs_unpack(&etcdserverpb__range_request__descriptor, msg, len, &a, &pm);
    if (rc != KVS_DEC_OK) {
        kvs_fail_call(srv, call, kc, KVS_M_RANGE, t0,
                      rc == KVS_DEC_NOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INTERNAL,
                      rc == KVS_DEC_NOMEM ? MSG_DECODE_MEM : MSG_UNMARSHAL);
        return;
    }
    Etcdserverpb__RangeRequest *req = (Etcdserverpb__RangeRequest *)pm;
    bool is_list = req->range_end.len > 0;
    uint8_t key[KVS_LC_MAX_KEY];
    size_t key_len = is_list && srv->lcache ? kvs_lc_key(req, key) : 0;
    size_t total = 0;
    bool ok = false;
    if (key_len && kvs_lc_serve(srv, call, req, key, key_len, &total, &ok)) {
        protobuf_c_message_free_unpacked(pm, &a.pc);
        kvs_counter_inc(srv->metrics.mvcc_range);
        range_finish(srv, call, kc, t0, is_list, ok, total);
        return;
    }
    range_out *o = malloc(sizeof *o);
    if (!o) {
        protobuf_c_message_free_unpacked(pm, &a.pc);
        kvs_fail_call(srv, call, kc, KVS_M_RANGE, t0, GRPC_STATUS_RESOURCE_EXHAUSTED,
                      kv_code_message(KV_ERR_NOMEM));
        return;
    }
    memset(o, 0, offsetof(range_out, e_stack));
    o->srv = srv;
    o->call = call;
    o->copy_now = req->keys_only;
    o->e = o->e_stack;
    o->cap_e = sizeof o->e_stack / sizeof o->e_stack[0];
    o->lc_key = key;
    o->lc_key_len = key_len;
    o->req_rev = req->revision;
    kv_range_info info;
    kv_err err;
    memset(&err, 0, sizeof err);
    int code = kv_range_raw_hold(srv->store, req, range_emit, o, range_done, &info, &err);
    protobuf_c_message_free_unpacked(pm, &a.pc);
    kvs_counter_inc(srv->metrics.mvcc_range);
    total = o->hn + o->total + o->tn;
    ok = o->ok;
    range_out_free(o);
    free(o);
    if (code != KV_OK) {
        if (!err.code) err.code = code;
        kvs_fail_kv(srv, call, kc, KVS_M_RANGE, t0, &err);
        kvs_srv_observe_range(&srv->metrics, is_list, (double)(uv_hrtime() - t0) / 1e9);
        return;
    }
    range_finish(srv, call, kc, t0, is_list, ok, total);
}

/* ---- writes: intake ---- */

void kvs_req_free(kvs_req *r) {
    if (!r) return;
    if (r->msg) protobuf_c_message_free_unpacked(r->msg, &r->alloc.pc);
    if (r->arena) kv_arena_free(r->arena);
    kvs_conn_unref(r->conn);
    free(r);
}

static const ProtobufCMessageDescriptor *write_descriptor(kvs_method m) {
    switch (m) {
    case KVS_M_PUT:
        return &etcdserverpb__put_request__descriptor;
    case KVS_M_DELETE:
        return &etcdserverpb__delete_range_request__descriptor;
    case KVS_M_TXN:
        return &etcdserverpb__txn_request__descriptor;
    default:
        return &etcdserverpb__compaction_request__descriptor;
    }
}

static void submit_write(kvs_server *srv, grpc_call *call, kvs_conn *kc, kvs_method m,
                         const uint8_t *msg, size_t len, uint64_t t0) {
    /* etcd's own check, on the raft path: writes only. */
    if (len > srv->opts.max_request_bytes) {
        kvs_fail_call(srv, call, kc, m, t0, GRPC_STATUS_INVALID_ARGUMENT, MSG_TOO_LARGE);
        return;
    }
    if (m == KVS_M_TXN) {
        kvs_decode_rc pre = kvs_txn_prescan(msg, len, KV_MAX_TXN_DEPTH);
        if (pre == KVS_DEC_TOO_DEEP) {
            kvs_fail_call(srv, call, kc, m, t0, GRPC_STATUS_INVALID_ARGUMENT,
                          kv_code_message(KV_ERR_TXN_TOO_DEEP));
            return;
        }
        if (pre == KVS_DEC_MALFORMED) {
            kvs_fail_call(srv, call, kc, m, t0, GRPC_STATUS_INTERNAL, MSG_UNMARSHAL);
            return;
        }
    }
    kvs_req *r = calloc(1, sizeof *r);
    if (!r) {
        kvs_fail_call(srv, call, kc, m, t0, GRPC_STATUS_RESOURCE_EXHAUSTED,
                      kv_code_message(KV_ERR_NOMEM));
        return;
    }
    r->srv = srv;
    r->call = call;
    r->m = m;
    r->t0 = t0;
    kvs_alloc_init(&r->alloc, 8 * len + 65536);
    kvs_decode_rc rc = kvs_unpack(write_descriptor(m), msg, len, &r->alloc, &r->msg);
    if (rc != KVS_DEC_OK) {
        kvs_fail_call(srv, call, kc, m, t0,
                      rc == KVS_DEC_NOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INTERNAL,
                      rc == KVS_DEC_NOMEM ? MSG_DECODE_MEM : MSG_UNMARSHAL);
        kvs_req_free(r);
        return;
    }
    Etcdserverpb__RequestOp init = ETCDSERVERPB__REQUEST_OP__INIT;
    r->op = init;
    switch (m) {
    case KVS_M_PUT:
        r->op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        r->op.request_put = (Etcdserverpb__PutRequest *)r->msg;
        kvs_counter_inc(srv->metrics.mvcc_put);
        break;
    case KVS_M_DELETE:
        r->op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
        r->op.request_delete_range = (Etcdserverpb__DeleteRangeRequest *)r->msg;
        kvs_counter_inc(srv->metrics.mvcc_delete);
        break;
    case KVS_M_TXN:
        r->op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
        r->op.request_txn = (Etcdserverpb__TxnRequest *)r->msg;
        kvs_counter_inc(srv->metrics.mvcc_txn);
        if (!kvs_txn_ops_ok(r->op.request_txn, srv->opts.max_txn_ops, 1)) {
            kvs_fail_call(srv, call, kc, m, t0, GRPC_STATUS_INVALID_ARGUMENT,
                          kv_code_message(KV_ERR_TOO_MANY_OPS));
            kvs_req_free(r);
            return;
        }
        break;
    default: {
        Etcdserverpb__CompactionRequest *c = (Etcdserverpb__CompactionRequest *)r->msg;
        r->compact_rev = c->revision;
        r->physical = c->physical;
        break;
    }
    }
    if (m != KVS_M_COMPACT && !(r->arena = kv_arena_new())) {
        kvs_fail_call(srv, call, kc, m, t0, GRPC_STATUS_RESOURCE_EXHAUSTED,
                      kv_code_message(KV_ERR_NOMEM));
        kvs_req_free(r);
        return;
    }
    if (kc) kc->refs++;
    r->conn = kc;
    kvs_writer_submit(srv->writer, r);
}

/* ---- writes: completion (loop thread) ---- */

static void reply_packed(kvs_req *r, const ProtobufCMessage *m) {
    uint8_t stack[512];
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = n <= sizeof stack ? stack : malloc(n);
    if (!buf) {
        kvs_req_fail(r, GRPC_STATUS_RESOURCE_EXHAUSTED, kv_code_message(KV_ERR_NOMEM));
        return;
    }
    protobuf_c_message_pack(m, buf);
    grpc_call_reply(r->call, buf, n);
    if (buf != stack) free(buf);
    kvs_finish_metrics(r->srv, r->conn, r->m, r->t0, GRPC_STATUS_OK, n);
}

void kvs_req_fail(kvs_req *r, int status, const char *msg) {
    kvs_fail_call(r->srv, r->call, r->conn, r->m, r->t0, status, msg);
}

static void complete_one(kvs_server *srv, kvs_req *r) {
    if (r->m == KVS_M_COMPACT) {
        if (r->err.code != KV_OK) {
            kvs_fail_kv(srv, r->call, r->conn, r->m, r->t0, &r->err);
            return;
        }
        kv_status st;
        kv_status_get(srv->store, &st);
        Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
        kv_fill_header(srv->store, &h, st.revision);
        Etcdserverpb__CompactionResponse resp = ETCDSERVERPB__COMPACTION_RESPONSE__INIT;
        resp.header = &h;
        reply_packed(r, &resp.base);
        return;
    }
    if (r->w.err.code != KV_OK || !r->w.resp) {
        kv_err e = r->w.err;
        if (e.code == KV_OK) e.code = KV_ERR_IO;
        kvs_fail_kv(srv, r->call, r->conn, r->m, r->t0, &e);
        return;
    }
    const ProtobufCMessage *m = NULL;
    switch (r->w.resp->response_case) {
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT:
        m = &r->w.resp->response_put->base;
        break;
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE:
        m = &r->w.resp->response_delete_range->base;
        break;
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN:
        m = &r->w.resp->response_txn->base;
        break;
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE:
        m = &r->w.resp->response_range->base;
        break;
    default:
        break;
    }
    if (!m) {
        kvs_req_fail(r, GRPC_STATUS_INTERNAL, "kvstore: engine returned no response");
        return;
    }
    reply_packed(r, m);
}

void kvs_writer_done(kvs_server *srv, kvs_req *list) {
    while (list) {
        kvs_req *next = list->next;
        if (list->m != KVS_M_COMPACT && list->w.err.code == KV_OK)
            kvs_lc_note_write(srv, list->w.revision);
        complete_one(srv, list);
        kvs_req_free(list);
        list = next;
    }
}

/* ---- dispatch, parking ---- */

static void dispatch(kvs_server *srv, grpc_call *call, kvs_conn *kc, kvs_method m,
                     const uint8_t *msg, size_t len, uint64_t t0) {
    switch (m) {
    case KVS_M_RANGE:
        serve_range(srv, call, kc, msg, len, t0);
        break;
    case KVS_M_STATUS:
        kvs_status_unary(srv, call, kc, msg, len, t0);
        break;
    default:
        submit_write(srv, call, kc, m, msg, len, t0);
        break;
    }
}

static bool conn_over_cap(const kvs_server *srv, const kvs_conn *kc) {
    if (kc->closed || !kc->gc) return false;
    grpc_conn_stats st;
    grpc_conn_get_stats(kc->gc, &st);
    return st.out_buffered > srv->opts.conn_out_cap;
}

static void park(kvs_server *srv, grpc_call *call, kvs_conn *kc, kvs_method m, const uint8_t *msg,
                 size_t len, uint64_t t0) {
    if (kc->parked_bytes + len > srv->opts.max_parked_bytes) {
        kvs_fail_call(srv, call, kc, m, t0, GRPC_STATUS_RESOURCE_EXHAUSTED,
                      "kvstore: too many requests waiting for this connection's output to drain");
        return;
    }
    kvs_parked *p = malloc(sizeof *p + len);
    if (!p) {
        kvs_fail_call(srv, call, kc, m, t0, GRPC_STATUS_RESOURCE_EXHAUSTED,
                      kv_code_message(KV_ERR_NOMEM));
        return;
    }
    p->tag = KVS_TAG_PARKED;
    p->next = NULL;
    p->conn = kc;
    p->call = call;
    p->m = m;
    p->t0 = t0;
    p->len = len;
    if (len) memcpy(p->data, msg, len);
    grpc_call_set_user_data(call, p);
    if (kc->park_tail)
        kc->park_tail->next = p;
    else
        kc->park_head = p;
    kc->park_tail = p;
    kc->parked_bytes += len;
    kc->refs++;
    srv->parked_total++;
    if (!kc->in_park_list) {
        kc->in_park_list = true;
        kc->refs++;
        kc->park_next = srv->park_list;
        srv->park_list = kc;
    }
    if (!srv->park_timer_on) {
        srv->park_timer_on = true;
        uv_timer_start(&srv->park_timer, kvs_park_timer_cb, 5, 5);
    }
}

static kvs_parked *unpark_head(kvs_conn *kc) {
    kvs_parked *p = kc->park_head;
    kc->park_head = p->next;
    if (!kc->park_head) kc->park_tail = NULL;
    kc->parked_bytes -= p->len;
    return p;
}

void kvs_park_timer_cb(uv_timer_t *t) {
    kvs_server *srv = t->data;
    kvs_conn **pp = &srv->park_list;
    while (*pp) {
        kvs_conn *kc = *pp;
        kc->refs++; /* dispatch may drop the parked refs */
        while (kc->park_head && !kc->closed && !conn_over_cap(srv, kc)) {
            kvs_parked *p = unpark_head(kc);
            grpc_call_set_user_data(p->call, &srv->mud[p->m]);
            dispatch(srv, p->call, kc, p->m, p->data, p->len, p->t0);
            free(p);
            kc->refs--; /* the parked request's ref (kc->refs stays >= 2 here) */
        }
        if (!kc->park_head) {
            *pp = kc->park_next;
            kc->in_park_list = false;
            kc->refs--; /* the list's ref */
        } else {
            pp = &kc->park_next;
        }
        kvs_conn_unref(kc);
    }
    if (!srv->park_list) {
        uv_timer_stop(&srv->park_timer);
        srv->park_timer_on = false;
    }
}

void kvs_on_unary(grpc_call *call, const uint8_t *msg, size_t len, void *ud) {
    kvs_method_ud *mu = ud;
    kvs_server *srv = mu->srv;
    uint64_t t0 = uv_hrtime();
    kvs_conn *kc = grpc_conn_user_data(grpc_call_conn(call));
    kvs_counter_inc(srv->rpc[mu->m].started);
    kvs_counter_inc(srv->rpc[mu->m].msg_received);
    if (kc) kvs_peer_count_request(srv->metrics.peers, kc->peer, kvs_method_names[mu->m]);
    if (kc && (kc->park_head || conn_over_cap(srv, kc))) {
        park(srv, call, kc, mu->m, msg, len, t0);
        return;
    }
    dispatch(srv, call, kc, mu->m, msg, len, t0);
}

void kvs_on_cancel(grpc_call *call, void *ud) {
    const int *tag = ud;
    if (!tag || *tag != KVS_TAG_PARKED) return; /* in the writer: its completion releases it */
    kvs_parked *p = ud;
    kvs_conn *kc = p->conn;
    kvs_parked **pp = &kc->park_head, *prev = NULL;
    while (*pp && *pp != p) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = p->next;
        if (kc->park_tail == p) kc->park_tail = prev;
        kc->parked_bytes -= p->len;
    }
    kvs_server *srv = kc->srv;
    kvs_fail_call(srv, call, kc, p->m, p->t0, GRPC_STATUS_CANCELLED, "context canceled");
    free(p);
    kvs_conn_unref(kc);
}
