/* soak_load.c — the soak test's write load: creates, updates and deletes of lab objects
 * (relistlab.LabObject at <prefix>ns-<k>/web-<j>) across namespaces that share object names,
 * at a steady rate, against any etcd v3 server; then it proves the server holds exactly what
 * it wrote and reports how many watch events each namespace must have produced.
 *
 * Key decisions:
 * - The generator keeps a model of the store (exists, mod_revision per key), rebuilt from a
 *   LIST at start, so a seed run and a load run are separate invocations and the load run
 *   counts only its own writes. Every accepted op is exactly one event on its key, so
 *   "events of namespace k" = accepted ops on keys of namespace k: a watcher of that namespace
 *   that listed before the load and never relisted must have applied exactly that many.
 * - At most one op per key is in flight (a busy key is skipped), so the model never depends
 *   on how the server orders concurrent requests; several keys are in flight at once.
 * - Half the ops are plain Put/DeleteRange, half are guarded Txns the way kube-apiserver
 *   writes to etcd (create: mod_revision == 0; update/delete: mod_revision == the model's).
 *   A guarded txn that fails, a delete that deletes nothing, a revision that does not move
 *   forward or any non-OK status is an error: this process is the only writer.
 * - Optional periodic compaction (like the apiserver's compactor) to the revision reached one
 *   interval earlier, so caught-up watchers are never compacted away.
 * - Output is "name value" lines (no JSON parser needed in bash); exit 0 only when there were
 *   no errors and the final LIST equals the model. */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "grpc.h"
#include "lab.pb-c.h"
#include "rpc.pb-c.h"

#define P_RANGE   "/etcdserverpb.KV/Range"
#define P_PUT     "/etcdserverpb.KV/Put"
#define P_DELETE  "/etcdserverpb.KV/DeleteRange"
#define P_TXN     "/etcdserverpb.KV/Txn"
#define P_COMPACT "/etcdserverpb.KV/Compact"

#define CALL_TIMEOUT_MS 30000
#define LAT_BUCKETS     10000 /* 1 ms buckets; the last one collects everything slower */

static const char usage_text[] =
    "usage: soak_load --endpoint HOST:PORT [flags]\n"
    "  --prefix P          [/registry/pods/]\n"
    "  --namespaces N      namespaces ns-0..ns-N-1 [20]\n"
    "  --names M           object names web-0..web-M-1, the same in every namespace [50]\n"
    "  --seed-objects K    first create web-0..web-K-1 in every namespace (where missing) [0]\n"
    "  --rate W            writes per second during the load [50]\n"
    "  --duration S        seconds of load (SIGTERM/SIGINT end it early) [0]\n"
    "  --inflight C        most requests in flight [8]\n"
    "  --conns N           connections [2]\n"
    "  --compact-every S   compact to the revision of S seconds earlier, every S seconds [off]\n"
    "  --payload B         payload bytes per object, varied 50%%..150%% [256]\n"
    "  --rng N             random seed [1]\n"
    "  --out FILE          also write the report there\n";

typedef enum { OP_CREATE, OP_UPDATE, OP_DELETE, OP_N } op_kind;
static const char *const op_names[OP_N] = {"creates", "updates", "deletes"};

typedef struct key_state {
    bool exists, busy;
    int64_t mod_rev;
} key_state;

typedef struct ns_stats {
    uint64_t events;
} ns_stats;

typedef enum { PH_LIST, PH_SEED, PH_LOAD, PH_FINAL, PH_DONE } phase;

typedef struct opts {
    const char *endpoint, *prefix, *out;
    int namespaces, names, seed_objects, inflight, conns;
    double rate, duration_s, compact_s;
    size_t payload;
    uint64_t rng;
} opts;

typedef struct load {
    opts o;
    uv_loop_t *loop;
    grpc_client **cl;
    size_t next_cl;
    uv_timer_t tick, compact_timer;
    uv_signal_t sigterm, sigint;
    phase ph;
    bool stop_requested, final_started, closing;
    key_state *keys; /* namespaces x names */
    ns_stats *ns;
    uint64_t rng, uid_seq;
    uint64_t issued, inflight, done, by_kind[OP_N], guarded;
    uint64_t errors, compactions, seed_next;
    int64_t first_rev, last_rev, compact_mark, compacted;
    uint64_t start_ms, load_ms;
    uint64_t lat[LAT_BUCKETS];
    uint64_t lat_max_ms;
    char first_error[256];
    /* final check */
    uint64_t model_divergent, final_objects;
    int64_t final_revision;
} load;

typedef struct op {
    load *L;
    size_t key;
    op_kind kind;
    bool guarded;
    uint64_t t0;
} op;

static void fail(load *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(load *L, const char *fmt, ...) {
    L->errors++;
    if (L->first_error[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->first_error, sizeof L->first_error, fmt, ap);
    va_end(ap);
}

static uint64_t rnd(load *L) { /* xorshift64* */
    L->rng ^= L->rng >> 12;
    L->rng ^= L->rng << 25;
    L->rng ^= L->rng >> 27;
    return L->rng * 2685821657736338717ULL;
}

static size_t n_keys(const load *L) {
    return (size_t)L->o.namespaces * (size_t)L->o.names;
}

static int key_text(const load *L, size_t k, char *buf, size_t cap) {
    return snprintf(buf, cap, "%sns-%zu/web-%zu", L->o.prefix, k / (size_t)L->o.names,
                    k % (size_t)L->o.names);
}

/* The key's index in the model, or -1 when it is not one of ours. */
static long key_index(const load *L, const uint8_t *key, size_t len) {
    size_t pl = strlen(L->o.prefix);
    char buf[256];
    if (len <= pl || len - pl >= sizeof buf || memcmp(key, L->o.prefix, pl)) return -1;
    memcpy(buf, key + pl, len - pl);
    buf[len - pl] = 0;
    int ns, nm, used = 0;
    if (sscanf(buf, "ns-%d/web-%d%n", &ns, &nm, &used) != 2 || buf[used] || ns < 0 || nm < 0 ||
        ns >= L->o.namespaces || nm >= L->o.names)
        return -1;
    return (long)ns * L->o.names + nm;
}

static grpc_client *next_client(load *L) {
    grpc_client *c = L->cl[L->next_cl];
    L->next_cl = (L->next_cl + 1) % (size_t)L->o.conns;
    return c;
}

static void note_latency(load *L, uint64_t ms) {
    L->lat[ms < LAT_BUCKETS ? ms : LAT_BUCKETS - 1]++;
    if (ms > L->lat_max_ms) L->lat_max_ms = ms;
}

static uint64_t lat_pct(const load *L, double p) {
    uint64_t n = 0;
    for (size_t i = 0; i < LAT_BUCKETS; i++)
        n += L->lat[i];
    if (!n) return 0;
    uint64_t want = (uint64_t)(p * (double)n + 0.999999), seen = 0;
    for (size_t i = 0; i < LAT_BUCKETS; i++) {
        seen += L->lat[i];
        if (seen >= want) return i;
    }
    return LAT_BUCKETS - 1;
}

/* ---- the value: a lab object ----------------------------------------------------------------- */

static uint8_t *pack_object(load *L, size_t k, size_t *len) {
    char ns[32], name[32], uid[64];
    snprintf(ns, sizeof ns, "ns-%zu", k / (size_t)L->o.names);
    snprintf(name, sizeof name, "web-%zu", k % (size_t)L->o.names);
    snprintf(uid, sizeof uid, "soak-%016" PRIx64, ++L->uid_seq);
    size_t plen = L->o.payload / 2 + (L->o.payload ? rnd(L) % (L->o.payload + 1) : 0);
    uint8_t *payload = malloc(plen ? plen : 1);
    if (!payload) return NULL;
    for (size_t i = 0; i < plen; i++)
        payload[i] = (uint8_t)('a' + (L->uid_seq + i) % 26);
    Relistlab__LabObject__LabelsEntry lab = RELISTLAB__LAB_OBJECT__LABELS_ENTRY__INIT;
    lab.key = "app";
    lab.value = "web";
    Relistlab__LabObject__LabelsEntry *labs[1] = {&lab};
    Relistlab__LabObject o = RELISTLAB__LAB_OBJECT__INIT;
    o.resource = "pods";
    o.namespace_ = ns;
    o.name = name;
    o.uid = uid;
    o.n_labels = 1;
    o.labels = labs;
    o.payload.data = payload;
    o.payload.len = plen;
    *len = relistlab__lab_object__get_packed_size(&o);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf) relistlab__lab_object__pack(&o, buf);
    free(payload);
    return buf;
}

/* ---- ops ------------------------------------------------------------------------------------- */

static void maybe_finish(load *L);
static void start_final(load *L);

/* Applies an accepted write at revision rev to the model. */
static void accepted(load *L, op *o, int64_t rev) {
    key_state *ks = &L->keys[o->key];
    if (rev <= 0 || rev <= ks->mod_rev) {
        fail(L, "%s of key %zu at revision %" PRId64 " does not follow %" PRId64, op_names[o->kind],
             o->key, rev, ks->mod_rev);
        return;
    }
    if (o->kind == OP_DELETE) {
        ks->exists = false;
        ks->mod_rev = 0;
    } else {
        ks->exists = true;
        ks->mod_rev = rev;
    }
    L->ns[o->key / (size_t)L->o.names].events++;
    L->by_kind[o->kind]++;
    if (o->guarded) L->guarded++;
    if (!L->first_rev || rev < L->first_rev) L->first_rev = rev;
    if (rev > L->last_rev) L->last_rev = rev;
}

static int64_t header_rev(const Etcdserverpb__ResponseHeader *h) {
    return h ? h->revision : 0;
}

static void on_op_done(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    op *o = ud;
    load *L = o->L;
    note_latency(L, uv_now(L->loop) - o->t0);
    if (status != GRPC_STATUS_OK) {
        fail(L, "%s of key %zu: status %d %s", op_names[o->kind], o->key, status, message);
    } else if (o->guarded) {
        Etcdserverpb__TxnResponse *r = etcdserverpb__txn_response__unpack(NULL, len, resp);
        if (!r) {
            fail(L, "bad TxnResponse");
        } else if (!r->succeeded) {
            fail(L, "guarded %s of key %zu failed its compare (model mod_revision %" PRId64 ")",
                 op_names[o->kind], o->key, L->keys[o->key].mod_rev);
        } else if (o->kind == OP_DELETE &&
                   (r->n_responses != 1 ||
                    r->responses[0]->response_case !=
                        ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE ||
                    r->responses[0]->response_delete_range->deleted != 1)) {
            fail(L, "guarded delete of key %zu deleted nothing", o->key);
        } else {
            accepted(L, o, header_rev(r->header));
        }
        if (r) etcdserverpb__txn_response__free_unpacked(r, NULL);
    } else if (o->kind == OP_DELETE) {
        Etcdserverpb__DeleteRangeResponse *r =
            etcdserverpb__delete_range_response__unpack(NULL, len, resp);
        if (!r || r->deleted != 1)
            fail(L, "delete of key %zu deleted %" PRId64, o->key, r ? r->deleted : -1);
        else
            accepted(L, o, header_rev(r->header));
        if (r) etcdserverpb__delete_range_response__free_unpacked(r, NULL);
    } else {
        Etcdserverpb__PutResponse *r = etcdserverpb__put_response__unpack(NULL, len, resp);
        if (!r)
            fail(L, "bad PutResponse");
        else
            accepted(L, o, header_rev(r->header));
        if (r) etcdserverpb__put_response__free_unpacked(r, NULL);
    }
    L->keys[o->key].busy = false;
    L->inflight--;
    L->done++;
    free(o);
    maybe_finish(L);
}

/* Builds and sends one op on key k; 0 or -1. */
static int issue(load *L, size_t k, op_kind kind, bool guarded) {
    char key[256];
    int kl = key_text(L, k, key, sizeof key);
    if (kl <= 0 || (size_t)kl >= sizeof key) return -1;
    op *o = calloc(1, sizeof *o);
    if (!o) return -1;
    *o = (op){.L = L, .key = k, .kind = kind, .guarded = guarded, .t0 = uv_now(L->loop)};
    size_t vlen = 0;
    uint8_t *val = NULL;
    if (kind != OP_DELETE && !(val = pack_object(L, k, &vlen))) {
        free(o);
        return -1;
    }
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    put.key = (ProtobufCBinaryData){(size_t)kl, (uint8_t *)key};
    put.value = (ProtobufCBinaryData){vlen, val};
    Etcdserverpb__DeleteRangeRequest del = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    del.key = put.key;
    const char *path;
    size_t len;
    uint8_t *buf;
    if (guarded) {
        Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
        cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
        cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
        cmp.key = put.key;
        cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        cmp.mod_revision = kind == OP_CREATE ? 0 : L->keys[k].mod_rev;
        Etcdserverpb__Compare *cmps[1] = {&cmp};
        Etcdserverpb__RequestOp rop = ETCDSERVERPB__REQUEST_OP__INIT;
        if (kind == OP_DELETE) {
            rop.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
            rop.request_delete_range = &del;
        } else {
            rop.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
            rop.request_put = &put;
        }
        Etcdserverpb__RequestOp *rops[1] = {&rop};
        Etcdserverpb__TxnRequest txn = ETCDSERVERPB__TXN_REQUEST__INIT;
        txn.n_compare = 1;
        txn.compare = cmps;
        txn.n_success = 1;
        txn.success = rops;
        len = etcdserverpb__txn_request__get_packed_size(&txn);
        buf = malloc(len ? len : 1);
        if (buf) etcdserverpb__txn_request__pack(&txn, buf);
        path = P_TXN;
    } else if (kind == OP_DELETE) {
        len = etcdserverpb__delete_range_request__get_packed_size(&del);
        buf = malloc(len ? len : 1);
        if (buf) etcdserverpb__delete_range_request__pack(&del, buf);
        path = P_DELETE;
    } else {
        len = etcdserverpb__put_request__get_packed_size(&put);
        buf = malloc(len ? len : 1);
        if (buf) etcdserverpb__put_request__pack(&put, buf);
        path = P_PUT;
    }
    free(val);
    if (!buf) {
        free(o);
        return -1;
    }
    int rc = grpc_client_unary(next_client(L), path, buf, len, CALL_TIMEOUT_MS, on_op_done, o);
    free(buf);
    if (rc < 0) {
        free(o);
        fail(L, "cannot issue %s: %d", path, rc);
        return -1;
    }
    L->keys[k].busy = true;
    L->inflight++;
    L->issued++;
    return 0;
}

/* One random op on a key that is not busy; false when none was found quickly. */
static bool issue_random(load *L) {
    size_t nk = n_keys(L);
    for (int tries = 0; tries < 16; tries++) {
        size_t k = (size_t)(rnd(L) % nk);
        if (L->keys[k].busy) continue;
        op_kind kind = OP_CREATE;
        if (L->keys[k].exists) kind = rnd(L) % 10 < 7 ? OP_UPDATE : OP_DELETE;
        return issue(L, k, kind, rnd(L) & 1) == 0;
    }
    return false;
}

/* ---- phases ---------------------------------------------------------------------------------- */

static void seed_more(load *L) {
    size_t nk = n_keys(L);
    while (L->inflight < (uint64_t)L->o.inflight && L->seed_next < nk) {
        size_t k = L->seed_next++;
        if ((int)(k % (size_t)L->o.names) >= L->o.seed_objects || L->keys[k].exists) continue;
        if (issue(L, k, OP_CREATE, false) != 0) break;
    }
}

static void on_tick(uv_timer_t *t) {
    load *L = t->data;
    if (L->ph != PH_LOAD) return;
    uint64_t el = uv_now(L->loop) - L->start_ms;
    if (L->stop_requested || (double)el >= L->o.duration_s * 1000.0) {
        uv_timer_stop(&L->tick);
        uv_timer_stop(&L->compact_timer);
        L->load_ms = el;
        L->ph = PH_FINAL;
        maybe_finish(L);
        return;
    }
    double due = L->o.rate * (double)el / 1000.0 - (double)L->issued;
    while (due >= 1.0 && L->inflight < (uint64_t)L->o.inflight && !L->errors) {
        if (!issue_random(L)) break;
        due -= 1.0;
    }
}

static void on_compacted(void *ud, int status, const char *message, const uint8_t *resp,
                         size_t len) {
    (void)resp;
    (void)len;
    load *L = ud;
    if (L->closing) return; /* failed by grpc_client_free: not the server's doing */
    if (status != GRPC_STATUS_OK)
        fail(L, "compact: status %d %s", status, message);
    else
        L->compactions++;
}

static void on_compact_timer(uv_timer_t *t) {
    load *L = t->data;
    if (L->ph != PH_LOAD) return;
    int64_t target = L->compact_mark;
    L->compact_mark = L->last_rev;
    if (target <= L->compacted) return;
    Etcdserverpb__CompactionRequest req = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    req.revision = target;
    uint8_t buf[32];
    size_t len = etcdserverpb__compaction_request__pack(&req, buf);
    if (grpc_client_unary(next_client(L), P_COMPACT, buf, len, CALL_TIMEOUT_MS, on_compacted, L) ==
        0)
        L->compacted = target;
}

static void start_load(load *L) {
    L->ph = PH_LOAD;
    L->start_ms = uv_now(L->loop);
    L->compact_mark = L->last_rev;
    uv_timer_start(&L->tick, on_tick, 0, 5);
    if (L->o.compact_s > 0) {
        uint64_t ms = (uint64_t)(L->o.compact_s * 1000.0);
        uv_timer_start(&L->compact_timer, on_compact_timer, ms, ms);
    }
}

static void list_prefix(load *L, grpc_unary_cb cb);

/* Frees the clients (pending calls fail inside) and closes the handles: uv_run then returns. */
static void shutdown_all(load *L) {
    if (L->closing) return;
    L->closing = true;
    L->ph = PH_DONE;
    for (int i = 0; i < L->o.conns; i++)
        grpc_client_free(L->cl[i]);
    uv_close((uv_handle_t *)&L->tick, NULL);
    uv_close((uv_handle_t *)&L->compact_timer, NULL);
    uv_close((uv_handle_t *)&L->sigterm, NULL);
    uv_close((uv_handle_t *)&L->sigint, NULL);
}

static void on_initial_list(void *ud, int status, const char *message, const uint8_t *resp,
                            size_t len) {
    load *L = ud;
    Etcdserverpb__RangeResponse *r = NULL;
    if (status != GRPC_STATUS_OK || !(r = etcdserverpb__range_response__unpack(NULL, len, resp))) {
        fail(L, "initial LIST: status %d %s", status, message);
        L->ph = PH_FINAL;
        maybe_finish(L);
        return;
    }
    for (size_t i = 0; i < r->n_kvs; i++) {
        const Mvccpb__KeyValue *kv = r->kvs[i];
        long k = key_index(L, kv->key.data, kv->key.len);
        if (k < 0) {
            fail(L, "foreign key %.*s under the prefix", (int)kv->key.len, kv->key.data);
            continue;
        }
        L->keys[k].exists = true;
        L->keys[k].mod_rev = kv->mod_revision;
    }
    int64_t rev = header_rev(r->header);
    etcdserverpb__range_response__free_unpacked(r, NULL);
    L->compacted = 0;
    L->last_rev = rev;
    if (L->o.seed_objects > 0) {
        L->ph = PH_SEED;
        seed_more(L);
        maybe_finish(L);
    } else {
        start_load(L);
    }
}

static void on_final_list(void *ud, int status, const char *message, const uint8_t *resp,
                          size_t len) {
    load *L = ud;
    Etcdserverpb__RangeResponse *r = NULL;
    if (status != GRPC_STATUS_OK || !(r = etcdserverpb__range_response__unpack(NULL, len, resp))) {
        fail(L, "final LIST: status %d %s", status, message);
    } else {
        uint64_t seen = 0;
        for (size_t i = 0; i < r->n_kvs; i++) {
            const Mvccpb__KeyValue *kv = r->kvs[i];
            long k = key_index(L, kv->key.data, kv->key.len);
            if (k < 0 || !L->keys[k].exists || L->keys[k].mod_rev != kv->mod_revision) {
                if (!L->model_divergent)
                    fprintf(stderr,
                            "soak_load: server key %.*s mod_revision %" PRId64
                            " differs from the model\n",
                            (int)kv->key.len, kv->key.data, kv->mod_revision);
                L->model_divergent++;
            } else {
                seen++;
            }
        }
        uint64_t model = 0;
        for (size_t k = 0; k < n_keys(L); k++)
            model += L->keys[k].exists;
        L->model_divergent += model - seen; /* model objects the server does not hold */
        L->final_objects = r->n_kvs;
        L->final_revision = header_rev(r->header);
        etcdserverpb__range_response__free_unpacked(r, NULL);
    }
    shutdown_all(L);
}

static void list_prefix(load *L, grpc_unary_cb cb) {
    size_t pl = strlen(L->o.prefix);
    uint8_t end[256];
    memcpy(end, L->o.prefix, pl);
    end[pl - 1]++; /* prefix end: last byte + 1 (the prefix ends in '/') */
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){pl, (uint8_t *)L->o.prefix};
    req.range_end = (ProtobufCBinaryData){pl, end};
    uint8_t buf[600];
    size_t len = etcdserverpb__range_request__pack(&req, buf);
    if (grpc_client_unary(L->cl[0], P_RANGE, buf, len, CALL_TIMEOUT_MS, cb, L) < 0) {
        fail(L, "cannot issue LIST");
        shutdown_all(L);
    }
}

static void start_final(load *L) {
    L->final_started = true;
    list_prefix(L, on_final_list);
}

/* Moves on when the current phase has nothing left in flight. */
static void maybe_finish(load *L) {
    if (L->ph == PH_SEED) {
        seed_more(L);
        if (L->inflight == 0 && L->seed_next >= n_keys(L)) {
            if (L->o.duration_s > 0 && !L->errors)
                start_load(L);
            else
                L->ph = PH_FINAL;
        }
    } else if (L->ph == PH_LOAD && L->errors) {
        L->load_ms = uv_now(L->loop) - L->start_ms;
        L->ph = PH_FINAL; /* stop issuing on the first error, drain, then report */
    }
    if (L->ph == PH_FINAL && L->inflight == 0 && !L->final_started) start_final(L);
}

static void on_signal(uv_signal_t *s, int signum) {
    (void)signum;
    load *L = s->data;
    if (L->ph == PH_LOAD) L->stop_requested = true;
}

/* ---- report ---------------------------------------------------------------------------------- */

static void report(const load *L, FILE *f) {
    double secs = (double)L->load_ms / 1000.0;
    uint64_t writes = L->by_kind[OP_CREATE] + L->by_kind[OP_UPDATE] + L->by_kind[OP_DELETE];
    fprintf(f, "writes %" PRIu64 "\n", writes);
    for (int i = 0; i < OP_N; i++)
        fprintf(f, "%s %" PRIu64 "\n", op_names[i], L->by_kind[i]);
    fprintf(f, "guarded %" PRIu64 "\n", L->guarded);
    fprintf(f, "compactions %" PRIu64 "\n", L->compactions);
    fprintf(f, "errors %" PRIu64 "\n", L->errors);
    fprintf(f, "model_divergent %" PRIu64 "\n", L->model_divergent);
    fprintf(f, "objects %" PRIu64 "\n", L->final_objects);
    fprintf(f, "first_revision %" PRId64 "\n", L->first_rev);
    fprintf(f, "last_revision %" PRId64 "\n", L->last_rev);
    fprintf(f, "final_revision %" PRId64 "\n", L->final_revision);
    fprintf(f, "load_seconds %.1f\n", secs);
    fprintf(f, "latency_ms_p50 %" PRIu64 "\n", lat_pct(L, 0.50));
    fprintf(f, "latency_ms_p99 %" PRIu64 "\n", lat_pct(L, 0.99));
    fprintf(f, "latency_ms_max %" PRIu64 "\n", L->lat_max_ms);
    for (int i = 0; i < L->o.namespaces; i++)
        fprintf(f, "ns_events %s%s-%d/ %" PRIu64 "\n", L->o.prefix, "ns", i, L->ns[i].events);
    if (L->first_error[0]) fprintf(f, "first_error %s\n", L->first_error);
}

/* ---- main ------------------------------------------------------------------------------------ */

static int parse_args(int argc, char **argv, opts *o) {
    *o = (opts){.prefix = "/registry/pods/",
                .namespaces = 20,
                .names = 50,
                .rate = 50,
                .inflight = 8,
                .conns = 2,
                .payload = 256,
                .rng = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            exit(0);
        }
        if (i + 1 >= argc) return -1;
        const char *v = argv[++i];
        if (!strcmp(a, "--endpoint"))
            o->endpoint = v;
        else if (!strcmp(a, "--prefix"))
            o->prefix = v;
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--namespaces"))
            o->namespaces = atoi(v);
        else if (!strcmp(a, "--names"))
            o->names = atoi(v);
        else if (!strcmp(a, "--seed-objects"))
            o->seed_objects = atoi(v);
        else if (!strcmp(a, "--inflight"))
            o->inflight = atoi(v);
        else if (!strcmp(a, "--conns"))
            o->conns = atoi(v);
        else if (!strcmp(a, "--rate"))
            o->rate = atof(v);
        else if (!strcmp(a, "--duration"))
            o->duration_s = atof(v);
        else if (!strcmp(a, "--compact-every"))
            o->compact_s = atof(v);
        else if (!strcmp(a, "--payload"))
            o->payload = (size_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--rng"))
            o->rng = strtoull(v, NULL, 10);
        else
            return -1;
    }
    size_t pl = strlen(o->prefix);
    if (!o->endpoint || o->namespaces < 1 || o->names < 1 || o->inflight < 1 || o->conns < 1 ||
        o->rate <= 0 || o->seed_objects < 0 || o->seed_objects > o->names || pl < 2 || pl > 200 ||
        o->prefix[pl - 1] != '/')
        return -1;
    return 0;
}

int main(int argc, char **argv) {
    static load L; /* large (latency buckets): not on the stack */
    if (parse_args(argc, argv, &L.o) != 0) {
        fputs(usage_text, stderr);
        return 2;
    }
    L.rng = L.o.rng ? L.o.rng * 0x9E3779B97F4A7C15ULL : 1;
    L.keys = calloc(n_keys(&L), sizeof *L.keys);
    L.ns = calloc((size_t)L.o.namespaces, sizeof *L.ns);
    L.cl = calloc((size_t)L.o.conns, sizeof *L.cl);
    if (!L.keys || !L.ns || !L.cl) return 1;
    L.loop = uv_default_loop();
    for (int i = 0; i < L.o.conns; i++)
        if (!(L.cl[i] = grpc_client_new(L.loop, L.o.endpoint, NULL))) {
            fprintf(stderr, "soak_load: bad endpoint %s\n", L.o.endpoint);
            return 2;
        }
    uv_timer_init(L.loop, &L.tick);
    uv_timer_init(L.loop, &L.compact_timer);
    L.tick.data = L.compact_timer.data = &L;
    uv_signal_init(L.loop, &L.sigterm);
    uv_signal_init(L.loop, &L.sigint);
    L.sigterm.data = L.sigint.data = &L;
    uv_signal_start(&L.sigterm, on_signal, SIGTERM);
    uv_signal_start(&L.sigint, on_signal, SIGINT);
    list_prefix(&L, on_initial_list);
    uv_run(L.loop, UV_RUN_DEFAULT);
    report(&L, stdout);
    if (L.o.out) {
        FILE *f = fopen(L.o.out, "w");
        if (f) {
            report(&L, f);
            fclose(f);
        }
    }
    int rc = L.errors || L.model_divergent || L.ph != PH_DONE ? 1 : 0;
    free(L.keys);
    free(L.ns);
    free(L.cl);
    uv_loop_close(L.loop);
    return rc;
}
