/* auth.h: delegated authentication, as k8s.io/apiserver does it for an
 * aggregated API server (spec-server 6.1-6.5).
 * Provides: struct authn, built from the flags at start-up: the client CA
 * (--client-ca-file or the ConfigMap key client-ca-file), the
 * request-header (front-proxy) settings (--requestheader-* or the ConfigMap
 * keys), both read from kube-system/extension-apiserver-authentication once
 * synchronously and then kept current by a watch thread; and
 * authn_authenticate, which runs request-header -> x509 -> bearer token
 * (TokenReview, with a TTL cache keyed by a SHA-256 of the token) ->
 * anonymous for one request.
 * Uses: kube.h (the --authentication-kubeconfig client), http_client.h,
 * certs.h (X.509 verification, SHA-256), server.h (request headers and the
 * TLS peer chain), jsonw.h, yajl's tree parser, httputil.h, log.h.
 * Threads: authn_authenticate is called concurrently from the server pool
 * threads, each with its own http_client; the settings are an immutable
 * refcounted snapshot swapped under a mutex by the watch thread.
 * Must never: log a token, trust X-Remote-* headers without a verified
 * front-proxy certificate on the same request, cache a token in clear, or
 * fall back to anonymous when a credential was presented and rejected. */
#ifndef ADAPTER_AUTH_H
#define ADAPTER_AUTH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "server.h"

struct options;
struct kube_client;
struct http_client;

struct auth_extra {
    char *key;
    char **values;
    size_t nvalues;
};

/* user.Info. Every member is owned. */
struct auth_user {
    char *name;
    char *uid;                  /* "" when unknown */
    char **groups;
    size_t ngroups;
    struct auth_extra *extra;   /* keys in arrival order */
    size_t nextra;
};
void auth_user_free(struct auth_user *u);   /* frees members; NULL ok */
bool auth_user_in_group(const struct auth_user *u, const char *group);

struct authn;

/* Builds the authenticator from the options (client_ca_file,
 * requestheader_*, authentication_skip_lookup,
 * authentication_tolerate_lookup_failure,
 * authentication_token_webhook_cache_ttl_ms). kc (borrowed, outlives the
 * authn) serves TokenReviews and the ConfigMap; NULL disables both (the
 * lookup is then skipped). Start-up failures carry Go's text, e.g.
 * "unable to load configmap based request-header-client-ca-file:
 * configmaps \"extension-apiserver-authentication\" not found". */
struct authn *authn_new(const struct options *o, struct kube_client *kc,
                        char *err, size_t errlen);
/* Stops the watch thread and frees everything; NULL is a no-op. */
void authn_free(struct authn *a);

/* The PEM union of the client CA and the request-header CA known now (the
 * server asks clients for certificates issued by these), malloc'd; NULL
 * when neither is configured. */
char *authn_trust_pem(struct authn *a);

/* Authenticates one request. hc: the calling thread's HTTP client (NULL:
 * the kube client's shared one). budget_ms bounds a TokenReview call (the
 * request's remaining time; at most 10 s is used). Returns 0 with *out
 * filled (anonymous when no credential was presented; group
 * system:authenticated added as Go does), or -1 (answer 401) with the
 * reason in err for the log. */
int authn_authenticate(struct authn *a, const struct server_request *req,
                       struct http_client *hc, int64_t budget_ms,
                       struct auth_user *out, char *err, size_t errlen);
#endif
