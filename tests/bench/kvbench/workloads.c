/* workloads.c — the workload table. To add one (watch, storm, ...): define a `const kb_workload`
 * in its own workload_NAME.c, declare it here and list it in KB_WORKLOADS. */
#include <string.h>

#include "kvbench.h"

extern const kb_workload kb_wl_put, kb_wl_get, kb_wl_list, kb_wl_txn, kb_wl_watch, kb_wl_storm;

const kb_workload *const KB_WORKLOADS[] = {&kb_wl_put,   &kb_wl_get,   &kb_wl_list, &kb_wl_txn,
                                           &kb_wl_watch, &kb_wl_storm, NULL};

const kb_workload *kb_workload_find(const char *name) {
    for (int i = 0; KB_WORKLOADS[i]; i++)
        if (!strcmp(KB_WORKLOADS[i]->name, name)) return KB_WORKLOADS[i];
    return NULL;
}
