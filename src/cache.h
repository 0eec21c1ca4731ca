/* cache.h: the registry snapshot every request reads: which metrics exist
 * (custom and external), what series and rule answer each, the labels
 * resolved for them, and the RESTMapper data used to normalise request
 * resources.
 * Uses only libc and pthreads. Never calls Lua or the network.
 * Threads: a snapshot is immutable once published; readers take a
 * reference (cache_acquire) and drop it (cache_snap_release); the relist
 * thread builds a new snapshot off-lock and swaps it in (cache_publish).
 * Lookups never block on a relist. */
#ifndef ADAPTER_CACHE_H
#define ADAPTER_CACHE_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_resource {        /* one discovered (group, version, resource) */
    char *group, *version, *resource, *singular, *kind;
    bool namespaced, preferred;
};

struct cache_custom {          /* registry key (resource, group, namespaced, metric) */
    char *metric, *resource, *group;
    bool namespaced;
    char *series;              /* Prometheus series name (.Series) */
    int rule;                  /* 1-based index into the config's rules */
    char *resource_label;      /* label carrying the object name */
    char *namespace_label;     /* label carrying the namespace, NULL if none */
    char *kind, *version;      /* for describedObject */
};

struct cache_external {
    char *metric, *series;
    int rule;                  /* 1-based index into externalRules */
};

struct cache_snap {
    int refs;                  /* guarded by the cache mutex */
    uint64_t generation;
    uint64_t resources_generation; /* changes when the resource map does */
    bool custom_listed;        /* a custom relist has finished (readyz) */
    bool external_listed;
    struct cache_resource *resources; size_t nresources;
    struct cache_custom *custom; size_t ncustom;       /* sorted, unique keys */
    struct cache_external *external; size_t nexternal; /* sorted by metric */
};

struct cache {
    pthread_mutex_t mu;
    struct cache_snap *cur;    /* never NULL after cache_init */
    uint64_t next_generation;
};

int cache_init(struct cache *c);
void cache_destroy(struct cache *c);

/* A reference to the current snapshot; release with cache_snap_release. */
struct cache_snap *cache_acquire(struct cache *c);
void cache_snap_release(struct cache *c, struct cache_snap *s);

/* An empty, unpublished snapshot for the builder (refs = 0). */
struct cache_snap *cache_snap_new(void);
/* Frees a snapshot that was never published. */
void cache_snap_free(struct cache_snap *s);
/* Appenders used while building; strings are copied. Return -1 on OOM. */
int cache_snap_add_resource(struct cache_snap *s, const struct cache_resource *r);
int cache_snap_add_custom(struct cache_snap *s, const struct cache_custom *e);
int cache_snap_add_external(struct cache_snap *s, const struct cache_external *e);
/* Sorts and de-duplicates (last added wins per key), then publishes: takes
 * ownership of s and drops the cache's reference to the previous one. */
void cache_publish(struct cache *c, struct cache_snap *s);

const struct cache_custom *cache_find_custom(const struct cache_snap *s,
    const char *resource, const char *group, bool namespaced, const char *metric);
const struct cache_external *cache_find_external(const struct cache_snap *s,
    const char *metric);

/* RESTMapper normalisation of a request's resource (spec-rules.md §3.1):
 * lower-cases the name, matches plural or singular, exact group first then
 * group prefix; several groups: core v1 first, else discovery order.
 * Returns the matching preferred-version resource, or NULL. */
const struct cache_resource *cache_normalize(const struct cache_snap *s,
    const char *resource, const char *group);
#endif
