/* fuzz_wal_replay.c — libFuzzer target for crash recovery: kv_open replaying a write-ahead log
 * whose records come from the input (kvstore/mvcc/kv_wal.c scan, kv_checkpoint.c replay).
 *
 * Once per process a durable store is made and closed cleanly (a checkpoint, a few keys, a lease),
 * and its files are kept as a template. Per input the template is copied, the input is written
 * into the log segment right at the checkpoint's replay position, and the store is opened. The
 * open must either succeed (the records replayed, then a clean close) or fail with an error;
 * never crash, hang or leak.
 *
 * Input: byte 0 picks the framing. Even: the rest is a sequence of [len, 2 bytes LE][payload],
 * each written as a well-formed record (length + CRC-32C), so the fuzzer reaches the record
 * decoder and kv_apply; odd: the rest is written raw (torn and damaged records, zeros). A useful
 * group payload is [1][rev before, 8 BE][rev after, 8 BE][count, u32][items: type, len32 BE,
 * packed RequestOp / LeaseGrantRequest / LeaseRevokeRequest]; the template's revision is 5. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv.h"
#include "testutil.h"

uint32_t kv_crc32c(const uint8_t *p, size_t n); /* the engine's (kv_wal.c) */

static char *g_tmpl, *g_work;

static void die(const char *what, const char *msg) {
    fprintf(stderr, "fuzz_wal_replay: %s: %s\n", what, msg);
    abort();
}

static kv_options opts(void) {
    kv_options o = {.map_size = (size_t)64 << 20, .cluster_id = 1, .member_id = 2, .leases = true};
    return o;
}

static void put(kv_store *s, kv_arena *a, const char *k, int64_t lease) {
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    r.key = (ProtobufCBinaryData){strlen(k), (uint8_t *)k};
    r.value = r.key;
    r.lease = lease;
    Etcdserverpb__PutResponse *resp;
    kv_err e;
    if (kv_put(s, &r, a, &resp, &e)) die("put", e.msg);
}

static void make_template(void) {
    g_tmpl = tu_mkdtemp("fuzz-wal-tmpl");
    g_work = tu_mkdtemp("fuzz-wal");
    kv_options o = opts();
    kv_store *s;
    kv_err e;
    if (kv_open(g_tmpl, &o, &s, &e)) die("open template", e.msg);
    kv_arena *a = kv_arena_new();
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    g.id = 7;
    g.ttl = 60;
    Etcdserverpb__LeaseGrantResponse *gr;
    if (kv_lease_grant(s, &g, 0, a, &gr, &e)) die("grant", e.msg);
    put(s, a, "/a", 0);
    put(s, a, "/b", 7);
    put(s, a, "/c", 0);
    put(s, a, "/a", 0); /* revision 5 */
    kv_arena_free(a);
    kv_close(s);
}

static void copy_file(const char *from, const char *to) {
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0) die("copy", from);
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) die("copy", to);
    close(in);
    close(out);
}

static void clear_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') snprintf(p, sizeof p, "%s/%s", dir, e->d_name), unlink(p);
    closedir(d);
}

static void copy_template(void) {
    clear_dir(g_work);
    DIR *d = opendir(g_tmpl);
    struct dirent *e;
    char a[4096], b[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "lock.mdb")) continue;
        snprintf(a, sizeof a, "%s/%s", g_tmpl, e->d_name);
        snprintf(b, sizeof b, "%s/%s", g_work, e->d_name);
        copy_file(a, b);
    }
    closedir(d);
}

/* The checkpoint's replay position: segment and offset, big-endian at bytes 32 and 40. */
static void replay_pos(uint64_t *seg, uint64_t *off) {
    char p[4096];
    snprintf(p, sizeof p, "%s/checkpoint", g_work);
    uint8_t b[48];
    int fd = open(p, O_RDONLY);
    if (fd < 0 || pread(fd, b, sizeof b, 0) != (ssize_t)sizeof b) die("read", p);
    close(fd);
    *seg = *off = 0;
    for (int i = 0; i < 8; i++) {
        *seg = *seg << 8 | b[32 + i];
        *off = *off << 8 | b[40 + i];
    }
}

static void write_log(const uint8_t *data, size_t size) {
    uint64_t seg, off;
    replay_pos(&seg, &off);
    char p[4096];
    snprintf(p, sizeof p, "%s/wal-%016llx.log", g_work, (unsigned long long)seg);
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)off)) die("segment", p);
    if (size && (data[0] & 1)) {
        if (pwrite(fd, data + 1, size - 1, (off_t)off) != (ssize_t)(size - 1)) die("write", p);
    } else {
        size_t i = size ? 1 : 0;
        while (i + 2 <= size) {
            size_t n = (size_t)data[i] | (size_t)data[i + 1] << 8;
            i += 2;
            if (n > size - i) n = size - i;
            uint8_t hdr[8];
            uint32_t crc = kv_crc32c(data + i, n);
            for (int k = 0; k < 4; k++)
                hdr[k] = (uint8_t)(n >> (8 * k)), hdr[4 + k] = (uint8_t)(crc >> (8 * k));
            if (pwrite(fd, hdr, 8, (off_t)off) != 8 ||
                (n && pwrite(fd, data + i, n, (off_t)off + 8) != (ssize_t)n))
                die("write", p);
            off += 8 + n;
            i += n;
        }
    }
    close(fd);
}

static void at_exit_cleanup(void) {
    if (g_tmpl) tu_rmtree(g_tmpl);
    if (g_work) tu_rmtree(g_work);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    make_template();
    atexit(at_exit_cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1u << 16)) return 0;
    copy_template();
    write_log(data, size);
    kv_options o = opts();
    kv_store *s = NULL;
    kv_err e;
    if (kv_open(g_work, &o, &s, &e) == KV_OK) {
        kv_status st;
        kv_status_get(s, &st);
        if (st.revision < 5) die("replay", "the store went back before its checkpoint");
        kv_close(s);
    }
    return 0;
}
