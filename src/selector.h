/* selector.h: Kubernetes label selectors (k8s.io/apimachinery labels.Parse,
 * Requirement.Matches, Selector.String, v0.30).
 * Provides selector_parse, selector_matches, selector_string,
 * selector_op_name, selector_free. Uses buf.h and goquote.h (for the %q in
 * validation messages). Pure: no I/O, no globals, any thread.
 * Parse errors carry Go's texts, e.g.
 *   unable to parse requirement: found '' expected: '('
 *   found ',', expected: !, identifier, or 'end of string'
 *   unable to parse requirement: values[0][app]: Invalid value: "a b": ... */
#ifndef ADAPTER_SELECTOR_H
#define ADAPTER_SELECTOR_H
#include <stddef.h>
#include "buf.h"

enum selector_op {
    SELECTOR_EXISTS,        /* k        "exists" */
    SELECTOR_NOT_EXISTS,    /* !k       "!"      */
    SELECTOR_EQ,            /* k=v      "="      */
    SELECTOR_DEQ,           /* k==v     "=="     */
    SELECTOR_NEQ,           /* k!=v     "!="     */
    SELECTOR_IN,            /* k in (.) "in"     */
    SELECTOR_NOTIN,         /* k notin  "notin"  */
    SELECTOR_GT,            /* k>N      ">"      */
    SELECTOR_LT,            /* k<N      "<"      */
};

struct selector_req {
    char *key;
    enum selector_op op;
    char **values;          /* sorted as bytes, de-duplicated */
    size_t nvalues;
};

struct selector {
    struct selector_req *reqs;  /* sorted by key (stable) */
    size_t nreqs;               /* 0: matches everything */
};

/* Parses s[0..len). NUL bytes act as in Go's lexer (a separator, or the
 * end where a token would start). Returns
 * a selector owned by the caller (selector_free), or NULL with err. */
struct selector *selector_parse(const char *s, size_t len, char *err,
                                size_t errlen);

/* Label lookup for selector_matches: returns the value of key (borrowed,
 * NUL-terminated) or NULL when the object has no such label. */
typedef const char *(*selector_lookup_fn)(void *ctx, const char *key);

/* 1 if every requirement matches (Kubernetes semantics: != and notin
 * match an absent key; > and < need an integer value), else 0. */
int selector_matches(const struct selector *sel, selector_lookup_fn lookup,
                     void *ctx);

/* Appends the canonical text (labels.Selector.String()). 0 or -1 (buf
 * limit; the buffer is then freed). */
int selector_string(const struct selector *sel, struct buf *out);

/* "exists" "!" "=" "==" "!=" "in" "notin" ">" "<" */
const char *selector_op_name(enum selector_op op);

void selector_free(struct selector *sel);
#endif
