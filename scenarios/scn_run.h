/* scn_run.h — the scenario runner: replays a parsed script (scn.h) against a server with a
 * watcher fleet (refl.h), a load driver and a per-second sampler, all on one libuv loop, and
 * fills one scn_run per mode of a scn_result.
 *
 * One run (one mode):
 *   server   start it (embedded `kvstore serve` or a real etcd as a child process on a free
 *            loopback port with a temp data dir), or use the script's endpoints;
 *   seed     delete the resource prefix, write the seed objects (Txn batches);
 *   sync     start the fleet and wait until every watcher has LISTed and is watching
 *            (bounded): t = 0 is then, so the initial LISTs are not part of any phase;
 *   phases   the load driver applies each phase's create/update/delete rates; actions fire at
 *            their times (switch, compact, restart-server, drop-connections, hold, verify);
 *            every second a sample: /metrics scrape + fleet counters + load-driver histogram;
 *   verify   load stopped, every cache compared with the server (refl_fleet_verify);
 *   teardown fleet, load driver, sampler, then the server (SIGTERM; data dir removed).
 *
 * Pieces (each its own file, usable alone): scn_run_http.c (a tiny HTTP/1.0 GET client on
 * libuv, for /metrics and /health), scn_run_server.c (the child server), scn_run_load.c (the
 * load driver), scn_run_sample.c (snapshots and samples), scn_run.c (the orchestration) and
 * scn_run_act.c (actions).
 *
 * Library rules: nothing here prints or exits; messages go to the log hook, progress to the
 * progress hook; errors are values. Signals are only handled when opts.handle_signals asks. */
#ifndef RELIST_SCN_RUN_H
#define RELIST_SCN_RUN_H

#include "scn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------
 * The runner
 * ---------------------------------------------------------------------------------------- */

typedef enum scn_stage {
    SCN_STAGE_SERVER = 0, /* starting the server / waiting for it */
    SCN_STAGE_SEED,
    SCN_STAGE_SYNC, /* fleet started, waiting for every watcher to be watching */
    SCN_STAGE_RUN,  /* the phases */
    SCN_STAGE_VERIFY,
    SCN_STAGE_DONE,
} scn_stage;

const char *scn_stage_name(scn_stage s);

/* What the progress hook gets: once a second while running (after each sample), and at every
 * stage change. Strings are valid during the call. */
typedef struct scn_progress {
    const char *mode;
    size_t run, n_runs; /* 0-based index of this run */
    scn_stage stage;
    const char *phase; /* "" outside phases */
    double elapsed_s, total_s;
    double request_rate, list_rate, relist_rate, event_rate, write_rate; /* last sample, NaN */
    double list_p99_ms;
    size_t synced, watchers;
    bool sample; /* true when a sample was just added */
} scn_progress;

typedef struct scn_run_opts {
    const char *kvstore_bin;   /* `kvstore` for server embedded (required for that kind) */
    const char *etcd_bin;      /* `etcd` for server etcd [etcd from PATH] */
    const char *tmp_root;      /* where the temp data dirs go [$TMPDIR or /tmp] */
    uint64_t seed;             /* load-driver and backoff-jitter randomness [1] */
    int64_t sync_timeout_ms;   /* waiting for the fleet's initial sync [60000] */
    int64_t verify_timeout_ms; /* the end-of-run verification [15000] */
    bool keep_data;            /* leave the temp dirs (server logs) in place */
    bool handle_signals;       /* SIGINT/SIGTERM end the run early (results kept, note set) */
    void (*log)(void *ud, const char *line); /* verbose messages (NULL = none) */
    void (*progress)(void *ud, const scn_progress *p);
    void *ud;
} scn_run_opts;

/* Runs run `index` of the script (scn_script_run's numbering) into res->runs[index]. Creates
 * and closes its own libuv loop. Returns 0 when the run completed (expectations are not
 * evaluated here), 1 when it was interrupted by a signal (samples so far kept), -1 when it
 * could not be carried out (message in err; res->runs[index].note set too). */
int scn_run_one(const scn_script *s, scn_result *res, size_t index, const scn_run_opts *o,
                char *err, size_t err_cap);

/* Every run of the script in turn (same seed each). Stops at the first interruption. Returns
 * like scn_run_one (the worst outcome; err names the first failure). */
int scn_run_all(const scn_script *s, scn_result *res, const scn_run_opts *o, char *err,
                size_t err_cap);

/* ------------------------------------------------------------------------------------------
 * Pieces (scn_run_*.c)
 * ---------------------------------------------------------------------------------------- */

/* A one-shot HTTP/1.0 GET (scn_run_http.c). hostport is numeric IPv4 ("127.0.0.1:2379") or
 * "localhost:PORT"; an "http://" prefix is accepted. cb runs exactly once (never inside
 * scn_http_get), unless the request is cancelled first: status is the HTTP status (0 on a
 * transport error or timeout, with err set), body NUL-terminated (chunked encoding decoded). */
typedef struct scn_http_req scn_http_req;
typedef void (*scn_http_cb)(void *ud, int status, const char *body, size_t len, const char *err);
scn_http_req *scn_http_get(uv_loop_t *loop, const char *hostport, const char *path,
                           uint32_t timeout_ms, scn_http_cb cb, void *ud);
/* Abandons a request whose cb has not run: cb never runs; the handles close on the loop. */
void scn_http_cancel(scn_http_req *r);

/* The server (scn_run_server.c). */
typedef struct scn_srv scn_srv;
typedef struct scn_srv_opts {
    scn_server_kind kind;
    const char *bin;              /* kvstore or etcd binary (EMBEDDED / ETCD) */
    const char *args;             /* extra arguments, split at blanks ("" = none) */
    const char *const *endpoints; /* ENDPOINTS */
    size_t n_endpoints;
    const char *metrics;  /* /metrics host:port ("" = the first endpoint) */
    const char *tmp_root; /* [$TMPDIR or /tmp] */
    bool keep_data;
    void (*log)(void *ud, const char *line);
    void *ud;
} scn_srv_opts;

/* NULL with a message on bad options or when the temp dir cannot be made. */
scn_srv *scn_srv_new(uv_loop_t *loop, const scn_srv_opts *o, char *err, size_t err_cap);
/* Starts (or, for ENDPOINTS, probes /health of) the server; cb(ud, 0, "") once it serves, or
 * cb(ud, -1, message) (the server's log tail included). timeout_ms bounds the wait. */
typedef void (*scn_srv_cb)(void *ud, int status, const char *msg);
int scn_srv_start(scn_srv *v, uint32_t timeout_ms, scn_srv_cb cb, void *ud);
/* SIGTERM, wait for the exit, wait down_ms, start again on the same port and data dir. -1 for
 * ENDPOINTS (not ours to restart) or while a start/restart is in progress. */
int scn_srv_restart(scn_srv *v, int64_t down_ms, uint32_t timeout_ms, scn_srv_cb cb, void *ud);
/* Stops the child (SIGTERM, SIGKILL after 5 s), closes the handles, removes the temp dir;
 * done(ud) runs on the loop at the end. Then scn_srv_free. */
void scn_srv_stop(scn_srv *v, void (*done)(void *ud), void *ud);
void scn_srv_free(scn_srv *v);
size_t scn_srv_endpoint_count(const scn_srv *v);
const char *scn_srv_endpoint(const scn_srv *v, size_t i);
const char *scn_srv_metrics(const scn_srv *v); /* host:port */
bool scn_srv_is_child(const scn_srv *v);       /* EMBEDDED / ETCD */
bool scn_srv_running(const scn_srv *v);        /* a child process is alive */
double scn_srv_cpu_seconds(const scn_srv *v);  /* the child's utime + stime; NaN if none */
const char *scn_srv_dir(const scn_srv *v);     /* the temp dir ("" for ENDPOINTS) */

/* The load driver (scn_run_load.c): seed objects, then writes at phase rates; compaction. */
typedef struct scn_ld scn_ld;
typedef struct scn_ld_stats {
    double writes, write_errors; /* completed load writes (seed writes not counted) */
    scn_hist put_hist;           /* cumulative write latency, seconds */
    int64_t revision;            /* the highest header revision seen */
    uint64_t objects;            /* live objects the driver knows of */
    uint64_t compactions, compact_errors;
    uint64_t inflight;
} scn_ld_stats;

scn_ld *scn_ld_new(uv_loop_t *loop, const char *endpoint, const scn_seed *seed, uint64_t rng_seed,
                   void (*log)(void *ud, const char *line), void *ud);
/* Deletes everything under the seed's resource prefix, then writes the seed objects. cb once. */
int scn_ld_seed(scn_ld *d, scn_srv_cb cb, void *ud);
/* The write load from now on (NULL = none). The phase must stay valid while set. */
void scn_ld_set_phase(scn_ld *d, const scn_phase *p);
/* Compacts at (current revision - keep); fire and forget (counted in stats). */
void scn_ld_compact(scn_ld *d, int64_t keep);
void scn_ld_get_stats(const scn_ld *d, scn_ld_stats *out);
/* Stops writing, drops the connection; done(ud) once every handle is closed. Then free. */
void scn_ld_stop(scn_ld *d, void (*done)(void *ud), void *ud);
void scn_ld_free(scn_ld *d);

#ifdef __cplusplus
}
#endif

#endif
