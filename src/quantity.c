/* quantity.c: Go-compatible quantity, duration and time text (see
 * quantity.h). Uses libc only; never allocates except through the caller's
 * buf. The algorithms restate apimachinery's canonical forms: strip
 * trailing decimal zeros, align the exponent to a multiple of three, pick
 * the SI suffix; BinarySI strips factors of 1024. */
#include "quantity.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int
quantity_decimal_si(struct buf *b, int64_t milli)
{
    static const char *const suffix[] = {
        "m", "", "k", "M", "G", "T", "P", "E"   /* e = -3, 0, 3 ... 18 */
    };
    int64_t v = milli;
    int e = -3;
    int r;

    if (v == 0)
        return buf_adds(b, "0");
    /* v % 10 is exact for negative v too (C99 truncating remainder), so
     * stripping zeros never changes the sign and never overflows. */
    while (v % 10 == 0) {
        v /= 10;
        e++;
    }
    r = ((e % 3) + 3) % 3;
    /* Restore one or two of the zeros just removed: cannot overflow. */
    if (r == 1) {
        v *= 10;
        e -= 1;
    } else if (r == 2) {
        v *= 100;
        e -= 2;
    }
    if (buf_add_i64(b, v) < 0)
        return -1;
    return buf_adds(b, suffix[(e + 3) / 3]);
}

int
quantity_binary_si(struct buf *b, int64_t milli)
{
    static const char *const suffix[] = {
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"
    };
    int64_t u;
    int k = 0;

    if (milli == 0)
        return buf_adds(b, "0");
    /* -1024 < value < 1024, or a fractional number of units: DecimalSI. */
    if ((milli > -1024000 && milli < 1024000) || milli % 1000 != 0)
        return quantity_decimal_si(b, milli);
    u = milli / 1000;
    while (u % 1024 == 0 && k < 6) {
        u /= 1024;
        k++;
    }
    if (buf_add_i64(b, u) < 0)
        return -1;
    return buf_adds(b, suffix[k]);
}

int64_t
quantity_milli(double v)
{
    double x;

    if (isnan(v))
        return 0;
    x = v * 1000.0;
    /* 2^63 is exactly representable; anything at or past it saturates. */
    if (x >= 9223372036854775808.0)
        return INT64_MAX;
    if (x < -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)x;   /* in range: C truncates toward zero, as Go */
}

int
quantity_go_duration(struct buf *b, int64_t ms)
{
    uint64_t u;
    uint64_t h, m, s, frac;

    if (ms == 0)
        return buf_adds(b, "0s");
    if (ms < 0) {
        if (buf_addc(b, '-') < 0)
            return -1;
        u = (uint64_t)0 - (uint64_t)ms;
    } else {
        u = (uint64_t)ms;
    }
    /* Go prints sub-second durations in the largest unit below 1 s. */
    if (u < 1000)
        return buf_addf(b, "%" PRIu64 "ms", u);
    h = u / 3600000;
    m = (u / 60000) % 60;
    s = (u / 1000) % 60;
    frac = u % 1000;
    if (h > 0 && buf_addf(b, "%" PRIu64 "h", h) < 0)
        return -1;
    if ((h > 0 || m > 0) && buf_addf(b, "%" PRIu64 "m", m) < 0)
        return -1;
    if (buf_addf(b, "%" PRIu64, s) < 0)
        return -1;
    if (frac != 0) {
        char f[4];
        int n = 3;

        snprintf(f, sizeof f, "%03u", (unsigned)frac);
        while (n > 0 && f[n - 1] == '0')   /* Go drops trailing zeros */
            n--;
        if (buf_addc(b, '.') < 0 || buf_add(b, f, (size_t)n) < 0)
            return -1;
    }
    return buf_addc(b, 's');
}

int
quantity_rfc3339(struct buf *b, double epoch)
{
    struct tm tm;
    time_t t;
    double f;

    if (!isfinite(epoch))
        return -1;
    f = floor(epoch);
    /* Years 0..9999 only: RFC 3339 has four-digit years (Go errors too). */
    if (f < -62167219200.0 || f > 253402300799.0)
        return -1;
    t = (time_t)f;
    if (gmtime_r(&t, &tm) == NULL)
        return -1;
    return buf_addf(b, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                    tm.tm_sec);
}
