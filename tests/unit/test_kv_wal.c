/* test_kv_wal.c — crash recovery of the MVCC engine's write-ahead log (kv_wal.c,
 * kv_checkpoint.c), through the public API and the files a crash leaves behind.
 *
 * Each test writes a mixed history (puts, deletes, a txn, lease grants with store-drawn ids and
 * attached keys, a revoke, a compaction) into a durable store with frequent checkpoints, records
 * what a client saw (revision, every key at the current revision, a historical read, the lease
 * ids), then leaves the files as a killed process would (kv_close_unclean) and damages them the
 * way the case needs before reopening:
 * - a plain crash: LMDB's meta pages are newer than the checkpoint, so recovery puts back the
 *   checkpoint's and replays the log;
 * - a power loss: the meta pages on disk are garbage (torn), recovery must not trust them;
 * - a torn last append: the end of the newest record is missing (never acknowledged);
 * - a damaged record followed by good ones: refused as corruption, never silently cut short;
 * - log segments without a checkpoint: refused;
 * - a no_sync open after a crash of a durable run: it replays, then retires the log.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv.h"
#include "testutil.h"

typedef struct seen {
    int64_t rev;
    char *list; /* every key=value at the current revision */
    char *hist; /* the same at a revision in the middle */
    int64_t hist_rev;
    char *leases; /* lease ids */
} seen;

static kv_store *open_store(const char *dir, uint64_t ckpt_bytes) {
    kv_options o = {.map_size = 256u << 20, .leases = true, .wal_checkpoint_bytes = ckpt_bytes};
    kv_store *s = NULL;
    kv_err e;
    if (kv_open(dir, &o, &s, &e) != KV_OK) fail_msg("kv_open: %s", e.msg);
    return s;
}

static int open_code(const char *dir, kv_err *e) {
    kv_options o = {.map_size = 256u << 20, .leases = true};
    kv_store *s = NULL;
    int rc = kv_open(dir, &o, &s, e);
    if (s) kv_close(s);
    return rc;
}

static ProtobufCBinaryData bin(const char *s) {
    return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

static void put(kv_store *s, kv_arena *a, const char *k, const char *v, int64_t lease) {
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    r.key = bin(k);
    r.value = bin(v);
    r.lease = lease;
    Etcdserverpb__PutResponse *resp;
    kv_err e;
    assert_int_equal(kv_put(s, &r, a, &resp, &e), KV_OK);
}

static char *dump(kv_store *s, kv_arena *a, int64_t rev) {
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key = bin("\0");
    r.key.len = 1;
    r.range_end = r.key;
    r.revision = rev;
    Etcdserverpb__RangeResponse *resp;
    kv_err e;
    assert_int_equal(kv_range(s, &r, a, &resp, &e), KV_OK);
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    out[0] = 0;
    for (size_t i = 0; i < resp->n_kvs; i++) {
        const Mvccpb__KeyValue *kv = resp->kvs[i];
        size_t need = kv->key.len + kv->value.len + 64;
        while (len + need >= cap)
            out = realloc(out, cap *= 2);
        len += (size_t)snprintf(out + len, cap - len, "%.*s=%.*s@%lld,%lld,%lld,%lld;",
                                (int)kv->key.len, (const char *)kv->key.data, (int)kv->value.len,
                                (const char *)kv->value.data, (long long)kv->create_revision,
                                (long long)kv->mod_revision, (long long)kv->version,
                                (long long)kv->lease);
    }
    return out;
}

static char *lease_ids(kv_store *s, kv_arena *a) {
    Etcdserverpb__LeaseLeasesResponse *resp;
    kv_err e;
    assert_int_equal(kv_lease_leases(s, 1000, a, &resp, &e), KV_OK);
    char *out = calloc(1, 32 * (resp->n_leases + 1));
    for (size_t i = 0; i < resp->n_leases; i++)
        sprintf(out + strlen(out), "%lld,", (long long)resp->leases[i]->id);
    return out;
}

static void observe(kv_store *s, kv_arena *a, seen *v, int64_t hist_rev) {
    kv_status st;
    kv_status_get(s, &st);
    v->rev = st.revision;
    v->list = dump(s, a, 0);
    v->hist_rev = hist_rev;
    v->hist = dump(s, a, hist_rev);
    v->leases = lease_ids(s, a);
}

static void seen_free(seen *v) {
    free(v->list);
    free(v->hist);
    free(v->leases);
}

/* The mixed history; returns a revision in its middle (after the compaction point). */
static int64_t write_history(kv_store *s, kv_arena *a, int rounds) {
    kv_err e;
    char k[64], v[300];
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    g.ttl = 60; /* id 0: the store draws it, and the log must carry the drawn one */
    Etcdserverpb__LeaseGrantResponse *gr1, *gr2;
    assert_int_equal(kv_lease_grant(s, &g, 1000, a, &gr1, &e), KV_OK);
    assert_int_equal(kv_lease_grant(s, &g, 1000, a, &gr2, &e), KV_OK);
    int64_t l1 = gr1->id, l2 = gr2->id; /* the arena is reset below */
    int64_t mid = 0;
    for (int i = 0; i < rounds; i++) {
        snprintf(k, sizeof k, "/registry/pods/ns-%d/p-%d", i % 7, i % 97);
        memset(v, 'a' + i % 26, sizeof v - 1);
        v[sizeof v - 1] = 0;
        snprintf(v, 12, "v%d-", i);
        v[strlen(v)] = 'x';
        put(s, a, k, v, i % 5 == 0 ? l1 : i % 5 == 1 ? l2 : 0);
        if (i % 13 == 12) {
            Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
            snprintf(k, sizeof k, "/registry/pods/ns-%d/p-%d", (i + 3) % 7, (i + 3) % 97);
            d.key = bin(k);
            Etcdserverpb__DeleteRangeResponse *dr;
            assert_int_equal(kv_delete_range(s, &d, a, &dr, &e), KV_OK);
        }
        if (i == rounds / 2) {
            kv_status st;
            kv_status_get(s, &st);
            assert_int_equal(kv_compact(s, st.revision - 40, &e), KV_OK);
            mid = st.revision;
        }
        if (i % 50 == 49) kv_arena_reset(a);
    }
    Etcdserverpb__LeaseRevokeRequest rv = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    rv.id = l2; /* deletes its keys in one revision */
    Etcdserverpb__LeaseRevokeResponse *rr;
    assert_int_equal(kv_lease_revoke(s, &rv, a, &rr, &e), KV_OK);
    /* a txn: compare on a key's version, then put */
    Etcdserverpb__Compare c = ETCDSERVERPB__COMPARE__INIT;
    c.key = bin("/registry/pods/ns-0/p-0");
    c.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION;
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
    c.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER;
    c.version = 0;
    Etcdserverpb__Compare *cs[] = {&c};
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bin("/registry/txn");
    p.value = bin("then");
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op.request_put = &p;
    Etcdserverpb__RequestOp *ops[] = {&op};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_compare = 1;
    t.compare = cs;
    t.n_success = 1;
    t.success = ops;
    Etcdserverpb__TxnResponse *tr;
    assert_int_equal(kv_txn(s, &t, a, &tr, &e), KV_OK);
    assert_true(tr->succeeded);
    return mid;
}

static void expect_same(kv_store *s, kv_arena *a, const seen *want) {
    seen got;
    observe(s, a, &got, want->hist_rev);
    assert_int_equal(got.rev, want->rev);
    assert_string_equal(got.list, want->list);
    assert_string_equal(got.hist, want->hist);
    assert_string_equal(got.leases, want->leases);
    seen_free(&got);
}

/* Crashes after writing; `damage` changes the files before the reopen. */
static void crash_and_check(uint64_t ckpt_bytes, void (*damage)(const char *dir)) {
    char *dir = tu_mkdtemp("kv-wal");
    kv_arena *a = kv_arena_new();
    kv_store *s = open_store(dir, ckpt_bytes);
    int64_t mid = write_history(s, a, 600);
    seen want;
    observe(s, a, &want, mid);
    kv_close_unclean(s);
    if (damage) damage(dir);
    s = open_store(dir, ckpt_bytes);
    expect_same(s, a, &want);
    kv_status st;
    kv_status_get(s, &st);
    if (ckpt_bytes >= (1u << 20)) assert_true(st.wal_replayed > 0); /* no checkpoint since open */
    /* and it goes on: a write after recovery, then a clean close and open */
    put(s, a, "/registry/after", "x", 0);
    kv_close(s);
    s = open_store(dir, ckpt_bytes);
    kv_status_get(s, &st);
    assert_int_equal(st.revision, want.rev + 1);
    assert_int_equal(st.wal_replayed, 0); /* a clean close leaves nothing to replay */
    kv_close(s);
    seen_free(&want);
    kv_arena_free(a);
    tu_rmtree(dir);
}

static void test_crash_replays_log(void **state) {
    (void)state;
    crash_and_check(16 << 10, NULL); /* many checkpoints before the crash */
    crash_and_check(64 << 20, NULL); /* none: the whole history replays */
}

/* Power loss: meta pages newer than the checkpoint may point at pages that never reached the
 * disk; here they are garbage outright. */
static void scribble_metas(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    uint8_t junk[8192];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(pwrite(fd, junk, sizeof junk, 0), (ssize_t)sizeof junk);
    close(fd);
}

static void test_power_loss_metas(void **state) {
    (void)state;
    crash_and_check(16 << 10, scribble_metas);
}

/* ---- log surgery ---- */

/* Path of the highest-numbered segment holding records, and where its records end. */
static int last_records(const char *dir, char *path, size_t n, long *end, long *first_len) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    char best[512] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "wal-", 4)) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        FILE *f = fopen(p, "rb");
        uint8_t h[4] = {0};
        size_t got = fread(h, 1, 4, f);
        fclose(f);
        if (got == 4 && (h[0] | h[1] | h[2] | h[3]) && strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", e->d_name);
    }
    closedir(d);
    if (!best[0]) return -1;
    snprintf(path, n, "%s/%s", dir, best);
    FILE *f = fopen(path, "rb");
    long off = 0;
    *first_len = -1;
    for (;;) {
        uint8_t h[8];
        if (fseek(f, off, SEEK_SET) || fread(h, 1, 8, f) != 8) break;
        long len = h[0] | h[1] << 8 | h[2] << 16 | (long)h[3] << 24;
        if (!len) break;
        if (*first_len < 0) *first_len = len;
        off += 8 + len;
    }
    fclose(f);
    *end = off;
    return 0;
}

/* A torn last append: its header and the start of its payload reached the disk, no more. */
static void tear_tail(const char *dir) {
    char path[4096];
    long end, first;
    assert_int_equal(last_records(dir, path, sizeof path, &end, &first), 0);
    int fd = open(path, O_WRONLY);
    uint8_t torn[20] = {200, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    assert_int_equal(pwrite(fd, torn, sizeof torn, end), (ssize_t)sizeof torn);
    close(fd);
}

static void test_torn_tail_dropped(void **state) {
    (void)state;
    crash_and_check(16 << 10, tear_tail);
}

static void test_damaged_record_refused(void **state) {
    (void)state;
    char *dir = tu_mkdtemp("kv-wal");
    kv_arena *a = kv_arena_new();
    kv_store *s = open_store(dir, 64 << 20); /* no checkpoint after open: records stay */
    write_history(s, a, 100);
    kv_close_unclean(s);
    char path[4096];
    long end, first;
    assert_int_equal(last_records(dir, path, sizeof path, &end, &first), 0);
    assert_true(end > first + 8); /* more records follow the first */
    int fd = open(path, O_RDWR);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, 8 + first / 2), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, 8 + first / 2), 1);
    close(fd);
    kv_err e;
    assert_int_equal(open_code(dir, &e), KV_ERR_CORRUPT);
    assert_non_null(strstr(e.msg, "bad record"));
    kv_arena_free(a);
    tu_rmtree(dir);
}

static void test_segments_without_checkpoint_refused(void **state) {
    (void)state;
    char *dir = tu_mkdtemp("kv-wal");
    kv_arena *a = kv_arena_new();
    kv_store *s = open_store(dir, 0);
    put(s, a, "/k", "v", 0);
    kv_close_unclean(s);
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    assert_int_equal(unlink(path), 0);
    kv_err e;
    assert_int_equal(open_code(dir, &e), KV_ERR_CORRUPT);
    assert_non_null(strstr(e.msg, "no checkpoint"));
    kv_arena_free(a);
    tu_rmtree(dir);
}

static int count_log_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += !strncmp(e->d_name, "wal-", 4) || !strncmp(e->d_name, "checkpoint", 10);
    closedir(d);
    return n;
}

static void test_no_sync_open_replays_then_retires(void **state) {
    (void)state;
    char *dir = tu_mkdtemp("kv-wal");
    kv_arena *a = kv_arena_new();
    kv_store *s = open_store(dir, 16 << 10);
    int64_t mid = write_history(s, a, 300);
    seen want;
    observe(s, a, &want, mid);
    kv_close_unclean(s);
    kv_options o = {.map_size = 256u << 20, .leases = true, .no_sync = true};
    kv_err e;
    assert_int_equal(kv_open(dir, &o, &s, &e), KV_OK);
    expect_same(s, a, &want);
    assert_int_equal(count_log_files(dir), 0);
    kv_close(s);
    s = open_store(dir, 0); /* durable again: a fresh log */
    expect_same(s, a, &want);
    kv_close(s);
    assert_true(count_log_files(dir) >= 2);
    seen_free(&want);
    kv_arena_free(a);
    tu_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_replays_log),
        cmocka_unit_test(test_power_loss_metas),
        cmocka_unit_test(test_torn_tail_dropped),
        cmocka_unit_test(test_damaged_record_refused),
        cmocka_unit_test(test_segments_without_checkpoint_refused),
        cmocka_unit_test(test_no_sync_open_replays_then_retires),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
