/* test_kv_open.c — opening stores: creation of missing directories, persistence across close and
 * reopen (revision, keys, compaction state, ids), physical compaction resumed after a restart,
 * and clear errors (never a crash) for foreign directories, non-LMDB or truncated data files,
 * LMDB files of other programs and stores of another layout version. The foreign LMDB files are
 * made with liblmdb directly, as another program would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lmdb.h>

#include "kv.h"
#include "testutil.h"

static ProtobufCBinaryData B(const char *s) {
    ProtobufCBinaryData b = {strlen(s), (uint8_t *)s};
    return b;
}

static void put(kv_store *s, const char *k, const char *v) {
    kv_arena *a = kv_arena_new();
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    r.key = B(k);
    r.value = B(v);
    Etcdserverpb__PutResponse *resp;
    kv_err e;
    assert_int_equal(kv_put(s, &r, a, &resp, &e), KV_OK);
    kv_arena_free(a);
}

static void del(kv_store *s, const char *k) {
    kv_arena *a = kv_arena_new();
    Etcdserverpb__DeleteRangeRequest r = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    r.key = B(k);
    Etcdserverpb__DeleteRangeResponse *resp;
    kv_err e;
    assert_int_equal(kv_delete_range(s, &r, a, &resp, &e), KV_OK);
    kv_arena_free(a);
}

/* Value of key at rev, "" when absent, "ERR" on error. */
static const char *get(kv_store *s, const char *k, int64_t rev, char *buf, size_t n) {
    kv_arena *a = kv_arena_new();
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key = B(k);
    r.revision = rev;
    Etcdserverpb__RangeResponse *resp;
    kv_err e;
    if (kv_range(s, &r, a, &resp, &e) != KV_OK)
        snprintf(buf, n, "ERR");
    else if (resp->n_kvs == 0)
        snprintf(buf, n, "%s", "");
    else
        snprintf(buf, n, "%.*s", (int)resp->kvs[0]->value.len,
                 (const char *)resp->kvs[0]->value.data);
    kv_arena_free(a);
    return buf;
}

static char *path_in(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    fclose(fp);
}

static void test_missing_dir_created(void **state) {
    (void)state;
    char *base = tu_mkdtemp("kv-open");
    char *dir = path_in(base, "a/b/store");
    kv_store *s;
    kv_err e;
    kv_options o = {.no_sync = true};
    assert_int_equal(kv_open(dir, &o, &s, &e), KV_OK);
    kv_status st;
    kv_status_get(s, &st);
    assert_int_equal(st.revision, 1);
    assert_true(st.cluster_id != 0);
    assert_true(st.member_id != 0);
    assert_true(st.db_size > 0);
    assert_true(st.db_size_in_use > 0);
    kv_close(s);
    free(dir);
    tu_rmtree(base);
}

static void test_restart_persistence(void **state) {
    (void)state;
    char *dir = tu_mkdtemp("kv-open");
    kv_store *s;
    kv_err e;
    kv_options o = {.cluster_id = 0xabc, .member_id = 0xdef}; /* durable commits */
    assert_int_equal(kv_open(dir, &o, &s, &e), KV_OK);
    put(s, "a", "1"); /* 2 */
    put(s, "b", "1"); /* 3 */
    put(s, "a", "2"); /* 4 */
    del(s, "b");      /* 5 */
    put(s, "c", "1"); /* 6 */
    assert_int_equal(kv_compact(s, 4, &e), KV_OK);
    kv_close(s);

    kv_options other = {.cluster_id = 1, .member_id = 2}; /* ignored for an existing store */
    assert_int_equal(kv_open(dir, &other, &s, &e), KV_OK);
    kv_status st;
    kv_status_get(s, &st);
    assert_int_equal(st.revision, 6);
    assert_int_equal(st.compact_revision, 4);
    assert_true(st.compact_finished < 4);
    assert_int_equal(st.cluster_id, 0xabc);
    assert_int_equal(st.member_id, 0xdef);
    assert_int_equal(st.keys, 2);
    char buf[32];
    assert_string_equal(get(s, "a", 0, buf, sizeof(buf)), "2");
    assert_string_equal(get(s, "b", 0, buf, sizeof(buf)), "");
    assert_string_equal(get(s, "b", 4, buf, sizeof(buf)), "1");
    assert_string_equal(get(s, "a", 3, buf, sizeof(buf)), "ERR"); /* compacted */
    put(s, "d", "1");
    kv_status_get(s, &st);
    assert_int_equal(st.revision, 7); /* revisions continue */
    bool done = false;
    while (!done)
        assert_int_equal(kv_compact_step(s, 100, &done, &e), KV_OK);
    kv_close(s);
    assert_int_equal(kv_open(dir, NULL, &s, &e), KV_OK);
    kv_status_get(s, &st);
    assert_int_equal(st.compact_finished, 4);
    assert_int_equal(st.revision, 7);
    kv_close(s);
    tu_rmtree(dir);
}

static void test_compaction_resumes_after_restart(void **state) {
    (void)state;
    char *dir = tu_mkdtemp("kv-open");
    kv_store *s;
    kv_err e;
    kv_options o = {.no_sync = true};
    assert_int_equal(kv_open(dir, &o, &s, &e), KV_OK);
    char k[16], v[16];
    for (int round = 0; round < 5; round++)
        for (int i = 0; i < 40; i++) {
            snprintf(k, sizeof(k), "key%03d", i);
            snprintf(v, sizeof(v), "r%d", round);
            put(s, k, v);
        }
    for (int i = 0; i < 40; i += 4) {
        snprintf(k, sizeof(k), "key%03d", i);
        del(s, k);
    }
    kv_status st;
    kv_status_get(s, &st);
    int64_t at = st.revision;
    put(s, "key001", "after");
    assert_int_equal(kv_compact(s, at, &e), KV_OK);
    bool done = false;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kv_compact_step(s, 10, &done, &e), KV_OK);
        assert_false(done);
    }
    kv_close(s);

    assert_int_equal(kv_open(dir, &o, &s, &e), KV_OK);
    kv_status_get(s, &st);
    assert_int_equal(st.compact_revision, at);
    assert_true(st.compact_finished < at);
    int steps = 0;
    while (!done) {
        assert_int_equal(kv_compact_step(s, 10, &done, &e), KV_OK);
        assert_true(++steps < 1000);
    }
    assert_true(steps >= 10); /* ~200 obsolete records, at most 10 per step */
    kv_status_get(s, &st);
    assert_int_equal(st.compact_finished, at);
    /* every key's state at the compact revision survives */
    char buf[32];
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof(k), "key%03d", i);
        const char *want = i % 4 == 0 ? "" : "r4";
        assert_string_equal(get(s, k, at, buf, sizeof(buf)), want);
    }
    assert_string_equal(get(s, "key001", 0, buf, sizeof(buf)), "after");
    assert_string_equal(get(s, "key001", at - 1, buf, sizeof(buf)), "ERR");
    kv_close(s);
    tu_rmtree(dir);
}

static void expect_open_fails(const char *dir, kv_code code, const char *needle) {
    kv_store *s = (kv_store *)1;
    kv_err e;
    assert_int_equal(kv_open(dir, NULL, &s, &e), code);
    assert_null(s);
    assert_int_equal(e.code, code);
    if (needle && !strstr(e.msg, needle)) fail_msg("message '%s' lacks '%s'", e.msg, needle);
}

static void test_foreign_directory(void **state) {
    (void)state;
    char *dir = tu_mkdtemp("kv-open");
    char *f = path_in(dir, "notes.txt");
    write_file(f, "hello\n", 6);
    expect_open_fails(dir, KV_ERR_NOT_A_STORE, "notes.txt");
    free(f);
    /* a plain file where the directory should be */
    char *file = path_in(dir, "notes.txt");
    expect_open_fails(file, KV_ERR_NOT_A_STORE, "not a directory");
    free(file);
    tu_rmtree(dir);
}

static void test_corrupt_data_file(void **state) {
    (void)state;
    char *dir = tu_mkdtemp("kv-open");
    char *data = path_in(dir, "data.mdb");
    char junk[8192];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 7 + 3);
    write_file(data, junk, sizeof(junk));
    expect_open_fails(dir, KV_ERR_CORRUPT, "not an LMDB");
    /* a real store cut short */
    tu_rmtree(dir);
    dir = tu_mkdtemp("kv-open");
    free(data);
    data = path_in(dir, "data.mdb");
    kv_store *s;
    kv_err e;
    kv_options o = {.no_sync = true};
    assert_int_equal(kv_open(dir, &o, &s, &e), KV_OK);
    char v[2048];
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = 0;
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        put(s, k, v);
    }
    kv_close(s);
    assert_int_equal(truncate(data, 4096 * 3), 0);
    expect_open_fails(dir, KV_ERR_CORRUPT, "truncated");
    free(data);
    tu_rmtree(dir);
}

/* Makes an LMDB environment the way another program would. */
static void make_foreign_lmdb(const char *dir, const char *db, const char *key, const void *val,
                              size_t n) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), 0);
    MDB_val k = {strlen(key), (void *)key}, v = {n, (void *)val};
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void test_foreign_lmdb(void **state) {
    (void)state;
    char *dir = tu_mkdtemp("kv-open");
    make_foreign_lmdb(dir, NULL, "someone", "else", 4);
    expect_open_fails(dir, KV_ERR_NOT_A_STORE, "not a kvstore");
    tu_rmtree(dir);
    dir = tu_mkdtemp("kv-open");
    make_foreign_lmdb(dir, "meta", "magic", "other-program", 13);
    expect_open_fails(dir, KV_ERR_NOT_A_STORE, "without kvstore meta");
    tu_rmtree(dir);
}

static void test_wrong_layout_version(void **state) {
    (void)state;
    char *dir = tu_mkdtemp("kv-open");
    kv_store *s;
    kv_err e;
    kv_options o = {.no_sync = true};
    assert_int_equal(kv_open(dir, &o, &s, &e), KV_OK);
    put(s, "a", "1");
    kv_close(s);
    const uint8_t v99[4] = {0, 0, 0, 99};
    make_foreign_lmdb(dir, "meta", "layout", v99, 4);
    expect_open_fails(dir, KV_ERR_LAYOUT, "layout version 99");
    tu_rmtree(dir);
}

static void test_empty_dir_and_reopen_empty_store(void **state) {
    (void)state;
    char *dir = tu_mkdtemp("kv-open");
    kv_store *s;
    kv_err e;
    kv_options o = {.no_sync = true, .cluster_id = 5, .member_id = 6};
    assert_int_equal(kv_open(dir, &o, &s, &e), KV_OK);
    kv_close(s);
    assert_int_equal(kv_open(dir, &o, &s, &e), KV_OK);
    kv_status st;
    kv_status_get(s, &st);
    assert_int_equal(st.revision, 1);
    assert_int_equal(st.cluster_id, 5);
    kv_close(s);
    tu_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_dir_created),
        cmocka_unit_test(test_restart_persistence),
        cmocka_unit_test(test_compaction_resumes_after_restart),
        cmocka_unit_test(test_foreign_directory),
        cmocka_unit_test(test_corrupt_data_file),
        cmocka_unit_test(test_foreign_lmdb),
        cmocka_unit_test(test_wrong_layout_version),
        cmocka_unit_test(test_empty_dir_and_reopen_empty_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
