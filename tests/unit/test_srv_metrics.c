/* test_srv_metrics.c — the Prometheus registry: golden rendering, escaping, histogram bucket
 * math, value formatting, registration rules, lock-free updates from several threads, the bounded
 * per-client table and the server's families. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"

static double fixed_42(void *ud) {
    (void)ud;
    return 42;
}

static void test_render_golden(void **state) {
    (void)state;
    kvs_registry *r = kvs_registry_new();
    assert_non_null(r);
    static const char *const req_labels[] = {"code", "path", NULL};
    static const char *const op[] = {"op", NULL};
    static const double b[] = {0.25, 0.5, 1};
    kvs_family *req =
        kvs_registry_counter(r, "app_requests_total", "Requests \\ with \n newline.", req_labels);
    kvs_family *temp = kvs_registry_gauge(r, "app_temp", "Temperature.", NULL);
    kvs_family *rev = kvs_registry_gauge(r, "app_rev", "Current revision.", NULL);
    kvs_family *lat =
        kvs_registry_family(r, "app_lat_seconds", "Latency.", KVS_HISTOGRAM, op, b, 3);
    kvs_family *empty = kvs_registry_counter(r, "app_zero_total", "Never used.", op);
    assert_non_null(req);
    assert_non_null(temp);
    assert_non_null(rev);
    assert_non_null(lat);
    assert_non_null(empty);
    /* created out of order: rendering sorts by label values */
    kvs_counter_add(kvs_family_series(req, (const char *[]){"404", "/b\"q\\\n"}), 1);
    kvs_counter_add(kvs_family_series(req, (const char *[]){"200", "/a"}), 3);
    kvs_gauge_set(kvs_family_only(temp), 21.5);
    kvs_series_set_fn(kvs_family_only(rev), fixed_42, NULL);
    kvs_series *get = kvs_family_series(lat, (const char *[]){"get"});
    kvs_histogram_observe(get, 0.125);
    kvs_histogram_observe(get, 0.25);
    kvs_histogram_observe(get, 0.75);
    kvs_histogram_observe(get, 3);

    char *text = NULL;
    size_t len = 0;
    assert_int_equal(kvs_registry_render(r, &text, &len), 0);
    const char *want = "# HELP app_lat_seconds Latency.\n"
                       "# TYPE app_lat_seconds histogram\n"
                       "app_lat_seconds_bucket{op=\"get\",le=\"0.25\"} 2\n"
                       "app_lat_seconds_bucket{op=\"get\",le=\"0.5\"} 2\n"
                       "app_lat_seconds_bucket{op=\"get\",le=\"1\"} 3\n"
                       "app_lat_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"
                       "app_lat_seconds_sum{op=\"get\"} 4.125\n"
                       "app_lat_seconds_count{op=\"get\"} 4\n"
                       "# HELP app_requests_total Requests \\\\ with \\n newline.\n"
                       "# TYPE app_requests_total counter\n"
                       "app_requests_total{code=\"200\",path=\"/a\"} 3\n"
                       "app_requests_total{code=\"404\",path=\"/b\\\"q\\\\\\n\"} 1\n"
                       "# HELP app_rev Current revision.\n"
                       "# TYPE app_rev gauge\n"
                       "app_rev 42\n"
                       "# HELP app_temp Temperature.\n"
                       "# TYPE app_temp gauge\n"
                       "app_temp 21.5\n";
    assert_string_equal(text, want);
    assert_int_equal(len, strlen(want));
    free(text);
    kvs_registry_free(r);
}

static void test_histogram_buckets(void **state) {
    (void)state;
    kvs_registry *r = kvs_registry_new();
    static const double b[] = {1, 2, 4, INFINITY}; /* a trailing +Inf is dropped, not doubled */
    kvs_family *f = kvs_registry_family(r, "h", "", KVS_HISTOGRAM, NULL, b, 4);
    assert_non_null(f);
    kvs_series *s = kvs_family_only(f);
    const double obs[] = {-5, 0, 1, 1.0000001, 2, 3.9, 4, 4.5, 1e300, INFINITY};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        kvs_histogram_observe(s, obs[i]);
    uint64_t cum[4], count = 0;
    double sum = 0;
    kvs_histogram_read(s, &count, &sum, cum);
    assert_int_equal(cum[0], 3);  /* -5, 0, 1 (le is inclusive) */
    assert_int_equal(cum[1], 5);  /* + 1.0000001, 2 */
    assert_int_equal(cum[2], 7);  /* + 3.9, 4 */
    assert_int_equal(cum[3], 10); /* + 4.5, 1e300, Inf */
    assert_int_equal(count, 10);
    assert_true(isinf(sum));

    /* default latency buckets: 100 µs .. 10 s */
    kvs_family *lat = kvs_registry_family(r, "lat_seconds", "", KVS_HISTOGRAM, NULL, NULL, 0);
    kvs_series *l = kvs_family_only(lat);
    kvs_histogram_observe(l, 0.0001);
    kvs_histogram_observe(l, 0.00011);
    kvs_histogram_observe(l, 10);
    kvs_histogram_observe(l, 11);
    uint64_t lc[KVS_LATENCY_BUCKETS_N + 1];
    kvs_histogram_read(l, &count, &sum, lc);
    assert_int_equal(lc[0], 1);
    assert_int_equal(lc[1], 2);
    assert_int_equal(lc[KVS_LATENCY_BUCKETS_N - 1], 3);
    assert_int_equal(lc[KVS_LATENCY_BUCKETS_N], 4);
    assert_int_equal(count, 4);
    char *text = NULL;
    assert_int_equal(kvs_registry_render(r, &text, NULL), 0);
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.0001\"} 1\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.00025\"} 2\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"10\"} 3\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(text, "lat_seconds_count 4\n"));
    assert_non_null(strstr(text, "h_sum +Inf\n"));
    free(text);
    kvs_registry_free(r);
}

static void check_fmt(double v, const char *want) {
    char buf[40];
    kvs_format_value(buf, sizeof buf, v);
    assert_string_equal(buf, want);
}

static void test_format_value(void **state) {
    (void)state;
    check_fmt(0, "0");
    check_fmt(-1, "-1");
    check_fmt(2.5, "2.5");
    check_fmt(0.1, "0.1");
    check_fmt(0.00025, "0.00025");
    check_fmt(1e-05, "1e-05");
    check_fmt(2147483648.0, "2147483648");
    check_fmt(1e20, "1e+20");
    check_fmt(1.0 / 3, "0.3333333333333333");
    check_fmt(NAN, "NaN");
    check_fmt(INFINITY, "+Inf");
    check_fmt(-INFINITY, "-Inf");
}

static void test_family_rules(void **state) {
    (void)state;
    kvs_registry *r = kvs_registry_new();
    static const char *const ab[] = {"a", "b", NULL}, *const ba[] = {"b", "a", NULL};
    static const char *const dup[] = {"a", "a", NULL}, *const le[] = {"le", NULL};
    static const char *const bad[] = {"0x", NULL}, *const reserved[] = {"__x", NULL};
    static const double unsorted[] = {1, 1}, nan_b[] = {NAN};
    assert_null(kvs_registry_counter(r, "0abc", "", NULL));
    assert_null(kvs_registry_counter(r, "a-b", "", NULL));
    assert_null(kvs_registry_counter(r, "", "", NULL));
    assert_null(kvs_registry_counter(r, "x", "", dup));
    assert_null(kvs_registry_counter(r, "x", "", bad));
    assert_null(kvs_registry_counter(r, "x", "", reserved));
    assert_null(kvs_registry_family(r, "x", "", KVS_HISTOGRAM, le, NULL, 0));
    assert_null(kvs_registry_family(r, "x", "", KVS_HISTOGRAM, NULL, unsorted, 2));
    assert_null(kvs_registry_family(r, "x", "", KVS_HISTOGRAM, NULL, nan_b, 1));
    assert_non_null(kvs_registry_gauge(r, "le_ok", "", le)); /* "le" is fine outside histograms */

    kvs_family *f = kvs_registry_counter(r, "ns:x_total", "help", ab);
    assert_non_null(f);
    assert_ptr_equal(kvs_registry_counter(r, "ns:x_total", "other help", ab), f);
    assert_null(kvs_registry_counter(r, "ns:x_total", "", ba));
    assert_null(kvs_registry_gauge(r, "ns:x_total", "", ab));

    /* a handle is stable and NULL label values mean "" */
    kvs_series *s1 = kvs_family_series(f, (const char *[]){"1", NULL});
    kvs_series *s2 = kvs_family_series(f, (const char *[]){"1", ""});
    assert_ptr_equal(s1, s2);
    assert_int_equal(kvs_family_series_count(f), 1);
    /* the separator keeps ("ab","") and ("a","b") apart */
    assert_ptr_not_equal(kvs_family_series(f, (const char *[]){"ab", ""}),
                         kvs_family_series(f, (const char *[]){"a", "b"}));
    /* wrong-type updates are ignored */
    kvs_gauge_set(s1, 5);
    kvs_histogram_observe(s1, 5);
    kvs_counter_add(s1, 2);
    assert_int_equal(kvs_counter_value(s1), 2);
    kvs_counter_add(NULL, 1); /* NULL handles are no-ops */
    /* many series: the lookup table grows while handles stay valid */
    for (int i = 0; i < 5000; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        kvs_counter_add(kvs_family_series(f, (const char *[]){v, "x"}), (uint64_t)i);
    }
    for (int i = 0; i < 5000; i += 499) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        assert_int_equal(kvs_counter_value(kvs_family_series(f, (const char *[]){v, "x"})), i);
    }
    assert_int_equal(kvs_counter_value(s1), 2);
    assert_int_equal(kvs_family_series_count(f), 5003);
    kvs_registry_free(r);
}

/* ---- concurrency ---- */

typedef struct {
    kvs_family *labelled;
    kvs_series *counter, *gauge, *hist;
    int iters;
    atomic_int stop;
    kvs_registry *r;
    size_t renders;
} conc;

static void *updater(void *arg) {
    conc *c = arg;
    for (int i = 0; i < c->iters; i++) {
        kvs_counter_inc(c->counter);
        if (i % 8 == 0) {
            kvs_gauge_add(c->gauge, 1);
            kvs_histogram_observe(c->hist, (i % 3) * 0.5);
            char v[16];
            snprintf(v, sizeof v, "k%d", (i / 8) % 1000); /* both threads create the same series */
            kvs_counter_inc(kvs_family_series(c->labelled, (const char *[]){v}));
        }
    }
    return NULL;
}

static void *renderer(void *arg) {
    conc *c = arg;
    while (!atomic_load(&c->stop)) {
        char *text = NULL;
        if (kvs_registry_render(c->r, &text, NULL) != 0)
            abort(); /* cmocka asserts: main thread only */
        free(text);
        c->renders++;
    }
    return NULL;
}

static void test_concurrent_updates(void **state) {
    (void)state;
    static const char *const k[] = {"k", NULL};
    conc c = {0};
    c.r = kvs_registry_new();
    c.iters = 1000000;
    c.counter = kvs_family_only(kvs_registry_counter(c.r, "c_total", "", NULL));
    c.gauge = kvs_family_only(kvs_registry_gauge(c.r, "g", "", NULL));
    c.hist = kvs_family_only(kvs_registry_family(c.r, "h", "", KVS_HISTOGRAM, NULL, NULL, 0));
    c.labelled = kvs_registry_counter(c.r, "l_total", "", k);
    pthread_t t1, t2, t3;
    pthread_create(&t3, NULL, renderer, &c);
    pthread_create(&t1, NULL, updater, &c);
    pthread_create(&t2, NULL, updater, &c);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    atomic_store(&c.stop, 1);
    pthread_join(t3, NULL);
    assert_int_equal(kvs_counter_value(c.counter), 2 * c.iters);
    assert_true(kvs_gauge_value(c.gauge) == 2.0 * (c.iters / 8));
    uint64_t count = 0;
    double sum = 0;
    kvs_histogram_read(c.hist, &count, &sum, NULL);
    assert_int_equal(count, 2 * (c.iters / 8));
    /* (i % 3) * 0.5 over i = 0, 8, 16, ...: exact in binary, so the sum is exact */
    double want = 0;
    for (int i = 0; i < c.iters; i += 8)
        want += (i % 3) * 0.5;
    assert_true(sum == 2 * want);
    assert_int_equal(kvs_family_series_count(c.labelled), 1000);
    uint64_t total = 0;
    for (int i = 0; i < 1000; i++) {
        char v[16];
        snprintf(v, sizeof v, "k%d", i);
        total += kvs_counter_value(kvs_family_series(c.labelled, (const char *[]){v}));
    }
    assert_int_equal(total, 2 * (c.iters / 8));
    printf("  concurrent: 2 x %d updates with %zu renders in between\n", c.iters, c.renders);
    kvs_registry_free(c.r);
}

/* ---- per-client table ---- */

static uint64_t sample(const char *text, const char *line_prefix) {
    const char *p = strstr(text, line_prefix);
    if (!p) return UINT64_MAX;
    return strtoull(p + strlen(line_prefix), NULL, 10);
}

static void test_peer_table(void **state) {
    (void)state;
    kvs_registry *r = kvs_registry_new();
    kvs_peer_table *t = kvs_peer_table_new(r, 3);
    assert_non_null(t);
    assert_null(kvs_peer_table_new(r, 3)); /* one per registry */
    kvs_peer *a = kvs_peer_acquire(t, "127.0.0.1:1001");
    kvs_peer *b = kvs_peer_acquire(t, "127.0.0.1:1002");
    assert_non_null(kvs_peer_acquire(t, "127.0.0.1:1003"));
    kvs_peer *d = kvs_peer_acquire(t, "127.0.0.1:1004"); /* over the bound */
    assert_string_equal(kvs_peer_label(d), "other");
    assert_ptr_equal(kvs_peer_acquire(t, "127.0.0.1:1001"), a); /* same address: same entry */
    kvs_peer_count_request(t, a, "Range");
    kvs_peer_count_request(t, a, "Range");
    kvs_peer_count_request(t, a, "Put");
    kvs_peer_count_request(t, b, "Watch");
    kvs_peer_count_request(t, d, "Range");
    kvs_peer_add_sent(a, 100);
    kvs_peer_add_sent(b, 7);
    kvs_peer_add_sent(d, 5);
    assert_int_equal(kvs_peer_requests(t, a, "Range"), 2);
    char *text = NULL;
    assert_int_equal(kvs_registry_render(r, &text, NULL), 0);
    const char *want_req =
        "# TYPE relistlab_client_requests_total counter\n"
        "relistlab_client_requests_total{peer=\"127.0.0.1:1001\",grpc_method=\"Put\"} 1\n"
        "relistlab_client_requests_total{peer=\"127.0.0.1:1001\",grpc_method=\"Range\"} 2\n"
        "relistlab_client_requests_total{peer=\"127.0.0.1:1002\",grpc_method=\"Watch\"} 1\n"
        "relistlab_client_requests_total{peer=\"other\",grpc_method=\"Range\"} 1\n";
    assert_non_null(strstr(text, want_req));
    const char *want_sent = "# TYPE relistlab_client_sent_bytes_total counter\n"
                            "relistlab_client_sent_bytes_total{peer=\"127.0.0.1:1001\"} 100\n"
                            "relistlab_client_sent_bytes_total{peer=\"127.0.0.1:1002\"} 7\n"
                            "relistlab_client_sent_bytes_total{peer=\"127.0.0.1:1003\"} 0\n"
                            "relistlab_client_sent_bytes_total{peer=\"other\"} 5\n";
    assert_non_null(strstr(text, want_sent));
    free(text);

    /* b closes; a new peer takes b's slot and b's counts move to "other" */
    kvs_peer_release(t, b);
    kvs_peer_release(t, d); /* releasing "other" is harmless */
    kvs_peer *e = kvs_peer_acquire(t, "127.0.0.1:1005");
    assert_string_equal(kvs_peer_label(e), "127.0.0.1:1005");
    assert_int_equal(kvs_peer_sent(e), 0);
    assert_int_equal(kvs_peer_sent(d), 12);
    assert_int_equal(kvs_peer_requests(t, d, "Watch"), 1);
    /* a is held twice: one release keeps it */
    kvs_peer_release(t, a);
    kvs_peer *f = kvs_peer_acquire(t, "127.0.0.1:1006");
    assert_string_equal(kvs_peer_label(f), "other");
    assert_int_equal(kvs_registry_render(r, &text, NULL), 0);
    assert_int_equal(sample(text, "relistlab_client_sent_bytes_total{peer=\"other\"} "), 12);
    assert_null(strstr(text, "1002"));
    free(text);
    kvs_registry_free(r);
}

/* ---- the server's families ---- */

static double rev_fn(void *ud) {
    return (double)*(int64_t *)ud;
}

static void test_srv_families(void **state) {
    (void)state;
    kvs_registry *r = kvs_registry_new();
    kvs_srv_metrics m;
    assert_int_equal(kvs_srv_metrics_init(&m, r), 0);
    kvs_rpc_metrics range;
    assert_int_equal(kvs_rpc_metrics_init(&m, "etcdserverpb.KV", "Range", "unary", &range), 0);
    kvs_counter_inc(range.started);
    kvs_counter_inc(range.msg_received);
    kvs_counter_inc(range.msg_sent);
    kvs_rpc_metrics_done(&range, 0, 0.002);
    kvs_counter_inc(range.started);
    kvs_rpc_metrics_done(&range, 11, 0.0001);
    kvs_srv_observe_range(&m, 1, 0.03);
    kvs_srv_observe_range(&m, 0, 0.0002);
    kvs_srv_observe_range(&m, 0, 0.0002);
    kvs_counter_inc(m.mvcc_range);
    int64_t rev = 1234;
    kvs_series_set_fn(m.current_revision, rev_fn, &rev);
    kvs_gauge_set(m.db_total_size, 20480);
    assert_string_equal(kvs_grpc_code_name(1), "Canceled");
    assert_string_equal(kvs_grpc_code_name(16), "Unauthenticated");
    assert_string_equal(kvs_grpc_code_name(99), "Unknown");

    char *text = NULL;
    assert_int_equal(kvs_registry_render(r, &text, NULL), 0);
    const char *lbl = "grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"";
    char line[512];
    snprintf(line, sizeof line, "grpc_server_handled_total{grpc_code=\"OK\",%s} 1\n", lbl);
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof line, "grpc_server_handled_total{grpc_code=\"OutOfRange\",%s} 1\n", lbl);
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof line, "grpc_server_handled_total{grpc_code=\"Unauthenticated\",%s} 0\n",
             lbl);
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof line, "grpc_server_started_total{%s} 2\n", lbl);
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof line, "grpc_server_handling_seconds_count{%s} 2\n", lbl);
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof line, "grpc_server_handling_seconds_bucket{%s,le=\"0.0001\"} 1\n", lbl);
    assert_non_null(strstr(text, line));
    assert_non_null(strstr(text, "# TYPE grpc_server_handling_seconds histogram\n"));
    assert_non_null(strstr(text, "etcd_debugging_mvcc_current_revision 1234\n"));
    assert_non_null(strstr(text, "etcd_debugging_mvcc_compact_revision -1\n"));
    assert_non_null(strstr(text, "etcd_mvcc_db_total_size_in_bytes 20480\n"));
    assert_non_null(strstr(text, "etcd_mvcc_range_total 1\n"));
    assert_non_null(strstr(text, "etcd_mvcc_put_total 0\n"));
    assert_non_null(strstr(text, "relistlab_range_requests_total{kind=\"get\"} 2\n"));
    assert_non_null(strstr(text, "relistlab_range_requests_total{kind=\"list\"} 1\n"));
    assert_non_null(strstr(text, "relistlab_range_seconds_bucket{kind=\"list\",le=\"0.025\"} 0\n"));
    assert_non_null(strstr(text, "relistlab_range_seconds_bucket{kind=\"list\",le=\"0.05\"} 1\n"));
    free(text);
    rev = 1300; /* callbacks are evaluated at scrape time */
    assert_int_equal(kvs_registry_render(r, &text, NULL), 0);
    assert_non_null(strstr(text, "etcd_debugging_mvcc_current_revision 1300\n"));
    free(text);
    kvs_registry_free(r);
}

/* ---- scale: a scrape with thousands of series ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_render_many_series(void **state) {
    (void)state;
    kvs_registry *r = kvs_registry_new();
    kvs_srv_metrics m;
    assert_int_equal(kvs_srv_metrics_init(&m, r), 0);
    static const char *const methods[] = {"Range",   "Put",   "DeleteRange", "Txn",
                                          "Compact", "Watch", "LeaseGrant",  "Status"};
    kvs_rpc_metrics rm[8];
    for (int i = 0; i < 8; i++) {
        assert_int_equal(kvs_rpc_metrics_init(&m, "etcdserverpb.KV", methods[i], "unary", &rm[i]),
                         0);
        kvs_rpc_metrics_done(&rm[i], 0, 0.001 * i);
    }
    for (int p = 0; p < 1024; p++) {
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", 30000 + p);
        kvs_peer *peer = kvs_peer_acquire(m.peers, addr);
        for (int i = 0; i < 8; i++)
            kvs_peer_count_request(m.peers, peer, methods[i]);
        kvs_peer_add_sent(peer, (uint64_t)p * 1000);
    }
    static const char *const k[] = {"key", NULL};
    kvs_family *big = kvs_registry_counter(r, "relistlab_test_series_total", "Scale test.", k);
    for (int i = 0; i < 5000; i++) {
        char v[16];
        snprintf(v, sizeof v, "k%05d", i);
        kvs_counter_add(kvs_family_series(big, (const char *[]){v}), 1);
    }
    double best = 1e9;
    size_t len = 0;
    for (int rep = 0; rep < 5; rep++) {
        char *text = NULL;
        double t0 = now_s();
        assert_int_equal(kvs_registry_render(r, &text, &len), 0);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
        free(text);
    }
    printf("  render: %zu bytes (~%d series) in %.2f ms (best of 5)\n", len,
           8 * 19 + 1024 * 9 + 5000, best * 1e3);
    assert_true(best < 0.5); /* generous: sanitizers and a shared 2-core machine */
    kvs_registry_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_golden),      cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_format_value),       cmocka_unit_test(test_family_rules),
        cmocka_unit_test(test_concurrent_updates), cmocka_unit_test(test_peer_table),
        cmocka_unit_test(test_srv_families),       cmocka_unit_test(test_render_many_series),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
