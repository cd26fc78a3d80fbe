/* test_srv_kv.c — `kvstore serve` end to end, the functional side: every KV method and
 * Maintenance.Status through the project's own gRPC client (server in-process, see
 * srv_harness.h), restart persistence, /metrics moving, and the `kvstore` binary's flags, ready
 * line and exit codes. Limits and hostile input are in test_srv_limits.c. */
#include "srv_harness.h"

#include <libgen.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ================================================================ unary calls */

static void test_kv_unary(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    int64_t r1 = put(c, "/a/1", "one");
    int64_t r2 = put(c, "/a/2", "two");
    put(c, "/a/3", "three");
    put(c, "/b/1", "bee");
    assert_int_equal(r2, r1 + 1);

    /* Put with prev_kv */
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd("/a/1");
    p.value = bd("uno");
    p.prev_kv = 1;
    result r = {0};
    assert_int_equal(call(c, P_PUT, &p.base, &r), 0);
    Etcdserverpb__PutResponse *pr = etcdserverpb__put_response__unpack(NULL, r.len, r.data);
    assert_non_null(pr->prev_kv);
    assert_true(kv_is(pr->prev_kv, "/a/1", "one"));
    int64_t r5 = pr->header->revision;
    etcdserverpb__put_response__free_unpacked(pr, NULL);

    /* single key */
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("/a/1");
    Etcdserverpb__RangeResponse *rr = range(c, &q);
    assert_int_equal(rr->n_kvs, 1);
    assert_true(kv_is(rr->kvs[0], "/a/1", "uno"));
    assert_int_equal(rr->kvs[0]->version, 2);
    assert_int_equal(rr->kvs[0]->create_revision, r1);
    assert_int_equal(rr->kvs[0]->mod_revision, r5);
    assert_int_equal(rr->header->revision, r5);
    assert_int_equal(rr->count, 1);
    etcdserverpb__range_response__free_unpacked(rr, NULL);

    /* prefix */
    q.range_end = bd("/a0");
    q.key = bd("/a/");
    rr = range(c, &q);
    assert_int_equal(rr->n_kvs, 3);
    assert_true(kv_is(rr->kvs[0], "/a/1", "uno"));
    assert_true(kv_is(rr->kvs[2], "/a/3", "three"));
    assert_int_equal(rr->count, 3);
    assert_false(rr->more);
    etcdserverpb__range_response__free_unpacked(rr, NULL);

    /* limit: more + count of all */
    q.limit = 2;
    rr = range(c, &q);
    assert_int_equal(rr->n_kvs, 2);
    assert_true(rr->more);
    assert_int_equal(rr->count, 3);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    q.limit = 0;

    /* historical revision */
    q.revision = r1;
    rr = range(c, &q);
    assert_int_equal(rr->n_kvs, 1);
    assert_true(kv_is(rr->kvs[0], "/a/1", "one"));
    assert_int_equal(rr->header->revision, r5);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    q.revision = 0;

    /* sort descending by key */
    q.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    rr = range(c, &q);
    assert_int_equal(rr->n_kvs, 3);
    assert_true(kv_is(rr->kvs[0], "/a/3", NULL));
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    q.sort_order = 0;

    /* keys_only, count_only, from-key */
    q.keys_only = 1;
    rr = range(c, &q);
    assert_int_equal(rr->n_kvs, 3);
    assert_int_equal(rr->kvs[0]->value.len, 0);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    q.keys_only = 0;
    q.count_only = 1;
    rr = range(c, &q);
    assert_int_equal(rr->n_kvs, 0);
    assert_int_equal(rr->count, 3);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    q.count_only = 0;
    q.range_end = (ProtobufCBinaryData){1, (uint8_t *)"\0"};
    rr = range(c, &q);
    assert_int_equal(rr->n_kvs, 4);
    etcdserverpb__range_response__free_unpacked(rr, NULL);

    /* DeleteRange with prev_kv */
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    d.key = bd("/a/2");
    d.range_end = bd("/a/4");
    d.prev_kv = 1;
    assert_int_equal(call(c, P_DEL, &d.base, &r), 0);
    Etcdserverpb__DeleteRangeResponse *dr =
        etcdserverpb__delete_range_response__unpack(NULL, r.len, r.data);
    assert_int_equal(dr->deleted, 2);
    assert_int_equal(dr->n_prev_kvs, 2);
    assert_true(kv_is(dr->prev_kvs[0], "/a/2", "two"));
    assert_int_equal(dr->header->revision, r5 + 1);
    etcdserverpb__delete_range_response__free_unpacked(dr, NULL);
    free(r.data);
    cli_free(c);
    srv_stop(h, false);
}

static void test_txn_compact_status(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    put(c, "k", "v1");

    /* compare value == v1 -> success: put k=v2 + range k */
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    cmp.key = bd("k");
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    cmp.value = bd("v1");
    Etcdserverpb__Compare *cmps[] = {&cmp};
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = bd("k");
    p.value = bd("v2");
    Etcdserverpb__RequestOp op_put = ETCDSERVERPB__REQUEST_OP__INIT;
    op_put.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op_put.request_put = &p;
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("k");
    Etcdserverpb__RequestOp op_get = ETCDSERVERPB__REQUEST_OP__INIT;
    op_get.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    op_get.request_range = &q;
    Etcdserverpb__RequestOp *succ[] = {&op_put, &op_get}, *fail_ops[] = {&op_get};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_compare = 1;
    t.compare = cmps;
    t.n_success = 2;
    t.success = succ;
    t.n_failure = 1;
    t.failure = fail_ops;
    Etcdserverpb__TxnResponse *tr = txn(c, &t);
    assert_true(tr->succeeded);
    assert_int_equal(tr->n_responses, 2);
    assert_int_equal(tr->responses[1]->response_case,
                     ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE);
    assert_true(kv_is(tr->responses[1]->response_range->kvs[0], "k", "v2"));
    int64_t rev = tr->header->revision;
    etcdserverpb__txn_response__free_unpacked(tr, NULL);

    /* same txn again: compare fails -> failure branch (read only, no new revision) */
    tr = txn(c, &t);
    assert_false(tr->succeeded);
    assert_int_equal(tr->n_responses, 1);
    assert_int_equal(tr->header->revision, rev);
    etcdserverpb__txn_response__free_unpacked(tr, NULL);

    /* nested: txn { success: [ txn { success: [put n=1] } ] } */
    Etcdserverpb__PutRequest pn = ETCDSERVERPB__PUT_REQUEST__INIT;
    pn.key = bd("n");
    pn.value = bd("1");
    Etcdserverpb__RequestOp op_pn = ETCDSERVERPB__REQUEST_OP__INIT;
    op_pn.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op_pn.request_put = &pn;
    Etcdserverpb__RequestOp *in_ops[] = {&op_pn};
    Etcdserverpb__TxnRequest inner = ETCDSERVERPB__TXN_REQUEST__INIT;
    inner.n_success = 1;
    inner.success = in_ops;
    Etcdserverpb__RequestOp op_in = ETCDSERVERPB__REQUEST_OP__INIT;
    op_in.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    op_in.request_txn = &inner;
    Etcdserverpb__RequestOp *out_ops[] = {&op_in};
    Etcdserverpb__TxnRequest outer = ETCDSERVERPB__TXN_REQUEST__INIT;
    outer.n_success = 1;
    outer.success = out_ops;
    tr = txn(c, &outer);
    assert_true(tr->succeeded);
    assert_int_equal(tr->responses[0]->response_case,
                     ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN);
    assert_int_equal(tr->header->revision, rev + 1);
    etcdserverpb__txn_response__free_unpacked(tr, NULL);

    /* history for compaction: 50 more revisions of k */
    int64_t last = 0;
    for (int i = 0; i < 50; i++)
        last = put(c, "k", i % 2 ? "a" : "b");
    Etcdserverpb__CompactionRequest cr = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    cr.revision = rev;
    result r = {0};
    assert_int_equal(call(c, P_COMPACT, &cr.base, &r), 0);
    Etcdserverpb__CompactionResponse *cres =
        etcdserverpb__compaction_response__unpack(NULL, r.len, r.data);
    assert_non_null(cres->header);
    assert_int_equal(cres->header->revision, last);
    etcdserverpb__compaction_response__free_unpacked(cres, NULL);
    /* physical: answered only after the removal finished */
    cr.revision = last - 1;
    cr.physical = 1;
    assert_int_equal(call(c, P_COMPACT, &cr.base, &r), 0);
    kvs_server_stats ks;
    run_on_server(h, get_kvs_stats, &ks);
    assert_true(ks.compact_steps >= 1);
    /* reads below the compaction fail with etcd's error, at it they work */
    q.revision = last - 2;
    expect_error(c, P_RANGE, &q.base, GRPC_STATUS_OUT_OF_RANGE,
                 "etcdserver: mvcc: required revision has been compacted");
    q.revision = last - 1;
    Etcdserverpb__RangeResponse *rr = range(c, &q);
    assert_int_equal(rr->n_kvs, 1);
    etcdserverpb__range_response__free_unpacked(rr, NULL);

    /* Status */
    Etcdserverpb__StatusRequest sreq = ETCDSERVERPB__STATUS_REQUEST__INIT;
    assert_int_equal(call(c, P_STATUS, &sreq.base, &r), 0);
    Etcdserverpb__StatusResponse *sr = etcdserverpb__status_response__unpack(NULL, r.len, r.data);
    assert_string_equal(sr->version, KVS_ETCD_VERSION);
    assert_int_equal(sr->raftterm, 1);
    assert_int_equal((int64_t)sr->raftindex, last);
    assert_int_equal((int64_t)sr->raftappliedindex, last);
    assert_int_equal(sr->leader, sr->header->member_id);
    assert_int_equal(sr->header->revision, last);
    assert_true(sr->dbsize > 0 && sr->dbsizeinuse > 0 && sr->dbsizeinuse <= sr->dbsize);
    etcdserverpb__status_response__free_unpacked(sr, NULL);
    free(r.data);
    cli_free(c);
    srv_stop(h, false);
}

/* ================================================================ restart */

static void test_restart_persistence(void **state) {
    (void)state;
    kvs_server_opts o;
    memset(&o, 0, sizeof o);
    srvh *h = srv_start_opts(NULL, &o);
    cli *c = cli_new(h->port);
    put(c, "p", "1");
    int64_t rev = put(c, "p", "2");
    Etcdserverpb__CompactionRequest cr = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    cr.revision = rev;
    result r = {0};
    assert_int_equal(call(c, P_COMPACT, &cr.base, &r), 0);
    free(r.data);
    cli_free(c);
    /* a durable store reports its log flushes under etcd's metric name */
    char *m = http_get(h->port, "/metrics");
    assert_non_null(m);
    const char *fs = strstr(m, "\netcd_disk_wal_fsync_duration_seconds_count ");
    assert_non_null(fs);
    assert_true(strtol(fs + strlen("\netcd_disk_wal_fsync_duration_seconds_count "), NULL, 10) >=
                3);
    assert_non_null(strstr(m, "\netcd_disk_backend_commit_duration_seconds_count "));
    free(m);
    char *dir = srv_stop(h, true);

    h = srv_start_opts(dir, &o);
    free(dir);
    c = cli_new(h->port);
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("p");
    Etcdserverpb__RangeResponse *rr = range(c, &q);
    assert_int_equal(rr->n_kvs, 1);
    assert_true(kv_is(rr->kvs[0], "p", "2"));
    assert_int_equal(rr->header->revision, rev);
    etcdserverpb__range_response__free_unpacked(rr, NULL);
    q.revision = rev - 1;
    expect_error(c, P_RANGE, &q.base, GRPC_STATUS_OUT_OF_RANGE,
                 "etcdserver: mvcc: required revision has been compacted");
    assert_int_equal(put(c, "p", "3"), rev + 1);
    cli_free(c);
    srv_stop(h, false);
}

/* Shutdown with writes in flight: each Put the client saw succeed is in the store after restart
 * (the writer drains its queue before LMDB closes); the rest fail cleanly, none hangs. */
typedef struct inflight {
    int done, ok, want;
    bool all;
    int64_t *rev; /* per put: revision when OK, else 0 */
} inflight;

typedef struct inflight_op {
    inflight *f;
    int i;
} inflight_op;

static void on_inflight(void *ud, int status, const char *message, const uint8_t *resp,
                        size_t len) {
    (void)message;
    inflight_op *o = ud;
    inflight *f = o->f;
    if (status == 0) {
        Etcdserverpb__PutResponse *pr = etcdserverpb__put_response__unpack(NULL, len, resp);
        assert_non_null(pr);
        f->rev[o->i] = pr->header->revision;
        etcdserverpb__put_response__free_unpacked(pr, NULL);
        f->ok++;
    }
    if (++f->done == f->want) f->all = true;
}

static void test_shutdown_inflight(void **state) {
    (void)state;
    kvs_server_opts o;
    memset(&o, 0, sizeof o); /* durable */
    srvh *h = srv_start_opts(NULL, &o);
    cli *c = cli_new(h->port);
    put(c, "first", "1");
    enum { N = 200 };
    inflight f = {0, 0, N, false, calloc(N, sizeof(int64_t))};
    inflight_op ops[N];
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "/s/%03d", i);
        Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
        p.key = bd(key);
        p.value = bd("v");
        uint8_t buf[64];
        size_t n = etcdserverpb__put_request__pack(&p, buf);
        ops[i] = (inflight_op){&f, i};
        assert_int_equal(grpc_client_unary(c->c, P_PUT, buf, n, 20000, on_inflight, &ops[i]), 0);
    }
    uv_run(&c->loop, UV_RUN_NOWAIT); /* the requests leave */
    srv_stop_begin(h);
    assert_true(run_until(&c->loop, &f.all, 20000));
    cli_free(c);
    char *dir = srv_stop(h, true);
    print_message("shutdown with %d puts in flight: %d acknowledged\n", N, f.ok);

    h = srv_start_opts(dir, &o);
    free(dir);
    c = cli_new(h->port);
    for (int i = 0; i < N; i++) {
        if (!f.rev[i]) continue;
        char key[32];
        snprintf(key, sizeof key, "/s/%03d", i);
        Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
        q.key = bd(key);
        Etcdserverpb__RangeResponse *rr = range(c, &q);
        assert_int_equal(rr->n_kvs, 1);
        assert_int_equal(rr->kvs[0]->mod_revision, f.rev[i]);
        etcdserverpb__range_response__free_unpacked(rr, NULL);
    }
    free(f.rev);
    cli_free(c);
    srv_stop(h, false);
}

/* ================================================================ /metrics */

static void test_metrics_http(void **state) {
    (void)state;
    srvh *h = srv_start();
    cli *c = cli_new(h->port);
    put(c, "m", "1");
    char *t1 = http_get(h->port, "/metrics");
    assert_non_null(strstr(t1, "200 OK"));
    const char *handled = "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\","
                          "grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} ";
    assert_int_equal(metric(t1, "etcd_mvcc_put_total "), 1);
    assert_int_equal(metric(t1, handled), 1);
    put(c, "m", "2");
    put(c, "m", "3");
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key = bd("m");
    etcdserverpb__range_response__free_unpacked(range(c, &q), NULL);
    char *t2 = http_get(h->port, "/metrics");
    assert_int_equal(metric(t2, "etcd_mvcc_put_total "), 3);
    assert_int_equal(metric(t2, handled), 3);
    assert_int_equal(metric(t2, "etcd_debugging_mvcc_current_revision "), 4);
    assert_true(metric(t2, "relistlab_range_requests_total{kind=\"get\"} ") >= 1);
    assert_non_null(strstr(t2, "relistlab_client_requests_total{"));
    char *hv = http_get(h->port, "/health");
    assert_non_null(strstr(hv, "{\"health\":\"true\"}"));
    char *vv = http_get(h->port, "/version");
    assert_non_null(strstr(vv, KVS_ETCD_VERSION));
    free(t1);
    free(t2);
    free(hv);
    free(vv);
    cli_free(c);
    srv_stop(h, false);
}

/* ================================================================ the binary */

static char *kvstore_path(void) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return NULL;
    self[n] = 0;
    char *p = malloc(strlen(self) + 32);
    sprintf(p, "%s/../kvstore", dirname(self));
    if (access(p, X_OK) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

/* Spawns kvstore with args; returns pid, stdout/stderr read ends. */
static pid_t spawn(const char *bin, char *const argv[], int *out_fd, int *err_fd) {
    int o[2], e[2];
    assert_int_equal(pipe(o), 0);
    assert_int_equal(pipe(e), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(o[1], 1);
        dup2(e[1], 2);
        close(o[0]), close(e[0]), close(o[1]), close(e[1]);
        execv(bin, argv);
        _exit(127);
    }
    close(o[1]);
    close(e[1]);
    *out_fd = o[0];
    *err_fd = e[0];
    return pid;
}

static size_t read_some(int fd, char *buf, size_t cap, int timeout_ms) {
    size_t len = 0;
    while (len + 1 < cap) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, timeout_ms) <= 0) break;
        ssize_t k = read(fd, buf + len, cap - len - 1);
        if (k <= 0) break;
        len += (size_t)k;
        if (memchr(buf, '\n', len)) break;
    }
    buf[len] = 0;
    return len;
}

static int wait_exit(pid_t pid) {
    int st = 0;
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static void test_binary(void **state) {
    (void)state;
    char *bin = kvstore_path();
    if (!bin) {
        print_message("SKIP: kvstore binary not built next to the tests\n");
        skip();
    }
    char *dir = tu_mkdtemp("srv-bin");
    char data[512], foreign[512], ebuf[1024], obuf[1024];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(foreign, sizeof foreign, "%s/foreign", dir);
    mkdir(foreign, 0700);
    char fpath[600];
    snprintf(fpath, sizeof fpath, "%s/notes.txt", foreign);
    FILE *f = fopen(fpath, "w");
    fputs("not a store\n", f);
    fclose(f);
    int of, ef;

    /* bad flag */
    char *a1[] = {bin, "serve", "--no-such-flag", NULL};
    pid_t pid = spawn(bin, a1, &of, &ef);
    read_some(ef, ebuf, sizeof ebuf, 5000);
    assert_int_equal(wait_exit(pid), 1);
    assert_non_null(strstr(ebuf, "unknown flag"));
    close(of), close(ef);

    /* foreign data dir */
    char *a2[] = {bin, "serve", "--data-dir", foreign, "--listen", "127.0.0.1:0", NULL};
    pid = spawn(bin, a2, &of, &ef);
    read_some(ef, ebuf, sizeof ebuf, 5000);
    assert_int_equal(wait_exit(pid), 1);
    assert_non_null(strstr(ebuf, "kvstore:"));
    close(of), close(ef);

    /* serve, ready line, a put, SIGTERM -> exit 0 */
    char *a3[] = {bin, "serve", "--data-dir", data, "--listen-client-urls", "http://127.0.0.1:0",
                  NULL};
    pid = spawn(bin, a3, &of, &ef);
    read_some(of, obuf, sizeof obuf, 10000);
    const char *at = strstr(obuf, "serving etcd v3 API on 127.0.0.1:");
    assert_non_null(at);
    int port = atoi(at + strlen("serving etcd v3 API on 127.0.0.1:"));
    assert_true(port > 0);
    cli *c = cli_new(port);
    put(c, "bin", "ok");
    cli_free(c);
    /* a second server on the same data dir is refused */
    int of2, ef2;
    char *a5[] = {bin, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", NULL};
    pid_t pid2 = spawn(bin, a5, &of2, &ef2);
    read_some(ef2, ebuf, sizeof ebuf, 5000);
    assert_int_equal(wait_exit(pid2), 1);
    assert_non_null(strstr(ebuf, "in use"));
    close(of2), close(ef2);
    kill(pid, SIGTERM);
    assert_int_equal(wait_exit(pid), 0);
    close(of), close(ef);

    /* help teaches */
    char *a4[] = {bin, "serve", "--help", NULL};
    pid = spawn(bin, a4, &of, &ef);
    read_some(of, obuf, sizeof obuf, 5000);
    assert_int_equal(wait_exit(pid), 0);
    assert_non_null(strstr(obuf, "etcd v3 API"));
    close(of), close(ef);
    free(bin);
    tu_rmtree(dir);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_unary),
        cmocka_unit_test(test_txn_compact_status),
        cmocka_unit_test(test_restart_persistence),
        cmocka_unit_test(test_shutdown_inflight),
        cmocka_unit_test(test_metrics_http),
        cmocka_unit_test(test_binary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
