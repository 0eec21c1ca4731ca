/* api.h: the HTTP API of the adapter: routing, discovery documents, health
 * endpoints, and the per-thread state of the request handlers.
 * Uses: server (request/response), cache (registry snapshots), engine (one
 * per pool thread, for rendering), prom and kcache (through custom.c).
 * Never writes to the cache or the engine's config: data flows one way. */
#ifndef ADAPTER_API_H
#define ADAPTER_API_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "cache.h"
#include "reload.h"
#include "server.h"

struct engine;
struct http_client;
struct prom_client;
struct kcache_set;
struct relist;
struct jsonw;
struct prom_result;
struct engine_resource_req;

/* An observer of the queries a metrics.k8s.io request sends, for
 * `explain` (cli.c); the adapter leaves it NULL. resource.c calls query
 * once per query after its batch ran, on the handler's thread, before the
 * answer is written: first marks the first query of a batch (the queries
 * sent together), promql is NULL or "" when it was not rendered, rc 0 with
 * the raw result res (borrowed for the call) or -1 with err (the words of
 * PA's log line). */
struct resource_trace {
    void (*query)(void *ctx, const struct engine_resource_req *rq, bool first,
                  const char *promql, int rc, const char *err,
                  const struct prom_result *res);
    void *ctx;
};

struct api {
    struct cache *cache;              /* borrowed */
    struct relist *relist;            /* borrowed; poked on mapper misses */
    struct prom_client *prom;         /* borrowed */
    struct kcache_set *kcache;        /* borrowed */
    struct config_store *config;      /* borrowed: each thread builds its
                                       * own engine from the current
                                       * snapshot, again when it changes */
    const char *config_file;
    const char *lua_dir;
    /* Follow the config: set at start-up and by a reload (main.c). */
    atomic_bool has_custom, has_external, has_resource;
    int64_t request_timeout_ms;       /* --request-timeout */
    int64_t prom_timeout_ms;          /* --prometheus-timeout */
    int secure_port;
    atomic_bool shutting_down;        /* readyz fails once set */
    const struct resource_trace *resource_trace;  /* borrowed; NULL: none */
    /* What api_serve wraps with the request metrics: the authentication
     * and authorization filter chain (main.c), or api_handle when NULL.
     * Set before the server starts. */
    server_handler next;
    void *next_ctx;
    void *(*next_thread_init)(void *next_ctx);
    void (*next_thread_fini)(void *next_ctx, void *thread);
};

/* State of one server pool thread (server_config.thread_init). */
struct api_thread {
    struct engine *engine;            /* NULL if it could not be built */
    struct http_client *http;
    uint64_t resources_generation;    /* of the map the engine was given */
    uint64_t config_generation;       /* of the config it was built from */
};

void *api_thread_init(void *api);
void api_thread_fini(void *api, void *thread);
void api_handle(void *api, const struct server_request *req,
                struct server_response *resp);
/* The server's handler: api->next (or api_handle) inside request
 * counting, latency and in-flight metrics (http_requests_total{route,code}
 * ...), so 401/403/429 answers of the filter chain are counted too. The
 * thread hooks forward to next_thread_init/fini (or api_thread_*). */
void api_serve(void *api, const struct server_request *req,
               struct server_response *resp);
void *api_serve_thread_init(void *api);
void api_serve_thread_fini(void *api, void *thread);
/* Handler of the optional plain-HTTP --metrics-bind-address listener:
 * /metrics (no authentication) and the health endpoints; 404 elsewhere. */
void api_metrics_handle(void *api, const struct server_request *req,
                        struct server_response *resp);
/* The bounded label for a request path (route="..."): health and metrics
 * paths as they are, API paths with every variable segment as "*". */
void api_route_label(const char *path, char *out, size_t outlen);

/* -- Shared by the API handlers (api.c, custom.c) -- */

struct api_call {                     /* one request being answered */
    struct api *api;
    struct api_thread *thread;
    const struct server_request *req;
    struct server_response *resp;
    struct cache_snap *snap;          /* acquired for the whole request */
    bool pretty;
    int64_t timeout_ms;               /* this request's deadline */
};

/* Finishes w into resp as a 200 (or status) JSON answer; frees w. */
void api_send_json(struct api_call *c, int status, struct jsonw *w);
/* Milliseconds left before the request's deadline. */
int64_t api_remaining_ms(const struct api_call *c);
/* What a Prometheus call of this request may take: the time left, capped
 * by --prometheus-timeout. */
int64_t api_prom_budget_ms(const struct api_call *c);
/* One instant query at "now" within the budget. On failure answers the
 * request (504 when the deadline has passed, else 500 "unable to fetch
 * metrics", the cause logged) and returns -1; *out is then NULL. */
struct prom_result;
int api_prom_query(struct api_call *c, const char *query,
                   struct prom_result **out);

/* custom.metrics.k8s.io/<version>/<segs...> (segs after the version). */
void custom_handle(struct api_call *c, const char *version,
                   const char *const *segs, size_t nsegs);
/* The APIResourceList of custom.metrics.k8s.io/<version>. */
void custom_discovery(struct api_call *c, const char *version);

/* external.metrics.k8s.io/v1beta1/<segs...> and its APIResourceList. */
void external_handle(struct api_call *c, const char *const *segs, size_t n);
void external_discovery(struct api_call *c);

/* metrics.k8s.io/v1beta1/<segs...> (resource.c) and its APIResourceList. */
void resource_handle(struct api_call *c, const char *const *segs, size_t n);
void resource_discovery(struct api_call *c);
#endif
