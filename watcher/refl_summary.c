/* refl_summary.c — per-reflector counters and the JSON summary the watcher binary prints:
 * {"totals": {...}, "watchers": [{...}, ...]}, one watcher per line so that large fleets stay
 * greppable. Hand-written JSON: strings are escaped (and made valid UTF-8) by refl_buf_json_str;
 * non-finite doubles are written as 0 because JSON has no NaN. */
#include "refl_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void refl_counters_add(refl_counters *sum, const refl_counters *c) {
    sum->lists += c->lists;
    sum->list_pages += c->list_pages;
    sum->list_bytes += c->list_bytes;
    sum->watches += c->watches;
    sum->events += c->events;
    sum->misses += c->misses;
    sum->relists.miss += c->relists.miss;
    sum->relists.compacted += c->relists.compacted;
    sum->relists.error += c->relists.error;
    sum->gets += c->gets;
    sum->backoff_seconds += c->backoff_seconds;
    sum->ratelimit_waits += c->ratelimit_waits;
    sum->divergent += c->divergent;
}

static void put_counters(refl_buf *b, const refl_counters *c) {
    double bs = isfinite(c->backoff_seconds) ? c->backoff_seconds : 0;
    refl_buf_printf(b,
                    "\"lists\": %llu, \"list_pages\": %llu, \"list_bytes\": %llu, "
                    "\"watches\": %llu, \"events\": %llu, \"misses\": %llu, ",
                    (unsigned long long)c->lists, (unsigned long long)c->list_pages,
                    (unsigned long long)c->list_bytes, (unsigned long long)c->watches,
                    (unsigned long long)c->events, (unsigned long long)c->misses);
    refl_buf_printf(b, "\"relists\": {\"miss\": %llu, \"compacted\": %llu, \"error\": %llu}, ",
                    (unsigned long long)c->relists.miss, (unsigned long long)c->relists.compacted,
                    (unsigned long long)c->relists.error);
    refl_buf_printf(b,
                    "\"gets\": %llu, \"backoff_seconds\": %.3f, \"ratelimit_waits\": %llu, "
                    "\"divergent\": %llu",
                    (unsigned long long)c->gets, bs, (unsigned long long)c->ratelimit_waits,
                    (unsigned long long)c->divergent);
}

static void put_field(refl_buf *b, const char *name, const char *value) {
    if (!value) return;
    refl_buf_printf(b, "\"%s\": ", name);
    refl_buf_json_str(b, value, strlen(value));
    refl_buf_puts(b, ", ");
}

char *refl_summary_json(const refl_watcher_row *rows, size_t n, size_t *len) {
    refl_counters tot = {0};
    size_t divergent_watchers = 0;
    for (size_t i = 0; i < n; i++) {
        refl_counters_add(&tot, &rows[i].counters);
        if (rows[i].counters.divergent) divergent_watchers++;
    }
    refl_buf b = {0};
    refl_buf_printf(&b, "{\n  \"totals\": {\"watchers\": %zu, \"divergent_watchers\": %zu, ", n,
                    divergent_watchers);
    put_counters(&b, &tot);
    refl_buf_puts(&b, "},\n  \"watchers\": [");
    for (size_t i = 0; i < n; i++) {
        refl_buf_puts(&b, i ? ",\n    {" : "\n    {");
        put_field(&b, "name", rows[i].name);
        put_field(&b, "prefix", rows[i].prefix);
        put_field(&b, "key_mode", rows[i].key_mode);
        put_field(&b, "miss_policy", rows[i].miss_policy);
        put_counters(&b, &rows[i].counters);
        refl_buf_puts(&b, "}");
    }
    refl_buf_puts(&b, n ? "\n  ]\n}\n" : "]\n}\n");
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    if (len) *len = b.len;
    return b.p;
}
