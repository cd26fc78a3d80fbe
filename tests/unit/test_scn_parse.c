/* test_scn_parse.c — the scenario script parser: every statement, defaults, error positions
 * (line:col and what was expected), --set overrides and `short`, the canonical text, and the
 * scripts shipped in scenarios/ (each must parse, with and without its short variant). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scn.h"

static int parse(const char *text, scn_script *s, scn_errors *e) {
    memset(e, 0, sizeof *e);
    return scn_parse(text, strlen(text), "t.scn", s, e);
}

/* Parses text that must fail and checks the first error's position and message part. */
static void expect_error(const char *text, int line, int col, const char *part) {
    scn_script s;
    scn_errors e;
    int rc = parse(text, &s, &e);
    char buf[4096];
    scn_errors_format(&e, buf, sizeof buf);
    if (rc == 0 || e.n == 0 || e.items[0].loc.line != line || e.items[0].loc.col != col ||
        !strstr(e.items[0].msg, part)) {
        fprintf(stderr, "script:\n%s\nwanted %d:%d '%s', got:\n%s", text, line, col, part, buf);
        fail();
    }
    assert_int_equal(rc, -1);
}

static const char *full =
    "# relist-storm: the incident\n"
    "scenario relist-storm \"the incident\"\n"
    "server embedded                       # comment after a statement\n"
    "seed pods namespaces=20 per-namespace=50 value-size=1k shared-names=0.8\n"
    "watchers count=200 prefix=namespace key-mode=namespaced on-miss=relist backoff=none "
    "qps=0 page-size=500\n"
    "\n"
    "   mode namespaced key-mode = namespaced \"the correct key\"\n"
    "mode mismatch key_mode=mismatch on-miss=relist\n"
    "phase warmup 5s\n"
    "phase churn 30s create=2/s update=20/s delete=120/m hot-namespaces=0.2\n"
    "at 10s switch key-mode=mismatch backoff=client-go\n"
    "at churn+5s compact every=5s keep=1000\n"
    "at churn compact once\n"
    "at 20s restart-server down=2s\n"
    "at warmup+1s drop-connections fraction=0.5\n"
    "at churn+1s hold fraction=0.25 for=3s\n"
    "at 34s verify\n"
    "expect phase=churn list_rate.mean < 1 when key-mode=namespaced\n"
    "expect phase=churn list_rate.mean>100 when key-mode=mismatch\n"
    "expect list_rate.mean@mismatch >= 50 * list_rate.mean@namespaced\n"
    "expect mode=namespaced list_latency_ms.p99 <= 5s\n"
    "expect divergent == 0\n"
    "expect relists.miss != 0 key-mode=mismatch\n"
    "slo list=5s put=1s\n"
    "report log-scale=on window=churn\n"
    "short watchers.count=20 phase.churn=5s seed.namespaces=5\n";

static void test_every_statement(void **st) {
    (void)st;
    scn_script s;
    scn_errors e;
    if (parse(full, &s, &e) != 0) {
        char buf[4096];
        scn_errors_format(&e, buf, sizeof buf);
        fprintf(stderr, "%s", buf);
        fail();
    }
    assert_string_equal(s.name, "relist-storm");
    assert_string_equal(s.title, "the incident");
    assert_int_equal(s.server.kind, SCN_SERVER_EMBEDDED);
    assert_true(s.seed.present);
    assert_string_equal(s.seed.resource, "pods");
    assert_int_equal(s.seed.namespaces, 20);
    assert_int_equal(s.seed.per_namespace, 50);
    assert_int_equal(s.seed.value_size, 1024);
    assert_true(fabs(s.seed.shared_names - 0.8) < 1e-9);
    assert_int_equal(s.watchers.count, 200);
    assert_string_equal(s.watchers.prefix, "namespace");
    assert_int_equal(s.watchers.page_size, 500);
    assert_int_equal(s.n_modes, 2);
    assert_string_equal(s.modes[0].name, "namespaced");
    assert_string_equal(s.modes[0].title, "the correct key");
    assert_string_equal(s.modes[1].over.key_mode, "mismatch");
    assert_true(s.modes[1].over.set & SCN_W_KEY_MODE);
    assert_true(s.modes[1].over.set & SCN_W_ON_MISS);
    assert_false(s.modes[1].over.set & SCN_W_COUNT);
    assert_int_equal(s.n_phases, 2);
    assert_int_equal(s.phases[0].duration_ms, 5000);
    assert_int_equal(s.phases[1].duration_ms, 30000);
    assert_true(fabs(s.phases[1].create - 2) < 1e-9);
    assert_true(fabs(s.phases[1].update - 20) < 1e-9);
    assert_true(fabs(s.phases[1].del - 2) < 1e-9);
    assert_true(fabs(s.phases[1].hot_namespaces - 0.2) < 1e-9);
    assert_true(fabs(s.phases[0].hot_namespaces - 1) < 1e-9);
    assert_int_equal(scn_script_duration_ms(&s), 35000);
    assert_int_equal(scn_phase_at(&s, 4999), 0);
    assert_int_equal(scn_phase_at(&s, 5000), 1);
    assert_int_equal(scn_phase_at(&s, 35000), -1);

    assert_int_equal(s.n_actions, 7);
    assert_int_equal(s.actions[0].kind, SCN_ACT_SWITCH);
    assert_int_equal(scn_action_time_ms(&s, &s.actions[0]), 10000);
    assert_string_equal(s.actions[0].sw.key_mode, "mismatch");
    assert_string_equal(s.actions[0].sw.backoff, "client-go");
    assert_int_equal(s.actions[1].kind, SCN_ACT_COMPACT);
    assert_int_equal(s.actions[1].phase, 1);
    assert_int_equal(scn_action_time_ms(&s, &s.actions[1]), 10000);
    assert_int_equal(s.actions[1].every_ms, 5000);
    assert_int_equal(s.actions[1].keep, 1000);
    assert_int_equal(s.actions[2].every_ms, 0);
    assert_int_equal(scn_action_time_ms(&s, &s.actions[2]), 5000);
    assert_int_equal(s.actions[3].kind, SCN_ACT_RESTART_SERVER);
    assert_int_equal(s.actions[3].down_ms, 2000);
    assert_int_equal(s.actions[4].kind, SCN_ACT_DROP_CONNECTIONS);
    assert_int_equal(scn_action_time_ms(&s, &s.actions[4]), 1000);
    assert_true(fabs(s.actions[4].fraction - 0.5) < 1e-9);
    assert_int_equal(s.actions[5].kind, SCN_ACT_HOLD);
    assert_int_equal(s.actions[5].for_ms, 3000);
    assert_int_equal(s.actions[6].kind, SCN_ACT_VERIFY);

    assert_int_equal(s.n_expects, 6);
    const scn_expect *x = &s.expects[0];
    assert_string_equal(x->phase, "churn");
    assert_string_equal(x->lhs.metric, "list_rate.mean");
    assert_int_equal(x->op, SCN_OP_LT);
    assert_true(x->k == 1);
    assert_true(x->when.set == SCN_W_KEY_MODE);
    assert_string_equal(x->when.key_mode, "namespaced");
    assert_string_equal(x->text, "expect phase=churn list_rate.mean < 1 when key-mode=namespaced");
    assert_int_equal(s.expects[1].op, SCN_OP_GT);
    assert_true(s.expects[1].k == 100);
    x = &s.expects[2];
    assert_string_equal(x->lhs.mode, "mismatch");
    assert_true(x->rhs_is_ref);
    assert_string_equal(x->rhs.metric, "list_rate.mean");
    assert_string_equal(x->rhs.mode, "namespaced");
    assert_true(x->k == 50);
    assert_int_equal(x->op, SCN_OP_GE);
    assert_string_equal(s.expects[3].mode, "namespaced");
    assert_true(s.expects[3].k == 5000); /* 5s on an _ms metric */
    assert_int_equal(s.expects[4].op, SCN_OP_EQ);
    assert_int_equal(s.expects[5].op, SCN_OP_NE);
    assert_string_equal(s.expects[5].when.key_mode, "mismatch");
    assert_int_equal(s.slo.list_ms, 5000);
    assert_int_equal(s.report.log_scale, 1);
    assert_string_equal(s.report.window, "churn");
    assert_int_equal(s.n_shorts, 3);

    /* runs: modes merged over watchers */
    assert_int_equal(scn_script_run_count(&s), 2);
    const char *name;
    scn_watchers w;
    assert_int_equal(scn_script_run(&s, 1, &name, &w), 0);
    assert_string_equal(name, "mismatch");
    assert_string_equal(w.key_mode, "mismatch");
    assert_int_equal(w.count, 200);
    assert_int_equal(scn_script_run(&s, 2, &name, &w), -1);

    /* short applies once */
    assert_int_equal(scn_script_apply_short(&s, &e), 0);
    assert_int_equal(s.watchers.count, 20);
    assert_int_equal(s.phases[1].duration_ms, 5000);
    assert_int_equal(s.seed.namespaces, 5);
    assert_int_equal(scn_action_time_ms(&s, &s.actions[1]), 10000); /* churn+5s moved */
    scn_script_free(&s);
}

static void test_defaults_and_implicit_mode(void **st) {
    (void)st;
    scn_script s;
    scn_errors e;
    assert_int_equal(parse("phase only 10s\n", &s, &e), 0);
    assert_string_equal(s.name, "t");
    assert_int_equal(s.server.kind, SCN_SERVER_EMBEDDED);
    assert_int_equal(s.watchers.count, 100);
    assert_string_equal(s.watchers.key_mode, "namespaced");
    assert_string_equal(s.watchers.backoff, "none");
    assert_int_equal(scn_script_run_count(&s), 1);
    const char *name;
    assert_int_equal(scn_script_run(&s, 0, &name, NULL), 0);
    assert_string_equal(name, "run");
    scn_slo slo = scn_script_slo(&s);
    assert_int_equal(slo.list_ms, 5000);
    assert_int_equal(slo.put_ms, 1000);
    char key[128];
    scn_seed_key(&s.seed, 3, 0, key, sizeof key);
    assert_string_equal(key, "/registry/pods/ns-3/obj-3-0"); /* no shared names by default */
    scn_script_free(&s);

    assert_int_equal(
        parse("server endpoints 127.0.0.1:2379,127.0.0.1:22379 metrics=127.0.0.1:2381\n"
              "watchers prefix=all\nphase p 1m\n",
              &s, &e),
        0);
    assert_int_equal(s.server.kind, SCN_SERVER_ENDPOINTS);
    assert_int_equal(s.server.n_endpoints, 2);
    assert_string_equal(s.server.endpoints[1], "127.0.0.1:22379");
    assert_string_equal(s.server.metrics, "127.0.0.1:2381");
    assert_int_equal(s.phases[0].duration_ms, 60000);
    assert_int_equal(scn_script_slo(&s).list_ms, 30000); /* cluster-scoped LIST */
    scn_script_free(&s);

    /* shared names: the first shared_names fraction repeats in every namespace */
    assert_int_equal(
        parse("seed pods namespaces=2 per-namespace=10 shared-names=0.5\nphase p 1s\n", &s, &e), 0);
    char a[128], b[128];
    scn_seed_key(&s.seed, 0, 4, a, sizeof a);
    scn_seed_key(&s.seed, 1, 4, b, sizeof b);
    assert_string_equal(a, "/registry/pods/ns-0/obj-4");
    assert_string_equal(b, "/registry/pods/ns-1/obj-4");
    scn_seed_key(&s.seed, 1, 5, b, sizeof b);
    assert_string_equal(b, "/registry/pods/ns-1/obj-1-5");
    scn_script_free(&s);
}

static void test_errors_with_positions(void **st) {
    (void)st;
    expect_error("phase p 10s\nwatchers cnt=5\n", 2, 10, "unknown option 'cnt'");
    expect_error("phase p 10s\nwatchers count=five\n", 2, 16, "expected a whole number");
    expect_error("phase p 10s\nwatchers key-mode=bogus\n", 2, 19,
                 "namespaced | name | mismatch | uid");
    expect_error("phase p 10s\nwatchers count\n", 2, 15, "expected '=' after 'count'");
    expect_error("phase p 10s\nwatchers count=\n", 2, 16, "expected a value after 'count='");
    expect_error("phase p ten\n", 1, 9, "positive duration");
    expect_error("phase p create=1/s\n", 1, 9, "expected the phase's duration");
    expect_error("phase p 10s\nphase p 5s\n", 2, 7, "already defined at line 1");
    expect_error("phase p 10s\nfrobnicate x\n", 2, 1, "unknown statement 'frobnicate'");
    expect_error("phase p 10s\nat 5s explode\n", 2, 7, "unknown action 'explode'");
    expect_error("phase p 10s\nat nowhere+1s verify\n", 2, 4, "unknown phase 'nowhere'");
    expect_error("phase p 10s\nat p+soon verify\n", 2, 6, "bad offset 'soon'");
    expect_error("phase p 10s\nat 1s switch count=5\n", 2, 14, "cannot change 'count' live");
    expect_error("phase p 10s\nat 1s verify now\n", 2, 14, "takes no options");
    expect_error("phase p 10s\nexpect list_rate.avg < 1\n", 2, 8, "unknown aggregation");
    expect_error("phase p 10s\nexpect lsit_rate.mean < 1\n", 2, 8,
                 "unknown metric 'lsit_rate.mean'");
    expect_error("phase p 10s\nexpect list_rate.mean 1\n", 2, 23, "expected a comparison");
    expect_error("phase p 10s\nexpect list_rate.mean <\n", 2, 24, "expected a number or a metric");
    expect_error("phase p 10s\nexpect list_rate.mean < 1x\n", 2, 25, "bad number '1x'");
    expect_error("phase p 10s\nexpect list_rate.mean < 1 when\n", 2, 31, "after 'when'");
    expect_error("phase p 10s\nexpect list_rate.mean < 1 when colour=red\n", 2, 32,
                 "unknown filter 'colour'");
    expect_error("phase p 10s\nexpect phase=nope misses == 0\n", 2, 1, "unknown phase 'nope'");
    expect_error("phase p 10s\nmode a\nexpect misses@b == 0\n", 3, 1, "unknown mode 'b'");
    expect_error("phase p 10s\nseed pods shared-names=1.5\n", 2, 24, "fraction between 0 and 1");
    expect_error("phase p 10s\nwatchers backoff=exp:1s\n", 2, 18, "exp:INITIAL,MAX,FACTOR,JITTER");
    expect_error("phase p 10s\nserver somewhere\n", 2, 8, "expected embedded | etcd | endpoints");
    expect_error("phase p 10s\nserver endpoints localhost\n", 2, 18, "bad endpoint 'localhost'");
    expect_error("phase p 10s\nscenario x \"unterminated\n", 2, 12, "unterminated string");
    expect_error("phase p 10s\nwatchers count=5 ! x\n", 2, 18, "expected '!='");
    expect_error("watchers count=5\n", 0, 0, "no phase");
    expect_error("phase p 10s\nshort watchers.nope=1\n", 2, 16, "unknown option 'nope'");
    expect_error("phase p 10s\nshort phase.q=1s\n", 2, 13, "unknown phase 'q'");
    expect_error("phase p 10s\nreport window=q\n", 0, 0, "unknown window phase 'q'");
    expect_error("phase p 10s\nslo list=fast\n", 2, 10, "duration");

    /* several errors are reported at once, each on its line */
    scn_script s;
    scn_errors e;
    assert_int_equal(parse("phase p 10s\nwatchers cnt=1\nseed x=1\nat 1s boom\n", &s, &e), -1);
    assert_int_equal(e.n, 3);
    assert_int_equal(e.items[0].loc.line, 2);
    assert_int_equal(e.items[1].loc.line, 3);
    assert_int_equal(e.items[2].loc.line, 4);
    char buf[2048];
    scn_errors_format(&e, buf, sizeof buf);
    assert_non_null(
        strstr(buf, "t.scn:2:10: watchers: unknown option 'cnt' (expected one of: count,"));
    assert_non_null(strstr(buf, "t.scn:4:7: unknown action 'boom'"));
}

static void test_set_overrides(void **st) {
    (void)st;
    scn_script s;
    scn_errors e;
    assert_int_equal(parse(full, &s, &e), 0);
    memset(&e, 0, sizeof e);
    assert_int_equal(scn_script_set(&s, "watchers.count=50", &e), 0);
    assert_int_equal(s.watchers.count, 50);
    assert_int_equal(scn_script_set(&s, "phase.churn=10s", &e), 0);
    assert_int_equal(s.phases[1].duration_ms, 10000);
    assert_int_equal(scn_script_set(&s, "phase.churn.update=50/s", &e), 0);
    assert_true(fabs(s.phases[1].update - 50) < 1e-9);
    assert_int_equal(scn_script_set(&s, "mode.mismatch.qps = 5", &e), 0);
    assert_true(s.modes[1].over.qps == 5 && (s.modes[1].over.set & SCN_W_QPS));
    assert_int_equal(scn_script_set(&s, "seed.per_namespace=7", &e), 0);
    assert_int_equal(s.seed.per_namespace, 7);
    assert_int_equal(scn_script_set(&s, "server=127.0.0.1:2379", &e), 0);
    assert_int_equal(s.server.kind, SCN_SERVER_ENDPOINTS);
    assert_int_equal(scn_script_set(&s, "server=etcd", &e), 0);
    assert_int_equal(s.server.kind, SCN_SERVER_ETCD);
    assert_int_equal(scn_script_set(&s, "slo.list=30s", &e), 0);
    assert_int_equal(s.slo.list_ms, 30000);
    assert_int_equal(scn_script_set(&s, "report.log-scale=off", &e), 0);
    assert_int_equal(s.report.log_scale, 0);
    assert_int_equal(scn_script_set(&s, "title=hello world", &e), 0);
    assert_string_equal(s.title, "hello world");
    assert_int_equal(scn_script_set(&s, "modes=mismatch", &e), 0);
    assert_int_equal(scn_script_run_count(&s), 1);
    const char *name;
    assert_int_equal(scn_script_run(&s, 0, &name, NULL), 0);
    assert_string_equal(name, "mismatch");
    assert_int_equal(e.n, 0);

    /* rejected overrides leave the script unchanged and say why */
    assert_int_equal(scn_script_set(&s, "watchers.count=lots", &e), -1);
    assert_int_equal(s.watchers.count, 50);
    assert_int_equal(scn_script_set(&s, "phase.nope=1s", &e), -1);
    assert_int_equal(scn_script_set(&s, "phase.churn=0s", &e), -1);
    assert_int_equal(s.phases[1].duration_ms, 10000);
    assert_int_equal(scn_script_set(&s, "modes=zzz", &e), -1);
    assert_int_equal(scn_script_set(&s, "colour=red", &e), -1);
    assert_int_equal(scn_script_set(&s, "watchers.count", &e), -1);
    assert_int_equal(e.n, 6);
    char buf[4096];
    scn_errors_format(&e, buf, sizeof buf);
    assert_non_null(strstr(buf, "--set: watchers.count=lots: bad count 'lots'"));
    assert_non_null(strstr(buf, "unknown phase 'nope' (expected one of: warmup, churn)"));
    assert_non_null(strstr(buf, "unknown mode 'zzz' (expected one of: namespaced, mismatch)"));
    assert_non_null(strstr(buf, "expected PATH=VALUE"));
    scn_script_free(&s);
}

/* format -> parse -> format is a fixed point */
static void test_canonical_roundtrip(void **st) {
    (void)st;
    scn_script s, t;
    scn_errors e;
    assert_int_equal(parse(full, &s, &e), 0);
    char *a = scn_script_format(&s);
    assert_non_null(a);
    if (parse(a, &t, &e) != 0) {
        char buf[4096];
        scn_errors_format(&e, buf, sizeof buf);
        fprintf(stderr, "%s\n%s", a, buf);
        fail();
    }
    char *b = scn_script_format(&t);
    assert_non_null(b);
    assert_string_equal(a, b);
    free(a);
    free(b);
    scn_script_free(&s);
    scn_script_free(&t);
}

static void test_values(void **st) {
    (void)st;
    int64_t v;
    double d;
    assert_int_equal(scn_parse_duration_ms("1.5s", &v), 0);
    assert_int_equal(v, 1500);
    assert_int_equal(scn_parse_duration_ms("2m", &v), 0);
    assert_int_equal(v, 120000);
    assert_int_equal(scn_parse_duration_ms("0", &v), 0);
    assert_int_equal(scn_parse_duration_ms("5", &v), -1);
    assert_int_equal(scn_parse_duration_ms("-1s", &v), -1);
    assert_int_equal(scn_parse_duration_ms("0x10s", &v), -1);
    assert_int_equal(scn_parse_rate("120/m", &d), 0);
    assert_true(fabs(d - 2) < 1e-9);
    assert_int_equal(scn_parse_rate("7", &d), 0);
    assert_true(d == 7);
    assert_int_equal(scn_parse_rate("7/fortnight", &d), -1);
    assert_int_equal(scn_parse_count("2k", &v), 0);
    assert_int_equal(v, 2000);
    assert_int_equal(scn_parse_count("1.5", &v), -1);
    assert_int_equal(scn_parse_size("4KiB", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(scn_parse_number("nan", &d), -1);
    assert_int_equal(scn_parse_number("inf", &d), -1);
}

static char *repo_path(const char *rel) {
    /* __FILE__ is .../tests/unit/test_scn_parse.c */
    const char *f = __FILE__;
    const char *cut = strstr(f, "tests/unit/");
    size_t n = cut ? (size_t)(cut - f) : 0;
    char *p = malloc(n + strlen(rel) + 1);
    memcpy(p, f, n);
    strcpy(p + n, rel);
    return p;
}

static void test_shipped_scripts(void **st) {
    (void)st;
    static const char *const names[] = {"relist-storm",   "calm-storm-recovery", "name-collision",
                                        "compaction-410", "restart-herd",        "backoff-vs-none",
                                        "network-blip"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "scenarios/%s.scn", names[i]);
        char *path = repo_path(rel);
        scn_script s;
        scn_errors e = {0};
        int rc = scn_load(path, &s, &e);
        if (rc == 0) rc = scn_script_apply_short(&s, &e);
        if (rc == 0) rc = scn_script_check(&s, &e);
        if (rc != 0) {
            char buf[4096];
            scn_errors_format(&e, buf, sizeof buf);
            fprintf(stderr, "%s", buf);
            fail();
        }
        assert_string_equal(s.name, names[i]);
        assert_true(s.n_expects > 0);
        assert_true(s.n_shorts > 0);
        assert_true(scn_script_duration_ms(&s) <= 60000); /* short variants stay short */
        scn_script_free(&s);
        free(path);
    }
}

/* Mutated scripts never crash the parser: they parse or fail with positioned errors. */
static void test_mutations(void **st) {
    (void)st;
    size_t n = strlen(full);
    char *buf = malloc(n + 1);
    unsigned seed = 1;
    static const char alphabet[] = " \t\n#\"=<>!*@+.,:/-_0123456789abcsxyz";
    for (int round = 0; round < 3000; round++) {
        memcpy(buf, full, n + 1);
        for (int k = 0; k < 1 + round % 8; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % n;
            seed = seed * 1103515245u + 12345u;
            buf[pos] = alphabet[(seed >> 8) % (sizeof alphabet - 1)];
        }
        scn_script s;
        scn_errors e = {0};
        size_t len = (seed >> 4) % 4 == 0 ? (seed >> 12) % n : n; /* sometimes truncated */
        if (scn_parse(buf, len, "m.scn", &s, &e) == 0) {
            char *f = scn_script_format(&s);
            assert_non_null(f);
            free(f);
            scn_script_apply_short(&s, &e);
            scn_script_free(&s);
        } else {
            assert_true(e.n > 0);
            for (size_t i = 0; i < e.n; i++)
                assert_true(e.items[i].msg[0] != 0);
        }
    }
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_statement),
        cmocka_unit_test(test_defaults_and_implicit_mode),
        cmocka_unit_test(test_errors_with_positions),
        cmocka_unit_test(test_set_overrides),
        cmocka_unit_test(test_canonical_roundtrip),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_shipped_scripts),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
