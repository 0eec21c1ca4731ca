-- Engine end to end (spec-rules.md §2.5, §3, §4): discovery registries and
-- byte-identical queries for the worked examples.
local Y = require "unit.yamltree"
local engine = require "adapter.engine"

local function R(g, v, r, s, k, ns, pref)
    return { group = g, version = v, resource = r, singular = s, kind = k,
        namespaced = ns, preferred = pref ~= false }
end

local TEST_MAPPER = {
    R("", "v1", "pods", "pod", "Pod", true), R("", "v1", "services", "service", "Service", true),
    R("", "v1", "nodes", "node", "Node", false),
    R("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", false),
    R("", "v1", "namespaces", "namespace", "Namespace", false),
    R("extensions", "v1beta1", "ingresses", "ingress", "Ingress", true),
    R("extensions", "v1beta1", "deployments", "deployment", "Deployment", true),
}

local function load(text, list)
    local eng, errs, warns = engine.new(Y.parse(text), { file = "t.yaml" })
    assert(eng, errs and errs[1] and (errs[1].path .. ": " .. errs[1].msg))
    assert(eng:set_resources(list or TEST_MAPPER))
    return eng, warns
end

local function read(path)
    local f = assert(io.open(path))
    local s = f:read("*a")
    f:close()
    return s
end

local function find(entries, res, metric, ns)
    for _, e in ipairs(entries) do
        if e.resource == res and e.metric == metric and e.namespaced == ns then return e end
    end
end

describe("config-gen registry (prefix kube_, rate 1m)", function()
    local eng = load(read("spec/fixtures/rules/config-gen-kube-1m.yaml"))
    local q = eng:series_queries("custom")
    local results = {
        [q[1]] = { shapes = {
            { name = "container_some_usage", labels = { "pod", "namespace", "container" } },
            { name = "container_some_count_total", labels = { "pod", "namespace", "container" } },
            { name = "container_some_time_seconds_total", labels = { "pod", "namespace", "container" } },
        } },
        [q[2]] = { shapes = {
            { name = "ingress_hits_total", labels = { "kube_ingress", "kube_service", "kube_pod", "kube_namespace" } },
            { name = "service_proxy_packets", labels = { "kube_service", "kube_namespace" } },
            { name = "work_queue_wait_seconds_total", labels = { "kube_deployment", "kube_namespace" } },
            { name = "node_gigawatts", labels = { "kube_node" } },
            { name = "volume_claims_total", labels = { "kube_persistentvolume" } },
            { name = "node_fan_seconds_total", labels = { "kube_node" } },
        } },
    }
    local entries, problems = eng:discover("custom", results)

    it("shares one series query per rule group", function()
        assert.are.equal(2, #q)
        assert.are.equal(0, #problems)
    end)

    it("registers the expected keys, sorted", function()
        assert.truthy(find(entries, "namespaces", "some_usage", false))
        assert.truthy(find(entries, "ingresses", "ingress_hits", true))
        assert.truthy(find(entries, "nodes", "node_gigawatts", false))
        assert.truthy(find(entries, "persistentvolumes", "volume_claims", false))
        for i = 2, #entries do
            local a, b = entries[i - 1], entries[i]
            assert.is_true(a.resource < b.resource or (a.resource == b.resource and
                (a.group < b.group or a.namespaced ~= b.namespaced or a.metric < b.metric)))
        end
        local d = find(entries, "deployments", "work_queue_wait", true)
        assert.are.same({ "extensions", "Deployment", "v1beta1", "kube_deployment", "kube_namespace" },
            { d.group, d.kind, d.version, d.resource_label, d.namespace_label })
    end)

    local function render(res, metric, ns, names, sel)
        local e = assert(find(entries, res, metric, ns ~= ""))
        return eng:render_custom({ rule = e.rule, series = e.series, metric = metric,
            resource = e.resource, group = e.group, namespace = ns, names = names,
            metric_selector = sel or "", resource_label = e.resource_label,
            namespace_label = e.namespace_label })
    end
    local examples = {
        { "pods", "some_usage", "somens", { "somepod1", "somepod2" }, nil,
          'sum(container_some_usage{namespace="somens",pod=~"somepod1|somepod2",container!="POD"}) by (pod)' },
        { "pods", "some_count", "somens", { "somepod1", "somepod2" }, nil,
          'sum(rate(container_some_count_total{namespace="somens",pod=~"somepod1|somepod2",container!="POD"}[1m])) by (pod)' },
        { "pods", "some_time", "somens", { "somepod1", "somepod2" }, nil,
          'sum(rate(container_some_time_seconds_total{namespace="somens",pod=~"somepod1|somepod2",container!="POD"}[1m])) by (pod)' },
        { "services", "ingress_hits", "somens", { "somesvc" }, nil,
          'sum(rate(ingress_hits_total{kube_namespace="somens",kube_service="somesvc"}[1m])) by (kube_service)' },
        { "services", "ingress_hits", "somens", { "somesvc" }, "param1=value1",
          'sum(rate(ingress_hits_total{param1="value1",kube_namespace="somens",kube_service="somesvc"}[1m])) by (kube_service)' },
        { "ingresses", "ingress_hits", "somens", { "someingress" }, nil,
          'sum(rate(ingress_hits_total{kube_namespace="somens",kube_ingress="someingress"}[1m])) by (kube_ingress)' },
        { "pods", "ingress_hits", "somens", { "somepod" }, nil,
          'sum(rate(ingress_hits_total{kube_namespace="somens",kube_pod="somepod"}[1m])) by (kube_pod)' },
        { "services", "service_proxy_packets", "somens", { "somesvc" }, nil,
          'sum(service_proxy_packets{kube_namespace="somens",kube_service="somesvc"}) by (kube_service)' },
        { "deployments", "work_queue_wait", "somens", { "somedep" }, nil,
          'sum(rate(work_queue_wait_seconds_total{kube_namespace="somens",kube_deployment="somedep"}[1m])) by (kube_deployment)' },
        { "nodes", "node_gigawatts", "", { "somenode" }, nil,
          'sum(node_gigawatts{kube_node="somenode"}) by (kube_node)' },
        { "persistentvolumes", "volume_claims", "", { "somepv" }, nil,
          'sum(rate(volume_claims_total{kube_persistentvolume="somepv"}[1m])) by (kube_persistentvolume)' },
        { "nodes", "node_fan", "", { "somenode" }, nil,
          'sum(rate(node_fan_seconds_total{kube_node="somenode"}[1m])) by (kube_node)' },
    }
    for _, ex in ipairs(examples) do
        it("renders " .. ex[1] .. "/" .. ex[2] .. (ex[5] and (" " .. ex[5]) or ""), function()
            local query, sel = render(ex[1], ex[2], ex[3], ex[4], ex[5])
            assert.are.equal(ex[6], query)
            if ex[5] then assert.are.equal('{"matchLabels":{"param1":"value1"}}', sel)
            else assert.is_nil(sel) end
        end)
    end

    it("rejects > in a metric selector with 400", function()
        local query, msg, status = render("pods", "some_usage", "somens", { "a" }, "x>5")
        assert.is_nil(query)
        assert.are.equal(400, status)
        assert.matches("not supported by prometheus", msg, 1, true)
    end)

    it("echoes selectors with != as NotIn and sorted values", function()
        local query, sel = render("pods", "some_usage", "somens", { "a" }, "b in (z,y,y),a=1,c!=d,!e,f")
        assert.are.equal('sum(container_some_usage{a="1",b=~"y|z",c!="d",e="",f!="",namespace="somens",pod="a",container!="POD"}) by (pod)', query)
        assert.are.equal('{"matchLabels":{"a":"1"},"matchExpressions":[{"key":"b","operator":"In","values":["y","z"]},'
            .. '{"key":"c","operator":"NotIn","values":["d"]},{"key":"e","operator":"DoesNotExist"},'
            .. '{"key":"f","operator":"Exists"}]}', sel)
    end)
end)

local WALK = [[
rules:
- seriesQuery: '{__name__=~"^http_requests_.*",kubernetes_pod_name!="",kubernetes_namespace!=""}'
  resources:
    overrides:
      kubernetes_namespace: {resource: namespace}
      kubernetes_pod_name: {resource: pod}
  name:
    matches: "^(.*)_total"
    as: "${1}_per_second"
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: '{__name__="queue_consumer_lag"}'
  resources:
    overrides:
      namespace: {resource: namespace}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (name)'
- seriesQuery: '{__name__="queue_depth"}'
  resources: {namespaced: false}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (name)'
]]

describe("walkthrough and external examples", function()
    local eng = load(WALK)
    local sq = eng:series_queries("custom")[1]
    local entries = eng:discover("custom", { [sq] = { shapes = {
        { name = "http_requests_total", labels = { "kubernetes_pod_name", "kubernetes_namespace", "method" } } } } })

    it("names the metric through as", function()
        assert.truthy(find(entries, "pods", "http_requests_per_second", true))
    end)

    it("puts the namespace before the resource", function()
        local e = find(entries, "pods", "http_requests_per_second", true)
        local req = { rule = e.rule, series = e.series, resource = "pods", group = "",
            namespace = "production", names = { "a", "b" }, metric_selector = "" }
        assert.are.equal('sum(rate(http_requests_total{kubernetes_namespace="production",kubernetes_pod_name=~"a|b"}[2m])) by (kubernetes_pod_name)',
            (eng:render_custom(req)))
        req.metric_selector = "method=GET"
        assert.are.equal('sum(rate(http_requests_total{method="GET",kubernetes_namespace="production",kubernetes_pod_name=~"a|b"}[2m])) by (kubernetes_pod_name)',
            (eng:render_custom(req)))
    end)

    it("answers namespace-level requests", function()
        local e = find(entries, "namespaces", "http_requests_per_second", false)
        assert.are.equal('sum(rate(http_requests_total{kubernetes_namespace="production"}[2m])) by (kubernetes_namespace)',
            (eng:render_custom({ rule = e.rule, series = e.series, resource = "namespaces", group = "",
                namespace = "", names = { "production" }, metric_selector = "" })))
    end)

    local function ext(rule, selector, ns)
        return eng:render_external({ rule = rule, series = rule == 1 and "queue_consumer_lag" or "queue_depth",
            metric = "x", namespace = ns or "default", selector = selector })
    end
    it("builds external queries", function()
        assert.are.equal('sum(queue_consumer_lag{name="my-queue",namespace="default"}) by (name)', ext(1, "name=my-queue"))
        assert.are.equal('sum(queue_consumer_lag{name=~"q1|q2",topic!="",namespace="default"}) by (name)', ext(1, "topic,name in (q2,q1)"))
        assert.are.equal('sum(queue_consumer_lag{shard="",namespace="default"}) by (name)', ext(1, "!shard"))
        assert.are.equal('sum(queue_consumer_lag{env!="prod",namespace="default"}) by (name)', ext(1, "env!=prod"))
        assert.are.equal('sum(queue_depth{}) by (name)', ext(2, ""))
        local q, msg, status = ext(1, "x>5")
        assert.is_nil(q)
        assert.are.equal(400, status)
        assert.truthy(msg)
    end)

    it("registers external metrics sorted, last writer wins", function()
        -- API names differ from the series names (name.as), so an entry
        -- must keep the series its query is built from; orders_len comes
        -- from both rules and the later one's series wins
        local e2 = load([[
externalRules:
- seriesQuery: '{__name__=~"^app_.*_queue_length$"}'
  resources: {namespaced: false}
  name: {matches: "^app_(.*)_queue_length$", as: "${1}_len"}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>})'
- seriesQuery: 'legacy_orders_backlog'
  resources: {namespaced: false}
  name: {matches: "^legacy_(.*)_backlog$", as: "${1}_len"}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>})'
]])
        local eq = e2:series_queries("external")
        assert.are.equal(2, #eq)
        local got, problems = e2:discover("external", {
            [eq[1]] = { shapes = { { name = "app_payments_queue_length", labels = { "queue" } },
                { name = "app_orders_queue_length", labels = { "queue" } } } },
            [eq[2]] = { shapes = { { name = "legacy_orders_backlog", labels = {} } } } })
        assert.are.same({
            { metric = "orders_len", series = "legacy_orders_backlog", rule = 2 },
            { metric = "payments_len", series = "app_payments_queue_length", rule = 1 },
        }, got)
        assert.are.same({ { rule = 2, level = "warning", msg = 'externalRules[1]: external metric '
            .. '"orders_len" also defined by externalRules[0]; the later rule wins' } }, problems)
        assert.are.equal("max(legacy_orders_backlog{})", (e2:render_external({ rule = got[1].rule,
            series = got[1].series, metric = got[1].metric, namespace = "default", selector = "" })))
    end)

    it("reports a failing series query as an error of its rule", function()
        local eq = eng:series_queries("external")
        local got, problems = eng:discover("external", {
            [eq[1]] = { shapes = { { name = "queue_consumer_lag", labels = { "name" } } } },
            [eq[2]] = { error = "bad_data: boom" } })
        assert.are.same({ { metric = "queue_consumer_lag", series = "queue_consumer_lag", rule = 1 } }, got)
        assert.are.equal(1, #problems)
        assert.are.equal(2, problems[1].rule)
        assert.are.equal("error", problems[1].level)
        assert.matches('^externalRules%[1%]: unable to fetch metrics for query ".*": bad_data: boom$',
            problems[1].msg)
    end)
end)

describe("external rule without a namespace mapping", function()
    local eng, warns = load([[
externalRules:
- seriesQuery: 'x'
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
]])
    it("warns at load and explains the 500", function()
        assert.are.equal(1, #warns)
        assert.are.equal("externalRules[0].resources", warns[1].path)
        local q, msg, status = eng:render_external({ rule = 1, series = "x", namespace = "default", selector = "" })
        assert.is_nil(q)
        assert.are.equal(500, status)
        assert.matches("namespaced: false", msg, 1, true)
        assert.matches("^externalRules%[0%]: ", msg)
    end)
end)
