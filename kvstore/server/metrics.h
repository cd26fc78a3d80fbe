/* metrics.h — a small Prometheus metrics registry (text exposition format 0.0.4) for `kvstore
 * serve`, plus the etcd / go-grpc-prometheus families the server exports and a bounded per-client
 * accounting table.
 *
 * Model (as in the Go client): a registry holds families (name, help, type, fixed label names);
 * a family holds series, one per label-value tuple. Get a series handle once with
 * kvs_family_series() (or call it per update: lookups of existing series are lock-free too),
 * then update it from any thread with C11 atomics: no lock on the update path. Creating a series,
 * registering a family and rendering take mutexes. Series are never removed, so handles stay valid
 * until kvs_registry_free().
 *
 * Rendering sorts families by name and series by label values (deterministic output) and builds
 * the whole page in one malloc'd buffer. Label values are escaped (\\, \", \n); counters print as
 * integers, other values as the shortest text that reads back to the same double.
 *
 * Threading: every function is thread-safe, except kvs_registry_free(). Value callbacks
 * (kvs_series_set_fn) and custom collectors run on the thread that renders, with the family
 * lock held: they must not call back into the registry.
 */
#ifndef RELIST_KVS_METRICS_H
#define RELIST_KVS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvs_registry kvs_registry;
typedef struct kvs_family kvs_family;
typedef struct kvs_series kvs_series;

typedef enum kvs_metric_type {
    KVS_COUNTER = 0, /* monotonic uint64 */
    KVS_GAUGE = 1,   /* double, set/add, or a callback evaluated at scrape time */
    KVS_HISTOGRAM = 2
} kvs_metric_type;

/* A value computed at scrape time (e.g. the current revision, the database size). */
typedef double (*kvs_value_fn)(void *ud);

kvs_registry *kvs_registry_new(void);
/* Frees the registry, its families and series (custom collectors' free_ud runs here). */
void kvs_registry_free(kvs_registry *r);

/* Registers a family. label_names is a NULL-terminated array (NULL = no labels); names follow
 * Prometheus rules and a histogram may not use "le". buckets (histograms only; NULL = the
 * default latency buckets, 100 µs .. 10 s) are upper bounds, strictly increasing and finite;
 * +Inf is implicit. Registering the same name again with the same type and labels returns the
 * existing family; a conflicting definition or an invalid argument returns NULL. A family
 * without labels has its one series created at once (so it renders as 0 from the start). */
kvs_family *kvs_registry_family(kvs_registry *r, const char *name, const char *help,
                                kvs_metric_type type, const char *const *label_names,
                                const double *buckets, size_t n_buckets);
/* Shorthands. */
kvs_family *kvs_registry_counter(kvs_registry *r, const char *name, const char *help,
                                 const char *const *label_names);
kvs_family *kvs_registry_gauge(kvs_registry *r, const char *name, const char *help,
                               const char *const *label_names);

/* The series for a label-value tuple (as many values as label names; NULL counts as ""),
 * created on first use. Lock-free when it exists. Returns NULL only when out of memory. */
kvs_series *kvs_family_series(kvs_family *f, const char *const *label_values);
/* The single series of a family without labels. */
static inline kvs_series *kvs_family_only(kvs_family *f) {
    return kvs_family_series(f, NULL);
}
size_t kvs_family_series_count(kvs_family *f);

/* Updates (lock-free; a NULL series is ignored so callers need not check allocation errors). */
void kvs_counter_add(kvs_series *s, uint64_t n);
static inline void kvs_counter_inc(kvs_series *s) {
    kvs_counter_add(s, 1);
}
void kvs_gauge_set(kvs_series *s, double v);
void kvs_gauge_add(kvs_series *s, double delta);
void kvs_histogram_observe(kvs_series *s, double v);
/* Makes the series report fn(ud) at scrape time instead of its stored value (counters and
 * gauges; a counter callback's result is truncated to an integer). fn NULL clears it. */
void kvs_series_set_fn(kvs_series *s, kvs_value_fn fn, void *ud);

/* Reads (for tests and for code that wants its own numbers back). */
uint64_t kvs_counter_value(const kvs_series *s);
double kvs_gauge_value(const kvs_series *s);
/* Histogram snapshot: total count and sum; bucket_counts (optional, n_buckets + 1 entries, the
 * last being +Inf) receives cumulative counts. */
void kvs_histogram_read(const kvs_series *s, uint64_t *count, double *sum, uint64_t *bucket_counts);

/* Default latency buckets in seconds: 100 µs to 10 s in 1-2.5-5 steps (16 bounds). */
#define KVS_LATENCY_BUCKETS_N 16
extern const double kvs_latency_buckets[KVS_LATENCY_BUCKETS_N];

/* Custom collectors: a family whose samples are written at scrape time by a callback (for data
 * that lives elsewhere, e.g. the per-client table below). The registry writes HELP and TYPE;
 * collect() appends samples with kvs_sample_write(). free_ud (may be NULL) runs at registry free.
 */
typedef struct kvs_sample_writer kvs_sample_writer;
typedef void (*kvs_collect_fn)(void *ud, kvs_sample_writer *w);
kvs_family *kvs_registry_custom(kvs_registry *r, const char *name, const char *help,
                                kvs_metric_type type, kvs_collect_fn collect, void *ud,
                                void (*free_ud)(void *ud));
/* One sample line `name{l1="v1",...} value` (suffix e.g. "_bucket" or "" ). n_labels may be 0. */
void kvs_sample_write(kvs_sample_writer *w, const char *suffix, const char *const *label_names,
                      const char *const *label_values, size_t n_labels, double value);

/* Renders the whole registry. Returns 0 and a malloc'd NUL-terminated text (caller frees), or
 * -1 when out of memory. */
int kvs_registry_render(kvs_registry *r, char **text, size_t *len);

/* Formats a sample value as Prometheus text ("+Inf", "NaN", "12", "0.00025", "1.5e+20").
 * Returns the length written (buf should hold 32 bytes). */
int kvs_format_value(char *buf, size_t size, double v);

/* ---------------------------------------------------------------------------------------------
 * Per-client accounting: relistlab_client_requests_total{peer,grpc_method} and
 * relistlab_client_sent_bytes_total{peer}. At most max_peers distinct peer labels exist at once;
 * later peers count under peer="other". An entry whose connections are all released is kept
 * until its slot is needed by a new peer; its counts are then folded into "other", so the sums
 * over all peers stay monotonic. Method names are interned (at most 63, then "other").
 * --------------------------------------------------------------------------------------------- */
typedef struct kvs_peer_table kvs_peer_table;
typedef struct kvs_peer kvs_peer;

#define KVS_PEERS_DEFAULT 1024

/* Registers the two families in r; the table belongs to the registry (freed with it). Returns
 * NULL on error (including a second table in the same registry). max_peers 0 = default. */
kvs_peer_table *kvs_peer_table_new(kvs_registry *r, size_t max_peers);
/* A handle for a connection from `addr` (e.g. "127.0.0.1:54321"); never NULL once the table
 * exists (full table or no memory -> the "other" entry). Release it when the connection closes;
 * never update it after. */
kvs_peer *kvs_peer_acquire(kvs_peer_table *t, const char *addr);
void kvs_peer_release(kvs_peer_table *t, kvs_peer *p);
/* Lock-free updates (NULL peer ignored). `method` is the short gRPC method, e.g. "Range". */
void kvs_peer_count_request(kvs_peer_table *t, kvs_peer *p, const char *method);
void kvs_peer_add_sent(kvs_peer *p, uint64_t bytes);
const char *kvs_peer_label(const kvs_peer *p); /* the address, or "other" */
uint64_t kvs_peer_requests(kvs_peer_table *t, const kvs_peer *p, const char *method);
uint64_t kvs_peer_sent(const kvs_peer *p);

/* ---------------------------------------------------------------------------------------------
 * The families `kvstore serve` exports, with etcd 3.4's and go-grpc-prometheus's names and help.
 * --------------------------------------------------------------------------------------------- */
#define KVS_GRPC_CODES 17
/* grpc-go's code names as go-grpc-prometheus prints them ("OK", "Canceled", ...,
 * "Unauthenticated"); "Unknown" when out of range. */
const char *kvs_grpc_code_name(int code);

typedef struct kvs_srv_metrics {
    kvs_registry *reg;
    /* {grpc_method,grpc_service,grpc_type}; grpc_type is "unary", "bidi_stream", ... */
    kvs_family *grpc_started, *grpc_msg_received, *grpc_msg_sent, *grpc_handling_seconds;
    kvs_family *grpc_handled; /* {grpc_code,grpc_method,grpc_service,grpc_type} */
    kvs_series *mvcc_range, *mvcc_put, *mvcc_delete, *mvcc_txn; /* etcd_mvcc_*_total */
    /* Gauges; set them, or attach callbacks with kvs_series_set_fn(). */
    kvs_series *current_revision, *compact_revision, *db_total_size;
    /* relistlab_range_seconds{kind} and relistlab_range_requests_total{kind}: kind "list"
     * (range_end set) or "get". */
    kvs_series *range_list_seconds, *range_get_seconds, *range_list_total, *range_get_total;
    kvs_peer_table *peers;
} kvs_srv_metrics;

/* Registers every family above in r. Returns 0 or -1. */
int kvs_srv_metrics_init(kvs_srv_metrics *m, kvs_registry *r);

/* Series handles for one gRPC method, every code pre-created (as go-grpc-prometheus does). */
typedef struct kvs_rpc_metrics {
    kvs_series *started, *msg_received, *msg_sent, *handling_seconds;
    kvs_series *handled[KVS_GRPC_CODES];
} kvs_rpc_metrics;
/* service e.g. "etcdserverpb.KV", method "Range", grpc_type "unary". Returns 0 or -1. */
int kvs_rpc_metrics_init(const kvs_srv_metrics *m, const char *service, const char *method,
                         const char *grpc_type, kvs_rpc_metrics *out);
/* A finished RPC: handled{code} += 1 and the latency observed. */
void kvs_rpc_metrics_done(const kvs_rpc_metrics *rm, int code, double seconds);
/* A finished Range: kind list when range_end was set. */
void kvs_srv_observe_range(const kvs_srv_metrics *m, int is_list, double seconds);

#ifdef __cplusplus
}
#endif
#endif
