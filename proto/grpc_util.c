/* grpc_util.c — the small building blocks both sides share: status names, grpc-message
 * percent-encoding, grpc-timeout parsing, the output chunk queue and the message de-framer.
 * The queue grows chunks geometrically (4 KiB .. 256 KiB) so thousands of idle watch streams
 * cost little while a 10 MB response needs few allocations; a large single append gets one
 * exact-size chunk; caller-owned buffers are linked in as chunks of their own (no copy). The
 * de-framer hands complete messages that sit inside one input chunk to the caller without copying
 * and assembles only messages split across chunks. */
#include "grpc_internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void grpc_ignore_sigpipe(void) {
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

const char *grpc_status_name(int status) {
    static const char *const names[] = {"OK",
                                        "CANCELLED",
                                        "UNKNOWN",
                                        "INVALID_ARGUMENT",
                                        "DEADLINE_EXCEEDED",
                                        "NOT_FOUND",
                                        "ALREADY_EXISTS",
                                        "PERMISSION_DENIED",
                                        "RESOURCE_EXHAUSTED",
                                        "FAILED_PRECONDITION",
                                        "ABORTED",
                                        "OUT_OF_RANGE",
                                        "UNIMPLEMENTED",
                                        "INTERNAL",
                                        "UNAVAILABLE",
                                        "DATA_LOSS",
                                        "UNAUTHENTICATED"};
    if (status < 0 || status > 16) return "UNKNOWN";
    return names[status];
}

/* ---------------------------------------------------------------- percent-encoding */

char *grpc_pct_encode(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1);
    if (!out) return NULL;
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || c == '%') {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = 0;
    return out;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *grpc_pct_decode(const char *s, size_t n) {
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = 0;
    return out;
}

/* ---------------------------------------------------------------- grpc-timeout */

int64_t grpc_parse_timeout(const char *v, size_t n) {
    if (n < 2 || n > 9) return -1;
    int64_t x = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (v[i] - '0');
    }
    switch (v[n - 1]) {
    case 'H':
        return x * 3600000;
    case 'M':
        return x * 60000;
    case 'S':
        return x * 1000;
    case 'm':
        return x;
    case 'u':
        return (x + 999) / 1000;
    case 'n':
        return (x + 999999) / 1000000;
    default:
        return -1;
    }
}

void grpc_format_timeout(uint32_t ms, char out[16]) {
    /* At most 8 digits: switch to seconds for long timeouts. */
    if (ms < 100000000u)
        snprintf(out, 16, "%um", ms);
    else
        snprintf(out, 16, "%uS", (ms + 999) / 1000);
}

/* ---------------------------------------------------------------- output queue */

void goutq_init(goutq *q, h2io *io, size_t high, size_t low) {
    memset(q, 0, sizeof *q);
    q->io = io;
    q->high = high;
    q->low = low;
}

int goutq_state(const goutq *q) {
    return q->len >= q->high ? GRPC_SEND_FULL : GRPC_SEND_OK;
}

static void goutq_link(goutq *q, gchunk *c) {
    c->next = NULL;
    if (q->tail)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
}

void gchunk_unref(gchunk *c) {
    if (--c->refs > 0) return;
    if (c->release) c->release(c->release_ud);
    free(c);
}

int goutq_append(goutq *q, const void *p, size_t n) {
    const uint8_t *src = p;
    size_t left = n;
    while (left > 0) {
        gchunk *t = q->tail;
        if (!t || t->base != t->data || t->end == t->cap) {
            size_t cap = t && t->base == t->data ? t->cap * 2 : 4096;
            if (cap > 256 * 1024) cap = 256 * 1024;
            if (cap < left && left > 64 * 1024) cap = left; /* one exact chunk for big parts */
            gchunk *c = malloc(sizeof *c + cap);
            if (!c) return GRPC_ENOMEM;
            c->cap = cap;
            c->start = c->end = 0;
            c->refs = 1;
            c->base = c->data;
            c->release = NULL;
            c->release_ud = NULL;
            goutq_link(q, c);
            t = c;
        }
        /* Bytes already handed to a write by reference stay put: appends go after them. */
        size_t k = t->cap - t->end;
        if (k > left) k = left;
        memcpy(t->base + t->end, src, k);
        t->end += k;
        src += k;
        left -= k;
    }
    q->len += n;
    if (q->io) h2io_account(q->io, (ptrdiff_t)n);
    return goutq_state(q);
}

int goutq_append_owned(goutq *q, const void *p, size_t n, void (*release)(void *ud), void *ud) {
    gchunk *c = malloc(sizeof *c);
    if (!c) {
        if (release) release(ud);
        return GRPC_ENOMEM;
    }
    c->cap = c->end = n;
    c->start = 0;
    c->refs = 1;
    c->base = (uint8_t *)p;
    /* base != data: never appended to */
    c->release = release;
    c->release_ud = ud;
    goutq_link(q, c);
    q->len += n;
    if (q->io) h2io_account(q->io, (ptrdiff_t)n);
    return goutq_state(q);
}

int goutq_prefix(goutq *q, size_t len) {
    uint8_t h[5] = {0, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                    (uint8_t)len};
    return goutq_append(q, h, 5);
}

void goutq_clear(goutq *q) {
    gchunk *c = q->head;
    while (c) {
        gchunk *n = c->next;
        gchunk_unref(c);
        c = n;
    }
    if (q->io && q->len) h2io_account(q->io, -(ptrdiff_t)q->len);
    q->head = q->tail = NULL;
    q->len = 0;
    q->msg_left = 0;
    glist_remove(&q->wnode);
}

/* ---------------------------------------------------------------- de-framer */

bool gdeframer_partial(const gdeframer *d) {
    return d->hdr_got > 0;
}

void gdeframer_free(gdeframer *d) {
    free(d->buf);
    d->buf = NULL;
    d->hdr_got = 0;
    d->got = d->len = 0;
}

int gdeframer_feed(gdeframer *d, const uint8_t *p, size_t n, gdeframe_fn fn, void *ud,
                   size_t *too_large) {
    while (n > 0) {
        if (d->hdr_got < 5) {
            size_t k = 5 - d->hdr_got;
            if (k > n) k = n;
            memcpy(d->hdr + d->hdr_got, p, k);
            d->hdr_got += k;
            p += k;
            n -= k;
            if (d->hdr_got < 5) return GDF_OK;
            if (d->hdr[0] & 1) return GDF_COMPRESSED;
            d->len = ((size_t)d->hdr[1] << 24) | ((size_t)d->hdr[2] << 16) |
                     ((size_t)d->hdr[3] << 8) | d->hdr[4];
            d->got = 0;
            if (d->len > d->max) {
                if (too_large) *too_large = d->len;
                return GDF_TOO_LARGE;
            }
            if (d->len <= n) { /* whole message in this input: no copy */
                const uint8_t *m = p;
                size_t len = d->len;
                p += len;
                n -= len;
                d->hdr_got = 0;
                if (fn(ud, m, len)) return GDF_STOPPED;
                continue;
            }
            d->buf = malloc(d->len);
            if (!d->buf) return GDF_NOMEM;
        }
        size_t k = d->len - d->got;
        if (k > n) k = n;
        memcpy(d->buf + d->got, p, k);
        d->got += k;
        p += k;
        n -= k;
        if (d->got == d->len) {
            uint8_t *m = d->buf;
            d->buf = NULL;
            d->hdr_got = 0;
            d->heap_msg = m;
            int stop = fn(ud, m, d->len);
            free(d->heap_msg); /* unless the callback took it */
            d->heap_msg = NULL;
            if (stop) return GDF_STOPPED;
        }
    }
    return GDF_OK;
}
