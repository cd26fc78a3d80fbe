/* test_refl_backoff.c — retry backoff (client-go's sequence and ranges with a seeded RNG, the
 * cap before jitter, the reset after a quiet period, exp: specs and their errors), durations,
 * the PRNG, and the token bucket (burst, then qps spacing, waits counted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "refl.h"

static refl_backoff_cfg cfg_of(const char *spec) {
    refl_backoff_cfg c;
    char err[256];
    if (refl_backoff_parse(spec, &c, err, sizeof err)) fail_msg("%s: %s", spec, err);
    return c;
}

static void test_client_go_sequence(void **state) {
    (void)state;
    refl_backoff_cfg c = cfg_of("client-go");
    assert_int_equal(c.kind, REFL_BACKOFF_EXP);
    assert_int_equal(c.initial_ms, 800);
    assert_int_equal(c.max_ms, 30000);
    assert_int_equal(c.reset_ms, 120000);
    refl_backoff b;
    refl_backoff_init(&b, &c, 12345, 0);
    /* the base delays double and are capped at 30 s; each sleep is in [d, 2d) */
    const int64_t base[] = {800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000, 30000};
    int64_t now = 0, sum = 0;
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) {
        int64_t d = refl_backoff_failure(&b, now);
        if (d < base[i] || d >= 2 * base[i])
            fail_msg("step %zu: %lld not in [%lld, %lld)", i, (long long)d, (long long)base[i],
                     (long long)(2 * base[i]));
        sum += d;
        now += d; /* retry right after the sleep, and fail again */
    }
    assert_int_equal(b.failures, 10);
    assert_true(b.total_ms == (double)sum);

    /* deterministic: the same seed replays the same sleeps, another seed does not */
    refl_backoff x, y, z;
    refl_backoff_init(&x, &c, 99, 0);
    refl_backoff_init(&y, &c, 99, 0);
    refl_backoff_init(&z, &c, 100, 0);
    int differ = 0;
    for (int i = 0; i < 8; i++) {
        int64_t dx = refl_backoff_failure(&x, i * 1000);
        assert_int_equal(dx, refl_backoff_failure(&y, i * 1000));
        differ += dx != refl_backoff_failure(&z, i * 1000);
    }
    assert_true(differ > 0);

    /* the jitter spreads across the whole range over many reflectors */
    int64_t lo = INT64_MAX, hi = 0;
    for (uint64_t seed = 0; seed < 500; seed++) {
        refl_backoff_init(&x, &c, seed, 0);
        int64_t d = refl_backoff_failure(&x, 0);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(lo < 820 && hi > 1580 && hi < 1600);
}

static void test_reset_after_quiet(void **state) {
    (void)state;
    refl_backoff_cfg c = cfg_of("exp:800ms,30s,2,0"); /* no jitter: exact values */
    refl_backoff b;
    refl_backoff_init(&b, &c, 1, 1000);
    assert_int_equal(refl_backoff_failure(&b, 1000), 800);
    assert_int_equal(refl_backoff_failure(&b, 2000), 1600);
    assert_int_equal(refl_backoff_failure(&b, 4000), 3200);
    /* success alone does not reset (client-go resets on quiet time only) */
    refl_backoff_success(&b, 5000);
    assert_int_equal(b.successes, 1);
    assert_int_equal(refl_backoff_failure(&b, 8000), 6400);
    /* exactly 2 minutes later: not yet quiet enough */
    assert_int_equal(refl_backoff_failure(&b, 8000 + 120000), 12800);
    /* more than 2 minutes without a failure: back to the start */
    assert_int_equal(refl_backoff_failure(&b, 8000 + 240001), 800);
    assert_int_equal(refl_backoff_failure(&b, 8000 + 240002), 1600);
    /* the quiet period counts from init before the first failure */
    refl_backoff_init(&b, &c, 1, 0);
    assert_int_equal(refl_backoff_failure(&b, 500000), 800);
}

static void test_exp_specs(void **state) {
    (void)state;
    refl_backoff b;
    refl_backoff_cfg c = cfg_of("exp:100ms,10s,2,0");
    refl_backoff_init(&b, &c, 1, 0);
    const int64_t want[] = {100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_int_equal(refl_backoff_failure(&b, (int64_t)i), want[i]);
    c = cfg_of("exp:1s,5s,1.5,0");
    refl_backoff_init(&b, &c, 1, 0);
    const int64_t want2[] = {1000, 1500, 2250, 3375, 5000, 5000};
    for (size_t i = 0; i < sizeof want2 / sizeof want2[0]; i++)
        assert_int_equal(refl_backoff_failure(&b, (int64_t)i), want2[i]);
    /* jitter 0.5: [d, 1.5d) */
    c = cfg_of("exp:100ms,10s,2,0.5");
    assert_true(c.factor == 2.0 && c.jitter == 0.5 && c.reset_ms == 120000);
    for (uint64_t seed = 0; seed < 200; seed++) {
        refl_backoff_init(&b, &c, seed, 0);
        int64_t d = refl_backoff_failure(&b, 0);
        assert_true(d >= 100 && d < 150);
        d = refl_backoff_failure(&b, 1);
        assert_true(d >= 200 && d < 300);
    }
    c = cfg_of("exp:100ms,1s,2,1,10s");
    assert_int_equal(c.reset_ms, 10000);
    /* none: retry at once */
    c = cfg_of("none");
    refl_backoff_init(&b, &c, 1, 0);
    assert_int_equal(refl_backoff_failure(&b, 0), 0);
    assert_int_equal(refl_backoff_failure(&b, 1), 0);
    assert_int_equal(b.failures, 2);

    /* canonical spelling round-trips */
    const char *specs[] = {"none", "client-go", "exp:100ms,10s,2,0.5", "exp:1500ms,1m,1.5,0,10s",
                           "exp:800ms,30s,2,1,3m"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        char buf[128];
        c = cfg_of(specs[i]);
        refl_backoff_format(&c, buf, sizeof buf);
        assert_string_equal(buf, specs[i]);
    }
    char buf[128];
    c = cfg_of("exp:800ms,30s,2,1");
    refl_backoff_format(&c, buf, sizeof buf);
    assert_string_equal(buf, "client-go"); /* same thing */
}

static void test_exp_errors(void **state) {
    (void)state;
    struct {
        const char *spec, *want; /* a word the message must contain */
    } bad[] = {
        {"", "unknown"},
        {"fast", "unknown"},
        {"exp:", "fields"},
        {"exp:1s", "fields"},
        {"exp:1s,2s,2", "fields"},
        {"exp:1s,2s,2,1,1m,9", "fields"},
        {"exp:x,2s,2,0", "INITIAL"},
        {"exp:10,2s,2,0", "INITIAL"},
        {"exp:1s,2sec,2,0", "MAX"},
        {"exp:1s,500ms,2,0", "MAX"},
        {"exp:0ms,1s,2,0", "INITIAL"},
        {"exp:1s,2s,0.5,0", "FACTOR"},
        {"exp:1s,2s,two,0", "FACTOR"},
        {"exp:1s,2s,2,-1", "JITTER"},
        {"exp:1s,2s,2,0.5x", "JITTER"},
        {"exp:1s,2s,2,0,soon", "RESET"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        refl_backoff_cfg c;
        char err[256];
        if (refl_backoff_parse(bad[i].spec, &c, err, sizeof err) != -1)
            fail_msg("accepted \"%s\"", bad[i].spec);
        if (!strstr(err, bad[i].want)) fail_msg("\"%s\": message \"%s\"", bad[i].spec, err);
    }
    refl_backoff_cfg c;
    assert_int_equal(refl_backoff_parse(NULL, &c, NULL, 0), -1); /* no buffer is fine */
}

static void test_durations_and_rng(void **state) {
    (void)state;
    struct {
        const char *s;
        int64_t ms;
    } ok[] = {{"800ms", 800}, {"1.5s", 1500}, {"2m", 120000}, {"1h", 3600000},
              {"0", 0},       {"0s", 0},      {"0.5ms", 1},   {"30s", 30000}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -1;
        assert_int_equal(refl_parse_duration_ms(ok[i].s, &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    const char *bad[] = {"", "ms", "1", "-1s", "1x", "1.s", " 1s", "1s ", "inf", "1e3ms", NULL};
    for (size_t i = 0; bad[i]; i++) {
        int64_t ms;
        if (refl_parse_duration_ms(bad[i], &ms) == 0) fail_msg("accepted \"%s\"", bad[i]);
    }
    refl_rng a, b;
    refl_rng_seed(&a, 5);
    refl_rng_seed(&b, 5);
    double sum = 0;
    for (int i = 0; i < 10000; i++) {
        double u = refl_rng_uniform(&a);
        assert_true(u >= 0 && u < 1);
        assert_true(u == refl_rng_uniform(&b));
        sum += u;
    }
    assert_true(sum / 10000 > 0.48 && sum / 10000 < 0.52);
}

static void test_token_bucket(void **state) {
    (void)state;
    double qps, burst;
    char err[128];
    assert_int_equal(refl_ratelimit_parse("client-go", &qps, &burst, err, sizeof err), 0);
    assert_true(qps == 5 && burst == 10);
    refl_tokenbucket tb;
    refl_tokenbucket_init(&tb, qps, burst, 0);
    /* the burst goes at once */
    for (int i = 0; i < 10; i++)
        assert_int_equal(refl_tokenbucket_take(&tb, 0), 0);
    assert_int_equal(tb.waits, 0);
    /* then one token every 200 ms; queued takes get their own slots in order */
    assert_int_equal(refl_tokenbucket_take(&tb, 0), 200);
    assert_int_equal(refl_tokenbucket_take(&tb, 0), 400);
    assert_int_equal(refl_tokenbucket_take(&tb, 100), 500);
    assert_int_equal(tb.waits, 3);
    assert_int_equal(tb.wait_ms_total, 1100);
    /* 1 s later: 5 new tokens, 2.5 owed to the queue */
    assert_int_equal(refl_tokenbucket_take(&tb, 1100), 0);
    assert_int_equal(refl_tokenbucket_take(&tb, 1100), 0);
    assert_int_equal(refl_tokenbucket_take(&tb, 1100), 100);
    /* time going backwards adds nothing */
    assert_int_equal(refl_tokenbucket_take(&tb, 50), 300);
    /* idle refills only up to the burst */
    refl_tokenbucket_init(&tb, 5, 10, 0);
    for (int i = 0; i < 10; i++)
        refl_tokenbucket_take(&tb, 0);
    int free_takes = 0;
    while (refl_tokenbucket_take(&tb, 3600000) == 0)
        free_takes++;
    assert_int_equal(free_takes, 10);

    /* a client that waits as told runs at qps after the burst */
    refl_tokenbucket_init(&tb, 5, 10, 0);
    int64_t now = 0;
    for (int i = 0; i < 100; i++)
        now += refl_tokenbucket_take(&tb, now);
    assert_true(now >= 17900 && now <= 18100);
    assert_int_equal(tb.waits, 90);
    assert_int_equal(tb.takes, 100);

    /* fractional spacing rounds up */
    refl_tokenbucket_init(&tb, 3, 1, 0);
    assert_int_equal(refl_tokenbucket_take(&tb, 0), 0);
    assert_int_equal(refl_tokenbucket_take(&tb, 0), 334);

    /* qps 0 = unlimited */
    assert_int_equal(refl_ratelimit_parse("none", &qps, &burst, err, sizeof err), 0);
    refl_tokenbucket_init(&tb, qps, burst, 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(refl_tokenbucket_take(&tb, 0), 0);
    assert_int_equal(tb.waits, 0);

    assert_int_equal(refl_ratelimit_parse("50/100", &qps, &burst, err, sizeof err), 0);
    assert_true(qps == 50 && burst == 100);
    const char *bad[] = {"5", "a/b", "-1/2", "5/10x", "", NULL};
    for (int i = 0; bad[i]; i++) {
        assert_int_equal(refl_ratelimit_parse(bad[i], &qps, &burst, err, sizeof err), -1);
        assert_non_null(strstr(err, "QPS/BURST"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_go_sequence), cmocka_unit_test(test_reset_after_quiet),
        cmocka_unit_test(test_exp_specs),          cmocka_unit_test(test_exp_errors),
        cmocka_unit_test(test_durations_and_rng),  cmocka_unit_test(test_token_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
