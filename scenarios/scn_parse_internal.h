/* scn_parse_internal.h — the script parser's line context, tokens and helpers, shared by the
 * lexer (scn_lex.c) and the statements (scn_parse.c). */
#ifndef RELIST_SCN_PARSE_INTERNAL_H
#define RELIST_SCN_PARSE_INTERNAL_H

#include "scn_internal.h"

#define TOK_MAX      128
#define TOK_TEXT_MAX 256

typedef enum tok_kind { TK_WORD, TK_STR, TK_EQ, TK_OP, TK_STAR } tok_kind;

typedef struct tok {
    tok_kind kind;
    int col;
    scn_op op;
    char text[TOK_TEXT_MAX];
} tok;

typedef struct at_ref { /* an `at PHASE[+offset]` waiting for the phase list */
    size_t action;
    int col;
    char phase[SCN_NAME_MAX];
} at_ref;

typedef struct pctx {
    const char *file;
    int line;
    scn_errors *errs;
    scn_script *s;
    tok t[TOK_MAX];
    size_t n;
    const char *code; /* the line without its comment, for expectation texts */
    size_t code_len;
    at_ref *ats;
    size_t n_ats;
    bool oom;
} pctx;

void scn_p_perr(pctx *c, int col, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
scn_loc scn_p_here(const pctx *c, size_t i);
int scn_p_end_col(const pctx *c); /* the column just past the last token */
const char *scn_p_tok_desc(const pctx *c, size_t i, char *buf, size_t cap);
/* Splits one line into tokens: 0, or -1 (error recorded). */
int scn_p_lex(pctx *c, const char *line, size_t len);
bool scn_p_valid_name(const char *s);
/* key=value at *i: 0 (advancing *i by 3) or -1 (error recorded). */
int scn_p_kv_at(pctx *c, size_t *i, const tok **key, const tok **val);
int scn_p_apply_opt(pctx *c, const scn_opt *table, void *base, uint32_t *set, const tok *key,
                    const tok *val, const char *what);
int scn_p_opts_to_end(pctx *c, size_t i, const scn_opt *table, void *base, uint32_t *set,
                      const char *what);
int scn_p_need_word(pctx *c, size_t i, const char *what);
void *scn_p_grow_array(pctx *c, void *arr, size_t n, size_t elem);

#endif
