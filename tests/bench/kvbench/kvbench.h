/* kvbench.h — shared types of kvbench, the side-by-side benchmark of etcd-API servers.
 *
 * Shape: one libuv loop, the async gRPC client of proto/grpc.h, N connections per target and C
 * operation slots ("requests in flight") spread over them. A workload is a table entry
 * {name, setup, start_op, teardown}: setup seeds data (synchronously, by running the loop),
 * start_op issues ONE asynchronous operation for a slot and later reports it with kb_op_done();
 * the runner re-issues on each completion (closed loop), times every op with uv_hrtime() and
 * keeps the histogram, the counters and the measurement window (warmup, duration or count).
 *
 * Adding a workload (e.g. watch, storm): write workload_NAME.c defining a `const kb_workload`,
 * add it to KB_WORKLOADS in workloads.c. Workloads whose latency is not "one request" (watch
 * event delivery) open their streams in setup, set `own_samples` and report samples with
 * kb_record(); start_op then drives the write side (it may pace itself: it is asynchronous, so
 * it can arm a uv_timer on env->loop and issue the write later). Workload-specific flags are
 * declared in `extra_flags` (and `flags_help`) and read with kb_opt_*(). No other file changes.
 */
#ifndef KVBENCH_H
#define KVBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

#include "grpc.h"
#include "hist.h"

#define KB_MAX_TARGETS 4
#define KB_MAX_EXTRA   16

/* Flags the core does not know, kept for the workload ("--watchers 1000" -> {"watchers","1000"}).
 */
typedef struct kb_extra {
    const char *name;
    const char *value;
} kb_extra;

typedef struct kb_opts {
    const char *workload;
    double duration_s;     /* measured window per round [10] */
    double warmup_s;       /* unrecorded ops before each window [2] */
    uint64_t count;        /* > 0: the window ends after this many ops instead of duration_s */
    int rounds;            /* rounds per target, alternating targets [3] */
    int concurrency;       /* operations in flight [1] */
    int conns;             /* gRPC connections per target [1] */
    size_t value_size;     /* bytes per value [1024] */
    uint64_t keys;         /* key space of put/get/txn [10000] */
    uint64_t objects;      /* list: objects seeded [10000] */
    int namespaces;        /* list: namespaces [20] */
    bool scope_ns;         /* list: LIST one namespace instead of all */
    bool serializable;     /* reads: serializable instead of linearizable */
    bool verify;           /* decode every response fully and check it */
    uint32_t timeout_ms;   /* per-request deadline [60000] */
    uint64_t seed;         /* random seed [1] */
    const char *targets;   /* "kvstore,etcd" (started here) */
    const char *endpoints; /* "[name=]host:port,..." (external) */
    const char *kvstore_bin;
    const char *etcd_bin;
    bool no_fsync; /* kvstore --unsafe-no-fsync (etcd 3.4 has no such switch) */
    bool keep;     /* keep temp dirs (debugging) */
    const char *json_path;
    bool quiet;        /* no progress lines */
    double progress_s; /* plain progress line period when not a TTY [2] */
    kb_extra extra[KB_MAX_EXTRA];
    int n_extra;
    bool extra_used[KB_MAX_EXTRA];
} kb_opts;

const char *kb_opt_str(const kb_opts *o, const char *name, const char *def);
int64_t kb_opt_int(const kb_opts *o, const char *name, int64_t def);
double kb_opt_double(const kb_opts *o, const char *name, double def);

/* ---- targets (targets.c) ---- */
typedef enum kb_kind { KB_EXTERNAL, KB_KVSTORE, KB_ETCD, KB_NULL } kb_kind;

typedef struct kb_target {
    char name[48];
    kb_kind kind;
    char addr[128]; /* host:port for the gRPC client */
    pid_t pid;      /* started process, or 0 */
    char *dir;      /* temp dir of a started process (data + log), or NULL */
    char log[600];
} kb_target;

/* Fills targets from --targets / --endpoints. Returns the count, or -1 with err set. */
int kb_targets_parse(const kb_opts *o, kb_target *t, int max, char *err, size_t errlen);
/* Starts a local target (no-op for external) and waits until it answers. 0 or -1 with err. */
int kb_target_start(kb_target *t, const kb_opts *o, char *err, size_t errlen);
/* Stops a started process (SIGTERM, then SIGKILL after 5 s) and removes its temp dir. */
void kb_target_stop(kb_target *t, const kb_opts *o);
/* CPU seconds (user+sys) used so far by a started target, or -1. */
double kb_target_cpu(const kb_target *t);
/* SIGINT/SIGTERM: kill started children at once, remember the interruption. The only global
 * state of kvbench: a signal handler can reach nothing else. */
void kb_signals_install(void);
bool kb_interrupted(void);
/* The last lines of a started target's log (for error messages). */
void kb_log_tail(const kb_target *t, char *buf, size_t cap);

/* ---- runtime (runner.c) ---- */
typedef struct kb_run kb_run;

/* One target's connections and workload state, kept across rounds. */
typedef struct kb_env {
    uv_loop_t *loop;
    const kb_opts *o;
    kb_target *t;
    grpc_client **conns;
    int n_conns;
    bool broken; /* a connection was lost */
    char err[256];
    uint64_t rng; /* xorshift state for this target's workload */
    kb_run *run;  /* the round in progress, or NULL */
    void *wstate; /* the workload's state */
} kb_env;

/* One operation slot (one request in flight at a time). */
typedef struct kb_op kb_op;
struct kb_op {
    kb_env *env;
    kb_run *run;
    int slot;
    grpc_client *conn;
    uint64_t t0; /* issue time, uv_hrtime() ns */
    size_t req_len;
    void *ud; /* workload scratch for this slot (owned by the workload) */
    int (*check)(kb_op *op, const uint8_t *resp, size_t len, char *msg, size_t cap);
};

/* Reports the end of an operation: records latency (now - op->t0) and bytes when it started in
 * the measured window, counts errors, and issues the next op. status is a grpc_status. */
void kb_op_done(kb_op *op, int status, const char *message, size_t bytes);
/* Increments the workload's auxiliary counter (e.g. CAS conflicts) when in the window. */
void kb_op_aux(kb_op *op);
/* A latency sample not tied to an op (e.g. watch event delivery); ignored outside the window. */
void kb_record(kb_env *e, uint64_t latency_ns, size_t bytes);

/* Response check: return >= 0 (ok) or -1 (bad response; msg says why). */
typedef int (*kb_resp_fn)(kb_op *op, const uint8_t *resp, size_t len, char *msg, size_t cap);
/* Issues a unary call for op; on completion runs check (optional) and kb_op_done with bytes =
 * request + response size. Returns 0 or a negative GRPC_E*. */
int kb_op_unary(kb_op *op, const char *path, const void *req, size_t len, kb_resp_fn check);
int kb_op_unary_msg(kb_op *op, const char *path, const ProtobufCMessage *m, kb_resp_fn check);

uint64_t kb_rand(kb_env *e);
uint64_t kb_rand_below(kb_env *e, uint64_t n);

/* ---- setup helpers (runner.c): run the loop until done ---- */
/* One call; *resp is malloc'd (caller frees). Returns the grpc status, or -1 (transport). */
int kb_unary_sync(kb_env *e, const char *path, const ProtobufCMessage *req, uint8_t **resp,
                  size_t *len, char *err, size_t errlen);
/* Puts n keys (name from keyfn) with value_size-byte values, in Txn batches, several in flight. */
typedef void (*kb_keyfn)(uint64_t i, char *buf, size_t cap, void *ud);
int kb_seed(kb_env *e, uint64_t n, kb_keyfn keyfn, void *ud, size_t value_size, char *err,
            size_t errlen);
/* Deletes every key under prefix (so an external target starts clean). */
int kb_delete_prefix(kb_env *e, const char *prefix, char *err, size_t errlen);
/* The target's current revision (Range of one key), or -1. */
int64_t kb_current_revision(kb_env *e);
/* Compacts the target at its current revision (physical: waits until done). 0 or -1 + err. */
int kb_compact(kb_env *e, char *err, size_t errlen);
/* "1KiB", "512B", "1MiB" */
void kb_size_str(size_t n, char *buf, size_t cap);
/* prefix -> range_end (last byte + 1) into buf; returns its length. */
size_t kb_prefix_end(const char *prefix, char *buf, size_t cap);
/* Fills v with n bytes of printable filler, first bytes varying with salt. */
void kb_fill_value(uint8_t *v, size_t n, uint64_t salt);

/* ---- workloads (workloads.c) ---- */
typedef struct kb_workload {
    const char *name;
    const char *summary;            /* one line for --help */
    const char *flags_help;         /* workload-specific flag lines for --help, or NULL */
    const char *const *extra_flags; /* NULL-terminated names accepted as extra flags */
    const char *aux_name;           /* name of the aux counter (kb_op_aux), or NULL */
    /* The figures come only from kb_record() (e.g. watch event delivery); ops still drive the
     * load and count errors, but their own latency is not recorded. */
    bool own_samples;
    /* Once per target before the first round: seed data, build state (*state). 0 or -1 + err. */
    int (*setup)(kb_env *e, void **state, char *err, size_t errlen);
    /* Issue one operation for op (asynchronously; completion -> kb_op_done). 0 or negative. */
    int (*start_op)(void *state, kb_op *op);
    /* Between rounds (optional): e.g. compaction. Not timed. */
    void (*after_round)(kb_env *e, void *state);
    void (*teardown)(void *state);
    /* Label of the workload's parameters for reports, e.g. "1KiB c=64". Optional. */
    void (*describe)(const kb_opts *o, char *buf, size_t cap);
} kb_workload;

extern const kb_workload *const KB_WORKLOADS[];
const kb_workload *kb_workload_find(const char *name);

/* ---- results (runner.c, report.c) ---- */
typedef struct kb_result {
    double secs; /* measured window */
    uint64_t ops, errors, aux;
    double ops_s, bytes_s;
    double p50, p90, p99, p999, max, mean; /* ms */
    double client_cpu_s, server_cpu_s;     /* in the window; server -1 if unknown */
    char first_error[256];
    kb_hist hist;
} kb_result;

/* Connects to the target (n connections). 0 or -1 + err. */
int kb_env_open(kb_env *e, uv_loop_t *loop, const kb_opts *o, kb_target *t, char *err,
                size_t errlen);
void kb_env_close(kb_env *e);
/* One round: warmup + measured window with the workload. 0 or -1 (interrupted / broken). */
int kb_run_round(kb_env *e, const kb_workload *w, const char *label, kb_result *out);

/* ---- reports (report.c) ---- */
typedef struct kb_report {
    const kb_opts *o;
    const kb_workload *w;
    char params[128];
    int n_targets;
    kb_target *targets;
    kb_result *rounds[KB_MAX_TARGETS]; /* [target][round] */
    int n_rounds;
} kb_report;

void kb_report_print(const kb_report *r);
int kb_report_json(const kb_report *r, const char *path, char *err, size_t errlen);
/* Median over rounds of one field (by offset in kb_result). */
double kb_median(const kb_result *rs, int n, size_t offset);

#endif
