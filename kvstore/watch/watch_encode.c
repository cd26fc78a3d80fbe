/* watch_encode.c — the watch hub's bytes: encoded batches (each event written once as a
 * WatchResponse `events` field, with and without prev_kv) and hand-written WatchResponse heads.
 *
 * Key decisions:
 * - WatchResponse is written by hand, not by protobuf-c: its fields are few and fixed, and a
 *   response is then a few bytes of head followed by event bytes shared between watchers, so
 *   fan-out costs a memcpy (or nothing, with sink.sendv) instead of a pack per watcher.
 * - Field order follows field numbers, as protobuf encoders do, so the bytes equal what
 *   protobuf-c would produce for the same message (the tests compare them by decoding).
 * - A batch's buffers only grow while it is built; positions are offsets, so growth is safe.
 */
#include <stdlib.h>
#include <string.h>

#include "watch_internal.h"

/* ---- buffers -------------------------------------------------------------------------------- */

int wbuf_reserve(wbuf *b, size_t extra) {
    if (b->cap - b->len >= extra) return 0;
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int wbuf_put(wbuf *b, const void *p, size_t n) {
    if (wbuf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

void wbuf_free(wbuf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void wbuf_trim(wbuf *b, size_t keep) {
    b->len = 0;
    if (b->cap > keep) wbuf_free(b);
}

/* ---- batches ------------------------------------------------------------------------------ */

/* One mvccpb.Event as WatchResponse field 11: tag, length, type (DELETE only), kv, prev_kv. */
static int put_event(wbuf *b, int type, const uint8_t *kv, size_t kv_len, const uint8_t *prev,
                     size_t prev_len) {
    size_t body = (type ? 2 : 0) + 1 + pb_varint_len(kv_len) + kv_len;
    if (prev) body += 1 + pb_varint_len(prev_len) + prev_len;
    if (wbuf_reserve(b, 1 + pb_varint_len(body) + body)) return -1;
    uint8_t *p = b->p + b->len;
    *p++ = WR_EVENTS;
    p += pb_varint(p, body);
    if (type) {
        *p++ = 0x08;
        *p++ = (uint8_t)type;
    }
    *p++ = 0x12;
    p += pb_varint(p, kv_len);
    if (kv_len) memcpy(p, kv, kv_len);
    p += kv_len;
    if (prev) {
        *p++ = 0x1a;
        p += pb_varint(p, prev_len);
        if (prev_len) memcpy(p, prev, prev_len);
        p += prev_len;
    }
    b->len = (size_t)(p - b->p);
    return 0;
}

void wb_reset(watch_batch *b) {
    b->n = 0;
    b->revision = b->first = b->last = 0;
    b->keys.len = b->plain.len = b->prev.len = 0;
    b->has_prev = false;
}

void wb_release(watch_batch *b) {
    free(b->ev);
    b->ev = NULL;
    b->n = b->cap = 0;
    wbuf_free(&b->keys);
    wbuf_free(&b->plain);
    wbuf_free(&b->prev);
}

size_t wb_capacity(const watch_batch *b) {
    return b->cap * sizeof(wb_event) + b->keys.cap + b->plain.cap + b->prev.cap;
}

/* Writes the with-prev_kv bytes of every event so far (called when the first prev appears, so
 * that the prev buffer always covers every event of the batch). */
static int fill_prev(watch_batch *b) {
    for (size_t i = 0; i < b->n; i++) {
        wb_event *e = &b->ev[i];
        e->poff = b->prev.len;
        if (wbuf_put(&b->prev, b->plain.p + e->off, e->len)) return -1;
        e->plen = e->len;
    }
    b->has_prev = true;
    return 0;
}

int wb_add(watch_batch *b, const kv_event *e, bool with_prev) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        wb_event *ev = realloc(b->ev, cap * sizeof(*ev));
        if (!ev) return -1;
        b->ev = ev;
        b->cap = cap;
    }
    wb_event *x = &b->ev[b->n];
    x->main = e->main;
    x->type = e->type;
    x->key_off = b->keys.len;
    x->key_len = e->key_len;
    if (wbuf_put(&b->keys, e->key, e->key_len)) return -1;
    x->off = b->plain.len;
    if (put_event(&b->plain, e->type, e->kv, e->kv_len, NULL, 0)) return -1;
    x->len = b->plain.len - x->off;
    bool prev = with_prev && e->prev_kv;
    if (prev && !b->has_prev && fill_prev(b)) return -1;
    if (b->has_prev) {
        x->poff = b->prev.len;
        if (put_event(&b->prev, e->type, e->kv, e->kv_len, prev ? e->prev_kv : NULL,
                      e->prev_kv_len))
            return -1;
        x->plen = b->prev.len - x->poff;
    }
    if (!b->n) b->first = e->main;
    b->last = e->main;
    b->n++;
    return 0;
}

watch_batch *watch_batch_from_events(const kv_event *ev, size_t n, int64_t revision) {
    watch_batch *b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    size_t keys = 0, plain = 0, prev = 0;
    bool any_prev = false;
    for (size_t i = 0; i < n; i++) {
        keys += ev[i].key_len;
        plain += ev[i].kv_len + 32;
        prev += ev[i].kv_len + ev[i].prev_kv_len + 48;
        any_prev |= ev[i].prev_kv != NULL;
    }
    /* Sizing up front keeps this to a handful of allocations on the writer thread. */
    b->ev = malloc((n ? n : 1) * sizeof(*b->ev));
    b->cap = n ? n : 1;
    if (!b->ev || wbuf_reserve(&b->keys, keys + 1) || wbuf_reserve(&b->plain, plain + 1) ||
        (any_prev && wbuf_reserve(&b->prev, prev + 1)))
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (wb_add(b, &ev[i], true)) goto fail;
    b->revision = revision;
    if (n && b->last > revision) b->revision = b->last;
    return b;
fail:
    watch_batch_free(b);
    return NULL;
}

void watch_batch_free(watch_batch *b) {
    if (!b) return;
    wb_release(b);
    free(b);
}

size_t watch_batch_bytes(const watch_batch *b) {
    return b ? sizeof(*b) + wb_capacity(b) : 0;
}

/* ---- responses ---------------------------------------------------------------------------- */

void wr_set_header(watch_hub *h, int64_t revision) {
    uint8_t body[44];
    size_t n = 0;
    if (h->cluster_id) body[n++] = 0x08, n += pb_varint(body + n, h->cluster_id);
    if (h->member_id) body[n++] = 0x10, n += pb_varint(body + n, h->member_id);
    if (revision) body[n++] = 0x18, n += pb_varint(body + n, (uint64_t)revision);
    if (h->raft_term) body[n++] = 0x20, n += pb_varint(body + n, h->raft_term);
    h->hdr[0] = WR_HEADER;
    h->hdr_len = 1 + pb_varint(h->hdr + 1, n);
    memcpy(h->hdr + h->hdr_len, body, n);
    h->hdr_len += n;
}

void wr_encode_id(watcher *w) {
    w->idenc_len = 0;
    if (!w->id) return;
    w->idenc[0] = WR_WATCH_ID;
    w->idenc_len = (uint8_t)(1 + pb_varint(w->idenc + 1, (uint64_t)w->id));
}

bool wr_send(watch_stream *s, const uint8_t *head, size_t head_len, const uint8_t *body,
             size_t body_len) {
    if (s->dead) return false;
    watch_hub *h = s->h;
    int rc;
    if (s->sink.sendv) {
        rc = s->sink.sendv(s->ud, head, head_len, body, body_len);
    } else {
        h->msg.len = 0;
        if (wbuf_put(&h->msg, head, head_len) || wbuf_put(&h->msg, body, body_len)) {
            /* Out of memory for one response: the stream cannot be served correctly. */
            s->dead = true;
            return false;
        }
        hub_account(h);
        rc = s->sink.send(s->ud, h->msg.p, h->msg.len);
    }
    if (rc < 0) {
        s->dead = true;
        hub_stream_dequeue(h, s);
        return false;
    }
    if (rc > 0) {
        s->held = true;
        hub_stream_dequeue(h, s);
    }
    s->responses++;
    s->bytes += head_len + body_len;
    h->stats.responses_total++;
    h->stats.bytes_total += head_len + body_len;
    return true;
}

bool wr_send_control(watch_stream *s, int64_t rev, int64_t id, bool created, bool canceled,
                     int64_t compact_rev, const char *reason) {
    watch_hub *h = s->h;
    wr_set_header(h, rev);
    uint8_t head[160];
    size_t n = 0;
    memcpy(head, h->hdr, h->hdr_len);
    n = h->hdr_len;
    if (id) head[n++] = WR_WATCH_ID, n += pb_varint(head + n, (uint64_t)id);
    if (created) head[n++] = WR_CREATED, head[n++] = 1;
    if (canceled) head[n++] = WR_CANCELED, head[n++] = 1;
    if (compact_rev) head[n++] = WR_COMPACT, n += pb_varint(head + n, (uint64_t)compact_rev);
    if (reason && *reason) {
        size_t rl = strlen(reason);
        if (rl > 100) rl = 100; /* our reasons are short constants */
        head[n++] = WR_REASON;
        n += pb_varint(head + n, rl);
        memcpy(head + n, reason, rl);
        n += rl;
    }
    return wr_send(s, head, n, NULL, 0);
}
