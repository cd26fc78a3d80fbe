/* fuzz_labobj.c — libFuzzer target for the reflector's object identity extraction
 * (watcher/refl_labobj.c): refl_meta_from_value on arbitrary value bytes, refl_meta_from_key on
 * arbitrary key bytes, and refl_meta_extract on a key/value split of the input. Checks the
 * documented invariants: every slice lies inside the buffer it came from, a failed value scan
 * zeroes its output, and extraction from a non-empty key always names the object. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "refl.h"

static int inside(refl_str s, const void *buf, size_t n) {
    if (s.n == 0) return 1;
    const char *b = buf;
    return s.p && s.p >= b && s.p + s.n <= b + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Copies with exact sizes, so ASan sees any read past the end. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);

    refl_objmeta m;
    int rc = refl_meta_from_value(buf, size, &m);
    if (rc == 0) {
        if (m.name.n == 0 || !inside(m.name, buf, size) || !inside(m.ns, buf, size) ||
            !inside(m.uid, buf, size))
            abort();
    } else if (rc != -1 || m.name.n || m.ns.n || m.uid.n) {
        abort();
    }

    refl_meta_from_key((const char *)buf, size, &m);
    if (!inside(m.name, buf, size) || !inside(m.ns, buf, size) || !inside(m.uid, buf, size))
        abort();

    /* First byte: where the key ends and the value begins. */
    if (size > 1) {
        size_t klen = buf[0] % size;
        const char *key = (const char *)buf + 1;
        if (klen > size - 1) klen = size - 1;
        const uint8_t *val = buf + 1 + klen;
        size_t vlen = size - 1 - klen;
        refl_meta_extract(key, klen, val, vlen, &m);
        if (klen > 0 && m.name.n == 0) abort();
        if (m.name.n && !inside(m.name, key, klen) && !inside(m.name, val, vlen)) abort();
    }
    free(buf);
    return 0;
}
