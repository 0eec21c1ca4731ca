/* server.h: the HTTP(S) listener of the adapter.
 * Provides: one struct server per listening socket (HTTPS on the secure
 * port, or plain HTTP for tests and a future metrics port), bound early by
 * server_new (so EADDRINUSE is a start-up error) and served by
 * server_start with libmicrohttpd's internal thread pool (epoll). Every
 * request is handed to ONE dispatch callback with a parsed request
 * (method, raw and percent-decoded path, form-decoded query, headers,
 * remote address, deadline helper, TLS peer chain) and a response to fill
 * in. TLS is libmicrohttpd's GnuTLS: versions and Go cipher-suite names
 * are translated to a GnuTLS priority string (server_tls_priorities).
 * Uses libmicrohttpd + GnuTLS (only server.c includes them), buf.h, log.h,
 * httputil.h (decoding), certs.h (Audit-Id uuids).
 * Thread affinity: the handler and thread_init/thread_fini run on MHD pool
 * threads; each pool thread gets its own thread context (a Lua state, a
 * curl handle...). Must never share that context across threads and never
 * block the pool forever: handlers bound their own work by the deadline. */
#ifndef ADAPTER_SERVER_H
#define ADAPTER_SERVER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"

struct server;

struct server_param {           /* one decoded query parameter */
    char *key;
    char *value;
};

/* Valid only during the handler call; every pointer is borrowed from the
 * server and dies when the handler returns. */
struct server_request {
    const char *method;         /* "GET", "HEAD", ... as sent */
    const char *raw_path;       /* request-target path as received */
    const char *path;           /* percent-decoded ('+' stays literal) */
    const char *version;        /* "HTTP/1.1" */
    const char *remote_addr;    /* "10.0.0.1:51234" / "[::1]:51234" */
    bool tls;                   /* arrived on a TLS listener */
    int64_t start_ms;           /* server_now_ms() when the request began */
    void *thread_ctx;           /* this pool thread's thread_init result */
    const struct server_param *params;  /* in arrival order, duplicates kept */
    size_t nparams;
    void *conn_;                /* private: the MHD connection */
};

struct server_header {
    char *name;                 /* owned */
    char *value;                /* owned */
};

#define SERVER_MAX_HEADERS 16

/* Filled in by the handler. The server initialises it (status 500, empty
 * body bounded at SERVER_MAX_BODY, no headers) and frees it afterwards. */
struct server_response {
    int status;
    const char *content_type;   /* static string, or NULL for none */
    struct buf body;            /* owned by the server */
    struct server_header headers[SERVER_MAX_HEADERS];
    size_t nheaders;
};

#define SERVER_MAX_BODY ((size_t)256 << 20)

typedef void (*server_handler)(void *ctx, const struct server_request *req,
                               struct server_response *resp);

struct server_config {
    const char *bind_address;   /* "0.0.0.0", "::", "" (all), or an IP */
    int port;                   /* 0: pick a free port (tests) */
    bool tls;
    const char *cert_pem;       /* PEM chain (leaf first); parsed, not kept */
    const char *key_pem;        /* PEM key; parsed, not kept */
    const char *trust_pem;      /* client CAs: when set, client
                                 * certificates are requested (not required,
                                 * not verified in the handshake); copied */
    const char *tls_min_version;  /* "VersionTLS12" if NULL/"" */
    const char *cipher_suites;    /* comma-separated Go names, NULL/"" = default */
    unsigned threads;           /* I/O thread pool size; 0 = 4 */
    unsigned workers;           /* most handler threads; 0 = run handlers
                                 * on the I/O threads. With workers, requests
                                 * are suspended and queued, so a slow
                                 * handler never stalls other connections,
                                 * and thread_init/thread_fini run on
                                 * workers. One starts with the server,
                                 * another whenever a request finds no idle
                                 * one, up to this many */
    unsigned conn_timeout_s;    /* idle/read timeout; 0 = 90 */
    unsigned first_request_timeout_s; /* from accept to the first request's
                                 * headers (TLS handshake included); then
                                 * conn_timeout_s applies. 0 = 10 */
    size_t conn_memory_limit;   /* per-connection memory (header size bound);
                                 * 0 = 128 KiB */
    unsigned max_connections;   /* 0 = 1000 */
    size_t max_upload;          /* request bodies are discarded; more than
                                 * this gets 413; 0 = 1 MiB */
    bool reuse_port;            /* SO_REUSEPORT (--permit-port-sharing) */
    bool reuse_addr;            /* SO_REUSEADDR (--permit-address-sharing) */
    server_handler handler;
    void *ctx;                  /* handed to handler and thread hooks */
    /* Called on a pool thread before its first request; the result is
     * req->thread_ctx for every request on that thread. NULL = none. */
    void *(*thread_init)(void *ctx);
    /* Called on the same pool thread when it exits (server_stop). */
    void (*thread_fini)(void *ctx, void *thread_ctx);
};

/* Validates the TLS settings, copies the PEMs and binds + listens. Errors:
 * "failed to create listener: failed to listen on <addr>:<port>: <why>",
 * "unknown tls version \"<v>\"", "Cipher suite <n> not supported or doesn't
 * exist". Does not serve yet. */
struct server *server_new(const struct server_config *cfg,
                          char *err, size_t errlen);
/* Replaces the serving certificate chain + key (PEM, copied) for new TLS
 * handshakes, e.g. after the --tls-cert-file pair changed on disk (the
 * caller watches the files and re-runs certs_load). Thread-safe; the old
 * pair stays valid for handshakes in progress. 0 / -1 (bad PEM: the
 * current pair is kept). */
int server_set_certificate(struct server *s, const char *cert_pem,
                           const char *key_pem, char *err, size_t errlen);
/* Starts the thread pool on the bound socket. 0 / -1. */
int server_start(struct server *s, char *err, size_t errlen);
/* Stops accepting, waits up to drain_ms for in-flight requests, then stops
 * the pool (thread_fini runs on each pool thread). Idempotent. */
void server_stop(struct server *s, int drain_ms);
void server_free(struct server *s);       /* stops first; NULL is a no-op */
int server_port(const struct server *s);  /* the bound port */
/* Requests currently inside the handler or being answered. */
unsigned server_inflight(const struct server *s);

/* First value of a query parameter ("" when present without value), or
 * NULL when absent. */
const char *server_request_query(const struct server_request *req,
                                 const char *key);
/* First value of a request header (case-insensitive name), or NULL. */
const char *server_request_header(const struct server_request *req,
                                  const char *name);
/* Calls fn for every request header in arrival order (multi-valued
 * headers such as X-Remote-Group come once per line); fn returns non-zero
 * to stop. Returns the number of headers visited. */
size_t server_request_headers(const struct server_request *req,
                              int (*fn)(void *arg, const char *name,
                                        const char *value),
                              void *arg);
/* Monotonic clock in milliseconds. */
int64_t server_now_ms(void);
/* Milliseconds left of a request whose deadline is timeout_ms after it
 * began (<= 0: expired). */
int64_t server_request_remaining_ms(const struct server_request *req,
                                    int64_t timeout_ms);

/* The TLS peer's certificate chain (leaf first) as DER, copied. Sets
 * *chain = NULL, *n = 0 and returns 0 for plain HTTP or no client
 * certificate; -1 on error. Free with server_der_free. */
struct server_der {
    unsigned char *data;
    size_t len;
};
int server_request_peer_chain(const struct server_request *req,
                              struct server_der **chain, size_t *n,
                              char *err, size_t errlen);
void server_der_free(struct server_der *chain, size_t n);

/* Response helpers. The header strings are copied; a header of the same
 * name (case-insensitive) replaces an earlier one. 0 / -1. */
int server_response_header(struct server_response *resp, const char *name,
                           const char *value);
const char *server_response_get_header(const struct server_response *resp,
                                       const char *name);
/* status + content type + body text (copied into resp->body). 0 / -1. */
int server_response_text(struct server_response *resp, int status,
                         const char *content_type, const char *body);

/* The GnuTLS priority string for a Go --tls-min-version and
 * --tls-cipher-suites pair (appended to out); exposed for tests and flag
 * validation. Warns (log) on insecure suites. 0 / -1 with the Go message. */
int server_tls_priorities(const char *min_version, const char *cipher_suites,
                          struct buf *out, char *err, size_t errlen);
#endif
