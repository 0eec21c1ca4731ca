/* log.c: klog-format log lines on stderr (see log.h). Uses libc only. */
#include "log.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int verbosity;

void log_set_verbosity(int v) { verbosity = v; }
int log_verbosity(void) { return verbosity; }

void
log_msg(enum log_sev sev, const char *file, int line, const char *fmt, ...)
{
    static const char sevc[] = "IWEF";
    char out[4096];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    int n = snprintf(out, sizeof out, "%c%02d%02d %02d:%02d:%02d.%06ld %7d %s:%d] ",
                     sevc[sev], tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, (long)tv.tv_usec, (int)getpid(),
                     base, line);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(out + n, sizeof out - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof out - 2)
        len = sizeof out - 2;
    out[len++] = '\n';
    ssize_t w = write(2, out, len);
    (void)w;
    if (sev == LOG_SEV_FATAL)
        exit(255);
}
