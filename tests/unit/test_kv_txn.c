/* test_kv_txn.c — the MVCC engine's txns through kv.h as etcd 3.4 defines them: compares on
 * every target and result, success/failure branches seeing their own writes, nesting and its
 * depth limit, the op count limit, duplicate keys across branches; and group commit (kv_apply)
 * isolating a failing member from the others. Fixture and builders: kv_fixture.h.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv.h"
#include "kv_fixture.h"
#include "testutil.h"

/* ---- txn ---- */

static Etcdserverpb__Compare *cmp_new(Etcdserverpb__Compare *c, const char *key, int target,
                                      int result) {
    etcdserverpb__compare__init(c);
    c->key = B(key);
    c->target = target;
    c->result = result;
    return c;
}

static bool cmp1(fx *f, Etcdserverpb__Compare *c) {
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_compare = 1;
    t.compare = &c;
    Etcdserverpb__TxnResponse *resp;
    kv_err e;
    assert_int_equal(kv_txn(f->s, &t, f->a, &resp, &e), KV_OK);
    return resp->succeeded;
}

static void test_txn_compares(void **state) {
    fx *f = *state;
    put_lease(f, "a", "va", 5); /* 2 */
    put(f, "a", "vb");          /* 3: a version 2, create 2, mod 3, lease 0 */
    put(f, "b", "x");           /* 4 */
    Etcdserverpb__Compare c;
    const Etcdserverpb__Compare__CompareResult EQ = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL,
                                               GT = ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER,
                                               LT = ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS,
                                               NE =
                                                   ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL;
    cmp_new(&c, "a", ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION, EQ);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
    c.version = 2;
    assert_true(cmp1(f, &c));
    c.result = GT;
    assert_false(cmp1(f, &c));
    c.result = LT;
    c.version = 3;
    assert_true(cmp1(f, &c));
    c.result = NE;
    assert_true(cmp1(f, &c));
    cmp_new(&c, "a", ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE, EQ);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
    c.create_revision = 2;
    assert_true(cmp1(f, &c));
    cmp_new(&c, "a", ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD, GT);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    c.mod_revision = 2;
    assert_true(cmp1(f, &c));
    cmp_new(&c, "a", ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE, EQ);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    c.value = B("vb");
    assert_true(cmp1(f, &c));
    c.result = LT;
    c.value = B("vc");
    assert_true(cmp1(f, &c));
    cmp_new(&c, "a", ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE, EQ);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
    c.lease = 0;
    assert_true(cmp1(f, &c));
    /* missing key: version/create/mod compare against 0, value always fails */
    cmp_new(&c, "missing", ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION, EQ);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
    c.version = 0;
    assert_true(cmp1(f, &c));
    cmp_new(&c, "missing", ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE, EQ);
    assert_true(cmp1(f, &c)); /* union unset = 0 */
    cmp_new(&c, "missing", ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD, LT);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    c.mod_revision = 1;
    assert_true(cmp1(f, &c));
    cmp_new(&c, "missing", ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE, NE);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    c.value = B("x");
    assert_false(cmp1(f, &c));
    /* range compare: every key must satisfy */
    cmp_new(&c, "a", ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD, GT);
    c.range_end = B("c");
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    c.mod_revision = 2;
    assert_true(cmp1(f, &c));
    c.mod_revision = 3;
    assert_false(cmp1(f, &c));
    c.range_end = FROM_KEY;
    c.mod_revision = 2;
    assert_true(cmp1(f, &c));
    assert_int_equal(cur_rev(f), 4); /* read-only txns take no revision */
}

static void test_txn_branches_and_own_writes(void **state) {
    fx *f = *state;
    put(f, "a", "1"); /* 2 */
    Etcdserverpb__Compare c, *cp = &c;
    cmp_new(&c, "a", ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE, 0);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    c.value = B("1");
    Etcdserverpb__RequestOp s0, s1, s2, s3, f0, *succ[4] = {&s0, &s1, &s2, &s3}, *fail[1] = {&f0};
    Etcdserverpb__PutRequest p0, p1, pf;
    Etcdserverpb__RangeRequest g0;
    Etcdserverpb__DeleteRangeRequest d0;
    op_put(&s0, &p0, "x", "X");
    op_put(&s1, &p1, "y", "Y");
    p1.prev_kv = true;
    op_get(&s2, &g0, "x");
    op_del(&s3, &d0, "a", (ProtobufCBinaryData){0, NULL});
    op_put(&f0, &pf, "failed", "F");
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_compare = 1;
    t.compare = &cp;
    t.n_success = 4;
    t.success = succ;
    t.n_failure = 1;
    t.failure = fail;
    Etcdserverpb__TxnResponse *resp;
    kv_err e;
    assert_int_equal(kv_txn(f->s, &t, f->a, &resp, &e), KV_OK);
    assert_true(resp->succeeded);
    assert_int_equal(resp->header->revision, 3);
    assert_int_equal(resp->header->cluster_id, 11);
    assert_int_equal(resp->n_responses, 4);
    assert_int_equal(resp->responses[0]->response_case,
                     ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT);
    assert_int_equal(resp->responses[0]->response_put->header->revision, 3);
    assert_null(resp->responses[1]->response_put->prev_kv);
    Etcdserverpb__RangeResponse *rr = resp->responses[2]->response_range;
    assert_int_equal(rr->n_kvs, 1); /* sees the txn's own put */
    assert_kv(rr->kvs[0], "x", "X", 3, 3, 1);
    assert_int_equal(rr->header->revision, 3);
    assert_int_equal(resp->responses[3]->response_delete_range->deleted, 1);
    evlog l;
    feed_all(f, 3, &l, false);
    assert_int_equal(l.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(l.main[i], 3);
        assert_int_equal(l.sub[i], i);
    }
    /* now a is gone: the failure branch runs */
    assert_int_equal(kv_txn(f->s, &t, f->a, &resp, &e), KV_OK);
    assert_false(resp->succeeded);
    assert_int_equal(resp->n_responses, 1);
    assert_int_equal(resp->header->revision, 4);
    assert_int_equal(get(f, "failed", 0)->n_kvs, 1);
    /* a txn whose chosen branch only reads takes no revision; its range reads the current one */
    Etcdserverpb__RequestOp r0, *ro[1] = {&r0};
    Etcdserverpb__RangeRequest g1;
    op_get(&r0, &g1, "x");
    Etcdserverpb__TxnRequest t2 = ETCDSERVERPB__TXN_REQUEST__INIT;
    t2.n_success = 1;
    t2.success = ro;
    assert_int_equal(kv_txn(f->s, &t2, f->a, &resp, &e), KV_OK);
    assert_int_equal(resp->header->revision, 4);
    assert_int_equal(cur_rev(f), 4);
    /* ranges inside a txn are checked against the revision before the txn */
    g1.revision = 5;
    assert_int_equal(kv_txn(f->s, &t2, f->a, &resp, &e), KV_ERR_FUTURE_REV);
    g1.revision = 2;
    assert_int_equal(kv_txn(f->s, &t2, f->a, &resp, &e), KV_OK);
    assert_int_equal(resp->responses[0]->response_range->n_kvs, 0); /* x did not exist at 2 */
    /* ignore_value inside a txn on a missing key */
    Etcdserverpb__RequestOp i0, *io[1] = {&i0};
    Etcdserverpb__PutRequest ip;
    op_put(&i0, &ip, "nokey", "");
    ip.ignore_value = true;
    Etcdserverpb__TxnRequest t3 = ETCDSERVERPB__TXN_REQUEST__INIT;
    t3.n_success = 1;
    t3.success = io;
    assert_int_equal(kv_txn(f->s, &t3, f->a, &resp, &e), KV_ERR_KEY_NOT_FOUND);
    /* an empty op inside a txn */
    Etcdserverpb__RequestOp empty = ETCDSERVERPB__REQUEST_OP__INIT, *eo[1] = {&empty};
    t3.success = eo;
    assert_int_equal(kv_txn(f->s, &t3, f->a, &resp, &e), KV_ERR_KEY_NOT_FOUND);
    assert_int_equal(cur_rev(f), 4);
}

/* Builds a chain of `depth` nested txns, the innermost putting "deep". */
static void test_txn_nesting_and_depth(void **state) {
    fx *f = *state;
    enum { N = KV_MAX_TXN_DEPTH + 1 };
    Etcdserverpb__TxnRequest t[N];
    Etcdserverpb__RequestOp ops[N], *opp[N];
    Etcdserverpb__PutRequest p;
    for (int depth = KV_MAX_TXN_DEPTH; depth <= N; depth++) {
        for (int i = 0; i < depth; i++) {
            etcdserverpb__txn_request__init(&t[i]);
            opp[i] = &ops[i];
            if (i + 1 < depth)
                op_txn(&ops[i], &t[i + 1]);
            else
                op_put(&ops[i], &p, "deep", "v");
            t[i].n_success = 1;
            t[i].success = &opp[i];
        }
        Etcdserverpb__TxnResponse *resp;
        kv_err e;
        int rc = kv_txn(f->s, &t[0], f->a, &resp, &e);
        if (depth <= KV_MAX_TXN_DEPTH) {
            assert_int_equal(rc, KV_OK);
            Etcdserverpb__TxnResponse *in = resp;
            for (int i = 1; i < depth; i++) {
                assert_int_equal(in->responses[0]->response_case,
                                 ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN);
                in = in->responses[0]->response_txn;
                assert_true(in->succeeded);
            }
            assert_int_equal(in->responses[0]->response_put->header->revision, 2);
        } else {
            assert_int_equal(rc, KV_ERR_TXN_TOO_DEEP);
            assert_int_equal(kv_code_grpc_status(rc), 3);
        }
    }
    assert_int_equal(cur_rev(f), 2);
    /* nested compares see the state before the txn, branches choose independently */
    Etcdserverpb__Compare c1, *c1p = &c1;
    cmp_new(&c1, "deep", ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION, 0);
    c1.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
    c1.version = 1;
    Etcdserverpb__TxnRequest inner = ETCDSERVERPB__TXN_REQUEST__INIT,
                             outer = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__RequestOp is, iff, os0, os1, *isp[1] = {&is}, *ifp[1] = {&iff},
                                               *osp[2] = {&os0, &os1};
    Etcdserverpb__PutRequest pis, pif, pos;
    op_put(&is, &pis, "inner-yes", "1");
    op_put(&iff, &pif, "inner-no", "1");
    inner.n_compare = 1;
    inner.compare = &c1p;
    inner.n_success = 1;
    inner.success = isp;
    inner.n_failure = 1;
    inner.failure = ifp;
    op_put(&os0, &pos, "deep", "v2"); /* makes version 2 before the inner txn runs */
    op_txn(&os1, &inner);
    outer.n_success = 2;
    outer.success = osp;
    Etcdserverpb__TxnResponse *resp;
    kv_err e;
    assert_int_equal(kv_txn(f->s, &outer, f->a, &resp, &e), KV_OK);
    assert_true(
        resp->responses[1]->response_txn->succeeded); /* compared version 1: pre-txn state */
    assert_int_equal(resp->responses[1]->response_txn->header->revision, 0);
    assert_int_equal(get(f, "inner-yes", 0)->n_kvs, 1);
    assert_int_equal(get(f, "inner-no", 0)->n_kvs, 0);
}

static void test_txn_too_many_ops(void **state) {
    fx *f = *state;
    enum { M = KV_MAX_TXN_OPS + 1 };
    static Etcdserverpb__RequestOp ops[M];
    static Etcdserverpb__PutRequest ps[M];
    static char keys[M][8];
    Etcdserverpb__RequestOp *opp[M];
    for (int i = 0; i < M; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%03d", i);
        op_put(&ops[i], &ps[i], keys[i], "v");
        opp[i] = &ops[i];
    }
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_success = M;
    t.success = opp;
    Etcdserverpb__TxnResponse *resp;
    kv_err e;
    assert_int_equal(kv_txn(f->s, &t, f->a, &resp, &e), KV_ERR_TOO_MANY_OPS);
    assert_string_equal(e.msg, "etcdserver: too many operations in txn request");
    t.n_success = KV_MAX_TXN_OPS;
    assert_int_equal(kv_txn(f->s, &t, f->a, &resp, &e), KV_OK);
    assert_int_equal(resp->header->revision, 2);
    /* compares count too */
    static Etcdserverpb__Compare cs[M];
    Etcdserverpb__Compare *cp[M];
    for (int i = 0; i < M; i++)
        cp[i] = cmp_new(&cs[i], "k000", 0, 0);
    Etcdserverpb__TxnRequest tc = ETCDSERVERPB__TXN_REQUEST__INIT;
    tc.n_compare = M;
    tc.compare = cp;
    assert_int_equal(kv_txn(f->s, &tc, f->a, &resp, &e), KV_ERR_TOO_MANY_OPS);
    /* a nested txn gets what its parent left: 100 ops + a txn with 29 ops */
    Etcdserverpb__TxnRequest inner = ETCDSERVERPB__TXN_REQUEST__INIT;
    inner.n_success = 29;
    inner.success = opp + 100;
    Etcdserverpb__RequestOp tx;
    op_txn(&tx, &inner);
    Etcdserverpb__RequestOp *outer_ops[100];
    for (int i = 0; i < 99; i++)
        outer_ops[i] = opp[i];
    outer_ops[99] = &tx;
    Etcdserverpb__TxnRequest outer = ETCDSERVERPB__TXN_REQUEST__INIT;
    outer.n_success = 100;
    outer.success = outer_ops;
    assert_int_equal(kv_txn(f->s, &outer, f->a, &resp, &e), KV_ERR_TOO_MANY_OPS);
    inner.n_success = 28;
    assert_int_equal(kv_txn(f->s, &outer, f->a, &resp, &e), KV_OK);
}

static int txn_rc(fx *f, Etcdserverpb__RequestOp **succ, size_t ns, Etcdserverpb__RequestOp **fail,
                  size_t nf) {
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_success = ns;
    t.success = succ;
    t.n_failure = nf;
    t.failure = fail;
    Etcdserverpb__TxnResponse *resp;
    kv_err e;
    int rc = kv_txn(f->s, &t, f->a, &resp, &e);
    if (rc == KV_ERR_DUPLICATE_KEY)
        assert_string_equal(e.msg, "etcdserver: duplicate key given in txn request");
    return rc;
}

static void test_txn_duplicate_keys(void **state) {
    fx *f = *state;
    Etcdserverpb__RequestOp a1, a2, d1, t1, t2;
    Etcdserverpb__PutRequest pa1, pa2, pi1, pi2;
    Etcdserverpb__DeleteRangeRequest dd;
    Etcdserverpb__RequestOp i1, i2;
    op_put(&a1, &pa1, "a", "1");
    op_put(&a2, &pa2, "a", "2");
    Etcdserverpb__RequestOp *two_puts[2] = {&a1, &a2};
    assert_int_equal(txn_rc(f, two_puts, 2, NULL, 0), KV_ERR_DUPLICATE_KEY);
    /* the same key in success and failure is fine */
    Etcdserverpb__RequestOp *s1[1] = {&a1}, *f1[1] = {&a2};
    assert_int_equal(txn_rc(f, s1, 1, f1, 1), KV_OK);
    /* put overlapping a delete range at the same level */
    op_del(&d1, &dd, "a", B("b"));
    Etcdserverpb__RequestOp *put_del[2] = {&d1, &a1};
    assert_int_equal(txn_rc(f, put_del, 2, NULL, 0), KV_ERR_DUPLICATE_KEY);
    /* a from-key delete ("\0") overlaps nothing in etcd 3.4's check */
    op_del(&d1, &dd, "a", FROM_KEY);
    assert_int_equal(txn_rc(f, put_del, 2, NULL, 0), KV_OK);
    /* nested: the parent's put against a child's put */
    Etcdserverpb__TxnRequest nt = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__RequestOp *nts[1] = {&i1}, *ntf[1] = {&i2};
    op_put(&i1, &pi1, "a", "then");
    op_put(&i2, &pi2, "a", "else");
    nt.n_success = 1;
    nt.success = nts;
    nt.n_failure = 1;
    nt.failure = ntf;
    op_txn(&t1, &nt);
    Etcdserverpb__RequestOp *parent_and_child[2] = {&a2, &t1};
    assert_int_equal(txn_rc(f, parent_and_child, 2, NULL, 0), KV_ERR_DUPLICATE_KEY);
    /* then/else of one child may put the same key */
    Etcdserverpb__RequestOp *child_only[1] = {&t1};
    assert_int_equal(txn_rc(f, child_only, 1, NULL, 0), KV_OK);
    /* two children putting the same key */
    Etcdserverpb__TxnRequest nt2 = nt;
    op_txn(&t2, &nt2);
    Etcdserverpb__RequestOp *two_children[2] = {&t1, &t2};
    assert_int_equal(txn_rc(f, two_children, 2, NULL, 0), KV_ERR_DUPLICATE_KEY);
    /* a child's delete against a later child's put, and against the parent's put */
    Etcdserverpb__TxnRequest dt = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__RequestOp dop, *dts[1] = {&dop};
    Etcdserverpb__DeleteRangeRequest ddd;
    op_del(&dop, &ddd, "a", (ProtobufCBinaryData){0, NULL});
    dt.n_success = 1;
    dt.success = dts;
    op_txn(&t2, &dt);
    Etcdserverpb__RequestOp *del_then_put[2] = {&t2, &t1};
    assert_int_equal(txn_rc(f, del_then_put, 2, NULL, 0), KV_ERR_DUPLICATE_KEY);
    Etcdserverpb__RequestOp *child_del_parent_put[2] = {&t2, &a1};
    assert_int_equal(txn_rc(f, child_del_parent_put, 2, NULL, 0), KV_ERR_DUPLICATE_KEY);
    /* ... but etcd lets an earlier child's put be deleted by a later child */
    Etcdserverpb__RequestOp *put_then_del[2] = {&t1, &t2};
    assert_int_equal(txn_rc(f, put_then_del, 2, NULL, 0), KV_OK);
    assert_int_equal(get(f, "a", 0)->n_kvs, 0);
}

/* ---- group commit ---- */

static void commit_cb(void *ud, const kv_event *ev, size_t n, int64_t revision) {
    evlog *l = ud;
    l->revs[l->commits++] = revision;
    for (size_t i = 0; i < n; i++)
        feed_collect(l, &ev[i]);
}

static void test_apply_group_isolation(void **state) {
    fx *f = *state;
    evlog l;
    memset(&l, 0, sizeof(l));
    kv_set_commit_cb(f->s, commit_cb, &l);
    put(f, "base", "0"); /* 2 */
    assert_int_equal(l.commits, 1);
    assert_int_equal(l.revs[0], 2);
    assert_int_equal(l.n, 1);
    assert_false(l.has_prev[0]);
    memset(&l, 0, sizeof(l));

    Etcdserverpb__RequestOp o0, o1, o2, o3, o4, o5;
    Etcdserverpb__PutRequest p0, p1, p3;
    Etcdserverpb__RangeRequest g4;
    op_put(&o0, &p0, "g1", "A");
    op_put(&o1, &p1, "g2", "B");
    p1.ignore_value = true; /* g2 does not exist: fails validation */
    p1.value = B("");
    /* a txn that fails after writing: from-key delete of "base".., then ignore_value put on
     * base: passes the pre-txn checks, fails when applied (etcd would panic) */
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__RequestOp to0, to1, *tops[2] = {&to0, &to1};
    Etcdserverpb__DeleteRangeRequest td;
    Etcdserverpb__PutRequest tp;
    op_del(&to0, &td, "base", FROM_KEY);
    op_put(&to1, &tp, "base", "");
    tp.ignore_value = true;
    t.n_success = 2;
    t.success = tops;
    op_txn(&o2, &t);
    op_put(&o3, &p3, "g1", "C");
    op_get(&o4, &g4, "g1");
    etcdserverpb__request_op__init(&o5); /* empty */
    kv_arena *ar[6];
    kv_write w[6];
    Etcdserverpb__RequestOp *ops[6] = {&o0, &o1, &o2, &o3, &o4, &o5};
    for (int i = 0; i < 6; i++) {
        ar[i] = kv_arena_new();
        memset(&w[i], 0, sizeof(w[i]));
        w[i].op = ops[i];
        w[i].arena = ar[i];
    }
    kv_err e;
    assert_int_equal(kv_apply(f->s, w, 6, &e), KV_OK);
    assert_int_equal(w[0].err.code, KV_OK);
    assert_int_equal(w[0].revision, 3);
    assert_int_equal(w[0].resp->response_put->header->revision, 3);
    assert_int_equal(w[1].err.code, KV_ERR_KEY_NOT_FOUND);
    assert_null(w[1].resp);
    assert_int_equal(w[2].err.code, KV_ERR_KEY_NOT_FOUND);
    assert_null(w[2].resp);
    assert_int_equal(w[3].err.code, KV_OK);
    assert_int_equal(w[3].revision, 4);
    assert_int_equal(w[4].err.code, KV_OK);
    assert_int_equal(w[4].revision, 4);
    assert_kv(w[4].resp->response_range->kvs[0], "g1", "C", 3, 4, 2);
    assert_int_equal(w[4].resp->response_range->header->revision, 4);
    assert_int_equal(w[5].err.code, KV_ERR_INVALID);
    /* the failed txn left no trace */
    assert_int_equal(get(f, "base", 0)->n_kvs, 1);
    assert_int_equal(cur_rev(f), 4);
    /* one commit with both events, prev_kv filled */
    assert_int_equal(l.commits, 1);
    assert_int_equal(l.revs[0], 4);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.key[0], "g1");
    assert_int_equal(l.main[0], 3);
    assert_false(l.has_prev[0]);
    assert_int_equal(l.main[1], 4);
    assert_true(l.has_prev[1]);
    assert_string_equal(l.prev_val[1], "A");
    /* a group where nothing changes commits nothing and calls nobody */
    kv_write r1 = {.op = &o4, .arena = ar[0]};
    assert_int_equal(kv_apply(f->s, &r1, 1, &e), KV_OK);
    assert_int_equal(l.commits, 1);
    for (int i = 0; i < 6; i++)
        kv_arena_free(ar[i]);
    kv_set_commit_cb(f->s, NULL, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_txn_compares, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_branches_and_own_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_nesting_and_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_too_many_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_duplicate_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_group_isolation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
