/* scn.h — relistlab scenarios: the script format, its parser and overrides, the measurement
 * data model (per-second samples per run), Prometheus text scraping with histogram-delta
 * quantiles, expectations, and the reports (terminal table, Markdown, HTML with inline SVG,
 * timeline CSV, summary JSON).
 *
 * The runner (scn_run*.c, main.c) drives a server and a watcher fleet; everything here is pure
 * data in, data out: no sockets, no clocks, no printing. Errors are values: scn_errors carries
 * file:line:col positions, other functions return 0 / -1 with a message.
 *
 * Flow for the runner:
 *   scn_load(path, &script, &errs)            parse (scn_errors_format for messages)
 *   scn_script_set(&script, "k=v", &errs)     each --set; scn_script_apply_short for --short
 *   scn_script_check(&script, &errs)          cross-references after overrides
 *   res = scn_result_new(&script)             one scn_run per enabled mode
 *   per mode, per second: build a cumulative scn_snapshot (scn_prom_parse + scn_server_snap_
 *   from_prom, fleet counters, load-driver put histogram), scn_sample_from(prev, cur, phase,
 *   &s), scn_run_add_sample(run, &s); at the end fill run->end (verification).
 *   scn_expect_eval(&script, res, &verdicts, &nv)
 *   scn_report_table(...) to print; scn_report_write_dir(dir, ...) for --out. */
#ifndef RELIST_SCN_H
#define RELIST_SCN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SCN_NAME_MAX   64
#define SCN_ERR_MAX    256
#define SCN_ERRORS_MAX 16

/* ------------------------------------------------------------------------------------------
 * Errors with positions
 * ---------------------------------------------------------------------------------------- */

typedef struct scn_loc {
    int line; /* 1-based; 0 when not from a file line */
    int col;  /* 1-based byte column */
} scn_loc;

typedef struct scn_error {
    char file[128]; /* script path, or "--set" / "short" for overrides */
    scn_loc loc;
    char msg[SCN_ERR_MAX];
} scn_error;

/* The first SCN_ERRORS_MAX errors (the parser keeps going at the next line after an error). */
typedef struct scn_errors {
    scn_error items[SCN_ERRORS_MAX];
    size_t n;
    size_t dropped; /* errors beyond the first SCN_ERRORS_MAX */
} scn_errors;

/* "file:line:col: msg" lines, like snprintf (returns the full length). */
size_t scn_errors_format(const scn_errors *e, char *buf, size_t cap);

/* ------------------------------------------------------------------------------------------
 * The script
 * ---------------------------------------------------------------------------------------- */

typedef enum scn_server_kind {
    SCN_SERVER_EMBEDDED = 0,  /* the runner starts `kvstore serve` on a free port */
    SCN_SERVER_ETCD = 1,      /* the runner starts a real etcd on a free port */
    SCN_SERVER_ENDPOINTS = 2, /* an already running server */
} scn_server_kind;

#define SCN_ENDPOINTS_MAX 8

typedef struct scn_server {
    scn_loc loc;
    scn_server_kind kind;
    char endpoints[SCN_ENDPOINTS_MAX][128]; /* ENDPOINTS: "host:port" */
    size_t n_endpoints;
    char metrics[128]; /* where /metrics is scraped ("" = the first endpoint) */
    char args[256];    /* extra command-line arguments for EMBEDDED / ETCD ("" = none) */
} scn_server;

/* Objects written before the first phase. Keys: <prefix><resource>/ns-<i>/<name>
 * (scn_seed_key); a fraction shared_names of the names per namespace is the same in every
 * namespace (the collision the name-keyed cache cannot tell apart). */
typedef struct scn_seed {
    scn_loc loc;
    bool present;
    char resource[SCN_NAME_MAX]; /* ["pods"] */
    char prefix[SCN_NAME_MAX];   /* ["/registry/"] */
    int64_t namespaces;          /* [10] */
    int64_t per_namespace;       /* [10] */
    int64_t value_size;          /* bytes per object [256] */
    double shared_names;         /* [0, 1] [0] */
} scn_seed;

/* Watcher settings. In `watchers` every field is filled (defaults below); in a `mode`, a
 * `switch` action or an expectation's `when` filter only the fields whose SCN_W_* bit is in
 * `set` mean anything. */
enum {
    SCN_W_COUNT = 1u << 0,
    SCN_W_PREFIX = 1u << 1,
    SCN_W_KEY_MODE = 1u << 2,
    SCN_W_ON_MISS = 1u << 3,
    SCN_W_BACKOFF = 1u << 4,
    SCN_W_QPS = 1u << 5,
    SCN_W_BURST = 1u << 6,
    SCN_W_PAGE_SIZE = 1u << 7,
    SCN_W_CONNS = 1u << 8,
    SCN_W_RESYNC = 1u << 9,
    SCN_W_TIMEOUT = 1u << 10,
};

typedef struct scn_watchers {
    uint32_t set;
    int64_t count;      /* [100] */
    char prefix[128];   /* "namespace" (one namespace each, round robin), "all", or a key
                           prefix starting with '/' ["namespace"] */
    char key_mode[16];  /* namespaced | name | mismatch | uid ["namespaced"] */
    char on_miss[16];   /* relist | get | ignore ["relist"] */
    char backoff[64];   /* none | client-go | exp:INITIAL,MAX,FACTOR,JITTER[,RESET] ["none"] */
    double qps;         /* per watcher, 0 = unlimited [0] */
    double burst;       /* [10] */
    int64_t page_size;  /* LIST limit, 0 = unpaginated [500] */
    int64_t conns;      /* connections, 0 = one per watcher [0] */
    int64_t resync_ms;  /* [0 = off] */
    int64_t timeout_ms; /* request deadline [60000] */
} scn_watchers;

/* One phase of the run: a duration and the write load the driver applies during it. */
typedef struct scn_phase {
    scn_loc loc;
    char name[SCN_NAME_MAX];
    int64_t duration_ms;
    double create, update, del; /* writes per second [0] */
    double hot_namespaces;      /* fraction of namespaces receiving the writes, (0, 1] [1] */
    int64_t writers;            /* concurrent writes in flight [4] */
    int64_t value_size;         /* bytes, 0 = the seed's [0] */
} scn_phase;

typedef enum scn_action_kind {
    SCN_ACT_SWITCH = 0,           /* change watcher settings live (sw, bits in sw.set) */
    SCN_ACT_COMPACT = 1,          /* compact once (every_ms 0) or every every_ms; keep revisions */
    SCN_ACT_RESTART_SERVER = 2,   /* stop the server, wait down_ms, start it on the same port */
    SCN_ACT_DROP_CONNECTIONS = 3, /* cut a fraction of the watchers' connections */
    SCN_ACT_HOLD = 4,             /* cut a fraction of the watchers off for for_ms */
    SCN_ACT_VERIFY = 5,           /* verify every watcher's cache against the server now */
} scn_action_kind;

typedef struct scn_action {
    scn_loc loc;
    int phase;         /* time base: -1 = the start of the run, else that phase's start */
    int64_t offset_ms; /* from the time base */
    scn_action_kind kind;
    scn_watchers sw;  /* SWITCH */
    int64_t every_ms; /* COMPACT: 0 = once */
    int64_t keep;     /* COMPACT: revisions kept behind the head [0] */
    int64_t down_ms;  /* RESTART_SERVER [1000] */
    double fraction;  /* DROP_CONNECTIONS, HOLD [1] */
    int64_t for_ms;   /* HOLD [5000] */
} scn_action;

/* A mode is one run of the whole script with watcher settings overridden; a compare report has
 * one column per mode. Without any `mode` statement there is one implicit mode, "run". */
typedef struct scn_mode {
    scn_loc loc;
    char name[SCN_NAME_MAX];
    char title[128];
    scn_watchers over; /* bits in over.set */
    bool enabled;      /* `--set modes=a,b` disables the others */
} scn_mode;

typedef enum scn_op { SCN_OP_LT, SCN_OP_LE, SCN_OP_GT, SCN_OP_GE, SCN_OP_EQ, SCN_OP_NE } scn_op;
const char *scn_op_name(scn_op op);

/* A metric path ("list_rate.mean") measured in one mode ("" = the mode under evaluation). */
typedef struct scn_mref {
    char metric[SCN_NAME_MAX];
    char mode[SCN_NAME_MAX];
} scn_mref;

/* expect [filters] METRIC[@MODE] OP RHS [when filters]
 * RHS: NUMBER | NUMBER * METRIC[@MODE] | METRIC[@MODE]. */
typedef struct scn_expect {
    scn_loc loc;
    char text[256];           /* the statement as written, for messages */
    char phase[SCN_NAME_MAX]; /* "" = the whole run */
    char mode[SCN_NAME_MAX];  /* "" = every mode (that matches `when`) */
    scn_watchers when;        /* settings the mode must have (bits in when.set) */
    scn_mref lhs;
    scn_op op;
    double k;        /* the number, or the factor of rhs */
    bool rhs_is_ref; /* compare with k * rhs */
    scn_mref rhs;
} scn_expect;

/* Latency objectives for report verdicts (Kubernetes API call latency SLO, p99). */
typedef struct scn_slo {
    int64_t list_ms; /* 0 = derived: 5 s for namespace-scoped watchers, 30 s for cluster LISTs */
    int64_t get_ms;  /* [1000] */
    int64_t put_ms;  /* [1000] */
} scn_slo;

typedef struct scn_report_cfg {
    int log_scale;             /* -1 auto (rates spanning > 2 decades), 0 off, 1 on */
    int by_phase;              /* -1 auto (one mode and several phases), 0, 1: table columns */
    char window[SCN_NAME_MAX]; /* phase the table summarises ("" = the whole run) */
} scn_report_cfg;

typedef struct scn_script {
    char file[128];
    char name[SCN_NAME_MAX]; /* `scenario NAME` or the file's base name */
    char title[256];
    scn_server server;
    scn_seed seed;
    scn_watchers watchers;
    scn_phase *phases;
    size_t n_phases;
    scn_mode *modes;
    size_t n_modes;
    scn_action *actions;
    size_t n_actions;
    scn_expect *expects;
    size_t n_expects;
    char **shorts; /* `short` assignments ("path=value"), applied by scn_script_apply_short */
    scn_loc *short_locs;
    size_t n_shorts;
    bool short_applied;
    scn_slo slo;
    scn_report_cfg report;
} scn_script;

/* Parses a script. Returns 0, or -1 with errors (the script is then freed and zeroed). file
 * names the text in messages. */
int scn_parse(const char *text, size_t len, const char *file, scn_script *out, scn_errors *errs);
/* Reads and parses a file. */
int scn_load(const char *path, scn_script *out, scn_errors *errs);
void scn_script_free(scn_script *s);

/* One override "path=value" (the --set grammar, see README): server=embedded|etcd,
 * server.endpoints=A,B, server.metrics|args=..., seed.KEY, watchers.KEY, mode.NAME.KEY,
 * phase.NAME (its duration), phase.NAME.KEY, slo.KEY, report.KEY, modes=A,B (run only
 * these), title=TEXT. Values are checked like the script's. 0 or -1 (error added). */
int scn_script_set(scn_script *s, const char *assignment, scn_errors *errs);
/* Applies the script's `short` assignments once (later calls do nothing). */
int scn_script_apply_short(scn_script *s, scn_errors *errs);
/* Cross-checks (phase and mode names used by actions and expectations, at least one phase and
 * one enabled mode). The parser runs it; run it again after overrides. */
int scn_script_check(const scn_script *s, scn_errors *errs);

/* The runs: every enabled mode (or the implicit "run"). */
size_t scn_script_run_count(const scn_script *s);
/* Run i's name and effective watcher settings (watchers + the mode's overrides). 0 or -1. */
int scn_script_run(const scn_script *s, size_t i, const char **name, scn_watchers *out);

int64_t scn_script_duration_ms(const scn_script *s);
int64_t scn_phase_start_ms(const scn_script *s, size_t phase);
/* The phase running at t_ms since the start (-1 past the end). */
int scn_phase_at(const scn_script *s, int64_t t_ms);
int scn_phase_find(const scn_script *s, const char *name);
/* When an action fires, ms since the start of the run. */
int64_t scn_action_time_ms(const scn_script *s, const scn_action *a);
/* The SLO with the derived list limit filled in (from the first run's watcher prefix). */
scn_slo scn_script_slo(const scn_script *s);
/* Writes the key of object j (0 <= j < per_namespace) of namespace ns, like snprintf. */
size_t scn_seed_key(const scn_seed *seed, int64_t ns, int64_t j, char *buf, size_t cap);
/* The canonical text of the script after overrides (one statement a line); malloc'd. */
char *scn_script_format(const scn_script *s);

/* Value syntax shared by scripts and --set (exported for the runner's command line). */
int scn_parse_duration_ms(const char *s, int64_t *out); /* 800ms 1.5s 2m 1h, bare 0 */
int scn_parse_rate(const char *s, double *per_second);  /* 20/s 120/m 3/h 5 (per second) */
int scn_parse_count(const char *s, int64_t *out);       /* 200 2k 1M */
int scn_parse_size(const char *s, int64_t *out);        /* 1024 4k 4KiB 1M (binary units) */
int scn_parse_number(const char *s, double *out);       /* 1.5 2e3 1k */

/* ------------------------------------------------------------------------------------------
 * Histograms (Prometheus style: cumulative buckets, the last one +Inf)
 * ---------------------------------------------------------------------------------------- */

#define SCN_HIST_MAX 40

typedef struct scn_hist {
    size_t n;                 /* buckets including +Inf; 0 = empty/unset */
    double le[SCN_HIST_MAX];  /* upper bounds, ascending, le[n-1] = +Inf */
    double cum[SCN_HIST_MAX]; /* cumulative counts; cum[n-1] = the count */
    double sum;
} scn_hist;

/* bounds: finite, ascending (a trailing +Inf is accepted); +Inf is added. -1 if bad/too many. */
int scn_hist_init(scn_hist *h, const double *bounds, size_t n);
/* Seconds, 100 µs .. 100 s, about 5 buckets per decade (for load-driver latencies). */
void scn_hist_init_latency(scn_hist *h);
void scn_hist_observe(scn_hist *h, double v);
double scn_hist_count(const scn_hist *h);
/* out = cur - prev, bucket by bucket. A counter reset (cur below prev anywhere, e.g. a server
 * restart) or prev empty gives cur itself. -1 when the bounds differ (out = cur). */
int scn_hist_delta(const scn_hist *prev, const scn_hist *cur, scn_hist *out);
/* acc += d; an empty acc becomes d. -1 when the bounds differ (acc unchanged). */
int scn_hist_add(scn_hist *acc, const scn_hist *d);
/* histogram_quantile: linear interpolation within the bucket (lower bound 0 for the first);
 * a rank in the +Inf bucket returns the highest finite bound. NaN when empty. */
double scn_hist_quantile(const scn_hist *h, double q);

/* ------------------------------------------------------------------------------------------
 * Prometheus text exposition format (0.0.4)
 * ---------------------------------------------------------------------------------------- */

typedef enum scn_prom_type {
    SCN_PROM_UNTYPED = 0,
    SCN_PROM_COUNTER,
    SCN_PROM_GAUGE,
    SCN_PROM_HISTOGRAM,
    SCN_PROM_SUMMARY,
} scn_prom_type;

typedef struct scn_prom_label {
    char *name;
    char *value; /* unescaped */
} scn_prom_label;

typedef struct scn_prom_sample {
    char *name; /* the full sample name ("x_bucket") */
    scn_prom_label *labels;
    size_t n_labels;
    double value;         /* NaN, +Inf, -Inf as spelled by Prometheus */
    int64_t timestamp_ms; /* 0 when absent */
} scn_prom_sample;

typedef struct scn_prom_family {
    char *name;
    scn_prom_type type;
} scn_prom_family;

typedef struct scn_prom {
    scn_prom_sample *samples;
    size_t n;
    scn_prom_family *families; /* from # TYPE lines */
    size_t n_families;
} scn_prom;

/* Parses a scrape. Unknown comment lines are skipped. 0, or -1 with "line N: ..." in err. */
int scn_prom_parse(const char *text, size_t len, scn_prom *out, char *err, size_t err_cap);
void scn_prom_free(scn_prom *p);
scn_prom_type scn_prom_family_type(const scn_prom *p, const char *family);
/* A label's value or NULL. */
const char *scn_prom_label_value(const scn_prom_sample *s, const char *name);
/* match: NULL or {"label", "value", ..., NULL}; a sample matches when every pair matches. */
bool scn_prom_match(const scn_prom_sample *s, const char *const *match);
/* Sum of the samples named name that match (NaN when none). */
double scn_prom_sum(const scn_prom *p, const char *name, const char *const *match);
/* Aggregates family's _bucket/_sum series that match into one histogram (bucket counts of
 * equal le summed across series). 0, or -1 when no series matched. */
int scn_prom_histogram(const scn_prom *p, const char *family, const char *const *match,
                       scn_hist *out);

/* ------------------------------------------------------------------------------------------
 * Measurements
 * ---------------------------------------------------------------------------------------- */

/* Request methods as the server counts them. */
typedef enum scn_method {
    SCN_M_LIST = 0, /* Range with range_end (relistlab_range_requests_total{kind="list"}) */
    SCN_M_GET,      /* Range of one key */
    SCN_M_PUT,
    SCN_M_DELETE, /* DeleteRange */
    SCN_M_TXN,
    SCN_M_WATCH, /* watch create requests (Watch stream messages received) */
    SCN_M_COUNT
} scn_method;

/* The server's cumulative counters at one scrape. */
typedef struct scn_server_snap {
    bool ok;                 /* the scrape worked */
    bool range_split;        /* list/get told apart (kvstore); etcd: every Range is a "list" */
    double req[SCN_M_COUNT]; /* cumulative requests */
    double bytes_sent;       /* NaN if not exported */
    scn_hist list_hist;      /* seconds (n = 0 when not exported) */
    scn_hist get_hist;
    double revision, compact_revision; /* gauges (NaN if absent) */
} scn_server_snap;

/* Reads kvstore's or etcd's families: relistlab_range_requests_total{kind},
 * relistlab_range_seconds{kind} (fallback grpc_server_handling_seconds{grpc_method="Range"}),
 * grpc_server_handled_total{grpc_method} (Put, DeleteRange, Txn, and Range without the split),
 * grpc_server_msg_received_total{grpc_method="Watch"} (fallback grpc_server_started_total),
 * relistlab_client_sent_bytes_total, etcd_debugging_mvcc_current/compact_revision. */
void scn_server_snap_from_prom(const scn_prom *p, scn_server_snap *out);

/* Everything cumulative at time t (the runner fills the client and load parts itself). */
typedef struct scn_snapshot {
    double t; /* seconds since the start of the run */
    scn_server_snap srv;
    /* watchers (fleet totals) */
    double events, misses, relists_miss, relists_compacted, relists_error, list_bytes;
    double synced; /* gauge: watchers synced and watching */
    /* load driver */
    double writes, write_errors;
    scn_hist put_hist;  /* seconds; scn_snapshot_init sets scn_hist_init_latency */
    double cpu_seconds; /* server process CPU time (NaN unknown) */
} scn_snapshot;

void scn_snapshot_init(scn_snapshot *s);

/* Per-second series of a sample (rates are per second over the interval; gauges are values). */
typedef enum scn_field {
    SCN_F_REQUESTS = 0, /* all methods */
    SCN_F_LIST,
    SCN_F_GET,
    SCN_F_PUT,
    SCN_F_DELETE,
    SCN_F_TXN,
    SCN_F_WATCH,
    SCN_F_BYTES,  /* bytes/s sent by the server (the watchers' LIST bytes if not exported) */
    SCN_F_EVENTS, /* watch events/s received by the watchers */
    SCN_F_RELISTS,
    SCN_F_RELISTS_MISS,
    SCN_F_RELISTS_COMPACTED,
    SCN_F_RELISTS_ERROR,
    SCN_F_MISSES,
    SCN_F_WRITES, /* load-driver writes completed/s */
    SCN_F_WRITE_ERRORS,
    SCN_F_CPU,    /* server CPU in cores (gauge) */
    SCN_F_SYNCED, /* watchers synced (gauge) */
    SCN_F_COUNT
} scn_field;

/* The metric / CSV column name of a field ("request_rate", "list_rate", ...). */
const char *scn_field_name(scn_field f);

typedef enum scn_quantile { SCN_Q50 = 0, SCN_Q90, SCN_Q99, SCN_Q999, SCN_Q_COUNT } scn_quantile;
extern const double scn_quantiles[SCN_Q_COUNT]; /* 0.5, 0.9, 0.99, 0.999 */

typedef struct scn_sample {
    double t;  /* end of the interval, seconds since the start of the run */
    double dt; /* interval length (normally 1) */
    int phase; /* script phase index, -1 outside every phase */
    double v[SCN_F_COUNT];
    scn_hist list_hist, get_hist, put_hist;           /* deltas over the interval, seconds */
    double list_ms[SCN_Q_COUNT], put_ms[SCN_Q_COUNT]; /* NaN when nothing was observed */
} scn_sample;

/* out = the interval prev -> cur. Counter resets (a server restart) count from zero. */
void scn_sample_from(const scn_snapshot *prev, const scn_snapshot *cur, int phase, scn_sample *out);
/* Recomputes list_ms/put_ms from the histograms (for samples built by hand). */
void scn_sample_quantiles(scn_sample *s);

/* The runner's per-run helper: push every cumulative snapshot (the first at t = 0); from the
 * second on it returns 1 with the interval's sample. A failed scrape (srv.ok false, e.g. the
 * server is restarting) gives NaN server rates for that second and the next good scrape is
 * measured from the last good one. */
typedef struct scn_sampler {
    scn_snapshot last;
    scn_server_snap good; /* the last good scrape */
    double good_t;
    bool have;
} scn_sampler;
void scn_sampler_init(scn_sampler *sm);
int scn_sampler_push(scn_sampler *sm, const scn_snapshot *cur, int phase, scn_sample *out);

/* End-of-run verification (refl_fleet_verify's round). */
typedef struct scn_end {
    bool verified;
    double watchers_verified, unverified, divergent_watchers;
    double divergent, missing, extra, stale, collided;
} scn_end;

typedef struct scn_run {
    char mode[SCN_NAME_MAX];
    scn_watchers cfg; /* effective settings at the start */
    scn_sample *samples;
    size_t n, cap;
    scn_end end;
    char note[256]; /* e.g. "server did not start" (shown in the reports) */
} scn_run;

typedef struct scn_result {
    char scenario[SCN_NAME_MAX];
    char title[256];
    char (*phases)[SCN_NAME_MAX]; /* the script's phase names */
    size_t n_phases;
    scn_slo slo;
    scn_report_cfg report;
    scn_run *runs;
    size_t n_runs;
} scn_result;

/* Runs for every enabled mode of the script, names and settings filled. NULL on ENOMEM. */
scn_result *scn_result_new(const scn_script *s);
void scn_result_free(scn_result *r);
int scn_run_add_sample(scn_run *run, const scn_sample *s);   /* copies; 0 or -1 */
int scn_result_phase(const scn_result *r, const char *name); /* index or -1 */
const scn_run *scn_result_find(const scn_result *r, const char *mode);

/* Metric paths (see README): RATE.AGG with RATE one of the scn_field names and AGG one of
 * mean p50 p90 p99 max peak min last; LAT.Q with LAT list_latency_ms get_latency_ms
 * put_latency_ms and Q p50 p90 p99 p999 mean; counts over the window: requests lists relists
 * relists.miss relists.compacted relists.error misses events writes write_errors; end of run:
 * divergent divergent_watchers missing extra stale collided unverified. */
int scn_metric_check(const char *path, char *err, size_t err_cap);
/* The metric over the samples of one phase (-1 = all samples). NaN when there is no data. */
double scn_run_metric(const scn_run *run, int phase, const char *path);
/* Phase i's interval as measured (first sample's start .. last sample's t). -1 if absent. */
int scn_run_phase_span(const scn_run *run, int phase, double *start, double *end);

/* ------------------------------------------------------------------------------------------
 * Expectations
 * ---------------------------------------------------------------------------------------- */

typedef struct scn_verdict {
    size_t expect;           /* index in script->expects */
    char mode[SCN_NAME_MAX]; /* the run evaluated ("" for cross-mode or unmatched) */
    bool pass;
    bool skipped;         /* names a mode that was not run (--set modes=...): not a failure */
    double actual, bound; /* lhs and k (* rhs); NaN when missing */
    char msg[512];        /* "PASS file:line: phase=churn list_rate.mean < 1 [namespaced]: 0.42" */
} scn_verdict;

/* One verdict per (expectation, matching run); an expectation naming modes itself (@mode)
 * is evaluated once; one matching no run fails ("matches no mode"). Missing data fails.
 * 0, or -1 on ENOMEM. *out is malloc'd. */
int scn_expect_eval(const scn_script *s, const scn_result *r, scn_verdict **out, size_t *n);

/* ------------------------------------------------------------------------------------------
 * Reports
 * ---------------------------------------------------------------------------------------- */

/* The SLO verdict of a run over a phase (-1 = all): true when LIST, GET and PUT p99 are within
 * the limits (missing data counts as within). msg gets "ok" or what breached. */
bool scn_slo_verdict(const scn_result *r, const scn_run *run, int phase, char *msg, size_t cap);

/* malloc'd NUL-terminated texts; NULL on ENOMEM. verdicts may be NULL (nv 0). */
char *scn_report_table(const scn_result *r, const scn_verdict *v, size_t nv);
char *scn_report_markdown(const scn_result *r, const scn_verdict *v, size_t nv);
char *scn_report_html(const scn_result *r, const scn_verdict *v, size_t nv);
char *scn_report_csv(const scn_result *r);
char *scn_report_json(const scn_result *r, const scn_verdict *v, size_t nv);
/* Writes report.html, report.md, timeline.csv and summary.json into dir (created if needed).
 * 0, or -1 with a message. */
int scn_report_write_dir(const char *dir, const scn_result *r, const scn_verdict *v, size_t nv,
                         char *err, size_t err_cap);

#ifdef __cplusplus
}
#endif

#endif
