/* runner.c — the measurement engine: connections to one target, closed-loop operation slots,
 * the warmup/window/drain phases of a round, live progress, and synchronous helpers for setup
 * (seeding in pipelined Txn batches).
 *
 * Timing rules (what a reported figure means):
 * - latency = completion callback time - issue time (uv_hrtime), for every op ISSUED inside the
 *   window (also those finishing during the drain), successful ones only;
 * - throughput = successful ops issued AND completed inside the window / window length;
 * - the next op of a slot is issued from the completion callback, so C slots keep C requests in
 *   flight; ops issued in warmup are not recorded.
 * - client CPU = getrusage(RUSAGE_SELF) over the window (kvbench is single-threaded), server CPU
 *   from /proc/PID/stat for targets started here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "kvbench.h"
#include "rpc.pb-c.h"

/* ------------------------------------------------------------------ small helpers */

uint64_t kb_rand(kb_env *e) {
    uint64_t x = e->rng ? e->rng : 88172645463325252ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    e->rng = x;
    return x;
}

uint64_t kb_rand_below(kb_env *e, uint64_t n) {
    return n ? kb_rand(e) % n : 0;
}

size_t kb_prefix_end(const char *prefix, char *buf, size_t cap) {
    size_t n = strlen(prefix);
    if (n == 0 || n >= cap) return 0;
    memcpy(buf, prefix, n);
    buf[n - 1]++;
    return n;
}

void kb_fill_value(uint8_t *v, size_t n, uint64_t salt) {
    uint64_t x = salt * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        if (i < 16 || (i & 63) == 0) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        v[i] = (uint8_t)('a' + (x >> (i & 31)) % 26);
    }
}

static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void on_wake(uv_timer_t *t) {
    (void)t;
}

/* Runs the loop until *flag, the timeout, an interruption or a broken connection. */
static bool run_until(kb_env *e, const bool *flag, uint64_t timeout_ms) {
    uv_timer_t t;
    uv_timer_init(e->loop, &t);
    uv_timer_start(&t, on_wake, 20, 20);
    uint64_t end = uv_now(e->loop) + timeout_ms;
    while (!*flag && uv_now(e->loop) < end && !kb_interrupted())
        uv_run(e->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(e->loop, UV_RUN_NOWAIT);
    return *flag;
}

/* ------------------------------------------------------------------ connections */

static void on_disconnect(void *ud, grpc_client *c, int status, const char *message) {
    (void)c;
    kb_env *e = ud;
    if (!e->broken)
        snprintf(e->err, sizeof e->err, "connection to %s lost (%d %s)", e->t->addr, status,
                 message ? message : "");
    e->broken = true;
}

static grpc_client *connect_one(kb_env *e) {
    /* a LIST of 100,000 x 1 KiB is ~107 MB: above the client default of 64 MiB */
    grpc_client_opts co = {
        .max_recv_msg_size = (size_t)1 << 30, .on_disconnect = on_disconnect, .ud = e};
    return grpc_client_new(e->loop, e->t->addr, &co);
}

typedef struct sync_call {
    bool done;
    int status;
    char message[256];
    uint8_t *resp;
    size_t len;
} sync_call;

static void on_sync(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    sync_call *s = ud;
    s->done = true;
    s->status = status;
    snprintf(s->message, sizeof s->message, "%s", message ? message : "");
    if (resp) {
        s->resp = malloc(len ? len : 1);
        if (s->resp) memcpy(s->resp, resp, len);
        s->len = len;
    }
}

/* One call on connection c, running the loop until it completes. Returns the grpc status or -1
 * (not issued / timeout / interrupted; msg says which). *resp (malloc'd) only when wanted. A call
 * that timed out locally may still complete later: its record is then deliberately leaked. */
static int call_on(kb_env *e, grpc_client *c, const char *path, const ProtobufCMessage *req,
                   uint32_t timeout_ms, char *msg, size_t cap, uint8_t **resp, size_t *len) {
    size_t n = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    sync_call *s = calloc(1, sizeof *s);
    if (!buf || !s) {
        free(buf);
        free(s);
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    protobuf_c_message_pack(req, buf);
    int rv = grpc_client_unary(c, path, buf, n, timeout_ms, on_sync, s);
    free(buf);
    if (rv != 0) {
        snprintf(msg, cap, "cannot issue the call (%d)", rv);
        free(s);
        return -1;
    }
    if (!run_until(e, &s->done, (uint64_t)timeout_ms + 1000)) {
        snprintf(msg, cap, "%s", kb_interrupted() ? "interrupted" : "timeout");
        return -1;
    }
    snprintf(msg, cap, "%s", s->message);
    rv = s->status;
    if (resp) {
        *resp = s->resp;
        *len = s->len;
    } else {
        free(s->resp);
    }
    free(s);
    return rv;
}

int kb_unary_sync(kb_env *e, const char *path, const ProtobufCMessage *req, uint8_t **resp,
                  size_t *len, char *err, size_t errlen) {
    char msg[256];
    int rv = call_on(e, e->conns[0], path, req, e->o->timeout_ms, msg, sizeof msg, resp, len);
    if (rv != 0) snprintf(err, errlen, "%s: %d %.160s", path, rv, msg);
    return rv;
}

int kb_env_open(kb_env *e, uv_loop_t *loop, const kb_opts *o, kb_target *t, char *err,
                size_t errlen) {
    memset(e, 0, sizeof *e);
    e->loop = loop;
    e->o = o;
    e->t = t;
    e->rng = o->seed * 0x9e3779b97f4a7c15ull + 12345;
    e->n_conns = o->conns > 0 ? o->conns : 1;
    e->conns = calloc((size_t)e->n_conns, sizeof *e->conns);
    if (!e->conns) return -1;
    /* the first connection retries until the server answers a Range (etcd elects itself) */
    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key = (ProtobufCBinaryData){15, (uint8_t *)"/kvbench/probe/"};
    char msg[256] = "";
    int st = -1;
    uint64_t end = uv_now(loop) + 20000;
    while (st != 0 && uv_now(loop) < end && !kb_interrupted()) {
        if (e->conns[0] && (e->broken || !grpc_client_is_connected(e->conns[0]))) {
            grpc_client_free(e->conns[0]);
            e->conns[0] = NULL;
            e->broken = false;
        }
        if (!e->conns[0]) e->conns[0] = connect_one(e);
        if (!e->conns[0]) break;
        st = call_on(e, e->conns[0], "/etcdserverpb.KV/Range", &rq.base, 2000, msg, sizeof msg,
                     NULL, NULL);
        if (st != 0) {
            bool never = false;
            run_until(e, &never, 100);
        }
        uv_update_time(loop);
    }
    if (st != 0) {
        snprintf(err, errlen, "%s (%s) does not answer: %s", t->name, t->addr, msg);
        return -1;
    }
    for (int i = 1; i < e->n_conns; i++) {
        e->conns[i] = connect_one(e);
        if (!e->conns[i] || call_on(e, e->conns[i], "/etcdserverpb.KV/Range", &rq.base, 5000, msg,
                                    sizeof msg, NULL, NULL) != 0) {
            snprintf(err, errlen, "%s: connection %d failed: %s", t->name, i + 1, msg);
            return -1;
        }
    }
    e->broken = false;
    return 0;
}

void kb_env_close(kb_env *e) {
    for (int i = 0; i < e->n_conns; i++)
        if (e->conns && e->conns[i]) grpc_client_free(e->conns[i]);
    free(e->conns);
    e->conns = NULL;
    /* let the clients close their handles */
    uv_run(e->loop, UV_RUN_NOWAIT);
    uv_run(e->loop, UV_RUN_NOWAIT);
}

int64_t kb_current_revision(kb_env *e) {
    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key = (ProtobufCBinaryData){15, (uint8_t *)"/kvbench/probe/"};
    uint8_t *resp = NULL;
    size_t len = 0;
    char err[256];
    if (kb_unary_sync(e, "/etcdserverpb.KV/Range", &rq.base, &resp, &len, err, sizeof err) != 0)
        return -1;
    Etcdserverpb__RangeResponse *r = etcdserverpb__range_response__unpack(NULL, len, resp);
    free(resp);
    if (!r) return -1;
    int64_t rev = r->header ? r->header->revision : -1;
    etcdserverpb__range_response__free_unpacked(r, NULL);
    return rev;
}

int kb_delete_prefix(kb_env *e, const char *prefix, char *err, size_t errlen) {
    char end[256];
    Etcdserverpb__DeleteRangeRequest dr = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    dr.key = (ProtobufCBinaryData){strlen(prefix), (uint8_t *)prefix};
    dr.range_end = (ProtobufCBinaryData){kb_prefix_end(prefix, end, sizeof end), (uint8_t *)end};
    return kb_unary_sync(e, "/etcdserverpb.KV/DeleteRange", &dr.base, NULL, NULL, err, errlen) == 0
               ? 0
               : -1;
}

/* ------------------------------------------------------------------ seeding */

typedef struct seeder {
    kb_env *e;
    uint64_t n, next, done;
    int inflight;
    kb_keyfn keyfn;
    void *ud;
    size_t value_size, batch;
    uint8_t *value;
    bool finished, failed;
    char err[256];
} seeder;

static void seed_issue(seeder *s);

static void on_seed(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    (void)resp;
    (void)len;
    seeder *s = ud;
    s->inflight--;
    if (status != 0 && !s->failed) {
        s->failed = true;
        snprintf(s->err, sizeof s->err, "seeding Txn failed: %d %s", status, message);
    }
    if (!s->failed) seed_issue(s);
    if (s->inflight == 0 && (s->failed || s->next >= s->n)) s->finished = true;
}

static void seed_issue(seeder *s) {
    while (!s->failed && s->next < s->n && s->inflight < 4) {
        size_t b = s->n - s->next < s->batch ? (size_t)(s->n - s->next) : s->batch;
        Etcdserverpb__RequestOp *ops = calloc(b, sizeof *ops);
        Etcdserverpb__RequestOp **opp = calloc(b, sizeof *opp);
        Etcdserverpb__PutRequest *puts = calloc(b, sizeof *puts);
        char(*keys)[256] = calloc(b, sizeof *keys);
        uint8_t *vals = malloc(b * (s->value_size ? s->value_size : 1));
        if (!ops || !opp || !puts || !keys || !vals) {
            s->failed = true;
            snprintf(s->err, sizeof s->err, "out of memory");
        } else {
            for (size_t i = 0; i < b; i++) {
                uint64_t idx = s->next + i;
                s->keyfn(idx, keys[i], sizeof keys[i], s->ud);
                uint8_t *v = vals + i * s->value_size;
                kb_fill_value(v, s->value_size, idx);
                etcdserverpb__put_request__init(&puts[i]);
                puts[i].key = (ProtobufCBinaryData){strlen(keys[i]), (uint8_t *)keys[i]};
                puts[i].value = (ProtobufCBinaryData){s->value_size, v};
                etcdserverpb__request_op__init(&ops[i]);
                ops[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
                ops[i].request_put = &puts[i];
                opp[i] = &ops[i];
            }
            Etcdserverpb__TxnRequest tx = ETCDSERVERPB__TXN_REQUEST__INIT;
            tx.success = opp;
            tx.n_success = b;
            size_t n = etcdserverpb__txn_request__get_packed_size(&tx);
            uint8_t *buf = malloc(n);
            if (buf) {
                etcdserverpb__txn_request__pack(&tx, buf);
                int rv = grpc_client_unary(s->e->conns[0], "/etcdserverpb.KV/Txn", buf, n,
                                           s->e->o->timeout_ms, on_seed, s);
                if (rv == 0) {
                    s->inflight++;
                    s->next += b;
                } else {
                    s->failed = true;
                    snprintf(s->err, sizeof s->err, "seeding: cannot issue Txn (%d)", rv);
                }
            }
            free(buf);
        }
        free(ops);
        free(opp);
        free(puts);
        free(keys);
        free(vals);
    }
    if (s->inflight == 0) s->finished = true;
}

int kb_seed(kb_env *e, uint64_t n, kb_keyfn keyfn, void *ud, size_t value_size, char *err,
            size_t errlen) {
    seeder *s = calloc(1, sizeof *s);
    if (!s) return -1;
    s->e = e;
    s->n = n;
    s->keyfn = keyfn;
    s->ud = ud;
    s->value_size = value_size;
    /* etcd: at most 128 ops per txn and 1.5 MiB per request */
    size_t per = value_size + 128;
    s->batch = (1u << 20) / per;
    if (s->batch > 128) s->batch = 128;
    if (s->batch < 1) s->batch = 1;
    seed_issue(s);
    bool ok = run_until(e, &s->finished, 600000);
    int rv = 0;
    if (!ok || s->failed) {
        snprintf(err, errlen, "%s", s->failed ? s->err : "seeding timed out / interrupted");
        rv = -1;
        if (!ok) return rv; /* callbacks may still come: leak s rather than free it under them */
    }
    free(s);
    return rv;
}

/* ------------------------------------------------------------------ rounds */

struct kb_run {
    kb_env *e;
    const kb_workload *w;
    const char *label;
    kb_op *ops;
    int n_ops, inflight;
    uint64_t t_begin, t_measure, t_end; /* t_end 0 = count-bound, not reached yet */
    bool in_window, window_over, stop, failed;
    uint64_t issued_in_window;
    kb_hist hist;
    uint64_t ok, errors, aux, bytes, total_done, total_err;
    char first_error[200];
    double cpu0, cpu1, srv0, srv1;
    uv_timer_t tick;
    uint64_t last_tick_t, last_tick_done, last_print_t;
    bool tty;
};

static void window_open(kb_run *r) {
    r->in_window = true;
    r->cpu0 = cpu_self();
    r->srv0 = kb_target_cpu(r->e->t);
}

static void window_close(kb_run *r, uint64_t now) {
    if (r->window_over) return;
    if (!r->in_window) window_open(r);
    r->window_over = true;
    if (r->t_end == 0) r->t_end = now;
    r->cpu1 = cpu_self();
    r->srv1 = kb_target_cpu(r->e->t);
    r->stop = true;
}

static void phase(kb_run *r, uint64_t now) {
    if (!r->in_window && now >= r->t_measure) window_open(r);
    if (r->t_end && now >= r->t_end) window_close(r, now);
}

static void issue(kb_op *op) {
    kb_run *r = op->run;
    uint64_t now = uv_hrtime();
    phase(r, now);
    if (r->stop || r->e->broken || kb_interrupted()) return;
    if (r->e->o->count && r->in_window) {
        if (r->issued_in_window >= r->e->o->count) return;
        r->issued_in_window++;
    }
    op->t0 = now;
    op->req_len = 0;
    int rv = r->w->start_op(r->e->wstate, op);
    if (rv == 0) {
        r->inflight++;
        return;
    }
    r->failed = true;
    r->stop = true;
    if (!r->first_error[0])
        snprintf(r->first_error, sizeof r->first_error, "cannot issue an operation (%d)", rv);
}

void kb_op_done(kb_op *op, int status, const char *message, size_t bytes) {
    kb_run *r = op->run;
    uint64_t now = uv_hrtime();
    r->inflight--;
    r->total_done++;
    bool counted = r->in_window && op->t0 >= r->t_measure && (!r->t_end || op->t0 < r->t_end);
    if (status != 0) {
        r->total_err++;
        if (!r->first_error[0])
            snprintf(r->first_error, sizeof r->first_error, "%s: %s", grpc_status_name(status),
                     message ? message : "");
        if (counted) r->errors++;
        /* a target that only fails is not measured: stop early */
        if (r->total_err >= 100 && r->total_err * 2 > r->total_done) {
            r->failed = true;
            r->stop = true;
        }
    } else if (counted && !r->w->own_samples) {
        kb_hist_record(&r->hist, now - op->t0);
        if (!r->t_end || now <= r->t_end) {
            r->ok++;
            r->bytes += bytes;
        }
        if (r->e->o->count && r->ok >= r->e->o->count) window_close(r, now);
    }
    issue(op);
    /* count-bound and every allowed op issued (some failed): nothing will close the window */
    if (r->e->o->count && r->in_window && r->issued_in_window >= r->e->o->count && r->inflight == 0)
        window_close(r, now);
}

void kb_op_aux(kb_op *op) {
    kb_run *r = op->run;
    if (r->in_window && op->t0 >= r->t_measure && (!r->t_end || op->t0 < r->t_end)) r->aux++;
}

void kb_record(kb_env *e, uint64_t latency_ns, size_t bytes) {
    kb_run *r = e->run;
    if (!r) return;
    uint64_t now = uv_hrtime();
    phase(r, now);
    if (!r->in_window || r->window_over) return;
    kb_hist_record(&r->hist, latency_ns);
    r->ok++;
    r->bytes += bytes;
}

static void on_unary(void *ud, int status, const char *message, const uint8_t *resp, size_t len) {
    kb_op *op = ud;
    char msg[200];
    if (status == 0 && op->check && op->check(op, resp, len, msg, sizeof msg) < 0) {
        kb_op_done(op, GRPC_STATUS_DATA_LOSS, msg, 0);
        return;
    }
    kb_op_done(op, status, message, op->req_len + len);
}

int kb_op_unary(kb_op *op, const char *path, const void *req, size_t len, kb_resp_fn check) {
    op->check = check;
    op->req_len = len;
    return grpc_client_unary(op->conn, path, req, len, op->env->o->timeout_ms, on_unary, op);
}

int kb_op_unary_msg(kb_op *op, const char *path, const ProtobufCMessage *m, kb_resp_fn check) {
    uint8_t stackbuf[2048];
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (!buf) return GRPC_ENOMEM;
    protobuf_c_message_pack(m, buf);
    int rv = kb_op_unary(op, path, buf, n, check);
    if (buf != stackbuf) free(buf);
    return rv;
}

static void fmt_ms(double ns, char *buf, size_t cap) {
    double ms = ns / 1e6;
    if (ms < 1)
        snprintf(buf, cap, "%.0fus", ns / 1e3);
    else if (ms < 100)
        snprintf(buf, cap, "%.1fms", ms);
    else
        snprintf(buf, cap, "%.0fms", ms);
}

static void progress(kb_run *r, uint64_t now, bool final) {
    const kb_opts *o = r->e->o;
    if (o->quiet) return;
    double period = r->tty ? 0.25 : (o->progress_s > 0 ? o->progress_s : 2.0);
    if (!final && (double)(now - r->last_print_t) / 1e9 < period) return;
    double dt = (double)(now - r->last_tick_t) / 1e9;
    double rate = dt > 0 ? (double)(r->total_done - r->last_tick_done) / dt : 0;
    r->last_tick_t = r->last_print_t = now;
    r->last_tick_done = r->total_done;
    char p50[32], p99[32], where[64];
    fmt_ms((double)kb_hist_pct(&r->hist, 50), p50, sizeof p50);
    fmt_ms((double)kb_hist_pct(&r->hist, 99), p99, sizeof p99);
    if (!r->in_window)
        snprintf(where, sizeof where, "warmup %.1fs", (double)(now - r->t_begin) / 1e9);
    else if (!r->window_over)
        snprintf(where, sizeof where, "%.1fs", (double)(now - r->t_measure) / 1e9);
    else
        snprintf(where, sizeof where, "drain");
    if (final && r->tty) {
        fprintf(stderr, "\r\033[K");
        return;
    }
    if (final) return;
    fprintf(stderr, "%s[%s] %-12s %8.0f ops/s now | window: %llu ops, p50 %s p99 %s%s%s",
            r->tty ? "\r\033[K" : "", r->label, where, rate, (unsigned long long)r->ok, p50, p99,
            r->total_err ? ", errors " : "", r->total_err ? "yes" : "");
    fputs(r->tty ? "" : "\n", stderr);
    fflush(stderr);
}

static void on_tick(uv_timer_t *t) {
    kb_run *r = t->data;
    uint64_t now = uv_hrtime();
    phase(r, now);
    if (kb_interrupted() || r->e->broken) r->stop = true;
    progress(r, now, false);
}

int kb_run_round(kb_env *e, const kb_workload *w, const char *label, kb_result *out) {
    const kb_opts *o = e->o;
    kb_run *r = calloc(1, sizeof *r);
    if (!r) return -1;
    memset(out, 0, sizeof *out);
    r->e = e;
    r->w = w;
    r->label = label;
    r->tty = isatty(2);
    r->n_ops = o->concurrency > 0 ? o->concurrency : 1;
    r->ops = calloc((size_t)r->n_ops, sizeof *r->ops);
    if (!r->ops) {
        free(r);
        return -1;
    }
    kb_hist_reset(&r->hist);
    r->t_begin = uv_hrtime();
    r->t_measure = r->t_begin + (uint64_t)(o->warmup_s * 1e9);
    r->t_end = o->count ? 0 : r->t_measure + (uint64_t)(o->duration_s * 1e9);
    r->last_tick_t = r->last_print_t = r->t_begin;
    e->run = r;
    uv_timer_init(e->loop, &r->tick);
    r->tick.data = r;
    uv_timer_start(&r->tick, on_tick, 20, 20);
    for (int i = 0; i < r->n_ops; i++) {
        kb_op *op = &r->ops[i];
        op->env = e;
        op->run = r;
        op->slot = i;
        op->conn = e->conns[i % e->n_conns];
    }
    phase(r, r->t_begin);
    for (int i = 0; i < r->n_ops && !r->stop; i++)
        issue(&r->ops[i]);
    /* workloads driven by kb_record() may have no ops in flight: run until the window closes */
    while (!(r->stop && r->inflight == 0) && !(kb_interrupted() && r->inflight == 0)) {
        if (r->inflight == 0 && r->window_over) break;
        uv_run(e->loop, UV_RUN_ONCE);
    }
    uint64_t now = uv_hrtime();
    window_close(r, now);
    progress(r, now, true);
    uv_close((uv_handle_t *)&r->tick, NULL);
    uv_run(e->loop, UV_RUN_NOWAIT);
    e->run = NULL;

    out->secs = (double)(r->t_end - r->t_measure) / 1e9;
    if (out->secs <= 0) out->secs = 1e-9;
    out->ops = r->ok;
    out->errors = r->errors;
    out->aux = r->aux;
    out->ops_s = (double)r->ok / out->secs;
    out->bytes_s = (double)r->bytes / out->secs;
    out->p50 = (double)kb_hist_pct(&r->hist, 50) / 1e6;
    out->p90 = (double)kb_hist_pct(&r->hist, 90) / 1e6;
    out->p99 = (double)kb_hist_pct(&r->hist, 99) / 1e6;
    out->p999 = (double)kb_hist_pct(&r->hist, 99.9) / 1e6;
    out->max = (double)r->hist.max / 1e6;
    out->mean = kb_hist_mean(&r->hist) / 1e6;
    out->client_cpu_s = r->cpu1 - r->cpu0;
    out->server_cpu_s = (r->srv0 >= 0 && r->srv1 >= 0) ? r->srv1 - r->srv0 : -1;
    snprintf(out->first_error, sizeof out->first_error, "%s", r->first_error);
    out->hist = r->hist;
    int rv = 0;
    if (kb_interrupted()) {
        snprintf(out->first_error, sizeof out->first_error, "interrupted");
        rv = -1;
    } else if (e->broken) {
        snprintf(out->first_error, sizeof out->first_error, "%s", e->err);
        rv = -1;
    } else if (r->failed) {
        rv = -1;
    }
    free(r->ops);
    free(r);
    return rv;
}

int kb_compact(kb_env *e, char *err, size_t errlen) {
    int64_t rev = kb_current_revision(e);
    if (rev <= 0) {
        snprintf(err, errlen, "cannot read the current revision");
        return -1;
    }
    Etcdserverpb__CompactionRequest cr = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    cr.revision = rev;
    cr.physical = true;
    return kb_unary_sync(e, "/etcdserverpb.KV/Compact", &cr.base, NULL, NULL, err, errlen) == 0
               ? 0
               : -1;
}

void kb_size_str(size_t n, char *buf, size_t cap) {
    if (n >= (1u << 20) && n % (1u << 20) == 0)
        snprintf(buf, cap, "%zuMiB", n >> 20);
    else if (n >= 1024 && n % 1024 == 0)
        snprintf(buf, cap, "%zuKiB", n >> 10);
    else
        snprintf(buf, cap, "%zuB", n);
}
