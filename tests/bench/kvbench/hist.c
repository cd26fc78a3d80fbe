/* hist.c — log-linear latency histogram (see hist.h). A value v >= 256 with top bit e falls in
 * one of 128 equal slices of [2^e, 2^(e+1)): its index is 256 + (e - 8) * 128 + the slice. */
#include "hist.h"

#include <string.h>

static unsigned bucket_of(uint64_t v) {
    if (v < (1u << KB_HIST_SUB_BITS)) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    if (e > KB_HIST_MAX_EXP) return KB_HIST_BUCKETS - 1;
    unsigned shift = e - (KB_HIST_SUB_BITS - 1);
    unsigned m = (unsigned)(v >> shift) - 128u; /* 0..127 */
    return (1u << KB_HIST_SUB_BITS) + (e - KB_HIST_SUB_BITS) * 128u + m;
}

/* [lo, lo + width) of a bucket */
static void bucket_range(unsigned i, uint64_t *lo, uint64_t *width) {
    if (i < (1u << KB_HIST_SUB_BITS)) {
        *lo = i;
        *width = 1;
        return;
    }
    unsigned j = i - (1u << KB_HIST_SUB_BITS);
    unsigned e = j / 128u + KB_HIST_SUB_BITS;
    unsigned shift = e - (KB_HIST_SUB_BITS - 1);
    *lo = ((uint64_t)(128u + j % 128u)) << shift;
    *width = (uint64_t)1 << shift;
}

void kb_hist_reset(kb_hist *h) {
    memset(h, 0, sizeof *h);
}

void kb_hist_record(kb_hist *h, uint64_t ns) {
    if (h->count == 0 || ns < h->min) h->min = ns;
    if (ns > h->max) h->max = ns;
    h->count++;
    h->sum += (double)ns;
    h->b[bucket_of(ns)]++;
}

void kb_hist_merge(kb_hist *dst, const kb_hist *src) {
    if (src->count == 0) return;
    if (dst->count == 0 || src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
    dst->count += src->count;
    dst->sum += src->sum;
    for (unsigned i = 0; i < KB_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
}

uint64_t kb_hist_pct(const kb_hist *h, double p) {
    if (h->count == 0) return 0;
    if (p >= 100.0) return h->max;
    uint64_t want = (uint64_t)((p / 100.0) * (double)h->count + 0.999999);
    if (want < 1) want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < KB_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t lo, w;
            bucket_range(i, &lo, &w);
            uint64_t v = lo + w / 2;
            if (v < h->min) v = h->min;
            if (v > h->max) v = h->max;
            return v;
        }
    }
    return h->max;
}

double kb_hist_mean(const kb_hist *h) {
    return h->count ? h->sum / (double)h->count : 0.0;
}
