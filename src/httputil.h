/* httputil.h: request-text helpers shared by the server and the API layer.
 * Provides percent/form decoding, path segment splitting, Accept
 * negotiation (spec-server 5.2), pretty-print detection (4.6), Go
 * time.ParseDuration with Go's error text, and the ?timeout= rule of the
 * request-deadline filter. Uses libc and buf.h only; pure functions,
 * thread-safe. Must never accept a decoded NUL byte: C strings would be
 * silently truncated. */
#ifndef ADAPTER_HTTPUTIL_H
#define ADAPTER_HTTPUTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"

/* Decodes %XX escapes of in[0..n) into out (appended). form: '+' becomes a
 * space first (query strings); otherwise '+' is literal (paths). -1 on a
 * malformed escape, a decoded NUL, or when out refuses the bytes. */
int httputil_pct_decode(const char *in, size_t n, bool form, struct buf *out);

#define HTTPUTIL_MAX_SEGS 32

/* The non-empty '/'-separated segments of a decoded path. */
struct httputil_segs {
    char *mem;                  /* owned copy, NULs at the separators */
    const char *seg[HTTPUTIL_MAX_SEGS];
    size_t n;
};
/* -1 when there are more than HTTPUTIL_MAX_SEGS segments or on ENOMEM
 * (nothing to free then). */
int httputil_split_path(const char *path, struct httputil_segs *out);
void httputil_segs_free(struct httputil_segs *s);

/* Accept negotiation for a JSON-only server: true when the header is
 * absent/empty or has a clause for application/json, application/(any) or
 * (any)/(any)
 * (q > 0) that asks for no transformation (clauses with as=, g= or v=
 * parameters are skipped, as Go does on endpoints without conversions).
 * false means 406. *pretty is set when the chosen clause has pretty=true
 * (may be NULL). */
bool httputil_accept_json(const char *accept, bool *pretty);

/* Go's pretty-print choice: a non-empty ?pretty= value decides
 * (strconv.ParseBool, invalid = false); otherwise a User-Agent starting
 * with "curl", "Wget" or "Mozilla/5.0". pretty_param NULL = absent. */
bool httputil_pretty(const char *pretty_param, const char *user_agent);

/* Go time.ParseDuration into nanoseconds. On error -1 and err holds Go's
 * text, e.g. `time: invalid duration "x"`, `time: missing unit in duration
 * "1"`, `time: unknown unit "d" in duration "1d"`. */
int httputil_parse_duration(const char *s, int64_t *ns,
                            char *err, size_t errlen);

/* The request deadline of k8s.io/apiserver: ?timeout= absent or empty ->
 * default_ms; unparsable -> -1 with the message `invalid timeout specified
 * in the request URL - <go error>` (400 BadRequest); a positive value below
 * the default wins, anything else is the default. */
int httputil_request_timeout(const char *timeout_param, int64_t default_ms,
                             int64_t *out_ms, char *err, size_t errlen);
#endif
