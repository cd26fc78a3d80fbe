/* targets.c — the servers kvbench measures: started here (kvstore, etcd, null) on 127.0.0.1
 * with a private temp dir, or external (--endpoints). Started processes get their own process
 * group (a terminal's Ctrl-C reaches only kvbench, which then stops them in order) and
 * PR_SET_PDEATHSIG (they die with kvbench even on SIGKILL). Readiness: kvstore and null print a
 * ready line with the bound address (we let them pick the port: no race); etcd gets two ports
 * we probe free, and kb_env_open() then retries a Range until it answers. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvbench.h"

/* Signal-handler reachable state (see kvbench.h). */
static volatile sig_atomic_t g_interrupted;
static volatile pid_t g_children[KB_MAX_TARGETS * 2];

static void on_signal(int sig) {
    (void)sig;
    int hard = g_interrupted;
    g_interrupted = 1;
    for (size_t i = 0; i < sizeof g_children / sizeof g_children[0]; i++)
        if (g_children[i] > 0) kill(g_children[i], hard ? SIGKILL : SIGTERM);
    if (hard) _exit(130); /* second Ctrl-C: do not wait for the orderly stop */
}

void kb_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

bool kb_interrupted(void) {
    return g_interrupted != 0;
}

static void child_add(pid_t pid) {
    for (size_t i = 0; i < sizeof g_children / sizeof g_children[0]; i++)
        if (g_children[i] == 0) {
            g_children[i] = pid;
            return;
        }
}

static void child_remove(pid_t pid) {
    for (size_t i = 0; i < sizeof g_children / sizeof g_children[0]; i++)
        if (g_children[i] == pid) g_children[i] = 0;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b) {
    snprintf(err, errlen, fmt, a, b);
    return -1;
}

/* ------------------------------------------------------------------ parsing */

int kb_targets_parse(const kb_opts *o, kb_target *t, int max, char *err, size_t errlen) {
    const char *spec = o->endpoints ? o->endpoints : (o->targets ? o->targets : "kvstore,etcd");
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!*tok) continue;
        if (n == max) return set_err(err, errlen, "too many targets (max %s)%s", "4", "");
        kb_target *x = &t[n];
        memset(x, 0, sizeof *x);
        if (o->endpoints) {
            char *eq = strchr(tok, '=');
            const char *addr = eq ? eq + 1 : tok;
            if (eq) *eq = 0;
            if (!strchr(addr, ':'))
                return set_err(err, errlen, "endpoint %s: expected host:port%s", addr, "");
            x->kind = KB_EXTERNAL;
            snprintf(x->addr, sizeof x->addr, "%s", addr);
            snprintf(x->name, sizeof x->name, "%s", eq ? tok : addr);
        } else {
            if (!strcmp(tok, "kvstore"))
                x->kind = KB_KVSTORE;
            else if (!strcmp(tok, "etcd"))
                x->kind = KB_ETCD;
            else if (!strcmp(tok, "null"))
                x->kind = KB_NULL;
            else
                return set_err(err, errlen,
                               "unknown target %s (kvstore, etcd, null; or use --endpoints)%s", tok,
                               "");
            snprintf(x->name, sizeof x->name, "%s", tok);
        }
        for (int i = 0; i < n; i++)
            if (!strcmp(t[i].name, x->name))
                return set_err(err, errlen, "target %s given twice%s", x->name, "");
        n++;
    }
    if (n == 0) return set_err(err, errlen, "no target%s%s", "", "");
    return n;
}

/* ------------------------------------------------------------------ starting */

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static bool is_exe(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

/* --kvstore-bin, else a `kvstore` in a parent of kvbench's own directory (the build dir), else
 * PATH. */
static int find_kvstore(const kb_opts *o, char *out, size_t cap) {
    if (o->kvstore_bin) {
        snprintf(out, cap, "%s", o->kvstore_bin);
        return is_exe(out) ? 0 : -1;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        for (int up = 0; up < 5; up++) {
            char *slash = strrchr(self, '/');
            if (!slash) break;
            *slash = 0;
            if (snprintf(out, cap, "%s/kvstore", self) >= (int)cap) continue;
            if (is_exe(out)) return 0;
        }
    }
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
    char *save = NULL;
    for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        if (snprintf(out, cap, "%s/kvstore", d) >= (int)cap) continue;
        if (is_exe(out)) return 0;
    }
    return -1;
}

static pid_t spawn(char *const argv[], const char *log) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) {
        if (pid > 0) child_add(pid);
        return pid;
    }
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int nul = open("/dev/null", O_RDONLY);
    if (fd < 0 || nul < 0) _exit(125);
    dup2(nul, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(argv[0], argv);
    dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

void kb_log_tail(const kb_target *t, char *buf, size_t cap) {
    buf[0] = 0;
    int fd = open(t->log, O_RDONLY);
    if (fd < 0) return;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)(cap - 1) ? end - (off_t)(cap - 1) : 0;
    ssize_t n = pread(fd, buf, cap - 1, from);
    buf[n > 0 ? n : 0] = 0;
    close(fd);
}

/* Waits for "127.0.0.1:PORT" (PORT != 0) in the log; fills t->addr. */
static int wait_ready_line(kb_target *t, int timeout_ms, char *err, size_t errlen) {
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        char buf[8192];
        int fd = open(t->log, O_RDONLY);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0) close(fd);
        buf[n > 0 ? n : 0] = 0;
        for (char *p = buf; (p = strstr(p, "127.0.0.1:")) != NULL; p++) {
            int port = atoi(p + 10);
            if (port > 0) {
                snprintf(t->addr, sizeof t->addr, "127.0.0.1:%d", port);
                return 0;
            }
        }
        int st;
        if (waitpid(t->pid, &st, WNOHANG) == t->pid) {
            child_remove(t->pid);
            t->pid = 0;
            char tail[600];
            kb_log_tail(t, tail, sizeof tail);
            return set_err(err, errlen, "exited before it was ready; log:\n%s%s", tail, "");
        }
        if (g_interrupted) return set_err(err, errlen, "interrupted%s%s", "", "");
        sleep_ms(20);
    }
    return set_err(err, errlen, "no ready line after 15 s (log %s)%s", t->log, "");
}

int kb_target_start(kb_target *t, const kb_opts *o, char *err, size_t errlen) {
    if (t->kind == KB_EXTERNAL) return 0;
    const char *base = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/kvbench-%s-XXXXXX", base && *base ? base : "/tmp", t->name);
    if (!mkdtemp(tmpl)) return set_err(err, errlen, "mkdtemp %s: %s", tmpl, strerror(errno));
    t->dir = strdup(tmpl);
    snprintf(t->log, sizeof t->log, "%s/%s.log", t->dir, t->name);
    char data[PATH_MAX];
    snprintf(data, sizeof data, "%s/data", t->dir);

    if (t->kind == KB_KVSTORE) {
        char bin[PATH_MAX];
        if (find_kvstore(o, bin, sizeof bin) != 0)
            return set_err(err, errlen,
                           "no kvstore binary (%s): build target `kvstore` or pass --kvstore-bin%s",
                           o->kvstore_bin ? o->kvstore_bin : "not next to kvbench, not on PATH",
                           "");
        char *argv[] = {bin,
                        "serve",
                        "--listen",
                        "127.0.0.1:0",
                        "--data-dir",
                        data,
                        o->no_fsync ? "--unsafe-no-fsync" : NULL,
                        NULL};
        t->pid = spawn(argv, t->log);
        if (t->pid < 0) return set_err(err, errlen, "fork: %s%s", strerror(errno), "");
        return wait_ready_line(t, 15000, err, errlen);
    }
    if (t->kind == KB_NULL) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) return set_err(err, errlen, "cannot find my own binary%s%s", "", "");
        self[n] = 0;
        char *argv[] = {self, "__null-server", NULL};
        t->pid = spawn(argv, t->log);
        if (t->pid < 0) return set_err(err, errlen, "fork: %s%s", strerror(errno), "");
        return wait_ready_line(t, 15000, err, errlen);
    }
    /* etcd: durable (it has no switch to turn fsync off in 3.4) */
    const char *bin = o->etcd_bin ? o->etcd_bin : "/usr/bin/etcd";
    if (!is_exe(bin))
        return set_err(err, errlen, "no etcd binary at %s (apt-get install etcd-server)%s", bin,
                       "");
    int cport = free_port(), pport = free_port();
    if (cport <= 0 || pport <= 0 || cport == pport)
        return set_err(err, errlen, "no free loopback port%s%s", "", "");
    char curl[64], purl[64], cluster[96];
    snprintf(curl, sizeof curl, "http://127.0.0.1:%d", cport);
    snprintf(purl, sizeof purl, "http://127.0.0.1:%d", pport);
    snprintf(cluster, sizeof cluster, "n1=%s", purl);
    char *argv[] = {(char *)bin,  "--data-dir",
                    data,         "--name",
                    "n1",         "--listen-client-urls",
                    curl,         "--advertise-client-urls",
                    curl,         "--listen-peer-urls",
                    purl,         "--initial-advertise-peer-urls",
                    purl,         "--initial-cluster",
                    cluster,      "--quota-backend-bytes",
                    "8589934592", NULL};
    t->pid = spawn(argv, t->log);
    if (t->pid < 0) return set_err(err, errlen, "fork: %s%s", strerror(errno), "");
    snprintf(t->addr, sizeof t->addr, "127.0.0.1:%d", cport);
    return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

void kb_target_stop(kb_target *t, const kb_opts *o) {
    if (t->pid > 0) {
        kill(t->pid, SIGTERM);
        int st;
        bool gone = false;
        for (int i = 0; i < 500 && !gone; i++) {
            if (waitpid(t->pid, &st, WNOHANG) == t->pid)
                gone = true;
            else
                sleep_ms(10);
        }
        if (!gone) {
            kill(t->pid, SIGKILL);
            waitpid(t->pid, &st, 0);
        }
        child_remove(t->pid);
        t->pid = 0;
    }
    if (t->dir) {
        if (o->keep)
            fprintf(stderr, "kvbench: kept %s\n", t->dir);
        else
            nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(t->dir);
        t->dir = NULL;
    }
}

double kb_target_cpu(const kb_target *t) {
    if (t->pid <= 0) return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)t->pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    /* fields after the command: state(3) ... utime(14) stime(15) */
    unsigned long long ut = 0, stt = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
        return -1;
    return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}
