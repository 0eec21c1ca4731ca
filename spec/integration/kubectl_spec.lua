-- spec/integration/kubectl_spec.lua: issue 2's "Done when": the real
-- kubectl (`kubectl get --raw`) talking to the adapter as if it were the
-- API server (a kubeconfig whose server is https://127.0.0.1:<port>, with
-- insecure-skip-tls-verify and a dummy bearer token) gets the same JSON the
-- other specs expect: a custom metric by selector over pods, and an
-- external metric.
-- Uses: spec/helpers.lua, the fake Prometheus and fake Kubernetes API,
-- /usr/bin/kubectl (scripts/deps.sh installs it).
-- kubectl runs with HOME in a temp dir so its discovery cache never
-- touches the user's ~/.kube.

local helpers = require "helpers"
local cjson = require "cjson"

local P1 = "sample-app-7cfb596f98-8h5mv"
local P2 = "sample-app-7cfb596f98-kq2zd"

-- The walkthrough rule (as in custom_metrics_spec.lua) and PA's sample
-- external rule with its namespace mapping.
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
externalRules:
- seriesQuery: '{__name__="queue_consumer_lag",name!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
]]

local TS = 1715851267.123

local function sample(labels, value)
    return { metric = labels, value = { TS, value } }
end

local function kubectl_available()
    local f = io.popen("command -v kubectl")
    local p = f:read("*a")
    f:close()
    return p ~= ""
end

describe("kubectl get --raw against the adapter", function()
    local prom, kube, adapter, kcfg, home

    -- kubectl get --raw PATH -> exit code, stdout, stderr
    local function kubectl(path)
        local dir = helpers.tmpdir("kubectl")
        local cmd = string.format("HOME=%s timeout %d kubectl --kubeconfig=%s get --raw %s >%s 2>%s; echo $?",
            helpers.shq(home), helpers.scale(20), helpers.shq(kcfg), helpers.shq(path),
            helpers.shq(dir .. "/out"), helpers.shq(dir .. "/err"))
        local f = io.popen(cmd)
        local rc = tonumber(f:read("*a"):match("%d+"))
        f:close()
        return rc, helpers.read_file(dir .. "/out") or "", helpers.read_file(dir .. "/err") or ""
    end

    setup(function()
        assert(kubectl_available(), "kubectl is not installed (scripts/deps.sh installs it)")
        local series = helpers.fixture_json("prometheus/custom_metrics.json").series
        series[#series + 1] = { match = '{__name__="queue_consumer_lag",name!=""}', data = {
            { __name__ = "queue_consumer_lag", name = "orders", namespace = "default" } } }
        prom = helpers.start_prometheus { state = { series = series } }
        kube = helpers.start_kube { state_file = helpers.fixture("kube/objects.json") }
        adapter = helpers.start_adapter { config = CONFIG, prometheus = prom, kube = kube, relist = "1s" }
        local dir = helpers.tmpdir("kubeconfig")
        home = dir
        kcfg = helpers.write_file(dir .. "/config", table.concat({
            "apiVersion: v1",
            "kind: Config",
            "clusters:",
            "- name: adapter",
            "  cluster:",
            "    server: https://127.0.0.1:" .. adapter.port,
            "    insecure-skip-tls-verify: true",
            "users:",
            "- name: dummy",
            "  user:",
            "    token: dummy-token",
            "contexts:",
            "- name: adapter",
            "  context:",
            "    cluster: adapter",
            "    user: dummy",
            "current-context: adapter",
            "",
        }, "\n"))
        -- both metrics discovered before the first call
        helpers.wait_until(function()
            local _, d1 = adapter:get_json("/apis/external.metrics.k8s.io/v1beta1")
            local _, d2 = adapter:get_json("/apis/custom.metrics.k8s.io/v1beta1")
            return d1 and #d1.resources > 0 and d2 and #d2.resources > 0
        end, helpers.scale(5), 0.1)
    end)

    teardown(function()
        if adapter then adapter:stop() end
        helpers.cleanup()
    end)

    it("answers the custom metric by selector with the JSON the specs expect", function()
        local q = 'sum(rate(http_requests_total{kubernetes_namespace="default",'
            .. 'kubernetes_pod_name=~"other-0|' .. P1 .. "|" .. P2 .. '"}[2m])) by (kubernetes_pod_name)'
        prom:control("POST", "/_fake/query", { query = q, result = { resultType = "vector", result = {
            sample({ kubernetes_pod_name = P2 }, "1.5"), sample({ kubernetes_pod_name = P1 }, "0.066") } } })
        prom:clear_requests()
        local rc, out, err = kubectl("/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/*/http_requests_per_second")
        assert.equal(0, rc, err)
        -- the exact PromQL went to Prometheus
        local queries = {}
        for _, r in ipairs(prom:requests("/api/v1/query")) do queries[#queries + 1] = r.params.query end
        helpers.assert_same({ q }, queries)
        local doc = cjson.decode(out)
        for _, it_ in ipairs(doc.items) do
            assert.truthy(it_.timestamp:match(helpers.RFC3339), it_.timestamp)
            it_.timestamp = "TS"
        end
        helpers.assert_same({
            kind = "MetricValueList", apiVersion = "custom.metrics.k8s.io/v1beta1", metadata = {},
            items = {
                { describedObject = { kind = "Pod", namespace = "default", name = P1, apiVersion = "/v1" },
                  metricName = "http_requests_per_second", timestamp = "TS", value = "66m", selector = cjson.null },
                { describedObject = { kind = "Pod", namespace = "default", name = P2, apiVersion = "/v1" },
                  metricName = "http_requests_per_second", timestamp = "TS", value = "1500m", selector = cjson.null },
            } }, doc)
        -- the same bytes as a direct request (timestamps aside)
        local _, _, body = adapter:get("/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/%2A/http_requests_per_second")
        local strip = function(s) return (s:gsub('"timestamp":"[^"]*"', '"timestamp":"TS"'):gsub("%s+$", "")) end
        assert.equal(strip(body), strip(out))
    end)

    it("answers an external metric with the JSON the specs expect", function()
        local q = 'sum(queue_consumer_lag{name="orders",namespace="default"}) by (name)'
        prom:control("POST", "/_fake/query", { query = q, result = { resultType = "vector", result = {
            sample({ name = "orders" }, "42") } } })
        prom:clear_requests()
        local rc, out, err = kubectl("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_consumer_lag?labelSelector=name%3Dorders")
        assert.equal(0, rc, err)
        local queries = {}
        for _, r in ipairs(prom:requests("/api/v1/query")) do queries[#queries + 1] = r.params.query end
        helpers.assert_same({ q }, queries)
        assert.equal('{"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1",'
            .. '"metadata":{},"items":[{"metricName":"queue_consumer_lag","metricLabels":{"name":"orders"},'
            .. '"timestamp":"2024-05-16T09:21:07Z","value":"42"}]}', (out:gsub("%s+$", "")))
    end)

    it("reports the adapter's Status error through kubectl", function()
        local rc, _, err = kubectl("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/nope")
        assert.is_true(rc ~= 0)
        assert.truthy(err:find("the server could not find the metric nope for namespaces", 1, true), err)
    end)
end)
