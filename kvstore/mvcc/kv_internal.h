/* kv_internal.h — shared internals of the MVCC engine: the store object, the LMDB layout, the
 * record codec and the range scanner used by reads, txns and the change feed.
 *
 * LMDB layout (layout version KV_LAYOUT_VERSION; one environment, four named databases):
 *   "meta": "magic" -> "relistlab-kvstore", "layout" -> u32 BE, "ids" -> cluster u64 BE + member
 *           u64 BE, "state" -> {revision, compact_revision, compact_finished} as i64 BE,
 *           "compact_key" -> user key up to which the running physical compaction got (absent =
 *           start from the first key).
 *   "hist": 16-byte BE {main, sub} -> 1 flag byte (bit 0 = tombstone) + encoded mvccpb.KeyValue.
 *           Keys only ever grow, so every write is an MDB_APPEND.
 *   "cur":  user key -> encoded KeyValue of the latest live version. A LIST at the current
 *           revision is one cursor scan handing out these bytes; deleted keys are absent.
 *   "kidx": user key -> DUPSORT|DUPFIXED 17-byte {main BE, sub BE, flag} (the key index, every
 *           revision the key has in "hist"): historical reads, prev_kv, compaction.
 *   "lease": lease id (8-byte BE of the int64) -> granted TTL in seconds (i64 BE; after the
 *           minimum-TTL raise). Expiry times are not stored (etcd's Promote refreshes them).
 *   "lkeys": lease id (8-byte BE) -> DUPSORT user key: the keys attached to the lease, in key
 *           order (the order a revoke deletes them in). Keys fit: KV_MAX_KEY_LEN is LMDB's
 *           limit for DUPSORT data too. Persisted so opening needs no scan of "cur" and the
 *           attachments cost no memory.
 *   "lease" and "lkeys" were added after layout 1 was first written: kv_open creates them when
 *   missing, so a store from before leases opens unchanged (no layout bump).
 * The current revision and compaction state live in the same "state" record, so a reader's
 * snapshot always pairs data with the revision it belongs to; atomics mirror it for callers that
 * need no snapshot (headers, status).
 */
#ifndef RELIST_KV_INTERNAL_H
#define RELIST_KV_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "kv.h"

#define KV_LAYOUT_VERSION 1u
#define KV_MAGIC          "relistlab-kvstore"
#define KV_REV_LEN        16
#define KV_IDX_LEN        17
#define KV_FLAG_TOMBSTONE 1u

/* One lease in memory: what the expiry check needs without an LMDB read. */
typedef struct kv_lease_ent {
    int64_t id; /* 0 = empty slot */
    int64_t ttl;
    int64_t expiry_ms; /* KV_LEASE_UNPROMOTED until the first clock after kv_open */
} kv_lease_ent;

#define KV_LEASE_UNPROMOTED INT64_MIN

/* The in-memory lessor: an open-addressing table (linear probing, power-of-two capacity) of the
 * committed leases. LMDB is the truth for existence inside a write txn; this table holds the
 * committed set plus expiry times, and is updated after each commit. `mu` guards it: keepalive
 * and the expiry check run on other threads than the writer. */
typedef struct kv_lessor {
    pthread_mutex_t mu;
    bool ready;      /* mu initialised */
    bool enforce;    /* kv_options.leases */
    bool unpromoted; /* some entries wait for a clock */
    int64_t min_ttl;
    uint64_t rng; /* id generator state (writer only) */
    kv_lease_ent *tab;
    size_t cap, n;
} kv_lessor;

/* A growable malloc'd byte buffer (writer scratch, event bytes). */
typedef struct kv_buf {
    uint8_t *p;
    size_t len, cap;
} kv_buf;
int kv_buf_reserve(kv_buf *b, size_t extra);
void kv_buf_free(kv_buf *b);

/* ---- write-ahead log and checkpoints (kv_wal.c files, kv_checkpoint.c policy) ---- */

typedef struct kv_wal_file {
    int fd; /* the segment being appended to, -1 = none */
    uint64_t seg;
    uint64_t size;  /* bytes of records */
    uint64_t zeros; /* bytes of flushed zeros it was prepared with */
} kv_wal_file;

/* The checkpoint record: LMDB's meta pages right after the checkpointed commit. */
typedef struct kv_ckpt {
    uint32_t psize;
    int64_t rev;       /* store revision at the checkpoint */
    uint64_t seg, off; /* where replay starts */
    uint8_t *metas;    /* 2 * psize bytes */
} kv_ckpt;

typedef struct kv_wal {
    char *dir;
    kv_wal_file f;
    uint32_t psize;
    int data_fd;         /* LMDB's own descriptor of data.mdb */
    uint64_t since_ckpt; /* log bytes since the last checkpoint started (writer) */
    uint64_t ckpt_bytes; /* start a checkpoint past this */
    uint64_t pgno_ckpt;  /* LMDB's last page at the last checkpoint start (writer) */
    size_t replayed;     /* records replayed at open */
    kv_buf rec;          /* the record being built (writer) */
    bool failed;         /* sticky: a log write or commit failed; writes refused */
    kv_err fail_err;
    uint8_t *metas_inline, *metas_job;
    uint64_t seg_bytes; /* zeros a prepared segment holds */
    kv_wal_file next;   /* prepared by the checkpoint thread (fd -1 = none yet); under mu */
    bool want_next;     /* the writer asks for segment f.seg + 1; under mu */
    /* the checkpoint thread; mu guards job, jc, job_pin, pin, stop, next, want_next */
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool sync_ready, thr_started, stop, job;
    kv_ckpt jc;
    MDB_txn *job_pin; /* snapshot of the running checkpoint */
    MDB_txn *pin;     /* snapshot of the last completed one: its pages must stay intact */
} kv_wal;

#define WAL_REC_HDR 8 /* a log record's header: u32 LE length, u32 LE CRC-32C */
uint32_t kv_crc32c(const uint8_t *p, size_t n);
bool kv_wal_is_own_file(const char *name);
bool kv_wal_has_segments(const char *dir);
int kv_wal_sync_dir(const char *dir, kv_err *err);
int kv_ckpt_read(const char *dir, kv_ckpt *c, kv_err *err); /* 1 found, 0 none, <0 -code */
int kv_ckpt_write(const char *dir, const kv_ckpt *c, kv_err *err);
int kv_ckpt_capture_metas(int fd, uint32_t psize, uint8_t *out, kv_err *err);
int kv_ckpt_restore_metas(const char *data_path, const kv_ckpt *c, kv_err *err);
/* Creates segment `seg` with `zeros` bytes of flushed zeros (0 = empty, grows). */
int kv_wal_segment_create(kv_wal_file *f, const char *dir, uint64_t seg, uint64_t zeros,
                          kv_err *err);
void kv_wal_segment_close(kv_wal_file *f);
int kv_wal_append(kv_wal_file *f, const uint8_t *p, size_t n, kv_err *err); /* + fdatasync */
typedef int (*kv_wal_rec_fn)(void *ud, const uint8_t *p, size_t n);
/* Hands every record from (from, from_off) on to fn; *last_seg = the highest segment present. */
int kv_wal_scan(const char *dir, uint64_t from, uint64_t from_off, kv_wal_rec_fn fn, void *ud,
                uint64_t *last_seg, kv_err *err);
void kv_wal_remove_below(const char *dir, uint64_t seg);

struct kv_store {
    MDB_env *env;
    MDB_dbi meta, hist, cur, kidx;
    MDB_dbi lease, lkeys;
    kv_lessor lessor;
    bool no_sync;
    kv_wal *wal;    /* NULL with no_sync */
    bool replaying; /* kv_open is replaying the log: log nothing, start no checkpoint */
    uint64_t cluster_id, member_id;
    _Atomic int64_t rev, compact_rev, compact_finished;
    char *path; /* data.mdb, for the file size in kv_status */

    kv_lease_exists_fn lease_fn;
    void *lease_ud;
    kv_commit_fn commit_fn;
    void *commit_ud;
    kv_disk_fn disk_fn;
    void *disk_ud;
};

/* kv_checkpoint.c */
int kv_wal_prepare(const char *dir, const char *data_path, bool have_data, kv_ckpt *c, kv_err *err);
int kv_wal_start(kv_store *s, const char *dir, kv_ckpt *c, const kv_options *opt, kv_err *err);
void kv_wal_close(kv_store *s, bool final_ckpt);
int kv_wal_check(kv_store *s, kv_err *err); /* the sticky failure, if any */
int kv_wal_fail(kv_store *s, kv_err *err);  /* makes err sticky; returns its code */
/* After a logged group failed to commit in LMDB: erases its record, then kv_wal_fail. */
int kv_wal_commit_failed(kv_store *s, kv_err *err);
struct kv_write;
int kv_wal_log_group(kv_store *s, const struct kv_write *wv, size_t n, int64_t rev_before,
                     int64_t rev_after, kv_err *err);
int kv_wal_log_compact(kv_store *s, int64_t rev, kv_err *err);
void kv_wal_committed(kv_store *s); /* after a commit: maybe start a checkpoint */

/* ---- errors ---- */
int kv_seterr(kv_err *err, kv_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int kv_mdb_err(kv_err *err, int rc, const char *what); /* maps an LMDB error, returns the code */

/* ---- revision and record codec (kv_codec.c) ---- */
typedef struct kv_rev {
    int64_t main, sub;
} kv_rev;

void kv_rev_put(uint8_t out[KV_REV_LEN], int64_t main, int64_t sub);
kv_rev kv_rev_get(const uint8_t *in);
void kv_u64_put(uint8_t *out, uint64_t v);
uint64_t kv_u64_get(const uint8_t *in);

/* A decoded mvccpb.KeyValue whose key and value point into the encoded bytes. */
typedef struct kv_rec {
    const uint8_t *key;
    size_t key_len;
    int64_t create, mod, version, lease;
    const uint8_t *value;
    size_t value_len;
} kv_rec;

int kv_rec_decode(const uint8_t *p, size_t n, kv_rec *r); /* 0, or -1 when it does not decode */
size_t kv_rec_size(const kv_rec *r);                      /* encoded length */
size_t kv_rec_encode(const kv_rec *r, uint8_t *out);      /* writes kv_rec_size bytes */
int kv_bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn);

/* etcd's range rules: range_end empty = key alone, "\0" = every key >= key, else [key, end). */
typedef struct kv_keyrange {
    const uint8_t *key, *end;
    size_t key_len, end_len;
    bool single, from_key;
} kv_keyrange;

kv_keyrange kv_keyrange_make(const uint8_t *key, size_t key_len, const uint8_t *end,
                             size_t end_len);
bool kv_keyrange_has(const kv_keyrange *kr, const uint8_t *k, size_t n);
/* True when k is beyond the range (scans in key order stop there). */
bool kv_keyrange_past(const kv_keyrange *kr, const uint8_t *k, size_t n);

/* ---- keys at a revision (kv_scan.c) ---- */

/* Walks the keys of a range as they were at revision `rev`, in key order: from "cur" when `rev`
 * is the snapshot's current revision, otherwise from the key index: a key unchanged since rev
 * reads its record from "cur" (followed in key order), an older one costs a "hist" lookup. */
typedef struct kv_scan {
    kv_store *s;
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_cursor *cc; /* historical mode: follows "cur" for keys unchanged since rev */
    kv_keyrange kr;
    int64_t rev;
    bool historical, started, done, cc_pos;
} kv_scan;

int kv_scan_open(kv_scan *it, kv_store *s, MDB_txn *txn, const kv_keyrange *kr, int64_t rev,
                 bool current, kv_err *err);
/* 1 with the record (kv/len valid until the txn writes or ends; NULL when !need_value in the
 * historical mode), 0 at the end, <0 on error (err set). */
int kv_scan_next(kv_scan *it, bool need_value, const uint8_t **kv, size_t *len, kv_err *err);
void kv_scan_close(kv_scan *it);

/* The latest revision of `key` at or below `rev` in the key index. 1 found (idx = 17 bytes),
 * 0 none, <0 error. */
int kv_kidx_at(kv_store *s, MDB_txn *txn, const uint8_t *key, size_t key_len, int64_t rev,
               uint8_t idx[KV_IDX_LEN], kv_err *err);
/* Reads a "hist" record: flag byte and the encoded KeyValue. */
int kv_hist_get(kv_store *s, MDB_txn *txn, int64_t main, int64_t sub, unsigned *flag,
                const uint8_t **kv, size_t *len, kv_err *err);

/* ---- range (kv_range.c) ---- */

typedef int (*kv_emit_fn)(void *ud, const uint8_t *kv, size_t len, const kv_rec *rec);

typedef struct kv_range_out {
    int64_t count;
    bool more;
    size_t kvs, kv_bytes;
} kv_range_out;

/* etcd's Range on a snapshot whose current revision is `cur_rev` (the header revision). */
int kv_range_run(kv_store *s, MDB_txn *txn, const Etcdserverpb__RangeRequest *req, int64_t cur_rev,
                 int64_t compact_rev, kv_emit_fn emit, void *ud, kv_range_out *out, kv_err *err);
/* Builds a RangeResponse in the arena (header: revision only unless `top`). */
int kv_range_build(kv_store *s, MDB_txn *txn, const Etcdserverpb__RangeRequest *req,
                   int64_t cur_rev, int64_t compact_rev, kv_arena *a, bool top,
                   Etcdserverpb__RangeResponse **out, kv_err *err);
Mvccpb__KeyValue *kv_arena_kv(kv_arena *a, const kv_rec *r, bool keys_only);
void *kv_arena_dup(kv_arena *a, const void *p, size_t n);

/* ---- meta (kv_store.c) ---- */
int kv_meta_put_state(kv_store *s, MDB_txn *txn, int64_t rev, int64_t compact_rev,
                      int64_t compact_finished, kv_err *err);
int kv_meta_get_state(kv_store *s, MDB_txn *txn, int64_t *rev, int64_t *compact_rev,
                      int64_t *compact_finished, kv_err *err);
int kv_read_begin(kv_store *s, MDB_txn **txn, int64_t *rev, int64_t *compact_rev, kv_err *err);

/* ---- writes (kv_write.c, kv_txn.c) ---- */

/* One change of a commit, kept for the commit callback (offsets into wctx.evbytes). */
typedef struct kv_evrec {
    int type;
    int64_t main, sub;
    size_t kv_off, kv_len, prev_off, prev_len;
    bool has_prev;
} kv_evrec;

/* The state of one kv_apply attempt. `rev` is the revision before the request being applied;
 * `changes` counts its changes so far (the next sub revision). `dirty` is set before the
 * request's first LMDB write: a failure after that point cannot be undone inside the LMDB txn,
 * so the whole attempt is replayed without the failing request. */
typedef struct kv_wctx {
    kv_store *s;
    MDB_txn *txn;
    int64_t rev, changes, compact_rev;
    bool dirty;
    kv_buf scratch;
    bool want_events;
    kv_buf evbytes;
    kv_evrec *evs;
    size_t n_evs, cap_evs;
    /* Lease writes of this attempt: applied to the in-memory lessor after the commit. */
    bool force_commit; /* lease records changed: commit even when no revision was taken */
    struct kv_lease_pend *lpend;
    size_t n_lpend, cap_lpend;
} kv_wctx;

int kv_exec_put(kv_wctx *w, const Etcdserverpb__PutRequest *req, kv_arena *a, bool top,
                Etcdserverpb__PutResponse **out, kv_err *err);
int kv_exec_delete(kv_wctx *w, const Etcdserverpb__DeleteRangeRequest *req, kv_arena *a, bool top,
                   Etcdserverpb__DeleteRangeResponse **out, kv_err *err);
int kv_exec_txn(kv_wctx *w, const Etcdserverpb__TxnRequest *req, kv_arena *a,
                Etcdserverpb__TxnResponse **out, kv_err *err);
/* etcd's checkPutRequest plus the key length limit. */
int kv_check_put(const Etcdserverpb__PutRequest *req, kv_err *err);
/* The lease checker, and ignore_value/ignore_lease needing an existing key (state of w); etcd
 * checks the lease first for a plain Put and last for a put inside a txn. */
int kv_check_put_state(kv_wctx *w, const Etcdserverpb__PutRequest *req, bool lease_first,
                       kv_err *err);

/* ---- leases (kv_lease.c) ---- */

/* Opens (creating when missing) "lease" and "lkeys" in the open txn and loads the lessor. */
int kv_lease_open(kv_store *s, MDB_txn *txn, const kv_options *opt, kv_err *err);
void kv_lease_close(kv_store *s);
/* 1 when the lease is granted in the state of txn, 0 not, <0 error (err set). */
int kv_lease_exists(kv_store *s, MDB_txn *txn, int64_t id, kv_err *err);
/* Moves `key` from lease `old` to lease `now` (either 0 = none) in "lkeys". A key is attached
 * only to a granted lease (unverified lease ids of a store without kv_options.leases are not). */
int kv_lease_track(kv_wctx *w, const uint8_t *key, size_t key_len, int64_t old, int64_t now,
                   kv_err *err);
/* Executes a kv_write whose op is a kv_lease_op's marker. */
int kv_exec_lease(kv_wctx *w, kv_write *wr);
/* After a durable commit: applies the attempt's lease writes to the in-memory lessor. */
void kv_lease_committed(kv_wctx *w);

#endif
