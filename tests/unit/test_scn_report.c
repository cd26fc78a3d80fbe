/* test_scn_report.c — reports from a synthetic compare: the terminal table has a column per
 * mode and the summary rows; the HTML is self-contained with balanced tags and one SVG per
 * chart; summary.json parses and has the documented shape; timeline.csv has one row per mode
 * per sample; --out writes the four files. Set SCN_TEST_REPORT_DIR to keep a copy to look at. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "test_scn_synth.h"
#include "testutil.h"

typedef struct fixture {
    scn_script s;
    scn_result *r;
    scn_verdict *v;
    size_t nv;
} fixture;

static int setup(void **st) {
    fixture *f = calloc(1, sizeof *f);
    scn_errors e = {0};
    if (scn_parse(synth_script, strlen(synth_script), "synth.scn", &f->s, &e)) return -1;
    f->r = scn_result_new(&f->s);
    synth_fill(f->r);
    snprintf(f->r->runs[1].note, sizeof f->r->runs[1].note, "synthetic <storm> & \"quotes\"");
    if (scn_expect_eval(&f->s, f->r, &f->v, &f->nv)) return -1;
    *st = f;
    return 0;
}

static int teardown(void **st) {
    fixture *f = *st;
    free(f->v);
    scn_result_free(f->r);
    scn_script_free(&f->s);
    free(f);
    return 0;
}

static void test_table(void **st) {
    fixture *f = *st;
    char *t = scn_report_table(f->r, f->v, f->nv);
    assert_non_null(t);
    fprintf(stderr, "%s", t);
    const char *want[] = {"scenario relist-storm: synthetic incident",
                          "window: churn",
                          "namespaced",
                          "mismatch",
                          "request rate peak /s",
                          "LIST rate mean /s",
                          "LIST rate p50 /s",
                          "LIST rate max /s",
                          "LIST latency p50 ms",
                          "LIST latency p99 ms",
                          "put latency p50 ms",
                          "put latency p99 ms",
                          "relists (miss/compacted/error)",
                          "misses",
                          "divergent",
                          "SLO (LIST p99 <= 5s)",
                          "2 pass, 1 FAIL",
                          "expectations: 5 passed, 3 failed, 0 skipped"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(t, want[i])) fprintf(stderr, "missing: %s\n", want[i]);
        assert_non_null(strstr(t, want[i]));
    }
    /* the header row names the modes in order, on one line */
    const char *h = strstr(t, "namespaced  ");
    assert_non_null(h);
    const char *eol = strchr(h, '\n');
    const char *mm = strstr(h, "mismatch");
    assert_true(mm && mm < eol);
    free(t);

    char *md = scn_report_markdown(f->r, f->v, f->nv);
    assert_non_null(md);
    assert_non_null(strstr(md, "|  | namespaced | mismatch |"));
    assert_non_null(strstr(md, "|---|---:|---:|"));
    assert_non_null(strstr(md, "## Expectations"));
    free(md);
}

/* Every opened tag closes in order; void elements and self-closing tags excepted. */
static void check_balanced(const char *h) {
    char stack[256][32];
    size_t depth = 0;
    for (const char *p = h; (p = strchr(p, '<'));) {
        if (!strncmp(p, "<!--", 4)) {
            p = strstr(p, "-->");
            assert_non_null(p);
            continue;
        }
        if (p[1] == '!') {
            p = strchr(p, '>');
            continue;
        }
        bool closing = p[1] == '/';
        const char *n = p + (closing ? 2 : 1);
        size_t len = 0;
        while (isalnum((unsigned char)n[len]))
            len++;
        assert_true(len > 0 && len < 32);
        const char *end = strchr(n, '>');
        assert_non_null(end);
        char name[32];
        memcpy(name, n, len);
        name[len] = 0;
        bool self = end[-1] == '/' || !strcmp(name, "meta");
        if (closing) {
            assert_true(depth > 0);
            if (strcmp(stack[depth - 1], name) != 0)
                fprintf(stderr, "closing </%s> but open <%s>\n", name, stack[depth - 1]);
            assert_string_equal(stack[depth - 1], name);
            depth--;
        } else if (!self) {
            assert_true(depth < 256);
            strcpy(stack[depth++], name);
            if (!strcmp(name, "style")) { /* CSS is text */
                end = strstr(end, "</style>");
                assert_non_null(end);
                end--;
            }
        }
        p = end + 1;
    }
    assert_int_equal(depth, 0);
}

static size_t count(const char *h, const char *needle) {
    size_t n = 0;
    for (const char *p = h; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void test_html(void **st) {
    fixture *f = *st;
    char *h = scn_report_html(f->r, f->v, f->nv);
    assert_non_null(h);
    check_balanced(h);
    assert_int_equal(count(h, "<svg"), 6);
    assert_true(count(h, "<polyline") >= 12);      /* a line per mode per chart (+ p50 lines) */
    assert_non_null(strstr(h, "(log scale)"));     /* LIST rate: 0 vs ~1850 */
    assert_non_null(strstr(h, ">churn</text>"));   /* phase boundary label */
    assert_non_null(strstr(h, "class=\"phase\"")); /* phase boundary line */
    assert_non_null(strstr(h, "synthetic &lt;storm&gt; &amp; &quot;quotes&quot;"));
    /* self-contained: no script, no external resources */
    assert_null(strstr(h, "<script"));
    assert_null(strstr(h, "src="));
    assert_null(strstr(h, "href="));
    assert_null(strstr(h, "https://"));
    assert_int_equal(count(h, "http://"), 6); /* only the SVG namespace */
    free(h);
}

/* ---- a minimal JSON validator: returns the position after one value, NULL if invalid ---- */
static const char *ws(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}
static const char *jvalue(const char *p);
static const char *jstring(const char *p) {
    if (*p != '"') return NULL;
    for (p++; *p && *p != '"'; p++) {
        if ((unsigned char)*p < 0x20) return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i])) return NULL;
                p += 4;
            } else if (!strchr("\"\\/bfnrt", *p)) {
                return NULL;
            }
        }
    }
    return *p == '"' ? p + 1 : NULL;
}
static const char *jvalue(const char *p) {
    p = ws(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = ws(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                p = jstring(ws(p));
                if (!p) return NULL;
                p = ws(p);
                if (*p != ':') return NULL;
                p++;
            }
            p = jvalue(p);
            if (!p) return NULL;
            p = ws(p);
            if (*p == ',') {
                p++;
                continue;
            }
            return *p == close ? p + 1 : NULL;
        }
    }
    if (*p == '"') return jstring(p);
    if (!strncmp(p, "true", 4)) return p + 4;
    if (!strncmp(p, "false", 5)) return p + 5;
    if (!strncmp(p, "null", 4)) return p + 4;
    char *e;
    strtod(p, &e);
    if (e == p || !strncmp(p, "nan", 3) || !strncmp(p, "inf", 3)) return NULL;
    return e;
}

static void test_json(void **st) {
    fixture *f = *st;
    char *j = scn_report_json(f->r, f->v, f->nv);
    assert_non_null(j);
    const char *end = jvalue(j);
    if (!end) fprintf(stderr, "%s\n", j);
    assert_non_null(end);
    assert_int_equal(*ws(end), 0);
    const char *want[] = {"\"modes\": {",
                          "\"namespaced\": {",
                          "\"mismatch\": {",
                          "\"list_rate\": {\"mean\": ",
                          "\"p50\": ",
                          "\"max\": ",
                          "\"list_latency_ms\": {\"p50\": ",
                          "\"p99\": ",
                          "\"put_latency_ms\": {\"p50\": ",
                          "\"relists\": ",
                          "\"relists_by_cause\": {\"miss\": ",
                          "\"misses\": ",
                          "\"divergent\": 0",
                          "\"expectations\": [",
                          "\"pass\": true",
                          "\"pass\": false",
                          "\"phases\": {",
                          "\"warmup\": {",
                          "\"slo\": {\"ok\": ",
                          "\"failed\": 3",
                          "\"window\": \"churn\""};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(j, want[i])) fprintf(stderr, "missing: %s\n", want[i]);
        assert_non_null(strstr(j, want[i]));
    }
    /* the calm mode has no LIST in churn: null, not 0 */
    assert_non_null(strstr(j, "\"list_latency_ms\": {\"p50\": null"));
    free(j);
    /* strings with control characters and quotes stay valid */
    snprintf(f->r->title, sizeof f->r->title, "tab\there \"q\" \\ \x01");
    j = scn_report_json(f->r, f->v, f->nv);
    assert_non_null(jvalue(j));
    free(j);
}

static void test_csv(void **st) {
    fixture *f = *st;
    char *c = scn_report_csv(f->r);
    assert_non_null(c);
    size_t lines = 0, header_commas = 0;
    for (const char *p = c; *p;) {
        const char *e = strchr(p, '\n');
        assert_non_null(e);
        size_t commas = 0;
        for (const char *q = p; q < e; q++)
            commas += *q == ',';
        if (lines == 0) {
            header_commas = commas;
            assert_true(!strncmp(p, "mode,t,dt,phase,request_rate,list_rate,", 39));
        } else {
            assert_int_equal(commas, header_commas);
        }
        lines++;
        p = e + 1;
    }
    assert_int_equal(lines, 1 + 40 * 2);
    assert_non_null(strstr(c, "\nnamespaced,1.000,1.000,warmup,"));
    assert_non_null(strstr(c, "\nmismatch,40.000,1.000,churn,"));
    free(c);
}

static void test_write_dir(void **st) {
    fixture *f = *st;
    char *dir = tu_mkdtemp("scn-report");
    char out[512], err[256];
    snprintf(out, sizeof out, "%s/nested/out", dir);
    assert_int_equal(scn_report_write_dir(out, f->r, f->v, f->nv, err, sizeof err), 0);
    const char *files[] = {"report.html", "report.md", "timeline.csv", "summary.json"};
    for (size_t i = 0; i < 4; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        struct stat sb;
        assert_int_equal(stat(p, &sb), 0);
        assert_true(sb.st_size > 100);
    }
    assert_int_equal(
        scn_report_write_dir("/proc/definitely/not", f->r, f->v, f->nv, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot create"));
    tu_rmtree(dir);
    const char *keep = getenv("SCN_TEST_REPORT_DIR");
    if (keep && *keep)
        assert_int_equal(scn_report_write_dir(keep, f->r, f->v, f->nv, err, sizeof err), 0);
}

/* by-phase columns for a single run; an empty run still renders */
static void test_single_run_and_empty(void **st) {
    (void)st;
    const char *text = "phase calm 3s\nphase storm 3s\nphase recovery 3s\n";
    scn_script s;
    scn_errors e = {0};
    assert_int_equal(scn_parse(text, strlen(text), "one.scn", &s, &e), 0);
    scn_result *r = scn_result_new(&s);
    char *t = scn_report_table(r, NULL, 0);
    assert_non_null(t);
    assert_non_null(strstr(t, "calm"));
    assert_non_null(strstr(t, "recovery"));
    free(t);
    char *h = scn_report_html(r, NULL, 0);
    check_balanced(h);
    assert_int_equal(count(h, ">no data</text>"), 6);
    free(h);
    char *j = scn_report_json(r, NULL, 0);
    assert_non_null(jvalue(j));
    free(j);
    scn_result_free(r);
    scn_script_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_dir, setup, teardown),
        cmocka_unit_test(test_single_run_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
