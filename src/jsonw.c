/* jsonw.c: Go-style JSON generation on top of yajl_gen (see jsonw.h).
 * yajl builds compact text into an internal bounded buf; jsonw_finish then
 * makes one pass over that text which (a) applies the escapes Go adds on
 * top of yajl's (HTML-safe characters, U+2028/2029, lower-case hex) -- these
 * bytes can only occur inside strings, so the pass tracks string state --
 * and (b) re-indents for pretty output exactly as Go's json.Indent (empty
 * {} and [] stay on one line). Must never hand invalid UTF-8 to yajl:
 * strings are sanitised first, so yajl never rejects a string. */
#include "jsonw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#define JSONW_DEFAULT_MAX ((size_t)64 << 20)

struct jsonw {
    yajl_gen g;
    struct buf text;      /* compact output of yajl */
    int failed;           /* sticky: 0 ok, else a yajl_gen_status or -1 */
    size_t max;
};

/* yajl print callback: appends to the bounded buffer; on overflow the buf
 * frees itself and we remember the failure (yajl has no way to stop). */
static void
print_cb(void *ctx, const char *s, size_t len)
{
    struct jsonw *w = ctx;

    if (w->failed)
        return;
    if (buf_add(&w->text, s, len) < 0)
        w->failed = -1;
}

static int
gen_new(struct jsonw *w)
{
    w->g = yajl_gen_alloc(NULL);
    if (w->g == NULL)
        return -1;
    /* No beautify, no UTF-8 validation (we sanitise), '/' not escaped
     * (Go leaves it alone). */
    if (!yajl_gen_config(w->g, yajl_gen_print_callback, print_cb, w)) {
        yajl_gen_free(w->g);
        w->g = NULL;
        return -1;
    }
    return 0;
}

struct jsonw *
jsonw_new(size_t max_bytes)
{
    struct jsonw *w = calloc(1, sizeof *w);

    if (w == NULL)
        return NULL;
    w->max = max_bytes ? max_bytes : JSONW_DEFAULT_MAX;
    buf_init(&w->text, w->max);
    if (gen_new(w) < 0) {
        free(w);
        return NULL;
    }
    return w;
}

void
jsonw_free(struct jsonw *w)
{
    if (w == NULL)
        return;
    if (w->g != NULL)
        yajl_gen_free(w->g);
    buf_free(&w->text);
    free(w);
}

static int
check(struct jsonw *w, yajl_gen_status st)
{
    if (w->failed)
        return -1;
    if (st != yajl_gen_status_ok) {
        w->failed = (int)st;
        return -1;
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0 when the
 * byte at p does not start one (RFC 3629: no overlongs, no surrogates, no
 * code points above U+10FFFF -- the same set Go's utf8 package accepts). */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need, i;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 4;
    else
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (n < need || p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < need; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return need;
}

/* Writes s as a yajl string (key or value), replacing every byte that is
 * not part of valid UTF-8 by U+FFFD first. */
static int
put_string(struct jsonw *w, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    struct buf clean;
    size_t i = 0, k;
    int rc;

    if (w->failed)
        return -1;
    while (i < len && (k = utf8_len(p + i, len - i)) != 0)
        i += k;
    if (i == len)
        return check(w, yajl_gen_string(w->g, p, len));
    buf_init(&clean, len * 3 + 1);
    if (buf_add(&clean, s, i) < 0)
        goto fail;
    while (i < len) {
        k = utf8_len(p + i, len - i);
        if (k == 0) {
            if (buf_add(&clean, "\xEF\xBF\xBD", 3) < 0)
                goto fail;
            i++;
        } else {
            if (buf_add(&clean, p + i, k) < 0)
                goto fail;
            i += k;
        }
    }
    rc = check(w, yajl_gen_string(w->g, (const unsigned char *)clean.data,
                                  clean.len));
    buf_free(&clean);
    return rc;
fail:
    buf_free(&clean);
    w->failed = -1;
    return -1;
}

int
jsonw_map_open(struct jsonw *w)
{
    return w->failed ? -1 : check(w, yajl_gen_map_open(w->g));
}

int
jsonw_map_close(struct jsonw *w)
{
    return w->failed ? -1 : check(w, yajl_gen_map_close(w->g));
}

int
jsonw_array_open(struct jsonw *w)
{
    return w->failed ? -1 : check(w, yajl_gen_array_open(w->g));
}

int
jsonw_array_close(struct jsonw *w)
{
    return w->failed ? -1 : check(w, yajl_gen_array_close(w->g));
}

int
jsonw_keyn(struct jsonw *w, const char *key, size_t len)
{
    return put_string(w, key, len);
}

int
jsonw_key(struct jsonw *w, const char *key)
{
    return put_string(w, key, strlen(key));
}

int
jsonw_stringn(struct jsonw *w, const char *s, size_t len)
{
    return put_string(w, s, len);
}

int
jsonw_string(struct jsonw *w, const char *s)
{
    if (s == NULL)
        return jsonw_null(w);
    return put_string(w, s, strlen(s));
}

int
jsonw_int(struct jsonw *w, long long v)
{
    return w->failed ? -1 : check(w, yajl_gen_integer(w->g, v));
}

int
jsonw_bool(struct jsonw *w, bool v)
{
    return w->failed ? -1 : check(w, yajl_gen_bool(w->g, v ? 1 : 0));
}

int
jsonw_null(struct jsonw *w)
{
    return w->failed ? -1 : check(w, yajl_gen_null(w->g));
}

int
jsonw_raw(struct jsonw *w, const char *json, size_t len)
{
    /* yajl_gen_number emits its bytes verbatim, with the separators and
     * state handling of a value: exactly what splicing needs. */
    if (w->failed)
        return -1;
    if (len == 0) {
        w->failed = -1;
        return -1;
    }
    return check(w, yajl_gen_number(w->g, json, len));
}

int
jsonw_kv_string(struct jsonw *w, const char *key, const char *s)
{
    if (jsonw_key(w, key) < 0)
        return -1;
    return jsonw_string(w, s);
}

int
jsonw_kv_int(struct jsonw *w, const char *key, long long v)
{
    if (jsonw_key(w, key) < 0)
        return -1;
    return jsonw_int(w, v);
}

int
jsonw_kv_bool(struct jsonw *w, const char *key, bool v)
{
    if (jsonw_key(w, key) < 0)
        return -1;
    return jsonw_bool(w, v);
}

static int
newline_indent(struct buf *out, int depth)
{
    if (buf_addc(out, '\n') < 0)
        return -1;
    for (int i = 0; i < depth; i++)
        if (buf_add(out, "  ", 2) < 0)
            return -1;
    return 0;
}

/* The single post-pass described at the top of the file. src is valid
 * compact-or-spaced JSON produced by yajl plus raw splices. */
/* Bytes that transform() must look at one by one: inside strings, the
 * ones it rewrites or that end the string; outside, whitespace (dropped),
 * quotes, and in pretty mode the structural characters. */
static const unsigned char str_special[256] = {
    ['\\'] = 1, ['"'] = 1, ['<'] = 1, ['>'] = 1, ['&'] = 1, [0xE2] = 1,
};
static const unsigned char compact_special[256] = {
    ['"'] = 1, [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1,
};
static const unsigned char pretty_special[256] = {
    ['"'] = 1, [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1,
    ['{'] = 1, ['['] = 1, ['}'] = 1, [']'] = 1, [','] = 1, [':'] = 1,
};

static int
transform(const char *src, size_t n, struct buf *out, bool pretty)
{
    size_t i = 0;
    int depth = 0;
    bool in_str = false, need_indent = false;

    while (i < n) {
        /* Copy the longest run of bytes that pass through unchanged in one
         * call: responses are mostly such runs (names, label values,
         * quantities), and a call per byte dominated large answers. */
        if (in_str || !(pretty && need_indent)) {
            const unsigned char *special = in_str ? str_special
                                         : pretty ? pretty_special
                                                  : compact_special;
            size_t j = i;
            while (j < n && !special[(unsigned char)src[j]])
                j++;
            if (j > i) {
                if (buf_add(out, src + i, j - i) < 0)
                    return -1;
                i = j;
                continue;
            }
        }
        unsigned char c = (unsigned char)src[i];

        if (in_str) {
            if (c == '\\') {
                /* yajl writes \u00XX with upper-case hex; Go lower-case. */
                if (i + 5 < n && src[i + 1] == 'u') {
                    char e[6];

                    memcpy(e, src + i, 6);
                    for (int k = 2; k < 6; k++)
                        if (e[k] >= 'A' && e[k] <= 'F')
                            e[k] = (char)(e[k] - 'A' + 'a');
                    if (buf_add(out, e, 6) < 0)
                        return -1;
                    i += 6;
                    continue;
                }
                if (i + 1 >= n || buf_add(out, src + i, 2) < 0)
                    return -1;
                i += 2;
                continue;
            }
            if (c == '"') {
                in_str = false;
            } else if (c == '<' || c == '>' || c == '&') {
                if (buf_addf(out, "\\u00%02x", c) < 0)
                    return -1;
                i++;
                continue;
            } else if (c == 0xE2 && i + 2 < n &&
                       (unsigned char)src[i + 1] == 0x80 &&
                       ((unsigned char)src[i + 2] == 0xA8 ||
                        (unsigned char)src[i + 2] == 0xA9)) {
                if (buf_adds(out, (unsigned char)src[i + 2] == 0xA8
                                  ? "\\u2028" : "\\u2029") < 0)
                    return -1;
                i += 3;
                continue;
            }
            if (buf_addc(out, (char)c) < 0)
                return -1;
            i++;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            i++;
            continue;
        }
        if (pretty && need_indent && c != ']' && c != '}') {
            need_indent = false;
            if (newline_indent(out, depth) < 0)
                return -1;
        }
        switch (c) {
        case '"':
            in_str = true;
            break;
        case '{':
        case '[':
            if (pretty) {
                need_indent = true;
                depth++;
            }
            break;
        case '}':
        case ']':
            if (pretty) {
                depth--;
                if (need_indent)
                    need_indent = false;   /* empty: "{}" / "[]" */
                else if (newline_indent(out, depth) < 0)
                    return -1;
            }
            break;
        case ',':
            if (pretty) {
                if (buf_addc(out, ',') < 0 || newline_indent(out, depth) < 0)
                    return -1;
                i++;
                continue;
            }
            break;
        case ':':
            if (pretty) {
                if (buf_add(out, ": ", 2) < 0)
                    return -1;
                i++;
                continue;
            }
            break;
        default:
            break;
        }
        if (buf_addc(out, (char)c) < 0)
            return -1;
        i++;
    }
    return in_str ? -1 : 0;
}

int
jsonw_finish(struct jsonw *w, struct buf *out, bool pretty,
             char *err, size_t errlen)
{
    int rc = -1;
    if (w->failed) {
        snprintf(err, errlen, "json: %s", w->failed == -1
                 ? "output too large or out of memory"
                 : "invalid document structure");
        goto done;
    }
    /* Only a complete document may be finished. yajl answers a close at
     * depth 0 with generation_complete (the generator is discarded below,
     * so the probe's side effect does not matter). */
    if (w->text.len == 0) {
        snprintf(err, errlen, "json: empty document");
        goto done;
    }
    if (yajl_gen_map_close(w->g) != yajl_gen_generation_complete) {
        snprintf(err, errlen, "json: incomplete document");
        goto done;
    }
    if (transform(w->text.data, w->text.len, out, pretty) < 0 ||
        (!pretty && buf_addc(out, '\n') < 0)) {
        snprintf(err, errlen, "json: output too large or malformed");
        goto done;
    }
    rc = 0;
done:
    /* Leave the writer reusable: fresh generator, empty text. */
    yajl_gen_free(w->g);
    w->g = NULL;
    buf_free(&w->text);
    buf_init(&w->text, w->max);
    w->failed = 0;
    if (gen_new(w) < 0)
        w->failed = -1;
    return rc;
}
