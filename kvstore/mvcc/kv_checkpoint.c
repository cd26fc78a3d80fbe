/* kv_checkpoint.c — durability through the write-ahead log: what a group's log record holds,
 * replay at open, and checkpoints that let old log segments go.
 *
 * A durable write is: the group executes in an LMDB write txn, its record (the requests that took
 * effect, in order, with the revisions before and after) is appended to the log and flushed,
 * and only then does the txn commit, with MDB_NOSYNC. So nothing a reader, a watcher or a
 * response can see was ever not durable, and a crash can never take back a revision anyone saw.
 *
 * Replay re-executes the logged requests with kv_apply on the checkpoint's snapshot; the engine is
 * deterministic given the state, except for what the record therefore carries resolved: a
 * lease grant's id and raised TTL. Replayed lease grants start unpromoted (expiry times are not
 * persisted in any case). Every record names the revision before and after it: a replay that
 * ends anywhere else is refused as corruption instead of serving a diverged history.
 *
 * A checkpoint makes one LMDB snapshot durable and moves the log's start past it:
 *   writer thread, right after a commit C: copy LMDB's two meta pages (they describe C), open a
 *     read txn on C (the "pin": LMDB never reuses a page a live snapshot may read, so C's pages
 *     stay intact on disk until the next checkpoint replaces it), note the log position;
 *   checkpoint thread: fdatasync data.mdb (C's pages and everything before are now on disk),
 *     write the checkpoint record (C's meta pages, the log position), delete the segments
 *     before it, then release the previous pin.
 * The flush runs beside the writer, so writes do not stall behind it. At open and close the same
 * steps run inline. A checkpoint starts when the log, or data.mdb, has grown by
 * kv_options.wal_checkpoint_bytes since the last one.
 * The same thread prepares the next zero-filled segment (kv_wal.c says why) ahead of the writer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv_internal.h"

#define DEFAULT_CKPT_BYTES ((uint64_t)16 << 20)
#define DEFAULT_SEG_BYTES  ((uint64_t)16 << 20)

enum { REC_GROUP = 1, REC_COMPACT = 2 };
enum { ITEM_OP = 1, ITEM_GRANT = 2, ITEM_REVOKE = 3 };

static void maybe_rotate(kv_wal *w, size_t need);

/* ---- record encoding ---- */

static int put_bytes(kv_buf *b, const void *p, size_t n) {
    if (kv_buf_reserve(b, n)) return -1;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static int put_u64(kv_buf *b, uint64_t v) {
    uint8_t x[8];
    kv_u64_put(x, v);
    return put_bytes(b, x, 8);
}

static int put_msg(kv_buf *b, uint8_t type, const ProtobufCMessage *m) {
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t hdr[5] = {type, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    if (n > UINT32_MAX || put_bytes(b, hdr, 5) || kv_buf_reserve(b, n)) return -1;
    b->len += protobuf_c_message_pack(m, b->p + b->len);
    return 0;
}

int kv_wal_fail(kv_store *s, kv_err *err) {
    kv_wal *w = s->wal;
    if (!w->failed) {
        w->failed = true;
        w->fail_err = *err;
        snprintf(w->fail_err.msg, sizeof(w->fail_err.msg),
                 "kvstore: writes stopped after a storage failure (%.160s); restart to recover",
                 err->msg);
    }
    return err->code;
}

int kv_wal_commit_failed(kv_store *s, kv_err *err) {
    kv_wal *w = s->wal;
    /* The record is on disk, its group is not in LMDB, and the client gets an error: erase the
     * record (a zero length ends a segment's records), or a restart would replay a write that
     * was reported failed, and one that failed for space (MDB_MAP_FULL) would fail again and
     * keep the store from opening. Writes stay stopped either way: LMDB's state is in doubt. */
    size_t n = WAL_REC_HDR + w->rec.len;
    if (w->f.fd >= 0 && w->f.size >= n) {
        static const uint8_t zero[WAL_REC_HDR];
        if (pwrite(w->f.fd, zero, sizeof zero, (off_t)(w->f.size - n)) == (ssize_t)sizeof zero &&
            fdatasync(w->f.fd) == 0)
            w->f.size -= n;
    }
    return kv_wal_fail(s, err);
}

int kv_wal_check(kv_store *s, kv_err *err) {
    if (!s->wal || !s->wal->failed) return KV_OK;
    if (err) *err = s->wal->fail_err;
    return s->wal->fail_err.code;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int append(kv_store *s, kv_err *err) {
    kv_wal *w = s->wal;
    maybe_rotate(w, w->rec.len + WAL_REC_HDR);
    double t0 = s->disk_fn ? now_s() : 0;
    int code = kv_wal_append(&w->f, w->rec.p, w->rec.len, err);
    if (code) return kv_wal_fail(s, err);
    if (s->disk_fn) s->disk_fn(s->disk_ud, KV_DISK_WAL_FSYNC, now_s() - t0);
    w->since_ckpt += w->rec.len;
    return KV_OK;
}

int kv_wal_log_group(kv_store *s, const kv_write *wv, size_t n, int64_t rev_before,
                     int64_t rev_after, kv_err *err) {
    kv_wal *w = s->wal;
    kv_buf *b = &w->rec;
    b->len = 0;
    uint8_t kind = REC_GROUP;
    int bad = put_bytes(b, &kind, 1) || put_u64(b, (uint64_t)rev_before) ||
              put_u64(b, (uint64_t)rev_after);
    size_t count_at = b->len;
    uint32_t count = 0;
    bad = bad || put_bytes(b, &count, 4);
    for (size_t i = 0; i < n && !bad; i++) {
        const kv_write *wr = &wv[i];
        if (wr->err.code) continue; /* it took no effect */
        if (wr->lease) {
            const kv_lease_op *op = wr->lease;
            if (op->grant) {
                if (!op->grant_resp) continue;
                Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
                g.id = op->grant_resp->id;   /* resolved: the id the store drew */
                g.ttl = op->grant_resp->ttl; /* resolved: after the minimum-TTL raise */
                bad = put_msg(b, ITEM_GRANT, &g.base);
            } else {
                bad = put_msg(b, ITEM_REVOKE, &op->revoke->base);
            }
        } else {
            if (!wr->op || wr->op->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE)
                continue;
            bad = put_msg(b, ITEM_OP, &wr->op->base);
        }
        count++;
    }
    if (bad) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    memcpy(b->p + count_at, &count, 4);
    return append(s, err);
}

int kv_wal_log_compact(kv_store *s, int64_t rev, kv_err *err) {
    kv_wal *w = s->wal;
    w->rec.len = 0;
    uint8_t kind = REC_COMPACT;
    if (put_bytes(&w->rec, &kind, 1) || put_u64(&w->rec, (uint64_t)rev))
        return kv_seterr(err, KV_ERR_NOMEM, NULL);
    return append(s, err);
}

/* ---- replay ---- */

typedef struct replay {
    kv_store *s;
    kv_arena *arena;
    kv_err *err;
    size_t records;
} replay;

static int corrupt(replay *r, const char *what) {
    return kv_seterr(r->err, KV_ERR_CORRUPT, "kvstore: write-ahead log replay at revision %lld: %s",
                     (long long)atomic_load(&r->s->rev), what);
}

static int replay_group(replay *r, const uint8_t *p, size_t n) {
    if (n < 20) return corrupt(r, "short group record");
    int64_t before = (int64_t)kv_u64_get(p), after = (int64_t)kv_u64_get(p + 8);
    uint32_t count;
    memcpy(&count, p + 16, 4);
    if (before != atomic_load(&r->s->rev)) return corrupt(r, "record does not follow the store");
    if (count > (n - 20) / 5)
        return corrupt(r, "more items than bytes"); /* 5 bytes each at least */
    kv_write *wv = calloc(count ? count : 1, sizeof(*wv));
    kv_lease_op *lops = calloc(count ? count : 1, sizeof(*lops));
    ProtobufCMessage **msgs = calloc(count ? count : 1, sizeof(*msgs));
    int code = (!wv || !lops || !msgs) ? kv_seterr(r->err, KV_ERR_NOMEM, NULL) : KV_OK;
    size_t off = 20, i = 0;
    for (; i < count && !code; i++) {
        if (n - off < 5) {
            code = corrupt(r, "truncated item");
            break;
        }
        uint8_t type = p[off];
        size_t len = (size_t)p[off + 1] << 24 | (size_t)p[off + 2] << 16 | (size_t)p[off + 3] << 8 |
                     p[off + 4];
        off += 5;
        if (len > n - off) {
            code = corrupt(r, "truncated item");
            break;
        }
        const ProtobufCMessageDescriptor *d =
            type == ITEM_OP       ? &etcdserverpb__request_op__descriptor
            : type == ITEM_GRANT  ? &etcdserverpb__lease_grant_request__descriptor
            : type == ITEM_REVOKE ? &etcdserverpb__lease_revoke_request__descriptor
                                  : NULL;
        if (!d || !(msgs[i] = protobuf_c_message_unpack(d, NULL, len, p + off))) {
            code = corrupt(r, "item does not decode");
            break;
        }
        off += len;
        wv[i].arena = r->arena;
        if (type == ITEM_OP) {
            wv[i].op = (Etcdserverpb__RequestOp *)msgs[i];
        } else {
            if (type == ITEM_GRANT)
                lops[i].grant = (Etcdserverpb__LeaseGrantRequest *)msgs[i];
            else
                lops[i].revoke = (Etcdserverpb__LeaseRevokeRequest *)msgs[i];
            wv[i].lease = &lops[i];
        }
    }
    if (!code && kv_apply(r->s, wv, count, r->err) == KV_OK) {
        for (size_t j = 0; j < count && !code; j++)
            if (wv[j].err.code == KV_ERR_NOSPACE) /* not damage: the map is too small for it */
                code = kv_seterr(r->err, KV_ERR_NOSPACE,
                                 "%s (replaying the write-ahead log; a larger quota opens it)",
                                 kv_code_message(KV_ERR_NOSPACE));
            else if (wv[j].err.code)
                code = corrupt(r, "a logged request fails on replay");
        if (!code && atomic_load(&r->s->rev) != after) code = corrupt(r, "revisions diverge");
    } else if (!code) {
        code = r->err->code;
    }
    for (size_t j = 0; msgs && j < count; j++)
        if (msgs[j]) protobuf_c_message_free_unpacked(msgs[j], NULL);
    free(msgs);
    free(lops);
    free(wv);
    kv_arena_reset(r->arena);
    return code;
}

static int replay_rec(void *ud, const uint8_t *p, size_t n) {
    replay *r = ud;
    r->records++;
    if (p[0] == REC_GROUP) return replay_group(r, p + 1, n - 1);
    if (p[0] == REC_COMPACT && n == 9) {
        int code = kv_compact(r->s, (int64_t)kv_u64_get(p + 1), r->err);
        return code ? corrupt(r, "a logged compaction fails on replay") : KV_OK;
    }
    return corrupt(r, "unknown record");
}

/* ---- checkpoints and segments ---- */

static void release_pin(MDB_txn *pin) {
    if (pin) mdb_txn_abort(pin);
}

/* Takes the prepared next segment when the record does not fit the current one's zeros. */
static void maybe_rotate(kv_wal *w, size_t need) {
    if (w->f.size + need <= w->f.zeros && w->f.fd >= 0) return;
    pthread_mutex_lock(&w->mu);
    if (w->next.fd >= 0 && w->next.seg == w->f.seg + 1) {
        kv_wal_segment_close(&w->f); /* everything in it is flushed: appends are synchronous */
        w->f = w->next;
        w->next.fd = -1;
        w->want_next = true;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

/* LMDB's last page in use: it only grows while the pin keeps freed pages from reuse. */
static uint64_t last_pgno(kv_store *s) {
    MDB_envinfo info;
    return mdb_env_info(s->env, &info) ? 0 : (uint64_t)info.me_last_pgno;
}

/* Inline checkpoint (open, close): everything committed is flushed, then recorded. */
static int ckpt_now(kv_store *s, kv_err *err) {
    kv_wal *w = s->wal;
    if (fdatasync(w->data_fd))
        return kv_seterr(err, KV_ERR_IO, "kvstore: cannot flush data.mdb: %s", strerror(errno));
    kv_ckpt c = {w->psize, atomic_load(&s->rev), w->f.seg, w->f.size, w->metas_inline};
    int code = kv_ckpt_capture_metas(w->data_fd, w->psize, c.metas, err);
    if (!code) code = kv_ckpt_write(w->dir, &c, err);
    if (code) return code;
    kv_wal_remove_below(w->dir, c.seg);
    w->since_ckpt = 0;
    w->pgno_ckpt = last_pgno(s);
    MDB_txn *pin = NULL;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &pin);
    if (rc) return kv_mdb_err(err, rc, "pin checkpoint");
    release_pin(w->pin);
    w->pin = pin;
    return KV_OK;
}

static void run_job(kv_store *s) {
    kv_wal *w = s->wal;
    kv_ckpt c = w->jc;
    MDB_txn *pin = w->job_pin;
    pthread_mutex_unlock(&w->mu);
    kv_err err = {0};
    int code = KV_OK;
    double t0 = now_s();
    if (fdatasync(w->data_fd))
        code = kv_seterr(&err, KV_ERR_IO, "kvstore: cannot flush data.mdb: %s", strerror(errno));
    else if (s->disk_fn)
        s->disk_fn(s->disk_ud, KV_DISK_CHECKPOINT, now_s() - t0);
    if (!code) code = kv_ckpt_write(w->dir, &c, &err);
    if (!code) kv_wal_remove_below(w->dir, c.seg);
    pthread_mutex_lock(&w->mu);
    MDB_txn *old = code ? pin : w->pin; /* a failed one keeps the previous checkpoint; the next
                                           commit past the threshold tries again */
    if (!code) w->pin = pin;
    w->job = false;
    w->job_pin = NULL;
    pthread_mutex_unlock(&w->mu);
    release_pin(old);
    pthread_mutex_lock(&w->mu);
}

static void run_prepare(kv_wal *w) {
    uint64_t seg = w->f.seg + 1; /* f.seg only changes under mu (maybe_rotate) */
    w->want_next = false;
    pthread_mutex_unlock(&w->mu);
    kv_wal_file nf = {-1, 0, 0, 0};
    kv_err err;
    int code = kv_wal_segment_create(&nf, w->dir, seg, w->seg_bytes, &err);
    pthread_mutex_lock(&w->mu);
    if (!code && w->f.seg + 1 == seg)
        w->next = nf;
    else if (!code)
        kv_wal_segment_close(&nf);
    /* on failure appends grow the current segment instead */
}

static void *ckpt_main(void *arg) {
    kv_store *s = arg;
    kv_wal *w = s->wal;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->job && !w->want_next && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->job)
            run_job(s);
        else if (w->want_next && !w->stop)
            run_prepare(w);
        else
            break;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

void kv_wal_committed(kv_store *s) {
    kv_wal *w = s->wal;
    if (!w || s->replaying) return;
    /* Due after ckpt_bytes of log, or of data.mdb growth: many small commits write little log
     * but a few fresh pages each, which only a checkpoint lets LMDB reuse. */
    uint64_t pg = last_pgno(s);
    uint64_t grown = pg > w->pgno_ckpt ? (pg - w->pgno_ckpt) * w->psize : 0;
    if (w->since_ckpt < w->ckpt_bytes && grown < w->ckpt_bytes) return;
    pthread_mutex_lock(&w->mu);
    bool busy = w->job;
    pthread_mutex_unlock(&w->mu);
    if (busy) return; /* the log keeps growing until the running one ends */
    kv_err err;
    MDB_txn *pin = NULL;
    if (kv_ckpt_capture_metas(w->data_fd, w->psize, w->metas_job, &err) ||
        mdb_txn_begin(s->env, NULL, MDB_RDONLY, &pin))
        return; /* retried after the next commit */
    w->since_ckpt = 0;
    w->pgno_ckpt = pg;
    pthread_mutex_lock(&w->mu);
    w->jc = (kv_ckpt){w->psize, atomic_load(&s->rev), w->f.seg, w->f.size, w->metas_job};
    w->job_pin = pin;
    w->job = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* ---- open / close ---- */

int kv_wal_prepare(const char *dir, const char *data_path, bool have_data, kv_ckpt *c,
                   kv_err *err) {
    int found = kv_ckpt_read(dir, c, err);
    if (found < 0) return -found;
    if (!found) {
        /* A store gets its first checkpoint before its first segment. */
        if (kv_wal_has_segments(dir))
            return kv_seterr(err, KV_ERR_CORRUPT,
                             "kvstore: %s has write-ahead log segments but no checkpoint", dir);
        return KV_OK;
    }
    if (!have_data)
        return kv_seterr(err, KV_ERR_CORRUPT, "kvstore: %s has a checkpoint but no data.mdb", dir);
    return kv_ckpt_restore_metas(data_path, c, err);
}

/* A store opened with no_sync keeps no log: once the replayed state is on disk the log goes,
 * segments first (a checkpoint without segments replays nothing; the reverse is refused). */
static int retire(kv_store *s, kv_err *err) {
    kv_wal *w = s->wal;
    if (fdatasync(w->data_fd))
        return kv_seterr(err, KV_ERR_IO, "kvstore: cannot flush data.mdb: %s", strerror(errno));
    kv_wal_remove_below(w->dir, UINT64_MAX);
    int code = kv_wal_sync_dir(w->dir, err);
    char path[4096];
    snprintf(path, sizeof(path), "%s/checkpoint", w->dir);
    if (!code && unlink(path) && errno != ENOENT)
        code = kv_seterr(err, KV_ERR_IO, "kvstore: cannot remove %s: %s", path, strerror(errno));
    if (!code) code = kv_wal_sync_dir(w->dir, err);
    if (!code) kv_wal_close(s, false);
    return code;
}

int kv_wal_start(kv_store *s, const char *dir, kv_ckpt *c, const kv_options *opt, kv_err *err) {
    kv_wal *w = calloc(1, sizeof(*w));
    if (!w) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    w->f.fd = w->next.fd = -1;
    w->ckpt_bytes =
        opt && opt->wal_checkpoint_bytes ? opt->wal_checkpoint_bytes : DEFAULT_CKPT_BYTES;
    w->seg_bytes = DEFAULT_SEG_BYTES;
    if (w->seg_bytes > w->ckpt_bytes) w->seg_bytes = w->ckpt_bytes;
    MDB_stat est;
    w->psize = mdb_env_stat(s->env, &est) ? 4096 : est.ms_psize;
    int fd = -1;
    int code = KV_OK;
    if (!(w->dir = strdup(dir)) || !(w->metas_inline = malloc(2 * (size_t)w->psize)) ||
        !(w->metas_job = malloc(2 * (size_t)w->psize)))
        code = kv_seterr(err, KV_ERR_NOMEM, NULL);
    else if (mdb_env_get_fd(s->env, &fd))
        code = kv_seterr(err, KV_ERR_IO, "kvstore: no data.mdb descriptor");
    w->data_fd = fd;
    s->wal = w;
    if (code) return code;
    uint64_t last = 0;
    if (c->metas) { /* replay what followed the checkpoint */
        if (c->psize != w->psize)
            return kv_seterr(err, KV_ERR_CORRUPT, "kvstore: checkpoint page size %u, LMDB's %u",
                             c->psize, w->psize);
        replay r = {s, kv_arena_new(), err, 0};
        if (!r.arena) return kv_seterr(err, KV_ERR_NOMEM, NULL);
        s->replaying = true;
        code = kv_wal_scan(dir, c->seg, c->off, replay_rec, &r, &last, err);
        s->replaying = false;
        kv_arena_free(r.arena);
        if (code) return code;
        w->replayed = r.records;
    }
    if (s->no_sync) return retire(s, err);
    /* Appends continue in a new segment after every one present (a torn tail stays behind). The
     * checkpoint names it first: a crash before it exists leaves nothing to replay, not a
     * segment without a checkpoint. */
    w->f.seg = last + 1;
    if ((code = ckpt_now(s, err))) return code;
    if ((code = kv_wal_segment_create(&w->f, dir, last + 1, 0, err))) return code;
    if (pthread_mutex_init(&w->mu, NULL)) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    if (pthread_cond_init(&w->cv, NULL)) {
        pthread_mutex_destroy(&w->mu);
        return kv_seterr(err, KV_ERR_NOMEM, NULL);
    }
    w->sync_ready = true;
    w->want_next = true; /* the first segment grows until a prepared one is ready */
    if (pthread_create(&w->thr, NULL, ckpt_main, s))
        return kv_seterr(err, KV_ERR_NOMEM, "kvstore: cannot start the checkpoint thread");
    w->thr_started = true;
    return KV_OK;
}

void kv_wal_close(kv_store *s, bool final_ckpt) {
    kv_wal *w = s->wal;
    if (!w) return;
    if (w->thr_started) {
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thr, NULL); /* finishes a running checkpoint first */
    }
    kv_err err;
    if (final_ckpt && !w->failed) ckpt_now(s, &err); /* a failure leaves replay to the next open */
    release_pin(w->job_pin);
    release_pin(w->pin);
    kv_wal_segment_close(&w->f);
    kv_wal_segment_close(&w->next); /* stays on disk as zeros: the next open skips past it */
    if (w->sync_ready) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
    }
    kv_buf_free(&w->rec);
    free(w->metas_inline);
    free(w->metas_job);
    free(w->dir);
    free(w);
    s->wal = NULL;
}
