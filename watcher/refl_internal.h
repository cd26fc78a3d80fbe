/* refl_internal.h — helpers shared by the reflector core's files, not part of the public API:
 * a byte hash, an intrusive chained hash table (nodes embedded in the owner's struct, so an
 * object or cache entry is one allocation), and a growable byte buffer for JSON and keys. */
#ifndef RELIST_REFL_INTERNAL_H
#define RELIST_REFL_INTERNAL_H

#include "refl.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define REFL_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* memcmp equality that accepts NULL with length 0 (caller-given empty keys and values). */
static inline int refl_mem_eq(const void *a, const void *b, size_t n) {
    return n == 0 || memcmp(a, b, n) == 0;
}

uint64_t refl_hash_bytes(const void *p, size_t n, uint64_t seed);
uint64_t refl_hash_mix(uint64_t x);

/* Power-of-two bucket array; grows when count exceeds the bucket count. Lookups walk a
 * chain comparing the stored hash first, the owner compares the real key. */
typedef struct refl_htab {
    refl_hnode **buckets;
    size_t nbuckets;
    size_t count;
} refl_htab;

int refl_htab_init(refl_htab *t, size_t expected);
void refl_htab_fini(refl_htab *t); /* frees the buckets, never the nodes */
/* Inserts (duplicates allowed: the caller checks first). Growth failure is not fatal: the
 * node is still inserted into the smaller table. */
void refl_htab_insert(refl_htab *t, refl_hnode *n);
void refl_htab_remove(refl_htab *t, refl_hnode *n);
/* First node of hash's chain with that exact hash; continue with refl_htab_next_same. */
refl_hnode *refl_htab_first(const refl_htab *t, uint64_t hash);
refl_hnode *refl_htab_next_same(const refl_hnode *n);
/* Iteration: *bucket and *node start at 0 / NULL. */
refl_hnode *refl_htab_next(const refl_htab *t, size_t *bucket, const refl_hnode *node);

/* Growable buffer; on allocation failure it sets failed and ignores further appends. */
typedef struct refl_buf {
    char *p;
    size_t len;
    size_t cap;
    int failed;
} refl_buf;

void refl_buf_append(refl_buf *b, const void *s, size_t n);
void refl_buf_puts(refl_buf *b, const char *s);
void refl_buf_printf(refl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends a JSON string literal (quotes included): escapes ", \ and control bytes; invalid
 * UTF-8 becomes U+FFFD so the output is always valid JSON. */
void refl_buf_json_str(refl_buf *b, const char *s, size_t n);

/* The cache key of meta under (mode, phase) into a buffer with inline storage for the common
 * short case. */
typedef struct refl_keybuf {
    char *p;
    size_t len;
    char inl[200];
} refl_keybuf;

int refl_keybuf_build(refl_keybuf *kb, refl_key_mode mode, refl_key_phase phase,
                      const refl_objmeta *meta);
void refl_keybuf_fini(refl_keybuf *kb);

#endif
