/* fuzz_api.c: libFuzzer target for the request handlers end to end:
 * api_handle (api.c routing, discovery documents, health and /metrics,
 * custom.c, external.c, resource.c, Status errors) with the request and
 * every answer from the outside world taken from the fuzz input.
 *
 * Input: an HTTP/1.1 request head, then the bodies of the Prometheus and
 * Kubernetes calls the request makes:
 *
 *     GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/m?labelSelector=app%3Dweb
 *     Accept: application/json
 *     <blank line>
 *     {"metadata":{},"items":[...]}                  (the pods LIST)
 *     --
 *     {"status":"success","data":{...}}              (the instant query)
 *
 * The request line is "<method> <target>", the target split at '?' as
 * libmicrohttpd does (the path percent-decoded, parameters form-decoded
 * as server.c's param_iter does); up to 16 "Name: value" header lines
 * follow. After the blank line, the "\n--\n"-separated documents answer
 * the calls in order (fake_http.h): a metadata cache's LIST pages the
 * first time a request needs that resource (kcache_acquire is wrapped to
 * list on the fuzz thread: the cache is warm, no thread, no wait), the
 * Prometheus instant queries (prom_query, and resource.c's
 * prom_query_many, served one after the other), and a compute hook's
 * prom.query calls.
 *
 * Fixed: the config below (custom rules with a cluster-scoped resource,
 * a CRD and a compute hook; external rules, one computed; resourceRules),
 * a RESTMapper, and the series registry built once at start-up by the
 * real discovery path (prom_series + engine_discover, as relist.c does).
 *
 * Oracles beyond no crash/leak/UB: the status is one a Kubernetes client
 * can see from these handlers; a JSON answer is one valid JSON value
 * (yajl, UTF-8 checked) without NUL bytes; a non-200 JSON answer is a
 * Status whose code is the HTTP status; a 200 JSON answer is an object
 * with a kind; text answers only on the routes that are not under /apis
 * (health, /metrics, the plain 404); api_route_label stays bounded.
 *
 * kcache.c and engine.c are compiled into this file (as fuzz_kube_list
 * does with kcache.c): the wrapped kcache_acquire drives kcache.c's LIST
 * step directly, and the worker engine's Lua state is collected after
 * every input.
 *
 * Link-time fakes (CMakeLists.txt reads the fuzz-wrap line below):
 * http_client_do (fake_http.h), http_client_do_many (sequential, through
 * the same fake), server_request_header (the input's headers instead of
 * libmicrohttpd's connection), kcache_acquire (synchronous LIST), log_msg
 * (formatted, not written: set FUZZ_API_LOG=1 to see the lines;
 * FUZZ_API_PRINT=1 prints every answer).
 * server_request_remaining_ms (the request clock: see X-Fuzz-Clock).
 * fuzz-wrap: http_client_do_many server_request_header kcache_acquire log_msg server_request_remaining_ms
 *
 * Two request headers steer the harness (the handlers see them too, and
 * ignore them): "X-Fuzz-Clock: N" lets the request's deadline pass at the
 * N+1st reading of its clock (N = 0: already past), so every deadline
 * branch is reachable; "X-Fuzz-Flags: <letters>" serves the request with
 * c / e / r: the custom / external / resource API not installed, s: the
 * server shutting down.
 * Must never: reach the network. */
#include "../../../src/kcache.c"
#include "../../../src/engine.c"
#include "fake_http.h"
#include <sanitizer/lsan_interface.h>
#include <stdarg.h>
#include <strings.h>
#include "api.h"
#include "cache.h"
#include "engine.h"
#include "httputil.h"
#include "prom.h"
#include "reload.h"
#include "server.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* -- The fixed configuration ------------------------------------------- */

static const char config_text[] =
    "rules:\n"
    /* rules/default.yaml's six rules */
    "- seriesQuery: '{__name__=~\"^container_.*\",container!=\"POD\",namespace!=\"\",pod!=\"\"}'\n"
    "  seriesFilters: []\n"
    "  resources:\n"
    "    overrides:\n"
    "      namespace: {resource: namespace}\n"
    "      pod: {resource: pod}\n"
    "  name: {matches: ^container_(.*)_seconds_total$, as: \"\"}\n"
    "  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>,container!=\"POD\"}[5m])) by (<<.GroupBy>>)\n"
    "- seriesQuery: '{__name__=~\"^container_.*\",container!=\"POD\",namespace!=\"\",pod!=\"\"}'\n"
    "  seriesFilters: [{isNot: ^container_.*_seconds_total$}]\n"
    "  resources:\n"
    "    overrides:\n"
    "      namespace: {resource: namespace}\n"
    "      pod: {resource: pod}\n"
    "  name: {matches: ^container_(.*)_total$, as: \"\"}\n"
    "  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>,container!=\"POD\"}[5m])) by (<<.GroupBy>>)\n"
    "- seriesQuery: '{__name__=~\"^container_.*\",container!=\"POD\",namespace!=\"\",pod!=\"\"}'\n"
    "  seriesFilters: [{isNot: ^container_.*_total$}]\n"
    "  resources:\n"
    "    overrides:\n"
    "      namespace: {resource: namespace}\n"
    "      pod: {resource: pod}\n"
    "  name: {matches: ^container_(.*)$, as: \"\"}\n"
    "  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>,container!=\"POD\"}) by (<<.GroupBy>>)\n"
    "- seriesQuery: '{namespace!=\"\",__name__!~\"^container_.*\"}'\n"
    "  seriesFilters: [{isNot: .*_total$}]\n"
    "  resources: {template: <<.Resource>>}\n"
    "  name: {matches: \"\", as: \"\"}\n"
    "  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)\n"
    "- seriesQuery: '{namespace!=\"\",__name__!~\"^container_.*\"}'\n"
    "  seriesFilters: [{isNot: .*_seconds_total}]\n"
    "  resources: {template: <<.Resource>>}\n"
    "  name: {matches: ^(.*)_total$, as: \"\"}\n"
    "  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)\n"
    "- seriesQuery: '{namespace!=\"\",__name__!~\"^container_.*\"}'\n"
    "  seriesFilters: []\n"
    "  resources: {template: <<.Resource>>}\n"
    "  name: {matches: ^(.*)_seconds_total$, as: \"\"}\n"
    "  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)\n"
    /* a computed custom metric (hooks: compute) */
    "- seriesQuery: 'app_latency_ms{namespace!=\"\",pod!=\"\"}'\n"
    "  resources:\n"
    "    overrides:\n"
    "      namespace: {resource: namespace}\n"
    "      pod: {resource: pod}\n"
    "  name: {matches: ^app_latency_ms$, as: app_latency_seconds}\n"
    "  metricsQuery: max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)\n"
    "  hooks: {compute: scaled}\n"
    /* a cluster-scoped custom resource of a group */
    "- seriesQuery: 'cheddar{brand!=\"\"}'\n"
    "  name: {as: cheesy_goodness}\n"
    "  resources:\n"
    "    overrides:\n"
    "      brand: {group: cheese.io, resource: brand}\n"
    "  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)\n"
    "externalRules:\n"
    "- seriesQuery: '{__name__=\"queue_consumer_lag\",name!=\"\"}'\n"
    "  resources:\n"
    "    overrides:\n"
    "      namespace: {resource: namespace}\n"
    "  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)\n"
    "- seriesQuery: '{__name__=\"queue_depth\",topic!=\"\"}'\n"
    "  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)\n"
    "  resources:\n"
    "    namespaced: false\n"
    "- seriesQuery: 'queue_backlog{namespace!=\"\"}'\n"
    "  resources:\n"
    "    overrides:\n"
    "      namespace: {resource: namespace}\n"
    "  name: {as: backlog_per_worker}\n"
    "  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})\n"
    "  hooks: {compute: backlog_per_worker}\n"
    /* rules/default.yaml's resourceRules */
    "resourceRules:\n"
    "  cpu:\n"
    "    containerQuery: |\n"
    "      sum by (<<.GroupBy>>) (irate(container_cpu_usage_seconds_total{<<.LabelMatchers>>,container!=\"\",pod!=\"\"}[4m]))\n"
    "    nodeQuery: |\n"
    "      sum by (<<.GroupBy>>) (irate(node_cpu_usage_seconds_total{<<.LabelMatchers>>}[4m]))\n"
    "    resources:\n"
    "      overrides:\n"
    "        namespace: {resource: namespace}\n"
    "        node: {resource: node}\n"
    "        pod: {resource: pod}\n"
    "    containerLabel: container\n"
    "  memory:\n"
    "    containerQuery: |\n"
    "      sum by (<<.GroupBy>>) (container_memory_working_set_bytes{<<.LabelMatchers>>,container!=\"\",pod!=\"\"})\n"
    "    nodeQuery: |\n"
    "      sum by (<<.GroupBy>>) (node_memory_working_set_bytes{<<.LabelMatchers>>})\n"
    "    resources:\n"
    "      overrides:\n"
    "        namespace: {resource: namespace}\n"
    "        node: {resource: node}\n"
    "        pod: {resource: pod}\n"
    "    containerLabel: container\n"
    "  window: 5m\n";

/* The hook script: a custom compute hook over the default path, and
 * rules/examples/formula.lua's two-query external metric. */
static const char script_text[] =
    "local function scaled(rule, request, prom, default)\n"
    "    local samples, err = default(rule, request)\n"
    "    if not samples then return nil, err end\n"
    "    for _, s in ipairs(samples) do s.value = s.value / 1000 end\n"
    "    return samples\n"
    "end\n"
    "local function lit(s)\n"
    "    return '\"' .. s:gsub('[\\\\\"]', \"\\\\%0\") .. '\"'\n"
    "end\n"
    "local function sum_of(prom, metric, request)\n"
    "    local sel = \"\"\n"
    "    if request.namespace ~= \"\" and request.namespace_label then\n"
    "        sel = request.namespace_label .. \"=\" .. lit(request.namespace)\n"
    "    end\n"
    "    local samples, err = prom.query(string.format(\"sum(%s{%s})\", metric, sel))\n"
    "    if not samples then error(metric .. \": \" .. tostring(err), 0) end\n"
    "    return samples[1] and samples[1].value or 0\n"
    "end\n"
    "local function backlog_per_worker(rule, request, prom, default)\n"
    "    local backlog = sum_of(prom, \"queue_backlog\", request)\n"
    "    local workers = sum_of(prom, \"queue_workers\", request)\n"
    "    local value = workers > 0 and backlog / workers or backlog\n"
    "    return { { labels = {}, value = value } }\n"
    "end\n"
    "return { scaled = scaled, backlog_per_worker = backlog_per_worker }\n";

static const char *const script_paths[] = {"fuzz_hooks.lua"};

/* The RESTMapper (discovery order: core v1 first, then the groups). */
static const struct cache_resource resources[] = {
    {"", "v1", "pods", "pod", "Pod", true, true},
    {"", "v1", "nodes", "node", "Node", false, true},
    {"", "v1", "namespaces", "namespace", "Namespace", false, true},
    {"", "v1", "services", "service", "Service", true, true},
    {"apps", "v1", "deployments", "deployment", "Deployment", true, true},
    {"apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, true},
    {"networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", true, true},
    {"cheese.io", "v1", "brands", "brand", "Brand", false, true},
};

/* The /api/v1/series answer for one seriesQuery of the config. */
static const char *
series_body(const char *query)
{
    if (strstr(query, "__name__=~\"^container_"))
        return "{\"status\":\"success\",\"data\":["
            "{\"__name__\":\"container_cpu_usage_seconds_total\",\"container\":\"app\",\"namespace\":\"default\",\"pod\":\"web-1\"},"
            "{\"__name__\":\"container_memory_working_set_bytes\",\"container\":\"app\",\"namespace\":\"default\",\"pod\":\"web-1\"},"
            "{\"__name__\":\"container_network_receive_bytes_total\",\"interface\":\"eth0\",\"namespace\":\"default\",\"pod\":\"web-1\"}]}";
    if (strstr(query, "__name__!~\"^container_"))
        return "{\"status\":\"success\",\"data\":["
            "{\"__name__\":\"http_requests_total\",\"namespace\":\"default\",\"pod\":\"web-1\",\"service\":\"web\"},"
            "{\"__name__\":\"request_latency_seconds_total\",\"namespace\":\"default\",\"pod\":\"web-1\"},"
            "{\"__name__\":\"kube_deployment_status_replicas\",\"namespace\":\"default\",\"deployment\":\"web\"},"
            "{\"__name__\":\"statefulset_ready\",\"namespace\":\"db\",\"statefulset\":\"pg\"},"
            "{\"__name__\":\"nginx_ingress_requests\",\"namespace\":\"default\",\"ingress\":\"web\"},"
            "{\"__name__\":\"node_temperature_celsius\",\"namespace\":\"monitoring\",\"node\":\"node-1\"},"
            "{\"__name__\":\"namespace_quota_used\",\"namespace\":\"default\"}]}";
    if (strstr(query, "app_latency_ms"))
        return "{\"status\":\"success\",\"data\":[{\"__name__\":\"app_latency_ms\",\"namespace\":\"default\",\"pod\":\"web-1\"}]}";
    if (strstr(query, "cheddar"))
        return "{\"status\":\"success\",\"data\":[{\"__name__\":\"cheddar\",\"brand\":\"tillamook\",\"sharp\":\"true\"}]}";
    if (strstr(query, "queue_consumer_lag"))
        return "{\"status\":\"success\",\"data\":[{\"__name__\":\"queue_consumer_lag\",\"name\":\"orders\",\"namespace\":\"default\"}]}";
    if (strstr(query, "queue_depth"))
        return "{\"status\":\"success\",\"data\":[{\"__name__\":\"queue_depth\",\"name\":\"orders\",\"topic\":\"t\"}]}";
    if (strstr(query, "queue_backlog"))
        return "{\"status\":\"success\",\"data\":[{\"__name__\":\"queue_backlog\",\"namespace\":\"default\"}]}";
    return "{\"status\":\"success\",\"data\":[]}";
}

/* -- Process state ------------------------------------------------------- */

static struct kube_client *kube;
static struct prom_client *prom;
static struct kcache_set kset;
static struct cache registry;
static struct config_store store;
static struct api api;
static struct api_thread *thread;
static bool log_lines;     /* FUZZ_API_LOG: write the log lines */
static bool print_answers; /* FUZZ_API_PRINT: print each answer */

/* The request being served (one at a time, on the fuzz thread). */
#define FZ_MAX_HEADERS 16
static struct {
    char *name[FZ_MAX_HEADERS], *value[FZ_MAX_HEADERS];
    size_t n;
} hdrs;
static long clock_left;         /* X-Fuzz-Clock: readings before the
                                 * deadline passes; -1: the real clock */

/* -- Link-time fakes ------------------------------------------------------- */

int __wrap_http_client_do_many(struct http_client *c, struct http_call *calls,
                               size_t n, size_t max_parallel);
const char *__wrap_server_request_header(const struct server_request *req,
                                         const char *name);
struct kcache_snap *__wrap_kcache_acquire(struct kcache_set *s,
                                          const char *group,
                                          const char *version,
                                          const char *resource,
                                          const char *field_selector,
                                          long wait_ms, char *err,
                                          size_t errlen);
void __wrap_log_msg(enum log_sev sev, const char *file, int line,
                    const char *fmt, ...);
int64_t __wrap_server_request_remaining_ms(const struct server_request *req,
                                           int64_t timeout_ms);
int64_t __real_server_request_remaining_ms(const struct server_request *req,
                                           int64_t timeout_ms);

/* The real clock, or X-Fuzz-Clock's: the time left until its readings
 * run out, then a deadline passed (by a little more at each reading). */
int64_t
__wrap_server_request_remaining_ms(const struct server_request *req,
                                   int64_t timeout_ms)
{
    int64_t left = __real_server_request_remaining_ms(req, timeout_ms);

    if (clock_left < 0)
        return left;
    if (clock_left > 0) {
        clock_left--;
        return left;
    }
    return -1 - (left & 7);
}

/* The calls one after the other, through the fake transport. */
int
__wrap_http_client_do_many(struct http_client *c, struct http_call *calls,
                           size_t n, size_t max_parallel)
{
    int failed = 0;

    (void)max_parallel;
    for (size_t i = 0; i < n; i++) {
        calls[i].err[0] = '\0';
        calls[i].rc = __wrap_http_client_do(c, calls[i].req, &calls[i].resp,
                                            calls[i].err,
                                            sizeof calls[i].err);
        failed += calls[i].rc != 0;
    }
    return failed;
}

/* First value of a header, names compared case-insensitively as
 * libmicrohttpd does. */
const char *
__wrap_server_request_header(const struct server_request *req,
                             const char *name)
{
    (void)req;
    for (size_t i = 0; i < hdrs.n; i++)
        if (strcasecmp(hdrs.name[i], name) == 0)
            return hdrs.value[i];
    return NULL;
}

/* kcache_acquire with the cache filled on the fuzz thread: the first
 * acquire of a (group, version, resource, fieldSelector) in an input runs
 * kcache.c's LIST (pages from the input) and publishes; a failed LIST
 * answers as the real one does when its wait ends before a list
 * succeeded. The caches live until the end of the input. */
struct kcache_snap *
__wrap_kcache_acquire(struct kcache_set *s, const char *group,
                      const char *version, const char *resource,
                      const char *field_selector, long wait_ms, char *err,
                      size_t errlen)
{
    const char *fsel = field_selector ? field_selector : "";
    struct kcache *c;

    (void)wait_ms;
    if (!group)
        group = "";
    for (c = s->caches; c; c = c->next)
        if (!strcmp(c->group, group) && !strcmp(c->version, version)
            && !strcmp(c->resource, resource) && !strcmp(c->fsel, fsel))
            break;
    if (!c) {
        size_t bl = strlen(group) + strlen(version) + strlen(resource) + 16;
        if (!(c = calloc(1, sizeof *c)))
            abort();
        pthread_mutex_init(&c->mu, NULL);
        pthread_cond_init(&c->cv, NULL);
        c->set = s;
        if (!(c->group = strdup(group)) || !(c->version = strdup(version))
            || !(c->resource = strdup(resource)) || !(c->fsel = strdup(fsel))
            || !(c->base = malloc(bl)))
            abort();
        if (*group)
            snprintf(c->base, bl, "/apis/%s/%s/%s", group, version, resource);
        else
            snprintf(c->base, bl, "/api/%s/%s", version, resource);
        c->next = s->caches;
        s->caches = c;
        if (do_list(c, NULL, c->last_err, sizeof c->last_err) == 0) {
            publish(c);
            c->synced = c->snap != NULL;
        } else if (!c->last_err[0]) {
            abort();    /* a failed LIST says why */
        }
    }
    if (!c->synced) {
        seterr(err, errlen, "timed out waiting for the initial list of %s "
               "(last error: %s)", c->base, c->last_err);
        return NULL;
    }
    atomic_fetch_add(&c->snap->refs_, 1);
    return c->snap;
}

void
__wrap_log_msg(enum log_sev sev, const char *file, int line,
               const char *fmt, ...)
{
    char text[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (log_lines)
        fprintf(stderr, "%d %s:%d] %s\n", (int)sev, file, line, text);
}

static void
caches_free(void)
{
    struct kcache *c = kset.caches;

    while (c) {
        struct kcache *next = c->next;
        cache_free(c);
        c = next;
    }
    kset.caches = NULL;
}

/* -- Start-up: the registry, as relist.c builds it ------------------------------ */

static void
discover_kind(struct engine *e, const char *kind, struct cache_snap *snap)
{
    char err[4096];
    char **queries = NULL;
    size_t nq = 0;
    int *failed = NULL;
    size_t nfailed = 0;

    if (engine_series_queries(e, kind, &queries, &nq, err, sizeof err) != 0)
        goto fail;
    struct prom_shapes **shapes = calloc(nq + 1, sizeof *shapes);
    char **errors = calloc(nq + 1, sizeof *errors);
    if (!shapes || !errors)
        abort();
    for (size_t i = 0; i < nq; i++) {
        const char *body = series_body(queries[i]);
        fake_http_reset((const uint8_t *)body, strlen(body));
        if (prom_series(prom, NULL, queries[i], 0, &shapes[i], err,
                        sizeof err) != 0)
            goto fail;
    }
    if (engine_discover(e, kind, queries, shapes, errors, nq, snap, &failed,
                        &nfailed, err, sizeof err) != 0 || nfailed)
        goto fail;
    for (size_t i = 0; i < nq; i++)
        prom_shapes_free(shapes[i]);
    free(shapes);
    free(errors);
    free(failed);
    engine_strv_free(queries, nq);
    return;
fail:
    fprintf(stderr, "fuzz_api: %s discovery: %s\n", kind, err);
    abort();
}

/* At exit, before LeakSanitizer looks: what lives in LuaJIT's own heap
 * (the worker engine's compiled regexes, cjson's buffer) is invisible to
 * it, so the engine is closed rather than left to the exit. */
static void
cleanup(void)
{
    caches_free();
    api_thread_fini(&api, thread);
    thread = NULL;
    cache_destroy(&registry);
    config_store_destroy(&store);
    prom_client_free(prom);
    kube_client_free(kube);
    pthread_mutex_destroy(&kset.mu);
    metrics_free_all();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct kube_config kcfg;
    struct prom_options po;
    struct config_snap *cs;
    struct engine_hooks hooks;
    struct engine *e;
    char err[4096];
    size_t nres = sizeof resources / sizeof resources[0];

    (void)argc;
    (void)argv;
    log_lines = getenv("FUZZ_API_LOG") != NULL;
    print_answers = getenv("FUZZ_API_PRINT") != NULL;
    log_set_verbosity(log_lines ? 4 : 0);
    if (http_client_global_init() != 0)
        abort();

    memset(&kcfg, 0, sizeof kcfg);
    if (!(kcfg.server = strdup("https://kube.fuzz.invalid:6443")))
        abort();
    if (!(kube = kube_client_new(&kcfg, 1000, err, sizeof err)))
        abort();
    memset(&po, 0, sizeof po);
    po.url = "http://prometheus.fuzz.invalid:9090";
    /* no query cache: every request's answers come from its own input */
    if (!(prom = prom_client_new(&po, err, sizeof err)))
        abort();
    kset.kc = kube;
    pthread_mutex_init(&kset.mu, NULL);
    atomic_init(&kset.requests, 0);

    /* the config store the worker builds its engine from */
    if (!(cs = calloc(1, sizeof *cs))
        || !(cs->text = strdup(config_text))
        || !(cs->script_texts = calloc(1, sizeof *cs->script_texts))
        || !(cs->script_texts[0] = strdup(script_text)))
        abort();
    cs->len = strlen(config_text);
    cs->script_paths = script_paths;
    cs->nscripts = 1;
    cs->hook_timeout_ms = 1000;
    cs->has_custom = cs->has_external = cs->has_resource = true;
    config_store_init(&store, cs);

    /* the registry: a relist's discovery with fixed series */
    config_snap_hooks(cs, &hooks);
    if (!(e = engine_new(cs->text, cs->len, "fuzz.yaml", NULL, &hooks, false,
                         err, sizeof err))) {
        fprintf(stderr, "fuzz_api: config: %s\n", err);
        abort();
    }
    if (engine_set_resources(e, resources, nres, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_api: resources: %s\n", err);
        abort();
    }
    if (cache_init(&registry) != 0)
        abort();
    struct cache_snap *snap = cache_snap_new();
    if (!snap)
        abort();
    for (size_t i = 0; i < nres; i++)
        if (cache_snap_add_resource(snap, &resources[i]) < 0)
            abort();
    snap->resources_generation = 1;
    discover_kind(e, "custom", snap);
    discover_kind(e, "external", snap);
    snap->custom_listed = snap->external_listed = true;
    if (!snap->ncustom || !snap->nexternal)
        abort();
    cache_publish(&registry, snap);
    engine_free(e);

    api.cache = &registry;
    api.relist = NULL;
    api.prom = prom;
    api.kcache = &kset;
    api.config = &store;
    api.config_file = "fuzz.yaml";
    api.lua_dir = NULL;
    atomic_init(&api.has_custom, true);
    atomic_init(&api.has_external, true);
    atomic_init(&api.has_resource, true);
    atomic_init(&api.shutting_down, false);
    api.request_timeout_ms = 60000;
    api.prom_timeout_ms = 30000;
    api.secure_port = 6443;
    /* the one worker, warm: its engine learns the resource map on the
     * first request as a pool thread's does. What its engine allocates
     * now is referenced from LuaJIT's own mmap'd heap, which
     * LeakSanitizer does not scan: not reported (the engine is closed by
     * cleanup at exit). */
    __lsan_disable();
    thread = api_thread_init(&api);
    /* built now if engine.c defers the build to first use; the first
     * request still hands the map over itself (resources_generation) */
    if (!thread || !thread->engine || !thread->http
        || engine_set_resources(thread->engine, resources, nres, err,
                                sizeof err) != 0)
        abort();
    __lsan_enable();
    atexit(cleanup);
    return 0;
}

/* -- One input ------------------------------------------------------------ */

struct params {
    struct server_param v[64];
    size_t n;
};

static char *
decode(const char *s, size_t n, bool form)
{
    struct buf b;

    buf_init(&b, 1 << 20);
    if (httputil_pct_decode(s, n, form, &b) < 0) {
        buf_free(&b);
        return NULL;
    }
    char *out = buf_take(&b, NULL);
    if (!out && !(out = strdup("")))
        abort();
    return out;
}

/* libmicrohttpd's split of the query string ('&' then the first '=';
 * "k" without '=' is k with no value; an empty piece before a '&' is the
 * key ""), each piece form-decoded as server.c's param_iter does (a piece
 * that does not decode is dropped). */
static void
parse_query(const char *q, struct params *p)
{
    while (*q && p->n < sizeof p->v / sizeof p->v[0]) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t kl = eq ? (size_t)(eq - q) : len;
        char *k = decode(q, kl, true);
        char *v = decode(eq ? eq + 1 : "", eq ? len - kl - 1 : 0, true);
        if (k && v) {
            p->v[p->n].key = k;
            p->v[p->n].value = v;
            p->n++;
        } else {
            free(k);
            free(v);
        }
        if (!amp)
            break;
        q = amp + 1;
    }
}

/* The input's request head: NUL-terminated copies. */
struct head {
    char *method, *target;
};

static size_t
parse_head(const uint8_t *data, size_t size, struct head *h)
{
    const uint8_t *end = fake_http_find(data, size, "\n\n", 2);
    size_t hl = end ? (size_t)(end - data) : size;
    size_t body = end ? hl + 2 : size;
    char *text = malloc(hl + 1);
    char *line, *next;

    if (!text)
        abort();
    memcpy(text, data, hl);
    text[hl] = '\0';
    /* the request line */
    line = text;
    next = strchr(line, '\n');
    if (next)
        *next++ = '\0';
    char *sp = strchr(line, ' ');
    if (sp)
        *sp = '\0';
    if (!(h->method = strdup(line)) || !(h->target = strdup(sp ? sp + 1 : "/")))
        abort();
    /* header lines */
    for (line = next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *colon = strchr(line, ':');
        if (!colon || colon == line || hdrs.n == FZ_MAX_HEADERS)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (!(hdrs.name[hdrs.n] = strdup(line))
            || !(hdrs.value[hdrs.n] = strdup(v)))
            abort();
        hdrs.n++;
    }
    free(text);
    return body;
}

/* -- Oracles -------------------------------------------------------------- */

/* X-Fuzz-Clock and X-Fuzz-Flags (see the top of the file). */
static void
harness_headers(void)
{
    const char *v;

    clock_left = -1;
    if ((v = __wrap_server_request_header(NULL, "X-Fuzz-Clock")))
        clock_left = strtol(v, NULL, 10) & 0xff;
    v = __wrap_server_request_header(NULL, "X-Fuzz-Flags");
    atomic_store(&api.has_custom, !(v && strchr(v, 'c')));
    atomic_store(&api.has_external, !(v && strchr(v, 'e')));
    atomic_store(&api.has_resource, !(v && strchr(v, 'r')));
    atomic_store(&api.shutting_down, v && strchr(v, 's'));
}

static bool
status_allowed(int s)
{
    static const int ok[] = {200, 400, 401, 403, 404, 405, 406, 413, 414,
                             422, 429, 500, 503, 504};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (s == ok[i])
            return true;
    return false;
}

static const char *
jstr(yajl_val v, const char *key)
{
    const char *p[] = {key, NULL};
    yajl_val s = yajl_tree_get(v, p, yajl_t_string);
    return s ? YAJL_GET_STRING(s) : NULL;
}

static void
fail(const char *why, const struct server_response *resp)
{
    fprintf(stderr, "fuzz_api: %s (status %d, content type %s)\n%.*s\n", why,
            resp->status, resp->content_type ? resp->content_type : "(none)",
            (int)(resp->body.len > 4096 ? 4096 : resp->body.len),
            resp->body.data ? resp->body.data : "");
    abort();
}

static void
check(const char *path, const struct server_response *resp)
{
    const char *ct = resp->content_type;
    struct httputil_segs s = {0};
    bool text_ok;

    if (!status_allowed(resp->status))
        fail("unexpected status", resp);
    /* text only outside /apis: health, /metrics and the plain 404 */
    if (httputil_split_path(path, &s) != 0)
        text_ok = false;
    else
        text_ok = s.n == 0 || strcmp(s.seg[0], "apis") != 0;
    httputil_segs_free(&s);
    if (ct && !strncmp(ct, "text/plain", 10)) {
        if (!text_ok)
            fail("a text answer under /apis", resp);
        if (resp->status != 200 && resp->status != 404 && resp->status != 500)
            fail("unexpected status for a text answer", resp);
        return;
    }
    if (!ct || strcmp(ct, "application/json") != 0)
        fail("neither JSON nor text", resp);

    size_t len = resp->body.len;
    if (!len || !resp->body.data || memchr(resp->body.data, '\0', len))
        fail("empty JSON body, or a NUL byte in it", resp);
    char *text = malloc(len + 1), perr[256];
    if (!text)
        abort();
    memcpy(text, resp->body.data, len);
    text[len] = '\0';
    yajl_val doc = yajl_tree_parse(text, perr, sizeof perr);
    free(text);
    if (!doc) {
        fprintf(stderr, "fuzz_api: yajl: %s\n", perr);
        fail("invalid JSON", resp);
    }
    if (!YAJL_IS_OBJECT(doc))
        fail("the JSON answer is not an object", resp);
    const char *kind = jstr(doc, "kind");
    if (!kind)
        fail("no kind", resp);
    if (resp->status != 200) {
        const char *cp[] = {"code", NULL};
        yajl_val code = yajl_tree_get(doc, cp, yajl_t_number);
        const char *st = jstr(doc, "status");
        const char *av = jstr(doc, "apiVersion");
        if (strcmp(kind, "Status") || !av || strcmp(av, "v1") || !st
            || strcmp(st, "Failure"))
            fail("an error that is not a Status", resp);
        if (!code || !YAJL_IS_INTEGER(code)
            || YAJL_GET_INTEGER(code) != resp->status)
            fail("Status code differs from the HTTP status", resp);
    } else if (!strcmp(kind, "Status")) {
        fail("a Status with 200", resp);
    }
    yajl_tree_free(doc);
}

static void
check_route_label(const char *path)
{
    char label[256];

    memset(label, 0x55, sizeof label);
    api_route_label(path, label, sizeof label);
    if (!memchr(label, '\0', sizeof label))
        abort();
    if (strcmp(label, "other") && label[0] != '/')
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct head h = {0};
    struct params p = {0};
    struct server_response resp;

    hdrs.n = 0;
    size_t body = parse_head(data, size, &h);
    harness_headers();
    fake_http_reset(data + body, size - body);

    /* libmicrohttpd hands over the path without the query string */
    char *q = strchr(h.target, '?');
    if (q)
        *q++ = '\0';
    char *path = decode(h.target, strlen(h.target), false);
    if (!path)      /* server.c answers 400 itself */
        goto done;
    if (q)
        parse_query(q, &p);
    struct server_request req = {
        .method = h.method, .raw_path = h.target, .path = path,
        .version = "HTTP/1.1", .remote_addr = "10.0.0.1:51234", .tls = true,
        .start_ms = server_now_ms(), .thread_ctx = thread, .params = p.v,
        .nparams = p.n, .conn_ = NULL,
    };
    memset(&resp, 0, sizeof resp);
    resp.status = 500;
    buf_init(&resp.body, SERVER_MAX_BODY);
    api_handle(&api, &req, &resp);
    if (print_answers)
        fprintf(stderr, "%s %s -> %d %s after %u calls, %zu bytes:\n%.*s\n",
                h.method, path, resp.status,
                resp.content_type ? resp.content_type : "(none)",
                fake_http.calls, resp.body.len,
                (int)(resp.body.len > 2000 ? 2000 : resp.body.len),
                resp.body.data ? resp.body.data : "");
    check(path, &resp);
    check_route_label(path);
    buf_free(&resp.body);
    for (size_t i = 0; i < resp.nheaders; i++) {
        free(resp.headers[i].name);
        free(resp.headers[i].value);
    }
    free(path);
done:
    /* C buffers owned by Lua userdata made for this request (core.goquote,
     * selectors, regexes) are freed by __gc only, and LeakSanitizer cannot
     * see LuaJIT's heap that still points at them: collect them now */
    if (thread->engine->L)
        lua_gc(thread->engine->L, LUA_GCCOLLECT, 0);
    caches_free();
    for (size_t i = 0; i < p.n; i++) {
        free(p.v[i].key);
        free(p.v[i].value);
    }
    for (size_t i = 0; i < hdrs.n; i++) {
        free(hdrs.name[i]);
        free(hdrs.value[i]);
    }
    hdrs.n = 0;
    free(h.method);
    free(h.target);
    return 0;
}
