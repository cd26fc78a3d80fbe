/* test_crash_kill.c — crash safety of `kvstore serve`: the REAL binary runs as a child process
 * (durable, default flags) under a write load and is killed with SIGKILL at random moments,
 * then restarted on the same data dir. After every restart:
 *   - every acknowledged put is still there: Range(key, revision = its revision) returns it with
 *     its value and mod_revision, and the latest value of each key is its last acknowledged put
 *     (or the one put that was in flight at the kill, which may or may not have committed);
 *   - the store revision never goes back (>= every acknowledged revision and the last restart's);
 *   - revisions are never reused (acks after a restart are above the restart's revision, and
 *     all acknowledged revisions are distinct);
 *   - a watcher resuming from its last seen revision + 1 sees no gap and no duplicate, and the
 *     event at each acknowledged revision is that put.
 * Design: one libuv loop drives NCONN client connections shared by NWRITERS writers; each
 * writer has one put in flight at a time on keys it alone owns, so "in flight at the kill" is at
 * most one put per writer and the expected state of every key is exact. Checks record failures
 * as values (callbacks cannot longjmp out of uv_run) and are asserted between phases.
 * The kvstore path comes from $RELIST_KVSTORE_BIN or the RELIST_KVSTORE_BIN compile definition
 * (tests/integration/reliability.cmake). Kills: 25 by default; $RELIST_CRASH_KILLS or --long
 * (200) for more; $RELIST_CRASH_SEED replays a run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcd_proc.h" /* kvstore serve on port 0, run_until_fn */
#include "grpc.h"
#include "rpc.pb-c.h"
#include "testutil.h"

#define P_RANGE "/etcdserverpb.KV/Range"
#define P_PUT   "/etcdserverpb.KV/Put"
#define P_WATCH "/etcdserverpb.Watch/Watch"

enum { NCONN = 4, NWRITERS = 24, NSLOTS = 8, MAX_INFLIGHT_CHECKS = 128, SAMPLE_OLD = 300 };

static int g_kills = 25;

/* ================================================================ the child process */

static const char *kvstore_bin(void) {
    return etcd_proc_kvstore_bin();
}

typedef struct child {
    pid_t pid;
    int port;
    int out; /* read end of its stdout (kept open so a late print never hits EPIPE) */
} child;

/* Starts `kvstore serve` on dir at an ephemeral port; waits for its "serving" line. */
static void child_start(child *ch, const char *dir) {
    const char *bin = kvstore_bin();
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) etcd_proc_exec_serve(bin, dir, pfd[1], false);
    close(pfd[1]);
    char line[512];
    ch->pid = pid;
    ch->out = pfd[0];
    ch->port = etcd_proc_read_serving_port(pfd[0], line, sizeof line);
    if (ch->port <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("kvstore did not start (output \"%s\")", line);
    }
}

/* Waits for the child after a kill; returns its wait status. */
static int child_reap(child *ch) {
    int st = 0;
    while (waitpid(ch->pid, &st, 0) < 0 && errno == EINTR) {
    }
    close(ch->out);
    ch->pid = 0;
    return st;
}

/* ================================================================ test state */

typedef struct ack {
    int w, slot;
    uint64_t seq;
    int64_t rev;
} ack;

struct crash;

typedef struct writer {
    struct crash *t;
    int id, conn;
    uint64_t next_seq;
    bool busy;    /* a put is in flight */
    bool stopped; /* its connection failed: wait for the restart */
    /* the put whose outcome is unknown (sent, no answer before the kill) */
    bool has_inflight;
    int inflight_slot;
    uint64_t inflight_seq;
    /* the last put known committed per slot (acked or observed); rev 0 = none */
    uint64_t last_seq[NSLOTS];
    int64_t last_rev[NSLOTS];
} writer;

typedef struct crash {
    uv_loop_t loop;
    child ch;
    char *dir;
    grpc_client *cl[NCONN];
    writer w[NWRITERS];
    bool loading;

    ack *acks;
    size_t n_acks, cap_acks;
    size_t checked_upto; /* acks before this were point-checked after a restart */
    size_t hist_checked; /* acks before this were compared with the watch history */
    int64_t max_acked;   /* highest acknowledged (or observed committed) revision */
    int64_t cycle_floor; /* store revision at the last restart: later acks must exceed it */
    int64_t last_restart_rev;
    uint64_t adopted;      /* in-flight puts found committed after a restart */
    uint64_t point_checks; /* Range-at-revision checks done */

    /* watch */
    grpc_cstream *ws;
    bool watch_unimpl, watch_closed;
    int64_t watch_last; /* last event revision seen */
    uint64_t *hist;     /* hist[rev] = (writer + 1) << 48 | seq, from watch events */
    size_t hist_cap;
    uint64_t watch_events, watch_resumes;

    int failures;
    char fail[1024];
} crash;

static void failf(crash *t, const char *fmt, ...) {
    if (t->failures++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->fail, sizeof t->fail, fmt, ap);
        va_end(ap);
    }
}

static void check_ok(crash *t) {
    if (t->failures) fail_msg("%d failure(s); first: %s", t->failures, t->fail);
}

static ProtobufCBinaryData bd(const char *s) {
    return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

static void key_of(char *buf, size_t n, int w, int slot) {
    snprintf(buf, n, "/crash/w%02d/%d", w, slot);
}

/* Values carry their writer and sequence number, padded so the log has some weight. */
static int value_of(char *buf, size_t n, int w, uint64_t seq) {
    return snprintf(buf, n, "w%02d:%llu:%s", w, (unsigned long long)seq,
                    "................................................................");
}

static bool parse_key(ProtobufCBinaryData k, int *w, int *slot) {
    char s[64];
    if (k.len >= sizeof s) return false;
    memcpy(s, k.data, k.len);
    s[k.len] = 0;
    return sscanf(s, "/crash/w%d/%d", w, slot) == 2 && *w >= 0 && *w < NWRITERS && *slot >= 0 &&
           *slot < NSLOTS;
}

static bool parse_value(ProtobufCBinaryData v, int *w, uint64_t *seq) {
    char s[32];
    size_t n = v.len < sizeof s - 1 ? v.len : sizeof s - 1;
    memcpy(s, v.data, n);
    s[n] = 0;
    unsigned long long q;
    if (sscanf(s, "w%d:%llu:", w, &q) != 2) return false;
    *seq = q;
    return true;
}

static void add_ack(crash *t, int w, int slot, uint64_t seq, int64_t rev) {
    if (t->n_acks == t->cap_acks) {
        t->cap_acks = t->cap_acks ? t->cap_acks * 2 : 4096;
        t->acks = realloc(t->acks, t->cap_acks * sizeof *t->acks);
        assert_non_null(t->acks);
    }
    t->acks[t->n_acks++] = (ack){w, slot, seq, rev};
    if (rev > t->max_acked) t->max_acked = rev;
    t->w[w].last_seq[slot] = seq;
    t->w[w].last_rev[slot] = rev;
}

/* ================================================================ the write load */

static void writer_next(writer *w);

static void on_put(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    writer *w = ud;
    crash *t = w->t;
    w->busy = false;
    if (status != GRPC_STATUS_OK) {
        /* the kill: the outcome of this put is unknown until the restart */
        if (t->loading && status != GRPC_STATUS_UNAVAILABLE && status != GRPC_STATUS_CANCELLED)
            failf(t, "put failed while serving: %s %s", grpc_status_name(status), message);
        w->stopped = true;
        return;
    }
    Etcdserverpb__PutResponse *pr = etcdserverpb__put_response__unpack(NULL, len, resp);
    if (!pr || !pr->header) {
        failf(t, "undecodable PutResponse");
        w->stopped = true;
        if (pr) etcdserverpb__put_response__free_unpacked(pr, NULL);
        return;
    }
    int64_t rev = pr->header->revision;
    etcdserverpb__put_response__free_unpacked(pr, NULL);
    int slot = w->inflight_slot;
    if (rev <= t->cycle_floor)
        failf(t, "revision reused: put acked at %lld, store was at %lld at the restart",
              (long long)rev, (long long)t->cycle_floor);
    if (rev <= w->last_rev[slot])
        failf(t, "key w%02d/%d went back: %lld after %lld", w->id, slot, (long long)rev,
              (long long)w->last_rev[slot]);
    add_ack(t, w->id, slot, w->inflight_seq, rev);
    w->has_inflight = false;
    writer_next(w);
}

static void writer_next(writer *w) {
    crash *t = w->t;
    if (!t->loading || w->stopped || w->busy) return;
    uint64_t seq = w->next_seq++;
    int slot = (int)(seq % NSLOTS);
    char key[64], val[128];
    key_of(key, sizeof key, w->id, slot);
    value_of(val, sizeof val, w->id, seq);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd(key);
    p.value = bd(val);
    uint8_t buf[256];
    size_t n = etcdserverpb__put_request__pack(&p, buf);
    w->inflight_slot = slot;
    w->inflight_seq = seq;
    w->has_inflight = true;
    w->busy = true;
    if (grpc_client_unary(t->cl[w->conn], P_PUT, buf, n, 10000, on_put, w) != 0) {
        w->busy = false;
        w->has_inflight = false; /* never sent */
        w->stopped = true;
    }
}

static bool writers_idle(void *arg) {
    const crash *t = arg;
    for (int i = 0; i < NWRITERS; i++)
        if (t->w[i].busy) return false;
    return true;
}

/* ================================================================ synchronous unary calls */

static Etcdserverpb__RangeResponse *range_sync(crash *t, Etcdserverpb__RangeRequest *q) {
    uint8_t buf[512];
    size_t n = etcdserverpb__range_request__pack(q, buf);
    result r = {0};
    int st = unary_raw_wait(&t->loop, t->cl[0], P_RANGE, buf, n, &r, 20000, 30000);
    if (st == -100) fail_msg("range: no answer");
    assert_true(st >= 0); /* the call was sent */
    if (r.status != 0) fail_msg("range: %s %s", grpc_status_name(r.status), r.message);
    Etcdserverpb__RangeResponse *rr = etcdserverpb__range_response__unpack(NULL, r.len, r.data);
    free(r.data);
    assert_non_null(rr);
    assert_non_null(rr->header);
    return rr;
}

/* ================================================================ the watcher */

static void hist_set(crash *t, int64_t rev, uint64_t v) {
    if ((size_t)rev >= t->hist_cap) {
        size_t nc = t->hist_cap ? t->hist_cap : 65536;
        while (nc <= (size_t)rev)
            nc *= 2;
        t->hist = realloc(t->hist, nc * sizeof *t->hist);
        assert_non_null(t->hist);
        memset(t->hist + t->hist_cap, 0, (nc - t->hist_cap) * sizeof *t->hist);
        t->hist_cap = nc;
    }
    t->hist[rev] = v;
}

static void ws_msg(grpc_cstream *s, const uint8_t *msg, size_t len, void *ud) {
    (void)s;
    crash *t = ud;
    Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(NULL, len, msg);
    if (!r) {
        failf(t, "undecodable WatchResponse");
        return;
    }
    if (r->canceled)
        failf(t, "watch canceled (compact_revision %lld, reason \"%s\")",
              (long long)r->compact_revision, r->cancel_reason ? r->cancel_reason : "");
    for (size_t i = 0; i < r->n_events; i++) {
        const Mvccpb__Event *e = r->events[i];
        int64_t rev = e->kv ? e->kv->mod_revision : -1;
        int w, slot, vw;
        uint64_t seq;
        if (e->type != MVCCPB__EVENT__EVENT_TYPE__PUT || !e->kv ||
            !parse_key(e->kv->key, &w, &slot) || !parse_value(e->kv->value, &vw, &seq) || vw != w) {
            failf(t, "unexpected watch event at revision %lld", (long long)rev);
            continue;
        }
        if (rev <= t->watch_last)
            failf(t, "watch duplicate: revision %lld after %lld", (long long)rev,
                  (long long)t->watch_last);
        else if (rev != t->watch_last + 1)
            failf(t, "watch gap: revision %lld after %lld", (long long)rev,
                  (long long)t->watch_last);
        if (rev > t->watch_last) t->watch_last = rev;
        hist_set(t, rev, ((uint64_t)(w + 1) << 48) | seq);
        t->watch_events++;
    }
    etcdserverpb__watch_response__free_unpacked(r, NULL);
}

static void ws_close(grpc_cstream *s, int status, const char *message, void *ud) {
    (void)s;
    crash *t = ud;
    t->ws = NULL;
    t->watch_closed = true;
    if (status == GRPC_STATUS_UNIMPLEMENTED) {
        t->watch_unimpl = true;
        print_message("Watch answers UNIMPLEMENTED: the watcher part is skipped (%s)\n", message);
    } else if (t->loading == false && status != GRPC_STATUS_UNAVAILABLE &&
               status != GRPC_STATUS_CANCELLED && status != GRPC_STATUS_OK) {
        failf(t, "watch closed: %s %s", grpc_status_name(status), message);
    }
}

static void watch_open(crash *t) {
    if (t->watch_unimpl) return;
    grpc_cstream_cbs cbs = {.on_message = ws_msg, .on_close = ws_close};
    t->watch_closed = false;
    t->ws = grpc_client_stream_open(t->cl[NCONN - 1], P_WATCH, NULL, 0, &cbs, t);
    assert_non_null(t->ws);
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    cr.key = bd("/crash/");
    cr.range_end = bd("/crash0");
    cr.start_revision = t->watch_last + 1;
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    req.create_request = &cr;
    uint8_t buf[128];
    size_t n = etcdserverpb__watch_request__pack(&req, buf);
    assert_true(grpc_cstream_send(t->ws, buf, n) >= 0);
    t->watch_resumes++;
}

static int64_t g_watch_target;
static bool watch_caught_up(void *arg) {
    const crash *t = arg;
    return t->watch_unimpl || t->watch_closed || t->watch_last >= g_watch_target;
}

/* ================================================================ checks after a restart */

/* Latest state: every key holds its last known committed put, or the in-flight one. */
static void check_latest(crash *t) {
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("/crash/");
    q.range_end = bd("/crash0");
    Etcdserverpb__RangeResponse *rr = range_sync(t, &q);
    int64_t cur = rr->header->revision;
    bool seen[NWRITERS][NSLOTS];
    memset(seen, 0, sizeof seen);
    for (size_t i = 0; i < rr->n_kvs; i++) {
        const Mvccpb__KeyValue *kv = rr->kvs[i];
        int w, slot, vw;
        uint64_t seq;
        if (!parse_key(kv->key, &w, &slot) || !parse_value(kv->value, &vw, &seq) || vw != w) {
            failf(t, "unexpected key/value in the store");
            continue;
        }
        seen[w][slot] = true;
        writer *wr = &t->w[w];
        if (seq == wr->last_seq[slot] && kv->mod_revision == wr->last_rev[slot] &&
            wr->last_rev[slot] != 0)
            continue;
        if (wr->has_inflight && wr->inflight_slot == slot && seq == wr->inflight_seq &&
            kv->mod_revision > wr->last_rev[slot] && kv->mod_revision > t->cycle_floor) {
            add_ack(t, w, slot, seq, kv->mod_revision); /* committed, answer lost: adopt */
            t->adopted++;
            continue;
        }
        failf(t,
              "after restart w%02d/%d holds seq %llu at revision %lld; last acknowledged seq "
              "%llu at %lld (in flight: %s seq %llu)",
              w, slot, (unsigned long long)seq, (long long)kv->mod_revision,
              (unsigned long long)wr->last_seq[slot], (long long)wr->last_rev[slot],
              wr->has_inflight ? "yes" : "no", (unsigned long long)wr->inflight_seq);
    }
    for (int w = 0; w < NWRITERS; w++)
        for (int s = 0; s < NSLOTS; s++)
            if (t->w[w].last_rev[s] != 0 && !seen[w][s])
                failf(t, "acknowledged key w%02d/%d (revision %lld) lost", w, s,
                      (long long)t->w[w].last_rev[s]);
    if (cur < t->max_acked)
        failf(t, "store revision %lld < highest acknowledged %lld", (long long)cur,
              (long long)t->max_acked);
    if (cur < t->last_restart_rev)
        failf(t, "store revision went back: %lld after %lld", (long long)cur,
              (long long)t->last_restart_rev);
    t->last_restart_rev = cur;
    t->cycle_floor = cur;
    for (int w = 0; w < NWRITERS; w++)
        t->w[w].has_inflight = false;
    etcdserverpb__range_response__free_unpacked(rr, NULL);
}

/* Point checks: Range(key, revision = rev) of acknowledged puts, pipelined. */
typedef struct pcheck {
    crash *t;
    size_t *pending; /* ack indexes */
    size_t n, next, done, inflight;
} pcheck;

typedef struct pcall {
    pcheck *pc;
    size_t idx;
} pcall;

static void pc_issue(pcheck *pc);

static void on_point(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    pcall *c = ud;
    pcheck *pc = c->pc;
    crash *t = pc->t;
    const ack *a = &t->acks[c->idx];
    free(c);
    pc->inflight--;
    pc->done++;
    t->point_checks++;
    if (status != 0) {
        failf(t, "range at revision %lld: %s %s", (long long)a->rev, grpc_status_name(status),
              message);
    } else {
        Etcdserverpb__RangeResponse *rr = etcdserverpb__range_response__unpack(NULL, len, resp);
        int vw = -1;
        uint64_t seq = 0;
        if (!rr || rr->n_kvs != 1 || rr->kvs[0]->mod_revision != a->rev ||
            !parse_value(rr->kvs[0]->value, &vw, &seq) || vw != a->w || seq != a->seq)
            failf(t,
                  "acknowledged put w%02d/%d seq %llu at revision %lld not found at that "
                  "revision (%zu kvs, mod_revision %lld, seq %llu)",
                  a->w, a->slot, (unsigned long long)a->seq, (long long)a->rev, rr ? rr->n_kvs : 0,
                  rr && rr->n_kvs ? (long long)rr->kvs[0]->mod_revision : -1LL,
                  (unsigned long long)seq);
        if (rr) etcdserverpb__range_response__free_unpacked(rr, NULL);
    }
    pc_issue(pc);
}

static void pc_issue(pcheck *pc) {
    crash *t = pc->t;
    while (pc->next < pc->n && pc->inflight < MAX_INFLIGHT_CHECKS) {
        size_t idx = pc->pending[pc->next++];
        const ack *a = &t->acks[idx];
        char key[64];
        key_of(key, sizeof key, a->w, a->slot);
        Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
        q.key = bd(key);
        q.revision = a->rev;
        uint8_t buf[128];
        size_t n = etcdserverpb__range_request__pack(&q, buf);
        pcall *c = malloc(sizeof *c);
        *c = (pcall){pc, idx};
        pc->inflight++;
        if (grpc_client_unary(t->cl[idx % NCONN], P_RANGE, buf, n, 20000, on_point, c) != 0) {
            free(c);
            pc->inflight--;
            pc->done++;
            failf(t, "could not issue a range");
        }
    }
}

static pcheck *g_pc;
static bool pc_done(void *arg) {
    (void)arg;
    return g_pc->done == g_pc->n;
}

/* Checks the acks since the last restart, plus `sample` random older ones (all when < 0). */
static void check_points(crash *t, long sample) {
    pcheck pc = {.t = t};
    size_t fresh = t->n_acks - t->checked_upto;
    size_t old = t->checked_upto;
    size_t extra = sample < 0 ? old : (size_t)sample < old ? (size_t)sample : old;
    pc.pending = malloc((fresh + extra + 1) * sizeof *pc.pending);
    for (size_t i = t->checked_upto; i < t->n_acks; i++)
        pc.pending[pc.n++] = i;
    for (size_t i = 0; i < extra; i++)
        pc.pending[pc.n++] = sample < 0 ? i : (size_t)rand() % old;
    g_pc = &pc;
    pc_issue(&pc);
    if (!run_until_fn(&t->loop, pc_done, t, 60000))
        fail_msg("point checks: %zu of %zu done", pc.done, pc.n);
    t->checked_upto = t->n_acks;
    free(pc.pending);
}

/* The watch saw, at each acknowledged revision, exactly that put. */
static void check_hist(crash *t) {
    if (t->watch_unimpl) return;
    for (size_t i = t->hist_checked; i < t->n_acks; i++) {
        const ack *a = &t->acks[i];
        uint64_t want = ((uint64_t)(a->w + 1) << 48) | a->seq;
        uint64_t got = (size_t)a->rev < t->hist_cap ? t->hist[a->rev] : 0;
        if (got != want)
            failf(t, "watch history at revision %lld: %s, acknowledged put w%02d seq %llu",
                  (long long)a->rev, got ? "a different put" : "no event", a->w,
                  (unsigned long long)a->seq);
    }
    t->hist_checked = t->n_acks;
}

static int cmp_rev(const void *a, const void *b) {
    int64_t x = ((const ack *)a)->rev, y = ((const ack *)b)->rev;
    return x < y ? -1 : x > y;
}

/* ================================================================ the cycle */

static void connect_all(crash *t) {
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", t->ch.port);
    for (int i = 0; i < NCONN; i++) {
        t->cl[i] = grpc_client_new(&t->loop, target, NULL);
        assert_non_null(t->cl[i]);
    }
}

static void disconnect_all(crash *t) {
    if (t->ws) grpc_cstream_cancel(t->ws);
    t->ws = NULL;
    for (int i = 0; i < NCONN; i++) {
        grpc_client_free(t->cl[i]);
        t->cl[i] = NULL;
    }
    for (int i = 0; i < 20; i++)
        uv_run(&t->loop, UV_RUN_NOWAIT);
}

static void on_kill(uv_timer_t *tm) {
    crash *t = tm->data;
    t->loading = false;
    assert_int_equal(kill(t->ch.pid, SIGKILL), 0);
}

/* Restart + checks; returns the store revision. */
static void restart_and_check(crash *t, bool full) {
    child_start(&t->ch, t->dir);
    connect_all(t);
    check_latest(t);
    check_points(t, full ? -1 : SAMPLE_OLD);
    watch_open(t);
    g_watch_target = t->last_restart_rev;
    if (!run_until_fn(&t->loop, watch_caught_up, t, 20000))
        failf(t, "watch did not catch up to %lld (at %lld)", (long long)g_watch_target,
              (long long)t->watch_last);
    if (t->watch_closed && !t->watch_unimpl)
        failf(t, "watch closed while catching up to %lld", (long long)g_watch_target);
    check_hist(t);
    check_ok(t);
}

static void test_crash_kill(void **state) {
    (void)state;
    if (!kvstore_bin()) skip();
    unsigned seed = (unsigned)time(NULL);
    if (getenv("RELIST_CRASH_SEED"))
        seed = (unsigned)strtoul(getenv("RELIST_CRASH_SEED"), NULL, 10);
    if (getenv("RELIST_CRASH_KILLS")) g_kills = atoi(getenv("RELIST_CRASH_KILLS"));
    srand(seed);
    crash *t = calloc(1, sizeof *t);
    assert_non_null(t);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    t->dir = tu_mkdtemp("crash-kill");
    t->watch_last = 1; /* etcd's store starts at revision 1; the first put is revision 2 */
    for (int i = 0; i < NWRITERS; i++)
        t->w[i] = (writer){.t = t, .id = i, .conn = i % NCONN};
    uint64_t t0 = uv_hrtime();
    print_message("crash test: %s, %d kills, seed %u, data dir %s\n", kvstore_bin(), g_kills, seed,
                  t->dir);

    child_start(&t->ch, t->dir);
    connect_all(t);
    watch_open(t);
    uv_timer_t killer;
    uv_timer_init(&t->loop, &killer);
    killer.data = t;
    for (int k = 0; k < g_kills; k++) {
        /* load, then SIGKILL at a random moment */
        size_t before = t->n_acks;
        t->loading = true;
        for (int i = 0; i < NWRITERS; i++) {
            t->w[i].stopped = false;
            writer_next(&t->w[i]);
        }
        uv_timer_start(&killer, on_kill, 100 + (uint64_t)(rand() % 501), 0);
        while (t->loading)
            uv_run(&t->loop, UV_RUN_ONCE);
        if (!run_until_fn(&t->loop, writers_idle, t, 20000))
            fail_msg("puts still in flight 20 s after kill");
        int st = child_reap(&t->ch);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        disconnect_all(t);
        check_ok(t);
        size_t cycle_acks = t->n_acks - before;
        if (cycle_acks == 0) print_message("kill %d: no put acknowledged in this cycle\n", k + 1);
        restart_and_check(t, k == g_kills - 1);
    }
    uv_close((uv_handle_t *)&killer, NULL);

    /* every acknowledged revision is distinct */
    ack *sorted = malloc((t->n_acks + 1) * sizeof *sorted);
    memcpy(sorted, t->acks, t->n_acks * sizeof *sorted);
    qsort(sorted, t->n_acks, sizeof *sorted, cmp_rev);
    for (size_t i = 1; i < t->n_acks; i++)
        if (sorted[i].rev == sorted[i - 1].rev)
            failf(t, "revision %lld acknowledged twice", (long long)sorted[i].rev);
    free(sorted);
    check_ok(t);

    double secs = (double)(uv_hrtime() - t0) / 1e9;
    print_message("crash test: %d SIGKILLs in %.1f s; %zu acknowledged puts (%llu in-flight puts "
                  "found committed), %llu point checks (Range at revision), final revision %lld; "
                  "watch: %s, %llu events over %llu resumes\n",
                  g_kills, secs, t->n_acks, (unsigned long long)t->adopted,
                  (unsigned long long)t->point_checks, (long long)t->last_restart_rev,
                  t->watch_unimpl ? "UNIMPLEMENTED (skipped)" : "no gap, no duplicate",
                  (unsigned long long)t->watch_events, (unsigned long long)t->watch_resumes);
    assert_true(t->n_acks > 0);

    /* clean stop */
    disconnect_all(t);
    kill(t->ch.pid, SIGTERM);
    child_reap(&t->ch);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    tu_rmtree(t->dir);
    free(t->acks);
    free(t->hist);
    free(t);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--long")) g_kills = 200;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_kill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
