/* log.h: klog-format logging, the only writer to stderr.
 * Line format: "I1129 10:00:00.000000    1234 file.c:123] message".
 * Severities I, W, E, F; LOGV(n, ...) prints at info severity only when
 * --v >= n. LOGF logs and exits 255 (klog's fatal). Thread-safe: one
 * write(2) per line. Never log secrets (tokens, keys). */
#ifndef ADAPTER_LOG_H
#define ADAPTER_LOG_H

enum log_sev { LOG_SEV_INFO, LOG_SEV_WARNING, LOG_SEV_ERROR, LOG_SEV_FATAL };

void log_set_verbosity(int v);
int log_verbosity(void);
void log_msg(enum log_sev sev, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define LOGI(...) log_msg(LOG_SEV_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define LOGW(...) log_msg(LOG_SEV_WARNING, __FILE__, __LINE__, __VA_ARGS__)
#define LOGE(...) log_msg(LOG_SEV_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define LOGF(...) log_msg(LOG_SEV_FATAL, __FILE__, __LINE__, __VA_ARGS__)
#define LOGV(n, ...) do { if (log_verbosity() >= (n)) \
    log_msg(LOG_SEV_INFO, __FILE__, __LINE__, __VA_ARGS__); } while (0)
#endif
