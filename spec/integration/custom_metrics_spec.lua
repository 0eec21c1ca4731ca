-- spec/integration/custom_metrics_spec.lua: custom.metrics.k8s.io end to
-- end: the real binary against the fake Prometheus and fake Kubernetes API.
-- Asserts the exact PromQL the fake receives (spec-rules.md §2.4–2.5), the
-- exact JSON of both API versions (spec-server.md §2.5.4), discovery
-- documents, the error catalogue (spec-server.md §3.2, spec-rules.md §6.4,
-- decisions #12), content negotiation, health endpoints and start-up
-- failures (spec-server.md §8.1, spec-rules.md §1.1).
-- Uses: spec/helpers.lua, spec/fixtures/{prometheus,kube}/*.json.
-- Timestamps are wall-clock values: they are checked for RFC 3339 form, then
-- replaced by "TS" before exact comparison.

local helpers = require "helpers"
local cjson = require "cjson"

local P1 = "sample-app-7cfb596f98-8h5mv"
local P2 = "sample-app-7cfb596f98-kq2zd"
local BASE = "/apis/custom.metrics.k8s.io"

-- The walkthrough rule (docs/walkthrough.md), config-gen's six rules with
-- rate interval 1m and no label prefix (spec-rules.md §8), and a node rule.
local CONFIG = [[
rules:
- seriesQuery: 'http_requests_total{kubernetes_namespace!="",kubernetes_pod_name!=""}'
  resources:
    overrides:
      kubernetes_namespace: {resource: "namespace"}
      kubernetes_pod_name: {resource: "pod"}
  name:
    matches: "^(.*)_total"
    as: "${1}_per_second"
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  seriesFilters: []
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: '^container_(.*)_seconds_total$', as: ""}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[1m])) by (<<.GroupBy>>)'
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  seriesFilters: [{isNot: '^container_.*_seconds_total$'}]
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: '^container_(.*)_total$', as: ""}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[1m])) by (<<.GroupBy>>)'
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  seriesFilters: [{isNot: '^container_.*_total$'}]
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: '^container_(.*)$', as: ""}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>,container!="POD"}) by (<<.GroupBy>>)'
- seriesQuery: '{namespace!="",__name__!~"^container_.*"}'
  seriesFilters: [{isNot: '.*_total$'}]
  resources: {template: '<<.Resource>>'}
  name: {matches: "", as: ""}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: '{namespace!="",__name__!~"^container_.*"}'
  seriesFilters: [{isNot: '.*_seconds_total'}]
  resources: {template: '<<.Resource>>'}
  name: {matches: '^(.*)_total$', as: ""}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)'
- seriesQuery: '{namespace!="",__name__!~"^container_.*"}'
  seriesFilters: []
  resources: {template: '<<.Resource>>'}
  name: {matches: '^(.*)_seconds_total$', as: ""}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)'
- seriesQuery: 'node_load1{node!=""}'
  resources:
    template: '<<.Resource>>'
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
]]

-- -- Helpers local to this spec ------------------------------------------------

local function sample(labels, value)
    return { metric = labels, value = { 1715851267.123, value } }
end

local function vector(samples)
    return { result = { resultType = "vector", result = samples } }
end

-- Replace every item timestamp by "TS" after checking its form.
local function norm(doc)
    for _, item in ipairs(doc and doc.items or {}) do
        assert.is_string(item.timestamp)
        assert.truthy(item.timestamp:match(helpers.RFC3339), "timestamp " .. item.timestamp)
        item.timestamp = "TS"
    end
    return doc
end

local function status_doc(code, reason, message, details)
    return { kind = "Status", apiVersion = "v1", metadata = {}, status = "Failure",
        message = message, reason = reason, code = code, details = details }
end

local NULL = cjson.null

describe("custom metrics API", function()
    local prom, kube, adapter

    -- Script `query` on the fake, run the request, and return what the
    -- adapter answered plus every /api/v1/query the fake received for it.
    local function ask(path, query, answer, headers)
        if query then
            local body = answer or vector({})
            body.query = query
            prom:control("POST", "/_fake/query", body)
        end
        prom:clear_requests()
        local status, doc, raw, hs = adapter:get_json(path, headers)
        local queries = {}
        for _, r in ipairs(prom:requests("/api/v1/query")) do
            queries[#queries + 1] = r.params.query
        end
        return status, doc, raw, hs, queries
    end

    setup(function()
        prom = helpers.start_prometheus {
            state_file = helpers.fixture("prometheus/custom_metrics.json") }
        kube = helpers.start_kube {
            state_file = helpers.fixture("kube/objects.json") }
        adapter = helpers.start_adapter {
            config = CONFIG, prometheus = prom, kube = kube, relist = "1s",
            args = { "--prometheus-timeout=2s" },
        }
    end)

    teardown(function()
        if adapter then adapter:stop() end
        helpers.cleanup()
    end)

    -- back to the fixture's series and no scripted queries (unknown
    -- queries get an empty vector), whatever the previous test left
    before_each(function()
        prom:control("POST", "/_fake/reset")
    end)

    -- -- Discovery ------------------------------------------------------------

    describe("discovery", function()
        local EXPECTED = {
            { "deployments.apps/queue_length", true },
            { "ingresses.networking.k8s.io/request_duration", true },
            { "namespaces/cpu_usage", false },
            { "namespaces/http_requests", false },
            { "namespaces/http_requests_per_second", false },
            { "namespaces/memory_working_set_bytes", false },
            { "namespaces/queue_length", false },
            { "namespaces/request_duration", false },
            { "nodes/node_load1", false },
            { "pods/cpu_usage", true },
            { "pods/http_requests", true },
            { "pods/http_requests_per_second", true },
            { "pods/memory_working_set_bytes", true },
            { "services/http_requests", true },
        }

        local function expected_list(version)
            local res = {}
            for i, e in ipairs(EXPECTED) do
                res[i] = { name = e[1], singularName = "", namespaced = e[2],
                    kind = "MetricValueList", verbs = { "get" } }
            end
            return { kind = "APIResourceList", apiVersion = "v1",
                groupVersion = "custom.metrics.k8s.io/" .. version, resources = res }
        end

        it("lists the custom metrics group in /apis", function()
            local status, doc, _, hs = adapter:get_json("/apis")
            assert.equal(200, status)
            assert.truthy(hs["content-type"]:find("application/json", 1, true))
            assert.equal("APIGroupList", doc.kind)
            assert.equal("v1", doc.apiVersion)
            assert.equal(1, #doc.groups)
            local g = doc.groups[1]
            assert.equal("custom.metrics.k8s.io", g.name)
            local versions = {}
            for _, v in ipairs(g.versions) do
                assert.equal("custom.metrics.k8s.io/" .. v.version, v.groupVersion)
                versions[#versions + 1] = v.version
            end
            table.sort(versions)
            helpers.assert_same({ "v1beta1", "v1beta2" }, versions)
            assert.truthy(g.preferredVersion.groupVersion:match("^custom%.metrics%.k8s%.io/v1beta[12]$"))
        end)

        it("serves the APIGroup document", function()
            local status, doc = adapter:get_json(BASE)
            assert.equal(200, status)
            assert.equal("APIGroup", doc.kind)
            assert.equal("v1", doc.apiVersion)
            assert.equal("custom.metrics.k8s.io", doc.name)
            assert.is_nil(doc.serverAddressByClientCIDRs)
            assert.is_true(#doc.versions == 2)
        end)

        for _, version in ipairs({ "v1beta1", "v1beta2" }) do
            it("lists every discovered metric, sorted, in " .. version, function()
                local status, doc, raw = adapter:get_json(BASE .. "/" .. version)
                assert.equal(200, status)
                helpers.assert_same(expected_list(version), doc)
                -- Go's field order inside an entry, compact, newline-terminated
                assert.truthy(raw:find('{"name":"pods/http_requests","singularName":"",'
                    .. '"namespaced":true,"kind":"MetricValueList","verbs":["get"]}', 1, true), raw)
                assert.equal("\n", raw:sub(-1))
            end)
        end

        it("relists with one series call per distinct seriesQuery, start = now - max age", function()
            local want = {      -- byte order
                'http_requests_total{kubernetes_namespace!="",kubernetes_pod_name!=""}',
                'node_load1{node!=""}',
                '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}',
                '{namespace!="",__name__!~"^container_.*"}',
            }
            local seen
            helpers.wait_until(function()
                seen = {}
                for _, r in ipairs(prom:requests("/api/v1/series")) do
                    local m = r.params["match[]"]
                    assert.is_string(m, "exactly one match[] per call")
                    assert.is_nil(r.params["end"])
                    local start = tonumber(r.params.start)
                    assert.is_number(start)
                    -- max age defaults to the relist interval (1s)
                    assert.is_true(math.abs(r.time - 1 - start) < 5, "start " .. r.params.start)
                    seen[m] = true
                end
                local n = 0
                for _ in pairs(seen) do n = n + 1 end
                return n >= #want
            end, helpers.scale(6), 0.2)
            local got = {}
            for m in pairs(seen) do got[#got + 1] = m end
            table.sort(got)
            helpers.assert_same(want, got)
        end)

        it("accepts a trailing slash on the version document", function()
            local status, doc = adapter:get_json(BASE .. "/v1beta1/")
            assert.equal(200, status)
            assert.equal("APIResourceList", doc.kind)
        end)
    end)

    -- -- Data routes ------------------------------------------------------------

    describe("namespaced objects by selector", function()
        local Q = 'sum(rate(http_requests_total{kubernetes_namespace="default",'
            .. 'kubernetes_pod_name=~"' .. P1 .. "|" .. P2 .. '"}[2m])) by (kubernetes_pod_name)'

        it("answers v1beta1 in Kubernetes list order with the exact PromQL", function()
            -- the samples come back in the opposite order of the pod list
            local status, doc, raw, hs, queries = ask(
                BASE .. "/v1beta1/namespaces/default/pods/%2A/http_requests_per_second?labelSelector=app%3Dsample-app",
                Q, vector({ sample({ kubernetes_pod_name = P2 }, "1.5"),
                    sample({ kubernetes_pod_name = P1 }, "0.066") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ Q }, queries)
            assert.truthy(hs["content-type"]:find("application/json", 1, true))
            helpers.assert_same({
                kind = "MetricValueList", apiVersion = "custom.metrics.k8s.io/v1beta1", metadata = {},
                items = {
                    { describedObject = { kind = "Pod", namespace = "default", name = P1, apiVersion = "/v1" },
                      metricName = "http_requests_per_second", timestamp = "TS", value = "66m", selector = NULL },
                    { describedObject = { kind = "Pod", namespace = "default", name = P2, apiVersion = "/v1" },
                      metricName = "http_requests_per_second", timestamp = "TS", value = "1500m", selector = NULL },
                } }, norm(doc))
            local head = '{"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/v1beta1","metadata":{},"items":['
            assert.equal(head, raw:sub(1, #head))
            assert.equal("}\n", raw:sub(-2))
            assert.truthy(raw:find('{"describedObject":{"kind":"Pod","namespace":"default","name":"' .. P1
                .. '","apiVersion":"/v1"},"metricName":"http_requests_per_second","timestamp":"', 1, true), raw)
            assert.truthy(raw:find('"value":"66m","selector":null}', 1, true), raw)
        end)

        it("sends the PromQL with a GET, the query time and an instant query", function()
            prom:clear_requests()
            adapter:get(BASE .. "/v1beta1/namespaces/default/pods/%2A/http_requests_per_second?labelSelector=app%3Dsample-app")
            local r = prom:requests("/api/v1/query")
            assert.equal(1, #r)
            assert.equal("GET", r[1].method)
            assert.equal(Q, r[1].params.query)
            assert.truthy(tostring(r[1].params.time):match("^%d+%.?%d?%d?%d?$"), r[1].params.time)
            assert.is_true(math.abs(tonumber(r[1].params.time) - helpers.now()) < 60)
        end)

        it("answers v1beta2 with metricLabelSelector matchers first and echoed", function()
            local q = 'sum(rate(http_requests_total{method="GET",kubernetes_namespace="default",'
                .. 'kubernetes_pod_name=~"' .. P1 .. "|" .. P2 .. '"}[2m])) by (kubernetes_pod_name)'
            local status, doc, raw, _, queries = ask(
                BASE .. "/v1beta2/namespaces/default/pods/%2A/http_requests_per_second?labelSelector=app%3Dsample-app&metricLabelSelector=method%3DGET",
                q, vector({ sample({ kubernetes_pod_name = P1, method = "GET" }, "0.066") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            helpers.assert_same({
                kind = "MetricValueList", apiVersion = "custom.metrics.k8s.io/v1beta2", metadata = {},
                items = {
                    { describedObject = { kind = "Pod", namespace = "default", name = P1, apiVersion = "/v1" },
                      metric = { name = "http_requests_per_second", selector = { matchLabels = { method = "GET" } } },
                      timestamp = "TS", value = "66m" },
                } }, norm(doc))
            assert.truthy(raw:find('"metric":{"name":"http_requests_per_second","selector":{"matchLabels":{"method":"GET"}}},"timestamp":"', 1, true), raw)
        end)

        it("omits listed objects without a sample and queries all listed names", function()
            local q = 'sum(rate(http_requests_total{kubernetes_namespace="default",'
                .. 'kubernetes_pod_name=~"other-0|' .. P1 .. "|" .. P2 .. '"}[2m])) by (kubernetes_pod_name)'
            local status, doc, raw, _, queries = ask(
                BASE .. "/v1beta1/namespaces/default/pods/%2A/http_requests_per_second",
                q, vector({ sample({ kubernetes_pod_name = P2 }, "2") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            assert.equal(1, #doc.items)
            assert.equal(P2, doc.items[1].describedObject.name)
            assert.equal("2", doc.items[1].value)
        end)

        it("answers 200 with an empty items array when no listed object has a sample", function()
            local status, _, raw = ask(
                BASE .. "/v1beta2/namespaces/default/pods/%2A/http_requests_per_second?labelSelector=app%3Dsample-app",
                Q, vector({ sample({ kubernetes_pod_name = "someone-else" }, "1") }))
            assert.equal(200, status, raw)
            assert.truthy(raw:find('"items":[]', 1, true), raw)
        end)

        it("maps NaN to \"0\"", function()
            local status, doc, raw = ask(
                BASE .. "/v1beta1/namespaces/default/pods/%2A/http_requests_per_second?labelSelector=app%3Dsample-app",
                Q, vector({ sample({ kubernetes_pod_name = P1 }, "NaN") }))
            assert.equal(200, status, raw)
            assert.equal("0", doc.items[1].value)
        end)

        it("sees pods added after start-up", function()
            kube:control("POST", "/_fake/objects", { resource = "pods", items = {
                { name = "sample-app-7cfb596f98-zzzzz", namespace = "default",
                  labels = { app = "sample-app" }, phase = "Running" } } })
            local q = 'sum(rate(http_requests_total{kubernetes_namespace="default",'
                .. 'kubernetes_pod_name=~"' .. P1 .. "|" .. P2 .. '|sample-app-7cfb596f98-zzzzz"}[2m])) by (kubernetes_pod_name)'
            prom:control("POST", "/_fake/query", { query = q, result = { resultType = "vector", result = {
                sample({ kubernetes_pod_name = "sample-app-7cfb596f98-zzzzz" }, "3") } } })
            local got = helpers.wait_until(function()
                local status, doc = adapter:get_json(
                    BASE .. "/v1beta1/namespaces/default/pods/%2A/http_requests_per_second?labelSelector=app%3Dsample-app")
                return status == 200 and doc.items[1] and doc.items[1].describedObject.name
            end, helpers.scale(5), 0.2)
            kube:control("POST", "/_fake/delete", { resource = "pods", items = {
                { name = "sample-app-7cfb596f98-zzzzz", namespace = "default" } } })
            assert.equal("sample-app-7cfb596f98-zzzzz", got)
        end)
    end)

    describe("objects by name", function()
        it("answers a namespaced non-core object in v1beta2", function()
            local q = 'sum(queue_length{namespace="default",deployment="sample-app"}) by (deployment)'
            local status, doc, raw, _, queries = ask(
                BASE .. "/v1beta2/namespaces/default/deployments.apps/sample-app/queue_length",
                q, vector({ sample({ deployment = "sample-app", namespace = "default" }, "10.5") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            helpers.assert_same({
                kind = "MetricValueList", apiVersion = "custom.metrics.k8s.io/v1beta2", metadata = {},
                items = {
                    { describedObject = { kind = "Deployment", namespace = "default", name = "sample-app",
                        apiVersion = "apps/v1" },
                      metric = { name = "queue_length", selector = NULL }, timestamp = "TS", value = "10500m" },
                } }, norm(doc))
        end)

        it("accepts a singular resource name in the path", function()
            local q = 'sum(rate(http_requests_total{namespace="default",service="sample-app"}[1m])) by (service)'
            local status, doc, raw, _, queries = ask(
                BASE .. "/v1beta1/namespaces/default/service/sample-app/http_requests",
                q, vector({ sample({ service = "sample-app" }, "1234000") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            assert.equal("Service", doc.items[1].describedObject.kind)
            assert.equal("1234k", doc.items[1].value)
        end)

        it("answers a root-scoped object in v1beta1", function()
            local q = 'sum(node_load1{node="worker-1"}) by (node)'
            local status, doc, raw, _, queries = ask(BASE .. "/v1beta1/nodes/worker-1/node_load1",
                q, vector({ sample({ node = "worker-1" }, "0.75") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            helpers.assert_same({
                kind = "MetricValueList", apiVersion = "custom.metrics.k8s.io/v1beta1", metadata = {},
                items = {
                    { describedObject = { kind = "Node", name = "worker-1", apiVersion = "/v1" },
                      metricName = "node_load1", timestamp = "TS", value = "750m", selector = NULL },
                } }, norm(doc))
            assert.truthy(raw:find('"describedObject":{"kind":"Node","name":"worker-1","apiVersion":"/v1"}', 1, true), raw)
        end)

        it("answers the namespace object through namespaces/<ns>/metrics/<m>", function()
            local q = 'sum(rate(http_requests_total{namespace="default"}[1m])) by (namespace)'
            local status, doc, raw, _, queries = ask(BASE .. "/v1beta1/namespaces/default/metrics/http_requests",
                q, vector({ sample({ namespace = "default" }, "2") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            helpers.assert_same({
                kind = "MetricValueList", apiVersion = "custom.metrics.k8s.io/v1beta1", metadata = {},
                items = {
                    { describedObject = { kind = "Namespace", name = "default", apiVersion = "/v1" },
                      metricName = "http_requests", timestamp = "TS", value = "2", selector = NULL },
                } }, norm(doc))
        end)

        it("queries a namespace metric of the walkthrough rule with the namespace label", function()
            local q = 'sum(rate(http_requests_total{kubernetes_namespace="default"}[2m])) by (kubernetes_namespace)'
            local status, doc, raw, _, queries = ask(
                BASE .. "/v1beta2/namespaces/default/metrics/http_requests_per_second",
                q, vector({ sample({ kubernetes_namespace = "default" }, "0.5") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            assert.equal("500m", doc.items[1].value)
            assert.equal("Namespace", doc.items[1].describedObject.kind)
        end)

        it("puts a container metric's namespace matcher before the pod matcher", function()
            local q = 'sum(rate(container_cpu_usage_seconds_total{namespace="default",pod="' .. P1
                .. '",container!="POD"}[1m])) by (pod)'
            local status, doc, raw, _, queries = ask(
                BASE .. "/v1beta1/namespaces/default/pods/" .. P1 .. "/cpu_usage",
                q, vector({ sample({ pod = P1 }, "0.016") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            assert.equal("16m", doc.items[1].value)
        end)
    end)

    describe("root-scoped objects by selector", function()
        it("lists nodes by label and queries their names", function()
            local q = 'sum(node_load1{node="worker-1"}) by (node)'
            local status, doc, raw, _, queries = ask(
                BASE .. "/v1beta1/nodes/%2A/node_load1?labelSelector=kubernetes.io%2Fos%3Dlinux",
                q, vector({ sample({ node = "worker-1" }, "0.75") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            helpers.assert_same({
                kind = "MetricValueList", apiVersion = "custom.metrics.k8s.io/v1beta1", metadata = {},
                items = {
                    { describedObject = { kind = "Node", name = "worker-1", apiVersion = "/v1" },
                      metricName = "node_load1", timestamp = "TS", value = "750m", selector = NULL },
                } }, norm(doc))
        end)

        it("treats a literal * like %2A", function()
            local q = 'sum(node_load1{node=~"worker-1|worker-2"}) by (node)'
            local status, doc, raw, _, queries = ask(BASE .. "/v1beta2/nodes/*/node_load1",
                q, vector({ sample({ node = "worker-2" }, "1"), sample({ node = "worker-1" }, "3") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            assert.equal("worker-1", doc.items[1].describedObject.name)
            assert.equal("3", doc.items[1].value)
            assert.equal("worker-2", doc.items[2].describedObject.name)
        end)
    end)

    -- -- Errors -------------------------------------------------------------------

    describe("errors", function()
        it("404s an unknown metric with the exact message", function()
            local status, doc = adapter:get_json(BASE .. "/v1beta1/namespaces/default/pods/" .. P1 .. "/nope")
            assert.equal(404, status)
            helpers.assert_same(status_doc(404, "NotFound", "the server could not find the metric nope for pods"), doc)
        end)

        it("404s a metric asked on the wrong scope", function()
            local status, doc = adapter:get_json(BASE .. "/v1beta1/pods/%2A/http_requests_per_second")
            assert.equal(404, status)
            helpers.assert_same(status_doc(404, "NotFound",
                "the server could not find the metric http_requests_per_second for pods"), doc)
        end)

        it("404s an empty selection instead of an empty list", function()
            local status, doc, _, _, queries = ask(
                BASE .. "/v1beta1/namespaces/default/pods/%2A/http_requests_per_second?labelSelector=app%3Dnone")
            assert.equal(404, status)
            helpers.assert_same(status_doc(404, "NotFound",
                "the server could not find the metric http_requests_per_second for pods"), doc)
            assert.equal(0, #queries)
        end)

        it("404s an object without a sample, naming the object", function()
            local q = 'sum(rate(http_requests_total{kubernetes_namespace="default",kubernetes_pod_name="other-0"}[2m])) by (kubernetes_pod_name)'
            local status, doc, _, _, queries = ask(
                BASE .. "/v1beta1/namespaces/default/pods/other-0/http_requests_per_second", q, vector({}))
            assert.equal(404, status)
            helpers.assert_same({ q }, queries)
            helpers.assert_same(status_doc(404, "NotFound",
                "the server could not find the metric http_requests_per_second for pods other-0"), doc)
            -- a sample for another object is no better
            local status2, doc2 = ask(BASE .. "/v1beta1/namespaces/default/pods/other-0/http_requests_per_second",
                q, vector({ sample({ kubernetes_pod_name = P1 }, "1") }))
            assert.equal(404, status2)
            assert.equal("the server could not find the metric http_requests_per_second for pods other-0", doc2.message)
        end)

        it("names the namespace object in the namespace route's 404", function()
            local status, doc = ask(BASE .. "/v1beta1/namespaces/default/metrics/queue_length",
                'sum(queue_length{namespace="default"}) by (namespace)', vector({}))
            assert.equal(404, status)
            assert.equal("the server could not find the metric queue_length for namespaces default", doc.message)
        end)

        it("400s namespaces/<ns>/<metric> as an invalid request path", function()
            local status, doc = adapter:get_json(BASE .. "/v1beta1/namespaces/default/http_requests")
            assert.equal(400, status)
            helpers.assert_same(status_doc(400, "BadRequest", "invalid request path"), doc)
        end)

        it("404s routes of the wrong shape inside the group", function()
            for _, p in ipairs({ "/v1beta1/namespaces/default/pods/foo", "/v1beta1/a/b/c/d/e/f/g",
                "/v1beta3/pods/x/y" }) do
                local status, doc = adapter:get_json(BASE .. p)
                assert.equal(404, status, p)
                helpers.assert_same(status_doc(404, "NotFound",
                    "the server could not find the requested resource", {}), doc)
            end
        end)

        it("400s a bad labelSelector with the parser's message", function()
            local status, doc = adapter:get_json(
                BASE .. "/v1beta1/namespaces/default/pods/%2A/http_requests_per_second?labelSelector=app%20in")
            assert.equal(400, status)
            helpers.assert_same(status_doc(400, "BadRequest",
                "unable to parse requirement: found '' expected: '('"), doc)
        end)

        it("400s a bad metricLabelSelector (decision #12) without querying", function()
            local status, doc, _, _, queries = ask(
                BASE .. "/v1beta1/namespaces/default/pods/%2A/http_requests_per_second?labelSelector=app%3Dsample-app&metricLabelSelector=method%20in")
            assert.equal(400, status)
            assert.equal("Status", doc.kind)
            assert.equal("BadRequest", doc.reason)
            assert.equal(400, doc.code)
            assert.is_string(doc.message)
            assert.truthy(#doc.message > 0)
            assert.equal(0, #queries)
        end)

        local FETCH = status_doc(500, "InternalError", "Internal error occurred: unable to fetch metrics",
            { causes = { { message = "unable to fetch metrics" } } })
        local NSQ = 'sum(queue_length{namespace="default"}) by (namespace)'
        local NSPATH = BASE .. "/v1beta1/namespaces/default/metrics/queue_length"

        it("500s when Prometheus answers 500", function()
            local status, doc = ask(NSPATH, NSQ, { status = 500, body = "internal" })
            assert.equal(500, status)
            helpers.assert_same(FETCH, doc)
        end)

        it("500s when Prometheus answers an error status", function()
            local status, doc = ask(NSPATH, NSQ, { status = 422, body = cjson.encode({
                status = "error", errorType = "execution", error = "boom" }) })
            assert.equal(500, status)
            helpers.assert_same(FETCH, doc)
        end)

        it("500s when Prometheus answers non-JSON", function()
            local status, doc = ask(NSPATH, NSQ, { status = 200, body = "<html>proxy error</html>",
                content_type = "text/html" })
            assert.equal(500, status)
            helpers.assert_same(FETCH, doc)
        end)

        it("500s when Prometheus answers a non-vector result", function()
            local status, doc = ask(NSPATH, NSQ, { result = { resultType = "scalar", result = { 1, "1" } } })
            assert.equal(500, status)
            helpers.assert_same(FETCH, doc)
        end)

        it("500s within a bounded time when Prometheus hangs, and keeps serving", function()
            local t0 = helpers.now()
            local status, doc = ask(NSPATH, NSQ, { hang = true })
            local took = helpers.now() - t0
            assert.equal(500, status)
            helpers.assert_same(FETCH, doc)
            assert.is_true(took < helpers.scale(10), "took " .. took .. " s")
            local s2, d2 = adapter:get_json(BASE .. "/v1beta1")
            assert.equal(200, s2)
            assert.equal("APIResourceList", d2.kind)
            local s3 = ask(NSPATH, NSQ, vector({ sample({ namespace = "default" }, "1") }))
            assert.equal(200, s3)
        end)

        it("serves other requests while one waits on a slow Prometheus", function()
            prom:control("POST", "/_fake/query", { query = NSQ, delay = 1.5,
                result = { resultType = "vector", result = { sample({ namespace = "default" }, "1") } } })
            local slow = io.popen("curl -sk -o /dev/null -w '%{http_code}' -A spec --max-time 20 "
                .. helpers.shq("https://127.0.0.1:" .. adapter.port .. NSPATH))
            helpers.sleep(0.2)
            local t0 = helpers.now()
            local status = adapter:get("/healthz")
            assert.equal(200, status)
            assert.is_true(helpers.now() - t0 < 1.0)
            assert.equal("200", slow:read("*a"))
            slow:close()
        end)
    end)

    -- -- Negotiation and health ---------------------------------------------------

    describe("negotiation and health", function()
        it("answers a protobuf-preferring Accept with JSON", function()
            local q = 'sum(node_load1{node="worker-2"}) by (node)'
            prom:control("POST", "/_fake/query", { query = q, result = { resultType = "vector",
                result = { sample({ node = "worker-2" }, "1") } } })
            local status, hs, body = adapter:get(BASE .. "/v1beta1/nodes/worker-2/node_load1",
                { Accept = "application/vnd.kubernetes.protobuf, */*" })
            assert.equal(200, status)
            assert.truthy(hs["content-type"]:find("^application/json"))
            assert.equal("MetricValueList", cjson.decode(body).kind)
            local s2, h2 = adapter:get(BASE .. "/v1beta1", { Accept = "application/vnd.kubernetes.protobuf, */*" })
            assert.equal(200, s2)
            assert.truthy(h2["content-type"]:find("^application/json"))
        end)

        for _, p in ipairs({ "/healthz", "/livez", "/readyz" }) do
            it(p .. " answers ok", function()
                local status, hs, body = adapter:get(p)
                assert.equal(200, status)
                assert.equal("ok", body)
                assert.truthy(hs["content-type"]:find("^text/plain"))
            end)
        end
    end)
end)

describe("start-up failures", function()
    teardown(function() helpers.cleanup() end)

    it("exits 2 on an unknown flag", function()
        local rc, err = helpers.run_adapter { config = false, args = { "--nope" } }
        assert.equal(2, rc)
        assert.truthy(err:find("unknown flag: --nope", 1, true), err)
    end)

    it("exits 255 without --config, with PA's message", function()
        local rc, err = helpers.run_adapter { config = false, args = {} }
        assert.equal(255, rc)
        assert.truthy(err:find("unable to load metrics discovery config: no metrics discovery "
            .. "configuration file specified (make sure to use --config)", 1, true), err)
    end)

    it("rejects an unknown key naming file, line and key path", function()
        local rc, err = helpers.run_adapter { config = table.concat({
            "rules:",
            "- seriesQuery: 'up'",
            "  metricsQuery: 'sum(<<.Series>>)'",
            "  nmae:",
            "    matches: x",
            "" }, "\n") }
        assert.is_true(rc ~= 0)
        assert.truthy(err:find("config.yaml:4", 1, true), err)
        assert.truthy(err:find("rules[0].nmae", 1, true), err)
    end)

    it("rejects malformed YAML with the file and line", function()
        local rc, err = helpers.run_adapter { config = "rules:\n- seriesQuery: 'up\n  metricsQuery: x\n" }
        assert.is_true(rc ~= 0)
        assert.truthy(err:find("config.yaml:%d"), err)
    end)
end)
