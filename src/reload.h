/* reload.h: the configuration as an immutable, refcounted snapshot, and
 * its reload on SIGHUP or when the config file or a hook script changes
 * (decisions.md #42).
 * Provides:
 *  - struct config_store: the current struct config_snap (config text plus
 *    which APIs it installs), swapped under a mutex; readers take a
 *    reference and compare `generation` with the one their engine was
 *    built from (each server thread and the relist thread rebuild their
 *    own engine when it changes);
 *  - struct reload: re-reads and validates everything (a fresh engine is
 *    built from the new text with engine_new, exactly as at start-up),
 *    then publishes; on any error the old snapshot keeps serving and the
 *    reason is logged. A watcher thread (inotify on the files'
 *    directories, so ConfigMap symlink swaps are seen) triggers the same
 *    reload after a debounce.
 * Sets config_last_reload_successful / _success_timestamp_seconds and
 * config_reloads_total{outcome} (metrics.h).
 * Uses: engine.h (validation), metrics.h, log.h, pthreads, inotify.
 * Never touches the network, the cache or a server thread's engine. */
#ifndef ADAPTER_RELOAD_H
#define ADAPTER_RELOAD_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct engine_hooks;

struct config_snap {
    int refs;                      /* guarded by the store's mutex */
    uint64_t generation;           /* 1 for the start-up config */
    char *text;                    /* owned, NUL-terminated */
    size_t len;
    const char *const *script_paths; /* borrowed (the options outlive it) */
    char **script_texts;           /* owned, read with the config */
    size_t nscripts;
    long hook_timeout_ms;
    bool has_custom, has_external, has_resource; /* set once validated */
};

struct config_store {
    pthread_mutex_t mu;
    struct config_snap *cur;       /* never NULL after config_store_init */
};

/* Reads the config file and every script into a new, unvalidated,
 * unpublished snapshot (*out). -1 with "open FILE: reason" in err. */
int config_snap_load(const char *config_file, const char *const *scripts,
                     size_t nscripts, long hook_timeout_ms,
                     struct config_snap **out, char *err, size_t errlen);
void config_snap_free(struct config_snap *s);   /* unpublished only */
/* Fills h from the snapshot (borrowing its arrays) for engine_new. */
void config_snap_hooks(const struct config_snap *s, struct engine_hooks *h);

/* Publishes the validated start-up snapshot (ownership passes to the
 * store, generation 1). */
void config_store_init(struct config_store *s, struct config_snap *snap);
void config_store_destroy(struct config_store *s);
/* A reference to the current snapshot; release with config_release. */
struct config_snap *config_acquire(struct config_store *s);
void config_release(struct config_store *s, struct config_snap *snap);
/* The current generation, without taking a reference. */
uint64_t config_generation(struct config_store *s);


struct reload_opts {
    struct config_store *store;    /* borrowed, outlives the reload */
    const char *config_file;       /* borrowed */
    const char *const *scripts;    /* --lua-script files (watched); borrowed */
    size_t nscripts;
    long hook_timeout_ms;          /* --lua-hook-timeout */
    const char *lua_dir;           /* borrowed; NULL for the embedded modules */
    long debounce_ms;              /* quiet time after a change; 0 = 500 */
    bool watch;                    /* start the inotify watcher thread */
    /* Called (on the reloading thread, after the swap) with the new
     * snapshot, borrowed for the call: main updates the APIs served and
     * wakes the relist thread. */
    void (*on_swap)(void *ctx, const struct config_snap *snap);
    void *ctx;
};

struct reload;

/* Records the start-up load as successful and, with o->watch, starts the
 * watcher thread. NULL (err) when inotify cannot be set up. */
struct reload *reload_start(const struct reload_opts *o, char *err,
                            size_t errlen);
/* Re-reads and validates now (the SIGHUP path); serialised with the
 * watcher. 0 when a new snapshot was published or nothing changed, -1
 * (err: every problem, "FILE:LINE: key.path: message" lines) when the old
 * config is kept. */
int reload_now(struct reload *r, char *err, size_t errlen);
/* Number of reloads attempted so far (for tests through the log). */
unsigned reload_count(struct reload *r);
void reload_stop(struct reload *r);     /* NULL is a no-op */
#endif
