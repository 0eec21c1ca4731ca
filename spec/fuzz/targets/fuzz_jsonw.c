/* fuzz_jsonw.c: libFuzzer target for the JSON answer writer (jsonw.c).
 * The input is a program of writer calls (maps, arrays, keys and strings
 * with arbitrary bytes, integers, bools, nulls, raw splices from a fixed
 * list) run twice, finished compact and pretty. Oracles: both finishes
 * agree on success; a finished document is one valid JSON value for
 * yajl's validating parser (so strings are valid UTF-8); it holds no
 * '<' '>' '&', no control byte and no U+2028/2029 (Go escapes them all);
 * the compact text ends in exactly one '\n'; the pretty text, without
 * the whitespace outside strings, is the compact text.
 * Uses: jsonw.h, buf.h, yajl (parser only). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "buf.h"
#include "jsonw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* valid JSON values, as callers splice them (custom.c: selectors) */
static const char *const raws[] = {
    "{}", "[]", "null", "1", "\"a<b>&c\"", " { \"k\" : [ 1 , 2 ] }\n",
    "{\"matchLabels\":{\"app\":\"web\"}}", "\"\\u00E9\\u00e9\\\"\"",
    "\"\xE2\x80\xA8 \xE2\x80\xA9\"", "[\"x\",{\"y\":\"\\\\\"}]",
};

static void
run(struct jsonw *w, const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t op = p[i++];
        size_t len;

        switch (op % 10) {
        case 0: jsonw_map_open(w); break;
        case 1: jsonw_map_close(w); break;
        case 2: jsonw_array_open(w); break;
        case 3: jsonw_array_close(w); break;
        case 4:
        case 5:
            len = i < n ? p[i++] % 64 : 0;
            if (len > n - i)
                len = n - i;
            if (op % 10 == 4)
                jsonw_keyn(w, (const char *)p + i, len);
            else
                jsonw_stringn(w, (const char *)p + i, len);
            i += len;
            break;
        case 6: {
            uint64_t u = 0;

            for (int k = 0; k < 8 && i < n; k++)
                u = u << 8 | p[i++];
            jsonw_int(w, (long long)u);
            break;
        }
        case 7: jsonw_bool(w, op & 16); break;
        case 8: jsonw_null(w); break;
        default: {
            const char *r = raws[(op / 10) % (sizeof raws / sizeof raws[0])];

            jsonw_raw(w, r, strlen(r));
            break;
        }
        }
    }
}

static int
yajl_valid(const char *s, size_t n)
{
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    int ok;

    if (h == NULL)
        abort();
    ok = yajl_parse(h, (const unsigned char *)s, n) == yajl_status_ok &&
         yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    return ok;
}

/* s without the whitespace outside strings */
static void
strip(const char *s, size_t n, struct buf *out)
{
    int in_str = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (in_str) {
            if (c == '\\' && i + 1 < n) {
                buf_add(out, s + i, 2);
                i++;
                continue;
            }
            if (c == '"')
                in_str = 0;
        } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
            continue;
        } else if (c == '"') {
            in_str = 1;
        }
        buf_addc(out, c);
    }
}

static void
check_escaped(const char *s, size_t n, int compact)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '<' || c == '>' || c == '&')
            abort();
        if (c < 0x20 && c != '\n')
            abort();
        if (c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
            ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9))
            abort();
    }
    if (compact && (n == 0 || s[n - 1] != '\n' || memchr(s, '\n', n - 1)))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jsonw *w = jsonw_new(1 << 20);
    struct buf compact, pretty, a;
    char err[256];
    int rc1, rc2;

    if (w == NULL)
        return 0;
    buf_init(&compact, 4 << 20);
    /* indenting multiplies deep documents: no limit that fuzzing could hit */
    buf_init(&pretty, (size_t)1 << 30);
    buf_init(&a, (size_t)1 << 30);
    run(w, data, size);
    rc1 = jsonw_finish(w, &compact, false, err, sizeof err);
    run(w, data, size);             /* the writer is reusable */
    rc2 = jsonw_finish(w, &pretty, true, err, sizeof err);
    if (rc1 != rc2)
        abort();
    if (rc1 == 0) {
        if (!yajl_valid(compact.data, compact.len) ||
            !yajl_valid(pretty.data, pretty.len))
            abort();
        check_escaped(compact.data, compact.len, 1);
        check_escaped(pretty.data, pretty.len, 0);
        strip(pretty.data, pretty.len, &a);
        if (a.len + 1 != compact.len || memcmp(a.data, compact.data, a.len) != 0)
            abort();
    }
    buf_free(&compact);
    buf_free(&pretty);
    buf_free(&a);
    jsonw_free(w);
    return 0;
}
