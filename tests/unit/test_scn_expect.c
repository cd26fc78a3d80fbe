/* test_scn_expect.c — metrics over windows and expectation verdicts against a synthetic
 * result: per-mode filters, cross-mode references, missing data, skipped modes, and the
 * message texts a reader sees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "test_scn_synth.h"

#define NEAR(a, b, eps) assert_true(fabs((a) - (b)) <= (eps))

static void load(scn_script *s, scn_result **r) {
    scn_errors e = {0};
    assert_int_equal(scn_parse(synth_script, strlen(synth_script), "synth.scn", s, &e), 0);
    *r = scn_result_new(s);
    assert_non_null(*r);
    synth_fill(*r);
}

static void test_metrics(void **st) {
    (void)st;
    scn_script s;
    scn_result *r;
    load(&s, &r);
    assert_int_equal(r->n_runs, 2);
    const scn_run *calm = scn_result_find(r, "namespaced"), *storm = scn_result_find(r, "mismatch");
    assert_non_null(calm);
    assert_non_null(storm);
    assert_string_equal(storm->cfg.key_mode, "mismatch");
    int churn = scn_result_phase(r, "churn");
    assert_int_equal(churn, 1);
    NEAR(scn_run_metric(calm, churn, "list_rate.mean"), 0, 0);
    NEAR(scn_run_metric(calm, -1, "list_rate.max"), 500, 0);
    NEAR(scn_run_metric(calm, -1, "list_rate.peak"), 500, 0);
    NEAR(scn_run_metric(calm, 0, "lists"), 1000, 0);
    double m = scn_run_metric(storm, churn, "list_rate.mean");
    assert_true(m > 1300 && m < 1900);
    double p50 = scn_run_metric(storm, churn, "list_rate.p50");
    assert_true(p50 > 1600 && p50 < 2100);
    double lat = scn_run_metric(storm, churn, "list_latency_ms.p99");
    assert_true(lat > 400 && lat < 1000);
    double calm_lat = scn_run_metric(calm, 0, "list_latency_ms.p50");
    assert_true(calm_lat > 10 && calm_lat < 60);
    assert_true(isnan(scn_run_metric(calm, churn, "list_latency_ms.p99"))); /* no LIST at all */
    assert_true(scn_run_metric(storm, churn, "relists.miss") > 30000);
    NEAR(scn_run_metric(storm, churn, "relists.compacted"), 0, 0);
    NEAR(scn_run_metric(calm, -1, "divergent"), 0, 0);
    NEAR(scn_run_metric(calm, -1, "synced.last"), 1000, 0);
    double cpu = scn_run_metric(storm, churn, "cpu.mean"); /* the NaN second is skipped */
    assert_true(cpu > 1.5 && cpu < 1.9);
    assert_true(isnan(scn_run_metric(calm, 0, "no_such.metric")));
    double a, b;
    assert_int_equal(scn_run_phase_span(storm, churn, &a, &b), 0);
    NEAR(a, 10, 0);
    NEAR(b, 40, 0);
    assert_int_equal(scn_run_phase_span(storm, 5, &a, &b), -1);

    char err[256];
    assert_int_equal(scn_metric_check("put_latency_ms.p999", err, sizeof err), 0);
    assert_int_equal(scn_metric_check("relists.error", err, sizeof err), 0);
    assert_int_equal(scn_metric_check("request_rate.fast", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown aggregation"));
    scn_result_free(r);
    scn_script_free(&s);
}

static const scn_verdict *find(const scn_verdict *v, size_t n, size_t expect, const char *mode) {
    for (size_t i = 0; i < n; i++)
        if (v[i].expect == expect && !strcmp(v[i].mode, mode)) return &v[i];
    return NULL;
}

static void test_verdicts(void **st) {
    (void)st;
    scn_script s;
    scn_result *r;
    load(&s, &r);
    scn_verdict *v;
    size_t n;
    assert_int_equal(scn_expect_eval(&s, r, &v, &n), 0);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "  %s\n", v[i].msg);
    /* 1 + 1 + 1 (cross-mode) + 2 + 2 + 1 (matches no mode) */
    assert_int_equal(n, 8);
    const scn_verdict *x = find(v, n, 0, "namespaced");
    assert_non_null(x);
    assert_true(x->pass);
    assert_string_equal(x->msg,
                        "PASS synth.scn:8 [namespaced] expect phase=churn list_rate.mean < 1 "
                        "when key-mode=namespaced: 0");
    x = find(v, n, 1, "mismatch");
    assert_true(x && x->pass && x->actual > 100);
    x = find(v, n, 2, "mismatch");
    assert_true(x && x->pass);
    assert_non_null(strstr(x->msg, "(= 50 x list_rate.mean@namespaced 0)"));
    x = find(v, n, 3, "namespaced");
    assert_true(x && !x->pass); /* no LIST in churn: no data fails */
    assert_non_null(
        strstr(x->msg, "no data (list_latency_ms.p99 in phase churn was not measured)"));
    x = find(v, n, 3, "mismatch");
    assert_true(x && !x->pass);
    assert_non_null(strstr(x->msg, "FAIL synth.scn:11 [mismatch]"));
    assert_non_null(strstr(x->msg, ", expected < 100"));
    assert_true(find(v, n, 4, "namespaced")->pass);
    assert_true(find(v, n, 4, "mismatch")->pass);
    x = find(v, n, 5, "");
    assert_true(x && !x->pass && !x->skipped);
    assert_non_null(strstr(x->msg, "matches no mode"));
    free(v);

    /* a mode left out with --set modes=... skips the claims about it */
    scn_result_free(r);
    scn_errors e = {0};
    assert_int_equal(scn_script_set(&s, "modes=mismatch", &e), 0);
    r = scn_result_new(&s);
    synth_fill(r);
    assert_int_equal(r->n_runs, 1);
    assert_int_equal(scn_expect_eval(&s, r, &v, &n), 0);
    x = find(v, n, 2, "mismatch");
    assert_true(x && x->skipped && !x->pass);
    assert_non_null(strstr(x->msg, "SKIP"));
    assert_non_null(strstr(x->msg, "mode 'namespaced' was not run"));
    x = find(v, n, 0, "");
    assert_true(x && x->skipped);
    free(v);
    scn_result_free(r);
    scn_script_free(&s);
}

static void test_ops(void **st) {
    (void)st;
    const char *text = "phase p 3s\n"
                       "expect misses == 0\nexpect misses != 0\nexpect misses <= 0\n"
                       "expect misses >= 1\nexpect misses > -1\nexpect events < 1k\n";
    scn_script s;
    scn_errors e = {0};
    assert_int_equal(scn_parse(text, strlen(text), "ops.scn", &s, &e), 0);
    scn_result *r = scn_result_new(&s);
    for (int t = 1; t <= 3; t++) {
        scn_sample x;
        memset(&x, 0, sizeof x);
        x.t = t;
        x.dt = 1;
        x.v[SCN_F_EVENTS] = 400;
        scn_sample_quantiles(&x);
        scn_run_add_sample(&r->runs[0], &x);
    }
    scn_verdict *v;
    size_t n;
    assert_int_equal(scn_expect_eval(&s, r, &v, &n), 0);
    assert_int_equal(n, 6);
    bool want[] = {true, false, true, false, true, false}; /* events: 1200 > 1k */
    for (size_t i = 0; i < n; i++) {
        if (v[i].pass != want[i]) fprintf(stderr, "%s\n", v[i].msg);
        assert_int_equal(v[i].pass, want[i]);
    }
    free(v);
    scn_result_free(r);
    scn_script_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
