/* prom.c: the Prometheus HTTP API client (see prom.h; spec-server.md §9,
 * spec-rules.md §5.1).
 * Provides: prom_client_new/free, prom_series (streamed, reduced to shapes),
 * prom_query (instant queries, coalesced and optionally cached), the
 * URL/time/duration formatting helpers.
 * Uses: http_client (transport; the caller's per-thread handle), yajl
 * (callback parser for series and query bodies, fed as they stream in;
 * strings with invalid UTF-8 are repaired as Go's decoder does, utf8.h),
 * log, buf, pthread (a mutex around the token-file cache; one mutex for the
 * in-flight table, the query cache and the counters), goquote (Go's %q in
 * URL errors), gotls (Go's checks of the CA file and the client pair).
 * Must never: buffer a whole series body or keep label values, log tokens
 * or passwords (URLs are logged without user-info), or touch libcurl
 * directly. */
#include "prom.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <yajl/yajl_parse.h>

#include "buf.h"
#include "goquote.h"
#include "gotls.h"
#include "log.h"
#include "metrics.h"
#include "utf8.h"

#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_MAX_GET 8192
#define MAX_URL ((size_t)16 << 20)          /* URL/body buffers */
#define SERIES_MAX_BODY (((size_t)1) << 40) /* streamed, so only a guard */
#define QUERY_MAX_BODY ((size_t)256 << 20)

/* -- Arena ------------------------------------------------------------- */

/* Bump allocator: every string and array of a result lives in one arena,
 * so freeing a result is one call. Not thread-safe (one owner). */
struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct prom_arena {
    struct arena_chunk *head;
    size_t next_cap;               /* size of the next chunk; 0 = first */
};

/* Chunks grow from 4 KB to 64 KB: a small answer (one sample, a scalar)
 * does not pin 64 KB, and the many results a resource request holds at
 * once waste at most about half of what they use. */
#define ARENA_FIRST 4096
#define ARENA_MAX_CHUNK 65536

static void *
arena_alloc(struct prom_arena *a, size_t n)
{
    struct arena_chunk *c = a->head;
    size_t al = _Alignof(max_align_t);

    n = (n + al - 1) / al * al;
    if (!c || c->cap - c->used < n) {
        size_t cap = a->next_cap ? a->next_cap : ARENA_FIRST;
        if (cap < ARENA_MAX_CHUNK)
            a->next_cap = cap * 2;
        else
            a->next_cap = ARENA_MAX_CHUNK;
        if (cap < n)
            cap = n;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

static char *
arena_strndup(struct prom_arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void
arena_free(struct prom_arena *a)
{
    if (!a)
        return;
    while (a->head) {
        struct arena_chunk *n = a->head->next;
        free(a->head);
        a->head = n;
    }
    free(a);
}

/* -- Invalid UTF-8 in JSON strings --------------------------------------- */

/* yajl's own check (on by default) rejects a string that is not valid
 * UTF-8, failing the whole answer; Go's encoding/json, which
 * prometheus-adapter reads the same answers with, turns each invalid byte
 * into U+FFFD instead. Both parsers turn yajl's check off
 * (yajl_dont_validate_strings) and pass every string they keep (label
 * names and values, error texts) through fix_utf8 first. Strings that are
 * only compared with ASCII names or parsed as numbers are not: invalid
 * UTF-8 gives the same outcome there repaired or not. Label names are
 * checked only when new (not the previous sample's, not yet interned):
 * what is kept is valid, so bytes equal to it are too. */
struct fixbuf {
    char *p;                       /* malloc'd; the last repaired string */
    size_t cap;
};

static const unsigned char *fix_utf8_slow(struct fixbuf *fb,
                                          const unsigned char *s, size_t *n)
    __attribute__((noinline));

/* s[0..*n) as Go's decoder reads it: s itself when it is valid UTF-8 (the
 * usual case: all ASCII, tested inline), else its repair in fb, with *n
 * updated. NULL when out of memory. */
static inline const unsigned char *
fix_utf8(struct fixbuf *fb, const unsigned char *s, size_t *n)
{
    return utf8_is_ascii((const char *)s, *n) ? s : fix_utf8_slow(fb, s, n);
}

static const unsigned char *
fix_utf8_slow(struct fixbuf *fb, const unsigned char *s, size_t *n)
{
    size_t len = *n;

    if (utf8_valid_prefix((const char *)s, len) == len)
        return s;
    if (len > SIZE_MAX / 3)
        return NULL;
    if (fb->cap < len * 3) {
        char *np = realloc(fb->p, len * 3);
        if (!np)
            return NULL;
        fb->p = np;
        fb->cap = len * 3;
    }
    *n = utf8_repair((const char *)s, len, fb->p);
    return (const unsigned char *)fb->p;
}

/* -- Token sources ------------------------------------------------------- */

/* A bearer token read from a file: trimmed, and re-read whenever the file's
 * mtime or size changes (token rotation). Shared by threads: guarded by mu.
 * A failed re-read keeps the last good token. */
struct token_src {
    char *path;
    pthread_mutex_t mu;
    struct timespec mtime;
    off_t size;
    char *token;                /* trimmed contents; owned */
};

static char *
read_trimmed(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct buf b;
    char chunk[4096];
    size_t n, start = 0;
    char *out = NULL;

    buf_init(&b, 1 << 20);
    if (!f) {
        char why[128];
        buf_go_strerror(why, sizeof why, errno);
        snprintf(err, errlen, "open %s: %s", path, why);
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (buf_add(&b, chunk, n) != 0) {
            snprintf(err, errlen, "read %s: file too large", path);
            goto done;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "read %s: %s", path, strerror(errno));
        goto done;
    }
    while (b.len > 0 && strchr(" \t\r\n\v\f", b.data[b.len - 1]))
        b.len--;
    while (start < b.len && strchr(" \t\r\n\v\f", b.data[start]))
        start++;
    out = malloc(b.len - start + 1);
    if (!out) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (b.len > start)
        memcpy(out, b.data + start, b.len - start);
    out[b.len - start] = '\0';
done:
    fclose(f);
    buf_free(&b);
    return out;
}

static int
token_src_init(struct token_src *t, const char *path, char *err,
               size_t errlen)
{
    struct stat st;

    memset(t, 0, sizeof *t);
    t->path = strdup(path);
    if (!t->path) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&t->mu, NULL);
    if (stat(path, &st) == 0) {
        t->mtime = st.st_mtim;
        t->size = st.st_size;
    }
    t->token = read_trimmed(path, err, errlen);
    return t->token ? 0 : -1;
}

static void
token_src_fini(struct token_src *t)
{
    if (!t->path)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->path);
    free(t->token);
    t->path = NULL;
}

/* Returns a malloc'd copy of the current token (caller frees), or NULL. */
static char *
token_src_get(struct token_src *t)
{
    struct stat st;
    char *copy = NULL;

    pthread_mutex_lock(&t->mu);
    if (stat(t->path, &st) == 0 &&
        (st.st_mtim.tv_sec != t->mtime.tv_sec ||
         st.st_mtim.tv_nsec != t->mtime.tv_nsec || st.st_size != t->size)) {
        char err[256];
        char *fresh = read_trimmed(t->path, err, sizeof err);
        if (fresh) {
            free(t->token);
            t->token = fresh;
            t->mtime = st.st_mtim;
            t->size = st.st_size;
            LOGV(4, "re-read token file %s", t->path);
        } else {
            LOGW("keeping the previous token: %s", err);
        }
    }
    if (t->token)
        copy = strdup(t->token);
    pthread_mutex_unlock(&t->mu);
    return copy;
}

/* -- Client ------------------------------------------------------------ */

struct prom_client {
    char *origin;           /* "scheme://host[:port]" (no user-info) */
    char *base_path;        /* raw path of --prometheus-url, may be "" */
    char *base_query;       /* raw query of --prometheus-url, or NULL */
    char *url_error;        /* set when Go parses the URL but cannot send
                             * to it (no http/https scheme, no host): every
                             * call fails with this text, as in PA */
    char *basic_user, *basic_pass;  /* from the URL's user-info */
    char *auth_user, *auth_pass;    /* from the kubeconfig */
    bool post;
    char **headers;         /* "Name: value" (or "Name;" for empty), NULL-terminated */
    size_t nheaders;
    char **post_headers;    /* same without Content-Type, plus the forced one */
    bool has_auth_header;
    bool has_token_file, has_auth_token_file;
    struct token_src token_file;
    struct token_src auth_token_file;
    char *auth_token;
    /* TLS config: strings duplicated so opts need not outlive the client */
    bool has_tls;
    struct http_tls tls;
    char *tls_strs[7];
    long timeout_ms;
    size_t max_get_length;
    /* Coalescing and the query cache (see prom.h). mu guards flights, the
     * cache and stats; it is held only for table work, never across a
     * Prometheus call. */
    pthread_mutex_t mu;
    struct flight *flights;         /* queries being fetched right now */
    long cache_ttl_ms;
    size_t cache_max;
    struct centry **buckets;        /* NBUCKETS chains, NULL when no cache */
    struct centry *fifo_head, *fifo_tail; /* insertion = expiry order */
    size_t ncache;
    struct prom_stats stats;
};

/* One instant query in flight: the caller that created it (the leader)
 * performs the request; callers of the same PromQL wait on cv. Freed by
 * whoever drops refs to 0 (under p->mu). */
struct flight {
    struct flight *next;
    char *key;                      /* the PromQL */
    pthread_cond_t cv;              /* CLOCK_MONOTONIC */
    int refs;                       /* leader + waiting callers */
    bool done;
    int rc;
    struct prom_result *res;        /* one reference, held by the flight */
    char err[1024];
};

/* One cached answer: a reference to a result, until expires_ms. */
struct centry {
    struct centry *hnext;           /* bucket chain */
    struct centry *qnext;           /* FIFO */
    char *key;
    uint32_t hash;
    long long expires_ms;           /* monotonic */
    struct prom_result *res;        /* one reference */
};

#define NBUCKETS 1024
#define DEFAULT_CACHE_MAX 1024

static int
token_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

void
prom_canonical_header(const char *name, size_t len, char *out, size_t outlen)
{
    bool upper = true, valid = true;
    size_t i;

    if (outlen == 0)
        return;
    for (i = 0; i < len; i++)
        if (!token_byte((unsigned char)name[i]))
            valid = false;
    for (i = 0; i < len && i + 1 < outlen; i++) {
        char c = name[i];
        if (valid) {
            if (upper && c >= 'a' && c <= 'z')
                c = (char)(c - 32);
            else if (!upper && c >= 'A' && c <= 'Z')
                c = (char)(c + 32);
            upper = c == '-';
        }
        out[i] = c;
    }
    out[i] = '\0';
}

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string (user-info), NULL on error. */
static char *
unescape(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t j = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
            hexval(s[i + 2]) >= 0) {
            out[j++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    return out;
}

/* -- --prometheus-url: Go's url.Parse ------------------------------------ */

/* PA parses --prometheus-url with Go's url.Parse and stops start-up only
 * when that fails; a URL it parses but cannot send to (no scheme,
 * "prometheus:9090", "ftp://...", no host) starts and fails every request.
 * The checks below are url.Parse's, with its error texts. */

enum esc_mode { ESC_HOST, ESC_ZONE, ESC_PATH, ESC_USERINFO, ESC_FRAGMENT };

/* A byte Go leaves unescaped in a host (shouldEscape(c, encodeHost) false). */
static bool
host_byte_ok(unsigned c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') ||
           (c && c < 0x80 && strchr("-_.~!$&'()*+,;=:[]<>\"", (int)c));
}

/* why = prefix + Go-quoted s[0..n) + suffix. */
static void
quoted_error(char *why, size_t whylen, const char *prefix, const char *s,
             size_t n, const char *suffix)
{
    struct buf b;
    buf_init(&b, 4096);
    if (buf_adds(&b, prefix) || goquote(&b, s, n) || buf_adds(&b, suffix) ||
        buf_addc(&b, '\0'))
        snprintf(why, whylen, "%s...%s", prefix, suffix);
    else
        snprintf(why, whylen, "%s", b.data);
    buf_free(&b);
}

/* Go's url.unescape checks for one component: malformed %-escapes, and in
 * a host the bytes and escapes RFC 3986 does not allow there. */
static int
url_check_escapes(const char *s, size_t n, enum esc_mode mode, char *why,
                  size_t whylen)
{
    for (size_t i = 0; i < n;) {
        if (s[i] == '%') {
            if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
                quoted_error(why, whylen, "invalid URL escape ", s + i,
                             n - i > 3 ? 3 : n - i, "");
                return -1;
            }
            bool pct25 = memcmp(s + i, "%25", 3) == 0;
            int v = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            /* in a host only non-ASCII bytes may be escaped; in an IPv6
             * zone what a host could hold unescaped, a space, or "%25" */
            if ((mode == ESC_HOST && hexval(s[i + 1]) < 8 && !pct25) ||
                (mode == ESC_ZONE && !pct25 && v != ' ' &&
                 !host_byte_ok((unsigned)v))) {
                quoted_error(why, whylen, "invalid URL escape ", s + i, 3, "");
                return -1;
            }
            i += 3;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        if ((mode == ESC_HOST || mode == ESC_ZONE) && c < 0x80 &&
            !host_byte_ok(c)) {
            quoted_error(why, whylen, "invalid character ", s + i, 1,
                         " in host name");
            return -1;
        }
        i++;
    }
    return 0;
}

static bool
valid_optional_port(const char *p, size_t n)
{
    if (n == 0)
        return true;
    if (p[0] != ':')
        return false;
    for (size_t i = 1; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

/* Go's parseHost: brackets and port syntax, then the escapes. */
static int
url_check_host(const char *h, size_t n, char *why, size_t whylen)
{
    const char *port = NULL;

    if (n > 0 && h[0] == '[') {
        const char *rb = NULL;
        for (size_t i = n; i-- > 0;)
            if (h[i] == ']') {
                rb = h + i;
                break;
            }
        if (!rb) {
            snprintf(why, whylen, "missing ']' in host");
            return -1;
        }
        port = rb + 1;
        if (!valid_optional_port(port, (size_t)(h + n - port)))
            goto bad_port;
        const char *zone = NULL;        /* the first "%25" before ']' */
        for (const char *c = h; !zone && c + 3 <= rb; c++)
            if (memcmp(c, "%25", 3) == 0)
                zone = c;
        if (zone)
            return url_check_escapes(h, (size_t)(zone - h), ESC_HOST, why,
                                     whylen) ||
                   url_check_escapes(zone, (size_t)(rb - zone), ESC_ZONE, why,
                                     whylen) ||
                   url_check_escapes(rb, (size_t)(h + n - rb), ESC_HOST, why,
                                     whylen) ? -1 : 0;
    } else {
        for (size_t i = n; i-- > 0;)
            if (h[i] == ':') {
                port = h + i;
                if (!valid_optional_port(port, n - i))
                    goto bad_port;
                break;
            }
    }
    return url_check_escapes(h, n, ESC_HOST, why, whylen);
bad_port:
    quoted_error(why, whylen, "invalid port ", port, (size_t)(h + n - port),
                 " after host");
    return -1;
}

/* Go's validUserinfo: RFC 3986 user-info bytes only (no non-ASCII). */
static bool
valid_userinfo(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') ||
              (c && strchr("-._:~!$&'()*+,;=%@", c))))
            return false;
    }
    return true;
}

/* The parts of a URL as Go's url.Parse splits it (pointers into it). */
struct url_parts {
    const char *scheme;
    size_t scheme_len;
    bool opaque;                /* "scheme:rest" with rest not starting '/' */
    bool has_user;
    const char *user;           /* raw user-info (before the last '@') */
    size_t user_len;
    const char *host;
    size_t host_len;
    const char *path;
    size_t path_len;
    const char *query;          /* NULL when there is no '?' */
    size_t query_len;
};

/* Go's url.parse(u[0..n), viaRequest=false): 0, or -1 with Go's inner error
 * in why. */
static int
url_split(const char *u, size_t n, struct url_parts *out, char *why,
          size_t whylen)
{
    const char *rest = u, *end = u + n;
    size_t i;

    memset(out, 0, sizeof *out);
    for (i = 0; i < n; i++)
        if ((unsigned char)u[i] < 0x20 || u[i] == 0x7f) {
            snprintf(why, whylen, "net/url: invalid control character in URL");
            return -1;
        }
    if (n == 1 && u[0] == '*') {        /* the path "*" */
        out->path = u;
        out->path_len = 1;
        return 0;
    }
    /* getScheme: letters, then letters, digits, '+', '-', '.', up to ':' */
    for (i = 0; i < n; i++) {
        char c = u[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            continue;
        if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.') {
            if (i == 0)
                break;
            continue;
        }
        if (c == ':') {
            if (i == 0) {
                snprintf(why, whylen, "missing protocol scheme");
                return -1;
            }
            out->scheme = u;
            out->scheme_len = i;
            rest = u + i + 1;
        }
        break;
    }
    /* the query: a lone trailing '?' only forces an empty one */
    const char *q = memchr(rest, '?', (size_t)(end - rest));
    if (q) {
        out->query = q + 1;
        out->query_len = (size_t)(end - q - 1);
        end = q;
    }
    if (rest == end || rest[0] != '/') {
        if (out->scheme) {
            out->opaque = true;
            return 0;
        }
        const char *slash = memchr(rest, '/', (size_t)(end - rest));
        if (memchr(rest, ':', (size_t)((slash ? slash : end) - rest))) {
            snprintf(why, whylen,
                     "first path segment in URL cannot contain colon");
            return -1;
        }
    }
    if (end - rest >= 2 && rest[0] == '/' && rest[1] == '/' &&
        (out->scheme || end - rest < 3 || rest[2] != '/')) {
        const char *auth = rest + 2, *aend, *at = NULL;
        aend = memchr(auth, '/', (size_t)(end - auth));
        if (!aend)
            aend = end;
        for (const char *c = auth; c < aend; c++)
            if (*c == '@')
                at = c;
        const char *host = at ? at + 1 : auth;
        if (url_check_host(host, (size_t)(aend - host), why, whylen) != 0)
            return -1;
        if (at) {
            if (!valid_userinfo(auth, (size_t)(at - auth))) {
                snprintf(why, whylen, "net/url: invalid userinfo");
                return -1;
            }
            if (url_check_escapes(auth, (size_t)(at - auth), ESC_USERINFO,
                                  why, whylen) != 0)
                return -1;
            out->has_user = true;
            out->user = auth;
            out->user_len = (size_t)(at - auth);
        }
        out->host = host;
        out->host_len = (size_t)(aend - host);
        rest = aend;
    }
    out->path = rest;
    out->path_len = (size_t)(end - rest);
    return url_check_escapes(rest, out->path_len, ESC_PATH, why, whylen);
}

/* Splits --prometheus-url into origin, path, query and user-info; sets
 * p->url_error for a URL Go accepts but cannot send to. */
static int
parse_base_url(struct prom_client *p, const char *url, char *err,
               size_t errlen)
{
    const char *hash = strchr(url, '#');
    size_t ulen = hash ? (size_t)(hash - url) : strlen(url);
    struct url_parts u;
    char why[1024], scheme[32];
    size_t quoted_len = ulen;

    if (url_split(url, ulen, &u, why, sizeof why) != 0)
        goto invalid;
    /* the fragment is checked after the rest, and then the whole URL is
     * the one quoted */
    quoted_len = strlen(url);
    if (hash && url_check_escapes(hash + 1, strlen(hash + 1), ESC_FRAGMENT,
                                  why, sizeof why) != 0)
        goto invalid;

    snprintf(scheme, sizeof scheme, "%.*s", (int)u.scheme_len,
             u.scheme ? u.scheme : "");
    for (char *c = scheme; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c + 32);
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        /* Go's transport: `unsupported protocol scheme "<scheme>"` */
        quoted_error(why, sizeof why, "unsupported protocol scheme ",
                     scheme, strlen(scheme), "");
        if (!(p->url_error = strdup(why)))
            goto oom;
        return 0;
    }
    if (u.opaque || u.host_len == 0) {
        if (!(p->url_error = strdup("http: no Host in request URL")))
            goto oom;
        return 0;
    }
    if (u.has_user) {
        const char *colon = memchr(u.user, ':', u.user_len);
        size_t ul = colon ? (size_t)(colon - u.user) : u.user_len;
        p->basic_user = unescape(u.user, ul);
        p->basic_pass = colon ? unescape(colon + 1, u.user_len - ul - 1)
                              : strdup("");
        if (!p->basic_user || !p->basic_pass)
            goto oom;
    }
    size_t sl = strlen(scheme);
    p->origin = malloc(sl + 3 + u.host_len + 1);
    if (!p->origin)
        goto oom;
    memcpy(p->origin, scheme, sl);
    memcpy(p->origin + sl, "://", 3);
    memcpy(p->origin + sl + 3, u.host, u.host_len);
    p->origin[sl + 3 + u.host_len] = '\0';
    p->base_path = strndup(u.path, u.path_len);
    if (!p->base_path)
        goto oom;
    if (u.query && u.query_len > 0) {
        p->base_query = strndup(u.query, u.query_len);
        if (!p->base_query)
            goto oom;
    }
    return 0;
invalid:
    {
        /* PA: fmt.Errorf("invalid Prometheus URL %q: %v", baseURL, err)
         * with baseURL the nil *url.URL url.Parse returned, which fmt
         * prints as <nil>; err is Go's *url.Error: parse "<url>": <why> */
        char inner[1100];
        snprintf(inner, sizeof inner, ": %s", why);
        quoted_error(err, errlen, "invalid Prometheus URL <nil>: parse ", url,
                     quoted_len, inner);
        return -1;
    }
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* Appends path.Join(base, endpoint) (Go path.Clean semantics: rooted,
 * duplicate slashes collapsed, "." and ".." resolved, no trailing slash). */
static int
append_clean_path(struct buf *out, const char *base, const char *endpoint)
{
    struct buf joined;
    size_t start = out->len, i = 0;
    int rc = -1;

    buf_init(&joined, MAX_URL);
    if (buf_adds(&joined, "/") || buf_adds(&joined, base) ||
        buf_adds(&joined, "/") || buf_adds(&joined, endpoint))
        goto done;
    /* Walk segments; out holds the cleaned, rooted result. */
    while (i < joined.len) {
        size_t j;
        while (i < joined.len && joined.data[i] == '/')
            i++;
        j = i;
        while (j < joined.len && joined.data[j] != '/')
            j++;
        if (j == i)
            break;
        if (j - i == 1 && joined.data[i] == '.') {
            /* skip */
        } else if (j - i == 2 && joined.data[i] == '.' &&
                   joined.data[i + 1] == '.') {
            while (out->len > start && out->data[out->len - 1] != '/')
                out->len--;
            if (out->len > start)
                out->len--; /* drop the '/' too */
            out->data[out->len] = '\0';
        } else {
            if (buf_addc(out, '/') || buf_add(out, joined.data + i, j - i))
                goto done;
        }
        i = j;
    }
    if (out->len == start && buf_addc(out, '/'))
        goto done;
    rc = 0;
done:
    buf_free(&joined);
    return rc;
}

static char *
dup_or_null(const char *s, bool *fail)
{
    char *d;
    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *fail = true;
    return d;
}

/* Builds "Name: value" lines from "K=V" flags. Empty values use curl's
 * "Name;" form (a bare "Name:" would delete the header instead). */
static int
build_headers(struct prom_client *p, const char *const *kv, size_t n,
              char *err, size_t errlen)
{
    size_t np = 0;

    if (!kv)
        n = 0;
    else if (n == 0)
        while (kv[n])
            n++;
    p->headers = calloc(n + 1, sizeof *p->headers);
    p->post_headers = calloc(n + 2, sizeof *p->post_headers);
    if (!p->headers || !p->post_headers)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(kv[i], '=');
        size_t klen = eq ? (size_t)(eq - kv[i]) : strlen(kv[i]);
        const char *val = eq ? eq + 1 : "";
        char name[256], *h;
        size_t len;

        bool valid = klen > 0 && klen < sizeof name && !strpbrk(val, "\r\n");

        for (size_t k = 0; valid && k < klen; k++)
            valid = token_byte((unsigned char)kv[i][k]);
        if (!valid) {
            /* PA starts and then fails every request (Go rejects the
             * header); we start too, but say so and leave it out. */
            LOGW("ignoring --prometheus-header %.64s: not a valid HTTP "
                 "header name/value", kv[i]);
            continue;
        }
        prom_canonical_header(kv[i], klen, name, sizeof name);
        len = strlen(name) + strlen(val) + 3;
        h = malloc(len);
        if (!h)
            goto oom;
        if (*val)
            snprintf(h, len, "%s: %s", name, val);
        else
            snprintf(h, len, "%s;", name);
        p->headers[p->nheaders++] = h;
        if (strcasecmp(name, "Authorization") == 0)
            p->has_auth_header = true;
        if (strcasecmp(name, "Content-Type") != 0)
            p->post_headers[np++] = h;
    }
    p->post_headers[np] = "Content-Type: application/x-www-form-urlencoded";
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

int
prom_check_url(const char *url, const char *verb, char *err, size_t errlen)
{
    struct prom_client *p = calloc(1, sizeof *p);
    int rc;

    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = parse_base_url(p, url ? url : "", err, errlen);
    if (rc == 0 && verb && strcmp(verb, "GET") != 0 &&
        strcmp(verb, "POST") != 0) {
        snprintf(err, errlen,
                 "unsupported Prometheus HTTP verb \"%s\"; supported verbs: "
                 "\"GET\" and \"POST\"", verb);
        rc = -1;
    }
    free(p->origin);
    free(p->base_path);
    free(p->base_query);
    free(p->basic_user);
    free(p->basic_pass);
    free(p->url_error);
    free(p);
    return rc;
}

struct prom_client *
prom_client_new(const struct prom_options *o, char *err, size_t errlen)
{
    struct prom_client *p = calloc(1, sizeof *p);
    const char *verb = o->verb ? o->verb : "GET";
    bool fail = false;
    char terr[256];

    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    /* PA's order: the URL, then the verb */
    if (parse_base_url(p, o->url ? o->url : "", err, errlen) != 0)
        goto fail;
    if (strcmp(verb, "GET") != 0 && strcmp(verb, "POST") != 0) {
        snprintf(err, errlen,
                 "unsupported Prometheus HTTP verb \"%s\"; supported verbs: "
                 "\"GET\" and \"POST\"", verb);
        goto fail;
    }
    p->post = strcmp(verb, "POST") == 0;
    if (p->url_error)
        LOGW("--prometheus-url cannot be used, every Prometheus request will "
             "fail: %s", p->url_error);
    if (build_headers(p, o->headers, o->nheaders, err, errlen) != 0)
        goto fail;
    if (o->token_file && *o->token_file) {
        p->has_token_file = true;
        if (token_src_init(&p->token_file, o->token_file, terr,
                           sizeof terr) != 0) {
            snprintf(err, errlen, "failed to read prometheus-token-file: %s",
                     terr);
            goto fail;
        }
    }
    if (o->auth_token_file && *o->auth_token_file) {
        p->has_auth_token_file = true;
        if (token_src_init(&p->auth_token_file, o->auth_token_file, terr,
                           sizeof terr) != 0) {
            snprintf(err, errlen, "failed to read token file: %s", terr);
            goto fail;
        }
    }
    p->auth_token = dup_or_null(o->auth_token, &fail);
    if (o->auth_basic_user) {
        p->auth_user = dup_or_null(o->auth_basic_user, &fail);
        p->auth_pass = dup_or_null(o->auth_basic_pass ? o->auth_basic_pass
                                                      : "", &fail);
    }
    if (o->tls) {
        p->has_tls = true;
        p->tls = *o->tls;
        p->tls.ca_file = p->tls_strs[0] = dup_or_null(o->tls->ca_file, &fail);
        p->tls.ca_pem = p->tls_strs[1] = dup_or_null(o->tls->ca_pem, &fail);
        p->tls.cert_file = p->tls_strs[2] =
            dup_or_null(o->tls->cert_file, &fail);
        p->tls.key_file = p->tls_strs[3] = dup_or_null(o->tls->key_file, &fail);
        p->tls.cert_pem = p->tls_strs[4] = dup_or_null(o->tls->cert_pem, &fail);
        p->tls.key_pem = p->tls_strs[5] = dup_or_null(o->tls->key_pem, &fail);
        p->tls.server_name = p->tls_strs[6] =
            dup_or_null(o->tls->server_name, &fail);
    }
    if (fail) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    p->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    p->max_get_length = o->max_get_length ? o->max_get_length
                                          : DEFAULT_MAX_GET;
    p->cache_ttl_ms = o->query_cache_ttl_ms > 0 ? o->query_cache_ttl_ms : 0;
    p->cache_max = o->query_cache_max ? o->query_cache_max : DEFAULT_CACHE_MAX;
    if (p->cache_ttl_ms > 0) {
        p->buckets = calloc(NBUCKETS, sizeof *p->buckets);
        if (!p->buckets) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    return p;
fail:
    prom_client_free(p);
    return NULL;
}

void
prom_client_free(struct prom_client *p)
{
    if (!p)
        return;
    free(p->origin);
    free(p->base_path);
    free(p->base_query);
    free(p->url_error);
    free(p->basic_user);
    free(p->basic_pass);
    free(p->auth_user);
    free(p->auth_pass);
    for (size_t i = 0; i < p->nheaders; i++)
        free(p->headers[i]);
    free(p->headers);
    free(p->post_headers);
    if (p->has_token_file)
        token_src_fini(&p->token_file);
    if (p->has_auth_token_file)
        token_src_fini(&p->auth_token_file);
    free(p->auth_token);
    for (size_t i = 0; i < 7; i++)
        free(p->tls_strs[i]);
    /* No call may be running (the caller's contract), so no flights. */
    while (p->fifo_head) {
        struct centry *e = p->fifo_head;
        p->fifo_head = e->qnext;
        prom_result_free(e->res);
        free(e->key);
        free(e);
    }
    free(p->buckets);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* -- Formatting -------------------------------------------------------- */

double
prom_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000) /
           1000.0;
}

int
prom_format_time(double t, char *out, size_t outlen)
{
    long long ms = llround(t * 1000.0);
    long long sec = ms / 1000, frac = ms % 1000;
    const char *sign = "";
    int n;

    if (ms < 0) {
        sign = "-";
        sec = -ms / 1000;
        frac = -ms % 1000;
    }
    if (frac == 0)
        n = snprintf(out, outlen, "%s%lld", sign, sec);
    else if (frac % 100 == 0)
        n = snprintf(out, outlen, "%s%lld.%lld", sign, sec, frac / 100);
    else if (frac % 10 == 0)
        n = snprintf(out, outlen, "%s%lld.%02lld", sign, sec, frac / 10);
    else
        n = snprintf(out, outlen, "%s%lld.%03lld", sign, sec, frac);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int
prom_format_duration(double seconds, char *out, size_t outlen)
{
    long long ms = llround(seconds * 1000.0);
    int n;

    if (ms < 1)
        ms = 1;
    if (ms % 1000 == 0)
        n = snprintf(out, outlen, "%llds", ms / 1000);
    else
        n = snprintf(out, outlen, "%lldms", ms);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* -- Requests ---------------------------------------------------------- */

static int
cmp_kv(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(x[0], y[0]);
}

int
prom_build_request(const struct prom_client *p, const char *endpoint,
                   const char *const *kv, struct prom_wire *out, char *err,
                   size_t errlen)
{
    struct buf params, url;
    const char **pairs = NULL;
    size_t n = 0;
    int rc = -1;
    bool post = p->post;

    memset(out, 0, sizeof *out);
    if (p->url_error) {
        snprintf(err, errlen, "%s", p->url_error);
        return -1;
    }
    buf_init(&params, MAX_URL);
    buf_init(&url, MAX_URL);
    while (kv[2 * n])
        n++;
    /* Sort (key, value) pairs by key, as Go's url.Values.Encode does;
     * qsort is not stable but our keys are distinct. */
    pairs = malloc((2 * n + 1) * sizeof *pairs);
    if (!pairs)
        goto oom;
    memcpy(pairs, kv, 2 * n * sizeof *pairs);
    qsort(pairs, n, 2 * sizeof *pairs, cmp_kv);
    for (size_t i = 0; i < n; i++) {
        if ((i > 0 && buf_addc(&params, '&')) ||
            http_query_escape(&params, pairs[2 * i], strlen(pairs[2 * i])) ||
            buf_addc(&params, '=') ||
            http_query_escape(&params, pairs[2 * i + 1],
                              strlen(pairs[2 * i + 1])))
            goto toolong;
    }
    if (buf_adds(&url, p->origin) ||
        append_clean_path(&url, p->base_path, endpoint))
        goto toolong;
    if (p->base_query && (buf_addc(&url, '?') || buf_adds(&url, p->base_query)))
        goto toolong;
    if (!post) {
        size_t len = url.len + 1 + params.len;
        if (len > p->max_get_length) {
            post = true;
        } else if (buf_addc(&url, p->base_query ? '&' : '?') ||
                   buf_add(&url, params.data ? params.data : "", params.len)) {
            goto toolong;
        }
    }
    if (post) {
        out->body = buf_take(&params, &out->body_len);
        if (!out->body)
            goto oom;
        snprintf(out->method, sizeof out->method, "POST");
    } else {
        snprintf(out->method, sizeof out->method, "GET");
    }
    out->url = buf_take(&url, NULL);
    if (!out->url)
        goto oom;
    rc = 0;
    goto done;
toolong:
    snprintf(err, errlen, "request too long");
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
done:
    if (rc != 0)
        prom_wire_free(out);
    free(pairs);
    buf_free(&params);
    buf_free(&url);
    return rc;
}

void
prom_wire_free(struct prom_wire *w)
{
    if (!w)
        return;
    free(w->url);
    free(w->body);
    w->url = w->body = NULL;
    w->body_len = 0;
}

static int
status_ok(long s)
{
    return (s >= 200 && s < 300) || s == 400 || s == 422 || s == 503;
}

/* One API call being made: the request and what it borrows. */
struct pcall {
    const char *endpoint;
    struct prom_wire w;
    struct http_req req;            /* points into w and token */
    char *token;                    /* owned */
    double t0;
};

/* Builds the request of one API call (the body is streamed to on_data
 * when set, else buffered). 0, or -1 with err (nothing left to free). */
static int
pcall_prepare(struct prom_client *p, const char *endpoint,
              const char *const *kv, long timeout_ms, size_t max_body,
              int (*on_data)(void *, const char *, size_t), void *ctx,
              struct pcall *pc, char *err, size_t errlen)
{
    struct http_req *req = &pc->req;

    memset(pc, 0, sizeof *pc);
    pc->endpoint = endpoint;
    if (prom_build_request(p, endpoint, kv, &pc->w, err, errlen) != 0)
        return -1;
    req->method = pc->w.method;
    req->url = pc->w.url;
    req->headers = (const char *const *)(strcmp(pc->w.method, "POST") == 0
                                             ? p->post_headers : p->headers);
    req->body = pc->w.body;
    req->body_len = pc->w.body_len;
    req->timeout_ms = timeout_ms;
    req->tls = p->has_tls ? &p->tls : NULL;
    req->max_body = max_body;
    req->on_data = on_data;
    req->ctx = ctx;
    /* Authorization, first match wins, as Go's layering gives it: an
     * explicit --prometheus-header; the URL's user-info (set by
     * http.Client before any round tripper); --prometheus-token-file; the
     * kubeconfig's token, token file or basic credentials. */
    if (p->has_auth_header) {
        /* nothing to add */
    } else if (p->basic_user) {
        req->basic_user = p->basic_user;
        req->basic_pass = p->basic_pass;
    } else {
        if (p->has_token_file)
            pc->token = token_src_get(&p->token_file);
        if ((!pc->token || !*pc->token) && p->has_auth_token_file) {
            free(pc->token);
            pc->token = token_src_get(&p->auth_token_file);
        }
        req->bearer_token = pc->token && *pc->token ? pc->token : p->auth_token;
        if (!req->bearer_token || !*req->bearer_token) {
            req->basic_user = p->auth_user;
            req->basic_pass = p->auth_pass;
        }
    }
    if (pc->w.body)
        LOGV(6, "%s %s body=%.4096s%s", pc->w.method, pc->w.url, pc->w.body,
             pc->w.body_len > 4096 ? "..." : "");
    else
        LOGV(6, "%s %s", pc->w.method, pc->w.url);
    pc->t0 = metrics_now();
    return 0;
}

/* Ends one API call whose transfer returned transport_rc (err holds its
 * reason when non-zero): records its duration and maps the status.
 * Returns -1 on a transport error or unknown status (err set). Frees
 * what pcall_prepare made; the caller still frees resp->body. */
static int
pcall_finish(struct pcall *pc, const struct http_resp *resp, int transport_rc,
             char *err, size_t errlen)
{
    const char *what = strrchr(pc->endpoint, '/') + 1;
    int rc = -1;

    /* curl's own transfer time: in a batch the call may end before the
     * caller gets to it */
    metrics_observe(METRICS_PROM_DURATION, what, NULL,
                    resp->total_seconds > 0 ? resp->total_seconds
                                            : metrics_now() - pc->t0);
    if (resp->status != 0 && !status_ok(resp->status)) {
        snprintf(err, errlen, "bad_response: unknown response code %ld",
                 resp->status);
        goto done;
    }
    if (transport_rc != 0)
        goto done;
    rc = 0;
done:
    /* An error for the metrics is every call that did not get a 2xx:
     * transport failures, unknown statuses, and also 400/422/503, which
     * status_ok() accepts only so that the caller reports the API error
     * their body carries. */
    if (rc != 0 || resp->status < 200 || resp->status > 299)
        metrics_add(METRICS_PROM_ERRORS, what, NULL, 1);
    free(pc->token);
    prom_wire_free(&pc->w);
    memset(pc, 0, sizeof *pc);
    return rc;
}

/* Performs one API call; the body is streamed to on_data when set, else
 * buffered into resp. Returns -1 on a transport error or unknown status
 * (err set); the caller frees resp->body in every case. */
static int
do_call(struct prom_client *p, struct http_client *hc, const char *endpoint,
        const char *const *kv, long timeout_ms, size_t max_body,
        int (*on_data)(void *, const char *, size_t), void *ctx,
        struct http_resp *resp, int *transport_rc, char *err, size_t errlen)
{
    struct pcall pc;

    memset(resp, 0, sizeof *resp);
    buf_init(&resp->body, 0);
    if (pcall_prepare(p, endpoint, kv, timeout_ms, max_body, on_data, ctx,
                      &pc, err, errlen) != 0)
        return -1;
    *transport_rc = http_client_do(hc, &pc.req, resp, err, errlen);
    return pcall_finish(&pc, resp, *transport_rc, err, errlen);
}

/* Formats the API error of a response whose status was "error". */
static void
api_error(char *err, size_t errlen, const char *type, const char *msg)
{
    snprintf(err, errlen, "%s: %s", type ? type : "", msg ? msg : "");
}

/* -- Series (streaming) ------------------------------------------------ */

/* Interned string table: open addressing over arena strings. */
struct intern {
    const char **slot;
    uint32_t *hash;
    size_t cap, n;
};

static uint32_t
hash_bytes(const unsigned char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h ? h : 1;
}

struct shape_ent {
    uint32_t hash;
    struct prom_shape shape;     /* labels in the arena */
};

struct series_parse {
    struct prom_arena *arena;
    struct intern strs;
    struct shape_ent *shapes;    /* open-addressing table */
    size_t shapes_cap, nshapes;
    size_t total;
    /* current series */
    const char **cur;            /* label names (interned) */
    size_t ncur, capcur;
    const char *cur_name;
    /* document state */
    int depth;                   /* nesting of maps/arrays */
    int skip_depth;              /* >0: skipping a value that began at this depth */
    enum { TK_NONE, TK_STATUS, TK_DATA, TK_ETYPE, TK_ERROR, TK_OTHER } top_key;
    bool in_data, in_series, key_is_name, seen_top;
    bool data_bad;
    char status[32], etype[128];
    char *error_msg;             /* malloc'd */
    char perr[256];              /* callback-detected problem */
    struct fixbuf fix;           /* strings repaired to valid UTF-8 */
    yajl_handle yh;
    bool parse_failed;
};

static const char *
intern(struct series_parse *sp, const unsigned char *s, size_t n)
{
    struct intern *t = &sp->strs;
    uint32_t h = hash_bytes(s, n);
    bool fixed = false;
    size_t i;

    if ((t->n + 1) * 2 > t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 256;
        const char **ns = calloc(ncap, sizeof *ns);
        uint32_t *nh = calloc(ncap, sizeof *nh);
        if (!ns || !nh) {
            free(ns);
            free(nh);
            return NULL;
        }
        for (size_t k = 0; k < t->cap; k++) {
            if (!t->slot[k])
                continue;
            for (i = t->hash[k] & (ncap - 1); ns[i]; i = (i + 1) & (ncap - 1))
                ;
            ns[i] = t->slot[k];
            nh[i] = t->hash[k];
        }
        free(t->slot);
        free(t->hash);
        t->slot = ns;
        t->hash = nh;
        t->cap = ncap;
    }
again:
    for (i = h & (t->cap - 1); t->slot[i]; i = (i + 1) & (t->cap - 1))
        if (t->hash[i] == h && strncmp(t->slot[i], (const char *)s, n) == 0 &&
            t->slot[i][n] == '\0')
            return t->slot[i];
    /* new: interned strings are valid UTF-8 (so a hit above needs no
     * check); the repaired form may be interned already */
    if (!fixed) {
        const unsigned char *f = fix_utf8(&sp->fix, s, &n);
        if (!f)
            return NULL;
        fixed = true;
        if (f != s) {
            s = f;
            h = hash_bytes(s, n);
            goto again;
        }
    }
    t->slot[i] = arena_strndup(sp->arena, (const char *)s, n);
    if (!t->slot[i])
        return NULL;
    t->hash[i] = h;
    t->n++;
    return t->slot[i];
}

/* Ends one series object: sorts and dedups its label names, then counts
 * it under its shape (interned pointers compare by identity). */
static int
finish_series(struct series_parse *sp)
{
    size_t n = sp->ncur, k = 0;
    const char **l = sp->cur;
    const char *name = sp->cur_name ? sp->cur_name : "";
    uint32_t h;
    size_t i;

    /* insertion sort: a series has a handful of labels */
    for (i = 1; i < n; i++) {
        const char *x = l[i];
        size_t j = i;
        while (j > 0 && strcmp(l[j - 1], x) > 0) {
            l[j] = l[j - 1];
            j--;
        }
        l[j] = x;
    }
    for (i = 0; i < n; i++)
        if (k == 0 || l[k - 1] != l[i])
            l[k++] = l[i];
    n = k;
    h = (uint32_t)(uintptr_t)name * 2654435761u;
    for (i = 0; i < n; i++)
        h = (h ^ (uint32_t)((uintptr_t)l[i] >> 3)) * 16777619u;
    h = h ? h : 1;

    if ((sp->nshapes + 1) * 2 > sp->shapes_cap) {
        size_t ncap = sp->shapes_cap ? sp->shapes_cap * 2 : 64;
        struct shape_ent *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return -1;
        for (size_t s = 0; s < sp->shapes_cap; s++) {
            if (!sp->shapes[s].hash)
                continue;
            for (i = sp->shapes[s].hash & (ncap - 1); ns[i].hash;
                 i = (i + 1) & (ncap - 1))
                ;
            ns[i] = sp->shapes[s];
        }
        free(sp->shapes);
        sp->shapes = ns;
        sp->shapes_cap = ncap;
    }
    for (i = h & (sp->shapes_cap - 1); sp->shapes[i].hash;
         i = (i + 1) & (sp->shapes_cap - 1)) {
        struct prom_shape *s = &sp->shapes[i].shape;
        if (sp->shapes[i].hash == h && s->name == name && s->nlabels == n &&
            (n == 0 || memcmp(s->labels, l, n * sizeof *l) == 0)) {
            s->count++;
            goto counted;
        }
    }
    {
        struct prom_shape *s = &sp->shapes[i].shape;
        s->labels = arena_alloc(sp->arena, (n ? n : 1) * sizeof *l);
        if (!s->labels)
            return -1;
        if (n)   /* a series with only __name__ has no label array */
            memcpy(s->labels, l, n * sizeof *l);
        s->nlabels = n;
        s->name = name;
        s->count = 1;
        sp->shapes[i].hash = h;
        sp->nshapes++;
    }
counted:
    sp->total++;
    sp->ncur = 0;
    sp->cur_name = NULL;
    return 0;
}

/* yajl callbacks: return 0 to stop the parse (the reason goes to perr,
 * or is an out-of-memory). Depth counts open maps/arrays. */
#define SP ((struct series_parse *)ctx)

static int
bad(struct series_parse *sp, const char *msg)
{
    if (!sp->perr[0])
        snprintf(sp->perr, sizeof sp->perr, "%s", msg);
    return 0;
}

/* A scalar value (string or not) at the current position. */
static int
sp_scalar(void *ctx, const unsigned char *s, size_t n, bool is_string)
{
    struct series_parse *sp = SP;

    if (sp->skip_depth)
        return 1;
    if (sp->depth == 0)
        return bad(sp, "response is not a JSON object");
    if (sp->in_series && sp->depth == 3) {
        if (!is_string)
            return bad(sp, "label value is not a string");
        if (sp->key_is_name) {
            sp->cur_name = intern(sp, s, n);
            if (!sp->cur_name)
                return bad(sp, "out of memory");
        }
        return 1;
    }
    if (sp->depth == 1) {
        switch (sp->top_key) {
        case TK_STATUS:
        case TK_ETYPE:
        case TK_ERROR:
            if (!is_string)
                return bad(sp, "status/errorType/error is not a string");
            if (sp->top_key == TK_STATUS)
                snprintf(sp->status, sizeof sp->status, "%.*s", (int)n, s);
            else if (sp->top_key == TK_ETYPE)
                snprintf(sp->etype, sizeof sp->etype, "%.*s", (int)n, s);
            else {
                free(sp->error_msg);
                sp->error_msg = strndup((const char *)s, n);
                if (!sp->error_msg)
                    return bad(sp, "out of memory");
            }
            break;
        case TK_DATA:
            if (s || is_string)  /* non-null scalar data */
                sp->data_bad = true;
            break;
        default:
            break;
        }
        return 1;
    }
    if (sp->in_data && sp->depth == 2)
        sp->data_bad = true;   /* a scalar where a label map belongs */
    return 1;
}

static int
cb_null(void *ctx)
{
    return sp_scalar(ctx, NULL, 0, false);
}

static int
cb_bool(void *ctx, int v)
{
    (void)v;
    return sp_scalar(ctx, (const unsigned char *)"b", 1, false);
}

static int
cb_number(void *ctx, const char *s, size_t n)
{
    return sp_scalar(ctx, (const unsigned char *)s, n, false);
}

static int
cb_string(void *ctx, const unsigned char *s, size_t n)
{
    struct series_parse *sp = SP;

    if (sp->skip_depth)
        return 1;
    /* kept: the top-level texts, and the series name (intern repairs it);
     * other label values are only checked to be strings */
    if (sp->depth == 1 && !(s = fix_utf8(&sp->fix, s, &n)))
        return bad(sp, "out of memory");
    return sp_scalar(ctx, s, n, true);
}

static int
open_container(struct series_parse *sp, bool is_map)
{
    sp->depth++;
    if (sp->skip_depth)
        return 1;
    if (sp->depth == 1) {
        if (!is_map)
            return bad(sp, "response is not a JSON object");
        sp->seen_top = true;
        return 1;
    }
    if (sp->depth == 2) {
        if (sp->top_key == TK_DATA && !is_map) {
            sp->in_data = true;
            return 1;
        }
        if (sp->top_key == TK_DATA)
            sp->data_bad = true;
        if (sp->top_key != TK_OTHER && sp->top_key != TK_DATA)
            return bad(sp, "status/errorType/error is not a string");
        sp->skip_depth = sp->depth;
        return 1;
    }
    if (sp->depth == 3 && sp->in_data) {
        if (!is_map) {
            sp->data_bad = true;
            sp->skip_depth = sp->depth;
            return 1;
        }
        sp->in_series = true;
        sp->ncur = 0;
        sp->cur_name = NULL;
        return 1;
    }
    if (sp->depth == 4 && sp->in_series)
        return bad(sp, "label value is not a string");
    sp->skip_depth = sp->depth;
    return 1;
}

static int
close_container(struct series_parse *sp)
{
    int d = sp->depth--;

    if (sp->skip_depth) {
        if (d == sp->skip_depth)
            sp->skip_depth = 0;
        return 1;
    }
    if (d == 3 && sp->in_series) {
        sp->in_series = false;
        if (finish_series(sp) != 0)
            return bad(sp, "out of memory");
    } else if (d == 2 && sp->in_data) {
        sp->in_data = false;
    }
    return 1;
}

static int
cb_start_map(void *ctx)
{
    return open_container(SP, true);
}

static int
cb_end_map(void *ctx)
{
    return close_container(SP);
}

static int
cb_start_array(void *ctx)
{
    return open_container(SP, false);
}

static int
cb_end_array(void *ctx)
{
    return close_container(SP);
}

static int
cb_map_key(void *ctx, const unsigned char *s, size_t n)
{
    struct series_parse *sp = SP;

    if (sp->skip_depth)
        return 1;
    /* keys other than label names are only compared with ASCII names,
     * which a key with invalid UTF-8 never equals, repaired or not */
    if (sp->depth == 1) {
        if (n == 6 && memcmp(s, "status", 6) == 0)
            sp->top_key = TK_STATUS;
        else if (n == 4 && memcmp(s, "data", 4) == 0)
            sp->top_key = TK_DATA;
        else if (n == 9 && memcmp(s, "errorType", 9) == 0)
            sp->top_key = TK_ETYPE;
        else if (n == 5 && memcmp(s, "error", 5) == 0)
            sp->top_key = TK_ERROR;
        else
            sp->top_key = TK_OTHER;
        return 1;
    }
    if (sp->in_series && sp->depth == 3) {
        const char *k;
        sp->key_is_name = n == 8 && memcmp(s, "__name__", 8) == 0;
        if (sp->key_is_name)
            return 1;
        k = intern(sp, s, n);
        if (!k)
            return bad(sp, "out of memory");
        if (sp->ncur == sp->capcur) {
            size_t ncap = sp->capcur ? sp->capcur * 2 : 16;
            const char **nc = realloc(sp->cur, ncap * sizeof *nc);
            if (!nc)
                return bad(sp, "out of memory");
            sp->cur = nc;
            sp->capcur = ncap;
        }
        sp->cur[sp->ncur++] = k;
    }
    return 1;
}

#undef SP

static const yajl_callbacks series_callbacks = {
    cb_null, cb_bool, NULL, NULL, cb_number, cb_string,
    cb_start_map, cb_map_key, cb_end_map, cb_start_array, cb_end_array,
};

/* Records yajl's message (one line) in perr. */
static void
note_yajl_error(struct series_parse *sp, const unsigned char *p, size_t n)
{
    unsigned char *msg;

    sp->parse_failed = true;
    if (sp->perr[0])
        return;
    msg = yajl_get_error(sp->yh, 0, p, n);
    snprintf(sp->perr, sizeof sp->perr, "%s", msg ? (char *)msg : "invalid JSON");
    sp->perr[strcspn(sp->perr, "\n")] = '\0';
    if (msg)
        yajl_free_error(sp->yh, msg);
}

static int
series_on_data(void *ctx, const char *p, size_t n)
{
    struct series_parse *sp = ctx;

    if (yajl_parse(sp->yh, (const unsigned char *)p, n) != yajl_status_ok) {
        note_yajl_error(sp, (const unsigned char *)p, n);
        return -1;
    }
    return 0;
}

static int
cmp_shape(const void *a, const void *b)
{
    const struct prom_shape *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    size_t n = x->nlabels < y->nlabels ? x->nlabels : y->nlabels;

    if (c)
        return c;
    for (size_t i = 0; i < n; i++)
        if ((c = strcmp(x->labels[i], y->labels[i])) != 0)
            return c;
    return x->nlabels < y->nlabels ? -1 : x->nlabels > y->nlabels;
}

void
prom_shapes_free(struct prom_shapes *s)
{
    if (!s)
        return;
    free(s->v);
    arena_free(s->arena);
    free(s);
}

int
prom_series(struct prom_client *p, struct http_client *hc, const char *match,
            double start, struct prom_shapes **out, char *err, size_t errlen)
{
    struct series_parse sp;
    struct http_resp resp;
    struct prom_shapes *res = NULL;
    char ts[40];
    const char *kv[5];
    int trc = 0, rc = -1;

    *out = NULL;
    memset(&sp, 0, sizeof sp);
    memset(&resp, 0, sizeof resp);
    sp.arena = calloc(1, sizeof *sp.arena);
    sp.yh = yajl_alloc(&series_callbacks, NULL, &sp);
    if (!sp.arena || !sp.yh) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    /* invalid UTF-8 is repaired, not rejected (fix_utf8) */
    yajl_config(sp.yh, yajl_dont_validate_strings, 1);
    prom_format_time(start, ts, sizeof ts);
    kv[0] = "match[]";
    kv[1] = match;
    kv[2] = "start";
    kv[3] = ts;
    kv[4] = NULL;
    if (do_call(p, hc, "/api/v1/series", kv, p->timeout_ms, SERIES_MAX_BODY,
                series_on_data, &sp, &resp, &trc, err, errlen) != 0) {
        if (trc != 0 && sp.perr[0] && resp.status != 0 &&
            status_ok(resp.status))
            snprintf(err, errlen, "bad_response: %s", sp.perr);
        goto done;
    }
    if (!sp.perr[0] &&
        yajl_complete_parse(sp.yh) != yajl_status_ok)
        note_yajl_error(&sp, NULL, 0);
    if (sp.perr[0]) {
        snprintf(err, errlen, "bad_response: %s", sp.perr);
        goto done;
    }
    if (strcmp(sp.status, "error") == 0) {
        api_error(err, errlen, sp.etype, sp.error_msg);
        goto done;
    }
    if (sp.data_bad) {
        snprintf(err, errlen,
                 "bad_response: series data is not a list of label sets");
        goto done;
    }
    res = calloc(1, sizeof *res);
    if (!res || (sp.nshapes && !(res->v = calloc(sp.nshapes, sizeof *res->v)))) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < sp.shapes_cap; i++)
        if (sp.shapes[i].hash)
            res->v[res->n++] = sp.shapes[i].shape;
    if (res->n > 1)
        qsort(res->v, res->n, sizeof *res->v, cmp_shape);
    res->total_series = sp.total;
    res->arena = sp.arena;
    sp.arena = NULL;
    *out = res;
    res = NULL;
    LOGV(6, "series %s: %zu series, %zu shapes", match, (*out)->total_series,
         (*out)->n);
    rc = 0;
done:
    prom_shapes_free(res);
    buf_free(&resp.body);
    if (sp.yh)
        yajl_free(sp.yh);
    arena_free(sp.arena);
    free(sp.strs.slot);
    free(sp.strs.hash);
    free(sp.shapes);
    free(sp.cur);
    free(sp.error_msg);
    free(sp.fix.p);
    return rc;
}

/* -- Instant queries ------------------------------------------------------ */

void
prom_result_free(struct prom_result *r)
{
    if (!r)
        return;
    /* The last holder frees; a release happens-after every read by the
     * other holders thanks to the acq_rel ordering. */
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    arena_free(r->arena);
    free(r);
}

static struct prom_result *
result_ref(struct prom_result *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

/* Prometheus timestamps: <sec>[.<frac>], fraction cut or padded to ms.
 * s is the number's JSON text, NUL-terminated. */
static int
parse_ts(const char *s, double *out)
{
    const char *dot, *p = s;
    char *end;
    long long sec = 0, ms = 0;
    int neg, nd = 0;

    /* JSON number text: [-]digits[.digits][e...]; up to 18 integer digits
     * are read here, longer ones by strtoll (its overflow check) */
    neg = s[0] == '-';
    if (neg)
        p++;
    for (; *p >= '0' && *p <= '9' && nd < 18; p++, nd++)
        sec = sec * 10 + (*p - '0');
    if (nd == 0 || (*p >= '0' && *p <= '9')) {
        errno = 0;
        sec = strtoll(s, &end, 10);
        if (errno || end == s)
            return -1;
        p = end;
    } else if (neg) {
        sec = -sec;
    }
    dot = p;
    if (*dot == '.') {
        int k = 0;
        for (dot++; k < 3; k++) {
            ms *= 10;
            if (*dot >= '0' && *dot <= '9')
                ms += *dot++ - '0';
        }
    } else if (*dot != '\0') {
        /* exponent form: fall back to the float value, cut to ms */
        double d = strtod(s, &end);
        if (*end)
            return -1;
        *out = trunc(d * 1000.0) / 1000.0;
        return 0;
    }
    *out = (double)sec + (neg ? -1.0 : 1.0) * (double)ms / 1000.0;
    return 0;
}

/* Exact powers of ten as doubles (10^0 .. 10^22). */
static const double pow10_exact[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* The common form of a sample value, [-]digits[.digits] with at most 15
 * significant digits, without strtod: the digits as an integer (exact
 * below 2^53) divided by an exact power of ten is correctly rounded, so
 * the result is strtod's. Returns -1 for any other form. */
static int
parse_simple_decimal(const char *s, double *out)
{
    const char *p = s;
    uint64_t mant = 0;
    int digits = 0, frac = 0;
    bool neg = false, dot = false;

    if (*p == '-') {
        neg = true;
        p++;
    }
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            if (++digits > 15)
                return -1;
            mant = mant * 10 + (uint64_t)(*p - '0');
            frac += dot;
        } else if (*p == '.' && !dot) {
            dot = true;
        } else {
            return -1;
        }
    }
    if (dot && frac == 0)
        return -1;                  /* "1." : leave it to strtod */
    *out = (double)mant / pow10_exact[frac];
    if (neg)
        *out = -*out;
    return 0;
}

/* A sample value: the whole (NUL-terminated) string is a Go float
 * ("NaN", "+Inf", "-Inf" included). */
static int
parse_value(const char *s, double *out)
{
    char *end;

    if (!*s)
        return -1;
    if (parse_simple_decimal(s, out) == 0)
        return 0;
    *out = strtod(s, &end);
    return *end ? -1 : 0;
}

struct kvp {
    const char *k, *v;
};

/* -- Instant-query answers (streaming) --------------------------------------
 *
 * The answer is parsed by yajl's callback parser as the body arrives, and
 * the samples are built straight into the result's arena: no JSON tree and
 * no buffered body. The outcome is the one a tree walk would give (what
 * this client did before): syntax errors first, then "not an object", then
 * status "error" (errorType/error), then the result type and shape, then
 * the first bad vector sample. Members are looked up as the tree walk did:
 * the first "status", "errorType", "error", "data", "resultType" and
 * "result" count, and within a sample the last "metric", "value" and
 * "histogram". The result may come before resultType (any key order is
 * valid JSON), so it is read both as a vector and as a scalar pair until
 * the end decides.
 *
 * Nesting (depth = containers open): 1 the answer, 2 data, 3 the result
 * array, 4 a sample, 5 its metric map / value pair / histogram pair. */

enum qtop { QT_OTHER, QT_STATUS, QT_DATA, QT_ETYPE, QT_ERROR };
enum qdata { QD_OTHER, QD_RTYPE, QD_RESULT };
enum qitem { QI_OTHER, QI_METRIC, QI_VALUE, QI_HIST };
enum qres { QR_ABSENT, QR_NULL, QR_ARRAY, QR_OTHER };
enum qmetric { QM_ABSENT, QM_NULL, QM_MAP, QM_BAD };
/* value: QV_ARRAY while open and after a good pair; a bad one is QV_BAD */
enum qvalue { QV_ABSENT, QV_NULL, QV_ARRAY, QV_BAD };
enum qhist { QH_ABSENT, QH_ARRAY, QH_OK, QH_BAD };

struct query_parse {
    struct prom_arena *arena;      /* the result's (borrowed) */
    yajl_handle yh;
    int depth, skip_depth;         /* skip_depth > 0: skipping that container */
    bool started, not_object, oom, parse_failed;
    char perr[256];                /* yajl's message (one line) */
    struct fixbuf fix;             /* strings repaired to valid UTF-8 */
    /* the answer object */
    enum qtop top_key;
    bool seen_status, seen_etype, seen_error, seen_data;
    bool is_error;                 /* status is "error" */
    char *etype, *error_msg;       /* malloc'd, NULL if absent/not strings */
    /* data */
    bool in_data;                  /* inside the first "data", a map */
    enum qdata data_key;
    bool seen_rtype, seen_result;
    char *rtype;                   /* malloc'd, NULL if absent/not a string */
    enum qres rkind;
    bool in_result;                /* inside the result array */
    size_t relems;                 /* its elements so far */
    /* the result read as a scalar [ts, "v"] */
    bool sc_bad;
    struct prom_sample scalar;
    /* the result read as a vector: samples so far (malloc'd; copied into
     * the arena at the end); vec_bad once a sample was invalid */
    bool vec_bad;
    struct prom_sample *smp;
    size_t nsmp, capsmp;
    /* the sample being read */
    enum qitem item_key;
    int open5;                     /* what is open at depth 5 (enum qitem) */
    enum qmetric metric;
    bool labels_bad;
    struct kvp *kv;                /* its labels, in arrival order */
    size_t nkv, capkv;
    const char *label_key;         /* key waiting for its value (arena) */
    const char **prev_keys;        /* previous sample's keys, arrival order */
    size_t nprev, capprev;
    enum qvalue value;
    size_t velems;
    double v_ts, v_val;
    enum qhist hist;
    size_t helems;
    double h_ts;
};

#define QP ((struct query_parse *)ctx)

/* Out of memory: stop the parse. */
static int
qp_oom(struct query_parse *qp)
{
    qp->oom = true;
    return 0;
}

/* The n bytes at s as a C string: in tmp when they fit, else in the arena.
 * NULL when out of memory. */
static const char *
qp_cstr(struct query_parse *qp, const unsigned char *s, size_t n, char *tmp,
        size_t tmplen)
{
    if (n < tmplen) {
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        return tmp;
    }
    return arena_strndup(qp->arena, (const char *)s, n);
}

/* A label key, shared with the previous sample's key at the same position
 * when equal (answers repeat the same label names sample after sample).
 * A new key is repaired (fix_utf8); the kept ones are valid UTF-8, so one
 * equal to them needs no check. NULL when out of memory. */
static const char *
qp_label_key(struct query_parse *qp, const unsigned char *s, size_t n)
{
    size_t i = qp->nkv;

    if (i < qp->nprev && strncmp(qp->prev_keys[i], (const char *)s, n) == 0 &&
        qp->prev_keys[i][n] == '\0')
        return qp->prev_keys[i];
    if (!(s = fix_utf8(&qp->fix, s, &n)))
        return NULL;
    return arena_strndup(qp->arena, (const char *)s, n);
}

/* Resets the per-sample state for a new sample map. */
static void
qp_item_start(struct query_parse *qp)
{
    qp->item_key = QI_OTHER;
    qp->metric = QM_ABSENT;
    qp->labels_bad = false;
    qp->nkv = 0;
    qp->label_key = NULL;
    qp->value = QV_ABSENT;
    qp->hist = QH_ABSENT;
}

static int
cmp_kvp_key(const struct kvp *a, const struct kvp *b)
{
    return strcmp(a->k, b->k);
}

/* A sample map closed: appends its sample, or marks the vector bad. */
static int
qp_item_end(struct query_parse *qp)
{
    struct prom_sample *s;
    size_t n = qp->nkv;

    if (qp->vec_bad)
        return 1;
    if (qp->metric == QM_BAD || qp->labels_bad || qp->value == QV_BAD ||
        ((qp->value == QV_ABSENT || qp->value == QV_NULL) &&
         qp->hist != QH_OK)) {
        qp->vec_bad = true;
        return 1;
    }
    if (qp->nsmp == qp->capsmp) {
        size_t ncap = qp->capsmp ? qp->capsmp * 2 : 64;
        struct prom_sample *ns = realloc(qp->smp, ncap * sizeof *ns);
        if (!ns)
            return qp_oom(qp);
        qp->smp = ns;
        qp->capsmp = ncap;
    }
    s = &qp->smp[qp->nsmp];
    memset(s, 0, sizeof *s);
    if (qp->value == QV_ARRAY) {
        s->ts = qp->v_ts;
        s->value = qp->v_val;
    } else {        /* native histogram sample: the value is 0, ts kept */
        s->ts = qp->h_ts;
        s->value = 0;
    }
    /* remember this sample's keys (arrival order) for the next one */
    if (n > qp->capprev) {
        const char **np = realloc(qp->prev_keys, n * sizeof *np);
        if (!np)
            return qp_oom(qp);
        qp->prev_keys = np;
        qp->capprev = n;
    }
    for (size_t i = 0; i < n; i++)
        qp->prev_keys[i] = qp->kv[i].k;
    qp->nprev = n;
    /* insertion sort by key (stable): Prometheus sends labels sorted, so
     * this is one pass */
    for (size_t i = 1; i < n; i++) {
        struct kvp x = qp->kv[i];
        size_t j = i;
        while (j > 0 && cmp_kvp_key(&qp->kv[j - 1], &x) > 0) {
            qp->kv[j] = qp->kv[j - 1];
            j--;
        }
        qp->kv[j] = x;
    }
    /* a key repeated in the metric map: the last value counts, as Go's
     * decoder keeps it (the stable sort left the copies in arrival order) */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && strcmp(qp->kv[k - 1].k, qp->kv[i].k) == 0)
            qp->kv[k - 1] = qp->kv[i];
        else
            qp->kv[k++] = qp->kv[i];
    }
    n = k;
    s->keys = arena_alloc(qp->arena, (n ? n : 1) * sizeof *s->keys);
    s->values = arena_alloc(qp->arena, (n ? n : 1) * sizeof *s->values);
    if (!s->keys || !s->values)
        return qp_oom(qp);
    for (size_t i = 0; i < n; i++) {
        s->keys[i] = qp->kv[i].k;
        s->values[i] = qp->kv[i].v;
    }
    s->nlabels = n;
    qp->nsmp++;
    return 1;
}

/* kind: 'n' null, 'b' bool, '#' number, 's' string; s/n the text. */
static int
qp_scalar(struct query_parse *qp, char kind, const unsigned char *s, size_t n)
{
    char tmp[128];
    const char *c;

    if (qp->skip_depth)
        return 1;
    switch (qp->depth) {
    case 0:                     /* the answer itself is a scalar */
        qp->started = true;
        qp->not_object = true;
        return 1;
    case 1:
        if (kind != 's')
            return 1;           /* data: a non-map leaves it unset */
        if (qp->top_key == QT_STATUS)
            qp->is_error = n == 5 && memcmp(s, "error", 5) == 0;
        else if (qp->top_key == QT_ETYPE &&
                 !(qp->etype = strndup((const char *)s, n)))
            return qp_oom(qp);
        else if (qp->top_key == QT_ERROR &&
                 !(qp->error_msg = strndup((const char *)s, n)))
            return qp_oom(qp);
        return 1;
    case 2:
        if (!qp->in_data)
            return 1;
        if (qp->data_key == QD_RTYPE && kind == 's') {
            if (!(qp->rtype = strndup((const char *)s, n)))
                return qp_oom(qp);
        } else if (qp->data_key == QD_RESULT) {
            qp->rkind = kind == 'n' ? QR_NULL : QR_OTHER;
        }
        return 1;
    case 3:                     /* a scalar element of the result array */
        if (!qp->in_result)
            return 1;
        qp->vec_bad = true;     /* a vector holds sample maps only */
        if (qp->relems == 0 && kind == '#') {
            if (!(c = qp_cstr(qp, s, n, tmp, sizeof tmp)))
                return qp_oom(qp);
            if (parse_ts(c, &qp->scalar.ts) != 0)
                qp->sc_bad = true;
        } else if (qp->relems == 1 && kind == 's') {
            if (!(c = qp_cstr(qp, s, n, tmp, sizeof tmp)))
                return qp_oom(qp);
            if (parse_value(c, &qp->scalar.value) != 0)
                qp->sc_bad = true;
        } else {
            qp->sc_bad = true;
        }
        qp->relems++;
        return 1;
    case 4:                     /* a member of a sample map */
        if (qp->item_key == QI_METRIC)
            qp->metric = kind == 'n' ? QM_NULL : QM_BAD;
        else if (qp->item_key == QI_VALUE)
            qp->value = kind == 'n' ? QV_NULL : QV_BAD;
        else if (qp->item_key == QI_HIST)
            qp->hist = QH_BAD;
        return 1;
    case 5:
        if (qp->open5 == QI_METRIC) {
            if (kind != 's' || !qp->label_key) {
                qp->labels_bad = true;
                return 1;
            }
            if (qp->labels_bad || qp->vec_bad)
                return 1;       /* the sample is lost anyway */
            if (qp->nkv == qp->capkv) {
                size_t ncap = qp->capkv ? qp->capkv * 2 : 16;
                struct kvp *nk = realloc(qp->kv, ncap * sizeof *nk);
                if (!nk)
                    return qp_oom(qp);
                qp->kv = nk;
                qp->capkv = ncap;
            }
            qp->kv[qp->nkv].k = qp->label_key;
            qp->kv[qp->nkv].v = arena_strndup(qp->arena, (const char *)s, n);
            if (!qp->kv[qp->nkv].v)
                return qp_oom(qp);
            qp->nkv++;
            qp->label_key = NULL;
        } else if (qp->open5 == QI_VALUE) {
            if (qp->value == QV_ARRAY) {
                if (qp->velems == 0 && kind == '#') {
                    if (!(c = qp_cstr(qp, s, n, tmp, sizeof tmp)))
                        return qp_oom(qp);
                    if (parse_ts(c, &qp->v_ts) != 0)
                        qp->value = QV_BAD;
                } else if (qp->velems == 1 && kind == 's') {
                    if (!(c = qp_cstr(qp, s, n, tmp, sizeof tmp)))
                        return qp_oom(qp);
                    if (parse_value(c, &qp->v_val) != 0)
                        qp->value = QV_BAD;
                } else {
                    qp->value = QV_BAD;
                }
            }
            qp->velems++;
        } else if (qp->open5 == QI_HIST) {
            if (qp->helems == 0) {
                if (kind != '#')
                    qp->hist = QH_BAD;
                else if (!(c = qp_cstr(qp, s, n, tmp, sizeof tmp)))
                    return qp_oom(qp);
                else if (parse_ts(c, &qp->h_ts) != 0)
                    qp->hist = QH_BAD;
            }
            qp->helems++;
        }
        return 1;
    default:
        return 1;
    }
}

static int
qcb_null(void *ctx)
{
    return qp_scalar(QP, 'n', NULL, 0);
}

static int
qcb_bool(void *ctx, int v)
{
    (void)v;
    return qp_scalar(QP, 'b', NULL, 0);
}

static int
qcb_number(void *ctx, const char *s, size_t n)
{
    return qp_scalar(QP, '#', (const unsigned char *)s, n);
}

/* qcb_string's way for a string that is not all ASCII (out of line, so
 * that the usual way stays a tail call). */
static int __attribute__((noinline))
qcb_string_fix(struct query_parse *qp, const unsigned char *s, size_t n)
{
    if (!(s = fix_utf8_slow(&qp->fix, s, &n)))
        return qp_oom(qp);
    return qp_scalar(qp, 's', s, n);
}

static int
qcb_string(void *ctx, const unsigned char *s, size_t n)
{
    struct query_parse *qp = QP;

    /* kept: label values, the error texts and the result type; a sample
     * value or timestamp with invalid UTF-8 fails to parse, repaired or
     * not */
    if ((qp->depth == 5 ? qp->open5 == QI_METRIC : qp->depth <= 2) &&
        !qp->skip_depth && !utf8_is_ascii((const char *)s, n))
        return qcb_string_fix(qp, s, n);
    return qp_scalar(qp, 's', s, n);
}

static int
qp_open(struct query_parse *qp, bool is_map)
{
    int d = qp->depth++;          /* d: the depth the container opens at */

    if (qp->skip_depth)
        return 1;
    switch (d) {
    case 0:
        qp->started = true;
        if (!is_map) {
            qp->not_object = true;
            break;
        }
        return 1;
    case 1:
        if (qp->top_key == QT_DATA && is_map) {
            qp->in_data = true;
            qp->data_key = QD_OTHER;
            return 1;
        }
        break;
    case 2:
        if (!qp->in_data || qp->data_key != QD_RESULT)
            break;
        if (!is_map) {
            qp->rkind = QR_ARRAY;
            qp->in_result = true;
            return 1;
        }
        qp->rkind = QR_OTHER;
        break;
    case 3:                       /* an element of the result array */
        if (!qp->in_result)
            break;
        qp->sc_bad = true;        /* a scalar pair holds no containers */
        qp->relems++;
        if (is_map) {
            qp_item_start(qp);
            return 1;
        }
        qp->vec_bad = true;
        break;
    case 4:                       /* a member of a sample map */
        if (!qp->in_result)
            break;
        qp->open5 = QI_OTHER;
        if (qp->item_key == QI_METRIC) {
            if (!is_map) {
                qp->metric = QM_BAD;
                break;
            }
            qp->metric = QM_MAP;
            qp->open5 = QI_METRIC;
            return 1;
        }
        if (qp->item_key == QI_VALUE) {
            if (is_map) {
                qp->value = QV_BAD;
                break;
            }
            qp->value = QV_ARRAY;
            qp->velems = 0;
            qp->open5 = QI_VALUE;
            return 1;
        }
        if (qp->item_key == QI_HIST) {
            if (is_map) {
                qp->hist = QH_BAD;
                break;
            }
            qp->hist = QH_ARRAY;
            qp->helems = 0;
            qp->open5 = QI_HIST;
            return 1;
        }
        break;
    case 5:                       /* inside metric / value / histogram */
        if (!qp->in_result)
            break;
        if (qp->open5 == QI_METRIC) {
            qp->labels_bad = true;
        } else if (qp->open5 == QI_VALUE) {
            qp->value = QV_BAD;
            qp->velems++;
        } else if (qp->open5 == QI_HIST) {
            if (qp->helems == 0)
                qp->hist = QH_BAD;
            qp->helems++;
        }
        break;
    default:
        break;
    }
    qp->skip_depth = qp->depth;
    return 1;
}

static int
qp_close(struct query_parse *qp)
{
    int d = qp->depth--;          /* d: the depth of the closing container */

    if (qp->skip_depth) {
        if (d == qp->skip_depth)
            qp->skip_depth = 0;
        return 1;
    }
    switch (d) {
    case 2:
        qp->in_data = false;
        break;
    case 3:
        qp->in_result = false;
        break;
    case 4:
        if (qp->in_result)
            return qp_item_end(qp);
        break;
    case 5:
        if (qp->open5 == QI_VALUE && qp->value == QV_ARRAY && qp->velems != 2)
            qp->value = QV_BAD;
        else if (qp->open5 == QI_HIST && qp->hist == QH_ARRAY)
            qp->hist = qp->helems == 2 ? QH_OK : QH_BAD;
        qp->open5 = QI_OTHER;
        break;
    default:
        break;
    }
    return 1;
}

static int
qcb_start_map(void *ctx)
{
    return qp_open(QP, true);
}

static int
qcb_end_map(void *ctx)
{
    return qp_close(QP);
}

static int
qcb_start_array(void *ctx)
{
    return qp_open(QP, false);
}

static int
qcb_end_array(void *ctx)
{
    return qp_close(QP);
}

#define KEY_IS(lit) (n == sizeof lit - 1 && memcmp(s, lit, n) == 0)

static int
qcb_map_key(void *ctx, const unsigned char *s, size_t n)
{
    struct query_parse *qp = QP;

    if (qp->skip_depth)
        return 1;
    /* keys other than label names are only compared with ASCII names,
     * which a key with invalid UTF-8 never equals, repaired or not */
    switch (qp->depth) {
    case 1:     /* the first of each member counts, as a tree lookup */
        qp->top_key = QT_OTHER;
        if (KEY_IS("status") && !qp->seen_status) {
            qp->seen_status = true;
            qp->top_key = QT_STATUS;
        } else if (KEY_IS("data") && !qp->seen_data) {
            qp->seen_data = true;
            qp->top_key = QT_DATA;
        } else if (KEY_IS("errorType") && !qp->seen_etype) {
            qp->seen_etype = true;
            qp->top_key = QT_ETYPE;
        } else if (KEY_IS("error") && !qp->seen_error) {
            qp->seen_error = true;
            qp->top_key = QT_ERROR;
        }
        break;
    case 2:
        if (!qp->in_data)
            break;
        qp->data_key = QD_OTHER;
        if (KEY_IS("resultType") && !qp->seen_rtype) {
            qp->seen_rtype = true;
            qp->data_key = QD_RTYPE;
        } else if (KEY_IS("result") && !qp->seen_result) {
            qp->seen_result = true;
            qp->data_key = QD_RESULT;
        }
        break;
    case 4:     /* the last of each sample member counts */
        if (!qp->in_result)
            break;
        qp->item_key = QI_OTHER;
        if (KEY_IS("metric")) {
            qp->item_key = QI_METRIC;
            qp->metric = QM_ABSENT;
            qp->labels_bad = false;
            qp->nkv = 0;
        } else if (KEY_IS("value")) {
            qp->item_key = QI_VALUE;
            qp->value = QV_ABSENT;
        } else if (KEY_IS("histogram")) {
            qp->item_key = QI_HIST;
            qp->hist = QH_ABSENT;
        }
        break;
    case 5:
        if (qp->in_result && qp->open5 == QI_METRIC && !qp->labels_bad &&
            !qp->vec_bad) {
            qp->label_key = qp_label_key(qp, s, n);
            if (!qp->label_key)
                return qp_oom(qp);
        }
        break;
    default:
        break;
    }
    return 1;
}

#undef KEY_IS
#undef QP

static const yajl_callbacks query_callbacks = {
    qcb_null, qcb_bool, NULL, NULL, qcb_number, qcb_string,
    qcb_start_map, qcb_map_key, qcb_end_map, qcb_start_array, qcb_end_array,
};

static void
qp_note_error(struct query_parse *qp, const unsigned char *p, size_t n)
{
    unsigned char *msg;

    qp->parse_failed = true;
    if (qp->perr[0] || qp->oom)
        return;
    msg = yajl_get_error(qp->yh, 0, p, n);
    snprintf(qp->perr, sizeof qp->perr, "%s", msg ? (char *)msg : "invalid JSON");
    qp->perr[strcspn(qp->perr, "\n")] = '\0';
    if (msg)
        yajl_free_error(qp->yh, msg);
}

static int
query_on_data(void *ctx, const char *p, size_t n)
{
    struct query_parse *qp = ctx;

    if (yajl_parse(qp->yh, (const unsigned char *)p, n) != yajl_status_ok) {
        qp_note_error(qp, (const unsigned char *)p, n);
        return -1;
    }
    return 0;
}

/* Sets up qp for one answer, with a fresh result arena. */
static int
qp_init(struct query_parse *qp)
{
    memset(qp, 0, sizeof *qp);
    qp->arena = calloc(1, sizeof *qp->arena);
    qp->yh = yajl_alloc(&query_callbacks, NULL, qp);
    if (!qp->arena || !qp->yh)
        return -1;
    /* as yajl_tree_parse, which this parser replaces */
    yajl_config(qp->yh, yajl_allow_comments, 1);
    /* invalid UTF-8 is repaired, not rejected (fix_utf8) */
    yajl_config(qp->yh, yajl_dont_validate_strings, 1);
    return 0;
}

static void
qp_fini(struct query_parse *qp)
{
    if (qp->yh)
        yajl_free(qp->yh);
    arena_free(qp->arena);
    free(qp->etype);
    free(qp->error_msg);
    free(qp->rtype);
    free(qp->smp);
    free(qp->kv);
    free(qp->prev_keys);
    free(qp->fix.p);
    memset(qp, 0, sizeof *qp);
}

/* After the whole body went through query_on_data: the result (its arena
 * taken from qp; one reference) or -1 with err. */
static int
qp_finish(struct query_parse *qp, double time, struct prom_result **out,
          char *err, size_t errlen)
{
    struct prom_result *r = NULL;
    const char *t;
    int rc = -1;

    *out = NULL;
    if (!qp->parse_failed && !qp->oom &&
        yajl_complete_parse(qp->yh) != yajl_status_ok)
        qp_note_error(qp, NULL, 0);
    if (qp->oom) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (qp->parse_failed) {
        snprintf(err, errlen, "bad_response: %s",
                 qp->perr[0] ? qp->perr : "invalid JSON");
        goto done;
    }
    if (qp->not_object || !qp->started) {
        snprintf(err, errlen, "bad_response: response is not a JSON object");
        goto done;
    }
    if (qp->is_error) {
        api_error(err, errlen, qp->etype, qp->error_msg);
        goto done;
    }
    t = qp->rtype ? qp->rtype : "";
    r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    atomic_init(&r->refs, 1);
    r->time = time;
    r->arena = qp->arena;
    qp->arena = NULL;
    if (strcmp(t, "vector") == 0) {
        size_t n = qp->nsmp;
        r->type = PROM_VECTOR;
        if (qp->rkind == QR_OTHER)
            goto badshape;
        if (qp->rkind == QR_ARRAY && qp->vec_bad) {
            snprintf(err, errlen, "bad_response: invalid vector sample");
            goto done;
        }
        r->samples = arena_alloc(r->arena, (n ? n : 1) * sizeof *r->samples);
        if (!r->samples) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        memset(r->samples, 0, sizeof *r->samples);
        if (n)
            memcpy(r->samples, qp->smp, n * sizeof *r->samples);
        r->n = n;
    } else if (strcmp(t, "scalar") == 0) {
        r->type = PROM_SCALAR;
        if (qp->rkind != QR_ARRAY || qp->relems != 2 || qp->sc_bad)
            goto badshape;
        r->samples = arena_alloc(r->arena, sizeof *r->samples);
        if (!r->samples) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        memset(r->samples, 0, sizeof *r->samples);
        r->samples[0].ts = qp->scalar.ts;
        r->samples[0].value = qp->scalar.value;
        r->n = 1;
    } else if (strcmp(t, "matrix") == 0) {
        r->type = PROM_MATRIX;
        if (qp->rkind == QR_OTHER)
            goto badshape;
    } else {
        snprintf(err, errlen, "unexpected value type \"%s\"", t);
        goto done;
    }
    *out = r;
    r = NULL;
    rc = 0;
    goto done;
badshape:
    snprintf(err, errlen, "bad_response: invalid %s result", t);
done:
    prom_result_free(r);
    return rc;
}

/* The query= time= [timeout=] parameters of one instant query, in kv
 * (NULL-terminated), with their text in ts/tmo; *timeout_ms is the HTTP
 * call's limit (the client's, cut to the caller's deadline). */
static void
query_params(const struct prom_client *p, const char *promql, double time,
             double timeout_s, const char *kv[7], char ts[40], char tmo[40],
             long *timeout_ms)
{
    *timeout_ms = p->timeout_ms;
    prom_format_time(time, ts, 40);
    kv[0] = "query";
    kv[1] = promql;
    kv[2] = "time";
    kv[3] = ts;
    kv[4] = NULL;
    if (timeout_s > 0) {
        prom_format_duration(timeout_s, tmo, 40);
        kv[4] = "timeout";
        kv[5] = tmo;
        kv[6] = NULL;
        /* the HTTP call may not outlive the caller's deadline either */
        if ((long)(timeout_s * 1000.0) < *timeout_ms)
            *timeout_ms = (long)(timeout_s * 1000.0) + 1;
    }
}

/* The outcome of one instant query whose call (do_call or pcall_finish)
 * returned call_rc, its transfer transport_rc; err holds the call's
 * reason when call_rc is -1. */
static int
query_outcome(struct query_parse *qp, const struct http_resp *resp,
              int call_rc, int transport_rc, double time,
              struct prom_result **out, char *err, size_t errlen)
{
    *out = NULL;
    if (call_rc == 0)
        return qp_finish(qp, time, out, err, errlen);
    /* a body the parser stopped: report why, as a full parse would */
    if (transport_rc != 0 && resp->status != 0 && status_ok(resp->status)) {
        if (qp->oom)
            snprintf(err, errlen, "out of memory");
        else if (qp->parse_failed)
            snprintf(err, errlen, "bad_response: %s",
                     qp->perr[0] ? qp->perr : "invalid JSON");
    }
    return -1;
}

/* One instant query on the wire, no sharing: *out gets a fresh result
 * holding one reference. The answer is parsed while it streams in. */
static int
query_once(struct prom_client *p, struct http_client *hc, const char *promql,
           double time, double timeout_s, struct prom_result **out,
           char *err, size_t errlen)
{
    struct http_resp resp;
    struct query_parse qp;
    char ts[40], tmo[40];
    const char *kv[7];
    long timeout_ms;
    int trc = 0, rc = -1;

    *out = NULL;
    memset(&resp, 0, sizeof resp);
    if (qp_init(&qp) != 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    query_params(p, promql, time, timeout_s, kv, ts, tmo, &timeout_ms);
    rc = do_call(p, hc, "/api/v1/query", kv, timeout_ms, QUERY_MAX_BODY,
                 query_on_data, &qp, &resp, &trc, err, errlen);
    rc = query_outcome(&qp, &resp, rc, trc, time, out, err, errlen);
done:
    qp_fini(&qp);
    buf_free(&resp.body);
    return rc;
}

/* -- Coalescing and the query cache ----------------------------------------- */

static long long
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Drops one reference to f; the last one frees it. p->mu held. */
static void
flight_release(struct flight *f)
{
    if (--f->refs > 0)
        return;
    prom_result_free(f->res);
    pthread_cond_destroy(&f->cv);
    free(f->key);
    free(f);
}

static struct flight *
flight_new(const char *key)
{
    struct flight *f = calloc(1, sizeof *f);
    pthread_condattr_t ca;

    if (!f)
        return NULL;
    f->key = strdup(key);
    if (!f->key) {
        free(f);
        return NULL;
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    f->refs = 1;
    return f;
}

/* Removes the oldest cache entry. p->mu held, cache non-empty. */
static void
cache_pop(struct prom_client *p)
{
    struct centry *e = p->fifo_head, **pp;

    p->fifo_head = e->qnext;
    if (!p->fifo_head)
        p->fifo_tail = NULL;
    for (pp = &p->buckets[e->hash % NBUCKETS]; *pp != e; pp = &(*pp)->hnext)
        ;
    *pp = e->hnext;
    p->ncache--;
    prom_result_free(e->res);
    free(e->key);
    free(e);
}

/* A live cached answer for key (one new reference), or NULL. p->mu held. */
static struct prom_result *
cache_get(struct prom_client *p, const char *key, long long now)
{
    uint32_t h = hash_bytes((const unsigned char *)key, strlen(key));

    for (struct centry *e = p->buckets[h % NBUCKETS]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e->expires_ms > now ? result_ref(e->res) : NULL;
    return NULL;
}

/* Caches res (takes a new reference) for the TTL. Every entry has the same
 * TTL, so the FIFO is in expiry order: expired entries are all at its head.
 * A full cache drops its oldest entries. p->mu held. */
static void
cache_put(struct prom_client *p, const char *key, struct prom_result *res,
          long long now)
{
    uint32_t h = hash_bytes((const unsigned char *)key, strlen(key));
    struct centry *e;

    while (p->fifo_head &&
           (p->fifo_head->expires_ms <= now || p->ncache >= p->cache_max))
        cache_pop(p);
    for (e = p->buckets[h % NBUCKETS]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return;    /* a live answer is there already */
    e = calloc(1, sizeof *e);
    if (!e || !(e->key = strdup(key))) {
        free(e);
        return;        /* not caching is always correct */
    }
    e->hash = h;
    e->expires_ms = now + p->cache_ttl_ms;
    e->res = result_ref(res);
    e->hnext = p->buckets[h % NBUCKETS];
    p->buckets[h % NBUCKETS] = e;
    if (p->fifo_tail)
        p->fifo_tail->qnext = e;
    else
        p->fifo_head = e;
    p->fifo_tail = e;
    p->ncache++;
}

/* Waits (p->mu held) for the flight f this caller joined, until
 * deadline_ms (monotonic), and drops the caller's reference. */
static int
flight_wait(struct prom_client *p, struct flight *f, long long deadline_ms,
            long wait_ms, struct prom_result **out, char *err, size_t errlen)
{
    struct timespec ts = { .tv_sec = deadline_ms / 1000,
                           .tv_nsec = (long)(deadline_ms % 1000) * 1000000L };
    int w = 0, rc = -1;

    while (!f->done && w != ETIMEDOUT)
        w = pthread_cond_timedwait(&f->cv, &p->mu, &ts);
    if (!f->done) {
        snprintf(err, errlen, "timeout: no answer from Prometheus within "
                 "%ldms (waiting for an identical query)", wait_ms);
    } else if (f->rc == 0) {
        p->stats.coalesced++;
        *out = result_ref(f->res);
        rc = 0;
    } else {
        p->stats.coalesced++;
        snprintf(err, errlen, "%s", f->err);
    }
    flight_release(f);
    return rc;
}

/* The leader of flight f publishes its outcome (p->mu held): res (the
 * leader's reference, taken over) or err; wakes the waiters, caches a
 * success and gives the leader its own reference in *out. */
static void
flight_finish(struct prom_client *p, struct flight *f, const char *promql,
              int rc, struct prom_result *res, const char *err,
              struct prom_result **out)
{
    for (struct flight **pp = &p->flights; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    f->done = true;
    f->rc = rc;
    if (rc == 0) {
        f->res = res;                 /* the flight's reference */
        *out = result_ref(res);
        if (p->cache_ttl_ms > 0)
            cache_put(p, promql, res, mono_ms());
    } else {
        snprintf(f->err, sizeof f->err, "%s", err);
    }
    pthread_cond_broadcast(&f->cv);
    flight_release(f);
}

/* How a query of a call is answered: from the cache, by joining an
 * identical request in flight, or by a request of its own. */
enum qrole { ROLE_CACHED, ROLE_JOIN, ROLE_LEAD };

/* p->mu held. Counts the query and decides its role: ROLE_CACHED sets *out;
 * ROLE_JOIN and ROLE_LEAD set *fp (ROLE_LEAD: a new flight, or NULL when out of
 * memory, which makes an unshared call). */
static enum qrole
query_role(struct prom_client *p, const char *promql, struct prom_result **out,
           struct flight **fp)
{
    struct flight *f;

    *fp = NULL;
    p->stats.queries++;
    if (p->cache_ttl_ms > 0) {
        *out = cache_get(p, promql, mono_ms());
        if (*out) {
            p->stats.cache_hits++;
            metrics_add(METRICS_CACHE_LOOKUPS, "query", "hit", 1);
            return ROLE_CACHED;
        }
        metrics_add(METRICS_CACHE_LOOKUPS, "query", "miss", 1);
    }
    for (f = p->flights; f; f = f->next)
        if (strcmp(f->key, promql) == 0)
            break;
    if (f) {
        f->refs++;
        *fp = f;
        return ROLE_JOIN;
    }
    f = flight_new(promql);
    if (f) {
        f->next = p->flights;
        p->flights = f;
    }
    p->stats.requests++;
    *fp = f;
    return ROLE_LEAD;
}

/* Keyed by the PromQL alone: time= differs between any two calls (it is
 * "now"), and a caller that joins gets an answer evaluated at most one
 * call's duration earlier. The waiter's own deadline bounds its wait. */
int
prom_query(struct prom_client *p, struct http_client *hc, const char *promql,
           double time, double timeout_s, struct prom_result **out,
           char *err, size_t errlen)
{
    struct flight *f;
    struct prom_result *res = NULL;
    long wait_ms = timeout_s > 0 ? (long)(timeout_s * 1000.0) + 1
                                 : p->timeout_ms;
    enum qrole role;
    int rc = -1;

    *out = NULL;
    pthread_mutex_lock(&p->mu);
    role = query_role(p, promql, out, &f);
    if (role == ROLE_CACHED) {
        pthread_mutex_unlock(&p->mu);
        LOGV(5, "query answered from the cache: %s", promql);
        return 0;
    }
    if (role == ROLE_JOIN) {
        rc = flight_wait(p, f, mono_ms() + wait_ms, wait_ms, out, err, errlen);
        pthread_mutex_unlock(&p->mu);
        LOGV(5, "query shared an in-flight request (rc %d): %s", rc, promql);
        return rc;
    }
    pthread_mutex_unlock(&p->mu);

    rc = query_once(p, hc, promql, time, timeout_s, &res, err, errlen);
    if (!f) {   /* out of memory for the table: an unshared call */
        *out = res;
        return rc;
    }
    pthread_mutex_lock(&p->mu);
    flight_finish(p, f, promql, rc, res, err, out);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* One query of a prom_query_many call. */
struct mq {
    enum qrole role;
    struct flight *f;
    struct query_parse qp;
    struct pcall pc;
    bool started;                   /* pc prepared; calls[call] is its transfer */
    size_t call;
    int rc;
};

int
prom_query_many(struct prom_client *p, struct http_client *hc, size_t n,
                const char *const *promqls, double time, double timeout_s,
                struct prom_result **outs, char *errs, size_t errlen)
{
    long wait_ms = timeout_s > 0 ? (long)(timeout_s * 1000.0) + 1
                                 : p->timeout_ms;
    long long deadline = mono_ms() + wait_ms;
    struct mq *q = calloc(n ? n : 1, sizeof *q);
    struct http_call *calls = calloc(n ? n : 1, sizeof *calls);
    char ts[40], tmo[40];
    const char *kv[7];
    long timeout_ms;
    size_t ncalls = 0;
    int failed = 0;

    for (size_t i = 0; i < n; i++) {
        outs[i] = NULL;
        errs[i * errlen] = '\0';
    }
    if (!q || !calls) {
        for (size_t i = 0; i < n; i++)
            snprintf(errs + i * errlen, errlen, "out of memory");
        free(q);
        free(calls);
        return (int)n;
    }
    /* 1. roles: the cache, identical requests in flight (this batch's
     * included: a repeated query joins its first occurrence) */
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++)
        q[i].role = query_role(p, promqls[i], &outs[i], &q[i].f);
    pthread_mutex_unlock(&p->mu);

    /* 2. this call's own requests, concurrently; each answer is parsed as
     * it streams in */
    query_params(p, "", time, timeout_s, kv, ts, tmo, &timeout_ms);
    for (size_t i = 0; i < n; i++) {
        char *err = errs + i * errlen;
        q[i].rc = -1;
        if (q[i].role != ROLE_LEAD)
            continue;
        if (qp_init(&q[i].qp) != 0) {
            snprintf(err, errlen, "out of memory");
            continue;
        }
        kv[1] = promqls[i];
        if (pcall_prepare(p, "/api/v1/query", kv, timeout_ms, QUERY_MAX_BODY,
                          query_on_data, &q[i].qp, &q[i].pc, err, errlen) != 0)
            continue;
        q[i].started = true;
        q[i].call = ncalls;
        calls[ncalls++].req = &q[i].pc.req;
    }
    http_client_do_many(hc, calls, ncalls, PROM_MANY_PARALLEL);
    for (size_t i = 0; i < n; i++) {
        char *err = errs + i * errlen;
        struct prom_result *res = NULL;
        if (q[i].role != ROLE_LEAD)
            continue;
        if (q[i].started) {
            struct http_call *c = &calls[q[i].call];
            int trc = c->rc;
            if (trc != 0)
                snprintf(err, errlen, "%s", c->err);
            int crc = pcall_finish(&q[i].pc, &c->resp, trc, err, errlen);
            q[i].rc = query_outcome(&q[i].qp, &c->resp, crc, trc, time, &res,
                                    err, errlen);
            buf_free(&c->resp.body);
        }
        qp_fini(&q[i].qp);
        /* 3. publish to the flight (waiters, cache) */
        if (!q[i].f) {
            outs[i] = res;
            continue;
        }
        pthread_mutex_lock(&p->mu);
        flight_finish(p, q[i].f, promqls[i], q[i].rc, res, err, &outs[i]);
        pthread_mutex_unlock(&p->mu);
    }

    /* 4. the joined ones: after our own requests are published, so that a
     * query repeated within the batch, or two batches each waiting for the
     * other's query, never wait on themselves */
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++)
        if (q[i].role == ROLE_JOIN)
            q[i].rc = flight_wait(p, q[i].f, deadline, wait_ms, &outs[i],
                                  errs + i * errlen, errlen);
        else if (q[i].role == ROLE_CACHED)
            q[i].rc = 0;
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < n; i++)
        if (q[i].rc != 0)
            failed++;
    LOGV(5, "%zu queries: %zu requests, %d failed", n, ncalls, failed);
    free(q);
    free(calls);
    return failed;
}

void
prom_stats(struct prom_client *p, struct prom_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->stats;
    pthread_mutex_unlock(&p->mu);
}

/* -- Start-up checks of --prometheus-ca-file and the client pair ----------- */

/* PA's makePrometheusCAClient checks: the CA file must hold a certificate
 * x509.CertPool.AppendCertsFromPEM takes; the client pair is read (both
 * files, then parsed) as tls.LoadX509KeyPair does. */
int
prom_check_tls_files(const char *ca_file, const char *cert_file,
                     const char *key_file, char *err, size_t errlen)
{
    char why[512];
    char *text = NULL, *key = NULL;
    size_t len = 0, key_len = 0;
    int rc = -1;

    if (ca_file && *ca_file) {
        text = buf_read_file(ca_file, 16u << 20, &len, why, sizeof why);
        if (!text) {
            snprintf(err, errlen, "failed to read prometheus-ca-file: %s", why);
            goto done;
        }
        int n = gotls_count_certs(text, len);
        if (n < 0) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        if (n == 0) {
            snprintf(err, errlen, "no certs found in prometheus-ca-file");
            goto done;
        }
        free(text);
        text = NULL;
    }
    if (cert_file && *cert_file && key_file && *key_file) {
        if (!(text = buf_read_file(cert_file, 16u << 20, &len, why,
                                   sizeof why)) ||
            !(key = buf_read_file(key_file, 16u << 20, &key_len, why,
                                  sizeof why)) ||
            gotls_x509_key_pair(text, len, key, key_len, why,
                                sizeof why) != 0) {
            snprintf(err, errlen, "failed to read TLS key pair: %s", why);
            goto done;
        }
    }
    rc = 0;
done:
    free(text);
    if (key) {
        explicit_bzero(key, key_len);   /* key material */
        free(key);
    }
    return rc;
}

const char *
prom_sample_label(const struct prom_sample *s, const char *key)
{
    size_t lo = 0, hi = s->nlabels;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(key, s->keys[mid]);
        if (!r)
            return s->values[mid];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}
