/* test_refl_cache.c — the reflector cache under each key mode (the correct one, and the
 * cache-key bugs: name collisions, list/watch key mismatch), UID mode, paged replacement, and
 * the shared object pool (interning, reference counts, frees). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lab.pb-c.h"
#include "refl.h"

/* A lab object at /registry/pods/<ns>/<name> (cluster-scoped /registry/nodes/<name> when ns
 * is empty), with the generation in its payload so every revision has distinct bytes. */
typedef struct obj {
    char key[128];
    uint8_t val[256];
    size_t val_len;
    int64_t mod, create;
} obj;

static void mk(obj *o, const char *ns, const char *name, const char *uid, int64_t create,
               int64_t mod) {
    Relistlab__LabObject m = RELISTLAB__LAB_OBJECT__INIT;
    char payload[32];
    snprintf(payload, sizeof payload, "gen-%lld", (long long)mod);
    m.resource = *ns ? "pods" : "nodes";
    m.namespace_ = (char *)ns;
    m.name = (char *)name;
    m.uid = (char *)uid;
    m.payload.data = (uint8_t *)payload;
    m.payload.len = strlen(payload);
    if (*ns)
        snprintf(o->key, sizeof o->key, "/registry/pods/%s/%s", ns, name);
    else
        snprintf(o->key, sizeof o->key, "/registry/nodes/%s", name);
    o->val_len = relistlab__lab_object__get_packed_size(&m);
    assert_true(o->val_len <= sizeof o->val);
    relistlab__lab_object__pack(&m, o->val);
    o->create = create;
    o->mod = mod;
}

static refl_kv kv_of(const obj *o) {
    refl_kv kv = {o->key, strlen(o->key), o->val, o->val_len, o->mod, o->create};
    return kv;
}

static refl_apply_result ev(refl_cache *c, refl_event_type t, const obj *o) {
    refl_event e = {t, o->key, strlen(o->key), o->val, o->val_len, o->mod, o->create};
    return refl_cache_apply(c, &e);
}

/* A DELETED event without prev_kv: only the key is known. */
static refl_apply_result del_bare(refl_cache *c, const obj *o, int64_t rev) {
    refl_event e = {REFL_EV_DELETED, o->key, strlen(o->key), NULL, 0, rev, 0};
    return refl_cache_apply(c, &e);
}

static const refl_cache_entry *get(const refl_cache *c, const char *k) {
    return refl_cache_get(c, k, strlen(k));
}

static void test_pool_interning(void **state) {
    (void)state;
    refl_objpool *pool = refl_objpool_new();
    obj a, a2, b;
    mk(&a, "ns", "a", "u1", 5, 7);
    mk(&a2, "ns", "a", "u1", 5, 9);
    mk(&b, "ns", "b", "u2", 6, 6);
    refl_obj *o1 = refl_obj_intern(pool, a.key, strlen(a.key), a.val, a.val_len, 7, 5);
    refl_obj *o2 = refl_obj_intern(pool, a.key, strlen(a.key), a.val, a.val_len, 7, 5);
    assert_ptr_equal(o1, o2);
    assert_int_equal(o1->refs, 2);
    assert_string_equal(o1->key, a.key);
    assert_int_equal(o1->create_revision, 5);
    assert_true(o1->meta.name.n == 1 && o1->meta.name.p[0] == 'a');
    assert_true(o1->meta.name.p >= (const char *)o1->value); /* slices into its own copy */
    /* another revision of the same key is another object */
    refl_obj *o3 = refl_obj_intern(pool, a2.key, strlen(a2.key), a2.val, a2.val_len, 9, 5);
    assert_ptr_not_equal(o3, o1);
    /* same (key, mod_revision) but other bytes (another server): never shared */
    refl_obj *o4 = refl_obj_intern(pool, a.key, strlen(a.key), b.val, b.val_len, 7, 5);
    assert_ptr_not_equal(o4, o1);
    assert_ptr_equal(refl_obj_find(pool, a.key, strlen(a.key), a.val, a.val_len, 7), o1);
    assert_null(refl_obj_find(pool, b.key, strlen(b.key), b.val, b.val_len, 6));
    refl_objpool_stats st = refl_objpool_get_stats(pool);
    assert_int_equal(st.objects, 3);
    assert_int_equal(st.interns, 4);
    assert_int_equal(st.shared_hits, 1);
    assert_int_equal(st.bytes, 3 * strlen(a.key) + a.val_len + a2.val_len + b.val_len);
    refl_obj_unref(o1);
    assert_int_equal(refl_objpool_get_stats(pool).objects, 3);
    refl_obj_unref(o2);
    refl_obj_unref(o3);
    refl_obj_unref(o4);
    refl_obj_unref(NULL);
    st = refl_objpool_get_stats(pool);
    assert_int_equal(st.objects, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.frees, 3);
    assert_null(refl_obj_find(pool, a.key, strlen(a.key), a.val, a.val_len, 7));
    /* an empty value is fine */
    refl_obj *e = refl_obj_intern(pool, "/k", 2, NULL, 0, 1, 1);
    assert_non_null(e);
    assert_int_equal(e->value_len, 0);
    assert_string_equal(e->meta.name.p, "/k");
    refl_obj_unref(e);
    assert_int_equal(refl_objpool_free(pool), 0);
}

/* A thousand caches of one prefix hold one copy of each object; it goes with the last one. */
static void test_pool_shared_by_caches(void **state) {
    (void)state;
    enum { NOBJ = 50, NCACHE = 1000 };
    refl_objpool *pool = refl_objpool_new();
    static obj objs[NOBJ];
    refl_kv kvs[NOBJ];
    size_t bytes = 0;
    for (int i = 0; i < NOBJ; i++) {
        char name[16];
        snprintf(name, sizeof name, "o-%d", i);
        mk(&objs[i], "ns", name, name, i + 1, i + 1);
        kvs[i] = kv_of(&objs[i]);
        bytes += strlen(objs[i].key) + objs[i].val_len;
    }
    refl_cache **caches = calloc(NCACHE, sizeof(*caches));
    for (int i = 0; i < NCACHE; i++) {
        caches[i] = refl_cache_new(pool, (refl_key_mode)(i % 4));
        assert_int_equal(refl_cache_replace(caches[i], kvs, NOBJ, 100), 0);
    }
    refl_objpool_stats st = refl_objpool_get_stats(pool);
    assert_int_equal(st.objects, NOBJ);
    assert_int_equal(st.bytes, bytes);
    assert_int_equal(st.shared_hits, (uint64_t)NOBJ * (NCACHE - 1));
    /* a watch event seen by every cache is one new object, and frees the old revision */
    obj m;
    mk(&m, "ns", "o-0", "o-0", 1, 101);
    for (int i = 0; i < NCACHE; i++) {
        refl_apply_result r = ev(caches[i], REFL_EV_MODIFIED, &m);
        if (i % 4 == REFL_KEY_MISMATCH)
            assert_int_equal(r, REFL_APPLY_MISS);
        else
            assert_int_equal(r, REFL_APPLY_UPDATED);
    }
    st = refl_objpool_get_stats(pool);
    assert_int_equal(st.objects, NOBJ + 1); /* old o-0 still held by the MISMATCH caches */
    const refl_cache_entry *e0 = get(caches[0], "ns/o-0");
    const refl_cache_entry *e1 = get(caches[1], "o-0");
    assert_ptr_equal(e0->obj, e1->obj);
    assert_int_equal(e0->obj->refs, NCACHE - NCACHE / 4);
    for (int i = 0; i < NCACHE; i++)
        refl_cache_free(caches[i]);
    free(caches);
    st = refl_objpool_get_stats(pool);
    assert_int_equal(st.objects, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(refl_objpool_free(pool), 0);
}

static void test_namespaced(void **state) {
    (void)state;
    refl_objpool *pool = refl_objpool_new();
    refl_cache *c = refl_cache_new(pool, REFL_KEY_NAMESPACED);
    obj aw, bw, ad, n1;
    mk(&aw, "a", "web-0", "u1", 2, 2);
    mk(&bw, "b", "web-0", "u2", 3, 3);
    mk(&ad, "a", "db-0", "u3", 4, 4);
    mk(&n1, "", "node-1", "u4", 5, 5);
    refl_kv kvs[] = {kv_of(&ad), kv_of(&aw), kv_of(&bw), kv_of(&n1)};
    assert_int_equal(refl_cache_replace(c, kvs, 4, 10), 0);
    assert_int_equal(refl_cache_count(c), 4);
    assert_int_equal(refl_cache_revision(c), 10);
    assert_non_null(get(c, "a/web-0"));
    assert_non_null(get(c, "b/web-0"));
    assert_non_null(get(c, "node-1")); /* cluster-scoped: just the name */
    assert_null(get(c, "web-0"));

    obj aw2;
    mk(&aw2, "a", "web-0", "u1", 2, 11);
    assert_int_equal(ev(c, REFL_EV_MODIFIED, &aw2), REFL_APPLY_UPDATED);
    assert_int_equal(get(c, "a/web-0")->obj->mod_revision, 11);
    assert_int_equal(get(c, "b/web-0")->obj->mod_revision, 3);
    assert_int_equal(refl_cache_revision(c), 11);
    bw.mod = 12;
    assert_int_equal(ev(c, REFL_EV_DELETED, &bw), REFL_APPLY_DELETED);
    assert_null(get(c, "b/web-0"));
    assert_non_null(get(c, "a/web-0"));
    /* deletes without prev_kv work from the key */
    assert_int_equal(del_bare(c, &ad, 13), REFL_APPLY_DELETED);
    /* ADDED inserts; ADDED of an existing key overwrites */
    obj cx;
    mk(&cx, "c", "x", "u5", 14, 14);
    assert_int_equal(ev(c, REFL_EV_ADDED, &cx), REFL_APPLY_INSERTED);
    assert_int_equal(ev(c, REFL_EV_ADDED, &cx), REFL_APPLY_UPDATED);
    /* a miss: MODIFIED / DELETED of a key not in the cache leave it unchanged */
    obj gone;
    mk(&gone, "z", "gone", "u9", 15, 16);
    assert_int_equal(ev(c, REFL_EV_MODIFIED, &gone), REFL_APPLY_MISS);
    assert_int_equal(ev(c, REFL_EV_DELETED, &gone), REFL_APPLY_MISS);
    assert_null(get(c, "z/gone"));
    assert_int_equal(refl_cache_revision(c), 16); /* the stream moved on */
    assert_int_equal(refl_cache_count(c), 3);
    refl_cache_stats st = refl_cache_get_stats(c);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.foreign, 0);
    assert_int_equal(st.inserted, 1);
    assert_int_equal(st.updated, 2);
    assert_int_equal(st.deleted, 2);
    assert_int_equal(st.replaces, 1);
    assert_int_equal(st.collapsed, 0);
    refl_cache_free(c);
    assert_int_equal(refl_objpool_free(pool), 0);
}

static void test_name_collisions(void **state) {
    (void)state;
    refl_objpool *pool = refl_objpool_new();
    refl_cache *c = refl_cache_new(pool, REFL_KEY_NAME);
    obj aw, bw, cw, ad, bd;
    mk(&aw, "a", "web-0", "u1", 2, 2);
    mk(&bw, "b", "web-0", "u2", 3, 3);
    mk(&cw, "c", "web-0", "u3", 4, 4);
    mk(&ad, "a", "db-0", "u4", 5, 5);
    mk(&bd, "b", "db-0", "u5", 6, 6);
    /* etcd lists in key order: the last of each name wins; 5 objects collapse into 2 */
    refl_kv kvs[] = {kv_of(&ad), kv_of(&aw), kv_of(&bd), kv_of(&bw), kv_of(&cw)};
    assert_int_equal(refl_cache_replace(c, kvs, 5, 10), 0);
    assert_int_equal(refl_cache_count(c), 2);
    assert_int_equal(refl_cache_get_stats(c).collapsed, 3);
    assert_string_equal(get(c, "web-0")->obj->key, cw.key);
    assert_string_equal(get(c, "db-0")->obj->key, bd.key);

    /* a/web-0 modified: overwrites c/web-0's entry (a hit, silently foreign) */
    aw.mod = 11;
    assert_int_equal(ev(c, REFL_EV_MODIFIED, &aw), REFL_APPLY_UPDATED);
    assert_string_equal(get(c, "web-0")->obj->key, aw.key);
    assert_int_equal(refl_cache_get_stats(c).foreign, 1);
    /* deleting b/web-0 removes the only web-0 entry: a's and c's copies are gone too */
    bw.mod = 12;
    assert_int_equal(ev(c, REFL_EV_DELETED, &bw), REFL_APPLY_DELETED);
    assert_null(get(c, "web-0"));
    assert_int_equal(refl_cache_count(c), 1);
    /* ... so the real deletion of a/web-0 later misses */
    aw.mod = 13;
    assert_int_equal(ev(c, REFL_EV_DELETED, &aw), REFL_APPLY_MISS);

    /* two ADDs of one name in different namespaces overwrite; deleting one removes both */
    obj ax, bx;
    mk(&ax, "a", "x", "u6", 14, 14);
    mk(&bx, "b", "x", "u7", 15, 15);
    assert_int_equal(ev(c, REFL_EV_ADDED, &ax), REFL_APPLY_INSERTED);
    assert_int_equal(ev(c, REFL_EV_ADDED, &bx), REFL_APPLY_UPDATED);
    assert_int_equal(refl_cache_count(c), 2);
    ax.mod = 16;
    assert_int_equal(ev(c, REFL_EV_DELETED, &ax), REFL_APPLY_DELETED);
    assert_null(get(c, "x"));
    bx.mod = 17;
    assert_int_equal(ev(c, REFL_EV_DELETED, &bx), REFL_APPLY_MISS);
    assert_int_equal(refl_cache_get_stats(c).foreign, 4); /* web-0 twice, x twice */
    refl_cache_free(c);
    assert_int_equal(refl_objpool_free(pool), 0);
}

static void test_mismatch(void **state) {
    (void)state;
    refl_objpool *pool = refl_objpool_new();
    refl_cache *c = refl_cache_new(pool, REFL_KEY_MISMATCH);
    enum { N = 10 };
    obj objs[N], node;
    refl_kv kvs[N + 1];
    for (int i = 0; i < N; i++) {
        char ns[16], name[16];
        snprintf(ns, sizeof ns, "ns-%d", i % 3);
        snprintf(name, sizeof name, "obj-%d", i);
        mk(&objs[i], ns, name, name, i + 1, i + 1);
        kvs[i] = kv_of(&objs[i]);
    }
    mk(&node, "", "node-1", "n", 20, 20);
    kvs[N] = kv_of(&node);
    assert_int_equal(refl_cache_replace(c, kvs, N + 1, 30), 0);
    /* filled by name */
    assert_non_null(get(c, "obj-3"));
    assert_null(get(c, "ns-0/obj-3"));
    /* every MODIFIED and DELETED of a listed object misses, and changes nothing */
    int misses = 0;
    int64_t rev = 30;
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < N; i++) {
            obj m = objs[i];
            m.mod = ++rev;
            refl_apply_result r = ev(c, round == 9 ? REFL_EV_DELETED : REFL_EV_MODIFIED, &m);
            assert_int_equal(r, REFL_APPLY_MISS);
            misses++;
        }
    }
    assert_int_equal(refl_cache_get_stats(c).misses, misses);
    assert_int_equal(refl_cache_count(c), N + 1);
    assert_int_equal(get(c, "obj-3")->obj->mod_revision, 4); /* stale forever */
    /* cluster-scoped objects have one key in both constructions: no miss */
    node.mod = ++rev;
    assert_int_equal(ev(c, REFL_EV_MODIFIED, &node), REFL_APPLY_UPDATED);
    /* an ADDED object goes under namespace/name, so its own events hit... */
    obj fresh;
    rev++;
    mk(&fresh, "ns-1", "fresh", "f", rev, rev);
    assert_int_equal(ev(c, REFL_EV_ADDED, &fresh), REFL_APPLY_INSERTED);
    assert_non_null(get(c, "ns-1/fresh"));
    fresh.mod = ++rev;
    assert_int_equal(ev(c, REFL_EV_MODIFIED, &fresh), REFL_APPLY_UPDATED);
    /* ...until a relist re-keys it by name; then it misses like the others */
    refl_kv kvs2[] = {kv_of(&objs[0]), kv_of(&fresh)};
    assert_int_equal(refl_cache_replace(c, kvs2, 2, ++rev), 0);
    assert_non_null(get(c, "fresh"));
    assert_null(get(c, "ns-1/fresh"));
    fresh.mod = ++rev;
    assert_int_equal(ev(c, REFL_EV_MODIFIED, &fresh), REFL_APPLY_MISS);
    /* a GET repair (apply the fetched object as ADDED) stores namespace/name beside the
     * stale name-keyed entry; later events of that object hit */
    assert_int_equal(ev(c, REFL_EV_ADDED, &fresh), REFL_APPLY_INSERTED);
    assert_int_equal(refl_cache_count(c), 3);
    fresh.mod = ++rev;
    assert_int_equal(ev(c, REFL_EV_MODIFIED, &fresh), REFL_APPLY_UPDATED);
    refl_cache_free(c);
    assert_int_equal(refl_objpool_free(pool), 0);
}

static void test_uid(void **state) {
    (void)state;
    refl_objpool *pool = refl_objpool_new();
    refl_cache *c = refl_cache_new(pool, REFL_KEY_UID);
    obj aw, bw;
    mk(&aw, "a", "web-0", "uid-a", 2, 2);
    mk(&bw, "b", "web-0", "uid-b", 3, 3);
    refl_kv kvs[] = {kv_of(&aw), kv_of(&bw)};
    assert_int_equal(refl_cache_replace(c, kvs, 2, 5), 0);
    assert_int_equal(refl_cache_count(c), 2); /* no collision */
    assert_non_null(get(c, "uid-a"));
    aw.mod = 6;
    assert_int_equal(ev(c, REFL_EV_MODIFIED, &aw), REFL_APPLY_UPDATED);
    /* DELETED with prev_kv's value finds the uid */
    bw.mod = 7;
    assert_int_equal(ev(c, REFL_EV_DELETED, &bw), REFL_APPLY_DELETED);
    /* recreated under the same name with a new uid: a new entry, the old one deleted */
    aw.mod = 8;
    assert_int_equal(ev(c, REFL_EV_DELETED, &aw), REFL_APPLY_DELETED);
    obj aw2;
    mk(&aw2, "a", "web-0", "uid-a2", 9, 9);
    assert_int_equal(ev(c, REFL_EV_ADDED, &aw2), REFL_APPLY_INSERTED);
    assert_int_equal(refl_cache_count(c), 1);
    /* without prev_kv a lab object's uid is unknown: the key is used, and misses */
    assert_int_equal(del_bare(c, &aw2, 10), REFL_APPLY_MISS);
    /* non-lab values: the uid is the etcd key, so bare deletes find them */
    refl_event add = {REFL_EV_ADDED, "/registry/cm/x", 14, "text", 4, 11, 11};
    assert_int_equal(refl_cache_apply(c, &add), REFL_APPLY_INSERTED);
    assert_non_null(get(c, "/registry/cm/x"));
    refl_event del = {REFL_EV_DELETED, "/registry/cm/x", 14, NULL, 0, 12, 0};
    assert_int_equal(refl_cache_apply(c, &del), REFL_APPLY_DELETED);
    refl_cache_free(c);
    assert_int_equal(refl_objpool_free(pool), 0);
}

static void test_replace_paged(void **state) {
    (void)state;
    refl_objpool *pool = refl_objpool_new();
    refl_cache *c = refl_cache_new(pool, REFL_KEY_NAMESPACED);
    obj o[6];
    for (int i = 0; i < 6; i++) {
        char name[8];
        snprintf(name, sizeof name, "p%d", i);
        mk(&o[i], "ns", name, name, i + 1, i + 1);
    }
    refl_kv first[] = {kv_of(&o[0]), kv_of(&o[1])};
    assert_int_equal(refl_cache_replace(c, first, 2, 10), 0);
    /* add outside a replacement is refused */
    refl_kv k2 = kv_of(&o[2]);
    assert_int_equal(refl_cache_replace_add(c, &k2), -1);
    /* a LIST that fails halfway keeps the old contents */
    assert_int_equal(refl_cache_replace_begin(c), 0);
    for (int i = 2; i < 5; i++) {
        refl_kv kv = kv_of(&o[i]);
        assert_int_equal(refl_cache_replace_add(c, &kv), 0);
    }
    assert_int_equal(refl_cache_count(c), 2);
    refl_cache_replace_abort(c);
    assert_int_equal(refl_cache_count(c), 2);
    assert_int_equal(refl_cache_revision(c), 10);
    assert_int_equal(refl_objpool_get_stats(pool).objects, 2);
    /* pages: two adds per page, then end swaps atomically */
    assert_int_equal(refl_cache_replace_begin(c), 0);
    for (int i = 1; i < 6; i++) {
        refl_kv kv = kv_of(&o[i]);
        assert_int_equal(refl_cache_replace_add(c, &kv), 0);
        assert_non_null(get(c, "ns/p0")); /* old contents visible until the end */
    }
    refl_cache_replace_end(c, 20);
    assert_int_equal(refl_cache_count(c), 5);
    assert_null(get(c, "ns/p0"));
    assert_int_equal(refl_cache_revision(c), 20);
    assert_int_equal(refl_objpool_get_stats(pool).objects, 5);
    assert_int_equal(refl_objpool_get_stats(pool).shared_hits, 1); /* p1 reused, not copied */
    /* iteration sees every entry once */
    refl_cache_iter it = {0};
    const refl_cache_entry *e;
    unsigned seen = 0, n = 0;
    while ((e = refl_cache_next(c, &it))) {
        seen |= 1u << (e->key[4] - '0');
        n++;
    }
    assert_int_equal(n, 5);
    assert_int_equal(seen, 0x3e);
    assert_null(refl_cache_next(c, &it)); /* stays at the end */
    /* a begin during a begin restarts; free during a replacement releases both */
    assert_int_equal(refl_cache_replace_begin(c), 0);
    assert_int_equal(refl_cache_replace_add(c, &first[0]), 0);
    assert_int_equal(refl_cache_replace_begin(c), 0);
    refl_cache_replace_end(c, 21);
    assert_int_equal(refl_cache_count(c), 0);
    assert_int_equal(refl_cache_replace(c, first, 2, 22), 0);
    assert_int_equal(refl_cache_replace_begin(c), 0);
    assert_int_equal(refl_cache_replace_add(c, &k2), 0);
    refl_cache_free(c);
    assert_int_equal(refl_objpool_free(pool), 0);
}

/* A random workload: NAMESPACED and UID caches track the server exactly with zero misses;
 * NAME and MISMATCH caches miss or diverge. */
static void test_random_workload(void **state) {
    (void)state;
    enum { NNS = 4, NNAMES = 30, NSLOT = NNS * NNAMES, STEPS = 4000 };
    refl_objpool *pool = refl_objpool_new();
    refl_cache *c[4];
    for (int m = 0; m < 4; m++)
        c[m] = refl_cache_new(pool, (refl_key_mode)m);
    static obj live[NSLOT];
    bool exists[NSLOT] = {0};
    refl_rng rng;
    refl_rng_seed(&rng, 7);
    int64_t rev = 1;
    int uidgen = 0;
    size_t nlive = 0;
    for (int step = 0; step < STEPS; step++) {
        int s = (int)(refl_rng_next(&rng) % NSLOT);
        char ns[8], name[16], uid[16];
        snprintf(ns, sizeof ns, "ns%d", s / NNAMES);
        snprintf(name, sizeof name, "n%d", s % NNAMES);
        rev++;
        refl_event_type t;
        if (!exists[s]) {
            snprintf(uid, sizeof uid, "u%d", ++uidgen);
            mk(&live[s], ns, name, uid, rev, rev);
            exists[s] = true;
            nlive++;
            t = REFL_EV_ADDED;
        } else if (refl_rng_next(&rng) % 4 == 0) {
            live[s].mod = rev; /* prev_kv value, deletion revision */
            exists[s] = false;
            nlive--;
            t = REFL_EV_DELETED;
        } else {
            Relistlab__LabObject *o =
                relistlab__lab_object__unpack(NULL, live[s].val_len, live[s].val);
            snprintf(uid, sizeof uid, "%s", o->uid);
            relistlab__lab_object__free_unpacked(o, NULL);
            mk(&live[s], ns, name, uid, live[s].create, rev);
            t = REFL_EV_MODIFIED;
        }
        for (int m = 0; m < 4; m++)
            ev(c[m], t, &live[s]);
    }
    for (int m = 0; m < 4; m++)
        assert_int_equal(refl_cache_revision(c[m]), rev);
    assert_int_equal(refl_cache_get_stats(c[REFL_KEY_NAMESPACED]).misses, 0);
    assert_int_equal(refl_cache_get_stats(c[REFL_KEY_UID]).misses, 0);
    assert_int_equal(refl_cache_count(c[REFL_KEY_NAMESPACED]), nlive);
    assert_int_equal(refl_cache_count(c[REFL_KEY_UID]), nlive);
    assert_true(refl_cache_count(c[REFL_KEY_NAME]) < nlive);
    assert_true(refl_cache_get_stats(c[REFL_KEY_NAME]).foreign > 0);
    /* no LIST happened, so MISMATCH behaves like NAMESPACED here; after a relist it misses */
    assert_int_equal(refl_cache_get_stats(c[REFL_KEY_MISMATCH]).misses, 0);
    refl_kv *kvs = calloc(NSLOT, sizeof(*kvs));
    size_t n = 0;
    for (int s = 0; s < NSLOT; s++)
        if (exists[s]) kvs[n++] = kv_of(&live[s]);
    assert_int_equal(refl_cache_replace(c[REFL_KEY_MISMATCH], kvs, n, rev), 0);
    assert_int_equal(refl_cache_count(c[REFL_KEY_MISMATCH]), NNAMES);
    for (int s = 0; s < NSLOT; s++) {
        if (!exists[s]) continue;
        live[s].mod = ++rev;
        assert_int_equal(ev(c[REFL_KEY_MISMATCH], REFL_EV_MODIFIED, &live[s]), REFL_APPLY_MISS);
    }
    free(kvs);
    for (int m = 0; m < 4; m++)
        refl_cache_free(c[m]);
    assert_int_equal(refl_objpool_get_stats(pool).objects, 0);
    assert_int_equal(refl_objpool_free(pool), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_interning), cmocka_unit_test(test_pool_shared_by_caches),
        cmocka_unit_test(test_namespaced),     cmocka_unit_test(test_name_collisions),
        cmocka_unit_test(test_mismatch),       cmocka_unit_test(test_uid),
        cmocka_unit_test(test_replace_paged),  cmocka_unit_test(test_random_workload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
