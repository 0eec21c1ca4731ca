/* kcache.h: metadata-only LIST+WATCH caches of Kubernetes objects, one per
 * (group, version, resource, fieldSelector), across all namespaces.
 * Provides: a set of caches started on first use; readers get immutable,
 * refcounted snapshots (namespace, name, sorted labels of every object,
 * sorted by namespace then name) that they may keep while the cache moves
 * on; a request counter so specs can check "no Kubernetes call once warm".
 * Uses: kube.h (kube_do: URL, auth, TLS), http_client.h (one client per
 * cache thread, streamed watch bodies), yajl's tree parser (one list page
 * or one watch event at a time), pthreads.
 * Threads: one background thread per cache runs LIST (limit=500 pages),
 * then WATCH (allowWatchBookmarks, timeoutSeconds=300), re-watching when a
 * watch ends cleanly and re-listing with backoff on 410 Gone, ERROR events
 * or broken streams. Bursts of watch events are coalesced: a new snapshot
 * is published at most every ~100 ms. Every other function is thread-safe.
 * Must never: hand out a snapshot that is mutated later, block a reader
 * beyond its wait_ms, or log object contents at default verbosity. */
#ifndef ADAPTER_KCACHE_H
#define ADAPTER_KCACHE_H
#include <stdbool.h>
#include <stddef.h>
#include "kube.h"

struct kcache_obj {
    const char *namespace;            /* "" for cluster-scoped objects */
    const char *name;
    size_t nlabels;
    const char *const *label_keys;    /* sorted (byte order) */
    const char *const *label_values;
};

/* Immutable once published; all pointers live until kcache_release. */
struct kcache_snap {
    size_t n;
    const struct kcache_obj *objs;    /* sorted by namespace, then name */
    unsigned long generation;         /* increases with every publish */
    /* private */
    _Atomic int refs_;
};

struct kcache_set;

/* kc is borrowed and must outlive the set. */
struct kcache_set *kcache_set_new(struct kube_client *kc, char *err,
                                  size_t errlen);
/* Stops and joins every cache thread, then frees the caches; snapshots
 * still held by readers stay valid until released. NULL is a no-op. */
void kcache_set_free(struct kcache_set *s);

/* Returns a reference to the current snapshot of the cache for group ("" =
 * core) / version / resource with the given fieldSelector (NULL or "" for
 * none), starting the cache on first use. Until the cache has completed
 * its first LIST this waits up to wait_ms; then it fails (NULL, err says
 * why, including the last LIST error). Release the result. */
struct kcache_snap *kcache_acquire(struct kcache_set *s, const char *group,
                                   const char *version, const char *resource,
                                   const char *field_selector, long wait_ms,
                                   char *err, size_t errlen);
void kcache_release(struct kcache_snap *snap);

/* Objects of namespace ns are objs[*first .. *last) (binary search);
 * returns the count (0: *first == *last). */
size_t kcache_ns_range(const struct kcache_snap *snap, const char *ns,
                       size_t *first, size_t *last);
/* Index of (ns, name), or -1. */
long kcache_find(const struct kcache_snap *snap, const char *ns,
                 const char *name);
/* Value of label key on obj, or NULL (binary search). */
const char *kcache_obj_label(const struct kcache_obj *obj, const char *key);

/* LIST and WATCH requests made by all caches of the set so far. */
unsigned long kcache_request_count(struct kcache_set *s);
#endif
