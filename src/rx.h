/* rx.h: regular expressions with Go RE2 semantics, on PCRE2.
 * Provides rx_compile/rx_compilen, rx_search, capture counts and the
 * capture-name table, rx_free.
 * Uses PCRE2 (rx.c is the only file that includes pcre2.h) and buf.h.
 * A pattern is first read with Go's regexp/syntax grammar (Perl flags, as
 * regexp.Compile): everything RE2 lacks (backreferences, look-around, atomic
 * groups, possessive quantifiers, recursion, conditionals, \C, callouts,
 * (?x) and other PCRE-only flags, \Z, \h, \R, ...) is rejected with Go's
 * error text ("error parsing regexp: <reason>: `<expr>`"); what Go accepts
 * is rewritten into an equivalent PCRE2 pattern (ASCII \d \s \w, literal
 * '{' where Go does not see a repeat, names kept out of PCRE2).
 * A compiled struct rx is immutable and may be shared between threads;
 * rx_search allocates its own match data per call. Never holds a lock,
 * never logs. */
#ifndef ADAPTER_RX_H
#define ADAPTER_RX_H
#include <stddef.h>

struct rx;

#define RX_UNSET ((size_t)-1)

/* Compiles a NUL-terminated pattern / a pattern of len bytes. Returns NULL
 * with the reason in err on a syntax error or an unsupported construct. */
struct rx *rx_compile(const char *pat, char *err, size_t errlen);
struct rx *rx_compilen(const char *pat, size_t len, char *err, size_t errlen);

/* Unanchored leftmost-first search of s[0..len) (Go FindStringSubmatchIndex).
 * ovec (may be NULL when novec is 0) receives up to novec/2 (start, end)
 * pairs: pair 0 the whole match, pair i group i; RX_UNSET for groups that
 * did not take part. Returns 1 on a match, 0 on none, -1 on a matching
 * error (PCRE2 match limit; reason in err). Thread-safe. */
int rx_search(const struct rx *rx, const char *s, size_t len, size_t *ovec,
              size_t novec, char *err, size_t errlen);

/* Number of capturing groups (named ones included). */
int rx_ncaptures(const struct rx *rx);

/* Named groups, in pattern order: rx_name_at(rx, i, &group) for
 * i < rx_name_count(rx). The same name may appear twice (Go allows it);
 * rx_name_index returns the leftmost group with that name, or -1. The
 * strings are owned by rx. */
int rx_name_count(const struct rx *rx);
const char *rx_name_at(const struct rx *rx, int i, int *group);
int rx_name_index(const struct rx *rx, const char *name);

/* The source pattern (owned by rx, NUL-terminated) and the PCRE2 pattern
 * it was rewritten to (for diagnostics). */
const char *rx_pattern(const struct rx *rx);
const char *rx_translated(const struct rx *rx);

void rx_free(struct rx *rx);
#endif
