-- spec/integration/explain_spec.lua: `promlua-adapter explain [flags] PATH`
-- (issue 8) against the fake Prometheus and Kubernetes: for a metric that
-- works, the producing rule and series, the objects, the exact PromQL, the
-- raw samples and the handler's JSON; for a metric no rule produces, the
-- nearest candidates with the reason each was rejected (filter, name,
-- resource label); external metrics; usage errors.
-- Uses: spec/helpers.lua, spec/fixtures/{prometheus,kube}/*.json.

local helpers = require "helpers"
local cjson = require "cjson"

local P1 = "sample-app-7cfb596f98-8h5mv"
local PATH = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_requests_per_second"

local RULE = [[
- seriesQuery: 'http_requests_total{kubernetes_namespace!="",kubernetes_pod_name!=""}'
%s  resources:
    overrides:
      kubernetes_namespace: {resource: "namespace"}
%s  name: {matches: "^(.*)_total", as: "%s"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
]]

local POD = '      kubernetes_pod_name: {resource: "pod"}\n'

local function rule(filters, pod, as)
    return string.format(RULE, filters or "", pod and POD or "", as)
end

describe("explain", function()
    local prom, kube, kc

    setup(function()
        prom = helpers.start_prometheus {
            state_file = helpers.root() .. "/spec/fixtures/prometheus/custom_metrics.json" }
        kube = helpers.start_kube {
            state_file = helpers.root() .. "/spec/fixtures/kube/objects.json" }
        prom:control("POST", "/_fake/query", { pattern = "http_requests_total", result = {
            resultType = "vector",
            result = { { metric = { kubernetes_pod_name = P1 }, value = { 1715851267.1, "2.5" } } } } })
        prom:control("POST", "/_fake/series", { match = 'queue_depth{queue!=""}',
            data = { { __name__ = "queue_depth", queue = "orders" } } })
        prom:control("POST", "/_fake/query", { pattern = "queue_depth", result = {
            resultType = "vector",
            result = { { metric = { queue = "orders" }, value = { 1715851267.1, "7" } } } } })
        kc = helpers.kubeconfig(kube)
    end)

    teardown(function()
        if prom then prom:stop() end
        if kube then kube:stop() end
        helpers.cleanup()
    end)

    local function explain(config, path, extra)
        local dir = helpers.tmpdir("explain")
        local cfg = helpers.write_file(dir .. "/config.yaml", config)
        local args = { "explain", "--config=" .. cfg, "--prometheus-url=" .. prom:url(),
            "--lister-kubeconfig=" .. kc }
        for _, a in ipairs(extra or {}) do args[#args + 1] = a end
        args[#args + 1] = path
        local rc, err, out = helpers.run_adapter { config = false, args = args }
        return rc, out, err
    end

    -- The lines of one "== Title" section (without the title).
    local function section(out, title)
        local t, inside = {}, false
        for l in out:gmatch("[^\n]+") do
            if l:match("^== ") then inside = l:sub(4, 3 + #title) == title
            elseif inside then t[#t + 1] = l end
        end
        return t
    end

    it("shows rule, series, objects, PromQL, samples and the answer of a working metric", function()
        local rc, out, err = explain("rules:\n" .. rule(nil, true, "${1}_per_second"), PATH)
        assert.are.equal(0, rc, err .. out)
        assert.are.same({ "  custom metric http_requests_per_second of pods * in namespace default" },
            section(out, "Request"))
        assert.are.same({
            "  registry: http_requests_per_second for pods <- series http_requests_total (rules[0]; "
                .. "resource label kubernetes_pod_name, namespace label kubernetes_namespace)",
            '  rules[0] produces "http_requests_per_second" for pods from series '
                .. '"http_requests_total" (labels: instance,job,kubernetes_namespace,'
                .. 'kubernetes_pod_name,method)',
        }, section(out, "Rules and series"))
        assert.are.same({ "  default/other-0", "  default/" .. P1,
            "  default/sample-app-7cfb596f98-kq2zd" }, section(out, "Objects selected"))
        assert.are.same({ '  sum(rate(http_requests_total{kubernetes_namespace="default",'
            .. 'kubernetes_pod_name=~"other-0|' .. P1 .. '|sample-app-7cfb596f98-kq2zd"}[2m])) '
            .. 'by (kubernetes_pod_name)' }, section(out, "PromQL"))
        assert.are.same({ '  {kubernetes_pod_name="' .. P1 .. '"} 2.5 @1715851267.100' },
            section(out, "Raw samples"))
        local answer = section(out, "Answer")
        assert.are.equal("  HTTP 200", answer[1])
        local doc = cjson.decode(answer[2])
        assert.are.equal("MetricValueList", doc.kind)
        assert.are.equal(P1, doc.items[1].describedObject.name)
        assert.are.equal("2500m", doc.items[1].value)
        -- the PromQL shown is the one the handler sent
        local sent = {}
        for _, r in ipairs(prom:requests("/api/v1/query")) do
            sent[r.params.query[1] or r.params.query] = true
        end
        assert.is_true(sent[section(out, "PromQL")[1]:sub(3)])
    end)

    it("explains a by-name request and a label selector", function()
        local rc, out = explain("rules:\n" .. rule(nil, true, "${1}_per_second"),
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/" .. P1
                .. "/http_requests_per_second")
        assert.are.equal(0, rc)
        assert.are.same({ "  default/" .. P1 }, section(out, "Objects selected"))
        rc, out = explain("rules:\n" .. rule(nil, true, "${1}_per_second"),
            PATH .. "?labelSelector=app%3Dother")
        assert.are.equal(0, rc)
        assert.are.same({ "  default/other-0" }, section(out, "Objects selected"))
        assert.are.same({ '  sum(rate(http_requests_total{kubernetes_namespace="default",'
            .. 'kubernetes_pod_name="other-0"}[2m])) by (kubernetes_pod_name)' },
            section(out, "PromQL"))
        -- the fake answers for P1 only: the handler matches nothing
        local answer = section(out, "Answer")
        assert.are.equal("  HTTP 200", answer[1])
        assert.are.same({}, cjson.decode(answer[2]).items)
    end)

    it("names the nearest candidates and why each was rejected: filter, name, resource label", function()
        local config = "rules:\n"
            .. rule("  seriesFilters: [{isNot: '^http_requests'}]\n", true, "${1}_per_second")
            .. rule(nil, true, "${1}_rate")
            .. rule(nil, false, "${1}_per_second")
        local rc, out = explain(config, PATH)
        assert.are.equal(1, rc)
        assert.are.same({
            "  registry: no entry for this metric",
            '  no rule produces "http_requests_per_second" for pods; nearest candidates:',
            '    rules[0], series "http_requests_total": filter: rejected by seriesFilters[0] '
                .. '(isNot "^http_requests")',
            '    rules[2], series "http_requests_total": resource label: the series labels '
                .. '{instance,job,kubernetes_namespace,kubernetes_pod_name,method} map to '
                .. 'namespaces, not pods',
            '    rules[1], series "http_requests_total": name: the series becomes '
                .. '"http_requests_rate"',
        }, section(out, "Rules and series"))
        assert.are.same({}, section(out, "PromQL"))
        local answer = section(out, "Answer")
        assert.are.equal("  HTTP 404", answer[1])
        assert.are.equal("the server could not find the metric http_requests_per_second for pods",
            cjson.decode(answer[2]).message)
    end)

    it("names name.matches when it is the filter that rejects the series", function()
        local config = "rules:\n" .. [[
- seriesQuery: 'http_requests_total{kubernetes_namespace!="",kubernetes_pod_name!=""}'
  resources: {template: 'kubernetes_<<.Resource>>'}
  name: {matches: "^(.*)_count$", as: "http_requests_per_second"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
]]
        local rc, out = explain(config, PATH)
        assert.are.equal(1, rc)
        assert.are.equal('    rules[0], series "http_requests_total": filter: name.matches '
            .. '"^(.*)_count$" does not match the series', section(out, "Rules and series")[3])
    end)

    it("explains an external metric", function()
        local config = [[
externalRules:
- seriesQuery: 'queue_depth{queue!=""}'
  resources: {namespaced: false}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)'
]]
        local rc, out = explain(config,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_depth?labelSelector=queue%3Dorders")
        assert.are.equal(0, rc, out)
        assert.are.same({ "  registry: queue_depth <- series queue_depth (externalRules[0])",
            '  externalRules[0] produces "queue_depth" from series "queue_depth"' },
            section(out, "Rules and series"))
        assert.are.same({ '  sum(queue_depth{queue="orders"}) by (queue)' }, section(out, "PromQL"))
        assert.are.equal("  HTTP 200", section(out, "Answer")[1])
        assert.are.equal("7", cjson.decode(section(out, "Answer")[2]).items[1].value)
    end)

    it("rejects a path that is not a metric path, with exit 2", function()
        local rc, _, err = explain("rules: []\n", "/apis/custom.metrics.k8s.io/v1beta2")
        assert.are.equal(2, rc)
        assert.truthy(err:find("not a metric path", 1, true))
        rc, err = helpers.run_adapter { config = false, args = { "explain" } }
        assert.are.equal(2, rc)
        assert.truthy(err:find("explain needs an API path", 1, true))
    end)
end)
