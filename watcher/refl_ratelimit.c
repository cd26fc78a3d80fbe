/* refl_ratelimit.c — the client-side token bucket (client-go's rest client: 5 qps, burst 10).
 * Reservation semantics like golang.org/x/time/rate's Wait: every take consumes a token, the
 * balance may go negative, and the returned wait is when this caller's token matures — so
 * queued requests are spaced 1/qps apart in order and one call per request suffices. Time is
 * the caller's now_ms; nothing here sleeps. */
#include "refl_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int refl_ratelimit_parse(const char *s, double *qps, double *burst, char *err, size_t err_cap) {
    char dummy[1];
    if (!err || !err_cap) {
        err = dummy;
        err_cap = sizeof dummy;
    }
    err[0] = '\0';
    if (!s) s = "";
    if (!strcmp(s, "client-go")) {
        *qps = 5;
        *burst = 10;
        return 0;
    }
    if (!strcmp(s, "none")) {
        *qps = 0;
        *burst = 0;
        return 0;
    }
    double q, b;
    char tail;
    if (sscanf(s, "%lf/%lf%c", &q, &b, &tail) != 2 || !(q >= 0) || !(b >= 0) || q > 1e9 ||
        b > 1e9) {
        snprintf(err, err_cap,
                 "bad rate limit \"%s\" (want client-go, none or QPS/BURST, e.g. 5/10)", s);
        return -1;
    }
    *qps = q;
    *burst = b;
    return 0;
}

void refl_tokenbucket_init(refl_tokenbucket *tb, double qps, double burst, int64_t now_ms) {
    memset(tb, 0, sizeof(*tb));
    tb->qps = qps > 0 ? qps : 0;
    tb->burst = burst >= 1 ? burst : 1;
    tb->tokens = tb->burst;
    tb->last_ms = now_ms;
}

int64_t refl_tokenbucket_take(refl_tokenbucket *tb, int64_t now_ms) {
    tb->takes++;
    if (tb->qps <= 0) return 0;
    if (now_ms > tb->last_ms) {
        tb->tokens += (double)(now_ms - tb->last_ms) * tb->qps / 1000.0;
        if (tb->tokens > tb->burst) tb->tokens = tb->burst;
        tb->last_ms = now_ms;
    }
    tb->tokens -= 1.0;
    if (tb->tokens >= -1e-9) return 0;
    /* the epsilon keeps 200.0000001 ms from becoming 201 */
    int64_t wait = (int64_t)ceil(-tb->tokens * 1000.0 / tb->qps - 1e-6);
    if (wait < 1) wait = 1;
    tb->waits++;
    tb->wait_ms_total += (uint64_t)wait;
    return wait;
}
