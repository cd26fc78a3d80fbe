/* grpc_h2io.c — moving bytes between one nghttp2 session and one libuv stream.
 * Output: nghttp2_session_send() with our send_callback (frame headers, HEADERS, SETTINGS ...,
 * copied into the write buffer's own bytes) and, for DATA, NGHTTP2_DATA_FLAG_NO_COPY +
 * send_data_callback. A payload slice of GRPC_ZC_MIN bytes or more is not copied: the write
 * buffer keeps a reference to the queue chunk and the socket write is one writev of frame
 * headers and chunk slices, so a large response is copied once by its producer (into the queue)
 * and then only by the kernel. Small slices are copied (a reference costs more than the copy).
 * At most one uv_write is in flight; the next buffer accumulates meanwhile; each is capped near
 * GRPC_WBUF_MAX own / GRPC_WBUF_REF_MAX total bytes (nghttp2 is told WOULDBLOCK beyond them),
 * so a peer that stops reading stops nghttp2 from pulling queue data. A chunk is released when its last write completes.
 * Input: nghttp2_session_mem_recv(); the owner flushes right after (ACKs, WINDOW_UPDATEs). */
#include "grpc_internal.h"

#include <stdlib.h>
#include <string.h>

void h2io_init(h2io *io) {
    memset(io, 0, sizeof *io);
    glist_init(&io->writable_due);
}

/* Drops the chunk references of a buffer and empties it (arrays kept). */
static void wbuf_release(gwbuf *b) {
    for (size_t i = 0; i < b->n_seg; i++)
        if (b->seg[i].ref) gchunk_unref(b->seg[i].ref);
    b->n_seg = 0;
    b->len = 0;
    b->total = 0;
}

static void wbuf_free(gwbuf *b) {
    wbuf_release(b);
    free(b->p);
    free(b->seg);
    free(b->bufs);
    *b = (gwbuf){0};
}

void h2io_free_buffers(h2io *io) {
    wbuf_free(&io->cur);
    wbuf_free(&io->inflight);
}

void h2io_drop_pending(h2io *io) {
    h2io_account(io, -(ptrdiff_t)io->cur.total);
    wbuf_release(&io->cur);
}

void h2io_account(h2io *io, ptrdiff_t delta) {
    io->buffered = (size_t)((ptrdiff_t)io->buffered + delta);
    if (io->agg_buffered) {
        *io->agg_buffered = (size_t)((ptrdiff_t)*io->agg_buffered + delta);
        if (io->agg_peak && *io->agg_buffered > *io->agg_peak) *io->agg_peak = *io->agg_buffered;
    }
}

bool h2io_idle(const h2io *io) {
    return !io->writing && io->cur.total == 0;
}

/* Buffers start small and double: an idle connection (SETTINGS, WINDOW_UPDATE and ACKs sent,
 * then nothing) keeps a few hundred bytes, not 16 KiB; a busy one grows once and keeps its
 * buffers (up to the idle-time free in h2io_flush). */
#define WBUF_MIN_BYTES 512
#define WBUF_MIN_SEGS  8

static int wbuf_reserve(gwbuf *b, size_t extra, size_t extra_segs) {
    if (b->len + extra > b->cap) {
        size_t cap = b->cap ? b->cap : WBUF_MIN_BYTES;
        while (cap < b->len + extra)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    if (b->n_seg + extra_segs > b->cap_seg) {
        size_t cap = b->cap_seg ? b->cap_seg : WBUF_MIN_SEGS;
        while (cap < b->n_seg + extra_segs)
            cap *= 2;
        gseg *sg = realloc(b->seg, cap * sizeof *sg);
        if (!sg) return -1;
        b->seg = sg;
        b->cap_seg = cap;
    }
    return 0;
}

/* Copies into the own bytes (space reserved by the caller), extending the last own segment. */
static void wbuf_copy(gwbuf *b, const uint8_t *data, size_t len) {
    gseg *last = b->n_seg ? &b->seg[b->n_seg - 1] : NULL;
    if (last && !last->ref && last->off + last->len == b->len)
        last->len += len;
    else
        b->seg[b->n_seg++] = (gseg){NULL, NULL, b->len, len};
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->total += len;
}

static void wbuf_ref(gwbuf *b, gchunk *c, const uint8_t *p, size_t len) {
    c->refs++;
    b->seg[b->n_seg++] = (gseg){c, p, 0, len};
    b->total += len;
}

static bool wbuf_full(const gwbuf *b) {
    return b->len >= GRPC_WBUF_MAX || b->total >= GRPC_WBUF_REF_MAX;
}

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud) {
    (void)s;
    (void)flags;
    h2io *io = ud;
    if (wbuf_full(&io->cur)) return NGHTTP2_ERR_WOULDBLOCK;
    if (wbuf_reserve(&io->cur, len, 1)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    wbuf_copy(&io->cur, data, len);
    h2io_account(io, (ptrdiff_t)len);
    return (ssize_t)len;
}

static int on_send_data(nghttp2_session *s, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *source, void *ud) {
    (void)s;
    h2io *io = ud;
    goutq *q = source->ptr;
    if (wbuf_full(&io->cur)) return NGHTTP2_ERR_WOULDBLOCK;
    if (frame->data.padlen != 0 || length > q->len) return NGHTTP2_ERR_CALLBACK_FAILURE;
    /* Reserve for the worst case first (every slice copied, two segments per chunk) so that
     * nothing fails half-way through the queue. */
    size_t spans = 0, left = length;
    for (gchunk *c = q->head; left > 0; c = c->next, spans++)
        left -= c->end - c->start < left ? c->end - c->start : left;
    if (wbuf_reserve(&io->cur, 9 + length, 1 + 2 * spans)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    wbuf_copy(&io->cur, framehd, 9);
    io->data_frames_out++;
    q->len -= length;
    if (q->io) h2io_account(q->io, -(ptrdiff_t)length);
    left = length;
    while (left > 0) {
        gchunk *c = q->head;
        size_t k = c->end - c->start;
        if (k > left) k = left;
        if (k >= GRPC_ZC_MIN)
            wbuf_ref(&io->cur, c, c->base + c->start, k);
        else
            wbuf_copy(&io->cur, c->base + c->start, k);
        c->start += k;
        left -= k;
        if (c->start == c->end) {
            q->head = c->next;
            if (!q->head) q->tail = NULL; /* idle streams keep no chunk memory */
            gchunk_unref(c);
        }
    }
    h2io_account(io, (ptrdiff_t)(9 + length));
    if (q->want_writable && q->len < q->low && !glist_linked(&q->wnode))
        glist_push(&io->writable_due, &q->wnode);
    return 0;
}

void h2io_set_send_callbacks(nghttp2_session_callbacks *cbs) {
    nghttp2_session_callbacks_set_send_callback(cbs, on_send);
    nghttp2_session_callbacks_set_send_data_callback(cbs, on_send_data);
}

ssize_t h2io_take_avail(goutq *q, size_t length, uint32_t *flags) {
    size_t n = q->len < length ? q->len : length;
    if (n) *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    return (ssize_t)n;
}

static void on_write(uv_write_t *req, int status);

/* Writes the accumulated buffer: synchronously as far as the socket takes it (uv_try_write:
 * the chunks come back at once, still cache-hot, and nothing waits for the next loop
 * iteration), the rest with one uv_write. Returns 0 or a uv error. */
static int start_write(h2io *io) {
    gwbuf t = io->inflight;
    io->inflight = io->cur;
    io->cur = t;
    gwbuf *b = &io->inflight;
    if (b->n_seg > b->cap_bufs) {
        uv_buf_t *nb = realloc(b->bufs, b->n_seg * sizeof *nb);
        if (!nb) {
            h2io_account(io, -(ptrdiff_t)b->total);
            wbuf_release(b);
            return UV_ENOMEM;
        }
        b->bufs = nb;
        b->cap_bufs = b->n_seg;
    }
    for (size_t i = 0; i < b->n_seg; i++) {
        const gseg *sg = &b->seg[i];
        b->bufs[i] = uv_buf_init((char *)(sg->ref ? sg->ext : b->p + sg->off), (unsigned)sg->len);
    }
    uv_buf_t *bufs = b->bufs;
    unsigned n = (unsigned)b->n_seg;
    int rv = uv_try_write(io->stream, bufs, n);
    if (rv > 0) {
        size_t done = (size_t)rv;
        io->bytes_out += done;
        h2io_account(io, -(ptrdiff_t)done);
        if (done == b->total) {
            wbuf_release(b);
            return 0;
        }
        /* skip what went out; the chunks stay referenced until the rest is written */
        while (done >= bufs->len) {
            done -= bufs->len;
            bufs++;
            n--;
        }
        bufs->base += done;
        bufs->len -= done;
        b->total -= (size_t)rv;
    } else if (rv != UV_EAGAIN) {
        h2io_account(io, -(ptrdiff_t)b->total);
        wbuf_release(b);
        return rv;
    }
    rv = uv_write(&io->wreq, io->stream, bufs, n, on_write);
    if (rv == 0) {
        io->writing = true;
    } else { /* nothing will write these: give the chunks back now */
        h2io_account(io, -(ptrdiff_t)b->total);
        wbuf_release(b);
    }
    return rv;
}

static void on_write(uv_write_t *req, int status) {
    h2io *io = GRPC_CONTAINER_OF(req, h2io, wreq);
    io->writing = false;
    io->bytes_out += io->inflight.total;
    h2io_account(io, -(ptrdiff_t)io->inflight.total);
    wbuf_release(&io->inflight);
    if (io->dead) return;
    if (status < 0) {
        io->fail(io, status);
        return;
    }
    h2io_flush(io);
}

void h2io_flush(h2io *io) {
    if (io->dead || !io->ng || io->depth || !io->stream) return;
    /* Each round fills the buffer (up to the caps) and writes it; synchronous writes let
     * the next round go at once, an asynchronous one ends the loop (on_write resumes). */
    for (;;) {
        io->depth++;
        int rv = nghttp2_session_send(io->ng);
        io->depth--;
        if (rv != 0) {
            io->fail(io, rv);
            return;
        }
        if (io->writing || io->cur.total == 0) break;
        rv = start_write(io);
        if (rv != 0) {
            io->fail(io, rv);
            return;
        }
        if (io->dead) return;
    }
    glist *n;
    while (!io->dead && (n = glist_pop(&io->writable_due))) {
        goutq *q = GRPC_CONTAINER_OF(n, goutq, wnode);
        q->want_writable = false;
        io->writable(io, q);
    }
    if (!io->dead && !io->writing && io->cur.total == 0 && io->cur.cap + io->inflight.cap > 65536) {
        /* idle: thousands of quiet connections should not each keep big write buffers */
        h2io_free_buffers(io);
    }
    if (!io->dead && io->flushed) io->flushed(io);
}

int h2io_recv(h2io *io, const uint8_t *p, size_t n) {
    io->bytes_in += n;
    io->depth++;
    ssize_t rv = nghttp2_session_mem_recv(io->ng, p, n);
    io->depth--;
    if (rv < 0) return (int)rv;
    return 0;
}
