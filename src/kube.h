/* kube.h: Kubernetes client configuration, authenticated requests and API
 * discovery (spec-server.md §10).
 * Provides: kubeconfig / in-cluster loading into struct kube_config (also
 * used for --prometheus-auth-config and --prometheus-auth-incluster: the
 * TLS and auth pieces come out as a struct http_tls plus token / basic
 * fields); struct kube_client, which adds the API base URL, token-file
 * rotation and a request counter; kube_do for any API call; kube_discover
 * for the /api + /apis resource list (architecture.md "Resource list").
 * Uses: http_client.h (libcurl), libyaml's document API directly (the one
 * libyaml user besides yaml.c, so that kubeconfig loading needs no Lua),
 * yajl's tree API for the small discovery documents (kube_json_parse
 * also parses kcache's LIST and WATCH texts), gotls.h (Go's base64 for
 * the *-data fields and client-go's certificate checks).
 * Must never: log tokens, passwords or keys; make a request without a
 * timeout; support exec/auth-provider plugins silently (they are errors). */
#ifndef ADAPTER_KUBE_H
#define ADAPTER_KUBE_H
#include <stdbool.h>
#include <stddef.h>
#include "http_client.h"

/* The connection and credential pieces of one kubeconfig context (or of the
 * in-cluster environment). Every string is owned by the struct (NULL when
 * absent); `tls` points into them, so copy the struct only through
 * kube_config_load. */
struct kube_config {
    char *server;        /* API base URL, no trailing '/'; may carry a path */
    struct http_tls tls; /* borrows the strings below */
    char *ca_file;       /* paths are absolute or relative to the cwd */
    char *ca_pem;        /* decoded certificate-authority-data */
    char *cert_file;
    char *cert_pem;
    char *key_file;
    char *key_pem;
    char *server_name;   /* tls-server-name */
    char *token;         /* static bearer token */
    char *token_file;    /* bearer token file, re-read when it changes */
    char *username;      /* basic auth */
    char *password;
    bool in_cluster;
};

/* Loads the current context of the kubeconfig at `path` (a single file; no
 * $KUBECONFIG merging). path NULL or "" loads the in-cluster config:
 * KUBERNETES_SERVICE_HOST/PORT, the service-account token and ca.crt from
 * /var/run/secrets/kubernetes.io/serviceaccount (the environment variable
 * PROMLUA_SERVICEACCOUNT_DIR overrides that directory, for tests).
 * Checks what client-go checks when it builds the config and then the
 * transport, with its messages: missing files, bad base64, a CA without a
 * usable certificate, a client pair given as data that does not load or
 * match. Returns 0; -1 with the reason in err for a config error
 * (`stat <f>: ...`, `error loading config file ...`, `invalid
 * configuration: ...`); -2 for a transport error (`unable to load root
 * certificates: ...`, `tls: ...`). *out is then empty. */
int kube_config_load(const char *path, struct kube_config *out,
                     char *err, size_t errlen);
void kube_config_free(struct kube_config *c);

/* Reads the current bearer token: the static token, else the token file
 * (trailing whitespace trimmed). Returns a malloc'd string the caller
 * frees, NULL with err set when the file cannot be read, or NULL with
 * err[0] == '\0' when the config has no token. */
char *kube_config_token(const struct kube_config *c, char *err, size_t errlen);

struct kube_client;

/* Takes ownership of *cfg (the struct is emptied). timeout_ms bounds each
 * request (0 = 30 s). Thread-safe: kube_do may be called from any thread,
 * each with its own http_client. */
struct kube_client *kube_client_new(struct kube_config *cfg, long timeout_ms,
                                    char *err, size_t errlen);
void kube_client_free(struct kube_client *kc);
/* Client-side rate limit as client-go's token bucket (--client-qps,
 * --client-burst): every kube_do (watches included) takes one token and
 * waits for it. qps <= 0 disables the limit (the default). Call before the
 * client is shared. */
void kube_client_set_rate_limit(struct kube_client *kc, double qps, int burst);
const struct kube_config *kube_client_config(const struct kube_client *kc);
long kube_client_timeout_ms(const struct kube_client *kc);

/* Performs one API call: `path` ("/api/v1/pods?limit=500") is appended to
 * the server URL; req->url, tls, bearer_token, basic_* are filled in here
 * (other fields are the caller's: method, body, streaming callbacks; a
 * zero timeout_ms becomes the client's timeout; headers NULL becomes the
 * default Accept header, JSON then anything). hc: the calling thread's client, or
 * NULL to use the kube_client's own (serialised by a mutex). Same return
 * contract as http_client_do; resp->body is the caller's to buf_free. */
int kube_do(struct kube_client *kc, struct http_client *hc, const char *path,
            struct http_req *req, struct http_resp *resp,
            char *err, size_t errlen);
/* kube_do, also recording the call in the adapter's metrics (metrics.h):
 * its latency in kubernetes_request_duration_seconds{verb} and, when it
 * fails in transport or answers a status other than 2xx,
 * kubernetes_request_errors_total{verb}. verb is a fixed label
 * ("tokenreview", "subjectaccessreview", "configmap"), never request data. */
int kube_do_measured(struct kube_client *kc, struct http_client *hc,
                     const char *verb, const char *path, struct http_req *req,
                     struct http_resp *resp, char *err, size_t errlen);

/* Requests made so far through this client (every kube_do call). */
unsigned long kube_request_count(const struct kube_client *kc);

/* One API resource from discovery (subresources are left out). */
struct kube_resource {
    char *group;      /* "" for the core group */
    char *version;
    char *resource;   /* plural name, "deployments" */
    char *singular;   /* singularName, or the lower-cased kind */
    char *kind;
    bool namespaced;
    bool preferred;   /* version is the group's preferred version */
};

/* Full discovery: GET /api, /api/<v>, /apis, /apis/<g>/<v>. Order: core
 * versions first, then groups in /apis order, versions in listed order,
 * resources as listed. A failing group-version is logged and skipped; a
 * failing /api or /apis fails the call. *out is a malloc'd array of *n
 * entries; free with kube_resources_free. */
int kube_discover(struct kube_client *kc, struct kube_resource **out,
                  size_t *n, char *err, size_t errlen);
void kube_resources_free(struct kube_resource *r, size_t n);

/* yajl_tree_parse of the NUL-terminated text of a Kubernetes answer, read
 * as Go's decoder (client-go) reads it: invalid UTF-8 in a string becomes
 * one U+FFFD per bad byte instead of failing the whole document (yajl's
 * tree parser rejects it). A yajl_val, freed with yajl_tree_free; NULL with
 * yajl's message, or "out of memory", in perr. */
struct yajl_val_s;
struct yajl_val_s *kube_json_parse(const char *text, char *perr,
                                   size_t perrlen);
#endif
