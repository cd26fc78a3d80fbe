/* scn_run_server.c — the server a scenario runs against: an embedded `kvstore serve` or a real
 * etcd started as a child process on a free loopback port with a temp data dir, or external
 * endpoints that are only probed.
 *
 * Key decisions:
 * - fork/exec instead of uv_spawn, for two things uv_spawn cannot do: PR_SET_PDEATHSIG (a
 *   runner killed by ctest's timeout never leaves a server behind) and a process group of the
 *   child's own (Ctrl-C on the terminal reaches the runner, which then stops the server in
 *   order, instead of killing both at once). The child is reaped by polling waitpid(WNOHANG)
 *   on a timer: libuv only reaps the processes it spawned itself.
 * - The child's stdout and stderr go to server.log in the temp dir: no pipe can fill up, and
 *   a failed start quotes the log's tail. kvstore's ready line ("serving etcd v3 API on
 *   127.0.0.1:PORT") tells the ephemeral port; readiness is then GET /health answering 200
 *   (etcd, whose ports are picked by binding port 0 first, is only probed that way).
 * - A restart uses the same port and data dir: SIGTERM, wait for the exit, wait down_ms,
 *   start again with --listen 127.0.0.1:PORT; the watchers' reconnects find it there. */
#include "scn_run.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SRV_ARGV_MAX  64
#define SRV_POLL_MS   50
#define SRV_KILL_MS   5000
#define SRV_HEALTH_MS 1000

typedef enum srv_state {
    SS_IDLE = 0,
    SS_STARTING, /* child forked, waiting for the ready line / health */
    SS_UP,
    SS_STOPPING, /* SIGTERM sent, waiting for the exit */
    SS_DOWN,     /* restart: exited, waiting down_ms */
} srv_state;

struct scn_srv {
    uv_loop_t *loop;
    scn_server_kind kind;
    char bin[512];
    char args[256];
    char endpoints[SCN_ENDPOINTS_MAX][128];
    size_t n_endpoints;
    char metrics[128];
    char dir[512]; /* temp dir: data/ and server.log */
    char logpath[600];
    bool keep_data;
    int port, peer_port; /* 0 until known */
    pid_t pid;
    srv_state st;
    uv_timer_t poll;  /* waitpid / ready-line polling */
    uv_timer_t timer; /* deadlines and the restart's down time */
    uint64_t deadline, kill_at;
    scn_http_req *probe;
    bool restart_pending;
    int64_t down_ms;
    uint32_t start_timeout_ms;
    scn_srv_cb cb;
    void *cb_ud;
    void (*stop_done)(void *);
    void *stop_ud;
    int open_handles;
    bool closing;
    void (*log)(void *ud, const char *line);
    void *log_ud;
};

static void srv_log(scn_srv *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void srv_log(scn_srv *v, const char *fmt, ...) {
    if (!v->log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    v->log(v->log_ud, line);
}

/* ---- helpers ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* A loopback port nothing listens on right now (etcd needs its ports up front). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* The last ~600 bytes of the server log, on one line. */
static void log_tail(const scn_srv *v, char *out, size_t cap) {
    out[0] = 0;
    FILE *f = fopen(v->logpath, "r");
    if (!f) return;
    char buf[601];
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, sz > 600 ? sz - 600 : 0, SEEK_SET);
    size_t n = fread(buf, 1, 600, f);
    fclose(f);
    buf[n] = 0;
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\n' || buf[i] == '\r') buf[i] = ' ';
    snprintf(out, cap, "%s", buf);
}

/* Port from kvstore's ready line, or 0. */
static int ready_port(const scn_srv *v) {
    FILE *f = fopen(v->logpath, "r");
    if (!f) return 0;
    char line[1024];
    int port = 0;
    while (!port && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "serving etcd v3 API on ");
        if (!p) continue;
        p = strrchr(p, ':');
        if (p) port = atoi(p + 1);
    }
    fclose(f);
    return port;
}

static void notify(scn_srv *v, int status, const char *msg) {
    scn_srv_cb cb = v->cb;
    v->cb = NULL;
    if (cb) cb(v->cb_ud, status, msg);
}

static void start_failed(scn_srv *v, const char *what) {
    char tail[640], m[1024];
    log_tail(v, tail, sizeof tail);
    snprintf(m, sizeof m, "%s%s%s", what, tail[0] ? "; server log: " : "", tail);
    if (v->pid > 0) {
        kill(v->pid, SIGKILL);
        waitpid(v->pid, NULL, 0);
        v->pid = 0;
    }
    v->st = SS_IDLE;
    uv_timer_stop(&v->timer);
    notify(v, -1, m);
}

/* ---- the child ---- */

static int spawn(scn_srv *v, char err[256]) {
    char *argv[SRV_ARGV_MAX];
    size_t n = 0;
    /* locals are enough: the child gets a copy of this frame and execs from it */
    char a_listen[160], a_data[600], a_client[160], a_peer[160], a_cluster[200];
    char argsbuf[256];
    argv[n++] = v->bin;
    if (v->kind == SCN_SERVER_EMBEDDED) {
        snprintf(a_listen, sizeof a_listen, "127.0.0.1:%d", v->port);
        snprintf(a_data, sizeof a_data, "%s/data", v->dir);
        argv[n++] = "serve";
        argv[n++] = "--listen";
        argv[n++] = a_listen;
        argv[n++] = "--data-dir";
        argv[n++] = a_data;
    } else {
        snprintf(a_data, sizeof a_data, "%s/data", v->dir);
        snprintf(a_client, sizeof a_client, "http://127.0.0.1:%d", v->port);
        snprintf(a_peer, sizeof a_peer, "http://127.0.0.1:%d", v->peer_port);
        snprintf(a_cluster, sizeof a_cluster, "s1=http://127.0.0.1:%d", v->peer_port);
        char *e[] = {"--name",
                     "s1",
                     "--data-dir",
                     a_data,
                     "--listen-client-urls",
                     a_client,
                     "--advertise-client-urls",
                     a_client,
                     "--listen-peer-urls",
                     a_peer,
                     "--initial-advertise-peer-urls",
                     a_peer,
                     "--initial-cluster",
                     a_cluster,
                     "--metrics",
                     "extensive",
                     "--log-level",
                     "warn"};
        for (size_t i = 0; i < sizeof e / sizeof e[0]; i++)
            argv[n++] = e[i];
    }
    snprintf(argsbuf, sizeof argsbuf, "%s", v->args);
    for (char *save = NULL, *tok = strtok_r(argsbuf, " \t", &save); tok && n < SRV_ARGV_MAX - 1;
         tok = strtok_r(NULL, " \t", &save))
        argv[n++] = tok;
    argv[n] = NULL;

    int logfd = open(v->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
        snprintf(err, 256, "%.200s: %s", v->logpath, strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, 256, "fork: %s", strerror(errno));
        close(logfd);
        return -1;
    }
    if (pid == 0) {
        /* only async-signal-safe calls until exec */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(127);
        setpgid(0, 0);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execv(argv[0], argv);
        static const char msg[] = "scenario: exec of the server failed\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    close(logfd);
    v->pid = pid;
    srv_log(v, "server: started %s (pid %d, dir %s)", v->bin, (int)pid, v->dir);
    return 0;
}

static void on_health(void *ud, int status, const char *body, size_t len, const char *err);
static void on_handle_closed(uv_handle_t *h);

static void begin_start(scn_srv *v) {
    char err[256];
    if (v->kind == SCN_SERVER_ETCD && !v->port) {
        v->port = free_port();
        v->peer_port = free_port();
        if (v->port <= 0 || v->peer_port <= 0 || v->port == v->peer_port) {
            start_failed(v, "no free loopback port");
            return;
        }
        snprintf(v->endpoints[0], sizeof v->endpoints[0], "127.0.0.1:%d", v->port);
        snprintf(v->metrics, sizeof v->metrics, "127.0.0.1:%d", v->port);
        v->n_endpoints = 1;
    }
    if (spawn(v, err)) {
        start_failed(v, err);
        return;
    }
    v->st = SS_STARTING;
    v->deadline = uv_now(v->loop) + v->start_timeout_ms;
}

/* The poll timer: reap, watch for the ready line, probe health, enforce deadlines. */
static void on_poll(uv_timer_t *t) {
    scn_srv *v = t->data;
    uint64_t now = uv_now(v->loop);
    if (v->pid > 0) {
        int wst;
        pid_t r = waitpid(v->pid, &wst, WNOHANG);
        if (r == v->pid) {
            v->pid = 0;
            char why[96];
            if (WIFEXITED(wst))
                snprintf(why, sizeof why, "exited with status %d", WEXITSTATUS(wst));
            else
                snprintf(why, sizeof why, "killed by signal %d", WTERMSIG(wst));
            srv_log(v, "server: %s", why);
            if (v->probe) {
                scn_http_cancel(v->probe);
                v->probe = NULL;
            }
            if (v->st == SS_STARTING) {
                char m[160];
                snprintf(m, sizeof m, "server %s before serving", why);
                start_failed(v, m);
                return;
            }
            if (v->st == SS_STOPPING && v->restart_pending) {
                v->restart_pending = false;
                v->st = SS_DOWN;
                v->deadline = now + (uint64_t)(v->down_ms > 0 ? v->down_ms : 0);
            } else if (v->st == SS_STOPPING || v->st == SS_UP) {
                v->st = SS_IDLE;
            }
        }
    }
    switch (v->st) {
    case SS_DOWN:
        if (now >= v->deadline) begin_start(v);
        break;
    case SS_STARTING:
        if (now >= v->deadline) {
            start_failed(v, "server did not become ready in time");
            return;
        }
        if (v->kind == SCN_SERVER_EMBEDDED && !v->port) {
            int p = ready_port(v);
            if (!p) break;
            v->port = p;
            snprintf(v->endpoints[0], sizeof v->endpoints[0], "127.0.0.1:%d", p);
            if (!v->metrics[0] || v->metrics[0] == '*')
                snprintf(v->metrics, sizeof v->metrics, "127.0.0.1:%d", p);
            v->n_endpoints = 1;
        }
        __attribute__((fallthrough)); /* probe health */
    case SS_IDLE:
        if (v->st == SS_IDLE && !(v->kind == SCN_SERVER_ENDPOINTS && v->cb)) break;
        if (!v->probe) {
            if (now >= v->deadline) {
                start_failed(v, "server did not answer GET /health in time");
                return;
            }
            v->probe = scn_http_get(v->loop, v->metrics[0] ? v->metrics : v->endpoints[0],
                                    "/health", SRV_HEALTH_MS, on_health, v);
        }
        break;
    case SS_STOPPING:
        if (v->kill_at && now >= v->kill_at && v->pid > 0) {
            srv_log(v, "server: still running %d ms after SIGTERM: SIGKILL", SRV_KILL_MS);
            kill(v->pid, SIGKILL);
            v->kill_at = 0;
        }
        break;
    default:
        break;
    }
    if (v->closing && v->pid <= 0 && !v->probe) {
        uv_timer_stop(&v->poll);
        if (!uv_is_closing((uv_handle_t *)&v->poll)) {
            /* stop() finishes in the close callbacks */
            uv_close((uv_handle_t *)&v->poll, on_handle_closed);
            uv_close((uv_handle_t *)&v->timer, on_handle_closed);
        }
    }
}

static void on_health(void *ud, int status, const char *body, size_t len, const char *err) {
    scn_srv *v = ud;
    (void)len;
    (void)err;
    v->probe = NULL;
    if (status == 200 && !strstr(body, "\"false\"")) {
        if (v->st == SS_STARTING || v->kind == SCN_SERVER_ENDPOINTS) {
            v->st = SS_UP;
            srv_log(v, "server: serving on %s", v->endpoints[0]);
            notify(v, 0, "");
        }
    }
}

/* ---- API ---- */

scn_srv *scn_srv_new(uv_loop_t *loop, const scn_srv_opts *o, char *err, size_t err_cap) {
    scn_srv *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    v->loop = loop;
    v->kind = o->kind;
    v->log = o->log;
    v->log_ud = o->ud;
    v->keep_data = o->keep_data;
    snprintf(v->args, sizeof v->args, "%s", o->args ? o->args : "");
    snprintf(v->metrics, sizeof v->metrics, "%s", o->metrics ? o->metrics : "");
    if (!strncmp(v->metrics, "http://", 7))
        memmove(v->metrics, v->metrics + 7, strlen(v->metrics) - 6);
    if (o->kind == SCN_SERVER_ENDPOINTS) {
        if (!o->n_endpoints) {
            snprintf(err, err_cap, "server endpoints: no endpoint given");
            free(v);
            return NULL;
        }
        for (size_t i = 0; i < o->n_endpoints && i < SCN_ENDPOINTS_MAX; i++) {
            const char *e = o->endpoints[i];
            if (!strncmp(e, "http://", 7)) e += 7;
            snprintf(v->endpoints[i], sizeof v->endpoints[i], "%s", e);
        }
        v->n_endpoints = o->n_endpoints < SCN_ENDPOINTS_MAX ? o->n_endpoints : SCN_ENDPOINTS_MAX;
        if (!v->metrics[0]) snprintf(v->metrics, sizeof v->metrics, "%s", v->endpoints[0]);
    } else {
        if (!o->bin || !*o->bin) {
            snprintf(err, err_cap, "no %s binary found (use --%s-bin PATH)",
                     o->kind == SCN_SERVER_ETCD ? "etcd" : "kvstore",
                     o->kind == SCN_SERVER_ETCD ? "etcd" : "kvstore");
            free(v);
            return NULL;
        }
        if (access(o->bin, X_OK)) {
            snprintf(err, err_cap, "%s: %s", o->bin, strerror(errno));
            free(v);
            return NULL;
        }
        snprintf(v->bin, sizeof v->bin, "%s", o->bin);
        const char *root = o->tmp_root && *o->tmp_root ? o->tmp_root : getenv("TMPDIR");
        if (!root || !*root) root = "/tmp";
        snprintf(v->dir, sizeof v->dir, "%s/relistlab-scn.XXXXXX", root);
        if (!mkdtemp(v->dir)) {
            snprintf(err, err_cap, "mkdtemp %s: %s", v->dir, strerror(errno));
            free(v);
            return NULL;
        }
        snprintf(v->logpath, sizeof v->logpath, "%s/server.log", v->dir);
        if (!v->metrics[0]) v->metrics[0] = '*'; /* = the endpoint, once known */
    }
    uv_timer_init(loop, &v->poll);
    uv_timer_init(loop, &v->timer);
    v->poll.data = v->timer.data = v;
    uv_timer_start(&v->poll, on_poll, SRV_POLL_MS, SRV_POLL_MS);
    return v;
}

int scn_srv_start(scn_srv *v, uint32_t timeout_ms, scn_srv_cb cb, void *ud) {
    if (v->st != SS_IDLE || v->closing) return -1;
    v->cb = cb;
    v->cb_ud = ud;
    v->start_timeout_ms = timeout_ms ? timeout_ms : 20000;
    v->deadline = uv_now(v->loop) + v->start_timeout_ms;
    if (v->kind == SCN_SERVER_ENDPOINTS) return 0; /* the poll timer probes /health */
    begin_start(v);
    return 0;
}

int scn_srv_restart(scn_srv *v, int64_t down_ms, uint32_t timeout_ms, scn_srv_cb cb, void *ud) {
    if (v->kind == SCN_SERVER_ENDPOINTS || v->st != SS_UP || v->pid <= 0 || v->closing) return -1;
    v->cb = cb;
    v->cb_ud = ud;
    v->start_timeout_ms = timeout_ms ? timeout_ms : 20000;
    v->down_ms = down_ms;
    v->restart_pending = true;
    v->st = SS_STOPPING;
    v->kill_at = uv_now(v->loop) + SRV_KILL_MS;
    srv_log(v, "server: restart: SIGTERM to pid %d, down %lld ms", (int)v->pid, (long long)down_ms);
    kill(v->pid, SIGTERM);
    return 0;
}

static void on_handle_closed(uv_handle_t *h) {
    scn_srv *v = h->data;
    if (--v->open_handles > 0) return;
    if (v->dir[0] && !v->keep_data)
        nftw(v->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else if (v->dir[0])
        srv_log(v, "server: kept %s", v->dir);
    if (v->stop_done) v->stop_done(v->stop_ud);
}

void scn_srv_stop(scn_srv *v, void (*done)(void *ud), void *ud) {
    if (v->closing) return;
    v->closing = true;
    v->stop_done = done;
    v->stop_ud = ud;
    v->cb = NULL;
    v->restart_pending = false;
    if (v->probe) {
        scn_http_cancel(v->probe);
        v->probe = NULL;
    }
    if (v->pid > 0) {
        srv_log(v, "server: SIGTERM to pid %d", (int)v->pid);
        kill(v->pid, SIGTERM);
        v->st = SS_STOPPING;
        v->kill_at = uv_now(v->loop) + SRV_KILL_MS;
    }
    /* the poll timer reaps the child, then closes both timers */
    v->open_handles = 2;
    if (v->pid <= 0) {
        uv_timer_stop(&v->poll);
        uv_close((uv_handle_t *)&v->poll, on_handle_closed);
        uv_close((uv_handle_t *)&v->timer, on_handle_closed);
    }
}

void scn_srv_free(scn_srv *v) {
    if (v && v->pid > 0) {
        kill(v->pid, SIGKILL);
        waitpid(v->pid, NULL, 0);
    }
    free(v);
}

size_t scn_srv_endpoint_count(const scn_srv *v) {
    return v->n_endpoints;
}
const char *scn_srv_endpoint(const scn_srv *v, size_t i) {
    return i < v->n_endpoints ? v->endpoints[i] : "";
}
const char *scn_srv_metrics(const scn_srv *v) {
    return v->metrics[0] == '*' ? v->endpoints[0] : v->metrics;
}
bool scn_srv_is_child(const scn_srv *v) {
    return v->kind != SCN_SERVER_ENDPOINTS;
}
bool scn_srv_running(const scn_srv *v) {
    return v->pid > 0 && v->st == SS_UP;
}
const char *scn_srv_dir(const scn_srv *v) {
    return v->dir;
}

double scn_srv_cpu_seconds(const scn_srv *v) {
    if (v->pid <= 0) return NAN;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)v->pid);
    FILE *f = fopen(path, "r");
    if (!f) return NAN;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* comm may hold blanks */
    if (!p) return NAN;
    unsigned long long ut = 0, st = 0;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return NAN;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)(hz > 0 ? hz : 100);
}
