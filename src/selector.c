/* selector.c: Kubernetes label selectors (see selector.h). Uses buf.h and
 * goquote.h; libc otherwise. A port of apimachinery v0.30
 * pkg/labels/selector.go (Lexer, Parser, NewRequirement, Matches, String)
 * and the validation of pkg/util/validation, so that the accepted inputs
 * and the error texts are Go's. Never logs; never keeps state. */
#include "selector.h"
#include "goquote.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ERRS 8

enum tok {
    T_ERROR, T_EOS, T_CPAR, T_COMMA, T_NOT, T_DEQ, T_EQ, T_GT, T_IDENT,
    T_IN, T_LT, T_NEQ, T_NOTIN, T_OPAR,
};

struct token {
    enum tok tok;
    const char *lit;        /* points into the input */
    size_t len;
};

struct parser {
    const char *s;
    size_t len, pos;        /* lexer position */
    struct token *items;
    size_t nitems, at;      /* scanned tokens, parser position */
    char *err;
    size_t errlen;
};

/* A value set under construction: slices of the input. */
struct strset {
    struct token *v;
    size_t n, cap;
};

static const char *const qname_fmt =
    "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
static const char *const qname_msg =
    "must consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character";

/* -- Lexer ------------------------------------------------------------------ */

static int
is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
is_special(int c)
{
    return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' ||
           c == '>' || c == '<';
}

/* Go's read(): a NUL byte reads as the end of the string. */
static int
lex_read(struct parser *p)
{
    if (p->pos < p->len) {
        int c = (unsigned char)p->s[p->pos];
        p->pos++;
        return c;
    }
    return 0;
}

static enum tok
symbol_tok(const char *s, size_t n)
{
    static const struct {
        const char *text;
        enum tok tok;
    } syms[] = {
        {")", T_CPAR}, {",", T_COMMA}, {"!", T_NOT}, {"==", T_DEQ},
        {"=", T_EQ}, {">", T_GT}, {"<", T_LT}, {"!=", T_NEQ}, {"(", T_OPAR},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
        if (strlen(syms[i].text) == n && memcmp(syms[i].text, s, n) == 0)
            return syms[i].tok;
    return T_ERROR;
}

static struct token
lex(struct parser *p)
{
    struct token t = {T_EOS, "", 0};
    int c;

    do
        c = lex_read(p);
    while (is_space(c));
    if (c == 0)
        return t;
    p->pos--;
    t.lit = p->s + p->pos;
    if (is_special(c)) {
        /* longest symbol: extend while the text is still a token */
        size_t n = 0;
        enum tok last = T_ERROR;
        while ((c = lex_read(p)) != 0) {
            if (!is_special(c)) {
                p->pos--;
                break;
            }
            n++;
            enum tok k = symbol_tok(t.lit, n);
            if (k != T_ERROR) {
                last = k;
            } else if (last != T_ERROR) {
                p->pos--;
                n--;
                break;
            }
        }
        t.tok = last;
        t.len = n;
        return t;
    }
    while ((c = lex_read(p)) != 0) {
        if (is_special(c) || is_space(c)) {
            p->pos--;
            break;
        }
        t.len++;
    }
    t.tok = T_IDENT;
    if (t.len == 2 && memcmp(t.lit, "in", 2) == 0)
        t.tok = T_IN;
    else if (t.len == 5 && memcmp(t.lit, "notin", 5) == 0)
        t.tok = T_NOTIN;
    return t;
}

static int
scan(struct parser *p)
{
    size_t cap = 0;
    for (;;) {
        struct token t = lex(p);
        if (p->nitems == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct token *n = realloc(p->items, nc * sizeof *n);
            if (!n) {
                snprintf(p->err, p->errlen, "out of memory");
                return -1;
            }
            p->items = n;
            cap = nc;
        }
        p->items[p->nitems++] = t;
        if (t.tok == T_EOS)
            return 0;
    }
}

/* Values context: "in" and "notin" are identifiers there. */
static struct token
lookahead(struct parser *p, int values)
{
    struct token t = p->items[p->at];
    if (values && (t.tok == T_IN || t.tok == T_NOTIN))
        t.tok = T_IDENT;
    return t;
}

static struct token
consume(struct parser *p, int values)
{
    struct token t = lookahead(p, values);
    if (t.tok != T_EOS)   /* EOS is last; Go never reads past it either */
        p->at++;
    return t;
}

/* -- Validation (k8s.io/apimachinery/pkg/util/validation) ------------------- */

static int
alnum(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z');
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], anchored */
static int
qname_ok(const char *s, size_t n)
{
    if (n == 0 || !alnum((unsigned char)s[0]) ||
        !alnum((unsigned char)s[n - 1]))
        return 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (!alnum(c) && c != '-' && c != '_' && c != '.')
            return 0;
    }
    return 1;
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)* */
static int
dns_subdomain_ok(const char *s, size_t n)
{
    size_t i = 0;
    for (;;) {
        size_t st = i;
        while (i < n && s[i] != '.') {
            int c = (unsigned char)s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-'))
                return 0;
            i++;
        }
        if (i == st || s[st] == '-' || s[i - 1] == '-')
            return 0;
        if (i == n)
            return 1;
        i++;    /* '.' */
    }
}

static int
regex_error(struct buf *b, const char *msg, const char *fmt,
            const char *const *examples, int nex)
{
    if (buf_adds(b, msg) < 0 || buf_adds(b, " (e.g. ") < 0)
        return -1;
    for (int i = 0; i < nex; i++)
        if (buf_addf(b, "%s'%s', ", i ? " or " : "", examples[i]) < 0)
            return -1;
    return buf_addf(b, "regex used for validation is '%s')", fmt);
}

/* validation.IsQualifiedName: appends "; "-joined messages to b; returns
 * 1 if the key is valid, 0 if not, -1 on buffer failure. */
static int
check_key(struct buf *b, const char *k, size_t n)
{
    static const char *const ex[] = {"MyName", "my.name", "123-abc"};
    const char *slash = memchr(k, '/', n), *name = k;
    size_t nlen = n, start = b->len;

    if (slash && memchr(slash + 1, '/', n - (size_t)(slash - k) - 1)) {
        if (buf_adds(b, "a qualified name ") < 0 ||
            regex_error(b, qname_msg, qname_fmt, ex, 3) < 0 ||
            buf_adds(b, " with an optional DNS subdomain prefix and '/' "
                        "(e.g. 'example.com/MyName')") < 0)
            return -1;
        return 0;
    }
    if (slash) {
        static const char *const dex[] = {"example.com"};
        size_t plen = (size_t)(slash - k);
        name = slash + 1;
        nlen = n - plen - 1;
        if (plen == 0) {
            if (buf_adds(b, "prefix part must be non-empty") < 0)
                return -1;
        } else {
            int sep = 0;
            if (plen > 253) {
                if (buf_adds(b, "prefix part must be no more than 253 "
                                "characters") < 0)
                    return -1;
                sep = 1;
            }
            if (!dns_subdomain_ok(k, plen) &&
                (buf_adds(b, sep ? "; prefix part " : "prefix part ") < 0 ||
                 regex_error(b, "a lowercase RFC 1123 subdomain must consist "
                             "of lower case alphanumeric characters, '-' or "
                             "'.', and must start and end with an "
                             "alphanumeric character",
                             "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]"
                             "([-a-z0-9]*[a-z0-9])?)*", dex, 1) < 0))
                return -1;
        }
    }
    if (nlen == 0) {
        if (buf_adds(b, b->len > start ? "; " : "") < 0 ||
            buf_adds(b, "name part must be non-empty") < 0)
            return -1;
    } else if (nlen > 63) {
        if (buf_adds(b, b->len > start ? "; " : "") < 0 ||
            buf_adds(b, "name part must be no more than 63 characters") < 0)
            return -1;
    }
    if (!qname_ok(name, nlen) &&
        (buf_adds(b, b->len > start ? "; " : "") < 0 ||
         buf_adds(b, "name part ") < 0 ||
         regex_error(b, qname_msg, qname_fmt, ex, 3) < 0))
        return -1;
    return b->len == start;
}

/* validation.IsValidLabelValue, as check_key. */
static int
check_value(struct buf *b, const char *v, size_t n)
{
    static const char *const ex[] = {"MyValue", "my_value", "12345"};
    size_t start = b->len;

    if (n > 63 && buf_adds(b, "must be no more than 63 characters") < 0)
        return -1;
    if (n > 0 && !qname_ok(v, n) &&
        (buf_adds(b, b->len > start ? "; " : "") < 0 ||
         regex_error(b, "a valid label must be an empty string or consist "
                     "of alphanumeric characters, '-', '_' or '.', and must "
                     "start and end with an alphanumeric character",
                     "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", ex,
                     3) < 0))
        return -1;
    return b->len == start;
}

/* strconv.ParseInt(s, 10, 64) succeeds */
static int
parse_int64(const char *s, size_t n, long long *out)
{
    char tmp[32], *end;
    size_t i = 0;

    if (n == 0 || n >= sizeof tmp)
        return 0;
    if (s[0] == '+' || s[0] == '-')
        i = 1;
    if (i == n)
        return 0;
    for (size_t k = i; k < n; k++)
        if (s[k] < '0' || s[k] > '9')
            return 0;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    errno = 0;
    *out = strtoll(tmp, &end, 10);
    return errno == 0 && *end == '\0';
}

/* -- Parser (Go Parser.parse and friends) ------------------------------------ */

static int
set_add(struct parser *p, struct strset *set, const char *s, size_t n)
{
    if (set->n == set->cap) {
        size_t nc = set->cap ? set->cap * 2 : 4;
        struct token *v = realloc(set->v, nc * sizeof *v);
        if (!v) {
            snprintf(p->err, p->errlen, "out of memory");
            return -1;
        }
        set->v = v;
        set->cap = nc;
    }
    set->v[set->n].lit = s;
    set->v[set->n].len = n;
    set->n++;
    return 0;
}

static int
cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static int
cmp_tok(const void *a, const void *b)
{
    const struct token *x = a, *y = b;
    return cmp_bytes(x->lit, x->len, y->lit, y->len);
}

/* "found '%s', ..." errors: the literal is printed as Go's %s would. */
static int
found(struct parser *p, const char *prefix, struct token t, const char *what)
{
    snprintf(p->err, p->errlen, "%sfound '%.*s'%s", prefix, (int)t.len,
             t.lit, what);
    return -1;
}

#define REQ "unable to parse requirement: "

static int
parse_values(struct parser *p, struct strset *set)
{
    struct token t = consume(p, 1), first;

    if (t.tok != T_OPAR)
        return found(p, REQ, t, " expected: '('");
    first = lookahead(p, 1);
    if (first.tok == T_CPAR) {        /* "()" is one empty value */
        consume(p, 1);
        return set_add(p, set, "", 0);
    }
    if (first.tok != T_IDENT && first.tok != T_COMMA)
        return found(p, REQ, first, ", expected: ',', ')' or identifier");
    for (;;) {
        t = consume(p, 1);
        if (t.tok == T_IDENT) {
            struct token t2;
            if (set_add(p, set, t.lit, t.len) < 0)
                return -1;
            t2 = lookahead(p, 1);
            if (t2.tok == T_COMMA)
                continue;
            if (t2.tok == T_CPAR)
                break;
            return found(p, REQ, t2, ", expected: ',' or ')'");
        } else if (t.tok == T_COMMA) {
            struct token t2;
            if (set->n == 0 && set_add(p, set, "", 0) < 0)  /* "(," */
                return -1;
            t2 = lookahead(p, 1);
            if (t2.tok == T_CPAR) {                          /* ",)" */
                if (set_add(p, set, "", 0) < 0)
                    return -1;
                break;
            }
            if (t2.tok == T_COMMA) {                         /* ",," */
                consume(p, 1);
                if (set_add(p, set, "", 0) < 0)
                    return -1;
            }
        } else {
            return found(p, REQ, t, ", expected: ',', or identifier");
        }
    }
    if (consume(p, 1).tok != T_CPAR)
        return found(p, REQ, first, ", expected: ')'");  /* sic: Go */
    return 0;
}

static int
parse_exact_value(struct parser *p, struct strset *set)
{
    struct token t = lookahead(p, 1);
    if (t.tok == T_EOS || t.tok == T_COMMA)
        return set_add(p, set, "", 0);
    t = consume(p, 1);
    if (t.tok == T_IDENT)
        return set_add(p, set, t.lit, t.len);
    return found(p, REQ, t, ", expected: identifier");
}

/* Collects NewRequirement's errors; the message is Go's aggregate. */
struct errlist {
    struct buf msgs[MAX_ERRS];
    int n;
};

static struct buf *
errlist_next(struct errlist *e)
{
    if (e->n == MAX_ERRS)
        return NULL;
    buf_init(&e->msgs[e->n], 1 << 16);
    return &e->msgs[e->n++];
}

static void
errlist_free(struct errlist *e)
{
    for (int i = 0; i < e->n; i++)
        buf_free(&e->msgs[i]);
    e->n = 0;
}

/* "<field>: Invalid value: <%q value>: <detail>" */
static int
invalid(struct errlist *e, const char *field, const char *v, size_t n,
        const char *detail)
{
    struct buf *b = errlist_next(e);
    if (!b)
        return 0;
    if (buf_adds(b, field) < 0 || buf_adds(b, ": Invalid value: ") < 0 ||
        goquote(b, v, n) < 0 || buf_adds(b, ": ") < 0 ||
        buf_adds(b, detail) < 0)
        return -1;
    return 0;
}

static void
errlist_report(struct parser *p, struct errlist *e)
{
    char *out = p->err;
    size_t left = p->errlen;
    int shown = 0;

    if (e->n == 1) {
        snprintf(out, left, REQ "%s", e->msgs[0].data ? e->msgs[0].data : "");
        return;
    }
    int w = snprintf(out, left, REQ "[");
    for (int i = 0; i < e->n; i++) {
        int dup = 0;
        for (int k = 0; k < i; k++)
            if (e->msgs[k].data && e->msgs[i].data &&
                strcmp(e->msgs[k].data, e->msgs[i].data) == 0)
                dup = 1;
        if (dup || !e->msgs[i].data)
            continue;
        if (w >= 0 && (size_t)w < left)
            w += snprintf(out + w, left - (size_t)w, "%s%s",
                          shown ? ", " : "", e->msgs[i].data);
        shown++;
    }
    if (w >= 0 && (size_t)w < left)
        snprintf(out + w, left - (size_t)w, "]");
}

/* NewRequirement: validates, sorts and de-duplicates the values and appends
 * the requirement to sel (which owns the copies). */
static int
new_requirement(struct parser *p, struct selector *sel, struct token key,
                enum selector_op op, struct strset *set)
{
    struct errlist e;
    struct selector_req *r;
    size_t n = 0;
    char field[64];
    int rc = -1, reported = 0;

    e.n = 0;
    if (set->n > 1)
        qsort(set->v, set->n, sizeof set->v[0], cmp_tok);
    for (size_t i = 0; i < set->n; i++)     /* sets.String.List(): unique */
        if (n == 0 || cmp_tok(&set->v[n - 1], &set->v[i]) != 0)
            set->v[n++] = set->v[i];
    set->n = n;
    switch (op) {
    case SELECTOR_IN:
    case SELECTOR_NOTIN:
        if (n == 0 && invalid(&e, "values", "[]string{}", 0,
                              "for 'in', 'notin' operators, values set "
                              "can't be empty") < 0)
            goto fail;
        break;
    case SELECTOR_EQ:
    case SELECTOR_DEQ:
    case SELECTOR_NEQ:
        if (n != 1 && invalid(&e, "values", "", 0, "exact-match "
                              "compatibility requires one single value") < 0)
            goto fail;
        break;
    case SELECTOR_GT:
    case SELECTOR_LT:
        for (size_t i = 0; i < n; i++) {
            long long v;
            if (!parse_int64(set->v[i].lit, set->v[i].len, &v)) {
                snprintf(field, sizeof field, "values[%zu]", i);
                if (invalid(&e, field, set->v[i].lit, set->v[i].len,
                            "for 'Gt', 'Lt' operators, the value must be an "
                            "integer") < 0)
                    goto fail;
            }
        }
        break;
    default:
        break;
    }
    for (size_t i = 0; i < n; i++) {
        struct buf detail;
        int ok;
        buf_init(&detail, 1 << 16);
        ok = check_value(&detail, set->v[i].lit, set->v[i].len);
        if (ok == 0) {
            struct buf fb;
            buf_init(&fb, 1 << 16);
            if (buf_addf(&fb, "values[%zu][%.*s]", i, (int)key.len,
                         key.lit) < 0 ||
                invalid(&e, fb.data, set->v[i].lit, set->v[i].len,
                        detail.data) < 0)
                ok = -1;
            buf_free(&fb);
        }
        buf_free(&detail);
        if (ok < 0)
            goto fail;
    }
    if (e.n > 0) {
        errlist_report(p, &e);
        reported = 1;
        goto fail;
    }
    r = realloc(sel->reqs, (sel->nreqs + 1) * sizeof *r);
    if (!r)
        goto fail;
    sel->reqs = r;
    r = &sel->reqs[sel->nreqs];
    memset(r, 0, sizeof *r);
    sel->nreqs++;       /* from here selector_free cleans up r */
    r->op = op;
    if (!(r->key = strndup(key.lit, key.len)))
        goto fail;
    if (n && !(r->values = calloc(n, sizeof *r->values)))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (!(r->values[i] = strndup(set->v[i].lit, set->v[i].len)))
            goto fail;
        r->nvalues++;
    }
    rc = 0;
fail:
    if (rc < 0 && !reported)
        snprintf(p->err, p->errlen, "out of memory");
    errlist_free(&e);
    return rc;
}

static int
parse_requirement(struct parser *p, struct selector *sel)
{
    struct token key = consume(p, 1), t;
    enum selector_op op;
    struct strset set = {NULL, 0, 0};
    struct buf kb;
    int ok, rc = -1, not = 0;

    if (key.tok == T_NOT) {
        not = 1;
        key = consume(p, 1);
    }
    if (key.tok != T_IDENT)
        return found(p, REQ, key, ", expected: identifier");
    buf_init(&kb, 1 << 16);
    ok = check_key(&kb, key.lit, key.len);
    if (ok <= 0) {
        struct buf m;
        buf_init(&m, 1 << 16);
        if (ok == 0 && buf_adds(&m, REQ "<nil>: Invalid value: ") == 0 &&
            goquote(&m, key.lit, key.len) == 0 &&
            buf_addf(&m, ": %s", kb.data) == 0)
            snprintf(p->err, p->errlen, "%s", m.data);
        else
            snprintf(p->err, p->errlen, "out of memory");
        buf_free(&m);
        buf_free(&kb);
        return -1;
    }
    buf_free(&kb);
    t = lookahead(p, 1);
    if (not || t.tok == T_EOS || t.tok == T_COMMA) {
        /* "!k" stays "!" even when more follows; parse() then complains */
        op = not ? SELECTOR_NOT_EXISTS : SELECTOR_EXISTS;
        return new_requirement(p, sel, key, op, &set);
    }
    t = consume(p, 0);
    switch (t.tok) {
    case T_IN: op = SELECTOR_IN; break;
    case T_EQ: op = SELECTOR_EQ; break;
    case T_DEQ: op = SELECTOR_DEQ; break;
    case T_GT: op = SELECTOR_GT; break;
    case T_LT: op = SELECTOR_LT; break;
    case T_NOTIN: op = SELECTOR_NOTIN; break;
    case T_NEQ: op = SELECTOR_NEQ; break;
    default:
        return found(p, REQ, t, ", expected: in, notin, =, ==, !=, gt, lt");
    }
    if (op == SELECTOR_IN || op == SELECTOR_NOTIN)
        ok = parse_values(p, &set);
    else
        ok = parse_exact_value(p, &set);
    if (ok == 0)
        rc = new_requirement(p, sel, key, op, &set);
    free(set.v);
    return rc;
}

static int
parse(struct parser *p, struct selector *sel)
{
    for (;;) {
        struct token t = lookahead(p, 1);
        if (t.tok == T_EOS)
            return 0;
        if (t.tok != T_IDENT && t.tok != T_NOT)
            return found(p, "", t,
                         ", expected: !, identifier, or 'end of string'");
        if (parse_requirement(p, sel) < 0)
            return -1;
        t = consume(p, 1);
        if (t.tok == T_EOS)
            return 0;
        if (t.tok != T_COMMA)
            return found(p, "", t, ", expected: ',' or 'end of string'");
        t = lookahead(p, 1);
        if (t.tok != T_IDENT && t.tok != T_NOT)
            return found(p, "", t, ", expected: identifier after ','");
    }
}

/* -- Public API ---------------------------------------------------------------- */

void
selector_free(struct selector *sel)
{
    if (!sel)
        return;
    for (size_t i = 0; i < sel->nreqs; i++) {
        for (size_t k = 0; k < sel->reqs[i].nvalues; k++)
            free(sel->reqs[i].values[k]);
        free(sel->reqs[i].values);
        free(sel->reqs[i].key);
    }
    free(sel->reqs);
    free(sel);
}

struct selector *
selector_parse(const char *s, size_t len, char *err, size_t errlen)
{
    struct parser p;
    struct selector *sel = calloc(1, sizeof *sel);

    memset(&p, 0, sizeof p);
    p.s = s;
    p.len = len;
    p.err = err;
    p.errlen = errlen;
    if (!sel) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (scan(&p) < 0 || parse(&p, sel) < 0) {
        free(p.items);
        selector_free(sel);
        return NULL;
    }
    free(p.items);
    /* sort.Sort(ByKey): insertion sort, stable as Go's is for small n */
    for (size_t i = 1; i < sel->nreqs; i++) {
        struct selector_req r = sel->reqs[i];
        size_t k = i;
        while (k > 0 && strcmp(sel->reqs[k - 1].key, r.key) > 0) {
            sel->reqs[k] = sel->reqs[k - 1];
            k--;
        }
        sel->reqs[k] = r;
    }
    return sel;
}

const char *
selector_op_name(enum selector_op op)
{
    static const char *const names[] = {
        "exists", "!", "=", "==", "!=", "in", "notin", ">", "<",
    };
    if ((unsigned)op >= sizeof names / sizeof names[0])
        return "?";
    return names[op];
}

static int
has_value(const struct selector_req *r, const char *v)
{
    for (size_t i = 0; i < r->nvalues; i++)
        if (strcmp(r->values[i], v) == 0)
            return 1;
    return 0;
}

static int
req_matches(const struct selector_req *r, selector_lookup_fn lookup,
            void *ctx)
{
    const char *v = lookup(ctx, r->key);
    long long lv, rv;

    switch (r->op) {
    case SELECTOR_IN:
    case SELECTOR_EQ:
    case SELECTOR_DEQ:
        return v && has_value(r, v);
    case SELECTOR_NOTIN:
    case SELECTOR_NEQ:
        return !v || !has_value(r, v);
    case SELECTOR_EXISTS:
        return v != NULL;
    case SELECTOR_NOT_EXISTS:
        return v == NULL;
    case SELECTOR_GT:
    case SELECTOR_LT:
        if (!v || r->nvalues != 1 || !parse_int64(v, strlen(v), &lv) ||
            !parse_int64(r->values[0], strlen(r->values[0]), &rv))
            return 0;
        return r->op == SELECTOR_GT ? lv > rv : lv < rv;
    }
    return 0;
}

int
selector_matches(const struct selector *sel, selector_lookup_fn lookup,
                 void *ctx)
{
    for (size_t i = 0; i < sel->nreqs; i++)
        if (!req_matches(&sel->reqs[i], lookup, ctx))
            return 0;
    return 1;
}

int
selector_string(const struct selector *sel, struct buf *out)
{
    static const char *const sep[] = {
        "", "", "=", "==", "!=", " in (", " notin (", ">", "<",
    };
    for (size_t i = 0; i < sel->nreqs; i++) {
        const struct selector_req *r = &sel->reqs[i];
        if (i && buf_addc(out, ',') < 0)
            return -1;
        if (r->op == SELECTOR_NOT_EXISTS && buf_addc(out, '!') < 0)
            return -1;
        if (buf_adds(out, r->key) < 0 || buf_adds(out, sep[r->op]) < 0)
            return -1;
        if (r->op == SELECTOR_EXISTS || r->op == SELECTOR_NOT_EXISTS)
            continue;
        for (size_t k = 0; k < r->nvalues; k++)
            if ((k && buf_addc(out, ',') < 0) ||
                buf_adds(out, r->values[k]) < 0)
                return -1;
        if ((r->op == SELECTOR_IN || r->op == SELECTOR_NOTIN) &&
            buf_addc(out, ')') < 0)
            return -1;
    }
    return 0;
}
