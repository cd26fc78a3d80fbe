/* pb_wire.h — the protobuf wire-format primitives that hand-written encoders share (the LIST
 * path in kvstore/server/kv_service.c, the watch hub's WatchResponse heads in
 * kvstore/watch/watch_encode.c): base-128 varints. Header-only (static inline): the callers
 * sit in hot loops, and one definition keeps them from drifting apart.
 * Every writer here needs at most PB_VARINT_MAX bytes of room; nothing checks bounds. */
#ifndef RELIST_PB_WIRE_H
#define RELIST_PB_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define PB_VARINT_MAX 10 /* bytes of the longest varint (a uint64) */

/* Writes v as a varint at p; returns the bytes written (1..10). */
static inline size_t pb_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Bytes pb_varint would write for v. */
static inline size_t pb_varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

#endif
