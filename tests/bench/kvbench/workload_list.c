/* workload_list.c — `list`: the Kubernetes relist. Seeds /registry/pods/ns-<i>/pod-<j>
 * (--objects spread over --namespaces, --value-size each), then issues full LISTs of
 * /registry/pods/ by prefix (--scope all, the default) or LISTs of one random namespace
 * (--scope namespace). Linearizable like client-go's default unless --serializable.
 * Each response is checked cheaply by walking the RangeResponse wire format and counting kvs
 * (no allocation; a 10 MB response costs a few µs of varint skipping per key); --verify
 * decodes it fully with protobuf-c instead and checks every value's length. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvbench.h"
#include "rpc.pb-c.h"

#define PODS "/registry/pods/"

typedef struct list_state {
    kb_env *e;
    uint64_t objects, per_ns;
    int namespaces;
    uint64_t *ns_count;  /* expected keys per namespace */
    uint64_t *slot_want; /* expected count of the LIST in flight per slot */
} list_state;

static void pod_key(const list_state *s, uint64_t i, char *buf, size_t cap) {
    snprintf(buf, cap, PODS "ns-%llu/pod-%llu", (unsigned long long)(i / s->per_ns),
             (unsigned long long)(i % s->per_ns));
}

static void keyfn(uint64_t i, char *buf, size_t cap, void *ud) {
    pod_key(ud, i, buf, cap);
}

static int list_setup(kb_env *e, void **state, char *err, size_t errlen) {
    const kb_opts *o = e->o;
    list_state *s = calloc(1, sizeof *s);
    if (!s) return -1;
    *state = s;
    s->e = e;
    s->objects = o->objects;
    s->namespaces = o->namespaces > 0 ? o->namespaces : 1;
    s->per_ns = (s->objects + (uint64_t)s->namespaces - 1) / (uint64_t)s->namespaces;
    if (s->per_ns == 0) s->per_ns = 1;
    s->ns_count = calloc((size_t)s->namespaces, sizeof *s->ns_count);
    s->slot_want = calloc((size_t)(o->concurrency > 0 ? o->concurrency : 1), sizeof *s->slot_want);
    if (!s->ns_count || !s->slot_want) return -1;
    for (uint64_t i = 0; i < s->objects; i++)
        s->ns_count[i / s->per_ns]++;
    if (kb_delete_prefix(e, PODS, err, errlen) != 0) return -1;
    return kb_seed(e, s->objects, keyfn, s, o->value_size, err, errlen);
}

static void list_teardown(void *state) {
    list_state *s = state;
    if (!s) return;
    free(s->ns_count);
    free(s->slot_want);
    free(s);
}

/* Reads a varint; returns bytes used or 0 if malformed. */
static size_t varint(const uint8_t *p, size_t n, uint64_t *v) {
    uint64_t x = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = x;
            return i + 1;
        }
    }
    return 0;
}

/* How many keys ahead count_kvs prefetches. */
#define COUNT_PREFETCH 16

/* Counts field 2 (kvs) of a RangeResponse without decoding it; -1 if malformed. Every kvs
 * entry's tag and length are read, and the walk must end exactly at the message's end, so a
 * short or padded message fails. A 10 MB response is out of the CPU caches by the time the
 * whole message has arrived and each key's length sits in another cache line: unaided that is
 * one dependent miss per key (most of this function's cost). So it prefetches where the entry
 * COUNT_PREFETCH keys ahead starts if those keys are the size of this one (a LIST's keys are
 * alike; a wrong guess costs a wasted prefetch, never a wrong count). */
static int64_t count_kvs(const uint8_t *p, size_t n) {
    int64_t kvs = 0;
    size_t i = 0;
    while (i < n) {
        uint64_t tag, v;
        size_t k = varint(p + i, n - i, &tag);
        if (!k) return -1;
        i += k;
        switch (tag & 7) {
        case 0:
            k = varint(p + i, n - i, &v);
            if (!k) return -1;
            i += k;
            break;
        case 1:
            i += 8;
            break;
        case 5:
            i += 4;
            break;
        case 2:
            k = varint(p + i, n - i, &v);
            if (!k || v > n - i - k) return -1;
            if ((tag >> 3) == 2) {
                kvs++;
                size_t ahead = (size_t)COUNT_PREFETCH * (1 + k + v);
                if (ahead < n - i) __builtin_prefetch(p + i + ahead);
            }
            i += k + v;
            break;
        default:
            return -1;
        }
    }
    return i == n ? kvs : -1;
}

static int check_list(kb_op *op, const uint8_t *resp, size_t len, char *msg, size_t cap) {
    list_state *s = op->env->wstate;
    uint64_t want = s->slot_want[op->slot];
    if (!op->env->o->verify) {
        int64_t got = count_kvs(resp, len);
        if (got == (int64_t)want) return 0;
        snprintf(msg, cap, "LIST returned %lld keys, want %llu", (long long)got,
                 (unsigned long long)want);
        return -1;
    }
    Etcdserverpb__RangeResponse *r = etcdserverpb__range_response__unpack(NULL, len, resp);
    int ok = r && r->n_kvs == want && r->count == (int64_t)want;
    for (size_t i = 0; ok && i < r->n_kvs; i++)
        ok = r->kvs[i]->value.len == op->env->o->value_size && r->kvs[i]->mod_revision > 0;
    if (!ok)
        snprintf(msg, cap, "bad LIST response (%zu keys, want %llu of %zu bytes)", r ? r->n_kvs : 0,
                 (unsigned long long)want, op->env->o->value_size);
    if (r) etcdserverpb__range_response__free_unpacked(r, NULL);
    return ok ? 0 : -1;
}

static int list_op(void *state, kb_op *op) {
    list_state *s = state;
    char key[64], end[64];
    if (s->e->o->scope_ns) {
        uint64_t ns = kb_rand_below(s->e, (uint64_t)s->namespaces);
        snprintf(key, sizeof key, PODS "ns-%llu/", (unsigned long long)ns);
        s->slot_want[op->slot] = s->ns_count[ns];
    } else {
        snprintf(key, sizeof key, PODS);
        s->slot_want[op->slot] = s->objects;
    }
    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    rq.range_end = (ProtobufCBinaryData){kb_prefix_end(key, end, sizeof end), (uint8_t *)end};
    rq.serializable = s->e->o->serializable;
    return kb_op_unary_msg(op, "/etcdserverpb.KV/Range", &rq.base, check_list);
}

static void list_describe(const kb_opts *o, char *buf, size_t cap) {
    char vs[32];
    kb_size_str(o->value_size, vs, sizeof vs);
    uint64_t ns = o->namespaces > 0 ? (uint64_t)o->namespaces : 1;
    if (o->scope_ns)
        snprintf(buf, cap, "list ns (%llu x %s) c=%d",
                 (unsigned long long)((o->objects + ns - 1) / ns), vs, o->concurrency);
    else
        snprintf(buf, cap, "list %llu x %s c=%d", (unsigned long long)o->objects, vs,
                 o->concurrency);
}

const kb_workload kb_wl_list = {
    .name = "list",
    .summary = "LIST /registry/pods/ by prefix (or one namespace with --scope namespace)",
    .setup = list_setup,
    .start_op = list_op,
    .teardown = list_teardown,
    .describe = list_describe,
};
