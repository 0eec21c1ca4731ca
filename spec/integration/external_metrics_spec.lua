-- spec/integration/external_metrics_spec.lua: external.metrics.k8s.io end
-- to end: the real binary against the fake Prometheus and fake Kubernetes
-- API (the latter only for discovery: external metrics never list objects).
-- Asserts the exact PromQL the fake receives for every selector operator
-- (spec-rules.md §2.4.2, §2.4.4, §2.5), the exact ExternalMetricValueList
-- JSON for vector and scalar results (spec-server.md §2.6, spec-rules.md
-- §6.2), NaN/Inf clamping (decision #9), the error catalogue (404 texts,
-- 400 for bad selectors per decisions #12/#13, 500s), discovery and which
-- groups /apis lists (spec-rules.md §1.4), the warning and 500 for a
-- namespaced rule without a namespace mapping (decision #7), naming and
-- seriesFilters (spec-rules.md §4.4: the API name from name.as, the PromQL
-- from the series name), a series with only __name__, the independence of
-- the custom and external registries when one's series call fails
-- (spec-rules.md §5.2, §5.4), and PA's docs/sample-config.yaml as repaired
-- in rules/examples/sample-config.yaml.
-- Uses: spec/helpers.lua, spec/fixtures/kube/*.json, rules/examples/.
-- Timestamps of items are the samples' own, so they are compared exactly.

local helpers = require "helpers"
local cjson = require "cjson"

local BASE = "/apis/external.metrics.k8s.io"
local V1 = BASE .. "/v1beta1"
local NULL = cjson.null
local TS = 1715851267.123              -- sample time used by every answer
local TS_TEXT = "2024-05-16T09:21:07Z" -- its RFC 3339 form (seconds)

-- One rule per behaviour under test:
--  [0] namespace from an override (the PA sample rule, fixed);
--  [1] namespaced: false (no namespace matcher at all);
--  [2] namespace from a template (kube_<<.Resource>> -> kube_namespace);
--  [3] namespaced, no namespace mapping: warned at start-up, 500 per request;
--  [4] the bare selector, for result-shape tests (namespaced: false);
--  [5] a template that fails when executed (500 naming the rule);
--  [6] naming and filters: name.matches/as renames the series, an isNot
--      filter drops one of the series (the PromQL keeps the series name);
--  [7] a series with no label besides __name__.
local CONFIG = [[
externalRules:
- seriesQuery: '{__name__="queue_consumer_lag",name!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
- seriesQuery: '{__name__="queue_depth",topic!=""}'
  resources:
    namespaced: false
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
- seriesQuery: '{__name__=~"^kube_.*_messages$",kube_namespace!=""}'
  resources:
    template: kube_<<.Resource>>
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (kube_namespace)
- seriesQuery: 'unmapped_backlog'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})
- seriesQuery: 'raw_gauge'
  resources: {namespaced: false}
  metricsQuery: <<.Series>>{<<.LabelMatchers>>}
- seriesQuery: 'bad_template'
  resources: {namespaced: false}
  metricsQuery: sum(<<.Series>>) by (<<.Namespace>>)
- seriesQuery: '{__name__=~"^app_.*_queue_length$"}'
  seriesFilters:
  - isNot: "^app_internal_"
  resources:
    overrides:
      namespace: {resource: namespace}
  name:
    matches: "^app_(.*)_queue_length$"
    as: "${1}_len"
  metricsQuery: max(<<.Series>>{<<.LabelMatchers>>})
- seriesQuery: 'label_less'
  resources: {namespaced: false}
  metricsQuery: <<.Series>>{<<.LabelMatchers>>}
]]

-- What the fake Prometheus holds for the relist (series calls).
local SERIES = {
    { match = '{__name__="queue_consumer_lag",name!=""}', data = {
        { __name__ = "queue_consumer_lag", name = "orders", namespace = "default" },
        { __name__ = "queue_consumer_lag", name = "payments", namespace = "shop" } } },
    { match = '{__name__="queue_depth",topic!=""}', data = {
        { __name__ = "queue_depth", topic = "t1", name = "orders" } } },
    { match = '{__name__=~"^kube_.*_messages$",kube_namespace!=""}', data = {
        { __name__ = "kube_inbox_messages", kube_namespace = "default" },
        { __name__ = "kube_outbox_messages", kube_namespace = "shop" } } },
    { match = "unmapped_backlog", data = { { __name__ = "unmapped_backlog", job = "x" } } },
    { match = "raw_gauge", data = { { __name__ = "raw_gauge", job = "x" } } },
    { match = "bad_template", data = { { __name__ = "bad_template", job = "x" } } },
    -- app_internal_queue_length is dropped by rule [6]'s isNot filter
    { match = '{__name__=~"^app_.*_queue_length$"}', data = {
        { __name__ = "app_orders_queue_length", namespace = "default", queue = "orders" },
        { __name__ = "app_internal_queue_length", namespace = "default", queue = "gc" } } },
    -- only __name__, as a recording rule that aggregates everything away
    -- (record: label_less, expr: sum(x)) leaves it
    { match = "label_less", data = { { __name__ = "label_less" } } },
}

local function sample(labels, value)
    return { metric = labels, value = { TS, value } }
end

local function vector(samples)
    return { result = { resultType = "vector", result = samples } }
end

local function item(metric, labels, value)
    return { metricName = metric, metricLabels = labels, timestamp = TS_TEXT, value = value }
end

local function list(items)
    return { kind = "ExternalMetricValueList", apiVersion = "external.metrics.k8s.io/v1beta1",
        metadata = {}, items = items }
end

local function status_doc(code, reason, message, details)
    return { kind = "Status", apiVersion = "v1", metadata = {}, status = "Failure",
        message = message, reason = reason, code = code, details = details }
end

local FETCH = status_doc(500, "InternalError", "Internal error occurred: unable to fetch metrics",
    { causes = { { message = "unable to fetch metrics" } } })

-- Start fakes and an adapter for one describe block; returns a context
-- with ask(path, query, answer) -> status, doc, raw, queries.
local function start_env(config, opts)
    opts = opts or {}
    local env = {}
    env.prom = helpers.start_prometheus { state = { series = opts.series or SERIES } }
    env.kube = helpers.start_kube { discovery = opts.discovery }
    env.adapter = helpers.start_adapter {
        config = config, config_file = opts.config_file, prometheus = env.prom,
        kube = env.kube, relist = "1s", args = { "--prometheus-timeout=2s" },
    }
    -- the first relist has published once /readyz is 200; wait until the
    -- registry holds what the series promise (a later relist may be needed
    -- if Prometheus was slow)
    if opts.wait_metric then
        helpers.wait_until(function()
            local _, doc = env.adapter:get_json(V1)
            for _, r in ipairs(doc and doc.resources or {}) do
                if r.name == opts.wait_metric then return true end
            end
        end, helpers.scale(5), 0.1)
    end
    function env.ask(path, query, answer)
        if query then
            local body = answer or vector({})
            body.query = query
            env.prom:control("POST", "/_fake/query", body)
        end
        env.prom:clear_requests()
        local status, doc, raw = env.adapter:get_json(path)
        local queries = {}
        for _, r in ipairs(env.prom:requests("/api/v1/query")) do
            queries[#queries + 1] = r.params.query
        end
        return status, doc, raw, queries
    end
    function env.stop()
        if env.adapter then env.adapter:stop() end
        if env.prom then env.prom:stop() end
        if env.kube then env.kube:stop() end
    end
    return env
end

describe("external metrics API", function()
    local env

    setup(function()
        env = start_env(CONFIG, { wait_metric = "raw_gauge" })
    end)

    teardown(function()
        if env then env.stop() end
        helpers.cleanup()
    end)

    before_each(function()
        -- scripted queries and the default answer back to the start state;
        -- the series (state file) stay
        env.prom:control("POST", "/_fake/reset")
    end)

    -- -- Discovery ------------------------------------------------------------

    describe("discovery", function()
        it("lists only the external group in /apis when there are no custom rules", function()
            local status, doc = env.adapter:get_json("/apis")
            assert.equal(200, status)
            assert.equal("APIGroupList", doc.kind)
            assert.equal(1, #doc.groups)
            local g = doc.groups[1]
            assert.equal("external.metrics.k8s.io", g.name)
            helpers.assert_same({ { groupVersion = "external.metrics.k8s.io/v1beta1", version = "v1beta1" } },
                g.versions)
            helpers.assert_same({ groupVersion = "external.metrics.k8s.io/v1beta1", version = "v1beta1" },
                g.preferredVersion)
        end)

        it("serves the APIGroup document", function()
            local status, doc = env.adapter:get_json(BASE)
            assert.equal(200, status)
            helpers.assert_same({ kind = "APIGroup", apiVersion = "v1", name = "external.metrics.k8s.io",
                versions = { { groupVersion = "external.metrics.k8s.io/v1beta1", version = "v1beta1" } },
                preferredVersion = { groupVersion = "external.metrics.k8s.io/v1beta1", version = "v1beta1" } },
                doc)
        end)

        it("lists every external metric name, sorted, always namespaced", function()
            local status, doc, raw = env.adapter:get_json(V1)
            assert.equal(200, status)
            local res = {}
            for i, name in ipairs({ "bad_template", "kube_inbox_messages", "kube_outbox_messages",
                "label_less", "orders_len", "queue_consumer_lag", "queue_depth", "raw_gauge",
                "unmapped_backlog" }) do
                res[i] = { name = name, singularName = "", namespaced = true,
                    kind = "ExternalMetricValueList", verbs = { "get" } }
            end
            helpers.assert_same({ kind = "APIResourceList", apiVersion = "v1",
                groupVersion = "external.metrics.k8s.io/v1beta1", resources = res }, doc)
            -- Go's field order inside an entry, compact
            assert.truthy(raw:find('{"name":"queue_depth","singularName":"","namespaced":true,'
                .. '"kind":"ExternalMetricValueList","verbs":["get"]}', 1, true), raw)
        end)

        it("does not serve the custom metrics group without rules", function()
            local status = env.adapter:get("/apis/custom.metrics.k8s.io")
            assert.equal(404, status)
            status = env.adapter:get("/apis/custom.metrics.k8s.io/v1beta1")
            assert.equal(404, status)
        end)

        it("404s other shapes under the group", function()
            for _, p in ipairs({ "/queue_depth", "/namespaces/default", "/namespaces/default/a/b" }) do
                local status, doc = env.adapter:get_json(V1 .. p)
                assert.equal(404, status, p)
                helpers.assert_same(status_doc(404, "NotFound",
                    "the server could not find the requested resource", {}), doc, p)
            end
        end)
    end)

    -- -- Naming and filters (spec-rules.md §4.4: as for custom rules) ------------

    describe("naming and filters", function()
        local function names()
            local status, doc = env.adapter:get_json(V1)
            assert.equal(200, status)
            local set = {}
            for _, r in ipairs(doc.resources) do set[r.name] = true end
            return set
        end

        it("lists the name.as name, not the series name nor the filtered series", function()
            local set = names()
            assert.is_true(set.orders_len)
            assert.is_nil(set.app_orders_queue_length)
            assert.is_nil(set.internal_len)
            assert.is_nil(set.app_internal_queue_length)
        end)

        it("queries the renamed metric with the original series name", function()
            local q = 'max(app_orders_queue_length{queue="orders",namespace="default"})'
            local status, doc, raw, queries = env.ask(
                V1 .. "/namespaces/default/orders_len?labelSelector=queue%3Dorders", q,
                vector({ sample({ queue = "orders" }, "5") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            helpers.assert_same(list({ item("orders_len", { queue = "orders" }, "5") }), doc)
        end)

        it("404s the filtered series' metric and the series name, without querying", function()
            for _, m in ipairs({ "internal_len", "app_orders_queue_length" }) do
                local status, doc, _, queries = env.ask(V1 .. "/namespaces/default/" .. m)
                assert.equal(404, status, m)
                assert.equal(0, #queries, m)
                helpers.assert_same(status_doc(404, "NotFound",
                    "the server could not find the metric " .. m .. " for namespaces"), doc)
            end
        end)

        it("publishes a series with no label but __name__ and queries it", function()
            assert.is_true(names().label_less)
            local q = "label_less{}"
            local status, doc, raw, queries = env.ask(V1 .. "/namespaces/default/label_less", q,
                vector({ sample({ __name__ = "label_less" }, "9") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            helpers.assert_same(list({ item("label_less", { __name__ = "label_less" }, "9") }), doc)
        end)
    end)

    -- -- Selectors to PromQL -----------------------------------------------------

    describe("labelSelector to PromQL", function()
        -- rule [0]: override namespace, namespaced (default)
        local function q0(m)
            return "sum(queue_consumer_lag{" .. m .. "}) by (name)"
        end
        local CASES = {
            { "no selector", "", 'namespace="default"' },
            { "=", "name=my-queue", 'name="my-queue",namespace="default"' },
            { "==", "name==my-queue", 'name="my-queue",namespace="default"' },
            { "!=", "env!=prod", 'env!="prod",namespace="default"' },
            { "in, one value", "name in (q1)", 'name=~"q1",namespace="default"' },
            { "in, values sorted and deduplicated", "name in (q2,q1,q2)", 'name=~"q1|q2",namespace="default"' },
            { "notin, one value", "name notin (q1)", 'name!~"q1",namespace="default"' },
            { "notin, values sorted", "name notin (q3,q1)", 'name!~"q1|q3",namespace="default"' },
            { "exists", "topic", 'topic!="",namespace="default"' },
            { "does-not-exist", "!shard", 'shard="",namespace="default"' },
            { "keys sorted", "topic,name in (q2,q1)", 'name=~"q1|q2",topic!="",namespace="default"' },
            { "keys sorted, every operator", "z!=1,y,!x,w notin (b,a),v in (c),u=d",
              'u="d",v=~"c",w!~"a|b",x="",y!="",z!="1",namespace="default"' },
            { "a selector on the namespace label too", "namespace=other",
              'namespace="other",namespace="default"' },
        }
        for _, c in ipairs(CASES) do
            it(c[1], function()
                local q = q0(c[3])
                local path = V1 .. "/namespaces/default/queue_consumer_lag"
                if c[2] ~= "" then path = path .. "?labelSelector=" .. helpers.urlencode(c[2]) end
                local status, doc, raw, queries = env.ask(path, q,
                    vector({ sample({ name = "my-queue" }, "42") }))
                assert.equal(200, status, raw)
                helpers.assert_same({ q }, queries)
                helpers.assert_same(list({ item("queue_consumer_lag", { name = "my-queue" }, "42") }), doc)
            end)
        end

        it("accepts the aggregator's form encoding (+ for spaces)", function()
            local q = q0('name=~"q1|q2",namespace="default"')
            local status, _, raw, queries = env.ask(
                V1 .. "/namespaces/default/queue_consumer_lag?labelSelector=name+in+%28q2%2Cq1%29", q)
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
        end)

        it("uses the request namespace", function()
            local q = q0('name="payments",namespace="shop"')
            local status, doc, raw, queries = env.ask(
                V1 .. "/namespaces/shop/queue_consumer_lag?labelSelector=name%3Dpayments", q,
                vector({ sample({ name = "payments" }, "7") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            assert.equal("7", doc.items[1].value)
        end)

        it("adds no namespace matcher for namespaced: false", function()
            local q = "sum(queue_depth{}) by (name)"
            local status, _, raw, queries = env.ask(V1 .. "/namespaces/default/queue_depth", q)
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            q = 'sum(queue_depth{name=~"a|b",topic="t1"}) by (name)'
            status, _, raw, queries = env.ask(V1 .. "/namespaces/other/queue_depth?labelSelector="
                .. helpers.urlencode("topic=t1,name in (b,a)"), q)
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
        end)

        it("takes the namespace label from a template", function()
            local q = 'sum(kube_inbox_messages{box="a",kube_namespace="default"}) by (kube_namespace)'
            local status, doc, raw, queries = env.ask(
                V1 .. "/namespaces/default/kube_inbox_messages?labelSelector=box%3Da", q,
                vector({ sample({ kube_namespace = "default" }, "3") }))
            assert.equal(200, status, raw)
            helpers.assert_same({ q }, queries)
            helpers.assert_same(list({ item("kube_inbox_messages", { kube_namespace = "default" }, "3") }), doc)
        end)

        for _, op in ipairs({ ">", "<" }) do
            it("400s the " .. op .. " operator without querying (decision #13)", function()
                local status, doc, _, queries = env.ask(V1 .. "/namespaces/default/queue_consumer_lag?labelSelector="
                    .. helpers.urlencode("name=a,x" .. op .. "5"))
                assert.equal(400, status)
                assert.equal(0, #queries)
                helpers.assert_same(status_doc(400, "BadRequest", 'invalid labelSelector: operator "'
                    .. op .. '" on label "x" not supported by prometheus'), doc)
            end)
        end

        for _, c in ipairs({
            { "an unclosed in", "name in", "unable to parse requirement: found '' expected: '('" },
            { "a bad value", "name=a b", "found 'b', expected: ',' or 'end of string'" },
            { "a bad key", "-x=1", 'Invalid value: "-x": name part must consist of alphanumeric characters' },
        }) do
            it("400s " .. c[1] .. " without querying", function()
                local status, doc, _, queries = env.ask(V1 .. "/namespaces/default/queue_consumer_lag?labelSelector="
                    .. helpers.urlencode(c[2]))
                assert.equal(400, status)
                assert.equal(0, #queries)
                assert.equal("BadRequest", doc.reason)
                assert.equal(400, doc.code)
                assert.equal("invalid labelSelector: ", doc.message:sub(1, 23))
                assert.truthy(doc.message:find(c[3], 1, true), doc.message)
            end)
        end
    end)

    -- -- Result shapes -------------------------------------------------------------

    describe("results", function()
        local Q = "raw_gauge{}"
        local PATH = V1 .. "/namespaces/default/raw_gauge"

        it("turns a vector into items in result order with all labels", function()
            local status, doc, raw = env.ask(PATH, Q, vector({
                sample({ __name__ = "raw_gauge", job = "b", instance = "10.0.0.2:80" }, "2.5"),
                sample({ __name__ = "raw_gauge", job = "a", instance = "10.0.0.1:80" }, "0.016"),
                sample({}, "1000"),
            }))
            assert.equal(200, status, raw)
            helpers.assert_same(list({
                item("raw_gauge", { __name__ = "raw_gauge", job = "b", instance = "10.0.0.2:80" }, "2500m"),
                item("raw_gauge", { __name__ = "raw_gauge", job = "a", instance = "10.0.0.1:80" }, "16m"),
                item("raw_gauge", {}, "1k"),
            }), doc)
            -- exact bytes: field order, sorted label keys, {} for no labels
            local want = '{"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1",'
                .. '"metadata":{},"items":['
                .. '{"metricName":"raw_gauge","metricLabels":{"__name__":"raw_gauge","instance":"10.0.0.2:80",'
                .. '"job":"b"},"timestamp":"' .. TS_TEXT .. '","value":"2500m"},'
                .. '{"metricName":"raw_gauge","metricLabels":{"__name__":"raw_gauge","instance":"10.0.0.1:80",'
                .. '"job":"a"},"timestamp":"' .. TS_TEXT .. '","value":"16m"},'
                .. '{"metricName":"raw_gauge","metricLabels":{},"timestamp":"' .. TS_TEXT .. '","value":"1k"}]}\n'
            assert.equal(want, raw)
        end)

        it("answers an empty vector with 200 and items: []", function()
            local status, doc, raw = env.ask(PATH, Q, vector({}))
            assert.equal(200, status, raw)
            assert.equal(0, #doc.items)
            assert.truthy(raw:find('"items":[]', 1, true), raw)
        end)

        it("turns a scalar into one item with null metricLabels", function()
            local status, doc, raw = env.ask(PATH, Q,
                { result = { resultType = "scalar", result = { TS, "12.5" } } })
            assert.equal(200, status, raw)
            helpers.assert_same(list({ item("raw_gauge", NULL, "12500m") }), doc)
            assert.truthy(raw:find('"metricLabels":null', 1, true), raw)
        end)

        it("500s a matrix with PA's message and no reason", function()
            local status, doc = env.ask(PATH, Q, { result = { resultType = "matrix", result = {
                { metric = { job = "a" }, values = { { TS, "1" } } } } } })
            assert.equal(500, status)
            helpers.assert_same(status_doc(500, nil, "encountered an unexpected query result type"), doc)
        end)

        it("maps NaN to 0 and saturates ±Inf and huge values (decision #9)", function()
            local status, doc, raw = env.ask(PATH, Q, vector({
                sample({ v = "nan" }, "NaN"),
                sample({ v = "+inf" }, "+Inf"),
                sample({ v = "-inf" }, "-Inf"),
                sample({ v = "huge" }, "1e300"),
                sample({ v = "-huge" }, "-1e300"),
            }))
            assert.equal(200, status, raw)
            local got = {}
            for _, it_ in ipairs(doc.items) do got[#got + 1] = it_.value end
            helpers.assert_same({ "0", "9223372036854775807m", "-9223372036854775808m",
                "9223372036854775807m", "-9223372036854775808m" }, got)
        end)
    end)

    -- -- Errors ------------------------------------------------------------------

    describe("errors", function()
        it("404s an unknown metric in default with PA's message", function()
            local status, doc, _, queries = env.ask(V1 .. "/namespaces/default/nope")
            assert.equal(404, status)
            assert.equal(0, #queries)
            helpers.assert_same(status_doc(404, "NotFound",
                "the server could not find the metric nope for namespaces"), doc)
        end)

        it("404s an unknown metric elsewhere with PA's trailing-space message", function()
            local status, doc = env.ask(V1 .. "/namespaces/shop/nope")
            assert.equal(404, status)
            helpers.assert_same(status_doc(404, "NotFound",
                "the server could not find the metric nope for "), doc)
        end)

        it("500s a namespaced rule without a namespace mapping, saying how to fix it", function()
            local status, doc, _, queries = env.ask(V1 .. "/namespaces/default/unmapped_backlog")
            assert.equal(500, status)
            assert.equal(0, #queries)
            local why = "externalRules[3]: unable to convert resource namespaces into label: no generic "
                .. "resource label form specified for this metric (this external rule is namespaced: map "
                .. "a label to namespaces with `resources.overrides` or `resources.template`, or set "
                .. "`resources.namespaced: false`)"
            helpers.assert_same(status_doc(500, "InternalError", "Internal error occurred: " .. why,
                { causes = { { message = why } } }), doc)
        end)

        it("500s a template that fails when executed, naming the rule", function()
            local status, doc, _, queries = env.ask(V1 .. "/namespaces/default/bad_template")
            assert.equal(500, status)
            assert.equal(0, #queries)
            assert.equal("InternalError", doc.reason)
            assert.truthy(doc.message:find("^Internal error occurred: externalRules%[5%]: "), doc.message)
            assert.truthy(doc.message:find("can't evaluate field Namespace", 1, true), doc.message)
        end)

        it("warned about that rule at start-up", function()
            local err = env.adapter:stderr()
            local line
            for l in err:gmatch("[^\n]+") do
                if l:find("externalRules[3]", 1, true) then line = l; break end
            end
            assert.truthy(line, err)
            -- klog warning, with file, line (the rule's: it has no resources
            -- key) and key path
            assert.truthy(line:match("^W%d%d%d%d "), line)
            assert.truthy(line:find("config.yaml:15: externalRules[3].resources: ", 1, true), line)
            assert.truthy(line:find("maps no label to namespaces", 1, true), line)
            assert.truthy(line:find("`namespace: {resource: namespace}`", 1, true), line)
            assert.truthy(line:find("`namespaced: false`", 1, true), line)
        end)

        it("500s when Prometheus answers 500, and keeps serving", function()
            local q = 'sum(queue_consumer_lag{namespace="default"}) by (name)'
            local status, doc = env.ask(V1 .. "/namespaces/default/queue_consumer_lag", q,
                { status = 500, body = "internal" })
            assert.equal(500, status)
            helpers.assert_same(FETCH, doc)
            local s2 = env.ask(V1 .. "/namespaces/default/queue_consumer_lag", q,
                vector({ sample({ name = "x" }, "1") }))
            assert.equal(200, s2)
        end)

        it("500s when Prometheus answers an error status or non-JSON", function()
            local q = 'sum(queue_consumer_lag{namespace="default"}) by (name)'
            local status, doc = env.ask(V1 .. "/namespaces/default/queue_consumer_lag", q,
                { status = 422, body = cjson.encode({ status = "error", errorType = "execution", error = "boom" }) })
            assert.equal(500, status)
            helpers.assert_same(FETCH, doc)
            status, doc = env.ask(V1 .. "/namespaces/default/queue_consumer_lag", q,
                { status = 200, body = "<html>proxy</html>", content_type = "text/html" })
            assert.equal(500, status)
            helpers.assert_same(FETCH, doc)
        end)

        it("500s within a bounded time when Prometheus hangs, and keeps serving", function()
            local q = 'sum(queue_consumer_lag{namespace="default"}) by (name)'
            local t0 = helpers.now()
            local status, doc = env.ask(V1 .. "/namespaces/default/queue_consumer_lag", q, { hang = true })
            assert.equal(500, status)
            helpers.assert_same(FETCH, doc)
            assert.is_true(helpers.now() - t0 < helpers.scale(10))
            local s2 = env.adapter:get_json(V1)
            assert.equal(200, s2)
        end)
    end)
end)

describe("external metrics with Prometheus down", function()
    local env

    setup(function()
        env = start_env(CONFIG, { wait_metric = "raw_gauge" })
        -- Prometheus goes away entirely after the first relist
        env.prom:stop()
    end)

    teardown(function()
        if env then env.stop() end
        helpers.cleanup()
    end)

    it("500s with unable to fetch metrics and keeps serving discovery", function()
        local status, doc = env.adapter:get_json(V1 .. "/namespaces/default/queue_consumer_lag")
        assert.equal(500, status)
        helpers.assert_same(FETCH, doc)
        local s2, d2 = env.adapter:get_json(V1)
        assert.equal(200, s2)
        assert.equal("APIResourceList", d2.kind)
        assert.is_nil(env.adapter:exit_status())
        local s3 = env.adapter:get("/healthz")
        assert.equal(200, s3)
    end)
end)

-- PA's docs/sample-config.yaml, repaired (rules/examples/sample-config.yaml):
-- both APIs, custom first in /apis; its external rules as PA documents them.
describe("external rules of PA's sample config", function()
    local env

    setup(function()
        -- the sample's cheddar rule maps to cheese.io brands: a cluster
        -- that has them (PA's comment: "this should still resolve in our
        -- cluster"), so the fake discovery gets that group
        local disc = helpers.fixture_json("kube/discovery.json")
        table.insert(disc.groups.groups, { name = "cheese.io",
            versions = { { groupVersion = "cheese.io/v1", version = "v1" } },
            preferredVersion = { groupVersion = "cheese.io/v1", version = "v1" } })
        disc.resources["cheese.io/v1"] = { kind = "APIResourceList", groupVersion = "cheese.io/v1",
            resources = { { name = "brands", singularName = "brand", namespaced = true, kind = "Brand",
                verbs = { "get", "list", "watch" } } } }
        local dfile = helpers.temp_file(cjson.encode(disc), "discovery.json")
        env = start_env(nil, {
            config_file = helpers.root() .. "/rules/examples/sample-config.yaml",
            discovery = dfile,
            wait_metric = "queue_depth",
            series = {
                { match = '{__name__="queue_consumer_lag",name!=""}', data = {
                    { __name__ = "queue_consumer_lag", name = "orders", namespace = "default" } } },
                { match = '{__name__="queue_depth",topic!=""}', data = {
                    { __name__ = "queue_depth", topic = "t1", name = "orders" } } },
            },
        })
    end)

    teardown(function()
        if env then env.stop() end
        helpers.cleanup()
    end)

    before_each(function()
        env.prom:control("POST", "/_fake/reset")
    end)

    it("lists both groups in /apis, custom first", function()
        local status, doc = env.adapter:get_json("/apis")
        assert.equal(200, status)
        local names = {}
        for i, g in ipairs(doc.groups) do names[i] = g.name end
        helpers.assert_same({ "custom.metrics.k8s.io", "external.metrics.k8s.io" }, names)
    end)

    it("lists both external metrics", function()
        local status, doc = env.adapter:get_json(V1)
        assert.equal(200, status)
        local names = {}
        for i, r in ipairs(doc.resources) do names[i] = r.name end
        helpers.assert_same({ "queue_consumer_lag", "queue_depth" }, names)
    end)

    it("queries queue_consumer_lag with the namespace matcher (the repaired rule)", function()
        local q = 'sum(queue_consumer_lag{name="orders",namespace="default"}) by (name)'
        local status, doc, raw, queries = env.ask(
            V1 .. "/namespaces/default/queue_consumer_lag?labelSelector=name%3Dorders", q,
            vector({ sample({ name = "orders" }, "42") }))
        assert.equal(200, status, raw)
        helpers.assert_same({ q }, queries)
        helpers.assert_same(list({ item("queue_consumer_lag", { name = "orders" }, "42") }), doc)
    end)

    it("queries queue_depth without a namespace matcher (namespaced: false)", function()
        local q = 'sum(queue_depth{topic="t1"}) by (name)'
        local status, doc, raw, queries = env.ask(
            V1 .. "/namespaces/other/queue_depth?labelSelector=topic%3Dt1", q,
            vector({ sample({ name = "orders" }, "120") }))
        assert.equal(200, status, raw)
        helpers.assert_same({ q }, queries)
        helpers.assert_same(list({ item("queue_depth", { name = "orders" }, "120") }), doc)
    end)
end)

describe("custom rules only", function()
    local env

    setup(function()
        env = start_env([[
rules:
- seriesQuery: 'node_load1{node!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
]], { series = { { match = 'node_load1{node!=""}', data = { { __name__ = "node_load1", node = "worker-1" } } } } })
    end)

    teardown(function()
        if env then env.stop() end
        helpers.cleanup()
    end)

    it("leaves the external group out of /apis and unserved", function()
        local status, doc = env.adapter:get_json("/apis")
        assert.equal(200, status)
        local names = {}
        for i, g in ipairs(doc.groups) do names[i] = g.name end
        helpers.assert_same({ "custom.metrics.k8s.io" }, names)
        assert.equal(404, (env.adapter:get(BASE)))
        assert.equal(404, (env.adapter:get(V1)))
        assert.equal(404, (env.adapter:get(V1 .. "/namespaces/default/queue_depth")))
    end)
end)

-- The custom and external registries are independent (spec-rules.md §5.2,
-- §5.4): a failing series call of one kind of rule leaves the other kind
-- publishing. Each block checks that the failing call was made and failed.
describe("independent registries", function()
    local CUSTOM = "/apis/custom.metrics.k8s.io/v1beta1"
    local BROKEN = { status = 500, body = cjson.encode({ status = "error", errorType = "internal",
        error = "boom" }) }
    local function broken(match)
        local e = { match = match }
        for k, v in pairs(BROKEN) do e[k] = v end
        return e
    end
    local NODE_LOAD = { match = 'node_load1{node!=""}', data = { { __name__ = "node_load1", node = "worker-1" } } }
    local QUEUE_DEPTH = { match = "queue_depth", data = { { __name__ = "queue_depth", topic = "t1" } } }
    local CFG = [[
rules:
- seriesQuery: '%s'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: '%s'
  resources: {namespaced: false}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>})
]]

    -- the failed series call: made (the fake answered 500) and logged
    local function assert_failed(env, match, rule)
        local seen = false
        for _, r in ipairs(env.prom:requests("/api/v1/series")) do
            local m = r.params["match[]"]
            if m == match or (type(m) == "table" and m[1] == match) then seen = true end
        end
        assert.is_true(seen)
        local err = env.adapter:stderr()
        assert.truthy(err:find(rule .. ': unable to fetch metrics for query "' .. match .. '"', 1, true), err)
    end

    describe("a failing custom seriesQuery", function()
        local env
        setup(function()
            env = start_env(CFG:format("broken_custom", "queue_depth"), {
                series = { broken("broken_custom"), QUEUE_DEPTH }, wait_metric = "queue_depth" })
        end)
        teardown(function()
            if env then env.stop() end
            helpers.cleanup()
        end)

        it("leaves the external metrics published and served", function()
            assert_failed(env, "broken_custom", "rules[0]")
            local status, doc, raw = env.adapter:get_json(V1)
            assert.equal(200, status, raw)
            assert.equal(1, #doc.resources)
            assert.equal("queue_depth", doc.resources[1].name)
            local q = 'sum(queue_depth{topic="t1"})'
            local s2, d2, raw2, queries = env.ask(V1 .. "/namespaces/default/queue_depth?labelSelector=topic%3Dt1",
                q, vector({ sample({}, "4") }))
            assert.equal(200, s2, raw2)
            helpers.assert_same({ q }, queries)
            helpers.assert_same(list({ item("queue_depth", {}, "4") }), d2)
            -- and the custom registry is empty, not failed
            local s3, d3, raw3 = env.adapter:get_json(CUSTOM)
            assert.equal(200, s3, raw3)
            assert.equal(0, #d3.resources)
        end)
    end)

    describe("a failing external seriesQuery", function()
        local env
        setup(function()
            env = start_env(CFG:format('node_load1{node!=""}', "broken_external"), {
                series = { NODE_LOAD, broken("broken_external") } })
            helpers.wait_until(function()
                local _, doc = env.adapter:get_json(CUSTOM)
                return doc and doc.resources and #doc.resources > 0
            end, helpers.scale(5), 0.1)
        end)
        teardown(function()
            if env then env.stop() end
            helpers.cleanup()
        end)

        it("leaves the custom metrics published", function()
            assert_failed(env, "broken_external", "externalRules[0]")
            local status, doc, raw = env.adapter:get_json(CUSTOM)
            assert.equal(200, status, raw)
            local names = {}
            for i, r in ipairs(doc.resources) do names[i] = r.name end
            helpers.assert_same({ "nodes/node_load1" }, names)
            -- the external group is served, with nothing in it
            local s2, d2, raw2 = env.adapter:get_json(V1)
            assert.equal(200, s2, raw2)
            assert.equal(0, #d2.resources)
        end)
    end)
end)
