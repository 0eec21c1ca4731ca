/* fuzz_httputil.c: libFuzzer target for the request-text helpers the
 * router uses (httputil.c): percent and form decoding, path splitting,
 * Accept negotiation, ?pretty=, Go durations and ?timeout=.
 * Oracles: a decoded string never holds a NUL byte and is never longer
 * than its input; split segments are non-empty and hold no '/'.
 * Uses: httputil.h, buf.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "httputil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf d;
    struct httputil_segs segs;
    char *s, err[256];
    int64_t ns, ms;
    bool pretty = false;

    /* the C-string helpers get the input up to its first NUL, as MHD
     * would hand a header or query value over */
    if (!(s = malloc(size + 1)))
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    for (int form = 0; form < 2; form++) {
        buf_init(&d, 1 << 20);
        if (httputil_pct_decode((const char *)data, size, form, &d) == 0) {
            if (d.len > size || (d.len && memchr(d.data, '\0', d.len)))
                abort();
            if (!form && httputil_split_path(d.data ? d.data : "", &segs) == 0) {
                if (segs.n > HTTPUTIL_MAX_SEGS)
                    abort();
                for (size_t i = 0; i < segs.n; i++)
                    if (!segs.seg[i][0] || strchr(segs.seg[i], '/'))
                        abort();
                httputil_segs_free(&segs);
            }
        }
        buf_free(&d);
    }
    (void)httputil_accept_json(s, &pretty);
    (void)httputil_pretty(s, s);
    err[0] = '\0';
    if (httputil_parse_duration(s, &ns, err, sizeof err) != 0 && !err[0])
        abort();
    err[0] = '\0';
    if (httputil_request_timeout(s, 60000, &ms, err, sizeof err) == 0) {
        if (ms <= 0 || ms > 60000)
            abort();
    } else if (!err[0]) {
        abort();
    }
    free(s);
    return 0;
}
