/* authz.h: delegated authorization and the request filter chain that runs
 * before the API handler (spec-server 1, 2.2, 3.4, 6.6).
 * Provides: request-info derivation (resource / non-resource attributes);
 * struct authz: system:masters bypass, --authorization-always-allow-paths,
 * SubjectAccessReview through the --authorization-kubeconfig client with
 * allow/deny caches (the two flag TTLs); Go's 403 Forbidden Status; and
 * struct authz_chain, the server handler that wraps the API handler in
 * Go's order: ?timeout= check (400) -> authentication (401) ->
 * --max-requests-inflight (429, system:masters exempt) -> authorization
 * (403 / 500) -> handler -> --request-timeout deadline (504).
 * Uses: auth.h, kube.h, http_client.h, server.h, status.h, httputil.h,
 * jsonw.h, goquote.h, certs.h (SHA-256 cache keys), yajl's tree parser.
 * Threads: everything is called from server pool threads concurrently;
 * the caches are mutex-guarded; each pool thread has its own http_client
 * (the chain's thread context wraps the handler's).
 * Must never: let a request reach the handler without a decision, cache
 * an authorizer error, or hold a lock across a SubjectAccessReview call. */
#ifndef ADAPTER_AUTHZ_H
#define ADAPTER_AUTHZ_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "auth.h"
#include "httputil.h"
#include "server.h"

struct options;
struct kube_client;
struct http_client;

/* authorizer.Attributes of one request. The strings are borrowed from
 * the request or from segs/name_buf, valid until authz_attrs_free. */
struct authz_attrs {
    bool is_resource;           /* resource request (else non-resource) */
    char verb[32];
    const char *path;           /* decoded path (non-resource) */
    const char *namespace, *group, *version, *resource, *subresource, *name;
    struct httputil_segs segs;  /* owned */
    char *name_buf;             /* owned: name from fieldSelector */
};
/* Derives the attributes (spec-server 2.2). 0 / -1 (too many segments or
 * ENOMEM; answer 404). */
int authz_attrs_from_request(const struct server_request *req,
                             struct authz_attrs *out);
void authz_attrs_free(struct authz_attrs *a);

struct authz;

/* From the options (authorization_always_allow_paths and the two cache
 * TTLs). kc (borrowed) serves SubjectAccessReviews; NULL means every
 * request not decided by the first two steps is an authorizer error.
 * Start-up error: `only trailing * allowed in "<p>"`. */
struct authz *authz_new(const struct options *o, struct kube_client *kc,
                        char *err, size_t errlen);
void authz_free(struct authz *z);          /* NULL is a no-op */

enum authz_decision { AUTHZ_ALLOW, AUTHZ_DENY, AUTHZ_ERROR };

/* Decides one request. On AUTHZ_DENY, reason holds the SAR's
 * status.reason ("" if none); on AUTHZ_ERROR err says why. hc: the
 * calling thread's client (NULL: the kube client's shared one); budget_ms
 * bounds the review (at most 10 s is used). */
enum authz_decision authz_authorize(struct authz *z, struct http_client *hc,
                                    int64_t budget_ms,
                                    const struct auth_user *u,
                                    const struct authz_attrs *at,
                                    char *reason, size_t reasonlen,
                                    char *err, size_t errlen);

/* Writes Go's 403 Forbidden Status (spec-server 3.4). */
void authz_forbidden(struct server_response *resp, const struct auth_user *u,
                     const struct authz_attrs *at, const char *reason);

/* -- The filter chain ---------------------------------------------------- */

struct authz_chain_config {
    struct authn *authn;        /* borrowed */
    struct authz *authz;        /* borrowed */
    int64_t request_timeout_ms; /* --request-timeout (0 = 60 s) */
    int max_inflight;           /* --max-requests-inflight; <= 0 unlimited */
    server_handler next;        /* the API handler and its hooks */
    void *next_ctx;
    void *(*next_thread_init)(void *ctx);
    void (*next_thread_fini)(void *ctx, void *thread_ctx);
};

struct authz_chain {
    struct authz_chain_config cfg;
    atomic_int inflight;
};

/* Initialises a chain in caller-owned memory (nothing to free). Give
 * authz_chain_handle / _thread_init / _thread_fini and the chain as the
 * server's handler, hooks and ctx. */
void authz_chain_init(struct authz_chain *c,
                      const struct authz_chain_config *cfg);
void authz_chain_handle(void *chain, const struct server_request *req,
                        struct server_response *resp);
void *authz_chain_thread_init(void *chain);
void authz_chain_thread_fini(void *chain, void *thread_ctx);
#endif
