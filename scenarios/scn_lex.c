/* scn_lex.c — the script lexer and the token-level helpers the statements use: one line at a
 * time into words, quoted strings, '=', comparison operators and '*', with the column of each,
 * so every error can point at the token it is about. */
#include "scn_parse_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void scn_p_perr(pctx *c, int col, const char *fmt, ...) {
    char msg[SCN_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    scn_err_add(c->errs, c->file, (scn_loc){c->line, col}, "%s", msg);
}

scn_loc scn_p_here(const pctx *c, size_t i) {
    return (scn_loc){c->line, i < c->n ? c->t[i].col : 1};
}

/* Column just past the last token (for "expected X at end of line"). */
int scn_p_end_col(const pctx *c) {
    if (!c->n) return 1;
    const tok *t = &c->t[c->n - 1];
    return t->col + (int)strlen(t->text) + (t->kind == TK_STR ? 2 : 0);
}

const char *scn_p_tok_desc(const pctx *c, size_t i, char *buf, size_t cap) {
    if (i >= c->n) return "end of line";
    scn_fmt(buf, cap, "'%s'", c->t[i].text);
    return buf;
}

/* ---- lexer ---- */

static bool special(char ch) {
    return ch == '#' || ch == '"' || ch == '=' || ch == '<' || ch == '>' || ch == '!' || ch == '*';
}

/* Splits one line into tokens. Returns 0 or -1 (error recorded). */
int scn_p_lex(pctx *c, const char *line, size_t len) {
    c->n = 0;
    c->code = line;
    c->code_len = len;
    size_t i = 0;
    while (i < len) {
        char ch = line[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v') {
            i++;
            continue;
        }
        if (ch == '#') {
            c->code_len = i;
            break;
        }
        int col = (int)i + 1;
        if (c->n == TOK_MAX) {
            scn_p_perr(c, col, "too many words on one line (at most %d)", TOK_MAX);
            return -1;
        }
        tok *t = &c->t[c->n];
        memset(t, 0, sizeof *t);
        t->col = col;
        size_t o = 0;
        if (ch == '"') {
            i++;
            for (;;) {
                if (i >= len) {
                    scn_p_perr(c, col, "unterminated string (expected a closing '\"')");
                    return -1;
                }
                char x = line[i++];
                if (x == '"') break;
                if (x == '\\' && i < len) {
                    char e = line[i++];
                    x = e == 'n' ? '\n' : e == 't' ? '\t' : e;
                }
                if (o + 1 >= TOK_TEXT_MAX) {
                    scn_p_perr(c, col, "string too long (at most %d bytes)", TOK_TEXT_MAX - 1);
                    return -1;
                }
                t->text[o++] = x;
            }
            t->kind = TK_STR;
        } else if (ch == '=' || ch == '<' || ch == '>' || ch == '!') {
            bool eq2 = i + 1 < len && line[i + 1] == '=';
            if (ch == '=' && !eq2) {
                t->kind = TK_EQ;
                t->text[0] = '=';
                i++;
            } else if (ch == '!' && !eq2) {
                scn_p_perr(c, col, "unexpected '!' (expected '!=')");
                return -1;
            } else {
                t->kind = TK_OP;
                t->op = ch == '='   ? SCN_OP_EQ
                        : ch == '!' ? SCN_OP_NE
                        : ch == '<' ? (eq2 ? SCN_OP_LE : SCN_OP_LT)
                                    : (eq2 ? SCN_OP_GE : SCN_OP_GT);
                t->text[0] = ch;
                if (eq2) t->text[1] = '=';
                i += eq2 ? 2 : 1;
            }
        } else if (ch == '*') {
            t->kind = TK_STAR;
            t->text[0] = '*';
            i++;
        } else {
            while (i < len && !special(line[i]) && !isspace((unsigned char)line[i])) {
                if (o + 1 >= TOK_TEXT_MAX) {
                    scn_p_perr(c, col, "word too long (at most %d bytes)", TOK_TEXT_MAX - 1);
                    return -1;
                }
                t->text[o++] = line[i++];
            }
            t->kind = TK_WORD;
        }
        c->n++;
    }
    while (c->code_len && isspace((unsigned char)line[c->code_len - 1]))
        c->code_len--;
    return 0;
}

/* ---- helpers ---- */

bool scn_p_valid_name(const char *s) {
    if (!*s || strlen(s) >= SCN_NAME_MAX || !isalnum((unsigned char)*s)) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_') return false;
    return true;
}

/* Reads key=value at *i. Returns 0 (advancing *i by 3) or -1 (error recorded). */
int scn_p_kv_at(pctx *c, size_t *i, const tok **key, const tok **val) {
    char d[TOK_TEXT_MAX + 8];
    size_t k = *i;
    if (k >= c->n || c->t[k].kind != TK_WORD) {
        scn_p_perr(c, k < c->n ? c->t[k].col : scn_p_end_col(c), "expected key=value, got %s",
                   scn_p_tok_desc(c, k, d, sizeof d));
        return -1;
    }
    if (k + 1 >= c->n || c->t[k + 1].kind != TK_EQ) {
        scn_p_perr(c, k + 1 < c->n ? c->t[k + 1].col : scn_p_end_col(c),
                   "expected '=' after '%s', got %s", c->t[k].text,
                   scn_p_tok_desc(c, k + 1, d, sizeof d));
        return -1;
    }
    if (k + 2 >= c->n || (c->t[k + 2].kind != TK_WORD && c->t[k + 2].kind != TK_STR)) {
        scn_p_perr(c, k + 2 < c->n ? c->t[k + 2].col : scn_p_end_col(c),
                   "expected a value after '%s=', got %s", c->t[k].text,
                   scn_p_tok_desc(c, k + 2, d, sizeof d));
        return -1;
    }
    *key = &c->t[k];
    *val = &c->t[k + 2];
    *i = k + 3;
    return 0;
}

/* Applies one key=value through an option table, reporting at the right column. */
int scn_p_apply_opt(pctx *c, const scn_opt *table, void *base, uint32_t *set, const tok *key,
                    const tok *val, const char *what) {
    char msg[SCN_ERR_MAX];
    int rc = scn_opt_set(table, base, set, key->text, val->text, msg, sizeof msg);
    if (rc == -1) scn_p_perr(c, key->col, "%s: %s", what, msg);
    if (rc == -2) scn_p_perr(c, val->col, "%s: %s", what, msg);
    return rc ? -1 : 0;
}

/* key=value pairs from i to the end of the line. */
int scn_p_opts_to_end(pctx *c, size_t i, const scn_opt *table, void *base, uint32_t *set,
                      const char *what) {
    while (i < c->n) {
        const tok *k, *v;
        if (scn_p_kv_at(c, &i, &k, &v) || scn_p_apply_opt(c, table, base, set, k, v, what))
            return -1;
    }
    return 0;
}

int scn_p_need_word(pctx *c, size_t i, const char *what) {
    if (i < c->n && c->t[i].kind == TK_WORD) return 0;
    char d[TOK_TEXT_MAX + 8];
    scn_p_perr(c, i < c->n ? c->t[i].col : scn_p_end_col(c), "expected %s, got %s", what,
               scn_p_tok_desc(c, i, d, sizeof d));
    return -1;
}

void *scn_p_grow_array(pctx *c, void *arr, size_t n, size_t elem) {
    /* one more element, zeroed (statement counts are small: no capacity doubling) */
    void *p = realloc(arr, (n + 1) * elem);
    if (!p) {
        c->oom = true;
        return NULL;
    }
    memset((char *)p + n * elem, 0, elem);
    return p;
}
