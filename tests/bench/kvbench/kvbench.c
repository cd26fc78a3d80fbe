/* kvbench.c — command line, help and the main sequence of kvbench: start targets, connect,
 * seed the same data into each, run rounds alternating between targets (so drift of a shared,
 * noisy machine hits both alike), report medians and ratios, stop everything. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvbench.h"

int kb_null_server_main(void);

static const char usage_head[] =
    "kvbench — side-by-side benchmark of etcd-API servers (relistlab's kvstore vs etcd 3.4)\n"
    "\n"
    "usage: kvbench WORKLOAD [flags]\n"
    "\n"
    "It starts each target itself (127.0.0.1 only, temp data dirs, killed and removed at exit,\n"
    "also on Ctrl-C), seeds the same data into each, then runs the same workload against each in\n"
    "the same run, alternating rounds (kvstore, etcd, kvstore, etcd, ...), and prints the median\n"
    "of the rounds per target and a ratio table. One libuv loop drives every request\n"
    "asynchronously (gRPC over HTTP/2, many calls in flight per connection).\n"
    "\n"
    "workloads:\n";

static const char usage_flags[] =
    "\n"
    "targets:\n"
    "  --targets LIST         targets to start: kvstore, etcd, null [kvstore,etcd]\n"
    "                         (null = kvbench's trivial in-memory server: measures the client's\n"
    "                         own ceiling)\n"
    "  --endpoints LIST       external servers instead, [name=]host:port,... (nothing started;\n"
    "                         the workload deletes and re-seeds its own prefix there)\n"
    "  --kvstore-bin PATH     kvstore binary [a `kvstore` in kvbench's build tree, else PATH]\n"
    "  --etcd-bin PATH        etcd binary [/usr/bin/etcd]\n"
    "  --no-fsync             start kvstore with --unsafe-no-fsync (NOT durable: etcd 3.4 has no\n"
    "                         such switch, so the comparison is then unfair; default: durable)\n"
    "  --keep                 keep the targets' temp dirs (logs, data)\n"
    "\n"
    "load:\n"
    "  -c, --concurrency N    requests in flight [1]\n"
    "  --conns N              gRPC connections per target; slots are spread over them [1]\n"
    "  --value-size SIZE      value bytes, e.g. 1KiB, 512, 100k [1KiB]\n"
    "  --keys N               key space of put / get / txn [10000]\n"
    "  --objects N            list: objects seeded [10000]\n"
    "  --namespaces N         list: namespaces (objects / namespaces keys each) [20]\n"
    "  --scope all|namespace  list: whole prefix, or one random namespace per LIST [all]\n"
    "  --serializable         reads are serializable (default linearizable, like client-go)\n"
    "  --verify               decode every response fully and check it (costs client CPU)\n"
    "  --timeout DUR          per-request deadline [60s]\n"
    "  --seed N               random seed [1]\n"
    "\n"
    "measurement:\n"
    "  --duration DUR         measured window per round, e.g. 10s, 500ms, 1m [10s]\n"
    "  --warmup DUR           unrecorded load before each window [2s]\n"
    "  --count N              end the window after N ops instead of a duration\n"
    "  --rounds N             rounds per target (alternating targets); median reported [3]\n"
    "  --json FILE            write every round, medians and ratios as JSON\n"
    "  --progress DUR         period of progress lines when stderr is not a TTY [2s]\n"
    "  --quiet                no progress lines\n"
    "\n"
    "what the figures mean:\n"
    "  ops/s     successful ops issued and completed inside the window / window length\n"
    "  latency   issue -> completion of each op issued in the window (HDR-style histogram,\n"
    "            <0.5% error); p50 p90 p99 p99.9 max\n"
    "  MB/s      request + response message bytes\n"
    "  CPU       % of one core over the window and µs per op: client = kvbench itself\n"
    "            (getrusage), server = the started process (/proc); the machine's cores are\n"
    "            shared by both, so read the ratio together with these\n"
    "\n"
    "examples:\n"
    "  # full LIST of 10,000 x 1 KiB pods, kvstore vs etcd, 1 and 4 concurrent\n"
    "  kvbench list\n"
    "  kvbench list -c 4 --json list4.json\n"
    "  # LIST of one namespace (50 keys each), 16 in flight\n"
    "  kvbench list --scope namespace --objects 1000 -c 16\n"
    "  # durable PUTs of 1 KiB, 64 in flight on one connection; and one at a time\n"
    "  kvbench put -c 64\n"
    "  kvbench put -c 1 --duration 5s --rounds 5\n"
    "  # compare-and-swap, 16 in flight over 4 connections\n"
    "  kvbench txn -c 16 --conns 4\n"
    "  # the client's own ceiling (trivial server)\n"
    "  kvbench put -c 64 --targets null\n"
    "  # an already running server\n"
    "  kvbench get --endpoints mine=127.0.0.1:2379 -c 8\n";

static void usage(FILE *f) {
    fputs(usage_head, f);
    for (int i = 0; KB_WORKLOADS[i]; i++) {
        fprintf(f, "  %-8s %s\n", KB_WORKLOADS[i]->name, KB_WORKLOADS[i]->summary);
        if (KB_WORKLOADS[i]->flags_help) fputs(KB_WORKLOADS[i]->flags_help, f);
    }
    fputs(usage_flags, f);
}

/* ------------------------------------------------------------------ option values */

const char *kb_opt_str(const kb_opts *o, const char *name, const char *def) {
    for (int i = 0; i < o->n_extra; i++)
        if (!strcmp(o->extra[i].name, name)) return o->extra[i].value;
    return def;
}

int64_t kb_opt_int(const kb_opts *o, const char *name, int64_t def) {
    const char *v = kb_opt_str(o, name, NULL);
    return v ? strtoll(v, NULL, 10) : def;
}

double kb_opt_double(const kb_opts *o, const char *name, double def) {
    const char *v = kb_opt_str(o, name, NULL);
    return v ? strtod(v, NULL) : def;
}

static int parse_duration(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0) return -1;
    double mul = 1;
    if (!*end || !strcmp(end, "s"))
        mul = 1;
    else if (!strcmp(end, "ms"))
        mul = 1e-3;
    else if (!strcmp(end, "us"))
        mul = 1e-6;
    else if (!strcmp(end, "m"))
        mul = 60;
    else if (!strcmp(end, "h"))
        mul = 3600;
    else
        return -1;
    *out = v * mul;
    return 0;
}

static int parse_size(const char *s, size_t *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0) return -1;
    double mul = 1;
    if (!*end || !strcmp(end, "B") || !strcmp(end, "b"))
        mul = 1;
    else if (!strcasecmp(end, "k") || !strcasecmp(end, "kb") || !strcasecmp(end, "kib"))
        mul = 1024;
    else if (!strcasecmp(end, "m") || !strcasecmp(end, "mb") || !strcasecmp(end, "mib"))
        mul = 1024 * 1024;
    else
        return -1;
    *out = (size_t)(v * mul);
    return 0;
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return -1;
    *out = v;
    return 0;
}

static int bad(const char *flag, const char *val) {
    fprintf(stderr, "kvbench: bad value for %s: %s (see kvbench --help)\n", flag, val);
    return -1;
}

/* --flag value / --flag=value; boolean flags take no value. */
static int parse_args(int argc, char **argv, kb_opts *o) {
    for (int i = 2; i < argc; i++) {
        char name[64];
        const char *a = argv[i];
        const char *val = NULL;
        if (a[0] != '-') {
            fprintf(stderr, "kvbench: unexpected argument %s\n", a);
            return -1;
        }
        while (*a == '-')
            a++;
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        if (n >= sizeof name) n = sizeof name - 1;
        memcpy(name, a, n);
        name[n] = 0;
        if (eq) val = eq + 1;
        static const char *const bools[] = {"serializable", "verify", "no-fsync", "keep",
                                            "quiet",        "help",   "h",        NULL};
        bool is_bool = false;
        for (int b = 0; bools[b]; b++)
            if (!strcmp(name, bools[b])) is_bool = true;
        if (is_bool) {
            if (!strcmp(name, "serializable")) o->serializable = true;
            if (!strcmp(name, "verify")) o->verify = true;
            if (!strcmp(name, "no-fsync")) o->no_fsync = true;
            if (!strcmp(name, "keep")) o->keep = true;
            if (!strcmp(name, "quiet")) o->quiet = true;
            if (!strcmp(name, "help") || !strcmp(name, "h")) {
                usage(stdout);
                exit(0);
            }
            continue;
        }
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "kvbench: %s needs a value\n", argv[i]);
                return -1;
            }
            val = argv[++i];
        }
        uint64_t u;
        if (!strcmp(name, "duration")) {
            if (parse_duration(val, &o->duration_s) || o->duration_s <= 0) return bad(name, val);
        } else if (!strcmp(name, "warmup")) {
            if (parse_duration(val, &o->warmup_s)) return bad(name, val);
        } else if (!strcmp(name, "timeout")) {
            double d;
            if (parse_duration(val, &d) || d <= 0) return bad(name, val);
            o->timeout_ms = (uint32_t)(d * 1000);
        } else if (!strcmp(name, "progress")) {
            if (parse_duration(val, &o->progress_s)) return bad(name, val);
        } else if (!strcmp(name, "count")) {
            if (parse_u64(val, &o->count)) return bad(name, val);
        } else if (!strcmp(name, "rounds")) {
            if (parse_u64(val, &u) || u < 1 || u > 64) return bad(name, val);
            o->rounds = (int)u;
        } else if (!strcmp(name, "concurrency") || !strcmp(name, "c")) {
            if (parse_u64(val, &u) || u < 1 || u > 100000) return bad(name, val);
            o->concurrency = (int)u;
        } else if (!strcmp(name, "conns")) {
            if (parse_u64(val, &u) || u < 1 || u > 1024) return bad(name, val);
            o->conns = (int)u;
        } else if (!strcmp(name, "value-size")) {
            if (parse_size(val, &o->value_size)) return bad(name, val);
        } else if (!strcmp(name, "keys")) {
            if (parse_u64(val, &o->keys) || o->keys < 1) return bad(name, val);
        } else if (!strcmp(name, "objects")) {
            if (parse_u64(val, &o->objects) || o->objects < 1) return bad(name, val);
        } else if (!strcmp(name, "namespaces")) {
            if (parse_u64(val, &u) || u < 1 || u > 1000000) return bad(name, val);
            o->namespaces = (int)u;
        } else if (!strcmp(name, "scope")) {
            if (!strcmp(val, "namespace") || !strcmp(val, "ns"))
                o->scope_ns = true;
            else if (!strcmp(val, "all"))
                o->scope_ns = false;
            else
                return bad(name, val);
        } else if (!strcmp(name, "seed")) {
            if (parse_u64(val, &o->seed)) return bad(name, val);
        } else if (!strcmp(name, "targets")) {
            o->targets = val;
        } else if (!strcmp(name, "endpoints")) {
            o->endpoints = val;
        } else if (!strcmp(name, "kvstore-bin")) {
            o->kvstore_bin = val;
        } else if (!strcmp(name, "etcd-bin")) {
            o->etcd_bin = val;
        } else if (!strcmp(name, "json")) {
            o->json_path = val;
        } else {
            if (o->n_extra == KB_MAX_EXTRA) {
                fprintf(stderr, "kvbench: too many flags\n");
                return -1;
            }
            char *nm = strdup(name);
            if (!nm) return -1;
            o->extra[o->n_extra].name = nm;
            o->extra[o->n_extra].value = val;
            o->n_extra++;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ main */

typedef struct app {
    kb_opts o;
    const kb_workload *w;
    kb_target targets[KB_MAX_TARGETS];
    int n_targets;
    kb_env envs[KB_MAX_TARGETS];
    bool env_open[KB_MAX_TARGETS];
    void *wstates[KB_MAX_TARGETS];
    kb_result *results[KB_MAX_TARGETS];
    uv_loop_t loop;
} app;

static int fail(app *a, const char *what, const char *err) {
    fprintf(stderr, "kvbench: %s: %s\n", what, err);
    (void)a;
    return 1;
}

static int run(app *a) {
    kb_opts *o = &a->o;
    char err[1024];
    for (int t = 0; t < a->n_targets; t++) {
        kb_target *x = &a->targets[t];
        if (x->kind != KB_EXTERNAL && !o->quiet) fprintf(stderr, "kvbench: starting %s\n", x->name);
        if (kb_target_start(x, o, err, sizeof err) != 0) return fail(a, x->name, err);
    }
    for (int t = 0; t < a->n_targets; t++) {
        kb_target *x = &a->targets[t];
        if (kb_env_open(&a->envs[t], &a->loop, o, x, err, sizeof err) != 0) {
            char tail[600];
            kb_log_tail(x, tail, sizeof tail);
            fprintf(stderr, "kvbench: %s%s%s\n", err, tail[0] ? "\nlog tail:\n" : "", tail);
            return 1;
        }
        a->env_open[t] = true;
        uint64_t t0 = uv_hrtime();
        if (!o->quiet)
            fprintf(stderr, "kvbench: %s at %s: setting up %s\n", x->name, x->addr, a->w->name);
        int rv = a->w->setup(&a->envs[t], &a->wstates[t], err, sizeof err);
        a->envs[t].wstate = a->wstates[t];
        if (rv != 0) return fail(a, x->name, err[0] ? err : "setup failed");
        if (!o->quiet)
            fprintf(stderr, "kvbench: %s ready (setup %.1f s)\n", x->name,
                    (double)(uv_hrtime() - t0) / 1e9);
    }
    char params[128];
    if (a->w->describe)
        a->w->describe(o, params, sizeof params);
    else
        snprintf(params, sizeof params, "%s c=%d", a->w->name, o->concurrency);
    char window[64];
    if (o->count)
        snprintf(window, sizeof window, "%llu ops", (unsigned long long)o->count);
    else
        snprintf(window, sizeof window, "%.1fs", o->duration_s);
    printf("kvbench %s: %s; %d round%s of %s after %.1fs warmup; targets:", a->w->name, params,
           o->rounds, o->rounds == 1 ? "" : "s", window, o->warmup_s);
    for (int t = 0; t < a->n_targets; t++)
        printf(" %s (%s)", a->targets[t].name, a->targets[t].addr);
    printf("\n");
    for (int t = 0; t < a->n_targets; t++) {
        a->results[t] = calloc((size_t)o->rounds, sizeof(kb_result));
        if (!a->results[t]) return fail(a, "memory", "out of memory");
    }
    for (int r = 0; r < o->rounds; r++) {
        for (int t = 0; t < a->n_targets; t++) {
            char label[96];
            snprintf(label, sizeof label, "%s %d/%d", a->targets[t].name, r + 1, o->rounds);
            kb_result *res = &a->results[t][r];
            if (kb_run_round(&a->envs[t], a->w, label, res) != 0) {
                char tail[600] = "";
                if (a->targets[t].pid) kb_log_tail(&a->targets[t], tail, sizeof tail);
                fprintf(stderr, "kvbench: %s: round %d failed: %s%s%s\n", a->targets[t].name, r + 1,
                        res->first_error[0] ? res->first_error : "error",
                        tail[0] && !kb_interrupted() ? "\nlog tail:\n" : "",
                        kb_interrupted() ? "" : tail);
                return kb_interrupted() ? 130 : 1;
            }
            double cpu_pct = 100 * res->client_cpu_s / res->secs;
            printf("  round %d %-10s %10.1f ops/s %8.1f MB/s  p50 %8.3f ms  p99 %8.3f ms  "
                   "max %8.3f ms  errors %llu  client CPU %3.0f%%",
                   r + 1, a->targets[t].name, res->ops_s, res->bytes_s / 1e6, res->p50, res->p99,
                   res->max, (unsigned long long)res->errors, cpu_pct);
            if (res->server_cpu_s >= 0)
                printf("  server CPU %3.0f%%", 100 * res->server_cpu_s / res->secs);
            if (a->w->aux_name) printf("  %s %llu", a->w->aux_name, (unsigned long long)res->aux);
            if (res->errors) printf("  first error: %s", res->first_error);
            printf("\n");
            fflush(stdout);
            if (a->w->after_round) a->w->after_round(&a->envs[t], a->wstates[t]);
            if (kb_interrupted()) return 130;
        }
    }
    kb_report rep = {
        .o = o, .w = a->w, .n_targets = a->n_targets, .targets = a->targets, .n_rounds = o->rounds};
    snprintf(rep.params, sizeof rep.params, "%s", params);
    for (int t = 0; t < a->n_targets; t++)
        rep.rounds[t] = a->results[t];
    kb_report_print(&rep);
    if (o->json_path) {
        if (kb_report_json(&rep, o->json_path, err, sizeof err) != 0) return fail(a, "json", err);
        printf("json: %s\n", o->json_path);
    }
    return 0;
}

static void cleanup(app *a) {
    for (int t = 0; t < a->n_targets; t++) {
        if (a->wstates[t]) a->w->teardown(a->wstates[t]);
        a->wstates[t] = NULL;
        if (a->env_open[t]) kb_env_close(&a->envs[t]);
        a->env_open[t] = false;
        free(a->results[t]);
        a->results[t] = NULL;
    }
    for (int t = 0; t < a->n_targets; t++)
        kb_target_stop(&a->targets[t], &a->o);
}

int main(int argc, char **argv) {
    /* Keep freed large buffers (each LIST response is a ~10 MB malloc in the gRPC client) in the
     * heap for reuse: with glibc's defaults they are mmap'd / trimmed and every response pays
     * fresh page faults, which doubled the client's CPU per LIST at 4 in flight. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    if (argc >= 2 && !strcmp(argv[1], "__null-server")) return kb_null_server_main();
    if (argc < 2 || argv[1][0] == '-') {
        bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    static app a; /* large (per-target results); static only to keep it off the stack */
    kb_opts *o = &a.o;
    *o = (kb_opts){.workload = argv[1],
                   .duration_s = 10,
                   .warmup_s = 2,
                   .rounds = 3,
                   .concurrency = 1,
                   .conns = 1,
                   .value_size = 1024,
                   .keys = 10000,
                   .objects = 10000,
                   .namespaces = 20,
                   .timeout_ms = 60000,
                   .seed = 1,
                   .progress_s = 2};
    a.w = kb_workload_find(argv[1]);
    if (!a.w) {
        fprintf(stderr, "kvbench: unknown workload %s (see kvbench --help)\n", argv[1]);
        return 2;
    }
    if (parse_args(argc, argv, o) != 0) return 2;
    for (int i = 0; i < o->n_extra; i++) {
        bool known = false;
        for (int j = 0; a.w->extra_flags && a.w->extra_flags[j]; j++)
            if (!strcmp(a.w->extra_flags[j], o->extra[i].name)) known = true;
        if (!known) {
            fprintf(stderr, "kvbench: unknown flag --%s for %s (see kvbench --help)\n",
                    o->extra[i].name, a.w->name);
            return 2;
        }
    }
    if (o->targets && o->endpoints) {
        fprintf(stderr, "kvbench: give --targets or --endpoints, not both\n");
        return 2;
    }
    char err[512];
    a.n_targets = kb_targets_parse(o, a.targets, KB_MAX_TARGETS, err, sizeof err);
    if (a.n_targets < 0) {
        fprintf(stderr, "kvbench: %s\n", err);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    kb_signals_install();
    uv_loop_init(&a.loop);
    int rv = run(&a);
    cleanup(&a);
    uv_run(&a.loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&a.loop) != 0) {
        uv_run(&a.loop, UV_RUN_DEFAULT);
        uv_loop_close(&a.loop);
    }
    for (int i = 0; i < o->n_extra; i++)
        free((char *)o->extra[i].name);
    if (kb_interrupted()) {
        fprintf(stderr, "kvbench: interrupted; targets stopped\n");
        return 130;
    }
    return rv;
}
