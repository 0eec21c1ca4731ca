/* relist.c: the relist thread (see relist.h).
 * Uses engine.h, prom.h, kube.h, http_client.h, cache.h, log.h. */
#include "relist.h"
#include "engine.h"
#include "http_client.h"
#include "kube.h"
#include "log.h"
#include "prom.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Minimum spacing of discovery refreshes triggered by request misses. */
#define POKE_MIN_INTERVAL_MS 30000L

/* Retries of a failed series call within one relist, so a transient
 * failure (connection refused, timeout, 5xx, an overloaded Prometheus)
 * does not cost a whole --metrics-relist-interval: the delay doubles from
 * RETRY_BASE_MS (capped at RETRY_CAP_MS) with +-20% jitter so replicas do
 * not retry in step, and no retry starts later than one relist interval
 * after the first attempt. */
#define RETRY_MAX 3
#define RETRY_BASE_MS 500L
#define RETRY_CAP_MS 10000L

struct relist {
    struct relist_opts o;
    struct http_client *http;       /* used by the relist thread only */
    struct cache_resource *res;     /* current resource map (thread-owned) */
    size_t nres;
    uint64_t res_gen;               /* bumped on every new resource map */
    long long last_discovery_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, poked, started;
    unsigned seed;                  /* retry jitter (relist thread only) */
};

static long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
free_resources(struct cache_resource *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].group); free(r[i].version); free(r[i].resource);
        free(r[i].singular); free(r[i].kind);
    }
    free(r);
}

/* Fetches the resource map from Kubernetes and hands it to the engine.
 * On success replaces r->res. */
static int
discover_resources(struct relist *r, char *err, size_t errlen)
{
    struct kube_resource *kr = NULL;
    size_t n = 0;
    if (kube_discover(r->o.kube, &kr, &n, err, errlen) != 0)
        return -1;
    struct cache_resource *cr = calloc(n ? n : 1, sizeof *cr);
    if (!cr) {
        kube_resources_free(kr, n);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (; k < n; k++) {
        cr[k].group = strdup(kr[k].group ? kr[k].group : "");
        cr[k].version = strdup(kr[k].version ? kr[k].version : "");
        cr[k].resource = strdup(kr[k].resource ? kr[k].resource : "");
        cr[k].singular = strdup(kr[k].singular ? kr[k].singular : "");
        cr[k].kind = strdup(kr[k].kind ? kr[k].kind : "");
        cr[k].namespaced = kr[k].namespaced;
        cr[k].preferred = kr[k].preferred;
        if (!cr[k].group || !cr[k].version || !cr[k].resource ||
            !cr[k].singular || !cr[k].kind) {
            kube_resources_free(kr, n);
            free_resources(cr, k + 1);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    kube_resources_free(kr, n);
    if (engine_set_resources(r->o.engine, cr, n, err, errlen) != 0) {
        free_resources(cr, n);
        return -1;
    }
    free_resources(r->res, r->nres);
    r->res = cr;
    r->nres = n;
    r->res_gen++;
    pthread_mutex_lock(&r->mu);
    r->last_discovery_ms = now_ms();
    pthread_mutex_unlock(&r->mu);
    LOGV(2, "discovered %zu API resources", n);
    return 0;
}

/* Copies the previous snapshot's entries of the failed rules of one kind
 * into the new snapshot (their last good registry). */
static int
carry_over(const struct cache_snap *prev, struct cache_snap *next, bool custom,
           const int *failed, size_t nfailed)
{
    for (size_t f = 0; f < nfailed; f++) {
        if (custom) {
            for (size_t i = 0; i < prev->ncustom; i++)
                if (prev->custom[i].rule == failed[f] &&
                    cache_snap_add_custom(next, &prev->custom[i]) < 0)
                    return -1;
        } else {
            for (size_t i = 0; i < prev->nexternal; i++)
                if (prev->external[i].rule == failed[f] &&
                    cache_snap_add_external(next, &prev->external[i]) < 0)
                    return -1;
        }
    }
    return 0;
}

/* Sleeps ms on the relist's condition variable; true when stop was asked
 * (a poke does not end the sleep: it is kept for the next round). */
static bool
sleep_or_stop(struct relist *r, long ms)
{
    long long until = now_ms() + ms;
    bool stop;

    pthread_mutex_lock(&r->mu);
    while (!r->stop && now_ms() < until) {
        long long wait = until - now_ms();
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

/* prom_series with retries (see RETRY_MAX). A bad_data answer is the
 * query's own fault and is not retried. */
static int
series_retry(struct relist *r, const char *query, double start,
             struct prom_shapes **out, char *err, size_t errlen)
{
    long long first = now_ms();
    long delay = RETRY_BASE_MS;

    for (int attempt = 0;; attempt++) {
        if (prom_series(r->o.prom, r->http, query, start, out, err,
                        errlen) == 0)
            return 0;
        if (attempt >= RETRY_MAX || strncmp(err, "bad_data:", 9) == 0)
            return -1;
        long jitter = delay / 5;
        long d = delay - jitter + (long)(rand_r(&r->seed) % (2 * jitter + 1));
        if (now_ms() + d - first > r->o.interval_ms)
            return -1;
        LOGW("series query \"%s\" failed (%s); retry %d in %ldms", query, err,
             attempt + 1, d);
        if (sleep_or_stop(r, d))
            return -1;
        delay = delay * 2 > RETRY_CAP_MS ? RETRY_CAP_MS : delay * 2;
    }
}

/* One kind's relist into snap. */
static int
relist_kind(struct relist *r, const char *kind, const struct cache_snap *prev,
            struct cache_snap *snap, double start)
{
    char err[1024];
    char **queries = NULL;
    size_t nq = 0;
    int rc = -1;
    if (engine_series_queries(r->o.engine, kind, &queries, &nq, err,
                              sizeof err) != 0) {
        LOGE("%s relist: %s", kind, err);
        return -1;
    }
    struct prom_shapes **shapes = calloc(nq + 1, sizeof *shapes);
    char **errors = calloc(nq + 1, sizeof *errors);
    int *failed = NULL;
    size_t nfailed = 0;
    if (!shapes || !errors)
        goto done;
    for (size_t i = 0; i < nq; i++) {
        if (series_retry(r, queries[i], start, &shapes[i], err,
                         sizeof err) != 0) {
            LOGE("unable to fetch metrics for query \"%s\": %s", queries[i], err);
            shapes[i] = NULL;
            errors[i] = strdup(err);
        } else {
            LOGV(4, "series query \"%s\": %zu series, %zu shapes", queries[i],
                 shapes[i]->total_series, shapes[i]->n);
        }
    }
    if (engine_discover(r->o.engine, kind, queries, shapes, errors, nq, snap,
                        &failed, &nfailed, err, sizeof err) != 0) {
        LOGE("%s discovery: %s", kind, err);
        goto done;
    }
    if (carry_over(prev, snap, strcmp(kind, "custom") == 0, failed, nfailed) < 0)
        goto done;
    rc = 0;
done:
    for (size_t i = 0; shapes && i < nq; i++)
        prom_shapes_free(shapes[i]);
    for (size_t i = 0; errors && i < nq; i++)
        free(errors[i]);
    free(shapes);
    free(errors);
    free(failed);
    engine_strv_free(queries, nq);
    return rc;
}

/* Builds and publishes a snapshot: the resource map plus, when series is
 * true, a fresh relist of both kinds (else the previous entries). */
static void
publish(struct relist *r, bool series)
{
    struct cache_snap *prev = cache_acquire(r->o.cache);
    struct cache_snap *snap = cache_snap_new();
    if (!snap)
        goto fail;
    for (size_t i = 0; i < r->nres; i++)
        if (cache_snap_add_resource(snap, &r->res[i]) < 0)
            goto fail;
    snap->resources_generation = r->res_gen;
    if (series) {
        double start = prom_now() - (double)r->o.max_age_ms / 1000.0;
        snap->custom_listed = prev->custom_listed;
        snap->external_listed = prev->external_listed;
        if (engine_has(r->o.engine, "custom")) {
            if (relist_kind(r, "custom", prev, snap, start) != 0)
                goto fail;
            snap->custom_listed = true;
        }
        if (engine_has(r->o.engine, "external")) {
            if (relist_kind(r, "external", prev, snap, start) != 0)
                goto fail;
            snap->external_listed = true;
        }
    } else {
        snap->custom_listed = prev->custom_listed;
        snap->external_listed = prev->external_listed;
        for (size_t i = 0; i < prev->ncustom; i++)
            if (cache_snap_add_custom(snap, &prev->custom[i]) < 0)
                goto fail;
        for (size_t i = 0; i < prev->nexternal; i++)
            if (cache_snap_add_external(snap, &prev->external[i]) < 0)
                goto fail;
    }
    cache_snap_release(r->o.cache, prev);
    cache_publish(r->o.cache, snap);
    return;
fail:
    LOGE("relist failed; keeping the previous registry");
    cache_snap_free(snap);
    cache_snap_release(r->o.cache, prev);
}

static void *
run(void *arg)
{
    struct relist *r = arg;
    long long next_relist = 0;
    long disc = r->o.discovery_interval_ms > 0 ? r->o.discovery_interval_ms
                                               : 600000L;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (!r->stop && !r->poked && now_ms() < next_relist) {
            long long wait = next_relist - now_ms();
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        }
        bool stop = r->stop, poked = r->poked;
        r->poked = false;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
        char err[1024];
        pthread_mutex_lock(&r->mu);
        long long since = now_ms() - r->last_discovery_ms;
        pthread_mutex_unlock(&r->mu);
        if (poked || since >= disc) {
            if (discover_resources(r, err, sizeof err) != 0)
                LOGE("API discovery failed, keeping the previous resource map: %s",
                     err);
        }
        publish(r, true);
        /* A sliding period, as PA: the next run starts an interval after
         * this one finished. */
        next_relist = now_ms() + r->o.interval_ms;
    }
    return NULL;
}

struct relist *
relist_start(const struct relist_opts *o, char *err, size_t errlen)
{
    struct relist *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        engine_free(o->engine);
        return NULL;
    }
    r->o = *o;
    r->seed = (unsigned)now_ms() ^ (unsigned)getpid();
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->http = http_client_new(err, errlen);
    if (!r->http)
        goto fail;
    if (discover_resources(r, err, errlen) != 0)
        goto fail;
    publish(r, false);
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        snprintf(err, errlen, "pthread_create: %s", strerror(errno));
        goto fail;
    }
    r->started = true;
    return r;
fail:
    relist_stop(r);
    return NULL;
}

void
relist_poke(struct relist *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    if (now_ms() - r->last_discovery_ms >= POKE_MIN_INTERVAL_MS) {
        r->poked = true;
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

void
relist_stop(struct relist *r)
{
    if (!r)
        return;
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    engine_free(r->o.engine);
    http_client_free(r->http);
    free_resources(r->res, r->nres);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
