/* relist.h: the relist thread. Every --metrics-relist-interval it asks
 * Prometheus for the series of every distinct seriesQuery (custom and
 * external rules), runs the engine's discovery over them and publishes a
 * new registry snapshot; every --discovery-interval (and, rate-limited, when
 * a request names a resource the mapper does not know) it refreshes the
 * Kubernetes resource map first.
 * Uses: engine (its own, on this thread), prom, kube, cache.
 * Error policy: a failing query fails only its own rules, whose previous
 * entries are kept; a failing discovery keeps the previous resource map. */
#ifndef ADAPTER_RELIST_H
#define ADAPTER_RELIST_H
#include <stdbool.h>
#include <stddef.h>
#include "cache.h"

struct engine;
struct prom_client;
struct kube_client;

struct relist_opts {
    struct engine *engine;          /* ownership passes to the relist */
    struct prom_client *prom;       /* borrowed, outlives the relist */
    struct kube_client *kube;       /* borrowed */
    struct cache *cache;            /* borrowed */
    long interval_ms;
    long max_age_ms;
    long discovery_interval_ms;
    /* Reload (decisions #42): when the store's generation changes the
     * thread builds a new engine from the snapshot and relists at once.
     * NULL: the engine is never replaced. All borrowed. */
    struct config_store *config;
    const char *config_file;
    const char *lua_dir;
};

struct relist;

/* Runs the first Kubernetes discovery synchronously (start-up errors:
 * unreachable API, rule overrides that do not resolve) and publishes the
 * resource map, then starts the thread, whose first relist runs at once. */
struct relist *relist_start(const struct relist_opts *o, char *err,
                            size_t errlen);
/* Asks for an early discovery refresh (a request missed the mapper);
 * cheap, callable from any thread, rate-limited inside. */
void relist_poke(struct relist *r);
/* Wakes the thread after a config reload: it rebuilds its engine from
 * the new snapshot and relists immediately. Callable from any thread. */
void relist_reload(struct relist *r);
void relist_stop(struct relist *r);
#endif
