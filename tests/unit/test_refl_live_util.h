/* test_refl_live_util.h — the live-server harness for the reflector suites (test_refl_live_*.c):
 * starts a real server on free loopback ports with a temporary data dir (killed at the end; the
 * process handling is etcd_proc.h's), restarts it on the same port and data dir, and writes lab
 * objects through our gRPC client on the same uv loop as the fleet under test (so waiting for a
 * write also runs the watchers).
 *
 * The server is a parameter: RELIST_REFL_SERVER = "etcd" (default: /usr/bin/etcd),
 * "etcd:/path/to/etcd", "kvstore:/path/to/kvstore" or "kvstore:auto" (the kvstore binary of
 * this build: ../kvstore next to the test executable). A suite file may set the default with
 * LIVE_SERVER_DEFAULT before including this header. A missing binary skips the tests. */
#ifndef RELIST_TEST_REFL_LIVE_UTIL_H
#define RELIST_TEST_REFL_LIVE_UTIL_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etcd_proc.h"
#include "grpc.h"
#include "lab.pb-c.h"
#include "refl.h"
#include "rpc.pb-c.h"
#include "testutil.h"

#ifndef LIVE_SERVER_DEFAULT
#define LIVE_SERVER_DEFAULT "etcd"
#endif

typedef struct live {
    bool ok; /* a server is up */
    char why[512];
    char kind[16]; /* etcd | kvstore */
    char bin[1024];
    etcd_proc proc; /* the server process, its ports and data dir */
    char ep[64];    /* proc.ep, for the suites */
    uv_loop_t loop;
    grpc_client *c;
    int restarts;
} live;

static live L;

static int live_free_port(void) {
    return etcd_proc_free_port();
}

/* Runs the loop until *flag or timeout; returns *flag. */
static bool live_run_until(const volatile bool *flag, uint64_t timeout_ms) {
    return run_until(&L.loop, flag, timeout_ms);
}

static void live_run_for(uint64_t ms) {
    run_for(&L.loop, ms);
}

/* Runs the loop until pred(arg) or timeout. */
static bool live_wait(bool (*pred)(void *arg), void *arg, uint64_t timeout_ms) {
    uint64_t end = uv_now(&L.loop) + timeout_ms;
    while (!pred(arg)) {
        if (uv_now(&L.loop) >= end) return false;
        live_run_for(10);
    }
    return true;
}

typedef result live_result;

/* A unary call on the writer client (made on demand); returns the gRPC status, -100 on
 * timeout; the response (caller frees r->data) stays in r. */
static int live_unary(const char *path, const ProtobufCMessage *m, live_result *r) {
    if (L.c && !grpc_client_is_connected(L.c)) {
        grpc_client_free(L.c);
        L.c = NULL;
    }
    if (!L.c) L.c = grpc_client_new(&L.loop, L.ep, NULL);
    int st = unary_wait(&L.loop, L.c, path, m, r, 5000, 8000);
    if (st < 0 && st != -100) { /* refused at once: a fresh client next time */
        grpc_client_free(L.c);
        L.c = NULL;
        return GRPC_STATUS_UNAVAILABLE;
    }
    return st;
}

static int64_t live_put_raw(const char *key, const void *val, size_t len) {
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    put.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    put.value = (ProtobufCBinaryData){len, (uint8_t *)val};
    live_result r = {0};
    int st = live_unary("/etcdserverpb.KV/Put", &put.base, &r);
    int64_t rev = -1;
    if (st == 0) {
        Etcdserverpb__PutResponse *pr = etcdserverpb__put_response__unpack(NULL, r.len, r.data);
        if (pr && pr->header) rev = pr->header->revision;
        if (pr) etcdserverpb__put_response__free_unpacked(pr, NULL);
    }
    free(r.data);
    return rev;
}

/* Puts a relistlab.LabObject at /registry/<resource>/<ns>/<name>; uid changes with gen (a
 * re-created object is a new object). Returns the revision, or -1. */
static int64_t live_put_lab(const char *resource, const char *ns, const char *name, int gen,
                            size_t payload) {
    char key[256], uid[128];
    snprintf(key, sizeof key, "/registry/%s/%s/%s", resource, ns, name);
    snprintf(uid, sizeof uid, "uid-%s-%s-%d", ns, name, gen);
    Relistlab__LabObject o = RELISTLAB__LAB_OBJECT__INIT;
    o.resource = (char *)resource;
    o.namespace_ = (char *)ns;
    o.name = (char *)name;
    o.uid = uid;
    uint8_t *pl = malloc(payload ? payload : 1);
    memset(pl, 'p', payload);
    o.payload = (ProtobufCBinaryData){payload, pl};
    size_t n = relistlab__lab_object__get_packed_size(&o);
    uint8_t *buf = malloc(n);
    relistlab__lab_object__pack(&o, buf);
    int64_t rev = live_put_raw(key, buf, n);
    free(buf);
    free(pl);
    return rev;
}

static int64_t live_del(const char *resource, const char *ns, const char *name) {
    char key[256];
    snprintf(key, sizeof key, "/registry/%s/%s/%s", resource, ns, name);
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    d.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    live_result r = {0};
    int st = live_unary("/etcdserverpb.KV/DeleteRange", &d.base, &r);
    int64_t rev = -1;
    if (st == 0) {
        Etcdserverpb__DeleteRangeResponse *dr =
            etcdserverpb__delete_range_response__unpack(NULL, r.len, r.data);
        if (dr && dr->header) rev = dr->header->revision;
        if (dr) etcdserverpb__delete_range_response__free_unpacked(dr, NULL);
    }
    free(r.data);
    return rev;
}

static int live_compact(int64_t rev) {
    Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    c.revision = rev;
    live_result r = {0};
    int st = live_unary("/etcdserverpb.KV/Compact", &c.base, &r);
    free(r.data);
    return st;
}

static bool live_ready_probe(void *arg) {
    (void)arg;
    return live_put_raw("/live-ready", "1", 1) > 0;
}

/* Waits until a Put succeeds (the server listens and, for etcd, has elected itself). */
static bool live_wait_ready(void) {
    return etcd_proc_wait_ready(&L.proc, &L.loop, live_ready_probe, NULL, 15000);
}

static void live_kill(int sig) {
    etcd_proc_kill(&L.proc, sig);
}

/* Restarts the server on the same port and data dir. */
static bool live_restart(void) {
    live_kill(SIGTERM);
    if (L.c) {
        grpc_client_free(L.c);
        L.c = NULL;
    }
    L.restarts++;
    return etcd_proc_spawn(&L.proc) == 0 && live_wait_ready();
}

static bool live_resolve_bin(void) {
    const char *spec = getenv("RELIST_REFL_SERVER");
    if (!spec || !*spec) spec = LIVE_SERVER_DEFAULT;
    if (!strcmp(spec, "etcd")) {
        strcpy(L.kind, "etcd");
        snprintf(L.bin, sizeof L.bin, "/usr/bin/etcd");
    } else if (!strncmp(spec, "etcd:", 5)) {
        strcpy(L.kind, "etcd");
        snprintf(L.bin, sizeof L.bin, "%s", spec + 5);
    } else if (!strcmp(spec, "kvstore:auto")) {
        strcpy(L.kind, "kvstore");
        char self[1024];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) return false;
        self[n] = 0;
        snprintf(L.bin, sizeof L.bin, "%s/../kvstore", dirname(self));
    } else if (!strncmp(spec, "kvstore:", 8)) {
        strcpy(L.kind, "kvstore");
        snprintf(L.bin, sizeof L.bin, "%s", spec + 8);
    } else {
        snprintf(L.why, sizeof L.why, "bad RELIST_REFL_SERVER \"%s\"", spec);
        return false;
    }
    if (access(L.bin, X_OK) != 0) {
        snprintf(L.why, sizeof L.why, "%.300s not found (server spec \"%.100s\")", L.bin, spec);
        return false;
    }
    return true;
}

static int live_setup(void **state) {
    (void)state;
    memset(&L, 0, sizeof L);
    uv_loop_init(&L.loop);
    if (!live_resolve_bin()) return 0;
    etcd_proc_init(&L.proc, L.bin, !strcmp(L.kind, "kvstore"), "refl-live");
    for (int attempt = 0; attempt < 3 && !L.ok; attempt++) {
        if (etcd_proc_start(&L.proc) != 0) continue;
        snprintf(L.ep, sizeof L.ep, "%s", L.proc.ep);
        L.ok = live_wait_ready();
        if (!L.ok) live_kill(SIGKILL);
    }
    if (!L.ok)
        snprintf(L.why, sizeof L.why, "%.200s did not start (log %.250s)", L.bin, L.proc.logpath);
    return 0;
}

static int live_teardown(void **state) {
    (void)state;
    if (L.c) grpc_client_free(L.c);
    L.c = NULL;
    uv_run(&L.loop, UV_RUN_NOWAIT);
    live_kill(SIGKILL);
    uv_run(&L.loop, UV_RUN_DEFAULT);
    uv_loop_close(&L.loop);
    etcd_proc_cleanup(&L.proc);
    return 0;
}

#define LIVE_REQUIRE()                                                                             \
    do {                                                                                           \
        if (!L.ok) {                                                                               \
            print_message("SKIP: %s\n", L.why[0] ? L.why : "no server");                           \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- fleet helpers ------------------------------------------------------------------------- */

static refl_fleet_opts live_opts(const char *prefix, size_t count) {
    static const char *eps[1];
    eps[0] = L.ep;
    refl_fleet_opts o = {0};
    o.endpoints = eps;
    o.n_endpoints = 1;
    o.count = count;
    o.prefix = prefix;
    o.page_size = 500;
    o.seed = 42;
    return o;
}

static refl_fleet *live_fleet(const refl_fleet_opts *o) {
    char err[200];
    refl_fleet *f = refl_fleet_new(&L.loop, o, err, sizeof err);
    if (!f) fail_msg("refl_fleet_new: %s", err);
    if (refl_fleet_start(f) != 0) fail_msg("refl_fleet_start failed");
    return f;
}

static void live_set_true(void *ud) {
    *(bool *)ud = true;
}

static void live_fleet_free(refl_fleet *f) {
    bool done = false;
    refl_fleet_stop(f, live_set_true, &done);
    if (!live_run_until(&done, 5000)) fail_msg("fleet did not stop");
    refl_fleet_free(f);
}

typedef struct live_sync {
    refl_fleet *f;
    int64_t rev; /* every watcher at or past this revision (0: just synced) */
} live_sync;

static bool live_all_synced(void *arg) {
    live_sync *s = arg;
    for (size_t i = 0; i < refl_fleet_count(s->f); i++) {
        refl_watcher_info wi;
        refl_fleet_watcher_info(s->f, i, &wi);
        if (wi.state != REFL_ST_WATCHING || !wi.synced || wi.revision < s->rev) return false;
    }
    return true;
}

static void live_wait_synced(refl_fleet *f, int64_t rev, uint64_t timeout_ms) {
    live_sync s = {f, rev};
    if (!live_wait(live_all_synced, &s, timeout_ms)) {
        for (size_t i = 0; i < refl_fleet_count(f); i++) {
            refl_watcher_info wi;
            refl_fleet_watcher_info(f, i, &wi);
            print_message("  %s %s state %s synced %d rev %lld (want %lld)\n", wi.name, wi.prefix,
                          refl_state_name(wi.state), wi.synced, (long long)wi.revision,
                          (long long)rev);
        }
        fail_msg("watchers did not reach revision %lld", (long long)rev);
    }
}

typedef struct live_vres {
    bool done;
    refl_verify_round r;
} live_vres;

static void live_on_verify(void *ud, const refl_verify_round *r) {
    live_vres *v = ud;
    v->r = *r;
    v->done = true;
}

static refl_verify_round live_verify(refl_fleet *f) {
    live_vres v = {0};
    assert_int_equal(refl_fleet_verify(f, 8000, live_on_verify, &v), 0);
    if (!live_run_until(&v.done, 10000)) fail_msg("verification did not finish");
    return v.r;
}

static refl_watcher_info live_info(refl_fleet *f, size_t i) {
    refl_watcher_info wi;
    assert_int_equal(refl_fleet_watcher_info(f, i, &wi), 0);
    return wi;
}

#endif
