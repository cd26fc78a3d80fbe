/* refl_objpool.c — shared, reference-counted object bytes, interned by (etcd key,
 * mod_revision), so a thousand watchers of one prefix hold one copy of each object (and
 * decode its metadata once). One allocation per object: header, key, NUL, value.
 * Single-threaded by design (one libuv loop owns the pool and every cache using it): the
 * reference counts are plain integers. */
#include "refl_internal.h"

#include <stdlib.h>
#include <string.h>

struct refl_objpool {
    refl_htab tab;
    refl_objpool_stats stats;
};

static uint64_t obj_hash(const char *key, size_t key_len, int64_t mod_revision) {
    return refl_hash_bytes(key, key_len, refl_hash_mix((uint64_t)mod_revision));
}

refl_objpool *refl_objpool_new(void) {
    refl_objpool *pool = calloc(1, sizeof(*pool));
    if (!pool) return NULL;
    if (refl_htab_init(&pool->tab, 1024)) {
        free(pool);
        return NULL;
    }
    return pool;
}

size_t refl_objpool_free(refl_objpool *pool) {
    if (!pool) return 0;
    size_t leaked = 0;
    size_t b = 0;
    refl_hnode *n = refl_htab_next(&pool->tab, &b, NULL);
    while (n) {
        refl_hnode *next = refl_htab_next(&pool->tab, &b, n);
        free(REFL_CONTAINER_OF(n, refl_obj, node));
        leaked++;
        n = next;
    }
    refl_htab_fini(&pool->tab);
    free(pool);
    return leaked;
}

refl_objpool_stats refl_objpool_get_stats(const refl_objpool *pool) {
    return pool->stats;
}

static refl_obj *lookup(const refl_objpool *pool, uint64_t h, const char *key, size_t key_len,
                        const void *value, size_t value_len, int64_t mod_revision) {
    for (refl_hnode *n = refl_htab_first(&pool->tab, h); n; n = refl_htab_next_same(n)) {
        refl_obj *o = REFL_CONTAINER_OF(n, refl_obj, node);
        if (o->mod_revision == mod_revision && o->key_len == key_len && o->value_len == value_len &&
            refl_mem_eq(o->key, key, key_len) && refl_mem_eq(o->value, value, value_len))
            return o;
    }
    return NULL;
}

refl_obj *refl_obj_find(const refl_objpool *pool, const char *key, size_t key_len,
                        const void *value, size_t value_len, int64_t mod_revision) {
    return lookup(pool, obj_hash(key, key_len, mod_revision), key, key_len, value, value_len,
                  mod_revision);
}

refl_obj *refl_obj_intern(refl_objpool *pool, const char *key, size_t key_len, const void *value,
                          size_t value_len, int64_t mod_revision, int64_t create_revision) {
    uint64_t h = obj_hash(key, key_len, mod_revision);
    refl_obj *o = lookup(pool, h, key, key_len, value, value_len, mod_revision);
    if (o) {
        o->refs++;
        pool->stats.interns++;
        pool->stats.shared_hits++;
        return o;
    }
    if (key_len > SIZE_MAX / 2 || value_len > SIZE_MAX / 2 - key_len - sizeof(*o) - 1) return NULL;
    o = malloc(sizeof(*o) + key_len + 1 + value_len);
    if (!o) return NULL;
    char *k = (char *)(o + 1);
    if (key_len) memcpy(k, key, key_len);
    k[key_len] = '\0';
    uint8_t *v = (uint8_t *)k + key_len + 1;
    if (value_len) memcpy(v, value, value_len);
    o->key = k;
    o->key_len = key_len;
    o->value = v;
    o->value_len = value_len;
    o->mod_revision = mod_revision;
    o->create_revision = create_revision;
    refl_meta_extract(o->key, key_len, o->value, value_len, &o->meta);
    o->refs = 1;
    o->pool = pool;
    o->node.hash = h;
    o->node.next = NULL;
    refl_htab_insert(&pool->tab, &o->node);
    pool->stats.objects++;
    pool->stats.bytes += key_len + value_len;
    pool->stats.interns++;
    return o;
}

void refl_obj_ref(refl_obj *obj) {
    obj->refs++;
}

void refl_obj_unref(refl_obj *obj) {
    if (!obj || --obj->refs) return;
    refl_objpool *pool = obj->pool;
    refl_htab_remove(&pool->tab, &obj->node);
    pool->stats.objects--;
    pool->stats.bytes -= obj->key_len + obj->value_len;
    pool->stats.frees++;
    free(obj);
}
