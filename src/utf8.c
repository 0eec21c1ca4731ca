/* utf8.c: Go's repair of invalid UTF-8 in decoded JSON strings (see
 * utf8.h). Uses goquote.h for utf8.DecodeRune. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "goquote.h"
#include "utf8.h"

#define HIGH_BITS 0x8080808080808080ull

/* Width of the sequence at p (n > 0 bytes left), 0 when p[0] is a byte
 * DecodeRune rejects. */
static size_t
seq_len(const unsigned char *p, size_t n)
{
    uint32_t cp;
    size_t w;

    if (p[0] < 0x80)
        return 1;
    w = goquote_utf8_decode(p, n, &cp);
    return w == 1 ? 0 : w;   /* a valid non-ASCII sequence is 2-4 bytes */
}

size_t
utf8_valid_prefix(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, w;

    while (i < n) {
        uint64_t word;
        if (n - i >= 8) {
            memcpy(&word, p + i, 8);
            if (!(word & HIGH_BITS)) {
                i += 8;
                continue;
            }
        }
        if ((w = seq_len(p + i, n - i)) == 0)
            return i;
        i += w;
    }
    return n;
}

/* Appends the repair of p[0..n) at out; returns the bytes written, or
 * only counts them when out is NULL. */
static size_t
repair(const unsigned char *p, size_t n, unsigned char *out)
{
    size_t i = 0, o = 0, k, w;

    while (i < n) {
        k = utf8_valid_prefix((const char *)p + i, n - i);
        if (out)
            memcpy(out + o, p + i, k);
        o += k;
        i += k;
        /* invalid bytes: one U+FFFD each */
        while (i < n && (w = seq_len(p + i, n - i)) == 0) {
            if (out)
                memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    return o;
}

size_t
utf8_repair(const char *s, size_t n, char *out)
{
    return repair((const unsigned char *)s, n, (unsigned char *)out);
}

char *
utf8_repair_dup(const char *s, size_t n, size_t *outlen)
{
    size_t len = repair((const unsigned char *)s, n, NULL);
    char *out = malloc(len + 1);

    if (!out)
        return NULL;
    repair((const unsigned char *)s, n, (unsigned char *)out);
    out[len] = '\0';
    if (outlen)
        *outlen = len;
    return out;
}
