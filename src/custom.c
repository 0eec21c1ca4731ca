/* custom.c: custom.metrics.k8s.io v1beta1 and v1beta2: discovery and the
 * five data route shapes (spec-server.md §2.5, spec-rules.md §6.1).
 * Uses: api.h (call state), cache.h (registry, RESTMapper), kcache.h
 * (object names for selector queries, from the watch-fed cache: no
 * Kubernetes call per request once warm), selector.h, engine.h (this
 * thread's engine renders the PromQL, or runs the rule's compute hook
 * instead of the single query: docs/hooks.md), prom.h, jsonw.h,
 * quantity.h, status.h. */
#include "api.h"
#include "engine.h"
#include "jsonw.h"
#include "kcache.h"
#include "log.h"
#include "metrics.h"
#include "prom.h"
#include "quantity.h"
#include "relist.h"
#include "selector.h"
#include "status.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest wait for a resource's object cache to fill on first use. */
#define KCACHE_FIRST_WAIT_MS 10000L

/* -- Discovery -------------------------------------------------------- */

struct disc_entry { char *name; bool namespaced; };

static int
cmp_disc(const void *a, const void *b)
{
    const struct disc_entry *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    /* namespaced first, so that de-duplication keeps it (spec-server §2.4:
     * one scope per name keeps the aggregator's conversion working) */
    return r ? r : (int)y->namespaced - (int)x->namespaced;
}

void
custom_discovery(struct api_call *c, const char *version)
{
    const struct cache_snap *s = c->snap;
    struct disc_entry *d = calloc(s->ncustom + 1, sizeof *d);
    struct jsonw *w = jsonw_new(0);
    size_t n = 0;
    if (!d || !w)
        goto oom;
    for (size_t i = 0; i < s->ncustom; i++) {
        const struct cache_custom *e = &s->custom[i];
        size_t len = strlen(e->resource) + strlen(e->group) + strlen(e->metric) + 3;
        d[n].name = malloc(len);
        if (!d[n].name)
            goto oom;
        if (*e->group)
            snprintf(d[n].name, len, "%s.%s/%s", e->resource, e->group, e->metric);
        else
            snprintf(d[n].name, len, "%s/%s", e->resource, e->metric);
        d[n++].namespaced = e->namespaced;
    }
    qsort(d, n, sizeof *d, cmp_disc);
    char gv[64];
    snprintf(gv, sizeof gv, "custom.metrics.k8s.io/%s", version);
    jsonw_map_open(w);
    jsonw_kv_string(w, "kind", "APIResourceList");
    jsonw_kv_string(w, "apiVersion", "v1");
    jsonw_kv_string(w, "groupVersion", gv);
    jsonw_key(w, "resources");
    jsonw_array_open(w);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && !strcmp(d[i].name, d[i - 1].name))
            continue;
        jsonw_map_open(w);
        jsonw_kv_string(w, "name", d[i].name);
        jsonw_kv_string(w, "singularName", "");
        jsonw_kv_bool(w, "namespaced", d[i].namespaced);
        jsonw_kv_string(w, "kind", "MetricValueList");
        jsonw_key(w, "verbs");
        jsonw_array_open(w);
        jsonw_string(w, "get");
        jsonw_array_close(w);
        jsonw_map_close(w);
    }
    jsonw_array_close(w);
    jsonw_map_close(w);
    for (size_t i = 0; i < n; i++)
        free(d[i].name);
    free(d);
    api_send_json(c, 200, w);
    return;
oom:
    for (size_t i = 0; d && i < n; i++)
        free(d[i].name);
    free(d);
    jsonw_free(w);
    status_internal_error(c->resp, "out of memory");
}

/* -- Object selection --------------------------------------------------- */

static const char *
obj_label(void *ctx, const char *key)
{
    return kcache_obj_label(ctx, key);
}

/* Names of the objects of resource r (in namespace ns, or cluster-wide
 * when ns is NULL) matching sel, in namespace/name order, from the
 * metadata cache. The names stay valid while *snap is held. */
static int
select_objects(struct api_call *c, const struct cache_resource *r,
               const char *ns, const struct selector *sel,
               struct kcache_snap **snap, const char ***names, size_t *n,
               char *err, size_t errlen)
{
    long wait = (long)api_remaining_ms(c);
    if (wait > KCACHE_FIRST_WAIT_MS)
        wait = KCACHE_FIRST_WAIT_MS;
    if (wait < 0)
        wait = 0;
    *snap = kcache_acquire(c->api->kcache, r->group, r->version, r->resource,
                           NULL, wait, err, errlen);
    if (!*snap)
        return -1;
    size_t first = 0, last = (*snap)->n;
    if (ns)
        kcache_ns_range(*snap, ns, &first, &last);
    const char **v = calloc(last - first + 1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        kcache_release(*snap);
        *snap = NULL;
        return -1;
    }
    size_t k = 0;
    for (size_t i = first; i < last; i++) {
        const struct kcache_obj *o = &(*snap)->objs[i];
        if (selector_matches(sel, obj_label, (void *)o))
            v[k++] = o->name;
    }
    *names = v;
    *n = k;
    return 0;
}

/* -- Matching samples to objects ------------------------------------------ */

struct match { const char *name; double value; size_t ix; };

static int
cmp_match(const void *a, const void *b)
{
    const struct match *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    return r ? r : (x->ix < y->ix ? -1 : x->ix > y->ix);
}

/* Value for name: the last sample carrying it in the resource label
 * (spec-rules.md §5.3: last wins). m is sorted by (name, index). */
static const struct match *
find_value(const struct match *m, size_t n, const char *name)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(m[mid].name, name) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0 && !strcmp(m[lo - 1].name, name))
        return &m[lo - 1];
    return NULL;
}

/* -- The data routes ------------------------------------------------------ */

struct target {
    const char *gr_text;        /* request's group-resource text */
    char resource[128], group[128];
    const char *ns;             /* URL namespace or NULL */
    const char *name;           /* object name or "*" */
    const char *metric;
    bool namespace_object;      /* namespaces/<ns>/metrics/<m> */
};

static void
write_item(struct jsonw *w, const char *version, const struct cache_resource *r,
           const struct target *t, const char *name, double value,
           const char *stamp, const char *selector_json)
{
    bool v2 = !strcmp(version, "v1beta2");
    char api_version[160];
    snprintf(api_version, sizeof api_version, "%s/%s", r->group, r->version);
    struct buf q;
    buf_init(&q, 64);
    quantity_decimal_si(&q, quantity_milli(value));
    jsonw_map_open(w);
    jsonw_key(w, "describedObject");
    jsonw_map_open(w);
    jsonw_kv_string(w, "kind", r->kind);
    if (t->ns && !t->namespace_object)
        jsonw_kv_string(w, "namespace", t->ns);
    jsonw_kv_string(w, "name", name);
    jsonw_kv_string(w, "apiVersion", api_version);
    jsonw_map_close(w);
    if (v2) {
        jsonw_key(w, "metric");
        jsonw_map_open(w);
        jsonw_kv_string(w, "name", t->metric);
        jsonw_key(w, "selector");
        if (selector_json && *selector_json)
            jsonw_raw(w, selector_json, strlen(selector_json));
        else
            jsonw_null(w);
        jsonw_map_close(w);
    } else {
        jsonw_kv_string(w, "metricName", t->metric);
    }
    jsonw_kv_string(w, "timestamp", stamp);
    jsonw_kv_string(w, "value", q.data ? q.data : "0");
    if (!v2) {
        jsonw_key(w, "selector");
        if (selector_json && *selector_json)
            jsonw_raw(w, selector_json, strlen(selector_json));
        else
            jsonw_null(w);
    }
    jsonw_map_close(w);
    buf_free(&q);
}

static void
serve(struct api_call *c, const char *version, struct target *t)
{
    struct server_response *resp = c->resp;
    struct kcache_snap *ksnap = NULL;
    struct selector *sel = NULL;
    struct prom_result *res = NULL;
    struct engine_samples *hs = NULL;   /* compute hook's samples */
    const struct prom_sample *samples = NULL;
    size_t nsamples = 0;
    struct match *m = NULL;
    const char **names = NULL;
    const char *one[1];
    size_t nnames = 0;
    struct buf query, selector_json;
    buf_init(&query, 1 << 24);
    buf_init(&selector_json, 1 << 16);
    char err[1024];

    /* 1. The registry first (decisions #15): an unknown resource or metric
     *    costs no Kubernetes call. */
    const struct cache_resource *r = cache_normalize(c->snap, t->resource, t->group);
    if (!r) {
        relist_poke(c->api->relist);
        status_metric_not_found(resp, t->metric, t->gr_text, NULL);
        goto done;
    }
    bool namespaced = t->ns && !t->namespace_object;
    const struct cache_custom *e = cache_find_custom(c->snap, r->resource,
                                                     r->group, namespaced, t->metric);
    metrics_add(METRICS_CACHE_LOOKUPS, "registry", e ? "hit" : "miss", 1);
    if (!e) {
        status_metric_not_found(resp, t->metric, t->gr_text, NULL);
        goto done;
    }

    /* 2. Which objects. */
    bool by_name = strcmp(t->name, "*") != 0;
    if (by_name) {
        one[0] = t->name;
        names = one;
        nnames = 1;
    } else {
        const char *ls = server_request_query(c->req, "labelSelector");
        sel = selector_parse(ls ? ls : "", ls ? strlen(ls) : 0, err, sizeof err);
        if (!sel) {
            status_bad_request(resp, err);
            goto done;
        }
        if (select_objects(c, r, namespaced ? t->ns : NULL, sel, &ksnap,
                           &names, &nnames, err, sizeof err) != 0) {
            LOGE("unable to list matching resources: %s", err);
            status_internal_error(resp, "unable to list matching resources");
            goto done;
        }
        if (nnames == 0) {   /* PA: an empty selection is a 404 (kept, #14) */
            status_metric_not_found(resp, t->metric, t->gr_text, NULL);
            goto done;
        }
    }

    /* 3. The query, rendered by this thread's engine; or the rule's
     *    compute hook, which replaces 3. and 4. and answers samples. */
    const char *ms = server_request_query(c->req, "metricLabelSelector");
    const char *ls = by_name ? NULL : server_request_query(c->req, "labelSelector");
    struct engine_custom_req rq = {
        .entry = e, .namespace_ = namespaced ? t->ns : "",
        .names = names, .nnames = nnames, .metric_selector = ms ? ms : "",
        .label_selector = ls ? ls : "",
    };
    int code = 500;
    struct engine *eng = c->thread->engine;
    int64_t left = api_prom_budget_ms(c);
    bool compute = engine_has_compute(eng, "custom", e->rule);
    int rrc;
    if (compute) {
        if (left <= 0) {
            status_timeout(resp);
            goto done;
        }
        /* bound on every request: a reload may have replaced the engine */
        engine_set_io(eng, c->api->prom, c->thread->http);
        rrc = engine_compute_custom(eng, &rq, (long)left, &hs, &selector_json,
                                    &code, err, sizeof err);
    } else {
        rrc = engine_render_custom(eng, &rq, &query, &selector_json, &code,
                                   err, sizeof err);
    }
    if (rrc != 0) {
        /* 504 and ENGINE_STATUS_UNTYPED: a compute hook handed on a
         * failure of prom.query, answered as step 4. would (engine.h) */
        if (code == 400)
            status_bad_request(resp, err);
        else if (code == 404)
            status_metric_not_found(resp, t->metric, t->gr_text, NULL);
        else if (code == 504)
            status_timeout(resp);
        else if (code == ENGINE_STATUS_UNTYPED)
            status_unknown_error(resp, err);
        else
            status_internal_error(resp, err);
        goto done;
    }

    /* 4. Prometheus, bounded by the request deadline and --prometheus-timeout. */
    if (compute) {
        samples = hs->v;
        nsamples = hs->n;
    } else {
        if (api_prom_query(c, query.data, &res) != 0)
            goto done;
        if (res->type != PROM_VECTOR) {
            LOGE("unable to fetch metrics: non-vector result for query %s",
                 query.data);
            status_internal_error(resp, "unable to fetch metrics");
            goto done;
        }
        samples = res->samples;
        nsamples = res->n;
    }
    if (by_name && nsamples == 0) {
        status_metric_not_found(resp, t->metric, t->gr_text, t->name);
        goto done;
    }

    /* 5. Samples to objects through the resource label. */
    m = calloc(nsamples + 1, sizeof *m);
    if (!m) {
        status_internal_error(resp, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nsamples; i++) {
        const char *v = prom_sample_label(&samples[i], e->resource_label);
        m[i] = (struct match){ v ? v : "", samples[i].value, i };
    }
    qsort(m, nsamples, sizeof *m, cmp_match);

    struct buf stamp;
    buf_init(&stamp, 64);
    quantity_rfc3339(&stamp, prom_now());
    struct jsonw *w = jsonw_new(0);
    if (!w || !stamp.data) {
        buf_free(&stamp);
        jsonw_free(w);
        status_internal_error(resp, "out of memory");
        goto done;
    }
    char gv[64];
    snprintf(gv, sizeof gv, "custom.metrics.k8s.io/%s", version);
    jsonw_map_open(w);
    jsonw_kv_string(w, "kind", "MetricValueList");
    jsonw_kv_string(w, "apiVersion", gv);
    jsonw_key(w, "metadata");
    jsonw_map_open(w);
    jsonw_map_close(w);
    jsonw_key(w, "items");
    jsonw_array_open(w);
    size_t emitted = 0;
    for (size_t i = 0; i < nnames; i++) {
        const struct match *hit = find_value(m, nsamples, names[i]);
        if (!hit)
            continue;
        write_item(w, version, r, t, names[i], hit->value, stamp.data,
                   selector_json.data);
        emitted++;
    }
    jsonw_array_close(w);
    jsonw_map_close(w);
    buf_free(&stamp);
    if (by_name && emitted == 0) {
        jsonw_free(w);
        status_metric_not_found(resp, t->metric, t->gr_text, t->name);
        goto done;
    }
    api_send_json(c, 200, w);
done:
    free(m);
    prom_result_free(res);
    engine_samples_free(hs);
    selector_free(sel);
    if (names != one)
        free(names);
    kcache_release(ksnap);
    buf_free(&query);
    buf_free(&selector_json);
}

/* Splits "<resource>[.<group>]" at the first dot. */
static int
split_gr(struct target *t, const char *seg)
{
    const char *dot = strchr(seg, '.');
    size_t rl = dot ? (size_t)(dot - seg) : strlen(seg);
    const char *g = dot ? dot + 1 : "";
    if (rl >= sizeof t->resource || strlen(g) >= sizeof t->group)
        return -1;
    memcpy(t->resource, seg, rl);
    t->resource[rl] = '\0';
    strcpy(t->group, g);
    return 0;
}

void
custom_handle(struct api_call *c, const char *version,
              const char *const *segs, size_t n)
{
    struct target t = {0};
    bool ns_route = n >= 2 && !strcmp(segs[0], "namespaces");
    if (ns_route && n == 4 && !strcmp(segs[2], "metrics")) {
        /* namespaces/<ns>/metrics/<metric>: the Namespace object itself */
        t.gr_text = "namespaces";
        strcpy(t.resource, "namespaces");
        t.ns = segs[1];
        t.name = segs[1];
        t.metric = segs[3];
        t.namespace_object = true;
    } else if (ns_route && n == 5) {
        t.gr_text = segs[2];
        t.ns = segs[1];
        t.name = segs[3];
        t.metric = segs[4];
    } else if (ns_route && n == 3) {
        status_bad_request(c->resp, "invalid request path");
        return;
    } else if (!ns_route && n == 3) {
        t.gr_text = segs[0];
        t.name = segs[1];
        t.metric = segs[2];
    } else {
        status_route_not_found(c->resp);
        return;
    }
    if (split_gr(&t, t.gr_text) != 0) {
        status_metric_not_found(c->resp, t.metric, t.gr_text, NULL);
        return;
    }
    serve(c, version, &t);
}
