/* refl_labobj.c — object identity for the reflector's key functions: a tiny protobuf wire
 * scanner for relistlab.LabObject's namespace/name/uid (fields 2, 3, 4), the etcd-key fallback
 * parser, the cache-key constructions of each key mode, and the names of the small enums.
 *
 * Why a scanner and not protobuf-c's unpack: it runs for every event of hundreds of watchers;
 * unpacking allocates the whole message (labels map, payload copy) just to read three strings.
 * The scanner allocates nothing, returns slices into the value, and bounds-checks every read,
 * so arbitrary bytes are safe. Known fields (1..6, all length-delimited in lab.proto) with
 * another wire type are rejected as protobuf-c would; nested contents are not validated. */
#include "refl_internal.h"

#include <stdlib.h>
#include <string.h>

static int read_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *out) {
    uint64_t v = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (*pos >= n) return -1;
        uint8_t b = p[(*pos)++];
        if (i == 9 && b > 1) return -1; /* more than 64 bits */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

int refl_meta_from_value(const void *value, size_t value_len, refl_objmeta *out) {
    const uint8_t *p = value;
    size_t pos = 0;
    memset(out, 0, sizeof(*out));
    if (!p && value_len) return -1;
    refl_str f[3] = {{0}};
    while (pos < value_len) {
        uint64_t tag, v;
        if (read_varint(p, value_len, &pos, &tag)) goto bad;
        uint64_t field = tag >> 3;
        unsigned wt = (unsigned)(tag & 7);
        if (field == 0 || field > 0x1fffffff) goto bad;
        if (field <= 6 && wt != 2) goto bad;
        switch (wt) {
        case 0:
            if (read_varint(p, value_len, &pos, &v)) goto bad;
            break;
        case 1:
            if (value_len - pos < 8) goto bad;
            pos += 8;
            break;
        case 5:
            if (value_len - pos < 4) goto bad;
            pos += 4;
            break;
        case 2:
            if (read_varint(p, value_len, &pos, &v)) goto bad;
            if (v > value_len - pos) goto bad;
            if (field >= 2 && field <= 4) { /* last occurrence wins, as in protobuf */
                f[field - 2].p = (const char *)p + pos;
                f[field - 2].n = (size_t)v;
            }
            pos += (size_t)v;
            break;
        default: /* groups (3, 4) and reserved wire types */
            goto bad;
        }
    }
    if (f[1].n == 0) goto bad;
    out->ns = f[0];
    out->name = f[1];
    out->uid = f[2];
    out->source = REFL_META_VALUE;
    return 0;
bad:
    memset(out, 0, sizeof(*out));
    return -1;
}

#define REGISTRY_PREFIX     "/registry/"
#define REGISTRY_PREFIX_LEN (sizeof(REGISTRY_PREFIX) - 1)

void refl_meta_from_key(const char *key, size_t key_len, refl_objmeta *out) {
    memset(out, 0, sizeof(*out));
    out->source = REFL_META_KEY;
    out->uid.p = key;
    out->uid.n = key_len;
    /* default: a cluster-scoped object named by the whole key (unique, non-empty) */
    out->name.p = key;
    out->name.n = key_len;
    if (key_len <= REGISTRY_PREFIX_LEN || memcmp(key, REGISTRY_PREFIX, REGISTRY_PREFIX_LEN)) return;
    const char *rest = key + REGISTRY_PREFIX_LEN;
    size_t rn = key_len - REGISTRY_PREFIX_LEN;
    const char *slash = memchr(rest, '/', rn);
    if (!slash || slash == rest) return; /* no resource segment */
    const char *r = slash + 1;           /* <namespace>/<name> or <name> */
    size_t n = (size_t)(rest + rn - r);
    if (n == 0) return;
    const char *s2 = memchr(r, '/', n);
    if (s2 && s2 > r && (size_t)(s2 - r) < n - 1) {
        out->ns.p = r;
        out->ns.n = (size_t)(s2 - r);
        out->name.p = s2 + 1;
        out->name.n = n - out->ns.n - 1;
    } else {
        out->name.p = r;
        out->name.n = n;
    }
}

void refl_meta_extract(const char *key, size_t key_len, const void *value, size_t value_len,
                       refl_objmeta *out) {
    if (refl_meta_from_value(value, value_len, out) == 0) {
        if (out->uid.n == 0) {
            out->uid.p = key;
            out->uid.n = key_len;
        }
        return;
    }
    refl_meta_from_key(key, key_len, out);
}

/* ---- cache-key constructions -------------------------------------------------------------- */

/* Which parts make the key: 0 = name, 1 = namespace/name, 2 = uid. */
static int key_shape(refl_key_mode mode, refl_key_phase phase) {
    switch (mode) {
    case REFL_KEY_NAMESPACED:
        return 1;
    case REFL_KEY_NAME:
        return 0;
    case REFL_KEY_MISMATCH:
        return phase == REFL_PHASE_LIST ? 0 : 1;
    case REFL_KEY_UID:
        return 2;
    }
    return 1;
}

static size_t put(char *buf, size_t cap, size_t at, const char *s, size_t n) {
    if (at < cap && n) {
        size_t room = cap - at - 1; /* keep one byte for the NUL */
        memcpy(buf + at, s, n < room ? n : room);
    }
    return at + n;
}

size_t refl_key_format(refl_key_mode mode, refl_key_phase phase, const refl_objmeta *meta,
                       char *buf, size_t cap) {
    size_t len = 0;
    switch (key_shape(mode, phase)) {
    case 0:
        len = put(buf, cap, 0, meta->name.p, meta->name.n);
        break;
    case 1:
        if (meta->ns.n) {
            len = put(buf, cap, 0, meta->ns.p, meta->ns.n);
            len = put(buf, cap, len, "/", 1);
        }
        len = put(buf, cap, len, meta->name.p, meta->name.n);
        break;
    default:
        len = put(buf, cap, 0, meta->uid.p, meta->uid.n);
        break;
    }
    if (cap) buf[len < cap ? len : cap - 1] = '\0';
    return len;
}

int refl_keybuf_build(refl_keybuf *kb, refl_key_mode mode, refl_key_phase phase,
                      const refl_objmeta *meta) {
    kb->p = kb->inl;
    kb->len = refl_key_format(mode, phase, meta, kb->inl, sizeof kb->inl);
    if (kb->len < sizeof kb->inl) return 0;
    kb->p = malloc(kb->len + 1);
    if (!kb->p) {
        kb->p = kb->inl;
        return -1;
    }
    refl_key_format(mode, phase, meta, kb->p, kb->len + 1);
    return 0;
}

void refl_keybuf_fini(refl_keybuf *kb) {
    if (kb->p != kb->inl) free(kb->p);
    kb->p = kb->inl;
}

/* ---- enum names ----------------------------------------------------------------------------- */

static const char *const key_mode_names[] = {"namespaced", "name", "mismatch", "uid"};
static const char *const miss_policy_names[] = {"relist", "get", "ignore"};

const char *refl_key_mode_name(refl_key_mode mode) {
    return (unsigned)mode < 4 ? key_mode_names[mode] : "unknown";
}

int refl_key_mode_parse(const char *s, refl_key_mode *out) {
    for (unsigned i = 0; s && i < 4; i++) {
        if (!strcmp(s, key_mode_names[i])) {
            *out = (refl_key_mode)i;
            return 0;
        }
    }
    return -1;
}

const char *refl_miss_policy_name(refl_miss_policy p) {
    return (unsigned)p < 3 ? miss_policy_names[p] : "unknown";
}

int refl_miss_policy_parse(const char *s, refl_miss_policy *out) {
    for (unsigned i = 0; s && i < 3; i++) {
        if (!strcmp(s, miss_policy_names[i])) {
            *out = (refl_miss_policy)i;
            return 0;
        }
    }
    return -1;
}

refl_event_type refl_event_type_of(bool is_delete, int64_t create_revision, int64_t mod_revision) {
    if (is_delete) return REFL_EV_DELETED;
    return create_revision == mod_revision ? REFL_EV_ADDED : REFL_EV_MODIFIED;
}
