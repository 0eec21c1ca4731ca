/* api.c: request routing, API discovery documents, health endpoints and
 * the per-thread handler state (see api.h).
 * Uses server.h, httputil.h, status.h, jsonw.h, cache.h, engine.h,
 * http_client.h. The metric endpoints live in custom.c and external.c. */
#include "api.h"
#include "engine.h"
#include "http_client.h"
#include "httputil.h"
#include "jsonw.h"
#include "log.h"
#include "prom.h"
#include "metrics.h"
#include "status.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CUSTOM_GROUP "custom.metrics.k8s.io"
#define EXTERNAL_GROUP "external.metrics.k8s.io"
#define RESOURCE_GROUP "metrics.k8s.io"

/* -- Per-thread state ------------------------------------------------ */

void *
api_thread_init(void *ctx)
{
    struct api *a = ctx;
    char err[4096];
    struct api_thread *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->http = http_client_new(err, sizeof err);
    if (!t->http)
        LOGE("worker HTTP client: %s", err);
    /* The config was validated at start-up (or by the reload that
     * published it); building it again here cannot fail for config
     * reasons, only for lack of memory. */
    struct config_snap *cs = config_acquire(a->config);
    struct engine_hooks hooks;
    config_snap_hooks(cs, &hooks);
    t->engine = engine_new(cs->text, cs->len, a->config_file, a->lua_dir,
                           &hooks, false, err, sizeof err);
    t->config_generation = cs->generation;
    config_release(a->config, cs);
    if (!t->engine)
        LOGE("worker rules engine: %s", err);
    return t;
}

/* Rebuilds this thread's engine when a reload published a new config;
 * on failure the old engine keeps serving. The new engine gets the
 * resource map on the next check (resources_generation is reset). */
static void
refresh_engine(struct api *a, struct api_thread *t)
{
    if (config_generation(a->config) == t->config_generation)
        return;
    char err[4096];
    struct config_snap *cs = config_acquire(a->config);
    struct engine_hooks hooks;
    config_snap_hooks(cs, &hooks);
    struct engine *e = engine_new(cs->text, cs->len, a->config_file,
                                  a->lua_dir, &hooks, false, err, sizeof err);
    if (e) {
        engine_free(t->engine);
        t->engine = e;
        t->resources_generation = UINT64_MAX;
    } else {
        LOGE("worker rules engine (config generation %llu): %s",
             (unsigned long long)cs->generation, err);
    }
    t->config_generation = cs->generation;
    config_release(a->config, cs);
}

void
api_thread_fini(void *ctx, void *thread)
{
    struct api_thread *t = thread;
    if (!t)
        return;
    engine_free(t->engine);
    http_client_free(t->http);
    free(t);
}

/* -- Helpers ---------------------------------------------------------- */

void
api_send_json(struct api_call *c, int status, struct jsonw *w)
{
    char err[256];
    buf_reset(&c->resp->body);
    if (jsonw_finish(w, &c->resp->body, c->pretty, err, sizeof err) != 0) {
        jsonw_free(w);
        LOGE("encoding a response: %s", err);
        status_internal_error(c->resp, "unable to encode the response");
        return;
    }
    jsonw_free(w);
    c->resp->status = status;
    c->resp->content_type = "application/json";
}

int64_t
api_remaining_ms(const struct api_call *c)
{
    return server_request_remaining_ms(c->req, c->timeout_ms);
}

int64_t
api_prom_budget_ms(const struct api_call *c)
{
    int64_t left = api_remaining_ms(c);
    return left > c->api->prom_timeout_ms ? c->api->prom_timeout_ms : left;
}

int
api_prom_query(struct api_call *c, const char *query, struct prom_result **out)
{
    char err[1024];
    *out = NULL;
    int64_t left = api_prom_budget_ms(c);
    if (left <= 0) {
        status_timeout(c->resp);
        return -1;
    }
    if (prom_query(c->api->prom, c->thread->http, query, prom_now(),
                   (double)left / 1000.0, out, err, sizeof err) != 0) {
        LOGE("unable to fetch metrics from prometheus: %s (query %s)", err, query);
        status_internal_error(c->resp, "unable to fetch metrics");
        *out = NULL;
        return -1;
    }
    return 0;
}

static void
group_version(struct jsonw *w, const char *group, const char *version)
{
    char gv[128];
    snprintf(gv, sizeof gv, "%s/%s", group, version);
    jsonw_map_open(w);
    jsonw_kv_string(w, "groupVersion", gv);
    jsonw_kv_string(w, "version", version);
    jsonw_map_close(w);
}

/* One APIGroup object; the custom group serves both versions, preferring
 * v1beta2 as Kubernetes orders versions. */
static void
api_group(struct api_call *c, struct jsonw *w, const char *group, bool top)
{
    bool custom = strcmp(group, CUSTOM_GROUP) == 0;
    const char *pref = custom ? "v1beta2" : "v1beta1";
    jsonw_map_open(w);
    if (!top) {
        jsonw_kv_string(w, "kind", "APIGroup");
        jsonw_kv_string(w, "apiVersion", "v1");
    }
    jsonw_kv_string(w, "name", group);
    jsonw_key(w, "versions");
    jsonw_array_open(w);
    group_version(w, group, pref);
    if (custom)
        group_version(w, group, "v1beta1");
    jsonw_array_close(w);
    jsonw_key(w, "preferredVersion");
    group_version(w, group, pref);
    if (top) {
        char addr[32];
        snprintf(addr, sizeof addr, ":%d", c->api->secure_port);
        jsonw_key(w, "serverAddressByClientCIDRs");
        jsonw_array_open(w);
        jsonw_map_open(w);
        jsonw_kv_string(w, "clientCIDR", "0.0.0.0/0");
        jsonw_kv_string(w, "serverAddress", addr);
        jsonw_map_close(w);
        jsonw_array_close(w);
    }
    jsonw_map_close(w);
}

static struct jsonw *
new_writer(struct api_call *c)
{
    struct jsonw *w = jsonw_new(0);
    if (!w)
        status_internal_error(c->resp, "out of memory");
    return w;
}

static void
group_list(struct api_call *c)
{
    struct jsonw *w = new_writer(c);
    if (!w)
        return;
    jsonw_map_open(w);
    jsonw_kv_string(w, "kind", "APIGroupList");
    jsonw_kv_string(w, "apiVersion", "v1");
    jsonw_key(w, "groups");
    jsonw_array_open(w);
    if (c->api->has_custom)
        api_group(c, w, CUSTOM_GROUP, true);
    if (c->api->has_external)
        api_group(c, w, EXTERNAL_GROUP, true);
    if (c->api->has_resource)
        api_group(c, w, RESOURCE_GROUP, true);
    jsonw_array_close(w);
    jsonw_map_close(w);
    api_send_json(c, 200, w);
}

/* -- Health ----------------------------------------------------------- */

static void
health(struct api_call *c, const char *which)
{
    bool ready = true;
    const char *why = NULL;
    if (!strcmp(which, "readyz")) {
        if (atomic_load(&c->api->shutting_down)) {
            ready = false;
            why = "shutdown";
        } else if ((c->api->has_custom && !c->snap->custom_listed) ||
                   (c->api->has_external && !c->snap->external_listed)) {
            ready = false;
            why = "first-relist";
        }
    }
    server_response_header(c->resp, "X-Content-Type-Options", "nosniff");
    if (ready) {
        server_response_text(c->resp, 200, "text/plain; charset=utf-8", "ok");
        return;
    }
    char body[256];
    snprintf(body, sizeof body, "[+]ping ok\n[-]%s failed: reason withheld\n"
             "%s check failed\n", why, which);
    server_response_text(c->resp, 500, "text/plain; charset=utf-8", body);
}

/* -- /metrics ---------------------------------------------------------- */

static void
metrics_page(struct server_response *resp)
{
    buf_reset(&resp->body);
    if (metrics_render(&resp->body) != 0) {
        status_internal_error(resp, "unable to render the metrics");
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* -- Routing ---------------------------------------------------------- */

static bool
is_version(const char *group, const char *v)
{
    if (!strcmp(v, "v1beta1"))
        return true;
    return !strcmp(group, CUSTOM_GROUP) && !strcmp(v, "v1beta2");
}

static void
route_apis(struct api_call *c, const struct httputil_segs *s)
{
    if (s->n == 1) {
        group_list(c);
        return;
    }
    const char *group = s->seg[1];
    bool installed = (!strcmp(group, CUSTOM_GROUP) && c->api->has_custom) ||
                     (!strcmp(group, EXTERNAL_GROUP) && c->api->has_external) ||
                     (!strcmp(group, RESOURCE_GROUP) && c->api->has_resource);
    if (!installed) {
        status_route_not_found(c->resp);
        return;
    }
    if (s->n == 2) {
        struct jsonw *w = new_writer(c);
        if (!w)
            return;
        api_group(c, w, group, false);
        api_send_json(c, 200, w);
        return;
    }
    const char *version = s->seg[2];
    if (!is_version(group, version)) {
        status_route_not_found(c->resp);
        return;
    }
    if (!strcmp(group, CUSTOM_GROUP)) {
        if (s->n == 3)
            custom_discovery(c, version);
        else
            custom_handle(c, version, s->seg + 3, s->n - 3);
        return;
    }
    if (!strcmp(group, EXTERNAL_GROUP)) {
        if (s->n == 3)
            external_discovery(c);
        else
            external_handle(c, s->seg + 3, s->n - 3);
        return;
    }
    if (!strcmp(group, RESOURCE_GROUP)) {
        if (s->n == 3)
            resource_discovery(c);
        else
            resource_handle(c, s->seg + 3, s->n - 3);
        return;
    }
    status_route_not_found(c->resp);
}

void
api_handle(void *ctx, const struct server_request *req,
           struct server_response *resp)
{
    struct api *a = ctx;
    struct api_call c = {
        .api = a, .thread = req->thread_ctx, .req = req, .resp = resp,
    };
    struct httputil_segs segs = {0};
    if (httputil_split_path(req->path, &segs) != 0) {
        status_route_not_found(resp);
        return;
    }
    c.snap = cache_acquire(a->cache);
    bool is_get = !strcmp(req->method, "GET");
    bool head_ok = is_get || !strcmp(req->method, "HEAD");

    if (segs.n == 1 && (!strcmp(segs.seg[0], "healthz") ||
                        !strcmp(segs.seg[0], "livez") ||
                        !strcmp(segs.seg[0], "readyz"))) {
        if (head_ok)
            health(&c, segs.seg[0]);
        else
            status_method_not_allowed(resp);
        goto done;
    }
    if (segs.n == 1 && !strcmp(segs.seg[0], "metrics")) {
        if (head_ok)
            metrics_page(resp);
        else
            status_method_not_allowed(resp);
        goto done;
    }
    if (segs.n == 0 || strcmp(segs.seg[0], "apis")) {
        server_response_header(resp, "X-Content-Type-Options", "nosniff");
        server_response_text(resp, 404, "text/plain; charset=utf-8",
                             "404 page not found\n");
        goto done;
    }
    if (!is_get) {
        status_method_not_allowed(resp);
        goto done;
    }
    bool pretty_accept = false;
    if (!httputil_accept_json(server_request_header(req, "Accept"),
                              &pretty_accept)) {
        status_not_acceptable(resp);
        goto done;
    }
    c.pretty = httputil_pretty(server_request_query(req, "pretty"),
                               server_request_header(req, "User-Agent"));
    char err[512];
    if (httputil_request_timeout(server_request_query(req, "timeout"),
                                 a->request_timeout_ms, &c.timeout_ms, err,
                                 sizeof err) != 0) {
        status_bad_request(resp, err);
        goto done;
    }
    if (c.thread)
        refresh_engine(a, c.thread);
    if (!c.thread || !c.thread->engine || !c.thread->http) {
        status_internal_error(resp, "request handler unavailable");
        goto done;
    }
    /* This thread's engine learns a new resource map when the relist
     * published one (every --discovery-interval at most). */
    if (c.thread->resources_generation != c.snap->resources_generation) {
        if (engine_set_resources(c.thread->engine, c.snap->resources,
                                 c.snap->nresources, err, sizeof err) != 0)
            LOGE("worker rules engine: %s", err);
        c.thread->resources_generation = c.snap->resources_generation;
    }
    route_apis(&c, &segs);
done:
    cache_snap_release(a->cache, c.snap);
    httputil_segs_free(&segs);
}

/* -- Request metrics -------------------------------------------------- */

void
api_route_label(const char *path, char *out, size_t outlen)
{
    static const char *const keep[] = {
        "namespaces", "pods", "nodes", "metrics", "*",
    };
    static const char *const top[] = {
        "/healthz", "/livez", "/readyz", "/metrics", "/apis", "/version", "/",
    };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (!strcmp(path, top[i])) {
            snprintf(out, outlen, "%s", path);
            return;
        }
    struct httputil_segs s = {0};
    if (strncmp(path, "/apis/", 6) || httputil_split_path(path, &s) != 0 ||
        s.n < 2 || (strcmp(s.seg[1], CUSTOM_GROUP) &&
                    strcmp(s.seg[1], EXTERNAL_GROUP) &&
                    strcmp(s.seg[1], RESOURCE_GROUP))) {
        snprintf(out, outlen, "other");
        httputil_segs_free(&s);
        return;
    }
    size_t o = (size_t)snprintf(out, outlen, "/apis/%s", s.seg[1]);
    for (size_t i = 2; i < s.n && o < outlen; i++) {
        const char *seg = "*";
        if (i == 2 && (!strcmp(s.seg[i], "v1beta1") || !strcmp(s.seg[i], "v1beta2")))
            seg = s.seg[i];
        for (size_t k = 0; i > 2 && k < sizeof keep / sizeof keep[0]; k++)
            if (!strcmp(s.seg[i], keep[k]))
                seg = keep[k];
        o += (size_t)snprintf(out + o, outlen - o, "/%s", seg);
    }
    httputil_segs_free(&s);
}

static void
observe(const struct server_request *req, const struct server_response *resp,
        double start)
{
    char route[256], code[16];
    api_route_label(req->path, route, sizeof route);
    snprintf(code, sizeof code, "%d", resp->status);
    metrics_add(METRICS_HTTP_REQUESTS, route, code, 1);
    metrics_observe(METRICS_HTTP_DURATION, route, code, metrics_now() - start);
}

void
api_serve(void *ctx, const struct server_request *req,
          struct server_response *resp)
{
    double start = metrics_now();
    struct api *a = ctx;
    metrics_add(METRICS_HTTP_INFLIGHT, NULL, NULL, 1);
    if (a->next)
        a->next(a->next_ctx, req, resp);
    else
        api_handle(ctx, req, resp);
    metrics_add(METRICS_HTTP_INFLIGHT, NULL, NULL, -1);
    observe(req, resp, start);
}

void *
api_serve_thread_init(void *ctx)
{
    struct api *a = ctx;
    return a->next_thread_init ? a->next_thread_init(a->next_ctx)
                               : api_thread_init(ctx);
}

void
api_serve_thread_fini(void *ctx, void *thread)
{
    struct api *a = ctx;
    if (a->next_thread_fini)
        a->next_thread_fini(a->next_ctx, thread);
    else
        api_thread_fini(ctx, thread);
}

void
api_metrics_handle(void *ctx, const struct server_request *req,
                   struct server_response *resp)
{
    double start = metrics_now();
    bool head_ok = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
    if (!strcmp(req->path, "/metrics") && head_ok) {
        metrics_page(resp);
    } else if (!strcmp(req->path, "/healthz") || !strcmp(req->path, "/livez") ||
               !strcmp(req->path, "/readyz")) {
        api_handle(ctx, req, resp);
    } else {
        server_response_text(resp, 404, "text/plain; charset=utf-8",
                             "404 page not found\n");
    }
    observe(req, resp, start);
}
