/* scn_run_load.c — the load driver: seeds the objects, then creates, updates and deletes
 * relistlab.LabObject values at /registry/<resource>/ns-<i>/<name> at a phase's rates, and
 * compacts on request. Write latency is measured per request (send to reply) into a
 * cumulative histogram the sampler differences every second.
 *
 * Key decisions:
 * - One gRPC connection (a writer is one client, like an apiserver's etcd client); when it
 *   drops (a server restart) the next tick makes a new one, at most every 200 ms. Writes that
 *   fail meanwhile count as write errors and are not retried (the next ticks bring new ones).
 * - Rates are credits: every 10 ms tick each kind earns rate*dt; a write goes out per whole
 *   credit while fewer than `writers` are in flight. Credit is capped at one second's worth,
 *   so a stalled server gets a bounded catch-up, not an avalanche.
 * - The driver knows which objects exist (per namespace: name index and uid) and never has two
 *   writes of one object in flight, so an update never resurrects an object being deleted and
 *   the uid (fixed per object generation) stays true.
 * - Seeding wipes the resource prefix first (a reused external server starts clean) and writes
 *   in Txn batches (up to 100 puts, <= 1 MiB) four at a time.
 * - Randomness is a splitmix64 from the run's seed: the same seed gives the same writes. */
#include "scn_run.h"

#include "grpc.h"
#include "lab.pb-c.h"
#include "refl.h"
#include "rpc.pb-c.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LD_TICK_MS       10
#define LD_RECONNECT_MS  200
#define LD_TIMEOUT_MS    10000
#define LD_SEED_BATCH    100
#define LD_SEED_BYTES    (1u << 20)
#define LD_SEED_INFLIGHT 4

typedef struct ld_obj {
    int64_t j;
    uint64_t uid;
    bool busy;
} ld_obj;

typedef struct ld_ns {
    ld_obj *v;
    size_t n, cap;
    int64_t next_j; /* the next created object's index */
} ld_ns;

typedef enum ld_kind { K_CREATE = 0, K_UPDATE, K_DELETE, K_SEED, K_WIPE, K_REV, K_COMPACT } ld_kind;

typedef struct ld_op {
    scn_ld *d;
    ld_kind kind;
    int64_t ns, j;
    size_t count; /* K_SEED: puts in the batch */
    int64_t keep; /* K_REV */
    uint64_t t0;  /* uv_hrtime at send */
} ld_op;

struct scn_ld {
    uv_loop_t *loop;
    char endpoint[128];
    scn_seed seed;
    refl_rng rng;
    grpc_client *c;
    bool c_dead;
    uint64_t last_connect;
    uv_timer_t tick;
    uint64_t last_tick;
    const scn_phase *phase;
    double credit[3];
    ld_ns *ns;
    uint64_t next_uid;
    uint32_t uid_salt; /* from the seed: uids differ between runs with different seeds */
    uint8_t *payload;
    size_t payload_cap;
    /* seeding */
    scn_srv_cb seed_cb;
    void *seed_ud;
    bool seeding, seed_failed;
    int64_t seed_ns, seed_j; /* next object to seed */
    size_t seed_inflight;
    char seed_err[256];
    /* stats */
    scn_ld_stats st;
    uint64_t inflight; /* load writes */
    bool stopping;
    void (*stop_done)(void *);
    void *stop_ud;
    void (*log)(void *ud, const char *line);
    void *log_ud;
};

static void ld_log(scn_ld *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ld_log(scn_ld *d, const char *fmt, ...) {
    if (!d->log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    d->log(d->log_ud, line);
}

/* ---- connection ---- */

static void on_disconnect(void *ud, grpc_client *c, int status, const char *message) {
    scn_ld *d = ud;
    (void)status;
    if (c != d->c) return;
    if (!d->c_dead) ld_log(d, "load: connection lost: %s", message ? message : "");
    d->c_dead = true;
}

static void on_connect(void *ud, grpc_client *c, int status) {
    scn_ld *d = ud;
    if (c == d->c && status < 0) d->c_dead = true;
}

static grpc_client *client(scn_ld *d) {
    if (d->stopping) return NULL;
    if (d->c && d->c_dead) {
        grpc_client *old = d->c;
        d->c = NULL;
        grpc_client_free(old); /* fails its pending calls (callbacks run here) */
    }
    if (!d->c) {
        uint64_t now = uv_now(d->loop);
        if (d->last_connect && now - d->last_connect < LD_RECONNECT_MS) return NULL;
        d->last_connect = now;
        grpc_client_opts o = {.on_connect = on_connect, .on_disconnect = on_disconnect, .ud = d};
        d->c = grpc_client_new(d->loop, d->endpoint, &o);
        d->c_dead = false;
    }
    return d->c;
}

/* ---- objects and values ---- */

static ld_ns *ns_of(scn_ld *d, int64_t ns) {
    return &d->ns[ns];
}

static int obj_add(ld_ns *n, int64_t j, uint64_t uid, bool busy) {
    if (n->n == n->cap) {
        size_t nc = n->cap ? n->cap * 2 : 64;
        ld_obj *nv = realloc(n->v, nc * sizeof *nv);
        if (!nv) return -1;
        n->v = nv;
        n->cap = nc;
    }
    n->v[n->n++] = (ld_obj){.j = j, .uid = uid, .busy = busy};
    return 0;
}

static ld_obj *obj_find(ld_ns *n, int64_t j) {
    for (size_t i = 0; i < n->n; i++)
        if (n->v[i].j == j) return &n->v[i];
    return NULL;
}

static void obj_remove(ld_ns *n, int64_t j) {
    for (size_t i = 0; i < n->n; i++)
        if (n->v[i].j == j) {
            n->v[i] = n->v[--n->n];
            return;
        }
}

/* Packs object (ns, j) as a LabObject of about `size` bytes into a malloc'd buffer. */
static uint8_t *pack_value(scn_ld *d, int64_t ns, int64_t j, uint64_t uid, int64_t size,
                           size_t *len) {
    char key[256], nsname[32], uidstr[40], *name;
    scn_seed_key(&d->seed, ns, j, key, sizeof key);
    name = strrchr(key, '/') ? strrchr(key, '/') + 1 : key;
    snprintf(nsname, sizeof nsname, "ns-%lld", (long long)ns);
    snprintf(uidstr, sizeof uidstr, "%08x-%016llx", d->uid_salt, (unsigned long long)uid);
    Relistlab__LabObject o = RELISTLAB__LAB_OBJECT__INIT;
    o.resource = d->seed.resource;
    o.namespace_ = nsname;
    o.name = name;
    o.uid = uidstr;
    size_t overhead =
        strlen(d->seed.resource) + strlen(nsname) + strlen(name) + strlen(uidstr) + 16;
    size_t pl = size > (int64_t)overhead ? (size_t)size - overhead : 0;
    if (pl > d->payload_cap) {
        uint8_t *np = realloc(d->payload, pl);
        if (!np) return NULL;
        for (size_t i = d->payload_cap; i < pl; i++)
            np[i] = (uint8_t)('a' + i % 26);
        d->payload = np;
        d->payload_cap = pl;
    }
    o.payload.data = d->payload;
    o.payload.len = pl;
    *len = relistlab__lab_object__get_packed_size(&o);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf) relistlab__lab_object__pack(&o, buf);
    return buf;
}

static int64_t value_size(const scn_ld *d) {
    if (d->phase && d->phase->value_size > 0) return d->phase->value_size;
    return d->seed.value_size;
}

/* ---- requests ---- */

static void on_reply(void *ud, int status, const char *message, const uint8_t *resp, size_t len);

static int send_op(scn_ld *d, ld_op *op, const char *path, const void *req, size_t len) {
    grpc_client *c = client(d);
    if (!c) return -1;
    op->t0 = uv_hrtime();
    return grpc_client_unary(c, path, req, len, LD_TIMEOUT_MS, on_reply, op) == 0 ? 0 : -1;
}

static ld_op *new_op(scn_ld *d, ld_kind k, int64_t ns, int64_t j) {
    ld_op *op = calloc(1, sizeof *op);
    if (op) *op = (ld_op){.d = d, .kind = k, .ns = ns, .j = j};
    return op;
}

static int send_put(scn_ld *d, ld_op *op, uint64_t uid) {
    char key[256];
    size_t klen = scn_seed_key(&d->seed, op->ns, op->j, key, sizeof key);
    size_t vlen;
    uint8_t *val = pack_value(d, op->ns, op->j, uid, value_size(d), &vlen);
    if (!val) return -1;
    Etcdserverpb__PutRequest pr = ETCDSERVERPB__PUT_REQUEST__INIT;
    pr.key = (ProtobufCBinaryData){klen, (uint8_t *)key};
    pr.value = (ProtobufCBinaryData){vlen, val};
    size_t n = etcdserverpb__put_request__get_packed_size(&pr);
    uint8_t *buf = malloc(n ? n : 1);
    int rv = -1;
    if (buf) {
        etcdserverpb__put_request__pack(&pr, buf);
        rv = send_op(d, op, "/etcdserverpb.KV/Put", buf, n);
    }
    free(buf);
    free(val);
    return rv;
}

static int send_delete(scn_ld *d, ld_op *op) {
    char key[256];
    size_t klen = scn_seed_key(&d->seed, op->ns, op->j, key, sizeof key);
    Etcdserverpb__DeleteRangeRequest dr = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    dr.key = (ProtobufCBinaryData){klen, (uint8_t *)key};
    uint8_t buf[300];
    size_t n = etcdserverpb__delete_range_request__pack(&dr, buf);
    return send_op(d, op, "/etcdserverpb.KV/DeleteRange", buf, n);
}

static int64_t header_revision(ld_kind k, const uint8_t *resp, size_t len) {
    int64_t rev = 0;
    switch (k) {
    case K_CREATE:
    case K_UPDATE: {
        Etcdserverpb__PutResponse *r = etcdserverpb__put_response__unpack(NULL, len, resp);
        if (r && r->header) rev = r->header->revision;
        if (r) etcdserverpb__put_response__free_unpacked(r, NULL);
        break;
    }
    case K_DELETE:
    case K_WIPE: {
        Etcdserverpb__DeleteRangeResponse *r =
            etcdserverpb__delete_range_response__unpack(NULL, len, resp);
        if (r && r->header) rev = r->header->revision;
        if (r) etcdserverpb__delete_range_response__free_unpacked(r, NULL);
        break;
    }
    case K_SEED: {
        Etcdserverpb__TxnResponse *r = etcdserverpb__txn_response__unpack(NULL, len, resp);
        if (r && r->header) rev = r->header->revision;
        if (r) etcdserverpb__txn_response__free_unpacked(r, NULL);
        break;
    }
    case K_REV: {
        Etcdserverpb__RangeResponse *r = etcdserverpb__range_response__unpack(NULL, len, resp);
        if (r && r->header) rev = r->header->revision;
        if (r) etcdserverpb__range_response__free_unpacked(r, NULL);
        break;
    }
    default:
        break;
    }
    return rev;
}

static void seed_pump(scn_ld *d);
static void seed_finish(scn_ld *d);
static void send_compact(scn_ld *d, int64_t rev);

static void on_reply(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    ld_op *op = ud;
    scn_ld *d = op->d;
    double secs = (double)(uv_hrtime() - op->t0) / 1e9;
    if (status == GRPC_STATUS_OK) {
        int64_t rev = header_revision(op->kind, resp, len);
        if (rev > d->st.revision) d->st.revision = rev;
    }
    switch (op->kind) {
    case K_CREATE:
    case K_UPDATE:
    case K_DELETE: {
        d->inflight--;
        ld_ns *n = ns_of(d, op->ns);
        if (status == GRPC_STATUS_OK) {
            d->st.writes++;
            scn_hist_observe(&d->st.put_hist, secs);
        } else {
            d->st.write_errors++;
        }
        if (op->kind == K_DELETE) {
            if (status == GRPC_STATUS_OK) {
                obj_remove(n, op->j);
            } else {
                ld_obj *o = obj_find(n, op->j);
                if (o) o->busy = false;
            }
        } else {
            ld_obj *o = obj_find(n, op->j);
            if (o) o->busy = false;
        }
        break;
    }
    case K_WIPE:
    case K_SEED:
        d->seed_inflight--;
        if (status != GRPC_STATUS_OK && !d->seed_failed) {
            d->seed_failed = true;
            snprintf(d->seed_err, sizeof d->seed_err, "seeding: %s: %s", grpc_status_name(status),
                     message);
        }
        if (op->kind == K_WIPE && status == GRPC_STATUS_OK)
            ld_log(d, "load: wiped %s%s/", d->seed.prefix, d->seed.resource);
        if (d->seeding && !d->stopping) seed_pump(d);
        break;
    case K_REV:
        if (status == GRPC_STATUS_OK && !d->stopping) {
            int64_t rev = d->st.revision - op->keep;
            if (rev > 0) send_compact(d, rev);
        } else if (status != GRPC_STATUS_OK) {
            d->st.compact_errors++;
        }
        break;
    case K_COMPACT:
        if (status == GRPC_STATUS_OK) {
            d->st.compactions++;
            ld_log(d, "load: compacted at revision %lld", (long long)op->ns);
        } else {
            d->st.compact_errors++;
            ld_log(d, "load: compact %lld: %s: %s", (long long)op->ns, grpc_status_name(status),
                   message);
        }
        break;
    }
    free(op);
}

/* ---- seeding ---- */

static int send_seed_batch(scn_ld *d) {
    int64_t size = d->seed.value_size;
    size_t max = LD_SEED_BATCH;
    if (size > 0 && (size_t)size * max > LD_SEED_BYTES) max = LD_SEED_BYTES / (size_t)size;
    if (max < 1) max = 1;
    Etcdserverpb__RequestOp *ops = calloc(max, sizeof *ops);
    Etcdserverpb__RequestOp **opp = calloc(max, sizeof *opp);
    Etcdserverpb__PutRequest *puts = calloc(max, sizeof *puts);
    char(*keys)[256] = calloc(max, sizeof *keys);
    uint8_t **vals = calloc(max, sizeof *vals);
    ld_op *op = new_op(d, K_SEED, 0, 0);
    int rv = -1;
    size_t n = 0;
    if (!ops || !opp || !puts || !keys || !vals || !op) goto out;
    while (n < max && d->seed_ns < d->seed.namespaces) {
        int64_t ns = d->seed_ns, j = d->seed_j;
        uint64_t uid = ++d->next_uid;
        size_t klen = scn_seed_key(&d->seed, ns, j, keys[n], sizeof keys[n]);
        size_t vlen;
        vals[n] = pack_value(d, ns, j, uid, size, &vlen);
        if (!vals[n] || obj_add(ns_of(d, ns), j, uid, false)) goto out;
        puts[n] = (Etcdserverpb__PutRequest)ETCDSERVERPB__PUT_REQUEST__INIT;
        puts[n].key = (ProtobufCBinaryData){klen, (uint8_t *)keys[n]};
        puts[n].value = (ProtobufCBinaryData){vlen, vals[n]};
        ops[n] = (Etcdserverpb__RequestOp)ETCDSERVERPB__REQUEST_OP__INIT;
        ops[n].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        ops[n].request_put = &puts[n];
        opp[n] = &ops[n];
        n++;
        if (++d->seed_j >= d->seed.per_namespace) {
            d->seed_j = 0;
            d->seed_ns++;
        }
    }
    if (!n) {
        rv = 0;
        goto out;
    }
    Etcdserverpb__TxnRequest tr = ETCDSERVERPB__TXN_REQUEST__INIT;
    tr.n_success = n;
    tr.success = opp;
    size_t len = etcdserverpb__txn_request__get_packed_size(&tr);
    uint8_t *buf = malloc(len);
    if (buf) {
        etcdserverpb__txn_request__pack(&tr, buf);
        op->count = n;
        if (send_op(d, op, "/etcdserverpb.KV/Txn", buf, len) == 0) {
            d->seed_inflight++;
            op = NULL;
            rv = 0;
        }
        free(buf);
    }
out:
    for (size_t i = 0; vals && i < n; i++)
        free(vals[i]);
    free(ops);
    free(opp);
    free(puts);
    free(keys);
    free(vals);
    free(op);
    return rv;
}

static void seed_finish(scn_ld *d) {
    d->seeding = false;
    scn_srv_cb cb = d->seed_cb;
    d->seed_cb = NULL;
    if (d->seed_failed) {
        if (cb) cb(d->seed_ud, -1, d->seed_err);
    } else {
        ld_log(d, "load: seeded %lld objects",
               (long long)(d->seed.namespaces * d->seed.per_namespace));
        if (cb) cb(d->seed_ud, 0, "");
    }
}

static void seed_pump(scn_ld *d) {
    if (d->seed_failed) {
        if (d->seed_inflight == 0) seed_finish(d);
        return;
    }
    while (d->seed_inflight < LD_SEED_INFLIGHT && d->seed_ns < d->seed.namespaces &&
           d->seed_ns >= 0) {
        if (send_seed_batch(d)) {
            d->seed_failed = true;
            snprintf(d->seed_err, sizeof d->seed_err, "seeding: cannot send (no connection?)");
            break;
        }
    }
    if (d->seed_inflight == 0 && (d->seed_failed || d->seed_ns >= d->seed.namespaces))
        seed_finish(d);
}

/* etcd's range end of a prefix: the prefix with its last byte below 0xff incremented. */
static void prefix_end(const char *p, size_t n, uint8_t *out, size_t *out_len) {
    memcpy(out, p, n);
    while (n > 0 && out[n - 1] == 0xff)
        n--;
    if (n == 0) {
        out[0] = 0; /* every key */
        *out_len = 1;
        return;
    }
    out[n - 1]++;
    *out_len = n;
}

int scn_ld_seed(scn_ld *d, scn_srv_cb cb, void *ud) {
    if (d->seeding || d->stopping) return -1;
    d->seeding = true;
    d->seed_failed = false;
    d->seed_cb = cb;
    d->seed_ud = ud;
    d->seed_ns = -1; /* the wipe goes first */
    d->seed_j = 0;
    char key[256];
    int n = snprintf(key, sizeof key, "%s%s/", d->seed.prefix, d->seed.resource);
    size_t elen;
    uint8_t end[256];
    prefix_end(key, (size_t)n, end, &elen);
    Etcdserverpb__DeleteRangeRequest dr = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    dr.key = (ProtobufCBinaryData){(size_t)n, (uint8_t *)key};
    dr.range_end = (ProtobufCBinaryData){elen, end};
    uint8_t buf[600];
    size_t len = etcdserverpb__delete_range_request__pack(&dr, buf);
    ld_op *op = new_op(d, K_WIPE, 0, 0);
    if (!op || send_op(d, op, "/etcdserverpb.KV/DeleteRange", buf, len)) {
        free(op);
        d->seeding = false;
        return -1;
    }
    d->seed_inflight++;
    d->seed_ns = 0;
    return 0;
}

/* ---- the write load ---- */

static void issue(scn_ld *d, ld_kind k) {
    double hot = d->phase->hot_namespaces > 0 ? d->phase->hot_namespaces : 1;
    int64_t nhot = (int64_t)ceil(hot * (double)d->seed.namespaces);
    if (nhot < 1) nhot = 1;
    if (nhot > d->seed.namespaces) nhot = d->seed.namespaces;
    int64_t ns = (int64_t)(refl_rng_uniform(&d->rng) * (double)nhot);
    ld_ns *n = ns_of(d, ns);
    ld_op *op = NULL;
    int rv = -1;
    if (k == K_CREATE) {
        int64_t j = n->next_j++;
        uint64_t uid = ++d->next_uid;
        if (obj_add(n, j, uid, true)) return;
        op = new_op(d, K_CREATE, ns, j);
        if (op) rv = send_put(d, op, uid);
        if (rv) obj_remove(n, j);
    } else {
        ld_obj *o = NULL;
        for (int tries = 0; tries < 8 && n->n; tries++) {
            ld_obj *c = &n->v[(size_t)(refl_rng_uniform(&d->rng) * (double)n->n)];
            if (!c->busy) {
                o = c;
                break;
            }
        }
        if (!o) return; /* nothing to update/delete there right now */
        op = new_op(d, k, ns, o->j);
        if (op) {
            o->busy = true;
            rv = k == K_UPDATE ? send_put(d, op, o->uid) : send_delete(d, op);
            if (rv) o->busy = false;
        }
    }
    if (rv) {
        free(op);
        d->st.write_errors++;
        return;
    }
    d->inflight++;
}

static void on_tick(uv_timer_t *t) {
    scn_ld *d = t->data;
    uint64_t now = uv_now(d->loop);
    double dt = (double)(now - d->last_tick) / 1000.0;
    d->last_tick = now;
    if (!d->phase || d->stopping) return;
    if (d->c && d->c_dead) client(d); /* reconnect promptly after a restart */
    const double rate[3] = {d->phase->create, d->phase->update, d->phase->del};
    for (int k = 0; k < 3; k++) {
        d->credit[k] += rate[k] * dt;
        double cap = rate[k] > 1 ? rate[k] : 1;
        if (d->credit[k] > cap) d->credit[k] = cap;
    }
    int64_t writers = d->phase->writers > 0 ? d->phase->writers : 4;
    while (d->inflight < (uint64_t)writers) {
        int best = -1;
        for (int k = 0; k < 3; k++)
            if (d->credit[k] >= 1 && (best < 0 || d->credit[k] > d->credit[best])) best = k;
        if (best < 0) break;
        d->credit[best] -= 1;
        issue(d, best == 0 ? K_CREATE : best == 1 ? K_UPDATE : K_DELETE);
    }
}

/* ---- compaction ---- */

static void send_compact(scn_ld *d, int64_t rev) {
    Etcdserverpb__CompactionRequest cr = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    cr.revision = rev;
    uint8_t buf[32];
    size_t n = etcdserverpb__compaction_request__pack(&cr, buf);
    ld_op *op = new_op(d, K_COMPACT, rev, 0);
    if (!op || send_op(d, op, "/etcdserverpb.KV/Compact", buf, n)) {
        free(op);
        d->st.compact_errors++;
    }
}

void scn_ld_compact(scn_ld *d, int64_t keep) {
    /* a Range of one key tells the current revision */
    static const char probe[] = "/relistlab/compact-probe";
    Etcdserverpb__RangeRequest rr = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rr.key = (ProtobufCBinaryData){sizeof probe - 1, (uint8_t *)probe};
    uint8_t buf[64];
    size_t n = etcdserverpb__range_request__pack(&rr, buf);
    ld_op *op = new_op(d, K_REV, 0, 0);
    if (!op) return;
    op->keep = keep < 0 ? 0 : keep;
    if (send_op(d, op, "/etcdserverpb.KV/Range", buf, n)) {
        free(op);
        d->st.compact_errors++;
    }
}

/* ---- lifecycle ---- */

scn_ld *scn_ld_new(uv_loop_t *loop, const char *endpoint, const scn_seed *seed, uint64_t rng_seed,
                   void (*log)(void *ud, const char *line), void *ud) {
    if (seed->namespaces < 1) return NULL;
    scn_ld *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->ns = calloc((size_t)seed->namespaces, sizeof *d->ns);
    if (!d->ns) {
        free(d);
        return NULL;
    }
    d->loop = loop;
    snprintf(d->endpoint, sizeof d->endpoint, "%s", endpoint);
    d->seed = *seed;
    for (int64_t i = 0; i < seed->namespaces; i++)
        d->ns[i].next_j = seed->per_namespace;
    refl_rng_seed(&d->rng, rng_seed);
    d->uid_salt = (uint32_t)(refl_rng_next(&d->rng) >> 32);
    d->log = log;
    d->log_ud = ud;
    scn_hist_init_latency(&d->st.put_hist);
    uv_timer_init(loop, &d->tick);
    d->tick.data = d;
    d->last_tick = uv_now(loop);
    uv_timer_start(&d->tick, on_tick, LD_TICK_MS, LD_TICK_MS);
    return d;
}

void scn_ld_set_phase(scn_ld *d, const scn_phase *p) {
    d->phase = p;
    for (int k = 0; k < 3; k++)
        d->credit[k] = 0;
    d->last_tick = uv_now(d->loop);
}

void scn_ld_get_stats(const scn_ld *d, scn_ld_stats *out) {
    *out = d->st;
    out->inflight = d->inflight;
    uint64_t objs = 0;
    for (int64_t i = 0; i < d->seed.namespaces; i++)
        objs += d->ns[i].n;
    out->objects = objs;
}

static void on_tick_closed(uv_handle_t *h) {
    scn_ld *d = h->data;
    if (d->stop_done) d->stop_done(d->stop_ud);
}

void scn_ld_stop(scn_ld *d, void (*done)(void *ud), void *ud) {
    if (d->stopping) return;
    d->phase = NULL;
    d->stopping = true;
    d->stop_done = done;
    d->stop_ud = ud;
    d->seed_cb = NULL;
    if (d->c) {
        grpc_client *c = d->c;
        d->c = NULL;
        grpc_client_free(c);
    }
    uv_timer_stop(&d->tick);
    uv_close((uv_handle_t *)&d->tick, on_tick_closed);
}

void scn_ld_free(scn_ld *d) {
    if (!d) return;
    for (int64_t i = 0; i < d->seed.namespaces; i++)
        free(d->ns[i].v);
    free(d->ns);
    free(d->payload);
    free(d);
}
