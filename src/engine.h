/* engine.h: the C face of one Lua rules engine (lua/adapter/engine.lua).
 * Provides: building an engine from the config text, and the calls the
 * relist thread (series queries, resources, discover) and the request
 * handlers (render) make into it.
 * Uses: lx (LuaJIT state, protected calls), yaml (config text -> node
 * tree), cache (discover writes entries into a snapshot being built),
 * prom (series shapes). Never touches the network.
 * Threads: an engine owns one lua_State and is used by one thread only.
 * Every thread that needs one builds its own from the same config text. */
#ifndef ADAPTER_ENGINE_H
#define ADAPTER_ENGINE_H
#include <stdbool.h>
#include <stddef.h>
#include "buf.h"
#include "cache.h"

struct engine;
struct prom_shapes;

/* Builds the engine. On invalid config returns NULL and puts every error
 * as "FILE:LINE: key.path: message" lines into err. Warnings are logged
 * (same format) when log_warnings is true. */
struct engine *engine_new(const char *config_text, size_t len,
                          const char *config_file, const char *lua_dir,
                          bool log_warnings, char *err, size_t errlen);
void engine_free(struct engine *e);

/* kind: "custom", "external" or "resource". */
bool engine_has(struct engine *e, const char *kind);

/* Distinct seriesQuery strings of one kind; *out is malloc'd (strings
 * too); free with engine_strv_free. */
int engine_series_queries(struct engine *e, const char *kind, char ***out,
                          size_t *n, char *err, size_t errlen);
void engine_strv_free(char **v, size_t n);

/* Hands the RESTMapper data to the engine. Fails (err) when a rule's
 * override does not resolve: PA treats that as fatal at start-up. */
int engine_set_resources(struct engine *e, const struct cache_resource *r,
                         size_t n, char *err, size_t errlen);

/* Runs discovery for one kind. For query i, shapes[i] holds the series
 * shapes, or is NULL with errors[i] the reason it failed. Entries go into
 * snap; the 1-based indices of rules whose query failed are returned in
 * *failed (malloc'd, *nfailed entries) so the caller can keep their
 * previous entries. */
int engine_discover(struct engine *e, const char *kind, char **queries,
                    struct prom_shapes **shapes, char **errors, size_t nq,
                    struct cache_snap *snap, int **failed, size_t *nfailed,
                    char *err, size_t errlen);

struct engine_custom_req {
    const struct cache_custom *entry;
    const char *namespace_;        /* "" for root-scoped */
    const char *const *names;      /* object names, in order */
    size_t nnames;
    const char *metric_selector;   /* raw metricLabelSelector, "" if none */
};

struct engine_external_req {
    const struct cache_external *entry;
    const char *namespace_;
    const char *selector;          /* raw labelSelector */
};

/* Render a query. On success returns 0 with the PromQL in query and, for
 * custom metrics, the LabelSelector echo JSON in selector_json (left
 * empty for none). On failure returns -1 with an HTTP status and a
 * message meant for the client. */
int engine_render_custom(struct engine *e, const struct engine_custom_req *r,
                         struct buf *query, struct buf *selector_json,
                         int *status, char *msg, size_t msglen);
int engine_render_external(struct engine *e,
                           const struct engine_external_req *r,
                           struct buf *query, int *status, char *msg,
                           size_t msglen);
/* -- metrics.k8s.io (spec-rules.md §7) -- */

struct engine_resource_req {
    const char *resource;          /* "cpu" or "memory" */
    bool node;                     /* nodeQuery over nodes, else the
                                    * containerQuery over pods of namespace_ */
    const char *namespace_;        /* pods' namespace (ignored for nodes) */
    const char *const *names;      /* pod or node names, in order (>= 1) */
    size_t nnames;
};

/* Renders a resource-metrics query into query. Returns -1 with the reason
 * in msg ("unable to construct query: ...") when a label is unmapped, the
 * template fails or renders empty: the caller logs it and skips the
 * batch (PA answers without those objects). */
int engine_render_resource(struct engine *e, const struct engine_resource_req *r,
                           struct buf *query, char *msg, size_t msglen);

/* Label names of one resource rule, as the engine resolved them; "" when
 * the rule maps no label to that resource. */
struct engine_resource_labels {
    char pod[256], namespace_[256], node[256], container[256];
    long long window_ms;           /* resourceRules.window */
};

/* which: "cpu" or "memory". 0, or -1 (err) when resourceRules is absent. */
int engine_resource_labels(struct engine *e, const char *which,
                           struct engine_resource_labels *out, char *err,
                           size_t errlen);
#endif
