/* writer.c — the one thread that writes: group commit, compaction, physical compaction steps.
 *
 * The loop thread queues requests (Put, DeleteRange, Txn, Compact). The writer wakes, takes the
 * WHOLE queue at once and applies each run of consecutive writes with ONE kv_apply (one LMDB
 * transaction, one write-ahead log append and fsync for the group), so 64 concurrent Puts cost
 * a handful of fsyncs instead of 64. A Compact in the queue splits the runs so it stays ordered with the writes around it.
 * Finished requests go back to the loop thread in one grpc_server_post per group.
 *
 * Physical compaction (removing obsolete history) runs as kv_compact_step batches, one batch
 * between write groups, so writers never wait behind a long removal. Compact requests with
 * physical=true are held until the steps report done. An unfinished compaction found at start
 * resumes here.
 *
 * Lease grants and revokes (lease_service.c, including the expiry timer's revokes) are writes
 * like the others: they go through the same queue and group commit, so a revoke's DELETE
 * events are ordered with the puts around it. Their completion is their own (kvs_req.on_done).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_internal.h"

struct kvs_writer {
    kvs_server *srv;
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    kvs_req *head, *tail; /* guarded by mu */
    bool stop;            /* guarded by mu */
    /* writer-thread state */
    bool compacting;                /* physical removal unfinished */
    kvs_req *phys_head, *phys_tail; /* Compact(physical) waiting for the steps */
    kvs_req *orphans;               /* completions that could not be posted */
    kv_write *wv;
    size_t wv_cap;
};

typedef struct done_list {
    kvs_req *head, *tail;
} done_list;

static void dl_push(done_list *d, kvs_req *r) {
    r->next = NULL;
    if (d->tail)
        d->tail->next = r;
    else
        d->head = r;
    d->tail = r;
}

typedef struct post_arg {
    kvs_server *srv;
    kvs_req *list;
} post_arg;

/* Completes in order: runs of KV requests go to kvs_writer_done, the others to on_done. */
static void on_posted(void *arg) {
    post_arg *pa = arg;
    kvs_server *srv = pa->srv;
    kvs_req *list = pa->list;
    free(pa);
    while (list) {
        kvs_req *run = list, **tail = &run;
        while (*tail && !(*tail)->on_done)
            tail = &(*tail)->next;
        list = *tail;
        *tail = NULL;
        if (run) kvs_writer_done(srv, run);
        if (list) {
            kvs_req *r = list;
            list = r->next;
            r->next = NULL;
            r->on_done(r);
        }
    }
}

static void post_done(kvs_writer *w, done_list *d) {
    if (!d->head) return;
    post_arg *pa = malloc(sizeof *pa);
    if (pa) {
        pa->srv = w->srv;
        pa->list = d->head;
        if (grpc_server_post(w->srv->grpc, on_posted, pa) == 0) {
            d->head = d->tail = NULL;
            return;
        }
        free(pa);
    }
    /* The server is closing (or out of memory): keep them for kvs_writer_stop's caller. */
    d->tail->next = w->orphans;
    w->orphans = d->head;
    d->head = d->tail = NULL;
}

/* Applies reqs[0..n) (all writes) as one group. */
static void apply_group(kvs_writer *w, kvs_req **reqs, size_t n) {
    if (!n) return;
    if (w->wv_cap < n) {
        size_t cap = w->wv_cap ? w->wv_cap : 64;
        while (cap < n)
            cap *= 2;
        kv_write *nv = realloc(w->wv, cap * sizeof *nv);
        if (!nv) {
            for (size_t i = 0; i < n; i++) {
                reqs[i]->w.resp = NULL;
                reqs[i]->w.err.code = KV_ERR_NOMEM;
                snprintf(reqs[i]->w.err.msg, sizeof reqs[i]->w.err.msg, "%s",
                         kv_code_message(KV_ERR_NOMEM));
            }
            return;
        }
        w->wv = nv;
        w->wv_cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        memset(&w->wv[i], 0, sizeof w->wv[i]);
        w->wv[i].op = reqs[i]->lease ? NULL : &reqs[i]->op;
        w->wv[i].lease = reqs[i]->lease;
        w->wv[i].arena = reqs[i]->arena;
    }
    kv_err err;
    uint64_t t0 = uv_hrtime();
    kv_apply(w->srv->store, w->wv, n, &err); /* per-request errors are in wv[i].err */
    kvs_histogram_observe(w->srv->m_commit_seconds, (double)(uv_hrtime() - t0) / 1e9);
    kvs_histogram_observe(w->srv->m_group_size, (double)n);
    for (size_t i = 0; i < n; i++)
        reqs[i]->w = w->wv[i];
    atomic_fetch_add(&w->srv->w_groups, 1);
    atomic_fetch_add(&w->srv->w_writes, n);
}

static void do_compact(kvs_writer *w, kvs_req *r, done_list *d) {
    memset(&r->err, 0, sizeof r->err);
    if (kv_compact(w->srv->store, r->compact_rev, &r->err) != KV_OK) {
        dl_push(d, r);
        return;
    }
    w->compacting = true;
    if (!r->physical) {
        dl_push(d, r);
        return;
    }
    r->next = NULL;
    if (w->phys_tail)
        w->phys_tail->next = r;
    else
        w->phys_head = r;
    w->phys_tail = r;
}

static void compact_step(kvs_writer *w, done_list *d) {
    bool done = false;
    kv_err err;
    memset(&err, 0, sizeof err);
    int rc = kv_compact_step(w->srv->store, w->srv->opts.compact_batch, &done, &err);
    atomic_fetch_add(&w->srv->w_steps, 1);
    if (rc != KV_OK) {
        kvs_logf(w->srv, "physical compaction step failed: %s", err.msg);
        done = true; /* retried after the next Compact or restart */
    }
    if (!done) return;
    w->compacting = false;
    kvs_req *r = w->phys_head;
    w->phys_head = w->phys_tail = NULL;
    while (r) {
        kvs_req *next = r->next;
        if (rc != KV_OK) r->err = err;
        dl_push(d, r);
        r = next;
    }
}

static void writer_main(void *arg) {
    kvs_writer *w = arg;
    kvs_req **batch = NULL;
    size_t batch_cap = 0;
    for (;;) {
        uv_mutex_lock(&w->mu);
        while (!w->head && !w->stop && !w->compacting)
            uv_cond_wait(&w->cv, &w->mu);
        kvs_req *list = w->head;
        w->head = w->tail = NULL;
        bool stop = w->stop;
        uv_mutex_unlock(&w->mu);
        if (!list && stop) break;

        done_list d = {NULL, NULL};
        size_t n = 0;
        for (kvs_req *r = list; r;) {
            kvs_req *next = r->next;
            if (r->m == KVS_M_COMPACT) {
                apply_group(w, batch, n);
                for (size_t i = 0; i < n; i++)
                    dl_push(&d, batch[i]);
                n = 0;
                do_compact(w, r, &d);
            } else {
                if (n == batch_cap) {
                    size_t cap = batch_cap ? batch_cap * 2 : 64;
                    kvs_req **nb = realloc(batch, cap * sizeof *nb);
                    if (!nb) {
                        r->w.err.code = KV_ERR_NOMEM;
                        snprintf(r->w.err.msg, sizeof r->w.err.msg, "%s",
                                 kv_code_message(KV_ERR_NOMEM));
                        dl_push(&d, r);
                        r = next;
                        continue;
                    }
                    batch = nb;
                    batch_cap = cap;
                }
                batch[n++] = r;
            }
            r = next;
        }
        apply_group(w, batch, n);
        for (size_t i = 0; i < n; i++)
            dl_push(&d, batch[i]);
        post_done(w, &d);
        /* One removal batch between write groups; skipped once stopping (progress persists). */
        if (w->compacting && !stop) {
            compact_step(w, &d);
            post_done(w, &d);
        }
        if (stop) {
            uv_mutex_lock(&w->mu);
            bool empty = !w->head;
            uv_mutex_unlock(&w->mu);
            if (empty) break;
        }
    }
    /* Compact(physical) callers still waiting: the removal resumes at the next start. */
    if (w->phys_head) {
        w->phys_tail->next = w->orphans;
        w->orphans = w->phys_head;
        w->phys_head = w->phys_tail = NULL;
    }
    free(batch);
}

int kvs_writer_start(kvs_server *srv, kvs_writer **out) {
    kvs_writer *w = calloc(1, sizeof *w);
    if (!w) return -1;
    w->srv = srv;
    kv_status st;
    kv_status_get(srv->store, &st);
    w->compacting = st.compact_finished < st.compact_revision; /* resume an interrupted one */
    if (uv_mutex_init(&w->mu) != 0) {
        free(w);
        return -1;
    }
    if (uv_cond_init(&w->cv) != 0) {
        uv_mutex_destroy(&w->mu);
        free(w);
        return -1;
    }
    if (uv_thread_create(&w->thread, writer_main, w) != 0) {
        uv_cond_destroy(&w->cv);
        uv_mutex_destroy(&w->mu);
        free(w);
        return -1;
    }
    *out = w;
    return 0;
}

void kvs_writer_submit(kvs_writer *w, kvs_req *r) {
    r->next = NULL;
    uv_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = r;
    else
        w->head = r;
    w->tail = r;
    uv_cond_signal(&w->cv);
    uv_mutex_unlock(&w->mu);
}

kvs_req *kvs_writer_stop(kvs_writer *w) {
    if (!w) return NULL;
    uv_mutex_lock(&w->mu);
    w->stop = true;
    uv_cond_signal(&w->cv);
    uv_mutex_unlock(&w->mu);
    uv_thread_join(&w->thread);
    kvs_req *orphans = w->orphans;
    uv_cond_destroy(&w->cv);
    uv_mutex_destroy(&w->mu);
    free(w->wv);
    free(w);
    return orphans;
}
