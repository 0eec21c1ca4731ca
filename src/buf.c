/* buf.c: bounded growable byte buffer, and whole-file reads into one
 * (see buf.h). Uses libc only. */
#include "buf.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void
buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void
buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Makes room for n more bytes plus the terminator; frees on failure. */
static int
grow(struct buf *b, size_t n)
{
    if (n > b->max || b->len > b->max - n) {
        buf_free(b);
        return -1;
    }
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        buf_free(b);
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int
buf_add(struct buf *b, const void *p, size_t n)
{
    /* buf_add_inline (buf.h) is the fast path for per-token writers */
    if (grow(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int
buf_add_i64(struct buf *b, long long v)
{
    char tmp[24], *e = tmp + sizeof tmp, *q = e;
    /* magnitude as unsigned: -LLONG_MIN does not fit a long long */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v
                                 : (unsigned long long)v;

    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--q = '-';
    return buf_add_inline(b, q, (size_t)(e - q));
}

int
buf_adds(struct buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

int
buf_addc(struct buf *b, char c)
{
    return buf_add(b, &c, 1);
}

int
buf_vaddf(struct buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0 || grow(b, (size_t)n) < 0)
        return -1;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int
buf_addf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = buf_vaddf(b, fmt, ap);
    va_end(ap);
    return r;
}

char *
buf_take(struct buf *b, size_t *len)
{
    char *p = b->data;
    if (!p)
        p = calloc(1, 1);
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void
buf_go_strerror(char *out, size_t outlen, int e)
{
    snprintf(out, outlen, "%s", strerror(e));
    if (out[0] >= 'A' && out[0] <= 'Z')
        out[0] = (char)(out[0] + ('a' - 'A'));
}

char *
buf_read_file(const char *path, size_t max, size_t *len, char *err,
              size_t errlen)
{
    char why[128], chunk[65536];
    struct buf b;
    size_t n;
    char *out = NULL;
    FILE *f = fopen(path, "rb");

    if (!f) {
        buf_go_strerror(why, sizeof why, errno);
        snprintf(err, errlen, "open %s: %s", path, why);
        return NULL;
    }
    buf_init(&b, max);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (buf_add(&b, chunk, n) < 0) {
            snprintf(err, errlen, "read %s: file too large", path);
            goto done;
        }
    }
    if (ferror(f)) {
        buf_go_strerror(why, sizeof why, errno);
        snprintf(err, errlen, "read %s: %s", path, why);
        goto done;
    }
    out = buf_take(&b, len);
    if (!out)
        snprintf(err, errlen, "read %s: out of memory", path);
done:
    fclose(f);
    buf_free(&b);
    return out;
}
