/* fuzz_scn_parse.c — libFuzzer target for the scenario script parser and the Prometheus text
 * parser (scenarios/scn_parse*.c, scn_lex.c, scn_values.c, scn_prom.c).
 * The same bytes go to both parsers. A script that parses is formatted back to its canonical
 * text (scn_script_format), which must parse again and format to the same text: the canonical
 * form is a fixed point, so a --set override printed in a report can be replayed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 64 * 1024) return 0;       /* scripts are small; keep runs fast */
    char *text = malloc(size ? size : 1); /* exact size: no terminating NUL to lean on */
    if (!text) return 0;
    memcpy(text, data, size);

    scn_script s;
    scn_errors *errs = calloc(1, sizeof *errs);
    if (!errs) abort();
    if (scn_parse(text, size, "fuzz.scn", &s, errs) == 0) {
        char *canon = scn_script_format(&s);
        if (canon) {
            scn_script s2;
            memset(errs, 0, sizeof *errs);
            if (scn_parse(canon, strlen(canon), "canon.scn", &s2, errs) != 0) abort();
            char *canon2 = scn_script_format(&s2);
            if (canon2 && strcmp(canon, canon2) != 0) abort();
            free(canon2);
            scn_script_free(&s2);
            free(canon);
        }
        scn_script_free(&s);
    } else {
        char msg[4096];
        scn_errors_format(errs, msg, sizeof msg);
    }
    free(errs);

    scn_prom p;
    char err[256];
    if (scn_prom_parse(text, size, &p, err, sizeof err) == 0) {
        for (size_t i = 0; i < p.n; i++)
            if (p.samples[i].n_labels) (void)scn_prom_label_value(&p.samples[i], "le");
        if (p.n_families) (void)scn_prom_family_type(&p, p.families[0].name);
        scn_prom_free(&p);
    }
    free(text);
    return 0;
}
