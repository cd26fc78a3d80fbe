/* test_refl_live_etcd.c — the reflector fleet against a real etcd 3.4 (/usr/bin/etcd, or the
 * server named by RELIST_REFL_SERVER): the checks are in test_refl_live_suite.h. Skipped when
 * the server binary is missing. */
#define LIVE_SERVER_DEFAULT "etcd"
#include "test_refl_live_suite.h"

int main(void) {
    return live_suite_main(live_setup);
}
