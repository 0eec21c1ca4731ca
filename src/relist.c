/* relist.c: the relist thread (see relist.h).
 * Uses engine.h, prom.h, kube.h, http_client.h, cache.h, log.h, and
 * metrics.h (relist and per-rule gauges: outcome, series, metrics and
 * the time each rule's seriesQuery took). */
#include "relist.h"
#include "engine.h"
#include "http_client.h"
#include "kube.h"
#include "log.h"
#include "metrics.h"
#include "reload.h"
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
    uint64_t config_gen;            /* of the config the engine was built from */
    int *failed_custom, *failed_external; /* rules whose query failed at */
    size_t nfailed_custom, nfailed_external; /* the last relist (metrics) */
    /* Seconds each rule's seriesQuery took at the last relist of its kind
     * (index k-1 for rule k; rules sharing a query share its time), for
     * rule_last_relist_duration_seconds. Relist thread only. */
    double *dur_custom, *dur_external;
    size_t ndur_custom, ndur_external;
    long long last_discovery_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, poked, started, reload;
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
    double t0 = metrics_now();
    int drc = kube_discover(r->o.kube, &kr, &n, err, errlen);
    metrics_observe(METRICS_KUBE_DURATION, "discovery", NULL, metrics_now() - t0);
    if (drc != 0) {
        metrics_add(METRICS_KUBE_ERRORS, "discovery", NULL, 1);
        return -1;
    }
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

/* One wait on the relist's condition variable, at most until the
 * monotonic time until_ms; r->mu is held. Callers loop on their own
 * condition (spurious wake-ups, pokes). */
static void
timed_wait(struct relist *r, long long until_ms)
{
    long long wait = until_ms - now_ms();
    struct timespec ts;
    if (wait <= 0)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += wait / 1000;
    ts.tv_nsec += (wait % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
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
        timed_wait(r, until);
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

/* Maps the time of each distinct query (qdur[i] for queries[i]) to the
 * rules of the kind and keeps it in r for the per-rule gauge. On failure
 * the kind has no per-rule times until the next relist. */
static void
keep_rule_durations(struct relist *r, const char *kind, char **queries,
                    const double *qdur, size_t nq)
{
    char err[1024];
    char **rq = NULL;
    size_t nr = 0;
    double *dur = NULL;
    bool custom = strcmp(kind, "custom") == 0;

    if (engine_rule_queries(r->o.engine, kind, &rq, &nr, err, sizeof err) != 0)
        LOGE("%s relist: per-rule durations: %s", kind, err);
    else
        dur = calloc(nr + 1, sizeof *dur);
    for (size_t k = 0; dur && k < nr; k++)
        for (size_t i = 0; i < nq; i++)
            if (strcmp(rq[k], queries[i]) == 0) {
                dur[k] = qdur[i];
                break;
            }
    engine_strv_free(rq, nr);
    if (custom) {
        free(r->dur_custom);
        r->dur_custom = dur;
        r->ndur_custom = dur ? nr : 0;
    } else {
        free(r->dur_external);
        r->dur_external = dur;
        r->ndur_external = dur ? nr : 0;
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
    double *qdur = calloc(nq + 1, sizeof *qdur);
    int *failed = NULL;
    size_t nfailed = 0;
    if (!shapes || !errors || !qdur)
        goto done;
    for (size_t i = 0; i < nq; i++) {
        double t0 = metrics_now();
        int src = series_retry(r, queries[i], start, &shapes[i], err,
                               sizeof err);
        qdur[i] = metrics_now() - t0;
        if (src != 0) {
            LOGE("unable to fetch metrics for query \"%s\": %s", queries[i], err);
            shapes[i] = NULL;
            errors[i] = strdup(err);
        } else {
            LOGV(4, "series query \"%s\": %zu series, %zu shapes", queries[i],
                 shapes[i]->total_series, shapes[i]->n);
        }
    }
    keep_rule_durations(r, kind, queries, qdur, nq);
    if (engine_discover(r->o.engine, kind, queries, shapes, errors, nq, snap,
                        &failed, &nfailed, err, sizeof err) != 0) {
        LOGE("%s discovery: %s", kind, err);
        goto done;
    }
    if (carry_over(prev, snap, strcmp(kind, "custom") == 0, failed, nfailed) < 0)
        goto done;
    if (!strcmp(kind, "custom")) {
        free(r->failed_custom);
        r->failed_custom = failed;
        r->nfailed_custom = nfailed;
    } else {
        free(r->failed_external);
        r->failed_external = failed;
        r->nfailed_external = nfailed;
    }
    failed = NULL;
    rc = 0;
done:
    for (size_t i = 0; shapes && i < nq; i++)
        prom_shapes_free(shapes[i]);
    for (size_t i = 0; errors && i < nq; i++)
        free(errors[i]);
    free(shapes);
    free(errors);
    free(qdur);
    free(failed);
    engine_strv_free(queries, nq);
    return rc;
}

/* relist_kind with its duration and outcome recorded (metrics.h). */
static int
timed_relist_kind(struct relist *r, const char *kind,
                  const struct cache_snap *prev, struct cache_snap *snap,
                  double start)
{
    double t0 = metrics_now();
    int rc = relist_kind(r, kind, prev, snap, start);
    metrics_observe(METRICS_RELIST_DURATION, kind, NULL, metrics_now() - t0);
    metrics_add(METRICS_RELIST_RUNS, kind, rc == 0 ? "success" : "failure", 1);
    return rc;
}

struct rule_series {                /* one (rule, series) pair of a snapshot */
    int rule;
    const char *series;
};

static int
cmp_rule_series(const void *a, const void *b)
{
    const struct rule_series *x = a, *y = b;
    if (x->rule != y->rule)
        return x->rule < y->rule ? -1 : 1;
    return strcmp(x->series, y->series);
}

static bool
has_rule(const int *v, size_t n, int rule)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == rule)
            return true;
    return false;
}

/* Per-rule gauges of one kind from the published snapshot: metrics are
 * registry entries, series the distinct series names; rule labels use
 * the config's key paths ("rules[0]"), as check-config prints them. */
static void
kind_metrics(const char *prefix, int nrules, struct rule_series *v, size_t n,
             const int *failed, size_t nfailed, const double *dur,
             size_t ndur)
{
    qsort(v, n, sizeof *v, cmp_rule_series);
    char label[64];
    /* Every rule appears, also one that produced nothing ("why is my rule
     * empty"); the loop below overwrites the ones with entries. */
    for (int k = 1; k <= nrules; k++) {
        snprintf(label, sizeof label, "%s[%d]", prefix, k - 1);
        metrics_set(METRICS_RULE_METRICS, label, NULL, 0);
        metrics_set(METRICS_RULE_SERIES, label, NULL, 0);
        metrics_set(METRICS_RULE_RELIST_OK, label, NULL,
                    has_rule(failed, nfailed, k) ? 0 : 1);
        if ((size_t)k <= ndur)
            metrics_set(METRICS_RULE_RELIST_DURATION, label, NULL, dur[k - 1]);
    }
    for (size_t i = 0; i < n;) {
        size_t j = i, series = 0;
        for (; j < n && v[j].rule == v[i].rule; j++)
            if (j == i || strcmp(v[j].series, v[j - 1].series))
                series++;
        snprintf(label, sizeof label, "%s[%d]", prefix, v[i].rule - 1);
        metrics_set(METRICS_RULE_METRICS, label, NULL, (double)(j - i));
        metrics_set(METRICS_RULE_SERIES, label, NULL, (double)series);
        metrics_set(METRICS_RULE_RELIST_OK, label, NULL,
                    has_rule(failed, nfailed, v[i].rule) ? 0 : 1);
        i = j;
    }
    for (size_t f = 0; f < nfailed; f++) {
        snprintf(label, sizeof label, "%s[%d]", prefix, failed[f] - 1);
        metrics_set(METRICS_RULE_RELIST_OK, label, NULL, 0);
    }
}

static void
rule_metrics(struct relist *r)
{
    struct cache_snap *cur = cache_acquire(r->o.cache);
    size_t n = cur->ncustom > cur->nexternal ? cur->ncustom : cur->nexternal;
    struct rule_series *v = calloc(n + 1, sizeof *v);
    if (v) {
        metrics_reset(METRICS_RULE_METRICS);
        metrics_reset(METRICS_RULE_SERIES);
        metrics_reset(METRICS_RULE_RELIST_OK);
        metrics_reset(METRICS_RULE_RELIST_DURATION);
        for (size_t i = 0; i < cur->ncustom; i++)
            v[i] = (struct rule_series){ cur->custom[i].rule,
                                         cur->custom[i].series };
        kind_metrics("rules", engine_rule_count(r->o.engine, "custom"), v,
                     cur->ncustom, r->failed_custom,
                     r->nfailed_custom, r->dur_custom, r->ndur_custom);
        for (size_t i = 0; i < cur->nexternal; i++)
            v[i] = (struct rule_series){ cur->external[i].rule,
                                         cur->external[i].series };
        kind_metrics("externalRules", engine_rule_count(r->o.engine, "external"),
                     v, cur->nexternal, r->failed_external,
                     r->nfailed_external, r->dur_external, r->ndur_external);
        free(v);
    }
    cache_snap_release(r->o.cache, cur);
}

/* Builds a new engine from the current config snapshot and hands it the
 * resource map; on success replaces the thread's engine (the old one is
 * kept on failure). Relist thread only. */
static void
rebuild_engine(struct relist *r)
{
    char err[8192];
    struct config_snap *cs = config_acquire(r->o.config);
    if (cs->generation == r->config_gen) {
        config_release(r->o.config, cs);
        return;
    }
    struct engine_hooks hooks;
    config_snap_hooks(cs, &hooks);
    struct engine *e = engine_new(cs->text, cs->len, r->o.config_file,
                                  r->o.lua_dir, &hooks, false, err, sizeof err);
    if (e && engine_set_resources(e, r->res, r->nres, err, sizeof err) != 0) {
        engine_free(e);
        e = NULL;
    }
    if (e) {
        engine_free(r->o.engine);
        r->o.engine = e;
        LOGI("relist: rules engine rebuilt for config generation %llu",
             (unsigned long long)cs->generation);
    } else {
        LOGE("relist: keeping the previous rules engine: %s", err);
    }
    r->config_gen = cs->generation;
    config_release(r->o.config, cs);
}

/* Builds and publishes a snapshot: the resource map plus, when series is
 * true, a fresh relist of both kinds (else the previous entries). */
static void
publish(struct relist *r, bool series)
{
    long long t0 = now_ms();
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
            if (timed_relist_kind(r, "custom", prev, snap, start) != 0)
                goto fail;
            snap->custom_listed = true;
        }
        if (engine_has(r->o.engine, "external")) {
            if (timed_relist_kind(r, "external", prev, snap, start) != 0)
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
    size_t ncustom = snap->ncustom, nexternal = snap->nexternal;
    cache_publish(r->o.cache, snap);   /* de-duplicates: counts are upper bounds */
    LOGV(2, "relist %s: %zu custom and %zu external registry entries, %zu "
         "API resources, in %lld ms", series ? "published" : "resources only",
         ncustom, nexternal, r->nres, now_ms() - t0);
    if (series)
        rule_metrics(r);
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
        while (!r->stop && !r->poked && !r->reload && now_ms() < next_relist) {
            timed_wait(r, next_relist);
        }
        bool stop = r->stop, poked = r->poked, reload = r->reload;
        r->poked = false;
        r->reload = false;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
        if (reload && r->o.config)
            rebuild_engine(r);
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
    r->config_gen = o->config ? config_generation(o->config) : 0;
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
relist_reload(struct relist *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->reload = true;
    pthread_cond_signal(&r->cv);
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
    free(r->failed_custom);
    free(r->failed_external);
    free(r->dur_custom);
    free(r->dur_external);
    http_client_free(r->http);
    free_resources(r->res, r->nres);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
