/* buf.h: a bounded, growable byte buffer (the idea of curl's dynbuf).
 * Provides: buf_init/add/add_inline/add_i64/addf/addc/take/reset/free.
 * Uses only libc.
 * A buffer never grows past the limit given to buf_init; an append that
 * would, or an allocation failure, frees the contents and returns -1, so a
 * caller that hits an error has nothing left to clean up but the struct.
 * The bytes are always NUL-terminated (not counted in len). */
#ifndef ADAPTER_BUF_H
#define ADAPTER_BUF_H
#include <stddef.h>
#include <stdarg.h>
#include <string.h>

struct buf {
    char *data;   /* owned; NULL while empty */
    size_t len;
    size_t cap;
    size_t max;   /* hard limit on len */
};

void buf_init(struct buf *b, size_t max);
int buf_add(struct buf *b, const void *p, size_t n);
/* buf_add, with the common case (room left, limit respected) inlined: for
 * writers that append a few bytes per token (jsonw.c), where the call
 * itself was most of the cost. Needs <string.h>. */
static inline int
buf_add_inline(struct buf *b, const void *p, size_t n)
{
    if (b->data && n < b->cap - b->len && b->len + n <= b->max) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
    }
    return buf_add(b, p, n);
}
int buf_adds(struct buf *b, const char *s);
/* Appends a signed 64-bit integer in decimal, without printf (answers
 * format tens of thousands of them; vfprintf was ~4% of a large one). */
int buf_add_i64(struct buf *b, long long v);
int buf_addc(struct buf *b, char c);
int buf_addf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int buf_vaddf(struct buf *b, const char *fmt, va_list ap);
/* Hands the bytes to the caller (who frees them) and empties the buffer.
 * Returns a valid empty string (malloc'd) for an empty buffer; NULL only on
 * allocation failure. */
char *buf_take(struct buf *b, size_t *len);
void buf_reset(struct buf *b);  /* len = 0, keeps the allocation */
/* Reads a whole file of at most max bytes into a malloc'd, NUL-terminated
 * string (caller frees; *len gets its length when len is non-NULL). NULL
 * on failure, with Go's wording in err, since these texts reach PA-style
 * messages: "open <path>: no such file or directory", "read <path>: file
 * too large". */
char *buf_read_file(const char *path, size_t max, size_t *len, char *err,
                    size_t errlen);
/* strerror(e) as Go prints syscall errors: the C library's text with a
 * lower-case first letter ("no such file or directory"). */
void buf_go_strerror(char *out, size_t outlen, int e);
void buf_free(struct buf *b);   /* frees contents; the struct stays usable */
#endif
