/* grpc_h2io.c — moving bytes between one nghttp2 session and one libuv stream.
 * Output: nghttp2_session_send() with our send_callback (frame headers, HEADERS, SETTINGS ...)
 * and, for DATA, NGHTTP2_DATA_FLAG_NO_COPY + send_data_callback, which copies the payload
 * straight from the call's output queue into the write buffer: one copy from producer to queue,
 * one from queue to socket buffer, none inside nghttp2. At most one uv_write is in flight; the
 * next buffer accumulates meanwhile; each is capped near GRPC_WBUF_MAX (nghttp2 is told
 * WOULDBLOCK beyond it), so a peer that stops reading stops nghttp2 from pulling queue data.
 * Input: nghttp2_session_mem_recv(); the owner flushes right after (ACKs, WINDOW_UPDATEs). */
#include "grpc_internal.h"

#include <stdlib.h>
#include <string.h>

void h2io_init(h2io *io) {
    memset(io, 0, sizeof *io);
    glist_init(&io->writable_due);
}

void h2io_free_buffers(h2io *io) {
    free(io->cur.p);
    free(io->inflight.p);
    io->cur = (gwbuf){0};
    io->inflight = (gwbuf){0};
}

void h2io_account(h2io *io, ptrdiff_t delta) {
    io->buffered = (size_t)((ptrdiff_t)io->buffered + delta);
    if (io->agg_buffered) {
        *io->agg_buffered = (size_t)((ptrdiff_t)*io->agg_buffered + delta);
        if (io->agg_peak && *io->agg_buffered > *io->agg_peak) *io->agg_peak = *io->agg_buffered;
    }
}

bool h2io_idle(const h2io *io) {
    return !io->writing && io->cur.len == 0;
}

static int wbuf_reserve(gwbuf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud) {
    (void)s;
    (void)flags;
    h2io *io = ud;
    if (io->cur.len >= GRPC_WBUF_MAX) return NGHTTP2_ERR_WOULDBLOCK;
    if (wbuf_reserve(&io->cur, len)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    memcpy(io->cur.p + io->cur.len, data, len);
    io->cur.len += len;
    h2io_account(io, (ptrdiff_t)len);
    return (ssize_t)len;
}

static int on_send_data(nghttp2_session *s, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *source, void *ud) {
    (void)s;
    h2io *io = ud;
    goutq *q = source->ptr;
    if (io->cur.len >= GRPC_WBUF_MAX) return NGHTTP2_ERR_WOULDBLOCK;
    if (frame->data.padlen != 0 || length > q->len) return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (wbuf_reserve(&io->cur, 9 + length)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    memcpy(io->cur.p + io->cur.len, framehd, 9);
    goutq_take(q, io->cur.p + io->cur.len + 9, length);
    io->cur.len += 9 + length;
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

static int start_write(h2io *io) {
    gwbuf t = io->inflight;
    io->inflight = io->cur;
    io->cur = t;
    io->cur.len = 0;
    uv_buf_t b = uv_buf_init((char *)io->inflight.p, (unsigned)io->inflight.len);
    int rv = uv_write(&io->wreq, io->stream, &b, 1, on_write);
    if (rv == 0) io->writing = true;
    return rv;
}

static void on_write(uv_write_t *req, int status) {
    h2io *io = GRPC_CONTAINER_OF(req, h2io, wreq);
    io->writing = false;
    io->bytes_out += io->inflight.len;
    h2io_account(io, -(ptrdiff_t)io->inflight.len);
    io->inflight.len = 0;
    if (io->dead) return;
    if (status < 0) {
        io->fail(io, status);
        return;
    }
    h2io_flush(io);
}

void h2io_flush(h2io *io) {
    if (io->dead || !io->ng || io->depth || !io->stream) return;
    for (int round = 0; round < 2; round++) {
        io->depth++;
        int rv = nghttp2_session_send(io->ng);
        io->depth--;
        if (rv != 0) {
            io->fail(io, rv);
            return;
        }
        if (io->writing || io->cur.len == 0) break;
        rv = start_write(io);
        if (rv != 0) {
            io->fail(io, rv);
            return;
        }
    }
    glist *n;
    while (!io->dead && (n = glist_pop(&io->writable_due))) {
        goutq *q = GRPC_CONTAINER_OF(n, goutq, wnode);
        q->want_writable = false;
        io->writable(io, q);
    }
    if (!io->dead && !io->writing && io->cur.len == 0 && io->cur.cap + io->inflight.cap > 65536) {
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
