/* test_refl_labobj.c — lab-object metadata: the wire scanner against protobuf-c's own encoder
 * and decoder (including every truncation and random bytes), the etcd-key fallback on odd keys,
 * the key constructions of each mode, and the enum names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lab.pb-c.h"
#include "refl.h"

/* Packs a LabObject with protobuf-c (the reference encoder). Returns a malloc'd buffer. */
static uint8_t *pack_lab(const char *res, const char *ns, const char *name, const char *uid,
                         size_t payload_len, size_t *len) {
    Relistlab__LabObject o = RELISTLAB__LAB_OBJECT__INIT;
    Relistlab__LabObject__LabelsEntry le = RELISTLAB__LAB_OBJECT__LABELS_ENTRY__INIT;
    Relistlab__LabObject__LabelsEntry *lp = &le;
    le.key = "app";
    le.value = "web";
    o.resource = (char *)res;
    o.namespace_ = (char *)ns;
    o.name = (char *)name;
    o.uid = (char *)uid;
    o.n_labels = 1;
    o.labels = &lp;
    uint8_t *payload = calloc(1, payload_len + 1);
    memset(payload, 'x', payload_len);
    o.payload.data = payload;
    o.payload.len = payload_len;
    *len = relistlab__lab_object__get_packed_size(&o);
    uint8_t *buf = malloc(*len + 1);
    relistlab__lab_object__pack(&o, buf);
    free(payload);
    return buf;
}

static void assert_str(refl_str s, const char *want) {
    size_t n = strlen(want);
    if (s.n != n || (n && memcmp(s.p, want, n)))
        fail_msg("got \"%.*s\", want \"%s\"", (int)s.n, s.p, want);
}

static void test_value_decode(void **state) {
    (void)state;
    size_t len;
    uint8_t *v = pack_lab("pods", "team-a", "web-0", "uid-123", 300, &len);
    refl_objmeta m;
    assert_int_equal(refl_meta_from_value(v, len, &m), 0);
    assert_str(m.ns, "team-a");
    assert_str(m.name, "web-0");
    assert_str(m.uid, "uid-123");
    assert_int_equal(m.source, REFL_META_VALUE);
    /* extraction prefers the value even when the key disagrees */
    refl_meta_extract("/registry/pods/other/x", 22, v, len, &m);
    assert_str(m.name, "web-0");
    free(v);

    /* cluster-scoped lab object, no uid: uid falls back to the etcd key */
    v = pack_lab("nodes", "", "node-1", "", 0, &len);
    const char *key = "/registry/nodes/node-1";
    refl_meta_extract(key, strlen(key), v, len, &m);
    assert_int_equal(m.source, REFL_META_VALUE);
    assert_int_equal(m.ns.n, 0);
    assert_str(m.name, "node-1");
    assert_str(m.uid, key);
    free(v);

    /* empty name: not a lab object, the key decides */
    v = pack_lab("pods", "ns", "", "u", 0, &len);
    assert_int_equal(refl_meta_from_value(v, len, &m), -1);
    key = "/registry/pods/team-b/db-1";
    refl_meta_extract(key, strlen(key), v, len, &m);
    assert_int_equal(m.source, REFL_META_KEY);
    assert_str(m.ns, "team-b");
    assert_str(m.name, "db-1");
    assert_str(m.uid, key);
    free(v);
}

static void test_value_odd_wire(void **state) {
    (void)state;
    refl_objmeta m;
    /* name = "a" then a repeated name: the last one wins, as in protobuf */
    const uint8_t twice[] = {0x1a, 1, 'a', 0x12, 2, 'n', 's', 0x1a, 2, 'b', 'c'};
    assert_int_equal(refl_meta_from_value(twice, sizeof twice, &m), 0);
    assert_str(m.name, "bc");
    assert_str(m.ns, "ns");
    /* unknown fields of every wire type are skipped */
    const uint8_t unknown[] = {0x38, 0x96, 0x01,                           /* 7 varint */
                               0x41, 1,    2,    3,   4,   5,    6, 7,  8, /* 8 fixed64 */
                               0x4d, 1,    2,    3,   4,                   /* 9 fixed32 */
                               0x52, 3,    'x',  'y', 'z', 0x1a, 1, 'n'};  /* 10 bytes, name */
    assert_int_equal(refl_meta_from_value(unknown, sizeof unknown, &m), 0);
    assert_str(m.name, "n");
    /* failures: name as varint, a group, field 0, length past the end, varint too long,
     * an empty value, plain text and JSON */
    const uint8_t name_varint[] = {0x18, 5};
    const uint8_t group[] = {0x1a, 1, 'a', 0x3b};
    const uint8_t field0[] = {0x02, 1, 'a'};
    const uint8_t overlong[] = {0x1a, 5, 'a'};
    const uint8_t bigvarint[] = {0x1a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    const uint8_t hugelen[] = {0x1a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 'a'};
    assert_int_equal(refl_meta_from_value(name_varint, sizeof name_varint, &m), -1);
    assert_int_equal(refl_meta_from_value(group, sizeof group, &m), -1);
    assert_int_equal(refl_meta_from_value(field0, sizeof field0, &m), -1);
    assert_int_equal(refl_meta_from_value(overlong, sizeof overlong, &m), -1);
    assert_int_equal(refl_meta_from_value(bigvarint, sizeof bigvarint, &m), -1);
    assert_int_equal(refl_meta_from_value(hugelen, sizeof hugelen, &m), -1);
    assert_int_equal(refl_meta_from_value("", 0, &m), -1);
    assert_int_equal(refl_meta_from_value(NULL, 0, &m), -1);
    assert_int_equal(refl_meta_from_value("hello world", 11, &m), -1);
    assert_int_equal(refl_meta_from_value("{\"name\":\"x\"}", 12, &m), -1);
    assert_int_equal(m.name.n, 0); /* zeroed on failure */
}

/* Every prefix of a valid encoding: never crashes (ASan), and whatever it accepts agrees
 * with protobuf-c whenever protobuf-c also accepts it. */
static void test_value_truncations(void **state) {
    (void)state;
    size_t len;
    uint8_t *v = pack_lab("pods", "team-a", "web-0", "uid-1", 40, &len);
    for (size_t n = 0; n <= len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, v, n);
        refl_objmeta m;
        int rc = refl_meta_from_value(cut, n, &m);
        Relistlab__LabObject *o = relistlab__lab_object__unpack(NULL, n, cut);
        if (o && o->name[0]) {
            assert_int_equal(rc, 0);
            assert_str(m.name, o->name);
            assert_str(m.ns, o->namespace_);
            assert_str(m.uid, o->uid);
        }
        if (o) relistlab__lab_object__free_unpacked(o, NULL);
        free(cut);
    }
    refl_objmeta m;
    assert_int_equal(refl_meta_from_value(v, len, &m), 0);
    free(v);
}

/* protobuf-c hands strings out as C strings: compare up to an embedded NUL. */
static int same_cstr(refl_str s, const char *c) {
    const char *nul = s.n ? memchr(s.p, 0, s.n) : NULL;
    size_t n = nul ? (size_t)(nul - s.p) : s.n;
    return n == strlen(c) && (n == 0 || !memcmp(s.p, c, n));
}

/* Random and mutated bytes: protobuf-c is the oracle where it accepts the input. */
static void test_value_fuzz(void **state) {
    (void)state;
    refl_rng rng;
    refl_rng_seed(&rng, 42);
    size_t vlen;
    uint8_t *valid = pack_lab("pods", "ns-1", "obj-1", "uid-1", 16, &vlen);
    unsigned agreed = 0;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t buf[64];
        size_t n;
        if (iter % 2) { /* mutate a valid object */
            n = vlen < sizeof buf ? vlen : sizeof buf;
            memcpy(buf, valid, n);
            for (int k = 0; k < 3; k++)
                buf[refl_rng_next(&rng) % n] = (uint8_t)refl_rng_next(&rng);
        } else { /* short random strings of mostly plausible tags */
            n = refl_rng_next(&rng) % 24;
            for (size_t i = 0; i < n; i++) {
                uint64_t r = refl_rng_next(&rng);
                buf[i] = (r & 1) ? (uint8_t)(0x12 + 8 * ((r >> 1) % 3)) : (uint8_t)(r >> 8) % 8;
            }
        }
        refl_objmeta m;
        int rc = refl_meta_from_value(buf, n, &m);
        Relistlab__LabObject *o = relistlab__lab_object__unpack(NULL, n, buf);
        if (o && o->name[0]) {
            assert_int_equal(rc, 0);
            assert_true(same_cstr(m.name, o->name));
            assert_true(same_cstr(m.ns, o->namespace_));
            assert_true(same_cstr(m.uid, o->uid));
            agreed++;
        }
        if (rc == 0) { /* slices stay inside the input */
            assert_true(m.name.p >= (const char *)buf &&
                        m.name.p + m.name.n <= (const char *)buf + n);
        }
        if (o) relistlab__lab_object__free_unpacked(o, NULL);
    }
    assert_true(agreed > 100);
    free(valid);
}

static void check_key(const char *key, const char *ns, const char *name) {
    refl_objmeta m;
    refl_meta_from_key(key, strlen(key), &m);
    assert_int_equal(m.source, REFL_META_KEY);
    assert_str(m.ns, ns);
    assert_str(m.name, name);
    assert_str(m.uid, key);
}

static void test_key_fallback(void **state) {
    (void)state;
    check_key("/registry/pods/team-a/web-0", "team-a", "web-0");
    check_key("/registry/nodes/node-1", "", "node-1");
    check_key("/registry/pods/a/b/c", "a", "b/c"); /* names never hold '/', keep the rest */
    check_key("/registry/pods//x", "", "/x");
    check_key("/registry/pods/a/", "", "a/");
    check_key("/registry/pods/", "", "/registry/pods/");
    check_key("/registry/pods", "", "/registry/pods");
    check_key("/registry/", "", "/registry/");
    check_key("/registry//a/b", "", "/registry//a/b");
    check_key("foo", "", "foo");
    check_key("", "", "");
    /* a key with a NUL byte inside is taken by length */
    const char nul[] = "/registry/pods/a\0b/c";
    refl_objmeta m;
    refl_meta_from_key(nul, sizeof nul - 1, &m);
    assert_int_equal(m.ns.n, 3);
    assert_int_equal(m.name.n, 1);
    /* a non-lab value falls back to the key */
    const char *k = "/registry/cm/kube-system/cfg";
    refl_meta_extract(k, strlen(k), "plain text", 10, &m);
    assert_int_equal(m.source, REFL_META_KEY);
    assert_str(m.ns, "kube-system");
    assert_str(m.name, "cfg");
}

static void test_key_format(void **state) {
    (void)state;
    refl_objmeta m;
    const char *k = "/registry/pods/a/web-0";
    refl_meta_from_key(k, strlen(k), &m);
    char buf[64];
    assert_int_equal(refl_key_format(REFL_KEY_NAMESPACED, REFL_PHASE_LIST, &m, buf, sizeof buf), 7);
    assert_string_equal(buf, "a/web-0");
    refl_key_format(REFL_KEY_NAMESPACED, REFL_PHASE_EVENT, &m, buf, sizeof buf);
    assert_string_equal(buf, "a/web-0");
    refl_key_format(REFL_KEY_NAME, REFL_PHASE_EVENT, &m, buf, sizeof buf);
    assert_string_equal(buf, "web-0");
    refl_key_format(REFL_KEY_MISMATCH, REFL_PHASE_LIST, &m, buf, sizeof buf);
    assert_string_equal(buf, "web-0");
    refl_key_format(REFL_KEY_MISMATCH, REFL_PHASE_EVENT, &m, buf, sizeof buf);
    assert_string_equal(buf, "a/web-0");
    refl_key_format(REFL_KEY_UID, REFL_PHASE_LIST, &m, buf, sizeof buf);
    assert_string_equal(buf, k);
    /* truncation reports the full length, like snprintf */
    assert_int_equal(refl_key_format(REFL_KEY_NAMESPACED, REFL_PHASE_LIST, &m, buf, 4), 7);
    assert_string_equal(buf, "a/w");
    assert_int_equal(refl_key_format(REFL_KEY_NAMESPACED, REFL_PHASE_LIST, &m, NULL, 0), 7);
    /* cluster-scoped: namespaced construction is just the name, so MISMATCH agrees */
    k = "/registry/nodes/n1";
    refl_meta_from_key(k, strlen(k), &m);
    refl_key_format(REFL_KEY_MISMATCH, REFL_PHASE_EVENT, &m, buf, sizeof buf);
    assert_string_equal(buf, "n1");
}

static void test_enum_names(void **state) {
    (void)state;
    refl_key_mode km;
    refl_miss_policy mp;
    const char *modes[] = {"namespaced", "name", "mismatch", "uid"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(refl_key_mode_parse(modes[i], &km), 0);
        assert_int_equal(km, i);
        assert_string_equal(refl_key_mode_name(km), modes[i]);
    }
    assert_int_equal(refl_key_mode_parse("Name", &km), -1);
    assert_int_equal(refl_key_mode_parse(NULL, &km), -1);
    const char *pols[] = {"relist", "get", "ignore"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(refl_miss_policy_parse(pols[i], &mp), 0);
        assert_int_equal(mp, i);
        assert_string_equal(refl_miss_policy_name(mp), pols[i]);
    }
    assert_int_equal(refl_miss_policy_parse("retry", &mp), -1);
    assert_string_equal(refl_miss_policy_name((refl_miss_policy)9), "unknown");
    assert_int_equal(refl_event_type_of(false, 5, 5), REFL_EV_ADDED);
    assert_int_equal(refl_event_type_of(false, 5, 9), REFL_EV_MODIFIED);
    assert_int_equal(refl_event_type_of(true, 5, 9), REFL_EV_DELETED);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_decode),      cmocka_unit_test(test_value_odd_wire),
        cmocka_unit_test(test_value_truncations), cmocka_unit_test(test_value_fuzz),
        cmocka_unit_test(test_key_fallback),      cmocka_unit_test(test_key_format),
        cmocka_unit_test(test_enum_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
