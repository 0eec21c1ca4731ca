/* log.h: the only writer to stderr.
 * Provides: klog text lines by default
 *   "I1129 10:00:00.000000    1234 file.c:123] message"
 * or, with --logging-format=json, one JSON object per line
 *   {"ts":1764410400.000123,"caller":"file.c:123","level":"info","v":0,"msg":"..."}
 * (component-base's JSON keys ts/caller/msg/v, plus level). Severities I, W,
 * E, F; LOGV(n, ...) prints at info severity only when --v >= n. LOGF logs
 * and exits 255 (klog's fatal).
 * Every message is scrubbed before it is written: bearer tokens,
 * Authorization/token/password values and PEM private-key blocks become
 * "[redacted]", so no caller can leak a secret by accident.
 * Uses libc only. Thread-safe: one write(2) per line. */
#ifndef ADAPTER_LOG_H
#define ADAPTER_LOG_H
#include <stddef.h>

enum log_sev { LOG_SEV_INFO, LOG_SEV_WARNING, LOG_SEV_ERROR, LOG_SEV_FATAL };

void log_set_verbosity(int v);
int log_verbosity(void);
/* "text" (klog, the default) or "json". 0, or -1 for any other name with
 * the message of component-base ("unsupported log format \"x\"") in err. */
int log_set_format(const char *name, char *err, size_t errlen);
void log_msg(enum log_sev sev, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* As log_msg at info severity, recording the V level (JSON "v"). */
void log_msg_v(int v, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Rewrites the secrets in s (NUL-terminated, capacity n bytes) in place;
 * the result is cut at n-1 bytes if "[redacted]" made it longer. Exposed
 * for tests and for output written to stdout (check-config, explain). */
void log_scrub(char *s, size_t n);

#define LOGI(...) log_msg(LOG_SEV_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define LOGW(...) log_msg(LOG_SEV_WARNING, __FILE__, __LINE__, __VA_ARGS__)
#define LOGE(...) log_msg(LOG_SEV_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define LOGF(...) log_msg(LOG_SEV_FATAL, __FILE__, __LINE__, __VA_ARGS__)
#define LOGV(n, ...) do { if (log_verbosity() >= (n)) \
    log_msg_v((n), __FILE__, __LINE__, __VA_ARGS__); } while (0)
#endif
