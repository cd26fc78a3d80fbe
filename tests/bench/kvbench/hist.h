/* hist.h — a latency histogram with log-linear buckets (HDR-style): exact below 256 ns, then
 * 128 linear sub-buckets per power of two, so any recorded value is reported within 0.4% (bucket
 * midpoint), from nanoseconds up to ~73 minutes (2^42 ns; larger values clamp to the top).
 * Fixed size (~38 KiB), no allocation after init, O(1) record, mergeable by addition. */
#ifndef KVBENCH_HIST_H
#define KVBENCH_HIST_H

#include <stdint.h>

#define KB_HIST_SUB_BITS 8
#define KB_HIST_MAX_EXP  42
#define KB_HIST_BUCKETS  ((1 << KB_HIST_SUB_BITS) + (KB_HIST_MAX_EXP - KB_HIST_SUB_BITS + 1) * 128)

typedef struct kb_hist {
    uint64_t count;
    uint64_t min, max; /* exact, in ns */
    double sum;        /* for the mean */
    uint64_t b[KB_HIST_BUCKETS];
} kb_hist;

void kb_hist_reset(kb_hist *h);
void kb_hist_record(kb_hist *h, uint64_t ns);
void kb_hist_merge(kb_hist *dst, const kb_hist *src);
/* The value at percentile p (0..100], in ns (bucket midpoint, clamped to [min, max]); 0 if empty.
 */
uint64_t kb_hist_pct(const kb_hist *h, double p);
double kb_hist_mean(const kb_hist *h);

#endif
