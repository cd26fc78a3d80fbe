/* scn_internal.h — pieces shared by the scenario library's files and not part of the API: a
 * growable text buffer (reports are built in memory, then written), the option tables that
 * parse "key=value" for the script, --set and `switch` alike, and error helpers. */
#ifndef RELIST_SCN_INTERNAL_H
#define RELIST_SCN_INTERNAL_H

#include "scn.h"

#include <stdarg.h>
#include <stdio.h>

/* ---- text buffer: a failed allocation latches `oom`; the final take returns NULL then ---- */
typedef struct scn_buf {
    char *p;
    size_t len, cap;
    bool oom;
} scn_buf;

void scn_buf_put(scn_buf *b, const char *s, size_t n);
void scn_buf_puts(scn_buf *b, const char *s);
void scn_buf_printf(scn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void scn_buf_json_str(scn_buf *b, const char *s); /* "..." with JSON escapes */
void scn_buf_json_num(scn_buf *b, double v);      /* null for NaN/Inf */
void scn_buf_html(scn_buf *b, const char *s);     /* escapes & < > " ' */
char *scn_buf_take(scn_buf *b);                   /* NULL on OOM (then freed) */
/* snprintf for texts that may be cut short on purpose (messages into fixed fields). */
void scn_fmt(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A readable number: 1523, 12.5, 0.042, "-" for NaN. */
void scn_fmt_num(double v, char *buf, size_t cap);

/* ---- errors ---- */
void scn_err_add(scn_errors *e, const char *file, scn_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- option tables ---- */
typedef enum scn_opt_type {
    SCN_OT_COUNT,    /* int64 >= 0, k/M suffixes */
    SCN_OT_SIZE,     /* int64 bytes, binary suffixes */
    SCN_OT_NUMBER,   /* double >= 0 */
    SCN_OT_FRACTION, /* double in [0, 1] */
    SCN_OT_DURATION, /* int64 ms */
    SCN_OT_RATE,     /* double per second */
    SCN_OT_ENUM,     /* char[] from choices */
    SCN_OT_BACKOFF,  /* char[]: none | client-go | exp:... */
    SCN_OT_PREFIX,   /* char[]: namespace | all | /... */
    SCN_OT_STRING,   /* char[] */
    SCN_OT_TRISTATE, /* int: auto -1, off 0, on 1 */
} scn_opt_type;

typedef struct scn_opt {
    const char *name;
    scn_opt_type type;
    size_t off;
    size_t size; /* char[] fields */
    uint32_t bit;
    const char *const *choices;
} scn_opt;

extern const scn_opt scn_watcher_opts[];
extern const scn_opt scn_seed_opts[];
extern const scn_opt scn_phase_opts[];
extern const scn_opt scn_slo_opts[];
extern const scn_opt scn_report_opts[];

/* Sets key (normalised: '_' counts as '-') in base. Returns 0; -1 unknown key (err lists the
 * table's keys); -2 bad value (err says what was expected). *set |= the option's bit. */
int scn_opt_set(const scn_opt *table, void *base, uint32_t *set, const char *key, const char *value,
                char *err, size_t cap);
const scn_opt *scn_opt_find(const scn_opt *table, const char *key);
/* Writes "key=value" for an option of base, like snprintf. */
size_t scn_opt_format(const scn_opt *o, const void *base, char *buf, size_t cap);
/* "a, b, c" of a table's names. */
void scn_opt_names(const scn_opt *table, char *buf, size_t cap);

void scn_watchers_defaults(scn_watchers *w);
void scn_watchers_merge(scn_watchers *dst, const scn_watchers *over);
/* A duration suffix-aware number for expectation bounds: NUMBER, or a duration when ms is set
 * (5s -> 5000). */
int scn_parse_bound(const char *s, bool ms, double *out);

bool scn_is_ident(const char *s);

/* "a,b,c" into the server's endpoint list: 0, or -1 with a message. */
int scn_server_set_endpoints(scn_server *sv, const char *list, char *err, size_t cap);
/* One override at a position (`short` lines: their file:line:col; --set: line 0). A dry run
 * only checks. */
int scn_script_set_at(scn_script *s, const char *assignment, const char *file, scn_loc loc,
                      bool dry_run,
                      scn_errors *errs); /* [A-Za-z0-9_.-]+ starting with a letter or digit */

/* ---- reports: the columns (a run over a window) and the summary rows all formats share ---- */
#define SCN_COLS_MAX 64

typedef struct scn_col {
    const scn_run *run;
    int phase; /* window: -1 = the whole run */
    char label[2 * SCN_NAME_MAX + 2];
} scn_col;

/* One column per run over the report window, or one per phase when there is a single run and
 * by-phase is on (auto: several phases). */
size_t scn_report_columns(const scn_result *r, scn_col *cols, size_t cap);

typedef enum scn_row_kind { SCN_ROW_METRIC, SCN_ROW_RELISTS, SCN_ROW_BYTES } scn_row_kind;
typedef struct scn_row {
    const char *label;
    const char *metric;
    scn_row_kind kind;
} scn_row;
extern const scn_row scn_report_rows[];
extern const size_t scn_report_n_rows;

/* The text of one summary cell. */
void scn_report_cell(const scn_col *c, const scn_row *row, char *buf, size_t cap);
/* "3/4 pass" style tally of the verdicts about a run ("" when none). */
void scn_report_tally(const scn_verdict *v, size_t nv, const char *mode, char *buf, size_t cap);
const char *scn_window_name(const scn_result *r, int phase);

#endif
