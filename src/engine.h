/* engine.h: the C face of one Lua rules engine (lua/adapter/engine.lua).
 * Provides: building an engine from the config text, and the calls the
 * relist thread (series queries, resources, discover) and the request
 * handlers (render) make into it.
 * Uses: lx (LuaJIT state, protected calls), yaml (config text -> node
 * tree), cache (discover writes entries into a snapshot being built),
 * prom (series shapes). Never touches the network.
 * Threads: an engine owns one lua_State and is used by one thread only.
 * Every thread that needs one builds its own from the same config text
 * and the same user hook scripts (--lua-script, docs/hooks.md).
 * Hooks: compute hooks reach Prometheus only through prom.query, a C
 * function bound to the prom client and HTTP client the owning thread
 * hands over with engine_set_io (never another thread's). */
#ifndef ADAPTER_ENGINE_H
#define ADAPTER_ENGINE_H
#include <stdbool.h>
#include <stddef.h>
#include "buf.h"
#include "cache.h"

struct engine;
struct prom_shapes;
struct prom_client;
struct http_client;
struct prom_sample;

/* User hook scripts (--lua-script), loaded by every engine in order after
 * the built-in engine. Borrowed by engine_new for the call only. */
struct engine_hooks {
    const char *const *paths;      /* script files, in order */
    const char *const *texts;      /* their contents, NUL-terminated, read
                                    * once at start-up so that every thread
                                    * loads the same code; NULL: engine_new
                                    * reads paths itself */
    size_t n;
    long timeout_ms;               /* --lua-hook-timeout; <= 0: 1000 */
};

/* Builds the engine. On invalid config returns NULL and puts every error
 * as "FILE:LINE: key.path: message" lines into err (a hook script that
 * fails to load: "SCRIPT:LINE: message"; a rule naming a function no
 * script exports: "FILE:LINE: rules[i].hooks.<step>: ..."). Warnings are
 * logged (same format) when log_warnings is true. hooks may be NULL.
 * Inputs (config text and file, lua_dir, hook paths and texts) that
 * already built an engine in this process cannot be invalid: with
 * log_warnings false and hook texts given, such an engine is returned
 * deferred and its Lua state is built by the first call below that needs
 * one (engine_set_io does not), on that caller's thread. A worker that
 * never renders (health probes only) so never holds a Lua state. Should
 * that build fail (out of memory), every call fails with the reason. */
struct engine *engine_new(const char *config_text, size_t len,
                          const char *config_file, const char *lua_dir,
                          const struct engine_hooks *hooks,
                          bool log_warnings, char *err, size_t errlen);
void engine_free(struct engine *e);

/* Binds prom.query of compute hooks to this thread's clients (both
 * borrowed for the engine's life; NULL unbinds: prom.query then returns
 * nil and an error). */
void engine_set_io(struct engine *e, struct prom_client *prom,
                   struct http_client *http);

/* kind: "custom", "external" or "resource". */
bool engine_has(struct engine *e, const char *kind);
/* Number of rules of kind "custom" (rules) or "external" (externalRules). */
int engine_rule_count(struct engine *e, const char *kind);

/* Distinct seriesQuery strings of one kind; *out is malloc'd (strings
 * too); free with engine_strv_free. */
int engine_series_queries(struct engine *e, const char *kind, char ***out,
                          size_t *n, char *err, size_t errlen);
/* Every rule's seriesQuery of one kind, in rule order (index k is rule
 * k + 1, duplicates kept), to map per-query results back to rules (the
 * per-rule relist metrics). Same ownership as engine_series_queries. */
int engine_rule_queries(struct engine *e, const char *kind, char ***out,
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
    const char *label_selector;    /* raw labelSelector of the objects, NULL
                                    * or "" if none (hooks see it) */
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
/* -- Compute hooks (docs/hooks.md) -- */

/* Samples a compute hook returned: each keys[] sorted (strcmp), as
 * prom.c sorts query samples, so the same matching code reads both. A
 * sample the hook gave no labels has keys NULL (nlabels 0): it is served
 * as a scalar answer is (external metrics: metricLabels null). */
struct engine_samples {
    size_t n;
    struct prom_sample *v;         /* owned, with every string */
};
void engine_samples_free(struct engine_samples *s);

/* kind "custom" | "external"; rule: the entry's 1-based rule index. True
 * when a compute hook replaces that rule's single query. */
bool engine_has_compute(struct engine *e, const char *kind, int rule);

/* Runs the rule's compute hook. prom.query calls made by it get at most
 * budget_ms in all (the request deadline and --prometheus-timeout); time
 * spent in them does not count against --lua-hook-timeout. On success *out
 * holds the samples (engine_samples_free; a sample without a timestamp
 * gets now) and, for custom metrics, selector_json the LabelSelector
 * echo. On failure -1 with an HTTP status (400 for a bad selector, 500
 * for a failed hook: msg names the hook and the error). A hook that hands
 * on a failure of prom.query or `default` unchanged gets the built-in
 * path's answer: 500 "unable to fetch metrics", 504 (status_timeout),
 * or ENGINE_STATUS_UNTYPED. */
#define ENGINE_STATUS_UNTYPED 1500  /* a 500 Status without a reason
                                     * (status_unknown_error), msg as is */
int engine_compute_custom(struct engine *e, const struct engine_custom_req *r,
                          long budget_ms, struct engine_samples **out,
                          struct buf *selector_json, int *status, char *msg,
                          size_t msglen);
int engine_compute_external(struct engine *e,
                            const struct engine_external_req *r,
                            long budget_ms, struct engine_samples **out,
                            int *status, char *msg, size_t msglen);

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
