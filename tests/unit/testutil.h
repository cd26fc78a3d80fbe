/* testutil.h — small helpers shared by the cmocka suites: private temporary directories.
 * Header-only so each suite stays one file. Directories live under $RELIST_TEST_TMP (set by
 * ctest to build/test-tmp) or /tmp, and are removed by the test that made them. */
#ifndef RELIST_TESTUTIL_H
#define RELIST_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Makes a new empty directory and returns its path (malloc'd). Aborts the test on failure. */
static inline char *tu_mkdtemp(const char *tag) {
    const char *base = getenv("RELIST_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    mkdir(base, 0700);
    size_t n = strlen(base) + strlen(tag) + 32;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%s/%s-XXXXXX", base, tag);
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        abort();
    }
    return p;
}

/* Removes a directory tree made by tu_mkdtemp and frees the path. */
static inline void tu_rmtree(char *path) {
    if (!path) return;
    size_t n = strlen(path) + 16;
    char *cmd = malloc(n);
    if (cmd) {
        snprintf(cmd, n, "rm -rf '%s'", path);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", path);
        free(cmd);
    }
    free(path);
}

#endif
