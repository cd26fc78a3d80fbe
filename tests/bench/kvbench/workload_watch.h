/* workload_watch.h — the watch-stream fleet shared by the `watch` and `storm` workloads:
 * many etcd watchers multiplexed over a few Watch bidi streams, created synchronously in setup,
 * events handed to a callback already parsed from the wire (no protobuf-c allocation: at 1,000
 * watchers every put is 1,000 WatchResponses, so the client's per-event cost is what limits it).
 */
#ifndef KVBENCH_WORKLOAD_WATCH_H
#define KVBENCH_WORKLOAD_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "kvbench.h"

/* One mvccpb.Event as seen on the wire (pointers valid only during the callback). */
typedef struct kbw_event {
    int type; /* 0 PUT, 1 DELETE */
    int64_t mod_revision, version;
    const uint8_t *key, *value;
    size_t key_len, value_len;
} kbw_event;

/* An event for watcher `w`; `bytes` is its share of the response message. */
typedef void (*kbw_event_fn)(void *ud, int w, const kbw_event *ev, size_t bytes);
/* Watcher w's range: prefix (NUL-terminated) into buf. */
typedef void (*kbw_prefix_fn)(void *ud, int w, char *buf, size_t cap);

typedef struct kbw_fleet kbw_fleet;

typedef struct kbw_stats {
    uint64_t responses, events, canceled, bad;
} kbw_stats;

/* Opens n_streams Watch streams spread over e's connections and creates n_watchers watchers
 * (watcher w on stream w % n_streams) from start_revision (0 = now), waiting until every one is
 * created. Returns the fleet or NULL with err set. */
kbw_fleet *kbw_open(kb_env *e, int n_watchers, int n_streams, int64_t start_revision,
                    kbw_prefix_fn prefix, kbw_event_fn on_event, void *ud, char *err,
                    size_t errlen);
void kbw_get_stats(const kbw_fleet *f, kbw_stats *out);
/* Cancels the streams (no callbacks after) and frees the fleet. */
void kbw_close(kbw_fleet *f);

/* Runs e's loop until done(ud) is true, timeout_ms passes or kvbench is interrupted; returns
 * done(ud). */
bool kbw_run_until(kb_env *e, bool (*done)(void *ud), void *ud, uint64_t timeout_ms);

/* Minimal protobuf wire reading (varints and length-delimited fields). */
size_t kbw_varint(const uint8_t *p, size_t n, uint64_t *v);
/* Calls fn for every top-level field of a message; stops and returns -1 on malformed input. */
typedef int (*kbw_field_fn)(void *ud, uint32_t field, int wire, uint64_t v, const uint8_t *p,
                            size_t n);
int kbw_fields(const uint8_t *p, size_t n, kbw_field_fn fn, void *ud);

#endif
