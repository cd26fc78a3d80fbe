/* test_scn_prom.c — Prometheus text parsing (types, labels, escapes, special values,
 * timestamps, errors), histograms (quantiles like histogram_quantile, deltas with counter
 * resets), the server snapshot read from kvstore-style and etcd-style scrapes, and per-second
 * samples through the sampler (including a failed scrape and a server restart). */
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

#define NEAR(a, b, eps) assert_true(fabs((a) - (b)) <= (eps))

static const char *scrape =
    "# HELP grpc_server_handled_total Total number of RPCs completed on the server.\n"
    "# TYPE grpc_server_handled_total counter\n"
    "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\",grpc_service=\"etcdserverpb."
    "KV\","
    "grpc_type=\"unary\"} 120\n"
    "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\",grpc_service=\"etcdserverpb."
    "KV\","
    "grpc_type=\"unary\"} 40\n"
    "grpc_server_handled_total{grpc_code=\"Unavailable\",grpc_method=\"Put\",grpc_service="
    "\"etcdserverpb.KV\","
    "grpc_type=\"unary\"} 2\n"
    "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Txn\",grpc_service=\"etcdserverpb."
    "KV\","
    "grpc_type=\"unary\"} 5\n"
    "grpc_server_msg_received_total{grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\","
    "grpc_type=\"bidi_stream\"} 30\n"
    "# TYPE relistlab_range_requests_total counter\n"
    "relistlab_range_requests_total{kind=\"list\"} 100\n"
    "relistlab_range_requests_total{kind=\"get\"} 20\n"
    "# TYPE relistlab_range_seconds histogram\n"
    "relistlab_range_seconds_bucket{kind=\"list\",le=\"0.001\"} 10\n"
    "relistlab_range_seconds_bucket{kind=\"list\",le=\"0.01\"} 60\n"
    "relistlab_range_seconds_bucket{kind=\"list\",le=\"0.1\"} 90\n"
    "relistlab_range_seconds_bucket{kind=\"list\",le=\"+Inf\"} 100\n"
    "relistlab_range_seconds_sum{kind=\"list\"} 2.5\n"
    "relistlab_range_seconds_count{kind=\"list\"} 100\n"
    "relistlab_range_seconds_bucket{kind=\"get\",le=\"0.001\"} 20\n"
    "relistlab_range_seconds_bucket{kind=\"get\",le=\"0.01\"} 20\n"
    "relistlab_range_seconds_bucket{kind=\"get\",le=\"0.1\"} 20\n"
    "relistlab_range_seconds_bucket{kind=\"get\",le=\"+Inf\"} 20\n"
    "relistlab_range_seconds_sum{kind=\"get\"} 0.01\n"
    "relistlab_range_seconds_count{kind=\"get\"} 20\n"
    "relistlab_client_sent_bytes_total{peer=\"127.0.0.1:5000\"} 1000\n"
    "relistlab_client_sent_bytes_total{peer=\"127.0.0.1:5001\"} 500\n"
    "# TYPE etcd_debugging_mvcc_current_revision gauge\n"
    "etcd_debugging_mvcc_current_revision 77\n"
    "etcd_debugging_mvcc_compact_revision -1\n";

static void test_parse_basics(void **st) {
    (void)st;
    scn_prom p;
    char err[128];
    assert_int_equal(scn_prom_parse(scrape, strlen(scrape), &p, err, sizeof err), 0);
    assert_int_equal(p.n, 23);
    assert_int_equal(scn_prom_family_type(&p, "relistlab_range_seconds"), SCN_PROM_HISTOGRAM);
    assert_int_equal(scn_prom_family_type(&p, "grpc_server_handled_total"), SCN_PROM_COUNTER);
    assert_int_equal(scn_prom_family_type(&p, "etcd_debugging_mvcc_current_revision"),
                     SCN_PROM_GAUGE);
    static const char *const put[] = {"grpc_method", "Put", NULL};
    NEAR(scn_prom_sum(&p, "grpc_server_handled_total", put), 42, 0);
    static const char *const put_ok[] = {"grpc_method", "Put", "grpc_code", "OK", NULL};
    NEAR(scn_prom_sum(&p, "grpc_server_handled_total", put_ok), 40, 0);
    assert_true(isnan(scn_prom_sum(&p, "nope_total", NULL)));
    NEAR(scn_prom_sum(&p, "relistlab_client_sent_bytes_total", NULL), 1500, 0);
    NEAR(scn_prom_sum(&p, "etcd_debugging_mvcc_compact_revision", NULL), -1, 0);
    scn_prom_free(&p);
}

static void test_parse_escapes_and_values(void **st) {
    (void)st;
    const char *t = "# a free comment\n"
                    "\n"
                    "m{a=\"x\\\"y\",b=\"back\\\\slash\",c=\"new\\nline\",} 1.5e3 1700000000000\r\n"
                    "m{ a = \"sp aces, and } braces\" } NaN\n"
                    "m{a=\"inf\"} +Inf\n"
                    "m{a=\"neg\"} -Inf\n"
                    "plain 42\n"
                    "   indented:colon_name 7\n";
    scn_prom p;
    char err[128];
    assert_int_equal(scn_prom_parse(t, strlen(t), &p, err, sizeof err), 0);
    assert_int_equal(p.n, 6);
    assert_string_equal(scn_prom_label_value(&p.samples[0], "a"), "x\"y");
    assert_string_equal(scn_prom_label_value(&p.samples[0], "b"), "back\\slash");
    assert_string_equal(scn_prom_label_value(&p.samples[0], "c"), "new\nline");
    NEAR(p.samples[0].value, 1500, 0);
    assert_true(p.samples[0].timestamp_ms == 1700000000000LL);
    assert_string_equal(scn_prom_label_value(&p.samples[1], "a"), "sp aces, and } braces");
    assert_true(isnan(p.samples[1].value));
    assert_true(isinf(p.samples[2].value) && p.samples[2].value > 0);
    assert_true(isinf(p.samples[3].value) && p.samples[3].value < 0);
    assert_int_equal(p.samples[4].n_labels, 0);
    assert_string_equal(p.samples[5].name, "indented:colon_name");
    scn_prom_free(&p);

    static const struct {
        const char *text;
        const char *msg;
    } bad[] = {
        {"ok 1\nm{a=\"x} 1\n", "line 2: unterminated label value"},
        {"m{a=\"\\q\"} 1\n", "bad escape"},
        {"m{a} 1\n", "expected '='"},
        {"m{a=x} 1\n", "expected '\"'"},
        {"m{a=\"x\" b=\"y\"} 1\n", "expected ',' or '}'"},
        {"m one\n", "expected a sample value"},
        {"m 1 soon\n", "bad timestamp"},
        {"m 1 2 3\n", "after the timestamp"},
        {"# TYPE m flavour\n", "unknown metric type"},
        {"9m 1\n", "expected a metric name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        int rc = scn_prom_parse(bad[i].text, strlen(bad[i].text), &p, err, sizeof err);
        if (rc != -1 || !strstr(err, bad[i].msg)) {
            fprintf(stderr, "input %zu: rc %d err '%s', wanted '%s'\n", i, rc, err, bad[i].msg);
            fail();
        }
        assert_int_equal(p.n, 0);
    }
}

static void test_histogram_quantiles(void **st) {
    (void)st;
    scn_prom p;
    assert_int_equal(scn_prom_parse(scrape, strlen(scrape), &p, NULL, 0), 0);
    static const char *const list[] = {"kind", "list", NULL};
    scn_hist h;
    assert_int_equal(scn_prom_histogram(&p, "relistlab_range_seconds", list, &h), 0);
    assert_int_equal(h.n, 4);
    assert_true(isinf(h.le[3]));
    NEAR(scn_hist_count(&h), 100, 0);
    NEAR(h.sum, 2.5, 1e-12);
    /* rank 50: bucket (0.001, 0.01] holds ranks 10..60: 0.001 + 0.009 * 40/50 */
    NEAR(scn_hist_quantile(&h, 0.5), 0.001 + 0.009 * 0.8, 1e-12);
    /* rank 5 in the first bucket: interpolated from 0 */
    NEAR(scn_hist_quantile(&h, 0.05), 0.0005, 1e-12);
    /* rank 99 is in +Inf: the highest finite bound */
    NEAR(scn_hist_quantile(&h, 0.99), 0.1, 1e-12);
    /* aggregated over both kinds: buckets of equal le summed */
    scn_hist all;
    assert_int_equal(scn_prom_histogram(&p, "relistlab_range_seconds", NULL, &all), 0);
    NEAR(scn_hist_count(&all), 120, 0);
    NEAR(all.cum[0], 30, 0);
    static const char *const none[] = {"kind", "watch", NULL};
    assert_int_equal(scn_prom_histogram(&p, "relistlab_range_seconds", none, &h), -1);
    scn_prom_free(&p);

    scn_hist e;
    scn_hist_init_latency(&e);
    assert_true(isnan(scn_hist_quantile(&e, 0.5)));
    for (int i = 1; i <= 1000; i++)
        scn_hist_observe(&e, i / 1000.0 * 0.1); /* 0.1 ms .. 100 ms */
    double p50 = scn_hist_quantile(&e, 0.5), p99 = scn_hist_quantile(&e, 0.99);
    assert_true(p50 > 0.04 && p50 < 0.06);
    assert_true(p99 > 0.09 && p99 <= 0.1);
    double bad[] = {0.1, 0.05};
    assert_int_equal(scn_hist_init(&e, bad, 2), -1);
}

static void test_histogram_deltas(void **st) {
    (void)st;
    double b[] = {0.01, 0.1, 1};
    scn_hist a, c, d;
    scn_hist_init(&a, b, 3);
    for (int i = 0; i < 100; i++)
        scn_hist_observe(&a, 0.005); /* old, fast */
    c = a;
    for (int i = 0; i < 10; i++)
        scn_hist_observe(&c, 0.5); /* new, slow */
    assert_int_equal(scn_hist_delta(&a, &c, &d), 0);
    NEAR(scn_hist_count(&d), 10, 0);
    /* the interval's p50 reflects only the new, slow observations */
    double q = scn_hist_quantile(&d, 0.5);
    assert_true(q > 0.1 && q <= 1);
    NEAR(d.sum, 5.0, 1e-9);
    /* reset: cur below prev (server restarted) -> cur itself */
    scn_hist r;
    scn_hist_init(&r, b, 3);
    scn_hist_observe(&r, 0.05);
    assert_int_equal(scn_hist_delta(&c, &r, &d), 0);
    NEAR(scn_hist_count(&d), 1, 0);
    /* different bounds -> -1, out = cur */
    scn_hist o;
    scn_hist_init_latency(&o);
    assert_int_equal(scn_hist_delta(&c, &o, &d), -1);
    /* add: empty accumulator takes the first */
    scn_hist acc = {0};
    assert_int_equal(scn_hist_add(&acc, &c), 0);
    assert_int_equal(scn_hist_add(&acc, &c), 0);
    NEAR(scn_hist_count(&acc), 220, 0);
    assert_int_equal(scn_hist_add(&acc, &o), -1);
}

static void test_server_snap(void **st) {
    (void)st;
    scn_prom p;
    assert_int_equal(scn_prom_parse(scrape, strlen(scrape), &p, NULL, 0), 0);
    scn_server_snap s;
    scn_server_snap_from_prom(&p, &s);
    assert_true(s.ok && s.range_split);
    NEAR(s.req[SCN_M_LIST], 100, 0);
    NEAR(s.req[SCN_M_GET], 20, 0);
    NEAR(s.req[SCN_M_PUT], 42, 0);
    NEAR(s.req[SCN_M_TXN], 5, 0);
    NEAR(s.req[SCN_M_DELETE], 0, 0);
    NEAR(s.req[SCN_M_WATCH], 30, 0);
    NEAR(s.bytes_sent, 1500, 0);
    NEAR(scn_hist_count(&s.list_hist), 100, 0);
    NEAR(scn_hist_count(&s.get_hist), 20, 0);
    NEAR(s.revision, 77, 0);
    scn_prom_free(&p);

    /* etcd: no list/get split; Range counts as LIST, latency from grpc_server_handling_seconds */
    const char *etcd = "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\"} 9\n"
                       "grpc_server_started_total{grpc_method=\"Watch\"} 4\n"
                       "grpc_server_handling_seconds_bucket{grpc_method=\"Range\",le=\"0.005\"} 9\n"
                       "grpc_server_handling_seconds_bucket{grpc_method=\"Range\",le=\"+Inf\"} 9\n"
                       "grpc_server_handling_seconds_sum{grpc_method=\"Range\"} 0.01\n";
    assert_int_equal(scn_prom_parse(etcd, strlen(etcd), &p, NULL, 0), 0);
    scn_server_snap_from_prom(&p, &s);
    assert_false(s.range_split);
    NEAR(s.req[SCN_M_LIST], 9, 0);
    NEAR(s.req[SCN_M_WATCH], 4, 0);
    NEAR(scn_hist_count(&s.list_hist), 9, 0);
    assert_true(isnan(s.bytes_sent));
    scn_prom_free(&p);
}

static void snap_at(scn_snapshot *s, double t, double lists, double puts, bool ok) {
    scn_snapshot_init(s);
    s->t = t;
    s->srv.ok = ok;
    s->srv.range_split = true;
    s->srv.req[SCN_M_LIST] = lists;
    s->srv.req[SCN_M_PUT] = puts;
    s->relists_miss = t * 10;
    s->events = t * 100;
    s->synced = 5;
    double b[] = {0.001, 0.01, 0.1};
    scn_hist_init(&s->srv.list_hist, b, 3);
    s->srv.list_hist.cum[1] = s->srv.list_hist.cum[2] = s->srv.list_hist.cum[3] = lists;
}

static void test_sampler(void **st) {
    (void)st;
    scn_sampler sm;
    scn_sampler_init(&sm);
    scn_snapshot s;
    scn_sample out;
    snap_at(&s, 0, 0, 0, true);
    assert_int_equal(scn_sampler_push(&sm, &s, 0, &out), 0);
    snap_at(&s, 1, 50, 10, true);
    assert_int_equal(scn_sampler_push(&sm, &s, 0, &out), 1);
    NEAR(out.t, 1, 0);
    NEAR(out.dt, 1, 0);
    NEAR(out.v[SCN_F_LIST], 50, 1e-9);
    NEAR(out.v[SCN_F_PUT], 10, 1e-9);
    NEAR(out.v[SCN_F_REQUESTS], 60, 1e-9);
    NEAR(out.v[SCN_F_RELISTS], 10, 1e-9);
    NEAR(out.v[SCN_F_EVENTS], 100, 1e-9);
    NEAR(out.v[SCN_F_SYNCED], 5, 0);
    assert_true(isnan(out.v[SCN_F_CPU]));
    assert_true(out.list_ms[SCN_Q50] > 1 && out.list_ms[SCN_Q50] <= 10);
    assert_true(isnan(out.put_ms[SCN_Q50]));
    /* the server goes down: NaN server rates, client rates go on */
    snap_at(&s, 2, 0, 0, false);
    assert_int_equal(scn_sampler_push(&sm, &s, 1, &out), 1);
    assert_true(isnan(out.v[SCN_F_LIST]));
    assert_true(isnan(out.v[SCN_F_REQUESTS]));
    NEAR(out.v[SCN_F_EVENTS], 100, 1e-9);
    assert_int_equal(out.phase, 1);
    /* back after a restart: counters restarted from zero -> counted from zero this second */
    snap_at(&s, 3, 30, 3, true);
    assert_int_equal(scn_sampler_push(&sm, &s, 1, &out), 1);
    NEAR(out.v[SCN_F_LIST], 30, 1e-9);
    NEAR(out.v[SCN_F_PUT], 3, 1e-9);
    /* a transient scrape failure without a reset: the gap's counts spread over the gap */
    snap_at(&s, 4, 0, 0, false);
    scn_sampler_push(&sm, &s, 1, &out);
    snap_at(&s, 5, 130, 3, true);
    assert_int_equal(scn_sampler_push(&sm, &s, 1, &out), 1);
    NEAR(out.v[SCN_F_LIST], 50, 1e-9); /* 100 LISTs over 2 s */
}

/* Mutated scrapes never crash the parser. */
static void test_mutations(void **st) {
    (void)st;
    size_t n = strlen(scrape);
    char *buf = malloc(n + 1);
    unsigned seed = 3;
    static const char alphabet[] = " \n#\"{},=\\0123456789.eE+-InfNa_";
    for (int round = 0; round < 3000; round++) {
        memcpy(buf, scrape, n + 1);
        for (int k = 0; k < 1 + round % 6; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % n;
            seed = seed * 1103515245u + 12345u;
            buf[pos] = alphabet[(seed >> 8) % (sizeof alphabet - 1)];
        }
        scn_prom p;
        char err[128];
        size_t len = (seed >> 4) % 3 == 0 ? (seed >> 12) % n : n;
        if (scn_prom_parse(buf, len, &p, err, sizeof err) == 0) {
            scn_server_snap s;
            scn_server_snap_from_prom(&p, &s);
            scn_prom_free(&p);
        } else {
            assert_true(!strncmp(err, "line ", 5));
        }
    }
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_basics),        cmocka_unit_test(test_parse_escapes_and_values),
        cmocka_unit_test(test_histogram_quantiles), cmocka_unit_test(test_histogram_deltas),
        cmocka_unit_test(test_server_snap),         cmocka_unit_test(test_sampler),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
