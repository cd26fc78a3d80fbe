/* refl_fleet_verify.c — verification rounds: every watcher's cache against the server's truth
 * at a revision that watcher has reached.
 *
 * Key decisions:
 * - A watcher is checked only when it is WATCHING with nothing queued and no GET in flight;
 *   its event processing then holds (events keep arriving and queue up) until the truth is
 *   read, so the cache stays exactly at that revision and a later delete cannot show up as a
 *   "missing" object. Holding costs the server nothing: the stream is not paused.
 * - The truth is a LIST of the watcher's prefix at that revision (paginated like the
 *   reflector's own, with the same page size), read once per (prefix, revision) and shared by
 *   every watcher at that point; it bypasses the watchers' token buckets (it is the observer's
 *   traffic, not the client's) and is counted separately (verify_lists).
 * - A watcher whose cache is about to change (relist, hold, key-mode change) leaves the job it
 *   waits for and is retried when it is idle again; watchers that never get there before the
 *   round's deadline are reported unverified. The round's callback never runs inside
 *   refl_fleet_verify: completion goes through the fleet's verify timer. */
#include "refl_fleet_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void job_free(refl_truthjob *j) {
    for (size_t i = 0; i < j->n_pages; i++)
        etcdserverpb__range_response__free_unpacked(j->pages[i], NULL);
    free(j->pages);
    refl_truth_free(j->truth);
    free(j->prefix);
    free(j->range_end);
    free(j->next_key);
    free(j->waiters);
    free(j);
}

void refl_verify_free_jobs(refl_fleet *f) {
    refl_truthjob *j = f->jobs;
    while (j) {
        refl_truthjob *n = j->next;
        if (j->inflight)
            j->orphan = true; /* its callback frees it (the client is freed first) */
        else
            job_free(j);
        j = n;
    }
    f->jobs = NULL;
}

static void on_round_end(uv_timer_t *t) {
    refl_fleet *f = t->data;
    if (!f->verifying) return;
    for (size_t i = 0; i < f->n; i++) {
        refl_reflector *r = &f->rs[i];
        if (!r->verify_pending) continue;
        f->round.unverified++;
        r->verify_pending = false;
        if (r->vjob) {
            refl_verify_detach(r);
            refl_r_kick(r);
        }
    }
    refl_verify_free_jobs(f);
    f->verifying = false;
    f->last_round = f->round;
    if (f->verify_done) f->verify_done(f->verify_ud, &f->last_round);
}

static void check_round_done(refl_fleet *f) {
    if (!f->verifying) return;
    for (size_t i = 0; i < f->n; i++)
        if (f->rs[i].verify_pending && f->rs[i].state != REFL_ST_STOPPED) return;
    uv_timer_start(&f->verify_timer, on_round_end, 0, 0);
}

int refl_fleet_verify(refl_fleet *f, uint32_t timeout_ms,
                      void (*done)(void *ud, const refl_verify_round *r), void *ud) {
    if (f->verifying || f->stopping || !f->started) return -1;
    f->verifying = true;
    memset(&f->round, 0, sizeof f->round);
    f->verify_done = done;
    f->verify_ud = ud;
    f->verify_rounds++;
    for (size_t i = 0; i < f->n; i++)
        f->rs[i].verify_pending = true;
    uv_timer_start(&f->verify_timer, on_round_end, timeout_ms ? timeout_ms : 1, 0);
    for (size_t i = 0; i < f->n; i++) {
        refl_reflector *r = &f->rs[i];
        if (r->state == REFL_ST_WATCHING && !r->qhead && !r->get_inflight)
            refl_verify_maybe_start(r);
    }
    return 0;
}

bool refl_fleet_verifying(const refl_fleet *f) {
    return f->verifying;
}

refl_verify_round refl_fleet_last_verify(const refl_fleet *f) {
    return f->last_round;
}

void refl_verify_abort_all(refl_fleet *f) {
    uv_timer_stop(&f->verify_timer);
    for (size_t i = 0; i < f->n; i++) {
        refl_verify_detach(&f->rs[i]);
        f->rs[i].verify_pending = false;
    }
    f->verifying = false;
}

void refl_verify_detach(refl_reflector *r) {
    refl_truthjob *j = r->vjob;
    if (!j) return;
    for (size_t i = 0; i < j->n_waiters; i++)
        if (j->waiters[i] == r) j->waiters[i] = NULL;
    r->vjob = NULL;
}

/* Compares r's cache with the job's truth and records the result. */
static void verify_one(refl_reflector *r, refl_truthjob *j) {
    refl_fleet *f = r->f;
    refl_verify_report rep;
    if (refl_verify(j->truth, r->cache, &rep) != 0) return; /* out of memory: stays pending */
    r->vrep = rep;
    r->verified = true;
    r->verify_pending = false;
    r->ex.verifies++;
    refl_verify_round *v = &f->round;
    if (v->verified == 0 || rep.revision < v->min_revision) v->min_revision = rep.revision;
    if (v->verified == 0 || rep.revision > v->max_revision) v->max_revision = rep.revision;
    v->verified++;
    v->missing += rep.missing;
    v->extra += rep.extra;
    v->stale += rep.stale;
    v->ahead += rep.ahead;
    v->collided += rep.collided;
    v->misplaced += rep.misplaced;
    v->divergent += rep.divergent;
    if (rep.divergent) v->divergent_watchers++;
    refl_trace_emit(f, REFL_TRACE_VERIFIED, r->idx, rep.revision, rep.divergent,
                    rep.divergent ? rep.listing : "");
}

static void job_finish(refl_truthjob *j) {
    j->done = true;
    if (!j->failed) {
        size_t n = 0;
        for (size_t i = 0; i < j->n_pages; i++)
            n += j->pages[i]->n_kvs;
        refl_kv *items = calloc(n ? n : 1, sizeof(*items));
        size_t k = 0;
        for (size_t i = 0; items && i < j->n_pages; i++) {
            for (size_t m = 0; m < j->pages[i]->n_kvs; m++) {
                const Mvccpb__KeyValue *kv = j->pages[i]->kvs[m];
                items[k++] = (refl_kv){
                    (const char *)kv->key.data, kv->key.len,        kv->value.data, kv->value.len,
                    kv->mod_revision,           kv->create_revision};
            }
        }
        j->truth = items ? refl_truth_new(items, n, j->rev) : NULL;
        free(items);
        if (!j->truth) j->failed = true;
    }
    for (size_t i = 0; i < j->n_pages; i++)
        etcdserverpb__range_response__free_unpacked(j->pages[i], NULL);
    j->n_pages = 0;
    for (size_t i = 0; i < j->n_waiters; i++) {
        refl_reflector *r = j->waiters[i];
        if (!r) continue;
        j->waiters[i] = NULL;
        r->vjob = NULL;
        if (!j->failed) verify_one(r, j);
        refl_r_kick(r); /* apply what queued up meanwhile */
    }
    check_round_done(j->f);
}

static int job_send(refl_truthjob *j);

static void on_job_page(void *ud, int status, const char *message, const uint8_t *resp,
                        size_t len) {
    refl_truthjob *j = ud;
    j->inflight = false;
    if (j->orphan) {
        job_free(j);
        return;
    }
    refl_fleet *f = j->f;
    Etcdserverpb__RangeResponse *rr =
        status == GRPC_STATUS_OK ? etcdserverpb__range_response__unpack(NULL, len, resp) : NULL;
    if (!rr) {
        char d[200];
        snprintf(d, sizeof d, "verify LIST %s at %lld: %s: %s", j->prefix, (long long)j->rev,
                 grpc_status_name(status), message ? message : "");
        refl_trace_emit(f, REFL_TRACE_ERROR,
                        j->waiters && j->n_waiters && j->waiters[0] ? j->waiters[0]->idx : 0,
                        j->rev, 0, d);
        j->failed = true;
        job_finish(j);
        return;
    }
    if (j->n_pages == j->cap_pages) {
        size_t cap = j->cap_pages ? j->cap_pages * 2 : 8;
        void *p = realloc(j->pages, cap * sizeof(*j->pages));
        if (!p) {
            etcdserverpb__range_response__free_unpacked(rr, NULL);
            j->failed = true;
            job_finish(j);
            return;
        }
        j->pages = p;
        j->cap_pages = cap;
    }
    j->pages[j->n_pages++] = rr;
    if (rr->more && rr->n_kvs > 0) {
        const ProtobufCBinaryData *last = &rr->kvs[rr->n_kvs - 1]->key;
        uint8_t *k = malloc(last->len + 1);
        if (k) {
            memcpy(k, last->data, last->len);
            k[last->len] = 0;
            free(j->next_key);
            j->next_key = k;
            j->next_key_len = last->len + 1;
        }
        if (!k || job_send(j) != 0) {
            j->failed = true;
            job_finish(j);
        }
        return;
    }
    job_finish(j);
}

static int job_send(refl_truthjob *j) {
    grpc_client *c = refl_slot_client(j->slot);
    if (!c) return -1;
    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key = (ProtobufCBinaryData){j->next_key_len, j->next_key};
    rq.range_end = (ProtobufCBinaryData){j->range_end_len, j->range_end};
    rq.limit = j->f->o.page_size > 0 ? j->f->o.page_size : 0;
    rq.revision = j->rev;
    size_t n = etcdserverpb__range_request__get_packed_size(&rq);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return -1;
    etcdserverpb__range_request__pack(&rq, buf);
    int rv = grpc_client_unary(c, "/etcdserverpb.KV/Range", buf, n, j->f->o.request_timeout_ms,
                               on_job_page, j);
    free(buf);
    if (rv == 0) j->inflight = true;
    return rv;
}

static int job_add_waiter(refl_truthjob *j, refl_reflector *r) {
    if (j->n_waiters == j->cap_waiters) {
        size_t cap = j->cap_waiters ? j->cap_waiters * 2 : 4;
        void *p = realloc(j->waiters, cap * sizeof(*j->waiters));
        if (!p) return -1;
        j->waiters = p;
        j->cap_waiters = cap;
    }
    j->waiters[j->n_waiters++] = r;
    r->vjob = j;
    return 0;
}

void refl_verify_maybe_start(refl_reflector *r) {
    refl_fleet *f = r->f;
    if (!f->verifying || f->stopping || !r->verify_pending || r->vjob || !r->synced) return;
    refl_truthjob *j;
    for (j = f->jobs; j; j = j->next)
        if (j->rev == r->rev && j->prefix_len == r->prefix_len &&
            memcmp(j->prefix, r->prefix, r->prefix_len) == 0)
            break;
    if (j) {
        if (j->done) {
            if (!j->failed) verify_one(r, j);
            check_round_done(f);
        } else {
            job_add_waiter(j, r);
        }
        return;
    }
    j = calloc(1, sizeof(*j));
    if (!j) return;
    j->f = f;
    j->rev = r->rev;
    j->slot = r->slot;
    j->prefix = strdup(r->prefix);
    j->prefix_len = r->prefix_len;
    j->range_end = malloc(r->range_end_len);
    j->range_end_len = r->range_end_len;
    j->next_key = malloc(r->prefix_len ? r->prefix_len : 1);
    j->next_key_len = r->prefix_len;
    if (!j->prefix || !j->range_end || !j->next_key || job_add_waiter(j, r) != 0) {
        r->vjob = NULL;
        job_free(j);
        return;
    }
    memcpy(j->range_end, r->range_end, r->range_end_len);
    memcpy(j->next_key, r->prefix, r->prefix_len);
    j->next = f->jobs;
    f->jobs = j;
    f->verify_lists++;
    f->round.lists++;
    if (job_send(j) != 0) {
        j->failed = true;
        job_finish(j);
    }
}
