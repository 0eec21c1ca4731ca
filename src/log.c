/* log.c: klog text or JSON log lines on stderr, with secrets scrubbed
 * (see log.h). Uses libc only; must never allocate on the logging path
 * (it runs in out-of-memory paths too): every line is built in a stack
 * buffer and written with one write(2). */
#include "log.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 8192
#define REDACTED "[redacted]"

static volatile int verbosity;
static volatile int json_format;

void log_set_verbosity(int v) { verbosity = v; }
int log_verbosity(void) { return verbosity; }

int
log_set_format(const char *name, char *err, size_t errlen)
{
    if (!name || !*name || !strcmp(name, "text")) {
        json_format = 0;
        return 0;
    }
    if (!strcmp(name, "json")) {
        json_format = 1;
        return 0;
    }
    snprintf(err, errlen, "unsupported log format \"%s\"", name);
    return -1;
}

/* -- Scrubbing -------------------------------------------------------- */

/* Keys whose value is a secret when followed by '=' or ':' (optionally
 * quoted, as in JSON or YAML). */
static const char *const secret_keys[] = {
    "token", "access_token", "id-token", "refresh-token", "password",
    "passwd", "secret", "client-key-data", "authorization", "api_key",
    "apikey",
};

static bool
word_char(int c)
{
    return isalnum(c) || c == '_' || c == '-';
}

/* Length of the secret value starting at p (stops at white space, quote,
 * comma, semicolon, brace), or, after "authorization", the rest up to a
 * quote or newline (scheme and credentials both). */
static size_t
value_len(const char *p, bool whole)
{
    size_t n = 0;
    while (p[n] && p[n] != '"' && p[n] != '\'' && p[n] != '\n' &&
           (whole || (!isspace((unsigned char)p[n]) && p[n] != ',' &&
                      p[n] != ';' && p[n] != '}' && p[n] != '&')))
        n++;
    return n;
}

struct sink {
    char *p;
    size_t left;        /* bytes still writable, NUL excluded */
};

static void
put(struct sink *o, const char *s, size_t n)
{
    if (n > o->left)
        n = o->left;
    memcpy(o->p, s, n);
    o->p += n;
    o->left -= n;
}

static size_t
scrub_at(const char *s, size_t i, struct sink *o)
{
    const char *p = s + i;
    /* PEM private keys: the whole block, or the rest of the text when the
     * END line is missing (a truncated message). */
    if (!strncasecmp(p, "-----BEGIN ", 11)) {
        const char *eol = strstr(p + 11, "-----");
        bool priv = false;
        for (const char *q = p + 11; eol && q + 11 <= eol && !priv; q++)
            priv = !strncmp(q, "PRIVATE KEY", 11);
        if (priv && eol - p < 80) {
            const char *end = strstr(eol + 5, "-----END ");
            const char *stop = end ? strstr(end + 9, "-----") : NULL;
            size_t n = stop ? (size_t)(stop + 5 - p) : strlen(p);
            put(o, "[redacted private key]", 22);
            return n;
        }
        return 0;
    }
    /* URL user-info: scheme://user:password@host */
    if (!strncmp(p, "://", 3)) {
        size_t j = 3, colon = 0;
        while (p[j] && p[j] != '@' && p[j] != '/' && !isspace((unsigned char)p[j])) {
            if (p[j] == ':' && !colon)
                colon = j;
            j++;
        }
        if (p[j] == '@' && colon) {
            put(o, p, colon + 1);
            put(o, REDACTED, sizeof REDACTED - 1);
            return j;
        }
        return 0;
    }
    /* keys start a word in a key context (not "/var/run/token: ...") */
    if (i > 0 && !strchr(" \t\"'{,&?;([", s[i - 1]))
        return 0;
    /* "Bearer <token>" anywhere. */
    if (!strncasecmp(p, "bearer ", 7) && p[7] && !isspace((unsigned char)p[7])) {
        size_t n = value_len(p + 7, false);
        put(o, p, 7);
        put(o, REDACTED, sizeof REDACTED - 1);
        return 7 + n;
    }
    for (size_t k = 0; k < sizeof secret_keys / sizeof secret_keys[0]; k++) {
        size_t kl = strlen(secret_keys[k]);
        if (strncasecmp(p, secret_keys[k], kl) || word_char((unsigned char)p[kl]))
            continue;
        size_t j = kl;
        if (p[j] == '"')
            j++;
        if (p[j] != '=' && p[j] != ':')
            return 0;
        j++;
        while (p[j] == ' ')
            j++;
        bool quoted = p[j] == '"';
        if (quoted)
            j++;
        size_t n = value_len(p + j, !strcmp(secret_keys[k], "authorization"));
        if (n == 0)
            return 0;
        put(o, p, j);
        put(o, REDACTED, sizeof REDACTED - 1);
        return j + n;
    }
    return 0;
}

void
log_scrub(char *s, size_t n)
{
    if (!s || n == 0)
        return;
    char tmp[LINE_MAX_BYTES];
    size_t len = strnlen(s, n - 1);
    if (len >= sizeof tmp)
        len = sizeof tmp - 1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    struct sink o = { s, n - 1 };
    for (size_t i = 0; i < len && o.left;) {
        size_t used = scrub_at(tmp, i, &o);
        if (used) {
            i += used;
            continue;
        }
        put(&o, tmp + i, 1);
        i++;
    }
    *o.p = '\0';
}

/* -- Formatting ------------------------------------------------------- */

/* Appends msg as a JSON string body (no quotes) to out; control bytes as
 * \u00XX, invalid UTF-8 as U+FFFD, so every line is valid JSON. */
static size_t
json_escape(char *out, size_t cap, const char *msg)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)msg;
    while (*p && o + 8 < cap) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
            p++;
        } else if (c == '\n') {
            out[o++] = '\\'; out[o++] = 'n'; p++;
        } else if (c == '\t') {
            out[o++] = '\\'; out[o++] = 't'; p++;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
            p++;
        } else if (c < 0x80) {
            out[o++] = (char)c;
            p++;
        } else {
            size_t n = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
            bool ok = n > 0;
            for (size_t k = 1; ok && k < n; k++)
                ok = (p[k] & 0xc0) == 0x80;
            if (ok && o + n < cap) {
                memcpy(out + o, p, n);
                o += n;
                p += n;
            } else {
                memcpy(out + o, "\\ufffd", 6);
                o += 6;
                p++;
            }
        }
    }
    out[o] = '\0';
    return o;
}

static void
emit(enum log_sev sev, int v, const char *file, int line, const char *fmt,
     va_list ap)
{
    static const char sevc[] = "IWEF";
    static const char *const sevname[] = { "info", "warning", "error", "fatal" };
    char msg[LINE_MAX_BYTES / 2];
    char out[LINE_MAX_BYTES];
    struct timeval tv;
    struct tm tm;
    int n;

    if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
        msg[0] = '\0';
    log_scrub(msg, sizeof msg);
    gettimeofday(&tv, NULL);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    if (json_format) {
        n = snprintf(out, sizeof out,
                     "{\"ts\":%lld.%06ld,\"caller\":\"%s:%d\",\"level\":\"%s\",",
                     (long long)tv.tv_sec, (long)tv.tv_usec, base, line,
                     sevname[sev]);
        if (n < 0)
            return;
        if (sev == LOG_SEV_INFO)
            n += snprintf(out + n, sizeof out - (size_t)n, "\"v\":%d,", v);
        n += snprintf(out + n, sizeof out - (size_t)n, "\"msg\":\"");
        n += (int)json_escape(out + n, sizeof out - (size_t)n - 3, msg);
        out[n++] = '"';
        out[n++] = '}';
    } else {
        gmtime_r(&tv.tv_sec, &tm);
        n = snprintf(out, sizeof out, "%c%02d%02d %02d:%02d:%02d.%06ld %7d %s:%d] %s",
                     sevc[sev], tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, (long)tv.tv_usec, (int)getpid(),
                     base, line, msg);
        if (n < 0)
            return;
        if ((size_t)n > sizeof out - 2)
            n = (int)sizeof out - 2;
    }
    out[n++] = '\n';
    ssize_t w = write(2, out, (size_t)n);
    (void)w;
    if (sev == LOG_SEV_FATAL)
        exit(255);
}

void
log_msg(enum log_sev sev, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(sev, 0, file, line, fmt, ap);
    va_end(ap);
}

void
log_msg_v(int v, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(LOG_SEV_INFO, v, file, line, fmt, ap);
    va_end(ap);
}
