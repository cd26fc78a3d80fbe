/* workload_kv.c — single-key workloads: `put` (writes over a key space, durable on both
 * targets), `get` (point reads of seeded keys) and `txn` (compare-and-swap on mod_revision, the
 * way Kubernetes' GuaranteedUpdate writes: Txn{ if mod_revision(k) == r then put(k) else get(k) },
 * the client keeping the last mod_revision it saw per key; a failed compare is a "conflict").
 * Each works under its own prefix and deletes it first, so an external target starts clean.
 * Write workloads compact after each round (untimed) so rounds do not pile up history. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvbench.h"
#include "rpc.pb-c.h"

typedef struct kv_state {
    kb_env *e;
    const char *prefix;
    uint64_t keys, next;
    size_t vsize;
    uint8_t *value;
    int64_t *revs;      /* txn: last mod_revision seen per key */
    uint64_t *slot_key; /* txn: key of the op in flight per slot */
} kv_state;

static void key_name(const char *prefix, uint64_t i, char *buf, size_t cap) {
    snprintf(buf, cap, "%sk%08llu", prefix, (unsigned long long)i);
}

static void keyfn(uint64_t i, char *buf, size_t cap, void *ud) {
    key_name(((kv_state *)ud)->prefix, i, buf, cap);
}

static kv_state *state_new(kb_env *e, const char *prefix) {
    kv_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->e = e;
    s->prefix = prefix;
    s->keys = e->o->keys ? e->o->keys : 1;
    s->vsize = e->o->value_size;
    s->value = malloc(s->vsize ? s->vsize : 1);
    if (!s->value) {
        free(s);
        return NULL;
    }
    kb_fill_value(s->value, s->vsize, 7);
    return s;
}

static void kv_teardown(void *state) {
    kv_state *s = state;
    if (!s) return;
    free(s->value);
    free(s->revs);
    free(s->slot_key);
    free(s);
}

static void compact_after_round(kb_env *e, void *state) {
    (void)state;
    char err[256];
    if (kb_compact(e, err, sizeof err) != 0)
        fprintf(stderr, "kvbench: %s: compaction after the round failed: %s\n", e->t->name, err);
}

static void describe_kv(const kb_opts *o, char *buf, size_t cap) {
    char vs[32];
    kb_size_str(o->value_size, vs, sizeof vs);
    snprintf(buf, cap, "%s %s c=%d conns=%d keys=%llu", o->workload, vs, o->concurrency, o->conns,
             (unsigned long long)o->keys);
}

/* Marks the value so consecutive writes differ (as real updates do). */
static void stamp(kv_state *s) {
    uint64_t n = ++s->next;
    memcpy(s->value, &n, s->vsize < sizeof n ? s->vsize : sizeof n);
}

/* ------------------------------------------------------------------ put */

static int check_put(kb_op *op, const uint8_t *resp, size_t len, char *msg, size_t cap) {
    if (!op->env->o->verify) return 0;
    Etcdserverpb__PutResponse *r = etcdserverpb__put_response__unpack(NULL, len, resp);
    int ok = r && r->header && r->header->revision > 0;
    if (r) etcdserverpb__put_response__free_unpacked(r, NULL);
    if (!ok) snprintf(msg, cap, "bad PutResponse");
    return ok ? 0 : -1;
}

static int put_setup(kb_env *e, void **state, char *err, size_t errlen) {
    kv_state *s = state_new(e, "/kvbench/put/");
    if (!s) return -1;
    *state = s;
    return kb_delete_prefix(e, s->prefix, err, errlen);
}

static int put_op(void *state, kb_op *op) {
    kv_state *s = state;
    char key[64];
    key_name(s->prefix, s->next % s->keys, key, sizeof key);
    stamp(s);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    p.value = (ProtobufCBinaryData){s->vsize, s->value};
    return kb_op_unary_msg(op, "/etcdserverpb.KV/Put", &p.base, check_put);
}

const kb_workload kb_wl_put = {
    .name = "put",
    .summary = "Put VALUE-SIZE values over --keys keys (durable), C in flight",
    .setup = put_setup,
    .start_op = put_op,
    .after_round = compact_after_round,
    .teardown = kv_teardown,
    .describe = describe_kv,
};

/* ------------------------------------------------------------------ get */

static int check_get(kb_op *op, const uint8_t *resp, size_t len, char *msg, size_t cap) {
    if (!op->env->o->verify) return 0;
    kv_state *s = op->env->wstate;
    Etcdserverpb__RangeResponse *r = etcdserverpb__range_response__unpack(NULL, len, resp);
    int ok = r && r->n_kvs == 1 && r->kvs[0]->value.len == s->vsize;
    if (r) etcdserverpb__range_response__free_unpacked(r, NULL);
    if (!ok) snprintf(msg, cap, "bad RangeResponse (want 1 key of %zu bytes)", s->vsize);
    return ok ? 0 : -1;
}

static int get_setup(kb_env *e, void **state, char *err, size_t errlen) {
    kv_state *s = state_new(e, "/kvbench/get/");
    if (!s) return -1;
    *state = s;
    if (kb_delete_prefix(e, s->prefix, err, errlen) != 0) return -1;
    return kb_seed(e, s->keys, keyfn, s, s->vsize, err, errlen);
}

static int get_op(void *state, kb_op *op) {
    kv_state *s = state;
    char key[64];
    key_name(s->prefix, kb_rand_below(s->e, s->keys), key, sizeof key);
    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    rq.serializable = s->e->o->serializable;
    return kb_op_unary_msg(op, "/etcdserverpb.KV/Range", &rq.base, check_get);
}

const kb_workload kb_wl_get = {
    .name = "get",
    .summary = "point Range of random seeded keys (linearizable unless --serializable)",
    .setup = get_setup,
    .start_op = get_op,
    .teardown = kv_teardown,
    .describe = describe_kv,
};

/* ------------------------------------------------------------------ txn (CAS) */

static int check_txn(kb_op *op, const uint8_t *resp, size_t len, char *msg, size_t cap) {
    kv_state *s = op->env->wstate;
    uint64_t k = s->slot_key[op->slot];
    Etcdserverpb__TxnResponse *r = etcdserverpb__txn_response__unpack(NULL, len, resp);
    if (!r || !r->header) {
        if (r) etcdserverpb__txn_response__free_unpacked(r, NULL);
        snprintf(msg, cap, "bad TxnResponse");
        return -1;
    }
    int rv = 0;
    if (r->succeeded) {
        s->revs[k] = r->header->revision;
    } else {
        kb_op_aux(op);
        Etcdserverpb__ResponseOp *ro = r->n_responses == 1 ? r->responses[0] : NULL;
        if (ro && ro->response_case == ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE &&
            ro->response_range->n_kvs == 1) {
            s->revs[k] = ro->response_range->kvs[0]->mod_revision;
        } else {
            snprintf(msg, cap, "failed CAS without the current value");
            rv = -1;
        }
    }
    etcdserverpb__txn_response__free_unpacked(r, NULL);
    return rv;
}

static int txn_setup(kb_env *e, void **state, char *err, size_t errlen) {
    kv_state *s = state_new(e, "/kvbench/txn/");
    if (!s) return -1;
    *state = s;
    s->revs = calloc(s->keys, sizeof *s->revs);
    s->slot_key =
        calloc((size_t)(e->o->concurrency > 0 ? e->o->concurrency : 1), sizeof *s->slot_key);
    if (!s->revs || !s->slot_key) return -1;
    if (kb_delete_prefix(e, s->prefix, err, errlen) != 0) return -1;
    if (kb_seed(e, s->keys, keyfn, s, s->vsize, err, errlen) != 0) return -1;
    /* learn every key's mod_revision, as an informer's LIST would */
    char end[64];
    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key = (ProtobufCBinaryData){strlen(s->prefix), (uint8_t *)s->prefix};
    rq.range_end = (ProtobufCBinaryData){kb_prefix_end(s->prefix, end, sizeof end), (uint8_t *)end};
    rq.keys_only = true;
    uint8_t *resp = NULL;
    size_t len = 0;
    if (kb_unary_sync(e, "/etcdserverpb.KV/Range", &rq.base, &resp, &len, err, errlen) != 0)
        return -1;
    Etcdserverpb__RangeResponse *r = etcdserverpb__range_response__unpack(NULL, len, resp);
    free(resp);
    if (!r || r->n_kvs != s->keys) {
        snprintf(err, errlen, "txn setup: expected %llu keys, got %zu", (unsigned long long)s->keys,
                 r ? r->n_kvs : 0);
        if (r) etcdserverpb__range_response__free_unpacked(r, NULL);
        return -1;
    }
    size_t pl = strlen(s->prefix);
    for (size_t i = 0; i < r->n_kvs; i++) {
        Mvccpb__KeyValue *kv = r->kvs[i];
        char num[32];
        size_t n = kv->key.len - pl - 1 < sizeof num - 1 ? kv->key.len - pl - 1 : sizeof num - 1;
        memcpy(num, kv->key.data + pl + 1, n);
        num[n] = 0;
        uint64_t k = strtoull(num, NULL, 10);
        if (k < s->keys) s->revs[k] = kv->mod_revision;
    }
    etcdserverpb__range_response__free_unpacked(r, NULL);
    return 0;
}

static int txn_op(void *state, kb_op *op) {
    kv_state *s = state;
    uint64_t k = kb_rand_below(s->e, s->keys);
    s->slot_key[op->slot] = k;
    char key[64];
    key_name(s->prefix, k, key, sizeof key);
    ProtobufCBinaryData kb = {strlen(key), (uint8_t *)key};
    stamp(s);

    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
    cmp.key = kb;
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    cmp.mod_revision = s->revs[k];
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    put.key = kb;
    put.value = (ProtobufCBinaryData){s->vsize, s->value};
    Etcdserverpb__RangeRequest get = ETCDSERVERPB__RANGE_REQUEST__INIT;
    get.key = kb;
    Etcdserverpb__RequestOp ok = ETCDSERVERPB__REQUEST_OP__INIT,
                            ko = ETCDSERVERPB__REQUEST_OP__INIT;
    ok.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    ok.request_put = &put;
    ko.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    ko.request_range = &get;
    Etcdserverpb__Compare *cmps[] = {&cmp};
    Etcdserverpb__RequestOp *oks[] = {&ok}, *kos[] = {&ko};
    Etcdserverpb__TxnRequest tx = ETCDSERVERPB__TXN_REQUEST__INIT;
    tx.compare = cmps;
    tx.n_compare = 1;
    tx.success = oks;
    tx.n_success = 1;
    tx.failure = kos;
    tx.n_failure = 1;
    return kb_op_unary_msg(op, "/etcdserverpb.KV/Txn", &tx.base, check_txn);
}

const kb_workload kb_wl_txn = {
    .name = "txn",
    .summary = "compare-and-swap on mod_revision of random seeded keys (Txn put / get)",
    .aux_name = "cas_conflicts",
    .setup = txn_setup,
    .start_op = txn_op,
    .after_round = compact_after_round,
    .teardown = kv_teardown,
    .describe = describe_kv,
};
