/* main.c — the `kvstore` binary: `kvstore serve` runs the etcd v3 API server (KV, Watch, Lease,
 * Maintenance.Status, /metrics, /health, /version) on one port.
 *
 * Flags use etcd's names where etcd has the setting, so scripts written for etcd carry over;
 * both "--flag value" and "--flag=value" (and Go-style single dash) are accepted. The ready line
 * names the address actually bound (port 0 = ephemeral) and is flushed: tests and scripts wait
 * for it. SIGINT/SIGTERM shut down cleanly (GOAWAY, in-flight writes committed, LMDB closed,
 * exit 0). Any startup error: one line on stderr, exit 1.
 *
 * Hidden flags (for tests; not in --help): --progress-notify-interval DURATION (also spelled
 * as etcd 3.5's --experimental-watch-progress-notify-interval; etcd 3.4 fixes it at 10m) and
 * --watch-queue-bytes N.
 *
 * Allocator tuning (process-wide, so here and not in the library): LIST responses move tens of
 * MiB through short-lived buffers; glibc's default would mmap/munmap each of them and the page
 * faults cost more than the copies. Buffers up to 64 MiB come from the heap instead, and up to
 * 256 MiB of freed heap is kept rather than trimmed after every burst.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static const char usage_text[] =
    "kvstore serve — an etcd v3 API server (KV, Watch, Lease, Maintenance.Status) on an MVCC\n"
    "store in LMDB.\n"
    "\n"
    "It speaks gRPC like etcd 3.4 on one client port, so etcdctl and etcd client libraries work\n"
    "unchanged, and serves /metrics, /health and /version over HTTP/1.1 on the same port.\n"
    "One process, one member: revisions, compaction and txns follow etcd's rules.\n"
    "\n"
    "usage: kvstore serve [flags]\n"
    "\n"
    "flags (etcd's names where etcd has them):\n"
    "  --data-dir DIR                 where the store lives [default.kvstore]\n"
    "  --listen-client-urls URL       e.g. http://127.0.0.1:2379 (port 0 = any free port)\n"
    "  --listen HOST:PORT             the same, without the scheme [127.0.0.1:2379]\n"
    "  --max-request-bytes N          largest write request [1572864]; gRPC accepts N + 512 KiB\n"
    "  --max-txn-ops N                operations per txn level [128]\n"
    "  --max-concurrent-streams N     HTTP/2 streams per connection [4294967295]\n"
    "  --max-connections N            client connections (0 = unlimited) [0]\n"
    "  --quota-backend-bytes N        database size limit (LMDB map size) [8589934592]\n"
    "  --grpc-keepalive-min-time D    least time between a client's PINGs; the third one sooner\n"
    "                                 gets GOAWAY \"too_many_pings\" (0 = no limit) [5s]\n"
    "  --grpc-keepalive-interval D    PING a connection that sent nothing for D (0 = never) [2h]\n"
    "  --grpc-keepalive-timeout D     then close it if nothing arrives within D (0 = never) [20s]\n"
    "  --grpc-handshake-timeout D     (relistlab) close a connection that has not sent the HTTP/2\n"
    "                                 preface + SETTINGS or an HTTP/1 request line within D\n"
    "                                 (0 = never) [10s]\n"
    "  --list-cache-bytes N           memory for encoded LIST responses (>= 32 KiB each) served\n"
    "                                 again while the revision is unchanged; 0 = off [268435456]\n"
    "  --unsafe-no-fsync              no write-ahead log, no fsync (benchmarks only: NOT durable)\n"
    "  --verbose                      log connections and lifecycle to stderr\n"
    "  --help                         this text\n"
    "\n"
    "It prints one line when ready, e.g.\n"
    "  kvstore: serving etcd v3 API on 127.0.0.1:2379 (data-dir /tmp/kv)\n"
    "\n"
    "example:\n"
    "  kvstore serve --data-dir /tmp/kv --listen-client-urls http://127.0.0.1:2379 &\n"
    "  etcdctl --endpoints=127.0.0.1:2379 put foo bar\n"
    "  etcdctl --endpoints=127.0.0.1:2379 get foo --prefix\n"
    "  etcdctl --endpoints=127.0.0.1:2379 endpoint status -w table\n"
    "  curl -s http://127.0.0.1:2379/metrics | grep etcd_mvcc_put_total\n";

typedef struct app {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    kvs_server *srv;
    bool stopping;
} app;

static int die(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "kvstore: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return 1;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out) {
    if (!s || !*s || *s == '-') return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) return false;
    *out = v;
    return true;
}

/* "HOST:PORT" or "[v6]:PORT" into host (static buffer in caller) and port. */
static bool parse_hostport(const char *s, char *host, size_t hlen, int *port) {
    const char *colon;
    const char *h = s;
    size_t n;
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return false;
        h = s + 1;
        n = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return false;
        n = (size_t)(colon - s);
    }
    if (n == 0 || n >= hlen) return false;
    memcpy(host, h, n);
    host[n] = 0;
    if (strcmp(host, "localhost") == 0) snprintf(host, hlen, "127.0.0.1");
    uint64_t p;
    if (!parse_u64(colon + 1, 65535, &p)) return false;
    *port = (int)p;
    return true;
}

/* A Go-style duration ("500ms", "2s", "10m", "1h"; a bare number is milliseconds) in ms. */
static bool parse_duration_ms(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-') return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return false;
    uint64_t mul;
    if (!*end || !strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "s"))
        mul = 1000;
    else if (!strcmp(end, "m"))
        mul = 60000;
    else if (!strcmp(end, "h"))
        mul = 3600000;
    else
        return false;
    if (v > 0xffffffffull / mul) return false;
    *out = v * mul;
    return true;
}

static void log_line(void *ud, const char *line) {
    (void)ud;
    fprintf(stderr, "kvstore: %s\n", line);
}

static void on_stopped(void *ud) {
    app *a = ud;
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int sig) {
    app *a = h->data;
    (void)sig;
    if (a->stopping) return;
    a->stopping = true;
    kvs_server_shutdown(a->srv, on_stopped, a);
}

static int serve(int argc, char **argv) {
    kvs_server_opts o;
    memset(&o, 0, sizeof o);
    o.data_dir = "default.kvstore";
    o.port = 2379;
    static char host[256] = "127.0.0.1";
    bool verbose = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-')
            return die("unexpected argument %s%s (see kvstore serve --help)", arg, "");
        const char *name = arg + (arg[1] == '-' ? 2 : 1);
        char key[64];
        const char *val = NULL;
        const char *eq = strchr(name, '=');
        size_t kn = eq ? (size_t)(eq - name) : strlen(name);
        if (kn >= sizeof key) return die("unknown flag %s%s (see kvstore serve --help)", arg, "");
        memcpy(key, name, kn);
        key[kn] = 0;
        if (eq) val = eq + 1;
        if (!strcmp(key, "help") || !strcmp(key, "h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (!strcmp(key, "verbose")) {
            verbose = true;
            continue;
        }
        if (!strcmp(key, "unsafe-no-fsync")) {
            o.no_sync = !val || !strcmp(val, "true") || !strcmp(val, "1");
            continue;
        }
        static const char *const with_value[] = {"data-dir",
                                                 "listen-client-urls",
                                                 "listen",
                                                 "max-request-bytes",
                                                 "max-txn-ops",
                                                 "max-concurrent-streams",
                                                 "max-connections",
                                                 "quota-backend-bytes",
                                                 "progress-notify-interval",
                                                 "experimental-watch-progress-notify-interval",
                                                 "watch-queue-bytes",
                                                 "grpc-keepalive-min-time",
                                                 "grpc-keepalive-interval",
                                                 "grpc-keepalive-timeout",
                                                 "grpc-handshake-timeout",
                                                 "list-cache-bytes",
                                                 NULL};
        bool known = false;
        for (int k = 0; with_value[k]; k++)
            if (!strcmp(key, with_value[k])) known = true;
        if (!known) return die("unknown flag %s%s (see kvstore serve --help)", arg, "");
        if (!val) {
            if (i + 1 >= argc) return die("flag %s needs a value%s", arg, "");
            val = argv[++i];
        }
        uint64_t v;
        if (!strcmp(key, "data-dir")) {
            if (!*val) return die("--data-dir must not be empty%s%s", "", "");
            o.data_dir = val;
        } else if (!strcmp(key, "listen-client-urls") || !strcmp(key, "listen")) {
            char first[300];
            snprintf(first, sizeof first, "%s", val);
            char *comma = strchr(first, ',');
            if (comma) *comma = 0; /* etcd takes a list; we serve the first */
            const char *hp = first;
            if (!strncmp(hp, "http://", 7))
                hp += 7;
            else if (strstr(hp, "://"))
                return die("unsupported URL %s (only http:// is served)%s", first, "");
            char tmp[300];
            snprintf(tmp, sizeof tmp, "%s", hp);
            size_t tl = strlen(tmp);
            if (tl && tmp[tl - 1] == '/') tmp[tl - 1] = 0;
            if (!parse_hostport(tmp, host, sizeof host, &o.port))
                return die("bad address %s (want HOST:PORT, e.g. 127.0.0.1:2379)%s", val, "");
        } else if (!strcmp(key, "max-request-bytes")) {
            if (!parse_u64(val, (uint64_t)1 << 30, &v) || v == 0)
                return die("bad --max-request-bytes %s%s (1 .. 1073741824)", val, "");
            o.max_request_bytes = (size_t)v;
        } else if (!strcmp(key, "max-txn-ops")) {
            if (!parse_u64(val, 1u << 20, &v) || v == 0)
                return die("bad --max-txn-ops %s%s", val, "");
            o.max_txn_ops = (uint32_t)v;
        } else if (!strcmp(key, "max-concurrent-streams")) {
            if (!parse_u64(val, 0xffffffffu, &v) || v == 0)
                return die("bad --max-concurrent-streams %s%s", val, "");
            o.max_concurrent_streams = (uint32_t)v;
        } else if (!strcmp(key, "max-connections")) {
            if (!parse_u64(val, 0xffffffffu, &v)) return die("bad --max-connections %s%s", val, "");
            o.max_connections = (uint32_t)v;
        } else if (!strcmp(key, "quota-backend-bytes")) {
            if (!parse_u64(val, (uint64_t)1 << 46, &v))
                return die("bad --quota-backend-bytes %s%s", val, "");
            o.quota_backend_bytes = (size_t)v; /* 0 = default, as in etcd */
        } else if (!strcmp(key, "progress-notify-interval") ||
                   !strcmp(key, "experimental-watch-progress-notify-interval")) {
            if (!parse_duration_ms(val, &v) || v == 0)
                return die("bad --progress-notify-interval %s%s (e.g. 10m, 5s, 500ms)", val, "");
            o.progress_notify_ms = (uint32_t)v;
        } else if (!strncmp(key, "grpc-", 5)) { /* the keepalive and handshake durations */
            if (!parse_duration_ms(val, &v))
                return die("bad --%s %s (e.g. 20s, 2h, 500ms; 0 = off)", key, val);
            uint32_t ms = v ? (uint32_t)v : GRPC_OPT_NEVER;
            if (!strcmp(key, "grpc-keepalive-min-time"))
                o.keepalive_min_time_ms = ms;
            else if (!strcmp(key, "grpc-keepalive-interval"))
                o.keepalive_interval_ms = ms;
            else if (!strcmp(key, "grpc-keepalive-timeout"))
                o.keepalive_timeout_ms = ms;
            else
                o.handshake_timeout_ms = ms;
        } else if (!strcmp(key, "watch-queue-bytes")) {
            if (!parse_u64(val, (uint64_t)1 << 40, &v) || v == 0)
                return die("bad --watch-queue-bytes %s%s", val, "");
            o.watch_queue_bytes = (size_t)v;
        } else if (!strcmp(key, "list-cache-bytes")) {
            if (!parse_u64(val, (uint64_t)1 << 40, &v))
                return die("bad --list-cache-bytes %s%s", val, "");
            o.list_cache_bytes = (size_t)v;
            o.list_cache_off = v == 0;
        }
    }
    o.host = host;
    if (verbose) o.log = log_line;

    signal(SIGPIPE, SIG_IGN);
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    app a;
    memset(&a, 0, sizeof a);
    if (uv_loop_init(&a.loop) != 0) return die("cannot create the event loop%s%s", "", "");
    char err[512];
    if (kvs_server_start(&a.loop, &o, &a.srv, err, sizeof err) != 0) {
        uv_loop_close(&a.loop);
        return die("%s%s", err, "");
    }
    uv_signal_init(&a.loop, &a.sigint);
    uv_signal_init(&a.loop, &a.sigterm);
    a.sigint.data = a.sigterm.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    kv_status st;
    kv_status_get(kvs_server_store(a.srv), &st);
    if (st.wal_replayed)
        fprintf(stderr,
                "kvstore: recovered from an unclean stop: replayed %lld write-ahead log records, "
                "at revision %lld\n",
                (long long)st.wal_replayed, (long long)st.revision);
    printf("kvstore: serving etcd v3 API on %s:%d (data-dir %s)\n", host, kvs_server_port(a.srv),
           o.data_dir);
    fflush(stdout);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    kvs_server_free(a.srv);
    uv_loop_close(&a.loop);
    if (verbose) fprintf(stderr, "kvstore: bye\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "serve")) return serve(argc - 2, argv + 2);
    fprintf(stderr, "kvstore: unknown command %s (try: kvstore serve --help)\n", argv[1]);
    return 1;
}
