/* refl_cache.c — an informer-style cache reduced to one key function, with the key modes
 * that reproduce the cache-key bug (see refl.h and /work/shared/reflector.md).
 *
 * Entries map a cache key to a shared refl_obj (etcd key, revisions, bytes). A LIST fills a
 * fresh table with the list-time key construction and swaps it in at the end (so a failed
 * LIST keeps the old contents, and unchanged objects are shared, never copied). A watch event
 * is looked up with the event-time construction.
 *
 * MISMATCH, precisely (what a client with `cache[obj.name] = obj` in its list handler and
 * `cache[ns + "/" + name]` in its event handler does):
 *  - LIST stores every object under its name, so a relist collapses same-named objects of
 *    different namespaces, exactly like NAME mode;
 *  - MODIFIED/DELETED of a listed namespaced object look up namespace/name: always a miss.
 *    The cache is left unchanged (the stale name-keyed entry stays); the miss policy decides;
 *  - ADDED of a new object stores it under namespace/name, so later MODIFIED/DELETED events of
 *    that object hit — until the next relist re-keys it by name. A GET repair (apply as ADDED)
 *    likewise stores namespace/name next to the stale name-keyed entry (a duplicate);
 *  - cluster-scoped objects have the same key in both constructions: they never miss.
 * Events advance the cache revision even when they miss: the watch stream moved past them. */
#include "refl_internal.h"

#include <stdlib.h>
#include <string.h>

struct refl_cache {
    refl_objpool *pool;
    refl_key_mode mode;
    refl_htab tab;
    int64_t revision;
    refl_cache_stats stats;
    /* a LIST in progress */
    bool replacing;
    refl_htab next;
    uint64_t next_collapsed;
};

static uint64_t key_hash(const char *key, size_t key_len) {
    return refl_hash_bytes(key, key_len, 0x6b6579);
}

static refl_cache_entry *tab_find(const refl_htab *t, const char *key, size_t key_len) {
    uint64_t h = key_hash(key, key_len);
    for (refl_hnode *n = refl_htab_first(t, h); n; n = refl_htab_next_same(n)) {
        refl_cache_entry *e = REFL_CONTAINER_OF(n, refl_cache_entry, node);
        if (e->key_len == key_len && refl_mem_eq(e->key, key, key_len)) return e;
    }
    return NULL;
}

static refl_cache_entry *entry_new(const char *key, size_t key_len, refl_obj *obj) {
    refl_cache_entry *e = malloc(sizeof(*e) + key_len + 1);
    if (!e) return NULL;
    memcpy(e->key, key, key_len);
    e->key[key_len] = '\0';
    e->key_len = key_len;
    e->obj = obj;
    e->node.hash = key_hash(key, key_len);
    e->node.next = NULL;
    return e;
}

static void tab_clear(refl_htab *t) {
    size_t b = 0;
    refl_hnode *n = refl_htab_next(t, &b, NULL);
    while (n) {
        refl_hnode *next = refl_htab_next(t, &b, n);
        refl_cache_entry *e = REFL_CONTAINER_OF(n, refl_cache_entry, node);
        refl_obj_unref(e->obj);
        free(e);
        n = next;
    }
    refl_htab_fini(t);
}

static bool same_etcd_key(const refl_obj *a, const char *key, size_t key_len) {
    return a->key_len == key_len && refl_mem_eq(a->key, key, key_len);
}

refl_cache *refl_cache_new(refl_objpool *pool, refl_key_mode mode) {
    refl_cache *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->pool = pool;
    c->mode = mode;
    if (refl_htab_init(&c->tab, 16)) {
        free(c);
        return NULL;
    }
    return c;
}

void refl_cache_free(refl_cache *c) {
    if (!c) return;
    refl_cache_replace_abort(c);
    tab_clear(&c->tab);
    free(c);
}

refl_key_mode refl_cache_mode(const refl_cache *c) {
    return c->mode;
}

size_t refl_cache_count(const refl_cache *c) {
    return c->tab.count;
}

int64_t refl_cache_revision(const refl_cache *c) {
    return c->revision;
}

refl_cache_stats refl_cache_get_stats(const refl_cache *c) {
    return c->stats;
}

/* ---- LIST -------------------------------------------------------------------------------- */

int refl_cache_replace_begin(refl_cache *c) {
    refl_cache_replace_abort(c);
    if (refl_htab_init(&c->next, c->tab.count)) return -1;
    c->replacing = true;
    c->next_collapsed = 0;
    return 0;
}

int refl_cache_replace_add(refl_cache *c, const refl_kv *it) {
    if (!c->replacing) return -1;
    refl_obj *obj = refl_obj_intern(c->pool, it->key, it->key_len, it->value, it->value_len,
                                    it->mod_revision, it->create_revision);
    if (!obj) return -1;
    refl_keybuf kb;
    if (refl_keybuf_build(&kb, c->mode, REFL_PHASE_LIST, &obj->meta)) {
        refl_obj_unref(obj);
        return -1;
    }
    int rc = 0;
    refl_cache_entry *e = tab_find(&c->next, kb.p, kb.len);
    if (e) { /* a later item of the same key wins, as in client-go's Replace */
        refl_obj_unref(e->obj);
        e->obj = obj;
        c->next_collapsed++;
    } else if ((e = entry_new(kb.p, kb.len, obj))) {
        refl_htab_insert(&c->next, &e->node);
    } else {
        refl_obj_unref(obj);
        rc = -1;
    }
    refl_keybuf_fini(&kb);
    return rc;
}

void refl_cache_replace_end(refl_cache *c, int64_t list_revision) {
    if (!c->replacing) return;
    tab_clear(&c->tab);
    c->tab = c->next;
    memset(&c->next, 0, sizeof(c->next));
    c->replacing = false;
    c->revision = list_revision;
    c->stats.replaces++;
    c->stats.collapsed += c->next_collapsed;
}

void refl_cache_replace_abort(refl_cache *c) {
    if (!c->replacing) return;
    tab_clear(&c->next);
    c->replacing = false;
}

int refl_cache_replace(refl_cache *c, const refl_kv *items, size_t n, int64_t list_revision) {
    if (refl_cache_replace_begin(c)) return -1;
    for (size_t i = 0; i < n; i++) {
        if (refl_cache_replace_add(c, &items[i])) {
            refl_cache_replace_abort(c);
            return -1;
        }
    }
    refl_cache_replace_end(c, list_revision);
    return 0;
}

/* ---- watch events ------------------------------------------------------------------------ */

static refl_apply_result count(refl_cache *c, refl_apply_result r, int64_t rev) {
    switch (r) {
    case REFL_APPLY_INSERTED:
        c->stats.inserted++;
        break;
    case REFL_APPLY_UPDATED:
        c->stats.updated++;
        break;
    case REFL_APPLY_DELETED:
        c->stats.deleted++;
        break;
    case REFL_APPLY_MISS:
        c->stats.misses++;
        break;
    case REFL_APPLY_ENOMEM:
        return r; /* not applied: the revision must not move past it */
    }
    if (rev > c->revision) c->revision = rev;
    return r;
}

static refl_apply_result apply_delete(refl_cache *c, const refl_event *ev) {
    refl_objmeta meta;
    refl_meta_extract(ev->key, ev->key_len, ev->value, ev->value_len, &meta);
    refl_keybuf kb;
    if (refl_keybuf_build(&kb, c->mode, REFL_PHASE_EVENT, &meta)) return REFL_APPLY_ENOMEM;
    refl_cache_entry *e = tab_find(&c->tab, kb.p, kb.len);
    refl_keybuf_fini(&kb);
    if (!e) return count(c, REFL_APPLY_MISS, ev->mod_revision);
    if (!same_etcd_key(e->obj, ev->key, ev->key_len)) c->stats.foreign++;
    refl_htab_remove(&c->tab, &e->node);
    refl_obj_unref(e->obj);
    free(e);
    return count(c, REFL_APPLY_DELETED, ev->mod_revision);
}

refl_apply_result refl_cache_apply(refl_cache *c, const refl_event *ev) {
    if (ev->type == REFL_EV_DELETED) return apply_delete(c, ev);

    /* Metadata from the pool when another cache already holds this object: decode once. */
    refl_obj *obj =
        refl_obj_find(c->pool, ev->key, ev->key_len, ev->value, ev->value_len, ev->mod_revision);
    refl_objmeta meta;
    if (obj)
        meta = obj->meta;
    else
        refl_meta_extract(ev->key, ev->key_len, ev->value, ev->value_len, &meta);
    refl_keybuf kb;
    if (refl_keybuf_build(&kb, c->mode, REFL_PHASE_EVENT, &meta)) return REFL_APPLY_ENOMEM;
    refl_cache_entry *e = tab_find(&c->tab, kb.p, kb.len);
    refl_apply_result r;
    if (!e && ev->type == REFL_EV_MODIFIED) {
        r = REFL_APPLY_MISS;
        goto out;
    }
    if (obj)
        refl_obj_ref(obj);
    else if (!(obj = refl_obj_intern(c->pool, ev->key, ev->key_len, ev->value, ev->value_len,
                                     ev->mod_revision, ev->create_revision))) {
        r = REFL_APPLY_ENOMEM;
        goto out;
    }
    if (e) {
        if (!same_etcd_key(e->obj, ev->key, ev->key_len)) c->stats.foreign++;
        refl_obj_unref(e->obj);
        e->obj = obj;
        r = REFL_APPLY_UPDATED;
    } else if ((e = entry_new(kb.p, kb.len, obj))) {
        refl_htab_insert(&c->tab, &e->node);
        r = REFL_APPLY_INSERTED;
    } else {
        refl_obj_unref(obj);
        r = REFL_APPLY_ENOMEM;
    }
out:
    refl_keybuf_fini(&kb);
    return count(c, r, ev->mod_revision);
}

/* ---- lookup and iteration ------------------------------------------------------------------ */

const refl_cache_entry *refl_cache_get(const refl_cache *c, const char *key, size_t key_len) {
    return tab_find(&c->tab, key, key_len);
}

const refl_cache_entry *refl_cache_next(const refl_cache *c, refl_cache_iter *it) {
    refl_hnode *n = refl_htab_next(&c->tab, &it->bucket, it->node);
    it->node = n;
    return n ? REFL_CONTAINER_OF(n, refl_cache_entry, node) : NULL;
}
