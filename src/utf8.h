/* utf8.h: invalid UTF-8 in decoded JSON strings, treated as Go's
 * encoding/json does: each byte that utf8.DecodeRune rejects (it returns
 * RuneError with width 1) becomes one U+FFFD, everything else is kept.
 * Provides utf8_valid_prefix(), utf8_repair(), utf8_repair_dup().
 * Uses goquote.h (its Go-exact DecodeRune). No global state (any thread). */
#ifndef ADAPTER_UTF8_H
#define ADAPTER_UTF8_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* True when s[0..n) is all ASCII, so valid: the first test, inline and
 * branch-light because nearly every string passes it (a label is a few
 * to a few dozen bytes). */
static inline bool
utf8_is_ascii(const char *s, size_t n)
{
    uint64_t acc = 0, w;
    uint32_t h;
    uint16_t q;
    size_t i;

    if (n >= 8) {
        for (i = 0; i + 8 <= n; i += 8) {
            memcpy(&w, s + i, 8);
            acc |= w;
        }
        memcpy(&w, s + n - 8, 8);   /* the tail, overlapping */
        acc |= w;
    } else {
        if (n & 4) {
            memcpy(&h, s, 4);
            acc |= h;
        }
        if (n & 2) {
            memcpy(&q, s + (n & 4), 2);
            acc |= q;
        }
        if (n & 1)
            acc |= (unsigned char)s[n - 1];
    }
    return !(acc & 0x8080808080808080ull);
}

/* How many bytes at the start of s[0..n) are valid UTF-8: n when all are.
 * ASCII is checked eight bytes at a time. */
size_t utf8_valid_prefix(const char *s, size_t n);

/* Writes s[0..n) to out with each invalid byte replaced by U+FFFD (EF BF
 * BD); out must hold 3 * n bytes (no NUL is written). Returns the length
 * written. */
size_t utf8_repair(const char *s, size_t n, char *out);

/* The repaired copy of s[0..n) in a malloc'd, NUL-terminated string of
 * exactly the length needed (*outlen when non-NULL). NULL when out of
 * memory. */
char *utf8_repair_dup(const char *s, size_t n, size_t *outlen);
#endif
