/* refl.h — the network-free core of relistlab's reflectors (watchers).
 *
 * Pieces: lab-object metadata extraction, a process-wide pool of shared object bytes, the
 * informer-style cache with its key modes (the correct one and the buggy ones this project
 * reproduces), the miss-reaction policy, backoff, a token bucket, verification of a cache
 * against the server's truth, and per-reflector counters with a JSON summary writer.
 *
 * Design rules: everything is driven by explicit calls and explicit time (now_ms from the
 * caller); nothing here starts threads or timers, so it is deterministic and testable, and a
 * network layer (LIST pagination, WATCH, the relist state machine) drives it from one libuv
 * loop. Single-threaded: one refl_objpool and the caches using it belong to one thread.
 * Errors are values: functions return 0 / -1 (or an enum), never exit or print. */
#ifndef RELIST_REFL_H
#define RELIST_REFL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------
 * Lab objects and their metadata
 * ---------------------------------------------------------------------------------------- */

/* A byte slice, not NUL-terminated; points into memory owned by someone else. */
typedef struct refl_str {
    const char *p;
    size_t n;
} refl_str;

/* Where the metadata came from. */
typedef enum refl_meta_source {
    REFL_META_VALUE = 0, /* decoded from a relistlab.LabObject value */
    REFL_META_KEY = 1,   /* value was not a lab object: parsed from the etcd key */
} refl_meta_source;

/* The identity of an object, as a reflector's key functions see it. Slices point into the
 * value or the key given to refl_meta_extract (no copies). */
typedef struct refl_objmeta {
    refl_str ns;   /* empty for cluster-scoped objects */
    refl_str name; /* never empty after refl_meta_extract on a non-empty key */
    refl_str uid;  /* the value's uid, or the etcd key when the value has none */
    refl_meta_source source;
} refl_objmeta;

/* Scans a LabObject value for fields 2 (namespace), 3 (name), 4 (uid) without unpacking it.
 * Safe on arbitrary bytes. Returns 0 when the bytes are well-formed protobuf wire data and
 * the name is non-empty; -1 otherwise (out is then zeroed). Lenient where protobuf-c is
 * strict about fields it does not need (map entries, UTF-8, unknown fields' contents). */
int refl_meta_from_value(const void *value, size_t value_len, refl_objmeta *out);

/* Parses /registry/<resource>/<namespace>/<name> (namespaced) or /registry/<resource>/<name>
 * (cluster-scoped: ns empty). A name may contain further '/'. Any other key becomes a
 * cluster-scoped object named by the whole key. uid is set to the key. Never fails. */
void refl_meta_from_key(const char *key, size_t key_len, refl_objmeta *out);

/* The reflector's view: value first, key fallback (see the two functions above); when the
 * value carries no uid the uid is the etcd key. */
void refl_meta_extract(const char *key, size_t key_len, const void *value, size_t value_len,
                       refl_objmeta *out);

/* ------------------------------------------------------------------------------------------
 * Cache key modes
 * ---------------------------------------------------------------------------------------- */

typedef enum refl_key_mode {
    REFL_KEY_NAMESPACED = 0, /* namespace/name (name for cluster-scoped): MetaNamespaceKeyFunc */
    REFL_KEY_NAME = 1,       /* name only: same-named objects of different namespaces collide */
    REFL_KEY_MISMATCH = 2,   /* LIST fills by name, watch events look up namespace/name */
    REFL_KEY_UID = 3,        /* the object's uid (metacontroller #414's fix) */
} refl_key_mode;

/* Which key construction: the one used when a LIST fills the cache, or the one used when a
 * watch event arrives. They differ only in REFL_KEY_MISMATCH. */
typedef enum refl_key_phase {
    REFL_PHASE_LIST = 0,
    REFL_PHASE_EVENT = 1,
} refl_key_phase;

/* Writes the cache key of meta under (mode, phase) into buf (NUL-terminated when cap > 0,
 * truncated if short) and returns its full length, like snprintf. */
size_t refl_key_format(refl_key_mode mode, refl_key_phase phase, const refl_objmeta *meta,
                       char *buf, size_t cap);

/* "namespaced", "name", "mismatch", "uid". parse returns 0, or -1 for an unknown name. */
const char *refl_key_mode_name(refl_key_mode mode);
int refl_key_mode_parse(const char *s, refl_key_mode *out);

/* What the reflector does when a watch event misses its cache (the state machine acts on it). */
typedef enum refl_miss_policy {
    REFL_MISS_RELIST = 0, /* treat the cache as inconsistent: full LIST (the storm) */
    REFL_MISS_GET = 1,    /* fetch just that object and store it under the event-time key */
    REFL_MISS_IGNORE = 2, /* drop the event, keep watching */
} refl_miss_policy;

/* "relist", "get", "ignore". */
const char *refl_miss_policy_name(refl_miss_policy p);
int refl_miss_policy_parse(const char *s, refl_miss_policy *out);

/* ------------------------------------------------------------------------------------------
 * Shared object bytes
 *
 * One pool per process (per loop). An object is identified by (etcd key, mod_revision): in
 * etcd that pair names exactly one value, so every cache holding it shares one copy, with its
 * metadata decoded once. Reference-counted; freed when the last reference goes. Interning the
 * same (key, mod_revision) with different bytes (two different servers) never shares: a
 * separate object is made, so a cache always holds exactly the bytes it was given.
 * ---------------------------------------------------------------------------------------- */

typedef struct refl_objpool refl_objpool;

/* Intrusive hash-chain link (private to the library; public only so structs can embed it). */
typedef struct refl_hnode {
    struct refl_hnode *next;
    uint64_t hash;
} refl_hnode;

typedef struct refl_obj {
    /* read-only for users */
    const char *key; /* etcd key, NUL-terminated (key_len excludes the NUL) */
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    int64_t mod_revision;
    int64_t create_revision;
    refl_objmeta meta; /* slices point into key/value above */
    /* private */
    uint32_t refs;
    refl_objpool *pool;
    refl_hnode node;
} refl_obj;

typedef struct refl_objpool_stats {
    uint64_t objects;     /* live distinct objects */
    uint64_t bytes;       /* live key + value bytes held */
    uint64_t interns;     /* refl_obj_intern calls that succeeded */
    uint64_t shared_hits; /* ... of which found an existing object */
    uint64_t frees;       /* objects freed when their last reference went */
} refl_objpool_stats;

refl_objpool *refl_objpool_new(void);
/* Free every cache using the pool first. Returns how many objects were still referenced
 * (a caller bug: they are freed anyway and the remaining references dangle); 0 normally. */
size_t refl_objpool_free(refl_objpool *pool);
refl_objpool_stats refl_objpool_get_stats(const refl_objpool *pool);

/* Returns the shared object for (key, mod_revision, value) with one new reference, or NULL
 * when out of memory. */
refl_obj *refl_obj_intern(refl_objpool *pool, const char *key, size_t key_len, const void *value,
                          size_t value_len, int64_t mod_revision, int64_t create_revision);
/* The existing object, without taking a reference; NULL if not interned. */
refl_obj *refl_obj_find(const refl_objpool *pool, const char *key, size_t key_len,
                        const void *value, size_t value_len, int64_t mod_revision);
void refl_obj_ref(refl_obj *obj);
void refl_obj_unref(refl_obj *obj); /* NULL is fine */

/* ------------------------------------------------------------------------------------------
 * The cache (an informer's indexer, reduced to one key function)
 * ---------------------------------------------------------------------------------------- */

/* One key-value as etcd returns it (a LIST item, or the truth for verification). */
typedef struct refl_kv {
    const char *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    int64_t mod_revision;
    int64_t create_revision;
} refl_kv;

typedef enum refl_event_type {
    REFL_EV_ADDED = 0,
    REFL_EV_MODIFIED = 1,
    REFL_EV_DELETED = 2,
} refl_event_type;

/* How the apiserver classifies an etcd watch event: a PUT whose create_revision equals its
 * mod_revision is a creation. */
refl_event_type refl_event_type_of(bool is_delete, int64_t create_revision, int64_t mod_revision);

/* A watch event. For DELETED, value should be the event's prev_kv value (request prev_kv):
 * it is only used to find the object's key; without it the key is parsed from the etcd key,
 * which is enough for every mode but UID on lab objects (their uid lives in the value). */
typedef struct refl_event {
    refl_event_type type;
    const char *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    int64_t mod_revision; /* the event's revision (for DELETED: the deletion's) */
    int64_t create_revision;
} refl_event;

/* Outcome of applying a watch event.
 * A MISS is a MODIFIED or DELETED event whose event-time cache key has no entry: the cache
 * is left unchanged (the event is not applied) and the caller's miss policy decides. ADDED
 * never misses: it inserts, or overwrites whatever entry holds that key (client-go's Add). A
 * hit on an entry that holds another etcd key (a name collision) is not a miss — the buggy
 * client cannot tell — but is counted in refl_cache_stats.foreign. */
typedef enum refl_apply_result {
    REFL_APPLY_INSERTED = 0, /* ADDED (or GET-repaired) object stored under a new key */
    REFL_APPLY_UPDATED = 1,  /* ADDED/MODIFIED replaced an existing entry */
    REFL_APPLY_DELETED = 2,  /* DELETED removed an existing entry */
    REFL_APPLY_MISS = 3,     /* MODIFIED/DELETED found no entry; cache unchanged */
    REFL_APPLY_ENOMEM = -1,  /* cache unchanged */
} refl_apply_result;

typedef struct refl_cache_entry {
    refl_hnode node; /* private */
    refl_obj *obj;   /* shared bytes; the entry holds one reference */
    size_t key_len;
    char key[]; /* the cache key, NUL-terminated */
} refl_cache_entry;

typedef struct refl_cache_stats {
    uint64_t replaces; /* completed LIST replacements */
    uint64_t inserted; /* per refl_apply_result */
    uint64_t updated;
    uint64_t deleted;
    uint64_t misses;
    uint64_t foreign;   /* hits on an entry holding a different etcd key (collisions) */
    uint64_t collapsed; /* LIST items that overwrote an earlier item of the same LIST */
} refl_cache_stats;

typedef struct refl_cache refl_cache;

/* The pool must outlive the cache. NULL when out of memory. */
refl_cache *refl_cache_new(refl_objpool *pool, refl_key_mode mode);
void refl_cache_free(refl_cache *c);

refl_key_mode refl_cache_mode(const refl_cache *c);
size_t refl_cache_count(const refl_cache *c);
/* The highest revision seen: the last LIST's revision or a later event's. Re-watch from +1. */
int64_t refl_cache_revision(const refl_cache *c);
refl_cache_stats refl_cache_get_stats(const refl_cache *c);

/* Replace-all from a LIST, page by page: begin, add every item (list-time key construction;
 * a later item overwrites an earlier one of the same key, as client-go's Replace does), then
 * end to swap the new contents in atomically, or abort to keep the old contents (a LIST that
 * failed halfway). Items are interned, so unchanged objects are not copied. */
int refl_cache_replace_begin(refl_cache *c);
int refl_cache_replace_add(refl_cache *c, const refl_kv *item);
void refl_cache_replace_end(refl_cache *c, int64_t list_revision);
void refl_cache_replace_abort(refl_cache *c);
/* All of the above for one array. 0, or -1 when out of memory (old contents kept). */
int refl_cache_replace(refl_cache *c, const refl_kv *items, size_t n, int64_t list_revision);

/* Applies a watch event with the event-time key construction. */
refl_apply_result refl_cache_apply(refl_cache *c, const refl_event *ev);

/* Lookup by cache key; NULL if absent. */
const refl_cache_entry *refl_cache_get(const refl_cache *c, const char *key, size_t key_len);

/* Iteration in unspecified order. The cache must not change while iterating.
 *   refl_cache_iter it = {0}; const refl_cache_entry *e;
 *   while ((e = refl_cache_next(c, &it))) ... */
typedef struct refl_cache_iter {
    size_t bucket;
    const refl_hnode *node;
} refl_cache_iter;
const refl_cache_entry *refl_cache_next(const refl_cache *c, refl_cache_iter *it);

/* ------------------------------------------------------------------------------------------
 * Deterministic randomness (no global rand()): splitmix64
 * ---------------------------------------------------------------------------------------- */

typedef struct refl_rng {
    uint64_t state;
} refl_rng;

void refl_rng_seed(refl_rng *r, uint64_t seed);
uint64_t refl_rng_next(refl_rng *r);
double refl_rng_uniform(refl_rng *r); /* [0, 1) */

/* Parses a duration: a non-negative decimal number with a unit ms, s, m or h ("800ms",
 * "1.5s", "2m"); a bare "0" is allowed. Returns 0 and the milliseconds (rounded), or -1. */
int refl_parse_duration_ms(const char *s, int64_t *out_ms);

/* ------------------------------------------------------------------------------------------
 * Backoff
 *
 * client-go's reflector backoff (wait.NewExponentialBackoffManager): the base delay d starts
 * at initial, is multiplied by factor after each failure and capped at max (the cap applies to
 * d, before jitter); each sleep is d + uniform[0,1)*jitter*d, so with jitter 1.0 a capped sleep
 * is in [max, 2*max). When more than reset_ms passed since the previous failure, d goes back
 * to initial. Success does not reset d by itself (as in client-go): quiet time does.
 * ---------------------------------------------------------------------------------------- */

typedef enum refl_backoff_kind {
    REFL_BACKOFF_NONE = 0, /* retry at once */
    REFL_BACKOFF_EXP = 1,
} refl_backoff_kind;

typedef struct refl_backoff_cfg {
    refl_backoff_kind kind;
    int64_t initial_ms;
    int64_t max_ms;
    double factor;
    double jitter;
    int64_t reset_ms;
} refl_backoff_cfg;

/* "none" | "client-go" (800ms, 30s, 2, 1.0, reset 2m) | "exp:INITIAL,MAX,FACTOR,JITTER[,RESET]"
 * (e.g. "exp:100ms,10s,2,0.5"; RESET defaults to 2m). Returns 0, or -1 with a message in err. */
int refl_backoff_parse(const char *s, refl_backoff_cfg *out, char *err, size_t err_cap);
/* Writes the canonical spelling ("none", "client-go" or "exp:...") like snprintf. */
size_t refl_backoff_format(const refl_backoff_cfg *cfg, char *buf, size_t cap);

typedef struct refl_backoff {
    refl_backoff_cfg cfg;
    double cur_ms;           /* the next base delay d */
    int64_t last_failure_ms; /* start of the quiet period (init time before any failure) */
    int64_t last_success_ms;
    uint64_t failures;
    uint64_t successes;
    double total_ms; /* sum of delays handed out */
    refl_rng rng;
} refl_backoff;

void refl_backoff_init(refl_backoff *b, const refl_backoff_cfg *cfg, uint64_t seed, int64_t now_ms);
/* Records a failure at now_ms and returns how long to wait before retrying, in ms. */
int64_t refl_backoff_failure(refl_backoff *b, int64_t now_ms);
void refl_backoff_success(refl_backoff *b, int64_t now_ms);

/* ------------------------------------------------------------------------------------------
 * Token bucket (client-go's rest client rate limiter: 5 qps, burst 10)
 * ---------------------------------------------------------------------------------------- */

typedef struct refl_tokenbucket {
    double qps; /* 0: unlimited */
    double burst;
    double tokens;
    int64_t last_ms;
    uint64_t takes;
    uint64_t waits; /* takes that had to wait (ratelimit_waits) */
    uint64_t wait_ms_total;
} refl_tokenbucket;

/* Presets: "client-go" (5/10), "none" (unlimited), or "QPS/BURST" ("50/100"). */
int refl_ratelimit_parse(const char *s, double *qps, double *burst, char *err, size_t err_cap);

/* Starts full (burst tokens), like golang.org/x/time/rate. burst < 1 counts as 1. */
void refl_tokenbucket_init(refl_tokenbucket *tb, double qps, double burst, int64_t now_ms);
/* Reserves one token: returns 0 if it is available now, else the ms until the reserved token
 * exists; the caller waits that long and then proceeds WITHOUT calling take again (like
 * rate.Limiter.Wait: requests queue in order). Time going backwards adds no tokens. */
int64_t refl_tokenbucket_take(refl_tokenbucket *tb, int64_t now_ms);

/* ------------------------------------------------------------------------------------------
 * Verification against the server's truth at one revision
 * ---------------------------------------------------------------------------------------- */

typedef struct refl_truth refl_truth;

/* Indexes the server's objects at one revision (e.g. a LIST straight from the store). The
 * items' bytes are copied, so the caller's buffers may go. Build once, verify many caches. */
refl_truth *refl_truth_new(const refl_kv *items, size_t n, int64_t revision);
void refl_truth_free(refl_truth *t);
size_t refl_truth_count(const refl_truth *t);

#define REFL_VERIFY_LISTING_MAX   1024
#define REFL_VERIFY_LISTING_ITEMS 8

/* Differences of one cache from the truth, by etcd key:
 *  missing   truth objects no cache entry holds;
 *  extra     entries holding an etcd key absent from the truth, or holding one already held by
 *            another entry (duplicates);
 *  stale     entries holding an older mod_revision than the truth;
 *  ahead     entries newer than the truth (cache verified after it moved on: not divergence);
 *  collided  truth objects whose cache key (list- or event-time) under the cache's mode is
 *            shared with another truth object (NAME: a/web-0 and b/web-0 are both counted);
 *  misplaced entries stored under a key the event-time lookup would not use (MISMATCH's
 *            listed objects): the cause of misses, not itself divergence.
 * divergent = missing + extra + stale. */
typedef struct refl_verify_report {
    int64_t revision;
    uint64_t truth_objects;
    uint64_t cache_entries;
    uint64_t missing;
    uint64_t extra;
    uint64_t stale;
    uint64_t ahead;
    uint64_t collided;
    uint64_t misplaced;
    uint64_t divergent;
    /* the first REFL_VERIFY_LISTING_ITEMS differences, one per line */
    char listing[REFL_VERIFY_LISTING_MAX];
} refl_verify_report;

/* 0, or -1 when out of memory (report zeroed). */
int refl_verify(const refl_truth *t, const refl_cache *c, refl_verify_report *out);

/* ------------------------------------------------------------------------------------------
 * Counters and the JSON summary
 * ---------------------------------------------------------------------------------------- */

typedef struct refl_counters {
    uint64_t lists; /* LIST requests (each page counts in list_pages) */
    uint64_t list_pages;
    uint64_t list_bytes; /* value bytes received by LISTs */
    uint64_t watches;    /* WATCH streams opened */
    uint64_t events;
    uint64_t misses;
    struct {
        uint64_t miss;      /* relists triggered by a cache miss */
        uint64_t compacted; /* ... by a watch canceled for compaction (410 Gone) */
        uint64_t error;     /* ... by any other watch error */
    } relists;
    uint64_t gets;
    double backoff_seconds;
    uint64_t ratelimit_waits;
    uint64_t divergent; /* differing entries at the last verification */
} refl_counters;

void refl_counters_add(refl_counters *sum, const refl_counters *c);

/* One watcher's row in the summary. Strings may be NULL (then left out). */
typedef struct refl_watcher_row {
    const char *name;
    const char *prefix;
    const char *key_mode;
    const char *miss_policy;
    refl_counters counters;
} refl_watcher_row;

/* {"totals": {"watchers": N, "divergent_watchers": D, <counters summed>},
 *  "watchers": [{"name": ..., "prefix": ..., <counters>}, ...]}
 * Returns a malloc'd NUL-terminated string (length in *len if non-NULL), NULL on ENOMEM. */
char *refl_summary_json(const refl_watcher_row *rows, size_t n, size_t *len);

/* ------------------------------------------------------------------------------------------
 * Reflectors on the network: the fleet (refl_reflector.c, refl_fleet.c, refl_fleet_verify.c)
 *
 * A fleet is N independent reflectors on one libuv loop, talking etcd v3 gRPC to one or more
 * endpoints. Each reflector: LIST (paginated, every page at the first page's revision) into
 * its cache, then WATCH from list revision + 1 with prev_kv and progress_notify; a cache miss
 * acts per its miss policy; a watch canceled for compaction relists; a lost connection
 * reconnects and re-watches from the last revision seen (no relist); other watch errors back
 * off and relist. LIST and GET requests pass the reflector's own token bucket (client-go has
 * one rate limiter per rest client; here every watcher is a client). Backoff applies before
 * relists, re-watches after errors and reconnects; reconnects additionally wait at least
 * REFL_RECONNECT_FLOOR_MS so that "--backoff none" against a dead server does not spin.
 * Connections are shared: watcher i uses connection slot i % conns; slot s starts on endpoint
 * s % n_endpoints and moves to the next endpoint whenever its connection fails or drops.
 * Single-threaded: every call on the loop's thread. Library code: never prints (log hook).
 * ---------------------------------------------------------------------------------------- */

struct uv_loop_s; /* uv_loop_t, without making every user of this header include uv.h */

#define REFL_RECONNECT_FLOOR_MS 100

typedef struct refl_fleet refl_fleet;

/* What a reflector is doing right now. */
typedef enum refl_state {
    REFL_ST_IDLE = 0,           /* not started */
    REFL_ST_WAITING = 1,        /* backoff / rate-limit / reconnect delay before the next request */
    REFL_ST_LISTING = 2,        /* a LIST is in progress (pages in flight) */
    REFL_ST_WATCH_STARTING = 3, /* watch create sent, "created" not yet seen */
    REFL_ST_WATCHING = 4,       /* synced: applying events */
    REFL_ST_HELD = 5,           /* refl_fleet_hold: no stream, no requests */
    REFL_ST_STOPPED = 6,
} refl_state;

const char *refl_state_name(refl_state s);

/* Progress hook events (for logs, tests and the scenario runner's sampler). */
typedef enum refl_trace_kind {
    REFL_TRACE_LIST_PAGE = 0, /* a LIST page arrived (revision = the list's revision) */
    REFL_TRACE_LIST_DONE = 1, /* a LIST completed: cache replaced (count = objects) */
    REFL_TRACE_WATCH_CREATED = 2,
    REFL_TRACE_RELIST = 3,    /* a relist was decided (detail: miss | compacted | error) */
    REFL_TRACE_REWATCH = 4,   /* re-watch from the last revision (no relist) */
    REFL_TRACE_CONN_DOWN = 5, /* a connection failed/dropped (watcher = slot index) */
    REFL_TRACE_VERIFIED = 6,  /* a verification of this watcher finished */
    REFL_TRACE_ERROR = 7,     /* a request failed (detail: the status and message) */
} refl_trace_kind;

typedef struct refl_trace {
    refl_trace_kind kind;
    size_t watcher; /* index (a connection slot for CONN_DOWN) */
    int64_t revision;
    uint64_t count;
    const char *detail; /* may be "" */
} refl_trace;

typedef struct refl_fleet_opts {
    const char *const *endpoints; /* "host:port" (an "http://" prefix is accepted); >= 1 */
    size_t n_endpoints;
    size_t count; /* watchers (>= 1) */
    /* Each watcher's prefix: prefix_fmt when set (printf-style with exactly one %d, replaced by
     * the watcher's namespace number: i % namespaces when namespaces > 0, else i); otherwise
     * prefix + "ns-<i % namespaces>/" when namespaces > 0; otherwise prefix for all. */
    const char *prefix; /* [ "/registry/pods/" ] */
    const char *prefix_fmt;
    size_t namespaces;
    size_t conns; /* connection slots [0 = one per watcher]; capped at count */
    refl_key_mode key_mode;
    refl_miss_policy miss_policy;
    refl_backoff_cfg backoff;    /* kind NONE (zeroed) = retry at once */
    double qps, burst;           /* per watcher; qps 0 = unlimited */
    int64_t page_size;           /* LIST limit per request; 0 = the whole prefix in one request */
    int64_t resync_ms;           /* 0 = no resync */
    uint32_t request_timeout_ms; /* LIST page / GET deadline [60000] */
    uint64_t seed;               /* backoff jitter; watcher i uses seed + i */
    void (*trace)(void *ud, const refl_trace *t); /* optional; runs on the loop thread */
    void *trace_ud;
} refl_fleet_opts;

/* Extra per-watcher counters beyond refl_counters (same "monotonic" rule). */
typedef struct refl_extra_counters {
    uint64_t resyncs;        /* resync periods delivered from the cache (no request) */
    uint64_t resync_objects; /* objects re-delivered by them */
    uint64_t rewatches;      /* watches re-opened from the last revision (no relist) */
    uint64_t reconnects;     /* retries after the connection was down */
    uint64_t list_failures;  /* LIST pages that failed (the LIST is retried from scratch) */
    uint64_t get_failures;
    uint64_t duplicates; /* events at or below the revision already applied (dropped) */
    uint64_t progress;   /* progress notifications */
    uint64_t rekeys;     /* key-mode changes (each a fresh cache and a LIST) */
    uint64_t verifies;   /* verifications completed for this watcher */
} refl_extra_counters;

/* A snapshot of one watcher. Strings are owned by the fleet (valid until it is freed). */
typedef struct refl_watcher_info {
    const char *name;
    const char *prefix;
    refl_state state;
    bool synced;          /* a LIST has completed since the last cache reset */
    int64_t revision;     /* the last revision applied (list revision or later event) */
    size_t objects;       /* cache entries */
    size_t slot;          /* connection slot */
    const char *endpoint; /* the slot's current endpoint */
    refl_key_mode key_mode;
    refl_miss_policy miss_policy;
    refl_counters counters;
    refl_extra_counters extra;
    bool verified;             /* has a verification report */
    refl_verify_report verify; /* the last one */
} refl_watcher_info;

typedef struct refl_fleet_stats {
    size_t watchers;
    size_t synced;   /* synced and in WATCHING */
    size_t watching; /* in WATCHING */
    size_t held;
    size_t objects;     /* cache entries over all watchers */
    size_t conns_up;    /* connected slots */
    uint64_t connects;  /* connection attempts */
    uint64_t failovers; /* endpoint switches */
    uint64_t drops;     /* connections cut by refl_fleet_drop_connections */
    refl_counters totals;
    refl_extra_counters extra;
    refl_objpool_stats pool;
    uint64_t verify_rounds, verify_lists;
} refl_fleet_stats;

/* Validates opts and builds the fleet (nothing is sent until start). NULL with a message in err
 * on bad options or out of memory. The strings in opts are copied. */
refl_fleet *refl_fleet_new(struct uv_loop_s *loop, const refl_fleet_opts *opts, char *err,
                           size_t err_cap);
/* Starts every watcher (the initial LISTs go out through each watcher's token bucket). */
int refl_fleet_start(refl_fleet *f);
/* Cancels every stream and request, closes every connection and timer; done(ud) runs on the
 * loop once every handle is closed (keep running the loop); then refl_fleet_free. */
void refl_fleet_stop(refl_fleet *f, void (*done)(void *ud), void *ud);
void refl_fleet_free(refl_fleet *f);

size_t refl_fleet_count(const refl_fleet *f);
void refl_fleet_get_stats(const refl_fleet *f, refl_fleet_stats *out);
/* 0, or -1 when i is out of range. */
int refl_fleet_watcher_info(const refl_fleet *f, size_t i, refl_watcher_info *out);
/* Direct read access to a watcher's cache (NULL if out of range); changes with the loop. */
const refl_cache *refl_fleet_cache(const refl_fleet *f, size_t i);

/* Live reconfiguration (all watchers). A key-mode change is a client restart with new code: a
 * fresh cache and a LIST (counted in extra.rekeys, not as a relist). The others take effect
 * for the next decision; the backoff state restarts with the new policy. */
void refl_fleet_set_key_mode(refl_fleet *f, refl_key_mode mode);
void refl_fleet_set_miss_policy(refl_fleet *f, refl_miss_policy p);
void refl_fleet_set_backoff(refl_fleet *f, const refl_backoff_cfg *cfg);
void refl_fleet_set_ratelimit(refl_fleet *f, double qps, double burst);
void refl_fleet_set_resync(refl_fleet *f, int64_t resync_ms);

/* Holds watcher i (true): its watch is canceled and no request is made, like a client cut off
 * from the server; releasing it (false) re-watches from its last revision (or LISTs if it
 * never synced). For scenarios ("partition this watcher") and tests (compaction while away). */
int refl_fleet_hold(refl_fleet *f, size_t i, bool hold);

/* Cuts connections for real, as a network blip or a load balancer's reset does: a fraction of
 * the fleet's open connections, chosen at random (seeded), is aborted (grpc_client_abort: TCP
 * RST, no GOAWAY). Every stream and request on a cut connection fails with UNAVAILABLE and its
 * watcher takes the ordinary reconnect path: backoff (at least REFL_RECONNECT_FLOOR_MS; counted
 * in extra.reconnects), a new connection, a re-watch from its last revision (extra.rewatches),
 * and a relist only if the server compacted that history meanwhile (relists.compacted). A LIST
 * cut half-way is retried from scratch (extra.list_failures), not counted as a relist.
 * fraction is of the connections open now: ceil(fraction * open), all of them at >= 1. With
 * conns < count a connection carries several watchers (watcher i uses slot i % conns) and all
 * of them are cut; with one connection per watcher (conns 0) it is the fraction of watchers
 * (those whose connection is up). Returns the number of connections cut, with details in out
 * (may be NULL), or -1 when the fleet is stopping or fraction is not a number >= 0. Callbacks
 * (trace) run inside this call. */
typedef struct refl_drop_result {
    size_t conns_open; /* connections open before the cut */
    size_t conns;      /* connections cut */
    size_t watchers;   /* watchers using them */
    size_t streams;    /* ... of which had a watch stream open */
} refl_drop_result;
int refl_fleet_drop_connections(refl_fleet *f, double fraction, uint64_t seed,
                                refl_drop_result *out);

/* Verification of every watcher against the server (see refl_verify). A watcher is verified
 * when it is WATCHING with no event or GET pending: its event processing holds while a LIST of
 * its prefix at its revision is read (truths are shared between watchers of the same prefix
 * and revision). Watchers that do not get there within timeout_ms are counted unverified.
 * done runs once with the round's totals; per-watcher reports via refl_fleet_watcher_info, and
 * counters.divergent is set from the report. Returns 0, or -1 when a round is in progress. */
typedef struct refl_verify_round {
    size_t verified, unverified, divergent_watchers;
    uint64_t missing, extra, stale, ahead, collided, misplaced, divergent;
    int64_t min_revision, max_revision; /* over verified watchers */
    uint64_t lists;                     /* truth LISTs read */
} refl_verify_round;
int refl_fleet_verify(refl_fleet *f, uint32_t timeout_ms,
                      void (*done)(void *ud, const refl_verify_round *r), void *ud);
bool refl_fleet_verifying(const refl_fleet *f);
/* The last finished round (zeroed if none). */
refl_verify_round refl_fleet_last_verify(const refl_fleet *f);

/* The JSON summary: refl_summary_json's {"totals": {...}, "watchers": [...]} plus a "fleet"
 * object (connections, synced, objects, pool, extra counters, the last verification and up to
 * 8 divergence listings). malloc'd, NULL on ENOMEM. */
char *refl_fleet_summary_json(const refl_fleet *f, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
