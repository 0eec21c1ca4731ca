/* jsonw.c: Go-style JSON generation (see jsonw.h). Uses buf.h and
 * goquote.h (Go's UTF-8 decoding).
 *
 * Why not yajl's generator (yajl still parses everything we read): the
 * answers must be byte-for-byte what Go's encoding/json writes, and yajl's
 * string escaping is not Go's (no HTML-safe '<' '>' '&', no U+2028/2029,
 * upper-case \u00XX hex, raw bytes where Go writes \ufffd). With yajl the
 * whole document had to be rewritten in a second pass; for a 3 MB
 * `kubectl top pods -A` answer that pass and yajl's per-token callbacks
 * were about a quarter of the request's instructions (bench/README.md,
 * "metrics.k8s.io"). Writing Go's form directly takes one pass and no
 * copy: the compact text is built in w->text and handed to the caller's
 * buffer as is.
 *
 * Structure is checked as yajl did (keys only in maps, a value after each
 * key, balanced closes, one top-level value), with a fixed depth limit;
 * our documents are a few levels deep. Pretty output (?pretty=true and
 * discovery documents) is produced at finish by an indent pass over the
 * compact text, exactly as Go's json.Indent. */
#include "jsonw.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "goquote.h"

#define JSONW_DEFAULT_MAX ((size_t)64 << 20)
#define JSONW_MAX_DEPTH 64

enum { ERR_NONE = 0, ERR_SPACE = -1, ERR_STRUCTURE = -2 };
enum { LV_MAP = 1, LV_ARRAY = 2 };

struct jsonw {
    struct buf text;      /* the compact document so far; owned */
    int failed;           /* sticky: ERR_* */
    size_t max;
    int depth;
    bool done;            /* the top-level value is complete */
    struct {
        unsigned char kind;   /* LV_MAP or LV_ARRAY */
        unsigned char any;    /* a member was written: next needs ',' */
        unsigned char key;    /* map: a key was written, value pending */
    } lv[JSONW_MAX_DEPTH];
};

struct jsonw *
jsonw_new(size_t max_bytes)
{
    struct jsonw *w = calloc(1, sizeof *w);

    if (w == NULL)
        return NULL;
    w->max = max_bytes ? max_bytes : JSONW_DEFAULT_MAX;
    buf_init(&w->text, w->max);
    return w;
}

void
jsonw_free(struct jsonw *w)
{
    if (w == NULL)
        return;
    buf_free(&w->text);
    free(w);
}

static int
fail(struct jsonw *w, int code)
{
    if (w->failed == ERR_NONE)
        w->failed = code;
    return -1;
}

static inline int
put(struct jsonw *w, const void *p, size_t n)
{
    if (buf_add_inline(&w->text, p, n) < 0)
        return fail(w, ERR_SPACE);
    return 0;
}

static inline int
putc1(struct jsonw *w, char c)
{
    return put(w, &c, 1);
}

/* Before any value: checks it may stand here and writes the separator. */
static int
begin_value(struct jsonw *w)
{
    if (w->failed)
        return -1;
    if (w->depth == 0)
        return w->done ? fail(w, ERR_STRUCTURE) : 0;
    if (w->lv[w->depth - 1].kind == LV_MAP) {
        if (!w->lv[w->depth - 1].key)
            return fail(w, ERR_STRUCTURE);     /* value without a key */
        w->lv[w->depth - 1].key = 0;           /* ':' went with the key */
        return 0;
    }
    if (w->lv[w->depth - 1].any)
        return putc1(w, ',');
    w->lv[w->depth - 1].any = 1;
    return 0;
}

/* After a scalar or a close: a complete top-level value ends the doc. */
static int
end_value(struct jsonw *w)
{
    if (w->depth == 0)
        w->done = true;
    return w->failed ? -1 : 0;
}

/* Bytes a string cannot copy verbatim: controls, '"', '\\', Go's
 * HTML-safe three, and every non-ASCII byte (validated, and U+2028/2029
 * escaped). Everything else is copied in runs. */
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
static const unsigned char str_special[256] = {
    R16(1), R16(1),                                     /* 0x00-0x1F */
    0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,     /* '"' '&' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0,     /* '<' '>' */
    R16(0),                                             /* 0x40-0x4F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,     /* '\\' */
    R16(0), R16(0),                                     /* 0x60-0x7F */
    R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1),
};
#undef R16

/* The escape of one special byte sequence at p (n bytes left) into e;
 * returns the bytes consumed and sets *elen. */
static size_t
escape_one(const unsigned char *p, size_t n, char e[8], size_t *elen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char c = p[0];
    size_t k;

    switch (c) {
    case '"':  memcpy(e, "\\\"", 2); *elen = 2; return 1;
    case '\\': memcpy(e, "\\\\", 2); *elen = 2; return 1;
    case '\b': memcpy(e, "\\b", 2); *elen = 2; return 1;
    case '\f': memcpy(e, "\\f", 2); *elen = 2; return 1;
    case '\n': memcpy(e, "\\n", 2); *elen = 2; return 1;
    case '\r': memcpy(e, "\\r", 2); *elen = 2; return 1;
    case '\t': memcpy(e, "\\t", 2); *elen = 2; return 1;
    default: break;
    }
    if (c < 0x80) {     /* other controls and < > & */
        memcpy(e, "\\u00", 4);
        e[4] = hex[c >> 4];
        e[5] = hex[c & 15];
        *elen = 6;
        return 1;
    }
    uint32_t r;

    k = goquote_utf8_decode(p, n, &r);  /* Go's utf8.DecodeRune */
    if (k == 1) {       /* invalid: Go writes one \ufffd per byte */
        memcpy(e, "\\ufffd", 6);
        *elen = 6;
        return 1;
    }
    if (k == 3 && c == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) {
        memcpy(e, p[2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
        *elen = 6;
        return 3;
    }
    memcpy(e, p, k);    /* valid multi-byte: verbatim */
    *elen = k;
    return k;
}

/* Writes s as a quoted JSON string in Go's form. */
static int
put_string(struct jsonw *w, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, j;

    if (putc1(w, '"') < 0)
        return -1;
    while (i < len) {
        j = i;
        while (j < len && !str_special[p[j]])
            j++;
        if (j > i && put(w, p + i, j - i) < 0)
            return -1;
        if (j == len)
            break;
        char e[8];
        size_t elen;

        i = j + escape_one(p + j, len - j, e, &elen);
        if (put(w, e, elen) < 0)
            return -1;
    }
    return putc1(w, '"');
}

static int
open_level(struct jsonw *w, int kind, char c)
{
    if (begin_value(w) < 0)
        return -1;
    if (w->depth == JSONW_MAX_DEPTH)
        return fail(w, ERR_STRUCTURE);
    w->lv[w->depth].kind = kind;
    w->lv[w->depth].any = 0;
    w->lv[w->depth].key = 0;
    w->depth++;
    return putc1(w, c);
}

int
jsonw_map_open(struct jsonw *w)
{
    return open_level(w, LV_MAP, '{');
}

int
jsonw_array_open(struct jsonw *w)
{
    return open_level(w, LV_ARRAY, '[');
}

static int
close_level(struct jsonw *w, int kind, char c)
{
    if (w->failed)
        return -1;
    if (w->depth == 0 || w->lv[w->depth - 1].kind != kind ||
        w->lv[w->depth - 1].key)
        return fail(w, ERR_STRUCTURE);
    w->depth--;
    if (putc1(w, c) < 0)
        return -1;
    return end_value(w);
}

int
jsonw_map_close(struct jsonw *w)
{
    return close_level(w, LV_MAP, '}');
}

int
jsonw_array_close(struct jsonw *w)
{
    return close_level(w, LV_ARRAY, ']');
}

int
jsonw_keyn(struct jsonw *w, const char *key, size_t len)
{
    if (w->failed)
        return -1;
    if (w->depth == 0 || w->lv[w->depth - 1].kind != LV_MAP ||
        w->lv[w->depth - 1].key)
        return fail(w, ERR_STRUCTURE);
    if (w->lv[w->depth - 1].any && putc1(w, ',') < 0)
        return -1;
    w->lv[w->depth - 1].any = 1;
    w->lv[w->depth - 1].key = 1;
    if (put_string(w, key, len) < 0)
        return -1;
    return putc1(w, ':');
}

int
jsonw_key(struct jsonw *w, const char *key)
{
    return jsonw_keyn(w, key, strlen(key));
}

int
jsonw_stringn(struct jsonw *w, const char *s, size_t len)
{
    if (begin_value(w) < 0 || put_string(w, s, len) < 0)
        return -1;
    return end_value(w);
}

int
jsonw_string(struct jsonw *w, const char *s)
{
    if (s == NULL)
        return jsonw_null(w);
    return jsonw_stringn(w, s, strlen(s));
}

int
jsonw_int(struct jsonw *w, long long v)
{
    if (begin_value(w) < 0)
        return -1;
    if (buf_add_i64(&w->text, v) < 0)
        return fail(w, ERR_SPACE);
    return end_value(w);
}

int
jsonw_bool(struct jsonw *w, bool v)
{
    if (begin_value(w) < 0 || put(w, v ? "true" : "false", v ? 4 : 5) < 0)
        return -1;
    return end_value(w);
}

int
jsonw_null(struct jsonw *w)
{
    if (begin_value(w) < 0 || put(w, "null", 4) < 0)
        return -1;
    return end_value(w);
}

/* Splices pre-encoded JSON as Go's json.Compact with HTML escaping does
 * for a RawMessage: whitespace outside strings dropped, '<' '>' '&' and
 * U+2028/2029 inside strings escaped; \u escapes get lower-case hex. */
int
jsonw_raw(struct jsonw *w, const char *json, size_t len)
{
    const unsigned char *p = (const unsigned char *)json;
    bool in_str = false;
    size_t i = 0;

    if (begin_value(w) < 0)
        return -1;
    if (len == 0)
        return fail(w, ERR_STRUCTURE);
    while (i < len) {
        unsigned char c = p[i];

        if (!in_str) {
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                i++;
                continue;
            }
            if (c == '"')
                in_str = true;
            if (putc1(w, (char)c) < 0)
                return -1;
            i++;
            continue;
        }
        if (c == '\\') {
            if (i + 1 >= len)
                return fail(w, ERR_STRUCTURE);
            if (p[i + 1] == 'u' && i + 5 < len) {
                char e[6];

                memcpy(e, p + i, 6);
                for (int k = 2; k < 6; k++)
                    if (e[k] >= 'A' && e[k] <= 'F')
                        e[k] = (char)(e[k] - 'A' + 'a');
                if (put(w, e, 6) < 0)
                    return -1;
                i += 6;
                continue;
            }
            if (put(w, p + i, 2) < 0)
                return -1;
            i += 2;
            continue;
        }
        if (c == '"')
            in_str = false;
        if (c == '<' || c == '>' || c == '&' ||
            (c == 0xE2 && i + 2 < len && p[i + 1] == 0x80 &&
             (p[i + 2] == 0xA8 || p[i + 2] == 0xA9))) {
            char e[8];
            size_t elen;

            i += escape_one(p + i, len - i, e, &elen);
            if (put(w, e, elen) < 0)
                return -1;
            continue;
        }
        if (putc1(w, (char)c) < 0)
            return -1;
        i++;
    }
    if (in_str)
        return fail(w, ERR_STRUCTURE);
    return end_value(w);
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

/* Go's json.Indent(prefix "", indent "  ") over our compact text, which
 * has no whitespace outside strings. Strings are copied in runs. */
static int
indent(const char *src, size_t n, struct buf *out)
{
    size_t i = 0;
    int depth = 0;

    while (i < n) {
        char c = src[i];

        if (c == '"') {
            size_t j = i + 1;

            while (j < n && src[j] != '"') {
                if (src[j] == '\\')
                    j++;
                j++;
            }
            if (j >= n)
                return -1;
            if (buf_add(out, src + i, j + 1 - i) < 0)
                return -1;
            i = j + 1;
            continue;
        }
        switch (c) {
        case '{':
        case '[':
            if (buf_addc(out, c) < 0)
                return -1;
            if (i + 1 < n && (src[i + 1] == '}' || src[i + 1] == ']')) {
                if (buf_addc(out, src[i + 1]) < 0)      /* "{}" / "[]" */
                    return -1;
                i += 2;
                continue;
            }
            if (newline_indent(out, ++depth) < 0)
                return -1;
            break;
        case '}':
        case ']':
            if (newline_indent(out, --depth) < 0 || buf_addc(out, c) < 0)
                return -1;
            break;
        case ',':
            if (buf_addc(out, ',') < 0 || newline_indent(out, depth) < 0)
                return -1;
            break;
        case ':':
            if (buf_add(out, ": ", 2) < 0)
                return -1;
            break;
        default:
            if (buf_addc(out, c) < 0)
                return -1;
            break;
        }
        i++;
    }
    return 0;
}

int
jsonw_finish(struct jsonw *w, struct buf *out, bool pretty,
             char *err, size_t errlen)
{
    int rc = -1;

    if (w->failed) {
        snprintf(err, errlen, "json: %s", w->failed == ERR_SPACE
                 ? "output too large or out of memory"
                 : "invalid document structure");
        goto done;
    }
    if (w->text.len == 0) {
        snprintf(err, errlen, "json: empty document");
        goto done;
    }
    if (!w->done || w->depth != 0) {
        snprintf(err, errlen, "json: incomplete document");
        goto done;
    }
    if (pretty) {
        if (indent(w->text.data, w->text.len, out) < 0) {
            snprintf(err, errlen, "json: output too large or malformed");
            goto done;
        }
    } else if (buf_addc(&w->text, '\n') < 0) {
        snprintf(err, errlen, "json: output too large or out of memory");
        goto done;
    } else if (out->len == 0 && w->text.len <= out->max) {
        /* Hand the text over instead of copying it (answers run to
         * megabytes); out's limit still holds. */
        free(out->data);
        out->data = w->text.data;
        out->len = w->text.len;
        out->cap = w->text.cap;
        buf_init(&w->text, w->max);
    } else if (buf_add(out, w->text.data, w->text.len) < 0) {
        snprintf(err, errlen, "json: output too large or out of memory");
        goto done;
    }
    rc = 0;
done:
    /* Leave the writer reusable and empty. */
    buf_free(&w->text);
    buf_init(&w->text, w->max);
    w->failed = ERR_NONE;
    w->depth = 0;
    w->done = false;
    return rc;
}
