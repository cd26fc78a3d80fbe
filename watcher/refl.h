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

#ifdef __cplusplus
}
#endif

#endif
