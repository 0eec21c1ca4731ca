-- rules/resource-metrics.yaml: the shipped resourceRules load without
-- errors or warnings, install only metrics.k8s.io, and render the queries
-- kube-prometheus data needs (cAdvisor per container, node-exporter per
-- node, round() around memory), with the labels the C side reads.
local core = require "adapter.core"
local engine = require "adapter.engine"

local function R(g, v, r, s, k, ns)
    return { group = g, version = v, resource = r, singular = s, kind = k,
        namespaced = ns, preferred = true }
end

local MAPPER = {
    R("", "v1", "pods", "pod", "Pod", true), R("", "v1", "nodes", "node", "Node", false),
    R("", "v1", "namespaces", "namespace", "Namespace", false),
}

local function load()
    local f = assert(io.open("rules/resource-metrics.yaml"))
    local text = f:read("*a")
    f:close()
    local tree = assert(core.yaml_parse(text, "rules/resource-metrics.yaml"))
    local eng, errs, warns = engine.new(tree, { file = "rules/resource-metrics.yaml" })
    return eng, errs, warns
end

describe("rules/resource-metrics.yaml", function()
    local eng, errs, warns = load()

    it("loads cleanly and installs only metrics.k8s.io", function()
        assert.is_table(eng, errs and errs[1] and errs[1].msg)
        assert.same({}, warns)
        assert.is_true(eng:has("resource"))
        assert.is_false(eng:has("custom"))
        assert.is_false(eng:has("external"))
        assert.truthy(eng:set_resources(MAPPER))
    end)

    it("renders the container queries per namespace", function()
        assert.equal('sum by (pod,container) (\n  rate(container_cpu_usage_seconds_total{container!="",'
            .. 'namespace="shop",pod=~"a|b"}[3m])\n)\n',
            eng:render_resource({ resource = "cpu", namespace = "shop", names = { "a", "b" } }))
        assert.equal('sum by (pod,container) (\n  round(avg_over_time(container_memory_working_set_bytes'
            .. '{container!="",namespace="shop",pod="a"}[3m]))\n)\n',
            eng:render_resource({ resource = "memory", namespace = "shop", names = { "a" } }))
    end)

    it("renders the node queries", function()
        assert.equal('sum by (node) (\n  rate(node_cpu_seconds_total{mode!="idle",mode!="iowait",'
            .. 'mode!="steal",node=~"n1|n2"}[3m])\n)\n',
            eng:render_resource({ resource = "cpu", node = true, names = { "n1", "n2" } }))
        assert.equal('sum by (node) (\n  round(\n    avg_over_time(node_memory_MemTotal_bytes{node="n1"}[3m])'
            .. '\n    -\n    avg_over_time(node_memory_MemAvailable_bytes{node="n1"}[3m])\n  )\n)\n',
            eng:render_resource({ resource = "memory", node = true, names = { "n1" } }))
    end)

    it("reads results by pod, namespace, node and container, window 3m", function()
        for _, which in ipairs({ "cpu", "memory" }) do
            assert.same({ pod = "pod", namespace = "namespace", node = "node",
                container = "container", window_ms = 180000 }, eng:resource_labels(which))
        end
    end)
end)
