/* kv_codec.c — byte-level encodings of the engine: big-endian revisions (so LMDB's memcmp order
 * is revision order), mvccpb.KeyValue records (hand-written protobuf so records are encoded and
 * decoded without allocation, byte-identical to protobuf-c's packing: fields in number order,
 * proto3 zero values omitted), and etcd's key-range rules.
 */
#include <stdlib.h>
#include <string.h>

#include "kv_internal.h"

void kv_u64_put(uint8_t *out, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t kv_u64_get(const uint8_t *in) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

void kv_rev_put(uint8_t out[KV_REV_LEN], int64_t main, int64_t sub) {
    kv_u64_put(out, (uint64_t)main);
    kv_u64_put(out + 8, (uint64_t)sub);
}

kv_rev kv_rev_get(const uint8_t *in) {
    kv_rev r = {(int64_t)kv_u64_get(in), (int64_t)kv_u64_get(in + 8)};
    return r;
}

int kv_bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

/* ---- protobuf varints ---- */

static size_t varint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *varint_put(uint8_t *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static int varint_get(const uint8_t **pp, const uint8_t *end, uint64_t *v) {
    const uint8_t *p = *pp;
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (p >= end) return -1;
        uint8_t b = *p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            *pp = p;
            return 0;
        }
    }
    return -1;
}

/* ---- mvccpb.KeyValue ---- */

int kv_rec_decode(const uint8_t *p, size_t n, kv_rec *r) {
    const uint8_t *end = p + n;
    memset(r, 0, sizeof(*r));
    r->key = r->value = (const uint8_t *)"";
    while (p < end) {
        uint64_t tag, v;
        if (varint_get(&p, end, &tag)) return -1;
        unsigned field = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
        if (wt == 0) {
            if (varint_get(&p, end, &v)) return -1;
            switch (field) {
            case 2:
                r->create = (int64_t)v;
                break;
            case 3:
                r->mod = (int64_t)v;
                break;
            case 4:
                r->version = (int64_t)v;
                break;
            case 6:
                r->lease = (int64_t)v;
                break;
            default:
                break;
            }
        } else if (wt == 2) {
            if (varint_get(&p, end, &v) || v > (uint64_t)(end - p)) return -1;
            if (field == 1) {
                r->key = p;
                r->key_len = (size_t)v;
            } else if (field == 5) {
                r->value = p;
                r->value_len = (size_t)v;
            }
            p += v;
        } else if (wt == 1) {
            if (end - p < 8) return -1;
            p += 8;
        } else if (wt == 5) {
            if (end - p < 4) return -1;
            p += 4;
        } else {
            return -1;
        }
    }
    return 0;
}

static size_t int_field_size(int64_t v) {
    return v ? 1 + varint_size((uint64_t)v) : 0;
}
static size_t bytes_field_size(size_t n) {
    return n ? 1 + varint_size(n) + n : 0;
}

size_t kv_rec_size(const kv_rec *r) {
    return bytes_field_size(r->key_len) + int_field_size(r->create) + int_field_size(r->mod) +
           int_field_size(r->version) + bytes_field_size(r->value_len) + int_field_size(r->lease);
}

static uint8_t *put_int(uint8_t *p, unsigned field, int64_t v) {
    if (!v) return p;
    *p++ = (uint8_t)(field << 3);
    return varint_put(p, (uint64_t)v);
}

static uint8_t *put_bytes(uint8_t *p, unsigned field, const uint8_t *b, size_t n) {
    if (!n) return p;
    *p++ = (uint8_t)(field << 3 | 2);
    p = varint_put(p, n);
    memcpy(p, b, n);
    return p + n;
}

size_t kv_rec_encode(const kv_rec *r, uint8_t *out) {
    uint8_t *p = out;
    p = put_bytes(p, 1, r->key, r->key_len);
    p = put_int(p, 2, r->create);
    p = put_int(p, 3, r->mod);
    p = put_int(p, 4, r->version);
    p = put_bytes(p, 5, r->value, r->value_len);
    p = put_int(p, 6, r->lease);
    return (size_t)(p - out);
}

/* ---- key ranges ---- */

kv_keyrange kv_keyrange_make(const uint8_t *key, size_t key_len, const uint8_t *end,
                             size_t end_len) {
    kv_keyrange kr = {key ? key : (const uint8_t *)"",
                      end ? end : (const uint8_t *)"",
                      key_len,
                      end_len,
                      end_len == 0,
                      end_len == 1 && end[0] == 0};
    return kr;
}

bool kv_keyrange_past(const kv_keyrange *kr, const uint8_t *k, size_t n) {
    if (kr->from_key) return false;
    if (kr->single) return kv_bytes_cmp(k, n, kr->key, kr->key_len) > 0;
    return kv_bytes_cmp(k, n, kr->end, kr->end_len) >= 0;
}

bool kv_keyrange_has(const kv_keyrange *kr, const uint8_t *k, size_t n) {
    int c = kv_bytes_cmp(k, n, kr->key, kr->key_len);
    if (kr->single) return c == 0;
    return c >= 0 && !kv_keyrange_past(kr, k, n);
}

/* ---- growable buffer ---- */

int kv_buf_reserve(kv_buf *b, size_t extra) {
    if (b->cap - b->len >= extra) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < extra)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

void kv_buf_free(kv_buf *b) {
    free(b->p);
    memset(b, 0, sizeof(*b));
}
