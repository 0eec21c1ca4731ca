/* httputil.c: see httputil.h. Decoding rules are those of Go's net/url
 * (PathUnescape for paths, QueryUnescape for form values); duration
 * parsing restates Go's time.ParseDuration including its overflow checks
 * and its own quoting of the input in error messages. */
#include "httputil.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
httputil_pct_decode(const char *in, size_t n, bool form, struct buf *out)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = (unsigned char)in[i];

        if (c == '%') {
            int hi, lo;

            if (i + 2 >= n)
                return -1;
            hi = hexval((unsigned char)in[i + 1]);
            lo = hexval((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi * 16 + lo);
            i += 3;
        } else {
            if (c == '+' && form)
                c = ' ';
            i++;
        }
        if (c == '\0')
            return -1;
        if (buf_addc(out, (char)c) < 0)
            return -1;
    }
    /* An empty result still needs a valid string for callers. */
    if (out->data == NULL && buf_add(out, "", 0) < 0)
        return -1;
    return 0;
}

int
httputil_split_path(const char *path, struct httputil_segs *out)
{
    char *p;

    memset(out, 0, sizeof *out);
    out->mem = strdup(path);
    if (out->mem == NULL)
        return -1;
    p = out->mem;
    while (*p != '\0') {
        char *start;

        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        start = p;
        while (*p != '\0' && *p != '/')
            p++;
        if (out->n == HTTPUTIL_MAX_SEGS) {
            httputil_segs_free(out);
            return -1;
        }
        out->seg[out->n++] = start;
        if (*p == '/')
            *p++ = '\0';
    }
    return 0;
}

void
httputil_segs_free(struct httputil_segs *s)
{
    if (s == NULL)
        return;
    free(s->mem);
    memset(s, 0, sizeof *s);
}

/* Trims ASCII blanks of [*b, *e). */
static void
trim(const char **b, const char **e)
{
    while (*b < *e && (**b == ' ' || **b == '\t'))
        (*b)++;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

static bool
span_eq(const char *b, const char *e, const char *s)
{
    size_t n = strlen(s);

    return (size_t)(e - b) == n && strncasecmp(b, s, n) == 0;
}

/* One Accept clause [b, e): media type then ;-parameters. */
static bool
clause_ok(const char *b, const char *e, bool *pretty)
{
    const char *semi = memchr(b, ';', (size_t)(e - b));
    const char *te = semi ? semi : e;
    const char *tb = b;
    bool transform = false, q_zero = false, pp = false;

    trim(&tb, &te);
    if (!span_eq(tb, te, "application/json") &&
        !span_eq(tb, te, "application/*") && !span_eq(tb, te, "*/*"))
        return false;
    while (semi != NULL) {
        const char *pb = semi + 1, *pe, *eq;

        semi = memchr(pb, ';', (size_t)(e - pb));
        pe = semi ? semi : e;
        eq = memchr(pb, '=', (size_t)(pe - pb));
        if (eq == NULL)
            continue;
        {
            const char *kb = pb, *ke = eq, *vb = eq + 1, *ve = pe;

            trim(&kb, &ke);
            trim(&vb, &ve);
            if (span_eq(kb, ke, "as") || span_eq(kb, ke, "g") ||
                span_eq(kb, ke, "v"))
                transform = true;
            else if (span_eq(kb, ke, "q")) {
                char num[16];
                size_t n = (size_t)(ve - vb);

                if (n < sizeof num) {
                    memcpy(num, vb, n);
                    num[n] = '\0';
                    if (strtod(num, NULL) <= 0.0)
                        q_zero = true;
                }
            } else if (span_eq(kb, ke, "pretty")) {
                pp = span_eq(vb, ve, "true") || span_eq(vb, ve, "1");
            }
        }
    }
    if (transform || q_zero)
        return false;
    if (pretty != NULL)
        *pretty = pp;
    return true;
}

bool
httputil_accept_json(const char *accept, bool *pretty)
{
    const char *p = accept, *end;
    bool blank = true;

    if (pretty != NULL)
        *pretty = false;
    if (accept == NULL)
        return true;
    end = accept + strlen(accept);
    for (const char *q = accept; q < end; q++)
        if (!isspace((unsigned char)*q))
            blank = false;
    if (blank)
        return true;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *ce = comma ? comma : end;

        if (clause_ok(p, ce, pretty))
            return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

/* Go strconv.ParseBool; *ok false for anything else. */
static bool
parse_bool(const char *s, bool *ok)
{
    static const char *const t[] = { "1", "t", "T", "TRUE", "true", "True" };
    static const char *const f[] = { "0", "f", "F", "FALSE", "false",
                                     "False" };

    *ok = true;
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(s, t[i]) == 0)
            return true;
        if (strcmp(s, f[i]) == 0)
            return false;
    }
    *ok = false;
    return false;
}

bool
httputil_pretty(const char *pretty_param, const char *user_agent)
{
    if (pretty_param != NULL && pretty_param[0] != '\0') {
        bool ok;

        return parse_bool(pretty_param, &ok);   /* invalid -> false */
    }
    if (user_agent == NULL)
        return false;
    return strncmp(user_agent, "curl", 4) == 0 ||
           strncmp(user_agent, "Wget", 4) == 0 ||
           strncmp(user_agent, "Mozilla/5.0", 11) == 0;
}

/* Go time's own quote(): '"'-wrapped, '"' and '\' escaped, bytes outside
 * printable ASCII as \xNN. */
static void
go_time_quote(struct buf *b, const char *s)
{
    buf_addc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x80 || *p < ' ') {
            buf_addf(b, "\\x%02x", *p);
        } else {
            if (*p == '"' || *p == '\\')
                buf_addc(b, '\\');
            buf_addc(b, (char)*p);
        }
    }
    buf_addc(b, '"');
}

static int
dur_error(char *err, size_t errlen, const char *what, const char *unit,
          const char *orig)
{
    struct buf b;

    buf_init(&b, 4096);
    buf_adds(&b, "time: ");
    buf_adds(&b, what);
    if (unit != NULL) {
        go_time_quote(&b, unit);
        buf_adds(&b, " in duration ");
    }
    go_time_quote(&b, orig);
    snprintf(err, errlen, "%s", b.data ? b.data : "time: invalid duration");
    buf_free(&b);
    return -1;
}

int
httputil_parse_duration(const char *orig, int64_t *ns, char *err,
                        size_t errlen)
{
    static const struct { const char *name; uint64_t mult; } units[] = {
        { "ns", 1ULL }, { "us", 1000ULL }, { "\xc2\xb5s", 1000ULL },
        { "\xce\xbcs", 1000ULL }, { "ms", 1000000ULL },
        { "s", 1000000000ULL }, { "m", 60000000000ULL },
        { "h", 3600000000000ULL },
    };
    const uint64_t lim = 1ULL << 63;
    const char *s = orig;
    uint64_t d = 0;
    bool neg = false;

    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (strcmp(s, "0") == 0) {
        *ns = 0;
        return 0;
    }
    if (*s == '\0')
        return dur_error(err, errlen, "invalid duration ", NULL, orig);
    while (*s != '\0') {
        uint64_t v = 0, f = 0, unit = 0;
        double scale = 1;
        bool pre = false, post = false;
        size_t ul;
        char u[16];

        if (!(*s == '.' || (*s >= '0' && *s <= '9')))
            return dur_error(err, errlen, "invalid duration ", NULL, orig);
        while (*s >= '0' && *s <= '9') {     /* leadingInt */
            if (v > lim / 10)
                return dur_error(err, errlen, "invalid duration ", NULL,
                                 orig);
            v = v * 10 + (uint64_t)(*s - '0');
            if (v > lim)
                return dur_error(err, errlen, "invalid duration ", NULL,
                                 orig);
            s++;
            pre = true;
        }
        if (*s == '.') {                      /* leadingFraction */
            bool overflow = false;

            s++;
            while (*s >= '0' && *s <= '9') {
                post = true;
                if (!overflow) {
                    if (f > (lim - 1) / 10) {
                        overflow = true;
                    } else {
                        uint64_t y = f * 10 + (uint64_t)(*s - '0');

                        if (y > lim) {
                            overflow = true;
                        } else {
                            f = y;
                            scale *= 10;
                        }
                    }
                }
                s++;
            }
        }
        if (!pre && !post)
            return dur_error(err, errlen, "invalid duration ", NULL, orig);
        ul = 0;
        while (s[ul] != '\0' && s[ul] != '.' && !(s[ul] >= '0' && s[ul] <= '9'))
            ul++;
        if (ul == 0)
            return dur_error(err, errlen, "missing unit in duration ", NULL,
                             orig);
        if (ul < sizeof u) {
            memcpy(u, s, ul);
            u[ul] = '\0';
            for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
                if (strcmp(u, units[i].name) == 0)
                    unit = units[i].mult;
        }
        if (unit == 0) {
            char *name = strndup(s, ul);
            int rc;

            if (name == NULL)
                return dur_error(err, errlen, "invalid duration ", NULL,
                                 orig);
            rc = dur_error(err, errlen, "unknown unit ", name, orig);
            free(name);
            return rc;
        }
        s += ul;
        if (v > lim / unit)
            return dur_error(err, errlen, "invalid duration ", NULL, orig);
        v *= unit;
        if (f > 0) {
            v += (uint64_t)((double)f * ((double)unit / scale));
            if (v > lim)
                return dur_error(err, errlen, "invalid duration ", NULL,
                                 orig);
        }
        d += v;
        if (d > lim)
            return dur_error(err, errlen, "invalid duration ", NULL, orig);
    }
    if (neg) {
        *ns = d == lim ? INT64_MIN : -(int64_t)d;
        return 0;
    }
    if (d > lim - 1)
        return dur_error(err, errlen, "invalid duration ", NULL, orig);
    *ns = (int64_t)d;
    return 0;
}

int
httputil_request_timeout(const char *param, int64_t default_ms,
                         int64_t *out_ms, char *err, size_t errlen)
{
    int64_t ns;
    char perr[512];

    *out_ms = default_ms;
    if (param == NULL || param[0] == '\0')
        return 0;
    if (httputil_parse_duration(param, &ns, perr, sizeof perr) < 0) {
        snprintf(err, errlen,
                 "invalid timeout specified in the request URL - %s", perr);
        return -1;
    }
    /* Non-positive or longer than the server's default: the default. A
     * sub-millisecond positive timeout still counts (rounded up). */
    if (ns > 0 && ns / 1000000 < default_ms)
        *out_ms = ns / 1000000 + (ns % 1000000 ? 1 : 0);
    return 0;
}
