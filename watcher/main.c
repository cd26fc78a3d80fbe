/* main.c — the `watcher` binary: a fleet of reflectors against etcd (or `kvstore serve`), with a
 * live status line, commands on stdin, SIGUSR1 = verify now, and a JSON summary at exit.
 *
 * Key decisions:
 * - Everything runs on one libuv loop (the fleet's): signals, the status timer, stdin and the
 *   duration timer are loop handles, so the library never sees a thread.
 * - A clean end (SIGINT/SIGTERM/--duration/`quit`) first runs the final verification when
 *   --verify is set (bounded by --verify-timeout; a second signal skips it), then writes the
 *   JSON, stops the fleet and lets the loop drain.
 * - The open-files limit is raised to its hard maximum: one connection per watcher is the
 *   default and a fleet of 1,000 would otherwise hit the usual soft limit of 1,024. */
#include "refl.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

static const char usage_text[] =
    "usage: watcher [flags]\n"
    "\n"
    "A fleet of Kubernetes-style reflectors (informers) against an etcd v3 server: each LISTs a\n"
    "prefix into its cache, then WATCHes from the list's revision. Reproduces the cache-key bug\n"
    "that turns watch events into relist storms, and proves caches right or wrong.\n"
    "\n"
    "Flags (\"--flag value\" or \"--flag=value\"):\n"
    "  --endpoints A,B          etcd endpoints host:port [127.0.0.1:2379]; watchers are spread\n"
    "                           round-robin, a connection fails over to the next endpoint\n"
    "  --prefix P               what every watcher watches [/registry/pods/]\n"
    "  --namespaces N           watcher i watches P + \"ns-<i %% N>/\" (node-scoped clients)\n"
    "  --prefix-per-watcher F   watcher i watches F with its %%d replaced by i (or i %% N with\n"
    "                           --namespaces N), e.g. /registry/pods/ns-%%d/\n"
    "  --count N                watchers [1]\n"
    "  --conns N                connections shared by the watchers [one per watcher]\n"
    "  --key-mode M             how the cache is keyed [namespaced]:\n"
    "                             namespaced  namespace/name (client-go's MetaNamespaceKeyFunc)\n"
    "                             name        name only: a/web-0 and b/web-0 collide, the cache\n"
    "                                         silently diverges (see --verify)\n"
    "                             mismatch    LIST stores by name, events look up namespace/name:\n"
    "                                         every update/delete of a listed object misses\n"
    "                             uid         the object's uid (the fix metacontroller used)\n"
    "  --on-miss P              what a cache miss does [relist]:\n"
    "                             relist  the cache is inconsistent: full LIST (the storm)\n"
    "                             get     fetch just that object (one point read)\n"
    "                             ignore  drop the event\n"
    "  --backoff B              before relists/reconnects: none | client-go (800ms..30s, x2,\n"
    "                           jitter 1.0, reset 2m) | exp:INITIAL,MAX,FACTOR,JITTER[,RESET]\n"
    "                           [client-go]\n"
    "  --qps Q --burst B        per-watcher token bucket for LIST pages and GETs [unlimited]\n"
    "  --ratelimit SPEC         the same as one flag: client-go (5/10) | none | QPS/BURST\n"
    "  --page-size N            LIST page size; 0 = one request [500]\n"
    "  --resync D               re-deliver the cache every D (no request) [off]\n"
    "  --verify                 at exit, compare every cache with the server (divergence)\n"
    "  --verify-timeout D       how long a verification round may take [10s]\n"
    "  --json FILE              write the JSON summary at exit (\"-\" = stdout)\n"
    "  --duration D             stop after D (else run until SIGINT/SIGTERM or `quit`)\n"
    "  --interval D             status period [1s on a terminal, 5s otherwise]\n"
    "  --seed N                 backoff jitter seed [1]\n"
    "  --verbose                log lists, relists, reconnects and errors to stderr\n"
    "  --help                   this text\n"
    "Durations: 800ms, 1.5s, 2m, 1h.\n"
    "\n"
    "While running, commands on stdin (one per line):\n"
    "  key-mode M | on-miss P | backoff B | qps Q/B (or: ratelimit SPEC) | resync D\n"
    "  verify | hold I | release I | status | quit\n"
    "and SIGUSR1 verifies now.\n"
    "\n"
    "Storm vs calm (each update of an existing pod makes every mismatch watcher relist):\n"
    "  watcher --endpoints 127.0.0.1:2379 --count 200 --key-mode mismatch --on-miss relist \\\n"
    "          --backoff none --duration 30s --json storm.json\n"
    "  watcher --endpoints 127.0.0.1:2379 --count 200 --key-mode namespaced --duration 30s \\\n"
    "          --verify --json calm.json\n"
    "Then type `key-mode namespaced` into the storm to watch it stop, or `on-miss get`.\n";

typedef struct app {
    uv_loop_t *loop;
    refl_fleet *fleet;
    bool verbose, tty, verify_at_exit;
    const char *json_path;
    int64_t duration_ms, interval_ms, verify_timeout_ms;
    uv_signal_t sigint, sigterm, sigusr1;
    uv_timer_t status_timer, duration_timer, sync_timer;
    bool have_stdin;
    union {
        uv_tty_t tty;
        uv_pipe_t pipe;
    } in;
    char line[4096];
    size_t line_len;
    bool ending, finished;
    int exit_code;
    /* rates */
    refl_counters prev;
    uint64_t prev_ms;
    uint64_t start_ms;
    size_t n_conns;
} app;

static app A;

static void start_verify(void);

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    if (A.tty) fputs("\r\033[K", stdout);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* ---- status ---------------------------------------------------------------------------------- */

static uint64_t relists_of(const refl_counters *c) {
    return c->relists.miss + c->relists.compacted + c->relists.error;
}

static void status(bool final) {
    refl_fleet_stats st;
    refl_fleet_get_stats(A.fleet, &st);
    uint64_t now = uv_now(A.loop);
    double dt = (double)(now - A.prev_ms) / 1000.0;
    if (dt <= 0) dt = 1;
    const refl_counters *c = &st.totals;
    double lists = (double)(c->lists - A.prev.lists) / dt;
    double relists = (double)(relists_of(c) - relists_of(&A.prev)) / dt;
    double events = (double)(c->events - A.prev.events) / dt;
    A.prev = *c;
    A.prev_ms = now;
    char line[512];
    snprintf(line, sizeof line,
             "%6.1fs synced %zu/%zu | lists %.1f/s relists %.1f/s events %.0f/s | misses %" PRIu64
             " relists %" PRIu64 " (miss %" PRIu64 " compacted %" PRIu64 " error %" PRIu64
             ") gets %" PRIu64 " | objects %zu | conns %zu/%zu",
             (double)(now - A.start_ms) / 1000.0, st.synced, st.watchers, lists, relists, events,
             c->misses, relists_of(c), c->relists.miss, c->relists.compacted, c->relists.error,
             c->gets, st.objects, st.conns_up, A.n_conns);
    if (A.tty && !final) {
        printf("\r\033[K%s", line);
        fflush(stdout);
    } else {
        say("%s\n", line);
    }
}

/* Reports once when every watcher has synced for the first time (fleet start-up speed). */
static void on_sync_check(uv_timer_t *t) {
    refl_fleet_stats st;
    refl_fleet_get_stats(A.fleet, &st);
    if (st.synced < st.watchers) return;
    uv_timer_stop(t);
    double s = (double)(uv_now(A.loop) - A.start_ms) / 1000.0;
    say("all %zu watchers synced in %.2fs (%.0f watchers/s, %zu objects cached, %" PRIu64
        " shared in the pool)\n",
        st.watchers, s, s > 0 ? (double)st.watchers / s : 0.0, st.objects, st.pool.objects);
}

static void on_status(uv_timer_t *t) {
    (void)t;
    status(false);
}

/* ---- ending ---------------------------------------------------------------------------------- */

static void close_if(uv_handle_t *h) {
    if (h && !uv_is_closing(h)) uv_close(h, NULL);
}

static void on_fleet_stopped(void *ud) {
    (void)ud;
    close_if((uv_handle_t *)&A.sigint);
    close_if((uv_handle_t *)&A.sigterm);
    close_if((uv_handle_t *)&A.sigusr1);
    close_if((uv_handle_t *)&A.status_timer);
    close_if((uv_handle_t *)&A.duration_timer);
    close_if((uv_handle_t *)&A.sync_timer);
    if (A.have_stdin) {
        uv_read_stop((uv_stream_t *)&A.in);
        close_if((uv_handle_t *)&A.in);
    }
}

static void print_verify(const refl_verify_round *v) {
    say("verify: %zu watchers verified, %zu unverified, %zu divergent (missing %" PRIu64
        " extra %" PRIu64 " stale %" PRIu64 " collided %" PRIu64 " misplaced %" PRIu64
        ") at revisions %" PRId64 "..%" PRId64 "\n",
        v->verified, v->unverified, v->divergent_watchers, v->missing, v->extra, v->stale,
        v->collided, v->misplaced, v->min_revision, v->max_revision);
    if (v->divergent_watchers) {
        for (size_t i = 0; i < refl_fleet_count(A.fleet); i++) {
            refl_watcher_info wi;
            refl_fleet_watcher_info(A.fleet, i, &wi);
            if (wi.verified && wi.verify.divergent) {
                say("  %s (%s) at %" PRId64 ": %" PRIu64 " divergent\n%s", wi.name, wi.prefix,
                    wi.verify.revision, wi.verify.divergent, wi.verify.listing);
                break; /* one example; the JSON has more */
            }
        }
    }
}

static void finish(void) {
    if (A.finished) return;
    A.finished = true;
    uv_timer_stop(&A.status_timer);
    uv_timer_stop(&A.sync_timer);
    status(true);
    if (A.json_path) {
        size_t n = 0;
        char *js = refl_fleet_summary_json(A.fleet, &n);
        if (!js) {
            fprintf(stderr, "watcher: out of memory writing the summary\n");
            A.exit_code = 1;
        } else if (!strcmp(A.json_path, "-")) {
            fwrite(js, 1, n, stdout);
        } else {
            FILE *f = fopen(A.json_path, "w");
            if (!f || fwrite(js, 1, n, f) != n || fclose(f) != 0) {
                fprintf(stderr, "watcher: cannot write %s: %s\n", A.json_path, strerror(errno));
                A.exit_code = 1;
            }
        }
        free(js);
    }
    refl_fleet_stop(A.fleet, on_fleet_stopped, NULL);
}

static void on_final_verify(void *ud, const refl_verify_round *v) {
    (void)ud;
    print_verify(v);
    finish();
}

static void begin_end(void) {
    if (A.ending) { /* second request: skip whatever is pending */
        finish();
        return;
    }
    A.ending = true;
    uv_timer_stop(&A.duration_timer);
    if (A.verify_at_exit) {
        if (refl_fleet_verifying(A.fleet)) return; /* a round is running: its end finishes */
        if (refl_fleet_verify(A.fleet, (uint32_t)A.verify_timeout_ms, on_final_verify, NULL) == 0)
            return;
    }
    finish();
}

static void on_signal(uv_signal_t *s, int signum) {
    (void)s;
    if (signum == SIGUSR1) {
        start_verify();
        return;
    }
    begin_end();
}

static void on_duration(uv_timer_t *t) {
    (void)t;
    begin_end();
}

static void on_verify(void *ud, const refl_verify_round *v) {
    (void)ud;
    print_verify(v);
    if (A.ending) finish();
}

static void start_verify(void) {
    if (refl_fleet_verify(A.fleet, (uint32_t)A.verify_timeout_ms, on_verify, NULL) != 0)
        say("verify: a round is already running\n");
}

/* ---- stdin commands ----------------------------------------------------------------------------
 */

static void command(char *line) {
    char *cmd = strtok(line, " \t\r");
    if (!cmd) return;
    char *arg = strtok(NULL, " \t\r");
    char err[160] = "";
    if (!strcmp(cmd, "key-mode") && arg) {
        refl_key_mode m;
        if (refl_key_mode_parse(arg, &m)) {
            say("unknown key mode %s (namespaced, name, mismatch, uid)\n", arg);
            return;
        }
        refl_fleet_set_key_mode(A.fleet, m);
        say("key mode: %s (every watcher restarts with a fresh cache)\n", arg);
    } else if (!strcmp(cmd, "on-miss") && arg) {
        refl_miss_policy p;
        if (refl_miss_policy_parse(arg, &p)) {
            say("unknown miss policy %s (relist, get, ignore)\n", arg);
            return;
        }
        refl_fleet_set_miss_policy(A.fleet, p);
        say("on miss: %s\n", arg);
    } else if (!strcmp(cmd, "backoff") && arg) {
        refl_backoff_cfg b;
        if (refl_backoff_parse(arg, &b, err, sizeof err)) {
            say("%s\n", err);
            return;
        }
        refl_fleet_set_backoff(A.fleet, &b);
        say("backoff: %s\n", arg);
    } else if ((!strcmp(cmd, "qps") || !strcmp(cmd, "ratelimit")) && arg) {
        double q, b;
        if (refl_ratelimit_parse(arg, &q, &b, err, sizeof err)) {
            say("%s\n", err);
            return;
        }
        refl_fleet_set_ratelimit(A.fleet, q, b);
        say("rate limit: %s\n", arg);
    } else if (!strcmp(cmd, "resync") && arg) {
        int64_t ms;
        if (refl_parse_duration_ms(arg, &ms)) {
            say("bad duration %s\n", arg);
            return;
        }
        refl_fleet_set_resync(A.fleet, ms);
        say("resync: %s\n", arg);
    } else if (!strcmp(cmd, "verify")) {
        start_verify();
    } else if ((!strcmp(cmd, "hold") || !strcmp(cmd, "release")) && arg) {
        char *end;
        unsigned long i = strtoul(arg, &end, 10);
        if (*end || refl_fleet_hold(A.fleet, i, cmd[0] == 'h')) {
            say("no watcher %s\n", arg);
            return;
        }
        say("%s %s\n", cmd[0] == 'h' ? "held" : "released", arg);
    } else if (!strcmp(cmd, "status")) {
        status(true);
    } else if (!strcmp(cmd, "quit") || !strcmp(cmd, "exit")) {
        begin_end();
    } else {
        say("commands: key-mode M | on-miss P | backoff B | qps Q/B | resync D | verify | "
            "hold I | release I | status | quit\n");
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)h;
    (void)hint;
    static char rbuf[4096];
    *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_stdin(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    if (n < 0) { /* EOF or error: keep running without commands */
        uv_read_stop(s);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        char ch = buf->base[i];
        if (ch == '\n') {
            A.line[A.line_len] = 0;
            command(A.line);
            A.line_len = 0;
        } else if (A.line_len + 1 < sizeof A.line) {
            A.line[A.line_len++] = ch;
        }
    }
}

static void open_stdin(void) {
    uv_handle_type t = uv_guess_handle(0);
    int rv = -1;
    if (t == UV_TTY)
        rv = uv_tty_init(A.loop, &A.in.tty, 0, 1);
    else if (t == UV_NAMED_PIPE && (rv = uv_pipe_init(A.loop, &A.in.pipe, 0)) == 0 &&
             (rv = uv_pipe_open(&A.in.pipe, 0)) != 0)
        uv_close((uv_handle_t *)&A.in.pipe, NULL);
    if (rv != 0) return;
    if (uv_read_start((uv_stream_t *)&A.in, on_alloc, on_stdin) != 0) {
        uv_close((uv_handle_t *)&A.in, NULL);
        return;
    }
    A.have_stdin = true;
}

/* ---- verbose trace ----------------------------------------------------------------------------
 */

static void on_trace(void *ud, const refl_trace *t) {
    (void)ud;
    static const char *kinds[] = {"list-page", "list-done", "watch",    "relist",
                                  "rewatch",   "conn-down", "verified", "error"};
    if (t->kind == REFL_TRACE_LIST_PAGE) return; /* too chatty */
    if (A.tty) fputs("\r\033[K", stderr);
    if (t->kind == REFL_TRACE_VERIFIED)
        fprintf(stderr, "[w%zu] verified at rev %" PRId64 ": %" PRIu64 " divergent\n", t->watcher,
                t->revision, t->count);
    else if (t->kind == REFL_TRACE_CONN_DOWN)
        fprintf(stderr, "[conn %zu] %s: %s\n", t->watcher, kinds[t->kind], t->detail);
    else
        fprintf(stderr, "[w%zu] %s rev %" PRId64 " n %" PRIu64 " %s\n", t->watcher, kinds[t->kind],
                t->revision, t->count, t->detail);
}

/* ---- flags ------------------------------------------------------------------------------------
 */

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die(const char *fmt, ...) {
    fputs("watcher: ", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see watcher --help)\n", stderr);
    return 2;
}

static bool parse_size(const char *s, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return false;
    *out = (size_t)v;
    return true;
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv) {
    static const char *const bool_flags[] = {"verify", "verbose", "help"};
    static const char *const val_flags[] = {"endpoints",
                                            "prefix",
                                            "namespaces",
                                            "prefix-per-watcher",
                                            "count",
                                            "conns",
                                            "key-mode",
                                            "on-miss",
                                            "backoff",
                                            "qps",
                                            "burst",
                                            "ratelimit",
                                            "page-size",
                                            "resync",
                                            "verify-timeout",
                                            "json",
                                            "duration",
                                            "interval",
                                            "seed"};
    refl_fleet_opts o = {0};
    char *endpoints_arg = "127.0.0.1:2379";
    o.prefix = "/registry/pods/";
    o.count = 1;
    o.page_size = 500;
    o.seed = 1;
    char err[200];
    refl_backoff_parse("client-go", &o.backoff, err, sizeof err);
    bool qps_set = false, burst_set = false, rl_set = false;
    A.verify_timeout_ms = 10000;
    A.interval_ms = -1;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-') return die("unexpected argument %s", arg);
        const char *name = arg + (arg[1] == '-' ? 2 : 1);
        char key[64];
        const char *eq = strchr(name, '=');
        size_t kn = eq ? (size_t)(eq - name) : strlen(name);
        if (kn >= sizeof key) return die("unknown flag %s", arg);
        memcpy(key, name, kn);
        key[kn] = 0;
        bool is_bool = false, known = false;
        for (size_t k = 0; k < sizeof bool_flags / sizeof *bool_flags; k++)
            if (!strcmp(key, bool_flags[k])) is_bool = known = true;
        for (size_t k = 0; k < sizeof val_flags / sizeof *val_flags; k++)
            if (!strcmp(key, val_flags[k])) known = true;
        if (!strcmp(key, "h")) {
            strcpy(key, "help");
            is_bool = known = true;
        }
        if (!known) return die("unknown flag %s", arg);
        const char *val = NULL;
        if (!is_bool) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return die("flag --%s needs a value", key);
        } else if (eq) {
            return die("flag --%s takes no value", key);
        }
        size_t n;
        int64_t ms;
        if (!strcmp(key, "help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(key, "verify")) {
            A.verify_at_exit = true;
        } else if (!strcmp(key, "verbose")) {
            A.verbose = true;
        } else if (!strcmp(key, "endpoints")) {
            endpoints_arg = (char *)val;
        } else if (!strcmp(key, "prefix")) {
            o.prefix = val;
        } else if (!strcmp(key, "prefix-per-watcher")) {
            o.prefix_fmt = val;
        } else if (!strcmp(key, "namespaces")) {
            if (!parse_size(val, &n) || n == 0) return die("bad --namespaces %s", val);
            o.namespaces = n;
        } else if (!strcmp(key, "count")) {
            if (!parse_size(val, &n) || n == 0 || n > 1000000) return die("bad --count %s", val);
            o.count = n;
        } else if (!strcmp(key, "conns")) {
            if (!parse_size(val, &n)) return die("bad --conns %s", val);
            o.conns = n;
        } else if (!strcmp(key, "key-mode")) {
            if (refl_key_mode_parse(val, &o.key_mode))
                return die("unknown --key-mode %s (namespaced, name, mismatch, uid)", val);
        } else if (!strcmp(key, "on-miss")) {
            if (refl_miss_policy_parse(val, &o.miss_policy))
                return die("unknown --on-miss %s (relist, get, ignore)", val);
        } else if (!strcmp(key, "backoff")) {
            if (refl_backoff_parse(val, &o.backoff, err, sizeof err)) return die("%s", err);
        } else if (!strcmp(key, "qps") || !strcmp(key, "burst")) {
            char *end;
            double d = strtod(val, &end);
            if (end == val || *end || !(d >= 0)) return die("bad --%s %s", key, val);
            if (key[0] == 'q') {
                o.qps = d;
                qps_set = true;
            } else {
                o.burst = d;
                burst_set = true;
            }
        } else if (!strcmp(key, "ratelimit")) {
            if (refl_ratelimit_parse(val, &o.qps, &o.burst, err, sizeof err)) return die("%s", err);
            rl_set = true;
        } else if (!strcmp(key, "page-size")) {
            if (!parse_size(val, &n)) return die("bad --page-size %s", val);
            o.page_size = (int64_t)n;
        } else if (!strcmp(key, "seed")) {
            if (!parse_size(val, &n)) return die("bad --seed %s", val);
            o.seed = n;
        } else if (!strcmp(key, "json")) {
            A.json_path = val;
        } else {
            if (refl_parse_duration_ms(val, &ms)) return die("bad duration --%s %s", key, val);
            if (!strcmp(key, "resync")) o.resync_ms = ms;
            if (!strcmp(key, "verify-timeout")) A.verify_timeout_ms = ms;
            if (!strcmp(key, "duration")) A.duration_ms = ms;
            if (!strcmp(key, "interval")) A.interval_ms = ms;
        }
    }
    if (rl_set && (qps_set || burst_set)) return die("use either --ratelimit or --qps/--burst");
    if (qps_set && !burst_set) o.burst = o.qps > 1 ? o.qps : 1;

    /* endpoints */
    size_t n_ep = 0;
    char *eps_copy = strdup(endpoints_arg);
    const char *eps[64];
    for (char *sv = NULL, *t = strtok_r(eps_copy, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
        if (n_ep == 64) return die("too many endpoints");
        eps[n_ep++] = t;
    }
    if (!n_ep) return die("no endpoints");
    o.endpoints = eps;
    o.n_endpoints = n_ep;

    raise_nofile();
    A.loop = uv_default_loop();
    A.tty = isatty(1);
    A.n_conns = o.conns && o.conns < o.count ? o.conns : o.count;
    if (A.interval_ms < 0) A.interval_ms = A.tty ? 1000 : 5000;
    if (A.verbose) o.trace = on_trace;
    A.fleet = refl_fleet_new(A.loop, &o, err, sizeof err);
    if (!A.fleet) return die("%s", err);

    uv_signal_init(A.loop, &A.sigint);
    uv_signal_start(&A.sigint, on_signal, SIGINT);
    uv_signal_init(A.loop, &A.sigterm);
    uv_signal_start(&A.sigterm, on_signal, SIGTERM);
    uv_signal_init(A.loop, &A.sigusr1);
    uv_signal_start(&A.sigusr1, on_signal, SIGUSR1);
    uv_timer_init(A.loop, &A.status_timer);
    if (A.interval_ms > 0)
        uv_timer_start(&A.status_timer, on_status, (uint64_t)A.interval_ms,
                       (uint64_t)A.interval_ms);
    uv_timer_init(A.loop, &A.duration_timer);
    if (A.duration_ms > 0)
        uv_timer_start(&A.duration_timer, on_duration, (uint64_t)A.duration_ms, 0);
    uv_timer_init(A.loop, &A.sync_timer);
    uv_timer_start(&A.sync_timer, on_sync_check, 50, 50);
    open_stdin();

    char bo[128];
    refl_backoff_format(&o.backoff, bo, sizeof bo);
    refl_watcher_info w0;
    refl_fleet_watcher_info(A.fleet, 0, &w0);
    say("watcher: %zu watchers (first: %s) on %s, %zu connection(s), key-mode %s, on-miss %s, "
        "backoff %s, rate %s, page-size %" PRId64 "\n",
        o.count, w0.prefix, endpoints_arg, o.conns && o.conns < o.count ? o.conns : o.count,
        refl_key_mode_name(o.key_mode), refl_miss_policy_name(o.miss_policy), bo,
        o.qps > 0 ? "limited" : "unlimited", o.page_size);
    A.start_ms = A.prev_ms = uv_now(A.loop);
    refl_fleet_start(A.fleet);
    uv_run(A.loop, UV_RUN_DEFAULT);
    if (A.tty) uv_tty_reset_mode();
    refl_fleet_free(A.fleet);
    uv_loop_close(A.loop);
    free(eps_copy);
    return A.exit_code;
}
