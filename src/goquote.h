/* goquote.h: Go's strconv.Quote (the %q verb) for byte strings.
 * Provides goquote(), goquote_isprint() and goquote_utf8_decode().
 * Uses buf.h only. Never allocates outside the caller's buffer; never
 * touches global state (safe from any thread). */
#ifndef ADAPTER_GOQUOTE_H
#define ADAPTER_GOQUOTE_H
#include <stddef.h>
#include <stdint.h>
#include "buf.h"

/* Appends the Go double-quoted form of s[0..len) to out, exactly as
 * strconv.Quote: \" \\ \a \b \f \n \r \t \v, \xHH for other control bytes,
 * DEL and each byte of invalid UTF-8, \uHHHH / \UHHHHHHHH for code points
 * that are not printable per Go's unicode.IsPrint (Unicode 15.0, as Go 1.22),
 * everything else copied. Returns 0, or -1 when out hit its limit (buf.h:
 * the buffer is then freed). */
int goquote(struct buf *out, const char *s, size_t len);

/* Go unicode.IsPrint: general category L, M, N, P or S, or U+0020. */
int goquote_isprint(uint32_t cp);

/* Decodes one UTF-8 sequence as Go's utf8.DecodeRune does (no overlongs,
 * no surrogates, nothing above U+10FFFF). Returns the width (1-4) and sets
 * *cp; for invalid input returns 1 and sets *cp to 0xFFFD. n must be > 0. */
size_t goquote_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
#endif
