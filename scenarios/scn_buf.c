/* scn_buf.c — the in-memory text buffer every report is built in, with JSON and HTML escaping,
 * and the error list. Allocation failure latches instead of being checked at every append:
 * report code stays linear and scn_buf_take reports the failure once. */
#include "scn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool grow(scn_buf *b, size_t extra) {
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void scn_buf_put(scn_buf *b, const char *s, size_t n) {
    if (!grow(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void scn_buf_puts(scn_buf *b, const char *s) {
    scn_buf_put(b, s, strlen(s));
}

void scn_buf_printf(scn_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        scn_buf_put(b, small, (size_t)n);
        return;
    }
    if (!grow(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void scn_buf_json_str(scn_buf *b, const char *s) {
    scn_buf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            scn_buf_puts(b, "\\\"");
            break;
        case '\\':
            scn_buf_puts(b, "\\\\");
            break;
        case '\n':
            scn_buf_puts(b, "\\n");
            break;
        case '\r':
            scn_buf_puts(b, "\\r");
            break;
        case '\t':
            scn_buf_puts(b, "\\t");
            break;
        default:
            if (*p < 0x20)
                scn_buf_printf(b, "\\u%04x", *p);
            else
                scn_buf_put(b, (const char *)p, 1);
        }
    }
    scn_buf_put(b, "\"", 1);
}

void scn_buf_json_num(scn_buf *b, double v) {
    if (!isfinite(v))
        scn_buf_puts(b, "null");
    else if (v == floor(v) && fabs(v) < 1e15)
        scn_buf_printf(b, "%.0f", v);
    else
        scn_buf_printf(b, "%.6g", v);
}

void scn_buf_html(scn_buf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&':
            scn_buf_puts(b, "&amp;");
            break;
        case '<':
            scn_buf_puts(b, "&lt;");
            break;
        case '>':
            scn_buf_puts(b, "&gt;");
            break;
        case '"':
            scn_buf_puts(b, "&quot;");
            break;
        case '\'':
            scn_buf_puts(b, "&#39;");
            break;
        default:
            scn_buf_put(b, s, 1);
        }
    }
}

char *scn_buf_take(scn_buf *b) {
    if (b->oom) {
        free(b->p);
        *b = (scn_buf){0};
        return NULL;
    }
    if (!b->p) scn_buf_put(b, "", 0);
    if (b->oom) return NULL;
    char *p = b->p;
    *b = (scn_buf){0};
    return p;
}

void scn_fmt(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

void scn_fmt_num(double v, char *buf, size_t cap) {
    double a = fabs(v);
    if (isnan(v))
        snprintf(buf, cap, "-");
    else if (isinf(v))
        snprintf(buf, cap, "%sinf", v < 0 ? "-" : "");
    else if (a >= 1e7)
        snprintf(buf, cap, "%.3g", v);
    else if (a >= 100 || v == floor(v))
        snprintf(buf, cap, "%.0f", v);
    else if (a >= 1)
        snprintf(buf, cap, "%.2f", v);
    else
        snprintf(buf, cap, "%.3g", v);
}

void scn_err_add(scn_errors *e, const char *file, scn_loc loc, const char *fmt, ...) {
    if (!e) return;
    if (e->n >= SCN_ERRORS_MAX) {
        e->dropped++;
        return;
    }
    scn_error *x = &e->items[e->n++];
    snprintf(x->file, sizeof x->file, "%s", file ? file : "");
    x->loc = loc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->msg, sizeof x->msg, fmt, ap);
    va_end(ap);
}

size_t scn_errors_format(const scn_errors *e, char *buf, size_t cap) {
    size_t len = 0;
    if (cap) buf[0] = 0;
    for (size_t i = 0; e && i <= e->n; i++) {
        char line[512];
        int n;
        if (i == e->n) {
            if (!e->dropped) break;
            n = snprintf(line, sizeof line, "(%zu more errors)\n", e->dropped);
        } else {
            const scn_error *x = &e->items[i];
            if (x->loc.line > 0)
                n = snprintf(line, sizeof line, "%s:%d:%d: %s\n", x->file, x->loc.line, x->loc.col,
                             x->msg);
            else
                n = snprintf(line, sizeof line, "%s: %s\n", x->file, x->msg);
        }
        if (n < 0) continue;
        if (len < cap) snprintf(buf + len, cap - len, "%s", line);
        len += (size_t)n;
    }
    return len;
}
