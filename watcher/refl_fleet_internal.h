/* refl_fleet_internal.h — the structures shared by the network half of the watcher
 * (refl_reflector.c: one reflector's state machine; refl_fleet.c: the fleet, connection slots,
 * reconfiguration, stats and summary; refl_fleet_verify.c: verification rounds). Not public.
 *
 * Key decisions:
 * - Every reflector owns one uv timer and a single pending "next action": a reflector never
 *   has two requests of its own in flight, and nothing is sent from inside a gRPC callback
 *   (actions always go through the timer, even with 0 delay), so callbacks never re-enter.
 * - Unary requests carry a small heap context {reflector, generation}: the grpc client has no
 *   way to cancel a unary call, so an abandoned request (relist decided, hold, key-mode change)
 *   is recognised by its stale generation when it completes and ignored.
 * - Watch responses are queued per reflector and applied in order; the queue blocks while a
 *   GET repair or a verification LIST is in flight, so the cache sees events exactly in stream
 *   order (like client-go's synchronous handlers) without pausing the HTTP/2 stream. */
#ifndef RELIST_REFL_FLEET_INTERNAL_H
#define RELIST_REFL_FLEET_INTERNAL_H

#include "grpc.h"
#include "refl.h"
#include "rpc.pb-c.h"

#include <uv.h>

typedef struct refl_reflector refl_reflector;
typedef struct refl_truthjob refl_truthjob;

/* A connection slot: one grpc_client at a time, replaced after it fails. */
typedef struct refl_slot {
    refl_fleet *f;
    size_t idx;
    grpc_client *c;
    size_t ep; /* index into f->endpoints */
    bool up;
} refl_slot;

typedef enum refl_action {
    REFL_ACT_NONE = 0,
    REFL_ACT_LIST,      /* start a fresh LIST */
    REFL_ACT_LIST_PAGE, /* send the next page (token taken once per page) */
    REFL_ACT_WATCH,     /* open a watch from rev + 1 */
    REFL_ACT_GET,       /* send the GET repair */
    REFL_ACT_PROCESS,   /* continue applying queued events */
} refl_action;

typedef struct refl_qitem {
    struct refl_qitem *next;
    Etcdserverpb__WatchResponse *wr;
    size_t next_ev;
    int64_t floor; /* events at or below it are duplicates (fixed when processing starts) */
    bool started;
} refl_qitem;

/* A unary request's context (freed by its callback). */
typedef struct refl_req {
    refl_reflector *r;
    uint64_t gen;
} refl_req;

typedef enum refl_relist_reason {
    REFL_RELIST_INITIAL = 0, /* first LIST, rekey, or a LIST retried after a failure */
    REFL_RELIST_MISS,
    REFL_RELIST_COMPACTED,
    REFL_RELIST_ERROR,
} refl_relist_reason;

struct refl_reflector {
    refl_fleet *f;
    size_t idx;
    char name[32];
    char *prefix;
    size_t prefix_len;
    uint8_t *range_end;
    size_t range_end_len;
    refl_slot *slot;

    refl_cache *cache;
    refl_miss_policy policy;
    refl_backoff bo;
    refl_tokenbucket tb;
    uint64_t waits_base; /* ratelimit waits of earlier token buckets (reconfigured) */

    refl_state state;
    bool synced;
    int64_t rev; /* the last revision applied: list revision, later events, progress */
    uint64_t gen;

    uv_timer_t timer;
    refl_action action;
    bool token_ok; /* the token for the pending LIST page / GET was already taken */
    uv_timer_t resync_timer;

    /* LIST in progress */
    int64_t list_rev;
    uint8_t *list_key;
    size_t list_key_len;

    /* WATCH */
    grpc_cstream *ws;
    int64_t watch_id;
    refl_qitem *qhead, *qtail;

    /* GET repair */
    bool get_inflight;
    uint8_t *get_key;
    size_t get_key_len;
    int64_t get_rev;

    /* verification */
    bool verify_pending; /* wanted by the current round */
    refl_truthjob *vjob; /* waiting for this truth */
    bool verified;
    refl_verify_report vrep;

    refl_counters ctr;
    refl_extra_counters ex;
};

/* A LIST of one prefix at one revision, read once for every watcher that needs it. */
struct refl_truthjob {
    refl_truthjob *next;
    refl_fleet *f;
    char *prefix;
    size_t prefix_len;
    uint8_t *range_end;
    size_t range_end_len;
    int64_t rev;
    bool done, failed;
    bool inflight; /* a page request is out: the job must outlive its callback */
    bool orphan;   /* the round ended while in flight: the callback frees it */
    refl_truth *truth;
    Etcdserverpb__RangeResponse **pages;
    size_t n_pages, cap_pages;
    uint8_t *next_key;
    size_t next_key_len;
    refl_reflector **waiters;
    size_t n_waiters, cap_waiters;
    refl_slot *slot;
};

struct refl_fleet {
    uv_loop_t *loop;
    refl_fleet_opts o;
    char **endpoints;
    size_t n_endpoints;
    refl_objpool *pool;
    refl_reflector *rs;
    size_t n;
    refl_slot *slots;
    size_t n_slots;
    refl_key_mode mode;
    bool started, stopping;
    uint64_t connects, failovers, drops;
    int closes_pending;
    void (*stop_done)(void *ud);
    void *stop_ud;

    /* verification */
    bool verifying;
    uv_timer_t verify_timer;
    refl_truthjob *jobs;
    refl_verify_round round, last_round;
    uint64_t verify_rounds, verify_lists;
    void (*verify_done)(void *ud, const refl_verify_round *r);
    void *verify_ud;
};

/* refl_reflector.c */
int refl_r_init(refl_reflector *r, refl_fleet *f, size_t idx, const char *prefix);
void refl_r_init_timers(refl_reflector *r); /* after every allocation succeeded */
void refl_r_fini(refl_reflector *r);        /* after its timers are closed */
void refl_r_start(refl_reflector *r);
void refl_r_stop(refl_reflector *r); /* cancel everything; timers still to be closed */
void refl_r_hold(refl_reflector *r, bool hold);
void refl_r_rekey(refl_reflector *r, refl_key_mode mode);
void refl_r_schedule(refl_reflector *r, refl_action a, int64_t delay_ms);
void refl_r_process(refl_reflector *r); /* apply queued events while nothing blocks */
/* Resume applying queued events soon, unless another action (re-watch, LIST) is pending. */
void refl_r_kick(refl_reflector *r);
void refl_r_set_resync(refl_reflector *r, int64_t ms);
void refl_r_counters(const refl_reflector *r, refl_counters *out);
int64_t refl_now(const refl_fleet *f);
void refl_trace_emit(refl_fleet *f, refl_trace_kind kind, size_t watcher, int64_t rev,
                     uint64_t count, const char *detail);

/* refl_fleet.c: the slot's client, made on demand (NULL only when out of memory). */
grpc_client *refl_slot_client(refl_slot *s);
/* The prefix's range end (prefix with its last byte + 1, like etcdctl --prefix); malloc'd. */
uint8_t *refl_prefix_end(const char *prefix, size_t len, size_t *out_len);

/* refl_fleet_verify.c */
void refl_verify_maybe_start(refl_reflector *r); /* r is idle in WATCHING */
void refl_verify_detach(refl_reflector *r);      /* r's cache is about to change */
void refl_verify_abort_all(refl_fleet *f);       /* fleet stopping */
void refl_verify_free_jobs(refl_fleet *f);

#endif
