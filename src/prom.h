/* prom.h: the Prometheus HTTP API client (spec-server.md §9,
 * spec-rules.md §5.1): series discovery reduced to distinct "shapes" while
 * the body streams in, and instant queries.
 * Uses: http_client (transport), yajl (callback parser: series and query
 * answers are parsed as they stream in), log.
 * Must never: keep label values of series, buffer a whole series body, log
 * bearer tokens or passwords, or own a struct http_client (the caller's
 * thread owns it).
 *
 * Thread affinity: a struct prom_client is immutable after prom_client_new
 * except for the cached token-file contents, the in-flight query table and
 * the query cache, each guarded by its own mutex, so one client is shared
 * by every thread. Each call takes the calling thread's own struct
 * http_client.
 *
 * Query coalescing: identical concurrent prom_query calls (same PromQL)
 * share one Prometheus request; the first caller performs it, the others
 * wait (each up to its own deadline) and receive the same result, shared
 * read-only and reference-counted. With query_cache_ttl_ms > 0 a successful
 * answer is also served from memory to identical queries for that long. */
#ifndef ADAPTER_PROM_H
#define ADAPTER_PROM_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include "http_client.h"

struct prom_options {
    const char *url;               /* --prometheus-url (required) */
    const char *verb;              /* "GET" (NULL = "GET") or "POST" */
    const char *const *headers;    /* --prometheus-header "K=V" entries:
                                    * nheaders of them, or NULL-terminated
                                    * when nheaders is 0; or NULL */
    size_t nheaders;
    const char *token_file;        /* --prometheus-token-file, or NULL */
    /* Credentials from --prometheus-auth-config / -incluster (optional):
     * a static bearer token, or a token file re-read when it changes.
     * Authorization precedence: an explicit --prometheus-header, then
     * user-info in the URL (Basic), then token_file, then these. */
    const char *auth_token;
    const char *auth_token_file;
    const char *auth_basic_user;   /* kubeconfig username/password */
    const char *auth_basic_pass;
    const struct http_tls *tls;    /* copied (strings duplicated); NULL: defaults */
    long timeout_ms;               /* whole-call timeout; 0 = 30000 */
    size_t max_get_length;         /* longest GET URL; 0 = 8192; a longer
                                    * GET is sent as POST */
    long query_cache_ttl_ms;       /* --query-cache-ttl; 0 = no cache */
    size_t query_cache_max;        /* cached answers kept; 0 = 1024 */
};

struct prom_client;

/* One distinct (series name, sorted label-name list) and how many series
 * had it. Strings live in the owning prom_shapes' arena. */
struct prom_shape {
    const char *name;              /* "" when the series had no __name__ */
    const char **labels;           /* sorted (strcmp), distinct, no __name__ */
    size_t nlabels;
    size_t count;
};

struct prom_arena;

struct prom_shapes {
    size_t n;
    struct prom_shape *v;          /* sorted by (name, labels) */
    size_t total_series;
    struct prom_arena *arena;      /* owns every string and label array */
};

enum prom_type { PROM_VECTOR, PROM_SCALAR, PROM_MATRIX, PROM_STRING };

struct prom_sample {
    size_t nlabels;
    const char **keys;             /* sorted by key */
    const char **values;
    double value;                  /* NaN / ±Inf possible */
    double ts;                     /* seconds, millisecond precision */
};

/* A query result. It may be shared by several callers (coalescing, the
 * cache): treat it as read-only; every holder releases its reference with
 * prom_result_free, the last one frees it. */
struct prom_result {
    enum prom_type type;
    size_t n;
    struct prom_sample *samples;   /* MATRIX: left empty (n = 0) */
    struct prom_arena *arena;      /* owns samples and their strings */
    double time;                   /* the evaluation time sent (time=) */
    atomic_int refs;               /* private: holders of this result */
};

/* What a call puts on the wire (exposed so tests can check it). */
struct prom_wire {
    char method[8];                /* "GET" or "POST" */
    char *url;                     /* owned */
    char *body;                    /* owned form body (POST), or NULL */
    size_t body_len;
};

/* Errors (in err): those of prom_check_url, `failed to read
 * prometheus-token-file: <reason>`. A URL Go parses but cannot send to (no
 * http/https scheme as in "prometheus:9090", no host) is accepted, as PA
 * accepts it, with a warning; every call then fails with Go's transport
 * error (`unsupported protocol scheme "prometheus"`, `http: no Host in
 * request URL`). */
struct prom_client *prom_client_new(const struct prom_options *opts,
                                    char *err, size_t errlen);
/* PA's first start-up checks, in its order (before any TLS or kubeconfig
 * check): the URL as Go's url.Parse takes it (`invalid Prometheus URL
 * <nil>: parse "<url>": <why>`; PA prints the nil *url.URL it got back),
 * then the verb (`unsupported Prometheus HTTP verb "<v>"; supported verbs:
 * "GET" and "POST"`; NULL means GET). 0 or -1 with err. */
int prom_check_url(const char *url, const char *verb, char *err,
                   size_t errlen);
void prom_client_free(struct prom_client *p);

/* GET|POST <base>/api/v1/series?match[]=<match>&start=<start>.
 * On success *out (owned by the caller, prom_shapes_free) holds the
 * distinct shapes; a `null` data list is an empty result. Returns -1 with
 * the reason in err (transport error, `bad_response: ...`,
 * `<errorType>: <error>`). */
int prom_series(struct prom_client *p, struct http_client *hc,
                const char *match, double start, struct prom_shapes **out,
                char *err, size_t errlen);
void prom_shapes_free(struct prom_shapes *s);

/* GET|POST <base>/api/v1/query?query=<promql>&time=<time>[&timeout=<d>].
 * timeout_s > 0 adds timeout= (the caller's real remaining time) and also
 * caps the HTTP call, or the wait for a shared one, at that time. *out is
 * one reference to a possibly shared, read-only result (prom_result_free).
 * A caller that joins an identical in-flight query (or hits the cache)
 * gets that query's answer: its evaluation time is the first caller's
 * (r->time), at most the call's duration (or the cache TTL) earlier. */
int prom_query(struct prom_client *p, struct http_client *hc,
               const char *promql, double time, double timeout_s,
               struct prom_result **out, char *err, size_t errlen);
/* Releases one reference; NULL is a no-op. */
void prom_result_free(struct prom_result *r);
/* Value of label key on a sample (keys are sorted: binary search), or
 * NULL. Borrowed from the sample's result. */
const char *prom_sample_label(const struct prom_sample *s, const char *key);

/* Transfers prom_query_many runs at once on one struct http_client. */
#define PROM_MANY_PARALLEL 8

/* n instant queries at once, as n prom_query calls with the same time and
 * timeout_s would answer them, but concurrently: the requests this call
 * makes itself go out together on hc (at most PROM_MANY_PARALLEL
 * transfers at a time) and are parsed as they stream in. Each query is
 * answered from the cache, by an identical request in flight (another
 * thread's, or the first occurrence of a query repeated in promqls), or
 * by its own request. outs[i] receives one reference (prom_result_free)
 * or NULL, with the reason in errs + i * errlen (errs holds n * errlen
 * bytes). Returns the number of queries that failed. */
int prom_query_many(struct prom_client *p, struct http_client *hc, size_t n,
                    const char *const *promqls, double time, double timeout_s,
                    struct prom_result **outs, char *errs, size_t errlen);

/* Counters since start-up (for logs and /metrics). */
struct prom_stats {
    unsigned long long queries;    /* prom_query calls */
    unsigned long long requests;   /* instant-query requests sent */
    unsigned long long coalesced;  /* calls answered by another's request */
    unsigned long long cache_hits; /* calls answered from the cache */
};
void prom_stats(struct prom_client *p, struct prom_stats *out);

/* Start-up checks of --prometheus-ca-file and, when both are set, the
 * client certificate and key files, as PA makes them (Go's parsing, see
 * gotls.h), with PA's messages: `failed to read prometheus-ca-file: open
 * <f>: no such file or directory`, `no certs found in prometheus-ca-file`
 * (no PEM CERTIFICATE block that parses), `failed to read TLS key pair:
 * <tls.X509KeyPair's error>` (unreadable, no PEM data, a key that does not
 * parse or does not match the certificate). The files are read again for
 * every new connection, so a rotated certificate is picked up without a
 * restart. */
int prom_check_tls_files(const char *ca_file, const char *cert_file,
                         const char *key_file, char *err, size_t errlen);

/* Wall-clock time in seconds, truncated to milliseconds. */
double prom_now(void);

/* Unix seconds with up to 3 decimals and no trailing zeros
 * ("1715851267.123", "1715851267.1", "1715851267"). Returns 0, or -1 if
 * out is too small. */
int prom_format_time(double t, char *out, size_t outlen);

/* A duration Prometheus' parseDuration accepts: whole seconds as "59s",
 * otherwise milliseconds as "59500ms" (minimum "1ms"). */
int prom_format_duration(double seconds, char *out, size_t outlen);

/* Builds the request for endpoint ("/api/v1/series", "/api/v1/query") with
 * the given parameters: kv is key, value, key, value, ..., NULL. Keys are
 * sorted, values form-encoded; the verb and the GET length limit decide
 * GET or POST. Free with prom_wire_free. */
int prom_build_request(const struct prom_client *p, const char *endpoint,
                       const char *const *kv, struct prom_wire *out,
                       char *err, size_t errlen);
void prom_wire_free(struct prom_wire *w);

/* Go textproto.CanonicalMIMEHeaderKey ("x-scope-orgid" -> "X-Scope-Orgid";
 * names with bytes outside the token set are returned unchanged). Writes
 * into out (NUL-terminated, truncated to outlen). */
void prom_canonical_header(const char *name, size_t len, char *out,
                           size_t outlen);
#endif
