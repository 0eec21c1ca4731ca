/* server.c: the HTTP(S) listener (see server.h) on libmicrohttpd.
 * The only file that includes microhttpd.h and gnutls.h. Design:
 * - server_new binds and listens itself (early EADDRINUSE, Go's message,
 *   SO_REUSEPORT/SO_REUSEADDR) and hands the socket to MHD later with
 *   MHD_OPTION_LISTEN_SOCKET.
 * - MHD runs an internal epoll thread pool. Each pool thread lazily gets a
 *   thread context from cfg->thread_init, kept in a pthread key whose
 *   destructor calls cfg->thread_fini on that same thread when MHD joins
 *   its pool in MHD_stop_daemon.
 * - MHD's own URL unescaping is replaced by an identity callback so the
 *   handler sees the raw path; decoding (path: %XX only; query: form) is
 *   ours (httputil), with malformed path escapes rejected as 400.
 * - Bodies are never read: uploaded bytes are counted and dropped; past
 *   max_upload the request is answered 413.
 * - The serving certificate is handed to GnuTLS by a callback on each
 *   handshake, so server_set_certificate can swap it while serving.
 * - --tls-cipher-suites is exact: GnuTLS priority strings enable
 *   components (kx x cipher x mac), which would also allow unlisted
 *   combinations, so a ClientHello hook narrows each session to the first
 *   listed suite the client offers (server precedence; Go uses its own order).
 * Ownership: struct server owns the socket, the parsed certificate pairs
 * (current and retired), the trust PEM and the priority string. Per-request
 * state (struct req_state) is owned by MHD's req_cls slot and freed in the
 * completion callback. */
#include "server.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include "certs.h"
#include "httputil.h"
#include "log.h"
#include "status.h"

struct suite;

struct server {
    struct server_config cfg;    /* string members point at copies below */
    char *bind_address;
    char *trust_pem;
    char *priorities;
    /* --tls-cipher-suites, exactly: GnuTLS priorities are per component
     * (kx x cipher x mac), so a per-handshake hook narrows them to one
     * listed suite the client offers (see hello_hook). */
    bool restrict_suites;
    const struct suite *allowed[64];
    size_t nallowed;
    char versions[96];           /* ":+VERS-TLS1.2:+VERS-TLS1.3" */
    int fd;                      /* listening socket, -1 once handed back */
    int family;
    int port;
    struct MHD_Daemon *daemon;
    pthread_mutex_t cert_mu;     /* guards cert (not retired) */
    struct cert_pair *cert;      /* served to new handshakes */
    struct cert_pair *retired;   /* replaced pairs: a handshake may still
                                  * use them, so they live until free */
    pthread_key_t key;           /* per-thread struct thread_slot */
    bool key_ok;
    bool stopped;
    atomic_uint inflight;
    /* Worker pool (cfg.workers > 0): MHD's threads only do I/O; each
     * request is suspended and handed to a worker, so a handler waiting on
     * Prometheus never stalls the other connections of its I/O thread, and
     * requests go to whichever worker is free. One worker starts with the
     * server; enqueue starts another (up to cfg.workers) when a request
     * finds no idle worker to take it. So the pool, and the thread
     * contexts its workers build (HTTP clients, a rules engine), grow to
     * the peak concurrency seen rather than to cfg.workers: sequential
     * traffic such as health probes, which the condition variable would
     * hand to every waiting worker in turn, keeps one worker. */
    pthread_t *workers;          /* cfg.workers slots */
    atomic_uint nworkers;        /* started; changed under qmu */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    struct req_state *qhead, *qtail;
    unsigned nqueued;            /* requests in the queue (qmu) */
    unsigned nidle;              /* workers waiting for one (qmu) */
    bool spawn_failed;           /* logged once (qmu) */
    bool qstop;
    char worker_name[16];        /* of the thread that started the server:
                                  * workers started later by an I/O thread
                                  * take it rather than "MHD-worker" */
};

/* A parsed serving certificate chain and key, as GnuTLS wants them from
 * the certificate callback. Immutable once published. */
#define CERT_MAX_CHAIN 16
struct cert_pair {
    gnutls_pcert_st pcerts[CERT_MAX_CHAIN];
    unsigned int n;
    gnutls_privkey_t key;
    struct cert_pair *next;      /* retired list link */
};

/* Value of the pthread key: the thread context of one pool thread. */
struct thread_slot {
    struct server *s;
    void *tctx;
};

/* Collects decoded query parameters. A pair whose escapes are malformed
 * (or decode to NUL) is dropped, as Go's url.ParseQuery does. */
struct param_list {
    struct server_param *v;
    size_t n, cap;
    bool oom;
};

/* One request, from MHD's first callback to its completion callback. With
 * a worker pool the request and response live here while the connection
 * is suspended; the worker owns them from enqueue until it resumes the
 * connection, the MHD thread before and after. */
struct req_state {
    int64_t start_ms;
    size_t uploaded;
    bool rejected;               /* a 413 was queued during the upload */
    bool prepared;               /* req/resp/pl/path below are initialised */
    bool done;                   /* a worker answered; send resp */
    struct req_state *next;      /* worker queue link */
    struct MHD_Connection *conn;
    struct server_request req;
    struct server_response resp;
    struct param_list pl;
    struct buf path;
    char remote[INET6_ADDRSTRLEN + 16];
};

/* -- Small helpers ---------------------------------------------------- */

int64_t
server_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
server_request_remaining_ms(const struct server_request *req,
                            int64_t timeout_ms)
{
    return req->start_ms + timeout_ms - server_now_ms();
}

static char *
dup_or_null(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

/* -- TLS priorities ---------------------------------------------------- */

/* Go cipher-suite name -> GnuTLS priority components (key exchange, bulk
 * cipher, MAC). GnuTLS priorities are per component, so a suite list
 * enables the cross product of its components for TLS <= 1.2; close
 * enough for operators' allow-lists and never weaker than the union. */
struct suite {
    const char *go;
    const char *kx, *cipher, *mac;
    unsigned id;                 /* IANA code point (TLS <= 1.2 suites) */
    bool insecure;
    bool tls13;                  /* TLS 1.3 suite: accepted, ignored */
    bool unsupported;            /* RC4: accepted with a warning, skipped */
};

static const struct suite suites[] = {
    { "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA", "AES-128-GCM",
      "AEAD", 0xC02F, false, false, false },
    { "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA", "AES-256-GCM",
      "AEAD", 0xC030, false, false, false },
    { "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA", "AES-128-GCM",
      "AEAD", 0xC02B, false, false, false },
    { "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA", "AES-256-GCM",
      "AEAD", 0xC02C, false, false, false },
    { "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA",
      "CHACHA20-POLY1305", "AEAD", 0xCCA8, false, false, false },
    { "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA",
      "CHACHA20-POLY1305", "AEAD", 0xCCA8, false, false, false },
    { "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA",
      "CHACHA20-POLY1305", "AEAD", 0xCCA9, false, false, false },
    { "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "ECDHE-ECDSA",
      "CHACHA20-POLY1305", "AEAD", 0xCCA9, false, false, false },
    { "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA", "AES-128-CBC",
      "SHA1", 0xC013, false, false, false },
    { "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA", "AES-256-CBC",
      "SHA1", 0xC014, false, false, false },
    { "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA", "AES-128-CBC",
      "SHA1", 0xC009, false, false, false },
    { "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA", "AES-256-CBC",
      "SHA1", 0xC00A, false, false, false },
    { "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA", "AES-128-CBC",
      "SHA256", 0xC027, true, false, false },
    { "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA",
      "AES-128-CBC", "SHA256", 0xC023, true, false, false },
    { "TLS_RSA_WITH_AES_128_GCM_SHA256", "RSA", "AES-128-GCM", "AEAD", 0x009C,
      false, false, false },
    { "TLS_RSA_WITH_AES_256_GCM_SHA384", "RSA", "AES-256-GCM", "AEAD", 0x009D,
      false, false, false },
    { "TLS_RSA_WITH_AES_128_CBC_SHA", "RSA", "AES-128-CBC", "SHA1", 0x002F,
      false, false, false },
    { "TLS_RSA_WITH_AES_256_CBC_SHA", "RSA", "AES-256-CBC", "SHA1", 0x0035,
      false, false, false },
    { "TLS_RSA_WITH_AES_128_CBC_SHA256", "RSA", "AES-128-CBC", "SHA256", 0x003C,
      true, false, false },
    { "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "ECDHE-RSA", "3DES-CBC", "SHA1", 0xC012,
      true, false, false },
    { "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "RSA", "3DES-CBC", "SHA1", 0x000A,
      true, false, false },
    { "TLS_ECDHE_RSA_WITH_RC4_128_SHA", NULL, NULL, NULL, 0, true, false, true },
    { "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", NULL, NULL, NULL, 0, true, false,
      true },
    { "TLS_RSA_WITH_RC4_128_SHA", NULL, NULL, NULL, 0, true, false, true },
    { "TLS_AES_128_GCM_SHA256", NULL, NULL, NULL, 0, false, true, false },
    { "TLS_AES_256_GCM_SHA384", NULL, NULL, NULL, 0, false, true, false },
    { "TLS_CHACHA20_POLY1305_SHA256", NULL, NULL, NULL, 0, false, true, false },
};

/* Appends "+item" to out unless already present in the ':'-joined list. */
static int
add_unique(struct buf *list, const char *item)
{
    char tok[64];

    snprintf(tok, sizeof tok, ":+%s:", item);
    if (list->data != NULL && strstr(list->data, tok) != NULL)
        return 0;
    if (list->len == 0 && buf_addc(list, ':') < 0)
        return -1;
    return buf_addf(list, "+%s:", item);
}

int
server_tls_priorities(const char *min_version, const char *cipher_suites,
                      struct buf *out, char *err, size_t errlen)
{
    static const char *const vers[] = {
        "VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13",
    };
    static const char *const gvers[] = {
        "+VERS-TLS1.0", "+VERS-TLS1.1", "+VERS-TLS1.2", "+VERS-TLS1.3",
    };
    struct buf kx, ci, mac;
    int min = 2, rc = -1;
    const char *p;

    /* Every failure below that does not write its own message is an
     * allocation failure. */
    snprintf(err, errlen, "out of memory");
    buf_init(&kx, 4096);
    buf_init(&ci, 4096);
    buf_init(&mac, 4096);
    if (min_version != NULL && min_version[0] != '\0') {
        min = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(min_version, vers[i]) == 0)
                min = i;
        if (min < 0) {
            snprintf(err, errlen, "unknown tls version \"%s\"", min_version);
            goto done;
        }
    }
    /* Every comma-separated entry counts, empty ones too (Go's CSV flag
     * turns "a," into "a" and "", and "" is an unknown suite). */
    p = cipher_suites != NULL && cipher_suites[0] != '\0' ? cipher_suites
                                                           : NULL;
    while (p != NULL) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const struct suite *su = NULL;

        for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
            if (strlen(suites[i].go) == n &&
                strncmp(suites[i].go, p, n) == 0)
                su = &suites[i];
        if (su == NULL) {
            snprintf(err, errlen, "Cipher suite %.*s not supported or "
                     "doesn't exist", (int)n, p);
            goto done;
        }
        if (su->insecure)
            LOGW("Use of insecure cipher '%s' detected.", su->go);
        if (su->kx != NULL &&
            (add_unique(&kx, su->kx) < 0 || add_unique(&ci, su->cipher) < 0 ||
             add_unique(&mac, su->mac) < 0)) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        p = comma ? comma + 1 : NULL;
    }
    if (buf_adds(out, "NORMAL:-VERS-ALL") < 0)
        goto done;
    for (int i = min; i < 4; i++)
        if (buf_addf(out, ":%s", gvers[i]) < 0)
            goto done;
    if (kx.len > 0 || (cipher_suites != NULL && cipher_suites[0] != '\0')) {
        /* Restrict TLS <= 1.2 to the listed components; TLS 1.3 suites
         * stay enabled (Go never lets them be configured). */
        if (buf_adds(out, ":-CIPHER-ALL:-MAC-ALL:-KX-ALL") < 0 ||
            buf_adds(out, ":+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305"
                          ":+AEAD") < 0 ||
            (kx.len > 0 && buf_add(out, kx.data, kx.len - 1) < 0) ||
            (ci.len > 0 && buf_add(out, ci.data, ci.len - 1) < 0) ||
            (mac.len > 0 && buf_add(out, mac.data, mac.len - 1) < 0))
            goto done;
        /* TLS 1.3 key exchange needs an (EC)DHE KX enabled in GnuTLS. */
        if (kx.len == 0 && buf_adds(out, ":+ECDHE-RSA:+ECDHE-ECDSA") < 0)
            goto done;
    }
    {
        gnutls_priority_t prio;
        const char *where = NULL;
        int e = gnutls_priority_init(&prio, out->data, &where);

        if (e != GNUTLS_E_SUCCESS) {
            snprintf(err, errlen, "invalid TLS priorities \"%s\": %s",
                     out->data, gnutls_strerror(e));
            goto done;
        }
        gnutls_priority_deinit(prio);
    }
    rc = 0;
done:
    buf_free(&kx);
    buf_free(&ci);
    buf_free(&mac);
    return rc;
}

/* -- Listener ----------------------------------------------------------- */

static void
format_addr(char *out, size_t n, const char *host, int port)
{
    if (strchr(host, ':') != NULL)
        snprintf(out, n, "[%s]:%d", host, port);
    else
        snprintf(out, n, "%s:%d", host, port);
}

/* Opens, binds and listens. Wildcard addresses get a dual-stack IPv6
 * socket (Go's "0.0.0.0" listens on every family), falling back to IPv4
 * when the host has no IPv6. */
static int
open_listener(struct server *s, char *err, size_t errlen)
{
    const char *host = s->bind_address ? s->bind_address : "";
    bool wildcard = host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 ||
                    strcmp(host, "::") == 0;
    struct sockaddr_storage ss;
    socklen_t sl;
    char shown[128];
    int one = 1, zero = 0, fd = -1;

    format_addr(shown, sizeof shown, host[0] ? host : "0.0.0.0", s->cfg.port);
    memset(&ss, 0, sizeof ss);
    if (wildcard) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;

        fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
            a6->sin6_family = AF_INET6;
            a6->sin6_addr = in6addr_any;
            a6->sin6_port = htons((uint16_t)s->cfg.port);
            sl = sizeof *a6;
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        } else {
            struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;

            a4->sin_family = AF_INET;
            a4->sin_addr.s_addr = htonl(INADDR_ANY);
            a4->sin_port = htons((uint16_t)s->cfg.port);
            sl = sizeof *a4;
        }
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;

        if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
            a4->sin_family = AF_INET;
            a4->sin_port = htons((uint16_t)s->cfg.port);
            sl = sizeof *a4;
        } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
            a6->sin6_family = AF_INET6;
            a6->sin6_port = htons((uint16_t)s->cfg.port);
            sl = sizeof *a6;
        } else {
            snprintf(err, errlen, "failed to create listener: failed to "
                     "listen on %s: invalid bind address", shown);
            return -1;
        }
    }
    if (fd < 0)
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (ss.ss_family == AF_INET6 && !wildcard)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    /* Go sets SO_REUSEADDR on listeners by default on Linux. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s->cfg.reuse_port &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 1024) < 0)
        goto fail;
    sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        s->port = ntohs(ss.ss_family == AF_INET6
                        ? ((struct sockaddr_in6 *)&ss)->sin6_port
                        : ((struct sockaddr_in *)&ss)->sin_port);
    s->fd = fd;
    s->family = ss.ss_family;
    return 0;
fail:
    {
        int e = errno;
        char why[128];

        buf_go_strerror(why, sizeof why, e);
        snprintf(err, errlen, "failed to create listener: failed to listen "
                 "on %s: listen tcp %s: bind: %s", shown, shown, why);
        if (fd >= 0)
            close(fd);
    }
    return -1;
}

/* -- Serving certificate ---------------------------------------------------- */

static void
cert_pair_free(struct cert_pair *cp)
{
    if (cp == NULL)
        return;
    for (unsigned int i = 0; i < cp->n; i++)
        gnutls_pcert_deinit(&cp->pcerts[i]);
    if (cp->key != NULL)
        gnutls_privkey_deinit(cp->key);
    free(cp);
}

static struct cert_pair *
cert_pair_parse(const char *cert_pem, const char *key_pem, char *err,
                size_t errlen)
{
    struct cert_pair *cp = calloc(1, sizeof *cp);
    gnutls_datum_t cd = { (unsigned char *)cert_pem,
                          (unsigned int)strlen(cert_pem) };
    gnutls_datum_t kd = { (unsigned char *)key_pem,
                          (unsigned int)strlen(key_pem) };
    int e;

    if (cp == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cp->n = CERT_MAX_CHAIN;
    e = gnutls_pcert_list_import_x509_raw(cp->pcerts, &cp->n, &cd,
                                          GNUTLS_X509_FMT_PEM, 0);
    if (e < 0) {
        cp->n = 0;
        snprintf(err, errlen, "server certificate: %s", gnutls_strerror(e));
        goto fail;
    }
    if ((e = gnutls_privkey_init(&cp->key)) < 0 ||
        (e = gnutls_privkey_import_x509_raw(cp->key, &kd,
                                            GNUTLS_X509_FMT_PEM, NULL,
                                            0)) < 0) {
        snprintf(err, errlen, "server private key: %s", gnutls_strerror(e));
        goto fail;
    }
    return cp;
fail:
    cert_pair_free(cp);
    return NULL;
}

int
server_set_certificate(struct server *s, const char *cert_pem,
                       const char *key_pem, char *err, size_t errlen)
{
    struct cert_pair *cp;

    if (!s->cfg.tls) {
        snprintf(err, errlen, "server: not a TLS listener");
        return -1;
    }
    cp = cert_pair_parse(cert_pem, key_pem, err, errlen);
    if (cp == NULL)
        return -1;
    pthread_mutex_lock(&s->cert_mu);
    if (s->cert != NULL) {
        s->cert->next = s->retired;
        s->retired = s->cert;
    }
    s->cert = cp;
    pthread_mutex_unlock(&s->cert_mu);
    return 0;
}

/* The allowed TLS <= 1.2 suites in flag order (validated already by
 * server_tls_priorities) and the enabled protocol versions. */
static void
suites_allowed(struct server *s, const char *min_version,
               const char *cipher_suites)
{
    static const char *const vers[] = {
        "VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13",
    };
    static const char *const gvers[] = {
        ":+VERS-TLS1.0", ":+VERS-TLS1.1", ":+VERS-TLS1.2", ":+VERS-TLS1.3",
    };
    const char *p;
    int min = 2;

    for (int i = 0; min_version != NULL && i < 4; i++)
        if (strcmp(min_version, vers[i]) == 0)
            min = i;
    s->versions[0] = '\0';
    for (int i = min; i < 4; i++)
        strcat(s->versions, gvers[i]);
    s->restrict_suites = cipher_suites != NULL && cipher_suites[0] != '\0';
    p = s->restrict_suites ? cipher_suites : NULL;
    while (p != NULL) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
            if (strlen(suites[i].go) == n && !strncmp(suites[i].go, p, n) &&
                suites[i].kx != NULL && s->nallowed < 64)
                s->allowed[s->nallowed++] = &suites[i];
        p = comma ? comma + 1 : NULL;
    }
}

static struct server *
session_server(gnutls_session_t session)
{
    struct MHD_Connection *c = gnutls_session_get_ptr(session);
    const union MHD_ConnectionInfo *ci;

    if (c == NULL)
        return NULL;
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

/* Runs on the ClientHello before GnuTLS processes it (installed by
 * on_connection when --tls-cipher-suites is set). Picks the first listed
 * suite, in flag order, that the client offers and the certificate's key
 * can serve, and narrows this session's priorities to it (TLS 1.3 stays
 * as configured: Go never restricts it). No such suite: TLS <= 1.2 is
 * disabled for the session, so only TLS 1.3 can be negotiated. msg is
 * the ClientHello body: version(2) random(32) session_id(1+n)
 * cipher_suites(2+n) ... */
static int
hello_hook(gnutls_session_t session, unsigned int htype, unsigned when,
           unsigned int incoming, const gnutls_datum_t *msg)
{
    struct server *s = session_server(session);
    const struct suite *chosen = NULL;
    const unsigned char *p = msg->data;
    size_t n = msg->size, off, cs_len;
    bool ecdsa = false;
    char prio[512];
    const char *where = NULL;
    int e;

    if (htype != GNUTLS_HANDSHAKE_CLIENT_HELLO || when != GNUTLS_HOOK_PRE ||
        !incoming || s == NULL)
        return 0;
    if (n < 35 || (off = 35 + (size_t)p[34]) + 2 > n)
        return GNUTLS_E_UNEXPECTED_PACKET_LENGTH;
    cs_len = (size_t)p[off] << 8 | p[off + 1];
    off += 2;
    if (off + cs_len > n)
        return GNUTLS_E_UNEXPECTED_PACKET_LENGTH;
    pthread_mutex_lock(&s->cert_mu);
    if (s->cert != NULL && s->cert->n > 0) {
        int alg = gnutls_pubkey_get_pk_algorithm(s->cert->pcerts[0].pubkey,
                                                 NULL);
        ecdsa = alg == GNUTLS_PK_ECDSA;
    }
    pthread_mutex_unlock(&s->cert_mu);
    for (size_t i = 0; i < s->nallowed && chosen == NULL; i++) {
        const struct suite *su = s->allowed[i];
        if ((strstr(su->kx, "ECDSA") != NULL) != ecdsa)
            continue;
        for (size_t j = 0; j + 1 < cs_len; j += 2)
            if (((unsigned)p[off + j] << 8 | p[off + j + 1]) == su->id)
                chosen = su;
    }
    if (chosen != NULL)
        snprintf(prio, sizeof prio, "NORMAL:%%SERVER_PRECEDENCE:-VERS-ALL%s:"
                 "-CIPHER-ALL:-MAC-ALL:-KX-ALL:+%s:+%s:+%s:"
                 "+AES-128-GCM:+AES-256-GCM:"
                 "+CHACHA20-POLY1305:+AEAD:+ECDHE-RSA:+ECDHE-ECDSA",
                 s->versions, chosen->cipher, chosen->mac, chosen->kx);
    else
        snprintf(prio, sizeof prio, "NORMAL:-VERS-ALL%s:-CIPHER-ALL:"
                 "-MAC-ALL:-KX-ALL:+AES-128-GCM:+AES-256-GCM:"
                 "+CHACHA20-POLY1305:+AEAD:+ECDHE-RSA:+ECDHE-ECDSA",
                 strstr(s->versions, "TLS1.3") ? ":+VERS-TLS1.3" : "");
    e = gnutls_priority_set_direct(session, prio, &where);
    if (e != GNUTLS_E_SUCCESS) {
        LOGW("TLS: cannot narrow the cipher suites (%s): %s", prio,
             gnutls_strerror(e));
        return e;
    }
    return 0;
}

/* GnuTLS asks for the server's chain on every handshake. The callback has
 * no user pointer: MHD stores the connection as the session pointer, and
 * on_connection stored the server as the connection's socket context. */
static int
cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_dn,
              int nreqs, const gnutls_pk_algorithm_t *pk_algos,
              int pk_algos_length, gnutls_pcert_st **pcert,
              unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    struct MHD_Connection *c = gnutls_session_get_ptr(session);
    const union MHD_ConnectionInfo *ci;
    struct server *s;

    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    if (c == NULL)
        return -1;
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci == NULL || ci->socket_context == NULL)
        return -1;
    s = ci->socket_context;
    pthread_mutex_lock(&s->cert_mu);
    *pcert = s->cert->pcerts;
    *pcert_length = s->cert->n;
    *pkey = s->cert->key;
    pthread_mutex_unlock(&s->cert_mu);
    return 0;
}

/* -- Server lifecycle ----------------------------------------------------- */

static void
slot_destroy(void *p)
{
    struct thread_slot *slot = p;

    if (slot->s->cfg.thread_fini != NULL)
        slot->s->cfg.thread_fini(slot->s->cfg.ctx, slot->tctx);
    free(slot);
}

struct server *
server_new(const struct server_config *cfg, char *err, size_t errlen)
{
    struct server *s = calloc(1, sizeof *s);
    struct buf prio;

    buf_init(&prio, 8192);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->fd = -1;
    s->cfg = *cfg;
    atomic_init(&s->inflight, 0);
    atomic_init(&s->nworkers, 0);
    pthread_mutex_init(&s->cert_mu, NULL);
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, NULL);
    if (cfg->handler == NULL) {
        snprintf(err, errlen, "server: no handler");
        goto fail;
    }
    if (cfg->port < 0 || cfg->port > 65535) {
        snprintf(err, errlen, "server: invalid port %d", cfg->port);
        goto fail;
    }
    s->bind_address = dup_or_null(cfg->bind_address);
    if (cfg->tls) {
        if (cfg->cert_pem == NULL || cfg->key_pem == NULL) {
            snprintf(err, errlen, "server: TLS needs a certificate and key");
            goto fail;
        }
        if (server_tls_priorities(cfg->tls_min_version, cfg->cipher_suites,
                                  &prio, err, errlen) < 0)
            goto fail;
        s->priorities = buf_take(&prio, NULL);
        suites_allowed(s, cfg->tls_min_version, cfg->cipher_suites);
        s->trust_pem = dup_or_null(cfg->trust_pem);
        if (s->priorities == NULL ||
            (cfg->trust_pem != NULL && s->trust_pem == NULL)) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        s->cert = cert_pair_parse(cfg->cert_pem, cfg->key_pem, err, errlen);
        if (s->cert == NULL)
            goto fail;
    }
    /* The config's strings are the caller's; keep only our copies. */
    s->cfg.bind_address = s->bind_address;
    s->cfg.cert_pem = NULL;     /* parsed into s->cert */
    s->cfg.key_pem = NULL;
    s->cfg.trust_pem = s->trust_pem;
    s->cfg.tls_min_version = NULL;
    s->cfg.cipher_suites = NULL;
    if (s->cfg.threads == 0)
        s->cfg.threads = 4;
    if (s->cfg.conn_timeout_s == 0)
        s->cfg.conn_timeout_s = 90;
    /* Connections that never get as far as a request (stalled TLS
     * handshakes, vanished peers, port scanners) would otherwise hold one
     * of the max_connections slots for the whole idle timeout, and a
     * thousand of them lock every client out. Go has no connection limit
     * and waits 32 s (its ReadHeaderTimeout); with a limit, a short first
     * deadline is what keeps the slots turning over. docs/compat.md. */
    if (s->cfg.first_request_timeout_s == 0)
        s->cfg.first_request_timeout_s = 10;
    if (s->cfg.first_request_timeout_s > s->cfg.conn_timeout_s)
        s->cfg.first_request_timeout_s = s->cfg.conn_timeout_s;
    /* The pool bounds request line + headers. libmicrohttpd zeroes the
     * whole pool between keep-alive requests, so its size is paid on every
     * request: at Go's 1 MiB that memset was 60% of a small request's
     * instructions (bench/README.md). 128 KiB is far above what Kubernetes
     * clients send; docs/compat.md records the difference. */
    if (s->cfg.conn_memory_limit == 0)
        s->cfg.conn_memory_limit = (size_t)128 << 10;
    if (s->cfg.max_connections == 0)
        s->cfg.max_connections = 1000;
    if (s->cfg.max_upload == 0)
        s->cfg.max_upload = (size_t)1 << 20;
    if (pthread_key_create(&s->key, slot_destroy) != 0) {
        snprintf(err, errlen, "server: pthread_key_create failed");
        goto fail;
    }
    s->key_ok = true;
    if (open_listener(s, err, errlen) < 0)
        goto fail;
    return s;
fail:
    buf_free(&prio);
    server_free(s);
    return NULL;
}

/* MHD must not decode anything: we need the raw path (and decode query
 * values ourselves, after MHD's '+' handling). */
static size_t
unescape_identity(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    /* TLS handshake noise from scanners and probes: verbose only. */
    LOGV(4, "microhttpd: %s", line);
}

/* Go's listener enables TCP keep-alive with a 3 minute period on every
 * accepted connection; dead peers (e.g. a vanished aggregator) are then
 * noticed without waiting for the idle timeout. Best effort. */
static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
              enum MHD_ConnectionNotificationCode code)
{
    const union MHD_ConnectionInfo *ci;
    int one = 1, period = 180;

    struct server *s = cls;

    if (code != MHD_CONNECTION_NOTIFY_STARTED)
        return;
    *socket_ctx = cls;           /* the server, for cert_callback */
    /* until the first request arrives (on_request restores the idle
     * timeout); set before MHD starts the TLS handshake */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
                              s->cfg.first_request_timeout_s);
    if (s->cfg.tls && s->restrict_suites) {
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        if (ci != NULL && ci->tls_session != NULL)
            gnutls_handshake_set_hook_function(
                (gnutls_session_t)ci->tls_session,
                GNUTLS_HANDSHAKE_CLIENT_HELLO, GNUTLS_HOOK_PRE, hello_hook);
        else
            LOGW("TLS: no session to restrict the cipher suites on");
    }
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL)
        return;
    setsockopt(ci->connect_fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_KEEPIDLE, &period,
               sizeof period);
    setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_KEEPINTVL, &period,
               sizeof period);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe);
static int workers_start(struct server *s, char *err, size_t errlen);
static void workers_stop(struct server *s);
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **req_cls);

int
server_start(struct server *s, char *err, size_t errlen)
{
    struct MHD_OptionItem opts[20];
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (s->cfg.workers > 0)
        flags |= MHD_ALLOW_SUSPEND_RESUME;
    size_t n = 0;

    if (s->daemon != NULL || s->fd < 0) {
        snprintf(err, errlen, "server: already started or stopped");
        return -1;
    }
#define OPT(o, v, p) opts[n++] = (struct MHD_OptionItem){ (o), (v), (p) }
    OPT(MHD_OPTION_LISTEN_SOCKET, s->fd, NULL);
    OPT(MHD_OPTION_THREAD_POOL_SIZE, s->cfg.threads, NULL);
    OPT(MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.conn_timeout_s, NULL);
    OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (intptr_t)s->cfg.conn_memory_limit, NULL);
    OPT(MHD_OPTION_CONNECTION_LIMIT, s->cfg.max_connections, NULL);
    OPT(MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s);
    OPT(MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s);
    OPT(MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape_identity, NULL);
    OPT(MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, s);
    if (s->cfg.tls) {
        flags |= MHD_USE_TLS;
        /* Through the callback, so server_set_certificate can rotate
         * the pair while serving. */
        OPT(MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)cert_callback);
        OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, s->priorities);
        if (s->trust_pem != NULL)
            OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, s->trust_pem);
    }
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
    if (s->family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (workers_start(s, err, errlen) != 0)
        return -1;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                                 MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (s->daemon == NULL) {
        workers_stop(s);
        snprintf(err, errlen, "server: cannot start the HTTP%s server on "
                 "port %d (see log)", s->cfg.tls ? "S" : "", s->port);
        return -1;
    }
    return 0;
}

void
server_stop(struct server *s, int drain_ms)
{
    int64_t until;

    if (s == NULL || s->stopped)
        return;
    s->stopped = true;
    if (s->daemon == NULL) {
        if (s->fd >= 0)
            close(s->fd);
        s->fd = -1;
        return;
    }
    /* Stop accepting (the socket comes back to us), then let in-flight
     * requests finish before MHD closes every connection. */
    {
        MHD_socket fd = MHD_quiesce_daemon(s->daemon);

        if (fd != MHD_INVALID_SOCKET)
            close(fd);
        s->fd = -1;
    }
    until = server_now_ms() + (drain_ms > 0 ? drain_ms : 0);
    while (atomic_load(&s->inflight) > 0 && server_now_ms() < until) {
        struct timespec ts = { 0, 10 * 1000000 };

        nanosleep(&ts, NULL);
    }
    /* Workers answer what is queued and resume those connections before
     * MHD closes them; then MHD joins its own threads. thread_fini runs on
     * every thread that had a context. */
    workers_stop(s);
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}

void
server_free(struct server *s)
{
    if (s == NULL)
        return;
    server_stop(s, 0);
    if (s->fd >= 0)
        close(s->fd);
    if (s->key_ok)
        pthread_key_delete(s->key);
    free(s->bind_address);
    cert_pair_free(s->cert);
    while (s->retired != NULL) {
        struct cert_pair *next = s->retired->next;

        cert_pair_free(s->retired);
        s->retired = next;
    }
    pthread_mutex_destroy(&s->cert_mu);
    pthread_mutex_destroy(&s->qmu);
    pthread_cond_destroy(&s->qcv);
    free(s->trust_pem);
    free(s->priorities);
    free(s);
}

int
server_port(const struct server *s)
{
    return s->port;
}

unsigned
server_inflight(const struct server *s)
{
    return atomic_load(&((struct server *)s)->inflight);
}

/* -- Requests --------------------------------------------------------------- */

const char *
server_request_query(const struct server_request *req, const char *key)
{
    for (size_t i = 0; i < req->nparams; i++)
        if (strcmp(req->params[i].key, key) == 0)
            return req->params[i].value;
    return NULL;
}

const char *
server_request_header(const struct server_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn_, MHD_HEADER_KIND, name);
}

struct hdr_walk {
    int (*fn)(void *arg, const char *name, const char *value);
    void *arg;
    size_t count;
};

static enum MHD_Result
hdr_iter(void *cls, enum MHD_ValueKind kind, const char *key,
         const char *value)
{
    struct hdr_walk *w = cls;

    (void)kind;
    w->count++;
    return w->fn(w->arg, key, value ? value : "") ? MHD_NO : MHD_YES;
}

size_t
server_request_headers(const struct server_request *req,
                       int (*fn)(void *arg, const char *name,
                                 const char *value),
                       void *arg)
{
    struct hdr_walk w = { fn, arg, 0 };

    MHD_get_connection_values(req->conn_, MHD_HEADER_KIND, hdr_iter, &w);
    return w.count;
}

int
server_request_peer_chain(const struct server_request *req,
                          struct server_der **chain, size_t *n,
                          char *err, size_t errlen)
{
    const union MHD_ConnectionInfo *ci;
    const gnutls_datum_t *peers;
    unsigned int np = 0;
    struct server_der *out;

    *chain = NULL;
    *n = 0;
    if (!req->tls)
        return 0;
    ci = MHD_get_connection_info(req->conn_,
                                 MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci == NULL || ci->tls_session == NULL)
        return 0;
    peers = gnutls_certificate_get_peers((gnutls_session_t)ci->tls_session,
                                         &np);
    if (peers == NULL || np == 0)
        return 0;
    out = calloc(np, sizeof *out);
    if (out == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (unsigned int i = 0; i < np; i++) {
        out[i].data = malloc(peers[i].size ? peers[i].size : 1);
        if (out[i].data == NULL) {
            server_der_free(out, i);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        memcpy(out[i].data, peers[i].data, peers[i].size);
        out[i].len = peers[i].size;
    }
    *chain = out;
    *n = np;
    return 0;
}

void
server_der_free(struct server_der *chain, size_t n)
{
    if (chain == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(chain[i].data);
    free(chain);
}

/* -- Responses ------------------------------------------------------------- */

int
server_response_header(struct server_response *resp, const char *name,
                       const char *value)
{
    char *n, *v;
    size_t i;

    for (i = 0; i < resp->nheaders; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            break;
    if (i == SERVER_MAX_HEADERS)
        return -1;
    n = strdup(name);
    v = strdup(value);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        return -1;
    }
    if (i < resp->nheaders) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    } else {
        resp->nheaders++;
    }
    resp->headers[i].name = n;
    resp->headers[i].value = v;
    return 0;
}

const char *
server_response_get_header(const struct server_response *resp,
                           const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

int
server_response_text(struct server_response *resp, int status,
                     const char *content_type, const char *body)
{
    resp->status = status;
    resp->content_type = content_type;
    buf_reset(&resp->body);
    return buf_adds(&resp->body, body);
}

static void
response_init(struct server_response *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->status = 500;
    buf_init(&resp->body, SERVER_MAX_BODY);
}

static void
response_free(struct server_response *resp)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    resp->nheaders = 0;
    buf_free(&resp->body);
}

/* Hands resp to MHD. The body bytes move into the MHD response, which
 * frees them with free() after sending. */
static enum MHD_Result
send_response(struct MHD_Connection *c, struct server_response *resp)
{
    struct MHD_Response *r;
    enum MHD_Result ret;
    size_t len = 0;
    char *body = buf_take(&resp->body, &len);

    if (body == NULL) {
        LOGE("server: out of memory building a response");
        return MHD_NO;
    }
    r = MHD_create_response_from_buffer_with_free_callback(len, body, free);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    if (resp->content_type != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                resp->content_type);
    for (size_t i = 0; i < resp->nheaders; i++)
        if (MHD_add_response_header(r, resp->headers[i].name,
                                    resp->headers[i].value) != MHD_YES)
            LOGW("server: dropped invalid response header %s",
                 resp->headers[i].name);
    ret = MHD_queue_response(c, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* The headers every response carries (spec-server 1): Cache-Control
 * unless the handler chose one, Audit-Id (the request's Audit-ID if
 * sent), and nosniff on errors. */
static void
standard_headers(struct MHD_Connection *c, struct server_response *resp)
{
    const char *audit = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                    "Audit-ID");
    char uuid[37];

    if (server_response_get_header(resp, "Cache-Control") == NULL)
        server_response_header(resp, "Cache-Control", "no-cache, private");
    if (audit == NULL || audit[0] == '\0' || strpbrk(audit, "\r\n")) {
        if (certs_uuid4(uuid) == 0)
            audit = uuid;
        else
            audit = NULL;
    }
    if (audit != NULL)
        server_response_header(resp, "Audit-Id", audit);
    if (resp->status >= 400 &&
        server_response_get_header(resp, "X-Content-Type-Options") == NULL)
        server_response_header(resp, "X-Content-Type-Options", "nosniff");
}

/* (struct param_list is declared with struct req_state.) */

static enum MHD_Result
param_iter(void *cls, enum MHD_ValueKind kind, const char *key,
           size_t key_size, const char *value, size_t value_size)
{
    struct param_list *pl = cls;
    struct buf k, v;

    (void)kind;
    buf_init(&k, 1 << 20);
    buf_init(&v, 1 << 20);
    if (httputil_pct_decode(key, key_size, true, &k) < 0 ||
        httputil_pct_decode(value ? value : "", value ? value_size : 0, true,
                            &v) < 0) {
        buf_free(&k);
        buf_free(&v);
        return MHD_YES;
    }
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 8;
        struct server_param *nv = realloc(pl->v, cap * sizeof *nv);

        if (nv == NULL)
            goto oom;
        pl->v = nv;
        pl->cap = cap;
    }
    pl->v[pl->n].key = buf_take(&k, NULL);
    pl->v[pl->n].value = buf_take(&v, NULL);
    if (pl->v[pl->n].key == NULL || pl->v[pl->n].value == NULL) {
        free(pl->v[pl->n].key);
        free(pl->v[pl->n].value);
        goto oom;
    }
    pl->n++;
    return MHD_YES;
oom:
    buf_free(&k);
    buf_free(&v);
    pl->oom = true;
    return MHD_NO;
}

static void
params_free(struct param_list *pl)
{
    for (size_t i = 0; i < pl->n; i++) {
        free(pl->v[i].key);
        free(pl->v[i].value);
    }
    free(pl->v);
}

/* This pool thread's context, created on first use. */
static void *
thread_ctx(struct server *s)
{
    struct thread_slot *slot = pthread_getspecific(s->key);

    if (slot != NULL)
        return slot->tctx;
    slot = calloc(1, sizeof *slot);
    if (slot == NULL)
        return NULL;
    slot->s = s;
    if (s->cfg.thread_init != NULL)
        slot->tctx = s->cfg.thread_init(s->cfg.ctx);
    if (pthread_setspecific(s->key, slot) != 0) {
        slot_destroy(slot);
        return NULL;
    }
    return slot->tctx;
}

static void
remote_address(struct MHD_Connection *c, char *out, size_t n)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char host[INET6_ADDRSTRLEN] = "";
    int port = 0;

    snprintf(out, n, "unknown");
    if (ci == NULL || ci->client_addr == NULL)
        return;
    if (ci->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)ci->client_addr;

        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(out, n, "%s:%d", host, port);
    } else if (ci->client_addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)ci->client_addr;

        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        /* v4-mapped peers of the dual-stack socket read as plain IPv4. */
        if (strncmp(host, "::ffff:", 7) == 0 && strchr(host + 7, '.'))
            snprintf(out, n, "%s:%d", host + 7, port);
        else
            snprintf(out, n, "[%s]:%d", host, port);
    }
}

/* Content-Length above the upload bound. */
static bool
too_large(struct MHD_Connection *c, size_t max)
{
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 "Content-Length");
    char *end;
    unsigned long long n;

    if (cl == NULL)
        return false;
    errno = 0;
    n = strtoull(cl, &end, 10);
    return errno != 0 || n > max;
}

/* Frees what a request holds besides the state itself. */
static void
request_clear(struct req_state *st)
{
    if (!st->prepared)
        return;
    response_free(&st->resp);
    buf_free(&st->path);
    params_free(&st->pl);
    st->prepared = false;
}

/* Runs the handler for a prepared request on the calling thread, which
 * owns the thread context passed to it. */
static void
run_handler(struct server *s, struct req_state *st)
{
    st->req.thread_ctx = thread_ctx(s);
    s->cfg.handler(s->cfg.ctx, &st->req, &st->resp);
    if (st->resp.status < 100 || st->resp.status > 999) {
        LOGE("server: handler returned status %d for %s", st->resp.status,
             st->req.raw_path);
        response_free(&st->resp);
        response_init(&st->resp);
        status_internal_error(&st->resp, "invalid response status");
    }
}

static enum MHD_Result
answer(struct MHD_Connection *c, struct req_state *st)
{
    standard_headers(c, &st->resp);
    enum MHD_Result ret = send_response(c, &st->resp);
    request_clear(st);
    return ret;
}

/* -- Worker pool -------------------------------------------------------- */

static void *worker_main(void *arg);

/* Starts one more worker if the pool is not full; qmu held. The new
 * thread waits for qmu like any idle worker. */
static int
spawn_worker(struct server *s, char *err, size_t errlen)
{
    unsigned n = atomic_load(&s->nworkers);
    int rc;

    if (n >= s->cfg.workers)
        return 0;
    rc = pthread_create(&s->workers[n], NULL, worker_main, s);
    if (rc != 0) {
        snprintf(err, errlen, "server: cannot start worker: %s",
                 strerror(rc));
        return -1;
    }
    atomic_store(&s->nworkers, n + 1);
    return 0;
}

static void
enqueue(struct server *s, struct req_state *st)
{
    char err[256];

    pthread_mutex_lock(&s->qmu);
    st->next = NULL;
    if (s->qtail)
        s->qtail->next = st;
    else
        s->qhead = st;
    s->qtail = st;
    /* More queued requests than idle workers: this one would wait for a
     * busy worker, so start another. If that fails the request still
     * gets the next free one. */
    if (++s->nqueued > s->nidle && !s->qstop &&
        spawn_worker(s, err, sizeof err) != 0 && !s->spawn_failed) {
        s->spawn_failed = true;
        LOGW("%s (requests wait for a busy worker)", err);
    }
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
}

/* A worker: takes suspended requests, answers them, resumes their
 * connections (MHD then calls on_request again, which sends). It drains
 * the queue before it honours qstop, so no suspended connection is left
 * behind; its thread context is released by the pthread key destructor
 * when it returns. */
static void *
worker_main(void *arg)
{
    struct server *s = arg;

    prctl(PR_SET_NAME, s->worker_name);
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        s->nidle++;
        while (s->qhead == NULL && !s->qstop)
            pthread_cond_wait(&s->qcv, &s->qmu);
        s->nidle--;
        struct req_state *st = s->qhead;
        if (st == NULL) {
            pthread_mutex_unlock(&s->qmu);
            break;
        }
        s->qhead = st->next;
        if (s->qhead == NULL)
            s->qtail = NULL;
        s->nqueued--;
        pthread_mutex_unlock(&s->qmu);
        run_handler(s, st);
        st->done = true;
        MHD_resume_connection(st->conn);
    }
    return NULL;
}

static void
workers_stop(struct server *s)
{
    if (s->workers == NULL)
        return;
    /* No worker starts once qstop is set (enqueue checks it under qmu). */
    pthread_mutex_lock(&s->qmu);
    s->qstop = true;
    pthread_cond_broadcast(&s->qcv);
    unsigned n = atomic_load(&s->nworkers);
    pthread_mutex_unlock(&s->qmu);
    for (unsigned i = 0; i < n; i++)
        pthread_join(s->workers[i], NULL);
    free(s->workers);
    s->workers = NULL;
    atomic_store(&s->nworkers, 0);
}

/* Starts the first worker; enqueue starts the others as they are needed. */
static int
workers_start(struct server *s, char *err, size_t errlen)
{
    int rc;

    if (s->cfg.workers == 0)
        return 0;
    s->workers = calloc(s->cfg.workers, sizeof *s->workers);
    if (s->workers == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    prctl(PR_GET_NAME, s->worker_name);
    pthread_mutex_lock(&s->qmu);
    rc = spawn_worker(s, err, errlen);
    pthread_mutex_unlock(&s->qmu);
    if (rc != 0) {
        workers_stop(s);
        return -1;
    }
    return 0;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
           const char *method, const char *version, const char *upload_data,
           size_t *upload_data_size, void **req_cls)
{
    struct server *s = cls;
    struct req_state *st = *req_cls;
    struct server_response resp;
    enum MHD_Result ret;

    (void)upload_data;
    if (st == NULL) {
        st = calloc(1, sizeof *st);
        if (st == NULL)
            return MHD_NO;
        st->start_ms = server_now_ms();
        atomic_fetch_add(&s->inflight, 1);
        *req_cls = st;
        /* a request came: the idle timeout from now on. Only on a
         * connection's first request: setting it takes MHD's cleanup
         * mutex, reading it does not. */
        const union MHD_ConnectionInfo *ti =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_TIMEOUT);
        if (ti == NULL || ti->connection_timeout != s->cfg.conn_timeout_s)
            MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
                                      s->cfg.conn_timeout_s);
        if (!too_large(c, s->cfg.max_upload))
            return MHD_YES;
        /* Declared too large: answer before reading the body (MHD then
         * closes the connection instead of draining it). */
        st->rejected = true;
        response_init(&resp);
        status_write(&resp, 413, "RequestEntityTooLarge",
                     "the request body is too large", NULL);
        standard_headers(c, &resp);
        ret = send_response(c, &resp);
        response_free(&resp);
        return ret;
    }
    if (st->done)           /* resumed: a worker has answered */
        return answer(c, st);
    if (*upload_data_size > 0) {
        /* Discard: these APIs take no bodies. A chunked body that grows
         * past the bound drops the connection (nothing sensible to say). */
        st->uploaded += *upload_data_size;
        *upload_data_size = 0;
        return st->uploaded > s->cfg.max_upload ? MHD_NO : MHD_YES;
    }
    if (st->rejected)
        return MHD_YES;
    st->prepared = true;
    response_init(&st->resp);
    buf_init(&st->path, 1 << 20);
    if (httputil_pct_decode(url, strlen(url), false, &st->path) < 0) {
        status_bad_request(&st->resp, "invalid URL escape in the request path");
        return answer(c, st);
    }
    MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, param_iter, &st->pl);
    if (st->pl.oom) {
        status_internal_error(&st->resp, "out of memory");
        return answer(c, st);
    }
    remote_address(c, st->remote, sizeof st->remote);
    /* method, url and version are MHD's and stay valid until the request
     * completes, suspended or not. */
    st->req = (struct server_request){
        .method = method, .raw_path = url, .path = st->path.data,
        .version = version, .remote_addr = st->remote, .tls = s->cfg.tls,
        .start_ms = st->start_ms, .params = st->pl.v, .nparams = st->pl.n,
        .conn_ = c,
    };
    if (atomic_load(&s->nworkers) == 0) {
        run_handler(s, st);
        return answer(c, st);
    }
    st->conn = c;
    MHD_suspend_connection(c);
    enqueue(s, st);
    return MHD_YES;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct server *s = cls;

    (void)c;
    (void)toe;
    if (*req_cls != NULL) {
        request_clear(*req_cls);
        free(*req_cls);
        *req_cls = NULL;
        atomic_fetch_sub(&s->inflight, 1);
    }
}
