/* refl_htab.c — the reflector core's hash function, intrusive hash table and byte buffer.
 * The hash reads 8 bytes at a time (memcpy, so unaligned input is fine) and ends with the
 * splitmix64 finalizer; it is not DoS-hardened, which is fine for keys of a lab. */
#include "refl_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t refl_hash_mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t refl_hash_bytes(const void *p, size_t n, uint64_t seed) {
    const unsigned char *s = p;
    uint64_t h = seed ^ (0x9e3779b97f4a7c15ULL * (n + 1));
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ refl_hash_mix(w)) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)s[i] << (8 * i);
    h = (h ^ refl_hash_mix(w ^ 0xa0761d6478bd642fULL)) * 0xc4ceb9fe1a85ec53ULL;
    return refl_hash_mix(h);
}

int refl_htab_init(refl_htab *t, size_t expected) {
    size_t nb = 16;
    while (nb < expected)
        nb <<= 1;
    t->buckets = calloc(nb, sizeof(*t->buckets));
    t->nbuckets = t->buckets ? nb : 0;
    t->count = 0;
    return t->buckets ? 0 : -1;
}

void refl_htab_fini(refl_htab *t) {
    free(t->buckets);
    t->buckets = NULL;
    t->nbuckets = 0;
    t->count = 0;
}

static void htab_grow(refl_htab *t) {
    size_t nb = t->nbuckets * 2;
    refl_hnode **nbk = calloc(nb, sizeof(*nbk));
    if (!nbk) return; /* keep the longer chains; still correct */
    for (size_t i = 0; i < t->nbuckets; i++) {
        refl_hnode *n = t->buckets[i];
        while (n) {
            refl_hnode *next = n->next;
            size_t j = (size_t)n->hash & (nb - 1);
            n->next = nbk[j];
            nbk[j] = n;
            n = next;
        }
    }
    free(t->buckets);
    t->buckets = nbk;
    t->nbuckets = nb;
}

void refl_htab_insert(refl_htab *t, refl_hnode *n) {
    if (t->count >= t->nbuckets) htab_grow(t);
    size_t i = (size_t)n->hash & (t->nbuckets - 1);
    n->next = t->buckets[i];
    t->buckets[i] = n;
    t->count++;
}

void refl_htab_remove(refl_htab *t, refl_hnode *n) {
    refl_hnode **pp = &t->buckets[(size_t)n->hash & (t->nbuckets - 1)];
    while (*pp && *pp != n)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = n->next;
        n->next = NULL;
        t->count--;
    }
}

refl_hnode *refl_htab_first(const refl_htab *t, uint64_t hash) {
    if (!t->nbuckets) return NULL;
    refl_hnode *n = t->buckets[(size_t)hash & (t->nbuckets - 1)];
    while (n && n->hash != hash)
        n = n->next;
    return n;
}

refl_hnode *refl_htab_next_same(const refl_hnode *n) {
    uint64_t h = n->hash;
    refl_hnode *m = n->next;
    while (m && m->hash != h)
        m = m->next;
    return m;
}

refl_hnode *refl_htab_next(const refl_htab *t, size_t *bucket, const refl_hnode *node) {
    if (node && node->next) return node->next;
    size_t i = node ? *bucket + 1 : *bucket;
    for (; i < t->nbuckets; i++) {
        if (t->buckets[i]) {
            *bucket = i;
            return t->buckets[i];
        }
    }
    *bucket = t->nbuckets;
    return NULL;
}

/* ---- byte buffer ------------------------------------------------------------------------ */

static int buf_reserve(refl_buf *b, size_t extra) {
    if (b->failed) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void refl_buf_append(refl_buf *b, const void *s, size_t n) {
    if (buf_reserve(b, n)) return;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void refl_buf_puts(refl_buf *b, const char *s) {
    refl_buf_append(b, s, strlen(s));
}

void refl_buf_printf(refl_buf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof tmp) {
        refl_buf_append(b, tmp, (size_t)n);
        return;
    }
    if (buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid (overlongs, surrogates and
 * code points past U+10FFFF are invalid). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void refl_buf_json_str(refl_buf *b, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    refl_buf_append(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        /* copy plain runs in one go */
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        if (run > i) {
            refl_buf_append(b, s + i, run - i);
            i = run;
            continue;
        }
        unsigned c = s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            refl_buf_append(b, esc, 2);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n':
                refl_buf_append(b, "\\n", 2);
                break;
            case '\r':
                refl_buf_append(b, "\\r", 2);
                break;
            case '\t':
                refl_buf_append(b, "\\t", 2);
                break;
            default:
                refl_buf_printf(b, "\\u%04x", c);
                break;
            }
            i++;
        } else {
            size_t len = utf8_seq(s + i, n - i);
            if (len) {
                refl_buf_append(b, s + i, len);
                i += len;
            } else {
                refl_buf_append(b, "\\ufffd", 6);
                i++;
            }
        }
    }
    refl_buf_append(b, "\"", 1);
}
