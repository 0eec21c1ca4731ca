/* jsonw.h: a small JSON writer for API responses, Go encoding/json style.
 * Provides: a streaming writer (maps, arrays, keys, strings, integers,
 * bools, null, pre-encoded raw JSON) that finishes into a struct buf either
 * compact + one "\n" (Go's json.Encoder) or indented by two spaces with no
 * trailing newline (Go's json.Indent, for ?pretty and WriteRawJSON).
 * Strings are escaped as Go does: '<' '>' '&' as \u003c \u003e \u0026,
 * U+2028/U+2029 as \u2028/\u2029, control bytes as lower-case \u00xx;
 * invalid UTF-8 bytes become \ufffd (one per byte, like Go) instead of
 * failing the response.
 * Uses buf.h and goquote.h (jsonw.c says why not yajl's generator).
 * Thread affinity: a writer belongs to one thread. Errors are sticky: after
 * the first failure every call returns -1 and jsonw_finish reports it, so
 * callers may check once at the end. Map keys must be written with
 * jsonw_key; jsonw_raw is only valid in value position. */
#ifndef ADAPTER_JSONW_H
#define ADAPTER_JSONW_H
#include <stdbool.h>
#include <stddef.h>
#include "buf.h"

struct jsonw;

/* max_bytes bounds the compact output; 0 means 64 MiB. NULL on ENOMEM. */
struct jsonw *jsonw_new(size_t max_bytes);
void jsonw_free(struct jsonw *w);          /* NULL is a no-op */

int jsonw_map_open(struct jsonw *w);
int jsonw_map_close(struct jsonw *w);
int jsonw_array_open(struct jsonw *w);
int jsonw_array_close(struct jsonw *w);
int jsonw_key(struct jsonw *w, const char *key);
int jsonw_keyn(struct jsonw *w, const char *key, size_t len);
int jsonw_string(struct jsonw *w, const char *s);   /* NULL writes null */
int jsonw_stringn(struct jsonw *w, const char *s, size_t len);
int jsonw_int(struct jsonw *w, long long v);
int jsonw_bool(struct jsonw *w, bool v);
int jsonw_null(struct jsonw *w);
/* Splices already-encoded JSON text (one complete value) verbatim; the
 * caller vouches that it is valid JSON. Insignificant whitespace in it is
 * dropped at finish time. */
int jsonw_raw(struct jsonw *w, const char *json, size_t len);
/* key + value shorthands */
int jsonw_kv_string(struct jsonw *w, const char *key, const char *s);
int jsonw_kv_int(struct jsonw *w, const char *key, long long v);
int jsonw_kv_bool(struct jsonw *w, const char *key, bool v);

/* Appends the document to out (which the caller owns and initialised):
 * compact text + "\n", or (pretty) two-space indented text with no
 * newline at the end. Fails if the document is incomplete, a previous call
 * failed, or out refused the bytes (out is then freed, per buf.h). The
 * writer is left empty and may be reused for a new document. */
int jsonw_finish(struct jsonw *w, struct buf *out, bool pretty,
                 char *err, size_t errlen);
#endif
