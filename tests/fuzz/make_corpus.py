#!/usr/bin/env python3
"""make_corpus.py — writes the seed corpora of the libFuzzer targets (tests/fuzz/corpus/<target>/).

Seeds are small, valid-ish inputs that reach deep code quickly (hand-encoded protobuf, HTTP/2
frames with HPACK literals, HTTP/1 requests, scenario scripts, Prometheus text); the fuzzer
mutates from there. Deterministic: rerunning rewrites the same files. Run from anywhere:
    python3 tests/fuzz/make_corpus.py
Files in corpus/ that this script did not write (e.g. inputs a long run found interesting) are
left alone; tests/fuzz/regressions/ holds crashing inputs and is never touched here."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- protobuf wire encoding --------------------------------------------------------------
def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def f_varint(field, v):
    return varint(field << 3) + varint(v)


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(field << 3 | 2) + varint(len(b)) + b


def range_req(key, end=b"", limit=0, rev=0, sort_order=0, sort_target=0, keys_only=False,
              count_only=False, min_mod=0, max_mod=0):
    m = f_bytes(1, key)
    if end: m += f_bytes(2, end)
    if limit: m += f_varint(3, limit)
    if rev: m += f_varint(4, rev)
    if sort_order: m += f_varint(5, sort_order)
    if sort_target: m += f_varint(6, sort_target)
    if keys_only: m += f_varint(8, 1)
    if count_only: m += f_varint(9, 1)
    if min_mod: m += f_varint(10, min_mod)
    if max_mod: m += f_varint(11, max_mod)
    return m


def put_req(key, val, lease=0, prev_kv=False, ignore_value=False):
    m = f_bytes(1, key) + f_bytes(2, val)
    if lease: m += f_varint(3, lease)
    if prev_kv: m += f_varint(4, 1)
    if ignore_value: m += f_varint(5, 1)
    return m


def del_req(key, end=b"", prev_kv=False):
    m = f_bytes(1, key)
    if end: m += f_bytes(2, end)
    if prev_kv: m += f_varint(3, 1)
    return m


def compare(key, result=0, target=0, value=None, version=None, mod=None, end=b""):
    m = f_varint(1, result) + f_varint(2, target) + f_bytes(3, key)
    if version is not None: m += f_varint(4, version)
    if mod is not None: m += f_varint(6, mod)
    if value is not None: m += f_bytes(7, value)
    if end: m += f_bytes(64, end)
    return m


def op(kind, body):  # RequestOp: 1 range, 2 put, 3 delete_range, 4 txn
    return f_bytes(kind, body)


def txn_req(compares=(), success=(), failure=()):
    m = b"".join(f_bytes(1, c) for c in compares)
    m += b"".join(f_bytes(2, o) for o in success)
    m += b"".join(f_bytes(3, o) for o in failure)
    return m


def compact_req(rev, physical=False):
    return f_varint(1, rev) + (f_varint(2, 1) if physical else b"")


def watch_create(key, end=b"", start=0, progress=False, filters=(), prev_kv=False, wid=0,
                 fragment=False):
    m = f_bytes(1, key)
    if end: m += f_bytes(2, end)
    if start: m += f_varint(3, start)
    if progress: m += f_varint(4, 1)
    for flt in filters: m += f_varint(5, flt)
    if prev_kv: m += f_varint(6, 1)
    if wid: m += f_varint(7, wid)
    if fragment: m += f_varint(8, 1)
    return f_bytes(1, m)


def watch_cancel(wid):
    return f_bytes(2, f_varint(1, wid))


WATCH_PROGRESS = f_bytes(3, b"")


def record(tag, payload):
    return bytes([tag]) + struct.pack("<H", len(payload)) + payload


# ---- fuzz_kv_request: [method % 6][len16][request] ---------------------------------------
R_RANGE, R_RAW, R_PUT, R_DEL, R_TXN, R_COMPACT = range(6)


def kv_seeds():
    s = {}
    s["put-get"] = record(R_PUT, put_req("a", "1")) + record(R_RANGE, range_req("a"))
    s["put-list"] = (record(R_PUT, put_req("foo/1", "x")) + record(R_PUT, put_req("foo/2", "y")) +
                     record(R_RAW, range_req("foo/", "foo0")))
    s["list-all"] = record(R_PUT, put_req("k", "v")) + record(R_RAW, range_req(b"\0", b"\0"))
    s["list-sorted"] = (record(R_PUT, put_req("b", "2")) + record(R_PUT, put_req("a", "1")) +
                        record(R_RANGE, range_req("a", "z", limit=1, sort_order=2, sort_target=4)))
    s["keys-only"] = record(R_PUT, put_req("k", "v")) + record(R_RAW, range_req("k", "l", keys_only=True))
    s["count-only"] = record(R_PUT, put_req("k", "v")) + record(R_RANGE, range_req("k", "l", count_only=True))
    s["history"] = (record(R_PUT, put_req("h", "1")) + record(R_PUT, put_req("h", "2")) +
                    record(R_RANGE, range_req("h", rev=2)) +
                    record(R_RANGE, range_req("h", b"\0", min_mod=2, max_mod=3)))
    s["future-rev"] = record(R_RANGE, range_req("a", rev=1 << 40))
    s["put-prev"] = record(R_PUT, put_req("p", "1")) + record(R_PUT, put_req("p", "2", prev_kv=True))
    s["put-ignore"] = record(R_PUT, put_req("p", "1")) + record(R_PUT, put_req("p", "", ignore_value=True))
    s["put-lease"] = record(R_PUT, put_req("p", "1", lease=7))
    s["put-empty-key"] = record(R_PUT, put_req("", "1"))
    s["put-long-key"] = record(R_PUT, put_req("k" * 600, "1"))
    s["delete"] = (record(R_PUT, put_req("d/1", "1")) + record(R_PUT, put_req("d/2", "1")) +
                   record(R_DEL, del_req("d/", "d0", prev_kv=True)) + record(R_DEL, del_req("nothing")))
    s["delete-all"] = record(R_PUT, put_req("x", "1")) + record(R_DEL, del_req(b"\0", b"\0"))
    t = txn_req([compare("t", result=0, target=0, version=0)],
                [op(2, put_req("t", "created")), op(1, range_req("t"))],
                [op(3, del_req("t")), op(1, range_req("t"))])
    s["txn-create"] = record(R_TXN, t) + record(R_TXN, t)
    s["txn-value"] = (record(R_PUT, put_req("c", "old")) +
                      record(R_TXN, txn_req([compare("c", result=0, target=3, value="old")],
                                            [op(2, put_req("c", "new"))], [])))
    s["txn-mod"] = record(R_TXN, txn_req([compare("c", result=2, target=2, mod=5, end="d")],
                                         [op(1, range_req("c", "d"))], [op(2, put_req("c", "1"))]))
    inner = txn_req([compare("n", target=0, version=0)], [op(2, put_req("n", "1"))], [])
    s["txn-nested"] = record(R_TXN, txn_req([], [op(4, inner)], [op(4, inner)]))
    deep = txn_req([], [op(2, put_req("deep", "1"))], [])
    for _ in range(40):
        deep = txn_req([], [op(4, deep)], [])
    s["txn-too-deep"] = record(R_TXN, deep)
    s["txn-dup-key"] = record(R_TXN, txn_req([], [op(2, put_req("dup", "1")), op(2, put_req("dup", "2"))], []))
    s["txn-many-ops"] = record(R_TXN, txn_req([], [op(2, put_req("m%d" % i, "v")) for i in range(130)], []))
    s["txn-empty"] = record(R_TXN, b"")
    s["compact"] = (record(R_PUT, put_req("c", "1")) + record(R_PUT, put_req("c", "2")) +
                    record(R_PUT, put_req("c", "3")) + record(R_COMPACT, compact_req(3, True)) +
                    record(R_RANGE, range_req("c", rev=2)) + record(R_RANGE, range_req("c", rev=3)))
    s["compact-future"] = record(R_COMPACT, compact_req(1 << 30))
    s["compact-zero"] = record(R_COMPACT, compact_req(0))
    s["group"] = b"".join(record(R_PUT, put_req("g%d" % i, "v%d" % i)) for i in range(10)) + \
        record(R_RAW, range_req("g", "h"))
    s["malformed"] = record(R_PUT, b"\x0a\xff\xff") + record(R_TXN, b"\x12\x05\x22\x03\x12")
    return s


# ---- fuzz_watch_request: [flags][len16][WatchRequest] ------------------------------------
HELD, DRAIN, COMMIT, TICK, COMPACT, DELETE, LOST, SECOND = 1, 2, 4, 8, 16, 32, 64, 128


def watch_seeds():
    s = {}
    s["create"] = record(0, watch_create("a"))
    s["create-commit"] = record(COMMIT, watch_create("a")) + record(COMMIT | DELETE, WATCH_PROGRESS)
    s["prefix-history"] = record(0, watch_create("foo/", "foo0", start=4, prev_kv=True))
    s["all-history"] = record(COMMIT, watch_create(b"\0", b"\0", start=3))
    s["compacted"] = record(0, watch_create("a", start=2))
    s["future"] = record(0, watch_create("a", start=1 << 40))
    s["filters"] = record(COMMIT, watch_create("a", filters=(0,))) + record(COMMIT | DELETE, watch_create("a", filters=(1,)))
    s["progress"] = record(TICK, watch_create("a", progress=True)) + record(TICK, WATCH_PROGRESS)
    s["cancel"] = record(0, watch_create("a")) + record(0, watch_cancel(0)) + record(0, watch_cancel(99))
    s["dup-id"] = record(0, watch_create("a", wid=5)) + record(0, watch_create("b", wid=5))
    s["empty-range"] = record(0, watch_create("b", "a"))
    s["held-back"] = (record(HELD, watch_create(b"\0", b"\0", start=3)) + record(COMMIT, WATCH_PROGRESS) +
                      record(COMMIT, WATCH_PROGRESS) + record(DRAIN, WATCH_PROGRESS))
    s["fragment"] = record(COMMIT, watch_create(b"\0", b"\0", start=3, fragment=True, prev_kv=True))
    s["lost"] = record(LOST | COMMIT, watch_create("a")) + record(COMMIT, WATCH_PROGRESS)
    s["compact-while"] = (record(HELD, watch_create("foo/", "foo0", start=4)) +
                          record(COMMIT | COMPACT, WATCH_PROGRESS) + record(DRAIN, WATCH_PROGRESS))
    s["two-streams"] = record(0, watch_create("a")) + record(SECOND | COMMIT, watch_create("a", prev_kv=True))
    s["malformed"] = record(0, b"\x0a\x05\x0a\xff")
    s["empty"] = record(COMMIT, b"")
    return s


# ---- fuzz_grpc_server: HTTP/2 frames after the preface ------------------------------------
def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINUP, CONT = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 1, 1, 4, 8, 0x20


def hstr(b):
    if isinstance(b, str):
        b = b.encode()
    return varint(len(b)) + b  # lengths < 127 in seeds: the 7-bit HPACK prefix equals a varint


def lit(name, value):  # literal header without indexing, new name
    return b"\x00" + hstr(name) + hstr(value)


def lit_idx(idx, value):  # literal without indexing, indexed name (idx < 15)
    return bytes([idx]) + hstr(value)


def req_headers(path, extra=b"", method=b"\x83"):
    return (method + b"\x86" + lit_idx(4, path) + lit_idx(1, "x") +
            lit("content-type", "application/grpc") + lit("te", "trailers") + extra)


def gmsg(payload, compressed=0):
    return bytes([compressed]) + struct.pack(">I", len(payload)) + payload


SETTINGS0 = frame(SETTINGS, 0, 0)


def grpc_seeds():
    s = {}
    u = "/test.Echo/Unary"
    s["unary"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers(u)) + \
        frame(DATA, END_STREAM, 1, gmsg(b"hello"))
    s["unary-timeout-md"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers(
        u, lit("grpc-timeout", "100m") + lit("x-test", "1") + lit("x-bin", "AAE="))) + \
        frame(DATA, END_STREAM, 1, gmsg(b"x"))
    s["unary-empty"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers(u)) + \
        frame(DATA, END_STREAM, 1, gmsg(b""))
    s["unary-no-msg"] = SETTINGS0 + frame(HEADERS, END_HEADERS | END_STREAM, 1, req_headers(u))
    s["unary-two-msgs"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers(u)) + \
        frame(DATA, END_STREAM, 1, gmsg(b"a") + gmsg(b"b"))
    m = gmsg(b"split-message-payload")
    s["unary-split"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers(u)) + \
        frame(DATA, 0, 1, m[:3]) + frame(DATA, 0, 1, m[3:9]) + frame(DATA, END_STREAM, 1, m[9:])
    s["unary-too-large"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers(u)) + \
        frame(DATA, END_STREAM, 1, b"\x00\x00\x01\x00\x00" + b"x" * 16)
    s["unary-compressed"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers(u)) + \
        frame(DATA, END_STREAM, 1, gmsg(b"z", 1))
    s["unary-truncated"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers(u)) + \
        frame(DATA, END_STREAM, 1, gmsg(b"abcdef")[:7])
    s["fail"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers("/test.Echo/Fail")) + \
        frame(DATA, END_STREAM, 1, gmsg(b"\x05bad %\xff\nthing"))
    s["later"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers("/test.Echo/Later")) + \
        frame(DATA, END_STREAM, 1, gmsg(b"x")) + frame(HEADERS, END_HEADERS, 3, req_headers("/test.Echo/Later")) + \
        frame(DATA, END_STREAM, 3, gmsg(b"y")) + frame(RST, 0, 3, b"\x00\x00\x00\x08")
    s["big"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers("/test.Echo/Big")) + \
        frame(DATA, END_STREAM, 1, gmsg(b"\x40"))
    s["big-window"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers("/test.Echo/Big")) + \
        frame(DATA, END_STREAM, 1, gmsg(b"\xff")) + frame(WINUP, 0, 0, struct.pack(">I", 1 << 20)) + \
        frame(WINUP, 0, 1, struct.pack(">I", 1 << 20))
    s["big-small-window"] = frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 16)) + \
        frame(HEADERS, END_HEADERS, 1, req_headers("/test.Echo/Big")) + frame(DATA, END_STREAM, 1, gmsg(b"\x08"))
    b = "/test.Echo/Bidi"
    s["bidi"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers(b)) + \
        frame(DATA, 0, 1, gmsg(b"one")) + frame(DATA, 0, 1, gmsg(b"two")) + frame(DATA, END_STREAM, 1, b"")
    s["bidi-open"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers(b)) + frame(DATA, 0, 1, gmsg(b"m"))
    s["bidi-finish"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers(b)) + \
        frame(DATA, 0, 1, gmsg(b"Fin")) + frame(DATA, 0, 1, gmsg(b"after"))
    s["bidi-rst"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers(b)) + \
        frame(DATA, 0, 1, gmsg(b"m")) + frame(RST, 0, 1, b"\x00\x00\x00\x08")
    s["bidi-many"] = SETTINGS0 + b"".join(
        frame(HEADERS, END_HEADERS, sid, req_headers(b)) + frame(DATA, 0, sid, gmsg(b"x" * 40))
        for sid in range(1, 40, 2))
    s["unknown-path"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers("/nope.X/Y")) + \
        frame(DATA, END_STREAM, 1, gmsg(b"x"))
    s["get-method"] = SETTINGS0 + frame(HEADERS, END_HEADERS | END_STREAM, 1, req_headers(u, method=b"\x82"))
    s["wrong-ctype"] = SETTINGS0 + frame(HEADERS, END_HEADERS | END_STREAM, 1,
                                         b"\x83\x86" + lit_idx(4, u) + lit("content-type", "text/plain"))
    hb = req_headers(u)
    s["continuation"] = SETTINGS0 + frame(HEADERS, 0, 1, hb[:10]) + frame(CONT, 0, 1, hb[10:20]) + \
        frame(CONT, END_HEADERS, 1, hb[20:]) + frame(DATA, END_STREAM, 1, gmsg(b"c"))
    s["padded-prio"] = SETTINGS0 + frame(HEADERS, END_HEADERS | PADDED | PRIO, 1,
                                         b"\x03" + b"\x00\x00\x00\x00\x10" + req_headers(u) + b"\x00" * 3) + \
        frame(DATA, END_STREAM | PADDED, 1, b"\x02" + gmsg(b"p") + b"\x00\x00")
    s["ping-settings"] = frame(SETTINGS, 0, 0, struct.pack(">HI", 3, 100) + struct.pack(">HI", 4, 1 << 20)) + \
        frame(PING, 0, 0, b"12345678") + frame(SETTINGS, ACK, 0) + frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10")
    s["goaway"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers(u)) + \
        frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0)) + frame(DATA, END_STREAM, 1, gmsg(b"g"))
    s["trailers"] = SETTINGS0 + frame(HEADERS, END_HEADERS, 1, req_headers(u)) + \
        frame(DATA, 0, 1, gmsg(b"t")) + frame(HEADERS, END_HEADERS | END_STREAM, 1, lit("x-trailer", "1"))
    s["bad-frame"] = SETTINGS0 + frame(DATA, 0, 1, b"x") + frame(WINUP, 0, 0, b"\x00\x00\x00\x00")
    s["push"] = SETTINGS0 + frame(PUSH, END_HEADERS, 1, b"\x00\x00\x00\x02" + req_headers(u))
    s["empty"] = b""
    return s


# ---- fuzz_http1: [k = bytes already read by the sniffer, % 64][request bytes] ------------
def http1_seeds():
    s = {}
    s["metrics"] = b"\x05GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    s["health"] = b"\x00GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    s["version"] = b"\x18GET /version HTTP/1.0\r\n\r\n"
    s["pipelined"] = b"\x03" + b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p for p in
                                        (b"/health", b"/version", b"/metrics", b"/debug/x", b"/nope"))
    s["head"] = b"\x01HEAD /metrics HTTP/1.1\r\n\r\n"
    s["post"] = b"\x02POST /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    s["chunked"] = b"\x02POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    s["query"] = b"\x04GET /metrics?x=1#frag HTTP/1.1\r\n\r\n"
    s["custom"] = b"\x04GET /debug/x HTTP/1.1\r\n\r\nGET /debug/fail HTTP/1.1\r\n\r\n"
    s["big-header"] = b"\x04GET /health HTTP/1.1\r\nX-Long: " + b"a" * 600 + b"\r\n\r\n"
    s["upgrade"] = b"\x04GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nbinary"
    s["garbage"] = b"\x07\x00\x01\x02PRI * HTTP/2.0\r\n"
    s["bad-version"] = b"\x00GET /health HTTP/9.9\r\n\r\n"
    s["abs-uri"] = b"\x00GET http://h/metrics HTTP/1.1\r\n\r\n"
    s["keepalive-10"] = b"\x00GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /version HTTP/1.0\r\n\r\n"
    s["many-metrics"] = b"\x00" + b"GET /metrics HTTP/1.1\r\n\r\n" * 12
    s["partial"] = b"\x00GET /heal"
    return s


# ---- fuzz_scn_parse: scripts (the examples plus small statements) and Prometheus text -----
def scn_seeds():
    s = {}
    scn_dir = os.path.join(ROOT, "scenarios")
    for f in sorted(os.listdir(scn_dir)):
        if f.endswith(".scn"):
            with open(os.path.join(scn_dir, f), "rb") as fh:
                s["script-" + f[:-4]] = fh.read()
    s["minimal"] = "scenario m \"minimal\"\nserver embedded\nphase p 1s\n"
    s["values"] = ("scenario v\nseed pods namespaces=2 per-namespace=3 value-size=4KiB\n"
                   "watchers count=2k prefix=all qps=20/s\nphase a 1.5s create=120/m\nphase b 2m\n"
                   "expect phase=a list_rate.mean < 1e3\n")
    s["errors"] = "scenario\nseed pods namespaces=-1\nphase x 5parsecs\nexpect ???\n\"unterminated\n"
    s["prom"] = ("# HELP x_total A counter.\n# TYPE x_total counter\nx_total{a=\"b\",c=\"d\\\"e\\n\"} 3\n"
                 "# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.3\nh_count 2\n"
                 "g NaN\ng2 -Inf 1700000000000\n")
    s["prom-bad"] = "x{a=\"b\" 1\ny{=\"\"} 2\nz 1e999999\n"
    return s


# ---- fuzz_labobj: LabObject values ------------------------------------------------------
def lab_seeds():
    s = {}
    obj = f_bytes(1, "pods") + f_bytes(2, "ns-1") + f_bytes(3, "pod-7") + f_bytes(4, "uid-123")
    s["full"] = obj + f_bytes(5, f_bytes(1, "app") + f_bytes(2, "web")) + f_bytes(6, b"\x00" * 16)
    s["cluster"] = f_bytes(1, "nodes") + f_bytes(3, "node-1")
    s["no-name"] = f_bytes(2, "ns")
    s["unknown-fields"] = obj + f_varint(9, 5) + b"\x7d\x01\x02\x03\x04" + b"\x79" + b"\x00" * 8
    s["truncated"] = obj[:-3]
    s["key"] = b"\x00/registry/pods/ns-1/pod-7"
    s["key-cluster"] = b"\x00/registry/nodes/node-1"
    s["key-and-value"] = bytes([26]) + b"/registry/pods/ns-1/pod-7" + obj
    return s


def wal_seeds():
    """fuzz_wal_replay: records replayed on a template store at revision 5 (lease 7 granted)."""
    import struct

    def group(before, after, items):
        body = b"".join(bytes([t]) + struct.pack(">I", len(m)) + m for t, m in items)
        return b"\x01" + struct.pack(">qq", before, after) + struct.pack("<I", len(items)) + body

    def framed(*payloads):
        return b"\x00" + b"".join(struct.pack("<H", len(p)) + p for p in payloads)

    put = (1, op(2, put_req(b"/z", b"v")))
    put_lease = (1, op(2, put_req(b"/y", b"w", lease=7)))
    delete = (1, op(3, del_req(b"/a")))
    grant = (2, f_varint(1, 60) + f_varint(2, 9))
    revoke = (3, f_varint(1, 7))
    txn = (1, op(4, txn_req(compares=[compare(b"/a", version=2)], success=[op(2, put_req(b"/t", b"1"))])))
    s = {}
    s["put"] = framed(group(5, 6, [put]))
    s["group"] = framed(group(5, 8, [put, put_lease, grant, delete]))
    s["revoke"] = framed(group(5, 6, [revoke]))
    s["txn-then-compact"] = framed(group(5, 6, [txn]), b"\x02" + struct.pack(">q", 4))
    s["two-records"] = framed(group(5, 6, [put]), group(6, 7, [delete]))
    one = group(5, 6, [put])
    s["torn-tail"] = b"\x01" + struct.pack("<II", len(one), 0xDEADBEEF) + one[:10]
    s["zeros"] = b"\x01" + b"\x00" * 64
    return s


def main():
    groups = {
        "fuzz_wal_replay": wal_seeds(),
        "fuzz_kv_request": kv_seeds(),
        "fuzz_watch_request": watch_seeds(),
        "fuzz_grpc_server": grpc_seeds(),
        "fuzz_http1": http1_seeds(),
        "fuzz_scn_parse": scn_seeds(),
        "fuzz_labobj": lab_seeds(),
    }
    for target, seeds in groups.items():
        for name, data in seeds.items():
            write(target, "seed-" + name, data)
    print("wrote %d seeds in %s" % (sum(len(g) for g in groups.values()), OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
