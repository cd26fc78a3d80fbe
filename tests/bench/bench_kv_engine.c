/* bench_kv_engine.c — micro-benchmark of the MVCC engine (kvstore/mvcc/kv.h). Not a test.
 *
 * Prints min / median / max over several repetitions of:
 * - durable puts/s with 1 KiB values: one request per kv_apply, and groups of 8/64/256
 *   requests per kv_apply (one fsync per group); the same with no_sync for reference;
 * - Range of 10,000 x 1 KiB keys (20 namespaces x 500 pods under /registry/pods/), via
 *   kv_range (decoded response in an arena) and kv_range_raw (callback summing lengths), at the
 *   current revision and at a historical one (one write behind);
 * - kv_feed_read throughput over the whole load history (events/s), without and with prev_kv.
 * The MB/s column is the volume handed out (values for kv_range, encoded KeyValues for
 * kv_range_raw, whose callback does not touch them), not bytes copied.
 *
 * Key decisions: fsync cost is the point of the durable figures, so the store lives on a real
 * file system (the default directory is under $TMPDIR or /tmp; the file system type is
 * printed and tmpfs flagged). Each measurement uses its own fresh store. Flags: --dir DIR,
 * --quick (fewer repetitions and operations), --keep (do not delete the directory).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "kv.h"

#define NS       20
#define PODS     500
#define VAL_SIZE 1024
#define MAX_REPS 16

typedef struct cfg {
    const char *dir;
    bool quick, keep;
    int reps;
} cfg;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const kv_err *err) {
    fprintf(stderr, "bench_kv_engine: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One table row: rates of the repetitions, and an optional second figure (MB/s). */
static void row(const char *name, const char *unit, double *v, int n, double mb_per_unit) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    printf("%-46s %12.1f %12.1f %12.1f  %-9s", name, v[0], med, v[n - 1], unit);
    if (mb_per_unit > 0) printf("  (median %.0f MB/s)", med * mb_per_unit);
    printf("\n");
    fflush(stdout);
}

static char *subdir(const cfg *c, const char *name) {
    size_t n = strlen(c->dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p) exit(1);
    snprintf(p, n, "%s/%s", c->dir, name);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not clean %s\n", p);
    return p;
}

static kv_store *open_store(const char *dir, bool no_sync) {
    kv_options o;
    memset(&o, 0, sizeof o);
    o.no_sync = no_sync;
    o.map_size = (size_t)4 << 30;
    kv_store *s = NULL;
    kv_err err;
    if (kv_open(dir, &o, &s, &err) != KV_OK) die("kv_open", &err);
    return s;
}

static void pod_key(char *buf, size_t n, int ns, int pod) {
    snprintf(buf, n, "/registry/pods/ns-%02d/pod-%05d", ns, pod);
}

static uint8_t value[VAL_SIZE];

/* Puts `total` keys in groups of `group` requests per kv_apply; returns puts/s. */
static double run_puts(kv_store *s, kv_arena *a, int total, int group, int *seq) {
    Etcdserverpb__PutRequest *p = calloc((size_t)group, sizeof *p);
    Etcdserverpb__RequestOp *op = calloc((size_t)group, sizeof *op);
    kv_write *w = calloc((size_t)group, sizeof *w);
    char(*keys)[64] = calloc((size_t)group, 64);
    if (!p || !op || !w || !keys) exit(1);
    double t0 = now_s();
    for (int done = 0; done < total; done += group) {
        for (int i = 0; i < group; i++) {
            int k = (*seq)++;
            pod_key(keys[i], 64, k / PODS % NS, k % PODS);
            etcdserverpb__put_request__init(&p[i]);
            p[i].key.data = (uint8_t *)keys[i];
            p[i].key.len = strlen(keys[i]);
            p[i].value.data = value;
            p[i].value.len = VAL_SIZE;
            etcdserverpb__request_op__init(&op[i]);
            op[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
            op[i].request_put = &p[i];
            memset(&w[i], 0, sizeof w[i]);
            w[i].op = &op[i];
            w[i].arena = a;
        }
        kv_err err;
        if (kv_apply(s, w, (size_t)group, &err) != KV_OK) die("kv_apply", &err);
        for (int i = 0; i < group; i++)
            if (w[i].err.code != KV_OK) die("put", &w[i].err);
        kv_arena_reset(a);
    }
    double dt = now_s() - t0;
    free(p);
    free(op);
    free(w);
    free(keys);
    return total / dt;
}

static void bench_puts(const cfg *c, bool no_sync, int group, int per_rep) {
    double v[MAX_REPS];
    char *dir = subdir(c, no_sync ? "puts-nosync" : "puts-durable");
    kv_store *s = open_store(dir, no_sync);
    kv_arena *a = kv_arena_new();
    int seq = 0;
    run_puts(s, a, group, group, &seq); /* warm up: file creation, first pages */
    for (int r = 0; r < c->reps; r++)
        v[r] = run_puts(s, a, per_rep, group, &seq);
    char name[96];
    snprintf(name, sizeof name, "put %s, %d per kv_apply (1 KiB)", no_sync ? "no_sync" : "durable",
             group);
    row(name, "puts/s", v, c->reps, VAL_SIZE / 1e6);
    kv_arena_free(a);
    kv_close(s);
    free(dir);
}

/* ---- ranges and feed over 10,000 pods --------------------------------------------------- */

static int sum_len(void *ud, const uint8_t *kv, size_t len) {
    (void)kv;
    *(size_t *)ud += len;
    return 0;
}

static int count_ev(void *ud, const kv_event *ev) {
    size_t *n = ud;
    n[0]++;
    n[1] += ev->kv_len + ev->prev_kv_len;
    return 0;
}

static void bench_reads(const cfg *c) {
    char *dir = subdir(c, "range");
    kv_store *s = open_store(dir, true); /* loading speed is not measured here */
    kv_arena *a = kv_arena_new();
    int seq = 0;
    kv_status st0;
    kv_status_get(s, &st0);
    run_puts(s, a, NS * PODS, 250, &seq);
    /* one more write: a historical read one revision behind sees every key too */
    seq = 0;
    run_puts(s, a, 1, 1, &seq);
    kv_status st;
    kv_status_get(s, &st);

    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    static const char prefix[] = "/registry/pods/", end[] = "/registry/pods0";
    q.key.data = (uint8_t *)prefix;
    q.key.len = sizeof prefix - 1;
    q.range_end.data = (uint8_t *)end;
    q.range_end.len = sizeof end - 1;
    int per_rep = c->quick ? 3 : 10;
    double v[MAX_REPS];
    for (int hist = 0; hist < 2; hist++) {
        q.revision = hist ? st.revision - 1 : 0;
        size_t bytes = 0;
        for (int r = 0; r < c->reps; r++) {
            double t0 = now_s();
            for (int i = 0; i < per_rep; i++) {
                Etcdserverpb__RangeResponse *resp = NULL;
                kv_err err;
                if (kv_range(s, &q, a, &resp, &err) != KV_OK) die("kv_range", &err);
                if (resp->n_kvs != NS * PODS) die("kv_range: wrong number of kvs", NULL);
                bytes = 0;
                for (size_t k = 0; k < resp->n_kvs; k++)
                    bytes += resp->kvs[k]->value.len;
                kv_arena_reset(a);
            }
            v[r] = per_rep / (now_s() - t0);
        }
        row(hist ? "kv_range 10k x 1 KiB, historical (rev-1)" : "kv_range 10k x 1 KiB, current",
            "ranges/s", v, c->reps, (double)bytes / 1e6);
        for (int r = 0; r < c->reps; r++) {
            double t0 = now_s();
            for (int i = 0; i < per_rep; i++) {
                kv_range_info info;
                kv_err err;
                bytes = 0;
                if (kv_range_raw(s, &q, sum_len, &bytes, &info, &err) != KV_OK)
                    die("kv_range_raw", &err);
                if (info.kvs != NS * PODS || info.kv_bytes != bytes)
                    die("kv_range_raw: wrong result", NULL);
            }
            v[r] = per_rep / (now_s() - t0);
        }
        row(hist ? "kv_range_raw 10k x 1 KiB, historical (rev-1)"
                 : "kv_range_raw 10k x 1 KiB, current",
            "ranges/s", v, c->reps, (double)bytes / 1e6);
    }

    /* the feed: every event of the load, in batches of 1000 as a watch catch-up would */
    static const uint8_t all = 0;
    for (int prev = 0; prev < 2; prev++) {
        size_t events = 0;
        for (int r = 0; r < c->reps; r++) {
            size_t n[2] = {0, 0};
            double t0 = now_s();
            int64_t next = st0.revision + 1;
            while (next <= st.revision) {
                kv_err err;
                if (kv_feed_read(s, next, 0, &all, 1, &all, 1, prev, 1000, SIZE_MAX, count_ev, n,
                                 &next, &err) != KV_OK)
                    die("kv_feed_read", &err);
            }
            v[r] = (double)n[0] / (now_s() - t0);
            events = n[0];
        }
        char name[96];
        snprintf(name, sizeof name, "kv_feed_read %zu events%s, batch 1000", events,
                 prev ? " +prev_kv" : "");
        row(name, "events/s", v, c->reps, 0);
    }
    kv_arena_free(a);
    kv_close(s);
    free(dir);
}

static void usage(void) {
    fprintf(stderr, "usage: bench_kv_engine [--dir DIR] [--quick] [--keep]\n"
                    "  --dir DIR  where the stores are made (default: a new directory under\n"
                    "             $TMPDIR or /tmp); use a real disk: fsync cost is measured\n"
                    "  --quick    fewer repetitions and operations\n"
                    "  --keep     leave the stores in place\n");
}

int main(int argc, char **argv) {
    cfg c = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            c.dir = argv[++i];
        else if (!strcmp(argv[i], "--quick"))
            c.quick = true;
        else if (!strcmp(argv[i], "--keep"))
            c.keep = true;
        else {
            usage();
            return 2;
        }
    }
    char tmpl[4096];
    bool made = false;
    if (!c.dir) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpl, sizeof tmpl, "%s/bench_kv_engine-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp");
            return 1;
        }
        c.dir = tmpl;
        made = true;
    } else {
        mkdir(c.dir, 0700);
    }
    c.reps = c.quick ? 3 : 7;
    for (size_t i = 0; i < sizeof value; i++)
        value[i] = (uint8_t)('a' + i * 7 % 26);

    struct statfs fs;
    const char *fstype = "?";
    if (statfs(c.dir, &fs) == 0) {
        fstype = fs.f_type == 0x01021994   ? "tmpfs (fsync is free: durable figures are NOT real)"
                 : fs.f_type == 0xEF53     ? "ext2/3/4"
                 : fs.f_type == 0x58465342 ? "xfs"
                 : fs.f_type == 0x9123683E ? "btrfs"
                 : fs.f_type == 0x794c7630 ? "overlayfs"
                                           : "other";
    }
    printf("bench_kv_engine: dir %s (%s), %d repetitions%s\n", c.dir, fstype, c.reps,
           c.quick ? " (--quick)" : "");
    printf("%-46s %12s %12s %12s  %s\n", "benchmark", "min", "median", "max", "unit");

    int k = c.quick ? 1 : 4;
    bench_puts(&c, false, 1, 25 * k);
    bench_puts(&c, false, 8, 8 * 10 * k);
    bench_puts(&c, false, 64, 64 * 4 * k);
    bench_puts(&c, false, 256, 256 * 2 * k);
    bench_puts(&c, true, 1, 500 * k);
    bench_puts(&c, true, 64, 64 * 20 * k);
    bench_reads(&c);

    if (!c.keep) {
        char cmd[4200];
        if (made)
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", c.dir);
        else
            snprintf(cmd, sizeof cmd, "rm -rf '%s'/puts-* '%s'/range", c.dir, c.dir);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", c.dir);
    }
    return 0;
}
