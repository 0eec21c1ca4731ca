/* external.c: external.metrics.k8s.io/v1beta1: discovery and
 * GET namespaces/<ns>/<metric>?labelSelector= (spec-server.md §2.6,
 * spec-rules.md §6.2).
 * Uses: api.h (call state), cache.h (external registry), engine.h (this
 * thread's engine renders the PromQL, or runs the rule's compute hook
 * instead of the single query: docs/hooks.md), prom.h, jsonw.h,
 * quantity.h, status.h. */
#include "api.h"
#include "engine.h"
#include "jsonw.h"
#include "log.h"
#include "metrics.h"
#include "prom.h"
#include "quantity.h"
#include "status.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
external_discovery(struct api_call *c)
{
    const struct cache_snap *s = c->snap;
    struct jsonw *w = jsonw_new(0);
    if (!w) {
        status_internal_error(c->resp, "out of memory");
        return;
    }
    jsonw_map_open(w);
    jsonw_kv_string(w, "kind", "APIResourceList");
    jsonw_kv_string(w, "apiVersion", "v1");
    jsonw_kv_string(w, "groupVersion", "external.metrics.k8s.io/v1beta1");
    jsonw_key(w, "resources");
    jsonw_array_open(w);
    /* The registry is sorted by metric with unique keys. */
    for (size_t i = 0; i < s->nexternal; i++) {
        jsonw_map_open(w);
        jsonw_kv_string(w, "name", s->external[i].metric);
        jsonw_kv_string(w, "singularName", "");
        jsonw_kv_bool(w, "namespaced", true);
        jsonw_kv_string(w, "kind", "ExternalMetricValueList");
        jsonw_key(w, "verbs");
        jsonw_array_open(w);
        jsonw_string(w, "get");
        jsonw_array_close(w);
        jsonw_map_close(w);
    }
    jsonw_array_close(w);
    jsonw_map_close(w);
    api_send_json(c, 200, w);
}

/* scalar: the query answered a scalar; a compute hook's sample without
 * labels (keys NULL) is written the same way, metricLabels null. */
static void
write_item(struct jsonw *w, const char *metric, const struct prom_sample *s,
           bool scalar)
{
    struct buf t, v;
    buf_init(&t, 64);
    buf_init(&v, 64);
    quantity_rfc3339(&t, s->ts);
    quantity_decimal_si(&v, quantity_milli(s->value));
    jsonw_map_open(w);
    jsonw_kv_string(w, "metricName", metric);
    jsonw_key(w, "metricLabels");
    if (scalar || !s->keys) {
        jsonw_null(w);
    } else {
        /* prom.c keeps sample labels sorted by key: Go's map order. */
        jsonw_map_open(w);
        for (size_t i = 0; i < s->nlabels; i++)
            jsonw_kv_string(w, s->keys[i], s->values[i]);
        jsonw_map_close(w);
    }
    jsonw_kv_string(w, "timestamp", t.data ? t.data : "");
    jsonw_kv_string(w, "value", v.data ? v.data : "0");
    jsonw_map_close(w);
    buf_free(&t);
    buf_free(&v);
}

void
external_handle(struct api_call *c, const char *const *segs, size_t n)
{
    struct server_response *resp = c->resp;
    if (n != 3 || strcmp(segs[0], "namespaces")) {
        status_route_not_found(resp);
        return;
    }
    const char *ns = segs[1], *metric = segs[2];
    const struct cache_external *e = cache_find_external(c->snap, metric);
    metrics_add(METRICS_CACHE_LOOKUPS, "registry", e ? "hit" : "miss", 1);
    if (!e) {
        /* PA's text: the group-resource is "namespaces" only in "default"
         * (spec-rules.md §6.2, kept as clients may match on it). */
        status_metric_not_found(resp, metric,
                                strcmp(ns, "default") ? "" : "namespaces", NULL);
        return;
    }
    struct buf query;
    buf_init(&query, 1 << 24);
    struct prom_result *res = NULL;
    struct engine_samples *hs = NULL;   /* compute hook's samples */
    char err[1024];
    const char *sel = server_request_query(c->req, "labelSelector");
    struct engine_external_req rq = {
        .entry = e, .namespace_ = ns, .selector = sel ? sel : "",
    };
    int code = 500;
    struct engine *eng = c->thread->engine;
    int64_t left = api_prom_budget_ms(c);
    const struct prom_sample *samples = NULL;
    size_t nsamples = 0;
    bool scalar = false;
    if (engine_has_compute(eng, "external", e->rule)) {
        /* The compute hook replaces render + query (docs/hooks.md). */
        if (left <= 0) {
            status_timeout(resp);
            goto done;
        }
        engine_set_io(eng, c->api->prom, c->thread->http);
        if (engine_compute_external(eng, &rq, (long)left, &hs, &code, err,
                                    sizeof err) != 0) {
            /* a failure of prom.query handed on by the hook is answered
             * as the branch below answers it (engine.h) */
            if (code == 400)
                status_bad_request(resp, err);
            else if (code == 504)
                status_timeout(resp);
            else if (code == ENGINE_STATUS_UNTYPED)
                status_unknown_error(resp, err);
            else
                status_internal_error(resp, err);
            goto done;
        }
        samples = hs->v;
        nsamples = hs->n;
    } else {
        if (engine_render_external(eng, &rq, &query, &code, err,
                                   sizeof err) != 0) {
            if (code == 400)
                status_bad_request(resp, err);
            else
                status_internal_error(resp, err);
            goto done;
        }
        if (api_prom_query(c, query.data, &res) != 0)
            goto done;
        if (res->type != PROM_VECTOR && res->type != PROM_SCALAR) {
            status_unknown_error(resp,
                                 "encountered an unexpected query result type");
            goto done;
        }
        samples = res->samples;
        nsamples = res->n;
        scalar = res->type == PROM_SCALAR;
    }
    struct jsonw *w = jsonw_new(0);
    if (!w) {
        status_internal_error(resp, "out of memory");
        goto done;
    }
    jsonw_map_open(w);
    jsonw_kv_string(w, "kind", "ExternalMetricValueList");
    jsonw_kv_string(w, "apiVersion", "external.metrics.k8s.io/v1beta1");
    jsonw_key(w, "metadata");
    jsonw_map_open(w);
    jsonw_map_close(w);
    jsonw_key(w, "items");
    jsonw_array_open(w);
    for (size_t i = 0; i < nsamples; i++)
        write_item(w, metric, &samples[i], scalar);
    jsonw_array_close(w);
    jsonw_map_close(w);
    api_send_json(c, 200, w);
done:
    prom_result_free(res);
    engine_samples_free(hs);
    buf_free(&query);
}
