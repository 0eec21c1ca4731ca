/* reload.c: configuration snapshots and their reload (see reload.h).
 * Uses engine.h (validation: a fresh engine is built and thrown away),
 * metrics.h, log.h, buf.h, pthreads and inotify.
 * Threads: the store is shared by every thread (mutex-guarded refcounts);
 * a reload runs either on the main thread (SIGHUP) or on the watcher
 * thread, serialised by r->mu so two reloads never interleave. */
#include "reload.h"
#include "buf.h"
#include "engine.h"
#include "log.h"
#include "metrics.h"
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#define MAX_WATCHED 64

/* Longest config file or hook script read. */
#define CONFIG_MAX ((size_t)64 << 20)

/* -- Store -------------------------------------------------------------- */

void
config_snap_free(struct config_snap *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nscripts; i++)
        free(s->script_texts ? s->script_texts[i] : NULL);
    free(s->script_texts);
    free(s->text);
    free(s);
}

int
config_snap_load(const char *config_file, const char *const *scripts,
                 size_t nscripts, long hook_timeout_ms,
                 struct config_snap **out, char *err, size_t errlen)
{
    struct config_snap *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        goto oom;
    s->script_paths = scripts;
    s->hook_timeout_ms = hook_timeout_ms;
    s->script_texts = calloc(nscripts + 1, sizeof *s->script_texts);
    if (!s->script_texts)
        goto oom;
    s->nscripts = nscripts;
    s->text = buf_read_file(config_file, CONFIG_MAX, &s->len, err, errlen);
    if (!s->text)
        goto fail;
    for (size_t i = 0; i < nscripts; i++) {
        size_t n;
        s->script_texts[i] = buf_read_file(scripts[i], CONFIG_MAX, &n, err, errlen);
        if (!s->script_texts[i])
            goto fail;
    }
    *out = s;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    config_snap_free(s);
    return -1;
}

void
config_snap_hooks(const struct config_snap *s, struct engine_hooks *h)
{
    memset(h, 0, sizeof *h);
    h->paths = s->script_paths;
    h->texts = (const char *const *)s->script_texts;
    h->n = s->nscripts;
    h->timeout_ms = s->hook_timeout_ms;
}

void
config_store_init(struct config_store *s, struct config_snap *snap)
{
    pthread_mutex_init(&s->mu, NULL);
    snap->refs = 1;                /* the store's own reference */
    snap->generation = 1;
    s->cur = snap;
}

void
config_store_destroy(struct config_store *s)
{
    if (!s || !s->cur)
        return;
    config_snap_free(s->cur);      /* every reader released by now */
    s->cur = NULL;
    pthread_mutex_destroy(&s->mu);
}

struct config_snap *
config_acquire(struct config_store *s)
{
    pthread_mutex_lock(&s->mu);
    struct config_snap *c = s->cur;
    c->refs++;
    pthread_mutex_unlock(&s->mu);
    return c;
}

void
config_release(struct config_store *s, struct config_snap *snap)
{
    if (!snap)
        return;
    pthread_mutex_lock(&s->mu);
    bool last = --snap->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        config_snap_free(snap);
}

uint64_t
config_generation(struct config_store *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t g = s->cur->generation;
    pthread_mutex_unlock(&s->mu);
    return g;
}

/* Takes ownership of next; drops the store's reference to the old one. */
static void
publish(struct config_store *s, struct config_snap *next)
{
    pthread_mutex_lock(&s->mu);
    struct config_snap *old = s->cur;
    next->generation = old->generation + 1;
    next->refs = 1;
    s->cur = next;
    bool last = --old->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        config_snap_free(old);
}


/* -- Reloader ----------------------------------------------------------- */

struct reload {
    struct reload_opts o;
    pthread_mutex_t mu;             /* serialises reloads */
    unsigned count;                 /* guarded by mu */
    int ifd;                        /* inotify, -1 when not watching */
    int stop_pipe[2];
    int wd[MAX_WATCHED];
    size_t nwd;
    pthread_t thread;
    bool started;
};

static double
wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Whether two snapshots hold the same config and scripts. */
static bool
same_content(const struct config_snap *a, const struct config_snap *b)
{
    if (a->len != b->len || memcmp(a->text, b->text, a->len) ||
        a->nscripts != b->nscripts)
        return false;
    for (size_t i = 0; i < a->nscripts; i++)
        if (strcmp(a->script_texts[i], b->script_texts[i]))
            return false;
    return true;
}

/* The gauges follow every load (start-up included); the counter counts
 * reload attempts only. */
static void
record(bool ok, bool startup)
{
    metrics_set(METRICS_RELOAD_OK, NULL, NULL, ok ? 1 : 0);
    if (!startup)
        metrics_add(METRICS_RELOADS, ok ? "success" : "failure", NULL, 1);
    if (ok)
        metrics_set(METRICS_RELOAD_TS, NULL, NULL, wall_now());
}

/* One reload; r->mu held. force: publish even when nothing changed. */
static int
reload_locked(struct reload *r, bool force, char *err, size_t errlen)
{
    struct engine *e = NULL;
    struct config_snap *next = NULL;
    int rc = -1;
    r->count++;
    if (config_snap_load(r->o.config_file, r->o.scripts, r->o.nscripts,
                         r->o.hook_timeout_ms, &next, err, errlen) != 0)
        goto fail;
    if (!force) {
        struct config_snap *cur = config_acquire(r->o.store);
        bool same = same_content(cur, next);
        config_release(r->o.store, cur);
        if (same) {
            LOGV(2, "config reload: %s unchanged", r->o.config_file);
            rc = 0;
            goto done;
        }
    }
    /* The same validation as start-up: a full engine is built (rules,
     * templates, regexes, hooks) and thrown away; each thread builds its
     * own from the published snapshot. */
    struct engine_hooks hooks;
    config_snap_hooks(next, &hooks);
    e = engine_new(next->text, next->len, r->o.config_file, r->o.lua_dir,
                   &hooks, true, err, errlen);
    if (!e)
        goto fail;
    next->has_custom = engine_has(e, "custom");
    next->has_external = engine_has(e, "external");
    next->has_resource = engine_has(e, "resource");
    publish(r->o.store, next);
    LOGI("config reloaded from %s (generation %llu)", r->o.config_file,
         (unsigned long long)next->generation);
    next = NULL;
    record(true, false);
    if (r->o.on_swap) {
        struct config_snap *cur = config_acquire(r->o.store);
        r->o.on_swap(r->o.ctx, cur);
        config_release(r->o.store, cur);
    }
    rc = 0;
    goto done;
fail:
    record(false, false);
    LOGE("config reload refused, keeping the previous config: %s", err);
done:
    engine_free(e);
    config_snap_free(next);
    return rc;
}

int
reload_now(struct reload *r, char *err, size_t errlen)
{
    pthread_mutex_lock(&r->mu);
    int rc = reload_locked(r, true, err, errlen);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

unsigned
reload_count(struct reload *r)
{
    pthread_mutex_lock(&r->mu);
    unsigned n = r->count;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Adds an inotify watch on the directory holding path. Kubernetes mounts
 * ConfigMaps as symlinks into a "..data" directory that is swapped with a
 * rename, which only a directory watch sees. */
static int
watch_dir_of(struct reload *r, const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (r->nwd >= MAX_WATCHED)
        return 0;
    int wd = inotify_add_watch(r->ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO |
                               IN_CREATE | IN_DELETE | IN_ATTRIB |
                               IN_MOVED_FROM);
    if (wd < 0) {
        snprintf(err, errlen, "watch %s: %s", dir, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < r->nwd; i++)
        if (r->wd[i] == wd)
            return 0;              /* same directory, same descriptor */
    r->wd[r->nwd++] = wd;
    return 0;
}

/* Whether an event name concerns one of our files (or ..data). */
static bool
relevant(const struct reload *r, const char *name)
{
    if (!name || !*name || !strcmp(name, "..data"))
        return true;
    const char *b = strrchr(r->o.config_file, '/');
    if (!strcmp(b ? b + 1 : r->o.config_file, name))
        return true;
    for (size_t i = 0; i < r->o.nscripts; i++) {
        b = strrchr(r->o.scripts[i], '/');
        if (!strcmp(b ? b + 1 : r->o.scripts[i], name))
            return true;
    }
    return false;
}

static void *
watch_thread(void *arg)
{
    struct reload *r = arg;
    long debounce = r->o.debounce_ms > 0 ? r->o.debounce_ms : 500;
    bool pending = false;
    double due = 0;                 /* reload time while pending (metrics_now) */
    char evbuf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        int timeout = -1;
        if (pending) {
            double left = due - metrics_now();
            if (left <= 0) {
                /* Quiet for the debounce time: editors and kubelet write
                 * in several steps; reload once, when they are done. */
                pending = false;
                char err[8192];
                pthread_mutex_lock(&r->mu);
                reload_locked(r, false, err, sizeof err);
                pthread_mutex_unlock(&r->mu);
                continue;
            }
            timeout = (int)(left * 1000.0) + 1;  /* never 0: no spin */
        }
        struct pollfd p[2] = {
            { .fd = r->ifd, .events = POLLIN },
            { .fd = r->stop_pipe[0], .events = POLLIN },
        };
        int n = poll(p, 2, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (p[1].revents & (POLLIN | POLLHUP)))
            break;
        if (n == 0)
            continue;               /* the debounce time is up (above) */
        ssize_t len = read(r->ifd, evbuf, sizeof evbuf);
        if (len <= 0)
            continue;
        /* Only events about our files restart the debounce time: other
         * files changing in the same directory (often, say) must not put
         * the reload off forever. */
        for (char *q = evbuf; q < evbuf + len;) {
            struct inotify_event *ev = (struct inotify_event *)(void *)q;
            if (relevant(r, ev->len ? ev->name : NULL)) {
                pending = true;
                due = metrics_now() + debounce / 1000.0;
            }
            q += sizeof *ev + ev->len;
        }
    }
    return NULL;
}

struct reload *
reload_start(const struct reload_opts *o, char *err, size_t errlen)
{
    struct reload *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->o = *o;
    r->ifd = -1;
    r->stop_pipe[0] = r->stop_pipe[1] = -1;
    pthread_mutex_init(&r->mu, NULL);
    record(true, true);            /* the start-up load */
    if (!o->watch)
        return r;
    r->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (r->ifd < 0) {
        snprintf(err, errlen, "inotify: %s", strerror(errno));
        goto fail;
    }
    if (pipe(r->stop_pipe) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    if (watch_dir_of(r, o->config_file, err, errlen) != 0)
        goto fail;
    for (size_t i = 0; i < o->nscripts; i++)
        if (watch_dir_of(r, o->scripts[i], err, errlen) != 0)
            goto fail;
    if (pthread_create(&r->thread, NULL, watch_thread, r) != 0) {
        snprintf(err, errlen, "pthread_create: %s", strerror(errno));
        goto fail;
    }
    r->started = true;
    return r;
fail:
    reload_stop(r);
    return NULL;
}

void
reload_stop(struct reload *r)
{
    if (!r)
        return;
    if (r->started) {
        ssize_t w = write(r->stop_pipe[1], "x", 1);
        (void)w;
        pthread_join(r->thread, NULL);
    }
    if (r->ifd >= 0)
        close(r->ifd);
    if (r->stop_pipe[0] >= 0)
        close(r->stop_pipe[0]);
    if (r->stop_pipe[1] >= 0)
        close(r->stop_pipe[1]);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
