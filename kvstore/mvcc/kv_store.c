/* kv_store.c — opening and closing a store, its persistent meta record, status and errors.
 *
 * Opening refuses anything that is not ours before LMDB can touch it: a directory with foreign
 * files and no data.mdb, a data.mdb LMDB rejects, a data.mdb shorter than LMDB's own idea of it
 * (reading past the end of a mapped file would be SIGBUS, not an error), an LMDB environment
 * without our magic, or a different layout version. An environment with no databases at all is
 * a store whose creation was interrupted and is initialised again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kv_internal.h"

#define DEFAULT_MAP_SIZE ((size_t)8 << 30)

/* ---- errors ---- */

const char *kv_code_message(kv_code code) {
    switch (code) {
    case KV_OK:
        return "ok";
    case KV_ERR_COMPACTED:
        return "etcdserver: mvcc: required revision has been compacted";
    case KV_ERR_FUTURE_REV:
        return "etcdserver: mvcc: required revision is a future revision";
    case KV_ERR_EMPTY_KEY:
        return "etcdserver: key is not provided";
    case KV_ERR_TOO_MANY_OPS:
        return "etcdserver: too many operations in txn request";
    case KV_ERR_DUPLICATE_KEY:
        return "etcdserver: duplicate key given in txn request";
    case KV_ERR_LEASE_NOT_FOUND:
        return "etcdserver: requested lease not found";
    case KV_ERR_KEY_TOO_LONG:
        return "kvstore: key is too long (at most 511 bytes)";
    case KV_ERR_TXN_TOO_DEEP:
        return "kvstore: txn nested too deeply (at most 32 levels)";
    case KV_ERR_INVALID:
        return "kvstore: invalid request";
    case KV_ERR_NOMEM:
        return "kvstore: out of memory";
    case KV_ERR_NOSPACE:
        return "etcdserver: mvcc: database space exceeded";
    case KV_ERR_IO:
        return "kvstore: storage failure";
    case KV_ERR_NOT_A_STORE:
        return "kvstore: directory is not a kvstore";
    case KV_ERR_LAYOUT:
        return "kvstore: incompatible store layout version";
    case KV_ERR_CORRUPT:
        return "kvstore: store data is corrupt";
    case KV_ERR_KEY_NOT_FOUND:
        return "etcdserver: key not found";
    case KV_ERR_VALUE_PROVIDED:
        return "etcdserver: value is provided";
    case KV_ERR_LEASE_PROVIDED:
        return "etcdserver: lease is provided";
    case KV_ERR_LEASE_EXISTS:
        return "etcdserver: lease already exists";
    case KV_ERR_LEASE_TTL_TOO_LARGE:
        return "etcdserver: too large lease TTL";
    }
    return "kvstore: unknown error";
}

int kv_code_grpc_status(kv_code code) {
    switch (code) {
    case KV_OK:
        return 0;
    case KV_ERR_COMPACTED:
    case KV_ERR_FUTURE_REV:
    case KV_ERR_LEASE_TTL_TOO_LARGE:
        return 11; /* OUT_OF_RANGE */
    case KV_ERR_LEASE_NOT_FOUND:
        return 5;
    case KV_ERR_LEASE_EXISTS:
        return 9; /* FAILED_PRECONDITION */
    case KV_ERR_NOMEM:
    case KV_ERR_NOSPACE:
        return 8;
    case KV_ERR_IO:
    case KV_ERR_NOT_A_STORE:
    case KV_ERR_LAYOUT:
    case KV_ERR_CORRUPT:
        return 13;
    default:
        return 3; /* INVALID_ARGUMENT */
    }
}

int kv_seterr(kv_err *err, kv_code code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        if (fmt) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
            va_end(ap);
        } else {
            snprintf(err->msg, sizeof(err->msg), "%s", kv_code_message(code));
        }
    }
    return code;
}

int kv_mdb_err(kv_err *err, int rc, const char *what) {
    if (rc == MDB_MAP_FULL) return kv_seterr(err, KV_ERR_NOSPACE, NULL);
    if (rc == ENOMEM) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID)
        return kv_seterr(err, KV_ERR_CORRUPT, "kvstore: %s: %s", what, mdb_strerror(rc));
    return kv_seterr(err, KV_ERR_IO, "kvstore: %s: %s", what, mdb_strerror(rc));
}

/* ---- meta ---- */

static int meta_get(kv_store *s, MDB_txn *txn, const char *name, MDB_val *v) {
    MDB_val k = {strlen(name), (void *)name};
    return mdb_get(txn, s->meta, &k, v);
}

static int meta_put(kv_store *s, MDB_txn *txn, const char *name, const void *p, size_t n) {
    MDB_val k = {strlen(name), (void *)name}, v = {n, (void *)p};
    return mdb_put(txn, s->meta, &k, &v, 0);
}

int kv_meta_put_state(kv_store *s, MDB_txn *txn, int64_t rev, int64_t compact_rev,
                      int64_t compact_finished, kv_err *err) {
    uint8_t b[24];
    kv_u64_put(b, (uint64_t)rev);
    kv_u64_put(b + 8, (uint64_t)compact_rev);
    kv_u64_put(b + 16, (uint64_t)compact_finished);
    int rc = meta_put(s, txn, "state", b, sizeof(b));
    return rc ? kv_mdb_err(err, rc, "write state") : KV_OK;
}

int kv_meta_get_state(kv_store *s, MDB_txn *txn, int64_t *rev, int64_t *compact_rev,
                      int64_t *compact_finished, kv_err *err) {
    MDB_val v;
    int rc = meta_get(s, txn, "state", &v);
    if (rc) return kv_mdb_err(err, rc, "read state");
    if (v.mv_size != 24)
        return kv_seterr(err, KV_ERR_CORRUPT, "kvstore: state record has %zu bytes", v.mv_size);
    const uint8_t *b = v.mv_data;
    *rev = (int64_t)kv_u64_get(b);
    *compact_rev = (int64_t)kv_u64_get(b + 8);
    if (compact_finished) *compact_finished = (int64_t)kv_u64_get(b + 16);
    return KV_OK;
}

int kv_read_begin(kv_store *s, MDB_txn **txn, int64_t *rev, int64_t *compact_rev, kv_err *err) {
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    if (rc) return kv_mdb_err(err, rc, "begin read");
    int code = kv_meta_get_state(s, *txn, rev, compact_rev, NULL, err);
    if (code) {
        mdb_txn_abort(*txn);
        *txn = NULL;
    }
    return code;
}

/* ---- opening ---- */

static int mkdir_p(const char *dir) {
    char *p = strdup(dir);
    if (!p) return ENOMEM;
    int rc = 0;
    for (char *q = p + 1;; q++) {
        if (*q == '/' || *q == 0) {
            char c = *q;
            *q = 0;
            if (mkdir(p, 0755) && errno != EEXIST) {
                rc = errno;
                break;
            }
            *q = c;
            if (!c) break;
        }
    }
    free(p);
    return rc;
}

/* 1: data.mdb present, 0: empty (a new store), <0: foreign content (err set). */
static int inspect_dir(const char *dir, kv_err *err) {
    struct stat st;
    if (stat(dir, &st)) {
        if (errno != ENOENT)
            return -kv_seterr(err, KV_ERR_IO, "kvstore: %s: %s", dir, strerror(errno));
        int rc = mkdir_p(dir);
        if (rc)
            return -kv_seterr(err, KV_ERR_IO, "kvstore: cannot create %s: %s", dir, strerror(rc));
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return -kv_seterr(err, KV_ERR_NOT_A_STORE, "kvstore: %s is not a directory", dir);
    DIR *d = opendir(dir);
    if (!d) return -kv_seterr(err, KV_ERR_IO, "kvstore: cannot read %s: %s", dir, strerror(errno));
    bool data = false, foreign = false;
    char other[64] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "lock.mdb"))
            continue;
        if (kv_wal_is_own_file(e->d_name)) continue; /* kv_wal_prepare judges those */
        if (!strcmp(e->d_name, "data.mdb")) {
            data = true;
        } else if (!foreign) {
            foreign = true;
            snprintf(other, sizeof(other), "%.60s", e->d_name);
        }
    }
    closedir(d);
    if (data) return 1;
    if (foreign)
        return -kv_seterr(
            err, KV_ERR_NOT_A_STORE,
            "kvstore: %s is not a kvstore (it holds files such as '%s' but no data.mdb)", dir,
            other);
    return 0;
}

/* A data.mdb that is not an LMDB file at all is refused before LMDB maps it. */
static int check_data_file(const char *path, kv_err *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return kv_seterr(err, KV_ERR_IO, "kvstore: cannot open %s: %s", path, strerror(errno));
    struct stat st;
    uint8_t hdr[32];
    ssize_t n = fstat(fd, &st) ? -1 : pread(fd, hdr, sizeof(hdr), 0);
    close(fd);
    if (n < 0)
        return kv_seterr(err, KV_ERR_IO, "kvstore: cannot read %s: %s", path, strerror(errno));
    if (st.st_size == 0) return KV_OK; /* LMDB initialises an empty file */
    /* LMDB's first page is a meta page: 16-byte page header, then the magic 0xBEEFC0DE. */
    uint32_t magic = 0;
    if (n >= 20) memcpy(&magic, hdr + 16, 4);
    if (n < 20 || magic != 0xBEEFC0DEu)
        return kv_seterr(err, KV_ERR_CORRUPT, "kvstore: %s is not an LMDB data file (bad magic)",
                         path);
    return KV_OK;
}

static uint64_t random_id(void) {
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v)) v = 0;
        close(fd);
    }
    if (!v) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint64_t)ts.tv_nsec * 6364136223846793005ull ^ (uint64_t)ts.tv_sec ^
            (uint64_t)getpid();
    }
    return v ? v : 1;
}

static int open_dbis(kv_store *s, MDB_txn *txn, unsigned flags, kv_err *err) {
    int rc;
    if ((rc = mdb_dbi_open(txn, "meta", flags, &s->meta)) ||
        (rc = mdb_dbi_open(txn, "hist", flags, &s->hist)) ||
        (rc = mdb_dbi_open(txn, "cur", flags, &s->cur)) ||
        (rc = mdb_dbi_open(txn, "kidx", flags | MDB_DUPSORT | MDB_DUPFIXED, &s->kidx)))
        return kv_mdb_err(err, rc, "open databases");
    return KV_OK;
}

static int init_store(kv_store *s, MDB_txn *txn, const kv_options *opt, kv_err *err) {
    int code = open_dbis(s, txn, MDB_CREATE, err);
    if (code) return code;
    uint8_t layout[4], ids[16];
    kv_u64_put(ids, 0);
    layout[0] = layout[1] = layout[2] = 0;
    layout[3] = (uint8_t)KV_LAYOUT_VERSION;
    s->cluster_id = opt && opt->cluster_id ? opt->cluster_id : random_id();
    s->member_id = opt && opt->member_id ? opt->member_id : random_id();
    kv_u64_put(ids, s->cluster_id);
    kv_u64_put(ids + 8, s->member_id);
    int rc;
    if ((rc = meta_put(s, txn, "magic", KV_MAGIC, strlen(KV_MAGIC))) ||
        (rc = meta_put(s, txn, "layout", layout, 4)) || (rc = meta_put(s, txn, "ids", ids, 16)))
        return kv_mdb_err(err, rc, "initialise meta");
    return kv_meta_put_state(s, txn, 1, 0, 0, err);
}

/* Reads and checks the meta of an existing environment; 1 = empty environment (initialise). */
static int load_store(kv_store *s, MDB_txn *txn, const char *dir, kv_err *err) {
    MDB_stat ms;
    MDB_dbi main_dbi;
    int rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
    if (!rc) rc = mdb_stat(txn, main_dbi, &ms);
    if (rc) return -kv_mdb_err(err, rc, "read main database");
    if (ms.ms_entries == 0) return 1;
    rc = mdb_dbi_open(txn, "meta", 0, &s->meta);
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
        return -kv_seterr(err, KV_ERR_NOT_A_STORE,
                          "kvstore: %s holds an LMDB database that is not a kvstore", dir);
    if (rc) return -kv_mdb_err(err, rc, "open meta");
    MDB_val v;
    rc = meta_get(s, txn, "magic", &v);
    if (rc || v.mv_size != strlen(KV_MAGIC) || memcmp(v.mv_data, KV_MAGIC, v.mv_size))
        return -kv_seterr(err, KV_ERR_NOT_A_STORE,
                          "kvstore: %s holds an LMDB database without kvstore meta", dir);
    rc = meta_get(s, txn, "layout", &v);
    if (rc || v.mv_size != 4)
        return -kv_seterr(err, KV_ERR_CORRUPT, "kvstore: %s: layout record missing", dir);
    const uint8_t *l = v.mv_data;
    uint32_t layout = (uint32_t)l[0] << 24 | (uint32_t)l[1] << 16 | (uint32_t)l[2] << 8 | l[3];
    if (layout != KV_LAYOUT_VERSION)
        return -kv_seterr(
            err, KV_ERR_LAYOUT,
            "kvstore: %s was written with layout version %u; this build reads version %u", dir,
            layout, KV_LAYOUT_VERSION);
    rc = meta_get(s, txn, "ids", &v);
    if (rc || v.mv_size != 16)
        return -kv_seterr(err, KV_ERR_CORRUPT, "kvstore: %s: ids record missing", dir);
    s->cluster_id = kv_u64_get(v.mv_data);
    s->member_id = kv_u64_get((const uint8_t *)v.mv_data + 8);
    int code = open_dbis(s, txn, 0, err);
    if (code) return -code;
    int64_t rev, crev, cfin;
    code = kv_meta_get_state(s, txn, &rev, &crev, &cfin, err);
    if (code) return -code;
    s->rev = rev;
    s->compact_rev = crev;
    s->compact_finished = cfin;
    return 0;
}

int kv_open(const char *dir, const kv_options *opt, kv_store **out, kv_err *err) {
    *out = NULL;
    if (err) err->code = KV_OK, err->msg[0] = 0;
    int have = inspect_dir(dir, err);
    if (have < 0) return -have;
    kv_store *s = calloc(1, sizeof(*s));
    if (!s) return kv_seterr(err, KV_ERR_NOMEM, NULL);
    size_t plen = strlen(dir) + 16;
    s->path = malloc(plen);
    if (!s->path) {
        free(s);
        return kv_seterr(err, KV_ERR_NOMEM, NULL);
    }
    snprintf(s->path, plen, "%s/data.mdb", dir);
    MDB_txn *txn = NULL;
    int rc;
    kv_ckpt ckpt = {0};
    s->no_sync = opt && opt->no_sync;
    /* Before LMDB reads its meta pages: put back the checkpoint's if later commits may be torn. */
    int code = kv_wal_prepare(dir, s->path, have, &ckpt, err);
    if (!code && have) code = check_data_file(s->path, err);
    if (code) goto fail;
    if ((rc = mdb_env_create(&s->env)) || (rc = mdb_env_set_maxdbs(s->env, 8)) ||
        (rc = mdb_env_set_maxreaders(s->env, 512)) ||
        (rc = mdb_env_set_mapsize(s->env,
                                  opt && opt->map_size ? opt->map_size : DEFAULT_MAP_SIZE))) {
        code = kv_mdb_err(err, rc, "create environment");
        goto fail;
    }
    /* Never LMDB's own flushes: the write-ahead log makes commits durable (kv_checkpoint.c). */
    unsigned flags =
        MDB_NOTLS | MDB_NORDAHEAD | MDB_NOSYNC | (getenv("KV_WRITEMAP") ? MDB_WRITEMAP : 0);
    rc = mdb_env_open(s->env, dir, flags, 0644);
    if (rc) {
        if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
            code = kv_seterr(err, rc == MDB_INVALID ? KV_ERR_CORRUPT : KV_ERR_LAYOUT,
                             "kvstore: %s/data.mdb: %s", dir, mdb_strerror(rc));
        else
            code = kv_mdb_err(err, rc, "open environment");
        goto fail;
    }
    int dead;
    mdb_reader_check(s->env, &dead); /* reader slots of crashed processes */
    /* LMDB trusts its meta page about the file length; a truncated file would fault. */
    MDB_envinfo info;
    struct stat st;
    mdb_env_info(s->env, &info);
    unsigned psize = 4096;
    MDB_stat est;
    if (!mdb_env_stat(s->env, &est)) psize = est.ms_psize;
    if (stat(s->path, &st) == 0 &&
        (uint64_t)st.st_size < ((uint64_t)info.me_last_pgno + 1) * psize) {
        code = kv_seterr(err, KV_ERR_CORRUPT,
                         "kvstore: %s is truncated (%lld bytes, LMDB expects %llu)", s->path,
                         (long long)st.st_size,
                         (unsigned long long)((info.me_last_pgno + 1) * (uint64_t)psize));
        goto fail;
    }
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn))) {
        code = kv_mdb_err(err, rc, "begin");
        goto fail;
    }
    int st_load = load_store(s, txn, dir, err);
    if (st_load < 0) {
        code = -st_load;
        goto fail;
    }
    if (st_load == 1) {
        if ((code = init_store(s, txn, opt, err))) goto fail;
        s->rev = 1;
    }
    if ((code = kv_lease_open(s, txn, opt, err))) goto fail;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) {
        code = kv_mdb_err(err, rc, "commit");
        goto fail;
    }
    /* With no_sync only to replay a log a durable run left (then the log is retired). */
    if ((!s->no_sync || ckpt.metas) && (code = kv_wal_start(s, dir, &ckpt, opt, err))) goto fail;
    free(ckpt.metas);
    *out = s;
    return KV_OK;
fail:
    free(ckpt.metas);
    if (txn) mdb_txn_abort(txn);
    kv_wal_close(s, false);
    kv_lease_close(s);
    if (s->env) mdb_env_close(s->env);
    free(s->path);
    free(s);
    return code;
}

static void close_store(kv_store *s, bool clean) {
    if (!s) return;
    kv_wal_close(s, clean);
    kv_lease_close(s);
    mdb_env_close(s->env);
    free(s->path);
    free(s);
}

void kv_close(kv_store *s) {
    close_store(s, true);
}

void kv_close_unclean(kv_store *s) {
    close_store(s, false);
}

void kv_set_lease_checker(kv_store *s, kv_lease_exists_fn fn, void *ud) {
    s->lease_fn = fn;
    s->lease_ud = ud;
}

void kv_set_commit_cb(kv_store *s, kv_commit_fn fn, void *ud) {
    s->commit_fn = fn;
    s->commit_ud = ud;
}

void kv_set_disk_observer(kv_store *s, kv_disk_fn fn, void *ud) {
    s->disk_fn = fn;
    s->disk_ud = ud;
}

void kv_fill_header(kv_store *s, Etcdserverpb__ResponseHeader *h, int64_t revision) {
    h->cluster_id = s->cluster_id;
    h->member_id = s->member_id;
    h->revision = revision;
    h->raft_term = 1;
}

static int64_t free_pages(MDB_txn *txn) {
    MDB_cursor *c;
    if (mdb_cursor_open(txn, 0, &c)) return 0;
    int64_t n = 0;
    MDB_val k, v;
    while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0) {
        if (v.mv_size >= sizeof(size_t)) {
            size_t cnt;
            memcpy(&cnt, v.mv_data, sizeof(cnt));
            n += (int64_t)cnt;
        }
    }
    mdb_cursor_close(c);
    return n;
}

void kv_status_get(kv_store *s, kv_status *st) {
    memset(st, 0, sizeof(*st));
    st->revision = atomic_load(&s->rev);
    st->compact_revision = atomic_load(&s->compact_rev);
    st->compact_finished = atomic_load(&s->compact_finished);
    st->cluster_id = s->cluster_id;
    st->member_id = s->member_id;
    st->wal_replayed = s->wal ? (int64_t)s->wal->replayed : 0;
    struct stat fst;
    if (stat(s->path, &fst) == 0) st->db_size = fst.st_size;
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) return;
    MDB_stat ms;
    if (!mdb_stat(txn, s->cur, &ms)) st->keys = (int64_t)ms.ms_entries;
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    int64_t used = (int64_t)info.me_last_pgno + 1 - free_pages(txn);
    st->db_size_in_use = used * (int64_t)(mdb_env_stat(s->env, &ms) ? 4096 : ms.ms_psize);
    mdb_txn_abort(txn);
}
