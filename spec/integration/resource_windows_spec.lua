-- resource_windows_spec.lua: a metrics.k8s.io pod list over more
-- namespaces than one query window (src/resource.c NS_WINDOW = 8): every
-- namespace's CPU and memory queries are sent, the answers land on the
-- right pods, a failing namespace in a later window is left out alone, and
-- the queries of a window overlap (delayed answers cost about one delay
-- per window, not one per query). Uses: spec/helpers.lua and the fakes.
local helpers = require "helpers"

local BASE = "/apis/metrics.k8s.io/v1beta1"
local TS = 1715851267.123
local CONFIG = [[
resourceRules:
  cpu:
    containerQuery: 'sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>,container!=""}[3m])) by (<<.GroupBy>>)'
    nodeQuery: 'sum(rate(node_cpu_seconds_total{<<.LabelMatchers>>,mode!="idle"}[3m])) by (<<.GroupBy>>)'
    resources:
      overrides:
        node: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  memory:
    containerQuery: 'sum(container_memory_working_set_bytes{<<.LabelMatchers>>,container!=""}) by (<<.GroupBy>>)'
    nodeQuery: 'sum(node_memory_MemTotal_bytes{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    resources:
      overrides:
        node: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  window: 90s
]]
local NNS = 21
local function nsname(i) return string.format("ns-%02d", i) end

local namespaces, pods = {}, {}
for i = 0, NNS - 1 do
    namespaces[#namespaces + 1] = { name = nsname(i) }
    for k = 1, 2 do
        pods[#pods + 1] = { name = "p" .. k, namespace = nsname(i), phase = "Running" }
    end
end
local OBJECTS = { objects = { { resource = "namespaces", items = namespaces },
    { resource = "pods", items = pods } } }

local function cpu_q(ns)
    return 'sum(rate(container_cpu_usage_seconds_total{namespace="' .. ns
        .. '",pod=~"p1|p2",container!=""}[3m])) by (pod,container)'
end
local function mem_q(ns)
    return 'sum(container_memory_working_set_bytes{namespace="' .. ns
        .. '",pod=~"p1|p2",container!=""}) by (pod,container)'
end
local function vector(i, scale)
    return { result = { resultType = "vector", result = {
        { metric = { pod = "p1", container = "c" }, value = { TS, tostring(i * scale) } },
        { metric = { pod = "p2", container = "c" }, value = { TS, tostring(i * scale + 1) } } } } }
end

describe("resource metrics API, many namespaces", function()
    local prom, kube, adapter

    local function script(query, answer, extra)
        answer.query = query
        for k, v in pairs(extra or {}) do answer[k] = v end
        prom:control("POST", "/_fake/query", answer)
    end

    local function all_data(extra)
        for i = 0, NNS - 1 do
            script(cpu_q(nsname(i)), vector(i, 10), extra)
            script(mem_q(nsname(i)), vector(i, 1024), extra)
        end
    end

    setup(function()
        prom = helpers.start_prometheus {}
        kube = helpers.start_kube { state = OBJECTS }
        adapter = helpers.start_adapter {
            config = CONFIG, prometheus = prom, kube = kube, relist = "1s",
            args = { "--prometheus-timeout=10s" },
        }
    end)
    teardown(function()
        if adapter then adapter:stop() end
        helpers.cleanup()
    end)
    before_each(function() prom:control("POST", "/_fake/reset") end)

    it("sends every namespace's two queries and puts each answer on its pods", function()
        all_data()
        adapter:get_json(BASE .. "/pods")        -- warm the pod cache
        prom:clear_requests()
        local status, doc, raw = adapter:get_json(BASE .. "/pods")
        assert.equal(200, status, raw)
        assert.equal(2 * NNS, #prom:requests("/api/v1/query"))
        assert.equal(2 * NNS, #doc.items)
        for i = 0, NNS - 1 do
            for k = 1, 2 do
                local it = doc.items[2 * i + k]
                assert.equal(nsname(i), it.metadata.namespace)
                assert.equal("p" .. k, it.metadata.name)
                local cpu = i * 10 + (k - 1)
                assert.equal(cpu == 0 and "0" or tostring(cpu), it.containers[1].usage.cpu)
                local mem = i * 1024 + (k - 1)
                local want = mem % 1024 == 0 and (mem == 0 and "0" or math.floor(mem / 1024) .. "Ki") or tostring(mem)
                assert.equal(want, it.containers[1].usage.memory)
            end
        end
    end)

    it("leaves out only the namespaces whose query fails, in any window", function()
        all_data()
        script(cpu_q("ns-09"), { status = 500, body = "oops" })
        script(mem_q("ns-17"), { status = 422, body = '{"status":"error","errorType":"execution","error":"boom"}' })
        script(cpu_q("ns-00"), { result = { resultType = "scalar", result = { TS, "1" } } })
        local status, doc, raw = adapter:get_json(BASE .. "/pods")
        assert.equal(200, status, raw)
        local seen = {}
        for _, it in ipairs(doc.items) do seen[it.metadata.namespace] = (seen[it.metadata.namespace] or 0) + 1 end
        for i = 0, NNS - 1 do
            local ns = nsname(i)
            if ns == "ns-09" or ns == "ns-17" or ns == "ns-00" then
                assert.is_nil(seen[ns], ns)
            else
                assert.equal(2, seen[ns], ns)
            end
        end
        local log = adapter:stderr()
        assert.truthy(log:find('namespace "ns-09", skipping: unable to fetch pod CPU metrics: unable to execute query: bad_response: unknown response code 500', 1, true), log)
        assert.truthy(log:find('namespace "ns-17", skipping: unable to fetch pod memory metrics: unable to execute query: execution: boom', 1, true), log)
        assert.truthy(log:find('namespace "ns-00", skipping: unable to fetch pod CPU metrics: invalid or empty value of non-vector type (scalar) returned', 1, true), log)
        -- counted once per skipped namespace, the scalar answer included
        -- (no Prometheus error counts it)
        local mstatus, _, metrics = adapter:get("/metrics")
        assert.equal(200, mstatus)
        assert.truthy(metrics:find('\npromlua_adapter_resource_query_failures_total{kind="pods"} 3\n', 1, true), metrics)
    end)

    it("overlaps the queries: 42 answers delayed 0.4 s each take a few delays, not 42", function()
        all_data({ delay = 0.4 })
        local t0 = helpers.now()
        local status, doc, raw = adapter:get_json(BASE .. "/pods")
        local took = helpers.now() - t0
        assert.equal(200, status, raw)
        assert.equal(2 * NNS, #doc.items)
        -- 3 windows of up to 16 queries, 8 at a time: ~6 delays (2.4 s);
        -- sequential would be 16.8 s
        assert.truthy(took < 6, took)
    end)
end)
