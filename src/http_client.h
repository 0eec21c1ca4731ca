/* http_client.h: an HTTP(S) client for the Prometheus and Kubernetes
 * clients (prom.c, kube.c, kcache.c). The only user of libcurl.
 * Thread affinity: a struct http_client is used by one thread at a time
 * (libcurl easy handles must not be shared); make one per thread. Call
 * http_client_global_init() once in main() before any thread starts.
 * Never logs secrets: bearer tokens and keys stay out of log lines. */
#ifndef ADAPTER_HTTP_CLIENT_H
#define ADAPTER_HTTP_CLIENT_H
#include <stdbool.h>
#include <stddef.h>
#include "buf.h"

struct http_tls {
    const char *ca_file;       /* PEM bundle; NULL: system trust store */
    const char *ca_pem;        /* in-memory PEM (kubeconfig *-data); NULL if unused */
    const char *cert_file;     /* client certificate (PEM), or NULL */
    const char *key_file;      /* its key, or NULL */
    const char *cert_pem;      /* in-memory client cert/key (kubeconfig *-data) */
    const char *key_pem;
    const char *server_name;   /* expected server name (SNI/verification), or NULL */
    bool insecure;             /* skip server certificate verification */
    int min_tls;               /* 0 = library default, else 12 or 13 */
};

struct http_req {
    const char *method;              /* "GET", "POST" */
    const char *url;                 /* absolute URL */
    const char *const *headers;      /* "Name: value" strings, NULL-terminated, or NULL */
    const char *body;                /* request body or NULL */
    size_t body_len;
    long timeout_ms;                 /* whole-request deadline; 0 = none (avoid) */
    long connect_timeout_ms;         /* 0 = min(timeout, 10 s) */
    const struct http_tls *tls;      /* NULL: defaults */
    const char *bearer_token;        /* adds Authorization: Bearer unless headers set one */
    const char *basic_user;          /* HTTP basic auth, or NULL */
    const char *basic_pass;
    size_t max_body;                 /* cap on the buffered/streamed body; 0 = 64 MiB */
    /* Streaming: when on_data is set, body bytes are handed to it as they
     * arrive instead of being buffered; returning non-zero aborts the
     * transfer (the call then fails with the message it left in
     * on_data_err, or "aborted"). */
    int (*on_data)(void *ctx, const char *p, size_t n);
    void *ctx;
    /* Optional cancellation: polled about every 100 ms; non-zero aborts. */
    int (*cancelled)(void *ctx);
};

struct http_resp {
    long status;                /* HTTP status, 0 if none was received */
    struct buf body;            /* buffered body (unused when streaming); owned by caller */
    char content_type[128];     /* response Content-Type, "" if none */
    double total_seconds;       /* time the call took */
};

struct http_client;

int http_client_global_init(void);
struct http_client *http_client_new(char *err, size_t errlen);
void http_client_free(struct http_client *c);

/* Performs one request. Returns 0 when an HTTP response was received
 * (whatever its status), -1 on transport errors (connect, TLS, timeout,
 * body over max_body, abort) with the reason in err. resp->body is
 * initialised by this call; the caller frees it with buf_free() whether
 * the call failed or not. */
int http_client_do(struct http_client *c, const struct http_req *req,
                   struct http_resp *resp, char *err, size_t errlen);

/* One request of a batch for http_client_do_many. */
struct http_call {
    const struct http_req *req;     /* in; borrowed until the call returns */
    struct http_resp resp;          /* out, as http_client_do fills it; the
                                     * caller frees resp.body in every case */
    int rc;                         /* out: http_client_do's return value */
    char err[512];                  /* out: the reason when rc is -1 */
};

/* The most transfers http_client_do_many runs at once. */
#define HTTP_MANY_MAX 16

/* Performs calls[0..n) concurrently on this client's connection cache,
 * at most max_parallel (0 or more than HTTP_MANY_MAX: HTTP_MANY_MAX)
 * transfers at a time, each exactly as http_client_do would perform it
 * (its own timeout, max_body, on_data and cancelled; on_data and
 * cancelled run on the calling thread, interleaved between calls). The
 * client keeps up to HTTP_MANY_MAX extra easy handles (and their TLS
 * session caches) for this. Returns when every call has ended: the number
 * of calls with rc -1. */
int http_client_do_many(struct http_client *c, struct http_call *calls,
                        size_t n, size_t max_parallel);

/* Percent-encoding for query strings and form bodies, Go url.QueryEscape
 * style (space -> '+', everything but A-Za-z0-9-_.~ as %XX upper-case). */
int http_query_escape(struct buf *out, const char *s, size_t len);

/* Behaviour notes (http_client.c):
 * - on_data returning non-zero fails the call with err "aborted" (there is
 *   no on_data_err field: a consumer keeps its own reason in ctx).
 * - cancelled() is polled at least every 100 ms, and more often while data
 *   flows; a cancelled call fails with "cancelled". Over max_body:
 *   "response body exceeds <N> bytes". resp->status and content_type are
 *   filled in even when the call fails after the headers arrived.
 * - Authorization: a caller header wins, then bearer_token, then basic_*.
 * - Sent by default: User-Agent promlua-adapter/<version>,
 *   Accept-Encoding: gzip (decoded transparently; max_body counts decoded
 *   bytes). Not sent unless the caller sets them: Accept, Expect.
 * - tls->server_name: the certificate is verified against that name while
 *   the connection goes to the URL's host (CURLOPT_CONNECT_TO); the Host
 *   header keeps the URL's host. */
#endif
