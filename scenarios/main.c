/* main.c — the `scenario` binary: run a scenario script (one run per mode), compare modes side
 * by side, list the shipped scripts. Prints live progress on stderr, the summary table and the
 * expectation verdicts on stdout, and writes the reports under --out.
 *
 * Key decisions:
 * - Exit status tells a script what happened: 0 every expectation held, 1 one failed (each
 *   failure printed with measured vs expected), 2 usage or script errors (file:line:col), 3 the
 *   run could not be carried out (e.g. the server did not start), 130 interrupted (the partial
 *   table and reports are still written).
 * - A script may be named by path or by its name among the shipped scripts (`scenario run
 *   relist-storm`); the shipped directory is found from $RELIST_SCENARIOS, ./scenarios, or by
 *   walking up from the binary (build trees live inside the source tree).
 * - The kvstore binary comes from --kvstore-bin, $RELIST_KVSTORE, the build tree next to this
 *   binary (../kvstore), or PATH; etcd from --etcd-bin or PATH.
 * - Progress: one rewritten line on a terminal; otherwise a plain line every 5 s of run time,
 *   so CI logs stay short. The open-files limit is raised: 1,000 watchers with a connection
 *   each need more than the usual 1,024. */
#include "scn.h"
#include "scn_run.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_EXPECT    1
#define EXIT_USAGE     2
#define EXIT_RUN       3
#define EXIT_INTERRUPT 130
#define MAX_SETS       64

static const char usage_text[] =
    "scenario — replay a relistlab scenario: a server, a fleet of Kubernetes-style watchers\n"
    "(reflectors), a write load, actions at given times; measured every second and checked\n"
    "against the script's expectations.\n"
    "\n"
    "usage:\n"
    "  scenario run FILE|NAME [options]             every mode of the script, one after another\n"
    "  scenario compare FILE|NAME --modes A,B[,C] [options]\n"
    "                                               the same script once per mode (same seed),\n"
    "                                               reported side by side\n"
    "  scenario list                                the shipped scripts\n"
    "  scenario show FILE|NAME [--set ...] [--short] the script after overrides\n"
    "  scenario --help\n"
    "\n"
    "options:\n"
    "  --set PATH=VALUE    override the script (repeatable): watchers.count=200,\n"
    "                      phase.churn=20s, phase.churn.update=50/s, mode.mismatch.qps=5,\n"
    "                      seed.namespaces=20, server=etcd, modes=a,b (see scenarios/README.md)\n"
    "  --short             the script's `short` variant (small fleet, short phases: ctest);\n"
    "                      --set values still win over it\n"
    "  --mode NAME         run only this mode (= --set modes=NAME)\n"
    "  --modes A,B         run only these modes (compare requires it)\n"
    "  --out DIR           write report.html, report.md, timeline.csv, summary.json there\n"
    "  --endpoints A,B     run against running etcd-API servers (host:port) instead of the\n"
    "                      script's server (= --set server=A,B)\n"
    "  --kvstore-bin PATH  the kvstore binary for `server embedded` [next to this binary]\n"
    "  --etcd-bin PATH     the etcd binary for `server etcd` [etcd on PATH]\n"
    "  --seed N            randomness of the load and of backoff jitter [1]\n"
    "  --keep              keep the servers' temp dirs (data and server.log)\n"
    "  --verbose           log server, load, actions and watcher errors to stderr\n"
    "\n"
    "Every run: start the server (`server embedded` = `kvstore serve` on a free 127.0.0.1 port\n"
    "with a temp data dir), seed the objects, start the watchers and wait until all are synced\n"
    "(t = 0), then the phases with their write rates and actions; one sample a second (request\n"
    "rate by method with LIST apart from GET, LIST latency from the server's histograms, write\n"
    "latency, bytes, watch events, relists by cause, misses); at the end every watcher's cache\n"
    "is verified against the server. Ctrl-C ends the run early and still reports.\n"
    "\n"
    "Exit status: 0 all expectations held; 1 an expectation failed; 2 usage or script error;\n"
    "3 the run could not be carried out; 130 interrupted.\n"
    "\n"
    "The main job, the relist storm (calm vs storm, same fleet and load):\n"
    "  scenario compare scenarios/relist-storm.scn --modes namespaced,mismatch --out "
    "out/relist-storm\n"
    "Quick versions of every shipped script:\n"
    "  scenario run name-collision --short\n"
    "  scenario run restart-herd --short --verbose\n"
    "Against a real etcd 3.4 already running:\n"
    "  scenario run relist-storm --short --endpoints 127.0.0.1:2379\n";

typedef struct cli {
    const char *cmd;
    const char *file;
    const char *sets[MAX_SETS];
    size_t n_sets;
    bool short_variant, verbose, keep;
    const char *modes;
    const char *out;
    const char *endpoints;
    const char *kvstore_bin, *etcd_bin;
    uint64_t seed;
    bool tty;
    bool progress_shown;
    double last_plain;
} cli;

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void usage_error(const char *fmt, ...) {
    va_list ap;
    fputs("scenario: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(see scenario --help)\n", stderr);
}

/* ---- finding files ---- */

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_exec(const char *p) {
    return is_file(p) && access(p, X_OK) == 0;
}

static void exe_dir(char *out, size_t cap) {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) {
        snprintf(out, cap, ".");
        return;
    }
    buf[n] = 0;
    char *slash = strrchr(buf, '/');
    if (slash) *slash = 0;
    snprintf(out, cap, "%s", buf);
}

static bool search_path(const char *name, char *out, size_t cap) {
    const char *path = getenv("PATH");
    if (!path) return false;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, cap, "%s/%s", d, name);
        if (is_exec(out)) return true;
    }
    return false;
}

static bool find_kvstore(const cli *c, char *out, size_t cap) {
    if (c->kvstore_bin) {
        snprintf(out, cap, "%s", c->kvstore_bin);
        return true;
    }
    const char *env = getenv("RELIST_KVSTORE");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return true;
    }
    char dir[PATH_MAX];
    exe_dir(dir, sizeof dir);
    static const char *const rel[] = {"/kvstore", "/../kvstore", "/../bin/kvstore"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        snprintf(out, cap, "%.3000s%s", dir, rel[i]);
        if (is_exec(out)) return true;
    }
    return search_path("kvstore", out, cap);
}

static bool find_etcd(const cli *c, char *out, size_t cap) {
    if (c->etcd_bin) {
        snprintf(out, cap, "%s", c->etcd_bin);
        return true;
    }
    return search_path("etcd", out, cap);
}

/* The directory of the shipped scripts, or false. */
static bool scripts_dir(char *out, size_t cap) {
    const char *env = getenv("RELIST_SCENARIOS");
    if (env && is_dir(env)) {
        snprintf(out, cap, "%s", env);
        return true;
    }
    char dir[PATH_MAX], probe[PATH_MAX + 64];
    exe_dir(dir, sizeof dir);
    /* the build tree sits in the source tree: walk up looking for scenarios/relist-storm.scn */
    for (int up = 0; up < 5; up++) {
        snprintf(probe, sizeof probe, "%.3000s/scenarios/relist-storm.scn", dir);
        if (is_file(probe)) {
            snprintf(out, cap, "%.3000s/scenarios", dir);
            return true;
        }
        snprintf(probe, sizeof probe, "%.3000s/relist-storm.scn", dir);
        if (is_file(probe)) {
            snprintf(out, cap, "%s", dir);
            return true;
        }
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir) break;
        *slash = 0;
    }
    if (is_file("scenarios/relist-storm.scn")) {
        snprintf(out, cap, "scenarios");
        return true;
    }
    return false;
}

/* FILE as given, else NAME or NAME.scn among the shipped scripts. */
static bool resolve_script(const char *arg, char *out, size_t cap) {
    if (is_file(arg)) {
        snprintf(out, cap, "%s", arg);
        return true;
    }
    char dir[PATH_MAX];
    if (strchr(arg, '/') || !scripts_dir(dir, sizeof dir)) return false;
    snprintf(out, cap, "%.3000s/%s", dir, arg);
    if (is_file(out)) return true;
    snprintf(out, cap, "%.3000s/%s.scn", dir, arg);
    return is_file(out);
}

/* ---- progress and logs ---- */

static void clear_line(cli *c) {
    if (c->tty && c->progress_shown) {
        fputs("\r\033[K", stderr);
        c->progress_shown = false;
    }
}

static void on_log(void *ud, const char *line) {
    cli *c = ud;
    clear_line(c);
    fprintf(stderr, "%s\n", line);
}

static void fmt_rate(char *buf, size_t cap, double v) {
    if (isnan(v))
        snprintf(buf, cap, "-");
    else if (v >= 100)
        snprintf(buf, cap, "%.0f", v);
    else
        snprintf(buf, cap, "%.1f", v);
}

static void on_progress(void *ud, const scn_progress *p) {
    cli *c = ud;
    char line[256];
    if (!p->sample) {
        if (p->stage == SCN_STAGE_DONE || p->stage == SCN_STAGE_RUN) return;
        if (p->stage == SCN_STAGE_SYNC && p->watchers)
            snprintf(line, sizeof line, "[%s %zu/%zu] sync: %zu/%zu watchers synced", p->mode,
                     p->run + 1, p->n_runs, p->synced, p->watchers);
        else
            snprintf(line, sizeof line, "[%s %zu/%zu] %s", p->mode, p->run + 1, p->n_runs,
                     p->stage == SCN_STAGE_SERVER ? "starting the server"
                     : p->stage == SCN_STAGE_SEED ? "seeding objects"
                     : p->stage == SCN_STAGE_SYNC ? "waiting for the watchers to sync"
                                                  : "verifying every cache against the server");
        if (c->tty) {
            fprintf(stderr, "\r\033[K%s", line);
            c->progress_shown = true;
        } else {
            fprintf(stderr, "%s\n", line);
        }
        fflush(stderr);
        c->last_plain = -10;
        return;
    }
    char req[16], list[16], rel[16], ev[16], wr[16], lat[16];
    fmt_rate(req, sizeof req, p->request_rate);
    fmt_rate(list, sizeof list, p->list_rate);
    fmt_rate(rel, sizeof rel, p->relist_rate);
    fmt_rate(ev, sizeof ev, p->event_rate);
    fmt_rate(wr, sizeof wr, p->write_rate);
    fmt_rate(lat, sizeof lat, p->list_p99_ms);
    snprintf(line, sizeof line,
             "[%s %zu/%zu] %-8s %5.1f/%.0fs  req/s %s  LIST/s %s  relists/s %s  events/s %s  "
             "writes/s %s  LIST p99 %sms  synced %zu/%zu",
             p->mode, p->run + 1, p->n_runs, p->phase[0] ? p->phase : "-", p->elapsed_s, p->total_s,
             req, list, rel, ev, wr, lat, p->synced, p->watchers);
    if (c->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        c->progress_shown = true;
    } else if (p->elapsed_s - c->last_plain >= 5 || p->elapsed_s >= p->total_s) {
        fprintf(stderr, "%s\n", line);
        c->last_plain = p->elapsed_s;
    }
    fflush(stderr);
}

/* ---- commands ---- */

static int cmd_list(void) {
    char dir[PATH_MAX];
    if (!scripts_dir(dir, sizeof dir)) {
        fprintf(stderr, "scenario: the shipped scripts were not found (set RELIST_SCENARIOS)\n");
        return EXIT_USAGE;
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "scenario: %s: %s\n", dir, strerror(errno));
        return EXIT_USAGE;
    }
    char *names[128];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 128) {
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcmp(e->d_name + l - 4, ".scn")) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) /* sort by name */
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
    printf("shipped scenarios (%s):\n", dir);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        scn_script s;
        scn_errors errs = {0};
        if (scn_load(path, &s, &errs)) {
            printf("  %-22s (does not parse: %s)\n", names[i], errs.n ? errs.items[0].msg : "?");
        } else {
            char modes[256] = "";
            size_t ml = 0;
            for (size_t m = 0; m < s.n_modes && ml < sizeof modes; m++)
                ml += (size_t)snprintf(modes + ml, sizeof modes - ml, "%s%s", m ? "," : "",
                                       s.modes[m].name);
            printf("  %-22s %s%s%s%s\n", s.name, s.title, modes[0] ? "  [modes: " : "", modes,
                   modes[0] ? "]" : "");
            scn_script_free(&s);
        }
        free(names[i]);
    }
    printf("\nrun one:  scenario run NAME --short   (or: scenario compare NAME --modes A,B)\n");
    return 0;
}

static void print_errors(const scn_errors *errs) {
    char buf[8192];
    scn_errors_format(errs, buf, sizeof buf);
    fputs(buf, stderr);
    if (buf[0] && buf[strlen(buf) - 1] != '\n') fputc('\n', stderr);
}

/* Loads the script and applies the overrides. 0, or EXIT_USAGE after printing why. */
static int load_script(const cli *c, scn_script *s) {
    char path[PATH_MAX];
    if (!resolve_script(c->file, path, sizeof path)) {
        usage_error("%s: no such script file or shipped scenario (try: scenario list)", c->file);
        return EXIT_USAGE;
    }
    scn_errors errs = {0};
    if (scn_load(path, s, &errs)) {
        print_errors(&errs);
        return EXIT_USAGE;
    }
    /* the short variant first: explicit --set values win over it */
    int bad = c->short_variant ? scn_script_apply_short(s, &errs) : 0;
    char buf[600];
    if (c->endpoints) {
        snprintf(buf, sizeof buf, "server=%s", c->endpoints);
        bad |= scn_script_set(s, buf, &errs);
    }
    if (c->modes) {
        snprintf(buf, sizeof buf, "modes=%s", c->modes);
        bad |= scn_script_set(s, buf, &errs);
    }
    for (size_t i = 0; i < c->n_sets; i++)
        bad |= scn_script_set(s, c->sets[i], &errs);
    if (!bad) bad |= scn_script_check(s, &errs);
    if (bad || errs.n) {
        print_errors(&errs);
        scn_script_free(s);
        return EXIT_USAGE;
    }
    return 0;
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int cmd_run(cli *c) {
    scn_script s;
    int rc = load_script(c, &s);
    if (rc) return rc;
    if (!strcmp(c->cmd, "show")) {
        char *t = scn_script_format(&s);
        if (t) fputs(t, stdout);
        free(t);
        scn_script_free(&s);
        return 0;
    }
    char kv[PATH_MAX], etcd[PATH_MAX];
    bool have_kv = find_kvstore(c, kv, sizeof kv);
    bool have_etcd = find_etcd(c, etcd, sizeof etcd);
    if (s.server.kind == SCN_SERVER_EMBEDDED && !have_kv) {
        fprintf(stderr, "scenario: no kvstore binary found for `server embedded` "
                        "(build it, or pass --kvstore-bin PATH or --endpoints HOST:PORT)\n");
        scn_script_free(&s);
        return EXIT_USAGE;
    }
    if (s.server.kind == SCN_SERVER_ETCD && !have_etcd) {
        fprintf(stderr, "scenario: no etcd binary found for `server etcd` (--etcd-bin PATH)\n");
        scn_script_free(&s);
        return EXIT_USAGE;
    }
    scn_result *res = scn_result_new(&s);
    if (!res) {
        fprintf(stderr, "scenario: out of memory\n");
        scn_script_free(&s);
        return EXIT_RUN;
    }
    raise_nofile();
    c->tty = isatty(2);
    scn_run_opts o = {
        .kvstore_bin = have_kv ? kv : NULL,
        .etcd_bin = have_etcd ? etcd : NULL,
        .seed = c->seed,
        .keep_data = c->keep,
        .handle_signals = true,
        .log = c->verbose ? on_log : NULL,
        .progress = on_progress,
        .ud = c,
    };
    fprintf(stderr, "scenario %s: %s — %zu run%s, %.0fs each%s\n", s.name, s.title, res->n_runs,
            res->n_runs == 1 ? "" : "s", (double)scn_script_duration_ms(&s) / 1000,
            c->short_variant ? " (short variant)" : "");
    char err[512];
    int run_rc = scn_run_all(&s, res, &o, err, sizeof err);
    clear_line(c);
    if (run_rc < 0) fprintf(stderr, "scenario: %s\n", err);

    scn_verdict *v = NULL;
    size_t nv = 0;
    if (scn_expect_eval(&s, res, &v, &nv)) {
        fprintf(stderr, "scenario: out of memory\n");
        nv = 0;
    }
    char *table = scn_report_table(res, v, nv);
    if (table) fputs(table, stdout);
    free(table);
    size_t failed = 0;
    for (size_t i = 0; i < nv; i++)
        if (!v[i].pass && !v[i].skipped) failed++;
    if (c->out) {
        char werr[256];
        if (scn_report_write_dir(c->out, res, v, nv, werr, sizeof werr))
            fprintf(stderr, "scenario: --out %s: %s\n", c->out, werr);
        else
            printf("reports: %s/report.html report.md timeline.csv summary.json\n", c->out);
    }
    fflush(stdout);
    scn_result_free(res);
    scn_script_free(&s);
    if (run_rc == 1 || run_rc < 0) {
        free(v);
        return run_rc == 1 ? EXIT_INTERRUPT : EXIT_RUN;
    }
    if (failed) {
        fprintf(stderr, "scenario: %zu expectation%s failed (measured, expected):\n", failed,
                failed == 1 ? "" : "s");
        for (size_t i = 0; i < nv; i++)
            if (!v[i].pass && !v[i].skipped) fprintf(stderr, "  %s\n", v[i].msg);
    }
    free(v);
    if (failed) return EXIT_EXPECT;
    return 0;
}

static bool parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-') return false;
    *out = v;
    return true;
}

int main(int argc, char **argv) {
    cli c = {.seed = 1};
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "help")) {
            fputs(usage_text, stdout);
            return 0;
        }
    }
    c.cmd = argv[1];
    if (strcmp(c.cmd, "run") && strcmp(c.cmd, "compare") && strcmp(c.cmd, "list") &&
        strcmp(c.cmd, "show")) {
        usage_error("unknown command '%s' (expected run, compare, list or show)", c.cmd);
        return EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        char *a = argv[i];
        char *val = NULL;
        char flag[64];
        if (a[0] == '-' && a[1] == '-') {
            char *eq = strchr(a, '=');
            size_t fl = eq ? (size_t)(eq - a) : strlen(a);
            if (fl >= sizeof flag) fl = sizeof flag - 1;
            memcpy(flag, a, fl);
            flag[fl] = 0;
            if (eq) val = eq + 1;
        } else {
            if (c.file) {
                usage_error("unexpected argument '%s'", a);
                return EXIT_USAGE;
            }
            c.file = a;
            continue;
        }
        bool takes = !strcmp(flag, "--set") || !strcmp(flag, "--mode") ||
                     !strcmp(flag, "--modes") || !strcmp(flag, "--out") ||
                     !strcmp(flag, "--endpoints") || !strcmp(flag, "--kvstore-bin") ||
                     !strcmp(flag, "--etcd-bin") || !strcmp(flag, "--seed");
        if (takes && !val) {
            if (i + 1 >= argc) {
                usage_error("%s needs a value", flag);
                return EXIT_USAGE;
            }
            val = argv[++i];
        } else if (!takes && val) {
            usage_error("%s takes no value", flag);
            return EXIT_USAGE;
        }
        if (!strcmp(flag, "--set")) {
            if (c.n_sets == MAX_SETS) {
                usage_error("too many --set");
                return EXIT_USAGE;
            }
            c.sets[c.n_sets++] = val;
        } else if (!strcmp(flag, "--mode") || !strcmp(flag, "--modes")) {
            c.modes = val;
        } else if (!strcmp(flag, "--out")) {
            c.out = val;
        } else if (!strcmp(flag, "--endpoints")) {
            c.endpoints = val;
        } else if (!strcmp(flag, "--kvstore-bin")) {
            c.kvstore_bin = val;
        } else if (!strcmp(flag, "--etcd-bin")) {
            c.etcd_bin = val;
        } else if (!strcmp(flag, "--seed")) {
            if (!parse_u64(val, &c.seed)) {
                usage_error("--seed: '%s' is not a number", val);
                return EXIT_USAGE;
            }
        } else if (!strcmp(flag, "--short")) {
            c.short_variant = true;
        } else if (!strcmp(flag, "--verbose") || !strcmp(flag, "-v")) {
            c.verbose = true;
        } else if (!strcmp(flag, "--keep")) {
            c.keep = true;
        } else {
            usage_error("unknown option '%s'", flag);
            return EXIT_USAGE;
        }
    }
    if (!strcmp(c.cmd, "list")) {
        if (c.file) {
            usage_error("list takes no script");
            return EXIT_USAGE;
        }
        return cmd_list();
    }
    if (!c.file) {
        usage_error("%s needs a script file or name (try: scenario list)", c.cmd);
        return EXIT_USAGE;
    }
    if (!strcmp(c.cmd, "compare")) {
        if (!c.modes || !strchr(c.modes, ',')) {
            usage_error("compare needs --modes A,B (two or more of the script's modes)");
            return EXIT_USAGE;
        }
    }
    return cmd_run(&c);
}
