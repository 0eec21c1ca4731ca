-- spec/integration/explain_spec.lua: `promlua-adapter explain [flags] PATH`
-- (issue 8) against the fake Prometheus and Kubernetes: for a metric that
-- works, the producing rule and series, the objects, the exact PromQL, the
-- raw samples and the handler's JSON; for a metric no rule produces, the
-- nearest candidates with the reason each was rejected (filter, name,
-- resource label); external metrics; metrics.k8s.io paths (the resource
-- rules, the Running pods or nodes selected, the PromQL of each batch, the
-- raw samples, the objects without data and why, the handler's JSON; a
-- config without resourceRules); usage errors.
-- Uses: spec/helpers.lua, spec/fixtures/{prometheus,kube}/*.json, plus pods
-- of a namespace "shop" added to the fake Kubernetes.

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

-- metrics.k8s.io: the resource rules and the queries they render.
local RESOURCE = assert(helpers.read_file(helpers.fixture("resource_rules.yaml")))
local RM = "/apis/metrics.k8s.io/v1beta1"
local TS = 1715851267.123

local function matcher(label, names)
    return #names == 1 and (label .. '="' .. names[1] .. '"')
        or (label .. '=~"' .. table.concat(names, "|") .. '"')
end

local function cpu_q(pods)
    return 'sum(rate(container_cpu_usage_seconds_total{namespace="shop",' .. matcher("pod", pods)
        .. ',container!=""}[3m])) by (pod,container)'
end

local function mem_q(pods)
    return 'sum(container_memory_working_set_bytes{namespace="shop",' .. matcher("pod", pods)
        .. ',container!=""}) by (pod,container)'
end

local function node_cpu_q(nodes)
    return 'sum(rate(node_cpu_seconds_total{' .. matcher("node", nodes)
        .. ',mode!="idle"}[3m])) by (node)'
end

local function node_mem_q(nodes)
    local m = matcher("node", nodes)
    return 'sum(node_memory_MemTotal_bytes{' .. m .. '} - node_memory_MemAvailable_bytes{'
        .. m .. '}) by (node)'
end

local function vector(samples)
    local r = {}
    for i, s in ipairs(samples) do r[i] = { metric = s[1], value = { TS, s[2] } } end
    return { resultType = "vector", result = r }
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
        -- metrics.k8s.io: Running pods web-1, web-2, db-0 (db-0 without
        -- memory data) and a Pending pod in namespace shop; node worker-1
        kube:control("POST", "/_fake/objects", { resource = "pods", items = {
            { name = "web-2", namespace = "shop", labels = { app = "web" }, phase = "Running" },
            { name = "web-1", namespace = "shop", labels = { app = "web" }, phase = "Running" },
            { name = "db-0", namespace = "shop", labels = { app = "db" }, phase = "Running" },
            { name = "pending-0", namespace = "shop", labels = { app = "web" }, phase = "Pending" },
        } })
        local function script(query, samples)
            prom:control("POST", "/_fake/query", { query = query, result = vector(samples) })
        end
        local cpu = { { { pod = "web-1", container = "app" }, "0.25" },
            { { pod = "web-2", container = "app" }, "1.5" },
            { { pod = "db-0", container = "postgres" }, "-1" } }
        local mem = { { { pod = "web-1", container = "app" }, "104857600" },
            { { pod = "web-2", container = "app" }, "52428800" } }
        script(cpu_q({ "db-0", "web-1", "web-2" }), cpu)
        script(mem_q({ "db-0", "web-1", "web-2" }), mem)
        script(cpu_q({ "web-1", "web-2" }), { cpu[1], cpu[2] })
        script(mem_q({ "web-1", "web-2" }), mem)
        script(cpu_q({ "db-0" }), { cpu[3] })
        script(mem_q({ "db-0" }), {})
        script(node_cpu_q({ "worker-1" }), { { { node = "worker-1" }, "0.5" } })
        script(node_mem_q({ "worker-1" }), { { { node = "worker-1" }, "2147483648" } })
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

    -- The lines of section title that start with prefix.
    local function lines_with(out, title, prefix)
        local t = {}
        for _, l in ipairs(section(out, title)) do
            if l:sub(1, #prefix) == prefix then t[#t + 1] = l end
        end
        return t
    end

    local function sent_queries()
        local sent = {}
        for _, r in ipairs(prom:requests("/api/v1/query")) do
            sent[r.params.query[1] or r.params.query] = true
        end
        return sent
    end

    describe("metrics.k8s.io", function()
        it("explains the pods of a namespace: rules, objects, batches, samples, missing data, answer", function()
            prom:clear_requests()
            local rc, out, err = explain(RESOURCE, RM .. "/namespaces/shop/pods")
            assert.are.equal(0, rc, err .. out)
            assert.are.same({ "  PodMetricsList of the Running pods in namespace shop" },
                section(out, "Request"))
            local rules = section(out, "Resource rules")
            assert.are.equal("  resourceRules: window 1m30s (reported in every item, not used in queries)",
                rules[1])
            assert.truthy(rules[2]:match("^  cpu: containerQuery %(.*config%.yaml:3%)$"), rules[2])
            assert.are.same({
                '    sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>,container!=""}[3m])) '
                    .. 'by (<<.GroupBy>>)',
                "    resources: overrides node -> node, namespace -> namespace, pod -> pod",
                '    labels: namespace "namespace", pod "pod", containerLabel "container"',
            }, { rules[3], rules[4], rules[5] })
            assert.truthy(rules[6]:match("^  memory: containerQuery "), rules[6])
            assert.are.same({ "  3 of 3 Running pods in namespace shop", "  shop/db-0", "  shop/web-1",
                "  shop/web-2" }, section(out, "Objects selected"))
            local all = { "db-0", "web-1", "web-2" }
            assert.are.same({ "  batch 1 of 1 (2 queries sent together):",
                "  cpu, namespace shop, 3 pods: " .. cpu_q(all),
                "  memory, namespace shop, 3 pods: " .. mem_q(all) }, section(out, "PromQL"))
            -- the PromQL shown is what the handler sent
            local sent = sent_queries()
            assert.is_true(sent[cpu_q(all)])
            assert.is_true(sent[mem_q(all)])
            local raw = section(out, "Raw samples")
            assert.are.equal("  cpu, namespace shop, 3 pods: 3 samples", raw[1])
            assert.are.equal('    {container="postgres",pod="db-0"} -1 @1715851267.123 (reported as 0)',
                raw[4])
            assert.are.equal("  memory, namespace shop, 3 pods: 2 samples", raw[5])
            assert.are.same({
                '  shop/db-0: no memory sample with pod="db-0"',
                "  shop/pending-0: not Running (metrics.k8s.io serves Running pods only)",
            }, section(out, "Objects without data"))
            local answer = section(out, "Answer")
            assert.are.equal("  HTTP 200", answer[1])
            local doc = cjson.decode(answer[2])
            assert.are.equal("PodMetricsList", doc.kind)
            assert.are.same({ "web-1", "web-2" }, { doc.items[1].metadata.name, doc.items[2].metadata.name })
            assert.are.equal("100Mi", doc.items[1].containers[1].usage.memory)
        end)

        it("explains one pod without memory data: the handler's 404 and why", function()
            local rc, out = explain(RESOURCE, RM .. "/namespaces/shop/pods/db-0")
            assert.are.equal(0, rc, out)
            assert.are.same({ "  PodMetrics of pod shop/db-0" }, section(out, "Request"))
            assert.are.same({ "  shop/db-0" }, section(out, "Objects selected"))
            assert.are.same({ "  cpu, namespace shop, 1 pod: " .. cpu_q({ "db-0" }) },
                lines_with(out, "PromQL", "  cpu"))
            assert.are.same({ "  memory, namespace shop, 1 pod: 0 samples" },
                lines_with(out, "Raw samples", "  memory"))
            assert.are.same({ '  shop/db-0: no memory sample with pod="db-0"' },
                section(out, "Objects without data"))
            local answer = section(out, "Answer")
            assert.are.equal("  HTTP 404", answer[1])
            assert.are.equal('podmetrics.metrics.k8s.io "shop/db-0" not found',
                cjson.decode(answer[2]).message)
            -- a pod that is not Running is named as such
            rc, out = explain(RESOURCE, RM .. "/namespaces/shop/pods/pending-0")
            assert.are.equal(0, rc, out)
            assert.are.same({ "  none: no Running pod shop/pending-0 (the handler answers 404)" },
                section(out, "Objects selected"))
            assert.are.same({ "  (no query sent)" }, section(out, "PromQL"))
            assert.are.same({ "  shop/pending-0: not Running (metrics.k8s.io serves Running pods only)" },
                section(out, "Objects without data"))
            assert.are.equal("  HTTP 404", section(out, "Answer")[1])
        end)

        it("explains a labelSelector: the pods it selects and the PromQL for them", function()
            prom:clear_requests()
            local rc, out = explain(RESOURCE, RM .. "/namespaces/shop/pods?labelSelector=app%3Dweb")
            assert.are.equal(0, rc, out)
            assert.are.same({ '  PodMetricsList of the Running pods in namespace shop, labelSelector "app=web"' },
                section(out, "Request"))
            assert.are.same({ '  2 of 3 Running pods in namespace shop, labelSelector "app=web"',
                "  shop/web-1", "  shop/web-2" }, section(out, "Objects selected"))
            assert.are.same({ "  cpu, namespace shop, 2 pods: " .. cpu_q({ "web-1", "web-2" }) },
                lines_with(out, "PromQL", "  cpu"))
            assert.is_true(sent_queries()[cpu_q({ "web-1", "web-2" })])
            assert.are.same({ "  shop/pending-0: not Running (metrics.k8s.io serves Running pods only)" },
                section(out, "Objects without data"))
            assert.are.equal(2, #cjson.decode(section(out, "Answer")[2]).items)
        end)

        it("explains a single node with the nodeQuery and the node label", function()
            local rc, out = explain(RESOURCE, RM .. "/nodes/worker-1")
            assert.are.equal(0, rc, out)
            assert.are.same({ "  NodeMetrics of node worker-1" }, section(out, "Request"))
            local rules = section(out, "Resource rules")
            assert.truthy(rules[2]:match("^  cpu: nodeQuery "), rules[2])
            assert.are.equal('    sum(rate(node_cpu_seconds_total{<<.LabelMatchers>>,mode!="idle"}[3m])) '
                .. 'by (<<.GroupBy>>)', rules[3])
            assert.are.equal('    labels: node "node"', rules[5])
            assert.are.same({ "  worker-1" }, section(out, "Objects selected"))
            assert.are.same({ "  batch 1 of 1 (2 queries sent together):",
                "  cpu, 1 node: " .. node_cpu_q({ "worker-1" }),
                "  memory, 1 node: " .. node_mem_q({ "worker-1" }) }, section(out, "PromQL"))
            assert.are.same({ "  cpu, 1 node: 1 sample", '    {node="worker-1"} 0.5 @1715851267.123',
                "  memory, 1 node: 1 sample", '    {node="worker-1"} 2147483648 @1715851267.123' },
                section(out, "Raw samples"))
            assert.are.same({ "  (none: every selected object has data)" },
                section(out, "Objects without data"))
            local answer = section(out, "Answer")
            assert.are.equal("  HTTP 200", answer[1])
            local doc = cjson.decode(answer[2])
            assert.are.equal("NodeMetrics", doc.kind)
            assert.are.same({ cpu = "500m", memory = "2Gi" }, doc.usage)
        end)

        it("says when resourceRules is not configured, and how to fix it", function()
            local rc, out = explain("rules:\n" .. rule(nil, true, "${1}_per_second"), RM .. "/nodes")
            assert.are.equal(1, rc, out)
            local rules = section(out, "Resource rules")
            assert.truthy(rules[1]:find("resourceRules is not configured in ", 1, true), rules[1])
            assert.truthy(rules[1]:find("answers 404 for every metrics.k8s.io path", 1, true), rules[1])
            assert.truthy(rules[2]:find("^  fix: add a resourceRules section"), rules[2])
            assert.truthy(rules[2]:find("rules/resource-metrics.yaml", 1, true), rules[2])
            assert.are.same({}, section(out, "PromQL"))
            assert.are.equal("  HTTP 404", section(out, "Answer")[1])
        end)
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
