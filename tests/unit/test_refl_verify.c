/* test_refl_verify.c — verification of caches against the server's truth (each class of
 * difference, under the key modes that produce them, and the human-readable listing) and the
 * JSON summary (shape, totals, escaping). */
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

typedef struct obj {
    char key[128];
    uint8_t val[256];
    size_t val_len;
    int64_t mod, create;
} obj;

static void mk(obj *o, const char *ns, const char *name, int64_t create, int64_t mod) {
    Relistlab__LabObject m = RELISTLAB__LAB_OBJECT__INIT;
    char uid[64];
    snprintf(uid, sizeof uid, "uid-%s-%s", ns, name);
    m.resource = "pods";
    m.namespace_ = (char *)ns;
    m.name = (char *)name;
    m.uid = uid;
    snprintf(o->key, sizeof o->key, "/registry/pods/%s/%s", ns, name);
    o->val_len = relistlab__lab_object__get_packed_size(&m);
    relistlab__lab_object__pack(&m, o->val);
    o->create = create;
    o->mod = mod;
}

static refl_kv kv_of(const obj *o) {
    refl_kv kv = {o->key, strlen(o->key), o->val, o->val_len, o->mod, o->create};
    return kv;
}

static void apply(refl_cache *c, refl_event_type t, const obj *o) {
    refl_event e = {t, o->key, strlen(o->key), o->val, o->val_len, o->mod, o->create};
    refl_cache_apply(c, &e);
}

static void test_clean(void **state) {
    (void)state;
    refl_objpool *pool = refl_objpool_new();
    obj o[4];
    mk(&o[0], "a", "web-0", 1, 1);
    mk(&o[1], "a", "web-1", 2, 2);
    mk(&o[2], "b", "db-0", 3, 3);
    mk(&o[3], "b", "db-1", 4, 4);
    refl_kv kvs[4];
    for (int i = 0; i < 4; i++)
        kvs[i] = kv_of(&o[i]);
    refl_truth *t = refl_truth_new(kvs, 4, 4);
    assert_int_equal(refl_truth_count(t), 4);
    for (int m = 0; m < 4; m++) { /* no shared names: every mode is right after a LIST */
        refl_cache *c = refl_cache_new(pool, (refl_key_mode)m);
        refl_cache_replace(c, kvs, 4, 4);
        refl_verify_report r;
        assert_int_equal(refl_verify(t, c, &r), 0);
        assert_int_equal(r.truth_objects, 4);
        assert_int_equal(r.cache_entries, 4);
        assert_int_equal(r.divergent, 0);
        assert_int_equal(r.collided, 0);
        assert_int_equal(r.ahead, 0);
        assert_string_equal(r.listing, "");
        /* MISMATCH's listed objects sit where its event lookups will not look */
        assert_int_equal(r.misplaced, m == REFL_KEY_MISMATCH ? 4 : 0);
        refl_cache_free(c);
    }
    refl_truth_free(t);
    assert_int_equal(refl_objpool_free(pool), 0);
}

static void test_each_difference(void **state) {
    (void)state;
    refl_objpool *pool = refl_objpool_new();
    obj w0, w1, d0, gone;
    mk(&w0, "a", "web-0", 1, 1);
    mk(&w1, "a", "web-1", 2, 2);
    mk(&d0, "b", "db-0", 3, 3);
    mk(&gone, "b", "gone", 4, 4);
    refl_cache *c = refl_cache_new(pool, REFL_KEY_NAMESPACED);
    refl_kv listed[] = {kv_of(&w0), kv_of(&w1), kv_of(&gone)};
    refl_cache_replace(c, listed, 3, 4);
    /* the server moves on: web-0 modified (the cache missed it), db-0 created (missed),
     * gone deleted (missed); web-1 modified and the cache got it, then even a newer one */
    obj w0b = w0, w1b = w1, w1c = w1;
    w0b.mod = 5;
    w1b.mod = 6;
    w1c.mod = 9;
    apply(c, REFL_EV_MODIFIED, &w1c);
    refl_kv truth[] = {kv_of(&w0b), kv_of(&w1b), kv_of(&d0)};
    refl_truth *t = refl_truth_new(truth, 3, 8);
    refl_verify_report r;
    assert_int_equal(refl_verify(t, c, &r), 0);
    assert_int_equal(r.revision, 8);
    assert_int_equal(r.missing, 1);
    assert_int_equal(r.extra, 1);
    assert_int_equal(r.stale, 1);
    assert_int_equal(r.ahead, 1);
    assert_int_equal(r.collided, 0);
    assert_int_equal(r.divergent, 3);
    assert_non_null(strstr(r.listing, "missing  /registry/pods/b/db-0 mod_revision 3\n"));
    assert_non_null(strstr(r.listing, "stale    /registry/pods/a/web-0 cache mod_revision 1 < "
                                      "server 5\n"));
    assert_non_null(strstr(r.listing, "extra    /registry/pods/b/gone mod_revision 4 (cache key "
                                      "b/gone): not on the server\n"));
    assert_null(strstr(r.listing, "more"));
    /* the listing order is missing, stale, extra */
    assert_true(strstr(r.listing, "missing") < strstr(r.listing, "stale"));
    assert_true(strstr(r.listing, "stale") < strstr(r.listing, "extra"));
    refl_truth_free(t);
    refl_cache_free(c);
    assert_int_equal(refl_objpool_free(pool), 0);
}

static void test_name_mode_collisions(void **state) {
    (void)state;
    refl_objpool *pool = refl_objpool_new();
    obj a, b, cc, u;
    mk(&a, "a", "web-0", 1, 1);
    mk(&b, "b", "web-0", 2, 2);
    mk(&cc, "c", "web-0", 3, 3);
    mk(&u, "a", "unique", 4, 4);
    refl_kv kvs[] = {kv_of(&a), kv_of(&b), kv_of(&cc), kv_of(&u)};
    refl_truth *t = refl_truth_new(kvs, 4, 4);
    refl_verify_report r;
    /* NAME: three objects share "web-0"; the LIST keeps one of them */
    refl_cache *c = refl_cache_new(pool, REFL_KEY_NAME);
    refl_cache_replace(c, kvs, 4, 4);
    assert_int_equal(refl_verify(t, c, &r), 0);
    assert_int_equal(r.cache_entries, 2);
    assert_int_equal(r.collided, 3);
    assert_int_equal(r.missing, 2);
    assert_int_equal(r.divergent, 2);
    assert_non_null(strstr(r.listing, "collided /registry/pods/a/web-0 and /registry/pods/b/web-0 "
                                      "share a cache key\n"));
    refl_cache_free(c);
    /* MISMATCH collides like NAME at LIST time */
    c = refl_cache_new(pool, REFL_KEY_MISMATCH);
    refl_cache_replace(c, kvs, 4, 4);
    assert_int_equal(refl_verify(t, c, &r), 0);
    assert_int_equal(r.collided, 3);
    assert_int_equal(r.missing, 2);
    assert_int_equal(r.misplaced, 2);
    /* a GET repair of a/web-0 (applied as ADDED) files it under a/web-0: no longer missing */
    apply(c, REFL_EV_ADDED, &a);
    assert_int_equal(refl_verify(t, c, &r), 0);
    assert_int_equal(r.missing, 1);
    assert_int_equal(r.extra, 0);
    /* repairing c/web-0 too: the name-keyed entry already holds c, so now it is held twice */
    apply(c, REFL_EV_ADDED, &cc);
    assert_int_equal(refl_verify(t, c, &r), 0);
    assert_int_equal(r.extra, 1);
    assert_non_null(strstr(r.listing, "duplicate of another entry"));
    refl_cache_free(c);
    /* NAMESPACED and UID: no collision */
    for (int m = 0; m < 4; m += 3) {
        c = refl_cache_new(pool, (refl_key_mode)m);
        refl_cache_replace(c, kvs, 4, 4);
        assert_int_equal(refl_verify(t, c, &r), 0);
        assert_int_equal(r.collided, 0);
        assert_int_equal(r.divergent, 0);
        refl_cache_free(c);
    }
    refl_truth_free(t);
    assert_int_equal(refl_objpool_free(pool), 0);
}

static void test_listing_truncated(void **state) {
    (void)state;
    refl_objpool *pool = refl_objpool_new();
    enum { N = 30 };
    obj o[N];
    refl_kv kvs[N];
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "o-%02d", i);
        mk(&o[i], "ns", name, i + 1, i + 1);
        kvs[i] = kv_of(&o[i]);
    }
    refl_truth *t = refl_truth_new(kvs, N, N);
    refl_cache *c = refl_cache_new(pool, REFL_KEY_NAMESPACED); /* empty: all missing */
    refl_verify_report r;
    assert_int_equal(refl_verify(t, c, &r), 0);
    assert_int_equal(r.missing, N);
    int lines = 0;
    for (const char *p = r.listing; (p = strchr(p, '\n')); p++)
        lines++;
    assert_int_equal(lines, REFL_VERIFY_LISTING_ITEMS + 1);
    assert_non_null(strstr(r.listing, "missing  /registry/pods/ns/o-00 "));
    assert_non_null(strstr(r.listing, "... and 22 more\n"));
    assert_true(strlen(r.listing) < REFL_VERIFY_LISTING_MAX);
    refl_cache_free(c);
    refl_truth_free(t);
    /* an empty truth against an empty cache; odd bytes in keys stay printable */
    t = refl_truth_new(NULL, 0, 1);
    c = refl_cache_new(pool, REFL_KEY_UID);
    refl_event e = {REFL_EV_ADDED, "/k\n\x01", 4, "v", 1, 2, 2};
    refl_cache_apply(c, &e);
    assert_int_equal(refl_verify(t, c, &r), 0);
    assert_int_equal(r.extra, 1);
    assert_non_null(strstr(r.listing, "extra    /k?? mod_revision 2"));
    refl_cache_free(c);
    refl_truth_free(t);
    assert_int_equal(refl_objpool_free(pool), 0);
}

static void test_json_summary(void **state) {
    (void)state;
    refl_watcher_row rows[2] = {0};
    rows[0].name = "w-0";
    rows[0].prefix = "/registry/pods/";
    rows[0].key_mode = refl_key_mode_name(REFL_KEY_MISMATCH);
    rows[0].miss_policy = refl_miss_policy_name(REFL_MISS_RELIST);
    rows[0].counters.lists = 3;
    rows[0].counters.list_pages = 7;
    rows[0].counters.list_bytes = 1000;
    rows[0].counters.watches = 2;
    rows[0].counters.events = 50;
    rows[0].counters.misses = 40;
    rows[0].counters.relists.miss = 2;
    rows[0].counters.relists.compacted = 1;
    rows[0].counters.gets = 4;
    rows[0].counters.backoff_seconds = 1.25;
    rows[0].counters.ratelimit_waits = 6;
    rows[0].counters.divergent = 5;
    rows[1].name = "q\"b\\s\n\x01 caf\xc3\xa9 \xff";
    rows[1].counters.lists = 1;
    rows[1].counters.relists.error = 3;
    rows[1].counters.backoff_seconds = 0.5;
    size_t len = 0;
    char *js = refl_summary_json(rows, 2, &len);
    assert_non_null(js);
    assert_int_equal(len, strlen(js));
    const char *want =
        "{\n"
        "  \"totals\": {\"watchers\": 2, \"divergent_watchers\": 1, \"lists\": 4, "
        "\"list_pages\": 7, \"list_bytes\": 1000, \"watches\": 2, \"events\": 50, \"misses\": 40, "
        "\"relists\": {\"miss\": 2, \"compacted\": 1, \"error\": 3}, \"gets\": 4, "
        "\"backoff_seconds\": 1.750, \"ratelimit_waits\": 6, \"divergent\": 5},\n"
        "  \"watchers\": [\n"
        "    {\"name\": \"w-0\", \"prefix\": \"/registry/pods/\", \"key_mode\": \"mismatch\", "
        "\"miss_policy\": \"relist\", \"lists\": 3, \"list_pages\": 7, \"list_bytes\": 1000, "
        "\"watches\": 2, \"events\": 50, \"misses\": 40, \"relists\": {\"miss\": 2, "
        "\"compacted\": 1, \"error\": 0}, \"gets\": 4, \"backoff_seconds\": 1.250, "
        "\"ratelimit_waits\": 6, \"divergent\": 5},\n"
        "    {\"name\": \"q\\\"b\\\\s\\n\\u0001 caf\xc3\xa9 \\ufffd\", \"lists\": 1, "
        "\"list_pages\": 0, \"list_bytes\": 0, \"watches\": 0, \"events\": 0, \"misses\": 0, "
        "\"relists\": {\"miss\": 0, \"compacted\": 0, \"error\": 3}, \"gets\": 0, "
        "\"backoff_seconds\": 0.500, \"ratelimit_waits\": 0, \"divergent\": 0}\n"
        "  ]\n"
        "}\n";
    assert_string_equal(js, want);
    free(js);
    js = refl_summary_json(NULL, 0, NULL);
    assert_non_null(js);
    assert_non_null(strstr(js, "\"watchers\": 0,"));
    assert_non_null(strstr(js, "\"watchers\": []\n}\n"));
    free(js);

    refl_counters sum = {0};
    refl_counters_add(&sum, &rows[0].counters);
    refl_counters_add(&sum, &rows[1].counters);
    assert_int_equal(sum.lists, 4);
    assert_int_equal(sum.relists.error, 3);
    assert_true(sum.backoff_seconds == 1.75);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_each_difference),
        cmocka_unit_test(test_name_mode_collisions),
        cmocka_unit_test(test_listing_truncated),
        cmocka_unit_test(test_json_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
