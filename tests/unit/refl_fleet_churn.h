/* refl_fleet_churn.h — the write side of the fleet-scale reflector suite
 * (test_refl_fleet_kvstore.c): a model of lab objects /registry/<res>/ns-<n>/web-<i> in several
 * namespaces that share names, random creates/updates/deletes issued through the live harness
 * (test_refl_live_util.h), and waits on a whole fleet.
 *
 * Key decisions:
 * - The model counts per namespace what a namespace-scoped watcher must have seen: every accepted
 *   write is exactly one watch event on its key (this process is the only writer).
 * - It also predicts the mismatch bug exactly: a LIST stores by name, a watch event looks up
 *   ns/name, so an update/delete misses unless its object was (re)created by an event since the
 *   watcher's last LIST; a miss relists, which re-keys every object by name again. The
 *   prediction holds when each namespace's writes are serialized against its watchers (the next
 *   one only after all of them applied the previous one), so no relist absorbs a second event.
 * - Randomness is refl_rng (seeded), so a failure replays the same writes. */
#ifndef RELIST_REFL_FLEET_CHURN_H
#define RELIST_REFL_FLEET_CHURN_H

#include "test_refl_live_util.h"

enum { CH_MAX_NS = 16, CH_MAX_NAMES = 32 };

typedef struct churn {
    const char *res; /* the resource: keys /registry/<res>/ns-<n>/web-<i> */
    int ns, names;   /* namespaces ns-0.., names web-0.. (shared by all namespaces) */
    size_t payload;
    refl_rng rng;
    bool exists[CH_MAX_NS][CH_MAX_NAMES];
    int gen[CH_MAX_NS][CH_MAX_NAMES];      /* uid generation: a re-create is a new object */
    bool evkeyed[CH_MAX_NS][CH_MAX_NAMES]; /* mismatch: stored by an ADDED event (ns/name) */
    int64_t last[CH_MAX_NS];               /* revision of the namespace's last write */
    int64_t max_rev;
    /* since the last churn_reset_counts */
    uint64_t writes[CH_MAX_NS], creates[CH_MAX_NS], updates[CH_MAX_NS], deletes[CH_MAX_NS];
    uint64_t mismatch_misses[CH_MAX_NS]; /* predicted misses (= relists) of a mismatch watcher */
    uint64_t total;
} churn;

static void churn_init(churn *ch, const char *res, int ns, int names, size_t payload,
                       uint64_t seed) {
    memset(ch, 0, sizeof *ch);
    ch->res = res;
    ch->ns = ns < CH_MAX_NS ? ns : CH_MAX_NS;
    ch->names = names < CH_MAX_NAMES ? names : CH_MAX_NAMES;
    ch->payload = payload;
    refl_rng_seed(&ch->rng, seed);
}

static void churn_reset_counts(churn *ch) {
    memset(ch->writes, 0, sizeof ch->writes);
    memset(ch->creates, 0, sizeof ch->creates);
    memset(ch->updates, 0, sizeof ch->updates);
    memset(ch->deletes, 0, sizeof ch->deletes);
    memset(ch->mismatch_misses, 0, sizeof ch->mismatch_misses);
    ch->total = 0;
}

static void churn_ns_name(int n, char *buf, size_t cap) {
    snprintf(buf, cap, "ns-%d", n);
}

/* A mismatch watcher's relist stores every object of its prefix by name. */
static void churn_mismatch_relisted(churn *ch, int n) {
    memset(ch->evkeyed[n], 0, sizeof ch->evkeyed[n]);
}

/* Puts (create or update) ns-n/web-i; returns the revision or -1. */
static int64_t churn_put(churn *ch, int n, int i) {
    char ns[16], name[16];
    churn_ns_name(n, ns, sizeof ns);
    snprintf(name, sizeof name, "web-%d", i);
    size_t pl = ch->payload + (size_t)(refl_rng_next(&ch->rng) % 64);
    int64_t rev = live_put_lab(ch->res, ns, name, ch->gen[n][i], pl);
    if (rev <= 0) return -1;
    if (ch->exists[n][i]) {
        ch->updates[n]++;
        if (!ch->evkeyed[n][i]) {
            ch->mismatch_misses[n]++;
            churn_mismatch_relisted(ch, n);
        }
    } else {
        ch->creates[n]++;
        ch->evkeyed[n][i] = true; /* ADDED never misses: stored under ns/name */
    }
    ch->exists[n][i] = true;
    ch->writes[n]++;
    ch->total++;
    ch->last[n] = rev;
    if (rev > ch->max_rev) ch->max_rev = rev;
    return rev;
}

/* Deletes ns-n/web-i (which must exist); returns the revision or -1. */
static int64_t churn_del(churn *ch, int n, int i) {
    char ns[16], name[16];
    churn_ns_name(n, ns, sizeof ns);
    snprintf(name, sizeof name, "web-%d", i);
    int64_t rev = live_del(ch->res, ns, name);
    if (rev <= 0) return -1;
    bool hit = ch->evkeyed[n][i];
    ch->exists[n][i] = false;
    ch->evkeyed[n][i] = false;
    ch->gen[n][i]++;
    if (!hit) {
        ch->mismatch_misses[n]++;
        churn_mismatch_relisted(ch, n); /* the LIST no longer holds the deleted object */
    }
    ch->deletes[n]++;
    ch->writes[n]++;
    ch->total++;
    ch->last[n] = rev;
    if (rev > ch->max_rev) ch->max_rev = rev;
    return rev;
}

/* Creates web-0..web-k-1 in every namespace (where missing), then zeroes the counts: the seed
 * is what the watchers' first LIST finds. -1 on a failed write. */
static int churn_seed(churn *ch, int k) {
    for (int n = 0; n < ch->ns; n++)
        for (int i = 0; i < k && i < ch->names; i++)
            if (!ch->exists[n][i] && churn_put(ch, n, i) < 0) return -1;
    for (int n = 0; n < ch->ns; n++)
        churn_mismatch_relisted(ch, n);
    churn_reset_counts(ch);
    return 0;
}

/* One random write in namespace n: a delete (one in three) of an existing object, else a put of
 * a random name (a create when it does not exist). */
static int64_t churn_step_in(churn *ch, int n) {
    int i = (int)(refl_rng_next(&ch->rng) % (uint64_t)ch->names);
    if (ch->exists[n][i] && refl_rng_next(&ch->rng) % 3 == 0) return churn_del(ch, n, i);
    return churn_put(ch, n, i);
}

/* One random write in a random namespace. */
static int64_t churn_step(churn *ch) {
    return churn_step_in(ch, (int)(refl_rng_next(&ch->rng) % (uint64_t)ch->ns));
}

static uint64_t churn_sum(const uint64_t *v, int n) {
    uint64_t s = 0;
    for (int k = 0; k < n; k++)
        s += v[k];
    return s;
}

/* ---- waiting on a fleet ------------------------------------------------------------------- */

typedef struct churn_wait_arg {
    refl_fleet *f;
    const churn *ch;
    bool per_ns; /* watcher i watches ns-<i % ns>/ (else the whole resource) */
} churn_wait_arg;

/* The revision watcher i must reach: its namespace's last write (or the last write at all). */
static int64_t churn_want(const churn_wait_arg *a, size_t i) {
    return a->per_ns ? a->ch->last[i % (size_t)a->ch->ns] : a->ch->max_rev;
}

static bool churn_all_caught_up(void *arg) {
    churn_wait_arg *a = arg;
    for (size_t i = 0; i < refl_fleet_count(a->f); i++) {
        refl_watcher_info wi;
        refl_fleet_watcher_info(a->f, i, &wi);
        if (wi.state != REFL_ST_WATCHING || !wi.synced || wi.revision < churn_want(a, i))
            return false;
    }
    return true;
}

/* Runs the loop until every watcher is WATCHING, synced, and at or past the revision of the last
 * write it must see; fails the test (listing the laggards) after timeout_ms. */
static void churn_wait(refl_fleet *f, const churn *ch, bool per_ns, uint64_t timeout_ms) {
    churn_wait_arg a = {f, ch, per_ns};
    if (live_wait(churn_all_caught_up, &a, timeout_ms)) return;
    int shown = 0;
    for (size_t i = 0; i < refl_fleet_count(f) && shown < 10; i++) {
        refl_watcher_info wi;
        refl_fleet_watcher_info(f, i, &wi);
        if (wi.state == REFL_ST_WATCHING && wi.synced && wi.revision >= churn_want(&a, i)) continue;
        shown++;
        print_message("  %s %s state %s synced %d rev %lld (want %lld)\n", wi.name, wi.prefix,
                      refl_state_name(wi.state), wi.synced, (long long)wi.revision,
                      (long long)churn_want(&a, i));
    }
    fail_msg("watchers did not catch up in %llu ms", (unsigned long long)timeout_ms);
}

#endif
